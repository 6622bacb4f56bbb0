//! Idempotency keys (AIP-155 request ids) are scoped to their caller and bound to their
//! request: a key names one caller's one request, so another caller cannot pre-empt it and the
//! same caller cannot replay it with different content.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::Caller;

/// The stored form of a caller's key: the same key from two callers is two keys.
pub fn scoped_key(caller: &Caller, request_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(caller.subject.as_bytes());
    hasher.update([0]);
    hasher.update(request_id.as_bytes());
    hex::encode(hasher.finalize())
}

/// A hash of what was asked, to tell a retry from a different request under the same key.
/// Callers clear fields that do not change the request's meaning (the key itself,
/// `validate_only`) before hashing.
pub fn request_hash<M: Message>(request: &M) -> String {
    hex::encode(Sha256::digest(request.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn caller(subject: &str) -> Caller {
        Caller {
            subject: subject.into(),
            role: Role::Office,
            organization: None,
            expert: None,
        }
    }

    #[test]
    fn keys_are_scoped_to_their_caller() {
        assert_eq!(
            scoped_key(&caller("a"), "k-1"),
            scoped_key(&caller("a"), "k-1")
        );
        assert_ne!(
            scoped_key(&caller("a"), "k-1"),
            scoped_key(&caller("b"), "k-1")
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            scoped_key(&caller("ab"), "c"),
            scoped_key(&caller("a"), "bc")
        );
    }

    #[test]
    fn a_request_hash_changes_with_the_request() {
        let a = prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        };
        let b = prost_types::Timestamp {
            seconds: 2,
            nanos: 0,
        };
        assert_eq!(request_hash(&a), request_hash(&a.clone()));
        assert_ne!(request_hash(&a), request_hash(&b));
    }
}

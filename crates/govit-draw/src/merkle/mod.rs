//! The transparency log's Merkle tree, as RFC 6962 defines it (verification as in RFC 9162):
//! leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right), and signed tree heads.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

pub mod nodes;

pub type Hash = [u8; 32];

pub const LOG_ID: &str = "govit-registry-log/v1";

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than n (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes; the empty tree's root is SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `index`.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut path = inclusion_proof(index, &leaves[..k]);
        path.push(root(&leaves[k..]));
        path
    } else {
        let mut path = inclusion_proof(index - k, &leaves[k..]);
        path.push(root(&leaves[..k]));
        path
    }
}

/// PROOF(m, D[n]): that the tree of the first `old_size` leaves is a prefix of `leaves`.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Vec<Hash> {
    if old_size == 0 || old_size >= leaves.len() {
        return Vec::new();
    }
    subproof(old_size, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut proof = subproof(m, &leaves[..k], complete);
        proof.push(root(&leaves[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &leaves[k..], false);
        proof.push(root(&leaves[..k]));
        proof
    }
}

/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

/// RFC 9162 §2.1.4.2.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &fr == old_root && &sr == new_root
}

/// A signed statement of the log's size and root at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    pub tree_size: u64,
    /// Hex of the root hash.
    pub root_hash: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// Hex of the Ed25519 signature over [`TreeHead::signed_bytes`].
    pub signature: String,
    /// Hex of the Ed25519 public key.
    pub public_key: String,
}

impl TreeHead {
    /// What is signed: the canonical JSON of
    /// `{"log": "govit-registry-log/v1", "root_hash", "timestamp", "tree_size"}`.
    pub fn signed_bytes(tree_size: u64, root_hash: &str, timestamp: &str) -> Vec<u8> {
        let value = json!({"log": LOG_ID, "tree_size": tree_size, "root_hash": root_hash, "timestamp": timestamp});
        crate::jcs::canonical(&value).unwrap_or_default()
    }

    pub fn sign(key: &SigningKey, tree_size: u64, root: &Hash, timestamp: &str) -> TreeHead {
        let root_hash = hex::encode(root);
        let signature = key.sign(&Self::signed_bytes(tree_size, &root_hash, timestamp));
        TreeHead {
            tree_size,
            root_hash,
            timestamp: timestamp.to_owned(),
            signature: hex::encode(signature.to_bytes()),
            public_key: hex::encode(key.verifying_key().to_bytes()),
        }
    }

    /// Checks the signature against `public_key` (hex), which the verifier must have from a
    /// trusted place, not from the head itself.
    pub fn verify(&self, public_key_hex: &str) -> Result<(), String> {
        let key: [u8; 32] = hex::decode(public_key_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the public key is not 32 bytes of hex")?;
        let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("bad public key: {e}"))?;
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not 64 bytes of hex")?;
        key.verify(
            &Self::signed_bytes(self.tree_size, &self.root_hash, &self.timestamp),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| "the signature does not verify".to_string())
    }

    pub fn root(&self) -> Option<Hash> {
        hex::decode(&self.root_hash).ok()?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        for n in 1..=33 {
            let all = leaves(n);
            let r = root(&all);
            for i in 0..n {
                let proof = inclusion_proof(i, &all);
                assert!(
                    verify_inclusion(i as u64, n as u64, &all[i], &proof, &r),
                    "n={n} i={i}"
                );
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(i as u64, n as u64, &other, &proof, &r));
                if n > 1 {
                    // The same leaf and path claimed at another index must not verify.
                    let elsewhere = ((i + 1) % n) as u64;
                    assert!(
                        !verify_inclusion(elsewhere, n as u64, &all[i], &proof, &r),
                        "n={n} i={i}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_forked_log_does_not() {
        for n in 1..=33 {
            let all = leaves(n);
            let new_root = root(&all);
            for m in 1..=n {
                let proof = consistency_proof(m, &all);
                let old_root = root(&all[..m]);
                assert!(
                    verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof),
                    "m={m} n={n}"
                );
                if m < n {
                    let mut forked = all.clone();
                    forked[m - 1] = leaf_hash(b"rewritten history");
                    assert!(
                        !verify_consistency(
                            m as u64,
                            n as u64,
                            &root(&forked[..m]),
                            &new_root,
                            &proof
                        ),
                        "m={m} n={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_root_matches_rfc6962_structure() {
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_tree_head_signature_binds_size_root_and_time() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let head = TreeHead::sign(&key, 5, &root(&leaves(5)), "2026-11-28T05:00:00Z");
        let public = hex::encode(key.verifying_key().to_bytes());
        assert!(head.verify(&public).is_ok());
        let mut bigger = head.clone();
        bigger.tree_size = 6;
        assert!(bigger.verify(&public).is_err());
        let other = hex::encode(
            SigningKey::from_bytes(&[8u8; 32])
                .verifying_key()
                .to_bytes(),
        );
        assert!(head.verify(&other).is_err());
    }
}

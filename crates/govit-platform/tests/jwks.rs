//! Tokens from an OIDC provider that publishes its keys as a JWKS and rotates them: a local
//! provider serves the set over HTTP, and swaps keys as Keycloak does (the new key published,
//! then used; the old one retired).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use govit_platform::{Authenticator, Role, ServiceError, VerificationKey, auth::Claims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct ProviderKey {
    kid: &'static str,
    signing: ed25519_dalek::SigningKey,
}

impl ProviderKey {
    fn new(kid: &'static str, seed: u8) -> Self {
        Self {
            kid,
            signing: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
        })
    }

    fn token(&self, issued: u64) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.into());
        let pem = self.signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let claims = Claims {
            sub: "keycloak-user-42".into(),
            role: Role::Supervisor,
            org: None,
            expert: None,
            bureau: Some(govit_platform::auth::Bureau::Audit),
            iss: govit_platform::auth::DEFAULT_ISSUER.into(),
            aud: govit_platform::auth::DEFAULT_AUDIENCE.into(),
            iat: issued,
            nbf: None,
            exp: issued + 300,
        };
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

/// An HTTP server answering every request with the current set; counts the requests.
async fn provider(set: Arc<Mutex<serde_json::Value>>, fetches: Arc<Mutex<u32>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            *fetches.lock().unwrap() += 1;
            let body = set.lock().unwrap().to_string();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    url
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_verify_against_published_keys_through_a_rotation() {
    let (old, new) = (ProviderKey::new("2026-a", 1), ProviderKey::new("2026-b", 2));
    let set = Arc::new(Mutex::new(serde_json::json!({ "keys": [old.jwk()] })));
    let fetches = Arc::new(Mutex::new(0));
    let url = provider(set.clone(), fetches.clone()).await;
    let auth = Authenticator::new(&VerificationKey::Jwks {
        url,
        refresh: Duration::from_secs(3600),
    })
    .unwrap();
    let now = jsonwebtoken::get_current_timestamp;

    let token = old.token(now());
    eventually("the first key is fetched", || auth.verify(&token).is_ok()).await;
    let caller = auth.verify(&token).unwrap();
    assert_eq!(
        (caller.subject.as_str(), caller.role),
        ("keycloak-user-42", Role::Supervisor)
    );
    // A token with no key id, or signed by a key outside the set under a known id, is refused.
    let mut anonymous = Header::new(Algorithm::EdDSA);
    anonymous.kid = None;
    let bare = token.split_once('.').unwrap().1;
    let unnamed = format!(
        "{}.{bare}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&anonymous).unwrap())
    );
    assert!(matches!(
        auth.verify(&unnamed),
        Err(ServiceError::Unauthenticated(m)) if m.contains("kid")
    ));
    let impostor = ProviderKey {
        kid: "2026-a",
        signing: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    };
    assert!(matches!(
        auth.verify(&impostor.token(now())),
        Err(ServiceError::Unauthenticated(_))
    ));

    // The provider rotates: the new key is published and used, the old one retired. A token
    // naming the new key before govit has seen it is to be retried, not refused.
    *set.lock().unwrap() = serde_json::json!({ "keys": [new.jwk()] });
    let rotated = new.token(now() + 1);
    assert!(matches!(
        auth.verify(&rotated),
        Err(ServiceError::Unavailable(_))
    ));
    eventually("the rotated key is fetched on the miss", || {
        auth.verify(&rotated).is_ok()
    })
    .await;
    // The retired key's tokens are refused, now that a set fetched well after they were issued
    // (past a minute of clock skew) does not hold it.
    let retired = old.token(now() - 120);
    assert!(matches!(
        auth.verify(&retired),
        Err(ServiceError::Unauthenticated(m)) if m.contains("not one the issuer publishes")
    ));
    // Misses do not hammer the provider: a burst of unknown keys costs one fetch, once the
    // least time between fetches has passed.
    let before = *fetches.lock().unwrap();
    for i in 0..200 {
        let stranger = ProviderKey {
            kid: "unknown",
            signing: ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        };
        let _ = auth.verify(&stranger.token(now() + 10 + i));
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(*fetches.lock().unwrap(), before + 1);
}

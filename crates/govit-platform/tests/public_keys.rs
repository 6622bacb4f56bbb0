//! Production verification: the issuer signs with its private key, govit holds only the public.

use govit_platform::{Authenticator, Role, VerificationKey, auth::Claims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

fn claims() -> Claims {
    let now = jsonwebtoken::get_current_timestamp();
    Claims {
        sub: "idp-user-7".into(),
        role: Role::Supervisor,
        org: None,
        expert: None,
        bureau: Some(govit_platform::auth::Bureau::Audit),
        iss: govit_platform::auth::DEFAULT_ISSUER.into(),
        aud: govit_platform::auth::DEFAULT_AUDIENCE.into(),
        iat: now,
        nbf: None,
        exp: now + 300,
    }
}

fn sign(algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims(), key).unwrap()
}

#[test]
fn ed25519_tokens_verify_against_the_public_key() {
    let auth = Authenticator::new(&VerificationKey::Ed25519Pem(
        include_bytes!("keys/ed.pub.pem").to_vec(),
    ))
    .unwrap();
    let key = EncodingKey::from_ed_pem(include_bytes!("keys/ed.pem")).unwrap();
    let caller = auth.verify(&sign(Algorithm::EdDSA, &key)).unwrap();
    assert_eq!(caller.subject, "idp-user-7");
    assert_eq!(caller.role, Role::Supervisor);
    // An HS256 token made with the public key's bytes as secret is the classic confusion attack.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(include_bytes!("keys/ed.pub.pem")),
    );
    assert!(auth.verify(&confused).is_err());
}

#[test]
fn rsa_tokens_verify_against_the_public_key() {
    let auth = Authenticator::new(&VerificationKey::RsaPem(
        include_bytes!("keys/rsa.pub.pem").to_vec(),
    ))
    .unwrap();
    let key = EncodingKey::from_rsa_pem(include_bytes!("keys/rsa.pem")).unwrap();
    assert_eq!(
        auth.verify(&sign(Algorithm::RS256, &key)).unwrap().role,
        Role::Supervisor
    );
    let other = EncodingKey::from_ed_pem(include_bytes!("keys/ed.pem")).unwrap();
    assert!(auth.verify(&sign(Algorithm::EdDSA, &other)).is_err());
}

#[test]
fn an_expired_token_is_refused() {
    let auth = Authenticator::new(&VerificationKey::Hs256(b"k".to_vec())).unwrap();
    let mut expired = claims();
    expired.exp = expired.iat - 3600;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &expired,
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    assert!(auth.verify(&token).is_err());
}

//! The C2SP formats of a transparency log's head, byte-exact, so that tools written against
//! the specs elsewhere read and check ours:
//! - `c2sp.org/signed-note`: a text and signature lines `— <name> base64(key ID ‖ signature)`;
//!   Ed25519 signatures (type 0x01) and verifier keys `<name>+<hex key ID>+base64(type ‖ key)`;
//! - `c2sp.org/tlog-checkpoint`: the text `<origin>\n<size>\n<base64 root>\n[extensions]`;
//! - `c2sp.org/tlog-cosignature`: a witness's timestamped Ed25519 cosignature (type 0x04) over
//!   `cosignature/v1\ntime <t>\n` followed by the checkpoint text.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Signature types of the signed-note registry.
pub const TYPE_ED25519: u8 = 0x01;
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;

/// A note may carry at most this many signatures (the spec asks verifiers to accept 16).
pub const MAX_SIGNATURES: usize = 100;

const EM_DASH: &str = "\u{2014}";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed verifier key: {0}")]
    Key(&'static str),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    #[error("no signature from a trusted key")]
    Unverified,
}

/// Key names are non-empty, without spaces or `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`.
pub fn key_id(name: &str, kind: u8, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A trusted key: a log's (type 0x01) or a witness's (type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub kind: u8,
    pub key: VerifyingKey,
}

impl Verifier {
    pub fn new(name: &str, kind: u8, key: VerifyingKey) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("the name is empty or has a space or '+'"));
        }
        if kind != TYPE_ED25519 && kind != TYPE_COSIGNATURE_V1 {
            return Err(NoteError::Key("only types 0x01 and 0x04 are supported"));
        }
        Ok(Self {
            name: name.to_owned(),
            kind,
            key,
        })
    }

    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.kind, self.key.as_bytes())
    }

    /// Parses `<name>+<hex key ID>+base64(type ‖ key)`, checking the key ID.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::Key("expected <name>+<key id>+<key>"));
        };
        let raw = B64
            .decode(material)
            .map_err(|_| NoteError::Key("the key is not base64"))?;
        let Some((&kind, key)) = raw.split_first() else {
            return Err(NoteError::Key("the key is empty"));
        };
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 key is 32 bytes"))?;
        let key =
            VerifyingKey::from_bytes(&key).map_err(|_| NoteError::Key("not an Ed25519 key"))?;
        let verifier = Self::new(name, kind, key)?;
        if id.len() != 8 || hex::encode(verifier.id()) != id {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The verifier key string of the signed-note spec.
    pub fn vkey(&self) -> String {
        let mut material = vec![self.kind];
        material.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id()),
            B64.encode(material)
        )
    }
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    /// The signature after the key ID (for a cosignature: timestamp ‖ Ed25519 signature).
    pub bytes: Vec<u8>,
}

impl NoteSignature {
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_vec();
        raw.extend_from_slice(&self.bytes);
        format!("{EM_DASH} {} {}\n", self.name, B64.encode(raw))
    }

    fn parse(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(EM_DASH)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(NoteError::Malformed("a signature line starts with '— '"))?;
        let (name, sig) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "a signature line is '— <name> <signature>'",
        ))?;
        if !valid_name(name) {
            return Err(NoteError::Malformed("a signature's key name is invalid"));
        }
        let raw = B64
            .decode(sig)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: [raw[0], raw[1], raw[2], raw[3]],
            bytes: raw[4..].to_vec(),
        })
    }
}

/// A signed note: its text (ending in a newline) and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_text(text)?;
        Ok(Self {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Parses a note; the text is separated from the signatures by its last empty line.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        check_text(text)?;
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed("signature lines end in a newline"));
        }
        let signatures = sigs
            .lines()
            .map(NoteSignature::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note as sent: text, blank line, signature lines.
    pub fn encode(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out
    }

    /// Adds an Ed25519 (type 0x01) signature by `name`.
    pub fn sign(&mut self, name: &str, key: &SigningKey) {
        let signature = key.sign(self.text.as_bytes());
        self.signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: key_id(name, TYPE_ED25519, key.verifying_key().as_bytes()),
            bytes: signature.to_bytes().to_vec(),
        });
    }

    /// Adds a witness's cosignature at `timestamp` (POSIX seconds).
    pub fn cosign(&mut self, name: &str, key: &SigningKey, timestamp: u64) {
        self.signatures
            .push(cosignature(&self.text, name, key, timestamp));
    }

    /// Checks every signature by `verifier` (matched by name and key ID; others are
    /// ignored). Returns the cosignature timestamps (0 for a plain Ed25519 signature) of the
    /// signatures that verified; an error if one from a trusted key does not, or none is there.
    pub fn verify(&self, verifier: &Verifier) -> Result<Vec<u64>, NoteError> {
        let id = verifier.id();
        let mut verified = Vec::new();
        for s in self
            .signatures
            .iter()
            .filter(|s| s.name == verifier.name && s.key_id == id)
        {
            let bad = || NoteError::BadSignature(verifier.name.clone());
            let timestamp = match verifier.kind {
                TYPE_COSIGNATURE_V1 => {
                    let (time, sig) = s.bytes.split_at_checked(8).ok_or_else(bad)?;
                    let time = u64::from_be_bytes(time.try_into().map_err(|_| bad())?);
                    let sig = Signature::from_slice(sig).map_err(|_| bad())?;
                    verifier
                        .key
                        .verify(cosigned_message(&self.text, time).as_bytes(), &sig)
                        .map_err(|_| bad())?;
                    time
                }
                _ => {
                    let sig = Signature::from_slice(&s.bytes).map_err(|_| bad())?;
                    verifier
                        .key
                        .verify(self.text.as_bytes(), &sig)
                        .map_err(|_| bad())?;
                    0
                }
            };
            verified.push(timestamp);
        }
        if verified.is_empty() {
            return Err(NoteError::Unverified);
        }
        Ok(verified)
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text ends in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed(
            "control characters other than newline",
        ));
    }
    Ok(())
}

/// `cosignature/v1\ntime <t>\n` and the checkpoint text.
fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A witness's cosignature line over a checkpoint's text.
pub fn cosignature(text: &str, name: &str, key: &SigningKey, timestamp: u64) -> NoteSignature {
    let signature = key.sign(cosigned_message(text, timestamp).as_bytes());
    let mut bytes = timestamp.to_be_bytes().to_vec();
    bytes.extend_from_slice(&signature.to_bytes());
    NoteSignature {
        name: name.to_owned(),
        key_id: key_id(name, TYPE_COSIGNATURE_V1, key.verifying_key().as_bytes()),
        bytes,
    }
}

/// A log's head as `c2sp.org/tlog-checkpoint` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Reads the first three lines of a checkpoint's text; extension lines are allowed and
    /// ignored.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Checkpoint("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(NoteError::Checkpoint("the origin is empty"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(NoteError::Checkpoint("the size is not a decimal number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| NoteError::Checkpoint("the size is out of range"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Checkpoint(
                "the root is not a base64 SHA-256 hash",
            ))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// An Ed25519 key from PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, NoteError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    SigningKey::from_pkcs8_pem(pem).map_err(|_| NoteError::Key("not a PKCS#8 PEM Ed25519 key"))
}

/// The PKCS#8 PEM of an Ed25519 key, as `govit` writes new keys.
pub fn signing_key_to_pem(key: &SigningKey) -> Result<String, NoteError> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|_| NoteError::Key("the key cannot be written as PKCS#8"))
}

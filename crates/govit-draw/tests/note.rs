//! The C2SP note formats against the vectors other implementations publish, and against
//! Cloudflare's `signed_note` and `tlog_tiles` (ports of Go's sumdb note and tlog) both ways.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signature, SigningKey, Verifier as _};
use govit_draw::note::{
    Checkpoint, Note, NoteError, TYPE_COSIGNATURE_V1, TYPE_ED25519, Verifier, cosignature,
    signing_key_from_pem, signing_key_to_pem,
};

// golang.org/x/mod/sumdb/note, note_test.go.
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
// c2sp.org/signed-note, the example.
const FOO_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const FOO_NOTE: &str = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
// transparency-dev/formats, note/note_cosigv1_test.go: a witness key and a cosignature.
const REMORA_VKEY: &str = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";
const COSIG_B64: &str = "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==";

fn peter_key() -> SigningKey {
    // The key material is the fifth field; base64 may itself contain '+'.
    let material = B64
        .decode(PETER_SKEY.splitn(5, '+').nth(4).unwrap())
        .unwrap();
    assert_eq!(material[0], TYPE_ED25519);
    SigningKey::from_bytes(&material[1..].try_into().unwrap())
}

#[test]
fn signing_reproduces_the_go_reference_note_byte_for_byte() {
    let mut note = Note::new(GO_TEXT).unwrap();
    note.sign("PeterNeumann", &peter_key());
    assert_eq!(note.encode(), format!("{GO_TEXT}\n{PETER_SIG}"));
    let verifier = Verifier::parse(PETER_VKEY).unwrap();
    assert_eq!(verifier.vkey(), PETER_VKEY);
    assert_eq!(
        Verifier::new("PeterNeumann", TYPE_ED25519, peter_key().verifying_key())
            .unwrap()
            .vkey(),
        PETER_VKEY
    );
}

#[test]
fn published_notes_verify_and_altered_ones_do_not() {
    let both = Note::parse(&format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}")).unwrap();
    for vkey in [PETER_VKEY, ENOCH_VKEY] {
        assert_eq!(both.verify(&Verifier::parse(vkey).unwrap()), Ok(vec![0]));
    }
    let foo = Note::parse(FOO_NOTE).unwrap();
    assert_eq!(foo.text, "This is an example message.\n");
    assert!(foo.verify(&Verifier::parse(FOO_VKEY).unwrap()).is_ok());
    assert_eq!(foo.encode(), FOO_NOTE);

    let altered =
        Note::parse(&format!("{GO_TEXT}\n{PETER_SIG}").replace("cryptography", "cryptographY"))
            .unwrap();
    assert!(matches!(
        altered.verify(&Verifier::parse(PETER_VKEY).unwrap()),
        Err(NoteError::BadSignature(_))
    ));
    // A key nobody signed with is no evidence at all.
    assert_eq!(
        Note::parse(FOO_NOTE)
            .unwrap()
            .verify(&Verifier::parse(PETER_VKEY).unwrap()),
        Err(NoteError::Unverified)
    );
}

#[test]
fn malformed_notes_and_keys_are_refused() {
    for note in [
        "no blank line\n— a AAAA\n",
        "text\n\n",
        "text\n\n— name notbase64!\n",
        "text\n\nnot a signature\n",
        "te\u{7}xt\n\n— a AAAAAAAA\n",
        "text\n\n— a AAAAAAAA",
    ] {
        assert!(Note::parse(note).is_err(), "{note:?}");
    }
    for vkey in [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "rekor.sigstore.dev+12345678+AwEB",
    ] {
        assert!(Verifier::parse(vkey).is_err(), "{vkey}");
    }
}

#[test]
fn the_published_cosignature_key_and_timestamp_read_as_published() {
    let witness = Verifier::parse(REMORA_VKEY).unwrap();
    assert_eq!(witness.kind, TYPE_COSIGNATURE_V1);
    assert_eq!(witness.vkey(), REMORA_VKEY);
    let raw = B64.decode(COSIG_B64).unwrap();
    assert_eq!(
        u64::from_be_bytes(raw[4..12].try_into().unwrap()),
        1_727_964_367
    );
}

#[test]
fn a_cosignature_signs_the_v1_message_and_is_not_a_plain_signature() {
    let witness = SigningKey::from_bytes(&[7; 32]);
    let text = Checkpoint {
        origin: "govit.example.gov/experts-log".into(),
        size: 20,
        root: [9; 32],
    }
    .text();
    let line = cosignature(&text, "witness.example/w1", &witness, 1_767_225_600);
    // Checked by hand against the spec, not through this crate's verify.
    let message = format!("cosignature/v1\ntime 1767225600\n{text}");
    assert_eq!(&line.bytes[..8], &1_767_225_600u64.to_be_bytes());
    let signature = Signature::from_slice(&line.bytes[8..]).unwrap();
    witness
        .verifying_key()
        .verify(message.as_bytes(), &signature)
        .unwrap();

    let mut note = Note::new(&text).unwrap();
    note.signatures.push(line);
    let as_witness = Verifier::new(
        "witness.example/w1",
        TYPE_COSIGNATURE_V1,
        witness.verifying_key(),
    )
    .unwrap();
    assert_eq!(note.verify(&as_witness), Ok(vec![1_767_225_600]));
    // The same key read as a log key has another key ID: the cosignature is not its signature.
    let as_log =
        Verifier::new("witness.example/w1", TYPE_ED25519, witness.verifying_key()).unwrap();
    assert_eq!(note.verify(&as_log), Err(NoteError::Unverified));
}

#[test]
fn checkpoints_read_and_write_as_tlog_tiles_does() {
    let checkpoint = Checkpoint {
        origin: "govit.example.gov/experts-log".into(),
        size: 1_000_003,
        root: [0xab; 32],
    };
    let text = checkpoint.text();
    assert_eq!(
        text,
        format!(
            "govit.example.gov/experts-log\n1000003\n{}\n",
            B64.encode([0xab; 32])
        )
    );
    let theirs = tlog_tiles::Checkpoint::from_bytes(text.as_bytes()).unwrap();
    assert_eq!(
        (theirs.origin(), theirs.size(), theirs.hash().0),
        ("govit.example.gov/experts-log", 1_000_003, [0xab; 32])
    );
    assert_eq!(theirs.to_bytes(), text.as_bytes());
    assert_eq!(Checkpoint::parse(&text), Ok(checkpoint));
    for bad in ["o\n01\nAAAA\n", "o\n-1\n", "\n1\nAAAA\n", "o\n1\nAAAA\n"] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
}

/// Our signatures verify with signed_note, and its signatures verify with ours.
#[test]
fn notes_agree_with_signed_note_in_both_directions() {
    use signed_note::{Note as TheirNote, StandardSigner, StandardVerifier, VerifierList};
    for i in 0..20u8 {
        let key = SigningKey::from_bytes(&[i; 32]);
        let name = format!("log{i}.example/experts");
        let ours = Verifier::new(&name, TYPE_ED25519, key.verifying_key()).unwrap();
        let text = Checkpoint {
            origin: name.clone(),
            size: u64::from(i) * 1000,
            root: [i; 32],
        }
        .text();

        let mut note = Note::new(&text).unwrap();
        note.sign(&name, &key);
        let verifiers =
            VerifierList::new(vec![Box::new(StandardVerifier::new(&ours.vkey()).unwrap())]);
        let (verified, _) = TheirNote::from_bytes(note.encode().as_bytes())
            .unwrap()
            .verify(&verifiers)
            .unwrap();
        assert_eq!(verified.len(), 1);

        let mut material = vec![TYPE_ED25519];
        material.extend_from_slice(&key.to_bytes());
        let skey = format!(
            "PRIVATE+KEY+{name}+{}+{}",
            hex::encode(ours.id()),
            B64.encode(material)
        );
        let signer = StandardSigner::new(&skey).unwrap();
        let mut theirs = TheirNote::new(text.as_bytes(), &[]).unwrap();
        theirs.add_sigs(&[&signer]).unwrap();
        let parsed = Note::parse(std::str::from_utf8(&theirs.to_bytes()).unwrap()).unwrap();
        assert_eq!(parsed.verify(&ours), Ok(vec![0]));
        assert_eq!(parsed.encode(), note.encode(), "Ed25519 is deterministic");
    }
}

#[test]
fn keys_round_trip_through_pkcs8_pem() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let pem = signing_key_to_pem(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        signing_key_from_pem(&pem).unwrap().to_bytes(),
        key.to_bytes()
    );
    assert!(
        signing_key_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .is_err()
    );
}

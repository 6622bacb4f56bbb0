//! Published vectors for the log's C2SP forms under `tests/vectors/tlog/`: a log of 300
//! entries, its checkpoint signed by the log and cosigned by a witness, its hash tiles and
//! entry bundles, and both verifier keys. Keys come from fixed seeds so the files are
//! reproducible; Ed25519 signatures are deterministic. The test rebuilds every file and
//! compares it byte for byte; `GOVIT_WRITE_VECTORS=1` rewrites them.

use std::{collections::HashMap, path::PathBuf};

use ed25519_dalek::SigningKey;
use govit_draw::{
    merkle::{self, nodes},
    note::{Checkpoint, Note, TYPE_COSIGNATURE_V1, TYPE_ED25519, Verifier},
    tiles::{self, TileKind},
};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "govit.example.gov/experts-log";
const WITNESS: &str = "witness.finance.example.gov/govit";
const TIMESTAMP: u64 = 1_798_761_600; // 2027-01-01T00:00:00Z
const ENTRIES: u64 = 300;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/tlog")
}

fn key(label: &str) -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(format!("govit test vector key: {label}")).into())
}

fn entry(i: u64) -> String {
    format!("{{\"at\":\"2026-11-28T05:00:00.000000Z\",\"index\":{i},\"type\":\"vector\"}}")
}

/// Every file of the vector set: its path under tests/vectors/tlog and its bytes.
fn files() -> Vec<(String, Vec<u8>)> {
    let log_key = key("log");
    let witness_key = key("witness");
    let mut stored = HashMap::new();
    for i in 0..ENTRIES {
        let leaf = merkle::leaf_hash(entry(i).as_bytes());
        let made = nodes::append(i, leaf, &|id| stored.get(&id).copied()).unwrap();
        stored.extend(made);
    }
    let source = |id| stored.get(&id).copied();
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: ENTRIES,
        root: nodes::root(ENTRIES, &source).unwrap(),
    };
    let mut note = Note::new(&checkpoint.text()).unwrap();
    note.sign(ORIGIN, &log_key);
    note.cosign(WITNESS, &witness_key, TIMESTAMP);
    let log = Verifier::new(ORIGIN, TYPE_ED25519, log_key.verifying_key()).unwrap();
    let witness = Verifier::new(WITNESS, TYPE_COSIGNATURE_V1, witness_key.verifying_key()).unwrap();
    let mut out = vec![
        ("checkpoint".to_owned(), note.encode().into_bytes()),
        (
            "log.vkey".to_owned(),
            format!("{}\n", log.vkey()).into_bytes(),
        ),
        (
            "witness.vkey".to_owned(),
            format!("{}\n", witness.vkey()).into_bytes(),
        ),
    ];
    for tile in tiles::all_tiles(ENTRIES) {
        let bytes = match tile.kind {
            TileKind::Hashes { .. } => tile.nodes().iter().flat_map(|id| stored[id]).collect(),
            TileKind::Entries => {
                let texts: Vec<String> = tile.entries().map(entry).collect();
                tiles::entry_bundle(texts.iter().map(|t| t.as_bytes())).unwrap()
            }
        };
        out.push((tile.path(), bytes));
    }
    out
}

#[test]
fn the_published_tlog_vectors_are_reproduced_byte_for_byte() {
    let files = files();
    if std::env::var_os("GOVIT_WRITE_VECTORS").is_some() {
        for (path, bytes) in &files {
            let path = dir().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    for (path, bytes) in &files {
        let stored = std::fs::read(dir().join(path))
            .unwrap_or_else(|e| panic!("tests/vectors/tlog/{path}: {e}"));
        assert_eq!(&stored, bytes, "tests/vectors/tlog/{path} differs");
    }
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"tile/0/000"));
    assert!(paths.contains(&"tile/0/001.p/44"));
    assert!(paths.contains(&"tile/1/000.p/1"));
    assert!(paths.contains(&"tile/entries/001.p/44"));
}

#[test]
fn the_published_checkpoint_verifies_with_the_published_keys() {
    let read = |p: &str| std::fs::read_to_string(dir().join(p)).unwrap();
    let note = Note::parse(&read("checkpoint")).unwrap();
    let log = Verifier::parse(read("log.vkey").trim()).unwrap();
    let witness = Verifier::parse(read("witness.vkey").trim()).unwrap();
    assert_eq!(note.verify(&log), Ok(vec![0]));
    assert_eq!(note.verify(&witness), Ok(vec![TIMESTAMP]));
    let checkpoint = Checkpoint::parse(&note.text).unwrap();
    let leaves: Vec<merkle::Hash> = (0..ENTRIES)
        .map(|i| merkle::leaf_hash(entry(i).as_bytes()))
        .collect();
    assert_eq!(checkpoint.root, merkle::root(&leaves));
}

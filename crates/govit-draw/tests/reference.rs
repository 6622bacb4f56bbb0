//! The two hand-written pieces the draw spec needs byte-exact — RFC 8785 canonical JSON and the
//! RFC 6962 Merkle tree — checked two ways: against vectors other implementations publish, and
//! against a well-kept independent crate of each over many generated inputs. An inspector's
//! tool built on any standard library must agree with ours, so ours must agree with theirs.

use ct_merkle::{ConsistencyProof, InclusionProof, RootHash, mem_backed_tree::MemoryBackedTree};
use govit_draw::{
    jcs::canonical,
    merkle::{self, Hash},
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use sha2_digest011::Sha256;

fn hex32(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn hexes(texts: &[&str]) -> Vec<Hash> {
    texts.iter().map(|t| hex32(t)).collect()
}

// transparency-dev/merkle, testonly/constants.go: LeafInputs, RootHashes and NodeHashes.
const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/// Level 0 (leaf hashes) of NodeHashes.
const CT_LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

fn ct_leaf_hashes() -> Vec<Hash> {
    CT_LEAVES
        .iter()
        .map(|l| merkle::leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

#[test]
fn leaf_hashes_and_roots_match_the_certificate_transparency_vectors() {
    let leaves = ct_leaf_hashes();
    assert_eq!(leaves, hexes(&CT_LEAF_HASHES));
    for (size, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(
            hex::encode(merkle::root(&leaves[..size])),
            *want,
            "root of the first {size} leaves"
        );
    }
}

#[test]
fn proofs_match_the_published_audit_paths() {
    let leaves = ct_leaf_hashes();
    // Inclusion: (index, size, path), as transparency-dev/merkle's proof tests list them.
    let inclusion: [(usize, usize, &[&str]); 4] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    for (index, size, path) in inclusion {
        let proof = merkle::inclusion_proof(index, &leaves[..size]);
        assert_eq!(proof, hexes(path), "inclusion of {index} in {size}");
        let root = hex32(CT_ROOTS[size]);
        assert!(merkle::verify_inclusion(
            index as u64,
            size as u64,
            &leaves[index],
            &proof,
            &root
        ));
    }
    // Consistency: (old size, new size, proof).
    let consistency: [(usize, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            2,
            8,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, path) in consistency {
        let proof = merkle::consistency_proof(old, &leaves[..new]);
        assert_eq!(proof, hexes(path), "consistency of {old} with {new}");
        assert!(merkle::verify_consistency(
            old as u64,
            new as u64,
            &hex32(CT_ROOTS[old]),
            &hex32(CT_ROOTS[new]),
            &proof
        ));
    }
}

fn flatten(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Every root, inclusion proof and consistency proof of every tree up to 70 leaves, compared
/// byte for byte with ct-merkle, and each side's proofs accepted by the other's verifier.
#[test]
fn the_tree_agrees_with_ct_merkle_for_every_size_index_and_prefix() {
    let entries: Vec<Vec<u8>> = (0..70u32)
        .map(|i| format!("entry {i} {}", "x".repeat((i % 5) as usize)).into_bytes())
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    let mut theirs: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut their_roots: Vec<RootHash<Sha256>> = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        theirs.push(entry.clone());
        let size = n + 1;
        let ours = &leaves[..size];
        let their_root = theirs.root();
        assert_eq!(
            their_root.as_bytes().as_slice(),
            merkle::root(ours),
            "root at {size}"
        );
        for (index, entry) in entries.iter().enumerate().take(size) {
            let proof = merkle::inclusion_proof(index, ours);
            let their_proof = theirs.prove_inclusion(index);
            assert_eq!(
                their_proof.as_bytes(),
                flatten(&proof),
                "inclusion {index}/{size}"
            );
            let as_theirs = InclusionProof::<Sha256>::from_bytes(flatten(&proof));
            their_root
                .verify_inclusion(entry, index as u64, &as_theirs)
                .unwrap_or_else(|e| {
                    panic!("ct-merkle refuses our inclusion {index}/{size}: {e:?}")
                });
        }
        for (old, old_root) in their_roots.iter().enumerate().map(|(i, r)| (i + 1, r)) {
            let proof = merkle::consistency_proof(old, ours);
            let their_proof = theirs.prove_consistency(size - old);
            assert_eq!(
                their_proof.as_bytes(),
                flatten(&proof),
                "consistency {old}->{size}"
            );
            let as_theirs = ConsistencyProof::<Sha256>::try_from_bytes(flatten(&proof)).unwrap();
            their_root
                .verify_consistency(old_root, &as_theirs)
                .unwrap_or_else(|e| {
                    panic!("ct-merkle refuses our consistency {old}->{size}: {e:?}")
                });
            let their_hashes: Vec<Hash> = their_proof
                .as_bytes()
                .chunks(32)
                .map(|c| c.try_into().unwrap())
                .collect();
            assert!(merkle::verify_consistency(
                old as u64,
                size as u64,
                &merkle::root(&leaves[..old]),
                &merkle::root(ours),
                &their_hashes
            ));
        }
        their_roots.push(their_root);
    }
}

/// cyberphone/json-canonicalization testdata (the RFC 8785 authors' own), for every input
/// within the values draw-v1 admits. `values.json` and `structures.json` hold fractional
/// numbers, which the draw spec excludes; those are refused, never canonicalized wrongly.
#[test]
fn canonical_json_matches_the_rfc_8785_reference_vectors() {
    let vectors: [(&str, &str); 4] = [
        (
            "{\n  \"peach\": \"This sorting order\",\n  \"péché\": \"is wrong according to French\",\n  \"pêche\": \"but canonicalization MUST\",\n  \"sin\":   \"ingnore locale\"\n}\n",
            "{\"peach\":\"This sorting order\",\"péché\":\"is wrong according to French\",\"pêche\":\"but canonicalization MUST\",\"sin\":\"ingnore locale\"}",
        ),
        (
            "{\n  \"Unnormalized Unicode\":\"\\u1e0d\\u0307\"\n}\n",
            "{\"Unnormalized Unicode\":\"\u{1e0d}\u{307}\"}",
        ),
        (
            "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"1\": \"One\",\n  \"\\u0080\": \"Control\\u007f\",\n  \"\\ud83d\\ude02\": \"Smiley\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"</script>\": \"Browser Challenge\"\n}\n",
            "{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"\u{1f602}\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        ),
        (
            "    \"this is a test string 1235\"",
            "\"this is a test string 1235\"",
        ),
    ];
    for (input, want) in vectors {
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(String::from_utf8(canonical(&value).unwrap()).unwrap(), want);
    }
    // RFC 8785 §3.2.3: property names sort by UTF-16 code units, so U+1F600 (D83D DE00) sorts
    // before U+FB33 although its code point is larger.
    let sorting: Value = serde_json::from_str(
        r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
    )
    .unwrap();
    let text = String::from_utf8(canonical(&sorting).unwrap()).unwrap();
    let positions: Vec<usize> = ["\\r", "1", "\u{80}", "ö", "€", "\u{1f600}", "\u{fb33}"]
        .iter()
        .map(|key| text.find(&format!("\"{key}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    for fractional in ["{\"\\n\": 56.0}", "[333333333.33333329]", "[1E30]", "[-1]"] {
        let value: Value = serde_json::from_str(fractional).unwrap();
        assert!(canonical(&value).is_err(), "{fractional} must be refused");
    }
}

fn random_string(rng: &mut ChaCha20Rng) -> String {
    // Mostly ASCII, with the characters canonical JSON treats specially: controls, quote,
    // backslash, DEL, Latin-1, BMP letters, surrogate-pair emoji.
    const SPECIAL: [char; 12] = [
        '\u{0}',
        '\u{8}',
        '\t',
        '\n',
        '\u{c}',
        '\r',
        '\u{1f}',
        '"',
        '\\',
        '\u{7f}',
        '\u{e9}',
        '\u{1f600}',
    ];
    let len = rng.next_u32() % 12;
    (0..len)
        .map(|_| match rng.next_u32() % 6 {
            0 => SPECIAL[(rng.next_u32() % 12) as usize],
            1 => char::from_u32(0x4e00 + rng.next_u32() % 0x500).unwrap(),
            2 => char::from_u32(0xfb00 + rng.next_u32() % 0x40).unwrap_or('x'),
            _ => char::from(b'a' + (rng.next_u32() % 26) as u8),
        })
        .collect()
}

fn random_value(rng: &mut ChaCha20Rng, depth: u32) -> Value {
    match rng.next_u32() % if depth == 0 { 4 } else { 6 } {
        0 => Value::Null,
        1 => Value::Bool(rng.next_u32().is_multiple_of(2)),
        2 => json!(rng.next_u64() % (1 << 53)),
        3 => Value::String(random_string(rng)),
        4 => Value::Array(
            (0..rng.next_u32() % 5)
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.next_u32() % 6 {
                map.insert(random_string(rng), random_value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// Two thousand generated documents, canonicalized by this crate and by serde_jcs.
#[test]
fn canonical_json_agrees_with_serde_jcs_on_generated_documents() {
    let mut rng = ChaCha20Rng::seed_from_u64(8785);
    for case in 0..2000 {
        let value = random_value(&mut rng, 4);
        let ours = canonical(&value).unwrap();
        let theirs = serde_jcs::to_vec(&value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "case {case}: {value}"
        );
    }
}

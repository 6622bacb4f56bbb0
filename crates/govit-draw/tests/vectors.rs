//! The published test vectors under `tests/vectors/draw-v1/`: each is a complete record made by
//! this implementation. The test rebuilds each from its scenario and compares it with the file,
//! and verifies the file as an inspector would. `GOVIT_WRITE_VECTORS=1` rewrites the files.

use std::{collections::BTreeMap, path::PathBuf};

use govit_draw::{DrawInput, Exclusion, Requirement, draw};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/draw-v1")
}

fn secret(label: &str) -> [u8; 32] {
    Sha256::digest(format!("govit test vector secret: {label}")).into()
}

fn ids(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:04}")).collect()
}

struct Scenario {
    file: &'static str,
    description: &'static str,
    requirements: Vec<(&'static str, u64, u64)>,
    candidates: Vec<(&'static str, Vec<String>)>,
    exclusions: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    witness: &'static str,
    secret: [u8; 32],
}

fn build(s: &Scenario) -> (DrawInput, [u8; 32], &'static str) {
    let input = DrawInput {
        protocol: "govit-draw/v1".into(),
        draw_id: format!("d-{}", s.file.trim_end_matches(".json")),
        project_id: "2026-0042".into(),
        stage: "PRELIMINARY_REVIEW".into(),
        opened_at: "2026-11-28T05:00:00Z".into(),
        requirements: s
            .requirements
            .iter()
            .map(|(c, count, alternates)| Requirement {
                category: (*c).into(),
                count: *count,
                alternates: *alternates,
            })
            .collect(),
        candidates: s
            .candidates
            .iter()
            .map(|(c, ids)| ((*c).to_string(), ids.clone()))
            .collect::<BTreeMap<_, _>>(),
        exclusions: s
            .exclusions
            .iter()
            .map(|(c, e, r)| Exclusion {
                category: (*c).into(),
                expert_id: (*e).into(),
                reasons: r.iter().map(|x| x.to_string()).collect(),
            })
            .collect(),
        server_commitment: draw::commitment(&s.secret),
    };
    (input, s.secret, s.witness)
}

fn scenarios() -> Vec<Scenario> {
    let spec_secret: [u8; 32] =
        hex::decode("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap();
    let e = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        Scenario {
            file: "01-one-category.json",
            description: "one category, three selected and one alternate from eight",
            requirements: vec![("software", 3, 1)],
            candidates: vec![("software", ids("s", 1..=8))],
            exclusions: vec![],
            witness: "dice: 4 1 6 6 2",
            secret: secret("one"),
        },
        Scenario {
            file: "02-overlapping-categories.json",
            description: "three categories whose candidate lists share experts; each serves at most one",
            requirements: vec![("network", 2, 1), ("security", 2, 1), ("software", 2, 2)],
            candidates: vec![
                ("network", e(&["x01", "x02", "x03", "x04", "x05", "x06"])),
                ("security", e(&["x03", "x04", "x05", "x07", "x08"])),
                (
                    "software",
                    e(&["x01", "x04", "x06", "x08", "x09", "x10", "x11"]),
                ),
            ],
            exclusions: vec![(
                "security",
                "x12",
                vec!["DECLARED_CONFLICT", "EMPLOYER_CONFLICT"],
            )],
            witness: "beacon 2026-11-28T05:00Z 9f3c",
            secret: secret("overlap"),
        },
        Scenario {
            file: "03-alternates-beyond-pool.json",
            description: "five alternates asked where only two experts remain: m is capped at the pool",
            requirements: vec![("archives", 2, 5)],
            candidates: vec![("archives", e(&["a1", "a2", "a3", "a4"]))],
            exclusions: vec![("archives", "a5", vec!["APPOINTMENT_EXPIRED"])],
            witness: "lottery 07-19-23-31-44",
            secret: secret("beyond"),
        },
        Scenario {
            file: "04-insufficient.json",
            description: "the first category takes experts the second needed: INSUFFICIENT, no result",
            requirements: vec![("alpha", 2, 1), ("beta", 2, 0)],
            candidates: vec![
                ("alpha", e(&["b1", "b2", "b3"])),
                ("beta", e(&["b1", "b2", "b3"])),
            ],
            exclusions: vec![],
            witness: "dice: 1 1 2",
            secret: secret("insufficient"),
        },
        Scenario {
            file: "05-empty-witness.json",
            description: "no witness (deployment policy allows it): witness_entropy is the empty string",
            requirements: vec![("finance", 2, 1)],
            candidates: vec![("finance", ids("f", 1..=6))],
            exclusions: vec![
                ("finance", "f0007", vec!["UNAVAILABLE"]),
                ("finance", "f0008", vec!["INACTIVE"]),
            ],
            witness: "",
            secret: secret("empty"),
        },
        Scenario {
            file: "06-unicode-witness.json",
            description: "witness entropy with CJK, an emoji, a combining accent, a quote, a backslash and a newline",
            requirements: vec![("network", 1, 1)],
            candidates: vec![("network", ids("n", 1..=5))],
            exclusions: vec![],
            witness: "骰子 3-5-6 🎲 é \"quoted\" \\ back\nslash",
            secret: secret("unicode"),
        },
        Scenario {
            file: "07-large-pool.json",
            description: "1,200 candidates over two categories, 300 of them in both",
            requirements: vec![("data", 5, 3), ("egov", 7, 4)],
            candidates: vec![("data", ids("p", 1..=750)), ("egov", ids("p", 451..=1200))],
            exclusions: vec![("egov", "q0001", vec!["WORKLOAD_LIMIT"])],
            witness: "public lottery draw 2026-11-27 #128: 04 11 17 25 30 + 08",
            secret: secret("large"),
        },
        Scenario {
            file: "08-spec-vector.json",
            description: "the vector printed in the draw-v1 specification",
            requirements: vec![("network", 2, 1), ("software", 3, 2)],
            candidates: vec![
                ("network", e(&["e01", "e02", "e03", "e04", "e05"])),
                (
                    "software",
                    e(&["e03", "e05", "e06", "e07", "e08", "e09", "e10"]),
                ),
            ],
            exclusions: vec![("software", "e11", vec!["EMPLOYER_CONFLICT"])],
            witness: "骰子 3-5-6",
            secret: spec_secret,
        },
    ]
}

fn record_json(s: &Scenario) -> Value {
    let (mut input, secret, witness) = build(s);
    if s.file == "08-spec-vector.json" {
        input.draw_id = "d-1".into();
        input.project_id = "p-1".into();
    }
    let record = draw::execute(&input, &secret, witness).unwrap();
    let mut value = serde_json::to_value(&record).unwrap();
    value["description"] = json!(s.description);
    value
}

#[test]
fn the_published_vectors_are_this_implementations_and_verify() {
    let write = std::env::var_os("GOVIT_WRITE_VECTORS").is_some();
    for s in scenarios() {
        let path = dir().join(s.file);
        let expected = record_json(&s);
        if write {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&expected).unwrap() + "\n",
            )
            .unwrap();
        }
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let on_disk: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            on_disk, expected,
            "{} differs from what this implementation produces",
            s.file
        );
        draw::verify(&text).unwrap_or_else(|m| panic!("{}: {m}", s.file));
    }
}

#[test]
fn the_vectors_cover_what_they_claim() {
    let load =
        |f: &str| serde_json::from_slice::<Value>(&std::fs::read(dir().join(f)).unwrap()).unwrap();
    assert_eq!(load("04-insufficient.json")["status"], "INSUFFICIENT");
    assert!(
        load("04-insufficient.json")
            .get("result")
            .is_none_or(Value::is_null)
    );
    assert_eq!(load("05-empty-witness.json")["witness_entropy"], "");
    let beyond = load("03-alternates-beyond-pool.json");
    assert_eq!(
        beyond["result"]["archives"]["alternates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let large = load("07-large-pool.json");
    let total: usize = large["input"]["candidates"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert!(total >= 1000);
    let spec = load("08-spec-vector.json");
    assert_eq!(
        spec["input_hash"],
        "97d3d41a4c62d9d77eb6965fb121dcd5994f116c9b687efe70094832150d0d47"
    );
    assert_eq!(
        spec["seed"],
        "2fd8cf73668aa81789f3ba13e45e4c58055ba3966e8909e1a9c0147bb8652003"
    );
    // Experts in several categories serve at most one.
    let overlap = load("02-overlapping-categories.json");
    let mut seen = std::collections::BTreeSet::new();
    for sel in overlap["result"].as_object().unwrap().values() {
        for id in sel["selected"]
            .as_array()
            .unwrap()
            .iter()
            .chain(sel["alternates"].as_array().unwrap())
        {
            assert!(
                seen.insert(id.as_str().unwrap().to_owned()),
                "{id} drawn twice"
            );
        }
    }
}

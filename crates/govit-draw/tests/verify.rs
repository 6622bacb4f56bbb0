//! `verify` accepts a true record and names the first thing wrong in an altered one.

use govit_draw::{DrawInput, Exclusion, Requirement, draw};
use serde_json::Value;

fn record() -> Value {
    let input = DrawInput {
        protocol: "govit-draw/v1".into(),
        draw_id: "d-verify".into(),
        project_id: "2026-0001".into(),
        stage: "ACCEPTANCE".into(),
        opened_at: "2026-11-28T06:00:00Z".into(),
        requirements: vec![Requirement {
            category: "security".into(),
            count: 2,
            alternates: 2,
        }],
        candidates: [(
            "security".to_string(),
            (1..=9).map(|i| format!("x{i:02}")).collect(),
        )]
        .into(),
        exclusions: vec![Exclusion {
            category: "security".into(),
            expert_id: "x10".into(),
            reasons: vec!["INACTIVE".into()],
        }],
        server_commitment: draw::commitment(&[9u8; 32]),
    };
    serde_json::to_value(draw::execute(&input, &[9u8; 32], "lottery 2026-11-28: 07 19 23").unwrap())
        .unwrap()
}

fn check(v: &Value) -> Result<draw::Report, draw::Mismatch> {
    draw::verify(&serde_json::to_vec(v).unwrap())
}

#[test]
fn a_true_record_verifies_with_a_report_of_each_check() {
    let report = check(&record()).unwrap();
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.contains("matches the commitment"))
    );
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.starts_with("security: selected"))
    );
}

#[test]
fn a_swapped_expert_is_caught_in_the_result() {
    let mut r = record();
    let selected = r["result"]["security"]["selected"].as_array_mut().unwrap();
    selected[0] = Value::String(if selected[0] == "x01" { "x02" } else { "x01" }.into());
    assert_eq!(check(&r).unwrap_err().check, "result");
}

#[test]
fn a_changed_candidate_list_is_caught_by_the_input_hash() {
    let mut r = record();
    r["input"]["candidates"]["security"]
        .as_array_mut()
        .unwrap()
        .pop();
    assert_eq!(check(&r).unwrap_err().check, "input_hash");
}

#[test]
fn a_wrong_secret_is_caught_against_the_commitment() {
    let mut r = record();
    r["server_secret"] = Value::String(hex::encode([8u8; 32]));
    assert_eq!(check(&r).unwrap_err().check, "server_secret");
}

#[test]
fn a_changed_witness_string_is_caught_by_the_seed() {
    let mut r = record();
    r["witness_entropy"] = Value::String("lottery 2026-11-28: 07 19 24".into());
    assert_eq!(check(&r).unwrap_err().check, "seed");
}

#[test]
fn a_claimed_status_that_does_not_rerun_is_caught() {
    let mut r = record();
    r["status"] = Value::String("INSUFFICIENT".into());
    assert_eq!(check(&r).unwrap_err().check, "status");
}

#[test]
fn an_input_with_a_hidden_extra_key_is_refused() {
    let mut r = record();
    r["input"]["note"] = Value::String("chosen by hand".into());
    let recomputed = govit_draw::jcs::canonical(&r["input"]).unwrap();
    r["input_hash"] = Value::String(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        &recomputed,
    )));
    assert_eq!(check(&r).unwrap_err().check, "input");
}

#[test]
fn an_impossible_opening_time_is_refused() {
    let mut r = record();
    r["input"]["opened_at"] = Value::String("2026-02-30T05:00:00Z".into());
    let recomputed = govit_draw::jcs::canonical(&r["input"]).unwrap();
    r["input_hash"] = Value::String(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        &recomputed,
    )));
    let m = check(&r).unwrap_err();
    assert_eq!(m.check, "input");
    assert!(m.detail.contains("opened_at"), "{}", m.detail);
}

#[test]
fn a_record_with_a_repeated_key_is_refused() {
    let text = serde_json::to_string(&record()).unwrap();
    let doubled = text.replacen(
        "\"witness_entropy\":",
        "\"witness_entropy\":\"other\",\"witness_entropy\":",
        1,
    );
    let m = draw::verify(doubled.as_bytes()).unwrap_err();
    assert_eq!(m.check, "json");
}

//! The inspector's tools as an inspector runs them: `govit verify draw`, `govit draws export`,
//! `govit verify log`, and the roster commands, against a running registry.

use std::path::{Path, PathBuf};

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::experts::v1::{self as epb};
use serde_json::Value;

use crate::helpers::*;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn govit(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(args)
        .env("GOVIT_JWT_HS256_KEY", std::str::from_utf8(KEY).unwrap())
        .env_remove("GOVIT_TOKEN")
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/draw-v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn verify_draw_accepts_every_published_vector() {
    let files = vectors();
    assert!(files.len() >= 8);
    for file in files {
        let run = govit(&["verify", "draw", file.to_str().unwrap()]).await;
        assert!(run.ok, "{}: {}{}", file.display(), run.stdout, run.stderr);
        assert!(run.stdout.contains("the draw reproduces"));
    }
}

#[tokio::test]
async fn verify_draw_rejects_altered_copies_naming_the_first_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let original: Value = serde_json::from_slice(&std::fs::read(&vectors()[1]).unwrap()).unwrap();
    let alter = |f: &dyn Fn(&mut Value)| {
        let mut v = original.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "swapped",
            alter(&|v| {
                let sel = v["result"]["network"]["selected"].as_array_mut().unwrap();
                sel.swap(0, 1);
            }),
            "result",
        ),
        (
            "candidates",
            alter(&|v| {
                v["input"]["candidates"]["security"]
                    .as_array_mut()
                    .unwrap()
                    .remove(0);
            }),
            "input_hash",
        ),
        (
            "secret",
            alter(&|v| v["server_secret"] = Value::String("11".repeat(32))),
            "server_secret",
        ),
        (
            "witness",
            alter(&|v| {
                v["witness_entropy"] = Value::String("beacon 2026-11-28T05:00Z 9f3d".into())
            }),
            "seed",
        ),
    ];
    for (name, value, check) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
        let run = govit(&["verify", "draw", path.to_str().unwrap()]).await;
        assert!(!run.ok, "{name} was accepted");
        assert!(
            run.stdout.contains(&format!("FAIL  {check}:")),
            "{name}: {}",
            run.stdout
        );
    }
}

#[tokio::test]
async fn an_inspector_exports_a_draw_and_checks_it_against_the_log_online_and_offline() {
    let r = spawn_registry(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    r.category("software").await;
    for i in 1..=6 {
        r.expert(expert(&format!("e{i}"), &["software"], 10 + i))
            .await;
    }
    let server = format!("http://{}", r.channel_addr());
    let office = r.client(Role::Office);
    let open = |p: &'static str| {
        let office = office.clone();
        async move {
            let mut o = office.clone();
            let d = o
                .open_draw(open_request(p, vec![requirement("software", 2, 1)]))
                .await
                .unwrap()
                .into_inner();
            o.execute_draw(epb::ExecuteDrawRequest { name: d.name })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = open("2026-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let head1 = dir.path().join("head1.json");
    let run = govit(&[
        "draws",
        "export",
        &first.draw_id,
        "--out",
        record.to_str().unwrap(),
        "--server",
        &server,
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    let run = govit(&["verify", "draw", record.to_str().unwrap()]).await;
    assert!(run.ok, "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("record hash {}", first.record_hash)),
        "{}",
        run.stdout
    );

    let key = r.service.public_key_hex();
    let run = govit(&[
        "verify",
        "log",
        "--server",
        &server,
        "--public-key",
        &key,
        "--draw",
        &first.draw_id,
        "--save-head",
        head1.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("execution of {} is entry", first.draw_id)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&first.record_hash));

    let second = open("2026-0002").await;
    let head2 = dir.path().join("head2.json");
    let entries = dir.path().join("entries.json");
    let run = govit(&[
        "verify",
        "log",
        "--server",
        &server,
        "--public-key",
        &key,
        "--since",
        head1.to_str().unwrap(),
        "--save-head",
        head2.to_str().unwrap(),
        "--save-entries",
        entries.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("is a prefix of this one"));

    // Offline, from the exported files.
    let run = govit(&[
        "verify",
        "log",
        "--public-key",
        &key,
        "--head",
        head2.to_str().unwrap(),
        "--entries",
        entries.to_str().unwrap(),
        "--draw",
        &second.draw_id,
        "--since",
        head1.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("entries hash to the signed root"));

    // A rewritten entry, a forged head and a foreign key are all caught.
    let mut tampered: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&entries).unwrap()).unwrap();
    tampered[0]["entry_json"] = Value::String(
        tampered[0]["entry_json"]
            .as_str()
            .unwrap()
            .replace("software", "softwarf"),
    );
    let bad_entries = dir.path().join("bad-entries.json");
    std::fs::write(&bad_entries, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let run = govit(&[
        "verify",
        "log",
        "--public-key",
        &key,
        "--head",
        head2.to_str().unwrap(),
        "--entries",
        bad_entries.to_str().unwrap(),
    ])
    .await;
    assert!(!run.ok);
    assert!(
        run.stdout
            .contains("FAIL  the entries do not hash to the head's root"),
        "{}",
        run.stdout
    );
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&head2).unwrap()).unwrap();
    forged["tree_size"] = Value::from(forged["tree_size"].as_u64().unwrap() - 1);
    let forged_head = dir.path().join("forged.json");
    std::fs::write(&forged_head, serde_json::to_vec(&forged).unwrap()).unwrap();
    let run = govit(&[
        "verify",
        "log",
        "--public-key",
        &key,
        "--head",
        forged_head.to_str().unwrap(),
        "--entries",
        entries.to_str().unwrap(),
    ])
    .await;
    assert!(!run.ok);
    assert!(
        run.stdout.contains("FAIL  tree head signature"),
        "{}",
        run.stdout
    );
    let other_key = hex::encode([9u8; 32]);
    let run = govit(&[
        "verify",
        "log",
        "--server",
        &server,
        "--public-key",
        &other_key,
    ])
    .await;
    assert!(!run.ok);
    assert!(
        run.stdout.contains("FAIL  tree head signature"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn rosters_go_in_and_come_out_through_the_cli() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let server = format!("http://{}", r.channel_addr());
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        format!(
            "expert_id,name,employer_credit_code,employer,source,title,categories,phone,email,id_number,appointment_start,appointment_end\n\
             c-1,Zhang San,{},Data Co,IT_ENTERPRISE,engineer,software,13800000001,z@x.example,{},2025-01-01,2027-12-31\n",
            credit_code(30),
            id_number(9)
        ),
    )
    .unwrap();
    let run = govit(&[
        "experts",
        "import",
        roster.to_str().unwrap(),
        "--server",
        &server,
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("created 1"), "{}", run.stdout);
    let out = dir.path().join("export.csv");
    let run = govit(&[
        "experts",
        "export",
        "--out",
        out.to_str().unwrap(),
        "--server",
        &server,
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(
        exported.contains(&format!(
            "c-1,Zhang San,{},Data Co,IT_ENTERPRISE,engineer,software,13800000001",
            credit_code(30)
        )),
        "{exported}"
    );
    // The export is a roster the import reads back: the same expert, updated.
    let run = govit(&[
        "experts",
        "import",
        out.to_str().unwrap(),
        "--server",
        &server,
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("created 0, updated 1"),
        "{}",
        run.stdout
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "expert_id,name\nx,y\n").unwrap();
    let run = govit(&[
        "experts",
        "import",
        bad.to_str().unwrap(),
        "--server",
        &server,
    ])
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("no column for phone"), "{}", run.stderr);
}

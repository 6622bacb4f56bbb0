//! The log in C2SP form: checkpoints signed as notes and cosigned by witnesses, tiles over
//! HTTP on the registry's listener, a static export, and `govit verify log` with a threshold
//! of witnesses. A registry that rewrites its history is refused by the witnesses and then by
//! the verifier.

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use ed25519_dalek::SigningKey;
use govit::witness::Witness;
use govit_draw::{
    merkle,
    note::{Checkpoint, Note, TYPE_COSIGNATURE_V1, Verifier},
    tiles,
};
use govit_experts::{DrawPolicy, ExpertsService, WitnessPeer};
use govit_platform::{Role, http};
use govit_proto::experts::v1 as epb;

use crate::helpers::*;

const ORIGIN: &str = "govit.test.gov/experts-log";

fn policy() -> DrawPolicy {
    DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    }
}

async fn get(url: &str, token: Option<&str>) -> http::Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    http::request(
        ::http::Method::GET,
        url,
        &headers,
        Vec::new(),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// A registry named ORIGIN with a pool and `draws` executed draws.
async fn registry_with_draws(
    database_url: &str,
    witnesses: Vec<WitnessPeer>,
    draws: usize,
) -> Registry {
    let service = ExpertsService::open(database_url, policy())
        .await
        .unwrap()
        .with_log(ORIGIN)
        .unwrap()
        .with_witnesses(witnesses);
    let r = serve_registry(service, database_url).await;
    if r.log_size().await == 0 {
        r.category("software").await;
        for i in 1..=8 {
            r.expert(expert(&format!("e{i:02}"), &["software"], 100 + i))
                .await;
        }
    }
    for i in 0..draws {
        let d = r
            .client(Role::Office)
            .open_draw(open_request(
                &format!("2026-{:04}", 500 + i),
                vec![requirement("software", 2, 1)],
            ))
            .await
            .unwrap()
            .into_inner();
        r.client(Role::Office)
            .execute_draw(epb::ExecuteDrawRequest { name: d.name })
            .await
            .unwrap();
    }
    r
}

async fn entries(r: &Registry) -> Vec<String> {
    r.client(Role::Inspector)
        .list_log_entries(epb::ListLogEntriesRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .map(|e| e.entry_json)
        .collect()
}

#[tokio::test]
async fn checkpoints_and_tiles_are_served_as_the_c2sp_specs_describe() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path(), "experts").await;
    let r = registry_with_draws(&url, Vec::new(), 2).await;
    let base = format!("http://{}", r.channel_addr());
    let log = Verifier::parse(&r.service.log_vkey()).unwrap();
    assert_eq!(log.name, ORIGIN);

    let reply = get(&format!("{base}/checkpoint"), None).await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain"));
    let note = Note::parse(std::str::from_utf8(&reply.body).unwrap()).unwrap();
    note.verify(&log).unwrap();
    let checkpoint = Checkpoint::parse(&note.text).unwrap();
    let size = r.log_size().await as u64;
    assert_eq!(
        (checkpoint.origin.as_str(), checkpoint.size),
        (ORIGIN, size)
    );

    let texts = entries(&r).await;
    let leaves: Vec<merkle::Hash> = texts
        .iter()
        .map(|e| merkle::leaf_hash(e.as_bytes()))
        .collect();
    assert_eq!(checkpoint.root, merkle::root(&leaves));
    let tile = format!("tile/0/000.p/{size}");
    let reply = get(&format!("{base}/{tile}"), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/octet-stream");
    assert_eq!(reply.body, leaves.concat());
    assert_eq!(
        get(&format!("{base}/tile/0/000.p/{}", size + 1), None)
            .await
            .status,
        404
    );
    assert_eq!(get(&format!("{base}/tile/0/000"), None).await.status, 404);
    assert_eq!(get(&format!("{base}/tile/0/0000"), None).await.status, 404);

    // Entry bundles name who was drawn: only the log's readers get them.
    let bundle = format!("{base}/tile/entries/000.p/{size}");
    assert_eq!(get(&bundle, None).await.status, 401);
    assert_eq!(get(&bundle, Some("not-a-token")).await.status, 401);
    let applicant = token(Role::Applicant, Some(&credit_code(1)), None);
    assert_eq!(get(&bundle, Some(&applicant)).await.status, 403);
    let reply = get(&bundle, Some(&token(Role::Inspector, None, None))).await;
    assert_eq!(reply.status, 200);
    let read = tiles::read_bundle(&reply.body).unwrap();
    assert_eq!(
        read,
        texts
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect::<Vec<_>>()
    );
}

/// A witness serving on its own port, as a bureau runs it.
async fn spawn_witness(dir: &Path, name: &str, log_vkey: &str) -> (WitnessPeer, Arc<Witness>) {
    let key = SigningKey::from_bytes(&rand_key(name));
    let witness = Arc::new(
        Witness::open(
            name,
            key,
            vec![Verifier::parse(log_vkey).unwrap()],
            &dir.join(format!("{}.db", name.replace('/', "_"))),
        )
        .await
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = witness.clone();
    tokio::spawn(
        async move { govit::witness::serve(serving, listener, std::future::pending()).await },
    );
    let peer = WitnessPeer::parse(&format!("http://{addr}={}", witness.vkey())).unwrap();
    (peer, witness)
}

fn rand_key(name: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(name.as_bytes()).into()
}

fn verify_args(
    log_vkey: &str,
    witnesses: &[&WitnessPeer],
    threshold: usize,
) -> govit::inspect::LogArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: govit::inspect::LogArgs,
    }
    let mut argv = vec![
        "verify".to_owned(),
        "--log-vkey".to_owned(),
        log_vkey.to_owned(),
    ];
    for w in witnesses {
        argv.push("--witness".into());
        argv.push(w.verifier.vkey());
    }
    argv.push("--threshold".into());
    argv.push(threshold.to_string());
    Wrapper::parse_from(argv).args
}

#[tokio::test]
async fn two_witnesses_cosign_and_a_rewritten_history_is_refused_by_them_and_the_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path(), "experts").await;
    let vkey = ExpertsService::open(&url, policy())
        .await
        .unwrap()
        .with_log(ORIGIN)
        .unwrap()
        .log_vkey();
    let (finance, finance_state) =
        spawn_witness(dir.path(), "witness.finance.test/govit", &vkey).await;
    let (audit, audit_state) = spawn_witness(dir.path(), "witness.audit.test/govit", &vkey).await;
    let peers = vec![finance.clone(), audit.clone()];
    let r = registry_with_draws(&url, peers.clone(), 1).await;

    let note = Note::parse(&r.service.publish_checkpoint().await.unwrap().note).unwrap();
    for w in [&finance, &audit] {
        assert_eq!(
            note.verify(&w.verifier).unwrap().len(),
            1,
            "{}",
            w.verifier.name
        );
    }
    let honest = Checkpoint::parse(&note.text).unwrap();
    // The log grows; the witnesses follow it with consistency proofs from what they saw.
    let r = registry_with_draws(&url, peers.clone(), 1).await;
    let grown = Note::parse(&r.service.publish_checkpoint().await.unwrap().note).unwrap();
    assert_eq!(grown.verify(&audit.verifier).unwrap().len(), 1);
    let grown_size = Checkpoint::parse(&grown.text).unwrap().size;
    assert!(grown_size > honest.size);

    // Through the registry's own listener, with the C2SP verifier and a threshold of two.
    let mut args = verify_args(&vkey, &[&finance, &audit], 2);
    args.remote.server = format!("http://{}", r.channel_addr());
    govit::inspect::verify_log(&settings(), &args)
        .await
        .unwrap();

    // The backdoor: the operator rewrites who was drawn in an early entry, rebuilds the tree
    // in the database, and carries on drawing.
    let first: String = sqlx::query_scalar("SELECT entry FROM log_entries WHERE idx = 1")
        .fetch_one(&r.service.db().pool)
        .await
        .unwrap();
    let forged = first.replacen("e0", "x0", 1);
    assert_ne!(forged, first);
    sqlx::query("UPDATE log_entries SET entry = $1, leaf_hash = $2 WHERE idx = 1")
        .bind(forged.clone())
        .bind(hex::encode(merkle::leaf_hash(forged.as_bytes())))
        .execute(&r.service.db().pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM log_nodes")
        .execute(&r.service.db().pool)
        .await
        .unwrap();
    let forked = registry_with_draws(&url, peers.clone(), 1).await;
    let note = Note::parse(&forked.service.publish_checkpoint().await.unwrap().note).unwrap();
    let checkpoint = Checkpoint::parse(&note.text).unwrap();
    assert!(checkpoint.size > grown_size);
    // Its own consistency proof from the cosigned head cannot hold: that is what the
    // witnesses check before they sign.
    let old_root = Checkpoint::parse(&grown.text).unwrap().root;
    let proof = forked
        .client(Role::Inspector)
        .get_consistency_proof(epb::GetConsistencyProofRequest {
            old_size: grown_size,
            new_size: checkpoint.size,
        })
        .await
        .unwrap()
        .into_inner()
        .hashes
        .iter()
        .map(|h| hex::decode(h).unwrap().try_into().unwrap())
        .collect::<Vec<merkle::Hash>>();
    assert!(!merkle::verify_consistency(
        grown_size,
        checkpoint.size,
        &old_root,
        &checkpoint.root,
        &proof
    ));
    for w in [&finance, &audit] {
        assert!(
            note.verify(&w.verifier).is_err(),
            "{} cosigned a fork",
            w.verifier.name
        );
    }
    for state in [&finance_state, &audit_state] {
        let (size, root) = state.latest(ORIGIN).await.unwrap().unwrap();
        assert_eq!(
            (size, root),
            (grown_size, Checkpoint::parse(&grown.text).unwrap().root)
        );
    }
    let mut args = verify_args(&vkey, &[&finance, &audit], 2);
    args.remote.server = format!("http://{}", forked.channel_addr());
    let refused = govit::inspect::verify_log(&settings(), &args)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("0 of the 2 witnesses cosigned"),
        "{refused}"
    );
}

fn settings() -> govit::config::Settings {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        global: govit::cli::GlobalArgs,
    }
    govit::config::Settings::resolve(&Wrapper::parse_from(["govit"]).global).unwrap()
}

fn govit_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_govit"))
}

/// Two `govit witness` processes, the registry asking them, `govit log export` and
/// `govit verify log --threshold 2` on the static copy: the whole path a bureau and an
/// inspector take, with files alone at the end.
#[tokio::test]
async fn a_head_cosigned_by_two_witness_processes_verifies_from_a_static_export() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path(), "experts").await;
    let vkey = ExpertsService::open(&url, policy())
        .await
        .unwrap()
        .with_log(ORIGIN)
        .unwrap()
        .log_vkey();
    let mut peers = Vec::new();
    let mut children = Vec::new();
    for name in ["witness.finance.test/govit", "witness.ndrc.test/govit"] {
        let key = dir.path().join(format!("{}.pem", name.replace('/', "_")));
        let printed = govit_command()
            .args(["witness", "--name", name, "--key"])
            .arg(&key)
            .args(["--init-key", "--print-vkey"])
            .output()
            .unwrap();
        assert!(printed.status.success(), "{printed:?}");
        let witness_vkey = String::from_utf8(printed.stdout).unwrap().trim().to_owned();
        assert_eq!(
            Verifier::parse(&witness_vkey).unwrap().kind,
            TYPE_COSIGNATURE_V1
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = govit_command()
            .args(["witness", "--name", name, "--key"])
            .arg(&key)
            .arg("--state")
            .arg(dir.path().join(format!("{}.db", name.replace('/', "_"))))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--log", &vkey])
            .spawn()
            .unwrap();
        children.push(KillOnDrop(child));
        peers.push(WitnessPeer::parse(&format!("http://127.0.0.1:{port}={witness_vkey}")).unwrap());
    }
    let r = registry_with_draws(&url, peers.clone(), 2).await;
    // The witnesses start in their own time; the registry asks again until both answered.
    let mut note = Note::parse(&r.service.publish_checkpoint().await.unwrap().note).unwrap();
    for _ in 0..100 {
        if peers.iter().all(|p| note.verify(&p.verifier).is_ok()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        note = Note::parse(&r.service.publish_checkpoint().await.unwrap().note).unwrap();
    }

    let export = dir.path().join("static");
    let exported = govit_command()
        .args(["log", "export"])
        .arg(&export)
        .args(["--entries", "--database-url", &url, "--log-origin", ORIGIN])
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    assert!(export.join("checkpoint").exists());
    assert!(export.join("tile/0/000.p/").exists() || export.join("tile/0").exists());

    let mut verify = govit_command();
    verify
        .args([
            "verify",
            "log",
            "--log-vkey",
            &vkey,
            "--threshold",
            "2",
            "--static",
        ])
        .arg(&export);
    for p in &peers {
        verify.args(["--witness", &p.verifier.vkey()]);
    }
    let verified = verify.output().unwrap();
    let printed = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{printed}\n{verified:?}");
    assert!(
        printed.contains("2 witnesses cosigned (threshold 2)"),
        "{printed}"
    );
    assert!(
        printed.contains("entry bundles hash to their leaves"),
        "{printed}"
    );
    assert!(printed.contains("the log checks out"), "{printed}");

    // A tile altered in the copy is caught from the files alone.
    let size = Checkpoint::parse(&note.text).unwrap().size;
    let tile = export.join(format!("tile/0/000.p/{size}"));
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let refused = verify.output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("do not hash to the checkpoint's root")
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The published vectors pass the verifier as the docs tell an implementer to run it.
#[test]
fn the_published_tlog_vectors_verify_from_files_alone() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/tlog");
    let read = |f: &str| {
        std::fs::read_to_string(vectors.join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    let out = govit_command()
        .args(["verify", "log", "--static"])
        .arg(&vectors)
        .args([
            "--log-vkey",
            &read("log.vkey"),
            "--witness",
            &read("witness.vkey"),
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}\n{out:?}");
    assert!(
        printed.contains("300 leaf hashes in the tiles hash to the checkpoint's root"),
        "{printed}"
    );
    assert!(
        printed.contains("2 entry bundles hash to their leaves"),
        "{printed}"
    );
}

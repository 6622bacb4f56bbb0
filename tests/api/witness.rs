//! The witness (`govit witness`, c2sp.org/tlog-witness) over real HTTP: it cosigns only
//! append-only growth from the last checkpoint it cosigned, never two roots for one size, and
//! remembers what it cosigned across restarts.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::SigningKey;
use govit::witness::{SIZE_CONTENT_TYPE, Witness};
use govit_draw::{
    merkle::{self, Hash},
    note::{Checkpoint, Note, TYPE_COSIGNATURE_V1, TYPE_ED25519, Verifier},
};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

const ORIGIN: &str = "registry.govit.example/experts-log";
const WITNESS_NAME: &str = "witness.finance.example/govit";

/// A log the test controls: its key and its entries.
struct Log {
    key: SigningKey,
    leaves: Vec<Hash>,
}

impl Log {
    fn new(seed: u8, entries: usize, history: &str) -> Self {
        let mut log = Log {
            key: SigningKey::from_bytes(&[seed; 32]),
            leaves: Vec::new(),
        };
        log.grow(entries, history);
        log
    }

    fn grow(&mut self, entries: usize, history: &str) {
        let start = self.leaves.len();
        self.leaves.extend(
            (start..start + entries)
                .map(|i| merkle::leaf_hash(format!("{history} entry {i}").as_bytes())),
        );
    }

    fn vkey(&self) -> String {
        Verifier::new(ORIGIN, TYPE_ED25519, self.key.verifying_key())
            .unwrap()
            .vkey()
    }

    fn checkpoint(&self, size: usize) -> Note {
        let text = Checkpoint {
            origin: ORIGIN.to_owned(),
            size: size as u64,
            root: merkle::root(&self.leaves[..size]),
        }
        .text();
        let mut note = Note::new(&text).unwrap();
        note.sign(ORIGIN, &self.key);
        note
    }

    /// The add-checkpoint body from `old` to `size`, with the proof of this log's history.
    fn request(&self, old: usize, size: usize) -> String {
        let proof = merkle::consistency_proof(old, &self.leaves[..size]);
        body(old as u64, &proof, &self.checkpoint(size))
    }
}

fn body(old: u64, proof: &[Hash], note: &Note) -> String {
    let mut out = format!("old {old}\n");
    for hash in proof {
        out.push_str(&B64.encode(hash));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&note.encode());
    out
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

struct TestWitness {
    addr: SocketAddr,
    witness: Arc<Witness>,
    state: PathBuf,
    key: SigningKey,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

async fn open(state: &Path, key: &SigningKey, logs: &[&Log]) -> Arc<Witness> {
    let logs = logs
        .iter()
        .map(|l| Verifier::parse(&l.vkey()).unwrap())
        .collect();
    Arc::new(
        Witness::open(WITNESS_NAME, key.clone(), logs, state)
            .await
            .unwrap(),
    )
}

async fn spawn_witness(logs: &[&Log]) -> TestWitness {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("witness.db");
    let key = SigningKey::from_bytes(&[42; 32]);
    let witness = open(&state, &key, logs).await;
    let mut test = TestWitness {
        addr: "127.0.0.1:0".parse().unwrap(),
        witness,
        state,
        key,
        _dir: dir,
        shutdown: None,
        handle: None,
    };
    test.start().await;
    test
}

impl TestWitness {
    async fn start(&mut self) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.handle = Some(tokio::spawn(govit::witness::serve(
            Arc::clone(&self.witness),
            listener,
            async {
                let _ = rx.await;
            },
        )));
    }

    /// Stops the server and reopens a new witness on the same state file, as after a restart.
    async fn restart(&mut self, logs: &[&Log]) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
        self.witness.close().await;
        self.witness = open(&self.state, &self.key, logs).await;
        self.start().await;
    }

    async fn post(&self, body: impl Into<Vec<u8>>) -> Reply {
        self.send(http::Method::POST, body.into()).await
    }

    async fn send(&self, method: http::Method, body: Vec<u8>) -> Reply {
        // No idle connections kept, so that a restart's graceful shutdown has none to wait for.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http::<Full<bytes::Bytes>>();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}/add-checkpoint", self.addr))
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn latest(&self) -> Option<(u64, Hash)> {
        self.witness.latest(ORIGIN).await.unwrap()
    }
}

impl Drop for TestWitness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Checks the reply is a cosignature of `checkpoint` by the witness, made about now.
fn assert_cosigned(reply: &Reply, witness: &Witness, checkpoint: &Note) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.starts_with("\u{2014} "), "{}", reply.body);
    assert_eq!(reply.body.lines().count(), 1);
    let published = Verifier::parse(&witness.vkey()).unwrap();
    assert_eq!(published.kind, TYPE_COSIGNATURE_V1);
    assert_eq!(published.name, WITNESS_NAME);
    // As a client would: append the reply to the checkpoint and verify with the witness key.
    let cosigned = Note::parse(&format!("{}{}", checkpoint.encode(), reply.body)).unwrap();
    let times = cosigned.verify(&published).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(times.len(), 1);
    assert!(
        times[0].abs_diff(now) <= 60,
        "timestamp {} vs {now}",
        times[0]
    );
}

fn root_of(log: &Log, size: usize) -> Hash {
    merkle::root(&log.leaves[..size])
}

#[tokio::test]
async fn the_first_checkpoint_from_old_zero_is_cosigned_and_recorded() {
    let log = Log::new(1, 5, "a");
    let w = spawn_witness(&[&log]).await;
    assert_eq!(w.latest().await, None);

    let reply = w.post(log.request(0, 5)).await;
    assert_cosigned(&reply, &w.witness, &log.checkpoint(5));
    assert_eq!(w.latest().await, Some((5, root_of(&log, 5))));
}

#[tokio::test]
async fn growth_with_a_valid_consistency_proof_is_cosigned() {
    let mut log = Log::new(1, 3, "a");
    let w = spawn_witness(&[&log]).await;
    assert_eq!(w.post(log.request(0, 3)).await.status, 200);

    for (old, grow) in [(3, 4), (7, 1), (8, 9)] {
        log.grow(grow, "a");
        let new = old + grow;
        let reply = w.post(log.request(old, new)).await;
        assert_cosigned(&reply, &w.witness, &log.checkpoint(new));
        assert_eq!(w.latest().await, Some((new as u64, root_of(&log, new))));
    }
    // Resubmitting the checkpoint it holds is consistent with itself.
    let reply = w.post(log.request(17, 17)).await;
    assert_cosigned(&reply, &w.witness, &log.checkpoint(17));
}

#[tokio::test]
async fn a_stale_old_size_gets_409_with_the_last_cosigned_size() {
    let mut log = Log::new(1, 7, "a");
    let w = spawn_witness(&[&log]).await;
    assert_eq!(w.post(log.request(0, 7)).await.status, 200);
    log.grow(3, "a");

    for old in [0, 3, 8] {
        let reply = w.post(log.request(old, 10)).await;
        assert_eq!(reply.status, 409, "old {old}: {}", reply.body);
        assert_eq!(reply.content_type, SIZE_CONTENT_TYPE);
        assert_eq!(reply.body, "7\n");
    }
    // Nor may a client roll the witness back to a smaller tree.
    let reply = w.post(log.request(0, 5)).await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "7\n"));
    assert_eq!(w.latest().await, Some((7, root_of(&log, 7))));
}

#[tokio::test]
async fn a_bad_consistency_proof_gets_422_and_changes_nothing() {
    let mut log = Log::new(1, 6, "a");
    let w = spawn_witness(&[&log]).await;
    assert_eq!(w.post(log.request(0, 6)).await.status, 200);
    log.grow(5, "a");

    let mut proof = merkle::consistency_proof(6, &log.leaves);
    let tampered = {
        let mut p = proof.clone();
        p[0][0] ^= 1;
        p
    };
    proof.pop();
    let checkpoint = log.checkpoint(11);
    for bad in [tampered, proof, Vec::new()] {
        let reply = w.post(body(6, &bad, &checkpoint)).await;
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert!(!reply.body.contains('\u{2014}'));
    }
    // A non-empty proof from size 0 is no proof either.
    let w0 = spawn_witness(&[&log]).await;
    let proof = merkle::consistency_proof(3, &log.leaves);
    assert_eq!(w0.post(body(0, &proof, &checkpoint)).await.status, 422);
    assert_eq!(w0.latest().await, None);

    assert_eq!(w.latest().await, Some((6, root_of(&log, 6))));
    let reply = w.post(log.request(6, 11)).await;
    assert_cosigned(&reply, &w.witness, &checkpoint);
}

#[tokio::test]
async fn a_registry_that_rewrites_its_history_is_caught() {
    let honest = Log::new(1, 8, "a");
    let w = spawn_witness(&[&honest]).await;
    assert_eq!(w.post(honest.request(0, 8)).await.status, 200);

    // Same key, a rewritten entry 2: the first 8 leaves differ, so the roots do.
    let mut rewritten = Log::new(1, 2, "a");
    rewritten.grow(1, "rewritten");
    rewritten.grow(9, "a");
    assert_ne!(root_of(&rewritten, 8), root_of(&honest, 8));

    // A second root for size 8: a fork, never cosigned.
    let reply = w.post(rewritten.request(8, 8)).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_ne!(reply.content_type, SIZE_CONTENT_TYPE);
    assert!(!reply.body.contains('\u{2014}'));

    // Growing from the rewritten size 8 with a proof of the rewritten history: caught.
    let reply = w.post(rewritten.request(8, 12)).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(w.latest().await, Some((8, root_of(&honest, 8))));
}

#[tokio::test]
async fn an_unknown_origin_gets_404_and_an_untrusted_key_403() {
    let log = Log::new(1, 4, "a");
    let w = spawn_witness(&[&log]).await;

    let text = Checkpoint {
        origin: "other.example/log".into(),
        size: 4,
        root: root_of(&log, 4),
    }
    .text();
    let mut other = Note::new(&text).unwrap();
    other.sign("other.example/log", &log.key);
    assert_eq!(w.post(body(0, &[], &other)).await.status, 404);

    // The right origin, signed by a key the witness does not trust.
    let impostor = Log::new(2, 4, "a");
    let reply = w.post(impostor.request(0, 4)).await;
    assert_eq!(reply.status, 403, "{}", reply.body);

    // The trusted key's signature over a different text.
    let mut forged = log.checkpoint(4);
    forged.signatures = impostor.checkpoint(4).signatures;
    forged.signatures[0].key_id = log.checkpoint(4).signatures[0].key_id;
    forged.text = Checkpoint {
        origin: ORIGIN.into(),
        size: 4,
        root: root_of(&Log::new(1, 4, "b"), 4),
    }
    .text();
    assert_eq!(w.post(body(0, &[], &forged)).await.status, 403);

    // A bad trusted signature beside a good one rejects the note.
    let mut mixed = log.checkpoint(4);
    mixed.signatures.push(forged.signatures[0].clone());
    assert_eq!(w.post(body(0, &[], &mixed)).await.status, 403);

    // Unknown signatures beside the trusted one are ignored.
    let mut extra = log.checkpoint(4);
    extra.sign("someone.example/else", &impostor.key);
    let reply = w.post(body(0, &[], &extra)).await;
    assert_cosigned(&reply, &w.witness, &extra);
}

#[tokio::test]
async fn an_old_size_above_the_checkpoint_and_malformed_bodies_get_400() {
    let log = Log::new(1, 4, "a");
    let w = spawn_witness(&[&log]).await;

    let reply = w.post(body(5, &[], &log.checkpoint(4))).await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    let good = log.request(0, 4);
    let note = log.checkpoint(4).encode();
    let hash = B64.encode([7u8; 32]);
    let bad: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"old 0\n".to_vec(),
        good.replacen("old 0", "old 00", 1).into(),
        good.replacen("old 0", "old -1", 1).into(),
        good.replacen("old 0", "old 0x", 1).into(),
        good.replacen("old 0", "old  0", 1).into(),
        good.replacen("old 0", "old 99999999999999999999999", 1)
            .into(),
        good.replacen("old 0", "new 0", 1).into(),
        format!("old 0\n{note}").into(),
        format!("old 0\nnot base64!\n\n{note}").into(),
        format!("old 0\n{}\n\n{note}", B64.encode([7u8; 31])).into(),
        format!("old 0\n{}\n\n{note}", format!("{hash}\n").repeat(64)).into(),
        format!("old 0\n\n{}", log.checkpoint(4).text).into(),
        format!("old 0\n\n{}", note.replacen("4\n", "04\n", 1)).into(),
        format!("old 0\n\n{}", note.replacen('\n', "\r\n", 1)).into(),
        [b"old 0\n\n".as_slice(), &[0xff, 0xfe], note.as_bytes()].concat(),
    ];
    for (i, b) in bad.into_iter().enumerate() {
        let reply = w.post(b).await;
        assert_eq!(reply.status, 400, "case {i}: {}", reply.body);
    }
    // An empty extension line is not a checkpoint.
    let mut note = Note::new(&format!("{}\next\n", log.checkpoint(4).text)).unwrap();
    note.sign(ORIGIN, &log.key);
    let reply = w.post(body(0, &[], &note)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // 63 proof lines is the limit the protocol sets; a longer body is refused before parsing.
    let many = body(0, &[[7u8; 32]; 63], &log.checkpoint(4));
    assert_eq!(w.post(many).await.status, 422);
    let huge = format!("old 0\n\n{}", "x".repeat(70 * 1024));
    assert_eq!(w.post(huge).await.status, 413);
    assert_eq!(w.send(http::Method::GET, Vec::new()).await.status, 405);

    assert_eq!(w.latest().await, None);
    assert_eq!(w.post(good).await.status, 200);
}

#[tokio::test]
async fn the_state_survives_a_restart() {
    let mut log = Log::new(1, 9, "a");
    let mut w = spawn_witness(&[&log]).await;
    assert_eq!(w.post(log.request(0, 9)).await.status, 200);

    w.restart(&[&log]).await;
    assert_eq!(w.latest().await, Some((9, root_of(&log, 9))));
    let reply = w.post(log.request(0, 9)).await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "9\n"));
    let mut forked = Log::new(1, 9, "b");
    forked.grow(1, "b");
    assert_eq!(w.post(forked.request(9, 9)).await.status, 409);

    log.grow(2, "a");
    let reply = w.post(log.request(9, 11)).await;
    assert_cosigned(&reply, &w.witness, &log.checkpoint(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_requests_from_one_size_exactly_one_wins() {
    let mut log = Log::new(1, 4, "a");
    let w = spawn_witness(&[&log]).await;
    assert_eq!(w.post(log.request(0, 4)).await.status, 200);
    log.grow(100, "a");

    let mut old = 4;
    for round in 0..8 {
        let (a, b) = (old + 1 + round, old + 2 + 2 * round);
        let (ra, rb) = tokio::join!(w.post(log.request(old, a)), w.post(log.request(old, b)));
        let (winner, loser) = match (ra.status, rb.status) {
            (200, 409) => (a, rb),
            (409, 200) => (b, ra),
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(loser.content_type, SIZE_CONTENT_TYPE);
        assert_eq!(loser.body, format!("{winner}\n"));
        assert_eq!(
            w.latest().await,
            Some((winner as u64, root_of(&log, winner)))
        );
        old = winner;
    }
}

#[test]
fn govit_witness_makes_its_key_and_prints_its_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys").join("witness.pem");
    let vkey = |init: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_govit"));
        cmd.args(["witness", "--print-vkey", "--name", WITNESS_NAME, "--key"])
            .arg(&key)
            .env_remove("GOVIT_WITNESS_STATE");
        if init {
            cmd.arg("--init-key");
        }
        cmd.output().unwrap()
    };
    let missing = vkey(false);
    assert!(!missing.status.success());

    let made = vkey(true);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let printed = String::from_utf8(made.stdout).unwrap();
    let verifier = Verifier::parse(printed.trim_end()).unwrap();
    assert_eq!(verifier.kind, TYPE_COSIGNATURE_V1);
    assert_eq!(verifier.name, WITNESS_NAME);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!printed.contains("PRIVATE"));

    // The key is kept: a second start, with or without --init-key, is the same witness.
    for init in [true, false] {
        let again = vkey(init);
        assert!(again.status.success());
        assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
    }
}

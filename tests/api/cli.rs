//! The `govit` binary as a new user runs it.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn govit_up_serves_all_three_services_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let mut child = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "up"])
        .args(["--projects-listen", &format!("127.0.0.1:{}", ports[0])])
        .args(["--experts-listen", &format!("127.0.0.1:{}", ports[1])])
        .args(["--scheduling-listen", &format!("127.0.0.1:{}", ports[2])])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The banner is printed once every listener is bound and serving.
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.starts_with("govit is up"), "{banner}");
    let mut printed = String::new();
    for _ in 0..3 {
        printed.push_str(&lines.next().unwrap().unwrap());
    }
    for (port, name) in ports.iter().zip([
        "govit.projects.v1.ProjectService",
        "govit.experts.v1.ExpertRegistryService",
        "govit.scheduling.v1.ReviewSchedulingService",
    ]) {
        assert!(printed.contains(&format!("127.0.0.1:{port}")), "{printed}");
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{name}");
    }
    for db in ["projects.db", "experts.db", "scheduling.db"] {
        assert!(dir.path().join(db).exists(), "{db}");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(waited < 100, "govit did not stop within 10 s of SIGTERM");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "govit stopped"), "{rest:?}");
}

#[test]
fn govit_token_mints_a_token_the_services_accept() {
    let out = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "token",
            "--role",
            "applicant",
            "--org",
            "91350100M000100Y43",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let auth = govit_platform::Authenticator::new(&govit_platform::VerificationKey::Hs256(
        govit_platform::auth::DEVELOPMENT_KEY.as_bytes().to_vec(),
    ))
    .unwrap();
    let caller = auth.verify(token.trim()).unwrap();
    assert_eq!(caller.role, govit_platform::Role::Applicant);
    assert_eq!(caller.organization.as_deref(), Some("91350100M000100Y43"));

    let refused = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["token", "--role", "applicant"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--org"));
}

#[test]
fn govit_serve_refuses_to_start_without_a_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "serve",
            "projects",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .env_remove("GOVIT_JWT_HS256_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token key configured"));
}

#[test]
fn govit_up_refuses_the_development_key_off_loopback_and_long_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "up",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--projects-listen",
            "0.0.0.0:0",
        ])
        .env_remove("GOVIT_JWT_HS256_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public development key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let long = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["token", "--role", "office", "--hours", "87600"])
        .output()
        .unwrap();
    assert!(!long.status.success());
}

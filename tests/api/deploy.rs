//! The deployment files (Dockerfile, compose, Kubernetes) against the binary they run: every
//! variable they set is one `govit serve` reads, ports and probes agree with each other, and
//! each service, started with its manifest's settings, answers the readiness probe's health
//! check. No container daemon runs here; the images themselves are not built.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use yaml_rust2::{Yaml, YamlLoader};

const SERVICES: [(&str, u16, &str); 3] = [
    (
        "projects",
        50051,
        govit_proto::projects::v1::project_service_server::SERVICE_NAME,
    ),
    (
        "experts",
        50052,
        govit_proto::experts::v1::expert_registry_service_server::SERVICE_NAME,
    ),
    (
        "scheduling",
        50053,
        govit_proto::scheduling::v1::review_scheduling_service_server::SERVICE_NAME,
    ),
];

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn documents(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// A YAML list of strings.
fn strings(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect()
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The GOVIT_* variables `govit serve` reads, from its own help.
fn variables_the_binary_reads() -> BTreeSet<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["serve", "projects", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    let known: BTreeSet<String> = text
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    assert!(known.contains("GOVIT_LISTEN"), "{text}");
    known
}

/// A container's environment: the ConfigMap's entries, then its own (names and plain values;
/// values from secrets as None).
fn environment(container: &Yaml, config: &Yaml) -> Vec<(String, Option<String>)> {
    let mut env: Vec<(String, Option<String>)> = config["data"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().map(str::to_owned),
            )
        })
        .collect();
    for var in container["env"].as_vec().unwrap() {
        env.push((
            var["name"].as_str().unwrap().to_owned(),
            var["value"].as_str().map(str::to_owned),
        ));
    }
    env
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[1].contains("distroless") && stages[1].contains("nonroot"));
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    let exposed: BTreeSet<u16> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|p| p.parse().unwrap()))
        .collect();
    for (_, port, _) in SERVICES {
        assert!(exposed.contains(&port), "EXPOSE {port}: {exposed:?}");
    }
}

#[test]
fn kubernetes_ports_probes_and_variables_agree_with_the_binary() {
    let known = variables_the_binary_reads();
    let config = documents("deploy/kubernetes/config.yaml");
    let config = kind(&config, "ConfigMap");
    let kustomization = documents("deploy/kubernetes/kustomization.yaml");
    let listed = strings(&kustomization[0]["resources"]);
    for (name, port, grpc) in SERVICES {
        let file = format!("deploy/kubernetes/{name}.yaml");
        assert!(listed.contains(&format!("{name}.yaml").as_str()));
        let docs = documents(&file);
        let deployment = kind(&docs, "Deployment");
        let pod = &deployment["spec"]["template"];
        let labels = &pod["metadata"]["labels"];
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            labels["app.kubernetes.io/name"]
        );
        let container = &pod["spec"]["containers"][0];
        let args = strings(&container["args"]);
        assert_eq!(args, ["serve", name]);
        let env = environment(container, config);
        for (var, _) in &env {
            assert!(known.contains(var), "{file}: govit does not read {var}");
        }
        let listen = env
            .iter()
            .find(|(k, _)| k == "GOVIT_LISTEN")
            .and_then(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(port_of(&listen), port, "{file}: GOVIT_LISTEN");
        let ports = container["ports"].as_vec().unwrap();
        let named = |n: &str| {
            ports
                .iter()
                .find(|p| p["name"].as_str() == Some(n))
                .and_then(|p| p["containerPort"].as_i64())
                .unwrap_or_else(|| panic!("{file}: no port {n}"))
        };
        assert_eq!(named("grpc"), i64::from(port));
        let admin = env
            .iter()
            .find(|(k, _)| k == "GOVIT_ADMIN_LISTEN")
            .and_then(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(named("metrics"), i64::from(port_of(&admin)));
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/port"].as_str(),
            Some(port_of(&admin).to_string().as_str())
        );
        let readiness = &container["readinessProbe"]["grpc"];
        assert_eq!(readiness["port"].as_i64(), Some(i64::from(port)));
        assert_eq!(readiness["service"].as_str(), Some(grpc));
        assert_eq!(
            container["livenessProbe"]["grpc"]["port"].as_i64(),
            Some(i64::from(port))
        );
        // The grace period outlasts the drain.
        let drain: i64 = env
            .iter()
            .find(|(k, _)| k == "GOVIT_DRAIN_SECONDS")
            .and_then(|(_, v)| v.as_deref()?.parse().ok())
            .unwrap();
        assert!(
            pod["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap()
                > drain
        );
        let service = kind(&docs, "Service");
        assert_eq!(
            service["spec"]["ports"][0]["port"].as_i64(),
            Some(i64::from(port))
        );
        assert_eq!(
            service["spec"]["ports"][0]["targetPort"].as_str(),
            Some("grpc")
        );
        assert_eq!(
            service["spec"]["selector"]["app.kubernetes.io/name"],
            labels["app.kubernetes.io/name"]
        );
        let budget = kind(&docs, "PodDisruptionBudget");
        assert_eq!(
            budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            labels["app.kubernetes.io/name"]
        );
        assert!(
            deployment["spec"]["replicas"].as_i64().unwrap()
                > budget["spec"]["minAvailable"].as_i64().unwrap()
        );
        // The others reach this service where its Service listens.
        let url_var = format!("GOVIT_{}_URL", name.to_uppercase());
        let url = config["data"][url_var.as_str()].as_str().unwrap();
        assert_eq!(url, format!("http://govit-{name}:{port}"));
    }
}

#[test]
fn compose_runs_the_three_services_on_postgresql_with_variables_govit_reads() {
    let known = variables_the_binary_reads();
    let compose = &documents("deploy/compose/compose.yaml")[0];
    let services = &compose["services"];
    assert!(
        services["postgres"]["image"]
            .as_str()
            .unwrap()
            .contains("postgres")
    );
    for (name, port, _) in SERVICES {
        let service = &services[name];
        let command = strings(&service["command"]);
        assert_eq!(command, ["serve", name]);
        let env = service["environment"].as_hash().unwrap();
        // yaml-rust2 leaves merge keys (`<<: *env`) unresolved: the shared block is checked too.
        let shared = compose["x-govit"]["environment"].as_hash().unwrap();
        for key in env.keys().chain(shared.keys()) {
            let key = key.as_str().unwrap();
            assert!(key == "<<" || known.contains(key), "{name}: {key}");
        }
        assert_eq!(
            port_of(env[&Yaml::from_str("GOVIT_LISTEN")].as_str().unwrap()),
            port
        );
        assert!(
            env[&Yaml::from_str("GOVIT_DATABASE_URL")]
                .as_str()
                .unwrap()
                .starts_with("postgres://")
        );
    }
}

/// Starts `govit serve NAME` with the manifest's plain settings (secrets, the database and the
/// listen port replaced for this machine), and checks the readiness probe's health check.
#[tokio::test]
async fn each_service_started_as_its_manifest_says_answers_its_readiness_probe() {
    let config = documents("deploy/kubernetes/config.yaml");
    let config = kind(&config, "ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    for (name, _, grpc) in SERVICES {
        let docs = documents(&format!("deploy/kubernetes/{name}.yaml"));
        let container = &kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.path().join(name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_govit"));
        command.env_clear();
        for (var, value) in environment(container, config) {
            let value = match var.as_str() {
                "GOVIT_LISTEN" => format!("127.0.0.1:{port}"),
                "GOVIT_ADMIN_LISTEN" => "127.0.0.1:0".into(),
                "GOVIT_DATA_DIR" => data.to_str().unwrap().into(),
                "GOVIT_DATABASE_URL" => govit_platform::db::sqlite_url(&data.join("db.sqlite")),
                "GOVIT_JWT_HS256_KEY" => "a-test-key-of-at-least-thirty-two-bytes".into(),
                "GOVIT_LOG_KEY" => {
                    let key = dir.path().join("log-signing-key.pem");
                    if !key.exists() {
                        let made = Command::new(env!("CARGO_BIN_EXE_govit"))
                            .args(["log", "keygen", key.to_str().unwrap()])
                            .output()
                            .unwrap();
                        assert!(made.status.success(), "{made:?}");
                    }
                    key.to_str().unwrap().into()
                }
                _ => value.unwrap_or_else(|| panic!("{name}: {var} has no plain value")),
            };
            command.env(var, value);
        }
        std::fs::create_dir_all(&data).unwrap();
        let args = strings(&container["args"]);
        let mut child = command
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            let checked = async {
                let channel =
                    tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                        .unwrap()
                        .connect()
                        .await?;
                HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: grpc.into(),
                    })
                    .await
                    .map_err(|e| -> Box<dyn std::error::Error> { Box::new(e) })
                    .map(|r| r.into_inner().status)
            };
            match checked.await {
                Ok(status) => break status,
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{name} never answered: {e}"),
            }
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let stopping = Instant::now();
        let exited = child.wait().unwrap();
        assert_eq!(status, ServingStatus::Serving as i32, "{name}");
        assert!(exited.success(), "{name} exited {exited:?}");
        // Idle, it stops at once rather than waiting out the drain (GOVIT_DRAIN_SECONDS=10)
        // for the probe's connection, which the client keeps open.
        assert!(
            stopping.elapsed() < Duration::from_secs(8),
            "{name} took {:?} to stop",
            stopping.elapsed()
        );
    }
}

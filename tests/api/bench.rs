//! `govit bench` runs end to end at small sizes, so the commands docs/BENCHMARKS.md gives
//! keep working: each prints its figure beside its floor. On PostgreSQL when the suite is.

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn bench(args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_govit"));
    command.arg("bench").args(args).args([
        "--seconds",
        "1",
        "--connections",
        "2",
        "--streams",
        "2",
    ]);
    if let Ok(url) = std::env::var("GOVIT_TEST_POSTGRES_URL") {
        command.args(["--postgres", &url]);
    }
    let out = command.output().await.unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The figure of the row labelled `label` in column `column` of a printed table.
fn figure(stdout: &str, label: &str, column: usize) -> f64 {
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row {label} in:\n{stdout}"));
    let cell = row.split('|').nth(column + 1).unwrap().trim();
    cell.trim_end_matches(['%', 'x'])
        .parse()
        .unwrap_or_else(|_| panic!("{cell} is not a figure in:\n{stdout}"))
}

#[tokio::test]
async fn the_read_bench_prints_get_project_beside_the_empty_handler() {
    let run = bench(&["get-project", "--projects", "20"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("seeded 20 projects"), "{}", run.stdout);
    assert!(figure(&run.stdout, "Health/Check (floor)", 1) > 0.0);
    assert!(figure(&run.stdout, "GetProject", 1) > 0.0);
    assert_eq!(figure(&run.stdout, "Health/Check (floor)", 4), 100.0);
}

#[tokio::test]
async fn the_list_bench_prints_a_page_in_both_views_beside_the_empty_handler() {
    let run = bench(&["list-projects", "--projects", "60"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(figure(&run.stdout, "ListProjects, page of 50", 1) > 0.0);
    assert!(figure(&run.stdout, "ListProjects, page of 50, BASIC view", 1) > 0.0);
    assert_eq!(figure(&run.stdout, "Health/Check (floor)", 4), 100.0);
}

#[tokio::test]
async fn the_write_bench_prints_create_project_against_the_database_shell() {
    let run = bench(&["create-project"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("two-insert transactions in"),
        "{}",
        run.stdout
    );
    assert!(figure(&run.stdout, "CreateProject", 1) > 0.0);
    assert!(
        run.stdout
            .contains("CreateProject / raw two-insert transactions:"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn the_import_bench_imports_a_generated_roster_then_updates_it() {
    let run = bench(&["import", "--rows", "300"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("created 300, updated 0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("created 0, updated 300"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn the_draw_bench_draws_from_a_registry_process_and_reads_its_memory() {
    let run = bench(&[
        "draw",
        "--pool",
        "200",
        "--draws",
        "3",
        "--settle-seconds",
        "0",
        "--idle-seconds",
        "1",
    ])
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(figure(&run.stdout, "200", 2) > 0.0, "{}", run.stdout);
    assert!(figure(&run.stdout, "200", 3) > 0.0, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("resident memory of the registry process"),
        "{}",
        run.stdout
    );
}

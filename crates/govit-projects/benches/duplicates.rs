//! What one duplicate comparison costs as the city's projects grow: the labelled corpus
//! repeated to N projects (each copy its own name), one project compared with all, for each N
//! given (default 1,000, 6,000 and 20,000). A figure to read beside the others in
//! docs/duplicates.md: `cargo bench -p govit-projects --bench duplicates -- 1000 6000 20000`.

use govit_projects::similarity::{ProjectText, similar};
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    projects: Vec<Project>,
}

#[derive(Deserialize)]
struct Project {
    name: String,
    description: String,
    construction: String,
    equipment: String,
}

fn main() {
    let corpus: Corpus =
        serde_json::from_str(include_str!("../tests/data/duplicate-corpus.json")).unwrap();
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 6_000, 20_000]
    } else {
        sizes
    };
    // Loads jieba's dictionary first, as a running service has: the figures are comparisons.
    similar(&[(0, text(&corpus.projects[0], 0))], 0, 5);
    println!("| projects | one comparison |\n|---:|---:|");
    for n in sizes {
        let texts: Vec<(usize, ProjectText)> = (0..n)
            .map(|i| (i, text(&corpus.projects[i % corpus.projects.len()], i)))
            .collect();
        let started = std::time::Instant::now();
        let found = similar(&texts, 0, 5);
        let took = started.elapsed();
        assert!(!found.is_empty(), "its own copies are found");
        println!("| {n} | {:.0} ms |", took.as_secs_f64() * 1000.0);
    }
}

fn text(p: &Project, i: usize) -> ProjectText {
    ProjectText {
        name: format!("{} {i}", p.name),
        description: p.description.clone(),
        construction: p.construction.clone(),
        equipment: p.equipment.clone(),
        plan: String::new(),
    }
}

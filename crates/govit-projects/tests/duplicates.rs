//! Precision and recall of the duplicate-construction check on a corpus of sixty projects whose
//! duplicates are known (tests/data/duplicate-corpus.json). docs/duplicates.md reports the
//! figures this prints: `cargo test -p govit-projects --test duplicates -- --nocapture`.

use std::collections::HashMap;

use govit_projects::similarity::{MIN_SIMILARITY, ProjectText, similar};
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    projects: Vec<Project>,
}

#[derive(Deserialize)]
struct Project {
    id: String,
    group: Option<String>,
    name: String,
    description: String,
    construction: String,
    equipment: String,
}

/// The top five of every project against the known duplicates: precision over everything
/// shown (a project with no duplicate that shows a match counts against it), recall over every
/// known duplicate pair.
#[test]
fn the_top_five_find_the_known_duplicates() {
    let corpus: Corpus = serde_json::from_str(include_str!("data/duplicate-corpus.json")).unwrap();
    let texts: Vec<(String, ProjectText)> = corpus
        .projects
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                ProjectText {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    construction: p.construction.clone(),
                    equipment: p.equipment.clone(),
                    plan: String::new(),
                },
            )
        })
        .collect();
    let group: HashMap<&str, Option<&str>> = corpus
        .projects
        .iter()
        .map(|p| (p.id.as_str(), p.group.as_deref()))
        .collect();
    let same = |a: &str, b: &str| group[a].is_some() && group[a] == group[b];
    // Shown and right at stricter thresholds than the service's, to choose it by.
    let stricter = [0.35, 0.4, 0.45, 0.5, 0.6];
    let mut at = vec![(0_u32, 0_u32); stricter.len()];
    let mut right_similarities = Vec::new();
    let (mut shown, mut right, mut known, mut first_right) = (0_u32, 0_u32, 0_u32, 0);
    let mut missed = Vec::new();
    let mut wrong = Vec::new();
    for (i, p) in corpus.projects.iter().enumerate() {
        let found = similar(&texts, i, 5);
        let duplicates = corpus
            .projects
            .iter()
            .filter(|q| q.id != p.id && same(&p.id, &q.id))
            .count();
        known += duplicates as u32;
        shown += found.len() as u32;
        for m in &found {
            for (t, counts) in stricter.iter().zip(at.iter_mut()) {
                if m.similarity >= *t {
                    counts.0 += 1;
                    counts.1 += u32::from(same(&p.id, &m.key));
                }
            }
            if same(&p.id, &m.key) {
                right_similarities.push(m.similarity);
                right += 1;
            } else {
                wrong.push(format!(
                    "{} → {} ({:.2}, {:?})",
                    p.id, m.key, m.similarity, m.terms
                ));
            }
        }
        if duplicates > 0 && found.first().is_some_and(|m| same(&p.id, &m.key)) {
            first_right += 1;
        }
        for q in corpus
            .projects
            .iter()
            .filter(|q| q.id != p.id && same(&p.id, &q.id))
        {
            if !found.iter().any(|m| m.key == q.id) {
                missed.push(format!("{} ↛ {}", p.id, q.id));
            }
        }
    }
    let with_duplicates = corpus.projects.iter().filter(|p| p.group.is_some()).count();
    let precision = f64::from(right) / f64::from(shown.max(1));
    let recall = f64::from(right) / f64::from(known.max(1));
    println!(
        "{} projects, {with_duplicates} with a known duplicate; threshold {MIN_SIMILARITY}",
        corpus.projects.len()
    );
    println!("top 5: shown {shown}, right {right}, known {known}");
    println!("precision {precision:.3}, recall {recall:.3}");
    println!(
        "the first match is a known duplicate for {first_right} of {with_duplicates} projects"
    );
    right_similarities.sort_by(f64::total_cmp);
    println!(
        "known duplicates found at similarity {:.2} to {:.2}",
        right_similarities.first().unwrap_or(&0.0),
        right_similarities.last().unwrap_or(&0.0)
    );
    println!("| threshold | shown | right | precision | recall |");
    println!("|---:|---:|---:|---:|---:|");
    println!("| {MIN_SIMILARITY} | {shown} | {right} | {precision:.3} | {recall:.3} |");
    for (t, (s, r)) in stricter.iter().zip(&at) {
        println!(
            "| {t} | {s} | {r} | {:.3} | {:.3} |",
            f64::from(*r) / f64::from((*s).max(1)),
            f64::from(*r) / f64::from(known.max(1))
        );
    }
    println!("missed: {missed:?}");
    println!("shown wrongly: {wrong:#?}");
    assert!(known >= 36, "the corpus has its duplicates");
    assert!(recall >= 0.9, "recall {recall:.3}: missed {missed:?}");
    assert!(precision >= 0.8, "precision {precision:.3}: {wrong:#?}");
}

//! The sampler is fair: over 100,000 seeds, every expert is selected equally often and every
//! position of the ordered result is uniform, by a chi-squared bound. The same checker fails
//! two subtly biased samplers, so it can tell. Seeds are fixed, so the test is deterministic.

use std::collections::BTreeMap;

use govit_draw::{DrawInput, Requirement, draw};
use sha2::{Digest, Sha256};

const TRIALS: u64 = 100_000;
const N: usize = 10;
const COUNT: usize = 3;
const ALTERNATES: usize = 2;

fn seed(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_le_bytes()).into()
}

fn ids() -> Vec<String> {
    (0..N).map(|i| format!("e{i:02}")).collect()
}

fn input() -> DrawInput {
    DrawInput {
        protocol: "govit-draw/v1".into(),
        draw_id: "d-fair".into(),
        project_id: "p".into(),
        stage: "PRELIMINARY_REVIEW".into(),
        opened_at: "2026-11-28T05:00:00Z".into(),
        requirements: vec![Requirement {
            category: "c".into(),
            count: COUNT as u64,
            alternates: ALTERNATES as u64,
        }],
        candidates: BTreeMap::from([("c".to_string(), ids())]),
        exclusions: vec![],
        server_commitment: "0".repeat(64),
    }
}

/// The upper 1 − 10⁻⁶ quantile of chi-squared with `df` degrees of freedom (Wilson–Hilferty).
fn critical(df: f64) -> f64 {
    let z = 4.753_424;
    df * (1.0 - 2.0 / (9.0 * df) + z * (2.0 / (9.0 * df)).sqrt()).powi(3)
}

fn chi_squared(counts: &[u64], expected: f64) -> f64 {
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// The worst statistic over "selected at all" and each ordered position, against its bound.
fn worst(sampler: impl Fn([u8; 32]) -> Vec<usize>) -> (f64, f64) {
    let positions = COUNT + ALTERNATES;
    let mut selected = vec![0u64; N];
    let mut by_position = vec![vec![0u64; N]; positions];
    for t in 0..TRIALS {
        let order = sampler(seed(t));
        assert_eq!(order.len(), positions);
        for &e in &order[..COUNT] {
            selected[e] += 1;
        }
        for (p, &e) in order.iter().enumerate() {
            by_position[p][e] += 1;
        }
    }
    let mut stats = vec![chi_squared(
        &selected,
        TRIALS as f64 * COUNT as f64 / N as f64,
    )];
    stats.extend(
        by_position
            .iter()
            .map(|c| chi_squared(c, TRIALS as f64 / N as f64)),
    );
    (
        stats.into_iter().fold(0.0, f64::max),
        critical((N - 1) as f64),
    )
}

#[test]
fn the_draw_selects_every_expert_and_fills_every_position_uniformly() {
    let input = input();
    let index: BTreeMap<String, usize> = ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let (stat, bound) = worst(|s| {
        let result = draw::select(&input, s).result.unwrap();
        let sel = &result["c"];
        sel.selected
            .iter()
            .chain(&sel.alternates)
            .map(|id| index[id])
            .collect()
    });
    assert!(stat < bound, "chi-squared {stat:.1} exceeds {bound:.1}");
}

/// A partial Fisher–Yates driven by the given choice of `j` for step `i`.
fn shuffle_with(s: [u8; 32], choose: impl Fn(&mut draw::Stream, usize) -> usize) -> Vec<usize> {
    let mut stream = draw::Stream::new(s);
    let mut pool: Vec<usize> = (0..N).collect();
    for i in 0..COUNT + ALTERNATES {
        let j = choose(&mut stream, i);
        pool.swap(i, j);
    }
    pool.truncate(COUNT + ALTERNATES);
    pool
}

#[test]
fn a_sampler_with_modulo_bias_fails_the_check() {
    // Six random bits reduced mod 10: residues 0..3 come up 7 times in 64, the rest 6.
    let (stat, bound) =
        worst(|s| shuffle_with(s, |st, i| i + ((st.next_u64() >> 58) as usize) % (N - i)));
    assert!(
        stat > bound,
        "the biased sampler passed: {stat:.1} <= {bound:.1}"
    );
}

#[test]
fn a_sampler_that_never_leaves_an_element_in_place_fails_the_check() {
    // The off-by-one of Sattolo's algorithm: j from i+1, never i.
    let (stat, bound) =
        worst(|s| shuffle_with(s, |st, i| i + 1 + st.uniform((N - i - 1) as u64) as usize));
    assert!(
        stat > bound,
        "the biased sampler passed: {stat:.1} <= {bound:.1}"
    );
}

#[test]
fn uniform_never_leaves_its_range_and_rejects_the_top_zone() {
    let mut stream = draw::Stream::new(seed(1));
    for n in [1u64, 2, 3, 7, 10, 1000, u64::MAX] {
        for _ in 0..1000 {
            assert!(stream.uniform(n) < n);
        }
    }
}

//! govit-draw/v1: freeze the input, take a witness, execute with a ChaCha20 stream, and check a
//! record. The spec is `docs/draw-protocol.md`; this module follows it step by step.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::jcs;

pub const PROTOCOL: &str = "govit-draw/v1";
pub const MAX_WITNESS_BYTES: usize = 1024;

/// One category of the panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub category: String,
    pub count: u64,
    pub alternates: u64,
}

/// An expert tagged with a requested category who may not serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub category: String,
    pub expert_id: String,
    pub reasons: Vec<String>,
}

/// The frozen input of step 1: exactly the spec's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawInput {
    pub protocol: String,
    pub draw_id: String,
    pub project_id: String,
    pub stage: String,
    pub opened_at: String,
    pub requirements: Vec<Requirement>,
    pub candidates: BTreeMap<String, Vec<String>>,
    pub exclusions: Vec<Exclusion>,
    pub server_commitment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    pub selected: Vec<String>,
    pub alternates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Executed,
    Insufficient,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// Absent when INSUFFICIENT.
    pub result: Option<BTreeMap<String, Selection>>,
}

/// Identifiers and category codes: ASCII, 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, UTC, with every field in its range.
fn is_opened_at(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return false;
    }
    let n = |from: usize, to: usize| s[from..to].parse::<u32>().unwrap_or(u32::MAX);
    let (year, month, day) = (n(0, 4), n(5, 7), n(8, 10));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && n(11, 13) < 24 && n(14, 16) < 60 && n(17, 19) < 60
}

fn is_sorted_unique<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

fn is_hex32(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl DrawInput {
    /// The input as the JSON value that is hashed.
    pub fn to_value(&self) -> Value {
        // Serialising plain strings, integers, vectors and maps cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// `JCS(input)`.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, jcs::JcsError> {
        jcs::canonical(&self.to_value())
    }

    /// `SHA256(JCS(input))`.
    pub fn hash(&self) -> Result<[u8; 32], jcs::JcsError> {
        Ok(Sha256::digest(self.canonical_bytes()?).into())
    }

    /// Checks every structural rule of the spec; the error names the first one broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.protocol != PROTOCOL {
            return Err(format!(
                "protocol is {:?}, expected {PROTOCOL:?}",
                self.protocol
            ));
        }
        for (name, id) in [("draw_id", &self.draw_id), ("project_id", &self.project_id)] {
            if !is_identifier(id) {
                return Err(format!(
                    "{name} {id:?} is not 1 to 64 characters of [A-Za-z0-9._-]"
                ));
            }
        }
        if self.stage.is_empty() {
            return Err("stage is empty".into());
        }
        if !is_opened_at(&self.opened_at) {
            return Err(format!(
                "opened_at {:?} is not RFC 3339 UTC with whole seconds",
                self.opened_at
            ));
        }
        if self.requirements.is_empty() {
            return Err("requirements is empty".into());
        }
        let categories: Vec<&str> = self
            .requirements
            .iter()
            .map(|r| r.category.as_str())
            .collect();
        if !is_sorted_unique(&categories) {
            return Err("requirements are not sorted by category with each category once".into());
        }
        for r in &self.requirements {
            if !is_identifier(&r.category) {
                return Err(format!("category {:?} is not a valid code", r.category));
            }
            if r.count < 1 {
                return Err(format!("category {} has count 0", r.category));
            }
        }
        let candidate_categories: Vec<&str> = self.candidates.keys().map(String::as_str).collect();
        if candidate_categories != categories {
            return Err("candidates do not have exactly the requirements' categories".into());
        }
        for (category, ids) in &self.candidates {
            if !is_sorted_unique(ids) {
                return Err(format!(
                    "candidates of {category} are not sorted and duplicate-free"
                ));
            }
            if let Some(bad) = ids.iter().find(|id| !is_identifier(id)) {
                return Err(format!("candidate {bad:?} of {category} is not a valid id"));
            }
        }
        let keys: Vec<(&str, &str)> = self
            .exclusions
            .iter()
            .map(|e| (e.category.as_str(), e.expert_id.as_str()))
            .collect();
        if !is_sorted_unique(&keys) {
            return Err("exclusions are not sorted by category, then expert_id".into());
        }
        for e in &self.exclusions {
            if !is_identifier(&e.expert_id) || e.reasons.iter().any(|r| !is_identifier(r)) {
                return Err(format!(
                    "exclusion {:?} in {} has an invalid id or reason code",
                    e.expert_id, e.category
                ));
            }
            if !categories.contains(&e.category.as_str()) {
                return Err(format!(
                    "exclusion of {} names unrequested category {}",
                    e.expert_id, e.category
                ));
            }
            if e.reasons.is_empty() || !is_sorted_unique(&e.reasons) {
                return Err(format!(
                    "reasons of excluded {} in {} are empty or unsorted",
                    e.expert_id, e.category
                ));
            }
            if self.candidates[&e.category]
                .binary_search(&e.expert_id)
                .is_ok()
            {
                return Err(format!(
                    "{} is both a candidate and excluded in {}",
                    e.expert_id, e.category
                ));
            }
        }
        if !is_hex32(&self.server_commitment) {
            return Err("server_commitment is not 64 lowercase hex characters".into());
        }
        Ok(())
    }
}

/// `hex(SHA256(server_secret))`.
pub fn commitment(server_secret: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(server_secret))
}

/// `SHA256("govit-draw/v1" || input_hash || server_secret || SHA256(UTF-8(witness_entropy)))`.
pub fn seed(input_hash: &[u8; 32], server_secret: &[u8; 32], witness_entropy: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PROTOCOL.as_bytes());
    h.update(input_hash);
    h.update(server_secret);
    h.update(Sha256::digest(witness_entropy.as_bytes()));
    h.finalize().into()
}

/// The spec's random stream: ChaCha20 keyed by the seed, zero nonce, counter from 0; only
/// `next_u64` is ever drawn.
pub struct Stream(ChaCha20Rng);

impl Stream {
    pub fn new(seed: [u8; 32]) -> Self {
        Stream(ChaCha20Rng::from_seed(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// `uniform(n)`: rejection sampling below the largest multiple of n, so no residue is
    /// favoured.
    pub fn uniform(&mut self, n: u64) -> u64 {
        assert!(n >= 1, "uniform(0)");
        // zone = 2^64 - (2^64 mod n), computed without 128-bit arithmetic.
        let rem = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if rem == 0 || x < 0u64.wrapping_sub(rem) {
                return x % n;
            }
        }
    }
}

/// Step 3's selection, one stream across all requirements in the input's order.
pub fn select(input: &DrawInput, seed: [u8; 32]) -> Outcome {
    let mut stream = Stream::new(seed);
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    let mut result = BTreeMap::new();
    for req in &input.requirements {
        let mut pool: Vec<&str> = input
            .candidates
            .get(&req.category)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|id| !taken.contains(id))
            .collect();
        let len = pool.len() as u64;
        if len < req.count {
            return Outcome {
                status: Status::Insufficient,
                result: None,
            };
        }
        let m = (req.count.saturating_add(req.alternates)).min(len) as usize;
        for i in 0..m {
            let j = i + stream.uniform(len - i as u64) as usize;
            pool.swap(i, j);
        }
        let count = req.count as usize;
        taken.extend(pool[..m].iter().copied());
        result.insert(
            req.category.clone(),
            Selection {
                selected: pool[..count].iter().map(|s| s.to_string()).collect(),
                alternates: pool[count..m].iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    Outcome {
        status: Status::Executed,
        result: Some(result),
    }
}

/// The record of step 4, as stored, logged and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawRecord {
    /// The input exactly as hashed; kept as a JSON value so verification hashes what it was
    /// given, not a re-serialisation.
    pub input: Value,
    pub input_hash: String,
    pub server_secret: String,
    pub witness_entropy: String,
    pub seed: String,
    pub status: Status,
    #[serde(default)]
    pub result: Option<BTreeMap<String, Selection>>,
}

/// Executes a frozen input: the whole of step 3, returning the record.
pub fn execute(
    input: &DrawInput,
    server_secret: &[u8; 32],
    witness_entropy: &str,
) -> Result<DrawRecord, jcs::JcsError> {
    let input_hash = input.hash()?;
    let seed = seed(&input_hash, server_secret, witness_entropy);
    let outcome = select(input, seed);
    Ok(DrawRecord {
        input: input.to_value(),
        input_hash: hex::encode(input_hash),
        server_secret: hex::encode(server_secret),
        witness_entropy: witness_entropy.to_owned(),
        seed: hex::encode(seed),
        status: outcome.status,
        result: outcome.result,
    })
}

impl DrawRecord {
    /// `SHA256(JCS(record))`: what the transparency log carries for an executed draw.
    pub fn hash(&self) -> Result<[u8; 32], jcs::JcsError> {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        Ok(Sha256::digest(jcs::canonical(&value)?).into())
    }
}

/// What a verification established, check by check, for a human report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<String>,
}

/// The first check a record failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {detail}")]
pub struct Mismatch {
    pub check: &'static str,
    pub detail: String,
}

fn mismatch(check: &'static str, detail: impl Into<String>) -> Mismatch {
    Mismatch {
        check,
        detail: detail.into(),
    }
}

fn decode32(field: &'static str, hex_text: &str) -> Result<[u8; 32], Mismatch> {
    let bytes = hex::decode(hex_text).map_err(|_| mismatch(field, "is not hexadecimal"))?;
    bytes
        .try_into()
        .map_err(|_| mismatch(field, "is not 32 bytes"))
}

/// A record's JSON, read field by field with the error an inspector should see.
struct RecordFields(Value);

impl RecordFields {
    fn field(&self, name: &'static str) -> Result<&Value, Mismatch> {
        self.0
            .get(name)
            .ok_or_else(|| mismatch("record", format!("has no {name}")))
    }

    fn text(&self, name: &'static str) -> Result<String, Mismatch> {
        self.field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| mismatch("record", format!("{name} is not a string")))
    }
}

/// Verifies a record from its JSON text, as an inspector's tool does: recompute `input_hash`,
/// check the secret against the commitment, recompute the seed, rerun the selection.
pub fn verify(record_json: &[u8]) -> Result<Report, Mismatch> {
    let record = RecordFields(
        serde_json::from_slice(record_json).map_err(|e| mismatch("json", e.to_string()))?,
    );
    if jcs::has_duplicate_keys(record_json) {
        return Err(mismatch(
            "json",
            "a key appears twice in one object; the record is ambiguous",
        ));
    }
    let mut checks = Vec::new();
    let input_hash = check_input_hash(&record, &mut checks)?;
    let input: DrawInput = serde_json::from_value(record.field("input")?.clone())
        .map_err(|e| mismatch("input", e.to_string()))?;
    input.validate().map_err(|e| mismatch("input", e))?;
    checks.push(format!(
        "input is well formed: {} categories, {} candidate entries, {} exclusions",
        input.requirements.len(),
        input.candidates.values().map(Vec::len).sum::<usize>(),
        input.exclusions.len()
    ));
    let seed = check_seed(&record, &input, &input_hash, &mut checks)?;
    check_outcome(&record, &input, seed, &mut checks)?;
    Ok(Report { checks })
}

fn check_input_hash(record: &RecordFields, checks: &mut Vec<String>) -> Result<[u8; 32], Mismatch> {
    let canonical =
        jcs::canonical(record.field("input")?).map_err(|e| mismatch("input", e.to_string()))?;
    let input_hash: [u8; 32] = Sha256::digest(&canonical).into();
    let claimed = record.text("input_hash")?;
    if hex::encode(input_hash) != claimed {
        return Err(mismatch(
            "input_hash",
            format!(
                "SHA-256 of the canonical input is {}, the record says {claimed}",
                hex::encode(input_hash),
            ),
        ));
    }
    checks.push(format!(
        "input_hash {} is the SHA-256 of the canonical input",
        hex::encode(input_hash)
    ));
    Ok(input_hash)
}

/// The secret against the commitment, then the seed from hash, secret and witness.
fn check_seed(
    record: &RecordFields,
    input: &DrawInput,
    input_hash: &[u8; 32],
    checks: &mut Vec<String>,
) -> Result<[u8; 32], Mismatch> {
    let secret = decode32("server_secret", &record.text("server_secret")?)?;
    if commitment(&secret) != input.server_commitment {
        return Err(mismatch(
            "server_secret",
            format!(
                "its SHA-256 is {}, but the input committed to {}",
                commitment(&secret),
                input.server_commitment
            ),
        ));
    }
    checks.push("server_secret matches the commitment made before the witness".into());
    let witness = record.text("witness_entropy")?;
    if witness.len() > MAX_WITNESS_BYTES {
        return Err(mismatch("witness_entropy", "is longer than 1024 bytes"));
    }
    let expected_seed = seed(input_hash, &secret, &witness);
    let claimed = record.text("seed")?;
    if hex::encode(expected_seed) != claimed {
        return Err(mismatch(
            "seed",
            format!(
                "recomputed {} from the witness entropy {witness:?}, the record says {claimed}",
                hex::encode(expected_seed),
            ),
        ));
    }
    checks.push(format!(
        "seed {} recomputed from input_hash, secret and witness entropy {witness:?}",
        hex::encode(expected_seed)
    ));
    Ok(expected_seed)
}

/// Reruns the selection and compares status and result with the record's.
fn check_outcome(
    record: &RecordFields,
    input: &DrawInput,
    seed: [u8; 32],
    checks: &mut Vec<String>,
) -> Result<(), Mismatch> {
    let outcome = select(input, seed);
    let status: Status = serde_json::from_value(record.field("status")?.clone())
        .map_err(|e| mismatch("status", e.to_string()))?;
    if status != outcome.status {
        return Err(mismatch(
            "status",
            format!(
                "rerunning the selection gives {:?}, the record says {status:?}",
                outcome.status
            ),
        ));
    }
    let result: Option<BTreeMap<String, Selection>> = match record.0.get("result") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(serde_json::from_value(v.clone()).map_err(|e| mismatch("result", e.to_string()))?)
        }
    };
    if result != outcome.result {
        return Err(mismatch(
            "result",
            result_difference(&result, &outcome.result),
        ));
    }
    match &outcome.result {
        Some(result) => {
            for (category, sel) in result {
                checks.push(format!(
                    "{category}: selected {} alternates {} reproduced",
                    sel.selected.join(", "),
                    sel.alternates.join(", ")
                ));
            }
        }
        None => checks.push("status INSUFFICIENT reproduced".into()),
    }
    Ok(())
}

fn result_difference(
    claimed: &Option<BTreeMap<String, Selection>>,
    rerun: &Option<BTreeMap<String, Selection>>,
) -> String {
    match (claimed, rerun) {
        (Some(claimed), Some(actual)) => actual
            .iter()
            .find(|(c, sel)| claimed.get(*c) != Some(sel))
            .map(|(c, sel)| {
                format!(
                    "category {c}: rerun gives selected {:?} alternates {:?}, the record says {:?}",
                    sel.selected,
                    sel.alternates,
                    claimed.get(c)
                )
            })
            .unwrap_or_else(|| "the record has categories the rerun does not".into()),
        _ => "the record's result does not match the rerun".into(),
    }
}

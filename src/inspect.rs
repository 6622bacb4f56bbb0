//! The inspector's tools: `govit verify draw` (offline) and `govit verify log` (online against
//! the registry, or from exported files). Each prints one line per check passed and stops at
//! the first failure with a non-zero exit.

use std::path::{Path, PathBuf};

use anyhow::Context;
use govit_draw::merkle::{self, Hash, TreeHead};
use govit_platform::Role;
use govit_proto::experts::v1 as epb;
use serde::{Deserialize, Serialize};

use crate::{
    client::{Remote, explain, registry},
    config::Settings,
};

pub fn verify_draw(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match govit_draw::draw::verify(&bytes) {
        Ok(report) => {
            for check in report.checks {
                println!("ok    {check}");
            }
            let record: govit_draw::DrawRecord = serde_json::from_slice(&bytes)?;
            println!("ok    record hash {}", hex::encode(record.hash()?));
            println!("{}: the draw reproduces", path.display());
            Ok(())
        }
        Err(m) => {
            println!("FAIL  {}: {}", m.check, m.detail);
            anyhow::bail!(
                "{} does not reproduce: {} is wrong",
                path.display(),
                m.check
            )
        }
    }
}

/// An entry as exported: its index and its canonical JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedEntry {
    pub index: u64,
    pub entry_json: String,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The registry's public key (hex), from a trusted place. Without it the key the head
    /// carries is used, which proves integrity but not origin.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Check this tree head file instead of fetching the current head.
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Check the log's entries from this file (as `--save-entries` writes) instead of asking the
    /// registry: the root is recomputed from them.
    #[arg(long)]
    pub entries: Option<PathBuf>,
    /// Prove that this draw's execution is in the log.
    #[arg(long)]
    pub draw: Option<String>,
    /// Prove that this earlier head is a prefix of the current one.
    #[arg(long)]
    pub since: Option<PathBuf>,
    /// Write the head that was checked, for a later --since.
    #[arg(long)]
    pub save_head: Option<PathBuf>,
    /// Write every entry up to the head, for offline checks.
    #[arg(long)]
    pub save_entries: Option<PathBuf>,
}

fn ok(line: impl AsRef<str>) {
    println!("ok    {}", line.as_ref());
}

fn fail(line: String) -> anyhow::Error {
    println!("FAIL  {line}");
    anyhow::anyhow!(line)
}

fn hash(text: &str) -> anyhow::Result<Hash> {
    hex::decode(text)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{text} is not a 32-byte hash"))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))
}

pub async fn verify_log(settings: &Settings, args: &LogArgs) -> anyhow::Result<()> {
    let offline = args.entries.is_some() && args.head.is_some();
    let mut client = if offline {
        None
    } else {
        Some(registry(settings, &args.remote, Role::Inspector).await?)
    };

    let head: TreeHead = match (&args.head, client.as_mut()) {
        (Some(path), _) => read_json(path)?,
        (None, Some(c)) => {
            let h = c
                .get_log_head(epb::GetLogHeadRequest {})
                .await
                .map_err(explain)?
                .into_inner();
            TreeHead {
                tree_size: h.tree_size,
                root_hash: h.root_hash,
                timestamp: h.timestamp,
                signature: h.signature,
                public_key: h.public_key,
            }
        }
        (None, None) => anyhow::bail!("give --head with --entries, or a registry to ask"),
    };
    let key = match &args.public_key {
        Some(k) => k.clone(),
        None => {
            println!(
                "note  no --public-key: trusting the key in the head ({})",
                head.public_key
            );
            head.public_key.clone()
        }
    };
    head.verify(&key)
        .map_err(|e| fail(format!("tree head signature: {e}")))?;
    ok(format!(
        "tree head of size {} and root {} signed {} by {key}",
        head.tree_size, head.root_hash, head.timestamp
    ));
    let root = hash(&head.root_hash)?;

    // Leaves, when the entries are at hand (a file, or fetched for --save-entries).
    let mut entries: Option<Vec<ExportedEntry>> = match &args.entries {
        Some(path) => Some(read_json(path)?),
        None => None,
    };
    if entries.is_none() && args.save_entries.is_some() {
        let c = client
            .as_mut()
            .context("no registry to fetch entries from")?;
        let mut all = Vec::new();
        while (all.len() as u64) < head.tree_size {
            let page = c
                .list_log_entries(epb::ListLogEntriesRequest {
                    start: all.len() as u64,
                    limit: 1000,
                    draw_id: String::new(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            if page.entries.is_empty() {
                break;
            }
            all.extend(page.entries.into_iter().map(|e| ExportedEntry {
                index: e.index,
                entry_json: e.entry_json,
            }));
        }
        all.truncate(head.tree_size as usize);
        entries = Some(all);
    }
    let leaves: Option<Vec<Hash>> = entries.as_ref().map(|es| {
        es.iter()
            .map(|e| merkle::leaf_hash(e.entry_json.as_bytes()))
            .collect()
    });
    if let (Some(es), Some(leaves)) = (&entries, &leaves) {
        if es.iter().enumerate().any(|(i, e)| e.index != i as u64)
            || leaves.len() as u64 != head.tree_size
        {
            return Err(fail(format!(
                "the entries are not exactly indices 0..{}",
                head.tree_size
            )));
        }
        if merkle::root(leaves) != root {
            return Err(fail("the entries do not hash to the head's root".into()));
        }
        ok(format!("{} entries hash to the signed root", leaves.len()));
    }

    if let Some(draw_id) = &args.draw {
        let draw_id = draw_id.trim_start_matches("draws/");
        let (index, entry_json) = match (&entries, client.as_mut()) {
            (Some(es), _) => es
                .iter()
                .find(|e| {
                    e.entry_json.contains("\"draw_executed\"")
                        && e.entry_json.contains(&format!("\"draw_id\":\"{draw_id}\""))
                })
                .map(|e| (e.index, e.entry_json.clone()))
                .ok_or_else(|| fail(format!("no execution of {draw_id} among the entries")))?,
            (None, Some(c)) => {
                let found = c
                    .list_log_entries(epb::ListLogEntriesRequest {
                        start: 0,
                        limit: 1000,
                        draw_id: draw_id.to_owned(),
                    })
                    .await
                    .map_err(explain)?
                    .into_inner()
                    .entries
                    .into_iter()
                    .find(|e| {
                        e.entry_json.contains("\"draw_executed\"") && e.index < head.tree_size
                    })
                    .ok_or_else(|| {
                        fail(format!(
                            "the log has no execution of {draw_id} within the head"
                        ))
                    })?;
                (found.index, found.entry_json)
            }
            (None, None) => unreachable!("offline mode always has entries"),
        };
        let path: Vec<Hash> = match (&leaves, client.as_mut()) {
            (Some(leaves), _) => merkle::inclusion_proof(index as usize, leaves),
            (None, Some(c)) => c
                .get_inclusion_proof(epb::GetInclusionProofRequest {
                    index,
                    tree_size: head.tree_size,
                })
                .await
                .map_err(explain)?
                .into_inner()
                .hashes
                .iter()
                .map(|h| hash(h))
                .collect::<anyhow::Result<_>>()?,
            (None, None) => unreachable!("offline mode always has entries"),
        };
        if !merkle::verify_inclusion(
            index,
            head.tree_size,
            &merkle::leaf_hash(entry_json.as_bytes()),
            &path,
            &root,
        ) {
            return Err(fail(format!(
                "the execution of {draw_id} (entry {index}) is not in the signed tree"
            )));
        }
        let entry: serde_json::Value = serde_json::from_str(&entry_json)?;
        ok(format!(
            "execution of {draw_id} is entry {index}, record hash {}, included in the signed tree",
            entry["record_hash"].as_str().unwrap_or("?")
        ));
    }

    if let Some(path) = &args.since {
        let old: TreeHead = read_json(path)?;
        old.verify(&key)
            .map_err(|e| fail(format!("earlier head signature: {e}")))?;
        let old_root = hash(&old.root_hash)?;
        let proof: Vec<Hash> = match (&leaves, client.as_mut()) {
            (Some(leaves), _) => merkle::consistency_proof(old.tree_size as usize, leaves),
            (None, Some(c)) => c
                .get_consistency_proof(epb::GetConsistencyProofRequest {
                    old_size: old.tree_size,
                    new_size: head.tree_size,
                })
                .await
                .map_err(explain)?
                .into_inner()
                .hashes
                .iter()
                .map(|h| hash(h))
                .collect::<anyhow::Result<_>>()?,
            (None, None) => unreachable!("offline mode always has entries"),
        };
        if !merkle::verify_consistency(old.tree_size, head.tree_size, &old_root, &root, &proof) {
            return Err(fail(format!(
                "the head of size {} is not a prefix of the head of size {}: the log was rewritten",
                old.tree_size, head.tree_size
            )));
        }
        ok(format!(
            "the earlier head of size {} ({}) is a prefix of this one",
            old.tree_size, old.timestamp
        ));
    }

    if let Some(path) = &args.save_head {
        std::fs::write(path, serde_json::to_string_pretty(&head)? + "\n")?;
        println!("head saved to {}", path.display());
    }
    if let (Some(path), Some(es)) = (&args.save_entries, &entries) {
        std::fs::write(path, serde_json::to_string_pretty(es)? + "\n")?;
        println!("{} entries saved to {}", es.len(), path.display());
    }
    println!("the log checks out");
    Ok(())
}

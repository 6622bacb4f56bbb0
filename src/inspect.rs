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
    client::{Registry, Remote, explain, registry},
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
    /// Check the registry's C2SP checkpoint instead, signed by this log verifier key
    /// (`<origin>+<key id>+<key>`, as the registry logs at start).
    #[arg(long)]
    pub log_vkey: Option<String>,
    /// A witness whose cosignature counts, by its verifier key; repeat for each.
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// How many of the given witnesses must have cosigned (default: all of them).
    #[arg(long)]
    pub threshold: Option<usize>,
    /// Check a static copy, as `govit log export` writes it, instead of asking the registry:
    /// the checkpoint, and the tree recomputed from its tiles.
    #[arg(long = "static")]
    pub static_dir: Option<PathBuf>,
}

pub(crate) fn ok(line: impl AsRef<str>) {
    println!("ok    {}", line.as_ref());
}

pub(crate) fn fail(line: String) -> anyhow::Error {
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

/// What `verify log` has established so far: the signed head and, where they are at hand,
/// the entries and their leaf hashes. Without entries, proofs are asked of the registry.
struct LogCheck {
    client: Option<Registry>,
    head: TreeHead,
    root: Hash,
    key: String,
    entries: Option<Vec<ExportedEntry>>,
    leaves: Option<Vec<Hash>>,
}

pub async fn verify_log(settings: &Settings, args: &LogArgs) -> anyhow::Result<()> {
    if let Some(vkey) = &args.log_vkey {
        return crate::inspect_checkpoint::verify_checkpoint(args, vkey).await;
    }
    let offline = args.entries.is_some() && args.head.is_some();
    let mut client = if offline {
        None
    } else {
        Some(registry(settings, &args.remote, Role::Inspector).await?)
    };
    let head = read_head(args, client.as_mut()).await?;
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
    let mut check = LogCheck {
        client,
        head,
        root,
        key,
        entries: None,
        leaves: None,
    };
    check.load_entries(args).await?;
    check.check_entries()?;
    if let Some(draw_id) = &args.draw {
        check
            .check_draw(draw_id.trim_start_matches("draws/"))
            .await?;
    }
    if let Some(path) = &args.since {
        check.check_since(path).await?;
    }
    check.save(args)?;
    println!("the log checks out");
    Ok(())
}

/// The head from its file, or the registry's current one.
async fn read_head(args: &LogArgs, client: Option<&mut Registry>) -> anyhow::Result<TreeHead> {
    match (&args.head, client) {
        (Some(path), _) => read_json(path),
        (None, Some(c)) => {
            let h = c
                .get_log_head(epb::GetLogHeadRequest {})
                .await
                .map_err(explain)?
                .into_inner();
            Ok(TreeHead {
                tree_size: h.tree_size,
                root_hash: h.root_hash,
                timestamp: h.timestamp,
                signature: h.signature,
                public_key: h.public_key,
            })
        }
        (None, None) => anyhow::bail!("give --head with --entries, or a registry to ask"),
    }
}

fn parse_hashes(hashes: &[String]) -> anyhow::Result<Vec<Hash>> {
    hashes.iter().map(|h| hash(h)).collect()
}

impl LogCheck {
    fn registry(&mut self) -> anyhow::Result<&mut Registry> {
        // Offline mode always has entries, so no path that needs the registry reaches here.
        self.client.as_mut().context("no registry to ask")
    }

    /// Leaves, when the entries are at hand (a file, or fetched for --save-entries).
    async fn load_entries(&mut self, args: &LogArgs) -> anyhow::Result<()> {
        self.entries = match &args.entries {
            Some(path) => Some(read_json(path)?),
            None if args.save_entries.is_some() => Some(self.fetch_entries().await?),
            None => None,
        };
        self.leaves = self.entries.as_ref().map(|es| {
            es.iter()
                .map(|e| merkle::leaf_hash(e.entry_json.as_bytes()))
                .collect()
        });
        Ok(())
    }

    async fn fetch_entries(&mut self) -> anyhow::Result<Vec<ExportedEntry>> {
        let size = self.head.tree_size;
        let c = self.registry()?;
        let mut all = Vec::new();
        let progress = crate::progress::bar(size, "log entries read", false);
        while (all.len() as u64) < size {
            let page = c
                .list_log_entries(epb::ListLogEntriesRequest {
                    start: all.len() as u64,
                    page_size: 1000,
                    ..Default::default()
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
            progress.set_position(all.len() as u64);
        }
        progress.finish_and_clear();
        all.truncate(size as usize);
        Ok(all)
    }

    fn check_entries(&self) -> anyhow::Result<()> {
        let (Some(es), Some(leaves)) = (&self.entries, &self.leaves) else {
            return Ok(());
        };
        if es.iter().enumerate().any(|(i, e)| e.index != i as u64)
            || leaves.len() as u64 != self.head.tree_size
        {
            return Err(fail(format!(
                "the entries are not exactly indices 0..{}",
                self.head.tree_size
            )));
        }
        if merkle::root(leaves) != self.root {
            return Err(fail("the entries do not hash to the head's root".into()));
        }
        ok(format!("{} entries hash to the signed root", leaves.len()));
        Ok(())
    }

    /// The execution entry of `draw_id`: its index and canonical JSON.
    async fn execution_entry(&mut self, draw_id: &str) -> anyhow::Result<(u64, String)> {
        if let Some(es) = &self.entries {
            return es
                .iter()
                .find(|e| {
                    e.entry_json.contains("\"draw_executed\"")
                        && e.entry_json.contains(&format!("\"draw_id\":\"{draw_id}\""))
                })
                .map(|e| (e.index, e.entry_json.clone()))
                .ok_or_else(|| fail(format!("no execution of {draw_id} among the entries")));
        }
        let size = self.head.tree_size;
        let mut page_token = String::new();
        loop {
            let page = self
                .registry()?
                .list_log_entries(epb::ListLogEntriesRequest {
                    page_size: 1000,
                    page_token,
                    draw_id: draw_id.to_owned(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner();
            let found = page
                .entries
                .into_iter()
                .find(|e| e.entry_json.contains("\"draw_executed\"") && e.index < size);
            if let Some(found) = found {
                return Ok((found.index, found.entry_json));
            }
            if page.next_page_token.is_empty() {
                return Err(fail(format!(
                    "the log has no execution of {draw_id} within the head"
                )));
            }
            page_token = page.next_page_token;
        }
    }

    async fn check_draw(&mut self, draw_id: &str) -> anyhow::Result<()> {
        let (index, entry_json) = self.execution_entry(draw_id).await?;
        let size = self.head.tree_size;
        let path: Vec<Hash> = match &self.leaves {
            Some(leaves) => merkle::inclusion_proof(index as usize, leaves),
            None => parse_hashes(
                &self
                    .registry()?
                    .get_inclusion_proof(epb::GetInclusionProofRequest {
                        index,
                        tree_size: size,
                    })
                    .await
                    .map_err(explain)?
                    .into_inner()
                    .hashes,
            )?,
        };
        let leaf = merkle::leaf_hash(entry_json.as_bytes());
        if !merkle::verify_inclusion(index, size, &leaf, &path, &self.root) {
            return Err(fail(format!(
                "the execution of {draw_id} (entry {index}) is not in the signed tree"
            )));
        }
        let entry: serde_json::Value = serde_json::from_str(&entry_json)?;
        ok(format!(
            "execution of {draw_id} is entry {index}, record hash {}, included in the signed tree",
            entry["record_hash"].as_str().unwrap_or("?")
        ));
        Ok(())
    }

    async fn check_since(&mut self, path: &Path) -> anyhow::Result<()> {
        let old: TreeHead = read_json(path)?;
        old.verify(&self.key)
            .map_err(|e| fail(format!("earlier head signature: {e}")))?;
        let old_root = hash(&old.root_hash)?;
        let size = self.head.tree_size;
        let proof: Vec<Hash> = match &self.leaves {
            Some(leaves) => merkle::consistency_proof(old.tree_size as usize, leaves),
            None => parse_hashes(
                &self
                    .registry()?
                    .get_consistency_proof(epb::GetConsistencyProofRequest {
                        old_size: old.tree_size,
                        new_size: size,
                    })
                    .await
                    .map_err(explain)?
                    .into_inner()
                    .hashes,
            )?,
        };
        if !merkle::verify_consistency(old.tree_size, size, &old_root, &self.root, &proof) {
            return Err(fail(format!(
                "the head of size {} is not a prefix of the head of size {size}: the log was rewritten",
                old.tree_size
            )));
        }
        ok(format!(
            "the earlier head of size {} ({}) is a prefix of this one",
            old.tree_size, old.timestamp
        ));
        Ok(())
    }

    fn save(&self, args: &LogArgs) -> anyhow::Result<()> {
        if let Some(path) = &args.save_head {
            std::fs::write(path, serde_json::to_string_pretty(&self.head)? + "\n")?;
            println!("head saved to {}", path.display());
        }
        if let (Some(path), Some(es)) = (&args.save_entries, &self.entries) {
            std::fs::write(path, serde_json::to_string_pretty(es)? + "\n")?;
            println!("{} entries saved to {}", es.len(), path.display());
        }
        Ok(())
    }
}

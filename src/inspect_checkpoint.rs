//! `govit verify log --log-vkey …`: the registry's C2SP checkpoint, its witnesses'
//! cosignatures against a threshold, and, from a static copy, the whole tree recomputed from
//! its tiles — with nothing but the files and the published keys.

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::Context;
use govit_draw::{
    merkle::{
        self, Hash,
        nodes::{self, NodeId},
    },
    note::{Checkpoint, Note, TYPE_COSIGNATURE_V1, TYPE_ED25519, Verifier},
    tiles::{self, Tile, TileKind},
};

use crate::inspect::{LogArgs, fail, ok};

pub async fn verify_checkpoint(args: &LogArgs, log_vkey: &str) -> anyhow::Result<()> {
    let log = Verifier::parse(log_vkey).context("--log-vkey")?;
    anyhow::ensure!(
        log.kind == TYPE_ED25519,
        "--log-vkey is not a log key (type 0x01)"
    );
    let text = match &args.static_dir {
        Some(dir) => std::fs::read_to_string(dir.join("checkpoint"))
            .with_context(|| format!("reading {}", dir.join("checkpoint").display()))?,
        None => fetch_checkpoint(&args.remote.server).await?,
    };
    let note = Note::parse(&text).map_err(|e| fail(format!("checkpoint: {e}")))?;
    note.verify(&log)
        .map_err(|e| fail(format!("checkpoint signature: {e}")))?;
    let checkpoint = Checkpoint::parse(&note.text).map_err(|e| fail(format!("checkpoint: {e}")))?;
    if checkpoint.origin != log.name {
        return Err(fail(format!(
            "the checkpoint names log {:?}, the key {:?}",
            checkpoint.origin, log.name
        )));
    }
    ok(format!(
        "checkpoint of {} at size {} signed by the log's key",
        checkpoint.origin, checkpoint.size
    ));
    check_witnesses(&note, args)?;
    if let Some(dir) = &args.static_dir {
        check_tiles(dir, &checkpoint)?;
    }
    println!("the log checks out");
    Ok(())
}

async fn fetch_checkpoint(server: &str) -> anyhow::Result<String> {
    let url = format!("{}/checkpoint", server.trim_end_matches('/'));
    let reply = govit_platform::http::request(
        http::Method::GET,
        &url,
        &[],
        Vec::new(),
        Duration::from_secs(30),
    )
    .await?;
    anyhow::ensure!(reply.status == 200, "{url} answered {}", reply.status);
    Ok(String::from_utf8(reply.body)?)
}

/// Counts the cosignatures of the given witnesses; fewer than the threshold is a failure.
fn check_witnesses(note: &Note, args: &LogArgs) -> anyhow::Result<()> {
    let threshold = args.threshold.unwrap_or(args.witnesses.len());
    anyhow::ensure!(
        threshold <= args.witnesses.len(),
        "--threshold {threshold} is more than the {} witnesses given",
        args.witnesses.len()
    );
    let mut cosigned = 0;
    for vkey in &args.witnesses {
        let witness = Verifier::parse(vkey).with_context(|| format!("--witness {vkey}"))?;
        anyhow::ensure!(
            witness.kind == TYPE_COSIGNATURE_V1,
            "--witness {} is not a witness key (type 0x04)",
            witness.name
        );
        match note.verify(&witness) {
            Ok(times) => {
                cosigned += 1;
                let at = chrono::DateTime::from_timestamp(times[0] as i64, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                ok(format!("cosigned by witness {} at {at}", witness.name));
            }
            Err(e) => println!("note  witness {}: {e}", witness.name),
        }
    }
    if cosigned < threshold {
        return Err(fail(format!(
            "{cosigned} of the {} witnesses cosigned this checkpoint; {threshold} are required",
            args.witnesses.len()
        )));
    }
    if threshold > 0 {
        ok(format!(
            "{cosigned} witnesses cosigned (threshold {threshold})"
        ));
    }
    Ok(())
}

fn read_tile(dir: &Path, tile: &Tile) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(dir.join(tile.path())) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", tile.path())),
    }
}

/// Recomputes the tree from the level-0 tiles and checks the root, every other tile, and the
/// entry bundles that are there against it.
fn check_tiles(dir: &Path, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let all = tiles::all_tiles(checkpoint.size);
    let mut computed: HashMap<NodeId, Hash> = HashMap::new();
    let mut index = 0u64;
    for tile in all
        .iter()
        .filter(|t| t.kind == TileKind::Hashes { level: 0 })
    {
        let bytes =
            read_tile(dir, tile)?.ok_or_else(|| fail(format!("{} is missing", tile.path())))?;
        if bytes.len() != usize::from(tile.width) * 32 {
            return Err(fail(format!(
                "{} is not {} hashes",
                tile.path(),
                tile.width
            )));
        }
        for leaf in bytes.chunks(32) {
            let leaf: Hash = leaf.try_into()?;
            let made = nodes::append(index, leaf, &|id| computed.get(&id).copied())?;
            computed.extend(made);
            index += 1;
        }
    }
    let root = nodes::root(checkpoint.size, &|id| computed.get(&id).copied())?;
    if root != checkpoint.root {
        return Err(fail(
            "the leaf hashes of the tiles do not hash to the checkpoint's root".into(),
        ));
    }
    ok(format!(
        "{} leaf hashes in the tiles hash to the checkpoint's root",
        checkpoint.size
    ));
    let mut bundles = 0;
    for tile in &all {
        let Some(bytes) = read_tile(dir, tile)? else {
            if tile.kind == TileKind::Entries {
                continue;
            }
            return Err(fail(format!("{} is missing", tile.path())));
        };
        let expected: Vec<u8> = match tile.kind {
            TileKind::Hashes { .. } => tile
                .nodes()
                .iter()
                .map(|id| computed.get(id).copied())
                .collect::<Option<Vec<Hash>>>()
                .context("a tile beyond the tree")?
                .concat(),
            TileKind::Entries => {
                let entries = tiles::read_bundle(&bytes)
                    .ok_or_else(|| fail(format!("{} is truncated", tile.path())))?;
                bundles += 1;
                entries
                    .iter()
                    .map(|e| merkle::leaf_hash(e))
                    .collect::<Vec<Hash>>()
                    .concat()
            }
        };
        let actual = match tile.kind {
            TileKind::Hashes { .. } => bytes,
            TileKind::Entries => tile
                .entries()
                .map(|i| computed[&NodeId { level: 0, index: i }])
                .collect::<Vec<Hash>>()
                .concat(),
        };
        if expected != actual {
            return Err(fail(format!("{} does not match the tree", tile.path())));
        }
    }
    ok(format!(
        "every tile matches the tree; {bundles} entry bundles hash to their leaves"
    ));
    Ok(())
}

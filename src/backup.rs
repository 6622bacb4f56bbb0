//! `govit backup` and `govit restore` for the embedded databases and the document blobs.
//!
//! A backup is taken online: each SQLite database is copied with `VACUUM INTO`, a consistent
//! snapshot taken inside one read transaction while the services keep writing. Blobs are copied
//! after the databases, so every blob a copied database names is in the copy (a blob is written
//! before the transaction that names it commits). A PostgreSQL database is backed up with its own
//! tools (`pg_dump`); docs/operations.md says how.

use std::path::Path;

use anyhow::Context;
use govit_platform::db::{Backend, Db, sqlite_file_path};

use crate::config::{ServiceName, Settings};

/// Copies every embedded database and the blob directory into `dir`, which must not exist.
pub async fn backup(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !dir.exists(),
        "{} exists; a backup goes into a new directory",
        dir.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for service in ServiceName::ALL {
        let url = settings.database_url(service, None);
        if Backend::of_url(&url)? == Backend::Postgres {
            println!(
                "{}: on PostgreSQL; back it up with pg_dump (docs/operations.md)",
                service.as_str()
            );
            continue;
        }
        let target = dir.join(format!("{}.db", service.as_str()));
        let db = Db::connect(&url).await?;
        let quoted = target.display().to_string().replace('\'', "''");
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{quoted}'")))
            .execute(&db.pool)
            .await
            .with_context(|| format!("copying the {} database", service.as_str()))?;
        db.pool.close().await;
        println!("{}: {}", service.as_str(), target.display());
    }
    let blobs = copy_tree(&settings.blob_dir, &dir.join("blobs"))?;
    println!("blobs: {blobs} files");
    // The log's signing key: a restore without it would sign as a different log. The backup
    // holds a secret from here on; keep it as guarded as the key file.
    let keys = copy_tree(&settings.keys_dir(), &dir.join("keys"))?;
    println!("keys: {keys} files");
    Ok(())
}

/// Puts a backup's databases and blobs where the settings say they live. The services must be
/// stopped; existing databases are replaced only with `force`.
pub fn restore(settings: &Settings, dir: &Path, force: bool) -> anyhow::Result<()> {
    let mut plan = Vec::new();
    for service in ServiceName::ALL {
        let source = dir.join(format!("{}.db", service.as_str()));
        if !source.exists() {
            continue;
        }
        let url = settings.database_url(service, None);
        let target = sqlite_file_path(&url).with_context(|| {
            format!(
                "{} is configured on {url}; restore a PostgreSQL database with pg_restore",
                service.as_str()
            )
        })?;
        anyhow::ensure!(
            force || !Path::new(&target).exists(),
            "{target} exists; stop the services and pass --force to replace it"
        );
        plan.push((source, std::path::PathBuf::from(target)));
    }
    anyhow::ensure!(!plan.is_empty(), "{} holds no database", dir.display());
    let (backup_keys, keys_dir) = (dir.join("keys"), settings.keys_dir());
    // A different key beside the restored log would sign as another log: replace it only when
    // told to, like the databases.
    if backup_keys.exists() && !force {
        for entry in std::fs::read_dir(&backup_keys)? {
            let entry = entry?;
            let present = keys_dir.join(entry.file_name());
            anyhow::ensure!(
                !present.exists() || std::fs::read(&present)? == std::fs::read(entry.path())?,
                "{} holds another key; pass --force to replace it",
                present.display()
            );
        }
    }
    for (source, target) in plan {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // The old write-ahead log belongs to the old database; left beside the restored file
        // it would be replayed into it.
        for suffix in ["-wal", "-shm"] {
            let side = format!("{}{suffix}", target.display());
            if Path::new(&side).exists() {
                std::fs::remove_file(&side)?;
            }
        }
        std::fs::copy(&source, &target)
            .with_context(|| format!("restoring {}", target.display()))?;
        println!("restored {}", target.display());
    }
    let blobs = copy_tree(&dir.join("blobs"), &settings.blob_dir)?;
    println!(
        "restored {blobs} blobs into {}",
        settings.blob_dir.display()
    );
    let keys = copy_tree(&backup_keys, &keys_dir)?;
    println!("restored {keys} key files");
    Ok(())
}

/// Copies the files under `from` into `to`, keeping the layout; a missing `from` is empty.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<usize> {
    if !from.exists() {
        return Ok(0);
    }
    std::fs::create_dir_all(to)?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copied += copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

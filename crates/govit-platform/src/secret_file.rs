//! Files that hold a secret (the log's signing key, a witness's key): made once, readable by
//! their owner only.

use std::{io::Write, path::Path};

use anyhow::Context;

/// Writes `contents` to a new file at `path` (its directory made if need be), readable and
/// writable by its owner only, and synced. An existing file is an error: two starts racing to
/// make a key must not overwrite each other's.
pub fn create(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the directory of {}", path.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

//! Document content lives outside the database, in a blob directory: one file per document,
//! named by its id. Uploads stream into a temporary file first, so a rejected upload leaves
//! nothing behind.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::{fs, io::AsyncWriteExt};

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// An upload in progress: content goes to a temporary file while its hash and size are kept.
pub struct PendingBlob {
    /// Removed on drop unless the upload finished: a cut-off upload leaves nothing.
    path: TempPath,
    file: fs::File,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

#[derive(Debug)]
pub enum UploadError {
    TooLarge { limit: u64 },
    Io(std::io::Error),
}

impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        UploadError::Io(e)
    }
}

impl BlobStore {
    pub async fn open(root: &Path) -> std::io::Result<BlobStore> {
        fs::create_dir_all(root.join("tmp")).await?;
        // Leftovers of uploads cut off by a crash are never referenced; clear them.
        let mut entries = fs::read_dir(root.join("tmp")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let _ = fs::remove_file(entry.path()).await;
        }
        Ok(BlobStore {
            root: root.to_owned(),
        })
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub async fn begin(&self, limit: u64) -> std::io::Result<PendingBlob> {
        let path = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let file = fs::File::create(&path).await?;
        Ok(PendingBlob {
            path: TempPath(path),
            file,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Moves a finished upload to its final name.
    pub async fn place(&self, blob: FinishedBlob, id: &str) -> std::io::Result<()> {
        fs::rename(&blob.path.0, self.path_of(id)).await?;
        blob.path.disarm();
        Ok(())
    }

    pub async fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.path_of(id)).await;
    }

    /// Files in the store, temporary ones included: for tests that check nothing was left.
    pub async fn count_files(&self) -> std::io::Result<usize> {
        let mut count = 0;
        for dir in [self.root.clone(), self.root.join("tmp")] {
            let mut entries = fs::read_dir(dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                if entry.file_type().await?.is_file() {
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

impl PendingBlob {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Flushes the file; what is returned knows its size and hex SHA-256.
    pub async fn finish(mut self) -> std::io::Result<FinishedBlob> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let sha256 = hex::encode(self.hasher.finalize_reset());
        Ok(FinishedBlob {
            path: self.path,
            size: self.size,
            sha256,
        })
    }
}

/// A complete upload still in the temporary directory; removed on drop unless placed.
pub struct FinishedBlob {
    path: TempPath,
    pub size: u64,
    pub sha256: String,
}

struct TempPath(PathBuf);

impl TempPath {
    fn disarm(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

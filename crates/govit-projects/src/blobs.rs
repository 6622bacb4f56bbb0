//! Document content lives outside the database, in a blob directory: one file per document,
//! named by its id. Uploads stream into a temporary file first, so a rejected upload leaves
//! nothing behind. Resumable uploads keep their bytes in `uploads/`, one file per upload,
//! until they are finished (moved to their document's name), cancelled or expired.

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
        // Not cleared: resumable uploads outlive a restart, and expire by their rows.
        fs::create_dir_all(root.join("uploads")).await?;
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
            path: TempPath::armed(path),
            file,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Moves a finished upload to its final name.
    pub async fn place(&self, blob: FinishedBlob, id: &str) -> std::io::Result<()> {
        if blob.cut_to_size {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(&blob.path.path)
                .await?;
            file.set_len(blob.size).await?;
            file.sync_all().await?;
        }
        fs::rename(&blob.path.path, self.path_of(id)).await?;
        blob.path.disarm();
        Ok(())
    }

    fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.root.join("uploads").join(upload_id)
    }

    pub async fn create_upload(&self, upload_id: &str) -> std::io::Result<()> {
        fs::File::create(self.upload_path(upload_id)).await?;
        Ok(())
    }

    /// Writes `data` at `offset` of an upload's file and syncs it, so that what an append
    /// acknowledged survives a crash. Writing at an offset, not appending, makes a chunk sent
    /// again land on the same bytes.
    pub async fn write_upload(
        &self,
        upload_id: &str,
        offset: u64,
        data: &[u8],
    ) -> std::io::Result<()> {
        use tokio::io::AsyncSeekExt;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open(self.upload_path(upload_id))
            .await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        file.write_all(data).await?;
        file.sync_data().await
    }

    /// An upload's first `size` bytes as a finished blob, hashed; bytes past `size` (written by
    /// an append whose row update never happened) are cut off. Not removed on drop: if making
    /// the document fails, the upload keeps its bytes and can be finished again.
    pub async fn finish_upload(&self, upload_id: &str, size: u64) -> std::io::Result<FinishedBlob> {
        use tokio::io::AsyncReadExt;
        let path = TempPath {
            path: self.upload_path(upload_id),
            armed: false,
        };
        let file = fs::File::open(&path.path).await?;
        // Only the bytes acknowledged; the file is cut to them when placed, under the upload's
        // lock, so an append racing this finish loses nothing it was told it had.
        let mut acknowledged = file.take(size);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut read = 0;
        loop {
            let n = acknowledged.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            read += n as u64;
            hasher.update(&buf[..n]);
        }
        if read != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("upload {upload_id} has {read} of its {size} bytes"),
            ));
        }
        Ok(FinishedBlob {
            path,
            size,
            sha256: hex::encode(hasher.finalize()),
            cut_to_size: true,
        })
    }

    pub async fn upload_exists(&self, upload_id: &str) -> bool {
        fs::try_exists(self.upload_path(upload_id))
            .await
            .unwrap_or(false)
    }

    pub async fn remove_upload(&self, upload_id: &str) {
        let _ = fs::remove_file(self.upload_path(upload_id)).await;
    }

    pub async fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.path_of(id)).await;
    }

    /// Files in the store, temporary ones included: for tests that check nothing was left.
    pub async fn count_files(&self) -> std::io::Result<usize> {
        let mut count = 0;
        for dir in [
            self.root.clone(),
            self.root.join("tmp"),
            self.root.join("uploads"),
        ] {
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
            cut_to_size: false,
        })
    }
}

/// A complete upload still in the temporary directory; removed on drop unless placed.
pub struct FinishedBlob {
    path: TempPath,
    pub size: u64,
    pub sha256: String,
    /// A resumable upload's file may hold bytes past `size` (an append whose row update never
    /// happened): cut when placed.
    cut_to_size: bool,
}

/// A file that is removed when dropped, unless disarmed (or made unarmed: a resumable upload's
/// bytes, which must survive a finish that fails).
struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    fn armed(path: PathBuf) -> TempPath {
        TempPath { path, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

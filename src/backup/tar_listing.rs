//! Lists a tar stream as it passes by: each regular file's path, size and
//! CRC32C. Proves the bytes we upload are a well-formed tar and gives the
//! manifest check something to compare with, without touching local disk.

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes in flight between the uploader and the tar reader.
const QUEUE_MESSAGES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarFile {
    /// As the manifest names it: tablespace files under pg_tblspc/<oid>/.
    pub path: String,
    pub size: u64,
    pub crc32c: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TarListing {
    pub files: Vec<TarFile>,
    /// Directories, symlinks and other non-file entries.
    pub other_entries: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{archive} is not a valid tar stream: {reason}; the server or network damaged the backup, take it again")]
pub struct TarError {
    pub archive: String,
    pub reason: String,
}

/// Feeds one archive's bytes, in order, to a tar reader on its own task.
pub struct TarLister {
    archive: String,
    tx: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<Result<TarListing, TarError>>,
}

impl TarLister {
    /// `path_prefix` is prepended to every entry's path ("pg_tblspc/16384/"
    /// for a tablespace archive, "" for base.tar).
    pub fn start(archive: &str, path_prefix: &str) -> TarLister {
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_MESSAGES);
        let (name, prefix) = (archive.to_string(), path_prefix.to_string());
        let task = tokio::spawn(async move {
            list(rx, &prefix).await.map_err(|e| TarError {
                archive: name,
                reason: e.to_string(),
            })
        });
        TarLister {
            archive: archive.to_string(),
            tx: Some(tx),
            task,
        }
    }

    /// Hands the next bytes to the reader; waits when it is behind.
    pub async fn feed(&mut self, data: Bytes) -> Result<(), TarError> {
        let Some(tx) = &self.tx else {
            return Err(self.error("fed after finish"));
        };
        if tx.send(data).await.is_ok() {
            return Ok(());
        }
        // The reader stopped early: it found an error, which finish reports.
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(_) => Err(self.error("the reader stopped before the end of the stream")),
        }
    }

    /// Ends the stream and returns what the reader found.
    pub async fn finish(mut self) -> Result<TarListing, TarError> {
        self.tx = None;
        self.join().await
    }

    async fn join(&mut self) -> Result<TarListing, TarError> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(self.error(&format!("the reader task failed: {e}"))),
        }
    }

    fn error(&self, reason: &str) -> TarError {
        TarError {
            archive: self.archive.clone(),
            reason: reason.to_string(),
        }
    }
}

async fn list(mut rx: mpsc::Receiver<Bytes>, prefix: &str) -> std::io::Result<TarListing> {
    let chunks = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    let mut reader = tokio_util::io::StreamReader::new(chunks);
    let mut listing = TarListing::default();
    let mut buf = vec![0u8; 64 << 10];
    {
        let mut archive = tokio_tar::Archive::new(&mut reader);
        let mut entries = archive.entries()?;
        while let Some(entry) = entries.next().await {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                listing.other_entries += 1;
                continue;
            }
            let path = format!("{prefix}{}", entry.path()?.to_string_lossy());
            let (mut size, mut crc) = (0u64, 0u32);
            loop {
                let n = entry.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                size += n as u64;
            }
            listing.files.push(TarFile {
                path,
                size,
                crc32c: crc,
            });
        }
    }
    // After the end-of-archive block only zero padding may follow.
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(std::io::Error::other(
                "data after the end-of-archive marker",
            ));
        }
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tar_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tokio_tar::Builder::new(Vec::new());
        let mut dir = tokio_tar::Header::new_ustar();
        dir.set_entry_type(tokio_tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o700);
        dir.set_cksum();
        builder
            .append_data(&mut dir, "global/", &[][..])
            .await
            .unwrap();
        for (path, data) in files {
            let mut header = tokio_tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).await.unwrap();
        }
        builder.into_inner().await.unwrap()
    }

    async fn feed_in_pieces(
        bytes: &[u8],
        piece: usize,
        prefix: &str,
    ) -> Result<TarListing, TarError> {
        let mut lister = TarLister::start("base.tar", prefix);
        for chunk in bytes.chunks(piece) {
            lister.feed(Bytes::copy_from_slice(chunk)).await?;
        }
        lister.finish().await
    }

    #[tokio::test]
    async fn lists_files_with_sizes_and_crcs_across_arbitrary_splits() {
        let big = vec![7u8; 100_000];
        let bytes = tar_bytes(&[("PG_VERSION", b"15\n"), ("global/pg_control", &big)]).await;
        for piece in [1, 511, 512, 4096, bytes.len()] {
            let listing = feed_in_pieces(&bytes, piece, "pg_tblspc/1/").await.unwrap();
            assert_eq!(
                listing.files,
                vec![
                    TarFile {
                        path: "pg_tblspc/1/PG_VERSION".into(),
                        size: 3,
                        crc32c: crc32c::crc32c(b"15\n")
                    },
                    TarFile {
                        path: "pg_tblspc/1/global/pg_control".into(),
                        size: 100_000,
                        crc32c: crc32c::crc32c(&big)
                    },
                ],
                "piece size {piece}"
            );
        }
    }

    #[tokio::test]
    async fn a_stream_without_the_end_marker_is_accepted() {
        let bytes = tar_bytes(&[("PG_VERSION", b"15\n")]).await;
        // PostgreSQL before 15 left out the two zero blocks.
        let listing = feed_in_pieces(&bytes[..bytes.len() - 1024], 100, "")
            .await
            .unwrap();
        assert_eq!(listing.files.len(), 1);
    }

    #[tokio::test]
    async fn damaged_streams_are_refused() {
        let mut bytes = tar_bytes(&[("PG_VERSION", b"15\n")]).await;
        let mut flipped = bytes.clone();
        flipped[10] ^= 0x40; // inside the name: the header checksum no longer matches
        assert!(feed_in_pieces(&flipped, 700, "").await.is_err());
        assert!(
            feed_in_pieces(&bytes[..600], 700, "").await.is_err(),
            "truncated inside a file"
        );
        bytes.extend_from_slice(b"garbage after the end");
        let e = feed_in_pieces(&bytes, 700, "").await.unwrap_err();
        assert!(e.to_string().contains("base.tar"), "{e}");
    }
}

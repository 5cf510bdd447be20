//! The downloaded chunks of one tar archive, in order, as a plain
//! `std::io::Read` for the tar parser on its blocking thread.

use bytes::{Buf as _, Bytes};
use std::io::Read;
use tokio::sync::mpsc::Receiver;

/// Ends (reads 0) when the sender is dropped: after the last chunk, or
/// early when a download failed, which the caller reports instead.
pub struct ChunkReader {
    chunks: Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    pub fn new(chunks: Receiver<Bytes>) -> ChunkReader {
        ChunkReader {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    /// Blocks for the next chunk: call it off the async runtime only.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_in_order_across_boundaries_then_ends() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let feeder = std::thread::spawn(move || {
            for chunk in [&b"hello "[..], b"", b"chunked", b" world"] {
                tx.blocking_send(Bytes::from_static(chunk)).unwrap();
            }
        });
        let mut all = String::new();
        ChunkReader::new(rx).read_to_string(&mut all).unwrap();
        feeder.join().unwrap();
        assert_eq!(all, "hello chunked world");
    }
}

//! The server side of MySQL packet framing (length u24le | sequence id u8 |
//! payload, split in 16 MiB chunks). Framing is mysql_common's
//! `PacketCodec`; each command the client sends starts a new sequence at 0
//! and our replies continue it, as the protocol requires.

use bytes::{Bytes, BytesMut};
use mysql_common::proto::codec::{error::PacketCodecError, PacketCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::relay_error::RelayError;

/// Commands a replica sends are small; anything past this is not a replica.
const MAX_CLIENT_PACKET: usize = 16 << 20;
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
pub struct PacketStream<S> {
    peer: String,
    stream: S,
    codec: PacketCodec,
    incoming: BytesMut,
    packet: BytesMut,
    outgoing: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PacketStream<S> {
    pub fn new(stream: S, peer: impl Into<String>) -> Self {
        let mut codec = PacketCodec::default();
        codec.max_allowed_packet = MAX_CLIENT_PACKET;
        PacketStream {
            peer: peer.into(),
            stream,
            codec,
            incoming: BytesMut::with_capacity(READ_CHUNK),
            packet: BytesMut::new(),
            outgoing: BytesMut::new(),
        }
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Reads the next packet of the current exchange (e.g. the handshake
    /// response after our greeting).
    pub async fn read_packet(&mut self) -> Result<Bytes, RelayError> {
        loop {
            let done = self
                .codec
                .decode(&mut self.incoming, &mut self.packet)
                .map_err(|e| self.codec_error(e))?;
            if done {
                return Ok(self.packet.split().freeze());
            }
            self.readable().await?;
        }
    }

    /// Reads the next command: a new exchange, sequence id 0.
    pub async fn read_command(&mut self) -> Result<Bytes, RelayError> {
        self.codec.reset_seq_id();
        self.read_packet().await
    }

    /// Queues `payload` as the next packet; `flush` sends what is queued.
    pub fn queue_packet(&mut self, payload: &[u8]) -> Result<(), RelayError> {
        let mut src = payload;
        self.codec
            .encode(&mut src, &mut self.outgoing)
            .map_err(|e| self.codec_error(e))
    }

    /// Bytes queued and not yet flushed.
    pub fn queued_len(&self) -> usize {
        self.outgoing.len()
    }

    /// Not cancel-safe: a cancelled flush may leave half a packet on the wire.
    pub async fn flush(&mut self) -> Result<(), RelayError> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let out = self.outgoing.split();
        self.stream
            .write_all(&out)
            .await
            .map_err(|source| io_error(&self.peer, source))
    }

    /// Queues and flushes one packet.
    pub async fn write_packet(&mut self, payload: &[u8]) -> Result<(), RelayError> {
        self.queue_packet(payload)?;
        self.flush().await
    }

    /// Waits until the peer sends something or closes; for noticing a
    /// replica that went away while we wait for new events. Cancel-safe.
    pub async fn readable(&mut self) -> Result<(), RelayError> {
        self.incoming.reserve(READ_CHUNK);
        let n = self
            .stream
            .read_buf(&mut self.incoming)
            .await
            .map_err(|source| io_error(&self.peer, source))?;
        if n == 0 {
            return Err(RelayError::Closed {
                peer: self.peer.clone(),
            });
        }
        Ok(())
    }

    fn codec_error(&self, e: PacketCodecError) -> RelayError {
        match e {
            PacketCodecError::Io(source) => io_error(&self.peer, source),
            other => RelayError::Protocol {
                peer: self.peer.clone(),
                reason: other.to_string(),
            },
        }
    }
}

/// A peer that hung up (mariadb-binlog leaves as soon as it has its file)
/// is a closed connection, not a failure.
fn io_error(peer: &str, source: std::io::Error) -> RelayError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match source.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => RelayError::Closed {
            peer: peer.to_string(),
        },
        _ => RelayError::Io {
            peer: peer.to_string(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_up_is_a_close_and_other_errors_stay_errors() {
        use std::io::{Error, ErrorKind};
        for kind in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset] {
            assert!(matches!(
                io_error("p:1", Error::from(kind)),
                RelayError::Closed { .. }
            ));
        }
        assert!(matches!(
            io_error("p:1", Error::from(ErrorKind::TimedOut)),
            RelayError::Io { .. }
        ));
    }

    #[tokio::test]
    async fn replies_continue_the_command_sequence() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = PacketStream::new(server, "test");
        let mut client = client;
        // COM_PING, sequence 0.
        client.write_all(&[1, 0, 0, 0, 0x0e]).await.unwrap();
        assert_eq!(&server.read_command().await.unwrap()[..], &[0x0e]);
        server.write_packet(&[0, 0, 0, 2, 0, 0, 0]).await.unwrap();
        let mut reply = [0u8; 11];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, [7, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        // The next command starts again at 0.
        client.write_all(&[1, 0, 0, 0, 0x01]).await.unwrap();
        assert_eq!(&server.read_command().await.unwrap()[..], &[0x01]);
        // A packet out of sequence is a protocol error, not a panic.
        client.write_all(&[1, 0, 0, 5, 0x01]).await.unwrap();
        assert!(matches!(
            server.read_command().await,
            Err(RelayError::Protocol { .. })
        ));
        drop(client);
        let mut closed = PacketStream::new(tokio::io::duplex(8).1, "gone");
        assert!(matches!(
            closed.read_command().await,
            Err(RelayError::Closed { .. })
        ));
    }
}

//! A TCP connection speaking MySQL protocol packets (length u24le |
//! sequence id u8 | payload, payloads of 16 MiB and more split in chunks).
//! Framing is mysql_common's `PacketCodec`; the socket and the buffers are
//! ours, so the binlog stream sees each packet's exact bytes.

use bytes::{Bytes, BytesMut};
use mysql_common::proto::codec::{error::PacketCodecError, PacketCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mysql_error::MysqlError;

/// The largest packet a server sends (its max_allowed_packet limit is 1 GiB).
const MAX_PACKET: usize = 1 << 30;
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct PacketConnection {
    addr: String,
    stream: TcpStream,
    codec: PacketCodec,
    /// Bytes read from the socket, not yet decoded.
    incoming: BytesMut,
    /// The packet being reassembled from its chunks.
    packet: BytesMut,
    /// Frame packets without checking sequence ids (see `ignore_sequence_ids`).
    unsequenced: bool,
}

impl PacketConnection {
    pub async fn connect(host: &str, port: u16) -> Result<Self, MysqlError> {
        let addr = format!("{host}:{port}");
        let stream =
            TcpStream::connect((host, port))
                .await
                .map_err(|source| MysqlError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
        // Events must reach the primary's ack wait without Nagle's delay.
        let _ = stream.set_nodelay(true);
        let mut codec = PacketCodec::default();
        codec.max_allowed_packet = MAX_PACKET;
        Ok(PacketConnection {
            addr,
            stream,
            codec,
            incoming: BytesMut::with_capacity(READ_CHUNK),
            packet: BytesMut::new(),
            unsequenced: false,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Reads the next whole packet's payload.
    ///
    /// Cancel-safe: bytes already read stay in `self` and the next call
    /// goes on from them.
    pub async fn read_packet(&mut self) -> Result<Bytes, MysqlError> {
        loop {
            let done = if self.unsequenced {
                self.decode_unsequenced()?
            } else {
                self.codec
                    .decode(&mut self.incoming, &mut self.packet)
                    .map_err(|e| self.codec_error(e))?
            };
            if done {
                return Ok(self.packet.split().freeze());
            }
            self.incoming.reserve(READ_CHUNK);
            let n = self
                .stream
                .read_buf(&mut self.incoming)
                .await
                .map_err(|source| self.io_error(source))?;
            if n == 0 {
                return Err(MysqlError::Closed {
                    addr: self.addr.clone(),
                    context: if self.incoming.is_empty() && self.packet.is_empty() {
                        String::new()
                    } else {
                        " in the middle of a packet".into()
                    },
                });
            }
        }
    }

    /// Sends `payload` as the next packet of the current exchange.
    ///
    /// Not cancel-safe: a cancelled write may leave half a packet on the wire.
    pub async fn write_packet(&mut self, payload: &[u8]) -> Result<(), MysqlError> {
        let mut out = BytesMut::with_capacity(payload.len() + 4);
        let mut src = payload;
        self.codec
            .encode(&mut src, &mut out)
            .map_err(|e| self.codec_error(e))?;
        self.stream
            .write_all(&out)
            .await
            .map_err(|source| self.io_error(source))
    }

    /// Starts a new exchange (a command, or a semi-sync ack): sequence id 0.
    pub async fn write_command(&mut self, payload: &[u8]) -> Result<(), MysqlError> {
        self.codec.reset_seq_id();
        self.write_packet(payload).await
    }

    /// Sends a one-packet message with sequence id 0 outside the current
    /// exchange (a semi-sync ack), leaving the stream's sequence alone.
    ///
    /// Not cancel-safe, like `write_packet`.
    pub async fn write_out_of_band(&mut self, payload: &[u8]) -> Result<(), MysqlError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&n| n < 0xff_ffff)
            .ok_or_else(|| MysqlError::Protocol {
                addr: self.addr.clone(),
                reason: "an out-of-band message must fit one packet".into(),
                packet: payload.iter().take(16).copied().collect(),
            })?;
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&len.to_le_bytes()[..3]);
        out.push(0);
        out.extend_from_slice(payload);
        self.stream
            .write_all(&out)
            .await
            .map_err(|source| self.io_error(source))
    }

    /// From now on, reads take packets in whatever sequence the server
    /// numbers them. A semi-sync primary restarts its numbering after each
    /// event that waits for an ack (it expects the ack as packet 0), so a
    /// binlog stream's sequence ids say nothing; TCP keeps the order.
    pub fn ignore_sequence_ids(&mut self) {
        self.unsequenced = true;
    }

    /// One chunk from `incoming` into `packet`; true once a packet is whole
    /// (its last chunk is shorter than 0xffffff bytes).
    fn decode_unsequenced(&mut self) -> Result<bool, MysqlError> {
        loop {
            if self.incoming.len() < 4 {
                return Ok(false);
            }
            let len = u32::from_le_bytes([self.incoming[0], self.incoming[1], self.incoming[2], 0])
                as usize;
            if self.incoming.len() < 4 + len {
                return Ok(false);
            }
            if self.packet.len() + len > MAX_PACKET {
                return Err(MysqlError::Protocol {
                    addr: self.addr.clone(),
                    reason: format!("packet larger than {MAX_PACKET} bytes"),
                    packet: self.incoming.iter().take(16).copied().collect(),
                });
            }
            let _header = self.incoming.split_to(4);
            let chunk = self.incoming.split_to(len);
            self.packet.extend_from_slice(&chunk);
            if len < 0xff_ffff {
                return Ok(true);
            }
        }
    }

    fn io_error(&self, source: std::io::Error) -> MysqlError {
        match source.kind() {
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof => MysqlError::Closed {
                addr: self.addr.clone(),
                context: format!(" ({source})"),
            },
            _ => MysqlError::Io {
                addr: self.addr.clone(),
                source,
            },
        }
    }

    fn codec_error(&self, e: PacketCodecError) -> MysqlError {
        match e {
            PacketCodecError::Io(source) => self.io_error(source),
            other => MysqlError::Protocol {
                addr: self.addr.clone(),
                reason: other.to_string(),
                packet: self.incoming.iter().take(16).copied().collect(),
            },
        }
    }
}

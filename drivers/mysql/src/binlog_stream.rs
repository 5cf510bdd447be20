//! A live binlog stream from a primary: one connection after
//! COM_BINLOG_DUMP(_GTID), read packet by packet.

use crate::binlog_position::BinlogPosition;
use crate::checksum::BinlogChecksum;
use crate::mysql_error::MysqlError;
use crate::packet_connection::PacketConnection;
use crate::semi_sync::SemiSyncAck;
use crate::stream_decoder::{Decoded, StreamDecoder};
use crate::streamed_event::StreamedEvent;

#[derive(Debug)]
pub struct BinlogStream {
    conn: PacketConnection,
    decoder: StreamDecoder,
    ended: bool,
}

impl BinlogStream {
    pub(crate) fn new(conn: PacketConnection, decoder: StreamDecoder) -> Self {
        BinlogStream {
            conn,
            decoder,
            ended: false,
        }
    }

    /// The next event or heartbeat. A primary shutting down (or restarting,
    /// or killing our thread) is an error, and any error is final: reconnect
    /// and resume from the last transaction end you kept. None only after
    /// that error, if called again.
    ///
    /// Cancel-safe: dropping the future loses nothing; bytes read so far
    /// stay in the stream for the next call.
    pub async fn next(&mut self) -> Result<Option<StreamedEvent>, MysqlError> {
        if self.ended {
            return Ok(None);
        }
        let packet = self.conn.read_packet().await?;
        match self.decoder.decode(packet)? {
            Decoded::Event(event) => Ok(Some(event)),
            // We always ask for a blocking dump, which the primary ends
            // only when it shuts down or kills our thread.
            Decoded::End => {
                self.ended = true;
                Err(MysqlError::Closed {
                    addr: self.conn.addr().to_string(),
                    context: " with an end-of-stream packet (shutdown or KILL)".into(),
                })
            }
        }
    }

    /// Semi-sync: tells the primary that everything up to `position` (the
    /// `position()` of an event with `needs_ack`) is durable. Send it only
    /// once that is true, and only on a stream started with semi-sync.
    ///
    /// Not cancel-safe: a cancelled ack may leave half a packet on the wire;
    /// drop the stream then.
    pub async fn semi_sync_ack(&mut self, position: &BinlogPosition) -> Result<(), MysqlError> {
        let mut buf = bytes::BytesMut::new();
        SemiSyncAck {
            position: position.clone(),
        }
        .encode(&mut buf);
        self.conn.write_out_of_band(&buf).await
    }

    /// The binlog file the stream is in ("" before its first Rotate).
    pub fn file(&self) -> &str {
        self.decoder.file()
    }

    /// The checksum algorithm of the current file's events, once known.
    pub fn checksum(&self) -> Option<BinlogChecksum> {
        self.decoder.checksum()
    }

    /// host:port of the primary.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }
}

//! The dump phase of a replica connection: every event goes out as one
//! packet, `0x00 | event bytes`, continuing the sequence of the
//! COM_BINLOG_DUMP that asked for it. An ERR packet ends the stream, or an
//! EOF packet when the replica asked for the binlog up to its end only.
//!
//! Archived events go out as archived, checksums included. The events the
//! relay makes up carry the checksum of the file they are in, as a
//! primary's do; the opening fake ROTATE, sent before any
//! FORMAT_DESCRIPTION, carries the one the replica declared.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::artificial_event::{
    fake_rotate, format_description_from_start, gtid_list, heartbeat, restamped_format_description,
};
use super::eof_packet::EofPacket;
use super::err_packet::ErrPacket;
use super::packet_stream::PacketStream;
use super::relay_error::RelayError;
use crate::binlog_position::BinlogPosition;
use crate::checksum::BinlogChecksum;
use crate::event::RawEvent;
use crate::format_description_event::FormatDescriptionEvent;
use crate::gtid::MariadbGtidPos;

/// Flush once this much is queued, even within a chunk.
const FLUSH_AT: usize = 256 * 1024;

#[derive(Debug)]
pub struct BinlogSender<S> {
    conn: PacketStream<S>,
    server_id: u32,
    /// The checksum of made-up events: the replica's until the first
    /// FORMAT_DESCRIPTION goes out, then that of the file being streamed.
    checksum: BinlogChecksum,
    /// The file being streamed and the end of the last event sent from it.
    at: Option<BinlogPosition>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> BinlogSender<S> {
    /// `opening_checksum`: what the replica declared in
    /// @master_binlog_checksum.
    pub(crate) fn new(
        conn: PacketStream<S>,
        server_id: u32,
        opening_checksum: BinlogChecksum,
    ) -> Self {
        BinlogSender {
            conn,
            server_id,
            checksum: opening_checksum,
            at: None,
        }
    }

    pub fn peer(&self) -> &str {
        self.conn.peer()
    }

    /// Where the stream is: the current file and the end of the last event
    /// sent from it.
    pub fn position(&self) -> Option<&BinlogPosition> {
        self.at.as_ref()
    }

    /// Starts streaming `file`: a fake ROTATE to it, then its
    /// FORMAT_DESCRIPTION. `from_start` sends the description as archived
    /// but for the in-use flag (the replica reads the whole file);
    /// otherwise re-stamped for a stream that joins the file in the middle.
    pub async fn start_file(
        &mut self,
        file: &str,
        format: &RawEvent,
        from_start: bool,
    ) -> Result<(), RelayError> {
        let to = BinlogPosition::new(file, 4).map_err(|e| RelayError::Refused {
            peer: self.peer().to_string(),
            reason: e.to_string(),
        })?;
        let file_checksum = FormatDescriptionEvent::from_event(format)
            .map_err(|e| RelayError::Refused {
                peer: self.peer().to_string(),
                reason: format!("the archived FORMAT_DESCRIPTION of {file} is bad: {e}"),
            })?
            .checksum;
        let rotate = fake_rotate(self.server_id, &to, self.checksum);
        self.queue(&rotate.bytes)?;
        self.checksum = file_checksum;
        let fd = if from_start {
            format_description_from_start(format)
        } else {
            restamped_format_description(format)
        }
        .map_err(|e| RelayError::Refused {
            peer: self.peer().to_string(),
            reason: format!("the archived FORMAT_DESCRIPTION of {file} is bad: {e}"),
        })?;
        self.queue(&fd.bytes)?;
        self.at = Some(BinlogPosition {
            file: file.to_string(),
            pos: u64::from(format.header.log_pos.max(4)),
        });
        self.flush().await
    }

    /// A GTID_LIST with the state the stream starts from.
    pub async fn send_gtid_list(&mut self, state: &MariadbGtidPos) -> Result<(), RelayError> {
        let ev = gtid_list(self.server_id, state, self.checksum);
        self.queue(&ev.bytes)?;
        self.flush().await
    }

    /// Queues one archived event, exact bytes; flushes when enough is
    /// queued. Call `flush` at the end of a batch.
    pub async fn send_event(&mut self, event: &RawEvent) -> Result<(), RelayError> {
        self.queue(&event.bytes)?;
        if let Some(at) = &mut self.at {
            if event.header.log_pos != 0 {
                at.pos = u64::from(event.header.log_pos);
            }
        }
        if self.conn.queued_len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), RelayError> {
        self.conn.flush().await
    }

    /// A heartbeat at the current position (nothing before the first file).
    pub async fn heartbeat(&mut self) -> Result<(), RelayError> {
        let Some(at) = &self.at else {
            return Ok(());
        };
        let ev = heartbeat(self.server_id, at, self.checksum);
        self.queue(&ev.bytes)?;
        self.flush().await
    }

    /// Ends the stream at the end of the binlog: an EOF packet, as a
    /// primary sends a client that asked for BINLOG_DUMP_NON_BLOCK.
    pub async fn end_of_binlog(&mut self) -> Result<(), RelayError> {
        let mut buf = BytesMut::new();
        EofPacket::default().encode(&mut buf);
        self.conn.queue_packet(&buf)?;
        self.conn.flush().await
    }

    /// Ends the stream with an error the replica shows in Last_IO_Error.
    pub async fn fail(mut self, err: ErrPacket) -> Result<(), RelayError> {
        let mut buf = BytesMut::new();
        err.encode(&mut buf);
        self.conn.write_packet(&buf).await
    }

    /// Resolves when the replica closes the connection (or sends anything:
    /// a replica says nothing during the dump). Cancel-safe.
    pub async fn closed(&mut self) -> RelayError {
        match self.conn.readable().await {
            Ok(()) => RelayError::Protocol {
                peer: self.peer().to_string(),
                reason: "the replica sent data during the binlog dump".into(),
            },
            Err(e) => e,
        }
    }

    fn queue(&mut self, event: &[u8]) -> Result<(), RelayError> {
        let mut packet = Vec::with_capacity(event.len() + 1);
        packet.push(0x00);
        packet.extend_from_slice(event);
        self.conn.queue_packet(&packet)
    }
}

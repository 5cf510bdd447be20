//! A running physical replication stream (CopyBoth mode).
//!
//! The stream owns the connection; nothing is read ahead of `recv()`, so when the
//! caller is slow the server's sends back up into the TCP window instead of into memory.

use std::collections::HashMap;

use bytes::BytesMut;
use postgres_protocol::message::{backend::Message, frontend};

use crate::conn::framed::{Backend, ErrorFields, Framed};
use crate::conn::simple_query::{read_results, ResultSet};
use crate::error::PgError;
use crate::lsn::{Lsn, TimelineId};
use crate::replication::client::ReplicationClient;
use crate::replication::message::ReplicationMessage;
use crate::replication::status_update::StandbyStatusUpdate;

enum State {
    /// In CopyBoth; messages flow.
    Streaming,
    /// The server sent CopyDone; we still owe ours.
    ServerDone,
    /// The server never entered COPY mode (start was the end of an old timeline).
    EndedBeforeCopy {
        next: Option<(TimelineId, Lsn)>,
        reported: bool,
    },
}

pub struct WalStream {
    framed: Framed,
    parameters: HashMap<String, String>,
    state: State,
    /// Reused for encoding status updates.
    scratch: BytesMut,
}

/// How a stream ended, and the connection, back in command mode.
pub struct StreamEnd {
    /// Set when the server ended the stream at a timeline switch: the next timeline and
    /// where it starts (the LSN to pass to `start_physical` with that timeline).
    pub next_timeline: Option<(TimelineId, Lsn)>,
    pub client: ReplicationClient,
}

impl WalStream {
    pub(crate) fn streaming(client: ReplicationClient) -> Self {
        let (framed, parameters) = client.into_parts();
        WalStream {
            framed,
            parameters,
            state: State::Streaming,
            scratch: BytesMut::with_capacity(64),
        }
    }

    pub(crate) fn ended_before_copy(
        client: ReplicationClient,
        next: Option<(TimelineId, Lsn)>,
    ) -> Self {
        let (framed, parameters) = client.into_parts();
        WalStream {
            framed,
            parameters,
            state: State::EndedBeforeCopy {
                next,
                reported: false,
            },
            scratch: BytesMut::new(),
        }
    }

    pub fn addr(&self) -> &str {
        &self.framed.addr
    }

    /// The next message. Returns `EndOfTimeline` once when the server ends the stream
    /// (then call [`WalStream::finish`]), and `None` after that.
    /// A server shutting down ends with `PgError::Closed`.
    ///
    /// Cancel-safe: a future dropped inside `tokio::select!` loses no bytes.
    pub async fn recv(&mut self) -> Result<Option<ReplicationMessage>, PgError> {
        match &mut self.state {
            State::Streaming => {}
            State::ServerDone => return Ok(None),
            State::EndedBeforeCopy { reported, .. } => {
                if *reported {
                    return Ok(None);
                }
                *reported = true;
                return Ok(Some(ReplicationMessage::EndOfTimeline));
            }
        }
        loop {
            let msg = match self.framed.read().await? {
                Backend::Message(m) => m,
                Backend::CopyBothResponse | Backend::NegotiateProtocolVersion => {
                    return Err(PgError::protocol(
                        &self.framed.addr,
                        "unexpected message while streaming",
                    ))
                }
            };
            match msg {
                Message::CopyData(body) => {
                    return ReplicationMessage::from_copy_data(body.into_bytes())
                        .map(Some)
                        .map_err(|e| PgError::protocol(&self.framed.addr, e.to_string()));
                }
                Message::CopyDone => {
                    self.state = State::ServerDone;
                    return Ok(Some(ReplicationMessage::EndOfTimeline));
                }
                Message::ErrorResponse(body) => {
                    return Err(ErrorFields::from_fields(body.fields())
                        .into_error(&self.framed.addr, "START_REPLICATION (while streaming)"));
                }
                // A walsender that finishes at shutdown sends CommandComplete and hangs up.
                Message::CommandComplete(_) => {
                    return Err(PgError::Closed {
                        addr: self.framed.addr.clone(),
                        context: " at the end of the replication stream (server shutting down?)"
                            .into(),
                    });
                }
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                _ => {
                    return Err(PgError::protocol(
                        &self.framed.addr,
                        "unexpected message while streaming",
                    ))
                }
            }
        }
    }

    /// Sends a standby status update ('r'). Not cancel-safe in the sense that a dropped
    /// call may have sent part of the message; the rest goes out with the next write.
    pub async fn send_status(&mut self, update: &StandbyStatusUpdate) -> Result<(), PgError> {
        if !matches!(self.state, State::Streaming) {
            return Ok(());
        }
        self.scratch.clear();
        update.encode(&mut self.scratch);
        frontend::CopyData::new(&self.scratch[..])
            .map_err(|e| PgError::protocol(&self.framed.addr, e.to_string()))?
            .write(&mut self.framed.wbuf);
        self.framed.flush().await
    }

    /// Ends the stream: sends our CopyDone (skipping any WAL still in flight if the
    /// server had not ended the stream itself), reads the server's closing result set
    /// and hands the connection back for further commands.
    pub async fn finish(mut self) -> Result<StreamEnd, PgError> {
        let next_timeline = match self.state {
            State::EndedBeforeCopy { next, .. } => next,
            State::Streaming | State::ServerDone => {
                frontend::copy_done(&mut self.framed.wbuf);
                self.framed.flush().await?;
                if matches!(self.state, State::Streaming) {
                    self.drain_until_copy_done().await?;
                }
                let sets = read_results(&mut self.framed, "START_REPLICATION").await?;
                next_timeline(&sets, &self.framed.addr, "START_REPLICATION")?
            }
        };
        Ok(StreamEnd {
            next_timeline,
            client: ReplicationClient::from_framed(self.framed, self.parameters),
        })
    }

    async fn drain_until_copy_done(&mut self) -> Result<(), PgError> {
        loop {
            match self.framed.read().await? {
                Backend::Message(Message::CopyDone) => return Ok(()),
                Backend::Message(Message::CopyData(_))
                | Backend::Message(Message::NoticeResponse(_)) => {}
                Backend::Message(Message::ErrorResponse(body)) => {
                    return Err(ErrorFields::from_fields(body.fields())
                        .into_error(&self.framed.addr, "CopyDone"));
                }
                _ => {
                    return Err(PgError::protocol(
                        &self.framed.addr,
                        "unexpected message while ending the stream",
                    ))
                }
            }
        }
    }
}

/// The (next_tli, next_tli_startpos) row a walsender sends after streaming a historic timeline.
pub(crate) fn next_timeline(
    sets: &[ResultSet],
    addr: &str,
    command: &str,
) -> Result<Option<(TimelineId, Lsn)>, PgError> {
    let Some(set) = sets
        .iter()
        .find(|s| s.columns.iter().any(|c| c == "next_tli"))
    else {
        return Ok(None);
    };
    let row = set.only_row(addr, command)?;
    let tli = set.text(row, "next_tli", addr, command)?;
    let pos = set.text(row, "next_tli_startpos", addr, command)?;
    match (tli, pos) {
        (Some(t), Some(p)) => {
            let t = t.parse::<u32>().map_err(|_| {
                PgError::protocol(addr, format!("{command} returned next_tli {t:?}"))
            })?;
            let p = p.parse::<Lsn>().map_err(|_| {
                PgError::protocol(addr, format!("{command} returned next_tli_startpos {p:?}"))
            })?;
            Ok(Some((TimelineId(t), p)))
        }
        _ => Err(PgError::protocol(
            addr,
            format!("{command} returned a NULL next timeline"),
        )),
    }
}

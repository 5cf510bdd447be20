//! One physical replication connection (`replication=true`) and the walsender
//! commands it accepts.

use std::collections::HashMap;

use bytes::Bytes;
use postgres_protocol::message::{backend::Message, frontend};

use crate::conn::config::ConnConfig;
use crate::conn::framed::{Backend, ErrorFields, Framed};
use crate::conn::simple_query::{read_results, read_results_after, simple_query, ResultSet};
use crate::conn::startup::{self, SessionKind};
use crate::error::PgError;
use crate::lsn::{Lsn, TimelineId};
use crate::replication::slot::{validate_slot_name, SlotInfo};
use crate::replication::stream::{next_timeline, WalStream};
use crate::replication::system_identity::{SystemId, SystemIdentity};
use crate::segment::WalSegmentSize;
use crate::version;

/// SQLSTATE duplicate_object, sent when a slot of that name exists.
const DUPLICATE_OBJECT: &str = "42710";

pub struct ReplicationClient {
    pub(crate) framed: Framed,
    parameters: HashMap<String, String>,
}

impl ReplicationClient {
    /// Opens a physical replication connection: TLS per `cfg.sslmode`, then trust,
    /// cleartext, md5 or SCRAM-SHA-256 authentication.
    ///
    /// A server of a major instarec does not support is refused here, before
    /// any command is sent.
    pub async fn connect(cfg: &ConnConfig) -> Result<Self, PgError> {
        let session = startup::connect(cfg, SessionKind::PhysicalReplication).await?;
        tracing::debug!(addr = %session.framed.addr, server_version = ?session.parameters.get("server_version"), "replication connection open");
        let reported = session
            .parameters
            .get("server_version")
            .map_or("(not reported)", String::as_str);
        version::supported_major(&session.framed.addr, reported)?;
        Ok(ReplicationClient {
            framed: session.framed,
            parameters: session.parameters,
        })
    }

    pub(crate) fn from_framed(framed: Framed, parameters: HashMap<String, String>) -> Self {
        ReplicationClient { framed, parameters }
    }

    pub(crate) fn into_parts(self) -> (Framed, HashMap<String, String>) {
        (self.framed, self.parameters)
    }

    /// host:port of the server, for messages.
    pub fn addr(&self) -> &str {
        &self.framed.addr
    }

    /// The `server_version` the server reported at startup, e.g. "15.8 (Debian 15.8-1)".
    pub fn server_version(&self) -> Option<&str> {
        self.parameters.get("server_version").map(String::as_str)
    }

    /// Runs a command that answers with exactly one row (checked, so `rows[0]` exists).
    async fn query_one_row(&mut self, command: &str) -> Result<ResultSet, PgError> {
        let mut sets = simple_query(&mut self.framed, command).await?;
        if sets.is_empty() {
            return Err(PgError::protocol(
                &self.framed.addr,
                format!("{command} returned no result set"),
            ));
        }
        let set = sets.swap_remove(0);
        set.only_row(&self.framed.addr, command)?;
        Ok(set)
    }

    pub async fn identify_system(&mut self) -> Result<SystemIdentity, PgError> {
        const CMD: &str = "IDENTIFY_SYSTEM";
        let set = self.query_one_row(CMD).await?;
        let addr = self.framed.addr.clone();
        let row = &set.rows[0];
        let required = |name: &str| -> Result<&str, PgError> {
            set.text(row, name, &addr, CMD)?
                .ok_or_else(|| PgError::protocol(&addr, format!("{CMD} returned NULL {name}")))
        };
        let bad =
            |name: &str, v: &str| PgError::protocol(&addr, format!("{CMD} returned {name} {v:?}"));
        let systemid = required("systemid")?;
        let timeline = required("timeline")?;
        let xlogpos = required("xlogpos")?;
        Ok(SystemIdentity {
            system_id: SystemId(systemid.parse().map_err(|_| bad("systemid", systemid))?),
            timeline: TimelineId(timeline.parse().map_err(|_| bad("timeline", timeline))?),
            xlogpos: xlogpos.parse().map_err(|_| bad("xlogpos", xlogpos))?,
            dbname: set.text(row, "dbname", &addr, CMD)?.map(str::to_string),
        })
    }

    /// `SHOW wal_segment_size`, which walsenders accept since PostgreSQL 10.
    pub async fn wal_segment_size(&mut self) -> Result<WalSegmentSize, PgError> {
        const CMD: &str = "SHOW wal_segment_size";
        let set = self.query_one_row(CMD).await?;
        let addr = &self.framed.addr;
        let row = &set.rows[0];
        let value = row
            .first()
            .and_then(|v| v.as_ref())
            .ok_or_else(|| PgError::protocol(addr, format!("{CMD} returned NULL")))?;
        let text = std::str::from_utf8(value)
            .map_err(|_| PgError::protocol(addr, format!("{CMD} returned non-UTF-8")))?;
        WalSegmentSize::from_show_value(text)
            .map_err(|e| PgError::protocol(addr, format!("{CMD}: {e}")))
    }

    /// `SHOW in_hot_standby` (PostgreSQL 14+): true while the server is a
    /// standby still in recovery.
    pub async fn in_hot_standby(&mut self) -> Result<bool, PgError> {
        const CMD: &str = "SHOW in_hot_standby";
        let set = self.query_one_row(CMD).await?;
        let value = set.rows[0].first().and_then(|v| v.as_deref());
        Ok(value == Some(b"on".as_slice()))
    }

    /// TIMELINE_HISTORY: the `NNNNNNNN.history` file name and its bytes. Timeline 1
    /// has no history file, so asking for it is a `PgError::Server` (58P01).
    pub async fn timeline_history(&mut self, tli: TimelineId) -> Result<(String, Bytes), PgError> {
        let cmd = format!("TIMELINE_HISTORY {tli}");
        let set = self.query_one_row(&cmd).await?;
        let addr = &self.framed.addr;
        let row = &set.rows[0];
        let filename = set
            .text(row, "filename", addr, &cmd)?
            .ok_or_else(|| PgError::protocol(addr, format!("{cmd} returned NULL filename")))?
            .to_string();
        // The content column is bytea but sent raw, not hex-escaped.
        let idx = set
            .columns
            .iter()
            .position(|c| c == "content")
            .ok_or_else(|| PgError::protocol(addr, format!("{cmd} returned no content column")))?;
        let content = row
            .get(idx)
            .cloned()
            .flatten()
            .ok_or_else(|| PgError::protocol(addr, format!("{cmd} returned NULL content")))?;
        Ok((filename, content))
    }

    /// CREATE_REPLICATION_SLOT name PHYSICAL RESERVE_WAL. If a slot of that name exists
    /// this returns `PgError::SlotExists` (and creates nothing), so the caller decides
    /// whether reusing it is right; check it with [`ReplicationClient::read_replication_slot`].
    pub async fn create_physical_slot(&mut self, name: &str) -> Result<(), PgError> {
        validate_slot_name(name)?;
        let cmd = format!("CREATE_REPLICATION_SLOT {name} PHYSICAL RESERVE_WAL");
        match simple_query(&mut self.framed, &cmd).await {
            Ok(_) => Ok(()),
            Err(PgError::Server { code, .. }) if code == DUPLICATE_OBJECT => {
                Err(PgError::SlotExists {
                    addr: self.framed.addr.clone(),
                    slot: name.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// READ_REPLICATION_SLOT (PostgreSQL 15+). None if there is no slot of that name.
    pub async fn read_replication_slot(&mut self, name: &str) -> Result<Option<SlotInfo>, PgError> {
        validate_slot_name(name)?;
        let cmd = format!("READ_REPLICATION_SLOT {name}");
        let set = self.query_one_row(&cmd).await?;
        let addr = &self.framed.addr;
        let row = &set.rows[0];
        let Some(slot_type) = set.text(row, "slot_type", addr, &cmd)? else {
            return Ok(None);
        };
        let restart_lsn = match set.text(row, "restart_lsn", addr, &cmd)? {
            Some(v) => Some(v.parse().map_err(|_| {
                PgError::protocol(addr, format!("{cmd} returned restart_lsn {v:?}"))
            })?),
            None => None,
        };
        let restart_tli = match set.text(row, "restart_tli", addr, &cmd)? {
            Some(v) => Some(TimelineId(v.parse().map_err(|_| {
                PgError::protocol(addr, format!("{cmd} returned restart_tli {v:?}"))
            })?)),
            None => None,
        };
        Ok(Some(SlotInfo {
            slot_type: slot_type.to_string(),
            restart_lsn,
            restart_tli,
        }))
    }

    /// START_REPLICATION [SLOT s] PHYSICAL start TIMELINE tli. `start` should be at a
    /// segment or page boundary the server still has.
    pub async fn start_physical(
        mut self,
        slot: Option<&str>,
        start: Lsn,
        tli: TimelineId,
    ) -> Result<WalStream, PgError> {
        let cmd = match slot {
            Some(s) => {
                validate_slot_name(s)?;
                format!("START_REPLICATION SLOT {s} PHYSICAL {start} TIMELINE {tli}")
            }
            None => format!("START_REPLICATION PHYSICAL {start} TIMELINE {tli}"),
        };
        frontend::query(&cmd, &mut self.framed.wbuf)
            .map_err(|e| PgError::protocol(&self.framed.addr, e.to_string()))?;
        self.framed.flush().await?;
        loop {
            match self.framed.read().await? {
                Backend::CopyBothResponse => {
                    tracing::debug!(addr = %self.framed.addr, %start, %tli, "replication stream started");
                    return Ok(WalStream::streaming(self));
                }
                Backend::Message(Message::ErrorResponse(body)) => {
                    let err =
                        ErrorFields::from_fields(body.fields()).into_error(&self.framed.addr, &cmd);
                    // Read up to ReadyForQuery so the error is complete, then report it.
                    let _ = read_results(&mut self.framed, &cmd).await;
                    return Err(err);
                }
                // Asked for exactly the end of an old timeline: the server skips COPY mode and
                // sends the next timeline's result set right away.
                Backend::Message(
                    first @ (Message::RowDescription(_) | Message::CommandComplete(_)),
                ) => {
                    let sets = read_results_after(&mut self.framed, &cmd, Some(first)).await?;
                    let next = next_timeline(&sets, &self.framed.addr, &cmd)?;
                    return Ok(WalStream::ended_before_copy(self, next));
                }
                Backend::Message(Message::NoticeResponse(_))
                | Backend::Message(Message::ParameterStatus(_)) => {}
                _ => {
                    return Err(PgError::protocol(
                        &self.framed.addr,
                        format!("unexpected reply to {cmd}"),
                    ))
                }
            }
        }
    }
}

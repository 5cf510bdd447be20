//! BASE_BACKUP over a replication connection (PostgreSQL 15+ wire form).
//!
//! The server answers with the start position and the tablespace list as
//! ordinary result sets, then one COPY OUT stream for every archive and the
//! manifest, each CopyData tagged by its first byte ('n' new archive, 'd'
//! data, 'p' progress, 'm' manifest follows), then the end position.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::{backend::Message, frontend};

use crate::conn::framed::{Backend, ErrorFields, Framed};
use crate::conn::simple_query::{read_results, ResultSet};
use crate::error::PgError;
use crate::lsn::{Lsn, TimelineId};
use crate::replication::client::ReplicationClient;
use crate::replication::message::{be_u64, MessageError};

const COMMAND: &str = "BASE_BACKUP";

/// When the server starts the backup: an immediate ("fast") checkpoint, or
/// one spread over checkpoint_completion_target like a scheduled one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    Fast,
    Spread,
}

/// A backup label the replication grammar can carry: no NUL (its strings
/// are NUL-terminated), at most 1 KiB. Quotes are escaped when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backup label {label:?}: use at most 1024 bytes and no NUL character")]
pub struct InvalidBackupLabel {
    pub label: String,
}

impl BackupLabel {
    pub fn new(label: &str) -> Result<BackupLabel, InvalidBackupLabel> {
        if label.contains('\0') || label.len() > 1024 {
            return Err(InvalidBackupLabel {
                label: label.to_string(),
            });
        }
        Ok(BackupLabel(label.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As a replication-grammar string literal: quotes doubled.
    fn quoted(&self) -> String {
        format!("'{}'", self.0.replace('\'', "''"))
    }
}

#[derive(Debug, Clone)]
pub struct BaseBackupOptions {
    /// Shown in pg_stat_progress_basebackup and written into backup_label.
    pub label: BackupLabel,
    pub checkpoint: CheckpointMode,
    /// Ask the server to estimate each tablespace's size first (one extra
    /// pass over the data directory), so progress has a total.
    pub estimate_size: bool,
}

impl BaseBackupOptions {
    /// The command text. No WAL in the tar (the archive has it), a manifest
    /// with CRC32C checksums, and no wait for archive_command (we wait on
    /// our own archive instead).
    pub fn command(&self) -> String {
        let label = self.label.quoted();
        let checkpoint = match self.checkpoint {
            CheckpointMode::Fast => "fast",
            CheckpointMode::Spread => "spread",
        };
        format!(
            "{COMMAND} (LABEL {label}, PROGRESS {}, CHECKPOINT '{checkpoint}', MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', WAIT false)",
            self.estimate_size
        )
    }
}

/// One row of the tablespace list the server sends before the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTablespace {
    /// None for the main data directory.
    pub oid: Option<u32>,
    pub location: Option<String>,
    /// The server's estimate, when asked for (it sends kB).
    pub estimated_bytes: Option<u64>,
}

/// One CopyData payload of the backup stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupMessage {
    /// A new tar archive begins: "base.tar", or "<oid>.tar" with the
    /// tablespace's location on the server.
    NewArchive {
        name: String,
        location: Option<String>,
    },
    /// Bytes of the current archive, or of the manifest after `ManifestStart`.
    Data(Bytes),
    /// Bytes the server has processed since the backup started.
    Progress(u64),
    /// Every following `Data` is the backup manifest.
    ManifestStart,
}

const NEW_ARCHIVE: u8 = b'n';
const DATA: u8 = b'd';
const PROGRESS: u8 = b'p';
const MANIFEST: u8 = b'm';

impl BackupMessage {
    /// Parses one CopyData payload; `Data` shares `payload`'s buffer.
    pub fn from_copy_data(payload: Bytes) -> Result<BackupMessage, MessageError> {
        match payload.first() {
            Some(&NEW_ARCHIVE) => {
                let (name, rest) = cstring(&payload[1..], "new-archive message")?;
                let (location, rest) = cstring(rest, "new-archive message")?;
                if !rest.is_empty() {
                    return Err(MessageError::Truncated {
                        message: "new-archive message (trailing bytes)",
                        need: payload.len() - rest.len(),
                        have: payload.len(),
                    });
                }
                Ok(BackupMessage::NewArchive {
                    name,
                    location: (!location.is_empty()).then_some(location),
                })
            }
            Some(&DATA) => Ok(BackupMessage::Data(payload.slice(1..))),
            Some(&PROGRESS) => {
                if payload.len() != 9 {
                    return Err(MessageError::Truncated {
                        message: "progress message",
                        need: 9,
                        have: payload.len(),
                    });
                }
                Ok(BackupMessage::Progress(be_u64(&payload, 1)))
            }
            Some(&MANIFEST) => Ok(BackupMessage::ManifestStart),
            Some(&tag) => Err(MessageError::Unknown { tag }),
            None => Err(MessageError::Empty),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            BackupMessage::NewArchive { name, location } => {
                out.put_u8(NEW_ARCHIVE);
                out.put_slice(name.as_bytes());
                out.put_u8(0);
                out.put_slice(location.as_deref().unwrap_or("").as_bytes());
                out.put_u8(0);
            }
            BackupMessage::Data(bytes) => {
                out.put_u8(DATA);
                out.put_slice(bytes);
            }
            BackupMessage::Progress(done) => {
                out.put_u8(PROGRESS);
                out.put_u64(*done);
            }
            BackupMessage::ManifestStart => out.put_u8(MANIFEST),
        }
    }
}

/// A NUL-terminated UTF-8 string and what follows it.
fn cstring<'a>(buf: &'a [u8], message: &'static str) -> Result<(String, &'a [u8]), MessageError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(MessageError::Truncated {
            message,
            need: buf.len() + 1,
            have: buf.len(),
        })?;
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    Ok((text, &buf[end + 1..]))
}

enum State {
    Copying,
    /// The server sent CopyDone; the end position follows.
    CopyDone,
}

/// A running base backup. Reads nothing ahead of [`BaseBackupStream::next`],
/// so a slow consumer pushes back on the server through the TCP window.
pub struct BaseBackupStream {
    pub start: Lsn,
    pub timeline: TimelineId,
    pub tablespaces: Vec<BackupTablespace>,
    framed: Framed,
    #[allow(dead_code)]
    parameters: HashMap<String, String>,
    state: State,
}

impl ReplicationClient {
    /// Starts BASE_BACKUP and reads up to the start of the data. Needs
    /// PostgreSQL 15 or later (older servers reject the option syntax).
    pub async fn base_backup(self, opts: &BaseBackupOptions) -> Result<BaseBackupStream, PgError> {
        let cmd = opts.command();
        let (mut framed, parameters) = self.into_parts();
        frontend::query(&cmd, &mut framed.wbuf)
            .map_err(|e| PgError::protocol(&framed.addr, e.to_string()))?;
        framed.flush().await?;
        let sets = read_until_copy_out(&mut framed).await?;
        let addr = framed.addr.clone();
        let start_set = sets
            .iter()
            .find(|s| s.columns.iter().any(|c| c == "recptr"))
            .ok_or_else(|| PgError::protocol(&addr, format!("{COMMAND} sent no start position")))?;
        let (start, timeline) = position_row(start_set, &addr, "start")?;
        let tablespaces = match sets
            .iter()
            .find(|s| s.columns.iter().any(|c| c == "spclocation"))
        {
            Some(set) => tablespace_rows(set, &addr)?,
            None => {
                return Err(PgError::protocol(
                    &addr,
                    format!("{COMMAND} sent no tablespace list"),
                ))
            }
        };
        tracing::debug!(%addr, %start, %timeline, tablespaces = tablespaces.len(), "base backup started");
        Ok(BaseBackupStream {
            start,
            timeline,
            tablespaces,
            framed,
            parameters,
            state: State::Copying,
        })
    }
}

impl BaseBackupStream {
    pub fn addr(&self) -> &str {
        &self.framed.addr
    }

    /// The server's size estimate of all tablespaces, if it sent one.
    pub fn estimated_bytes(&self) -> Option<u64> {
        self.tablespaces.iter().map(|t| t.estimated_bytes).sum()
    }

    /// The next message; None once the server ended the COPY stream (then
    /// call [`BaseBackupStream::finish`]). Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<BackupMessage>, PgError> {
        if matches!(self.state, State::CopyDone) {
            return Ok(None);
        }
        loop {
            let msg = match self.framed.read().await? {
                Backend::Message(m) => m,
                Backend::CopyBothResponse | Backend::NegotiateProtocolVersion => {
                    return Err(PgError::protocol(
                        &self.framed.addr,
                        format!("unexpected message during {COMMAND}"),
                    ))
                }
            };
            match msg {
                Message::CopyData(body) => {
                    return BackupMessage::from_copy_data(body.into_bytes())
                        .map(Some)
                        .map_err(|e| {
                            PgError::protocol(&self.framed.addr, format!("{COMMAND}: {e}"))
                        });
                }
                Message::CopyDone => {
                    self.state = State::CopyDone;
                    return Ok(None);
                }
                Message::ErrorResponse(body) => {
                    return Err(ErrorFields::from_fields(body.fields())
                        .into_error(&self.framed.addr, COMMAND));
                }
                Message::NoticeResponse(body) => {
                    let f = ErrorFields::from_fields(body.fields());
                    tracing::debug!(addr = %self.framed.addr, code = %f.code, "server notice: {}", f.message);
                }
                Message::ParameterStatus(_) => {}
                _ => {
                    return Err(PgError::protocol(
                        &self.framed.addr,
                        format!("unexpected message during {COMMAND}"),
                    ))
                }
            }
        }
    }

    /// After `next` returned None: the backup's end position and timeline.
    /// The connection is closed afterwards.
    pub async fn finish(mut self) -> Result<(Lsn, TimelineId), PgError> {
        if matches!(self.state, State::Copying) {
            return Err(PgError::protocol(
                &self.framed.addr,
                format!("{COMMAND} finished before the server ended the data stream"),
            ));
        }
        let sets = read_results(&mut self.framed, COMMAND).await?;
        let addr = &self.framed.addr;
        let set = sets
            .iter()
            .find(|s| s.columns.iter().any(|c| c == "recptr"))
            .ok_or_else(|| PgError::protocol(addr, format!("{COMMAND} sent no end position")))?;
        position_row(set, addr, "end")
    }
}

/// Reads the result sets before the COPY OUT begins. On an error, reads up
/// to ReadyForQuery so the error is complete, then returns it.
async fn read_until_copy_out(framed: &mut Framed) -> Result<Vec<ResultSet>, PgError> {
    let mut sets: Vec<ResultSet> = Vec::new();
    loop {
        let msg = match framed.read().await? {
            Backend::Message(m) => m,
            Backend::NegotiateProtocolVersion => continue,
            Backend::CopyBothResponse => {
                return Err(PgError::protocol(
                    &framed.addr,
                    format!("{COMMAND} started a replication stream"),
                ))
            }
        };
        match msg {
            Message::RowDescription(body) => {
                let columns = body
                    .fields()
                    .map(|f| Ok(f.name().to_string()))
                    .collect()
                    .map_err(|e| PgError::protocol(&framed.addr, e.to_string()))?;
                sets.push(ResultSet {
                    columns,
                    rows: Vec::new(),
                });
            }
            Message::DataRow(body) => {
                let set = sets.last_mut().ok_or_else(|| {
                    PgError::protocol(
                        &framed.addr,
                        format!("{COMMAND}: DataRow without RowDescription"),
                    )
                })?;
                let buf = body.buffer_bytes().clone();
                let row = body
                    .ranges()
                    .map(|r| Ok(r.map(|r| buf.slice(r))))
                    .collect()
                    .map_err(|e| PgError::protocol(&framed.addr, e.to_string()))?;
                set.rows.push(row);
            }
            Message::CommandComplete(_) | Message::ParameterStatus(_) => {}
            Message::NoticeResponse(body) => {
                let f = ErrorFields::from_fields(body.fields());
                tracing::debug!(addr = %framed.addr, code = %f.code, "server notice: {}", f.message);
            }
            Message::CopyOutResponse(_) => return Ok(sets),
            Message::ErrorResponse(body) => {
                let err = ErrorFields::from_fields(body.fields()).into_error(&framed.addr, COMMAND);
                let _ = read_results(framed, COMMAND).await;
                return Err(err);
            }
            Message::ReadyForQuery(_) => {
                return Err(PgError::protocol(
                    &framed.addr,
                    format!("{COMMAND} ended without sending data"),
                ))
            }
            _ => {
                return Err(PgError::protocol(
                    &framed.addr,
                    format!("unexpected message in reply to {COMMAND}"),
                ))
            }
        }
    }
}

/// The (recptr, tli) row of the start or end result set.
fn position_row(set: &ResultSet, addr: &str, which: &str) -> Result<(Lsn, TimelineId), PgError> {
    let row = set.only_row(addr, COMMAND)?;
    let bad = |name: &str, v: Option<&str>| {
        PgError::protocol(addr, format!("{COMMAND} sent {which} {name} {v:?}"))
    };
    let recptr = set.text(row, "recptr", addr, COMMAND)?;
    let tli = set.text(row, "tli", addr, COMMAND)?;
    let lsn = recptr
        .and_then(|v| v.parse::<Lsn>().ok())
        .ok_or_else(|| bad("recptr", recptr))?;
    let tli = tli
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| bad("tli", tli))?;
    Ok((lsn, TimelineId(tli)))
}

fn tablespace_rows(set: &ResultSet, addr: &str) -> Result<Vec<BackupTablespace>, PgError> {
    let mut out = Vec::with_capacity(set.rows.len());
    for row in &set.rows {
        let bad = |name: &str, v: &str| {
            PgError::protocol(addr, format!("{COMMAND} sent tablespace {name} {v:?}"))
        };
        let oid = match set.text(row, "spcoid", addr, COMMAND)? {
            Some(v) => Some(v.parse::<u32>().map_err(|_| bad("spcoid", v))?),
            None => None,
        };
        let location = set
            .text(row, "spclocation", addr, COMMAND)?
            .map(str::to_string);
        let estimated_bytes = match set.text(row, "size", addr, COMMAND)? {
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| bad("size", v))?
                    .saturating_mul(1024),
            ),
            None => None,
        };
        out.push(BackupTablespace {
            oid,
            location,
            estimated_bytes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<BackupMessage, MessageError> {
        BackupMessage::from_copy_data(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn new_archive_for_base_and_tablespace() {
        assert_eq!(
            parse(b"nbase.tar\0\0").unwrap(),
            BackupMessage::NewArchive {
                name: "base.tar".into(),
                location: None
            }
        );
        assert_eq!(
            parse(b"n16384.tar\0/srv/ts1\0").unwrap(),
            BackupMessage::NewArchive {
                name: "16384.tar".into(),
                location: Some("/srv/ts1".into())
            }
        );
        assert!(parse(b"nbase.tar\0").is_err(), "location string missing");
        assert!(parse(b"nbase.tar").is_err());
    }

    #[test]
    fn data_progress_and_manifest() {
        assert_eq!(
            parse(b"dabc").unwrap(),
            BackupMessage::Data(Bytes::from_static(b"abc"))
        );
        assert_eq!(parse(b"d").unwrap(), BackupMessage::Data(Bytes::new()));
        assert_eq!(
            parse(&[b'p', 0, 0, 0, 0, 0, 0x01, 0x00, 0x10]).unwrap(),
            BackupMessage::Progress(0x10010)
        );
        assert!(matches!(
            parse(&[b'p', 0, 0, 1]),
            Err(MessageError::Truncated {
                need: 9,
                have: 4,
                ..
            })
        ));
        assert_eq!(parse(b"m").unwrap(), BackupMessage::ManifestStart);
        assert!(matches!(
            parse(b"x"),
            Err(MessageError::Unknown { tag: b'x' })
        ));
        assert!(matches!(parse(b""), Err(MessageError::Empty)));
    }

    #[test]
    fn encode_round_trips() {
        for msg in [
            BackupMessage::NewArchive {
                name: "base.tar".into(),
                location: None,
            },
            BackupMessage::NewArchive {
                name: "16384.tar".into(),
                location: Some("/t".into()),
            },
            BackupMessage::Data(Bytes::from_static(b"\0\x01tar")),
            BackupMessage::Progress(u64::MAX - 1),
            BackupMessage::ManifestStart,
        ] {
            let mut out = BytesMut::new();
            msg.encode(&mut out);
            assert_eq!(BackupMessage::from_copy_data(out.freeze()).unwrap(), msg);
        }
        let mut out = BytesMut::new();
        BackupMessage::Progress(1).encode(&mut out);
        assert_eq!(&out[..], &[b'p', 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn command_quotes_the_label() {
        let opts = BaseBackupOptions {
            label: BackupLabel::new("it's \"mine\"").unwrap(),
            checkpoint: CheckpointMode::Fast,
            estimate_size: true,
        };
        assert_eq!(
            opts.command(),
            "BASE_BACKUP (LABEL 'it''s \"mine\"', PROGRESS true, CHECKPOINT 'fast', MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', WAIT false)"
        );
        assert!(BackupLabel::new("a\0b").is_err());
        assert!(BackupLabel::new(&"x".repeat(1025)).is_err());
        let spread = BaseBackupOptions {
            label: BackupLabel::new("b").unwrap(),
            checkpoint: CheckpointMode::Spread,
            estimate_size: false,
        };
        assert!(spread
            .command()
            .contains("PROGRESS false, CHECKPOINT 'spread'"));
    }

    fn set(columns: &[&str], rows: &[&[Option<&str>]]) -> ResultSet {
        ResultSet {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|v| v.map(|s| Bytes::copy_from_slice(s.as_bytes())))
                        .collect()
                })
                .collect(),
        }
    }

    #[test]
    fn position_and_tablespace_rows() {
        let start = set(&["recptr", "tli"], &[&[Some("0/2000028"), Some("1")]]);
        assert_eq!(
            position_row(&start, "db:5432", "start").unwrap(),
            (Lsn(0x2000028), TimelineId(1))
        );
        let bad = set(&["recptr", "tli"], &[&[Some("nope"), Some("1")]]);
        assert!(position_row(&bad, "db:5432", "start").is_err());
        let ts = set(
            &["spcoid", "spclocation", "size"],
            &[
                &[None, None, Some("22000")],
                &[Some("16384"), Some("/srv/ts"), Some("8")],
            ],
        );
        assert_eq!(
            tablespace_rows(&ts, "db:5432").unwrap(),
            vec![
                BackupTablespace {
                    oid: None,
                    location: None,
                    estimated_bytes: Some(22000 * 1024)
                },
                BackupTablespace {
                    oid: Some(16384),
                    location: Some("/srv/ts".into()),
                    estimated_bytes: Some(8192)
                },
            ]
        );
    }
}

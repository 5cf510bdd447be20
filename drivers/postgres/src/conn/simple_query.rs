//! The simple query protocol ('Q'), which is all a walsender accepts for its commands.

use bytes::Bytes;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::{backend::Message, frontend};

use crate::conn::framed::{Backend, ErrorFields, Framed};
use crate::error::PgError;

/// One result set of a command, in text format.
#[derive(Debug, Default)]
pub(crate) struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Bytes>>>,
}

impl ResultSet {
    /// The single row a command like IDENTIFY_SYSTEM returns.
    pub(crate) fn only_row(&self, addr: &str, command: &str) -> Result<&[Option<Bytes>], PgError> {
        match self.rows.as_slice() {
            [row] => Ok(row),
            rows => Err(PgError::protocol(
                addr,
                format!("{command} returned {} rows, expected 1", rows.len()),
            )),
        }
    }

    /// Column `name` of `row` as UTF-8 text, None for NULL.
    pub(crate) fn text<'a>(
        &self,
        row: &'a [Option<Bytes>],
        name: &str,
        addr: &str,
        command: &str,
    ) -> Result<Option<&'a str>, PgError> {
        let idx = self.columns.iter().position(|c| c == name).ok_or_else(|| {
            PgError::protocol(
                addr,
                format!(
                    "{command} returned no column {name:?} (columns: {:?})",
                    self.columns
                ),
            )
        })?;
        match row.get(idx).and_then(|v| v.as_ref()) {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b).map(Some).map_err(|_| {
                PgError::protocol(addr, format!("{command} column {name:?} is not UTF-8"))
            }),
        }
    }
}

/// Sends a query and reads up to ReadyForQuery, returning its result sets. On an
/// ErrorResponse it still reads up to ReadyForQuery, so the connection stays usable.
pub(crate) async fn simple_query(
    framed: &mut Framed,
    sql: &str,
) -> Result<Vec<ResultSet>, PgError> {
    frontend::query(sql, &mut framed.wbuf)
        .map_err(|e| PgError::protocol(&framed.addr, e.to_string()))?;
    framed.flush().await?;
    read_results(framed, sql).await
}

/// Reads result sets up to ReadyForQuery (also used after a replication stream ends).
pub(crate) async fn read_results(
    framed: &mut Framed,
    command: &str,
) -> Result<Vec<ResultSet>, PgError> {
    read_results_after(framed, command, None).await
}

/// Like [`read_results`], starting with `first`, a message the caller already read.
pub(crate) async fn read_results_after(
    framed: &mut Framed,
    command: &str,
    mut first: Option<Message>,
) -> Result<Vec<ResultSet>, PgError> {
    let mut sets = Vec::new();
    let mut current: Option<ResultSet> = None;
    let mut error: Option<PgError> = None;
    loop {
        let msg = match first.take() {
            Some(m) => m,
            None => match framed.read().await? {
                Backend::Message(m) => m,
                Backend::CopyBothResponse => {
                    return Err(PgError::protocol(
                        &framed.addr,
                        format!("{command} started a replication stream unexpectedly"),
                    ))
                }
                Backend::NegotiateProtocolVersion => continue,
            },
        };
        match msg {
            Message::RowDescription(body) => {
                let columns = body
                    .fields()
                    .map(|f| Ok(f.name().to_string()))
                    .collect()
                    .map_err(|e| PgError::protocol(&framed.addr, e.to_string()))?;
                current = Some(ResultSet {
                    columns,
                    rows: Vec::new(),
                });
            }
            Message::DataRow(body) => {
                let set = current.as_mut().ok_or_else(|| {
                    PgError::protocol(
                        &framed.addr,
                        format!("{command}: DataRow without RowDescription"),
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
            Message::CommandComplete(_) | Message::EmptyQueryResponse => {
                if let Some(set) = current.take() {
                    sets.push(set);
                }
            }
            Message::ErrorResponse(body) => {
                error =
                    Some(ErrorFields::from_fields(body.fields()).into_error(&framed.addr, command));
            }
            Message::NoticeResponse(body) => {
                let f = ErrorFields::from_fields(body.fields());
                tracing::debug!(addr = %framed.addr, code = %f.code, "server notice: {}", f.message);
            }
            Message::ParameterStatus(_) => {}
            Message::ReadyForQuery(_) => {
                return match error {
                    Some(e) => Err(e),
                    None => Ok(sets),
                };
            }
            _ => {
                return Err(PgError::protocol(
                    &framed.addr,
                    format!("unexpected message in reply to {command}"),
                ))
            }
        }
    }
}

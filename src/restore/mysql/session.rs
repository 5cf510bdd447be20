//! A connection to the restored server over its socket; every error names
//! the socket, the statement and the server's log.

use super::error::MysqlRestoreError;
use super::mariadbd::ServerOptions;
use mysql_async::prelude::Queryable as _;
use std::path::{Path, PathBuf};

pub struct Session {
    conn: mysql_async::Conn,
    socket: PathBuf,
    log: PathBuf,
}

impl Session {
    pub async fn connect(
        socket: &Path,
        log: &Path,
        opts: &ServerOptions,
    ) -> Result<Session, MysqlRestoreError> {
        let builder = mysql_async::OptsBuilder::default()
            .socket(Some(socket.display().to_string()))
            .user(Some(opts.db_user.clone()))
            .pass(opts.db_password.clone());
        let conn =
            mysql_async::Conn::new(builder)
                .await
                .map_err(|source| MysqlRestoreError::Sql {
                    socket: socket.display().to_string(),
                    query: format!("logging in as {}", opts.db_user),
                    log: log.display().to_string(),
                    source: Box::new(source),
                })?;
        Ok(Session {
            conn,
            socket: socket.to_path_buf(),
            log: log.to_path_buf(),
        })
    }

    pub async fn exec(&mut self, sql: &str, shown: &str) -> Result<(), MysqlRestoreError> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|source| self.error(shown, source))
    }

    /// The first column of the first row, as text ("" for NULL or no row).
    pub async fn value(&mut self, sql: &str) -> Result<String, MysqlRestoreError> {
        let row: Option<Option<String>> = self
            .conn
            .query_first(sql)
            .await
            .map_err(|source| self.error(sql, source))?;
        Ok(row.flatten().unwrap_or_default())
    }

    /// SHOW SLAVE STATUS as (column, value) pairs; empty when not a replica.
    pub async fn slave_status(&mut self) -> Result<Vec<(String, String)>, MysqlRestoreError> {
        let sql = "SHOW SLAVE STATUS";
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first(sql)
            .await
            .map_err(|source| self.error(sql, source))?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let columns = row.columns();
        Ok(columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v: Option<String> = row.get_opt(i).and_then(Result::ok).flatten();
                (c.name_str().into_owned(), v.unwrap_or_default())
            })
            .collect())
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    fn error(&self, query: &str, source: mysql_async::Error) -> MysqlRestoreError {
        MysqlRestoreError::Sql {
            socket: self.socket.display().to_string(),
            query: query.to_string(),
            log: self.log.display().to_string(),
            source: Box::new(source),
        }
    }
}

/// `s` as a single-quoted SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_backslashes_and_quotes() {
        assert_eq!(super::quote(r"a'b\c"), r"'a\'b\\c'");
    }
}

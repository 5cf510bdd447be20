//! Connecting to a primary as a replica and asking for its binlog.
//!
//! mysql_async runs the ordinary queries (which server is this, is the
//! binlog on). The replication connection itself is our own
//! (packet_connection.rs, login.rs): mysql_async's `BinlogStream` only
//! yields events re-parsed by mysql_common, which panics on a truncated
//! packet, keeps four checksum bytes in MariaDB's first Rotate, overrides
//! `@master_binlog_checksum`, yields the inner events of a MySQL
//! TRANSACTION_PAYLOAD, and has no way to send a semi-sync ack.
//!
//! MariaDB GTID mode has no command of its own: the replica sets
//! `@slave_connect_state` and friends on the connection, then sends
//! COM_BINLOG_DUMP for file "" at 4. MySQL GTID mode is
//! COM_BINLOG_DUMP_GTID with the executed set.

use std::time::Duration;

use bytes::BytesMut;
use mysql_async::prelude::Queryable;

use crate::binlog_position::BinlogPosition;
use crate::binlog_stream::BinlogStream;
use crate::gtid::MariadbGtidPos;
use crate::gtid_mysql::MysqlGtidSet;
use crate::login::login;
use crate::mysql_error::MysqlError;
use crate::packet_connection::PacketConnection;
use crate::replication_command::{encode_query, BinlogDump, BinlogDumpGtid, RegisterReplica};
use crate::server_error_packet::{ServerErrorPacket, OK_HEADER};
use crate::stream_decoder::StreamDecoder;

/// How often an idle primary sends a heartbeat unless told otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// MARIA_SLAVE_CAPABILITY_GTID: we understand GTID events (10.0+).
const MARIADB_CAPABILITY_GTID: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFlavor {
    Mariadb,
    Mysql,
}

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// MariaDB: after these GTIDs (empty: from the oldest binlog).
    MariadbGtid(MariadbGtidPos),
    /// MySQL: every transaction not in this set.
    MysqlGtid(MysqlGtidSet),
    /// Either flavour: at this file offset (an event boundary).
    File(BinlogPosition),
}

/// A primary we can stream from; `start` turns it into a stream.
#[derive(Debug, Clone)]
pub struct BinlogClient {
    host: String,
    port: u16,
    user: String,
    pass: Option<String>,
    server_id: u32,
    flavor: ServerFlavor,
    server_version: String,
    heartbeat: Duration,
    semi_sync: bool,
}

impl BinlogClient {
    /// Checks that the server at `url` (mysql://user:pass@host:port/) has
    /// its binlog on and tells its flavour. `server_id` is this replica's
    /// id: unique among the primary's replicas, and not the primary's own.
    pub async fn connect(url: &str, server_id: u32) -> Result<Self, MysqlError> {
        let opts = mysql_async::Opts::from_url(url).map_err(|e| MysqlError::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        })?;
        let host = opts.ip_or_hostname().to_string();
        let port = opts.tcp_port();
        let addr = format!("{host}:{port}");
        let query_error = |source| MysqlError::Query {
            addr: addr.clone(),
            source,
        };
        let mut conn = mysql_async::Conn::new(opts.clone())
            .await
            .map_err(query_error)?;
        let row: Option<(String, String, u64, u64)> = conn
            .query_first(
                "SELECT @@version, @@version_comment, CAST(@@global.log_bin AS UNSIGNED), \
                 CAST(@@global.server_id AS UNSIGNED)",
            )
            .await
            .map_err(query_error)?;
        let _ = conn.disconnect().await;
        let (version, comment, log_bin, primary_id) =
            row.ok_or_else(|| MysqlError::Unsupported {
                addr: addr.clone(),
                reason: "SELECT @@version returned no row".into(),
            })?;
        if log_bin == 0 {
            return Err(MysqlError::Unsupported {
                addr,
                reason:
                    "the binary log is off; start the server with log_bin (and binlog_format=ROW)"
                        .into(),
            });
        }
        if u64::from(server_id) == primary_id {
            return Err(MysqlError::Unsupported {
                addr,
                reason: format!(
                    "replica server_id {server_id} is the primary's own @@server_id; configure another one"
                ),
            });
        }
        let flavor = flavor_of(&version, &comment);
        Ok(BinlogClient {
            host,
            port,
            user: opts.user().unwrap_or("").to_string(),
            pass: opts.pass().map(str::to_string),
            server_id,
            flavor,
            server_version: version,
            heartbeat: DEFAULT_HEARTBEAT,
            semi_sync: false,
        })
    }

    pub fn flavor(&self) -> ServerFlavor {
        self.flavor
    }

    /// @@version, e.g. "10.11.6-MariaDB-0+deb12u1-log".
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// How often the primary sends a heartbeat when idle (0 = never).
    pub fn with_heartbeat(mut self, period: Duration) -> Self {
        self.heartbeat = period;
        self
    }

    /// Declares this replica semi-sync capable (`@rpl_semi_sync_slave=1`,
    /// and `@rpl_semi_sync_replica=1` for MySQL 8.0.26+):
    /// events the primary waits on come with `needs_ack`, to be answered
    /// with `BinlogStream::semi_sync_ack`.
    pub fn with_semi_sync(mut self, enabled: bool) -> Self {
        self.semi_sync = enabled;
        self
    }

    /// Opens the replication connection and asks for the binlog from `from`.
    pub async fn start(self, from: StartPosition) -> Result<BinlogStream, MysqlError> {
        let mut conn = PacketConnection::connect(&self.host, self.port).await?;
        let hello = login(&mut conn, &self.user, self.pass.as_deref()).await?;
        tracing::debug!(
            addr = %self.addr(),
            connection_id = hello.connection_id,
            version = %hello.version,
            "replication connection logged in"
        );

        // Events come with the checksums they have in the primary's files.
        set(
            &mut conn,
            "SET @master_binlog_checksum = @@global.binlog_checksum",
        )
        .await?;
        set(
            &mut conn,
            &format!(
                "SET @master_heartbeat_period = {}",
                self.heartbeat.as_nanos()
            ),
        )
        .await?;
        if self.flavor == ServerFlavor::Mariadb {
            set(
                &mut conn,
                &format!("SET @mariadb_slave_capability = {MARIADB_CAPABILITY_GTID}"),
            )
            .await?;
        }
        if self.semi_sync {
            // MariaDB and MySQL's old semisync_master plugin read the first
            // name; MySQL 8.0.26+'s semisync_source plugin reads the second.
            set(
                &mut conn,
                "SET @rpl_semi_sync_slave = 1, @rpl_semi_sync_replica = 1",
            )
            .await?;
        }

        let mut dump = BytesMut::new();
        match (&from, self.flavor) {
            (StartPosition::MariadbGtid(pos), ServerFlavor::Mariadb) => {
                // The text of a MariadbGtidPos is digits, '-' and ',' only.
                set(&mut conn, &format!("SET @slave_connect_state = '{pos}'")).await?;
                set(&mut conn, "SET @slave_gtid_strict_mode = 1").await?;
                set(&mut conn, "SET @slave_gtid_ignore_duplicates = 0").await?;
                BinlogDump {
                    server_id: self.server_id,
                    file: String::new(),
                    pos: 4,
                    send_annotate_rows: true,
                }
                .encode(&mut dump);
            }
            (StartPosition::MysqlGtid(set), ServerFlavor::Mysql) => BinlogDumpGtid {
                server_id: self.server_id,
                executed: set.clone(),
            }
            .encode(&mut dump),
            (StartPosition::File(at), _) => {
                let pos = u32::try_from(at.pos).map_err(|_| MysqlError::Unsupported {
                    addr: self.addr(),
                    reason: format!("cannot ask for {at}: COM_BINLOG_DUMP offsets are 32-bit"),
                })?;
                BinlogDump {
                    server_id: self.server_id,
                    file: at.file.clone(),
                    pos,
                    send_annotate_rows: self.flavor == ServerFlavor::Mariadb,
                }
                .encode(&mut dump)
            }
            (from, flavor) => {
                return Err(MysqlError::Unsupported {
                    addr: self.addr(),
                    reason: format!(
                        "the server is {flavor:?} ({}) but the start position {from:?} is for the other flavour; start from a position of this server's kind",
                        self.server_version
                    ),
                })
            }
        }

        let mut register = BytesMut::new();
        RegisterReplica {
            server_id: self.server_id,
            hostname: String::new(),
            port: 0,
        }
        .encode(&mut register);
        command(&mut conn, &register, "COM_REGISTER_SLAVE").await?;
        conn.write_command(&dump).await?;
        // A semi-sync primary renumbers packets after each event it waits on.
        conn.ignore_sequence_ids();
        tracing::info!(addr = %self.addr(), server_id = self.server_id, ?from, "binlog stream requested");
        let decoder = StreamDecoder::new(self.addr(), self.semi_sync);
        Ok(BinlogStream::new(conn, decoder))
    }
}

fn flavor_of(version: &str, comment: &str) -> ServerFlavor {
    let is_mariadb = |s: &str| s.to_ascii_lowercase().contains("mariadb");
    if is_mariadb(version) || is_mariadb(comment) {
        ServerFlavor::Mariadb
    } else {
        ServerFlavor::Mysql
    }
}

/// Runs a statement that answers OK (a SET).
async fn set(conn: &mut PacketConnection, sql: &str) -> Result<(), MysqlError> {
    let mut buf = BytesMut::new();
    encode_query(sql, &mut buf);
    command(conn, &buf, sql).await
}

/// Sends a command and expects OK.
async fn command(
    conn: &mut PacketConnection,
    payload: &[u8],
    what: &str,
) -> Result<(), MysqlError> {
    conn.write_command(payload).await?;
    let reply = conn.read_packet().await?;
    if reply.first() == Some(&OK_HEADER) {
        return Ok(());
    }
    Err(match ServerErrorPacket::parse(&reply) {
        Some(e) => MysqlError::Server {
            addr: conn.addr().to_string(),
            what: what.to_string(),
            code: e.code,
            state: e.state,
            message: e.message,
        },
        None => MysqlError::Protocol {
            addr: conn.addr().to_string(),
            reason: format!("expected OK after {what}"),
            packet: reply.to_vec(),
        },
    })
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:****{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavour_from_version_strings() {
        assert_eq!(
            flavor_of("10.11.6-MariaDB-0+deb12u1-log", "Debian 12"),
            ServerFlavor::Mariadb
        );
        assert_eq!(
            flavor_of("5.5.5-10.6.1", "mariadb.org binary distribution"),
            ServerFlavor::Mariadb
        );
        assert_eq!(
            flavor_of("8.0.36", "MySQL Community Server - GPL"),
            ServerFlavor::Mysql
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("mysql://repl:s3cret@db:3306/"),
            "mysql://repl:****@db:3306/"
        );
        assert_eq!(redact("mysql://repl@db:3306/"), "mysql://repl@db:3306/");
        assert_eq!(redact("db:3306"), "db:3306");
    }
}

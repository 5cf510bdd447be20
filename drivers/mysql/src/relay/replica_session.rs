//! One replica connection's state before its dump starts: the user
//! variables it set (its GTID position, the checksums it understands, its
//! heartbeat period) and the answers to its queries.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::err_packet::{ErrPacket, NOT_SUPPORTED, UNKNOWN_SYSTEM_VARIABLE};
use super::query::{Expr, Query, SetTarget};
use super::result_set::{Column, ColumnKind, TextResultSet};
use crate::checksum::BinlogChecksum;
use crate::gtid::{GtidError, MariadbGtidPos};
use crate::gtid_mysql::ServerUuid;

/// What the relay says about the server it stands in for: the primary
/// whose binlog the archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The primary's @@server_id (events carry it).
    pub server_id: u32,
    /// As in the archived FORMAT_DESCRIPTION, e.g. "10.11.6-MariaDB-log".
    pub version: String,
    /// The archive's binlog_checksum.
    pub binlog_checksum: BinlogChecksum,
    pub gtid_domain_id: u32,
    /// Set when the archive is MySQL's; None for MariaDB.
    pub mysql: Option<MysqlIdentity>,
}

/// What only a MySQL source has: a MySQL replica's I/O thread asks for
/// @@GLOBAL.SERVER_UUID (and stops if it equals its own) and
/// @@GLOBAL.GTID_MODE (SOURCE_AUTO_POSITION needs ON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlIdentity {
    pub server_uuid: ServerUuid,
    /// The archive holds GTID transactions: @@gtid_mode is ON.
    pub gtid_mode_on: bool,
}

impl ServerIdentity {
    /// The version a MariaDB server puts in its handshake: old MySQL
    /// clients read "5.5.5-" as "at least 5.5.5", MariaDB's strip it.
    pub fn handshake_version(&self) -> String {
        if self.version.to_ascii_lowercase().contains("mariadb") && !self.version.starts_with('5') {
            format!("5.5.5-{}", self.version)
        } else {
            self.version.clone()
        }
    }

    fn system_var(&self, name: &str) -> Option<(String, ColumnKind)> {
        let int = |n: u64| Some((n.to_string(), ColumnKind::Integer));
        let text = |s: &str| Some((s.to_string(), ColumnKind::Text));
        match name {
            "server_id" => int(self.server_id.into()),
            "binlog_checksum" | "master_binlog_checksum" | "source_binlog_checksum" => {
                text(&self.binlog_checksum.to_string())
            }
            "gtid_domain_id" if self.mysql.is_none() => int(self.gtid_domain_id.into()),
            "server_uuid" => self
                .mysql
                .as_ref()
                .and_then(|m| text(&m.server_uuid.to_string())),
            "gtid_mode" => self
                .mysql
                .as_ref()
                .and_then(|m| text(if m.gtid_mode_on { "ON" } else { "OFF" })),
            "enforce_gtid_consistency" => self
                .mysql
                .as_ref()
                .and_then(|m| text(if m.gtid_mode_on { "ON" } else { "OFF" })),
            // What MySQL 8 defaults to; a replica reads them from pre-4.1
            // sources only, tools sometimes.
            "collation_server" => text("utf8mb4_0900_ai_ci"),
            "time_zone" => text("SYSTEM"),
            "version" => text(&self.version),
            "version_comment" => text("instarec relay"),
            "log_bin" | "gtid_strict_mode" => int(1),
            "binlog_format" => text("ROW"),
            "rpl_semi_sync_master_enabled" | "rpl_semi_sync_source_enabled" => text("OFF"),
            _ => None,
        }
    }
}

/// How the relay answers one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Rows(TextResultSet),
    Error(ErrPacket),
}

#[derive(Debug, Clone)]
pub struct ReplicaSession {
    identity: ServerIdentity,
    /// `None` values are SQL NULL.
    user_vars: HashMap<String, Option<String>>,
    /// It sent COM_REGISTER_SLAVE: a replica's I/O thread, not a tool
    /// such as mariadb-binlog.
    registered: bool,
}

impl ReplicaSession {
    pub fn new(identity: ServerIdentity) -> Self {
        ReplicaSession {
            identity,
            user_vars: HashMap::new(),
            registered: false,
        }
    }

    pub fn identity(&self) -> &ServerIdentity {
        &self.identity
    }

    pub fn answer(&mut self, sql: &str) -> Reply {
        match Query::parse(sql) {
            Query::Set(assignments) => {
                for a in assignments {
                    // System variables are the replica tuning its session
                    // (NAMES, sql_mode...): nothing to do for a relay.
                    if let SetTarget::UserVar(name) = a.target {
                        let value = match self.eval(&a.value) {
                            Ok((v, _)) => v,
                            Err(e) => return Reply::Error(e),
                        };
                        self.user_vars.insert(name, value);
                    }
                }
                Reply::Ok
            }
            Query::Select(items) => {
                let mut columns = Vec::new();
                let mut values = Vec::new();
                for item in items {
                    match self.eval(&item.expr) {
                        Ok((value, kind)) => {
                            columns.push(Column {
                                name: item.label,
                                kind,
                            });
                            values.push(value);
                        }
                        Err(e) => return Reply::Error(e),
                    }
                }
                Reply::Rows(TextResultSet::single_row(columns, values))
            }
            Query::ShowVariables(pattern) => {
                let name = pattern.to_ascii_lowercase();
                let rows = self
                    .identity
                    .system_var(&name)
                    .map(|(v, _)| vec![Some(name), Some(v)])
                    .into_iter()
                    .collect();
                let text = |n: &str| Column {
                    name: n.into(),
                    kind: ColumnKind::Text,
                };
                Reply::Rows(TextResultSet {
                    columns: vec![text("Variable_name"), text("Value")],
                    rows,
                })
            }
            Query::Other(text) => Reply::Error(ErrPacket::new(
                NOT_SUPPORTED,
                "42000",
                format!(
                    "instarec relay only answers what a replica asks at connect; it cannot run {text:?}"
                ),
            )),
        }
    }

    fn eval(&self, expr: &Expr) -> Result<(Option<String>, ColumnKind), ErrPacket> {
        Ok(match expr {
            Expr::Str(s) | Expr::Raw(s) => (Some(s.clone()), ColumnKind::Text),
            Expr::Number(n) => (Some(n.clone()), ColumnKind::Integer),
            Expr::Null => (None, ColumnKind::Text),
            Expr::UserVar(name) => (
                self.user_vars.get(name).cloned().flatten(),
                ColumnKind::Text,
            ),
            Expr::SystemVar(name) => {
                let (v, kind) = self.identity.system_var(name).ok_or_else(|| {
                    ErrPacket::new(
                        UNKNOWN_SYSTEM_VARIABLE,
                        "HY000",
                        format!("Unknown system variable '{name}'"),
                    )
                })?;
                (Some(v), kind)
            }
            Expr::Function(name) => match name.as_str() {
                "UNIX_TIMESTAMP" => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    (Some(now.as_secs().to_string()), ColumnKind::Integer)
                }
                "VERSION" => (Some(self.identity.version.clone()), ColumnKind::Text),
                _ => {
                    return Err(ErrPacket::new(
                        NOT_SUPPORTED,
                        "42000",
                        format!("instarec relay does not evaluate {name}()"),
                    ))
                }
            },
        })
    }

    /// A user variable the replica set, if set and not NULL.
    pub fn user_var(&self, name: &str) -> Option<&str> {
        self.user_vars.get(name).and_then(|v| v.as_deref())
    }

    /// The checksum the replica declared in @master_binlog_checksum (or
    /// MySQL 8.0.26+'s @source_binlog_checksum); None if it set neither,
    /// which means it knows nothing of checksums. Declaring one, even
    /// NONE, says it reads each file's checksum from its
    /// FORMAT_DESCRIPTION; the value is only the checksum of the fake
    /// ROTATE that comes before it (mariadb-binlog declares NONE).
    pub fn replica_checksum(&self) -> Result<Option<BinlogChecksum>, String> {
        let value = self
            .user_var("master_binlog_checksum")
            .or_else(|| self.user_var("source_binlog_checksum"));
        match value.map(str::to_ascii_uppercase).as_deref() {
            None => Ok(None),
            Some("NONE") => Ok(Some(BinlogChecksum::Off)),
            Some("CRC32") => Ok(Some(BinlogChecksum::Crc32)),
            Some(other) => Err(format!(
                "unknown binlog checksum {other:?} in @master_binlog_checksum; declare NONE or CRC32"
            )),
        }
    }

    /// How often to send a heartbeat when idle: @master_heartbeat_period
    /// (or MySQL 8.0.26+'s @source_heartbeat_period), in nanoseconds; None
    /// for 0 or unset.
    pub fn heartbeat_period(&self) -> Option<Duration> {
        let ns: u64 = self
            .user_var("master_heartbeat_period")
            .or_else(|| self.user_var("source_heartbeat_period"))?
            .parse()
            .ok()?;
        (ns > 0).then(|| Duration::from_nanos(ns))
    }

    /// Notes COM_REGISTER_SLAVE.
    pub fn register(&mut self) {
        self.registered = true;
    }

    /// Whether the client registered as a replica (COM_REGISTER_SLAVE):
    /// replicas do, mariadb-binlog does not.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// The server_uuid a MySQL replica says it has (@replica_uuid, or
    /// @slave_uuid before 8.0.26), as sent.
    pub fn replica_uuid(&self) -> Option<&str> {
        self.user_var("replica_uuid")
            .or_else(|| self.user_var("slave_uuid"))
    }

    /// What a MariaDB client says it understands
    /// (@mariadb_slave_capability, MARIA_SLAVE_CAPABILITY_*): 4 for a
    /// replica or mariadb-binlog of MariaDB 10; 0 if unset (MySQL).
    pub fn mariadb_capability(&self) -> u8 {
        self.user_var("mariadb_slave_capability")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// MariaDB's GTID connect state; None if the replica connects by file
    /// and position.
    pub fn connect_state(&self) -> Option<Result<MariadbGtidPos, GtidError>> {
        self.user_var("slave_connect_state").map(str::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn session() -> ReplicaSession {
        ReplicaSession::new(ServerIdentity {
            server_id: 1,
            version: "10.11.6-MariaDB-log".into(),
            binlog_checksum: BinlogChecksum::Crc32,
            gtid_domain_id: 0,
            mysql: None,
        })
    }

    fn rows(reply: Reply) -> Vec<Vec<Option<String>>> {
        match reply {
            Reply::Rows(rs) => {
                let packets: Vec<Bytes> = rs.packets();
                TextResultSet::parse(&packets).unwrap().rows
            }
            other => panic!("expected rows, got {other:?}"),
        }
    }

    /// SELECT UNIX_TIMESTAMP(): the relay's clock, a replica's first question.
    fn assert_now(s: &mut ReplicaSession) {
        let ts: u64 = rows(s.answer("SELECT UNIX_TIMESTAMP()"))[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts > 1_600_000_000);
    }

    #[test]
    fn a_mariadb_replica_connect_sequence() {
        let mut s = session();
        assert_now(&mut s);
        assert_eq!(
            rows(s.answer("SELECT @@GLOBAL.SERVER_ID")),
            vec![vec![Some("1".into())]]
        );
        assert_eq!(
            s.answer("SET @master_heartbeat_period= 1000000000"),
            Reply::Ok
        );
        assert_eq!(s.heartbeat_period(), Some(Duration::from_secs(1)));
        assert_eq!(s.replica_checksum(), Ok(None), "not declared yet");
        assert_eq!(
            s.answer("SET @master_binlog_checksum= @@global.binlog_checksum"),
            Reply::Ok
        );
        assert_eq!(
            rows(s.answer("SELECT @master_binlog_checksum")),
            vec![vec![Some("CRC32".into())]]
        );
        assert_eq!(s.replica_checksum(), Ok(Some(BinlogChecksum::Crc32)));
        assert_eq!(
            rows(s.answer("SELECT @@GLOBAL.gtid_domain_id")),
            vec![vec![Some("0".into())]]
        );
        assert_eq!(s.answer("SET @mariadb_slave_capability=4"), Reply::Ok);
        assert!(s.connect_state().is_none());
        assert_eq!(s.answer("SET @slave_connect_state='0-1-7'"), Reply::Ok);
        assert_eq!(
            s.connect_state().unwrap().unwrap().to_string(),
            "0-1-7".to_string()
        );
        assert_eq!(s.answer("SET @slave_gtid_strict_mode=1"), Reply::Ok);
        assert_eq!(s.answer("SET @slave_gtid_ignore_duplicates=0"), Reply::Ok);
    }

    /// What mariadb-binlog 10.11 --read-from-remote-server sends before
    /// its COM_BINLOG_DUMP, as the relay logged it.
    #[test]
    fn the_mariadb_binlog_tool_connect_sequence() {
        let mut s = session();
        assert_eq!(
            rows(s.answer("SELECT VERSION()")),
            vec![vec![Some("10.11.6-MariaDB-log".into())]]
        );
        assert_eq!(s.answer("SET @master_binlog_checksum='NONE'"), Reply::Ok);
        assert_eq!(s.mariadb_capability(), 0);
        assert_eq!(s.answer("SET @mariadb_slave_capability=4"), Reply::Ok);
        assert_eq!(s.mariadb_capability(), 4);
        assert_eq!(s.replica_checksum(), Ok(Some(BinlogChecksum::Off)));
        assert!(s.connect_state().is_none(), "it reads by file");
        assert_eq!(s.answer("SET @master_binlog_checksum='md5'"), Reply::Ok);
        assert!(s.replica_checksum().unwrap_err().contains("MD5"));
    }

    fn mysql_session() -> ReplicaSession {
        ReplicaSession::new(ServerIdentity {
            server_id: 1,
            version: "8.0.26".into(),
            binlog_checksum: BinlogChecksum::Crc32,
            gtid_domain_id: 0,
            mysql: Some(MysqlIdentity {
                server_uuid: "97c7af02-4c50-11ec-acd8-681842034964".parse().unwrap(),
                gtid_mode_on: true,
            }),
        })
    }

    /// The I/O thread of MySQL 8.0.27 as a source's general log shows it,
    /// in order (rpl_replica.cc: get_master_version_and_clock,
    /// get_master_uuid, io_thread_init_commands).
    #[test]
    fn a_mysql_8_replica_connect_sequence() {
        let mut s = mysql_session();
        assert_now(&mut s);
        assert_eq!(
            rows(s.answer("SELECT @@GLOBAL.SERVER_ID")),
            vec![vec![Some("1".into())]]
        );
        assert_eq!(
            s.answer("SET @master_heartbeat_period = 30000001024, @source_heartbeat_period = 30000001024"),
            Reply::Ok
        );
        assert_eq!(
            s.heartbeat_period(),
            Some(Duration::from_nanos(30000001024))
        );
        assert_eq!(
            s.answer("SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum"),
            Reply::Ok
        );
        assert_eq!(
            rows(s.answer("SELECT @source_binlog_checksum")),
            vec![vec![Some("CRC32".into())]]
        );
        assert_eq!(s.replica_checksum(), Ok(Some(BinlogChecksum::Crc32)));
        assert_eq!(
            rows(s.answer("SELECT @@GLOBAL.GTID_MODE")),
            vec![vec![Some("ON".into())]]
        );
        assert_eq!(
            rows(s.answer("SELECT @@GLOBAL.SERVER_UUID")),
            vec![vec![Some("97c7af02-4c50-11ec-acd8-681842034964".into())]]
        );
        assert!(s.replica_uuid().is_none());
        assert_eq!(
            s.answer("SET @slave_uuid = 'f8c09b6f-6342-11ec-9e68-000c2943eee1', @replica_uuid = 'f8c09b6f-6342-11ec-9e68-000c2943eee1'"),
            Reply::Ok
        );
        assert_eq!(
            s.replica_uuid(),
            Some("f8c09b6f-6342-11ec-9e68-000c2943eee1")
        );
        assert!(s.connect_state().is_none(), "no MariaDB state");
    }

    #[test]
    fn a_mysql_source_answers_the_fallbacks_and_has_no_gtid_domain() {
        let mut s = mysql_session();
        // Before 8.0.26, and when SELECT @@GLOBAL.X fails.
        assert_eq!(
            s.answer("SET @master_heartbeat_period= 1000000000"),
            Reply::Ok
        );
        assert_eq!(s.heartbeat_period(), Some(Duration::from_secs(1)));
        assert_eq!(
            rows(s.answer("SHOW VARIABLES LIKE 'SERVER_UUID'")),
            vec![vec![
                Some("server_uuid".into()),
                Some("97c7af02-4c50-11ec-acd8-681842034964".into())
            ]]
        );
        assert_eq!(
            rows(s.answer("SHOW VARIABLES LIKE 'SERVER_ID'")),
            vec![vec![Some("server_id".into()), Some("1".into())]]
        );
        assert_eq!(
            rows(s.answer("SELECT @@global.collation_server")),
            vec![vec![Some("utf8mb4_0900_ai_ci".into())]]
        );
        assert_eq!(
            rows(s.answer("SELECT @@GLOBAL.rpl_semi_sync_source_enabled")),
            vec![vec![Some("OFF".into())]]
        );
        assert!(matches!(
            s.answer("SELECT @@GLOBAL.gtid_domain_id"),
            Reply::Error(e) if e.code == UNKNOWN_SYSTEM_VARIABLE
        ));
        assert_eq!(s.identity().handshake_version(), "8.0.26");
        let mut off = mysql_session();
        off.identity.mysql.as_mut().unwrap().gtid_mode_on = false;
        assert_eq!(
            rows(off.answer("SELECT @@GLOBAL.GTID_MODE")),
            vec![vec![Some("OFF".into())]]
        );
    }

    #[test]
    fn unknown_things_are_clear_errors() {
        let mut s = session();
        assert!(matches!(
            s.answer("SELECT @@GLOBAL.SERVER_UUID"),
            Reply::Error(e) if e.code == UNKNOWN_SYSTEM_VARIABLE
        ));
        match s.answer("SELECT @@global.gtid_mode") {
            Reply::Error(e) => {
                assert_eq!(e.code, UNKNOWN_SYSTEM_VARIABLE);
                assert!(e.message.contains("gtid_mode"));
            }
            other => panic!("{other:?}"),
        }
        match s.answer("SELECT * FROM mysql.user") {
            Reply::Error(e) => assert!(e.message.contains("mysql.user"), "{e:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.answer("SET @whatever = 'x'"), Reply::Ok);
        assert_eq!(
            rows(s.answer("SELECT @never_set")),
            vec![vec![None]],
            "an unset user variable is NULL, as in MariaDB"
        );
        assert_eq!(s.answer("SET @slave_connect_state='x-y'"), Reply::Ok);
        assert!(s.connect_state().unwrap().is_err());
    }

    #[test]
    fn show_variables_and_handshake_version() {
        let mut s = session();
        assert_eq!(
            rows(s.answer("SHOW VARIABLES LIKE 'server_id'")),
            vec![vec![Some("server_id".into()), Some("1".into())]]
        );
        assert!(rows(s.answer("SHOW VARIABLES LIKE 'nope'")).is_empty());
        assert_eq!(
            s.identity().handshake_version(),
            "5.5.5-10.11.6-MariaDB-log"
        );
    }
}

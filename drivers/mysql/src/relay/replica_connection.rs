//! One replica's connection up to its dump request: greeting, login, the
//! queries it asks at connect, COM_REGISTER_SLAVE, then COM_BINLOG_DUMP
//! (MariaDB, and MySQL by file) or COM_BINLOG_DUMP_GTID (MySQL).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::auth::{new_scramble, AuthSwitchRequest, Credentials, NATIVE_PASSWORD};
use super::binlog_sender::BinlogSender;
use super::command::{Command, BINLOG_DUMP_NON_BLOCK, BINLOG_SEND_ANNOTATE_ROWS_EVENT};
use super::err_packet::{ErrPacket, ACCESS_DENIED, FATAL_READING_BINLOG, UNKNOWN_COMMAND};
use super::handshake::{
    caps, HandshakeResponse41, HandshakeV10, CHARSET_UTF8MB4, STATUS_AUTOCOMMIT,
};
use super::ok_packet::OkPacket;
use super::packet_stream::PacketStream;
use super::relay_error::RelayError;
use super::replica_session::{ReplicaSession, Reply, ServerIdentity};
use crate::binlog_position::BinlogPosition;
use crate::checksum::BinlogChecksum;
use crate::gtid::MariadbGtidPos;
use crate::gtid_mysql::MysqlGtidSet;

/// Where a replica asked its stream to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpStart {
    /// MariaDB: after this GTID position (@slave_connect_state).
    MariadbGtid(MariadbGtidPos),
    /// Either flavour: at this file and offset.
    File(BinlogPosition),
    /// MySQL: every transaction not in this set.
    MysqlGtid(MysqlGtidSet),
}

/// A replica that logged in and asked for its binlog.
#[derive(Debug)]
pub struct DumpRequest<S> {
    pub start: DumpStart,
    pub replica_server_id: u32,
    /// The replica asked for EOF at the end of the binlog instead of
    /// waiting (BINLOG_DUMP_NON_BLOCK, or server_id 0 as mariadb-binlog
    /// sends without --stop-never).
    pub non_blocking: bool,
    /// Leave out ANNOTATE_ROWS events: a MariaDB client that did not ask
    /// for them (BINLOG_SEND_ANNOTATE_ROWS_EVENT) and tolerates holes in
    /// the stream, as a primary leaves them out.
    pub skip_annotate_rows: bool,
    pub session: ReplicaSession,
    pub sender: BinlogSender<S>,
}

/// MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES: the client copes with events
/// left out of the stream.
const MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES: u8 = 2;

/// Serves one replica connection until it asks for its binlog.
pub async fn accept_replica<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: &str,
    connection_id: u32,
    identity: ServerIdentity,
    credentials: &Credentials,
) -> Result<DumpRequest<S>, RelayError> {
    let mut conn = PacketStream::new(stream, peer);
    login(&mut conn, connection_id, &identity, credentials).await?;
    let mut session = ReplicaSession::new(identity);
    let mut buf = BytesMut::new();
    loop {
        let packet = conn.read_command().await?;
        let command = Command::parse(&packet).map_err(|e| RelayError::Protocol {
            peer: peer.to_string(),
            reason: format!("bad command: {}", e.0),
        })?;
        buf.clear();
        match command {
            Command::Quit => {
                return Err(RelayError::Closed {
                    peer: peer.to_string(),
                })
            }
            Command::Ping | Command::RegisterSlave(_) => {
                if let Command::RegisterSlave(r) = &command {
                    tracing::debug!(peer, server_id = r.server_id, "replica registered");
                    session.register();
                }
                OkPacket::default().encode(&mut buf);
                conn.write_packet(&buf).await?;
            }
            Command::Query(sql) => {
                let reply = session.answer(&sql);
                tracing::debug!(peer, %sql, ok = !matches!(reply, Reply::Error(_)), "replica query");
                match reply {
                    Reply::Ok => {
                        OkPacket::default().encode(&mut buf);
                        conn.write_packet(&buf).await?;
                    }
                    Reply::Rows(rows) => {
                        for packet in rows.packets() {
                            conn.queue_packet(&packet)?;
                        }
                        conn.flush().await?;
                    }
                    Reply::Error(err) => {
                        tracing::info!(peer, %sql, error = %err.message, "refused a replica query");
                        err.encode(&mut buf);
                        conn.write_packet(&buf).await?;
                    }
                }
            }
            Command::BinlogDump(dump) => {
                // A MariaDB replica in GTID mode also names the file and
                // offset it last saw; as on a real primary, the connect
                // state wins whenever it is set.
                let start = match session.connect_state() {
                    Some(Ok(pos)) => DumpStart::MariadbGtid(pos),
                    Some(Err(e)) => {
                        return refuse(conn, format!("bad @slave_connect_state: {e}")).await
                    }
                    None if dump.file.is_empty() => {
                        return refuse(
                            conn,
                            "COM_BINLOG_DUMP names no file and no GTID position; use MASTER_USE_GTID=slave_pos or give MASTER_LOG_FILE".into(),
                        )
                        .await
                    }
                    None => match BinlogPosition::new(dump.file.clone(), u64::from(dump.pos)) {
                        Ok(p) => DumpStart::File(p),
                        Err(e) => return refuse(conn, e.to_string()).await,
                    },
                };
                let skip_annotate_rows = dump.flags & BINLOG_SEND_ANNOTATE_ROWS_EVENT == 0
                    && session.mariadb_capability() >= MARIA_SLAVE_CAPABILITY_TOLERATE_HOLES;
                return dump_request(
                    conn,
                    session,
                    start,
                    dump.server_id,
                    dump.flags & BINLOG_DUMP_NON_BLOCK != 0,
                    skip_annotate_rows,
                )
                .await;
            }
            Command::BinlogDumpGtid(dump) => {
                let start = match dump.executed {
                    Some(set) => DumpStart::MysqlGtid(set),
                    None => match BinlogPosition::new(dump.file.clone(), dump.pos) {
                        Ok(p) => DumpStart::File(p),
                        Err(e) => return refuse(conn, e.to_string()).await,
                    },
                };
                return dump_request(
                    conn,
                    session,
                    start,
                    dump.server_id,
                    dump.flags & BINLOG_DUMP_NON_BLOCK != 0,
                    false,
                )
                .await;
            }
            Command::Other(code) => {
                ErrPacket::new(
                    UNKNOWN_COMMAND,
                    "08S01",
                    format!("instarec relay does not serve command 0x{code:02x}"),
                )
                .encode(&mut buf);
                conn.write_packet(&buf).await?;
            }
        }
    }
}

async fn dump_request<S: AsyncRead + AsyncWrite + Unpin>(
    conn: PacketStream<S>,
    session: ReplicaSession,
    start: DumpStart,
    replica_server_id: u32,
    non_blocking: bool,
    skip_annotate_rows: bool,
) -> Result<DumpRequest<S>, RelayError> {
    // A primary ends the dump of a client with server_id 0 at the end of
    // the binlog, as if it had asked for BINLOG_DUMP_NON_BLOCK.
    let non_blocking = non_blocking || replica_server_id == 0;
    let archive = session.identity().binlog_checksum;
    let declared = match session.replica_checksum() {
        Ok(c) => c,
        Err(e) => return refuse(conn, e).await,
    };
    // Archived events keep their exact bytes, checksums included, as a
    // primary sends them: a replica that declared no checksum at all
    // cannot read them (a primary refuses it the same way).
    let opening_checksum = match declared {
        Some(c) => c,
        None if archive == BinlogChecksum::Crc32 => {
            return refuse(
                conn,
                "the archived binlog has CRC32 checksums and this replica did not set @master_binlog_checksum, so it cannot read them; use a replica from MariaDB 5.3 / MySQL 5.6.2 or later".into(),
            )
            .await
        }
        None => BinlogChecksum::Off,
    };
    // A MySQL replica stops by itself on a source with its own uuid; one
    // that does not check would apply its own transactions twice.
    if let (Some(mysql), Some(replica_uuid)) = (&session.identity().mysql, session.replica_uuid()) {
        if replica_uuid.eq_ignore_ascii_case(&mysql.server_uuid.to_string()) {
            return refuse(
                conn,
                format!("the replica's server_uuid {replica_uuid} is the archived primary's own; give the replica its own server_uuid (delete its auto.cnf and restart it)"),
            )
            .await;
        }
    }
    let server_id = session.identity().server_id;
    Ok(DumpRequest {
        start,
        replica_server_id,
        non_blocking,
        skip_annotate_rows,
        session,
        sender: BinlogSender::new(conn, server_id, opening_checksum),
    })
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin, T>(
    mut conn: PacketStream<S>,
    reason: String,
) -> Result<T, RelayError> {
    let mut buf = BytesMut::new();
    ErrPacket::new(FATAL_READING_BINLOG, "HY000", reason.clone()).encode(&mut buf);
    conn.write_packet(&buf).await?;
    Err(RelayError::Refused {
        peer: conn.peer().to_string(),
        reason,
    })
}

async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut PacketStream<S>,
    connection_id: u32,
    identity: &ServerIdentity,
    credentials: &Credentials,
) -> Result<(), RelayError> {
    let scramble = new_scramble();
    let mut buf = BytesMut::new();
    HandshakeV10 {
        server_version: identity.handshake_version(),
        connection_id,
        scramble: scramble.to_vec(),
        capabilities: caps::RELAY,
        charset: CHARSET_UTF8MB4,
        status: STATUS_AUTOCOMMIT,
        auth_plugin: NATIVE_PASSWORD.into(),
    }
    .encode(&mut buf);
    conn.write_packet(&buf).await?;

    let packet = conn.read_packet().await?;
    let response = HandshakeResponse41::parse(&packet).map_err(|e| RelayError::Protocol {
        peer: conn.peer().to_string(),
        reason: format!("bad handshake response: {}", e.0),
    })?;
    let mut auth_response = response.auth_response.clone();
    if response.auth_plugin.as_deref().unwrap_or(NATIVE_PASSWORD) != NATIVE_PASSWORD {
        buf.clear();
        AuthSwitchRequest {
            plugin: NATIVE_PASSWORD.into(),
            data: scramble.to_vec(),
        }
        .encode(&mut buf);
        conn.write_packet(&buf).await?;
        auth_response = conn.read_packet().await?.to_vec();
    }
    buf.clear();
    if !credentials.accepts(&response.user, &scramble, &auth_response) {
        let host = conn.peer().rsplit_once(':').map_or(conn.peer(), |(h, _)| h);
        let message = format!(
            "Access denied for user '{}'@'{}' (using password: {}); instarec relay accepts only its [relay] user and password",
            response.user,
            host,
            if auth_response.is_empty() { "NO" } else { "YES" }
        );
        ErrPacket::new(ACCESS_DENIED, "28000", message.clone()).encode(&mut buf);
        conn.write_packet(&buf).await?;
        return Err(RelayError::Auth {
            peer: conn.peer().to_string(),
            user: response.user,
            reason: message,
        });
    }
    OkPacket::default().encode(&mut buf);
    conn.write_packet(&buf).await
}

/// Refuses a connection before the greeting (the archive is unreadable,
/// too many replicas): one ERR packet, which a replica shows in
/// Last_IO_Error before it retries.
pub async fn refuse_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: &str,
    reason: &str,
) -> Result<(), RelayError> {
    let mut conn = PacketStream::new(stream, peer);
    let mut buf = BytesMut::new();
    ErrPacket::new(FATAL_READING_BINLOG, "HY000", reason).encode(&mut buf);
    conn.write_packet(&buf).await
}

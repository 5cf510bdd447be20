//! The server side of MySQL replication, for `instarec relay`: a stock
//! replica connects, logs in, asks its connect-time questions and a binlog
//! dump, and gets events the caller reads from the archive.
//!
//! What the caller does: `accept_replica` on a fresh connection, find the
//! events after `DumpRequest::start`, and push them through
//! `DumpRequest::sender` (a fake ROTATE and FORMAT_DESCRIPTION per file,
//! then the events' exact bytes, heartbeats when idle).

mod artificial_event;
mod auth;
mod binlog_sender;
mod command;
mod eof_packet;
mod err_packet;
mod handshake;
mod ok_packet;
mod packet_stream;
mod query;
mod relay_error;
mod replica_connection;
mod replica_session;
mod result_set;
mod wire;

pub use artificial_event::{
    fake_rotate, format_description_from_start, gtid_list, heartbeat, restamped_format_description,
    ARTIFICIAL_FLAG,
};
pub use auth::{AuthSwitchRequest, Credentials};
pub use binlog_sender::BinlogSender;
pub use command::{BinlogDumpGtidRequest, BinlogDumpRequest, Command, RegisterSlave};
pub use eof_packet::EofPacket;
pub use err_packet::{ErrPacket, ACCESS_DENIED, FATAL_READING_BINLOG};
pub use handshake::{caps, HandshakeResponse41, HandshakeV10};
pub use ok_packet::OkPacket;
pub use query::Query;
pub use relay_error::RelayError;
pub use replica_connection::{accept_replica, refuse_connection, DumpRequest, DumpStart};
pub use replica_session::{MysqlIdentity, ReplicaSession, Reply, ServerIdentity};
pub use result_set::{Column, ColumnKind, TextResultSet};
pub use wire::Truncated;

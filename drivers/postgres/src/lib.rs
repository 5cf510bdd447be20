//! PostgreSQL driver for instarec: our own physical replication client (tokio-postgres
//! cannot open replication connections), LSN and WAL segment arithmetic, WAL file
//! names and page headers, and ordinary SQL connections for server control.

// PgError::Server keeps the server's ErrorResponse fields flat so callers can match
// `PgError::Server { code, .. }`; errors are rare, so their size costs nothing.
#![allow(clippy::result_large_err)]

pub mod conn;
pub mod control;
pub mod error;
pub mod lsn;
pub mod page;
pub mod replication;
pub mod segment;
pub mod sql;
pub mod version;
pub mod wal_file;

pub use conn::config::{ConfigError, ConnConfig, SslMode};
pub use control::{ControlConnection, ServerState};
pub use error::PgError;
pub use lsn::{Lsn, ParseLsnError, TimelineId};
pub use page::{XLogLongPageHeader, XLogPageHeader};
pub use replication::base_backup::{
    BackupLabel, BackupMessage, BackupTablespace, BaseBackupOptions, BaseBackupStream,
    CheckpointMode, InvalidBackupLabel,
};
pub use replication::client::ReplicationClient;
pub use replication::keepalive::PrimaryKeepalive;
pub use replication::message::{MessageError, ReplicationMessage};
pub use replication::slot::SlotInfo;
pub use replication::status_update::StandbyStatusUpdate;
pub use replication::stream::{StreamEnd, WalStream};
pub use replication::system_identity::{SystemId, SystemIdentity};
pub use replication::timestamp::PgTimestamp;
pub use replication::xlog_data::XLogData;
pub use segment::{SegmentNo, WalSegmentSize};
pub use sql::connect_sql;
/// The SQL client type `connect_sql` returns, re-exported so callers need no own dependency.
pub use tokio_postgres;
pub use wal_file::{WalFileKind, WalFileName};

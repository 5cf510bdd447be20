//! Base backups in the archive: layout and the record that makes one count.

pub mod layout;
pub mod record;

pub use record::{BackupArchive, BackupRecord};

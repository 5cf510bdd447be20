//! Base backups in the archive: layout and the record that makes one count.

pub mod chunk_upload;
pub mod layout;
pub mod manifest;
pub mod manifest_check;
pub mod mysql_take;
pub mod progress;
pub mod record;
pub mod restore;
pub mod take;
pub mod tar_listing;

pub use record::{BackupArchive, BackupRecord};

//! instarec: log shipping into object storage, hot standbys, promote and PITR.

pub mod archive;
pub mod backoff;
pub mod backup;
pub mod cli;
pub mod config;
pub mod cutover;
pub mod demo;
pub mod engine;
pub mod engines;
pub mod error_text;
pub mod exit;
pub mod host_port;
pub mod logging;
pub mod os_user;
pub mod promote;
pub mod relay;
pub mod restore;
pub mod ship;
pub mod status;

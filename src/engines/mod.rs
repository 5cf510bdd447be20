//! Each engine's code behind the seam in `engine.rs`: PostgreSQL and
//! MySQL/MariaDB, with the same file names for the same step.

pub mod mysql;
pub mod postgres;

/// The exit code an engine's own error decides, if `cause` is one.
pub fn exit_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    postgres::exit_codes::exit_code(cause).or_else(|| mysql::exit_codes::exit_code(cause))
}

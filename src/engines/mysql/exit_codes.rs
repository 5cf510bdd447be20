//! The exit codes of MySQL/MariaDB's own errors, asked by `exit::code_for`
//! through `engines::exit_code`.

use crate::exit::ExitCode;
use crate::restore::mysql::MysqlRestoreError;
use std::error::Error;

pub fn exit_code(cause: &(dyn Error + 'static)) -> Option<u8> {
    cause.downcast_ref::<MysqlRestoreError>()?.exit_code()
}

//! host:port of a MySQL/MariaDB server as epochs and messages spell it.

use mysql_async::Opts;

/// The spelling `ship` records in epochs (`BinlogClient::addr`).
pub fn server_addr(opts: &Opts) -> String {
    format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port())
}

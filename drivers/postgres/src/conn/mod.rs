//! One frontend/backend protocol connection: settings, TLS, startup and authentication,
//! message framing and simple queries. The replication client and `sql` build on it.

pub mod config;
pub(crate) mod framed;
pub(crate) mod simple_query;
pub(crate) mod startup;
pub(crate) mod tls;

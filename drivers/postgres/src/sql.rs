//! Ordinary SQL connections through tokio-postgres, with the same TLS rules as the
//! replication client. The connection runs in a spawned task that ends when the
//! returned client is dropped.

use tokio_postgres::config::SslMode as TpSslMode;

use crate::conn::config::{ConnConfig, SslMode};
use crate::conn::tls;
use crate::error::PgError;

pub async fn connect_sql(cfg: &ConnConfig) -> Result<tokio_postgres::Client, PgError> {
    let mut tp = tokio_postgres::Config::new();
    if cfg.is_unix_socket() {
        tp.host_path(&cfg.host);
    } else {
        tp.host(&cfg.host);
    }
    tp.port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.dbname)
        .connect_timeout(cfg.connect_timeout());
    if let Some(p) = &cfg.password {
        tp.password(p);
    }
    if let Some(a) = &cfg.application_name {
        tp.application_name(a);
    }
    // tokio-postgres knows only disable/prefer/require; certificate checks for the
    // verify modes come from the rustls config.
    tp.ssl_mode(match cfg.sslmode {
        SslMode::Disable => TpSslMode::Disable,
        SslMode::Allow | SslMode::Prefer => TpSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => TpSslMode::Require,
    });
    let addr = cfg.addr();
    // Like libpq, never TLS over a Unix socket (the rustls connector would reject the
    // socket path as a server name before tokio-postgres could skip TLS).
    if cfg.is_unix_socket() {
        let (client, connection) = tp
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| sql_error(cfg, e))?;
        spawn_connection(addr, connection);
        return Ok(client);
    }
    let tls =
        tokio_postgres_rustls::MakeRustlsConnect::new((*tls::client_config(cfg).await?).clone());
    let (client, connection) = tp.connect(tls).await.map_err(|e| sql_error(cfg, e))?;
    spawn_connection(addr, connection);
    Ok(client)
}

fn spawn_connection<S, T>(addr: String, connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        // The caller sees the same error on its next query; here it is
        // only context (a server going away during failover is expected).
        if let Err(e) = connection.await {
            tracing::debug!(%addr, "SQL connection ended: {e}");
        }
    });
}

fn sql_error(cfg: &ConnConfig, e: tokio_postgres::Error) -> PgError {
    // Refused, unreachable, reset: the same message (and hint) as a
    // replication connection gives for the same failure.
    let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
    if let Some(io) = io {
        // A refused certificate (an unknown issuer, a wrong host name) is a
        // TLS fault, as on a replication connection, not an unreachable server.
        if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return PgError::Tls {
                addr: cfg.addr(),
                reason: format!("{tls}; check sslrootcert, that the server certificate names host {:?} (verify-full), or use sslmode=require", cfg.host),
            };
        }
        return PgError::Connect {
            addr: cfg.addr(),
            source: std::io::Error::new(io.kind(), io.to_string()),
        };
    }
    if let Some(db) = e.as_db_error() {
        if db.code().code().starts_with("28") {
            return PgError::Auth {
                addr: cfg.addr(),
                user: cfg.user.clone(),
                kind: "database",
                reason: db.message().to_string(),
            };
        }
    }
    PgError::Sql {
        addr: cfg.addr(),
        source: e,
    }
}

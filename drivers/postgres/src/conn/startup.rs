//! Opening a connection: socket, TLS per sslmode, StartupMessage, authentication
//! (trust, cleartext, md5, SCRAM-SHA-256) and the wait for the first ReadyForQuery.

use std::collections::HashMap;

use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::{backend::Message, frontend};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::conn::config::{ConnConfig, SslMode};
use crate::conn::framed::{Backend, ErrorFields, Framed, PgIo};
use crate::conn::tls;
use crate::error::PgError;

/// Which kind of session to open; decides the startup parameters and which pg_hba.conf
/// line must match.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum SessionKind {
    /// `replication=true`: a physical walsender.
    PhysicalReplication,
}

impl SessionKind {
    fn hba_kind(self) -> &'static str {
        match self {
            SessionKind::PhysicalReplication => "replication",
        }
    }
}

/// An authenticated connection, ready for queries.
pub(crate) struct Session {
    pub framed: Framed,
    pub parameters: HashMap<String, String>,
}

/// Connects, with `cfg.connect_timeout()` covering everything up to ReadyForQuery.
pub(crate) async fn connect(cfg: &ConnConfig, kind: SessionKind) -> Result<Session, PgError> {
    let after = cfg.connect_timeout();
    match tokio::time::timeout(after, connect_untimed(cfg, kind)).await {
        Ok(r) => r,
        Err(_) => Err(PgError::ConnectTimeout {
            addr: cfg.addr(),
            after,
        }),
    }
}

async fn connect_untimed(cfg: &ConnConfig, kind: SessionKind) -> Result<Session, PgError> {
    match cfg.sslmode {
        // libpq's allow: plain first, TLS only when the server turns the plain session away.
        SslMode::Allow => match connect_once(cfg, kind, false).await {
            Err(PgError::Auth { .. }) | Err(PgError::Server { .. }) => {
                connect_once(cfg, kind, true).await
            }
            other => other,
        },
        SslMode::Disable => connect_once(cfg, kind, false).await,
        _ => connect_once(cfg, kind, true).await,
    }
}

async fn connect_once(
    cfg: &ConnConfig,
    kind: SessionKind,
    try_tls: bool,
) -> Result<Session, PgError> {
    let addr = cfg.addr();
    let connect_err = |source| PgError::Connect {
        addr: addr.clone(),
        source,
    };
    let io: Box<dyn PgIo> = if cfg.is_unix_socket() {
        Box::new(UnixStream::connect(&addr).await.map_err(connect_err)?)
    } else {
        let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
            .await
            .map_err(connect_err)?;
        // Status updates are tiny and latency-sensitive.
        tcp.set_nodelay(true).map_err(|e| PgError::io(&addr, e))?;
        Box::new(tcp)
    };
    let mut framed = Framed::new(io, addr.clone());
    if try_tls && !cfg.is_unix_socket() {
        framed = negotiate_tls(framed, cfg).await?;
    }
    startup(framed, cfg, kind).await
}

async fn negotiate_tls(mut framed: Framed, cfg: &ConnConfig) -> Result<Framed, PgError> {
    let addr = cfg.addr();
    frontend::ssl_request(&mut framed.wbuf);
    framed.flush().await?;
    match framed.read_byte().await? {
        b'S' => {}
        b'N' if matches!(cfg.sslmode, SslMode::Prefer | SslMode::Allow) => return Ok(framed),
        b'N' => {
            return Err(PgError::Tls {
                addr,
                reason: format!("the server does not accept TLS but sslmode={}; enable ssl on the server or lower sslmode", cfg.sslmode),
            })
        }
        b'E' => {
            return Err(PgError::Tls { addr, reason: "the server answered the TLS request with an error (for example too many connections); check the server log".into() })
        }
        other => return Err(PgError::protocol(&addr, format!("answer {other:#04x} to SSLRequest"))),
    }
    // Anything the server sent before the handshake would be unauthenticated plaintext.
    if framed.has_buffered_input() {
        return Err(PgError::protocol(
            &addr,
            "unencrypted bytes after the server accepted TLS",
        ));
    }
    let config = tls::client_config(cfg).await?;
    let name = tls::server_name(cfg)?;
    let io = framed.into_io();
    let stream = TlsConnector::from(config).connect(name, io).await.map_err(|e| PgError::Tls {
        addr: addr.clone(),
        reason: format!("{e}; check sslrootcert, that the server certificate names host {:?} (verify-full), or use sslmode=require", cfg.host),
    })?;
    Ok(Framed::new(Box::new(stream), addr))
}

async fn startup(
    mut framed: Framed,
    cfg: &ConnConfig,
    kind: SessionKind,
) -> Result<Session, PgError> {
    let addr = framed.addr.clone();
    let mut params: Vec<(&str, &str)> = vec![("user", cfg.user.as_str())];
    match kind {
        SessionKind::PhysicalReplication => params.push(("replication", "true")),
    }
    if let Some(app) = &cfg.application_name {
        params.push(("application_name", app.as_str()));
    }
    frontend::startup_message(params.iter().copied(), &mut framed.wbuf)
        .map_err(|e| PgError::protocol(&addr, e.to_string()))?;
    framed.flush().await?;

    let auth_err = |reason: String| PgError::Auth {
        addr: addr.clone(),
        user: cfg.user.clone(),
        kind: kind.hba_kind(),
        reason,
    };
    let password = || {
        cfg.password.as_deref().ok_or_else(|| auth_err("the server asks for a password and none was given (put it in the URL or PGPASSWORD)".into()))
    };
    let mut scram: Option<ScramSha256> = None;
    let mut parameters = HashMap::new();

    loop {
        let msg = match framed.read().await? {
            Backend::Message(m) => m,
            Backend::NegotiateProtocolVersion => continue,
            Backend::CopyBothResponse => {
                return Err(PgError::protocol(&addr, "CopyBothResponse during startup"))
            }
        };
        match msg {
            Message::AuthenticationOk => {}
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?.as_bytes(), &mut framed.wbuf)
                    .map_err(|e| PgError::protocol(&addr, e.to_string()))?;
                framed.flush().await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hashed = md5_hash(cfg.user.as_bytes(), password()?.as_bytes(), body.salt());
                frontend::password_message(hashed.as_bytes(), &mut framed.wbuf)
                    .map_err(|e| PgError::protocol(&addr, e.to_string()))?;
                framed.flush().await?;
            }
            Message::AuthenticationSasl(body) => {
                let mechanisms: Vec<String> = body
                    .mechanisms()
                    .map(|m| Ok(m.to_string()))
                    .collect()
                    .map_err(|e| PgError::protocol(&addr, e.to_string()))?;
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(auth_err(format!("the server offers only SASL {mechanisms:?} and instarec supports SCRAM-SHA-256")));
                }
                // "n,,": we do not do channel binding (SCRAM-SHA-256-PLUS), and say so, so a
                // server that offers it does not suspect a downgrade.
                let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut framed.wbuf)
                    .map_err(|e| PgError::protocol(&addr, e.to_string()))?;
                framed.flush().await?;
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| PgError::protocol(&addr, "SASL continue before SASL start"))?;
                s.update(body.data())
                    .map_err(|e| auth_err(format!("SCRAM exchange failed: {e}")))?;
                frontend::sasl_response(s.message(), &mut framed.wbuf)
                    .map_err(|e| PgError::protocol(&addr, e.to_string()))?;
                framed.flush().await?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| PgError::protocol(&addr, "SASL final before SASL start"))?;
                s.finish(body.data()).map_err(|e| {
                    auth_err(format!("the server's SCRAM signature did not verify: {e}"))
                })?;
            }
            Message::AuthenticationGss
            | Message::AuthenticationKerberosV5
            | Message::AuthenticationSspi
            | Message::AuthenticationScmCredential => {
                return Err(auth_err("the server asks for GSSAPI/SSPI/Kerberos/SCM authentication, which instarec does not support; use scram-sha-256 in pg_hba.conf".into()));
            }
            Message::ParameterStatus(body) => {
                if let (Ok(n), Ok(v)) = (body.name(), body.value()) {
                    parameters.insert(n.to_string(), v.to_string());
                }
            }
            Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
            Message::ReadyForQuery(_) => return Ok(Session { framed, parameters }),
            Message::ErrorResponse(body) => {
                let fields = ErrorFields::from_fields(body.fields());
                // Class 28: invalid authorization (bad password, no pg_hba.conf entry).
                if fields.code.starts_with("28") {
                    return Err(auth_err(fields.message));
                }
                return Err(fields.into_error(&addr, "the connection startup"));
            }
            _ => {
                return Err(PgError::protocol(
                    &addr,
                    "unexpected message during startup",
                ))
            }
        }
    }
}

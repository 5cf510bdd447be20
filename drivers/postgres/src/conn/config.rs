//! Connection settings, read from a libpq-style URL:
//! `postgres://user:pass@host:port/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

pub const DEFAULT_PORT: u16 = 5432;
/// Used when the URL has no `connect_timeout`; libpq waits forever, which hides outages.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// libpq's `sslmode`, with the same meanings. The default is `prefer`, like libpq.
#[derive(Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plain first; TLS only if the server refuses the plain connection.
    Allow,
    /// TLS if the server offers it, without certificate checks.
    #[default]
    Prefer,
    /// TLS or fail, without certificate checks (unless `sslrootcert` is given: then like verify-ca).
    Require,
    /// TLS, and the certificate must chain to a trusted root.
    VerifyCa,
    /// Like verify-ca, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConfigError::SslMode {
                    value: other.to_string(),
                })
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid PostgreSQL URL {url}: {reason}; write it like postgres://user:password@host:5432/dbname?sslmode=require")]
    Url { url: String, reason: String },
    #[error(
        "invalid sslmode {value:?}: use disable, allow, prefer, require, verify-ca or verify-full"
    )]
    SslMode { value: String },
    #[error("unsupported PostgreSQL URL parameter {name:?} in {url}: supported are host, port, user, password, dbname, sslmode, sslrootcert, application_name, connect_timeout")]
    UnknownParameter { url: String, name: String },
}

/// Where and how to connect. `host` may be a directory holding the server's Unix socket.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: Option<String>,
    /// None means [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<Duration>,
}

// Hand-written so the password never reaches a log line through `{:?}`.
impl fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnConfig")
            .field(&self.masked_url())
            .finish()
    }
}

impl ConnConfig {
    /// Parses a URL; a password missing from it is taken from `PGPASSWORD`.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_url_with_env(url, |name| std::env::var(name).ok())
    }

    /// Like [`ConnConfig::from_url`], with the environment given as a function (for tests).
    pub fn from_url_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::Url {
            url: mask_raw(url),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| -> Result<String, ConfigError> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("it is not valid UTF-8 after percent-decoding"))
        };

        let mut user = None;
        let mut password = None;
        if let Some(info) = userinfo {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !u.is_empty() {
                user = Some(decode(u)?);
            }
            if let Some(p) = p {
                password = Some(decode(p)?);
            }
        }

        let (host, port_str) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 host needs a closing ]"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (decode(h)?, Some(p)),
                None => (decode(hostport)?, None),
            }
        };
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))
        };

        let mut cfg = ConnConfig {
            host: if host.is_empty() {
                "localhost".to_string()
            } else {
                host
            },
            port: match port_str {
                Some(p) if !p.is_empty() => parse_port(p)?,
                _ => DEFAULT_PORT,
            },
            user: String::new(),
            password,
            dbname: decode(path)?,
            sslmode: SslMode::default(),
            sslrootcert: None,
            application_name: None,
            connect_timeout: None,
        };

        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            match k.as_str() {
                "sslmode" => cfg.sslmode = v.parse()?,
                "sslrootcert" => cfg.sslrootcert = Some(PathBuf::from(v)),
                "application_name" => cfg.application_name = Some(v),
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad("connect_timeout must be whole seconds"))?;
                    cfg.connect_timeout = if secs == 0 {
                        None
                    } else {
                        Some(Duration::from_secs(secs))
                    };
                }
                "host" => cfg.host = v,
                "port" => cfg.port = parse_port(&v)?,
                "user" => user = Some(v),
                "password" => cfg.password = Some(v),
                "dbname" => cfg.dbname = v,
                _ => {
                    return Err(ConfigError::UnknownParameter {
                        url: mask_raw(url),
                        name: k,
                    })
                }
            }
        }

        cfg.user = user
            .or_else(|| env("PGUSER"))
            .unwrap_or_else(|| "postgres".to_string());
        if cfg.dbname.is_empty() {
            cfg.dbname = cfg.user.clone();
        }
        if cfg.password.is_none() {
            cfg.password = env("PGPASSWORD");
        }
        Ok(cfg)
    }

    /// True when `host` names a Unix socket directory rather than a network host.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// `host:port` (or the socket path) for error messages.
    pub fn addr(&self) -> String {
        if self.is_unix_socket() {
            format!("{}/.s.PGSQL.{}", self.host, self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// The settings as a URL with any password shown as `****`, safe for logs and reports.
    pub fn masked_url(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut url = format!("postgres://{}", enc(&self.user));
        if self.password.is_some() {
            url.push_str(":****");
        }
        url.push('@');
        let mut params: Vec<(&str, String)> = Vec::new();
        if self.is_unix_socket() {
            params.push(("host", self.host.clone()));
        } else if self.host.contains(':') {
            url.push_str(&format!("[{}]", self.host));
        } else {
            url.push_str(&enc(&self.host));
        }
        if !self.is_unix_socket() {
            url.push_str(&format!(":{}", self.port));
        } else {
            params.push(("port", self.port.to_string()));
        }
        url.push('/');
        url.push_str(&enc(&self.dbname));
        params.push(("sslmode", self.sslmode.to_string()));
        if let Some(p) = &self.sslrootcert {
            params.push(("sslrootcert", p.display().to_string()));
        }
        if let Some(a) = &self.application_name {
            params.push(("application_name", a.clone()));
        }
        if let Some(t) = self.connect_timeout {
            params.push(("connect_timeout", t.as_secs().to_string()));
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        url.push('?');
        url.push_str(&query.join("&"));
        url
    }
}

impl FromStr for ConnConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnConfig::from_url(s)
    }
}

/// Masks the password of a URL we could not parse, so error messages never show it.
fn mask_raw(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let after = &url[scheme_end + 3..];
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => match after[..at].find(':') {
            Some(colon) => format!(
                "{}{}:****{}",
                &url[..scheme_end + 3],
                &after[..colon],
                &after[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_full_url() {
        let cfg = ConnConfig::from_url_with_env(
            "postgres://rep%40l:p%3Ass@db.example.com:6432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=instarec&connect_timeout=5",
            no_env,
        )
        .unwrap();
        assert_eq!(cfg.host, "db.example.com");
        assert_eq!(cfg.port, 6432);
        assert_eq!(cfg.user, "rep@l");
        assert_eq!(cfg.password.as_deref(), Some("p:ss"));
        assert_eq!(cfg.dbname, "app");
        assert_eq!(cfg.sslmode, SslMode::VerifyFull);
        assert_eq!(cfg.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(cfg.application_name.as_deref(), Some("instarec"));
        assert_eq!(cfg.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(cfg.addr(), "db.example.com:6432");
    }

    #[test]
    fn applies_defaults_and_postgresql_scheme() {
        let cfg = ConnConfig::from_url_with_env("postgresql://alice@localhost", no_env).unwrap();
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert_eq!(cfg.dbname, "alice");
        assert_eq!(cfg.password, None);
        assert_eq!(cfg.sslmode, SslMode::Prefer);
        assert_eq!(cfg.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        let cfg = ConnConfig::from_url_with_env("postgres://", no_env).unwrap();
        assert_eq!(
            (cfg.host.as_str(), cfg.user.as_str()),
            ("localhost", "postgres")
        );
    }

    #[test]
    fn password_and_user_come_from_environment_when_absent() {
        let env = |k: &str| match k {
            "PGPASSWORD" => Some("fromenv".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            _ => None,
        };
        let cfg = ConnConfig::from_url_with_env("postgres://h/db", env).unwrap();
        assert_eq!(cfg.password.as_deref(), Some("fromenv"));
        assert_eq!(cfg.user, "envuser");
        let cfg = ConnConfig::from_url_with_env("postgres://u:inurl@h/db", env).unwrap();
        assert_eq!(cfg.password.as_deref(), Some("inurl"));
    }

    #[test]
    fn ipv6_and_unix_socket_hosts() {
        let cfg = ConnConfig::from_url_with_env("postgres://u@[::1]:5433/d", no_env).unwrap();
        assert_eq!(cfg.host, "::1");
        assert_eq!(cfg.port, 5433);
        assert_eq!(cfg.addr(), "[::1]:5433");
        let cfg = ConnConfig::from_url_with_env(
            "postgres://u@/d?host=/var/run/postgresql&port=5434",
            no_env,
        )
        .unwrap();
        assert!(cfg.is_unix_socket());
        assert_eq!(cfg.addr(), "/var/run/postgresql/.s.PGSQL.5434");
        let cfg = ConnConfig::from_url_with_env("postgres://u@%2Ftmp/d", no_env).unwrap();
        assert_eq!(cfg.host, "/tmp");
    }

    #[test]
    fn masks_password() {
        let cfg =
            ConnConfig::from_url_with_env("postgres://u:secret@h:5432/d?sslmode=require", no_env)
                .unwrap();
        let masked = cfg.masked_url();
        assert_eq!(masked, "postgres://u:****@h:5432/d?sslmode=require");
        assert!(!format!("{cfg:?}").contains("secret"));
        let cfg = ConnConfig::from_url_with_env("postgres://u@h/d", no_env).unwrap();
        assert_eq!(cfg.masked_url(), "postgres://u@h:5432/d?sslmode=prefer");
        // The masked URL parses back to the same settings apart from the password.
        let cfg = ConnConfig::from_url_with_env(
            "postgres://u:x@/d?host=/run/pg&application_name=a%20b&sslrootcert=/c.pem&connect_timeout=3",
            no_env,
        )
        .unwrap();
        let back = ConnConfig::from_url_with_env(&cfg.masked_url(), no_env).unwrap();
        assert_eq!(back.password.as_deref(), Some("****"));
        assert_eq!(
            ConnConfig {
                password: Some("x".into()),
                ..back
            },
            cfg
        );
    }

    #[test]
    fn errors_name_the_problem_without_the_password() {
        let err = ConnConfig::from_url_with_env("mysql://u:secret@h/d", no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("postgres://") && !err.contains("secret"),
            "{err}"
        );
        let err = ConnConfig::from_url_with_env("postgres://u:secret@h:99999/d", no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("port") && !err.contains("secret") && err.contains("u:****@h:99999"),
            "{err}"
        );
        let err = ConnConfig::from_url_with_env("postgres://h/d?sslmode=on", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"on\""), "{err}");
        let err = ConnConfig::from_url_with_env("postgres://h/d?sslcert=x", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"sslcert\""), "{err}");
    }
}

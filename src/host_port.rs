//! `host:port` as the archive's epochs, promote, ship and the cutover
//! control protocol write it: parsed and printed here, once.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not host:port ({reason}); write it like 10.0.0.5:5432 or [::1]:5432")]
pub struct BadHostPort {
    pub value: String,
    pub reason: String,
}

/// A host name or IP literal plus a port. IPv6 literals print in brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }

    /// Parses `host:port`, `1.2.3.4:port` or `[v6]:port`.
    pub fn parse(value: &str) -> Result<HostPort, BadHostPort> {
        let bad = |reason: &str| BadHostPort {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = after.strip_prefix(':').ok_or_else(|| bad("no :port"))?;
            (host, port)
        } else {
            let (host, port) = value.rsplit_once(':').ok_or_else(|| bad("no :port"))?;
            if host.contains(':') {
                return Err(bad("IPv6 addresses need brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace in host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("port is not a number"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(HostPort::new(host, port))
    }

    /// The host and port of a `postgres://` or `mysql://` URL, with
    /// `default_port` when the URL names none.
    pub fn from_url(value: &str, default_port: u16) -> Result<HostPort, BadHostPort> {
        let bad = |reason: &str| BadHostPort {
            value: crate::config::mask_url_password(value),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HostPort::new(host, url.port().unwrap_or(default_port)))
    }
}

impl HostPort {
    /// The host as a URL spells it: IPv6 literals in brackets.
    pub fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.url_host(), self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_names_ipv4_and_ipv6() {
        for text in ["db2.internal:5432", "10.0.0.5:6432", "[::1]:5433"] {
            assert_eq!(HostPort::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(HostPort::parse("[::1]:5433").unwrap().host, "::1");
    }

    #[test]
    fn takes_host_and_port_from_connection_urls() {
        let p = HostPort::from_url("postgres://u:secret@db1:6543/app", 5432).unwrap();
        assert_eq!(p.to_string(), "db1:6543");
        let p = HostPort::from_url("mysql://root@[::1]/x", 3306).unwrap();
        assert_eq!(p.to_string(), "[::1]:3306");
        let e = HostPort::from_url("postgres://u:secret@/app", 5432).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn rejects_what_is_not_host_port() {
        for text in [
            "db2",
            ":5432",
            "db2:",
            "db2:x",
            "db2:70000",
            "::1:5432",
            "[::1]5432",
            "a b:1",
            "db:0",
        ] {
            assert!(HostPort::parse(text).is_err(), "{text} should be rejected");
        }
    }
}

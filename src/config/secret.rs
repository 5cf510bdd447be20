//! Values that must never reach a log line or a printout.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A secret string. Debug, Display and Serialize print `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The real value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A connection URL that may carry a password. Every printed form masks it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        SecretUrl(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn masked(&self) -> String {
        mask_url_password(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretUrl)
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `****`,
/// the one mask every message uses. Also masks query parameters that carry
/// credentials (`password=`, `token=`, `secret=`, ...). Anything else passes
/// unchanged.
pub fn mask_url_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map(|i| rest_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                let end = rest_start + at;
                out.replace_range(start..end, "****");
            }
        }
    }
    mask_query_password(&out)
}

/// Query keys that carry credentials: password=, and the token, secret,
/// signature and credential parameters of object-store URLs.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "token",
        "secret",
        "signature",
        "credential",
        "sig",
    ]
    .iter()
    .any(|s| key.contains(s))
}

fn mask_query_password(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let (head, query) = url.split_at(q + 1);
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=****"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{}", masked.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_in_userinfo() {
        assert_eq!(
            mask_url_password("postgres://rep:s3cr%40t@db1:5432/postgres?sslmode=verify-full"),
            "postgres://rep:****@db1:5432/postgres?sslmode=verify-full"
        );
        assert_eq!(
            mask_url_password("mysql://root:pw@127.0.0.1:3306/"),
            "mysql://root:****@127.0.0.1:3306/"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        assert_eq!(
            mask_url_password("postgres://rep@db1/postgres"),
            "postgres://rep@db1/postgres"
        );
        assert_eq!(mask_url_password("file:///var/a@b"), "file:///var/a@b");
    }

    #[test]
    fn masks_password_query_parameter() {
        assert_eq!(
            mask_url_password("postgres://db1/x?user=a&password=hunter2&sslmode=require"),
            "postgres://db1/x?user=a&password=****&sslmode=require"
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "**** ****");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"****\"");
    }
}

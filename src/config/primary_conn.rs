//! [primary] as the typed connection every command uses (ship, backup,
//! promote, status): parsed here once, with the password from
//! password_file when set.

use super::PrimarySection;
use anyhow::Context as _;
use instarec_postgres::ConnConfig;

impl PrimarySection {
    /// The PostgreSQL connection settings, with application_name defaulted
    /// to [primary] application_name.
    pub fn postgres_conn(&self) -> anyhow::Result<ConnConfig> {
        let mut conn = ConnConfig::from_url(self.url.expose())
            .with_context(|| format!("[primary] url {}", self.url))?;
        if let Some(password) = self.password_from_file()? {
            conn.password = Some(password);
        }
        if conn.application_name.is_none() {
            conn.application_name = Some(self.application_name.clone());
        }
        Ok(conn)
    }

    /// The mysql:// URL with the password from password_file, if set.
    pub fn mysql_url(&self) -> anyhow::Result<String> {
        let mut url = url::Url::parse(self.url.expose()).with_context(|| {
            format!(
                "[primary] url {} is not a URL; write it as mysql://user:password@host:port/",
                self.url
            )
        })?;
        if let Some(password) = self.password_from_file()? {
            url.set_password(Some(&password)).map_err(|()| {
                anyhow::anyhow!(
                    "[primary] url {} cannot carry a password; write it as mysql://user@host:port/",
                    self.url
                )
            })?;
        }
        Ok(url.to_string())
    }

    /// The first line of password_file, when set.
    fn password_from_file(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading [primary] password_file {}; create it or remove the key",
                path.display()
            )
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }
}

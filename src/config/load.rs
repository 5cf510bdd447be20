//! Resolves the configuration from its three sources, in increasing
//! precedence: the TOML file, `INSTAREC_<SECTION>_<KEY>` variables, CLI flags.

use super::error::ConfigError;
use super::sections::Config;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

pub const DEFAULT_CONFIG_PATH: &str = "instarec.toml";

/// Variables with the INSTAREC_ prefix that are not config keys.
const RESERVED_ENV: &[&str] = &["INSTAREC_CONFIG", "INSTAREC_LOG"];
/// Left to the test harness (e.g. INSTAREC_TEST_PG_BIN), which runs instarec
/// with them set; no section is called TEST.
const RESERVED_ENV_PREFIX: &str = "INSTAREC_TEST_";

/// Sections that may appear in a variable name; nested ones first so that
/// INSTAREC_ARCHIVE_S3_ENDPOINT maps to [archive.s3] endpoint.
const ENV_SECTIONS: &[(&str, &[&str])] = &[
    ("archive_s3_", &["archive", "s3"]),
    ("archive_", &["archive"]),
    ("primary_", &["primary"]),
    ("standby_", &["standby"]),
    ("cutover_pgbouncer_", &["cutover", "pgbouncer"]),
    ("cutover_haproxy_", &["cutover", "haproxy"]),
    ("cutover_hook_", &["cutover", "hook"]),
    ("cutover_", &["cutover"]),
    ("promote_", &["promote"]),
    ("metrics_", &["metrics"]),
    ("relay_", &["relay"]),
];

/// Where a configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The file; `None` means ./instarec.toml, which may be absent.
    pub file: Option<PathBuf>,
    /// The process environment (only INSTAREC_* entries are used).
    pub env: Vec<(String, String)>,
    /// CLI overrides as dotted key → value, e.g. ("archive.url", "file:///x").
    pub flags: Vec<(String, Value)>,
}

impl ConfigSources {
    pub fn from_process(file: Option<PathBuf>, flags: Vec<(String, Value)>) -> Self {
        ConfigSources {
            file,
            env: std::env::vars().collect(),
            flags,
        }
    }

    /// A short description of where values came from, for error messages.
    pub fn origin(&self) -> String {
        match &self.file {
            Some(p) => p.display().to_string(),
            None => format!("./{DEFAULT_CONFIG_PATH} (default)"),
        }
    }

    /// The config file that was read: the explicit one, or ./instarec.toml
    /// when it exists; `None` when there is no file.
    pub fn file_found(&self) -> Option<PathBuf> {
        match &self.file {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        }
    }

    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = self.read_file()?;
        let mut table = file.clone();
        let env = self.env_overrides()?;
        for (_, path, value) in &env {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            set_dotted(&mut table, &path, value.clone());
        }
        for (key, value) in &self.flags {
            let path: Vec<&str> = key.split('.').collect();
            set_dotted(&mut table, &path, value.clone());
        }
        engine_from_url(&mut table, &self.origin())?;
        Config::deserialize_table(table, &self.origin())
            .map_err(|e| blame_env_for_unknown_key(e, &file, &env))
    }

    fn read_file(&self) -> Result<Table, ConfigError> {
        let (path, explicit) = match &self.file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        text.parse::<Table>().map_err(|e| ConfigError::Invalid {
            origin: path.display().to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Maps each INSTAREC_ variable to a dotted key path and its value.
    fn env_overrides(&self) -> Result<Vec<EnvOverride>, ConfigError> {
        let mut out = Vec::new();
        let mut vars: Vec<&(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| {
                k.starts_with("INSTAREC_")
                    && !k.starts_with(RESERVED_ENV_PREFIX)
                    && !RESERVED_ENV.contains(&k.as_str())
            })
            .collect();
        vars.sort();
        for (var, raw) in vars {
            let lower = var["INSTAREC_".len()..].to_ascii_lowercase();
            let Some((prefix, section)) = ENV_SECTIONS.iter().find(|(p, _)| lower.starts_with(p))
            else {
                return Err(ConfigError::UnknownEnv {
                    var: var.clone(),
                    sections: "ARCHIVE, ARCHIVE_S3, PRIMARY, STANDBY, CUTOVER, CUTOVER_PGBOUNCER, CUTOVER_HAPROXY, CUTOVER_HOOK, PROMOTE, METRICS, RELAY".into(),
                });
            };
            let key = &lower[prefix.len()..];
            let mut path: Vec<String> = section.iter().map(|s| s.to_string()).collect();
            path.push(key.to_string());
            out.push((var.clone(), path, env_value(raw)));
        }
        Ok(out)
    }
}

/// A postgres:// or mysql:// [primary] url names the engine: fill in a
/// missing `engine` from it, and refuse an `engine` that contradicts it.
fn engine_from_url(table: &mut Table, origin: &str) -> Result<(), ConfigError> {
    let Some(Value::Table(primary)) = table.get_mut("primary") else {
        return Ok(());
    };
    let Some(Value::String(url)) = primary.get("url") else {
        return Ok(());
    };
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let implied = match scheme.as_deref() {
        Some("postgres" | "postgresql") => "postgres",
        Some("mysql" | "mariadb") => "mysql",
        _ => return Ok(()),
    };
    let scheme = scheme.unwrap_or_default();
    match primary.get("engine") {
        None => {
            primary.insert("engine".into(), Value::String(implied.into()));
            Ok(())
        }
        Some(Value::String(engine)) if engine != implied && (engine == "postgres" || engine == "mysql") => {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                message: format!(
                    "[primary] engine = \"{engine}\" but url is a {scheme}:// URL, which is {implied}; drop `engine` (the URL names it) or fix the URL"
                ),
            })
        }
        Some(_) => Ok(()),
    }
}

/// A variable's name, the key path it sets, and its value.
type EnvOverride = (String, Vec<String>, Value);

/// An unknown key that an INSTAREC_ variable set (and the file does not
/// hold) is that variable's fault: name it, not the file.
fn blame_env_for_unknown_key(err: ConfigError, file: &Table, env: &[EnvOverride]) -> ConfigError {
    let ConfigError::Invalid { message, .. } = &err else {
        return err;
    };
    let Some(key) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.split("unknown field `").nth(1))
        .and_then(|rest| rest.split('`').next())
    else {
        return err;
    };
    let culprit = env
        .iter()
        .find(|(_, path, _)| path.last().map(String::as_str) == Some(key) && !holds(file, path));
    match culprit {
        Some((var, path, _)) => {
            let (_, section) = path.split_last().expect("env paths have a key");
            ConfigError::UnknownEnvKey {
                var: var.clone(),
                section: section.join("."),
                key: key.to_string(),
                message: message.clone(),
            }
        }
        None => err,
    }
}

fn holds(table: &Table, path: &[String]) -> bool {
    let mut cur = table;
    for (i, part) in path.iter().enumerate() {
        match cur.get(part) {
            Some(Value::Table(t)) if i + 1 < path.len() => cur = t,
            Some(_) if i + 1 == path.len() => return true,
            _ => return false,
        }
    }
    false
}

/// Environment values are strings, except literal booleans and integers,
/// which keys like `allow_http` and `zstd_level` need.
fn env_value(raw: &str) -> Value {
    match raw {
        "true" => Value::Boolean(true),
        "false" => Value::Boolean(false),
        _ => match raw.parse::<i64>() {
            // "+5" and "007" stay strings: they are not how TOML writes integers.
            Ok(n) if !raw.starts_with('+') && (!raw.starts_with('0') || raw.len() == 1) => {
                Value::Integer(n)
            }
            _ => Value::String(raw.to_string()),
        },
    }
}

fn set_dotted(table: &mut Table, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("config key path is never empty");
    let mut cur = table;
    for part in parents {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur.insert(last.to_string(), value);
}

impl Config {
    fn deserialize_table(table: Table, origin: &str) -> Result<Config, ConfigError> {
        Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| ConfigError::Invalid {
                origin: origin.to_string(),
                message: e.to_string().trim().replace('\n', " "),
            })
    }

    /// Parses a config from TOML text alone (no env, no flags).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table = text.parse::<Table>().map_err(|e| ConfigError::Invalid {
            origin: "text".into(),
            message: e.to_string(),
        })?;
        Config::deserialize_table(table, "text")
    }

    /// Absolute path of a config file, for embedding in restore_command.
    pub fn absolute_path(path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sources with `file_text` as the file, in a temp dir removed on drop.
    struct Fixture {
        _dir: tempfile::TempDir,
        sources: ConfigSources,
    }

    impl Fixture {
        fn resolve(&self) -> Result<Config, ConfigError> {
            self.sources.resolve()
        }
    }

    fn sources(file_text: &str, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("instarec-config-test-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("instarec.toml");
        std::fs::write(&path, file_text).unwrap();
        let sources = ConfigSources {
            file: Some(path),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        };
        Fixture { _dir: dir, sources }
    }

    const FILE: &str = r#"
[archive]
url = "file:///from-file"
zstd_level = 5
[primary]
engine = "postgres"
url = "postgres://rep:filepw@db1:5432/postgres"
"#;

    #[test]
    fn precedence_is_file_then_env_then_flag() {
        let c = sources(FILE, &[], &[]).resolve().unwrap();
        assert_eq!(c.archive.url, "file:///from-file");

        let env = [
            ("INSTAREC_ARCHIVE_URL", "file:///from-env"),
            ("INSTAREC_ARCHIVE_ZSTD_LEVEL", "9"),
            ("INSTAREC_ARCHIVE_S3_ALLOW_HTTP", "true"),
        ];
        let c = sources(FILE, &env, &[]).resolve().unwrap();
        assert_eq!(c.archive.url, "file:///from-env");
        assert_eq!(c.archive.zstd_level, 9);
        assert!(c.archive.s3.allow_http);

        let c = sources(FILE, &env, &[("archive.url", "file:///from-flag")])
            .resolve()
            .unwrap();
        assert_eq!(c.archive.url, "file:///from-flag");
        assert_eq!(c.archive.zstd_level, 9, "env still applies where no flag");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = sources("[archive]\nurll = \"x\"\n", &[], &[])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = sources(FILE, &[("INSTAREC_ARCHIVE_BUCKETNAME", "x")], &[])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("bucketname"), "{err}");
        assert!(err.contains("INSTAREC_ARCHIVE_BUCKETNAME"), "{err}");
        let err = sources(FILE, &[("INSTAREC_PRIMARY_SLOTT", "x")], &[])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment variable INSTAREC_PRIMARY_SLOTT") && err.contains("slott"),
            "{err}"
        );
        assert!(
            !err.contains("instarec.toml"),
            "the file is not at fault: {err}"
        );
        let err = sources(FILE, &[("INSTAREC_BOGUS_X", "x")], &[])
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("INSTAREC_BOGUS_X"), "{err}");
    }

    #[test]
    fn test_harness_variables_are_not_config_keys() {
        let env = [("INSTAREC_TEST_PG_BIN", "/var/cache/instarec-pg/18/bin")];
        assert!(sources(FILE, &env, &[]).resolve().is_ok());
    }

    #[test]
    fn secrets_are_masked_in_every_printed_form() {
        let env = [("INSTAREC_ARCHIVE_S3_SECRET_ACCESS_KEY", "topsecretkey")];
        let c = sources(FILE, &env, &[]).resolve().unwrap();
        let debug = format!("{c:?}");
        let toml = toml::to_string(&c).unwrap();
        for printed in [&debug, &toml] {
            assert!(!printed.contains("filepw"), "{printed}");
            assert!(!printed.contains("topsecretkey"), "{printed}");
            assert!(printed.contains("rep:****@db1"), "{printed}");
        }
        let primary = c.primary.unwrap();
        assert_eq!(
            primary.url.expose(),
            "postgres://rep:filepw@db1:5432/postgres"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_it() {
        let s = ConfigSources {
            file: Some("/nonexistent/instarec.toml".into()),
            ..Default::default()
        };
        let err = s.resolve().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/instarec.toml"), "{err}");
    }

    #[test]
    fn the_url_scheme_names_the_engine_and_a_conflict_is_refused() {
        let c = sources("[primary]\nurl = \"mysql://repl@db1:3306/\"\n", &[], &[])
            .resolve()
            .unwrap();
        assert_eq!(c.primary.unwrap().engine, crate::engine::Engine::Mysql);
        let c = sources("", &[], &[("primary.url", "postgres://u@db1/postgres")])
            .resolve()
            .unwrap();
        assert_eq!(c.primary.unwrap().engine, crate::engine::Engine::Postgres);
        let err = sources(
            "[primary]\nengine = \"mysql\"\nurl = \"postgres://u@db1/postgres\"\n",
            &[],
            &[],
        )
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("engine = \"mysql\"") && err.contains("postgres://"),
            "{err}"
        );
    }

    #[test]
    fn defaults_fill_primary_keys() {
        let c = sources(FILE, &[], &[]).resolve().unwrap();
        let p = c.primary.unwrap();
        assert_eq!(p.slot, "instarec");
        assert_eq!(p.flush_interval.0, std::time::Duration::from_millis(200));
        assert!(!p.synchronous);
    }
}

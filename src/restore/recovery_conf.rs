//! The recovery settings instarec appends to postgresql.auto.conf, and the
//! signal file that puts the server into standby or targeted recovery.

use super::target::RecoveryTarget;
use instarec_postgres::lsn::TimelineId;
use std::io::Write as _;
use std::path::Path;

/// Which signal file: `standby.signal` (follow the archive forever) or
/// `recovery.signal` (stop at a target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    Standby,
    Targeted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryConf {
    pub mode: RecoveryMode,
    /// The full restore_command, with `%f` and `%p` left for the server.
    pub restore_command: String,
    pub target: RecoveryTarget,
    /// None means 'latest'.
    pub timeline: Option<TimelineId>,
    /// At the target: pause (inspect first) instead of promoting.
    pub pause: bool,
}

/// How often a standby asks for the segment it waits for again. Parts of the
/// in-progress segment arrive every flush_interval (default 200ms); a retry
/// at the same pace keeps the standby within about two intervals.
pub const RETRY_INTERVAL: &str = "200ms";

impl RecoveryConf {
    /// The lines appended to postgresql.auto.conf (later lines win).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("restore_command", self.restore_command.clone()),
            (
                "recovery_target_timeline",
                self.timeline
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(|| "latest".into()),
            ),
        ];
        match self.mode {
            RecoveryMode::Standby => {
                out.push(("hot_standby", "on".into()));
                out.push(("wal_retrieve_retry_interval", RETRY_INTERVAL.into()));
            }
            RecoveryMode::Targeted => {
                match self.target {
                    RecoveryTarget::Time(t) => out.push((
                        "recovery_target_time",
                        t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
                    )),
                    RecoveryTarget::Lsn(l) => out.push(("recovery_target_lsn", l.to_string())),
                    RecoveryTarget::Xid(x) => out.push(("recovery_target_xid", x.to_string())),
                    RecoveryTarget::Latest => {}
                }
                let action = if self.pause { "pause" } else { "promote" };
                out.push(("recovery_target_action", action.into()));
                // --pause makes a hot standby the user can query at the target.
                out.push(("hot_standby", "on".into()));
                // A restored copy shares the primary's system id: archiving
                // its new timeline into the same archive would fork it.
                out.push(("archive_mode", "off".into()));
            }
        }
        out
    }

    /// The text appended to postgresql.auto.conf.
    pub fn render(&self, header: &str) -> String {
        let mut text = format!("\n# {header}\n");
        for (key, value) in self.settings() {
            text.push_str(&format!("{key} = {}\n", quote_conf(&value)));
        }
        text
    }

    /// Appends the settings and creates the signal file (blocking I/O).
    pub fn write_blocking(&self, data_dir: &Path, header: &str) -> std::io::Result<()> {
        let conf = data_dir.join("postgresql.auto.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&conf)?;
        f.write_all(self.render(header).as_bytes())?;
        f.sync_all()?;
        let signal = match self.mode {
            RecoveryMode::Standby => "standby.signal",
            RecoveryMode::Targeted => "recovery.signal",
        };
        std::fs::write(data_dir.join(signal), b"")?;
        // A restored data dir must not keep the primary's recovery intent.
        let other = match self.mode {
            RecoveryMode::Standby => "recovery.signal",
            RecoveryMode::Targeted => "standby.signal",
        };
        match std::fs::remove_file(data_dir.join(other)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A postgresql.conf string literal: single quotes, inner quotes doubled.
pub fn quote_conf(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The restore_command that runs this instarec: `exe [--config C]
/// [--archive-url U] wal-fetch [--partial] %f %p`, shell-quoted, with `%`
/// in paths doubled so PostgreSQL does not expand them.
pub fn restore_command(
    exe: &Path,
    config: Option<&Path>,
    archive_url: Option<&str>,
    partial: bool,
) -> String {
    let mut words = vec![shell_word(&exe.display().to_string())];
    if let Some(c) = config {
        words.push("--config".into());
        words.push(shell_word(&c.display().to_string()));
    }
    if let Some(u) = archive_url {
        words.push("--archive-url".into());
        words.push(shell_word(u));
    }
    words.push("wal-fetch".into());
    if partial {
        words.push("--partial".into());
    }
    words.push("%f".into());
    words.push("%p".into());
    words.join(" ")
}

fn shell_word(raw: &str) -> String {
    let escaped = raw.replace('%', "%%");
    let plain = escaped
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,%".contains(c));
    if plain && !escaped.is_empty() {
        escaped
    } else {
        format!("'{}'", escaped.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use instarec_postgres::lsn::Lsn;

    #[test]
    fn restore_command_quotes_for_shell_and_server() {
        let cmd = restore_command(
            Path::new("/usr/bin/instarec"),
            Some(Path::new("/etc/instarec/my conf%.toml")),
            None,
            true,
        );
        assert_eq!(
            cmd,
            "/usr/bin/instarec --config '/etc/instarec/my conf%%.toml' wal-fetch --partial %f %p"
        );
        assert_eq!(quote_conf("it's"), "'it''s'");
        let plain = restore_command(Path::new("/x"), None, Some("s3://b/p"), false);
        assert_eq!(plain, "/x --archive-url s3://b/p wal-fetch %f %p");
    }

    #[test]
    fn standby_settings() {
        let conf = RecoveryConf {
            mode: RecoveryMode::Standby,
            restore_command: "/x wal-fetch --partial %f %p".into(),
            target: RecoveryTarget::Latest,
            timeline: None,
            pause: false,
        };
        assert_eq!(
            conf.render("by instarec"),
            "\n# by instarec\n\
             restore_command = '/x wal-fetch --partial %f %p'\n\
             recovery_target_timeline = 'latest'\n\
             hot_standby = 'on'\n\
             wal_retrieve_retry_interval = '200ms'\n"
        );
    }

    #[test]
    fn targeted_settings() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T16:50:01.25Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut conf = RecoveryConf {
            mode: RecoveryMode::Targeted,
            restore_command: "/x".into(),
            target: RecoveryTarget::Time(t),
            timeline: Some(TimelineId(2)),
            pause: false,
        };
        let s = conf.settings();
        assert!(s.contains(&(
            "recovery_target_time",
            "2026-11-27 16:50:01.250000+00".into()
        )));
        assert!(s.contains(&("recovery_target_timeline", "2".into())));
        assert!(s.contains(&("recovery_target_action", "promote".into())));
        assert!(s.contains(&("archive_mode", "off".into())));
        conf.target = RecoveryTarget::Lsn(Lsn(0x3000060));
        conf.pause = true;
        let s = conf.settings();
        assert!(s.contains(&("recovery_target_lsn", "0/3000060".into())));
        assert!(s.contains(&("recovery_target_action", "pause".into())));
        conf.target = RecoveryTarget::Latest;
        assert!(!conf
            .settings()
            .iter()
            .any(|(k, _)| k.starts_with("recovery_target_lsn")));
    }

    #[test]
    fn writes_signal_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postgresql.auto.conf"), "# primary\n").unwrap();
        std::fs::write(dir.path().join("standby.signal"), "").unwrap();
        let conf = RecoveryConf {
            mode: RecoveryMode::Targeted,
            restore_command: "/x".into(),
            target: RecoveryTarget::Xid(42),
            timeline: None,
            pause: false,
        };
        conf.write_blocking(dir.path(), "h").unwrap();
        let text = std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).unwrap();
        assert!(text.starts_with("# primary\n"));
        assert!(text.contains("recovery_target_xid = '42'"));
        assert!(dir.path().join("recovery.signal").exists());
        assert!(!dir.path().join("standby.signal").exists());
    }
}

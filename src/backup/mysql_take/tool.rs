//! The physical backup tool, run as a child process: mariabackup for
//! MariaDB, xtrabackup for MySQL. Both stream xbstream on stdout and log on
//! stderr, and both must run on the server's host (they read its data
//! directory). The password goes through an option file readable by us
//! alone, never through the command line that `ps` shows.

use super::binlog_info::BinlogInfo;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Lines of stderr kept for the error message when the tool fails.
const TAIL_LINES: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupTool {
    /// MariaDB's `mariadb-backup` (`mariabackup` before 11.x).
    Mariabackup,
    /// Percona XtraBackup, for MySQL.
    Xtrabackup,
}

impl BackupTool {
    /// Executable names to try, in order.
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            BackupTool::Mariabackup => &["mariadb-backup", "mariabackup"],
            BackupTool::Xtrabackup => &["xtrabackup"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackupTool::Mariabackup => "mariabackup",
            BackupTool::Xtrabackup => "xtrabackup",
        }
    }

    /// The package that provides it, for "install …" advice.
    pub fn package(self) -> &'static str {
        match self {
            BackupTool::Mariabackup => "mariadb-backup",
            BackupTool::Xtrabackup => "percona-xtrabackup-80",
        }
    }
}

/// Where and as whom the tool connects.
#[derive(Clone, PartialEq, Eq)]
pub struct ToolConnection {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for ToolConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .finish()
    }
}

impl ToolConnection {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The option file that carries the password, if there is one.
    pub fn defaults_file_text(&self) -> Option<String> {
        let password = self.password.as_deref()?;
        // Option files unescape \\ and \" inside double quotes.
        let quoted = password.replace('\\', "\\\\").replace('"', "\\\"");
        Some(format!("[client]\npassword=\"{quoted}\"\n"))
    }
}

/// The tool's arguments for a streamed backup. `defaults_file` must come
/// first (the tools only honour --defaults-extra-file there); it holds the
/// password. `target_dir` is scratch space: with --stream the data goes to
/// stdout.
pub fn backup_args(
    conn: &ToolConnection,
    defaults_file: Option<&Path>,
    target_dir: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if let Some(file) = defaults_file {
        let mut a = OsString::from("--defaults-extra-file=");
        a.push(file);
        args.push(a);
    }
    args.push("--backup".into());
    args.push("--stream=xbstream".into());
    let mut target = OsString::from("--target-dir=");
    target.push(target_dir);
    args.push(target);
    args.push(format!("--host={}", conn.host).into());
    args.push(format!("--port={}", conn.port).into());
    if let Some(user) = &conn.user {
        args.push(format!("--user={user}").into());
    }
    args
}

/// What the tool said on stderr, kept while it runs.
#[derive(Debug, Clone, Default)]
pub struct ToolReport {
    /// "mariabackup based on MariaDB server 10.11.19-MariaDB …"
    pub version: Option<String>,
    /// The binlog position report, possibly several lines.
    pub binlog_info: Option<String>,
    /// The last lines, for the error when the tool fails.
    pub tail: VecDeque<String>,
}

impl ToolReport {
    pub fn tail_text(&self) -> String {
        self.tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Takes one stderr line into account.
    pub fn line(&mut self, line: &str) {
        if let Some(text) = &mut self.binlog_info {
            if !BinlogInfo::is_complete(text) {
                text.push('\n');
                text.push_str(line);
            }
        } else if BinlogInfo::starts_in(line) {
            self.binlog_info = Some(line.to_string());
        }
        if self.version.is_none() && line.contains(" based on ") {
            self.version = Some(line.trim().to_string());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
    }
}

/// Reads the tool's stderr to its end, logging each line at debug level.
pub async fn watch_stderr(stderr: impl AsyncRead + Unpin, tool: BackupTool) -> ToolReport {
    let mut report = ToolReport::default();
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                tracing::debug!(tool = tool.name(), "{line}");
                report.line(line);
            }
            Err(e) => {
                report.line(&format!("(instarec: reading stderr failed: {e})"));
                break;
            }
        }
    }
    report
}

/// A private scratch directory (mode 0700) for the option file and the
/// tool's target dir; removed on drop.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub async fn create(id: &str) -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("instarec-backup-{id}-{}", std::process::id()));
        let mut builder = tokio::fs::DirBuilder::new();
        builder.mode(0o700);
        builder.create(&dir).await?;
        let scratch = Scratch { dir };
        tokio::fs::create_dir(scratch.target_dir()).await?;
        Ok(scratch)
    }

    pub fn target_dir(&self) -> PathBuf {
        self.dir.join("target")
    }

    /// Writes the option file (mode 0600) and returns its path.
    pub async fn write_defaults_file(&self, text: &str) -> std::io::Result<PathBuf> {
        use tokio::io::AsyncWriteExt as _;
        let path = self.dir.join("client.cnf");
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await?;
        file.write_all(text.as_bytes()).await?;
        file.flush().await?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove the backup's scratch directory; delete it by hand");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(password: Option<&str>) -> ToolConnection {
        ToolConnection {
            host: "127.0.0.1".into(),
            port: 3307,
            user: Some("backup".into()),
            password: password.map(str::to_string),
        }
    }

    #[test]
    fn arguments_never_carry_the_password() {
        let c = conn(Some("s3cret"));
        let args = backup_args(
            &c,
            Some(Path::new("/tmp/x/client.cnf")),
            Path::new("/tmp/x/target"),
        );
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--defaults-extra-file=/tmp/x/client.cnf",
                "--backup",
                "--stream=xbstream",
                "--target-dir=/tmp/x/target",
                "--host=127.0.0.1",
                "--port=3307",
                "--user=backup",
            ]
        );
        assert!(!args.iter().any(|a| a.contains("s3cret")));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn without_a_password_no_option_file() {
        let c = ToolConnection {
            user: None,
            ..conn(None)
        };
        assert_eq!(c.defaults_file_text(), None);
        let args = backup_args(&c, None, Path::new("/t"));
        assert_eq!(args[0], "--backup");
        assert!(!args
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--user")));
    }

    #[test]
    fn option_file_quotes_the_password() {
        assert_eq!(
            conn(Some(r#"a "b" \c #d"#)).defaults_file_text().unwrap(),
            "[client]\npassword=\"a \\\"b\\\" \\\\c #d\"\n"
        );
    }

    #[test]
    fn tools_and_their_programs() {
        assert_eq!(
            BackupTool::Mariabackup.programs(),
            ["mariadb-backup", "mariabackup"]
        );
        assert_eq!(BackupTool::Xtrabackup.programs(), ["xtrabackup"]);
    }

    #[test]
    fn report_keeps_version_position_and_tail() {
        let mut r = ToolReport::default();
        r.line("mariabackup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)");
        for n in 0..40 {
            r.line(&format!("[00] copying file {n}"));
        }
        r.line("MySQL binlog position: filename 'binlog.000003', position '157', GTID of the last change 'u:1-5,");
        r.line("v:1-3'");
        r.line("[00] completed OK!");
        assert_eq!(
            r.version.as_deref(),
            Some("mariabackup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)")
        );
        let info = BinlogInfo::parse(r.binlog_info.as_deref().unwrap()).unwrap();
        assert_eq!(info.gtid, "u:1-5,v:1-3");
        assert_eq!(r.tail.len(), TAIL_LINES);
        assert!(r.tail_text().ends_with("[00] completed OK!"));
    }
}

//! The MariaDB programs a restore runs: where they are, and what they said
//! on stderr when they fail.

use super::error::MysqlRestoreError;
use std::collections::VecDeque;
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

/// Lines of output kept for an error message.
const TAIL_LINES: usize = 25;

/// Searched after PATH: Debian keeps mariadbd in /usr/sbin.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Mbstream,
    Mariabackup,
    Mariadbd,
}

impl Tool {
    fn programs(self) -> &'static [&'static str] {
        match self {
            Tool::Mbstream => &["mbstream", "mariadb-backup-stream"],
            Tool::Mariabackup => &["mariadb-backup", "mariabackup"],
            Tool::Mariadbd => &["mariadbd", "mysqld"],
        }
    }

    fn package(self) -> &'static str {
        match self {
            Tool::Mbstream | Tool::Mariabackup => "mariadb-backup",
            Tool::Mariadbd => "mariadb-server",
        }
    }

    pub fn name(self) -> &'static str {
        self.programs()[0]
    }
}

/// The tool's full path, from `bin_dir` first if given, then PATH.
pub fn find_in(
    tool: Tool,
    bin_dir: Option<&std::path::Path>,
) -> Result<PathBuf, MysqlRestoreError> {
    let mut dirs: Vec<PathBuf> = bin_dir.map(PathBuf::from).into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend(EXTRA_DIRS.iter().map(PathBuf::from));
    for name in tool.programs() {
        for dir in &dirs {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(MysqlRestoreError::ToolMissing {
        tool: tool.name(),
        tried: tool.programs().join(", "),
        package: tool.package(),
    })
}

pub fn find(tool: Tool) -> Result<PathBuf, MysqlRestoreError> {
    find_in(tool, None)
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last lines a child wrote to `pipe`, read to its end.
pub async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(pipe) = pipe else {
        return String::new();
    };
    let mut lines = BufReader::new(pipe).lines();
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    while let Ok(Some(line)) = lines.next_line().await {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Vec::from(tail).join("\n")
}

/// The last `lines` lines of a log file.
pub fn file_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

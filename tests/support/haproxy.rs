//! A real haproxy in TCP mode in front of one database server, with its
//! runtime API on a unix socket and on TCP, as `instarec promote`'s haproxy
//! cutover drives it.

use super::process::{free_port, log_tail, wait_for_port, GroupChild};
use super::require_binary;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// haproxy with frontend and backend `backend`, whose one server `primary`
/// is 127.0.0.1:`upstream`; stopped when dropped.
pub struct Haproxy {
    _process: GroupChild,
    /// The frontend clients connect to.
    pub port: u16,
    pub backend: String,
    /// The runtime API as `unix:<path>`.
    pub socket: String,
    /// The runtime API as `127.0.0.1:<port>`.
    pub tcp_api: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    pub fn start(backend: &str, upstream: u16) -> Haproxy {
        let binary = require_binary("haproxy", "haproxy");
        let dir = tempfile::tempdir().unwrap();
        let (port, api_port) = (free_port(), free_port());
        let socket = dir.path().join("admin.sock");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  stats socket {} mode 600 level admin\n  stats socket ipv4@127.0.0.1:{api_port} level admin\n\
                 defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1m\n  timeout server 1m\n\
                 frontend {backend}\n  bind 127.0.0.1:{port}\n  default_backend {backend}\n\
                 backend {backend}\n  server primary 127.0.0.1:{upstream}\n",
                socket.display()
            ),
        )
        .unwrap();
        let log = dir.path().join("haproxy.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let process = GroupChild::spawn("haproxy", cmd, libc::SIGTERM, Duration::from_secs(5))
            .expect("spawning haproxy");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(socket.exists() && wait_for_port(port, Duration::from_millis(100))) {
            assert!(
                Instant::now() < deadline,
                "haproxy did not start:\n{}",
                log_tail(&log, 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy {
            _process: process,
            port,
            backend: backend.to_string(),
            socket: format!("unix:{}", socket.display()),
            tcp_api: format!("127.0.0.1:{api_port}"),
            log,
            _dir: dir,
        }
    }

    /// The [cutover] section promote uses to repoint this haproxy over its
    /// unix socket; its frontend is `listen`, the path of promote's first
    /// write.
    pub fn cutover_section(&self) -> String {
        format!(
            "[cutover]\nmethod = \"haproxy\"\nlisten = \"127.0.0.1:{}\"\n\n[cutover.haproxy]\nruntime_api = \"{}\"\nbackend = \"{}\"\nserver = \"primary\"\n",
            self.port, self.socket, self.backend
        )
    }
}

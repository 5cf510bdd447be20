//! `instarec relay` under test: the config that adds a [relay] section to a
//! MariaDB shipper's, and the relay process with its log captured.

use super::instarec::{binary, write_mysql_config};
use super::mariadb::MariaDb;
use super::process::GroupChild;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const RELAY_USER: &str = "repl";
pub const RELAY_PASSWORD: &str = "relay-secret";

/// `instarec --config <config> relay`, logging at debug level to a file.
pub struct Relay {
    child: GroupChild,
    log: PathBuf,
}

impl Relay {
    /// Starts the relay and waits until it listens on `port`.
    pub fn start(config: &Path, port: u16) -> Relay {
        let log = config.with_extension(format!("relay-{port}.log"));
        let file = std::fs::File::create(&log).expect("creating the relay log");
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(config)
            .arg("-v")
            .arg("relay")
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        let child = GroupChild::spawn(
            "instarec relay",
            cmd,
            libc::SIGTERM,
            Duration::from_secs(10),
        )
        .expect("spawning instarec relay");
        let relay = Relay { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline && relay.child.is_running(),
                "relay did not listen on {port}:\n{}",
                relay.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        relay
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Archive (file:// under `dir`), shipper and relay config in `dir`;
/// returns the config path.
pub fn relay_config(dir: &Path, primary: &MariaDb, relay_port: u16) -> PathBuf {
    let url = format!("file://{}/archive", dir.display());
    let path = write_mysql_config(dir, &url, &primary.url(), "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nuser = \"{RELAY_USER}\"\npassword = \"{RELAY_PASSWORD}\"\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

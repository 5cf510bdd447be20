//! A throwaway moto S3 server on 127.0.0.1 with the bucket `instarec-test`.
//!
//! moto keeps everything in memory and ignores signatures, so any
//! credentials work; the accessors return the conventional "testing" ones.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::http;
use super::process::{free_port, log_tail, port_open, GroupChild};
use super::service_user::scratch_dir;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const TEST_BUCKET: &str = "instarec-test";
/// moto checks no signatures, but treats a request without any Authorization
/// header as anonymous and refuses it access to private objects.
const FAKE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=testing/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// A running moto_server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    // Field order matters: the server must be gone before its directory is removed.
    process: GroupChild,
    port: u16,
    scratch: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let scratch = scratch_dir("instarec-moto-", None);
        let log_path = scratch.path().join("moto.log");
        let moto_server = super::find_binary("moto_server").unwrap_or_else(|| {
            panic!(
                "moto_server not found: install it with `python3 -m pip install \
                 'moto[server]'` (scripts/test does this, at the pinned version)"
            )
        });
        // Another process may take our free port before moto binds it.
        for _ in 0..3 {
            let port = free_port();
            if let Some(process) = spawn_and_wait(&moto_server, port, &log_path) {
                let moto = Moto {
                    process,
                    port,
                    scratch,
                };
                moto.create_bucket(TEST_BUCKET);
                return moto;
            }
        }
        panic!(
            "moto_server found its port taken three times; log:\n{}",
            log_tail(&log_path, 40)
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (path-style addressing, plain HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self) -> &str {
        TEST_BUCKET
    }

    pub fn access_key_id(&self) -> &str {
        "testing"
    }

    pub fn secret_access_key(&self) -> &str {
        "testing"
    }

    pub fn region(&self) -> &str {
        "us-east-1"
    }

    /// moto_server's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGSTOPs moto (its whole process group) until the guard is dropped,
    /// also on panic: a store that accepts connections and never answers.
    pub fn pause(&self) -> Paused<'_> {
        self.process.signal_group(libc::SIGSTOP);
        Paused { moto: self }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.scratch.path().join("moto.log"), lines)
    }

    /// One S3 request as the "testing" user, e.g. `("GET", "/instarec-test/some/key")`.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> http::HttpResponse {
        http::request(
            self.port,
            method,
            path,
            &[("Authorization", FAKE_AUTHORIZATION)],
            body,
        )
        .unwrap_or_else(|e| panic!("{method} {path} on moto at {}: {e}", self.endpoint()))
    }

    /// Stores `body` at `key` in the test bucket; panics unless moto says 200.
    pub fn put_object(&self, key: &str, body: &[u8]) {
        let path = format!("/{TEST_BUCKET}/{}", key.trim_start_matches('/'));
        let resp = self.request("PUT", &path, body);
        if resp.status != 200 {
            panic!(
                "PUT {path} on moto: HTTP {}: {}",
                resp.status,
                resp.body_text()
            );
        }
    }

    /// The object at `key` in the test bucket, None if absent.
    pub fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        let path = format!("/{TEST_BUCKET}/{}", key.trim_start_matches('/'));
        let resp = self.request("GET", &path, b"");
        match resp.status {
            200 => Some(resp.body),
            404 => None,
            other => panic!("GET {path} on moto: HTTP {other}: {}", resp.body_text()),
        }
    }

    /// Creates a bucket (no-op if it exists, as moto answers 200 in us-east-1).
    pub fn create_bucket(&self, name: &str) {
        let resp = self.request("PUT", &format!("/{name}"), b"");
        if resp.status != 200 {
            panic!(
                "creating bucket {name} on moto at {}: HTTP {}: {}",
                self.endpoint(),
                resp.status,
                resp.body_text()
            );
        }
    }
}

/// A stopped moto; SIGCONT on drop.
pub struct Paused<'a> {
    moto: &'a Moto,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.moto.process.signal_group(libc::SIGCONT);
    }
}

/// Starts moto_server on `port` and waits for werkzeug's "Running on" line
/// (a TCP probe could reach another server that grabbed the port first).
/// None if the port was taken; panics on any other failure.
fn spawn_and_wait(moto_server: &Path, port: u16, log_path: &Path) -> Option<GroupChild> {
    let log = std::fs::File::create(log_path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
    let log2 = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cloning {}: {e}", log_path.display()));
    let mut cmd = Command::new(moto_server);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(log_path.parent().unwrap_or(Path::new("/tmp")))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut process = GroupChild::spawn("moto_server", cmd, libc::SIGKILL, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("spawning moto_server: {e}"));
    let running_line = format!("Running on http://127.0.0.1:{port}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let log_text = std::fs::read_to_string(log_path).unwrap_or_default();
        if let Some(status) = process.try_wait() {
            if log_text.contains("Address already in use") {
                return None;
            }
            panic!(
                "moto_server on port {port} exited during startup ({status}); log:\n{}",
                log_tail(log_path, 40)
            );
        }
        if log_text.contains(&running_line) && port_open(port) {
            return Some(process);
        }
        if Instant::now() >= deadline {
            panic!(
                "moto_server not running on 127.0.0.1:{port} after {READY_TIMEOUT:?}; log:\n{}",
                log_tail(log_path, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

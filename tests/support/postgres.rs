//! A throwaway PostgreSQL server on 127.0.0.1, in its own scratch dir.
//!
//! The server binaries (initdb, pg_ctl, postgres) come from
//! `$INSTAREC_TEST_PG_BIN` (default: Debian's PostgreSQL 15), so the same
//! tests run on every supported major; scripts/test points it at 16, 17 and
//! 18. Client tools (psql, pg_basebackup, pgbench, pg_waldump) always come
//! from Debian's 15: the npm builds of other majors ship only the server.
//!
//! Scratch layout: `data/` (PGDATA), `server.log` (the postmaster's stderr),
//! and the Unix socket. fsync stays on: tests kill -9 servers and check what
//! survived, so the server must be as durable as a real one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::postgres_shm::OrphanedShm;
use super::process::{free_port, log_tail, GroupChild};
use super::service_user::{scratch_dir, service_user, ServiceUser};

/// Where Debian puts PostgreSQL 15: the client tools, and the default server.
pub const DEBIAN_PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// Names the dir holding the server binaries the tests run.
pub const PG_BIN_ENV: &str = "INSTAREC_TEST_PG_BIN";
/// The binaries taken from `$INSTAREC_TEST_PG_BIN`; everything else is a client tool.
const SERVER_BINARIES: &[&str] = &["initdb", "pg_ctl", "postgres"];
const PG_PACKAGE: &str = "postgresql-15";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(60);
/// Drop uses immediate shutdown: fast, and it still removes shared memory.
const DROP_GRACE: Duration = Duration::from_secs(10);

/// How to initialise the cluster. `Default` gives trust auth and 16 MiB segments.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    pub synchronous_standby_names: Option<String>,
    /// Extra postgresql.conf settings; values are single-quoted for you.
    pub extra_conf: Vec<(String, String)>,
    /// When set, host connections need scram-sha-256 and the postgres role has this password.
    pub scram_password: Option<String>,
    /// `initdb --wal-segsize`, in MiB (a power of two from 1 to 1024).
    pub wal_segment_size_mb: Option<u32>,
    /// Server binaries other than the ones under test ([`server_bin_dir`]),
    /// e.g. a major instarec must refuse.
    pub bin_dir: Option<PathBuf>,
}

/// A running (or stopped) PostgreSQL server; killed and deleted on drop.
#[derive(Debug)]
pub struct Postgres {
    // Field order matters: the server must be gone before its directory is removed.
    process: Option<GroupChild>,
    /// Left by kill9; removed on drop unless a restart reclaimed it.
    orphaned_shm: Option<OrphanedShm>,
    port: u16,
    password: Option<String>,
    user: Option<ServiceUser>,
    /// Where initdb and postgres come from.
    bin_dir: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    scratch: tempfile::TempDir,
}

/// The dir of the server binaries under test: `$INSTAREC_TEST_PG_BIN`, else Debian's 15.
pub fn server_bin_dir() -> PathBuf {
    match std::env::var_os(PG_BIN_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEBIAN_PG_BIN_DIR),
    }
}

/// A PostgreSQL binary: a server binary from [`server_bin_dir`] (which must
/// have it), a client tool from Debian's 15 dir, then PATH.
pub fn pg_bin(name: &str) -> PathBuf {
    if SERVER_BINARIES.contains(&name) {
        let dir = server_bin_dir();
        let path = dir.join(name);
        assert!(
            path.is_file(),
            "{} not found: set {PG_BIN_ENV} to a PostgreSQL bin dir (now {}) or install Debian package {PG_PACKAGE}",
            path.display(),
            dir.display()
        );
        return path;
    }
    let versioned = Path::new(DEBIAN_PG_BIN_DIR).join(name);
    if versioned.is_file() {
        return versioned;
    }
    super::require_binary(name, PG_PACKAGE)
}

/// A command running server binary `name` (initdb, pg_ctl, postgres) of
/// the server under test; see [`server_command_in`].
pub fn server_command(name: &str) -> Command {
    // pg_bin checks that the binary is there.
    let program = pg_bin(name);
    server_command_in(program.parent().unwrap_or(Path::new("")), name)
}

/// A command running server binary `name` from `bin_dir`, with its own lib
/// dir on the loader path: the npm builds keep their shared libraries in
/// `<bin>/../lib`.
pub fn server_command_in(bin_dir: &Path, name: &str) -> Command {
    let program = bin_dir.join(name);
    assert!(
        program.is_file(),
        "{} not found: is {} a PostgreSQL bin dir?",
        program.display(),
        bin_dir.display()
    );
    let mut cmd = Command::new(&program);
    if let Some(lib) = bin_dir.parent().map(|d| d.join("lib")) {
        if lib.is_dir() {
            let mut paths = vec![lib];
            if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
                paths.extend(std::env::split_paths(&old));
            }
            if let Ok(joined) = std::env::join_paths(paths) {
                cmd.env("LD_LIBRARY_PATH", joined);
            }
        }
    }
    cmd
}

/// The major of the server binaries under test (15, 16, …), from `postgres --version`.
pub fn server_major() -> u32 {
    let out = server_command("postgres")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {} --version: {e}", pg_bin("postgres").display()));
    let text = String::from_utf8_lossy(&out.stdout);
    // "postgres (PostgreSQL) 18.4"
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the major from postgres --version: {text:?}"))
}

/// The account PostgreSQL runs as: `postgres` when we are root, else ourselves.
pub fn server_user() -> Option<ServiceUser> {
    service_user("postgres", PG_PACKAGE)
}

/// An empty scratch dir the server user owns, e.g. for `pg_basebackup -D` targets.
pub fn new_scratch_dir() -> tempfile::TempDir {
    scratch_dir("instarec-pg-", server_user().as_ref())
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(PgOptions::default())
    }

    pub fn start_with(opts: PgOptions) -> Postgres {
        let user = server_user();
        let scratch = scratch_dir("instarec-pg-", user.as_ref());
        let data_dir = scratch.path().join("data");
        let port = free_port();
        let bin_dir = opts.bin_dir.clone().unwrap_or_else(server_bin_dir);

        let mut initdb = server_command_in(&bin_dir, "initdb");
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .env("LC_ALL", "C");
        if let Some(mb) = opts.wal_segment_size_mb {
            initdb.arg(format!("--wal-segsize={mb}"));
        }
        if let Some(password) = &opts.scram_password {
            let pwfile = scratch.path().join("pwfile");
            std::fs::write(&pwfile, format!("{password}\n"))
                .unwrap_or_else(|e| panic!("writing {}: {e}", pwfile.display()));
            if let Some(user) = &user {
                user.chown_tree(&pwfile);
            }
            initdb
                .arg(format!("--pwfile={}", pwfile.display()))
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
        } else {
            initdb.arg("--auth=trust");
        }
        if let Some(user) = &user {
            user.apply(&mut initdb);
        }
        run_to_success("initdb", &mut initdb);

        let host_method = if opts.scram_password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        let hba = format!(
            "local all all trust\n\
             local replication all trust\n\
             host all all 127.0.0.1/32 {host_method}\n\
             host replication all 127.0.0.1/32 {host_method}\n"
        );
        write_file(&data_dir.join("pg_hba.conf"), &hba);

        let mut conf: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("wal_level".into(), "replica".into()),
            ("max_wal_senders".into(), "10".into()),
            ("max_replication_slots".into(), "10".into()),
            ("fsync".into(), "on".into()),
        ];
        if opts.scram_password.is_some() {
            conf.push(("password_encryption".into(), "scram-sha-256".into()));
        }
        if let Some(names) = &opts.synchronous_standby_names {
            conf.push(("synchronous_standby_names".into(), names.clone()));
        }
        conf.extend(opts.extra_conf.iter().cloned());
        append_conf(&data_dir, &conf);

        let mut pg = Postgres {
            process: None,
            orphaned_shm: None,
            port,
            password: opts.scram_password,
            user,
            bin_dir,
            data_dir,
            log_path: scratch.path().join("server.log"),
            scratch,
        };
        pg.first_start();
        pg
    }

    /// Starts a server on a data dir the caller prepared inside `scratch`
    /// (e.g. a base backup with recovery settings). Listen settings are
    /// overridden to a fresh port and a socket in `scratch`; waits until the
    /// server accepts connections (for a hot standby: until it is consistent).
    pub fn start_existing(
        scratch: tempfile::TempDir,
        data_dir: PathBuf,
        password: Option<String>,
    ) -> Postgres {
        let user = server_user();
        if let Some(user) = &user {
            user.chown_tree(scratch.path());
        }
        // postgres refuses a data dir that group or others can read.
        std::fs::set_permissions(
            &data_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap_or_else(|e| panic!("chmod 0700 {}: {e}", data_dir.display()));
        let mut pg = Postgres {
            process: None,
            orphaned_shm: None,
            port: free_port(),
            password,
            user,
            bin_dir: server_bin_dir(),
            data_dir,
            log_path: scratch.path().join("server.log"),
            scratch,
        };
        pg.first_start();
        pg
    }

    /// A hot standby streaming from this server, started and consistent.
    pub fn streaming_standby(&self) -> Postgres {
        let (scratch, data_dir) = self.standby_copy();
        Postgres::start_existing(scratch, data_dir, None)
    }

    /// A copy of this server's data dir in a fresh scratch dir, set up as a
    /// streaming standby of it (standby.signal, primary_conninfo) and
    /// inheriting its postgresql.conf; not started. Taken as pg_basebackup
    /// would, between pg_backup_start and pg_backup_stop, but by copying
    /// files: Debian's pg_basebackup 15 refuses servers of newer majors.
    pub fn standby_copy(&self) -> (tempfile::TempDir, PathBuf) {
        let scratch = new_scratch_dir();
        let data_dir = scratch.path().join("data");
        let label = scratch.path().join("backup_label.from_server");
        let src = self.data_dir.display();
        let dst = data_dir.display();
        // One session: a non-exclusive backup ends with the session that began it.
        let script = format!(
            "SELECT pg_backup_start('instarec test harness', true);\n\
             \\! cp -a '{src}' '{dst}'\n\
             SELECT labelfile FROM pg_backup_stop(false) \\g (format=unaligned tuples_only=on) '{}'\n\
             \\! cp -a '{src}/pg_wal/.' '{dst}/pg_wal/'\n",
            label.display()
        );
        self.psql(&script);
        let label_text = std::fs::read_to_string(&label).unwrap_or_else(|e| {
            panic!("pg_backup_stop wrote no label to {}: {e}", label.display())
        });
        assert!(
            data_dir.join("PG_VERSION").is_file(),
            "copying {src} to {dst} failed"
        );
        write_file(
            &data_dir.join("backup_label"),
            &format!("{}\n", label_text.trim_end()),
        );
        write_file(&data_dir.join("standby.signal"), "");
        for runtime_file in ["postmaster.pid", "postmaster.opts", "backup_label.old"] {
            let _ = std::fs::remove_file(data_dir.join(runtime_file));
        }
        // The primary's slots are not the standby's.
        let slots = data_dir.join("pg_replslot");
        let _ = std::fs::remove_dir_all(&slots);
        std::fs::create_dir(&slots).unwrap_or_else(|e| panic!("mkdir {}: {e}", slots.display()));
        let mut conninfo = format!("host=127.0.0.1 port={} user=postgres", self.port);
        if let Some(pw) = &self.password {
            // A conninfo value in single quotes, backslash-escaped.
            let quoted = pw.replace('\\', "\\\\").replace('\'', "\\'");
            conninfo.push_str(&format!(" password='{quoted}'"));
        }
        let auto_conf = data_dir.join("postgresql.auto.conf");
        let mut auto = std::fs::read_to_string(&auto_conf).unwrap_or_default();
        auto.push_str(&format!(
            "primary_conninfo = '{}'\n",
            // postgresql.conf unescapes backslashes and doubled quotes in turn.
            conninfo.replace('\\', "\\\\").replace('\'', "''")
        ));
        write_file(&auto_conf, &auto);
        (scratch, data_dir)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The scratch dir holding the data dir, log and socket.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .as_ref()
            .filter(|p| p.is_running())
            .map(GroupChild::pid)
    }

    /// The postmaster's live children (backends, walsenders, background workers).
    pub fn child_pids(&self) -> Vec<u32> {
        self.process
            .as_ref()
            .map(GroupChild::descendants)
            .unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `postgres://postgres[:password]@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!(
                "postgres://postgres:{}@127.0.0.1:{}/postgres",
                percent_encode(pw),
                self.port
            ),
            None => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
        }
    }

    /// Runs `sql` through psql (each statement on its own, stopping at the
    /// first error) and returns the trimmed, unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql on port {} failed for {sql:?}:\n{e}", self.port))
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.client_command("psql");
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-f",
            "-",
        ]);
        let out = run_with_stdin(&mut cmd, sql);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// Runs pgbench against this server with `args` (e.g. `["-i", "-s", "1"]`).
    pub fn pgbench(&self, args: &[&str]) -> Output {
        let mut cmd = self.client_command("pgbench");
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("running pgbench against port {}: {e}", self.port))
    }

    /// A client binary (psql, pgbench, pg_basebackup, …) preset with host,
    /// port, user and password for this server.
    pub fn client_command(&self, name: &str) -> Command {
        let mut cmd = Command::new(pg_bin(name));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        // pgbench defaults the database to the OS user's name (root).
        .env("PGDATABASE", "postgres")
        .stdin(Stdio::null());
        match &self.password {
            Some(pw) => cmd.env("PGPASSWORD", pw),
            None => cmd.env_remove("PGPASSWORD"),
        };
        cmd
    }

    /// Appends settings to postgresql.conf (values single-quoted) and reloads if running.
    pub fn set_conf(&self, settings: &[(&str, &str)]) {
        let owned: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        append_conf(&self.data_dir, &owned);
        if let Some(p) = &self.process {
            p.signal(libc::SIGHUP);
        }
    }

    /// Fast shutdown (SIGINT), waiting for the postmaster to exit.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(libc::SIGINT, STOP_GRACE);
        }
    }

    /// SIGKILLs the postmaster and every child it has: a crash, no shutdown checkpoint.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            self.orphaned_shm = Some(OrphanedShm::of_running_server(p.pid(), &self.data_dir));
            p.kill9();
        }
    }

    /// Starts the server again (stopping it first if running) on the same
    /// port and data dir, and waits until it accepts connections.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("{e}");
        }
    }

    /// Waits until the server accepts connections; panics with the log tail otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if let Err(e) = self.try_wait_ready(timeout, 0) {
            panic!("{e}");
        }
    }

    /// First start: another process may have taken our free port meanwhile.
    fn first_start(&mut self) {
        for _ in 0..3 {
            self.pin_listen_settings();
            match self.try_restart() {
                Ok(()) => return,
                Err(StartError::PortInUse(_)) => self.port = free_port(),
                Err(e) => panic!("{e}"),
            }
        }
        panic!(
            "postgres found its port taken three times; log {}:\n{}",
            self.log_path.display(),
            log_tail(&self.log_path, 40)
        );
    }

    fn try_restart(&mut self) -> Result<(), StartError> {
        self.stop();
        // The new postmaster removes what a killed predecessor left.
        self.orphaned_shm = None;
        let mut cmd = server_command_in(&self.bin_dir, "postgres");
        cmd.arg("-D").arg(&self.data_dir).env("LC_ALL", "C");
        if let Some(user) = &self.user {
            user.apply(&mut cmd);
        }
        let log = open_log(&self.log_path);
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning {}: {e}", self.log_path.display()));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let process = GroupChild::spawn("postgres", cmd, libc::SIGQUIT, DROP_GRACE)
            .unwrap_or_else(|e| panic!("spawning postgres -D {}: {e}", self.data_dir.display()));
        self.process = Some(process);
        self.try_wait_ready(READY_TIMEOUT, log_start)
    }

    /// Ready means our own postmaster.pid says "ready" (or "standby" for a hot
    /// standby), as pg_ctl checks: a probe over TCP could reach another
    /// server that grabbed the port first.
    fn try_wait_ready(&mut self, timeout: Duration, log_start: u64) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(process) = self.process.as_mut() else {
                return Err(StartError::Failed(format!(
                    "postgres on port {} is not running",
                    self.port
                )));
            };
            let pid = process.pid();
            if let Some(status) = process.try_wait() {
                self.process = None;
                let new_log = log_since(&self.log_path, log_start);
                if new_log.contains("could not bind") && new_log.contains("already in use") {
                    return Err(StartError::PortInUse(self.port));
                }
                return Err(StartError::Failed(format!(
                    "postgres on port {} exited during startup ({status}); log {}:\n{}",
                    self.port,
                    self.log_path.display(),
                    log_tail(&self.log_path, 40)
                )));
            }
            if postmaster_status(&self.data_dir, pid)
                .is_some_and(|status| status == "ready" || status == "standby")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "postgres on port {} not accepting connections after {timeout:?}; log {}:\n{}",
                    self.port,
                    self.log_path.display(),
                    log_tail(&self.log_path, 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    fn pin_listen_settings(&self) {
        append_conf(
            &self.data_dir,
            &[
                ("listen_addresses".into(), "127.0.0.1".into()),
                ("port".into(), self.port.to_string()),
                (
                    "unix_socket_directories".into(),
                    self.scratch.path().display().to_string(),
                ),
            ],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop(self.process.take());
        if let Some(shm) = self.orphaned_shm.take() {
            shm.remove();
        }
    }
}

#[derive(Debug)]
enum StartError {
    PortInUse(u16),
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortInUse(port) => write!(f, "postgres: port {port} already in use"),
            StartError::Failed(msg) => f.write_str(msg),
        }
    }
}

/// The status word (line 8) of postmaster.pid if the file belongs to `pid`.
fn postmaster_status(data_dir: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.first()?.trim() != pid.to_string() {
        return None;
    }
    Some(lines.get(7)?.trim().to_string())
}

/// What was appended to a log file after byte `start`.
fn log_since(path: &Path, start: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = (start as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Appends `key = 'value'` lines; later lines win in postgresql.conf.
fn append_conf(data_dir: &Path, settings: &[(String, String)]) {
    let path = data_dir.join("postgresql.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut text = String::from("\n# instarec test harness\n");
    for (key, value) in settings {
        text.push_str(&format!("{key} = '{}'\n", value.replace('\'', "''")));
    }
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn open_log(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening log {}: {e}", path.display()))
}

fn run_to_success(what: &str, cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_string();
    // Write from a thread so a large script can't deadlock against full output pipes.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    let _ = writer.join();
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

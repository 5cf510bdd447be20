//! Server processes that cannot outlive the test that started them.
//!
//! Every server is spawned as the leader of its own process group, so one
//! signal reaches it and everything it forked that stayed in the group.
//! PostgreSQL's children call setsid() and leave it, so a hard kill also
//! walks the process tree (with the leader SIGSTOPped, so nothing new is
//! forked and no listed pid can be reaped and reused meanwhile).
//! Dropping a [`GroupChild`] — normally or while a panic unwinds — signals the
//! leader, waits a short grace period, then hard-kills and reaps it.
//!
//! If the test process itself dies without unwinding (SIGKILL, Ctrl-C of
//! `cargo test`), the kernel's parent-death signal kills the leader. That
//! signal fires when the *thread* that forked the child exits, and cargo runs
//! each test on its own short-lived thread (tokio's blocking pool threads also
//! retire after 10 s idle), so all spawning goes through one spawner thread
//! that lives as long as the process.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// A child process leading its own process group; the group dies with this value.
#[derive(Debug)]
pub struct GroupChild {
    name: String,
    child: Option<Child>,
    drop_signal: libc::c_int,
    drop_grace: Duration,
}

impl GroupChild {
    /// Spawns `cmd` as a new process group leader. `name` appears in messages.
    ///
    /// On drop the leader gets `drop_signal`, then the group gets SIGKILL
    /// after `drop_grace` if the leader is still alive.
    pub fn spawn(
        name: &str,
        cmd: Command,
        drop_signal: libc::c_int,
        drop_grace: Duration,
    ) -> io::Result<GroupChild> {
        let child = spawn_via_spawner_thread(cmd)?;
        Ok(GroupChild {
            name: name.to_string(),
            child: Some(child),
            drop_signal,
            drop_grace,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The leader's pid, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Whether the leader is still running (a not-yet-reaped exit counts as not running).
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !self.leader_exited()
    }

    /// Sends `sig` to the leader only (e.g. SIGHUP for a config reload).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: plain syscall; the pid is our unreaped child, so it cannot have been reused.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
    }

    /// Sends `sig` to every process in the group.
    pub fn signal_group(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: plain syscall; while the leader is unreaped its pid (= pgid) cannot be reused.
            unsafe { libc::kill(-(child.id() as libc::pid_t), sig) };
        }
    }

    /// If the leader has exited, kills what is left of its group and reaps it.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.child.is_none() || !self.leader_exited() {
            return None;
        }
        Some(self.reap())
    }

    /// Waits up to `timeout` for the leader to exit on its own; reaps it if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the leader, waits up to `grace`, then SIGKILLs the group.
    /// Returns the leader's exit status; None if it was already reaped.
    pub fn stop(&mut self, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        self.child.as_ref()?;
        if !self.leader_exited() {
            self.signal(sig);
        }
        if let Some(status) = self.wait_timeout(grace) {
            return Some(status);
        }
        self.kill9()
    }

    /// The leader's live descendants (children that left the group included).
    pub fn descendants(&self) -> Vec<u32> {
        match &self.child {
            Some(child) => descendants_of(child.id()),
            None => Vec::new(),
        }
    }

    /// SIGKILLs the leader, its whole group and all its descendants, and reaps the leader.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        self.child.as_ref()?;
        if !self.leader_exited() {
            // A stopped leader forks nothing new and reaps nothing, so the
            // pids listed below stay valid until they are killed.
            self.signal(libc::SIGSTOP);
            let descendants = self.descendants();
            self.signal(libc::SIGKILL);
            for pid in descendants {
                // SAFETY: plain syscall on a child of our stopped child, see above.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
        self.signal_group(libc::SIGKILL);
        Some(self.reap())
    }

    /// Whether the leader has exited, without reaping it: while it stays a
    /// zombie its pid cannot be reused, so signalling the group stays safe.
    fn leader_exited(&self) -> bool {
        let Some(child) = &self.child else {
            return true;
        };
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on our own child, WNOWAIT leaves it unreaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read for SIGCHLD-style info filled by waitid.
        rc == 0 && unsafe { info.si_pid() } != 0
    }

    /// Kills stragglers in the group (children of an exited leader), then reaps the leader.
    fn reap(&mut self) -> ExitStatus {
        self.signal_group(libc::SIGKILL);
        let mut child = self.child.take().expect("reap called with a child");
        child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {} (pid {}): {e}", self.name, child.id()))
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        let (sig, grace) = (self.drop_signal, self.drop_grace);
        self.stop(sig, grace);
    }
}

/// Whether a live (non-zombie) process with this pid exists. Zombies count as
/// gone: an orphaned server killed by its parent-death signal stays a zombie
/// until whatever adopted it reaps it.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Whether any live process is in process group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    !group_members(pgid).is_empty()
}

/// The live descendants of `pid`, children first.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = live_processes()
        .into_iter()
        .map(|p| (p.pid, p.ppid))
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The live (non-zombie) processes in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    live_processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid)
        .map(|p| p.pid)
        .collect()
}

struct ProcStat {
    pid: u32,
    ppid: u32,
    pgrp: u32,
}

/// Every non-zombie process, from /proc/<pid>/stat.
fn live_processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the parenthesised command name: state ppid pgrp ...
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() < 3 || fields[0] == "Z" || fields[0] == "X" {
                return None;
            }
            Some(ProcStat {
                pid,
                ppid: fields[1].parse().ok()?,
                pgrp: fields[2].parse().ok()?,
            })
        })
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago and that this test process
/// has not handed out before (so parallel tests don't race for one port).
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<std::collections::HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("binding 127.0.0.1:0 to find a free port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local address of 127.0.0.1:0 listener: {e}"))
            .port();
        if handed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("no unused free port on 127.0.0.1 after 100 tries");
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until 127.0.0.1:`port` accepts connections; false on timeout.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if port_open(port) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The last `lines` lines of a log file, for failure messages.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawn_via_spawner_thread(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("test-server-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the test server spawner thread");
        Mutex::new(tx)
    });

    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let parent = unsafe { libc::getpid() };
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe syscalls (prctl, getppid, kill) without allocating.
    unsafe {
        cmd.pre_exec(move || {
            // This runs after std has applied uid/gid: setuid clears the parent-death signal.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }

    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("test server spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("test server spawner thread dropped the request"))?
}

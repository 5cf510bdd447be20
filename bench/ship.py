#!/usr/bin/env python3
"""WAL shipping benchmark: instarec ship against pg_receivewal and pgBackRest.

Run through bench/ship.sh (which builds the release binary first):

    bench/ship.sh [duration-seconds]

Every configuration gets a fresh PostgreSQL 15 primary on 127.0.0.1, the
same `pgbench -i -s 10`, then the same `pgbench -n -c 4 -j 2 -T <duration>`
while the shipper under test runs. A sampler polls the primary every 50 ms
for its flush LSN and the archived position; lag for a sample taken at t is
the time until the archived position first reached that sample's flush LSN.

Prints one markdown table and rewrites docs/benchmarks.md. Standard library
only (plus boto3 for creating the moto bucket and listing it, if present).
"""

import atexit
import ctypes
import datetime
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# BENCH_INSTAREC: another build to measure (e.g. a saved copy of the previous one).
INSTAREC = os.environ.get("BENCH_INSTAREC") or os.path.join(REPO, "target", "release", "instarec")
DOC = os.path.join(REPO, "docs", "benchmarks.md")
PG_BIN = "/usr/lib/postgresql/15/bin"
SCALE = 10
CLIENTS, THREADS = 4, 2
SAMPLE_EVERY = 0.05
FLUSH_INTERVAL_MS = 200
# After the load: how long the archive may take to reach the final flush LSN.
TAIL_TIMEOUT = 30.0
# Idle window for counting object-store requests with no WAL arriving.
IDLE_WINDOW = 10.0
SEG = 16 * 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes

class Processes:
    """Every process group we start; all killed at exit, whatever happens."""

    def __init__(self):
        self.groups = []
        self.scratch = []
        self.pgid_file = os.environ.get("BENCH_PGID_FILE")

    def spawn(self, argv, log_path, **kw):
        log = open(log_path, "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        log.close()
        self.groups.append(p)
        if self.pgid_file:
            with open(self.pgid_file, "a") as f:
                f.write(f"{p.pid}\n")
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=20):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # Leftovers in the group (e.g. backends after an immediate stop).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.returncode

    def tempdir(self, prefix, owner=None):
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.chmod(d, 0o755)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.scratch.append(d)
        return d

    def cleanup(self):
        for p in reversed(self.groups):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.groups:
            try:
                p.wait(5)
            except Exception:
                pass
        reap_orphans()
        if not os.environ.get("BENCH_KEEP"):
            for d in self.scratch:
                shutil.rmtree(d, ignore_errors=True)


PROCS = Processes()
atexit.register(PROCS.cleanup)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: sys.exit(128 + s))


def become_subreaper():
    """pgBackRest's async archiver detaches from archive_command; as a child
    subreaper we inherit it and can read its exact CPU and peak RSS on exit."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


ORPHAN_USAGE = {}  # pid -> (cpu seconds, maxrss KiB) of reaped orphans


def reap_orphans():
    """Reaps zombie orphans we adopted (never our own Popen children)."""
    own = {p.pid for p in PROCS.groups}
    for pid in list_pids():
        if pid in own:
            continue
        st = read_stat(pid)
        if not st or st["ppid"] != os.getpid() or st["state"] != "Z":
            continue
        try:
            _, _, ru = os.wait4(pid, os.WNOHANG)
            ORPHAN_USAGE[pid] = (st["comm"], ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
        except ChildProcessError:
            pass


def list_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def read_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    # Fields after comm, 0-based: state=0 ppid=1 utime=11 stime=12 cutime=13 cstime=14.
    return {
        "comm": comm,
        "state": rest[0],
        "ppid": int(rest[1]),
        "cpu": (int(rest[11]) + int(rest[12])) / CLK_TCK,
        "child_cpu": (int(rest[13]) + int(rest[14])) / CLK_TCK,
    }


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def as_postgres(argv):
    return ["runuser", "-u", "postgres", "--"] + argv


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- postgres

class Postgres:
    def __init__(self, name, extra_conf=None, data_dir=None, scratch=None):
        self.scratch = scratch or PROCS.tempdir(f"instarec-bench-{name}-", "postgres")
        self.data = data_dir or os.path.join(self.scratch, "data")
        self.port = free_port()
        self.log_path = os.path.join(self.scratch, "server.log")
        if data_dir is None:
            run(as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres",
                             "--auth=trust", "-E", "UTF8", "--locale=C"]),
                env={**os.environ, "LC_ALL": "C"})
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
                f.write("local all all trust\nlocal replication all trust\n"
                        "host all all 127.0.0.1/32 trust\n"
                        "host replication all 127.0.0.1/32 trust\n")
        conf = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": self.scratch,
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "wal_keep_size": "64MB",
            "max_wal_size": "1GB",
            "min_wal_size": "80MB",
            "checkpoint_timeout": "5min",
            "checkpoint_completion_target": "0.9",
            "fsync": "on",
            "synchronous_commit": "on",
        }
        conf.update(extra_conf or {})
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# instarec bench\n")
            for k, v in conf.items():
                f.write(f"{k} = '{v}'\n")
        self.proc = PROCS.spawn(as_postgres([f"{PG_BIN}/postgres", "-D", self.data]),
                                self.log_path)
        deadline = time.monotonic() + 120
        while True:
            r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(self.port),
                                "-U", "postgres", "-d", "postgres", "-c", "SELECT 1"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start; log:\n{tail(self.log_path)}")
            time.sleep(0.2)

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def client(self, tool):
        return [f"{PG_BIN}/{tool}", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]

    def sql(self, query):
        return run(self.client("psql") + ["-X", "-At", "-d", "postgres", "-c", query]).strip()

    def stop(self):
        # SIGQUIT to the postmaster (runuser's child): immediate shutdown.
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                os.kill(int(f.readline()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass
        PROCS.stop(self.proc, signal.SIGTERM, 30)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Sampler:
    """One long-lived psql: a query costs ~4 ms instead of a fork+connect."""

    def __init__(self, pg, archived_expr):
        self.p = subprocess.Popen(pg.client("psql") + ["-X", "-A", "-t", "-q", "-d", "postgres"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1, start_new_session=True)
        PROCS.groups.append(self.p)
        self.query = f"SELECT pg_current_wal_flush_lsn(), coalesce(({archived_expr})::text, '');\n"

    def sample(self):
        self.p.stdin.write(self.query)
        self.p.stdin.flush()
        flush, archived = self.p.stdout.readline().rstrip("\n").split("|")
        return time.monotonic(), lsn_int(flush), archived

    def close(self):
        PROCS.stop(self.p)


def archived_from_replication(app):
    return f"SELECT flush_lsn FROM pg_stat_replication WHERE application_name = '{app}'"


ARCHIVED_FROM_ARCHIVER = "SELECT last_archived_wal FROM pg_stat_archiver"


def archived_lsn(text):
    """The archived position as an integer LSN from either kind of column."""
    if not text:
        return 0
    if "/" in text:
        return lsn_int(text)
    m = re.match(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})", text)
    if not m:
        return 0  # a .history file
    segno = int(m.group(2), 16) * (0x100000000 // SEG) + int(m.group(3), 16)
    # A finished segment: the archive holds everything up to its end.
    return (segno + 1) * SEG


# ---------------------------------------------------------------- shippers

class Shipper:
    """Something under test: pids to account CPU/RSS to, and a stop."""
    label = ""
    app = None

    def archived_expr(self):
        return archived_from_replication(self.app)

    def cpu_and_rss(self):
        return None, None

    def stop(self):
        pass


class OwnProcess(Shipper):
    """A shipper that is our direct child: exact /proc accounting."""

    def __init__(self, proc):
        self.proc = proc
        self.hwm = 0
        self.cpu0 = read_stat(proc.pid)["cpu"]

    def poll(self):
        self.hwm = max(self.hwm, vm_hwm_kib(self.proc.pid))
        st = read_stat(self.proc.pid)
        if st:
            self.cpu_now = st["cpu"]

    def cpu_and_rss(self):
        return self.cpu_now - self.cpu0, self.hwm

    def lifetime_rss(self):
        return self.lifetime_hwm

    def mark(self):
        """Start of the load: CPU from here; peak RSS from here too (the
        start-up catch-up is reported apart as the lifetime peak)."""
        self.poll()
        self.cpu0 = self.cpu_now
        self.lifetime_hwm = self.hwm
        try:
            # "5" resets VmHWM to the current RSS (proc(5), clear_refs).
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
                f.write("5")
            self.hwm = 0
        except OSError:
            pass

    def stop_polling_lifetime(self):
        self.lifetime_hwm = max(self.lifetime_hwm, self.hwm)


class Instarec(OwnProcess):
    app = "instarec"

    def __init__(self, pg, scratch, archive_url, s3=None, synchronous=False, label="",
                 binary=None):
        self.label = label
        self.config = os.path.join(scratch, "instarec.toml")
        with open(self.config, "w") as f:
            f.write(f'[archive]\nurl = "{archive_url}"\n')
            if s3:
                f.write("\n[archive.s3]\n")
                for k, v in s3.items():
                    f.write(f"{k} = {v}\n")
            f.write(f'\n[primary]\nengine = "postgres"\nurl = "{pg.url()}"\n'
                    f'flush_interval = "{FLUSH_INTERVAL_MS}ms"\n'
                    f"synchronous = {'true' if synchronous else 'false'}\n")
        self.log_path = os.path.join(scratch, "instarec.log")
        proc = PROCS.spawn([binary or INSTAREC, "--config", self.config, "ship"], self.log_path)
        super().__init__(proc)

    def stop(self):
        code = PROCS.stop(self.proc, signal.SIGTERM, 30)
        if code != 0:
            log(f"instarec ship exited {code}; log tail:\n{tail(self.log_path)}")
        return code


class PgReceivewal(OwnProcess):
    app = "pg_receivewal"

    def __init__(self, pg, scratch, synchronous=False, label=""):
        self.label = label
        self.dir = os.path.join(scratch, "receivewal")
        os.mkdir(self.dir)
        run(pg.client("pg_receivewal") + ["--create-slot", "-S", "bench"])
        argv = pg.client("pg_receivewal") + ["-S", "bench", "-D", self.dir, "-s", "1", "-n"]
        if synchronous:
            argv.append("--synchronous")
        self.log_path = os.path.join(scratch, "pg_receivewal.log")
        proc = PROCS.spawn(argv, self.log_path)
        super().__init__(proc)

    def stop(self):
        PROCS.stop(self.proc, signal.SIGINT, 30)


class PgBackRest(Shipper):
    """archive-push --archive-async as archive_command. Its processes come
    and go: foreground pushes are reaped by the archiver (its cutime), the
    detached async process is adopted by us (subreaper) and reaped here."""

    label = "pgBackRest 2.45 archive-push async (zstd-3) → local repo"

    def __init__(self, pg, scratch, conf):
        self.pg = pg
        self.conf = conf
        self.archiver = int(pg.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'"))
        self.child0 = read_stat(self.archiver)["child_cpu"]
        self.seen = {}  # pid -> (cpu, hwm) while alive
        self.orphans0 = set(ORPHAN_USAGE)

    def archived_expr(self):
        return ARCHIVED_FROM_ARCHIVER

    def mark(self):
        self.child0 = read_stat(self.archiver)["child_cpu"]
        self.seen = {}
        self.orphans0 = set(ORPHAN_USAGE)
        self.poll()
        # CPU already spent by a still-running process is not ours to count.
        self.base = {pid: cpu for pid, (cpu, _) in self.seen.items()}

    def poll(self):
        for pid in list_pids():
            st = read_stat(pid)
            if st and st["comm"] == "pgbackrest":
                cpu, hwm = self.seen.get(pid, (0, 0))
                self.seen[pid] = (max(cpu, st["cpu"]), max(hwm, vm_hwm_kib(pid)))
        reap_orphans()

    def cpu_and_rss(self):
        foreground = read_stat(self.archiver)["child_cpu"] - self.child0
        adopted = {pid: v for pid, v in ORPHAN_USAGE.items()
                   if pid not in self.orphans0 and v[0] == "pgbackrest"}
        cpu = foreground
        hwm = 0
        for pid, (_, c, rss) in adopted.items():
            cpu += c - self.base.get(pid, 0)
            hwm = max(hwm, rss)
        for pid, (c, h) in self.seen.items():
            hwm = max(hwm, h)
            if pid not in adopted and read_stat(pid):  # still running
                cpu += c - self.base.get(pid, 0)
        return cpu, hwm


class NativeStandby(Shipper):
    app = "walreceiver"
    label = "native synchronous streaming standby (pg_basebackup -R)"

    def __init__(self, primary):
        scratch = PROCS.tempdir("instarec-bench-standby-", "postgres")
        data = os.path.join(scratch, "data")
        run(as_postgres(primary.client("pg_basebackup") + ["-D", data, "-R", "-X", "stream",
                                                          "-c", "fast"]))
        self.standby = Postgres("standby", {"hot_standby": "on"}, data_dir=data, scratch=scratch)

    def stop(self):
        self.standby.stop()


# ---------------------------------------------------------------- moto

class Moto:
    bucket = "bench"

    def __init__(self):
        self.scratch = PROCS.tempdir("instarec-bench-moto-")
        self.port = free_port()
        self.log_path = os.path.join(self.scratch, "moto.log")
        self.proc = PROCS.spawn(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                self.log_path)
        wait_port(self.port)
        self.s3().create_bucket(Bucket=self.bucket)

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def s3(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint(), region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def settings(self):
        return {"endpoint": f'"{self.endpoint()}"', "region": '"us-east-1"',
                "access_key_id": '"testing"', "secret_access_key": '"testing"',
                "allow_http": "true"}

    def log_lines(self):
        with open(self.log_path, errors="replace") as f:
            return f.readlines()

    def objects(self):
        keys, token = [], None
        while True:
            kw = {"Bucket": self.bucket}
            if token:
                kw["ContinuationToken"] = token
            r = self.s3().list_objects_v2(**kw)
            keys += [o["Key"] for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return keys
            token = r["NextContinuationToken"]


REQUEST = re.compile(r'"(GET|PUT|HEAD|DELETE|POST) (\S+) HTTP')


def request_kind(method, path):
    p = path.split("?")[0]
    if method == "POST" and "?delete" in path:
        return "DELETE (batch POST ?delete)"
    if "list-type" in path or p.rstrip("/").count("/") <= 1:
        what = "list"
    elif ".part/" in p:
        what = "WAL part"
    elif re.search(r"/wal/[0-9A-F]{8}/[0-9A-F]{24}$", p):
        what = "WAL segment"
    elif "/positions/" in p:
        what = "position record"
    elif "/epochs/" in p:
        what = "epoch (fence check)"
    else:
        what = "other: " + p.split("/", 2)[-1]
    return f"{method} {what}"


def count_requests(lines):
    counts = {}
    for line in lines:
        m = REQUEST.search(line)
        if m:
            k = request_kind(m.group(1), m.group(2))
            counts[k] = counts.get(k, 0) + 1
    return counts


# ---------------------------------------------------------------- one run

def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def lags_ms(samples, horizon):
    """samples: (t, flush, archived) in time order. Lag of sample i = time of
    the first sample j >= i whose archived >= flush_i, minus t_i."""
    lags, never = [], 0
    j = 0
    for i, (t, flush, _) in enumerate(samples[:horizon]):
        j = max(j, i)
        while j < len(samples) and samples[j][2] < flush:
            j += 1
        if j == len(samples):
            never += 1
        else:
            lags.append((samples[j][0] - t) * 1000)
    return lags, never


def measure(pg, shipper, duration, moto=None, switch_at_end=False):
    """Runs the load while sampling; returns the row's numbers."""
    sampler = Sampler(pg, shipper.archived_expr())
    # Let the shipper catch up with pgbench -i before the clock starts.
    # Same starting point for every configuration: right after a checkpoint,
    # so every run pays the same full-page writes.
    pg.sql("CHECKPOINT")
    target = lsn_int(pg.sql("SELECT pg_current_wal_flush_lsn()"))
    if switch_at_end:
        pg.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 120
    while archived_lsn(sampler.sample()[2]) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{shipper.label}: never caught up with pgbench -i")
        if hasattr(shipper, "poll"):
            shipper.poll()
        time.sleep(0.1)
    if hasattr(shipper, "mark"):
        shipper.mark()
    moto_mark = len(moto.log_lines()) if moto else 0

    start_lsn = lsn_int(pg.sql("SELECT pg_current_wal_lsn()"))
    bench = subprocess.Popen(pg.client("pgbench") + ["-n", "-c", str(CLIENTS), "-j", str(THREADS),
                                                    "-T", str(duration), "postgres"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    PROCS.groups.append(bench)
    started = time.monotonic()
    samples = []
    while bench.poll() is None:
        t, flush, archived = sampler.sample()
        samples.append((t, flush, archived_lsn(archived)))
        if hasattr(shipper, "poll"):
            shipper.poll()
        time.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - t)))
    load_end = time.monotonic()
    out, err = bench.communicate()
    if bench.returncode != 0:
        raise RuntimeError(f"pgbench failed: {err}")
    end_lsn = lsn_int(pg.sql("SELECT pg_current_wal_lsn()"))
    horizon = len(samples)
    final_flush = samples[-1][1]
    moto_load_end = len(moto.log_lines()) if moto else 0
    if switch_at_end:
        # The last, unfinished segment is only archived once switched.
        pg.sql("SELECT pg_switch_wal()")
    catch_up = None
    while time.monotonic() - load_end < TAIL_TIMEOUT:
        t, flush, archived = sampler.sample()
        samples.append((t, flush, archived_lsn(archived)))
        if hasattr(shipper, "poll"):
            shipper.poll()
        if samples[-1][2] >= final_flush:
            catch_up = (t - load_end) * 1000
            break
        time.sleep(SAMPLE_EVERY)
    cpu, rss = shipper.cpu_and_rss()
    lifetime = None
    if hasattr(shipper, "lifetime_rss"):
        shipper.stop_polling_lifetime()
        lifetime = shipper.lifetime_rss()
    elapsed = load_end - started
    lags, never = lags_ms(samples, horizon)
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    row = {
        "label": shipper.label,
        "tps": float(tps.group(1)) if tps else None,
        "wal_mb_s": (end_lsn - start_lsn) / elapsed / 1e6,
        "wal_bytes": end_lsn - start_lsn,
        "p50": percentile(lags, 50),
        "p99": percentile(lags, 99),
        "max": max(lags) if lags else None,
        "samples": horizon,
        "never": never,
        "catch_up_ms": catch_up,
        "cpu_s_per_s": cpu / elapsed if cpu is not None else None,
        "rss_mib": rss / 1024 if rss else None,
        "lifetime_rss_mib": lifetime / 1024 if lifetime else None,
        "elapsed": elapsed,
    }
    sampler.close()
    if moto:
        lines = moto.log_lines()
        row["requests_load"] = count_requests(lines[moto_mark:moto_load_end])
        # Idle: let the tail drain, then count what a primary without WAL causes.
        time.sleep(3)
        idle_mark = len(moto.log_lines())
        idle_lsn = pg.sql("SELECT pg_current_wal_lsn()")
        time.sleep(IDLE_WINDOW)
        row["idle_wal"] = lsn_int(pg.sql("SELECT pg_current_wal_lsn()")) - lsn_int(idle_lsn)
        row["requests_idle"] = count_requests(moto.log_lines()[idle_mark:])
        keys = moto.objects()
        row["objects_left"] = {
            "WAL segments": sum(1 for k in keys if re.search(r"wal/[0-9A-F]{8}/[0-9A-F]{24}$", k)),
            "WAL parts": sum(1 for k in keys if ".part/" in k),
            "position records": sum(1 for k in keys if "/positions/" in k),
            "other": sum(1 for k in keys if not re.search(r"wal/|positions/", k)),
        }
    return row


def fresh_primary(name, extra_conf=None):
    pg = Postgres(name, extra_conf)
    run(pg.client("pgbench") + ["-i", "-s", str(SCALE), "-q", "postgres"])
    return pg


def wait_streaming(pg, app, sync=False, timeout=60):
    deadline = time.monotonic() + timeout
    want = "sync" if sync else None
    while time.monotonic() < deadline:
        r = pg.sql(f"SELECT state || ',' || sync_state FROM pg_stat_replication "
                   f"WHERE application_name = '{app}'")
        if r.startswith("streaming") and (want is None or r.endswith(want)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{app} is not streaming{' synchronously' if sync else ''} after {timeout}s")


def make_sync(pg, app):
    pg.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{app}'")
    pg.sql("SELECT pg_reload_conf()")
    wait_streaming(pg, app, sync=True)


# ---------------------------------------------------------------- configurations

def bench_instarec_file(duration, synchronous=False, binary=None):
    label = ("instarec ship synchronous → file://" if synchronous
             else f"instarec ship → file:// (flush_interval {FLUSH_INTERVAL_MS}ms)")
    if binary:
        label += f" [{binary}]"
    pg = fresh_primary("instarec-file")
    scratch = PROCS.tempdir("instarec-bench-archive-")
    s = Instarec(pg, scratch, f"file://{scratch}/archive", synchronous=synchronous, label=label,
                 binary=binary)
    try:
        wait_streaming(pg, "instarec")
        if synchronous:
            make_sync(pg, "instarec")
        row = measure(pg, s, duration)
    finally:
        code = s.stop()
        pg.stop()
    row["exit_code"] = code
    return row


def bench_instarec_s3(duration, synchronous=False, binary=None):
    moto = Moto()
    pg = fresh_primary("instarec-s3")
    scratch = PROCS.tempdir("instarec-bench-s3-")
    label = ("instarec ship synchronous → s3:// on moto" if synchronous
             else f"instarec ship → s3:// on moto (flush_interval {FLUSH_INTERVAL_MS}ms)")
    if binary:
        label += f" [{binary}]"
    s = Instarec(pg, scratch, f"s3://{moto.bucket}/archive", s3=moto.settings(),
                 synchronous=synchronous, label=label, binary=binary)
    try:
        wait_streaming(pg, "instarec")
        if synchronous:
            make_sync(pg, "instarec")
        row = measure(pg, s, duration, moto=moto)
    finally:
        code = s.stop()
        pg.stop()
        PROCS.stop(moto.proc)
    row["exit_code"] = code
    return row


def bench_receivewal(duration, synchronous=False):
    pg = fresh_primary("receivewal")
    scratch = PROCS.tempdir("instarec-bench-receivewal-")
    label = ("pg_receivewal --synchronous -s 1 → local dir" if synchronous
             else "pg_receivewal -s 1 → local dir")
    s = PgReceivewal(pg, scratch, synchronous=synchronous, label=label)
    try:
        wait_streaming(pg, "pg_receivewal")
        # Without --synchronous its flush position moves a segment at a time.
        return measure(pg, s, duration, switch_at_end=not synchronous)
    finally:
        s.stop()
        pg.stop()


def bench_pgbackrest(duration):
    scratch = PROCS.tempdir("instarec-bench-pgbackrest-", "postgres")
    conf = os.path.join(scratch, "pgbackrest.conf")
    pg_scratch = PROCS.tempdir("instarec-bench-pgbackrest-pg-", "postgres")
    with open(conf, "w") as f:
        f.write(f"[global]\nrepo1-path={scratch}/repo\nspool-path={scratch}/spool\n"
                f"lock-path={scratch}/lock\nlog-path={scratch}/log\n"
                "log-level-console=warn\nlog-level-file=info\n"
                "archive-async=y\ncompress-type=zst\ncompress-level=3\n\n"
                f"[bench]\npg1-path={pg_scratch}/data\npg1-socket-path={pg_scratch}\n")
    os.chmod(conf, 0o644)
    pg = Postgres("pgbackrest", {
        "archive_mode": "on",
        "archive_command": f"pgbackrest --config={conf} --stanza=bench archive-push %p",
    }, scratch=pg_scratch)
    with open(conf, "a") as f:
        f.write(f"pg1-port={pg.port}\n")
    try:
        run(as_postgres(["pgbackrest", f"--config={conf}", "--stanza=bench", "stanza-create"]))
        run(pg.client("pgbench") + ["-i", "-s", str(SCALE), "-q", "postgres"])
        s = PgBackRest(pg, scratch, conf)
        return measure(pg, s, duration, switch_at_end=True)
    finally:
        pg.stop()


def bench_native_sync(duration):
    pg = fresh_primary("native-sync")
    s = NativeStandby(pg)
    try:
        wait_streaming(pg, "walreceiver")
        make_sync(pg, "walreceiver")
        return measure(pg, s, duration)
    finally:
        s.stop()
        pg.stop()


# ---------------------------------------------------------------- report

def fmt(v, spec=".0f", none="—"):
    return none if v is None else format(v, spec)


def rss_cell(r):
    if r.get("lifetime_rss_mib") is None:
        return fmt(r.get("rss_mib"), ".1f")
    return f"{fmt(r.get('rss_mib'), '.1f')} / {fmt(r['lifetime_rss_mib'], '.1f')}"


def table(rows):
    head = ("| configuration | primary TPS | WAL MB/s | lag p50 ms | lag p99 ms | lag max ms "
            "| catch-up ms | shipper CPU s/s | shipper peak RSS MiB (load / lifetime) |")
    out = [head, "|" + "---|" * 9]
    for r in rows:
        lag_note = f" ({r['never']} samples never archived)" if r["never"] else ""
        out.append(f"| {r['label']} | {fmt(r['tps'])} | {fmt(r['wal_mb_s'], '.2f')} "
                   f"| {fmt(r['p50'])} | {fmt(r['p99'])} | {fmt(r['max'])}{lag_note} "
                   f"| {fmt(r['catch_up_ms'], '.0f', 'not within 30 s')} "
                   f"| {fmt(r['cpu_s_per_s'], '.3f')} | {rss_cell(r)} |")
    return "\n".join(out)


def machine():
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    pg_version = run([f"{PG_BIN}/postgres", "--version"]).strip()
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": mem_kib / 1024 / 1024,
        "kernel": os.uname().release,
        "pg": pg_version,
        "pgbackrest": run(["pgbackrest", "version"]).strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main():
    duration = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    if os.geteuid() != 0:
        sys.exit("run as root (through bench/ship.sh)")
    if not os.access(INSTAREC, os.X_OK):
        sys.exit(f"{INSTAREC} is missing: run cargo build --release (bench/ship.sh does)")
    become_subreaper()
    m = machine()
    rows = {}
    plan = [
        ("instarec_file", lambda: bench_instarec_file(duration)),
        ("instarec_s3", lambda: bench_instarec_s3(duration)),
        ("receivewal", lambda: bench_receivewal(duration)),
        ("receivewal_sync", lambda: bench_receivewal(duration, synchronous=True)),
        ("pgbackrest", lambda: bench_pgbackrest(duration)),
        ("instarec_sync", lambda: bench_instarec_file(duration, synchronous=True)),
        ("native_sync", lambda: bench_native_sync(duration)),
    ]
    extra = [
        # Not in the full run's table: synchronous mode on moto, for BENCH_ONLY.
        ("instarec_sync_s3", lambda: bench_instarec_s3(duration, synchronous=True)),
        # BENCH_BASELINE=/path/to/instarec: the same synchronous run with
        # another build, in the same round, for before/after comparisons.
        ("baseline_sync", lambda: bench_instarec_file(
            duration, synchronous=True, binary=os.environ["BENCH_BASELINE"])),
        ("baseline_sync_s3", lambda: bench_instarec_s3(
            duration, synchronous=True, binary=os.environ["BENCH_BASELINE"])),
    ]
    only = [k for k in os.environ.get("BENCH_ONLY", "").split(",") if k]
    if only:
        return run_selected(only, plan + extra, int(os.environ.get("BENCH_REPEAT", "1")))
    for key, fn in plan:
        log(f"running {key} ({duration}s load)")
        try:
            rows[key] = fn()
            log(f"{key}: {rows[key]}")
        except Exception as e:  # one broken configuration must not hide the others
            log(f"{key} FAILED: {e}")
            rows[key] = {"label": f"{key} — FAILED: {str(e).splitlines()[0][:160]}",
                         "tps": None, "wal_mb_s": None, "p50": None, "p99": None,
                         "max": None, "never": 0, "catch_up_ms": None,
                         "cpu_s_per_s": None, "rss_mib": None, "failed": True}
    t = table([rows[k] for k, _ in plan])
    print(t)
    from report import write_doc  # bench/report.py: the prose around the numbers
    write_doc(DOC, t, rows, m, duration, FLUSH_INTERVAL_MS)
    log(f"wrote {DOC}")


def run_selected(only, plan, repeat):
    """BENCH_ONLY=key,key: runs just those configurations, `repeat` times
    interleaved (the machine is noisy: compare rows of one round), prints
    their table and the synchronous ratios, and leaves docs/benchmarks.md alone."""
    known = dict(plan)
    # key+NAME=VALUE runs configuration key with NAME=VALUE in the shipper's
    # environment (e.g. instarec_sync+INSTAREC_LOG=debug).
    unknown = [k for k in only if k.split("+")[0] not in known]
    if unknown:
        sys.exit(f"BENCH_ONLY names unknown configurations {unknown}; known: {', '.join(known)}")
    all_rows = []
    for round_no in range(1, repeat + 1):
        rows = {}
        for key in only:
            log(f"round {round_no}/{repeat}: running {key}")
            base, *assignments = key.split("+")
            saved = dict(os.environ)
            os.environ.update(a.split("=", 1) for a in assignments)
            try:
                rows[key] = known[base]()
                if assignments:
                    rows[key]["label"] += f" [{' '.join(assignments)}]"
            except Exception as e:
                log(f"{key} FAILED: {e}")
                continue
            finally:
                os.environ.clear()
                os.environ.update(saved)
            log(f"{key}: {rows[key]}")
        all_rows.append(rows)
        print(table([dict(r, label=f"{r['label']} (round {round_no})") for r in rows.values()]))
        native = rows.get("native_sync", {}).get("tps")
        for key in rows:
            if key == "native_sync" or "sync" not in key:
                continue
            tps = rows.get(key, {}).get("tps")
            if tps and native:
                print(f"round {round_no}: {key} {tps:.0f} TPS vs native_sync {native:.0f} TPS "
                      f"= {tps / native * 100:.0f} %")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

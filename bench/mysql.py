#!/usr/bin/env python3
"""MySQL/MariaDB benchmark: ship lag and standby apply throughput.

Run through bench/mysql.sh (which builds the release binary first):

    bench/mysql.sh [duration-seconds]

1. Ship lag. A fresh MariaDB primary on 127.0.0.1 and `instarec ship -v`
   into a file:// archive. Four client threads (each one `mariadb` batch
   process fed on stdin) commit small transactions for <duration> seconds.
   A sampler reads @@gtid_binlog_pos every 50 ms; the shipper's debug line
   "durable in archive durable=<gtid>" is stamped when read. Lag for a
   sample taken at t is the time until the durable GTID first covered the
   sample's seq_no.

2. Apply throughput. The same workload (everything the primary logged
   after the schema) is applied on three fresh, identically configured
   servers that start from the schema and gtid_slave_pos before the load:
   (a) a stock replica of `instarec relay` serving the archive,
   (b) `mariadb-binlog <primary's binlog files> | mariadb`,
   (c) a stock replica of the primary itself (native replication).

Prints one markdown table and replaces (or appends) the section
"## MySQL/MariaDB shipping and apply" in docs/benchmarks.md, leaving the
other sections as they are. Standard library only.
"""

import atexit
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
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTAREC = os.path.join(REPO, "target", "release", "instarec")
DOC = os.path.join(REPO, "docs", "benchmarks.md")
SECTION = "## MySQL/MariaDB shipping and apply"
CLIENTS = 4
ROWS_PER_TX = 2
SAMPLE_EVERY = 0.05
FLUSH_INTERVAL_MS = 200
TAIL_TIMEOUT = 60.0
APPLY_TIMEOUT = 900
RELAY_USER, RELAY_PASSWORD = "repl", "bench-secret"


# ---------------------------------------------------------------- processes

class Processes:
    """Every process group we start; all killed at exit, whatever happens."""

    def __init__(self):
        self.groups = []
        self.scratch = []
        self.pgid_file = os.environ.get("BENCH_PGID_FILE")

    def spawn(self, argv, stdout=None, stdin=subprocess.DEVNULL, **kw):
        p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT,
                             stdin=stdin, start_new_session=True, **kw)
        self.groups.append(p)
        if self.pgid_file:
            with open(self.pgid_file, "a") as f:
                f.write(f"{p.pid}\n")
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=30):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

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
        if not os.environ.get("BENCH_KEEP"):
            for d in self.scratch:
                shutil.rmtree(d, ignore_errors=True)


PROCS = Processes()
atexit.register(PROCS.cleanup)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: sys.exit(128 + s))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def as_mysql():
    pw = pwd.getpwnam("mysql")

    def drop():
        os.setgid(pw.pw_gid)
        os.setgroups([])
        os.setuid(pw.pw_uid)
    return drop


def seq_no(gtid_pos):
    """The seq_no of domain 0 in a MariaDB GTID position like 0-1-123."""
    for part in gtid_pos.split(","):
        d, _, s = part.strip().split("-")
        if d == "0":
            return int(s)
    return 0


# ---------------------------------------------------------------- MariaDB

class MariaDb:
    """A throwaway mariadbd as the mysql user; root over TCP, no password."""

    def __init__(self, name, server_id, log_bin=True, extra_args=()):
        self.name = name
        self.dir = PROCS.tempdir(f"instarec-bench-{name}-", owner="mysql")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mariadbd.sock")
        tmp = os.path.join(self.dir, "tmp")
        os.mkdir(tmp)
        pw = pwd.getpwnam("mysql")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        subprocess.run(["mariadb-install-db", "--no-defaults",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        f"--datadir={self.data}", f"--tmpdir={tmp}"],
                       cwd=self.dir, preexec_fn=as_mysql(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = free_port()
        argv = ["mariadbd", "--no-defaults", "--log-basename=instarec",
                f"--datadir={self.data}", f"--tmpdir={tmp}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.sock}",
                f"--pid-file={self.dir}/mariadbd.pid", f"--log-error={self.dir}/error.log",
                "--binlog-format=ROW", f"--server-id={server_id}",
                "--gtid-strict-mode=1", "--skip-name-resolve"]
        if log_bin:
            argv.append("--log-bin=mysql-bin")
        argv += extra_args
        self.proc = PROCS.spawn(argv, stdout=subprocess.DEVNULL, cwd=self.dir,
                                preexec_fn=as_mysql())
        deadline = time.time() + 120
        while True:
            r = self.client(["--socket=" + self.sock, "-e", "SELECT 1"], check=False)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"mariadbd {name} did not start; see {self.dir}/error.log")
            time.sleep(0.1)
        self.client(["--socket=" + self.sock, "-e",
                     "SET SESSION sql_log_bin = 0; "
                     "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; "
                     "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"])

    def client_argv(self):
        return ["mariadb", "--no-defaults", "-u", "root", "-N", "-B", "--protocol=TCP",
                "-h", "127.0.0.1", "-P", str(self.port)]

    def client(self, args, check=True):
        argv = ["mariadb", "--no-defaults", "-u", "root", "-N", "-B"] + args
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise SystemExit(f"{self.name}: {args}: {r.stderr}")
        return r

    def sql(self, query):
        return self.client(self.client_argv()[6:] + ["-e", query]).stdout.strip()

    def url(self):
        return f"mysql://root@127.0.0.1:{self.port}/"

    def stop(self):
        PROCS.stop(self.proc)


SCHEMA = ("CREATE DATABASE bench; "
          "CREATE TABLE bench.t (id BIGINT PRIMARY KEY, k INT NOT NULL, "
          "v VARCHAR(120) NOT NULL) ENGINE=InnoDB")


def make_target(name, server_id, start_pos):
    """A fresh server with the schema, positioned just before the workload."""
    db = MariaDb(name, server_id, log_bin=False)
    db.sql("SET SESSION sql_log_bin = 0; " + SCHEMA)
    db.sql(f"SET GLOBAL gtid_slave_pos = '{start_pos}'")
    return db


# ---------------------------------------------------------------- workload

def writer(primary, client_no, stop, counts):
    """One mariadb batch process fed transactions on stdin until stopped."""
    p = subprocess.Popen(primary.client_argv(), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    PROCS.groups.append(p)
    i = 0
    while not stop.is_set():
        rows = ", ".join(
            f"({(client_no << 40) + i * ROWS_PER_TX + r}, {i % 1000}, REPEAT('x', {20 + i % 80}))"
            for r in range(ROWS_PER_TX))
        p.stdin.write(f"BEGIN; INSERT INTO bench.t VALUES {rows}; COMMIT;\n".encode())
        i += 1
        if i % 10 == 0:
            p.stdin.flush()
    p.stdin.close()
    p.wait()
    counts[client_no] = i


class DurableWatcher(threading.Thread):
    """Reads the shipper's log as it is written; records (time, seq_no)."""

    PATTERN = re.compile(r"durable=(\S+).*durable in archive|durable in archive.*durable=(\S+)")

    def __init__(self, proc, log_path):
        super().__init__(daemon=True)
        self.proc, self.log_path = proc, log_path
        self.points = []

    def run(self):
        with open(self.log_path, "wb") as out:
            for raw in self.proc.stdout:
                now = time.time()
                out.write(raw)
                line = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode(errors="replace"))
                if "durable in archive" in line:
                    m = re.search(r"durable=(\S+)", line)
                    if m:
                        self.points.append((now, seq_no(m.group(1).strip('"'))))

    def latest(self):
        return self.points[-1][1] if self.points else 0


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def relay_config(scratch, primary, relay_port, primary_extra=""):
    """[archive], [primary] and [relay]: `primary` shipped into
    <scratch>/archive, served by `instarec relay` on `relay_port`."""
    return (f'[archive]\nurl = "file://{scratch}/archive"\n\n[primary]\nengine = "mysql"\n'
            f'url = "{primary.url()}"\nserver_id = 4200000001\n{primary_extra}\n'
            f'[relay]\nlisten = "127.0.0.1:{relay_port}"\nuser = "{RELAY_USER}"\n'
            f'password = "{RELAY_PASSWORD}"\n')


def ship_and_load(scratch, primary, duration):
    relay_port = free_port()
    config = os.path.join(scratch, "instarec.toml")
    with open(config, "w") as f:
        f.write(relay_config(scratch, primary, relay_port,
                             f'flush_interval = "{FLUSH_INTERVAL_MS}ms"\n'))
    ship = PROCS.spawn([INSTAREC, "--config", config, "-v", "ship"],
                       stdout=subprocess.PIPE, cwd=scratch)
    watcher = DurableWatcher(ship, os.path.join(scratch, "ship.log"))
    watcher.start()

    primary.sql(SCHEMA)
    primary.sql("FLUSH BINARY LOGS")
    start_pos = primary.sql("SELECT @@global.gtid_binlog_pos")
    first_file = primary.sql("SHOW MASTER STATUS").split()[0]
    deadline = time.time() + 30
    while watcher.latest() < seq_no(start_pos):
        if ship.poll() is not None or time.time() > deadline:
            raise SystemExit(f"shipper did not archive the schema; see {scratch}/ship.log")
        time.sleep(0.05)
    log(f"schema archived at {start_pos}; loading for {duration} s with {CLIENTS} clients")

    stop = threading.Event()
    counts = {}
    # Daemon threads: an interrupted run must not wait for them at exit.
    threads = [threading.Thread(target=writer, args=(primary, n, stop, counts), daemon=True)
               for n in range(CLIENTS)]
    for t in threads:
        t.start()
    samples = []
    sampler = subprocess.Popen(primary.client_argv() + ["--unbuffered"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, bufsize=1)
    PROCS.groups.append(sampler)
    t_end = time.time() + duration
    try:
        sample_until(sampler, samples, t_end)
    finally:
        stop.set()
    for t in threads:
        t.join()
    sampler.stdin.close()
    sampler.wait()
    return finish_run(scratch, primary, ship, watcher, config, relay_port, start_pos,
                      first_file, samples, duration)


def sample_until(sampler, samples, t_end):
    while time.time() < t_end:
        t0 = time.time()
        sampler.stdin.write("SELECT @@global.gtid_binlog_pos;\n")
        sampler.stdin.flush()
        pos = sampler.stdout.readline().strip()
        samples.append((t0, seq_no(pos)))
        time.sleep(max(0.0, SAMPLE_EVERY - (time.time() - t0)))


def finish_run(scratch, primary, ship, watcher, config, relay_port, start_pos,
               first_file, samples, duration):
    end_pos = primary.sql("SELECT @@global.gtid_binlog_pos")
    load_secs = duration
    deadline = time.time() + TAIL_TIMEOUT
    while watcher.latest() < seq_no(end_pos):
        if time.time() > deadline:
            raise SystemExit(f"archive stuck at {watcher.latest()}, primary at {end_pos}")
        time.sleep(0.05)

    lags = []
    points = list(watcher.points)
    for t, s in samples:
        # First durable record at or after t that covers s (or one before t: lag 0).
        covered = next(((pt, ps) for pt, ps in points if ps >= s), None)
        lags.append(max(0.0, covered[0] - t) * 1000 if covered else float("nan"))
    txs = seq_no(end_pos) - seq_no(start_pos)
    return dict(config=config, relay_port=relay_port, ship=ship, start_pos=start_pos,
                end_pos=end_pos, first_file=first_file, lags=lags, txs=txs,
                load_tps=txs / load_secs, samples=len(samples))


# ---------------------------------------------------------------- apply

def wait_gtid(db, end_pos):
    r = db.sql(f"SELECT MASTER_GTID_WAIT('{end_pos}', {APPLY_TIMEOUT})")
    if r != "0":
        status = db.client(db.client_argv()[6:] + ["-E", "-e", "SHOW SLAVE STATUS"], check=False).stdout
        raise SystemExit(f"{db.name} did not reach {end_pos}:\n{status}")


def apply_replica(name, server_id, start_pos, end_pos, port, user, password):
    db = make_target(name, server_id, start_pos)
    db.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, "
           f"MASTER_USER='{user}', MASTER_PASSWORD='{password}', "
           "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1")
    t0 = time.time()
    db.sql("START SLAVE")
    wait_gtid(db, end_pos)
    secs = time.time() - t0
    count = db.sql("SELECT COUNT(*) FROM bench.t")
    db.stop()
    return secs, int(count)


def apply_pipe(primary, start_pos, end_pos, first_file):
    db = make_target("pipe", 13, start_pos)
    # Numbered binlog files sort in log order; the load starts in first_file.
    files = [os.path.join(primary.data, n) for n in sorted(os.listdir(primary.data))
             if re.fullmatch(r"mysql-bin\.\d+", n) and n >= first_file]
    t0 = time.time()
    dump = subprocess.Popen(["mariadb-binlog", "--no-defaults"] + files, stdout=subprocess.PIPE)
    load = subprocess.run(db.client_argv(), stdin=dump.stdout, capture_output=True, text=True)
    dump.stdout.close()
    dump.wait()
    secs = time.time() - t0
    if load.returncode != 0 or dump.returncode != 0:
        raise SystemExit(f"mariadb-binlog | mariadb failed: {load.stderr}")
    count = db.sql("SELECT COUNT(*) FROM bench.t")
    db.stop()
    return secs, int(count)


# ---------------------------------------------------------------- report

def write_doc(table, body):
    try:
        old = open(DOC).read()
    except FileNotFoundError:
        old = "# Benchmarks\n"
    section = SECTION + "\n\n" + body.strip("\n") + "\n"
    parts = re.split(r"^(?=## )", old, flags=re.M)
    out, replaced = [], False
    for part in parts:
        if part.startswith(SECTION + "\n") or part.rstrip("\n") == SECTION:
            out.append(section + "\n")
            replaced = True
        else:
            out.append(part)
    text = "".join(out)
    if not replaced:
        text = text.rstrip("\n") + "\n\n" + section
    with open(DOC, "w") as f:
        f.write(text.rstrip("\n") + "\n")


def main():
    duration = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    version = subprocess.run(["mariadbd", "--version"], capture_output=True,
                             text=True).stdout.split("Ver ")[-1].split(" for")[0]
    scratch = PROCS.tempdir("instarec-bench-mysql-")
    primary = MariaDb("primary", 1)
    primary.sql(f"CREATE USER '{RELAY_USER}'@'127.0.0.1' IDENTIFIED BY '{RELAY_PASSWORD}'; "
                f"GRANT REPLICATION SLAVE ON *.* TO '{RELAY_USER}'@'127.0.0.1'")
    run = ship_and_load(scratch, primary, duration)
    lags = [x for x in run["lags"] if x == x]
    log(f"{run['txs']} transactions ({run['load_tps']:.0f}/s); lag p50 "
        f"{percentile(lags, .5):.0f} ms p99 {percentile(lags, .99):.0f} ms max {max(lags):.0f} ms")

    relay = PROCS.spawn([INSTAREC, "--config", run["config"], "-v", "relay"],
                        stdout=open(os.path.join(scratch, "relay.log"), "wb"), cwd=scratch)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", run["relay_port"]), 1).close()
            break
        except OSError:
            if relay.poll() is not None or time.time() > deadline:
                raise SystemExit(f"relay did not listen; see {scratch}/relay.log")
            time.sleep(0.05)
    # Only the relay reads the archive from here on: stop the shipper.
    PROCS.stop(run["ship"])

    expected_rows = run["txs"] * ROWS_PER_TX
    results = {}
    for label, fn in [
        ("relay", lambda: apply_replica("relay", 11, run["start_pos"], run["end_pos"],
                                        run["relay_port"], RELAY_USER, RELAY_PASSWORD)),
        ("pipe", lambda: apply_pipe(primary, run["start_pos"], run["end_pos"], run["first_file"])),
        ("native", lambda: apply_replica("native", 12, run["start_pos"], run["end_pos"],
                                         primary.port, RELAY_USER, RELAY_PASSWORD)),
    ]:
        secs, rows = fn()
        if rows != expected_rows:
            raise SystemExit(f"{label}: {rows} rows applied, expected {expected_rows}")
        results[label] = secs
        log(f"{label}: {run['txs']} tx in {secs:.2f} s = {run['txs'] / secs:.0f} tx/s")
    PROCS.stop(relay)

    tps = {k: run["txs"] / v for k, v in results.items()}
    vs_pipe = tps["relay"] / tps["pipe"]
    vs_native = tps["relay"] / tps["native"]
    ok = lambda b: "met" if b else "**not met**"
    now = datetime.datetime.now(datetime.timezone.utc)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    table = f"""| | value |
|---|---:|
| write load | {CLIENTS} clients × {duration} s, {run['txs']:,} transactions ({run['load_tps']:,.0f} tx/s), {ROWS_PER_TX} rows each |
| ship lag p50 | {percentile(lags, .5):.0f} ms |
| ship lag p99 | {percentile(lags, .99):.0f} ms |
| ship lag max | {max(lags):.0f} ms |
| apply: `instarec relay` → replica | {tps['relay']:,.0f} tx/s ({results['relay']:.2f} s) |
| apply: `mariadb-binlog \\| mariadb` | {tps['pipe']:,.0f} tx/s ({results['pipe']:.2f} s) |
| apply: native replication from the primary | {tps['native']:,.0f} tx/s ({results['native']:.2f} s) |
| relay ÷ mariadb-binlog\\|mariadb (target ≥ 1.00) | {vs_pipe:.2f} — {ok(vs_pipe >= 1.0)} |
| relay ÷ native (target ≥ 0.80) | {vs_native:.2f} — {ok(vs_native >= 0.8)} |"""
    body = f"""Generated by `bench/mysql.sh {duration}` on {now:%Y-%m-%d %H:%M} UTC: MariaDB {version},
release build, {os.cpu_count()}-core {cpu} shared with other work, loopback,
file:// archive, `flush_interval = "{FLUSH_INTERVAL_MS}ms"`, one run.

{table}

Ship lag: the primary's `@@gtid_binlog_pos` sampled every {int(SAMPLE_EVERY * 1000)} ms
({run['samples']} samples); a sample's lag is the time until `instarec ship -v`
logged "durable in archive" with a GTID covering it (the line is stamped when
read, so pipe delay is included). The load is {CLIENTS} `mariadb` batch clients,
each committing one multi-row INSERT transaction after another.

Apply: the load above (everything the primary logged after the schema) applied
on three fresh servers with identical settings (no binlog, single-threaded
apply, `innodb_flush_log_at_trx_commit=1`), each starting from the schema with
`gtid_slave_pos` at the position before the load; time from START SLAVE (or
the pipe's start) until `MASTER_GTID_WAIT(<end>)` returned (or the pipe
ended); row counts checked. The relay served the file:// archive with the
shipper stopped; native replication read the primary's binlog over TCP.
"""
    print(table)
    write_doc(table, body)
    log(f"wrote {SECTION!r} in {DOC}")


if __name__ == "__main__":
    main()

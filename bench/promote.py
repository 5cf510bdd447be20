"""Promote RTO benchmark: rounds of a fresh topology with a client writing
through `instarec proxy`, then `instarec promote` (planned, or after
`kill -9` of the primary). Writes one table per engine into the
"## Promote RTO" section of docs/benchmarks.md, keeping the other engine's.

    bench/promote.sh [--engine postgres|mysql] [rounds]

postgres: each round is one `instarec demo --json` (it builds the topology).
mysql: each round is built here from bench/mysql.py's MariaDB servers (run
as root; they run as the mysql user). Standard library only.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "instarec")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
SECTION = "## Promote RTO"
WRITE_FOR = 3.0
# Targets in seconds; the brief's bound for MariaDB is 3 s for both modes.
TARGETS = {
    "postgres": {"planned": 2.0, "failover": 3.0},
    "mysql": {"planned": 3.0, "failover": 3.0},
}
TITLES = {"postgres": "PostgreSQL", "mysql": "MariaDB"}

INTRO = """RTO is promote's own figure: from its start until the first write it
made through the path clients use (the proxy's listen address) was accepted
by the new primary. Each round starts from fresh servers; a client writes
through `instarec proxy` for 3 s and records every commit it saw
acknowledged, then `instarec promote --json` runs (planned, or right after
`kill -9` of the primary). "Lost" counts acknowledged commits missing from
the new primary; "within reported RPO" says every lost commit was
acknowledged no earlier than `rpo_seconds` before promote started."""


# ---------------------------------------------------------------- PostgreSQL

def demo_round(planned):
    args = [BINARY, "-q", "demo", "--json", "--write-for", f"{WRITE_FOR:.0f}s"]
    if planned:
        args.append("--planned")
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"demo failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    return {
        "report": r["promote_report"],
        "acked": r["acknowledged_commits"],
        "lost": r["lost_commits"],
        "covered": r["lost_commits_covered_by_rpo"],
    }


POSTGRES_SETUP = """Each round is one `instarec demo`: a fresh PostgreSQL primary, `instarec ship`,
a backup, a hot standby restored from it and fed from the archive, and
`instarec proxy` with a control port. The client commits one row per
transaction through the proxy."""

POSTGRES_FOOTER = """PgBouncer in planned mode: zero client-visible errors is asserted by
`tests/cutover_pgbouncer.rs` (a pooled client runs transactions through PAUSE,
repoint, RELOAD, RESUME and sees no error); it is a correctness property, so it
lives in the test suite rather than here."""


# ---------------------------------------------------------------- MariaDB

MARIADB_SETUP = """Each round: a fresh MariaDB primary, `instarec ship` into a file:// archive,
`instarec relay` serving it, a stock replica of the relay (`--log-slave-updates
--read-only`, `MASTER_USE_GTID=slave_pos`) caught up as the standby, and
`instarec proxy` with a control port (`[cutover] method = "proxy"`). Config
defaults otherwise (relay poll 200 ms, ship flush 200 ms), with
`[promote] old_primary_timeout = "2s"`. The client is one `mariadb` batch
session as an ordinary account (no READ ONLY ADMIN), committing one row per
statement through the proxy; an ack is stamped when the client reads the reply."""

MARIADB_FOOTER = """In a failover `rpo_transactions` counts only what the archive or the
shipper's last recorded primary position knew of, so it is a lower bound:
commits the primary acknowledged in its last flush interval, not yet
archived when it died, are missing from it. `rpo_seconds` is the bound
that covers them, and the last column checks it against the client's log."""

LEDGER_SCHEMA = ("CREATE DATABASE bench; "
                 "CREATE TABLE bench.ledger (id BIGINT PRIMARY KEY) ENGINE=InnoDB; "
                 "CREATE USER 'app'@'127.0.0.1'; "
                 "GRANT SELECT, INSERT ON bench.* TO 'app'@'127.0.0.1'")


def mariadb_servers():
    """bench/mysql.py: its MariaDB servers and process bookkeeping."""
    path = os.path.join(ROOT, "bench", "mysql.py")
    spec = importlib.util.spec_from_file_location("mariadb_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MariadbLedger(threading.Thread):
    """Commits ids 1, 2, ... through `port` as `app`, one statement at a
    time, recording (id, ack time); reconnects after any error."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = []
        self.stopped = threading.Event()

    def run(self):
        n = 0
        while not self.stopped.is_set():
            client = subprocess.Popen(
                ["mariadb", "--no-defaults", "-u", "app", "-N", "-B", "--unbuffered",
                 "--protocol=TCP", "-h", "127.0.0.1", "-P", str(self.port),
                 "--connect-timeout=2", "bench"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, bufsize=1)
            try:
                while not self.stopped.is_set():
                    n += 1
                    client.stdin.write(f"INSERT INTO ledger VALUES ({n}); SELECT {n};\n")
                    client.stdin.flush()
                    # One reply outstanding at a time, so select() sees all there is.
                    ready, _, _ = select.select([client.stdout], [], [], 5.0)
                    if not ready or client.stdout.readline().strip() != str(n):
                        break
                    self.acked.append((n, time.time()))
            except (BrokenPipeError, OSError):
                pass
            finally:
                client.kill()
                client.wait()
            time.sleep(0.02)

    def finish(self):
        self.stopped.set()
        self.join(30)
        return list(self.acked)


def wait_until(what, check, timeout, log=None):
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            tail = open(log).read()[-3000:] if log and os.path.exists(log) else ""
            raise SystemExit(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.05)


def port_open(port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def mariadb_round(mb, planned):
    procs = mb.PROCS
    first_dir, first_group = len(procs.scratch), len(procs.groups)
    try:
        return mariadb_round_in(mb, planned)
    finally:
        for p in reversed(procs.groups[first_group:]):
            procs.stop(p, signal.SIGKILL, timeout=5)
        del procs.groups[first_group:]
        if not os.environ.get("BENCH_KEEP"):
            for d in procs.scratch[first_dir:]:
                shutil.rmtree(d, ignore_errors=True)
            del procs.scratch[first_dir:]


def mariadb_round_in(mb, planned):
    procs = mb.PROCS
    scratch = procs.tempdir("instarec-bench-promote-")
    primary = mb.MariaDb("primary", 1)
    primary.sql(LEDGER_SCHEMA)
    standby = mb.MariaDb("standby", 2, extra_args=["--log-slave-updates", "--read-only"])
    relay_port, listen, control = mb.free_port(), mb.free_port(), mb.free_port()
    config = os.path.join(scratch, "instarec.toml")
    with open(config, "w") as f:
        f.write(mb.relay_config(scratch, primary, relay_port) + "\n"
                f'[standby]\nurl = "{standby.url()}"\n\n'
                f'[promote]\nold_primary_timeout = "2s"\n\n'
                f'[cutover]\nmethod = "proxy"\nlisten = "127.0.0.1:{listen}"\n'
                f'proxy_control = "127.0.0.1:{control}"\n')

    def daemon(command, port=None):
        log = os.path.join(scratch, f"{command}.log")
        p = procs.spawn([BINARY, "--config", config, command], stdout=open(log, "w"), cwd=scratch)
        if port:
            wait_until(f"instarec {command} on {port}", lambda: port_open(port), 30, log)
        return p

    daemon("ship")
    wait_until("the first archived binlog",
               lambda: os.path.exists(os.path.join(scratch, "archive", "binlog-index")), 30,
               os.path.join(scratch, "ship.log"))
    daemon("relay", relay_port)
    standby.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={relay_port}, "
                f"MASTER_USER='{mb.RELAY_USER}', MASTER_PASSWORD='{mb.RELAY_PASSWORD}', "
                "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; "
                "START SLAVE")
    target = primary.sql("SELECT @@global.gtid_binlog_pos")
    if standby.sql(f"SELECT MASTER_GTID_WAIT('{target}', 60)") != "0":
        raise SystemExit(f"the standby did not reach {target}; see {scratch}")
    daemon("proxy", listen)

    ledger = MariadbLedger(listen)
    ledger.start()
    time.sleep(WRITE_FOR)
    args = [BINARY, "--config", config, "promote", "--json"]
    if planned:
        args.append("--planned")
    else:
        procs.stop(primary.proc, signal.SIGKILL)
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    acked = ledger.finish()
    if out.returncode != 0:
        raise SystemExit(f"promote failed ({out.returncode}): {out.stderr[-3000:]}")
    report = json.loads(out.stdout)
    on_new = {int(x) for x in standby.sql("SELECT id FROM bench.ledger").split()}
    lost = [(n, at) for n, at in acked if n not in on_new]
    return {
        "report": report,
        "acked": len(acked),
        "lost": len(lost),
        "covered": covered_by_rpo(report, lost),
    }


def covered_by_rpo(report, lost):
    """Every lost commit was acknowledged within rpo_seconds before promote started."""
    if not lost:
        return True
    if report.get("rpo_seconds") is None:
        return False
    text = report["started_at"]
    # RFC 3339 with nanoseconds; Python parses microseconds.
    text = re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00")
    started = datetime.datetime.fromisoformat(text).timestamp()
    return all(at >= started - report["rpo_seconds"] for _, at in lost)


# ---------------------------------------------------------------- report

def summarize(mode, results, target):
    rto = [r["report"]["rto_seconds"] for r in results]
    rpo_tx = [r["report"].get("rpo_transactions") for r in results]
    rpo_s = [r["report"].get("rpo_seconds") for r in results]
    return {
        "mode": mode,
        "rounds": len(results),
        "rto": rto,
        "rto_p50": statistics.median(rto),
        "rto_max": max(rto),
        "target": target,
        "acked_total": sum(r["acked"] for r in results),
        "lost_total": sum(r["lost"] for r in results),
        "rpo_tx_total": None if None in rpo_tx else sum(rpo_tx),
        "rpo_s_max": max((s for s in rpo_s if s is not None), default=None),
        "covered": all(r["covered"] for r in results),
    }


def table(rows):
    lines = [
        "| mode | rounds | RTO p50 s | RTO max s | target | met | commits acknowledged | lost "
        "| reported RPO: transactions (sum) | reported RPO: max s | lost within reported RPO |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = "yes" if r["rto_max"] <= r["target"] else "no"
        tx = "—" if r["rpo_tx_total"] is None else str(r["rpo_tx_total"])
        secs = "—" if r["rpo_s_max"] is None else f"{r['rpo_s_max']:.2f}"
        lines.append(
            f"| {r['mode']} | {r['rounds']} | {r['rto_p50']:.2f} | {r['rto_max']:.2f} "
            f"| ≤ {r['target']:.0f} | {met} | {r['acked_total']} | {r['lost_total']} "
            f"| {tx} | {secs} | {'yes' if r['covered'] else 'NO'} |")
    lines.append("")
    for r in rows:
        lines.append(f"RTO per round, {r['mode']} (s): "
                     + ", ".join(f"{x:.2f}" for x in r["rto"]) + ".")
    return lines


def subsection(engine, rounds, rows):
    command = "bench/promote.sh" + ("" if engine == "postgres" else " --engine mysql")
    lines = [
        f"### {TITLES[engine]}",
        "",
        f"Command: `{command} {rounds}` (release build).",
        POSTGRES_SETUP if engine == "postgres" else MARIADB_SETUP,
        "",
        f"Machine: {os.cpu_count()} cores, {platform.release()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; shared and noisy.",
        "",
    ] + table(rows)
    lines += ["", POSTGRES_FOOTER if engine == "postgres" else MARIADB_FOOTER]
    return "\n".join(lines) + "\n"


def write_doc(engine, text):
    """Replaces this engine's ### subsection of "## Promote RTO", keeping
    the other engine's (an old section without subsections is PostgreSQL's)."""
    doc = open(DOC).read() if os.path.exists(DOC) else "# Benchmarks\n"
    pattern = re.compile(r"^## Promote RTO\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(doc)
    subsections = {}
    if found:
        body = found.group(0)[len(SECTION) + 1:]
        parts = re.split(r"^(?=### )", body, flags=re.M)
        if len(parts) == 1:
            subsections["postgres"] = "### PostgreSQL\n\n" + body.strip() + "\n"
        for part in parts[1:]:
            for key, title in TITLES.items():
                if part.startswith(f"### {title}\n"):
                    subsections[key] = part.rstrip() + "\n"
    subsections[engine] = text
    section = SECTION + "\n\n" + INTRO + "\n\n" + "\n".join(
        subsections[k] for k in TITLES if k in subsections) + "\n"
    if found:
        doc = doc[:found.start()] + section + doc[found.end():]
    else:
        doc = doc.rstrip() + "\n\n" + section
    with open(DOC, "w") as f:
        f.write(doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(TITLES), default="postgres")
    parser.add_argument("rounds", nargs="?", type=int, default=5)
    args = parser.parse_args()
    if args.engine == "postgres":
        run_round = demo_round
    else:
        mb = mariadb_servers()

        def run_round(planned):
            return mariadb_round(mb, planned)
    rows = []
    for mode, planned in (("planned", True), ("failover (kill -9)", False)):
        results = []
        for i in range(args.rounds):
            r = run_round(planned)
            print(f"{args.engine} {mode} round {i + 1}: RTO {r['report']['rto_seconds']:.3f} s, "
                  f"{r['acked']} acknowledged, {r['lost']} lost, "
                  f"rpo_transactions {r['report'].get('rpo_transactions')}, "
                  f"rpo_seconds {r['report'].get('rpo_seconds')}", flush=True)
            results.append(r)
        target = TARGETS[args.engine]["planned" if planned else "failover"]
        rows.append(summarize(mode, results, target))
    text = subsection(args.engine, args.rounds, rows)
    print(text)
    write_doc(args.engine, text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Backup and restore benchmark: instarec against pg_basebackup and pgBackRest.

Run through bench/backup.sh (which builds the release binary first):

    bench/backup.sh [pgbench-scale]        (as root; default 70, about 1 GiB)

One fresh PostgreSQL 15 primary on 127.0.0.1 gets `pgbench -i -s <scale>`.
Then, one after the other on that idle primary, each tool takes a base backup
and restores it into a new directory; wall times are measured around the
commands. Prints one markdown table and writes the "Backup and restore"
section of docs/benchmarks.md (the other sections are left as they are).

The process and scratch-dir handling (and the PostgreSQL start-up) is
bench/ship.py's, imported from it.
"""

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ship  # noqa: E402  (sets up PROCS: every process group killed at exit)
from ship import PROCS, PG_BIN, INSTAREC, DOC, as_postgres, log, run, tail  # noqa: E402

SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 70
# instarec backup --parallel and restore --parallel both default to 4; the
# peers get the same (pgBackRest --process-max).
PARALLEL = 4
ZSTD_LEVEL = 3
SECTION = "## Backup and restore"
SCRATCH_DIR = []  # this run's scratch dir, shown as $SCRATCH in the doc


def kill_adopted():
    """pgBackRest's async archive-push detaches; as a subreaper we adopted it.
    Kill exactly those adopted children, by pid."""
    own = {p.pid for p in PROCS.groups}
    for pid in ship.list_pids():
        st = ship.read_stat(pid)
        if st and st["ppid"] == os.getpid() and pid not in own:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def timed(argv, log_path, what, timeout=900):
    """Runs argv in its own process group (killed at exit if still there);
    returns (wall seconds, stdout text). Killed after timeout seconds."""
    out_path = log_path + ".out"
    with open(out_path, "wb") as out, open(log_path, "ab") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        PROCS.groups.append(p)
        if PROCS.pgid_file:  # for bench/backup.sh's trap
            with open(PROCS.pgid_file, "a") as f:
                f.write(f"{p.pid}\n")
        try:
            code = p.wait(timeout)
        except subprocess.TimeoutExpired:
            PROCS.stop(p, signal.SIGTERM, 30)
            raise RuntimeError(f"{what} did not finish within {timeout} s; "
                               f"log tail:\n{tail(log_path)}") from None
        wall = time.monotonic() - t0
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    if code != 0:
        raise RuntimeError(f"{what} exited {code}; stdout:\n{stdout[-2000:]}\n"
                           f"log tail:\n{tail(log_path)}")
    return wall, stdout


def sync_files(d):
    """fsync every file under d (coreutils `sync FILE...` fsyncs each one).
    Not every tool fsyncs what it restores; timing this after each restore
    makes the restore columns comparable. Only these files, not the whole
    (shared) filesystem."""
    t0 = time.monotonic()
    files = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
    for i in range(0, len(files), 500):
        subprocess.run(["sync", "--"] + files[i:i + 500], check=True)
    subprocess.run(["sync", "--", d], check=True)
    return time.monotonic() - t0


def du_bytes(path):
    total = 0
    for r, _, fs in os.walk(path):
        for f in fs:
            try:
                total += os.lstat(os.path.join(r, f)).st_size
            except OSError:
                pass
    return total


def rm_tree(d):
    subprocess.run(["rm", "-rf", "--", d], check=False)


def wait_archived(pg, timeout=120):
    """Until pgBackRest's archiver has nothing pending (it keeps up anyway on
    an idle primary; this keeps one tool's tail out of the next one's time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Done when the last archived segment is the one before the current.
        r = pg.sql("SELECT coalesce(last_archived_wal, '') >= "
                   "pg_walfile_name(pg_current_wal_lsn() - 16777216) FROM pg_stat_archiver")
        if r == "t":
            return
        time.sleep(0.5)
    log(f"pgBackRest archiving still behind after {timeout}s: {r}")


def wait_instarec_caught_up(pg, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = pg.sql("SELECT coalesce((flush_lsn >= pg_current_wal_flush_lsn())::text, 'none') "
                   "FROM pg_stat_replication WHERE application_name = 'instarec' "
                   "UNION ALL SELECT 'none' LIMIT 1")
        if r == "true":
            return
        time.sleep(0.2)
    raise RuntimeError(f"instarec ship did not catch up within {timeout}s")


# ---------------------------------------------------------------- tools

def bench_pg_basebackup(pg, scratch, compress):
    name = "pg_basebackup" + (f" client-zstd:{ZSTD_LEVEL}" if compress else " (uncompressed)")
    out = os.path.join(scratch, "pgbb-" + ("zstd" if compress else "raw"))
    dst = os.path.join(scratch, "pgbb-restore")
    logp = os.path.join(scratch, "pg_basebackup.log")
    argv = pg.client("pg_basebackup") + ["-D", out, "-Ft", "-X", "none", "-c", "fast"]
    if compress:
        argv += [f"--compress=client-zstd:{ZSTD_LEVEL}"]
    backup_s, _ = timed(argv, logp, name)
    tar = os.path.join(out, "base.tar.zst" if compress else "base.tar")
    os.makedirs(dst)
    untar = ["tar", "-x", "-f", tar, "-C", dst]
    if compress:
        untar[1:1] = ["-I", "zstd"]
    restore_s, _ = timed(untar, logp, f"untar {tar}")
    sync_s = sync_files(dst)
    # The tar has no manifest check; pg_verifybackup (plain format only, so
    # after extraction) is what instarec's verification corresponds to.
    subprocess.run(["cp", os.path.join(out, "backup_manifest"), dst], check=True)
    verify_s, _ = timed([f"{PG_BIN}/pg_verifybackup", "-n", "-q", dst], logp, "pg_verifybackup")
    row = {"tool": name, "backup_s": backup_s, "restore_cmd_s": restore_s, "sync_s": sync_s,
           "verify_s": verify_s, "stored_bytes": du_bytes(out),
           "backup_cmd": "pg_basebackup " + " ".join(argv[len(pg.client("x")):]),
           "restore_cmd": " ".join(untar)}
    rm_tree(dst)
    rm_tree(out)
    return row


def bench_pgbackrest(pg, scratch, conf):
    logp = os.path.join(scratch, "pgbackrest-bench.log")
    dst = os.path.join(scratch, "pgbr-restore")
    base = as_postgres(["pgbackrest", f"--config={conf}", "--stanza=bench",
                        f"--process-max={PARALLEL}"])
    backup_argv = base + ["--type=full", "--start-fast", "--compress-type=zst",
                          f"--compress-level={ZSTD_LEVEL}", "backup"]
    backup_s, _ = timed(backup_argv, logp, "pgbackrest backup")
    os.makedirs(dst)
    os.chown(dst, *ship.pwd.getpwnam("postgres")[2:4])
    os.chmod(dst, 0o700)
    restore_argv = base + [f"--pg1-path={dst}", "restore"]
    restore_s, _ = timed(restore_argv, logp, "pgbackrest restore")
    sync_s = sync_files(dst)
    repo = os.path.join(scratch, "repo", "backup")
    row = {"tool": f"pgBackRest {pgbackrest_version()} (zst-{ZSTD_LEVEL}, process-max {PARALLEL})",
           "backup_s": backup_s, "restore_cmd_s": restore_s, "sync_s": sync_s,
           "stored_bytes": du_bytes(repo),
           "backup_cmd": " ".join(backup_argv[4:]),
           "restore_cmd": " ".join(restore_argv[4:])}
    rm_tree(dst)
    return row


def bench_instarec(pg, scratch, config):
    logp = os.path.join(scratch, "instarec-bench.log")
    dst = os.path.join(scratch, "instarec-restore")
    backup_argv = [INSTAREC, "--config", config, "backup", "--json", "--parallel", str(PARALLEL)]
    backup_s, out = timed(backup_argv, logp, "instarec backup")
    record = json.loads(out)
    restore_argv = [INSTAREC, "--config", config, "restore", "--data-dir", dst, "--latest",
                    "--parallel", str(PARALLEL)]
    restore_s, _ = timed(restore_argv, logp, "instarec restore")
    sync_s = sync_files(dst)
    archive = os.path.join(scratch, "archive")
    row = {"tool": f"instarec (zstd-{ZSTD_LEVEL}, --parallel {PARALLEL})",
           "backup_s": backup_s, "restore_cmd_s": restore_s, "sync_s": sync_s,
           "stored_bytes": du_bytes(os.path.join(archive, "backups")),
           "record": record,
           "backup_cmd": " ".join(["instarec"] + backup_argv[1:]),
           "restore_cmd": " ".join(["instarec"] + restore_argv[1:])}
    rm_tree(dst)
    # With --start: recovery runs to the end of the archive and the server
    # promotes; reported apart (it includes starting and stopping postgres).
    start_argv = restore_argv + ["--start", "--json"]
    try:
        start_s, start_out = timed(start_argv, logp, "instarec restore --start", timeout=600)
        row["start_s"] = start_s
        row["start_result"] = start_out.strip()
    except Exception as e:  # report it, keep the rest of the table
        row["start_error"] = str(e)
        log(f"instarec restore --start FAILED: {e}")
    rm_tree(dst)
    return row


def pgbackrest_version():
    return run(["pgbackrest", "version"]).strip().split()[-1]


# ---------------------------------------------------------------- report

def mb_s(size, secs):
    return size / secs / 1e6 if secs else None


def table(rows, db_bytes):
    out = ["| tool | backup wall s | backup MB/s | restore wall s | restore MB/s | stored MiB |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("failed"):
            out.append(f"| {r['tool']} — FAILED: {r['error']} | — | — | — | — | — |")
            continue
        restore = r["restore_cmd_s"] + r["sync_s"]
        out.append(f"| {r['tool']} | {r['backup_s']:.1f} | {mb_s(db_bytes, r['backup_s']):.0f} "
                   f"| {restore:.1f} ({r['restore_cmd_s']:.1f} + {r['sync_s']:.1f} sync) "
                   f"| {mb_s(db_bytes, restore):.0f} | {r['stored_bytes'] / 2**20:.0f} |")
    return "\n".join(out)


def target_line(rows, db_bytes):
    ir = next((r for r in rows if r["tool"].startswith("instarec") and not r.get("failed")), None)
    br = next((r for r in rows if r["tool"].startswith("pgBackRest") and not r.get("failed")), None)
    if not ir or not br:
        return "Target instarec ≥ pgBackRest: **not measured** (a configuration failed)."
    b_ratio = br["backup_s"] / ir["backup_s"]
    i_restore = ir["restore_cmd_s"] + ir["sync_s"]
    b_restore = br["restore_cmd_s"] + br["sync_s"]
    r_ratio = b_restore / i_restore

    def verdict(x):
        return "**met**" if x >= 1 else "**NOT met**"
    return (f"- Backup: {verdict(b_ratio)}: instarec {ir['backup_s']:.1f} s "
            f"({mb_s(db_bytes, ir['backup_s']):.0f} MB/s) vs pgBackRest {br['backup_s']:.1f} s "
            f"({mb_s(db_bytes, br['backup_s']):.0f} MB/s): instarec is {b_ratio:.2f}× "
            f"pgBackRest's speed.\n"
            f"- Restore: {verdict(r_ratio)}: instarec {i_restore:.1f} s "
            f"({mb_s(db_bytes, i_restore):.0f} MB/s) vs pgBackRest {b_restore:.1f} s "
            f"({mb_s(db_bytes, b_restore):.0f} MB/s): instarec is {r_ratio:.2f}× "
            f"pgBackRest's speed.")


def start_line(rows):
    ir = next((r for r in rows if r["tool"].startswith("instarec")), {})
    if "start_s" in ir:
        return (f"`instarec restore --latest --start` (restore, then start postgres, recover to "
                f"the end of the archive, promote, report, stop) took **{ir['start_s']:.1f} s** "
                f"in all; it printed `{ir['start_result']}` (`last_commit` is null when "
                f"no transaction was replayed after the backup: the primary was idle).")
    if "start_error" in ir:
        first = ir["start_error"].splitlines()[0][:300]
        return f"`instarec restore --latest --start` **failed**: `{first}`."
    return "`instarec restore --start` was not run."


def compress_ratio(rows, cluster_bytes):
    ir = next((r for r in rows if r["tool"].startswith("instarec") and not r.get("failed")), None)
    if not ir or not ir["stored_bytes"]:
        return "(not measured)"
    return f"{cluster_bytes / ir['stored_bytes']:.0f}×"


def section(rows, db_bytes, cluster_bytes, m, tbl):
    cmds = "\n".join(f"- {r['tool']}: `{r.get('backup_cmd', '?')}`, then "
                     f"`{r.get('restore_cmd', '?')}`" for r in rows if not r.get("failed"))
    cmds = cmds.replace(SCRATCH_DIR[0], "$SCRATCH") if SCRATCH_DIR else cmds
    return f"""{SECTION}

Generated by `bench/backup.sh {SCALE}` on {m['date']}; re-running it rewrites
this section only (`bench/ship.sh` keeps it).

One fresh PostgreSQL 15 primary on 127.0.0.1 with `pgbench -i -s {SCALE}`:
`pg_database_size('postgres')` = {db_bytes / 2**20:.0f} MiB (all databases:
{cluster_bytes / 2**20:.0f} MiB). The primary is idle while the tools run one after
the other; `instarec ship` (→ file://) and pgBackRest's `archive-push --archive-async`
(archive_command) both run the whole time, since instarec's and pgBackRest's
backups each count only once the WAL they need is archived. Everything is on the
same local disk; the database is in the page cache for every backup.
MB/s = `pg_database_size('postgres')` ÷ wall time (10^6 bytes).

{tbl}

**Target instarec ≥ pgBackRest:**

{target_line(rows, db_bytes)}

{start_line(rows)}

What each column covers:
- **backup**: the command's wall time, from an immediate ("fast") checkpoint to
  the backup being complete; for instarec and pgBackRest that includes waiting
  until the WAL up to the backup's end is archived. pg_basebackup runs with
  `-X none` (no WAL in the backup, like the other two: they rely on the archive).
- **restore** = the restore command + an fsync of every restored file
  (`sync FILE…`, timed apart, shown as "+ n sync"). pgBackRest and instarec fsync
  every file and directory they restore themselves, tar does not. Timing the
  fsync for all makes the rows comparable (for pgBackRest and instarec it finds
  little left to flush).
  instarec restore = download, decompress, extract and verify against the backup
  manifest, then write the recovery configuration (no `--start`). pgBackRest restore
  checks each file's checksum. pg_basebackup restore = `tar -x` only; a
  `pg_verifybackup -n` of the extracted directory (the manifest check) took
  {', '.join(f"{r['verify_s']:.1f} s ({r['tool']})" for r in rows if 'verify_s' in r)} more.
- **stored**: bytes of the backup as stored (the tar files; pgBackRest's
  `repo/backup`; instarec's `backups/` prefix in the archive), WAL not included.
- Compression: pgbench's tables are mostly padding and compress about
  {compress_ratio(rows, cluster_bytes)} with zstd-{ZSTD_LEVEL}, so these numbers weigh reading, writing and
  per-file work far more than compression; real data compresses less and costs
  more CPU. instarec uses zstd level {ZSTD_LEVEL} (its default); pgBackRest
  `--compress-type=zst --compress-level={ZSTD_LEVEL}`; pg_basebackup
  `--compress=client-zstd:{ZSTD_LEVEL}` (compressed where the bytes arrive, as instarec does)
  and once uncompressed. Parallelism: instarec `--parallel {PARALLEL}` (the default of
  both `backup` and `restore`) and pgBackRest `--process-max={PARALLEL}`; pg_basebackup
  and tar are single-threaded.

Commands (one run each; `$SCRATCH` is the run's temporary directory):
{cmds}

### Machine

- {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']:.1f} GiB RAM, Linux {m['kernel']}
- {m['pg']}; {m['pgbackrest']}
- The machine is **shared and noisy**: other engineers' builds and test suites
  ran at the same time, on 2 cores. Each number is from a single run; re-run
  before trusting a small difference.

### Reproduce

```
sudo bench/backup.sh [pgbench-scale]      # default 70 (~1 GiB); ~1 min after the build
BENCH_SKIP_BUILD=1 bench/backup.sh        # reuse target/release/instarec
BENCH_KEEP=1 bench/backup.sh              # keep the scratch dirs (logs) in /tmp
```

<details><summary>Raw numbers of this run (JSON)</summary>

```json
{json.dumps({'db_bytes': db_bytes, 'cluster_bytes': cluster_bytes, 'rows': rows}, indent=1, default=str)}
```
</details>
"""


def write_section(text):
    """Replaces this section in docs/benchmarks.md (up to the next "## "), or
    appends it; every other section stays as it is."""
    try:
        with open(DOC) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", doc, count=1)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    with open(DOC, "w") as f:
        f.write(doc.rstrip("\n") + "\n")


# ---------------------------------------------------------------- main

def main():
    if os.geteuid() != 0:
        sys.exit("run as root (through bench/backup.sh)")
    if not os.access(INSTAREC, os.X_OK):
        sys.exit(f"{INSTAREC} is missing: run cargo build --release (bench/backup.sh does)")
    ship.become_subreaper()
    atexit.register(kill_adopted)  # runs before PROCS.cleanup (atexit is LIFO)
    m = ship.machine()

    scratch = PROCS.tempdir("instarec-bench-backup-", "postgres")
    SCRATCH_DIR.append(scratch)
    pg_scratch = PROCS.tempdir("instarec-bench-backup-pg-", "postgres")
    conf = os.path.join(scratch, "pgbackrest.conf")
    with open(conf, "w") as f:
        f.write(f"[global]\nrepo1-path={scratch}/repo\nspool-path={scratch}/spool\n"
                f"lock-path={scratch}/lock\nlog-path={scratch}/log\n"
                "log-level-console=warn\nlog-level-file=info\n"
                "archive-async=y\nrepo1-retention-full=9\n\n"
                f"[bench]\npg1-path={pg_scratch}/data\npg1-socket-path={pg_scratch}\n")
    os.chmod(conf, 0o644)
    os.makedirs(os.path.join(scratch, "log"))
    os.chown(os.path.join(scratch, "log"), *ship.pwd.getpwnam("postgres")[2:4])
    # pgbench -i's ~1 GiB of WAL is not archived (archive_command = true
    # while it runs): no backup needs it, and it would only delay the first one.
    pg = ship.Postgres("backup", {"archive_mode": "on", "archive_command": "/bin/true",
                                  "max_wal_size": "4GB"}, scratch=pg_scratch)
    with open(conf, "a") as f:
        f.write(f"pg1-port={pg.port}\n")

    log(f"pgbench -i -s {SCALE}")
    t0 = time.monotonic()
    run(pg.client("pgbench") + ["-i", "-s", str(SCALE), "-q", "postgres"])
    log(f"pgbench -i took {time.monotonic() - t0:.0f} s")
    pg.sql("CHECKPOINT")
    db_bytes = int(pg.sql("SELECT pg_database_size('postgres')"))
    cluster_bytes = int(pg.sql("SELECT sum(pg_database_size(oid)) FROM pg_database"))
    log(f"database size {db_bytes / 2**20:.0f} MiB, all databases {cluster_bytes / 2**20:.0f} MiB")

    pg.sql(f"ALTER SYSTEM SET archive_command = "
           f"'pgbackrest --config={conf} --stanza=bench archive-push %p'")
    pg.sql("SELECT pg_reload_conf()")
    run(as_postgres(["pgbackrest", f"--config={conf}", "--stanza=bench", "stanza-create"]))

    config = os.path.join(scratch, "instarec.toml")
    archive = os.path.join(scratch, "archive")
    with open(config, "w") as f:
        f.write(f'[archive]\nurl = "file://{archive}"\n\n'
                f'[primary]\nengine = "postgres"\nurl = "{pg.url()}"\n')
    os.chmod(config, 0o644)
    ship_log = os.path.join(scratch, "instarec-ship.log")
    shipper = PROCS.spawn([INSTAREC, "--config", config, "ship"], ship_log)
    try:
        wait_instarec_caught_up(pg)
    except RuntimeError as e:
        raise RuntimeError(f"{e}; ship log:\n{tail(ship_log)}") from None

    plan = [
        ("pg_basebackup (uncompressed)", lambda: bench_pg_basebackup(pg, scratch, False)),
        ("pg_basebackup client-zstd", lambda: bench_pg_basebackup(pg, scratch, True)),
        ("pgBackRest", lambda: bench_pgbackrest(pg, scratch, conf)),
        ("instarec", lambda: bench_instarec(pg, scratch, config)),
    ]
    rows = []
    for name, fn in plan:
        wait_archived(pg)
        log(f"running {name}")
        try:
            rows.append(fn())
            log(f"{name}: {json.dumps(rows[-1], default=str)[:600]}")
        except Exception as e:  # one broken tool must not hide the others
            log(f"{name} FAILED: {e}")
            rows.append({"tool": name, "failed": True, "error": str(e).splitlines()[0][:200],
                         "detail": str(e)})
        if shipper.poll() is not None:
            log(f"instarec ship exited {shipper.returncode}; log:\n{tail(ship_log)}")

    code = PROCS.stop(shipper, signal.SIGTERM, 30)
    if code != 0:
        log(f"instarec ship exited {code} on SIGTERM; log tail:\n{tail(ship_log)}")
    pg.stop()

    tbl = table(rows, db_bytes)
    print(tbl)
    print()
    print(target_line(rows, db_bytes))
    print(start_line(rows))
    write_section(section(rows, db_bytes, cluster_bytes, m, tbl))
    log(f"wrote the '{SECTION[3:]}' section of {DOC}")


if __name__ == "__main__":
    main()

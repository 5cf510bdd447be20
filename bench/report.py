"""docs/benchmarks.md from one run of bench/ship.py: the table, the machine,
how to read it, the targets with a verdict computed from the numbers, and
the object-store request counts. Everything here is regenerated on each run,
so the prose can never disagree with the numbers next to it."""

import json
import re


def ok(flag):
    return "**met**" if flag else "**NOT met**"


def ratio(a, b, spec=".2f"):
    if a is None or b is None or b == 0:
        return "—"
    return format(a / b, spec) + "×"


def num(v, spec=".0f"):
    return "—" if v is None else format(v, spec)


def requests_table(counts, seconds):
    if not counts:
        return "(none)\n"
    lines = ["| request | count | per second | per day at this rate |", "|---|---|---|---|"]
    for k in sorted(counts):
        per_s = counts[k] / seconds
        lines.append(f"| {k} | {counts[k]} | {per_s:.2f} | {per_s * 86400:,.0f} |")
    return "\n".join(lines) + "\n"


def targets(rows, flush_ms):
    out = []
    budget = 2 * flush_ms
    for key in ("instarec_file", "instarec_s3"):
        r = rows.get(key, {})
        if r.get("failed"):
            out.append(f"- Lag p99 ≤ 2 × flush_interval ({budget} ms), {r['label']}: **NOT met** (the run failed).")
            continue
        out.append(f"- Lag p99 ≤ 2 × flush_interval ({budget} ms), {r['label']}: "
                   f"{ok(r['p99'] is not None and r['p99'] <= budget and not r['never'])} "
                   f"(p99 {num(r['p99'])} ms, max {num(r['max'])} ms"
                   f"{', ' + str(r['never']) + ' samples never archived' if r['never'] else ''}).")
    for key in ("instarec_file", "instarec_s3"):
        r = rows.get(key, {})
        if r.get("failed"):
            continue
        kept_up = r["catch_up_ms"] is not None and r["catch_up_ms"] <= budget and not r["never"]
        out.append(f"- Never falling behind the primary's WAL rate, {r['label']}: {ok(kept_up)} "
                   f"({r['wal_mb_s']:.2f} MB/s of WAL; the archive reached the primary's final "
                   f"flush LSN {num(r['catch_up_ms'])} ms after the load stopped"
                   f"{'' if r['catch_up_ms'] is not None else ' — not within 30 s'}; "
                   f"lag max {num(r['max'])} ms, so the backlog never grew).")
    for key in ("instarec_file", "instarec_s3", "instarec_sync"):
        r = rows.get(key, {})
        if r.get("failed") or r.get("rss_mib") is None:
            continue
        life = r.get("lifetime_rss_mib")
        out.append(f"- ship RSS < 64 MiB, {r['label']}: during the load {ok(r['rss_mib'] < 64)} "
                   f"({r['rss_mib']:.1f} MiB peak); over the process's life, including the "
                   f"start-up catch-up, {ok(life is not None and life < 64)} "
                   f"({num(life, '.1f')} MiB VmHWM).")
    s, n = rows.get("instarec_sync", {}), rows.get("native_sync", {})
    if s.get("tps") and n.get("tps"):
        out.append(f"- Synchronous TPS ≥ 50 % of a native synchronous standby's (file://): "
                   f"{ok(s['tps'] >= 0.5 * n['tps'])} ({s['tps']:.0f} vs {n['tps']:.0f} TPS "
                   f"= {100 * s['tps'] / n['tps']:.0f} %).")
    else:
        out.append("- Synchronous TPS ≥ 50 % of a native synchronous standby's: **NOT met** "
                   "(a synchronous run failed; see the table).")
    return "\n".join(out)


def anomalies(rows):
    out = []
    for key, r in rows.items():
        if r.get("failed"):
            out.append(f"- {r['label']}")
        if r.get("never"):
            out.append(f"- {r['label']}: {r['never']} samples' WAL was not archived within 30 s "
                       "after the load; their lag is not in the percentiles.")
        if r.get("exit_code") not in (None, 0):
            out.append(f"- {r['label']}: `instarec ship` exited {r['exit_code']} on SIGTERM "
                       "(expected 0).")
    return "\n".join(out) if out else "None: every configuration ran, every sampled position was archived, and every `instarec ship` exited 0 on SIGTERM."


def cadence_note(part_puts, secs, flush_ms):
    """Below the WAL-rate ÷ flush_bytes regime, parts should come once per
    flush_interval; say so when the measured cadence is much slower."""
    if not part_puts:
        return ""
    period = secs / part_puts * 1000
    if period <= 1.25 * flush_ms:
        return f"That is one part every {period:.0f} ms, as configured."
    return (f"That is one part every {period:.0f} ms on average, not every {flush_ms} ms: "
            f"the shipper skipped flush ticks (see the lag p50 of about {flush_ms} ms "
            "in the table, where one flush per interval would give about half that). "
            "The object-store bill is below the bound above, but so is the freshness.")


def write_doc(path, table, rows, m, duration, flush_ms):
    f, s3 = rows.get("instarec_file", {}), rows.get("instarec_s3", {})
    rw, rws = rows.get("receivewal", {}), rows.get("receivewal_sync", {})
    sync, native = rows.get("instarec_sync", {}), rows.get("native_sync", {})

    def vs(r, base):
        return (f"| {r.get('label', '?')} vs {base.get('label', '?')} "
                f"| {ratio(r.get('tps'), base.get('tps'))} "
                f"| {ratio(r.get('p99'), base.get('p99'))} "
                f"| {ratio(r.get('cpu_s_per_s'), base.get('cpu_s_per_s'))} "
                f"| {ratio(r.get('rss_mib'), base.get('rss_mib'))} |")

    load = s3.get("requests_load") or {}
    secs = s3.get("elapsed") or duration
    part_puts = load.get("PUT WAL part", 0)
    heads = load.get("HEAD epoch (fence check)", 0)
    idle = s3.get("requests_idle")
    objects = s3.get("objects_left") or {}

    doc = f"""# Benchmarks

Generated by `bench/ship.sh {duration}` on {m['date']}. Re-running the script
rewrites this file; the prose around the numbers is generated with them.

## WAL shipping

Every configuration gets a **fresh** PostgreSQL 15 primary on 127.0.0.1
(`initdb`, fsync on, `synchronous_commit = on`, `wal_keep_size = 64MB`,
`max_wal_size = 1GB`, `checkpoint_timeout = 5min`), then `pgbench -i -s 10`,
then the same load while the shipper under test runs:
`pgbench -n -c 4 -j 2 -T {duration}`.

{table}

### Machine

- {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']:.1f} GiB RAM, Linux {m['kernel']}
- {m['pg']}; {m['pgbackrest']}
- The machine is **shared and noisy**: other engineers' builds and test suites
  ran at the same time, on 2 cores. Absolute numbers (TPS above all) swing
  run to run; compare rows of one run, and re-run before trusting a small
  difference. The primary, the shipper, moto and pgbench share the 2 cores.

### Reproduce

```
sudo bench/ship.sh [duration-seconds]     # default 30; the whole run takes ~{(duration + 30) * 7 // 60 + 1} min
BENCH_SKIP_BUILD=1 bench/ship.sh 10      # reuse target/release/instarec
BENCH_KEEP=1 bench/ship.sh               # keep the scratch dirs (logs) in /tmp
```

It needs PostgreSQL 15 (`/usr/lib/postgresql/15/bin`), `pgbackrest`,
`moto_server` and python3 with boto3. Everything listens on 127.0.0.1 and every
process it starts is killed on exit.

### How to read the columns

- **primary TPS**: what pgbench reports (without initial connection time).
- **WAL MB/s**: `pg_current_wal_lsn()` after the load minus before, divided by
  the load's duration (10^6 bytes).
- **lag p50/p99/max**: every 50 ms the sampler reads the primary's
  `pg_current_wal_flush_lsn()` and the archived position in one query. The lag
  of a sample taken at t is the time of the first later sample whose archived
  position reached that flush LSN, minus t. The resolution is therefore ~50 ms
  (one sample interval plus a ~4 ms query). Only samples taken during the load
  count; the sampler goes on after it so the last ones can be matched.
  The archived position is:
  - instarec: `flush_lsn` in `pg_stat_replication` for `application_name = 'instarec'`.
    instarec acknowledges flush only once the bytes are durable in the archive.
  - pg_receivewal: its `flush_lsn` in `pg_stat_replication`. Without
    `--synchronous`, pg_receivewal fsyncs a segment only when it closes it, so
    its flush position moves **a segment at a time**, and it reports it only
    in status messages; `-s 1` (one second, the minimum) is used instead of
    the default 10 s. With `--synchronous` it fsyncs and reports after every
    write: that row is the like-for-like comparison with instarec.
  - pgBackRest: the end of the segment named by `pg_stat_archiver.last_archived_wal`.
    archive_command only ever sees complete segments, so its lag is
    **segment granularity**: a 16 MiB segment must fill first (at the WAL rate
    above that takes 16 MiB ÷ rate). After the load the script runs
    `pg_switch_wal()` so the last, partial segment is archived too; its
    samples' lag includes that wait.
  - native synchronous standby: the standby's `flush_lsn` (`application_name = 'walreceiver'`).
- **catch-up ms**: after pgbench exits, how long until the archived position
  reached the last flush LSN sampled during the load. A shipper that keeps up
  catches up within about one flush; one that fell behind needs seconds.
- **shipper CPU s/s**: user+sys CPU seconds the shipper used during the load
  (`/proc/<pid>/stat`), per second of load; 1.0 is one full core. For
  pgBackRest: the archive_command processes (from the archiver's `cutime`+`cstime`)
  plus the detached async process, which the script adopts as a child
  subreaper and reaps to read its exact usage.
- **shipper peak RSS (load / lifetime)**: `VmHWM` from `/proc/<pid>/status`.
  "load" is the peak during the pgbench load: the script resets the
  high-water mark (`echo 5 > /proc/<pid>/clear_refs`) once the shipper has
  caught up. "lifetime" also covers start-up, when the shipper catches up
  with the WAL `pgbench -i` wrote since the last checkpoint (about 8
  segments; a new slot starts at the last checkpoint's redo point). For
  pgBackRest: the largest of its processes during the load.
- instarec compresses with zstd level 3 (the default); pgBackRest is set to
  `compress-type=zst`, `compress-level=3` to match; pg_receivewal writes raw
  16 MiB segments.

### Ratios against pg_receivewal

A ratio above 1× means more TPS, more lag, more CPU or more memory than the
baseline. TPS ratios between asynchronous shippers mostly measure the shared
machine's noise: none of them makes a commit wait.

| comparison | TPS | lag p99 | CPU | peak RSS |
|---|---|---|---|---|
{vs(f, rw)}
{vs(f, rws)}
{vs(s3, rws)}

### Targets

{targets(rows, flush_ms)}

Synchronous mode: `instarec ship` with `synchronous = true` and
`synchronous_standby_names = 'instarec'` made the primary do
{num(sync.get('tps'))} TPS; a native streaming standby made synchronous with
`synchronous_standby_names = 'walreceiver'` allowed {num(native.get('tps'))} TPS,
so instarec reaches {ratio(sync.get('tps'), native.get('tps'))} of native. Both
wait for an fsync per commit group; instarec's also goes through zstd and
a file create + rename in the archive.

### Anomalies in this run

{anomalies(rows)}

## Object-store requests per day

`instarec ship` uploads the in-progress segment as a part at most every
`flush_interval` while WAL arrives, checking before each upload that no newer
epoch fenced it out (one HEAD of the next epoch's key). So, on a busy primary:

| flush_interval | part PUTs | fence-check HEADs | plus |
|---|---|---|---|
| 200 ms (default) | ≤ 5/s = 432,000/day | ≤ 5/s = 432,000/day | 1 PUT per completed 16 MiB segment; ≤ 1 position-record PUT + DELETE per second (≤ 86,400 each/day); a DELETE per superseded part |
| 1 s | ≤ 1/s = 86,400/day | ≤ 1/s = 86,400/day | same |

An idle primary causes none: no WAL arrives, so nothing is uploaded, no fence
check is made and the position record is not rewritten.

On S3, object_store issues every delete as a batch `POST /bucket?delete`
with one key, so the DELETEs above show up as POSTs in the counts below.

When more than `flush_bytes` (default 4 MiB) arrives within one
`flush_interval`, a part is cut as soon as `flush_bytes` is buffered, so above
4 MiB ÷ 200 ms = 20 MiB/s of WAL the part rate follows the WAL rate instead
(about WAL rate ÷ 4 MiB per second). One upload is in flight at a time, so the
rate is also bounded by the store's PUT latency. `synchronous = true`
uploads as soon as anything arrives (group commit), so its request rate
follows the commit rate and is not bounded by `flush_interval`.

### Measured

The s3:// run above ({secs:.1f} s of load at {num(s3.get('wal_mb_s'), '.2f')} MB/s of WAL),
counted from moto's request log (one line per request):

{requests_table(load, secs)}
Part PUTs: {part_puts} in {secs:.1f} s = {part_puts / secs:.2f}/s against the bound of
{1000 / flush_ms:.0f}/s; fence-check HEADs: {heads} = {heads / secs:.2f}/s.
{cadence_note(part_puts, secs, flush_ms)}

Objects left in the bucket after the run (superseded parts are deleted once
their segment is complete): {', '.join(f'{k}: {v}' for k, v in objects.items()) or '—'}.

Idle primary: in {10} s with no load after the archive caught up, the primary
wrote {s3.get('idle_wal', '—')} bytes of WAL (a primary is not perfectly quiet right
after a load: the background writer logs a running-transactions record about
every 15 s while there was activity) and instarec made these requests:

{requests_table(idle, 10) if idle is not None else '—'}

### Tuning

- `flush_interval` (default 200ms): the lag you accept on a busy primary and
  the request bill. Lag p99 is about one interval plus the PUT latency; requests
  are ≤ 2 per interval (PUT + HEAD). 1s cuts requests five-fold at about 1 s of
  exposure.
- `flush_bytes` (default 4MiB): caps how much WAL one part holds, so memory
  and a part's upload time stay bounded under heavy load. Larger values mean
  fewer, larger PUTs at high WAL rates; smaller values mean smaller objects
  and more requests.
- `synchronous = true` trades request count and TPS for zero loss: a commit
  returns only once its WAL is durable in the archive.

<details><summary>Raw numbers of this run (JSON)</summary>

```json
{json.dumps(rows, indent=1, default=str)}
```
</details>
"""
    doc = doc.rstrip("\n") + "\n" + foreign_sections(path, doc)
    with open(path, "w") as out:
        out.write(doc)


def foreign_sections(path, doc):
    """The "## " sections of the existing file that this run does not write
    (other benchmarks' results, e.g. bench/backup.sh's), kept verbatim."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        return ""
    ours = set(re.findall(r"^## .*$", doc, re.M))
    kept = [part for part in re.split(r"^(?=## )", old, flags=re.M)
            if part.startswith("## ") and part.splitlines()[0] not in ours]
    return "".join("\n" + part.rstrip("\n") + "\n" for part in kept)

//! The archive_command / restore_command contract against a real
//! PostgreSQL 15: `instarec wal-push %p` as archive_command, and
//! `instarec wal-fetch %f %p` with the exit codes restore_command relies on
//! (0 fetched, 1 absent, 126 anything else so recovery stops).

mod support;

use bytes::Bytes;
use instarec::archive::{object::payload_checksum, Archive, ArchiveSettings, ClusterTag};
use instarec::engine::Engine;
use instarec::engines::postgres::layout;
use instarec_postgres::{WalFileKind, WalSegmentSize};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{PgOptions, Postgres};

const INSTAREC: &str = env!("CARGO_BIN_EXE_instarec");

fn write_config(dir: &Path, archive_url: &str) -> PathBuf {
    let path = dir.join("instarec.toml");
    std::fs::write(&path, format!("[archive]\nurl = \"{archive_url}\"\n")).unwrap();
    path
}

/// Runs the binary with a clean INSTAREC_* environment.
fn instarec(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(INSTAREC);
    for (k, _) in std::env::vars() {
        if k.starts_with("INSTAREC_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("running instarec")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn segment_size(pg: &Postgres) -> WalSegmentSize {
    let bytes: u64 = pg
        .psql("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
        .parse()
        .unwrap();
    WalSegmentSize::new(bytes).unwrap()
}

/// Writes some WAL and switches segments; returns the finished segment's name.
fn finish_a_segment(pg: &Postgres, table: &str) -> String {
    pg.psql(&format!(
        "CREATE TABLE {table} AS SELECT g AS x, md5(g::text) AS y FROM generate_series(1, 20000) g"
    ));
    pg.psql("SELECT pg_walfile_name(pg_switch_wal())")
}

fn pg_wal_file(pg: &Postgres, name: &str) -> Vec<u8> {
    std::fs::read(pg.data_dir().join("pg_wal").join(name))
        .unwrap_or_else(|e| panic!("reading pg_wal/{name}: {e}"))
}

/// Waits until PostgreSQL marks `name` archived (archive_status/<name>.done).
fn wait_archived(pg: &Postgres, name: &str) {
    let done = pg
        .data_dir()
        .join("pg_wal/archive_status")
        .join(format!("{name}.done"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "{name} not archived in 60s; pg_stat_archiver: {}\nserver log:\n{}",
            pg.psql("SELECT archived_count, failed_count, last_failed_wal FROM pg_stat_archiver"),
            pg.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn archived_count(pg: &Postgres) -> u64 {
    pg.psql("SELECT archived_count FROM pg_stat_archiver")
        .parse()
        .unwrap()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Flips one byte in the middle of a stored object's file.
fn flip_byte_in_stored_object(archive_dir: &Path, key: &str) {
    let file = archive_dir.join(key);
    let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
}

#[test]
fn archive_command_archives_segments_and_backup_files_that_wal_fetch_returns_identically() {
    // archive_command runs as the server's user: config and archive live in its scratch dir.
    let scratch = support::postgres::new_scratch_dir();
    let archive_dir = scratch.path().join("archive");
    let config = write_config(scratch.path(), &format!("file://{}", archive_dir.display()));
    let pg = Postgres::start_with(PgOptions {
        extra_conf: vec![
            ("archive_mode".into(), "on".into()),
            (
                "archive_command".into(),
                format!("{INSTAREC} --config {} wal-push %p", config.display()),
            ),
            ("wal_keep_size".into(), "1GB".into()),
        ],
        ..Default::default()
    });
    let before = archived_count(&pg);
    let name = finish_a_segment(&pg, "t1");
    wait_archived(&pg, &name);
    assert!(archived_count(&pg) > before);

    let restore = tempfile::tempdir().unwrap();
    let dest = restore.path().join("RECOVERYXLOG");
    let out = instarec(&config, &["wal-fetch", &name, dest.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        std::fs::read(&dest).unwrap() == pg_wal_file(&pg, &name),
        "fetched {name} differs from pg_wal/{name}"
    );

    // pg_backup_stop writes a .backup history file, archived like a segment.
    pg.psql("SELECT pg_backup_start('x'); SELECT pg_backup_stop();");
    let backup = dir_entries(&pg.data_dir().join("pg_wal"))
        .into_iter()
        .find(|n| n.ends_with(".backup"))
        .expect("a .backup file in pg_wal");
    wait_archived(&pg, &backup);
    let dest = restore.path().join("RECOVERYBACKUP");
    let out = instarec(&config, &["wal-fetch", &backup, dest.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let label = std::fs::read(&dest).unwrap();
    assert_eq!(
        label,
        std::fs::read(pg.data_dir().join("pg_wal").join(&backup)).unwrap()
    );
    assert!(String::from_utf8_lossy(&label).contains("LABEL: x"));

    // A timeline history file round-trips under its own name.
    let history_dir = tempfile::tempdir().unwrap();
    let history = history_dir.path().join("00000002.history");
    std::fs::write(&history, "1\t0/3000000\tno recovery target specified\n").unwrap();
    let out = instarec(&config, &["wal-push", history.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let dest = restore.path().join("RECOVERYHISTORY");
    let out = instarec(
        &config,
        &["wal-fetch", "00000002.history", dest.to_str().unwrap()],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&history).unwrap()
    );

    // What archive_command wrote passes `archive verify`, WAL checks included.
    let out = instarec(&config, &["archive", "verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("segments of 16MB"), "{summary}");
    assert!(!summary.contains("WAL: 0 segments"), "{summary}");
}

struct Plain {
    pg: Postgres,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Plain {
    /// A server without archiving, and a file:// archive the test owns.
    fn start() -> Plain {
        let pg = Postgres::start_with(PgOptions {
            extra_conf: vec![("wal_keep_size".into(), "1GB".into())],
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            &format!("file://{}", dir.path().join("archive").display()),
        );
        Plain { pg, dir, config }
    }

    fn archive_dir(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    /// A copy of pg_wal/<name> in its own dir, as PostgreSQL hands it over.
    fn copy_segment(&self, name: &str, subdir: &str) -> PathBuf {
        let dir = self.dir.path().join(subdir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, pg_wal_file(&self.pg, name)).unwrap();
        path
    }
}

#[test]
fn wal_push_twice_succeeds_and_different_content_exits_3_naming_both_checksums() {
    let p = Plain::start();
    let name = finish_a_segment(&p.pg, "t1");
    let original = p.copy_segment(&name, "a");
    for attempt in 1..=2 {
        let out = instarec(&p.config, &["wal-push", original.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "push {attempt}: {}", text(&out));
    }

    let mut changed = std::fs::read(&original).unwrap();
    changed[1000] ^= 0x01;
    let other = p.dir.path().join("b").join(&name);
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, &changed).unwrap();
    let out = instarec(&p.config, &["wal-push", other.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let existing = hex::encode(payload_checksum(&std::fs::read(&original).unwrap(), None));
    let new = hex::encode(payload_checksum(&changed, None));
    assert!(
        stderr.contains(&existing) && stderr.contains(&new),
        "stderr names neither or one checksum ({existing}, {new}):\n{stderr}"
    );
    // The archived object is still the original.
    let fetched = p.dir.path().join("fetched");
    let out = instarec(&p.config, &["wal-fetch", &name, fetched.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(std::fs::read(&fetched).unwrap() == std::fs::read(&original).unwrap());
}

#[test]
fn wal_fetch_exit_codes_tell_absent_from_broken_and_leave_nothing_behind() {
    let p = Plain::start();
    let size = segment_size(&p.pg);
    let name = finish_a_segment(&p.pg, "t1");
    let segment = p.copy_segment(&name, "a");
    let out = instarec(&p.config, &["wal-push", segment.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let restore = tempfile::tempdir().unwrap();
    let dest = restore.path().join("RECOVERYXLOG");
    let fetch = |config: &Path, args: &[&str]| {
        let mut all = vec!["wal-fetch"];
        all.extend_from_slice(args);
        all.push(dest.to_str().unwrap());
        instarec(config, &all)
    };

    // Absent: exit 1, PostgreSQL's "no such file".
    let out = fetch(&p.config, &["000000010000000000000099"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(dir_entries(restore.path()).is_empty());

    // An archive that cannot be opened: 126, recovery must stop, not end.
    let bad = p.dir.path().join("bad.toml");
    std::fs::write(&bad, "[archive]\nurl = \"ftp://nowhere/x\"\n").unwrap();
    let out = fetch(&bad, &[&name]);
    assert_eq!(code(&out), 126, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp://nowhere/x"));
    assert!(dir_entries(restore.path()).is_empty());

    // The in-progress segment, held only as parts: absent unless --partial.
    // Write first: at a segment boundary pg_walfile_name names the previous segment.
    p.pg.psql("CREATE TABLE t2 AS SELECT g FROM generate_series(1, 1000) g");
    let current = p.pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    assert_ne!(current, name);
    let live = pg_wal_file(&p.pg, &current);
    let Ok(WalFileKind::Segment { tli, seg }) = WalFileKind::parse(&current, size) else {
        panic!("{current} is not a segment name");
    };
    let system_id =
        p.pg.psql("SELECT system_identifier FROM pg_control_system()");
    let archive = Archive::open(&ArchiveSettings::new(format!(
        "file://{}",
        p.archive_dir().display()
    )))
    .unwrap()
    .bind_cluster(ClusterTag::of(Engine::Postgres, &system_id));
    runtime().block_on(async {
        for (start, end) in [(0u64, 0x2000u64), (0x2000, 0x3000)] {
            archive
                .put(
                    &layout::part_key(tli, seg, size, start, end),
                    Bytes::copy_from_slice(&live[start as usize..end as usize]),
                )
                .await
                .unwrap();
        }
    });
    let out = fetch(&p.config, &[&current]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(dir_entries(restore.path()).is_empty());
    let out = fetch(&p.config, &["--partial", &current]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let served = std::fs::read(&dest).unwrap();
    assert_eq!(served.len() as u64, size.bytes());
    assert!(served[..0x3000] == live[..0x3000], "parts' bytes first");
    assert!(served[0x3000..].iter().all(|b| *b == 0), "zero padded");
    std::fs::remove_file(&dest).unwrap();

    // A corrupted object: 126, and no file or temp file at the destination.
    let key = layout::key_for_file_name(&name, size).unwrap();
    flip_byte_in_stored_object(&p.archive_dir(), &key);
    let out = fetch(&p.config, &[&name]);
    assert_eq!(code(&out), 126, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&key),
        "{}",
        text(&out)
    );
    assert!(
        dir_entries(restore.path()).is_empty(),
        "{:?}",
        dir_entries(restore.path())
    );
    // ...and `archive verify` reports it with exit 3.
    let out = instarec(&p.config, &["archive", "verify"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("FAULT {key}")));
}

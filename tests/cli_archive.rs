//! The `instarec` binary's archive and config commands, run as a user runs
//! them: exit codes, what stdout/stderr name, and secrets that never print.

use bytes::Bytes;
use instarec::archive::{Archive, ArchiveSettings, ClusterTag};
use instarec::engine::Engine;
use instarec::engines::postgres::layout;
use instarec_postgres::{SegmentNo, TimelineId, WalSegmentSize};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYSTEM_ID: &str = "7263000000000000001";

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
}

impl Setup {
    /// A config whose archive is a fresh file:// dir, plus `extra` TOML.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/archive", dir.path().display());
        std::fs::create_dir_all(dir.path().join("archive")).unwrap();
        let config = dir.path().join("instarec.toml");
        std::fs::write(&config, format!("[archive]\nurl = \"{url}\"\n{extra}")).unwrap();
        Setup { dir, config, url }
    }

    fn archive_dir(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with_env(Some(&self.config), args, &[])
    }

    fn init(&self, system_id: &str) {
        let out = self.run(&[
            "archive",
            "init",
            "--engine",
            "postgres",
            "--system-id",
            system_id,
        ]);
        assert_eq!(code(&out), 0, "archive init: {}", text(&out));
    }

    /// The archive as `archive init` bound it, for writing test objects.
    fn bound_archive(&self) -> Archive {
        Archive::open(&ArchiveSettings::new(&self.url))
            .unwrap()
            .bind_cluster(ClusterTag::of(Engine::Postgres, SYSTEM_ID))
    }
}

/// Runs the binary with a clean INSTAREC_* environment plus `env`.
fn run_with_env(config: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    for (k, _) in std::env::vars() {
        if k.starts_with("INSTAREC_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args).output().expect("running instarec")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(out), stderr(out))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn put(archive: &Archive, key: &str, payload: Vec<u8>) {
    runtime()
        .block_on(archive.put(key, Bytes::from(payload)))
        .unwrap();
}

/// Some payload that does not compress away, so a flipped byte lands in it.
fn payload(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn init_then_verify_is_clean() {
    let s = Setup::new("");
    s.init(SYSTEM_ID);
    put(&s.bound_archive(), "backups/a/data", payload(100_000));
    let out = s.run(&["archive", "verify"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("0 faults"), "{}", text(&out));
    let json = s.run(&["archive", "verify", "--json"]);
    assert_eq!(code(&json), 0, "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["faults"].as_array().unwrap().len(), 0, "{v}");
    assert!(v["objects"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn a_flipped_byte_in_one_object_exits_3_and_names_the_key() {
    let s = Setup::new("");
    s.init(SYSTEM_ID);
    let archive = s.bound_archive();
    put(&archive, "backups/a/good", payload(50_000));
    put(&archive, "backups/a/flipped", payload(50_000));
    let file = s.archive_dir().join("backups/a/flipped");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();

    let out = s.run(&["archive", "verify"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("FAULT backups/a/flipped"),
        "{}",
        text(&out)
    );
    assert!(!printed.contains("FAULT backups/a/good"), "{}", text(&out));
}

#[test]
fn a_truncated_object_exits_3_and_names_the_key() {
    let s = Setup::new("");
    s.init(SYSTEM_ID);
    put(&s.bound_archive(), "backups/a/cut", payload(50_000));
    let file = s.archive_dir().join("backups/a/cut");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let out = s.run(&["archive", "verify", "--json"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faults = v["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{v}");
    assert_eq!(faults[0]["key"], "backups/a/cut", "{v}");
    assert!(
        faults[0]["error"].as_str().unwrap().contains("truncated"),
        "{v}"
    );
}

/// A 1 MiB segment whose first page carries a PostgreSQL 15 long header.
fn segment(size: WalSegmentSize, seg: u64, system_id: u64) -> Vec<u8> {
    let mut data = vec![0u8; size.bytes() as usize];
    data[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    data[2..4].copy_from_slice(&2u16.to_le_bytes()); // XLP_LONG_HEADER
    data[4..8].copy_from_slice(&1u32.to_le_bytes());
    data[8..16].copy_from_slice(&(seg * size.bytes()).to_le_bytes());
    data[24..32].copy_from_slice(&system_id.to_le_bytes());
    data[32..36].copy_from_slice(&(size.bytes() as u32).to_le_bytes());
    data[36..40].copy_from_slice(&8192u32.to_le_bytes());
    data
}

#[test]
fn verify_names_a_missing_segment_and_a_segment_of_another_system() {
    let s = Setup::new("");
    s.init(SYSTEM_ID);
    let archive = s.bound_archive();
    let size = WalSegmentSize::new(1 << 20).unwrap();
    let ours: u64 = SYSTEM_ID.parse().unwrap();
    let key = |n| layout::segment_key(TimelineId(1), SegmentNo(n), size);
    for n in [1, 2, 4] {
        put(&archive, &key(n), segment(size, n, ours));
    }
    // Stamped with our cluster tag, so only the page header gives it away.
    put(&archive, &key(5), segment(size, 5, 6999));
    // In-progress parts of the segment after the last complete one are fine.
    let first_part = segment(size, 6, ours)[..0x2000].to_vec();
    put(
        &archive,
        &layout::part_key(TimelineId(1), SegmentNo(6), size, 0, 0x2000),
        first_part,
    );

    let out = s.run(&["archive", "verify"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let printed = stdout(&out);
    let missing = format!("FAULT {}:", key(3));
    assert!(printed.contains(&missing), "{}", text(&out));
    let foreign = printed
        .lines()
        .find(|l| l.starts_with(&format!("FAULT {}:", key(5))))
        .unwrap_or_else(|| panic!("no fault for segment 5: {}", text(&out)));
    assert!(
        foreign.contains("6999") && foreign.contains(SYSTEM_ID),
        "{foreign}"
    );
    assert_eq!(printed.matches("FAULT ").count(), 2, "{}", text(&out));
    assert!(printed.contains("segments of 1MB"), "{}", text(&out));

    let json = s.run(&["archive", "verify", "--json"]);
    assert_eq!(code(&json), 3, "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["wal"]["segment_size"], 1 << 20, "{v}");
    let keys: Vec<&str> = v["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [key(3), key(5)], "{v}");
}

#[test]
fn init_with_another_system_id_exits_5_naming_both() {
    let s = Setup::new("");
    s.init(SYSTEM_ID);
    let out = s.run(&[
        "archive",
        "init",
        "--engine",
        "postgres",
        "--system-id",
        "7301000000000000002",
    ]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(SYSTEM_ID) && err.contains("7301000000000000002"),
        "{}",
        text(&out)
    );
    // Same id again is fine: init is idempotent.
    s.init(SYSTEM_ID);
}

#[test]
fn config_check_masks_the_primary_password_and_the_s3_secret() {
    let s = Setup::new(
        "[primary]\nengine = \"postgres\"\nurl = \"postgres://ship:pw-in-url-31337@db.example:5432/postgres\"\n",
    );
    let secret = "s3-secret-from-env-4242";
    for json in [false, true] {
        let mut args = vec!["config", "check"];
        if json {
            args.push("--json");
        }
        let out = run_with_env(
            Some(&s.config),
            &args,
            &[("INSTAREC_ARCHIVE_S3_SECRET_ACCESS_KEY", secret)],
        );
        assert_eq!(code(&out), 0, "{}", text(&out));
        let all = text(&out);
        assert!(stdout(&out).contains("****"), "{all}");
        assert!(!all.contains("pw-in-url-31337"), "password printed: {all}");
        assert!(!all.contains(secret), "S3 secret printed: {all}");
        assert!(all.contains("db.example"), "{all}");
    }
}

#[test]
fn an_unknown_config_key_exits_2_naming_it() {
    let s = Setup::new("flush_intervall = \"1s\"\n");
    let out = s.run(&["config", "check"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("flush_intervall"), "{}", text(&out));
    // And nothing else runs on a bad config either.
    let out = s.run(&["archive", "verify"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

/// The names under "Commands:" in a clap help text.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// Sources of the other end-to-end test files that run the binary.
fn binary_test_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name == "cli_archive.rs" {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // Tests spawn the binary directly or through support::instarec.
        if source.contains("CARGO_BIN_EXE_instarec") || source.contains("support::instarec") {
            out.push((name, source));
        }
    }
    out
}

/// Every command `--help` lists answers `--help` itself, and is run by an
/// end-to-end test: here (archive, config) or in another tests/*.rs that
/// spawns the binary with it. A stub command without a test fails here.
#[test]
fn help_lists_only_working_commands() {
    let top = run_with_env(None, &["--help"], &[]);
    assert_eq!(code(&top), 0, "{}", text(&top));
    let listed = listed_commands(&stdout(&top));
    for core in ["archive", "config", "ship", "wal-push", "wal-fetch"] {
        assert!(
            listed.iter().any(|c| c == core),
            "{core} missing: {listed:?}"
        );
    }
    let sources = binary_test_sources();
    for command in &listed {
        let out = run_with_env(None, &[command, "--help"], &[]);
        assert_eq!(code(&out), 0, "{command} --help: {}", text(&out));
        if command == "archive" || command == "config" {
            continue; // run by the tests in this file
        }
        let literal = format!("\"{command}\"");
        assert!(
            sources.iter().any(|(_, src)| src.contains(&literal)),
            "`instarec {command}` is listed by --help, but no tests/*.rs runs it"
        );
    }
    for (group, subs) in [
        ("archive", &["init", "ls", "verify"][..]),
        ("config", &["check"][..]),
    ] {
        let out = run_with_env(None, &[group, "--help"], &[]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let mut listed = listed_commands(&stdout(&out));
        listed.sort();
        assert_eq!(listed, subs, "{group}: {}", stdout(&out));
    }
    // `archive ls`, the one not exercised elsewhere, lists what is there.
    let s = Setup::new("");
    s.init(SYSTEM_ID);
    let out = s.run(&["archive", "ls"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(stdout(&out).contains("cluster"), "{}", text(&out));
}

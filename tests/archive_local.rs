//! The archive on file:// and memory://: round trips, immutability, integrity
//! checks, encryption and listing, against the real object_store backends.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use instarec::archive::{
    Archive, ArchiveError, ArchiveSettings, Compression, EncryptionKey, PutOutcome,
};

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

fn settings(url: &str, compression: Compression, key: Option<EncryptionKey>) -> ArchiveSettings {
    let mut s = ArchiveSettings::new(url);
    s.compression = compression;
    s.encryption_key = key;
    s
}

/// A WAL-like payload: compressible but not trivially so.
fn wal_like(len: usize, seed: u32) -> Bytes {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(b"INSERT INTO t VALUES (");
        out.extend_from_slice((x % 10_000).to_string().as_bytes());
        out.extend_from_slice(b");\n");
    }
    out.truncate(len);
    Bytes::from(out)
}

fn key_a() -> EncryptionKey {
    EncryptionKey::from_bytes([0x11; 32])
}

fn key_b() -> EncryptionKey {
    EncryptionKey::from_bytes([0x22; 32])
}

#[tokio::test]
async fn payloads_round_trip_on_file_and_memory_with_every_codec_and_cipher() {
    let dir = tempfile::tempdir().unwrap();
    let mut combination = 0;
    for url in [file_url(dir.path()), "memory://".to_string()] {
        for compression in [Compression::None, Compression::Zstd] {
            for key in [None, Some(key_a())] {
                let what = format!("{url} {compression:?} encrypted={}", key.is_some());
                let archive = Archive::open(&settings(&url, compression, key)).unwrap();
                combination += 1;
                let prefix = format!("rt/{combination}");
                let payloads = [wal_like(4 << 20, 1), Bytes::new(), Bytes::from_static(b"x")];
                for (i, payload) in payloads.iter().enumerate() {
                    let key = format!("{prefix}/{i}");
                    assert_eq!(
                        archive.put(&key, payload.clone()).await.unwrap(),
                        PutOutcome::Created,
                        "{what}"
                    );
                    assert!(archive.exists(&key).await.unwrap(), "{what}");
                    assert_eq!(&archive.get(&key).await.unwrap(), payload, "{what}");
                }
                let missing = format!("{prefix}/missing");
                assert!(!archive.exists(&missing).await.unwrap());
                assert!(archive.get_opt(&missing).await.unwrap().is_none());
                match archive.get(&missing).await {
                    Err(ArchiveError::NotFound { key }) => assert_eq!(key, missing),
                    other => panic!("{what}: expected NotFound, got {other:?}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn file_url_creates_its_directory_and_keys_live_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not/yet/there");
    let archive = Archive::open(&ArchiveSettings::new(file_url(&root))).unwrap();
    assert!(root.is_dir(), "open did not create {}", root.display());
    archive
        .put(
            "wal/000000010000000000000001",
            Bytes::from_static(b"segment"),
        )
        .await
        .unwrap();
    assert!(root.join("wal/000000010000000000000001").is_file());
    assert_eq!(archive.url(), file_url(&root));
}

#[tokio::test]
async fn identical_reput_succeeds_and_different_content_conflicts_naming_both_checksums() {
    let dir = tempfile::tempdir().unwrap();
    for key in [None, Some(key_a())] {
        let archive = Archive::open(&settings(
            &file_url(dir.path()),
            Compression::Zstd,
            key.clone(),
        ))
        .unwrap();
        let name = format!("wal/immutable-{}", key.is_some());
        let original = wal_like(100_000, 7);
        assert_eq!(
            archive.put(&name, original.clone()).await.unwrap(),
            PutOutcome::Created
        );
        assert_eq!(
            archive.put(&name, original.clone()).await.unwrap(),
            PutOutcome::AlreadyIdentical
        );
        let different = wal_like(100_000, 8);
        let err = archive.put(&name, different).await.unwrap_err();
        match &err {
            ArchiveError::Conflict { key, existing, new } => {
                assert_eq!(key, &name);
                assert_eq!(existing.len(), 64);
                assert_eq!(new.len(), 64);
                assert_ne!(existing, new);
                let msg = err.to_string();
                assert!(
                    msg.contains(existing.as_str()) && msg.contains(new.as_str()),
                    "{msg}"
                );
                assert!(msg.contains(&name), "{msg}");
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        // Never overwritten: the original bytes are still there.
        assert_eq!(archive.get(&name).await.unwrap(), original);
        // Metadata follows the same rule.
        let meta = format!("positions/{}", key.is_some());
        archive
            .put_metadata(&meta, Bytes::from_static(b"{\"lsn\":\"0/3000060\"}"))
            .await
            .unwrap();
        assert_eq!(
            archive
                .put_metadata(&meta, Bytes::from_static(b"{\"lsn\":\"0/3000060\"}"))
                .await
                .unwrap(),
            PutOutcome::AlreadyIdentical
        );
        assert!(matches!(
            archive
                .put_metadata(&meta, Bytes::from_static(b"{\"lsn\":\"0/4000000\"}"))
                .await,
            Err(ArchiveError::Conflict { .. })
        ));
    }
}

#[tokio::test]
async fn plain_reput_of_an_encrypted_object_compares_payloads_not_headers() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let encrypted = Archive::open(&settings(&url, Compression::Zstd, Some(key_a()))).unwrap();
    let payload = wal_like(50_000, 3);
    encrypted.put("wal/x", payload.clone()).await.unwrap();
    // Same payload written unencrypted and uncompressed (e.g. a retry after a
    // config change) is still the same content.
    let plain_with_key = Archive::open(&settings(&url, Compression::None, Some(key_a()))).unwrap();
    assert_eq!(
        plain_with_key.put_metadata("wal/x", payload).await.unwrap(),
        PutOutcome::AlreadyIdentical
    );
}

fn object_file(root: &Path, key: &str) -> PathBuf {
    root.join(key)
}

#[tokio::test]
async fn flipped_byte_and_truncated_object_are_detected_by_get_and_verify_all() {
    let dir = tempfile::tempdir().unwrap();
    for key in [None, Some(key_a())] {
        let root = dir.path().join(format!("enc-{}", key.is_some()));
        let archive =
            Archive::open(&settings(&file_url(&root), Compression::Zstd, key.clone())).unwrap();
        for name in ["wal/1", "wal/2", "wal/3"] {
            archive
                .put(name, wal_like(300_000, name.len() as u32))
                .await
                .unwrap();
        }
        // Flip one byte in the middle of wal/1's body.
        let path = object_file(&root, "wal/1");
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        // Cut wal/2 short.
        let path = object_file(&root, "wal/2");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();

        let err = archive.get("wal/1").await.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Corrupt { key, .. } if key == "wal/1"),
            "{err}"
        );
        assert!(err.to_string().contains("wal/1"));
        let err = archive.get("wal/2").await.unwrap_err();
        match &err {
            ArchiveError::Truncated {
                key,
                expected,
                actual,
            } => {
                assert_eq!(key, "wal/2");
                assert_eq!(expected - actual, 100);
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        archive.get("wal/3").await.unwrap();

        let report = archive.verify_all("").await.unwrap();
        assert_eq!(report.objects, 1, "{report:?}");
        assert_eq!(
            report.bytes,
            std::fs::metadata(root.join("wal/3")).unwrap().len()
        );
        let faulty: Vec<&str> = report.faults.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(faulty, ["wal/1", "wal/2"]);
        assert!(matches!(report.faults[0].1, ArchiveError::Corrupt { .. }));
        assert!(matches!(report.faults[1].1, ArchiveError::Truncated { .. }));
        assert!(archive.verify_object("wal/3").await.is_ok());
    }
}

#[tokio::test]
async fn a_file_that_is_not_an_archive_object_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open(&ArchiveSettings::new(file_url(dir.path()))).unwrap();
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();
    std::fs::write(
        dir.path().join("wal/raw"),
        b"raw WAL bytes copied by hand, no header",
    )
    .unwrap();
    let err = archive.get("wal/raw").await.unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("bad magic"), "{err}");
}

#[tokio::test]
async fn newer_object_format_is_refused_with_upgrade_advice() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open(&ArchiveSettings::new(file_url(dir.path()))).unwrap();
    archive
        .put("wal/future", Bytes::from_static(b"from the future"))
        .await
        .unwrap();
    let path = dir.path().join("wal/future");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4] = 2; // format version
    std::fs::write(&path, &bytes).unwrap();
    let err = archive.get("wal/future").await.unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::NewerFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("wal/future") && msg.contains("upgrade instarec"),
        "{msg}"
    );
}

#[tokio::test]
async fn encryption_round_trips_and_wrong_or_missing_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let with_a = Archive::open(&settings(&url, Compression::Zstd, Some(key_a()))).unwrap();
    let marker = Bytes::from_static(b"SECRET-ROW-VALUE-4242 SECRET-ROW-VALUE-4242");
    with_a.put("wal/enc", marker.clone()).await.unwrap();
    with_a
        .put_metadata(
            "positions/latest",
            Bytes::from_static(b"{\"lsn\":\"0/3000060\"}"),
        )
        .await
        .unwrap();
    assert_eq!(with_a.get("wal/enc").await.unwrap(), marker);

    // Neither the plaintext nor the plain BLAKE3 of it appears in the stored bytes.
    let stored = std::fs::read(dir.path().join("wal/enc")).unwrap();
    assert!(!contains(&stored, b"SECRET-ROW-VALUE"));
    assert!(!contains(&stored, blake3::hash(&marker).as_bytes()));

    let with_b = Archive::open(&settings(&url, Compression::Zstd, Some(key_b()))).unwrap();
    let err = with_b.get("wal/enc").await.unwrap_err();
    match &err {
        ArchiveError::WrongKey {
            key,
            found,
            configured,
        } => {
            assert_eq!(key, "wal/enc");
            assert_eq!(found, &hex::encode(key_a().id()));
            assert_eq!(configured, &hex::encode(key_b().id()));
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }

    let without = Archive::open(&settings(&url, Compression::Zstd, None)).unwrap();
    let err = without.get("wal/enc").await.unwrap_err();
    assert!(matches!(err, ArchiveError::MissingKey { .. }), "{err}");
    assert!(
        err.to_string().contains("[archive] encryption_key_file"),
        "{err}"
    );

    // Metadata never needs the key.
    assert_eq!(
        without.get("positions/latest").await.unwrap(),
        Bytes::from_static(b"{\"lsn\":\"0/3000060\"}")
    );
    assert_eq!(with_b.get("positions/latest").await.unwrap().len(), 19);
    let summary = with_a.verify_object("positions/latest").await.unwrap();
    assert_eq!(summary.encryption_key_id, None);
    let summary = with_a.verify_object("wal/enc").await.unwrap();
    assert_eq!(summary.encryption_key_id, Some(hex::encode(key_a().id())));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn key_files_hold_raw_bytes_or_text() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.key");
    std::fs::write(&raw, [0x11u8; 32]).unwrap();
    let hex_file = dir.path().join("hex.key");
    std::fs::write(&hex_file, format!("{}\n", hex::encode([0x11u8; 32]))).unwrap();
    assert_eq!(
        EncryptionKey::from_file(&raw).unwrap().id(),
        EncryptionKey::from_file(&hex_file).unwrap().id()
    );
    let short = dir.path().join("short.key");
    std::fs::write(&short, [0u8; 31]).unwrap();
    let err = EncryptionKey::from_file(&short).unwrap_err();
    assert!(err.to_string().contains("short.key"), "{err}");
    let err = EncryptionKey::from_file(&dir.path().join("absent.key")).unwrap_err();
    assert!(err.to_string().contains("absent.key"), "{err}");
}

#[tokio::test]
async fn listing_on_file_is_sorted_relative_and_filtered_by_string_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open(&ArchiveSettings::new(file_url(dir.path()))).unwrap();
    let keys = [
        "wal/000000010000000000000003",
        "base/0001/backup.tar",
        "wal/000000010000000000000001",
        "wal/000000020000000000000001",
        "cluster",
        "wal/000000010000000000000002",
        "epochs/00000000000000000010",
        "epochs/00000000000000000009",
    ];
    for key in keys {
        archive
            .put(key, Bytes::from(key.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let listed: Vec<String> = archive
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);

    let timeline1: Vec<String> = archive
        .list("wal/00000001")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        timeline1,
        [
            "wal/000000010000000000000001",
            "wal/000000010000000000000002",
            "wal/000000010000000000000003"
        ]
    );
    let epochs = archive.list("epochs/").await.unwrap();
    assert_eq!(epochs[1].key, "epochs/00000000000000000010");
    assert!(epochs[0].size > 0);
    assert!(archive.list("nothing/here/").await.unwrap().is_empty());

    archive
        .delete("wal/000000010000000000000002")
        .await
        .unwrap();
    archive
        .delete("wal/000000010000000000000002")
        .await
        .unwrap();
    assert!(!archive
        .exists("wal/000000010000000000000002")
        .await
        .unwrap());
}

#[test]
fn bad_urls_are_refused_naming_the_url_and_the_supported_schemes() {
    for url in [
        "ftp://host/dir",
        "just-a-bucket",
        "file://relative/dir",
        "s3://",
        "",
    ] {
        let err = Archive::open(&ArchiveSettings::new(url)).unwrap_err();
        assert!(matches!(err, ArchiveError::BadUrl { .. }), "{url}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{url:?}")), "{msg}");
        for scheme in ["file://", "s3://", "gs://", "az://", "memory://"] {
            assert!(msg.contains(scheme), "{msg}");
        }
    }
}

#[test]
fn the_display_url_never_contains_credentials() {
    let archive = Archive::open(&ArchiveSettings::new(
        "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/prefix?x=secret",
    ))
    .unwrap();
    assert_eq!(archive.url(), "s3://bucket/prefix");
}

#[test]
fn keys_that_are_not_canonical_paths_are_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let archive = Archive::open(&ArchiveSettings::new("memory://")).unwrap();
    for key in ["", "/abs", "a//b", "../escape", "dir/"] {
        let err = rt.block_on(archive.put(key, Bytes::new())).unwrap_err();
        assert!(matches!(err, ArchiveError::BadKey { .. }), "{key:?}: {err}");
    }
}

#[tokio::test]
async fn reputting_over_a_damaged_object_reports_the_damage_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open(&ArchiveSettings::new(file_url(dir.path()))).unwrap();
    let payload = wal_like(10_000, 9);
    archive.put("wal/short", payload.clone()).await.unwrap();
    let path = dir.path().join("wal/short");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..10]).unwrap();
    let err = archive.put("wal/short", payload).await.unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Truncated { key, actual: 10, .. } if key == "wal/short"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        10,
        "damaged object was overwritten"
    );
}

//! The archive on s3:// against a real moto_server: round trips under a
//! prefix, conditional create (If-None-Match: *), integrity checks and
//! cluster identity. Racing epoch claims on S3 are in archive_coordination.rs.

mod support;

use bytes::Bytes;
use instarec::archive::{
    Archive, ArchiveError, ArchiveSettings, Compression, EncryptionKey, PutOutcome, S3Settings,
};
use instarec::engine::Engine;
use support::Moto;

fn s3_settings(moto: &Moto, prefix: &str) -> ArchiveSettings {
    let mut settings = ArchiveSettings::new(format!("s3://{}/{prefix}", moto.bucket()));
    settings.s3 = S3Settings {
        endpoint: Some(moto.endpoint()),
        region: Some(moto.region().to_string()),
        access_key_id: Some(moto.access_key_id().to_string()),
        secret_access_key: Some(moto.secret_access_key().to_string()),
        allow_http: true,
    };
    settings
}

fn payload(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn s3_round_trips_under_the_prefix_and_never_overwrites() {
    let moto = Moto::start();
    for (prefix, key) in [
        ("plain/archive", None),
        ("encrypted", Some(EncryptionKey::from_bytes([7; 32]))),
    ] {
        let mut settings = s3_settings(&moto, prefix);
        settings.compression = Compression::Zstd;
        settings.encryption_key = key;
        let archive = Archive::open(&settings).unwrap();
        assert_eq!(archive.url(), format!("s3://{}/{prefix}", moto.bucket()));

        let big = payload(16 << 20);
        assert_eq!(
            archive
                .put("wal/000000010000000000000002", big.clone())
                .await
                .unwrap(),
            PutOutcome::Created
        );
        archive
            .put("wal/000000010000000000000001", Bytes::from_static(b"first"))
            .await
            .unwrap();
        archive
            .put_metadata(
                "positions/latest",
                Bytes::from_static(b"{\"lsn\":\"0/2000000\"}"),
            )
            .await
            .unwrap();
        assert_eq!(
            archive.get("wal/000000010000000000000002").await.unwrap(),
            big
        );
        assert!(archive
            .exists("wal/000000010000000000000001")
            .await
            .unwrap());
        assert!(!archive
            .exists("wal/000000010000000000000009")
            .await
            .unwrap());
        assert!(matches!(
            archive.get("wal/000000010000000000000009").await,
            Err(ArchiveError::NotFound { .. })
        ));
        // The object sits under the URL's prefix in the bucket.
        assert!(moto
            .get_object(&format!("{prefix}/wal/000000010000000000000001"))
            .is_some());

        // Conditional create on S3: identical re-put accepted, different refused.
        assert_eq!(
            archive
                .put("wal/000000010000000000000001", Bytes::from_static(b"first"))
                .await
                .unwrap(),
            PutOutcome::AlreadyIdentical
        );
        let err = archive
            .put(
                "wal/000000010000000000000001",
                Bytes::from_static(b"second"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
        assert_eq!(
            archive.get("wal/000000010000000000000001").await.unwrap(),
            Bytes::from_static(b"first")
        );

        let keys: Vec<String> = archive
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            [
                "positions/latest",
                "wal/000000010000000000000001",
                "wal/000000010000000000000002"
            ]
        );
        archive.delete("positions/latest").await.unwrap();
        assert!(!archive.exists("positions/latest").await.unwrap());
    }
}

#[tokio::test]
async fn s3_flipped_and_truncated_objects_are_detected() {
    let moto = Moto::start();
    let archive = Archive::open(&s3_settings(&moto, "integrity")).unwrap();
    for key in ["wal/a", "wal/b", "wal/c"] {
        archive.put(key, payload(200_000)).await.unwrap();
    }
    let mut flipped = moto.get_object("integrity/wal/a").unwrap();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    moto.put_object("integrity/wal/a", &flipped);
    let whole = moto.get_object("integrity/wal/b").unwrap();
    moto.put_object("integrity/wal/b", &whole[..whole.len() / 2]);

    assert!(matches!(
        archive.get("wal/a").await,
        Err(ArchiveError::Corrupt { key, .. }) if key == "wal/a"
    ));
    assert!(matches!(
        archive.get("wal/b").await,
        Err(ArchiveError::Truncated { key, .. }) if key == "wal/b"
    ));
    let report = archive.verify_all("wal/").await.unwrap();
    assert_eq!(report.objects, 1);
    let faulty: Vec<&str> = report.faults.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(faulty, ["wal/a", "wal/b"]);
}

#[tokio::test]
async fn s3_cluster_mismatch_names_the_archive_and_both_systems() {
    let moto = Moto::start();
    let archive = Archive::open(&s3_settings(&moto, "p")).unwrap();
    let (bound, _) = archive
        .open_cluster(Engine::Postgres, "7263011822158036542")
        .await
        .unwrap();
    bound.put("wal/1", Bytes::from_static(b"x")).await.unwrap();
    let err = archive
        .open_cluster(Engine::Postgres, "7301234567890123456")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "archive s3://{}/p belongs to postgres system 7263011822158036542",
            moto.bucket()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("primary is postgres system 7301234567890123456"),
        "{msg}"
    );
}

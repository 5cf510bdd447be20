//! PostgreSQL's `backup_manifest` as a restore uses it: after extraction
//! every listed file is checked on disk (size and CRC32C), so a restore
//! never starts on bytes that differ from what the server sent.

use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Read buffer for checksumming; files stream through it.
const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("backup_manifest of backup {backup} is not valid: {reason}; the backup is unusable: take a new one with `instarec backup`")]
    Invalid { backup: String, reason: String },
    #[error("restored file {path} does not match backup_manifest: {reason}; the extracted data directory is unusable: delete it and restore again, and run `instarec archive verify` if it happens twice")]
    Mismatch { path: String, reason: String },
    #[error("cannot read restored file {path}: {source}; check the data directory is readable")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The parts of a manifest that verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupManifest {
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the data directory, e.g. "base/1/1259" or "pg_tblspc/16384/PG_15_…/…".
    pub path: String,
    pub size: u64,
    pub checksum: Checksum,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    None,
    /// The four bytes PostgreSQL stored, in the manifest's order.
    Crc32c([u8; 4]),
    /// SHA-* and other algorithms: size is checked, the checksum is not.
    Unsupported(String),
}

/// What verification covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified {
    pub files: usize,
    pub bytes: u64,
    /// Files whose checksum algorithm instarec cannot compute (size only).
    pub size_only: usize,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "PostgreSQL-Backup-Manifest-Version")]
    version: u32,
    #[serde(rename = "Files")]
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

impl BackupManifest {
    pub fn parse(backup: &str, bytes: &[u8]) -> Result<BackupManifest, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            backup: backup.to_string(),
            reason,
        };
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a manifest: {e}")))?;
        if raw.version != 1 {
            return Err(invalid(format!(
                "manifest version {} is not supported (only 1)",
                raw.version
            )));
        }
        let mut files = Vec::with_capacity(raw.files.len());
        for f in raw.files {
            let path = match (f.path, f.encoded_path) {
                (Some(p), _) => p,
                (None, Some(hex_path)) => hex::decode(&hex_path)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| invalid(format!("Encoded-Path {hex_path} is not hex UTF-8")))?,
                (None, None) => return Err(invalid("a file entry has no path".into())),
            };
            if Path::new(&path).is_absolute() || path.split('/').any(|c| c == "..") {
                return Err(invalid(format!(
                    "file path {path:?} leaves the data directory"
                )));
            }
            let checksum = match (f.algorithm.as_deref(), f.checksum) {
                (None | Some("NONE"), _) => Checksum::None,
                (Some("CRC32C"), Some(hex_sum)) => {
                    let bytes = hex::decode(&hex_sum)
                        .ok()
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .ok_or_else(|| {
                            invalid(format!("CRC32C {hex_sum:?} of {path} is not 8 hex digits"))
                        })?;
                    Checksum::Crc32c(bytes)
                }
                (Some(other), _) => Checksum::Unsupported(other.to_string()),
            };
            files.push(ManifestFile {
                path,
                size: f.size,
                checksum,
            });
        }
        Ok(BackupManifest { files })
    }
}

/// PostgreSQL stores a CRC32C as the in-memory bytes of the finished
/// uint32: little-endian on the platforms it runs on (checked against a
/// pg_basebackup manifest: "15\n" → "8a744722").
pub fn crc32c_bytes(crc: u32) -> [u8; 4] {
    crc.to_le_bytes()
}

/// Maps manifest paths to disk: `pg_tblspc/<oid>/…` goes to the tablespace's
/// restored location, everything else under the data directory.
#[derive(Debug, Clone)]
pub struct PathMap {
    pub data_dir: PathBuf,
    /// Tablespace oid → where its archive was extracted.
    pub tablespaces: HashMap<String, PathBuf>,
}

impl PathMap {
    pub fn resolve(&self, manifest_path: &str) -> PathBuf {
        if let Some(rest) = manifest_path.strip_prefix("pg_tblspc/") {
            if let Some((oid, inner)) = rest.split_once('/') {
                if let Some(location) = self.tablespaces.get(oid) {
                    return location.join(inner);
                }
            }
        }
        self.data_dir.join(manifest_path)
    }
}

/// Checks every listed file's size and checksum. Blocking: call it from
/// spawn_blocking.
pub fn verify_blocking(
    manifest: &BackupManifest,
    paths: &PathMap,
) -> Result<Verified, ManifestError> {
    let mut verified = Verified::default();
    let mut buffer = vec![0u8; READ_BUFFER];
    for file in &manifest.files {
        let disk = paths.resolve(&file.path);
        let read_err = |source| ManifestError::Read {
            path: disk.display().to_string(),
            source,
        };
        let mismatch = |reason: String| ManifestError::Mismatch {
            path: disk.display().to_string(),
            reason,
        };
        let mut f = match std::fs::File::open(&disk) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(mismatch("listed in the manifest but missing".into()))
            }
            Err(e) => return Err(read_err(e)),
        };
        let mut size = 0u64;
        let mut crc = 0u32;
        let want_crc = matches!(file.checksum, Checksum::Crc32c(_));
        loop {
            let n = f.read(&mut buffer).map_err(read_err)?;
            if n == 0 {
                break;
            }
            if want_crc {
                crc = crc32c::crc32c_append(crc, &buffer[..n]);
            }
            size += n as u64;
        }
        if size != file.size {
            return Err(mismatch(format!(
                "size is {size} bytes, the manifest says {}",
                file.size
            )));
        }
        match &file.checksum {
            Checksum::Crc32c(expected) if crc32c_bytes(crc) != *expected => {
                return Err(mismatch(format!(
                    "CRC32C is {}, the manifest says {}",
                    hex::encode(crc32c_bytes(crc)),
                    hex::encode(expected)
                )));
            }
            Checksum::Unsupported(_) => verified.size_only += 1,
            _ => {}
        }
        verified.files += 1;
        verified.bytes += size;
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like PostgreSQL 15's output (pg_basebackup --manifest-checksums=CRC32C).
    const MANIFEST: &str = r#"{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "PG_VERSION", "Size": 3, "Last-Modified": "2026-11-27 16:53:10 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "8a744722" },
{ "Encoded-Path": "62617365", "Size": 0, "Last-Modified": "2026-11-27 16:50:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" },
{ "Path": "global/pg_control", "Size": 3, "Last-Modified": "2026-11-27 16:50:00 GMT", "Checksum-Algorithm": "SHA256", "Checksum": "ab" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
"Manifest-Checksum": "00"}
"#;

    #[test]
    fn crc32c_uses_postgres_byte_order() {
        // From a real PostgreSQL 15 manifest: PG_VERSION ("15\n") → "8a744722".
        assert_eq!(
            hex::encode(crc32c_bytes(crc32c::crc32c(b"15\n"))),
            "8a744722"
        );
        // RFC 3720 test vector.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn parses_paths_checksums_and_encoded_paths() {
        let m = BackupManifest::parse("b1", MANIFEST.as_bytes()).unwrap();
        assert_eq!(m.files.len(), 3);
        assert_eq!(m.files[0].path, "PG_VERSION");
        assert_eq!(
            m.files[0].checksum,
            Checksum::Crc32c([0x8a, 0x74, 0x47, 0x22])
        );
        assert_eq!(m.files[1].path, "base");
        assert_eq!(m.files[2].checksum, Checksum::Unsupported("SHA256".into()));
    }

    #[test]
    fn rejects_escaping_paths_and_bad_checksums() {
        let escape = MANIFEST.replace("global/pg_control", "../etc/passwd");
        assert!(matches!(
            BackupManifest::parse("b1", escape.as_bytes()),
            Err(ManifestError::Invalid { .. })
        ));
        let short = MANIFEST.replace("8a744722", "8a74");
        assert!(BackupManifest::parse("b1", short.as_bytes()).is_err());
        assert!(BackupManifest::parse("b1", b"{}").is_err());
    }

    #[test]
    fn verify_catches_size_and_checksum_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"123456789").unwrap();
        let tbs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tbs.path().join("PG_15_1")).unwrap();
        std::fs::write(tbs.path().join("PG_15_1/b"), b"").unwrap();
        let mut manifest = BackupManifest {
            files: vec![
                ManifestFile {
                    path: "a".into(),
                    size: 9,
                    checksum: Checksum::Crc32c(crc32c_bytes(0xE306_9283)),
                },
                ManifestFile {
                    path: "pg_tblspc/16384/PG_15_1/b".into(),
                    size: 0,
                    checksum: Checksum::Crc32c([0; 4]),
                },
            ],
        };
        let paths = PathMap {
            data_dir: dir.path().to_path_buf(),
            tablespaces: HashMap::from([("16384".to_string(), tbs.path().to_path_buf())]),
        };
        let ok = verify_blocking(&manifest, &paths).unwrap();
        assert_eq!((ok.files, ok.bytes), (2, 9));

        manifest.files[0].checksum = Checksum::Crc32c([0, 0, 0, 1]);
        let err = verify_blocking(&manifest, &paths).unwrap_err().to_string();
        assert!(err.contains("CRC32C is 839206e3"), "{err}");

        manifest.files[0].size = 10;
        let err = verify_blocking(&manifest, &paths).unwrap_err().to_string();
        assert!(err.contains("size is 9 bytes"), "{err}");

        manifest.files.push(ManifestFile {
            path: "missing".into(),
            size: 0,
            checksum: Checksum::None,
        });
        manifest.files[0].size = 9;
        manifest.files[0].checksum = Checksum::None;
        let err = verify_blocking(&manifest, &paths).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}

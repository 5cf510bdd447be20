//! PostgreSQL's `backup_manifest` as a restore uses it: every listed file is
//! checked (size and CRC32C) as it is written, and every listed file must be
//! written, so a restore never starts on bytes that differ from what the
//! server sent.
//!
//! Version 1 (PostgreSQL 13–16) and version 2 (17+) list files the same
//! way; version 2 adds `System-Identifier`, which must be the cluster's.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("backup_manifest of backup {backup} is not valid: {reason}; the backup is unusable: take a new one with `instarec backup`")]
    Invalid { backup: String, reason: String },
    #[error("backup_manifest of backup {backup} belongs to system {manifest}, but the cluster is system {cluster}; the backup is of another cluster: take a new one with `instarec backup` against this cluster's primary")]
    OtherSystem {
        backup: String,
        manifest: u64,
        cluster: String,
    },
    #[error("restored file {path} does not match backup_manifest: {reason}; the extracted data directory is unusable: delete it and restore again, and run `instarec archive verify` if it happens twice")]
    Mismatch { path: String, reason: String },
}

/// The parts of a manifest that verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupManifest {
    pub backup: String,
    pub version: u32,
    /// Version 2 and later; None in version 1.
    pub system_identifier: Option<u64>,
    pub files: Vec<ManifestFile>,
}

/// Manifest versions instarec reads: 1 (PostgreSQL 13–16), 2 (17+).
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 1..=2;

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
    #[serde(rename = "System-Identifier")]
    system_identifier: Option<u64>,
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
        if !SUPPORTED_VERSIONS.contains(&raw.version) {
            return Err(invalid(format!(
                "manifest version {} is not supported (only {} to {})",
                raw.version,
                SUPPORTED_VERSIONS.start(),
                SUPPORTED_VERSIONS.end()
            )));
        }
        if raw.version >= 2 && raw.system_identifier.is_none() {
            return Err(invalid(format!(
                "manifest version {} has no System-Identifier",
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
        Ok(BackupManifest {
            backup: backup.to_string(),
            version: raw.version,
            system_identifier: raw.system_identifier,
            files,
        })
    }

    /// A version 2+ manifest must name `cluster` (the system identifier in
    /// decimal, as IDENTIFY_SYSTEM and the cluster record give it); version 1
    /// names none.
    pub fn check_system(&self, cluster: &str) -> Result<(), ManifestError> {
        match self.system_identifier {
            Some(id) if id.to_string() != cluster.trim() => Err(ManifestError::OtherSystem {
                backup: self.backup.clone(),
                manifest: id,
                cluster: cluster.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// PostgreSQL stores a CRC32C as the in-memory bytes of the finished
/// uint32: little-endian on the platforms it runs on (checked against a
/// pg_basebackup manifest: "15\n" → "8a744722").
pub fn crc32c_bytes(crc: u32) -> [u8; 4] {
    crc.to_le_bytes()
}

/// One file's check against its manifest entry, fed the bytes as they are
/// written so the restore never reads a file twice.
#[derive(Debug, Clone)]
pub struct FileCheck {
    size: u64,
    checksum: Checksum,
    seen: u64,
    crc: u32,
}

impl FileCheck {
    pub fn new(file: &ManifestFile) -> FileCheck {
        FileCheck {
            size: file.size,
            checksum: file.checksum.clone(),
            seen: 0,
            crc: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        if matches!(self.checksum, Checksum::Crc32c(_)) {
            self.crc = crc32c::crc32c_append(self.crc, bytes);
        }
        self.seen += bytes.len() as u64;
    }

    /// Size, then checksum; `path` is where the file was written, for the error.
    pub fn finish(&self, path: &Path) -> Result<(), ManifestError> {
        let mismatch = |reason: String| ManifestError::Mismatch {
            path: path.display().to_string(),
            reason,
        };
        if self.seen != self.size {
            return Err(mismatch(format!(
                "size is {} bytes, the manifest says {}",
                self.seen, self.size
            )));
        }
        match &self.checksum {
            Checksum::Crc32c(expected) if crc32c_bytes(self.crc) != *expected => {
                Err(mismatch(format!(
                    "CRC32C is {}, the manifest says {}",
                    hex::encode(crc32c_bytes(self.crc)),
                    hex::encode(expected)
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Which manifest entries a restore has checked, so one that no archive
/// held is caught.
#[derive(Debug)]
pub struct ManifestIndex {
    files: Vec<ManifestFile>,
    by_path: HashMap<String, usize>,
    claimed: Vec<bool>,
}

impl ManifestIndex {
    pub fn new(manifest: BackupManifest) -> ManifestIndex {
        let by_path = manifest
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        let claimed = vec![false; manifest.files.len()];
        ManifestIndex {
            files: manifest.files,
            by_path,
            claimed,
        }
    }

    /// The check for `manifest_path` (e.g. "base/1/1259"), None when the
    /// manifest does not list it. Each entry can be claimed once: a second
    /// claim is an error (`disk` names the file in it).
    pub fn claim(
        &mut self,
        manifest_path: &str,
        disk: &Path,
    ) -> Result<Option<FileCheck>, ManifestError> {
        let Some(&i) = self.by_path.get(manifest_path) else {
            return Ok(None);
        };
        if std::mem::replace(&mut self.claimed[i], true) {
            return Err(ManifestError::Mismatch {
                path: disk.display().to_string(),
                reason: "the backup holds it twice".into(),
            });
        }
        Ok(Some(FileCheck::new(&self.files[i])))
    }

    /// What was claimed, or the first listed file that never was.
    /// `resolve` maps a manifest path to where it would be on disk.
    pub fn finish(&self, resolve: impl Fn(&str) -> PathBuf) -> Result<Verified, ManifestError> {
        let mut verified = Verified::default();
        for (file, claimed) in self.files.iter().zip(&self.claimed) {
            if !claimed {
                return Err(ManifestError::Mismatch {
                    path: resolve(&file.path).display().to_string(),
                    reason: "listed in the manifest but missing from the backup".into(),
                });
            }
            verified.files += 1;
            verified.bytes += file.size;
            if matches!(file.checksum, Checksum::Unsupported(_)) {
                verified.size_only += 1;
            }
        }
        Ok(verified)
    }
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
    fn version_2_names_its_system_which_must_be_the_clusters() {
        let v1 = BackupManifest::parse("b1", MANIFEST.as_bytes()).unwrap();
        assert_eq!((v1.version, v1.system_identifier), (1, None));
        v1.check_system("7716711857236741300").unwrap();

        // Shaped like PostgreSQL 17's output: the same files, plus the system.
        let v2_text = MANIFEST.replace(
            r#""PostgreSQL-Backup-Manifest-Version": 1,"#,
            r#""PostgreSQL-Backup-Manifest-Version": 2,
"System-Identifier": 7716711857236741300,"#,
        );
        let v2 = BackupManifest::parse("b1", v2_text.as_bytes()).unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.system_identifier, Some(7716711857236741300));
        assert_eq!(v2.files, v1.files);
        v2.check_system("7716711857236741300").unwrap();
        let err = v2
            .check_system("7301000000000000001")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("7716711857236741300") && err.contains("7301000000000000001"),
            "{err}"
        );

        let no_system = MANIFEST.replace(
            r#""PostgreSQL-Backup-Manifest-Version": 1,"#,
            r#""PostgreSQL-Backup-Manifest-Version": 2,"#,
        );
        let err = BackupManifest::parse("b1", no_system.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("System-Identifier"), "{err}");
        let v3 = MANIFEST.replace(
            r#""PostgreSQL-Backup-Manifest-Version": 1,"#,
            r#""PostgreSQL-Backup-Manifest-Version": 3,"#,
        );
        let err = BackupManifest::parse("b1", v3.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("version 3 is not supported"),
            "{err}"
        );
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
    fn file_check_catches_size_and_checksum_mismatch() {
        let file = ManifestFile {
            path: "a".into(),
            size: 9,
            checksum: Checksum::Crc32c(crc32c_bytes(0xE306_9283)),
        };
        let disk = Path::new("/restore/a");
        let mut check = FileCheck::new(&file);
        check.update(b"1234");
        check.update(b"56789");
        check.finish(disk).unwrap();

        let mut wrong = FileCheck::new(&file);
        wrong.update(b"123456780");
        let err = wrong.finish(disk).unwrap_err().to_string();
        assert!(
            err.contains("/restore/a") && err.contains("CRC32C is"),
            "{err}"
        );

        let mut short = FileCheck::new(&file);
        short.update(b"12345678");
        let err = short.finish(disk).unwrap_err().to_string();
        assert!(
            err.contains("size is 8 bytes, the manifest says 9"),
            "{err}"
        );

        // SHA-256 and friends: the size is still checked.
        let sha = ManifestFile {
            checksum: Checksum::Unsupported("SHA256".into()),
            ..file
        };
        let mut size_only = FileCheck::new(&sha);
        size_only.update(b"anything!");
        size_only.finish(disk).unwrap();
    }

    #[test]
    fn index_catches_duplicates_and_files_no_archive_held() {
        let manifest = BackupManifest::parse("b1", MANIFEST.as_bytes()).unwrap();
        let mut index = ManifestIndex::new(manifest);
        let disk = Path::new("/restore/PG_VERSION");
        assert!(index.claim("PG_VERSION", disk).unwrap().is_some());
        assert!(index.claim("not/listed", disk).unwrap().is_none());
        let err = index.claim("PG_VERSION", disk).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        index.claim("base", disk).unwrap();
        let err = index
            .finish(|p| Path::new("/restore").join(p))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/restore/global/pg_control") && err.contains("missing"),
            "{err}"
        );
        index.claim("global/pg_control", disk).unwrap();
        let verified = index.finish(|p| Path::new("/restore").join(p)).unwrap();
        assert_eq!(
            verified,
            Verified {
                files: 3,
                bytes: 6,
                size_only: 1
            }
        );
    }
}

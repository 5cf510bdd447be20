//! The server's backup_manifest checked against the tar stream we received
//! (each file's size and CRC32C, both ways), before a backup may count.

use super::manifest::{crc32c_bytes, BackupManifest, Checksum};
use super::tar_listing::TarFile;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestCheckError {
    #[error("backup_manifest lists {path} but the tar stream does not contain it; the stream was damaged: take the backup again")]
    Missing { path: String },
    #[error("{path}: backup_manifest says {manifest} bytes, the tar stream holds {tar}; the stream was damaged: take the backup again")]
    Size {
        path: String,
        manifest: u64,
        tar: u64,
    },
    #[error("{path}: backup_manifest has CRC32C {manifest}, the tar stream's bytes give {tar}; the stream was damaged: take the backup again")]
    Checksum {
        path: String,
        manifest: String,
        tar: String,
    },
    #[error("the tar stream holds {path} but backup_manifest does not list it; the stream was damaged: take the backup again")]
    Unlisted { path: String },
}

/// Every listed file is in the tars with the same size and CRC32C (other
/// algorithms: size only), and every regular file of the tars is listed.
pub fn check(manifest: &BackupManifest, tar_files: &[TarFile]) -> Result<(), ManifestCheckError> {
    let by_path: HashMap<&str, &TarFile> = tar_files.iter().map(|f| (f.path.as_str(), f)).collect();
    for m in &manifest.files {
        let t = by_path
            .get(m.path.as_str())
            .ok_or_else(|| ManifestCheckError::Missing {
                path: m.path.clone(),
            })?;
        if t.size != m.size {
            return Err(ManifestCheckError::Size {
                path: m.path.clone(),
                manifest: m.size,
                tar: t.size,
            });
        }
        if let Checksum::Crc32c(expected) = m.checksum {
            let actual = crc32c_bytes(t.crc32c);
            if actual != expected {
                return Err(ManifestCheckError::Checksum {
                    path: m.path.clone(),
                    manifest: hex::encode(expected),
                    tar: hex::encode(actual),
                });
            }
        }
    }
    let listed: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    match tar_files.iter().find(|f| !listed.contains(f.path.as_str())) {
        Some(extra) => Err(ManifestCheckError::Unlisted {
            path: extra.path.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(path: &str, data: &[u8]) -> TarFile {
        TarFile {
            path: path.into(),
            size: data.len() as u64,
            crc32c: crc32c::crc32c(data),
        }
    }

    /// CRC32C of "15\n" as PostgreSQL writes it: "8a744722".
    const MANIFEST: &str = r#"{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "PG_VERSION", "Size": 3, "Last-Modified": "2024-05-01 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "8a744722" },
{ "Path": "global/x", "Size": 0, "Last-Modified": "2024-05-01 10:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" }
],
"WAL-Ranges": [ { "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" } ],
"Manifest-Checksum": "00"}
"#;

    #[test]
    fn matching_tars_pass_and_each_kind_of_mismatch_is_named() {
        let m = BackupManifest::parse("b", MANIFEST.as_bytes()).unwrap();
        let good = vec![tar("PG_VERSION", b"15\n"), tar("global/x", b"")];
        check(&m, &good).unwrap();

        let e = check(&m, &[tar("PG_VERSION", b"16\n"), tar("global/x", b"")]).unwrap_err();
        assert!(
            matches!(&e, ManifestCheckError::Checksum { path, manifest, .. } if path == "PG_VERSION" && manifest == "8a744722"),
            "{e}"
        );
        assert!(matches!(
            check(&m, &[tar("PG_VERSION", b"15"), tar("global/x", b"")]),
            Err(ManifestCheckError::Size {
                manifest: 3,
                tar: 2,
                ..
            })
        ));
        assert!(matches!(
            check(&m, &[tar("PG_VERSION", b"15\n")]),
            Err(ManifestCheckError::Missing { path }) if path == "global/x"
        ));
        let mut extra = good.clone();
        extra.push(tar("stray", b"x"));
        assert!(matches!(
            check(&m, &extra),
            Err(ManifestCheckError::Unlisted { path }) if path == "stray"
        ));
    }
}

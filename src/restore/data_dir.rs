//! The directories a restore writes into: refused when they hold anything,
//! unless the caller forces, which empties them (the dirs themselves stay).

use super::error::RestoreError;
use std::path::Path;

/// Missing or empty is fine; otherwise NotEmpty, or emptied with `force`.
pub fn prepare_blocking(dir: &Path, force: bool) -> Result<(), RestoreError> {
    let io = |source| RestoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if entries.next().is_none() {
        return Ok(());
    }
    if !force {
        return Err(RestoreError::NotEmpty {
            path: dir.display().to_string(),
        });
    }
    if dir.join("postmaster.pid").exists() {
        // A live server's files must not vanish under it; stop it first.
        return Err(RestoreError::Io {
            path: dir.join("postmaster.pid").display().to_string(),
            source: std::io::Error::other(
                "a server may be running on this data directory; stop it before --force",
            ),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|source| RestoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    tracing::info!(dir = %dir.display(), "emptied (--force)");
    Ok(())
}

/// Whether `dir` is missing or empty.
pub fn is_empty_or_missing(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut e) => e.next().is_none(),
        Err(_) => !dir.exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_empty_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        prepare_blocking(&dir.path().join("missing"), false).unwrap();
        prepare_blocking(dir.path(), false).unwrap();
        std::fs::create_dir(dir.path().join("base")).unwrap();
        std::fs::write(dir.path().join("base/1"), "x").unwrap();
        let err = prepare_blocking(dir.path(), false).unwrap_err();
        assert!(matches!(err, RestoreError::NotEmpty { .. }));
        assert!(dir.path().join("base/1").exists(), "nothing changed");
        prepare_blocking(dir.path(), true).unwrap();
        assert!(is_empty_or_missing(dir.path()));
        assert!(dir.path().exists());
    }

    #[test]
    fn force_refuses_a_running_server() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postmaster.pid"), "1").unwrap();
        assert!(prepare_blocking(dir.path(), true).is_err());
        assert!(dir.path().join("postmaster.pid").exists());
    }
}

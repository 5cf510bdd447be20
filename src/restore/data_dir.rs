//! The directories a restore writes into: refused when they hold anything,
//! unless the caller forces, which empties them (the dirs themselves stay).
//! A failed restore puts each one back as it found it: a directory it
//! created is removed, one that was empty is emptied again.

use super::error::RestoreError;
use std::path::Path;

/// How a restore found a target directory, to put it back after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Did not exist: the restore creates it.
    Missing,
    /// Existed and was empty (or was emptied with --force).
    Empty,
}

impl Found {
    pub fn of(dir: &Path) -> Found {
        if dir.exists() {
            Found::Empty
        } else {
            Found::Missing
        }
    }
}

/// Missing or empty is fine; otherwise NotEmpty, or emptied with `force`.
pub fn prepare_blocking(dir: &Path, force: bool) -> Result<Found, RestoreError> {
    let io = |source| RestoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io(e)),
    };
    if entries.next().is_none() {
        return Ok(Found::Empty);
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
    empty_blocking(dir)?;
    tracing::info!(dir = %dir.display(), "emptied (--force)");
    Ok(Found::Empty)
}

/// After a failed restore: removes `dir` if the restore created it, else
/// empties it again, and logs which of the two it did.
pub fn put_back_blocking(dir: &Path, found: Found) -> Result<(), RestoreError> {
    if !dir.exists() {
        return Ok(());
    }
    match found {
        Found::Missing => {
            std::fs::remove_dir_all(dir).map_err(|source| RestoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            tracing::info!(dir = %dir.display(), "removed the directory the failed restore created");
        }
        Found::Empty => {
            if is_empty_or_missing(dir) {
                return Ok(());
            }
            empty_blocking(dir)?;
            tracing::info!(dir = %dir.display(), "removed what the failed restore wrote; the directory is empty again");
        }
    }
    Ok(())
}

fn empty_blocking(dir: &Path) -> Result<(), RestoreError> {
    let io = |source| RestoreError::Io {
        path: dir.display().to_string(),
        source,
    };
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
    fn put_back_removes_a_created_dir_and_empties_a_found_one() {
        let root = tempfile::tempdir().unwrap();
        let created = root.path().join("created");
        assert_eq!(prepare_blocking(&created, false).unwrap(), Found::Missing);
        std::fs::create_dir_all(created.join("base")).unwrap();
        put_back_blocking(&created, Found::Missing).unwrap();
        assert!(!created.exists());

        let found = root.path().join("found");
        std::fs::create_dir(&found).unwrap();
        assert_eq!(prepare_blocking(&found, false).unwrap(), Found::Empty);
        std::fs::write(found.join("PG_VERSION"), "15").unwrap();
        put_back_blocking(&found, Found::Empty).unwrap();
        assert!(found.exists() && is_empty_or_missing(&found));
    }

    #[test]
    fn force_refuses_a_running_server() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postmaster.pid"), "1").unwrap();
        assert!(prepare_blocking(dir.path(), true).is_err());
        assert!(dir.path().join("postmaster.pid").exists());
    }
}

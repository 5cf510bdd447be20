//! Running servers as their unprivileged Debian user when tests run as root.
//!
//! initdb and postgres refuse to run as root, and mariadbd would need
//! `--user`, which makes it setuid itself and so drop the parent-death
//! signal. Instead the child is started directly with the service user's
//! uid/gid, and its scratch directory is chowned to that user.

use std::ffi::{CStr, CString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// A Debian service account (`postgres`, `mysql`) that servers run as.
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whether this test process runs as root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The account servers must run as: `Some(name)` when we are root, else None
/// (then servers simply run as the current user).
pub fn service_user(name: &str, package: &str) -> Option<ServiceUser> {
    if !running_as_root() {
        return None;
    }
    let c_name = CString::new(name).expect("user name without NUL");
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy
    // out what we need before any other getpw* call.
    let pw = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if pw.is_null() {
        panic!(
            "user {name} not found: running as root, servers must run as {name}; \
             install Debian package {package} (scripts/test does this)"
        );
    }
    // SAFETY: pw is non-null and points at a valid passwd entry.
    let (uid, gid, pw_name) =
        unsafe { ((*pw).pw_uid, (*pw).pw_gid, CStr::from_ptr((*pw).pw_name)) };
    Some(ServiceUser {
        name: pw_name.to_string_lossy().into_owned(),
        uid,
        gid,
    })
}

impl ServiceUser {
    /// Makes `cmd` run as this user (std also clears supplementary groups).
    pub fn apply(&self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    /// Chowns `path` and everything below it to this user.
    pub fn chown_tree(&self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), self.name));
        if path.is_dir() && !path.is_symlink() {
            let entries = std::fs::read_dir(path)
                .unwrap_or_else(|e| panic!("listing {}: {e}", path.display()));
            for entry in entries {
                let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", path.display()));
                self.chown_tree(&entry.path());
            }
        }
    }
}

/// A fresh directory under /tmp (always reachable by service users, unlike a
/// root-only $TMPDIR), mode 0755, owned by `owner` if given. Removed on drop.
pub fn scratch_dir(prefix: &str, owner: Option<&ServiceUser>) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("creating a scratch dir {prefix}* in /tmp: {e}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 0755 {}: {e}", dir.path().display()));
    if let Some(user) = owner {
        user.chown_tree(dir.path());
    }
    dir
}

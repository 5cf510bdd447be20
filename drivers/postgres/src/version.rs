//! The PostgreSQL majors instarec supports and what differs between them
//! that instarec sees, as one table keyed by major: code asks the table
//! instead of comparing version numbers itself.

use std::fmt;

/// `server_version_num`, e.g. 150008 for 15.8 or 180004 for 18.4.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersionNum(pub u32);

impl ServerVersionNum {
    /// From the `server_version` startup parameter or setting: "15.8 (Debian
    /// 15.8-1.pgdg120+1)", "18.4", "18beta1", "9.6.24". None if it does not
    /// start with a number.
    pub fn from_server_version(text: &str) -> Option<ServerVersionNum> {
        let mut numbers = text
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|part| part.parse::<u32>().ok());
        let first = numbers.next()??;
        // A pre-release ("18beta1") has no minor: it counts as .0.
        let second = numbers.next().flatten().unwrap_or(0);
        if first >= 10 {
            Some(ServerVersionNum(first * 10000 + second))
        } else {
            let third = numbers.next().flatten().unwrap_or(0);
            Some(ServerVersionNum(first * 10000 + second * 100 + third))
        }
    }

    /// 15 for 150008; 9 for 90624 (majors before 10 had two parts).
    pub fn major(self) -> u32 {
        self.0 / 10000
    }
}

impl fmt::Display for ServerVersionNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 100000 {
            write!(f, "{}.{}", self.0 / 10000, self.0 % 10000)
        } else {
            write!(
                f,
                "{}.{}.{}",
                self.0 / 10000,
                self.0 / 100 % 100,
                self.0 % 100
            )
        }
    }
}

/// What one supported major looks like to instarec.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Major {
    pub major: u32,
    /// `XLOG_PAGE_MAGIC`: the first two bytes of every WAL page.
    pub wal_page_magic: u16,
    /// `PG_CONTROL_VERSION` in global/pg_control.
    pub pg_control_version: u32,
    /// `PostgreSQL-Backup-Manifest-Version` that BASE_BACKUP writes; 2 adds
    /// `System-Identifier`.
    pub backup_manifest_version: u32,
    /// Whether `initdb` enables data checksums unless told not to.
    pub initdb_data_checksums: bool,
}

/// Oldest first. Adding a major is adding a row (and running the tests on it).
pub const SUPPORTED: &[Major] = &[
    Major {
        major: 15,
        wal_page_magic: 0xD110,
        pg_control_version: 1300,
        backup_manifest_version: 1,
        initdb_data_checksums: false,
    },
    Major {
        major: 16,
        wal_page_magic: 0xD113,
        pg_control_version: 1300,
        backup_manifest_version: 1,
        initdb_data_checksums: false,
    },
    Major {
        major: 17,
        wal_page_magic: 0xD116,
        pg_control_version: 1700,
        backup_manifest_version: 2,
        initdb_data_checksums: false,
    },
    Major {
        major: 18,
        wal_page_magic: 0xD118,
        pg_control_version: 1700,
        backup_manifest_version: 2,
        initdb_data_checksums: true,
    },
];

/// WAL page magics of majors older than we support, so that `archive
/// verify` can name the major of a segment it refuses.
const OLDER_WAL_PAGE_MAGICS: &[(u32, u16)] = &[(13, 0xD106), (14, 0xD10D)];

pub fn oldest_supported() -> u32 {
    SUPPORTED[0].major
}

pub fn newest_supported() -> u32 {
    SUPPORTED[SUPPORTED.len() - 1].major
}

/// A server instarec does not work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PostgreSQL at {addr} is version {version}, which instarec does not support (it supports PostgreSQL {oldest} to {newest}); {advice}")]
pub struct UnsupportedVersion {
    pub addr: String,
    pub version: String,
    pub oldest: u32,
    pub newest: u32,
    advice: &'static str,
}

/// The row for the server at `addr` that reported `server_version`, or why
/// instarec refuses it. A version it cannot read is refused too: guessing
/// would be worse.
pub fn supported_major(
    addr: &str,
    server_version: &str,
) -> Result<&'static Major, UnsupportedVersion> {
    let num = ServerVersionNum::from_server_version(server_version);
    let refuse = |advice| UnsupportedVersion {
        addr: addr.to_string(),
        version: server_version.to_string(),
        oldest: oldest_supported(),
        newest: newest_supported(),
        advice,
    };
    match num.map(ServerVersionNum::major) {
        Some(m) if m < oldest_supported() => Err(refuse(
            "upgrade the server (pg_upgrade), or use pg_basebackup and archive_command tools that support it",
        )),
        Some(m) => SUPPORTED
            .iter()
            .find(|row| row.major == m)
            .ok_or_else(|| refuse("use a newer instarec that supports this major, or a supported server")),
        None => Err(refuse("the server_version it reports cannot be read; please report this")),
    }
}

/// The major whose WAL format uses page magic `magic` (supported or older).
pub fn major_for_wal_page_magic(magic: u16) -> Option<u32> {
    SUPPORTED
        .iter()
        .map(|row| (row.major, row.wal_page_magic))
        .chain(OLDER_WAL_PAGE_MAGICS.iter().copied())
        .find(|(_, m)| *m == magic)
        .map(|(major, _)| major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_version_strings() {
        let num = |s| ServerVersionNum::from_server_version(s).map(|v| v.0);
        assert_eq!(num("15.8 (Debian 15.8-1.pgdg120+1)"), Some(150008));
        assert_eq!(num("18.4"), Some(180004));
        assert_eq!(num("18beta1"), Some(180000));
        assert_eq!(num("17devel"), Some(170000));
        assert_eq!(num("9.6.24"), Some(90624));
        assert_eq!(num("PostgreSQL"), None);
        assert_eq!(ServerVersionNum(180004).to_string(), "18.4");
        assert_eq!(ServerVersionNum(90624).major(), 9);
    }

    #[test]
    fn supports_15_to_18_and_names_the_range_otherwise() {
        for v in ["15.8", "16.14", "17.10", "18.4"] {
            assert!(supported_major("h:5432", v).is_ok(), "{v}");
        }
        assert_eq!(
            supported_major("h:5432", "17.10")
                .unwrap()
                .pg_control_version,
            1700
        );
        assert_eq!(
            supported_major("h:5432", "16.1")
                .unwrap()
                .pg_control_version,
            1300
        );
        for v in ["14.12", "9.6.24", "19beta1", "weird"] {
            let err = supported_major("h:5432", v).unwrap_err().to_string();
            assert!(
                err.contains("h:5432") && err.contains(v) && err.contains("15 to 18"),
                "{err}"
            );
        }
    }

    #[test]
    fn wal_page_magics_map_to_their_major() {
        assert_eq!(major_for_wal_page_magic(0xD110), Some(15));
        assert_eq!(major_for_wal_page_magic(0xD118), Some(18));
        assert_eq!(major_for_wal_page_magic(0xD106), Some(13));
        assert_eq!(major_for_wal_page_magic(0x1234), None);
    }
}

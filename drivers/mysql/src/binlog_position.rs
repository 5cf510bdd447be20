//! A file-and-offset binlog position, displayed "mysql-bin.000003:1234".

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinlogPositionError {
    #[error("invalid binlog position {text:?}: {reason}; write it as file:offset, e.g. mysql-bin.000003:1234")]
    Invalid { text: String, reason: &'static str },
}

/// A place in a server's binlog: the file's base name and a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

impl BinlogPosition {
    /// Checks that `file` is a plain base name, as servers report them:
    /// it ends up in archive keys and paths, so no separators or NULs.
    pub fn new(file: impl Into<String>, pos: u64) -> Result<Self, BinlogPositionError> {
        let file = file.into();
        validate_file_name(&file).map_err(|reason| BinlogPositionError::Invalid {
            text: format!("{file}:{pos}"),
            reason,
        })?;
        Ok(BinlogPosition { file, pos })
    }
}

fn validate_file_name(file: &str) -> Result<(), &'static str> {
    if file.is_empty() {
        return Err("the file name is empty");
    }
    if file == "." || file == ".." || file.contains(['/', '\\', '\0']) {
        return Err("the file name must be a base name like mysql-bin.000003");
    }
    Ok(())
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for BinlogPosition {
    type Err = BinlogPositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| BinlogPositionError::Invalid {
            text: s.to_string(),
            reason,
        };
        let (file, pos) = s
            .rsplit_once(':')
            .ok_or_else(|| invalid("no ':' before the offset"))?;
        if pos.is_empty() || !pos.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the offset is not a number"));
        }
        let pos = pos
            .parse()
            .map_err(|_| invalid("the offset does not fit in u64"))?;
        validate_file_name(file).map_err(invalid)?;
        Ok(BinlogPosition {
            file: file.to_string(),
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let p: BinlogPosition = "mysql-bin.000003:1234".parse().unwrap();
        assert_eq!(p, BinlogPosition::new("mysql-bin.000003", 1234).unwrap());
        assert_eq!(p.to_string(), "mysql-bin.000003:1234");
    }

    #[test]
    fn rejects_what_is_not_a_position() {
        for bad in [
            "",
            "mysql-bin.000003",
            ":4",
            "mysql-bin.000003:",
            "mysql-bin.000003:-4",
            "mysql-bin.000003:+4",
            "../etc/passwd:4",
            "a/b:4",
            "..:4",
            "f:18446744073709551616",
        ] {
            let err = bad.parse::<BinlogPosition>().unwrap_err();
            assert!(
                err.to_string().contains("e.g. mysql-bin.000003:1234"),
                "{bad}: {err}"
            );
        }
        assert!(BinlogPosition::new("x/y", 4).is_err());
    }
}

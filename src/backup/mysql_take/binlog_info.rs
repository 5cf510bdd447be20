//! The binlog position a mariabackup/xtrabackup backup is consistent with,
//! as the tool prints it at the end of `--backup`:
//!
//! ```text
//! [00] 2026-11-27 17:40:02 MySQL binlog position: filename 'mysql-bin.000001', position '1095', GTID of the last change '0-1-5'
//! ```
//!
//! The same text is in `xtrabackup_binlog_info` inside the stream. MySQL
//! prints @@gtid_executed, which breaks lines after each comma when several
//! servers contributed, so the quoted GTID may span lines.

const MARKER: &str = "MySQL binlog position:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogInfo {
    pub file: String,
    pub pos: u64,
    /// The GTID state in the server's notation ("0-1-42", "uuid:1-42");
    /// empty when the server logs no GTIDs.
    pub gtid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the backup tool printed a binlog position instarec cannot read ({reason}): {text:?}; please report this with the tool's version")]
pub struct BinlogInfoError {
    pub text: String,
    pub reason: &'static str,
}

impl BinlogInfo {
    /// True if `line` starts the position report (which may continue on
    /// the next lines: see [`BinlogInfo::is_complete`]).
    pub fn starts_in(line: &str) -> bool {
        line.contains(MARKER)
    }

    /// True once every quoted value of the report has its closing quote.
    pub fn is_complete(text: &str) -> bool {
        text.split_once(MARKER)
            .is_some_and(|(_, rest)| rest.matches('\'').count() % 2 == 0)
    }

    /// Parses the report; `text` holds its line(s) and may have a log prefix.
    pub fn parse(text: &str) -> Result<BinlogInfo, BinlogInfoError> {
        let fail = |reason| BinlogInfoError {
            text: text.trim().to_string(),
            reason,
        };
        let (_, mut rest) = text.split_once(MARKER).ok_or_else(|| fail("no marker"))?;
        let mut file = None;
        let mut pos = None;
        let mut gtid = None;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if rest.is_empty() {
                break;
            }
            let (name, after) = rest
                .split_once('\'')
                .ok_or_else(|| fail("a field without a quoted value"))?;
            let (value, after) = after
                .split_once('\'')
                .ok_or_else(|| fail("an unterminated quote"))?;
            match name.trim() {
                "filename" => file = Some(value.to_string()),
                "position" => {
                    pos = Some(
                        value
                            .parse()
                            .map_err(|_| fail("position is not a number"))?,
                    )
                }
                "GTID of the last change" => {
                    gtid = Some(value.chars().filter(|c| !c.is_whitespace()).collect())
                }
                // Unknown fields from newer tools are ignored.
                _ => {}
            }
            rest = after;
        }
        match (file, pos) {
            (Some(file), Some(pos)) if !file.is_empty() => Ok(BinlogInfo {
                file,
                pos,
                gtid: gtid.unwrap_or_default(),
            }),
            _ => Err(fail("filename or position missing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariabackup_line() {
        let line = "[00] 2026-11-27 17:40:02 MySQL binlog position: filename 'mysql-bin.000001', position '1095', GTID of the last change '0-1-5'";
        assert!(BinlogInfo::starts_in(line));
        assert!(BinlogInfo::is_complete(line));
        assert_eq!(
            BinlogInfo::parse(line).unwrap(),
            BinlogInfo {
                file: "mysql-bin.000001".into(),
                pos: 1095,
                gtid: "0-1-5".into()
            }
        );
    }

    #[test]
    fn several_domains() {
        let line = "MySQL binlog position: filename 'b.000002', position '4', GTID of the last change '0-1-42,1-2-7'";
        assert_eq!(BinlogInfo::parse(line).unwrap().gtid, "0-1-42,1-2-7");
    }

    #[test]
    fn xtrabackup_gtid_set_across_lines() {
        let first = "2026-11-27T17:40:02.123456-00:00 0 [Note] [MY-011825] [Xtrabackup] MySQL binlog position: filename 'binlog.000003', position '157', GTID of the last change '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,";
        assert!(BinlogInfo::starts_in(first));
        assert!(!BinlogInfo::is_complete(first));
        let text = format!("{first}\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3'");
        assert!(BinlogInfo::is_complete(&text));
        let info = BinlogInfo::parse(&text).unwrap();
        assert_eq!(
            info.gtid,
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3"
        );
        assert_eq!((info.file.as_str(), info.pos), ("binlog.000003", 157));
    }

    #[test]
    fn without_gtids() {
        let line = "MySQL binlog position: filename 'binlog.000002', position '157'";
        let info = BinlogInfo::parse(line).unwrap();
        assert_eq!((info.pos, info.gtid.as_str()), (157, ""));
    }

    #[test]
    fn malformed_reports_name_the_text() {
        for bad in [
            "no marker here",
            "MySQL binlog position: filename 'b.000001', position 'x'",
            "MySQL binlog position: filename 'b.000001'",
            "MySQL binlog position: filename 'b.000001', position '4",
            "MySQL binlog position: garbage",
        ] {
            let e = BinlogInfo::parse(bad).unwrap_err();
            assert!(e.to_string().contains("cannot read"), "{bad}: {e}");
        }
    }
}

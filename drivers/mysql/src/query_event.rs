//! QUERY_EVENT (2): a statement, as logged. The client only needs the text,
//! to see where a transaction ends (BEGIN … COMMIT around non-transactional
//! changes, a DDL on its own).
//!
//! ```text
//! thread_id u32le | exec_time u32le | db_len u8 | error_code u16le
//! | status_vars_len u16le | status_vars | db name | 0x00 | query text (rest)
//! ```

use crate::event::{require_len, EventError};
use crate::event_type::EventType;

const POST_HEADER_LEN: usize = 13;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent<'a> {
    pub thread_id: u32,
    pub error_code: u16,
    pub database: &'a [u8],
    pub query: &'a [u8],
}

impl<'a> QueryEvent<'a> {
    /// `body` is the event without its header and checksum trailer.
    pub fn parse(body: &'a [u8]) -> Result<Self, EventError> {
        let ty = EventType::Query;
        require_len(ty, body, POST_HEADER_LEN)?;
        let db_len = body[8] as usize;
        let status_len = u16::from_le_bytes([body[11], body[12]]) as usize;
        let db_start = POST_HEADER_LEN + status_len;
        let query_start = db_start + db_len + 1;
        require_len(ty, body, query_start)?;
        Ok(QueryEvent {
            thread_id: u32::from_le_bytes([body[0], body[1], body[2], body[3]]),
            error_code: u16::from_le_bytes([body[9], body[10]]),
            database: &body[db_start..db_start + db_len],
            query: &body[query_start..],
        })
    }

    /// Whether this statement closes the event group it is in: COMMIT or
    /// ROLLBACK after BEGIN, or XA PREPARE / XA COMMIT / XA ROLLBACK.
    pub fn ends_group(&self) -> bool {
        let text = String::from_utf8_lossy(self.query);
        let words: Vec<String> = text
            .split_ascii_whitespace()
            .take(2)
            .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
            .collect();
        match words.first().map(String::as_str) {
            Some("COMMIT") | Some("ROLLBACK") => true,
            Some("XA") => matches!(
                words.get(1).map(String::as_str),
                Some("PREPARE") | Some("COMMIT") | Some("ROLLBACK")
            ),
            _ => false,
        }
    }

    /// Whether this is the BEGIN that opens a MySQL transaction.
    pub fn is_begin(&self) -> bool {
        self.query.trim_ascii().eq_ignore_ascii_case(b"BEGIN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of a MariaDB 10.11 "COMMIT" query event after an Aria insert
    /// (status vars shortened to one Q_FLAGS2 entry).
    #[rustfmt::skip]
    const COMMIT_BODY: &[u8] = &[
        0x05, 0x00, 0x00, 0x00, // thread_id 5
        0x00, 0x00, 0x00, 0x00, // exec_time
        0x04,                   // db_len
        0x00, 0x00,             // error_code
        0x05, 0x00,             // status_vars_len
        0x00, 0x00, 0x00, 0x00, 0x00, // Q_FLAGS2_CODE 0
        b't', b'e', b's', b't', 0x00,
        b'C', b'O', b'M', b'M', b'I', b'T',
    ];

    #[test]
    fn parses_literal_bytes() {
        let q = QueryEvent::parse(COMMIT_BODY).unwrap();
        assert_eq!(q.thread_id, 5);
        assert_eq!(q.database, b"test");
        assert_eq!(q.query, b"COMMIT");
        assert!(q.ends_group());
        assert!(!q.is_begin());
        for cut in 0..COMMIT_BODY.len() - 6 {
            assert!(QueryEvent::parse(&COMMIT_BODY[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn recognises_group_ends() {
        let with = |text: &'static [u8]| QueryEvent {
            thread_id: 0,
            error_code: 0,
            database: b"",
            query: text,
        };
        assert!(with(b"ROLLBACK").ends_group());
        assert!(with(b"XA PREPARE X'31',X'',1").ends_group());
        assert!(with(b"xa commit 'a'").ends_group());
        assert!(!with(b"XA END X'31'").ends_group());
        assert!(!with(b"CREATE TABLE committed (a int)").ends_group());
        assert!(!with(b"BEGIN").ends_group());
        assert!(with(b"BEGIN").is_begin());
        assert!(with(b"").query.is_empty());
    }
}

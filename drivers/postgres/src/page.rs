//! WAL page headers (`XLogPageHeaderData`, and `XLogLongPageHeaderData` on the first
//! page of each segment). `archive verify` reads them to check that a segment belongs
//! to this cluster and sits where its name says. Fields are in the server's byte order,
//! which is little-endian on every platform we support.

use crate::lsn::{Lsn, TimelineId};

/// `xlp_info` flag: the page begins with the rest of a record from the previous page.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `xlp_info` flag: this page has the long header (first page of a segment).
pub const XLP_LONG_HEADER: u16 = 0x0002;

/// MAXALIGN(sizeof(XLogPageHeaderData)) on 64-bit builds.
pub const SHORT_HEADER_LEN: usize = 24;
/// MAXALIGN(sizeof(XLogLongPageHeaderData)).
pub const LONG_HEADER_LEN: usize = 40;

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct XLogPageHeader {
    pub magic: u16,
    pub info: u16,
    pub tli: TimelineId,
    /// The LSN of the first byte of this page.
    pub pageaddr: Lsn,
    /// Bytes of a continued record at the start of the page.
    pub rem_len: u32,
    /// Present when `info` has [`XLP_LONG_HEADER`].
    pub long: Option<XLogLongPageHeader>,
}

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct XLogLongPageHeader {
    pub system_id: u64,
    pub seg_size: u32,
    pub blcksz: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageHeaderError {
    #[error("WAL page header is truncated: need {need} bytes, have {have}; the segment file is damaged or was cut short")]
    Truncated { need: usize, have: usize },
}

impl XLogPageHeader {
    pub fn parse(buf: &[u8]) -> Result<Self, PageHeaderError> {
        if buf.len() < SHORT_HEADER_LEN {
            return Err(PageHeaderError::Truncated {
                need: SHORT_HEADER_LEN,
                have: buf.len(),
            });
        }
        let info = le_u16(buf, 2);
        let long = if info & XLP_LONG_HEADER != 0 {
            if buf.len() < LONG_HEADER_LEN {
                return Err(PageHeaderError::Truncated {
                    need: LONG_HEADER_LEN,
                    have: buf.len(),
                });
            }
            Some(XLogLongPageHeader {
                system_id: le_u64(buf, 24),
                seg_size: le_u32(buf, 32),
                blcksz: le_u32(buf, 36),
            })
        } else {
            None
        };
        Ok(XLogPageHeader {
            magic: le_u16(buf, 0),
            info,
            tli: TimelineId(le_u32(buf, 4)),
            pageaddr: Lsn(le_u64(buf, 8)),
            rem_len: le_u32(buf, 16),
            long,
        })
    }

    pub fn is_long(&self) -> bool {
        self.long.is_some()
    }

    /// Bytes the header occupies on the page.
    pub fn header_len(&self) -> usize {
        if self.is_long() {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }
}

fn le_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

fn le_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    // First 40 bytes of 000000010000000000000001 from a PostgreSQL 15 cluster made
    // with `initdb --wal-segsize 32` (system identifier 7712889832133767100).
    const FIRST_PAGE: [u8; 40] = [
        0x10, 0xd1, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xbc, 0x2f, 0x0e, 0x0c, 0x70, 0xb0, 0x09,
        0x6b, //
        0x00, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00,
    ];
    // The header of the second page (offset 8192) of the same segment.
    const SECOND_PAGE: [u8; 24] = [
        0x10, 0xd1, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, //
        0x35, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parses_long_header_of_first_page() {
        let h = XLogPageHeader::parse(&FIRST_PAGE).unwrap();
        assert_eq!(h.magic, 0xD110);
        assert_eq!(crate::version::major_for_wal_page_magic(h.magic), Some(15));
        assert_eq!(h.tli, TimelineId(1));
        assert_eq!(h.pageaddr, "0/2000000".parse().unwrap());
        assert_eq!(h.rem_len, 0);
        assert_eq!(h.header_len(), LONG_HEADER_LEN);
        let long = h.long.unwrap();
        assert_eq!(long.system_id, 7712889832133767100);
        assert_eq!(long.seg_size, 32 << 20);
        assert_eq!(long.blcksz, 8192);
    }

    #[test]
    fn parses_short_header_with_continuation() {
        let h = XLogPageHeader::parse(&SECOND_PAGE).unwrap();
        assert!(!h.is_long());
        assert_eq!(h.info & XLP_FIRST_IS_CONTRECORD, XLP_FIRST_IS_CONTRECORD);
        assert_eq!(h.pageaddr, "0/2002000".parse().unwrap());
        assert_eq!(h.rem_len, 0x235);
        assert_eq!(h.header_len(), SHORT_HEADER_LEN);
    }

    #[test]
    fn truncated_headers_are_errors_not_panics() {
        assert_eq!(
            XLogPageHeader::parse(&FIRST_PAGE[..23]),
            Err(PageHeaderError::Truncated { need: 24, have: 23 })
        );
        assert_eq!(
            XLogPageHeader::parse(&FIRST_PAGE[..39]),
            Err(PageHeaderError::Truncated { need: 40, have: 39 })
        );
        assert_eq!(
            XLogPageHeader::parse(&[]),
            Err(PageHeaderError::Truncated { need: 24, have: 0 })
        );
    }
}

//! The binlog checksum algorithm (binlog_checksum), as announced by the
//! FORMAT_DESCRIPTION event of each binlog file and stream.

use std::fmt;

/// Bytes a CRC32 checksum adds to the end of every event.
pub const CRC32_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinlogChecksum {
    Off,
    /// CRC-32 (ISO-HDLC, the zlib one) of every byte of the event before the
    /// last four, stored little-endian in those four.
    Crc32,
}

impl BinlogChecksum {
    /// The algorithm byte as written in FORMAT_DESCRIPTION (0 off, 1 CRC32);
    /// None for anything else, including 255 ("undefined", pre-5.6 servers).
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BinlogChecksum::Off),
            1 => Some(BinlogChecksum::Crc32),
            _ => None,
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            BinlogChecksum::Off => 0,
            BinlogChecksum::Crc32 => 1,
        }
    }

    /// Trailer length this algorithm adds to each event.
    pub fn trailer_len(self) -> usize {
        match self {
            BinlogChecksum::Off => 0,
            BinlogChecksum::Crc32 => CRC32_LEN,
        }
    }
}

impl fmt::Display for BinlogChecksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinlogChecksum::Off => "NONE",
            BinlogChecksum::Crc32 => "CRC32",
        })
    }
}

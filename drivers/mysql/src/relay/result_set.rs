//! A text-protocol result set, the answer to a SELECT. It is a sequence of
//! packets (the relay does not offer CLIENT_DEPRECATE_EOF, so EOF packets
//! close the column list and the rows):
//!
//! ```text
//! column_count lenenc
//! column_count × ColumnDefinition41: "def" | schema | table | org_table | name | org_name
//!     (all lenenc) | 0x0c | charset u16le | length u32le | type u8 | flags u16le
//!     | decimals u8 | 0x0000
//! EOF: 0xfe | warnings u16le | status u16le
//! rows: one lenenc string per column, 0xfb for NULL
//! EOF
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::eof_packet::{EofPacket, EOF_HEADER};
use super::wire::{put_lenenc_int, put_lenenc_str, Reader, Truncated};

const NULL_VALUE: u8 = 0xfb;
const CHARSET_UTF8: u16 = 33;
const CHARSET_BINARY: u16 = 63;
const TYPE_LONGLONG: u8 = 0x08;
const TYPE_VAR_STRING: u8 = 0xfd;
/// NOT_NULL_FLAG | UNSIGNED_FLAG | BINARY_FLAG | NUM_FLAG.
const INTEGER_FLAGS: u16 = 0x0001 | 0x0020 | 0x0080 | 0x8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl TextResultSet {
    /// One row of values.
    pub fn single_row(columns: Vec<Column>, values: Vec<Option<String>>) -> Self {
        TextResultSet {
            columns,
            rows: vec![values],
        }
    }

    /// The packets, in order.
    pub fn packets(&self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.columns.len() + self.rows.len() + 3);
        let mut buf = BytesMut::new();
        put_lenenc_int(&mut buf, self.columns.len() as u64);
        out.push(buf.split().freeze());
        for column in &self.columns {
            encode_column(column, &mut buf);
            out.push(buf.split().freeze());
        }
        encode_eof(&mut buf);
        out.push(buf.split().freeze());
        for row in &self.rows {
            for value in row {
                match value {
                    Some(v) => put_lenenc_str(&mut buf, v.as_bytes()),
                    None => buf.put_u8(NULL_VALUE),
                }
            }
            out.push(buf.split().freeze());
        }
        encode_eof(&mut buf);
        out.push(buf.split().freeze());
        out
    }

    pub fn parse(packets: &[Bytes]) -> Result<Self, Truncated> {
        let mut it = packets.iter();
        let mut next = || it.next().ok_or(Truncated("result set ended early"));
        let count = Reader::new(next()?).lenenc_int("column count")?;
        let mut columns = Vec::new();
        for _ in 0..count {
            columns.push(parse_column(next()?)?);
        }
        if next()?.first() != Some(&EOF_HEADER) {
            return Err(Truncated("EOF after the columns"));
        }
        let mut rows = Vec::new();
        loop {
            let packet = next()?;
            if packet.first() == Some(&EOF_HEADER) && packet.len() < 9 {
                break;
            }
            let mut r = Reader::new(packet);
            let mut row = Vec::new();
            for _ in 0..count {
                if r.is_empty() {
                    return Err(Truncated("row"));
                }
                if r.peek() == Some(NULL_VALUE) {
                    r.u8("NULL")?;
                    row.push(None);
                } else {
                    let v = r.lenenc_str("value")?;
                    row.push(Some(String::from_utf8_lossy(v).into_owned()));
                }
            }
            rows.push(row);
        }
        Ok(TextResultSet { columns, rows })
    }
}

fn encode_column(column: &Column, buf: &mut BytesMut) {
    put_lenenc_str(buf, b"def");
    put_lenenc_str(buf, b""); // schema
    put_lenenc_str(buf, b""); // table
    put_lenenc_str(buf, b""); // org_table
    put_lenenc_str(buf, column.name.as_bytes());
    put_lenenc_str(buf, b""); // org_name
    buf.put_u8(0x0c);
    let (charset, length, ty, flags) = match column.kind {
        ColumnKind::Integer => (CHARSET_BINARY, 21, TYPE_LONGLONG, INTEGER_FLAGS),
        ColumnKind::Text => (CHARSET_UTF8, 3 * 255, TYPE_VAR_STRING, 0),
    };
    buf.put_u16_le(charset);
    buf.put_u32_le(length);
    buf.put_u8(ty);
    buf.put_u16_le(flags);
    buf.put_u8(0); // decimals
    buf.put_u16_le(0);
}

fn parse_column(packet: &[u8]) -> Result<Column, Truncated> {
    let mut r = Reader::new(packet);
    for what in ["catalog", "schema", "table", "org_table"] {
        r.lenenc_str(what)?;
    }
    let name = String::from_utf8_lossy(r.lenenc_str("name")?).into_owned();
    r.lenenc_str("org_name")?;
    r.u8("fixed length")?;
    r.u16("charset")?;
    r.u32("length")?;
    let kind = match r.u8("type")? {
        TYPE_LONGLONG => ColumnKind::Integer,
        _ => ColumnKind::Text,
    };
    Ok(Column { name, kind })
}

fn encode_eof(buf: &mut BytesMut) {
    EofPacket::default().encode(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_packets() {
        let rs = TextResultSet::single_row(
            vec![Column {
                name: "@@GLOBAL.SERVER_ID".into(),
                kind: ColumnKind::Integer,
            }],
            vec![Some("1".into())],
        );
        let packets = rs.packets();
        assert_eq!(packets.len(), 5);
        assert_eq!(&packets[0][..], &[0x01]);
        let mut column = b"\x03def\x00\x00\x00\x12@@GLOBAL.SERVER_ID\x00\x0c".to_vec();
        column.extend_from_slice(&[0x3f, 0x00, 0x15, 0, 0, 0, 0x08, 0xa1, 0x80, 0x00, 0, 0]);
        assert_eq!(&packets[1][..], &column[..]);
        assert_eq!(&packets[2][..], &[0xfe, 0, 0, 0x02, 0]);
        assert_eq!(&packets[3][..], b"\x011");
        assert_eq!(&packets[4][..], &[0xfe, 0, 0, 0x02, 0]);
        assert_eq!(TextResultSet::parse(&packets).unwrap(), rs);
        for cut in 0..packets.len() {
            assert!(TextResultSet::parse(&packets[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn null_values_and_several_rows() {
        let rs = TextResultSet {
            columns: vec![
                Column {
                    name: "Variable_name".into(),
                    kind: ColumnKind::Text,
                },
                Column {
                    name: "Value".into(),
                    kind: ColumnKind::Text,
                },
            ],
            rows: vec![
                vec![Some("server_id".into()), Some("1".into())],
                vec![Some("x".into()), None],
            ],
        };
        let packets = rs.packets();
        assert_eq!(&packets[4][..], b"\x09server_id\x011");
        assert_eq!(&packets[5][..], b"\x01x\xfb");
        assert_eq!(TextResultSet::parse(&packets).unwrap(), rs);
    }
}

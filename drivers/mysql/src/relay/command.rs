//! The commands a replica sends the relay after logging in.
//!
//! ```text
//! COM_QUIT              0x01
//! COM_QUERY             0x03 | query text (rest)
//! COM_PING              0x0e
//! COM_BINLOG_DUMP       0x12 | pos u32le | flags u16le | server_id u32le | file name (rest)
//! COM_REGISTER_SLAVE    0x15 | server_id u32le | hostname lenstr1 | user lenstr1
//!                       | password lenstr1 | port u16le | rank u32le | master_id u32le
//! COM_BINLOG_DUMP_GTID  0x1e | flags u16le | server_id u32le | name_len u32le | name
//!                       | pos u64le | [sid_block_len u32le | sid block]   (MySQL)
//! ```
//!
//! replication_command.rs encodes the client side of the same commands.

use bytes::{BufMut, BytesMut};

use super::wire::{Reader, Truncated};
use crate::gtid_mysql::MysqlGtidSet;
use crate::replication_command::{
    COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_QUERY, COM_REGISTER_SLAVE,
};

pub const COM_QUIT: u8 = 0x01;
pub const COM_PING: u8 = 0x0e;

/// COM_BINLOG_DUMP flag: at the end of the binlog, send EOF instead of waiting.
pub const BINLOG_DUMP_NON_BLOCK: u16 = 0x01;
/// COM_BINLOG_DUMP flag (MariaDB): send ANNOTATE_ROWS events.
pub const BINLOG_SEND_ANNOTATE_ROWS_EVENT: u16 = 0x02;
/// COM_BINLOG_DUMP_GTID flag: the SID block follows.
const BINLOG_THROUGH_GTID: u16 = 0x04;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Ping,
    Query(String),
    RegisterSlave(RegisterSlave),
    BinlogDump(BinlogDumpRequest),
    BinlogDumpGtid(BinlogDumpGtidRequest),
    /// Any other command byte; answered with an error.
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterSlave {
    pub server_id: u32,
    pub hostname: String,
    pub user: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogDumpRequest {
    pub pos: u32,
    pub flags: u16,
    pub server_id: u32,
    /// Empty with MariaDB GTID (the position is in @slave_connect_state).
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogDumpGtidRequest {
    pub flags: u16,
    pub server_id: u32,
    pub file: String,
    pub pos: u64,
    pub executed: Option<MysqlGtidSet>,
}

impl Command {
    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(packet);
        let code = r.u8("command byte")?;
        Ok(match code {
            COM_QUIT => Command::Quit,
            COM_PING => Command::Ping,
            COM_QUERY => Command::Query(String::from_utf8_lossy(r.rest()).into_owned()),
            COM_REGISTER_SLAVE => {
                let server_id = r.u32("server_id")?;
                let hostname = lenstr1(&mut r, "hostname")?;
                let user = lenstr1(&mut r, "user")?;
                lenstr1(&mut r, "password")?;
                let port = r.u16("port")?;
                // rank and master_id follow; nobody uses them.
                Command::RegisterSlave(RegisterSlave {
                    server_id,
                    hostname,
                    user,
                    port,
                })
            }
            COM_BINLOG_DUMP => Command::BinlogDump(BinlogDumpRequest {
                pos: r.u32("pos")?,
                flags: r.u16("flags")?,
                server_id: r.u32("server_id")?,
                file: String::from_utf8_lossy(r.rest()).into_owned(),
            }),
            COM_BINLOG_DUMP_GTID => {
                let flags = r.u16("flags")?;
                let server_id = r.u32("server_id")?;
                let name_len = r.u32("name length")? as usize;
                let file = String::from_utf8_lossy(r.bytes(name_len, "file name")?).into_owned();
                let pos = r.u64("pos")?;
                let executed = if flags & BINLOG_THROUGH_GTID != 0 {
                    let len = r.u32("SID block length")? as usize;
                    let block = r.bytes(len, "SID block")?;
                    Some(
                        MysqlGtidSet::parse(block)
                            .map_err(|_| Truncated("SID block is not a GTID set"))?,
                    )
                } else {
                    None
                };
                Command::BinlogDumpGtid(BinlogDumpGtidRequest {
                    flags,
                    server_id,
                    file,
                    pos,
                    executed,
                })
            }
            other => Command::Other(other),
        })
    }

    /// The client's bytes for this command (tests and tools).
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Command::Quit => buf.put_u8(COM_QUIT),
            Command::Ping => buf.put_u8(COM_PING),
            Command::Query(sql) => {
                buf.put_u8(COM_QUERY);
                buf.put_slice(sql.as_bytes());
            }
            Command::RegisterSlave(r) => {
                buf.put_u8(COM_REGISTER_SLAVE);
                buf.put_u32_le(r.server_id);
                put_lenstr1(buf, &r.hostname);
                put_lenstr1(buf, &r.user);
                put_lenstr1(buf, "");
                buf.put_u16_le(r.port);
                buf.put_u32_le(0);
                buf.put_u32_le(0);
            }
            Command::BinlogDump(d) => {
                buf.put_u8(COM_BINLOG_DUMP);
                buf.put_u32_le(d.pos);
                buf.put_u16_le(d.flags);
                buf.put_u32_le(d.server_id);
                buf.put_slice(d.file.as_bytes());
            }
            Command::BinlogDumpGtid(d) => {
                buf.put_u8(COM_BINLOG_DUMP_GTID);
                let flags = match d.executed {
                    Some(_) => d.flags | BINLOG_THROUGH_GTID,
                    None => d.flags & !BINLOG_THROUGH_GTID,
                };
                buf.put_u16_le(flags);
                buf.put_u32_le(d.server_id);
                buf.put_u32_le(d.file.len() as u32);
                buf.put_slice(d.file.as_bytes());
                buf.put_u64_le(d.pos);
                if let Some(set) = &d.executed {
                    buf.put_u32_le(set.encoded_len() as u32);
                    set.encode(buf);
                }
            }
            Command::Other(code) => buf.put_u8(*code),
        }
    }
}

fn lenstr1(r: &mut Reader<'_>, what: &'static str) -> Result<String, Truncated> {
    let n = r.u8(what)? as usize;
    Ok(String::from_utf8_lossy(r.bytes(n, what)?).into_owned())
}

fn put_lenstr1(buf: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(255)];
    buf.put_u8(s.len() as u8);
    buf.put_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication_command::{BinlogDump, BinlogDumpGtid, RegisterReplica};

    #[test]
    fn register_slave_literal_bytes() {
        #[rustfmt::skip]
        let bytes: &[u8] = &[
            0x15,
            0x02, 0x00, 0x00, 0x00, // server_id 2
            0x02, b'h', b'1',       // hostname
            0x04, b'r', b'e', b'p', b'l',
            0x00,                   // password
            0xea, 0x0c,             // port 3306
            0, 0, 0, 0, 0, 0, 0, 0, // rank, master_id
        ];
        let cmd = Command::parse(bytes).unwrap();
        assert_eq!(
            cmd,
            Command::RegisterSlave(RegisterSlave {
                server_id: 2,
                hostname: "h1".into(),
                user: "repl".into(),
                port: 3306,
            })
        );
        let mut buf = BytesMut::new();
        cmd.encode(&mut buf);
        assert_eq!(&buf[..], bytes);
        // What our own binlog client sends parses too.
        buf.clear();
        RegisterReplica {
            server_id: 9,
            hostname: String::new(),
            port: 0,
        }
        .encode(&mut buf);
        assert!(matches!(
            Command::parse(&buf).unwrap(),
            Command::RegisterSlave(RegisterSlave { server_id: 9, .. })
        ));
        for cut in 1..bytes.len() - 8 {
            assert!(Command::parse(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn binlog_dump_literal_bytes() {
        let mut bytes = vec![0x12, 4, 0, 0, 0, 2, 0, 7, 0, 0, 0];
        bytes.extend_from_slice(b"mysql-bin.000002");
        let cmd = Command::parse(&bytes).unwrap();
        assert_eq!(
            cmd,
            Command::BinlogDump(BinlogDumpRequest {
                pos: 4,
                flags: 2,
                server_id: 7,
                file: "mysql-bin.000002".into(),
            })
        );
        let mut buf = BytesMut::new();
        cmd.encode(&mut buf);
        assert_eq!(&buf[..], &bytes[..]);
        buf.clear();
        BinlogDump {
            server_id: 7,
            file: "mysql-bin.000002".into(),
            pos: 4,
            send_annotate_rows: true,
        }
        .encode(&mut buf);
        assert_eq!(&buf[..], &bytes[..]);
        assert!(Command::parse(&bytes[..8]).is_err());
    }

    #[test]
    fn binlog_dump_gtid_round_trips_with_the_client_encoding() {
        let executed: MysqlGtidSet = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".parse().unwrap();
        let mut buf = BytesMut::new();
        BinlogDumpGtid {
            server_id: 2,
            executed: executed.clone(),
        }
        .encode(&mut buf);
        let cmd = Command::parse(&buf).unwrap();
        assert_eq!(
            cmd,
            Command::BinlogDumpGtid(BinlogDumpGtidRequest {
                flags: BINLOG_THROUGH_GTID,
                server_id: 2,
                file: String::new(),
                pos: 4,
                executed: Some(executed),
            })
        );
        let mut again = BytesMut::new();
        cmd.encode(&mut again);
        assert_eq!(again, buf);
        for cut in 1..buf.len() {
            assert!(Command::parse(&buf[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn simple_commands() {
        assert_eq!(Command::parse(b"\x01").unwrap(), Command::Quit);
        assert_eq!(Command::parse(b"\x0e").unwrap(), Command::Ping);
        assert_eq!(
            Command::parse(b"\x03SELECT 1").unwrap(),
            Command::Query("SELECT 1".into())
        );
        assert_eq!(Command::parse(b"\x02db").unwrap(), Command::Other(2));
        assert!(Command::parse(b"").is_err());
    }

    /// A MySQL replica auto-positioning with the set a real MySQL 8.0.40
    /// binlog starts with: the relay reads the set back. (The relay serves
    /// MariaDB replicas end to end; serving MySQL replicas is not built.)
    #[test]
    fn binlog_dump_gtid_with_a_real_previous_gtids_set_parses() {
        use crate::event_type::EventType;
        use crate::testdata;
        let file = testdata::parse(testdata::MYSQL_8_0_40_PREVIOUS_GTIDS);
        let previous = testdata::events_of(&file, EventType::PreviousGtids)[0];
        let executed = MysqlGtidSet::parse(previous.body(file.checksum()).unwrap()).unwrap();
        let mut buf = BytesMut::new();
        BinlogDumpGtid {
            server_id: 3,
            executed: executed.clone(),
        }
        .encode(&mut buf);
        let Command::BinlogDumpGtid(request) = Command::parse(&buf).unwrap() else {
            panic!("not a COM_BINLOG_DUMP_GTID")
        };
        assert_eq!(request.server_id, 3);
        assert_eq!(
            request.executed.unwrap().to_string(),
            "b9b88c66-0755-11f1-9899-4a9da94c4d71:1-2"
        );
    }
}

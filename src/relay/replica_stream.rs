//! One replica's binlog stream: from its start position through the
//! archive's chunks, then following the archive as the shipper adds
//! chunks, with heartbeats while idle. Memory: one chunk at a time.
//!
//! It opens as a primary's dump does: a fake ROTATE to the file it starts
//! in and that file's FORMAT_DESCRIPTION (re-stamped when it joins the file
//! past its start; as archived for a stream by file from the file's
//! start), then, for a MariaDB replica, a GTID_LIST with its position. A
//! MySQL auto-position stream starts at the first chunk with a
//! transaction the replica lacks (the file's first chunk, PREVIOUS_GTIDS
//! included, when that is the file's first transaction); a MySQL source
//! would send the file from its start and skip, which the replica cannot
//! tell apart: it takes no position from PREVIOUS_GTIDS or skipped groups.
//!
//! A MariaDB GTID stream for a client that did not register as a replica
//! (mariadb-binlog --start-position=<GTID>) starts at the first chunk of the
//! file that holds the position, as a primary reads that file from its
//! start: the tool checks that the file's GTID_LIST covers the position.
//! Replicas start at the first chunk they lack, which saves reading up to a
//! file's worth of chunks on every reconnect.
//!
//! A client that asked for the binlog up to its end only (mariadb-binlog
//! without --stop-never: BINLOG_DUMP_NON_BLOCK or server_id 0) gets an EOF
//! packet once it has everything the archive holds, as a primary sends one
//! at the end of its last binlog.

use std::time::{Duration, Instant};

use super::binlog_archive::{BinlogArchive, FileFormat};
use super::error::RelayServeError;
use super::start_filter::StartFilter;
use super::start_point;
use super::until::UntilTarget;
use crate::archive::Epoch;
use crate::engines::mysql::layout::IndexKey;
use instarec_mysql::mariadb_gtid_event::MariadbGtidEvent;
use instarec_mysql::relay::{DumpRequest, DumpStart, ErrPacket, FATAL_READING_BINLOG};
use instarec_mysql::{EventType, MariadbGtidPos};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// While idle, the whole index listing is re-read this often (new epochs,
/// a new file after a primary crash); otherwise only the current file's.
const FULL_SCAN_EVERY: u32 = 10;

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// How often to look for new chunks when caught up.
    pub poll_interval: Duration,
    /// Stop before the first transaction past this; None: follow forever.
    pub until: Option<UntilTarget>,
    /// How often a registered replica that asked for no heartbeat gets
    /// one anyway while idle. A client that did not register (mariadb-binlog
    /// --stop-never) gets none, as from a primary: it cannot decode them.
    pub idle_heartbeat: Duration,
}

/// Streams until the replica leaves, `shutdown`, or an error (which the
/// replica is told about, as ER_MASTER_FATAL_ERROR_READING_BINLOG).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    archive: &BinlogArchive,
    dump: DumpRequest<S>,
    options: StreamOptions,
    shutdown: CancellationToken,
) -> Result<(), RelayServeError> {
    let DumpRequest {
        start,
        session,
        sender,
        non_blocking,
        skip_annotate_rows,
        ..
    } = dump;
    let heartbeat = session
        .heartbeat_period()
        .or_else(|| session.registered().then_some(options.idle_heartbeat));
    let mut stream = ReplicaStream {
        archive,
        sender,
        filter: StartFilter::gtid(MariadbGtidPos::new()),
        current: None,
        last: None,
        file_ended: false,
        until: options.until.clone(),
        reached: false,
        skip_annotate_rows,
    };
    let reads_whole_files = !session.registered();
    match stream
        .run(
            start,
            options,
            heartbeat,
            non_blocking,
            reads_whole_files,
            shutdown,
        )
        .await
    {
        Err(RelayServeError::Replica(e)) => Err(RelayServeError::Replica(e)),
        Err(e) => {
            let message = format!("instarec relay: {e}");
            let _ = stream
                .sender
                .fail(ErrPacket::new(FATAL_READING_BINLOG, "HY000", message))
                .await;
            Err(e)
        }
        Ok(()) => Ok(()),
    }
}

struct ReplicaStream<'a, S> {
    archive: &'a BinlogArchive,
    sender: instarec_mysql::relay::BinlogSender<S>,
    filter: StartFilter,
    /// The file being streamed.
    current: Option<(Epoch, String, FileFormat)>,
    /// The last chunk looked at (sent, or skipped as already applied).
    last: Option<IndexKey>,
    /// The last event sent from the current file was its closing ROTATE.
    file_ended: bool,
    until: Option<UntilTarget>,
    /// A transaction past `until` was met: nothing more is sent.
    reached: bool,
    /// ANNOTATE_ROWS events are left out (see DumpRequest).
    skip_annotate_rows: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReplicaStream<'_, S> {
    async fn run(
        &mut self,
        start: DumpStart,
        options: StreamOptions,
        heartbeat: Option<Duration>,
        non_blocking: bool,
        reads_whole_files: bool,
        shutdown: CancellationToken,
    ) -> Result<(), RelayServeError> {
        let keys = self.archive.chunks().await?;
        let Some(newest) = keys.last() else {
            return Err(RelayServeError::Position(
                "the archive holds no binlog yet; start `instarec ship` for the primary".into(),
            ));
        };
        // A primary sends the description as in the file to a client that
        // reads a file from its start, re-stamped to one that joins it later.
        let from_file_start = match &start {
            DumpStart::File(at) => at.pos <= 4,
            _ => false,
        };
        let start_file = match &start {
            DumpStart::File(at) => Some(at.file.clone()),
            _ => None,
        };
        let (first, gtid_state) = match start {
            DumpStart::MariadbGtid(applied) => {
                let mut first = start_point::after_gtid(self.archive, &keys, &applied).await?;
                if reads_whole_files {
                    first = start_point::first_of_its_file(&keys, first);
                }
                self.filter = StartFilter::gtid(applied.clone());
                (first, Some(applied))
            }
            DumpStart::File(at) => {
                let first = start_point::at_file_position(&keys, &at)?;
                self.filter = StartFilter::File { at };
                (first, None)
            }
            DumpStart::MysqlGtid(executed) => {
                if let Some(UntilTarget::Gtid(pos)) = &self.until {
                    return Err(RelayServeError::Position(format!(
                        "this relay stops at MariaDB GTID position {pos}, which means nothing to a MySQL replica; restore a MySQL archive to a point in time instead"
                    )));
                }
                let first = start_point::after_mysql_gtid(self.archive, &keys, &executed).await?;
                self.filter = StartFilter::mysql_gtid(executed);
                (first, None)
            }
        };
        // The stream opens in the file it resumes in (or the newest, when
        // the replica has everything), joined mid-file.
        let anchor = keys.get(first).unwrap_or(newest).clone();
        let whole_file = if reads_whole_files && gtid_state.is_some() {
            let format = self.archive.format(anchor.epoch, &anchor.file).await?;
            anchor.first <= 4 + format.event.bytes.len() as u64
        } else {
            from_file_start && start_file.as_deref() == Some(anchor.file.as_str())
        };
        self.open_file(&anchor, whole_file).await?;
        // A replica takes its position from it even if nothing follows; a
        // tool reading whole files gets none, as from a primary (which
        // sends one once the stream passes the position).
        if let Some(state) = gtid_state.as_ref().filter(|_| !reads_whole_files) {
            self.sender.send_gtid_list(state).await?;
        }
        tracing::info!(
            peer = self.sender.peer(),
            file = %anchor.file,
            chunks = keys.len() - first,
            "replica stream starts"
        );
        if first == keys.len() {
            self.last = Some(anchor);
        }
        for key in &keys[first..] {
            self.send_chunk(key).await?;
        }
        if non_blocking {
            return self.send_rest_then_eof().await;
        }

        let mut idle_since = Instant::now();
        let mut idle_polls = 0u32;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                e = self.sender.closed() => {
                    tracing::info!(peer = self.sender.peer(), reason = %e, "replica left");
                    return Ok(());
                }
                _ = tokio::time::sleep(options.poll_interval) => {}
            }
            let beat_due = heartbeat.is_some_and(|every| idle_since.elapsed() >= every);
            if self.reached {
                // Idle for good, with heartbeats so the replica stays connected.
                if beat_due {
                    self.sender.heartbeat().await?;
                    idle_since = Instant::now();
                }
                continue;
            }
            idle_polls += 1;
            let full_scan = idle_polls >= FULL_SCAN_EVERY;
            if full_scan {
                idle_polls = 0;
            }
            let new = self.poll(full_scan).await?;
            if new.is_empty() {
                if beat_due {
                    self.sender.heartbeat().await?;
                    idle_since = Instant::now();
                }
                continue;
            }
            for key in &new {
                self.send_chunk(key).await?;
            }
            idle_since = Instant::now();
            idle_polls = 0;
        }
    }

    /// Sends what the archive gained meanwhile, then the EOF that ends a
    /// non-blocking dump.
    async fn send_rest_then_eof(&mut self) -> Result<(), RelayServeError> {
        while !self.reached {
            let new = self.poll(true).await?;
            if new.is_empty() {
                break;
            }
            for key in &new {
                self.send_chunk(key).await?;
            }
        }
        tracing::info!(
            peer = self.sender.peer(),
            at = %self.sender.position().map(ToString::to_string).unwrap_or_default(),
            "replica has the archive's end and asked for no more (BINLOG_DUMP_NON_BLOCK); sending EOF"
        );
        self.sender.end_of_binlog().await?;
        Ok(())
    }

    /// Chunks after the last one seen: the current file's, or anyone's on
    /// a full scan (and always once the current file has ended).
    async fn poll(&self, full_scan: bool) -> Result<Vec<IndexKey>, RelayServeError> {
        let Some(last) = &self.last else {
            return Ok(Vec::new());
        };
        let after = |keys: Vec<IndexKey>| -> Vec<IndexKey> {
            keys.into_iter()
                .filter(|k| k.stream_order(last).is_gt())
                .collect()
        };
        let mut new = after(self.archive.chunks_of(last.epoch, &last.file).await?);
        if new.is_empty() && (full_scan || self.file_ended) {
            new = after(self.archive.chunks().await?);
        }
        Ok(new)
    }

    async fn open_file(&mut self, key: &IndexKey, from_start: bool) -> Result<(), RelayServeError> {
        let format = self.archive.format(key.epoch, &key.file).await?;
        self.sender
            .start_file(&key.file, &format.event, from_start)
            .await?;
        self.current = Some((key.epoch, key.file.clone(), format));
        self.file_ended = false;
        Ok(())
    }

    async fn send_chunk(&mut self, key: &IndexKey) -> Result<(), RelayServeError> {
        if self.reached {
            return Ok(());
        }
        let same_file =
            matches!(&self.current, Some((e, f, _)) if *e == key.epoch && *f == key.file);
        if !same_file {
            // A later file read from its first chunk: as the primary would send it.
            let format = self.archive.format(key.epoch, &key.file).await?;
            let fd_end = 4 + format.event.bytes.len() as u64;
            self.open_file(key, key.first <= fd_end).await?;
        }
        let Some((_, file, format)) = &self.current else {
            return Ok(());
        };
        let checksum = format.parsed.checksum;
        let file = file.clone();
        let index = self.archive.index(key).await?;
        let events = self.archive.events(&index, checksum).await?;
        for event in &events {
            let keep = self.filter.keep(&file, event, checksum).map_err(|e| {
                RelayServeError::BadEvent {
                    key: index.chunk.clone(),
                    offset: 0,
                    reason: e.to_string(),
                }
            })?;
            if keep && self.past_until(event, checksum, &index.chunk)? {
                tracing::info!(
                    peer = self.sender.peer(),
                    until = %self.until.as_ref().map(ToString::to_string).unwrap_or_default(),
                    file = %file,
                    log_pos = event.header.log_pos,
                    "until-position reached; sending nothing more"
                );
                self.reached = true;
                break;
            }
            let left_out =
                self.skip_annotate_rows && event.header.event_type == EventType::AnnotateRows;
            if keep && !left_out {
                self.sender.send_event(event).await?;
                self.file_ended = event.header.event_type == EventType::Rotate;
            }
        }
        self.sender.flush().await?;
        self.last = Some(key.clone());
        Ok(())
    }

    /// Whether `event` starts a transaction past the until-position.
    fn past_until(
        &self,
        event: &instarec_mysql::RawEvent,
        checksum: instarec_mysql::BinlogChecksum,
        chunk: &str,
    ) -> Result<bool, RelayServeError> {
        let Some(until) = &self.until else {
            return Ok(false);
        };
        match (event.header.event_type, until) {
            (EventType::MariadbGtid, _) => {}
            // A MySQL group, by the time its GTID event is stamped with.
            (EventType::MysqlGtid | EventType::AnonymousGtid, UntilTarget::Time(_)) => {
                return Ok(until.is_past_time(event.header.timestamp));
            }
            _ => return Ok(false),
        }
        let gtid = MariadbGtidEvent::from_event(event, checksum)
            .map_err(|e| RelayServeError::BadEvent {
                key: chunk.to_string(),
                offset: 0,
                reason: e.to_string(),
            })?
            .gtid(event.header.server_id);
        Ok(until.is_past(&gtid, event.header.timestamp))
    }
}

#[cfg(test)]
mod tests {
    use crate::engines::mysql::chunk_buffer::tests::{
        MYSQL_8_0_26, MYSQL_8_0_32_COMPRESSED, SID_8_0_26,
    };
    use crate::engines::mysql::fixture_archive::shipped_mysql;
    use crate::relay::{RelayOptions, RelayServer};
    use bytes::{Bytes, BytesMut};
    use instarec_mysql::relay::{
        caps, BinlogDumpGtidRequest, BinlogDumpRequest, Command, Credentials, EofPacket, ErrPacket,
        HandshakeResponse41, HandshakeV10, RegisterSlave, TextResultSet,
    };
    use instarec_mysql::stream_decoder::{Decoded, StreamDecoder};
    use instarec_mysql::{BinlogEvent, EventType, MysqlGtidSet, StreamedEvent};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_util::sync::CancellationToken;

    /// The client half of the MySQL wire protocol, as much as a replica's
    /// I/O thread uses.
    struct Replica {
        tcp: TcpStream,
        seq: u8,
    }

    impl Replica {
        async fn read(&mut self) -> Bytes {
            let mut header = [0u8; 4];
            self.tcp.read_exact(&mut header).await.unwrap();
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            self.seq = header[3].wrapping_add(1);
            let mut payload = vec![0u8; len];
            self.tcp.read_exact(&mut payload).await.unwrap();
            Bytes::from(payload)
        }

        async fn write(&mut self, payload: &[u8]) {
            let mut packet = (payload.len() as u32).to_le_bytes();
            packet[3] = self.seq;
            self.tcp.write_all(&packet).await.unwrap();
            self.tcp.write_all(payload).await.unwrap();
        }

        async fn command(&mut self, command: Command) -> Bytes {
            let mut buf = BytesMut::new();
            command.encode(&mut buf);
            self.seq = 0;
            self.write(&buf).await;
            self.read().await
        }

        /// A SET: one OK packet back.
        async fn set(&mut self, sql: &str) {
            let reply = self.command(Command::Query(sql.into())).await;
            assert_eq!(reply[0], 0x00, "{sql}: {reply:?}");
        }

        /// A SELECT of one value, through the classic EOF-terminated result set.
        async fn select(&mut self, sql: &str) -> Option<String> {
            let mut packets = vec![self.command(Command::Query(sql.into())).await];
            let mut eofs = 0;
            while eofs < 2 {
                let p = self.read().await;
                if p[0] == 0xfe && p.len() < 9 {
                    eofs += 1;
                }
                packets.push(p);
            }
            TextResultSet::parse(&packets).unwrap().rows[0][0].clone()
        }
    }

    /// Connected and logged in as `repl`.
    async fn logged_in(addr: std::net::SocketAddr) -> Replica {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut r = Replica { tcp, seq: 0 };
        let hello = HandshakeV10::parse(&r.read().await).unwrap();
        // The newest archived file's server.
        assert_eq!(hello.server_version, "8.0.32");
        let mut buf = BytesMut::new();
        HandshakeResponse41 {
            capabilities: caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::LONG_PASSWORD,
            max_packet: 1 << 30,
            charset: 45,
            user: "repl".into(),
            auth_response: Vec::new(),
            database: None,
            auth_plugin: Some("mysql_native_password".into()),
        }
        .encode(&mut buf);
        r.write(&buf).await;
        assert_eq!(r.read().await[0], 0x00, "logged in");
        r
    }

    /// What MySQL 8.0.27's I/O thread does up to its dump request
    /// (rpl_replica.cc), then the events it receives until `until` says
    /// it has enough.
    async fn mysql_replica_dump(
        addr: std::net::SocketAddr,
        executed: MysqlGtidSet,
        until: impl Fn(&[BinlogEvent]) -> bool,
    ) -> Result<Vec<BinlogEvent>, String> {
        let mut r = logged_in(addr).await;
        let now: u64 = r
            .select("SELECT UNIX_TIMESTAMP()")
            .await
            .unwrap()
            .parse()
            .unwrap();
        assert!(now > 1_600_000_000);
        assert_eq!(
            r.select("SELECT @@GLOBAL.SERVER_ID").await.as_deref(),
            Some("1")
        );
        r.set("SET @master_heartbeat_period = 30000001024, @source_heartbeat_period = 30000001024")
            .await;
        r.set("SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum")
            .await;
        assert_eq!(
            r.select("SELECT @source_binlog_checksum").await.as_deref(),
            Some("CRC32")
        );
        assert_eq!(
            r.select("SELECT @@GLOBAL.GTID_MODE").await.as_deref(),
            Some("ON")
        );
        assert_eq!(
            r.select("SELECT @@GLOBAL.SERVER_UUID").await.as_deref(),
            Some(SID_8_0_26)
        );
        r.set("SET @slave_uuid = 'f8c09b6f-6342-11ec-9e68-000c2943eee1', @replica_uuid = 'f8c09b6f-6342-11ec-9e68-000c2943eee1'")
            .await;
        let ok = r
            .command(Command::RegisterSlave(RegisterSlave {
                server_id: 2,
                hostname: String::new(),
                user: String::new(),
                port: 3306,
            }))
            .await;
        assert_eq!(ok[0], 0x00);

        let mut buf = BytesMut::new();
        Command::BinlogDumpGtid(BinlogDumpGtidRequest {
            flags: 0,
            server_id: 2,
            file: String::new(),
            pos: 4,
            executed: Some(executed),
        })
        .encode(&mut buf);
        r.seq = 0;
        r.write(&buf).await;
        let mut decoder = StreamDecoder::new("relay", false);
        let mut events = Vec::new();
        while !until(&events) {
            let packet = tokio::time::timeout(Duration::from_secs(10), r.read())
                .await
                .expect("the relay sends the events");
            if packet[0] == 0xff {
                let err = ErrPacket::parse(&packet).unwrap();
                return Err(format!("{} {}", err.code, err.message));
            }
            match decoder.decode(packet).unwrap() {
                Decoded::Event(StreamedEvent::Event(e)) => events.push(e),
                other => panic!("{other:?}"),
            }
        }
        Ok(events)
    }

    /// How a dump read by `file_dump` ended.
    #[derive(Debug, PartialEq)]
    enum DumpEnd {
        /// The EOF packet of a non-blocking dump.
        Eof,
        Error(String),
        /// Nothing more came for a while; the stream is still open.
        Quiet,
        /// An idle stream's heartbeat (the stream is still open).
        Heartbeat,
    }

    /// How a client asks for a file: what it declares, whether it
    /// registers as a replica, its COM_BINLOG_DUMP flags and server_id.
    struct FileClient {
        checksum: Option<&'static str>,
        register: bool,
        flags: u16,
        server_id: u32,
    }

    /// mariadb-binlog --read-from-remote-server as the relay logged it:
    /// SELECT VERSION(), SET @master_binlog_checksum='NONE', SET
    /// @mariadb_slave_capability=4, COM_BINLOG_DUMP of `file` at 4
    /// (BINLOG_SEND_ANNOTATE_ROWS_EVENT, plus BINLOG_DUMP_NON_BLOCK and
    /// server_id 0 without --stop-never).
    const MARIADB_BINLOG: FileClient = FileClient {
        checksum: Some("NONE"),
        register: false,
        flags: 0x02 | 0x01,
        server_id: 0,
    };

    /// The events (exact bytes) a client gets for `file` from its start,
    /// and how the stream ended.
    async fn file_dump(
        addr: std::net::SocketAddr,
        client: &FileClient,
        file: &str,
        quiet: Duration,
    ) -> (Vec<Bytes>, DumpEnd) {
        let mut r = logged_in(addr).await;
        assert!(r.select("SELECT VERSION()").await.is_some());
        if let Some(checksum) = client.checksum {
            r.set(&format!("SET @master_binlog_checksum='{checksum}'"))
                .await;
        }
        r.set("SET @mariadb_slave_capability=4").await;
        if client.register {
            let ok = r
                .command(Command::RegisterSlave(RegisterSlave {
                    server_id: client.server_id,
                    hostname: String::new(),
                    user: String::new(),
                    port: 3306,
                }))
                .await;
            assert_eq!(ok[0], 0x00);
        }
        let mut buf = BytesMut::new();
        Command::BinlogDump(BinlogDumpRequest {
            pos: 4,
            flags: client.flags,
            server_id: client.server_id,
            file: file.into(),
        })
        .encode(&mut buf);
        r.seq = 0;
        r.write(&buf).await;
        let mut events = Vec::new();
        loop {
            let Ok(packet) = tokio::time::timeout(quiet, r.read()).await else {
                return (events, DumpEnd::Quiet);
            };
            match packet[0] {
                0x00 if event_type_of(&packet[1..]) == EventType::Heartbeat => {
                    return (events, DumpEnd::Heartbeat)
                }
                0x00 => events.push(packet.slice(1..)),
                0xfe if packet.len() < 9 => {
                    EofPacket::parse(&packet).unwrap();
                    return (events, DumpEnd::Eof);
                }
                0xff => {
                    let err = ErrPacket::parse(&packet).unwrap();
                    return (events, DumpEnd::Error(err.message));
                }
                other => panic!("packet 0x{other:02x}: {packet:?}"),
            }
        }
    }

    fn event_type_of(event: &[u8]) -> EventType {
        EventType::from(event[4])
    }

    async fn relay_over(
        archive: crate::archive::Archive,
    ) -> (
        std::net::SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let credentials = Credentials {
            user: "repl".into(),
            password: String::new(),
        };
        let mut options = RelayOptions::new("127.0.0.1:0".parse().unwrap(), credentials);
        options.poll_interval = Duration::from_millis(20);
        options.idle_heartbeat = Duration::from_millis(100);
        let server = RelayServer::bind(options, archive).await.unwrap();
        let addr = server.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(server.serve(shutdown.clone()));
        (addr, shutdown, serving)
    }

    /// As from a primary: the opening fake ROTATE without a checksum (the
    /// client declared NONE), each file's FORMAT_DESCRIPTION and events as
    /// archived (CRC32 included), the fake ROTATE to the next file with
    /// the file's checksum, and EOF at the archive's end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb_binlog_gets_the_files_as_archived_then_eof() {
        let archive = shipped_mysql(&[
            (MYSQL_8_0_26, "binlog.000001"),
            (MYSQL_8_0_32_COMPRESSED, "binlog.000002"),
        ])
        .await;
        let (addr, shutdown, serving) = relay_over(archive).await;
        let quiet = Duration::from_secs(5);
        let (events, end) = file_dump(addr, &MARIADB_BINLOG, "binlog.000001", quiet).await;
        assert_eq!(end, DumpEnd::Eof);
        let rotate = |bytes: &Bytes, crc: bool| {
            assert_eq!(event_type_of(bytes), EventType::Rotate);
            let size = 19 + 8 + "binlog.00000x".len() + if crc { 4 } else { 0 };
            assert_eq!(bytes.len(), size, "{bytes:?}");
            if crc {
                instarec_mysql::RawEvent::parse(bytes.clone())
                    .unwrap()
                    .verify_crc32()
                    .unwrap();
            }
        };
        rotate(&events[0], false);
        assert_eq!(&events[0][27..], b"binlog.000001");
        let mut expected: Vec<u8> = MYSQL_8_0_26[4..].to_vec();
        let at_second = events[1..]
            .iter()
            .position(|e| event_type_of(e) == EventType::Rotate)
            .unwrap()
            + 1;
        let file1: Vec<u8> = events[1..at_second]
            .iter()
            .flat_map(|e| e.to_vec())
            .collect();
        assert_eq!(file1, expected, "binlog.000001 as archived");
        rotate(&events[at_second], true);
        assert_eq!(&events[at_second][27..40], b"binlog.000002");
        expected = MYSQL_8_0_32_COMPRESSED[4..].to_vec();
        let file2: Vec<u8> = events[at_second + 1..]
            .iter()
            .flat_map(|e| e.to_vec())
            .collect();
        assert_eq!(file2, expected, "binlog.000002 as archived");

        // A client that declares no checksum cannot read CRC32 events.
        let undeclared = FileClient {
            checksum: None,
            ..MARIADB_BINLOG
        };
        let (events, end) = file_dump(addr, &undeclared, "binlog.000001", quiet).await;
        assert!(events.is_empty());
        assert!(
            matches!(&end, DumpEnd::Error(m) if m.contains("@master_binlog_checksum")),
            "{end:?}"
        );

        // --stop-never: the stream stays open and, like a primary's, sends
        // no heartbeat the tool did not ask for (it cannot decode one)...
        let stop_never = FileClient {
            flags: 0x02,
            server_id: 1,
            ..MARIADB_BINLOG
        };
        let idle = Duration::from_millis(600);
        let (events, end) = file_dump(addr, &stop_never, "binlog.000002", idle).await;
        assert_eq!(end, DumpEnd::Quiet);
        assert_eq!(&events.last().unwrap()[..], &MYSQL_8_0_32_COMPRESSED[431..]);
        // ...while an idle registered replica gets them.
        let replica = FileClient {
            register: true,
            checksum: Some("CRC32"),
            ..stop_never
        };
        let (_, end) = file_dump(addr, &replica, "binlog.000002", idle).await;
        assert_eq!(end, DumpEnd::Heartbeat);

        shutdown.cancel();
        serving.await.unwrap();
    }

    fn bytes_of(events: &[&BinlogEvent]) -> Vec<u8> {
        events.iter().flat_map(|e| e.raw.bytes.to_vec()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mysql_replica_with_gtids_1_to_3_gets_the_rest_over_tcp_byte_for_byte() {
        let archive = shipped_mysql(&[
            (MYSQL_8_0_26, "binlog.000001"),
            (MYSQL_8_0_32_COMPRESSED, "binlog.000002"),
        ])
        .await;
        let credentials = Credentials {
            user: "repl".into(),
            password: String::new(),
        };
        let mut options = RelayOptions::new("127.0.0.1:0".parse().unwrap(), credentials);
        options.poll_interval = Duration::from_millis(20);
        let server = RelayServer::bind(options, archive).await.unwrap();
        let addr = server.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(server.serve(shutdown.clone()));

        // Until the real ROTATE that closes binlog.000002.
        let ends = |events: &[BinlogEvent]| {
            events.last().is_some_and(|e| {
                e.event_type() == EventType::Rotate && !e.artificial && e.file == "binlog.000002"
            })
        };
        let executed: MysqlGtidSet = format!("{SID_8_0_26}:1-3").parse().unwrap();
        let events = mysql_replica_dump(addr, executed, ends).await.unwrap();

        let types: Vec<EventType> = events.iter().map(|e| e.event_type()).collect();
        assert_eq!(types[0], EventType::Rotate);
        assert!(events[0].artificial);
        assert_eq!(events[0].file, "binlog.000001");
        // Joined past the file's start: FORMAT_DESCRIPTION re-stamped
        // as a MySQL source does when it skips the first transaction.
        assert_eq!(types[1], EventType::FormatDescription);
        assert_eq!(events[1].raw.header.log_pos, 0);
        let of = |file: &str, ty: Option<EventType>| -> Vec<&BinlogEvent> {
            events
                .iter()
                .skip(2)
                .filter(|e| e.file == file && !e.artificial)
                .filter(|e| {
                    ty.map_or(e.event_type() != EventType::FormatDescription, |t| {
                        e.event_type() == t
                    })
                })
                .collect()
        };
        // Transactions :4 and :5 then the STOP, exact bytes.
        assert_eq!(bytes_of(&of("binlog.000001", None)), &MYSQL_8_0_26[1120..]);
        // The next file from its start: FORMAT_DESCRIPTION as archived,
        // then everything (the anonymous transaction has no GTID to skip by).
        let fd2 = of("binlog.000002", Some(EventType::FormatDescription));
        assert_eq!(bytes_of(&fd2), &MYSQL_8_0_32_COMPRESSED[4..126]);
        assert_eq!(
            bytes_of(&of("binlog.000002", None)),
            &MYSQL_8_0_32_COMPRESSED[126..]
        );
        let rotates = events
            .iter()
            .filter(|e| e.artificial && e.event_type() == EventType::Rotate)
            .count();
        assert_eq!(rotates, 2, "one fake ROTATE per file");

        // With :5 too, the filter skips that group inside the stream.
        let holed: MysqlGtidSet = format!("{SID_8_0_26}:1-3:5").parse().unwrap();
        let events = mysql_replica_dump(addr, holed, ends).await.unwrap();
        let file1: Vec<&BinlogEvent> = events
            .iter()
            .skip(2)
            .filter(|e| e.file == "binlog.000001" && !e.artificial)
            .collect();
        let mut expected = MYSQL_8_0_26[1120..1438].to_vec();
        expected.extend_from_slice(&MYSQL_8_0_26[1787..]);
        assert_eq!(bytes_of(&file1), expected);

        // A replica with everything gets no transaction.
        let all: MysqlGtidSet = format!("{SID_8_0_26}:1-5").parse().unwrap();
        let opened = |events: &[BinlogEvent]| events.len() == 2;
        let events = mysql_replica_dump(addr, all, opened).await.unwrap();
        assert_eq!(events[0].file, "binlog.000002");
        assert_eq!(events[1].event_type(), EventType::FormatDescription);

        // One ahead of the archive: ER_MASTER_FATAL_ERROR_READING_BINLOG
        // saying which GTIDs, as a MySQL source would.
        let ahead: MysqlGtidSet = format!("{SID_8_0_26}:1-6").parse().unwrap();
        let err = mysql_replica_dump(addr, ahead, opened).await.unwrap_err();
        assert!(err.starts_with("1236 "), "{err}");
        assert!(err.contains(&format!("'{SID_8_0_26}:6'")), "{err}");

        shutdown.cancel();
        serving.await.unwrap();
    }
}

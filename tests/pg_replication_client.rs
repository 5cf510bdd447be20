//! instarec-postgres's own replication client against a real PostgreSQL 15:
//! authentication, walsender commands, WAL streaming byte-for-byte against pg_wal,
//! status feedback, timeline switches and TLS.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use instarec_postgres::{
    connect_sql, ConnConfig, Lsn, PgError, PgTimestamp, ReplicationClient, ReplicationMessage,
    SslMode, StandbyStatusUpdate, SystemId, TimelineId, WalFileKind, WalSegmentSize, WalStream,
    XLogPageHeader,
};
use support::postgres::{new_scratch_dir, server_user};
use support::{PgOptions, Postgres};

fn config(url: &str) -> ConnConfig {
    // No environment: PGPASSWORD on the test machine must not change what a test means.
    ConnConfig::from_url_with_env(url, |_| None).expect("harness URL parses")
}

fn lsn_of(pg: &Postgres, sql: &str) -> Lsn {
    pg.psql(sql).parse().expect("psql printed an LSN")
}

/// Receives WAL from `stream` until `target` has been covered, checking that runs are
/// contiguous. Each recv() races a short timer in select!, so many recv futures are
/// dropped mid-message: any lost byte shows up as a gap or a mismatch against pg_wal.
async fn collect_wal(stream: &mut WalStream, start: Lsn, target: Lsn) -> Vec<u8> {
    collect_wal_until(stream, start, async move { target }).await
}

/// Like [`collect_wal`], with the target known only once `target` resolves (e.g. when a
/// workload that runs while we stream has finished).
async fn collect_wal_until(
    stream: &mut WalStream,
    start: Lsn,
    target: impl std::future::Future<Output = Lsn>,
) -> Vec<u8> {
    let mut wal = Vec::new();
    let mut next = start;
    let mut known_target: Option<Lsn> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::pin!(target);
    while known_target.is_none_or(|t| next < t) {
        assert!(
            Instant::now() < deadline,
            "no WAL up to {known_target:?} within 60s; got up to {next}"
        );
        tokio::select! {
            biased;
            t = &mut target, if known_target.is_none() => known_target = Some(t),
            msg = stream.recv() => match msg.expect("recv") {
                Some(ReplicationMessage::XLogData(x)) => {
                    assert_eq!(x.wal_start, next, "WAL must arrive without gaps");
                    wal.extend_from_slice(&x.data);
                    next = x.data_end();
                }
                Some(ReplicationMessage::Keepalive(_)) => {}
                other => panic!("unexpected {other:?} before {known_target:?}"),
            },
            _ = tokio::time::sleep(Duration::from_micros(300)) => {}
        }
    }
    wal
}

async fn status(stream: &mut WalStream, flushed: Lsn) {
    let update = StandbyStatusUpdate {
        write: flushed,
        flush: flushed,
        apply: Lsn::ZERO,
        send_time: PgTimestamp::now(),
        reply_requested: false,
    };
    stream.send_status(&update).await.expect("send status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_system_matches_pg_control_system_over_trust() {
    let pg = Postgres::start();
    let mut client = ReplicationClient::connect(&config(&pg.url()))
        .await
        .expect("trust connect");
    let id = client.identify_system().await.expect("IDENTIFY_SYSTEM");
    let expected: u64 = pg
        .psql("SELECT system_identifier FROM pg_control_system()")
        .parse()
        .unwrap();
    assert_eq!(id.system_id, SystemId(expected));
    assert_eq!(id.system_id.to_string(), expected.to_string());
    assert_eq!(id.timeline, TimelineId(1));
    assert_eq!(
        id.dbname, None,
        "a physical replication connection has no database"
    );
    assert!(id.xlogpos <= lsn_of(&pg, "SELECT pg_current_wal_flush_lsn()"));
    assert!(
        client
            .server_version()
            .unwrap_or_default()
            .starts_with(&support::postgres::server_major().to_string()),
        "{:?}",
        client.server_version()
    );
    assert_eq!(client.wal_segment_size().await.unwrap().bytes(), 16 << 20);

    // The same server through its Unix socket, for both connection kinds.
    let socket_url = format!(
        "postgres://postgres@/postgres?host={}&port={}",
        pg.scratch_dir().display(),
        pg.port()
    );
    let mut local = ReplicationClient::connect(&config(&socket_url))
        .await
        .expect("Unix socket connect");
    assert_eq!(
        local.identify_system().await.unwrap().system_id,
        id.system_id
    );
    let sql = connect_sql(&config(&socket_url))
        .await
        .expect("SQL over the Unix socket");
    let ssl: bool = sql
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!ssl, "a Unix socket connection never negotiates TLS");

    // Nobody listens on a fresh port: the error names it.
    let closed = format!("127.0.0.1:{}", support::free_port());
    match ReplicationClient::connect(&config(&format!("postgres://postgres@{closed}/postgres")))
        .await
    {
        Err(e @ PgError::Connect { .. }) => assert!(e.to_string().contains(&closed), "{e}"),
        other => panic!("connecting to a closed port gave {:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_accepts_the_right_password_and_rejects_a_wrong_one() {
    let pg = Postgres::start_with(PgOptions {
        scram_password: Some("s3cret pw/:@".into()),
        ..Default::default()
    });
    let mut client = ReplicationClient::connect(&config(&pg.url()))
        .await
        .expect("SCRAM connect");
    client
        .identify_system()
        .await
        .expect("IDENTIFY_SYSTEM after SCRAM");

    let mut wrong = config(&pg.url());
    wrong.password = Some("not it".into());
    match ReplicationClient::connect(&wrong).await {
        Err(e @ PgError::Auth { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("127.0.0.1:{}", pg.port())) && msg.contains("pg_hba.conf"),
                "{msg}"
            );
        }
        Err(e) => panic!("wrong password gave {e:?}"),
        Ok(_) => panic!("wrong password was accepted"),
    }

    let mut missing = config(&pg.url());
    missing.password = None;
    match ReplicationClient::connect(&missing).await {
        Err(e @ PgError::Auth { .. }) => assert!(e.to_string().contains("PGPASSWORD"), "{e}"),
        other => panic!("missing password gave {:?}", other.err()),
    }

    // The ordinary SQL path authenticates the same way.
    let sql = connect_sql(&config(&pg.url()))
        .await
        .expect("SQL connect with SCRAM");
    let one: i32 = sql.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert!(matches!(
        connect_sql(&wrong).await,
        Err(PgError::Auth { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_segment_size_of_a_32mb_cluster() {
    let pg = Postgres::start_with(PgOptions {
        wal_segment_size_mb: Some(32),
        ..Default::default()
    });
    let mut client = ReplicationClient::connect(&config(&pg.url()))
        .await
        .unwrap();
    let size = client
        .wal_segment_size()
        .await
        .expect("SHOW wal_segment_size");
    assert_eq!(size, WalSegmentSize::new(32 << 20).unwrap());
    // The same arithmetic PostgreSQL uses for its file names.
    let lsn = lsn_of(&pg, "SELECT pg_current_wal_lsn()");
    let name = pg.psql(&format!("SELECT pg_walfile_name('{lsn}')"));
    // pg_walfile_name names the previous segment for an LSN exactly on a boundary.
    let in_segment = if size.offset_in_segment(lsn) == 0 {
        Lsn(lsn.0 - 1)
    } else {
        lsn
    };
    assert_eq!(
        WalFileKind::segment_for(TimelineId(1), in_segment, size).file_name(size),
        name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_and_reads_a_physical_slot() {
    let pg = Postgres::start();
    let mut client = ReplicationClient::connect(&config(&pg.url()))
        .await
        .unwrap();
    assert_eq!(
        client.read_replication_slot("instarec_slot").await.unwrap(),
        None
    );
    client
        .create_physical_slot("instarec_slot")
        .await
        .expect("create slot");
    let info = client
        .read_replication_slot("instarec_slot")
        .await
        .unwrap()
        .expect("slot exists");
    assert_eq!(info.slot_type, "physical");
    assert_eq!(info.restart_tli, Some(TimelineId(1)));
    let restart = info.restart_lsn.expect("RESERVE_WAL sets restart_lsn");
    assert_eq!(
        restart,
        lsn_of(
            &pg,
            "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'instarec_slot'"
        )
    );

    match client.create_physical_slot("instarec_slot").await {
        Err(PgError::SlotExists { slot, .. }) => assert_eq!(slot, "instarec_slot"),
        other => panic!("second create gave {other:?}"),
    }
    assert!(matches!(
        client.create_physical_slot("Bad-Name").await,
        Err(PgError::InvalidSlotName { .. })
    ));
    // The connection is still good after the errors.
    client.identify_system().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_wal_equals_the_primary_pg_wal_segment() {
    let pg = Postgres::start();
    let cfg = config(&pg.url());
    let mut client = ReplicationClient::connect(&cfg).await.unwrap();
    let id = client.identify_system().await.unwrap();
    let size = client.wal_segment_size().await.unwrap();
    client.create_physical_slot("s").await.unwrap();

    pg.psql("SELECT pg_switch_wal()");
    let start = size.segment_start(size.segment_of(lsn_of(&pg, "SELECT pg_current_wal_lsn()")));
    let mut stream = client
        .start_physical(Some("s"), start, id.timeline)
        .await
        .expect("START_REPLICATION");

    // Write while we stream, so WAL arrives in bursts and recv() is often cut off mid-message.
    let url = pg.url();
    let workload = tokio::task::spawn_blocking(move || {
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let psql = |sql: &str| {
            let out = Command::new(support::postgres::pg_bin("psql"))
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    sql,
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        psql("CREATE TABLE t (id int, pad text)");
        for batch in 0..20 {
            psql(&format!(
                "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g",
                batch * 250,
                batch * 250 + 249
            ));
        }
        psql("SELECT pg_current_wal_flush_lsn()")
            .parse::<Lsn>()
            .unwrap()
    });
    let target = async { workload.await.expect("workload") };
    let wal = collect_wal_until(&mut stream, start, target).await;
    let target = lsn_of(&pg, "SELECT pg_current_wal_flush_lsn()");
    assert_eq!(
        size.segment_of(target),
        size.segment_of(start),
        "test data must stay in one segment"
    );
    assert!(
        wal.len() > 1 << 20,
        "expected over 1 MiB of WAL, got {}",
        wal.len()
    );

    let name = WalFileKind::segment_for(id.timeline, start, size).file_name(size);
    let file = std::fs::read(pg.data_dir().join("pg_wal").join(&name))
        .expect("read the segment from pg_wal");
    assert!(
        wal == file[..wal.len()],
        "streamed bytes differ from pg_wal/{name}"
    );

    let header = XLogPageHeader::parse(&wal).unwrap();
    let major = support::postgres::server_major();
    assert_eq!(
        instarec_postgres::version::major_for_wal_page_magic(header.magic),
        Some(major),
        "page magic {:#06X} is not PostgreSQL {major}'s",
        header.magic
    );
    assert_eq!(header.pageaddr, start);
    assert_eq!(
        header
            .long
            .expect("first page has the long header")
            .system_id,
        id.system_id.0
    );

    // Ending the stream ourselves hands back a usable client, with no timeline switch.
    let end = stream.finish().await.expect("finish");
    assert_eq!(end.next_timeline, None);
    let mut client = end.client;
    assert_eq!(
        client.identify_system().await.unwrap().system_id,
        id.system_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_update_shows_as_flush_lsn_in_pg_stat_replication() {
    let pg = Postgres::start();
    let mut cfg = config(&pg.url());
    cfg.application_name = Some("instarec_status_test".into());
    let mut client = ReplicationClient::connect(&cfg).await.unwrap();
    let id = client.identify_system().await.unwrap();
    let size = client.wal_segment_size().await.unwrap();
    let start = size.segment_start(size.segment_of(id.xlogpos));
    let mut stream = client
        .start_physical(None, start, id.timeline)
        .await
        .unwrap();
    let wal = collect_wal(&mut stream, start, id.xlogpos).await;
    let flushed = Lsn(start.0 + wal.len() as u64);
    status(&mut stream, flushed).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = pg.psql("SELECT flush_lsn FROM pg_stat_replication WHERE application_name = 'instarec_status_test'");
        if seen == flushed.to_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_stat_replication shows flush_lsn {seen:?}, we sent {flushed}"
        );
        // Keep reading so the walsender is never blocked on us.
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_history_of_timeline_one_is_a_server_error() {
    let pg = Postgres::start();
    let mut client = ReplicationClient::connect(&config(&pg.url()))
        .await
        .unwrap();
    match client.timeline_history(TimelineId(1)).await {
        Err(e @ PgError::Server { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("TIMELINE_HISTORY 1") && msg.contains("00000001.history"),
                "{msg}"
            );
        }
        other => panic!("TIMELINE_HISTORY 1 gave {other:?}"),
    }
    client
        .identify_system()
        .await
        .expect("the connection survives the error");
}

/// A promoted standby is on timeline 2. Streaming timeline 1 from it ends at the switch
/// point with EndOfTimeline, and finish() names timeline 2 and where it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_of_an_old_timeline_ends_at_the_switch_and_names_the_next() {
    let primary = Postgres::start();
    primary.psql("CREATE TABLE before_switch AS SELECT g FROM generate_series(1, 1000) g");
    let (scratch, data) = primary.standby_copy();
    let standby = Postgres::start_existing(scratch, data, None);
    assert_eq!(standby.psql("SELECT pg_promote(true, 60)"), "t");
    standby.psql("CREATE TABLE after_switch AS SELECT 1");

    let mut client = ReplicationClient::connect(&config(&standby.url()))
        .await
        .unwrap();
    let id = client.identify_system().await.unwrap();
    assert_eq!(id.timeline, TimelineId(2));
    let (filename, content) = client
        .timeline_history(TimelineId(2))
        .await
        .expect("TIMELINE_HISTORY 2");
    assert_eq!(filename, "00000002.history");
    // "1\t0/3000060\tno recovery target specified\n"
    let text = String::from_utf8(content.to_vec()).unwrap();
    let switch: Lsn = text
        .split('\t')
        .nth(1)
        .expect("history line has a switch LSN")
        .parse()
        .unwrap();
    assert!(text.starts_with("1\t"), "{text:?}");

    let size = client.wal_segment_size().await.unwrap();
    let start = size.segment_start(size.segment_of(switch));
    let mut stream = client
        .start_physical(None, start, TimelineId(1))
        .await
        .unwrap();
    let wal = collect_wal(&mut stream, start, switch).await;
    assert_eq!(
        start.0 + wal.len() as u64,
        switch.0,
        "timeline 1 ends exactly at the switch point"
    );
    loop {
        match stream.recv().await.unwrap() {
            Some(ReplicationMessage::EndOfTimeline) => break,
            Some(ReplicationMessage::Keepalive(_)) => {}
            other => panic!("expected the end of timeline 1, got {other:?}"),
        }
    }
    assert_eq!(stream.recv().await.unwrap(), None);
    let end = stream
        .finish()
        .await
        .expect("finish after the server's CopyDone");
    assert_eq!(end.next_timeline, Some((TimelineId(2), switch)));

    // Exactly at the end of timeline 1 the server skips COPY mode altogether.
    let mut stream = end
        .client
        .start_physical(None, switch, TimelineId(1))
        .await
        .unwrap();
    assert_eq!(
        stream.recv().await.unwrap(),
        Some(ReplicationMessage::EndOfTimeline)
    );
    let end = stream.finish().await.unwrap();
    assert_eq!(end.next_timeline, Some((TimelineId(2), switch)));

    // And the handed-back client follows onto timeline 2.
    let mut stream = end
        .client
        .start_physical(None, switch, TimelineId(2))
        .await
        .expect("stream timeline 2");
    let after = lsn_of(&standby, "SELECT pg_current_wal_flush_lsn()");
    collect_wal(&mut stream, switch, after).await;
}

/// A CA, and a server certificate it signed for 127.0.0.1, made with openssl.
struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    fn make() -> TestCerts {
        let dir = new_scratch_dir();
        let p = |f: &str| dir.path().join(f).display().to_string();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other_ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=instarec test {ca}"),
                "-keyout",
                &p(&format!("{ca}.key")),
                "-out",
                &p(&format!("{ca}.crt")),
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ]);
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &p("server.crt"),
        ]);
        if let Some(user) = server_user() {
            user.chown_tree(dir.path());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        TestCerts { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
}

fn with_tls(url: &str, mode: SslMode, root: Option<&Path>) -> ConnConfig {
    let mut cfg = config(url);
    cfg.sslmode = mode;
    cfg.sslrootcert = root.map(Path::to_path_buf);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_and_verify_full_work_and_a_wrong_ca_is_refused() {
    let certs = TestCerts::make();
    let pg = Postgres::start_with(PgOptions {
        scram_password: Some("tls pw".into()),
        extra_conf: vec![
            ("ssl".into(), "on".into()),
            (
                "ssl_cert_file".into(),
                certs.path("server.crt").display().to_string(),
            ),
            (
                "ssl_key_file".into(),
                certs.path("server.key").display().to_string(),
            ),
        ],
        ..Default::default()
    });
    let app_ssl = "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_replication USING (pid)";

    let mut client = ReplicationClient::connect(&with_tls(&pg.url(), SslMode::Require, None))
        .await
        .expect("sslmode=require");
    client.identify_system().await.unwrap();
    let mut stream = client
        .start_physical(None, Lsn(0x100_0000), TimelineId(1))
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.recv()).await;
    assert_eq!(
        pg.psql(app_ssl),
        "t",
        "the replication connection is encrypted"
    );
    drop(stream);

    let mut client = ReplicationClient::connect(&with_tls(
        &pg.url(),
        SslMode::VerifyFull,
        Some(&certs.path("ca.crt")),
    ))
    .await
    .expect("verify-full with the right CA");
    client.identify_system().await.unwrap();

    let wrong_ca = with_tls(
        &pg.url(),
        SslMode::VerifyFull,
        Some(&certs.path("other_ca.crt")),
    );
    assert_refused_as_tls(ReplicationClient::connect(&wrong_ca).await, pg.port());
    assert!(matches!(
        ReplicationClient::connect(&with_tls(
            &pg.url(),
            SslMode::VerifyCa,
            Some(&certs.path("other_ca.crt"))
        ))
        .await,
        Err(PgError::Tls { .. })
    ));

    let sql = connect_sql(&with_tls(
        &pg.url(),
        SslMode::VerifyFull,
        Some(&certs.path("ca.crt")),
    ))
    .await
    .expect("SQL over verify-full");
    let ssl: bool = sql
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    // Refused as the replication connection is: a TLS fault naming the
    // server, not "could not connect".
    assert_refused_as_tls(connect_sql(&wrong_ca).await, pg.port());
}

/// A certificate from the wrong CA is a TLS error naming the server.
fn assert_refused_as_tls<T>(result: Result<T, PgError>, port: u16) {
    match result {
        Err(e @ PgError::Tls { .. }) => {
            assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}")
        }
        Err(e) => panic!("wrong CA gave {e:?}"),
        Ok(_) => panic!("verify-full accepted a certificate from the wrong CA"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_against_a_server_without_tls_fails_and_prefer_falls_back() {
    let pg = Postgres::start();
    match ReplicationClient::connect(&with_tls(&pg.url(), SslMode::Require, None)).await {
        Err(e @ PgError::Tls { .. }) => {
            assert!(e.to_string().contains("does not accept TLS"), "{e}")
        }
        other => panic!("require without server TLS gave {:?}", other.err()),
    }
    ReplicationClient::connect(&with_tls(&pg.url(), SslMode::Prefer, None))
        .await
        .expect("prefer falls back to plain");
    ReplicationClient::connect(&with_tls(&pg.url(), SslMode::Disable, None))
        .await
        .expect("disable");
}

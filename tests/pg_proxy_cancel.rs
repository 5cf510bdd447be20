//! A query cancel through `instarec proxy` cancels the right query, with the
//! cancel key the server gave, whatever its length: PostgreSQL 18 with wire
//! protocol 3.2 hands out 32-byte keys (BackendKeyData), older servers 4
//! bytes after negotiating the protocol down to 3.0. The client here speaks
//! the protocol by hand, since no client library of CI speaks 3.2.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::postgres::server_major;
use support::process::{free_port, wait_for_port, GroupChild};
use support::Postgres;

/// Protocol 3.2, which PostgreSQL 18 speaks and older servers negotiate down.
const PROTOCOL_3_2: i32 = (3 << 16) | 2;
const CANCEL_REQUEST_CODE: i32 = 80877102;

struct Session {
    stream: TcpStream,
    pid: i32,
    key: Vec<u8>,
    /// The protocol minor version the server settled on.
    minor: i32,
}

fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).unwrap();
    let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).unwrap();
    (head[0], body)
}

/// Starts a 3.2 session through `port` (trust auth) and reads up to
/// ReadyForQuery, keeping the cancel key.
fn start_session(port: u16) -> Session {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut body = PROTOCOL_3_2.to_be_bytes().to_vec();
    for part in ["user", "postgres", "database", "postgres"] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    startup.extend_from_slice(&body);
    stream.write_all(&startup).unwrap();

    let (mut pid, mut key, mut minor) = (0, Vec::new(), 2);
    loop {
        match read_message(&mut stream) {
            (b'R', body) => assert_eq!(&body[..4], &[0, 0, 0, 0], "trust auth expected"),
            // NegotiateProtocolVersion: the newest version the server speaks.
            (b'v', body) => minor = i32::from_be_bytes(body[..4].try_into().unwrap()) & 0xffff,
            (b'K', body) => {
                pid = i32::from_be_bytes(body[..4].try_into().unwrap());
                key = body[4..].to_vec();
            }
            (b'Z', _) => break,
            (b'E', body) => panic!("startup failed: {}", String::from_utf8_lossy(&body)),
            _ => {}
        }
    }
    Session {
        stream,
        pid,
        key,
        minor,
    }
}

fn send_query(session: &mut Session, sql: &str) {
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
    msg.extend_from_slice(sql.as_bytes());
    msg.push(0);
    session.stream.write_all(&msg).unwrap();
}

/// The query's outcome: Ok on CommandComplete, Err(SQLSTATE) on an error.
fn query_outcome(session: &mut Session) -> Result<(), String> {
    let mut outcome = Ok(());
    loop {
        match read_message(&mut session.stream) {
            (b'E', body) => {
                let code = body
                    .split(|b| *b == 0)
                    .find(|f| f.first() == Some(&b'C'))
                    .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                    .unwrap_or_default();
                outcome = Err(code);
            }
            (b'Z', _) => return outcome,
            _ => {}
        }
    }
}

/// A CancelRequest on a new connection through `port`, as libpq sends it.
fn cancel(port: u16, pid: i32, key: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut msg = ((12 + key.len()) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    msg.extend_from_slice(&pid.to_be_bytes());
    msg.extend_from_slice(key);
    stream.write_all(&msg).unwrap();
    // The server closes the connection without answering.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

fn spawn_proxy(config: &Path, log: &Path) -> GroupChild {
    let file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    cmd.arg("--config")
        .arg(config)
        .arg("proxy")
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    GroupChild::spawn("instarec proxy", cmd, libc::SIGTERM, Duration::from_secs(5))
        .expect("spawning instarec proxy")
}

#[test]
fn a_cancel_through_the_proxy_cancels_the_right_query_with_a_key_of_any_length() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = dir.path().join("instarec.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\nurl = \"file://{}/archive\"\n\n[primary]\nurl = \"{}\"\n\n[cutover]\nlisten = \"127.0.0.1:{listen}\"\n",
            dir.path().display(),
            pg.url()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("archive")).unwrap();
    let log = dir.path().join("proxy.log");
    let _proxy = spawn_proxy(&config, &log);
    assert!(
        wait_for_port(listen, Duration::from_secs(30)),
        "proxy did not listen:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let mut target = start_session(listen);
    let mut bystander = start_session(listen);
    if server_major() >= 18 {
        assert_eq!(target.minor, 2, "PostgreSQL 18 speaks protocol 3.2");
        assert_eq!(target.key.len(), 32, "3.2 cancel keys are 32 bytes");
    } else {
        assert_eq!(target.minor, 0, "older servers negotiate 3.0");
        assert_eq!(target.key.len(), 4);
    }
    assert_ne!(target.pid, bystander.pid);

    send_query(&mut target, "SELECT pg_sleep(60)");
    send_query(&mut bystander, "SELECT pg_sleep(3)");
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    cancel(listen, target.pid, &target.key);
    assert_eq!(
        query_outcome(&mut target),
        Err("57014".into()),
        "the cancelled query ends with query_canceled"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        query_outcome(&mut bystander),
        Ok(()),
        "the other session's query runs to its end"
    );

    // A wrong key cancels nothing.
    send_query(&mut bystander, "SELECT pg_sleep(2)");
    let mut wrong = bystander.key.clone();
    wrong[0] ^= 0xff;
    cancel(listen, bystander.pid, &wrong);
    assert_eq!(query_outcome(&mut bystander), Ok(()));
}

//! Logging in on a fresh connection: the server's handshake, our
//! response, and whatever auth exchange the server's plugin asks for.
//!
//! Packet structs and password scrambles are mysql_common's; the exchange
//! is ours because mysql_async does not hand out its socket, and the binlog
//! stream needs the socket's exact bytes.
//!
//! Supported plugins: mysql_native_password (MariaDB's default) and
//! caching_sha2_password (MySQL 8's), including its full-auth path with the
//! server's RSA key over plain TCP. No TLS.

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::MySerialize;

use crate::mysql_error::MysqlError;
use crate::packet_connection::PacketConnection;
use crate::server_error_packet::{ServerErrorPacket, EOF_HEADER, ERR_HEADER, OK_HEADER};

/// caching_sha2_password's "more data" packet header and its two verdicts.
const MORE_DATA: u8 = 0x01;
const FAST_AUTH_OK: u8 = 0x03;
const FULL_AUTH_NEEDED: u8 = 0x04;
const REQUEST_PUBLIC_KEY: u8 = 0x02;
const MAX_PACKET: u32 = 1 << 30;

/// What the server said about itself in its handshake.
#[derive(Debug, Clone)]
pub struct ServerHello {
    pub version: String,
    pub connection_id: u32,
}

pub async fn login(
    conn: &mut PacketConnection,
    user: &str,
    pass: Option<&str>,
) -> Result<ServerHello, MysqlError> {
    let packet = conn.read_packet().await?;
    if let Some(err) = ServerErrorPacket::parse(&packet) {
        return Err(auth_error(conn, user, err));
    }
    let hello: HandshakePacket<'_> = ParseBuf(&packet)
        .parse(())
        .map_err(|e| protocol(conn, &format!("bad handshake: {e}"), &packet))?;
    let server_caps = hello.capabilities();
    if !server_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(MysqlError::Unsupported {
            addr: conn.addr().to_string(),
            reason: "the server predates protocol 4.1 (MySQL 4.1); use MySQL 5.6+ or MariaDB 10.0+"
                .into(),
        });
    }
    let wanted = CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    let caps = wanted & server_caps;
    let mut nonce = hello.nonce();
    let mut plugin = hello
        .auth_plugin()
        .unwrap_or(AuthPlugin::MysqlNativePassword)
        .into_owned();
    let data = auth_data(conn, &plugin, pass, &nonce)?;
    let response = HandshakeResponse::new(
        Some(data),
        hello.server_version_parsed().unwrap_or((0, 0, 0)),
        Some(user.as_bytes()),
        None::<&[u8]>,
        Some(plugin.clone()),
        caps,
        None,
        MAX_PACKET,
    );
    let mut out = Vec::new();
    response.serialize(&mut out);
    conn.write_packet(&out).await?;
    let server = ServerHello {
        version: hello.server_version_str().into_owned(),
        connection_id: hello.connection_id(),
    };

    let mut switched = false;
    loop {
        let packet = conn.read_packet().await?;
        match packet.first().copied() {
            Some(OK_HEADER) => return Ok(server),
            Some(ERR_HEADER) => {
                let err = ServerErrorPacket::parse(&packet)
                    .ok_or_else(|| protocol(conn, "truncated ERR packet", &packet))?;
                return Err(auth_error(conn, user, err));
            }
            Some(EOF_HEADER) if !switched => {
                switched = true;
                let switch: AuthSwitchRequest<'_> = ParseBuf(&packet)
                    .parse(())
                    .map_err(|e| protocol(conn, &format!("bad auth switch: {e}"), &packet))?;
                nonce = switch.plugin_data().to_vec();
                plugin = switch.auth_plugin().into_owned();
                let data = auth_data(conn, &plugin, pass, &nonce)?;
                conn.write_packet(&data).await?;
            }
            Some(MORE_DATA) if plugin == AuthPlugin::CachingSha2Password => {
                match packet.get(1).copied() {
                    Some(FAST_AUTH_OK) => {}
                    Some(FULL_AUTH_NEEDED) => {
                        conn.write_packet(&[REQUEST_PUBLIC_KEY]).await?;
                        let key = conn.read_packet().await?;
                        let pem = key
                            .get(1..)
                            .filter(|_| key.first() == Some(&MORE_DATA))
                            .ok_or_else(|| protocol(conn, "expected the server's RSA key", &key))?;
                        let secret = encrypt_password(pass.unwrap_or(""), &nonce, pem)
                            .ok_or_else(|| protocol(conn, "unusable RSA public key", &key))?;
                        conn.write_packet(&secret).await?;
                    }
                    _ => return Err(protocol(conn, "unexpected caching_sha2 reply", &packet)),
                }
            }
            _ => return Err(protocol(conn, "unexpected packet during login", &packet)),
        }
    }
}

/// The scramble `plugin` wants for `pass` (empty for no password).
fn auth_data(
    conn: &PacketConnection,
    plugin: &AuthPlugin<'_>,
    pass: Option<&str>,
    nonce: &[u8],
) -> Result<Vec<u8>, MysqlError> {
    match plugin {
        AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password => Ok(plugin
            .gen_data(pass, nonce)
            .map(|d| d.to_vec())
            .unwrap_or_default()),
        other => Err(MysqlError::Unsupported {
            addr: conn.addr().to_string(),
            reason: format!(
                "the user's auth plugin {:?} is not supported; give the replication user mysql_native_password or caching_sha2_password",
                String::from_utf8_lossy(other.as_bytes())
            ),
        }),
    }
}

/// caching_sha2_password full auth without TLS: the NUL-terminated
/// password XOR the nonce, RSA-OAEP encrypted with the server's key.
/// mysql_common's RSA code unwraps while reading the PEM, so a key that is
/// not one is caught here rather than crashing the process.
fn encrypt_password(pass: &str, nonce: &[u8], pem: &[u8]) -> Option<Vec<u8>> {
    if nonce.is_empty() {
        return None;
    }
    let mut secret: Vec<u8> = pass.as_bytes().to_vec();
    secret.push(0);
    for (i, b) in secret.iter_mut().enumerate() {
        *b ^= nonce[i % nonce.len()];
    }
    let pem = pem.to_vec();
    std::panic::catch_unwind(move || mysql_common::crypto::encrypt(&secret, &pem)).ok()
}

fn auth_error(conn: &PacketConnection, user: &str, err: ServerErrorPacket) -> MysqlError {
    MysqlError::Auth {
        addr: conn.addr().to_string(),
        user: user.to_string(),
        message: format!("error {} ({}): {}", err.code, err.state, err.message),
    }
}

fn protocol(conn: &PacketConnection, reason: &str, packet: &[u8]) -> MysqlError {
    MysqlError::Protocol {
        addr: conn.addr().to_string(),
        reason: reason.to_string(),
        packet: packet.to_vec(),
    }
}

//! Message framing over a (possibly TLS) socket.
//!
//! Reads are cancel-safe: bytes go into `rbuf` as they arrive and a message is only
//! taken out once complete, so dropping a `read()` future (e.g. in `tokio::select!`)
//! loses nothing. Writes go out of `wbuf` with `write_all_buf`, which advances past what
//! was written, so an interrupted `flush()` resumes on the next call instead of
//! duplicating or dropping bytes. Nothing is buffered beyond one message in either direction.

use bytes::{Buf, BytesMut};
use postgres_protocol::message::backend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::PgError;

/// A byte stream to the server: TCP, Unix socket or TLS over TCP.
pub(crate) trait PgIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PgIo for T {}

/// Refuse frames larger than this instead of allocating whatever a length field says.
/// The largest we expect are WAL CopyData (128 KiB) and timeline history rows.
const MAX_FRAME: usize = 256 << 20;

const COPY_BOTH_RESPONSE_TAG: u8 = b'W';
const NEGOTIATE_PROTOCOL_VERSION_TAG: u8 = b'v';

/// A backend message. Wraps postgres-protocol's parser, which lacks the replication-only
/// CopyBothResponse.
pub(crate) enum Backend {
    Message(backend::Message),
    CopyBothResponse,
    NegotiateProtocolVersion,
}

pub(crate) struct Framed {
    io: Box<dyn PgIo>,
    rbuf: BytesMut,
    /// Outgoing messages; callers encode into it and then call `flush`.
    pub(crate) wbuf: BytesMut,
    /// host:port, for errors.
    pub(crate) addr: String,
}

impl Framed {
    pub(crate) fn new(io: Box<dyn PgIo>, addr: String) -> Self {
        Framed {
            io,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(1024),
            addr,
        }
    }

    /// Bytes already read from the socket but not yet framed. Must be empty when the
    /// socket is handed to TLS, or the server's first bytes would be lost.
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.rbuf.is_empty()
    }

    pub(crate) fn into_io(self) -> Box<dyn PgIo> {
        self.io
    }

    /// Next backend message. Cancel-safe.
    pub(crate) async fn read(&mut self) -> Result<Backend, PgError> {
        loop {
            if let Some(msg) = self.try_parse()? {
                return Ok(msg);
            }
            let n = self
                .io
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| PgError::io(&self.addr, e))?;
            if n == 0 {
                return Err(PgError::Closed {
                    addr: self.addr.clone(),
                    context: String::new(),
                });
            }
        }
    }

    /// Reads exactly one byte that is not a framed message (the answer to SSLRequest).
    pub(crate) async fn read_byte(&mut self) -> Result<u8, PgError> {
        if self.rbuf.is_empty() {
            let n = self
                .io
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| PgError::io(&self.addr, e))?;
            if n == 0 {
                return Err(PgError::Closed {
                    addr: self.addr.clone(),
                    context: " during TLS negotiation".into(),
                });
            }
        }
        Ok(self.rbuf.get_u8())
    }

    fn try_parse(&mut self) -> Result<Option<Backend>, PgError> {
        let Some(header) = backend::Header::parse(&self.rbuf)
            .map_err(|e| PgError::protocol(&self.addr, e.to_string()))?
        else {
            return Ok(None);
        };
        let total = header.len() as usize + 1;
        if total > MAX_FRAME {
            return Err(PgError::protocol(
                &self.addr,
                format!(
                    "message '{}' of {total} bytes exceeds the {MAX_FRAME}-byte limit",
                    header.tag() as char
                ),
            ));
        }
        if self.rbuf.len() < total {
            self.rbuf.reserve(total - self.rbuf.len());
            return Ok(None);
        }
        match header.tag() {
            COPY_BOTH_RESPONSE_TAG => {
                self.rbuf.advance(total);
                Ok(Some(Backend::CopyBothResponse))
            }
            NEGOTIATE_PROTOCOL_VERSION_TAG => {
                self.rbuf.advance(total);
                Ok(Some(Backend::NegotiateProtocolVersion))
            }
            _ => match backend::Message::parse(&mut self.rbuf) {
                Ok(Some(m)) => Ok(Some(Backend::Message(m))),
                Ok(None) => Ok(None),
                Err(e) => Err(PgError::protocol(&self.addr, e.to_string())),
            },
        }
    }

    /// Sends everything in `wbuf`.
    pub(crate) async fn flush(&mut self) -> Result<(), PgError> {
        self.io
            .write_all_buf(&mut self.wbuf)
            .await
            .map_err(|e| PgError::io(&self.addr, e))?;
        self.io
            .flush()
            .await
            .map_err(|e| PgError::io(&self.addr, e))
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Default, Clone)]
pub(crate) struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ErrorFields {
    /// From `body.fields()` of an ErrorResponse or NoticeResponse.
    pub(crate) fn from_fields(mut fields: backend::ErrorFields<'_>) -> ErrorFields {
        use fallible_iterator::FallibleIterator;
        let mut out = ErrorFields::default();
        while let Ok(Some(f)) = fields.next() {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'V' => out.severity = v,
                b'S' if out.severity.is_empty() => out.severity = v,
                b'C' => out.code = v,
                b'M' => out.message = v,
                b'D' => out.detail = Some(v),
                b'H' => out.hint = Some(v),
                _ => {}
            }
        }
        out
    }

    pub(crate) fn into_error(self, addr: &str, command: &str) -> PgError {
        PgError::Server {
            addr: addr.to_string(),
            command: command.to_string(),
            severity: self.severity,
            code: self.code,
            message: self.message,
            detail: self.detail,
            hint: self.hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use tokio::io::AsyncWriteExt;

    /// CopyData frames of `n` bytes each, byte i of frame f being (f + i) as u8.
    fn copy_data_frames(count: usize, n: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        for f in 0..count {
            out.put_u8(b'd');
            out.put_u32(4 + n as u32);
            out.extend((0..n).map(|i| (f + i) as u8));
        }
        out.to_vec()
    }

    /// A 64-byte pipe makes every frame arrive in pieces, and the yield branch drops the
    /// read future after each piece: a reader that kept partial frames in a local buffer
    /// would lose them here.
    #[tokio::test]
    async fn read_is_cancel_safe_across_partial_frames() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut framed = Framed::new(Box::new(client), "test:0".into());
        let (count, n) = (20, 5000);
        let bytes = copy_data_frames(count, n);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(37) {
                server.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            // Dropping the pipe here turns a reader that lost bytes into an EOF error, not a hang.
        });
        let (mut got, mut cancelled) = (0, 0);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while got < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {got} of {count} frames within 10s"
            );
            tokio::select! {
                biased;
                msg = framed.read() => match msg.unwrap() {
                    Backend::Message(backend::Message::CopyData(body)) => {
                        let expected: Vec<u8> = (0..n).map(|i| (got + i) as u8).collect();
                        assert_eq!(body.data(), &expected[..], "frame {got} intact");
                        got += 1;
                    }
                    _ => panic!("expected CopyData"),
                },
                _ = tokio::task::yield_now() => cancelled += 1,
            }
        }
        assert!(
            cancelled > count,
            "reads were cancelled mid-frame only {cancelled} times"
        );
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_allocating() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut framed = Framed::new(Box::new(client), "test:0".into());
        server
            .write_all(&[b'd', 0x7F, 0xFF, 0xFF, 0xFF])
            .await
            .unwrap();
        match framed.read().await {
            Err(PgError::Protocol { detail, .. }) => {
                assert!(detail.contains("exceeds"), "{detail}")
            }
            _ => panic!("an oversized frame was accepted"),
        }
    }

    #[tokio::test]
    async fn copy_both_response_is_recognised() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut framed = Framed::new(Box::new(client), "test:0".into());
        // CopyBothResponse: binary format, zero columns.
        server
            .write_all(&[b'W', 0, 0, 0, 7, 0, 0, 0])
            .await
            .unwrap();
        assert!(matches!(
            framed.read().await.unwrap(),
            Backend::CopyBothResponse
        ));
        drop(server);
        assert!(matches!(framed.read().await, Err(PgError::Closed { .. })));
    }
}

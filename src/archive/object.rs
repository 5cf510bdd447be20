//! One archive object: its header and its codec (compression + encryption).
//!
//! Layout, little-endian, 76-byte header then body:
//!
//! ```text
//!  0  magic        b"IREC"
//!  4  version      u8 = 1
//!  5  codec        u8   0 none, 1 zstd
//!  6  cipher       u8   0 none, 1 XChaCha20-Poly1305
//!  7  reserved     u8 = 0
//!  8  key id       [u8; 8]  zeros when plain
//! 16  cluster tag  u64      0 = unbound
//! 24  payload len  u64      uncompressed payload
//! 32  body len     u64      bytes after the header (detects truncation exactly)
//! 40  checksum     [u8; 32] BLAKE3 of the uncompressed payload; keyed BLAKE3
//!                           (subkey of the encryption key) when encrypted
//! 72  header check [u8; 4]  first 4 bytes of BLAKE3 of bytes 0..72
//! 76  body         plain:     codec(payload)
//!                  encrypted: nonce[24] | codec(payload) encrypted | tag[16]
//!                             (AAD = the 76 header bytes)
//! ```
//!
//! The checksum is deterministic, so re-putting identical content can be
//! recognised from the header alone; keyed when encrypted, so the plain header
//! leaks nothing about the plaintext.

use bytes::{BufMut, Bytes, BytesMut};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use object_store::PutPayload;

use super::cluster::ClusterTag;
use super::encryption_key::EncryptionKey;
use super::error::ArchiveError;

pub const MAGIC: [u8; 4] = *b"IREC";
/// The object format version this build writes and the newest it reads.
pub const OBJECT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 76;
const CHECKED_LEN: usize = 72;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Largest payload a header may claim. Bounds what a decoder allocates, so a
/// forged header can't make us reserve absurd amounts of memory.
pub const MAX_PAYLOAD_LEN: u64 = 4 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Zstd = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    None = 0,
    XChaCha20Poly1305 = 1,
}

/// The fixed header at the start of every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHeader {
    pub version: u8,
    pub codec: Codec,
    pub cipher: Cipher,
    pub key_id: [u8; 8],
    pub cluster_tag: u64,
    pub payload_len: u64,
    pub body_len: u64,
    pub checksum: [u8; 32],
}

/// Why a header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("object is {len} bytes, shorter than its header")]
    Short { len: usize },
    #[error("not an instarec archive object (bad magic {found:02x?})")]
    BadMagic { found: [u8; 4] },
    #[error("object format version {found} is newer than this instarec's {OBJECT_VERSION}")]
    NewerVersion { found: u8 },
    #[error("object format version 0 does not exist")]
    ZeroVersion,
    #[error("header check mismatch: the header bytes were altered")]
    BadCheck,
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    #[error("unknown cipher {0}")]
    UnknownCipher(u8),
}

impl ObjectHeader {
    /// Parses and checks the header at the start of `buf`. Magic and version
    /// come first, so a newer format is reported as such, not as corruption.
    pub fn parse(buf: &[u8]) -> Result<Self, HeaderError> {
        if buf.len() < 5 {
            return Err(HeaderError::Short { len: buf.len() });
        }
        let magic: [u8; 4] = array(&buf[0..4]);
        if magic != MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        let version = buf[4];
        if version > OBJECT_VERSION {
            return Err(HeaderError::NewerVersion { found: version });
        }
        if version == 0 {
            return Err(HeaderError::ZeroVersion);
        }
        if buf.len() < HEADER_LEN {
            return Err(HeaderError::Short { len: buf.len() });
        }
        if header_check(&buf[..CHECKED_LEN]) != buf[CHECKED_LEN..HEADER_LEN] {
            return Err(HeaderError::BadCheck);
        }
        let codec = match buf[5] {
            0 => Codec::None,
            1 => Codec::Zstd,
            other => return Err(HeaderError::UnknownCodec(other)),
        };
        let cipher = match buf[6] {
            0 => Cipher::None,
            1 => Cipher::XChaCha20Poly1305,
            other => return Err(HeaderError::UnknownCipher(other)),
        };
        Ok(ObjectHeader {
            version,
            codec,
            cipher,
            key_id: array(&buf[8..16]),
            cluster_tag: u64::from_le_bytes(array(&buf[16..24])),
            payload_len: u64::from_le_bytes(array(&buf[24..32])),
            body_len: u64::from_le_bytes(array(&buf[32..40])),
            checksum: array(&buf[40..72]),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.to_bytes());
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.version;
        b[5] = self.codec as u8;
        b[6] = self.cipher as u8;
        b[7] = 0;
        b[8..16].copy_from_slice(&self.key_id);
        b[16..24].copy_from_slice(&self.cluster_tag.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.body_len.to_le_bytes());
        b[40..72].copy_from_slice(&self.checksum);
        let check = header_check(&b[..CHECKED_LEN]);
        b[CHECKED_LEN..HEADER_LEN].copy_from_slice(&check);
        b
    }

    /// Total stored size the header promises.
    pub fn object_len(&self) -> u64 {
        HEADER_LEN as u64 + self.body_len
    }

    pub fn checksum_hex(&self) -> String {
        hex::encode(self.checksum)
    }
}

fn header_check(bytes: &[u8]) -> [u8; 4] {
    array(&blake3::hash(bytes).as_bytes()[..4])
}

// Only called with slices of the right length, sliced from fixed offsets.
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

/// The checksum stored in headers: plain BLAKE3, or keyed BLAKE3 when `key` is set.
pub fn payload_checksum(payload: &[u8], key: Option<&EncryptionKey>) -> [u8; 32] {
    match key {
        None => *blake3::hash(payload).as_bytes(),
        Some(key) => *blake3::keyed_hash(&key.checksum_key(), payload).as_bytes(),
    }
}

/// How to write an object.
#[derive(Debug, Clone, Copy)]
pub struct Sealing<'a> {
    pub codec: Codec,
    pub zstd_level: i32,
    /// Encrypt with this key; `None` writes plain.
    pub key: Option<&'a EncryptionKey>,
    pub cluster_tag: Option<ClusterTag>,
}

/// An object ready to upload.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub header: ObjectHeader,
    pub object: PutPayload,
}

/// Builds the stored form of `payload`. CPU-heavy: call from spawn_blocking.
///
/// Copies: none for plain uncompressed objects (header and payload go out as
/// two chunks); otherwise zstd writes straight after the reserved header and
/// the cipher works in place, so the payload is copied once by the codec.
pub fn seal(payload: Bytes, sealing: &Sealing) -> Result<Sealed, String> {
    let payload_len = payload.len() as u64;
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(format!(
            "payload of {payload_len} bytes exceeds the {MAX_PAYLOAD_LEN}-byte object limit"
        ));
    }
    let checksum = payload_checksum(&payload, sealing.key);
    let prefix = HEADER_LEN + if sealing.key.is_some() { NONCE_LEN } else { 0 };
    let suffix = if sealing.key.is_some() { TAG_LEN } else { 0 };

    let mut codec = Codec::None;
    let mut buf: Option<Vec<u8>> = None;
    if sealing.codec == Codec::Zstd && !payload.is_empty() {
        let bound = zstd::zstd_safe::compress_bound(payload.len());
        // Zeroed allocation of this size comes from calloc/mmap: no copy.
        let mut out = vec![0u8; prefix + bound + suffix];
        let n = compress(
            sealing.zstd_level,
            &payload,
            &mut out[prefix..prefix + bound],
        )?;
        // Incompressible payloads are stored as they are: cheaper to read back.
        if n < payload.len() {
            out.truncate(prefix + n);
            codec = Codec::Zstd;
            buf = Some(out);
        }
    }

    let mut header = ObjectHeader {
        version: OBJECT_VERSION,
        codec,
        cipher: Cipher::None,
        key_id: [0; 8],
        cluster_tag: sealing.cluster_tag.map_or(0, |t| t.0),
        payload_len,
        body_len: 0,
        checksum,
    };

    let Some(key) = sealing.key else {
        return Ok(match buf {
            Some(mut out) => {
                header.body_len = (out.len() - HEADER_LEN) as u64;
                out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
                shrink_if_wasteful(&mut out);
                Sealed {
                    header,
                    object: PutPayload::from(out),
                }
            }
            None => {
                header.body_len = payload_len;
                let head = Bytes::copy_from_slice(&header.to_bytes());
                Sealed {
                    header,
                    object: PutPayload::from_iter([head, payload]),
                }
            }
        });
    };

    let mut out = match buf {
        Some(out) => out,
        None => {
            let mut out = Vec::with_capacity(prefix + payload.len() + suffix);
            out.resize(prefix, 0);
            out.extend_from_slice(&payload);
            out
        }
    };
    drop(payload);
    header.cipher = Cipher::XChaCha20Poly1305;
    header.key_id = key.id();
    header.body_len = (out.len() + TAG_LEN - HEADER_LEN) as u64;
    let head = header.to_bytes();
    out[..HEADER_LEN].copy_from_slice(&head);
    let nonce: [u8; NONCE_LEN] = rand::random();
    out[HEADER_LEN..prefix].copy_from_slice(&nonce);
    let cipher = XChaCha20Poly1305::new(&key.cipher_key().into());
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &head, &mut out[prefix..])
        .map_err(|_| "encryption failed (payload too large for XChaCha20-Poly1305)".to_string())?;
    out.extend_from_slice(&tag);
    shrink_if_wasteful(&mut out);
    Ok(Sealed {
        header,
        object: PutPayload::from(out),
    })
}

// The compression buffer is sized for the worst case; give back the slack when
// it is large, at the price of copying the (smaller) compressed bytes once.
/// Payloads up to this size reuse their thread's compression context.
const REUSED_CONTEXT_MAX: usize = 64 * 1024;

/// zstd into `dst`. A synchronous shipper seals a small part per commit
/// group: for those, setting up a context costs as much as compressing,
/// so each thread keeps one (sized for small inputs, so it stays small).
/// The output is the same either way.
fn compress(level: i32, src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    thread_local! {
        static SMALL: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let new =
        |level| zstd::bulk::Compressor::new(level).map_err(|e| format!("zstd level {level}: {e}"));
    let mut run = |c: &mut zstd::bulk::Compressor<'static>| {
        c.compress_to_buffer(src, dst)
            .map_err(|e| format!("zstd compression: {e}"))
    };
    if src.len() > REUSED_CONTEXT_MAX {
        return run(&mut new(level)?);
    }
    SMALL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, new(level)?));
        }
        let (_, c) = slot.as_mut().expect("set just above");
        run(c)
    })
}

fn shrink_if_wasteful(out: &mut Vec<u8>) {
    if out.capacity() - out.len() > out.len() / 4 + 4096 {
        out.shrink_to_fit();
    }
}

/// The archive error for a header of `object_key` (`stored_len` bytes long)
/// that failed to parse.
pub fn header_fault(object_key: &str, stored_len: usize, error: HeaderError) -> ArchiveError {
    match error {
        HeaderError::Short { .. } => ArchiveError::Truncated {
            key: object_key.to_string(),
            expected: HEADER_LEN as u64,
            actual: stored_len as u64,
        },
        HeaderError::NewerVersion { found } => ArchiveError::NewerFormat {
            what: format!("archive object {object_key}"),
            found: u32::from(found),
            supported: u32::from(OBJECT_VERSION),
        },
        other => ArchiveError::Corrupt {
            key: object_key.to_string(),
            reason: other.to_string(),
        },
    }
}

/// How to read an object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unsealing<'a> {
    pub key: Option<&'a EncryptionKey>,
    /// When set, the object must carry exactly this cluster tag.
    pub expected_tag: Option<ClusterTag>,
}

/// Verifies and decodes a stored object named `object_key`. CPU-heavy: call
/// from spawn_blocking. Every failure names the key; nothing unverified is
/// returned.
pub fn unseal(
    object_key: &str,
    stored: Bytes,
    unsealing: &Unsealing,
) -> Result<(ObjectHeader, Bytes), ArchiveError> {
    let corrupt = |reason: String| ArchiveError::Corrupt {
        key: object_key.to_string(),
        reason,
    };
    let header =
        ObjectHeader::parse(&stored).map_err(|e| header_fault(object_key, stored.len(), e))?;

    if let Some(expected) = unsealing.expected_tag {
        if header.cluster_tag != expected.0 {
            return Err(ArchiveError::ForeignObject {
                key: object_key.to_string(),
                found: ClusterTag(header.cluster_tag),
                expected,
            });
        }
    }
    let actual = stored.len() as u64;
    if actual < header.object_len() {
        return Err(ArchiveError::Truncated {
            key: object_key.to_string(),
            expected: header.object_len(),
            actual,
        });
    }
    if actual > header.object_len() {
        return Err(corrupt(format!(
            "{} unexpected bytes after the end the header declares",
            actual - header.object_len()
        )));
    }
    if header.payload_len > MAX_PAYLOAD_LEN {
        return Err(corrupt(format!(
            "header claims a payload of {} bytes, over the {MAX_PAYLOAD_LEN}-byte limit",
            header.payload_len
        )));
    }

    let (body, checksum_key) = match header.cipher {
        Cipher::None => (stored.slice(HEADER_LEN..), None),
        Cipher::XChaCha20Poly1305 => {
            let key = unsealing.key.ok_or_else(|| ArchiveError::MissingKey {
                key: object_key.to_string(),
                key_id: hex::encode(header.key_id),
            })?;
            if key.id() != header.key_id {
                return Err(ArchiveError::WrongKey {
                    key: object_key.to_string(),
                    found: hex::encode(header.key_id),
                    configured: hex::encode(key.id()),
                });
            }
            if header.body_len < (NONCE_LEN + TAG_LEN) as u64 {
                return Err(corrupt(
                    "encrypted body shorter than nonce and tag".to_string(),
                ));
            }
            let end = stored.len() - TAG_LEN;
            let start = HEADER_LEN + NONCE_LEN;
            // Unique after a fresh download, so this takes the buffer without copying.
            let mut buf = BytesMut::from(stored);
            let (head_and_nonce, rest) = buf.split_at_mut(start);
            let (ciphertext, tag) = rest.split_at_mut(end - start);
            let cipher = XChaCha20Poly1305::new(&key.cipher_key().into());
            cipher
                .decrypt_in_place_detached(
                    XNonce::from_slice(&head_and_nonce[HEADER_LEN..]),
                    &head_and_nonce[..HEADER_LEN],
                    ciphertext,
                    Tag::from_slice(tag),
                )
                .map_err(|_| {
                    corrupt("decryption failed authentication: the bytes were altered".to_string())
                })?;
            (buf.freeze().slice(start..end), Some(key))
        }
    };

    let payload = match header.codec {
        Codec::None => body,
        Codec::Zstd => {
            // payload_len is bounded above; zstd refuses to write past capacity.
            let mut out = Vec::with_capacity(header.payload_len as usize);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(&body, &mut out))
                .map_err(|e| corrupt(format!("zstd decompression failed: {e}")))?;
            Bytes::from(out)
        }
    };
    if payload.len() as u64 != header.payload_len {
        return Err(corrupt(format!(
            "payload is {} bytes, header says {}",
            payload.len(),
            header.payload_len
        )));
    }
    let checksum = payload_checksum(&payload, checksum_key);
    if checksum != header.checksum {
        return Err(corrupt(format!(
            "payload checksum {} does not match header checksum {}",
            hex::encode(checksum),
            header.checksum_hex()
        )));
    }
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(sealed: &Sealed) -> Bytes {
        let mut out = BytesMut::new();
        for chunk in sealed.object.iter() {
            out.extend_from_slice(chunk);
        }
        out.freeze()
    }

    fn sample_header() -> ObjectHeader {
        ObjectHeader {
            version: 1,
            codec: Codec::Zstd,
            cipher: Cipher::XChaCha20Poly1305,
            key_id: [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8],
            cluster_tag: 0x0102_0304_0506_0708,
            payload_len: 16 << 20,
            body_len: 0x1234,
            checksum: [0x5a; 32],
        }
    }

    // The header of sample_header(), byte for byte. The check bytes are the
    // first 4 bytes of BLAKE3 over bytes 0..72, recorded once; they pin the
    // on-disk format, so a change here means old archives become unreadable.
    const SAMPLE_HEADER_BYTES: [u8; HEADER_LEN] = [
        b'I',
        b'R',
        b'E',
        b'C',
        1,
        1,
        1,
        0, // magic, version, codec, cipher, reserved
        0xa1,
        0xa2,
        0xa3,
        0xa4,
        0xa5,
        0xa6,
        0xa7,
        0xa8, // key id
        0x08,
        0x07,
        0x06,
        0x05,
        0x04,
        0x03,
        0x02,
        0x01, // cluster tag
        0x00,
        0x00,
        0x00,
        0x01,
        0x00,
        0x00,
        0x00,
        0x00, // payload len 16 MiB
        0x34,
        0x12,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00, // body len
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a, // checksum
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a, //
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a, //
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a,
        0x5a, //
        SAMPLE_CHECK[0],
        SAMPLE_CHECK[1],
        SAMPLE_CHECK[2],
        SAMPLE_CHECK[3],
    ];
    const SAMPLE_CHECK: [u8; 4] = [0xa8, 0x23, 0x51, 0xda];

    #[test]
    fn header_encodes_to_literal_bytes() {
        let mut out = BytesMut::new();
        sample_header().encode(&mut out);
        assert_eq!(&out[..], &SAMPLE_HEADER_BYTES[..]);
    }

    #[test]
    fn header_parses_from_literal_bytes() {
        assert_eq!(
            ObjectHeader::parse(&SAMPLE_HEADER_BYTES).unwrap(),
            sample_header()
        );
    }

    #[test]
    fn header_rejects_flips_magic_and_newer_versions() {
        for i in 0..HEADER_LEN {
            let mut bytes = SAMPLE_HEADER_BYTES;
            bytes[i] ^= 0x10;
            assert!(
                ObjectHeader::parse(&bytes).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        let mut newer = SAMPLE_HEADER_BYTES;
        newer[4] = 2;
        assert_eq!(
            ObjectHeader::parse(&newer),
            Err(HeaderError::NewerVersion { found: 2 })
        );
        let mut other = SAMPLE_HEADER_BYTES;
        other[0..4].copy_from_slice(b"PK\x03\x04");
        assert!(matches!(
            ObjectHeader::parse(&other),
            Err(HeaderError::BadMagic { .. })
        ));
        assert_eq!(
            ObjectHeader::parse(&SAMPLE_HEADER_BYTES[..40]),
            Err(HeaderError::Short { len: 40 })
        );
    }

    fn payload() -> Bytes {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .collect();
        Bytes::from(text)
    }

    fn all_sealings(key: &EncryptionKey) -> Vec<Sealing<'_>> {
        let mut out = Vec::new();
        for codec in [Codec::None, Codec::Zstd] {
            for key in [None, Some(key)] {
                out.push(Sealing {
                    codec,
                    zstd_level: 3,
                    key,
                    cluster_tag: Some(ClusterTag(42)),
                });
            }
        }
        out
    }

    #[test]
    fn round_trips_every_codec_and_cipher() {
        let key = EncryptionKey::from_bytes([3; 32]);
        for sealing in all_sealings(&key) {
            for payload in [payload(), Bytes::new(), Bytes::from_static(b"x")] {
                let sealed = seal(payload.clone(), &sealing).unwrap();
                let unsealing = Unsealing {
                    key: Some(&key),
                    expected_tag: Some(ClusterTag(42)),
                };
                let (header, back) = unseal("k", stored(&sealed), &unsealing).unwrap();
                assert_eq!(back, payload, "{sealing:?}");
                assert_eq!(header, sealed.header);
            }
        }
    }

    #[test]
    fn compressible_payloads_are_compressed_and_incompressible_ones_are_not() {
        let sealing = Sealing {
            codec: Codec::Zstd,
            zstd_level: 3,
            key: None,
            cluster_tag: None,
        };
        let sealed = seal(payload(), &sealing).unwrap();
        assert_eq!(sealed.header.codec, Codec::Zstd);
        assert!(sealed.object.content_length() < payload().len() / 4);
        let noise: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        let sealed = seal(Bytes::from(noise), &sealing).unwrap();
        assert_eq!(sealed.header.codec, Codec::None);
    }

    #[test]
    fn plain_uncompressed_payload_is_neither_copied_on_write_nor_on_read() {
        let payload = payload();
        let sealing = Sealing {
            codec: Codec::None,
            zstd_level: 3,
            key: None,
            cluster_tag: None,
        };
        let sealed = seal(payload.clone(), &sealing).unwrap();
        let chunks: Vec<&Bytes> = sealed.object.iter().collect();
        assert_eq!(chunks[1].as_ptr(), payload.as_ptr());
        let stored = stored(&sealed);
        let (_, back) = unseal("k", stored.clone(), &Unsealing::default()).unwrap();
        assert_eq!(back.as_ptr(), stored[HEADER_LEN..].as_ptr());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_detected() {
        let key = EncryptionKey::from_bytes([3; 32]);
        let small = Bytes::from_static(b"some WAL bytes, some WAL bytes, some WAL bytes");
        for sealing in all_sealings(&key) {
            let stored = stored(&seal(small.clone(), &sealing).unwrap());
            let unsealing = Unsealing {
                key: Some(&key),
                expected_tag: None,
            };
            for i in 0..stored.len() {
                let mut bad = stored.to_vec();
                bad[i] ^= 0x01;
                let err = unseal("k", Bytes::from(bad), &unsealing).unwrap_err();
                assert!(
                    err.is_integrity_fault() || matches!(err, ArchiveError::WrongKey { .. }),
                    "{sealing:?} flip at {i}: {err}"
                );
            }
            for len in 0..stored.len() {
                let err = unseal("k", stored.slice(..len), &unsealing).unwrap_err();
                assert!(
                    matches!(err, ArchiveError::Truncated { .. }),
                    "{sealing:?} cut at {len}: {err}"
                );
            }
        }
    }

    #[test]
    fn keys_and_cluster_tags_are_enforced() {
        let key = EncryptionKey::from_bytes([3; 32]);
        let other = EncryptionKey::from_bytes([4; 32]);
        let sealing = Sealing {
            codec: Codec::Zstd,
            zstd_level: 3,
            key: Some(&key),
            cluster_tag: Some(ClusterTag(42)),
        };
        let stored = stored(&seal(payload(), &sealing).unwrap());
        let err = unseal("wal/1", stored.clone(), &Unsealing::default()).unwrap_err();
        assert!(matches!(err, ArchiveError::MissingKey { .. }), "{err}");
        assert!(err.to_string().contains("encryption_key_file"));
        let wrong = Unsealing {
            key: Some(&other),
            expected_tag: None,
        };
        let err = unseal("wal/1", stored.clone(), &wrong).unwrap_err();
        assert!(matches!(err, ArchiveError::WrongKey { .. }), "{err}");
        let foreign = Unsealing {
            key: Some(&key),
            expected_tag: Some(ClusterTag(43)),
        };
        let err = unseal("wal/1", stored, &foreign).unwrap_err();
        assert!(matches!(err, ArchiveError::ForeignObject { .. }), "{err}");
    }

    #[test]
    fn encrypted_checksum_is_keyed_and_deterministic() {
        let key = EncryptionKey::from_bytes([3; 32]);
        let p = payload();
        assert_eq!(
            payload_checksum(&p, Some(&key)),
            payload_checksum(&p, Some(&key))
        );
        assert_ne!(payload_checksum(&p, Some(&key)), payload_checksum(&p, None));
        assert_eq!(payload_checksum(&p, None), *blake3::hash(&p).as_bytes());
    }
}

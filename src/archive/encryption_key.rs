//! The archive encryption key and the subkeys derived from it.

use std::fmt;
use std::path::Path;

use base64::Engine as _;

use super::error::ArchiveError;

const KEY_ID_CONTEXT: &str = "instarec 2025 archive key id v1";
const CIPHER_KEY_CONTEXT: &str = "instarec 2025 archive object encryption v1";
const CHECKSUM_KEY_CONTEXT: &str = "instarec 2025 archive payload checksum v1";

/// A 256-bit archive key. Objects never use it directly: each purpose (cipher,
/// keyed checksum, key id) gets its own BLAKE3-derived subkey, so the key id and
/// checksums stored in plain headers reveal nothing about the key or plaintext.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EncryptionKey(bytes)
    }

    /// Reads a key file holding either 32 raw bytes or the text forms of
    /// [`EncryptionKey::from_text`].
    pub fn from_file(path: &Path) -> Result<Self, ArchiveError> {
        let bytes = std::fs::read(path).map_err(|source| ArchiveError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(EncryptionKey(raw));
        }
        let origin = format!("file {}", path.display());
        let text = std::str::from_utf8(&bytes).map_err(|_| ArchiveError::BadEncryptionKey {
            origin: origin.clone(),
            reason: format!("{} bytes that are neither a raw key nor text", bytes.len()),
        })?;
        Self::parse_text(text, &origin)
    }

    /// Parses 64 hex characters or base64 (standard or URL-safe, padded or not)
    /// of 32 bytes; surrounding whitespace is ignored.
    pub fn from_text(s: &str) -> Result<Self, ArchiveError> {
        Self::parse_text(s, "text")
    }

    fn parse_text(s: &str, origin: &str) -> Result<Self, ArchiveError> {
        let s = s.trim();
        let bad = |reason: String| ArchiveError::BadEncryptionKey {
            origin: origin.to_string(),
            reason,
        };
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut raw = [0u8; 32];
            hex::decode_to_slice(s, &mut raw).map_err(|e| bad(e.to_string()))?;
            return Ok(EncryptionKey(raw));
        }
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(decoded) = engine.decode(s) {
                return <[u8; 32]>::try_from(decoded.as_slice())
                    .map(EncryptionKey)
                    .map_err(|_| {
                        bad(format!("base64 decodes to {} bytes, not 32", decoded.len()))
                    });
            }
        }
        Err(bad(format!(
            "{} characters that are neither 64 hex digits nor base64",
            s.len()
        )))
    }

    /// A public fingerprint of the key, stored in object headers so a wrong key
    /// is reported as such instead of as corruption.
    pub fn id(&self) -> [u8; 8] {
        let derived = blake3::derive_key(KEY_ID_CONTEXT, &self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&derived[..8]);
        id
    }

    /// The XChaCha20-Poly1305 key.
    pub(crate) fn cipher_key(&self) -> [u8; 32] {
        blake3::derive_key(CIPHER_KEY_CONTEXT, &self.0)
    }

    /// The key of the keyed BLAKE3 payload checksum of encrypted objects.
    pub(crate) fn checksum_key(&self) -> [u8; 32] {
        blake3::derive_key(CHECKSUM_KEY_CONTEXT, &self.0)
    }
}

impl fmt::Debug for EncryptionKey {
    // Never print key material, only its public id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey(id {})", hex::encode(self.id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_forms_agree() {
        let raw: [u8; 32] = std::array::from_fn(|i| i as u8);
        let hex_key = EncryptionKey::from_text(&hex::encode(raw)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let b64_key = EncryptionKey::from_text(&format!("  {b64}\n")).unwrap();
        assert_eq!(hex_key.0, raw);
        assert_eq!(b64_key.0, raw);
        assert_eq!(hex_key.id(), EncryptionKey::from_bytes(raw).id());
    }

    #[test]
    fn rejects_short_keys_and_garbage() {
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert!(matches!(
            EncryptionKey::from_text(&short),
            Err(ArchiveError::BadEncryptionKey { .. })
        ));
        assert!(EncryptionKey::from_text("not a key!").is_err());
        assert!(EncryptionKey::from_text(&"a".repeat(63)).is_err());
    }

    #[test]
    fn subkeys_differ_from_each_other_and_the_key() {
        let key = EncryptionKey::from_bytes([9u8; 32]);
        assert_ne!(key.cipher_key(), key.checksum_key());
        assert_ne!(key.cipher_key(), key.0);
        assert!(!format!("{key:?}").contains("0909"));
    }
}

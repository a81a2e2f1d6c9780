//! Keys for st2pack's build caches: SHA-256 over length-prefixed fields, so that no two
//! different sequences of fields hash the same byte stream.

use sha2::{Digest as _, Sha256};

/// Accumulates the fields of a cache key.
pub(crate) struct KeyHasher(Sha256);

impl KeyHasher {
    /// A key for `purpose` (which keeps keys of different caches apart), starting with the
    /// version of st2pack, since any release may change what it builds.
    pub fn new(purpose: &str) -> KeyHasher {
        let mut key = KeyHasher(Sha256::new());
        key.bytes(purpose.as_bytes());
        key.bytes(env!("CARGO_PKG_VERSION").as_bytes());
        key
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.0.update(bytes);
    }

    pub fn u64(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }

    pub fn i128(&mut self, n: i128) {
        self.0.update(n.to_le_bytes());
    }

    /// One byte, such as an entry's type.
    pub fn tag(&mut self, tag: u8) {
        self.0.update([tag]);
    }

    /// The key: 64 lowercase hex digits.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[&[u8]]) -> String {
        let mut key = KeyHasher::new("test");
        for field in fields {
            key.bytes(field);
        }
        key.finish()
    }

    #[test]
    fn field_boundaries_and_purpose_change_the_key() {
        assert_eq!(key(&[b"ab", b"c"]), key(&[b"ab", b"c"]));
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_ne!(key(&[b"abc"]), key(&[b"abc", b""]));
        let mut other = KeyHasher::new("other");
        other.bytes(b"abc");
        assert_ne!(other.finish(), key(&[b"abc"]));
        assert_eq!(key(&[]).len(), 64);
    }
}

//! API keys as SHA-256 digests: what the gateway holds instead of keys,
//! and the lookup from a presented key to its consumer.
//!
//! A presented key is hashed, the digest's first 8 bytes pick a bucket,
//! and the full 32 bytes are compared in constant time against every entry
//! of that bucket (no early exit). What timing can reveal is at most
//! whether some stored digest shares a 64-bit prefix with the presented
//! key's digest, which tells an attacker nothing without a SHA-256
//! preimage. Plaintext keys are hashed while the config is read and never
//! kept; `Debug` prints no digest bytes.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use ring::digest::{Context, SHA256};
use subtle::ConstantTimeEq;

use super::ConsumerId;

/// The SHA-256 digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

impl KeyDigest {
    /// The digest of `key`.
    pub fn of(key: &[u8]) -> KeyDigest {
        let mut h = KeyHasher::new();
        h.update(key);
        h.finish()
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<KeyDigest> {
        let b = hex.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(KeyDigest(out))
    }

    /// Constant-time equality.
    #[inline]
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    fn bucket(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

/// A key hashed piece by piece (a percent-encoded query value is decoded
/// straight into it, with no buffer).
pub struct KeyHasher(Context);

impl KeyHasher {
    /// An empty hash.
    pub fn new() -> KeyHasher {
        KeyHasher(Context::new(&SHA256))
    }

    /// Adds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(self) -> KeyDigest {
        let d = self.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        KeyDigest(out)
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

/// The map from key digests to consumers.
#[derive(Default)]
pub struct KeyStore {
    /// By the digest's first 8 bytes (already uniform: no rehash).
    buckets: HashMap<u64, Vec<(KeyDigest, ConsumerId)>, BuildHasherDefault<PrefixHash>>,
    len: usize,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyStore({} keys)", self.len)
    }
}

impl KeyStore {
    /// Adds a key of `consumer` (the config has refused duplicates).
    pub fn insert(&mut self, digest: KeyDigest, consumer: ConsumerId) {
        self.buckets
            .entry(digest.bucket())
            .or_default()
            .push((digest, consumer));
        self.len += 1;
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The consumer whose key has this digest.
    pub fn find(&self, digest: &KeyDigest) -> Option<ConsumerId> {
        let bucket = self.buckets.get(&digest.bucket())?;
        let mut found = None;
        // Every entry is compared, in constant time, whatever matched.
        for (d, id) in bucket {
            if d.ct_eq(digest) {
                found = Some(*id);
            }
        }
        found
    }
}

/// A `Hasher` for keys that are already uniform (digest prefixes).
#[derive(Default)]
pub struct PrefixHash(u64);

impl Hasher for PrefixHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digest_matches_the_sha256_test_vector_and_hex_round_trips() {
        // FIPS 180-2 example: SHA-256("abc").
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(KeyDigest::of(b"abc"), KeyDigest::from_hex(hex).unwrap());
        let upper = hex.to_ascii_uppercase();
        assert_eq!(KeyDigest::from_hex(&upper), KeyDigest::from_hex(hex));
        assert!(KeyDigest::from_hex(&hex[1..]).is_none());
        assert!(KeyDigest::from_hex(&format!("{}g", &hex[1..])).is_none());
        let mut pieces = KeyHasher::new();
        pieces.update(b"a");
        pieces.update(b"bc");
        assert_eq!(pieces.finish(), KeyDigest::of(b"abc"));
        assert_eq!(format!("{:?}", KeyDigest::of(b"abc")), "KeyDigest(..)");
    }

    fn store(keys: &[&[u8]]) -> KeyStore {
        let mut s = KeyStore::default();
        for (i, k) in keys.iter().enumerate() {
            s.insert(KeyDigest::of(k), ConsumerId(i as u32));
        }
        s
    }

    #[test]
    fn finds_each_configured_key_and_nothing_else() {
        let s = store(&[b"k-alice-1", b"k-bob-1", b"k-alice-2"]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.find(&KeyDigest::of(b"k-bob-1")), Some(ConsumerId(1)));
        assert_eq!(s.find(&KeyDigest::of(b"k-alice-2")), Some(ConsumerId(2)));
        assert_eq!(s.find(&KeyDigest::of(b"k-bob-")), None);
        assert_eq!(s.find(&KeyDigest::of(b"")), None);
        // The digest of a key is not a key.
        let hex: String = KeyDigest::of(b"k-bob-1")
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(s.find(&KeyDigest::of(hex.as_bytes())), None);
    }

    #[test]
    fn colliding_prefixes_share_a_bucket_and_still_resolve() {
        let mut s = KeyStore::default();
        let a = KeyDigest([1; 32]);
        let mut b = a;
        b.0[31] = 2;
        s.insert(a, ConsumerId(7));
        s.insert(b, ConsumerId(8));
        assert_eq!(s.find(&a), Some(ConsumerId(7)));
        assert_eq!(s.find(&b), Some(ConsumerId(8)));
        let mut c = a;
        c.0[20] = 9;
        assert_eq!(s.find(&c), None);
    }

    proptest! {
        /// A random byte string is never accepted as a key unless it is
        /// one of the configured keys.
        #[test]
        fn random_bytes_are_never_a_key_unless_configured(
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..48), 1..16),
            probe in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            let s = store(&refs);
            let want = keys.iter().rposition(|k| *k == probe).map(|i| ConsumerId(i as u32));
            let got = s.find(&KeyDigest::of(&probe));
            // Duplicate random keys: any of their consumers is right.
            match want {
                None => prop_assert_eq!(got, None),
                Some(_) => {
                    let id = got.expect("a configured key is found");
                    prop_assert_eq!(&keys[id.0 as usize], &probe);
                }
            }
            // Each configured key finds a consumer holding exactly it.
            for k in &keys {
                let id = s.find(&KeyDigest::of(k)).expect("configured");
                prop_assert_eq!(&keys[id.0 as usize], k);
            }
        }
    }
}

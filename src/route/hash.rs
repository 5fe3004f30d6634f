//! The hasher of the route table's maps: a fixed-seed, word-at-a-time folded
//! multiply (the foldhash/wyhash construction), several times cheaper than
//! std's SipHash-1-3 on the short keys a lookup probes (host names, path
//! prefixes), of which one `find` hashes several.
//!
//! Why a fixed seed is safe here: the maps are built from the config and never
//! grow, so request bytes are only ever *looked up*. A crafted key can at worst
//! land on the longest probe sequence the config's own keys formed, a bound
//! set at build time; there is no insertion an attacker could use to degrade
//! the table (the HashDoS that per-map random seeds defend against).

use std::hash::{BuildHasher, Hasher};

/// Multiplier (the 64-bit golden ratio, odd) and start value.
const K: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED: u64 = 0x243f_6a88_85a3_08d3;

/// `BuildHasher` for [`FoldHasher`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FastState;

impl BuildHasher for FastState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(SEED)
    }
}

/// Mixes each 8-byte word with a 64×64→128 multiply folded to 64 bits, so
/// every input bit reaches both the low bits (hashbrown's bucket index) and
/// the top 7 (its control byte); a plain Fx multiply would leave the low bits
/// blind to the high bytes of the last word (`/svc001` vs `/svc002`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = fold_mul(self.0 ^ word, K);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length in the top byte keeps "a" and "a\0" apart.
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: &[u8]) -> u64 {
        FastState.hash_one(b)
    }

    #[test]
    fn distinguishes_near_keys() {
        // Keys that differ only in a late byte of their last word, or by a
        // trailing NUL, or by length, must not collide in the low bits.
        let keys: [&[u8]; 6] = [b"/svc001", b"/svc002", b"/svc001\0", b"/", b"", b"/api/"];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(h(a) & 0xffff, h(b) & 0xffff, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn is_deterministic() {
        assert_eq!(h(b"api.example.test"), h(b"api.example.test"));
    }
}

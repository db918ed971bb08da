//! A fixed 64-bit hash, identical in every process, build and platform.

use std::hash::{BuildHasher, Hasher};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Hashes `bytes` with [`StableHasher`]: FNV-1a 64 followed by a 64-bit avalanche finalizer.
///
/// Stable forever: a key hashed by one process lands on the same endpoint in every other
/// process that sees the same endpoint set, which is what consistent hashing across a fleet of
/// clients needs. Not collision-resistant against an adversary (no key); do not use it for hash
/// tables fed by untrusted input.
///
/// ```
/// assert_eq!(mesh_balance::hash::hash_bytes(b"user-42"), mesh_balance::hash::hash_bytes(b"user-42"));
/// ```
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = StableHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

/// A [`Hasher`] with a fixed algorithm and no random key.
///
/// The algorithm is FNV-1a 64 (Fowler–Noll–Vo; offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`) over the written bytes, and `finish` applies the `fmix64` finalizer of
/// MurmurHash3 (two xor-shift-multiply rounds) so that inputs differing in one byte spread over
/// the whole 64-bit range — FNV alone clusters similar short keys, which would bunch ring points.
///
/// Unlike `std`'s `DefaultHasher`, whose algorithm may change between Rust releases, and
/// `RandomState`, which is keyed per process, the output never changes. Feed it bytes (through
/// [`hash_bytes`] or `write`): `Hash` implementations of integers write native-endian bytes, which
/// differ between platforms.
#[derive(Clone, Copy, Debug)]
pub struct StableHasher {
    state: u64,
}

impl Default for StableHasher {
    fn default() -> Self {
        Self { state: FNV_OFFSET }
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state ^= u64::from(byte);
            self.state = self.state.wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        fmix64(self.state)
    }
}

/// Builds [`StableHasher`]s; every instance builds the same one.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildStableHasher;

impl BuildHasher for BuildStableHasher {
    type Hasher = StableHasher;

    fn build_hasher(&self) -> StableHasher {
        StableHasher::default()
    }
}

/// MurmurHash3's 64-bit finalizer (Austin Appleby, public domain): full avalanche.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values() {
        // Pinned outputs: changing them moves every sticky key in every deployment.
        let fnv_empty = FNV_OFFSET;
        assert_eq!(hash_bytes(b""), fmix64(fnv_empty));
        // FNV-1a 64 of "a" is the published test vector 0xaf63dc4c8601ec8c.
        let mut h = StableHasher::default();
        h.write(b"a");
        assert_eq!(h.state, 0xaf63_dc4c_8601_ec8c);
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
        assert_eq!(
            BuildStableHasher.hash_one("x"),
            BuildStableHasher.hash_one("x")
        );
    }
}

//! Hash maps keyed by values that are hashes already (step keys, payload tokens, signatures,
//! route positions):
//! a multiply per word instead of SipHash, which was most of the cost of the lookups in the
//! search. Seeded per process and finished by a full 64-bit mix, so that a capture crafted to
//! make keys collide cannot know which buckets they land in.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

pub type KeyMap<K, V> = HashMap<K, V, KeyHash>;
pub type KeySet<K> = HashSet<K, KeyHash>;

/// Builds [`KeyHasher`]s from the process's seed.
#[derive(Clone, Copy, Debug)]
pub struct KeyHash(u64);

impl Default for KeyHash {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        KeyHash(*SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64)))
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser: every output bit depends on every input bit.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_only_in_high_bits_spread_over_low_bits() {
        let build = KeyHash::default();
        let low_bits: KeySet<u64> = (0..1024u64)
            .map(|k| build.hash_one(k << 40) & 0xfff)
            .collect();
        // 1024 keys into 4096 buckets: a good spread leaves few collisions.
        assert!(low_bits.len() > 850, "{}", low_bits.len());
    }
}

//! A quick hasher for the prober's in-process maps: the frames' routes and the leases'
//! boxes (looked up for every frame read), and the caches of paths, MACs and echo
//! results (looked up on every turn). Their keys are ours (ports, lease ids, the
//! addresses we probe), so SipHash's defence against chosen keys buys nothing there; a
//! frame from the wire only looks a key up, it never adds one. SipHash over them was a
//! few percent of the agent's CPU.
//!
//! One multiply and rotate per word, as rustc's own hasher does.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A [`HashMap`] with [`QuickHasher`].
pub type QuickMap<K, V> = HashMap<K, V, BuildHasherDefault<QuickHasher>>;

/// The multiplier: odd, with its bits spread, so each word reaches the high bits (the
/// map's tag) and, through the rotation, the low ones (its bucket).
const SPREAD: u64 = 0x517c_c1b7_2722_0a95;

#[derive(Debug, Default, Clone, Copy)]
pub struct QuickHasher(u64);

impl QuickHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for QuickHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The high half folded into the low: the map takes its bucket from the low bits,
        // which a multiply fills only from the words' own low bits.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};
    use std::net::{IpAddr, Ipv4Addr};

    fn hash_of<T: Hash>(t: &T) -> u64 {
        BuildHasherDefault::<QuickHasher>::default().hash_one(t)
    }

    /// The bucket (low bits) and the tag (top 7 bits) a map of 1,024 buckets takes.
    fn spread<T: Hash>(keys: impl Iterator<Item = T>) -> (usize, usize) {
        let hashes: Vec<u64> = keys.map(|k| hash_of(&k)).collect();
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        (buckets.len(), tags.len())
    }

    #[test]
    fn the_prober_s_keys_spread_over_buckets_and_tags() {
        // Consecutive source ports, lease ids, and the addresses of a /24 and of a /16's
        // hosts .1 (the high bytes differ only): few shared buckets, most tags used.
        let (b, t) = spread(40_000u16..41_000);
        assert!(b > 600 && t > 100, "ports: {b} buckets, {t} tags");
        let (b, t) = spread(0u64..1_000);
        assert!(b > 600 && t > 100, "ids: {b} buckets, {t} tags");
        let (b, t) = spread((0..=255u8).map(|h| IpAddr::V4(Ipv4Addr::new(192, 0, 2, h))));
        assert!(b > 150 && t > 80, "a /24: {b} buckets, {t} tags");
        let (b, t) = spread((0..=255u8).map(|h| IpAddr::V4(Ipv4Addr::new(10, h, 0, 1))));
        assert!(b > 150 && t > 80, "a /16: {b} buckets, {t} tags");
    }

    #[test]
    fn tails_of_different_lengths_hash_apart() {
        let raw = |bytes: &[u8]| {
            let mut h = QuickHasher::default();
            h.write(bytes);
            h.finish()
        };
        assert_ne!(raw(&[1]), raw(&[1, 0]));
        assert_ne!(raw(b"12345678a"), raw(b"12345678a\0"));
        let mut m: QuickMap<String, u32> = QuickMap::default();
        for i in 0..100 {
            m.insert(format!("pair-{i}"), i);
        }
        assert!((0..100).all(|i| m[&format!("pair-{i}")] == i));
    }
}

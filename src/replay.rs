//! The replay cache: a token is accepted at most once while it is valid.
//!
//! The key identifies (bare JID, OTP, nonce): it is the first 16 bytes of the token's HMAC, which
//! the server has verified (or, for SASL-HMAC, recomputed) before the cache is consulted, so only
//! authentic tokens ever enter it and nobody without the secret can aim at a key. An entry leaves
//! once the last step in which its OTP is accepted has passed. A live entry is never evicted: when
//! the cache is at its cap, new logins fail closed.
//!
//! Entries are kept in one set per expiry step (at most 2 × skew + 2 sets are alive), so a whole
//! step expires at once, by dropping its set.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::Reject;

/// A replay-cache key: 16 bytes of a verified MAC.
pub type Key = [u8; 16];

/// Keys are HMAC-SHA256 output that the server verified (or computed) itself: uniformly
/// distributed, and unpredictable without the token secret. So their first eight bytes already are
/// a good hash and nobody can aim collisions at the table; SipHash would only add cost.
#[derive(Default)]
pub struct MacPrefixHasher(u64);

impl Hasher for MacPrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its length (write_usize) and then its 16 bytes (write)
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }
    fn write_usize(&mut self, _len: usize) {}
}

type KeySet = HashSet<Key, BuildHasherDefault<MacPrefixHasher>>;

/// Bounded set of recently accepted tokens, expiring by OTP step.
#[derive(Debug)]
pub struct ReplayCache {
    cap: usize,
    len: usize,
    /// (expiry step, keys that may be forgotten once the current step reaches it), by expiry
    buckets: VecDeque<(u64, KeySet)>,
}

impl ReplayCache {
    /// A cache that holds at most `cap` live entries (`cap` ≥ 1).
    pub fn new(cap: usize) -> Self {
        ReplayCache { cap: cap.max(1), len: 0, buckets: VecDeque::new() }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Drops every entry whose expiry step is at or before `current_step`.
    pub fn purge(&mut self, current_step: u64) {
        while let Some((expiry, set)) = self.buckets.front() {
            if *expiry > current_step {
                break;
            }
            self.len -= set.len();
            self.buckets.pop_front();
        }
    }

    /// Records `key` as used until (exclusive) `expiry_step`, after purging what has expired at
    /// `current_step`. Fails with `Replayed` if the key is live, `CacheFull` if the cap is reached.
    pub fn check_and_insert(&mut self, key: Key, current_step: u64, expiry_step: u64) -> Result<(), Reject> {
        self.purge(current_step);
        if self.buckets.iter().any(|(_, set)| set.contains(&key)) {
            return Err(Reject::Replayed);
        }
        if self.len >= self.cap {
            return Err(Reject::CacheFull);
        }
        let at = self.buckets.partition_point(|(e, _)| *e < expiry_step);
        if self.buckets.get(at).is_none_or(|(e, _)| *e != expiry_step) {
            self.buckets.insert(at, (expiry_step, KeySet::default()));
        }
        self.buckets[at].1.insert(key);
        self.len += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> Key {
        [n; 16]
    }

    #[test]
    fn second_use_is_a_replay() {
        let mut c = ReplayCache::new(10);
        assert_eq!(c.check_and_insert(k(1), 100, 102), Ok(()));
        assert_eq!(c.check_and_insert(k(1), 100, 102), Err(Reject::Replayed));
        assert_eq!(c.check_and_insert(k(1), 101, 102), Err(Reject::Replayed));
        assert_eq!(c.check_and_insert(k(2), 101, 103), Ok(()));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn entries_leave_when_their_window_closes() {
        let mut c = ReplayCache::new(10);
        c.check_and_insert(k(1), 100, 102).unwrap();
        c.check_and_insert(k(2), 100, 103).unwrap();
        c.purge(101);
        assert_eq!(c.len(), 2);
        c.purge(102);
        assert_eq!(c.len(), 1);
        c.purge(103);
        assert!(c.is_empty());
    }

    #[test]
    fn full_cache_fails_closed_and_never_evicts_live_entries() {
        let mut c = ReplayCache::new(2);
        c.check_and_insert(k(1), 100, 102).unwrap();
        c.check_and_insert(k(2), 100, 102).unwrap();
        assert_eq!(c.check_and_insert(k(3), 101, 103), Err(Reject::CacheFull));
        // the live ones are still refused as replays, not forgotten
        assert_eq!(c.check_and_insert(k(1), 101, 103), Err(Reject::Replayed));
        // once their window closes, room is made again
        assert_eq!(c.check_and_insert(k(3), 102, 104), Ok(()));
        assert_eq!(c.len(), 1);
    }
}

//! The replay cache: a token is accepted at most once while it is valid.
//!
//! The key identifies (bare JID, OTP, nonce): it is the first 16 bytes of the token's HMAC, which
//! the server has verified (or, for SASL-HMAC, recomputed) before the cache is consulted, so only
//! authentic tokens ever enter it and nobody without the secret can aim at a key. A live entry is
//! never evicted: when the cache is at its cap, new logins fail closed; when one account holds its
//! quota of live entries, that account's new logins are refused and nobody else's.
//!
//! Time only moves forward here: the cache keeps the highest step it has seen (the high-water
//! mark) and an entry leaves once the high-water mark, not the clock of the moment, has passed its
//! expiry by [`CLOCK_BACK_TOLERANCE`] steps. A token whose window closed that long before the
//! high-water mark is refused as expired, so a clock that jumps forward (purging) and then back
//! never makes a used token valid again.
//!
//! Entries are kept in one set per expiry step (at most 2 × skew + 2 + tolerance sets are alive),
//! so a whole step expires at once, by dropping its set.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use crate::error::Reject;

/// A replay-cache key: 16 bytes of a verified MAC.
pub type Key = [u8; 16];

/// Steps the clock may go back (after the high-water mark was set) without any effect: entries
/// stay that much longer than their window, and a token is only refused for the high-water mark
/// when its window closed more than this many steps before it. Larger steps back refuse token
/// logins (`expired`) until the clock catches up again.
pub const CLOCK_BACK_TOLERANCE: u64 = 2;

pub use crate::options::DEFAULT_REPLAY_USER_QUOTA as DEFAULT_USER_QUOTA;

/// The account tag of entries restored after a restart (no account's name hashes to it except by a
/// 2^-64 chance, and then that account's quota merely counts them).
const RESTORED: u64 = 0;

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

/// Where used tokens are remembered while they are valid: all the verifier asks of a store. The
/// in-memory [`ReplayCache`] is the one shipped; another (shared by several processes, say)
/// implements this and is handed to [`crate::Verifier::with_replay_store`], without a change to
/// the verifier. Only authentic tokens are offered to it.
pub trait ReplayStore: Send {
    /// Records `key` (of a verified token), used by `account`, as used until (exclusive)
    /// `expiry_step`, at `current_step`. Refuses `Replayed` when the key is live, `QuotaExceeded`
    /// when `account` holds its quota (nobody else is refused for it), `CacheFull` when the store
    /// is full (failing closed), `Expired` when the clock went back past what the store can tell.
    fn check_and_insert(&mut self, key: Key, account: &str, current_step: u64, expiry_step: u64) -> Result<(), Reject>;
    /// The high-water step and the live entries (key, expiry step), to keep across a restart.
    fn export(&self) -> (u64, Vec<(Key, u64)>);
    /// Takes back what `export` gave; returns how many entries were still live.
    fn import(&mut self, high_water: u64, entries: &[(Key, u64)]) -> usize;
    /// The highest step seen so far (what `export` gives first).
    fn high_water(&self) -> u64 {
        self.export().0
    }
    /// (live entries, cap, per-account quota).
    fn stats(&self) -> (usize, usize, usize);
}

impl ReplayStore for ReplayCache {
    fn check_and_insert(&mut self, key: Key, account: &str, current_step: u64, expiry_step: u64) -> Result<(), Reject> {
        ReplayCache::check_and_insert(self, key, account, current_step, expiry_step)
    }
    fn export(&self) -> (u64, Vec<(Key, u64)>) {
        ReplayCache::export(self)
    }
    fn import(&mut self, high_water: u64, entries: &[(Key, u64)]) -> usize {
        ReplayCache::import(self, high_water, entries)
    }
    fn stats(&self) -> (usize, usize, usize) {
        (self.len(), self.cap(), self.quota())
    }
    fn high_water(&self) -> u64 {
        ReplayCache::high_water(self)
    }
}

/// Bounded set of recently accepted tokens, expiring by OTP step, with a quota per account.
#[derive(Debug)]
pub struct ReplayCache {
    cap: usize,
    quota: usize,
    len: usize,
    high_water: u64,
    /// (expiry step, keys, and for each key the tag of the account that used it), by expiry
    buckets: VecDeque<Bucket>,
    /// live entries per account tag
    per_account: HashMap<u64, usize>,
    /// keyed hash of account names: tags cannot be aimed at each other from outside
    tagger: RandomState,
}

#[derive(Debug)]
struct Bucket {
    expiry: u64,
    keys: KeySet,
    owners: Vec<u64>,
}

impl ReplayCache {
    /// A cache that holds at most `cap` live entries (`cap` ≥ 1), at most `quota` of them for one
    /// account (`quota` ≥ 1).
    pub fn new(cap: usize, quota: usize) -> Self {
        ReplayCache {
            cap: cap.max(1),
            quota: quota.max(1),
            len: 0,
            high_water: 0,
            buckets: VecDeque::new(),
            per_account: HashMap::new(),
            tagger: RandomState::new(),
        }
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

    /// The per-account quota.
    pub fn quota(&self) -> usize {
        self.quota
    }

    /// The highest step seen so far.
    pub fn high_water(&self) -> u64 {
        self.high_water
    }

    /// Live entries of `account`.
    pub fn account_len(&self, account: &str) -> usize {
        self.per_account.get(&self.tag(account)).copied().unwrap_or(0)
    }

    /// The keyed tag of an account's name (never [`RESTORED`]).
    fn tag(&self, account: &str) -> u64 {
        self.tagger.hash_one(account).max(1)
    }

    /// True when an entry expiring at `expiry` is past keeping: the high-water mark has gone the
    /// tolerance beyond it. Such an entry is dropped, and such a token refused as expired.
    fn gone(&self, expiry: u64) -> bool {
        expiry.saturating_add(CLOCK_BACK_TOLERANCE) <= self.high_water
    }

    /// Stores a key that is not live, for `owner`, until `expiry`.
    fn record(&mut self, key: Key, owner: u64, expiry: u64) {
        let at = self.buckets.partition_point(|b| b.expiry < expiry);
        if self.buckets.get(at).is_none_or(|b| b.expiry != expiry) {
            self.buckets.insert(at, Bucket { expiry, keys: KeySet::default(), owners: Vec::new() });
        }
        let bucket = &mut self.buckets[at];
        bucket.keys.insert(key);
        bucket.owners.push(owner);
        *self.per_account.entry(owner).or_insert(0) += 1;
        self.len += 1;
    }

    fn is_live(&self, key: &Key) -> bool {
        self.buckets.iter().any(|b| b.keys.contains(key))
    }

    /// Raises the high-water mark to `current_step` (never lowers it) and drops every entry whose
    /// expiry lies at least [`CLOCK_BACK_TOLERANCE`] steps behind it.
    pub fn advance(&mut self, current_step: u64) {
        self.high_water = self.high_water.max(current_step);
        while let Some(front) = self.buckets.front() {
            if !self.gone(front.expiry) {
                break;
            }
            let Some(bucket) = self.buckets.pop_front() else { break };
            self.len -= bucket.keys.len();
            for owner in bucket.owners {
                if let Some(n) = self.per_account.get_mut(&owner) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_account.remove(&owner);
                    }
                }
            }
        }
    }

    /// The live entries, (key, expiry step), and the high-water mark: what a restart needs to keep
    /// refusing the tokens used before it.
    pub fn export(&self) -> (u64, Vec<(Key, u64)>) {
        let entries = self.buckets.iter().flat_map(|b| b.keys.iter().map(move |k| (*k, b.expiry))).collect();
        (self.high_water, entries)
    }

    /// Takes back what [`ReplayCache::export`] gave (after a restart): raises the high-water mark to
    /// `high_water` and records every entry that has not expired, under an account of its own (the
    /// users are not known; their quotas start afresh). The cap does not apply: a used token
    /// dropped here could be used again. Returns how many were taken.
    pub fn import(&mut self, high_water: u64, entries: &[(Key, u64)]) -> usize {
        self.advance(high_water);
        let mut taken = 0;
        for &(key, expiry) in entries {
            if !self.gone(expiry) && !self.is_live(&key) {
                self.record(key, RESTORED, expiry);
                taken += 1;
            }
        }
        taken
    }

    /// Records `key`, used by `account`, as used until (exclusive) `expiry_step`, after advancing
    /// to `current_step`. Fails with `Expired` if an entry expiring then would already have been
    /// dropped (the clock went back further than the tolerance), `Replayed` if the key is live,
    /// `QuotaExceeded` if `account` holds its quota, `CacheFull` if the cap is reached.
    pub fn check_and_insert(&mut self, key: Key, account: &str, current_step: u64, expiry_step: u64) -> Result<(), Reject> {
        self.advance(current_step);
        if self.gone(expiry_step) {
            return Err(Reject::Expired);
        }
        if self.is_live(&key) {
            return Err(Reject::Replayed);
        }
        let owner = self.tag(account);
        if self.per_account.get(&owner).is_some_and(|&n| n >= self.quota) {
            return Err(Reject::QuotaExceeded);
        }
        if self.len >= self.cap {
            return Err(Reject::CacheFull);
        }
        self.record(key, owner, expiry_step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> Key {
        [n; 16]
    }

    const T: u64 = CLOCK_BACK_TOLERANCE;

    #[test]
    fn second_use_is_a_replay() {
        let mut c = ReplayCache::new(10, 10);
        assert_eq!(c.check_and_insert(k(1), "a", 100, 102), Ok(()));
        assert_eq!(c.check_and_insert(k(1), "a", 100, 102), Err(Reject::Replayed));
        assert_eq!(c.check_and_insert(k(1), "a", 101, 102), Err(Reject::Replayed));
        assert_eq!(c.check_and_insert(k(2), "a", 101, 103), Ok(()));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn entries_leave_once_the_high_water_mark_passes_their_window() {
        let mut c = ReplayCache::new(10, 10);
        c.check_and_insert(k(1), "a", 100, 102).unwrap();
        c.check_and_insert(k(2), "b", 100, 103).unwrap();
        c.advance(101 + T);
        assert_eq!(c.len(), 2);
        c.advance(102 + T);
        assert_eq!(c.len(), 1);
        assert_eq!((c.account_len("a"), c.account_len("b")), (0, 1));
        c.advance(103 + T);
        assert!(c.is_empty());
        assert_eq!(c.account_len("b"), 0);
    }

    #[test]
    fn full_cache_fails_closed_and_never_evicts_live_entries() {
        let mut c = ReplayCache::new(2, 10);
        c.check_and_insert(k(1), "a", 100, 102).unwrap();
        c.check_and_insert(k(2), "b", 100, 102).unwrap();
        assert_eq!(c.check_and_insert(k(3), "c", 101, 103), Err(Reject::CacheFull));
        // the live ones are still refused as replays, not forgotten
        assert_eq!(c.check_and_insert(k(1), "a", 101, 103), Err(Reject::Replayed));
        // once their window (and the tolerance) has passed, room is made again
        assert_eq!(c.check_and_insert(k(3), "c", 102 + T, 104 + T), Ok(()));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn one_account_at_its_quota_is_refused_alone() {
        let mut c = ReplayCache::new(1000, 3);
        for n in 0..3 {
            c.check_and_insert(k(n), "busy", 100, 102).unwrap();
        }
        assert_eq!(c.check_and_insert(k(10), "busy", 100, 102), Err(Reject::QuotaExceeded));
        assert_eq!(c.check_and_insert(k(11), "other", 100, 102), Ok(()));
        // a replay is still called a replay at the quota
        assert_eq!(c.check_and_insert(k(0), "busy", 100, 102), Err(Reject::Replayed));
        // the quota frees up as the account's entries expire
        c.advance(102 + T);
        assert_eq!(c.check_and_insert(k(12), "busy", 102 + T, 104 + T), Ok(()));
    }

    #[test]
    fn export_and_import_keep_used_tokens_refused_across_a_restart() {
        let mut c = ReplayCache::new(10, 10);
        c.check_and_insert(k(1), "a", 100, 102).unwrap();
        c.check_and_insert(k(2), "b", 101, 103).unwrap();
        let (hw, entries) = c.export();
        assert_eq!((hw, entries.len()), (101, 2));
        let mut fresh = ReplayCache::new(10, 10);
        assert_eq!(fresh.import(hw, &entries), 2);
        assert_eq!(fresh.check_and_insert(k(1), "a", 101, 102), Err(Reject::Replayed));
        assert_eq!(fresh.check_and_insert(k(2), "b", 101, 103), Err(Reject::Replayed));
        assert_eq!(fresh.high_water(), 101);
        assert_eq!(fresh.account_len("a"), 0, "restored entries count against no user");
        // expired entries are not taken back; entries over the cap are (they are used tokens)
        let mut later = ReplayCache::new(1, 10);
        assert_eq!(later.import(102 + T, &entries), 1);
        let mut small = ReplayCache::new(1, 10);
        assert_eq!(small.import(hw, &entries), 2);
        assert_eq!(small.check_and_insert(k(2), "b", 101, 103), Err(Reject::Replayed));
    }

    /// A clock that jumps forward (a purge) and back must not make used tokens valid again.
    #[test]
    fn a_clock_that_jumps_forward_and_back_cannot_bring_a_used_token_back() {
        let mut c = ReplayCache::new(10, 10);
        c.check_and_insert(k(1), "a", 100, 102).unwrap();
        // forward an hour (120 steps): the entry goes...
        c.advance(220);
        assert!(c.is_empty());
        // ... and back: the same token (window 99..=101) is refused, not accepted again
        assert_eq!(c.check_and_insert(k(1), "a", 100, 102), Err(Reject::Expired));
        // so is any token from before the high-water mark; within the tolerance nothing changes
        let mut c = ReplayCache::new(10, 10);
        c.check_and_insert(k(1), "a", 100, 102).unwrap();
        c.advance(100 + T);
        assert_eq!(c.check_and_insert(k(1), "a", 100, 102), Err(Reject::Replayed));
        assert_eq!(c.check_and_insert(k(2), "a", 100, 102), Ok(()));
        assert_eq!(c.high_water(), 100 + T);
    }
}

//! Accepting an authentic token once: the replay store, the clock policy around it (the OTP window
//! at the moment of acceptance, the crash quarantine, the seal of a clean stop, the running
//! marker) and the store's import and export. It turns an [`Authentic`] into an [`Accepted`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::check::{Authentic, TokenChecker};
use crate::error::{ConfigError, Reject};
use crate::replay::{Key, ReplayCache, ReplayStore};

/// How many used tokens are remembered: the shipped [`ReplayCache`]'s size. Another store
/// ([`ReplayGuard::with_store`]) has its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaySettings {
    /// Replay cache cap (live entries, `token_replay_cache_size`).
    pub cache_size: usize,
    /// Live replay-cache entries one account may hold (`token_replay_user_quota`).
    pub user_quota: usize,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            cache_size: crate::options::DEFAULT_REPLAY_CACHE_SIZE,
            user_quota: crate::options::DEFAULT_REPLAY_USER_QUOTA,
        }
    }
}

/// A token that passed every check: signature, OTP window, replay. Only the guard makes one (the
/// fields are private), so holding an `Accepted` means a token was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    step: u64,
    jid_index: usize,
}

impl Accepted {
    /// The OTP step the token belongs to.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Which of the candidate JIDs the signature covers.
    pub fn jid_index(&self) -> usize {
        self.jid_index
    }
}

/// The guard's state as a stop saves it ([`ReplayGuard::snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's high-water step.
    pub high_water: u64,
    /// Live entries: (key, expiry step).
    pub entries: Vec<(Key, u64)>,
    /// The last OTP step of the running quarantine (0: none).
    pub quarantine: u64,
}

/// Remembers accepted tokens while they are valid, and refuses a second use.
pub struct ReplayGuard {
    store: Mutex<Box<dyn ReplayStore>>,
    step_seconds: u64,
    skew: u64,
    /// Tokens of OTP steps up to this one are refused as [`Reject::UncleanRestart`] (0: none): set
    /// after an unclean stop
    quarantine: AtomicU64,
    /// Set once the replay state has been saved for a stop: a token accepted after it would be
    /// missing from the saved state, so none is (changed only under the `store` lock)
    sealed: AtomicBool,
    /// Set at a restart until storage holds the running marker: without it a crash would look
    /// like the clean stop before, and this run's tokens would be accepted again after it, so
    /// none is accepted
    unmarked: AtomicBool,
}

impl ReplayGuard {
    /// A guard over the shipped in-memory [`ReplayCache`], for the tokens of `checker` (its OTP
    /// step and skew fix how long an entry lives).
    pub fn new(settings: ReplaySettings, checker: &TokenChecker) -> Result<Self, ConfigError> {
        if settings.cache_size == 0 {
            return Err(ConfigError::CacheSize);
        }
        if settings.user_quota == 0 {
            return Err(ConfigError::UserQuota);
        }
        Ok(Self::with_store(Box::new(ReplayCache::new(settings.cache_size, settings.user_quota)), checker))
    }

    /// A guard over another store (its size and quota are its own).
    pub fn with_store(store: Box<dyn ReplayStore>, checker: &TokenChecker) -> Self {
        ReplayGuard {
            store: Mutex::new(store),
            step_seconds: checker.otp().step_seconds(),
            skew: checker.otp().skew(),
            quarantine: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            unmarked: AtomicBool::new(false),
        }
    }

    /// Accepts `token` at unix time `now` if it was not accepted before: its step must still be in
    /// the window at `now` (`Expired`), outside a quarantine and before a seal (`UncleanRestart`),
    /// and the store must take it (`Replayed`, `QuotaExceeded` for its account, `CacheFull`).
    pub fn accept(&self, token: Authentic, now: u64) -> Result<Accepted, Reject> {
        let step = token.step();
        let current = now / self.step_seconds.max(1);
        // checked and accepted at different times: the step must still be in the window now
        if step.saturating_add(self.skew) < current || step > current.saturating_add(self.skew) {
            return Err(Reject::Expired);
        }
        // after an unclean start the replay cache has forgotten these steps' tokens: any could be a replay
        if step <= self.quarantine.load(Ordering::SeqCst) || self.unmarked.load(Ordering::SeqCst) {
            return Err(Reject::UncleanRestart);
        }
        let expiry = step.saturating_add(self.skew).saturating_add(1);
        let mut store = self.store.lock().map_err(|_| Reject::Internal)?;
        if self.sealed.load(Ordering::SeqCst) {
            return Err(Reject::UncleanRestart);
        }
        store.check_and_insert(token.replay_key(), token.account(), current, expiry)?;
        Ok(Accepted { step, jid_index: token.jid_index() })
    }

    /// (live entries, cap, per-account quota) of the store.
    pub fn stats(&self) -> (usize, usize, usize) {
        match self.store.lock() {
            Ok(c) => c.stats(),
            Err(p) => p.get_ref().stats(),
        }
    }

    /// The store's high-water step (0 when its lock is poisoned).
    pub fn high_water(&self) -> u64 {
        self.store.lock().map(|c| c.high_water()).unwrap_or(0)
    }

    /// The store's high-water step and live entries (key, expiry step), to be kept across a
    /// restart (see [`ReplayCache::export`]).
    pub fn export(&self) -> Result<(u64, Vec<(Key, u64)>), Reject> {
        Ok(self.store.lock().map_err(|_| Reject::Internal)?.export())
    }

    /// What a clean stop saves, after which no token is accepted (`UncleanRestart`): one accepted
    /// between the save and the end of the process would be missing from the saved state. With
    /// `seal` false, changes nothing.
    pub fn snapshot(&self, seal: bool) -> Result<Snapshot, Reject> {
        let store = self.store.lock().map_err(|_| Reject::Internal)?;
        if seal {
            // under the lock: no token is recorded between the export and the seal
            self.sealed.store(true, Ordering::SeqCst);
        }
        let (high_water, entries) = store.export();
        Ok(Snapshot { high_water, entries, quarantine: self.quarantine.load(Ordering::SeqCst) })
    }

    /// Takes back a clean stop's entries and quarantine; returns how many entries were live.
    pub fn restore(&self, high_water: u64, entries: &[(Key, u64)], quarantine: u64) -> Result<usize, Reject> {
        let mut store = self.store.lock().map_err(|_| Reject::Internal)?;
        self.quarantine.fetch_max(quarantine, Ordering::SeqCst);
        Ok(store.import(high_water, entries))
    }

    /// Refuses tokens of OTP steps up to `quarantine` (an unclean stop), from a store that has
    /// seen `current_step`.
    pub fn quarantine(&self, quarantine: u64, current_step: u64) -> Result<(), Reject> {
        let mut store = self.store.lock().map_err(|_| Reject::Internal)?;
        self.quarantine.fetch_max(quarantine, Ordering::SeqCst);
        store.import(current_step, &[]);
        Ok(())
    }

    /// Whether storage holds the running marker: tokens are accepted only once it does.
    pub fn set_marked(&self, stored: bool) {
        self.unmarked.store(!stored, Ordering::SeqCst);
    }

    /// Whether tokens are refused because storage does not hold the running marker.
    pub fn awaiting_running_marker(&self) -> bool {
        self.unmarked.load(Ordering::SeqCst)
    }

    /// The last OTP step of the running quarantine (0: none).
    pub fn quarantined_through(&self) -> u64 {
        self.quarantine.load(Ordering::SeqCst)
    }
}

//! The verifier's policy: which secrets, which OTP window, which JIDs, the replay store, and
//! minting. Tokens come in as bytes and leave as an [`Accepted`] or a [`Reject`].

use core::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, Reject};
use crate::jid;
use crate::options::{DEFAULT_NONCE_DIGITS, MAX_LIFETIME, NONCE_DIGITS};
use crate::random::random_digits;
use crate::replay::{Key, ReplayCache, ReplayStore};
use crate::replay_state::{self, SavedState, Start, Stored};
use crate::secret::SecretBytes;
use crate::token::{all_digits, HmacSha256, Layout, UntrustedToken, MAC_LEN};
use crate::totp::Otp;

/// Why an authentic token's OTP is outside the window, for the log line. The client learns only
/// the reason: `otp-mismatch` for [`ClockDiagnosis::NoMatch`], `expired` for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockDiagnosis {
    /// The OTP matches the step this many seconds away from now (negative: minted in the past), and
    /// that is not [`ClockDiagnosis::Late`]: the minting clock is off.
    Offset(i64),
    /// Minted `ago` seconds in the past, no more than [`LATE_MARGIN`] seconds later than a token
    /// stays accepted (`accepted_for` seconds after minting, at most), and not a whole number of
    /// hours: most likely used late (a page kept open, a slow fetch, an old token sent again).
    Late {
        /// How long ago the token was minted, in seconds (a whole number of OTP steps).
        ago: u64,
        /// The longest a token is accepted after minting: `otp_step × (otp_skew + 1)`.
        accepted_for: u64,
    },
    /// No step that the search covers ([`search_plan`], within [`DIAGNOSIS_RANGE`] seconds) matches:
    /// the seed, digits or step differ.
    NoMatch,
    /// Not measured: the searches just before used up [`DIAGNOSIS_STEPS_PER_SECOND`] (each search
    /// costs some milliseconds).
    NotMeasured,
    /// The OTP is inside the window, but the server's clock is `behind` seconds behind the latest
    /// time a token login saw (it went ahead and was set back): tokens are refused until it catches
    /// up (see [`crate::replay`]). The server's clock moved, not the web app's.
    ServerClockBack {
        /// Seconds from now to the replay cache's high-water step (a whole number of OTP steps).
        behind: u64,
    },
}

/// How far either side of now an expired token's OTP is looked for: a day covers any timezone.
pub const DIAGNOSIS_RANGE: u64 = 86_400;
/// The most OTP codes one search computes, whatever `otp_step` is: a whole day either side at the
/// default `otp_step` of 30 s (5 761 codes, a few milliseconds). With `otp_step` under 30 s a day
/// would cost more (172 801 codes at 1 s), so the search then covers [`DIAGNOSIS_NEAR`] seconds
/// either side of now, and [`DIAGNOSIS_ZONE_STEPS`] steps either side of each whole quarter-hour
/// offset up to a day (where a wrong timezone puts a clock).
pub const DIAGNOSIS_MAX_CODES: u64 = 2 * (DIAGNOSIS_RANGE / 30) + 1;
/// Seconds either side of now that a search with `otp_step` under 30 s covers step by step: more
/// than a token's longest life at such a step (29 s × 11 steps) plus [`LATE_MARGIN`], so that a
/// token used late still reads as late.
pub const DIAGNOSIS_NEAR: u64 = 1200;
/// Steps either side of each quarter-hour offset (from 30 min on) that such a search covers.
pub const DIAGNOSIS_ZONE_STEPS: u64 = 8;
const QUARTER_HOUR: u64 = 900;
/// At most this many searches in one second of the verifier's `now` at the default `otp_step` (a
/// few milliseconds each), so that a user replaying old tokens cannot make the server search all
/// the time. A token whose OTP was searched for last (same code, same step) is not searched for again.
pub const DIAGNOSES_PER_SECOND: u32 = 5;
/// What the limit counts: OTP codes computed by searches, this many per second of `now` (five
/// searches of at most [`DIAGNOSIS_MAX_CODES`] each, whatever `otp_step` is; a long step searches
/// fewer codes).
pub const DIAGNOSIS_STEPS_PER_SECOND: u64 = DIAGNOSES_PER_SECOND as u64 * DIAGNOSIS_MAX_CODES;
/// A token minted in the past and refused at most this many seconds after it stopped being
/// accepted reads as used late rather than as a wrong clock ([`ClockDiagnosis::Late`]). Ten minutes
/// covers a page kept open or a slow fetch, and stays below the half-hour steps of timezones.
pub const LATE_MARGIN: u64 = 600;

/// The step distances a search covers at an `otp_step` of `step` seconds, ascending and disjoint,
/// and its cost in codes (at most [`DIAGNOSIS_MAX_CODES`]): every step within [`DIAGNOSIS_RANGE`]
/// where that fits, else every step within [`DIAGNOSIS_NEAR`] and [`DIAGNOSIS_ZONE_STEPS`] steps
/// around each quarter-hour offset from 30 min to [`DIAGNOSIS_RANGE`].
pub fn search_plan(step: u64) -> (Vec<core::ops::RangeInclusive<u64>>, u64) {
    let step = step.max(1);
    let max = DIAGNOSIS_RANGE / step;
    let cost = |plan: &[core::ops::RangeInclusive<u64>]| {
        plan.iter().map(|r| r.end().saturating_sub(*r.start()).saturating_add(1).saturating_mul(2)).sum::<u64>().saturating_sub(1)
    };
    let whole = vec![0..=max];
    if cost(&whole) <= DIAGNOSIS_MAX_CODES {
        let c = cost(&whole);
        return (whole, c);
    }
    let near = DIAGNOSIS_NEAR / step;
    let mut plan = vec![0..=near];
    for k in 2..=DIAGNOSIS_RANGE / QUARTER_HOUR {
        let centre = k * QUARTER_HOUR / step;
        let first = centre.saturating_sub(DIAGNOSIS_ZONE_STEPS).max(near.saturating_add(1));
        let last = centre.saturating_add(DIAGNOSIS_ZONE_STEPS).min(max);
        let after_previous = plan.last().map_or(0, |r| r.end().saturating_add(1));
        let first = first.max(after_previous);
        if first <= last {
            plan.push(first..=last);
        }
    }
    let c = cost(&plan);
    (plan, c)
}

impl fmt::Display for ClockDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClockDiagnosis::Offset(s) if s < 0 => {
                write!(f, "minted about {} s in the past: check the web app's clock and timezone", s.unsigned_abs())
            }
            ClockDiagnosis::Offset(s) => write!(f, "minted about {s} s in the future: check the web app's clock and timezone"),
            // no parentheses: the fail2ban filter reads the explanation as `\([^()]*\)`
            ClockDiagnosis::Late { ago, accepted_for } => write!(
                f,
                "minted about {ago} s ago, and a token is accepted for at most {accepted_for} s after minting: most likely used \
                 late - a page kept open, a slow credentials fetch, an old token sent again; if every login fails so, check the \
                 web app's clock"
            ),
            ClockDiagnosis::NoMatch => {
                f.write_str("no OTP step within 24 h matches: the web app's otp_seed (or otp_digits, otp_step) probably differs")
            }
            ClockDiagnosis::NotMeasured => {
                f.write_str("clock offset not measured: too many expired tokens searched for just now")
            }
            ClockDiagnosis::ServerClockBack { behind } => write!(
                f,
                "the token is current, but this server's clock is about {behind} s behind the latest time a token login \
                 saw - the server's clock went back: token logins are refused until it catches up; the web app's clock is \
                 not at fault"
            ),
        }
    }
}

/// Tunable parameters, with the defaults collective.converse uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// OTP digits (6..=8).
    pub digits: u32,
    /// OTP step in seconds.
    pub step: u64,
    /// Accepted steps either side of the current one.
    pub skew: u64,
    /// Replay cache cap (live entries).
    pub replay_cache_size: usize,
    /// Live replay-cache entries one account may hold (`token_replay_user_quota`).
    pub replay_user_quota: usize,
    /// Nonce digits in every token ([`NONCE_DIGITS`]).
    pub nonce_digits: usize,
    /// Also accept a signature over the username exactly as the client sent it, before nodeprep
    /// (`token_jid_as_sent`). Off: only the nodeprep'd JID, Prosody's account name, verifies.
    pub jid_as_sent: bool,
    /// Accept secrets under [`crate::secret::MIN_SECRET_LEN`] bytes and published example values
    /// (`token_allow_weak_secrets`; for test vectors, never for a deployment).
    pub allow_weak_secrets: bool,
    /// Accept a lifetime above [`MAX_LIFETIME`] (`token_allow_long_lifetime`).
    pub allow_long_lifetime: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            digits: crate::options::DEFAULT_OTP_DIGITS,
            step: crate::options::DEFAULT_OTP_STEP,
            skew: crate::options::DEFAULT_OTP_SKEW,
            replay_cache_size: crate::options::DEFAULT_REPLAY_CACHE_SIZE,
            replay_user_quota: crate::options::DEFAULT_REPLAY_USER_QUOTA,
            nonce_digits: DEFAULT_NONCE_DIGITS,
            jid_as_sent: false,
            allow_weak_secrets: false,
            allow_long_lifetime: false,
        }
    }
}

/// A token that passed every check: signature, OTP window, replay. Only verification makes one
/// (the fields are private), so holding an `Accepted` means a token was accepted.
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

/// Verifies and mints tokens for one host. Keyed HMAC states and the decoded seed are prepared
/// once, here.
pub struct Verifier {
    host: Option<String>,
    keys: Vec<HmacSha256>,
    otp: Otp,
    layout: Layout,
    jid_as_sent: bool,
    replay: Mutex<Box<dyn ReplayStore>>,
    /// Tokens of OTP steps up to this one are refused as [`Reject::UncleanRestart`] (0: none): set
    /// by [`Verifier::restart`] after an unclean stop
    quarantine: AtomicU64,
    /// Set once the replay state has been saved for a stop: a token accepted after it would be
    /// missing from the saved state, so none is (changed only under the `replay` lock)
    sealed: AtomicBool,
    /// Set by [`Verifier::restart`] until storage holds the running marker
    /// ([`Verifier::running_marker_stored`]): without it a crash would look like the clean stop
    /// before, and this run's tokens would be accepted again after it, so none is accepted
    unmarked: AtomicBool,
    /// (the `now` of the last search asked for, codes the searches may still compute): refilled by
    /// [`DIAGNOSIS_STEPS_PER_SECOND`] per second `now` moves forward, up to a second's worth or one
    /// search, whichever is more
    diagnoses: Mutex<Option<(u64, u64)>>,
    /// The last search: (current step, OTP code as in `Otp::offset_of`, its result in steps)
    last_search: Mutex<Option<(u64, u64, Option<i64>)>>,
    /// The step distances one search covers (fixed by `otp_step`), and what it costs in codes
    search_plan: (Vec<core::ops::RangeInclusive<u64>>, u64),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("host", &self.host)
            .field("secrets", &format_args!("[***; {}]", self.keys.len()))
            .field("otp", &self.otp)
            .field("nonce_digits", &self.layout.nonce_digits)
            .field("jid_as_sent", &self.jid_as_sent)
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier. `secrets[0]` mints; all of them verify. With `host`, JIDs of other
    /// domains are refused (`WrongHost`). Used tokens are remembered in an in-memory
    /// [`ReplayCache`] of `settings.replay_cache_size` entries.
    pub fn new(
        secrets: Vec<SecretBytes>,
        otp_seed: SecretBytes,
        settings: Settings,
        host: Option<&str>,
    ) -> Result<Self, ConfigError> {
        if settings.replay_cache_size == 0 {
            return Err(ConfigError::CacheSize);
        }
        if settings.replay_user_quota == 0 {
            return Err(ConfigError::UserQuota);
        }
        let store = Box::new(ReplayCache::new(settings.replay_cache_size, settings.replay_user_quota));
        Self::with_replay_store(secrets, otp_seed, settings, host, store)
    }

    /// [`Verifier::new`] with another place to remember used tokens (`settings`' replay-cache
    /// size and quota are then the store's business).
    pub fn with_replay_store(
        secrets: Vec<SecretBytes>,
        otp_seed: SecretBytes,
        settings: Settings,
        host: Option<&str>,
        store: Box<dyn ReplayStore>,
    ) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::MissingSecret);
        }
        if secrets.iter().any(SecretBytes::is_empty) {
            return Err(ConfigError::EmptySecret);
        }
        if !settings.allow_weak_secrets {
            if let Some(short) = secrets.iter().find(|s| s.len() < crate::secret::MIN_SECRET_LEN) {
                return Err(ConfigError::WeakSecret(short.len()));
            }
            let published = |s: &SecretBytes| crate::secret::PUBLISHED.iter().any(|p| s.is(p.as_bytes()));
            if secrets.iter().any(published) {
                return Err(ConfigError::PublishedSecret);
            }
            let published_seed =
                crate::secret::PUBLISHED.iter().filter_map(|p| crate::totp::decode_seed(p).ok()).any(|p| otp_seed.is(p.expose()));
            if published_seed {
                return Err(ConfigError::PublishedSeed);
            }
        }
        if !NONCE_DIGITS.contains(&settings.nonce_digits) {
            return Err(ConfigError::NonceDigits(settings.nonce_digits));
        }
        if let Some(h) = host {
            jid::check_part(h).map_err(|_| ConfigError::Host)?;
        }
        let otp = Otp::new(otp_seed, settings.digits, settings.step, settings.skew)?;
        // step ≤ 86 400 and skew ≤ 10 (checked by Otp::new), so this cannot overflow; saturate anyway
        let lifetime = settings.step.saturating_mul(settings.skew.saturating_mul(2).saturating_add(1));
        if lifetime > MAX_LIFETIME && !settings.allow_long_lifetime {
            return Err(ConfigError::Lifetime(lifetime));
        }
        let keys = secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.expose()).map_err(|_| ConfigError::EmptySecret))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            host: host.map(str::to_owned),
            keys,
            layout: Layout { otp_digits: otp.digits(), nonce_digits: settings.nonce_digits },
            otp,
            jid_as_sent: settings.jid_as_sent,
            replay: Mutex::new(store),
            quarantine: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            unmarked: AtomicBool::new(false),
            diagnoses: Mutex::new(None),
            last_search: Mutex::new(None),
            search_plan: search_plan(settings.step),
        })
    }

    /// The OTP parameters.
    pub fn otp(&self) -> &Otp {
        &self.otp
    }

    /// For a token refused as `expired` (its signature verified): how far off the minting clock
    /// was, judged from its public part. Searches are limited by [`DIAGNOSIS_STEPS_PER_SECOND`].
    pub fn diagnose_expired(&self, public: &[u8], now: u64) -> ClockDiagnosis {
        match public.get(..self.layout.otp_digits) {
            Some(otp) => self.diagnose_otp(otp, now),
            None => ClockDiagnosis::NoMatch,
        }
    }

    /// The log line's explanation of a refusal of `public` at `now`, where there is one: the clock
    /// diagnosis for `expired` (searched for, as [`Verifier::diagnose_expired`]), and for
    /// `otp-mismatch` the search that decided it.
    pub fn explain(&self, reason: Reject, public: &[u8], now: u64) -> Option<ClockDiagnosis> {
        match reason {
            Reject::Expired => Some(self.diagnose_expired(public, now)),
            Reject::OtpMismatch => Some(ClockDiagnosis::NoMatch),
            _ => None,
        }
    }

    fn diagnose_otp(&self, otp: &[u8], now: u64) -> ClockDiagnosis {
        let current = self.otp.step_of(now);
        if self.otp.matching_step(otp, now).is_some() {
            // inside the window yet refused as expired: the replay cache has seen a later time
            let high_water = self.replay.lock().map(|c| c.high_water()).unwrap_or(0);
            if high_water > current {
                let behind = (high_water - current).saturating_mul(self.otp.step_seconds());
                return ClockDiagnosis::ServerClockBack { behind };
            }
        }
        let mut padded = [0u8; 8];
        let Some(dst) = padded.get_mut(..otp.len()) else { return ClockDiagnosis::NoMatch };
        dst.copy_from_slice(otp);
        let code = u64::from_le_bytes(padded);
        // the search that decided a refusal is asked for again by the log line: answer from it
        let last = self.last_search.lock().ok().and_then(|l| *l);
        let steps = match last {
            Some((step, c, steps)) if step == current && bool::from(c.ct_eq(&code)) => steps,
            _ => {
                let (distances, cost) = &self.search_plan;
                if !self.take_diagnosis_budget(now, *cost) {
                    return ClockDiagnosis::NotMeasured;
                }
                let steps = self.otp.offset_of(otp, now, distances);
                if let Ok(mut l) = self.last_search.lock() {
                    *l = Some((current, code, steps));
                }
                steps
            }
        };
        let Some(steps) = steps else { return ClockDiagnosis::NoMatch };
        let step = self.otp.step_seconds();
        let offset = steps.saturating_mul(i64::try_from(step).unwrap_or(i64::MAX));
        let ago = offset.unsigned_abs();
        let accepted_for = step.saturating_mul(self.otp.skew().saturating_add(1));
        let whole_hours = ago >= 3600 && ago % 3600 == 0;
        if offset < 0 && ago <= accepted_for.saturating_add(LATE_MARGIN) && !whole_hours {
            ClockDiagnosis::Late { ago, accepted_for }
        } else {
            ClockDiagnosis::Offset(offset)
        }
    }

    /// Whether a search computing `cost` codes fits the budget at `now` ([`DIAGNOSIS_STEPS_PER_SECOND`]),
    /// and if so takes it. A clock that goes back adds nothing.
    fn take_diagnosis_budget(&self, now: u64, cost: u64) -> bool {
        let Ok(mut budget) = self.diagnoses.lock() else { return false };
        let cap = DIAGNOSIS_STEPS_PER_SECOND.max(cost);
        let (seen, credit) = match *budget {
            Some((seen, credit)) if now > seen => {
                (now, credit.saturating_add((now - seen).saturating_mul(DIAGNOSIS_STEPS_PER_SECOND)).min(cap))
            }
            // back (or still): nothing added, and counted on from `now` (an hour back is not an hour
            // without searches)
            Some((_, credit)) => (now, credit),
            None => (now, cap),
        };
        let Some(left) = credit.checked_sub(cost) else {
            *budget = Some((seen, credit));
            return false;
        };
        *budget = Some((seen, left));
        true
    }

    /// The fixed layout of a token's public part.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether a signature over the username as sent (before nodeprep) is accepted too.
    pub fn jid_as_sent(&self) -> bool {
        self.jid_as_sent
    }

    /// The host this verifier serves, if it is bound to one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Number of configured secrets.
    pub fn secret_count(&self) -> usize {
        self.keys.len()
    }

    /// (live entries, cap, per-account quota) of the replay cache.
    pub fn replay_stats(&self) -> (usize, usize, usize) {
        match self.replay.lock() {
            Ok(c) => c.stats(),
            Err(p) => p.get_ref().stats(),
        }
    }

    /// The replay cache's high-water step and live entries (key, expiry step), to be kept across a
    /// restart (see [`ReplayCache::export`]).
    pub fn replay_export(&self) -> Result<(u64, Vec<(Key, u64)>), Reject> {
        Ok(self.replay.lock().map_err(|_| Reject::Internal)?.export())
    }

    /// The replay state as a clean stop would save it now ([`crate::replay_state`]): the replay
    /// cache, the quarantine still running, and their MAC under the minting secret. Changes
    /// nothing: a stop saves with [`Verifier::seal_replay_state`].
    pub fn saved_replay_state(&self) -> Result<(SavedState, [u8; MAC_LEN]), Reject> {
        let cache = self.replay.lock().map_err(|_| Reject::Internal)?;
        self.state_of(&**cache)
    }

    /// What a clean stop saves: [`Verifier::saved_replay_state`], after which this verifier
    /// accepts no token (`UncleanRestart`): one accepted between the save and the end of the
    /// process would be missing from the saved state, and could be used again after the next start.
    pub fn seal_replay_state(&self) -> Result<(SavedState, [u8; MAC_LEN]), Reject> {
        let cache = self.replay.lock().map_err(|_| Reject::Internal)?;
        // under the lock: no token is recorded between the export and the seal
        self.sealed.store(true, Ordering::SeqCst);
        self.state_of(&**cache)
    }

    fn state_of(&self, cache: &dyn ReplayStore) -> Result<(SavedState, [u8; MAC_LEN]), Reject> {
        let (high_water, entries) = cache.export();
        let state = SavedState {
            otp_step: self.otp.step_seconds(),
            otp_skew: self.otp.skew(),
            high_water,
            quarantine: self.quarantine.load(Ordering::SeqCst),
            entries,
        };
        let secret = self.keys.first().ok_or(Reject::Internal)?;
        let mac = replay_state::seal(secret, self.host.as_deref(), &state);
        Ok((state, mac))
    }

    /// Starts from what storage held at unix time `now` ([`crate::replay_state::decide`]): a clean
    /// stop's state is taken back into the replay cache; after an unclean stop, or a state that
    /// fails its check, tokens of the steps a token accepted before can have are refused
    /// ([`Reject::UncleanRestart`]).
    ///
    /// From then on no token is accepted (`UncleanRestart`) until [`Verifier::running_marker_stored`]
    /// says storage holds the running marker.
    pub fn restart(&self, stored: Stored, now: u64) -> Result<Start, Reject> {
        self.unmarked.store(true, Ordering::SeqCst);
        let current = self.otp.step_of(now);
        let (cap, skew) = (self.replay_stats().1, self.otp.skew());
        let (start, state) =
            replay_state::decide(stored, &self.keys, self.host.as_deref(), (self.otp.step_seconds(), skew, cap), current);
        let mut cache = self.replay.lock().map_err(|_| Reject::Internal)?;
        match (start, state) {
            (Start::Clean { .. }, Some(state)) => {
                self.quarantine.fetch_max(state.quarantine, Ordering::SeqCst);
                let taken = cache.import(state.high_water, &state.entries);
                Ok(Start::Clean { taken, dropped: state.entries.len().saturating_sub(taken) })
            }
            (Start::Unclean { quarantine, .. }, _) => {
                self.quarantine.fetch_max(quarantine, Ordering::SeqCst);
                cache.import(current, &[]);
                Ok(start)
            }
            (start, _) => Ok(start),
        }
    }

    /// Whether the running marker was written to storage after [`Verifier::restart`]: tokens are
    /// accepted only once it was (`false` keeps, or puts back, the refusal).
    pub fn running_marker_stored(&self, stored: bool) {
        self.unmarked.store(!stored, Ordering::SeqCst);
    }

    /// Whether tokens are refused because storage does not hold the running marker.
    pub fn awaiting_running_marker(&self) -> bool {
        self.unmarked.load(Ordering::SeqCst)
    }

    /// While a quarantine runs at unix time `now`: the time from which tokens minted then are
    /// accepted again (the start of the first step past it); otherwise `None`.
    pub fn quarantine_ends(&self, now: u64) -> Option<u64> {
        match self.quarantine.load(Ordering::SeqCst) {
            0 => None,
            q => Some(q.saturating_add(1).saturating_mul(self.otp.step_seconds())).filter(|&ends| ends > now),
        }
    }

    /// Checks that `jid` is a bare JID of this verifier's host.
    pub fn check_jid(&self, jid: &str) -> Result<(), Reject> {
        let (_, domain) = jid::split_bare(jid)?;
        match &self.host {
            Some(h) if !jid::same_domain(h, domain) => Err(Reject::WrongHost),
            _ => Ok(()),
        }
    }

    /// `HMAC-SHA256(secret[key_index], public ‖ jid)` from the prepared key state: key material,
    /// for the crate's own minting and SASL-HMAC. Tests and benchmarks reach it through the
    /// `internals` feature ([`Verifier::signature`]).
    pub(crate) fn signature_of(&self, key_index: usize, public: &[u8], jid: &str) -> Option<[u8; MAC_LEN]> {
        let mut mac = self.keys.get(key_index)?.clone();
        mac.update(public);
        mac.update(jid.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// The raw MAC, for test vectors and benchmarks only: it is what a token's signature is made
    /// of, so nothing outside tests should need it.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn signature(&self, key_index: usize, public: &[u8], jid: &str) -> Option<[u8; MAC_LEN]> {
        self.signature_of(key_index, public, jid)
    }

    /// Verifies `token` for the first of `jids` that its signature covers, at unix time `now`,
    /// and records it in the replay cache, counted against the quota of the account the last JID
    /// names (the candidates of one login are spellings of one account, the canonical one last).
    /// Order of checks: shape, JIDs, signature, OTP window, replay.
    pub fn verify(&self, token: &[u8], jids: &[&str], now: u64) -> Result<Accepted, Reject> {
        let token = UntrustedToken::parse(token, self.layout)?;
        if jids.is_empty() {
            return Err(Reject::Malformed);
        }
        for j in jids {
            self.check_jid(j)?;
        }
        let (jid_index, key) = self.find_signer(&token, jids).ok_or(Reject::BadSignature)?;
        let account = jids.last().ok_or(Reject::Malformed)?;
        let step = self.accept_fresh(token.unverified_otp(), key, account, now)?;
        Ok(Accepted { step, jid_index })
    }

    /// The first secret half `S = HMAC(secret, public ‖ jid)` over `jids` × secrets that
    /// `accept` approves, with the index of its JID. SASL-HMAC uses it to test the client's proof.
    pub(crate) fn find_secret_half(
        &self,
        public: &[u8],
        jids: &[String],
        mut accept: impl FnMut(&[u8; MAC_LEN]) -> bool,
    ) -> Option<([u8; MAC_LEN], usize)> {
        for (jid_index, j) in jids.iter().enumerate() {
            for key_index in 0..self.keys.len() {
                let s = self.signature_of(key_index, public, j)?;
                if accept(&s) {
                    return Some((s, jid_index));
                }
            }
        }
        None
    }

    fn find_signer(&self, token: &UntrustedToken<'_>, jids: &[&str]) -> Option<(usize, Key)> {
        for (jid_index, j) in jids.iter().enumerate() {
            for key in &self.keys {
                let mut mac = key.clone();
                mac.update(token.unverified_public());
                mac.update(j.as_bytes());
                if mac.verify_slice(token.unverified_mac()).is_ok() {
                    let mut k: Key = [0; 16];
                    k.copy_from_slice(&token.unverified_mac()[..16]);
                    return Some((jid_index, k));
                }
            }
        }
        None
    }

    /// For an authentic token (its signature verified, `replay_key` derived from it) of
    /// `account`: checks the OTP window and records the token. Returns the matched step. An OTP
    /// outside the window is `OtpMismatch` when a search finds it at no step within a day, else
    /// `Expired` (also when the search is over its budget).
    pub(crate) fn accept_fresh(&self, otp: &[u8], replay_key: Key, account: &str, now: u64) -> Result<u64, Reject> {
        let Some(step) = self.otp.matching_step(otp, now) else {
            return Err(match self.diagnose_otp(otp, now) {
                ClockDiagnosis::NoMatch => Reject::OtpMismatch,
                _ => Reject::Expired,
            });
        };
        // after an unclean start the replay cache has forgotten these steps' tokens: any could be a replay
        if step <= self.quarantine.load(Ordering::SeqCst) || self.unmarked.load(Ordering::SeqCst) {
            return Err(Reject::UncleanRestart);
        }
        let expiry = step.saturating_add(self.otp.skew()).saturating_add(1);
        let current = self.otp.step_of(now);
        let mut cache = self.replay.lock().map_err(|_| Reject::Internal)?;
        if self.sealed.load(Ordering::SeqCst) {
            return Err(Reject::UncleanRestart);
        }
        cache.check_and_insert(replay_key, account, current, expiry)?;
        Ok(step)
    }

    /// Mints a token for `jid` at unix time `now` with the first secret and a random nonce of the
    /// configured length. `jid` is signed as given: pass the nodeprep'd form, the one that verifies.
    pub fn mint(&self, jid: &str, now: u64) -> Result<String, Reject> {
        self.check_jid(jid)?;
        let nonce = random_digits(self.layout.nonce_digits).map_err(|_| Reject::Internal)?;
        self.mint_with_nonce(jid, now, &nonce)
    }

    /// Mints with a given nonce (for test vectors; use [`Verifier::mint`] otherwise).
    pub fn mint_with_nonce(&self, jid: &str, now: u64, nonce: &str) -> Result<String, Reject> {
        self.check_jid(jid)?;
        if nonce.len() != self.layout.nonce_digits || !all_digits(nonce.as_bytes()) {
            return Err(Reject::Malformed);
        }
        let code = self.otp.code(self.otp.step_of(now)).ok_or(Reject::Malformed)?;
        let mut public = Vec::with_capacity(code.as_bytes().len() + nonce.len());
        public.extend_from_slice(code.as_bytes());
        public.extend_from_slice(nonce.as_bytes());
        let mac = self.signature_of(0, &public, jid).ok_or(Reject::Malformed)?;
        let mut token = String::from_utf8(public).map_err(|_| Reject::Malformed)?;
        token.push(' ');
        token.push_str(&data_encoding::BASE64.encode(&mac));
        Ok(token)
    }
}

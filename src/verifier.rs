//! The facade over a host's two jobs: [`TokenChecker`] (is a token authentic?) and
//! [`ReplayGuard`] (accept it once), and the clock diagnosis both feed. Tokens come in as bytes and
//! leave as an [`Accepted`] or a [`Reject`].

use core::fmt;

pub use crate::check::{Authentic, Candidates, MintError, TokenChecker, TokenSettings};
use crate::error::{ConfigError, Reject};
pub use crate::guard::{Accepted, ReplayGuard, ReplaySettings};
use crate::replay::{Key, ReplayStore};
use crate::replay_state::{self, Held, SavedState, Source, Start, Stored};
use crate::secret::SecretBytes;
use crate::signout::{self, SignoutKeys, StoredRecord};
use crate::token::{Layout, MAC_LEN};
use crate::totp::Otp;

pub use crate::diagnosis::{
    search_plan, ClockDiagnosis, DIAGNOSES_PER_SECOND, DIAGNOSIS_MAX_CODES, DIAGNOSIS_NEAR, DIAGNOSIS_RANGE,
    DIAGNOSIS_STEPS_PER_SECOND, DIAGNOSIS_ZONE_STEPS, LATE_MARGIN,
};

/// Tunable parameters, with the defaults collective.converse uses: every option of the
/// [`Verifier`] facade. It is two halves, each what one job takes: [`Settings::token`] for
/// deciding whether a token is authentic ([`TokenChecker`]), [`Settings::replay`] for the store
/// that accepts it once ([`ReplayGuard`]).
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
    /// Nonce digits in every token ([`crate::options::NONCE_DIGITS`]).
    pub nonce_digits: usize,
    /// Also accept a signature over the username exactly as the client sent it, before nodeprep
    /// (`token_jid_as_sent`). Off: only the nodeprep'd JID, Prosody's account name, verifies.
    pub jid_as_sent: bool,
    /// Accept secrets under [`crate::secret::MIN_SECRET_LEN`] bytes and published example values
    /// (`token_allow_weak_secrets`; for test vectors, never for a deployment).
    pub allow_weak_secrets: bool,
    /// Accept a lifetime above [`crate::options::MAX_LIFETIME`] (`token_allow_long_lifetime`).
    pub allow_long_lifetime: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let (t, r) = (TokenSettings::default(), ReplaySettings::default());
        Settings {
            digits: t.digits,
            step: t.step,
            skew: t.skew,
            replay_cache_size: r.cache_size,
            replay_user_quota: r.user_quota,
            nonce_digits: t.nonce_digits,
            jid_as_sent: t.jid_as_sent,
            allow_weak_secrets: t.allow_weak_secrets,
            allow_long_lifetime: t.allow_long_lifetime,
        }
    }
}

impl Settings {
    /// What decides whether a token is authentic.
    pub fn token(&self) -> TokenSettings {
        TokenSettings {
            digits: self.digits,
            step: self.step,
            skew: self.skew,
            nonce_digits: self.nonce_digits,
            jid_as_sent: self.jid_as_sent,
            allow_weak_secrets: self.allow_weak_secrets,
            allow_long_lifetime: self.allow_long_lifetime,
        }
    }

    /// The shipped replay cache's size and quota.
    pub fn replay(&self) -> ReplaySettings {
        ReplaySettings { cache_size: self.replay_cache_size, user_quota: self.replay_user_quota }
    }
}

/// A host's two jobs behind one value, for the Lua binding and the SASL exchanges: a
/// [`TokenChecker`] says whether a token is authentic, a [`ReplayGuard`] accepts it once. It adds
/// only what needs both: verifying (check, then accept), the clock diagnosis that knows the
/// store's high-water mark, and the replay state across restarts (the guard's entries under a MAC
/// from the checker's secrets).
pub struct Verifier {
    checker: TokenChecker,
    guard: ReplayGuard,
    signout: SignoutKeys,
}

/// When the web app last signed a user out (docs/signout.md), asked with the nodeprep'd username
/// after a token's MAC and OTP window have passed: `Ok(None)` never, `Ok(Some(unix time))`, or
/// `Err` when it cannot be told (storage failed, a wrong answer): the login then fails closed as
/// `internal-error`.
pub type SignedOutAt<'a> = &'a dyn Fn(&str) -> Result<Option<u64>, LookupFailed>;

/// A [`SignedOutAt`] lookup could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupFailed;

/// The lookup for a host without sign-outs: nobody was ever signed out.
pub fn never_signed_out(_: &str) -> Result<Option<u64>, LookupFailed> {
    Ok(None)
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.checker;
        f.debug_struct("Verifier")
            .field("host", &c.host())
            .field("secrets", &format_args!("[***; {}]", c.secret_count()))
            .field("otp", c.otp())
            .field("nonce_digits", &c.layout().nonce_digits)
            .field("jid_as_sent", &c.jid_as_sent())
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier. `secrets[0]` mints; all of them verify. With `host`, JIDs of other
    /// domains are refused (`WrongHost`). Used tokens are remembered in an in-memory
    /// [`crate::replay::ReplayCache`] of `settings.replay_cache_size` entries.
    pub fn new(
        secrets: Vec<SecretBytes>,
        otp_seed: SecretBytes,
        settings: Settings,
        host: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let replay = settings.replay();
        if replay.cache_size == 0 {
            return Err(ConfigError::CacheSize);
        }
        if replay.user_quota == 0 {
            return Err(ConfigError::UserQuota);
        }
        let checker = TokenChecker::new(secrets, otp_seed, settings.token(), host)?;
        let guard = ReplayGuard::new(replay, &checker)?;
        let signout = SignoutKeys::new(checker.keys());
        Ok(Verifier { checker, guard, signout })
    }

    /// [`Verifier::new`] with another place to remember used tokens (its size and quota are its
    /// own, so it takes only the token settings).
    pub fn with_replay_store(
        secrets: Vec<SecretBytes>,
        otp_seed: SecretBytes,
        settings: TokenSettings,
        host: Option<&str>,
        store: Box<dyn ReplayStore>,
    ) -> Result<Self, ConfigError> {
        let checker = TokenChecker::new(secrets, otp_seed, settings, host)?;
        let guard = ReplayGuard::with_store(store, &checker);
        let signout = SignoutKeys::new(checker.keys());
        Ok(Verifier { checker, guard, signout })
    }

    /// Whether a token is authentic (the stateless half).
    pub fn checker(&self) -> &TokenChecker {
        &self.checker
    }

    /// Accepting authentic tokens once (the half with the store).
    pub fn guard(&self) -> &ReplayGuard {
        &self.guard
    }

    /// The OTP parameters.
    pub fn otp(&self) -> &Otp {
        self.checker.otp()
    }

    /// For a token refused as `expired` (its signature verified): how far off the minting clock
    /// was, judged from its public part, or that the server's own clock went back (the replay
    /// store has seen a later time). Searches are limited by [`DIAGNOSIS_STEPS_PER_SECOND`].
    pub fn diagnose_expired(&self, public: &[u8], now: u64) -> ClockDiagnosis {
        let otp = self.checker.otp();
        if let Some(code) = public.get(..self.checker.layout().otp_digits) {
            if otp.matching_step(code, now).is_some() {
                // inside the window yet refused as expired: the replay store has seen a later time
                let (high_water, current) = (self.guard.high_water(), otp.step_of(now));
                if high_water > current {
                    return ClockDiagnosis::ServerClockBack { behind: (high_water - current).saturating_mul(otp.step_seconds()) };
                }
            }
        }
        self.checker.diagnose_expired(public, now)
    }

    /// The log line's explanation of a refusal of `public` at `now`, where there is one: the clock
    /// diagnosis for `expired` (searched for, as [`Verifier::diagnose_expired`]), and for
    /// `otp-mismatch` the search that decided it.
    pub fn explain(&self, reason: Reject, public: &[u8], now: u64) -> Option<ClockDiagnosis> {
        match reason {
            Reject::Expired => Some(self.diagnose_expired(public, now)),
            _ => self.checker.explain(reason, public, now),
        }
    }

    /// The fixed layout of a token's public part.
    pub fn layout(&self) -> Layout {
        self.checker.layout()
    }

    /// Whether a signature over the username as sent (before nodeprep) is accepted too.
    pub fn jid_as_sent(&self) -> bool {
        self.checker.jid_as_sent()
    }

    /// The host this verifier serves, if it is bound to one.
    pub fn host(&self) -> Option<&str> {
        self.checker.host()
    }

    /// Number of configured secrets.
    pub fn secret_count(&self) -> usize {
        self.checker.secret_count()
    }

    /// The options this verifier runs with, by their `prosody.cfg.lua` names, as in effect (those
    /// [`crate::options::OPTIONS`] shows: `v:stats()`).
    pub fn options_in_effect(&self) -> impl Iterator<Item = (&'static str, crate::options::Value)> + '_ {
        crate::options::OPTIONS.iter().filter_map(move |o| o.in_effect.map(|value| (o.name, value(self))))
    }

    /// (live entries, cap, per-account quota) of the replay cache.
    pub fn replay_stats(&self) -> (usize, usize, usize) {
        self.guard.stats()
    }

    /// The replay cache's high-water step and live entries (key, expiry step), to be kept across a
    /// restart (see [`crate::replay::ReplayCache::export`]).
    pub fn replay_export(&self) -> Result<(u64, Vec<(Key, u64)>), Reject> {
        self.guard.export()
    }

    /// The replay state as a clean stop would save it now ([`crate::replay_state`]): the replay
    /// cache, the quarantine still running, and their MAC under the minting secret. Changes
    /// nothing: a stop saves with [`Verifier::seal_replay_state`].
    pub fn saved_replay_state(&self) -> Result<(SavedState, [u8; MAC_LEN]), Reject> {
        self.state_of(false)
    }

    /// What a clean stop saves: [`Verifier::saved_replay_state`], after which this verifier
    /// accepts no token (`UncleanRestart`): one accepted between the save and the end of the
    /// process would be missing from the saved state, and could be used again after the next start.
    pub fn seal_replay_state(&self) -> Result<(SavedState, [u8; MAC_LEN]), Reject> {
        self.state_of(true)
    }

    fn state_of(&self, seal: bool) -> Result<(SavedState, [u8; MAC_LEN]), Reject> {
        let crate::guard::Snapshot { high_water, entries, quarantine } = self.guard.snapshot(seal)?;
        let otp = self.checker.otp();
        let state = SavedState { otp_step: otp.step_seconds(), otp_skew: otp.skew(), high_water, quarantine, entries };
        let secret = self.checker.keys().first().ok_or(Reject::Internal)?;
        let mac = replay_state::seal(secret, self.checker.host(), &state);
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
        self.guard.set_marked(false);
        let otp = self.checker.otp();
        let current = otp.step_of(now);
        let cap = self.guard.stats().1;
        let (start, state) = replay_state::decide(
            stored,
            self.checker.keys(),
            self.checker.host(),
            (otp.step_seconds(), otp.skew(), cap),
            current,
        );
        match (start, state) {
            (Start::Clean { .. }, Some(state)) => {
                let taken = self.guard.restore(state.high_water, &state.entries, state.quarantine)?;
                Ok(Start::Clean { taken, dropped: state.entries.len().saturating_sub(taken) })
            }
            (Start::Unclean { quarantine, .. }, _) => {
                self.guard.quarantine(quarantine, current)?;
                Ok(start)
            }
            (start, _) => Ok(start),
        }
    }

    /// [`Verifier::restart`] from what storage held, read ([`Held::read`]) for this verifier's
    /// replay-cache size: of a list of more entries, one more than the cache holds is read, then it
    /// is refused. The outer error is the source's (reading storage failed), the inner the start's.
    pub fn restore<S: Source>(&self, held: Held<S>, now: u64) -> Result<Result<Start, Reject>, S::Error> {
        Ok(self.restart(held.read(self.guard.stats().1)?, now))
    }

    /// Whether the running marker was written to storage after [`Verifier::restart`]: tokens are
    /// accepted only once it was (`false` keeps, or puts back, the refusal).
    pub fn running_marker_stored(&self, stored: bool) {
        self.guard.set_marked(stored);
    }

    /// Whether tokens are refused because storage does not hold the running marker.
    pub fn awaiting_running_marker(&self) -> bool {
        self.guard.awaiting_running_marker()
    }

    /// While a quarantine runs at unix time `now`: the time from which tokens minted then are
    /// accepted again (the start of the first step past it); otherwise `None`.
    pub fn quarantine_ends(&self, now: u64) -> Option<u64> {
        match self.guard.quarantined_through() {
            0 => None,
            q => Some(q.saturating_add(1).saturating_mul(self.checker.otp().step_seconds())).filter(|&ends| ends > now),
        }
    }

    /// Checks that `jid` is a bare JID of this verifier's host.
    pub fn check_jid(&self, jid: &str) -> Result<(), Reject> {
        self.checker.check_jid(jid)
    }

    /// The raw MAC, for test vectors and benchmarks only: it is what a token's signature is made
    /// of, so nothing outside tests should need it.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn signature(&self, key_index: usize, public: &[u8], jid: &str) -> Option<[u8; MAC_LEN]> {
        self.checker.signature_of(key_index, public, jid)
    }

    /// Verifies `token` for the first of `jids` that its signature covers, at unix time `now`,
    /// and accepts it once, counted against the quota of the account the last JID names (the
    /// form of the Lua API's list: spellings of one account, the canonical one last; in Rust,
    /// [`Verifier::verify_for`] names it). Order of checks: shape, JIDs, signature, OTP window,
    /// replay.
    pub fn verify(&self, token: &[u8], jids: &[&str], now: u64) -> Result<Accepted, Reject> {
        let Some((account, also)) = jids.split_last() else { return Err(Reject::Malformed) };
        self.verify_for(token, Candidates { account, also }, now)
    }

    /// Verifies `token` for `candidates` at `now` ([`TokenChecker::check`]) and accepts it once
    /// ([`ReplayGuard::accept`]).
    pub fn verify_for(&self, token: &[u8], candidates: Candidates<'_>, now: u64) -> Result<Accepted, Reject> {
        let authentic = self.checker.check(token, candidates, now)?;
        self.guard.accept(authentic, now)
    }

    /// Accepts an authentic token once ([`ReplayGuard::accept`]), for a host without sign-outs
    /// ([`Verifier::admit`] with [`never_signed_out`]).
    pub fn accept(&self, token: Authentic, now: u64) -> Result<Accepted, Reject> {
        self.admit(token, now, &never_signed_out)
    }

    /// Accepts an authentic token once unless its user was signed out since it was minted: the one
    /// place every login (PLAIN, X-TOKEN, SASL-HMAC, `test_password`) is checked against a
    /// sign-out. After the MAC and the OTP window (an [`Authentic`]), before the replay store, so a
    /// refused token is not used up. A token of step `s` is refused as [`Reject::SignedOut`] when
    /// `s ≤ floor(signed_out_at / otp_step)`; a lookup that fails refuses it as `internal-error`.
    pub fn admit(&self, token: Authentic, now: u64, signed_out: SignedOutAt<'_>) -> Result<Accepted, Reject> {
        let (username, _) = crate::jid::split_bare(token.account()).map_err(|_| Reject::Internal)?;
        if let Some(at) = signed_out(username).map_err(|_| Reject::Internal)? {
            if token.step() <= at / self.checker.otp().step_seconds().max(1) {
                return Err(Reject::SignedOut);
            }
        }
        self.guard.accept(token, now)
    }

    /// [`Verifier::verify_for`], refusing tokens minted before a sign-out ([`Verifier::admit`]).
    pub fn verify_for_user(
        &self,
        token: &[u8],
        candidates: Candidates<'_>,
        now: u64,
        signed_out: SignedOutAt<'_>,
    ) -> Result<Accepted, Reject> {
        let authentic = self.checker.check(token, candidates, now)?;
        self.admit(authentic, now, signed_out)
    }

    /// Checks a sign-out request line at `now` for this host (docs/signout.md,
    /// [`crate::signout::sign_out`]): `nodeprep` is Prosody's, `load(username)` gives the user's
    /// stored record and is called only for an authentic, timely request. The outer error is
    /// `load`'s.
    pub fn sign_out<E>(
        &self,
        line: &[u8],
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        load: impl FnOnce(&str) -> Result<Option<StoredRecord>, E>,
    ) -> Result<Result<signout::Accepted, signout::Refusal>, E> {
        signout::sign_out(&self.signout, self.checker.host(), line, now, nodeprep, load)
    }

    /// When `username` was signed out, by its stored record (`None`: nothing stored); a record that
    /// fails its check counts as signed out at `now`, with a note to log.
    pub fn signed_out_at(&self, username: &str, stored: Option<&StoredRecord>, now: u64) -> (Option<u64>, Option<signout::Note>) {
        match self.checker.host() {
            Some(host) => self.signout.signed_out_at(host, username, stored, now),
            // no host, no sign-out endpoint: a stored record cannot be checked, so it counts as now
            None => (stored.map(|_| now), stored.map(|_| signout::Note::StoredRecordInvalid)),
        }
    }

    /// Mints a token for `jid` at unix time `now` with the first secret and a random nonce of the
    /// configured length ([`TokenChecker::mint`]).
    pub fn mint(&self, jid: &str, now: u64) -> Result<String, MintError> {
        self.checker.mint(jid, now)
    }

    /// Mints with a given nonce (for test vectors; use [`Verifier::mint`] otherwise).
    pub fn mint_with_nonce(&self, jid: &str, now: u64, nonce: &str) -> Result<String, MintError> {
        self.checker.mint_with_nonce(jid, now, nonce)
    }
}

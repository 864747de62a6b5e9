//! Whether a token is authentic, without any state about earlier logins: its shape, its JIDs, its
//! signature under one of the secrets and its OTP window at `now`. What passes is an
//! [`Authentic`], which only this crate makes; accepting it once is the replay guard's job
//! ([`crate::guard::ReplayGuard`]). Minting lives here too: it needs the same keys and OTP.

use core::fmt;

use hmac::KeyInit;

use crate::diagnosis::{ClockDiagnosis, ClockSearch};
use crate::error::{ConfigError, Reject};
use crate::jid;
use crate::options::{DEFAULT_NONCE_DIGITS, MAX_LIFETIME, NONCE_DIGITS};
use crate::random::random_digits;
use crate::replay::Key;
use crate::secret::SecretBytes;
use crate::token::{self, HmacSha256, Layout, UntrustedToken, MAC_LEN};
use crate::totp::Otp;

/// What decides whether a token is authentic: the OTP parameters, the nonce length, the identity
/// rule and the safety switches. Nothing about remembering used tokens (that is
/// [`crate::guard::ReplaySettings`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// OTP digits (6..=8).
    pub digits: u32,
    /// OTP step in seconds.
    pub step: u64,
    /// Accepted steps either side of the current one.
    pub skew: u64,
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

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            digits: crate::options::DEFAULT_OTP_DIGITS,
            step: crate::options::DEFAULT_OTP_STEP,
            skew: crate::options::DEFAULT_OTP_SKEW,
            nonce_digits: DEFAULT_NONCE_DIGITS,
            jid_as_sent: false,
            allow_weak_secrets: false,
            allow_long_lifetime: false,
        }
    }
}

/// The bare JIDs one login's token may be signed for: `also` (tried first, in order; under
/// `token_jid_as_sent` the JID as the client sent it), then `account`, the account's canonical
/// JID, against whose quota the token is counted whichever of them it was signed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidates<'a> {
    /// The account's canonical bare JID (nodeprep'd: Prosody's account name).
    pub account: &'a str,
    /// Other spellings of the same account, tried before `account`.
    pub also: &'a [&'a str],
}

impl<'a> Candidates<'a> {
    /// The account's canonical JID alone.
    pub fn only(account: &'a str) -> Self {
        Candidates { account, also: &[] }
    }

    /// Every candidate in the order tried: `also`, then `account`.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.also.iter().copied().chain(core::iter::once(self.account))
    }
}

/// A token whose signature verified for one of the candidates and whose OTP was inside the window
/// at the time it was checked. Only this crate makes one (the fields are private); it says nothing
/// about whether the token was used before: [`crate::guard::ReplayGuard::accept`] decides that,
/// once, and consumes it.
///
/// ```compile_fail
/// // outside the crate there is no way to make one
/// let forged = prosody_auth_hmac::Authentic { step: 0, jid_index: 0, account: String::new(), replay_key: [0; 16] };
/// ```
pub struct Authentic {
    step: u64,
    jid_index: usize,
    account: String,
    /// 16 bytes of the verified MAC (PLAIN) or of the secret half (SASL-HMAC): never shown
    replay_key: Key,
}

impl Authentic {
    /// The OTP step the token belongs to.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Which candidate the signature covers (the index in [`Candidates::iter`]'s order).
    pub fn jid_index(&self) -> usize {
        self.jid_index
    }

    /// The account's canonical JID, whose quota the token counts against.
    pub fn account(&self) -> &str {
        &self.account
    }

    pub(crate) fn replay_key(&self) -> Key {
        self.replay_key
    }
}

impl fmt::Debug for Authentic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authentic")
            .field("step", &self.step)
            .field("jid_index", &self.jid_index)
            .field("account", &self.account)
            .field("replay_key", &"***")
            .finish()
    }
}

/// Why a token could not be minted. Names as [`Reject::as_str`]'s where the Lua API returns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MintError {
    /// The JID is not a bare JID within RFC 7622's sizes (`malformed`).
    BadJid,
    /// The JID names a host other than this one's (`wrong-host`).
    WrongHost,
    /// The nonce is not `token_nonce_digits` ASCII digits (`malformed`).
    BadNonce,
    /// No randomness for the nonce, or no OTP code (`internal-error`).
    Internal,
}

impl MintError {
    /// The name the Lua API and the CLI give it.
    pub const fn as_str(self) -> &'static str {
        match self {
            MintError::BadJid | MintError::BadNonce => Reject::Malformed.as_str(),
            MintError::WrongHost => Reject::WrongHost.as_str(),
            MintError::Internal => Reject::Internal.as_str(),
        }
    }
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for MintError {}

/// The rule for token secrets, wherever they are configured: at least one, none empty, and unless
/// `allow_weak_secrets` none shorter than [`crate::secret::MIN_SECRET_LEN`] bytes and none a value
/// published in documentation.
pub fn check_secrets(secrets: &[SecretBytes], allow_weak_secrets: bool) -> Result<(), ConfigError> {
    if secrets.is_empty() {
        return Err(ConfigError::MissingSecret);
    }
    if secrets.iter().any(SecretBytes::is_empty) {
        return Err(ConfigError::EmptySecret);
    }
    if !allow_weak_secrets {
        if let Some(short) = secrets.iter().find(|s| s.len() < crate::secret::MIN_SECRET_LEN) {
            return Err(ConfigError::WeakSecret(short.len()));
        }
        let published = |s: &SecretBytes| crate::secret::PUBLISHED.iter().any(|p| s.is(p.as_bytes()));
        if secrets.iter().any(published) {
            return Err(ConfigError::PublishedSecret);
        }
    }
    Ok(())
}

/// Checks and mints tokens for one host. Keyed HMAC states and the decoded seed are prepared once,
/// here. It holds nothing about earlier logins; its only state is the budget of clock searches
/// ([`ClockSearch`]), which decide `otp-mismatch` against `expired`, and the OTP code cache.
pub struct TokenChecker {
    host: Option<String>,
    keys: Vec<HmacSha256>,
    otp: Otp,
    layout: Layout,
    jid_as_sent: bool,
    /// Where an expired token's OTP matches, within a budget: decides `otp-mismatch` against `expired`
    search: ClockSearch,
}

impl fmt::Debug for TokenChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenChecker")
            .field("host", &self.host)
            .field("secrets", &format_args!("[***; {}]", self.keys.len()))
            .field("otp", &self.otp)
            .field("nonce_digits", &self.layout.nonce_digits)
            .field("jid_as_sent", &self.jid_as_sent)
            .finish()
    }
}

impl TokenChecker {
    /// Builds a checker. `secrets[0]` mints; all of them verify. With `host`, JIDs of other
    /// domains are refused (`WrongHost`).
    pub fn new(
        secrets: Vec<SecretBytes>,
        otp_seed: SecretBytes,
        settings: TokenSettings,
        host: Option<&str>,
    ) -> Result<Self, ConfigError> {
        check_secrets(&secrets, settings.allow_weak_secrets)?;
        if !settings.allow_weak_secrets {
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
        Ok(TokenChecker {
            host: host.map(str::to_owned),
            keys,
            layout: Layout { otp_digits: otp.digits(), nonce_digits: settings.nonce_digits },
            otp,
            jid_as_sent: settings.jid_as_sent,
            search: ClockSearch::new(settings.step),
        })
    }

    /// The OTP parameters.
    pub fn otp(&self) -> &Otp {
        &self.otp
    }

    /// The fixed layout of a token's public part.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether a signature over the username as sent (before nodeprep) is accepted too.
    pub fn jid_as_sent(&self) -> bool {
        self.jid_as_sent
    }

    /// The host this checker serves, if it is bound to one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Number of configured secrets.
    pub fn secret_count(&self) -> usize {
        self.keys.len()
    }

    /// The prepared keys, `secrets[0]` first: the replay state's MAC is derived from them.
    pub(crate) fn keys(&self) -> &[HmacSha256] {
        &self.keys
    }

    /// Checks that `jid` is a bare JID of this checker's host.
    pub fn check_jid(&self, jid: &str) -> Result<(), Reject> {
        let (_, domain) = jid::split_bare(jid)?;
        match &self.host {
            Some(h) if !jid::same_domain(h, domain) => Err(Reject::WrongHost),
            _ => Ok(()),
        }
    }

    /// Whether `token` is authentic for one of `candidates` at unix time `now`. Order of checks:
    /// shape, JIDs, signature, OTP window. Touches no replay store: an [`Authentic`] may be a
    /// token used before.
    pub fn check(&self, token: &[u8], candidates: Candidates<'_>, now: u64) -> Result<Authentic, Reject> {
        let token = UntrustedToken::parse(token, self.layout)?;
        for j in candidates.iter() {
            self.check_jid(j)?;
        }
        let (jid_index, replay_key) = self.find_signer(&token, candidates).ok_or(Reject::BadSignature)?;
        self.authentic(token.unverified_otp(), replay_key, jid_index, candidates.account, now)
    }

    /// `HMAC-SHA256(secret[key_index], public ‖ jid)` from the prepared key state: key material,
    /// for the crate's own minting and SASL-HMAC. Tests and benchmarks reach it through the
    /// `internals` feature ([`crate::Verifier::signature`]).
    pub(crate) fn signature_of(&self, key_index: usize, public: &[u8], jid: &str) -> Option<[u8; MAC_LEN]> {
        Some(token::sign(self.keys.get(key_index)?, public, jid))
    }

    /// The first secret half `S = HMAC(secret, public ‖ jid)` over `candidates` × secrets that
    /// `accept` approves, with the index of its JID. SASL-HMAC uses it to test the client's proof.
    pub(crate) fn find_secret_half(
        &self,
        public: &[u8],
        candidates: Candidates<'_>,
        mut accept: impl FnMut(&[u8; MAC_LEN]) -> bool,
    ) -> Option<([u8; MAC_LEN], usize)> {
        for (jid_index, j) in candidates.iter().enumerate() {
            for key_index in 0..self.keys.len() {
                let s = self.signature_of(key_index, public, j)?;
                if accept(&s) {
                    return Some((s, jid_index));
                }
            }
        }
        None
    }

    fn find_signer(&self, token: &UntrustedToken<'_>, candidates: Candidates<'_>) -> Option<(usize, Key)> {
        for (jid_index, j) in candidates.iter().enumerate() {
            for key in &self.keys {
                if token::signed_for(key, token, j) {
                    let mut k: Key = [0; 16];
                    k.copy_from_slice(&token.unverified_mac()[..16]);
                    return Some((jid_index, k));
                }
            }
        }
        None
    }

    /// For a token whose signature verified (`replay_key` derived from it) for candidate
    /// `jid_index` of `account`: checks the OTP window. An OTP outside it is `OtpMismatch` when a
    /// search finds it at no step within a day, else `Expired` (also when the search is over its
    /// budget).
    pub(crate) fn authentic(
        &self,
        otp: &[u8],
        replay_key: Key,
        jid_index: usize,
        account: &str,
        now: u64,
    ) -> Result<Authentic, Reject> {
        let Some(step) = self.otp.matching_step(otp, now) else {
            return Err(match self.diagnose_otp(otp, now) {
                ClockDiagnosis::NoMatch => Reject::OtpMismatch,
                _ => Reject::Expired,
            });
        };
        Ok(Authentic { step, jid_index, account: account.to_owned(), replay_key })
    }

    /// For a token refused as `expired` (its signature verified): how far off the minting clock
    /// was, judged from its public part. Searches are limited by [`crate::diagnosis::DIAGNOSIS_STEPS_PER_SECOND`].
    /// The replay guard's view of the server's clock is [`crate::Verifier::diagnose_expired`]'s.
    pub fn diagnose_expired(&self, public: &[u8], now: u64) -> ClockDiagnosis {
        match public.get(..self.layout.otp_digits) {
            Some(otp) => self.diagnose_otp(otp, now),
            None => ClockDiagnosis::NoMatch,
        }
    }

    /// The log line's explanation of a refusal of `public` at `now`, where there is one: the clock
    /// diagnosis for `expired` (searched for, as [`TokenChecker::diagnose_expired`]), and for
    /// `otp-mismatch` the search that decided it.
    pub fn explain(&self, reason: Reject, public: &[u8], now: u64) -> Option<ClockDiagnosis> {
        match reason {
            Reject::Expired => Some(self.diagnose_expired(public, now)),
            Reject::OtpMismatch => Some(ClockDiagnosis::NoMatch),
            _ => None,
        }
    }

    pub(crate) fn diagnose_otp(&self, otp: &[u8], now: u64) -> ClockDiagnosis {
        self.search.diagnose(&self.otp, otp, now)
    }

    /// Mints a token for `jid` at unix time `now` with the first secret and a random nonce of the
    /// configured length. `jid` is signed as given: pass the nodeprep'd form, the one that verifies.
    pub fn mint(&self, jid: &str, now: u64) -> Result<String, MintError> {
        self.mintable(jid)?;
        let nonce = random_digits(self.layout.nonce_digits).map_err(|_| MintError::Internal)?;
        self.mint_with_nonce(jid, now, &nonce)
    }

    fn mintable(&self, jid: &str) -> Result<(), MintError> {
        self.check_jid(jid).map_err(|r| if r == Reject::WrongHost { MintError::WrongHost } else { MintError::BadJid })
    }

    /// Mints with a given nonce (for test vectors; use [`TokenChecker::mint`] otherwise).
    pub fn mint_with_nonce(&self, jid: &str, now: u64, nonce: &str) -> Result<String, MintError> {
        self.mintable(jid)?;
        if nonce.len() != self.layout.nonce_digits || !crate::token::all_digits(nonce.as_bytes()) {
            return Err(MintError::BadNonce);
        }
        let code = self.otp.code(self.otp.step_of(now)).ok_or(MintError::Internal)?;
        let key = self.keys.first().ok_or(MintError::Internal)?;
        token::encode(key, self.layout, code.as_bytes(), nonce.as_bytes(), jid).ok_or(MintError::Internal)
    }
}

//! Tokens: parsing (untrusted until verified), verification and minting.
//!
//! `token = OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID))`

use core::fmt;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ConfigError, Reject};
use crate::jid;
use crate::replay::{Key, ReplayCache};
use crate::secret::SecretBytes;
use crate::totp::Otp;

/// Tokens longer than this are malformed.
pub const MAX_TOKEN_LEN: usize = 1024;
/// HMAC-SHA256 output length.
pub const MAC_LEN: usize = 32;
/// Length of the padded standard base64 of a MAC.
pub const MAC_B64_LEN: usize = 44;
/// Digits of nonce in a minted token.
pub const MINT_NONCE_DIGITS: usize = 32;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A token as received: well-formed, but nothing about it is trusted yet.
pub struct UntrustedToken<'a> {
    public: &'a [u8],
    otp_len: usize,
    mac: [u8; MAC_LEN],
}

impl fmt::Debug for UntrustedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntrustedToken")
            .field("otp", &"***")
            .field("nonce_len", &(self.public.len() - self.otp_len))
            .field("mac", &"***")
            .finish()
    }
}

/// True when every byte is an ASCII digit; branch-free over the whole slice, so it vectorises.
fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & b.is_ascii_digit())
}

impl<'a> UntrustedToken<'a> {
    /// Parses `OTP‖NONCE ␠ base64(MAC)`: at most 1 KiB, a public part of `digits` or more ASCII
    /// digits, one space, and exactly 44 characters of padded standard base64 that decode to 32 bytes.
    pub fn parse(token: &'a [u8], digits: usize) -> Result<Self, Reject> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Reject::Malformed);
        }
        // The MAC's base64 has a fixed length, so the single space sits MAC_B64_LEN bytes from the
        // end, and everything before it must be digits. The digit check has no early exit, which
        // lets the compiler vectorise it (a byte-at-a-time scan cost ~50 ns of a ~500 ns check).
        let Some(end) = token.len().checked_sub(MAC_B64_LEN + 1) else { return Err(Reject::Malformed) };
        let (public, rest) = token.split_at(end);
        if !all_digits(public) || rest.first() != Some(&b' ') {
            return Err(Reject::Malformed);
        }
        Self::from_parts(public, &rest[1..], digits)
    }

    /// Checks a public part alone (SASL-HMAC sends only `OTP‖NONCE`).
    pub fn check_public(public: &[u8], digits: usize) -> Result<(), Reject> {
        if public.len() < digits || public.len() > MAX_TOKEN_LEN || !all_digits(public) {
            return Err(Reject::Malformed);
        }
        Ok(())
    }

    /// `public` is already known to be ASCII digits (parse checked it).
    fn from_parts(public: &'a [u8], b64: &[u8], digits: usize) -> Result<Self, Reject> {
        if public.len() < digits {
            return Err(Reject::Malformed);
        }
        if b64.len() != MAC_B64_LEN {
            return Err(Reject::Malformed);
        }
        let mut buf = [0u8; MAC_LEN + 1];
        let n = data_encoding::BASE64.decode_len(b64.len()).map_err(|_| Reject::Malformed)?;
        let out = buf.get_mut(..n).ok_or(Reject::Malformed)?;
        let len = data_encoding::BASE64.decode_mut(b64, out).map_err(|_| Reject::Malformed)?;
        if len != MAC_LEN {
            return Err(Reject::Malformed);
        }
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&buf[..MAC_LEN]);
        Ok(UntrustedToken { public, otp_len: digits, mac })
    }

    /// `OTP ‖ NONCE`.
    pub fn public(&self) -> &[u8] {
        self.public
    }

    /// The OTP digits.
    pub fn otp(&self) -> &[u8] {
        &self.public[..self.otp_len]
    }

    /// The nonce digits (possibly empty).
    pub fn nonce(&self) -> &[u8] {
        &self.public[self.otp_len..]
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings { digits: 8, step: 30, skew: 1, replay_cache_size: 100_000 }
    }
}

/// A token that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The OTP step the token belongs to.
    pub step: u64,
    /// Which of the candidate JIDs the signature covers.
    pub jid_index: usize,
}

/// Verifies and mints tokens for one host. Keyed HMAC states and the decoded seed are prepared
/// once, here.
pub struct Verifier {
    host: Option<String>,
    keys: Vec<HmacSha256>,
    otp: Otp,
    replay: Mutex<ReplayCache>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("host", &self.host)
            .field("secrets", &format_args!("[***; {}]", self.keys.len()))
            .field("otp", &self.otp)
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier. `secrets[0]` mints; all of them verify. With `host`, JIDs of other
    /// domains are refused (`WrongHost`).
    pub fn new(
        secrets: Vec<SecretBytes>,
        otp_seed: SecretBytes,
        settings: Settings,
        host: Option<&str>,
    ) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::MissingSecret);
        }
        if secrets.iter().any(SecretBytes::is_empty) {
            return Err(ConfigError::EmptySecret);
        }
        if settings.replay_cache_size == 0 {
            return Err(ConfigError::CacheSize);
        }
        if let Some(h) = host {
            jid::check_part(h).map_err(|_| ConfigError::Host)?;
        }
        let otp = Otp::new(otp_seed, settings.digits, settings.step, settings.skew)?;
        let keys = secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.expose()).map_err(|_| ConfigError::EmptySecret))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            host: host.map(str::to_owned),
            keys,
            otp,
            replay: Mutex::new(ReplayCache::new(settings.replay_cache_size)),
        })
    }

    /// The OTP parameters.
    pub fn otp(&self) -> &Otp {
        &self.otp
    }

    /// The host this verifier serves, if it is bound to one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Number of configured secrets.
    pub fn secret_count(&self) -> usize {
        self.keys.len()
    }

    /// (live entries, cap) of the replay cache.
    pub fn replay_stats(&self) -> (usize, usize) {
        match self.replay.lock() {
            Ok(c) => (c.len(), c.cap()),
            Err(p) => (p.get_ref().len(), p.get_ref().cap()),
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

    /// `HMAC-SHA256(secret[key_index], public ‖ jid)` from the prepared key state.
    pub fn signature(&self, key_index: usize, public: &[u8], jid: &str) -> Option<[u8; MAC_LEN]> {
        let mut mac = self.keys.get(key_index)?.clone();
        mac.update(public);
        mac.update(jid.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// Verifies `token` for the first of `jids` that its signature covers, at unix time `now`,
    /// and records it in the replay cache. Order of checks: shape, JIDs, signature, OTP window,
    /// replay.
    pub fn verify(&self, token: &[u8], jids: &[&str], now: u64) -> Result<Accepted, Reject> {
        let token = UntrustedToken::parse(token, self.otp.digits())?;
        if jids.is_empty() {
            return Err(Reject::Malformed);
        }
        for j in jids {
            self.check_jid(j)?;
        }
        let (jid_index, key) = self.find_signer(&token, jids).ok_or(Reject::BadSignature)?;
        let step = self.accept_fresh(token.otp(), key, now)?;
        Ok(Accepted { step, jid_index })
    }

    /// The first secret half `S = HMAC(secret, public ‖ jid)` over `jids` × secrets that
    /// `accept` approves, with the index of its JID. SASL-HMAC uses it to test the client's proof.
    pub fn find_secret_half(
        &self,
        public: &[u8],
        jids: &[String],
        mut accept: impl FnMut(&[u8; MAC_LEN]) -> bool,
    ) -> Option<([u8; MAC_LEN], usize)> {
        for (jid_index, j) in jids.iter().enumerate() {
            for key_index in 0..self.keys.len() {
                let s = self.signature(key_index, public, j)?;
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
                mac.update(token.public());
                mac.update(j.as_bytes());
                if mac.verify_slice(&token.mac).is_ok() {
                    let mut k: Key = [0; 16];
                    k.copy_from_slice(&token.mac[..16]);
                    return Some((jid_index, k));
                }
            }
        }
        None
    }

    /// For an authentic token (its signature verified, `replay_key` derived from it): checks the
    /// OTP window and records the token. Returns the matched step.
    pub fn accept_fresh(&self, otp: &[u8], replay_key: Key, now: u64) -> Result<u64, Reject> {
        let step = self.otp.matching_step(otp, now).ok_or(Reject::Expired)?;
        let expiry = step.saturating_add(self.otp.skew()).saturating_add(1);
        let current = self.otp.step_of(now);
        let mut cache = self.replay.lock().map_err(|_| Reject::Internal)?;
        cache.check_and_insert(replay_key, current, expiry)?;
        Ok(step)
    }

    /// Mints a token for `jid` at unix time `now` with the first secret and a 32-digit nonce.
    pub fn mint(&self, jid: &str, now: u64) -> Result<String, Reject> {
        self.check_jid(jid)?;
        let nonce = random_digits(MINT_NONCE_DIGITS).map_err(|_| Reject::Internal)?;
        self.mint_with_nonce(jid, now, &nonce)
    }

    /// Mints with a given nonce (for test vectors; use [`Verifier::mint`] otherwise).
    pub fn mint_with_nonce(&self, jid: &str, now: u64, nonce: &str) -> Result<String, Reject> {
        self.check_jid(jid)?;
        if !nonce.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reject::Malformed);
        }
        let code = self.otp.code(self.otp.step_of(now)).ok_or(Reject::Malformed)?;
        let mut public = Vec::with_capacity(code.as_bytes().len() + nonce.len());
        public.extend_from_slice(code.as_bytes());
        public.extend_from_slice(nonce.as_bytes());
        let mac = self.signature(0, &public, jid).ok_or(Reject::Malformed)?;
        let mut token = String::from_utf8(public).map_err(|_| Reject::Malformed)?;
        token.push(' ');
        token.push_str(&data_encoding::BASE64.encode(&mac));
        if token.len() > MAX_TOKEN_LEN {
            return Err(Reject::Malformed);
        }
        Ok(token)
    }
}

/// `n` uniformly random decimal digits from the operating system's CSPRNG.
pub fn random_digits(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            // 250 is the largest multiple of 10 that fits in a byte: no modulo bias.
            if b < 250 && out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// `n` random bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v)?;
    Ok(v)
}

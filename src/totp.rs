//! RFC 6238 TOTP over the configured seed, with a checked, constant-time window check.
//!
//! Codes come from `totp-rs` (`Totp::generate`). Its own `check` is not used: it adds the skew to
//! the current step unchecked and returns at the first matching step. Here the window is computed
//! with saturating arithmetic, every step in it is compared in constant time, and the codes of
//! recent steps are cached because they are the same for every user.

use std::sync::{LazyLock, Mutex, MutexGuard};

use data_encoding::{Encoding, Specification};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Algorithm, Builder, Totp};

use crate::error::ConfigError;
use crate::secret::SecretBytes;

use crate::options::{OTP_DIGITS, OTP_SKEW, OTP_STEP};

/// The largest accepted skew, in steps either side of the current one.
pub const MAX_SKEW: u64 = *OTP_SKEW.end();
const CACHE_SLOTS: usize = 32; // > 2 * MAX_SKEW + 1, so one verification never evicts its own codes

/// Base32 as pyotp reads it: RFC 4648 alphabet, case-insensitive, padding optional, trailing bits
/// not checked.
static BASE32_SEED: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.check_trailing_bits = false;
    spec.encoding().expect("static base32 specification is valid")
});

/// Decodes an `otp_seed` string (base32, case-insensitive, `=` padding optional).
pub fn decode_seed(seed: &str) -> Result<SecretBytes, ConfigError> {
    let trimmed = seed.trim_end_matches('=');
    if trimmed.is_empty() {
        return Err(ConfigError::MissingSeed);
    }
    BASE32_SEED.decode(trimmed.as_bytes()).map(SecretBytes::new).map_err(|_| ConfigError::SeedNotBase32)
}

/// Encodes seed bytes as unpadded upper-case base32 (what `hmac-token keygen` prints).
pub fn encode_seed(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// One OTP code as ASCII digits (6 to 8 of them).
#[derive(Clone, Copy)]
pub struct Code {
    buf: [u8; 8],
    len: u8,
}

impl Code {
    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl core::fmt::Write for Code {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let start = self.len as usize;
        let end = start.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(start..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

/// TOTP parameters and the seed.
pub struct Otp {
    totp: Totp,
    digits: u8,
    step: u64,
    skew: u64,
    cache: Mutex<CodeCache>,
}

type CodeCache = [Option<(u64, Code)>; CACHE_SLOTS];

impl core::fmt::Debug for Otp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Otp")
            .field("seed", &"***")
            .field("digits", &self.digits)
            .field("step", &self.step)
            .field("skew", &self.skew)
            .finish()
    }
}

impl Otp {
    /// SHA-1 TOTP with the given digits (6..=8), step in seconds (1..=86400) and skew (0..=10).
    pub fn new(seed: SecretBytes, digits: u32, step: u64, skew: u64) -> Result<Self, ConfigError> {
        if !OTP_DIGITS.contains(&digits) {
            return Err(ConfigError::Digits(digits));
        }
        if !OTP_STEP.contains(&step) {
            return Err(ConfigError::Step(step));
        }
        if !OTP_SKEW.contains(&skew) {
            return Err(ConfigError::Skew(skew));
        }
        if seed.is_empty() {
            return Err(ConfigError::MissingSeed);
        }
        // Seeds shorter than RFC 4226's 128 bits exist in the field (collective.converse's example
        // is 80 bits), so the non-compliant builder is used; digits and step were checked above.
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(digits as u8)
            .with_skew(0)
            .with_step_duration(step)
            .with_secret(seed.expose().to_vec())
            .build_noncompliant();
        Ok(Otp { totp, digits: digits as u8, step, skew, cache: Mutex::new([None; CACHE_SLOTS]) })
    }

    /// Number of digits in a code.
    pub fn digits(&self) -> usize {
        self.digits as usize
    }

    /// Step length in seconds.
    pub fn step_seconds(&self) -> u64 {
        self.step
    }

    /// Accepted steps either side of the current one.
    pub fn skew(&self) -> u64 {
        self.skew
    }

    /// The step number that contains `now` (unix seconds).
    pub fn step_of(&self, now: u64) -> u64 {
        now / self.step
    }

    /// The steps accepted at `now`: current ± skew, clamped to the representable range.
    pub fn window(&self, now: u64) -> core::ops::RangeInclusive<u64> {
        let current = self.step_of(now);
        current.saturating_sub(self.skew)..=current.saturating_add(self.skew)
    }

    /// The code of a step, or `None` when the step's start time does not fit in a `u64`.
    pub fn code(&self, step: u64) -> Option<Code> {
        let mut cache = self.cache.lock().ok();
        self.cached(&mut cache, step)
    }

    /// A step's code from the (locked) cache, computed and stored there on a miss. Without the
    /// lock (poisoned), codes are computed every time.
    fn cached(&self, cache: &mut Option<MutexGuard<'_, CodeCache>>, step: u64) -> Option<Code> {
        let slot = (step % CACHE_SLOTS as u64) as usize;
        if let Some((s, code)) = cache.as_ref().and_then(|c| c[slot]) {
            if s == step {
                return Some(code);
            }
        }
        let code = self.compute(step)?;
        if let Some(c) = cache.as_mut() {
            c[slot] = Some((step, code));
        }
        Some(code)
    }

    fn compute(&self, step: u64) -> Option<Code> {
        use core::fmt::Write;
        let time = step.checked_mul(self.step)?;
        let mut code = Code { buf: [0; 8], len: 0 };
        write!(code, "{}", self.totp.generate(time)).ok()?;
        (code.len == self.digits).then_some(code)
    }

    /// For an authentic token whose OTP is outside the window: the offset, in steps, of the step
    /// nearest to the current one, among those `distances` away from it either side, whose code
    /// equals `otp` (how far off the minting clock was), or `None` when none does (the seed, digits
    /// or step differ, or the clock is off by an amount not searched). `distances` are ascending
    /// ranges of step distances; the cost is two codes a distance (one for 0). Every step is
    /// computed and compared in constant time; the codes are not cached (they are not the window's).
    pub fn offset_of(&self, otp: &[u8], now: u64, distances: &[core::ops::RangeInclusive<u64>]) -> Option<i64> {
        if otp.len() != self.digits as usize {
            return None;
        }
        let mut padded = [0u8; 8];
        padded[..otp.len()].copy_from_slice(otp);
        let want = u64::from_le_bytes(padded);
        let current = self.step_of(now);
        let mut best = 0u64; // |offset| + 1 of the best match so far; 0 = none
        let mut best_step = 0u64;
        let steps = distances.iter().cloned().flatten().flat_map(|d| {
            // the past first: at equal distance, the earlier step wins (strict `<` below)
            let before = current.checked_sub(d);
            let after = if d == 0 { None } else { current.checked_add(d) };
            before.into_iter().chain(after)
        });
        for step in steps {
            let Some(code) = self.compute(step) else { continue };
            let eq = u64::from_le_bytes(code.buf).ct_eq(&want);
            let distance = step.abs_diff(current).saturating_add(1);
            let nearer = eq & (best.ct_eq(&0) | Choice::from(u8::from(distance < best)));
            best = u64::conditional_select(&best, &distance, nearer);
            best_step = u64::conditional_select(&best_step, &step, nearer);
        }
        if best == 0 {
            return None;
        }
        let offset = i64::try_from(best_step.abs_diff(current)).ok()?;
        Some(if best_step < current { -offset } else { offset })
    }

    /// The latest step in the window at `now` whose code equals `otp`, comparing every step of the
    /// window in constant time (one cache lock for the whole window). `None` when no step matches.
    pub fn matching_step(&self, otp: &[u8], now: u64) -> Option<u64> {
        if otp.len() != self.digits as usize {
            return None; // the length is public: the parser already fixed it
        }
        // codes are at most 8 ASCII digits: compare them as one u64 each, in constant time
        let mut padded = [0u8; 8];
        padded[..otp.len()].copy_from_slice(otp);
        let want = u64::from_le_bytes(padded);
        let mut any = Choice::from(0);
        let mut matched = 0u64;
        let window = self.window(now);
        let mut cache = self.cache.lock().ok();
        for step in window {
            let code = self.cached(&mut cache, step);
            if let Some(code) = code {
                let eq = u64::from_le_bytes(code.buf).ct_eq(&want);
                matched = u64::conditional_select(&matched, &step, eq);
                any |= eq;
            }
        }
        bool::from(any).then_some(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_otp(skew: u64) -> Otp {
        // RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
        Otp::new(SecretBytes::new(b"12345678901234567890".to_vec()), 8, 30, skew).unwrap()
    }

    #[test]
    fn window_is_current_plus_minus_skew() {
        let otp = rfc_otp(1);
        let t = 1_111_111_109; // step 37037036, code 07081804
        assert_eq!(otp.matching_step(b"07081804", t), Some(37_037_036));
        assert_eq!(otp.matching_step(b"07081804", t + 30), Some(37_037_036));
        assert_eq!(otp.matching_step(b"07081804", t - 30), Some(37_037_036));
        assert_eq!(otp.matching_step(b"07081804", t + 60), None);
        assert_eq!(otp.matching_step(b"07081804", t - 60), None);
        assert_eq!(otp.matching_step(b"7081804", t), None, "leading zero is significant");
        assert_eq!(otp.matching_step(b"17081804", t), None);
    }

    #[test]
    fn window_edges_do_not_overflow() {
        let otp = rfc_otp(MAX_SKEW);
        assert_eq!(otp.window(0), 0..=MAX_SKEW);
        assert_eq!(otp.matching_step(b"00000000", u64::MAX), None);
        assert!(otp.code(u64::MAX).is_none());
    }

    #[test]
    fn seeds_decode_like_pyotp() {
        let a = decode_seed("XVGR73KMZH2M4XMY").unwrap();
        let b = decode_seed("xvgr73kmzh2m4xmy").unwrap();
        let c = decode_seed("XVGR73KMZH2M4XMY======").unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(a.expose(), c.expose());
        assert_eq!(a.len(), 10);
        assert_eq!(encode_seed(a.expose()), "XVGR73KMZH2M4XMY");
        assert_eq!(decode_seed("").unwrap_err(), ConfigError::MissingSeed);
        assert_eq!(decode_seed("====").unwrap_err(), ConfigError::MissingSeed);
        assert_eq!(decode_seed("not base32!").unwrap_err(), ConfigError::SeedNotBase32);
        assert_eq!(decode_seed("ABC1").unwrap_err(), ConfigError::SeedNotBase32);
    }

    #[test]
    fn parameters_are_checked() {
        let seed = || SecretBytes::new(vec![1; 10]);
        assert_eq!(Otp::new(seed(), 5, 30, 1).unwrap_err(), ConfigError::Digits(5));
        assert_eq!(Otp::new(seed(), 9, 30, 1).unwrap_err(), ConfigError::Digits(9));
        assert_eq!(Otp::new(seed(), 8, 0, 1).unwrap_err(), ConfigError::Step(0));
        assert_eq!(Otp::new(seed(), 8, 30, 11).unwrap_err(), ConfigError::Skew(11));
        assert_eq!(Otp::new(SecretBytes::new(vec![]), 8, 30, 1).unwrap_err(), ConfigError::MissingSeed);
        for d in 6..=8 {
            let otp = Otp::new(seed(), d, 30, 1).unwrap();
            assert_eq!(otp.code(12345).unwrap().as_bytes().len(), d as usize);
        }
        assert!(format!("{:?}", Otp::new(seed(), 8, 30, 1).unwrap()).contains(r#"seed: "***""#));
    }
}

//! The two error families of the core.
//!
//! [`Reject`] is why a login was refused. It is deliberately coarse: it never says which byte of a
//! signature or which OTP window failed. [`ConfigError`] is why a configuration was refused; it names
//! the option and never the secret.

use core::fmt;

/// Why a credential was refused. `as_str` gives the stable reason name used in log lines,
/// metrics and the Lua API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The token or the SASL message is not of the expected shape (or is too long).
    Malformed,
    /// The signature (or SASL-HMAC proof) does not verify for this JID under any configured secret.
    BadSignature,
    /// The signature is good but the OTP is outside the accepted window.
    Expired,
    /// The token was already accepted once while it is still valid.
    Replayed,
    /// The JID names a host other than the one this verifier serves.
    WrongHost,
    /// The authorization identity is not the authenticated user's own bare JID.
    InvalidAuthzid,
    /// The replay cache is at its cap: the login fails closed.
    CacheFull,
    /// This account holds its quota of live replay-cache entries: its login fails closed (and
    /// nobody else's).
    QuotaExceeded,
    /// The server could not decide (no randomness, a poisoned lock): the login fails closed.
    Internal,
}

impl Reject {
    /// Every reason, in a fixed order (used for metrics).
    pub const ALL: [Reject; 9] = [
        Reject::Malformed,
        Reject::BadSignature,
        Reject::Expired,
        Reject::Replayed,
        Reject::WrongHost,
        Reject::InvalidAuthzid,
        Reject::CacheFull,
        Reject::QuotaExceeded,
        Reject::Internal,
    ];

    /// Stable, log-friendly name of the reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::BadSignature => "bad-signature",
            Reject::Expired => "expired",
            Reject::Replayed => "replayed",
            Reject::WrongHost => "wrong-host",
            Reject::InvalidAuthzid => "invalid-authzid",
            Reject::CacheFull => "cache-full",
            Reject::QuotaExceeded => "quota-exceeded",
            Reject::Internal => "internal-error",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Reject {}

/// A configuration the core refuses. `option()` is the configuration option at fault, by the
/// name an admin writes in `prosody.cfg.lua`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// No token secret was given.
    MissingSecret,
    /// A token secret is empty.
    EmptySecret,
    /// A token secret is shorter than [`crate::secret::MIN_SECRET_LEN`] bytes (its length).
    WeakSecret(usize),
    /// A token secret is a value published in documentation.
    PublishedSecret,
    /// The OTP seed is a value published in documentation.
    PublishedSeed,
    /// `otp_step × (2 × otp_skew + 1)` (seconds) is above [`crate::token::MAX_LIFETIME`].
    Lifetime(u64),
    /// The OTP seed is missing or empty.
    MissingSeed,
    /// The OTP seed is not base32.
    SeedNotBase32,
    /// Digits outside 6..=8.
    Digits(u32),
    /// Step of zero seconds, or longer than a day.
    Step(u64),
    /// Skew larger than [`crate::totp::MAX_SKEW`].
    Skew(u64),
    /// Replay cache cap of zero.
    CacheSize,
    /// Per-account replay quota of zero.
    UserQuota,
    /// `token_nonce_digits` outside [`crate::token::NONCE_DIGITS`].
    NonceDigits(usize),
    /// The host name is empty or longer than RFC 7622 allows.
    Host,
}

impl ConfigError {
    /// The option at fault.
    pub const fn option(&self) -> &'static str {
        match self {
            ConfigError::MissingSecret | ConfigError::EmptySecret | ConfigError::WeakSecret(_) | ConfigError::PublishedSecret => {
                "token_secret"
            }
            ConfigError::MissingSeed | ConfigError::SeedNotBase32 | ConfigError::PublishedSeed => "otp_seed",
            ConfigError::Lifetime(_) => "otp_step",
            ConfigError::Digits(_) => "otp_digits",
            ConfigError::Step(_) => "otp_step",
            ConfigError::Skew(_) => "otp_skew",
            ConfigError::CacheSize => "token_replay_cache_size",
            ConfigError::UserQuota => "token_replay_user_quota",
            ConfigError::NonceDigits(_) => "token_nonce_digits",
            ConfigError::Host => "host",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = self.option();
        match self {
            ConfigError::MissingSecret => write!(f, "{opt} is not set (set token_secret or token_secret_file)"),
            ConfigError::EmptySecret => write!(f, "{opt} must not be empty"),
            ConfigError::WeakSecret(n) => write!(
                f,
                "{opt} must be at least {} bytes, not {n}: anyone holding one token can search for a short secret offline (make one with hmac-token keygen)",
                crate::secret::MIN_SECRET_LEN
            ),
            ConfigError::PublishedSecret | ConfigError::PublishedSeed => write!(
                f,
                "{opt} is an example value printed in documentation, so anyone can mint tokens with it; make your own with hmac-token keygen"
            ),
            ConfigError::Lifetime(secs) => write!(
                f,
                "otp_step × (2 × otp_skew + 1) is {secs} s, longer than the {} s a token may live (the replay cache must remember every used token that long, and a stolen token works that long); shorten otp_step or otp_skew, or set token_allow_long_lifetime = true",
                crate::token::MAX_LIFETIME
            ),
            ConfigError::MissingSeed => write!(f, "{opt} is not set (set otp_seed or otp_seed_file)"),
            ConfigError::SeedNotBase32 => write!(f, "{opt} is not valid base32 (RFC 4648 alphabet A-Z and 2-7, padding optional)"),
            ConfigError::Digits(d) => write!(f, "{opt} must be 6, 7 or 8, not {d}"),
            ConfigError::Step(s) => write!(f, "{opt} must be between 1 and 86400 seconds, not {s}"),
            ConfigError::Skew(s) => write!(f, "{opt} must be between 0 and {}, not {s}", crate::totp::MAX_SKEW),
            ConfigError::CacheSize | ConfigError::UserQuota => write!(f, "{opt} must be at least 1"),
            ConfigError::NonceDigits(n) => {
                let r = crate::token::NONCE_DIGITS;
                write!(f, "{opt} must be between {} and {}, not {n} (the number of nonce digits your web app puts after the OTP)", r.start(), r.end())
            }
            ConfigError::Host => write!(f, "the host name must be 1 to 1023 bytes"),
        }
    }
}

impl std::error::Error for ConfigError {}

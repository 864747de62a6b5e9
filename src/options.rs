//! Every option's default and accepted range, in one place: the verifier and the TOTP check them,
//! the error messages quote them, the Lua binding hands them to the shims (`native.defaults`,
//! `native.limits`) and the CLI uses them as its own defaults. Names are `prosody.cfg.lua`'s.

use core::ops::RangeInclusive;

/// `otp_digits`: digits of the OTP.
pub const OTP_DIGITS: RangeInclusive<u32> = 6..=8;
/// Default `otp_digits` (collective.converse's).
pub const DEFAULT_OTP_DIGITS: u32 = 8;
/// `otp_step`: seconds per OTP step, at most a day.
pub const OTP_STEP: RangeInclusive<u64> = 1..=86_400;
/// Default `otp_step` (RFC 6238's).
pub const DEFAULT_OTP_STEP: u64 = 30;
/// `otp_skew`: steps either side of the current one that are accepted.
pub const OTP_SKEW: RangeInclusive<u64> = 0..=10;
/// Default `otp_skew`.
pub const DEFAULT_OTP_SKEW: u64 = 1;

/// `token_nonce_digits`. The nonce only has to make two tokens for one user in one OTP window
/// differ (the replay cache refuses a repeat): 16 digits are 53 bits, so a web app would need about
/// 10^8 tokens for one user within one window before two collide by chance. Above 64 digits nothing
/// is gained and the SASL message grows toward Prosody's pre-login stanza limit.
pub const NONCE_DIGITS: RangeInclusive<usize> = 16..=64;
/// Default `token_nonce_digits`: what collective.converse, mod_auth_token's README and our CLI mint.
pub const DEFAULT_NONCE_DIGITS: usize = 32;

/// The longest a token may be accepted for, `otp_step × (2 × otp_skew + 1)` seconds, unless
/// `token_allow_long_lifetime` is set: a stolen token is good that long, and the replay cache must
/// hold every used token for that long (at the login rate, that is its size). Fifteen minutes is
/// ten times the default (90 s) and covers a web app whose clock is minutes off.
pub const MAX_LIFETIME: u64 = 900;

/// The shortest accepted `token_secret`. Every user holds a (message, MAC) pair for it, so a short
/// secret can be searched for offline; 16 bytes is the floor, 32 random bytes the advice.
pub const MIN_SECRET_LEN: usize = 16;
/// The secret length below which the module warns at load (what `hmac-token keygen` makes).
pub const ADVISED_SECRET_LEN: usize = 32;

/// Default `token_replay_cache_size`: used tokens remembered while valid. An entry lives at most
/// `otp_step × (2 × otp_skew + 1 + CLOCK_BACK_TOLERANCE)` s (150 s with the defaults; ~105 s on
/// average for a token used as soon as it is minted), so a sustained login rate R keeps up to
/// R × 150 entries live. One Prosody core served up to ~900 logins/s in the benchmark's fastest
/// storms (docs/benchmarks.md, sections 6 and 7): up to ~135 000 entries, more than a cap of 100 000
/// holds. A million leaves 7× that margin at the defaults (longer lifetimes need proportionally
/// more; entries restored after a restart count too).
/// Memory is allocated as the cache fills: ~100 bytes per live entry, ~100 MB if it ever fills.
pub const DEFAULT_REPLAY_CACHE_SIZE: usize = 1_000_000;
/// Default `token_replay_user_quota`: live entries one account may hold.
pub const DEFAULT_REPLAY_USER_QUOTA: usize = 100;

/// Default `token_max_failures`: failed token logins one stream may make (the shim counts them).
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// Default `token_max_failures_per_address`: failed token logins from one client address, across
/// its streams, that get a log line in a minute (`crate::failures`). Four streams' worth: more than
/// fail2ban's shipped `maxretry`, far fewer than the 174 a second one client wrote by opening a
/// new BOSH session every five failures.
pub const DEFAULT_MAX_FAILURES_PER_ADDRESS: u32 = 20;
/// `token_user_exists`: which accounts exist, `"seen"` (logged in once) or `"any"`.
pub const USER_EXISTS: [&str; 2] = ["seen", "any"];
/// Default `token_user_exists`.
pub const DEFAULT_USER_EXISTS: &str = "seen";

/// The host name's length limit (RFC 7622: a JID part is at most 1023 bytes).
pub const HOST_LEN: RangeInclusive<usize> = 1..=crate::jid::MAX_PART;

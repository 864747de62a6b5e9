//! The two error families of the core.
//!
//! [`Reject`] is why a login was refused. It is deliberately coarse: it never says which byte of a
//! signature or which OTP window failed. [`ConfigError`] is why a configuration was refused; it names
//! the option and never the secret.

use core::fmt;
use std::borrow::Cow;

use crate::options;

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
    /// The signature is good but the OTP matches no step that the clock search covers within
    /// [`crate::verifier::DIAGNOSIS_RANGE`] of now (see [`crate::verifier::search_plan`]): the token was minted with another `otp_seed` (or `otp_step`), or by a clock more than
    /// a day off. Told apart from [`Reject::Expired`] only when the search ran (see
    /// [`crate::verifier::DIAGNOSIS_STEPS_PER_SECOND`]); otherwise the token is refused as `Expired`.
    OtpMismatch,
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
    /// The token is authentic but belongs to an OTP step that could have been accepted before the
    /// server last stopped without saving its replay cache (a crash, or a saved state that failed
    /// its check): it may be a replay, so it is refused until the startup quarantine has passed
    /// ([`crate::replay_state`]). Also every token once the replay state has been saved for a stop.
    /// The server's own trouble, retried like `cache-full`.
    UncleanRestart,
    /// A second SASL exchange on a session that is already logged in (mod_sasl2 allows one): it
    /// would split the session between two users. Decided by the Prosody glue, which has sessions.
    AlreadyAuthenticated,
    /// `test_password` (a bearer use of the whole token) while no bearer mechanism is offered.
    /// Decided by the Prosody glue.
    BearerDisabled,
    /// The stream has used up `token_max_failures` and is being closed. Decided by the Prosody glue.
    TooManyFailures,
    /// The token is good but the account is disabled (Prosody 13's `user disable`). Decided by the
    /// Prosody glue, after verification: an unauthenticated client never learns it.
    AccountDisabled,
    /// The token is authentic but its OTP step starts at or before the time the web app signed the
    /// user out (docs/signout.md): `step ≤ floor(signed_out_at / otp_step)`.
    SignedOut,
}

impl Reject {
    /// Every reason, in a fixed order (used for metrics).
    pub const ALL: [Reject; 16] = [
        Reject::Malformed,
        Reject::BadSignature,
        Reject::Expired,
        Reject::OtpMismatch,
        Reject::Replayed,
        Reject::WrongHost,
        Reject::InvalidAuthzid,
        Reject::CacheFull,
        Reject::QuotaExceeded,
        Reject::Internal,
        Reject::UncleanRestart,
        Reject::AlreadyAuthenticated,
        Reject::BearerDisabled,
        Reject::TooManyFailures,
        Reject::AccountDisabled,
        Reject::SignedOut,
    ];

    /// Stable, log-friendly name of the reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::BadSignature => "bad-signature",
            Reject::Expired => "expired",
            Reject::OtpMismatch => "otp-mismatch",
            Reject::Replayed => "replayed",
            Reject::WrongHost => "wrong-host",
            Reject::InvalidAuthzid => "invalid-authzid",
            Reject::CacheFull => "cache-full",
            Reject::QuotaExceeded => "quota-exceeded",
            Reject::Internal => "internal-error",
            Reject::AlreadyAuthenticated => "already-authenticated",
            Reject::BearerDisabled => "bearer-disabled",
            Reject::TooManyFailures => "too-many-failures",
            Reject::AccountDisabled => "account-disabled",
            Reject::UncleanRestart => "unclean-restart",
            Reject::SignedOut => "signed-out",
        }
    }

    /// The SASL condition (RFC 6120 §6.5) a client is sent. Coarse on purpose: every way a token
    /// can be wrong is `not-authorized`, except the two a client acts on differently (a malformed
    /// message is a client bug; an expired token means fetching a new one) and the fail-closed
    /// refusals that are worth retrying later.
    pub const fn condition(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed-request",
            Reject::BadSignature
            | Reject::OtpMismatch
            | Reject::Replayed
            | Reject::WrongHost
            | Reject::AlreadyAuthenticated
            | Reject::BearerDisabled
            | Reject::TooManyFailures
            | Reject::SignedOut => "not-authorized",
            Reject::InvalidAuthzid => "invalid-authzid",
            Reject::AccountDisabled => "account-disabled",
            Reject::Expired => "credentials-expired",
            Reject::CacheFull | Reject::QuotaExceeded | Reject::Internal | Reject::UncleanRestart => "temporary-auth-failure",
        }
    }

    /// The human-readable text sent with [`Reject::condition`], where there is one: the condition's
    /// own text, except for [`Reject::OtpMismatch`].
    ///
    /// `OtpMismatch` is the one reason whose text says more than its condition. Only a client that
    /// holds a correctly signed token reaches it: its MAC (PLAIN, X-TOKEN) or its SASL-HMAC proof
    /// has verified, so the client already knows its token is genuine (an `expired` answer says as
    /// much). The MAC covers the OTP, so such a client cannot change the code to probe the seed;
    /// whoever can choose codes holds `token_secret` and can log in by trying codes anyway. What the
    /// text adds is that the site which minted the token and this server disagree on the seed,
    /// which is what the person reading it has to fix.
    pub const fn text(self) -> Option<&'static str> {
        match self {
            Reject::OtpMismatch => Some(OTP_MISMATCH_TEXT),
            _ => condition_text(self.condition()),
        }
    }
}

/// The text sent with [`Reject::OtpMismatch`] (clients/converse/token-reconnect.js recognises it by
/// the word `otp_seed`).
pub const OTP_MISMATCH_TEXT: &str =
    "The token is signed correctly, but its one-time code matches no time within a day of this server's \
clock: the otp_seed (or otp_step) of the site that issued it differs from this server's.";

/// The text sent with a SASL condition, where there is one (the same for every reason that maps to
/// it, so the text says no more than the condition; [`Reject::text`] says why `OtpMismatch` differs).
pub const fn condition_text(condition: &str) -> Option<&'static str> {
    match condition.as_bytes() {
        b"not-authorized" => Some("Unable to authorize you with the authentication credentials you've sent."),
        b"credentials-expired" => Some("The token has expired; fetch a new one."),
        b"temporary-auth-failure" => Some("Please try again later."),
        b"account-disabled" => Some("This account is disabled."),
        _ => None,
    }
}

impl Reject {
    /// Whether the refusal is the server's own trouble (its replay cache, a crash, no randomness),
    /// not something the client did: such refusals are not charged to the client's address, and
    /// the fail2ban filter leaves them out. One client behind a busy NAT must not use up everyone's
    /// budget by retrying after a crash. Every one of them but `internal-error` needs a token the
    /// web application signed, so a client cannot make them up to flood the log.
    pub const fn is_servers_trouble(self) -> bool {
        matches!(self, Reject::CacheFull | Reject::QuotaExceeded | Reject::Internal | Reject::UncleanRestart)
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
    /// `otp_step × (2 × otp_skew + 1)` (seconds) is above [`crate::options::MAX_LIFETIME`].
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
    /// `token_nonce_digits` outside [`crate::options::NONCE_DIGITS`].
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

/// The words a [`ConfigError`] message uses for the settings. The defaults are `prosody.cfg.lua`'s
/// option names ([`ConfigNames`], what `Display` uses); a front end with its own names (the CLI's
/// flags and environment variables) implements this so that its messages name what its user types.
pub trait SettingNames {
    /// How `option` (a `prosody.cfg.lua` option name) is given.
    fn name(&self, option: &'static str) -> Cow<'static, str> {
        Cow::Borrowed(option)
    }
    /// How to give either a value option or the file that holds it.
    fn either(&self, option: &'static str, file_option: &'static str) -> String {
        format!("set {} or {}", self.name(option), self.name(file_option))
    }
    /// How to turn a boolean option on.
    fn enable(&self, option: &'static str) -> String {
        format!("set {} = true", self.name(option))
    }
}

/// `prosody.cfg.lua`'s option names.
pub struct ConfigNames;
impl SettingNames for ConfigNames {}

impl ConfigError {
    /// The message, naming settings the way `names` does (never a secret's value).
    pub fn describe(&self, names: &dyn SettingNames) -> String {
        let opt = names.name(self.option());
        match self {
            ConfigError::MissingSecret => format!("{opt} is not set ({})", names.either("token_secret", "token_secret_file")),
            ConfigError::EmptySecret => format!("{opt} must not be empty"),
            ConfigError::WeakSecret(n) => format!(
                "{opt} must be at least {} bytes, not {n}: anyone holding one token can search for a short secret offline (make one with hmac-token keygen)",
                options::MIN_SECRET_LEN
            ),
            ConfigError::PublishedSecret | ConfigError::PublishedSeed => format!(
                "{opt} is an example value printed in documentation, so anyone can mint tokens with it; make your own with hmac-token keygen"
            ),
            ConfigError::Lifetime(secs) => {
                let (step, skew) = (names.name("otp_step"), names.name("otp_skew"));
                format!(
                    "{step} × (2 × {skew} + 1) is {secs} s, longer than the {} s a token may live (the replay cache must remember every used token that long, and a stolen token works that long); shorten {step} or {skew}, or {}",
                    options::MAX_LIFETIME,
                    names.enable("token_allow_long_lifetime")
                )
            }
            ConfigError::MissingSeed => format!("{opt} is not set ({})", names.either("otp_seed", "otp_seed_file")),
            ConfigError::SeedNotBase32 => format!("{opt} is not valid base32 (RFC 4648 alphabet A-Z and 2-7, padding optional)"),
            ConfigError::Digits(d) => {
                let r = options::OTP_DIGITS;
                format!("{opt} must be between {} and {}, not {d}", r.start(), r.end())
            }
            ConfigError::Step(s) => {
                let r = options::OTP_STEP;
                format!("{opt} must be between {} and {} seconds, not {s}", r.start(), r.end())
            }
            ConfigError::Skew(s) => {
                let r = options::OTP_SKEW;
                format!("{opt} must be between {} and {}, not {s}", r.start(), r.end())
            }
            ConfigError::CacheSize | ConfigError::UserQuota => format!("{opt} must be at least 1"),
            ConfigError::NonceDigits(n) => {
                let r = options::NONCE_DIGITS;
                format!(
                    "{opt} must be between {} and {}, not {n} (the number of nonce digits your web app puts after the OTP)",
                    r.start(),
                    r.end()
                )
            }
            ConfigError::Host => {
                let r = options::HOST_LEN;
                format!("the host name must be {} to {} bytes", r.start(), r.end())
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(&ConfigNames))
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_say_no_more_than_the_condition_but_for_otp_mismatch() {
        for r in Reject::ALL {
            // the names are what the shims and the metrics tell reasons apart by
            assert_eq!(Reject::ALL.iter().filter(|o| o.as_str() == r.as_str()).count(), 1, "{r}");
            if r == Reject::OtpMismatch {
                assert_eq!(r.condition(), "not-authorized");
                assert_ne!(r.text(), condition_text(r.condition()));
                assert!(r.text().is_some_and(|t| t.contains("otp_seed")));
            } else {
                assert_eq!(r.text(), condition_text(r.condition()), "{r}");
            }
        }
    }

    #[test]
    fn the_servers_trouble_is_what_a_client_is_told_to_retry() {
        let servers: Vec<&str> = Reject::ALL.into_iter().filter(|r| r.is_servers_trouble()).map(Reject::as_str).collect();
        assert_eq!(servers, ["cache-full", "quota-exceeded", "internal-error", "unclean-restart"]);
        for r in Reject::ALL {
            assert_eq!(r.is_servers_trouble(), r.condition() == "temporary-auth-failure", "{r}");
        }
    }
}

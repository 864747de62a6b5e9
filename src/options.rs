//! Every option, in one place: [`OPTIONS`] says what each `prosody.cfg.lua` option is (its type,
//! default, accepted range, who reads it, the CLI's flag for it), and drives the Lua binding
//! (`native.defaults`, `native.limits`, `native.options`, the settings `native.verifier{}` reads)
//! and the CLI's flag names. The constants below are the figures the entries, the verifier and the
//! error messages share.

use core::ops::RangeInclusive;

use crate::verifier::{Settings, Verifier};

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
/// Failed logins without a client address (`test_password` from mod_rest and other callers with
/// no session) that get a log line in a minute. All such callers share this one budget, so it is not
/// one address's (`token_max_failures_per_address`, which an admin may set to 1): it is as many as
/// the default per-address budget, and like it bounds the log, never a login.
pub const SESSIONLESS_FAILURES_PER_MINUTE: u32 = 20;
/// `token_user_exists`: which accounts exist, `"seen"` (logged in once) or `"any"`.
pub const USER_EXISTS: [&str; 2] = ["seen", "any"];
/// Default `token_user_exists`.
pub const DEFAULT_USER_EXISTS: &str = "seen";

/// The host name's length limit (RFC 7622: a JID part is at most 1023 bytes).
pub const HOST_LEN: RangeInclusive<usize> = 1..=crate::jid::MAX_PART;

/// The kind of value an option takes in `prosody.cfg.lua` (`native.options[name].type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// One of [`Limit::Choices`].
    Choice,
    /// A set of SASL mechanism names.
    Mechanisms,
    /// A secret: a string, or a list of strings.
    Secret,
    /// A path (relative to the config file's directory), or a list of paths.
    Path,
}

impl Type {
    /// The name Lua sees.
    pub const fn name(self) -> &'static str {
        match self {
            Type::Integer => "integer",
            Type::Boolean => "boolean",
            Type::Choice => "choice",
            Type::Mechanisms => "mechanisms",
            Type::Secret => "secret",
            Type::Path => "path",
        }
    }
}

/// An option's default (`native.defaults[name]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// None in the library: required, or decided where the option is read.
    Unset,
    /// A number.
    Integer(u64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    Text(&'static str),
    /// Every mechanism the library implements (`sasl::Mechanism::ALL`).
    AllMechanisms,
}

/// What values are accepted (`native.limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No bound exported.
    None,
    /// `{ min, max }` under the option's name.
    Range(u64, u64),
    /// The least value, as `<name>_min`.
    Min(u64),
    /// The accepted strings, a list under the option's name.
    Choices(&'static [&'static str]),
}

/// Who reads an option.
#[derive(Clone, Copy)]
pub enum Reader {
    /// A key of `native.verifier{}`'s table that mod_auth_hmac passes through as configured
    /// (`module:get_option(name)`); the binding stores it in [`Settings`] with this setter.
    Verifier(Setter),
    /// A key of `native.verifier{}`'s table that mod_auth_hmac prepares itself (secrets from
    /// values and files), read by name in the binding.
    VerifierByHand,
    /// Read by a shim only, with its default from `native.defaults`.
    Module,
}

/// How the binding stores a verifier option in [`Settings`].
#[derive(Clone, Copy)]
pub enum Setter {
    /// A non-negative integer option.
    Integer(fn(&mut Settings, u64)),
    /// A boolean option.
    Boolean(fn(&mut Settings, bool)),
}

/// One `prosody.cfg.lua` option.
#[derive(Clone, Copy)]
pub struct Opt {
    /// The name an admin writes.
    pub name: &'static str,
    /// Its kind of value.
    pub kind: Type,
    /// Its default.
    pub default: DefaultValue,
    /// What is accepted.
    pub limit: Limit,
    /// Who reads it.
    pub reader: Reader,
    /// The `hmac-token` flag that sets it (`--<flag>`), if the CLI has one.
    pub cli_flag: Option<&'static str>,
    /// The environment variable the CLI also reads it from.
    pub cli_env: Option<&'static str>,
    /// Its value in a verifier, as in effect (`v:stats()` shows it under the option's name).
    pub in_effect: Option<fn(&Verifier) -> Value>,
}

impl core::fmt::Debug for Opt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

const fn opt(name: &'static str, kind: Type, default: DefaultValue, limit: Limit, reader: Reader) -> Opt {
    Opt { name, kind, default, limit, reader, cli_flag: None, cli_env: None, in_effect: None }
}

impl Opt {
    const fn cli(mut self, flag: &'static str, env: Option<&'static str>) -> Opt {
        self.cli_flag = Some(flag);
        self.cli_env = env;
        self
    }

    const fn shown(mut self, value: fn(&Verifier) -> Value) -> Opt {
        self.in_effect = Some(value);
        self
    }

    /// Whether `native.verifier{}` reads it.
    pub const fn verifier_reads(&self) -> bool {
        matches!(self.reader, Reader::Verifier(_) | Reader::VerifierByHand)
    }
}

/// Every option this project's modules read (Prosody's own, such as `insecure_sasl_mechanisms`, are
/// not here). A new option is one entry here plus the code that uses it; the binding, the CLI's
/// flag names, the LuaLS stub's check and the README's check all follow this table.
pub const OPTIONS: &[Opt] = &[
    opt("token_secret", Type::Secret, DefaultValue::Unset, Limit::None, Reader::VerifierByHand)
        .cli("secret", Some("TOKEN_SECRET")),
    opt("token_secret_file", Type::Path, DefaultValue::Unset, Limit::None, Reader::Module)
        .cli("secret-file", Some("TOKEN_SECRET_FILE")),
    opt("otp_seed", Type::Secret, DefaultValue::Unset, Limit::None, Reader::VerifierByHand).cli("otp-seed", Some("OTP_SEED")),
    opt("otp_seed_file", Type::Path, DefaultValue::Unset, Limit::None, Reader::Module)
        .cli("otp-seed-file", Some("OTP_SEED_FILE")),
    opt(
        "otp_digits",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_OTP_DIGITS as u64),
        Limit::Range(*OTP_DIGITS.start() as u64, *OTP_DIGITS.end() as u64),
        Reader::Verifier(Setter::Integer(|s, v| s.digits = u32::try_from(v).unwrap_or(u32::MAX))),
    )
    .cli("digits", None)
    .shown(|v| Value::Integer(v.otp().digits() as u64)),
    opt(
        "otp_step",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_OTP_STEP),
        Limit::Range(*OTP_STEP.start(), *OTP_STEP.end()),
        Reader::Verifier(Setter::Integer(|s, v| s.step = v)),
    )
    .cli("step", None)
    .shown(|v| Value::Integer(v.otp().step_seconds())),
    opt(
        "otp_skew",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_OTP_SKEW),
        Limit::Range(*OTP_SKEW.start(), *OTP_SKEW.end()),
        Reader::Verifier(Setter::Integer(|s, v| s.skew = v)),
    )
    .cli("skew", None)
    .shown(|v| Value::Integer(v.otp().skew())),
    opt(
        "token_nonce_digits",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_NONCE_DIGITS as u64),
        Limit::Range(*NONCE_DIGITS.start() as u64, *NONCE_DIGITS.end() as u64),
        Reader::Verifier(Setter::Integer(|s, v| s.nonce_digits = usize::try_from(v).unwrap_or(usize::MAX))),
    )
    .cli("nonce-digits", Some("TOKEN_NONCE_DIGITS"))
    .shown(|v| Value::Integer(v.layout().nonce_digits as u64)),
    opt(
        "token_replay_cache_size",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_REPLAY_CACHE_SIZE as u64),
        Limit::None,
        Reader::Verifier(Setter::Integer(|s, v| s.replay_cache_size = usize::try_from(v).unwrap_or(usize::MAX))),
    )
    .shown(|v| Value::Integer(v.replay_stats().1 as u64)),
    opt(
        "token_replay_user_quota",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_REPLAY_USER_QUOTA as u64),
        Limit::None,
        Reader::Verifier(Setter::Integer(|s, v| s.replay_user_quota = usize::try_from(v).unwrap_or(usize::MAX))),
    )
    .shown(|v| Value::Integer(v.replay_stats().2 as u64)),
    opt(
        "token_jid_as_sent",
        Type::Boolean,
        DefaultValue::Boolean(false),
        Limit::None,
        Reader::Verifier(Setter::Boolean(|s, v| s.jid_as_sent = v)),
    )
    .cli("jid-as-sent", Some("TOKEN_JID_AS_SENT"))
    .shown(|v| Value::Boolean(v.jid_as_sent())),
    opt(
        "token_allow_weak_secrets",
        Type::Boolean,
        DefaultValue::Boolean(false),
        Limit::None,
        Reader::Verifier(Setter::Boolean(|s, v| s.allow_weak_secrets = v)),
    )
    .cli("allow-weak-secrets", Some("TOKEN_ALLOW_WEAK_SECRETS")),
    opt(
        "token_allow_long_lifetime",
        Type::Boolean,
        DefaultValue::Boolean(false),
        Limit::None,
        Reader::Verifier(Setter::Boolean(|s, v| s.allow_long_lifetime = v)),
    )
    .cli("allow-long-lifetime", None),
    opt("token_mechanisms", Type::Mechanisms, DefaultValue::AllMechanisms, Limit::None, Reader::Module),
    opt("token_max_failures", Type::Integer, DefaultValue::Integer(DEFAULT_MAX_FAILURES as u64), Limit::Min(1), Reader::Module),
    opt(
        "token_max_failures_per_address",
        Type::Integer,
        DefaultValue::Integer(DEFAULT_MAX_FAILURES_PER_ADDRESS as u64),
        Limit::None,
        Reader::Module,
    ),
    // on while a bearer mechanism is offered: mod_auth_hmac decides
    opt("token_test_password", Type::Boolean, DefaultValue::Unset, Limit::None, Reader::Module),
    // the sign-out endpoint (docs/signout.md): mod_auth_hmac serves it only when this is on
    opt("token_signout", Type::Boolean, DefaultValue::Boolean(false), Limit::None, Reader::Module),
    opt("token_user_exists", Type::Choice, DefaultValue::Text(DEFAULT_USER_EXISTS), Limit::Choices(&USER_EXISTS), Reader::Module),
    opt("auth_hmac_library", Type::Path, DefaultValue::Unset, Limit::None, Reader::Module),
];

/// The option named `name`.
pub fn find(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The CLI flag (without `--`) of the option `name`. Panics for an option the CLI does not take:
/// `hmac-token`'s flags are declared with it, so a wrong name fails every run of the CLI and its tests.
pub fn cli_flag(name: &str) -> &'static str {
    find(name).and_then(|o| o.cli_flag).unwrap_or_else(|| panic!("options::OPTIONS gives {name} no CLI flag"))
}

/// The [`Settings`] of the verifier options in `value` (by name; `None`: unset, the default), or
/// the name of the first one whose value is of the wrong kind with what was expected. The one
/// reading of the numeric and boolean options, for the binding and any other front end.
pub fn settings_from<E>(mut value: impl FnMut(&Opt) -> Result<Option<Value>, E>) -> Result<Settings, OptionError<E>> {
    let mut settings = Settings::default();
    for o in OPTIONS {
        let Reader::Verifier(setter) = o.reader else { continue };
        match (setter, value(o).map_err(OptionError::Read)?) {
            (_, None) => {}
            (Setter::Integer(set), Some(Value::Integer(v))) => set(&mut settings, v),
            (Setter::Boolean(set), Some(Value::Boolean(v))) => set(&mut settings, v),
            (Setter::Integer(_), Some(_)) => return Err(OptionError::Kind(format!("{} must be a non-negative integer", o.name))),
            (Setter::Boolean(_), Some(_)) => return Err(OptionError::Kind(format!("{} must be true or false", o.name))),
        }
    }
    Ok(settings)
}

/// A configured value, as a front end read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// A non-negative whole number.
    Integer(u64),
    /// A boolean.
    Boolean(bool),
    /// Anything else (a string, a table, a negative or fractional number).
    Other,
}

/// Why [`settings_from`] refused a configuration.
#[derive(Debug, PartialEq, Eq)]
pub enum OptionError<E> {
    /// The front end could not read the value (its own error).
    Read(E),
    /// A value of the wrong kind: the message names the option, never its value.
    Kind(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prosodys_style() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(OPTIONS[..i].iter().all(|p| p.name != o.name), "{o:?} twice");
            assert!(o.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{o:?}");
            if let Some(flag) = o.cli_flag {
                assert!(OPTIONS[..i].iter().all(|p| p.cli_flag != Some(flag)), "--{flag} twice");
            }
        }
    }

    #[test]
    fn every_setting_is_an_option_and_defaults_agree() {
        // the table's defaults are the verifier's, and each setter sets a field of its own: a
        // Settings field no option sets stays at its default, which this catches by changing them all
        let unset = settings_from(|_| Ok::<_, ()>(None)).unwrap();
        assert_eq!(unset, Settings::default());
        for o in OPTIONS {
            if let (Reader::Verifier(_), DefaultValue::Integer(d)) = (o.reader, o.default) {
                let from_table = settings_from(|p| Ok::<_, ()>((p.name == o.name).then_some(Value::Integer(d)))).unwrap();
                assert_eq!(from_table, Settings::default(), "{o:?}: the table's default is not the verifier's");
            }
            if let (Reader::Verifier(_), DefaultValue::Boolean(d)) = (o.reader, o.default) {
                let from_table = settings_from(|p| Ok::<_, ()>((p.name == o.name).then_some(Value::Boolean(d)))).unwrap();
                assert_eq!(from_table, Settings::default(), "{o:?}: the table's default is not the verifier's");
            }
        }
        let all = settings_from(|o| {
            Ok::<_, ()>(match o.reader {
                Reader::Verifier(Setter::Integer(_)) => Some(Value::Integer(7)),
                Reader::Verifier(Setter::Boolean(_)) => Some(Value::Boolean(true)),
                _ => None,
            })
        })
        .unwrap();
        let Settings {
            digits,
            step,
            skew,
            replay_cache_size,
            replay_user_quota,
            nonce_digits,
            jid_as_sent,
            allow_weak_secrets,
            allow_long_lifetime,
        } = all;
        assert_eq!((digits, step, skew, replay_cache_size, replay_user_quota, nonce_digits), (7, 7, 7, 7, 7, 7));
        assert!(jid_as_sent && allow_weak_secrets && allow_long_lifetime);
    }

    /// `v:stats()` shows the verifier's options under their own names, each as configured
    #[test]
    fn a_verifier_shows_its_options_as_configured() {
        let configured = |o: &Opt| match o.name {
            "otp_digits" => Some(Value::Integer(7)),
            "otp_step" => Some(Value::Integer(60)),
            "otp_skew" => Some(Value::Integer(2)),
            "token_nonce_digits" => Some(Value::Integer(20)),
            "token_replay_cache_size" => Some(Value::Integer(50)),
            "token_replay_user_quota" => Some(Value::Integer(5)),
            "token_jid_as_sent" => Some(Value::Boolean(true)),
            _ => None,
        };
        let settings = settings_from(|o| Ok::<_, ()>(configured(o))).unwrap();
        let secret = crate::SecretBytes::new(b"a secret of twenty-odd bytes".to_vec());
        let seed = crate::totp::decode_seed("GEZDGNBVGY3TQOJQGEZDGNBV").unwrap();
        let v = Verifier::new(vec![secret], seed, settings, Some("example.org")).unwrap();
        let shown: Vec<_> = v.options_in_effect().collect();
        assert_eq!(shown.len(), 7, "{shown:?}");
        for (name, value) in shown {
            let o = find(name).unwrap();
            assert!(matches!(o.reader, Reader::Verifier(_)), "{name} is not a verifier option");
            assert_eq!(Some(value), configured(o), "{name}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_kind_names_the_option() {
        let err = settings_from(|o| Ok::<_, ()>((o.name == "otp_skew").then_some(Value::Boolean(true)))).unwrap_err();
        assert_eq!(err, OptionError::Kind("otp_skew must be a non-negative integer".into()));
        let err = settings_from(|o| Ok::<_, ()>((o.name == "token_jid_as_sent").then_some(Value::Other))).unwrap_err();
        assert_eq!(err, OptionError::Kind("token_jid_as_sent must be true or false".into()));
    }

    #[test]
    fn limits_are_the_ranges_the_verifier_checks() {
        assert_eq!(find("otp_digits").unwrap().limit, Limit::Range(6, 8));
        assert_eq!(find("token_nonce_digits").unwrap().limit, Limit::Range(16, 64));
        assert_eq!(find("token_user_exists").unwrap().limit, Limit::Choices(&["seen", "any"]));
        assert_eq!(cli_flag("otp_digits"), "digits");
        assert!(std::panic::catch_unwind(|| cli_flag("token_replay_cache_size")).is_err());
    }
}

//! `hmac-token`: generate secrets, mint and verify tokens without Lua or Prosody.
//!
//! Secrets come from flags, files or the environment (TOKEN_SECRET / OTP_SEED and their _FILE
//! variants), so they need not appear on a command line.
//!
//! JIDs follow the server's rule: the localpart is nodeprep'd and the domain nameprep'd (lower
//! case), `mint` signs that form, and `verify` accepts what a client logging in as the given JID
//! would be accepted with. Where this tool cannot prepare a name exactly as Prosody does
//! (characters unassigned in Unicode 3.2), it refuses: it may refuse what the server accepts, never
//! the reverse.

#![forbid(unsafe_code)]

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, CommandFactory, Parser, Subcommand};
use prosody_auth_hmac::identity::check_username;
use prosody_auth_hmac::options::{self, DEFAULT_NONCE_DIGITS};
use prosody_auth_hmac::random::{random_bytes, random_digits};
use prosody_auth_hmac::secret_file;
use prosody_auth_hmac::totp::{decode_seed, encode_seed};
use prosody_auth_hmac::{ConfigError, Reject, SecretBytes, SettingNames, TokenChecker, TokenSettings};

#[derive(Parser)]
#[command(name = "hmac-token", version, about = "Mint and verify Prosody HMAC login tokens (collective.converse format)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new token_secret and otp_seed (as prosody.cfg.lua lines, or JSON), or write them to
    /// two files and print the config lines that read them.
    Keygen {
        /// Print {"token_secret": ..., "otp_seed": ...}.
        #[arg(long)]
        json: bool,
        /// Write DIR/token_secret and DIR/otp_seed (mode 0640; as root, group prosody, Debian's
        /// convention) instead of printing the values. Existing files are never overwritten.
        #[arg(long, value_name = "DIR", conflicts_with = "json")]
        write: Option<std::path::PathBuf>,
        /// The group that may read the written files (when run as root).
        #[arg(long, default_value = "prosody", requires = "write")]
        group: String,
    },
    /// Mint a token for a bare JID (signed in its nodeprep'd form, the one Prosody verifies).
    Mint {
        /// The bare JID, e.g. alice@example.org.
        #[arg(long)]
        jid: String,
        /// Print {"jid": ..., "password": ...}, the body a converse.js credentials_url returns.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        keys: Keys,
    },
    /// Print the JID the server logs a client in as (nodeprep'd localpart, nameprep'd domain), one
    /// per JID given, or per line of standard input with `-`; `!` when it would be refused.
    Jid {
        /// Bare JIDs, or `-` to read them from standard input.
        #[arg(required = true)]
        jids: Vec<String>,
    },
    /// Verify a token as Prosody would for a client logging in as --jid (stateless: no replay
    /// cache). Exit status 0 when valid, 1 when refused.
    Verify {
        /// The bare JID the client logs in as.
        #[arg(long)]
        jid: String,
        /// Also accept a signature over the localpart as given, before nodeprep (the server's
        /// token_jid_as_sent).
        #[arg(long = options::cli_flag("token_jid_as_sent"), env = "TOKEN_JID_AS_SENT", value_parser = clap::builder::BoolishValueParser::new())]
        jid_as_sent: bool,
        /// The token; read from standard input when absent.
        #[arg(long)]
        token: Option<String>,
        #[command(flatten)]
        keys: Keys,
    },
    /// Print a signed sign-out request for a bare JID (docs/signout.md): the line to POST to
    /// Prosody's /auth_hmac/signout, which ends the user's sessions and voids their tokens minted
    /// before it. Signed with the first token secret, as mint signs.
    Signout {
        /// The bare JID, e.g. alice@example.org (signed in its nodeprep'd form).
        #[arg(long)]
        jid: String,
        /// Unix time to sign instead of the clock (Prosody accepts it within 60 s of its own).
        #[arg(long)]
        now: Option<u64>,
        /// The request's nonce, 32 digits (random when absent; never reuse one).
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        keys: SecretKeys,
    },
    /// Write the manual pages (hmac-token.1 and one per subcommand) into DIR, rendered from this
    /// definition so they cannot drift from --help. Hidden: the package build's, not a user's.
    #[command(hide = true)]
    Man {
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
}

#[derive(Args)]
struct Keys {
    /// Token secret (repeat for rotation: the first mints, all verify).
    #[arg(long = options::cli_flag("token_secret"), env = "TOKEN_SECRET", hide_env_values = true)]
    secrets: Vec<String>,
    /// File holding the token secret (trailing newline ignored).
    #[arg(long = options::cli_flag("token_secret_file"), env = "TOKEN_SECRET_FILE", hide_env_values = true)]
    secret_file: Option<String>,
    /// Base32 OTP seed.
    #[arg(long = options::cli_flag("otp_seed"), env = "OTP_SEED", hide_env_values = true)]
    otp_seed: Option<String>,
    /// File holding the OTP seed.
    #[arg(long = options::cli_flag("otp_seed_file"), env = "OTP_SEED_FILE", hide_env_values = true)]
    otp_seed_file: Option<String>,
    /// OTP digits.
    #[arg(long = options::cli_flag("otp_digits"), default_value_t = options::DEFAULT_OTP_DIGITS)]
    digits: u32,
    /// OTP step in seconds.
    #[arg(long = options::cli_flag("otp_step"), default_value_t = options::DEFAULT_OTP_STEP)]
    step: u64,
    /// Accepted steps either side of now (verify).
    #[arg(long = options::cli_flag("otp_skew"), default_value_t = options::DEFAULT_OTP_SKEW)]
    skew: u64,
    /// Nonce digits after the OTP (the server's token_nonce_digits).
    #[arg(long = options::cli_flag("token_nonce_digits"), env = "TOKEN_NONCE_DIGITS", default_value_t = DEFAULT_NONCE_DIGITS)]
    nonce_digits: usize,
    /// Unix time to use instead of the clock.
    #[arg(long)]
    now: Option<u64>,
    /// Accept short and published example secrets (the server's token_allow_weak_secrets; for
    /// test vectors only).
    #[arg(long = options::cli_flag("token_allow_weak_secrets"), env = "TOKEN_ALLOW_WEAK_SECRETS", value_parser = clap::builder::BoolishValueParser::new())]
    allow_weak_secrets: bool,
    /// Accept a token lifetime over 15 minutes (the server's token_allow_long_lifetime).
    #[arg(long = options::cli_flag("token_allow_long_lifetime"))]
    allow_long_lifetime: bool,
}

/// The token secrets alone (a sign-out request needs no OTP seed): the same flags and variables as
/// mint's.
#[derive(Args)]
struct SecretKeys {
    /// Token secret (repeat for rotation: the first signs).
    #[arg(long = options::cli_flag("token_secret"), env = "TOKEN_SECRET", hide_env_values = true)]
    secrets: Vec<String>,
    /// File holding the token secret (trailing newline ignored).
    #[arg(long = options::cli_flag("token_secret_file"), env = "TOKEN_SECRET_FILE", hide_env_values = true)]
    secret_file: Option<String>,
    /// Accept short and published example secrets (the server's token_allow_weak_secrets; for
    /// test vectors only).
    #[arg(long = options::cli_flag("token_allow_weak_secrets"), env = "TOKEN_ALLOW_WEAK_SECRETS", value_parser = clap::builder::BoolishValueParser::new())]
    allow_weak_secrets: bool,
}

impl SecretKeys {
    fn signout_keys(&self) -> Result<prosody_auth_hmac::signout::SignoutKeys, String> {
        let secrets = token_secrets(&self.secrets, self.secret_file.as_deref())?;
        prosody_auth_hmac::signout::SignoutKeys::from_config(&secrets, self.allow_weak_secrets).map_err(cli_error)
    }
}

/// The token secrets from `--secret` (and TOKEN_SECRET) and then the secret file, in that order.
fn token_secrets(given: &[String], file: Option<&str>) -> Result<Vec<SecretBytes>, String> {
    let mut secrets: Vec<SecretBytes> = given.iter().map(|s| SecretBytes::from_config_str(s)).collect();
    if let Some(f) = file {
        secrets.push(SecretBytes::from_config_str(&read_secret_file("token_secret_file", f)?));
    }
    Ok(secrets)
}

/// The gid of `group` from /etc/group.
fn group_id(group: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == group).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// Creates `path` with `contents` and mode 0640, never replacing an existing file; as root, gives
/// it to `group` so Prosody (which runs in that group) can read it and nobody else.
fn write_secret_file(path: &std::path::Path, contents: &str, group: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| format!("cannot create {shown}: {e} (existing files are never overwritten)"))?;
    // the mode given at creation is masked by the umask: set it outright
    f.set_permissions(std::fs::Permissions::from_mode(0o640)).map_err(|e| format!("cannot chmod {shown}: {e}"))?;
    f.write_all(contents.as_bytes()).and_then(|_| f.write_all(b"\n")).map_err(|e| format!("cannot write {shown}: {e}"))?;
    let owner = f.metadata().map_err(|e| format!("{shown}: {e}"))?.uid();
    if owner == 0 {
        let gid =
            group_id(group).ok_or_else(|| format!("{shown} written, but there is no group {group:?} to give it to (--group)"))?;
        std::os::unix::fs::fchown(&f, Some(0), Some(gid)).map_err(|e| format!("cannot chown {shown}: {e}"))?;
    }
    Ok(())
}

/// The contents of the file `option` (a server option name, shown as the CLI's flag) names, by the
/// module's own rule (trailing line ends dropped; a warning when anyone but its owner and the
/// `prosody` group can read it).
fn read_secret_file(option: &'static str, path: &str) -> Result<String, String> {
    let (data, exposure) = secret_file::read_secret_file(std::path::Path::new(path), group_id("prosody"))
        .map_err(|e| format!("{}: {}", CliNames.name(option), secret_file::read_error(std::path::Path::new(path), path, &e)))?;
    if let Some(exposure) = exposure {
        eprintln!("hmac-token: warning: {path} {exposure}");
    }
    // the secret is the raw bytes of the configured string, as in the server's config
    String::from_utf8(data).map_err(|_| format!("{}: {path:?} is not UTF-8 text", CliNames.name(option)))
}

/// Compatibility ideographs whose decomposition Unicode corrected after 3.2: Prosody (ICU's
/// stringprep, Unicode 3.2 data) and the `stringprep` crate (today's normalisation data) map them
/// differently.
const CORRECTED_AFTER_UNICODE_3_2: [char; 5] = ['\u{2F868}', '\u{2F874}', '\u{2F91F}', '\u{2F95F}', '\u{2F9BF}'];

/// A character this tool cannot prepare exactly as Prosody does: unassigned in Unicode 3.2 (Prosody
/// lets those through unchanged; the crate would normalise them with later data, e.g. U+2090 `ₐ` to
/// `a`, another account), or one of the corrected ideographs.
fn unreproducible(c: char) -> bool {
    stringprep::tables::unassigned_code_point(c) || CORRECTED_AFTER_UNICODE_3_2.contains(&c)
}

/// Prosody's nodeprep (RFC 3920 appendix A), or `None` where this tool cannot be sure to get the
/// same answer as the server: it refuses rather than maps anything it cannot reproduce, so it may
/// refuse a name the server accepts, never call two names one account that the server keeps apart.
/// `tests/integration/test_cli.py` compares it with Prosody's own over every code point.
fn nodeprep(local: &str) -> Option<String> {
    if local.chars().any(unreproducible) {
        return None;
    }
    let prepped = stringprep::nodeprep(local).ok()?.into_owned();
    // Prosody nodepreps a name again when it logs the session in: the result must be a fixed point
    (stringprep::nodeprep(&prepped).ok()?.as_ref() == prepped).then_some(prepped)
}

/// Nameprep for the domain, under the same rule as [`nodeprep`].
fn nameprep(domain: &str) -> Option<String> {
    if domain.chars().any(unreproducible) {
        return None;
    }
    stringprep::nameprep(domain).ok().map(|c| c.into_owned())
}

/// A bare JID as the server sees it: (localpart as given, nodeprep'd localpart, nameprep'd domain).
fn server_jid(jid: &str) -> Result<(&str, String, String), String> {
    let bad = |why: &str| format!("malformed ({jid:?} is not a bare JID the server accepts: {why})");
    let (local, domain) = prosody_auth_hmac::jid::split_bare(jid).map_err(|_| bad("expected localpart@domain"))?;
    let prepped = nodeprep(local)
        .filter(|p| prosody_auth_hmac::jid::check_part(p).is_ok())
        .ok_or_else(|| bad("the localpart fails nodeprep, or has characters this tool cannot prepare exactly as Prosody does"))?;
    let domain = nameprep(domain)
        .filter(|d| prosody_auth_hmac::jid::check_part(d).is_ok())
        .ok_or_else(|| bad("the domain fails nameprep"))?;
    Ok((local, prepped, domain))
}

/// The JID `given` in the form the server verifies, and its domain; `action` names the command for
/// the errors. A name whose localpart nodeprep changes beyond ASCII case is refused: whether the
/// two are one user is the web app's decision, not this tool's.
fn prepared_jid(given: &str, action: &str) -> Result<(String, String), String> {
    let (sent, local, domain) = server_jid(given).map_err(|e| format!("cannot {action} {given:?}: {e}"))?;
    if local != sent.to_ascii_lowercase() {
        return Err(format!(
            "cannot {action} {given:?}: its localpart is the XMPP account {local:?}; {action} {local}@{domain} if that is the same user"
        ));
    }
    let jid = format!("{local}@{domain}");
    if jid != given {
        eprintln!("hmac-token: using {jid} (the form the server verifies), not {given}");
    }
    Ok((jid, domain))
}

/// The CLI's names for the server's options (`options::OPTIONS`' flags and variables), so that an
/// error names what to type here.
struct CliNames;

impl SettingNames for CliNames {
    fn name(&self, option: &'static str) -> std::borrow::Cow<'static, str> {
        match options::find(option).map(|o| (o.cli_flag, o.cli_env)) {
            Some((Some(flag), Some(env))) => format!("--{flag}/{env}").into(),
            Some((Some(flag), None)) => format!("--{flag}").into(),
            _ if option == "host" => "the JID's domain".into(),
            _ => option.into(),
        }
    }
    fn either(&self, option: &'static str, file_option: &'static str) -> String {
        format!("give {} or {}", self.name(option), self.name(file_option))
    }
    fn enable(&self, option: &'static str) -> String {
        format!("pass {}", self.name(option))
    }
}

fn cli_error(e: ConfigError) -> String {
    e.describe(&CliNames)
}

impl Keys {
    /// The token half of the server's verifier: no replay store (a verify here accepts nothing).
    fn checker(&self, host: &str, jid_as_sent: bool) -> Result<TokenChecker, String> {
        let secrets = token_secrets(&self.secrets, self.secret_file.as_deref())?;
        let seed = match (&self.otp_seed, &self.otp_seed_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => read_secret_file("otp_seed_file", f)?,
            (None, None) => String::new(),
        };
        let seed = decode_seed(&seed).map_err(cli_error)?;
        let settings = TokenSettings {
            digits: self.digits,
            step: self.step,
            skew: self.skew,
            allow_weak_secrets: self.allow_weak_secrets,
            allow_long_lifetime: self.allow_long_lifetime,
            nonce_digits: self.nonce_digits,
            jid_as_sent,
        };
        TokenChecker::new(secrets, seed, settings, Some(host)).map_err(cli_error)
    }

    fn now(&self) -> Result<u64, String> {
        match self.now {
            Some(t) => Ok(t),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).map_err(|e| e.to_string()),
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Keygen { json, write, group } => {
            let secret = encode_seed(&random_bytes(32).map_err(|e| e.to_string())?);
            let seed = encode_seed(&random_bytes(20).map_err(|e| e.to_string())?);
            if let Some(dir) = write {
                // absolute: the module reads relative paths from the config file's directory
                let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let (secret_path, seed_path) = (dir.join("token_secret"), dir.join("otp_seed"));
                if seed_path.exists() {
                    return Err(format!("{} exists; existing files are never overwritten", seed_path.display()));
                }
                write_secret_file(&secret_path, &secret, &group)?;
                write_secret_file(&seed_path, &seed, &group)?;
                let lua = |p: &std::path::Path| serde_json::Value::from(p.display().to_string()).to_string();
                println!("token_secret_file = {}\notp_seed_file = {}", lua(&secret_path), lua(&seed_path));
            } else if json {
                println!("{}", serde_json::json!({ "token_secret": secret, "otp_seed": seed }));
            } else {
                println!("token_secret = \"{secret}\"\notp_seed = \"{seed}\"");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mint { jid: given, json, keys } => {
            let (jid, domain) = prepared_jid(&given, "mint for")?;
            let v = keys.checker(&domain, false)?;
            let token = v.mint(&jid, keys.now()?).map_err(|e| format!("cannot mint for {jid:?}: {e}"))?;
            if json {
                println!("{}", serde_json::json!({ "jid": jid, "password": token }));
            } else {
                println!("{token}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Signout { jid: given, now, nonce, keys } => {
            let (jid, _) = prepared_jid(&given, "sign out")?;
            let signer = keys.signout_keys()?;
            let now = match now {
                Some(t) => t,
                None => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).map_err(|e| e.to_string())?,
            };
            let nonce = match nonce {
                Some(n) => n,
                None => random_digits(prosody_auth_hmac::signout::NONCE_LEN).map_err(|e| e.to_string())?,
            };
            let line = signer.request_line(now, &nonce, &jid).ok_or_else(|| {
                format!(
                    "cannot sign out {jid:?}: the time must be a unix time from 1 on, the nonce {} digits, the JID at most {} bytes",
                    prosody_auth_hmac::signout::NONCE_LEN,
                    prosody_auth_hmac::signout::MAX_JID_LEN
                )
            })?;
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            clap_mangen::generate_to(Cli::command(), &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Jid { jids } => {
            use std::io::{BufRead, Write};
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut show = |jid: &str| {
                let line = match server_jid(jid) {
                    Ok((_, local, domain)) => format!("{local}@{domain}"),
                    Err(_) => "!".to_owned(),
                };
                writeln!(out, "{line}").map_err(|e| e.to_string())
            };
            for jid in &jids {
                if jid == "-" {
                    for line in std::io::stdin().lock().lines() {
                        show(&line.map_err(|e| e.to_string())?)?;
                    }
                } else {
                    show(jid)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { jid, jid_as_sent, token, keys } => {
            let (local, _, domain) = match server_jid(&jid) {
                Ok(parts) => parts,
                Err(e) => {
                    eprintln!("hmac-token: {e}");
                    println!("refused: malformed");
                    return Ok(ExitCode::from(1));
                }
            };
            let v = keys.checker(&domain, jid_as_sent)?;
            let token = match token {
                Some(t) => t,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).map_err(|e| e.to_string())?;
                    s.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            match check_username(&v, token.as_bytes(), local, &nodeprep, keys.now()?) {
                Ok((username, acc)) => {
                    println!("valid: {username}@{domain}, OTP step {}", acc.step());
                    Ok(ExitCode::SUCCESS)
                }
                Err(reason @ (Reject::Expired | Reject::OtpMismatch)) => {
                    // the signature is good: say how far off the minting clock was
                    match v.explain(reason, token.as_bytes(), keys.now()?) {
                        Some(d) => println!("refused: {reason} ({d})"),
                        None => println!("refused: {reason}"),
                    }
                    Ok(ExitCode::from(1))
                }
                Err(reason) => {
                    println!("refused: {reason}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// Flags whose value is a secret: on the command line every local user can read it
/// (`/proc/<pid>/cmdline`, `ps`), so say so and name the safe alternative.
const SECRET_FLAGS: [(&str, &str); 3] = [
    ("--secret", "TOKEN_SECRET or --secret-file"),
    ("--otp-seed", "OTP_SEED or --otp-seed-file"),
    ("--token", "standard input (leave out --token)"),
];

fn warn_about_secrets_in_argv() {
    let mut args = std::env::args_os();
    args.next(); // the program's own name
    for arg in args {
        let arg = arg.to_string_lossy();
        for (flag, instead) in SECRET_FLAGS {
            if arg == flag || arg.starts_with(&format!("{flag}=")) {
                eprintln!("hmac-token: warning: {flag} puts a secret on the command line, where every local user can read it; use {instead}");
            }
        }
    }
}

fn main() -> ExitCode {
    warn_about_secrets_in_argv();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("hmac-token: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option `options::OPTIONS` gives a CLI flag is a flag of `mint` or `verify` (with the
    /// environment variable the table names), and every flag of theirs that sets a server option is
    /// in the table: an option the CLI takes cannot be missing from one side.
    #[test]
    fn the_clis_flags_are_the_option_tables() {
        let cli = Cli::command();
        let mut flags = std::collections::BTreeMap::new();
        for sub in ["mint", "verify"] {
            for arg in cli.find_subcommand(sub).unwrap().get_arguments() {
                if let Some(long) = arg.get_long() {
                    flags.insert(long.to_owned(), arg.get_env().map(|e| e.to_string_lossy().into_owned()));
                }
            }
        }
        for o in options::OPTIONS {
            if let Some(flag) = o.cli_flag {
                assert_eq!(flags.get(flag), Some(&o.cli_env.map(str::to_owned)), "{}: --{flag}", o.name);
            }
        }
        // the CLI's own flags, which set no server option
        const OWN: [&str; 6] = ["jid", "json", "token", "now", "help", "version"];
        for flag in flags.keys().filter(|f| !OWN.contains(&f.as_str())) {
            assert!(options::OPTIONS.iter().any(|o| o.cli_flag == Some(flag)), "--{flag} is not in options::OPTIONS");
        }
        assert_eq!(CliNames.name("otp_digits"), "--digits");
        assert_eq!(CliNames.name("token_nonce_digits"), "--nonce-digits/TOKEN_NONCE_DIGITS");
        assert_eq!(CliNames.name("host"), "the JID's domain");
        assert_eq!(CliNames.name("token_replay_cache_size"), "token_replay_cache_size");
    }
}

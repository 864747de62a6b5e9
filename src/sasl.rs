//! SASL mechanisms over the verifier: message parsing and the per-exchange state machine.
//!
//! Stringprep is Prosody's; the exchange receives `nodeprep` as a function so the core stays free
//! of Lua and of a second, possibly different, stringprep implementation. (`hmac-token` has one,
//! which refuses whatever it cannot reproduce exactly.)

use crate::check::{Authentic, Candidates, TokenChecker};
use crate::error::Reject;
use crate::guard::Accepted;
use crate::jid;
use crate::token::{UntrustedToken, MAX_TOKEN_LEN};
use crate::verifier::{ClockDiagnosis, Verifier};

/// Longest authorization identity accepted (a full JID: three parts of 1023 bytes and separators).
pub const MAX_AUTHZID: usize = 3 * jid::MAX_PART + 2;
/// Longest authentication identity accepted (a bare JID).
pub const MAX_AUTHCID: usize = 2 * jid::MAX_PART + 1;

/// The mechanisms this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616 PLAIN with the token as the password (what stock converse.js sends).
    Plain,
    /// prosody-modules' X-TOKEN: PLAIN framing under another name.
    XToken,
    /// SASL-HMAC (docs/sasl-hmac.md): challenge-response; the token's secret half never crosses
    /// the wire and the server proves it holds the secret.
    SaslHmac,
    /// SASL-HMAC with channel binding: both proofs also cover the TLS channel's binding data, so an
    /// exchange relayed over another TLS connection fails.
    SaslHmacPlus,
}

impl Mechanism {
    /// Every mechanism, in the order they are offered.
    pub const ALL: [Mechanism; 4] = [Mechanism::Plain, Mechanism::XToken, Mechanism::SaslHmac, Mechanism::SaslHmacPlus];

    /// The SASL name.
    pub const fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::XToken => "X-TOKEN",
            Mechanism::SaslHmac => "SASL-HMAC",
            Mechanism::SaslHmacPlus => "SASL-HMAC-PLUS",
        }
    }

    /// Whether the client sends the whole token (a bearer credential): then Prosody's rules for
    /// PLAIN on unencrypted connections apply, and `test_password` is allowed by default.
    pub const fn is_bearer(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::XToken)
    }

    /// Whether the mechanism needs the connection's TLS channel binding (offered only where there is one).
    pub const fn needs_channel_binding(self) -> bool {
        matches!(self, Mechanism::SaslHmacPlus)
    }

    /// Looks a mechanism up by its SASL name (exact, upper case as registered).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// `[authzid] NUL authcid NUL secret`, as PLAIN and X-TOKEN carry it.
#[derive(PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// Authorization identity; may be empty.
    pub authzid: &'a str,
    /// Authentication identity: a localpart, or a bare JID.
    pub authcid: &'a str,
    /// The token.
    pub secret: &'a [u8],
}

impl core::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("secret", &"***")
            .finish()
    }
}

/// Parses a PLAIN/X-TOKEN message: exactly three NUL-separated fields, the last two non-empty,
/// the identities UTF-8 and within RFC 7622 sizes, the token at most 1 KiB.
pub fn parse_plain(msg: &[u8]) -> Result<PlainMessage<'_>, Reject> {
    let mut fields = msg.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(secret)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(Reject::Malformed);
    };
    if authcid.is_empty() || secret.is_empty() || secret.contains(&0) {
        return Err(Reject::Malformed);
    }
    if authzid.len() > MAX_AUTHZID || authcid.len() > MAX_AUTHCID || secret.len() > MAX_TOKEN_LEN {
        return Err(Reject::Malformed);
    }
    let authzid = core::str::from_utf8(authzid).map_err(|_| Reject::Malformed)?;
    let authcid = core::str::from_utf8(authcid).map_err(|_| Reject::Malformed)?;
    Ok(PlainMessage { authzid, authcid, secret })
}

/// Who is logging in: the session's username (nodeprep'd localpart) and the bare JIDs a
/// signature may cover. By default that is only `account`, `username@host`, the account Prosody
/// will log the session in as; with `jid_as_sent` the localpart as the client sent it is tried
/// first (`as_sent`, none when the two are equal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The nodeprep'd localpart: the session's username on success.
    pub username: String,
    /// The account's canonical bare JID, `username@host`: its quota counts the login.
    pub account: String,
    /// The bare JID as the client sent it, when `jid_as_sent` is on and it differs from `account`.
    pub as_sent: Option<String>,
}

impl Identity {
    /// The candidate bare JIDs in the order tried: `as_sent`, then `account`.
    pub fn jids(&self) -> Vec<&str> {
        self.as_sent.iter().map(String::as_str).chain(core::iter::once(self.account.as_str())).collect()
    }
}

/// The identity of a localpart of `host`: nodeprep'd, and under `jid_as_sent` also as given.
pub fn localpart_identity(
    host: &str,
    local: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    jid_as_sent: bool,
) -> Result<Identity, Reject> {
    jid::check_part(local)?;
    if local.contains(['@', '/']) {
        return Err(Reject::Malformed);
    }
    let prepped = nodeprep(local).ok_or(Reject::Malformed)?;
    jid::check_part(&prepped)?;
    let as_sent = (jid_as_sent && prepped != local).then(|| format!("{local}@{host}"));
    let account = format!("{prepped}@{host}");
    Ok(Identity { username: prepped, account, as_sent })
}

/// Resolves authcid (and checks authzid) against `host`. The authcid is a localpart or a bare
/// JID of `host`; a non-empty authzid must be the user's own bare JID.
pub fn resolve_identity(
    host: &str,
    authzid: &str,
    authcid: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    jid_as_sent: bool,
) -> Result<Identity, Reject> {
    let local = match authcid.split_once('@') {
        Some(_) => {
            let (local, domain) = jid::split_bare(authcid)?;
            if !jid::same_domain(domain, host) {
                return Err(Reject::WrongHost);
            }
            local
        }
        None => authcid,
    };
    let identity = localpart_identity(host, local, nodeprep, jid_as_sent)?;
    if !authzid.is_empty() {
        let (z_local, z_domain) = jid::split_bare(authzid).map_err(|_| Reject::InvalidAuthzid)?;
        if !jid::same_domain(z_domain, host) || nodeprep(z_local).as_deref() != Some(identity.username.as_str()) {
            return Err(Reject::InvalidAuthzid);
        }
    }
    Ok(identity)
}

/// Verifies `token` for the account `username` of the verifier's host under the same identity
/// rule as the SASL mechanisms (the auth provider's `test_password`), and accepts it once.
/// Returns the nodeprep'd username and what the verifier accepted.
pub fn verify_username(
    verifier: &Verifier,
    token: &[u8],
    username: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    now: u64,
) -> Result<(String, Accepted), Reject> {
    let (username, authentic) = check_username(verifier.checker(), token, username, nodeprep, now)?;
    Ok((username, verifier.accept(authentic, now)?))
}

/// Whether `token` is authentic for the account `username` of the checker's host under the same
/// identity rule (`hmac-token verify`): [`verify_username`] without the replay store.
pub fn check_username(
    checker: &TokenChecker,
    token: &[u8],
    username: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    now: u64,
) -> Result<(String, Authentic), Reject> {
    let host = checker.host().ok_or(Reject::Internal)?;
    let identity = localpart_identity(host, username, nodeprep, checker.jid_as_sent())?;
    let sent = identity.as_sent.as_deref();
    let authentic = checker.check(token, Candidates { account: &identity.account, also: sent.as_slice() }, now)?;
    Ok((identity.username, authentic))
}

/// Longest identity written to a log line, in bytes (escapes included).
pub const MAX_LOGGED_IDENTITY: usize = 200;

/// A client-supplied identity made safe for a log line: only printable ASCII other than `\` is
/// kept; every other character — controls, white space, and all of non-ASCII, which holds the bidi
/// overrides and isolates (U+202E, U+2066–U+2069), zero-width and invisible "letters" (U+3164) — is
/// written as `\u{...}`, and `\` as `\\`, so a client can neither forge a log line nor make one
/// read differently from its bytes. At most [`MAX_LOGGED_IDENTITY`] bytes; a cut one ends in `...`.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED_IDENTITY));
    for c in s.chars() {
        let piece = match c {
            '\\' => "\\\\".to_owned(),
            '!'..='~' => c.to_string(),
            _ => format!("\\u{{{:x}}}", u32::from(c)),
        };
        if out.len() + piece.len() > MAX_LOGGED_IDENTITY - 3 {
            out.push_str("...");
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// The bare JID a PLAIN-framed message claims, made log-safe, even when the message is not
/// otherwise well-formed (so a failed login can still name who tried).
fn claimed_jid(message: &[u8], host: &str) -> Option<String> {
    let authcid = message.split(|&b| b == 0).nth(1)?;
    let authcid = core::str::from_utf8(authcid).ok().filter(|a| !a.is_empty())?;
    Some(if authcid.contains('@') { printable(authcid) } else { printable(&format!("{authcid}@{host}")) })
}

/// What one step of an exchange produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated as `username` (a localpart of the verifier's host), with additional data for
    /// the client (SASL-HMAC's server proof).
    Success {
        /// The session's username.
        username: String,
        /// Success additional data, if the mechanism has any.
        additional: Option<Vec<u8>>,
    },
    /// Send this challenge and wait for the client's response.
    Challenge(Vec<u8>),
    /// Refused.
    Failure(Reject),
}

/// Length of the server nonce in a SASL-HMAC challenge.
pub const SERVER_NONCE_LEN: usize = 24;
/// SASL-HMAC proof length (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
const CLIENT_LABEL: &[u8] = b"SASL-HMAC client";
const SERVER_LABEL: &[u8] = b"SASL-HMAC server";

/// `HMAC-SHA256(key = s, label NUL client-first-message NUL server-nonce)`: the client's proof
/// (`client = true`) or the server's.
pub fn sasl_hmac_proof(s: &[u8], client: bool, client_first: &[u8], server_nonce: &[u8]) -> [u8; PROOF_LEN] {
    proof(s, client, client_first, server_nonce, None)
}

/// SASL-HMAC-PLUS: `HMAC-SHA256(key = s, label NUL client-first-message NUL server-nonce NUL
/// channel-binding-data)`. The client-first message starts with the binding's name, and `server-nonce`
/// has a fixed length, so the binding data is exactly what follows it.
pub fn sasl_hmac_plus_proof(s: &[u8], client: bool, client_first: &[u8], server_nonce: &[u8], cb_data: &[u8]) -> [u8; PROOF_LEN] {
    proof(s, client, client_first, server_nonce, Some(cb_data))
}

fn proof(s: &[u8], client: bool, client_first: &[u8], server_nonce: &[u8], cb_data: Option<&[u8]>) -> [u8; PROOF_LEN] {
    use hmac::{KeyInit, Mac};
    let mut mac = <crate::token::HmacSha256 as KeyInit>::new_from_slice(s).expect("HMAC takes any key length");
    mac.update(if client { CLIENT_LABEL } else { SERVER_LABEL });
    mac.update(&[0]);
    mac.update(client_first);
    mac.update(&[0]);
    mac.update(server_nonce);
    if let Some(cb) = cb_data {
        mac.update(&[0]);
        mac.update(cb);
    }
    mac.finalize().into_bytes().into()
}

/// The channel-binding types SASL-HMAC-PLUS accepts (RFC 5929, RFC 9266), by the names Prosody's
/// `add_cb_handler` uses.
pub const CHANNEL_BINDINGS: [&str; 3] = ["tls-exporter", "tls-unique", "tls-server-end-point"];

/// The data of the channel binding `name` on this connection, if the connection has it.
pub type ChannelBinding<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

enum State {
    Start,
    /// SASL-HMAC after an empty initial response: the client-first message comes next.
    AwaitFirst,
    /// SASL-HMAC after the challenge (with the channel-binding data for -PLUS).
    AwaitProof {
        client_first: Vec<u8>,
        public_len: usize,
        identity: Identity,
        server_nonce: [u8; SERVER_NONCE_LEN],
        cb_data: Option<Vec<u8>>,
    },
    Done,
}

impl core::fmt::Debug for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            State::Start => "Start",
            State::AwaitFirst => "AwaitFirst",
            State::AwaitProof { .. } => "AwaitProof",
            State::Done => "Done",
        })
    }
}

/// One SASL exchange. Create one per `<auth/>`; after success or failure it answers every further
/// message with `Malformed`. Dropping it (abort, a new `<auth/>`) leaves nothing behind.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    state: State,
    attempted: Option<String>,
    diagnosis: Option<ClockDiagnosis>,
}

impl Exchange {
    /// A new exchange for `mechanism`.
    pub fn new(mechanism: Mechanism) -> Self {
        Exchange { mechanism, state: State::Start, attempted: None, diagnosis: None }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The bare JID the client tried to log in as, once known (for log lines).
    pub fn attempted_jid(&self) -> Option<&str> {
        self.attempted.as_deref()
    }

    /// After an `expired` or `otp-mismatch` refusal: how far off the minting clock was, or that no
    /// step matches (for the log line only).
    pub fn clock_diagnosis(&self) -> Option<ClockDiagnosis> {
        self.diagnosis
    }

    /// Feeds the client's next message (`None` when the `<auth/>` carried no initial response).
    pub fn step(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
    ) -> Outcome {
        self.step_bound(verifier, message, now, nodeprep, &|_| None)
    }

    /// [`Exchange::step`] on a connection whose channel bindings `channel_binding` gives (for
    /// SASL-HMAC-PLUS; the other mechanisms ignore it).
    pub fn step_bound(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        channel_binding: ChannelBinding<'_>,
    ) -> Outcome {
        let state = core::mem::replace(&mut self.state, State::Done);
        let result = match (state, self.mechanism) {
            (State::Start, Mechanism::Plain | Mechanism::XToken) => {
                self.token_step(verifier, message, now, nodeprep).map(|username| Outcome::Success { username, additional: None })
            }
            (State::Start, Mechanism::SaslHmac | Mechanism::SaslHmacPlus) if message.is_none() => {
                self.state = State::AwaitFirst;
                Ok(Outcome::Challenge(Vec::new()))
            }
            (State::Start | State::AwaitFirst, Mechanism::SaslHmac) => self.hmac_first(verifier, message, nodeprep, None),
            (State::Start | State::AwaitFirst, Mechanism::SaslHmacPlus) => {
                self.hmac_first(verifier, message, nodeprep, Some(channel_binding))
            }
            (State::AwaitProof { client_first, public_len, identity, server_nonce, cb_data }, _) => {
                let proof = Proof {
                    client_first: &client_first,
                    public_len,
                    identity: &identity,
                    server_nonce: &server_nonce,
                    cb_data: cb_data.as_deref(),
                };
                self.hmac_proof(verifier, message, now, proof)
            }
            (State::AwaitFirst | State::Done, _) => Err(Reject::Malformed),
        };
        result.unwrap_or_else(Outcome::Failure)
    }

    fn host(verifier: &Verifier) -> Result<&str, Reject> {
        verifier.host().ok_or(Reject::Internal)
    }

    /// Reads `authzid NUL authcid NUL secret` and resolves who is logging in, noting the claimed
    /// JID for the log line as early as it can be read.
    fn identify<'m>(
        &mut self,
        host: &str,
        jid_as_sent: bool,
        message: Option<&'m [u8]>,
        nodeprep: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(PlainMessage<'m>, Identity), Reject> {
        let message = message.ok_or(Reject::Malformed)?;
        self.attempted = claimed_jid(message, host);
        let msg = parse_plain(message)?;
        let identity = resolve_identity(host, msg.authzid, msg.authcid, nodeprep, jid_as_sent)?;
        self.attempted = Some(printable(&format!("{}@{host}", identity.username)));
        Ok((msg, identity))
    }

    fn token_step(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, Reject> {
        let (msg, identity) = self.identify(Self::host(verifier)?, verifier.jid_as_sent(), message, nodeprep)?;
        let sent = identity.as_sent.as_deref();
        let candidates = Candidates { account: &identity.account, also: sent.as_slice() };
        if let Err(reason) = verifier.verify_for(msg.secret, candidates, now) {
            self.diagnosis = verifier.explain(reason, msg.secret, now);
            return Err(reason);
        }
        Ok(identity.username)
    }

    /// SASL-HMAC client-first-message: `authzid NUL authcid NUL OTP‖NONCE`; for -PLUS preceded by
    /// `cb-name NUL`, the channel binding the proofs will cover (which this connection must have).
    fn hmac_first(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        channel_binding: Option<ChannelBinding<'_>>,
    ) -> Result<Outcome, Reject> {
        let message = message.ok_or(Reject::Malformed)?;
        let (plain_part, cb_data) = match channel_binding {
            None => (message, None),
            Some(lookup) => {
                let at = message.iter().position(|&b| b == 0).ok_or(Reject::Malformed)?;
                let name = core::str::from_utf8(&message[..at]).map_err(|_| Reject::Malformed)?;
                if !CHANNEL_BINDINGS.contains(&name) {
                    return Err(Reject::Malformed);
                }
                // a binding this connection does not have cannot be checked: refuse, never skip it
                let data = lookup(name).filter(|d| !d.is_empty()).ok_or(Reject::Malformed)?;
                (&message[at + 1..], Some(data))
            }
        };
        let (msg, identity) = self.identify(Self::host(verifier)?, verifier.jid_as_sent(), Some(plain_part), nodeprep)?;
        UntrustedToken::check_public(msg.secret, verifier.layout())?;
        let mut server_nonce = [0u8; SERVER_NONCE_LEN];
        getrandom::fill(&mut server_nonce).map_err(|_| Reject::Internal)?;
        self.state =
            State::AwaitProof { client_first: message.to_vec(), public_len: msg.secret.len(), identity, server_nonce, cb_data };
        Ok(Outcome::Challenge(server_nonce.to_vec()))
    }

    /// SASL-HMAC client proof: 32 octets.
    fn hmac_proof(&mut self, verifier: &Verifier, message: Option<&[u8]>, now: u64, p: Proof<'_>) -> Result<Outcome, Reject> {
        let result = self.hmac_proof_checked(verifier, message, now, &p);
        if let Err(reason) = result {
            let public = &p.client_first[p.client_first.len() - p.public_len..];
            self.diagnosis = verifier.explain(reason, public, now);
        }
        result
    }

    fn hmac_proof_checked(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        p: &Proof<'_>,
    ) -> Result<Outcome, Reject> {
        let received = message.filter(|m| m.len() == PROOF_LEN).ok_or(Reject::Malformed)?;
        let public = &p.client_first[p.client_first.len() - p.public_len..];
        let sent = p.identity.as_sent.as_deref();
        let candidates = Candidates { account: &p.identity.account, also: sent.as_slice() };
        let checker = verifier.checker();
        let (s, jid_index) = checker
            .find_secret_half(public, candidates, |s| {
                let expected = proof(s, true, p.client_first, p.server_nonce, p.cb_data);
                bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], received))
            })
            .ok_or(Reject::BadSignature)?;
        let mut key = [0u8; 16];
        key.copy_from_slice(&s[..16]);
        let otp = public.get(..checker.otp().digits()).ok_or(Reject::Malformed)?;
        verifier.accept(checker.authentic(otp, key, jid_index, candidates.account, now)?, now)?;
        let server_proof = proof(&s, false, p.client_first, p.server_nonce, p.cb_data);
        Ok(Outcome::Success { username: p.identity.username.clone(), additional: Some(server_proof.to_vec()) })
    }
}

/// What a SASL-HMAC proof is checked against.
struct Proof<'a> {
    client_first: &'a [u8],
    public_len: usize,
    identity: &'a Identity,
    server_nonce: &'a [u8],
    cb_data: Option<&'a [u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(s: &str) -> Option<String> {
        (!s.is_empty() && !s.contains(' ')).then(|| s.to_lowercase())
    }

    #[test]
    fn plain_framing() {
        let m = parse_plain(b"\0alice\x00123 abc").unwrap();
        assert_eq!((m.authzid, m.authcid, m.secret), ("", "alice", &b"123 abc"[..]));
        let m = parse_plain(b"alice@h\0alice\0t").unwrap();
        assert_eq!(m.authzid, "alice@h");
        for bad in [&b""[..], b"\0", b"\0\0", b"\0alice\0", b"\0\0tok", b"alice\0tok", b"\0a\0t\0x", b"\0\xff\0t"] {
            assert_eq!(parse_plain(bad), Err(Reject::Malformed), "{bad:?}");
        }
        let long = vec![b'1'; MAX_TOKEN_LEN + 1];
        let mut msg = b"\0alice\0".to_vec();
        msg.extend_from_slice(&long);
        assert_eq!(parse_plain(&msg), Err(Reject::Malformed));
        assert!(!format!("{:?}", parse_plain(b"\0a\0sekrit").unwrap()).contains("sekrit"));
    }

    #[test]
    fn log_safe_identities() {
        assert_eq!(printable("evil\nFailed login for root"), "evil\\u{a}Failed\\u{20}login\\u{20}for\\u{20}root");
        assert_eq!(printable(&"a".repeat(5000)).len(), MAX_LOGGED_IDENTITY);
        assert!(printable(&"a".repeat(5000)).ends_with("..."));
        assert_eq!(printable(&"a".repeat(200)), "a".repeat(197) + "...");
        assert_eq!(printable(&"a".repeat(197)), "a".repeat(197));
        // bidi overrides and isolates, invisible letters, zero-width characters are escaped
        for (c, shown) in [
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{3164}', "\\u{3164}"),
            ('\u{200b}', "\\u{200b}"),
        ] {
            assert_eq!(printable(&format!("ab{c}cd")), format!("ab{shown}cd"));
        }
        assert_eq!(printable("m\u{e4}llory"), "m\\u{e4}llory");
        // a backslash cannot fake an escape
        assert_eq!(printable("a\\u{202e}b"), "a\\\\u{202e}b");
        let long = printable(&"\u{202e}".repeat(100));
        assert!(long.len() <= MAX_LOGGED_IDENTITY && long.ends_with("\\u{202e}..."), "{long}");
    }

    #[test]
    fn identities() {
        let id = resolve_identity("example.org", "", "Alice", &lower, false).unwrap();
        assert_eq!(id.username, "alice");
        assert_eq!(id.jids(), ["alice@example.org"], "only the nodeprep'd JID by default");
        let id = resolve_identity("example.org", "", "Alice", &lower, true).unwrap();
        assert_eq!(id.jids(), ["Alice@example.org", "alice@example.org"]);
        let id = resolve_identity("example.org", "", "alice", &lower, true).unwrap();
        assert_eq!(id.jids(), ["alice@example.org"]);
        let id = resolve_identity("example.org", "alice@Example.org", "alice@EXAMPLE.org", &lower, false).unwrap();
        assert_eq!(id.jids(), ["alice@example.org"]);
        assert_eq!(resolve_identity("example.org", "", "alice@other.org", &lower, false), Err(Reject::WrongHost));
        assert_eq!(resolve_identity("example.org", "bob@example.org", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "alice@other.org", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "alice", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "", "al ice", &lower, false), Err(Reject::Malformed));
        assert_eq!(resolve_identity("example.org", "", "a@b@example.org", &lower, false), Err(Reject::Malformed));
    }
}

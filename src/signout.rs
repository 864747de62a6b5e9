//! Signing a user out from the web app (docs/signout.md): the sign-out request's wire format and
//! checks, and the per-user record that remembers when the user was signed out.
//!
//! The request is one line, `v1 TIME NONCE JID MAC`, where `MAC` is
//! `HMAC-SHA256(K, "prosody-auth-hmac signout v1\0" ‖ u64be(TIME) ‖ NONCE ‖ u16be(len JID) ‖ JID)`
//! and `K = HMAC-SHA256(token_secret, "\0prosody-auth-hmac signout key v1")`. A token's MAC is
//! `HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ JID)`, whose message begins with a digit; `K`'s label
//! begins with a NUL, so `K` is never a token's MAC, and no sign-out MAC is made under the token
//! secret itself: neither can be taken for the other.
//!
//! Checks run in the spec's order ([`Refusal`]): the line's shape, the host, the MAC (under every
//! configured secret, in constant time), the time window ([`WINDOW`]), and only then the user's
//! stored record (so nobody without a secret makes the server read storage): a nonce seen in it is
//! `replayed`. An authentic, timely, new request is never refused for how many came before it: a
//! web app signing a compromised account out must not find it made impossible by a flood of
//! sign-outs someone else made it send. The record remembers at most [`MAX_RECENT`] nonces, each
//! until a replay of its request would be stale (`TIME` + [`WINDOW`]); when full, the one whose
//! window ends soonest is forgotten (its request, replayed before then, signs the user out again).
//!
//! The stored time is the latest of the stored one, `TIME` and the server's clock at acceptance: a
//! web server whose clock runs behind never makes a sign-out that lets a token of its own step in.
//! It is kept as stored whatever the clock reads later: after the clock is set back, the user's
//! tokens stay refused until it passes that time again (as the replay cache refuses every token
//! login after such a step), never let in because they look newer than a clock that went back.
//!
//! The record ([`StoredRecord`], what storage keeps) holds the signed-out time and the nonces still
//! remembered, sealed with `HMAC-SHA256(token_secret, "\0prosody-auth-hmac signout state key v1")`
//! over its own label, the host, the username and every field, each of fixed length or length
//! prefixed. It is sealed under `secrets[0]` and checked under each secret, so a rotation keeps every
//! sign-out. Storage is untrusted: a record that fails any check counts as "signed out now" with no
//! nonces ([`Note::StoredRecordInvalid`], for the log), never as "never signed out".

use core::fmt;

use hmac::{KeyInit, Mac};

use crate::error::ConfigError;
use crate::jid;
use crate::replay_state::Field;
use crate::secret::SecretBytes;
use crate::token::{derive_key, HmacSha256, MAC_B64_LEN, MAC_LEN};

/// Seconds a request's `TIME` may be from the server's clock, either way; also how long after its
/// `TIME` an accepted nonce is remembered (a replay is stale by then).
pub const WINDOW: u64 = 60;
/// The nonces a record remembers (each until a replay of its request would be stale).
pub const MAX_RECENT: usize = 16;
/// Digits of a request's nonce.
pub const NONCE_LEN: usize = 32;
/// Longest `TIME` field (`u64::MAX` has 20 digits).
pub const MAX_TIME_DIGITS: usize = 20;
/// Longest JID: a localpart and a host of RFC 7622's 1023 octets and the `@`.
pub const MAX_JID_LEN: usize = 2 * jid::MAX_PART + 1;
/// Longest request line: `v1`, four spaces, the longest fields and the optional line feed. Nothing
/// longer is looked at.
pub const MAX_LINE_LEN: usize = VERSION.len() + 4 + MAX_TIME_DIGITS + NONCE_LEN + MAX_JID_LEN + MAC_B64_LEN + 1;
/// The stored record's format (`format` in storage).
pub const RECORD_FORMAT: u64 = 1;

const VERSION: &[u8] = b"v1";
/// What the request key is derived from: never a token's message (those begin with a digit).
const KEY_LABEL: &[u8] = b"\0prosody-auth-hmac signout key v1";
/// The first field of every request MAC's message.
const MAC_LABEL: &[u8] = b"prosody-auth-hmac signout v1\0";
/// What the record key is derived from.
const STATE_KEY_LABEL: &[u8] = b"\0prosody-auth-hmac signout state key v1";
/// The first field of every record MAC's message.
const STATE_LABEL: &[u8] = b"prosody-auth-hmac signout state v1\0";
/// One remembered nonce in the stored `nonces` string: 32 digits, then the time it is remembered
/// until as 20 zero-padded digits.
const ENTRY_LEN: usize = NONCE_LEN + MAX_TIME_DIGITS;

/// Why a sign-out request was refused, in the order the checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not of the form `v1 TIME NONCE JID MAC`, or the localpart is not nodeprep'd.
    Malformed,
    /// The JID's host is not this VirtualHost.
    WrongHost,
    /// The MAC verifies under none of the configured secrets.
    BadSignature,
    /// `TIME` is more than [`WINDOW`] seconds from the server's clock.
    Stale,
    /// The nonce was accepted for this user and is still remembered.
    Replayed,
}

impl Refusal {
    /// Every reason, in the order the checks run.
    pub const ALL: [Refusal; 5] =
        [Refusal::Malformed, Refusal::WrongHost, Refusal::BadSignature, Refusal::Stale, Refusal::Replayed];

    /// Stable, log-friendly name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::WrongHost => "wrong-host",
            Refusal::BadSignature => "bad-signature",
            Refusal::Stale => "stale",
            Refusal::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Refusal {}

/// Something the caller should log: the stored record was unusable and was taken as "signed out now".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// The stored record is malformed, oversize or fails its MAC under every secret.
    StoredRecordInvalid,
}

impl Note {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Note::StoredRecordInvalid => "stored-record-invalid",
        }
    }
}

/// A request line as received: well-formed, nothing in it trusted until its MAC has verified.
pub struct SignoutRequest<'a> {
    time: u64,
    nonce: [u8; NONCE_LEN],
    jid: &'a str,
    at: usize,
    mac: [u8; MAC_LEN],
}

impl fmt::Debug for SignoutRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignoutRequest").field("time", &self.time).field("jid", &self.jid).field("mac", &"***").finish()
    }
}

fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_digit)
}

/// A decimal without leading zeros, not `0`, at most 20 digits and at most `u64::MAX`.
fn parse_time(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > MAX_TIME_DIGITS || field[0] == b'0' || !all_digits(field) {
        return None;
    }
    field.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

impl<'a> SignoutRequest<'a> {
    /// Parses `v1 TIME NONCE JID MAC` (one trailing `\n` allowed): exactly one space between the
    /// fields, no other whitespace; `TIME` as [`parse_time`] reads it, `NONCE` 32 digits, `JID` a bare
    /// JID of 1–2047 octets of UTF-8 with no `/`, whitespace or control character, `MAC` 44
    /// characters of padded standard base64 of 32 bytes. Whether the localpart is nodeprep'd is the
    /// caller's check (it needs Prosody's nodeprep).
    pub fn parse(line: &'a [u8]) -> Result<Self, Refusal> {
        if line.len() > MAX_LINE_LEN {
            return Err(Refusal::Malformed);
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut fields = line.split(|&b| b == b' ');
        let mut next = || fields.next().ok_or(Refusal::Malformed);
        let (version, time, nonce, jid, mac) = (next()?, next()?, next()?, next()?, next()?);
        if fields.next().is_some() || version != VERSION {
            return Err(Refusal::Malformed);
        }
        let time = parse_time(time).ok_or(Refusal::Malformed)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Refusal::Malformed)?;
        if !all_digits(&nonce) {
            return Err(Refusal::Malformed);
        }
        if jid.is_empty() || jid.len() > MAX_JID_LEN || jid.iter().any(|&b| b <= b' ' || b == 0x7f || b == b'/') {
            return Err(Refusal::Malformed);
        }
        let jid = core::str::from_utf8(jid).map_err(|_| Refusal::Malformed)?;
        if jid.chars().any(char::is_whitespace) {
            return Err(Refusal::Malformed);
        }
        let (local, _) = jid::split_bare(jid).map_err(|_| Refusal::Malformed)?;
        let mac = decode_mac(mac).ok_or(Refusal::Malformed)?;
        Ok(SignoutRequest { time, nonce, jid, at: local.len(), mac })
    }

    /// `TIME`, not verified.
    pub fn unverified_time(&self) -> u64 {
        self.time
    }

    /// The bare JID, not verified.
    pub fn unverified_jid(&self) -> &'a str {
        self.jid
    }

    /// The JID's localpart, not verified.
    pub fn unverified_localpart(&self) -> &'a str {
        &self.jid[..self.at]
    }

    /// The JID's host, not verified.
    pub fn unverified_host(&self) -> &'a str {
        &self.jid[self.at + 1..]
    }
}

fn decode_mac(b64: &[u8]) -> Option<[u8; MAC_LEN]> {
    if b64.len() != MAC_B64_LEN {
        return None;
    }
    let mut buf = [0u8; MAC_LEN + 1];
    let n = data_encoding::BASE64.decode_len(b64.len()).ok()?;
    let len = data_encoding::BASE64.decode_mut(b64, buf.get_mut(..n)?).ok()?;
    (len == MAC_LEN).then(|| {
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&buf[..MAC_LEN]);
        mac
    })
}

/// A length-prefixed field: `u16be(len) ‖ bytes` (every field the record's MAC covers is at most
/// [`MAX_JID_LEN`] long, so the length fits).
fn update_prefixed(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    mac.update(bytes);
}

/// The request MAC's message, in a copy of a request key: `MAC_LABEL ‖ u64be(TIME) ‖ NONCE ‖
/// u16be(len JID) ‖ JID`.
fn request_mac(key: &HmacSha256, time: u64, nonce: &[u8; NONCE_LEN], bare: &str) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(MAC_LABEL);
    mac.update(&time.to_be_bytes());
    mac.update(nonce);
    update_prefixed(&mut mac, bare.as_bytes());
    mac
}

/// The keys derived from a host's token secrets: one request key and one record key per secret,
/// `secrets[0]`'s first (it signs and seals; all of them verify).
pub struct SignoutKeys {
    request: Vec<HmacSha256>,
    state: Vec<HmacSha256>,
}

impl fmt::Debug for SignoutKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignoutKeys([***; {}])", self.request.len())
    }
}

/// A remembered nonce: refused again until `until` (unix time) has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recent {
    /// The nonce's 32 digits.
    pub nonce: [u8; NONCE_LEN],
    /// The last second at which a request with it could still pass the time check.
    pub until: u64,
}

/// A user's sign-out state: when they were signed out (0: never) and the nonces still remembered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Unix time of the latest sign-out; tokens of OTP steps up to its step are refused.
    pub signed_out_at: u64,
    /// At most [`MAX_RECENT`] nonces, oldest first.
    pub recent: Vec<Recent>,
}

/// A record in the form storage keeps it: `format` ([`RECORD_FORMAT`]), `time` (decimal string),
/// `nonces` (one 52-character entry per nonce: its 32 digits and the 20 zero-padded digits of the
/// time it is remembered until) and `mac` (64 lowercase hex digits). Strings for the numbers: a Lua
/// 5.1 number would round a time past 2^53. Read back, every field is untrusted ([`Field`]).
#[derive(Clone, PartialEq)]
pub struct StoredRecord {
    /// [`RECORD_FORMAT`].
    pub format: Field,
    /// [`Record::signed_out_at`].
    pub time: Field,
    /// [`Record::recent`].
    pub nonces: Field,
    /// The seal.
    pub mac: Field,
}

impl fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // no MAC in Debug output, as everywhere else
        f.debug_struct("StoredRecord")
            .field("format", &self.format)
            .field("time", &self.time)
            .field("nonces", &self.nonces)
            .field("mac", &"***")
            .finish()
    }
}

impl StoredRecord {
    /// The fields by their stored names.
    pub fn fields(&self) -> [(&'static str, &Field); 4] {
        [("format", &self.format), ("time", &self.time), ("nonces", &self.nonces), ("mac", &self.mac)]
    }

    /// The longest string read under each name: anything longer is [`Field::Other`], not copied.
    pub const fn longest(name: &str) -> usize {
        match name.as_bytes() {
            b"time" => MAX_TIME_DIGITS,
            b"nonces" => MAX_RECENT * ENTRY_LEN,
            b"mac" => 2 * MAC_LEN,
            _ => 0,
        }
    }

    /// Reads a stored record through `field(name, longest)`, which converts one stored value
    /// ([`Field::text`] bounds a string by `longest` before copying it).
    pub fn read<E>(mut field: impl FnMut(&'static str, usize) -> Result<Field, E>) -> Result<StoredRecord, E> {
        let mut get = |name: &'static str| field(name, Self::longest(name));
        Ok(StoredRecord { format: get("format")?, time: get("time")?, nonces: get("nonces")?, mac: get("mac")? })
    }

    /// What something other than a table reads as: invalid.
    pub const UNREADABLE: StoredRecord =
        StoredRecord { format: Field::Other, time: Field::Other, nonces: Field::Other, mac: Field::Other };
}

/// The record's canonical decimal, or `None` (leading zeros, too long, not digits, over `u64`).
fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    match bytes {
        b"0" => Some(0),
        _ => parse_time(bytes),
    }
}

fn parse_entries(bytes: &[u8]) -> Option<Vec<Recent>> {
    if !bytes.len().is_multiple_of(ENTRY_LEN) || bytes.len() > MAX_RECENT * ENTRY_LEN || !all_digits(bytes) {
        return None;
    }
    bytes
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let (nonce, until) = e.split_at(NONCE_LEN);
            let until = until.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
            Some(Recent { nonce: nonce.try_into().ok()?, until })
        })
        .collect()
}

impl SignoutKeys {
    /// Derives the keys from prepared token-secret keys, `secrets[0]` first.
    pub(crate) fn new(secrets: &[HmacSha256]) -> Self {
        SignoutKeys {
            request: secrets.iter().map(|s| derive_key(s, KEY_LABEL)).collect(),
            state: secrets.iter().map(|s| derive_key(s, STATE_KEY_LABEL)).collect(),
        }
    }

    /// Derives the keys from token secrets, `secrets[0]` first, under the server's rule for
    /// secrets ([`crate::check::check_secrets`]): what the CLI signs with.
    pub fn from_config(secrets: &[SecretBytes], allow_weak_secrets: bool) -> Result<Self, ConfigError> {
        crate::check::check_secrets(secrets, allow_weak_secrets)?;
        let keys = secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.expose()).map_err(|_| ConfigError::EmptySecret))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(&keys))
    }

    /// Derives the keys from token secrets, `secrets[0]` first, whatever their strength (test
    /// vectors); `None` when there is none or one is empty.
    pub fn from_secrets(secrets: &[SecretBytes]) -> Option<Self> {
        Self::from_config(secrets, true).ok()
    }

    /// The request line for `bare` (a prepared bare JID) at `time` with `nonce`, signed under
    /// `secrets[0]`; `None` when the fields are not what [`SignoutRequest::parse`] accepts.
    pub fn request_line(&self, time: u64, nonce: &str, bare: &str) -> Option<String> {
        let nonce: [u8; NONCE_LEN] = nonce.as_bytes().try_into().ok()?;
        let mac = request_mac(self.request.first()?, time, &nonce, bare).finalize().into_bytes();
        let line = format!("v1 {time} {} {bare} {}", core::str::from_utf8(&nonce).ok()?, data_encoding::BASE64.encode(&mac));
        SignoutRequest::parse(line.as_bytes()).ok()?;
        Some(line)
    }

    /// Whether the request's MAC is the one some secret's key makes (constant time).
    pub fn verifies(&self, request: &SignoutRequest<'_>) -> bool {
        // every key is tried, so the time does not say which secret signed
        self.request.iter().fold(false, |ok, key| {
            ok | request_mac(key, request.time, &request.nonce, request.jid).verify_slice(&request.mac).is_ok()
        })
    }

    fn record_mac(key: &HmacSha256, host: &str, username: &str, record: &Record) -> HmacSha256 {
        let mut mac = key.clone();
        mac.update(STATE_LABEL);
        update_prefixed(&mut mac, host.as_bytes());
        update_prefixed(&mut mac, username.as_bytes());
        mac.update(&record.signed_out_at.to_be_bytes());
        mac.update(&[u8::try_from(record.recent.len()).unwrap_or(u8::MAX)]);
        for r in &record.recent {
            mac.update(&r.nonce);
            mac.update(&r.until.to_be_bytes());
        }
        mac
    }

    /// The stored form of `record` for `username` of `host`, sealed under `secrets[0]`; `None` with
    /// more than [`MAX_RECENT`] nonces.
    pub fn seal(&self, host: &str, username: &str, record: &Record) -> Option<StoredRecord> {
        if record.recent.len() > MAX_RECENT {
            return None;
        }
        let mac = Self::record_mac(self.state.first()?, host, username, record).finalize().into_bytes();
        let mut nonces = Vec::with_capacity(record.recent.len() * ENTRY_LEN);
        for r in &record.recent {
            nonces.extend_from_slice(&r.nonce);
            nonces.extend_from_slice(format!("{:020}", r.until).as_bytes());
        }
        Some(StoredRecord {
            format: Field::Integer(RECORD_FORMAT),
            time: Field::Text(record.signed_out_at.to_string().into_bytes()),
            nonces: Field::Text(nonces),
            mac: Field::Text(data_encoding::HEXLOWER.encode(&mac).into_bytes()),
        })
    }

    /// The record `stored` holds for `username` of `host`, if it is well formed and its MAC
    /// verifies under one of the secrets.
    pub fn open(&self, host: &str, username: &str, stored: &StoredRecord) -> Option<Record> {
        let format_ok = match stored.format {
            Field::Integer(n) => n == RECORD_FORMAT,
            Field::Float(f) => f == RECORD_FORMAT as f64,
            _ => false,
        };
        let (Field::Text(time), Field::Text(nonces), Field::Text(mac)) = (&stored.time, &stored.nonces, &stored.mac) else {
            return None;
        };
        if !format_ok || mac.len() != 2 * MAC_LEN {
            return None;
        }
        let record = Record { signed_out_at: parse_decimal(time)?, recent: parse_entries(nonces)? };
        let mac = data_encoding::HEXLOWER.decode(mac).ok()?;
        let ok = self
            .state
            .iter()
            .fold(false, |ok, key| ok | Self::record_mac(key, host, username, &record).verify_slice(&mac).is_ok());
        ok.then_some(record)
    }

    /// The record `stored` holds, as of `now`: one that fails its check counts as signed out `now`,
    /// with no nonces and the note to log. `None`: nothing stored.
    fn current(&self, host: &str, username: &str, stored: Option<&StoredRecord>, now: u64) -> Option<(Record, Option<Note>)> {
        Some(match self.open(host, username, stored?) {
            None => (Record { signed_out_at: now, recent: Vec::new() }, Some(Note::StoredRecordInvalid)),
            Some(r) => (r, None),
        })
    }

    /// When `username` of `host` was signed out, by what storage holds at `now` (`None`: nothing):
    /// a record that fails its check counts as signed out `now`, with the note to log.
    pub fn signed_out_at(
        &self,
        host: &str,
        username: &str,
        stored: Option<&StoredRecord>,
        now: u64,
    ) -> (Option<u64>, Option<Note>) {
        match self.current(host, username, stored, now) {
            None => (None, None),
            Some((r, note)) => (Some(r.signed_out_at).filter(|&t| t > 0), note),
        }
    }
}

/// An accepted sign-out: whose, the record to store, and a note for the log.
#[derive(Debug)]
pub struct Accepted {
    /// The nodeprep'd localpart signed out.
    pub username: String,
    /// The new record, to store as it is.
    pub record: StoredRecord,
    /// Set when the stored record was unusable (taken as "signed out now").
    pub note: Option<Note>,
}

/// Checks a sign-out request `line` for `host` at unix time `now`, in the spec's order. `nodeprep`
/// is Prosody's; `load(username)` is called only for a request whose MAC verified and whose time is
/// inside the window, and gives the user's stored record (`None`: none). The outer error is
/// `load`'s.
pub fn sign_out<E>(
    keys: &SignoutKeys,
    host: Option<&str>,
    line: &[u8],
    now: u64,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    load: impl FnOnce(&str) -> Result<Option<StoredRecord>, E>,
) -> Result<Result<Accepted, Refusal>, E> {
    let request = match SignoutRequest::parse(line) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let username = request.unverified_localpart();
    if nodeprep(username).as_deref() != Some(username) {
        return Ok(Err(Refusal::Malformed));
    }
    let Some(host) = host.filter(|h| jid::same_domain(h, request.unverified_host())) else {
        return Ok(Err(Refusal::WrongHost));
    };
    if !keys.verifies(&request) {
        return Ok(Err(Refusal::BadSignature));
    }
    if request.time.abs_diff(now) > WINDOW {
        return Ok(Err(Refusal::Stale));
    }
    let stored = load(username)?;
    let (mut record, note) = keys.current(host, username, stored.as_ref(), now).unwrap_or_default();
    if let Err(refusal) = admit(&mut record, &request, now) {
        return Ok(Err(refusal));
    }
    let record = keys.seal(host, username, &record).expect("admit keeps at most MAX_RECENT nonces");
    Ok(Ok(Accepted { username: username.to_owned(), record, note }))
}

/// The replay check against `record` at `now`, and the record after accepting.
fn admit(record: &mut Record, request: &SignoutRequest<'_>, now: u64) -> Result<(), Refusal> {
    // a nonce is forgotten only once a replay of its request would be stale
    record.recent.retain(|r| r.until >= now);
    if record.recent.iter().any(|r| r.nonce == request.nonce) {
        return Err(Refusal::Replayed);
    }
    while record.recent.len() >= MAX_RECENT {
        // the first of the soonest to expire: a replay of its request has the least time left
        let soonest = (0..record.recent.len()).min_by_key(|&i| record.recent[i].until).unwrap_or(0);
        record.recent.remove(soonest);
    }
    // a replay is stale once the clock is past TIME + WINDOW; the time check made that at least now
    record.recent.push(Recent { nonce: request.nonce, until: request.time.saturating_add(WINDOW) });
    // never back: neither a web server whose clock is behind, nor one behind the server's clock
    // (a token its web app mints in the server's current step must be refused)
    record.signed_out_at = record.signed_out_at.max(request.time).max(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "01234567890123456789012345678901";

    fn keys() -> SignoutKeys {
        SignoutKeys::from_secrets(&[SecretBytes::new(b"a-token-secret-of-some-thirty-bytes".to_vec())]).unwrap()
    }

    fn good() -> String {
        keys().request_line(1_750_000_000, NONCE, "alice@example.org").unwrap()
    }

    #[test]
    fn a_good_line_parses_with_or_without_one_line_feed() {
        let line = good();
        for l in [line.clone(), format!("{line}\n")] {
            let r = SignoutRequest::parse(l.as_bytes()).unwrap();
            assert_eq!(
                (r.unverified_time(), r.unverified_localpart(), r.unverified_host()),
                (1_750_000_000, "alice", "example.org")
            );
            assert!(keys().verifies(&r));
        }
    }

    /// The base64 digit with its lowest bit flipped: in a MAC's last digit, a trailing bit.
    fn other_trailing_bits(digit: u8) -> char {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let i = ALPHABET.iter().position(|&c| c == digit).unwrap();
        char::from(ALPHABET[i ^ 1])
    }

    #[test]
    fn every_other_shape_is_malformed() {
        let line = good();
        let f: Vec<&str> = line.split(' ').collect();
        let with = |i: usize, v: &str| {
            let mut g = f.clone();
            g[i] = v;
            g.join(" ")
        };
        let long_jid = format!("{}@{}", "a".repeat(1023), "b".repeat(1024));
        let bad = [
            format!("{line}\n\n"),
            format!("{line}\r\n"),
            format!("{line} "),
            format!(" {line}"),
            line.replacen(' ', "  ", 1),
            line.replacen(' ', "\t", 1),
            f[..4].join(" "),
            with(0, "v2"),
            with(0, "V1"),
            with(1, "0"),
            with(1, "01750000000"),
            with(1, "18446744073709551616"),
            with(1, "123456789012345678901"),
            with(1, "-1"),
            with(1, "+1750000000"),
            with(1, ""),
            with(2, &NONCE[..31]),
            with(2, &format!("{NONCE}0")),
            with(2, &format!("{}x", &NONCE[..31])),
            with(3, "alice@example.org/res"),
            with(3, "alice"),
            with(3, "@example.org"),
            with(3, "alice@"),
            with(3, "a@b@example.org"),
            with(3, "al\u{a0}ice@example.org"),
            with(3, "al\u{7f}ice@example.org"),
            with(3, &long_jid),
            with(4, &f[4][..43]),
            // the same 32 bytes with other trailing bits: only the canonical spelling
            with(4, &format!("{}{}=", &f[4][..42], other_trailing_bits(f[4].as_bytes()[42]))),
            with(4, &f[4].replace('=', "A")),
            with(4, &format!("{}!", &f[4][..43])),
            with(4, &format!("{}A==", &f[4][..42])),
        ];
        for b in bad {
            assert!(matches!(SignoutRequest::parse(b.as_bytes()), Err(Refusal::Malformed)), "{b:?}");
        }
        assert!(SignoutRequest::parse(&[b'1'; MAX_LINE_LEN + 1]).is_err());
        assert!(matches!(SignoutRequest::parse(&[0xff, b' ']), Err(Refusal::Malformed)));
    }

    #[test]
    fn the_bounds_themselves_parse() {
        let k = keys();
        let longest = format!("{}@{}", "a".repeat(1023), "b".repeat(1023));
        for (time, jid) in [(1, "a@b"), (u64::MAX, "a@b"), (1_750_000_000, longest.as_str()), (9, "jürgen@example.org")] {
            let l = k.request_line(time, NONCE, jid).unwrap();
            assert!(l.len() <= MAX_LINE_LEN);
            let r = SignoutRequest::parse(l.as_bytes()).unwrap();
            assert_eq!((r.unverified_time(), r.unverified_jid()), (time, jid));
        }
    }

    #[test]
    fn debug_shows_no_mac() {
        let line = good();
        let r = SignoutRequest::parse(line.as_bytes()).unwrap();
        let mac = line.rsplit(' ').next().unwrap();
        assert!(!format!("{r:?}").contains(mac));
        assert!(!format!("{:?}", keys()).contains("secret"));
        let record = keys().seal("example.org", "alice", &Record { signed_out_at: 5, recent: Vec::new() }).unwrap();
        let Field::Text(mac) = &record.mac else { panic!() };
        assert!(!format!("{record:?}").contains(core::str::from_utf8(mac).unwrap()));
    }

    #[test]
    fn stored_strings_longer_than_the_fields_are_not_read() {
        let mut asked = Vec::new();
        let _ = StoredRecord::read(|name, longest| {
            asked.push((name, longest));
            Ok::<_, ()>(Field::Absent)
        });
        assert_eq!(asked, [("format", 0), ("time", 20), ("nonces", 16 * 52), ("mac", 64)]);
        let r = Record { signed_out_at: 5, recent: vec![Recent { nonce: [b'1'; 32], until: 9 }; MAX_RECENT + 1] };
        assert!(keys().seal("example.org", "alice", &r).is_none());
    }

    #[test]
    fn refusal_names_are_the_specs() {
        let names: Vec<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["malformed", "wrong-host", "bad-signature", "stale", "replayed"]);
        assert_eq!(Note::StoredRecordInvalid.as_str(), "stored-record-invalid");
    }
}

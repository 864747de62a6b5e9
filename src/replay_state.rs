//! The replay cache across restarts: what a clean stop saves, and what a start makes of what it
//! finds.
//!
//! A clean stop (or a module reload) saves the replay cache: its high-water step, its live entries
//! and the quarantine still running, authenticated with a key derived from the host's token secret.
//! While the server runs, storage holds a marker instead ([`Stored::Running`]), so a start can tell
//! that the last run did not stop cleanly (`kill -9`, a segfault, the OOM killer): the tokens it
//! accepted are then unknown. Such a start, and one whose saved state fails its check, refuses
//! every token whose OTP step could have been accepted before it (a quarantine, RFC 8446 §8.2's
//! answer for 0-RTT after a restart): steps up to the start's step plus `otp_skew`. Later steps are
//! accepted, so a token minted at most `otp_step × (otp_skew + 1)` seconds after the start logs in;
//! logins cost nothing more, as nothing is written per login. A saved state is never a reason to
//! refuse logins beyond that bound: any field out of range refuses the whole state (with a warning)
//! and the start is handled as unclean.
//!
//! The state key is `HMAC-SHA256(token_secret, KEY_LABEL)`. A token's MAC is `HMAC-SHA256(token_secret,
//! OTP ‖ NONCE ‖ JID)`, whose message begins with an ASCII digit; `KEY_LABEL` begins with a NUL, so
//! the key is never the MAC of any token (nor a SASL-HMAC secret half, made the same way). The
//! state's MAC covers [`MAC_LABEL`] and then fixed-width fields and the host, length-prefixed.
//!
//! The form storage keeps is [`StateRecord`]: its fields as the storage back end gives them back
//! ([`Field`]), written from a [`SavedState`] and read back into one (or refused) here, as far as
//! [`Held::read`] asks its [`Source`]; the Lua binding only converts a record to a table and gives
//! the core raw access to a stored one.

use core::fmt;

use data_encoding::HEXLOWER;
use hmac::Mac;

use crate::options::OTP_SKEW;
use crate::replay::{Key, CLOCK_BACK_TOLERANCE};
use crate::token::{derive_key, HmacSha256, MAC_LEN};

/// The state format this version writes (`format` in storage).
pub const FORMAT: u64 = 3;

/// What the state key is derived from: never a token's message (those begin with a digit).
const KEY_LABEL: &[u8] = b"\0prosody-auth-hmac replay-state key v1";
/// The first field of every state MAC's message.
const MAC_LABEL: &[u8] = b"prosody-auth-hmac replay-state v3\0";

/// A replay cache as saved at a clean stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedState {
    /// The `otp_step` (seconds) the steps below count in.
    pub otp_step: u64,
    /// The `otp_skew` the entries' expiries were set for: a token of step `s` is accepted up to
    /// step `s + otp_skew`, and its entry kept until then.
    pub otp_skew: u64,
    /// The cache's high-water step.
    pub high_water: u64,
    /// Tokens of steps up to this one are refused ([`crate::Reject::UncleanRestart`]); 0: none.
    pub quarantine: u64,
    /// Live entries: (key, expiry step).
    pub entries: Vec<(Key, u64)>,
}

/// What a start found in storage.
#[derive(Debug)]
pub enum Stored {
    /// Nothing: the first start with this storage.
    Nothing,
    /// The marker a running server leaves: the last run did not stop cleanly.
    Running,
    /// A saved state and the MAC stored with it.
    State(SavedState, Vec<u8>),
    /// Something that is neither: why.
    Unreadable(Refusal),
}

/// Why a saved state was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A field is missing, of the wrong type, or an entry cannot be read.
    Unreadable,
    /// No MAC: saved by a version before this format, or edited.
    Unauthenticated,
    /// The MAC does not verify under any configured token secret.
    BadMac,
    /// Saved under another `otp_step`: its steps mean other times.
    OtherStep,
    /// Saved under another `otp_skew`: its entries expire when the old window closes, not the new.
    OtherSkew,
    /// Written by another version of the state format (its `format` field).
    OtherFormat,
    /// More entries than the replay cache holds.
    TooMany,
    /// A step further ahead of this server's clock than a token lives.
    Ahead,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Unreadable => "the saved replay state is unreadable",
            Refusal::Unauthenticated => "the saved replay state has no MAC (saved by an older version, or edited)",
            Refusal::BadMac => "the saved replay state's MAC does not verify (edited, or saved under other token secrets)",
            Refusal::OtherStep => "the replay state was saved under another otp_step",
            Refusal::OtherSkew => "the replay state was saved under another otp_skew",
            Refusal::OtherFormat => "the saved replay state is of another format (saved by another version of this module)",
            Refusal::TooMany => "the saved replay state holds more entries than token_replay_cache_size",
            Refusal::Ahead => "the saved replay state names steps further ahead of this clock than a token lives",
        })
    }
}

/// What a start made of what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Nothing was stored: no quarantine.
    Fresh,
    /// A clean stop's state, verified and taken: `taken` entries live, `dropped` expired.
    Clean {
        /// Entries taken into the cache.
        taken: usize,
        /// Entries already expired.
        dropped: usize,
    },
    /// The last run did not stop cleanly (`refused` is `None`), or its state was refused: token
    /// steps up to `quarantine` are refused.
    Unclean {
        /// Why the saved state was not taken, when there was one.
        refused: Option<Refusal>,
        /// The last refused step.
        quarantine: u64,
    },
}

/// One value of a stored state as the storage back end gave it back (Prosody's storage keeps a
/// Lua table; some back ends keep JSON). Read back from disk, so untrusted: [`StateRecord::read`]
/// checks every field.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// Not there.
    Absent,
    /// A non-negative whole number.
    Integer(u64),
    /// A floating-point number (a back end that keeps numbers as floats, as JSON does, gives whole
    /// numbers back as floats).
    Float(f64),
    /// A string, as bytes.
    Text(Vec<u8>),
    /// A boolean.
    Boolean(bool),
    /// A list: the entries a state is written with ([`StateRecord::saved`]).
    List(Vec<Field>),
    /// A table storage gave back, not read: only [`Held::read`] decides whether to read its items
    /// (those of `entries`, one at a time through [`Source::item`], at most `max_entries + 1`).
    Table,
    /// Anything else: a negative integer, a function, a string longer than the core reads there.
    Other,
}

/// The replay state in the form storage keeps it, field by field: what `v:replay_state()` and
/// `v:seal_replay_state()` return and `v:restore_replay_state()` takes. A saved state has `format`
/// ([`FORMAT`]), `otp_step`, `otp_skew`, `high_water` and `quarantine` as whole numbers, `entries`
/// as one `"<32 lowercase hex digits> <expiry step>"` string per entry and `mac` as 64 lowercase
/// hex digits; the running marker has `format` and `running = true`. The MAC covers the values,
/// not this form: a form that reads as another value is refused by the MAC, one that reads as
/// none by [`StateRecord::read`].
#[derive(Clone, Debug, PartialEq)]
pub struct StateRecord {
    /// The state format ([`FORMAT`]).
    pub format: Field,
    /// `true` in the running marker.
    pub running: Field,
    /// [`SavedState::otp_step`].
    pub otp_step: Field,
    /// [`SavedState::otp_skew`].
    pub otp_skew: Field,
    /// [`SavedState::high_water`].
    pub high_water: Field,
    /// [`SavedState::quarantine`].
    pub quarantine: Field,
    /// [`SavedState::entries`], one string each.
    pub entries: Field,
    /// The state's MAC, hex.
    pub mac: Field,
}

/// What storage held for the replay state, before it is read: nothing, a record (a table, read
/// through its [`Source`]), or anything else.
#[derive(Clone, Debug, PartialEq)]
pub enum Held<S> {
    /// Nothing (the first start with this storage).
    Nothing,
    /// A table, read field by field as [`Held::read`] asks.
    Record(S),
    /// Something that is not a table.
    Other,
}

/// Raw access to a table storage gave back: one value at a time, converted, as [`Held::read`] asks
/// for it. Storage is untrusted and its lists have no bound of their own, so the core, not the
/// source, decides what is read: the source copies nothing it is not asked for.
pub trait Source {
    /// What reading the table can fail with (not a refusal: nothing stored raises).
    type Error;
    /// The value under `name`: a string of more than `longest` bytes is [`Field::Other`], not
    /// copied ([`Field::text`]); a table is [`Field::Table`], none of its items read.
    fn field(&mut self, name: &'static str, longest: usize) -> Result<Field, Self::Error>;
    /// Item `n` (from 1) of the table under `name`, converted as [`Source::field`] converts a
    /// value; `None` past the table's sequence (its first nil) or when `name` holds no table.
    fn item(&mut self, name: &'static str, n: usize, longest: usize) -> Result<Option<Field>, Self::Error>;
}

/// The longest `"<key hex> <expiry>"` entry: 32 hex digits, a space and a `u64` (20 digits).
const MAX_ENTRY_LEN: usize = 32 + 1 + 20;

impl Field {
    /// The longest string a record's field is read from: twice a MAC's hex (a longer MAC still
    /// reads, and is refused by its check). Storage is untrusted: a longer string is not copied.
    pub const MAX_TEXT: usize = 4 * MAC_LEN;

    /// A string as storage gave it back: [`Field::Text`], or [`Field::Other`] (not copied) when it
    /// is longer than `longest` bytes, the longest string the core reads where it was found.
    pub fn text(bytes: &[u8], longest: usize) -> Field {
        if bytes.len() > longest {
            Field::Other
        } else {
            Field::Text(bytes.to_vec())
        }
    }

    /// This value as a [`Source`] gives it: a list is an unread [`Field::Table`], a string longer
    /// than `longest` is [`Field::Other`].
    fn as_given(&self, longest: usize) -> Field {
        match self {
            Field::List(_) => Field::Table,
            Field::Text(t) if t.len() > longest => Field::Other,
            f => f.clone(),
        }
    }
}

impl StateRecord {
    /// A record with every field absent.
    pub const EMPTY: StateRecord = StateRecord {
        format: Field::Absent,
        running: Field::Absent,
        otp_step: Field::Absent,
        otp_skew: Field::Absent,
        high_water: Field::Absent,
        quarantine: Field::Absent,
        entries: Field::Absent,
        mac: Field::Absent,
    };

    /// `state` and its `mac` as storage keeps them.
    pub fn saved(state: &SavedState, mac: &[u8]) -> StateRecord {
        let entries =
            state.entries.iter().map(|(key, expiry)| Field::Text(format!("{} {expiry}", HEXLOWER.encode(key)).into_bytes()));
        StateRecord {
            format: Field::Integer(FORMAT),
            otp_step: Field::Integer(state.otp_step),
            otp_skew: Field::Integer(state.otp_skew),
            high_water: Field::Integer(state.high_water),
            quarantine: Field::Integer(state.quarantine),
            entries: Field::List(entries.collect()),
            mac: Field::Text(HEXLOWER.encode(mac).into_bytes()),
            ..StateRecord::EMPTY
        }
    }

    /// The marker a running server keeps in storage in place of a saved state.
    pub fn running() -> StateRecord {
        StateRecord { format: Field::Integer(FORMAT), running: Field::Boolean(true), ..StateRecord::EMPTY }
    }

    /// Every field with its name in storage (the names the Lua table uses).
    pub fn fields(&self) -> [(&'static str, &Field); 8] {
        [
            ("format", &self.format),
            ("running", &self.running),
            ("otp_step", &self.otp_step),
            ("otp_skew", &self.otp_skew),
            ("high_water", &self.high_water),
            ("quarantine", &self.quarantine),
            ("entries", &self.entries),
            ("mac", &self.mac),
        ]
    }

    /// What this record is, for a replay cache of at most `max_entries` entries: read as a
    /// [`Source`] ([`Held::read`]).
    pub fn read(self, max_entries: usize) -> Stored {
        match Held::Record(self).read(max_entries) {
            Ok(stored) => stored,
            Err(never) => match never {},
        }
    }

    fn get(&self, name: &str) -> Option<&Field> {
        self.fields().into_iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }
}

impl<S: Source + ?Sized> Source for &mut S {
    type Error = S::Error;

    fn field(&mut self, name: &'static str, longest: usize) -> Result<Field, Self::Error> {
        (**self).field(name, longest)
    }

    fn item(&mut self, name: &'static str, n: usize, longest: usize) -> Result<Option<Field>, Self::Error> {
        (**self).item(name, n, longest)
    }
}

/// A record in memory read as storage would give it back: its lists are tables.
impl Source for StateRecord {
    type Error = core::convert::Infallible;

    fn field(&mut self, name: &'static str, longest: usize) -> Result<Field, Self::Error> {
        Ok(self.get(name).map_or(Field::Absent, |f| f.as_given(longest)))
    }

    fn item(&mut self, name: &'static str, n: usize, longest: usize) -> Result<Option<Field>, Self::Error> {
        Ok(match self.get(name) {
            Some(Field::List(items)) => n.checked_sub(1).and_then(|i| items.get(i)).map(|f| f.as_given(longest)),
            _ => None,
        })
    }
}

impl<S: Source> Held<S> {
    /// What a start found, for a replay cache of at most `max_entries` entries: the running
    /// marker, a saved state and its MAC (not yet verified: [`decide`] does that), or why it cannot
    /// be one; anything but nothing or a table is unreadable.
    ///
    /// Only `entries` is read as a list: a table in any other field is unreadable, none of its
    /// items read. The entries are read last, one at a time, at most `max_entries + 1` of them and
    /// each at most as long as an entry can be, so a stored list of any length costs at most that;
    /// a list of more than `max_entries` is refused by its count (before anything of the state is
    /// hashed), even when its items are not entries.
    pub fn read(self, max_entries: usize) -> Result<Stored, S::Error> {
        let mut record = match self {
            Held::Nothing => return Ok(Stored::Nothing),
            Held::Record(record) => record,
            Held::Other => return Ok(Stored::Unreadable(Refusal::Unreadable)),
        };
        let mut field = |name| record.field(name, Field::MAX_TEXT);
        if field("running")? == Field::Boolean(true) {
            return Ok(Stored::Running);
        }
        let mac = match field("mac")? {
            Field::Absent => return Ok(Stored::Unreadable(Refusal::Unauthenticated)),
            Field::Text(hex) => HEXLOWER.decode(&hex).ok(),
            _ => None,
        };
        if whole(&field("format")?) != Some(FORMAT) {
            return Ok(Stored::Unreadable(Refusal::OtherFormat));
        }
        let numbers = (field("otp_step")?, field("otp_skew")?, field("high_water")?, field("quarantine")?);
        let fields = (whole(&numbers.0), whole(&numbers.1), whole(&numbers.2), whole(&numbers.3), mac);
        let (Some(otp_step), Some(otp_skew), Some(high_water), Some(quarantine), Some(mac)) = fields else {
            return Ok(Stored::Unreadable(Refusal::Unreadable));
        };
        // a string under `entries` is not one: nothing of it is copied
        if record.field("entries", 0)? != Field::Table {
            return Ok(Stored::Unreadable(Refusal::Unreadable));
        }
        let mut next = 0usize;
        let items = core::iter::from_fn(|| {
            next += 1;
            record.item("entries", next, MAX_ENTRY_LEN).transpose()
        });
        let (mut entries, mut count, mut readable) = (Vec::new(), 0usize, true);
        for item in items.take(max_entries.saturating_add(1)) {
            count += 1;
            match entry(&item?) {
                Some(e) if readable => entries.push(e),
                _ => readable = false,
            }
        }
        Ok(match (count > max_entries, readable) {
            (true, _) => Stored::Unreadable(Refusal::TooMany),
            (false, false) => Stored::Unreadable(Refusal::Unreadable),
            (false, true) => Stored::State(SavedState { otp_step, otp_skew, high_water, quarantine, entries }, mac),
        })
    }
}

/// A whole number as storage gave it back: an integer, or a float with no fraction that a double
/// holds exactly (below 2^53).
fn whole(field: &Field) -> Option<u64> {
    match *field {
        Field::Integer(n) => Some(n),
        Field::Float(f) if (0.0..9_007_199_254_740_992.0).contains(&f) && f.fract() == 0.0 => Some(f as u64),
        _ => None,
    }
}

/// One entry, `"<32 lowercase hex digits> <expiry step>"`, in its one spelling: the expiry in
/// decimal digits without a sign or a leading zero.
fn entry(field: &Field) -> Option<(Key, u64)> {
    let Field::Text(line) = field else { return None };
    if line.len() > MAX_ENTRY_LEN {
        return None;
    }
    let (hex, expiry) = (line.get(..32)?, line.get(32..)?.strip_prefix(b" ")?);
    let key: Key = HEXLOWER.decode(hex).ok()?.try_into().ok()?;
    if expiry.is_empty() || !expiry.iter().all(u8::is_ascii_digit) || (expiry.len() > 1 && expiry[0] == b'0') {
        return None;
    }
    Some((key, core::str::from_utf8(expiry).ok()?.parse().ok()?))
}

/// The quarantine after an unclean stop noticed at step `current`: every step a token accepted
/// before it can have (a token of step `s` is accepted up to step `s + skew`, so a run that ended
/// by `current` accepted none past `current + skew`).
pub fn crash_quarantine(current: u64, skew: u64) -> u64 {
    current.saturating_add(skew)
}

/// The highest step a state saved by a clean stop can name, seen from step `current`: an entry
/// expires `2 × skew + 2` steps after the earliest step it was accepted at, and is kept
/// [`CLOCK_BACK_TOLERANCE`] steps past that. Beyond it the saving clock was ahead of this one
/// (or the state was made up); taking it would refuse logins until this clock caught up.
pub fn horizon(current: u64, skew: u64) -> u64 {
    current.saturating_add(skew.saturating_mul(2)).saturating_add(2).saturating_add(CLOCK_BACK_TOLERANCE)
}

/// The state MAC's key for one token secret (`secret` is keyed with it).
fn state_key(secret: &HmacSha256) -> HmacSha256 {
    derive_key(secret, KEY_LABEL)
}

/// The MAC of `state` for `host` under one token secret.
fn mac_with(secret: &HmacSha256, host: Option<&str>, state: &SavedState) -> HmacSha256 {
    let mut mac = state_key(secret);
    mac.update(MAC_LABEL);
    match host {
        None => mac.update(&[0]),
        Some(h) => {
            mac.update(&[1]);
            mac.update(&(h.len() as u64).to_be_bytes());
            mac.update(h.as_bytes());
        }
    }
    for n in [state.otp_step, state.otp_skew, state.high_water, state.quarantine, state.entries.len() as u64] {
        mac.update(&n.to_be_bytes());
    }
    for (key, expiry) in &state.entries {
        mac.update(key);
        mac.update(&expiry.to_be_bytes());
    }
    mac
}

/// The MAC a clean stop stores with `state`, under the minting secret `secret`.
pub fn seal(secret: &HmacSha256, host: Option<&str>, state: &SavedState) -> [u8; MAC_LEN] {
    mac_with(secret, host, state).finalize().into_bytes().into()
}

/// Whether `mac` is `state`'s MAC for `host` under one of `secrets` (compared in constant time).
pub fn verify(secrets: &[HmacSha256], host: Option<&str>, state: &SavedState, mac: &[u8]) -> bool {
    secrets.iter().any(|s| mac_with(s, host, state).verify_slice(mac).is_ok())
}

/// What a start at step `current` makes of `stored`, for a verifier with these `secrets`, `host`,
/// `otp_step`, `skew` and replay-cache `cap`. The state to import comes back with a clean start.
pub fn decide(
    stored: Stored,
    secrets: &[HmacSha256],
    host: Option<&str>,
    (otp_step, skew, cap): (u64, u64, usize),
    current: u64,
) -> (Start, Option<SavedState>) {
    let unclean = |refused| (Start::Unclean { refused, quarantine: crash_quarantine(current, skew) }, None);
    let (state, mac) = match stored {
        Stored::Nothing => return (Start::Fresh, None),
        Stored::Running => return unclean(None),
        Stored::Unreadable(why) => return unclean(Some(why)),
        Stored::State(state, mac) => (state, mac),
    };
    // the count first: nothing of an oversized state is hashed
    if state.entries.len() > cap {
        return unclean(Some(Refusal::TooMany));
    }
    if !verify(secrets, host, &state, &mac) {
        return unclean(Some(Refusal::BadMac));
    }
    if state.otp_step != otp_step {
        return unclean(Some(Refusal::OtherStep));
    }
    if state.otp_skew != skew {
        // the last run accepted tokens of steps up to its end plus its own skew: a lowered skew
        // quarantines as far as the old one reached (it is sealed; capped at the largest allowed)
        let reached = skew.max(state.otp_skew.min(*OTP_SKEW.end()));
        return (Start::Unclean { refused: Some(Refusal::OtherSkew), quarantine: crash_quarantine(current, reached) }, None);
    }
    let limit = horizon(current, skew);
    if state.high_water > limit || state.quarantine > limit || state.entries.iter().any(|(_, e)| *e > limit) {
        return unclean(Some(Refusal::Ahead));
    }
    (Start::Clean { taken: 0, dropped: 0 }, Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::KeyInit;

    fn key(secret: &[u8]) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap()
    }

    const SKEW: u64 = 1;
    const CUR: u64 = 1_000;
    const LIMITS: (u64, u64, usize) = (30, SKEW, 10);

    fn state() -> SavedState {
        SavedState {
            otp_step: 30,
            otp_skew: SKEW,
            high_water: CUR - 3,
            quarantine: 0,
            entries: vec![([7; 16], CUR - 1), ([8; 16], CUR)],
        }
    }

    fn sealed(s: &SavedState) -> Stored {
        Stored::State(s.clone(), seal(&key(b"secret one"), Some("example.org"), s).to_vec())
    }

    fn start(stored: Stored) -> Start {
        decide(stored, &[key(b"secret one"), key(b"secret two")], Some("example.org"), LIMITS, CUR).0
    }

    const CRASH: Start = Start::Unclean { refused: None, quarantine: CUR + SKEW };

    #[test]
    fn nothing_stored_is_a_first_start_and_a_running_marker_a_crash() {
        assert_eq!(start(Stored::Nothing), Start::Fresh);
        assert_eq!(start(Stored::Running), CRASH);
        assert_eq!(
            start(Stored::Unreadable(Refusal::Unauthenticated)),
            Start::Unclean { refused: Some(Refusal::Unauthenticated), quarantine: CUR + SKEW }
        );
    }

    #[test]
    fn a_sealed_state_is_taken_as_saved() {
        let s = state();
        let (outcome, taken) = decide(sealed(&s), &[key(b"secret one")], Some("example.org"), LIMITS, CUR);
        assert_eq!(outcome, Start::Clean { taken: 0, dropped: 0 });
        assert_eq!(taken, Some(s));
        // sealed under a secret that is now the second one (rotation): still verifies
        assert!(matches!(start(sealed(&state())), Start::Clean { .. }));
    }

    /// Every field is covered: an edit of any of them, or the state of another host or under
    /// another secret, is refused and handled as a crash, never as more than its quarantine.
    #[test]
    fn any_edit_is_refused_and_handled_as_a_crash() {
        let good = state();
        let Stored::State(_, mac) = sealed(&good) else { unreachable!() };
        type Edit = Box<dyn Fn(&mut SavedState)>;
        let edits: Vec<Edit> = vec![
            Box::new(|s| s.entries.pop().map(drop).unwrap_or(())),
            Box::new(|s| s.entries[0].0[15] ^= 1),
            Box::new(|s| s.entries[0].1 -= 1),
            Box::new(|s| s.entries.swap(0, 1)),
            Box::new(|s| s.high_water += 1),
            Box::new(|s| s.quarantine = CUR + 1),
            Box::new(|s| s.otp_step = 60),
            Box::new(|s| s.otp_skew = 2),
            Box::new(|s| s.entries.push(([9; 16], CUR))),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut s = good.clone();
            edit(&mut s);
            let refused = Start::Unclean { refused: Some(Refusal::BadMac), quarantine: CUR + SKEW };
            assert_eq!(start(Stored::State(s, mac.clone())), refused, "edit {i}");
        }
        let mut flipped = mac.clone();
        flipped[0] ^= 1;
        assert!(matches!(start(Stored::State(good.clone(), flipped)), Start::Unclean { refused: Some(Refusal::BadMac), .. }));
        assert!(matches!(start(Stored::State(good.clone(), mac[..16].to_vec())), Start::Unclean { .. }));
        let other_host = Stored::State(good.clone(), seal(&key(b"secret one"), Some("example.com"), &good).to_vec());
        assert!(matches!(start(other_host), Start::Unclean { refused: Some(Refusal::BadMac), .. }));
        let no_host = Stored::State(good.clone(), seal(&key(b"secret one"), None, &good).to_vec());
        assert!(matches!(start(no_host), Start::Unclean { refused: Some(Refusal::BadMac), .. }));
        let other_secret = Stored::State(good.clone(), seal(&key(b"secret three"), Some("example.org"), &good).to_vec());
        assert!(matches!(start(other_secret), Start::Unclean { refused: Some(Refusal::BadMac), .. }));
    }

    /// Sealed (by whoever holds the secret, or a clock that was ahead) but out of range: refused,
    /// never a lock-out past the crash quarantine.
    #[test]
    fn out_of_range_values_are_refused_even_when_sealed() {
        let limit = horizon(CUR, SKEW);
        let cases: Vec<(SavedState, Refusal)> = vec![
            (SavedState { high_water: limit + 1, ..state() }, Refusal::Ahead),
            (SavedState { high_water: u64::MAX, ..state() }, Refusal::Ahead),
            (SavedState { quarantine: limit + 1, ..state() }, Refusal::Ahead),
            (SavedState { entries: vec![([1; 16], limit + 1)], ..state() }, Refusal::Ahead),
            (SavedState { otp_step: 60, ..state() }, Refusal::OtherStep),
            (SavedState { otp_skew: 0, ..state() }, Refusal::OtherSkew),
            (SavedState { entries: (0..11u8).map(|n| ([n; 16], CUR)).collect(), ..state() }, Refusal::TooMany),
        ];
        for (s, why) in cases {
            assert_eq!(start(sealed(&s)), Start::Unclean { refused: Some(why), quarantine: CUR + SKEW }, "{s:?}");
        }
        // at the bounds: taken
        let at = SavedState {
            high_water: limit,
            quarantine: limit,
            entries: (0..10u8).map(|n| ([n; 16], limit)).collect(),
            ..state()
        };
        assert!(matches!(start(sealed(&at)), Start::Clean { .. }));
    }

    /// A token of step `s` was accepted up to step `s + skew` under the skew it was saved with: a
    /// larger new skew gets its own crash quarantine, a smaller one the old skew's (never more than
    /// the largest skew allowed).
    #[test]
    fn another_skew_quarantines_as_far_as_either_window_reaches() {
        for (saved, expected) in [(0, CUR + SKEW), (3, CUR + 3), (10, CUR + 10), (u64::MAX, CUR + 10)] {
            let s = SavedState { otp_skew: saved, ..state() };
            assert_eq!(start(sealed(&s)), Start::Unclean { refused: Some(Refusal::OtherSkew), quarantine: expected }, "{saved}");
        }
    }

    #[test]
    fn the_state_key_is_never_a_token_mac() {
        // a token's MAC message is OTP ‖ NONCE ‖ JID: it begins with an ASCII digit
        assert!(!KEY_LABEL[0].is_ascii_digit());
        let secret = key(b"secret one");
        let mut token_mac = secret.clone();
        token_mac.update(b"12345678");
        let token_mac: [u8; MAC_LEN] = token_mac.finalize().into_bytes().into();
        let mut derived = secret.clone();
        derived.update(KEY_LABEL);
        let derived: [u8; MAC_LEN] = derived.finalize().into_bytes().into();
        assert_ne!(derived, token_mac);
        assert_ne!(MAC_LABEL, KEY_LABEL);
    }

    // The persisted form: what storage gives back is untrusted.

    fn record(s: &SavedState) -> StateRecord {
        let Stored::State(s, mac) = sealed(s) else { unreachable!() };
        StateRecord::saved(&s, &mac)
    }

    fn text(s: &str) -> Field {
        Field::Text(s.as_bytes().to_vec())
    }

    fn lines(r: &StateRecord) -> Vec<Field> {
        let Field::List(l) = &r.entries else { unreachable!() };
        l.clone()
    }

    /// What a start makes of a record (read, then decided).
    fn start_from(r: StateRecord) -> Start {
        start(r.read(10))
    }

    const UNREADABLE: Start = Start::Unclean { refused: Some(Refusal::Unreadable), quarantine: CUR + SKEW };
    const BAD_MAC: Start = Start::Unclean { refused: Some(Refusal::BadMac), quarantine: CUR + SKEW };

    #[test]
    fn a_record_reads_back_as_the_state_it_was_written_from() {
        let s = state();
        let r = record(&s);
        assert_eq!(r.format, Field::Integer(FORMAT));
        assert_eq!(r.running, Field::Absent);
        assert_eq!(lines(&r)[0], text(&format!("{} {}", "07".repeat(16), CUR - 1)));
        let Stored::State(back, mac) = r.clone().read(10) else { panic!("not read back") };
        assert_eq!(back, s);
        assert_eq!(mac.len(), MAC_LEN);
        assert_eq!(start_from(r.clone()), Start::Clean { taken: 0, dropped: 0 });
        // one name per field, as the binding writes them
        let names: Vec<_> = r.fields().iter().map(|(n, _)| *n).collect();
        assert!(names.iter().enumerate().all(|(i, n)| !names[..i].contains(n)), "{names:?}");
        // no entries, and a JSON back end's whole floats
        let empty = SavedState { entries: vec![], ..state() };
        assert_eq!(start_from(record(&empty)), Start::Clean { taken: 0, dropped: 0 });
        let floats = StateRecord {
            format: Field::Float(3.0),
            otp_step: Field::Float(30.0),
            high_water: Field::Float((CUR - 3) as f64),
            ..r
        };
        assert_eq!(start_from(floats), Start::Clean { taken: 0, dropped: 0 });
        // the running marker, and what is not a record
        assert!(matches!(StateRecord::running().read(10), Stored::Running));
        assert!(matches!(Held::<StateRecord>::Nothing.read(10), Ok(Stored::Nothing)));
        assert!(matches!(Held::<StateRecord>::Other.read(10), Ok(Stored::Unreadable(Refusal::Unreadable))));
        assert_eq!(
            start_from(StateRecord { running: Field::Boolean(false), ..record(&s) }),
            Start::Clean { taken: 0, dropped: 0 }
        );
    }

    /// A well-formed entry or field with another value is the MAC's to refuse; one in another
    /// spelling, or cut in another place, is refused as unreadable: nothing of either is taken.
    #[test]
    fn a_tampered_or_shifted_entry_is_refused() {
        let good = record(&state());
        let first = format!("{} {}", "07".repeat(16), CUR - 1);
        let with_first = |line: Field| {
            let mut l = lines(&good);
            l[0] = line;
            StateRecord { entries: Field::List(l), ..good.clone() }
        };
        for tampered in [
            format!("{}6 {}", "07".repeat(15) + "0", CUR - 1), // one key digit
            format!("{} {}", "07".repeat(16), CUR),            // the expiry
            format!("{} {}", "08".repeat(16), CUR),            // the other entry's key
        ] {
            assert_eq!(start_from(with_first(text(&tampered))), BAD_MAC, "{tampered}");
        }
        let hex = "07".repeat(16);
        for bad in [
            format!("{} {}", &hex[..31], CUR - 1),               // a digit short: the space shifted left
            format!("{}0 {}", hex, CUR - 1),                     // a digit more
            format!("{} {}{}", &hex[..31], &hex[31..], CUR - 1), // the space inside the key
            format!("{}  {}", hex, CUR - 1),
            format!("{} +{}", hex, CUR - 1),
            format!("{} 0{}", hex, CUR - 1),
            format!("{} {} ", hex, CUR - 1),
            format!("{} -{}", hex, CUR - 1),
            format!("{} 99999999999999999999", hex), // past u64
            format!("{} {}", hex, "1".repeat(40)),
            hex.clone(),
            format!("{} ", hex),
            String::new(),
        ] {
            assert_eq!(start_from(with_first(text(&bad))), UNREADABLE, "{bad:?}");
        }
        // another spelling of a key: upper-case hex
        let lettered = record(&SavedState { entries: vec![([0xab; 16], CUR)], ..state() });
        let upper = format!("{} {}", "AB".repeat(16), CUR);
        assert_eq!(start_from(StateRecord { entries: Field::List(vec![text(&upper)]), ..lettered.clone() }), UNREADABLE);
        assert_eq!(start_from(lettered), Start::Clean { taken: 0, dropped: 0 });
        assert_eq!(start_from(with_first(Field::Text(vec![0xff; 40]))), UNREADABLE);
        assert_eq!(start_from(with_first(text(&"1".repeat(1 << 20)))), UNREADABLE);
        assert_eq!(Field::text(&[b'1'; 1 << 20], Field::MAX_TEXT), Field::Other, "not copied");
        assert_eq!(start_from(with_first(Field::Integer(7))), UNREADABLE);
        assert_eq!(start_from(with_first(Field::List(vec![text(&first)]))), UNREADABLE);
        assert_eq!(start_from(with_first(Field::Absent)), UNREADABLE);
        // fields swapped or moved: each reads as another value, which the MAC covers
        let swapped = StateRecord { high_water: good.quarantine.clone(), quarantine: good.high_water.clone(), ..good.clone() };
        assert_eq!(start_from(swapped), BAD_MAC);
        let swapped = StateRecord { otp_step: good.otp_skew.clone(), otp_skew: good.otp_step.clone(), ..good.clone() };
        assert_eq!(start_from(swapped), BAD_MAC);
        let mut reordered = lines(&good);
        reordered.swap(0, 1);
        assert_eq!(start_from(StateRecord { entries: Field::List(reordered), ..good.clone() }), BAD_MAC);
    }

    #[test]
    fn a_field_of_another_kind_or_format_is_refused() {
        let good = record(&state());
        let other_format = Start::Unclean { refused: Some(Refusal::OtherFormat), quarantine: CUR + SKEW };
        for format in [Field::Integer(2), Field::Integer(4), Field::Float(3.5), text("3"), Field::Absent, Field::Other] {
            assert_eq!(start_from(StateRecord { format: format.clone(), ..good.clone() }), other_format, "{format:?}");
        }
        for n in [Field::Absent, Field::Other, text("30"), Field::Boolean(true), Field::Float(-30.0), Field::Float(30.5)] {
            assert_eq!(start_from(StateRecord { otp_step: n.clone(), ..good.clone() }), UNREADABLE, "{n:?}");
        }
        for n in [Field::Float(f64::NAN), Field::Float(f64::INFINITY), Field::Float(9_007_199_254_740_992.0), Field::List(vec![])]
        {
            assert_eq!(start_from(StateRecord { high_water: n.clone(), ..good.clone() }), UNREADABLE, "{n:?}");
        }
        for entries in [Field::Absent, text("a"), Field::Integer(0)] {
            assert_eq!(start_from(StateRecord { entries: entries.clone(), ..good.clone() }), UNREADABLE, "{entries:?}");
        }
    }

    #[test]
    fn a_missing_or_bad_mac_is_refused() {
        let good = record(&state());
        let Field::Text(hex) = &good.mac else { unreachable!() };
        let unauthenticated = Start::Unclean { refused: Some(Refusal::Unauthenticated), quarantine: CUR + SKEW };
        assert_eq!(start_from(StateRecord { mac: Field::Absent, ..good.clone() }), unauthenticated);
        let mut flipped = hex.clone();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(start_from(StateRecord { mac: Field::Text(flipped), ..good.clone() }), BAD_MAC);
        assert_eq!(start_from(StateRecord { mac: Field::Text(hex[..32].to_vec()), ..good.clone() }), BAD_MAC);
        assert_eq!(start_from(StateRecord { mac: Field::Text([&hex[..], b"00"].concat()), ..good.clone() }), BAD_MAC);
        let twice = [hex.as_slice(), hex.as_slice()].concat();
        assert_eq!(start_from(StateRecord { mac: Field::text(&twice, Field::MAX_TEXT), ..good.clone() }), BAD_MAC);
        let longer = [twice.as_slice(), b"0"].concat();
        assert_eq!(start_from(StateRecord { mac: Field::text(&longer, Field::MAX_TEXT), ..good.clone() }), UNREADABLE);
        for mac in [
            Field::Text(hex.to_ascii_uppercase()),
            Field::Text(hex[1..].to_vec()),
            text("zz"),
            Field::Integer(0),
            Field::List(vec![]),
        ] {
            assert_eq!(start_from(StateRecord { mac: mac.clone(), ..good.clone() }), UNREADABLE, "{mac:?}");
        }
    }

    /// More entries than the cache holds: refused by their count (these are not even entries).
    #[test]
    fn an_oversize_entry_list_is_refused_before_it_is_read() {
        let too_many = Start::Unclean { refused: Some(Refusal::TooMany), quarantine: CUR + SKEW };
        let garbage = StateRecord { entries: Field::List(vec![Field::Other; 11]), ..record(&state()) };
        assert!(matches!(garbage.clone().read(10), Stored::Unreadable(Refusal::TooMany)));
        assert_eq!(start_from(garbage.clone()), too_many);
        assert!(matches!(garbage.read(11), Stored::Unreadable(Refusal::Unreadable)));
        // at the cap: read
        let full = SavedState { entries: (0..10u8).map(|n| ([n; 16], CUR)).collect(), ..state() };
        assert_eq!(start_from(record(&full)), Start::Clean { taken: 0, dropped: 0 });
        let over = SavedState { entries: (0..11u8).map(|n| ([n; 16], CUR)).collect(), ..state() };
        assert_eq!(start_from(record(&over)), too_many);
    }

    /// A record whose field `long.0` is a list of `long.2` copies of `long.1`, made on demand, and
    /// which counts the items it is asked for.
    struct Counting {
        record: StateRecord,
        long: (&'static str, Field, usize),
        asked: Vec<&'static str>,
        longest_item: usize,
    }

    impl Source for Counting {
        type Error = core::convert::Infallible;

        fn field(&mut self, name: &'static str, longest: usize) -> Result<Field, Self::Error> {
            if name == self.long.0 {
                return Ok(Field::Table);
            }
            self.record.field(name, longest)
        }

        fn item(&mut self, name: &'static str, n: usize, longest: usize) -> Result<Option<Field>, Self::Error> {
            self.asked.push(name);
            self.longest_item = self.longest_item.max(longest);
            if name == self.long.0 {
                return Ok((1..=self.long.2).contains(&n).then(|| self.long.1.as_given(longest)));
            }
            self.record.item(name, n, longest)
        }
    }

    /// Storage is untrusted and a list has no bound of its own: of a million and more items under
    /// `entries`, one more than the cache holds is asked for; of a list anywhere else, none.
    #[test]
    fn a_stored_list_is_read_only_as_far_as_the_cap() {
        let million = 1_000_000 + 10;
        let line = text(&format!("{} {}", "07".repeat(16), CUR));
        let read = |name, item: &Field| {
            let mut source =
                Counting { record: record(&state()), long: (name, item.clone(), million), asked: vec![], longest_item: 0 };
            let stored = match Held::Record(&mut source).read(10) {
                Ok(stored) => stored,
                Err(never) => match never {},
            };
            let asked = |n| source.asked.iter().filter(|a| **a == n).count();
            (start(stored), asked(name), source.asked.len(), source.longest_item)
        };
        let too_many = Start::Unclean { refused: Some(Refusal::TooMany), quarantine: CUR + SKEW };
        for item in [line.clone(), Field::Other, Field::Table, text(&"1".repeat(Field::MAX_TEXT))] {
            assert_eq!(read("entries", &item), (too_many, 11, 11, MAX_ENTRY_LEN), "{item:?}");
        }
        for name in ["format", "otp_step", "otp_skew", "high_water", "quarantine", "mac"] {
            let why = if name == "format" { Refusal::OtherFormat } else { Refusal::Unreadable };
            let (outcome, items, all, _) = read(name, &line);
            assert_eq!(outcome, Start::Unclean { refused: Some(why), quarantine: CUR + SKEW }, "{name}");
            assert_eq!((items, all), (0, 0), "{name}");
        }
        // a list under `running` is not the marker: the rest is read (2 entries, then the end)
        assert_eq!(read("running", &line), (Start::Clean { taken: 0, dropped: 0 }, 0, 3, MAX_ENTRY_LEN));
        // the longest entry is the longest item copied; one byte more is not an entry
        let longest = format!("{} {}", "07".repeat(16), u64::MAX);
        assert_eq!(longest.len(), MAX_ENTRY_LEN);
        let ahead = Start::Unclean { refused: Some(Refusal::Ahead), quarantine: CUR + SKEW };
        let with = |line: &str| StateRecord { entries: Field::List(vec![text(line)]), ..record(&state()) };
        assert_eq!(start_from(with(&longest)), BAD_MAC, "read, and refused by the MAC");
        let Stored::State(s, _) = with(&longest).read(10) else { panic!("not read") };
        assert_eq!(start(sealed(&s)), ahead);
        assert_eq!(start_from(with(&format!("{longest}0"))), UNREADABLE);
    }

    #[test]
    fn the_bounds_saturate() {
        assert_eq!(crash_quarantine(u64::MAX, 3), u64::MAX);
        assert_eq!(horizon(u64::MAX - 1, 10), u64::MAX);
        assert_eq!(horizon(100, 1), 100 + 2 + 2 + CLOCK_BACK_TOLERANCE);
    }
}

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

use core::fmt;

use hmac::{KeyInit, Mac};
use zeroize::Zeroize;

use crate::options::OTP_SKEW;
use crate::replay::{Key, CLOCK_BACK_TOLERANCE};
use crate::token::{HmacSha256, MAC_LEN};

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
    let mut derive = secret.clone();
    derive.update(KEY_LABEL);
    let mut key: [u8; MAC_LEN] = derive.finalize().into_bytes().into();
    let keyed = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
    key.zeroize();
    keyed
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

    #[test]
    fn the_bounds_saturate() {
        assert_eq!(crash_quarantine(u64::MAX, 3), u64::MAX);
        assert_eq!(horizon(u64::MAX - 1, 10), u64::MAX);
        assert_eq!(horizon(100, 1), 100 + 2 + 2 + CLOCK_BACK_TOLERANCE);
    }
}

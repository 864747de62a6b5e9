//! Single use across restarts, through the verifier (src/replay_state.rs): after an unclean stop no
//! token accepted before it is accepted again, fresh tokens log in once the quarantine has passed
//! (at most `otp_step × (otp_skew + 1)` seconds after the start), a clean stop costs nothing, and a
//! saved state is never a reason to refuse more than an unclean start does.
use prosody_auth_hmac::replay_state::{SavedState, Start, Stored};
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

const HOST: &str = "example.org";
const STEP: u64 = 30;
const SKEW: u64 = 1;
/// A start at the beginning of a step.
const T0: u64 = 1_800_000_000 - 1_800_000_000 % STEP;

fn verifier_with(secrets: &[&str]) -> Verifier {
    let secrets = secrets.iter().map(|s| SecretBytes::from_config_str(s)).collect();
    let seed = prosody_auth_hmac::totp::decode_seed("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U").unwrap();
    Verifier::new(secrets, seed, Settings { replay_cache_size: 1000, ..Settings::default() }, Some(HOST)).unwrap()
}

/// A start as the module makes it: what storage held, then the running marker written.
fn restart(v: &Verifier, stored: Stored, now: u64) -> Start {
    let start = v.restart(stored, now).unwrap();
    v.running_marker_stored(true);
    start
}

fn verifier() -> Verifier {
    verifier_with(&["a-secret-of-more-than-sixteen-bytes"])
}

fn jid(n: usize) -> String {
    format!("user{n}@{HOST}")
}

/// The run before the stop: tokens minted over the whole of a token's life (by a web app whose
/// clock is up to `otp_skew` steps behind or ahead) and used up to the very end. Returns them
/// with the time of the last use.
fn run(v: &Verifier) -> (Vec<(String, String)>, u64) {
    let mut used = Vec::new();
    let end = T0 + 5 * STEP - 1;
    for (n, at) in (T0..=end).step_by(7).enumerate() {
        let skew = v.otp().skew() as i64;
        for offset in (-skew..=skew).map(|k| k * STEP as i64) {
            let minted = at.checked_add_signed(offset).unwrap();
            let token = v.mint(&jid(n), minted).unwrap();
            v.verify(token.as_bytes(), &[&jid(n)], at).unwrap();
            used.push((jid(n), token));
        }
    }
    // the last one at the last second: minted `otp_skew` steps ahead (one by default), valid
    // until as many steps after that
    let token = v.mint(&jid(999), end + v.otp().skew() * STEP).unwrap();
    v.verify(token.as_bytes(), &[&jid(999)], end).unwrap();
    used.push((jid(999), token));
    (used, end)
}

/// Every token used before the stop, tried again at each second of its remaining life.
fn replays_accepted(v: &Verifier, used: &[(String, String)], from: u64) -> usize {
    let mut accepted = 0;
    for now in (from..from + 3 * STEP).step_by(3) {
        for (j, token) in used {
            if v.verify(token.as_bytes(), &[j], now).is_ok() {
                accepted += 1;
            }
        }
    }
    accepted
}

#[test]
fn after_a_crash_no_token_used_before_is_accepted_again() {
    let before = verifier();
    let (used, end) = run(&before);
    // kill -9: the running marker is all that is left; the start comes a second later
    let after = verifier();
    let start = end + 1;
    let outcome = restart(&after, Stored::Running, start);
    assert!(matches!(outcome, Start::Unclean { refused: None, .. }), "{outcome:?}");
    assert_eq!(replays_accepted(&after, &used, start), 0);
    let (j, t) = &used[used.len() - 1];
    assert_eq!(after.verify(t.as_bytes(), &[j], start), Err(Reject::UncleanRestart));
}

#[test]
fn without_the_restart_the_replays_would_be_accepted() {
    // the same run and replays against a verifier that does not know about the crash: this is
    // what the test above guards against (so its zero is not for want of valid replays)
    let before = verifier();
    let (used, end) = run(&before);
    let after = verifier();
    assert!(replays_accepted(&after, &used, end + 1) > 0);
}

#[test]
fn fresh_tokens_log_in_again_within_the_stated_bound() {
    for offset in 0..STEP {
        let v = verifier();
        let start = T0 + offset;
        restart(&v, Stored::Running, start);
        let ends = v.quarantine_ends(start).unwrap();
        assert!(ends > start && ends - start <= STEP * (SKEW + 1), "start +{offset}: ends {}", ends - start);
        let before_end = v.mint(&jid(1), ends - 1).unwrap();
        assert_eq!(v.verify(before_end.as_bytes(), &[&jid(1)], ends - 1), Err(Reject::UncleanRestart));
        let fresh = v.mint(&jid(2), ends).unwrap();
        assert!(v.verify(fresh.as_bytes(), &[&jid(2)], ends).is_ok());
        // and that token is single-use as ever
        assert_eq!(v.verify(fresh.as_bytes(), &[&jid(2)], ends + 1), Err(Reject::Replayed));
    }
}

#[test]
fn a_clean_stop_keeps_every_used_token_refused_and_sets_no_quarantine() {
    let before = verifier();
    let (used, end) = run(&before);
    let (state, mac) = before.saved_replay_state().unwrap();
    let after = verifier();
    let outcome = restart(&after, Stored::State(state, mac.to_vec()), end + 1);
    assert!(matches!(outcome, Start::Clean { .. }), "{outcome:?}");
    assert_eq!(after.quarantine_ends(end + 1), None);
    assert_eq!(replays_accepted(&after, &used, end + 1), 0);
    let fresh = after.mint(&jid(5), end + 1).unwrap();
    assert!(after.verify(fresh.as_bytes(), &[&jid(5)], end + 1).is_ok());
    // nothing stored at all: the first start, no quarantine either
    let first = verifier();
    assert_eq!(restart(&first, Stored::Nothing, end), Start::Fresh);
    assert!(first.verify(first.mint(&jid(6), end).unwrap().as_bytes(), &[&jid(6)], end).is_ok());
}

/// A clean stop during the quarantine keeps it: the crashed run's tokens stay refused.
#[test]
fn the_quarantine_outlives_a_clean_stop_within_it() {
    let before = verifier();
    let (used, end) = run(&before);
    let second = verifier();
    restart(&second, Stored::Running, end + 1);
    let (state, mac) = second.saved_replay_state().unwrap();
    let third = verifier();
    restart(&third, Stored::State(state, mac.to_vec()), end + 2);
    assert_eq!(third.quarantine_ends(end + 2), second.quarantine_ends(end + 1));
    assert!(third.quarantine_ends(end + 2).is_some());
    assert_eq!(replays_accepted(&third, &used, end + 2), 0);
}

/// Item 8: an edited state is refused and handled as a crash; it re-enables nothing, and locks
/// nobody out for longer than a crash does.
#[test]
fn an_edited_state_is_handled_as_a_crash() {
    let before = verifier();
    let (used, end) = run(&before);
    let (state, mac) = before.saved_replay_state().unwrap();
    let edits: Vec<(&str, SavedState)> = vec![
        ("entries removed", SavedState { entries: vec![], ..state.clone() }),
        ("high water far ahead", SavedState { high_water: state.high_water + 2880, ..state.clone() }),
        ("quarantine far ahead", SavedState { quarantine: state.high_water + 2880, ..state.clone() }),
        (
            "400 000 entries",
            SavedState {
                entries: (0..400_000u32).map(|n| ((n as u128).to_le_bytes(), state.high_water)).collect(),
                ..state.clone()
            },
        ),
    ];
    for (what, edited) in edits {
        let after = verifier();
        let outcome = restart(&after, Stored::State(edited, mac.to_vec()), end + 1);
        assert!(matches!(outcome, Start::Unclean { refused: Some(_), .. }), "{what}: {outcome:?}");
        assert_eq!(replays_accepted(&after, &used, end + 1), 0, "{what}");
        let ends = after.quarantine_ends(end + 1).unwrap();
        assert!(ends - (end + 1) <= STEP * (SKEW + 1), "{what}");
        assert!(after.verify(after.mint(&jid(7), ends).unwrap().as_bytes(), &[&jid(7)], ends).is_ok(), "{what}");
        assert_eq!(after.replay_stats().0, 1, "{what}: nothing of the edited state was taken");
    }
    // sealed by another host's secret: refused the same way
    let (state, mac) = verifier_with(&["another-secret-of-more-than-sixteen-bytes"]).saved_replay_state().unwrap();
    let after = verifier();
    assert!(matches!(restart(&after, Stored::State(state, mac.to_vec()), end + 1), Start::Unclean { refused: Some(_), .. }));
    // sealed before a rotation (the old secret now second): still taken
    let (state, mac) = before.saved_replay_state().unwrap();
    let rotated = verifier_with(&["the-new-secret-of-more-than-sixteen-bytes", "a-secret-of-more-than-sixteen-bytes"]);
    assert!(matches!(restart(&rotated, Stored::State(state, mac.to_vec()), end + 1), Start::Clean { .. }));
}

#[test]
fn a_quarantine_is_reported_only_while_it_runs() {
    let v = verifier();
    assert_eq!(v.quarantine_ends(T0), None);
    restart(&v, Stored::Running, T0);
    let ends = v.quarantine_ends(T0).unwrap();
    assert_eq!(ends, T0 + STEP * (SKEW + 1));
    assert_eq!(v.quarantine_ends(ends - 1), Some(ends));
    assert_eq!(v.quarantine_ends(ends), None);
}

/// A crash after the clean stop's save (Prosody still closing): a token accepted then would be
/// missing from the saved state, so none is.
#[test]
fn once_the_state_is_saved_no_token_is_accepted() {
    let v = verifier();
    let (used, end) = run(&v);
    // looking at the state (an admin in the shell, another module) changes nothing
    let (looked, _) = v.saved_replay_state().unwrap();
    let seen = v.mint(&jid(10), end).unwrap();
    assert!(v.verify(seen.as_bytes(), &[&jid(10)], end).is_ok());
    let (state, mac) = v.seal_replay_state().unwrap();
    assert_eq!(state.entries.len(), looked.entries.len() + 1);
    let late = v.mint(&jid(8), end).unwrap();
    assert_eq!(v.verify(late.as_bytes(), &[&jid(8)], end), Err(Reject::UncleanRestart));
    // saved again (server-stopping, then unload): the same state, looked at or sealed
    assert_eq!(v.seal_replay_state().unwrap(), (state.clone(), mac));
    assert_eq!(v.saved_replay_state().unwrap(), (state.clone(), mac));
    let after = verifier();
    assert!(matches!(restart(&after, Stored::State(state, mac.to_vec()), end + 1), Start::Clean { .. }));
    assert_eq!(replays_accepted(&after, &used, end + 1), 0);
    assert_eq!(after.verify(seen.as_bytes(), &[&jid(10)], end + 1), Err(Reject::Replayed));
    assert!(after.verify(late.as_bytes(), &[&jid(8)], end + 1).is_ok(), "refused before, so never used");
}

fn verifier_with_skew(skew: u64) -> Verifier {
    let secrets = vec![SecretBytes::from_config_str("a-secret-of-more-than-sixteen-bytes")];
    let seed = prosody_auth_hmac::totp::decode_seed("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U").unwrap();
    let settings = Settings { replay_cache_size: 1000, skew, ..Settings::default() };
    Verifier::new(secrets, seed, settings, Some(HOST)).unwrap()
}

/// A token of step `s` is accepted up to step `s + otp_skew`: a state saved under a smaller skew
/// drops its entry before a larger skew stops accepting the token. Raised or lowered across a
/// clean stop, no token used before is accepted again, and the pause stays bounded.
#[test]
fn a_changed_otp_skew_across_a_clean_stop_lets_no_used_token_in() {
    for (old, new) in [(1, 4), (0, 3), (4, 1), (3, 0)] {
        let before = verifier_with_skew(old);
        let (used, end) = run(&before);
        // tokens minted as far ahead as the old skew allows, used at the last second
        let mut used = used;
        for k in 0..=old {
            let n = 2000 + k as usize;
            let token = before.mint(&jid(n), end + k * STEP).unwrap();
            before.verify(token.as_bytes(), &[&jid(n)], end).unwrap();
            used.push((jid(n), token));
        }
        let (state, mac) = before.saved_replay_state().unwrap();
        let after = verifier_with_skew(new);
        let outcome = restart(&after, Stored::State(state, mac.to_vec()), end + 1);
        let mut accepted = Vec::new();
        // whether a token is accepted depends on the step only: twice a step is every chance
        for now in (end + 1..end + 1 + (old + new + 3) * STEP).step_by(STEP as usize / 2) {
            for (j, token) in &used {
                if after.verify(token.as_bytes(), &[j], now).is_ok() {
                    accepted.push(now - end);
                }
            }
        }
        assert!(accepted.is_empty(), "skew {old} -> {new} ({outcome:?}): replays accepted at +{accepted:?} s");
        // never a lock-out past a crash quarantine under the larger of the two skews
        let ends = after.quarantine_ends(end + 1).unwrap_or(end + 1);
        assert!(ends - (end + 1) <= STEP * (old.max(new) + 1), "skew {old} -> {new}: {outcome:?}");
        let fresh = after.mint(&jid(3000), ends).unwrap();
        assert!(after.verify(fresh.as_bytes(), &[&jid(3000)], ends).is_ok(), "skew {old} -> {new}");
    }
}

/// Until storage holds the running marker, a crash would look like the clean stop before it and
/// this run's tokens would log in again after it: none is accepted, whatever the start.
#[test]
fn no_token_is_accepted_until_the_running_marker_is_stored() {
    let before = verifier();
    let (_, end) = run(&before);
    let (state, mac) = before.saved_replay_state().unwrap();
    for stored in [Stored::Nothing, Stored::Running, Stored::State(state, mac.to_vec())] {
        let v = verifier();
        let later = end + 3 * STEP; // past any quarantine
        v.restart(stored, end + 1).unwrap();
        assert!(v.awaiting_running_marker());
        let token = v.mint(&jid(9), later).unwrap();
        assert_eq!(v.verify(token.as_bytes(), &[&jid(9)], later), Err(Reject::UncleanRestart));
        v.running_marker_stored(false);
        assert_eq!(v.verify(token.as_bytes(), &[&jid(9)], later), Err(Reject::UncleanRestart));
        v.running_marker_stored(true);
        assert!(!v.awaiting_running_marker());
        assert!(v.verify(token.as_bytes(), &[&jid(9)], later).is_ok(), "refused before, so never used");
    }
    // a verifier that never read storage (the CLI, a benchmark) has no marker to wait for
    let v = verifier();
    assert!(v.verify(v.mint(&jid(9), end).unwrap().as_bytes(), &[&jid(9)], end).is_ok());
}

//! The default replay cache against a sustained login storm, on an injected clock: with the default
//! settings it holds a rate well above what one Prosody core serves (300–840 logins/s on the
//! benchmark machine, docs/benchmarks.md sections 6 and 7) for longer than any entry lives, with no
//! `CacheFull`; the live entries never exceed the rate × the longest an entry lives (150 s); and
//! the former default of 100 000 fails closed in the same storm.
use prosody_auth_hmac::replay::CLOCK_BACK_TOLERANCE;
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

const SEED: &str = "XVGR73KMZH2M4XMY";
const RATE: u64 = 1_200; // logins per second, ~1.4 × the fastest storm measured
const SECONDS: u64 = 160; // longer than an entry lives

fn verifier(cap: Option<usize>) -> Verifier {
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    let mut settings = Settings { allow_weak_secrets: true, ..Settings::default() };
    if let Some(cap) = cap {
        settings.replay_cache_size = cap;
    }
    Verifier::new(vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")], seed, settings, None).unwrap()
}

/// RATE logins a second for SECONDS, 20 000 users, every token minted one step after the clock (a
/// web app 30 s ahead, accepted with the default skew of 1: each entry then lives the longest there
/// is). Returns the peak of live
/// entries, or the second and refusal of the first login refused.
fn storm(v: &Verifier) -> Result<usize, (u64, Reject)> {
    let step = Settings::default().step;
    let start = 1_700_000_010u64; // the first second of an OTP step
    let mut peak = 0;
    for second in 0..SECONDS {
        let now = start + second;
        for i in 0..RATE {
            // each user logs in again every ~17 s: far under its quota of 100 live entries
            let jid = format!("user{}@example.org", (second * RATE + i) % 20_000);
            let token = v.mint(&jid, now + step).unwrap();
            v.verify(token.as_bytes(), &[&jid], now).map_err(|r| (second, r))?;
        }
        peak = peak.max(v.replay_stats().0);
    }
    Ok(peak)
}

#[test]
fn the_default_cache_holds_1200_logins_a_second_at_the_longest_entry_life() {
    let d = Settings::default();
    let entry_life = d.step * (2 * d.skew + 1 + CLOCK_BACK_TOLERANCE);
    assert_eq!(entry_life, 150, "the documented entry life");
    let v = verifier(None);
    let (_, cap, _) = v.replay_stats();
    let peak = storm(&v).unwrap_or_else(|(second, r)| panic!("refused {r:?} at second {second}"));
    // a token of step T is taken from step T - 1 on and its entry leaves at the start of step T + 4:
    // at the end of a step the last 150 s of logins are live, and never more
    assert_eq!(peak as u64, RATE * entry_life, "peak of live entries");
    assert!(peak * 5 < cap, "{peak} of {cap}: the default keeps a margin over this rate");
}

#[test]
fn the_former_default_fails_closed_in_the_same_storm() {
    let v = verifier(Some(100_000));
    let (second, reject) = storm(&v).expect_err("100 000 entries hold only 666 logins a second for 150 s");
    assert_eq!(reject, Reject::CacheFull);
    assert_eq!(second, 100_000 / RATE, "full when the 100 001st entry comes");
}

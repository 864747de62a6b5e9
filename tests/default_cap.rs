//! The default replay cache against a sustained login storm, on an injected clock: the default
//! settings hold a rate well above what one Prosody core serves (~600 logins/s on the benchmark
//! machine, docs/benchmarks.md section 7) for longer than any entry lives, with no `CacheFull`, and
//! the live entries stay within rate × the longest an entry lives.
use prosody_auth_hmac::replay::CLOCK_BACK_TOLERANCE;
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

const SEED: &str = "XVGR73KMZH2M4XMY";

#[test]
fn a_storm_at_1500_logins_a_second_for_200_s_never_fills_the_default_cache() {
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    let settings = Settings { allow_weak_secrets: true, ..Settings::default() };
    let (step, skew) = (settings.step, settings.skew);
    let v = Verifier::new(vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")], seed, settings, None).unwrap();
    let (_, cap, _) = v.replay_stats();
    let rate = 1_500u64; // 2.5 × the benchmark machine's highest sustained rate
    let entry_life = step * (2 * skew + 1 + CLOCK_BACK_TOLERANCE); // 150 s
    let start = 1_700_000_010u64;
    let mut peak = 0;
    for second in 0..200u64 {
        let now = start + second;
        for i in 0..rate {
            // 20 000 users, each logging in again every ~13 s: under its quota of 100 live entries
            let jid = format!("user{}@example.org", (second * rate + i) % 20_000);
            let token = v.mint(&jid, now).unwrap();
            assert_eq!(v.verify(token.as_bytes(), &[&jid], now).err(), None::<Reject>, "second {second}, login {i}");
        }
        peak = peak.max(v.replay_stats().0);
    }
    eprintln!("peak live entries: {peak}");
    assert!(peak as u64 <= rate * entry_life, "{peak} live entries, more than {rate}/s × {entry_life} s");
    // the former default (100 000) would have failed closed in this storm
    assert!(peak > 100_000, "{peak}");
    assert!(peak < cap, "{peak} of {cap}");
}

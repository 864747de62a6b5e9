//! An injected clock at every edge of the OTP window, for several skews; and secret rotation.
use prosody_auth_hmac::replay::CLOCK_BACK_TOLERANCE;
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

const SEED: &str = "XVGR73KMZH2M4XMY";
const JID: &str = "alice@example.org";

fn verifier(secrets: &[&str], skew: u64) -> Verifier {
    let secrets = secrets.iter().map(|s| SecretBytes::from_config_str(s)).collect();
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    Verifier::new(secrets, seed, Settings { skew, allow_weak_secrets: true, ..Settings::default() }, Some("example.org")).unwrap()
}

#[test]
fn every_edge_of_the_window() {
    // A token minted anywhere in step S is accepted from the first second of step S - skew to the
    // last second of step S + skew, and refused one second outside on either side.
    for skew in [0u64, 1, 2] {
        let step = 56_666_666u64; // 1_699_999_980 .. 1_700_000_009
        let start = step * 30;
        for minted_at in [start, start + 29] {
            let earliest = (step - skew) * 30;
            let latest = (step + skew) * 30 + 29;
            for (now, ok) in [(earliest - 1, false), (earliest, true), (start + 15, true), (latest, true), (latest + 1, false)] {
                let v = verifier(&["secret-one-secret-one-secret-one!"], skew); // fresh: no replay state
                let token = v.mint(JID, minted_at).unwrap();
                let got = v.verify(token.as_bytes(), &[JID], now);
                if ok {
                    assert_eq!(got.map(|a| a.step()), Ok(step), "skew {skew}, minted {minted_at}, now {now}");
                } else {
                    assert_eq!(got, Err(Reject::Expired), "skew {skew}, minted {minted_at}, now {now}");
                }
            }
        }
    }
}

#[test]
fn replay_entries_expire_with_the_window_and_not_before() {
    let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
    let t0 = 1_700_000_000u64;
    let token = v.mint(JID, t0).unwrap();
    assert!(v.verify(token.as_bytes(), &[JID], t0).is_ok());
    // replayed at every second the token's OTP is still valid...
    for now in [t0, t0 + 5, t0 + 39] {
        assert_eq!(v.verify(token.as_bytes(), &[JID], now), Err(Reject::Replayed), "now {now}");
    }
    assert_eq!(v.replay_stats().0, 1);
    // ...and once the window has closed it is expired; the cache forgets it CLOCK_BACK_TOLERANCE
    // steps later.
    assert_eq!(v.verify(token.as_bytes(), &[JID], t0 + 60), Err(Reject::Expired));
    let other = v.mint("bob@example.org", t0 + 60).unwrap();
    assert!(v.verify(other.as_bytes(), &["bob@example.org"], t0 + 60).is_ok());
    assert_eq!(v.replay_stats().0, 2);
    let later = t0 + 60 + 30 * CLOCK_BACK_TOLERANCE;
    let third = v.mint("carol@example.org", later).unwrap();
    assert!(v.verify(third.as_bytes(), &["carol@example.org"], later).is_ok());
    assert_eq!(v.replay_stats().0, 2, "alice's entry was purged when carol's was added");
}

/// The clock jumps an hour ahead (a login then purges every entry) and back: the tokens used before
/// the jump are not accepted again. A step back within the tolerance changes nothing.
#[test]
fn a_clock_that_jumps_forward_and_back_does_not_revive_used_tokens() {
    let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
    let t0 = 1_700_000_000u64;
    let used = v.mint(JID, t0).unwrap();
    assert!(v.verify(used.as_bytes(), &[JID], t0).is_ok());
    let ahead = v.mint("bob@example.org", t0 + 3600).unwrap();
    assert!(v.verify(ahead.as_bytes(), &["bob@example.org"], t0 + 3600).is_ok());
    assert_eq!(v.replay_stats().0, 1, "alice's entry was purged by the jump");
    assert_eq!(v.verify(used.as_bytes(), &[JID], t0 + 5), Err(Reject::Expired));

    let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
    let used = v.mint(JID, t0).unwrap();
    assert!(v.verify(used.as_bytes(), &[JID], t0).is_ok());
    let ahead = v.mint("bob@example.org", t0 + 30 * CLOCK_BACK_TOLERANCE).unwrap();
    assert!(v.verify(ahead.as_bytes(), &["bob@example.org"], t0 + 30 * CLOCK_BACK_TOLERANCE).is_ok());
    assert_eq!(v.verify(used.as_bytes(), &[JID], t0), Err(Reject::Replayed));
    let fresh = v.mint("carol@example.org", t0).unwrap();
    assert!(v.verify(fresh.as_bytes(), &["carol@example.org"], t0).is_ok());
}

/// One account minting and logging in as fast as it can fills its quota and is then refused alone;
/// everyone else keeps logging in, and the host's cache never fills.
#[test]
fn one_account_at_full_speed_cannot_lock_out_another() {
    let secrets = vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")];
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    let settings = Settings { replay_cache_size: 1000, replay_user_quota: 100, allow_weak_secrets: true, ..Settings::default() };
    let v = Verifier::new(secrets, seed, settings, Some("example.org")).unwrap();
    let t0 = 1_700_000_000u64;
    let mut refused = 0;
    for i in 0..20_000u64 {
        let now = t0 + i / 1000; // 1 000 logins a second for 20 s
        let t = v.mint(JID, now).unwrap();
        match v.verify(t.as_bytes(), &[JID], now) {
            Ok(_) => {}
            Err(Reject::QuotaExceeded) => refused += 1,
            Err(e) => panic!("alice: {e}"),
        }
        if i % 100 == 0 {
            let jid = format!("user{i}@example.org");
            let t = v.mint(&jid, now).unwrap();
            assert!(v.verify(t.as_bytes(), &[&jid], now).is_ok(), "user{i} was locked out at login {i}");
        }
    }
    assert!(refused > 19_000, "alice was refused {refused} times");
    assert!(v.replay_stats().0 <= 1000);
}

#[test]
fn rotation_old_and_new_then_old_removed() {
    let now = 1_700_000_000u64;
    let old_only = verifier(&["old-secret-old-secret-old-secret!"], 1);
    let new_only = verifier(&["new-secret-new-secret-new-secret!"], 1);
    let old_token = old_only.mint(JID, now).unwrap();
    let new_token = new_only.mint(JID, now).unwrap();
    // during rotation both verify; the first listed secret mints
    let both = verifier(&["new-secret-new-secret-new-secret!", "old-secret-old-secret-old-secret!"], 1);
    assert!(both.verify(old_token.as_bytes(), &[JID], now).is_ok());
    assert!(both.verify(new_token.as_bytes(), &[JID], now).is_ok());
    let minted = both.mint("bob@example.org", now).unwrap();
    assert!(new_only.verify(minted.as_bytes(), &["bob@example.org"], now).is_ok());
    assert_eq!(old_only.verify(minted.as_bytes(), &["bob@example.org"], now), Err(Reject::BadSignature));
    // the old secret removed: its tokens are refused
    let fresh_old = old_only.mint("carol@example.org", now).unwrap();
    assert_eq!(new_only.verify(fresh_old.as_bytes(), &["carol@example.org"], now), Err(Reject::BadSignature));
}

/// An authentic token outside the window: the log line says how far off the minting clock was (a
/// timezone bug shows as whole hours, a clock ahead as the future), or that the token was most
/// likely used late (minted a little in the past); the client only learns `expired`.
#[test]
fn expired_tokens_say_how_far_off_the_minting_clock_was() {
    use prosody_auth_hmac::ClockDiagnosis;
    let t0 = 1_700_000_000u64; // step 56_666_666 starts at 1_699_999_980
    for (minted, want) in [
        (t0 - 3600, ClockDiagnosis::Offset(-3600)),
        (t0 + 120, ClockDiagnosis::Offset(120)),
        (t0 - 86_000, ClockDiagnosis::Offset(-85_980)),
        // 22 steps back: 660 s, a token's 60 s plus LATE_MARGIN, the last that reads as late
        (t0 - 660, ClockDiagnosis::Late { ago: 660, accepted_for: 60 }),
        (t0 - 690, ClockDiagnosis::Offset(-690)),
        (t0 - 90, ClockDiagnosis::Late { ago: 90, accepted_for: 60 }),
    ] {
        let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
        let token = v.mint(JID, minted).unwrap();
        assert_eq!(v.verify(token.as_bytes(), &[JID], t0), Err(Reject::Expired), "minted {minted}");
        let got = v.diagnose_expired(token.as_bytes(), t0);
        assert_eq!(got, want, "minted {minted}");
        assert_eq!(v.explain(Reject::Expired, token.as_bytes(), t0), Some(want));
        // the log line carries the figure, and nothing the fail2ban filter (`\([^()]*\)`) would split at
        let text = got.to_string();
        let figure = match want {
            ClockDiagnosis::Late { ago, .. } => ago,
            ClockDiagnosis::Offset(s) => s.unsigned_abs(),
            _ => unreachable!(),
        };
        assert!(text.contains(&format!("{figure} s")), "{text}");
        assert!(!text.contains(['(', ')']), "{text}");
    }
    // whole hours read as a timezone bug even where a token lasts nearly an hour
    let long = Verifier::new(
        vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")],
        prosody_auth_hmac::totp::decode_seed(SEED).unwrap(),
        Settings { step: 300, skew: 10, allow_weak_secrets: true, allow_long_lifetime: true, ..Settings::default() },
        Some("example.org"),
    )
    .unwrap();
    let start = (t0 / 300) * 300;
    for (minted, want) in [
        (start - 3600, ClockDiagnosis::Offset(-3600)),
        (start - 3900, ClockDiagnosis::Late { ago: 3900, accepted_for: 3300 }),
        (start - 4200, ClockDiagnosis::Offset(-4200)),
    ] {
        let token = long.mint(JID, minted).unwrap();
        assert_eq!(long.verify(token.as_bytes(), &[JID], start), Err(Reject::Expired));
        assert_eq!(long.diagnose_expired(token.as_bytes(), start), want);
    }
}

/// A token whose signature is good but whose OTP matches no step within a day (another otp_seed):
/// refused as `otp-mismatch`, whose text names the seed; the log line says no step matches.
#[test]
fn a_token_from_another_seed_is_an_otp_mismatch() {
    use prosody_auth_hmac::ClockDiagnosis;
    let t0 = 1_700_000_000u64;
    let other_seed = Verifier::new(
        vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")],
        prosody_auth_hmac::totp::decode_seed("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U").unwrap(),
        Settings { skew: 1, ..Settings::default() },
        Some("example.org"),
    )
    .unwrap();
    let token = other_seed.mint(JID, t0).unwrap();
    let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
    assert_eq!(v.verify(token.as_bytes(), &[JID], t0), Err(Reject::OtpMismatch)); // fixed seeds and time
    assert_eq!(v.explain(Reject::OtpMismatch, token.as_bytes(), t0), Some(ClockDiagnosis::NoMatch));
    let got = v.diagnose_expired(token.as_bytes(), t0);
    assert_eq!(got, ClockDiagnosis::NoMatch);
    assert!(got.to_string().contains("otp_seed"), "the log line names the option to compare: {got}");
    assert_eq!(Reject::OtpMismatch.condition(), "not-authorized");
    assert!(Reject::OtpMismatch.text().unwrap().contains("otp_seed"));
    // the same token under another secret is forged: the seed is never looked at
    let stranger = verifier(&["secret-two-secret-two-secret-two!"], 1);
    assert_eq!(stranger.verify(token.as_bytes(), &[JID], t0), Err(Reject::BadSignature));
}

/// At most DIAGNOSES_PER_SECOND searches in one second of the injected clock; over that an OTP
/// outside the window is refused as `expired` (not measured) rather than searched for. The search
/// that decided a refusal answers the log line's question (no second search).
#[test]
fn the_search_is_limited_per_second_of_the_clock() {
    use prosody_auth_hmac::verifier::DIAGNOSES_PER_SECOND;
    use prosody_auth_hmac::ClockDiagnosis;
    let t0 = 1_700_000_000u64;
    let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
    let other_seed = Verifier::new(
        vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")],
        prosody_auth_hmac::totp::decode_seed("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U").unwrap(),
        Settings::default(),
        Some("example.org"),
    )
    .unwrap();
    // tokens of distinct steps, so distinct codes: each is a search of its own
    let old = |k: u64| v.mint(JID, t0 - 3600 - 30 * k).unwrap();
    for k in 0..u64::from(DIAGNOSES_PER_SECOND) {
        let token = old(k);
        assert_eq!(v.verify(token.as_bytes(), &[JID], t0), Err(Reject::Expired));
        // answered from the search verify made
        assert!(matches!(v.diagnose_expired(token.as_bytes(), t0), ClockDiagnosis::Offset(_)));
    }
    let late = old(100);
    assert_eq!(v.diagnose_expired(late.as_bytes(), t0), ClockDiagnosis::NotMeasured);
    let mismatch = other_seed.mint(JID, t0).unwrap();
    assert_eq!(v.verify(mismatch.as_bytes(), &[JID], t0), Err(Reject::Expired), "over the budget: not searched");
    assert_eq!(v.diagnose_expired(mismatch.as_bytes(), t0), ClockDiagnosis::NotMeasured);
    // the next second of the clock has a budget of its own
    assert_eq!(v.verify(mismatch.as_bytes(), &[JID], t0 + 1), Err(Reject::OtpMismatch));
    assert!(matches!(v.diagnose_expired(late.as_bytes(), t0 + 1), ClockDiagnosis::Offset(_)));
}

/// What is limited is the codes computed, and one search computes at most DIAGNOSIS_MAX_CODES
/// whatever `otp_step` is (every step of a day either side where that fits; else the near steps
/// and the steps around each quarter-hour offset, none twice). A clock that goes back adds nothing
/// to the budget, and an hour back does not stop the searches for an hour.
#[test]
fn the_search_is_limited_by_its_cost_and_the_cost_by_a_constant() {
    use prosody_auth_hmac::verifier::{search_plan, DIAGNOSES_PER_SECOND, DIAGNOSIS_MAX_CODES, DIAGNOSIS_RANGE};
    use prosody_auth_hmac::verifier::{DIAGNOSIS_STEPS_PER_SECOND, LATE_MARGIN};
    use prosody_auth_hmac::ClockDiagnosis;
    assert_eq!(DIAGNOSIS_STEPS_PER_SECOND, u64::from(DIAGNOSES_PER_SECOND) * DIAGNOSIS_MAX_CODES);
    assert_eq!(search_plan(30), (vec![0..=DIAGNOSIS_RANGE / 30], DIAGNOSIS_MAX_CODES), "the default step: a whole day");
    for step in (1..=300).chain([599, 3600, 86_400]) {
        let (plan, cost) = search_plan(step);
        let counted: u64 = plan.iter().map(|r| 2 * (r.end() - r.start() + 1)).sum::<u64>() - 1;
        assert_eq!(cost, counted, "step {step}");
        assert!(cost <= DIAGNOSIS_MAX_CODES, "step {step}: {cost} codes");
        assert!(plan.windows(2).all(|w| w[0].end() < w[1].start()), "step {step}: ascending, disjoint");
        assert!(plan.iter().all(|r| *r.end() <= DIAGNOSIS_RANGE / step), "step {step}: within the range");
        // a token used late is found step by step, whatever the step
        let longest_life = step * 11;
        assert!(plan[0].end() * step >= (longest_life + LATE_MARGIN).min(DIAGNOSIS_RANGE / step * step), "step {step}");
    }
    let t0 = 1_700_000_000u64;
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    let settings = Settings { step: 1, skew: 1, allow_weak_secrets: true, ..Settings::default() };
    let v = Verifier::new(
        vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")],
        seed,
        settings,
        Some("example.org"),
    )
    .unwrap();
    // tokens minted an hour and some seconds ago: distinct codes, each found by its own search
    let old = |k: u64| v.mint(JID, t0 - 3600 - k).unwrap();
    for k in 0..u64::from(DIAGNOSES_PER_SECOND) {
        assert_eq!(v.diagnose_expired(old(k).as_bytes(), t0), ClockDiagnosis::Offset(-3600 - k as i64));
    }
    let k = u64::from(DIAGNOSES_PER_SECOND);
    assert_eq!(v.diagnose_expired(old(k).as_bytes(), t0), ClockDiagnosis::NotMeasured);
    let back = t0 - 3600;
    assert_eq!(v.diagnose_expired(old(k + 1).as_bytes(), back), ClockDiagnosis::NotMeasured, "going back adds nothing");
    assert_ne!(v.diagnose_expired(old(k + 2).as_bytes(), back + 1), ClockDiagnosis::NotMeasured);
}

/// One search costs at most a fixed number of codes whatever `otp_step` is (a day either side at
/// the default step): with `otp_step = 1` the budget of a second holds DIAGNOSES_PER_SECOND
/// searches, as at the default step, and the search still finds what a wrong clock looks like (a
/// token used late, a timezone's whole hours, half and quarter hours, a clock minutes off).
#[test]
fn the_search_costs_the_same_whatever_the_otp_step() {
    use prosody_auth_hmac::verifier::DIAGNOSES_PER_SECOND;
    use prosody_auth_hmac::ClockDiagnosis;
    let t0 = 1_700_000_000u64;
    let v = Verifier::new(
        vec![SecretBytes::from_config_str("secret-one-secret-one-secret-one!")],
        prosody_auth_hmac::totp::decode_seed(SEED).unwrap(),
        Settings { step: 1, skew: 1, allow_weak_secrets: true, ..Settings::default() },
        Some("example.org"),
    )
    .unwrap();
    let cases = [
        (t0 - 3600 - 5, ClockDiagnosis::Offset(-3605)),
        (t0 + 19_800 + 3, ClockDiagnosis::Offset(19_803)), // +5:30, 3 s fast
        (t0 - 2700, ClockDiagnosis::Offset(-2700)),        // a quarter-hour zone
        (t0 - 300, ClockDiagnosis::Late { ago: 300, accepted_for: 2 }),
        (t0 + 1000, ClockDiagnosis::Offset(1000)), // minutes fast
    ];
    assert_eq!(cases.len(), DIAGNOSES_PER_SECOND as usize);
    for (minted, want) in cases {
        let token = v.mint(JID, minted).unwrap();
        assert_eq!(v.verify(token.as_bytes(), &[JID], t0), Err(Reject::Expired), "minted {minted}");
        assert_eq!(v.diagnose_expired(token.as_bytes(), t0), want, "minted at t0 {:+}", minted as i64 - t0 as i64);
    }
    let over = v.mint(JID, t0 - 7200).unwrap();
    assert_eq!(v.diagnose_expired(over.as_bytes(), t0), ClockDiagnosis::NotMeasured, "the second's budget is used up");
}

/// The server's clock went ahead (a login was accepted there) and was set back: tokens minted now
/// by a correct web app are refused (`expired`) until the clock has caught up, and the log line
/// says so - the server's clock moved, not the web app's.
#[test]
fn a_clock_set_back_on_the_server_is_named_as_the_cause() {
    use prosody_auth_hmac::ClockDiagnosis;
    let v = verifier(&["secret-one-secret-one-secret-one!"], 1);
    let t0 = 1_700_000_000u64;
    let ahead = v.mint("bob@example.org", t0 + 3600).unwrap();
    assert!(v.verify(ahead.as_bytes(), &["bob@example.org"], t0 + 3600).is_ok());
    let fresh = v.mint(JID, t0).unwrap();
    assert_eq!(v.verify(fresh.as_bytes(), &[JID], t0), Err(Reject::Expired));
    let got = v.explain(Reject::Expired, fresh.as_bytes(), t0).expect("explained");
    assert_eq!(got, ClockDiagnosis::ServerClockBack { behind: 3600 });
    assert!(!got.to_string().contains(['(', ')']), "{got}");
    // a token the web app minted an hour late, still refused for its own OTP: the web app's clock
    let old = v.mint(JID, t0 - 3600).unwrap();
    assert_eq!(v.verify(old.as_bytes(), &[JID], t0), Err(Reject::Expired));
    assert_eq!(v.explain(Reject::Expired, old.as_bytes(), t0), Some(ClockDiagnosis::Offset(-3600)));
}

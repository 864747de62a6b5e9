//! Random and structured garbage through every entry point that takes client input: nothing may
//! panic, and nothing random may be accepted. (The cargo-fuzz targets go further; this runs in
//! every `cargo test`.)
mod common;

use prosody_auth_hmac::sasl::{parse_plain, Exchange, Mechanism, Outcome};
use prosody_auth_hmac::UntrustedToken;

use common::Rng;

#[test]
fn random_input_never_panics_and_is_never_accepted() {
    let doc = common::vectors();
    let v = common::verifier_for(&doc);
    let all: Vec<u8> = (0..=255).collect();
    let tokenish = b"0123456789 +/=ABCDEFabcdef\0@\n";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let lower = |s: &str| Some(s.to_lowercase());
    for i in 0..20_000 {
        let alphabet: &[u8] = if i % 2 == 0 { &all } else { tokenish };
        let input = rng.bytes(alphabet, if i % 100 == 0 { 3000 } else { 120 });
        let _ = UntrustedToken::parse(&input, v.layout());
        let _ = parse_plain(&input);
        assert!(v.verify(&input, &["alice@example.org"], 1_700_000_000).is_err());
        let jid = String::from_utf8_lossy(&rng.bytes(&all, 40)).into_owned();
        assert!(v.verify(&input, &[&jid], u64::MAX).is_err());
        for mech in Mechanism::ALL {
            let mut ex = Exchange::new(mech);
            let mut out = ex.step(&v, Some(&input), rng.next(), &lower);
            // SASL-HMAC answers a well-framed first message with a challenge; random proofs fail.
            for _ in 0..2 {
                if let Outcome::Challenge(_) = out {
                    let garbage = rng.bytes(&all, 40);
                    out = ex.step(&v, Some(&garbage), rng.next(), &lower);
                }
            }
            assert!(matches!(out, Outcome::Failure(_)), "{mech:?}: {out:?}");
        }
    }
}

#[test]
fn extreme_times_are_handled() {
    let doc = common::vectors();
    let v = common::verifier_for(&doc);
    let good = doc["cases"][0]["token"].as_str().unwrap();
    for now in [0, 1, 29, 30, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
        assert_eq!(v.verify(good.as_bytes(), &["alice@example.org"], now).unwrap_err().as_str(), "expired");
        let _ = v.mint("alice@example.org", now);
    }
}

//! Random and structured garbage through every entry point that takes client input: nothing may
//! panic, and nothing random may be accepted. (The cargo-fuzz targets go further; this runs in
//! every `cargo test`.)
mod common;

use prosody_auth_hmac::sasl::{parse_plain, Exchange, Mechanism, Outcome};
use prosody_auth_hmac::{Reject, UntrustedToken};

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

/// Tokens minted for one random identity, tried for others close to it, before the token's own
/// use (afterwards any acceptance would come back as `Replayed`): a case change, one byte more or
/// less, another localpart refuse with `BadSignature` (the MAC check itself, so a comparison of part
/// of the MAC or of the JID fails this within a few hundred runs); another host is `WrongHost`; a
/// digit moved across the nonce/JID boundary is `Malformed` (the layout's fixed lengths); a MAC with
/// any one bit flipped is `BadSignature`. Then the token verifies for its own identity, so the test
/// is not vacuous.
#[test]
fn nothing_minted_for_one_identity_verifies_for_another() {
    let doc = common::vectors();
    let v = common::verifier_for(&doc);
    let now = 1_700_000_000;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789.-_";
    // each identity once: its own verification uses the token up (and an account's replay quota)
    let mut seen = std::collections::HashSet::new();
    let mut checked = 0;
    for _ in 0..3_000 {
        let local = String::from_utf8(rng.bytes(alphabet, 12)).unwrap();
        if local.is_empty() || !seen.insert(local.clone()) {
            continue;
        }
        let me = format!("{local}@example.org");
        let token = v.mint(&me, now).unwrap();
        let (public, mac) = token.split_once(' ').unwrap();
        let digit = char::from(b'0' + (rng.next() % 10) as u8);
        let mut others = vec![
            format!("{}@example.org", local.to_uppercase()),
            format!("{local}{digit}@example.org"),
            format!("{digit}{local}@example.org"),
            format!("{}@example.org", String::from_utf8(rng.bytes(alphabet, 12)).unwrap()),
        ];
        if local.len() > 1 {
            others.push(format!("{}@example.org", &local[1..]));
            others.push(format!("{}@example.org", &local[..local.len() - 1]));
        }
        for other in others.iter().filter(|o| **o != me && !o.starts_with('@')) {
            assert_eq!(v.verify(token.as_bytes(), &[other.as_str()], now), Err(Reject::BadSignature), "{me}'s token for {other}");
            checked += 1;
        }
        for other_host in [format!("{local}@example.com"), format!("{local}@example.org.")] {
            assert_eq!(v.verify(token.as_bytes(), &[&other_host], now), Err(Reject::WrongHost), "{me} as {other_host}");
        }
        // the last nonce digit moved into the localpart (user 5's token for user 35)
        let (kept, moved) = public.split_at(public.len() - 1);
        let shifted = format!("{kept} {mac}");
        assert_eq!(v.verify(shifted.as_bytes(), &[&format!("{moved}{me}")], now), Err(Reject::Malformed), "{me}: shifted");
        // one bit of the MAC's bytes flipped
        let mut raw = data_encoding::BASE64.decode(mac.as_bytes()).unwrap();
        let bit = (rng.next() % (8 * raw.len() as u64)) as usize;
        raw[bit / 8] ^= 1 << (bit % 8);
        let forged = format!("{public} {}", data_encoding::BASE64.encode(&raw));
        assert_eq!(v.verify(forged.as_bytes(), &[&me], now), Err(Reject::BadSignature), "{me}: bit {bit} of the MAC");
        let own = v.verify(token.as_bytes(), &[&me], now);
        assert!(own.is_ok(), "{me}: its own token: {:?}", own.err());
    }
    assert!(checked > 10_000, "only {checked} neighbours checked");
}

#[test]
fn extreme_times_are_handled() {
    let doc = common::vectors();
    let v = common::verifier_for(&doc);
    let good = doc["cases"][0]["token"].as_str().unwrap();
    for now in [0, 1, 29, 30, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
        // minted in 2023: no step within a day of these times has its code
        assert_eq!(v.verify(good.as_bytes(), &["alice@example.org"], now).unwrap_err().as_str(), "otp-mismatch");
        let _ = v.mint("alice@example.org", now);
    }
}

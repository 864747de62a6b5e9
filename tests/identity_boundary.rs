//! The class, not the example: nothing minted for one account verifies for another, through every
//! mechanism, however the digits of the public part and the localpart are shifted between them.
//!
//! Signed is `OTP ‖ NONCE ‖ bare JID`. Because the public part has one fixed length, moving the
//! last k digits of the nonce to the front of the localpart (or the first k digits of a numeric
//! localpart to the end of the nonce) leaves a public part of the wrong length, which is malformed
//! before any MAC is computed. Usernames are prepared with a real nodeprep (the `stringprep` crate,
//! RFC 3920 appendix A; the server passes Prosody's own, which the core takes as a function, so
//! what is tested here is the identity rule), and by default only the nodeprep'd JID verifies.
mod common;

use prosody_auth_hmac::sasl::{sasl_hmac_plus_proof, sasl_hmac_proof, verify_username, Exchange, Mechanism, Outcome};
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

const HOST: &str = "example.org";
const NOW: u64 = 1_700_000_000;

fn nodeprep(s: &str) -> Option<String> {
    stringprep::nodeprep(s).ok().map(|c| c.into_owned())
}

fn verifier(jid_as_sent: bool, nonce_digits: usize) -> Verifier {
    let secrets = vec![SecretBytes::from_config_str("boundary-test-secret-0123456789abcdef")];
    let seed = prosody_auth_hmac::totp::decode_seed("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
    let settings =
        Settings { jid_as_sent, nonce_digits, replay_cache_size: 1_000_000, replay_user_quota: 1_000_000, ..Settings::default() };
    Verifier::new(secrets, seed, settings, Some(HOST)).unwrap()
}

use common::Rng;

/// Seeded per run from the clock; the seed is printed so a failure reproduces
/// (`BOUNDARY_SEED=<n> cargo test --test identity_boundary`).
fn seeded() -> Rng {
    let seed = std::env::var("BOUNDARY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("BOUNDARY_SEED={seed}");
    Rng(seed)
}

/// A localpart of one of the shapes web apps use: numeric ids, digit-prefixed names, mixed case,
/// non-ASCII (including characters nodeprep maps or folds), and the longest allowed.
fn localpart(rng: &mut Rng) -> String {
    const WORDS: &[&str] =
        &["alice", "Bob", "ÉLODIE", "straße", "ａｌｉｃｅ", "al\u{AD}ice", "Σίσυφος", "用户", "x", "o'neil", "dé"];
    let shape = rng.below(6);
    let n = 1 + rng.below(40);
    match shape {
        0 => rng.digits(n.min(12)),
        1 => {
            let digits = rng.digits(n);
            format!("{digits}{}", rng.pick(WORDS))
        }
        2 => {
            let word = rng.pick(WORDS);
            word.chars().map(|c| if rng.below(2) == 0 { c.to_uppercase().next().unwrap_or(c) } else { c }).collect()
        }
        3 => {
            let (w1, w2) = (rng.pick(WORDS), rng.pick(WORDS));
            let k = rng.below(5);
            format!("{w1}{}{w2}", rng.digits(k))
        }
        4 => {
            let len = 1023 - rng.below(120);
            let k = rng.below(41);
            let mut s = rng.digits(k);
            while s.len() < len {
                s.push(char::from(b'a' + rng.below(26) as u8));
            }
            s.truncate(len);
            s
        }
        _ => rng.digits(n),
    }
}

/// One login attempt as `authcid` with `token`, by `mech`; SASL-HMAC is played by a client that
/// holds the token (so knows its secret half) and sends `public` as its public part.
fn login(v: &Verifier, mech: Mechanism, authcid: &str, public: &str, mac_b64: &str) -> Result<String, Reject> {
    let mut ex = Exchange::new(mech);
    let outcome = match mech {
        Mechanism::Plain | Mechanism::XToken => {
            let msg = format!("\0{authcid}\0{public} {mac_b64}");
            ex.step(v, Some(msg.as_bytes()), NOW, &nodeprep)
        }
        Mechanism::SaslHmac => {
            let s = data_encoding::BASE64.decode(mac_b64.as_bytes()).unwrap();
            let cfm = format!("\0{authcid}\0{public}").into_bytes();
            match ex.step(v, Some(&cfm), NOW, &nodeprep) {
                Outcome::Challenge(sn) => ex.step(v, Some(&sasl_hmac_proof(&s, true, &cfm, &sn)), NOW, &nodeprep),
                other => other,
            }
        }
        Mechanism::SaslHmacPlus => {
            // the client and the server on the same TLS channel
            let cb = |name: &str| (name == "tls-exporter").then(|| vec![7u8; 32]);
            let s = data_encoding::BASE64.decode(mac_b64.as_bytes()).unwrap();
            let cfm = format!("tls-exporter\0\0{authcid}\0{public}").into_bytes();
            match ex.step_bound(v, Some(&cfm), NOW, &nodeprep, &cb) {
                Outcome::Challenge(sn) => {
                    let proof = sasl_hmac_plus_proof(&s, true, &cfm, &sn, &[7u8; 32]);
                    ex.step_bound(v, Some(&proof), NOW, &nodeprep, &cb)
                }
                other => other,
            }
        }
    };
    match outcome {
        Outcome::Success { username, .. } => Ok(username),
        Outcome::Failure(r) => Err(r),
        Outcome::Challenge(_) => panic!("unexpected challenge"),
    }
}

/// Every entry point a client's or caller's credential reaches: the core `verify` (what the
/// Lua binding calls), `verify_username` (test_password, `hmac-token verify`),
/// and the three SASL mechanisms.
fn every_entry_point(v: &Verifier, authcid: &str, public: &str, mac_b64: &str) -> Vec<(&'static str, Result<String, Reject>)> {
    let token = format!("{public} {mac_b64}");
    let mut out = vec![];
    if let Some(p) = nodeprep(authcid) {
        out.push(("verify", v.verify(token.as_bytes(), &[&format!("{p}@{HOST}")], NOW).map(|_| p.clone())));
        out.push(("verify as sent", v.verify(token.as_bytes(), &[&format!("{authcid}@{HOST}")], NOW).map(|_| p)));
    }
    out.push(("verify_username", verify_username(v, token.as_bytes(), authcid, &nodeprep, NOW).map(|(u, _)| u)));
    for mech in Mechanism::ALL {
        out.push((mech.name(), login(v, mech, authcid, public, mac_b64)));
    }
    out
}

fn assert_refused(v: &Verifier, authcid: &str, public: &str, mac_b64: &str, what: &str, want: Option<Reject>) {
    for (entry, result) in every_entry_point(v, authcid, public, mac_b64) {
        match (result, want) {
            (Ok(user), _) => panic!("{what}: {entry} accepted a token minted for another account, as {user:?}"),
            (Err(r), Some(w)) => assert_eq!(r, w, "{what}: {entry}"),
            (Err(_), None) => {}
        }
    }
}

fn property(jid_as_sent: bool, nonce_digits: usize, pairs: usize) {
    let mut rng = seeded();
    let v = verifier(jid_as_sent, nonce_digits);
    let public_len = 8 + nonce_digits;
    let mut checked = 0;
    while checked < pairs {
        let (a, b) = (localpart(&mut rng), localpart(&mut rng));
        let (Some(pa), Some(pb)) = (nodeprep(&a), nodeprep(&b)) else { continue };
        if pa == pb || pa.len() > 1023 || pb.len() > 1023 {
            continue;
        }
        // what the web app signs for account A: its nodeprep'd JID (under jid_as_sent, the name as
        // the user typed it is accepted too, so the attacker may hold either)
        let signed = if jid_as_sent && rng.below(2) == 0 { a.clone() } else { pa.clone() };
        let token = v.mint(&format!("{signed}@{HOST}"), NOW).unwrap();
        let (public, mac) = token.split_once(' ').unwrap();
        assert_eq!(public.len(), public_len);

        // the same token for another account
        assert_refused(&v, &b, public, mac, &format!("{signed:?} -> {b:?}"), Some(Reject::BadSignature));

        // nonce digits moved into the localpart: 5 -> 35, 835, ...
        for k in 1..=40.min(public_len) {
            let (kept, moved) = public.split_at(public_len - k);
            let victim = format!("{moved}{signed}");
            assert_refused(&v, &victim, kept, mac, &format!("{signed:?} shifted right by {k}"), Some(Reject::Malformed));
        }
        // leading localpart digits moved into the nonce: 35 -> 5
        let lead = signed.bytes().take_while(u8::is_ascii_digit).count().min(40);
        for k in 1..=lead {
            if k == signed.len() {
                break; // nothing left of the localpart
            }
            let victim = &signed[k..];
            let longer = format!("{public}{}", &signed[..k]);
            assert_refused(&v, victim, &longer, mac, &format!("{signed:?} shifted left by {k}"), Some(Reject::Malformed));
        }
        // and the token still logs its own account in (so the refusals above are not vacuous)
        let mech = Mechanism::ALL[rng.below(Mechanism::ALL.len())];
        assert_eq!(login(&v, mech, &a, public, mac), Ok(pa.clone()), "{signed:?} via {mech:?}");
        checked += 1;
    }
}

#[test]
fn no_token_verifies_for_another_account_strict() {
    property(false, 32, 1200);
}

#[test]
fn no_token_verifies_for_another_account_jid_as_sent() {
    property(true, 32, 600);
}

#[test]
fn no_token_verifies_for_another_account_other_nonce_lengths() {
    property(false, 16, 200);
    property(false, 64, 200);
}

/// The identity rule itself: a signature over the username as the client sent it (before nodeprep)
/// is not the account's, unless `jid_as_sent` says the web app signs names that way.
#[test]
fn only_the_nodeprepd_jid_verifies_by_default() {
    for sent in ["Alice", "ALICE", "ａｌｉｃｅ", "al\u{AD}ice", "AlIcE"] {
        assert_eq!(nodeprep(sent).as_deref(), Some("alice"), "{sent}");
        for (jid_as_sent, want) in [(false, Err(Reject::BadSignature)), (true, Ok("alice".to_owned()))] {
            let v = verifier(jid_as_sent, 32);
            for mech in Mechanism::ALL {
                let token = v.mint(&format!("{sent}@{HOST}"), NOW).unwrap();
                let (public, mac) = token.split_once(' ').unwrap();
                assert_eq!(login(&v, mech, sent, public, mac), want, "{sent:?} via {mech:?}, jid_as_sent={jid_as_sent}");
            }
            let token = v.mint(&format!("{sent}@{HOST}"), NOW).unwrap();
            assert_eq!(verify_username(&v, token.as_bytes(), sent, &nodeprep, NOW).map(|(u, _)| u), want, "test_password");
            // the nodeprep'd form always verifies
            let token = v.mint(&format!("alice@{HOST}"), NOW).unwrap();
            let (public, mac) = token.split_once(' ').unwrap();
            assert_eq!(login(&v, Mechanism::Plain, sent, public, mac), Ok("alice".to_owned()));
        }
    }
}

//! tests/vectors/signout.json (made by tests/vectors/generate_signout.py with Python's hmac and
//! hashlib, independently of this crate) against the core: every request's outcome, the stored
//! time after it, the lines the core writes, and the login tokens around a sign-out.

use prosody_auth_hmac::identity::verify_username_signed_out;
use prosody_auth_hmac::signout::{SignoutKeys, StoredRecord};
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};
use serde_json::Value;

fn doc() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/signout.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn nodeprep(s: &str) -> Option<String> {
    stringprep::nodeprep(s).ok().map(|p| p.into_owned())
}

fn secret(s: &Value) -> SecretBytes {
    SecretBytes::new(s.as_str().unwrap().as_bytes().to_vec())
}

fn verifier(doc: &Value) -> Verifier {
    let secrets = doc["secrets"].as_array().unwrap().iter().map(secret).collect();
    let seed = prosody_auth_hmac::totp::decode_seed(doc["otp_seed"].as_str().unwrap()).unwrap();
    let settings = Settings {
        digits: doc["digits"].as_u64().unwrap() as u32,
        step: doc["step"].as_u64().unwrap(),
        skew: doc["skew"].as_u64().unwrap(),
        ..Settings::default()
    };
    Verifier::new(secrets, seed, settings, Some(doc["host"].as_str().unwrap())).unwrap()
}

/// Signs `line` out at `now` with `stored` as the user's record: the user and the new record, or the
/// refusal's name.
fn sign_out(v: &Verifier, line: &str, now: u64, stored: Option<StoredRecord>) -> Result<(String, StoredRecord), &'static str> {
    let r: Result<_, ()> = v.sign_out(line.as_bytes(), now, &nodeprep, |_| Ok(stored));
    r.unwrap().map(|a| (a.username, a.record)).map_err(|r| r.as_str())
}

#[test]
fn every_request_has_its_outcome() {
    let doc = doc();
    assert_eq!(doc["window"], prosody_auth_hmac::signout::WINDOW);
    assert_eq!(doc["max_recent"].as_u64().unwrap() as usize, prosody_auth_hmac::signout::MAX_RECENT);
    let cases = doc["cases"].as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let v = verifier(&doc);
        let mut stored = None;
        for b in c["before"].as_array().into_iter().flatten() {
            let (_, record) = sign_out(&v, b["line"].as_str().unwrap(), b["now"].as_u64().unwrap(), stored.take())
                .unwrap_or_else(|r| panic!("{name}: an earlier line was refused ({r})"));
            stored = Some(record);
        }
        let now = c["now"].as_u64().unwrap();
        let got = sign_out(&v, c["line"].as_str().unwrap(), now, stored);
        let expect = c["expect"].as_str().unwrap();
        seen.insert(expect);
        match got {
            Ok((user, record)) => {
                assert_eq!(expect, "accepted", "{name}");
                assert_eq!(user, c["username"].as_str().unwrap(), "{name}");
                let (at, note) = v.signed_out_at(&user, Some(&record), now);
                assert_eq!((at, note), (c["signed_out_at"].as_u64(), None), "{name}");
            }
            Err(reason) => assert_eq!(reason, expect, "{name}"),
        }
    }
    // every outcome is exercised
    let all: std::collections::BTreeSet<&str> =
        ["accepted", "malformed", "wrong-host", "bad-signature", "stale", "replayed"].into();
    assert_eq!(seen, all);
}

#[test]
fn the_core_writes_every_minted_line_exactly() {
    let doc = doc();
    let mut n = 0;
    for c in doc["cases"].as_array().unwrap() {
        let Some(m) = c.get("mint") else { continue };
        let keys = SignoutKeys::from_secrets(&[secret(&m["secret"])]).unwrap();
        let line = keys.request_line(m["time"].as_u64().unwrap(), m["nonce"].as_str().unwrap(), m["jid"].as_str().unwrap());
        assert_eq!(line.as_deref(), c["line"].as_str(), "{}", c["name"]);
        n += 1;
    }
    assert!(n >= 10, "{n} minting cases");
}

#[test]
fn login_tokens_around_a_sign_out() {
    let doc = doc();
    for c in doc["logins"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let v = verifier(&doc);
        let at = c["signed_out_at"].as_u64();
        let lookup = |_: &str| Ok(at);
        let token = c["token"].as_str().unwrap();
        let r = verify_username_signed_out(
            &v,
            token.as_bytes(),
            c["username"].as_str().unwrap(),
            &nodeprep,
            c["now"].as_u64().unwrap(),
            &lookup,
        );
        let got = match r {
            Ok(_) => "accepted",
            Err(r) => r.as_str(),
        };
        assert_eq!(got, c["expect"].as_str().unwrap(), "{name}");
        if got == "signed-out" {
            assert_eq!(Reject::SignedOut.as_str(), got);
        }
    }
}

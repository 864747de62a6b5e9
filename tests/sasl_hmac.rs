//! SASL-HMAC: the Python-computed vectors, then every outcome of the exchange.
mod common;

use prosody_auth_hmac::sasl::{sasl_hmac_proof, Exchange, Mechanism, Outcome, SERVER_NONCE_LEN};
use prosody_auth_hmac::{Reject, Verifier};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
}

fn sasl_vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/sasl_hmac.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn lower(s: &str) -> Option<String> {
    Some(s.to_lowercase())
}

#[test]
fn proofs_match_the_python_vectors() {
    let doc = sasl_vectors();
    let v = common::verifier_for(&doc);
    for c in doc["cases"].as_array().unwrap() {
        let cfm = hex(c["client_first_hex"].as_str().unwrap());
        let sn = hex(c["server_nonce_hex"].as_str().unwrap());
        let token = c["token"].as_str().unwrap();
        let public = token.split(' ').next().unwrap();
        let s = v.signature(0, public.as_bytes(), c["jid"].as_str().unwrap()).unwrap();
        assert_eq!(s.to_vec(), hex(c["secret_half_hex"].as_str().unwrap()));
        assert_eq!(sasl_hmac_proof(&s, true, &cfm, &sn).to_vec(), hex(c["client_proof_hex"].as_str().unwrap()));
        assert_eq!(sasl_hmac_proof(&s, false, &cfm, &sn).to_vec(), hex(c["server_proof_hex"].as_str().unwrap()));
    }
}

/// A client: mints the token as the web app would, keeps S, sends only the public half.
struct Client {
    cfm: Vec<u8>,
    s: [u8; 32],
}

fn client(v: &Verifier, authzid: &str, authcid: &str, signed_jid: &str, now: u64) -> Client {
    let token = v.mint(signed_jid, now).unwrap();
    let (public, b64) = token.split_once(' ').unwrap();
    let mut s = [0u8; 32];
    s.copy_from_slice(&data_encoding::BASE64.decode(b64.as_bytes()).unwrap());
    let mut cfm = format!("{authzid}\0{authcid}\0").into_bytes();
    cfm.extend_from_slice(public.as_bytes());
    Client { cfm, s }
}

fn run(v: &Verifier, c: &Client, now: u64) -> (Outcome, Vec<u8>) {
    let mut ex = Exchange::new(Mechanism::SaslHmac);
    let Outcome::Challenge(sn) = ex.step(v, Some(&c.cfm), now, &lower) else { panic!("expected a challenge") };
    assert_eq!(sn.len(), SERVER_NONCE_LEN);
    let proof = sasl_hmac_proof(&c.s, true, &c.cfm, &sn);
    (ex.step(v, Some(&proof), now, &lower), sn)
}

const NOW: u64 = 1_750_000_000;

#[test]
fn good_exchange_authenticates_the_server_too() {
    let v = common::verifier_for(&common::vectors());
    let c = client(&v, "", "alice", "alice@example.org", NOW);
    let (out, sn) = run(&v, &c, NOW);
    let Outcome::Success { username, additional } = out else { panic!("{out:?}") };
    assert_eq!(username, "alice");
    assert_eq!(additional.unwrap(), sasl_hmac_proof(&c.s, false, &c.cfm, &sn).to_vec());
}

#[test]
fn each_refusal() {
    let v = common::verifier_for(&common::vectors());
    let fail = |out: Outcome| match out {
        Outcome::Failure(r) => r,
        other => panic!("expected failure, got {other:?}"),
    };
    // token replayed (a fresh, correct proof for a token already used)
    let c = client(&v, "", "alice", "alice@example.org", NOW);
    assert!(matches!(run(&v, &c, NOW).0, Outcome::Success { .. }));
    assert_eq!(fail(run(&v, &c, NOW).0), Reject::Replayed);
    // wrong JID: bob's token presented as alice
    let mut c = client(&v, "", "bob", "bob@example.org", NOW);
    c.cfm = [b"\0alice\0".as_slice(), &c.cfm[5..]].concat();
    assert_eq!(fail(run(&v, &c, NOW).0), Reject::BadSignature);
    // expired: minted three steps ago
    let c = client(&v, "", "carol", "carol@example.org", NOW - 90);
    assert_eq!(fail(run(&v, &c, NOW).0), Reject::Expired);
    // wrong proof, and a proof replayed against a new challenge
    let c = client(&v, "", "dave", "dave@example.org", NOW);
    let mut ex = Exchange::new(Mechanism::SaslHmac);
    let Outcome::Challenge(sn) = ex.step(&v, Some(&c.cfm), NOW, &lower) else { panic!() };
    let old_proof = sasl_hmac_proof(&c.s, true, &c.cfm, &sn);
    let mut wrong = old_proof;
    wrong[0] ^= 1;
    assert_eq!(fail(ex.step(&v, Some(&wrong), NOW, &lower)), Reject::BadSignature);
    let mut ex = Exchange::new(Mechanism::SaslHmac);
    assert!(matches!(ex.step(&v, Some(&c.cfm), NOW, &lower), Outcome::Challenge(_)));
    assert_eq!(fail(ex.step(&v, Some(&old_proof), NOW, &lower)), Reject::BadSignature);
    // the refused attempts did not use dave's token up
    assert!(matches!(run(&v, &c, NOW).0, Outcome::Success { .. }));
    // garbage at each step
    for (first, expected) in [
        (&b""[..], Reject::Malformed),
        (b"\0dave\0", Reject::Malformed),
        (b"\0dave\x00123", Reject::Malformed),
        (b"\0dave\x001234567a", Reject::Malformed),
        (b"x\0dave\x0012345678", Reject::InvalidAuthzid),
        (b"\0dave\x0012345678 abc", Reject::Malformed),
    ] {
        let mut ex = Exchange::new(Mechanism::SaslHmac);
        assert_eq!(fail(ex.step(&v, Some(first), NOW, &lower)), expected, "{first:?}");
    }
    let c = client(&v, "", "erin", "erin@example.org", NOW);
    for second in [&b""[..], &[0u8; 31], &[0u8; 33], &[0u8; 64]] {
        let mut ex = Exchange::new(Mechanism::SaslHmac);
        assert!(matches!(ex.step(&v, Some(&c.cfm), NOW, &lower), Outcome::Challenge(_)));
        assert_eq!(fail(ex.step(&v, Some(second), NOW, &lower)), Reject::Malformed);
    }
    let mut ex = Exchange::new(Mechanism::SaslHmac);
    assert!(matches!(ex.step(&v, Some(&c.cfm), NOW, &lower), Outcome::Challenge(_)));
    assert_eq!(fail(ex.step(&v, None, NOW, &lower)), Reject::Malformed);
    // after the end, nothing more
    let (out, _) = run(&v, &c, NOW);
    assert!(matches!(out, Outcome::Success { .. }));
}

#[test]
fn empty_initial_response_gets_an_empty_challenge_first() {
    let v = common::verifier_for(&common::vectors());
    let c = client(&v, "frank@example.org", "frank", "frank@example.org", NOW);
    let mut ex = Exchange::new(Mechanism::SaslHmac);
    assert_eq!(ex.step(&v, None, NOW, &lower), Outcome::Challenge(Vec::new()));
    let Outcome::Challenge(sn) = ex.step(&v, Some(&c.cfm), NOW, &lower) else { panic!() };
    let proof = sasl_hmac_proof(&c.s, true, &c.cfm, &sn);
    assert!(matches!(ex.step(&v, Some(&proof), NOW, &lower), Outcome::Success { .. }));
    assert_eq!(ex.step(&v, Some(&proof), NOW, &lower), Outcome::Failure(Reject::Malformed));
}

#[test]
fn tokens_are_single_use_across_mechanisms() {
    let v = common::verifier_for(&common::vectors());
    let token = v.mint("gina@example.org", NOW).unwrap();
    let mut ex = Exchange::new(Mechanism::XToken);
    let msg = [b"\0gina\0".as_slice(), token.as_bytes()].concat();
    assert!(matches!(ex.step(&v, Some(&msg), NOW, &lower), Outcome::Success { .. }));
    let (public, b64) = token.split_once(' ').unwrap();
    let mut s = [0u8; 32];
    s.copy_from_slice(&data_encoding::BASE64.decode(b64.as_bytes()).unwrap());
    let c = Client { cfm: [b"\0gina\0".as_slice(), public.as_bytes()].concat(), s };
    assert_eq!(run(&v, &c, NOW).0, Outcome::Failure(Reject::Replayed));
}

/// SASL-HMAC-PLUS: the proofs cover the channel's binding data, so the same exchange relayed over
/// another TLS connection (another binding) fails, and the server's proof is bound too.
mod plus {
    use super::*;
    use prosody_auth_hmac::sasl::sasl_hmac_plus_proof;

    fn plus_run(v: &Verifier, name: &str, client_cb: &[u8], server_cb: Option<Vec<u8>>, now: u64) -> (Outcome, Vec<u8>, Client) {
        let mut c = client(v, "", "alice", "alice@example.org", now);
        c.cfm = [name.as_bytes(), b"\0", &c.cfm].concat();
        let lookup = move |n: &str| if n == "tls-unique" || n == "tls-exporter" { server_cb.clone() } else { None };
        let mut ex = Exchange::new(Mechanism::SaslHmacPlus);
        let sn = match ex.step_bound(v, Some(&c.cfm), now, &lower, &lookup) {
            Outcome::Challenge(sn) => sn,
            other => return (other, vec![], c),
        };
        let proof = sasl_hmac_plus_proof(&c.s, true, &c.cfm, &sn, client_cb);
        (ex.step_bound(v, Some(&proof), now, &lower, &lookup), sn, c)
    }

    #[test]
    fn same_channel_logs_in_and_binds_the_server_proof() {
        let doc = common::vectors();
        let v = common::verifier_for(&doc);
        let cb = vec![0x5a; 32];
        let (out, sn, c) = plus_run(&v, "tls-exporter", &cb, Some(cb.clone()), 1_800_000_000);
        let Outcome::Success { username, additional: Some(server) } = out else { panic!("{out:?}") };
        assert_eq!(username, "alice");
        assert_eq!(server, sasl_hmac_plus_proof(&c.s, false, &c.cfm, &sn, &cb).to_vec());
        assert_ne!(server, sasl_hmac_proof(&c.s, false, &c.cfm, &sn).to_vec(), "the binding is in the server proof");
    }

    #[test]
    fn a_relayed_exchange_fails() {
        let doc = common::vectors();
        let v = common::verifier_for(&doc);
        // the client's TLS runs to the relay; the relay's to the server: two different bindings
        let (out, _, _) = plus_run(&v, "tls-unique", &[1; 12], Some(vec![2; 12]), 1_800_000_000);
        assert_eq!(out, Outcome::Failure(Reject::BadSignature));
        // and a plain SASL-HMAC proof is no -PLUS proof
        let mut c = client(&v, "", "alice", "alice@example.org", 1_800_000_000);
        c.cfm = [b"tls-exporter\0".as_slice(), &c.cfm].concat();
        let lookup = |n: &str| (n == "tls-exporter").then(|| vec![3u8; 32]);
        let mut ex = Exchange::new(Mechanism::SaslHmacPlus);
        let Outcome::Challenge(sn) = ex.step_bound(&v, Some(&c.cfm), 1_800_000_000, &lower, &lookup) else { panic!() };
        let unbound = sasl_hmac_proof(&c.s, true, &c.cfm, &sn);
        assert_eq!(ex.step_bound(&v, Some(&unbound), 1_800_000_000, &lower, &lookup), Outcome::Failure(Reject::BadSignature));
    }

    #[test]
    fn a_binding_the_connection_lacks_or_an_unknown_one_is_malformed() {
        let doc = common::vectors();
        let v = common::verifier_for(&doc);
        let (out, _, _) = plus_run(&v, "tls-exporter", &[1; 32], None, 1_800_000_000);
        assert_eq!(out, Outcome::Failure(Reject::Malformed), "no binding: never checked without it");
        let (out, _, _) = plus_run(&v, "tls-server-end-point", &[1; 32], Some(vec![1; 32]), 1_800_000_000);
        assert_eq!(out, Outcome::Failure(Reject::Malformed), "the lookup has no such binding");
        for name in ["", "tls-unique-x", "TLS-UNIQUE", "none"] {
            let (out, _, _) = plus_run(&v, name, &[1; 12], Some(vec![1; 12]), 1_800_000_000);
            assert_eq!(out, Outcome::Failure(Reject::Malformed), "{name:?}");
        }
        // plain SASL-HMAC ignores any binding
        let c = client(&v, "", "bob", "bob@example.org", 1_800_000_000);
        let mut ex = Exchange::new(Mechanism::SaslHmac);
        let lookup = |_: &str| Some(vec![9u8; 32]);
        let Outcome::Challenge(sn) = ex.step_bound(&v, Some(&c.cfm), 1_800_000_000, &lower, &lookup) else { panic!() };
        let p = sasl_hmac_proof(&c.s, true, &c.cfm, &sn);
        assert!(matches!(ex.step_bound(&v, Some(&p), 1_800_000_000, &lower, &lookup), Outcome::Success { .. }));
    }
}

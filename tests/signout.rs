//! Sign-out (docs/signout.md) through the verifier: the request's checks in their order, the stored
//! record, and the `signed-out` refusal on every login path (PLAIN, X-TOKEN, SASL-HMAC,
//! SASL-HMAC-PLUS, `test_password`).
mod common;

use std::cell::Cell;

use prosody_auth_hmac::identity::verify_username_signed_out;
use prosody_auth_hmac::replay_state::Field;
use prosody_auth_hmac::sasl::{sasl_hmac_plus_proof, sasl_hmac_proof, Exchange, Mechanism, Outcome};
use prosody_auth_hmac::signout::{Note, Refusal, SignoutKeys, StoredRecord, MAX_RECENT, WINDOW};
use prosody_auth_hmac::verifier::{LookupFailed, Settings};
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

const NOW: u64 = 1_750_000_020;
const HOST: &str = "example.org";
const SECRET: &str = "a-token-secret-of-some-thirty-bytes";
const OLD_SECRET: &str = "the-previous-token-secret-of-the-host";

fn lower(s: &str) -> Option<String> {
    Some(s.to_lowercase())
}

fn verifier_with(secrets: &[&str]) -> Verifier {
    let secrets = secrets.iter().map(|s| SecretBytes::new(s.as_bytes().to_vec())).collect();
    let seed = prosody_auth_hmac::totp::decode_seed("KRSXG5DTMVSWI4ZAONUWO3TPOV2A").unwrap();
    Verifier::new(secrets, seed, Settings::default(), Some(HOST)).unwrap()
}

fn verifier() -> Verifier {
    verifier_with(&[SECRET, OLD_SECRET])
}

fn keys(secret: &str) -> SignoutKeys {
    SignoutKeys::from_secrets(&[SecretBytes::new(secret.as_bytes().to_vec())]).unwrap()
}

fn line(time: u64, nonce: &str, jid: &str) -> String {
    keys(SECRET).request_line(time, nonce, jid).unwrap()
}

const NONCE: &str = "12345678901234567890123456789012";

fn nonce(n: u64) -> String {
    format!("{n:032}")
}

/// Signs out with `stored` as the user's record; `Err` is the refusal.
fn sign_out(
    v: &Verifier,
    line: &str,
    now: u64,
    stored: Option<StoredRecord>,
) -> Result<(String, StoredRecord, Option<Note>), Refusal> {
    let r: Result<_, ()> = v.sign_out(line.as_bytes(), now, &lower, |_| Ok(stored));
    r.unwrap().map(|a| (a.username, a.record, a.note))
}

#[test]
fn an_accepted_request_stores_its_time_for_its_user() {
    let v = verifier();
    let (user, record, note) = sign_out(&v, &line(NOW, NONCE, "alice@example.org"), NOW, None).unwrap();
    assert_eq!((user.as_str(), note), ("alice", None));
    assert_eq!(v.signed_out_at("alice", Some(&record), NOW + 500), (Some(NOW), None));
    // sealed for alice of this host: nobody else's record
    assert_eq!(v.signed_out_at("bob", Some(&record), NOW + 500), (Some(NOW + 500), Some(Note::StoredRecordInvalid)));
    assert_eq!(v.signed_out_at("alice", None, NOW), (None, None));
    let other_host = {
        let secrets = vec![SecretBytes::new(SECRET.as_bytes().to_vec())];
        let seed = prosody_auth_hmac::totp::decode_seed("KRSXG5DTMVSWI4ZAONUWO3TPOV2A").unwrap();
        Verifier::new(secrets, seed, Settings::default(), Some("other.org")).unwrap()
    };
    assert_eq!(other_host.signed_out_at("alice", Some(&record), NOW), (Some(NOW), Some(Note::StoredRecordInvalid)));
}

#[test]
fn the_checks_run_in_the_specs_order() {
    let v = verifier();
    let bad_mac = |l: String| {
        let (head, _) = l.rsplit_once(' ').unwrap();
        format!("{head} {}", data_encoding::BASE64.encode(&[7u8; 32]))
    };
    // each line fails the check named and would fail every later one too
    let far = NOW + WINDOW + 1;
    let cases = [
        (bad_mac(line(far, NONCE, "Alice@other.org")), Refusal::Malformed),
        (bad_mac(line(far, NONCE, "alice@other.org")), Refusal::WrongHost),
        (bad_mac(line(far, NONCE, "alice@example.org")), Refusal::BadSignature),
        (line(far, NONCE, "alice@example.org"), Refusal::Stale),
    ];
    for (l, want) in cases {
        let loaded = Cell::new(false);
        let r: Result<_, ()> = v.sign_out(l.as_bytes(), NOW, &lower, |_| {
            loaded.set(true);
            Ok(None)
        });
        assert_eq!(r.unwrap().map(|a| a.username), Err(want), "{l}");
        assert!(!loaded.get(), "{want}: storage is read only for an authentic, timely request");
    }
}

#[test]
fn a_localpart_that_is_not_nodeprepd_is_malformed() {
    let v = verifier();
    assert_eq!(sign_out(&v, &line(NOW, NONCE, "Alice@example.org"), NOW, None).unwrap_err(), Refusal::Malformed);
    let refuses = |_: &str| None;
    let r: Result<_, ()> = v.sign_out(line(NOW, NONCE, "alice@example.org").as_bytes(), NOW, &refuses, |_| Ok(None));
    assert_eq!(r.unwrap().map(|a| a.username), Err(Refusal::Malformed));
}

#[test]
fn any_configured_secret_signs_and_the_token_secret_itself_does_not() {
    let v = verifier();
    let old = keys(OLD_SECRET).request_line(NOW, NONCE, "alice@example.org").unwrap();
    assert!(sign_out(&v, &old, NOW, None).is_ok());
    let stranger = keys("a-secret-this-host-never-had-configured").request_line(NOW, NONCE, "alice@example.org").unwrap();
    assert_eq!(sign_out(&v, &stranger, NOW, None).unwrap_err(), Refusal::BadSignature);
    // the message MAC'd under the token secret directly (no derived key)
    use hmac::{KeyInit, Mac};
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(b"prosody-auth-hmac signout v1\0");
    m.update(&NOW.to_be_bytes());
    m.update(NONCE.as_bytes());
    m.update(&17u16.to_be_bytes());
    m.update(b"alice@example.org");
    let direct = format!("v1 {NOW} {NONCE} alice@example.org {}", data_encoding::BASE64.encode(&m.finalize().into_bytes()));
    assert_eq!(sign_out(&v, &direct, NOW, None).unwrap_err(), Refusal::BadSignature);
}

#[test]
fn the_window_is_sixty_seconds_either_way() {
    let v = verifier();
    for (time, ok) in [(NOW - 60, true), (NOW + 60, true), (NOW - 61, false), (NOW + 61, false)] {
        let r = sign_out(&v, &line(time, NONCE, "alice@example.org"), NOW, None);
        assert_eq!(r.is_ok(), ok, "{time}");
        if !ok {
            assert_eq!(r.unwrap_err(), Refusal::Stale);
        }
    }
}

#[test]
fn a_nonce_is_refused_again_until_its_request_is_stale() {
    let v = verifier();
    // the web app's clock 60 s ahead: the request stays timely until NOW + 120
    let l = line(NOW + 60, NONCE, "alice@example.org");
    let (_, record, _) = sign_out(&v, &l, NOW, None).unwrap();
    for later in [NOW, NOW + 61, NOW + 120] {
        assert_eq!(sign_out(&v, &l, later, Some(record.clone())).unwrap_err(), Refusal::Replayed, "{later}");
    }
    assert_eq!(sign_out(&v, &l, NOW + 121, Some(record.clone())).unwrap_err(), Refusal::Stale);
    // another nonce for the same user is fine
    assert!(sign_out(&v, &line(NOW, &nonce(1), "alice@example.org"), NOW, Some(record)).is_ok());
}

#[test]
fn a_flood_of_sign_outs_never_refuses_an_authentic_new_one() {
    let v = verifier();
    // sixteen remembered, the n-th until NOW + n + 60
    let mut stored = None;
    for n in 0..MAX_RECENT as u64 {
        let (_, record, _) = sign_out(&v, &line(NOW + n, &nonce(n), "alice@example.org"), NOW + n, stored).unwrap();
        stored = Some(record);
    }
    let full = stored.unwrap();
    // the seventeenth within the minute is accepted and moves the time on
    let seventeenth = line(NOW + 20, &nonce(99), "alice@example.org");
    let (_, after, note) = sign_out(&v, &seventeenth, NOW + 20, Some(full.clone())).unwrap();
    assert_eq!(note, None);
    assert_eq!(v.signed_out_at("alice", Some(&after), NOW + 20).0, Some(NOW + 20));
    // what it forgot is the one whose window ends soonest, the first; every other is still refused
    for n in 1..MAX_RECENT as u64 {
        let replay = line(NOW + n, &nonce(n), "alice@example.org");
        assert_eq!(sign_out(&v, &replay, NOW + 21, Some(after.clone())).unwrap_err(), Refusal::Replayed, "{n}");
    }
    assert_eq!(sign_out(&v, &seventeenth, NOW + 21, Some(after.clone())).unwrap_err(), Refusal::Replayed);
    let (_, again, _) = sign_out(&v, &line(NOW, &nonce(0), "alice@example.org"), NOW + 21, Some(after)).unwrap();
    // and a long flood still never refuses one, nor grows the record
    let mut stored = Some(again);
    for n in 100..300u64 {
        let (_, record, _) = sign_out(&v, &line(NOW + 30, &nonce(n), "alice@example.org"), NOW + 30, stored).unwrap();
        let Field::Text(nonces) = &record.nonces else { panic!() };
        assert_eq!(nonces.len(), MAX_RECENT * 52, "{n}");
        stored = Some(record);
    }
    // once their requests are stale the sixteen are forgotten for age: one nonce left, the new one
    let (_, aged, _) = sign_out(&v, &line(NOW + 81, &nonce(98), "alice@example.org"), NOW + 81, Some(full)).unwrap();
    let Field::Text(nonces) = &aged.nonces else { panic!() };
    assert_eq!(nonces.len(), 52);
}

#[test]
fn past_sixteen_the_nonce_whose_replay_window_ends_first_is_forgotten_not_the_oldest() {
    let v = verifier();
    // the first from a web server 50 s ahead (remembered until NOW + 110), then fifteen from one
    // 50 s behind, the latest TIME first (the n-th remembered until NOW + 10 + n): the first is the
    // oldest but its window ends last, and the window that ends first is the last one's, behind(1)
    let ahead = line(NOW + 50, &nonce(0), "alice@example.org");
    let (_, mut stored, _) = sign_out(&v, &ahead, NOW, None).unwrap();
    let behind = |n: u64| line(NOW - 50 + n, &nonce(n), "alice@example.org");
    for n in (1..MAX_RECENT as u64).rev() {
        stored = sign_out(&v, &behind(n), NOW, Some(stored)).unwrap().1;
    }
    let (_, after, _) = sign_out(&v, &line(NOW, &nonce(99), "alice@example.org"), NOW, Some(stored)).unwrap();
    assert_eq!(sign_out(&v, &ahead, NOW, Some(after.clone())).unwrap_err(), Refusal::Replayed);
    for n in 2..MAX_RECENT as u64 {
        assert_eq!(sign_out(&v, &behind(n), NOW, Some(after.clone())).unwrap_err(), Refusal::Replayed, "{n}");
    }
    assert!(sign_out(&v, &behind(1), NOW, Some(after)).is_ok(), "the one whose window ends first");
}

#[test]
fn the_stored_time_never_moves_back() {
    let v = verifier();
    let (_, record, _) = sign_out(&v, &line(NOW + 50, NONCE, "alice@example.org"), NOW, None).unwrap();
    // a web server whose clock is behind: accepted, the time stays
    let (_, record, _) = sign_out(&v, &line(NOW - 50, &nonce(2), "alice@example.org"), NOW, Some(record)).unwrap();
    assert_eq!(v.signed_out_at("alice", Some(&record), NOW).0, Some(NOW + 50));
    let (_, record, _) = sign_out(&v, &line(NOW + 59, &nonce(3), "alice@example.org"), NOW + 5, Some(record)).unwrap();
    assert_eq!(v.signed_out_at("alice", Some(&record), NOW).0, Some(NOW + 59));
}

#[test]
fn the_stored_time_is_never_before_the_servers_clock() {
    // a web app whose clock is 45 s behind mints, right after its sign-out, tokens of the server's
    // previous step at most: none of them may log in
    let v = verifier();
    let (_, record, _) = sign_out(&v, &line(NOW - 45, NONCE, "alice@example.org"), NOW, None).unwrap();
    assert_eq!(v.signed_out_at("alice", Some(&record), NOW), (Some(NOW), None));
}

#[test]
fn a_stored_time_is_kept_when_the_clock_is_set_back() {
    // a web app 60 s ahead signs out; then the server's clock steps back: the tokens minted before
    // the sign-out (the server's next step, which otp_skew accepts) stay refused
    let v = verifier();
    let (_, record, _) = sign_out(&v, &line(NOW + WINDOW, NONCE, "alice@example.org"), NOW, None).unwrap();
    for back in [NOW - 1, NOW - 86_400] {
        assert_eq!(v.signed_out_at("alice", Some(&record), back), (Some(NOW + WINDOW), None), "{back}");
    }
    let at = v.signed_out_at("alice", Some(&record), NOW - 1).0;
    let lookup = Lookup::new(at);
    for (path, r) in logins(&v, NOW + 29, NOW - 1, &lookup) {
        assert_eq!(r, Err(Reject::SignedOut), "{path}");
    }
}

/// A good record with one field changed.
fn tampered(record: &StoredRecord, name: &str, value: Field) -> StoredRecord {
    let mut r = record.clone();
    *match name {
        "format" => &mut r.format,
        "time" => &mut r.time,
        "nonces" => &mut r.nonces,
        _ => &mut r.mac,
    } = value;
    r
}

#[test]
fn a_record_that_fails_its_check_counts_as_signed_out_now() {
    let v = verifier();
    let (_, good, _) = sign_out(&v, &line(NOW, NONCE, "alice@example.org"), NOW, None).unwrap();
    let Field::Text(mac) = &good.mac else { panic!() };
    let Field::Text(nonces) = &good.nonces else { panic!() };
    let mut flipped = mac.clone();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let bad = [
        tampered(&good, "time", Field::Text(b"1".to_vec())),
        tampered(&good, "time", Field::Text(format!("0{NOW}").into_bytes())),
        tampered(&good, "time", Field::Integer(NOW)),
        tampered(&good, "format", Field::Integer(2)),
        tampered(&good, "format", Field::Absent),
        tampered(&good, "nonces", Field::Text(Vec::new())),
        tampered(&good, "nonces", Field::Text(nonces[..nonces.len() - 1].to_vec())),
        tampered(&good, "nonces", Field::Other),
        tampered(&good, "mac", Field::Text(flipped)),
        tampered(&good, "mac", Field::Text(mac.to_ascii_uppercase())),
        tampered(&good, "mac", Field::Absent),
        StoredRecord::UNREADABLE,
    ];
    for b in bad {
        assert_eq!(v.signed_out_at("alice", Some(&b), NOW + 900), (Some(NOW + 900), Some(Note::StoredRecordInvalid)), "{b:?}");
        // a sign-out over it: accepted, noted, its nonces forgotten, the time at least now
        let (_, record, note) = sign_out(&v, &line(NOW + 10, NONCE, "alice@example.org"), NOW + 20, Some(b)).unwrap();
        assert_eq!(note, Some(Note::StoredRecordInvalid));
        assert_eq!(v.signed_out_at("alice", Some(&record), NOW + 900), (Some(NOW + 20), None));
    }
    assert_eq!(v.signed_out_at("alice", Some(&good), NOW + 900), (Some(NOW), None));
}

#[test]
fn a_record_sealed_under_the_previous_secret_still_counts() {
    let old_only = verifier_with(&[OLD_SECRET]);
    let signed = keys(OLD_SECRET).request_line(NOW, NONCE, "alice@example.org").unwrap();
    let (_, record, _) = sign_out(&old_only, &signed, NOW, None).unwrap();
    assert_eq!(verifier().signed_out_at("alice", Some(&record), NOW + 1), (Some(NOW), None));
    assert_eq!(verifier_with(&[SECRET]).signed_out_at("alice", Some(&record), NOW + 1).1, Some(Note::StoredRecordInvalid));
}

// ---- logins ----

/// The lookup a shim gives: alice signed out at `at`, counting the calls.
struct Lookup {
    at: Option<u64>,
    calls: Cell<usize>,
}

impl Lookup {
    fn new(at: Option<u64>) -> Self {
        Lookup { at, calls: Cell::new(0) }
    }

    fn get(&self, user: &str) -> Result<Option<u64>, LookupFailed> {
        self.calls.set(self.calls.get() + 1);
        assert_eq!(user, "alice", "asked with the nodeprep'd username");
        Ok(self.at)
    }
}

/// One login of `token` (minted for alice at `minted`) at `now` by each path, with `lookup`.
fn logins(v: &Verifier, minted: u64, now: u64, lookup: &Lookup) -> Vec<(&'static str, Result<(), Reject>)> {
    let signed_out = |u: &str| lookup.get(u);
    let mut out = Vec::new();
    for m in [Mechanism::Plain, Mechanism::XToken] {
        let token = v.mint("alice@example.org", minted).unwrap();
        let msg = format!("\0Alice\0{token}");
        let mut ex = Exchange::new(m);
        let r = match ex.step_signed_out(v, Some(msg.as_bytes()), now, &lower, &|_| None, &signed_out) {
            Outcome::Success { .. } => Ok(()),
            Outcome::Failure(r) => Err(r),
            other => panic!("{other:?}"),
        };
        out.push((m.name(), r));
    }
    for m in [Mechanism::SaslHmac, Mechanism::SaslHmacPlus] {
        let token = v.mint("alice@example.org", minted).unwrap();
        let (public, b64) = token.split_once(' ').unwrap();
        let s: [u8; 32] = data_encoding::BASE64.decode(b64.as_bytes()).unwrap().try_into().unwrap();
        let cb = b"binding data".to_vec();
        let mut cfm = if m == Mechanism::SaslHmacPlus { b"tls-exporter\0".to_vec() } else { Vec::new() };
        cfm.extend_from_slice(format!("\0alice\0{public}").as_bytes());
        let binding = |_: &str| Some(cb.clone());
        let mut ex = Exchange::new(m);
        let Outcome::Challenge(sn) = ex.step_signed_out(v, Some(&cfm), now, &lower, &binding, &signed_out) else { panic!() };
        let proof = match m {
            Mechanism::SaslHmacPlus => sasl_hmac_plus_proof(&s, true, &cfm, &sn, &cb),
            _ => sasl_hmac_proof(&s, true, &cfm, &sn),
        };
        let r = match ex.step_signed_out(v, Some(&proof), now, &lower, &binding, &signed_out) {
            Outcome::Success { .. } => Ok(()),
            Outcome::Failure(r) => Err(r),
            other => panic!("{other:?}"),
        };
        out.push((m.name(), r));
    }
    let token = v.mint("alice@example.org", minted).unwrap();
    let r = verify_username_signed_out(v, token.as_bytes(), "Alice", &lower, now, &signed_out).map(|_| ());
    out.push(("test_password", r));
    out
}

#[test]
fn a_token_of_the_sign_outs_step_or_before_is_refused_on_every_path() {
    let v = verifier();
    let step = v.otp().step_seconds();
    let signed_out = (NOW / step) * step + 10; // inside a step
    for (minted, now, want) in [
        (signed_out - step, signed_out, Err(Reject::SignedOut)),
        ((signed_out / step) * step, signed_out + 1, Err(Reject::SignedOut)),
        (signed_out, signed_out + 1, Err(Reject::SignedOut)),
        ((signed_out / step + 1) * step, (signed_out / step + 1) * step, Ok(())),
    ] {
        let lookup = Lookup::new(Some(signed_out));
        for (path, r) in logins(&v, minted, now, &lookup) {
            assert_eq!(r, want, "{path}: minted {minted}, signed out {signed_out}");
        }
        assert_eq!(lookup.calls.get(), 5);
    }
}

#[test]
fn a_refused_token_is_not_used_up() {
    let v = verifier();
    let token = v.mint("alice@example.org", NOW).unwrap();
    let msg = format!("\0alice\0{token}");
    let login = |at: Option<u64>| {
        let lookup = Lookup::new(at);
        let mut ex = Exchange::new(Mechanism::Plain);
        ex.step_signed_out(&v, Some(msg.as_bytes()), NOW, &lower, &|_| None, &|u| lookup.get(u))
    };
    assert_eq!(login(Some(NOW)), Outcome::Failure(Reject::SignedOut));
    assert!(matches!(login(None), Outcome::Success { .. }), "the refusal did not reach the replay cache");
    assert_eq!(login(None), Outcome::Failure(Reject::Replayed));
}

#[test]
fn the_lookup_is_asked_only_after_the_mac_and_the_window() {
    let v = verifier();
    let lookup = Lookup::new(Some(NOW));
    let token = v.mint("alice@example.org", NOW).unwrap();
    let forged = format!("{} {}", token.split_once(' ').unwrap().0, data_encoding::BASE64.encode(&[1u8; 32]));
    let old = v.mint("alice@example.org", NOW - 3600).unwrap();
    for (t, want) in [(forged, Reject::BadSignature), (old, Reject::Expired)] {
        let r = verify_username_signed_out(&v, t.as_bytes(), "alice", &lower, NOW, &|u| lookup.get(u));
        assert_eq!(r.map(|_| ()), Err(want));
    }
    assert_eq!(lookup.calls.get(), 0);
}

#[test]
fn a_failed_lookup_fails_closed() {
    let v = verifier();
    let token = v.mint("alice@example.org", NOW).unwrap();
    let r = verify_username_signed_out(&v, token.as_bytes(), "alice", &lower, NOW, &|_| Err(LookupFailed));
    assert_eq!(r.map(|_| ()), Err(Reject::Internal));
    let r = verify_username_signed_out(&v, token.as_bytes(), "alice", &lower, NOW, &|_| Ok(None));
    assert!(r.is_ok(), "and the token was not used up");
}

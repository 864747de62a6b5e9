//! The two jobs of verification, apart: `TokenChecker::check` says whether a token is authentic
//! (no store), `ReplayGuard::accept` accepts an `Authentic` once, counted against the account the
//! candidates name.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use prosody_auth_hmac::replay::{Key, ReplayStore};
use prosody_auth_hmac::{
    Candidates, ClockDiagnosis, Reject, ReplayGuard, ReplaySettings, SecretBytes, TokenChecker, TokenSettings, Verifier,
};

const SEED: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";
const NOW: u64 = 1_700_000_000;

fn checker() -> TokenChecker {
    let secret = SecretBytes::from_config_str("a-secret-of-more-than-sixteen-bytes");
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    TokenChecker::new(vec![secret], seed, TokenSettings::default(), Some("example.org")).unwrap()
}

/// A store that takes everything and records who it was offered for.
#[derive(Default)]
struct Recording(Arc<Mutex<Vec<(Key, String)>>>);

impl ReplayStore for Recording {
    fn check_and_insert(&mut self, key: Key, account: &str, _current: u64, _expiry: u64) -> Result<(), Reject> {
        self.0.lock().unwrap().push((key, account.to_owned()));
        Ok(())
    }
    fn export(&self) -> (u64, Vec<(Key, u64)>) {
        (0, vec![])
    }
    fn import(&mut self, _high_water: u64, _entries: &[(Key, u64)]) -> usize {
        0
    }
    fn stats(&self) -> (usize, usize, usize) {
        (0, 0, 0)
    }
}

/// A store that must never be reached.
struct Untouchable;

impl ReplayStore for Untouchable {
    fn check_and_insert(&mut self, _: Key, _: &str, _: u64, _: u64) -> Result<(), Reject> {
        panic!("the store was offered a token")
    }
    fn export(&self) -> (u64, Vec<(Key, u64)>) {
        panic!("the store was exported")
    }
    fn import(&mut self, _: u64, _: &[(Key, u64)]) -> usize {
        panic!("the store was imported into")
    }
    fn high_water(&self) -> u64 {
        panic!("the store's high-water mark was read")
    }
    fn stats(&self) -> (usize, usize, usize) {
        panic!("the store's stats were read")
    }
}

#[test]
fn an_authentic_token_counts_for_the_named_account_and_no_other() {
    let c = checker();
    let offered = Arc::new(Mutex::new(vec![]));
    let guard = ReplayGuard::with_store(Box::new(Recording(offered.clone())), &c);

    let alice = c.mint("alice@example.org", NOW).unwrap();
    for other in ["bob@example.org", "Alice@example.org", "alice@example.org.evil", "alice@example.orh"] {
        let refused = c.check(alice.as_bytes(), Candidates::only(other), NOW).unwrap_err();
        assert!(matches!(refused, Reject::BadSignature | Reject::WrongHost), "{other}: {refused:?}");
    }
    // listed as another spelling of bob's account, alice's JID is not tried: nothing else signs
    let also = ["carol@example.org"];
    assert_eq!(
        c.check(alice.as_bytes(), Candidates { account: "bob@example.org", also: &also }, NOW).unwrap_err(),
        Reject::BadSignature
    );

    let authentic = c.check(alice.as_bytes(), Candidates::only("alice@example.org"), NOW).unwrap();
    assert_eq!((authentic.account(), authentic.jid_index()), ("alice@example.org", 0));
    assert!(format!("{authentic:?}").contains(r#"replay_key: "***""#), "the key is never shown");
    let accepted = guard.accept(authentic, NOW).unwrap();
    assert_eq!(accepted.jid_index(), 0);

    // signed for the spelling as sent: the quota that counts is the canonical account's, by name
    let sent = c.mint("Amy@example.org", NOW).unwrap();
    let also = ["Amy@example.org"];
    let authentic = c.check(sent.as_bytes(), Candidates { account: "amy@example.org", also: &also }, NOW).unwrap();
    assert_eq!((authentic.account(), authentic.jid_index()), ("amy@example.org", 0));
    guard.accept(authentic, NOW).unwrap();
    let seen: Vec<String> = offered.lock().unwrap().iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(seen, ["alice@example.org", "amy@example.org"]);
    // the facade's list form names the account last, whichever JID signed
    let v = Verifier::with_replay_store(
        vec![SecretBytes::from_config_str("a-secret-of-more-than-sixteen-bytes")],
        prosody_auth_hmac::totp::decode_seed(SEED).unwrap(),
        TokenSettings::default(),
        Some("example.org"),
        Box::new(Recording(offered.clone())),
    )
    .unwrap();
    let sent = v.mint("Ann@example.org", NOW).unwrap();
    assert_eq!(v.verify(sent.as_bytes(), &["Ann@example.org", "ann@example.org"], NOW).unwrap().jid_index(), 0);
    assert_eq!(offered.lock().unwrap().last().unwrap().1, "ann@example.org");
}

#[test]
fn the_guard_refuses_a_replay_and_a_step_gone_by() {
    let c = checker();
    let guard = ReplayGuard::new(ReplaySettings::default(), &c).unwrap();
    let token = c.mint("dan@example.org", NOW).unwrap();
    let first = c.check(token.as_bytes(), Candidates::only("dan@example.org"), NOW).unwrap();
    let again = c.check(token.as_bytes(), Candidates::only("dan@example.org"), NOW).unwrap();
    assert!(guard.accept(first, NOW).is_ok());
    assert_eq!(guard.accept(again, NOW).unwrap_err(), Reject::Replayed);

    // checked while current, offered later: a store that takes everything does not decide it
    let offered = Arc::new(Mutex::new(vec![]));
    let lax = ReplayGuard::with_store(Box::new(Recording(offered.clone())), &c);
    let token = c.mint("eve@example.org", NOW).unwrap();
    let step = TokenSettings::default().step;
    let skew = TokenSettings::default().skew;
    for later in [NOW + step * (skew + 1), NOW + 3600, u64::MAX] {
        let authentic = c.check(token.as_bytes(), Candidates::only("eve@example.org"), NOW).unwrap();
        assert_eq!(lax.accept(authentic, later).unwrap_err(), Reject::Expired, "at {later}");
    }
    for earlier in [NOW - step * (skew + 1), 0] {
        let authentic = c.check(token.as_bytes(), Candidates::only("eve@example.org"), NOW).unwrap();
        assert_eq!(lax.accept(authentic, earlier).unwrap_err(), Reject::Expired, "at {earlier}");
    }
    assert!(offered.lock().unwrap().is_empty(), "a token out of its window reached the store");
    let authentic = c.check(token.as_bytes(), Candidates::only("eve@example.org"), NOW).unwrap();
    assert!(lax.accept(authentic, NOW + step).is_ok(), "still inside the window one step on");
}

#[test]
fn checking_never_touches_the_store() {
    let secret = SecretBytes::from_config_str("a-secret-of-more-than-sixteen-bytes");
    let seed = prosody_auth_hmac::totp::decode_seed(SEED).unwrap();
    let v = Verifier::with_replay_store(vec![secret], seed, TokenSettings::default(), Some("example.org"), Box::new(Untouchable))
        .unwrap();
    let c = v.checker();
    let good = c.mint("fay@example.org", NOW).unwrap();
    let fay = Candidates::only("fay@example.org");
    for _ in 0..3 {
        assert!(c.check(good.as_bytes(), fay, NOW).is_ok(), "the same token, checked again");
    }
    let mut forged = good.clone().into_bytes();
    forged[0] = if forged[0] == b'9' { b'0' } else { forged[0] + 1 };
    assert_eq!(c.check(&forged, fay, NOW).unwrap_err(), Reject::BadSignature);
    assert_eq!(c.check(b"12345678 nonsense", fay, NOW).unwrap_err(), Reject::Malformed);
    assert_eq!(c.check(good.as_bytes(), Candidates::only("fay@elsewhere.org"), NOW).unwrap_err(), Reject::WrongHost);
    let old = c.mint("fay@example.org", NOW - 3600).unwrap();
    assert_eq!(c.check(old.as_bytes(), fay, NOW).unwrap_err(), Reject::Expired);
    assert_eq!(c.explain(Reject::Expired, old.as_bytes(), NOW), Some(ClockDiagnosis::Offset(-3600)));

    // the facade does reach the store: the test above would have noticed
    let reached = catch_unwind(AssertUnwindSafe(|| v.verify(good.as_bytes(), &["fay@example.org"], NOW)));
    assert!(reached.is_err(), "accepting asks the store");
}

//! The replay store behind its trait: a store other than the in-memory cache plugs into the
//! verifier unchanged, is offered only authentic tokens, and its refusal is the verifier's.
mod common;

use std::sync::{Arc, Mutex};

use prosody_auth_hmac::replay::{Key, ReplayStore};
use prosody_auth_hmac::TokenSettings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

#[derive(Default)]
struct Recording {
    offered: Arc<Mutex<Vec<(Key, String)>>>,
    refuse: Option<Reject>,
}

impl ReplayStore for Recording {
    fn check_and_insert(&mut self, key: Key, account: &str, _current: u64, _expiry: u64) -> Result<(), Reject> {
        self.offered.lock().unwrap().push((key, account.to_owned()));
        self.refuse.map_or(Ok(()), Err)
    }
    fn export(&self) -> (u64, Vec<(Key, u64)>) {
        (0, vec![])
    }
    fn import(&mut self, _high_water: u64, _entries: &[(Key, u64)]) -> usize {
        0
    }
    fn stats(&self) -> (usize, usize, usize) {
        (self.offered.lock().unwrap().len(), 0, 0)
    }
}

fn verifier(store: Recording) -> Verifier {
    let secret = SecretBytes::from_config_str("a-secret-of-more-than-sixteen-bytes");
    let seed = prosody_auth_hmac::totp::decode_seed("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U").unwrap();
    Verifier::with_replay_store(vec![secret], seed, TokenSettings::default(), Some("example.org"), Box::new(store)).unwrap()
}

#[test]
fn another_store_sees_only_authentic_tokens_and_decides() {
    let offered = Arc::new(Mutex::new(vec![]));
    let v = verifier(Recording { offered: offered.clone(), refuse: None });
    let now = 1_700_000_000;
    let token = v.mint("alice@example.org", now).unwrap();
    assert_eq!(v.verify(token.as_bytes(), &["bob@example.org"], now).unwrap_err(), Reject::BadSignature);
    assert_eq!(v.verify(b"12345678 nonsense", &["alice@example.org"], now).unwrap_err(), Reject::Malformed);
    assert!(offered.lock().unwrap().is_empty(), "a forged or malformed token reached the store");
    assert!(v.verify(token.as_bytes(), &["alice@example.org"], now).is_ok());
    // this store forgets: the verifier's answer is the store's, so the same token passes again
    assert!(v.verify(token.as_bytes(), &["alice@example.org"], now).is_ok());
    let seen = offered.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, "alice@example.org");
    assert_eq!(v.replay_stats().0, 2);

    for refusal in [Reject::Replayed, Reject::CacheFull, Reject::QuotaExceeded] {
        let v = verifier(Recording { offered: Arc::default(), refuse: Some(refusal) });
        let token = v.mint("carol@example.org", now).unwrap();
        assert_eq!(v.verify(token.as_bytes(), &["carol@example.org"], now).unwrap_err(), refusal);
    }
}

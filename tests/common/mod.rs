//! Shared helpers for the integration tests: loading tests/vectors/tokens.json.
#![allow(dead_code)]

use prosody_auth_hmac::{verifier::Settings, SecretBytes, Verifier};
use serde_json::Value;

pub fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("parse vectors")
}

pub fn verifier_for(doc: &Value) -> Verifier {
    let secrets = doc["secrets"].as_array().unwrap().iter().map(|s| SecretBytes::from_config_str(s.as_str().unwrap())).collect();
    let seed = prosody_auth_hmac::totp::decode_seed(doc["otp_seed"].as_str().unwrap()).unwrap();
    let settings = Settings {
        digits: doc["digits"].as_u64().unwrap() as u32,
        step: doc["step"].as_u64().unwrap(),
        skew: doc["skew"].as_u64().unwrap(),
        // the vectors use collective.converse's published example values
        allow_weak_secrets: true,
        ..Settings::default()
    };
    Verifier::new(secrets, seed, settings, Some(doc["host"].as_str().unwrap())).unwrap()
}

/// xorshift64*: deterministic from its seed, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Up to `max` bytes drawn from `alphabet`.
    pub fn bytes(&mut self, alphabet: &[u8], max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max + 1);
        (0..n).map(|_| alphabet[(self.next() as usize) % alphabet.len()]).collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

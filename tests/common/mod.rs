//! Shared helpers for the integration tests: loading tests/vectors/tokens.json.
#![allow(dead_code)]

use prosody_auth_hmac::{token::Settings, SecretBytes, Verifier};
use serde_json::Value;

pub fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("parse vectors")
}

pub fn verifier_for(doc: &Value) -> Verifier {
    let secrets = doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SecretBytes::from_config_str(s.as_str().unwrap()))
        .collect();
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

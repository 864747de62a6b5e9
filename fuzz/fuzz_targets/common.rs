#![allow(dead_code)]
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{SecretBytes, Verifier};

pub const HOST: &str = "example.org";
pub const NOW: u64 = 1_700_000_000;

pub fn verifier() -> Verifier {
    let secrets = vec![
        SecretBytes::from_config_str("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"),
        SecretBytes::from_config_str("previous-secret-still-accepted-during-rotation"),
    ];
    let seed = prosody_auth_hmac::totp::decode_seed("XVGR73KMZH2M4XMY").unwrap();
    Verifier::new(secrets, seed, Settings { replay_cache_size: 64, allow_weak_secrets: true, ..Settings::default() }, Some(HOST))
        .unwrap()
}

/// RFC 3920 nodeprep (the stringprep crate). The server uses Prosody's own; the core takes nodeprep
/// as a function, so what the targets check is the identity rule given a real preparation.
pub fn nodeprep(s: &str) -> Option<String> {
    stringprep::nodeprep(s).ok().map(|c| c.into_owned())
}

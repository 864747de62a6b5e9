//! PLAIN / X-TOKEN framing and identity resolution on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prosody_auth_hmac::sasl::{parse_plain, resolve_identity};

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = parse_plain(data) {
        assert!(!msg.authcid.is_empty() && !msg.secret.is_empty());
        if let Ok(id) = resolve_identity(common::HOST, msg.authzid, msg.authcid, &common::nodeprep) {
            assert!(!id.jids.is_empty() && id.jids.len() <= 2);
            for j in &id.jids {
                assert!(j.ends_with("@example.org"));
            }
        }
    }
});

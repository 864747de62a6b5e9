//! Arbitrary bytes as a token, with a valid token mutated by the input as a second case: parse and
//! verify must never panic, and nothing but an unmodified valid token may be accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let v = common::verifier();
    let _ = prosody_auth_hmac::UntrustedToken::parse(data, 8);
    let now = common::NOW ^ u64::from(data.first().copied().unwrap_or(0));
    assert!(v.verify(data, &["alice@example.org"], now).is_err(), "random bytes were accepted");
    // a real token with the input xor-ed over it
    let token = v.mint("alice@example.org", common::NOW).unwrap().into_bytes();
    let mut mutated = token.clone();
    for (b, d) in mutated.iter_mut().zip(data) {
        *b ^= d;
    }
    mutated.extend_from_slice(data.get(token.len()..).unwrap_or(&[]));
    let result = v.verify(&mutated, &["alice@example.org"], common::NOW);
    if mutated != token {
        assert!(result.is_err(), "a modified token was accepted");
    }
});

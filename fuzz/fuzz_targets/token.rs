//! Arbitrary bytes as a token, and tokens minted for one account presented for another.
//! Input: `control ‖ me ‖ 0xFF ‖ other ‖ 0xFF ‖ mutation`. A token is minted for the fuzzer's own
//! localpart `me`; it must never verify for `other` (any other JID), nor with `k` digits moved
//! between its public part and the localpart in either direction (5 -> 35, 35 -> 5), and for `me`
//! only unmodified. Parse and verify must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let v = common::verifier();
    let _ = prosody_auth_hmac::UntrustedToken::parse(data, v.layout());
    let now = common::NOW ^ u64::from(data.first().copied().unwrap_or(0));
    assert!(v.verify(data, &["alice@example.org"], now).is_err(), "random bytes were accepted");

    let Some((&control, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let me = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let other = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let mutation = parts.next().unwrap_or(&[]);
    let me = if v.mint(&format!("{me}@example.org"), common::NOW).is_ok() { me } else { "alice".to_owned() };
    let my_jid = format!("{me}@example.org");
    let token = v.mint(&my_jid, common::NOW).unwrap();
    let (public, mac) = token.split_once(' ').unwrap();

    // the token for any other JID (exact bytes: the core verifies the JID it is given)
    let other_jid = format!("{other}@example.org");
    if other_jid != my_jid {
        assert!(v.verify(token.as_bytes(), &[&other_jid], common::NOW).is_err(), "{me:?}'s token verified for {other:?}");
    }
    // k digits moved from the nonce to the front of the localpart, and back
    let k = usize::from(control % 41).max(1);
    let (kept, moved) = public.split_at(public.len() - k);
    let shifted = format!("{kept} {mac}");
    assert!(v.verify(shifted.as_bytes(), &[&format!("{moved}{my_jid}")], common::NOW).is_err(), "shifted right by {k}");
    let lead = me.bytes().take_while(u8::is_ascii_digit).count();
    if k <= lead && k < me.len() {
        let longer = format!("{public}{} {mac}", &me[..k]);
        let victim = format!("{}@example.org", &me[k..]);
        assert!(v.verify(longer.as_bytes(), &[&victim], common::NOW).is_err(), "shifted left by {k}");
    }

    // the token with the input xor-ed over it: only the unmodified token verifies, once
    let mut mutated = token.clone().into_bytes();
    for (b, d) in mutated.iter_mut().zip(mutation) {
        *b ^= d;
    }
    mutated.extend_from_slice(mutation.get(token.len()..).unwrap_or(&[]));
    let result = v.verify(&mutated, &[&my_jid], common::NOW);
    if mutated != token.as_bytes() {
        assert!(result.is_err(), "a modified token was accepted");
    }
    if other_jid != my_jid {
        assert!(v.verify(&mutated, &[&other_jid], common::NOW).is_err(), "a modified token verified for {other:?}");
    }
});

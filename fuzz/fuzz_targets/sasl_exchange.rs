//! Sequences of SASL steps for every mechanism. The input is split on 0xFF into messages; the first
//! byte picks the mechanism and whether the fuzzer plays an honest SASL-HMAC client for part of the
//! exchange (so success, replay and expiry paths are reached, not only parse errors).
#![no_main]
use libfuzzer_sys::fuzz_target;
use prosody_auth_hmac::sasl::{sasl_hmac_proof, Exchange, Mechanism, Outcome};

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let v = common::verifier();
    let mech = Mechanism::ALL[(control as usize) % Mechanism::ALL.len()];
    let honest = control & 0x10 != 0;
    let late = control & 0x20 != 0;
    let now = if late { common::NOW + 120 } else { common::NOW };
    let token = v.mint("alice@example.org", common::NOW).unwrap();
    let (public, b64) = token.split_once(' ').unwrap();
    let Ok(s) = data_encoding::BASE64.decode(b64.as_bytes()) else { return };
    let cfm = [b"\0alice\0".as_slice(), public.as_bytes()].concat();

    for round in 0..2 {
        let mut ex = Exchange::new(mech);
        let mut out = None;
        for (i, msg) in rest.split(|&b| b == 0xFF).enumerate().take(6) {
            let message: Vec<u8> = match (honest, mech, i, &out) {
                (true, Mechanism::SaslHmac, 0, _) => cfm.clone(),
                (true, Mechanism::SaslHmac, 1, Some(Outcome::Challenge(sn))) => sasl_hmac_proof(&s, true, &cfm, sn).to_vec(),
                (true, Mechanism::Plain | Mechanism::XToken, 0, _) => [b"\0alice\0".as_slice(), token.as_bytes()].concat(),
                _ => msg.to_vec(),
            };
            let step = ex.step(&v, if msg == b"\xFE" { None } else { Some(&message) }, now, &common::nodeprep);
            if let Outcome::Success { username, .. } = &step {
                assert!(honest && !late && round == 0, "success without an honest client");
                assert_eq!(username, "alice");
            }
            let done = !matches!(step, Outcome::Challenge(_));
            out = Some(step);
            if done {
                break;
            }
        }
    }
});

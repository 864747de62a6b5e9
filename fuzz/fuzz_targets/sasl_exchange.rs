//! Sequences of SASL steps for every mechanism. The input is split on 0xFF into messages; the first
//! byte picks the mechanism and whether the fuzzer plays an honest SASL-HMAC client (or PLAIN
//! client) that holds a token for alice, for part of the exchange (so success, replay and expiry
//! paths are reached, not only parse errors). The honest client claims the account named by the
//! second byte's choice: alice, or the fuzzer's first message as authcid, and may move `k` nonce
//! digits into that authcid. Success is allowed only for the account the token was minted for.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prosody_auth_hmac::sasl::{resolve_identity, sasl_hmac_plus_proof, sasl_hmac_proof, Exchange, Mechanism, Outcome};

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let Some((&claim, rest)) = rest.split_first() else { return };
    let v = common::verifier();
    let mech = Mechanism::ALL[(control as usize) % Mechanism::ALL.len()];
    let honest = control & 0x10 != 0;
    let late = control & 0x20 != 0;
    let now = if late { common::NOW + 120 } else { common::NOW };
    let token = v.mint("alice@example.org", common::NOW).unwrap();
    let (public, b64) = token.split_once(' ').unwrap();
    let Ok(s) = data_encoding::BASE64.decode(b64.as_bytes()) else { return };
    // who the honest client claims to be, and how many nonce digits it moves into that name
    let first = rest.split(|&b| b == 0xFF).next().unwrap_or(&[]);
    let k = usize::from(claim % 41);
    let authcid = if claim & 0x80 != 0 { String::from_utf8_lossy(first).into_owned() } else { "alice".to_owned() };
    let (kept, moved) = public.split_at(public.len() - k);
    let authcid = format!("{moved}{authcid}");
    let cfm = [b"\0", authcid.as_bytes(), b"\0", kept.as_bytes()].concat();
    // -PLUS on a connection whose tls-exporter binding is CB; the honest client is on it too
    const CB: [u8; 32] = [0x42; 32];
    let binding = |name: &str| (name == "tls-exporter").then(|| CB.to_vec());
    let plus_cfm = [b"tls-exporter\0".as_slice(), &cfm].concat();
    let plain = [b"\0", authcid.as_bytes(), b"\0", kept.as_bytes(), b" ", b64.as_bytes()].concat();
    // the account the server resolves the authcid to (a localpart, or a bare JID of the host)
    let rightful =
        k == 0 && resolve_identity(common::HOST, "", &authcid, &common::nodeprep, false).is_ok_and(|id| id.username == "alice");

    for round in 0..2 {
        let mut ex = Exchange::new(mech);
        let mut out = None;
        for (i, msg) in rest.split(|&b| b == 0xFF).enumerate().take(6) {
            let message: Vec<u8> = match (honest, mech, i, &out) {
                (true, Mechanism::SaslHmac, 0, _) => cfm.clone(),
                (true, Mechanism::SaslHmac, 1, Some(Outcome::Challenge(sn))) => sasl_hmac_proof(&s, true, &cfm, sn).to_vec(),
                (true, Mechanism::SaslHmacPlus, 0, _) => plus_cfm.clone(),
                (true, Mechanism::SaslHmacPlus, 1, Some(Outcome::Challenge(sn))) => {
                    sasl_hmac_plus_proof(&s, true, &plus_cfm, sn, &CB).to_vec()
                }
                (true, Mechanism::Plain | Mechanism::XToken, 0, _) => plain.clone(),
                _ => msg.to_vec(),
            };
            let step = ex.step_bound(&v, if msg == b"\xFE" { None } else { Some(&message) }, now, &common::nodeprep, &binding);
            if let Outcome::Success { username, .. } = &step {
                assert!(honest && !late && round == 0, "success without an honest client");
                assert!(rightful, "alice's token logged in {authcid:?}");
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

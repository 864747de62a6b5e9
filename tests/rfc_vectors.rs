//! RFC 4231 (HMAC-SHA256) through the verifier's prepared key states, and RFC 6238 (TOTP SHA-1)
//! through the public OTP type.
use prosody_auth_hmac::{totp::Otp, verifier::Settings, SecretBytes, Verifier};

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
}

fn verifier_with_key(key: Vec<u8>) -> Verifier {
    Verifier::new(
        vec![SecretBytes::new(key)],
        SecretBytes::new(vec![1; 10]),
        Settings { allow_weak_secrets: true, ..Settings::default() },
        None,
    )
    .unwrap()
}

#[test]
fn rfc4231_hmac_sha256() {
    let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
        (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (vec![0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (vec![0xaa; 131], b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ];
    for (i, (key, data, want)) in cases.into_iter().enumerate() {
        let v = verifier_with_key(key);
        // split the data between the two update calls, as a real token does (public ‖ jid)
        let cut = data.len() / 2;
        let jid = std::str::from_utf8(&data[cut..]).ok();
        let mac = match jid {
            Some(j) => v.signature(0, &data[..cut], j).unwrap(),
            None => v.signature(0, &data, "").unwrap(),
        };
        assert_eq!(data_encoding::HEXLOWER.encode(&mac), want, "RFC 4231 case {}", i + 1);
    }
}

#[test]
fn rfc6238_totp_sha1_8_digits() {
    let otp = Otp::new(SecretBytes::new(b"12345678901234567890".to_vec()), 8, 30, 0).unwrap();
    for (t, want) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(otp.code(otp.step_of(t)).unwrap().as_bytes(), want.as_bytes(), "T={t}");
        assert_eq!(otp.code(otp.step_of(t)).unwrap().as_bytes(), want.as_bytes(), "T={t}, from the cache");
        assert_eq!(otp.matching_step(want.as_bytes(), t), Some(t / 30));
    }
}

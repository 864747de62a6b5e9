//! Criterion benchmarks of the core: parsing, the HMAC, the OTP window, a full verification of a
//! fresh token (replay insert included), a refused one, and a whole SASL-HMAC exchange.
//!   cargo bench --bench verify
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use prosody_auth_hmac::sasl::{sasl_hmac_proof, Exchange, Mechanism, Outcome};
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{SecretBytes, UntrustedToken, Verifier};

const NOW: u64 = 1_700_000_000;
const JID: &str = "alice@example.org";

fn verifier(cap: usize) -> Verifier {
    let seed = prosody_auth_hmac::totp::decode_seed("XVGR73KMZH2M4XMY").unwrap();
    let secrets = vec![SecretBytes::from_config_str("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7")];
    Verifier::new(
        secrets,
        seed,
        Settings { replay_cache_size: cap, allow_weak_secrets: true, ..Settings::default() },
        Some("example.org"),
    )
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let v = verifier(10_000_000);
    let token = v.mint(JID, NOW).unwrap();
    let public = token.split(' ').next().unwrap().to_owned();
    c.bench_function("parse token", |b| b.iter(|| UntrustedToken::parse(black_box(token.as_bytes()), v.layout()).is_ok()));
    c.bench_function("HMAC-SHA256 (prepared key)", |b| b.iter(|| v.signature(0, black_box(public.as_bytes()), JID)));
    c.bench_function("OTP window (3 steps)", |b| b.iter(|| v.otp().matching_step(black_box(&public.as_bytes()[..8]), NOW)));
    let bad = format!("{public} {}=", "A".repeat(43));
    c.bench_function("verify: refused (bad signature)", |b| b.iter(|| v.verify(black_box(bad.as_bytes()), &[JID], NOW)));
    let mut n = 0u64;
    c.bench_function("verify: fresh valid token (replay insert)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let jid = format!("u{n}@example.org");
                (v.mint(&jid, NOW).unwrap(), jid)
            },
            |(tok, jid)| v.verify(tok.as_bytes(), &[&jid], NOW).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let lower = |s: &str| Some(s.to_lowercase());
    c.bench_function("SASL-HMAC exchange (server side)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let user = format!("h{n}");
                let tok = v.mint(&format!("{user}@example.org"), NOW).unwrap();
                let (p, m) = tok.split_once(' ').unwrap();
                let s = data_encoding::BASE64.decode(m.as_bytes()).unwrap();
                ([b"\0".as_slice(), user.as_bytes(), b"\0", p.as_bytes()].concat(), s)
            },
            |(cfm, s)| {
                let mut ex = Exchange::new(Mechanism::SaslHmac);
                let Outcome::Challenge(sn) = ex.step(&v, Some(&cfm), NOW, &lower) else { panic!() };
                let proof = sasl_hmac_proof(&s, true, &cfm, &sn);
                ex.step(&v, Some(&proof), NOW, &lower)
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(core, benches);
criterion_main!(core);

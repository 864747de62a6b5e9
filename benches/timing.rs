//! Timing side channels: is verification time distinguishable for a signature wrong in its first
//! byte vs its last byte, or for an OTP that is wrong vs right? Interleaves the cases, times
//! batches, and reports medians and Welch's t. A benchmark, not a test.
//!   cargo bench --bench timing
use std::hint::black_box;
use std::time::Instant;

use prosody_auth_hmac::totp::Otp;
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{SecretBytes, Verifier};

const BATCH: usize = 64;
const ROUNDS: usize = 4000;

fn flip(token: &str, byte: usize) -> String {
    let (public, b64) = token.split_once(' ').unwrap();
    let mut mac = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
    mac[byte] ^= 0x80;
    format!("{public} {}", data_encoding::BASE64.encode(&mac))
}

fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (s[s.len() / 2], mean, var)
}

fn compare(name: &str, a_name: &str, a: &[f64], b_name: &str, b: &[f64]) {
    // trim the slowest 5 % (interrupts, page faults) before the t-test
    let trim = |xs: &[f64]| {
        let mut s = xs.to_vec();
        s.sort_by(|x, y| x.partial_cmp(y).unwrap());
        s.truncate(s.len() * 95 / 100);
        s
    };
    let (a, b) = (trim(a), trim(b));
    let (ma, mean_a, va) = stats(&a);
    let (mb, mean_b, vb) = stats(&b);
    let t = (mean_a - mean_b) / (va / a.len() as f64 + vb / b.len() as f64).sqrt();
    println!("{name}");
    println!("  {a_name:<28} median {ma:7.1} ns");
    println!("  {b_name:<28} median {mb:7.1} ns");
    println!(
        "  difference of medians {:+.1} ns ({:+.2} %), Welch t = {t:+.2} -> {}",
        ma - mb,
        100.0 * (ma - mb) / mb,
        if t.abs() > 4.5 { "distinguishable at this sample size" } else { "not distinguishable (|t| <= 4.5)" }
    );
}

/// Times `f` on input `a` and on input `b` in alternation (which goes first alternates too),
/// BATCH calls per sample. One code path, two inputs: only the data differs between the cases.
fn interleaved<T: ?Sized>(f: impl Fn(&T), a: &T, b: &T) -> (Vec<f64>, Vec<f64>) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for which in [round % 2, 1 - round % 2] {
            let input = if which == 0 { a } else { b };
            let t = Instant::now();
            for _ in 0..BATCH {
                f(black_box(input));
            }
            let ns = t.elapsed().as_nanos() as f64 / BATCH as f64;
            if which == 0 {
                ta.push(ns)
            } else {
                tb.push(ns)
            }
        }
    }
    (ta, tb)
}

fn main() {
    let seed = || prosody_auth_hmac::totp::decode_seed("XVGR73KMZH2M4XMY").unwrap();
    let v = Verifier::new(
        vec![SecretBytes::from_config_str("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7")],
        seed(),
        Settings { allow_weak_secrets: true, ..Settings::default() },
        Some("example.org"),
    )
    .unwrap();
    let now = 1_700_000_000u64;
    let jid = "alice@example.org";
    let good = v.mint(jid, now).unwrap();
    let first = flip(&good, 0);
    let last = flip(&good, 31);
    let (t_first, t_last) = interleaved(
        |tok: &[u8]| {
            black_box(v.verify(tok, &[jid], now)).ok();
        },
        first.as_bytes(),
        last.as_bytes(),
    );
    compare("signature check (token refused as bad-signature)", "MAC wrong in byte 0", &t_first, "MAC wrong in byte 31", &t_last);

    let otp = Otp::new(seed(), 8, 30, 1).unwrap();
    let right = otp.code(otp.step_of(now)).unwrap();
    let right = right.as_bytes().to_vec();
    let mut wrong = right.clone();
    wrong[7] = if wrong[7] == b'9' { b'0' } else { wrong[7] + 1 };
    let (t_right, t_wrong) = interleaved(
        |code: &[u8]| {
            black_box(otp.matching_step(code, now));
        },
        &right[..],
        &wrong[..],
    );
    compare(
        "OTP window check (3 steps, constant-time compare)",
        "OTP right (current step)",
        &t_right,
        "OTP wrong in the last digit",
        &t_wrong,
    );
}

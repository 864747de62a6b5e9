//! Replay cache under flood: fills a cache capped at 1 000 000 with distinct valid tokens, then
//! shows fail-closed at the cap and recovery once the windows close. Prints figures; asserts
//! nothing about time.   cargo bench --bench replay_flood [-- CAP]
use std::time::Instant;

use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{Reject, SecretBytes, Verifier};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The cache on its own: insert `cap` keys, then look each up again (refused as a replay).
fn cache_alone(cap: usize) {
    use prosody_auth_hmac::replay::ReplayCache;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut keys = Vec::with_capacity(cap);
    for _ in 0..cap {
        let mut k = [0u8; 16];
        for half in k.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            half.copy_from_slice(&x.to_le_bytes());
        }
        keys.push(k);
    }
    let mut c = ReplayCache::new(cap, cap);
    let rss = rss_kib();
    let t = Instant::now();
    for k in &keys {
        c.check_and_insert(*k, "alice@example.org", 100, 102).unwrap();
    }
    let insert = t.elapsed().as_nanos() as f64 / cap as f64;
    let bytes = (rss_kib() - rss) as f64 * 1024.0 / cap as f64;
    let t = Instant::now();
    for k in &keys {
        assert_eq!(c.check_and_insert(*k, "alice@example.org", 101, 103), Err(Reject::Replayed));
    }
    let check = t.elapsed().as_nanos() as f64 / cap as f64;
    println!(
        "replay cache alone, {cap} live entries: insert {insert:.0} ns, replay check {check:.0} ns, {bytes:.1} bytes per entry"
    );
}

fn main() {
    let cap: usize = std::env::args().nth(1).filter(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    cache_alone(cap);
    let seed = prosody_auth_hmac::totp::decode_seed("XVGR73KMZH2M4XMY").unwrap();
    let v = Verifier::new(
        vec![SecretBytes::from_config_str("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7")],
        seed,
        Settings { replay_cache_size: cap, allow_weak_secrets: true, ..Settings::default() },
        Some("example.org"),
    )
    .unwrap();
    let now = 1_700_000_000u64;
    // tokens first (minting is not what is measured), for distinct users
    let jids: Vec<String> = (0..cap + 1).map(|i| format!("user{i}@example.org")).collect();
    let tokens: Vec<String> = jids.iter().map(|j| v.mint(j, now).unwrap()).collect();
    let rss_before = rss_kib();
    let t = Instant::now();
    for (j, tok) in jids.iter().zip(&tokens).take(cap) {
        v.verify(tok.as_bytes(), &[j], now).unwrap();
    }
    let fill = t.elapsed();
    let rss_after = rss_kib();
    let (entries, _, _) = v.replay_stats();
    println!("replay cache cap {cap}: filled with {entries} distinct valid tokens");
    println!(
        "  full verification incl. replay insert: {:.0} ns per token (mean over {cap})",
        fill.as_nanos() as f64 / cap as f64
    );
    println!(
        "  memory: {} KiB more RSS = {:.1} bytes per entry",
        rss_after - rss_before,
        (rss_after - rss_before) as f64 * 1024.0 / cap as f64
    );
    // a replay check against the full cache
    let t = Instant::now();
    let probes = 100_000.min(cap);
    for (j, tok) in jids.iter().zip(&tokens).take(probes) {
        assert_eq!(v.verify(tok.as_bytes(), &[j], now), Err(Reject::Replayed));
    }
    println!(
        "  replay refusal with the cache full: {:.0} ns per check (mean over {probes})",
        t.elapsed().as_nanos() as f64 / probes as f64
    );
    // fail closed at the cap
    let last = cap;
    assert_eq!(v.verify(tokens[last].as_bytes(), &[&jids[last]], now), Err(Reject::CacheFull));
    println!(
        "  token number {} at the cap: refused ({}), nothing evicted: {} entries",
        cap + 1,
        Reject::CacheFull,
        v.replay_stats().0
    );
    // recovery: once every entry's window has closed, plus the clock-step tolerance
    let later = now + 60 + 30 * prosody_auth_hmac::replay::CLOCK_BACK_TOLERANCE;
    let fresh = v.mint("late@example.org", later).unwrap();
    let t = Instant::now();
    v.verify(fresh.as_bytes(), &["late@example.org"], later).unwrap();
    println!(
        "  {} s later: a new token is accepted; purging {} expired entries took {:.1} ms; {} entries left",
        later - now,
        cap,
        t.elapsed().as_secs_f64() * 1000.0,
        v.replay_stats().0
    );
}

//! Failed logins per client address across streams (src/failures.rs), on an injected clock.
use prosody_auth_hmac::failures::{AddressBudget, Verdict, ADDRESS_FAILURES_PER_MINUTE, UNTRACKED};

const T0: u64 = 1_700_000_040; // the start of a minute

/// One client opening stream after stream: its first ADDRESS_FAILURES_PER_MINUTE failures of a
/// minute are logged, the rest counted (and its streams closed at their first failure); another
/// address is not affected; the next minute starts afresh, and one summary says how many were not
/// logged.
#[test]
fn one_address_is_bounded_across_streams_and_nobody_else_is() {
    let mut b = AddressBudget::default();
    let per = u64::from(ADDRESS_FAILURES_PER_MINUTE);
    let mut logged = 0;
    for i in 0..1000u64 {
        let v = b.record(Some("203.0.113.9"), T0 + i * 59 / 1000);
        logged += u64::from(v.log);
        assert_eq!(v.close, i + 1 >= per, "failure {i}");
        if i % 100 == 0 {
            assert_eq!(b.record(Some("198.51.100.1"), T0 + i * 59 / 1000), Verdict { log: true, close: false });
        }
    }
    assert_eq!(logged, per);
    assert_eq!(b.take_summaries(T0 + 59), vec![], "the minute is not over");
    assert_eq!(b.take_summaries(T0 + 60), vec![("203.0.113.9".to_owned(), 1000 - per)]);
    assert_eq!(b.take_summaries(T0 + 61), vec![], "each summary once");
    assert_eq!(b.record(Some("203.0.113.9"), T0 + 61), Verdict { log: true, close: false });
}

/// Many addresses cannot grow the table past its cap, nor get a tracked address's streams closed:
/// the addresses that find it full share one budget, are never closed early, and what they did
/// not log is summed in one summary. Every failure not logged is in a summary.
#[test]
fn many_addresses_neither_grow_the_table_nor_lock_out_others() {
    let (per, cap) = (5u32, 8usize);
    let mut b = AddressBudget::new(per, cap);
    let mut not_logged = 0u64;
    let mut logged = 0u64;
    for i in 0..10_000u64 {
        let address = format!("10.0.{}.{}", i / 256, i % 256);
        let v = b.record(Some(&address), T0 + i % 60);
        assert!(!v.close || i < cap as u64, "{address} closed");
        not_logged += u64::from(!v.log);
        logged += u64::from(v.log);
        assert!(b.len() <= cap);
    }
    assert!(logged <= (cap as u64 + 1) * u64::from(per), "{logged} lines");
    // a tracked address keeps its own budget
    let v = b.record(Some("10.0.0.1"), T0 + 59);
    assert_eq!(v, Verdict { log: true, close: false });
    let summaries = b.take_summaries(T0 + 60);
    assert_eq!(summaries, vec![(UNTRACKED.to_owned(), not_logged)]);
}

/// Summaries not taken for minutes merge (one per address, bounded), a clock set back starts a new
/// minute, addresses are cut to a bounded length, and failures without an address are counted
/// but never close a stream.
#[test]
fn summaries_merge_and_nothing_is_lost() {
    let mut b = AddressBudget::new(2, 4);
    for minute in 0..5u64 {
        for _ in 0..5 {
            b.record(Some("192.0.2.7"), T0 + 60 * minute);
        }
    }
    let back = T0 - 3600;
    // failures without an address have their own budget, not an address's 2
    for _ in 0..prosody_auth_hmac::options::SESSIONLESS_FAILURES_PER_MINUTE + 3 {
        assert!(!b.record(None, back).close);
    }
    let long = "x".repeat(10_000);
    for _ in 0..3 {
        b.record(Some(&long), back);
    }
    let summaries = b.take_summaries(back + 60);
    assert_eq!(summaries, vec![("(unknown address)".to_owned(), 3), ("192.0.2.7".to_owned(), 15), ("x".repeat(64), 1)]);
}

/// An attacker switching addresses within its IPv6 /64 (free for any subscriber) is one client.
#[test]
fn an_ipv6_network_is_one_client() {
    let mut b = AddressBudget::new(3, 16);
    let mut logged = 0;
    for i in 0..100u32 {
        let address = format!("2001:db8:7:9:{:x}:{:x}::1", i >> 8, i & 0xff);
        logged += u32::from(b.record(Some(&address), T0).log);
    }
    assert_eq!(logged, 3);
    assert_eq!(b.len(), 1);
    assert!(b.record(Some("2001:db8:7:a::1"), T0).log, "the next /64 is another client");
    assert_eq!(b.take_summaries(T0 + 60), vec![("2001:db8:7:9::/64".to_owned(), 97)]);
}

//! Failed logins per client address, across streams: how many a minute get a log line, and when a
//! client's streams are closed at its first failure.
//!
//! `token_max_failures` caps one stream; a client that opens a new stream (a BOSH session, say)
//! after each few failures is only capped here. Each address may log [`ADDRESS_FAILURES_PER_MINUTE`]
//! failures in a minute of the injected clock; its further failures that minute are counted, not
//! logged, and its streams are closed at their first failure. When the minute is over, one summary
//! per address says how many were not logged.
//!
//! An IPv6 address counts as its /64 (one subscriber's network, whose addresses cost nothing to
//! switch between); an IPv4-mapped one as its IPv4 address.
//!
//! The table is bounded: at most [`ADDRESS_TABLE_CAP`] addresses a minute. Once it is full, the
//! failures of addresses not in it share one more budget of the same size (logged up to it, then
//! counted) and never close a stream: many addresses cannot grow the table, nor get another
//! address's streams closed, and the log grows by at most `(cap + 1) × budget` lines a minute.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv6Addr;

/// Failures from one address that get a log line in one minute, unless configured
/// (`token_max_failures_per_address`).
pub const ADDRESS_FAILURES_PER_MINUTE: u32 = crate::options::DEFAULT_MAX_FAILURES_PER_ADDRESS;
/// Addresses counted in one minute; beyond, [`UNTRACKED`] stands for the others. It also bounds
/// the log: at most `(cap + 1) × budget` failure lines a minute (20 500, some 340 a second, at the
/// defaults) however many addresses an attacker has.
pub const ADDRESS_TABLE_CAP: usize = 1024;
/// What the summaries call the addresses that found the table full.
pub const UNTRACKED: &str = "(addresses beyond the table)";
/// Longest address kept (an IPv6 address in text is at most 45 bytes): the table's memory is
/// bounded whatever Prosody hands over.
const ADDRESS_MAX_LEN: usize = 64;
const WINDOW_SECONDS: u64 = 60;

/// What to do with one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Write its log line (else it is counted for the summary).
    pub log: bool,
    /// The address has used up its minute's budget: close the stream now.
    pub close: bool,
}

#[derive(Default, Clone, Copy)]
struct Count {
    seen: u32,
    suppressed: u64,
}

/// The per-address budgets of one minute, and the summaries of the minute before.
pub struct AddressBudget {
    per_minute: u32,
    cap: usize,
    window: Option<u64>,
    table: HashMap<String, Count>,
    untracked: Count,
    finished: HashMap<String, u64>,
}

impl Default for AddressBudget {
    fn default() -> Self {
        AddressBudget::new(ADDRESS_FAILURES_PER_MINUTE, ADDRESS_TABLE_CAP)
    }
}

impl AddressBudget {
    /// `per_minute` logged failures per address and minute (at least 1), `cap` addresses a minute
    /// (at least 1).
    pub fn new(per_minute: u32, cap: usize) -> Self {
        AddressBudget {
            per_minute: per_minute.max(1),
            cap: cap.max(1),
            window: None,
            table: HashMap::new(),
            untracked: Count::default(),
            finished: HashMap::new(),
        }
    }

    /// Counts one failure from `address` (as Prosody gives it; `None`: not known) at unix time `now`.
    pub fn record(&mut self, address: Option<&str>, now: u64) -> Verdict {
        self.roll(now);
        let key = address.map(client_key).unwrap_or(Cow::Borrowed(UNKNOWN));
        let key = key.as_ref();
        let per_minute = self.per_minute;
        let (count, closes) = if self.table.contains_key(key) || self.table.len() < self.cap {
            (self.table.entry(key.to_owned()).or_default(), true)
        } else {
            (&mut self.untracked, false)
        };
        count.seen = count.seen.saturating_add(1);
        // the callers without an address share one budget of their own, whatever one address may log
        let budget = if key == UNKNOWN && closes { crate::options::SESSIONLESS_FAILURES_PER_MINUTE } else { per_minute };
        let log = count.seen <= budget;
        if !log {
            count.suppressed = count.suppressed.saturating_add(1);
        }
        Verdict { log, close: closes && key != UNKNOWN && count.seen >= per_minute }
    }

    /// The summaries of the minutes over by `now`: (address, failures not logged), each once.
    pub fn take_summaries(&mut self, now: u64) -> Vec<(String, u64)> {
        self.roll(now);
        let mut out: Vec<(String, u64)> = self.finished.drain().collect();
        out.sort();
        out
    }

    /// Addresses counted in the current minute.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no address is counted in the current minute.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Starts a new minute when `now` is in another one (later, or earlier: a clock set back starts
    /// afresh rather than waiting), keeping the old minute's summaries.
    fn roll(&mut self, now: u64) {
        let window = now / WINDOW_SECONDS;
        if self.window == Some(window) {
            return;
        }
        self.window = Some(window);
        let untracked = std::mem::take(&mut self.untracked).suppressed;
        let finished: Vec<(String, u64)> =
            self.table.drain().filter(|(_, c)| c.suppressed > 0).map(|(a, c)| (a, c.suppressed)).collect();
        // summaries not taken before the next minute ended are merged, never piled up: at most one
        // per address of the table, and the rest counted under UNTRACKED
        for (address, n) in finished.into_iter().chain((untracked > 0).then(|| (UNTRACKED.to_owned(), untracked))) {
            let key = if self.finished.len() < self.cap || self.finished.contains_key(&address) {
                address
            } else {
                UNTRACKED.to_owned()
            };
            let total = self.finished.entry(key).or_insert(0);
            *total = total.saturating_add(n);
        }
    }
}

/// The key of failures without an address (Prosody gave none): counted, but their streams (if
/// any) are not closed early, since they may be anybody's.
const UNKNOWN: &str = "(unknown address)";

/// What an address is counted as: an IPv6 address as its /64; one that carries an IPv4 address
/// (IPv4-mapped `::ffff:0:0/96`, NAT64's well-known prefix `64:ff9b::/96`, RFC 6052) as that IPv4
/// address, so a client reaching the server both ways has one budget; anything else as given (cut
/// to [`ADDRESS_MAX_LEN`] bytes).
fn client_key(address: &str) -> Cow<'_, str> {
    if let Ok(v6) = address.parse::<Ipv6Addr>() {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Cow::Owned(v4.to_string());
        }
        let s = v6.segments();
        if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            let [.., a, b, c, d] = v6.octets();
            return Cow::Owned(std::net::Ipv4Addr::new(a, b, c, d).to_string());
        }
        return Cow::Owned(format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)));
    }
    Cow::Borrowed(shorten(address))
}

fn shorten(address: &str) -> &str {
    if address.len() <= ADDRESS_MAX_LEN {
        return address;
    }
    let mut end = ADDRESS_MAX_LEN;
    while !address.is_char_boundary(end) {
        end -= 1;
    }
    &address[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_as_its_64() {
        assert_eq!(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(client_key("::ffff:192.0.2.1"), "192.0.2.1");
        // NAT64 (RFC 6052's well-known prefix): the embedded IPv4 address, the one budget it has as itself
        assert_eq!(client_key("64:ff9b::c000:201"), "192.0.2.1");
        assert_eq!(client_key("64:ff9b::192.0.2.1"), "192.0.2.1");
        // outside the /96 (64:ff9b:1::/48 is for local use, its layout unknown): an ordinary /64
        assert_eq!(client_key("64:ff9b:1::c000:201"), "64:ff9b:1::/64");
        assert_eq!(client_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(client_key("not an address"), "not an address");
    }

    #[test]
    fn long_addresses_are_cut_on_a_character_boundary() {
        let long = "é".repeat(40);
        assert!(shorten(&long).len() <= ADDRESS_MAX_LEN);
        assert_eq!(shorten("203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn failures_without_an_address_have_a_budget_of_their_own() {
        // one address's configured budget (2 here) is not the sessionless callers' shared one
        let t = 1_700_000_040;
        let mut b = AddressBudget::new(2, 8);
        let logged = (0..100).filter(|_| b.record(None, t).log).count();
        assert_eq!(logged, crate::options::SESSIONLESS_FAILURES_PER_MINUTE as usize);
        assert!(!b.record(None, t).close, "no stream to close");
        assert_eq!(b.take_summaries(t + 60), vec![(UNKNOWN.to_owned(), 100 + 1 - logged as u64)]);
        assert_eq!(b.record(Some("192.0.2.1"), t + 60), Verdict { log: true, close: false });
        assert_eq!(b.record(Some("192.0.2.1"), t + 60), Verdict { log: true, close: true });
    }
}

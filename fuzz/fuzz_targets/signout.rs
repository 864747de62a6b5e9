//! The sign-out request parser and the stored-record reader on arbitrary bytes: `line NUL record`,
//! the record as `format LF time LF nonces LF mac` (storage is untrusted). Nothing panics; what the
//! parser accepts is within the spec's bounds; a record present always yields a signed-out time
//! (a bad one counts as now, never as "never"); an accepted sign-out's record opens again, never
//! earlier than the request's time.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prosody_auth_hmac::replay_state::Field;
use prosody_auth_hmac::signout::{SignoutRequest, StoredRecord, MAX_JID_LEN, NONCE_LEN};

mod common;

fn record(bytes: &[u8]) -> StoredRecord {
    let mut parts = bytes.split(|&b| b == b'\n');
    let mut next = |name: &str| match parts.next() {
        None => Field::Absent,
        Some(p) if name == "format" && !p.is_empty() && p.iter().all(u8::is_ascii_digit) => {
            core::str::from_utf8(p).ok().and_then(|s| s.parse().ok()).map_or(Field::Other, Field::Integer)
        }
        Some(p) => Field::text(p, StoredRecord::longest(name)),
    };
    StoredRecord { format: next("format"), time: next("time"), nonces: next("nonces"), mac: next("mac") }
}

fuzz_target!(|data: &[u8]| {
    let (line, stored) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(record(&data[at + 1..]))),
        None => (data, None),
    };
    let parsed = SignoutRequest::parse(line).ok().map(|r| (r.unverified_time(), r.unverified_jid().len()));
    if let Some((time, jid_len)) = parsed {
        assert!(time >= 1 && jid_len <= MAX_JID_LEN);
        assert!(line.len() > NONCE_LEN + jid_len);
    }
    let v = common::verifier();
    if let Some(s) = &stored {
        let (at, _) = v.signed_out_at("alice", Some(s), common::NOW);
        assert!(at.is_some(), "a stored record always counts");
    }
    let r: Result<_, ()> = v.sign_out(line, common::NOW, &common::nodeprep, |_| Ok(stored.clone()));
    if let Ok(done) = r.unwrap() {
        let (time, _) = parsed.expect("accepted only what parses");
        let (at, note) = v.signed_out_at(&done.username, Some(&done.record), common::NOW);
        assert_eq!(note, None, "a record just sealed opens");
        assert!(at.unwrap() >= time);
    }
});

//! The little JID handling the core needs: bare JIDs as `localpart@domainpart`, RFC 7622 sizes.
//! Stringprep (nodeprep) is Prosody's job; the SASL layer receives it as a function.

use crate::error::Reject;

/// RFC 7622 §3: each part of a JID is at most 1023 octets.
pub const MAX_PART: usize = 1023;

/// Splits a bare JID into (localpart, domainpart). Malformed unless it is exactly one `@` between
/// two non-empty parts of at most 1023 bytes, with no `/` (a resource) and no NUL.
pub fn split_bare(jid: &str) -> Result<(&str, &str), Reject> {
    let bytes = jid.as_bytes();
    let at = bytes.iter().position(|&b| b == b'@').ok_or(Reject::Malformed)?;
    let (local, domain) = (&jid[..at], &jid[at + 1..]);
    // no second '@', no resource, no NUL anywhere: checked without early exit, so it vectorises
    let clean = |part: &str| part.bytes().fold(true, |ok, b| ok & (b != b'@') & (b != b'/') & (b != 0));
    if !clean(local) || !clean(domain) {
        return Err(Reject::Malformed);
    }
    for part in [local, domain] {
        if part.is_empty() || part.len() > MAX_PART {
            return Err(Reject::Malformed);
        }
    }
    Ok((local, domain))
}

/// Checks a localpart or domainpart for size and NUL.
pub fn check_part(part: &str) -> Result<(), Reject> {
    if part.is_empty() || part.len() > MAX_PART || part.contains('\0') {
        return Err(Reject::Malformed);
    }
    Ok(())
}

/// Domain names compare without regard to ASCII case (Prosody nameprep'd its own host).
pub fn same_domain(a: &str, b: &str) -> bool {
    // the usual case, the same bytes, first: a plain comparison instead of a byte-wise case fold
    a == b || a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_jids() {
        assert_eq!(split_bare("alice@example.org"), Ok(("alice", "example.org")));
        for bad in ["", "alice", "@example.org", "alice@", "a@b@c", "alice@example.org/res", "a\0@b"] {
            assert_eq!(split_bare(bad), Err(Reject::Malformed), "{bad:?}");
        }
        let long = "a".repeat(MAX_PART);
        assert!(split_bare(&format!("{long}@example.org")).is_ok());
        assert!(split_bare(&format!("{long}a@example.org")).is_err());
        assert!(split_bare(&format!("alice@{long}a")).is_err());
        assert!(same_domain("Example.ORG", "example.org"));
    }
}

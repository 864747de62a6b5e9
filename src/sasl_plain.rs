//! SASL framing: the `authzid NUL authcid NUL secret` message PLAIN and X-TOKEN carry, and the
//! SASL-HMAC client-first message reuses.

use crate::error::Reject;
use crate::identity::{MAX_AUTHCID, MAX_AUTHZID};
use crate::log_safe::printable;
use crate::token::MAX_TOKEN_LEN;

/// `[authzid] NUL authcid NUL secret`, as PLAIN and X-TOKEN carry it.
#[derive(PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// Authorization identity; may be empty.
    pub authzid: &'a str,
    /// Authentication identity: a localpart, or a bare JID.
    pub authcid: &'a str,
    /// The token.
    pub secret: &'a [u8],
}

impl core::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("secret", &"***")
            .finish()
    }
}

/// Parses a PLAIN/X-TOKEN message: exactly three NUL-separated fields, the last two non-empty,
/// the identities UTF-8 and within RFC 7622 sizes, the token at most 1 KiB.
pub fn parse_plain(msg: &[u8]) -> Result<PlainMessage<'_>, Reject> {
    let mut fields = msg.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(secret)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(Reject::Malformed);
    };
    if authcid.is_empty() || secret.is_empty() || secret.contains(&0) {
        return Err(Reject::Malformed);
    }
    if authzid.len() > MAX_AUTHZID || authcid.len() > MAX_AUTHCID || secret.len() > MAX_TOKEN_LEN {
        return Err(Reject::Malformed);
    }
    let authzid = core::str::from_utf8(authzid).map_err(|_| Reject::Malformed)?;
    let authcid = core::str::from_utf8(authcid).map_err(|_| Reject::Malformed)?;
    Ok(PlainMessage { authzid, authcid, secret })
}

/// The bare JID a PLAIN-framed message claims, made log-safe, even when the message is not
/// otherwise well-formed (so a failed login can still name who tried).
pub(crate) fn claimed_jid(message: &[u8], host: &str) -> Option<String> {
    let authcid = message.split(|&b| b == 0).nth(1)?;
    let authcid = core::str::from_utf8(authcid).ok().filter(|a| !a.is_empty())?;
    Some(if authcid.contains('@') { printable(authcid) } else { printable(&format!("{authcid}@{host}")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_framing() {
        let m = parse_plain(b"\0alice\x00123 abc").unwrap();
        assert_eq!((m.authzid, m.authcid, m.secret), ("", "alice", &b"123 abc"[..]));
        let m = parse_plain(b"alice@h\0alice\0t").unwrap();
        assert_eq!(m.authzid, "alice@h");
        for bad in [&b""[..], b"\0", b"\0\0", b"\0alice\0", b"\0\0tok", b"alice\0tok", b"\0a\0t\0x", b"\0\xff\0t"] {
            assert_eq!(parse_plain(bad), Err(Reject::Malformed), "{bad:?}");
        }
        let long = vec![b'1'; MAX_TOKEN_LEN + 1];
        let mut msg = b"\0alice\0".to_vec();
        msg.extend_from_slice(&long);
        assert_eq!(parse_plain(&msg), Err(Reject::Malformed));
        assert!(!format!("{:?}", parse_plain(b"\0a\0sekrit").unwrap()).contains("sekrit"));
    }
}

//! The token's wire format: `OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID))`,
//! its fixed [`Layout`], parsing into an [`UntrustedToken`] (nothing in it trusted until
//! [`crate::check`] has checked it), the signed message and writing a token. Every other
//! implementation of the format is listed in ARCHITECTURE.md ("Implementations of the token format").

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::error::Reject;

/// The longest password field a SASL message may carry; every valid token is far shorter
/// ([`Layout::token_len`]), this only bounds what is read before the token is parsed.
pub const MAX_TOKEN_LEN: usize = 1024;
/// HMAC-SHA256 output length.
pub const MAC_LEN: usize = 32;
/// Length of the padded standard base64 of a MAC.
pub const MAC_B64_LEN: usize = 44;
pub use crate::options::{DEFAULT_NONCE_DIGITS, MAX_LIFETIME, NONCE_DIGITS};

/// The fixed layout of a token's public part, `OTP ‖ NONCE`. Both lengths are fixed, so the signed
/// message `OTP ‖ NONCE ‖ bare JID` splits in exactly one way: no digit can move between the nonce
/// and the JID's localpart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// OTP digits.
    pub otp_digits: usize,
    /// Nonce digits.
    pub nonce_digits: usize,
}

impl Layout {
    /// Length of `OTP ‖ NONCE`.
    pub const fn public_len(self) -> usize {
        self.otp_digits + self.nonce_digits
    }

    /// Length of a whole token: the public part, one space, the MAC's base64.
    pub const fn token_len(self) -> usize {
        self.public_len() + 1 + MAC_B64_LEN
    }
}

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A token as received: well-formed, but nothing about it is trusted yet.
pub struct UntrustedToken<'a> {
    public: &'a [u8],
    layout: Layout,
    mac: [u8; MAC_LEN],
}

impl UntrustedToken<'_> {
    /// The MAC as sent, for the verifier to check: not verified.
    pub(crate) fn unverified_mac(&self) -> &[u8; MAC_LEN] {
        &self.mac
    }
}

impl fmt::Debug for UntrustedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntrustedToken")
            .field("otp", &"***")
            .field("nonce_len", &self.layout.nonce_digits)
            .field("mac", &"***")
            .finish()
    }
}

/// True when every byte is an ASCII digit; branch-free over the whole slice, so it vectorises.
pub(crate) fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & b.is_ascii_digit())
}

impl<'a> UntrustedToken<'a> {
    /// Parses `OTP‖NONCE ␠ base64(MAC)` laid out as `layout` says: exactly `layout.public_len()`
    /// ASCII digits, one space, and 44 characters of padded standard base64 that decode to 32 bytes.
    /// Any other length is malformed before anything else is looked at.
    pub fn parse(token: &'a [u8], layout: Layout) -> Result<Self, Reject> {
        if token.len() != layout.token_len() {
            return Err(Reject::Malformed);
        }
        let (public, rest) = token.split_at(layout.public_len());
        // no early exit in the digit check: it vectorises (a byte-at-a-time scan cost ~50 ns)
        if !all_digits(public) || rest.first() != Some(&b' ') {
            return Err(Reject::Malformed);
        }
        let b64 = &rest[1..];
        let mut buf = [0u8; MAC_LEN + 1];
        let n = data_encoding::BASE64.decode_len(b64.len()).map_err(|_| Reject::Malformed)?;
        let out = buf.get_mut(..n).ok_or(Reject::Malformed)?;
        let len = data_encoding::BASE64.decode_mut(b64, out).map_err(|_| Reject::Malformed)?;
        if len != MAC_LEN {
            return Err(Reject::Malformed);
        }
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&buf[..MAC_LEN]);
        Ok(UntrustedToken { public, layout, mac })
    }

    /// Checks a public part alone (SASL-HMAC sends only `OTP‖NONCE`): exactly
    /// `layout.public_len()` ASCII digits.
    pub fn check_public(public: &[u8], layout: Layout) -> Result<(), Reject> {
        if public.len() != layout.public_len() || !all_digits(public) {
            return Err(Reject::Malformed);
        }
        Ok(())
    }

    /// `OTP ‖ NONCE` as sent: not verified.
    pub fn unverified_public(&self) -> &[u8] {
        self.public
    }

    /// The OTP digits as sent: not verified.
    pub fn unverified_otp(&self) -> &[u8] {
        &self.public[..self.layout.otp_digits]
    }
}

/// The signed message, `OTP ‖ NONCE ‖ bare JID`, in a copy of the prepared key state: the one place
/// it is built (minting, verification and SASL-HMAC's secret half all come here). The public part's
/// length is fixed by the [`Layout`], so the message splits in one way only.
fn keyed_message(key: &HmacSha256, public: &[u8], jid: &str) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(public);
    mac.update(jid.as_bytes());
    mac
}

/// The key `HMAC-SHA256(token_secret, label)`, prepared (`secret` is keyed with the token secret):
/// the saved replay state's and the sign-out's keys. Each label begins with a NUL, which no token's
/// message (`OTP ‖ …`, digits first) does, so a derived key is never a token's MAC.
pub(crate) fn derive_key(secret: &HmacSha256, label: &[u8]) -> HmacSha256 {
    let mut derive = secret.clone();
    derive.update(label);
    let mut key: [u8; MAC_LEN] = derive.finalize().into_bytes().into();
    let keyed = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("HMAC takes any key length");
    key.zeroize();
    keyed
}

/// `HMAC-SHA256(secret, public ‖ jid)`: a token's MAC, and SASL-HMAC's secret half.
pub(crate) fn sign(key: &HmacSha256, public: &[u8], jid: &str) -> [u8; MAC_LEN] {
    keyed_message(key, public, jid).finalize().into_bytes().into()
}

/// Whether `token`'s MAC is the one `key` makes for `jid` (constant time).
pub(crate) fn signed_for(key: &HmacSha256, token: &UntrustedToken<'_>, jid: &str) -> bool {
    keyed_message(key, token.public, jid).verify_slice(&token.mac).is_ok()
}

/// Writes a token for `jid` under `key`: `OTP ‖ NONCE ␠ base64(MAC)`. `None` unless `otp` and
/// `nonce` are ASCII digits of the lengths `layout` fixes.
pub(crate) fn encode(key: &HmacSha256, layout: Layout, otp: &[u8], nonce: &[u8], jid: &str) -> Option<String> {
    if otp.len() != layout.otp_digits || nonce.len() != layout.nonce_digits || !all_digits(otp) || !all_digits(nonce) {
        return None;
    }
    let mut token = String::with_capacity(layout.token_len());
    token.push_str(core::str::from_utf8(otp).ok()?);
    token.push_str(core::str::from_utf8(nonce).ok()?);
    let mac = sign(key, token.as_bytes(), jid);
    token.push(' ');
    token.push_str(&data_encoding::BASE64.encode(&mac));
    Some(token)
}

#[cfg(test)]
mod tests {
    use hmac::KeyInit;

    use super::*;

    const LAYOUT: Layout = Layout { otp_digits: 8, nonce_digits: 16 };

    fn key() -> HmacSha256 {
        HmacSha256::new_from_slice(b"a-secret-of-more-than-sixteen-bytes").unwrap()
    }

    #[test]
    fn what_encode_writes_parse_reads_and_only_for_its_jid() {
        let token = encode(&key(), LAYOUT, b"12345678", b"0123456789012345", "alice@example.org").unwrap();
        assert_eq!(token.len(), LAYOUT.token_len());
        let parsed = UntrustedToken::parse(token.as_bytes(), LAYOUT).unwrap();
        assert_eq!(parsed.unverified_otp(), b"12345678");
        assert!(signed_for(&key(), &parsed, "alice@example.org"));
        // a digit moved between the nonce and the localpart signs another message
        assert!(!signed_for(&key(), &parsed, "5alice@example.org"));
        assert!(!signed_for(&key(), &parsed, "Alice@example.org"));
        assert_eq!(&sign(&key(), parsed.unverified_public(), "alice@example.org"), parsed.unverified_mac());
    }

    #[test]
    fn encode_refuses_what_parse_would_refuse() {
        let k = key();
        for (otp, nonce) in [
            (&b"1234567"[..], &b"0123456789012345"[..]),
            (b"12345678", b"012345678901234"),
            (b"1234567x", b"0123456789012345"),
            (b"12345678", b"012345678901234 "),
        ] {
            assert_eq!(encode(&k, LAYOUT, otp, nonce, "a@example.org"), None, "{otp:?} {nonce:?}");
        }
    }
}

//! The token's wire format: `OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID))`,
//! its fixed [`Layout`], and parsing into an [`UntrustedToken`] (nothing in it trusted until the
//! verifier, [`crate::verifier`], has checked it).

use core::fmt;

use hmac::Hmac;
use sha2::Sha256;

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

    /// The nonce digits as sent: not verified.
    pub fn unverified_nonce(&self) -> &[u8] {
        &self.public[self.layout.otp_digits..]
    }
}

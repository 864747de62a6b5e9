//! Key material: never printed, zeroized on drop; and the example values no deployment may use.
//! Reading secrets from files is `secret_file`.

use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

pub use crate::options::MIN_SECRET_LEN;

/// Example values printed in collective.converse's README (and, until 0.2.0, ours): anyone can
/// mint tokens with them. Refused as `token_secret` and, decoded, as `otp_seed`.
pub const PUBLISHED: [&str; 2] = ["JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "XVGR73KMZH2M4XMY"];

/// Key material (a token secret or a decoded OTP seed). `Debug` prints `***`; the bytes are
/// zeroized when the value is dropped. There is deliberately no `Display`, `Clone` or `PartialEq`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret as the raw bytes of a configured string (how collective.converse keys its HMAC).
    pub fn from_config_str(s: &str) -> Self {
        SecretBytes(s.as_bytes().to_vec())
    }

    /// Borrow the bytes (to key a MAC).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the bytes equal `other` (in constant time for equal lengths).
    pub fn is(&self, other: &[u8]) -> bool {
        self.0.len() == other.len() && bool::from(self.0.ct_eq(other))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_bytes() {
        let s = SecretBytes::from_config_str("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
    }
}

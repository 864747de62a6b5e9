//! Secret bytes: never printed, zeroized on drop.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

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

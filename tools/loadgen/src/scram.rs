//! Client side of SCRAM (RFC 5802; SCRAM-SHA-256 from RFC 7677) without channel binding: the GS2
//! header is "n,," (the client does not support channel binding), which is what a browser client
//! such as converse.js sends over a WebSocket or BOSH. The hash, HMAC and PBKDF2 are RustCrypto's.
//!
//! SASLprep is not implemented: the benchmark's users and passwords are printable ASCII, for which
//! SASLprep changes nothing, and anything else is refused with an error.

use std::collections::HashMap;

use hmac::{EagerHash, Hmac, KeyInit, Mac};

const GS2_HEADER: &str = "n,,";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// The hash of a SASL mechanism name: SCRAM-SHA-1 or SCRAM-SHA-256.
    pub fn from_mechanism(mech: &str) -> Option<Self> {
        match mech {
            "SCRAM-SHA-1" => Some(Self::Sha1),
            "SCRAM-SHA-256" => Some(Self::Sha256),
            _ => None,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => digest::<sha1::Sha1>(data),
            Self::Sha256 => digest::<sha2::Sha256>(data),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => hmac::<sha1::Sha1>(key, data),
            Self::Sha256 => hmac::<sha2::Sha256>(key, data),
        }
    }

    /// Hi() of RFC 5802: PBKDF2 with HMAC-H, one block of H's output length.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha1 => pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations),
            Self::Sha256 => pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations),
        }
    }
}

fn digest<D: EagerHash>(data: &[u8]) -> Vec<u8> {
    D::digest(data).to_vec()
}

fn hmac<D: EagerHash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn pbkdf2_hmac<D: EagerHash>(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; <D as hmac::digest::Digest>::output_size()];
    pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
    out
}

/// Salted passwords already derived, by hash, password, salt and iteration count. The server keeps
/// one salt and count per user, so a client that remembers them (as one holding SCRAM keys instead
/// of the password does) derives PBKDF2 once per user rather than once per login.
#[derive(Default)]
pub struct SaltedPasswords(HashMap<(ScramHash, String, Vec<u8>, u32), Vec<u8>>);

impl SaltedPasswords {
    fn get(&mut self, hash: ScramHash, password: &str, salt: &[u8], iterations: u32, keep: bool) -> Vec<u8> {
        if !keep {
            return hash.salted_password(password.as_bytes(), salt, iterations);
        }
        self.0
            .entry((hash, password.to_owned(), salt.to_vec(), iterations))
            .or_insert_with(|| hash.salted_password(password.as_bytes(), salt, iterations))
            .clone()
    }
}

/// Printable ASCII only (0x20 - 0x7E): SASLprep leaves such a string as it is. Everything else,
/// which SASLprep would map, normalise or prohibit, is refused.
fn printable_ascii(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("SCRAM: empty {what}"));
    }
    if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(format!("SCRAM: the {what} is not printable ASCII, and SASLprep is not implemented"));
    }
    Ok(())
}

/// One SCRAM exchange, from the client's first message to the check of the server's signature.
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    nonce: String,
    first_bare: String,
}

/// The client's final message, and what the server must answer with.
#[derive(Debug)]
pub struct ClientFinal {
    pub message: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    pub fn new(hash: ScramHash, user: &str, password: &str, nonce: &str) -> Result<Self, String> {
        printable_ascii(user, "username")?;
        printable_ascii(password, "password")?;
        printable_ascii(nonce, "client nonce")?;
        if nonce.contains(',') {
            return Err("SCRAM: a nonce cannot contain ','".into());
        }
        let name = user.replace('=', "=3D").replace(',', "=2C");
        Ok(Self { hash, password: password.into(), nonce: nonce.into(), first_bare: format!("n={name},r={nonce}") })
    }

    /// client-first-message: the GS2 header and client-first-message-bare.
    pub fn first_message(&self) -> String {
        format!("{GS2_HEADER}{}", self.first_bare)
    }

    /// client-final-message for the server-first-message; `keep` says whether the salted password
    /// may be taken from and kept in `salted`.
    pub fn final_message(&self, server_first: &str, salted: &mut SaltedPasswords, keep: bool) -> Result<ClientFinal, String> {
        let mut attrs = server_first.split(',');
        let nonce = match attrs.next() {
            Some(a) if a.starts_with("m=") => return Err("SCRAM: server requires an unsupported extension (m=)".into()),
            Some(a) => a.strip_prefix("r=").ok_or("SCRAM: server-first-message does not start with r=")?,
            None => unreachable!("split yields at least one item"),
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("SCRAM: the server's nonce does not extend the client's".into());
        }
        printable_ascii(nonce, "server nonce")?;
        let salt = attrs.next().and_then(|a| a.strip_prefix("s=")).ok_or("SCRAM: no salt (s=)")?;
        let salt = data_encoding::BASE64.decode(salt.as_bytes()).map_err(|e| format!("SCRAM: salt: {e}"))?;
        if salt.is_empty() {
            return Err("SCRAM: empty salt".into());
        }
        let iterations = attrs.next().and_then(|a| a.strip_prefix("i=")).ok_or("SCRAM: no iteration count (i=)")?;
        let iterations: u32 = iterations.parse().map_err(|_| format!("SCRAM: bad iteration count {iterations:?}"))?;
        if iterations == 0 {
            return Err("SCRAM: iteration count 0".into());
        }
        // Further attributes are extensions, which a client ignores.

        let h = self.hash;
        let without_proof = format!("c={},r={nonce}", data_encoding::BASE64.encode(GS2_HEADER.as_bytes()));
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let salted_password = salted.get(h, &self.password, &salt, iterations, keep);
        let client_key = h.hmac(&salted_password, b"Client Key");
        let stored_key = h.hash(&client_key);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(k, s)| k ^ s).collect();
        let server_key = h.hmac(&salted_password, b"Server Key");
        Ok(ClientFinal {
            message: format!("{without_proof},p={}", data_encoding::BASE64.encode(&proof)),
            server_signature: h.hmac(&server_key, auth_message.as_bytes()),
        })
    }
}

impl ClientFinal {
    /// Checks the server-final-message: Ok only for the expected server signature (v=).
    pub fn verify_server(&self, server_final: &str) -> Result<(), String> {
        let first = server_final.split(',').next().unwrap_or("");
        if let Some(e) = first.strip_prefix("e=") {
            return Err(format!("SCRAM: server error {e:?}"));
        }
        let v = first.strip_prefix("v=").ok_or("SCRAM: server-final-message without v=")?;
        let v = data_encoding::BASE64.decode(v.as_bytes()).map_err(|e| format!("SCRAM: server signature: {e}"))?;
        if v != self.server_signature {
            return Err("SCRAM: wrong server signature: the server does not know the password".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(hash: ScramHash, nonce: &str, server_first: &str, keep: bool) -> (ScramClient, ClientFinal) {
        let c = ScramClient::new(hash, "user", "pencil", nonce).unwrap();
        let f = c.final_message(server_first, &mut SaltedPasswords::default(), keep).unwrap();
        (c, f)
    }

    const SHA1_FIRST: &str = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const SHA256_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    #[test]
    fn rfc5802_scram_sha1_example() {
        for keep in [false, true] {
            let (c, f) = exchange(ScramHash::Sha1, "fyko+d2lbbFgONRv9qkxdawL", SHA1_FIRST, keep);
            assert_eq!(c.first_message(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
            assert_eq!(f.message, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
            f.verify_server("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        }
    }

    #[test]
    fn rfc7677_scram_sha256_example() {
        let (c, f) = exchange(ScramHash::Sha256, "rOprNGfwEbeRWgbNEkqO", SHA256_FIRST, true);
        assert_eq!(c.first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            f.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        f.verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
    }

    #[test]
    fn wrong_server_signature_is_refused() {
        let (_, f) = exchange(ScramHash::Sha1, "fyko+d2lbbFgONRv9qkxdawL", SHA1_FIRST, true);
        // one bit off; the SCRAM-SHA-256 signature; garbage; a server error; nothing
        let err = f.verify_server("v=rmF9pqV8S7suAoZWja4dJRkFsKU=").unwrap_err();
        assert!(err.contains("wrong server signature"), "{err}");
        assert!(f.verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
        assert!(f.verify_server("v=not base64").is_err());
        assert!(f.verify_server("e=invalid-proof").unwrap_err().contains("invalid-proof"));
        assert!(f.verify_server("").is_err());
        let (_, f) = exchange(ScramHash::Sha256, "rOprNGfwEbeRWgbNEkqO", SHA256_FIRST, true);
        assert!(f.verify_server("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").is_err());
    }

    #[test]
    fn bad_server_first_is_refused() {
        let c = ScramClient::new(ScramHash::Sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL").unwrap();
        let mut salted = SaltedPasswords::default();
        for bad in [
            "r=someone-elses-nonce,s=QSXCR+Q6sek8bf92,i=4096",
            "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", // not extended
            "m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=0",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=x",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096",
            "",
        ] {
            assert!(c.final_message(bad, &mut salted, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_are_escaped_and_non_ascii_refused() {
        let c = ScramClient::new(ScramHash::Sha1, "a=b,c", "pw", "nonce").unwrap();
        assert_eq!(c.first_message(), "n,,n=a=3Db=2Cc,r=nonce");
        assert!(ScramClient::new(ScramHash::Sha1, "us\u{e9}r", "pencil", "nonce").is_err());
        assert!(ScramClient::new(ScramHash::Sha1, "user", "penc\u{ee}l", "nonce").is_err());
        assert!(ScramClient::new(ScramHash::Sha1, "user", "pen\tcil", "nonce").is_err());
        assert!(ScramClient::new(ScramHash::Sha1, "user", "pencil", "non,ce").is_err());
    }
}

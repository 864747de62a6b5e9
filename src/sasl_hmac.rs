//! SASL-HMAC's proofs and the channel bindings SASL-HMAC-PLUS accepts (docs/sasl-hmac.md): the
//! bytes each side MACs, with their own labels.

/// Length of the server nonce in a SASL-HMAC challenge.
pub const SERVER_NONCE_LEN: usize = 24;
/// SASL-HMAC proof length (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
const CLIENT_LABEL: &[u8] = b"SASL-HMAC client";
const SERVER_LABEL: &[u8] = b"SASL-HMAC server";

/// `HMAC-SHA256(key = s, label NUL client-first-message NUL server-nonce)`: the client's proof
/// (`client = true`) or the server's.
pub fn sasl_hmac_proof(s: &[u8], client: bool, client_first: &[u8], server_nonce: &[u8]) -> [u8; PROOF_LEN] {
    proof(s, client, client_first, server_nonce, None)
}

/// SASL-HMAC-PLUS: `HMAC-SHA256(key = s, label NUL client-first-message NUL server-nonce NUL
/// channel-binding-data)`. The client-first message starts with the binding's name, and `server-nonce`
/// has a fixed length, so the binding data is exactly what follows it.
pub fn sasl_hmac_plus_proof(s: &[u8], client: bool, client_first: &[u8], server_nonce: &[u8], cb_data: &[u8]) -> [u8; PROOF_LEN] {
    proof(s, client, client_first, server_nonce, Some(cb_data))
}

pub(crate) fn proof(s: &[u8], client: bool, client_first: &[u8], server_nonce: &[u8], cb_data: Option<&[u8]>) -> [u8; PROOF_LEN] {
    use hmac::{KeyInit, Mac};
    let mut mac = <crate::token::HmacSha256 as KeyInit>::new_from_slice(s).expect("HMAC takes any key length");
    mac.update(if client { CLIENT_LABEL } else { SERVER_LABEL });
    mac.update(&[0]);
    mac.update(client_first);
    mac.update(&[0]);
    mac.update(server_nonce);
    if let Some(cb) = cb_data {
        mac.update(&[0]);
        mac.update(cb);
    }
    mac.finalize().into_bytes().into()
}

/// The channel-binding types SASL-HMAC-PLUS accepts (RFC 5929, RFC 9266), by the names Prosody's
/// `add_cb_handler` uses.
pub const CHANNEL_BINDINGS: [&str; 3] = ["tls-exporter", "tls-unique", "tls-server-end-point"];

/// The data of the channel binding `name` on this connection, if the connection has it.
pub type ChannelBinding<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

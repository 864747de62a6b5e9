//! PLAIN / X-TOKEN framing and identity resolution on arbitrary bytes. Whatever the authcid, the
//! JIDs a signature may cover are the account's own: only `username@host` by default, and under
//! `jid_as_sent` (picked by the token's first byte) also the localpart exactly as sent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prosody_auth_hmac::sasl::{parse_plain, resolve_identity};

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = parse_plain(data) {
        assert!(!msg.authcid.is_empty() && !msg.secret.is_empty());
        let jid_as_sent = msg.secret.first() == Some(&b'1');
        if let Ok(id) = resolve_identity(common::HOST, msg.authzid, msg.authcid, &common::nodeprep, jid_as_sent) {
            let own = format!("{}@example.org", id.username);
            assert_eq!(id.account, own);
            if let Some(as_sent) = &id.as_sent {
                assert!(jid_as_sent, "a second candidate without token_jid_as_sent");
                let sent = msg.authcid.split('@').next().unwrap();
                assert_eq!(*as_sent, format!("{sent}@example.org"));
                assert_eq!(common::nodeprep(sent).as_deref(), Some(id.username.as_str()));
                assert_ne!(*as_sent, own);
            } else {
                assert_eq!(id.jids(), [own.as_str()]);
            }
        }
    }
});

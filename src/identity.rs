//! Who is logging in: the identity rules every token login shares (the SASL mechanisms, the auth
//! provider's `test_password`, `hmac-token verify`).
//!
//! Stringprep is Prosody's; the rules receive `nodeprep` as a function so the core stays free of Lua
//! and of a second, possibly different, stringprep implementation. (`hmac-token` has one, which
//! refuses whatever it cannot reproduce exactly.)

use crate::error::Reject;
use crate::jid;
use crate::verifier::{Accepted, Verifier};

/// Longest authorization identity accepted (a full JID: three parts of 1023 bytes and separators).
pub const MAX_AUTHZID: usize = 3 * jid::MAX_PART + 2;
/// Longest authentication identity accepted (a bare JID).
pub const MAX_AUTHCID: usize = 2 * jid::MAX_PART + 1;

/// Who is logging in: the session's username (nodeprep'd localpart) and the bare JIDs a
/// signature may cover. By default that is only `username@host`, the account Prosody will log the
/// session in as; with `jid_as_sent` the localpart as the client sent it comes first (one entry
/// when the two are equal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The nodeprep'd localpart: the session's username on success.
    pub username: String,
    /// Candidate bare JIDs for the signature.
    pub jids: Vec<String>,
}

/// The identity of a localpart of `host`: nodeprep'd, and under `jid_as_sent` also as given.
pub fn localpart_identity(
    host: &str,
    local: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    jid_as_sent: bool,
) -> Result<Identity, Reject> {
    jid::check_part(local)?;
    if local.contains(['@', '/']) {
        return Err(Reject::Malformed);
    }
    let prepped = nodeprep(local).ok_or(Reject::Malformed)?;
    jid::check_part(&prepped)?;
    let mut jids = Vec::with_capacity(2);
    if jid_as_sent && prepped != local {
        jids.push(format!("{local}@{host}"));
    }
    jids.push(format!("{prepped}@{host}"));
    Ok(Identity { username: prepped, jids })
}

/// Resolves authcid (and checks authzid) against `host`. The authcid is a localpart or a bare
/// JID of `host`; a non-empty authzid must be the user's own bare JID.
pub fn resolve_identity(
    host: &str,
    authzid: &str,
    authcid: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    jid_as_sent: bool,
) -> Result<Identity, Reject> {
    let local = match authcid.split_once('@') {
        Some(_) => {
            let (local, domain) = jid::split_bare(authcid)?;
            if !jid::same_domain(domain, host) {
                return Err(Reject::WrongHost);
            }
            local
        }
        None => authcid,
    };
    let identity = localpart_identity(host, local, nodeprep, jid_as_sent)?;
    if !authzid.is_empty() {
        let (z_local, z_domain) = jid::split_bare(authzid).map_err(|_| Reject::InvalidAuthzid)?;
        if !jid::same_domain(z_domain, host) || nodeprep(z_local).as_deref() != Some(identity.username.as_str()) {
            return Err(Reject::InvalidAuthzid);
        }
    }
    Ok(identity)
}

/// Verifies `token` for the account `username` of the verifier's host under the same identity
/// rule as the SASL mechanisms (the auth provider's `test_password`, `hmac-token verify`).
/// Returns the nodeprep'd username and what the verifier accepted.
pub fn verify_username(
    verifier: &Verifier,
    token: &[u8],
    username: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    now: u64,
) -> Result<(String, Accepted), Reject> {
    let host = verifier.host().ok_or(Reject::Internal)?;
    let identity = localpart_identity(host, username, nodeprep, verifier.jid_as_sent())?;
    let jids: Vec<&str> = identity.jids.iter().map(String::as_str).collect();
    let accepted = verifier.verify(token, &jids, now)?;
    Ok((identity.username, accepted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(s: &str) -> Option<String> {
        (!s.is_empty() && !s.contains(' ')).then(|| s.to_lowercase())
    }

    #[test]
    fn identities() {
        let id = resolve_identity("example.org", "", "Alice", &lower, false).unwrap();
        assert_eq!(id.username, "alice");
        assert_eq!(id.jids, ["alice@example.org"], "only the nodeprep'd JID by default");
        let id = resolve_identity("example.org", "", "Alice", &lower, true).unwrap();
        assert_eq!(id.jids, ["Alice@example.org", "alice@example.org"]);
        let id = resolve_identity("example.org", "", "alice", &lower, true).unwrap();
        assert_eq!(id.jids, ["alice@example.org"]);
        let id = resolve_identity("example.org", "alice@Example.org", "alice@EXAMPLE.org", &lower, false).unwrap();
        assert_eq!(id.jids, ["alice@example.org"]);
        assert_eq!(resolve_identity("example.org", "", "alice@other.org", &lower, false), Err(Reject::WrongHost));
        assert_eq!(resolve_identity("example.org", "bob@example.org", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "alice@other.org", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "alice", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "", "al ice", &lower, false), Err(Reject::Malformed));
        assert_eq!(resolve_identity("example.org", "", "a@b@example.org", &lower, false), Err(Reject::Malformed));
    }
}

//! Who is logging in: the identity rules every token login shares (the SASL mechanisms, the auth
//! provider's `test_password`, `hmac-token verify`).
//!
//! Stringprep is Prosody's; the rules receive `nodeprep` as a function so the core stays free of Lua
//! and of a second, possibly different, stringprep implementation. (`hmac-token` has one, which
//! refuses whatever it cannot reproduce exactly.)

use crate::check::{Authentic, Candidates, TokenChecker};
use crate::error::Reject;
use crate::guard::Accepted;
use crate::jid;
use crate::verifier::{never_signed_out, SignedOutAt, Verifier};

/// Longest authorization identity accepted (a full JID: three parts of 1023 bytes and separators).
pub const MAX_AUTHZID: usize = 3 * jid::MAX_PART + 2;
/// Longest authentication identity accepted (a bare JID).
pub const MAX_AUTHCID: usize = 2 * jid::MAX_PART + 1;

/// Who is logging in: the session's username (nodeprep'd localpart) and the bare JIDs a
/// signature may cover. By default that is only `account`, `username@host`, the account Prosody
/// will log the session in as; with `jid_as_sent` the localpart as the client sent it is tried
/// first (`as_sent`, none when the two are equal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The nodeprep'd localpart: the session's username on success.
    pub username: String,
    /// The account's canonical bare JID, `username@host`: its quota counts the login.
    pub account: String,
    /// The bare JID as the client sent it, when `jid_as_sent` is on and it differs from `account`.
    pub as_sent: Option<String>,
}

impl Identity {
    /// The candidate bare JIDs in the order tried: `as_sent`, then `account`.
    pub fn jids(&self) -> Vec<&str> {
        self.as_sent.iter().map(String::as_str).chain(core::iter::once(self.account.as_str())).collect()
    }
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
    let as_sent = (jid_as_sent && prepped != local).then(|| format!("{local}@{host}"));
    let account = format!("{prepped}@{host}");
    Ok(Identity { username: prepped, account, as_sent })
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
/// rule as the SASL mechanisms (the auth provider's `test_password`), and accepts it once.
/// Returns the nodeprep'd username and what the verifier accepted.
pub fn verify_username(
    verifier: &Verifier,
    token: &[u8],
    username: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    now: u64,
) -> Result<(String, Accepted), Reject> {
    verify_username_signed_out(verifier, token, username, nodeprep, now, &never_signed_out)
}

/// [`verify_username`] on a host whose users the web app can sign out: `signed_out` says when
/// ([`Verifier::admit`]).
pub fn verify_username_signed_out(
    verifier: &Verifier,
    token: &[u8],
    username: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    now: u64,
    signed_out: SignedOutAt<'_>,
) -> Result<(String, Accepted), Reject> {
    let (username, authentic) = check_username(verifier.checker(), token, username, nodeprep, now)?;
    Ok((username, verifier.admit(authentic, now, signed_out)?))
}

/// Whether `token` is authentic for the account `username` of the checker's host under the same
/// identity rule (`hmac-token verify`): [`verify_username`] without the replay store.
pub fn check_username(
    checker: &TokenChecker,
    token: &[u8],
    username: &str,
    nodeprep: &dyn Fn(&str) -> Option<String>,
    now: u64,
) -> Result<(String, Authentic), Reject> {
    let host = checker.host().ok_or(Reject::Internal)?;
    let identity = localpart_identity(host, username, nodeprep, checker.jid_as_sent())?;
    let sent = identity.as_sent.as_deref();
    let authentic = checker.check(token, Candidates { account: &identity.account, also: sent.as_slice() }, now)?;
    Ok((identity.username, authentic))
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
        assert_eq!(id.jids(), ["alice@example.org"], "only the nodeprep'd JID by default");
        let id = resolve_identity("example.org", "", "Alice", &lower, true).unwrap();
        assert_eq!(id.jids(), ["Alice@example.org", "alice@example.org"]);
        let id = resolve_identity("example.org", "", "alice", &lower, true).unwrap();
        assert_eq!(id.jids(), ["alice@example.org"]);
        let id = resolve_identity("example.org", "alice@Example.org", "alice@EXAMPLE.org", &lower, false).unwrap();
        assert_eq!(id.jids(), ["alice@example.org"]);
        assert_eq!(resolve_identity("example.org", "", "alice@other.org", &lower, false), Err(Reject::WrongHost));
        assert_eq!(resolve_identity("example.org", "bob@example.org", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "alice@other.org", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "alice", "alice", &lower, false), Err(Reject::InvalidAuthzid));
        assert_eq!(resolve_identity("example.org", "", "al ice", &lower, false), Err(Reject::Malformed));
        assert_eq!(resolve_identity("example.org", "", "a@b@example.org", &lower, false), Err(Reject::Malformed));
    }
}

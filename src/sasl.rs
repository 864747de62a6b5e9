//! The SASL mechanisms over the verifier: which there are, and the per-exchange state machine.
//! Framing is in `sasl_plain`, SASL-HMAC's proofs in `sasl_hmac`, the identity rules in `identity`,
//! log-safe names in `log_safe`; their public items are re-exported here under their old paths.

use crate::check::Candidates;
use crate::error::Reject;
use crate::token::UntrustedToken;
use crate::verifier::{never_signed_out, ClockDiagnosis, SignedOutAt, Verifier};

pub use crate::identity::{
    check_username, localpart_identity, resolve_identity, verify_username, Identity, MAX_AUTHCID, MAX_AUTHZID,
};
pub use crate::log_safe::{printable, MAX_LOGGED_IDENTITY};
pub use crate::sasl_hmac::{
    sasl_hmac_plus_proof, sasl_hmac_proof, ChannelBinding, CHANNEL_BINDINGS, PROOF_LEN, SERVER_NONCE_LEN,
};
pub use crate::sasl_plain::{parse_plain, PlainMessage};

use crate::sasl_hmac::proof;
use crate::sasl_plain::claimed_jid;

/// The mechanisms this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616 PLAIN with the token as the password (what stock converse.js sends).
    Plain,
    /// prosody-modules' X-TOKEN: PLAIN framing under another name.
    XToken,
    /// SASL-HMAC (docs/sasl-hmac.md): challenge-response; the token's secret half never crosses
    /// the wire and the server proves it holds the secret.
    SaslHmac,
    /// SASL-HMAC with channel binding: both proofs also cover the TLS channel's binding data, so an
    /// exchange relayed over another TLS connection fails.
    SaslHmacPlus,
}

impl Mechanism {
    /// Every mechanism, in the order they are offered.
    pub const ALL: [Mechanism; 4] = [Mechanism::Plain, Mechanism::XToken, Mechanism::SaslHmac, Mechanism::SaslHmacPlus];

    /// The SASL name.
    pub const fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::XToken => "X-TOKEN",
            Mechanism::SaslHmac => "SASL-HMAC",
            Mechanism::SaslHmacPlus => "SASL-HMAC-PLUS",
        }
    }

    /// Whether the client sends the whole token (a bearer credential): then Prosody's rules for
    /// PLAIN on unencrypted connections apply, and `test_password` is allowed by default.
    pub const fn is_bearer(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::XToken)
    }

    /// Whether the mechanism needs the connection's TLS channel binding (offered only where there is one).
    pub const fn needs_channel_binding(self) -> bool {
        matches!(self, Mechanism::SaslHmacPlus)
    }

    /// Looks a mechanism up by its SASL name (exact, upper case as registered).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What one step of an exchange produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated as `username` (a localpart of the verifier's host), with additional data for
    /// the client (SASL-HMAC's server proof).
    Success {
        /// The session's username.
        username: String,
        /// Success additional data, if the mechanism has any.
        additional: Option<Vec<u8>>,
    },
    /// Send this challenge and wait for the client's response.
    Challenge(Vec<u8>),
    /// Refused.
    Failure(Reject),
}

enum State {
    Start,
    /// SASL-HMAC after an empty initial response: the client-first message comes next.
    AwaitFirst,
    /// SASL-HMAC after the challenge (with the channel-binding data for -PLUS).
    AwaitProof {
        client_first: Vec<u8>,
        public_len: usize,
        identity: Identity,
        server_nonce: [u8; SERVER_NONCE_LEN],
        cb_data: Option<Vec<u8>>,
    },
    Done,
}

impl core::fmt::Debug for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            State::Start => "Start",
            State::AwaitFirst => "AwaitFirst",
            State::AwaitProof { .. } => "AwaitProof",
            State::Done => "Done",
        })
    }
}

/// One SASL exchange. Create one per `<auth/>`; after success or failure it answers every further
/// message with `Malformed`. Dropping it (abort, a new `<auth/>`) leaves nothing behind.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    state: State,
    attempted: Option<String>,
    diagnosis: Option<ClockDiagnosis>,
}

impl Exchange {
    /// A new exchange for `mechanism`.
    pub fn new(mechanism: Mechanism) -> Self {
        Exchange { mechanism, state: State::Start, attempted: None, diagnosis: None }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The bare JID the client tried to log in as, once known (for log lines).
    pub fn attempted_jid(&self) -> Option<&str> {
        self.attempted.as_deref()
    }

    /// After an `expired` or `otp-mismatch` refusal: how far off the minting clock was, or that no
    /// step matches (for the log line only).
    pub fn clock_diagnosis(&self) -> Option<ClockDiagnosis> {
        self.diagnosis
    }

    /// Feeds the client's next message (`None` when the `<auth/>` carried no initial response).
    pub fn step(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
    ) -> Outcome {
        self.step_bound(verifier, message, now, nodeprep, &|_| None)
    }

    /// [`Exchange::step`] on a connection whose channel bindings `channel_binding` gives (for
    /// SASL-HMAC-PLUS; the other mechanisms ignore it).
    pub fn step_bound(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        channel_binding: ChannelBinding<'_>,
    ) -> Outcome {
        self.step_signed_out(verifier, message, now, nodeprep, channel_binding, &never_signed_out)
    }

    /// [`Exchange::step_bound`] on a host whose users the web app can sign out: `signed_out` says
    /// when (asked after the MAC and the OTP window; [`Verifier::admit`]).
    pub fn step_signed_out(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        channel_binding: ChannelBinding<'_>,
        signed_out: SignedOutAt<'_>,
    ) -> Outcome {
        let state = core::mem::replace(&mut self.state, State::Done);
        let result = match (state, self.mechanism) {
            (State::Start, Mechanism::Plain | Mechanism::XToken) => self
                .token_step(verifier, message, now, nodeprep, signed_out)
                .map(|username| Outcome::Success { username, additional: None }),
            (State::Start, Mechanism::SaslHmac | Mechanism::SaslHmacPlus) if message.is_none() => {
                self.state = State::AwaitFirst;
                Ok(Outcome::Challenge(Vec::new()))
            }
            (State::Start | State::AwaitFirst, Mechanism::SaslHmac) => self.hmac_first(verifier, message, nodeprep, None),
            (State::Start | State::AwaitFirst, Mechanism::SaslHmacPlus) => {
                self.hmac_first(verifier, message, nodeprep, Some(channel_binding))
            }
            (State::AwaitProof { client_first, public_len, identity, server_nonce, cb_data }, _) => {
                let proof = Proof {
                    client_first: &client_first,
                    public_len,
                    identity: &identity,
                    server_nonce: &server_nonce,
                    cb_data: cb_data.as_deref(),
                };
                self.hmac_proof(verifier, message, now, proof, signed_out)
            }
            (State::AwaitFirst | State::Done, _) => Err(Reject::Malformed),
        };
        result.unwrap_or_else(Outcome::Failure)
    }

    fn host(verifier: &Verifier) -> Result<&str, Reject> {
        verifier.host().ok_or(Reject::Internal)
    }

    /// Reads `authzid NUL authcid NUL secret` and resolves who is logging in, noting the claimed
    /// JID for the log line as early as it can be read.
    fn identify<'m>(
        &mut self,
        host: &str,
        jid_as_sent: bool,
        message: Option<&'m [u8]>,
        nodeprep: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(PlainMessage<'m>, Identity), Reject> {
        let message = message.ok_or(Reject::Malformed)?;
        self.attempted = claimed_jid(message, host);
        let msg = parse_plain(message)?;
        let identity = resolve_identity(host, msg.authzid, msg.authcid, nodeprep, jid_as_sent)?;
        self.attempted = Some(printable(&format!("{}@{host}", identity.username)));
        Ok((msg, identity))
    }

    fn token_step(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        signed_out: SignedOutAt<'_>,
    ) -> Result<String, Reject> {
        let (msg, identity) = self.identify(Self::host(verifier)?, verifier.jid_as_sent(), message, nodeprep)?;
        let sent = identity.as_sent.as_deref();
        let candidates = Candidates { account: &identity.account, also: sent.as_slice() };
        if let Err(reason) = verifier.verify_for_user(msg.secret, candidates, now, signed_out) {
            self.diagnosis = verifier.explain(reason, msg.secret, now);
            return Err(reason);
        }
        Ok(identity.username)
    }

    /// SASL-HMAC client-first-message: `authzid NUL authcid NUL OTP‖NONCE`; for -PLUS preceded by
    /// `cb-name NUL`, the channel binding the proofs will cover (which this connection must have).
    fn hmac_first(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        nodeprep: &dyn Fn(&str) -> Option<String>,
        channel_binding: Option<ChannelBinding<'_>>,
    ) -> Result<Outcome, Reject> {
        let message = message.ok_or(Reject::Malformed)?;
        let (plain_part, cb_data) = match channel_binding {
            None => (message, None),
            Some(lookup) => {
                let at = message.iter().position(|&b| b == 0).ok_or(Reject::Malformed)?;
                let name = core::str::from_utf8(&message[..at]).map_err(|_| Reject::Malformed)?;
                if !CHANNEL_BINDINGS.contains(&name) {
                    return Err(Reject::Malformed);
                }
                // a binding this connection does not have cannot be checked: refuse, never skip it
                let data = lookup(name).filter(|d| !d.is_empty()).ok_or(Reject::Malformed)?;
                (&message[at + 1..], Some(data))
            }
        };
        let (msg, identity) = self.identify(Self::host(verifier)?, verifier.jid_as_sent(), Some(plain_part), nodeprep)?;
        UntrustedToken::check_public(msg.secret, verifier.layout())?;
        let mut server_nonce = [0u8; SERVER_NONCE_LEN];
        getrandom::fill(&mut server_nonce).map_err(|_| Reject::Internal)?;
        self.state =
            State::AwaitProof { client_first: message.to_vec(), public_len: msg.secret.len(), identity, server_nonce, cb_data };
        Ok(Outcome::Challenge(server_nonce.to_vec()))
    }

    /// SASL-HMAC client proof: 32 octets.
    fn hmac_proof(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        p: Proof<'_>,
        signed_out: SignedOutAt<'_>,
    ) -> Result<Outcome, Reject> {
        let result = self.hmac_proof_checked(verifier, message, now, &p, signed_out);
        if let Err(reason) = result {
            let public = &p.client_first[p.client_first.len() - p.public_len..];
            self.diagnosis = verifier.explain(reason, public, now);
        }
        result
    }

    fn hmac_proof_checked(
        &mut self,
        verifier: &Verifier,
        message: Option<&[u8]>,
        now: u64,
        p: &Proof<'_>,
        signed_out: SignedOutAt<'_>,
    ) -> Result<Outcome, Reject> {
        let received = message.filter(|m| m.len() == PROOF_LEN).ok_or(Reject::Malformed)?;
        let public = &p.client_first[p.client_first.len() - p.public_len..];
        let sent = p.identity.as_sent.as_deref();
        let candidates = Candidates { account: &p.identity.account, also: sent.as_slice() };
        let checker = verifier.checker();
        let (s, jid_index) = checker
            .find_secret_half(public, candidates, |s| {
                let expected = proof(s, true, p.client_first, p.server_nonce, p.cb_data);
                bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], received))
            })
            .ok_or(Reject::BadSignature)?;
        let mut key = [0u8; 16];
        key.copy_from_slice(&s[..16]);
        let otp = public.get(..checker.otp().digits()).ok_or(Reject::Malformed)?;
        verifier.admit(checker.authentic(otp, key, jid_index, candidates.account, now)?, now, signed_out)?;
        let server_proof = proof(&s, false, p.client_first, p.server_nonce, p.cb_data);
        Ok(Outcome::Success { username: p.identity.username.clone(), additional: Some(server_proof.to_vec()) })
    }
}

/// What a SASL-HMAC proof is checked against.
struct Proof<'a> {
    client_first: &'a [u8],
    public_len: usize,
    identity: &'a Identity,
    server_nonce: &'a [u8],
    cb_data: Option<&'a [u8]>,
}

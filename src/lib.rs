//! Signed-token authentication for Prosody.
//!
//! A web application mints `OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID))`
//! (the collective.converse / mod_auth_token format); Prosody verifies it through this crate.
//!
//! The core (`token`, `check`, `guard`, `diagnosis`, `verifier`, `totp`, `replay`, `replay_state`, `failures`, `sasl`, `jid`, `options`, `random`, `secret`) never touches Lua. The `lua` module, behind
//! the `lua54`/`lua53`/`lua52`/`lua51`/`luajit` features, only converts types for Prosody.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod diagnosis;
pub mod error;
pub mod failures;
pub mod guard;
pub mod jid;
pub mod options;
pub mod random;
pub mod replay;
pub mod replay_state;
pub mod sasl;
pub mod secret;
pub mod token;
pub mod totp;
pub mod verifier;

#[cfg(feature = "lua")]
mod lua;

pub use check::{Authentic, Candidates, MintError, TokenChecker, TokenSettings};
pub use error::{ConfigError, ConfigNames, Reject, SettingNames};
pub use guard::{Accepted, ReplayGuard, ReplaySettings};
pub use secret::SecretBytes;
pub use token::UntrustedToken;
pub use verifier::{ClockDiagnosis, Settings, Verifier};

//! Signed-token authentication for Prosody.
//!
//! A web application mints `OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID))`
//! (the collective.converse / mod_auth_token format); Prosody verifies it through this crate.
//!
//! The core (`token`, `check`, `guard`, `diagnosis`, `verifier`, `totp`, `replay`, `replay_state`, `failures`, `sasl`,
//! `sasl_plain`, `sasl_hmac`, `identity`, `log_safe`, `jid`, `options`, `random`, `secret`, `secret_file`, `signout`) never
//! touches Lua. The `lua` module, behind
//! the `lua54`/`lua53`/`lua52`/`lua51`/`luajit` features, only converts types for Prosody.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod diagnosis;
pub mod error;
pub mod failures;
pub mod guard;
pub mod identity;
pub mod jid;
pub mod log_safe;
pub mod options;
pub mod random;
pub mod replay;
pub mod replay_state;
pub mod sasl;
pub mod sasl_hmac;
pub mod sasl_plain;
pub mod secret;
pub mod secret_file;
pub mod signout;
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

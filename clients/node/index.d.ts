// Type declarations for prosody-hmac-token (index.js).

/** What was wrong: the JID, an explicit nonce, or an option / the time / a secret / the seed. */
export type TokenErrorKind = "jid" | "nonce" | "settings";

/** Thrown by every function of the library. Its message never contains a secret or the seed. */
export class TokenError extends Error {
  constructor(kind: TokenErrorKind, message: string);
  readonly name: "TokenError";
  readonly kind: TokenErrorKind;
}

export interface JidOptions {
  /** The JID is already exactly Prosody's form (e.g. a nodeprep'd non-ASCII name): signed unchanged. */
  prepared?: boolean;
}

export interface MintOptions extends JidOptions {
  /** Integer UTC unix seconds; default `Math.floor(Date.now() / 1000)`. */
  now?: number;
  /** OTP digits, 6–8; default 8. */
  digits?: number;
  /** OTP time step in seconds, 1–86400; default 30. */
  step?: number;
  /** Nonce digits, 16–64; default 32. */
  nonceDigits?: number;
  /** FOR TEST VECTORS ONLY: a fixed nonce of exactly `nonceDigits` digits instead of a random one. */
  nonce?: string;
}

export interface VerifyOptions extends JidOptions {
  /** Integer UTC unix seconds; default `Math.floor(Date.now() / 1000)`. */
  now?: number;
  digits?: number;
  step?: number;
  /** Steps accepted either side of the current one, 0–10; default 1. */
  skew?: number;
  nonceDigits?: number;
  /** The server's host: a JID of another domain is "wrong-host". */
  host?: string;
}

/** The credentials_url response body. */
export interface Credentials {
  jid: string;
  password: string;
}

/** Why `verify` refused a token. */
export type VerifyFailure = "malformed" | "wrong-host" | "bad-signature" | "expired";

/** The JID a token for `jid` is signed for (ASCII localpart and domain lower-cased). */
export function signedJid(jid: string, options?: JidOptions): string;

/** A token for `jid`: `OTP‖NONCE base64(HMAC-SHA256(tokenSecret, OTP‖NONCE‖signedJid))`. */
export function mint(jid: string, tokenSecret: string, otpSeed: string, options?: MintOptions): string;

/** `{ jid: signedJid(jid), password: mint(jid, ...) }`, to be served as JSON with `Cache-Control: no-store`. */
export function credentials(jid: string, tokenSecret: string, otpSeed: string, options?: MintOptions): Credentials;

/**
 * `null` if the token is valid for `jid`, else why not. Stateless (no replay cache): the server
 * still refuses a replayed token. For tests and tools.
 */
export function verify(
  token: string,
  jid: string,
  tokenSecrets: string | readonly string[],
  otpSeed: string,
  options?: VerifyOptions,
): VerifyFailure | null;

// Type declarations for prosody-hmac-token (index.js).

/**
 * What was wrong: the JID, an explicit nonce, what prebind was given as a token (or one it tried
 * before), or an option / the time / a secret / the seed.
 */
export type TokenErrorKind = "jid" | "nonce" | "token" | "settings";

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

/** Why Prosody did not accept a sign-out: a 403 refusal, another HTTP status, or no answer. */
export type SignoutErrorKind = "refused" | "http" | "network";

/**
 * Rejected by `signout` when Prosody did not accept the request (the user may still be signed in).
 * Its message never contains the request or the secret.
 */
export class SignoutError extends Error {
  constructor(kind: SignoutErrorKind, message: string, status?: number | null);
  readonly name: "SignoutError";
  readonly kind: SignoutErrorKind;
  /** The HTTP status for "refused" (403) and "http"; null for "network". */
  readonly status: number | null;
}

export interface SignoutRequestOptions {
  /** UTC unix seconds, 1 to 2^64−1 (a bigint beyond 2^53); default `Math.floor(Date.now() / 1000)`. */
  now?: number | bigint;
  /** FOR TEST VECTORS ONLY: 32 ASCII digits instead of 32 from the CSPRNG. */
  nonce?: string;
}

export interface SignoutOptions {
  /** As for `signoutRequest`. */
  now?: number | bigint;
  /** Milliseconds for the whole exchange, 1–600000; default 5000. */
  timeout?: number;
  /**
   * The Host header; default the JID's domain (the VirtualHost, by which Prosody routes the
   * request). Pass the name a reverse proxy in between routes by.
   */
  host?: string;
}

/**
 * The sign-out request line `v1 TIME NONCE JID MAC` (docs/signout.md) for `jid`, which must be
 * exactly Prosody's account name (lower-case localpart, the VirtualHost's name): nothing is
 * lower-cased for you. Valid for 60 s and once: do not log it.
 */
export function signoutRequest(jid: string, tokenSecret: string, options?: SignoutRequestOptions): string;

/**
 * POSTs `signoutRequest(jid, …)` as text/plain to Prosody's endpoint (e.g.
 * `http://127.0.0.1:5280/auth_hmac/signout`). Resolves when Prosody accepted it; rejects with
 * `TokenError` (nothing sent) or `SignoutError`.
 */
export function signout(url: string, jid: string, tokenSecret: string, options?: SignoutOptions): Promise<void>;

/** Why prebind opened no session: a SASL failure, a server that proved nothing, or no usable answer. */
export type PrebindErrorKind = "refused" | "unproven" | "transport";

/**
 * Rejected by `prebind` when it opened no session (docs/prebind.md). Its message never contains
 * the token or its parts.
 */
export class PrebindError extends Error {
  constructor(kind: PrebindErrorKind, message: string, condition?: string | null);
  readonly name: "PrebindError";
  readonly kind: PrebindErrorKind;
  /** The SASL condition for "refused" (e.g. "not-authorized", "credentials-expired"); else null. */
  readonly condition: string | null;
}

/** What `prebind` resolves to: for converse.js's `prebind_url`, as JSON. */
export interface PrebindSession {
  /** The bound full JID. */
  jid: string;
  sid: string;
  /** The next request id: the browser's first request uses it. */
  rid: number;
}

/**
 * Posts one BOSH body; resolves to the HTTP status and the answer's body (bytes are read as UTF-8,
 * and invalid UTF-8 is refused).
 */
export type PrebindTransport = (body: string, timeoutMs: number) => Promise<{ status: number; body: string | Uint8Array }>;

export interface PrebindOptions extends JidOptions {
  /** Milliseconds the whole login may take, 1–600000; default 10000. */
  timeout?: number;
  /** The resource to ask for; by default Prosody picks one. */
  resource?: string;
  /** FOR TESTS, or another HTTP client: replaces the POST to `boshUrl`. */
  transport?: PrebindTransport;
  /**
   * Allows an http:// `boshUrl` whose host is not loopback (127.0.0.0/8, ::1, localhost), refused
   * by default: nothing authenticates the BOSH session, so on a network an attacker on the path
   * could relay the login and hand back another session. Default false.
   */
  insecureHttp?: boolean;
}

/**
 * Opens a BOSH session logged in as `jid` with `token` over SASL-HMAC, checks Prosody's proof that
 * it holds the token secret and the bound JID, for converse.js's `prebind_url`. Rejects with
 * `TokenError` (nothing sent) or `PrebindError`. A token is sent once.
 */
export function prebind(boshUrl: string, jid: string, token: string, options?: PrebindOptions): Promise<PrebindSession>;

// Type declarations for token-reconnect.js.

/** The plugin's name, for converse's `whitelisted_plugins`. */
export const PLUGIN_NAME: "token-reconnect";

/** token-reconnect's converse.initialize settings (all optional; DEFAULTS has their defaults). */
export interface TokenReconnectSettings {
  /** Refused fresh tokens in a row before it stops. */
  token_reconnect_max_refusals?: number;
  /** Sign-ins in a row that sent a token and got no session, before it stops. */
  token_reconnect_max_attempts?: number;
  /** ms before the first retry; doubled per failure up to token_reconnect_max_delay. */
  token_reconnect_delay?: number;
  token_reconnect_max_delay?: number;
  /** ms a connection stays up after which a drop starts the back-off anew. */
  token_reconnect_stable_after?: number;
  /** ms for one credentials_url request. */
  token_credentials_timeout?: number;
  /** ms from a sign-out by the web site to the one sign-in tried after it: an OTP step and a second. */
  token_signout_retry_delay?: number;
}

export const DEFAULTS: Readonly<Required<TokenReconnectSettings>>;

/** Why the plugin stopped; the messages are what the user is shown (`%s`: a detail). */
export type StopReason =
  | "signed-out"
  | "credentials-expired"
  | "not-authorized"
  | "otp-mismatch"
  | "client-refused"
  | "credentials-refused"
  | "credentials-reused"
  | "insecure-connection"
  | "insecure-page"
  | "other"
  | "attempts"
  | "prebind";

export const MESSAGES: Readonly<Record<StopReason, string>>;

/** Shown as converse's "reconnecting" status while the plugin waits. */
export const WAITING: Readonly<Record<"drop" | "credentials" | "temporary" | "refused", string>>;

/** The delay (ms) before retry number `n` (1, 2, …): the upper half of min(max, base · 2^(n-1)). */
export function backoffDelay(n: number, base: number, max: number): number;

/** What addTokenReconnect needs of converse.js 14's default export. */
export interface ConverseWithPlugins {
  plugins: { add(name: string, plugin: object): unknown };
  env: { Strophe: object; log: object };
}

/**
 * Registers the plugin with this converse (once; further calls do nothing). Call it before
 * converse.initialize and list PLUGIN_NAME in `whitelisted_plugins`. Importing the module also
 * registers it with a `window.converse` the stock bundle set, if there is one.
 */
export function addTokenReconnect(converse: ConverseWithPlugins): void;

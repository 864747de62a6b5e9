// Type declarations for prosody-auth-hmac-converse (index.js).
export { makeSASLHMAC } from "./sasl-hmac.js";
export type { SASLHMACMechanism, StropheWithSASL } from "./sasl-hmac.js";
export { addTokenReconnect, backoffDelay, DEFAULTS, MESSAGES, PLUGIN_NAME, WAITING } from "./token-reconnect.js";
export type { ConverseWithPlugins, StopReason, TokenReconnectSettings } from "./token-reconnect.js";

// prosody-auth-hmac-converse: the SASL-HMAC mechanism and the token-reconnect plugin for
// converse.js 14 (README.md). Each is also its own entry point: "./sasl-hmac", "./token-reconnect".
export { makeSASLHMAC } from './sasl-hmac.js';
export { addTokenReconnect, backoffDelay, DEFAULTS, MESSAGES, PLUGIN_NAME, WAITING } from './token-reconnect.js';

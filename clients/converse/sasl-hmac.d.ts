// Type declarations for sasl-hmac.js.

/** What makeSASLHMAC needs of Strophe (converse.env.Strophe of converse.js 14). */
export interface StropheWithSASL {
  SASLMechanism: new (mechname: string, isClientFirst: boolean, priority: number) => object;
}

/** A Strophe SASL mechanism class, for `connection_options.mechanisms`. */
export interface SASLHMACMechanism {
  new (mechname?: string, isClientFirst?: boolean, priority?: number): object;
}

/**
 * The SASL-HMAC mechanism class for this Strophe. List it alone in
 * `connection_options.mechanisms`: beside PLAIN, a server that offers only PLAIN is sent the token.
 * Also makes every connection that has SASL-HMAC registered refuse Strophe's legacy (XEP-0078)
 * login, which would send the token in clear.
 */
export function makeSASLHMAC(Strophe: StropheWithSASL): SASLHMACMechanism;

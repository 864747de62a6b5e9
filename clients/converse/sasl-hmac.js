/**
 * SASL-HMAC for Strophe.js / converse.js (docs/sasl-hmac.md).
 *
 *   import converse from 'converse.js';
 *   import { makeSASLHMAC } from 'prosody-auth-hmac-converse';   // this package (README.md)
 *   const { Strophe } = converse.env;
 *   converse.initialize({
 *     credentials_url: '/chat/credentials',        // returns {"jid": ..., "password": <token>}
 *     // SASL-HMAC alone: with PLAIN listed too, a server (or impostor) that offers only PLAIN
 *     // would be sent the whole token
 *     connection_options: { mechanisms: [makeSASLHMAC(Strophe)] },
 *     ...
 *   });
 *
 * `connection_options.mechanisms` replaces Strophe's default list, so list every mechanism you want.
 * The token's secret half never leaves the browser: only OTP‖NONCE and an HMAC proof bound to the
 * server's nonce are sent, and the server's proof is checked before the session is accepted.
 *
 * Fail closed: when SASL-HMAC cannot run (the server does not offer it, the page is not a secure
 * context so there is no WebCrypto, the token was already tried), a connection that has SASL-HMAC
 * among its mechanisms stops with an authentication failure. Strophe would otherwise fall back to
 * XEP-0078 legacy login and send the token in clear. A token is tried once: the mechanism has no
 * client nonce, so an impostor that recorded one genuine exchange could answer a second attempt
 * with the same token with the recorded server proof (converse fetches a fresh token from
 * credentials_url for every connection).
 *
 * Strophe awaits onChallenge (WebCrypto is async) but not a client-first clientChallenge, so the
 * first message is built synchronously and both proofs are computed when the challenge arrives.
 * Strophe does not hand success data to a mechanism; onStart therefore wraps the connection's SASL
 * success handler to compare the server's proof (synchronously) before Strophe restarts the stream.
 * WebCrypto needs a secure context (https://, or http://localhost / 127.0.0.1).
 */

const TOKEN = /^(\d{6,}) ([A-Za-z0-9+/]{43}=)$/;
const CLIENT_LABEL = 'SASL-HMAC client';
const SERVER_LABEL = 'SASL-HMAC server';
const SERVER_NONCE_LEN = 24;

/** Public parts of the tokens this page has already tried: never sent twice. */
const tried = new Set();

/**
 * Strophe falls back to legacy (jabber:iq:auth) login, which sends the password in clear, whenever
 * no SASL mechanism can run. For every connection that has SASL-HMAC registered, that fallback is
 * replaced by an authentication failure.
 */
function refuseLegacyLogin(Strophe) {
    const proto = Strophe.Connection?.prototype;
    if (!proto || proto._saslHmacRefusesLegacy) return;
    const legacy = proto._attemptLegacyAuth;
    proto._attemptLegacyAuth = function () {
        if (!this.mechanisms?.['SASL-HMAC']) return legacy.call(this);
        const why = !globalThis.isSecureContext || !globalThis.crypto?.subtle
            ? 'this page is not a secure context (https://, or http://localhost), so WebCrypto is missing'
            : 'the server does not offer SASL-HMAC, or this token was already tried';
        console.error(`SASL-HMAC: cannot log in: ${why}. Not falling back to legacy login, which would send the token in clear.`);
        this._changeConnectStatus(Strophe.Status.AUTHFAIL, null);
    };
    proto._saslHmacRefusesLegacy = true;
}

/** UTF-8 encoding of a JS string, as a "binary string" (one char per octet, what btoa takes). */
function utf8Binary(s) {
    return Array.from(new TextEncoder().encode(s), (b) => String.fromCharCode(b)).join('');
}

function binaryToBytes(s) {
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function bytesToBinary(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => String.fromCharCode(b)).join('');
}

/** Compares two binary strings without stopping at the first difference. */
function sameBinary(a, b) {
    if (typeof a !== 'string' || typeof b !== 'string' || a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    return diff === 0;
}

async function hmacSha256(keyBytes, messageBinary) {
    const key = await crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return bytesToBinary(await crypto.subtle.sign('HMAC', key, binaryToBytes(messageBinary)));
}

/** Returns the SASL-HMAC mechanism class for this Strophe (converse.env.Strophe). */
export function makeSASLHMAC(Strophe) {
    refuseLegacyLogin(Strophe);
    if (!globalThis.isSecureContext || !globalThis.crypto?.subtle) {
        console.error('SASL-HMAC: this page is not a secure context (https://, or http://localhost): '
            + 'WebCrypto is missing and SASL-HMAC cannot run; logins will fail rather than send the token');
    }
    return class SASLHMAC extends Strophe.SASLMechanism {
        constructor(mechname = 'SASL-HMAC', isClientFirst = true, priority = 60) {
            super(mechname, isClientFirst, priority);
        }

        test(connection) {
            return connection.authcid !== null && typeof connection.pass === 'string'
                && TOKEN.test(connection.pass) && !!globalThis.isSecureContext && !!globalThis.crypto?.subtle
                && !tried.has(TOKEN.exec(connection.pass)[1]);
        }

        onStart(connection) {
            super.onStart(connection);
            this._expectedServerProof = null;
            const success = connection._sasl_success_handler;
            if (success) {
                const proceed = success.handler;
                success.handler = (elem) => {
                    const got = atob((elem.textContent || '').trim());
                    if (sameBinary(got, this._expectedServerProof)) return proceed(elem);
                    console.error('SASL-HMAC: the server could not prove it holds the token secret; refusing it');
                    // what Strophe itself does when a SCRAM server signature is wrong
                    connection.deleteHandler(connection._sasl_failure_handler);
                    connection._sasl_failure_handler = null;
                    if (connection._sasl_challenge_handler) {
                        connection.deleteHandler(connection._sasl_challenge_handler);
                        connection._sasl_challenge_handler = null;
                    }
                    connection._sasl_data = {};
                    return connection._sasl_failure_cb(null);
                };
            }
        }

        clientChallenge(connection) {
            const [, pub, mac] = TOKEN.exec(connection.pass);
            tried.add(pub);
            this._secretHalf = binaryToBytes(atob(mac));
            this._clientFirst = utf8Binary(connection.authzid || '') + '\0' + utf8Binary(connection.authcid) + '\0' + pub;
            return this._clientFirst;
        }

        async onChallenge(connection, challenge) {
            if (!challenge) return this.clientChallenge(connection); // empty challenge: send client-first now
            if (challenge.length !== SERVER_NONCE_LEN) return '';
            const tail = '\0' + this._clientFirst + '\0' + challenge;
            this._expectedServerProof = await hmacSha256(this._secretHalf, SERVER_LABEL + tail);
            return hmacSha256(this._secretHalf, CLIENT_LABEL + tail);
        }

        onFailure() {
            this._secretHalf = null;
            super.onFailure();
        }

        onSuccess() {
            this._secretHalf = null;
            super.onSuccess();
        }
    };
}

// prosody-hmac-token: mints (and, for tests and tools, verifies) the login tokens of
// prosody-auth-hmac. Standard library only (node:crypto).
//
//   token = OTP ‖ NONCE ␠ base64( HMAC-SHA256( key = token_secret, OTP ‖ NONCE ‖ bare-JID ) )
//
// OTP: RFC 6238 TOTP (HMAC-SHA1) of integer UTC unix seconds, keyed with the base32-decoded
// otp_seed. NONCE: a fixed number of decimal digits from the CSPRNG. bare-JID: the JID as Prosody
// checks it (localpart nodeprep'd, domain lower-case); this library prepares ASCII JIDs only.
//
// signout() sends Prosody the sign-out request of docs/signout.md (signoutRequest() builds it):
//   v1 TIME NONCE JID base64( HMAC-SHA256( K, "prosody-auth-hmac signout v1\0" ‖ u64be(TIME) ‖ NONCE ‖ u16be(len JID) ‖ JID ) )
//   K = HMAC-SHA256( key = token_secret, "\0prosody-auth-hmac signout key v1" )
//
// prebind() opens a BOSH session logged in with SASL-HMAC for converse.js's prebind_url
// (docs/prebind.md): Prosody must prove it holds the token secret, and the bound JID must be the
// token's; it resolves to { jid, sid, rid }.

import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

const DIGITS = { min: 6, max: 8, def: 8 };
const STEP = { min: 1, max: 86400, def: 30 };
const NONCE_DIGITS = { min: 16, max: 64, def: 32 };
const SKEW = { min: 0, max: 10, def: 1 };
const MAX_TOKEN_BYTES = 1024;
const MAX_PART_BYTES = 1023;
const MAC_B64_LEN = 44; // 32 bytes, standard base64 with padding
const SIGNOUT_NONCE_DIGITS = 32;
const MAX_SIGNOUT_TIME = 2n ** 64n - 1n;
const SIGNOUT_TIMEOUT = { min: 1, max: 600000, def: 5000 }; // ms
// Domain separators: the derived key's message starts with a zero octet, so the key is never a
// token's MAC (whose message starts with a digit), and the request's message is labelled too.
const SIGNOUT_KEY_LABEL = Buffer.from("\x00prosody-auth-hmac signout key v1", "latin1");
const SIGNOUT_LABEL = Buffer.from("prosody-auth-hmac signout v1\x00", "latin1");
// RFC 3454 table B.1: what nodeprep maps to nothing (a localpart holding one is not nodeprep'd)
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/u;
// RFC 3454 table D.1: the right-to-left characters (Unicode 3.2)
const RTL = "\u05BE\u05C0\u05C3\u05D0-\u05EA\u05F0-\u05F4\u061B\u061F\u0621-\u063A\u0640-\u064A\u066D-\u066F"
  + "\u0671-\u06D5\u06DD\u06E5\u06E6\u06FA-\u06FE\u0700-\u070D\u0710\u0712-\u072C\u0780-\u07A5\u07B1\u200F\uFB1D"
  + "\uFB1F-\uFB28\uFB2A-\uFB36\uFB38-\uFB3C\uFB3E\uFB40\uFB41\uFB43\uFB44\uFB46-\uFBB1\uFBD3-\uFD3D\uFD50-\uFD8F"
  + "\uFD92-\uFDC7\uFDF0-\uFDFC\uFE70-\uFE74\uFE76-\uFEFC";
const HAS_RTL = new RegExp(`[${RTL}]`, "u");
const RTL_AT_BOTH_ENDS = new RegExp(`^[${RTL}](?:.*[${RTL}])?$`, "su");
// table D.2's left-to-right characters, approximated: a letter that is not right-to-left
const LTR_LETTER = new RegExp(`(?![${RTL}])\\p{L}`, "u");

const MINT_OPTIONS = new Set(["now", "digits", "step", "nonceDigits", "prepared", "nonce"]);
const VERIFY_OPTIONS = new Set(["now", "digits", "step", "skew", "nonceDigits", "host", "prepared"]);
const JID_OPTIONS = new Set(["prepared"]);
const SIGNOUT_REQUEST_OPTIONS = new Set(["now", "nonce"]);
const SIGNOUT_OPTIONS = new Set(["now", "timeout", "host"]);

const PREPARED_HINT =
  "pass prepared: true with the JID as Prosody nodepreps it (hmac-token jid NAME@HOST prints it)";

/**
 * The error every function of this library throws. `kind` says what was wrong:
 * - `"jid"`: not a bare JID Prosody accepts, or not one this library can prepare;
 * - `"nonce"`: an explicit nonce that is not exactly `nonceDigits` ASCII digits;
 * - `"token"`: prebind() was given something that is not a token, or a token this process has
 *   tried before;
 * - `"settings"`: an option, the time, a secret or the seed is missing, of the wrong type or out
 *   of range.
 * Messages never contain a secret, the seed, or the input that was refused.
 */
export class TokenError extends Error {
  /**
   * @param {"jid" | "nonce" | "token" | "settings"} kind
   * @param {string} message
   */
  constructor(kind, message) {
    super(message);
    this.name = "TokenError";
    /** @type {"jid" | "nonce" | "token" | "settings"} */
    this.kind = kind;
  }
}

/**
 * Prosody did not accept a sign-out request: the user may still be signed in to the chat. `kind`:
 * - `"refused"`: Prosody answered 403: stale (check this machine's clock), replayed, for another
 *   host, badly signed (another token_secret) or over the user's rate limit; Prosody's log says which;
 * - `"http"`: another HTTP status (`status`): 404, the URL does not reach the sign-out endpoint (the
 *   path, the Host, or token_signout is not on for the host); 500, Prosody ended the sessions but
 *   could not store the sign-out: call signout again;
 * - `"network"`: no answer: the connection failed or timed out, or TLS did not verify.
 * The message never contains the request (valid for 60 s) or the secret.
 */
export class SignoutError extends Error {
  /**
   * @param {"refused" | "http" | "network"} kind
   * @param {string} message
   * @param {number | null} [status]
   */
  constructor(kind, message, status = null) {
    super(message);
    this.name = "SignoutError";
    /** @type {"refused" | "http" | "network"} */
    this.kind = kind;
    /** @type {number | null} */
    this.status = status;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// nodeprep's ASCII prohibitions: space, " & ' / : < > @ and the ASCII control characters
const LOCAL_PROHIBITED = /[\x00-\x20"&'/:<>@\x7F]/;
const NON_ASCII = /[^\x00-\x7F]/;
const DOMAIN_LABEL = /^[a-z0-9-]+$/;

function asciiLower(s) {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function utf8Length(s) {
  return Buffer.byteLength(s, "utf8");
}

function checkOptions(options, allowed, what) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" || Array.isArray(options)) {
    throw new TokenError("settings", `${what} options must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.has(key)) {
      throw new TokenError("settings", `an unknown ${what} option was given (known: ${[...allowed].join(", ")})`); // not echoed: it could be a secret
    }
  }
  return options;
}

function intSetting(value, name, range) {
  if (value === undefined || value === null) return range.def;
  if (typeof value !== "number" || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new TokenError("settings", `${name} must be an integer from ${range.min} to ${range.max}`);
  }
  return value;
}

function boolSetting(value, name) {
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") throw new TokenError("settings", `${name} must be true or false`);
  return value;
}

function nowSetting(value) {
  if (value === undefined || value === null) return Math.floor(Date.now() / 1000);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TokenError("settings", "now must be a non-negative integer number of UTC unix seconds (not a Date, not milliseconds with a fraction)");
  }
  return value;
}

function secretKey(secret, name) {
  if (typeof secret !== "string" || secret.length === 0) {
    throw new TokenError("settings", `${name} must be a non-empty string`);
  }
  if (LONE_SURROGATE.test(secret)) {
    throw new TokenError("settings", `${name} is not valid Unicode (it has a lone surrogate), so it has no UTF-8 form`);
  }
  return Buffer.from(secret, "utf8");
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Base32 as pyotp reads it: RFC 4648 alphabet, case-insensitive, `=` padding optional. */
function decodeSeed(seed) {
  if (typeof seed !== "string") throw new TokenError("settings", "otp_seed must be a base32 string");
  const s = seed.replace(/=+$/, "").toUpperCase();
  if (s.length === 0) throw new TokenError("settings", "otp_seed is empty");
  if ([1, 3, 6].includes(s.length % 8)) {
    throw new TokenError("settings", "otp_seed is not base32 (its length is impossible for base32)");
  }
  const out = [];
  let bits = 0;
  let acc = 0;
  for (let i = 0; i < s.length; i++) {
    const v = B32.indexOf(s[i]);
    if (v < 0) throw new TokenError("settings", "otp_seed is not base32 (RFC 4648 alphabet A-Z, 2-7)");
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (HMAC-SHA1) for an integer counter, as a zero-padded string of `digits` digits. */
function counterOf(now, step) {
  return (now - (now % step)) / step; // exact, unlike Math.floor(now / step) near 2^53
}

function totp(key, counter, digits) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = createHmac("sha1", key).update(msg).digest();
  const o = h[h.length - 1] & 0x0f;
  const code = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(code % 10 ** digits).padStart(digits, "0");
}

/** `nonceDigits` uniform decimal digits from the CSPRNG (bytes >= 250 are rejected: no modulo bias). */
function randomNonce(nonceDigits) {
  let nonce = "";
  while (nonce.length < nonceDigits) {
    for (const b of randomBytes(nonceDigits + 8)) {
      if (b < 250) {
        nonce += String.fromCharCode(48 + (b % 10));
        if (nonce.length === nonceDigits) break;
      }
    }
  }
  return nonce;
}

function prepare(jid, prepared) {
  if (typeof jid !== "string") throw new TokenError("jid", "the JID must be a string");
  if (jid.length === 0) throw new TokenError("jid", "the JID is empty");
  if (jid.includes("/")) throw new TokenError("jid", "a full JID (with a '/resource') is not a bare JID");
  const at = jid.indexOf("@");
  if (at < 0) throw new TokenError("jid", "the JID has no '@' (a bare JID is localpart@domain)");
  if (jid.indexOf("@", at + 1) >= 0) throw new TokenError("jid", "the JID has more than one '@'");
  const local = jid.slice(0, at);
  const domain = jid.slice(at + 1);
  if (local.length === 0) throw new TokenError("jid", "the JID's localpart is empty");
  if (domain.length === 0) throw new TokenError("jid", "the JID's domain is empty");
  if (LONE_SURROGATE.test(jid)) throw new TokenError("jid", "the JID is not valid Unicode (it has a lone surrogate)");
  if (LOCAL_PROHIBITED.test(local)) {
    throw new TokenError("jid", "the JID's localpart has a character nodeprep prohibits (space, \" & ' / : < > @ or a control character)");
  }
  if (utf8Length(local) > MAX_PART_BYTES) throw new TokenError("jid", `the JID's localpart is over ${MAX_PART_BYTES} bytes`);
  if (utf8Length(domain) > MAX_PART_BYTES) throw new TokenError("jid", `the JID's domain is over ${MAX_PART_BYTES} bytes`);
  if (LOCAL_PROHIBITED.test(domain)) {
    throw new TokenError("jid", "the JID's domain has a space, \" & ' : < > or a control character");
  }
  if (domain.split(".").some((label) => label.length === 0)) {
    throw new TokenError("jid", "the JID's domain has an empty label (a leading or trailing dot, or '..')");
  }
  if (prepared) {
    // the caller vouches this is exactly Prosody's form; a host's form is lower-case ASCII labels
    if (!domain.split(".").every((label) => DOMAIN_LABEL.test(label))) {
      throw new TokenError("jid", "a prepared JID's domain must already be lower-case labels of a-z, 0-9 and '-'");
    }
    return { local, domain, jid };
  }
  if (NON_ASCII.test(local)) {
    throw new TokenError("jid", `this library prepares ASCII localparts only; for a name beyond ASCII ${PREPARED_HINT}`);
  }
  const lowerDomain = asciiLower(domain);
  if (!lowerDomain.split(".").every((label) => DOMAIN_LABEL.test(label))) {
    throw new TokenError("jid", `the JID's domain is not dot-separated labels of a-z, 0-9 and '-'; for a domain beyond ASCII ${PREPARED_HINT}`);
  }
  const lowerLocal = asciiLower(local);
  return { local: lowerLocal, domain: lowerDomain, jid: `${lowerLocal}@${lowerDomain}` };
}

/**
 * The JID a token for `jid` is signed for: the bare JID as Prosody checks it (ASCII localpart
 * lower-cased, as nodeprep does; domain lower-cased). Pass the JID the user logs in as.
 *
 * @param {string} jid  a bare JID, `user@host`
 * @param {{ prepared?: boolean }} [options]  `prepared: true`: the JID is already exactly
 *   Prosody's form (needed for a localpart beyond ASCII; `hmac-token jid NAME@HOST` prints it)
 *   and is signed unchanged; structural errors are still refused
 * @returns {string}
 * @throws {TokenError} kind "jid" for a JID Prosody would refuse or this library cannot prepare;
 *   "settings" for bad options
 */
export function signedJid(jid, options) {
  const o = checkOptions(options, JID_OPTIONS, "signedJid");
  return prepare(jid, boolSetting(o.prepared, "prepared")).jid;
}

function mintParts(jid, tokenSecret, otpSeed, options) {
  const o = checkOptions(options, MINT_OPTIONS, "mint");
  const digits = intSetting(o.digits, "digits", DIGITS);
  const step = intSetting(o.step, "step", STEP);
  const nonceDigits = intSetting(o.nonceDigits, "nonceDigits", NONCE_DIGITS);
  const prepared = boolSetting(o.prepared, "prepared");
  const now = nowSetting(o.now);
  const key = secretKey(tokenSecret, "token_secret");
  const seed = decodeSeed(otpSeed);
  const signed = prepare(jid, prepared).jid;
  let nonce;
  if (o.nonce === undefined || o.nonce === null) {
    nonce = randomNonce(nonceDigits);
  } else {
    if (typeof o.nonce !== "string" || o.nonce.length !== nonceDigits || !/^[0-9]+$/.test(o.nonce)) {
      throw new TokenError("nonce", `the nonce must be exactly ${nonceDigits} ASCII digits`);
    }
    nonce = o.nonce;
  }
  const pub = totp(seed, counterOf(now, step), digits) + nonce;
  const mac = createHmac("sha256", key).update(pub + signed, "utf8").digest("base64");
  return { jid: signed, password: `${pub} ${mac}` };
}

/**
 * Mints a token for `jid`: what a credentials_url handler returns as the password.
 *
 * @param {string} jid  the bare JID the user logs in as (`alice@example.org`; `Alice@…` is signed
 *   as `alice@…`, which is what Prosody checks)
 * @param {string} tokenSecret  the plugin's `token_secret` (its UTF-8 bytes are the HMAC key)
 * @param {string} otpSeed  the plugin's `otp_seed` (base32)
 * @param {MintOptions} [options]
 * @returns {string}  `OTP‖NONCE base64(MAC)`
 * @throws {TokenError} kind "jid", "nonce" or "settings"
 *
 * @typedef {object} MintOptions
 * @property {number} [now]  integer UTC unix seconds; default `Math.floor(Date.now() / 1000)`
 * @property {number} [digits=8]  OTP digits, 6–8 (the plugin's `otp_digits`)
 * @property {number} [step=30]  OTP time step in seconds, 1–86400
 * @property {number} [nonceDigits=32]  nonce digits, 16–64 (`token_nonce_digits`)
 * @property {boolean} [prepared=false]  the JID is already exactly Prosody's form: signed unchanged
 * @property {string} [nonce]  FOR TEST VECTORS ONLY: a fixed nonce instead of a random one
 */
export function mint(jid, tokenSecret, otpSeed, options) {
  return mintParts(jid, tokenSecret, otpSeed, options).password;
}

/**
 * The credentials_url response body for `jid`: `{ jid: <signed JID>, password: <token> }`, for
 * the caller to serialise with `JSON.stringify` (and serve with `Cache-Control: no-store`).
 *
 * @param {string} jid
 * @param {string} tokenSecret
 * @param {string} otpSeed
 * @param {MintOptions} [options]  as for {@link mint}
 * @returns {{ jid: string, password: string }}
 * @throws {TokenError} kind "jid", "nonce" or "settings"
 */
export function credentials(jid, tokenSecret, otpSeed, options) {
  return mintParts(jid, tokenSecret, otpSeed, options);
}

function parseToken(token, digits, nonceDigits) {
  if (typeof token !== "string" || utf8Length(token) > MAX_TOKEN_BYTES) return null;
  const pubLen = digits + nonceDigits;
  if (token.length !== pubLen + 1 + MAC_B64_LEN) return null;
  const pub = token.slice(0, pubLen);
  const b64 = token.slice(pubLen + 1);
  if (!/^[0-9]+$/.test(pub) || token[pubLen] !== " " || !/^[A-Za-z0-9+/]{43}=$/.test(b64)) return null;
  const mac = Buffer.from(b64, "base64");
  if (mac.length !== 32 || mac.toString("base64") !== b64) return null; // canonical: trailing bits zero
  return { otp: pub.slice(0, digits), pub, mac };
}

/**
 * Checks a token as the server would, without its replay cache: for tests and tools. Stateless: a
 * token verified here can still be refused by the server as a replay (the server accepts each
 * token once).
 *
 * @param {string} token
 * @param {string} jid  the JID the client logs in as (prepared as {@link signedJid} does)
 * @param {string | string[]} tokenSecrets  one secret or the list the server accepts (rotation)
 * @param {string} otpSeed
 * @param {VerifyOptions} [options]
 * @returns {null | "malformed" | "wrong-host" | "bad-signature" | "expired"}  `null` when valid,
 *   else why not (checked in that order: shape and JID, host, signature, OTP window)
 * @throws {TokenError} kind "settings" for bad options, secrets or seed
 *
 * @typedef {object} VerifyOptions
 * @property {number} [now]  integer UTC unix seconds; default `Math.floor(Date.now() / 1000)`
 * @property {number} [digits=8]
 * @property {number} [step=30]
 * @property {number} [skew=1]  steps accepted either side of the current one, 0–10
 * @property {number} [nonceDigits=32]
 * @property {string} [host]  the server's host: a JID of another domain is "wrong-host"
 * @property {boolean} [prepared=false]
 */
export function verify(token, jid, tokenSecrets, otpSeed, options) {
  const o = checkOptions(options, VERIFY_OPTIONS, "verify");
  const digits = intSetting(o.digits, "digits", DIGITS);
  const step = intSetting(o.step, "step", STEP);
  const skew = intSetting(o.skew, "skew", SKEW);
  const nonceDigits = intSetting(o.nonceDigits, "nonceDigits", NONCE_DIGITS);
  const prepared = boolSetting(o.prepared, "prepared");
  const now = nowSetting(o.now);
  let host = null;
  if (o.host !== undefined && o.host !== null) {
    if (typeof o.host !== "string" || o.host.length === 0) throw new TokenError("settings", "host must be a non-empty string");
    host = asciiLower(o.host);
  }
  const list = Array.isArray(tokenSecrets) ? tokenSecrets : [tokenSecrets];
  if (list.length === 0) throw new TokenError("settings", "token_secrets is an empty list");
  const keys = list.map((s, i) => secretKey(s, `token_secrets[${i}]`));
  const seed = decodeSeed(otpSeed);

  const parsed = parseToken(token, digits, nonceDigits);
  if (parsed === null) return "malformed";
  let prep;
  try {
    prep = prepare(jid, prepared);
  } catch (e) {
    if (e instanceof TokenError) return "malformed";
    throw e;
  }
  if (host !== null && asciiLower(prep.domain) !== host) return "wrong-host";

  let signed = false;
  for (const key of keys) {
    const mac = createHmac("sha256", key).update(parsed.pub + prep.jid, "utf8").digest();
    if (timingSafeEqual(mac, parsed.mac)) signed = true;
  }
  if (!signed) return "bad-signature";

  const given = Buffer.from(parsed.otp, "ascii");
  const counter = counterOf(now, step);
  let fresh = false;
  for (let c = counter - skew; c <= counter + skew; c++) {
    if (c < 0) continue;
    if (timingSafeEqual(Buffer.from(totp(seed, c, digits), "ascii"), given)) fresh = true;
  }
  return fresh ? null : "expired";
}

function signoutTime(value) {
  if (value === undefined || value === null) return Math.floor(Date.now() / 1000);
  const ok = typeof value === "bigint"
    ? value >= 1n && value <= MAX_SIGNOUT_TIME
    : typeof value === "number" && Number.isSafeInteger(value) && value >= 1;
  if (!ok) {
    throw new TokenError("settings", "now must be an integer from 1 to 2^64-1 (UTC unix seconds; a number, or a bigint beyond 2^53)");
  }
  return value;
}

/**
 * The JID as Prosody names the account: never prepared for the caller, so that it names exactly
 * that account. What nodeprep would change or refuse in the localpart is refused, as far as this
 * library can tell without nodeprep's tables; Prosody refuses the rest as malformed.
 */
function signoutJid(jid) {
  const { local, jid: bare } = prepare(jid, true);
  if (/[\p{Lu}\p{Lt}]/u.test(local)) { // nodeprep case-folds them
    throw new TokenError("jid", "the JID's localpart has upper-case letters: pass it as Prosody nodepreps it (lower case; hmac-token jid NAME@HOST prints it)");
  }
  if (/[\s\p{Z}]/u.test(local)) throw new TokenError("jid", "the JID's localpart contains whitespace");
  if (MAPPED_TO_NOTHING.test(local) || /[\p{Cc}\p{Co}]/u.test(local)) {
    throw new TokenError("jid", "the JID's localpart contains a character nodeprep removes or refuses");
  }
  // RFC 3454 section 6: right-to-left text only, starting and ending with a right-to-left character
  if (HAS_RTL.test(local) && (LTR_LETTER.test(local) || !RTL_AT_BOTH_ENDS.test(local))) {
    throw new TokenError("jid", "the JID's localpart mixes right-to-left and left-to-right text, which nodeprep refuses");
  }
  return bare;
}

function signoutMac(key, now, nonce, jid) {
  const derived = createHmac("sha256", key).update(SIGNOUT_KEY_LABEL).digest();
  const j = Buffer.from(jid, "utf8");
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(now));
  const length = Buffer.alloc(2);
  length.writeUInt16BE(j.length);
  return createHmac("sha256", derived)
    .update(Buffer.concat([SIGNOUT_LABEL, time, Buffer.from(nonce, "ascii"), length, j]))
    .digest("base64");
}

/**
 * The sign-out request for `jid`: one line, `v1 TIME NONCE JID MAC` (docs/signout.md). signout()
 * builds and sends it; this is for a web app that sends it its own way. It is valid for 60 s and
 * once: do not log it.
 *
 * @param {string} jid  the bare JID exactly as Prosody names the account: the localpart nodeprep'd
 *   (lower case; `hmac-token jid NAME@HOST` prints it), the host the VirtualHost's name. Unlike
 *   mint(), nothing is lower-cased for you: an upper-case letter in the localpart, a `/`,
 *   whitespace, a character nodeprep removes (a soft hyphen) or refuses (a control or private-use
 *   character, right-to-left text mixed with left-to-right), a part over 1023 bytes, or what
 *   signedJid() refuses with `prepared: true` is refused (nodeprep itself is not reimplemented:
 *   what else it would change, Prosody refuses as malformed)
 * @param {string} tokenSecret  the plugin's `token_secret` (the key is derived from its UTF-8 bytes)
 * @param {{ now?: number | bigint, nonce?: string }} [options]  `now`: UTC unix seconds, 1 to 2^64-1
 *   (default `Math.floor(Date.now() / 1000)`); `nonce`: FOR TEST VECTORS ONLY, 32 ASCII digits
 *   instead of 32 from the CSPRNG (Prosody refuses a nonce it accepted within 60 s)
 * @returns {string}
 * @throws {TokenError} kind "settings", "jid" or "nonce"
 */
export function signoutRequest(jid, tokenSecret, options) {
  const o = checkOptions(options, SIGNOUT_REQUEST_OPTIONS, "signoutRequest");
  const now = signoutTime(o.now);
  const key = secretKey(tokenSecret, "token_secret");
  const bare = signoutJid(jid);
  let nonce;
  if (o.nonce === undefined || o.nonce === null) {
    nonce = randomNonce(SIGNOUT_NONCE_DIGITS);
  } else {
    if (typeof o.nonce !== "string" || !/^[0-9]{32}$/.test(o.nonce)) {
      throw new TokenError("nonce", `the nonce must be exactly ${SIGNOUT_NONCE_DIGITS} ASCII digits`);
    }
    nonce = o.nonce;
  }
  return `v1 ${now} ${nonce} ${bare} ${signoutMac(key, now, nonce, bare)}`;
}

/** Whether a URL's hostname is a loopback address: 127.0.0.0/8, ::1 or localhost. */
function isLoopback(hostname) {
  const h = hostname.toLowerCase();
  return h === "localhost" || h === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function signoutTarget(url) {
  let target;
  try {
    target = new URL(url);
  } catch {
    throw new TokenError("settings", "url is not a URL");
  }
  if (typeof url !== "string" || !["http:", "https:"].includes(target.protocol) || !target.hostname) {
    throw new TokenError("settings", "url must be an http:// or https:// URL with a host");
  }
  return target;
}

/**
 * POSTs `body` as text/plain; resolves on 200, else rejects with a SignoutError. No redirect is
 * followed and no proxy is used. `timeoutMs` bounds the whole exchange.
 */
function post(target, body, timeoutMs, host) {
  const https = target.protocol === "https:";
  const where = `${target.hostname}:${target.port || (https ? 443 : 80)}`;
  return new Promise((resolve, reject) => {
    let timer = null;
    let settled = false;
    const finish = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const headers = { Host: host, "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) };
    const req = (https ? httpsRequest : httpRequest)(target, { method: "POST", headers, agent: false }, (res) => {
      const status = res.statusCode;
      res.destroy(); // the status is Prosody's whole answer
      if (status === 200) finish();
      else if (status === 403) {
        finish(new SignoutError("refused", `Prosody at ${where} refused the sign-out request (403); its log says why (stale: check this machine's clock; bad-signature: another token_secret)`, status));
      } else {
        const why = status >= 500 && status < 600
          ? "Prosody could not complete it (its log says why): call signout again"
          : "is the URL the auth_hmac/signout path, the Host the user's VirtualHost, and token_signout on?";
        finish(new SignoutError("http", `the sign-out request to ${where} got HTTP ${status}: ${why}`, status));
      }
    });
    // the error's code or text names the failure (refused, reset, certificate), never the body
    req.on("error", (e) => finish(new SignoutError("network", `the sign-out request to ${where} got no answer: ${e.code || e.message}`)));
    timer = setTimeout(() => {
      finish(new SignoutError("network", `the sign-out request to ${where} got no answer: timed out after ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    req.end(body);
  });
}

/**
 * Signs `jid` out of the chat: POSTs signoutRequest() to Prosody's sign-out endpoint. Resolves
 * when Prosody accepted it: every session of the user has ended and every token minted before
 * `now` (to its OTP step) is refused. Call it on logout, account lock and password reset. It is not
 * retried here: a new call makes a new request (a fresh nonce).
 *
 * @param {string} url  Prosody's endpoint, e.g. `"http://127.0.0.1:5280/auth_hmac/signout"`
 *   (http:// or https://, whose certificate is verified; no proxy, no redirect)
 * @param {string} jid  as for signoutRequest()
 * @param {string} tokenSecret  the plugin's `token_secret`
 * @param {{ now?: number | bigint, timeout?: number, host?: string }} [options]  `now` as for
 *   signoutRequest(); `timeout`: milliseconds for the whole exchange, 1 to 600000 (default 5000);
 *   `host`: the Host header, by default the JID's domain: the VirtualHost whose user this is, by
 *   which Prosody routes the request (`http://127.0.0.1:5280/...` works so without
 *   `http_default_host`); pass the name a reverse proxy in between routes by
 * @returns {Promise<void>}
 * @throws {TokenError} (rejects) kind "settings" or "jid": nothing was sent
 * @throws {SignoutError} (rejects) Prosody did not accept it: kind "refused", "http" or "network"
 */
export async function signout(url, jid, tokenSecret, options) {
  const o = checkOptions(options, SIGNOUT_OPTIONS, "signout");
  const timeout = intSetting(o.timeout, "timeout", SIGNOUT_TIMEOUT);
  if (o.host !== undefined && o.host !== null && (typeof o.host !== "string" || !/^[!-~]+$/.test(o.host))) {
    throw new TokenError("settings", "host must be a host name (printable ASCII, no space)");
  }
  const target = signoutTarget(url);
  const line = signoutRequest(jid, tokenSecret, { now: o.now });
  await post(target, line, timeout, o.host ?? line.split(" ")[3].split("@")[1]);
}

// ---------------------------------------------------------------------------------------------
// Prebind (docs/prebind.md)

const PREBIND_OPTIONS = new Set(["timeout", "resource", "prepared", "transport", "insecureHttp"]);
const PREBIND_TIMEOUT = { min: 1, max: 600000, def: 10000 }; // ms
const PREBIND_WAIT = 10; // s, the most BOSH wait asked for
const PREBIND_MAX_POLLS = 5; // empty answers in a row polled past
const PREBIND_MAX_ANSWER = 1 << 20; // bytes
const MAX_TRIED = 1 << 16;
const SERVER_NONCE_LEN = 24;
const NS_BOSH = "http://jabber.org/protocol/httpbind";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_XML = "http://www.w3.org/XML/1998/namespace";

/**
 * prebind() opened no session: the browser has nothing to attach to. `kind`:
 * - `"refused"`: Prosody refused the login with a SASL failure, in `condition` (`not-authorized`:
 *   another token_secret, another user's or a used token; `credentials-expired`: the clock or
 *   otp_seed; `temporary-auth-failure`); mint a new token to try again;
 * - `"unproven"`: the server did not prove that it holds the token secret (no SASL-HMAC offered, a
 *   missing or wrong proof) or it bound another JID: the URL does not reach the Prosody this web app
 *   shares token_secret with; nothing that would log in was sent;
 * - `"transport"`: no usable answer: no connection, the timeout, an HTTP status other than 200, not
 *   a BOSH body, a terminated session, or an answer out of protocol.
 * The message never contains the token or its parts.
 */
export class PrebindError extends Error {
  /**
   * @param {"refused" | "unproven" | "transport"} kind
   * @param {string} message
   * @param {string | null} [condition]
   */
  constructor(kind, message, condition = null) {
    super(message);
    this.name = "PrebindError";
    /** @type {"refused" | "unproven" | "transport"} */
    this.kind = kind;
    /** @type {string | null} */
    this.condition = condition;
  }
}

// SHA-256 of the public parts of the tokens this process has sent: SASL-HMAC has no client nonce,
// so an impostor that recorded one exchange could answer a second one with the same token, and a
// token is never sent twice (docs/sasl-hmac.md). Insertion-ordered: past MAX_TRIED the oldest go.
const tried = new Set();

const ENTITIES = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };
// Caps per answer: Prosody's answers during a prebind hold a few dozen elements; these bound the
// reader's work and memory for an answer that is no BOSH answer (refused as a transport error).
const XML_MAX_DEPTH = 32;
const XML_MAX_ELEMENTS = 4096;
const XML_MAX_ATTRIBUTES = 8192; // namespace declarations included
const XML_MAX_XMLNS = 1024;
// anything outside XML 1.0's Char production (controls, U+FFFE, U+FFFF, a lone surrogate)
const NOT_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

const isChar = (c) => c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff)
  || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);

function decodeText(raw) {
  return raw.replace(/&([^;&<]*);?/g, (all, name) => {
    if (!all.endsWith(";")) throw new Error("a bare &");
    if (Object.hasOwn(ENTITIES, name)) return ENTITIES[name]; // not `in`: &constructor; is no entity
    const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(name);
    const code = m ? parseInt(m[1] ?? m[2], m[1] ? 16 : 10) : -1;
    if (!isChar(code)) throw new Error("an unknown entity");
    return String.fromCodePoint(code);
  });
}

/**
 * A small XML reader for BOSH answers: elements, attributes, text, CDATA and namespaces. It refuses
 * a DOCTYPE (no entity is ever defined or expanded), comments, processing instructions other than
 * the XML declaration (which must say UTF-8, if anything), characters outside XML's Char, a duplicate
 * attribute, an undeclared prefix (`xmlns:p=''`), and more than the caps above. It runs in time
 * linear in the answer: an element's namespace scope links to its parent's, and only an element
 * that declares one has its own. Elements are { tag: "{ns}local", attrs, children, text } with
 * attribute names "{ns}local" when prefixed.
 */
function parseXml(text) {
  const NAME = /[A-Za-z_][A-Za-z0-9_.-]*(?::[A-Za-z_][A-Za-z0-9_.-]*)?/y;
  const SPACE = /[ \t\r\n]*/y;
  const DECL = /<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(['"])1\.[0-9]+\1(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(['"])[Uu][Tt][Ff]-8\2)?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(['"])(?:yes|no)\3)?[ \t\r\n]*\?>/y;
  let i = 0;
  let elements = 0;
  let attributes = 0;
  let declarations = 0;
  const fail = () => {
    throw new Error("not XML");
  };
  if (NOT_CHAR.test(text)) fail();
  const skipSpace = () => {
    SPACE.lastIndex = i;
    SPACE.exec(text);
    i = SPACE.lastIndex;
  };
  const name = () => {
    NAME.lastIndex = i;
    const m = NAME.exec(text);
    if (!m) fail();
    i = NAME.lastIndex;
    return m[0];
  };
  // scope: null, or { decls: Map(prefix -> ns), parent: scope }; at most XML_MAX_DEPTH + 1 links
  const lookup = (scope, prefix) => {
    for (let s = scope; s !== null; s = s.parent) {
      const ns = s.decls.get(prefix);
      if (ns !== undefined) return ns;
    }
    return undefined;
  };
  const resolve = (qname, scope, isAttr) => {
    const colon = qname.indexOf(":");
    if (colon < 0) return isAttr ? qname : `{${lookup(scope, "") ?? ""}}${qname}`;
    const prefix = qname.slice(0, colon);
    const ns = prefix === "xml" ? NS_XML : lookup(scope, prefix);
    if (ns === undefined) fail();
    return `{${ns}}${qname.slice(colon + 1)}`;
  };
  const element = (parentScope, depth) => {
    if (depth > XML_MAX_DEPTH || ++elements > XML_MAX_ELEMENTS) fail();
    i += 1; // "<"
    const qname = name();
    const raw = [];
    const names = new Set();
    let decls = null;
    for (;;) {
      const before = i;
      skipSpace();
      if (text.startsWith("/>", i) || text[i] === ">") break;
      if (i === before) fail();
      const key = name();
      if (names.has(key) || ++attributes > XML_MAX_ATTRIBUTES) fail();
      names.add(key);
      skipSpace();
      if (text[i] !== "=") fail();
      i += 1;
      skipSpace();
      const quote = text[i];
      if (quote !== "'" && quote !== '"') fail();
      const end = text.indexOf(quote, i + 1);
      if (end < 0) fail();
      const value = text.slice(i + 1, end);
      if (value.includes("<")) fail();
      i = end + 1;
      if (key === "xmlns" || key.startsWith("xmlns:")) {
        const prefix = key === "xmlns" ? "" : key.slice(6);
        const ns = decodeText(value);
        if ((prefix !== "" && ns === "") || prefix === "xml" || prefix === "xmlns" || ++declarations > XML_MAX_XMLNS) fail();
        decls ??= new Map();
        decls.set(prefix, ns);
      } else raw.push([key, decodeText(value)]);
    }
    const scope = decls === null ? parentScope : { decls, parent: parentScope };
    const el = { tag: resolve(qname, scope, false), attrs: {}, children: [], text: "" };
    for (const [key, value] of raw) {
      const expanded = resolve(key, scope, true);
      if (Object.hasOwn(el.attrs, expanded)) fail(); // a:x and b:x bound to one namespace
      el.attrs[expanded] = value;
    }
    if (text.startsWith("/>", i)) {
      i += 2;
      return el;
    }
    i += 1; // ">"
    for (;;) {
      const lt = text.indexOf("<", i);
      if (lt < 0) fail();
      el.text += decodeText(text.slice(i, lt));
      i = lt;
      if (text.startsWith("</", i)) {
        i += 2;
        if (name() !== qname) fail();
        skipSpace();
        if (text[i] !== ">") fail();
        i += 1;
        return el;
      }
      if (text.startsWith("<![CDATA[", i)) {
        const end = text.indexOf("]]>", i);
        if (end < 0) fail();
        el.text += text.slice(i + 9, end);
        i = end + 3;
      } else {
        // "<!" and "<?" start no name: a DOCTYPE, a comment or a processing instruction fails there
        el.children.push(element(scope, depth + 1));
      }
    }
  };
  if (text.startsWith("\uFEFF")) i = 1;
  skipSpace();
  if (text.startsWith("<?xml", i)) {
    DECL.lastIndex = i;
    if (!DECL.exec(text)) fail();
    i = DECL.lastIndex;
    skipSpace();
  }
  if (text[i] !== "<") fail();
  const root = element(null, 0);
  skipSpace();
  if (i !== text.length) fail();
  return root;
}

const child = (el, tag) => el.children.find((c) => c.tag === tag);
const localName = (tag) => printable(tag.slice(tag.indexOf("}") + 1));

function printable(text) {
  return String(text).slice(0, 64).replace(/[^ -~]/g, "?");
}

function escapeXml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]);
}

/** The default transport: a POST with node:http(s), no proxy, no redirect. */
function httpTransport(target) {
  const https = target.protocol === "https:";
  const where = `${target.hostname}:${target.port || (https ? 443 : 80)}`;
  return (body, timeoutMs) => new Promise((resolve, reject) => {
    let timer = null;
    let settled = false;
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(value);
    };
    const headers = { "Content-Type": "text/xml; charset=utf-8", "Content-Length": Buffer.byteLength(body) };
    const req = (https ? httpsRequest : httpRequest)(target, { method: "POST", headers, agent: false }, (res) => {
      const chunks = [];
      let size = 0;
      res.on("data", (chunk) => {
        size += chunk.length;
        if (size > PREBIND_MAX_ANSWER) {
          res.destroy();
          finish(new Error(`an answer over ${PREBIND_MAX_ANSWER} bytes from ${where}`));
        } else chunks.push(chunk);
      });
      res.on("end", () => finish(null, { status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on("error", (e) => finish(new Error(`${where}: ${e.code || e.message}`)));
    });
    req.on("error", (e) => finish(new Error(`${where}: ${e.code || e.message}`)));
    timer = setTimeout(() => {
      finish(new Error(`timed out at ${where}`));
      req.destroy();
    }, timeoutMs);
    req.end(body);
  });
}

class BoshSession {
  constructor(transport, timeoutMs) {
    this.transport = transport;
    this.deadline = performance.now() + timeoutMs;
    this.wait = Math.min(PREBIND_WAIT, Math.ceil(timeoutMs / 1000));
    this.rid = randomInt(2 ** 20, 2 ** 20 + 2 ** 40); // room to count up within 2^53 (XEP-0124 section 7)
    this.sid = null;
  }

  /** One request; resolves to the answer's <body/>. */
  async post(inner = "", attrs = {}) {
    const all = { ...attrs, rid: String(this.rid) };
    if (this.sid !== null) all.sid = this.sid;
    this.rid += 1;
    const head = Object.entries(all).map(([k, v]) => `${k}='${escapeXml(v)}'`).join(" ");
    const data = `<body xmlns='${NS_BOSH}' ${head}>${inner}</body>`;
    const left = this.deadline - performance.now();
    if (left <= 0) throw new PrebindError("transport", "Prosody did not complete the login in time");
    let answer;
    let timer = null;
    // the time left bounds a transport that never settles too
    const expire = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new PrebindError("transport", "Prosody did not complete the login in time")), left);
    });
    const sent = (async () => this.transport(data, left))().catch((e) => {
      throw new PrebindError("transport", `no answer from Prosody (${printable(e?.message ?? e)})`);
    });
    try {
      answer = await Promise.race([sent, expire]);
    } finally {
      clearTimeout(timer);
    }
    if (answer?.status !== 200) {
      throw new PrebindError("transport", `Prosody answered HTTP ${printable(answer?.status)}: is the URL its BOSH endpoint?`);
    }
    const bytes = answer.body instanceof Uint8Array ? answer.body : null;
    if ((bytes !== null ? bytes.length : Buffer.byteLength(String(answer.body))) > PREBIND_MAX_ANSWER) {
      throw new PrebindError("transport", `Prosody's answer is over ${PREBIND_MAX_ANSWER} bytes`);
    }
    let body;
    try {
      // invalid UTF-8 is refused, not replaced with U+FFFD
      const text = bytes !== null ? new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes) : String(answer.body);
      body = parseXml(text);
    } catch {
      throw new PrebindError("transport", "Prosody's answer is not XML (or has a DOCTYPE or a comment)");
    }
    if (body.tag !== `{${NS_BOSH}}body`) throw new PrebindError("transport", "Prosody's answer is not a BOSH body");
    if (body.attrs.type === "terminate") {
      throw new PrebindError("transport", `Prosody terminated the BOSH session (${printable(body.attrs.condition || "no condition")})`);
    }
    return body;
  }

  /** The first child of this answer, or of the next answer with one. */
  async next(body) {
    let polls = 0;
    while (body.children.length === 0) {
      if (polls === PREBIND_MAX_POLLS) throw new PrebindError("transport", `Prosody sent nothing in ${polls} polls`);
      polls += 1;
      body = await this.post();
    }
    return body.children[0];
  }
}

function saslProof(s, label, clientFirst, serverNonce) {
  return createHmac("sha256", s)
    .update(Buffer.concat([Buffer.from(label, "ascii"), Buffer.from([0]), clientFirst, Buffer.from([0]), serverNonce]))
    .digest();
}

function base64Payload(el) {
  const text = el.text.trim();
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return null;
  return Buffer.from(text, "base64");
}

function saslCondition(el) {
  if (el.tag !== `{${NS_SASL}}failure`) return null;
  const c = el.children.find((x) => x.tag.startsWith(`{${NS_SASL}}`) && x.tag !== `{${NS_SASL}}text`);
  return c ? localName(c.tag) : "failure";
}

function splitToken(token) {
  const bad = () => new TokenError("token", "not a token (OTP and nonce digits, a space, 44 characters of base64)");
  if (typeof token !== "string") throw bad();
  const m = /^([0-9]{22,72}) ([A-Za-z0-9+/]{43}=)$/.exec(token);
  if (!m) throw bad();
  const s = Buffer.from(m[2], "base64");
  if (s.length !== 32 || s.toString("base64") !== m[2]) throw bad();
  return { pub: Buffer.from(m[1], "ascii"), s };
}

/**
 * Opens a BOSH session logged in as `jid` with `token`, for converse.js's `prebind_url`
 * (docs/prebind.md). It creates the session, logs in with SASL-HMAC (never anything else: the
 * token's secret half is never sent), checks Prosody's proof that it holds the token secret, binds
 * a resource and checks that the bound JID is `jid`'s. Answer the browser's prebind_url request
 * with the result as JSON, with `Cache-Control: no-store`; the browser must attach within Prosody's
 * bosh_max_inactivity (60 s by default), so open a session for each request, never from a cache.
 *
 * A token is sent once: one this process has tried before is refused before anything is sent
 * (mint one per call: `prebind(url, jid, mint(jid, secret, seed))`).
 *
 * @param {string} boshUrl  Prosody's BOSH endpoint itself (`http://127.0.0.1:5280/http-bind`, a
 *   loopback host, or https:// with a verified certificate), not the proxy browsers reach; no proxy,
 *   no redirect
 * @param {string} jid  the bare JID the token was minted for (as for mint())
 * @param {string} token  a token from mint()
 * @param {{ timeout?: number, resource?: string, prepared?: boolean, insecureHttp?: boolean,
 *   transport?: (body: string, timeoutMs: number) => Promise<{ status: number, body: string | Uint8Array }> }} [options]
 *   `timeout`: milliseconds the whole login may take, 1 to 600000 (default 10000); `resource`: the
 *   resource to ask for (by default Prosody picks one); `prepared` as for mint(); `insecureHttp`:
 *   allow an http:// URL whose host is not loopback (127.0.0.0/8, ::1, localhost), refused by
 *   default as nothing authenticates the BOSH session on the way; `transport`: FOR TESTS, or
 *   another HTTP client: posts one BOSH body, resolves to the HTTP status and answer body (bytes:
 *   UTF-8)
 * @returns {Promise<{ jid: string, sid: string, rid: number }>}
 * @throws {TokenError} (rejects) kind "settings", "jid" or "token": nothing was sent
 * @throws {PrebindError} (rejects) kind "refused" (with `condition`), "unproven" or "transport"
 */
export async function prebind(boshUrl, jid, token, options) {
  const o = checkOptions(options, PREBIND_OPTIONS, "prebind");
  const timeout = intSetting(o.timeout, "timeout", PREBIND_TIMEOUT);
  const bare = prepare(jid, boolSetting(o.prepared, "prepared"));
  const resource = o.resource ?? null;
  if (resource !== null && (typeof resource !== "string" || resource === "" || /[\x00-\x1F\x7F]/.test(resource))) {
    throw new TokenError("settings", "resource must be a non-empty string without control characters");
  }
  const insecureHttp = boolSetting(o.insecureHttp, "insecureHttp");
  const target = signoutTarget(boshUrl);
  // nothing authenticates the BOSH session itself (the proof covers the SASL exchange, not the sid
  // or the bind): on a network path an attacker could relay the login and hand back another session
  if (target.protocol === "http:" && !isLoopback(target.hostname) && !insecureHttp) {
    throw new TokenError("settings", "an http:// URL must name a loopback host (127.0.0.0/8, ::1, localhost): use https://, or insecureHttp: true");
  }
  let transport = o.transport ?? null;
  if (transport === null) transport = httpTransport(target);
  else if (typeof transport !== "function") throw new TokenError("settings", "transport must be a function");
  const { pub, s } = splitToken(token);
  const tag = createHash("sha256").update(pub).digest("base64");
  if (tried.has(tag)) throw new TokenError("token", "this token was tried before: mint a new one for each prebind");
  tried.add(tag);
  while (tried.size > MAX_TRIED) tried.delete(tried.values().next().value);

  const bosh = new BoshSession(transport, timeout);
  const { local, domain } = bare;
  let body = await bosh.post("", {
    to: domain, "xml:lang": "en", ver: "1.6", wait: String(bosh.wait), hold: "1",
    content: "text/xml; charset=utf-8", "xmlns:xmpp": "urn:xmpp:xbosh", "xmpp:version": "1.0",
  });
  const sid = body.attrs.sid;
  if (!sid) throw new PrebindError("transport", "Prosody did not open a BOSH session (no sid)");
  bosh.sid = sid;
  const features = await bosh.next(body);
  const mechanisms = child(features, `{${NS_SASL}}mechanisms`);
  // a mechanism's name is its text alone: SASL-<x/>HMAC names none
  const offered = mechanisms ? mechanisms.children.filter((m) => m.tag === `{${NS_SASL}}mechanism` && m.children.length === 0).map((m) => m.text) : [];
  if (!offered.includes("SASL-HMAC")) { // never another: PLAIN would send the whole token
    const list = offered.slice(0, 8).map(printable).join(", ") || "none";
    throw new PrebindError("unproven", `the server does not offer SASL-HMAC (it offers: ${list}): is this the Prosody that holds token_secret?`);
  }

  const clientFirst = Buffer.concat([Buffer.from([0]), Buffer.from(local, "utf8"), Buffer.from([0]), pub]);
  let el = await bosh.next(await bosh.post(`<auth xmlns='${NS_SASL}' mechanism='SASL-HMAC'>${clientFirst.toString("base64")}</auth>`));
  let condition = saslCondition(el);
  if (condition !== null) throw new PrebindError("refused", `Prosody refused the login: ${condition}`, condition);
  if (el.tag !== `{${NS_SASL}}challenge`) {
    throw new PrebindError("unproven", `the server answered the login with a ${localName(el.tag)}, not a challenge`);
  }
  const serverNonce = base64Payload(el);
  if (serverNonce === null) throw new PrebindError("transport", "Prosody's challenge is not base64");
  if (serverNonce.length !== SERVER_NONCE_LEN) throw new PrebindError("transport", `Prosody's challenge is not ${SERVER_NONCE_LEN} octets`);

  const proof = saslProof(s, "SASL-HMAC client", clientFirst, serverNonce);
  el = await bosh.next(await bosh.post(`<response xmlns='${NS_SASL}'>${proof.toString("base64")}</response>`));
  condition = saslCondition(el);
  if (condition !== null) throw new PrebindError("refused", `Prosody refused the login: ${condition}`, condition);
  if (el.tag !== `{${NS_SASL}}success`) {
    throw new PrebindError("unproven", `the server answered the proof with a ${localName(el.tag)}, not success`);
  }
  const expected = saslProof(s, "SASL-HMAC server", clientFirst, serverNonce);
  const got = base64Payload(el);
  // the session is never used unproven
  if (got === null || got.length !== expected.length || !timingSafeEqual(got, expected)) {
    throw new PrebindError("unproven", "the server could not prove that it holds the token secret");
  }

  const bindFeatures = await bosh.next(await bosh.post("", { to: domain, "xml:lang": "en", "xmpp:restart": "true", "xmlns:xmpp": "urn:xmpp:xbosh" }));
  if (!child(bindFeatures, `{${NS_BIND}}bind`)) throw new PrebindError("transport", "Prosody offered no resource binding");
  const res = resource !== null ? `<resource>${escapeXml(resource)}</resource>` : "";
  el = await bosh.next(await bosh.post(`<iq xmlns='jabber:client' type='set' id='prebind_1'><bind xmlns='${NS_BIND}'>${res}</bind></iq>`));
  const bind = child(el, `{${NS_BIND}}bind`);
  const jidEl = bind && child(bind, `{${NS_BIND}}jid`);
  const full = jidEl ? jidEl.text : "";
  if (el.tag !== "{jabber:client}iq" || el.attrs.type !== "result" || !full) {
    throw new PrebindError("transport", "Prosody did not bind a resource");
  }
  if (!(full.startsWith(`${bare.jid}/`) && full.length > bare.jid.length + 1)) { // the token's user, or no session
    throw new PrebindError("unproven", "the server bound another JID than the token's");
  }
  return { jid: full, sid, rid: bosh.rid };
}

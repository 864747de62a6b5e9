// The contract vectors (tests/vectors/minting.json and tokens.json) and focused checks of the
// Node minting library. Run from the repository: node --test clients/node/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { credentials, mint, signedJid, verify, TokenError } from "../index.js";

const here = dirname(fileURLToPath(import.meta.url));
const vectors = join(here, "..", "..", "..", "tests", "vectors");
const load = (name) => JSON.parse(readFileSync(join(vectors, name), "utf8"));

const MINTING = load("minting.json");
const TOKENS = load("tokens.json");
const SECRET = MINTING.token_secret;
const SEED = MINTING.otp_seed;

function mintOptions(c) {
  const s = { ...MINTING.defaults, ...(c.settings || {}) };
  const o = { now: c.now, nonce: c.nonce, digits: s.digits, step: s.step, nonceDigits: s.nonce_digits };
  if (c.prepared !== undefined) o.prepared = c.prepared;
  return o;
}

function kindOf(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TokenError, `not a TokenError: ${e}`);
    assert.ok(e instanceof Error);
    return e.kind;
  }
  return "no error";
}

test("minting.json: every case mints, signs and refuses as the contract says", () => {
  assert.ok(MINTING.cases.length > 0);
  for (const c of MINTING.cases) {
    const secret = c.token_secret ?? SECRET;
    const o = mintOptions(c);
    if (c.error) {
      assert.equal(kindOf(() => mint(c.jid, secret, SEED, o)), c.error, `mint: ${c.name}`);
      assert.equal(kindOf(() => credentials(c.jid, secret, SEED, o)), c.error, `credentials: ${c.name}`);
      continue;
    }
    assert.equal(mint(c.jid, secret, SEED, o), c.token, `mint: ${c.name}`);
    assert.equal(signedJid(c.jid, { prepared: c.prepared ?? false }), c.signed_jid, `signedJid: ${c.name}`);
    assert.deepEqual(credentials(c.jid, secret, SEED, o), { jid: c.signed_jid, password: c.token }, `credentials: ${c.name}`);
    // and the library's own verify accepts what it minted
    const v = { now: c.now, digits: o.digits, step: o.step, nonceDigits: o.nonceDigits, prepared: o.prepared };
    assert.equal(verify(c.token, c.jid, secret, SEED, v), null, `verify: ${c.name}`);
  }
});

test("tokens.json: verify returns each case's result", () => {
  assert.ok(TOKENS.cases.length > 0);
  for (const c of TOKENS.cases) {
    const got = verify(c.token, c.jid, TOKENS.secrets, TOKENS.otp_seed, {
      now: c.now,
      digits: TOKENS.digits,
      step: TOKENS.step,
      skew: TOKENS.skew,
      host: TOKENS.host,
    });
    // "replayed" needs the server's replay cache; a stateless verify finds those tokens valid
    const want = c.result === "ok" || c.result === "replayed" ? null : c.result;
    assert.equal(got, want, c.name);
  }
});

test("1000 random nonces are distinct and all exactly nonceDigits digits", () => {
  for (const nonceDigits of [16, 32, 64]) {
    const seen = new Set();
    for (let i = 0; i < 1000; i++) {
      const token = mint("alice@example.org", SECRET, SEED, { now: 1700000000, nonceDigits });
      const m = /^([0-9]{8})([0-9]+) [A-Za-z0-9+/]{43}=$/.exec(token);
      assert.ok(m, token);
      assert.equal(m[2].length, nonceDigits);
      seen.add(m[2]);
      if (i < 20) assert.equal(verify(token, "alice@example.org", SECRET, SEED, { now: 1700000000, nonceDigits }), null);
    }
    assert.equal(seen.size, 1000, `nonceDigits ${nonceDigits}`);
  }
});

test("random nonce digits are roughly uniform", () => {
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 500; i++) {
    const token = mint("alice@example.org", SECRET, SEED, { now: 1700000000, nonceDigits: 64 });
    for (const ch of token.slice(8, 72)) counts[ch.charCodeAt(0) - 48]++;
  }
  // 32000 digits: 3200 expected each; 6 sigma is about 320
  for (const n of counts) assert.ok(n > 2800 && n < 3600, String(counts));
});

test("the default now is Date.now() in whole seconds", (t) => {
  t.mock.method(Date, "now", () => 1700000000900);
  const nonce = "00000000000000000000000000000001";
  const plain = MINTING.cases.find((c) => c.name === "plain");
  assert.equal(mint("alice@example.org", SECRET, SEED, { nonce }), plain.token);
  assert.equal(mint("alice@example.org", SECRET, SEED, { nonce }), mint("alice@example.org", SECRET, SEED, { nonce, now: 1700000000 }));
  assert.equal(verify(plain.token, "alice@example.org", SECRET, SEED), null);
  // step 56666666 ends at 1700000010: 1700000009.999 is still in it, 1700000010.000 is not
  Date.now.mock.mockImplementation(() => 1700000009999);
  assert.equal(mint("alice@example.org", SECRET, SEED, { nonce }), plain.token);
  Date.now.mock.mockImplementation(() => 1700000010000);
  assert.notEqual(mint("alice@example.org", SECRET, SEED, { nonce }), plain.token);
});

test("now must be an integer number of seconds", () => {
  for (const now of [1700000000.5, 1700000000900.5, NaN, Infinity, -1, "1700000000", new Date(), 2 ** 53, 1700000000n]) {
    assert.equal(kindOf(() => mint("alice@example.org", SECRET, SEED, { now })), "settings", String(now));
    assert.equal(kindOf(() => verify("x", "alice@example.org", SECRET, SEED, { now })), "settings", String(now));
  }
});

test("TokenError kinds", () => {
  const e = kindOf(() => signedJid("alice@example.org/phone"));
  assert.equal(e, "jid");
  try {
    mint("alice@example.org", SECRET, SEED, { nonce: "123" });
    assert.fail("no error");
  } catch (err) {
    assert.ok(err instanceof TokenError);
    assert.equal(err.name, "TokenError");
    assert.equal(err.kind, "nonce");
  }
  const m = (o, jid = "alice@example.org", secret = SECRET, seed = SEED) => kindOf(() => mint(jid, secret, seed, o));
  const v = (o, secrets = SECRET, seed = SEED) => kindOf(() => verify("t", "alice@example.org", secrets, seed, o));
  assert.equal(m({ digits: 8.5 }), "settings");
  assert.equal(m({ digits: "8" }), "settings");
  assert.equal(m({ step: 86400, digits: 6, nonceDigits: 64 }), "no error");
  assert.equal(m({ nonce_digits: 16 }), "settings"); // a misspelt option is not silently ignored
  assert.equal(m({ prepared: "yes" }), "settings");
  assert.equal(m({ nonce: 1234567890123456, nonceDigits: 16 }), "nonce");
  assert.equal(m({ nonce: "１２３４５６７８９０１２３４５６", nonceDigits: 16 }), "nonce");
  assert.equal(m({}, "alice@example.org", ""), "settings");
  assert.equal(kindOf(() => mint("alice@example.org", undefined, SEED)), "settings");
  assert.equal(kindOf(() => mint("alice@example.org", SECRET, undefined)), "settings");
  assert.equal(kindOf(() => mint("alice@example.org", SECRET, SEED, "now")), "settings");
  assert.equal(m({}, "alice@example.org", "s\uD800"), "settings");
  assert.equal(m({}, "alice@example.org", "short"), "no error"); // short secrets are the server's policy
  assert.equal(m({}, "alice@example.org", SECRET, ""), "settings");
  assert.equal(m({}, "alice@example.org", SECRET, "not base32!"), "settings");
  assert.equal(m({}, "alice@example.org", SECRET, "ABC1"), "settings");
  assert.equal(m({}, "alice@example.org", SECRET, "xvgr73kmzh2m4xmy======"), "no error");
  assert.equal(m({}, 42), "jid");
  assert.equal(m({}, "\u00f1and\u00fa@example.org", SECRET, "bad seed"), "settings"); // settings first
  assert.equal(v({ skew: 11 }), "settings");
  assert.equal(v({ skew: -1 }), "settings");
  assert.equal(v({ skew: 10 }), "no error");
  assert.equal(v({ host: "" }), "settings");
  assert.equal(v({ nonce: "00000000000000000000000000000001" }), "settings"); // not a verify option
  assert.equal(v({}, []), "settings");
  assert.equal(v({}, [SECRET, ""]), "settings");
  assert.equal(v({}, SECRET, "1"), "settings");
});

test("a non-ASCII localpart says how to pass it prepared", () => {
  for (const jid of ["\u00f1and\u00fa@example.org", "\uff21\uff2c\uff29\uff23\uff25@example.org", "stra\u00dfe@example.org"]) {
    try {
      signedJid(jid);
      assert.fail("no error");
    } catch (e) {
      assert.equal(e.kind, "jid");
      assert.match(e.message, /prepared: true/);
      assert.match(e.message, /hmac-token jid NAME@HOST/);
    }
  }
  // prepared: signed as given, but the structural checks still apply
  assert.equal(signedJid("stra\u00dfe@example.org", { prepared: true }), "stra\u00dfe@example.org");
  for (const jid of ["", "@example.org", "\u00f1@", "\u00f1@a@b", "\u00f1@example.org/r", "\u00f1 x@example.org", "\u00f1\t@example.org", "\u00f1:x@example.org", "\uD800@example.org", "\u00f1@exa:mple.org", "\u00f1@exa mple.org", "\u00f1@example..org", "\u00f1@example.org."]) {
    assert.equal(kindOf(() => signedJid(jid, { prepared: true })), "jid", JSON.stringify(jid));
  }
  assert.equal(signedJid("Alice@Example.ORG"), "alice@example.org");
  assert.equal(signedJid("a".repeat(1023) + "@example.org"), "a".repeat(1023) + "@example.org");
  assert.equal(kindOf(() => signedJid("\u00e9".repeat(512) + "@example.org", { prepared: true })), "jid"); // 1024 bytes
});

test("error messages never contain the secret or the seed", () => {
  const secret = "Sup3r-S3cret-Value-0123456789abcdef";
  const seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
  const messages = [];
  const collect = (fn) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof TokenError);
      messages.push(e.message);
      return;
    }
    assert.fail("no error");
  };
  collect(() => mint("alice@example.org/r", secret, seed));
  collect(() => mint("\u00f1@example.org", secret, seed));
  collect(() => mint("alice@example.org", secret, seed, { nonce: "1" }));
  collect(() => mint("alice@example.org", secret, seed, { digits: 9 }));
  collect(() => mint("alice@example.org", secret, seed, { now: 1.5 }));
  collect(() => mint("alice@example.org", secret, seed + "!"));
  collect(() => mint("alice@example.org", secret, seed.slice(0, 9)));
  collect(() => mint("alice@example.org", secret + "\uD800", seed));
  collect(() => mint(secret, secret, seed)); // arguments mixed up: the refused input is not echoed
  collect(() => mint(seed, secret, seed));
  collect(() => mint("alice@example.org", secret, seed, { [secret]: 1 }));
  collect(() => verify("t", "alice@example.org", [secret, ""], seed));
  collect(() => verify("t", "alice@example.org", secret, seed, { skew: 99 }));
  collect(() => verify("t", "alice@example.org", secret, seed + "1"));
  for (const msg of messages) {
    assert.ok(msg.length > 0);
    for (const s of [secret, seed, secret.slice(0, 12), seed.slice(0, 9)]) {
      assert.ok(!msg.includes(s), `message leaks a secret: ${msg}`);
    }
  }
});

test("verify: rotation, host, skew and canonical base64", () => {
  const now = 1700000000;
  const token = mint("Bob@Example.org", "new-secret", SEED, { now });
  assert.equal(verify(token, "bob@example.org", ["old-secret", "new-secret"], SEED, { now, host: "EXAMPLE.org" }), null);
  assert.equal(verify(token, "BOB@example.org", "new-secret", SEED, { now }), null); // as the user types it
  assert.equal(verify(token, "bob@example.org", ["old-secret"], SEED, { now }), "bad-signature");
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now, host: "other.example" }), "wrong-host");
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now: now + 30 }), null);
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now: now + 60 }), "expired");
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now: now + 60, skew: 2 }), null);
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now: now + 30, skew: 0 }), "expired");
  assert.equal(verify(token, "bob@example.org/res", "new-secret", SEED, { now }), "malformed");
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now, nonceDigits: 31 }), "malformed");
  assert.equal(verify(token, "bob@example.org", "new-secret", SEED, { now, digits: 7 }), "malformed");
  assert.equal(verify(Buffer.from(token), "bob@example.org", "new-secret", SEED, { now }), "malformed");
  assert.equal(verify(token + "\n", "bob@example.org", "new-secret", SEED, { now }), "malformed");
  assert.equal(verify(token.replace(" ", "\u00a0"), "bob@example.org", "new-secret", SEED, { now }), "malformed");
  // the same MAC with non-zero trailing bits in its last character is refused as non-canonical
  const b64 = token.slice(41);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const last = alphabet.indexOf(b64[42]);
  const twin = token.slice(0, 41) + b64.slice(0, 42) + alphabet[last ^ 1] + "=";
  assert.equal(Buffer.from(twin.slice(41), "base64").equals(Buffer.from(b64, "base64")), true);
  assert.equal(verify(twin, "bob@example.org", "new-secret", SEED, { now }), "malformed");
  // a prepared non-ASCII JID round-trips
  const t2 = mint("\u00f1and\u00fa@example.org", "new-secret", SEED, { now, prepared: true });
  assert.equal(verify(t2, "\u00f1and\u00fa@example.org", "new-secret", SEED, { now, prepared: true }), null);
  assert.equal(verify(t2, "\u00f1and\u00fa@example.org", "new-secret", SEED, { now }), "malformed");
});

test("TOTP matches RFC 6238's SHA-1 test values", () => {
  // RFC 6238 appendix B: seed "12345678901234567890" (ASCII), 8 digits, 30 s steps
  const seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
  const rfc = [[59, "94287082"], [1111111109, "07081804"], [1111111111, "14050471"], [1234567890, "89005924"], [2000000000, "69279037"], [20000000000, "65353130"]];
  for (const [now, otp] of rfc) {
    const token = mint("a@b", "k", seed, { now, nonce: "0".repeat(32) });
    assert.equal(token.slice(0, 8), otp, String(now));
  }
  // the counter is exact near 2^53
  const big = Number.MAX_SAFE_INTEGER;
  const t = mint("a@b", "k", seed, { now: big, step: 3 });
  assert.equal(verify(t, "a@b", "k", seed, { now: big, step: 3, skew: 0 }), null);
});

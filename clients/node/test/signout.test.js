// The sign-out (docs/signout.md): signoutRequest against tests/vectors/signout.json, and signout
// against a small HTTP server in this process. Run from the repository: node --test clients/node/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { signout, signoutRequest, SignoutError, TokenError } from "../index.js";

const here = dirname(fileURLToPath(import.meta.url));
const SIGNOUT = JSON.parse(readFileSync(join(here, "..", "..", "..", "tests", "vectors", "signout.json"), "utf8"));
const SECRET = SIGNOUT.secrets[0];
const JID = "alice@example.org";
const NOW = 1700000000;

function kindOf(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TokenError, `not a TokenError: ${e}`);
    return e.kind;
  }
  return "no error";
}

/** A line's TIME, exactly: JSON numbers beyond 2^53 lose digits, so it is read from the line as a bigint when it must be. */
function timeOf(line, approximate) {
  const exact = BigInt(line.split(" ")[1]);
  assert.equal(Number(exact), approximate);
  return Number.isSafeInteger(approximate) ? approximate : exact;
}

/**
 * The vectors' requests refused as malformed for their JID alone: every other field well formed (v1,
 * TIME, a 32-digit NONCE, a canonical MAC). A library must not build them.
 */
function refusedJidCases() {
  const cases = [];
  for (const c of SIGNOUT.cases) {
    const fields = c.line.split(" ");
    if (c.expect !== "malformed" || fields.length !== 5) continue;
    const [version, time, nonce, jid, mac] = fields;
    const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(mac) ? Buffer.from(mac, "base64") : Buffer.alloc(0);
    const canonical = raw.length === 32 && raw.toString("base64") === mac;
    if (version === "v1" && /^[1-9][0-9]{0,19}$/.test(time) && BigInt(time) < 2n ** 64n && /^[0-9]{32}$/.test(nonce) && canonical) {
      cases.push({ name: c.name, time: BigInt(time), nonce, jid });
    }
  }
  return cases;
}

test("signout.json: every case with `mint` builds its exact line", () => {
  const minted = SIGNOUT.cases.filter((c) => c.mint);
  assert.ok(minted.length >= 10);
  for (const c of minted) {
    const { secret, time, nonce, jid } = c.mint;
    assert.equal(signoutRequest(jid, secret, { now: timeOf(c.line, time), nonce }), c.line, c.name);
  }
});

test("signout.json: a request refused as malformed for its JID is not built", () => {
  const cases = refusedJidCases();
  assert.ok(cases.length >= 10, cases.map((c) => c.name).join(", "));
  for (const c of cases) {
    assert.equal(kindOf(() => signoutRequest(c.jid, SECRET, { now: c.time, nonce: c.nonce })), "jid", c.name);
  }
});

test("the nonce is 32 fresh digits", () => {
  const nonces = new Set();
  for (let i = 0; i < 200; i++) {
    const nonce = signoutRequest(JID, SECRET, { now: NOW }).split(" ")[2];
    assert.match(nonce, /^[0-9]{32}$/);
    nonces.add(nonce);
  }
  assert.equal(nonces.size, 200);
});

test("now defaults to the clock, in whole seconds", (t) => {
  t.mock.method(Date, "now", () => 1700000000999);
  const nonce = "7".repeat(32);
  assert.equal(signoutRequest(JID, SECRET, { nonce }), signoutRequest(JID, SECRET, { now: NOW, nonce }));
});

test("now: 1 to 2^64-1, a bigint beyond 2^53", () => {
  assert.equal(signoutRequest(JID, SECRET, { now: 1 }).split(" ")[1], "1");
  assert.equal(signoutRequest(JID, SECRET, { now: 2n ** 64n - 1n }).split(" ")[1], "18446744073709551615");
  for (const now of [0, -1, 0n, 2n ** 64n, 1.5, "1700000000", 2 ** 53, true]) {
    assert.equal(kindOf(() => signoutRequest(JID, SECRET, { now })), "settings", String(now));
  }
});

test("a nonce that is not 32 ASCII digits is refused", () => {
  for (const nonce of ["1".repeat(31), "1".repeat(33), "1".repeat(31) + "x", "١".repeat(32), 7]) {
    assert.equal(kindOf(() => signoutRequest(JID, SECRET, { now: NOW, nonce })), "nonce", String(nonce));
  }
});

test("a JID that is not Prosody's account name is refused, not prepared", () => {
  for (const jid of ["Alice@example.org", "alicE@example.org", "alice@Example.org", "alice@example.org/web",
    "al ice@example.org", "al\u3000ice@example.org", "al\u00a0ice@example.org", "a".repeat(1024) + "@example.org",
    "alice@" + "a".repeat(1024), "", "alice", "@example.org", "alice@", "a@b@example.org", null, "jÜrgen@example.org",
    "ǅa@example.org", "al\u00adice@example.org", "al\u200bice@example.org", "al\ufe0fice@example.org",
    "al\u0085ice@example.org", "al\ue000ice@example.org", "aاb@example.org", "اb@example.org", "aا@example.org",
    "اbا@example.org"]) {
    assert.equal(kindOf(() => signoutRequest(jid, SECRET, { now: NOW })), "jid", String(jid).slice(0, 40));
  }
  const longest = "a".repeat(1023) + "@" + "b".repeat(1023);
  assert.equal(signoutRequest(longest, SECRET, { now: NOW }).split(" ")[3], longest);
  for (const prepared of ["ñandú@example.org", "اب@example.org", "ا1ب@example.org", "o.brien-smith_2+x@example.org"]) {
    assert.equal(signoutRequest(prepared, SECRET, { now: NOW }).split(" ")[3], prepared);
  }
});

test("an unusable secret or option is a settings error", () => {
  for (const secret of ["", null, "x\uD800"]) {
    assert.equal(kindOf(() => signoutRequest(JID, secret, { now: NOW })), "settings");
  }
  assert.equal(kindOf(() => signoutRequest(JID, SECRET, { now: NOW, prepared: true })), "settings");
});

// ---------------------------------------------------------------------------------------------
// signout(): the delivery

/** An HTTP server on 127.0.0.1 that records each request and answers `status`. */
async function server(status = 200, headers = {}) {
  const requests = [];
  const s = createHttpServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("latin1") });
      res.writeHead(s.status, s.headers);
      res.end(s.status === 200 ? "accepted" : "refused");
    });
  });
  Object.assign(s, { status, headers, requests });
  await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
  s.url = `http://127.0.0.1:${s.address().port}/auth_hmac/signout`;
  return s;
}

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("it resolved");
}

function hides(error, values) {
  const text = `${error.message} ${error.stack} ${JSON.stringify(error)} ${error.cause ?? ""}`;
  return values.every((v) => !v || !text.includes(v));
}

test("signout POSTs the request as text/plain and resolves on 200", async (t) => {
  const s = await server();
  t.after(() => s.close());
  assert.equal(await signout(s.url, JID, SECRET, { now: NOW }), undefined);
  assert.equal(s.requests.length, 1);
  const [r] = s.requests;
  assert.equal(r.method, "POST");
  assert.equal(r.url, "/auth_hmac/signout");
  assert.equal(r.headers["content-type"], "text/plain");
  assert.equal(r.headers.host, "example.org"); // Prosody routes a host's HTTP paths by it
  const nonce = r.body.split(" ")[2];
  assert.equal(r.body, signoutRequest(JID, SECRET, { now: NOW, nonce }));
  await signout(s.url, JID, SECRET, { now: NOW });
  assert.notEqual(s.requests[1].body.split(" ")[2], nonce); // a fresh nonce each time
});

for (const [status, kind] of [[403, "refused"], [404, "http"], [500, "http"], [204, "http"]]) {
  test(`signout rejects an answer ${status} as ${kind}, without the request`, async (t) => {
    const s = await server(status);
    t.after(() => s.close());
    const e = await rejection(signout(s.url, JID, SECRET, { now: NOW }));
    assert.ok(e instanceof SignoutError, String(e));
    assert.equal(e.kind, kind);
    assert.equal(e.status, status);
    const body = s.requests[0].body;
    assert.ok(hides(e, [body, body.split(" ")[4], SECRET]), e.message);
  });
}

test("signout's Host header can be named", async (t) => {
  const s = await server();
  t.after(() => s.close());
  await signout(s.url, JID, SECRET, { now: NOW, host: "chat.example.org" });
  assert.equal(s.requests[0].headers.host, "chat.example.org");
});

test("signout follows no redirect", async (t) => {
  const s = await server(307, { Location: "http://127.0.0.1:9/elsewhere" });
  t.after(() => s.close());
  const e = await rejection(signout(s.url, JID, SECRET, { now: NOW }));
  assert.equal(e.kind, "http");
  assert.equal(e.status, 307);
  assert.equal(s.requests.length, 1);
});

test("signout times out on a server that never answers", async (t) => {
  const sockets = [];
  const silent = createTcpServer((socket) => sockets.push(socket.resume())); // reads, never answers
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.after(() => { for (const s of sockets) s.destroy(); silent.close(); });
  const started = performance.now();
  const e = await rejection(signout(`http://127.0.0.1:${silent.address().port}/auth_hmac/signout`, JID, SECRET,
    { now: NOW, timeout: 300 }));
  const elapsed = performance.now() - started;
  assert.ok(e instanceof SignoutError);
  assert.equal(e.kind, "network");
  assert.equal(e.status, null);
  assert.match(e.message, /timed out after 300 ms/);
  assert.ok(elapsed >= 295 && elapsed < 3000, `${elapsed} ms`);
  assert.ok(hides(e, [SECRET, `v1 ${NOW}`]));
  // and the connection is closed, not left open to the silent server
  const closed = await Promise.race([
    new Promise((resolve) => (sockets[0].destroyed ? resolve(true) : sockets[0].on("close", () => resolve(true)))),
    new Promise((resolve) => setTimeout(() => resolve(false), 2000)),
  ]);
  assert.ok(closed, "the client kept the connection open");
});

test("signout rejects a refused connection as network", async () => {
  const probe = createTcpServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve)); // nobody listens there now
  const e = await rejection(signout(`http://127.0.0.1:${port}/auth_hmac/signout`, JID, SECRET, { now: NOW }));
  assert.ok(e instanceof SignoutError);
  assert.equal(e.kind, "network");
  assert.ok(hides(e, [SECRET, `v1 ${NOW}`]));
});

test("a bad URL, timeout or JID rejects with a TokenError and sends nothing", async (t) => {
  const s = await server();
  t.after(() => s.close());
  const bad = [
    ["file:///etc/passwd", {}], ["ftp://127.0.0.1/x", {}], ["127.0.0.1:5280/auth_hmac/signout", {}], [null, {}],
    [s.url, { timeout: 0 }], [s.url, { timeout: 600001 }], [s.url, { timeout: 1.5 }], [s.url, { timeout: "5000" }],
    [s.url, { nonce: "1".repeat(32) }], [s.url, { host: "" }], [s.url, { host: "a b" }],
    [s.url, { host: "a\r\nX-Evil: 1" }], [s.url, { host: "ñ.example" }], [s.url, { host: 5 }],
  ];
  for (const [url, options] of bad) {
    const e = await rejection(signout(url, JID, SECRET, { now: NOW, ...options }));
    assert.ok(e instanceof TokenError, String(e));
    assert.equal(e.kind, "settings", `${url} ${JSON.stringify(options)}`);
  }
  const e = await rejection(signout(s.url, "Alice@example.org", SECRET, { now: NOW }));
  assert.equal(e.kind, "jid");
  assert.equal(s.requests.length, 0);
});

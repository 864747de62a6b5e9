// prebind() (docs/prebind.md) against the scripted servers of tests/vectors/prebind.json, through a
// fake transport that checks every request the client makes. Run from the repository:
// node --test clients/node/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { prebind, PrebindError, TokenError } from "../index.js";

const here = dirname(fileURLToPath(import.meta.url));
const VECTORS = JSON.parse(readFileSync(join(here, "..", "..", "..", "tests", "vectors", "prebind.json"), "utf8"));
const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

const attr = (tag, name) => {
  const m = new RegExp(`\\s${name}=(['"])(.*?)\\1`).exec(tag);
  return m ? m[2] : null;
};

/**
 * What a request is, read with regular expressions (independently of the library's XML reader):
 * the client's bodies are small and of known shapes.
 */
function kindOf(data, c) {
  const m = /^<body xmlns='http:\/\/jabber\.org\/protocol\/httpbind'([^>]*?)(\/>|>([\s\S]*)<\/body>)$/.exec(data);
  if (!m) return "not a BOSH body";
  const head = m[1];
  const inner = m[3] ?? "";
  if (attr(head, "sid") === null) {
    return attr(head, "to") === c.jid.split("@")[1] && attr(head, "hold") === "1" && inner === "" ? "create" : "bad create";
  }
  if (attr(head, "sid") !== VECTORS.sid) return "wrong sid";
  if (attr(head, "xmpp:restart") === "true") return inner === "" && /xmlns:xmpp='urn:xmpp:xbosh'/.test(head) ? "restart" : "bad restart";
  if (inner === "") return "poll";
  let x = /^<auth xmlns='([^']*)' mechanism='([^']*)'>([^<]*)<\/auth>$/.exec(inner);
  if (x) return x[1] === SASL && x[2] === "SASL-HMAC" ? `auth ${x[3]}` : `auth ${x[2]}`;
  x = /^<response xmlns='([^']*)'>([^<]*)<\/response>$/.exec(inner);
  if (x) return x[1] === SASL ? `response ${x[2]}` : "bad response";
  if (/^<iq xmlns='jabber:client' type='set' id='[^']+'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>.*<\/bind><\/iq>$/.test(inner)) return "bind";
  return `unknown ${inner}`;
}

function fake(c) {
  const f = { steps: [...c.script], rids: [], sent: [], lefts: [], broken: null };
  f.transport = async (data, left) => {
    f.sent.push(data);
    f.lefts.push(left);
    f.rids.push(Number(attr(data.slice(0, data.indexOf(">")), "rid")));
    const step = f.steps.shift();
    if (!step) {
      f.broken = `sent after the script ended: ${data}`;
      throw new Error("script ended");
    }
    const got = kindOf(data, c);
    const want = "payload" in step ? `${step.request} ${step.payload}` : step.request;
    if (got !== want) {
      f.broken = `sent ${got}, the script expects ${want}`;
      throw new Error("script broken");
    }
    if (step.response === null) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    return { status: step.status ?? 200, body: step.response };
  };
  return f;
}

function hidden(e, token) {
  const [pub, mac] = token.split(" ");
  const text = `${e.message} ${e.stack} ${JSON.stringify(e)}`;
  return !text.includes(pub) && !text.includes(mac) && !text.includes(mac.slice(0, 20));
}

for (const c of VECTORS.cases) {
  test(`prebind vector: ${c.name}`, async () => {
    const f = fake(c);
    let outcome;
    try {
      outcome = await prebind("http://127.0.0.1:1/http-bind", c.jid, c.token, { transport: f.transport });
    } catch (e) {
      outcome = e;
    }
    assert.equal(f.broken, null);
    assert.deepEqual(f.rids, f.rids.map((_, i) => f.rids[0] + i), "rids count up by one");
    assert.ok(f.rids[0] > 0 && f.rids[0] < 2 ** 53 - 2 ** 32);
    if ("error" in c.expect) {
      assert.ok(outcome instanceof PrebindError, String(outcome));
      assert.deepEqual([outcome.kind, outcome.condition], [c.expect.error, c.expect.condition ?? null], outcome.message);
      assert.ok(hidden(outcome, c.token));
      assert.ok(!f.sent.some((d) => d.includes("PLAIN") || d.includes("X-TOKEN")));
    } else {
      assert.deepEqual(outcome, { jid: c.expect.jid, sid: c.expect.sid, rid: f.rids.at(-1) + 1 });
    }
    assert.deepEqual(f.steps, [], "the client stopped before the script's end");
  });
}

test("the vectors cover each outcome", () => {
  const kinds = VECTORS.cases.map((c) => c.expect.error ?? "ok");
  for (const k of ["ok", "refused", "unproven", "transport"]) assert.ok(kinds.filter((x) => x === k).length >= 3, k);
});

const genuine = () => VECTORS.cases.find((c) => c.name === "the genuine exchange");
/** Another token for the genuine case's JID (a token is tried once per process). */
const fresh = (n) => {
  const [pub, mac] = genuine().token.split(" ");
  return `${pub.slice(0, -6)}9${String(n).padStart(5, "0")} ${mac}`; // the vectors number theirs from 1
};

test("a token is sent once", async () => {
  const c = { ...genuine(), token: fresh(1) };
  c.script = [c.script[0], { ...c.script[1], payload: "(any)" }];
  const f = fake(c);
  await assert.rejects(prebind("http://127.0.0.1:1/http-bind", c.jid, c.token, { transport: f.transport }), PrebindError);
  assert.match(f.broken, /script expects auth/); // it went as far as the auth
  const f2 = fake(c);
  await assert.rejects(prebind("http://127.0.0.1:1/http-bind", c.jid, c.token, { transport: f2.transport }), (e) => {
    assert.ok(e instanceof TokenError && e.kind === "token" && hidden(e, c.token));
    return true;
  });
  assert.deepEqual(f2.sent, []);
});

test("the caller's mistakes are refused before anything is sent", async () => {
  const c = genuine();
  const f = fake(c);
  const cases = [
    ["alice", c.token, {}, "jid"],
    ["alice@example.org/res", c.token, {}, "jid"],
    [c.jid, "not a token", {}, "token"],
    [c.jid, c.token.replace(" ", "  "), {}, "token"],
    [c.jid, `${fresh(6).split(" ")[0]} ${"A".repeat(42)}B=`, {}, "token"], // not canonical base64
    [c.jid, null, {}, "token"],
    [c.jid, fresh(2), { timeout: 0 }, "settings"],
    [c.jid, fresh(2), { timeout: 600001 }, "settings"],
    [c.jid, fresh(2), { timeout: 1.5 }, "settings"],
    [c.jid, fresh(2), { resource: "" }, "settings"],
    [c.jid, fresh(2), { resource: "a\nb" }, "settings"],
    [c.jid, fresh(2), { transport: "not a function" }, "settings"],
    [c.jid, fresh(2), { token_secret: "x" }, "settings"],
  ];
  for (const [jid, token, options, kind] of cases) {
    await assert.rejects(prebind("http://127.0.0.1:1/http-bind", jid, token, { transport: f.transport, ...options }), (e) => {
      assert.ok(e instanceof TokenError, String(e));
      assert.equal(e.kind, kind, `${jid} ${token} ${JSON.stringify(options)}`);
      return true;
    });
  }
  await assert.rejects(prebind("ftp://x/", c.jid, fresh(3)), (e) => e instanceof TokenError && e.kind === "settings");
  assert.deepEqual(f.sent, []);
});

// Mocked setTimeout: Node 18 (Debian 12) takes the timers to mock as an array, Node 20.11 and later
// (Debian 13) an options object and no array
function mockTimeouts(t) {
  try {
    t.mock.timers.enable({ apis: ["setTimeout"] });
  } catch (e) {
    if (e.code !== "ERR_INVALID_ARG_TYPE") throw e;
    t.mock.timers.enable(["setTimeout"]);
  }
}

test("the timeout bounds a transport that never answers, and the wait asked for", async (t) => {
  mockTimeouts(t);
  const c = { ...genuine(), token: fresh(4) };
  const lefts = [];
  const waits = [];
  const transport = async (data, left) => {
    lefts.push(left);
    waits.push(attr(data, "wait"));
    return new Promise(() => {});
  };
  const pending = prebind("http://127.0.0.1:1/http-bind", c.jid, c.token, { transport, timeout: 2500 });
  let outcome = null;
  pending.then(() => { outcome = "resolved"; }, (e) => { outcome = e; });
  await new Promise((r) => setImmediate(r));
  t.mock.timers.tick(2400);
  await new Promise((r) => setImmediate(r));
  assert.equal(outcome, null);
  t.mock.timers.tick(200);
  await new Promise((r) => setImmediate(r));
  assert.ok(outcome instanceof PrebindError && outcome.kind === "transport" && /in time/.test(outcome.message), String(outcome));
  assert.ok(hidden(outcome, c.token));
  assert.ok(lefts.length === 1 && lefts[0] <= 2500 && lefts[0] > 2400, String(lefts));
  assert.deepEqual(waits, ["3"]);
});

test("the XML reader: what it must refuse ends the login as a transport error", async () => {
  const head = "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:stream='http://etherx.jabber.org/streams' sid='s'>";
  const mech = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SASL-HMAC</mechanism></mechanisms></stream:features>";
  const bad = [
    `${head}<!-- a comment -->${mech}</body>`,
    `${head}<?pi x?>${mech}</body>`,
    `${head}${mech}&unknown;</body>`,
    `${head}${mech} a & b</body>`,
    `${head}${mech}&lt</body>`, // no semicolon
    `${head}<x:features/></body>`,
    `${head}<a><b></a></b></body>`,
    `${head}${mech}</body><body/>`,
    `${head}${"<a>".repeat(40)}${"</a>".repeat(40)}</body>`,
    `${head.slice(0, -1)} a='<'>${mech}</body>`,
    `${head}${mech}`,
    `${head}${mech}&#xD800;</body>`,
    `${head}${mech}&constructor;</body>`, // not an entity, though on Object's prototype
    `${head}${mech}&toString;</body>`,
    `${head.slice(0, -1)} a='1' a='2'>${mech}</body>`,
    `${head.slice(0, -1)} xmlns:p='u' xmlns:p='v'>${mech}</body>`,
    `${head.slice(0, -1)} xmlns:p='u' xmlns:q='u' p:a='1' q:a='2'>${mech}</body>`, // one expanded name twice
    `${head.slice(0, -1)} xmlns:p=''>${mech}</body>`,
    `${head.slice(0, -1)} xmlns:xmlns='u'>${mech}</body>`,
    `${head.slice(0, -1)} xmlns:xml='u'>${mech}</body>`,
    `${head}${mech}<f>${"<a/>".repeat(4096)}</f></body>`, // over 4096 elements
    `${head}${mech}<f>${"<a b='1' c='2' d='3'/>".repeat(2800)}</f></body>`, // over 8192 attributes
    `${head.slice(0, -1)}${Array.from({ length: 1023 }, (_, k) => ` xmlns:p${k}='u'`).join("")}>${mech}</body>`, // over 1024 declarations
    `${head}${mech}&#1;</body>`,
    `${head}${mech}&#xFFFE;</body>`,
    `${head}${mech}\u0001</body>`,
    `${head}${mech}\uFFFF</body>`,
    `${head}${mech}\uD800</body>`, // a lone surrogate
    `<?xml <!DOCTYPE x> ?>${head}${mech}</body>`,
    `<?xml version='1.0' encoding='utf-16'?>${head}${mech}</body>`,
  ];
  for (const [i, answer] of bad.entries()) {
    let sent = 0;
    const transport = async () => {
      sent += 1;
      return { status: 200, body: answer };
    };
    await assert.rejects(prebind("http://127.0.0.1:1/http-bind", genuine().jid, fresh(100 + i), { transport }), (e) => {
      assert.ok(e instanceof PrebindError && e.kind === "transport", `${answer}: ${e}`);
      return true;
    });
    assert.equal(sent, 1, answer);
  }
});

test("the XML reader refuses invalid UTF-8 rather than replacing it", async () => {
  const head = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'>";
  const mech = "<features xmlns='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SASL-HMAC</mechanism></mechanisms></features>";
  let sent = 0;
  const transport = async () => {
    sent += 1;
    return { status: 200, body: Buffer.concat([Buffer.from(head + mech), Buffer.from([0xff, 0xc0, 0x80]), Buffer.from("</body>")]) };
  };
  await assert.rejects(prebind("http://127.0.0.1:1/http-bind", genuine().jid, fresh(300), { transport }), (e) => {
    assert.ok(e instanceof PrebindError && e.kind === "transport", String(e));
    return true;
  });
  assert.equal(sent, 1);
});

test("the default transport refuses invalid UTF-8 from a real server", async () => {
  const head = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'>";
  const mech = "<features xmlns='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SASL-HMAC</mechanism></mechanisms></features>";
  let requests = 0;
  const server = createHttpServer((req, res) => {
    requests += 1;
    req.resume();
    req.on("end", () => res.end(Buffer.concat([Buffer.from(head + mech), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from("</body>")])));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    await assert.rejects(prebind(`http://127.0.0.1:${server.address().port}/http-bind`, genuine().jid, fresh(301), { timeout: 3000 }), (e) => {
      assert.ok(e instanceof PrebindError && e.kind === "transport" && /not XML/.test(e.message), String(e));
      return true;
    });
  } finally {
    server.close();
  }
  assert.equal(requests, 1);
});

// this process's CPU time in ms (user and system): what the reader costs, whatever else the machine runs
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

test("the XML reader runs in linear time and caps an answer (many declarations, many children)", async () => {
  const tok = (n) => fresh(400 + n);
  let n = 0;
  // the review's answers: N xmlns:pK declarations on <body>, M empty children (refused by the caps)
  for (const [nDecl, nKids, kidTag] of [[5000, 20000, "<a/>"], [20000, 60000, "<a/>"], [40000, 100000, "<a/>"], [100, 30000, "<a xmlns=''/>"]]) {
    const decl = Array.from({ length: nDecl }, (_, k) => ` xmlns:p${k}='u${k}'`).join("");
    const doc = `<body xmlns='http://jabber.org/protocol/httpbind' sid='s'${decl}><f>${kidTag.repeat(nKids)}</f></body>`;
    const t = cpuMs();
    await assert.rejects(prebind("http://127.0.0.1:1/http-bind", genuine().jid, tok(n++), { timeout: 60000, transport: async () => ({ status: 200, body: doc }) }), (e) => {
      assert.ok(e instanceof PrebindError && e.kind === "transport", String(e));
      return true;
    });
    assert.ok(cpuMs() - t < 1000, `${nDecl} ${nKids}: ${cpuMs() - t} ms of CPU`);
  }
  // just within the caps: 1020 declarations and 4090 children, read (no transport error); a scope
  // copied per element costs 4 million entries, over a second here, the linked one about 0.1 s
  const decl = Array.from({ length: 1020 }, (_, k) => ` xmlns:p${k}='u${k}'`).join("");
  const doc = `<body xmlns='http://jabber.org/protocol/httpbind' sid='s'${decl}><f>${"<a/>".repeat(4090)}</f></body>`;
  const t = cpuMs();
  await assert.rejects(prebind("http://127.0.0.1:1/http-bind", genuine().jid, tok(n++), { timeout: 60000, transport: async () => ({ status: 200, body: doc }) }), (e) => {
    assert.ok(e instanceof PrebindError && e.kind === "unproven" && /offers: none/.test(e.message), String(e));
    return true;
  });
  assert.ok(cpuMs() - t < 600, `${cpuMs() - t} ms of CPU`);
});

test("a mechanism's name is its text alone", async () => {
  const answer = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'><features xmlns='http://etherx.jabber.org/streams'>"
    + "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SASL-<x/>HMAC</mechanism></mechanisms></features></body>";
  let sent = 0;
  const transport = async () => {
    sent += 1;
    return { status: 200, body: answer };
  };
  await assert.rejects(prebind("http://127.0.0.1:1/http-bind", genuine().jid, fresh(310), { transport }), (e) => {
    assert.ok(e instanceof PrebindError && e.kind === "unproven", String(e));
    return true;
  });
  assert.equal(sent, 1);
});

test("http:// is refused before anything is sent unless the host is loopback or insecureHttp is set", async () => {
  let sent = 0;
  const transport = async () => {
    sent += 1;
    throw new Error("connect ECONNREFUSED");
  };
  let n = 320;
  for (const url of ["http://10.0.0.5/http-bind", "http://example.org:5280/http-bind", "http://127.0.0.1.example.org/", "http://[::2]/", "http://localhost.example/"]) {
    await assert.rejects(prebind(url, genuine().jid, fresh(n++), { transport }), (e) => {
      assert.ok(e instanceof TokenError && e.kind === "settings" && /insecureHttp/.test(e.message), `${url}: ${e}`);
      return true;
    });
  }
  await assert.rejects(prebind("https://10.0.0.5/", genuine().jid, fresh(n++), { transport, insecureHttp: "yes" }), (e) => e instanceof TokenError && e.kind === "settings");
  assert.equal(sent, 0);
  const allowed = [
    ["http://127.0.0.1:5280/http-bind", {}], ["http://127.9.8.7/", {}], ["http://[::1]:5280/", {}], ["http://LocalHost/", {}],
    ["https://10.0.0.5/http-bind", {}], ["http://10.0.0.5/http-bind", { insecureHttp: true }],
  ];
  for (const [url, options] of allowed) {
    await assert.rejects(prebind(url, genuine().jid, fresh(n++), { transport, ...options }), (e) => e instanceof PrebindError && e.kind === "transport");
  }
  assert.equal(sent, allowed.length);
});

test("the XML reader: entities, CDATA, a declaration and prefixes are read", async () => {
  const answers = [
    "<?xml version='1.0'?>\n<b:body xmlns:b='http://jabber.org/protocol/httpbind' sid=\"s&amp;1\"><f:features xmlns:f='http://etherx.jabber.org/streams'>"
      + "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SASL&#x2D;H<![CDATA[MA]]>C</mechanism></mechanisms></f:features></b:body>",
    "<body xmlns='http://jabber.org/protocol/httpbind'><failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><text>&lt;no&gt;</text><not-authorized/></failure></body>",
  ];
  const sent = [];
  const transport = async (data) => {
    sent.push(data);
    return { status: 200, body: answers[sent.length - 1] };
  };
  await assert.rejects(prebind("http://127.0.0.1:1/http-bind", genuine().jid, fresh(200), { transport }), (e) => {
    assert.ok(e instanceof PrebindError && e.kind === "refused" && e.condition === "not-authorized", String(e));
    return true;
  });
  assert.match(sent[1], /sid='s&amp;1'/);
  assert.match(sent[1], /<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SASL-HMAC'>/);
});

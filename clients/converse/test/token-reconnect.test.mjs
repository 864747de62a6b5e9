// token-reconnect.js's wiring in Node: a stand-in converse.js and Strophe, a stand-in
// XMLHttpRequest, and the page's clock (setTimeout, Date.now) and Math.random replaced, so that the
// test moves time itself. What the rules decide is reconnect-rules.test.mjs's; here: that the
// plugin feeds them converse's events and the clock, and carries out their actions.
// Run from the repository: node --test clients/converse/test/
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';

import { addTokenReconnect, MESSAGES, WAITING } from '../token-reconnect.js';

const STATUS = { ERROR: 0, CONNECTING: 1, CONNFAIL: 2, AUTHENTICATING: 3, AUTHFAIL: 4, CONNECTED: 5, DISCONNECTED: 6, RECONNECTING: 11 };
const PAGE = 'https://chat.example/chat/';
const fmt = (template, ...args) => args.reduce((s, a) => s.replace('%s', String(a)), template);
const flush = () => new Promise((resolve) => setImmediate(resolve)); // setImmediate is left alone

let saved;
let clock; // { now, timers: [{id, at, fn}] }
let answers; // what credentials_url answers next: {status, body} or 'error'
let requests; // URLs fetched

beforeEach(() => {
    saved = {
        setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout, now: Date.now, random: Math.random,
        XMLHttpRequest: globalThis.XMLHttpRequest, location: globalThis.location, isSecureContext: globalThis.isSecureContext,
    };
    clock = { now: 1_000_000, timers: [], ids: 0 };
    answers = [];
    requests = [];
    globalThis.setTimeout = (fn, ms) => {
        clock.ids += 1;
        clock.timers.push({ id: clock.ids, at: clock.now + ms, fn });
        return clock.ids;
    };
    globalThis.clearTimeout = (id) => { clock.timers = clock.timers.filter((t) => t.id !== id); };
    Date.now = () => clock.now;
    Math.random = () => 0; // every wait at the bottom of its range
    globalThis.location = { href: PAGE };
    globalThis.isSecureContext = true;
    globalThis.XMLHttpRequest = class {
        open(method, url) { this.url = new URL(url, PAGE).href; }
        setRequestHeader() {}
        send() {
            requests.push(this.url);
            const answer = answers.shift() ?? 'error';
            queueMicrotask(() => {
                if (answer === 'error') return this.onerror();
                Object.assign(this, { status: answer.status, responseText: answer.body ?? '', responseURL: answer.url ?? this.url });
                this.onload();
            });
        }
    };
});

afterEach(() => {
    globalThis.setTimeout = saved.setTimeout;
    globalThis.clearTimeout = saved.clearTimeout;
    Date.now = saved.now;
    Math.random = saved.random;
    globalThis.XMLHttpRequest = saved.XMLHttpRequest;
    globalThis.location = saved.location;
    globalThis.isSecureContext = saved.isSecureContext;
});

/** Moves the clock by ms, running every timer that falls due on the way. */
async function advance(ms) {
    const until = clock.now + ms;
    await flush();
    for (;;) {
        clock.timers.sort((a, b) => a.at - b.at);
        const due = clock.timers[0];
        if (!due || due.at > until) break;
        clock.timers.shift();
        clock.now = due.at;
        due.fn();
        await flush();
    }
    clock.now = until;
    await flush();
}

/** converse.js as far as the plugin uses it, with one connection; `log` records what it was told to do. */
function page(settings = {}) {
    const values = { authentication: 'login', credentials_url: '/chat/credentials', auto_reconnect: true, ...settings };
    const listeners = {};
    const log = [];
    const conn = {
        status: STATUS.CONNECTED,
        setConnectionStatus: (status, message) => log.push(['status', message]),
        finishDisconnection: () => log.push(['finish', conn.disconnection_reason]),
        setDisconnectionCause: () => log.push(['cause cleared']),
        reset: () => log.push(['reset']),
        reconnect: () => log.push(['reconnect']),
        onDisconnected() {},
    };
    const api = {
        settings: {
            extend(defaults) { for (const [k, v] of Object.entries(defaults)) if (!(k in values)) values[k] = v; },
            get: (name) => values[name],
        },
        listen: { on(name, fn) { (listeners[name] ||= []).push(fn); } },
        connection: { get: () => conn },
        user: { login: async (...args) => { log.push(['login', ...args]); } },
        hook: async (_name, _conn, xhr) => xhr,
    };
    class Connection {}
    Object.assign(Connection.prototype, {
        _sasl_failure_cb() {}, _attemptSASLAuth() { return true; }, _changeConnectStatus() {}, _connect_cb() {},
        _dataRecv() { log.push(['strophe data']); },
    });
    class Websocket {
        _checkStreamError() { log.push(['strophe stream error']); return true; }
        _onMessage(message) { log.push(['strophe message', message.data]); }
    }
    const Strophe = { Connection, Websocket, Status: STATUS, ErrorCondition: { NO_AUTH_MECH: 'no-auth-mech' } };
    const quiet = { info() {}, warn() {}, error() {} };
    const converse = {
        plugins: { add: (_name, plugin) => plugin.initialize.call({ _converse: { api, state: {} } }) },
        env: { Strophe, log: quiet },
    };
    addTokenReconnect(converse);
    const emit = async (name, ...args) => {
        let result;
        for (const fn of listeners[name] || []) result = await fn(...args);
        return result;
    };
    return { api, conn, log, emit, values, Strophe };
}

const NS_STREAM = 'http://etherx.jabber.org/streams';

/** A stand-in DOM element: its children, and getElementsByTagNameNS over its descendants. */
function element(ns, localName, children = [], textContent = '') {
    return {
        namespaceURI: ns, localName, children, textContent,
        getElementsByTagNameNS(wantNs, name) {
            const found = [];
            const walk = (el) => {
                for (const child of el.children) {
                    if (child.namespaceURI === wantNs && child.localName === name) found.push(child);
                    walk(child);
                }
            };
            walk(this);
            return found;
        },
    };
}

/** <stream:error><CONDITION/><text>TEXT</text></stream:error> inside `wrapper` (WebSocket's stream wrapper, BOSH's body). */
function streamError(wrapper, condition, text) {
    const NS_ERRORS = 'urn:ietf:params:xml:ns:xmpp-streams';
    const parts = [element(NS_ERRORS, condition)];
    if (text !== undefined) parts.push(element(NS_ERRORS, 'text', [], text));
    return element(wrapper.ns, wrapper.name, [element(NS_STREAM, 'error', parts)]);
}

const WS_WRAPPER = { ns: NS_STREAM, name: 'stream' };
const BOSH_BODY = { ns: 'http://jabber.org/protocol/httpbind', name: 'body' };
/** How each transport hands a received element to Strophe (the call the plugin wraps). */
const TRANSPORTS = {
    websocket: (p, elem) => p.Strophe.Websocket.prototype._checkStreamError.call({ _conn: p.conn }, elem, STATUS.ERROR),
    bosh: (p, elem) => p.Strophe.Connection.prototype._dataRecv.call(p.conn, { xhr: { responseXML: { documentElement: elem } } }),
};
const WRAPPERS = { websocket: WS_WRAPPER, bosh: BOSH_BODY };

const of = (log, kind) => log.filter((entry) => entry[0] === kind);
const good = (password) => ({ status: 200, body: JSON.stringify({ jid: 'alice@chat.example', password }) });

test('a failed credentials_url request is asked again after the rules\' wait, then signs in', async () => {
    const p = page({ token_reconnect_delay: 1000 });
    answers = [{ status: 503 }, good('P1 mac')];
    const login = p.emit('login', null, { automatic: true });
    await advance(0);
    assert.equal(requests.length, 1);
    assert.deepEqual(of(p.log, 'status'), [['status', fmt(WAITING.credentials, 'HTTP 503', 1)]]);
    await advance(499);
    assert.equal(requests.length, 1); // the wait is 500 ms (random 0)
    await advance(1);
    assert.equal(requests.length, 2);
    assert.deepEqual(await login, { automatic: true, success: true });
    assert.deepEqual(of(p.log, 'login'), [['login', 'alice@chat.example', 'P1 mac', true]]);
    assert.deepEqual(requests, [PAGE + 'credentials', PAGE + 'credentials']);
});

test('a redirected credentials_url request stops with the message, nothing signed in', async () => {
    const p = page();
    answers = [{ status: 200, body: '<html>log in</html>', url: 'https://chat.example/login' }];
    assert.deepEqual(await p.emit('login', null, {}), { success: true });
    assert.deepEqual(of(p.log, 'finish'), [['finish', fmt(MESSAGES['credentials-refused'], 'a redirect')]]);
    assert.deepEqual(of(p.log, 'login'), []);
});

test('a logout while waiting to ask credentials_url again: nothing more is fetched or signed in', async () => {
    const p = page();
    answers = [{ status: 503 }, good('P1 mac')];
    const login = p.emit('login', null, {});
    await advance(0);
    await p.emit('logout');
    assert.deepEqual(await login, { success: true }); // the waiting login gave up at once
    await advance(10 * 60 * 1000);
    assert.equal(requests.length, 1);
    assert.deepEqual(of(p.log, 'login'), []);
    assert.equal(clock.timers.length, 0);
});

test('a page that is not a secure context fetches nothing', async () => {
    globalThis.isSecureContext = false;
    const p = page();
    const errors = [];
    const consoleError = console.error;
    console.error = (line) => errors.push(line);
    try {
        assert.deepEqual(await p.emit('login', null, {}), { success: true });
    } finally {
        console.error = consoleError;
    }
    assert.equal(requests.length, 0);
    assert.deepEqual(of(p.log, 'finish'), [['finish', MESSAGES['insecure-page']]]);
    assert.match(errors.join('\n'), /not a secure context/);
});

test('a login with a password, or without credentials_url, is left to converse', async () => {
    const p = page();
    assert.deepEqual(await p.emit('login', null, { password: 'x' }), { password: 'x' });
    p.values.credentials_url = undefined;
    assert.deepEqual(await p.emit('login', null, {}), {});
    assert.equal(requests.length, 0);
});

test('a refusal: the outcome is read and cleared, then the connection is reset and reconnected after the wait', async () => {
    const p = page({ token_reconnect_delay: 2000 });
    Object.assign(p.conn, { _tokenReconnectCondition: 'not-authorized', _tokenReconnectSent: true });
    p.api.connection.reconnect();
    assert.equal(p.conn._tokenReconnectCondition, undefined);
    assert.equal(p.conn._tokenReconnectSent, false);
    assert.deepEqual(p.log, [['cause cleared'], ['status', fmt(WAITING.refused, 1)]]);
    p.api.connection.reconnect(); // converse's second call for the same drop: ignored while waiting
    await advance(999);
    assert.deepEqual(of(p.log, 'reconnect'), []);
    await advance(1);
    assert.deepEqual(p.log.slice(-2), [['reset'], ['reconnect']]);
});

test('client-refused ends the connection with its message at once, no wait', async () => {
    const p = page();
    p.conn._tokenReconnectCondition = 'client-refused';
    p.api.connection.reconnect();
    await advance(0);
    assert.deepEqual(of(p.log, 'finish'), [['finish', MESSAGES['client-refused']]]);
    assert.equal(p.conn.disconnection_reason, MESSAGES['client-refused']);
    assert.equal(clock.timers.length, 0);
    p.api.connection.reconnect(); // stopped: nothing
    await advance(60000);
    assert.deepEqual(of(p.log, 'reconnect'), []);
});

test('a stop during a reconnect wait clears its timer', async () => {
    const p = page();
    p.api.connection.reconnect(); // a drop: a reconnect waits
    assert.equal(clock.timers.length, 1);
    answers = [{ status: 403 }];
    await p.emit('login', null, {}); // the login form meanwhile; the web site refuses
    assert.deepEqual(of(p.log, 'finish'), [['finish', fmt(MESSAGES['credentials-refused'], '403')]]);
    assert.equal(clock.timers.length, 0);
    await advance(60000);
    assert.deepEqual(of(p.log, 'reconnect'), []);
});

for (const [upFor, wait] of [[59999, 1000], [60000, 500]]) {
    test(`the page's clock reaches the rules: a drop ${upFor} ms after connecting waits ${wait} ms`, async () => {
        const p = page({ token_reconnect_delay: 1000, token_reconnect_stable_after: 60000 });
        p.api.connection.reconnect(); // a first drop (nothing sent): 500 ms
        await advance(500);
        await p.emit('connected');
        await advance(upFor);
        p.api.connection.reconnect();
        const waits = of(p.log, 'status').map(([, message]) => message);
        assert.deepEqual(waits, [fmt(WAITING.drop, 1), fmt(WAITING.drop, 1)]);
        const before = of(p.log, 'reconnect').length;
        await advance(wait - 1);
        assert.equal(of(p.log, 'reconnect').length, before);
        await advance(1);
        assert.equal(of(p.log, 'reconnect').length, before + 1);
    });
}

test('prebind: a failed prebind_url is asked again after the wait, through converse\'s login', async () => {
    const p = page({ authentication: 'prebind', token_reconnect_max_attempts: 2 });
    await p.emit('noResumeableBOSHSession');
    await advance(499);
    assert.deepEqual(of(p.log, 'login'), []);
    await advance(1);
    assert.deepEqual(of(p.log, 'login'), [['login']]);
    await p.emit('noResumeableBOSHSession'); // the second in a row: stops, no connection to end
    await advance(60000);
    assert.deepEqual(of(p.log, 'login'), [['login']]);
    assert.deepEqual(of(p.log, 'finish'), []);
});

test('converse\'s give-up while connecting is turned into a reconnect, unless stopped', async () => {
    const p = page();
    await p.emit('connectionInitialized');
    p.conn.status = STATUS.CONNECTING;
    p.conn.onDisconnected();
    assert.deepEqual(of(p.log, 'status'), [['status', fmt(WAITING.drop, 1)]]);
});

for (const transport of ['websocket', 'bosh']) {
    test(`${transport}: the sign-out stream error shows the message, fetches once, and a 4xx leaves the user out`, async () => {
        const p = page({ token_signout_retry_delay: 31000 });
        await p.emit('connected');
        TRANSPORTS[transport](p, streamError(WRAPPERS[transport], 'not-authorized', 'Signed out by the web site'));
        assert.equal(p.conn._tokenReconnectCondition, 'signed-out');
        assert.ok(p.log.some(([what]) => what.startsWith('strophe')), 'Strophe still handles it');
        p.api.connection.reconnect(); // converse, after the stream error ended the connection
        p.api.connection.reconnect();
        assert.deepEqual(of(p.log, 'status'), [['status', MESSAGES['signed-out']]]);
        await advance(30999);
        assert.deepEqual(of(p.log, 'reconnect'), []);
        await advance(1);
        assert.deepEqual(of(p.log, 'reconnect'), [['reconnect']]);
        answers = [{ status: 401 }];
        assert.deepEqual(await p.emit('login', null, { automatic: true }), { automatic: true, success: true });
        assert.equal(requests.length, 1);
        assert.deepEqual(of(p.log, 'finish'), [['finish', MESSAGES['signed-out']]]);
        assert.deepEqual(of(p.log, 'login'), []);
        p.api.connection.reconnect();
        await advance(10 * 60 * 1000);
        assert.equal(requests.length, 1);
        assert.deepEqual(of(p.log, 'reconnect'), [['reconnect']]);
    });
}

test('after a sign-out, a web site that still mints lets the user back in with one fetch', async () => {
    const p = page();
    await p.emit('connected');
    TRANSPORTS.websocket(p, streamError(WS_WRAPPER, 'not-authorized', 'Signed out by the web site'));
    p.api.connection.reconnect();
    await advance(31000);
    answers = [good('P1 mac')];
    await p.emit('login', null, { automatic: true });
    assert.deepEqual(of(p.log, 'login'), [['login', 'alice@chat.example', 'P1 mac', true]]);
    await p.emit('connected');
    assert.deepEqual(of(p.log, 'finish'), []);
});

test('after a sign-out, the one token refused again stops with the sign-out message', async () => {
    const p = page();
    await p.emit('connected');
    TRANSPORTS.bosh(p, streamError(BOSH_BODY, 'not-authorized', 'Signed out by the web site'));
    p.api.connection.reconnect();
    await advance(31000);
    answers = [good('P1 mac')];
    await p.emit('login', null, { automatic: true });
    p.conn._tokenReconnectCondition = 'not-authorized'; // the server's SASL <failure/>
    p.conn._tokenReconnectSent = true;
    p.api.connection.reconnect();
    await advance(0);
    assert.deepEqual(of(p.log, 'finish'), [['finish', MESSAGES['signed-out']]]);
    await advance(10 * 60 * 1000);
    assert.equal(requests.length, 1);
});

for (const [what, condition, text] of [['another condition', 'conflict', 'Signed out by the web site'],
    ['another text', 'not-authorized', 'Replaced by new connection'], ['no text', 'not-authorized', undefined]]) {
    test(`a stream error with ${what} is not a sign-out: a drop, reconnected as usual`, async () => {
        const p = page();
        for (const transport of ['websocket', 'bosh']) {
            TRANSPORTS[transport](p, streamError(WRAPPERS[transport], condition, text));
            assert.equal(p.conn._tokenReconnectCondition, undefined, transport);
        }
        p.api.connection.reconnect();
        assert.deepEqual(of(p.log, 'status'), [['status', fmt(WAITING.drop, 1)]]);
    });
}

test('BOSH data without a stream error, and WebSocket elements, pass through untouched', () => {
    const p = page();
    p.Strophe.Connection.prototype._dataRecv.call(p.conn, { xhr: { responseXML: { documentElement: element(BOSH_BODY.ns, 'body') } } });
    p.Strophe.Connection.prototype._dataRecv.call(p.conn, element(NS_STREAM, 'stream'));
    p.Strophe.Connection.prototype._dataRecv.call(p.conn, { xhr: { responseXML: null } });
    assert.equal(p.conn._tokenReconnectCondition, undefined);
    assert.equal(of(p.log, 'strophe data').length, 3);
});

test('WebSocket: a <stream:error> without the stream: prefix declared (Prosody 13) gets it before Strophe parses it', () => {
    const p = page();
    const receive = (data) => p.Strophe.Websocket.prototype._onMessage.call({ _conn: p.conn }, { data });
    const bare = '<stream:error><not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>';
    const declared = `<stream:error xmlns:stream="${NS_STREAM}"><not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>`;
    const others = [declared, '<message xmlns="jabber:client"><body>&lt;stream:error</body></message>',
        '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'];
    receive(bare);
    for (const data of others) receive(data);
    assert.deepEqual(of(p.log, 'strophe message').map(([, data]) => data), [declared, ...others]);
});

// token-reconnect's rules (reconnect-rules.js), every one in token-reconnect.js's header comment,
// driven event by event with the clock and the random number as inputs: no timers, no browser.
// Run from the repository: node --test clients/converse/test/
// (node:test and node:assert only, as in Debian bookworm's Node 18.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
    backoffDelay, credentialsResult, DEFAULTS, initialState, MESSAGES, saslCondition, SEEN_MAX, SIGNED_OUT_TEXT, step,
    streamErrorCondition, WAITING,
} from '../reconnect-rules.js';

// ---------------------------------------------------------------------------------------------
// the driver: a state kept between events, a clock and a random number the test sets

/** Freezes `value` and everything in it, so that a step() that modifies its input throws. */
function deepFreeze(value) {
    if (value && typeof value === 'object' && !Object.isFrozen(value)) {
        Object.freeze(value);
        for (const inner of Object.values(value)) deepFreeze(inner);
    }
    return value;
}

function machine(settings = {}, { now = 0, random = 0 } = {}) {
    const m = {
        state: deepFreeze(initialState()),
        settings,
        now,
        random,
        /** One event; its actions. */
        send(event) {
            const next = step(m.state, event, { settings: m.settings, now: m.now, random: m.random });
            m.state = deepFreeze(next.state);
            return next.actions;
        },
        /** The one wait among an event's actions (throws when it stopped or did not wait). */
        waitAfter(event) {
            const actions = m.send(event);
            const waits = actions.filter((a) => a.type === 'wait');
            if (waits.length !== 1 || actions.some((a) => a.type === 'stop')) {
                throw new assert.AssertionError({ message: `expected one wait, got ${JSON.stringify(actions)}` });
            }
            return waits[0];
        },
        /** The pending wait is over: its timer event's actions. */
        elapse() {
            assert.ok(m.state.wait, 'nothing is waiting');
            return m.send({ type: 'timer', id: m.state.wait.id });
        },
    };
    return m;
}

const types = (actions) => actions.map((a) => a.type);
const stopOf = (actions) => actions.find((a) => a.type === 'stop');
const failed = (condition) => ({ type: 'disconnected', condition, sent: true });
const dropped = (sent = false) => ({ type: 'disconnected', condition: null, sent });
const ok = (jid, password) => ({ status: 200, redirected: false, body: JSON.stringify({ jid, password }) });
const fmt = (template, ...args) => args.reduce((s, a) => s.replace('%s', String(a)), template);
const TOP = 1 - Number.EPSILON; // Math.random()'s largest value

// ---------------------------------------------------------------------------------------------

describe('back-off', () => {
    test('attempt n waits in the upper half of min(max, base * 2^(n-1))', () => {
        const ranges = [[1, 500, 1000], [2, 1000, 2000], [3, 2000, 4000], [4, 4000, 8000], [5, 8000, 16000],
            [6, 16000, 32000], [7, 30000, 60000], [8, 30000, 60000], [40, 30000, 60000], [1e9, 30000, 60000]];
        for (const [n, low, high] of ranges) {
            assert.equal(backoffDelay(n, 1000, 60000, 0), low, `n=${n}, random 0`);
            assert.equal(backoffDelay(n, 1000, 60000, TOP), high, `n=${n}, random ~1`);
            assert.equal(backoffDelay(n, 1000, 60000, 0.5), Math.round(0.75 * high), `n=${n}, random 0.5`);
        }
        assert.equal(backoffDelay(0, 1000, 60000, 0), 500); // before the first: as the first
        assert.equal(backoffDelay(3, 250, 700, TOP), 700); // the cap, not a power of two
    });

    test('drops before a token was sent double the wait up to the cap and never stop', () => {
        const m = machine({ token_reconnect_delay: 500, token_reconnect_max_delay: 4000, token_reconnect_max_attempts: 3 });
        const waits = [];
        for (let i = 0; i < 8; i += 1) {
            waits.push(m.waitAfter(dropped()).ms);
            assert.deepEqual(types(m.elapse()), ['reconnect']);
        }
        assert.deepEqual(waits, [250, 500, 1000, 2000, 2000, 2000, 2000, 2000]);
        m.random = TOP;
        assert.equal(m.waitAfter(dropped()).ms, 4000);
    });

    test('the waiting status names the wait in whole seconds, at least 1', () => {
        const m = machine({}, { random: TOP });
        assert.equal(m.waitAfter(dropped()).status, fmt(WAITING.drop, 1)); // 1000 ms
        m.elapse();
        m.random = 0;
        assert.equal(m.waitAfter(dropped()).status, fmt(WAITING.drop, 1)); // 1000 ms
        m.elapse();
        assert.equal(m.waitAfter(dropped()).status, fmt(WAITING.drop, 2)); // 2000 ms
        const short = machine({ token_reconnect_delay: 100 });
        assert.equal(short.waitAfter(dropped()).status, fmt(WAITING.drop, 1)); // 50 ms
    });

    test('the defaults: 1 s, doubled up to 60 s; 3 refusals, 10 attempts, stable after 60 s', () => {
        assert.deepEqual(DEFAULTS, {
            token_reconnect_max_refusals: 3, token_reconnect_max_attempts: 10, token_reconnect_delay: 1000,
            token_reconnect_max_delay: 60000, token_reconnect_stable_after: 60000, token_credentials_timeout: 10000,
            token_signout_retry_delay: 31000,
        });
        const m = machine(); // no settings: the defaults
        assert.equal(m.waitAfter(dropped()).ms, 500);
    });
});

describe('refused tokens', () => {
    const refusing = [
        ['credentials-expired', 'credentials-expired', ''],
        ['not-authorized', 'not-authorized', 'bad signature'],
        ['otp-mismatch', 'not-authorized', 'no otp_seed matches: is otp_seed the same on both sides?'],
    ];
    for (const [reason, name, text] of refusing) {
        test(`${reason}: stops at the max_refusals-th refusal in a row, with its message`, () => {
            const m = machine({ token_reconnect_max_refusals: 3 });
            const condition = saslCondition(name, text);
            assert.equal(condition, reason);
            for (const n of [1, 2]) {
                const actions = m.send(failed(condition));
                assert.deepEqual(types(actions), ['forget-outcome', 'warn', 'wait'], `refusal ${n}`);
                assert.equal(actions[1].text, `the server refused a fresh token (${condition}), ${n} of 3`);
                assert.equal(actions[2].ms, 500 * 2 ** (n - 1)); // back-off by refusals
                assert.equal(actions[2].status, fmt(WAITING.refused, 1)); // 500 and 1000 ms: 1 s
                assert.deepEqual(types(m.elapse()), ['reconnect']);
            }
            const actions = m.send(failed(condition));
            assert.deepEqual(types(actions), ['forget-outcome', 'warn', 'stop']);
            assert.deepEqual(stopOf(actions), { type: 'stop', reason, message: MESSAGES[reason], disconnect: true });
            assert.equal(m.state.message, MESSAGES[reason]);
        });
    }

    test('max_refusals is read from the settings (2 stops at the second)', () => {
        const m = machine({ token_reconnect_max_refusals: 2 });
        m.waitAfter(failed('not-authorized'));
        m.elapse();
        assert.equal(stopOf(m.send(failed('not-authorized'))).reason, 'not-authorized');
    });

    test('a condition without a message of its own stops with "other", naming it', () => {
        for (const condition of ['invalid-mechanism', 'toString']) {
            const m = machine({ token_reconnect_max_refusals: 1 });
            const stop = stopOf(m.send(failed(condition)));
            assert.deepEqual(stop, { type: 'stop', reason: 'other', message: fmt(MESSAGES.other, condition), disconnect: true });
        }
    });

    test('temporary-auth-failure is retried with back-off, not counted as a refusal', () => {
        const m = machine({ token_reconnect_max_refusals: 1, token_reconnect_max_attempts: 4 });
        const waits = [];
        for (let n = 1; n <= 3; n += 1) {
            const actions = m.send(failed('temporary-auth-failure'));
            assert.deepEqual(types(actions), ['forget-outcome', 'wait']);
            assert.equal(actions[1].status, fmt(WAITING.temporary, n === 3 ? 2 : 1));
            waits.push(actions[1].ms);
            m.elapse();
        }
        assert.deepEqual(waits, [500, 1000, 2000]);
        assert.equal(m.state.refusals, 0);
        assert.equal(stopOf(m.send(failed('temporary-auth-failure'))).reason, 'attempts'); // the 4th
    });

    test('the otp_seed text is told apart only for not-authorized, as a word', () => {
        assert.equal(saslCondition('not-authorized', 'otp_seed differs'), 'otp-mismatch');
        assert.equal(saslCondition(undefined, 'otp_seed differs'), 'otp-mismatch'); // no condition element
        assert.equal(saslCondition('not-authorized', 'otp_seeds'), 'not-authorized');
        assert.equal(saslCondition('not-authorized', 'my_otp_seed'), 'not-authorized');
        assert.equal(saslCondition('credentials-expired', 'otp_seed'), 'credentials-expired');
        assert.equal(saslCondition('not-authorized', ''), 'not-authorized');
        assert.equal(saslCondition(null, null), 'not-authorized');
    });
});

describe('max_attempts', () => {
    test('counts connections that sent a token and ended without a session', () => {
        const m = machine({ token_reconnect_max_attempts: 3 });
        const waits = [];
        for (let i = 0; i < 2; i += 1) {
            const w = m.waitAfter(dropped(true));
            assert.equal(w.status, fmt(WAITING.drop, 1));
            waits.push(w.ms);
            m.elapse();
        }
        assert.deepEqual(waits, [500, 1000]);
        const stop = stopOf(m.send(dropped(true)));
        assert.deepEqual(stop, { type: 'stop', reason: 'attempts', message: fmt(MESSAGES.attempts, 3), disconnect: true });
        assert.match(stop.message, /3 sign-ins in a row got no answer/);
    });

    test('does not count drops before a token was sent', () => {
        const m = machine({ token_reconnect_max_attempts: 3 });
        for (let i = 0; i < 50; i += 1) {
            m.waitAfter(dropped(false));
            m.elapse();
        }
        assert.equal(m.state.attempts, 0);
        m.waitAfter(dropped(true)); // the first that counts
        m.elapse();
        m.waitAfter(dropped(true));
        m.elapse();
        assert.equal(stopOf(m.send(dropped(true))).reason, 'attempts');
    });

    test('counts refusals too: a server refusing every token stops at max_attempts', () => {
        const m = machine({ token_reconnect_max_refusals: 10, token_reconnect_max_attempts: 3 });
        m.waitAfter(failed('not-authorized'));
        m.elapse();
        m.send(failed('temporary-auth-failure'));
        m.elapse();
        assert.equal(stopOf(m.send(failed('not-authorized'))).reason, 'attempts');
    });

    test('a session resets refusals and attempts, not the drop back-off', () => {
        const m = machine({ token_reconnect_max_refusals: 2, token_reconnect_max_attempts: 2 });
        m.waitAfter(dropped());
        m.elapse();
        m.waitAfter(failed('not-authorized'));
        m.elapse();
        m.send({ type: 'connected' });
        assert.deepEqual([m.state.refusals, m.state.attempts, m.state.drops], [0, 0, 1]);
        m.waitAfter(failed('not-authorized')); // a first refusal again
        m.elapse();
        m.send({ type: 'connected' });
        m.waitAfter(dropped(true));
        m.elapse();
        m.send({ type: 'connected' });
        assert.equal(m.waitAfter(dropped()).ms, 500 * 2); // drops: 2nd
    });
});

describe('stops at once', () => {
    for (const reason of ['client-refused', 'insecure-connection']) {
        test(`${reason}: the first time, without a wait`, () => {
            const m = machine({ token_reconnect_max_refusals: 3, token_reconnect_max_attempts: 10 });
            const actions = m.send({ type: 'disconnected', condition: reason, sent: true });
            assert.deepEqual(types(actions), ['forget-outcome', 'stop']);
            assert.deepEqual(stopOf(actions), { type: 'stop', reason, message: MESSAGES[reason], disconnect: true });
            assert.equal(m.state.stopped, true);
            assert.equal(m.state.wait, null);
        });
    }
});

describe('credentials_url', () => {
    const retried = [
        [{ status: 429, redirected: false, body: '' }, 'HTTP 429, rate limited'],
        [{ status: 500, redirected: false, body: '' }, 'HTTP 500'],
        [{ status: 503, redirected: false, body: '{"jid": "a@b", "password": "x y"}' }, 'HTTP 503'],
        [{ status: 304, redirected: false, body: '' }, 'HTTP 304'],
        [{ error: 'network error' }, 'network error'],
        [{ error: 'timed out' }, 'timed out'],
        [{ status: 200, redirected: false, body: '<html>login</html>' }, 'not JSON'],
        [{ status: 200, redirected: false, body: '{"jid": "a@b"}' }, 'no jid and password'],
        [{ status: 200, redirected: false, body: '{"jid": "a@b", "password": 5}' }, 'no jid and password'],
        [{ status: 200, redirected: false, body: 'null' }, 'no jid and password'],
    ];
    for (const [response, why] of retried) {
        test(`retried with back-off: ${why}`, () => {
            const m = machine();
            const generation = m.state.generation;
            assert.deepEqual(m.send({ type: 'login', wanted: true, secure: true }), [{ type: 'fetch', generation }]);
            const w1 = m.waitAfter({ type: 'credentials', generation, response });
            assert.deepEqual([w1.ms, w1.status], [500, fmt(WAITING.credentials, why, 1)]);
            assert.deepEqual(m.elapse(), [{ type: 'fetch', generation }]);
            const w2 = m.waitAfter({ type: 'credentials', generation, response });
            assert.equal(w2.ms, 1000);
            m.elapse();
            const w3 = m.waitAfter({ type: 'credentials', generation, response });
            assert.equal(w3.ms, 2000);
            m.elapse();
            const actions = m.send({ type: 'credentials', generation, response: ok('a@b', 'P1 mac') });
            assert.deepEqual(actions, [{ type: 'sign-in', jid: 'a@b', password: 'P1 mac' }]);
            assert.equal(m.state.credentialFailures, 0); // the next failure starts the back-off anew
            m.send({ type: 'login', wanted: true, secure: true });
            assert.equal(m.waitAfter({ type: 'credentials', generation, response }).ms, 500);
        });
    }

    const stopping = [
        [{ status: 400, redirected: false, body: '' }, '400'],
        [{ status: 401, redirected: false, body: '' }, '401'],
        [{ status: 403, redirected: false, body: '' }, '403'],
        [{ status: 404, redirected: false, body: '' }, '404'],
        [{ status: 200, redirected: true, body: '<html>the login page</html>' }, 'a redirect'],
        [{ status: 200, redirected: true, body: '{"jid": "a@b", "password": "x y"}' }, 'a redirect'],
    ];
    for (const [response, why] of stopping) {
        test(`stops, saying the web site issued nothing: ${why}`, () => {
            const m = machine();
            m.send({ type: 'login', wanted: true, secure: true });
            const actions = m.send({ type: 'credentials', generation: 0, response });
            assert.deepEqual(actions, [{
                type: 'stop', reason: 'credentials-refused', message: fmt(MESSAGES['credentials-refused'], why), disconnect: true,
            }]);
        });
    }

    test('a response of an older generation (a stop or logout meanwhile) is dropped', () => {
        const m = machine();
        m.send({ type: 'login', wanted: true, secure: true });
        m.send({ type: 'logout' });
        assert.deepEqual(m.send({ type: 'credentials', generation: 0, response: ok('a@b', 'P1 mac') }), []);
        assert.deepEqual(m.send({ type: 'credentials', generation: 0, response: { status: 403 } }), []);
        assert.deepEqual(m.state.seen, []);
    });

    test('credentialsResult: the answer the wiring hands over', () => {
        assert.deepEqual(credentialsResult(ok('a@b', 'P mac')), { ok: true, jid: 'a@b', password: 'P mac' });
        assert.deepEqual(credentialsResult({ error: undefined }), { ok: false, retry: true, why: undefined });
        assert.deepEqual(credentialsResult({ status: 499, redirected: true }), { ok: false, retry: false, why: '499' });
        assert.deepEqual(credentialsResult({ status: 429, redirected: true }), { ok: false, retry: true, why: 'HTTP 429, rate limited' });
    });
});

describe('a token handed out twice', () => {
    test('is not sent: the plugin stops', () => {
        const m = machine();
        m.send({ type: 'login', wanted: true, secure: true });
        assert.equal(types(m.send({ type: 'credentials', generation: 0, response: ok('a@b', '1234567800 macA') }))[0], 'sign-in');
        m.send({ type: 'login', wanted: true, secure: true });
        // the same public part with another MAC is the same token as far as the server's replay cache goes
        const actions = m.send({ type: 'credentials', generation: 0, response: ok('a@b', '1234567800 macB') });
        assert.deepEqual(actions, [{ type: 'stop', reason: 'credentials-reused', message: MESSAGES['credentials-reused'], disconnect: true }]);
    });

    test('a fresh token each time is sent; the last SEEN_MAX are remembered', () => {
        const m = machine();
        for (let i = 0; i <= SEEN_MAX; i += 1) {
            m.send({ type: 'login', wanted: true, secure: true });
            const actions = m.send({ type: 'credentials', generation: 0, response: ok('a@b', `P${i} mac`) });
            assert.deepEqual(types(actions), ['sign-in'], `token ${i}`);
        }
        assert.equal(m.state.seen.length, SEEN_MAX);
        assert.ok(!m.state.seen.includes('P0') && m.state.seen.includes('P1'));
        m.send({ type: 'login', wanted: true, secure: true });
        assert.equal(stopOf(m.send({ type: 'credentials', generation: 0, response: ok('a@b', 'P1 mac') })).reason, 'credentials-reused');
    });
});

describe('stable_after', () => {
    function afterThreeDrops() {
        const m = machine({ token_reconnect_stable_after: 60000 });
        for (let i = 0; i < 3; i += 1) {
            m.waitAfter(dropped());
            m.elapse();
        }
        m.now = 1000;
        m.send({ type: 'connected' });
        return m;
    }

    test('a drop 59 999 ms after the session began keeps the back-off growing', () => {
        const m = afterThreeDrops();
        m.now = 1000 + 59999;
        assert.equal(m.waitAfter(dropped()).ms, 4000); // the 4th: 500 * 2^3
    });

    test('a drop 60 000 ms after the session began starts the back-off anew', () => {
        const m = afterThreeDrops();
        m.now = 1000 + 60000;
        assert.equal(m.waitAfter(dropped()).ms, 500);
    });

    test('only a drop after a session is measured: repeated failures keep growing', () => {
        const m = afterThreeDrops();
        m.now = 1000 + 60000;
        m.waitAfter(dropped());
        m.elapse();
        m.now = 10 ** 9; // long after, but no session in between
        assert.equal(m.waitAfter(dropped()).ms, 1000);
    });

    test('the setting is read: 5000 ms', () => {
        const m = afterThreeDrops();
        m.settings = { token_reconnect_stable_after: 5000 };
        m.now = 6000;
        assert.equal(m.waitAfter(dropped()).ms, 500);
    });
});

describe('the page and the login', () => {
    test('an insecure page fetches nothing and stops', () => {
        const m = machine();
        const actions = m.send({ type: 'login', wanted: true, secure: false });
        assert.deepEqual(actions, [{ type: 'stop', reason: 'insecure-page', message: MESSAGES['insecure-page'], disconnect: true }]);
    });

    test('a login that is not the plugin\'s (a password, prebind, no credentials_url) is left alone', () => {
        const m = machine();
        assert.deepEqual(m.send({ type: 'login', wanted: false, secure: false }), []);
        assert.deepEqual(m.send({ type: 'login', wanted: false, secure: true }), []);
        assert.equal(m.state.stopped, false);
    });

    test('a login after a stop starts over: counters and message cleared, a fetch', () => {
        const m = machine({ token_reconnect_max_refusals: 2 });
        m.waitAfter(failed('not-authorized'));
        m.elapse();
        m.send(failed('not-authorized'));
        assert.equal(m.state.stopped, true);
        const generation = m.state.generation;
        assert.equal(generation, 1);
        assert.deepEqual(m.send({ type: 'login', wanted: true, secure: true }), [{ type: 'fetch', generation }]);
        assert.deepEqual([m.state.stopped, m.state.message, m.state.refusals, m.state.attempts], [false, null, 0, 0]);
        assert.deepEqual(types(m.send(failed('not-authorized'))), ['forget-outcome', 'warn', 'wait']); // 1 of 2 again
    });
});

describe('one wait at a time', () => {
    test('a second drop while waiting is ignored, and its outcome kept for later', () => {
        const m = machine();
        m.waitAfter(failed('not-authorized'));
        assert.deepEqual(m.send(failed('not-authorized')), []);
        assert.deepEqual(m.send(dropped(true)), []);
        assert.deepEqual(m.send({ type: 'prebind-failed' }), []);
        assert.equal(m.state.refusals, 1);
    });

    test('a stale timer (an id not pending) does nothing', () => {
        const m = machine();
        const w = m.waitAfter(dropped());
        assert.deepEqual(m.send({ type: 'timer', id: w.id + 1 }), []);
        assert.deepEqual(m.send({ type: 'timer', id: w.id }), [{ type: 'reconnect' }]);
        assert.deepEqual(m.send({ type: 'timer', id: w.id }), []); // once
    });
});

describe('prebind', () => {
    test('a failing prebind_url is retried with back-off up to max_attempts in a row', () => {
        const m = machine({ token_reconnect_max_attempts: 3 });
        const waits = [];
        for (let i = 0; i < 2; i += 1) {
            const w = m.waitAfter({ type: 'prebind-failed' });
            assert.equal(w.status, fmt(WAITING.credentials, 'prebind_url failed', 1));
            waits.push(w.ms);
            assert.deepEqual(m.elapse(), [{ type: 'prebind' }]);
        }
        assert.deepEqual(waits, [500, 1000]);
        const actions = m.send({ type: 'prebind-failed' });
        // no connection to end: prebind gave converse none
        assert.deepEqual(actions, [{ type: 'stop', reason: 'prebind', message: fmt(MESSAGES.prebind, 3), disconnect: false }]);
        assert.deepEqual(m.send({ type: 'prebind-failed' }), []);
    });

    test('a session resets the count', () => {
        const m = machine({ token_reconnect_max_attempts: 2 });
        m.waitAfter({ type: 'prebind-failed' });
        m.elapse();
        m.send({ type: 'connected' });
        assert.equal(m.waitAfter({ type: 'prebind-failed' }).ms, 500);
    });
});

describe('after a stop or a logout nothing happens', () => {
    const events = [dropped(), dropped(true), failed('not-authorized'), failed('temporary-auth-failure'), { type: 'prebind-failed' }];

    test('after a logout: no reconnect, no prebind, no fetch', () => {
        const m = machine();
        m.send({ type: 'connected' });
        assert.deepEqual(m.send({ type: 'logout' }), [{ type: 'cancel' }]);
        for (const event of events) assert.deepEqual(m.send(event), [], JSON.stringify(event));
        assert.deepEqual(m.send({ type: 'credentials', generation: 0, response: ok('a@b', 'P mac') }), []);
    });

    for (const kind of ['reconnect', 'fetch', 'prebind']) {
        test(`a logout during a wait (${kind}) cancels it: its timer does nothing`, () => {
            const m = machine();
            let w;
            if (kind === 'reconnect') w = m.waitAfter(dropped());
            if (kind === 'prebind') w = m.waitAfter({ type: 'prebind-failed' });
            if (kind === 'fetch') {
                m.send({ type: 'login', wanted: true, secure: true });
                w = m.waitAfter({ type: 'credentials', generation: 0, response: { error: 'network error' } });
            }
            assert.deepEqual(m.send({ type: 'logout' }), [{ type: 'cancel' }]);
            assert.equal(m.state.wait, null);
            assert.deepEqual(m.send({ type: 'timer', id: w.id }), []);
            for (const event of events) assert.deepEqual(m.send(event), []);
        });
    }

    test('a stop during a wait cancels it too', () => {
        // a reconnect is pending when converse logs in anew (the login form) and the web site
        // answers 403: the plugin stops, and the pending reconnect must not fire
        const m = machine();
        const w = m.waitAfter(dropped());
        assert.deepEqual(m.send({ type: 'login', wanted: true, secure: true }), [{ type: 'fetch', generation: 0 }]);
        const actions = m.send({ type: 'credentials', generation: 0, response: { status: 403 } });
        assert.equal(stopOf(actions).reason, 'credentials-refused');
        assert.equal(m.state.wait, null);
        assert.deepEqual(m.send({ type: 'timer', id: w.id }), []);
        for (const event of events) assert.deepEqual(m.send(event), []);
    });
});

describe('the web site signed the user out', () => {
    const signedOut = { type: 'disconnected', condition: 'signed-out', sent: false };
    const login = { type: 'login', wanted: true, secure: true };
    const SIGNED_OUT_STOP = { type: 'stop', reason: 'signed-out', message: MESSAGES['signed-out'], disconnect: true };

    /** A connected machine that the sign-out's stream error ended: it shows the message and waits for its one reconnect. */
    function afterSignOut() {
        const m = machine();
        m.send({ type: 'connected' });
        const w = m.waitAfter(signedOut);
        // one OTP step and a second: the token fetched then is of a later step than the sign-out
        assert.deepEqual([w.ms, w.status], [31000, MESSAGES['signed-out']]);
        assert.deepEqual(m.elapse(), [{ type: 'reconnect' }]);
        assert.deepEqual(m.send(login), [{ type: 'fetch', generation: m.state.generation }]);
        return m;
    }

    test('streamErrorCondition: not-authorized with the sign-out text, nothing else', () => {
        assert.equal(SIGNED_OUT_TEXT, 'Signed out by the web site');
        assert.equal(streamErrorCondition('not-authorized', 'Signed out by the web site'), 'signed-out');
        assert.equal(streamErrorCondition('not-authorized', '  Signed out by the web site\n'), 'signed-out');
        assert.equal(streamErrorCondition('not-authorized', 'Signed out by the web site!'), null);
        assert.equal(streamErrorCondition('not-authorized', ''), null);
        assert.equal(streamErrorCondition('not-authorized', undefined), null);
        assert.equal(streamErrorCondition('conflict', 'Signed out by the web site'), null);
        assert.equal(streamErrorCondition(undefined, 'Signed out by the web site'), null);
    });

    test('the message; the wait is token_signout_retry_delay, whatever the back-off', () => {
        assert.match(MESSAGES['signed-out'], /^You were signed out of the chat\b/);
        const m = machine({ token_signout_retry_delay: 61000, token_reconnect_delay: 10 }, { random: TOP });
        m.waitAfter(dropped());
        m.elapse();
        assert.equal(m.waitAfter(signedOut).ms, 61000);
    });

    for (const [why, response] of [['401', { status: 401, redirected: false, body: '' }],
        ['a redirect to the login page', { status: 200, redirected: true, body: '<html>' }],
        ['a retryable failure (503): not asked again', { status: 503, redirected: false, body: '' }],
        ['no answer: not asked again', { error: 'network error' }]]) {
        test(`the one credentials fetch fails (${why}): stops with the sign-out message`, () => {
            const m = afterSignOut();
            assert.deepEqual(m.send({ type: 'credentials', generation: m.state.generation, response }), [SIGNED_OUT_STOP]);
            assert.equal(m.state.message, MESSAGES['signed-out']);
            for (const event of [dropped(), signedOut, failed('not-authorized'), { type: 'prebind-failed' }]) {
                assert.deepEqual(m.send(event), [], JSON.stringify(event));
            }
        });
    }

    for (const [why, event] of [['refused as not-authorized', failed('not-authorized')],
        ['refused as credentials-expired', failed('credentials-expired')],
        ['signed out again', signedOut],
        ['no answer after the token went out', dropped(true)],
        ['dropped before the token went out', dropped(false)],
        ['temporary-auth-failure', failed('temporary-auth-failure')]]) {
        test(`the one sign-in after it fails (${why}): stops with the sign-out message, nothing more is fetched`, () => {
            const m = afterSignOut();
            const generation = m.state.generation;
            assert.equal(types(m.send({ type: 'credentials', generation, response: ok('a@b', 'P1 mac') }))[0], 'sign-in');
            assert.deepEqual(m.send(event), [{ type: 'forget-outcome' }, SIGNED_OUT_STOP]);
            assert.equal(m.state.refusals, 0); // not counted as a refused token: the page is not broken
            assert.deepEqual(m.send(event), []);
        });
    }

    test('the client\'s own refusal on that sign-in keeps its own message', () => {
        const m = afterSignOut();
        m.send({ type: 'credentials', generation: m.state.generation, response: ok('a@b', 'P1 mac') });
        assert.equal(stopOf(m.send(failed('client-refused'))).reason, 'client-refused');
    });

    test('a sign-in that succeeds lets the user back; a later sign-out is tried once again', () => {
        const m = afterSignOut();
        m.send({ type: 'credentials', generation: m.state.generation, response: ok('a@b', 'P1 mac') });
        m.send({ type: 'connected' });
        assert.equal(m.state.signedOut, false);
        assert.equal(m.waitAfter(signedOut).status, MESSAGES['signed-out']);
        assert.deepEqual(m.elapse(), [{ type: 'reconnect' }]);
        // and an ordinary refusal later is counted as usual
        m.send(login);
        m.send({ type: 'credentials', generation: m.state.generation, response: ok('a@b', 'P2 mac') });
        m.send({ type: 'connected' });
        m.waitAfter(failed('not-authorized'));
        assert.equal(m.state.refusals, 1);
    });

    test('never loops: a web site that always mints and a server that always signs out fetch once per sign-out', () => {
        const m = afterSignOut();
        let fetches = 1;
        let stopped = false;
        for (let i = 0; i < 50 && !stopped; i += 1) {
            const actions = m.send({ type: 'credentials', generation: m.state.generation, response: ok('a@b', `P${i} mac`) });
            assert.equal(types(actions)[0], 'sign-in');
            const after = m.send(signedOut);
            stopped = after.some((a) => a.type === 'stop');
            if (!stopped) {
                m.elapse();
                if (types(m.send(login)).includes('fetch')) fetches += 1;
            }
        }
        assert.ok(stopped);
        assert.equal(fetches, 1);
    });

    test('a login after the stop (the login form) starts over', () => {
        const m = afterSignOut();
        m.send({ type: 'credentials', generation: m.state.generation, response: { status: 401 } });
        assert.deepEqual(m.send(login), [{ type: 'fetch', generation: m.state.generation }]);
        assert.equal(m.state.signedOut, false);
        assert.equal(m.waitAfter({ type: 'credentials', generation: m.state.generation, response: { status: 503 } }).ms, 500);
    });

    test('prebind: the one prebind after it fails: stops, no connection to end', () => {
        const m = machine();
        m.send({ type: 'connected' });
        m.waitAfter(signedOut);
        assert.deepEqual(m.elapse(), [{ type: 'reconnect' }]);
        assert.deepEqual(m.send({ type: 'prebind-failed' }), [{ ...SIGNED_OUT_STOP, disconnect: false }]);
    });

    for (const [what, pending] of [['a reconnect', () => dropped()], ['a refusal\'s reconnect', () => failed('not-authorized')]]) {
        test(`a sign-out while ${what} is pending replaces that wait: its timer does nothing`, () => {
            const m = machine();
            m.send({ type: 'connected' });
            const old = m.waitAfter(pending());
            const actions = m.send(signedOut);
            assert.deepEqual(types(actions), ['forget-outcome', 'wait']);
            assert.equal(actions[1].status, MESSAGES['signed-out']);
            assert.deepEqual(m.send({ type: 'timer', id: old.id }), []);
            assert.deepEqual(m.elapse(), [{ type: 'reconnect' }]);
            m.send(login);
            assert.deepEqual(m.send({ type: 'credentials', generation: m.state.generation, response: { status: 401 } }),
                [SIGNED_OUT_STOP]);
        });
    }

    test('a sign-out while credentials are awaited again (a fetch wait) replaces it too', () => {
        const m = machine();
        m.send(login);
        const old = m.waitAfter({ type: 'credentials', generation: 0, response: { status: 503 } });
        assert.deepEqual(types(m.send(signedOut)), ['forget-outcome', 'wait']);
        assert.deepEqual(m.send({ type: 'timer', id: old.id }), []);
        assert.deepEqual(m.elapse(), [{ type: 'reconnect' }]);
    });

    test('converse\'s second call for the same sign-out is ignored while its wait is pending', () => {
        const m = machine();
        m.waitAfter(signedOut);
        assert.deepEqual(m.send(dropped()), []);
        assert.deepEqual(m.send(signedOut), []);
    });

    test('a logout during the wait: nothing happens', () => {
        const m = machine();
        const w = m.waitAfter(signedOut);
        m.send({ type: 'logout' });
        assert.deepEqual(m.send({ type: 'timer', id: w.id }), []);
    });
});

describe('purity', () => {
    test('no clock, no randomness, no timers: the rules run with all three taken away', () => {
        const saved = { now: Date.now, random: Math.random, setTimeout: globalThis.setTimeout };
        const boom = () => { throw new Error('the rules read the clock, randomness or a timer'); };
        Date.now = boom;
        Math.random = boom;
        globalThis.setTimeout = boom;
        try {
            const m = machine({ token_reconnect_max_refusals: 2 }, { now: 5, random: 0.25 });
            m.send({ type: 'login', wanted: true, secure: true });
            m.waitAfter({ type: 'credentials', generation: 0, response: { error: 'timed out' } });
            m.elapse();
            m.send({ type: 'credentials', generation: 0, response: ok('a@b', 'P mac') });
            m.send({ type: 'connected' });
            m.waitAfter(dropped());
            m.elapse();
            m.waitAfter(failed('not-authorized'));
            m.elapse();
            m.send(failed('not-authorized'));
            m.send({ type: 'logout' });
        } finally {
            Date.now = saved.now;
            Math.random = saved.random;
            globalThis.setTimeout = saved.setTimeout;
        }
    });

    test('the same inputs give the same outputs; the input state is left as it was', () => {
        const run = () => {
            const m = machine({}, { random: 0.3 });
            const out = [];
            for (const event of [dropped(), { type: 'timer', id: 1 }, failed('not-authorized'), { type: 'timer', id: 2 },
                { type: 'connected' }, dropped(true)]) out.push(m.send(event));
            return out;
        };
        assert.deepEqual(run(), run());
        const before = initialState();
        const frozen = deepFreeze(initialState());
        step(frozen, dropped(), { random: 0 }); // throws if it writes to `frozen`
        assert.deepEqual(frozen, before);
    });

    test('an unknown event is a programming error', () => {
        assert.throws(() => step(initialState(), { type: 'reconect' }, {}), TypeError);
    });
});

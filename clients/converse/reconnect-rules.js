/**
 * token-reconnect's rules as a pure state machine: no converse.js, no Strophe, no timers, no clock,
 * no randomness. token-reconnect.js translates converse's events into the events below, reads the
 * clock and Math.random() once per event (`env.now`, `env.random`) and carries out the actions.
 *
 *   let state = initialState();
 *   ({ state, actions } = step(state, event, { settings, now, random }));
 *
 * `settings` holds the plugin's settings by name (DEFAULTS). Events:
 *   { type: 'login', wanted, secure }   converse's login; `wanted`: it has no password and
 *                                       authentication 'login' with a credentials_url
 *   { type: 'credentials', generation, response }   a credentials_url answer: { status, redirected,
 *                                       body } or { error } (a network error, a timeout, the hook's)
 *   { type: 'disconnected', condition, sent }   converse wants to reconnect; `condition`: the SASL
 *                                       condition (saslCondition), 'signed-out' (the web site's
 *                                       sign-out ended the session: streamErrorCondition),
 *                                       'client-refused', 'insecure-connection' or null; `sent`: a
 *                                       token went out
 *   { type: 'prebind-failed' }          prebind_url gave converse no session
 *   { type: 'connected' }               a session is established
 *   { type: 'timer', id }               the wait `id` is over (or was cancelled)
 *   { type: 'logout' }
 * Actions, carried out in order:
 *   { type: 'fetch', generation }       GET credentials_url, then a 'credentials' event
 *   { type: 'sign-in', jid, password }  log in with these
 *   { type: 'wait', id, ms, status }    show `status`, then after `ms` a 'timer' event with `id`
 *   { type: 'reconnect' } / { type: 'prebind' }   reconnect now / call prebind_url again
 *   { type: 'stop', reason, message, disconnect }   cancel any wait, show `message` (MESSAGES[reason]),
 *                                       and end the connection if `disconnect`
 *   { type: 'cancel' }                  cancel any wait (logout)
 *   { type: 'forget-outcome' }          the connection's recorded outcome was used: clear it
 *   { type: 'warn', text }              a line for the log
 */

/** What the user is shown when the plugin stops, by cause. */
export const MESSAGES = {
    'signed-out': 'You were signed out of the chat.',
    'credentials-expired': 'Chat sign-in failed: the chat server and this web site disagree on the time. '
        + 'Please tell the site administrator (the web site\'s clock or time zone is probably wrong).',
    'not-authorized': 'Chat sign-in failed: the chat server refused the sign-in from this web site. '
        + 'Please reload the page later, or tell the site administrator.',
    'otp-mismatch': 'Chat sign-in failed: this web site and the chat server are set up with different OTP seeds '
        + '(otp_seed), so the chat server does not accept the site\'s one-time codes. Please tell the site administrator.',
    'client-refused': 'Chat sign-in stopped: the chat server did not offer a sign-in method this page '
        + 'trusts, or could not prove it is the genuine server.',
    'credentials-refused': 'Chat sign-in failed: this web site did not issue a chat sign-in (HTTP %s). '
        + 'Are you still logged in to the site?',
    'credentials-reused': 'Chat sign-in stopped: this web site handed out a sign-in that was already used. '
        + 'Please tell the site administrator (is the credentials URL cached?).',
    'insecure-connection': 'Chat sign-in stopped: the chat server offers no sign-in on an insecure connection. '
        + 'Use wss:// (or https:// for BOSH) to reach it.',
    'insecure-page': 'Chat sign-in stopped: this page was not loaded over HTTPS, so a chat sign-in would cross '
        + 'the network in clear. Please open the site with https://.',
    other: 'Chat sign-in failed: the chat server refused the sign-in (%s). Please tell the site administrator.',
    attempts: 'Chat sign-in stopped: %s sign-ins in a row got no answer from the chat server. '
        + 'Please reload the page later.',
    prebind: 'Chat sign-in stopped: this web site could not open a chat session (%s attempts). '
        + 'Please reload the page later.',
};

/** Shown (as converse's "reconnecting" status) while the plugin waits. */
export const WAITING = {
    drop: 'The connection to the chat server was lost; reconnecting in %s s.',
    credentials: 'Could not get a chat sign-in from this web site (%s); trying again in %s s.',
    temporary: 'The chat server is busy; trying again in %s s.',
    refused: 'The chat server refused the sign-in; trying again with a new one in %s s.',
};

export const DEFAULTS = {
    token_reconnect_max_refusals: 3,
    token_reconnect_max_attempts: 10,
    token_reconnect_delay: 1000,
    token_reconnect_max_delay: 60000,
    token_reconnect_stable_after: 60000,
    token_credentials_timeout: 10000,
    // after a sign-out by the web site: one OTP step (30 s by default) and a second, so that the one
    // token fetched is of a later step than the sign-out, which Prosody accepts (docs/signout.md)
    token_signout_retry_delay: 31000,
};

/** Public parts of the last tokens fetched that are remembered (no secret halves kept). */
export const SEEN_MAX = 64;

export function format(template, ...args) {
    let i = 0;
    return template.replace(/%s/g, () => String(args[i++]));
}

/**
 * Upper half of min(max, base * 2^(n-1)) for n = 1, 2, 3, ...: `random` in [0, 1) picks the point
 * in that half, so that a server restart does not see every page come back in the same instant.
 */
export function backoffDelay(n, base, max, random) {
    const exp = Math.min(Math.max(n - 1, 0), 30);
    const ceiling = Math.min(max, base * 2 ** exp);
    return Math.round(ceiling * (0.5 + random / 2));
}

const seconds = (ms) => Math.max(1, Math.round(ms / 1000));

/**
 * The condition to act on from a server's SASL <failure/>: its condition element's name
 * (not-authorized when it has none), or 'otp-mismatch' for a not-authorized whose text names
 * otp_seed (mod_auth_hmac's wording for a genuine token with another seed's code).
 */
export function saslCondition(name, text) {
    const condition = name || 'not-authorized';
    if (condition === 'not-authorized' && /\botp_seed\b/.test(text || '')) return 'otp-mismatch';
    return condition;
}

/** The text of the stream error with which Prosody ends the sessions of a user the web site signed out (docs/signout.md). */
export const SIGNED_OUT_TEXT = 'Signed out by the web site';

/**
 * 'signed-out' for the stream error of a sign-out by the web site (condition not-authorized, text
 * SIGNED_OUT_TEXT), else null: any other stream error is a dropped connection.
 */
export function streamErrorCondition(name, text) {
    return name === 'not-authorized' && (text || '').trim() === SIGNED_OUT_TEXT ? 'signed-out' : null;
}

/**
 * A credentials_url answer as {ok: true, jid, password} or {ok: false, retry, why}: the web app's
 * rate limit (429), 5xx, a network error, a timeout and a body that is not {"jid", "password"} are
 * retried; any other 4xx and a redirect (typically the login page: the web session is gone) are not.
 */
export function credentialsResult(response) {
    if ('error' in response) return { ok: false, retry: true, why: response.error };
    const { status, redirected, body } = response;
    if (status === 429) return { ok: false, retry: true, why: 'HTTP 429, rate limited' };
    if (status >= 400 && status < 500) return { ok: false, retry: false, why: String(status) };
    if (redirected) return { ok: false, retry: false, why: 'a redirect' };
    if (status < 200 || status >= 300) return { ok: false, retry: true, why: `HTTP ${status}` };
    let data;
    try {
        data = JSON.parse(body);
    } catch {
        return { ok: false, retry: true, why: 'not JSON' };
    }
    if (typeof data?.jid !== 'string' || typeof data?.password !== 'string') {
        return { ok: false, retry: true, why: 'no jid and password' };
    }
    return { ok: true, jid: data.jid, password: data.password };
}

export function initialState() {
    return {
        refusals: 0, // tokens the server refused, in a row
        attempts: 0, // connections that sent a token and got no session, in a row
        drops: 0, // connections that failed before a token was sent (back-off only)
        credentialFailures: 0, // credentials_url failures (back-off)
        prebindFailures: 0, // prebind_url failures, in a row
        upSince: null, // when the current connection was established
        wait: null, // the pending wait: {id, kind, generation}; one at a time
        waits: 0, // ids handed out
        stopped: false,
        message: null, // why it stopped
        generation: 0, // bumped by stop and logout: work of an older generation gives up
        seen: [], // public parts of the last tokens fetched
        signedOut: false, // the web site signed the user out: one more sign-in is tried, no more
    };
}

/** One event in, the next state and the actions out. `state` is not modified. */
export function step(state, event, env) {
    const s = { ...state };
    const actions = [];
    const settings = { ...DEFAULTS, ...env?.settings };
    const delay = (n) => backoffDelay(n, Number(settings.token_reconnect_delay), Number(settings.token_reconnect_max_delay),
        env.random);
    const maxAttempts = Number(settings.token_reconnect_max_attempts);

    function stop(reason, message, disconnect = true) {
        s.stopped = true;
        s.generation += 1;
        s.message = message;
        s.wait = null;
        actions.push({ type: 'stop', reason, message, disconnect });
    }
    function tooMany(count, limit, reason, message, disconnect) {
        if (count < limit) return false;
        stop(reason, message, disconnect);
        return true;
    }
    function wait(kind, ms, status) {
        s.waits += 1;
        s.wait = { id: s.waits, kind, generation: s.generation };
        actions.push({ type: 'wait', id: s.waits, ms, status });
    }

    switch (event.type) {
    case 'login':
        if (s.stopped) { // a login after a stop (the form, or api.user.login) starts over
            s.stopped = false;
            s.message = null;
            s.refusals = s.attempts = s.prebindFailures = 0;
            s.signedOut = false;
        }
        if (!event.wanted) break;
        if (!event.secure) { // the token would come over the network in clear: not fetched at all
            stop('insecure-page', MESSAGES['insecure-page']);
            break;
        }
        actions.push({ type: 'fetch', generation: s.generation });
        break;

    case 'credentials': {
        if (event.generation !== s.generation) break;
        const result = credentialsResult(event.response);
        if (!result.ok) {
            if (s.signedOut) { // the one fetch after a sign-out failed: the user stays out
                stop('signed-out', MESSAGES['signed-out']);
                break;
            }
            if (!result.retry) {
                stop('credentials-refused', format(MESSAGES['credentials-refused'], result.why));
                break;
            }
            s.credentialFailures += 1;
            const ms = delay(s.credentialFailures);
            wait('fetch', ms, format(WAITING.credentials, result.why, seconds(ms)));
            break;
        }
        s.credentialFailures = 0;
        const pub = result.password.split(' ')[0];
        if (s.seen.includes(pub)) { // refused or used already: not sent again
            stop('credentials-reused', MESSAGES['credentials-reused']);
            break;
        }
        s.seen = [...s.seen, pub].slice(-SEEN_MAX);
        actions.push({ type: 'sign-in', jid: result.jid, password: result.password });
        break;
    }

    case 'disconnected': {
        if (s.stopped) break;
        if (event.condition === 'signed-out' && !s.signedOut) {
            // the web site signed the user out: shown at once, then one fresh sign-in (a web site that
            // still mints for the user lets them back; one that answers 4xx, or a refusal, leaves them
            // out). It replaces a wait already pending, whose timer then does nothing: that wait's
            // fetch would not know of the sign-out.
            actions.push({ type: 'forget-outcome' });
            s.signedOut = true;
            wait('reconnect', Number(settings.token_signout_retry_delay), MESSAGES['signed-out']);
            break;
        }
        if (s.wait) break;
        actions.push({ type: 'forget-outcome' });
        const { condition, sent } = event;
        const attemptsMessage = format(MESSAGES.attempts, maxAttempts);
        let ms;
        if (condition === 'client-refused' || condition === 'insecure-connection') {
            stop(condition, MESSAGES[condition]);
            break;
        } else if (s.signedOut) { // the one sign-in after a sign-out did not get the user back
            stop('signed-out', MESSAGES['signed-out']);
            break;
        } else if (condition === 'temporary-auth-failure') {
            if (tooMany(++s.attempts, maxAttempts, 'attempts', attemptsMessage)) break;
            ms = delay(s.attempts);
            wait('reconnect', ms, format(WAITING.temporary, seconds(ms)));
        } else if (condition) {
            const maxRefusals = Number(settings.token_reconnect_max_refusals);
            s.refusals += 1;
            actions.push({ type: 'warn', text: `the server refused a fresh token (${condition}), ${s.refusals} of ${maxRefusals}` });
            const reason = Object.hasOwn(MESSAGES, condition) ? condition : 'other';
            if (tooMany(s.refusals, maxRefusals, reason, format(MESSAGES[reason], condition))) break;
            if (tooMany(++s.attempts, maxAttempts, 'attempts', attemptsMessage)) break;
            ms = delay(s.refusals);
            wait('reconnect', ms, format(WAITING.refused, seconds(ms)));
        } else if (sent) { // a token went out and the connection ended without an answer
            if (tooMany(++s.attempts, maxAttempts, 'attempts', attemptsMessage)) break;
            ms = delay(s.attempts);
            wait('reconnect', ms, format(WAITING.drop, seconds(ms)));
        } else {
            if (s.upSince !== null && env.now - s.upSince >= Number(settings.token_reconnect_stable_after)) {
                s.drops = 0;
            }
            s.upSince = null;
            ms = delay(++s.drops);
            wait('reconnect', ms, format(WAITING.drop, seconds(ms)));
        }
        break;
    }

    case 'prebind-failed': {
        // converse gives up when prebind_url fails once; the web app may also be refusing its
        // token for good, so this stops after token_reconnect_max_attempts
        if (s.stopped || s.wait) break;
        if (s.signedOut) {
            stop('signed-out', MESSAGES['signed-out'], false);
            break;
        }
        if (tooMany(++s.prebindFailures, maxAttempts, 'prebind', format(MESSAGES.prebind, maxAttempts), false)) break;
        const ms = delay(s.prebindFailures);
        wait('prebind', ms, format(WAITING.credentials, 'prebind_url failed', seconds(ms)));
        break;
    }

    case 'timer': {
        const pending = s.wait;
        if (!pending || pending.id !== event.id) break; // cancelled by a stop or a logout
        s.wait = null;
        if (pending.generation !== s.generation || s.stopped) break;
        if (pending.kind === 'fetch') actions.push({ type: 'fetch', generation: s.generation });
        else actions.push({ type: pending.kind });
        break;
    }

    case 'connected':
        s.refusals = s.attempts = s.credentialFailures = s.prebindFailures = 0;
        s.signedOut = false;
        s.upSince = env.now;
        s.stopped = false;
        break;

    case 'logout':
        s.stopped = true;
        s.generation += 1;
        s.wait = null;
        actions.push({ type: 'cancel' });
        break;

    default:
        throw new TypeError(`unknown event ${event.type}`);
    }
    return { state: s, actions };
}

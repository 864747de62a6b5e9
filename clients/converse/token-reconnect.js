/**
 * token-reconnect: keeps converse.js 14 connected when it signs in with single-use tokens from
 * `credentials_url` (or attaches to sessions from `prebind_url`), so deployers can leave
 * `auto_reconnect: true` (docs: README, "converse.js").
 *
 *   import converse from 'converse.js';               // the stock converse.js 14 bundle
 *   import { addTokenReconnect } from 'prosody-auth-hmac-converse'; // this package (README.md)
 *   addTokenReconnect(converse);                      // before converse.initialize
 *   converse.initialize({
 *     whitelisted_plugins: ['token-reconnect'],
 *     authentication: 'login', auto_login: true, auto_reconnect: true,
 *     credentials_url: '/chat/credentials',
 *     token_reconnect_max_refusals: 3,                // optional; the defaults are below
 *     ...
 *   });
 *
 * What it changes:
 * - A dropped connection (server restart, network blip, a laptop waking up) is reconnected with a
 *   freshly fetched token after a back-off delay: `token_reconnect_delay` ms, doubled on each
 *   further failure up to `token_reconnect_max_delay`, each delay drawn from its upper half so
 *   that a server restart does not see every page come back in the same instant. converse.js
 *   alone reconnects after ~3 s forever.
 * - `credentials_url` is fetched with the same back-off when it fails (network error, timeout,
 *   HTTP 5xx, HTTP 429 (the web app's rate limit), a body that is not {"jid", "password"}), not
 *   every 2 s forever. Any other HTTP 4xx or a redirect (the web session is gone: the login page)
 *   stops and says so.
 * - On a page that is not a secure context (plain http:// from a name other than localhost)
 *   `credentials_url` is not fetched at all: its answer, the whole token, would cross the network
 *   in clear, and SASL-HMAC could not run there anyway. The plugin stops and says so.
 * - A token the server refuses is counted: after `token_reconnect_max_refusals` consecutive
 *   refusals of freshly fetched tokens the plugin stops and shows why, from the SASL condition in
 *   the server's <failure/> (Strophe hands converse none): `credentials-expired` means the web
 *   site's and the chat server's clocks disagree; `not-authorized` means the token is refused, and
 *   with a text that names `otp_seed` (mod_auth_hmac's `otp-mismatch`: the token is genuine but its
 *   one-time code matches no time near the server's clock) that the two have different OTP seeds.
 *   `temporary-auth-failure` (the server is overloaded) is retried with back-off.
 * - Every connection that sent a token (or its proof) and ended without a session counts towards
 *   `token_reconnect_max_attempts` (refusals, temporary failures, a server that drops the
 *   connection after <auth/>): a server that never lets the page in cannot make it fetch and send
 *   tokens forever. Connections that fail before anything was sent (the server is restarting) only
 *   back off.
 *   A failure the client itself decided (e.g. SASL-HMAC's server proof was wrong, or the server
 *   offers no mechanism this page will use) stops at once: retrying cannot help and must not
 *   fetch more tokens for a server that could not prove itself.
 * - A token the web site hands out a second time (e.g. a cached credentials_url response) is not
 *   sent: it was refused or used already. The plugin stops and says so.
 * - A connection that is not encrypted (a ws:// or http:// URL) to a server that offers no way to
 *   sign in on it (Prosody offers none on a session it does not consider secure; over WebSocket it
 *   logs "No stream features to offer on insecure session") stops at once and says to use wss://
 *   (or https:// for BOSH), instead of Strophe's "no-auth-mech" or a page left loading. A server
 *   that offers mechanisms, none of which this page uses, is still "no-auth-mech".
 * - The counters are reset once a connection is established; the back-off delay once one has
 *   stayed up for `token_reconnect_stable_after` ms.
 * - With `authentication: 'prebind'`, a failing `prebind_url` is retried with the same back-off
 *   (converse.js alone gives up after one failure), up to `token_reconnect_max_attempts` in a row.
 * - After a logout nothing is fetched or reconnected, also when the logout came during a wait.
 * - When the web site signs the user out (docs/signout.md: Prosody ends the session with the stream
 *   error not-authorized, "Signed out by the web site"), the plugin shows "You were signed out of
 *   the chat" and, after `token_signout_retry_delay` ms (an OTP step and a second: Prosody refuses the
 *   tokens of the sign-out's own step), fetches credentials once: if the web site still mints for the
 *   user and that sign-in succeeds, the user is back; if the web site answers 4xx (or anything but a
 *   token), or the sign-in fails, it stops and the message stays. It never loops.
 *
 * It works with or without the SASL-HMAC mechanism (sasl-hmac.js): it does not look at tokens.
 *
 * The rules above are reconnect-rules.js, a pure state machine with its tests in test/; this file
 * only translates converse's and Strophe's events for it, reads the clock and Math.random() for it,
 * and carries out what it decides.
 */

import * as rules from './reconnect-rules.js';
import { DEFAULTS, MESSAGES, saslCondition, streamErrorCondition, WAITING } from './reconnect-rules.js';

export const PLUGIN_NAME = 'token-reconnect';

export { DEFAULTS, MESSAGES, WAITING };

/** Upper half of min(max, base * 2^(n-1)): n = 1, 2, 3, ... */
export function backoffDelay(n, base, max) {
    return rules.backoffDelay(n, base, max, Math.random());
}

/**
 * The SASL condition of a <failure/> element (saslCondition), or 'client-refused' when the client
 * failed the exchange itself (Strophe passes no element then).
 */
function conditionOf(elem) {
    if (!elem) return 'client-refused';
    const children = Array.from(elem.children || []);
    const name = children.find((child) => child.localName !== 'text')?.localName;
    const text = children.find((child) => child.localName === 'text')?.textContent || '';
    return saslCondition(name, text);
}

const NS_STREAM = 'http://etherx.jabber.org/streams';

/** Whether the connection's URL (resolved against the page, as the browser does) is unencrypted. */
function unencrypted(conn) {
    try {
        const { protocol } = new URL(conn.service, globalThis.location?.href);
        return protocol === 'ws:' || protocol === 'http:';
    } catch {
        return false;
    }
}

/**
 * Whether the server's first answer offers no way to sign in at all: stream features without a SASL
 * mechanism or legacy login (what Prosody sends over BOSH on an unencrypted session, e.g. only
 * <starttls/>), or a stream ended with undefined-condition before any features (Prosody over
 * WebSocket: "No stream features to proceed with"). Prosody 13 sends that <stream:error> without
 * declaring its prefix, which Strophe cannot parse, so the raw text is read too.
 */
function offersNoSignIn(elem, raw) {
    if (elem?.getElementsByTagNameNS?.(NS_STREAM, 'features').length) {
        return elem.getElementsByTagName('mechanism').length === 0 && elem.getElementsByTagName('auth').length === 0;
    }
    const error = elem?.getElementsByTagNameNS?.(NS_STREAM, 'error')[0];
    if (error) return !!error.getElementsByTagName('undefined-condition').length;
    return typeof raw === 'string' && /^\s*<stream:error[\s>]/.test(raw) && /<undefined-condition[\s/>]/.test(raw);
}

/** 'signed-out' when `elem` holds the stream error of a sign-out by the web site (streamErrorCondition), else null. */
function signOutIn(elem) {
    const error = elem?.getElementsByTagNameNS?.(NS_STREAM, 'error')[0];
    if (!error) return null;
    const children = Array.from(error.children || []);
    const name = children.find((child) => child.localName !== 'text')?.localName;
    const text = children.find((child) => child.localName === 'text')?.textContent || '';
    return streamErrorCondition(name, text);
}

/**
 * Records on the connection that the web site signed the user out, for the reconnect decision.
 * Strophe reads a stream error's condition but drops its text: over WebSocket in
 * Websocket._checkStreamError (the connection then reports ERROR), over BOSH in
 * Connection._dataRecv (a <body type='terminate' condition='remote-stream-error'> holding the
 * <stream:error>; CONNFAIL). Both are read here before Strophe acts on them.
 */
function recordSignOuts(Strophe) {
    const ws = Strophe.Websocket?.prototype;
    if (ws?._onMessage && !ws._tokenReconnectDeclaresStream) {
        // Prosody 13 sends a stream error over WebSocket as text without declaring the stream:
        // prefix (0.12's stanza filter adds it); the browser's parser then fails, and the sign-out
        // reads as a dropped connection. The declaration is added before Strophe parses it.
        const onMessage = ws._onMessage;
        ws._onMessage = function (message) {
            const data = message?.data;
            if (typeof data === 'string' && /^\s*<stream:error[\s>]/.test(data) && !/^[^>]*\sxmlns:stream=/.test(data)) {
                message = { data: data.replace('<stream:error', `<stream:error xmlns:stream="${NS_STREAM}"`) };
            }
            return onMessage.call(this, message);
        };
        ws._tokenReconnectDeclaresStream = true;
    }
    if (ws?._checkStreamError && !ws._tokenReconnectSignOuts) {
        const check = ws._checkStreamError;
        ws._checkStreamError = function (bodyWrap, status) {
            if (this._conn && signOutIn(bodyWrap)) this._conn._tokenReconnectCondition = 'signed-out';
            return check.call(this, bodyWrap, status);
        };
        ws._tokenReconnectSignOuts = true;
    }
    const proto = Strophe.Connection?.prototype;
    if (proto?._dataRecv && !proto._tokenReconnectSignOuts) {
        const received = proto._dataRecv;
        proto._dataRecv = function (req, raw) {
            // BOSH hands over its request, whose XHR holds the response; WebSocket an element
            const elem = req?.xhr ? req.xhr.responseXML?.documentElement : req;
            if (signOutIn(elem)) this._tokenReconnectCondition = 'signed-out';
            return received.call(this, req, raw);
        };
        proto._tokenReconnectSignOuts = true;
    }
}

/**
 * A connection that is not encrypted to a server that offers no sign-in on it fails with a message
 * that says so. Left alone, Strophe calls it no-auth-mech over WebSocket (or fails on Prosody 0.12's
 * stream error and converse retries forever) and polls forever over BOSH.
 */
function nameInsecureConnections(Strophe) {
    const proto = Strophe.Connection?.prototype;
    if (!proto || proto._tokenReconnectNamesInsecure) return;
    const connectCb = proto._connect_cb;
    proto._connect_cb = function (req, callback, raw) {
        // WebSocket hands over the element; BOSH its request, whose XHR holds the response
        const elem = req?.xhr ? req.xhr.responseXML?.documentElement : req;
        if (unencrypted(this) && offersNoSignIn(elem, raw)) {
            console.error(`${PLUGIN_NAME}: ${this.service} is not encrypted, and the chat server offers no way to sign `
                + 'in on it (Prosody offers none on a session it does not consider secure). Reach it over wss:// (or '
                + "https:// for BOSH): Prosody's own https_ports, or an HTTPS proxy that sends X-Forwarded-Proto: https.");
            this._tokenReconnectCondition = 'insecure-connection';
            this._changeConnectStatus(Strophe.Status.CONNFAIL, MESSAGES['insecure-connection']);
            this._doDisconnect();
            return;
        }
        return connectCb.call(this, req, callback, raw);
    };
    proto._tokenReconnectNamesInsecure = true;
}

/**
 * Records, per connection, whether a token went out and how the attempt failed (the SASL condition
 * of the server's <failure/>, or 'client-refused'), for the reconnect decision. Strophe binds its
 * SASL handlers when it starts an exchange, so wrapping the prototype covers every connection.
 */
function recordFailureConditions(Strophe) {
    const proto = Strophe.Connection?.prototype;
    if (!proto || proto._tokenReconnectRecords) return;
    const failed = proto._sasl_failure_cb;
    proto._sasl_failure_cb = function (elem) {
        this._tokenReconnectCondition = conditionOf(elem);
        return failed.call(this, elem);
    };
    const attempt = proto._attemptSASLAuth;
    proto._attemptSASLAuth = function (mechanisms) {
        const started = attempt.call(this, mechanisms);
        if (started) this._tokenReconnectSent = true; // the token (or its proof) went to the server
        return started;
    };
    const change = proto._changeConnectStatus;
    proto._changeConnectStatus = function (status, condition, elem) {
        // an authentication failure without a <failure/> from the server is the client's own
        // decision (no mechanism it trusts, a server proof that did not match, legacy login refused)
        if (status === Strophe.Status.AUTHFAIL && !this._tokenReconnectCondition) {
            this._tokenReconnectCondition = 'client-refused';
        }
        return change.call(this, status, condition, elem);
    };
    proto._tokenReconnectRecords = true;
}

/** Registers the plugin with this converse (the stock bundle's default export). */
export function addTokenReconnect(converse) {
    if (converse.plugins?._tokenReconnectAdded) return;
    const { Strophe, log } = converse.env;
    recordFailureConditions(Strophe);
    recordSignOuts(Strophe);
    nameInsecureConnections(Strophe);
    converse.plugins.add(PLUGIN_NAME, {
        initialize() {
            const { _converse } = this;
            const { api } = _converse;
            api.settings.extend(DEFAULTS);
            const setting = (name) => Number(api.settings.get(name));
            // the rules' state (reconnect-rules.js); the clock and randomness are read here, once per event
            let state = rules.initialState();
            const dispatch = (event) => {
                const settings = Object.fromEntries(Object.keys(DEFAULTS).map((name) => [name, setting(name)]));
                const next = rules.step(state, event, { settings, now: Date.now(), random: Math.random() });
                state = next.state;
                return next.actions;
            };
            let timer = null;
            let wake = null;
            let watched = null;

            function cancelTimer() {
                if (timer) clearTimeout(timer);
                timer = null;
                const resolve = wake;
                wake = null;
                resolve?.();
            }

            /** Resolves after ms, or at once when the wait is cancelled (a stop, a logout). */
            function sleep(ms) {
                return new Promise((resolve) => {
                    wake = resolve;
                    timer = setTimeout(() => {
                        timer = null;
                        wake = null;
                        resolve();
                    }, ms);
                });
            }

            function waiting(message) {
                api.connection.get()?.setConnectionStatus(Strophe.Status.RECONNECTING, message);
                log.info(`${PLUGIN_NAME}: ${message}`);
            }

            /** Keeps the reason on the login form: the teardown after a stop reports more status changes. */
            function showStopped() {
                const feedback = _converse.state.connfeedback;
                if (!feedback || !state.stopped || !state.message || feedback.get('message') === state.message) return;
                feedback.set({ connection_status: Strophe.Status.DISCONNECTED, message: state.message });
            }

            function stop(conn, message) {
                cancelTimer();
                log.error(`${PLUGIN_NAME}: ${message}`);
                const feedback = _converse.state.connfeedback;
                if (feedback && feedback !== watched) {
                    feedback.on('change', showStopped);
                    watched = feedback;
                }
                if (conn) {
                    conn.disconnection_reason = message;
                    return Promise.resolve(conn.finishDisconnection()).then(showStopped);
                }
                showStopped();
            }

            /**
             * Carries out the rules' actions. A wait's end is dispatched back here, except when the
             * caller awaits it itself (the credentials loop): then the wait is returned to it.
             */
            function perform(actions, { awaitWaits = false } = {}) {
                let result = null;
                for (const action of actions) {
                    switch (action.type) {
                    case 'forget-outcome': {
                        const conn = api.connection.get();
                        delete conn._tokenReconnectCondition;
                        conn._tokenReconnectSent = false;
                        // converse keeps an AUTHFAIL cause until the next CONNECTED: a later drop
                        // must not read as a refusal
                        conn.setDisconnectionCause?.();
                        break;
                    }
                    case 'warn':
                        log.warn(`${PLUGIN_NAME}: ${action.text}`);
                        break;
                    case 'stop':
                        if (action.reason === 'insecure-page') {
                            console.error(`${PLUGIN_NAME}: this page is not a secure context (https://, or http://localhost), `
                                + 'so credentials_url is not fetched: the token would cross the network in clear.');
                        }
                        stop(action.disconnect ? api.connection.get() : null, action.message);
                        break;
                    case 'cancel':
                        cancelTimer();
                        break;
                    case 'wait': {
                        waiting(action.status);
                        const over = sleep(action.ms).then(() => dispatch({ type: 'timer', id: action.id }));
                        if (awaitWaits) result = over;
                        else over.then((next) => perform(next));
                        break;
                    }
                    case 'reconnect': {
                        const current = api.connection.get();
                        if (!current) break;
                        // Start from a clean transport: over BOSH a request of the old session (still
                        // open after a refused login, or in flight to a restarted server) would otherwise
                        // hold back the new session's first request, or carry the old sid.
                        current._proto?._abortAllRequests?.();
                        current.reset();
                        current.reconnect();
                        break;
                    }
                    case 'prebind':
                        api.user.login();
                        break;
                    case 'fetch':
                    case 'sign-in':
                        result = action;
                        break;
                    default:
                        throw new TypeError(`${PLUGIN_NAME}: unknown action ${action.type}`);
                    }
                }
                return result;
            }

            /** GET credentials_url once; resolves a 'credentials' event's response (never rejects). */
            function fetchOnce() {
                return new Promise((resolve) => {
                    const url = api.settings.get('credentials_url');
                    let xhr = new XMLHttpRequest();
                    xhr.open('GET', url, true);
                    xhr.setRequestHeader('Accept', 'application/json, text/javascript');
                    xhr.timeout = setting('token_credentials_timeout');
                    xhr.onload = () => resolve({
                        status: xhr.status,
                        // typically the web site's login page: the user's web session is gone
                        redirected: !!xhr.responseURL && xhr.responseURL !== new URL(url, location.href).href,
                        body: xhr.responseText,
                    });
                    xhr.onerror = () => resolve({ error: 'network error' });
                    xhr.ontimeout = () => resolve({ error: 'timed out' });
                    // the hook converse.js offers for its own request (e.g. to add a header)
                    Promise.resolve(api.hook('beforeFetchLoginCredentials', api.connection.get(), xhr)).then((x) => {
                        xhr = x || xhr;
                        xhr.send();
                    }, (error) => resolve({ error }));
                });
            }

            /** Fresh credentials, retried as the rules say; null once stopped or logged out meanwhile. */
            async function fetchCredentials(generation) {
                let next = { type: 'fetch', generation };
                while (next?.type === 'fetch') {
                    const response = await fetchOnce();
                    next = perform(dispatch({ type: 'credentials', generation: next.generation, response }),
                        { awaitWaits: true });
                    while (next instanceof Promise) next = perform(await next, { awaitWaits: true });
                }
                return next?.type === 'sign-in' ? next : null;
            }

            // converse's login, when it has no password: fetch one token per connection attempt
            api.listen.on('login', async (_, payload) => {
                const wanted = !(payload.success || payload.password || api.settings.get('authentication') !== 'login'
                    || !api.settings.get('credentials_url'));
                const start = perform(dispatch({ type: 'login', wanted, secure: !!globalThis.isSecureContext }));
                if (!wanted) return payload;
                if (start?.type !== 'fetch') return { ...payload, success: true };
                const generation = state.generation;
                const credentials = await fetchCredentials(generation);
                if (credentials && generation === state.generation) {
                    const conn = api.connection.get();
                    if (conn) {
                        delete conn._tokenReconnectCondition;
                        conn._tokenReconnectSent = false;
                    }
                    await api.user.login(credentials.jid, credentials.password, payload.automatic);
                }
                return { ...payload, success: true };
            });

            // converse calls this once or twice per drop (for the failure, then for the closed stream).
            // The delay replaces converse's own (a 3 s debounce once it is reconnecting).
            api.connection.reconnect = function () {
                const conn = api.connection.get();
                if (!conn) return;
                // what ended the last connection attempt: its SASL condition, or whether a token was sent
                perform(dispatch({ type: 'disconnected', condition: conn._tokenReconnectCondition || null,
                    sent: !!conn._tokenReconnectSent }));
            };

            // converse gives up for good when a connection fails before it was established (to
            // avoid looping on a wrong URL); while the server restarts that is every attempt.
            // With back-off a retry costs little, so those are retried too.
            const GIVE_UP = [Strophe.ErrorCondition?.NO_AUTH_MECH, 'host-unknown', 'remote-connection-failed', 'not-well-formed'];
            api.listen.on('connectionInitialized', () => {
                const conn = api.connection.get();
                if (!conn || conn._tokenReconnectPatched) return;
                const onDisconnected = conn.onDisconnected;
                conn.onDisconnected = function () {
                    if (api.settings.get('auto_reconnect') && !state.stopped && this.status === Strophe.Status.CONNECTING
                        && this.disconnection_cause !== Strophe.Status.AUTHFAIL && !GIVE_UP.includes(this.disconnection_reason)) {
                        return api.connection.reconnect();
                    }
                    return onDisconnected.call(this);
                };
                conn._tokenReconnectPatched = true;
            });

            api.listen.on('noResumeableBOSHSession', () => {
                if (api.settings.get('authentication') !== 'prebind') return;
                perform(dispatch({ type: 'prebind-failed' }));
            });

            const established = () => {
                perform(dispatch({ type: 'connected' }));
                const conn = api.connection.get();
                if (conn) conn._tokenReconnectSent = false;
            };
            api.listen.on('connected', established);
            api.listen.on('reconnected', established);
            api.listen.on('logout', () => perform(dispatch({ type: 'logout' })));
        },
    });
    converse.plugins._tokenReconnectAdded = true;
}

// The stock bundle loaded with a <script> tag sets window.converse: register right away.
if (globalThis.converse?.plugins?.add && globalThis.converse?.env?.Strophe) addTokenReconnect(globalThis.converse);

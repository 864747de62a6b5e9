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
 *
 * It works with or without the SASL-HMAC mechanism (sasl-hmac.js): it does not look at tokens.
 */

export const PLUGIN_NAME = 'token-reconnect';

/** What the user is shown when the plugin stops, by cause. */
export const MESSAGES = {
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
};

function format(template, ...args) {
    let i = 0;
    return template.replace(/%s/g, () => String(args[i++]));
}

/**
 * The SASL condition of a <failure/> element, or 'client-refused' when the client failed the
 * exchange itself (Strophe passes no element then), or 'otp-mismatch' for a `not-authorized` whose
 * text names otp_seed (the server's own wording for a genuine token with another seed's code).
 */
function conditionOf(elem) {
    if (!elem) return 'client-refused';
    const children = Array.from(elem.children || []);
    const condition = children.find((child) => child.localName !== 'text')?.localName || 'not-authorized';
    const text = children.find((child) => child.localName === 'text')?.textContent || '';
    if (condition === 'not-authorized' && /\botp_seed\b/.test(text)) return 'otp-mismatch';
    return condition;
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

/** Upper half of min(max, base * 2^(n-1)): n = 1, 2, 3, ... */
export function backoffDelay(n, base, max) {
    const exp = Math.min(Math.max(n - 1, 0), 30);
    const ceiling = Math.min(max, base * 2 ** exp);
    return Math.round(ceiling * (0.5 + Math.random() / 2));
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
    nameInsecureConnections(Strophe);
    converse.plugins.add(PLUGIN_NAME, {
        initialize() {
            const { _converse } = this;
            const { api } = _converse;
            api.settings.extend(DEFAULTS);
            const setting = (name) => Number(api.settings.get(name));
            const state = {
                refusals: 0, // tokens the server refused, in a row
                attempts: 0, // connections that sent a token and got no session, in a row
                drops: 0, // connections that failed before a token was sent (back-off only)
                credentialFailures: 0, // credentials_url / prebind_url failures (back-off)
                prebindFailures: 0, // prebind_url failures, in a row
                upSince: null,
                timer: null,
                wake: null,
                stopped: false,
                message: null,
                generation: 0, // bumped by stop and logout: async work of an older generation gives up
                seen: [], // public parts of the last tokens fetched (no secret halves kept)
            };
            const SEEN_MAX = 64;
            const delay = (n) => backoffDelay(n, setting('token_reconnect_delay'), setting('token_reconnect_max_delay'));
            const seconds = (ms) => Math.max(1, Math.round(ms / 1000));

            function cancelTimer() {
                if (state.timer) clearTimeout(state.timer);
                state.timer = null;
                const wake = state.wake;
                state.wake = null;
                wake?.();
            }

            function sleep(ms) {
                return new Promise((resolve) => {
                    state.wake = resolve;
                    state.timer = setTimeout(() => {
                        state.timer = null;
                        state.wake = null;
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
                state.stopped = true;
                state.generation += 1;
                state.message = message;
                cancelTimer();
                log.error(`${PLUGIN_NAME}: ${message}`);
                const feedback = _converse.state.connfeedback;
                if (feedback && feedback !== state.watched) {
                    feedback.on('change', showStopped);
                    state.watched = feedback;
                }
                if (conn) {
                    conn.disconnection_reason = message;
                    return Promise.resolve(conn.finishDisconnection()).then(showStopped);
                }
                showStopped();
            }

            /** GET credentials_url once; resolves {jid, password} or rejects with {retry, why}. */
            function fetchOnce() {
                return new Promise((resolve, reject) => {
                    const url = api.settings.get('credentials_url');
                    let xhr = new XMLHttpRequest();
                    xhr.open('GET', url, true);
                    xhr.setRequestHeader('Accept', 'application/json, text/javascript');
                    xhr.timeout = setting('token_credentials_timeout');
                    xhr.onload = () => {
                        if (xhr.status === 429) return reject({ retry: true, why: 'HTTP 429, rate limited' });
                        if (xhr.status >= 400 && xhr.status < 500) {
                            return reject({ retry: false, why: String(xhr.status) });
                        }
                        if (xhr.responseURL && xhr.responseURL !== new URL(url, location.href).href) {
                            // typically the web site's login page: the user's web session is gone
                            return reject({ retry: false, why: 'a redirect' });
                        }
                        if (xhr.status < 200 || xhr.status >= 300) {
                            return reject({ retry: true, why: `HTTP ${xhr.status}` });
                        }
                        let data;
                        try {
                            data = JSON.parse(xhr.responseText);
                        } catch {
                            return reject({ retry: true, why: 'not JSON' });
                        }
                        if (typeof data?.jid !== 'string' || typeof data?.password !== 'string') {
                            return reject({ retry: true, why: 'no jid and password' });
                        }
                        resolve({ jid: data.jid, password: data.password });
                    };
                    xhr.onerror = () => reject({ retry: true, why: 'network error' });
                    xhr.ontimeout = () => reject({ retry: true, why: 'timed out' });
                    // the hook converse.js offers for its own request (e.g. to add a header)
                    Promise.resolve(api.hook('beforeFetchLoginCredentials', api.connection.get(), xhr)).then((x) => {
                        xhr = x || xhr;
                        xhr.send();
                    }, reject);
                });
            }

            /** Fresh credentials, retried with back-off; null once stopped or logged out meanwhile. */
            async function fetchCredentials(generation) {
                while (generation === state.generation) {
                    let credentials;
                    try {
                        credentials = await fetchOnce();
                    } catch (e) {
                        if (generation !== state.generation) return null;
                        if (e?.retry === false) {
                            stop(api.connection.get(), format(MESSAGES['credentials-refused'], e.why));
                            return null;
                        }
                        const ms = delay(++state.credentialFailures);
                        waiting(format(WAITING.credentials, e?.why || e, seconds(ms)));
                        await sleep(ms);
                        continue;
                    }
                    if (generation !== state.generation) return null;
                    state.credentialFailures = 0;
                    const pub = credentials.password.split(' ')[0];
                    if (state.seen.includes(pub)) {
                        stop(api.connection.get(), MESSAGES['credentials-reused']);
                        return null;
                    }
                    state.seen.push(pub);
                    if (state.seen.length > SEEN_MAX) state.seen.shift();
                    return credentials;
                }
                return null;
            }

            // converse's login, when it has no password: fetch one token per connection attempt
            api.listen.on('login', async (_, payload) => {
                if (state.stopped) { // a login after a stop (the form, or api.user.login) starts over
                    state.stopped = false;
                    state.message = null;
                    state.refusals = state.attempts = state.prebindFailures = 0;
                }
                if (payload.success || payload.password || api.settings.get('authentication') !== 'login'
                    || !api.settings.get('credentials_url')) {
                    return payload;
                }
                if (!globalThis.isSecureContext) {
                    // the token would come over the network in clear: not fetched at all
                    console.error(`${PLUGIN_NAME}: this page is not a secure context (https://, or http://localhost), `
                        + 'so credentials_url is not fetched: the token would cross the network in clear.');
                    stop(api.connection.get(), MESSAGES['insecure-page']);
                    return { ...payload, success: true };
                }
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

            /** What ended the last connection attempt: its SASL condition, or whether a token was sent. */
            function outcome(conn) {
                const condition = conn._tokenReconnectCondition;
                const sent = !!conn._tokenReconnectSent;
                delete conn._tokenReconnectCondition;
                conn._tokenReconnectSent = false;
                // converse keeps an AUTHFAIL cause until the next CONNECTED: a later drop must not
                // read as a refusal
                conn.setDisconnectionCause?.();
                return { condition, sent };
            }

            function tooMany(conn, count, limit, message) {
                if (count < limit) return false;
                stop(conn, message);
                return true;
            }

            // converse calls this once or twice per drop (for the failure, then for the closed stream).
            // The delay replaces converse's own (a 3 s debounce once it is reconnecting).
            api.connection.reconnect = function () {
                const conn = api.connection.get();
                if (!conn || state.stopped || state.timer) return;
                const { condition, sent } = outcome(conn);
                const maxAttempts = setting('token_reconnect_max_attempts');
                const attemptsMessage = format(MESSAGES.attempts, maxAttempts);
                let ms;
                if (condition === 'client-refused' || condition === 'insecure-connection') {
                    return stop(conn, MESSAGES[condition]);
                } else if (condition === 'temporary-auth-failure') {
                    if (tooMany(conn, ++state.attempts, maxAttempts, attemptsMessage)) return;
                    ms = delay(state.attempts);
                    waiting(format(WAITING.temporary, seconds(ms)));
                } else if (condition) {
                    state.refusals += 1;
                    log.warn(`${PLUGIN_NAME}: the server refused a fresh token (${condition}), `
                        + `${state.refusals} of ${setting('token_reconnect_max_refusals')}`);
                    if (tooMany(conn, state.refusals, setting('token_reconnect_max_refusals'),
                        format(MESSAGES[condition] || MESSAGES.other, condition))) return;
                    if (tooMany(conn, ++state.attempts, maxAttempts, attemptsMessage)) return;
                    ms = delay(state.refusals);
                    waiting(format(WAITING.refused, seconds(ms)));
                } else if (sent) { // a token went out and the connection ended without an answer
                    if (tooMany(conn, ++state.attempts, maxAttempts, attemptsMessage)) return;
                    ms = delay(state.attempts);
                    waiting(format(WAITING.drop, seconds(ms)));
                } else {
                    if (state.upSince !== null && Date.now() - state.upSince >= setting('token_reconnect_stable_after')) {
                        state.drops = 0;
                    }
                    state.upSince = null;
                    ms = delay(++state.drops);
                    waiting(format(WAITING.drop, seconds(ms)));
                }
                const generation = state.generation;
                state.timer = setTimeout(() => {
                    state.timer = null;
                    const current = api.connection.get();
                    if (generation !== state.generation || state.stopped || !current) return;
                    // Start from a clean transport: over BOSH a request of the old session (still
                    // open after a refused login, or in flight to a restarted server) would otherwise
                    // hold back the new session's first request, or carry the old sid.
                    current._proto?._abortAllRequests?.();
                    current.reset();
                    current.reconnect();
                }, ms);
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

            // prebind: converse gives up when prebind_url fails once; the web app may also be
            // refusing its token for good, so this stops after token_reconnect_max_attempts
            api.listen.on('noResumeableBOSHSession', () => {
                if (api.settings.get('authentication') !== 'prebind' || state.stopped || state.timer) return;
                if (tooMany(null, ++state.prebindFailures, setting('token_reconnect_max_attempts'),
                    format(MESSAGES.prebind, setting('token_reconnect_max_attempts')))) return;
                const ms = delay(state.prebindFailures);
                waiting(format(WAITING.credentials, 'prebind_url failed', seconds(ms)));
                const generation = state.generation;
                state.timer = setTimeout(() => {
                    state.timer = null;
                    if (generation === state.generation && !state.stopped) api.user.login();
                }, ms);
            });

            const established = () => {
                state.refusals = state.attempts = state.credentialFailures = state.prebindFailures = 0;
                state.upSince = Date.now();
                state.stopped = false;
                const conn = api.connection.get();
                if (conn) conn._tokenReconnectSent = false;
            };
            api.listen.on('connected', established);
            api.listen.on('reconnected', established);
            api.listen.on('logout', () => {
                state.stopped = true;
                state.generation += 1;
                cancelTimer();
            });
        },
    });
    converse.plugins._tokenReconnectAdded = true;
}

// The stock bundle loaded with a <script> tag sets window.converse: register right away.
if (globalThis.converse?.plugins?.add && globalThis.converse?.env?.Strophe) addTokenReconnect(globalThis.converse);

// What both browser drivers share: Debian's Chromium launched headless (playwright-core, no browser
// download), and what a converse.js page shows.
//   HOST_RESOLVER_RULES (e.g. "MAP chat.test 127.0.0.1") is passed to Chromium, so a test can load a
//   page from a name of its choosing; TRUST_SPKI (base64 SHA-256 of a certificate's public key)
//   makes Chromium trust that certificate (the test proxy's self-signed one).
import { chromium } from 'playwright-core';

export function launchChromium() {
    return chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--disable-background-timer-throttling',
            '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
            ...(process.env.HOST_RESOLVER_RULES ? [`--host-resolver-rules=${process.env.HOST_RESOLVER_RULES}`] : []),
            ...(process.env.TRUST_SPKI ? [`--ignore-certificate-errors-spki-list=${process.env.TRUST_SPKI}`] : [])],
    });
}

/** Runs in the page (page.evaluate(pageState)): the roster, the login form's alert, the probe's view. */
export function pageState() {
    const roster = document.querySelector('converse-roster');
    const alert = document.querySelector('converse-login-form .alert, converse-login-panel .alert, .login-form .alert');
    const probe = window.chatProbe;
    return {
        roster: !!(roster && /\(me\)/.test(roster.innerText)),
        rosterText: roster ? roster.innerText.trim() : '',
        alert: alert ? alert.innerText.trim() : '',
        jid: probe ? probe.jid() : null,
        status: probe ? probe.status() : null,
        loaded: performance.timeOrigin, // changes only when the page is loaded again
    };
}

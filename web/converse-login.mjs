// Drives converse.js in Debian's headless Chromium (playwright-core, no browser download):
// opens the page, waits until converse shows the roster or its login error, takes a screenshot.
//   node converse-login.mjs URL SCREENSHOT [TIMEOUT_MS]
// HOST_RESOLVER_RULES (e.g. "MAP chat.test 127.0.0.1") is passed to Chromium, so a test can load the
// page from a name that is not a secure context.
// Prints one JSON line: {"outcome": "roster" | "login-error" | "timeout", "detail": ...}
import { chromium } from 'playwright-core';

const [url, screenshot, timeoutArg] = process.argv.slice(2);
const timeout = Number(timeoutArg || 25000);
const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        ...(process.env.HOST_RESOLVER_RULES ? [`--host-resolver-rules=${process.env.HOST_RESOLVER_RULES}`] : [])],
});
const consoleErrors = [];
let result;
try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.on('console', (m) => { if (m.text().includes('SASL')) consoleErrors.push(m.text()); });
    await page.goto(url);
    const deadline = Date.now() + timeout;
    while (!result && Date.now() < deadline) {
        result = await page.evaluate(() => {
            const roster = document.querySelector('converse-roster');
            if (roster && /\(me\)/.test(roster.innerText)) return { outcome: 'roster', detail: roster.innerText.trim() };
            const alert = document.querySelector('converse-login-form .alert, converse-login-panel .alert, .login-form .alert');
            if (alert && alert.innerText.trim()) return { outcome: 'login-error', detail: alert.innerText.trim() };
            return null;
        });
        if (!result) await page.waitForTimeout(200);
    }
    result = result || { outcome: 'timeout', detail: (await page.evaluate(() => document.body.innerText)).slice(0, 500) };
    await page.waitForTimeout(600); // let converse's fade-in finish before the picture
    await page.screenshot({ path: screenshot });
} finally {
    await browser.close();
}
result.console = consoleErrors;
console.log(JSON.stringify(result));

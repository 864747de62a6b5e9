// Drives converse.js in Debian's headless Chromium (playwright-core, no browser download):
// opens the page, waits until converse shows the roster or its login error, takes a screenshot.
//   node converse-login.mjs URL SCREENSHOT [TIMEOUT_MS]
// Chromium's environment variables: chromium.mjs.
// Prints one JSON line: {"outcome": "roster" | "login-error" | "timeout", "detail": ...}
import { launchChromium, pageState } from './chromium.mjs';

const [url, screenshot, timeoutArg] = process.argv.slice(2);
const timeout = Number(timeoutArg || 25000);
const browser = await launchChromium();
const consoleErrors = [];
let result;
try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.on('console', (m) => { if (/SASL|token-reconnect/.test(m.text())) consoleErrors.push(m.text()); });
    await page.goto(url);
    const deadline = Date.now() + timeout;
    while (!result && Date.now() < deadline) {
        const state = await page.evaluate(pageState);
        if (state.roster) result = { outcome: 'roster', detail: state.rosterText };
        else if (state.alert) result = { outcome: 'login-error', detail: state.alert };
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

// A long-lived headless Chromium (Debian's, through playwright-core) that the browser tests steer
// one JSON command per stdin line, so a test can act on the server (restart Prosody, close a
// session, take credentials_url down) while pages stay open. One JSON reply per command on stdout.
//   {"op": "open", "tab": "a", "url": "..."}           opens a tab (pages get their own storage)
//   {"op": "wait", "tab": "a", "for": "roster" | "login-error" | "offline", "timeout": ms}
//   {"op": "state", "tab": "a"}                         roster/alert/probe state now
//   {"op": "reload" | "close", "tab": "a"}
//   {"op": "send", "tab": "a", "to": "bob@host", "body": "hi"}   (needs &probe=1 on the page)
//   {"op": "logout", "tab": "a"}                    converse's api.user.logout() (&probe=1)
//   {"op": "screenshot", "tab": "a", "path": "x.png"}
//   {"op": "quit"}
// Chromium's environment variables: chromium.mjs.
import { createInterface } from 'node:readline';
import { launchChromium, pageState } from './chromium.mjs';

const browser = await launchChromium();
const tabs = new Map();

function reached(state, goal) {
    if (goal === 'roster') return state.roster && (state.jid !== null || state.status === null);
    if (goal === 'login-error') return !!state.alert && !state.roster;
    if (goal === 'offline') return state.jid === null;
    throw new Error(`unknown goal ${goal}`);
}

async function run(cmd) {
    const tab = tabs.get(cmd.tab);
    if (cmd.op === 'open') {
        // a context per tab: its own sessionStorage, as two browser tabs have
        const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
        const page = await context.newPage();
        const entry = { context, page, console: [], opened: Date.now() };
        page.on('console', (m) => {
            const text = m.text();
            if (process.env.CONSOLE_ALL || m.type() === 'error' || /SASL|token-reconnect/.test(text)) {
                entry.console.push(`${Date.now() - entry.opened} ${text}`);
            }
        });
        tabs.set(cmd.tab, entry);
        await page.goto(cmd.url);
        return {};
    }
    if (!tab && cmd.op !== 'quit') throw new Error(`no tab ${cmd.tab}`);
    switch (cmd.op) {
    case 'wait': {
        const started = Date.now();
        const deadline = started + (cmd.timeout || 25000);
        let state;
        for (;;) {
            state = await tab.page.evaluate(pageState).catch(() => ({ roster: false, alert: '', jid: null }));
            if (reached(state, cmd.for)) return { reached: true, ms: Date.now() - started, ...state, console: tab.console };
            if (Date.now() > deadline) return { reached: false, ms: Date.now() - started, ...state, console: tab.console };
            await tab.page.waitForTimeout(100);
        }
    }
    case 'state':
        return { ...(await tab.page.evaluate(pageState)), console: tab.console };
    case 'reload':
        await tab.page.reload();
        return {};
    case 'logout':
        await tab.page.evaluate(() => window.chatProbe.logout());
        return {};
    case 'send':
        await tab.page.evaluate(([to, body]) => window.chatProbe.send(to, body), [cmd.to, cmd.body]);
        return {};
    case 'screenshot':
        await tab.page.waitForTimeout(300); // converse fades views in
        await tab.page.screenshot({ path: cmd.path });
        return {};
    case 'close':
        await tab.context.close();
        tabs.delete(cmd.tab);
        return {};
    case 'quit':
        await browser.close();
        return { quit: true };
    default:
        throw new Error(`unknown op ${cmd.op}`);
    }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
    if (!line.trim()) continue;
    let reply;
    try {
        reply = { ok: true, ...(await run(JSON.parse(line))) };
    } catch (e) {
        reply = { ok: false, error: String(e?.message || e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
    if (reply.quit) break;
}
await browser.close().catch(() => {});

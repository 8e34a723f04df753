#!/usr/bin/env node
'use strict';

// Drives headless Chromium (Debian's chromium, through playwright-core) for
// t/510-browser.t and t/630-export-browser.t: opens a page of t/browser/www
// (index.html: analytics.js; ld.html: LaunchDarkly's browser SDK), served
// by nginx from an origin other than ldseg's, and runs scenarios in it.
//
//     node browser.js '{"chromium":"/usr/bin/chromium","timeout":60000,
//                       "scenarios":[{"name":"event","page":"http://...",
//                                     "run":"analytics","cfg":{...}},
//                                    {"name":"errors","page":"http://...",
//                                     "run":"fetch","cfg":{...}}]}'
//
// "analytics" runs window.ldsegAnalytics(cfg), "fetch" window.ldsegFetch(cfg)
// (t/browser/www/page.js), "launchdarkly" window.ldsegLaunchDarkly(cfg)
// (t/browser/www/ld.js).  Each scenario gets a fresh browser context (no
// cookies or storage from another).  Prints one line of JSON:
//
//     { chromium, playwright, results: { <name>: <what the page returned> },
//       hosts: [every host:port the browser requested],
//       console: [console errors and warnings, page errors], elapsedMs }
//
// Nothing may leave the machine: Chromium resolves no name but 127.0.0.1
// (--host-resolver-rules), and "hosts" lets the test check every request.

const { chromium } = require('playwright-core');
const playwright = require('playwright-core/package.json').version;

const cfg = JSON.parse(process.argv[2] || '{}');

// a scenario's "run": the page function it calls
const runs = {
    analytics: 'ldsegAnalytics',
    fetch: 'ldsegFetch',
    launchdarkly: 'ldsegLaunchDarkly',
};
const start = Date.now();

function bounded(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((resolve, reject) => {
            timer = setTimeout(() => reject(new Error(`${what}: timed out`
                                                      + ` after ${ms} ms`)),
                               ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

(async () => {
    const browser = await chromium.launch({
        executablePath: cfg.chromium || '/usr/bin/chromium',
        headless: true,
        timeout: 30000,
        args: [
            '--no-sandbox',                 // tests run as root
            '--disable-dev-shm-usage',
            '--disable-gpu',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        ],
    });

    const out = {
        chromium: browser.version(),
        playwright,
        results: {},
        hosts: [],
        console: [],
    };
    const hosts = new Set();

    try {
        for (const s of cfg.scenarios || []) {
            const context = await browser.newContext();
            const page = await context.newPage();

            page.on('request', (req) => {
                try {
                    hosts.add(new URL(req.url()).host);
                } catch (e) {
                    hosts.add(req.url());
                }
            });
            page.on('console', (m) => {
                if (m.type() === 'error' || m.type() === 'warning') {
                    out.console.push(`${s.name}: ${m.type()}: ${m.text()}`);
                }
            });
            page.on('pageerror', (e) => {
                out.console.push(`${s.name}: pageerror: ${e.message}`);
            });

            const fn = runs[s.run] || runs.analytics;

            // the page's scripts load in order: its function last
            await page.goto(s.page, { waitUntil: 'load', timeout: 20000 });
            await page.waitForFunction((f) => !!window[f], fn,
                                       { timeout: 20000 });

            out.results[s.name] = await bounded(
                page.evaluate(([f, c]) => window[f](c), [fn, s.cfg]),
                cfg.timeout || 60000, s.name);

            await context.close();
        }
    } finally {
        out.hosts = Array.from(hosts).sort();
        out.elapsedMs = Date.now() - start;
        await browser.close();
    }

    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
})().catch((e) => {
    process.stderr.write(`browser.js: ${e && e.stack || e}\n`);
    process.exit(2);
});

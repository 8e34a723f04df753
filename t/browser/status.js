#!/usr/bin/env node
'use strict';

// Opens ldseg's status page in headless Chromium (Debian's chromium, through
// playwright-core) for t/340-status-html.t, reads the numbers it shows and
// saves a screenshot:
//
//     node status.js '{"chromium":"/usr/bin/chromium","url":"http://...",
//                      "screenshot":"/path/status.png","timeout":30000}'
//
// Prints one line of JSON:
//
//     { chromium, title, totals: {name: number}, destinations:
//       {client_side_id: {name: number}}, kinds: {client_side_id: "kind
//       kind shown"}, chart: {name: number},
//       polylines, recent, errors, refresh, hosts: [every host:port
//       requested], console: [errors and warnings], elapsedMs }
//
// Nothing may leave the machine: Chromium resolves no name but 127.0.0.1,
// and "hosts" lets the test check that the page fetched nothing else.

const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.argv[2] || '{}');
const start = Date.now();

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

    const out = { chromium: browser.version(), hosts: [], console: [] };
    const hosts = new Set();

    try {
        const context = await browser.newContext({
            viewport: { width: 1280, height: 900 },
        });
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
                out.console.push(`${m.type()}: ${m.text()}`);
            }
        });
        page.on('pageerror', (e) => out.console.push(`pageerror: ${e}`));

        // a browser asks for text/html: no ?format= needed
        await page.goto(cfg.url, { waitUntil: 'load',
                                   timeout: cfg.timeout || 30000 });

        Object.assign(out, await page.evaluate(() => {
            const num = (el) => Number(el.textContent.trim());
            const r = { title: document.title, totals: {},
                        destinations: {}, kinds: {}, chart: {} };

            for (const td of document.querySelectorAll('#totals [data-k]')) {
                r.totals[td.dataset.k] = num(td);
            }
            for (const el of document.querySelectorAll('p [data-k]')) {
                if (el.dataset.k.startsWith('chart.')) {
                    r.chart[el.dataset.k.slice(6)] = num(el);
                } else {
                    r.totals[el.dataset.k] = num(el);
                }
            }
            for (const tr of document.querySelectorAll(
                                         '#destinations tr[data-id]')) {
                const d = {};
                for (const td of tr.querySelectorAll('[data-k]')) {
                    d[td.dataset.k] = num(td);
                }
                r.destinations[tr.dataset.id] = d;
                r.kinds[tr.dataset.id] = tr.dataset.kind + ' '
                    + tr.querySelector('[data-t="kind"]').textContent;
            }
            r.polylines = document.querySelectorAll('#chart polyline').length;
            r.recent = document.querySelectorAll('#recent tr').length - 1;
            r.errors = [...document.querySelectorAll('#errors tr')]
                           .slice(1).map((tr) => tr.textContent);
            const m = document.querySelector('meta[http-equiv="refresh"]');
            r.refresh = m ? m.content : null;
            return r;
        }));

        if (cfg.screenshot) {
            await page.screenshot({ path: cfg.screenshot, fullPage: true });
        }

        await context.close();
    } catch (e) {
        out.error = String(e && e.stack || e);
    } finally {
        await browser.close();
    }

    out.hosts = [...hosts].sort();
    out.elapsedMs = Date.now() - start;
    process.stdout.write(JSON.stringify(out) + '\n');
})().catch((e) => {
    process.stdout.write(JSON.stringify({ error: String(e && e.stack || e) })
                         + '\n');
    process.exit(1);
});

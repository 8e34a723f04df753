#!/usr/bin/env node
'use strict';

// Drives Segment's real server library, @segment/analytics-node, against
// ldseg for t/500-analytics-node.t.
//
//     node analytics-node.js '{"host":"http://127.0.0.1:8080","writeKey":"k",
//                              "prefix":"p","tracks":40,...}'
//
// Sends the calls the configuration asks for, waits for closeAndFlush()
// (and every call's callback), then prints one line of JSON to stdout:
//
//     { library, version, node, auth,          what the library is and sent
//       calls: [{ type, id, params, messageId }],   every call, as made
//       failed: [{ id, reason }],                   callbacks with an error
//       errors: [{ code, reason, id }],             'error' events
//       attempts: [{ at, ms, status, retryAfter, error, ids }],
//                                                   every HTTP request the
//                                                   library made
//       unfinished: [ids], closeTimedOut, elapsedMs }
//
// "id" is the value that becomes the LaunchDarkly event's "key": the event
// name of a track, the userId of an identify or alias (page and skipped
// identify calls get one too, for bookkeeping).
//
// Works with Debian bookworm's node 18 (CommonJS, no newer syntax).

const { Analytics, FetchHTTPClient } = require('@segment/analytics-node');
const { version } = require('@segment/analytics-node/package.json');

const cfg = JSON.parse(process.argv[2] || '{}');

const start = Date.now();
const prefix = cfg.prefix || 'node';
const ts0 = cfg.ts0 || Date.UTC(2024, 0, 2, 3, 4, 5, 0);
const pad = cfg.pad ? 'x'.repeat(cfg.pad) : null;

const calls = [];
const failed = [];
const errors = [];
const attempts = [];
const auth = {};

// the id of a message as the library serialized it

function idOf(m) {
    if (m.type === 'track') return m.event;
    if (m.type === 'page') return m.name;
    return m.userId;
}

// every HTTP request the library makes, and its answer

const base = new FetchHTTPClient();
const httpClient = {
    async makeRequest(req) {
        const a = { at: Date.now() - start, ids: [] };
        try {
            const body = JSON.parse(req.body);
            a.ids = (body.batch || []).map(idOf);
            const h = req.headers || {};
            const basic = Object.keys(h).some((k) =>
                k.toLowerCase() === 'authorization' && /^Basic /.test(h[k]));
            if (basic) auth.basic = true;
            if (body.writeKey) auth.body = true;
        } catch (e) {
            a.bodyError = String(e);
        }
        attempts.push(a);
        try {
            const res = await base.makeRequest(req);
            a.status = res.status;
            const ra = res.headers && typeof res.headers.get === 'function'
                ? res.headers.get('retry-after') : null;
            if (ra !== null && ra !== undefined) a.retryAfter = ra;
            a.ms = Date.now() - start - a.at;
            return res;
        } catch (e) {
            a.error = String(e && e.message || e);
            a.ms = Date.now() - start - a.at;
            throw e;
        }
    },
};

const analytics = new Analytics({
    writeKey: cfg.writeKey,
    host: cfg.host,
    path: cfg.path || '/v1/batch',
    flushAt: cfg.flushAt || 5,
    flushInterval: cfg.flushInterval || 100,
    maxRetries: cfg.maxRetries === undefined ? 3 : cfg.maxRetries,
    httpRequestTimeout: cfg.httpRequestTimeout || 10000,
    httpClient,
});

analytics.on('error', (err) => {
    errors.push({
        code: err && err.code,
        reason: String(err && err.reason && err.reason.message
                       || err && err.reason || err),
        id: err && err.ctx && err.ctx.event ? idOf(err.ctx.event) : null,
    });
});

const pending = new Set();
const done = [];

function call(type, id, params) {
    const c = { type, id, params };
    calls.push(c);
    pending.add(id);
    done.push(new Promise((resolve) => {
        analytics[type](params, (err, ctx) => {
            c.messageId = ctx && ctx.event && ctx.event.messageId;
            pending.delete(id);
            if (err) {
                failed.push({ id, reason: String(err && err.message || err) });
            }
            resolve();
        });
    }));
}

function ts(i) {
    return new Date(ts0 + i).toISOString();
}

// tracks: userId only, userId and anonymousId, anonymousId only; revenue a
// number, or a numeric string now and then

for (let i = 0; i < (cfg.tracks || 0); i++) {
    const id = `${prefix}-t-${i}`;
    const props = {
        revenue: i % 7 === 6 ? `${i}.75` : 10 + i / 4,
        i,
        plan: i % 2 ? 'pro' : 'free',
        tags: ['a', i, { nested: true }],
    };
    if (pad) props.pad = pad;
    const p = { event: id, properties: props, timestamp: ts(i) };
    if (i % 3 !== 2) p.userId = `${prefix}-u-${i}`;
    if (i % 3 !== 0) p.anonymousId = `${prefix}-a-${i}`;
    call('track', id, p);
}

for (let i = 0; i < (cfg.identifies || 0); i++) {
    const id = `${prefix}-id-${i}`;
    call('identify', id, {
        userId: id, anonymousId: `${prefix}-anon-${i}`,
        traits: { email: `${id}@example.com`, n: i },
        timestamp: ts(1000 + i),
    });
}

for (let i = 0; i < (cfg.aliases || 0); i++) {
    const id = `${prefix}-al-${i}`;
    call('alias', id, {
        userId: id, previousId: `${prefix}-prev-${i}`,
        timestamp: ts(2000 + i),
    });
}

// calls that map to no LaunchDarkly event

if (cfg.skipped) {
    call('page', `${prefix}-page`, {
        userId: `${prefix}-pu`, name: `${prefix}-page`,
        properties: { path: '/x' }, timestamp: ts(3000),
    });
    call('identify', `${prefix}-noanon`, {
        userId: `${prefix}-noanon`, traits: { a: 1 }, timestamp: ts(3001),
    });
}

const closeTimeout = cfg.closeTimeout || 30000;

function timeout(ms) {
    return new Promise((resolve) => {
        const t = setTimeout(() => resolve('timeout'), ms);
        t.unref();
    });
}

(async () => {
    const all = Promise.all([
        analytics.closeAndFlush({ timeout: closeTimeout }),
        Promise.all(done),
    ]).then(() => 'done');

    const how = await Promise.race([all, timeout(closeTimeout + 1000)]);

    process.stdout.write(JSON.stringify({
        library: '@segment/analytics-node',
        version,
        node: process.version,
        auth: Object.keys(auth).sort().join('+') || 'none',
        calls,
        failed,
        errors,
        attempts,
        unfinished: Array.from(pending),
        closeTimedOut: how !== 'done',
        elapsedMs: Date.now() - start,
    }) + '\n', () => process.exit(0));
})().catch((e) => {
    process.stderr.write(`analytics-node.js: ${e && e.stack || e}\n`);
    process.exit(2);
});

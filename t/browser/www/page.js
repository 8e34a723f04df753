/*
 * The page t/browser/browser.js drives in headless Chromium for
 * t/510-browser.t.  It is served from an origin other than ldseg's, with
 * Segment's analytics.js (@segment/analytics-next, its UMD bundle from npm)
 * loaded by index.html.
 *
 *     ldsegAnalytics(cfg)  loads analytics.js with its API host pointed at
 *                          ldseg, makes the calls below and waits until
 *                          ldseg has answered every request they cause
 *     ldsegFetch(cfg)      plain fetch()es to ldseg: what a page can read of
 *                          each answer (status, body, CORS header) or the
 *                          error fetch() rejects with
 *
 * Every request the page makes to ldseg is recorded by a wrapper around
 * window.fetch (analytics.js looks fetch up on every request): URL,
 * method, the exact body sent, and the answer as the page sees it.
 */

'use strict';

(function () {

    var sent = [];
    var realFetch = window.fetch.bind(window);

    window.fetch = function (input, init) {
        var url = typeof input === 'string' ? input : input.url;
        var rec = {
            url: url,
            method: String(init && init.method || 'GET').toUpperCase(),
            body: init && typeof init.body === 'string' ? init.body : null,
            headers: init && init.headers || {},
            at: Date.now()
        };

        sent.push(rec);

        return realFetch(input, init).then(function (res) {
            rec.status = res.status;
            rec.type = res.type;
            rec.retryAfter = res.headers.get('Retry-After');
            return res.clone().text().then(function (text) {
                rec.response = text;
                rec.done = Date.now();
                return res;
            }, function (e) {
                rec.readError = String(e);
                rec.done = Date.now();
                return res;
            });
        }, function (e) {
            rec.error = String(e && e.message || e);
            rec.done = Date.now();
            throw e;
        });
    };

    function sleep(ms) {
        return new Promise(function (resolve) { setTimeout(resolve, ms); });
    }

    function messagesIn(rec) {
        try {
            var b = JSON.parse(rec.body);
            return Array.isArray(b.batch) ? b.batch.length : 1;
        } catch (e) {
            return 1;
        }
    }

    /*
     * The calls: an anonymous visitor tracks, is identified (an alias
     * event), tracks again, views a page and joins a group (no event), is
     * aliased to a new id, and tracks with a numeric string, non-ASCII text
     * and nested properties.
     */

    function calls(analytics, p) {
        var c = [];

        c.push(analytics.track(p + 'Viewed Pricing',
                               { plan: 'pro', value: 3 }));
        c.push(analytics.identify(p + 'user-1',
                                  { email: 'u1@example.com', n: 1 }));
        c.push(analytics.track(p + 'Signed Up',
                               { revenue: 12.5, plan: 'pro',
                                 tags: ['a', 1, { nested: true }] }));
        c.push(analytics.page('Docs', p + 'Home', { section: 'intro' }));
        c.push(analytics.group(p + 'org-1', { name: 'Org One' }));
        c.push(analytics.alias(p + 'user-2'));
        c.push(analytics.track(p + 'Checkout \u00e9t\u00e9 \u2713',
                               { revenue: '42.25',
                                 'cl\u00e9': 'caf\u00e9 \ud83d\ude00',
                                 empty: {}, list: [] }));
        c.push(analytics.track(p + 'No Properties'));

        return c;
    }

    window.ldsegAnalytics = async function (cfg) {
        var t0 = Date.now();
        var segment = { apiHost: cfg.apiHost, protocol: 'http' };

        if (cfg.batching) {
            segment.deliveryStrategy = {
                strategy: 'batching',
                config: { size: cfg.batchSize || 3,
                          timeout: cfg.batchTimeout || 300 }
            };
        }

        var loaded = await window.AnalyticsNext.AnalyticsBrowser.load({
            writeKey: cfg.writeKey,

            /* what Segment's CDN would answer, inline: no settings fetch */
            cdnSettings: {
                integrations: {
                    'Segment.io': { apiKey: cfg.writeKey,
                                    apiHost: cfg.apiHost,
                                    protocol: 'http' }
                },
                metrics: { sampleRate: 0 }
            }
        }, {
            integrations: { 'Segment.io': segment }
        });

        var analytics = loaded[0];
        var failed = [];

        var ctxs = await Promise.all(calls(analytics, cfg.prefix || ''));

        ctxs.forEach(function (ctx) {
            var f = ctx.failedDelivery && ctx.failedDelivery();
            if (f) {
                failed.push({ type: ctx.event.type,
                              reason: String(f.reason && f.reason.message
                                             || f.reason) });
            }
        });

        /* until every call has reached ldseg and been answered */

        var want = ctxs.length;
        var deadline = Date.now() + (cfg.timeout || 20000);

        for (;;) {
            var api = sent.filter(function (r) {
                return r.url.indexOf(cfg.apiOrigin) === 0;
            });
            var answered = api.filter(function (r) { return r.done; });
            var n = 0;

            answered.forEach(function (r) {
                if (r.status !== undefined && r.status < 400) {
                    n += messagesIn(r);
                }
            });

            if ((n >= want && answered.length === api.length)
                || Date.now() > deadline)
            {
                break;
            }

            await sleep(50);
        }

        return {
            version: analytics.VERSION,
            calls: ctxs.map(function (ctx) {
                return { type: ctx.event.type,
                         messageId: ctx.event.messageId };
            }),
            failed: failed,
            requests: sent.filter(function (r) {
                return r.url.indexOf(cfg.apiOrigin) === 0;
            }),
            others: sent.filter(function (r) {
                return r.url.indexOf(cfg.apiOrigin) !== 0;
            }),
            elapsedMs: Date.now() - t0
        };
    };

    window.ldsegFetch = async function (cfg) {
        var out = [];

        for (var i = 0; i < cfg.requests.length; i++) {
            var q = cfg.requests[i];
            var r = { name: q.name };

            try {
                var res = await window.fetch(cfg.apiOrigin + q.path, {
                    method: q.method || 'POST',
                    headers: q.headers || {},
                    body: q.body
                });

                r.status = res.status;
                r.type = res.type;
                r.retryAfter = res.headers.get('Retry-After');
                r.body = await res.text();

            } catch (e) {
                r.error = e.name + ': ' + e.message;
            }

            out.push(r);
        }

        return out;
    };

})();

/*
 * The page t/browser/browser.js drives in headless Chromium for
 * t/630-export-browser.t, with LaunchDarkly's browser SDK
 * (launchdarkly-js-client-sdk, its UMD bundle from npm) loaded by ld.html.
 *
 *     ldsegLaunchDarkly(cfg)  initializes the SDK (flags and goals from
 *                             cfg.baseUrl, events to cfg.eventsUrl, no
 *                             streaming), evaluates cfg.flags, calls
 *                             track() for cfg.track, clicks the elements
 *                             of cfg.click, flushes the events and waits
 *                             until every request the SDK made has its
 *                             answer
 *
 * Every request the SDK makes goes through XMLHttpRequest, which is
 * wrapped here to record it: method, URL, the headers set and the exact
 * body sent, and the status of the answer.
 */

'use strict';

(function () {

    var sent = [];
    var proto = window.XMLHttpRequest.prototype;
    var open = proto.open;
    var setRequestHeader = proto.setRequestHeader;
    var send = proto.send;

    proto.open = function (method, url) {
        this.ldsegRecord = {
            method: String(method).toUpperCase(),
            url: String(url),
            headers: {},
            body: null,
            at: Date.now()
        };
        sent.push(this.ldsegRecord);
        return open.apply(this, arguments);
    };

    proto.setRequestHeader = function (name, value) {
        if (this.ldsegRecord) {
            this.ldsegRecord.headers[name] = String(value);
        }
        return setRequestHeader.apply(this, arguments);
    };

    proto.send = function (body) {
        var xhr = this;
        var rec = xhr.ldsegRecord;

        if (rec) {
            rec.body = typeof body === 'string' ? body : null;
            xhr.addEventListener('loadend', function () {
                rec.status = xhr.status;
                rec.done = Date.now();
            });
        }

        return send.apply(this, arguments);
    };

    function sleep(ms) {
        return new Promise(function (resolve) { setTimeout(resolve, ms); });
    }

    window.ldsegLaunchDarkly = async function (cfg) {
        var start = Date.now();
        var values = {};
        var client, i, deadline;

        client = window.LDClient.initialize(cfg.clientSideId, cfg.context, {
            baseUrl: cfg.baseUrl,
            eventsUrl: cfg.eventsUrl,
            streaming: false,
            // only the flush() below sends: one post, known to the test
            flushInterval: 600000
        });

        await client.waitForInitialization(5);
        await client.waitUntilGoalsReady();

        for (i = 0; i < cfg.flags.length; i++) {
            values[cfg.flags[i].key] = client.variation(cfg.flags[i].key,
                                                        cfg.flags[i].def);
        }

        for (i = 0; i < cfg.track.length; i++) {
            if (cfg.track[i].metricValue !== undefined) {
                client.track(cfg.track[i].key, cfg.track[i].data,
                             cfg.track[i].metricValue);
            } else {
                client.track(cfg.track[i].key, cfg.track[i].data);
            }
        }

        for (i = 0; i < cfg.click.length; i++) {
            document.querySelector(cfg.click[i]).click();
        }

        await client.flush();

        deadline = Date.now() + 10000;

        while (sent.some(function (r) { return r.done === undefined; })
               && Date.now() < deadline)
        {
            await sleep(50);
        }

        return {
            version: window.LDClient.version,
            url: window.location.href,
            values: values,
            requests: sent,
            elapsedMs: Date.now() - start
        };
    };

})();

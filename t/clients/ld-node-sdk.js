'use strict';

// Drives LaunchDarkly's Node.js server SDK (@launchdarkly/node-server-sdk,
// pinned in package.json) for t/620-export-node-sdk.t: flags come from its
// TestData source (no network), events go to cfg.eventsUri (nginx with
// ldseg_export).  Evaluates a flag with trackEvents (full feature events)
// and one without, tracks custom events with and without a metric value,
// identifies a context, flushes, closes, and prints one JSON line with what
// it did and any error the SDK logged.
//
// usage: node ld-node-sdk.js '{"eventsUri":"http://127.0.0.1:8080",
//                              "sdkKey":"sdk-...","user":"u-1"}'

const ld = require('@launchdarkly/node-server-sdk');

const cfg = JSON.parse(process.argv[2] || '{}');
const errors = [];

const logger = {
  error: (...a) => errors.push(a.join(' ')),
  warn: (...a) => errors.push(a.join(' ')),
  info: () => {},
  debug: () => {},
};

async function main() {
  const td = new ld.TestData();

  // trackEvents: every evaluation is sent as a full "feature" event
  await td.usePreconfiguredFlag({
    key: 'tracked-flag', version: 12, on: true, trackEvents: true,
    variations: ['control', 'treatment'], offVariation: 0,
    fallthrough: { variation: 1 }, salt: 's',
  });

  // no trackEvents: only counted in the summary event (not exported)
  await td.usePreconfiguredFlag({
    key: 'quiet-flag', version: 3, on: true,
    variations: [false, true], offVariation: 0,
    fallthrough: { variation: 1 }, salt: 's',
  });

  const client = ld.init(cfg.sdkKey, {
    updateProcessor: td.getFactory(),
    sendEvents: true,
    eventsUri: cfg.eventsUri,
    // never used with TestData; set so the SDK does not warn about them
    baseUri: cfg.eventsUri,
    streamUri: cfg.eventsUri,
    diagnosticOptOut: false,
    flushInterval: 60,
    logger,
  });

  await client.waitForInitialization({ timeout: 10 });

  const user = { kind: 'user', key: cfg.user, name: 'Node User' };
  const multi = {
    kind: 'multi',
    user: { key: cfg.user },
    org: { key: 'org-7', name: 'Org' },
  };

  const out = {};

  out.tracked = await client.variation('tracked-flag', user, 'default');
  out.detail = await client.variationDetail('tracked-flag', multi, 'dflt');
  out.quiet = await client.variation('quiet-flag', user, false);

  client.track('purchase', user, { sku: 'a-1', qty: 2 }, 49.5);
  client.track('signup', user);
  client.identify({ kind: 'user', key: cfg.user + '-new' });

  await client.flush();
  client.close();

  out.errors = errors;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ fatal: String(e), errors }) + '\n');
  process.exit(1);
});

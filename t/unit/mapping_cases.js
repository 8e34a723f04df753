// Generates t/unit/mapping_cases.json: subscription files (Segment's own
// format: name, subscribe, partnerAction, mapping) and messages, each set
// run through the reference oracle (Segment's destination code with
// actions-core's mapping-kit and destination-subscriptions' FQL):
//   node t/unit/mapping_cases.js > t/unit/mapping_cases.json
// expects the oracle in /tmp/oracle (shared/conformance/oracle + setup.sh).
// t/unit/test_mapping.c runs every case through ldseg's core and compares.
const {execFileSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const T = "2022-05-04T03:02:03.000Z";
const sets = [];
let cur = null;

function set(id, note, subscriptions, batch_context) {
  cur = {id, note, subscriptions, msgs: [], batch_context};
  sets.push(cur);
}
// what Segment's API passes on of a batch message: the batch's context when
// the message has none of its own (absent or null) and it is an object
function withBatchContext(body, c) {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return body;
  if (body.context !== undefined && body.context !== null) return body;
  return Object.assign({}, body, {context: c});
}
// one message: its type decides the endpoint (/v1/<type>)
function msg(body, over) {
  cur.msgs.push({body: Object.assign({timestamp: T}, body), over});
}
const tr = (o, over) => msg(Object.assign({type: "track", userId: "u1", anonymousId: "a1", event: "E"}, o), over);
const track = (name, subscribe, mapping) => ({name, subscribe, partnerAction: "trackEvent", mapping});
const alias = (name, subscribe, mapping) => ({name, subscribe, partnerAction: "aliasUser", mapping});
const base = (extra) => Object.assign({
  user_key: {"@path": "$.userId"},
  event_name: {"@path": "$.event"},
  timestamp: {"@path": "$.timestamp"}
}, extra);

// 1. the destination's presets, verbatim
const def = require('/tmp/oracle/ad/package/dist/destinations/launchdarkly').default;
set("presets", "the destination's presets", def.presets.map(p => ({name: p.name, subscribe: p.subscribe, partnerAction: p.partnerAction, mapping: p.mapping})));
tr({properties: {revenue: 9.5, value: 2, plan: "pro"}});
tr({userId: null, anonymousId: "anon-7", properties: {value: "12"}});
msg({type: "identify", userId: "u9", anonymousId: "a9", traits: {email: "x@y.z"}});
msg({type: "alias", userId: "u9", previousId: "p9"});
msg({type: "page", userId: "u9", name: "Home"});
msg({type: "identify", anonymousId: "a9"});

// 2. a custom track: organizations, a metric from a property, templates
set("custom-track", "context kind, additional keys, template event name, metric from a property", [
  track("Org events", 'type = "track"', {
    context_kind: "organization",
    user_key: {"@path": "$.properties.orgId"},
    additional_context_keys: {user: {"@path": "$.userId"}, device: {"@path": "$.context.device.id"}},
    event_name: {"@template": "{{event}}:{{properties.plan}}"},
    metric_value: {"@path": "$.properties.seats"},
    event_properties: {"@path": "$.context"},
    timestamp: {"@path": "$.timestamp"}
  })
]);
tr({properties: {orgId: "org-1", plan: "pro", seats: 12}, context: {device: {id: "d-1"}, locale: "en"}});
tr({properties: {orgId: 42, plan: ["a", "b"], seats: "7"}, context: {locale: "de"}});
tr({properties: {orgId: "org-2", seats: true}});
tr({properties: {plan: "free"}});                         // no orgId: refused
tr({properties: {orgId: ["o"], seats: [3]}});
tr({properties: {orgId: "o", seats: "many"}});            // invalid metric
tr({properties: {orgId: "o"}, context: [1, 2]});          // properties not an object

// 3. FQL: every operator, one subscription each, so multi-match order shows
const fqls = [
  'event = "Signed Up"', 'event != "Signed Up"', 'properties.value > 10', 'properties.value < 10',
  'properties.value <= 10', 'properties.value >= 10', 'contains(event, "Up")', 'match(event, "Sign*")',
  'match(event, "*Up")', '!contains(event, "Up")', 'properties.flag = true', 'properties.flag = false',
  'properties.gone = null', 'properties.gone != null', 'properties.value = 10', 'properties.value != 10',
  'traits.plan = "pro"', 'context.locale = "en-US"', 'userId = "u1"', 'name = "Home"',
  'type = "track" and (event = "A" or event = "B")', 'event = "A" or event = "B" and userId = "nobody"',
  "event = 'A'", 'properties.nested.deep = "x"', 'userId != null', 'contains(properties.tag, "ab")',
  'match(properties.tag, "*bc")', 'properties.value > "5"', 'constructor = 1 and event = "A"'
];
set("fql", "FQL operators", fqls.map((f, i) => track("F" + (i + 1), f, {
  user_key: {"@path": "$.userId"}, event_name: "F" + (i + 1) + ":" + f, timestamp: {"@path": "$.timestamp"}
})));
tr({event: "Signed Up", properties: {value: 10, flag: true, tag: "abc", nested: {deep: "x"}}, context: {locale: "en-US"}});
tr({event: "A", properties: {value: 3, flag: false, gone: 1, tag: "zabc"}});
tr({event: "B", userId: "u2", properties: {value: 11}});
tr({event: "Signed Upx", properties: {value: "10", gone: null}});
msg({type: "page", userId: "u1", name: "Home", properties: {value: 12}});
msg({type: "identify", userId: "u1", traits: {plan: "pro"}});

// 4. @if exists / blank, then / else
set("if", "@if exists and blank", [
  track("if", 'type = "track"', base({
    event_name: {"@if": {blank: {"@path": "$.properties.name"}, then: {"@path": "$.properties.name"}, else: "unnamed"}},
    context_kind: {"@if": {exists: {"@path": "$.properties.kind"}, then: {"@path": "$.properties.kind"}}},
    additional_context_keys: {
      e: {"@if": {exists: {"@path": "$.properties.e"}, then: "yes", else: "no"}},
      z: {"@if": {blank: {"@path": "$.properties.e"}, then: "nonblank", else: ""}}
    }
  }))
]);
tr({properties: {name: "n1", kind: "team", e: 0}});
tr({properties: {name: "", e: false}});
tr({properties: {name: [], e: []}});
tr({properties: {name: 0, e: null}});
tr({properties: {name: " ", e: [null]}});
tr({properties: {name: {a: 1}, e: "x"}});

// 5. @template
set("template", "@template, triple braces, values of every type", [
  track("tpl", 'type = "track"', base({
    event_name: {"@template": "{{event}}|{{ properties.n }}|{{properties.o}}|{{properties.a}}|{{properties.missing}}|{{{properties.t}}}|{{properties.b}}"},
    additional_context_keys: {whole: {"@template": "{{properties.a.1}}{{properties.s.length}}"}}
  }))
]);
tr({properties: {n: 1.5e21, o: {x: 1}, a: [1, [2, 3], null, {}], t: "{{event}}", b: false, s: "héllo"}});
tr({properties: {n: null, a: [], t: 5, s: ""}});
tr({event: "Ev \"q\" \\ é", properties: {n: -0, t: "{{{x}}}"}});

// 6. @literal with directives inside, raw objects and arrays
set("literal", "@literal and plain objects with directives inside", [
  track("lit", 'type = "track"', base({
    event_properties: {"@literal": {kept: {"@path": "$.properties.k"}, n: 1, list: [{"@path": "$.userId"}, "x", null], obj: {deep: {"@path": "$.properties.missing"}}}},
    context_kind: {"@literal": "account"},
    additional_context_keys: {"@literal": {session: {"@path": "$.properties.k"}}}
  }))
]);
tr({properties: {k: "v"}});
tr({properties: {k: [1, 2]}});

// 7. @case and @replace
set("case-replace", "@case lower/upper, @replace with global, ignorecase, pattern2 and $&", [
  track("cr", 'type = "track"', base({
    event_name: {"@case": {operator: "lower", value: {"@path": "$.event"}}},
    context_kind: {"@case": {operator: "upper", value: {"@path": "$.properties.kind"}}},
    additional_context_keys: {
      r1: {"@replace": {pattern: "a", replacement: "b", value: {"@path": "$.properties.s"}}},
      r2: {"@replace": {pattern: "A", replacement: "[$&]", ignorecase: true, global: false, value: {"@path": "$.properties.s"}}},
      r3: {"@replace": {pattern: ".", replacement: "$$", pattern2: "b", replacement2: "B", value: {"@path": "$.properties.s"}}},
      r4: {"@replace": {pattern: "1", value: {"@path": "$.properties.n"}}},
      r5: {"@replace": {pattern: "x", value: {"@path": "$.properties.missing"}}}
    }
  }))
]);
tr({event: "Mixed CASE", properties: {kind: "team", s: "a.b.A.c", n: 121}});
tr({event: "ÀÉÎ Straße", properties: {kind: "straße", s: "", n: true}});
tr({event: "x", properties: {kind: 5, s: "aaa"}});

// 8. @arrayPath
set("arraypath", "@arrayPath over arrays, objects and others", [
  track("ap", 'type = "track"', base({
    event_properties: {
      items: {"@arrayPath": ["$.properties.products", {sku: {"@path": "$.sku"}, q: {"@path": "$.quantity"}, ev: {"@path": "$.event"}}]},
      one: {"@arrayPath": ["$.properties.single", {id: {"@path": "$.id"}}]},
      raw: {"@arrayPath": ["$.properties.products"]},
      num: {"@arrayPath": ["$.properties.n", {id: {"@path": "$.id"}}]}
    }
  }))
]);
tr({properties: {products: [{sku: "s1", quantity: 2}, {sku: "s2"}, 7], single: {id: "x"}, n: 3}});
tr({properties: {products: [], single: null}});

// 9. @json
set("json", "@json encode and decode", [
  track("json", 'type = "track"', base({
    event_properties: {
      enc: {"@json": {mode: "encode", value: {"@path": "$.properties"}}},
      dec: {"@json": {mode: "decode", value: {"@path": "$.properties.text"}}},
      bad: {"@json": {mode: "decode", value: {"@path": "$.properties.notjson"}}},
      str: {"@json": {mode: "encode", value: {"@path": "$.properties.notjson"}}}
    }
  }))
]);
tr({properties: {text: "{\"a\":[1,2.50,{\"b\":null}],\"u\":\"\\u00e9\"}", notjson: "{oops", n: 1.0, e: 1e21}});
tr({properties: {text: "12", notjson: "\"quoted\"", nested: {"2": "two", "1": "one", z: "z"}}});

// 10. @flatten
set("flatten", "@flatten with a separator, with and without arrays", [
  track("flat", 'type = "track"', base({
    event_properties: {"@flatten": {separator: "_", value: {"@path": "$.properties"}}},
    additional_context_keys: {"@flatten": {separator: ".", omitArrays: true, value: {"@path": "$.properties.ctx"}}}
  }))
]);
tr({properties: {a: {b: 1, c: {d: "x"}}, list: [1, {k: 2}], ctx: {org: {id: "o1"}, arr: [1, 2]}}});
tr({properties: {"": {x: 1}, empty: {}, ctx: {}}});

// 11. @merge
set("merge", "@merge left and right", [
  track("mr", 'type = "track"', base({
    event_properties: {"@merge": {direction: "right", objects: [{"@path": "$.properties"}, {"@path": "$.context"}, {extra: "e", a: {"@path": "$.properties.missing"}}]}},
    additional_context_keys: {"@merge": {direction: "left", objects: [{"@path": "$.properties.keys"}, {org: "fallback", team: "t0"}]}}
  }))
]);
tr({properties: {a: 1, b: 2, keys: {org: "o1"}}, context: {b: 3, c: 4}});
tr({properties: {a: 1, keys: "notobj"}, context: "str"});

// 12. @excludeWhenNull
set("exclude", "@excludeWhenNull", [
  track("ex", 'type = "track"', base({
    event_properties: {
      a: {"@excludeWhenNull": {"@path": "$.properties.a"}},
      b: {"@excludeWhenNull": {"@path": "$.properties.b"}},
      o: {"@excludeWhenNull": {"@path": "$.properties.o"}}
    }
  }))
]);
tr({properties: {a: null, b: 0, o: {x: null, y: 1, z: {w: null}, l: [null]}}});
tr({properties: {o: null}});

// 13. additional_context_keys from the message, and the kind's key
set("context-keys", "additional_context_keys from an object of the message", [
  track("ck", 'type = "track"', base({
    context_kind: {"@path": "$.properties.kind"},
    additional_context_keys: {"@path": "$.properties.keys"}
  }))
]);
tr({properties: {kind: "user", keys: {org: "o1", user: "ignored", n: 5, b: true, z: null, l: [1, 2], o: {}}}});
tr({properties: {keys: "not an object"}});
tr({properties: {kind: {k: 1}}});
tr({properties: {kind: ["team"], keys: []}});
tr({properties: {kind: 7, keys: {"7": "same", "x": "y"}}});

// 14. metric_value coercions
set("metric", "metric_value coercions", [
  track("m", 'type = "track"', base({metric_value: {"@path": "$.properties.m"}}))
]);
for (const m of [5, "5", " 6 ", "0x10", true, false, null, "", [7], ["8"], [null], [1, 2], {}, "abc", 1e21, "1e3", -0.5])
  tr({properties: {m}});

// 15. aliasUser, custom
set("alias", "aliasUser with custom keys", [
  alias("al", 'type = "identify" or type = "alias"', {
    user_key: {"@path": "$.traits.email"},
    previous_key: {"@if": {exists: {"@path": "$.previousId"}, then: {"@path": "$.previousId"}, else: {"@path": "$.anonymousId"}}},
    timestamp: {"@path": "$.properties.when"}
  })
]);
msg({type: "identify", userId: "u", anonymousId: "a", traits: {email: "e@x"}});
msg({type: "identify", userId: "u", anonymousId: "a", traits: {}});
msg({type: "alias", userId: "u", previousId: "p", traits: {email: 12}, properties: {when: "2020-01-02T03:04:05Z"}});
msg({type: "alias", userId: "u", previousId: "p", traits: {}});
msg({type: "alias", userId: "u", previousId: {x: 1}, traits: {email: "e"}});
msg({type: "alias", userId: "u", previousId: "p", traits: {email: "e"}, properties: {when: "nope"}});

// 16. refusals of the action's schema
set("refusals", "what the destination refuses", [
  track("ref", 'type = "track"', base({
    event_name: {"@path": "$.properties.name"},
    event_properties: {"@path": "$.properties.props"},
    timestamp: {"@template": "{{properties.ts}}"}
  }))
]);
tr({properties: {name: "ok", props: {a: 1}, ts: "2021-01-01T00:00:00Z"}});
tr({properties: {name: {x: 1}}});
tr({properties: {name: "n", props: [1]}});
tr({properties: {name: "n", ts: "yesterday"}});
tr({properties: {name: "n", props: "str"}});
tr({properties: {name: "n"}});

// 17. paths: arrays, strings, falsy values on the way, the whole message
set("paths", "get() over arrays, strings, falsy values, and the whole message", [
  track("p", 'type = "track"', base({
    event_properties: {
      first: {"@path": "$.properties.products[0].sku"},
      dot: {"@path": "$.properties.products.1.price"},
      quoted: {"@path": "$.properties[\"products\"][0]"},
      len: {"@path": "$.properties.products.length"},
      chr: {"@path": "$.properties.s.1"},
      slen: {"@path": "$.properties.s.length"},
      zero: {"@path": "$.properties.zero.x"},
      empty: {"@path": "$.properties.e.x"},
      num: {"@path": "$.properties.one.x"},
      type: {"@path": "$.type"},
      anywhere: {"@path": "properties.$.s"}
    },
    additional_context_keys: {all: {"@path": "$."}}
  }))
]);
tr({properties: {products: [{sku: "s1"}, {price: 2.5}], s: "héllo😀", zero: 0, e: "", one: 1}});
tr({properties: {products: "abc", s: 5}});

// 18. several subscriptions match one message, one refuses it
set("multi", "several matches, in file order, one of them refusing", [
  track("first", 'type = "track"', base({event_name: "first"})),
  track("second", 'event = "Both"', base({event_name: "second", user_key: {"@path": "$.properties.who"}})),
  alias("third", 'type = "track" and event = "Both"', {user_key: {"@path": "$.userId"}, previous_key: {"@path": "$.anonymousId"}})
]);
tr({event: "Both", properties: {who: "w"}});
tr({event: "Both"});
tr({event: "Other"});
msg({type: "page", userId: "u"});

// 19. the README's example (conf/mappings.example.json)
set("readme", "the README's example file", JSON.parse(fs.readFileSync(path.join(__dirname, '../../conf/mappings.example.json'), 'utf8')));
tr({userId: "u1", event: "Plan Upgraded", properties: {orgId: "org-7", plan: "pro", seats: 12}, context: {library: {name: "analytics.js"}}});
tr({userId: "u1", event: "Plan Upgraded", properties: {plan: "pro"}});
tr({userId: "u2", event: "Checkout Completed", properties: {total: 30, products: [{sku: "a", quantity: 2}, {sku: "b"}]}});
tr({userId: "u2", event: "Checkout Completed", properties: {total: 0}});
msg({type: "identify", userId: "u3", anonymousId: "a3"});

// 20. a batch's context: every message without its own gets it, whole (no
// deep merge), wherever it is read: FQL, paths, templates, paths known per
// message, the whole message.  These cases run in batches only (test_mapping.c
// puts the context before and after the array); the oracle gets each message
// with the batch's context written into it.
const bctxSubs = [
  track("ctx", 'type = "track" and context.page.path = "/x"', base({
    event_name: {"@template": "{{event}}@{{context.page.title}}"},
    additional_context_keys: {ip: {"@path": "$.context.ip"}, plan: {"@path": "$.context.traits.plan"}},
    event_properties: {
      whole: {"@json": {mode: "encode", value: {"@path": "$."}}},
      flat: {"@flatten": {separator: ".", value: {"@path": "$.context"}}},
      dyn: {"@path": {"@template": "$.context.{{properties.which}}"}},
      tpl: {"@template": "{{{context.locale}}}"},
      merged: {"@merge": {direction: "right", objects: [{"@path": "$.context.page"}, {"@path": "$.properties"}]}}
    }
  })),
  track("any", 'type = "track"', base({event_name: "any", event_properties: {"@flatten": {separator: "_", value: {"@path": "$."}}}}))
];
// (a "context": null that nothing replaces makes the reference throw in
// audience-membership.js, so the second set leaves that message out)
const bctxMsgs = (replaced) => {
  tr({event: "NoCtx", properties: {which: "locale"}});
  if (replaced) tr({event: "NullCtx", context: null, properties: {which: "ip"}});
  tr({event: "OwnCtx", context: {page: {path: "/x", title: "Own"}}, properties: {which: "ip"}});
  tr({event: "OtherPage", context: {page: {path: "/y"}}});
  tr({event: "StrCtx", context: "s"});
  msg({type: "identify", userId: "u1", traits: {plan: "x"}});
};
set("batch-context", "a batch's context for the messages without their own", bctxSubs,
    '{"ip":"10.1.2.3","page":{"path":"/x","title":"T"},"traits":{"plan":"pro"},"locale":"en-GB","n":1e400}');
bctxMsgs(true);
set("batch-context-array", "a batch's context that is not an object is not given", bctxSubs, '[{"page":{"path":"/x"}}]');
bctxMsgs(false);

// ---------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ldseg-mapping-cases-'));
const out = {sets: []};
let n = 0;

for (const s of sets) {
  const file = path.join(tmp, s.id + '.json');
  fs.writeFileSync(file, JSON.stringify(s.subscriptions));
  // the batch's context as JSON text (JSON.parse() reads 1e400 as Infinity)
  const bc = (s.batch_context === undefined) ? undefined : JSON.parse(s.batch_context);
  const input = s.msgs.map(m => withBatchContext(m.body, bc));
  const res = JSON.parse(execFileSync('node', ['/tmp/oracle/oracle.js', 'CID', '--subscriptions', file],
    {input: JSON.stringify(input), env: Object.assign({}, process.env, {TZ: 'UTC'})}));
  const cases = s.msgs.map((m, i) => {
    const o = res[i];
    const events = o.requests.map(r => r.body[0]);
    let status = 200;
    if (o.error && events.length === 0) {
      // an identify the aliasUser action cannot alias is a skip for ldseg
      status = (m.body.type === 'identify' && /'(user_key|previous_key)'/.test(o.error)) ? 200 : 400;
    }
    // "the time of processing" (no timestamp mapped): the test's clock
    for (const e of events)
      if (typeof e.creationDate === 'number' && Math.abs(e.creationDate - Date.now()) < 600000) e.creationDate = "NOW";
    const c = {id: s.id + '.' + (i + 1), path: '/v1/' + m.body.type, raw: JSON.stringify(m.body), status, events};
    if (o.error) c.oracle_error = o.error;
    if (o.error && events.length) c.partial = true;
    if (m.over) Object.assign(c, m.over);
    n++;
    return c;
  });
  const o = {id: s.id, note: s.note, subscriptions: s.subscriptions, cases};
  if (s.batch_context !== undefined) o.batch_context = s.batch_context;
  out.sets.push(o);
}

fs.rmSync(tmp, {recursive: true});

// FQL strings: parsed by destination-subscriptions itself, valid or not
const {parseFql} = require('/tmp/oracle/node_modules/@segment/destination-subscriptions');
out.fql = [
  'type = "track"', 'type = "track" and event = "x"', 'type = "track" or type = "page"', 'event != "a"',
  'properties.x > 5', 'properties.x >= 5', 'properties.x < 5', 'properties.x <= 5', 'contains(event, "a")',
  'match(event, "a*")', '!contains(event, "a")', '!match(name, "*b")', '(type = "track")', 'userId = null',
  'userId != null', 'traits.a.b = true', 'context.page.path = "/"', "event = 'single'", 'properties.n = -1.5',
  'type = "track" and (event = "a" or event = "b")', 'event = "a" and (userId = "x")',
  'type', 'type =', '', '   ', 'type = "track', '(type = "track"', 'type = "track")', 'type = "a" and',
  'foo = "x"', 'foo = "x" and type = "track"', 'type == "track"', 'type = "track"and event = "x"',
  'type = 1.', 'type = 1..2', 'type <=5', 'userId!="a"', 'userId != "a"', 'type = "t" & event = "e"',
  '((type = "track"))', '()', 'type = "track" and ()', 'properties.\\. = 1', 'anonymousId = "a"',
  'anonymousId = "a" and type = "track"', 'contains(event', 'match(event, ', 'event = "a" or',
  'type = "track" or', 'constructor = 1', 'event = null', 'name = null', 'properties = 1', 'é = 1',
  'event = "é"', 'type = -', 'type = +5', 'and', 'or event = "x"', 'type = "x" and or event = "y"'
].map(f => ({fql: f, valid: !parseFql(f).error}));
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
process.stderr.write(`${out.sets.length} sets, ${n} cases\n`);

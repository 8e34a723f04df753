// Differential cases: seeded random but plausible Segment requests, with
// what Segment's own "LaunchDarkly (Actions)" destination (the reference
// oracle, see shared/conformance/README.md) makes of every message.
//
//   node t/differential/gen.js --seed S --count N [--oracle DIR] > cases.json
//
// N requests (single-message endpoints and batches); the oracle runs from
// DIR (default t/oracle, installed by t/oracle/setup.sh) with TZ=UTC.  Each
// case: {id, path, raw, status, messages: [{events, now, rule}]}: raw is
// the exact body, events what the reference sends for each message, now
// that creationDate is the time of processing, rule the deliberate
// difference of README.md ("Translation") the message falls under, whose
// expectation then replaces the reference's (rules.js).

'use strict';

const { execFileSync } = require('child_process');
const path = require('path');
const rules = require('./rules.js');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
};
const SEED = Number(opt('seed', '1'));
const COUNT = Number(opt('count', '1000'));
const ORACLE = path.resolve(opt('oracle', path.join(__dirname, '..', 'oracle')));

// mulberry32
let state = SEED >>> 0;
function rnd() {
  state = (state + 0x6D2B79F5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const chance = (p) => rnd() < p;
const pad = (n, w) => String(n).padStart(w, '0');

// values: plain JS values, {$num: token} for number spellings JSON.stringify
// cannot write, {$str: contents} for strings with chosen escapes
const N = (t) => ({ $num: t });
const S = (t) => ({ $str: t });

function ser(v) {
  if (v === null || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return JSON.stringify(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(ser).join(',') + ']';
  if (v.$num !== undefined) return v.$num;
  if (v.$str !== undefined) return '"' + v.$str + '"';
  if (v.$obj !== undefined) return '{' + v.$obj.map(([k, x]) => ser(k) + ':' + ser(x)).join(',') + '}';
  return '{' + Object.keys(v).map((k) => JSON.stringify(k) + ':' + ser(v[k])).join(',') + '}';
}
// an object with keys in this order, duplicates and "__proto__" allowed
const O = (pairs) => ({ $obj: pairs });

const words = ['u', 'user-42', 'Order Completed', 'Signed Up', 'ü', '日本語', 'e\u0301', 'a b', '',
  '😀', 'x'.repeat(40), 'plan', 'café'];
const escapes = ['\\u0000', '\\n', '\\"', '\\\\', '\\/', '\\u00e9', '\\ud83d\\ude00', '\\u2028', '\\t', 'a\\u0062c'];

function str() {
  if (chance(0.2)) return S(pick(['ab', '']) + pick(escapes) + pick(['', 'z']));
  return pick(words);
}

const numTokens = ['0', '-0', '1', '42', '-17', '3.5', '1e3', '1E-7', '123456789012345678901', '1.5e300',
  '2e308', '1e400', '-1e400', '5e-324', '1e-400', '0.1', '100', '9007199254740993', '-0.0', '12.50'];
function num() { return N(pick(numTokens)); }

function scalar() {
  switch (int(6)) {
    case 0: return num();
    case 1: return pick([true, false]);
    case 2: return null;
    default: return str();
  }
}

// most messages are what clients send; the rest try every corner
let wild = false;

function id() {
  if (!wild) return pick(['user-' + int(100), 'anon-' + int(100), 'ü' + int(9), '42', S('u\\u00e9' + int(9))]);
  switch (int(14)) {
    case 0: return num();
    case 1: return pick([true, false]);
    case 2: return null;
    case 3: return [scalar()];
    case 4: return [scalar(), scalar()];
    case 5: return [];
    case 6: return O([['a', 1]]);
    case 7: return O([[pick(['toString', S('\\u0074oString'), S('\\u0074\\u006f\\u0053\\u0074\\u0072\\u0069\\u006e\\u0067')]), str()]]);
    case 8: return '';
    case 9: return S(pick(['', 'u']) + pick(escapes));
    case 10: return pick(['  ', '0', '007', '1e3']);
    default: return pick(['user-' + int(100), 'anon-' + int(100), 'ü' + int(9), '42']);
  }
}

const numStrings = ['12.50', ' 42 ', '\n12\t', '1e3', '-0', '0x1A', '0X1a', '0b101', '0o17', '.5', '5.', '+5',
  '1_000', '12abc', 'NaN', 'Infinity', '-Infinity', '  ', '', '1e400', '\u00a012', '123456789012345678901234567890',
  '-0x10', '1e', '0.1'];
function metric() {
  if (!wild) return pick([N(String(int(1000))), N(int(100) + '.' + int(100)), String(int(100)), '12.50', N('0')]);
  switch (int(8)) {
    case 0: case 1: return num();
    case 2: case 3: return pick(numStrings);
    case 4: return pick([true, false, null]);
    case 5: return [pick([num(), pick(numStrings), null])];
    case 6: return pick([[], [1, 2], {}]);
    default: return N(String(int(1000)) + (chance(0.5) ? '.' + int(100) : ''));
  }
}

// timestamps: every form people send, valid and not
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
function ts() {
  const y = pick([1970, 1994, 2001, 2014, 2020, 2022, 2023, 2024, 2038, 2059]);
  const mo = 1 + int(12), d = 1 + int(28), h = int(24), mi = int(60), s = int(60), ms = int(1000);
  const Y = String(y), M = pad(mo, 2), D = pad(d, 2), H = pad(h, 2), I = pad(mi, 2), Sx = pad(s, 2);
  const off = pick(['+00:00', '-05:00', '+05:30', '+01:00', '-08:00', '+14:00']);
  const offc = off.replace(':', '');
  switch (wild ? int(40) : int(4)) {
    case 0: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${pad(ms, 3)}Z`;
    case 1: return `${Y}-${M}-${D}T${H}:${I}:${Sx}Z`;
    case 2: return `${Y}-${M}-${D}T${H}:${I}:${Sx}${off}`;
    case 3: return `${Y}-${M}-${D}T${H}:${I}:${Sx}${offc}`;
    case 4: return `${Y}-${M}-${D}T${H}:${I}:${Sx}`;
    case 5: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${pad(ms, 3)}`;
    case 6: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${int(100)}`;
    case 7: return `${Y}-${M}-${D}`;
    case 8: return `${Y}-${M}-${D} ${H}:${I}:${Sx}`;
    case 9: return `${Y}-${M}-${D}T${H}:${I}Z`;
    case 10: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${pad(ms, 3)}${pick(['123', '456789', ''])}Z`;
    case 11: return `${DAY[int(7)]}, ${D} ${MON[mo - 1]} ${Y} ${H}:${I}:${Sx} ${pick(['GMT', 'UT', 'UTC', 'Z', '+0200', '-0500', 'EST', 'PDT', '+0000'])}`;
    case 12: return `${D} ${MON[mo - 1]} ${Y} ${H}:${I}:${Sx} ${pick(['+0200', '-0700', 'GMT'])}`;
    case 13: return `${DAY[int(7)]} ${MON[mo - 1]} ${D} ${Y} ${H}:${I}:${Sx} GMT${pick(['+0100', '-0800', '+0000', '+0530'])}${pick(['', ' (Central European Standard Time)'])}`;
    case 14: return `${Y}${M}${D}`;
    case 15: return `${Y}${M}${D}T${H}${I}${Sx}Z`;
    case 16: return `${Y}${M}${D}${H}${I}`;
    case 17: return `+00${Y}-${M}-${D}T${H}:${I}:00Z`;
    case 18: return `${Y}-${M}-${D}T`;
    case 19: return `${Y}/${M}/${D}`;
    case 20: return `${Y}/${M}/${D} ${H}:${I}:${Sx}`;
    case 21: return `${Y}-${pad(1 + int(365), 3)}`;
    case 22: return String(1000000000 + int(900000000));
    case 23: return `00${pad(int(100), 2)}-${M}-${D}${pick(['', 'T10:00:00', 'T10:00:00Z', ' 10:00 +01:00'])}`;
    case 24: return pick(['May 4 2022', 'now', 'yesterday', `${MON[mo - 1]} ${d}, ${Y}`, `${mo}/${d}/${Y}`, `${D}.${M}.${Y}`]);
    case 25: return pick(['', 'bad', '2022-13-45T99:99:99Z', '2022-05-04T03:02:03+25:00', '2022-02-30T00:00:00Z',
      '2022-05-04T24:00:00Z', '2022-05-04T24:00:01Z', 'T10:00', '10:00:00', '2022-05-04T03:02:03.Z', 'Z', '-1', '123']);
    case 26: return N(String(1400000000000 + int(1e12)));
    case 27: return pick([null, true, false, [], {}, 0, N('1e400'), N('-1.5')]);
    case 28: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${pad(ms, 3)}${off}`;
    case 29: return `${Y}-${mo}-${d}`;
    case 30: return `${Y}-${M}-${D}t${H}:${I}:${Sx}z`;
    case 31: return `${Y}-${M}-${D}T${H}Z`;
    case 32: return `${Y}-${M}`;
    case 33: return Y;
    case 34: return `${DAY[int(7)]}, ${D} ${MON[mo - 1]} ${Y} ${H}:${I} GMT`;
    case 35: return `${Y}-${M}-${D} ${H}:${I}:${Sx} ${pick(['Z', 'GMT', '+01:00', 'UTC'])}`;
    case 36: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${pad(ms, 3)}+${pad(int(24), 2)}${pad(int(60), 2)}`;
    case 37: return `${Y}-${M}-${D} ${H}:${I}`;
    case 38: return S(`${Y}-${M}-${D}T${H}:${I}:${Sx}\\u005a`);
    default: return `${Y}-${M}-${D}T${H}:${I}:${Sx}.${pad(ms, 3)}Z`;
  }
}

function value(depth) {
  if (depth > 2 || chance(0.6)) return chance(0.3) ? num() : scalar();
  if (chance(0.5)) {
    const a = [];
    for (let i = int(4); i > 0; i--) a.push(value(depth + 1));
    return a;
  }
  return props(depth + 1);
}

const propKeys = ['plan', 'total', 'currency', 'items', 'ü', 'a b', 'nested', 'big', 'x', 'id', 'toString', 'constructor'];
function props(depth) {
  const pairs = [];
  for (let i = int(5); i > 0; i--) pairs.push([pick(propKeys), value(depth)]);
  if (depth === 0) {
    if (chance(0.5)) pairs.push(['revenue', metric()]);
    if (chance(0.3)) pairs.push(['value', metric()]);
  }
  const proto = pick(['__proto__', S('\\u005f_proto__'),
    S('\\u005f\\u005f\\u0070\\u0072\\u006f\\u0074\\u006f\\u005f\\u005f')]);
  if (chance(0.08)) pairs.splice(int(pairs.length + 1), 0, [proto, pick([O([['x', 1]]), 5, null, 'p', []])]);
  if (chance(0.1)) pairs.push([pick(['huge', 'deep']), N(pick(['2e308', '1e400', '-1e999', '1.7976931348623157e308']))]);
  return O(uniqueKeys(pairs));
}
function uniqueKeys(pairs) {
  const seen = new Set();
  return pairs.filter(([k]) => (seen.has(k) ? false : (seen.add(k), true)));
}

const TYPES = ['track', 'track', 'track', 'track', 'identify', 'identify', 'alias', 'page', 'screen', 'group'];

// one message: [key, value] pairs, without "type"
function message(type) {
  wild = chance(0.5);
  const m = [];
  const has = (p) => chance(p);
  if (has(0.85)) m.push(['userId', id()]);
  if (has(0.6)) m.push(['anonymousId', id()]);
  if (type === 'alias' || has(0.1)) m.push(['previousId', id()]);
  if (type === 'track' || has(0.05)) {
    m.push(['event', !wild || chance(0.7) ? pick(['Order Completed', 'Signed Up', 'Plan Changed', 'ü event', 'e' + int(50)]) : id()]);
  }
  if (type === 'group' || has(0.03)) m.push(['groupId', id()]);
  if (type === 'page' || type === 'screen') m.push(['name', str()]);
  if (type !== 'identify' && type !== 'alias' ? has(0.85) : has(0.1)) m.push(['properties', chance(0.93) ? props(0) : pick([null, '', 'x', 5, [1], []])]);
  if (type === 'identify' && has(0.5)) m.push(['traits', O([['email', 'a@b.c'], ['plan', str()]])]);
  if (has(0.9)) m.push(['timestamp', ts()]);
  if (has(0.3)) m.push(['messageId', 'm-' + int(1e9)]);
  if (has(0.2)) m.push(['context', O([['ip', '1.2.3.4'], ['library', O([['name', 'x'], ['version', '1']])]])]);
  if (has(0.05)) m.push(['extra', value(0)]);
  for (let i = m.length - 1; i > 0; i--) { const j = int(i + 1); [m[i], m[j]] = [m[j], m[i]]; }
  return m;
}

const typeSpell = (t) => chance(0.1) ? S(t.slice(0, -1) + '\\u00' + t.charCodeAt(t.length - 1).toString(16)) : t;

const requests = [];
for (let r = 0; r < COUNT; r++) {
  if (chance(0.15)) {
    const msgs = [];
    for (let i = 1 + int(5); i > 0; i--) {
      const t = pick(TYPES);
      const m = message(t);
      m.splice(int(m.length + 1), 0, ['type', typeSpell(t)]);
      msgs.push({ type: t, pairs: m });
    }
    const raw = ser(O([['batch', msgs.map((x) => O(x.pairs))]]));
    requests.push({ path: '/v1/' + pick(['batch', 'import', 'b']), raw, msgs, batch: true });
  } else {
    const t = pick(TYPES);
    const m = message(t);
    if (chance(0.1)) m.splice(int(m.length + 1), 0, ['type', pick(TYPES)]);
    const ep = { track: ['track', 't'], identify: ['identify', 'i'], alias: ['alias', 'a'], page: ['page', 'p'],
      screen: ['screen', 's'], group: ['group', 'g'] }[t];
    requests.push({ path: '/v1/' + pick(ep), raw: ser(O(m)), msgs: [{ type: t, pairs: m }], batch: false });
  }
}

// the oracle sees each message as the destination does: the endpoint's
// (or the batch message's) type, its own fields as parsed from the body,
// less what Segment's API drops before any destination: an empty-string
// userId, anonymousId or previousId is absent
const IDS = ['userId', 'anonymousId', 'previousId'];
const api = (pairs) => pairs.filter(([k, v]) => !(IDS.includes(k) && v === ''));
const all = [];
for (const r of requests) for (const m of r.msgs) all.push(m);
const oracleIn = '[' + all.map((m) => ser(O(api(m.pairs).filter(([k]) => k !== 'type').concat([['type', m.type]])))).join(',') + ']';
const t0 = Date.now();
const out = JSON.parse(execFileSync('node', [path.join(ORACLE, 'oracle.js'), 'CLIENT-SIDE-ID'],
  { input: oracleIn, env: Object.assign({}, process.env, { TZ: 'UTC' }), maxBuffer: 1 << 30 }));
const t1 = Date.now();

const isNow = (ev) => ev.creationDate >= t0 - 5000 && ev.creationDate <= t1 + 5000;

// the rules; messages whose timestamp is read as written run again with
// that time in ISO 8601
const ruled = all.map((m, i) => rules.classify(m.type, JSON.parse(ser(O(m.pairs))),
  { events: out[i].requests.map((q) => q.body[0]), error: out[i].error }));
const again = [];
all.forEach((m, i) => {
  if (ruled[i] && ruled[i].timestamp !== undefined) {
    again.push(i);
    ruled[i].input = ser(O(api(m.pairs).filter(([k]) => k !== 'type' && k !== 'timestamp')
      .concat([['timestamp', new Date(ruled[i].timestamp).toISOString()], ['type', m.type]])));
  }
});
const out2 = again.length === 0 ? [] : JSON.parse(execFileSync('node', [path.join(ORACLE, 'oracle.js'), 'CLIENT-SIDE-ID'],
  { input: '[' + again.map((i) => ruled[i].input).join(',') + ']', env: Object.assign({}, process.env, { TZ: 'UTC' }), maxBuffer: 1 << 30 }));
again.forEach((i, j) => { ruled[i].expect = { events: out2[j].requests.map((q) => q.body[0]), error: out2[j].error }; });

let k = 0;
const cases = requests.map((r, ri) => {
  const messages = r.msgs.map((m) => {
    const o = out[k];
    const rule = ruled[k++];
    let res = { events: o.requests.map((q) => q.body[0]), error: o.error };
    if (rule) res = Object.assign(res, rule.expect, { rule: rule.name });
    const now = res.events.length > 0 && res.events.every(isNow);
    return { type: m.type, events: res.events, now, rule: res.rule || null, error: res.error || null };
  });
  let status;
  if (r.batch) {
    status = 200;
  } else {
    const m = messages[0];
    // page, screen and group send nothing, but ldseg checks their ids,
    // properties and timestamp as Segment's API does; identify without
    // usable ids is a message with no event
    status = m.error ? 400 : 200;
    if (m.type === 'page' || m.type === 'screen' || m.type === 'group' || (m.type === 'identify' && m.error)) status = [200, 400];
  }
  return { id: `s${SEED}-${ri + 1}`, path: r.path, raw: r.raw, status, messages };
});

process.stdout.write('[\n' + cases.map((c) => JSON.stringify(c)).join(',\n') + '\n]\n');

// The deliberate differences from Segment's destination (README.md,
// "Translation"), as rules over a message: classify() returns the rule a
// message falls under, if any, with the expectation that replaces the
// reference's: "expect" (the result itself) or "timestamp" (the time the
// message's timestamp denotes: the expectation is then the reference's
// result for the message with that time written in ISO 8601).  Each rule is written from the README's wording, not from
// ldseg's code: a mismatch that no rule covers is a defect.

'use strict';

// dayjs' loose pattern (dayjs/esm/constant.js REGEX_PARSE): the reference
// reads a string with it unless the string ends with "Z"
const DAYJS = /^(\d{4})[-/]?(\d{1,2})?[-/]?(\d{0,2})[Tt\s]*(\d{1,2})?:?(\d{1,2})?:?(\d{1,2})?[.:]?(\d+)?$/;

// the forms of that pattern ldseg reads (README): a separated date
// (YYYY[-M[-D]], "-" or "/", 1-2 digits), or a run-together YYYYMM[DD]
// (2 digits each, in range); a time after a separated date needs a T or
// white space; time pieces not separated by ":" are 2 digits each
const SEPARATED = /^\d{4}(?:[-/]\d{1,2}(?:[-/]\d{1,2})?)?(?:[Tt\s]+(?:\d{1,2}(?::\d{1,2}(?::\d{1,2})?)?|\d{2}(?:\d{2}(?:\d{2})?)?)?(?:[.:]\d+)?)?$/;
const SEPARATED_NOTIME = /^\d{4}(?:[-/]\d{1,2}(?:[-/]\d{1,2})?)?$/;
const TOGETHER = /^\d{4}(\d{2})(\d{2})?(?:[Tt\s]*(?:\d{1,2}(?::\d{1,2}(?::\d{1,2})?)?|\d{2}(?:\d{2}(?:\d{2})?)?)(?:[.:]\d+)?|[Tt\s]*)$/;

function looseReadable(s) {
  if (SEPARATED.test(s) || SEPARATED_NOTIME.test(s)) return true;
  const m = TOGETHER.exec(s);
  if (!m) return false;
  const mo = Number(m[1]), d = m[2] === undefined ? 1 : Number(m[2]);
  return mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
}

// an explicit zone in a string JavaScript's legacy parser reads
const LEGACY_ZONE = /(?:\b(?:z|ut|utc|gmt|[ecmp][sd]t)\b|\d\s*[+-]\d{1,4}\b|[+-]\d{2}:\d{2})/i;

const ES5 = /^(?:[+-]\d{6}|\d{4})(?:-\d{2}(?:-\d{2})?)?(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

const reject = (why) => ({ events: [], error: why });

function timestampRule(t) {
  if (typeof t !== 'string' || t === '') return null;
  const ends = /z$/i.test(t);
  const m = ends ? null : DAYJS.exec(t);

  if (m) {
    if (!looseReadable(t)) {
      return { name: 'timestamp_digits', expect: reject('not a date') };
    }
    const y = Number(m[1]);
    const frac = m[7];
    if (y < 100 || (frac !== undefined && frac.length < 3)) {
      // read as written: the year as its four digits, a fraction as a
      // decimal fraction of a second
      const dt = new Date(0);
      dt.setUTCFullYear(y, (Number(m[2]) || 1) - 1, Number(m[3]) || 1);
      dt.setUTCHours(Number(m[4]) || 0, Number(m[5]) || 0, Number(m[6]) || 0,
        frac === undefined ? 0 : Math.floor(Number('0.' + frac) * 1000 + 1e-9));
      return { name: y < 100 ? 'timestamp_year_as_written' : 'timestamp_decimal_fraction', timestamp: dt.getTime() };
    }
    return null;
  }

  if (ends && ES5.test(t)) return null;
  if (!ends && ES5.test(t)) return null;

  // the legacy parser
  if (!LEGACY_ZONE.test(t)) {
    return { name: 'timestamp_legacy_zoneless', expect: reject('zone-less legacy date') };
  }
  const w = /^00(\d{2})-(\d{2})-(\d{2}) (\d{2}):(\d{2}) ([+-])(\d{2}):?(\d{2})$/.exec(t);
  if (w) {
    const dt = new Date(0);
    dt.setUTCFullYear(Number(w[1]), Number(w[2]) - 1, Number(w[3]));
    dt.setUTCHours(Number(w[4]), Number(w[5]), 0, 0);
    const off = (w[6] === '-' ? -1 : 1) * (Number(w[7]) * 60 + Number(w[8]));
    return { name: 'timestamp_year_as_written', timestamp: dt.getTime() - off * 60000 };
  }
  return null;
}

// JavaScript's Number() of the metric the preset picks, as ajv coerces it
function metricOf(p) {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return undefined;
  let v = (p.revenue !== undefined && p.revenue !== null) ? p.revenue : p.value;
  if (Array.isArray(v) && v.length === 1) v = v[0];
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') return Number(v);
  return undefined;
}

function hasProto(v) {
  if (Array.isArray(v)) return v.some(hasProto);
  if (v === null || typeof v !== 'object') return false;
  return Object.prototype.hasOwnProperty.call(v, '__proto__');
}

exports.classify = function (type, msg, res) {
  if (type === 'page' || type === 'screen' || type === 'group') return null;

  if (type === 'track' && hasProto(msg.anonymousId)) {
    return { name: 'identity_proto', expect: reject('__proto__ in an identity') };
  }

  // a refusal wins over a rule that reads a value differently
  const r = timestampRule(msg.timestamp);
  const refused = r && (r.name === 'timestamp_digits' || r.name === 'timestamp_legacy_zoneless');
  if (refused) return r;

  if (type === 'track') {
    const v = metricOf(msg.properties);
    if (v === Infinity || v === -Infinity) {
      return { name: 'infinite_metric', expect: reject('metric is not finite') };
    }
  }
  return r;
};


/*
 * Copyright (C) ldseg authors
 *
 * Segment messages to LaunchDarkly events, reproducing Segment's
 * "LaunchDarkly (Actions)" destination (presets "Track Event" and "Alias
 * User") and its classic one.  The reference maps fields, drops null and
 * "" values, then validates with ajv's coerceTypes "array"; the id, event
 * name and metric rules below are those coercions.  Values are copied as
 * their raw JSON tokens wherever the reference keeps them unchanged, so
 * escapes (even \u0000) and number spellings survive.
 *
 * An event is at most its message's size plus LDSEG_EVENT_SLACK: tokens
 * are copied at most once (a metric token of more than LDSEG_NUMBER_LEN
 * bytes, which "data" holds already, is written as its shortest number),
 * a number grows by at most LDSEG_NUMBER_LEN bytes, and the one value
 * that can grow faster than that, an identity stringified the JavaScript
 * way ([{},{}] becomes "[object Object],[object Object]"), is bounded by
 * LDSEG_MAX_IDENTITY: a message with a longer one is rejected with
 * "invalid_identity", found in one pass that stops at the bound.
 */


#include <math.h>
#include <string.h>

#include <ldseg_number.h>
#include <ldseg_translate.h>
#include <ldseg_value.h>
#include <ldseg_mapping_run.h>


/* longest string we coerce to a number or read as a timestamp */
#define LDSEG_TRANSLATE_STR_MAX  1024


typedef enum {
    LDSEG_ID_MISSING = 0,
    LDSEG_ID_OK,
    LDSEG_ID_INVALID
} ldseg_id_e;


typedef struct {
    char                         *p;         /* NULL: count only */
    size_t                        n;
} ldseg_out_t;


/* the identities whose String() is bounded, and what a reject says */
typedef struct {
    ldseg_segment_field_e         slot;
    const char                   *message;
} ldseg_identity_t;


static int ldseg_exists(const ldseg_json_val_t *v);
static ldseg_id_e ldseg_translate_id(const ldseg_json_val_t *v,
    ldseg_json_val_t *id);
static ldseg_rc_t ldseg_translate_time(const ldseg_json_val_t *v,
    const ldseg_options_t *opt, ldseg_event_t *ev);
static void ldseg_translate_pipeline(const ldseg_segment_msg_t *m,
    const ldseg_options_t *opt, ldseg_event_t *ev);
static void ldseg_refuse(ldseg_event_t *ev, ldseg_reason_e reason,
    const char *message);
static ldseg_rc_t ldseg_translate_metric(const ldseg_json_val_t *v,
    ldseg_event_t *ev);
static ldseg_rc_t ldseg_translate_number_string(const ldseg_json_val_t *v,
    double *d);
static void ldseg_reject(ldseg_event_t *ev, ldseg_reason_e reason,
    const char *message);
static void ldseg_skip(ldseg_event_t *ev, ldseg_reason_e reason,
    const char *message);
static void ldseg_out(ldseg_out_t *o, const char *s, size_t len);
static void ldseg_out_id(ldseg_out_t *o, const ldseg_json_val_t *id);
static void ldseg_out_number(ldseg_out_t *o, double v);
static void ldseg_out_int(ldseg_out_t *o, int64_t v);
static ldseg_rc_t ldseg_out_js_string(ldseg_out_t *o,
    const ldseg_json_val_t *v, size_t max);
static ldseg_rc_t ldseg_out_js_array(ldseg_out_t *o, const char *p,
    const char *end, size_t limit);
static int ldseg_js_object_throws(const char *p);
static int ldseg_js_key_is(const char *p, const char *end, const char *name,
    size_t len);
static const char *ldseg_out_data(ldseg_out_t *o, const char *p,
    const char *end);
static ldseg_rc_t ldseg_translate_identities(const ldseg_segment_msg_t *m,
    ldseg_endpoint_e type, ldseg_event_t *ev);


#define ldseg_out_lit(o, s)  ldseg_out(o, s, sizeof(s) - 1)


static const ldseg_identity_t  ldseg_identities[] = {
    { LDSEG_F_USER_ID, "\"userId\" is longer than 1024 bytes as a string" },
    { LDSEG_F_ANONYMOUS_ID,
      "\"anonymousId\" is longer than 1024 bytes as a string" },
    { LDSEG_F_PREVIOUS_ID,
      "\"previousId\" is longer than 1024 bytes as a string" },
    { LDSEG_F_GROUP_ID, "\"groupId\" is longer than 1024 bytes as a string" }
};


static int
ldseg_exists(const ldseg_json_val_t *v)
{
    /* mapping-kit's "exists": neither missing nor null */
    return v->type != LDSEG_JSON_NONE && v->type != LDSEG_JSON_NULL;
}


/*
 * A string field after removeEmptyValues() and ajv: null and "" are
 * missing; numbers and booleans become strings; a one-element array is
 * unwrapped once if its element is a scalar ([null] gives "").
 */

static ldseg_id_e
ldseg_translate_id(const ldseg_json_val_t *v, ldseg_json_val_t *id)
{
    const char        *p;
    ldseg_json_val_t   e, e2;

    switch (v->type) {

    case LDSEG_JSON_NONE:
    case LDSEG_JSON_NULL:
        return LDSEG_ID_MISSING;

    case LDSEG_JSON_STRING:
        if (v->len == 2) {
            return LDSEG_ID_MISSING;
        }

        *id = *v;
        return LDSEG_ID_OK;

    case LDSEG_JSON_NUMBER:
    case LDSEG_JSON_TRUE:
    case LDSEG_JSON_FALSE:
        *id = *v;
        return LDSEG_ID_OK;

    case LDSEG_JSON_ARRAY:
        p = v->p;

        if (ldseg_json_array_next(&p, v->p + v->len, &e) == 0
            || ldseg_json_array_next(&p, v->p + v->len, &e2) != 0
            || e.type == LDSEG_JSON_ARRAY || e.type == LDSEG_JSON_OBJECT)
        {
            return LDSEG_ID_INVALID;
        }

        *id = e;
        return LDSEG_ID_OK;

    default:
        return LDSEG_ID_INVALID;
    }
}


static ldseg_rc_t
ldseg_translate_time(const ldseg_json_val_t *v, const ldseg_options_t *opt,
    ldseg_event_t *ev)
{
    unsigned  set;

    if (ldseg_segment_instant(v, &ev->ms, &set) != LDSEG_OK) {
        return LDSEG_EINVAL;
    }

    if (!set) {
        /* the receive time, as Segment's API stamps such a message */
        ev->ms = opt->now_ms;
    }

    ev->has_ts = set;

    return LDSEG_OK;
}


static ldseg_rc_t
ldseg_translate_number_string(const ldseg_json_val_t *v, double *d)
{
    char    buf[LDSEG_TRANSLATE_STR_MAX];
    size_t  len;

    if (v->len > sizeof(buf)) {
        return LDSEG_EINVAL;
    }

    len = ldseg_json_string_decode(v->p, v->len, buf);

    if (ldseg_number_from_string(buf, len, d) != LDSEG_OK) {
        return LDSEG_EINVAL;
    }

    return LDSEG_OK;
}


/*
 * ajv coerceTypes "array" to "number": a numeric string (JS ToNumber, ""
 * excluded), true/false as 1/0, null as 0, a one-element array of one of
 * these.  The reference lets Infinity through and LaunchDarkly receives
 * null; we refuse it.
 */

static ldseg_rc_t
ldseg_translate_metric(const ldseg_json_val_t *v, ldseg_event_t *ev)
{
    double             d;
    const char        *p;
    ldseg_json_val_t   e, e2;

    ev->has_metric = 1;
    ev->metric.type = LDSEG_JSON_NONE;

    if (v->type == LDSEG_JSON_ARRAY) {
        p = v->p;

        if (ldseg_json_array_next(&p, v->p + v->len, &e) == 0
            || ldseg_json_array_next(&p, v->p + v->len, &e2) != 0)
        {
            return LDSEG_EINVAL;
        }

        if (e.type == LDSEG_JSON_NULL) {
            ev->metric_v = 0;
            return LDSEG_OK;
        }

        if (e.type == LDSEG_JSON_STRING && e.len == 2) {
            return LDSEG_EINVAL;
        }

        v = &e;
    }

    switch (v->type) {

    case LDSEG_JSON_NUMBER:
        d = ldseg_number_parse(v->p, v->len);

        if (isinf(d)) {
            return LDSEG_EINVAL;
        }

        if (v->len > LDSEG_NUMBER_LEN) {
            /* "data" holds the token already: do not write it twice */
            ev->metric_v = d;
            return LDSEG_OK;
        }

        ev->metric = *v;
        return LDSEG_OK;

    case LDSEG_JSON_STRING:
        if (ldseg_translate_number_string(v, &d) != LDSEG_OK || isinf(d)) {
            return LDSEG_EINVAL;
        }

        ev->metric_v = d;
        return LDSEG_OK;

    case LDSEG_JSON_TRUE:
        ev->metric_v = 1;
        return LDSEG_OK;

    case LDSEG_JSON_FALSE:
        ev->metric_v = 0;
        return LDSEG_OK;

    default:
        return LDSEG_EINVAL;
    }
}


static void
ldseg_reject(ldseg_event_t *ev, ldseg_reason_e reason,
    const char *message)
{
    ev->status = LDSEG_MSG_REJECTED;
    ev->err.reason = reason;
    ev->err.message = message;
}


/* a refusal of the destination's, which "integrations" can overrule */

static void
ldseg_refuse(ldseg_event_t *ev, ldseg_reason_e reason, const char *message)
{
    ldseg_reject(ev, reason, message);
    ev->refused = 1;
}


static void
ldseg_skip(ldseg_event_t *ev, ldseg_reason_e reason, const char *message)
{
    ev->status = LDSEG_MSG_SKIPPED;
    ev->err.reason = reason;
    ev->err.message = message;
}


/*
 * Every identity must stringify to at most LDSEG_MAX_IDENTITY bytes;
 * keeps anonymousId's length for the writer.  Only strings and arrays can
 * be longer: a number is at most LDSEG_NUMBER_LEN bytes, an object
 * "[object Object]".
 */

static ldseg_rc_t
ldseg_translate_identities(const ldseg_segment_msg_t *m, ldseg_endpoint_e type,
    ldseg_event_t *ev)
{
    size_t                   i;
    ldseg_out_t              o;
    const ldseg_json_val_t  *v;

    for (i = 0; i < sizeof(ldseg_identities) / sizeof(ldseg_identity_t);
         i++)
    {
        v = &m->f[ldseg_identities[i].slot];

        if ((v->type == LDSEG_JSON_STRING
             && v->len - 2 > LDSEG_MAX_IDENTITY)
            || v->type == LDSEG_JSON_ARRAY
            || ldseg_identities[i].slot == LDSEG_F_ANONYMOUS_ID)
        {
            o.p = NULL;
            o.n = 0;

            switch (ldseg_out_js_string(&o, v, LDSEG_MAX_IDENTITY)) {

            case LDSEG_OK:
                break;

            case LDSEG_ETOOBIG:
                ldseg_reject(ev, LDSEG_REASON_INVALID_IDENTITY,
                             ldseg_identities[i].message);
                return LDSEG_ETOOBIG;

            default:
                if (type != LDSEG_EP_TRACK
                    || ldseg_identities[i].slot != LDSEG_F_ANONYMOUS_ID)
                {
                    /* only a track's anonymousId is made a string */
                    break;
                }

                ldseg_reject(ev, LDSEG_REASON_INVALID_IDENTITY,
                             "an identity is an object with a \"toString\" "
                             "or \"__proto__\" key, which JavaScript "
                             "cannot turn into a string");
                return LDSEG_EINVAL;
            }

            if (ldseg_identities[i].slot == LDSEG_F_ANONYMOUS_ID) {
                ev->anon_len = o.n;
            }
        }
    }

    return LDSEG_OK;
}


/*
 * What Segment's pipeline decides once the whole body is read (a batch's
 * own sentAt and integrations may follow its messages): the message's
 * messageId, sentAt and integrations.
 */

static void
ldseg_translate_pipeline(const ldseg_segment_msg_t *m,
    const ldseg_options_t *opt, ldseg_event_t *ev)
{
    unsigned                 set;
    const ldseg_json_val_t  *v;

    v = &m->f[LDSEG_F_MESSAGE_ID];

    if (opt->message_ids && v->type == LDSEG_JSON_STRING && v->len > 2) {
        ev->mid = v->p + 1;
        ev->mid_len = v->len - 2;
        ev->mid_esc = (memchr(ev->mid, '\\', ev->mid_len) != NULL);
    }

    /* a sentAt that names no instant corrects nothing */

    if (m->f[LDSEG_F_SENT_AT].type != LDSEG_JSON_NONE
        && ldseg_segment_instant(&m->f[LDSEG_F_SENT_AT], &ev->sent_ms, &set)
           == LDSEG_OK)
    {
        ev->has_sent = set;
    }

    /* ev is zeroed: no integrations, no keys */

    if (m->f[LDSEG_F_INTEGRATIONS].type != LDSEG_JSON_NONE) {
        ldseg_segment_integrations(m, &ev->integ);
    }
}


void
ldseg_translate_prepare(const ldseg_segment_msg_t *m, ldseg_endpoint_e type,
    const ldseg_options_t *opt, ldseg_event_t *ev)
{
    const ldseg_json_val_t  *f, *src, *props;

    f = m->f;

    memset(ev, 0, sizeof(ldseg_event_t));
    ev->status = LDSEG_MSG_EVENT;

    ldseg_translate_pipeline(m, opt, ev);

    if (ldseg_translate_identities(m, type, ev) != LDSEG_OK) {
        return;
    }

    /* identity, for every type: userId ?? anonymousId as a context key */

    src = ldseg_exists(&f[LDSEG_F_USER_ID]) ? &f[LDSEG_F_USER_ID]
                                            : &f[LDSEG_F_ANONYMOUS_ID];

    switch (ldseg_translate_id(src, &ev->user)) {

    case LDSEG_ID_MISSING:
        ldseg_reject(ev, LDSEG_REASON_MISSING_IDENTITY,
                     "message needs a non-empty \"userId\" or "
                     "\"anonymousId\"");
        return;

    case LDSEG_ID_INVALID:
        ldseg_reject(ev, LDSEG_REASON_MISSING_IDENTITY,
                     "\"userId\" or \"anonymousId\" is not a usable id");
        return;

    default:
        break;
    }

    if (type == LDSEG_EP_TRACK) {
        switch (ldseg_translate_id(&f[LDSEG_F_EVENT], &ev->key)) {

        case LDSEG_ID_MISSING:
            ldseg_reject(ev, LDSEG_REASON_MISSING_EVENT,
                         "track message needs a non-empty \"event\"");
            return;

        case LDSEG_ID_INVALID:
            ldseg_reject(ev, LDSEG_REASON_MISSING_EVENT,
                         "\"event\" must be a string");
            return;

        default:
            break;
        }
    }

    if (type != LDSEG_EP_IDENTIFY && type != LDSEG_EP_ALIAS) {
        props = &f[LDSEG_F_PROPERTIES];

        switch (props->type) {

        case LDSEG_JSON_OBJECT:
            ev->data = *props;
            ev->clean = m->odd;
            break;

        case LDSEG_JSON_NONE:
        case LDSEG_JSON_NULL:
            break;

        case LDSEG_JSON_STRING:
            if (props->len == 2) {
                /* the reference drops "" before validating */
                break;
            }

            /* fall through */

        default:
            ldseg_refuse(ev, LDSEG_REASON_INVALID_PROPERTIES,
                         "\"properties\" must be an object");
            return;
        }
    }

    if (ldseg_translate_time(&f[LDSEG_F_TIMESTAMP], opt, ev) != LDSEG_OK) {
        ldseg_refuse(ev, LDSEG_REASON_INVALID_TIMESTAMP,
                     "\"timestamp\" is not a valid ISO-8601 date");
        return;
    }

    /* the Segment model's checks above apply whatever the mappings */

    if (m->run != NULL) {
        ldseg_mapping_prepare(m->run, m, type, opt, ev);
        return;
    }

    switch (type) {

    case LDSEG_EP_TRACK:
        if (opt->format == LDSEG_FORMAT_CLASSIC) {
            ev->kind = LDSEG_EVENT_CLASSIC;
            src = &f[LDSEG_F_VALUE];

        } else {
            ev->kind = LDSEG_EVENT_CUSTOM;
            ev->anon = f[LDSEG_F_ANONYMOUS_ID];
            src = ldseg_exists(&f[LDSEG_F_REVENUE]) ? &f[LDSEG_F_REVENUE]
                                                    : &f[LDSEG_F_VALUE];
        }

        if (ev->data.type != LDSEG_JSON_OBJECT
            || !ldseg_exists(src)
            || (src->type == LDSEG_JSON_STRING && src->len == 2))
        {
            return;
        }

        if (ldseg_translate_metric(src, ev) != LDSEG_OK) {
            ldseg_refuse(ev, LDSEG_REASON_INVALID_METRIC,
                         "\"revenue\" or \"value\" is not a finite number");
        }

        return;

    case LDSEG_EP_IDENTIFY:
    case LDSEG_EP_ALIAS:
        ev->kind = LDSEG_EVENT_ALIAS;

        if (ldseg_translate_id(&f[LDSEG_F_USER_ID], &ev->key)
            != LDSEG_ID_OK)
        {
            if (type == LDSEG_EP_IDENTIFY) {
                ldseg_skip(ev, LDSEG_REASON_IDENTIFY_WITHOUT_USER_ID,
                           "identify without \"userId\" maps to no event");

            } else {
                ldseg_reject(ev, LDSEG_REASON_MISSING_USER_ID,
                             "alias message needs a non-empty \"userId\"");
            }

            return;
        }

        src = ldseg_exists(&f[LDSEG_F_PREVIOUS_ID])
              ? &f[LDSEG_F_PREVIOUS_ID] : &f[LDSEG_F_ANONYMOUS_ID];

        switch (ldseg_translate_id(src, &ev->prev)) {

        case LDSEG_ID_MISSING:
            if (type == LDSEG_EP_IDENTIFY) {
                ldseg_skip(ev, LDSEG_REASON_IDENTIFY_WITHOUT_PREVIOUS_ID,
                           "identify without \"previousId\" or "
                           "\"anonymousId\" maps to no event");

            } else {
                ldseg_reject(ev, LDSEG_REASON_MISSING_PREVIOUS_ID,
                             "alias message needs a non-empty "
                             "\"previousId\" or \"anonymousId\"");
            }

            return;

        case LDSEG_ID_INVALID:
            ldseg_reject(ev, LDSEG_REASON_MISSING_IDENTITY,
                         "\"previousId\" or \"anonymousId\" is not a "
                         "usable id");
            return;

        default:
            return;
        }

    default:
        ldseg_skip(ev, LDSEG_REASON_NO_EVENT_FOR_TYPE,
                   "page, screen and group map to no event");
        return;
    }
}


static void
ldseg_out(ldseg_out_t *o, const char *s, size_t len)
{
    if (o->p != NULL) {
        memcpy(o->p + o->n, s, len);
    }

    o->n += len;
}


static void
ldseg_out_number(ldseg_out_t *o, double v)
{
    char    buf[LDSEG_NUMBER_LEN];
    size_t  len;

    len = ldseg_number_format(v, buf);
    ldseg_out(o, buf, len);
}


static void
ldseg_out_int(ldseg_out_t *o, int64_t v)
{
    char      buf[24], *p;
    uint64_t  u;

    static const char  pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";

    p = buf + sizeof(buf);
    u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

    /* two digits a division: a creationDate has thirteen */

    while (u >= 100) {
        p -= 2;
        memcpy(p, &pairs[(u % 100) * 2], 2);
        u /= 100;
    }

    if (u >= 10) {
        p -= 2;
        memcpy(p, &pairs[u * 2], 2);

    } else {
        *--p = (char) ('0' + u);
    }

    if (v < 0) {
        *--p = '-';
    }

    ldseg_out(o, p, (size_t) (buf + sizeof(buf) - p));
}


/* an id scalar as a JSON string */

static void
ldseg_out_id(ldseg_out_t *o, const ldseg_json_val_t *id)
{
    switch (id->type) {

    case LDSEG_JSON_STRING:
        ldseg_out(o, id->p, id->len);
        return;

    case LDSEG_JSON_NUMBER:
        ldseg_out_lit(o, "\"");
        ldseg_out_number(o, ldseg_number_parse(id->p, id->len));
        ldseg_out_lit(o, "\"");
        return;

    case LDSEG_JSON_TRUE:
        ldseg_out_lit(o, "\"true\"");
        return;

    case LDSEG_JSON_FALSE:
        ldseg_out_lit(o, "\"false\"");
        return;

    default:
        ldseg_out_lit(o, "\"\"");
        return;
    }
}


/* whether the escaped key token [p, end) (quotes included) is name */

static int
ldseg_js_key_is(const char *p, const char *end, const char *name, size_t len)
{
    char    buf[64];              /* a 9-byte key with every byte escaped */
    size_t  n;

    n = (size_t) (end - p);

    if (n == len + 2) {
        return memcmp(p + 1, name, len) == 0;
    }

    if (n > sizeof(buf) || memchr(p, '\\', n) == NULL) {
        return 0;
    }

    n = ldseg_json_string_decode(p, n, buf);

    return n == len && memcmp(buf, name, len) == 0;
}


/*
 * Whether String() throws for the validated object at p ('{') in the
 * reference: an own "toString" key hides Object.prototype.toString with
 * something that is not a function.  A "__proto__" key would set the
 * object's prototype when the reference copies it, and what String()
 * gives then depends on that value: refused too (README.md).
 */

static int
ldseg_js_object_throws(const char *p)
{
    int          key;
    unsigned     depth;
    const char  *q;

    depth = 0;
    key = 0;

    for ( ;; ) {
        switch (*p) {

        case '"':
            q = ldseg_mv_string_end(p + 1) + 1;

            if (key
                && (ldseg_js_key_is(p, q, "toString", 8)
                    || ldseg_js_key_is(p, q, "__proto__", 9)))
            {
                return 1;
            }

            key = 0;
            p = q;
            continue;

        case '{':
        case '[':
            depth++;
            key = (depth == 1);
            break;

        case '}':
        case ']':
            if (--depth == 0) {
                return 0;
            }

            break;

        case ',':
            key = (depth == 1);
            break;

        default:
            break;
        }

        p++;
    }
}


#define ldseg_out_bounded(o, s, len, limit)                                  \
    if ((o)->n + (len) > (limit)) {                                          \
        return LDSEG_ETOOBIG;                                                \
    }                                                                        \
    ldseg_out(o, s, len)


/*
 * The elements of a validated array, [p, end) without its brackets, as
 * String() joins them: nested arrays are joined the same way, so every
 * comma outside strings and objects is a separator, whatever the depth,
 * and the array is read once.
 */

static ldseg_rc_t
ldseg_out_js_array(ldseg_out_t *o, const char *p, const char *end,
    size_t limit)
{
    char         buf[LDSEG_NUMBER_LEN];
    size_t       len;
    const char  *q;

    while (p < end) {

        switch (*p) {

        case ',':
            ldseg_out_bounded(o, ",", 1, limit);
            p++;
            break;

        case '"':
            q = ldseg_mv_string_end(p + 1);
            ldseg_out_bounded(o, p + 1, (size_t) (q - p - 1), limit);
            p = q + 1;
            break;

        case '{':
            if (ldseg_js_object_throws(p)) {
                return LDSEG_EINVAL;
            }

            ldseg_out_bounded(o, "[object Object]", 15, limit);
            p = ldseg_mv_skip(p);
            break;

        case 't':
            ldseg_out_bounded(o, "true", 4, limit);
            p += 4;
            break;

        case 'f':
            ldseg_out_bounded(o, "false", 5, limit);
            p += 5;
            break;

        case 'n':
            /* null inside an array prints as nothing */
            p += 4;
            break;

        case '-': case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            q = p + 1;

            while (q < end
                   && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e'
                       || *q == 'E' || *q == '+' || *q == '-'))
            {
                q++;
            }

            len = ldseg_number_format(ldseg_number_parse(p, (size_t) (q - p)),
                                      buf);
            ldseg_out_bounded(o, buf, len, limit);
            p = q;
            break;

        default:
            /* white space, '[' and ']' */
            p++;
            break;
        }
    }

    return LDSEG_OK;
}


/*
 * The contents of the JSON string String(v) gives in JavaScript (strings
 * copied as sent, escapes and all), or LDSEG_ETOOBIG, with nothing more
 * written, as soon as that would be more than max bytes; LDSEG_EINVAL
 * where String() throws (ldseg_js_object_throws()).
 */

static ldseg_rc_t
ldseg_out_js_string(ldseg_out_t *o, const ldseg_json_val_t *v, size_t max)
{
    char    buf[LDSEG_NUMBER_LEN];
    size_t  len, limit;

    limit = o->n + max;

    switch (v->type) {

    case LDSEG_JSON_STRING:
        ldseg_out_bounded(o, v->p + 1, v->len - 2, limit);
        return LDSEG_OK;

    case LDSEG_JSON_NUMBER:
        len = ldseg_number_format(ldseg_number_parse(v->p, v->len), buf);
        ldseg_out_bounded(o, buf, len, limit);
        return LDSEG_OK;

    case LDSEG_JSON_TRUE:
        ldseg_out_bounded(o, "true", 4, limit);
        return LDSEG_OK;

    case LDSEG_JSON_FALSE:
        ldseg_out_bounded(o, "false", 5, limit);
        return LDSEG_OK;

    case LDSEG_JSON_NULL:
        ldseg_out_bounded(o, "null", 4, limit);
        return LDSEG_OK;

    case LDSEG_JSON_OBJECT:
        if (ldseg_js_object_throws(v->p)) {
            return LDSEG_EINVAL;
        }

        ldseg_out_bounded(o, "[object Object]", 15, limit);
        return LDSEG_OK;

    case LDSEG_JSON_ARRAY:
        return ldseg_out_js_array(o, v->p + 1, v->p + v->len - 1, limit);

    default:
        return LDSEG_OK;
    }
}


/*
 * The validated value at p (before end) as JSON.stringify(JSON.parse())
 * writes it in the reference, for the rare message whose scan counted odd
 * values: a number out of a double's range is null, a "__proto__" member
 * is dropped, at any depth; everything else is copied as sent, without
 * the white space between tokens.  Returns the byte after the value.
 */

static const char *
ldseg_out_data(ldseg_out_t *o, const char *p, const char *end)
{
    int          first;
    const char  *q, *v;

    p = ldseg_json_ws(p, end);

    switch (*p) {

    case '{':
        ldseg_out_lit(o, "{");
        first = 1;

        for ( ;; ) {
            p = ldseg_json_ws(p + 1, end);

            if (*p == '}') {
                break;
            }

            q = ldseg_mv_string_end(p + 1) + 1;
            v = ldseg_json_ws(ldseg_json_ws(q, end) + 1, end);

            if (ldseg_json_key_proto(p, (size_t) (q - p),
                                     memchr(p, '\\', (size_t) (q - p))
                                     != NULL))
            {
                p = ldseg_json_ws(ldseg_mv_skip(v), end);

            } else {
                if (!first) {
                    ldseg_out_lit(o, ",");
                }

                first = 0;
                ldseg_out(o, p, (size_t) (q - p));
                ldseg_out_lit(o, ":");
                p = ldseg_json_ws(ldseg_out_data(o, v, end), end);
            }

            if (*p != ',') {
                break;
            }
        }

        ldseg_out_lit(o, "}");
        return p + 1;

    case '[':
        ldseg_out_lit(o, "[");
        first = 1;

        for ( ;; ) {
            p = ldseg_json_ws(p + 1, end);

            if (*p == ']') {
                break;
            }

            if (!first) {
                ldseg_out_lit(o, ",");
            }

            first = 0;
            p = ldseg_json_ws(ldseg_out_data(o, p, end), end);

            if (*p != ',') {
                break;
            }
        }

        ldseg_out_lit(o, "]");
        return p + 1;

    case '"':
    case 't':
    case 'f':
    case 'n':
        q = ldseg_mv_skip(p);
        ldseg_out(o, p, (size_t) (q - p));
        return q;

    default:
        q = ldseg_mv_skip(p);

        if (isinf(ldseg_number_parse(p, (size_t) (q - p)))) {
            ldseg_out_lit(o, "null");

        } else {
            ldseg_out(o, p, (size_t) (q - p));
        }

        return q;
    }
}


size_t
ldseg_translate_write(const ldseg_event_t *ev, char *dst)
{
    ldseg_out_t  o;

    o.p = dst;
    o.n = 0;

    if (ev->kind == LDSEG_EVENT_ALIAS) {
        ldseg_out_lit(&o, "{\"kind\":\"alias\",\"key\":");
        ldseg_out_id(&o, &ev->key);
        ldseg_out_lit(&o, ",\"previousKey\":");
        ldseg_out_id(&o, &ev->prev);
        ldseg_out_lit(&o, ",\"contextKind\":\"user\","
                      "\"previousContextKind\":\"anonymousUser\","
                      "\"creationDate\":");
        ldseg_out_int(&o, ev->ms);
        ldseg_out_lit(&o, "}");

        return o.n;
    }

    ldseg_out_lit(&o, "{\"kind\":\"custom\",\"key\":");
    ldseg_out_id(&o, &ev->key);

    if (ev->kind == LDSEG_EVENT_CLASSIC) {
        ldseg_out_lit(&o, ",\"userKey\":");
        ldseg_out_id(&o, &ev->user);

    } else {
        ldseg_out_lit(&o, ",\"contextKeys\":{\"user\":");
        ldseg_out_id(&o, &ev->user);

        if (ev->anon.type != LDSEG_JSON_NONE) {
            ldseg_out_lit(&o, ",\"unauthenticatedUser\":\"");

            if (o.p == NULL) {
                /* measured when prepared */
                o.n += ev->anon_len;

            } else {
                (void) ldseg_out_js_string(&o, &ev->anon, ev->anon_len);
            }

            ldseg_out_lit(&o, "\"");
        }

        ldseg_out_lit(&o, "}");
    }

    ldseg_out_lit(&o, ",\"creationDate\":");
    ldseg_out_int(&o, ev->ms);

    if (ev->has_metric) {
        ldseg_out_lit(&o, ",\"metricValue\":");

        if (ev->metric.type == LDSEG_JSON_NUMBER) {
            ldseg_out(&o, ev->metric.p, ev->metric.len);

        } else {
            ldseg_out_number(&o, ev->metric_v);
        }
    }

    ldseg_out_lit(&o, ",\"data\":");

    if (ev->data.type == LDSEG_JSON_OBJECT && ev->clean) {
        (void) ldseg_out_data(&o, ev->data.p, ev->data.p + ev->data.len);

    } else if (ev->data.type == LDSEG_JSON_OBJECT) {
        ldseg_out(&o, ev->data.p, ev->data.len);

    } else {
        ldseg_out_lit(&o, "{}");
    }

    ldseg_out_lit(&o, "}");

    return o.n;
}

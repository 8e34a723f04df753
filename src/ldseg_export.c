
/*
 * Copyright (C) ldseg authors
 *
 * LaunchDarkly SDK events to Segment track messages (README.md, "Export").
 * One pass validates the post and picks each event's fields as spans
 * (ldseg_json_object() with a key table); the writer then copies them as
 * their JSON tokens, so values, escapes and number spellings reach
 * Segment as the SDK sent them.  A message is measured before it is
 * written (dst NULL), like the LaunchDarkly side's events.
 */


#include <string.h>

#include <ldseg_export.h>
#include <ldseg_json.h>
#include <ldseg_number.h>
#include <ldseg_time.h>


#define LDSEG_EXPORT_NAME_MAX  64     /* a member name compared decoded */
#define LDSEG_EXPORT_ID_MAX    64     /* a payload ID used in messageId */


/* slots of an event's fields */
typedef enum {
    LDSEG_X_KIND = 0,
    LDSEG_X_CREATION,
    LDSEG_X_KEY,
    LDSEG_X_VERSION,
    LDSEG_X_CONTEXT,
    LDSEG_X_CONTEXT_KEYS,
    LDSEG_X_USER,
    LDSEG_X_USER_KEY,
    LDSEG_X_VARIATION,
    LDSEG_X_VALUE,
    LDSEG_X_DEFAULT,
    LDSEG_X_REASON,
    LDSEG_X_REASON_KIND,
    LDSEG_X_IN_EXPERIMENT,
    LDSEG_X_PREREQ_OF,
    LDSEG_X_URL,
    LDSEG_X_SELECTOR,
    LDSEG_X_DATA,
    LDSEG_X_METRIC,
    LDSEG_X_CONTEXT_KIND,      /* context.kind */
    LDSEG_X_CONTEXT_KEY,       /* context.key */
    LDSEG_X_USER_OBJ_KEY,      /* user.key */
    LDSEG_X_N
} ldseg_export_field_e;


/* one SDK event, as spans into the body */
typedef struct {
    ldseg_msg_status_e            status;
    ldseg_error_t                 err;
    ldseg_export_kind_e           kind;
    ldseg_json_val_t              f[LDSEG_X_N];
    ldseg_json_val_t              id;        /* userId or anonymousId */
    unsigned                      anonymous;
    unsigned                      large;     /* over max_message */
    size_t                        index;
    size_t                        len;
} ldseg_export_ev_t;


/* (kind, key) pairs of an event's contexts, in the order they appear */
typedef struct {
    const ldseg_json_val_t       *src;
    const ldseg_json_val_t       *f;
    int                           mode;
    const char                   *p;
    int                           done;
} ldseg_export_iter_t;


/* the events that become messages, LDSEG_EXPORT_BLOCK at a time */

#define LDSEG_EXPORT_BLOCK  32

typedef struct ldseg_export_block_s  ldseg_export_block_t;

struct ldseg_export_block_s {
    ldseg_export_block_t         *next;
    size_t                        n;
    ldseg_export_ev_t             ev[LDSEG_EXPORT_BLOCK];
};


typedef struct {
    char                         *p;         /* NULL: count only */
    size_t                        n;
} ldseg_export_out_t;


static void ldseg_export_blocks_free(ldseg_export_block_t *b,
    const ldseg_allocator_t *a);


#define LDSEG_XKEY(name, slot)  { name, sizeof(name) - 1, slot, NULL, NULL, 0 }


static const ldseg_json_key_t  ldseg_export_reason_keys[] = {
    LDSEG_XKEY("kind", LDSEG_X_REASON_KIND),
    LDSEG_XKEY("inExperiment", LDSEG_X_IN_EXPERIMENT)
};


/* a single context's kind and key come with the event's one scan */
static const ldseg_json_key_t  ldseg_export_context_keys[] = {
    LDSEG_XKEY("kind", LDSEG_X_CONTEXT_KIND),
    LDSEG_XKEY("key", LDSEG_X_CONTEXT_KEY)
};


static const ldseg_json_key_t  ldseg_export_user_keys[] = {
    LDSEG_XKEY("key", LDSEG_X_USER_OBJ_KEY)
};


static const ldseg_json_key_t  ldseg_export_keys[] = {
    LDSEG_XKEY("kind", LDSEG_X_KIND),
    LDSEG_XKEY("creationDate", LDSEG_X_CREATION),
    LDSEG_XKEY("key", LDSEG_X_KEY),
    LDSEG_XKEY("version", LDSEG_X_VERSION),
    { "context", sizeof("context") - 1, LDSEG_X_CONTEXT, NULL,
      ldseg_export_context_keys,
      sizeof(ldseg_export_context_keys) / sizeof(ldseg_json_key_t) },
    LDSEG_XKEY("contextKeys", LDSEG_X_CONTEXT_KEYS),
    { "user", sizeof("user") - 1, LDSEG_X_USER, NULL,
      ldseg_export_user_keys,
      sizeof(ldseg_export_user_keys) / sizeof(ldseg_json_key_t) },
    LDSEG_XKEY("userKey", LDSEG_X_USER_KEY),
    LDSEG_XKEY("variation", LDSEG_X_VARIATION),
    LDSEG_XKEY("value", LDSEG_X_VALUE),
    LDSEG_XKEY("default", LDSEG_X_DEFAULT),
    { "reason", sizeof("reason") - 1, LDSEG_X_REASON, NULL,
      ldseg_export_reason_keys,
      sizeof(ldseg_export_reason_keys) / sizeof(ldseg_json_key_t) },
    LDSEG_XKEY("prereqOf", LDSEG_X_PREREQ_OF),
    LDSEG_XKEY("url", LDSEG_X_URL),
    LDSEG_XKEY("selector", LDSEG_X_SELECTOR),
    LDSEG_XKEY("data", LDSEG_X_DATA),
    LDSEG_XKEY("metricValue", LDSEG_X_METRIC)
};


static const char *const  ldseg_export_kinds[] = {
    "feature", "click", "pageview", "custom"
};


static const ldseg_json_val_t  ldseg_export_user = {
    "\"user\"", 6, LDSEG_JSON_STRING
};


#define ldseg_xout_lit(o, s)  ldseg_xout(o, s, sizeof(s) - 1)


static void
ldseg_xout(ldseg_export_out_t *o, const char *s, size_t len)
{
    if (o->p != NULL) {
        memcpy(o->p + o->n, s, len);
    }

    o->n += len;
}


/* a configured string as a JSON string */

static void
ldseg_xout_str(ldseg_export_out_t *o, const ldseg_export_str_t *s)
{
    char           esc[8];
    size_t         i;
    unsigned char  c;

    static const char  hex[] = "0123456789abcdef";

    ldseg_xout_lit(o, "\"");

    for (i = 0; i < s->len; i++) {
        c = (unsigned char) s->p[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            ldseg_xout(o, esc, 2);

        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            ldseg_xout(o, esc, 6);

        } else {
            ldseg_xout(o, (const char *) &s->p[i], 1);
        }
    }

    ldseg_xout_lit(o, "\"");
}


static void
ldseg_xout_uint(ldseg_export_out_t *o, uint64_t u, unsigned base,
    unsigned width)
{
    char  buf[24], *p;

    static const char  digits[] = "0123456789abcdef";

    p = buf + sizeof(buf);

    do {
        *--p = digits[u % base];
        u /= base;
    } while (u != 0 || (unsigned) (buf + sizeof(buf) - p) < width);

    ldseg_xout(o, p, (size_t) (buf + sizeof(buf) - p));
}


size_t
ldseg_export_time(int64_t ms, char *dst)
{
    int64_t             days, rem, z, era, doe, yoe, y, doy, mp, d, m;
    ldseg_export_out_t  o;

    /* H. Hinnant's civil_from_days */

    days = (ms >= 0) ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    rem = ms - days * 86400000;

    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    o.p = dst;
    o.n = 0;

    if (y < 0 || y > 9999) {
        /* the expanded years of ISO 8601 and ECMAScript */
        ldseg_xout(&o, y < 0 ? "-" : "+", 1);
        ldseg_xout_uint(&o, (uint64_t) (y < 0 ? -y : y), 10, 6);

    } else {
        ldseg_xout_uint(&o, (uint64_t) y, 10, 4);
    }

    ldseg_xout_lit(&o, "-");
    ldseg_xout_uint(&o, (uint64_t) m, 10, 2);
    ldseg_xout_lit(&o, "-");
    ldseg_xout_uint(&o, (uint64_t) d, 10, 2);
    ldseg_xout_lit(&o, "T");
    ldseg_xout_uint(&o, (uint64_t) (rem / 3600000), 10, 2);
    ldseg_xout_lit(&o, ":");
    ldseg_xout_uint(&o, (uint64_t) (rem / 60000 % 60), 10, 2);
    ldseg_xout_lit(&o, ":");
    ldseg_xout_uint(&o, (uint64_t) (rem / 1000 % 60), 10, 2);
    ldseg_xout_lit(&o, ".");
    ldseg_xout_uint(&o, (uint64_t) (rem % 1000), 10, 3);
    ldseg_xout_lit(&o, "Z");

    return o.n;
}


/* whether the string token v is name (escapes decoded) */

static int
ldseg_export_is(const ldseg_json_val_t *v, const char *name)
{
    char    buf[LDSEG_EXPORT_NAME_MAX];
    size_t  len, n;

    if (v->type != LDSEG_JSON_STRING) {
        return 0;
    }

    len = strlen(name);

    if (memchr(v->p, '\\', v->len) == NULL) {
        return v->len == len + 2 && memcmp(v->p + 1, name, len) == 0;
    }

    if (v->len > sizeof(buf)) {
        return 0;
    }

    n = ldseg_json_string_decode(v->p, v->len, buf);

    return n == len && memcmp(buf, name, len) == 0;
}


/* the value of member "name" of the object obj (the last one wins) */

static int
ldseg_export_get(const ldseg_json_val_t *obj, const char *name,
    ldseg_json_val_t *v)
{
    const char        *p, *end;
    ldseg_json_val_t   n, x;

    v->type = LDSEG_JSON_NONE;

    if (obj->type != LDSEG_JSON_OBJECT) {
        return 0;
    }

    p = obj->p;
    end = obj->p + obj->len;

    while (ldseg_json_object_next(&p, end, &n, &x)) {
        if (ldseg_export_is(&n, name)) {
            *v = x;
        }
    }

    return v->type != LDSEG_JSON_NONE;
}


/*
 * The context kinds and keys of an event, from the first of: "context"
 * (one context {"kind","key"}, a kind "user" if none, or "multi" with a
 * member per kind), "contextKeys" ({kind: key}), the older schemas' "user"
 * object ("user": user.key) and "userKey".  Keys that are not strings
 * are left out.
 */

static void
ldseg_export_iter_init(ldseg_export_iter_t *it, const ldseg_export_ev_t *ev)
{
    it->done = 0;
    it->mode = 0;
    it->src = NULL;
    it->f = ev->f;

    if (ev->f[LDSEG_X_CONTEXT].type == LDSEG_JSON_OBJECT) {
        it->src = &ev->f[LDSEG_X_CONTEXT];
        it->mode = ldseg_export_is(&ev->f[LDSEG_X_CONTEXT_KIND], "multi")
                   ? 2 : 1;

    } else if (ev->f[LDSEG_X_CONTEXT_KEYS].type == LDSEG_JSON_OBJECT) {
        it->src = &ev->f[LDSEG_X_CONTEXT_KEYS];
        it->mode = 3;

    } else if (ev->f[LDSEG_X_USER].type == LDSEG_JSON_OBJECT) {
        it->src = &ev->f[LDSEG_X_USER];
        it->mode = 4;

    } else if (ev->f[LDSEG_X_USER_KEY].type == LDSEG_JSON_STRING) {
        it->src = &ev->f[LDSEG_X_USER_KEY];
        it->mode = 5;
    }

    if (it->src != NULL) {
        it->p = it->src->p;
    }
}


static int
ldseg_export_iter_next(ldseg_export_iter_t *it, ldseg_json_val_t *kind,
    ldseg_json_val_t *key)
{
    const char        *end;
    ldseg_json_val_t   name, v;

    if (it->src == NULL || it->done) {
        return 0;
    }

    end = it->src->p + it->src->len;

    switch (it->mode) {

    case 2:
    case 3:
        while (ldseg_json_object_next(&it->p, end, &name, &v)) {
            if (it->mode == 2) {
                if (ldseg_export_is(&name, "kind")
                    || !ldseg_export_get(&v, "key", key))
                {
                    continue;
                }

            } else {
                *key = v;
            }

            if (key->type == LDSEG_JSON_STRING) {
                *kind = name;
                return 1;
            }
        }

        it->done = 1;
        return 0;

    default:
        it->done = 1;

        /* the members were picked by the event's scan */

        if (it->mode == 5) {
            *key = *it->src;

        } else {
            *key = it->f[it->mode == 1 ? LDSEG_X_CONTEXT_KEY
                                       : LDSEG_X_USER_OBJ_KEY];

            if (key->type != LDSEG_JSON_STRING) {
                return 0;
            }
        }

        if (it->mode == 1
            && it->f[LDSEG_X_CONTEXT_KIND].type == LDSEG_JSON_STRING)
        {
            *kind = it->f[LDSEG_X_CONTEXT_KIND];

        } else {
            *kind = ldseg_export_user;
        }

        return 1;
    }
}


/* an SDK payload ID fit for a messageId: [A-Za-z0-9-], at most 64 */

static int
ldseg_export_id_ok(const ldseg_export_str_t *id)
{
    size_t  i;
    char    c;

    if (id->len == 0 || id->len > LDSEG_EXPORT_ID_MAX) {
        return 0;
    }

    for (i = 0; i < id->len; i++) {
        c = id->p[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
              || (c >= 'A' && c <= 'Z') || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


/* decides what event ev becomes; its fields are set */

static void
ldseg_export_prepare(ldseg_export_ev_t *ev)
{
    int                   k, found;
    ldseg_json_val_t      kind, key;
    ldseg_export_iter_t   it;

    ev->status = LDSEG_MSG_SKIPPED;
    ev->err.reason = LDSEG_REASON_NOT_EXPORTED;
    ev->err.message = "index, identify, summary, alias and debug events "
                      "are not exported";

    for (k = 0; k < LDSEG_EXPORT_NKINDS; k++) {
        if (ldseg_export_is(&ev->f[LDSEG_X_KIND], ldseg_export_kinds[k])) {
            break;
        }
    }

    if (k == LDSEG_EXPORT_NKINDS) {
        return;
    }

    ev->kind = (ldseg_export_kind_e) k;

    /* userId: the "user" kind's key; else anonymousId: the first key */

    found = 0;
    ldseg_export_iter_init(&it, ev);

    while (ldseg_export_iter_next(&it, &kind, &key)) {
        if (!found) {
            ev->id = key;
            ev->anonymous = 1;
            found = 1;
        }

        if (ldseg_export_is(&kind, "user")) {
            ev->id = key;
            ev->anonymous = 0;
            break;
        }
    }

    if (!found) {
        ev->status = LDSEG_MSG_REJECTED;
        ev->err.reason = LDSEG_REASON_NO_CONTEXT_KEY;
        ev->err.message = "event has no context key to export it under";
        return;
    }

    ev->status = LDSEG_MSG_EVENT;
    ev->err.reason = LDSEG_REASON_NONE;
    ev->err.message = NULL;
}


#define ldseg_xout_field(o, name, v)                                        \
    if ((v)->type != LDSEG_JSON_NONE) {                                      \
        ldseg_xout_lit(o, "," name ":");                                     \
        ldseg_xout(o, (v)->p, (v)->len);                                     \
    }


/* the Segment message of a prepared event; dst NULL: its length only */

static size_t
ldseg_export_write(const ldseg_export_ev_t *ev,
    const ldseg_export_options_t *opt, int use_id, uint64_t hash, char *dst)
{
    int                   first;
    char                  ts[LDSEG_EXPORT_TIME_LEN];
    double                d;
    int64_t               ms;
    ldseg_json_val_t      kind, key;
    const ldseg_json_val_t  *f;
    ldseg_export_out_t    o;
    ldseg_export_iter_t   it;

    o.p = dst;
    o.n = 0;
    f = ev->f;

    ldseg_xout_lit(&o, "{\"type\":\"track\",\"event\":");
    ldseg_xout_str(&o, &opt->label[ev->kind]);
    if (ev->anonymous) {
        ldseg_xout_lit(&o, ",\"anonymousId\":");

    } else {
        ldseg_xout_lit(&o, ",\"userId\":");
    }

    ldseg_xout(&o, ev->id.p, ev->id.len);

    ldseg_xout_lit(&o, ",\"properties\":{\"environment\":");
    ldseg_xout_str(&o, &opt->environment);

    if (opt->project.len != 0) {
        ldseg_xout_lit(&o, ",\"project\":");
        ldseg_xout_str(&o, &opt->project);
    }

    ldseg_xout_field(&o, "\"key\"", &f[LDSEG_X_KEY]);

    ldseg_xout_lit(&o, ",\"contextKeys\":{");
    first = 1;
    ldseg_export_iter_init(&it, ev);

    while (ldseg_export_iter_next(&it, &kind, &key)) {
        if (!first) {
            ldseg_xout_lit(&o, ",");
        }

        first = 0;
        ldseg_xout(&o, kind.p, kind.len);
        ldseg_xout_lit(&o, ":");
        ldseg_xout(&o, key.p, key.len);
    }

    ldseg_xout_lit(&o, "}");

    switch (ev->kind) {

    case LDSEG_EXPORT_FEATURE:
        ldseg_xout_field(&o, "\"value\"", &f[LDSEG_X_VALUE]);
        ldseg_xout_field(&o, "\"flagVersion\"", &f[LDSEG_X_VERSION]);
        ldseg_xout_field(&o, "\"variation\"", &f[LDSEG_X_VARIATION]);

        if (f[LDSEG_X_REASON].type == LDSEG_JSON_OBJECT) {
            ldseg_xout_field(&o, "\"reasonKind\"", &f[LDSEG_X_REASON_KIND]);
        }

        ldseg_xout_field(&o, "\"prereqOf\"", &f[LDSEG_X_PREREQ_OF]);

        if (f[LDSEG_X_REASON].type == LDSEG_JSON_OBJECT) {
            ldseg_xout_field(&o, "\"inExperiment\"",
                             &f[LDSEG_X_IN_EXPERIMENT]);
        }

        ldseg_xout_field(&o, "\"default\"", &f[LDSEG_X_DEFAULT]);
        break;

    case LDSEG_EXPORT_CLICK:
        ldseg_xout_field(&o, "\"url\"", &f[LDSEG_X_URL]);
        ldseg_xout_field(&o, "\"selector\"", &f[LDSEG_X_SELECTOR]);
        break;

    case LDSEG_EXPORT_PAGEVIEW:
        ldseg_xout_field(&o, "\"url\"", &f[LDSEG_X_URL]);
        break;

    default:
        ldseg_xout_field(&o, "\"metricValue\"", &f[LDSEG_X_METRIC]);
        ldseg_xout_field(&o, "\"data\"", &f[LDSEG_X_DATA]);
        break;
    }

    ldseg_xout_lit(&o, "}");

    if (f[LDSEG_X_CREATION].type == LDSEG_JSON_NUMBER) {
        d = ldseg_number_parse(f[LDSEG_X_CREATION].p, f[LDSEG_X_CREATION].len);

        if (d >= -(double) LDSEG_TIME_MAX_MS
            && d <= (double) LDSEG_TIME_MAX_MS)
        {
            /* floor() without libm, which the module does not link */
            ms = (int64_t) d;
            ms -= ((double) ms > d);

            ldseg_xout_lit(&o, ",\"timestamp\":\"");
            ldseg_xout(&o, ts, ldseg_export_time(ms, ts));
            ldseg_xout_lit(&o, "\"");
        }
    }

    ldseg_xout_lit(&o, ",\"messageId\":\"");

    if (use_id) {
        ldseg_xout(&o, opt->payload_id.p, opt->payload_id.len);

    } else {
        ldseg_xout_uint(&o, hash, 16, 16);
    }

    ldseg_xout_lit(&o, "-");
    ldseg_xout_uint(&o, (uint64_t) ev->index, 10, 1);
    ldseg_xout_lit(&o, "\",\"context\":{\"library\":{\"name\":\"ldseg\","
                   "\"version\":\"" LDSEG_VERSION "\"}}}");

    return o.n;
}


void
ldseg_export_options_init(ldseg_export_options_t *opt)
{
    int  k;

    memset(opt, 0, sizeof(ldseg_export_options_t));

    for (k = 0; k < LDSEG_EXPORT_NKINDS; k++) {
        opt->label[k].p = ldseg_export_kinds[k];
        opt->label[k].len = strlen(ldseg_export_kinds[k]);
    }

    opt->max_body = LDSEG_MAX_BATCH_BYTES;
    opt->max_message = LDSEG_MAX_MESSAGE;
    opt->max_depth = LDSEG_MAX_DEPTH;
}


ldseg_rc_t
ldseg_export_process(const char *body, size_t len,
    const ldseg_export_options_t *opt, const ldseg_allocator_t *a,
    ldseg_result_t *res, ldseg_error_t *err)
{
    int                   use_id;
    char                 *out, *lout, *base, **o;
    size_t                i, n, total, ltotal;
    uint64_t              hash;
    const char           *p, *end, *start, *q;
    ldseg_json_t          js;
    ldseg_json_val_t      e;
    ldseg_export_ev_t    *ev;
    ldseg_export_block_t *first, *last, *b;

    memset(res, 0, sizeof(ldseg_result_t));

    if (len > opt->max_body) {
        err->reason = LDSEG_REASON_TOO_LARGE;
        err->message = "body is larger than the limit";
        return LDSEG_ETOOBIG;
    }

    js.end = body + len;
    js.max_depth = opt->max_depth;
    js.code = NULL;
    js.ctx = NULL;
    js.odd = 0;

    end = body + len;
    start = ldseg_json_ws(body, end);

    if (start == end || *start != '[') {
        err->reason = LDSEG_REASON_NOT_AN_ARRAY;
        err->message = "body is not a JSON array of events";
        return LDSEG_EINVAL;
    }

    /*
     * The elements are counted by a walk that does not validate (exact for
     * valid JSON; the scan below validates, and a count that differs means
     * the body is not JSON); then one validating scan picks each event's
     * fields.  Only the events that become messages are kept, in blocks,
     * so memory follows the output, not the number of elements.
     */

    n = 0;
    q = start;

    while (ldseg_json_array_next(&q, end, &e)) {
        n++;
    }

    first = NULL;
    last = NULL;

    if (n != 0) {
        res->msgs = a->alloc(a->ctx, n * sizeof(ldseg_msg_result_t));
        if (res->msgs == NULL) {
            goto nomem;
        }
    }

    /* FNV-1a of the body, for messageIds when the post has no ID */

    hash = 0xcbf29ce484222325ULL;

    use_id = ldseg_export_id_ok(&opt->payload_id);

    if (!use_id) {
        for (i = 0; i < len; i++) {
            hash = (hash ^ (unsigned char) body[i]) * 0x100000001b3ULL;
        }
    }

    total = 0;
    ltotal = 0;
    i = 0;
    p = ldseg_json_ws(start + 1, end);

    if (js.max_depth < 1) {
        p = ldseg_json_fail(&js, "too_deep");

    } else if (p < end && *p == ']') {
        p++;

    } else {
        for ( ;; ) {
            if (i == n) {
                p = ldseg_json_fail(&js, "invalid_json");
                break;
            }

            /* the next free place in the last block */

            if (last == NULL || last->n == LDSEG_EXPORT_BLOCK) {
                b = a->alloc(a->ctx, sizeof(ldseg_export_block_t));
                if (b == NULL) {
                    goto nomem;
                }

                b->next = NULL;
                b->n = 0;

                if (last != NULL) {
                    last->next = b;

                } else {
                    first = b;
                }

                last = b;
            }

            ev = &last->ev[last->n];
            memset(ev, 0, sizeof(ldseg_export_ev_t));
            ev->index = i;

            if (p < end && *p == '{') {
                e.p = p;
                e.type = LDSEG_JSON_OBJECT;
                p = ldseg_json_object(&js, p, 1, ldseg_export_keys,
                                      sizeof(ldseg_export_keys)
                                      / sizeof(ldseg_json_key_t), ev->f);

            } else {
                e.p = p;
                e.type = LDSEG_JSON_NONE;
                p = ldseg_json_value(&js, p, 1, NULL);
            }

            if (p == NULL) {
                break;
            }

            e.len = (size_t) (p - e.p);

            if (e.type != LDSEG_JSON_OBJECT) {
                ev->status = LDSEG_MSG_REJECTED;
                ev->err.reason = LDSEG_REASON_NOT_AN_OBJECT;
                ev->err.message = "event is not a JSON object";

            } else {
                ldseg_export_prepare(ev);
            }

            if (ev->status == LDSEG_MSG_EVENT) {
                ev->len = ldseg_export_write(ev, opt, use_id, hash, NULL);

                if (ev->len > opt->max_message) {
                    ev->status = LDSEG_MSG_REJECTED;
                    ev->err.reason = LDSEG_REASON_TOO_LARGE;
                    ev->err.message = "the Segment message would be larger "
                                      "than 32 KB";
                    ev->large = 1;
                    ltotal += ev->len + 1;

                } else {
                    total += ev->len + 1;
                }
            }

            res->msgs[i].status = ev->status;
            res->msgs[i].err = ev->err;
            res->msgs[i].msg_len = e.len;
            res->msgs[i].event_off = 0;
            res->msgs[i].event_len = 0;

            /* one Segment message per exported event */
            res->msgs[i].nld = (ev->status == LDSEG_MSG_EVENT);

            if (ev->status == LDSEG_MSG_EVENT) {
                last->n++;
                res->nevents++;
                res->nld++;

            } else if (ev->large) {
                /* kept whole for the caller: never truncated */
                last->n++;
                res->nlarge++;
                res->nrejected++;

            } else if (ev->status == LDSEG_MSG_SKIPPED) {
                res->nskipped++;

            } else {
                res->nrejected++;
            }

            i++;
            p = ldseg_json_ws(p, end);

            if (p < end && *p == ',') {
                p = ldseg_json_ws(p + 1, end);
                continue;
            }

            p = (p < end && *p == ']') ? p + 1 : ldseg_json_fail(&js,
                                                           "invalid_json");
            break;
        }
    }

    if (p == NULL || ldseg_json_ws(p, end) != end || i != n) {
        ldseg_export_blocks_free(first, a);
        ldseg_result_free(res, a);

        err->reason = (js.code != NULL && strcmp(js.code, "too_deep") == 0)
                      ? LDSEG_REASON_TOO_DEEP : LDSEG_REASON_INVALID_JSON;
        err->message = "body is not valid JSON";
        return LDSEG_EINVAL;
    }

    res->n = n;

    if (total != 0) {
        res->events = a->alloc(a->ctx, total);
        if (res->events == NULL) {
            goto nomem;
        }
    }

    if (ltotal != 0) {
        res->large = a->alloc(a->ctx, ltotal);
        if (res->large == NULL) {
            goto nomem;
        }
    }

    out = res->events;
    lout = res->large;

    for (b = first; b != NULL; b = b->next) {
        for (i = 0; i < b->n; i++) {
            ev = &b->ev[i];

            if (ev->large) {
                base = res->large;
                o = &lout;

            } else {
                base = res->events;
                o = &out;
            }

            if (*o != base) {
                *(*o)++ = ',';
            }

            res->msgs[ev->index].event_off = (size_t) (*o - base);
            res->msgs[ev->index].event_len = ldseg_export_write(ev, opt,
                                                        use_id, hash, *o);
            *o += res->msgs[ev->index].event_len;
        }
    }

    res->events_len = (size_t) (out - res->events);
    res->large_len = (size_t) (lout - res->large);

    ldseg_export_blocks_free(first, a);

    return LDSEG_OK;

nomem:

    ldseg_export_blocks_free(first, a);
    ldseg_result_free(res, a);

    err->reason = LDSEG_REASON_NO_MEMORY;
    err->message = "out of memory";

    return LDSEG_ENOMEM;
}


static void
ldseg_export_blocks_free(ldseg_export_block_t *b,
    const ldseg_allocator_t *a)
{
    ldseg_export_block_t  *next;

    for ( /* void */ ; b != NULL; b = next) {
        next = b->next;
        a->free(a->ctx, b);
    }
}

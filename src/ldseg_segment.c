
/*
 * Copyright (C) ldseg authors
 *
 * The Segment Tracking API model: which fields of a message matter, the
 * request-level limits, single messages and batches.  A body is scanned
 * once; every message is prepared for translation as it is met.
 */


#include <math.h>
#include <string.h>

#include <ldseg_number.h>
#include <ldseg_segment.h>
#include <ldseg_time.h>
#include <ldseg_translate.h>
#include <ldseg_mapping_run.h>


#define LDSEG_KEY(name, slot)  { name, sizeof(name) - 1, slot, NULL, NULL, 0 }

/* the longest timestamp string read */
#define LDSEG_SEGMENT_STR_MAX      1024


static ldseg_rc_t ldseg_segment_fail(ldseg_error_t *err, ldseg_rc_t rc,
    ldseg_reason_e reason, const char *message);
static const char *ldseg_segment_batch(ldseg_json_t *js, const char *p,
    unsigned depth, ldseg_json_val_t *v);
static ldseg_event_t *ldseg_segment_next(ldseg_json_t *js,
    ldseg_segment_t *s);
static ldseg_rc_t ldseg_segment_scan_fail(const ldseg_json_t *js,
    ldseg_error_t *err);
static ldseg_integration_e ldseg_segment_integration(
    const ldseg_json_val_t *v);
static void ldseg_segment_pipeline(ldseg_segment_t *s, ldseg_event_t *ev);
static const char *ldseg_segment_context(ldseg_json_t *js, const char *p,
    unsigned depth, ldseg_json_val_t *v);
static const char *ldseg_segment_context_scan(ldseg_segment_t *s,
    ldseg_json_t *js, const char *p, unsigned depth, ldseg_json_val_t *v);
static void ldseg_segment_ahead(ldseg_segment_t *s, ldseg_json_t *js,
    const char *array, unsigned depth);
static void ldseg_segment_inherit(ldseg_segment_t *s, ldseg_json_t *js,
    const char *array, unsigned depth, ldseg_segment_msg_t *m);


static const ldseg_json_key_t  ldseg_props_keys[] = {
    LDSEG_KEY("revenue", LDSEG_F_REVENUE),
    LDSEG_KEY("value", LDSEG_F_VALUE)
};


static const ldseg_json_key_t  ldseg_integrations_keys[] = {
    LDSEG_KEY("All", LDSEG_F_INT_ALL),
    LDSEG_KEY("LaunchDarkly", LDSEG_F_INT_LD),
    LDSEG_KEY("LaunchDarkly (Actions)", LDSEG_F_INT_LD_ACTIONS)
};


#define LDSEG_INTEGRATIONS_KEY                                               \
    { "integrations", sizeof("integrations") - 1, LDSEG_F_INTEGRATIONS, 0,  \
      ldseg_integrations_keys,                                               \
      sizeof(ldseg_integrations_keys) / sizeof(ldseg_json_key_t) }


static const ldseg_json_key_t  ldseg_msg_keys[] = {
    LDSEG_KEY("type", LDSEG_F_TYPE),
    LDSEG_KEY("event", LDSEG_F_EVENT),
    LDSEG_KEY("userId", LDSEG_F_USER_ID),
    LDSEG_KEY("anonymousId", LDSEG_F_ANONYMOUS_ID),
    LDSEG_KEY("previousId", LDSEG_F_PREVIOUS_ID),
    LDSEG_KEY("groupId", LDSEG_F_GROUP_ID),
    { "properties", sizeof("properties") - 1, LDSEG_F_PROPERTIES, 0,
      ldseg_props_keys, sizeof(ldseg_props_keys) / sizeof(ldseg_json_key_t) },
    LDSEG_KEY("timestamp", LDSEG_F_TIMESTAMP),
    LDSEG_KEY("writeKey", LDSEG_F_WRITE_KEY),
    LDSEG_KEY("messageId", LDSEG_F_MESSAGE_ID),
    LDSEG_KEY("sentAt", LDSEG_F_SENT_AT),
    LDSEG_INTEGRATIONS_KEY
};


static const ldseg_json_key_t  ldseg_batch_keys[] = {
    { "batch", sizeof("batch") - 1, LDSEG_F_BATCH, ldseg_segment_batch,
      NULL, 0 },
    LDSEG_KEY("writeKey", LDSEG_F_WRITE_KEY),
    LDSEG_KEY("sentAt", LDSEG_F_SENT_AT),
    LDSEG_INTEGRATIONS_KEY,
    { "context", sizeof("context") - 1, LDSEG_F_BATCH_CONTEXT,
      ldseg_segment_context, NULL, 0 }
};


const ldseg_json_key_t *
ldseg_segment_keys(size_t *n)
{
    *n = sizeof(ldseg_msg_keys) / sizeof(ldseg_json_key_t);

    return ldseg_msg_keys;
}


ldseg_endpoint_e
ldseg_segment_type(const ldseg_json_val_t *v)
{
    char              buf[64];      /* "identify" with every byte escaped */
    size_t            len;
    const char       *s;
    ldseg_endpoint_e  ep;

    if (v->type != LDSEG_JSON_STRING) {
        return LDSEG_EP_UNKNOWN;
    }

    /* compared as JSON.parse() reads it: "tr\u0061ck" is "track" */

    if (memchr(v->p, '\\', v->len) != NULL) {
        if (v->len > sizeof(buf)) {
            return LDSEG_EP_UNKNOWN;
        }

        len = ldseg_json_string_decode(v->p, v->len, buf);
        s = buf;

    } else {
        len = v->len - 2;
        s = v->p + 1;
    }

    if (len < 4) {
        /* the short forms are endpoint names only */
        return LDSEG_EP_UNKNOWN;
    }

    ep = ldseg_endpoint(s, len);

    return (ep == LDSEG_EP_BATCH) ? LDSEG_EP_UNKNOWN : ep;
}


void
ldseg_segment_normalize(ldseg_segment_msg_t *m)
{
    static const ldseg_segment_field_e  ids[] = {
        LDSEG_F_USER_ID, LDSEG_F_ANONYMOUS_ID, LDSEG_F_PREVIOUS_ID
    };

    size_t             i;
    ldseg_json_val_t  *v;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        v = &m->f[ids[i]];

        if (v->type == LDSEG_JSON_STRING && v->len == 2) {
            v->type = LDSEG_JSON_NONE;
        }
    }
}


static ldseg_integration_e
ldseg_segment_integration(const ldseg_json_val_t *v)
{
    switch (v->type) {

    case LDSEG_JSON_NONE:
    case LDSEG_JSON_NULL:
        return LDSEG_INT_UNSET;

    case LDSEG_JSON_FALSE:
        return LDSEG_INT_OFF;

    default:
        /* true, and an options object, and anything else that is not false */
        return LDSEG_INT_ON;
    }
}


void
ldseg_segment_integrations(const ldseg_segment_msg_t *m,
    ldseg_integrations_t *in)
{
    const ldseg_json_val_t  *v;

    v = &m->f[LDSEG_F_INTEGRATIONS];

    in->set = (v->type != LDSEG_JSON_NONE && v->type != LDSEG_JSON_NULL);

    /* the keys of an object only */

    if (v->type != LDSEG_JSON_OBJECT) {
        in->all = LDSEG_INT_UNSET;
        in->ld = LDSEG_INT_UNSET;
        in->ld_actions = LDSEG_INT_UNSET;
        return;
    }

    in->all = ldseg_segment_integration(&m->f[LDSEG_F_INT_ALL]);
    in->ld = ldseg_segment_integration(&m->f[LDSEG_F_INT_LD]);
    in->ld_actions = ldseg_segment_integration(&m->f[LDSEG_F_INT_LD_ACTIONS]);
}


int
ldseg_segment_enabled(const ldseg_integrations_t *own,
    const ldseg_integrations_t *batch, ldseg_format_e format)
{
    unsigned                     name, other;
    const ldseg_integrations_t  *in;

    in = own;

    if (!own->set && batch != NULL && batch->set) {
        in = batch;
    }

    /* the destination's name in Segment's catalog first */

    if (format == LDSEG_FORMAT_CLASSIC) {
        name = in->ld;
        other = in->ld_actions;

    } else {
        name = in->ld_actions;
        other = in->ld;
    }

    if (name != LDSEG_INT_UNSET) {
        return name == LDSEG_INT_ON;
    }

    if (other != LDSEG_INT_UNSET) {
        return other == LDSEG_INT_ON;
    }

    return in->all != LDSEG_INT_OFF;
}


ldseg_rc_t
ldseg_segment_instant(const ldseg_json_val_t *v, int64_t *ms, unsigned *set)
{
    char         buf[LDSEG_SEGMENT_STR_MAX];
    double       d;
    size_t       len;
    const char  *s;

    *set = 0;

    switch (v->type) {

    case LDSEG_JSON_NONE:
    case LDSEG_JSON_NULL:
        return LDSEG_OK;

    case LDSEG_JSON_NUMBER:
        d = ldseg_number_parse(v->p, v->len);

        /*
         * Epoch milliseconds, truncated like Date's TimeClip; a number
         * out of Date's range is not checked by the reference, whose
         * dayjs then falls back to the current time.
         */

        if (isinf(d)) {
            /* ajv refuses Infinity as a number */
            return LDSEG_EINVAL;
        }

        if (d > (double) LDSEG_TIME_MAX_MS
            || d < -(double) LDSEG_TIME_MAX_MS)
        {
            return LDSEG_OK;
        }

        *ms = (int64_t) d;
        *set = 1;

        return LDSEG_OK;

    case LDSEG_JSON_STRING:
        if (v->len == 2) {
            return LDSEG_OK;
        }

        if (v->len > sizeof(buf)) {
            return LDSEG_EINVAL;
        }

        if (memchr(v->p, '\\', v->len) != NULL) {
            len = ldseg_json_string_decode(v->p, v->len, buf);
            s = buf;

        } else {
            s = v->p + 1;
            len = v->len - 2;
        }

        if (ldseg_time_parse(s, len, ms) != LDSEG_OK) {
            return LDSEG_EINVAL;
        }

        *set = 1;

        return LDSEG_OK;

    default:
        return LDSEG_EINVAL;
    }
}


static ldseg_rc_t
ldseg_segment_fail(ldseg_error_t *err, ldseg_rc_t rc, ldseg_reason_e reason,
    const char *message)
{
    err->reason = reason;
    err->message = message;

    return rc;
}


static ldseg_event_t *
ldseg_segment_next(ldseg_json_t *js, ldseg_segment_t *s)
{
    size_t           cap;
    ldseg_event_t  **blocks, *b;

    if (s->n == s->opt->max_batch_messages) {
        (void) ldseg_json_fail(js, "too_many_messages");
        return NULL;
    }

    if (s->n == s->nblocks * LDSEG_SEGMENT_BLOCK) {

        if (s->nblocks == s->cap) {
            cap = (s->cap == 0) ? 4 : s->cap * 2;

            if (cap > ((size_t) -1) / sizeof(ldseg_event_t *)) {
                (void) ldseg_json_fail(js, "no_memory");
                return NULL;
            }

            blocks = s->a->alloc(s->a->ctx, cap * sizeof(ldseg_event_t *));
            if (blocks == NULL) {
                (void) ldseg_json_fail(js, "no_memory");
                return NULL;
            }

            if (s->blocks != NULL) {
                memcpy(blocks, s->blocks,
                       s->nblocks * sizeof(ldseg_event_t *));
                s->a->free(s->a->ctx, s->blocks);
            }

            s->blocks = blocks;
            s->cap = cap;
        }

        b = s->a->alloc(s->a->ctx,
                        LDSEG_SEGMENT_BLOCK * sizeof(ldseg_event_t));
        if (b == NULL) {
            (void) ldseg_json_fail(js, "no_memory");
            return NULL;
        }

        s->blocks[s->nblocks++] = b;
    }

    b = ldseg_segment_message(s, s->n);
    s->n++;

    return b;
}


void
ldseg_segment_free(ldseg_segment_t *s)
{
    size_t  i;

    if (s->ctx_vals != NULL) {
        s->a->free(s->a->ctx, s->ctx_vals);
        s->ctx_vals = NULL;
    }

    if (s->cap == 0) {
        /* a single message, or an empty batch: nothing was allocated */
        s->blocks = NULL;
        s->nblocks = 0;
        return;
    }

    for (i = 0; i < s->nblocks; i++) {
        s->a->free(s->a->ctx, s->blocks[i]);
    }

    s->a->free(s->a->ctx, s->blocks);

    s->blocks = NULL;
    s->nblocks = 0;
    s->cap = 0;
}


/*
 * The handler of the top-level "batch" key: validates the array while
 * preparing each message, so the batch is scanned once.
 */

static const char *
ldseg_segment_batch(ldseg_json_t *js, const char *p, unsigned depth,
    ldseg_json_val_t *v)
{
    unsigned                odd;
    const char             *start, *end, *q;
    ldseg_event_t          *ev;
    ldseg_segment_t        *s;
    ldseg_endpoint_e        type;
    ldseg_json_val_t        e, fv[LDSEG_F_N];
    ldseg_segment_msg_t     m;
    const ldseg_options_t  *opt;

    s = js->ctx;
    opt = s->opt;
    end = js->end;
    start = p;

    /* the last "batch" wins: an earlier one's mapped events go too */
    s->n = 0;

    if (s->run != NULL) {
        ldseg_mapping_run_reset(s->run);
    }

    if (p == end || *p != '[') {
        return ldseg_json_value(js, p, depth, v);
    }

    if (depth + 1 > js->max_depth) {
        return ldseg_json_fail(js, "too_deep");
    }

    p = ldseg_json_ws(p + 1, end);

    if (p < end && *p == ']') {
        p++;
        goto done;
    }

    for ( ;; ) {

        ev = ldseg_segment_next(js, s);
        if (ev == NULL) {
            return NULL;
        }

        q = ldseg_json_ws(p, end);

        if (q < end && *q == '{') {
            m.run = s->run;

            if (m.run != NULL) {
                m.f = ldseg_mapping_run_vals(m.run);

            } else {
                memset(fv, 0, sizeof(fv));
                m.f = fv;
            }

            odd = js->odd;

            p = ldseg_json_object(js, q, depth + 1, s->keys, s->nkeys, m.f);
            if (p == NULL) {
                return NULL;
            }

            m.odd = (js->odd != odd);
            m.batch = 1;
            m.msg.p = q;
            m.msg.len = (size_t) (p - q);
            m.msg.type = LDSEG_JSON_OBJECT;
            m.ctx = NULL;

            if (m.run != NULL
                && opt->mappings->ctx_slot != LDSEG_MAPPING_NO_SLOT)
            {
                ldseg_segment_inherit(s, js, start, depth, &m);

                if (js->code != NULL) {
                    return NULL;
                }
            }

            type = ldseg_segment_type(&m.f[LDSEG_F_TYPE]);

            if ((size_t) (p - q) > opt->max_message) {
                memset(ev, 0, sizeof(ldseg_event_t));
                ev->status = LDSEG_MSG_REJECTED;
                ev->err.reason = LDSEG_REASON_TOO_LARGE;
                ev->err.message = "message is larger than the limit";

            } else if (type == LDSEG_EP_UNKNOWN) {
                memset(ev, 0, sizeof(ldseg_event_t));
                ev->status = LDSEG_MSG_REJECTED;
                ev->err.reason = LDSEG_REASON_INVALID_TYPE;
                ev->err.message = "batch message needs a known \"type\"";

            } else {
                ldseg_segment_normalize(&m);
                ldseg_translate_prepare(&m, type, opt, ev);

                s->pipeline |= ev->integ.set | ev->has_sent;
            }

            ev->msg_len = (size_t) (p - q);

        } else {
            p = ldseg_json_value(js, q, depth + 1, &e);
            if (p == NULL) {
                return NULL;
            }

            memset(ev, 0, sizeof(ldseg_event_t));
            ev->status = LDSEG_MSG_REJECTED;
            ev->err.reason = LDSEG_REASON_NOT_AN_OBJECT;
            ev->err.message = "batch message is not a JSON object";
            ev->msg_len = e.len;
        }

        p = ldseg_json_ws(p, end);

        if (p == end) {
            return ldseg_json_fail(js, "invalid_json");
        }

        if (*p == ']') {
            p++;
            break;
        }

        if (*p != ',') {
            return ldseg_json_fail(js, "invalid_json");
        }

        p++;
    }

done:

    v->p = start;
    v->len = (size_t) (p - start);
    v->type = LDSEG_JSON_ARRAY;

    return p;
}


/*
 * The handler of the top-level "context" key of a batch: with mappings
 * that read a message's context, an object is scanned with their table
 * for it, to stand in for the context of every message that has none.
 */

static const char *
ldseg_segment_context(ldseg_json_t *js, const char *p, unsigned depth,
    ldseg_json_val_t *v)
{
    ldseg_segment_t  *s;

    s = js->ctx;

    /*
     * Once the body was looked into after an array, the batch's context
     * is known: the last one of the body
     */

    if (s->run == NULL
        || s->opt->mappings->ctx_slot == LDSEG_MAPPING_NO_SLOT
        || s->ahead)
    {
        return ldseg_json_value(js, p, depth, v);
    }

    return ldseg_segment_context_scan(s, js, p, depth, v);
}


static const char *
ldseg_segment_context_scan(ldseg_segment_t *s, ldseg_json_t *js,
    const char *p, unsigned depth, ldseg_json_val_t *v)
{
    size_t                   n;
    unsigned                 odd;
    const char              *q;
    const ldseg_mappings_t  *maps;

    maps = s->opt->mappings;
    odd = js->odd;

    /* the last one wins, and only an object stands in for a message's */
    s->ctx.type = LDSEG_JSON_NONE;

    if (p == js->end || *p != '{' || maps->ctx_keys == NULL) {
        q = ldseg_json_value(js, p, depth, v);

    } else {
        if (s->ctx_vals == NULL) {
            n = maps->nslots * sizeof(ldseg_json_val_t);

            s->ctx_vals = s->a->alloc(s->a->ctx, n);
            if (s->ctx_vals == NULL) {
                return ldseg_json_fail(js, "no_memory");
            }

            memset(s->ctx_vals, 0, n);
        }

        q = ldseg_json_object(js, p, depth, maps->ctx_keys, maps->nctx_keys,
                              s->ctx_vals);
        if (q != NULL) {
            v->p = p;
            v->len = (size_t) (q - p);
            v->type = LDSEG_JSON_OBJECT;
        }
    }

    if (q == NULL) {
        return NULL;
    }

    if (v->type == LDSEG_JSON_OBJECT) {
        s->ctx = *v;
        s->ctx_odd = (js->odd != odd);
    }

    return q;
}


/*
 * A batch message without a "context" of its own (absent or null) gets
 * the batch's, whole, as Segment's API gives it: its slots are the batch
 * context's.  The batch's may follow the array: the first such message
 * looks for the body's last one in the rest of the body with a walk that
 * skips the array by its brackets (once per request, however many
 * "batch" keys the body repeats); the scan validates it all later.
 */

static void
ldseg_segment_inherit(ldseg_segment_t *s, ldseg_json_t *js,
    const char *array, unsigned depth, ldseg_segment_msg_t *m)
{
    size_t                   i;
    unsigned                 slot;
    const ldseg_mappings_t  *maps;

    maps = s->opt->mappings;

    if (m->f[maps->ctx_slot].type != LDSEG_JSON_NONE
        && m->f[maps->ctx_slot].type != LDSEG_JSON_NULL)
    {
        return;
    }

    if (!s->ahead) {
        s->ahead = 1;
        ldseg_segment_ahead(s, js, array, depth);

        if (js->code != NULL) {
            return;
        }
    }

    if (s->ctx.type != LDSEG_JSON_OBJECT) {
        return;
    }

    m->f[maps->ctx_slot] = s->ctx;

    for (i = 0; i < maps->nctx_slots; i++) {
        slot = maps->ctx_slots[i];
        m->f[slot] = s->ctx_vals[slot];
    }

    m->ctx = &s->ctx;
    m->odd |= s->ctx_odd;
}


/*
 * The last top-level "context" after the batch array at "array", if
 * any, scanned into s->ctx; the body is not validated yet, so nothing is
 * taken from it unless it scans.
 */

static void
ldseg_segment_ahead(ldseg_segment_t *s, ldseg_json_t *js, const char *array,
    unsigned depth)
{
    char               buf[64];
    size_t             len;
    const char        *p, *end, *key;
    ldseg_json_t       ajs;
    ldseg_json_val_t   name, val, last, v;

    end = js->end;

    p = ldseg_json_skip(array, end, NULL);
    if (p == NULL) {
        return;
    }

    last.type = LDSEG_JSON_NONE;

    while (ldseg_json_object_next(&p, end, &name, &val)) {

        if (name.type != LDSEG_JSON_STRING || name.len > sizeof(buf)) {
            continue;
        }

        if (memchr(name.p, '\\', name.len) != NULL) {
            if (ldseg_json_validate(name.p, name.len, 1) != LDSEG_OK) {
                return;
            }

            len = ldseg_json_string_decode(name.p, name.len, buf);
            key = buf;

        } else {
            len = name.len - 2;
            key = name.p + 1;
        }

        if (len == 7 && memcmp(key, "context", 7) == 0) {
            last = val;
        }
    }

    if (last.type == LDSEG_JSON_NONE) {
        return;
    }

    ajs.end = end;
    ajs.max_depth = js->max_depth;
    ajs.code = NULL;
    ajs.ctx = s;
    ajs.odd = 0;

    if (ldseg_segment_context_scan(s, &ajs, last.p, depth, &v) == NULL) {
        s->ctx.type = LDSEG_JSON_NONE;

        if (ajs.code != NULL && strcmp(ajs.code, "no_memory") == 0) {
            (void) ldseg_json_fail(js, "no_memory");
        }
    }
}


/*
 * Segment's pipeline, once the whole body is read: "integrations" (a
 * destination that does not run refuses nothing either), clock skew, and
 * the bound on messageId when it is reported.
 */

static void
ldseg_segment_pipeline(ldseg_segment_t *s, ldseg_event_t *ev)
{
    int64_t                 sent;
    const ldseg_options_t  *opt;

    opt = s->opt;

    /* a single message's body has no integrations or sentAt of a batch */

    if ((ev->integ.set || s->integ.set)
        && (ev->status != LDSEG_MSG_REJECTED || ev->refused))
    {
        if (!ldseg_segment_enabled(&ev->integ, &s->integ, opt->format)) {
            ev->status = LDSEG_MSG_SKIPPED;
            ev->err.reason = LDSEG_REASON_INTEGRATIONS_DISABLED;
            ev->err.message = "\"integrations\" turns LaunchDarkly off for "
                              "this message";
        }
    }

    if (ev->status == LDSEG_MSG_REJECTED) {
        return;
    }

    if (opt->message_ids && ev->mid_len > LDSEG_MAX_MESSAGE_ID) {
        ev->status = LDSEG_MSG_REJECTED;
        ev->err.reason = LDSEG_REASON_INVALID_MESSAGE_ID;
        ev->err.message = "\"messageId\" is longer than 256 bytes";
        return;
    }

    if (ev->status != LDSEG_MSG_EVENT || !opt->clock_skew || !ev->has_ts) {
        return;
    }

    if (ev->has_sent) {
        sent = ev->sent_ms;

    } else if (s->has_sent) {
        sent = s->sent_ms;

    } else {
        return;
    }

    /* a correction beyond Date's range is not made */
    (void) ldseg_time_skew(ev->ms, sent, opt->now_ms, &ev->ms);
}


static ldseg_rc_t
ldseg_segment_scan_fail(const ldseg_json_t *js, ldseg_error_t *err)
{
    const char  *code;

    code = (js->code != NULL) ? js->code : "invalid_json";

    if (strcmp(code, "too_deep") == 0) {
        return ldseg_segment_fail(err, LDSEG_EINVAL, LDSEG_REASON_TOO_DEEP,
                                  "JSON nesting is too deep");
    }

    if (strcmp(code, "too_many_messages") == 0) {
        return ldseg_segment_fail(err, LDSEG_ETOOBIG,
                                  LDSEG_REASON_TOO_MANY_MESSAGES,
                                  "batch has too many messages");
    }

    if (strcmp(code, "no_memory") == 0) {
        return ldseg_segment_fail(err, LDSEG_ENOMEM, LDSEG_REASON_NO_MEMORY,
                                  "out of memory");
    }

    return ldseg_segment_fail(err, LDSEG_EINVAL, LDSEG_REASON_INVALID_JSON,
                              "body is not valid JSON");
}


ldseg_rc_t
ldseg_segment_parse(ldseg_segment_t *s, const char *body, size_t len,
    ldseg_endpoint_e ep, ldseg_event_t *single, ldseg_mapping_run_t *run,
    const ldseg_options_t *opt, const ldseg_allocator_t *a,
    ldseg_error_t *err)
{
    int                   object;
    size_t                i;
    unsigned              set;
    const char           *p, *end, *start;
    ldseg_rc_t            rc;
    ldseg_json_t          js;
    ldseg_json_val_t      fv[LDSEG_F_N];
    ldseg_segment_msg_t   m;

    s->opt = opt;
    s->a = a;
    s->blocks = NULL;
    s->nblocks = 0;
    s->cap = 0;
    s->n = 0;
    s->one = single;
    s->write_key.type = LDSEG_JSON_NONE;
    s->integ.set = 0;
    s->has_sent = 0;
    s->pipeline = opt->message_ids;
    s->keys = ldseg_msg_keys;
    s->nkeys = sizeof(ldseg_msg_keys) / sizeof(ldseg_json_key_t);
    s->run = run;
    s->ctx.type = LDSEG_JSON_NONE;
    s->ctx_vals = NULL;
    s->ctx_odd = 0;
    s->ahead = 0;

    if (run != NULL) {
        s->keys = opt->mappings->keys;
        s->nkeys = opt->mappings->nkeys;
    }

    if (ep == LDSEG_EP_UNKNOWN) {
        return ldseg_segment_fail(err, LDSEG_EINVAL,
                                  LDSEG_REASON_UNKNOWN_ENDPOINT,
                                  "unknown Segment endpoint");
    }

    if (len > (ep == LDSEG_EP_BATCH ? opt->max_batch_bytes
                                    : opt->max_message))
    {
        return ldseg_segment_fail(err, LDSEG_ETOOBIG, LDSEG_REASON_TOO_LARGE,
                                  "body is larger than the limit");
    }

    end = body + len;

    js.end = end;
    js.max_depth = opt->max_depth;
    js.code = NULL;
    js.ctx = s;
    js.odd = 0;

    memset(&m, 0, sizeof(ldseg_segment_msg_t));

    if (run != NULL && ep != LDSEG_EP_BATCH) {
        m.f = ldseg_mapping_run_vals(run);
        m.run = run;

    } else {
        memset(fv, 0, sizeof(fv));
        m.f = fv;
    }

    p = ldseg_json_ws(body, end);
    object = (p < end && *p == '{');
    start = p;

    if (!object) {
        p = ldseg_json_value(&js, p, 0, NULL);

    } else if (ep == LDSEG_EP_BATCH) {
        p = ldseg_json_object(&js, p, 0, ldseg_batch_keys,
                              sizeof(ldseg_batch_keys)
                              / sizeof(ldseg_json_key_t), m.f);

    } else {
        p = ldseg_json_object(&js, p, 0, s->keys, s->nkeys, m.f);
    }

    if (p != NULL && ldseg_json_ws(p, end) != end) {
        js.code = "invalid_json";
        p = NULL;
    }

    if (p == NULL) {
        rc = ldseg_segment_scan_fail(&js, err);
        goto failed;
    }

    if (!object) {
        rc = ldseg_segment_fail(err, LDSEG_EINVAL, LDSEG_REASON_NOT_AN_OBJECT,
                                "body is not a JSON object");
        goto failed;
    }

    if (ep == LDSEG_EP_BATCH) {
        if (m.f[LDSEG_F_BATCH].type != LDSEG_JSON_ARRAY) {
            rc = ldseg_segment_fail(err, LDSEG_EINVAL,
                                    LDSEG_REASON_INVALID_BATCH,
                                    "batch body needs a \"batch\" array");
            goto failed;
        }

    } else {
        s->n = 1;
        s->blocks = &s->one;
        m.odd = (js.odd != 0);
        m.msg.p = start;
        m.msg.len = (size_t) (p - start);
        m.msg.type = LDSEG_JSON_OBJECT;
        ldseg_segment_normalize(&m);
        ldseg_translate_prepare(&m, ep, opt, single);
        single->msg_len = (size_t) (p - start);

        s->pipeline |= single->integ.set | single->has_sent;
    }

    s->write_key = m.f[LDSEG_F_WRITE_KEY];

    if (ep == LDSEG_EP_BATCH) {

        /* the body's own sentAt and integrations, wherever they were */

        ldseg_segment_integrations(&m, &s->integ);

        if (ldseg_segment_instant(&m.f[LDSEG_F_SENT_AT], &s->sent_ms, &set)
            == LDSEG_OK)
        {
            s->has_sent = set;
        }

        s->pipeline |= s->integ.set | s->has_sent;
    }

    /* nothing for the pipeline to change in most requests */

    for (i = 0; s->pipeline && i < s->n; i++) {
        ldseg_segment_pipeline(s, ldseg_segment_message(s, i));
    }

    /* the batch context's slots served the messages' mappings only */

    if (s->ctx_vals != NULL) {
        a->free(a->ctx, s->ctx_vals);
        s->ctx_vals = NULL;
    }

    return LDSEG_OK;

failed:

    ldseg_segment_free(s);

    return rc;
}

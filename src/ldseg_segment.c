
/*
 * Copyright (C) ldseg authors
 *
 * The Segment Tracking API model: which fields of a message matter, the
 * request-level limits, single messages and batches.  A body is scanned
 * once; every message is prepared for translation as it is met.
 */


#include <string.h>

#include <ldseg_segment.h>
#include <ldseg_translate.h>


#define LDSEG_KEY(name, slot)  { name, sizeof(name) - 1, slot, NULL, NULL, 0 }


static ldseg_rc_t ldseg_segment_fail(ldseg_error_t *err, ldseg_rc_t rc,
    ldseg_reason_e reason, const char *message);
static const char *ldseg_segment_batch(ldseg_json_t *js, const char *p,
    unsigned depth, ldseg_json_val_t *v);
static ldseg_event_t *ldseg_segment_next(ldseg_json_t *js,
    ldseg_segment_t *s);
static ldseg_rc_t ldseg_segment_scan_fail(const ldseg_json_t *js,
    ldseg_error_t *err);


static const ldseg_json_key_t  ldseg_props_keys[] = {
    LDSEG_KEY("revenue", LDSEG_F_REVENUE),
    LDSEG_KEY("value", LDSEG_F_VALUE)
};


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
    LDSEG_KEY("writeKey", LDSEG_F_WRITE_KEY)
};


static const ldseg_json_key_t  ldseg_batch_keys[] = {
    { "batch", sizeof("batch") - 1, LDSEG_F_BATCH, ldseg_segment_batch,
      NULL, 0 },
    LDSEG_KEY("writeKey", LDSEG_F_WRITE_KEY)
};


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
    ldseg_json_val_t        e;
    ldseg_segment_msg_t     m;
    const ldseg_options_t  *opt;

    s = js->ctx;
    opt = s->opt;
    end = js->end;
    start = p;

    /* the last "batch" wins */
    s->n = 0;

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
            memset(&m, 0, sizeof(ldseg_segment_msg_t));
            odd = js->odd;

            p = ldseg_json_object(js, q, depth + 1, ldseg_msg_keys,
                                  sizeof(ldseg_msg_keys)
                                  / sizeof(ldseg_json_key_t), m.f);
            if (p == NULL) {
                return NULL;
            }

            m.odd = (js->odd != odd);

            type = ldseg_segment_type(&m.f[LDSEG_F_TYPE]);

            if ((size_t) (p - q) > opt->max_message) {
                ev->status = LDSEG_MSG_REJECTED;
                ev->err.reason = LDSEG_REASON_TOO_LARGE;
                ev->err.message = "message is larger than the limit";

            } else if (type == LDSEG_EP_UNKNOWN) {
                ev->status = LDSEG_MSG_REJECTED;
                ev->err.reason = LDSEG_REASON_INVALID_TYPE;
                ev->err.message = "batch message needs a known \"type\"";

            } else {
                ldseg_translate_prepare(&m, type, opt, ev);
            }

            ev->msg_len = (size_t) (p - q);

        } else {
            p = ldseg_json_value(js, q, depth + 1, &e);
            if (p == NULL) {
                return NULL;
            }

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
    ldseg_endpoint_e ep, ldseg_event_t *single, const ldseg_options_t *opt,
    const ldseg_allocator_t *a, ldseg_error_t *err)
{
    int                   object;
    const char           *p, *end, *start;
    ldseg_rc_t            rc;
    ldseg_json_t          js;
    ldseg_segment_msg_t   m;

    s->opt = opt;
    s->a = a;
    s->blocks = NULL;
    s->nblocks = 0;
    s->cap = 0;
    s->n = 0;
    s->one = single;
    s->write_key.type = LDSEG_JSON_NONE;

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
        p = ldseg_json_object(&js, p, 0, ldseg_msg_keys,
                              sizeof(ldseg_msg_keys)
                              / sizeof(ldseg_json_key_t), m.f);
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
        ldseg_translate_prepare(&m, ep, opt, single);
        single->msg_len = (size_t) (p - start);
    }

    s->write_key = m.f[LDSEG_F_WRITE_KEY];

    return LDSEG_OK;

failed:

    ldseg_segment_free(s);

    return rc;
}

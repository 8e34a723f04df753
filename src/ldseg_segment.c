
/*
 * Copyright (C) ldseg authors
 *
 * Segment Tracking API requests: endpoints, limits, single messages and
 * batches, and ldseg_process(), which scans the body once, prepares every
 * message, sizes the output exactly and writes all events into one buffer.
 */


#include <string.h>

#include <ldseg_segment.h>
#include <ldseg_translate.h>


#define LDSEG_KEY(name, slot)  { name, sizeof(name) - 1, slot, NULL, NULL, 0 }

/*
 * Prepared batch messages are kept in blocks of this many, which are
 * never moved: a batch of 2500 tiny messages costs no copying and no
 * allocation large enough to be mapped (and faulted in) afresh.  A block
 * (16 * 216 bytes) stays below a page, so nginx's request pool serves it
 * without a malloc() of its own.
 */
#define LDSEG_SEGMENT_BLOCK        16

#define ldseg_segment_ev(blocks, i)                                          \
    (&(blocks)[(i) / LDSEG_SEGMENT_BLOCK][(i) % LDSEG_SEGMENT_BLOCK])


typedef struct {
    const char                   *name;
    size_t                        len;
    ldseg_endpoint_e              ep;
} ldseg_endpoint_name_t;


/* ldseg_segment_batch()'s state, in ldseg_json_t.ctx */
typedef struct {
    const ldseg_options_t        *opt;
    const ldseg_allocator_t      *a;
    ldseg_event_t               **blocks;
    size_t                        nblocks;   /* allocated blocks */
    size_t                        cap;       /* slots in blocks[] */
    size_t                        n;
} ldseg_segment_ctx_t;


static ldseg_rc_t ldseg_segment_fail(ldseg_error_t *err, ldseg_rc_t rc,
    const char *code, const char *message);
static const char *ldseg_segment_batch(ldseg_json_t *js, const char *p,
    unsigned depth, ldseg_json_val_t *v);
static ldseg_event_t *ldseg_segment_next(ldseg_json_t *js,
    ldseg_segment_ctx_t *ctx);
static ldseg_rc_t ldseg_segment_scan_fail(const ldseg_json_t *js,
    ldseg_error_t *err);
static ldseg_rc_t ldseg_segment_write_key(const ldseg_json_val_t *v,
    const ldseg_allocator_t *a, ldseg_result_t *res);
static ldseg_rc_t ldseg_segment_output(ldseg_event_t *const *blocks,
    const ldseg_allocator_t *a, ldseg_result_t *res);
static void ldseg_segment_free(ldseg_segment_ctx_t *ctx);


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


static const ldseg_endpoint_name_t  ldseg_endpoints[] = {
    { "track", 5, LDSEG_EP_TRACK },
    { "identify", 8, LDSEG_EP_IDENTIFY },
    { "alias", 5, LDSEG_EP_ALIAS },
    { "page", 4, LDSEG_EP_PAGE },
    { "screen", 6, LDSEG_EP_SCREEN },
    { "group", 5, LDSEG_EP_GROUP },
    { "batch", 5, LDSEG_EP_BATCH },
    { "import", 6, LDSEG_EP_BATCH },
    { "t", 1, LDSEG_EP_TRACK },
    { "i", 1, LDSEG_EP_IDENTIFY },
    { "a", 1, LDSEG_EP_ALIAS },
    { "p", 1, LDSEG_EP_PAGE },
    { "s", 1, LDSEG_EP_SCREEN },
    { "g", 1, LDSEG_EP_GROUP },
    { "b", 1, LDSEG_EP_BATCH }
};


ldseg_endpoint_e
ldseg_endpoint(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(ldseg_endpoints) / sizeof(ldseg_endpoints[0]);
         i++)
    {
        if (ldseg_endpoints[i].len == len
            && memcmp(ldseg_endpoints[i].name, name, len) == 0)
        {
            return ldseg_endpoints[i].ep;
        }
    }

    return LDSEG_EP_UNKNOWN;
}


const char *
ldseg_endpoint_name(ldseg_endpoint_e ep)
{
    switch (ep) {
    case LDSEG_EP_TRACK:
        return "track";
    case LDSEG_EP_IDENTIFY:
        return "identify";
    case LDSEG_EP_ALIAS:
        return "alias";
    case LDSEG_EP_PAGE:
        return "page";
    case LDSEG_EP_SCREEN:
        return "screen";
    case LDSEG_EP_GROUP:
        return "group";
    case LDSEG_EP_BATCH:
        return "batch";
    default:
        return "unknown";
    }
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
ldseg_options_init(ldseg_options_t *opt)
{
    opt->format = LDSEG_FORMAT_ACTIONS;
    opt->now_ms = 0;
    opt->max_message = LDSEG_MAX_MESSAGE;
    opt->max_batch_bytes = LDSEG_MAX_BATCH_BYTES;
    opt->max_batch_messages = LDSEG_MAX_BATCH_MESSAGES;
    opt->max_depth = LDSEG_MAX_DEPTH;
}


static ldseg_rc_t
ldseg_segment_fail(ldseg_error_t *err, ldseg_rc_t rc, const char *code,
    const char *message)
{
    err->code = code;
    err->message = message;

    return rc;
}


static ldseg_event_t *
ldseg_segment_next(ldseg_json_t *js, ldseg_segment_ctx_t *ctx)
{
    size_t           cap;
    ldseg_event_t  **blocks, *b;

    if (ctx->n == ctx->opt->max_batch_messages) {
        (void) ldseg_json_fail(js, "too_many_messages");
        return NULL;
    }

    if (ctx->n == ctx->nblocks * LDSEG_SEGMENT_BLOCK) {

        if (ctx->nblocks == ctx->cap) {
            cap = (ctx->cap == 0) ? 4 : ctx->cap * 2;

            if (cap > ((size_t) -1) / sizeof(ldseg_event_t *)) {
                (void) ldseg_json_fail(js, "no_memory");
                return NULL;
            }

            blocks = ctx->a->alloc(ctx->a->ctx,
                                   cap * sizeof(ldseg_event_t *));
            if (blocks == NULL) {
                (void) ldseg_json_fail(js, "no_memory");
                return NULL;
            }

            if (ctx->blocks != NULL) {
                memcpy(blocks, ctx->blocks,
                       ctx->nblocks * sizeof(ldseg_event_t *));
                ctx->a->free(ctx->a->ctx, ctx->blocks);
            }

            ctx->blocks = blocks;
            ctx->cap = cap;
        }

        b = ctx->a->alloc(ctx->a->ctx,
                          LDSEG_SEGMENT_BLOCK * sizeof(ldseg_event_t));
        if (b == NULL) {
            (void) ldseg_json_fail(js, "no_memory");
            return NULL;
        }

        ctx->blocks[ctx->nblocks++] = b;
    }

    b = ldseg_segment_ev(ctx->blocks, ctx->n);
    ctx->n++;

    return b;
}


static void
ldseg_segment_free(ldseg_segment_ctx_t *ctx)
{
    size_t  i;

    for (i = 0; i < ctx->nblocks; i++) {
        ctx->a->free(ctx->a->ctx, ctx->blocks[i]);
    }

    if (ctx->blocks != NULL) {
        ctx->a->free(ctx->a->ctx, ctx->blocks);
    }

    ctx->blocks = NULL;
    ctx->nblocks = 0;
    ctx->cap = 0;
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
    ldseg_endpoint_e        type;
    ldseg_json_val_t        e;
    ldseg_segment_msg_t     m;
    ldseg_segment_ctx_t    *ctx;
    const ldseg_options_t  *opt;

    ctx = js->ctx;
    opt = ctx->opt;
    end = js->end;
    start = p;

    /* the last "batch" wins */
    ctx->n = 0;

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

        ev = ldseg_segment_next(js, ctx);
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
                ev->err.code = "too_large";
                ev->err.message = "message is larger than the limit";

            } else if (type == LDSEG_EP_UNKNOWN) {
                ev->status = LDSEG_MSG_REJECTED;
                ev->err.code = "invalid_type";
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
            ev->err.code = "not_an_object";
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
        return ldseg_segment_fail(err, LDSEG_EINVAL, "too_deep",
                                  "JSON nesting is too deep");
    }

    if (strcmp(code, "too_many_messages") == 0) {
        return ldseg_segment_fail(err, LDSEG_ETOOBIG, "too_many_messages",
                                  "batch has too many messages");
    }

    if (strcmp(code, "no_memory") == 0) {
        return ldseg_segment_fail(err, LDSEG_ENOMEM, "no_memory",
                                  "out of memory");
    }

    return ldseg_segment_fail(err, LDSEG_EINVAL, "invalid_json",
                              "body is not valid JSON");
}


static ldseg_rc_t
ldseg_segment_write_key(const ldseg_json_val_t *v, const ldseg_allocator_t *a,
    ldseg_result_t *res)
{
    if (v->type != LDSEG_JSON_STRING) {
        return LDSEG_OK;
    }

    res->write_key = a->alloc(a->ctx, v->len);
    if (res->write_key == NULL) {
        return LDSEG_ENOMEM;
    }

    res->write_key_len = ldseg_json_string_decode(v->p, v->len,
                                                  res->write_key);

    return LDSEG_OK;
}


static ldseg_rc_t
ldseg_segment_output(ldseg_event_t *const *blocks,
    const ldseg_allocator_t *a, ldseg_result_t *res)
{
    char                *p;
    size_t               i, len, total;
    ldseg_event_t       *ev;
    ldseg_msg_result_t  *mr;

    total = 0;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];
        ev = ldseg_segment_ev(blocks, i);
        mr->status = ev->status;
        mr->err = ev->err;
        mr->msg_len = ev->msg_len;

        switch (mr->status) {

        case LDSEG_MSG_EVENT:
            len = ldseg_translate_write(ev, NULL);

            /* the event and a comma; cannot overflow below SIZE_MAX / 2 */
            if (len > ((size_t) -1) / 2 - total) {
                return LDSEG_ENOMEM;
            }

            mr->event_len = len;
            total += len + 1;
            res->nevents++;
            break;

        case LDSEG_MSG_SKIPPED:
            res->nskipped++;
            break;

        default:
            res->nrejected++;
            break;
        }
    }

    if (res->nevents == 0) {
        return LDSEG_OK;
    }

    res->events = a->alloc(a->ctx, total);
    if (res->events == NULL) {
        return LDSEG_ENOMEM;
    }

    p = res->events;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];

        if (mr->status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (p != res->events) {
            *p++ = ',';
        }

        mr->event_off = (size_t) (p - res->events);
        p += ldseg_translate_write(ldseg_segment_ev(blocks, i), p);
    }

    res->events_len = (size_t) (p - res->events);

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_process(const char *body, size_t len, ldseg_endpoint_e ep,
    const ldseg_options_t *opt, const ldseg_allocator_t *a,
    ldseg_result_t *res, ldseg_error_t *err)
{
    int                   object;
    size_t                n;
    const char           *p, *end, *start;
    ldseg_rc_t            rc;
    ldseg_json_t          js;
    ldseg_event_t         single, *one, *const *blocks;
    ldseg_segment_ctx_t   ctx;
    ldseg_segment_msg_t   m;

    memset(res, 0, sizeof(ldseg_result_t));

    if (ep == LDSEG_EP_UNKNOWN) {
        return ldseg_segment_fail(err, LDSEG_EINVAL, "unknown_endpoint",
                                  "unknown Segment endpoint");
    }

    if (len > (ep == LDSEG_EP_BATCH ? opt->max_batch_bytes
                                    : opt->max_message))
    {
        return ldseg_segment_fail(err, LDSEG_ETOOBIG, "too_large",
                                  "body is larger than the limit");
    }

    end = body + len;

    ctx.opt = opt;
    ctx.a = a;
    ctx.blocks = NULL;
    ctx.nblocks = 0;
    ctx.cap = 0;
    ctx.n = 0;

    js.end = end;
    js.max_depth = opt->max_depth;
    js.code = NULL;
    js.ctx = &ctx;
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
        rc = ldseg_segment_fail(err, LDSEG_EINVAL, "not_an_object",
                                "body is not a JSON object");
        goto failed;
    }

    if (ep == LDSEG_EP_BATCH) {
        if (m.f[LDSEG_F_BATCH].type != LDSEG_JSON_ARRAY) {
            rc = ldseg_segment_fail(err, LDSEG_EINVAL, "invalid_batch",
                                    "batch body needs a \"batch\" array");
            goto failed;
        }

        n = ctx.n;
        blocks = ctx.blocks;

    } else {
        n = 1;
        one = &single;
        blocks = &one;
        m.odd = (js.odd != 0);
        ldseg_translate_prepare(&m, ep, opt, &single);
        single.msg_len = (size_t) (p - start);
    }

    if (n != 0) {
        res->msgs = a->alloc(a->ctx, n * sizeof(ldseg_msg_result_t));
        if (res->msgs == NULL) {
            goto nomem;
        }

        memset(res->msgs, 0, n * sizeof(ldseg_msg_result_t));
        res->n = n;
    }

    if (ldseg_segment_write_key(&m.f[LDSEG_F_WRITE_KEY], a, res) != LDSEG_OK
        || ldseg_segment_output(blocks, a, res) != LDSEG_OK)
    {
        goto nomem;
    }

    ldseg_segment_free(&ctx);

    return LDSEG_OK;

nomem:

    rc = ldseg_segment_fail(err, LDSEG_ENOMEM, "no_memory", "out of memory");

failed:

    ldseg_segment_free(&ctx);

    ldseg_result_free(res, a);

    return rc;
}


void
ldseg_result_free(ldseg_result_t *res, const ldseg_allocator_t *a)
{
    if (res->msgs != NULL) {
        a->free(a->ctx, res->msgs);
    }

    if (res->events != NULL) {
        a->free(a->ctx, res->events);
    }

    if (res->write_key != NULL) {
        a->free(a->ctx, res->write_key);
    }

    memset(res, 0, sizeof(ldseg_result_t));
}

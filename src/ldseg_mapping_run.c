
/*
 * Copyright (C) ldseg authors
 *
 * Compiled mappings over one message, as Segment runs a subscription:
 * destination-subscriptions' validate() decides whether it matches,
 * mapping-kit's transform() resolves the mapping (undefined members are
 * left out when written), removeEmptyValues() drops null and "" fields,
 * ajv (coerceTypes "array") coerces or refuses each field by the
 * action's schema, and the action's perform() shapes the event.  The
 * coercions are those of the presets (ldseg_translate.c): ids from
 * numbers, booleans and one-element arrays, metric values from numeric
 * strings, ISO-8601 timestamps, with the same deliberate refusals.
 *
 * Values are spans of the message wherever mapping-kit would pass them
 * through, so an object is copied byte for byte.  Everything a message
 * makes the mappings build comes from a scratch arena whose limit is
 * LDSEG_MAPPING_GROWTH times the message's size (plus the mappings'
 * slack): a message that needs more is refused with "too_large".
 */


#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ldseg_mapping_run.h>
#include <ldseg_number.h>
#include <ldseg_time.h>


/* longest string coerced to a number or read as a timestamp */
#define LDSEG_MR_STR_MAX  1024

/* skew records in the run itself at least (the caller's memory: more) */
#define LDSEG_MR_SKEWS  16

/* the scratch arena's first block, in the run itself */
#define LDSEG_MR_SCRATCH  2048


typedef enum {
    LDSEG_MR_MISSING = 0,
    LDSEG_MR_OK,
    LDSEG_MR_INVALID,
    LDSEG_MR_FAILED               /* the arena's limit or the allocator */
} ldseg_mr_rc_e;


struct ldseg_mapping_run_s {
    const ldseg_mappings_t       *maps;
    const ldseg_allocator_t      *a;
    ldseg_json_val_t             *vals;
    ldseg_mv_t                   *cache;
    unsigned char                *cached;
    ldseg_arena_t                 scratch;

    /* the request's events, as ldseg_result_t.events will hold them */
    char                         *events;
    size_t                        len;
    size_t                        cap;
    size_t                        hint;

    /* the dates written with the message's "timestamp" (clock skew) */
    ldseg_mapping_skew_t         *skews;     /* in the run, or allocated */
    ldseg_mapping_skew_t         *skew;      /* the run's own */
    size_t                        nskews;
    size_t                        skews_cap;

    unsigned                      nomem;
    unsigned                      owned;     /* 0: the caller's memory */
};


/* one message being mapped */
typedef struct {
    ldseg_mapping_run_t          *run;
    ldseg_arena_t                *ar;
    const ldseg_json_val_t       *vals;
    ldseg_mv_t                    root;
    const ldseg_mv_t             *type;

    /*
     * The batch's context, when the message has none of its own: its
     * slots are the message's already; ctx serves the paths known per
     * message, whole the whole message with it (made when first read)
     */
    const ldseg_mv_t             *ctx;
    const ldseg_mv_t             *whole;
    ldseg_mv_t                    ctx_v;
    int64_t                       ms;        /* the model's "timestamp" */
    unsigned                      odd;       /* ldseg_segment_msg_t's */
    const char                   *fail;      /* mapping-kit would throw */
} ldseg_mr_t;


typedef struct {
    const char                   *key;       /* escaped */
    size_t                        key_len;
    const char                   *val;       /* escaped */
    size_t                        val_len;
} ldseg_mr_ckey_t;


/* what one subscription made of the message */
typedef struct {
    ldseg_msg_status_e            status;
    ldseg_error_t                 err;
    ldseg_action_e                action;
    const char                   *key;       /* escaped string contents */
    size_t                        key_len;
    const char                   *user;
    size_t                        user_len;
    const char                   *kind;
    size_t                        kind_len;
    unsigned                      kind_esc;
    ldseg_mr_ckey_t              *ckeys;
    size_t                        nckeys;
    int64_t                       ms;
    char                          ms_text[24];
    size_t                        ms_len;
    const char                   *metric;    /* NULL: no metricValue */
    size_t                        metric_len;
    const ldseg_mv_t             *data;      /* NULL: {} */
    unsigned                      clean;     /* ldseg_mv_write()'s */
    unsigned                      model_ts;  /* ms: the message's */
} ldseg_mr_event_t;


/* a growing list of members */
typedef struct {
    ldseg_arena_t                *ar;
    ldseg_mv_member_t            *m;
    size_t                        n;
    size_t                        cap;
} ldseg_mr_list_t;


static int ldseg_mr_room(ldseg_mapping_run_t *run, size_t n);
static int ldseg_mr_skew_room(ldseg_mapping_run_t *run, size_t n);
static inline const ldseg_mv_t *ldseg_mr_slot(ldseg_mr_t *x, unsigned slot);
static const ldseg_mv_t *ldseg_mr_path(ldseg_mr_t *x,
    const ldseg_path_t *path, const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_fql_get(void *ctx, const ldseg_fql_t *c);
static const ldseg_mv_t *ldseg_mr_whole(ldseg_mr_t *x);
static const ldseg_mv_t *ldseg_mr_eval(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload);
static void ldseg_mr_throws(ldseg_mr_t *x, const ldseg_buf_t *b);
static const ldseg_mv_t *ldseg_mr_string(ldseg_mr_t *x, ldseg_buf_t *b);
static const ldseg_mv_t *ldseg_mr_dynamic_path(ldseg_mr_t *x,
    const ldseg_expr_t *e, const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_template(ldseg_mr_t *x,
    const ldseg_expr_t *e, const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_template_dynamic(ldseg_mr_t *x,
    const ldseg_expr_t *e, const ldseg_mv_t *payload);
static int ldseg_mr_placeholder(const char *s, size_t n, size_t i,
    size_t braces, size_t *gs, size_t *ge);
static void ldseg_mr_render(ldseg_mr_t *x, ldseg_buf_t *b, const char *s,
    size_t n, size_t braces, unsigned decoded, const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_if(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_case(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_replace(ldseg_mr_t *x,
    const ldseg_expr_t *e, const ldseg_mv_t *payload);
static void ldseg_mr_replace_one(ldseg_buf_t *b, const char *s, size_t n,
    const char *pat, size_t plen, const char *rep, size_t rlen,
    unsigned flags);
static const ldseg_mv_t *ldseg_mr_array_path(ldseg_mr_t *x,
    const ldseg_expr_t *e, const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_json(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_flatten(ldseg_mr_t *x,
    const ldseg_expr_t *e, const ldseg_mv_t *payload);
static int ldseg_mr_flatten_into(ldseg_mr_t *x, ldseg_mr_list_t *l,
    const ldseg_mv_t *v, const char *prefix, size_t plen, const char *sep,
    size_t slen, unsigned omit);
static const ldseg_mv_t *ldseg_mr_merge(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload);
static const ldseg_mv_t *ldseg_mr_clean_nulls(ldseg_mr_t *x,
    const ldseg_mv_t *v);
static int ldseg_mr_entries(ldseg_mr_t *x, ldseg_mr_list_t *l,
    const ldseg_mv_t *v);
static int ldseg_mr_list_add(ldseg_mr_list_t *l, const char *key,
    size_t key_len, const ldseg_mv_t *val);
static int ldseg_mr_list_add_decoded(ldseg_mr_list_t *l, const char *key,
    size_t key_len, const ldseg_mv_t *val);
static unsigned ldseg_mr_utf8_get(const char *s, size_t n, size_t *i);
static unsigned ldseg_mr_lower(unsigned cp);
static unsigned ldseg_mr_upper(unsigned cp);
static unsigned ldseg_mr_fold(unsigned cp);
static ldseg_mr_rc_e ldseg_mr_id(ldseg_mr_t *x, const ldseg_mv_t *v,
    const char **p, size_t *len);
static ldseg_mr_rc_e ldseg_mr_metric(ldseg_mr_t *x, const ldseg_mv_t *v,
    ldseg_mr_event_t *me);
static ldseg_mr_rc_e ldseg_mr_time(ldseg_mr_t *x, const ldseg_mv_t *v,
    const ldseg_options_t *opt, int64_t *ms);
static ldseg_mr_rc_e ldseg_mr_context_keys(ldseg_mr_t *x,
    const ldseg_mv_t *v, ldseg_mr_event_t *me);
static ldseg_mr_rc_e ldseg_mr_context_object(ldseg_mr_t *x,
    const ldseg_expr_t *e, ldseg_mr_event_t *me);
static int ldseg_mr_same_key(ldseg_mr_t *x, const char *a, size_t alen,
    unsigned aesc, const char *b, size_t blen, unsigned besc);
static int ldseg_mr_absent(const ldseg_mv_t *v);
static const ldseg_mv_t *ldseg_mr_field_value(ldseg_mr_t *x,
    const ldseg_expr_t *e);
static int ldseg_mr_model_time(ldseg_mr_t *x,
    const ldseg_subscription_t *sub, ldseg_mr_event_t *me);
static void ldseg_mr_set(ldseg_mr_event_t *me, ldseg_msg_status_e status,
    ldseg_reason_e reason, const char *message);
static void ldseg_mr_action(ldseg_mr_t *x, const ldseg_subscription_t *sub,
    ldseg_endpoint_e type, const ldseg_options_t *opt, ldseg_mr_event_t *me);
static inline size_t ldseg_mr_format_ms(int64_t ms, char *dst);
static size_t ldseg_mr_length(ldseg_mr_event_t *me);
static size_t ldseg_mr_write(const ldseg_mr_event_t *me, char *dst,
    size_t *ms_at);


static const char  ldseg_mr_digits[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536"
    "37383940414243444546474849505152535455565758596061626364656667686970717273"
    "7475767778798081828384858687888990919293949596979899";


/* the message types, by ldseg_endpoint_e */
static const ldseg_mv_t  ldseg_mr_types[] = {
    { LDSEG_MV_STRING, 0, 0, 0, "", 0, NULL, 0, NULL, NULL },
    { LDSEG_MV_STRING, 0, 0, 0, "track", 5, NULL, 0, NULL, NULL },
    { LDSEG_MV_STRING, 0, 0, 0, "identify", 8, NULL, 0, NULL, NULL },
    { LDSEG_MV_STRING, 0, 0, 0, "alias", 5, NULL, 0, NULL, NULL },
    { LDSEG_MV_STRING, 0, 0, 0, "page", 4, NULL, 0, NULL, NULL },
    { LDSEG_MV_STRING, 0, 0, 0, "screen", 6, NULL, 0, NULL, NULL },
    { LDSEG_MV_STRING, 0, 0, 0, "group", 5, NULL, 0, NULL, NULL }
};


ldseg_mapping_run_t *
ldseg_mapping_run_create(const ldseg_mappings_t *maps,
    const ldseg_allocator_t *a, size_t hint, void *buf, size_t buf_size)
{
    char                 *p;
    size_t                n, size, base, nskews;
    ldseg_mapping_run_t  *run;

    n = maps->nslots;

    size = sizeof(ldseg_mapping_run_t) + LDSEG_MR_SCRATCH
           + n * (sizeof(ldseg_mv_t) + sizeof(ldseg_json_val_t));
    size = (size + 7) & ~(size_t) 7;

    /* then the cache flags, then skew records: what room is left */
    base = (size + n + 7) & ~(size_t) 7;

    if (buf != NULL
        && base + LDSEG_MR_SKEWS * sizeof(ldseg_mapping_skew_t) <= buf_size)
    {
        run = buf;
        run->owned = 0;
        nskews = (buf_size - base) / sizeof(ldseg_mapping_skew_t);

    } else {
        nskews = LDSEG_MR_SKEWS;

        run = a->alloc(a->ctx, base + nskews * sizeof(ldseg_mapping_skew_t));
        if (run == NULL) {
            return NULL;
        }

        run->owned = 1;
    }

    p = (char *) (run + 1);
    run->cache = (ldseg_mv_t *) p;
    p += n * sizeof(ldseg_mv_t);
    run->vals = (ldseg_json_val_t *) p;
    p += n * sizeof(ldseg_json_val_t);
    p = (char *) (((uintptr_t) p + 7) & ~(uintptr_t) 7);

    ldseg_arena_init_buf(&run->scratch, a, 0, p, LDSEG_MR_SCRATCH - 8);

    run->cached = (unsigned char *) run + size;
    run->maps = maps;
    run->a = a;
    run->events = NULL;
    run->len = 0;
    run->cap = 0;
    run->hint = hint;
    run->skew = (ldseg_mapping_skew_t *) ((char *) run + base);
    run->skews = run->skew;
    run->nskews = 0;
    run->skews_cap = nskews;
    run->nomem = 0;

    return run;
}


void
ldseg_mapping_run_free(ldseg_mapping_run_t *run)
{
    if (run == NULL) {
        return;
    }

    ldseg_arena_free(&run->scratch);

    if (run->events != NULL) {
        run->a->free(run->a->ctx, run->events);
    }

    if (run->skews != run->skew) {
        run->a->free(run->a->ctx, run->skews);
    }

    if (run->owned) {
        run->a->free(run->a->ctx, run);
    }
}


void
ldseg_mapping_run_events(ldseg_mapping_run_t *run, char **events,
    size_t *len)
{
    *events = run->events;
    *len = run->len;

    run->events = NULL;
    run->len = 0;
    run->cap = 0;
}


size_t
ldseg_mapping_run_skews(const ldseg_mapping_run_t *run,
    const ldseg_mapping_skew_t **skews)
{
    *skews = run->skews;

    return run->nskews;
}


/* room for n more skew records */

static int
ldseg_mr_skew_room(ldseg_mapping_run_t *run, size_t n)
{
    size_t                 cap;
    ldseg_mapping_skew_t  *p;

    if (n <= run->skews_cap - run->nskews) {
        return 0;
    }

    cap = run->skews_cap;

    while (cap - run->nskews < n) {
        if (cap > ((size_t) -1) / 4 / sizeof(ldseg_mapping_skew_t)) {
            return -1;
        }

        cap *= 2;
    }

    p = run->a->alloc(run->a->ctx, cap * sizeof(ldseg_mapping_skew_t));
    if (p == NULL) {
        return -1;
    }

    memcpy(p, run->skews, run->nskews * sizeof(ldseg_mapping_skew_t));

    if (run->skews != run->skew) {
        run->a->free(run->a->ctx, run->skews);
    }

    run->skews = p;
    run->skews_cap = cap;

    return 0;
}


/* room for n more bytes of events */

static int
ldseg_mr_room(ldseg_mapping_run_t *run, size_t n)
{
    char    *p;
    size_t   cap;

    if (n <= run->cap - run->len) {
        return 0;
    }

    /* a batch's events take about its size; a message's, what it needs */
    cap = (run->cap != 0) ? run->cap : (run->hint > 4096) ? run->hint : n;

    while (cap - run->len < n) {
        if (cap > ((size_t) -1) / 4) {
            return -1;
        }

        cap *= 2;
    }

    p = run->a->alloc(run->a->ctx, cap);
    if (p == NULL) {
        return -1;
    }

    if (run->events != NULL) {
        memcpy(p, run->events, run->len);
        run->a->free(run->a->ctx, run->events);
    }

    run->events = p;
    run->cap = cap;

    return 0;
}


void
ldseg_mapping_run_reset(ldseg_mapping_run_t *run)
{
    run->len = 0;
    run->nskews = 0;
}


ldseg_json_val_t *
ldseg_mapping_run_vals(ldseg_mapping_run_t *run)
{
    memset(run->vals, 0, run->maps->nslots * sizeof(ldseg_json_val_t));

    return run->vals;
}


int
ldseg_mapping_run_nomem(const ldseg_mapping_run_t *run)
{
    return run->nomem;
}


static inline const ldseg_mv_t *
ldseg_mr_slot(ldseg_mr_t *x, unsigned slot)
{
    ldseg_mapping_run_t  *run;

    run = x->run;

    if (!run->cached[slot]) {
        ldseg_mv_token(&run->cache[slot], &x->vals[slot]);
        run->cached[slot] = 1;
    }

    return &run->cache[slot];
}


/*
 * get(payload, path): each step is prev && prev[key], so a falsy value
 * on the way is the result.  From the message, a member of an object the
 * scan walked with the path's table is its slot; anything else (arrays,
 * strings, @arrayPath items) is looked up in the span.
 */

static const ldseg_mv_t *
ldseg_mr_path(ldseg_mr_t *x, const ldseg_path_t *path,
    const ldseg_mv_t *payload)
{
    size_t             i;
    unsigned           via;
    const ldseg_mv_t  *v;

    if (path->direct && payload == &x->root) {
        return ldseg_mr_slot(x, path->slots[0]);
    }

    v = payload;
    via = (payload == &x->root);

    if (via && x->ctx != NULL && path->nsegs == 0) {
        return ldseg_mr_whole(x);
    }

    for (i = 0; i < path->nsegs; i++) {

        if (ldseg_mv_falsy(v)) {
            return v;
        }

        if (via && i == 0 && path->type) {
            /* the endpoint (or the batch message's "type") decides it */
            v = x->type;
            via = 0;
            continue;
        }

        if (via && i == 0 && x->ctx != NULL && path->slots == NULL
            && path->lens[0] == 7 && memcmp(path->segs[0], "context", 7) == 0)
        {
            /* a path known per message: the batch's context */
            v = x->ctx;
            via = 0;
            continue;
        }

        if (via && path->slots != NULL
            && path->slots[i] != LDSEG_MAPPING_NO_SLOT
            && v->type == LDSEG_MV_OBJECT && v->p != NULL)
        {
            v = ldseg_mr_slot(x, path->slots[i]);
            continue;
        }

        via = 0;

        v = ldseg_mv_get(x->ar, v, path->segs[i], path->lens[i]);
        if (v == NULL) {
            return NULL;
        }
    }

    return v;
}


static const ldseg_mv_t *
ldseg_mr_fql_get(void *ctx, const ldseg_fql_t *c)
{
    ldseg_mr_t  *x;

    x = ctx;

    if (c->field == LDSEG_FQL_TYPE) {
        return x->type;
    }

    if (c->no_path) {
        return &ldseg_mv_undefined;
    }

    return ldseg_mr_path(x, x->run->maps->paths[c->path], &x->root);
}


/*
 * The message with the batch's context, as Segment's API passes it on:
 * in the place of its null "context", or after its last member.
 */

static const ldseg_mv_t *
ldseg_mr_whole(ldseg_mr_t *x)
{
    size_t              n;
    ldseg_mv_member_t  *m, *all;

    if (x->whole != NULL) {
        return x->whole;
    }

    if (ldseg_mv_members(x->ar, &x->root, &m, &n) != LDSEG_OK) {
        return NULL;
    }

    all = ldseg_arena_alloc(x->ar, (n + 1) * sizeof(ldseg_mv_member_t));
    if (all == NULL) {
        return NULL;
    }

    if (n != 0) {
        memcpy(all, m, n * sizeof(ldseg_mv_member_t));
    }

    /* a duplicate key keeps the first one's place and the last one's value */

    all[n].key = "context";
    all[n].key_len = 7;
    all[n].key_esc = 0;
    all[n].val = x->ctx;

    x->whole = ldseg_mv_object(x->ar, all, n + 1);

    return x->whole;
}


/* a String() that would throw in the reference fails the mapping */

static void
ldseg_mr_throws(ldseg_mr_t *x, const ldseg_buf_t *b)
{
    if (b->throws) {
        x->fail = "String() of an object with a \"toString\" or "
                  "\"__proto__\" key";
    }
}


static const ldseg_mv_t *
ldseg_mr_string(ldseg_mr_t *x, ldseg_buf_t *b)
{
    if (b->failed) {
        ldseg_mr_throws(x, b);
        return NULL;
    }

    return ldseg_mv_string(x->ar, b->p, b->len,
                           b->len != 0 && memchr(b->p, '\\', b->len) != NULL);
}


static const ldseg_mv_t *
ldseg_mr_eval(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t             i;
    ldseg_mv_t        *v, *c, **tail;
    const ldseg_mv_t  *r;

    if (e->fast == LDSEG_FAST_SLOT && payload == &x->root) {
        return ldseg_mr_slot(x, e->slot);
    }

    switch (e->kind) {

    case LDSEG_EX_LITERAL:
        return e->lit;

    case LDSEG_EX_OBJECT:
    case LDSEG_EX_ARRAY:
        v = ldseg_mv_new(x->ar, e->kind == LDSEG_EX_OBJECT ? LDSEG_MV_OBJECT
                                                           : LDSEG_MV_ARRAY);
        if (v == NULL) {
            return NULL;
        }

        tail = (ldseg_mv_t **) &v->child;

        for (i = 0; i < e->nargs; i++) {
            r = ldseg_mr_eval(x, e->args[i], payload);
            if (r == NULL) {
                return NULL;
            }

            c = ldseg_mv_copy(x->ar, r);
            if (c == NULL) {
                return NULL;
            }

            if (e->kind == LDSEG_EX_OBJECT) {
                c->key = e->keys[i].key;
                c->key_len = e->keys[i].key_len;
                c->key_esc = e->keys[i].key_esc;
            }

            *tail = c;
            tail = &c->next;
        }

        return v;

    case LDSEG_EX_PATH:
        return ldseg_mr_path(x, e->path, payload);

    case LDSEG_EX_PATH_DYNAMIC:
        return ldseg_mr_dynamic_path(x, e, payload);

    case LDSEG_EX_TEMPLATE:
        return ldseg_mr_template(x, e, payload);

    case LDSEG_EX_TEMPLATE_DYNAMIC:
        return ldseg_mr_template_dynamic(x, e, payload);

    case LDSEG_EX_IF:
        return ldseg_mr_if(x, e, payload);

    case LDSEG_EX_CASE:
        return ldseg_mr_case(x, e, payload);

    case LDSEG_EX_REPLACE:
        return ldseg_mr_replace(x, e, payload);

    case LDSEG_EX_ARRAY_PATH:
        return ldseg_mr_array_path(x, e, payload);

    case LDSEG_EX_JSON:
        return ldseg_mr_json(x, e, payload);

    case LDSEG_EX_FLATTEN:
        return ldseg_mr_flatten(x, e, payload);

    case LDSEG_EX_MERGE:
        return ldseg_mr_merge(x, e, payload);

    case LDSEG_EX_EXCLUDE_WHEN_NULL:
        r = ldseg_mr_eval(x, e->args[0], payload);
        if (r == NULL) {
            return NULL;
        }

        if (r->type == LDSEG_MV_NULL) {
            return &ldseg_mv_undefined;
        }

        return ldseg_mr_clean_nulls(x, r);
    }

    return &ldseg_mv_undefined;
}


static const ldseg_mv_t *
ldseg_mr_dynamic_path(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t             len;
    const char        *s;
    ldseg_path_t       path;
    const ldseg_mv_t  *v;

    v = ldseg_mr_eval(x, e->args[0], payload);
    if (v == NULL) {
        return NULL;
    }

    if (v->type != LDSEG_MV_STRING) {
        x->fail = "@path: expected a string";
        return NULL;
    }

    if (ldseg_mv_decode(x->ar, v, &s, &len) != LDSEG_OK
        || ldseg_mapping_split(x->ar, s, len, 1, &path) != LDSEG_OK)
    {
        return NULL;
    }

    path.slots = NULL;
    path.type = (payload == &x->root && path.nsegs > 0 && path.lens[0] == 4
                 && memcmp(path.segs[0], "type", 4) == 0);

    return ldseg_mr_path(x, &path, payload);
}


static const ldseg_mv_t *
ldseg_mr_template(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t                        i;
    ldseg_buf_t                   b;
    const ldseg_mv_t             *v;
    const ldseg_template_part_t  *part;

    ldseg_buf_init(&b, x->ar);

    for (i = 0; i < e->nparts; i++) {
        part = &e->parts[i];

        if (part->path == NULL) {
            ldseg_buf_add(&b, part->text, part->len);
            continue;
        }

        v = ldseg_mr_path(x, part->path, payload);
        if (v == NULL) {
            return NULL;
        }

        /* value ?? '' */
        if (v->type != LDSEG_MV_UNDEFINED && v->type != LDSEG_MV_NULL) {
            ldseg_mv_to_string(&b, v);
        }
    }

    if (b.len == 0 && !b.failed) {
        return &ldseg_mv_empty;
    }

    return ldseg_mr_string(x, &b);
}


/* a match of /\{\{\{([^}]+)\}\}\}/ (braces 3) or /\{\{([^}]+)\}\}/ at i */

static int
ldseg_mr_placeholder(const char *s, size_t n, size_t i, size_t braces,
    size_t *gs, size_t *ge)
{
    size_t  j, k;

    for (j = 0; j < braces; j++) {
        if (i + j >= n || s[i + j] != '{') {
            return 0;
        }
    }

    for (k = i + braces; k < n && s[k] != '}'; k++) {
        /* void */
    }

    if (k == i + braces || k + braces > n) {
        return 0;
    }

    for (j = 0; j < braces; j++) {
        if (s[k + j] != '}') {
            return 0;
        }
    }

    *gs = i + braces;
    *ge = k;

    return 1;
}


/*
 * One pass of render(): placeholders replaced by the values at their
 * paths.  With decoded, the output is decoded text (the first pass);
 * otherwise escaped string contents.
 */

static void
ldseg_mr_render(ldseg_mr_t *x, ldseg_buf_t *b, const char *s, size_t n,
    size_t braces, unsigned decoded, const ldseg_mv_t *payload)
{
    size_t             i, start, gs, ge, plen, dlen;
    const char        *p, *d;
    ldseg_buf_t        vb;
    ldseg_path_t       path;
    const ldseg_mv_t  *v;

    start = 0;
    i = 0;

    while (i < n && !b->failed) {
        if (!ldseg_mr_placeholder(s, n, i, braces, &gs, &ge)) {
            i++;
            continue;
        }

        if (decoded) {
            ldseg_buf_add(b, s + start, i - start);

        } else {
            ldseg_buf_escape(b, s + start, i - start);
        }

        p = s + gs;
        plen = ge - gs;
        ldseg_mapping_trim(&p, &plen);

        if (ldseg_mapping_split(x->ar, p, plen, 0, &path) != LDSEG_OK) {
            b->failed = 1;
            return;
        }

        path.slots = NULL;
        path.type = (payload == &x->root && path.nsegs > 0
                     && path.lens[0] == 4
                     && memcmp(path.segs[0], "type", 4) == 0);

        v = ldseg_mr_path(x, &path, payload);
        if (v == NULL) {
            b->failed = 1;
            return;
        }

        if (v->type != LDSEG_MV_UNDEFINED && v->type != LDSEG_MV_NULL) {
            if (!decoded) {
                ldseg_mv_to_string(b, v);

            } else {
                ldseg_buf_init(&vb, x->ar);
                ldseg_mv_to_string(&vb, v);

                if (vb.failed) {
                    ldseg_mr_throws(x, &vb);
                    b->failed = 1;
                    return;
                }

                d = vb.p;
                dlen = vb.len;

                if (dlen != 0 && memchr(d, '\\', dlen) != NULL) {
                    v = ldseg_mv_string(x->ar, vb.p, vb.len, 1);

                    if (v == NULL
                        || ldseg_mv_decode(x->ar, v, &d, &dlen) != LDSEG_OK)
                    {
                        b->failed = 1;
                        return;
                    }
                }

                ldseg_buf_add(b, d, dlen);
            }
        }

        i = ge + braces;
        start = i;
    }

    if (decoded) {
        ldseg_buf_add(b, s + start, n - start);

    } else {
        ldseg_buf_escape(b, s + start, n - start);
    }
}


static const ldseg_mv_t *
ldseg_mr_template_dynamic(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t             len;
    const char        *s;
    ldseg_buf_t        first, b;
    const ldseg_mv_t  *v;

    if (e->str[0] != NULL) {
        s = e->str[0];
        len = e->len[0];

    } else {
        v = ldseg_mr_eval(x, e->args[0], payload);
        if (v == NULL) {
            return NULL;
        }

        if (v->type != LDSEG_MV_STRING) {
            x->fail = "@template: expected a string";
            return NULL;
        }

        if (ldseg_mv_decode(x->ar, v, &s, &len) != LDSEG_OK) {
            return NULL;
        }
    }

    ldseg_buf_init(&first, x->ar);
    ldseg_mr_render(x, &first, s, len, 3, 1, payload);

    if (first.failed) {
        return NULL;
    }

    ldseg_buf_init(&b, x->ar);
    ldseg_mr_render(x, &b, first.p, first.len, 2, 0, payload);

    if (b.len == 0 && !b.failed) {
        return &ldseg_mv_empty;
    }

    return ldseg_mr_string(x, &b);
}


static const ldseg_mv_t *
ldseg_mr_if(ldseg_mr_t *x, const ldseg_expr_t *e, const ldseg_mv_t *payload)
{
    unsigned           cond;
    const ldseg_mv_t  *v;

    v = ldseg_mr_eval(x, e->args[0], payload);
    if (v == NULL) {
        return NULL;
    }

    cond = (v->type != LDSEG_MV_UNDEFINED && v->type != LDSEG_MV_NULL);

    if (cond && (e->flags & LDSEG_EX_IF_BLANK)) {
        /* value != '' */
        switch (v->type) {
        case LDSEG_MV_STRING:
            cond = (v->len != 0);
            break;
        case LDSEG_MV_NUMBER:
            cond = !(v->num == 0);
            break;
        case LDSEG_MV_FALSE:
            cond = 0;
            break;
        case LDSEG_MV_ARRAY:
            cond = !ldseg_mv_blank(v);
            break;
        default:
            break;
        }
    }

    if (cond && e->args[1] != NULL) {
        if (e->flags & LDSEG_EX_IF_SAME) {
            /* "then" is the path "exists" read */
            return v;
        }

        return ldseg_mr_eval(x, e->args[1], payload);
    }

    if (!cond && e->args[2] != NULL) {
        return ldseg_mr_eval(x, e->args[2], payload);
    }

    return &ldseg_mv_undefined;
}


/* the next code point of valid UTF-8 */

static unsigned
ldseg_mr_utf8_get(const char *s, size_t n, size_t *i)
{
    unsigned  c, cp;
    size_t    k, len;

    c = (unsigned char) s[*i];

    if (c < 0x80) {
        (*i)++;
        return c;
    }

    if (c < 0xe0) {
        len = 2;
        cp = c & 0x1f;

    } else if (c < 0xf0) {
        len = 3;
        cp = c & 0x0f;

    } else {
        len = 4;
        cp = c & 0x07;
    }

    for (k = 1; k < len && *i + k < n; k++) {
        cp = (cp << 6) | ((unsigned char) s[*i + k] & 0x3f);
    }

    *i += k;

    return cp;
}


/*
 * Simple case mappings: ASCII, Latin-1, Latin Extended-A, Greek and
 * Cyrillic (other scripts are left as they are).
 */

static unsigned
ldseg_mr_lower(unsigned cp)
{
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
        || (cp >= 0x391 && cp <= 0x3ab && cp != 0x3a2)
        || (cp >= 0x410 && cp <= 0x42f))
    {
        return cp + 32;
    }

    if (cp >= 0x400 && cp <= 0x40f) {
        return cp + 80;
    }

    if (cp == 0x178) {
        return 0xff;
    }

    if (((cp >= 0x100 && cp <= 0x12f) || (cp >= 0x132 && cp <= 0x137)
         || (cp >= 0x14a && cp <= 0x177)) && (cp & 1) == 0)
    {
        return cp + 1;
    }

    if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e))
        && (cp & 1) == 1)
    {
        return cp + 1;
    }

    return cp;
}


static unsigned
ldseg_mr_upper(unsigned cp)
{
    if ((cp >= 'a' && cp <= 'z') || (cp >= 0xe0 && cp <= 0xfe && cp != 0xf7)
        || (cp >= 0x3b1 && cp <= 0x3cb && cp != 0x3c2)
        || (cp >= 0x430 && cp <= 0x44f))
    {
        return cp - 32;
    }

    if (cp >= 0x450 && cp <= 0x45f) {
        return cp - 80;
    }

    switch (cp) {
    case 0xff:
        return 0x178;
    case 0xb5:
        return 0x39c;
    case 0x3c2:
        return 0x3a3;
    case 0x131:
        return 'I';
    case 0x17f:
        return 'S';
    default:
        break;
    }

    if (((cp >= 0x101 && cp <= 0x12f) || (cp >= 0x133 && cp <= 0x137)
         || (cp >= 0x14b && cp <= 0x177)) && (cp & 1) == 1)
    {
        return cp - 1;
    }

    if (((cp >= 0x13a && cp <= 0x148) || (cp >= 0x17a && cp <= 0x17e))
        && (cp & 1) == 0)
    {
        return cp - 1;
    }

    return cp;
}


/* a RegExp "i" flag's canonical character (no non-ASCII to ASCII) */

static unsigned
ldseg_mr_fold(unsigned cp)
{
    unsigned  u;

    u = ldseg_mr_upper(cp);

    if (cp >= 0x80 && u < 0x80) {
        return cp;
    }

    return u;
}


static const ldseg_mv_t *
ldseg_mr_case(ldseg_mr_t *x, const ldseg_expr_t *e, const ldseg_mv_t *payload)
{
    char               out[4];
    size_t             i, n;
    unsigned           cp;
    const char        *s;
    ldseg_buf_t        b, d;
    const ldseg_mv_t  *v;

    v = ldseg_mr_eval(x, e->args[0], payload);
    if (v == NULL || v->type != LDSEG_MV_STRING) {
        return v;
    }

    if (ldseg_mv_decode(x->ar, v, &s, &n) != LDSEG_OK) {
        return NULL;
    }

    ldseg_buf_init(&d, x->ar);

    for (i = 0; i < n && !d.failed; /* void */) {
        cp = ldseg_mr_utf8_get(s, n, &i);

        if (e->flags & LDSEG_EX_CASE_UPPER) {
            if (cp == 0xdf) {
                ldseg_buf_add(&d, "SS", 2);
                continue;
            }

            cp = ldseg_mr_upper(cp);

        } else {
            cp = ldseg_mr_lower(cp);
        }

        ldseg_buf_add(&d, out, ldseg_json_put_utf8(out, cp));
    }

    if (d.failed) {
        return NULL;
    }

    ldseg_buf_init(&b, x->ar);
    ldseg_buf_escape(&b, d.p, d.len);

    if (b.len == 0 && !b.failed) {
        return &ldseg_mv_empty;
    }

    return ldseg_mr_string(x, &b);
}


/*
 * value.replace(new RegExp(escaped pattern, flags), replacement): the
 * pattern is literal; the replacement's "$$", "$&", "$`" and "$'" are
 * expanded (there are no groups, so "$1" stays as it is).
 */

static void
ldseg_mr_replace_one(ldseg_buf_t *b, const char *s, size_t n,
    const char *pat, size_t plen, const char *rep, size_t rlen,
    unsigned flags)
{
    size_t    i, j, k, pi, start, m;
    unsigned  a, c, matched;

    start = 0;
    i = 0;
    matched = 0;

    while (i < n && !b->failed) {

        if (matched && !(flags & LDSEG_EX_REPLACE_GLOBAL)) {
            break;
        }

        /* does the pattern match at i? */

        j = i;
        pi = 0;

        if (flags & LDSEG_EX_REPLACE_ICASE) {
            m = 1;

            while (pi < plen) {
                if (j >= n) {
                    m = 0;
                    break;
                }

                a = ldseg_mr_utf8_get(s, n, &j);
                c = ldseg_mr_utf8_get(pat, plen, &pi);

                if (ldseg_mr_fold(a) != ldseg_mr_fold(c)) {
                    m = 0;
                    break;
                }
            }

            m = m ? j - i : 0;

        } else {
            m = (n - i >= plen && memcmp(s + i, pat, plen) == 0) ? plen : 0;
        }

        if (m == 0) {
            /* the next character */
            c = (unsigned char) s[i];
            i += (c < 0x80) ? 1 : (c < 0xe0) ? 2 : (c < 0xf0) ? 3 : 4;
            continue;
        }

        ldseg_buf_add(b, s + start, i - start);

        for (k = 0; k < rlen; k++) {
            if (rep[k] != '$' || k + 1 == rlen) {
                ldseg_buf_add(b, rep + k, 1);
                continue;
            }

            switch (rep[k + 1]) {
            case '$':
                ldseg_buf_add(b, "$", 1);
                k++;
                break;
            case '&':
                ldseg_buf_add(b, s + i, m);
                k++;
                break;
            case '`':
                ldseg_buf_add(b, s, i);
                k++;
                break;
            case '\'':
                ldseg_buf_add(b, s + i + m, n - i - m);
                k++;
                break;
            default:
                ldseg_buf_add(b, "$", 1);
                break;
            }
        }

        i += m;
        start = i;
        matched = 1;
    }

    ldseg_buf_add(b, s + start, n - start);
}


static const ldseg_mv_t *
ldseg_mr_replace(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t             n;
    const char        *s;
    ldseg_buf_t        b, first, out;
    const ldseg_mv_t  *v;

    v = ldseg_mr_eval(x, e->args[0], payload);
    if (v == NULL) {
        return NULL;
    }

    if (v->type == LDSEG_MV_NUMBER || v->type == LDSEG_MV_TRUE
        || v->type == LDSEG_MV_FALSE)
    {
        ldseg_buf_init(&b, x->ar);
        ldseg_mv_to_string(&b, v);

        v = ldseg_mr_string(x, &b);
        if (v == NULL) {
            return NULL;
        }
    }

    if (v->type != LDSEG_MV_STRING) {
        return &ldseg_mv_empty;
    }

    if (ldseg_mv_decode(x->ar, v, &s, &n) != LDSEG_OK) {
        return NULL;
    }

    ldseg_buf_init(&first, x->ar);
    ldseg_mr_replace_one(&first, s, n, e->str[0], e->len[0], e->str[1],
                         e->len[1], e->flags);

    if (first.failed) {
        return NULL;
    }

    if (e->flags & LDSEG_EX_REPLACE_SECOND) {
        ldseg_buf_init(&b, x->ar);
        ldseg_mr_replace_one(&b, first.p, first.len, e->str[2], e->len[2],
                             e->str[3], e->len[3], e->flags);
        if (b.failed) {
            return NULL;
        }

        first = b;
    }

    ldseg_buf_init(&out, x->ar);
    ldseg_buf_escape(&out, first.p, first.len);

    if (out.len == 0 && !out.failed) {
        return &ldseg_mv_empty;
    }

    return ldseg_mr_string(x, &out);
}


static const ldseg_mv_t *
ldseg_mr_array_path(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t              i, n;
    ldseg_mv_t         *a, *c, **tail;
    const ldseg_mv_t   *root, *r, **items, *one[1];

    if (e->path != NULL) {
        root = ldseg_mr_path(x, e->path, payload);

    } else {
        root = ldseg_mr_eval(x, e->args[0], payload);
    }

    if (root == NULL) {
        return NULL;
    }

    if (e->args[1] == NULL
        || (root->type != LDSEG_MV_OBJECT && root->type != LDSEG_MV_ARRAY))
    {
        return root;
    }

    if (root->type == LDSEG_MV_OBJECT) {
        one[0] = root;
        items = one;
        n = 1;

    } else if (ldseg_mv_elements(x->ar, root, &items, &n) != LDSEG_OK) {
        return NULL;
    }

    a = ldseg_mv_new(x->ar, LDSEG_MV_ARRAY);
    if (a == NULL) {
        return NULL;
    }

    tail = (ldseg_mv_t **) &a->child;

    for (i = 0; i < n; i++) {
        r = ldseg_mr_eval(x, e->args[1], items[i]);
        if (r == NULL) {
            return NULL;
        }

        c = ldseg_mv_copy(x->ar, r);
        if (c == NULL) {
            return NULL;
        }

        *tail = c;
        tail = &c->next;
    }

    return a;
}


static const ldseg_mv_t *
ldseg_mr_json(ldseg_mr_t *x, const ldseg_expr_t *e, const ldseg_mv_t *payload)
{
    size_t             n;
    const char        *s;
    ldseg_buf_t        b, out;
    const ldseg_mv_t  *v, *r;

    v = ldseg_mr_eval(x, e->args[0], payload);
    if (v == NULL) {
        return NULL;
    }

    if (e->flags & LDSEG_EX_JSON_ENCODE) {
        ldseg_buf_init(&b, x->ar);

        if (ldseg_mv_stringify(&b, v) == 0) {
            return &ldseg_mv_undefined;
        }

        if (b.failed) {
            return NULL;
        }

        ldseg_buf_init(&out, x->ar);
        ldseg_buf_escape(&out, b.p, b.len);

        return ldseg_mr_string(x, &out);
    }

    if (e->flags & LDSEG_EX_JSON_DECODE) {
        if (v->type != LDSEG_MV_STRING) {
            return v;
        }

        if (ldseg_mv_decode(x->ar, v, &s, &n) != LDSEG_OK) {
            return NULL;
        }

        r = ldseg_mv_parse(x->ar, s, n);

        if (r == NULL) {
            if (x->ar->over || x->ar->nomem) {
                return NULL;
            }

            return v;
        }

        return r;
    }

    return &ldseg_mv_undefined;
}


static int
ldseg_mr_list_add(ldseg_mr_list_t *l, const char *key, size_t key_len,
    const ldseg_mv_t *val)
{
    size_t              cap;
    ldseg_mv_member_t  *m;

    if (l->n == l->cap) {
        cap = (l->cap == 0) ? 8 : l->cap * 2;

        m = ldseg_arena_alloc(l->ar, cap * sizeof(ldseg_mv_member_t));
        if (m == NULL) {
            return -1;
        }

        if (l->n != 0) {
            memcpy(m, l->m, l->n * sizeof(ldseg_mv_member_t));
        }

        l->m = m;
        l->cap = cap;
    }

    m = &l->m[l->n++];
    m->key = key;
    m->key_len = key_len;
    m->key_esc = (key_len != 0 && memchr(key, '\\', key_len) != NULL);
    m->val = val;

    return 0;
}


/* a member whose key is decoded text */

static int
ldseg_mr_list_add_decoded(ldseg_mr_list_t *l, const char *key,
    size_t key_len, const ldseg_mv_t *val)
{
    ldseg_buf_t  b;

    ldseg_buf_init(&b, l->ar);
    ldseg_buf_escape(&b, key, key_len);

    if (b.failed) {
        return -1;
    }

    return ldseg_mr_list_add(l, b.len ? b.p : "", b.len, val);
}


/*
 * Object.entries() as Object.assign() copies them: an object's members,
 * an array's or a string's indexes; nothing for the rest.
 */

static int
ldseg_mr_entries(ldseg_mr_t *x, ldseg_mr_list_t *l, const ldseg_mv_t *v)
{
    char                idx[24], out[8];
    size_t              i, n, dlen, len;
    unsigned            cp;
    const char         *d;
    ldseg_mv_t         *c;
    const ldseg_mv_t  **elts;
    ldseg_mv_member_t  *m;

    switch (v->type) {

    case LDSEG_MV_OBJECT:
        if (ldseg_mv_members(x->ar, v, &m, &n) != LDSEG_OK) {
            return -1;
        }

        for (i = 0; i < n; i++) {
            if (ldseg_mr_list_add(l, m[i].key, m[i].key_len, m[i].val) != 0) {
                return -1;
            }
        }

        return 0;

    case LDSEG_MV_ARRAY:
        if (ldseg_mv_elements(x->ar, v, &elts, &n) != LDSEG_OK) {
            return -1;
        }

        for (i = 0; i < n; i++) {
            len = (size_t) snprintf(idx, sizeof(idx), "%zu", i);

            if (ldseg_mr_list_add_decoded(l, idx, len, elts[i]) != 0) {
                return -1;
            }
        }

        return 0;

    case LDSEG_MV_STRING:
        if (ldseg_mv_decode(x->ar, v, &d, &dlen) != LDSEG_OK) {
            return -1;
        }

        n = 0;

        for (i = 0; i < dlen; /* void */) {
            cp = ldseg_mr_utf8_get(d, dlen, &i);

            if (cp >= 0x10000) {
                /* two UTF-16 units, each a lone surrogate */
                c = ldseg_mv_string(x->ar, "\\ufffd", 6, 1);
                if (c == NULL) {
                    return -1;
                }

                len = (size_t) snprintf(idx, sizeof(idx), "%zu", n++);
                if (ldseg_mr_list_add_decoded(l, idx, len, c) != 0) {
                    return -1;
                }

                len = (size_t) snprintf(idx, sizeof(idx), "%zu", n++);
                if (ldseg_mr_list_add_decoded(l, idx, len, c) != 0) {
                    return -1;
                }

                continue;
            }

            len = ldseg_json_put_utf8(out, cp);

            {
                ldseg_buf_t  b;

                ldseg_buf_init(&b, x->ar);
                ldseg_buf_escape(&b, out, len);

                if (b.failed) {
                    return -1;
                }

                c = ldseg_mv_string(x->ar, b.p, b.len,
                                    memchr(b.p, '\\', b.len) != NULL);
            }

            if (c == NULL) {
                return -1;
            }

            len = (size_t) snprintf(idx, sizeof(idx), "%zu", n++);

            if (ldseg_mr_list_add_decoded(l, idx, len, c) != 0) {
                return -1;
            }
        }

        return 0;

    default:
        return 0;
    }
}


/* flattenObject(value, prefix, separator, omitArrays) into l */

static int
ldseg_mr_flatten_into(ldseg_mr_t *x, ldseg_mr_list_t *l, const ldseg_mv_t *v,
    const char *prefix, size_t plen, const char *sep, size_t slen,
    unsigned omit)
{
    char                *key;
    size_t               i, klen, dlen;
    const char          *d;
    ldseg_mr_list_t      entries;
    ldseg_mv_t           tmp;

    if (v->type != LDSEG_MV_OBJECT
        && (omit || v->type != LDSEG_MV_ARRAY))
    {
        return ldseg_mr_list_add_decoded(l, prefix, plen, v);
    }

    entries.ar = x->ar;
    entries.m = NULL;
    entries.n = 0;
    entries.cap = 0;

    if (ldseg_mr_entries(x, &entries, v) != 0) {
        return -1;
    }

    for (i = 0; i < entries.n; i++) {
        memset(&tmp, 0, sizeof(ldseg_mv_t));
        tmp.type = LDSEG_MV_STRING;
        tmp.p = entries.m[i].key;
        tmp.len = entries.m[i].key_len;
        tmp.esc = entries.m[i].key_esc;

        if (ldseg_mv_decode(x->ar, &tmp, &d, &dlen) != LDSEG_OK) {
            return -1;
        }

        if (plen == 0) {
            key = (char *) d;
            klen = dlen;

        } else {
            klen = plen + slen + dlen;

            key = ldseg_arena_alloc(x->ar, klen + 1);
            if (key == NULL) {
                return -1;
            }

            memcpy(key, prefix, plen);
            memcpy(key + plen, sep, slen);
            memcpy(key + plen + slen, d, dlen);
        }

        if (ldseg_mr_flatten_into(x, l, entries.m[i].val, key, klen, sep,
                                  slen, omit)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static const ldseg_mv_t *
ldseg_mr_flatten(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    ldseg_mr_list_t    l;
    const ldseg_mv_t  *v;

    v = ldseg_mr_eval(x, e->args[0], payload);
    if (v == NULL) {
        return NULL;
    }

    l.ar = x->ar;
    l.m = NULL;
    l.n = 0;
    l.cap = 0;

    if (ldseg_mr_flatten_into(x, &l, v, "", 0, e->str[0], e->len[0],
                              e->flags & LDSEG_EX_FLATTEN_NO_ARRAYS)
        != 0)
    {
        return NULL;
    }

    return ldseg_mv_object(x->ar, l.m, l.n);
}


static const ldseg_mv_t *
ldseg_mr_merge(ldseg_mr_t *x, const ldseg_expr_t *e,
    const ldseg_mv_t *payload)
{
    size_t              i, k;
    ldseg_mr_list_t     l;
    const ldseg_mv_t   *v;

    l.ar = x->ar;
    l.m = NULL;
    l.n = 0;
    l.cap = 0;

    for (i = 0; i < e->nargs; i++) {
        k = (e->flags & LDSEG_EX_MERGE_LEFT) ? e->nargs - 1 - i : i;

        v = ldseg_mr_eval(x, e->args[k], payload);
        if (v == NULL) {
            return NULL;
        }

        if (ldseg_mr_entries(x, &l, v) != 0) {
            return NULL;
        }
    }

    return ldseg_mv_object(x->ar, l.m, l.n);
}


/* cleanNulls(): an object's null members undefined, nested objects too */

static const ldseg_mv_t *
ldseg_mr_clean_nulls(ldseg_mr_t *x, const ldseg_mv_t *v)
{
    size_t              i, n;
    ldseg_mr_list_t     l;
    const ldseg_mv_t   *val;
    ldseg_mv_member_t  *m;

    if (v->type != LDSEG_MV_OBJECT) {
        return v;
    }

    if (ldseg_mv_members(x->ar, v, &m, &n) != LDSEG_OK) {
        return NULL;
    }

    l.ar = x->ar;
    l.m = NULL;
    l.n = 0;
    l.cap = 0;

    for (i = 0; i < n; i++) {
        val = m[i].val;

        if (val->type == LDSEG_MV_NULL) {
            val = &ldseg_mv_undefined;

        } else if (val->type == LDSEG_MV_OBJECT) {
            val = ldseg_mr_clean_nulls(x, val);
            if (val == NULL) {
                return NULL;
            }
        }

        if (ldseg_mr_list_add(&l, m[i].key, m[i].key_len, val) != 0) {
            return NULL;
        }
    }

    return ldseg_mv_object(x->ar, l.m, l.n);
}


/* removeEmptyValues(): undefined, null and "" fields are not there */

static int
ldseg_mr_absent(const ldseg_mv_t *v)
{
    return v->type == LDSEG_MV_UNDEFINED || v->type == LDSEG_MV_NULL
           || (v->type == LDSEG_MV_STRING && v->len == 0);
}


/*
 * A string field after ajv's coercions: numbers and booleans become
 * strings; a one-element array is unwrapped once if its element is a
 * scalar ([null] gives "").  p and len: escaped contents.
 */

static ldseg_mr_rc_e
ldseg_mr_id(ldseg_mr_t *x, const ldseg_mv_t *v, const char **p, size_t *len)
{
    char               *s;
    size_t              n;
    const ldseg_mv_t  **elts;

    if (ldseg_mr_absent(v)) {
        return LDSEG_MR_MISSING;
    }

    if (v->type == LDSEG_MV_ARRAY) {
        if (ldseg_mv_elements(x->ar, v, &elts, &n) != LDSEG_OK) {
            return LDSEG_MR_FAILED;
        }

        if (n != 1 || elts[0]->type == LDSEG_MV_ARRAY
            || elts[0]->type == LDSEG_MV_OBJECT
            || elts[0]->type == LDSEG_MV_UNDEFINED)
        {
            return LDSEG_MR_INVALID;
        }

        v = elts[0];

        if (v->type == LDSEG_MV_NULL) {
            *p = "";
            *len = 0;
            return LDSEG_MR_OK;
        }
    }

    switch (v->type) {

    case LDSEG_MV_STRING:
        *p = v->p;
        *len = v->len;
        return LDSEG_MR_OK;

    case LDSEG_MV_NUMBER:
        s = ldseg_arena_alloc(x->ar, LDSEG_NUMBER_LEN);
        if (s == NULL) {
            return LDSEG_MR_FAILED;
        }

        *p = s;
        *len = ldseg_number_format(v->num, s);
        return LDSEG_MR_OK;

    case LDSEG_MV_TRUE:
        *p = "true";
        *len = 4;
        return LDSEG_MR_OK;

    case LDSEG_MV_FALSE:
        *p = "false";
        *len = 5;
        return LDSEG_MR_OK;

    default:
        return LDSEG_MR_INVALID;
    }
}


/*
 * metric_value, a number: numeric strings (JS ToNumber, "" excluded),
 * true/false, a one-element array of these ([null] is 0).  Infinity is
 * refused, as the presets do.
 */

static ldseg_mr_rc_e
ldseg_mr_metric(ldseg_mr_t *x, const ldseg_mv_t *v, ldseg_mr_event_t *me)
{
    char               *s;
    double              d;
    size_t              n, dlen;
    const char         *dp;
    const ldseg_mv_t  **elts;

    me->metric = NULL;

    if (ldseg_mr_absent(v)) {
        return LDSEG_MR_MISSING;
    }

    if (v->type == LDSEG_MV_ARRAY) {
        if (ldseg_mv_elements(x->ar, v, &elts, &n) != LDSEG_OK) {
            return LDSEG_MR_FAILED;
        }

        if (n != 1) {
            return LDSEG_MR_INVALID;
        }

        v = elts[0];

        if (v->type == LDSEG_MV_NULL) {
            me->metric = "0";
            me->metric_len = 1;
            return LDSEG_MR_OK;
        }

        if (v->type == LDSEG_MV_STRING && v->len == 0) {
            return LDSEG_MR_INVALID;
        }
    }

    switch (v->type) {

    case LDSEG_MV_NUMBER:
        if (isinf(v->num) || isnan(v->num)) {
            return LDSEG_MR_INVALID;
        }

        if (v->p != NULL && v->len <= LDSEG_NUMBER_LEN) {
            me->metric = v->p;
            me->metric_len = v->len;
            return LDSEG_MR_OK;
        }

        d = v->num;
        break;

    case LDSEG_MV_STRING:
        if (v->len + 2 > LDSEG_MR_STR_MAX) {
            return LDSEG_MR_INVALID;
        }

        if (ldseg_mv_decode(x->ar, v, &dp, &dlen) != LDSEG_OK) {
            return LDSEG_MR_FAILED;
        }

        if (ldseg_number_from_string(dp, dlen, &d) != LDSEG_OK || isinf(d)) {
            return LDSEG_MR_INVALID;
        }

        break;

    case LDSEG_MV_TRUE:
        me->metric = "1";
        me->metric_len = 1;
        return LDSEG_MR_OK;

    case LDSEG_MV_FALSE:
        me->metric = "0";
        me->metric_len = 1;
        return LDSEG_MR_OK;

    default:
        return LDSEG_MR_INVALID;
    }

    s = ldseg_arena_alloc(x->ar, LDSEG_NUMBER_LEN);
    if (s == NULL) {
        return LDSEG_MR_FAILED;
    }

    me->metric = s;
    me->metric_len = ldseg_number_format(d, s);

    return LDSEG_MR_OK;
}


/* timestamp: the presets' rules (ldseg_translate.c) */

static ldseg_mr_rc_e
ldseg_mr_time(ldseg_mr_t *x, const ldseg_mv_t *v, const ldseg_options_t *opt,
    int64_t *ms)
{
    size_t       dlen;
    const char  *dp;

    switch (v->type) {

    case LDSEG_MV_UNDEFINED:
    case LDSEG_MV_NULL:
        *ms = opt->now_ms;
        return LDSEG_MR_OK;

    case LDSEG_MV_NUMBER:
        if (isinf(v->num)) {
            /* ajv refuses Infinity as a number */
            return LDSEG_MR_INVALID;
        }

        if (isnan(v->num) || v->num > (double) LDSEG_TIME_MAX_MS
            || v->num < -(double) LDSEG_TIME_MAX_MS)
        {
            *ms = opt->now_ms;

        } else {
            *ms = (int64_t) v->num;
        }

        return LDSEG_MR_OK;

    case LDSEG_MV_STRING:
        if (v->len == 0) {
            *ms = opt->now_ms;
            return LDSEG_MR_OK;
        }

        if (v->len + 2 > LDSEG_MR_STR_MAX) {
            return LDSEG_MR_INVALID;
        }

        if (ldseg_mv_decode(x->ar, v, &dp, &dlen) != LDSEG_OK) {
            return LDSEG_MR_FAILED;
        }

        return (ldseg_time_parse(dp, dlen, ms) == LDSEG_OK) ? LDSEG_MR_OK
                                                            : LDSEG_MR_INVALID;

    default:
        return LDSEG_MR_INVALID;
    }
}


/*
 * additional_context_keys: an object whose members become context keys
 * as String(value); the context kind's own key wins over one of them.
 */

static ldseg_mr_rc_e
ldseg_mr_context_keys(ldseg_mr_t *x, const ldseg_mv_t *v,
    ldseg_mr_event_t *me)
{
    size_t              i, n, k, klen, dlen;
    const char         *kp, *dp;
    ldseg_buf_t         b;
    ldseg_mv_t          tmp;
    ldseg_mv_member_t  *m;

    me->nckeys = 0;

    if (ldseg_mr_absent(v)) {
        return LDSEG_MR_MISSING;
    }

    if (v->type != LDSEG_MV_OBJECT) {
        return LDSEG_MR_INVALID;
    }

    if (ldseg_mv_members(x->ar, v, &m, &n) != LDSEG_OK) {
        return LDSEG_MR_FAILED;
    }

    if (n == 0) {
        return LDSEG_MR_OK;
    }

    me->ckeys = ldseg_arena_alloc(x->ar, n * sizeof(ldseg_mr_ckey_t));
    if (me->ckeys == NULL) {
        return LDSEG_MR_FAILED;
    }

    /* the kind, decoded, to compare keys with */
    memset(&tmp, 0, sizeof(ldseg_mv_t));
    tmp.type = LDSEG_MV_STRING;
    tmp.p = me->kind;
    tmp.len = me->kind_len;
    tmp.esc = (me->kind_len != 0 && memchr(me->kind, '\\', me->kind_len));

    if (ldseg_mv_decode(x->ar, &tmp, &kp, &klen) != LDSEG_OK) {
        return LDSEG_MR_FAILED;
    }

    k = 0;

    for (i = 0; i < n; i++) {
        if (m[i].val->type == LDSEG_MV_UNDEFINED) {
            continue;
        }

        tmp.p = m[i].key;
        tmp.len = m[i].key_len;
        tmp.esc = m[i].key_esc;

        if (ldseg_mv_decode(x->ar, &tmp, &dp, &dlen) != LDSEG_OK) {
            return LDSEG_MR_FAILED;
        }

        if ((dlen == klen && memcmp(dp, kp, klen) == 0)
            || (dlen == 9 && memcmp(dp, "__proto__", 9) == 0))
        {
            continue;
        }

        me->ckeys[k].key = m[i].key;
        me->ckeys[k].key_len = m[i].key_len;

        if (m[i].val->type == LDSEG_MV_STRING) {
            me->ckeys[k].val = m[i].val->p;
            me->ckeys[k].val_len = m[i].val->len;

        } else {
            ldseg_buf_init(&b, x->ar);
            ldseg_mv_to_string(&b, m[i].val);

            if (b.failed) {
                ldseg_mr_throws(x, &b);
                return LDSEG_MR_FAILED;
            }

            me->ckeys[k].val = (b.len != 0) ? b.p : "";
            me->ckeys[k].val_len = b.len;
        }

        k++;
    }

    me->nckeys = k;

    return LDSEG_MR_OK;
}


/*
 * A "timestamp" mapped as {"@path": "$.timestamp"} is the message's
 * "timestamp", which the Segment model read already, by the same rules.
 */

static int
ldseg_mr_model_time(ldseg_mr_t *x, const ldseg_subscription_t *sub,
    ldseg_mr_event_t *me)
{
    const ldseg_expr_t  *e;

    e = sub->fields[LDSEG_FIELD_TIMESTAMP];

    if (e != NULL && e->kind == LDSEG_EX_PATH && e->path->nsegs == 1
        && e->path->slots[0] == LDSEG_F_TIMESTAMP)
    {
        me->ms = x->ms;
        me->model_ts = 1;
        return 1;
    }

    return 0;
}


/* two escaped keys are one key */

static int
ldseg_mr_same_key(ldseg_mr_t *x, const char *a, size_t alen, unsigned aesc,
    const char *b, size_t blen, unsigned besc)
{
    size_t      al, bl;
    const char  *ap, *bp;
    ldseg_mv_t   t;

    /* esc 0: known to hold no escapes */

    if ((!aesc || alen == 0 || memchr(a, '\\', alen) == NULL)
        && (!besc || blen == 0 || memchr(b, '\\', blen) == NULL))
    {
        return alen == blen && memcmp(a, b, alen) == 0;
    }

    memset(&t, 0, sizeof(ldseg_mv_t));
    t.type = LDSEG_MV_STRING;
    t.esc = 1;

    t.p = a;
    t.len = alen;

    if (ldseg_mv_decode(x->ar, &t, &ap, &al) != LDSEG_OK) {
        return -1;
    }

    t.p = b;
    t.len = blen;

    if (ldseg_mv_decode(x->ar, &t, &bp, &bl) != LDSEG_OK) {
        return -1;
    }

    return al == bl && memcmp(ap, bp, al) == 0;
}


/*
 * additional_context_keys written as an object in the mapping: its
 * members are resolved one by one, no object is built.
 */

static ldseg_mr_rc_e
ldseg_mr_context_object(ldseg_mr_t *x, const ldseg_expr_t *e,
    ldseg_mr_event_t *me)
{
    int                rc;
    size_t             i, k;
    ldseg_buf_t        b;
    const ldseg_mv_t  *v;

    me->nckeys = 0;

    if (e->nargs == 0) {
        return LDSEG_MR_OK;
    }

    me->ckeys = ldseg_arena_alloc(x->ar, e->nargs * sizeof(ldseg_mr_ckey_t));
    if (me->ckeys == NULL) {
        return LDSEG_MR_FAILED;
    }

    k = 0;

    for (i = 0; i < e->nargs; i++) {
        v = ldseg_mr_eval(x, e->args[i], &x->root);
        if (v == NULL) {
            return LDSEG_MR_FAILED;
        }

        if (v->type == LDSEG_MV_UNDEFINED) {
            continue;
        }

        rc = ldseg_mr_same_key(x, e->keys[i].key, e->keys[i].key_len,
                               e->keys[i].key_esc, me->kind, me->kind_len,
                               me->kind_esc);
        if (rc < 0) {
            return LDSEG_MR_FAILED;
        }

        if (rc) {
            continue;
        }

        me->ckeys[k].key = e->keys[i].key;
        me->ckeys[k].key_len = e->keys[i].key_len;

        if (v->type == LDSEG_MV_STRING) {
            me->ckeys[k].val = v->p;
            me->ckeys[k].val_len = v->len;

        } else {
            ldseg_buf_init(&b, x->ar);
            ldseg_mv_to_string(&b, v);

            if (b.failed) {
                ldseg_mr_throws(x, &b);
                return LDSEG_MR_FAILED;
            }

            me->ckeys[k].val = (b.len != 0) ? b.p : "";
            me->ckeys[k].val_len = b.len;
        }

        k++;
    }

    me->nckeys = k;

    return LDSEG_MR_OK;
}


static void
ldseg_mr_set(ldseg_mr_event_t *me, ldseg_msg_status_e status,
    ldseg_reason_e reason, const char *message)
{
    me->status = status;
    me->err.reason = reason;
    me->err.message = message;
}


#define ldseg_mr_field(x, sub, f, out)                                       \
    do {                                                                     \
        if ((sub)->fields[f] == NULL) {                                      \
            out = &ldseg_mv_undefined;                                       \
        } else if ((sub)->fields[f]->fast == LDSEG_FAST_SLOT) {              \
            out = ldseg_mr_slot(x, (sub)->fields[f]->slot);                  \
        } else {                                                             \
            out = ldseg_mr_field_value(x, (sub)->fields[f]);                 \
            if (out == NULL) {                                               \
                goto failed;                                                 \
            }                                                                \
        }                                                                    \
    } while (0)


/*
 * A field's value, the two shapes nearly every mapping is made of read
 * without the general evaluation: {"@path": "$.x"} and the coalescing
 * {"@if": {"exists": {"@path": "$.x.y"}, "then": {"@path": "$.x.y"},
 * "else": ...}}.
 */

static const ldseg_mv_t *
ldseg_mr_field_value(ldseg_mr_t *x, const ldseg_expr_t *e)
{
    const ldseg_mv_t  *v;

    switch (e->fast) {

    case LDSEG_FAST_SLOT:
        return ldseg_mr_slot(x, e->slot);

    case LDSEG_FAST_COALESCE:
        v = ldseg_mr_slot(x, e->slot);

        if (v->type != LDSEG_MV_UNDEFINED && v->type != LDSEG_MV_NULL) {
            return v;
        }

        if (e->slot2 != LDSEG_MAPPING_NO_SLOT) {
            return ldseg_mr_slot(x, e->slot2);
        }

        if (e->args[2] == NULL) {
            return &ldseg_mv_undefined;
        }

        return ldseg_mr_eval(x, e->args[2], &x->root);

    default:
        break;
    }

    if (e->kind == LDSEG_EX_IF && (e->flags & LDSEG_EX_IF_COALESCE)) {
        v = ldseg_mr_path(x, e->args[0]->path, &x->root);

        if (v == NULL
            || (v->type != LDSEG_MV_UNDEFINED && v->type != LDSEG_MV_NULL))
        {
            return v;
        }

        if (e->args[2] == NULL) {
            return &ldseg_mv_undefined;
        }

        e = e->args[2];

        if (e->fast == LDSEG_FAST_SLOT) {
            return ldseg_mr_slot(x, e->slot);
        }
    }

    return ldseg_mr_eval(x, e, &x->root);
}


/*
 * One subscription's action over the message: the fields resolved, then
 * the action's schema, in the order the presets check them.
 */

static void
ldseg_mr_action(ldseg_mr_t *x, const ldseg_subscription_t *sub,
    ldseg_endpoint_e type, const ldseg_options_t *opt, ldseg_mr_event_t *me)
{
    ldseg_mr_rc_e        rc;
    const ldseg_mv_t    *v;
    const ldseg_expr_t  *e;

    /* the other fields are set before they are read */
    me->status = LDSEG_MSG_EVENT;
    me->err.reason = LDSEG_REASON_NONE;
    me->err.message = NULL;
    me->action = sub->action;
    me->clean = x->odd;
    me->model_ts = 0;
    me->nckeys = 0;
    me->metric = NULL;
    me->data = NULL;

    if (sub->action == LDSEG_ACTION_ALIAS) {
        ldseg_mr_field(x, sub, LDSEG_FIELD_USER_KEY, v);

        rc = ldseg_mr_id(x, v, &me->key, &me->key_len);

        if (rc == LDSEG_MR_FAILED) {
            goto failed;
        }

        if (rc != LDSEG_MR_OK) {
            if (type == LDSEG_EP_IDENTIFY) {
                ldseg_mr_set(me, LDSEG_MSG_SKIPPED,
                             LDSEG_REASON_IDENTIFY_WITHOUT_USER_ID,
                             "identify without \"userId\" maps to no event");

            } else {
                ldseg_mr_set(me, LDSEG_MSG_REJECTED,
                             LDSEG_REASON_MISSING_USER_ID,
                             "the mapped \"user_key\" is missing or not a "
                             "string");
            }

            return;
        }

        ldseg_mr_field(x, sub, LDSEG_FIELD_PREVIOUS_KEY, v);

        rc = ldseg_mr_id(x, v, &me->user, &me->user_len);

        switch (rc) {

        case LDSEG_MR_FAILED:
            goto failed;

        case LDSEG_MR_MISSING:
            if (type == LDSEG_EP_IDENTIFY) {
                ldseg_mr_set(me, LDSEG_MSG_SKIPPED,
                             LDSEG_REASON_IDENTIFY_WITHOUT_PREVIOUS_ID,
                             "identify without \"previousId\" or "
                             "\"anonymousId\" maps to no event");

            } else {
                ldseg_mr_set(me, LDSEG_MSG_REJECTED,
                             LDSEG_REASON_MISSING_PREVIOUS_ID,
                             "the mapped \"previous_key\" is missing");
            }

            return;

        case LDSEG_MR_INVALID:
            ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_MISSING_IDENTITY,
                         "the mapped \"previous_key\" is not a usable id");
            return;

        default:
            break;
        }

        if (ldseg_mr_model_time(x, sub, me)) {
            return;
        }

        ldseg_mr_field(x, sub, LDSEG_FIELD_TIMESTAMP, v);

        rc = ldseg_mr_time(x, v, opt, &me->ms);

        if (rc == LDSEG_MR_FAILED) {
            goto failed;
        }

        if (rc != LDSEG_MR_OK) {
            ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_INVALID_TIMESTAMP,
                         "the mapped \"timestamp\" is not a valid ISO-8601 "
                         "date");
        }

        return;
    }

    ldseg_mr_field(x, sub, LDSEG_FIELD_USER_KEY, v);

    rc = ldseg_mr_id(x, v, &me->user, &me->user_len);

    if (rc == LDSEG_MR_FAILED) {
        goto failed;
    }

    if (rc != LDSEG_MR_OK) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_MISSING_IDENTITY,
                     "the mapped \"user_key\" is missing or not a usable id");
        return;
    }

    ldseg_mr_field(x, sub, LDSEG_FIELD_EVENT_NAME, v);

    rc = ldseg_mr_id(x, v, &me->key, &me->key_len);

    if (rc == LDSEG_MR_FAILED) {
        goto failed;
    }

    if (rc != LDSEG_MR_OK) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_MISSING_EVENT,
                     "the mapped \"event_name\" is missing or not a string");
        return;
    }

    ldseg_mr_field(x, sub, LDSEG_FIELD_EVENT_PROPERTIES, v);

    if (!ldseg_mr_absent(v)) {
        if (v->type != LDSEG_MV_OBJECT) {
            ldseg_mr_set(me, LDSEG_MSG_REJECTED,
                         LDSEG_REASON_INVALID_PROPERTIES,
                         "the mapped \"event_properties\" is not an object");
            return;
        }

        me->data = v;
    }

    if (!ldseg_mr_model_time(x, sub, me)) {
        ldseg_mr_field(x, sub, LDSEG_FIELD_TIMESTAMP, v);

        rc = ldseg_mr_time(x, v, opt, &me->ms);

        if (rc == LDSEG_MR_FAILED) {
            goto failed;
        }

        if (rc != LDSEG_MR_OK) {
            ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_INVALID_TIMESTAMP,
                         "the mapped \"timestamp\" is not a valid ISO-8601 "
                         "date");
            return;
        }
    }

    ldseg_mr_field(x, sub, LDSEG_FIELD_METRIC_VALUE, v);

    rc = ldseg_mr_metric(x, v, me);

    if (rc == LDSEG_MR_FAILED) {
        goto failed;
    }

    if (rc == LDSEG_MR_INVALID) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_INVALID_METRIC,
                     "the mapped \"metric_value\" is not a finite number");
        return;
    }

    ldseg_mr_field(x, sub, LDSEG_FIELD_CONTEXT_KIND, v);

    rc = ldseg_mr_id(x, v, &me->kind, &me->kind_len);

    if (rc == LDSEG_MR_FAILED) {
        goto failed;
    }

    if (rc == LDSEG_MR_INVALID) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_INVALID_CONTEXT,
                     "the mapped \"context_kind\" is not a string");
        return;
    }

    me->kind_esc = (v->type != LDSEG_MV_STRING || v->esc);

    if (rc == LDSEG_MR_MISSING) {
        me->kind = "user";
        me->kind_len = 4;
        me->kind_esc = 0;
    }

    e = sub->fields[LDSEG_FIELD_ADDITIONAL_KEYS];

    if (e != NULL && e->kind == LDSEG_EX_OBJECT) {
        rc = ldseg_mr_context_object(x, e, me);

    } else {
        ldseg_mr_field(x, sub, LDSEG_FIELD_ADDITIONAL_KEYS, v);

        rc = ldseg_mr_context_keys(x, v, me);
    }

    if (rc == LDSEG_MR_FAILED) {
        goto failed;
    }

    if (rc == LDSEG_MR_INVALID) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_INVALID_CONTEXT,
                     "the mapped \"additional_context_keys\" is not an "
                     "object");
    }

    return;

failed:

    if (x->run->scratch.nomem) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED,
                     LDSEG_REASON_NO_MEMORY, "out of memory");
        x->run->nomem = 1;

    } else if (x->fail != NULL) {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED,
                     LDSEG_REASON_MAPPING_FAILED, x->fail);

    } else {
        ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_TOO_LARGE,
                     "the mapped events would be too large");
    }
}


size_t
ldseg_mapping_format_ms(int64_t ms, char *dst)
{
    return ldseg_mr_format_ms(ms, dst);
}


static inline size_t
ldseg_mr_format_ms(int64_t ms, char *dst)
{
    char      *q, buf[24];
    size_t     i, n;
    uint32_t   lo;
    uint64_t   u;

    q = buf + sizeof(buf);
    u = (ms < 0) ? (uint64_t) 0 - (uint64_t) ms : (uint64_t) ms;

    /*
     * Two digits at a time, the last eight in 32 bits apart from the rest
     * (an epoch in milliseconds has 13): two short chains of arithmetic.
     */

    if (u >= 100000000) {
        lo = (uint32_t) (u % 100000000);
        u /= 100000000;

        for (i = 0; i < 4; i++) {
            q -= 2;
            memcpy(q, ldseg_mr_digits + (lo % 100) * 2, 2);
            lo /= 100;
        }
    }

    while (u >= 100) {
        q -= 2;
        memcpy(q, ldseg_mr_digits + (u % 100) * 2, 2);
        u /= 100;
    }

    if (u >= 10) {
        q -= 2;
        memcpy(q, ldseg_mr_digits + u * 2, 2);

    } else {
        *--q = (char) ('0' + u);
    }

    if (ms < 0) {
        *--q = '-';
    }

    n = (size_t) (buf + sizeof(buf) - q);
    memcpy(dst, q, n);

    return n;
}


/* the event's length, as ldseg_mr_write() will write it */

static size_t
ldseg_mr_length(ldseg_mr_event_t *me)
{
    size_t  i, n;

    me->ms_len = ldseg_mr_format_ms(me->ms, me->ms_text);

    if (me->action == LDSEG_ACTION_ALIAS) {
        return sizeof("{\"kind\":\"alias\",\"key\":\"\",\"previousKey\":\"\","
                      "\"contextKind\":\"user\",\"previousContextKind\":"
                      "\"anonymousUser\",\"creationDate\":}") - 1
               + me->key_len + me->user_len + me->ms_len;
    }

    n = sizeof("{\"kind\":\"custom\",\"key\":\"\",\"contextKeys\":{\"\":\"\"},"
               "\"creationDate\":,\"data\":}") - 1
        + me->key_len + me->kind_len + me->user_len + me->ms_len;

    for (i = 0; i < me->nckeys; i++) {
        n += sizeof("\"\":\"\",") - 1 + me->ckeys[i].key_len
             + me->ckeys[i].val_len;
    }

    if (me->metric != NULL) {
        n += sizeof(",\"metricValue\":") - 1 + me->metric_len;
    }

    if (me->data == NULL) {
        n += 2;

    } else if (me->data->p != NULL && !me->clean) {
        n += me->data->len;

    } else {
        n += ldseg_mv_write(me->data, NULL, me->clean);
    }

    return n;
}


/* writes the event (ldseg_mr_length() first); returns its length */

static size_t
ldseg_mr_write(const ldseg_mr_event_t *me, char *dst, size_t *ms_at)
{
    char    *p;
    size_t   i;

#define ldseg_mr_put(s, l)                                                   \
    do {                                                                     \
        memcpy(p, s, l);                                                     \
        p += l;                                                              \
    } while (0)

#define ldseg_mr_lit(s)  ldseg_mr_put(s, sizeof(s) - 1)

    p = dst;

    if (me->action == LDSEG_ACTION_ALIAS) {
        ldseg_mr_lit("{\"kind\":\"alias\",\"key\":\"");
        ldseg_mr_put(me->key, me->key_len);
        ldseg_mr_lit("\",\"previousKey\":\"");
        ldseg_mr_put(me->user, me->user_len);
        ldseg_mr_lit("\",\"contextKind\":\"user\",\"previousContextKind\":"
                     "\"anonymousUser\",\"creationDate\":");
        *ms_at = (size_t) (p - dst);
        ldseg_mr_put(me->ms_text, me->ms_len);
        ldseg_mr_lit("}");

        return (size_t) (p - dst);
    }

    ldseg_mr_lit("{\"kind\":\"custom\",\"key\":\"");
    ldseg_mr_put(me->key, me->key_len);
    ldseg_mr_lit("\",\"contextKeys\":{");

    for (i = 0; i < me->nckeys; i++) {
        ldseg_mr_lit("\"");
        ldseg_mr_put(me->ckeys[i].key, me->ckeys[i].key_len);
        ldseg_mr_lit("\":\"");
        ldseg_mr_put(me->ckeys[i].val, me->ckeys[i].val_len);
        ldseg_mr_lit("\",");
    }

    ldseg_mr_lit("\"");
    ldseg_mr_put(me->kind, me->kind_len);
    ldseg_mr_lit("\":\"");
    ldseg_mr_put(me->user, me->user_len);
    ldseg_mr_lit("\"},\"creationDate\":");
    *ms_at = (size_t) (p - dst);
    ldseg_mr_put(me->ms_text, me->ms_len);

    if (me->metric != NULL) {
        ldseg_mr_lit(",\"metricValue\":");
        ldseg_mr_put(me->metric, me->metric_len);
    }

    ldseg_mr_lit(",\"data\":");

    if (me->data == NULL) {
        ldseg_mr_lit("{}");

    } else if (me->data->p != NULL && !me->clean) {
        ldseg_mr_put(me->data->p, me->data->len);

    } else {
        p += ldseg_mv_write(me->data, p, me->clean);
    }

    ldseg_mr_lit("}");

#undef ldseg_mr_lit
#undef ldseg_mr_put

    return (size_t) (p - dst);
}


void
ldseg_mapping_prepare(ldseg_mapping_run_t *run, const ldseg_segment_msg_t *m,
    ldseg_endpoint_e type, const ldseg_options_t *opt, ldseg_event_t *ev)
{
    int                      rc;
    char                    *p;
    size_t                   i, nsubs, nev, nskew, len, total, limit, at;
    unsigned                 skew;
    ldseg_mr_t               x;
    ldseg_mr_event_t        *mes, *me;
    const ldseg_error_t     *reject, *skip;
    const ldseg_mappings_t  *maps;

    maps = run->maps;
    nsubs = maps->nsubs;

    /* the events may grow to limit; what builds them, to more */
    len = m->msg.len + ((m->ctx != NULL) ? m->ctx->len : 0);
    limit = LDSEG_MAPPING_GROWTH * len + maps->slack;

    ldseg_arena_reset(&run->scratch, 2 * limit + LDSEG_MAPPING_SCRATCH);
    memset(run->cached, 0, maps->nslots);

    x.run = run;
    x.ar = &run->scratch;
    x.vals = m->f;
    x.ms = ev->ms;

    /*
     * A message's own sentAt is the one clock skew uses: its events are
     * written with the corrected timestamp the pipeline will compute.
     */

    if (opt->clock_skew && ev->has_ts && ev->has_sent) {
        (void) ldseg_time_skew(ev->ms, ev->sent_ms, opt->now_ms, &x.ms);
    }
    x.odd = m->odd;
    x.fail = NULL;

    ldseg_mv_token(&x.root, &m->msg);

    x.ctx = NULL;
    x.whole = NULL;

    if (m->ctx != NULL) {
        ldseg_mv_token(&x.ctx_v, m->ctx);
        x.ctx = &x.ctx_v;
    }

    x.type = &ldseg_mr_types[(type >= LDSEG_EP_TRACK && type <= LDSEG_EP_GROUP)
                            ? type : 0];

    mes = NULL;

    if (nsubs != 0) {
        mes = ldseg_arena_alloc(x.ar, nsubs * sizeof(ldseg_mr_event_t));
        if (mes == NULL) {
            goto failed;
        }
    }

    nev = 0;
    nskew = 0;
    total = 0;
    reject = NULL;
    skip = NULL;

    for (i = 0; i < nsubs; i++) {
        me = &mes[i];
        me->status = LDSEG_MSG_SKIPPED;
        me->err.reason = LDSEG_REASON_NONE;

        if (maps->subs[i].fql->type_only) {
            rc = (maps->subs[i].fql->type_mask >> type) & 1;

        } else {
            rc = ldseg_fql_match(maps->subs[i].fql, type, ldseg_mr_fql_get,
                                 &x, x.ar);
        }

        if (rc < 0) {
            goto failed;
        }

        if (rc == 0) {
            continue;
        }

        x.fail = NULL;
        ldseg_mr_action(&x, &maps->subs[i], type, opt, me);

        if (run->nomem) {
            goto failed;
        }

        switch (me->status) {

        case LDSEG_MSG_EVENT:
            len = ldseg_mr_length(me);

            if (len > limit - total - 1 || total + len + 1 > limit) {
                ldseg_mr_set(me, LDSEG_MSG_REJECTED, LDSEG_REASON_TOO_LARGE,
                             "the mapped events would be too large");
                reject = (reject != NULL) ? reject : &me->err;
                break;
            }

            total += len + (nev ? 1 : 0);
            nev++;
            nskew += me->model_ts;
            break;

        case LDSEG_MSG_REJECTED:
            reject = (reject != NULL) ? reject : &me->err;
            break;

        default:
            skip = (skip != NULL) ? skip : &me->err;
            break;
        }
    }

    if (nev == 0) {
        if (reject != NULL) {
            ev->status = LDSEG_MSG_REJECTED;
            ev->err = *reject;
            ev->refused = 1;

        } else if (skip != NULL) {
            ev->status = LDSEG_MSG_SKIPPED;
            ev->err = *skip;

        } else {
            ev->status = LDSEG_MSG_SKIPPED;
            ev->err.reason = LDSEG_REASON_NOT_SUBSCRIBED;
            ev->err.message = "no subscription matches the message";
        }

        return;
    }

    /* appended to the request's events, after a comma */

    if (total + 1 > (size_t) UINT32_MAX - run->len) {
        goto too_large;
    }

    /*
     * A request's events, whatever its messages and the batch context
     * they inherit make of them: what a full batch may make, at most.
     */

    if (run->len + total + 1 > LDSEG_MAPPING_GROWTH * opt->max_batch_bytes
                               + maps->slack)
    {
        ev->status = LDSEG_MSG_REJECTED;
        ev->err.reason = LDSEG_REASON_TOO_LARGE;
        ev->err.message = "the request's mapped events would be too large";
        ev->refused = 1;
        return;
    }

    /*
     * The dates clock skew may still move: those of the message's own
     * timestamp, if it may get its batch's sentAt (which may come later).
     */
    skew = opt->clock_skew && ev->has_ts && nskew != 0 && !ev->has_sent
           && m->batch;

    if (ldseg_mr_room(run, total + 1) != 0
        || (skew && ldseg_mr_skew_room(run, nskew) != 0))
    {
        run->nomem = 1;
        ev->status = LDSEG_MSG_REJECTED;
        ev->err.reason = LDSEG_REASON_NO_MEMORY;
        ev->err.message = "out of memory";
        return;
    }

    if (run->len != 0) {
        run->events[run->len++] = ',';
    }

    ev->status = LDSEG_MSG_EVENT;
    ev->kind = LDSEG_EVENT_MAPPED;
    ev->text_off = (uint32_t) run->len;
    ev->nld = nev;

    /* a refusal next to events is reported, the events go on */
    ev->err.reason = LDSEG_REASON_NONE;
    ev->err.message = NULL;

    if (reject != NULL) {
        ev->err = *reject;
    }

    p = run->events + run->len;

    for (i = 0; i < nsubs; i++) {
        if (mes[i].status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (p != run->events + run->len) {
            *p++ = ',';
        }

        len = ldseg_mr_write(&mes[i], p, &at);

        if (skew && mes[i].model_ts) {
            run->skews[run->nskews].off = (uint32_t) ((p - run->events) + at);
            run->skews[run->nskews].len = (uint32_t) mes[i].ms_len;
            run->skews[run->nskews].ms = x.ms;
            run->nskews++;
        }

        p += len;
    }

    ev->text_len = (uint32_t) ((size_t) (p - run->events) - run->len);
    run->len += ev->text_len;

    return;

failed:

    if (run->scratch.nomem) {
        run->nomem = 1;
        ev->status = LDSEG_MSG_REJECTED;
        ev->err.reason = LDSEG_REASON_NO_MEMORY;
        ev->err.message = "out of memory";
        return;
    }

too_large:

    ev->status = LDSEG_MSG_REJECTED;
    ev->err.reason = LDSEG_REASON_TOO_LARGE;
    ev->err.message = "the mapped events would be too large";
    ev->refused = 1;
}


ldseg_rc_t
ldseg_mapping_split(ldseg_arena_t *ar, const char *s, size_t len,
    unsigned strip, ldseg_path_t *path)
{
    char        *seg, *buf;
    size_t       i, k, n, d, start, cap;

    memset(path, 0, sizeof(ldseg_path_t));

    /* path.replace('$.', ''): the first occurrence, wherever it is */

    if (strip) {
        for (i = 0; i + 1 < len; i++) {
            if (s[i] == '$' && s[i + 1] == '.') {
                buf = ldseg_arena_alloc(ar, len);
                if (buf == NULL) {
                    return LDSEG_ENOMEM;
                }

                memcpy(buf, s, i);
                memcpy(buf + i, s + i + 2, len - i - 2);
                s = buf;
                len -= 2;
                break;
            }
        }
    }

    if (len == 0 || (len == 1 && s[0] == '.')) {
        return LDSEG_OK;
    }

    cap = len / 2 + 1;
    path->segs = ldseg_arena_alloc(ar, cap * sizeof(char *));
    path->lens = ldseg_arena_alloc(ar, cap * sizeof(size_t));

    if (path->segs == NULL || path->lens == NULL) {
        return LDSEG_ENOMEM;
    }

#define ldseg_mr_mark(c)                                                     \
    ((c) == '"' || (c) == '\'' || ((c) >= '0' && (c) <= '9'))

    n = 0;
    start = 0;
    i = 0;

    for ( ;; ) {

        /* the delimiter at i: /\[(?="|'|\d)|\.|(?<="|'|\d)]+/ */

        d = 0;

        if (i < len) {
            if (s[i] == '.') {
                d = 1;

            } else if (s[i] == '[' && i + 1 < len && ldseg_mr_mark(s[i + 1]))
            {
                d = 1;

            } else if (s[i] == ']' && i > 0 && ldseg_mr_mark(s[i - 1])) {
                while (i + d < len && s[i + d] == ']') {
                    d++;
                }
            }

            if (d == 0) {
                i++;
                continue;
            }
        }

        /* a non-empty piece, its quotes removed */

        if (i > start) {
            seg = ldseg_arena_alloc(ar, i - start + 1);
            if (seg == NULL) {
                return LDSEG_ENOMEM;
            }

            for (k = 0; start < i; start++) {
                if (s[start] != '"' && s[start] != '\'') {
                    seg[k++] = s[start];
                }
            }

            seg[k] = '\0';

            if (n == cap) {
                return LDSEG_ENOMEM;
            }

            path->segs[n] = seg;
            path->lens[n] = k;
            n++;
        }

        if (i == len) {
            break;
        }

        i += d;
        start = i;
    }

#undef ldseg_mr_mark

    path->nsegs = n;

    return LDSEG_OK;
}


void
ldseg_mapping_trim(const char **s, size_t *len)
{
    size_t       i, k;
    unsigned     cp;
    const char  *p;

#define ldseg_mr_js_space(cp)                                                \
    ((cp) == 0x09 || (cp) == 0x0a || (cp) == 0x0b || (cp) == 0x0c            \
     || (cp) == 0x0d || (cp) == 0x20 || (cp) == 0xa0 || (cp) == 0x1680       \
     || ((cp) >= 0x2000 && (cp) <= 0x200a) || (cp) == 0x2028                 \
     || (cp) == 0x2029 || (cp) == 0x202f || (cp) == 0x205f                   \
     || (cp) == 0x3000 || (cp) == 0xfeff)

    p = *s;
    i = 0;

    while (i < *len) {
        k = i;
        cp = ldseg_mr_utf8_get(p, *len, &k);

        if (!ldseg_mr_js_space(cp)) {
            break;
        }

        i = k;
    }

    p += i;
    *len -= i;

    while (*len > 0) {
        /* the start of the last character */
        for (i = *len - 1; i > 0 && ((unsigned char) p[i] & 0xc0) == 0x80;
             i--)
        {
            /* void */
        }

        k = i;
        cp = ldseg_mr_utf8_get(p, *len, &k);

        if (!ldseg_mr_js_space(cp)) {
            break;
        }

        *len = i;
    }

#undef ldseg_mr_js_space

    *s = p;
}


/*
 * Copyright (C) ldseg authors
 *
 * JavaScript values over the message's spans, for the mappings.  Spans
 * are validated JSON already (the request's scan did it), so walking them
 * again only skips tokens.  Every value a mapping builds comes from the
 * arena, whose limit bounds what one message can cost.
 */


#include <math.h>
#include <string.h>

#include <ldseg_number.h>
#include <ldseg_value.h>


#define LDSEG_ARENA_BLOCK   16384
#define LDSEG_ARENA_LARGE   (LDSEG_ARENA_BLOCK / 4)

/* up to this many members, duplicates are found by comparing each pair */
#define LDSEG_MEMBERS_SMALL  16


struct ldseg_arena_block_s {
    ldseg_arena_block_t          *next;
    size_t                        size;
    size_t                        owned;     /* 0: the caller's memory */
    size_t                        pad;
};


/* a member of an object being put in JSON.parse() order */
typedef struct {
    const char                   *key;       /* escaped, as in the value */
    size_t                        key_len;
    unsigned                      key_esc;
    const char                   *dkey;      /* decoded */
    size_t                        dlen;
    uint32_t                      index;     /* an array index key */
    unsigned                      is_index;
    unsigned                      gone;      /* a later one replaced it */
    const ldseg_mv_t             *val;
} ldseg_mv_entry_t;


typedef int (*ldseg_mv_cmp_pt)(const ldseg_mv_entry_t *a,
    const ldseg_mv_entry_t *b);


static const char *ldseg_mv_ws(const char *p);
static ldseg_json_type_e ldseg_mv_token_type(const char *p);
static int ldseg_mv_member_next(const char **pp, ldseg_json_val_t *key,
    ldseg_json_val_t *val);
static int ldseg_mv_element_next(const char **pp, ldseg_json_val_t *val);
static int ldseg_mv_key_eq(ldseg_arena_t *ar, const char *k, size_t klen,
    unsigned esc, const char *key, size_t len);
static int ldseg_mv_array_index(const char *key, size_t len, uint32_t *n);
static const ldseg_mv_t *ldseg_mv_get_string(ldseg_arena_t *ar,
    const ldseg_mv_t *v, const char *key, size_t len);
static ldseg_rc_t ldseg_mv_sort(ldseg_arena_t *ar, ldseg_mv_entry_t **a,
    size_t n, ldseg_mv_cmp_pt cmp);
static int ldseg_mv_cmp_key(const ldseg_mv_entry_t *a,
    const ldseg_mv_entry_t *b);
static int ldseg_mv_cmp_index(const ldseg_mv_entry_t *a,
    const ldseg_mv_entry_t *b);
static ldseg_rc_t ldseg_mv_order(ldseg_arena_t *ar, ldseg_mv_entry_t *e,
    size_t count, ldseg_mv_entry_t **order, size_t *n);
static ldseg_rc_t ldseg_mv_entry_key(ldseg_arena_t *ar,
    ldseg_mv_entry_t *e);
static void ldseg_mv_canon_string(ldseg_buf_t *b, const char *s, size_t len);
static void ldseg_mv_join(ldseg_buf_t *b, const ldseg_mv_t *v);
static int ldseg_mv_string_throws(const ldseg_mv_t *v);
static const char *ldseg_mv_write_clean(const char *p, char *dst,
    size_t *len);
static int ldseg_mv_key_proto(const ldseg_mv_t *c);


const ldseg_mv_t  ldseg_mv_undefined = { LDSEG_MV_UNDEFINED, 0, 0, 0,
                                         NULL, 0, NULL, 0, NULL, NULL };
const ldseg_mv_t  ldseg_mv_null = { LDSEG_MV_NULL, 0, 0, 0, NULL, 0, NULL,
                                    0, NULL, NULL };
const ldseg_mv_t  ldseg_mv_true = { LDSEG_MV_TRUE, 0, 0, 0, NULL, 0, NULL,
                                    0, NULL, NULL };
const ldseg_mv_t  ldseg_mv_false = { LDSEG_MV_FALSE, 0, 0, 0, NULL, 0,
                                     NULL, 0, NULL, NULL };
const ldseg_mv_t  ldseg_mv_empty = { LDSEG_MV_STRING, 0, 0, 0, "", 0, NULL,
                                     0, NULL, NULL };


void
ldseg_arena_init(ldseg_arena_t *ar, const ldseg_allocator_t *a,
    size_t limit)
{
    ar->a.alloc = a->alloc;
    ar->a.free = a->free;
    ar->a.ctx = a->ctx;
    ar->blocks = NULL;
    ar->cur = NULL;
    ar->large = NULL;
    ar->pos = NULL;
    ar->end = NULL;
    ar->used = 0;
    ar->limit = limit;
    ar->over = 0;
    ar->nomem = 0;
}


void
ldseg_arena_init_buf(ldseg_arena_t *ar, const ldseg_allocator_t *a,
    size_t limit, void *buf, size_t size)
{
    ldseg_arena_block_t  *b;

    ldseg_arena_init(ar, a, limit);

    if (size <= sizeof(ldseg_arena_block_t)) {
        return;
    }

    b = buf;
    b->next = NULL;
    b->size = size - sizeof(ldseg_arena_block_t);
    b->owned = 0;

    ar->blocks = b;
    ar->cur = b;
    ar->pos = (char *) (b + 1);
    ar->end = ar->pos + b->size;
}


void *
ldseg_arena_alloc(ldseg_arena_t *ar, size_t size)
{
    char                 *p;
    ldseg_arena_block_t  *b;

    size = (size + 7) & ~(size_t) 7;

    if (size > ar->limit - ar->used || size == 0) {
        if (size != 0) {
            ar->over = 1;
            return NULL;
        }

        size = 8;
    }

    ar->used += size;

    if ((size_t) (ar->end - ar->pos) >= size) {
        p = ar->pos;
        ar->pos += size;
        return p;
    }

    if (size > LDSEG_ARENA_LARGE) {
        b = ar->a.alloc(ar->a.ctx, sizeof(ldseg_arena_block_t) + size);
        if (b == NULL) {
            ar->nomem = 1;
            return NULL;
        }

        b->size = size;
        b->owned = 1;
        b->next = ar->large;
        ar->large = b;

        return (char *) (b + 1);
    }

    if (ar->cur != NULL && ar->cur->next != NULL) {
        b = ar->cur->next;

    } else {
        b = ar->a.alloc(ar->a.ctx,
                         sizeof(ldseg_arena_block_t) + LDSEG_ARENA_BLOCK);
        if (b == NULL) {
            ar->nomem = 1;
            return NULL;
        }

        b->size = LDSEG_ARENA_BLOCK;
        b->owned = 1;
        b->next = NULL;

        if (ar->cur == NULL) {
            ar->blocks = b;

        } else {
            ar->cur->next = b;
        }
    }

    ar->cur = b;
    ar->pos = (char *) (b + 1) + size;
    ar->end = (char *) (b + 1) + b->size;

    return (char *) (b + 1);
}


void
ldseg_arena_reset(ldseg_arena_t *ar, size_t limit)
{
    ldseg_arena_block_t  *b, *next;

    for (b = ar->large; b != NULL; b = next) {
        next = b->next;
        ar->a.free(ar->a.ctx, b);
    }

    ar->large = NULL;
    ar->cur = ar->blocks;

    if (ar->cur != NULL) {
        ar->pos = (char *) (ar->cur + 1);
        ar->end = ar->pos + ar->cur->size;

    } else {
        ar->pos = NULL;
        ar->end = NULL;
    }

    ar->used = 0;
    ar->limit = limit;
    ar->over = 0;
    ar->nomem = 0;
}


void
ldseg_arena_free(ldseg_arena_t *ar)
{
    ldseg_arena_block_t  *b, *next;

    ldseg_arena_reset(ar, 0);

    for (b = ar->blocks; b != NULL; b = next) {
        next = b->next;

        if (b->owned) {
            ar->a.free(ar->a.ctx, b);
        }
    }

    ar->blocks = NULL;
    ar->cur = NULL;
    ar->pos = NULL;
    ar->end = NULL;
}


void
ldseg_buf_init(ldseg_buf_t *b, ldseg_arena_t *ar)
{
    b->ar = ar;
    b->p = (char *) "";             /* never written: cap is 0 */
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
    b->throws = 0;
}


void
ldseg_buf_add(ldseg_buf_t *b, const char *s, size_t len)
{
    char    *p;
    size_t   cap;

    if (b->failed || len == 0) {
        return;
    }

    if (len > b->cap - b->len) {
        cap = (b->cap < 64) ? 64 : b->cap;

        while (cap - b->len < len) {
            if (cap > ((size_t) -1) / 4) {
                b->failed = 1;
                b->ar->over = 1;
                return;
            }

            cap *= 2;
        }

        p = ldseg_arena_alloc(b->ar, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }

        if (b->len != 0) {
            memcpy(p, b->p, b->len);
        }

        b->p = p;
        b->cap = cap;
    }

    memcpy(b->p + b->len, s, len);
    b->len += len;
}


void
ldseg_buf_escape(ldseg_buf_t *b, const char *s, size_t len)
{
    char         esc[6];
    size_t       i, start;
    unsigned     c;
    static const char  hex[] = "0123456789abcdef";

    start = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        ldseg_buf_add(b, s + start, i - start);
        start = i + 1;

        switch (c) {
        case '"':
            ldseg_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            ldseg_buf_add(b, "\\\\", 2);
            break;
        case '\b':
            ldseg_buf_add(b, "\\b", 2);
            break;
        case '\f':
            ldseg_buf_add(b, "\\f", 2);
            break;
        case '\n':
            ldseg_buf_add(b, "\\n", 2);
            break;
        case '\r':
            ldseg_buf_add(b, "\\r", 2);
            break;
        case '\t':
            ldseg_buf_add(b, "\\t", 2);
            break;
        default:
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            ldseg_buf_add(b, esc, 6);
            break;
        }
    }

    ldseg_buf_add(b, s + start, len - start);
}


/* validated JSON: white space, strings and tokens end without a bound */

static const char *
ldseg_mv_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
        p++;
    }

    return p;
}


const char *
ldseg_mv_string_end(const char *p)
{
    for ( ;; ) {
        if (*p == '"') {
            return p;
        }

        p += (*p == '\\') ? 2 : 1;
    }
}


const char *
ldseg_mv_skip(const char *p)
{
    unsigned  depth;

    switch (*p) {

    case '"':
        return ldseg_mv_string_end(p + 1) + 1;

    case '{':
    case '[':
        depth = 0;

        for ( ;; ) {
            switch (*p) {

            case '"':
                p = ldseg_mv_string_end(p + 1);
                break;

            case '{':
            case '[':
                depth++;
                break;

            case '}':
            case ']':
                if (--depth == 0) {
                    return p + 1;
                }

                break;

            default:
                break;
            }

            p++;
        }

    case 't':
    case 'n':
        return p + 4;

    case 'f':
        return p + 5;

    default:
        p++;

        while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e'
               || *p == 'E' || *p == '+' || *p == '-')
        {
            p++;
        }

        return p;
    }
}


static ldseg_json_type_e
ldseg_mv_token_type(const char *p)
{
    switch (*p) {
    case '{':
        return LDSEG_JSON_OBJECT;
    case '[':
        return LDSEG_JSON_ARRAY;
    case '"':
        return LDSEG_JSON_STRING;
    case 't':
        return LDSEG_JSON_TRUE;
    case 'f':
        return LDSEG_JSON_FALSE;
    case 'n':
        return LDSEG_JSON_NULL;
    default:
        return LDSEG_JSON_NUMBER;
    }
}


/*
 * The next member of a validated object: *pp at its '{' or after the
 * previous member.  Returns 0 at the end.
 */

static int
ldseg_mv_member_next(const char **pp, ldseg_json_val_t *key,
    ldseg_json_val_t *val)
{
    const char  *p, *q;

    if (**pp == '}') {
        return 0;
    }

    p = ldseg_mv_ws(*pp + 1);

    if (*p == '}') {
        return 0;
    }

    q = ldseg_mv_string_end(p + 1) + 1;
    key->p = p;
    key->len = (size_t) (q - p);
    key->type = LDSEG_JSON_STRING;

    p = ldseg_mv_ws(ldseg_mv_ws(q) + 1);
    q = ldseg_mv_skip(p);

    val->p = p;
    val->len = (size_t) (q - p);
    val->type = ldseg_mv_token_type(p);

    *pp = ldseg_mv_ws(q);

    return 1;
}


static int
ldseg_mv_element_next(const char **pp, ldseg_json_val_t *val)
{
    const char  *p, *q;

    if (**pp == ']') {
        return 0;
    }

    p = ldseg_mv_ws(*pp + 1);

    if (*p == ']') {
        return 0;
    }

    q = ldseg_mv_skip(p);

    val->p = p;
    val->len = (size_t) (q - p);
    val->type = ldseg_mv_token_type(p);

    *pp = ldseg_mv_ws(q);

    return 1;
}


/*
 * Only what a value read from a token is made of: such a value is never a
 * member of a built list (linking copies it), so key, child and next are
 * left as they are.
 */

void
ldseg_mv_token(ldseg_mv_t *v, const ldseg_json_val_t *tok)
{
    v->p = tok->p;
    v->len = tok->len;
    v->esc = 0;

    switch (tok->type) {

    case LDSEG_JSON_NULL:
        v->type = LDSEG_MV_NULL;
        break;

    case LDSEG_JSON_TRUE:
        v->type = LDSEG_MV_TRUE;
        break;

    case LDSEG_JSON_FALSE:
        v->type = LDSEG_MV_FALSE;
        break;

    case LDSEG_JSON_NUMBER:
        v->type = LDSEG_MV_NUMBER;
        v->num = ldseg_number_parse(tok->p, tok->len);
        break;

    case LDSEG_JSON_STRING:
        v->type = LDSEG_MV_STRING;
        v->p = tok->p + 1;
        v->len = tok->len - 2;
        v->esc = 1;
        break;

    case LDSEG_JSON_ARRAY:
        v->type = LDSEG_MV_ARRAY;
        v->child = NULL;
        break;

    case LDSEG_JSON_OBJECT:
        v->type = LDSEG_MV_OBJECT;
        v->child = NULL;
        break;

    default:
        v->type = LDSEG_MV_UNDEFINED;
        v->p = NULL;
        v->len = 0;
        break;
    }
}


ldseg_mv_t *
ldseg_mv_new(ldseg_arena_t *ar, ldseg_mv_type_e type)
{
    ldseg_mv_t  *v;

    v = ldseg_arena_alloc(ar, sizeof(ldseg_mv_t));
    if (v == NULL) {
        return NULL;
    }

    memset(v, 0, sizeof(ldseg_mv_t));
    v->type = type;

    return v;
}


ldseg_mv_t *
ldseg_mv_copy(ldseg_arena_t *ar, const ldseg_mv_t *v)
{
    ldseg_mv_t  *c;

    c = ldseg_arena_alloc(ar, sizeof(ldseg_mv_t));
    if (c == NULL) {
        return NULL;
    }

    *c = *v;
    c->next = NULL;
    c->key = NULL;
    c->key_len = 0;
    c->key_esc = 0;

    return c;
}


ldseg_mv_t *
ldseg_mv_string(ldseg_arena_t *ar, const char *p, size_t len, unsigned esc)
{
    ldseg_mv_t  *v;

    v = ldseg_mv_new(ar, LDSEG_MV_STRING);
    if (v == NULL) {
        return NULL;
    }

    v->p = (p == NULL) ? "" : p;
    v->len = len;
    v->esc = esc;

    return v;
}


ldseg_mv_t *
ldseg_mv_number(ldseg_arena_t *ar, double num)
{
    ldseg_mv_t  *v;

    v = ldseg_mv_new(ar, LDSEG_MV_NUMBER);
    if (v == NULL) {
        return NULL;
    }

    v->num = num;

    return v;
}


int
ldseg_mv_falsy(const ldseg_mv_t *v)
{
    switch (v->type) {

    case LDSEG_MV_UNDEFINED:
    case LDSEG_MV_NULL:
    case LDSEG_MV_FALSE:
        return 1;

    case LDSEG_MV_NUMBER:
        return v->num == 0 || isnan(v->num);

    case LDSEG_MV_STRING:
        return v->len == 0;

    default:
        return 0;
    }
}


/* an escaped key equals the decoded key/len */

static int
ldseg_mv_key_eq(ldseg_arena_t *ar, const char *k, size_t klen, unsigned esc,
    const char *key, size_t len)
{
    char    buf[256], *d;
    size_t  n;

    if (!esc || memchr(k, '\\', klen) == NULL) {
        return klen == len && memcmp(k, key, len) == 0;
    }

    if (klen < len) {
        return 0;
    }

    if (klen <= sizeof(buf)) {
        d = buf;

    } else {
        d = ldseg_arena_alloc(ar, klen);
        if (d == NULL) {
            return 0;
        }
    }

    n = ldseg_json_unescape(k, klen, d);

    return n == len && memcmp(d, key, len) == 0;
}


/* a canonical array index: "0" or [1-9][0-9]* below 2^32 - 1 */

static int
ldseg_mv_array_index(const char *key, size_t len, uint32_t *n)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > 10 || (key[0] == '0' && len > 1)) {
        return 0;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9') {
            return 0;
        }

        v = v * 10 + (uint64_t) (key[i] - '0');
    }

    if (v >= 0xffffffffULL) {
        return 0;
    }

    *n = (uint32_t) v;

    return 1;
}


/* the UTF-16 length of a string, or one of its UTF-16 units */

static const ldseg_mv_t *
ldseg_mv_get_string(ldseg_arena_t *ar, const ldseg_mv_t *v, const char *key,
    size_t len)
{
    char           *d;
    size_t          dlen, i, n, clen;
    uint32_t        idx;
    unsigned        c, cp;
    const char     *s;
    ldseg_buf_t     b;
    static const char  hex[] = "0123456789abcdef";

    if (len == 6 && memcmp(key, "length", 6) == 0) {
        idx = 0xffffffff;

    } else if (!ldseg_mv_array_index(key, len, &idx)) {
        return &ldseg_mv_undefined;
    }

    if (ldseg_mv_decode(ar, v, &s, &dlen) != LDSEG_OK) {
        return NULL;
    }

    n = 0;

    for (i = 0; i < dlen; i += clen) {
        c = (unsigned char) s[i];
        clen = (c < 0x80) ? 1 : (c < 0xe0) ? 2 : (c < 0xf0) ? 3 : 4;

        if (clen < 4) {
            if (n == idx) {
                ldseg_buf_init(&b, ar);
                ldseg_buf_escape(&b, s + i, clen);

                if (b.failed) {
                    return NULL;
                }

                return ldseg_mv_string(ar, b.p, b.len,
                                       memchr(b.p, '\\', b.len) != NULL);
            }

            n++;
            continue;
        }

        if (n == idx || n + 1 == idx) {
            /* half of a surrogate pair: a lone surrogate */
            cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3f) << 12)
                 | ((s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
            cp -= 0x10000;
            cp = (n == idx) ? 0xd800 + (cp >> 10) : 0xdc00 + (cp & 0x3ff);

            d = ldseg_arena_alloc(ar, 6);
            if (d == NULL) {
                return NULL;
            }

            d[0] = '\\';
            d[1] = 'u';
            d[2] = hex[cp >> 12];
            d[3] = hex[(cp >> 8) & 0xf];
            d[4] = hex[(cp >> 4) & 0xf];
            d[5] = hex[cp & 0xf];

            return ldseg_mv_string(ar, d, 6, 1);
        }

        n += 2;
    }

    if (idx == 0xffffffff) {
        return ldseg_mv_number(ar, (double) n);
    }

    return &ldseg_mv_undefined;
}


const ldseg_mv_t *
ldseg_mv_get(ldseg_arena_t *ar, const ldseg_mv_t *v, const char *key,
    size_t len)
{
    int                found;
    uint32_t           idx, i;
    const char        *p;
    ldseg_mv_t        *r;
    ldseg_json_val_t   k, val, last;
    const ldseg_mv_t  *c;

    switch (v->type) {

    case LDSEG_MV_OBJECT:
        if (v->p == NULL) {
            for (c = v->child; c != NULL; c = c->next) {
                if (ldseg_mv_key_eq(ar, c->key, c->key_len, c->key_esc, key,
                                    len))
                {
                    return c;
                }
            }

            return &ldseg_mv_undefined;
        }

        p = v->p;
        found = 0;

        while (ldseg_mv_member_next(&p, &k, &val)) {
            if (ldseg_mv_key_eq(ar, k.p + 1, k.len - 2, 1, key, len))
            {
                last = val;
                found = 1;
            }
        }

        if (!found) {
            return &ldseg_mv_undefined;
        }

        r = ldseg_mv_new(ar, LDSEG_MV_UNDEFINED);
        if (r == NULL) {
            return NULL;
        }

        ldseg_mv_token(r, &last);

        return r;

    case LDSEG_MV_ARRAY:
        if (len == 6 && memcmp(key, "length", 6) == 0) {
            idx = 0xffffffff;

        } else if (!ldseg_mv_array_index(key, len, &idx)) {
            return &ldseg_mv_undefined;
        }

        i = 0;

        if (v->p == NULL) {
            for (c = v->child; c != NULL; c = c->next) {
                if (i++ == idx) {
                    return c;
                }
            }

        } else {
            p = v->p;

            while (ldseg_mv_element_next(&p, &val)) {
                if (i++ == idx) {
                    r = ldseg_mv_new(ar, LDSEG_MV_UNDEFINED);
                    if (r == NULL) {
                        return NULL;
                    }

                    ldseg_mv_token(r, &val);

                    return r;
                }
            }
        }

        if (idx == 0xffffffff) {
            return ldseg_mv_number(ar, (double) i);
        }

        return &ldseg_mv_undefined;

    case LDSEG_MV_STRING:
        return ldseg_mv_get_string(ar, v, key, len);

    default:
        return &ldseg_mv_undefined;
    }
}


/* a stable merge sort of entry pointers */

static ldseg_rc_t
ldseg_mv_sort(ldseg_arena_t *ar, ldseg_mv_entry_t **a, size_t n,
    ldseg_mv_cmp_pt cmp)
{
    size_t             width, i, l, r, lend, rend, k;
    ldseg_mv_entry_t **tmp, **src, **dst, **t;

    if (n < 2) {
        return LDSEG_OK;
    }

    tmp = ldseg_arena_alloc(ar, n * sizeof(ldseg_mv_entry_t *));
    if (tmp == NULL) {
        return LDSEG_ENOMEM;
    }

    src = a;
    dst = tmp;

    for (width = 1; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            l = i;
            lend = (i + width < n) ? i + width : n;
            r = lend;
            rend = (i + 2 * width < n) ? i + 2 * width : n;
            k = i;

            while (l < lend && r < rend) {
                dst[k++] = (cmp(src[r], src[l]) < 0) ? src[r++] : src[l++];
            }

            while (l < lend) {
                dst[k++] = src[l++];
            }

            while (r < rend) {
                dst[k++] = src[r++];
            }
        }

        t = src;
        src = dst;
        dst = t;
    }

    if (src != a) {
        memcpy(a, src, n * sizeof(ldseg_mv_entry_t *));
    }

    return LDSEG_OK;
}


static int
ldseg_mv_cmp_key(const ldseg_mv_entry_t *a, const ldseg_mv_entry_t *b)
{
    int     rc;
    size_t  n;

    n = (a->dlen < b->dlen) ? a->dlen : b->dlen;
    rc = memcmp(a->dkey, b->dkey, n);

    if (rc != 0) {
        return rc;
    }

    return (a->dlen < b->dlen) ? -1 : (a->dlen > b->dlen);
}


static int
ldseg_mv_cmp_index(const ldseg_mv_entry_t *a, const ldseg_mv_entry_t *b)
{
    return (a->index < b->index) ? -1 : (a->index > b->index);
}


/*
 * Puts entries e[0..count) in JSON.parse() order into order[]: a
 * duplicate key keeps the first one's place and the last one's value;
 * array index keys come first, ascending.
 */

static ldseg_rc_t
ldseg_mv_order(ldseg_arena_t *ar, ldseg_mv_entry_t *e, size_t count,
    ldseg_mv_entry_t **order, size_t *n)
{
    size_t  i, j, k;

    for (i = 0; i < count; i++) {
        order[i] = &e[i];
    }

    /* duplicates: the first keeps its place, the last its value */

    if (count <= LDSEG_MEMBERS_SMALL) {
        for (i = 1; i < count; i++) {
            for (j = 0; j < i; j++) {
                if (!e[j].gone && ldseg_mv_cmp_key(&e[i], &e[j]) == 0) {
                    e[j].val = e[i].val;
                    e[i].gone = 1;
                    break;
                }
            }
        }

    } else {
        if (ldseg_mv_sort(ar, order, count, ldseg_mv_cmp_key) != LDSEG_OK) {
            return LDSEG_ENOMEM;
        }

        for (i = 0; i < count; i = j) {
            for (j = i + 1;
                 j < count && ldseg_mv_cmp_key(order[i], order[j]) == 0;
                 j++)
            {
                order[j]->gone = 1;
            }

            order[i]->val = order[j - 1]->val;
        }

        for (i = 0; i < count; i++) {
            order[i] = &e[i];
        }
    }

    /* array index keys first, ascending; then the others in order */

    k = 0;

    for (i = 0; i < count; i++) {
        if (e[i].is_index && !e[i].gone) {
            order[k++] = &e[i];
        }
    }

    if (k > 1 && ldseg_mv_sort(ar, order, k, ldseg_mv_cmp_index) != LDSEG_OK)
    {
        return LDSEG_ENOMEM;
    }

    for (i = 0; i < count; i++) {
        if (!e[i].is_index && !e[i].gone) {
            order[k++] = &e[i];
        }
    }

    *n = k;

    return LDSEG_OK;
}


static ldseg_rc_t
ldseg_mv_entry_key(ldseg_arena_t *ar, ldseg_mv_entry_t *e)
{
    char  *d;

    if (e->key_esc) {
        d = ldseg_arena_alloc(ar, e->key_len);
        if (d == NULL) {
            return LDSEG_ENOMEM;
        }

        e->dkey = d;
        e->dlen = ldseg_json_unescape(e->key, e->key_len, d);

    } else {
        e->dkey = e->key;
        e->dlen = e->key_len;
    }

    e->gone = 0;
    e->is_index = ldseg_mv_array_index(e->dkey, e->dlen, &e->index);

    return LDSEG_OK;
}


const ldseg_mv_t *
ldseg_mv_object(ldseg_arena_t *ar, const ldseg_mv_member_t *m, size_t n)
{
    size_t              i, k;
    ldseg_mv_t         *v, *c, **tail;
    ldseg_mv_entry_t   *e, **order;

    v = ldseg_mv_new(ar, LDSEG_MV_OBJECT);
    if (v == NULL) {
        return NULL;
    }

    if (n == 0) {
        return v;
    }

    e = ldseg_arena_alloc(ar, n * sizeof(ldseg_mv_entry_t));
    order = ldseg_arena_alloc(ar, n * sizeof(ldseg_mv_entry_t *));

    if (e == NULL || order == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        e[i].key = m[i].key;
        e[i].key_len = m[i].key_len;
        e[i].key_esc = m[i].key_esc;
        e[i].val = m[i].val;

        if (ldseg_mv_entry_key(ar, &e[i]) != LDSEG_OK) {
            return NULL;
        }
    }

    if (ldseg_mv_order(ar, e, n, order, &k) != LDSEG_OK) {
        return NULL;
    }

    tail = (ldseg_mv_t **) &v->child;

    for (i = 0; i < k; i++) {
        c = ldseg_mv_copy(ar, order[i]->val);
        if (c == NULL) {
            return NULL;
        }

        c->key = order[i]->key;
        c->key_len = order[i]->key_len;
        c->key_esc = order[i]->key_esc;

        *tail = c;
        tail = &c->next;
    }

    return v;
}


ldseg_rc_t
ldseg_mv_members(ldseg_arena_t *ar, const ldseg_mv_t *v,
    ldseg_mv_member_t **members, size_t *n)
{
    size_t              i, k, count;
    const char         *p;
    ldseg_mv_t         *val;
    ldseg_json_val_t    key, tok;
    const ldseg_mv_t   *c;
    ldseg_mv_entry_t   *e, **order;
    ldseg_mv_member_t  *m;

    *members = NULL;
    *n = 0;

    count = 0;

    if (v->p == NULL) {
        for (c = v->child; c != NULL; c = c->next) {
            count++;
        }

        if (count == 0) {
            return LDSEG_OK;
        }

        m = ldseg_arena_alloc(ar, count * sizeof(ldseg_mv_member_t));
        if (m == NULL) {
            return LDSEG_ENOMEM;
        }

        for (c = v->child, i = 0; c != NULL; c = c->next, i++) {
            m[i].key = c->key;
            m[i].key_len = c->key_len;
            m[i].key_esc = c->key_esc;
            m[i].val = c;
        }

        *members = m;
        *n = count;

        return LDSEG_OK;
    }

    p = v->p;

    while (ldseg_mv_member_next(&p, &key, &tok)) {
        count++;
    }

    if (count == 0) {
        return LDSEG_OK;
    }

    e = ldseg_arena_alloc(ar, count * sizeof(ldseg_mv_entry_t));
    order = ldseg_arena_alloc(ar, count * sizeof(ldseg_mv_entry_t *));
    val = ldseg_arena_alloc(ar, count * sizeof(ldseg_mv_t));

    if (e == NULL || order == NULL || val == NULL) {
        return LDSEG_ENOMEM;
    }

    p = v->p;

    for (i = 0; ldseg_mv_member_next(&p, &key, &tok); i++) {
        e[i].key = key.p + 1;
        e[i].key_len = key.len - 2;
        e[i].key_esc = (memchr(e[i].key, '\\', e[i].key_len) != NULL);

        if (ldseg_mv_entry_key(ar, &e[i]) != LDSEG_OK) {
            return LDSEG_ENOMEM;
        }

        ldseg_mv_token(&val[i], &tok);
        e[i].val = &val[i];
    }

    if (ldseg_mv_order(ar, e, count, order, &k) != LDSEG_OK) {
        return LDSEG_ENOMEM;
    }

    m = ldseg_arena_alloc(ar, k * sizeof(ldseg_mv_member_t));
    if (m == NULL) {
        return LDSEG_ENOMEM;
    }

    for (i = 0; i < k; i++) {
        m[i].key = order[i]->key;
        m[i].key_len = order[i]->key_len;
        m[i].key_esc = order[i]->key_esc;
        m[i].val = order[i]->val;
    }

    *members = m;
    *n = k;

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_mv_elements(ldseg_arena_t *ar, const ldseg_mv_t *v,
    const ldseg_mv_t ***elts, size_t *n)
{
    size_t              i, count;
    const char         *p;
    ldseg_mv_t         *vals;
    ldseg_json_val_t    tok;
    const ldseg_mv_t   *c, **e;

    *elts = NULL;
    *n = 0;
    count = 0;

    if (v->p == NULL) {
        for (c = v->child; c != NULL; c = c->next) {
            count++;
        }

    } else {
        p = v->p;

        while (ldseg_mv_element_next(&p, &tok)) {
            count++;
        }
    }

    if (count == 0) {
        return LDSEG_OK;
    }

    e = ldseg_arena_alloc(ar, count * sizeof(ldseg_mv_t *));
    if (e == NULL) {
        return LDSEG_ENOMEM;
    }

    if (v->p == NULL) {
        for (c = v->child, i = 0; c != NULL; c = c->next, i++) {
            e[i] = c;
        }

    } else {
        vals = ldseg_arena_alloc(ar, count * sizeof(ldseg_mv_t));
        if (vals == NULL) {
            return LDSEG_ENOMEM;
        }

        p = v->p;

        for (i = 0; ldseg_mv_element_next(&p, &tok); i++) {
            ldseg_mv_token(&vals[i], &tok);
            e[i] = &vals[i];
        }
    }

    *elts = e;
    *n = count;

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_mv_decode(ldseg_arena_t *ar, const ldseg_mv_t *s, const char **p,
    size_t *len)
{
    char  *d;

    if (!s->esc || memchr(s->p, '\\', s->len) == NULL) {
        *p = s->p;
        *len = s->len;
        return LDSEG_OK;
    }

    d = ldseg_arena_alloc(ar, s->len);
    if (d == NULL) {
        return LDSEG_ENOMEM;
    }

    *p = d;
    *len = ldseg_json_unescape(s->p, s->len, d);

    return LDSEG_OK;
}


/* the elements of an array, String()-joined */

static void
ldseg_mv_join(ldseg_buf_t *b, const ldseg_mv_t *v)
{
    size_t              i, n;
    const ldseg_mv_t  **e;

    if (ldseg_mv_elements(b->ar, v, &e, &n) != LDSEG_OK) {
        b->failed = 1;
        return;
    }

    for (i = 0; i < n && !b->failed; i++) {
        if (i != 0) {
            ldseg_buf_add(b, ",", 1);
        }

        if (e[i]->type != LDSEG_MV_NULL && e[i]->type != LDSEG_MV_UNDEFINED) {
            ldseg_mv_to_string(b, e[i]);
        }
    }
}


void
ldseg_mv_to_string(ldseg_buf_t *b, const ldseg_mv_t *v)
{
    char    num[LDSEG_NUMBER_LEN];
    size_t  n;

    switch (v->type) {

    case LDSEG_MV_UNDEFINED:
        ldseg_buf_add(b, "undefined", 9);
        return;

    case LDSEG_MV_NULL:
        ldseg_buf_add(b, "null", 4);
        return;

    case LDSEG_MV_TRUE:
        ldseg_buf_add(b, "true", 4);
        return;

    case LDSEG_MV_FALSE:
        ldseg_buf_add(b, "false", 5);
        return;

    case LDSEG_MV_NUMBER:
        n = ldseg_number_format(v->num, num);
        ldseg_buf_add(b, num, n);
        return;

    case LDSEG_MV_STRING:
        ldseg_buf_add(b, v->p, v->len);
        return;

    case LDSEG_MV_OBJECT:
        if (ldseg_mv_string_throws(v)) {
            b->failed = 1;
            b->throws = 1;
            return;
        }

        ldseg_buf_add(b, "[object Object]", 15);
        return;

    case LDSEG_MV_ARRAY:
        ldseg_mv_join(b, v);
        return;
    }
}


/*
 * String() of an object throws in the reference when it has an own
 * "toString" (not a function), and depends on the value of a "__proto__"
 * key (the copy sets the prototype): both are refused, as the presets do.
 */

static int
ldseg_mv_string_throws(const ldseg_mv_t *v)
{
    char               buf[64];
    size_t             n, klen;
    const char        *p, *k;
    ldseg_json_val_t   key, val;
    const ldseg_mv_t  *c;

    if (v->p == NULL) {
        for (c = v->child; c != NULL; c = c->next) {
            if (ldseg_mv_key_proto(c)
                || (c->key_len == 8 && memcmp(c->key, "toString", 8) == 0))
            {
                return 1;
            }
        }

        return 0;
    }

    p = v->p;

    while (ldseg_mv_member_next(&p, &key, &val)) {
        k = key.p + 1;
        klen = key.len - 2;

        if (memchr(k, '\\', klen) != NULL) {
            if (klen > sizeof(buf)) {
                continue;
            }

            klen = ldseg_json_unescape(k, klen, buf);
            k = buf;
        }

        n = klen;

        if ((n == 8 && memcmp(k, "toString", 8) == 0)
            || (n == 9 && memcmp(k, "__proto__", 9) == 0))
        {
            return 1;
        }
    }

    return 0;
}


/* JSON.stringify(JSON.parse('"' + s + '"')) without the quotes */

static void
ldseg_mv_canon_string(ldseg_buf_t *b, const char *s, size_t len)
{
    char         out[8];
    unsigned     cp, lo;
    const char  *p, *end, *start;
    static const char  hex[] = "0123456789abcdef";

    p = s;
    end = s + len;
    start = p;

    while (p < end) {
        if (*p != '\\') {
            p++;
            continue;
        }

        ldseg_buf_add(b, start, (size_t) (p - start));

        switch (p[1]) {

        case '/':
            ldseg_buf_add(b, "/", 1);
            p += 2;
            break;

        case 'u':
            (void) ldseg_json_hex(p + 2, &cp);
            p += 6;

            if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\'
                && p[1] == 'u' && ldseg_json_hex(p + 2, &lo) == 0
                && lo >= 0xdc00 && lo <= 0xdfff)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
                ldseg_buf_add(b, out, ldseg_json_put_utf8(out, cp));
                break;
            }

            if (cp >= 0xd800 && cp <= 0xdfff) {
                out[0] = '\\';
                out[1] = 'u';
                out[2] = hex[cp >> 12];
                out[3] = hex[(cp >> 8) & 0xf];
                out[4] = hex[(cp >> 4) & 0xf];
                out[5] = hex[cp & 0xf];
                ldseg_buf_add(b, out, 6);
                break;
            }

            lo = (unsigned) ldseg_json_put_utf8(out, cp);
            ldseg_buf_escape(b, out, lo);
            break;

        default:
            /* \" \\ \b \f \n \r \t are already what stringify writes */
            ldseg_buf_add(b, p, 2);
            p += 2;
            break;
        }

        start = p;
    }

    ldseg_buf_add(b, start, (size_t) (p - start));
}


int
ldseg_mv_stringify(ldseg_buf_t *b, const ldseg_mv_t *v)
{
    char                num[LDSEG_NUMBER_LEN];
    size_t              i, n, written;
    const ldseg_mv_t  **e;
    ldseg_mv_member_t  *m;

    switch (v->type) {

    case LDSEG_MV_UNDEFINED:
        return 0;

    case LDSEG_MV_NULL:
        ldseg_buf_add(b, "null", 4);
        return 1;

    case LDSEG_MV_TRUE:
        ldseg_buf_add(b, "true", 4);
        return 1;

    case LDSEG_MV_FALSE:
        ldseg_buf_add(b, "false", 5);
        return 1;

    case LDSEG_MV_NUMBER:
        if (!isfinite(v->num)) {
            ldseg_buf_add(b, "null", 4);
            return 1;
        }

        n = ldseg_number_format(v->num, num);
        ldseg_buf_add(b, num, n);
        return 1;

    case LDSEG_MV_STRING:
        ldseg_buf_add(b, "\"", 1);
        ldseg_mv_canon_string(b, v->p, v->len);
        ldseg_buf_add(b, "\"", 1);
        return 1;

    case LDSEG_MV_ARRAY:
        if (ldseg_mv_elements(b->ar, v, &e, &n) != LDSEG_OK) {
            b->failed = 1;
            return 1;
        }

        ldseg_buf_add(b, "[", 1);

        for (i = 0; i < n && !b->failed; i++) {
            if (i != 0) {
                ldseg_buf_add(b, ",", 1);
            }

            if (ldseg_mv_stringify(b, e[i]) == 0) {
                ldseg_buf_add(b, "null", 4);
            }
        }

        ldseg_buf_add(b, "]", 1);
        return 1;

    default: /* LDSEG_MV_OBJECT */
        if (ldseg_mv_members(b->ar, v, &m, &n) != LDSEG_OK) {
            b->failed = 1;
            return 1;
        }

        ldseg_buf_add(b, "{", 1);
        written = 0;

        for (i = 0; i < n && !b->failed; i++) {
            if (m[i].val->type == LDSEG_MV_UNDEFINED) {
                continue;
            }

            if (written++ != 0) {
                ldseg_buf_add(b, ",", 1);
            }

            ldseg_buf_add(b, "\"", 1);
            ldseg_mv_canon_string(b, m[i].key, m[i].key_len);
            ldseg_buf_add(b, "\":", 2);
            (void) ldseg_mv_stringify(b, m[i].val);
        }

        ldseg_buf_add(b, "}", 1);
        return 1;
    }
}


const ldseg_mv_t *
ldseg_mv_parse(ldseg_arena_t *ar, const char *s, size_t len)
{
    char              *copy;
    const char        *p, *end;
    ldseg_mv_t        *v;
    ldseg_json_t       js;
    ldseg_json_val_t   tok;

    copy = ldseg_arena_alloc(ar, len + 1);
    if (copy == NULL) {
        return NULL;
    }

    memcpy(copy, s, len);
    copy[len] = '\0';
    end = copy + len;

    js.end = end;
    js.max_depth = LDSEG_MAX_DEPTH;
    js.code = NULL;
    js.ctx = NULL;

    p = ldseg_json_value(&js, copy, 0, &tok);

    if (p == NULL || ldseg_json_ws(p, end) != end) {
        return NULL;
    }

    v = ldseg_mv_new(ar, LDSEG_MV_UNDEFINED);
    if (v == NULL) {
        return NULL;
    }

    ldseg_mv_token(v, &tok);

    return v;
}


/*
 * The validated value at p as JSON.stringify() writes what JSON.parse()
 * made of it, once copied: a number out of a double's range is null, a
 * "__proto__" member is dropped, at any depth; the rest is copied as
 * sent, without white space between tokens.  *len grows by what is (or
 * would be, dst NULL) written; returns the byte after the value.
 */

static const char *
ldseg_mv_write_clean(const char *p, char *dst, size_t *len)
{
    int          first, obj;
    size_t       n;
    const char  *q, *v;

#define ldseg_mv_cput(s, l)                                                  \
    do {                                                                     \
        if (dst != NULL) {                                                   \
            memcpy(dst + *len, s, l);                                        \
        }                                                                    \
        *len += l;                                                           \
    } while (0)

    p = ldseg_mv_ws(p);

    switch (*p) {

    case '{':
    case '[':
        obj = (*p == '{');
        ldseg_mv_cput(p, 1);
        first = 1;

        for ( ;; ) {
            p = ldseg_mv_ws(p + 1);

            if (*p == '}' || *p == ']') {
                break;
            }

            v = p;
            q = NULL;

            if (obj) {
                /* a member: its key, then its value */
                q = ldseg_mv_skip(p);
                v = ldseg_mv_ws(ldseg_mv_ws(q) + 1);
            }

            if (obj
                && ldseg_json_key_proto(p, (size_t) (q - p),
                                        memchr(p, '\\', (size_t) (q - p))
                                        != NULL))
            {
                p = ldseg_mv_ws(ldseg_mv_skip(v));

            } else {
                if (!first) {
                    ldseg_mv_cput(",", 1);
                }

                first = 0;

                if (obj) {
                    ldseg_mv_cput(p, (size_t) (q - p));
                    ldseg_mv_cput(":", 1);
                }

                p = ldseg_mv_ws(ldseg_mv_write_clean(v, dst, len));
            }

            if (*p != ',') {
                break;
            }
        }

        ldseg_mv_cput(p, 1);
        return p + 1;

    case '"':
    case 't':
    case 'f':
    case 'n':
        q = ldseg_mv_skip(p);
        n = (size_t) (q - p);
        ldseg_mv_cput(p, n);
        return q;

    default:
        q = ldseg_mv_skip(p);
        n = (size_t) (q - p);

        if (isinf(ldseg_number_parse(p, n))) {
            ldseg_mv_cput("null", 4);

        } else {
            ldseg_mv_cput(p, n);
        }

        return q;
    }

#undef ldseg_mv_cput
}


/* a built member's key is __proto__ */

static int
ldseg_mv_key_proto(const ldseg_mv_t *c)
{
    char    buf[64];
    size_t  n;

    if (!c->key_esc || memchr(c->key, '\\', c->key_len) == NULL) {
        return c->key_len == 9 && memcmp(c->key, "__proto__", 9) == 0;
    }

    if (c->key_len > sizeof(buf)) {
        return 0;
    }

    n = ldseg_json_unescape(c->key, c->key_len, buf);

    return n == 9 && memcmp(buf, "__proto__", 9) == 0;
}


size_t
ldseg_mv_write(const ldseg_mv_t *v, char *dst, unsigned clean)
{
    char               num[LDSEG_NUMBER_LEN];
    size_t             n, len;
    const ldseg_mv_t  *c;

#define ldseg_mv_put(s, l)                                                   \
    do {                                                                     \
        if (dst != NULL) {                                                   \
            memcpy(dst + n, s, l);                                           \
        }                                                                    \
        n += l;                                                              \
    } while (0)

    n = 0;

    switch (v->type) {

    case LDSEG_MV_TRUE:
        ldseg_mv_put("true", 4);
        break;

    case LDSEG_MV_FALSE:
        ldseg_mv_put("false", 5);
        break;

    case LDSEG_MV_NUMBER:
        if (!isfinite(v->num)) {
            ldseg_mv_put("null", 4);

        } else if (v->p != NULL) {
            ldseg_mv_put(v->p, v->len);

        } else {
            len = ldseg_number_format(v->num, num);
            ldseg_mv_put(num, len);
        }

        break;

    case LDSEG_MV_STRING:
        ldseg_mv_put("\"", 1);
        ldseg_mv_put(v->p, v->len);
        ldseg_mv_put("\"", 1);
        break;

    case LDSEG_MV_ARRAY:
        if (v->p != NULL && clean) {
            (void) ldseg_mv_write_clean(v->p, dst, &n);
            break;
        }

        if (v->p != NULL) {
            ldseg_mv_put(v->p, v->len);
            break;
        }

        ldseg_mv_put("[", 1);

        for (c = v->child; c != NULL; c = c->next) {
            if (c != v->child) {
                ldseg_mv_put(",", 1);
            }

            if (c->type == LDSEG_MV_UNDEFINED) {
                ldseg_mv_put("null", 4);

            } else {
                n += ldseg_mv_write(c, dst == NULL ? NULL : dst + n, clean);
            }
        }

        ldseg_mv_put("]", 1);
        break;

    case LDSEG_MV_OBJECT:
        if (v->p != NULL && clean) {
            (void) ldseg_mv_write_clean(v->p, dst, &n);
            break;
        }

        if (v->p != NULL) {
            ldseg_mv_put(v->p, v->len);
            break;
        }

        ldseg_mv_put("{", 1);
        len = 0;

        for (c = v->child; c != NULL; c = c->next) {
            if (c->type == LDSEG_MV_UNDEFINED || ldseg_mv_key_proto(c)) {
                continue;
            }

            if (len++ != 0) {
                ldseg_mv_put(",", 1);
            }

            ldseg_mv_put("\"", 1);
            ldseg_mv_put(c->key, c->key_len);
            ldseg_mv_put("\":", 2);
            n += ldseg_mv_write(c, dst == NULL ? NULL : dst + n, clean);
        }

        ldseg_mv_put("}", 1);
        break;

    default:
        ldseg_mv_put("null", 4);
        break;
    }

#undef ldseg_mv_put

    return n;
}


int
ldseg_mv_blank(const ldseg_mv_t *v)
{
    int                blank;
    const char        *p;
    ldseg_json_val_t   tok, tok2;
    ldseg_mv_t         e;
    const ldseg_mv_t  *c;

    /* [] or one element whose String() is "" */

    if (v->p == NULL) {
        c = v->child;

        if (c == NULL) {
            return 1;
        }

        if (c->next != NULL) {
            return 0;
        }

    } else {
        p = v->p;

        if (!ldseg_mv_element_next(&p, &tok)) {
            return 1;
        }

        if (ldseg_mv_element_next(&p, &tok2)) {
            return 0;
        }

        ldseg_mv_token(&e, &tok);
        c = &e;
    }

    switch (c->type) {

    case LDSEG_MV_NULL:
    case LDSEG_MV_UNDEFINED:
        blank = 1;
        break;

    case LDSEG_MV_STRING:
        blank = (c->len == 0);
        break;

    case LDSEG_MV_ARRAY:
        blank = ldseg_mv_blank(c);
        break;

    default:
        blank = 0;
        break;
    }

    return blank;
}

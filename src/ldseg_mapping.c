
/*
 * Copyright (C) ldseg authors
 *
 * The mappings compiler.  It refuses, naming the subscription and the
 * field, everything that mapping-kit's validate() refuses and everything
 * that would make mapping-kit throw for every message (an @if with
 * neither "exists" nor "blank", an @case operator other than lower or
 * upper, a @replace pattern longer than 10 characters, ...), and the
 * directives ldseg does not implement (@liquid, @transform).  Paths read
 * from the message are merged into one tree whose key tables the request
 * scan fills, so that a mapping reads values without scanning again.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include <ldseg_mapping.h>
#include <ldseg_mapping_run.h>
#include <ldseg_segment.h>


#define LDSEG_MC_WHERE_MAX  256


typedef struct ldseg_trie_s  ldseg_trie_t;

struct ldseg_trie_s {
    const char                   *key;
    size_t                        len;
    unsigned                      slot;
    ldseg_trie_t                 *child;
    ldseg_trie_t                 *next;
    size_t                        nchildren;
};


/* the compiler's state */
typedef struct {
    ldseg_mappings_t             *maps;
    ldseg_arena_t                *ar;
    ldseg_trie_t                 *root;
    char                         *err;
    size_t                        err_len;
    const char                   *sub;       /* "subscription \"x\"" */
    char                          where[LDSEG_MC_WHERE_MAX];
    size_t                        wlen;
    unsigned                      item;      /* inside @arrayPath items */
    unsigned                      whole;     /* reads the whole message */
    size_t                        npaths;
    size_t                        cpaths;
} ldseg_mc_t;


/* a field of an action */
typedef struct {
    const char                   *name;
    ldseg_field_e                 field;
    unsigned                      required;
} ldseg_mc_field_t;


/* a member of a JSON object of the file, in JSON.parse() order */
typedef struct {
    const char                   *key;
    size_t                        len;
    const cJSON                  *val;
    unsigned                      is_index;
    unsigned long                 index;
} ldseg_mc_member_t;


static ldseg_rc_t ldseg_mc_fail(ldseg_mc_t *mc, const char *fmt,
    const char *arg);
static size_t ldseg_mc_push(ldseg_mc_t *mc, const char *s);
static void ldseg_mc_pop(ldseg_mc_t *mc, size_t len);
static const cJSON *ldseg_mc_get(const cJSON *obj, const char *key);
static int ldseg_mc_truthy(const cJSON *j);
static size_t ldseg_mc_utf16_len(const char *s);
static ldseg_rc_t ldseg_mc_members(ldseg_mc_t *mc, const cJSON *obj,
    ldseg_mc_member_t **members, size_t *n);
static ldseg_mv_t *ldseg_mc_literal(ldseg_mc_t *mc, const cJSON *j);
static ldseg_expr_t *ldseg_mc_expr_new(ldseg_mc_t *mc, ldseg_expr_e kind,
    size_t nargs);
static ldseg_expr_t *ldseg_mc_undefined(ldseg_mc_t *mc);
static ldseg_expr_t *ldseg_mc_expr(ldseg_mc_t *mc, const cJSON *j);
static ldseg_expr_t *ldseg_mc_arg(ldseg_mc_t *mc, const char *name,
    const cJSON *j);
static ldseg_expr_t *ldseg_mc_directive(ldseg_mc_t *mc, const char *name,
    const cJSON *v);
static int ldseg_mc_check_object(ldseg_mc_t *mc, const char *name,
    const cJSON *v);
static int ldseg_mc_string_or_directive(ldseg_mc_t *mc, const char *name,
    const char *field, const cJSON *v);
static int ldseg_mc_same_path(const ldseg_expr_t *a, const ldseg_expr_t *b);
static ldseg_expr_t *ldseg_mc_if(ldseg_mc_t *mc, const cJSON *v);
static ldseg_expr_t *ldseg_mc_case(ldseg_mc_t *mc, const cJSON *v);
static ldseg_expr_t *ldseg_mc_replace(ldseg_mc_t *mc, const cJSON *v);
static ldseg_expr_t *ldseg_mc_array_path(ldseg_mc_t *mc, const cJSON *v);
static ldseg_expr_t *ldseg_mc_template(ldseg_mc_t *mc, const char *s);
static ldseg_expr_t *ldseg_mc_json(ldseg_mc_t *mc, const cJSON *v);
static ldseg_expr_t *ldseg_mc_flatten(ldseg_mc_t *mc, const cJSON *v);
static ldseg_expr_t *ldseg_mc_merge(ldseg_mc_t *mc, const cJSON *v);
static ldseg_path_t *ldseg_mc_path(ldseg_mc_t *mc, const char *s,
    size_t len, unsigned strip);
static ldseg_rc_t ldseg_mc_slots(ldseg_mc_t *mc, ldseg_path_t *path);
static ldseg_rc_t ldseg_mc_context(ldseg_mc_t *mc);
static size_t ldseg_mc_depth(const char *p, size_t len);
static size_t ldseg_mc_subtree(const ldseg_trie_t *t, unsigned *slots);
static ldseg_trie_t *ldseg_mc_trie_child(ldseg_mc_t *mc, ldseg_trie_t *t,
    const char *key, size_t len, unsigned slot);
static ldseg_rc_t ldseg_mc_model(ldseg_mc_t *mc);
static ldseg_rc_t ldseg_mc_model_table(ldseg_mc_t *mc, ldseg_trie_t *t,
    const ldseg_json_key_t *keys, size_t n);
static ldseg_json_key_t *ldseg_mc_table(ldseg_mc_t *mc,
    const ldseg_trie_t *t);
static ldseg_rc_t ldseg_mc_fql_paths(ldseg_mc_t *mc, ldseg_fql_t *f);
static ldseg_rc_t ldseg_mc_subscription(ldseg_mc_t *mc, const cJSON *s,
    ldseg_subscription_t *sub, size_t index);


static const ldseg_mc_field_t  ldseg_mc_track_fields[] = {
    { "context_kind", LDSEG_FIELD_CONTEXT_KIND, 0 },
    { "user_key", LDSEG_FIELD_USER_KEY, 1 },
    { "additional_context_keys", LDSEG_FIELD_ADDITIONAL_KEYS, 0 },
    { "event_name", LDSEG_FIELD_EVENT_NAME, 1 },
    { "metric_value", LDSEG_FIELD_METRIC_VALUE, 0 },
    { "event_properties", LDSEG_FIELD_EVENT_PROPERTIES, 0 },
    { "timestamp", LDSEG_FIELD_TIMESTAMP, 0 }
}, ldseg_mc_alias_fields[] = {
    { "user_key", LDSEG_FIELD_USER_KEY, 1 },
    { "previous_key", LDSEG_FIELD_PREVIOUS_KEY, 1 },
    { "timestamp", LDSEG_FIELD_TIMESTAMP, 0 }
};


static ldseg_rc_t
ldseg_mc_fail(ldseg_mc_t *mc, const char *fmt, const char *arg)
{
    char  msg[512];

    if (mc->err[0] != '\0') {
        return LDSEG_EINVAL;
    }

    snprintf(msg, sizeof(msg), fmt, arg);

    if (mc->wlen != 0) {
        snprintf(mc->err, mc->err_len, "%s: \"%s\": %s", mc->sub, mc->where,
                 msg);

    } else {
        snprintf(mc->err, mc->err_len, "%s: %s", mc->sub, msg);
    }

    return LDSEG_EINVAL;
}


static size_t
ldseg_mc_push(ldseg_mc_t *mc, const char *s)
{
    size_t  old, n;

    old = mc->wlen;
    n = strlen(s);

    if (mc->wlen + n + 1 < sizeof(mc->where)) {
        memcpy(mc->where + mc->wlen, s, n + 1);
        mc->wlen += n;
    }

    return old;
}


static void
ldseg_mc_pop(ldseg_mc_t *mc, size_t len)
{
    mc->wlen = len;
    mc->where[len] = '\0';
}


/* obj[key] as JSON.parse() makes it: the last of duplicate keys */

static const cJSON *
ldseg_mc_get(const cJSON *obj, const char *key)
{
    const cJSON  *c, *found;

    found = NULL;

    for (c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, key) == 0) {
            found = c;
        }
    }

    return found;
}


/* JavaScript truthiness of a value of the file; NULL is undefined */

static int
ldseg_mc_truthy(const cJSON *j)
{
    if (j == NULL || cJSON_IsNull(j) || cJSON_IsFalse(j)) {
        return 0;
    }

    if (cJSON_IsNumber(j)) {
        return j->valuedouble != 0;
    }

    if (cJSON_IsString(j)) {
        return j->valuestring[0] != '\0';
    }

    return 1;
}


static size_t
ldseg_mc_utf16_len(const char *s)
{
    size_t         n;
    unsigned char  c;

    n = 0;

    for ( ; *s != '\0'; s++) {
        c = (unsigned char) *s;

        if ((c & 0xc0) == 0x80) {
            continue;
        }

        n += (c >= 0xf0) ? 2 : 1;
    }

    return n;
}


/* the members of an object of the file, duplicates resolved, in order */

static ldseg_rc_t
ldseg_mc_members(ldseg_mc_t *mc, const cJSON *obj, ldseg_mc_member_t **out,
    size_t *n)
{
    size_t              i, j, k, count;
    const char         *s;
    const cJSON        *c;
    ldseg_mc_member_t  *m, *o, t;

    count = 0;

    for (c = obj->child; c != NULL; c = c->next) {
        count++;
    }

    *out = NULL;
    *n = 0;

    if (count == 0) {
        return LDSEG_OK;
    }

    m = ldseg_arena_alloc(mc->ar, count * sizeof(ldseg_mc_member_t));
    o = ldseg_arena_alloc(mc->ar, count * sizeof(ldseg_mc_member_t));

    if (m == NULL || o == NULL) {
        return LDSEG_ENOMEM;
    }

    k = 0;

    for (c = obj->child; c != NULL; c = c->next) {
        for (j = 0; j < k; j++) {
            if (strcmp(m[j].key, c->string) == 0) {
                m[j].val = c;
                break;
            }
        }

        if (j < k) {
            continue;
        }

        m[k].key = c->string;
        m[k].len = strlen(c->string);
        m[k].val = c;
        m[k].is_index = 0;

        s = c->string;

        if (m[k].len > 0 && m[k].len <= 10 && (s[0] != '0' || m[k].len == 1)
            && strspn(s, "0123456789") == m[k].len)
        {
            m[k].index = strtoul(s, NULL, 10);
            m[k].is_index = (m[k].index < 0xfffffffful);
        }

        k++;
    }

    /* array index keys first, ascending (insertion sort: a config) */

    j = 0;

    for (i = 0; i < k; i++) {
        if (m[i].is_index) {
            o[j++] = m[i];
        }
    }

    for (i = 1; i < j; i++) {
        t = o[i];

        for (count = i; count > 0 && o[count - 1].index > t.index; count--)
        {
            o[count] = o[count - 1];
        }

        o[count] = t;
    }

    for (i = 0; i < k; i++) {
        if (!m[i].is_index) {
            o[j++] = m[i];
        }
    }

    *out = o;
    *n = k;

    return LDSEG_OK;
}


/* a value of the file as a built value */

static ldseg_mv_t *
ldseg_mc_literal(ldseg_mc_t *mc, const cJSON *j)
{
    size_t              i, n;
    ldseg_mv_t         *v, *c, **tail;
    ldseg_buf_t         b;
    const cJSON        *e;
    ldseg_mc_member_t  *m;

    if (cJSON_IsNull(j)) {
        return ldseg_mv_copy(mc->ar, &ldseg_mv_null);
    }

    if (cJSON_IsTrue(j)) {
        return ldseg_mv_copy(mc->ar, &ldseg_mv_true);
    }

    if (cJSON_IsFalse(j)) {
        return ldseg_mv_copy(mc->ar, &ldseg_mv_false);
    }

    if (cJSON_IsNumber(j)) {
        return ldseg_mv_number(mc->ar, j->valuedouble);
    }

    if (cJSON_IsString(j)) {
        ldseg_buf_init(&b, mc->ar);
        ldseg_buf_escape(&b, j->valuestring, strlen(j->valuestring));

        if (b.failed) {
            return NULL;
        }

        return ldseg_mv_string(mc->ar, b.p, b.len,
                               b.len != 0 && memchr(b.p, '\\', b.len));
    }

    if (cJSON_IsArray(j)) {
        v = ldseg_mv_new(mc->ar, LDSEG_MV_ARRAY);
        if (v == NULL) {
            return NULL;
        }

        tail = (ldseg_mv_t **) &v->child;

        for (e = j->child; e != NULL; e = e->next) {
            c = ldseg_mc_literal(mc, e);
            if (c == NULL) {
                return NULL;
            }

            *tail = c;
            tail = &c->next;
        }

        return v;
    }

    /* an object */

    if (ldseg_mc_members(mc, j, &m, &n) != LDSEG_OK) {
        return NULL;
    }

    v = ldseg_mv_new(mc->ar, LDSEG_MV_OBJECT);
    if (v == NULL) {
        return NULL;
    }

    tail = (ldseg_mv_t **) &v->child;

    for (i = 0; i < n; i++) {
        c = ldseg_mc_literal(mc, m[i].val);
        if (c == NULL) {
            return NULL;
        }

        ldseg_buf_init(&b, mc->ar);
        ldseg_buf_escape(&b, m[i].key, m[i].len);

        if (b.failed) {
            return NULL;
        }

        c->key = (b.p == NULL) ? "" : b.p;
        c->key_len = b.len;
        c->key_esc = (b.len != 0 && memchr(b.p, '\\', b.len) != NULL);

        *tail = c;
        tail = &c->next;
    }

    return v;
}


static ldseg_expr_t *
ldseg_mc_expr_new(ldseg_mc_t *mc, ldseg_expr_e kind, size_t nargs)
{
    ldseg_expr_t  *e;

    e = ldseg_arena_alloc(mc->ar, sizeof(ldseg_expr_t)
                                  + nargs * sizeof(ldseg_expr_t *));
    if (e == NULL) {
        return NULL;
    }

    memset(e, 0, sizeof(ldseg_expr_t) + nargs * sizeof(ldseg_expr_t *));
    e->kind = kind;
    e->nargs = nargs;
    e->args = (ldseg_expr_t **) (e + 1);

    if (mc->item) {
        e->flags |= LDSEG_EX_ITEM;

    } else if (kind == LDSEG_EX_PATH_DYNAMIC
               || kind == LDSEG_EX_TEMPLATE_DYNAMIC)
    {
        /* a path known per message may go anywhere in it */
        mc->whole = 1;
    }

    return e;
}


/* a directive that always gives undefined */

static ldseg_expr_t *
ldseg_mc_undefined(ldseg_mc_t *mc)
{
    ldseg_expr_t  *e;

    e = ldseg_mc_expr_new(mc, LDSEG_EX_LITERAL, 0);
    if (e == NULL) {
        return NULL;
    }

    e->lit = &ldseg_mv_undefined;

    return e;
}


static ldseg_expr_t *
ldseg_mc_arg(ldseg_mc_t *mc, const char *name, const cJSON *j)
{
    size_t         w;
    ldseg_expr_t  *e;

    w = ldseg_mc_push(mc, ".");
    (void) ldseg_mc_push(mc, name);

    e = ldseg_mc_expr(mc, j);

    ldseg_mc_pop(mc, w);

    return e;
}


static ldseg_expr_t *
ldseg_mc_expr(ldseg_mc_t *mc, const cJSON *j)
{
    char                idx[32];
    size_t              i, n, nat, nother, w;
    unsigned            literal;
    const char         *name;
    const cJSON        *c;
    ldseg_buf_t         b;
    ldseg_expr_t       *e;
    ldseg_mc_member_t  *m;

    if (cJSON_IsArray(j)) {
        n = (size_t) cJSON_GetArraySize(j);

        e = ldseg_mc_expr_new(mc, LDSEG_EX_ARRAY, n);
        if (e == NULL) {
            return NULL;
        }

        literal = 1;

        for (c = j->child, i = 0; c != NULL; c = c->next, i++) {
            snprintf(idx, sizeof(idx), "[%zu]", i);
            w = ldseg_mc_push(mc, idx);
            e->args[i] = ldseg_mc_expr(mc, c);
            ldseg_mc_pop(mc, w);

            if (e->args[i] == NULL) {
                return NULL;
            }

            literal &= (e->args[i]->kind == LDSEG_EX_LITERAL
                        && e->args[i]->lit->type != LDSEG_MV_UNDEFINED);
        }

        if (literal) {
            e->kind = LDSEG_EX_LITERAL;
            e->lit = ldseg_mc_literal(mc, j);

            if (e->lit == NULL) {
                return NULL;
            }
        }

        return e;
    }

    if (!cJSON_IsObject(j)) {
        e = ldseg_mc_expr_new(mc, LDSEG_EX_LITERAL, 0);
        if (e == NULL) {
            return NULL;
        }

        e->lit = ldseg_mc_literal(mc, j);

        return (e->lit != NULL) ? e : NULL;
    }

    nat = 0;
    nother = 0;
    name = NULL;

    for (c = j->child; c != NULL; c = c->next) {
        if (c->string[0] == '@') {
            if (name == NULL || strcmp(name, c->string) != 0) {
                nat++;
            }

            if (name == NULL) {
                name = c->string;
            }

        } else if (strcmp(c->string, "_metadata") != 0) {
            nother++;
        }
    }

    if (nat > 1) {
        (void) ldseg_mc_fail(mc, "an object has more than one directive "
                             "(\"@\" key)%s", "");
        return NULL;
    }

    if (nat == 1 && nother != 0) {
        (void) ldseg_mc_fail(mc, "the directive \"%s\" has keys other than "
                             "itself next to it", name);
        return NULL;
    }

    if (nat == 1) {
        w = ldseg_mc_push(mc, ".");
        (void) ldseg_mc_push(mc, name);

        e = ldseg_mc_directive(mc, name, ldseg_mc_get(j, name));

        ldseg_mc_pop(mc, w);

        return e;
    }

    /* a plain object: its values are resolved */

    if (ldseg_mc_members(mc, j, &m, &n) != LDSEG_OK) {
        return NULL;
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_OBJECT, n);
    if (e == NULL) {
        return NULL;
    }

    e->keys = ldseg_arena_alloc(mc->ar, (n + 1) * sizeof(ldseg_mv_member_t));
    if (e->keys == NULL) {
        return NULL;
    }

    literal = 1;

    for (i = 0; i < n; i++) {
        e->args[i] = ldseg_mc_arg(mc, m[i].key, m[i].val);
        if (e->args[i] == NULL) {
            return NULL;
        }

        ldseg_buf_init(&b, mc->ar);
        ldseg_buf_escape(&b, m[i].key, m[i].len);

        if (b.failed) {
            return NULL;
        }

        e->keys[i].key = (b.p == NULL) ? "" : b.p;
        e->keys[i].key_len = b.len;
        e->keys[i].key_esc = (b.len != 0 && memchr(b.p, '\\', b.len));

        literal &= (e->args[i]->kind == LDSEG_EX_LITERAL
                    && e->args[i]->lit->type != LDSEG_MV_UNDEFINED);
    }

    if (literal) {
        e->kind = LDSEG_EX_LITERAL;
        e->lit = ldseg_mc_literal(mc, j);

        if (e->lit == NULL) {
            return NULL;
        }
    }

    return e;
}


/* validateObject(): an object without "@" keys */

static int
ldseg_mc_check_object(ldseg_mc_t *mc, const char *name, const cJSON *v)
{
    const cJSON  *c;

    if (v == NULL || !cJSON_IsObject(v)) {
        (void) ldseg_mc_fail(mc, "%s needs an object", name);
        return -1;
    }

    for (c = v->child; c != NULL; c = c->next) {
        if (c->string[0] == '@') {
            (void) ldseg_mc_fail(mc, "%s's object has a directive key", name);
            return -1;
        }
    }

    return 0;
}


/* validateDirectiveOrString() */

static int
ldseg_mc_string_or_directive(ldseg_mc_t *mc, const char *name,
    const char *field, const cJSON *v)
{
    char          msg[128];
    const cJSON  *c;

    if (v != NULL) {
        if (cJSON_IsString(v)) {
            return 0;
        }

        if (cJSON_IsObject(v)) {
            for (c = v->child; c != NULL; c = c->next) {
                if (c->string[0] == '@') {
                    return 0;
                }
            }
        }
    }

    snprintf(msg, sizeof(msg), "%s needs a string or a directive as %s",
             name, field);
    (void) ldseg_mc_fail(mc, "%s", msg);

    return -1;
}


static ldseg_expr_t *
ldseg_mc_directive(ldseg_mc_t *mc, const char *name, const cJSON *v)
{
    ldseg_expr_t  *e;

    if (strcmp(name, "@path") == 0) {
        if (ldseg_mc_string_or_directive(mc, name, "its value", v) != 0) {
            return NULL;
        }

        if (cJSON_IsString(v)) {
            e = ldseg_mc_expr_new(mc, LDSEG_EX_PATH, 0);
            if (e == NULL) {
                return NULL;
            }

            e->path = ldseg_mc_path(mc, v->valuestring,
                                    strlen(v->valuestring), 1);

            if (e->path == NULL) {
                return NULL;
            }

            if (e->path->direct) {
                e->fast = LDSEG_FAST_SLOT;
                e->slot = e->path->slots[0];
            }

            return e;
        }

        e = ldseg_mc_expr_new(mc, LDSEG_EX_PATH_DYNAMIC, 1);
        if (e == NULL) {
            return NULL;
        }

        e->args[0] = ldseg_mc_expr(mc, v);

        return (e->args[0] != NULL) ? e : NULL;
    }

    if (strcmp(name, "@template") == 0) {
        if (ldseg_mc_string_or_directive(mc, name, "its value", v) != 0) {
            return NULL;
        }

        if (cJSON_IsString(v)) {
            return ldseg_mc_template(mc, v->valuestring);
        }

        e = ldseg_mc_expr_new(mc, LDSEG_EX_TEMPLATE_DYNAMIC, 1);
        if (e == NULL) {
            return NULL;
        }

        e->args[0] = ldseg_mc_expr(mc, v);

        return (e->args[0] != NULL) ? e : NULL;
    }

    if (strcmp(name, "@literal") == 0) {
        return ldseg_mc_expr(mc, v);
    }

    if (strcmp(name, "@if") == 0) {
        return ldseg_mc_if(mc, v);
    }

    if (strcmp(name, "@case") == 0) {
        return ldseg_mc_case(mc, v);
    }

    if (strcmp(name, "@replace") == 0) {
        return ldseg_mc_replace(mc, v);
    }

    if (strcmp(name, "@arrayPath") == 0) {
        return ldseg_mc_array_path(mc, v);
    }

    if (strcmp(name, "@json") == 0) {
        return ldseg_mc_json(mc, v);
    }

    if (strcmp(name, "@flatten") == 0) {
        return ldseg_mc_flatten(mc, v);
    }

    if (strcmp(name, "@merge") == 0) {
        return ldseg_mc_merge(mc, v);
    }

    if (strcmp(name, "@excludeWhenNull") == 0) {
        e = ldseg_mc_expr_new(mc, LDSEG_EX_EXCLUDE_WHEN_NULL, 1);
        if (e == NULL) {
            return NULL;
        }

        e->args[0] = ldseg_mc_expr(mc, v);

        return (e->args[0] != NULL) ? e : NULL;
    }

    if (strcmp(name, "@liquid") == 0 || strcmp(name, "@transform") == 0) {
        (void) ldseg_mc_fail(mc, "the directive \"%s\" is not supported",
                             name);
        return NULL;
    }

    (void) ldseg_mc_fail(mc, "unknown directive \"%s\"", name);

    return NULL;
}


/* two expressions read one static path */

static int
ldseg_mc_same_path(const ldseg_expr_t *a, const ldseg_expr_t *b)
{
    size_t  i;

    if (a->kind != LDSEG_EX_PATH || b->kind != LDSEG_EX_PATH
        || (a->flags & LDSEG_EX_ITEM) != (b->flags & LDSEG_EX_ITEM)
        || a->path->nsegs != b->path->nsegs)
    {
        return 0;
    }

    for (i = 0; i < a->path->nsegs; i++) {
        if (a->path->lens[i] != b->path->lens[i]
            || memcmp(a->path->segs[i], b->path->segs[i], a->path->lens[i])
               != 0)
        {
            return 0;
        }
    }

    return 1;
}


static ldseg_expr_t *
ldseg_mc_if(ldseg_mc_t *mc, const cJSON *v)
{
    const cJSON   *exists, *blank, *then, *els;
    ldseg_expr_t  *e;

    if (ldseg_mc_check_object(mc, "@if", v) != 0) {
        return NULL;
    }

    exists = ldseg_mc_get(v, "exists");
    blank = ldseg_mc_get(v, "blank");
    then = ldseg_mc_get(v, "then");
    els = ldseg_mc_get(v, "else");

    if (!ldseg_mc_truthy(exists) && !ldseg_mc_truthy(blank)) {
        (void) ldseg_mc_fail(mc, "@if needs an \"exists\" or a \"blank\"%s",
                             "");
        return NULL;
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_IF, 3);
    if (e == NULL) {
        return NULL;
    }

    if (exists == NULL) {
        e->flags |= LDSEG_EX_IF_BLANK;
        e->args[0] = ldseg_mc_arg(mc, "blank", blank);

    } else {
        e->args[0] = ldseg_mc_arg(mc, "exists", exists);
    }

    if (e->args[0] == NULL) {
        return NULL;
    }

    if (then != NULL) {
        e->args[1] = ldseg_mc_arg(mc, "then", then);
        if (e->args[1] == NULL) {
            return NULL;
        }

        if (exists != NULL && ldseg_mc_same_path(e->args[0], e->args[1])) {
            e->flags |= LDSEG_EX_IF_SAME;

            if (!(e->flags & LDSEG_EX_ITEM)) {
                e->flags |= LDSEG_EX_IF_COALESCE;
            }

            if (e->args[0]->fast == LDSEG_FAST_SLOT) {
                e->fast = LDSEG_FAST_COALESCE;
                e->slot = e->args[0]->slot;
                e->slot2 = LDSEG_MAPPING_NO_SLOT;
            }
        }
    }

    if (ldseg_mc_truthy(els)) {
        e->args[2] = ldseg_mc_arg(mc, "else", els);
        if (e->args[2] == NULL) {
            return NULL;
        }

        if (e->fast == LDSEG_FAST_COALESCE
            && e->args[2]->fast == LDSEG_FAST_SLOT)
        {
            e->slot2 = e->args[2]->slot;
        }
    }

    return e;
}


static ldseg_expr_t *
ldseg_mc_case(ldseg_mc_t *mc, const cJSON *v)
{
    const cJSON   *op, *value;
    ldseg_expr_t  *e;

    if (ldseg_mc_check_object(mc, "@case", v) != 0) {
        return NULL;
    }

    op = ldseg_mc_get(v, "operator");
    value = ldseg_mc_get(v, "value");

    if (op == NULL || !cJSON_IsString(op)
        || (strcmp(op->valuestring, "lower") != 0
            && strcmp(op->valuestring, "upper") != 0))
    {
        (void) ldseg_mc_fail(mc, "@case needs an \"operator\": \"lower\" or "
                             "\"upper\"%s", "");
        return NULL;
    }

    if (value != NULL
        && ldseg_mc_string_or_directive(mc, "@case", "\"value\"", value)
           != 0)
    {
        return NULL;
    }

    if (!ldseg_mc_truthy(value)) {
        return ldseg_mc_undefined(mc);
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_CASE, 1);
    if (e == NULL) {
        return NULL;
    }

    if (op->valuestring[0] == 'u') {
        e->flags |= LDSEG_EX_CASE_UPPER;
    }

    e->args[0] = ldseg_mc_arg(mc, "value", value);

    return (e->args[0] != NULL) ? e : NULL;
}


static ldseg_expr_t *
ldseg_mc_replace(ldseg_mc_t *mc, const cJSON *v)
{
    size_t         n;
    const cJSON   *pattern, *repl, *value, *icase, *global, *p2, *r2;
    ldseg_expr_t  *e;

    if (ldseg_mc_check_object(mc, "@replace", v) != 0) {
        return NULL;
    }

    pattern = ldseg_mc_get(v, "pattern");
    repl = ldseg_mc_get(v, "replacement");
    value = ldseg_mc_get(v, "value");
    icase = ldseg_mc_get(v, "ignorecase");
    global = ldseg_mc_get(v, "global");
    p2 = ldseg_mc_get(v, "pattern2");
    r2 = ldseg_mc_get(v, "replacement2");

    if (pattern == NULL || !cJSON_IsString(pattern)
        || (n = ldseg_mc_utf16_len(pattern->valuestring)) < 1 || n > 10)
    {
        (void) ldseg_mc_fail(mc, "@replace needs a \"pattern\" string of 1 "
                             "to 10 characters%s", "");
        return NULL;
    }

    if (repl != NULL
        && (!cJSON_IsString(repl) || ldseg_mc_utf16_len(repl->valuestring)
                                     > 10))
    {
        (void) ldseg_mc_fail(mc, "@replace needs a \"replacement\" string of "
                             "at most 10 characters%s", "");
        return NULL;
    }

    if ((icase != NULL && !cJSON_IsBool(icase))
        || (global != NULL && !cJSON_IsBool(global)))
    {
        (void) ldseg_mc_fail(mc, "@replace's \"ignorecase\" and \"global\" "
                             "are true or false%s", "");
        return NULL;
    }

    if (ldseg_mc_string_or_directive(mc, "@replace", "\"value\"", value)
        != 0)
    {
        return NULL;
    }

    if (!ldseg_mc_truthy(value)) {
        return ldseg_mc_undefined(mc);
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_REPLACE, 1);
    if (e == NULL) {
        return NULL;
    }

    e->str[0] = pattern->valuestring;
    e->len[0] = strlen(pattern->valuestring);
    e->str[1] = (repl != NULL) ? repl->valuestring : "";
    e->len[1] = strlen(e->str[1]);

    if (global == NULL || cJSON_IsTrue(global)) {
        e->flags |= LDSEG_EX_REPLACE_GLOBAL;
    }

    if (icase != NULL && cJSON_IsTrue(icase)) {
        e->flags |= LDSEG_EX_REPLACE_ICASE;
    }

    if (ldseg_mc_truthy(p2) && cJSON_IsString(p2)
        && (r2 == NULL || cJSON_IsNull(r2) || cJSON_IsString(r2)))
    {
        if (ldseg_mc_utf16_len(p2->valuestring) > 10
            || (r2 != NULL && cJSON_IsString(r2)
                && ldseg_mc_utf16_len(r2->valuestring) > 10))
        {
            (void) ldseg_mc_fail(mc, "@replace's \"pattern2\" and "
                                 "\"replacement2\" have at most 10 "
                                 "characters%s", "");
            return NULL;
        }

        e->flags |= LDSEG_EX_REPLACE_SECOND;
        e->str[2] = p2->valuestring;
        e->len[2] = strlen(p2->valuestring);
        e->str[3] = (r2 != NULL && cJSON_IsString(r2)) ? r2->valuestring : "";
        e->len[3] = strlen(e->str[3]);
    }

    /* the strings live in the cJSON tree: copy them */

    for (n = 0; n < 4; n++) {
        char  *s;

        if (e->str[n] == NULL) {
            continue;
        }

        s = ldseg_arena_alloc(mc->ar, e->len[n] + 1);
        if (s == NULL) {
            return NULL;
        }

        memcpy(s, e->str[n], e->len[n] + 1);
        e->str[n] = s;
    }

    e->args[0] = ldseg_mc_arg(mc, "value", value);

    return (e->args[0] != NULL) ? e : NULL;
}


static ldseg_expr_t *
ldseg_mc_array_path(ldseg_mc_t *mc, const cJSON *v)
{
    size_t         w;
    const cJSON   *path, *shape;
    ldseg_expr_t  *e;

    if (v == NULL || !cJSON_IsArray(v)) {
        (void) ldseg_mc_fail(mc, "@arrayPath needs an array [path, shape]%s",
                             "");
        return NULL;
    }

    path = cJSON_GetArrayItem(v, 0);
    shape = cJSON_GetArrayItem(v, 1);

    if (ldseg_mc_string_or_directive(mc, "@arrayPath", "its path", path)
        != 0)
    {
        return NULL;
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_ARRAY_PATH, 2);
    if (e == NULL) {
        return NULL;
    }

    w = ldseg_mc_push(mc, "[0]");

    if (cJSON_IsString(path)) {
        e->path = ldseg_mc_path(mc, path->valuestring,
                                strlen(path->valuestring), 1);

        if (e->path == NULL) {
            return NULL;
        }

    } else {
        e->args[0] = ldseg_mc_expr(mc, path);

        if (e->args[0] == NULL) {
            return NULL;
        }
    }

    ldseg_mc_pop(mc, w);

    if (shape != NULL && cJSON_IsObject(shape) && shape->child != NULL) {
        w = ldseg_mc_push(mc, "[1]");
        mc->item++;

        e->args[1] = ldseg_mc_expr(mc, shape);

        mc->item--;
        ldseg_mc_pop(mc, w);

        if (e->args[1] == NULL) {
            return NULL;
        }

    }

    return e;
}


/*
 * A template without "{{{x}}}" is compiled into its parts; one with them
 * is rendered twice at run time, as mapping-kit does (the first pass's
 * output is read again by the second).
 */

static ldseg_expr_t *
ldseg_mc_template(ldseg_mc_t *mc, const char *s)
{
    size_t                  n, i, j, k, start, nparts, plen;
    const char             *p;
    ldseg_buf_t             b;
    ldseg_expr_t           *e;
    ldseg_template_part_t  *parts;

    n = strlen(s);

    for (i = 0; i + 3 <= n; i++) {
        if (memcmp(s + i, "{{{", 3) != 0) {
            continue;
        }

        for (k = i + 3; k < n && s[k] != '}'; k++) {
            /* void */
        }

        if (k > i + 3 && k + 3 <= n && memcmp(s + k, "}}}", 3) == 0) {
            e = ldseg_mc_expr_new(mc, LDSEG_EX_TEMPLATE_DYNAMIC, 1);
            if (e == NULL) {
                return NULL;
            }

            e->str[0] = ldseg_arena_alloc(mc->ar, n + 1);
            if (e->str[0] == NULL) {
                return NULL;
            }

            memcpy((char *) e->str[0], s, n + 1);
            e->len[0] = n;

            return e;
        }
    }

    /* at most one literal and one path per "{{" */

    nparts = 1;

    for (i = 0; i + 2 <= n; i++) {
        nparts += (s[i] == '{' && s[i + 1] == '{') ? 2 : 0;
    }

    parts = ldseg_arena_alloc(mc->ar, nparts * sizeof(ldseg_template_part_t));
    if (parts == NULL) {
        return NULL;
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_TEMPLATE, 0);
    if (e == NULL) {
        return NULL;
    }

    e->parts = parts;
    nparts = 0;
    start = 0;
    i = 0;

    while (i + 2 <= n) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }

        for (k = i + 2; k < n && s[k] != '}'; k++) {
            /* void */
        }

        if (!(k > i + 2 && k + 2 <= n && s[k] == '}' && s[k + 1] == '}')) {
            i++;
            continue;
        }

        if (i > start) {
            ldseg_buf_init(&b, mc->ar);
            ldseg_buf_escape(&b, s + start, i - start);

            if (b.failed) {
                return NULL;
            }

            parts[nparts].text = b.p;
            parts[nparts].len = b.len;
            parts[nparts].path = NULL;
            nparts++;
        }

        p = s + i + 2;
        plen = k - i - 2;
        ldseg_mapping_trim(&p, &plen);

        parts[nparts].text = NULL;
        parts[nparts].len = 0;
        parts[nparts].path = ldseg_mc_path(mc, p, plen, 0);

        if (parts[nparts].path == NULL) {
            return NULL;
        }

        nparts++;
        i = k + 2;
        start = i;
    }

    if (n > start) {
        ldseg_buf_init(&b, mc->ar);
        ldseg_buf_escape(&b, s + start, n - start);

        if (b.failed) {
            return NULL;
        }

        parts[nparts].text = b.p;
        parts[nparts].len = b.len;
        parts[nparts].path = NULL;
        nparts++;
    }

    e->nparts = nparts;

    for (j = 0; j < nparts; j++) {
        if (parts[j].path == NULL && parts[j].text == NULL) {
            parts[j].text = "";
        }
    }

    return e;
}


static ldseg_expr_t *
ldseg_mc_json(ldseg_mc_t *mc, const cJSON *v)
{
    const cJSON   *mode, *value;
    ldseg_expr_t  *e;

    if (ldseg_mc_check_object(mc, "@json", v) != 0) {
        return NULL;
    }

    mode = ldseg_mc_get(v, "mode");
    value = ldseg_mc_get(v, "value");

    if (mode == NULL || !cJSON_IsString(mode)
        || (strcasecmp(mode->valuestring, "encode") != 0
            && strcasecmp(mode->valuestring, "decode") != 0))
    {
        (void) ldseg_mc_fail(mc, "@json needs a \"mode\": \"encode\" or "
                             "\"decode\"%s", "");
        return NULL;
    }

    if (!ldseg_mc_truthy(value)) {
        (void) ldseg_mc_fail(mc, "@json needs a \"value\"%s", "");
        return NULL;
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_JSON, 1);
    if (e == NULL) {
        return NULL;
    }

    if (strcmp(mode->valuestring, "encode") == 0) {
        e->flags |= LDSEG_EX_JSON_ENCODE;

    } else if (strcmp(mode->valuestring, "decode") == 0) {
        e->flags |= LDSEG_EX_JSON_DECODE;
    }

    e->args[0] = ldseg_mc_arg(mc, "value", value);

    return (e->args[0] != NULL) ? e : NULL;
}


static ldseg_expr_t *
ldseg_mc_flatten(ldseg_mc_t *mc, const cJSON *v)
{
    char          *s;
    size_t         n;
    const cJSON   *sep, *value;
    ldseg_expr_t  *e;

    if (ldseg_mc_check_object(mc, "@flatten", v) != 0) {
        return NULL;
    }

    sep = ldseg_mc_get(v, "separator");
    value = ldseg_mc_get(v, "value");

    if (sep == NULL || !cJSON_IsString(sep) || sep->valuestring[0] == '\0') {
        (void) ldseg_mc_fail(mc, "@flatten needs a \"separator\" string%s",
                             "");
        return NULL;
    }

    if (value == NULL) {
        (void) ldseg_mc_fail(mc, "@flatten needs a \"value\"%s", "");
        return NULL;
    }

    e = ldseg_mc_expr_new(mc, LDSEG_EX_FLATTEN, 1);
    if (e == NULL) {
        return NULL;
    }

    n = strlen(sep->valuestring);
    s = ldseg_arena_alloc(mc->ar, n + 1);
    if (s == NULL) {
        return NULL;
    }

    memcpy(s, sep->valuestring, n + 1);
    e->str[0] = s;
    e->len[0] = n;

    if (ldseg_mc_truthy(ldseg_mc_get(v, "omitArrays"))) {
        e->flags |= LDSEG_EX_FLATTEN_NO_ARRAYS;
    }

    e->args[0] = ldseg_mc_arg(mc, "value", value);

    return (e->args[0] != NULL) ? e : NULL;
}


static ldseg_expr_t *
ldseg_mc_merge(ldseg_mc_t *mc, const cJSON *v)
{
    char           idx[32];
    size_t         i, n, w;
    const cJSON   *dir, *objects, *c;
    ldseg_expr_t  *e;

    if (ldseg_mc_check_object(mc, "@merge", v) != 0) {
        return NULL;
    }

    dir = ldseg_mc_get(v, "direction");
    objects = ldseg_mc_get(v, "objects");

    if (dir == NULL || !cJSON_IsString(dir)
        || (strcasecmp(dir->valuestring, "left") != 0
            && strcasecmp(dir->valuestring, "right") != 0))
    {
        (void) ldseg_mc_fail(mc, "@merge needs a \"direction\": \"left\" or "
                             "\"right\"%s", "");
        return NULL;
    }

    if (objects == NULL || !cJSON_IsArray(objects)) {
        (void) ldseg_mc_fail(mc, "@merge needs an \"objects\" array%s", "");
        return NULL;
    }

    n = (size_t) cJSON_GetArraySize(objects);

    e = ldseg_mc_expr_new(mc, LDSEG_EX_MERGE, n);
    if (e == NULL) {
        return NULL;
    }

    if (strcmp(dir->valuestring, "left") == 0) {
        e->flags |= LDSEG_EX_MERGE_LEFT;
    }

    for (c = objects->child, i = 0; c != NULL; c = c->next, i++) {
        snprintf(idx, sizeof(idx), ".objects[%zu]", i);
        w = ldseg_mc_push(mc, idx);

        if (!cJSON_IsObject(c)) {
            (void) ldseg_mc_fail(mc, "@merge's objects are objects or "
                                 "directives%s", "");
            return NULL;
        }

        e->args[i] = ldseg_mc_expr(mc, c);
        ldseg_mc_pop(mc, w);

        if (e->args[i] == NULL) {
            return NULL;
        }
    }

    return e;
}


static ldseg_trie_t *
ldseg_mc_trie_child(ldseg_mc_t *mc, ldseg_trie_t *t, const char *key,
    size_t len, unsigned slot)
{
    char          *k;
    ldseg_trie_t  *c, **tail;

    tail = &t->child;

    for (c = t->child; c != NULL; c = c->next) {
        if (c->len == len && memcmp(c->key, key, len) == 0) {
            return c;
        }

        tail = &c->next;
    }

    c = ldseg_arena_alloc(mc->ar, sizeof(ldseg_trie_t));
    k = ldseg_arena_alloc(mc->ar, len + 1);

    if (c == NULL || k == NULL) {
        return NULL;
    }

    memcpy(k, key, len);
    k[len] = '\0';

    c->key = k;
    c->len = len;
    c->slot = (slot == LDSEG_MAPPING_NO_SLOT) ? mc->maps->nslots++ : slot;
    c->child = NULL;
    c->next = NULL;
    c->nchildren = 0;

    *tail = c;
    t->nchildren++;

    return c;
}


static ldseg_rc_t
ldseg_mc_model(ldseg_mc_t *mc)
{
    size_t                   n;
    const ldseg_json_key_t  *keys;

    mc->root = ldseg_arena_alloc(mc->ar, sizeof(ldseg_trie_t));
    if (mc->root == NULL) {
        return LDSEG_ENOMEM;
    }

    memset(mc->root, 0, sizeof(ldseg_trie_t));
    mc->maps->nslots = LDSEG_F_N;

    /* the Segment model's keys and slots first (ldseg_segment.c) */

    keys = ldseg_segment_keys(&n);

    return ldseg_mc_model_table(mc, mc->root, keys, n);
}


static ldseg_rc_t
ldseg_mc_model_table(ldseg_mc_t *mc, ldseg_trie_t *t,
    const ldseg_json_key_t *keys, size_t n)
{
    size_t         i;
    ldseg_trie_t  *c;

    for (i = 0; i < n; i++) {
        c = ldseg_mc_trie_child(mc, t, keys[i].name, keys[i].len,
                                keys[i].slot);
        if (c == NULL) {
            return LDSEG_ENOMEM;
        }

        if (keys[i].sub != NULL
            && ldseg_mc_model_table(mc, c, keys[i].sub, keys[i].nsub)
               != LDSEG_OK)
        {
            return LDSEG_ENOMEM;
        }
    }

    return LDSEG_OK;
}


/* the slots of a path read from the message */

static ldseg_rc_t
ldseg_mc_slots(ldseg_mc_t *mc, ldseg_path_t *path)
{
    size_t         i;
    ldseg_trie_t  *t;

    path->slots = ldseg_arena_alloc(mc->ar, (path->nsegs + 1)
                                            * sizeof(unsigned));
    if (path->slots == NULL) {
        return LDSEG_ENOMEM;
    }

    t = mc->root;

    for (i = 0; i < path->nsegs; i++) {

        /*
         * No message the scan accepts is deeper than LDSEG_MAX_DEPTH: a
         * longer path is looked up in the span below that (and the tree
         * of slots stays that shallow)
         */

        if (mc->item || t == NULL || i >= LDSEG_MAX_DEPTH) {
            path->slots[i] = LDSEG_MAPPING_NO_SLOT;
            continue;
        }

        t = ldseg_mc_trie_child(mc, t, path->segs[i], path->lens[i],
                                LDSEG_MAPPING_NO_SLOT);
        if (t == NULL) {
            return LDSEG_ENOMEM;
        }

        path->slots[i] = t->slot;
    }

    if (!mc->item && path->nsegs == 0) {
        mc->whole = 1;
    }

    path->type = (!mc->item && path->nsegs > 0 && path->lens[0] == 4
                  && memcmp(path->segs[0], "type", 4) == 0);

    path->direct = (!mc->item && path->nsegs == 1 && !path->type);

    return LDSEG_OK;
}


/*
 * Where the mappings read the message's "context": its slot and every
 * slot below it.  A mapping that reads the whole message reads it too.
 */

static ldseg_rc_t
ldseg_mc_context(ldseg_mc_t *mc)
{
    size_t          n;
    ldseg_trie_t   *t;

    mc->maps->ctx_slot = LDSEG_MAPPING_NO_SLOT;

    for (t = mc->root->child; t != NULL; t = t->next) {
        if (t->len == 7 && memcmp(t->key, "context", 7) == 0) {
            break;
        }
    }

    if (t == NULL) {
        if (!mc->whole) {
            return LDSEG_OK;
        }

        t = ldseg_mc_trie_child(mc, mc->root, "context", 7,
                                LDSEG_MAPPING_NO_SLOT);
        if (t == NULL) {
            return LDSEG_ENOMEM;
        }
    }

    mc->maps->ctx_slot = t->slot;

    n = ldseg_mc_subtree(t, NULL);

    mc->maps->ctx_slots = ldseg_arena_alloc(mc->ar,
                                            (n + 1) * sizeof(unsigned));
    if (mc->maps->ctx_slots == NULL) {
        return LDSEG_ENOMEM;
    }

    mc->maps->nctx_slots = ldseg_mc_subtree(t, mc->maps->ctx_slots);

    return LDSEG_OK;
}


/* the slots below t, into slots if not NULL; returns how many */

static size_t
ldseg_mc_subtree(const ldseg_trie_t *t, unsigned *slots)
{
    size_t               n;
    const ldseg_trie_t  *c;

    n = 0;

    for (c = t->child; c != NULL; c = c->next) {
        if (slots != NULL) {
            slots[n] = c->slot;
        }

        n++;
        n += ldseg_mc_subtree(c, (slots != NULL) ? slots + n : NULL);
    }

    return n;
}


static ldseg_path_t *
ldseg_mc_path(ldseg_mc_t *mc, const char *s, size_t len, unsigned strip)
{
    ldseg_path_t  *path;

    path = ldseg_arena_alloc(mc->ar, sizeof(ldseg_path_t));
    if (path == NULL) {
        return NULL;
    }

    if (ldseg_mapping_split(mc->ar, s, len, strip, path) != LDSEG_OK
        || ldseg_mc_slots(mc, path) != LDSEG_OK)
    {
        return NULL;
    }

    return path;
}


static ldseg_json_key_t *
ldseg_mc_table(ldseg_mc_t *mc, const ldseg_trie_t *t)
{
    size_t               i;
    ldseg_json_key_t    *keys;
    const ldseg_trie_t  *c;

    keys = ldseg_arena_alloc(mc->ar, (t->nchildren + 1)
                                     * sizeof(ldseg_json_key_t));
    if (keys == NULL) {
        return NULL;
    }

    for (c = t->child, i = 0; c != NULL; c = c->next, i++) {
        keys[i].name = c->key;
        keys[i].len = c->len;
        keys[i].slot = c->slot;
        keys[i].handler = NULL;
        keys[i].sub = NULL;
        keys[i].nsub = 0;

        if (c->nchildren != 0) {
            keys[i].sub = ldseg_mc_table(mc, c);
            if (keys[i].sub == NULL) {
                return NULL;
            }

            keys[i].nsub = c->nchildren;
        }
    }

    return keys;
}


static ldseg_rc_t
ldseg_mc_fql_paths(ldseg_mc_t *mc, ldseg_fql_t *f)
{
    size_t          i, cap;
    const char     *root;
    ldseg_path_t   *path, **paths;

    if (f->field == LDSEG_FQL_GROUP) {
        for (i = 0; i < f->nchildren; i++) {
            if (ldseg_mc_fql_paths(mc, f->children[i]) != LDSEG_OK) {
                return LDSEG_ENOMEM;
            }
        }

        return LDSEG_OK;
    }

    if (f->field == LDSEG_FQL_TYPE) {
        return LDSEG_OK;
    }

    switch (f->field) {
    case LDSEG_FQL_EVENT:
        root = "event";
        break;
    case LDSEG_FQL_NAME:
        root = "name";
        break;
    case LDSEG_FQL_USER_ID:
        root = "userId";
        break;
    case LDSEG_FQL_PROPERTY:
        root = "properties";
        break;
    case LDSEG_FQL_TRAIT:
        root = "traits";
        break;
    default:
        root = "context";
        break;
    }

    path = ldseg_arena_alloc(mc->ar, sizeof(ldseg_path_t));
    if (path == NULL) {
        return LDSEG_ENOMEM;
    }

    path->nsegs = 1 + (f->no_path ? 0 : f->nsegs);
    path->segs = ldseg_arena_alloc(mc->ar, path->nsegs * sizeof(char *));
    path->lens = ldseg_arena_alloc(mc->ar, path->nsegs * sizeof(size_t));

    if (path->segs == NULL || path->lens == NULL) {
        return LDSEG_ENOMEM;
    }

    path->segs[0] = (char *) root;
    path->lens[0] = strlen(root);

    for (i = 1; i < path->nsegs; i++) {
        path->segs[i] = f->segs[i - 1];
        path->lens[i] = f->seg_lens[i - 1];
    }

    if (ldseg_mc_slots(mc, path) != LDSEG_OK) {
        return LDSEG_ENOMEM;
    }

    path->type = 0;
    path->direct = 0;

    if (mc->npaths == mc->cpaths) {
        cap = (mc->cpaths == 0) ? 16 : mc->cpaths * 2;

        paths = ldseg_arena_alloc(mc->ar, cap * sizeof(ldseg_path_t *));
        if (paths == NULL) {
            return LDSEG_ENOMEM;
        }

        if (mc->npaths != 0) {
            memcpy(paths, mc->maps->paths,
                   mc->npaths * sizeof(ldseg_path_t *));
        }

        mc->maps->paths = paths;
        mc->cpaths = cap;
    }

    f->path = (unsigned) mc->npaths;
    mc->maps->paths[mc->npaths++] = path;
    mc->maps->npaths = mc->npaths;

    return LDSEG_OK;
}


static ldseg_rc_t
ldseg_mc_subscription(ldseg_mc_t *mc, const cJSON *s,
    ldseg_subscription_t *sub, size_t index)
{
    char          *name, fqlerr[256], subname[160];
    size_t         i, n, w;
    ldseg_rc_t     rc;
    const cJSON   *jname, *subscribe, *action, *mapping, *f, *c;
    ldseg_expr_t            *e;
    const ldseg_mc_field_t  *fields;

    snprintf(subname, sizeof(subname), "subscription %zu", index + 1);
    mc->sub = subname;
    mc->wlen = 0;
    mc->where[0] = '\0';

    if (!cJSON_IsObject(s)) {
        return ldseg_mc_fail(mc, "is not an object%s", "");
    }

    jname = ldseg_mc_get(s, "name");

    if (jname != NULL && cJSON_IsString(jname)) {
        n = strlen(jname->valuestring);

        name = ldseg_arena_alloc(mc->ar, n + 1);
        if (name == NULL) {
            return LDSEG_ENOMEM;
        }

        memcpy(name, jname->valuestring, n + 1);
        sub->name = name;

        snprintf(subname, sizeof(subname), "subscription \"%.120s\"", name);

    } else {
        sub->name = NULL;
    }

    subscribe = ldseg_mc_get(s, "subscribe");

    if (subscribe == NULL || !cJSON_IsString(subscribe)
        || subscribe->valuestring[0] == '\0')
    {
        return ldseg_mc_fail(mc, "\"subscribe\" must be an FQL string%s", "");
    }

    action = ldseg_mc_get(s, "partnerAction");

    if (action != NULL && cJSON_IsString(action)
        && strcmp(action->valuestring, "trackEvent") == 0)
    {
        sub->action = LDSEG_ACTION_TRACK;
        fields = ldseg_mc_track_fields;
        n = sizeof(ldseg_mc_track_fields) / sizeof(ldseg_mc_track_fields[0]);

    } else if (action != NULL && cJSON_IsString(action)
               && strcmp(action->valuestring, "aliasUser") == 0)
    {
        sub->action = LDSEG_ACTION_ALIAS;
        fields = ldseg_mc_alias_fields;
        n = sizeof(ldseg_mc_alias_fields) / sizeof(ldseg_mc_alias_fields[0]);

    } else {
        return ldseg_mc_fail(mc, "unknown \"partnerAction\" (it must be "
                             "\"trackEvent\" or \"aliasUser\")%s", "");
    }

    fqlerr[0] = '\0';

    sub->fql = ldseg_fql_parse(subscribe->valuestring,
                               strlen(subscribe->valuestring), mc->ar,
                               fqlerr, sizeof(fqlerr));
    if (sub->fql == NULL) {
        if (mc->ar->nomem) {
            return LDSEG_ENOMEM;
        }

        return ldseg_mc_fail(mc, "invalid FQL in \"subscribe\": %s", fqlerr);
    }

    rc = ldseg_mc_fql_paths(mc, sub->fql);
    if (rc != LDSEG_OK) {
        return rc;
    }

    mapping = ldseg_mc_get(s, "mapping");

    if (mapping != NULL && !cJSON_IsObject(mapping)) {
        return ldseg_mc_fail(mc, "\"mapping\" must be an object%s", "");
    }

    memset(sub->fields, 0, sizeof(sub->fields));

    if (mapping != NULL) {
        for (c = mapping->child; c != NULL; c = c->next) {
            if (c->string[0] == '@') {
                return ldseg_mc_fail(mc, "\"mapping\" has a directive key "
                                     "\"%s\"", c->string);
            }
        }

        /* every key is checked; only the action's fields are kept */

        for (c = mapping->child; c != NULL; c = c->next) {
            if (ldseg_mc_get(mapping, c->string) != c) {
                continue;
            }

            mc->wlen = 0;
            w = ldseg_mc_push(mc, "mapping.");
            (void) ldseg_mc_push(mc, c->string);

            e = ldseg_mc_expr(mc, c);

            ldseg_mc_pop(mc, w);

            if (e == NULL) {
                if (mc->err[0] != '\0') {
                    return LDSEG_EINVAL;
                }

                return LDSEG_ENOMEM;
            }

            for (i = 0; i < n; i++) {
                if (strcmp(fields[i].name, c->string) == 0) {
                    sub->fields[fields[i].field] = e;
                }
            }
        }
    }

    for (i = 0; i < n; i++) {
        f = (mapping != NULL) ? ldseg_mc_get(mapping, fields[i].name) : NULL;

        if (fields[i].required && f == NULL) {
            return ldseg_mc_fail(mc, "the required field \"%s\" is not "
                                 "mapped", fields[i].name);
        }
    }

    return LDSEG_OK;
}


/* the deepest nesting of brackets in JSON text, strings skipped */

static size_t
ldseg_mc_depth(const char *p, size_t len)
{
    size_t  i, depth, max;

    depth = 0;
    max = 0;

    for (i = 0; i < len; i++) {
        switch (p[i]) {

        case '"':
            for (i++; i < len && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    i++;
                }
            }

            break;

        case '[':
        case '{':
            if (++depth > max) {
                max = depth;
            }

            break;

        case ']':
        case '}':
            if (depth != 0) {
                depth--;
            }

            break;

        default:
            break;
        }
    }

    return max;
}


ldseg_rc_t
ldseg_mappings_compile(const char *json, size_t len,
    const ldseg_allocator_t *a, ldseg_mappings_t **out, char *err,
    size_t err_len)
{
    size_t             i, n;
    cJSON             *root;
    ldseg_rc_t         rc;
    ldseg_mc_t         mc;
    const cJSON       *s;
    const char        *ep;
    ldseg_arena_t      ar;
    ldseg_mappings_t  *maps;

    *out = NULL;
    err[0] = '\0';

    if (len > LDSEG_MAPPING_MAX_FILE) {
        snprintf(err, err_len, "the file is larger than %d bytes",
                 LDSEG_MAPPING_MAX_FILE);
        return LDSEG_EINVAL;
    }

    if (ldseg_mc_depth(json, len) > LDSEG_MAPPING_MAX_DEPTH) {
        snprintf(err, err_len, "the file nests deeper than %d levels",
                 LDSEG_MAPPING_MAX_DEPTH);
        return LDSEG_EINVAL;
    }

    root = cJSON_ParseWithLength(json, len);

    if (root == NULL) {
        ep = cJSON_GetErrorPtr();

        if (ep != NULL && ep >= json && ep <= json + len) {
            snprintf(err, err_len, "invalid JSON at byte %zu",
                     (size_t) (ep - json));

        } else {
            snprintf(err, err_len, "invalid JSON");
        }

        return LDSEG_EINVAL;
    }

    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        snprintf(err, err_len, "the file must hold a JSON array of "
                 "subscriptions");
        return LDSEG_EINVAL;
    }

    ldseg_arena_init(&ar, a, (size_t) -1);

    maps = ldseg_arena_alloc(&ar, sizeof(ldseg_mappings_t));
    if (maps == NULL) {
        rc = LDSEG_ENOMEM;
        goto failed;
    }

    memset(maps, 0, sizeof(ldseg_mappings_t));

    memset(&mc, 0, sizeof(ldseg_mc_t));
    mc.maps = maps;
    mc.ar = &ar;
    mc.err = err;
    mc.err_len = err_len;
    mc.sub = "mappings";

    rc = ldseg_mc_model(&mc);
    if (rc != LDSEG_OK) {
        goto failed;
    }

    n = (size_t) cJSON_GetArraySize(root);

    if (n > LDSEG_MAPPING_MAX_SUBS) {
        snprintf(err, err_len, "more than %d subscriptions",
                 LDSEG_MAPPING_MAX_SUBS);
        rc = LDSEG_EINVAL;
        goto failed;
    }

    if (n != 0) {
        maps->subs = ldseg_arena_alloc(&ar, n * sizeof(ldseg_subscription_t));
        if (maps->subs == NULL) {
            rc = LDSEG_ENOMEM;
            goto failed;
        }
    }

    for (s = root->child, i = 0; s != NULL; s = s->next, i++) {
        rc = ldseg_mc_subscription(&mc, s, &maps->subs[i], i);

        if (rc != LDSEG_OK) {
            goto failed;
        }
    }

    maps->nsubs = n;

    rc = ldseg_mc_context(&mc);
    if (rc != LDSEG_OK) {
        goto failed;
    }

    maps->keys = ldseg_mc_table(&mc, mc.root);
    if (maps->keys == NULL) {
        rc = LDSEG_ENOMEM;
        goto failed;
    }

    maps->nkeys = mc.root->nchildren;

    for (i = 0; i < maps->nkeys; i++) {
        if (maps->keys[i].slot == maps->ctx_slot) {
            maps->ctx_keys = maps->keys[i].sub;
            maps->nctx_keys = maps->keys[i].nsub;
        }
    }
    maps->slack = LDSEG_EVENT_SLACK * (n + 1) + len;

    cJSON_Delete(root);

    /* the arena moves into the mappings it holds */
    maps->ar = ar;
    *out = maps;

    return LDSEG_OK;

failed:

    cJSON_Delete(root);
    ldseg_arena_free(&ar);

    if (rc == LDSEG_ENOMEM && err[0] == '\0') {
        snprintf(err, err_len, "out of memory");
    }

    return rc;
}


void
ldseg_mappings_free(ldseg_mappings_t *maps)
{
    ldseg_arena_t  ar;

    if (maps == NULL) {
        return;
    }

    ar = maps->ar;
    ldseg_arena_free(&ar);
}

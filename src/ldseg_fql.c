
/*
 * Copyright (C) ldseg authors
 *
 * FQL, ported from fql-ts's lexer and destination-subscriptions'
 * parse-fql.js and validate.js, quirks included, because a subscription
 * must match here exactly the messages it matches at Segment:
 *   - a string has no escapes, and its closing quote is consumed only
 *     when a terminator (space, ',', ']', ')' or the end) follows it;
 *   - "<=", "!=", "and", "or", "null" are words only before a terminator;
 *   - the operator of a group is the last "and"/"or" seen in it;
 *   - parentheses end at the first ")", so they do not nest;
 *   - single-quoted strings keep their quotes;
 *   - a field name that is not a condition is skipped with the tokens
 *     after it (JavaScript's Object.prototype names count as fields).
 * What fails in JavaScript at parse time fails here; the two things that
 * only fail when a message is matched there (empty parentheses next to a
 * condition, a field path with no name in it) are refused here too.
 */


#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ldseg_fql.h>
#include <ldseg_number.h>


#define LDSEG_FQL_EOS  (-1)


typedef enum {
    LDSEG_TOK_IDENT = 0,
    LDSEG_TOK_DOT,
    LDSEG_TOK_OPERATOR,
    LDSEG_TOK_CONDITIONAL,
    LDSEG_TOK_STRING,
    LDSEG_TOK_NUMBER,
    LDSEG_TOK_NULL,
    LDSEG_TOK_BRACKLEFT,
    LDSEG_TOK_BRACKRIGHT,
    LDSEG_TOK_PARENLEFT,
    LDSEG_TOK_PARENRIGHT,
    LDSEG_TOK_COMMA,
    LDSEG_TOK_EOS
} ldseg_fql_tok_e;


typedef struct {
    ldseg_fql_tok_e               type;
    const char                   *value;
    size_t                        len;
} ldseg_fql_tok_t;


typedef struct {
    const char                   *s;
    size_t                        len;
    size_t                        pos;
    ldseg_arena_t                *ar;
    ldseg_fql_tok_t              *toks;
    size_t                        ntoks;
    size_t                        cap;
    const char                   *err;
    char                          bad;       /* for "invalid character" */
} ldseg_fql_lexer_t;


/*
 * A token list being consumed, as the JavaScript's tokens.shift(); a
 * group's list ends with an "eos" token the JavaScript appends to it.
 */
typedef struct {
    ldseg_fql_tok_t              *toks;
    size_t                        n;
    size_t                        i;
    unsigned                      eos;
} ldseg_fql_queue_t;


static ldseg_fql_tok_t  ldseg_fql_eos = { LDSEG_TOK_EOS, "eos", 3 };


/* getTokenValue(): a string, a number or a boolean */
typedef struct {
    unsigned                      kind;      /* 0 string, 1 number, 2 bool */
    const char                   *str;
    size_t                        len;
    double                        num;
    unsigned                      b;
} ldseg_fql_tval_t;


typedef struct {
    ldseg_arena_t                *ar;
    const char                   *err;
} ldseg_fql_parser_t;


static int ldseg_fql_next(ldseg_fql_lexer_t *lx);
static int ldseg_fql_peek(ldseg_fql_lexer_t *lx);
static void ldseg_fql_backup(ldseg_fql_lexer_t *lx, size_t n);
static int ldseg_fql_is_alpha(int c);
static int ldseg_fql_is_number(int c);
static int ldseg_fql_is_ident(int c);
static int ldseg_fql_is_ws(int c);
static int ldseg_fql_is_term(int c);
static int ldseg_fql_accept(ldseg_fql_lexer_t *lx, const char *str);
static int ldseg_fql_push(ldseg_fql_lexer_t *lx, ldseg_fql_tok_e type,
    const char *value, size_t len);
static int ldseg_fql_lex(ldseg_fql_lexer_t *lx);
static int ldseg_fql_lex_string(ldseg_fql_lexer_t *lx, int quote);
static int ldseg_fql_lex_number(ldseg_fql_lexer_t *lx, int prev);
static int ldseg_fql_lex_word(ldseg_fql_lexer_t *lx, int prev);
static int ldseg_fql_lex_ident(ldseg_fql_lexer_t *lx, int prev);
static ldseg_fql_tok_t *ldseg_fql_normalize(ldseg_fql_lexer_t *lx,
    size_t *n);
static ldseg_fql_tok_t *ldseg_fql_shift(ldseg_fql_queue_t *q);
static ldseg_fql_tok_t *ldseg_fql_first(ldseg_fql_queue_t *q);
static int ldseg_fql_tok_is(const ldseg_fql_tok_t *t, const char *s);
static void ldseg_fql_token_value(const ldseg_fql_tok_t *t,
    ldseg_fql_tval_t *v);
static char *ldseg_fql_string_of(ldseg_fql_parser_t *ps,
    const ldseg_fql_tval_t *v, size_t *len);
static double ldseg_fql_number_of(const ldseg_fql_tval_t *v);
static ldseg_fql_t *ldseg_fql_cond(ldseg_fql_parser_t *ps,
    ldseg_fql_field_e field, const char *name, size_t name_len);
static int ldseg_fql_set_expected(ldseg_fql_parser_t *ps, ldseg_fql_t *c,
    const ldseg_fql_tval_t *v, unsigned as_string);
static int ldseg_fql_add(ldseg_fql_parser_t *ps, ldseg_fql_t ***nodes,
    size_t *n, size_t *cap, ldseg_fql_t *node);
static int ldseg_fql_function(ldseg_fql_parser_t *ps,
    const ldseg_fql_tok_t *name, ldseg_fql_t ***nodes, size_t *n,
    size_t *cap, ldseg_fql_queue_t *q, unsigned negate);
static int ldseg_fql_parse_group(ldseg_fql_parser_t *ps,
    ldseg_fql_queue_t *q, ldseg_fql_t **out);
static int ldseg_fql_condition_type(const char *v, size_t len,
    ldseg_fql_field_e *field);
static int ldseg_fql_value(const ldseg_fql_t *c, const ldseg_mv_t *actual,
    ldseg_arena_t *ar);
static int ldseg_fql_find(const char *h, size_t hlen, const char *n,
    size_t nlen);
static void ldseg_fql_types(ldseg_fql_t *n, ldseg_arena_t *ar);


/* fields of parse-fql.js's tokenToConditionType, prototype names too */
static const struct {
    const char                   *name;
    int                           field;
} ldseg_fql_fields[] = {
    { "type", LDSEG_FQL_TYPE },
    { "event", LDSEG_FQL_EVENT },
    { "name", LDSEG_FQL_NAME },
    { "userId", LDSEG_FQL_USER_ID },
    { "context", LDSEG_FQL_CONTEXT },
    { "properties", LDSEG_FQL_PROPERTY },
    { "traits", LDSEG_FQL_TRAIT },
    { "constructor", -1 },
    { "__proto__", -1 },
    { "toString", -1 },
    { "toLocaleString", -1 },
    { "valueOf", -1 },
    { "hasOwnProperty", -1 },
    { "isPrototypeOf", -1 },
    { "propertyIsEnumerable", -1 },
    { "__defineGetter__", -1 },
    { "__defineSetter__", -1 },
    { "__lookupGetter__", -1 },
    { "__lookupSetter__", -1 }
};


static int
ldseg_fql_next(ldseg_fql_lexer_t *lx)
{
    if (lx->pos == lx->len) {
        return LDSEG_FQL_EOS;
    }

    return (unsigned char) lx->s[lx->pos++];
}


static int
ldseg_fql_peek(ldseg_fql_lexer_t *lx)
{
    int  c;

    c = ldseg_fql_next(lx);

    if (c != LDSEG_FQL_EOS) {
        lx->pos--;
    }

    return c;
}


static void
ldseg_fql_backup(ldseg_fql_lexer_t *lx, size_t n)
{
    lx->pos = (n > lx->pos) ? 0 : lx->pos - n;
}


static int
ldseg_fql_is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}


static int
ldseg_fql_is_number(int c)
{
    return c >= '0' && c <= '9';
}


static int
ldseg_fql_is_ident(int c)
{
    return ldseg_fql_is_alpha(c) || ldseg_fql_is_number(c) || c == '_'
           || c == '-' || c == '\\';
}


static int
ldseg_fql_is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\n';
}


static int
ldseg_fql_is_term(int c)
{
    return c == LDSEG_FQL_EOS || ldseg_fql_is_ws(c) || c == ','
           || c == ']' || c == ')';
}


/*
 * Lexer.accept(): consumes str if it is there and a terminator follows;
 * otherwise backs up what it read, except that reaching the end keeps it
 * consumed (as the JavaScript does).
 */

static int
ldseg_fql_accept(ldseg_fql_lexer_t *lx, const char *str)
{
    int     c, eq;
    size_t  i, n;

    n = 0;
    eq = 1;

    for (i = 0; str[i] != '\0'; i++) {
        c = ldseg_fql_next(lx);

        if (c == LDSEG_FQL_EOS) {
            return 0;
        }

        n++;

        if (c != (unsigned char) str[i]) {
            eq = 0;
        }

        if (ldseg_fql_is_term(c)) {
            eq = 0;
            break;
        }
    }

    if (eq && n == strlen(str) && ldseg_fql_is_term(ldseg_fql_peek(lx))) {
        return 1;
    }

    ldseg_fql_backup(lx, n);

    return 0;
}


static int
ldseg_fql_push(ldseg_fql_lexer_t *lx, ldseg_fql_tok_e type,
    const char *value, size_t len)
{
    size_t            cap;
    ldseg_fql_tok_t  *t;

    if (lx->ntoks == lx->cap) {
        cap = (lx->cap == 0) ? 16 : lx->cap * 2;

        t = ldseg_arena_alloc(lx->ar, cap * sizeof(ldseg_fql_tok_t));
        if (t == NULL) {
            lx->err = "out of memory";
            return -1;
        }

        if (lx->ntoks != 0) {
            memcpy(t, lx->toks, lx->ntoks * sizeof(ldseg_fql_tok_t));
        }

        lx->toks = t;
        lx->cap = cap;
    }

    t = &lx->toks[lx->ntoks++];
    t->type = type;
    t->value = value;
    t->len = len;

    return 0;
}


static int
ldseg_fql_lex(ldseg_fql_lexer_t *lx)
{
    int  c, rc;

    for ( ;; ) {
        c = ldseg_fql_next(lx);

        if (c == LDSEG_FQL_EOS) {
            return ldseg_fql_push(lx, LDSEG_TOK_EOS, "eos", 3);
        }

        if (ldseg_fql_is_ws(c)) {
            continue;
        }

        if (c == '!') {
            rc = ldseg_fql_peek(lx);

            if (ldseg_fql_is_alpha(rc) || rc == '(') {
                if (ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, "!", 1) != 0) {
                    return -1;
                }

                continue;
            }
        }

        if (ldseg_fql_is_alpha(c) || c == '!' || c == '=' || c == '>'
            || c == '<' || c == '\\' || c == '_')
        {
            rc = ldseg_fql_lex_word(lx, c);

        } else if (ldseg_fql_is_number(c) || c == '-' || c == '+') {
            rc = ldseg_fql_lex_number(lx, c);

        } else if (c == '"' || c == '\'') {
            rc = ldseg_fql_lex_string(lx, c);

        } else if (c == '.') {
            rc = ldseg_fql_push(lx, LDSEG_TOK_DOT, ".", 1);

        } else if (c == '[') {
            rc = ldseg_fql_push(lx, LDSEG_TOK_BRACKLEFT, "[", 1);

        } else if (c == ']') {
            rc = ldseg_fql_push(lx, LDSEG_TOK_BRACKRIGHT, "]", 1);

        } else if (c == ',') {
            rc = ldseg_fql_push(lx, LDSEG_TOK_COMMA, ",", 1);

        } else if (c == '(') {
            rc = ldseg_fql_push(lx, LDSEG_TOK_PARENLEFT, "(", 1);

        } else if (c == ')') {
            rc = ldseg_fql_push(lx, LDSEG_TOK_PARENRIGHT, ")", 1);

        } else {
            lx->bad = (char) c;
            lx->err = "invalid character";
            return -1;
        }

        if (rc != 0) {
            return -1;
        }
    }
}


static int
ldseg_fql_lex_string(ldseg_fql_lexer_t *lx, int quote)
{
    size_t  start, end;

    start = lx->pos - 1;

    while (ldseg_fql_peek(lx) != quote) {
        if (ldseg_fql_next(lx) == LDSEG_FQL_EOS) {
            lx->err = "unterminated string";
            return -1;
        }
    }

    end = lx->pos;

    /* the closing quote stays unread unless a terminator follows it */
    (void) ldseg_fql_accept(lx, quote == '"' ? "\"" : "'");

    /* the quote, the characters read and the quote */
    return ldseg_fql_push(lx, LDSEG_TOK_STRING, lx->s + start,
                          end + 1 - start);
}


static int
ldseg_fql_lex_number(ldseg_fql_lexer_t *lx, int prev)
{
    int       c;
    size_t    start;
    unsigned  decimal;

    start = lx->pos - 1;
    decimal = 0;
    c = ldseg_fql_peek(lx);

    while (ldseg_fql_is_number(c) || c == '.') {
        (void) ldseg_fql_next(lx);

        if (c == '.') {
            if (ldseg_fql_is_term(ldseg_fql_peek(lx))) {
                lx->err = "unexpected terminator after decimal point";
                return -1;
            }

            if (decimal) {
                lx->err = "multiple decimal points in one number";
                return -1;
            }

            decimal = 1;
        }

        c = ldseg_fql_peek(lx);
    }

    return ldseg_fql_push(lx, LDSEG_TOK_NUMBER, lx->s + start,
                          lx->pos - start);
}


/* lexOperatorOrConditional() */

static int
ldseg_fql_lex_word(ldseg_fql_lexer_t *lx, int prev)
{
    switch (prev) {

    case '=':
        return ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, "=", 1);

    case '!':
        if (ldseg_fql_accept(lx, "=")) {
            return ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, "!=", 2);
        }

        lx->err = "expected \"=\" after \"!\"";
        return -1;

    case 'a':
        if (ldseg_fql_accept(lx, "nd")) {
            return ldseg_fql_push(lx, LDSEG_TOK_CONDITIONAL, "and", 3);
        }

        break;

    case 'o':
        if (ldseg_fql_accept(lx, "r")) {
            return ldseg_fql_push(lx, LDSEG_TOK_CONDITIONAL, "or", 2);
        }

        break;

    case 'n':
        if (ldseg_fql_accept(lx, "ull")) {
            return ldseg_fql_push(lx, LDSEG_TOK_NULL, "null", 4);
        }

        break;

    case '<':
        if (ldseg_fql_accept(lx, "=")) {
            return ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, "<=", 2);
        }

        return ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, "<", 1);

    case '>':
        if (ldseg_fql_accept(lx, "=")) {
            return ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, ">=", 2);
        }

        return ldseg_fql_push(lx, LDSEG_TOK_OPERATOR, ">", 1);

    default:
        break;
    }

    return ldseg_fql_lex_ident(lx, prev);
}


static int
ldseg_fql_lex_ident(ldseg_fql_lexer_t *lx, int prev)
{
    int       c, next;
    char     *v;
    size_t    n;

    /* at most the rest of the input: escapes only shorten it */
    v = ldseg_arena_alloc(lx->ar, lx->len - lx->pos + 2);
    if (v == NULL) {
        lx->err = "out of memory";
        return -1;
    }

    n = 0;
    c = prev;

    for ( ;; ) {
        if (c == '\\') {
            if (ldseg_fql_peek(lx) == LDSEG_FQL_EOS) {
                lx->err = "expected a character after an escape character";
                return -1;
            }

            c = ldseg_fql_next(lx);

            if (c >= 0xc0) {
                /* one character: the whole UTF-8 sequence */
                v[n++] = (char) c;

                while (lx->pos < lx->len
                       && ((unsigned char) lx->s[lx->pos] & 0xc0) == 0x80)
                {
                    v[n++] = lx->s[lx->pos++];
                }

                goto next;
            }
        }

        v[n++] = (char) c;

    next:

        if (!ldseg_fql_is_ident(ldseg_fql_peek(lx))) {
            break;
        }

        c = ldseg_fql_next(lx);
    }

    next = ldseg_fql_peek(lx);

    if (!(ldseg_fql_is_term(next) || next == '.' || next == '('
          || next == '=' || next == '!'))
    {
        lx->err = "expected a terminator after an identifier";
        return -1;
    }

    return ldseg_fql_push(lx, LDSEG_TOK_IDENT, v, n);
}


/* ident "." ident becomes one ident */

static ldseg_fql_tok_t *
ldseg_fql_normalize(ldseg_fql_lexer_t *lx, size_t *n)
{
    char             *v;
    size_t            i, k;
    ldseg_fql_tok_t  *out, *last;

    out = ldseg_arena_alloc(lx->ar, (lx->ntoks + 1) * sizeof(ldseg_fql_tok_t));
    if (out == NULL) {
        return NULL;
    }

    k = 0;
    i = 0;

    while (i < lx->ntoks) {
        last = (k > 0) ? &out[k - 1] : NULL;

        if (last != NULL && last->type == LDSEG_TOK_IDENT
            && lx->toks[i].type == LDSEG_TOK_DOT && i + 1 < lx->ntoks
            && lx->toks[i + 1].type == LDSEG_TOK_IDENT)
        {
            v = ldseg_arena_alloc(lx->ar, last->len + 1 + lx->toks[i + 1].len);
            if (v == NULL) {
                return NULL;
            }

            memcpy(v, last->value, last->len);
            v[last->len] = '.';
            memcpy(v + last->len + 1, lx->toks[i + 1].value,
                   lx->toks[i + 1].len);

            last->value = v;
            last->len += 1 + lx->toks[i + 1].len;
            i += 2;
            continue;
        }

        out[k++] = lx->toks[i++];
    }

    *n = k;

    return out;
}


static ldseg_fql_tok_t *
ldseg_fql_shift(ldseg_fql_queue_t *q)
{
    if (q->i < q->n) {
        return &q->toks[q->i++];
    }

    if (q->eos) {
        q->eos = 0;
        q->i++;
        return &ldseg_fql_eos;
    }

    return NULL;
}


static ldseg_fql_tok_t *
ldseg_fql_first(ldseg_fql_queue_t *q)
{
    if (q->i < q->n) {
        return &q->toks[q->i];
    }

    return q->eos ? &ldseg_fql_eos : NULL;
}


static int
ldseg_fql_tok_is(const ldseg_fql_tok_t *t, const char *s)
{
    return t->len == strlen(s) && memcmp(t->value, s, t->len) == 0;
}


static void
ldseg_fql_token_value(const ldseg_fql_tok_t *t, ldseg_fql_tval_t *v)
{
    memset(v, 0, sizeof(ldseg_fql_tval_t));

    switch (t->type) {

    case LDSEG_TOK_STRING:
        /* only double quotes are taken off */
        v->str = t->value;
        v->len = t->len;

        if (v->len > 0 && v->str[0] == '"') {
            v->str++;
            v->len--;
        }

        if (v->len > 0 && v->str[v->len - 1] == '"') {
            v->len--;
        }

        return;

    case LDSEG_TOK_NUMBER:
        v->kind = 1;

        if (ldseg_number_from_string(t->value, t->len, &v->num) != LDSEG_OK)
        {
            v->num = NAN;
        }

        return;

    case LDSEG_TOK_IDENT:
        if (ldseg_fql_tok_is(t, "true") || ldseg_fql_tok_is(t, "false")) {
            v->kind = 2;
            v->b = (t->value[0] == 't');
            return;
        }

        /* fall through */

    default:
        v->str = t->value;
        v->len = t->len;
        return;
    }
}


/* String(value) */

static char *
ldseg_fql_string_of(ldseg_fql_parser_t *ps, const ldseg_fql_tval_t *v,
    size_t *len)
{
    char  *s;

    s = ldseg_arena_alloc(ps->ar, v->len + LDSEG_NUMBER_LEN + 1);
    if (s == NULL) {
        return NULL;
    }

    switch (v->kind) {

    case 1:
        *len = ldseg_number_format(v->num, s);
        break;

    case 2:
        *len = v->b ? 4 : 5;
        memcpy(s, v->b ? "true" : "false", *len);
        break;

    default:
        memcpy(s, v->str, v->len);
        *len = v->len;
        break;
    }

    s[*len] = '\0';

    return s;
}


/* Number(value) */

static double
ldseg_fql_number_of(const ldseg_fql_tval_t *v)
{
    double  d;

    switch (v->kind) {

    case 1:
        return v->num;

    case 2:
        return v->b ? 1 : 0;

    default:
        if (ldseg_number_from_string(v->str, v->len, &d) != LDSEG_OK) {
            return NAN;
        }

        return d;
    }
}


/*
 * A condition; for properties, traits and context, name is the path
 * below the object, split as destination-subscriptions' get() does.
 */

static ldseg_fql_t *
ldseg_fql_cond(ldseg_fql_parser_t *ps, ldseg_fql_field_e field,
    const char *name, size_t name_len)
{
    char         *seg;
    size_t        i, j, n;
    ldseg_fql_t  *c;

    c = ldseg_arena_alloc(ps->ar, sizeof(ldseg_fql_t));
    if (c == NULL) {
        return NULL;
    }

    memset(c, 0, sizeof(ldseg_fql_t));
    c->field = field;

    if (field != LDSEG_FQL_PROPERTY && field != LDSEG_FQL_TRAIT
        && field != LDSEG_FQL_CONTEXT)
    {
        return c;
    }

    if (name_len == 0) {
        c->no_path = 1;
        return c;
    }

    n = 0;

    for (i = 0; i < name_len; i = j) {
        while (i < name_len && strchr("[.]", name[i]) != NULL) {
            i++;
        }

        for (j = i; j < name_len && strchr("[.]", name[j]) == NULL; j++) {
            /* void */
        }

        if (j > i) {
            n++;
        }
    }

    if (n == 0) {
        ps->err = "a field path has no name in it";
        return NULL;
    }

    c->segs = ldseg_arena_alloc(ps->ar, n * sizeof(char *));
    c->seg_lens = ldseg_arena_alloc(ps->ar, n * sizeof(size_t));

    if (c->segs == NULL || c->seg_lens == NULL) {
        return NULL;
    }

    for (i = 0; i < name_len; i = j) {
        while (i < name_len && strchr("[.]", name[i]) != NULL) {
            i++;
        }

        for (j = i; j < name_len && strchr("[.]", name[j]) == NULL; j++) {
            /* void */
        }

        if (j == i) {
            continue;
        }

        seg = ldseg_arena_alloc(ps->ar, j - i + 1);
        if (seg == NULL) {
            return NULL;
        }

        memcpy(seg, name + i, j - i);
        seg[j - i] = '\0';

        c->segs[c->nsegs] = seg;
        c->seg_lens[c->nsegs++] = j - i;
    }

    return c;
}


static int
ldseg_fql_set_expected(ldseg_fql_parser_t *ps, ldseg_fql_t *c,
    const ldseg_fql_tval_t *v, unsigned as_string)
{
    ldseg_fql_tval_t  s;

    c->str = ldseg_fql_string_of(ps, v, &c->str_len);
    if (c->str == NULL) {
        return -1;
    }

    if (as_string) {
        /* the value was String()-ed when parsed: Number() of that */
        memset(&s, 0, sizeof(ldseg_fql_tval_t));
        s.str = c->str;
        s.len = c->str_len;
        c->num = ldseg_fql_number_of(&s);

    } else {
        c->num = ldseg_fql_number_of(v);
    }

    return 0;
}


static int
ldseg_fql_add(ldseg_fql_parser_t *ps, ldseg_fql_t ***nodes, size_t *n,
    size_t *cap, ldseg_fql_t *node)
{
    size_t         ncap;
    ldseg_fql_t  **a;

    if (*n == *cap) {
        ncap = (*cap == 0) ? 4 : *cap * 2;

        a = ldseg_arena_alloc(ps->ar, ncap * sizeof(ldseg_fql_t *));
        if (a == NULL) {
            return -1;
        }

        if (*n != 0) {
            memcpy(a, *nodes, *n * sizeof(ldseg_fql_t *));
        }

        *nodes = a;
        *cap = ncap;
    }

    (*nodes)[(*n)++] = node;

    return 0;
}


/* the field of a name that starts with the prefix, as /^(prefix)/ */

static int
ldseg_fql_function(ldseg_fql_parser_t *ps, const ldseg_fql_tok_t *name,
    ldseg_fql_t ***nodes, size_t *n, size_t *cap, ldseg_fql_queue_t *q,
    unsigned negate)
{
    char              *s;
    size_t             i, plen, len;
    unsigned           contains;
    ldseg_fql_t       *c;
    ldseg_fql_op_e     op;
    ldseg_fql_tok_t   *arg, *val;
    ldseg_fql_tval_t   tv;
    ldseg_fql_field_e  field;
    static const struct {
        const char        *prefix;
        ldseg_fql_field_e  field;
    } prefixes[] = {
        { "properties", LDSEG_FQL_PROPERTY },
        { "traits", LDSEG_FQL_TRAIT },
        { "context", LDSEG_FQL_CONTEXT }
    };

    contains = ldseg_fql_tok_is(name, "contains");

    (void) ldseg_fql_shift(q);
    arg = ldseg_fql_shift(q);

    if (arg == NULL) {
        ps->err = contains ? "contains() is missing a 1st argument"
                           : "match() is missing a 1st argument";
        return -1;
    }

    (void) ldseg_fql_shift(q);
    val = ldseg_fql_shift(q);

    if (val == NULL) {
        ps->err = contains ? "contains() is missing a 2nd argument"
                           : "match() is missing a 2nd argument";
        return -1;
    }

    (void) ldseg_fql_shift(q);

    ldseg_fql_token_value(val, &tv);
    s = ldseg_fql_string_of(ps, &tv, &len);
    if (s == NULL) {
        return -1;
    }

    if (contains) {
        op = negate ? LDSEG_FQL_OP_NOT_CONTAINS : LDSEG_FQL_OP_CONTAINS;

    } else if (val->len >= 2 && val->value[val->len - 2] == '*'
               && val->value[val->len - 1] == '"')
    {
        op = negate ? LDSEG_FQL_OP_NOT_STARTS : LDSEG_FQL_OP_STARTS;

        if (len > 0) {
            len--;
        }

    } else {
        op = negate ? LDSEG_FQL_OP_NOT_ENDS : LDSEG_FQL_OP_ENDS;

        if (len > 0) {
            /* String.prototype.slice(1): one character */
            i = 1;

            while (i < len && ((unsigned char) s[i] & 0xc0) == 0x80) {
                i++;
            }

            s += i;
            len -= i;
        }
    }

    field = LDSEG_FQL_GROUP;

    if (ldseg_fql_tok_is(arg, "event")) {
        field = LDSEG_FQL_EVENT;

    } else if (ldseg_fql_tok_is(arg, "name")) {
        field = LDSEG_FQL_NAME;

    } else if (ldseg_fql_tok_is(arg, "userId")) {
        field = LDSEG_FQL_USER_ID;
    }

    if (field != LDSEG_FQL_GROUP) {
        c = ldseg_fql_cond(ps, field, NULL, 0);
        if (c == NULL) {
            return -1;
        }

        c->op = op;
        c->str = s;
        c->str_len = len;

        return ldseg_fql_add(ps, nodes, n, cap, c);
    }

    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        plen = strlen(prefixes[i].prefix);

        if (arg->len < plen || memcmp(arg->value, prefixes[i].prefix, plen))
        {
            continue;
        }

        if (arg->len > plen && arg->value[plen] == '.') {
            plen++;

        } else {
            plen = 0;
        }

        c = ldseg_fql_cond(ps, prefixes[i].field, arg->value + plen,
                           arg->len - plen);
        if (c == NULL) {
            return -1;
        }

        c->op = op;
        c->str = s;
        c->str_len = len;

        if (ldseg_fql_add(ps, nodes, n, cap, c) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
ldseg_fql_condition_type(const char *v, size_t len, ldseg_fql_field_e *field)
{
    size_t  i, n;

    for (n = 0; n < len && v[n] != '.'; n++) {
        /* void */
    }

    for (i = 0; i < sizeof(ldseg_fql_fields) / sizeof(ldseg_fql_fields[0]);
         i++)
    {
        if (strlen(ldseg_fql_fields[i].name) == n
            && memcmp(ldseg_fql_fields[i].name, v, n) == 0)
        {
            *field = (ldseg_fql_field_e) ldseg_fql_fields[i].field;
            return 1;
        }
    }

    return 0;
}


/* parse(): *out is NULL for a group of nothing (JavaScript's undefined) */

static int
ldseg_fql_parse_group(ldseg_fql_parser_t *ps, ldseg_fql_queue_t *q,
    ldseg_fql_t **out)
{
    size_t              n, cap, plen;
    unsigned            is_true, is_false, is_exists, is_not_exists;
    unsigned            is_num_eq, is_num_ne, as_string;
    ldseg_fql_t        *c, *g, **nodes;
    ldseg_fql_op_e      op, group_op;
    ldseg_fql_tok_t    *t, *opt, *val, *gt;
    ldseg_fql_tval_t    tv;
    ldseg_fql_queue_t   sub;
    ldseg_fql_field_e   field;

    nodes = NULL;
    n = 0;
    cap = 0;
    group_op = LDSEG_FQL_OP_AND;

    t = ldseg_fql_shift(q);

    while (t != NULL && t->type != LDSEG_TOK_EOS) {

        if (t->type == LDSEG_TOK_IDENT
            && ldseg_fql_condition_type(t->value, t->len, &field))
        {
            opt = ldseg_fql_shift(q);
            if (opt == NULL) {
                ps->err = "an operator is missing";
                return -1;
            }

            val = ldseg_fql_shift(q);
            if (val == NULL) {
                ps->err = "a value is missing";
                return -1;
            }

            is_true = ldseg_fql_tok_is(opt, "=") && ldseg_fql_tok_is(val,
                                                                     "true");
            is_false = ldseg_fql_tok_is(opt, "=")
                       && ldseg_fql_tok_is(val, "false");
            is_exists = ldseg_fql_tok_is(opt, "!=")
                        && ldseg_fql_tok_is(val, "null");
            is_not_exists = ldseg_fql_tok_is(opt, "=")
                            && ldseg_fql_tok_is(val, "null");
            is_num_eq = ldseg_fql_tok_is(opt, "=")
                        && val->type == LDSEG_TOK_NUMBER;
            is_num_ne = ldseg_fql_tok_is(opt, "!=")
                        && val->type == LDSEG_TOK_NUMBER;

            if (ldseg_fql_tok_is(opt, "=")) {
                op = LDSEG_FQL_OP_EQ;

            } else if (ldseg_fql_tok_is(opt, "!=")) {
                op = LDSEG_FQL_OP_NE;

            } else if (ldseg_fql_tok_is(opt, "<")) {
                op = LDSEG_FQL_OP_LT;

            } else if (ldseg_fql_tok_is(opt, "<=")) {
                op = LDSEG_FQL_OP_LE;

            } else if (ldseg_fql_tok_is(opt, ">")) {
                op = LDSEG_FQL_OP_GT;

            } else if (ldseg_fql_tok_is(opt, ">=")) {
                op = LDSEG_FQL_OP_GE;

            } else {
                op = LDSEG_FQL_OP_UNKNOWN;
            }

            ldseg_fql_token_value(val, &tv);
            as_string = 1;
            c = NULL;

            switch ((int) field) {

            case LDSEG_FQL_TYPE:
            case LDSEG_FQL_EVENT:
                c = ldseg_fql_cond(ps, field, NULL, 0);
                break;

            case LDSEG_FQL_NAME:
            case LDSEG_FQL_USER_ID:
                c = ldseg_fql_cond(ps, field, NULL, 0);

                if (c == NULL) {
                    break;
                }

                if (is_exists) {
                    op = LDSEG_FQL_OP_EXISTS;

                } else if (is_not_exists) {
                    op = LDSEG_FQL_OP_NOT_EXISTS;

                } else if (field == LDSEG_FQL_USER_ID && is_true) {
                    op = LDSEG_FQL_OP_TRUE;

                } else if (field == LDSEG_FQL_USER_ID && is_false) {
                    op = LDSEG_FQL_OP_FALSE;
                }

                break;

            case LDSEG_FQL_PROPERTY:
            case LDSEG_FQL_TRAIT:
            case LDSEG_FQL_CONTEXT:
                plen = (field == LDSEG_FQL_PROPERTY) ? 10
                       : (field == LDSEG_FQL_TRAIT) ? 6 : 7;

                if (t->len > plen && t->value[plen] == '.') {
                    plen++;

                } else {
                    plen = 0;
                }

                c = ldseg_fql_cond(ps, field, t->value + plen,
                                   t->len - plen);

                if (c == NULL) {
                    break;
                }

                as_string = 0;

                if (is_exists) {
                    op = LDSEG_FQL_OP_EXISTS;

                } else if (is_not_exists) {
                    op = LDSEG_FQL_OP_NOT_EXISTS;

                } else if (is_true) {
                    op = LDSEG_FQL_OP_TRUE;

                } else if (is_false) {
                    op = LDSEG_FQL_OP_FALSE;

                } else if (is_num_eq) {
                    op = LDSEG_FQL_OP_NUM_EQ;

                } else if (is_num_ne) {
                    op = LDSEG_FQL_OP_NUM_NE;
                }

                break;

            default:
                /* a prototype name: its tokens are used up, no node */
                break;
            }

            if ((int) field >= 0) {
                if (c == NULL) {
                    return -1;
                }

                c->op = op;

                if (ldseg_fql_set_expected(ps, c, &tv, as_string) != 0
                    || ldseg_fql_add(ps, &nodes, &n, &cap, c) != 0)
                {
                    return -1;
                }
            }
        }

        if (t->type == LDSEG_TOK_IDENT
            && (ldseg_fql_tok_is(t, "contains")
                || ldseg_fql_tok_is(t, "match")))
        {
            if (ldseg_fql_function(ps, t, &nodes, &n, &cap, q, 0) != 0) {
                return -1;
            }
        }

        if (t->type == LDSEG_TOK_OPERATOR && ldseg_fql_tok_is(t, "!")) {
            gt = ldseg_fql_first(q);

            if (gt == NULL) {
                ps->err = "\"!\" at the end";
                return -1;
            }

            if (gt->type == LDSEG_TOK_IDENT
                && (ldseg_fql_tok_is(gt, "contains")
                    || ldseg_fql_tok_is(gt, "match")))
            {
                (void) ldseg_fql_shift(q);

                if (ldseg_fql_function(ps, gt, &nodes, &n, &cap, q, 1) != 0) {
                    return -1;
                }
            }
        }

        if (t->type == LDSEG_TOK_PARENLEFT) {
            /* the group's tokens: up to the first ")" */
            sub.toks = &q->toks[q->i];
            sub.n = 0;
            sub.i = 0;
            sub.eos = 1;

            for ( ;; ) {
                gt = ldseg_fql_shift(q);

                if (gt == NULL) {
                    ps->err = "a \"(\" is not closed";
                    return -1;
                }

                if (gt->type == LDSEG_TOK_PARENRIGHT) {
                    break;
                }

                if (gt == &ldseg_fql_eos) {
                    /* a group inside a group: the inner one's "eos" */
                    ps->err = "parentheses inside parentheses";
                    return -1;
                }

                sub.n++;
            }

            if (ldseg_fql_parse_group(ps, &sub, &g) != 0) {
                return -1;
            }

            if (g == NULL) {
                /* JavaScript fails when it matches a message */
                ps->err = "empty parentheses";
                return -1;
            }

            if (ldseg_fql_add(ps, &nodes, &n, &cap, g) != 0) {
                return -1;
            }
        }

        if (t->type == LDSEG_TOK_CONDITIONAL) {
            group_op = ldseg_fql_tok_is(t, "or") ? LDSEG_FQL_OP_OR
                                                  : LDSEG_FQL_OP_AND;
        }

        t = ldseg_fql_shift(q);
    }

    if (n == 0) {
        *out = NULL;
        return 0;
    }

    if (n == 1) {
        *out = nodes[0];
        return 0;
    }

    g = ldseg_arena_alloc(ps->ar, sizeof(ldseg_fql_t));
    if (g == NULL) {
        return -1;
    }

    memset(g, 0, sizeof(ldseg_fql_t));
    g->field = LDSEG_FQL_GROUP;
    g->op = group_op;
    g->children = nodes;
    g->nchildren = n;

    *out = g;

    return 0;
}


ldseg_fql_t *
ldseg_fql_parse(const char *s, size_t len, ldseg_arena_t *ar, char *err,
    size_t err_len)
{
    size_t              n;
    ldseg_fql_t        *ast, *g;
    ldseg_fql_tok_t    *toks;
    ldseg_fql_queue_t   q;
    ldseg_fql_lexer_t   lx;
    ldseg_fql_parser_t  ps;

    if (len > LDSEG_FQL_MAX_LEN) {
        snprintf(err, err_len, "longer than %d bytes", LDSEG_FQL_MAX_LEN);
        return NULL;
    }

    memset(&lx, 0, sizeof(ldseg_fql_lexer_t));
    lx.s = s;
    lx.len = len;
    lx.ar = ar;

    if (ldseg_fql_lex(&lx) != 0) {
        if (lx.err != NULL && strcmp(lx.err, "invalid character") == 0) {
            snprintf(err, err_len, "invalid character \"%c\" at %zu",
                     (lx.bad >= 0x20 && lx.bad < 0x7f) ? lx.bad : '?',
                     lx.pos);

        } else {
            snprintf(err, err_len, "%s at %zu",
                     lx.err != NULL ? lx.err : "out of memory", lx.pos);
        }

        return NULL;
    }

    toks = ldseg_fql_normalize(&lx, &n);
    if (toks == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }

    q.toks = toks;
    q.n = n;
    q.i = 0;
    q.eos = 0;

    ps.ar = ar;
    ps.err = NULL;

    if (ldseg_fql_parse_group(&ps, &q, &ast) != 0) {
        snprintf(err, err_len, "%s", ps.err != NULL ? ps.err
                                                    : "out of memory");
        return NULL;
    }

    if (ast == NULL) {
        snprintf(err, err_len, "no condition");
        return NULL;
    }

    if (ast->field != LDSEG_FQL_GROUP) {
        g = ldseg_arena_alloc(ar, sizeof(ldseg_fql_t)
                                  + sizeof(ldseg_fql_t *));
        if (g == NULL) {
            snprintf(err, err_len, "out of memory");
            return NULL;
        }

        memset(g, 0, sizeof(ldseg_fql_t));
        g->field = LDSEG_FQL_GROUP;
        g->op = LDSEG_FQL_OP_AND;
        g->children = (ldseg_fql_t **) (g + 1);
        g->children[0] = ast;
        g->nchildren = 1;
        ast = g;
    }

    ldseg_fql_types(ast, ar);

    return ast;
}


/* the nodes that read "type" only are decided for every type now */

static void
ldseg_fql_types(ldseg_fql_t *n, ldseg_arena_t *ar)
{
    size_t      i;
    unsigned    t;
    ldseg_mv_t  v;
    static const char  *names[] = {
        NULL, "track", "identify", "alias", "page", "screen", "group"
    };

    n->type_only = 0;
    n->type_mask = 0;

    if (n->field == LDSEG_FQL_TYPE) {
        memset(&v, 0, sizeof(ldseg_mv_t));
        v.type = LDSEG_MV_STRING;

        for (t = 1; t < sizeof(names) / sizeof(names[0]); t++) {
            v.p = names[t];
            v.len = strlen(names[t]);

            if (ldseg_fql_value(n, &v, ar) == 1) {
                n->type_mask |= 1u << t;
            }
        }

        n->type_only = 1;
        return;
    }

    if (n->field != LDSEG_FQL_GROUP) {
        return;
    }

    n->type_only = 1;
    n->type_mask = (n->op == LDSEG_FQL_OP_OR) ? 0 : ~0u;

    for (i = 0; i < n->nchildren; i++) {
        ldseg_fql_types(n->children[i], ar);

        if (!n->children[i]->type_only) {
            n->type_only = 0;
        }

        if (n->op == LDSEG_FQL_OP_OR) {
            n->type_mask |= n->children[i]->type_mask;

        } else {
            n->type_mask &= n->children[i]->type_mask;
        }
    }
}


static int
ldseg_fql_find(const char *h, size_t hlen, const char *n, size_t nlen)
{
    size_t  i;

    if (nlen == 0) {
        return 1;
    }

    if (nlen > hlen) {
        return 0;
    }

    for (i = 0; i + nlen <= hlen; i++) {
        if (h[i] == n[0] && memcmp(h + i, n, nlen) == 0) {
            return 1;
        }
    }

    return 0;
}


/* validateValue() */

static int
ldseg_fql_value(const ldseg_fql_t *c, const ldseg_mv_t *actual,
    ldseg_arena_t *ar)
{
    int          str;
    size_t       len;
    const char  *s;

    s = NULL;
    len = 0;
    str = (actual->type == LDSEG_MV_STRING);

    if (str) {
        if (ldseg_mv_decode(ar, actual, &s, &len) != LDSEG_OK) {
            return -1;
        }
    }

    switch (c->op) {

    case LDSEG_FQL_OP_EQ:
        return str && len == c->str_len && memcmp(s, c->str, len) == 0;

    case LDSEG_FQL_OP_NE:
        return !(str && len == c->str_len && memcmp(s, c->str, len) == 0);

    case LDSEG_FQL_OP_NUM_EQ:
        return actual->type == LDSEG_MV_NUMBER && actual->num == c->num;

    case LDSEG_FQL_OP_NUM_NE:
        return actual->type == LDSEG_MV_NUMBER && !(actual->num == c->num);

    case LDSEG_FQL_OP_LT:
        return actual->type == LDSEG_MV_NUMBER && actual->num < c->num;

    case LDSEG_FQL_OP_LE:
        return actual->type == LDSEG_MV_NUMBER && actual->num <= c->num;

    case LDSEG_FQL_OP_GT:
        return actual->type == LDSEG_MV_NUMBER && actual->num > c->num;

    case LDSEG_FQL_OP_GE:
        return actual->type == LDSEG_MV_NUMBER && actual->num >= c->num;

    case LDSEG_FQL_OP_CONTAINS:
        return str && ldseg_fql_find(s, len, c->str, c->str_len);

    case LDSEG_FQL_OP_NOT_CONTAINS:
        return str && !ldseg_fql_find(s, len, c->str, c->str_len);

    case LDSEG_FQL_OP_STARTS:
        return str && len >= c->str_len && memcmp(s, c->str, c->str_len) == 0;

    case LDSEG_FQL_OP_NOT_STARTS:
        return str
               && !(len >= c->str_len && memcmp(s, c->str, c->str_len) == 0);

    case LDSEG_FQL_OP_ENDS:
        return str && len >= c->str_len
               && memcmp(s + len - c->str_len, c->str, c->str_len) == 0;

    case LDSEG_FQL_OP_NOT_ENDS:
        return str && !(len >= c->str_len
                        && memcmp(s + len - c->str_len, c->str, c->str_len)
                           == 0);

    case LDSEG_FQL_OP_EXISTS:
        return actual->type != LDSEG_MV_UNDEFINED
               && actual->type != LDSEG_MV_NULL;

    case LDSEG_FQL_OP_NOT_EXISTS:
        return actual->type == LDSEG_MV_UNDEFINED
               || actual->type == LDSEG_MV_NULL;

    case LDSEG_FQL_OP_TRUE:
        return actual->type == LDSEG_MV_TRUE;

    case LDSEG_FQL_OP_FALSE:
        return actual->type == LDSEG_MV_FALSE;

    default:
        return 0;
    }
}


int
ldseg_fql_match(const ldseg_fql_t *fql, ldseg_endpoint_e type,
    ldseg_fql_get_pt get, void *ctx, ldseg_arena_t *ar)
{
    int                rc;
    size_t             i;
    const ldseg_mv_t  *v;

    if (fql->type_only) {
        return (fql->type_mask >> type) & 1;
    }

    if (fql->field != LDSEG_FQL_GROUP) {
        v = get(ctx, fql);
        if (v == NULL) {
            return -1;
        }

        return ldseg_fql_value(fql, v, ar);
    }

    for (i = 0; i < fql->nchildren; i++) {
        rc = ldseg_fql_match(fql->children[i], type, get, ctx, ar);

        if (rc < 0) {
            return rc;
        }

        if (fql->op == LDSEG_FQL_OP_OR && rc == 1) {
            return 1;
        }

        if (fql->op != LDSEG_FQL_OP_OR && rc == 0) {
            return 0;
        }
    }

    return fql->op != LDSEG_FQL_OP_OR;
}

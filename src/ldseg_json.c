
/*
 * Copyright (C) ldseg authors
 *
 * The JSON scanner.  It never reads past js->end (bodies are not
 * NUL-terminated), validates UTF-8 so that every span it accepts can be
 * copied verbatim into JSON sent to LaunchDarkly, and records the spans of
 * the few keys the caller asks for.
 */


#include <math.h>
#include <stdint.h>
#include <string.h>

#include <ldseg_json.h>
#include <ldseg_json_plain.h>
#include <ldseg_number.h>


#define LDSEG_JSON_KEY_MAX   64

/* string byte classes */
#define C_OK   0                  /* plain ASCII */
#define C_QT   1                  /* '"' */
#define C_BS   2                  /* '\\' */
#define C_CTL  3                  /* control character: invalid */
#define C_HI   4                  /* byte >= 0x80: UTF-8 */

#define ROW_CTL  C_CTL, C_CTL, C_CTL, C_CTL, C_CTL, C_CTL, C_CTL, C_CTL,     \
                 C_CTL, C_CTL, C_CTL, C_CTL, C_CTL, C_CTL, C_CTL, C_CTL
#define ROW_OK   C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK,             \
                 C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK
#define ROW_HI   C_HI, C_HI, C_HI, C_HI, C_HI, C_HI, C_HI, C_HI,             \
                 C_HI, C_HI, C_HI, C_HI, C_HI, C_HI, C_HI, C_HI


static inline const char *ldseg_json_space(const char *p, const char *end);
static const char *ldseg_json_parse_value(ldseg_json_t *js, const char *p,
    unsigned depth, ldseg_json_val_t *v);
static const char *ldseg_json_parse_object(ldseg_json_t *js, const char *p,
    unsigned depth, const ldseg_json_key_t *keys, size_t nkeys,
    ldseg_json_val_t *vals);
static inline const char *ldseg_json_str(ldseg_json_t *js, const char *p,
    unsigned *esc);
static const char *ldseg_json_string(ldseg_json_t *js, const char *p,
    unsigned *esc);
static const char *ldseg_json_utf8(const char *p, const char *end);
static const char *ldseg_json_number(ldseg_json_t *js, const char *p);
static const char *ldseg_json_literal(ldseg_json_t *js, const char *p,
    const char *lit, size_t len);
static const char *ldseg_json_array(ldseg_json_t *js, const char *p,
    unsigned depth);
static const ldseg_json_key_t *ldseg_json_match(const char *key,
    size_t len, unsigned esc, const ldseg_json_key_t *keys, size_t nkeys);
static const char *ldseg_json_skip_string(const char *p, const char *end);


static const unsigned char  ldseg_json_class[256] = {
    ROW_CTL, ROW_CTL,
    C_OK, C_OK, C_QT, C_OK, C_OK, C_OK, C_OK, C_OK,
    C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK,
    ROW_OK, ROW_OK,
    C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK, C_OK,
    C_OK, C_OK, C_OK, C_OK, C_BS, C_OK, C_OK, C_OK,
    ROW_OK, ROW_OK,
    ROW_HI, ROW_HI, ROW_HI, ROW_HI, ROW_HI, ROW_HI, ROW_HI, ROW_HI
};


const char *
ldseg_json_fail(ldseg_json_t *js, const char *code)
{
    if (js->code == NULL) {
        js->code = code;
    }

    return NULL;
}


const char *
ldseg_json_ws(const char *p, const char *end)
{
    return ldseg_json_space(p, end);
}


/*
 * The scanner's own whitespace skip, inlined: most values follow their
 * ':' or ',' directly, and a byte above ' ' ends it at once.
 */

static inline const char *
ldseg_json_space(const char *p, const char *end)
{
    while (p < end && (unsigned char) *p <= ' '
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


int
ldseg_json_hex(const char *p, unsigned *cp)
{
    unsigned  i, c, v;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = (unsigned char) p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if (c >= 'a' && c <= 'f') {
            c = c - 'a' + 10;

        } else if (c >= 'A' && c <= 'F') {
            c = c - 'A' + 10;

        } else {
            return -1;
        }

        v = (v << 4) | c;
    }

    *cp = v;

    return 0;
}


/* validates one UTF-8 sequence starting at a byte >= 0x80 */

static const char *
ldseg_json_utf8(const char *p, const char *end)
{
    size_t          n, i;
    unsigned char   c, lo, hi;

    c = (unsigned char) *p;
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return NULL;
    }

    if ((size_t) (end - p) <= n) {
        return NULL;
    }

    c = (unsigned char) p[1];

    if (c < lo || c > hi) {
        return NULL;
    }

    for (i = 2; i <= n; i++) {
        c = (unsigned char) p[i];

        if (c < 0x80 || c > 0xbf) {
            return NULL;
        }
    }

    return p + n + 1;
}


/*
 * A string token at p ('"'): most keys and values are short and plain, and
 * their closing quote is found in the sixteen bytes after the opening one
 * without a call; any other string goes to ldseg_json_string().
 */

static inline const char *
ldseg_json_str(ldseg_json_t *js, const char *p, unsigned *esc)
{
#if (LDSEG_JSON_SSE2)
    int  m;

    if (js->end - p > 16) {
        m = ldseg_json_plain_mask16(p + 1);

        if (m == 0) {
            /* sixteen plain bytes: the scan goes on after them */
            return ldseg_json_string(js, p + 16, esc);
        }

        if (p[1 + __builtin_ctz((unsigned) m)] == '"') {
            return p + 2 + __builtin_ctz((unsigned) m);
        }
    }
#endif

    return ldseg_json_string(js, p, esc);
}


/* the string whose opening quote is at p (or whose bytes up to p are plain) */

static const char *
ldseg_json_string(ldseg_json_t *js, const char *p, unsigned *esc)
{
    unsigned     cp;
    const char  *end;

    end = js->end;
    p++;

    for ( ;; ) {

        /* to the next '"', '\\', control character or byte >= 0x80 */

        p = ldseg_json_plain(p, end);

        if (p == end) {
            return ldseg_json_fail(js, "invalid_json");
        }

        switch (ldseg_json_class[(unsigned char) *p]) {

        case C_QT:
            return p + 1;

        case C_BS:
            *esc = 1;

            if (end - p < 2) {
                return ldseg_json_fail(js, "invalid_json");
            }

            switch (p[1]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;

            case 'u':
                if (end - p < 6 || ldseg_json_hex(p + 2, &cp) != 0) {
                    return ldseg_json_fail(js, "invalid_json");
                }

                p += 6;
                break;

            default:
                return ldseg_json_fail(js, "invalid_json");
            }

            break;

        case C_HI:
            p = ldseg_json_utf8(p, end);

            if (p == NULL) {
                return ldseg_json_fail(js, "invalid_json");
            }

            break;

        default:
            return ldseg_json_fail(js, "invalid_json");
        }
    }
}


static const char *
ldseg_json_number(ldseg_json_t *js, const char *p)
{
    size_t       digits;
    unsigned     exp, neg;
    const char  *end, *start;

    end = js->end;
    start = p;
    digits = 0;
    exp = 0;
    neg = 0;

    if (*p == '-') {
        p++;
    }

    if (p == end) {
        return ldseg_json_fail(js, "invalid_json");
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
            digits++;
        }

    } else {
        return ldseg_json_fail(js, "invalid_json");
    }

    if (p < end && *p == '.') {
        p++;

        if (p == end || *p < '0' || *p > '9') {
            return ldseg_json_fail(js, "invalid_json");
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            neg = (*p == '-');
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return ldseg_json_fail(js, "invalid_json");
        }

        while (p < end && *p >= '0' && *p <= '9') {
            if (exp < 100000) {
                exp = exp * 10 + (unsigned) (*p - '0');
            }

            p++;
        }
    }

    /* a double ends at 1.8e308: only then is the number read */

    if ((digits > 300 || (!neg && exp + digits > 300))
        && isinf(ldseg_number_parse(start, (size_t) (p - start))))
    {
        js->odd++;
    }

    return p;
}


int
ldseg_json_key_proto(const char *key, size_t len, unsigned esc)
{
    char  buf[64];                  /* "__proto__" with every byte escaped */

    if (!esc) {
        return len == 11 && memcmp(key, "\"__proto__\"", 11) == 0;
    }

    if (len > sizeof(buf)) {
        return 0;
    }

    return ldseg_json_string_decode(key, len, buf) == 9
           && memcmp(buf, "__proto__", 9) == 0;
}


static const char *
ldseg_json_literal(ldseg_json_t *js, const char *p, const char *lit,
    size_t len)
{
    if ((size_t) (js->end - p) < len || memcmp(p, lit, len) != 0) {
        return ldseg_json_fail(js, "invalid_json");
    }

    return p + len;
}


static const char *
ldseg_json_array(ldseg_json_t *js, const char *p, unsigned depth)
{
    const char  *end;

    end = js->end;

    if (depth + 1 > js->max_depth) {
        return ldseg_json_fail(js, "too_deep");
    }

    p = ldseg_json_space(p + 1, end);

    if (p < end && *p == ']') {
        return p + 1;
    }

    for ( ;; ) {
        p = ldseg_json_parse_value(js, p, depth + 1, NULL);
        if (p == NULL) {
            return NULL;
        }

        p = ldseg_json_space(p, end);

        if (p == end) {
            return ldseg_json_fail(js, "invalid_json");
        }

        if (*p == ']') {
            return p + 1;
        }

        if (*p != ',') {
            return ldseg_json_fail(js, "invalid_json");
        }

        p++;
    }
}


const char *
ldseg_json_value(ldseg_json_t *js, const char *p, unsigned depth,
    ldseg_json_val_t *v)
{
    return ldseg_json_parse_value(js, p, depth, v);
}


static const char *
ldseg_json_parse_value(ldseg_json_t *js, const char *p, unsigned depth,
    ldseg_json_val_t *v)
{
    unsigned           esc;
    const char        *start;
    ldseg_json_type_e  type;

    p = ldseg_json_space(p, js->end);

    if (p == js->end) {
        return ldseg_json_fail(js, "invalid_json");
    }

    start = p;

    switch (*p) {

    case '{':
        type = LDSEG_JSON_OBJECT;
        p = ldseg_json_parse_object(js, p, depth, NULL, 0, NULL);
        break;

    case '[':
        type = LDSEG_JSON_ARRAY;
        p = ldseg_json_array(js, p, depth);
        break;

    case '"':
        type = LDSEG_JSON_STRING;
        esc = 0;
        p = ldseg_json_str(js, p, &esc);
        break;

    case 't':
        type = LDSEG_JSON_TRUE;
        p = ldseg_json_literal(js, p, "true", 4);
        break;

    case 'f':
        type = LDSEG_JSON_FALSE;
        p = ldseg_json_literal(js, p, "false", 5);
        break;

    case 'n':
        type = LDSEG_JSON_NULL;
        p = ldseg_json_literal(js, p, "null", 4);
        break;

    default:
        type = LDSEG_JSON_NUMBER;
        p = ldseg_json_number(js, p);
        break;
    }

    if (p != NULL && v != NULL) {
        v->p = start;
        v->len = (size_t) (p - start);
        v->type = type;
    }

    return p;
}


static const ldseg_json_key_t *
ldseg_json_match(const char *key, size_t len, unsigned esc,
    const ldseg_json_key_t *keys, size_t nkeys)
{
    char    buf[LDSEG_JSON_KEY_MAX];
    size_t  i;

    /* key and len include the quotes */

    if (esc) {
        if (len > LDSEG_JSON_KEY_MAX) {
            return NULL;
        }

        len = ldseg_json_string_decode(key, len, buf);
        key = buf;

    } else {
        key++;
        len -= 2;
    }

    for (i = 0; i < nkeys; i++) {
        if (keys[i].len == len && keys[i].name[0] == key[0]
            && memcmp(keys[i].name, key, len) == 0)
        {
            return &keys[i];
        }
    }

    return NULL;
}


const char *
ldseg_json_object(ldseg_json_t *js, const char *p, unsigned depth,
    const ldseg_json_key_t *keys, size_t nkeys, ldseg_json_val_t *vals)
{
    return ldseg_json_parse_object(js, p, depth, keys, nkeys, vals);
}


static const char *
ldseg_json_parse_object(ldseg_json_t *js, const char *p, unsigned depth,
    const ldseg_json_key_t *keys, size_t nkeys, ldseg_json_val_t *vals)
{
    size_t                   i;
    unsigned                 esc;
    const char              *end, *key;
    ldseg_json_val_t        *v;
    const ldseg_json_key_t  *k;

    end = js->end;
    p = ldseg_json_space(p, end);

    if (p == end || *p != '{') {
        return ldseg_json_fail(js, "invalid_json");
    }

    if (depth + 1 > js->max_depth) {
        return ldseg_json_fail(js, "too_deep");
    }

    p = ldseg_json_space(p + 1, end);

    if (p < end && *p == '}') {
        return p + 1;
    }

    for ( ;; ) {

        if (p == end || *p != '"') {
            return ldseg_json_fail(js, "invalid_json");
        }

        key = p;
        esc = 0;

        p = ldseg_json_str(js, p, &esc);
        if (p == NULL) {
            return NULL;
        }

        k = NULL;

        if ((p - key == 11 || esc)
            && ldseg_json_key_proto(key, (size_t) (p - key), esc))
        {
            js->odd++;
        }

        if (nkeys != 0) {
            k = ldseg_json_match(key, (size_t) (p - key), esc, keys, nkeys);
        }

        /* the common shapes first: "key":"value" and "key":{ ... } */

        if (p == end || *p != ':') {
            p = ldseg_json_space(p, end);

            if (p == end || *p != ':') {
                return ldseg_json_fail(js, "invalid_json");
            }
        }

        p = ldseg_json_space(p + 1, end);

        if (k == NULL) {
            if (p < end && *p == '"') {
                esc = 0;
                p = ldseg_json_str(js, p, &esc);

            } else {
                p = ldseg_json_parse_value(js, p, depth + 1, NULL);
            }

        } else {
            v = &vals[k->slot];

            for (i = 0; i < k->nsub; i++) {
                vals[k->sub[i].slot].type = LDSEG_JSON_NONE;
            }

            if (k->handler != NULL) {
                p = k->handler(js, p, depth + 1, v);

            } else if (k->sub != NULL && p < end && *p == '{') {
                v->p = p;
                p = ldseg_json_parse_object(js, p, depth + 1, k->sub,
                                            k->nsub, vals);
                if (p != NULL) {
                    v->len = (size_t) (p - v->p);
                    v->type = LDSEG_JSON_OBJECT;
                }

            } else {
                p = ldseg_json_parse_value(js, p, depth + 1, v);
            }
        }

        if (p == NULL) {
            return NULL;
        }

        if (p == end || *p != ',') {
            p = ldseg_json_space(p, end);

            if (p == end) {
                return ldseg_json_fail(js, "invalid_json");
            }

            if (*p == '}') {
                return p + 1;
            }

            if (*p != ',') {
                return ldseg_json_fail(js, "invalid_json");
            }
        }

        p = ldseg_json_space(p + 1, end);
    }
}


ldseg_rc_t
ldseg_json_validate(const char *p, size_t len, unsigned max_depth)
{
    const char    *end;
    ldseg_json_t   js;

    end = p + len;

    js.end = end;
    js.max_depth = max_depth;
    js.code = NULL;
    js.odd = 0;
    js.ctx = NULL;

    p = ldseg_json_parse_value(&js, p, 0, NULL);
    if (p == NULL) {
        return LDSEG_EINVAL;
    }

    if (ldseg_json_space(p, end) != end) {
        return LDSEG_EINVAL;
    }

    return LDSEG_OK;
}


/* the bytes ldseg_json_skip() stops at in a container */
static const unsigned char  ldseg_json_stops[256] = {
    ['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1
};


/*
 * The end of the value at p, which was validated before: strings are
 * skipped to their closing quote and containers by their brackets, so a
 * walk costs a fraction of a validating scan.  Never reads past end, on
 * any bytes; NULL when the value does not end before end.
 */

const char *
ldseg_json_skip(const char *p, const char *end, ldseg_json_val_t *v)
{
    const char         *start;
    unsigned            depth;
    ldseg_json_type_e   type;

    if (p >= end) {
        return NULL;
    }

    start = p;

    switch (*p) {

    case '"':
        type = LDSEG_JSON_STRING;
        p = ldseg_json_skip_string(p, end);
        break;

    case '{':
    case '[':
        type = (*p == '{') ? LDSEG_JSON_OBJECT : LDSEG_JSON_ARRAY;
        depth = 0;

        while (p != NULL && p < end) {

            /* only quotes and brackets matter */

            while (p < end && !ldseg_json_stops[(unsigned char) *p]) {
                p++;
            }

            if (p == end) {
                break;
            }

            if (*p == '"') {
                p = ldseg_json_skip_string(p, end);
                continue;
            }

            if (*p == '{' || *p == '[') {
                depth++;

            } else if (--depth == 0) {
                p++;
                break;
            }

            p++;
        }

        if (p != NULL && depth != 0) {
            p = NULL;
        }

        break;

    case 't':
    case 'n':
        type = (*p == 't') ? LDSEG_JSON_TRUE : LDSEG_JSON_NULL;
        p = (end - p >= 4) ? p + 4 : NULL;
        break;

    case 'f':
        type = LDSEG_JSON_FALSE;
        p = (end - p >= 5) ? p + 5 : NULL;
        break;

    default:
        type = LDSEG_JSON_NUMBER;

        while (p < end
               && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+'
                   || *p == '.' || *p == 'e' || *p == 'E'))
        {
            p++;
        }

        if (p == start) {
            p = NULL;
        }

        break;
    }

    if (p == NULL) {
        return NULL;
    }

    if (v != NULL) {
        v->p = start;
        v->len = (size_t) (p - start);
        v->type = type;
    }

    return p;
}


/* after the closing quote of the string at p, or NULL */

static const char *
ldseg_json_skip_string(const char *p, const char *end)
{
    const char  *q, *b;

    p++;

    for ( ;; ) {
        q = memchr(p, '"', (size_t) (end - p));
        if (q == NULL) {
            return NULL;
        }

        /* a quote after an odd number of backslashes is escaped */

        for (b = q; b > p && b[-1] == '\\'; b--) { /* void */ }

        if (((q - b) & 1) == 0) {
            return q + 1;
        }

        p = q + 1;
    }
}


int
ldseg_json_array_next(const char **pp, const char *end, ldseg_json_val_t *v)
{
    const char    *p;

    p = ldseg_json_space(*pp, end);

    if (p == end || *p == ']') {
        return 0;
    }

    /* '[' before the first element, ',' before the others */
    p = ldseg_json_space(p + 1, end);

    if (p < end && *p == ']') {
        return 0;
    }

    p = ldseg_json_skip(p, end, v);
    if (p == NULL) {
        return 0;
    }

    *pp = p;

    return 1;
}


int
ldseg_json_object_next(const char **pp, const char *end,
    ldseg_json_val_t *name, ldseg_json_val_t *value)
{
    const char    *p;

    p = ldseg_json_space(*pp, end);

    if (p == end || *p == '}') {
        return 0;
    }

    /* '{' before the first member, ',' before the others */
    p = ldseg_json_space(p + 1, end);

    if (p == end || *p != '"') {
        return 0;
    }

    p = ldseg_json_skip(p, end, name);
    if (p == NULL) {
        return 0;
    }

    p = ldseg_json_space(p, end);

    if (p == end || *p != ':') {
        return 0;
    }

    p = ldseg_json_skip(ldseg_json_space(p + 1, end), end, value);
    if (p == NULL) {
        return 0;
    }

    *pp = p;

    return 1;
}


size_t
ldseg_json_put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char) cp;
        return 1;
    }

    if (cp < 0x800) {
        dst[0] = (char) (0xc0 | (cp >> 6));
        dst[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        dst[0] = (char) (0xe0 | (cp >> 12));
        dst[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }

    dst[0] = (char) (0xf0 | (cp >> 18));
    dst[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}


size_t
ldseg_json_string_decode(const char *tok, size_t tok_len, char *dst)
{
    return ldseg_json_unescape(tok + 1, tok_len - 2, dst);
}


size_t
ldseg_json_unescape(const char *s, size_t len, char *dst)
{
    char        *d;
    unsigned     cp, lo;
    const char  *p, *end;

    p = s;
    end = s + len;
    d = dst;

    while (p < end) {

        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }

        p++;

        switch (*p) {
        case 'b': *d++ = '\b'; p++; break;
        case 'f': *d++ = '\f'; p++; break;
        case 'n': *d++ = '\n'; p++; break;
        case 'r': *d++ = '\r'; p++; break;
        case 't': *d++ = '\t'; p++; break;

        case 'u':
            (void) ldseg_json_hex(p + 1, &cp);
            p += 5;

            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p >= 6 && p[0] == '\\' && p[1] == 'u'
                    && ldseg_json_hex(p + 2, &lo) == 0
                    && lo >= 0xdc00 && lo <= 0xdfff)
                {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;

                } else {
                    cp = 0xfffd;
                }

            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                cp = 0xfffd;
            }

            d += ldseg_json_put_utf8(d, cp);
            break;

        default:
            *d++ = *p++;
            break;
        }
    }

    return (size_t) (d - dst);
}

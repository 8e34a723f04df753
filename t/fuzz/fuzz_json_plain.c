
/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the JSON scanner's string loop: from every start
 * offset of any bytes, read from a buffer of exactly their size (so ASan
 * sees an overread), the SSE2 version (src/ldseg_json_plain.h) stops at
 * the byte the portable version and a plain byte loop stop at.  The bytes
 * then go through the whole scanner (ldseg_json_validate()) as they are
 * and as the inside of one string, under ASan and UBSan, and its verdict
 * must be the one of a plain recursive RFC 8259 validator written here
 * without any of the scanner's shortcuts (with the scanner's depth bound
 * and its UTF-8 rules: RFC 3629, no surrogates or overlong forms).
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg.h>
#include <ldseg_json.h>
#include <ldseg_json_plain.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static const char *fuzz_plain_ref(const char *p, const char *end);
static const char *fuzz_ws(const char *p, const char *end);
static const char *fuzz_string(const char *p, const char *end);
static const char *fuzz_number(const char *p, const char *end);
static const char *fuzz_value(const char *p, const char *end,
    unsigned depth, unsigned max);
static int fuzz_validate(const char *p, size_t len, unsigned max);


static const char *
fuzz_plain_ref(const char *p, const char *end)
{
    unsigned char  c;

    for ( /* void */ ; p < end; p++) {
        c = (unsigned char) *p;

        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            break;
        }
    }

    return p;
}


static const char *
fuzz_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }

    return p;
}


static const char *
fuzz_string(const char *p, const char *end)
{
    size_t         i, n;
    unsigned char  c, lo, hi;

    for (p++; p < end; /* void */ ) {
        c = (unsigned char) *p;

        if (c == '"') {
            return p + 1;
        }

        if (c < 0x20) {
            return NULL;
        }

        if (c == '\\') {
            if (end - p < 2) {
                return NULL;
            }

            if (p[1] == 'u') {
                if (end - p < 6) {
                    return NULL;
                }

                for (i = 2; i < 6; i++) {
                    if (!((p[i] >= '0' && p[i] <= '9')
                          || (p[i] >= 'a' && p[i] <= 'f')
                          || (p[i] >= 'A' && p[i] <= 'F')))
                    {
                        return NULL;
                    }
                }

                p += 6;
                continue;
            }

            if (strchr("\"\\/bfnrt", p[1]) == NULL || p[1] == '\0') {
                return NULL;
            }

            p += 2;
            continue;
        }

        if (c < 0x80) {
            p++;
            continue;
        }

        /* RFC 3629's table */

        lo = 0x80;
        hi = 0xbf;

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c == 0xe0) {
            n = 2; lo = 0xa0;
        } else if (c == 0xed) {
            n = 2; hi = 0x9f;
        } else if (c >= 0xe1 && c <= 0xef) {
            n = 2;
        } else if (c == 0xf0) {
            n = 3; lo = 0x90;
        } else if (c == 0xf4) {
            n = 3; hi = 0x8f;
        } else if (c >= 0xf1 && c <= 0xf3) {
            n = 3;
        } else {
            return NULL;
        }

        if ((size_t) (end - p) <= n) {
            return NULL;
        }

        for (i = 1; i <= n; i++) {
            c = (unsigned char) p[i];

            if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xbf)) {
                return NULL;
            }
        }

        p += n + 1;
    }

    return NULL;
}


static const char *
fuzz_number(const char *p, const char *end)
{
    const char  *d;

    if (p < end && *p == '-') {
        p++;
    }

    if (p < end && *p == '0') {
        p++;

    } else {
        for (d = p; p < end && *p >= '0' && *p <= '9'; p++) { /* void */ }

        if (p == d) {
            return NULL;
        }
    }

    if (p < end && *p == '.') {
        for (d = ++p; p < end && *p >= '0' && *p <= '9'; p++) { /* void */ }

        if (p == d) {
            return NULL;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        for (d = p; p < end && *p >= '0' && *p <= '9'; p++) { /* void */ }

        if (p == d) {
            return NULL;
        }
    }

    return p;
}


static const char *
fuzz_value(const char *p, const char *end, unsigned depth, unsigned max)
{
    char  close;

    p = fuzz_ws(p, end);

    if (p == end) {
        return NULL;
    }

    switch (*p) {

    case '"':
        return fuzz_string(p, end);

    case '{':
    case '[':
        if (depth + 1 > max) {
            return NULL;
        }

        close = (*p == '{') ? '}' : ']';
        p = fuzz_ws(p + 1, end);

        if (p < end && *p == close) {
            return p + 1;
        }

        for ( ;; ) {
            if (close == '}') {
                if (p == end || *p != '"') {
                    return NULL;
                }

                p = fuzz_string(p, end);
                if (p == NULL) {
                    return NULL;
                }

                p = fuzz_ws(p, end);

                if (p == end || *p != ':') {
                    return NULL;
                }

                p++;
            }

            p = fuzz_value(p, end, depth + 1, max);
            if (p == NULL) {
                return NULL;
            }

            p = fuzz_ws(p, end);

            if (p == end) {
                return NULL;
            }

            if (*p == close) {
                return p + 1;
            }

            if (*p != ',') {
                return NULL;
            }

            p = fuzz_ws(p + 1, end);
        }

    case 't':
        return (end - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;

    case 'f':
        return (end - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;

    case 'n':
        return (end - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;

    default:
        return fuzz_number(p, end);
    }
}


static int
fuzz_validate(const char *p, size_t len, unsigned max)
{
    const char  *end;

    end = p + len;
    p = fuzz_value(p, end, 0, max);

    return p != NULL && fuzz_ws(p, end) == end;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        *s;
    size_t       off;
    const char  *end, *ref;

    /* every offset is scanned: quadratic, so kept short */

    if (size > 1024) {
        return 0;
    }

    s = malloc(size + 2);
    if (s == NULL) {
        return 0;
    }

    /* the bytes alone, at the start of the allocation */

    memcpy(s, data, size);
    end = s + size;

    for (off = 0; off <= size; off++) {
        ref = fuzz_plain_ref(s + off, end);

        if (ldseg_json_plain_scalar(s + off, end) != ref
            || ldseg_json_plain(s + off, end) != ref)
        {
            abort();
        }

#if (LDSEG_JSON_SSE2)
        if (ldseg_json_plain_sse2(s + off, end) != ref) {
            abort();
        }
#endif
    }

    if ((ldseg_json_validate(s, size, 8) == LDSEG_OK)
        != fuzz_validate(s, size, 8))
    {
        abort();
    }

    /* the same bytes as the inside of a string */

    s[0] = '"';
    memcpy(s + 1, data, size);
    s[size + 1] = '"';

    if ((ldseg_json_validate(s, size + 2, 8) == LDSEG_OK)
        != fuzz_validate(s, size + 2, 8))
    {
        abort();
    }

    free(s);

    return 0;
}

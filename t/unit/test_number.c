
/*
 * Copyright (C) ldseg authors
 *
 * JavaScript number formatting and coercion (expected values from node).
 */


#include <math.h>
#include <stdint.h>

#include <ldseg_number.h>

#include "unit.h"


typedef struct {
    const char                   *token;
    const char                   *js;        /* String(Number(token)) */
} test_format_t;


typedef struct {
    const char                   *s;
    int                           valid;
    double                        v;
} test_coerce_t;


static const test_format_t  test_formats[] = {
    { "0", "0" },
    { "-0", "0" },
    { "1.0", "1" },
    { "42", "42" },
    { "-1.5", "-1.5" },
    { "0.1", "0.1" },
    { "9007199254740993", "9007199254740992" },
    { "1e21", "1e+21" },
    { "1e20", "100000000000000000000" },
    { "123456789012345680000", "123456789012345680000" },
    { "1.5e-7", "1.5e-7" },
    { "0.000001", "0.000001" },
    { "1e-7", "1e-7" },
    { "123e-20", "1.23e-18" },
    { "5e-324", "5e-324" },
    { "1.7976931348623157e308", "1.7976931348623157e+308" },
    { "1e400", "Infinity" },
    { "-1e400", "-Infinity" },
    { "98765432109876543210", "98765432109876540000" },
    { "0.30000000000000004", "0.30000000000000004" },
    { "100", "100" },
    { "2.50", "2.5" },
    { "1E5", "100000" },
    { "0.0000000000000000000000000000000000000000000000000001",
      "1e-52" },
    { "4.9406564584124654e-324", "5e-324" },
    { "2.4703282292062328e-324", "5e-324" },
    { "2.4703282292062327e-324", "0" },
    { "9007199254740992.5000000000000000000000000000000000000001",
      "9007199254740992" },
    { "9007199254740993.0000000000000000000000000000000000000001",
      "9007199254740994" },
    { "123.456", "123.456" }
};


static const test_coerce_t  test_coerce[] = {
    { "12.50", 1, 12.5 },
    { "-3", 1, -3 },
    { "1e3", 1, 1000 },
    { " 42 ", 1, 42 },
    { "\n12\t", 1, 12 },
    { "\xc2\xa0" "12\xe2\x80\xa8", 1, 12 },
    { "\xef\xbb\xbf" "7", 1, 7 },
    { "0x1A", 1, 26 },
    { "0X1a", 1, 26 },
    { "0b101", 1, 5 },
    { "0o17", 1, 15 },
    { ".5", 1, 0.5 },
    { "5.", 1, 5 },
    { "+5", 1, 5 },
    { "", 1, 0 },
    { "  ", 1, 0 },
    { "-0", 1, 0 },
    { "Infinity", 1, HUGE_VAL },
    { "-Infinity", 1, -HUGE_VAL },
    { "1_000", 0, 0 },
    { "12abc", 0, 0 },
    { "NaN", 0, 0 },
    { "-0x10", 0, 0 },
    { "1e", 0, 0 },
    { "0x", 0, 0 },
    { ".", 0, 0 },
    { "+", 0, 0 },
    { "infinity", 0, 0 },
    { "1 2", 0, 0 }
};


static int test_random(void);
static size_t test_reference(double v, char *dst);
static int test_shortest(void);


/*
 * Random doubles at every precision: ldseg_number_parse() agrees with
 * strtod(), and ldseg_number_format() round-trips.
 */

static int
test_random(void)
{
    int       prec;
    char      tok[64], out[LDSEG_NUMBER_LEN + 1];
    double    d, v;
    size_t    i, len;
    uint64_t  bits, x;

    x = 88172645463325252ULL;

    for (i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;

        bits = x;

        if ((i & 1) == 0) {
            /* keep to "ordinary" magnitudes half of the time */
            bits = (bits & 0x800fffffffffffffULL)
                   | ((uint64_t) (1023 - 80 + (x >> 52) % 160) << 52);
        }

        memcpy(&d, &bits, sizeof(double));

        if (d != d || isinf(d)) {
            continue;
        }

        prec = (int) (x % 17) + 1;
        snprintf(tok, sizeof(tok), "%.*e", prec - 1, d);

        if (ldseg_number_parse(tok, strlen(tok)) != strtod(tok, NULL)) {
            unit_diag("parse %s", tok);
            return 0;
        }

        len = ldseg_number_format(d, out);
        out[len] = '\0';
        v = strtod(out, NULL);

        if (v != d && !(d == 0 && v == 0)) {
            unit_diag("format %.17g as %s", d, out);
            return 0;
        }
    }

    return 1;
}


/*
 * String(v) the slow way, for comparison: the fewest printf() digits that
 * read back as v, laid out as JavaScript does.
 */

static size_t
test_reference(double v, char *dst)
{
    int     prec, exp, n, k, i;
    char    buf[40], digits[20], *d;

    d = dst;

    if (v < 0) {
        *d++ = '-';
        v = -v;
    }

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);

        if (strtod(buf, NULL) == v) {
            break;
        }
    }

    snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);

    k = 0;

    for (i = 0; buf[i] != 'e'; i++) {
        if (buf[i] != '.') {
            digits[k++] = buf[i];
        }
    }

    while (k > 1 && digits[k - 1] == '0') {
        k--;
    }

    exp = atoi(&buf[i + 1]);
    n = exp + 1;

    if (k <= n && n <= 21) {
        memcpy(d, digits, (size_t) k);
        d += k;

        for (i = k; i < n; i++) {
            *d++ = '0';
        }

    } else if (0 < n && n <= 21) {
        memcpy(d, digits, (size_t) n);
        d += n;
        *d++ = '.';
        memcpy(d, digits + n, (size_t) (k - n));
        d += k - n;

    } else if (-6 < n && n <= 0) {
        *d++ = '0';
        *d++ = '.';

        for (i = 0; i < -n; i++) {
            *d++ = '0';
        }

        memcpy(d, digits, (size_t) k);
        d += k;

    } else {
        *d++ = digits[0];

        if (k > 1) {
            *d++ = '.';
            memcpy(d, digits + 1, (size_t) (k - 1));
            d += k - 1;
        }

        d += sprintf(d, "e%c%d", n - 1 < 0 ? '-' : '+',
                     n - 1 < 0 ? 1 - n : n - 1);
    }

    return (size_t) (d - dst);
}


/*
 * Ryu against the slow reference over random bit patterns, subnormals,
 * powers of two and 17-digit decimals: the output reads back as the same
 * double, is never longer, and is the same text whenever it is as long
 * (it may be shorter: at a power of two the reference only tries the
 * nearest decimal of each length, JavaScript takes any that reads back).
 */

static int
test_shortest(void)
{
    char      out[LDSEG_NUMBER_LEN + 1], ref[64];
    double    d;
    size_t    i, len, rlen;
    uint64_t  bits, x;

    x = 0x9e3779b97f4a7c15ULL;

    for (i = 0; i < 300000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;

        switch (i % 4) {
        case 0:
            bits = x;
            break;
        case 1:
            /* subnormals and the smallest normals */
            bits = x & 0x801fffffffffffffULL;
            break;
        case 2:
            /* powers of two, and their neighbours */
            bits = (x & 0xfff0000000000000ULL) | (x >> 60 & 1);
            break;
        default:
            bits = (x & 0x800fffffffffffffULL)
                   | ((uint64_t) (1023 - 60 + (x >> 52) % 120) << 52);
            break;
        }

        memcpy(&d, &bits, sizeof(double));

        if (d != d || isinf(d) || d == 0) {
            continue;
        }

        len = ldseg_number_format(d, out);
        out[len] = '\0';
        rlen = test_reference(d, ref);
        ref[rlen] = '\0';

        if (strtod(out, NULL) != d || len > rlen
            || (len == rlen && strcmp(out, ref) != 0))
        {
            unit_diag("%.17g: %s, reference %s", d, out, ref);
            return 0;
        }
    }

    return 1;
}


int
main(void)
{
    char    buf[LDSEG_NUMBER_LEN];
    double  v;
    size_t  i, len;

    for (i = 0; i < sizeof(test_formats) / sizeof(test_formats[0]); i++) {
        v = ldseg_number_parse(test_formats[i].token,
                               strlen(test_formats[i].token));
        len = ldseg_number_format(v, buf);

        ok(len == strlen(test_formats[i].js)
           && memcmp(buf, test_formats[i].js, len) == 0,
           "String(%s) is %s (got %.*s)", test_formats[i].token,
           test_formats[i].js, (int) len, buf);
    }

    for (i = 0; i < sizeof(test_coerce) / sizeof(test_coerce[0]); i++) {
        v = -1;

        if (test_coerce[i].valid) {
            ok(ldseg_number_from_string(test_coerce[i].s,
                                        strlen(test_coerce[i].s), &v)
               == LDSEG_OK && v == test_coerce[i].v,
               "coerce row %zu: Number() is %g", i, test_coerce[i].v);

        } else {
            ok(ldseg_number_from_string(test_coerce[i].s,
                                        strlen(test_coerce[i].s), &v)
               == LDSEG_EINVAL,
               "coerce row %zu: Number() is NaN", i);
        }
    }

    ok(test_random(), "200000 random doubles parse like strtod and "
       "format round-trip");
    ok(test_shortest(), "300000 doubles format as the shortest digits");

    return done();
}


/*
 * Copyright (C) ldseg authors
 *
 * JavaScript number semantics.  Decimal text is normalized to at most
 * LDSEG_NUMBER_DIGITS significant digits plus a sticky digit before
 * strtod(), which keeps the rounding correct for tokens of any length
 * without allocating.  snprintf() and strtod() run in the "C" locale, the
 * one nginx keeps.
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg_number.h>


/* 767 significant digits decide the rounding of any double */
#define LDSEG_NUMBER_DIGITS  780
#define LDSEG_NUMBER_EXP_MAX 100000

/* integers below 2^53 and powers of ten up to 1e22 are exact doubles */
#define LDSEG_NUMBER_FAST_DIGITS  15
#define LDSEG_NUMBER_FAST_EXP     22


static const char *ldseg_number_decimal(const char *p, const char *end,
    double *v);
static const char *ldseg_number_trim_start(const char *p, const char *end);
static const char *ldseg_number_trim_end(const char *start, const char *p);
static size_t ldseg_number_space(const char *p, const char *end);
static ldseg_rc_t ldseg_number_radix(const char *p, const char *end,
    unsigned radix, double *v);


static const double  ldseg_number_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};


/*
 * Reads a JS StrDecimalLiteral without "Infinity":
 * [+-] (digits [. [digits]] | . digits) [(e|E) [+-] digits].
 * Returns the end of what it read, or NULL if there is no number at p.
 */

static const char *
ldseg_number_decimal(const char *p, const char *end, double *v)
{
    int       neg, eneg, any, sticky;
    char      buf[LDSEG_NUMBER_DIGITS + 32];
    long      exp, e;
    size_t    nd, i;
    uint64_t  mant;

    neg = 0;
    nd = 0;
    exp = 0;
    any = 0;
    sticky = 0;

    if (p < end && (*p == '+' || *p == '-')) {
        neg = (*p == '-');
        p++;
    }

    /* buf gets the significant digits, exp the power of ten to apply */

    while (p < end && *p >= '0' && *p <= '9') {
        any = 1;

        if (nd == 0 && *p == '0') {
            /* a leading zero */

        } else if (nd < LDSEG_NUMBER_DIGITS) {
            buf[nd++] = *p;

        } else {
            sticky |= (*p != '0');
            exp++;
        }

        p++;
    }

    if (p < end && *p == '.') {
        p++;

        while (p < end && *p >= '0' && *p <= '9') {
            any = 1;

            if (nd == 0 && *p == '0') {
                exp--;

            } else if (nd < LDSEG_NUMBER_DIGITS) {
                buf[nd++] = *p;
                exp--;

            } else {
                sticky |= (*p != '0');
            }

            p++;
        }
    }

    if (!any) {
        return NULL;
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        const char  *q;

        q = p + 1;
        eneg = 0;
        e = 0;

        if (q < end && (*q == '+' || *q == '-')) {
            eneg = (*q == '-');
            q++;
        }

        if (q < end && *q >= '0' && *q <= '9') {
            while (q < end && *q >= '0' && *q <= '9') {
                if (e < LDSEG_NUMBER_EXP_MAX) {
                    e = e * 10 + (*q - '0');
                }

                q++;
            }

            exp += eneg ? -e : e;
            p = q;
        }
    }

    if (nd == 0) {
        *v = neg ? -0.0 : 0.0;
        return p;
    }

    /*
     * Clinger's fast path: both operands exact, one rounding, so the
     * result is correctly rounded without strtod().
     */

    if (nd <= LDSEG_NUMBER_FAST_DIGITS && !sticky
        && exp >= -LDSEG_NUMBER_FAST_EXP && exp <= LDSEG_NUMBER_FAST_EXP)
    {
        mant = 0;

        for (i = 0; i < nd; i++) {
            mant = mant * 10 + (uint64_t) (buf[i] - '0');
        }

        *v = (exp < 0) ? (double) mant / ldseg_number_pow10[-exp]
                       : (double) mant * ldseg_number_pow10[exp];

        if (neg) {
            *v = -*v;
        }

        return p;
    }

    /*
     * Dropped digits only matter as "something non-zero follows": a sticky
     * '1' keeps the value off every rounding midpoint, which all have fewer
     * significant digits than LDSEG_NUMBER_DIGITS.
     */

    if (sticky) {
        buf[nd++] = '1';
        exp--;
    }

    snprintf(buf + nd, sizeof(buf) - nd, "e%ld", exp);

    *v = strtod(buf, NULL);

    if (neg) {
        *v = -*v;
    }

    return p;
}


double
ldseg_number_parse(const char *p, size_t len)
{
    double  v;

    v = 0;

    (void) ldseg_number_decimal(p, p + len, &v);

    return v;
}


/* length of the JS white space or line terminator at p, or 0 */

static size_t
ldseg_number_space(const char *p, const char *end)
{
    size_t          n;
    unsigned char   c0, c1, c2;

    n = (size_t) (end - p);
    c0 = (unsigned char) p[0];

    if (c0 == ' ' || (c0 >= '\t' && c0 <= '\r')) {
        return 1;
    }

    if (n >= 2 && c0 == 0xc2 && (unsigned char) p[1] == 0xa0) {
        return 2;
    }

    if (n < 3) {
        return 0;
    }

    c1 = (unsigned char) p[1];
    c2 = (unsigned char) p[2];

    if ((c0 == 0xe1 && c1 == 0x9a && c2 == 0x80)
        || (c0 == 0xe2 && c1 == 0x80
            && (c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
        || (c0 == 0xe2 && c1 == 0x81 && c2 == 0x9f)
        || (c0 == 0xe3 && c1 == 0x80 && c2 == 0x80)
        || (c0 == 0xef && c1 == 0xbb && c2 == 0xbf))
    {
        return 3;
    }

    return 0;
}


static const char *
ldseg_number_trim_start(const char *p, const char *end)
{
    size_t  n;

    while (p < end) {
        n = ldseg_number_space(p, end);
        if (n == 0) {
            break;
        }

        p += n;
    }

    return p;
}


static const char *
ldseg_number_trim_end(const char *start, const char *p)
{
    for ( ;; ) {
        if (p > start && ldseg_number_space(p - 1, p) == 1) {
            p -= 1;

        } else if (p - start >= 2 && ldseg_number_space(p - 2, p) == 2) {
            p -= 2;

        } else if (p - start >= 3 && ldseg_number_space(p - 3, p) == 3) {
            p -= 3;

        } else {
            return p;
        }
    }
}


static ldseg_rc_t
ldseg_number_radix(const char *p, const char *end, unsigned radix, double *v)
{
    unsigned  d;

    if (p == end) {
        return LDSEG_EINVAL;
    }

    *v = 0;

    while (p < end) {
        if (*p >= '0' && *p <= '9') {
            d = (unsigned) (*p - '0');

        } else if (*p >= 'a' && *p <= 'f') {
            d = (unsigned) (*p - 'a' + 10);

        } else if (*p >= 'A' && *p <= 'F') {
            d = (unsigned) (*p - 'A' + 10);

        } else {
            return LDSEG_EINVAL;
        }

        if (d >= radix) {
            return LDSEG_EINVAL;
        }

        *v = *v * radix + d;
        p++;
    }

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_number_from_string(const char *p, size_t len, double *v)
{
    int          neg;
    const char  *end, *q;

    end = p + len;

    p = ldseg_number_trim_start(p, end);
    end = ldseg_number_trim_end(p, end);

    if (p == end) {
        *v = 0;
        return LDSEG_OK;
    }

    if (end - p > 2 && p[0] == '0') {
        switch (p[1]) {
        case 'x': case 'X':
            return ldseg_number_radix(p + 2, end, 16, v);
        case 'o': case 'O':
            return ldseg_number_radix(p + 2, end, 8, v);
        case 'b': case 'B':
            return ldseg_number_radix(p + 2, end, 2, v);
        default:
            break;
        }
    }

    q = p;
    neg = 0;

    if (*q == '+' || *q == '-') {
        neg = (*q == '-');
        q++;
    }

    if (end - q == 8 && memcmp(q, "Infinity", 8) == 0) {
        *v = neg ? -HUGE_VAL : HUGE_VAL;
        return LDSEG_OK;
    }

    q = ldseg_number_decimal(p, end, v);

    if (q != end) {
        return LDSEG_EINVAL;
    }

    return LDSEG_OK;
}


size_t
ldseg_number_format(double v, char *dst)
{
    int     prec, exp, n, k, i;
    char    buf[40], digits[20], *d;
    size_t  len;

    if (v != v) {
        memcpy(dst, "NaN", 3);
        return 3;
    }

    if (v == 0) {
        dst[0] = '0';
        return 1;
    }

    d = dst;

    if (v < 0) {
        *d++ = '-';
        v = -v;
    }

    if (v == HUGE_VAL) {
        memcpy(d, "Infinity", 8);
        return (size_t) (d - dst) + 8;
    }

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);

        if (strtod(buf, NULL) == v) {
            break;
        }
    }

    snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);

    /* buf is "d[.ddd]e[+-]xx": collect the digits and the exponent */

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

    /* JS: the value is 0.d1d2...dk * 10^n */

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

        len = (size_t) snprintf(buf, sizeof(buf), "e%c%d",
                                n - 1 < 0 ? '-' : '+',
                                n - 1 < 0 ? 1 - n : n - 1);
        memcpy(d, buf, len);
        d += len;
    }

    return (size_t) (d - dst);
}

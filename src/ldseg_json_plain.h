
/*
 * Copyright (C) ldseg authors
 *
 * The inner loop of the JSON scanner's strings: the first byte at or after
 * p that is not plain ASCII inside a string ('"', '\\', a control
 * character or a byte >= 0x80), or end.  Never reads at or past end.
 *
 * Two versions of the same function: a portable one (eight bytes at a time
 * in a 64-bit word, then byte by byte), and with SSE2 (baseline on x86-64)
 * sixteen bytes at a time, the way simdjson's first stage finds quotes and
 * backslashes.  ldseg_json_plain() is the one the scanner uses; both are
 * static inline so that the unit test and the fuzz target compare them on
 * the same bytes.  LDSEG_JSON_NO_SIMD builds the portable one only.
 */


#ifndef _LDSEG_JSON_PLAIN_H_INCLUDED_
#define _LDSEG_JSON_PLAIN_H_INCLUDED_


#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) && defined(__GNUC__) && !defined(LDSEG_JSON_NO_SIMD)
#define LDSEG_JSON_SSE2  1
#include <emmintrin.h>
#endif


/* a byte equal to b, or any byte below b, in a 64-bit word */
#define LDSEG_ONES   0x0101010101010101ULL
#define LDSEG_HIGHS  0x8080808080808080ULL
#define ldseg_has_zero(v)  (((v) - LDSEG_ONES) & ~(v) & LDSEG_HIGHS)
#define ldseg_has_less(v, b)  (((v) - LDSEG_ONES * (b)) & ~(v) & LDSEG_HIGHS)


static inline const char *ldseg_json_plain_scalar(const char *p,
    const char *end);
#if (LDSEG_JSON_SSE2)
static inline int ldseg_json_plain_mask16(const char *p);
static inline const char *ldseg_json_plain_sse2(const char *p,
    const char *end);
#endif
static inline const char *ldseg_json_plain(const char *p, const char *end);


static inline const char *
ldseg_json_plain_scalar(const char *p, const char *end)
{
    uint64_t       v;
    unsigned char  c;

    /* a false alarm in a word only falls back to the byte loop */

    while (end - p >= 8) {
        memcpy(&v, p, 8);

        if ((v & LDSEG_HIGHS)
            || ldseg_has_less(v, 0x20)
            || ldseg_has_zero(v ^ (LDSEG_ONES * '"'))
            || ldseg_has_zero(v ^ (LDSEG_ONES * '\\')))
        {
            break;
        }

        p += 8;
    }

    while (p < end) {
        c = (unsigned char) *p;

        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            break;
        }

        p++;
    }

    return p;
}


#if (LDSEG_JSON_SSE2)

/* the bits of the sixteen bytes at p that are not plain (p + 16 <= end) */

static inline int
ldseg_json_plain_mask16(const char *p)
{
    __m128i  v;

    v = _mm_loadu_si128((const __m128i *) (const void *) p);

    /* signed: below 0x20 are the control bytes and those >= 0x80 */

    return _mm_movemask_epi8(_mm_or_si128(
                                 _mm_or_si128(
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                 _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));
}


static inline const char *
ldseg_json_plain_sse2(const char *p, const char *end)
{
    int  m;

    while (end - p >= 16) {
        m = ldseg_json_plain_mask16(p);

        if (m != 0) {
            return p + __builtin_ctz((unsigned) m);
        }

        p += 16;
    }

    return ldseg_json_plain_scalar(p, end);
}

#endif


static inline const char *
ldseg_json_plain(const char *p, const char *end)
{
#if (LDSEG_JSON_SSE2)
    return ldseg_json_plain_sse2(p, end);
#else
    return ldseg_json_plain_scalar(p, end);
#endif
}


#endif /* _LDSEG_JSON_PLAIN_H_INCLUDED_ */

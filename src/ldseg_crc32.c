
/*
 * Copyright (C) ldseg authors
 *
 * CRC-32 of gzip.  The fast version folds the buffer with carry-less
 * multiplications, as in V. Gopal, E. Ozturk et al., "Fast CRC
 * Computation for Generic Polynomials Using PCLMULQDQ Instruction"
 * (Intel, 2009): four 128-bit lanes advance 64 bytes at a time, are
 * folded into one, the one lane is reduced to 64 bits and a Barrett
 * reduction gives the 32-bit remainder.
 *
 * In the reflected bit order of gzip's CRC, a 128-bit lane loaded from
 * memory holds the polynomial L(x) * x^64 + H(x), L its low quadword (the
 * earlier bytes).  Moving it e bits further down the message multiplies it
 * by x^e, and modulo P(x) that is L * (x^(e + 64) mod P) + H * (x^e mod P):
 * two carry-less 64x32-bit products which fit a lane again.  The constants
 * are k(n) = (x^n mod P) bit-reflected on 32 bits and shifted left by one,
 * the shift lining the 95-bit products up with the lanes of the data.
 */


#include <zlib.h>

#include <ldseg_crc32.h>

#if (LDSEG_CRC32_CLMUL)
#include <emmintrin.h>
#include <smmintrin.h>
#include <wmmintrin.h>
#endif


/* zlib's crc32() takes an unsigned int length */
#define LDSEG_CRC32_ZLIB_MAX  (1U << 30)

/* shorter buffers are quicker through zlib's tables */
#define LDSEG_CRC32_CLMUL_MIN  64

#if (LDSEG_CRC32_CLMUL)

#define LDSEG_CRC32_TARGET  __attribute__((target("pclmul,sse4.1")))

/* folding constants, k(n) above */
#define LDSEG_CRC32_K544  0x154442bd4ULL   /* 4 lanes on: L */
#define LDSEG_CRC32_K480  0x1c6e41596ULL   /* 4 lanes on: H */
#define LDSEG_CRC32_K160  0x1751997d0ULL   /* 1 lane on: L */
#define LDSEG_CRC32_K96   0x0ccaa009eULL   /* 1 lane on: H; 128 to 96 bits */
#define LDSEG_CRC32_K64   0x163cd6124ULL   /* 96 to 64 bits */

/* Barrett: floor(x^64 / P) and P, both bit-reflected on 33 bits */
#define LDSEG_CRC32_MU    0x1f7011641ULL
#define LDSEG_CRC32_POLY  0x1db710641ULL

#endif


#if (LDSEG_CRC32_CLMUL)
static inline __m128i ldseg_crc32_fold(__m128i x, __m128i k, __m128i next)
    LDSEG_CRC32_TARGET;
static inline __m128i ldseg_crc32_load(const unsigned char *p)
    LDSEG_CRC32_TARGET;
#endif


uint32_t
ldseg_crc32(uint32_t crc, const void *p, size_t len)
{
#if (LDSEG_CRC32_CLMUL)

    if (len >= LDSEG_CRC32_CLMUL_MIN && p != NULL
        && ldseg_crc32_clmul_usable())
    {
        return ldseg_crc32_clmul(crc, p, len);
    }

#endif

    return ldseg_crc32_portable(crc, p, len);
}


uint32_t
ldseg_crc32_portable(uint32_t crc, const void *p, size_t len)
{
    const unsigned char  *s;

    s = p;

    while (len > LDSEG_CRC32_ZLIB_MAX) {
        crc = (uint32_t) crc32(crc, s, LDSEG_CRC32_ZLIB_MAX);
        s += LDSEG_CRC32_ZLIB_MAX;
        len -= LDSEG_CRC32_ZLIB_MAX;
    }

    return (uint32_t) crc32(crc, s, (uInt) len);
}


#if (LDSEG_CRC32_CLMUL)

int
ldseg_crc32_clmul_usable(void)
{
    return __builtin_cpu_supports("pclmul")
           && __builtin_cpu_supports("sse4.1");
}


uint32_t LDSEG_CRC32_TARGET
ldseg_crc32_clmul(uint32_t crc, const void *p, size_t len)
{
    size_t                n;
    __m128i               x0, x1, x2, x3, k, low32;
    const unsigned char  *s;

    if (len < LDSEG_CRC32_CLMUL_MIN || p == NULL) {
        return ldseg_crc32_portable(crc, p, len);
    }

    s = p;
    n = len & ~(size_t) 15;

    /*
     * The register's starting value (zlib inverts it) goes into the first
     * 32 bits of the message, which then has a CRC of 0 before it.
     */

    x0 = _mm_xor_si128(ldseg_crc32_load(s), _mm_cvtsi32_si128((int) ~crc));
    x1 = ldseg_crc32_load(s + 16);
    x2 = ldseg_crc32_load(s + 32);
    x3 = ldseg_crc32_load(s + 48);

    s += 64;
    n -= 64;

    /* four lanes, each moved 512 bits on and added to the next block */

    k = _mm_set_epi64x(LDSEG_CRC32_K480, LDSEG_CRC32_K544);

    while (n >= 64) {
        x0 = ldseg_crc32_fold(x0, k, ldseg_crc32_load(s));
        x1 = ldseg_crc32_fold(x1, k, ldseg_crc32_load(s + 16));
        x2 = ldseg_crc32_fold(x2, k, ldseg_crc32_load(s + 32));
        x3 = ldseg_crc32_fold(x3, k, ldseg_crc32_load(s + 48));

        s += 64;
        n -= 64;
    }

    /* into one lane, then the remaining 16-byte blocks, 128 bits on */

    k = _mm_set_epi64x(LDSEG_CRC32_K96, LDSEG_CRC32_K160);

    x0 = ldseg_crc32_fold(x0, k, x1);
    x0 = ldseg_crc32_fold(x0, k, x2);
    x0 = ldseg_crc32_fold(x0, k, x3);

    while (n >= 16) {
        x0 = ldseg_crc32_fold(x0, k, ldseg_crc32_load(s));

        s += 16;
        n -= 16;
    }

    /*
     * The lane times x^32 is the remainder wanted.  128 to 96 bits: L * x^96
     * added to H; what is left is the lane times x^64, a multiple of x^32
     * in bits 0-95, that is the lane times x^32 on 96 bits.
     */

    x1 = _mm_clmulepi64_si128(x0, k, 0x10);
    x0 = _mm_xor_si128(_mm_srli_si128(x0, 8), x1);

    /* 96 to 64 bits: the first 32 bits times x^64 added to the other 64 */

    low32 = _mm_set_epi32(0, 0, 0, -1);

    k = _mm_set_epi64x(0, LDSEG_CRC32_K64);
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x0, low32), k, 0x00);
    x0 = _mm_xor_si128(_mm_srli_si128(x0, 4), x1);

    /*
     * Barrett: the quotient q is the high 32 bits of (the first 32 bits
     * times mu), the remainder the 64 bits plus q * P, in bits 32-63.
     */

    k = _mm_set_epi64x(LDSEG_CRC32_MU, LDSEG_CRC32_POLY);
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x0, low32), k, 0x10);
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x00);
    x0 = _mm_xor_si128(x0, x1);

    crc = ~(uint32_t) _mm_extract_epi32(x0, 1);

    /* the last len % 16 bytes */

    return ldseg_crc32_portable(crc, s, len & 15);
}


static inline __m128i LDSEG_CRC32_TARGET
ldseg_crc32_fold(__m128i x, __m128i k, __m128i next)
{
    __m128i  lo, hi;

    lo = _mm_clmulepi64_si128(x, k, 0x00);
    hi = _mm_clmulepi64_si128(x, k, 0x11);

    return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}


static inline __m128i LDSEG_CRC32_TARGET
ldseg_crc32_load(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *) p);
}

#endif


/*
 * Copyright (C) ldseg authors
 *
 * CRC-32 (src/ldseg_crc32.c) against zlib's crc32(): the dispatcher, the
 * portable version and, when the CPU has PCLMULQDQ and SSE4.1, the folding
 * version each called directly, on random bytes of every length from 0 to
 * 4096 at every offset from 0 to 15 from a 16-byte boundary, with a random
 * CRC to continue from, and in chained pieces.  Each buffer is allocated to
 * end exactly where the bytes end, so that a read past them shows under
 * AddressSanitizer.
 */


#include "unit.h"

#include <zlib.h>

#include <ldseg_crc32.h>


#define TEST_MAX_LEN    4096
#define TEST_OFFSETS    16
#define TEST_CHAINS     3000
#define TEST_CHAIN_LEN  9000
#define TEST_BIG_LEN    ((1 << 20) + 13)


typedef uint32_t (*test_crc_pt)(uint32_t crc, const void *p, size_t len);

typedef struct {
    const char                   *name;
    test_crc_pt                   crc;
} test_path_t;


static unsigned test_lengths(test_path_t *path, const unsigned char *src);
static unsigned test_chains(test_path_t *paths, size_t npaths,
    const unsigned char *src);
static unsigned test_fill(test_path_t *path, int byte);


static uint32_t  test_seed = 2463534242u;


/* the number of (length, offset) pairs where the path and zlib disagree */

static unsigned
test_lengths(test_path_t *path, const unsigned char *src)
{
    size_t          len, off;
    uint32_t        crc;
    unsigned        bad;
    unsigned char  *buf;

    bad = 0;

    for (len = 0; len <= TEST_MAX_LEN; len++) {
        for (off = 0; off < TEST_OFFSETS; off++) {

            /* malloc() returns 16-byte aligned blocks: the bytes at off */

            buf = malloc(off + len == 0 ? 1 : off + len);
            if (buf == NULL) {
                return bad + 1;
            }

            memcpy(buf + off, src + (len * 7 + off) % 512, len);

            crc = (off & 1) ? unit_random(&test_seed) : 0;

            if (path->crc(crc, buf + off, len)
                != (uint32_t) crc32(crc, buf + off, (uInt) len))
            {
                if (bad < 5) {
                    unit_diag("%s: length %zu, offset %zu, crc 0x%08x",
                              path->name, len, off, crc);
                }

                bad++;
            }

            free(buf);
        }
    }

    return bad;
}


/*
 * Random bytes cut in up to 8 random pieces, each in its own exact-size
 * allocation and given to a random path: the chained CRC is zlib's CRC of
 * the whole.  The number of chains that disagree.
 */

static unsigned
test_chains(test_path_t *paths, size_t npaths, const unsigned char *src)
{
    size_t          len, at, n, off, i, pieces;
    uint32_t        crc, want;
    unsigned        bad, chain;
    unsigned char  *buf;

    bad = 0;

    for (chain = 0; chain < TEST_CHAINS; chain++) {
        len = unit_random(&test_seed) % (TEST_CHAIN_LEN + 1);
        off = unit_random(&test_seed) % 512;
        pieces = 1 + unit_random(&test_seed) % 8;

        crc = unit_random(&test_seed);
        want = (uint32_t) crc32(crc, src + off, (uInt) len);

        for (at = 0, i = 0; i < pieces; i++) {
            n = (i == pieces - 1) ? len - at
                                  : unit_random(&test_seed) % (len - at + 1);

            buf = malloc(n == 0 ? 1 : n);
            if (buf == NULL) {
                return bad + 1;
            }

            memcpy(buf, src + off + at, n);
            crc = paths[unit_random(&test_seed) % npaths].crc(crc, buf, n);
            free(buf);

            at += n;
        }

        if (crc != want) {
            if (bad < 5) {
                unit_diag("chain %u: %zu bytes in %zu pieces", chain, len,
                          pieces);
            }

            bad++;
        }
    }

    return bad;
}


/* 0 to 1024 equal bytes, from CRCs 0 and 0xffffffff: the disagreements */

static unsigned
test_fill(test_path_t *path, int byte)
{
    size_t          len;
    unsigned        bad;
    unsigned char  *buf;

    bad = 0;

    for (len = 0; len <= 1024; len++) {
        buf = malloc(len == 0 ? 1 : len);
        if (buf == NULL) {
            return bad + 1;
        }

        memset(buf, byte, len);

        if (path->crc(0, buf, len) != (uint32_t) crc32(0, buf, (uInt) len)
            || path->crc(0xffffffff, buf, len)
               != (uint32_t) crc32(0xffffffff, buf, (uInt) len))
        {
            bad++;
        }

        free(buf);
    }

    return bad;
}



int
main(void)
{
    size_t          i, npaths;
    uint32_t        crc;
    unsigned        bad;
    test_path_t     paths[3], *path;
    unsigned char  *src, *big;

    npaths = 0;

    paths[npaths].name = "ldseg_crc32";
    paths[npaths++].crc = ldseg_crc32;

    paths[npaths].name = "portable";
    paths[npaths++].crc = ldseg_crc32_portable;

#if (LDSEG_CRC32_CLMUL)

    if (ldseg_crc32_clmul_usable()) {
        unit_diag("PCLMULQDQ and SSE4.1: the folding version is tested");

        paths[npaths].name = "clmul";
        paths[npaths++].crc = ldseg_crc32_clmul;

    } else {
        unit_diag("no PCLMULQDQ or SSE4.1 on this CPU: folding not tested");
    }

#else
    unit_diag("not x86-64: the portable version only");
#endif

    src = malloc(TEST_CHAIN_LEN + 512);
    big = malloc(TEST_BIG_LEN);

    if (src == NULL || big == NULL) {
        unit_ok(0, "malloc");
        return unit_done();
    }

    for (i = 0; i < TEST_CHAIN_LEN + 512; i++) {
        src[i] = (unsigned char) unit_random(&test_seed);
    }

    for (i = 0; i < TEST_BIG_LEN; i++) {
        big[i] = (unsigned char) (unit_random(&test_seed) >> 8);
    }

    for (i = 0; i < npaths; i++) {
        path = &paths[i];

        /* the check value of CRC-32/ISO-HDLC */

        crc = path->crc(0, "123456789", 9);
        unit_ok(crc == 0xcbf43926, "%s: \"123456789\" 0x%08x", path->name,
                crc);

        unit_ok(path->crc(0x12345678, "x", 0) == 0x12345678
                && path->crc(0, "x", 0) == 0,
                "%s: 0 bytes leave the CRC as it is", path->name);

        unit_ok(path->crc(0x12345678, NULL, 0)
                == (uint32_t) crc32(0x12345678, Z_NULL, 0),
                "%s: NULL gives zlib's initial value", path->name);

        bad = test_lengths(path, src);
        unit_ok(bad == 0, "%s: every length 0-%d at every offset 0-%d: "
                "%u differences from zlib", path->name, TEST_MAX_LEN,
                TEST_OFFSETS - 1, bad);

        bad = test_fill(path, 0) + test_fill(path, 0xff);
        unit_ok(bad == 0, "%s: zeros and 0xff bytes, 0-1024 of them: "
                "%u differences", path->name, bad);

        unit_ok(path->crc(0, big, TEST_BIG_LEN)
                == (uint32_t) crc32(0, big, TEST_BIG_LEN)
                && path->crc(0x9e3779b9, big + 3, TEST_BIG_LEN - 3)
                   == (uint32_t) crc32(0x9e3779b9, big + 3, TEST_BIG_LEN - 3),
                "%s: 1 MB", path->name);

        bad = test_chains(path, 1, src);
        unit_ok(bad == 0, "%s: %d chains of up to 8 pieces: %u wrong",
                path->name, TEST_CHAINS, bad);
    }

    bad = test_chains(paths, npaths, src);
    unit_ok(bad == 0, "%d chains, each piece by any version: %u wrong",
            TEST_CHAINS, bad);

    free(src);
    free(big);

    return unit_done();
}

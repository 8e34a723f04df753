
/*
 * Copyright (C) ldseg authors
 *
 * The string scanner's inner loop (src/ldseg_json_plain.h): the SSE2
 * version stops at exactly the byte the portable version stops at, for
 * every byte value at every position of strings of 0 to 64 bytes, with
 * two stop bytes, and on random bytes; each buffer is allocated to its
 * exact length, so that a read past its end shows under AddressSanitizer.
 * Without SSE2 the portable version is checked against a byte loop alone.
 */


#include "unit.h"

#include <ldseg_json_plain.h>


#define TEST_MAX_LEN  64


static const char *test_plain_ref(const char *p, const char *end);
static unsigned test_compare(const unsigned char *bytes, size_t len);


static const char *
test_plain_ref(const char *p, const char *end)
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


/* the number of start offsets at which the versions disagree */

static unsigned
test_compare(const unsigned char *bytes, size_t len)
{
    char        *buf;
    size_t       off;
    unsigned     bad;
    const char  *end, *ref;

    buf = malloc(len == 0 ? 1 : len);
    if (buf == NULL) {
        return 1;
    }

    memcpy(buf, bytes, len);
    end = buf + len;
    bad = 0;

    for (off = 0; off <= len; off++) {
        ref = test_plain_ref(buf + off, end);

        if (ldseg_json_plain_scalar(buf + off, end) != ref) {
            bad++;
        }

#if (LDSEG_JSON_SSE2)
        if (ldseg_json_plain_sse2(buf + off, end) != ref) {
            bad++;
        }
#endif

        if (ldseg_json_plain(buf + off, end) != ref) {
            bad++;
        }
    }

    free(buf);

    return bad;
}



int
main(void)
{
    size_t          len, i, j;
    unsigned        c, bad, round;
    uint32_t        seed;
    unsigned char   bytes[TEST_MAX_LEN];

#if (LDSEG_JSON_SSE2)
    unit_diag("SSE2 version compared with the portable one");
#else
    unit_diag("no SSE2: the portable version only");
#endif

    /* each byte value at each position of plain text */

    for (c = 0; c < 256; c++) {
        bad = 0;

        for (len = 1; len <= TEST_MAX_LEN; len++) {
            for (i = 0; i < len; i++) {
                memset(bytes, 'a', len);
                bytes[i] = (unsigned char) c;
                bad += test_compare(bytes, len);
            }
        }

        unit_ok(bad == 0, "byte 0x%02x at every position: %u differences",
                c, bad);
    }

    /* two stop bytes: the first one is found */

    bad = 0;

    for (len = 2; len <= 40; len++) {
        for (i = 0; i < len; i++) {
            for (j = i + 1; j < len; j++) {
                memset(bytes, 'x', len);
                bytes[i] = '\\';
                bytes[j] = '"';
                bad += test_compare(bytes, len);

                bytes[i] = 0xc3;
                bytes[j] = 0x01;
                bad += test_compare(bytes, len);
            }
        }
    }

    unit_ok(bad == 0, "two stop bytes at every pair of positions: "
            "%u differences", bad);

    /* plain text of every length: nothing to stop at */

    bad = 0;

    for (len = 0; len <= TEST_MAX_LEN; len++) {
        memset(bytes, '~', len);
        bad += test_compare(bytes, len);

        memset(bytes, ' ', len);
        bad += test_compare(bytes, len);
    }

    unit_ok(bad == 0, "plain text of 0 to %d bytes: %u differences",
            TEST_MAX_LEN, bad);

    /* random bytes, mostly plain */

    bad = 0;
    seed = 2463534242u;

    for (round = 0; round < 20000; round++) {
        len = unit_random(&seed) % (TEST_MAX_LEN + 1);

        for (i = 0; i < len; i++) {
            c = unit_random(&seed);
            bytes[i] = (c & 0x700) ? (unsigned char) (0x20 + c % 0x60)
                                   : (unsigned char) c;
        }

        bad += test_compare(bytes, len);
    }

    unit_ok(bad == 0, "20000 random strings: %u differences", bad);

    return unit_done();
}

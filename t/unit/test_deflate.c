
/*
 * Copyright (C) ldseg authors
 *
 * The deflate encoder (src/ldseg_deflate.c) through zlib's inflate (raw,
 * windowBits -15): every stream must inflate to exactly its input and be
 * within ldseg_deflate_bound().  Every input and every output buffer is
 * allocated to its exact size, so that a read past the input or a write
 * past the bound shows under AddressSanitizer; and each input is freed
 * before the next call with the same state, so that a match into an
 * earlier call's input would be a use after free.
 */


#include "unit.h"

#include <zlib.h>

#include <ldseg_deflate.h>


#define TEST_MAX_LEN     4096
#define TEST_SRC_LEN     (256 * 1024)
#define TEST_RUN_LEN     100000
#define TEST_BIG_LEN     (3 * 1024 * 1024 + 77)
#define TEST_REUSE       400
#define TEST_FAR_LEN     512


typedef enum {
    TEST_OK = 0,
    TEST_BOUND,
    TEST_INFLATE,
    TEST_DIFFERENT
} test_rc_e;


static test_rc_e test_round(ldseg_deflate_t *d, const uint8_t *src,
    size_t len, size_t *zlen);
static int test_trip(ldseg_deflate_t *d, const uint8_t *src, size_t len,
    size_t *zlen);
static unsigned test_lengths(ldseg_deflate_t *d, const uint8_t *src,
    const char *what);
static uint8_t *test_words(size_t len);
static uint8_t *test_payload(size_t messages, uint32_t seed, size_t *len);
static size_t test_far(ldseg_deflate_t *d, size_t distance, int *ok);


static uint32_t   test_seed = 2463534242u;
static z_stream   test_z;

static const char  *test_vocabulary[] = {
    "{\"kind\":\"custom\",", "\"key\":\"", "Order Completed", "\",",
    "\"creationDate\":", "1795262", "\"contextKeys\":{\"user\":\"user-",
    "\"metricValue\":", "49.99", "}", "]", ",", "\"", "0", "1", "7",
    "\"data\":{\"currency\":\"USD\"", "anonymous", "-4a1b-", "e"
};


/* compresses len bytes (an exact copy of src) and inflates the stream */

static test_rc_e
test_round(ldseg_deflate_t *d, const uint8_t *src, size_t len, size_t *zlen)
{
    int        rc;
    size_t     bound, n;
    uint8_t   *in, *out, *back;
    test_rc_e  res;

    bound = ldseg_deflate_bound(len);

    in = malloc(len == 0 ? 1 : len);
    out = malloc(bound);
    back = malloc(len + 64);

    if (in == NULL || out == NULL || back == NULL) {
        free(in);
        free(out);
        free(back);
        return TEST_BOUND;
    }

    memcpy(in, src, len);

    n = ldseg_deflate(d, len == 0 ? NULL : in, len, out);
    *zlen = n;

    free(in);

    res = TEST_OK;

    if (n == 0 || n > bound - 8) {
        res = TEST_BOUND;
        goto done;
    }

    if (inflateReset(&test_z) != Z_OK) {
        res = TEST_INFLATE;
        goto done;
    }

    test_z.next_in = out;
    test_z.avail_in = (uInt) n;
    test_z.next_out = back;
    test_z.avail_out = (uInt) (len + 64);

    rc = inflate(&test_z, Z_FINISH);

    if (rc != Z_STREAM_END || test_z.avail_in != 0) {
        res = TEST_INFLATE;
        goto done;
    }

    if (test_z.total_out != len || memcmp(back, src, len) != 0) {
        res = TEST_DIFFERENT;
    }

done:

    free(out);
    free(back);

    return res;
}


static int
test_trip(ldseg_deflate_t *d, const uint8_t *src, size_t len, size_t *zlen)
{
    test_rc_e  rc;

    static const char  *what[] = {
        "ok", "beyond the bound", "not inflated", "inflated to other bytes"
    };

    rc = test_round(d, src, len, zlen);

    if (rc != TEST_OK) {
        unit_diag("%zu bytes: %s", len, what[rc]);
    }

    return rc == TEST_OK;
}


/* every length 0-4096, from varying places in src; the failures */

static unsigned
test_lengths(ldseg_deflate_t *d, const uint8_t *src, const char *what)
{
    size_t    len, zlen;
    unsigned  bad;

    bad = 0;

    for (len = 0; len <= TEST_MAX_LEN; len++) {
        if (test_round(d, src + (len * 37) % 8192, len, &zlen) != TEST_OK) {
            if (bad < 5) {
                unit_diag("%s: length %zu fails", what, len);
            }

            bad++;
        }
    }

    return bad;
}


/* JSON-like bytes: random picks from a few words */

static uint8_t *
test_words(size_t len)
{
    size_t    i, n;
    uint8_t  *p;

    static const size_t  nwords = sizeof(test_vocabulary) / sizeof(char *);

    p = malloc(len);
    if (p == NULL) {
        return NULL;
    }

    for (i = 0; i < len; i += n) {
        const char  *w;

        w = test_vocabulary[unit_random(&test_seed) % nwords];
        n = strlen(w);

        if (n > len - i) {
            n = len - i;
        }

        memcpy(p + i, w, n);
    }

    return p;
}


/*
 * What the sender compresses: the LaunchDarkly events of track messages
 * with varied users, IDs and amounts, translated by the core, as one JSON
 * array, built from Segment batches of 100 messages.
 */

static uint8_t *
test_payload(size_t messages, uint32_t seed, size_t *len)
{
    char              *body, *p;
    size_t             i, k, size;
    uint8_t           *out;
    uint32_t           r;
    unit_alloc_t       ua;
    ldseg_error_t      err;
    ldseg_result_t     res;
    ldseg_options_t    opt;
    ldseg_allocator_t  a;

    static const char  *events[] = {
        "Order Completed", "Product Viewed", "Signed Up", "Checkout Started"
    };

    unit_allocator(&a, &ua);

    ldseg_options_init(&opt);
    opt.now_ms = 1795262400000LL;

    body = malloc(100 * 1024);
    out = malloc(messages * 1024 + 2);

    if (body == NULL || out == NULL) {
        free(body);
        free(out);
        return NULL;
    }

    size = 0;
    out[size++] = '[';

    for (k = 0; k < messages; k += 100) {
        p = body;
        p += sprintf(p, "{\"batch\":[");

        for (i = k; i < k + 100 && i < messages; i++) {
            r = unit_random(&seed);

            p += sprintf(p, "%s{\"type\":\"track\",\"userId\":\"user-%06u\","
                "\"anonymousId\":\"%08x-%04x-4%03x-8%03x-%08x%04x\","
                "\"event\":\"%s\",\"properties\":{\"orderId\":\"ord-%05u\","
                "\"value\":%u.%02u,\"revenue\":%u.%02u,\"currency\":\"USD\"},"
                "\"context\":{\"ip\":\"203.0.113.%u\"},"
                "\"timestamp\":\"2026-11-21T12:%02u:%02u.%03uZ\","
                "\"messageId\":\"m-%08x\"}",
                i == k ? "" : ",", r % 1000000, unit_random(&seed),
                r & 0xffff, (r >> 4) & 0xfff, (r >> 8) & 0xfff,
                unit_random(&seed), r & 0xffff, events[r % 4],
                (unsigned) i * 37 % 100000, r % 500, r % 100, r % 500,
                r % 100, r % 255, (unsigned) i / 60 % 60, (unsigned) i % 60,
                r % 1000, unit_random(&seed));
        }

        p += sprintf(p, "]}");

        if (ldseg_process(body, p - body, LDSEG_EP_BATCH, &opt, &a, &res,
                          &err)
            != LDSEG_OK)
        {
            unit_diag("ldseg_process(): %s", err.message);
            free(body);
            free(out);
            return NULL;
        }

        if (k != 0) {
            out[size++] = ',';
        }

        /* the events without their brackets */
        memcpy(out + size, res.events + 1, res.events_len - 2);
        size += res.events_len - 2;

        ldseg_result_free(&res, &a);
    }

    out[size++] = ']';

    free(body);

    *len = size;

    return out;
}


/*
 * TEST_FAR_LEN bytes, then other bytes up to distance, then the same
 * TEST_FAR_LEN bytes again: 7-bit random bytes, which static codes keep in
 * a static block and in which 4-byte repeats are rare.  The stream's length.
 */

static size_t
test_far(ldseg_deflate_t *d, size_t distance, int *ok)
{
    size_t    i, len, zlen;
    uint8_t  *p;

    len = distance + TEST_FAR_LEN;

    p = malloc(len);
    if (p == NULL) {
        *ok = 0;
        return 0;
    }

    for (i = 0; i < distance; i++) {
        p[i] = (uint8_t) (unit_random(&test_seed) & 0x7f);
    }

    memcpy(p + distance, p, TEST_FAR_LEN);

    *ok = test_trip(d, p, len, &zlen);

    free(p);

    return zlen;
}


int
main(void)
{
    int               ok1, ok2;
    size_t            i, len, zlen, n, total, bad, nlen;
    uint8_t          *rnd, *words, *big, *json;
    ldseg_deflate_t  *d;

    static const size_t  sizes[] = { 100, 1000, 2000 };

    if (inflateInit2(&test_z, -15) != Z_OK) {
        unit_ok(0, "inflateInit2()");
        return unit_done();
    }

    d = malloc(sizeof(ldseg_deflate_t));
    rnd = malloc(TEST_SRC_LEN);
    words = test_words(TEST_SRC_LEN);

    if (d == NULL || rnd == NULL || words == NULL) {
        unit_ok(0, "malloc");
        return unit_done();
    }

    unit_diag("state: %zu bytes, hash table of %d positions",
              sizeof(ldseg_deflate_t), LDSEG_DEFLATE_HASH_SIZE);

    for (i = 0; i < TEST_SRC_LEN; i++) {
        rnd[i] = (uint8_t) (unit_random(&test_seed) >> 7);
    }

    ldseg_deflate_init(d);

    /* the bound */

    unit_ok(ldseg_deflate_bound(0) == 13
            && ldseg_deflate_bound(1) == 14
            && ldseg_deflate_bound(65535) == 65535 + 13
            && ldseg_deflate_bound(65536) == 65536 + 18
            && ldseg_deflate_bound((size_t) -1) == 0,
            "ldseg_deflate_bound(): the length, 5 a segment, 8");

    /* the smallest */

    n = ldseg_deflate(d, NULL, 0, rnd + TEST_SRC_LEN - 64);
    unit_ok(n == 2 && test_trip(d, rnd, 0, &zlen),
            "empty input: the 2 bytes of an empty final static block");

    ok1 = test_trip(d, (const uint8_t *) "x", 1, &zlen);
    unit_ok(ok1 && zlen <= 3, "1 byte: %zu bytes", zlen);

    /* every length */

    bad = test_lengths(d, words, "words");
    unit_ok(bad == 0, "JSON-like bytes, every length 0-%d: %zu fail",
            TEST_MAX_LEN, bad);

    bad = test_lengths(d, rnd, "random");
    unit_ok(bad == 0, "random bytes, every length 0-%d: %zu fail",
            TEST_MAX_LEN, bad);

    /* one byte again and again: distance 1, matches of 258 */

    big = malloc(TEST_BIG_LEN);
    if (big == NULL) {
        unit_ok(0, "malloc");
        return unit_done();
    }

    memset(big, 'a', TEST_RUN_LEN);

    ok1 = test_trip(d, big, TEST_RUN_LEN, &zlen);
    unit_ok(ok1 && zlen < 2000,
            "'a' x %d: %zu bytes", TEST_RUN_LEN, zlen);

    memset(big, 0xff, TEST_RUN_LEN);

    ok1 = test_trip(d, big, TEST_RUN_LEN, &zlen);
    unit_ok(ok1 && zlen < 2000,
            "0xff x %d: %zu bytes", TEST_RUN_LEN, zlen);

    /* random bytes: stored blocks, several of them */

    for (i = 0; i < 300001; i++) {
        big[i] = (uint8_t) (unit_random(&test_seed) >> 3);
    }

    ok1 = test_trip(d, big, 300001, &zlen);
    unit_ok(ok1 && zlen <= 300001 + 5 * 5,
            "300001 random bytes: %zu bytes, at most 5 more a segment",
            zlen);

    /* half random, half words, in every segment */

    for (i = 0; i < 300001; i += 2048) {
        n = (300001 - i < 2048) ? 300001 - i : 2048;
        memcpy(big + i,
               ((i / 2048) & 1) ? words + i % 100000 : rnd + i % 100000, n);
    }

    ok1 = test_trip(d, big, 300001, &zlen);
    unit_ok(ok1 && zlen < 300001 * 3 / 4,
            "random and JSON-like bytes by turns: %zu bytes", zlen);

    /* the window's edge, from a new state: the same (static) codes */

    ldseg_deflate_init(d);
    n = test_far(d, 32768, &ok1);

    ldseg_deflate_init(d);
    zlen = test_far(d, 32769, &ok2);

    unit_ok(ok1 && ok2 && n + TEST_FAR_LEN / 2 < zlen,
            "the same %d bytes 32768 bytes on match (%zu bytes), "
            "32769 bytes on they do not (%zu bytes)", TEST_FAR_LEN, n, zlen);

    n = test_far(d, 32767, &ok1);
    unit_ok(ok1, "the same bytes 32767 bytes on");

    /* the sender's payloads */

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        json = test_payload(sizes[i], 2463534242u + (uint32_t) i, &len);

        if (json == NULL) {
            unit_ok(0, "a payload of %zu events", sizes[i]);
            continue;
        }

        ok1 = test_trip(d, json, len, &zlen);
        unit_ok(ok1 && zlen < len * 3 / 10,
                "a payload of %zu events, %zu bytes: %zu (%.1f%%)",
                sizes[i], len, zlen, 100.0 * zlen / len);

        free(json);
    }

    /* codes learned from the payloads, then used for them */

    json = test_payload(1000, 99, &len);

    if (json != NULL) {
        ldseg_deflate_init(d);

        ok1 = test_trip(d, json, len, &n);
        ok2 = test_trip(d, json, len, &zlen);

        unit_ok(ok1 && ok2 && zlen < n * 9 / 10,
                "1000 events: %zu bytes with static codes, %zu with codes "
                "learned from them", n, zlen);

        free(json);

    } else {
        unit_ok(0, "a payload of 1000 events");
    }

    /* codes learned from the most lopsided counts, then used for anything */

    bad = 0;

    for (i = 0; i < 4; i++) {
        ldseg_deflate_init(d);

        if (i == 0) {
            memset(big, 'a', 300000);

        } else if (i == 1) {
            memset(big, 0xff, 300000);
            big[150000] = 0;

        } else {
            memcpy(big, i == 2 ? rnd : words, 200000);
            memcpy(big + 200000, i == 2 ? rnd : words, 100000);
        }

        bad += !test_trip(d, big, 300000, &zlen);

        for (n = 0; n < 4; n++) {
            if (n == 0) {
                memset(big, 'a', 70000);

            } else {
                memcpy(big, n == 1 ? rnd : words, 70000);
                big[n] = (uint8_t) n;
            }

            bad += !test_trip(d, big, 70000, &zlen);
            bad += !test_trip(d, big, 1500, &zlen);
        }
    }

    unit_ok(bad == 0, "codes learned from runs of one byte, random bytes "
            "and JSON-like ones, used for each of them: %zu fail", bad);

    /* a few MB */

    for (i = 0; i < TEST_BIG_LEN; i += n) {
        n = (TEST_BIG_LEN - i < 40000) ? TEST_BIG_LEN - i : 40000;
        memcpy(big + i, (i / 40000) % 5 == 3 ? rnd + i % 8192
                                              : words + i % 100000, n);
    }

    ok1 = test_trip(d, big, TEST_BIG_LEN, &zlen);
    unit_ok(ok1 && zlen < TEST_BIG_LEN / 2,
            "%d bytes: %zu", TEST_BIG_LEN, zlen);

    /* one state, many calls, each input freed before the next call */

    bad = 0;
    total = 0;

    for (i = 0; i < TEST_REUSE; i++) {
        nlen = unit_random(&test_seed) % ((i % 10 == 0) ? 200000 : 5000);

        for (n = 0; n < nlen; n += 1000) {
            memcpy(big + n, (unit_random(&test_seed) % 4 == 0)
                            ? rnd + n % 100000 : words + n % 100000,
                   (nlen - n < 1000) ? nlen - n : 1000);
        }

        if (!test_trip(d, big, nlen, &zlen)) {
            bad++;
        }

        total += nlen;
    }

    unit_ok(bad == 0, "one state, %d calls of 0-200000 bytes (%zu in all): "
            "%zu fail", TEST_REUSE, total, bad);

    /* the same bytes again and again: nothing from the last call matches */

    memcpy(big, words, 20000);

    test_trip(d, big, 20000, &n);
    test_trip(d, big, 20000, &zlen);

    unit_ok(zlen > n / 2, "the same 20000 bytes twice: %zu and %zu bytes, "
            "nothing taken from the first call", n, zlen);

    /* position numbers about to overflow: the table starts again */

    bad = 0;

    for (i = 0; i < 8; i++) {
        d->next = UINT32_MAX - 200000 - (uint32_t) i * 40000;

        for (n = 0; n < 6; n++) {
            nlen = 70000 + 9000 * n;
            memcpy(big, words + n * 1000, nlen);

            if (!test_trip(d, big, nlen, &zlen)) {
                bad++;
            }
        }
    }

    unit_ok(bad == 0 && d->next < 1000000,
            "position numbers near 2^32: 48 calls, %zu fail, numbered "
            "from 0 again", bad);

    inflateEnd(&test_z);

    free(d);
    free(rnd);
    free(words);
    free(big);

    return unit_done();
}


/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the delivery policy.  The input is split as a
 * payload with several event counts: a split point must be a "," inside
 * the text, and when the input is a valid JSON array both halves must be
 * valid arrays.  The input's bytes also make up a configuration and an
 * answer for ldseg_delivery_outcome(), whose delay must stay within the
 * caps.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg_delivery.h>
#include <ldseg_json.h>


#define FUZZ_MAX_DEPTH  1000


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void fuzz_split(const char *p, size_t size, size_t nevents,
    int valid);
static size_t fuzz_count(const char *p, size_t len);
static void fuzz_outcome(const uint8_t *data, size_t size);


/* the elements of an array, or (size_t) -1 if it is not valid JSON */

static size_t
fuzz_count(const char *p, size_t len)
{
    size_t             n;
    const char        *q;
    ldseg_json_val_t   v;

    if (ldseg_json_validate(p, len, FUZZ_MAX_DEPTH) != LDSEG_OK) {
        return (size_t) -1;
    }

    q = p;
    n = 0;

    while (ldseg_json_array_next(&q, p + len, &v) != 0) {
        n++;
    }

    return n;
}


static void
fuzz_split(const char *p, size_t size, size_t nevents, int valid)
{
    int      rc;
    char    *half;
    size_t   off, n;

    off = (size_t) -1;

    rc = ldseg_delivery_split(p, size, nevents, &off);

    if (rc == -1) {
        return;
    }

    if (rc != 0 || nevents < 2 || off == 0 || off >= size || p[off] != ',') {
        abort();
    }

    if (valid == 0) {
        return;
    }

    /* a valid array: "[" + left + "]" and "[" + right hold the events */

    half = malloc(size + 1);
    if (half == NULL) {
        abort();
    }

    memcpy(half, p, off);
    half[off] = ']';

    if (fuzz_count(half, off + 1) != nevents / 2) {
        abort();
    }

    half[0] = '[';
    memcpy(half + 1, p + off + 1, size - off - 1);

    n = fuzz_count(half, size - off);

    if (n == (size_t) -1 || n < nevents - nevents / 2) {
        abort();
    }

    free(half);
}


static void
fuzz_outcome(const uint8_t *data, size_t size)
{
    long                   status;
    uint8_t                b[64];
    int64_t                ra;
    uint32_t               rnd;
    uint64_t               cap;
    unsigned               attempts;
    ldseg_delivery_t       out;
    ldseg_delivery_conf_t  conf;

    /* the bytes, zero-padded; b[0] narrows fields to ordinary ranges */

    memset(b, 0, sizeof(b));
    memcpy(b, data, size < sizeof(b) ? size : sizeof(b));

    memcpy(&conf.base_ms, b + 1, 8);
    memcpy(&conf.max_ms, b + 9, 8);
    memcpy(&conf.retry_after_max_ms, b + 17, 8);
    memcpy(&conf.dead_letter_after, b + 25, sizeof(unsigned));
    memcpy(&ra, b + 29, 8);
    memcpy(&attempts, b + 37, sizeof(unsigned));
    memcpy(&rnd, b + 41, 4);
    memcpy(&status, b + 45, sizeof(long) < 8 ? sizeof(long) : 8);

    if (b[0] & 0x01) {
        status = (long) ((unsigned long) status % 700);
    }

    if (b[0] & 0x02) {
        conf.base_ms %= 10000;
        conf.max_ms %= 1000000;
        conf.retry_after_max_ms %= 7200000;
    }

    if (b[0] & 0x04) {
        attempts %= 40;
        conf.dead_letter_after %= 8;
    }

    if (b[0] & 0x08) {
        ra %= 10000;
    }

    memset(&out, 0xff, sizeof(ldseg_delivery_t));

    ldseg_delivery_outcome(&conf, status, ra, attempts, rnd, &out);

    cap = (conf.max_ms > conf.retry_after_max_ms) ? conf.max_ms
                                                  : conf.retry_after_max_ms;

    if (out.delay_ms > cap
        || ldseg_delivery_name(out.outcome) == NULL
        || strcmp(ldseg_delivery_name(out.outcome), "unknown") == 0
        || ((status >= 200 && status <= 299)
            != (out.outcome == LDSEG_DELIVERY_DONE))
        || ((status == 413) != (out.outcome == LDSEG_DELIVERY_SPLIT))
        || (out.move_behind != 0 && out.pause_destination != 0)
        || (out.outcome == LDSEG_DELIVERY_DEAD_LETTER
            && conf.dead_letter_after == 0)
        || (out.outcome != LDSEG_DELIVERY_RETRY
            && out.outcome != LDSEG_DELIVERY_REFUSED_ID
            && out.delay_ms != 0))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          valid;
    size_t       i;
    const char  *p;

    static const size_t  nevents[] = { 0, 1, 2, 3, 4, 5, 7, 16, 100 };

    p = (const char *) data;

    valid = (size != 0 && data[0] == '['
             && ldseg_json_validate(p, size, FUZZ_MAX_DEPTH) == LDSEG_OK);

    for (i = 0; i < sizeof(nevents) / sizeof(nevents[0]); i++) {
        fuzz_split(p, size, nevents[i], valid);
    }

    fuzz_split(p, size, size / 4 + 2, valid);
    fuzz_split(p, size, (size_t) -1, valid);

    fuzz_outcome(data, size);

    return 0;
}


/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the deflate encoder (src/ldseg_deflate.c): any
 * bytes, compressed with ldseg_deflate() into a buffer of exactly
 * ldseg_deflate_bound() bytes, must inflate with zlib (raw, windowBits
 * -15) to exactly those bytes, in a stream at least 8 bytes shorter than
 * the bound.  The input is compressed whole and then, with the same
 * state, from an offset its first byte chooses, each time in a buffer of
 * exactly its size, so that ASan sees a read past its end; the state lives
 * across inputs, as the sender's does across POSTs, and now and then its
 * position numbers are moved on to near 2^32.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <ldseg_deflate.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void fuzz_round(const uint8_t *data, size_t size);


static ldseg_deflate_t  *fuzz_state;
static z_stream          fuzz_z;


static void
fuzz_round(const uint8_t *data, size_t size)
{
    size_t    bound, n;
    uint8_t  *in, *out, *back;

    bound = ldseg_deflate_bound(size);

    in = malloc(size == 0 ? 1 : size);
    out = malloc(bound);
    back = malloc(size + 1);

    if (in == NULL || out == NULL || back == NULL) {
        abort();
    }

    memcpy(in, data, size);

    n = ldseg_deflate(fuzz_state, size == 0 ? NULL : in, size, out);

    if (n == 0 || n > bound - 8) {
        abort();
    }

    if (inflateReset(&fuzz_z) != Z_OK) {
        abort();
    }

    fuzz_z.next_in = out;
    fuzz_z.avail_in = (uInt) n;
    fuzz_z.next_out = back;
    fuzz_z.avail_out = (uInt) (size + 1);

    if (inflate(&fuzz_z, Z_FINISH) != Z_STREAM_END
        || fuzz_z.avail_in != 0
        || fuzz_z.total_out != size
        || memcmp(back, data, size) != 0)
    {
        abort();
    }

    free(in);
    free(out);
    free(back);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t    off;
    uint32_t  next;

    if (fuzz_state == NULL) {
        fuzz_state = malloc(sizeof(ldseg_deflate_t));

        if (fuzz_state == NULL || inflateInit2(&fuzz_z, -15) != Z_OK) {
            abort();
        }

        ldseg_deflate_init(fuzz_state);
    }

    /* the numbers only grow, as they do in ldseg_deflate() */

    if (size > 1 && data[0] == 0xfe) {
        next = UINT32_MAX - 200000 + data[1] * 256u;

        if (next > fuzz_state->next) {
            fuzz_state->next = next;
        }
    }

    fuzz_round(data, size);

    off = (size == 0) ? 0 : data[0] % (size + 1);

    fuzz_round(data + off, size - off);

    return 0;
}

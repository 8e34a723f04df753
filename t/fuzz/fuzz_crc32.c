
/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the CRC-32 (src/ldseg_crc32.c): for any bytes,
 * from each of the first 16 offsets to their end, ldseg_crc32(), its
 * portable version and, where the CPU has PCLMULQDQ, its folding version
 * give zlib's crc32(), continuing from a CRC taken from the first bytes;
 * and so does a chain of two calls cut at an offset the bytes choose.
 * The bytes are in a buffer of exactly their size, so that ASan sees a
 * read past their end.
 */


#include <stdint.h>
#include <stdlib.h>

#include <zlib.h>

#include <ldseg_crc32.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void fuzz_compare(uint32_t crc, const uint8_t *p, size_t len);


static void
fuzz_compare(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t  want;

    want = (uint32_t) crc32(crc, p, (uInt) len);

    if (ldseg_crc32(crc, p, len) != want
        || ldseg_crc32_portable(crc, p, len) != want)
    {
        abort();
    }

#if (LDSEG_CRC32_CLMUL)
    if (ldseg_crc32_clmul_usable()
        && ldseg_crc32_clmul(crc, p, len) != want)
    {
        abort();
    }
#endif
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t    off, cut;
    uint32_t  crc, c;

    if (size == 0) {
        fuzz_compare(0, data, 0);
        fuzz_compare(0xffffffff, data, 0);
        return 0;
    }

    crc = 0;

    for (off = 0; off < 4 && off < size; off++) {
        crc = (crc << 8) | data[off];
    }

    for (off = 0; off < 16 && off <= size; off++) {
        fuzz_compare(0, data + off, size - off);
        fuzz_compare(crc, data + off, size - off);
    }

    /* two pieces */

    cut = crc % (size + 1);

    c = ldseg_crc32(crc, data, cut);
    c = ldseg_crc32(c, data + cut, size - cut);

    if (c != (uint32_t) crc32(crc, data, (uInt) size)) {
        abort();
    }

#if (LDSEG_CRC32_CLMUL)
    if (ldseg_crc32_clmul_usable()) {
        c = ldseg_crc32_clmul(crc, data, cut);
        c = ldseg_crc32_clmul(c, data + cut, size - cut);

        if (c != (uint32_t) crc32(crc, data, (uInt) size)) {
            abort();
        }
    }
#endif

    return 0;
}

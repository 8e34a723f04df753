
/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the JSON scanner's string loop: from every start
 * offset of any bytes, read from a buffer of exactly their size (so ASan
 * sees an overread), the SSE2 version (src/ldseg_json_plain.h) stops at
 * the byte the portable version and a plain byte loop stop at.  The bytes
 * then go through the whole scanner (ldseg_json_validate()) as they are
 * and as the inside of one string, under ASan and UBSan.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg.h>
#include <ldseg_json.h>
#include <ldseg_json_plain.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static const char *fuzz_plain_ref(const char *p, const char *end);


static const char *
fuzz_plain_ref(const char *p, const char *end)
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


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        *s;
    size_t       off;
    const char  *end, *ref;

    /* every offset is scanned: quadratic, so kept short */

    if (size > 1024) {
        return 0;
    }

    s = malloc(size + 2);
    if (s == NULL) {
        return 0;
    }

    /* the bytes alone, at the start of the allocation */

    memcpy(s, data, size);
    end = s + size;

    for (off = 0; off <= size; off++) {
        ref = fuzz_plain_ref(s + off, end);

        if (ldseg_json_plain_scalar(s + off, end) != ref
            || ldseg_json_plain(s + off, end) != ref)
        {
            abort();
        }

#if (LDSEG_JSON_SSE2)
        if (ldseg_json_plain_sse2(s + off, end) != ref) {
            abort();
        }
#endif
    }

    (void) ldseg_json_validate(s, size, 64);

    /* the same bytes as the inside of a string */

    s[0] = '"';
    memcpy(s + 1, data, size);
    s[size + 1] = '"';

    (void) ldseg_json_validate(s, size + 2, 64);

    free(s);

    return 0;
}

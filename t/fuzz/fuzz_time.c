
/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the timestamp reader: any bytes, read from a
 * buffer of exactly their size (so ASan sees an overread), must give
 * LDSEG_EINVAL or a time within a JavaScript Date's range, and the same
 * answer twice, with and without the shortcut for the common ISO form.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg_time.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        *s;
    int64_t      ms, ms2;
    ldseg_rc_t   rc;

    if (size > 1024) {
        return 0;
    }

    s = malloc(size == 0 ? 1 : size);
    if (s == NULL) {
        return 0;
    }

    memcpy(s, data, size);

    ms = 0;
    ms2 = 0;
    rc = ldseg_time_parse(s, size, &ms);

    if (rc == LDSEG_OK
        && (ms > LDSEG_TIME_MAX_MS || ms < -LDSEG_TIME_MAX_MS))
    {
        abort();
    }

    if (ldseg_time_parse(s, size, &ms2) != rc || (rc == LDSEG_OK && ms2 != ms))
    {
        abort();
    }

    /* the shortcut for the common ISO form reads as the general readers */

    if (ldseg_time_read(s, size, 0, &ms2) != rc || (rc == LDSEG_OK && ms2 != ms))
    {
        abort();
    }

    free(s);

    return 0;
}


/*
 * Copyright (C) ldseg authors
 *
 * Payload IDs: RFC 4122 version 4 UUID text from caller-supplied random
 * bytes (the core reads no randomness itself).
 */


#include <ldseg.h>


/*
 * Writes exactly LDSEG_UUID_LEN (36) bytes, lower-case
 * "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" with y one of 8, 9, a, b, and no
 * terminating NUL.
 */

void
ldseg_uuid_format(char *dst, const unsigned char rnd[16])
{
    size_t          i;
    unsigned char   b;

    static const char  hex[] = "0123456789abcdef";

    for (i = 0; i < 16; i++) {
        b = rnd[i];

        if (i == 6) {
            b = (unsigned char) ((b & 0x0f) | 0x40);

        } else if (i == 8) {
            b = (unsigned char) ((b & 0x3f) | 0x80);
        }

        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *dst++ = '-';
        }

        *dst++ = hex[b >> 4];
        *dst++ = hex[b & 0x0f];
    }
}


/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the mappings compiler.  The first byte picks how
 * the rest is used: a whole subscriptions file (0), an FQL "subscribe"
 * string (1) or a "mapping" object (2) in an otherwise valid file.  A file
 * either compiles or is refused with a sentence; one that compiles then
 * maps a few fixed messages, and all memory returns.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg.h>
#include <ldseg_mapping.h>


typedef struct {
    size_t                        live;
} fuzz_alloc_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void *fuzz_alloc(void *ctx, size_t size);
static void fuzz_free(void *ctx, void *p);
static char *fuzz_json_string(const uint8_t *p, size_t len, size_t *out);


static const char  *fuzz_messages[] = {
    "{\"type\":\"track\",\"userId\":\"u\",\"anonymousId\":\"a\",\"event\":"
    "\"Signed Up\",\"properties\":{\"value\":12,\"plan\":\"pro\",\"items\":"
    "[{\"id\":1},{\"id\":2}],\"flag\":true,\"s\":\"abc\"},\"traits\":{\"t\":"
    "1},\"context\":{\"c\":{\"d\":1}},\"timestamp\":\"2022-05-04T03:02:03Z\"}",
    "{\"batch\":[{\"type\":\"identify\",\"userId\":\"u\",\"anonymousId\":"
    "\"a\",\"traits\":{\"email\":\"e\"}},{\"type\":\"page\",\"userId\":1,"
    "\"name\":\"Home\"},{\"type\":\"alias\",\"userId\":\"u\",\"previousId\":"
    "\"p\"}]}"
};


static void *
fuzz_alloc(void *ctx, size_t size)
{
    ((fuzz_alloc_t *) ctx)->live++;

    return malloc(size == 0 ? 1 : size);
}


static void
fuzz_free(void *ctx, void *p)
{
    if (p != NULL) {
        ((fuzz_alloc_t *) ctx)->live--;
        free(p);
    }
}


/* bytes as a JSON string: printable ASCII kept, the rest \u00XX */

static char *
fuzz_json_string(const uint8_t *p, size_t len, size_t *out)
{
    char    *s, *q;
    size_t   i;

    s = malloc(len * 6 + 3);
    if (s == NULL) {
        abort();
    }

    q = s;
    *q++ = '"';

    for (i = 0; i < len; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            *q++ = (char) p[i];

        } else {
            q += sprintf(q, "\\u%04x", p[i]);
        }
    }

    *q++ = '"';
    *out = (size_t) (q - s);

    return s;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char               *text, *s, err[512];
    size_t              i, len, slen;
    ldseg_rc_t          rc;
    fuzz_alloc_t        fa;
    ldseg_error_t       e;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_mappings_t   *maps;
    ldseg_allocator_t   a;

    if (size == 0) {
        return 0;
    }

    text = NULL;

    switch (data[0] % 3) {

    case 1:
        s = fuzz_json_string(data + 1, size - 1, &slen);
        text = malloc(slen + 256);
        if (text == NULL) {
            abort();
        }

        len = (size_t) sprintf(text, "[{\"name\":\"n\",\"subscribe\":%.*s,"
                               "\"partnerAction\":\"trackEvent\",\"mapping\":"
                               "{\"user_key\":\"u\",\"event_name\":\"e\"}}]",
                               (int) slen, s);
        free(s);
        break;

    case 2:
        text = malloc(size + 256);
        if (text == NULL) {
            abort();
        }

        len = (size_t) sprintf(text, "[{\"name\":\"n\",\"subscribe\":"
                               "\"type = \\\"track\\\"\",\"partnerAction\":"
                               "\"trackEvent\",\"mapping\":%.*s}]",
                               (int) (size - 1), (const char *) data + 1);
        break;

    default:
        len = size - 1;
        break;
    }

    fa.live = 0;
    a.alloc = fuzz_alloc;
    a.free = fuzz_free;
    a.ctx = &fa;

    err[0] = '\0';

    rc = ldseg_mappings_compile(text != NULL ? text
                                             : (const char *) data + 1,
                                len, &a, &maps, err, sizeof(err));

    if (rc == LDSEG_EINVAL && err[0] == '\0') {
        abort();
    }

    if (rc == LDSEG_OK) {
        for (i = 0; i < sizeof(fuzz_messages) / sizeof(char *); i++) {
            ldseg_options_init(&opt);
            opt.now_ms = 1700000000000LL;
            opt.mappings = maps;

            rc = ldseg_process(fuzz_messages[i], strlen(fuzz_messages[i]),
                               i == 0 ? LDSEG_EP_TRACK : LDSEG_EP_BATCH, &opt,
                               &a, &res, &e);
            if (rc == LDSEG_OK) {
                ldseg_result_free(&res, &a);
            }
        }

        ldseg_mappings_free(maps);
    }

    free(text);

    if (fa.live != 0) {
        abort();
    }

    return 0;
}


/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over the export translator: any SDK post gives either
 * a refusal or one result per event, and then "[" + messages + "]" is
 * valid JSON, every message a valid JSON object of at most 32 KB, and
 * every byte allocated is returned.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg_export.h>
#include <ldseg_json.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static size_t  fuzz_live;


static void *
fuzz_alloc(void *ctx, size_t size)
{
    fuzz_live++;
    return malloc(size == 0 ? 1 : size);
}


static void
fuzz_free(void *ctx, void *p)
{
    fuzz_live--;
    free(p);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                    *body, *arr;
    size_t                   i;
    ldseg_rc_t               rc;
    ldseg_error_t            err;
    ldseg_result_t           res;
    ldseg_allocator_t        a;
    ldseg_export_options_t   opt;

    body = malloc(size == 0 ? 1 : size);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data, size);

    a.alloc = fuzz_alloc;
    a.free = fuzz_free;
    a.ctx = NULL;

    ldseg_export_options_init(&opt);
    opt.environment.p = "env";
    opt.environment.len = 3;

    if (size > 0 && data[0] == '[') {
        /* half of the inputs: a payload ID taken from the tail */
        opt.payload_id.p = body + size / 2;
        opt.payload_id.len = size - size / 2;
    }

    if (size > 1 && (data[size - 1] & 1)) {
        /* half of the inputs: a small limit, so that messages are over it */
        opt.max_message = 300;
    }

    fuzz_live = 0;
    rc = ldseg_export_process(body, size, &opt, &a, &res, &err);

    if (rc == LDSEG_OK) {
        for (i = 0; i < res.n; i++) {
            if (res.msgs[i].status == LDSEG_MSG_REJECTED
                && res.msgs[i].err.reason == LDSEG_REASON_TOO_LARGE)
            {
                /* kept whole in res.large: valid, and over the limit */

                if (res.msgs[i].event_len <= opt.max_message
                    || res.msgs[i].event_off + res.msgs[i].event_len
                       > res.large_len
                    || ldseg_json_validate(res.large + res.msgs[i].event_off,
                                           res.msgs[i].event_len, 1000)
                       != LDSEG_OK)
                {
                    abort();
                }

                continue;
            }

            if (res.msgs[i].status != LDSEG_MSG_EVENT) {
                continue;
            }

            if (res.msgs[i].event_len > opt.max_message
                || ldseg_json_validate(res.events + res.msgs[i].event_off,
                                       res.msgs[i].event_len, 1000)
                   != LDSEG_OK
                || res.events[res.msgs[i].event_off] != '{')
            {
                abort();
            }
        }

        arr = malloc(res.events_len + 2);
        arr[0] = '[';
        memcpy(arr + 1, res.events == NULL ? "" : res.events,
               res.events_len);
        arr[res.events_len + 1] = ']';

        if (ldseg_json_validate(arr, res.events_len + 2, 1000) != LDSEG_OK) {
            abort();
        }

        free(arr);
        ldseg_result_free(&res, &a);
    }

    if (fuzz_live != 0) {
        abort();
    }

    free(body);

    return 0;
}

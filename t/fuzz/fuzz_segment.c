
/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over ldseg_process().  The first byte picks the
 * endpoint (low three bits), the format (bit 3), reported messageIds
 * (bit 4), clock skew off (bit 5) and whether every other accepted
 * message is then marked a duplicate (bit 6); the rest is the body.
 * Every result must be well formed: each event and the whole array parse
 * as JSON, offsets are consistent, counts add up, every event is at most
 * its message's size plus LDSEG_EVENT_SLACK, messageIds are bounded, and
 * all memory returns; the same holds after the duplicates are dropped.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg.h>
#include <ldseg_json.h>


typedef struct {
    size_t                        live;
} fuzz_alloc_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void *fuzz_alloc(void *ctx, size_t size);
static void fuzz_free(void *ctx, void *p);
static void fuzz_check(const ldseg_result_t *res, size_t len);


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


static void
fuzz_check(const ldseg_result_t *res, size_t len)
{
    char                      *arr;
    size_t                     i, next, nevents, nskipped, nrejected, ndups;
    const ldseg_msg_result_t  *m;

    nevents = 0;
    nskipped = 0;
    nrejected = 0;
    ndups = 0;
    next = 0;

    for (i = 0; i < res->n; i++) {
        m = &res->msgs[i];

        switch (m->status) {

        case LDSEG_MSG_EVENT:
            if (m->event_off != next
                || m->event_len == 0
                || m->msg_len == 0
                || m->msg_len > len
                || m->event_len > m->msg_len + LDSEG_EVENT_SLACK
                || m->event_off + m->event_len > res->events_len
                || ldseg_json_validate(res->events + m->event_off,
                                       m->event_len, 1000) != LDSEG_OK)
            {
                abort();
            }

            next = m->event_off + m->event_len + 1;
            nevents++;
            break;

        case LDSEG_MSG_DUPLICATE:
            ndups++;
            break;

        case LDSEG_MSG_SKIPPED:
        case LDSEG_MSG_REJECTED:
            if (m->err.reason >= LDSEG_REASON_N
                || m->err.message == NULL)
            {
                abort();
            }

            if (m->status == LDSEG_MSG_SKIPPED) {
                nskipped++;

            } else {
                nrejected++;
            }

            break;

        default:
            abort();
        }

        if (m->message_id != NULL
            && (m->status == LDSEG_MSG_REJECTED
                || m->message_id_len == 0
                || m->message_id_len > LDSEG_MAX_MESSAGE_ID))
        {
            abort();
        }
    }

    if (nevents != res->nevents || nskipped != res->nskipped
        || nrejected != res->nrejected || ndups != res->nduplicates
        || (nevents == 0 && res->events_len != 0)
        || (nevents != 0 && next != res->events_len + 1))
    {
        abort();
    }

    arr = malloc(res->events_len + 2);
    if (arr == NULL) {
        abort();
    }

    arr[0] = '[';

    if (res->events_len != 0) {
        memcpy(arr + 1, res->events, res->events_len);
    }

    arr[res->events_len + 1] = ']';

    if (ldseg_json_validate(arr, res->events_len + 2, 1000) != LDSEG_OK) {
        abort();
    }

    free(arr);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t              i, k;
    ldseg_rc_t          rc;
    fuzz_alloc_t        fa;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_endpoint_e    ep;
    ldseg_allocator_t   a;

    if (size == 0) {
        return 0;
    }

    ep = (ldseg_endpoint_e) (data[0] & 0x07);

    if (ep == LDSEG_EP_UNKNOWN) {
        ep = LDSEG_EP_BATCH;
    }

    ldseg_options_init(&opt);
    opt.format = (data[0] & 0x08) ? LDSEG_FORMAT_CLASSIC
                                  : LDSEG_FORMAT_ACTIONS;
    opt.now_ms = 1700000000000LL;
    opt.message_ids = (data[0] & 0x10) ? 1 : 0;
    opt.clock_skew = (data[0] & 0x20) ? 0 : 1;

    fa.live = 0;
    a.alloc = fuzz_alloc;
    a.free = fuzz_free;
    a.ctx = &fa;

    err.reason = LDSEG_REASON_N;
    err.message = NULL;

    rc = ldseg_process((const char *) data + 1, size - 1, ep, &opt, &a,
                       &res, &err);

    if (rc == LDSEG_OK) {
        if ((ep != LDSEG_EP_BATCH && res.n != 1)
            || (res.write_key == NULL && res.write_key_len != 0))
        {
            abort();
        }

        fuzz_check(&res, size - 1);

        if (data[0] & 0x40) {
            k = 0;

            for (i = 0; i < res.n; i++) {
                if (res.msgs[i].status != LDSEG_MSG_REJECTED && k++ % 2 == 0)
                {
                    ldseg_result_duplicate(&res, i);
                }
            }

            ldseg_result_compact(&res);
            fuzz_check(&res, size - 1);
        }

        ldseg_result_free(&res, &a);

    } else if (err.reason >= LDSEG_REASON_N || err.message == NULL) {
        abort();
    }

    if (fa.live != 0) {
        abort();
    }

    return 0;
}

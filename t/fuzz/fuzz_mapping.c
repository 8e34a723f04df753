
/*
 * Copyright (C) ldseg authors
 *
 * libFuzzer target over mappings evaluation: a fixed mappings file that
 * uses every directive, FQL operator and action field, compiled once, and
 * random request bodies (the first byte picks the endpoint, low three
 * bits, and the pipeline's options, the next two).  Every result must be
 * well formed: each message's events parse as a JSON array of nld events,
 * offsets and counts add up, a message's events stay within
 * LDSEG_MAPPING_GROWTH times its size and its batch context's (at most
 * the body) plus the slack, a request's within what a full batch may
 * make, and all memory returns.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg.h>
#include <ldseg_json.h>
#include <ldseg_mapping.h>


typedef struct {
    size_t                        live;
} fuzz_alloc_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void *fuzz_alloc(void *ctx, size_t size);
static void fuzz_free(void *ctx, void *p);
static void *fuzz_static_alloc(void *ctx, size_t size);
static void fuzz_static_free(void *ctx, void *p);
static size_t fuzz_count(const char *p, size_t len);
static void fuzz_check(const ldseg_result_t *res, size_t len,
    const ldseg_mappings_t *maps);


static const char  fuzz_subscriptions[] =
    "[{\"name\":\"everything\",\"subscribe\":\"type = \\\"track\\\" or "
    "type = \\\"page\\\"\",\"partnerAction\":\"trackEvent\",\"mapping\":{"
    "\"context_kind\":{\"@if\":{\"exists\":{\"@path\":\"$.properties.kind\"},"
    "\"then\":{\"@case\":{\"operator\":\"lower\",\"value\":{\"@path\":"
    "\"$.properties.kind\"}}},\"else\":\"user\"}},"
    "\"user_key\":{\"@if\":{\"blank\":{\"@path\":\"$.userId\"},\"then\":"
    "{\"@path\":\"$.userId\"},\"else\":{\"@path\":\"$.anonymousId\"}}},"
    "\"additional_context_keys\":{\"@merge\":{\"direction\":\"right\","
    "\"objects\":[{\"@path\":\"$.properties.keys\"},{\"t\":{\"@template\":"
    "\"{{event}}-{{{properties.t}}}-{{properties.a.0}}\"},\"r\":{\"@replace\":"
    "{\"pattern\":\"a\",\"replacement\":\"$&$$\",\"ignorecase\":true,"
    "\"pattern2\":\".\",\"value\":{\"@path\":\"$.properties.r\"}}}}]}},"
    "\"event_name\":{\"@case\":{\"operator\":\"upper\",\"value\":"
    "{\"@template\":\"{{event}}\"}}},"
    "\"metric_value\":{\"@path\":\"$.properties.m\"},"
    "\"event_properties\":{\"flat\":{\"@flatten\":{\"separator\":\".\","
    "\"value\":{\"@path\":\"$.properties\"}}},\"items\":{\"@arrayPath\":["
    "\"$.properties.items\",{\"id\":{\"@path\":\"$.id\"},\"n\":{\"@path\":"
    "\"items.length\"}}]},\"json\":{\"@json\":{\"mode\":\"encode\",\"value\":"
    "{\"@path\":\"$.properties\"}}},\"dec\":{\"@json\":{\"mode\":\"decode\","
    "\"value\":{\"@path\":\"$.properties.j\"}}},\"x\":{\"@excludeWhenNull\":"
    "{\"@path\":\"$.context\"}},\"p\":{\"@path\":{\"@template\":"
    "\"properties.{{properties.k}}\"}},\"all\":{\"@path\":\"$.\"}},"
    "\"timestamp\":{\"@path\":\"$.properties.when\"}}},"
    "{\"name\":\"fql\",\"subscribe\":\"(event = \\\"a\\\" or contains(event,"
    " \\\"b\\\")) and properties.n > 2 or !match(name, \\\"*x\\\") and "
    "traits.t != null or context.c.d <= 1.5 or userId = true\","
    "\"partnerAction\":\"trackEvent\",\"mapping\":{\"user_key\":{\"@path\":"
    "\"$.userId\"},\"event_name\":\"fql\",\"event_properties\":{\"@path\":"
    "\"$.properties\"}}},"
    "{\"name\":\"alias\",\"subscribe\":\"type = \\\"identify\\\" or type = "
    "\\\"alias\\\"\",\"partnerAction\":\"aliasUser\",\"mapping\":{"
    "\"user_key\":{\"@path\":\"$.traits.email\"},\"previous_key\":{\"@if\":"
    "{\"exists\":{\"@path\":\"$.previousId\"},\"then\":{\"@path\":"
    "\"$.previousId\"},\"else\":{\"@path\":\"$.anonymousId\"}}},"
    "\"timestamp\":{\"@path\":\"$.timestamp\"}}}]";


static ldseg_mappings_t  *fuzz_maps;


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


static void *
fuzz_static_alloc(void *ctx, size_t size)
{
    return malloc(size == 0 ? 1 : size);
}


static void
fuzz_static_free(void *ctx, void *p)
{
    free(p);
}


/* the events of a validated "a,b,..." run: top-level commas plus one */

static size_t
fuzz_count(const char *p, size_t len)
{
    size_t  i, n;
    int     depth, str;

    n = 1;
    depth = 0;
    str = 0;

    for (i = 0; i < len; i++) {
        if (str) {
            if (p[i] == '\\') {
                i++;

            } else if (p[i] == '"') {
                str = 0;
            }

            continue;
        }

        switch (p[i]) {
        case '"':
            str = 1;
            break;
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            depth--;
            break;
        case ',':
            n += (depth == 0);
            break;
        default:
            break;
        }
    }

    return n;
}


static void
fuzz_check(const ldseg_result_t *res, size_t len,
    const ldseg_mappings_t *maps)
{
    char                      *arr;
    size_t                     i, next, nevents, nld;
    const ldseg_msg_result_t  *m;

    nevents = 0;
    nld = 0;
    next = 0;

    for (i = 0; i < res->n; i++) {
        m = &res->msgs[i];

        if (m->status != LDSEG_MSG_EVENT) {
            if (m->err.reason >= LDSEG_REASON_N || m->err.message == NULL) {
                abort();
            }

            continue;
        }

        arr = malloc(m->event_len + 2);
        if (arr == NULL) {
            abort();
        }

        arr[0] = '[';
        memcpy(arr + 1, res->events + m->event_off, m->event_len);
        arr[m->event_len + 1] = ']';

        if (m->event_off != next
            || m->event_len == 0
            || m->nld == 0
            || m->msg_len == 0
            || m->msg_len > len
            || m->event_len > LDSEG_MAPPING_GROWTH * (m->msg_len + len)
                              + maps->slack
            || m->event_off + m->event_len > res->events_len
            || ldseg_json_validate(arr, m->event_len + 2, 1000) != LDSEG_OK
            || fuzz_count(res->events + m->event_off, m->event_len) != m->nld)
        {
            abort();
        }

        free(arr);

        next = m->event_off + m->event_len + 1;
        nevents++;
        nld += m->nld;
    }

    if (nevents != res->nevents || nld != res->nld
        || res->events_len > LDSEG_MAPPING_GROWTH * LDSEG_MAX_BATCH_BYTES
                             + maps->slack
        || res->nevents + res->nskipped + res->nrejected != res->n
        || (nevents == 0 && res->events_len != 0)
        || (nevents != 0 && next != res->events_len + 1))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                err[512];
    ldseg_rc_t          rc;
    fuzz_alloc_t        fa;
    ldseg_error_t       e;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_endpoint_e    ep;
    ldseg_allocator_t   a, sa;

    if (fuzz_maps == NULL) {
        sa.alloc = fuzz_static_alloc;
        sa.free = fuzz_static_free;
        sa.ctx = NULL;

        if (ldseg_mappings_compile(fuzz_subscriptions,
                                   sizeof(fuzz_subscriptions) - 1, &sa,
                                   &fuzz_maps, err, sizeof(err))
            != LDSEG_OK)
        {
            abort();
        }
    }

    if (size == 0) {
        return 0;
    }

    ep = (ldseg_endpoint_e) (data[0] & 0x07);

    if (ep == LDSEG_EP_UNKNOWN) {
        ep = LDSEG_EP_BATCH;
    }

    ldseg_options_init(&opt);
    opt.now_ms = 1700000000000LL;
    opt.mappings = fuzz_maps;

    /* the pipeline's options: messageIds bounded, clock skew off */
    opt.message_ids = (data[0] & 0x08) != 0;
    opt.clock_skew = (data[0] & 0x10) == 0;

    fa.live = 0;
    a.alloc = fuzz_alloc;
    a.free = fuzz_free;
    a.ctx = &fa;

    e.reason = LDSEG_REASON_NONE;
    e.message = NULL;

    rc = ldseg_process((const char *) data + 1, size - 1, ep, &opt, &a, &res,
                       &e);

    if (rc == LDSEG_OK) {
        fuzz_check(&res, size - 1, fuzz_maps);
        ldseg_result_free(&res, &a);

    } else if (e.reason == LDSEG_REASON_NONE || e.message == NULL) {
        abort();
    }

    if (fa.live != 0) {
        abort();
    }

    return 0;
}


/*
 * Copyright (C) ldseg authors
 *
 * The export translator (src/ldseg_export.c): every case of
 * t/unit/export_cases.json (an SDK post, the options, and per event the
 * expected status and Segment message, written from the schema of
 * README.md, "Export") through ldseg_export_process(), messages compared
 * as parsed JSON.  A messageId "HASH-<i>" stands for the body's hash: 16
 * hex digits, the same for every message of the post.  Then the ISO 8601
 * writer against known times.
 */


#include <ldseg_export.h>

#include "unit_json.h"


static void
test_str(ldseg_export_str_t *s, const cJSON *o, const char *name)
{
    const cJSON  *v;

    v = cJSON_GetObjectItem(o, name);

    if (cJSON_IsString(v)) {
        s->p = v->valuestring;
        s->len = strlen(v->valuestring);
    }
}


/* a "HASH-<i>" messageId matches 16 hex digits, the same within a case */

static int
test_hash_id(cJSON *expect, cJSON *got, char *hash)
{
    cJSON       *e, *g;
    const char  *es, *gs;

    e = cJSON_GetObjectItem(expect, "messageId");
    g = cJSON_GetObjectItem(got, "messageId");

    if (!cJSON_IsString(e) || !cJSON_IsString(g)
        || strncmp(e->valuestring, "HASH-", 5) != 0)
    {
        return 1;
    }

    es = e->valuestring + 5;
    gs = g->valuestring;

    if (strlen(gs) != 17 + strlen(es) || gs[16] != '-'
        || strcmp(gs + 17, es) != 0 || strspn(gs, "0123456789abcdef") != 16)
    {
        return 0;
    }

    if (hash[0] == '\0') {
        memcpy(hash, gs, 16);

    } else if (memcmp(hash, gs, 16) != 0) {
        return 0;
    }

    cJSON_SetValuestring(e, g->valuestring);

    return 1;
}


/*
 * A message over 32 KB is kept whole in res->large for the dead letter:
 * valid JSON, over the limit, with the SDK event's data uncut.
 */

static void
test_large(const char *name, size_t i, ldseg_result_t *res)
{
    char   *s;
    cJSON  *got, *p, *data;

    s = NULL;
    got = NULL;

    if (res->large != NULL
        && res->msgs[i].event_off + res->msgs[i].event_len <= res->large_len)
    {
        s = malloc(res->msgs[i].event_len + 1);
        memcpy(s, res->large + res->msgs[i].event_off, res->msgs[i].event_len);
        s[res->msgs[i].event_len] = '\0';
        got = cJSON_Parse(s);
    }

    p = cJSON_GetObjectItem(got, "properties");
    data = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "data"), "s");

    ok(got != NULL && res->nlarge == 1
       && res->msgs[i].event_len > LDSEG_MAX_MESSAGE
       && cJSON_IsString(data) && strlen(data->valuestring) > 33000
       && cJSON_GetObjectItem(got, "messageId") != NULL,
       "%s[%zu]: kept whole for the dead letter (%zu bytes)", name, i,
       res->msgs[i].event_len);

    cJSON_Delete(got);
    free(s);
}


static void
test_case(cJSON *c)
{
    int                      k;
    char                    *s, hash[17];
    size_t                   i, n;
    cJSON                   *o, *labels, *expect, *e, *got;
    ldseg_rc_t               rc;
    const char              *name, *body, *status, *code;
    unit_alloc_t             ua;
    ldseg_error_t            err;
    ldseg_result_t           res;
    ldseg_allocator_t        a;
    ldseg_export_options_t   opt;

    static const char  *kinds[] = { "feature", "click", "pageview", "custom" };

    name = cJSON_GetObjectItem(c, "name")->valuestring;
    body = cJSON_GetObjectItem(c, "body")->valuestring;
    o = cJSON_GetObjectItem(c, "options");

    ldseg_export_options_init(&opt);
    test_str(&opt.environment, o, "environment");
    test_str(&opt.project, o, "project");
    test_str(&opt.payload_id, o, "payload_id");

    labels = cJSON_GetObjectItem(o, "labels");

    for (k = 0; k < LDSEG_EXPORT_NKINDS; k++) {
        test_str(&opt.label[k], labels, kinds[k]);
    }

    unit_allocator(&a, &ua);

    rc = ldseg_export_process(body, strlen(body), &opt, &a, &res, &err);

    if (cJSON_GetObjectItem(c, "error") != NULL) {
        ok(rc == LDSEG_EINVAL
           && strcmp(unit_code(err),
                     cJSON_GetObjectItem(c, "error")->valuestring) == 0,
           "%s: refused (%s)", name,
           rc == LDSEG_OK ? "accepted" : unit_code(err));
        ok(ua.live == 0, "%s: all memory returned", name);
        return;
    }

    expect = cJSON_GetObjectItem(c, "expect");
    n = (size_t) cJSON_GetArraySize(expect);

    if (!ok(rc == LDSEG_OK && res.n == n, "%s: %zu events", name, n)) {
        return;
    }

    hash[0] = '\0';
    hash[16] = '\0';

    for (i = 0; i < n; i++) {
        e = cJSON_GetArrayItem(expect, (int) i);
        status = cJSON_GetObjectItem(e, "status")->valuestring;

        if (strcmp(status, "event") != 0) {
            code = cJSON_GetObjectItem(e, "code")->valuestring;

            ok(res.msgs[i].status == (strcmp(status, "skipped") == 0
                                      ? LDSEG_MSG_SKIPPED
                                      : LDSEG_MSG_REJECTED)
               && strcmp(unit_code(res.msgs[i].err), code) == 0,
               "%s[%zu]: %s (%s)", name, i, status,
               unit_code(res.msgs[i].err));

            if (strcmp(code, "too_large") == 0) {
                test_large(name, i, &res);
            }

            continue;
        }

        if (!ok(res.msgs[i].status == LDSEG_MSG_EVENT
                && res.msgs[i].nld == 1,
                "%s[%zu]: exported, one event for the queue to count", name,
                i))
        {
            unit_diag("%s", unit_code(res.msgs[i].err));
            continue;
        }

        s = malloc(res.msgs[i].event_len + 1);
        memcpy(s, res.events + res.msgs[i].event_off, res.msgs[i].event_len);
        s[res.msgs[i].event_len] = '\0';

        got = cJSON_Parse(s);

        if (!ok(got != NULL
                && test_hash_id(cJSON_GetObjectItem(e, "message"), got, hash)
                && unit_json_equal(got, cJSON_GetObjectItem(e, "message"), 0),
                "%s[%zu]: the Segment message", name, i))
        {
            unit_diag("got %s", s);
        }

        cJSON_Delete(got);
        free(s);
    }

    ok(res.events_len == 0 || res.events[res.events_len - 1] == '}',
       "%s: messages joined by ','", name);

    ok(res.nld == res.nevents, "%s: %zu events counted", name, res.nld);

    ldseg_result_free(&res, &a);
    ok(ua.live == 0, "%s: all memory returned", name);
}



static void *export_bytes_alloc(void *ctx, size_t size);
static void export_bytes_free(void *ctx, void *p);

static size_t  export_bytes;

int
main(void)
{
    size_t   i, j, len;
    char     buf[LDSEG_EXPORT_TIME_LEN];
    cJSON   *cases, *c;

    static const struct {
        int64_t      ms;
        const char  *iso;
    } times[] = {
        { 0, "1970-01-01T00:00:00.000Z" },
        { -1, "1969-12-31T23:59:59.999Z" },
        { 951782400000LL, "2000-02-29T00:00:00.000Z" },
        { 1700000000123LL, "2023-11-14T22:13:20.123Z" },
        { 253402300799999LL, "9999-12-31T23:59:59.999Z" },
        { 253402300800000LL, "+010000-01-01T00:00:00.000Z" },
        { -62167219200000LL, "0000-01-01T00:00:00.000Z" },
        { -62167219200001LL, "-000001-12-31T23:59:59.999Z" },
        { 8640000000000000LL, "+275760-09-13T00:00:00.000Z" },
        { -8640000000000000LL, "-271821-04-20T00:00:00.000Z" }
    };

    cases = unit_json_load("t/unit/export_cases.json");

    if (!ok(cases != NULL, "t/unit/export_cases.json read")) {
        return done();
    }

    cJSON_ArrayForEach(c, cases) {
        test_case(c);
    }

    cJSON_Delete(cases);

    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        len = ldseg_export_time(times[i].ms, buf);
        j = strlen(times[i].iso);

        ok(len == j && memcmp(buf, times[i].iso, j) == 0,
           "%lld ms is %s (%.*s)", (long long) times[i].ms, times[i].iso,
           (int) len, buf);
    }

    /* every allocation failing in turn: ENOMEM, nothing left behind */

    {
        const char               *body;
        unit_alloc_t              ua;
        ldseg_error_t             err;
        ldseg_result_t            res;
        ldseg_allocator_t         a;
        ldseg_export_options_t    opt;
        ldseg_rc_t                rc;
        size_t                    k, fails;

        body = "[{\"kind\":\"custom\",\"key\":\"k\",\"contextKeys\":"
               "{\"user\":\"u\"}}]";

        ldseg_export_options_init(&opt);
        fails = 0;

        for (k = 1; k <= 4; k++) {
            unit_allocator(&a, &ua);
            ua.fail_at = k;

            rc = ldseg_export_process(body, strlen(body), &opt, &a, &res,
                                      &err);
            if (rc == LDSEG_OK) {
                ldseg_result_free(&res, &a);

            } else if (rc != LDSEG_ENOMEM) {
                fails++;
            }

            if (ua.live != 0) {
                fails++;
            }
        }

        ok(fails == 0, "allocation failures: ENOMEM and nothing leaked");
    }

    /*
     * Hostile input costs memory in proportion: 500 KB of elements that
     * are no events (numbers, empty objects) allocate the per-element
     * results only, not an event's scratch space each.
     */

    {
        char                     *body;
        size_t                    k, len;
        ldseg_error_t             err;
        ldseg_result_t            res;
        ldseg_allocator_t         a;
        ldseg_export_options_t    opt;
        ldseg_rc_t                rc;

        static const char  *elems[] = { "1,", "{},", "{\"kind\":\"x\"}," };

        ldseg_export_options_init(&opt);

        for (k = 0; k < sizeof(elems) / sizeof(elems[0]); k++) {
            body = malloc(LDSEG_MAX_BATCH_BYTES);
            len = 1;
            body[0] = '[';

            while (len + strlen(elems[k]) + 2 < LDSEG_MAX_BATCH_BYTES) {
                memcpy(body + len, elems[k], strlen(elems[k]));
                len += strlen(elems[k]);
            }

            body[len - 1] = ']';

            a.alloc = export_bytes_alloc;
            a.free = export_bytes_free;
            a.ctx = NULL;
            export_bytes = 0;

            rc = ldseg_export_process(body, len, &opt, &a, &res, &err);

            ok(rc == LDSEG_OK && res.nevents == 0
               && export_bytes <= 48 * len,
               "%.3s... x %zu: %zu bytes allocated for %zu (at most 48 "
               "per input byte)", elems[k], res.n, export_bytes, len);

            if (rc == LDSEG_OK) {
                ldseg_result_free(&res, &a);
            }

            free(body);
        }
    }

    return done();
}


static void *
export_bytes_alloc(void *ctx, size_t size)
{
    export_bytes += size;

    return malloc(size);
}


static void
export_bytes_free(void *ctx, void *p)
{
    free(p);
}

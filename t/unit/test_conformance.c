
/*
 * Copyright (C) ldseg authors
 *
 * Runs every case of t/conformance/ (and the oracle-verified extra cases
 * of t/unit/oracle_cases.json) through ldseg_process() and compares the
 * answer and the events, as parsed JSON, with what Segment's own
 * destination produced.  Every event is also checked against the bound
 * on output: at most its message's size plus LDSEG_EVENT_SLACK.  All of
 * it runs twice: with the built-in presets, and with the same presets
 * loaded from a mappings file (t/conformance/presets.json, the
 * destination's own def.presets).
 */


#include <math.h>

#include "unit_json.h"

#include <ldseg_mapping.h>


static ldseg_endpoint_e test_endpoint(const char *path);
static int test_status_ok(const cJSON *expect, int status);
static void test_case(const char *id, const char *path, const char *body,
    size_t len, const cJSON *expect_status, const cJSON *events, int now);
static void test_batch(const cJSON *b);
static void test_slack(const ldseg_result_t *res, size_t body_len,
    const char *id);
static void test_all(cJSON *cases, cJSON *expected, cJSON *batches,
    cJSON *extra);


/* NULL, or the presets from the file: the second run */
static const ldseg_mappings_t  *test_maps;
static const char              *test_run = "";


/* the output bound over all cases: events seen, events over, max excess */
static size_t  test_slack_events;
static size_t  test_slack_over;
static size_t  test_slack_max;


static void
test_slack(const ldseg_result_t *res, size_t body_len, const char *id)
{
    size_t                     i, excess;
    const ldseg_msg_result_t  *m;

    for (i = 0; i < res->n; i++) {
        m = &res->msgs[i];

        if (m->status != LDSEG_MSG_EVENT) {
            continue;
        }

        test_slack_events++;

        if (m->msg_len == 0 || m->msg_len > body_len
            || m->event_len > m->msg_len + LDSEG_EVENT_SLACK)
        {
            test_slack_over++;
            unit_diag("%s[%zu]: message %zu bytes, event %zu bytes", id, i,
                      m->msg_len, m->event_len);
        }

        excess = (m->event_len > m->msg_len) ? m->event_len - m->msg_len : 0;

        if (excess > test_slack_max) {
            test_slack_max = excess;
        }
    }
}


/* key order ignored, numbers as doubles, absent differs from null */

static ldseg_endpoint_e
test_endpoint(const char *path)
{
    const char  *s;

    s = strrchr(path, '/');
    s = (s == NULL) ? path : s + 1;

    return ldseg_endpoint(s, strlen(s));
}


static int
test_status_ok(const cJSON *expect, int status)
{
    const cJSON  *s;

    if (expect == NULL) {
        return status == 200;
    }

    if (cJSON_IsNumber(expect)) {
        return expect->valueint == status;
    }

    cJSON_ArrayForEach(s, expect) {
        if (s->valueint == status) {
            return 1;
        }
    }

    return 0;
}


static void
test_case(const char *id, const char *path, const char *body, size_t len,
    const cJSON *expect_status, const cJSON *events, int now)
{
    int                 status, eq;
    char               *arr;
    cJSON              *got;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.now_ms = UNIT_NOW_MS;
    opt.mappings = test_maps;

    /* the oracle is the destination: Segment's API corrects clock skew */
    opt.clock_skew = 0;

    rc = ldseg_process(body, len, test_endpoint(path), &opt, &a, &res, &err);

    status = 200;

    if (rc != LDSEG_OK
        || (res.n == 1 && res.msgs[0].status == LDSEG_MSG_REJECTED))
    {
        status = 400;
    }

    ok(test_status_ok(expect_status, status), "%s%s: status %d", test_run, id,
       status);

    arr = malloc(res.events_len + 3);
    arr[0] = '[';
    memcpy(arr + 1, res.events == NULL ? "" : res.events, res.events_len);
    arr[res.events_len + 1] = ']';
    arr[res.events_len + 2] = '\0';

    got = cJSON_Parse(arr);
    eq = unit_json_equal(got, events, now);

    if (!ok(eq, "%s%s: events", test_run, id)) {
        unit_diag("got %s", arr);

        if (rc != LDSEG_OK) {
            unit_diag("rc %d %s", (int) rc, unit_code(err));

        } else if (res.n == 1 && res.msgs[0].status != LDSEG_MSG_EVENT) {
            unit_diag("%s", unit_code(res.msgs[0].err));
        }
    }

    cJSON_Delete(got);
    free(arr);

    if (rc == LDSEG_OK) {
        test_slack(&res, len, id);
        ldseg_result_free(&res, &a);
    }

    ok(ua.live == 0, "%s: all memory returned", id);
}


static void
test_batch(const cJSON *b)
{
    int                 eq;
    char               *body, *arr;
    size_t              i, len;
    cJSON              *got, *e, *idx, *events;
    ldseg_rc_t          rc;
    const char         *id;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    id = cJSON_GetObjectItem(b, "id")->valuestring;
    body = cJSON_PrintUnformatted(cJSON_GetObjectItem(b, "body"));
    len = strlen(body);

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.now_ms = UNIT_NOW_MS;
    opt.mappings = test_maps;

    /* the oracle is the destination: Segment's API corrects clock skew */
    opt.clock_skew = 0;

    rc = ldseg_process(body, len,
                       test_endpoint(cJSON_GetObjectItem(b, "path")
                                     ->valuestring),
                       &opt, &a, &res, &err);

    ok(rc == LDSEG_OK, "%s%s: batch accepted", test_run, id);

    if (rc != LDSEG_OK) {
        free(body);
        return;
    }

    ok(res.n == (size_t) cJSON_GetArraySize(cJSON_GetObjectItem(b,
                                                                 "expected")),
       "%s: %zu messages", id, res.n);

    cJSON_ArrayForEach(e, cJSON_GetObjectItem(b, "expected")) {
        idx = cJSON_GetObjectItem(e, "index");
        events = cJSON_GetObjectItem(e, "events");
        i = (size_t) idx->valueint;

        if (i >= res.n) {
            ok(0, "%s[%zu]: present", id, i);
            continue;
        }

        if (res.msgs[i].status == LDSEG_MSG_EVENT) {
            len = res.msgs[i].event_len;
            arr = malloc(len + 3);
            arr[0] = '[';
            memcpy(arr + 1, res.events + res.msgs[i].event_off, len);
            arr[len + 1] = ']';
            arr[len + 2] = '\0';

        } else {
            arr = strdup("[]");
        }

        got = cJSON_Parse(arr);
        eq = unit_json_equal(got, events,
                        cJSON_IsTrue(cJSON_GetObjectItem(e, "now")));

        if (!ok(eq, "%s%s[%zu]: events", test_run, id, i)) {
            unit_diag("got %s (%s)", arr, unit_code(res.msgs[i].err));
        }

        cJSON_Delete(got);
        free(arr);
    }

    test_slack(&res, strlen(body), id);
    ldseg_result_free(&res, &a);
    ok(ua.live == 0, "%s: all memory returned", id);

    free(body);
}


static void
test_all(cJSON *cases, cJSON *expected, cJSON *batches, cJSON *extra)
{
    int          i, n;
    char        *body;
    cJSON       *c, *r, *raw, *st;
    const char  *id;

    c = cJSON_GetObjectItem(cases, "cases");
    r = cJSON_GetObjectItem(expected, "results");
    n = cJSON_GetArraySize(c);

    ok(n == cJSON_GetArraySize(r), "%s%d cases, %d results", test_run, n,
       cJSON_GetArraySize(r));

    for (i = 0; i < n; i++) {
        const cJSON  *cs, *rs;

        cs = cJSON_GetArrayItem(c, i);
        rs = cJSON_GetArrayItem(r, i);
        id = cJSON_GetObjectItem(cs, "id")->valuestring;

        raw = cJSON_GetObjectItem(cs, "raw");
        body = cJSON_IsString(raw)
               ? strdup(raw->valuestring)
               : cJSON_PrintUnformatted(cJSON_GetObjectItem(cs, "body"));

        st = cJSON_GetObjectItem(cs, "status");
        if (st == NULL) {
            st = cJSON_GetObjectItem(rs, "status");
        }

        test_case(id, cJSON_GetObjectItem(cs, "path")->valuestring, body,
                  strlen(body), st, cJSON_GetObjectItem(rs, "events"),
                  cJSON_IsTrue(cJSON_GetObjectItem(rs, "now")));
        free(body);
    }

    cJSON_ArrayForEach(c, cJSON_GetObjectItem(batches, "batches")) {
        test_batch(c);
    }

    if (extra != NULL) {
        cJSON_ArrayForEach(c, extra) {
            body = cJSON_GetObjectItem(c, "raw")->valuestring;

            test_case(cJSON_GetObjectItem(c, "id")->valuestring,
                      cJSON_GetObjectItem(c, "path")->valuestring,
                      body, strlen(body), cJSON_GetObjectItem(c, "status"),
                      cJSON_GetObjectItem(c, "events"),
                      cJSON_IsTrue(cJSON_GetObjectItem(c, "now")));
        }

    } else {
        ok(0, "t/unit/oracle_cases.json read");
    }

    ok(test_slack_events != 0 && test_slack_over == 0,
       "%s%zu events, each at most its message + %d bytes (largest excess "
       "%zu)", test_run, test_slack_events, (int) LDSEG_EVENT_SLACK,
       test_slack_max);

    test_slack_events = 0;
    test_slack_over = 0;
    test_slack_max = 0;

}


int
main(void)
{
    char               *text, errbuf[512];
    size_t              len;
    cJSON              *cases, *expected, *batches, *extra;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_mappings_t   *maps;
    ldseg_allocator_t   a;

    cases = unit_json_load("t/conformance/cases.json");
    expected = unit_json_load("t/conformance/expected.json");
    batches = unit_json_load("t/conformance/batches.json");
    extra = unit_json_load("t/unit/oracle_cases.json");

    if (!ok(cases != NULL && expected != NULL && batches != NULL,
            "conformance files read (run from the repository root)"))
    {
        return done();
    }

    test_all(cases, expected, batches, extra);

    /* the same with the presets as a mappings file */

    text = unit_json_read("t/conformance/presets.json", &len);

    if (ok(text != NULL, "t/conformance/presets.json read")) {
        unit_allocator(&a, &ua);

        rc = ldseg_mappings_compile(text, len, &a, &maps, errbuf,
                                    sizeof(errbuf));

        if (ok(rc == LDSEG_OK, "presets.json compiled")) {
            test_maps = maps;
            test_run = "presets.json: ";

            test_all(cases, expected, batches, extra);

            test_maps = NULL;
            ldseg_mappings_free(maps);

        } else {
            unit_diag("%s", errbuf);
        }

        ok(ua.live == 0, "presets.json: all memory returned");
        free(text);
    }

    cJSON_Delete(cases);
    cJSON_Delete(expected);
    cJSON_Delete(batches);
    cJSON_Delete(extra);

    return done();
}

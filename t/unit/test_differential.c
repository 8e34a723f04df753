
/*
 * Copyright (C) ldseg authors
 *
 * The differential test: every request of t/differential/cases.json (or of
 * the file named by LDSEG_DIFF_CASES), generated at random by
 * t/differential/gen.js with what Segment's own destination makes of each
 * message, through ldseg_process().  Each message must give the events
 * the reference gives, or, for a message under one of README.md's
 * deliberate differences (t/differential/rules.js), that rule's
 * expectation; a single-message request must get the reference's status.
 * It all runs twice: with the built-in presets and with the presets from
 * a mappings file (t/conformance/presets.json).
 */


#include "unit_json.h"

#include <ldseg_mapping.h>


#define TEST_MAX_RULES  16


typedef struct {
    const char                   *name;
    unsigned                      total;
    unsigned                      matched;
} test_rule_t;


static test_rule_t              test_rules[TEST_MAX_RULES];
static unsigned                 test_nrules;
static const ldseg_mappings_t  *test_maps;
static const char              *test_run = "";


static test_rule_t *
test_rule(const char *name)
{
    unsigned  i;

    for (i = 0; i < test_nrules; i++) {
        if (strcmp(test_rules[i].name, name) == 0) {
            return &test_rules[i];
        }
    }

    if (test_nrules == TEST_MAX_RULES) {
        return &test_rules[TEST_MAX_RULES - 1];
    }

    test_rules[test_nrules].name = name;

    return &test_rules[test_nrules++];
}


static int
test_status_ok(const cJSON *expect, int status)
{
    const cJSON  *s;

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


/* message i's events as a JSON array */

static cJSON *
test_events(const ldseg_result_t *res, size_t i)
{
    char    *arr;
    size_t   len;
    cJSON   *got;

    if (i >= res->n || res->msgs[i].status != LDSEG_MSG_EVENT) {
        return cJSON_CreateArray();
    }

    len = res->msgs[i].event_len;
    arr = malloc(len + 3);
    arr[0] = '[';
    memcpy(arr + 1, res->events + res->msgs[i].event_off, len);
    arr[len + 1] = ']';
    arr[len + 2] = '\0';

    got = cJSON_Parse(arr);
    free(arr);

    return got;
}


static void
test_request(const cJSON *c, unsigned *messages, unsigned *matched)
{
    int                 status, eq;
    char               *s;
    size_t              i, n, len;
    cJSON              *got, *m, *msgs, *rule;
    ldseg_rc_t          rc;
    const char         *id, *path, *body, *ep;
    unit_alloc_t        ua;
    test_rule_t        *r;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    id = cJSON_GetObjectItem(c, "id")->valuestring;
    path = cJSON_GetObjectItem(c, "path")->valuestring;
    body = cJSON_GetObjectItem(c, "raw")->valuestring;
    msgs = cJSON_GetObjectItem(c, "messages");
    n = (size_t) cJSON_GetArraySize(msgs);
    len = strlen(body);

    ep = strrchr(path, '/') + 1;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.now_ms = UNIT_NOW_MS;
    opt.mappings = test_maps;

    /* the reference is the destination: Segment's API corrects clock skew */
    opt.clock_skew = 0;

    rc = ldseg_process(body, len, ldseg_endpoint(ep, strlen(ep)), &opt, &a,
                       &res, &err);

    if (rc != LDSEG_OK) {
        ok(0, "%s%s: body accepted (%s)", test_run, id, unit_code(err));
        *messages += (unsigned) n;
        return;
    }

    status = (res.n == 1 && res.msgs[0].status == LDSEG_MSG_REJECTED
              && strcmp(ep, "batch") != 0 && strcmp(ep, "import") != 0
              && strcmp(ep, "b") != 0)
             ? 400 : 200;

    eq = (res.n == n);

    if (!test_status_ok(cJSON_GetObjectItem(c, "status"), status)) {
        unit_diag("%s: status %d: %s", id, status, body);
        eq = 0;
    }

    i = 0;

    cJSON_ArrayForEach(m, msgs) {
        got = test_events(&res, i);
        rule = cJSON_GetObjectItem(m, "rule");

        (*messages)++;

        r = test_rule(cJSON_IsString(rule) ? rule->valuestring : "(none)");
        r->total++;

        if (unit_json_equal(got, cJSON_GetObjectItem(m, "events"),
                            cJSON_IsTrue(cJSON_GetObjectItem(m, "now"))))
        {
            (*matched)++;
            r->matched++;

        } else {
            eq = 0;
            s = cJSON_PrintUnformatted(got);
            unit_diag("%s[%zu] (%s): got %s (%s)", id, i, r->name, s,
                      i < res.n ? unit_code(res.msgs[i].err) : "-");
            free(s);
            s = cJSON_PrintUnformatted(cJSON_GetObjectItem(m, "events"));
            unit_diag("  expected %s; body %s", s, body);
            free(s);
        }

        cJSON_Delete(got);
        i++;
    }

    ok(eq, "%s%s: %zu message(s) as the reference", test_run, id, n);

    ldseg_result_free(&res, &a);

    if (ua.live != 0) {
        ok(0, "%s%s: all memory returned", test_run, id);
    }
}


int
main(void)
{
    char               *text, err[512];
    size_t              len;
    unsigned            i, messages, matched, run;
    cJSON              *cases, *c;
    ldseg_rc_t          rc;
    const char         *file;
    unit_alloc_t        ua;
    ldseg_mappings_t   *maps;
    ldseg_allocator_t   a;

    file = getenv("LDSEG_DIFF_CASES");
    if (file == NULL) {
        file = "t/differential/cases.json";
    }

    cases = unit_json_load(file);

    if (!ok(cases != NULL, "%s read", file)) {
        return done();
    }

    maps = NULL;
    unit_allocator(&a, &ua);

    text = unit_json_read("t/conformance/presets.json", &len);
    if (text != NULL) {
        rc = ldseg_mappings_compile(text, len, &a, &maps, err, sizeof(err));
        free(text);

        if (!ok(rc == LDSEG_OK, "t/conformance/presets.json compiled")) {
            unit_diag("%s", err);
        }
    }

    for (run = 0; run < 2; run++) {
        messages = 0;
        matched = 0;
        test_nrules = 0;

        if (run == 1) {
            if (maps == NULL) {
                ok(0, "the presets as a mappings file");
                break;
            }

            test_maps = maps;
            test_run = "presets.json: ";
        }

        cJSON_ArrayForEach(c, cases) {
            test_request(c, &messages, &matched);
        }

        unit_diag("%s%s: %u of %u messages as the reference or its rule",
                  test_run, file, matched, messages);

        for (i = 0; i < test_nrules; i++) {
            unit_diag("  %-28s %u of %u", test_rules[i].name,
                      test_rules[i].matched, test_rules[i].total);
        }

        ok(messages >= 5000 || getenv("LDSEG_DIFF_CASES") != NULL,
           "%sat least 5000 messages (%u)", test_run, messages);
    }

    ldseg_mappings_free(maps);
    ok(ua.live == 0, "the compiled presets' memory returned");

    cJSON_Delete(cases);

    return done();
}

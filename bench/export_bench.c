
/*
 * Copyright (C) ldseg authors
 *
 * Measures ldseg_export_process(), the export's CPU per event: SDK posts
 * shaped like what @launchdarkly/node-server-sdk sends (a feature event
 * with trackEvents and a full context, a custom event with data and a
 * metric value, index, identify and summary events), from one exported
 * event per post to 100 events per post.  "make bench-export" builds and
 * runs it (one core, a few seconds); CPU time, not wall time, so that
 * other load on the machine matters less.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldseg.h>
#include <ldseg_export.h>

#include "bench.h"


#define BENCH_EVENTS  400000


static char *bench_post(size_t n, size_t *len, size_t *exported);
static double bench_run(const char *body, size_t len, size_t exported,
    size_t rounds);


static const char  bench_feature[] =
    "{\"kind\":\"feature\",\"creationDate\":1700000000123,\"key\":"
    "\"new-checkout-flow\",\"version\":42,\"context\":{\"kind\":\"user\","
    "\"key\":\"customer-1001\",\"name\":\"Ann Example\",\"email\":"
    "\"ann@example.com\",\"country\":\"DE\",\"plan\":\"pro\"},"
    "\"variation\":1,\"value\":\"treatment\",\"default\":\"control\","
    "\"reason\":{\"kind\":\"RULE_MATCH\",\"ruleIndex\":0,\"ruleId\":"
    "\"8b1c2c0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f\",\"inExperiment\":true}}";

static const char  bench_custom[] =
    "{\"kind\":\"custom\",\"creationDate\":1700000000456,\"key\":"
    "\"order-completed\",\"context\":{\"kind\":\"multi\",\"user\":{\"key\":"
    "\"customer-1001\"},\"org\":{\"key\":\"org-77\",\"name\":\"Example "
    "GmbH\"}},\"data\":{\"order_id\":\"A-1001\",\"currency\":\"EUR\","
    "\"items\":3},\"metricValue\":64.5}";

static const char  bench_index[] =
    "{\"kind\":\"index\",\"creationDate\":1700000000000,\"context\":"
    "{\"kind\":\"user\",\"key\":\"customer-1001\",\"name\":\"Ann Example\"}}";

static const char  bench_summary[] =
    "{\"kind\":\"summary\",\"startDate\":1700000000000,\"endDate\":"
    "1700000005000,\"features\":{\"new-checkout-flow\":{\"default\":"
    "\"control\",\"contextKinds\":[\"user\"],\"counters\":[{\"variation\":1,"
    "\"version\":42,\"value\":\"treatment\",\"count\":17}]}}}";





/* n events: 6 in 10 feature, 3 custom, 1 index; a summary at the end */

static char *
bench_post(size_t n, size_t *len, size_t *exported)
{
    char    *body, *p;
    size_t   i;

    body = malloc(n * (sizeof(bench_feature) + 1) + sizeof(bench_summary)
                  + 8);
    if (body == NULL) {
        exit(1);
    }

    p = body;
    *p++ = '[';
    *exported = 0;

    for (i = 0; i < n; i++) {
        if (i % 10 < 6) {
            p += sprintf(p, "%s,", bench_feature);
            (*exported)++;

        } else if (i % 10 < 9) {
            p += sprintf(p, "%s,", bench_custom);
            (*exported)++;

        } else {
            p += sprintf(p, "%s,", bench_index);
        }
    }

    p += sprintf(p, "%s]", bench_summary);
    *len = (size_t) (p - body);

    return body;
}


static double
bench_run(const char *body, size_t len, size_t exported, size_t rounds)
{
    size_t                   i;
    double                   t0;
    ldseg_error_t            err;
    ldseg_result_t           res;
    ldseg_allocator_t        a;
    ldseg_export_options_t   opt;

    bench_allocator(&a);

    ldseg_export_options_init(&opt);
    opt.environment.p = "5f0123456789abcdef012345";
    opt.environment.len = strlen(opt.environment.p);
    opt.project.p = "default";
    opt.project.len = 7;
    opt.payload_id.p = "5a1b2c3d-0000-4000-8000-000000000001";
    opt.payload_id.len = 36;

    t0 = bench_now();

    for (i = 0; i < rounds; i++) {
        if (ldseg_export_process(body, len, &opt, &a, &res, &err) != LDSEG_OK
            || res.nevents != exported)
        {
            fprintf(stderr, "ldseg_export_process failed\n");
            exit(1);
        }

        ldseg_result_free(&res, &a);
    }

    return (bench_now() - t0) / rounds;
}


int
main(void)
{
    char          *body;
    size_t         len, exported, k;
    double         ns;

    static const size_t  sizes[] = { 1, 10, 100 };

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        body = bench_post(sizes[k], &len, &exported);

        ns = bench_run(body, len, exported, BENCH_EVENTS / sizes[k]);

        printf("post of %3zu events + summary (%6zu bytes, %3zu exported): "
               "%8.0f ns per post, %.2f us per exported event\n",
               sizes[k], len, exported, ns, ns / exported / 1000);

        free(body);
    }

    return 0;
}

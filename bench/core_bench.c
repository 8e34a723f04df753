
/*
 * Copyright (C) ldseg authors
 *
 * Measures ldseg_process() per message: a ~500-byte track and a
 * 20-message batch.  Not part of the Makefile; build and run with
 *
 *   cc -std=c99 -D_DEFAULT_SOURCE -O2 -Isrc -o build/core_bench \
 *       bench/core_bench.c src/ldseg.c src/ldseg_*.c -lcjson -lz -lm && \
 *       build/core_bench
 *
 * With a mappings file as argument (t/conformance/presets.json: the
 * destination's presets), each figure is measured with the built-in
 * presets and with the file, in pairs, and the ratio is printed.
 *
 * LDSEG_BENCH_ROUNDS sets the number of tracks (default 200000; the
 * batch runs a twentieth of it), e.g. 2000 under callgrind:
 *
 *   LDSEG_BENCH_ROUNDS=2000 valgrind --tool=callgrind build/core_bench
 *
 * and LDSEG_BENCH_CASE=track or batch runs that case only (without a
 * mappings file).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldseg.h>
#include <ldseg_mapping.h>

#include "bench.h"


#define BENCH_ROUNDS  200000


static double bench_run(const char *body, size_t len, ldseg_endpoint_e ep,
    size_t rounds);
static int bench_cmp(const void *a, const void *b);
static void bench_compare(const char *name, const char *body, size_t len,
    ldseg_endpoint_e ep, size_t rounds, size_t per);
static const ldseg_mappings_t *bench_load(const char *path);


static const ldseg_mappings_t  *bench_maps;


static const char  bench_track[] =
    "{\"type\":\"track\",\"userId\":\"customer-1001\",\"anonymousId\":"
    "\"3a1f0c2e-5b7d-4e21-9c44-0d6b1f2a7e90\",\"event\":\"Order Completed\","
    "\"properties\":{\"order_id\":\"A-1001\",\"revenue\":64.5,\"currency\":"
    "\"EUR\",\"products\":[{\"sku\":\"TEE-M\",\"price\":21.5,\"quantity\":3}"
    "]},\"context\":{\"library\":{\"name\":\"analytics.js\",\"version\":"
    "\"npm:next-1.64.0\"},\"page\":{\"path\":\"/pricing\",\"url\":"
    "\"https://shop.example.com/pricing\"},\"userAgent\":\"Mozilla/5.0 "
    "(Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36\"},"
    "\"messageId\":\"ajs-next-e11453548bde06d4e563a3065c7b2ff4\","
    "\"timestamp\":\"2022-10-25T08:27:00.124Z\",\"writeKey\":"
    "\"pubWriteKey5598ms25\"}";





static double
bench_run(const char *body, size_t len, ldseg_endpoint_e ep, size_t rounds)
{
    size_t              i;
    double              t0;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    bench_allocator(&a);

    ldseg_options_init(&opt);
    opt.now_ms = 1700000000000LL;
    opt.mappings = bench_maps;

    t0 = bench_now();

    for (i = 0; i < rounds; i++) {
        if (ldseg_process(body, len, ep, &opt, &a, &res, &err) != LDSEG_OK
            || res.nevents == 0)
        {
            fprintf(stderr, "ldseg_process failed\n");
            exit(1);
        }

        ldseg_result_free(&res, &a);
    }

    return (bench_now() - t0) / rounds;
}


static const ldseg_mappings_t *
bench_load(const char *path)
{
    FILE               *f;
    char               *text, err[512];
    long                size;
    ldseg_mappings_t   *maps;
    ldseg_allocator_t   a;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    text = malloc((size_t) size);
    if (text == NULL || fread(text, 1, (size_t) size, f) != (size_t) size) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }

    fclose(f);

    bench_allocator(&a);

    if (ldseg_mappings_compile(text, (size_t) size, &a, &maps, err,
                               sizeof(err))
        != LDSEG_OK)
    {
        fprintf(stderr, "%s: %s\n", path, err);
        exit(1);
    }

    free(text);

    return maps;
}


/*
 * Built-in and file, back to back, 21 times: each pair gives a ratio, and
 * the medians (of the times and of the ratios) are printed, so that the
 * machine's drift (other processes, clock changes) cancels out.
 */

static int
bench_cmp(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x < y) ? -1 : (x > y);
}


static void
bench_compare(const char *name, const char *body, size_t len,
    ldseg_endpoint_e ep, size_t rounds, size_t per)
{
    int                      i;
    double                   b[21], f[21], r[21];
    const ldseg_mappings_t  *maps;

    maps = bench_maps;

    for (i = 0; i < 21; i++) {
        bench_maps = NULL;
        b[i] = bench_run(body, len, ep, rounds) / per;

        bench_maps = maps;
        f[i] = bench_run(body, len, ep, rounds) / per;

        r[i] = f[i] / b[i];
    }

    qsort(b, 21, sizeof(double), bench_cmp);
    qsort(f, 21, sizeof(double), bench_cmp);
    qsort(r, 21, sizeof(double), bench_cmp);

    printf("%s: built-in %.0f ns, mappings file %.0f ns per message; "
           "file/built-in %.3f (median of 21 pairs; quartiles %.3f, %.3f)\n",
           name, b[10], f[10], r[10], r[5], r[15]);
}


int
main(int argc, char **argv)
{
    char    *batch, *p, *env, *only;
    size_t   i, len, rounds;
    double   ns;

    rounds = BENCH_ROUNDS;
    env = getenv("LDSEG_BENCH_ROUNDS");

    if (env != NULL && atol(env) >= 20) {
        rounds = (size_t) atol(env);
    }

    only = getenv("LDSEG_BENCH_CASE");
    len = strlen(bench_track);

    batch = malloc(20 * (len + 1) + 64);
    p = batch;
    p += sprintf(p, "{\"batch\":[");

    for (i = 0; i < 20; i++) {
        p += sprintf(p, "%s%s", i == 0 ? "" : ",", bench_track);
    }

    p += sprintf(p, "],\"sentAt\":\"2022-10-25T08:27:01.000Z\"}");

    if (argc > 1) {
        bench_maps = bench_load(argv[1]);

        bench_compare("track", bench_track, len, LDSEG_EP_TRACK,
                      rounds / 10, 1);
        bench_compare("batch of 20", batch, (size_t) (p - batch),
                      LDSEG_EP_BATCH, rounds / 200, 20);

        ldseg_mappings_free((ldseg_mappings_t *) bench_maps);
        free(batch);

        return 0;
    }

    if (only == NULL || strcmp(only, "track") == 0) {
        ns = bench_run(bench_track, len, LDSEG_EP_TRACK, rounds);
        printf("track (%zu bytes): %.0f ns per message\n", len, ns);
    }

    if (only != NULL && strcmp(only, "batch") != 0) {
        free(batch);
        return 0;
    }

    ns = bench_run(batch, (size_t) (p - batch), LDSEG_EP_BATCH,
                   rounds / 20);
    printf("batch of 20 (%zu bytes): %.0f ns per batch, %.0f ns per "
           "message\n", (size_t) (p - batch), ns, ns / 20);

    free(batch);

    return 0;
}

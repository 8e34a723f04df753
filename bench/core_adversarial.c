
/*
 * Copyright (C) ldseg authors
 *
 * Core-only cost of the adversarial bodies of bench/adversarial/gen.pl:
 * ldseg_process() (and inflate() for a .gz body) per input byte, against
 * the benchmark's track body.  Built with -O2 by bench/adversarial.sh:
 *
 *   core_adversarial DIR track.json objects.json ... gzip.json.gz
 *
 * prints one line per body: bytes, events, output bytes, ns per input
 * byte (the best of BENCH_REPEAT measures, after a warm-up), the ratio to
 * the first body, and for a .gz body the same per wire byte.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include <ldseg.h>

#include "bench.h"


#define BENCH_MIN_NS      200000000.0      /* 0.2 s per measure at least */
#define BENCH_MIN_ROUNDS  5
#define BENCH_REPEAT      3                /* measures per body: the best */
#define BENCH_INFLATE_MAX (LDSEG_MAX_BATCH_BYTES + 1)


typedef struct {
    char                         *data;
    size_t                        len;       /* wire bytes */
    int                           gzip;
    ldseg_endpoint_e              ep;
} bench_body_t;


static int bench_read(const char *dir, const char *name, bench_body_t *b);
static size_t bench_inflate(const bench_body_t *b, char *out);
static double bench_run(const bench_body_t *b, char *scratch,
    size_t *inflated, size_t *nevents, size_t *events_len);





static int
bench_read(const char *dir, const char *name, bench_body_t *b)
{
    FILE    *f;
    long     size;
    char     path[1024];
    size_t   n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    b->data = malloc((size_t) size + 1);
    if (b->data == NULL) {
        fclose(f);
        return -1;
    }

    n = fread(b->data, 1, (size_t) size, f);
    fclose(f);

    if (n != (size_t) size) {
        return -1;
    }

    b->len = n;
    n = strlen(name);
    b->gzip = (n > 3 && strcmp(name + n - 3, ".gz") == 0);
    b->ep = (strcmp(name, "track.json") == 0) ? LDSEG_EP_TRACK
                                              : LDSEG_EP_BATCH;

    return 0;
}


/* as the glue does: one inflate() into a buffer one byte over the limit */

static size_t
bench_inflate(const bench_body_t *b, char *out)
{
    z_stream  z;

    memset(&z, 0, sizeof(z_stream));

    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        exit(1);
    }

    z.next_in = (unsigned char *) b->data;
    z.avail_in = (unsigned) b->len;
    z.next_out = (unsigned char *) out;
    z.avail_out = BENCH_INFLATE_MAX;

    if (inflate(&z, Z_FINISH) != Z_STREAM_END) {
        fprintf(stderr, "corrupt or oversized gzip body\n");
        exit(1);
    }

    inflateEnd(&z);

    return BENCH_INFLATE_MAX - z.avail_out;
}


static double
bench_run(const bench_body_t *b, char *scratch, size_t *inflated,
    size_t *nevents, size_t *events_len)
{
    size_t              rounds, len;
    double              t0, t;
    const char         *body;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    bench_allocator(&a);

    ldseg_options_init(&opt);
    opt.now_ms = 1700000000000LL;

    rounds = 0;
    t0 = bench_now();

    do {
        if (b->gzip) {
            len = bench_inflate(b, scratch);
            body = scratch;

        } else {
            len = b->len;
            body = b->data;
        }

        if (ldseg_process(body, len, b->ep, &opt, &a, &res, &err)
            != LDSEG_OK)
        {
            fprintf(stderr, "ldseg_process failed: %s\n", err.message);
            exit(1);
        }

        *inflated = len;
        *nevents = res.nevents;
        *events_len = res.events_len;

        ldseg_result_free(&res, &a);
        rounds++;
        t = bench_now() - t0;

    } while (t < BENCH_MIN_NS || rounds < BENCH_MIN_ROUNDS);

    return t / (double) rounds;
}


int
main(int argc, char **argv)
{
    int            i, k;
    char          *scratch;
    size_t         inflated, nevents, events_len;
    double         ns, t, base;
    bench_body_t   b;

    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR track.json BODY...\n", argv[0]);
        return 2;
    }

    scratch = malloc(BENCH_INFLATE_MAX);
    if (scratch == NULL) {
        return 1;
    }

    base = 0;

    printf("%-18s %8s %6s %9s %9s %7s %9s %7s\n", "body", "bytes",
           "events", "out", "ns/byte", "ratio", "ns/wireB", "ratio");

    for (i = 2; i < argc; i++) {
        if (bench_read(argv[1], argv[i], &b) != 0) {
            return 1;
        }

        if (i == 2) {
            /* warm-up: caches, allocator, CPU frequency */
            (void) bench_run(&b, scratch, &inflated, &nevents, &events_len);
        }

        ns = 0;

        for (k = 0; k < BENCH_REPEAT; k++) {
            t = bench_run(&b, scratch, &inflated, &nevents, &events_len);

            if (ns == 0 || t < ns) {
                ns = t;
            }
        }

        if (base == 0) {
            base = ns / (double) inflated;
        }

        printf("%-18s %8zu %6zu %9zu %9.2f %7.2f", argv[i], inflated,
               nevents, events_len, ns / (double) inflated,
               ns / (double) inflated / base);

        if (b.gzip) {
            printf(" %9.2f %7.2f", ns / (double) b.len,
                   ns / (double) b.len / base);
        }

        printf("\n");
        fflush(stdout);

        free(b.data);
    }

    free(scratch);

    return 0;
}

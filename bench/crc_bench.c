
/*
 * Copyright (C) ldseg authors
 *
 * The outbound gzip.  The CRC-32: ldseg_crc32() (src/ldseg_crc32.c), its
 * folding and portable versions and zlib's crc32() in GB/s on payloads
 * like the ones the sender compresses, 100 LaunchDarkly events of ~29 KB
 * translated by the core, and below 4 KB in ns per call; then the gzip of
 * the payloads through zlib's gzip wrapper (which computes the CRC-32
 * itself) and as raw deflate with the header and trailer written around
 * it and the CRC-32 by ldseg_crc32(), which must give the same bytes.
 *
 * The deflate: zlib's raw deflate at level 1 (what the sender did before)
 * against ldseg_deflate() (src/ldseg_deflate.c, what it does now), time
 * per payload, MB/s, us per event and compressed size, on 100 and 1000
 * events of each kind; ldseg_deflate()'s stream is checked to inflate to
 * the payload.
 *
 * Two kinds of payload: track messages shaped like bench/batch.json's
 * with varied users, IDs and amounts; and bench/batch.json's 20 events
 * again and again, what "make bench" sends, which deflate compresses much
 * faster.
 *
 * "make bench-crc" builds and runs it (one core, some 30 seconds;
 * "build/crc_bench bench/batch.json deflate" only the deflate).  CPU time
 * of the process, not wall time, so that other load on the machine
 * matters less; each figure is the median of BENCH_ROUNDS rounds, the
 * variants alternating within a round.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include <ldseg.h>
#include <ldseg_crc32.h>
#include <ldseg_deflate.h>

#include "bench.h"


#define BENCH_MESSAGES    100
#define BENCH_ROUNDS      7
#define BENCH_CRC_BYTES   (64 * 1024 * 1024)   /* a variant, a round */
#define BENCH_GZIPS       2000
#define BENCH_VARIANTS    4
#define BENCH_DEFLATE_BYTES  (24 * 1024 * 1024)   /* a variant, a round */


typedef uint32_t (*bench_crc_pt)(uint32_t crc, const void *p, size_t len);

typedef struct {
    const char                   *name;
    bench_crc_pt                  crc;
} bench_variant_t;


static uint32_t bench_random(uint32_t *state);
static char *bench_varied(size_t messages, size_t *len, size_t *nevents);
static char *bench_repeated(const char *path, size_t times, size_t *len,
    size_t *nevents);
static char *bench_events_array(const char *body, size_t size, size_t times,
    size_t *len, size_t *nevents);
static void bench_measure(const char *name, const char *payload, size_t len,
    size_t nevents);
static uint32_t bench_zlib(uint32_t crc, const void *p, size_t len);
static double bench_crc(bench_crc_pt crc, const char *p, size_t len,
    size_t calls);
static size_t bench_zlib_deflate(z_stream *z, const char *p, size_t len,
    unsigned char *out, size_t size);
static size_t bench_gzip_raw(z_stream *z, const char *p, size_t len,
    unsigned char *out, size_t size);
static void bench_deflate(const char *name, const char *payload, size_t len,
    size_t nevents);
static int bench_inflates(const unsigned char *p, size_t n,
    const char *payload, size_t len);
static double bench_median(double *v, size_t n);
static int bench_cmp(const void *a, const void *b);


static const char  *bench_events[] = {
    "Order Completed", "Product Viewed", "Signed Up", "Checkout Started"
};





static uint32_t
bench_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;

    return *state;
}


/*
 * messages track messages with varied users, orders and amounts, in
 * Segment batches of BENCH_MESSAGES: their events as the sender POSTs
 * them, one JSON array.
 */

static char *
bench_varied(size_t messages, size_t *len, size_t *nevents)
{
    char      *body, *p, *out, *events;
    size_t     i, k, n, size, elen;
    uint32_t   seed, r;

    body = malloc(BENCH_MESSAGES * 1024);
    out = malloc(messages * 1024 + 2);

    if (body == NULL || out == NULL) {
        free(body);
        free(out);
        return NULL;
    }

    seed = 2463534242u;

    size = 0;
    out[size++] = '[';
    *nevents = 0;

    for (k = 0; k < messages; k += BENCH_MESSAGES) {
        p = body;
        p += sprintf(p, "{\"batch\":[");

        for (i = k; i < k + BENCH_MESSAGES && i < messages; i++) {
            r = bench_random(&seed);

            p += sprintf(p, "%s{\"type\":\"track\",\"userId\":\"user-%06u\","
                "\"anonymousId\":\"%08x-%04x-4%03x-8%03x-%08x%04x\","
                "\"event\":\"%s\",\"properties\":{\"orderId\":\"ord-%05u\","
                "\"value\":%u.%02u,\"revenue\":%u.%02u,\"currency\":\"USD\","
                "\"products\":%u,\"coupon\":\"SPRING\"},"
                "\"context\":{\"ip\":\"203.0.113.%u\",\"locale\":\"en-US\","
                "\"library\":{\"name\":\"analytics-node\","
                "\"version\":\"6.2.0\"},"
                "\"userAgent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
                "Gecko/20100101 Firefox/128.0\","
                "\"page\":{\"path\":\"/checkout\","
                "\"url\":\"https://shop.example.com/checkout\"}},"
                "\"timestamp\":\"2026-11-21T12:%02u:%02u.%03uZ\","
                "\"messageId\":\"bench-%08x\"}",
                i == k ? "" : ",", r % 1000000, bench_random(&seed),
                r & 0xffff, (r >> 4) & 0xfff, (r >> 8) & 0xfff,
                bench_random(&seed), r & 0xffff, bench_events[r % 4],
                (unsigned) i * 37 % 100000, r % 500, r % 100, r % 500,
                r % 100, 1 + r % 9, r % 255, (unsigned) i / 60 % 60,
                (unsigned) i % 60, r % 1000, bench_random(&seed));
        }

        p += sprintf(p, "]}");

        events = bench_events_array(body, p - body, 1, &elen, &n);
        if (events == NULL) {
            free(body);
            free(out);
            return NULL;
        }

        if (k != 0) {
            out[size++] = ',';
        }

        /* without the brackets */
        memcpy(out + size, events + 1, elen - 2);
        size += elen - 2;
        *nevents += n;

        free(events);
    }

    out[size++] = ']';

    free(body);

    *len = size;

    return out;
}


/* the events of the Segment batch in the file, times times */

static char *
bench_repeated(const char *path, size_t times, size_t *len, size_t *nevents)
{
    FILE    *f;
    char    *body, *out;
    size_t   size;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }

    body = malloc(1024 * 1024);
    if (body == NULL) {
        fclose(f);
        return NULL;
    }

    size = fread(body, 1, 1024 * 1024, f);
    fclose(f);

    out = bench_events_array(body, size, times, len, nevents);

    free(body);

    return out;
}


static char *
bench_events_array(const char *body, size_t size, size_t times, size_t *len,
    size_t *nevents)
{
    char               *out, *p;
    size_t              i;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    bench_allocator(&a);

    ldseg_options_init(&opt);
    opt.now_ms = 1795262400000LL;

    if (ldseg_process(body, size, LDSEG_EP_BATCH, &opt, &a, &res, &err)
        != LDSEG_OK)
    {
        fprintf(stderr, "ldseg_process() failed: %s\n", err.message);
        return NULL;
    }

    out = malloc(times * (res.events_len + 1) + 2);
    if (out == NULL) {
        ldseg_result_free(&res, &a);
        return NULL;
    }

    p = out;
    *p++ = '[';

    for (i = 0; i < times; i++) {
        if (i != 0) {
            *p++ = ',';
        }

        memcpy(p, res.events, res.events_len);
        p += res.events_len;
    }

    *p++ = ']';

    *len = p - out;
    *nevents = times * res.nevents;

    ldseg_result_free(&res, &a);

    return out;
}


static uint32_t
bench_zlib(uint32_t crc, const void *p, size_t len)
{
    return (uint32_t) crc32(crc, p, (uInt) len);
}


/* ns per call */

static double
bench_crc(bench_crc_pt crc, const char *p, size_t len, size_t calls)
{
    size_t    i;
    double    t0;
    uint32_t  sum;

    sum = 0;
    t0 = bench_now();

    for (i = 0; i < calls; i++) {
        sum += crc(sum, p, len);
    }

    t0 = bench_now() - t0;

    if (sum == 0x12345678) {
        printf("(unlikely)\n");
    }

    return t0 / calls;
}


/*
 * zlib's deflate of the payload as z was set up: the gzip wrapper (the
 * sender before the CRC), or raw deflate (before ldseg_deflate())
 */

static size_t
bench_zlib_deflate(z_stream *z, const char *p, size_t len, unsigned char *out,
    size_t size)
{
    if (deflateReset(z) != Z_OK) {
        return 0;
    }

    z->next_in = (unsigned char *) p;
    z->avail_in = len;
    z->next_out = out;
    z->avail_out = size;

    if (deflate(z, Z_FINISH) != Z_STREAM_END) {
        return 0;
    }

    return size - z->avail_out;
}


/* the sender now: raw deflate, header and trailer, ldseg_crc32() */

static size_t
bench_gzip_raw(z_stream *z, const char *p, size_t len, unsigned char *out,
    size_t size)
{
    uint32_t        crc;
    unsigned char  *o;

    static const unsigned char  header[10] = {
        0x1f, 0x8b, Z_DEFLATED, 0, 0, 0, 0, 0, 4, 3
    };

    if (deflateReset(z) != Z_OK) {
        return 0;
    }

    memcpy(out, header, 10);

    z->next_in = (unsigned char *) p;
    z->avail_in = len;
    z->next_out = out + 10;
    z->avail_out = size - 18;

    if (deflate(z, Z_FINISH) != Z_STREAM_END) {
        return 0;
    }

    crc = ldseg_crc32(0, p, len);

    o = z->next_out;

    *o++ = (unsigned char) crc;
    *o++ = (unsigned char) (crc >> 8);
    *o++ = (unsigned char) (crc >> 16);
    *o++ = (unsigned char) (crc >> 24);
    *o++ = (unsigned char) len;
    *o++ = (unsigned char) (len >> 8);
    *o++ = (unsigned char) (len >> 16);
    *o++ = (unsigned char) (len >> 24);

    return o - out;
}


static int
bench_cmp(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), bench_cmp);

    return v[n / 2];
}


static void
bench_measure(const char *name, const char *payload, size_t len,
    size_t nevents)
{
    size_t            nvariants, i, j, calls, bound, zlen, rlen;
    double            t[BENCH_VARIANTS][BENCH_ROUNDS], ns[BENCH_VARIANTS];
    double            tz[BENCH_ROUNDS], tr[BENCH_ROUNDS], before, after;
    z_stream          zs, rs;
    unsigned char    *zout, *rout;
    bench_variant_t   variants[BENCH_VARIANTS];

    nvariants = 0;

    variants[nvariants].name = "zlib crc32()";
    variants[nvariants++].crc = bench_zlib;

    variants[nvariants].name = "ldseg_crc32()";
    variants[nvariants++].crc = ldseg_crc32;

    variants[nvariants].name = "ldseg_crc32_portable()";
    variants[nvariants++].crc = ldseg_crc32_portable;

#if (LDSEG_CRC32_CLMUL)
    if (ldseg_crc32_clmul_usable()) {
        variants[nvariants].name = "ldseg_crc32_clmul()";
        variants[nvariants++].crc = ldseg_crc32_clmul;
    }
#endif

    printf("%s: %zu events, %zu bytes, CRC-32 0x%08x (zlib 0x%08x)\n",
           name, nevents, len, ldseg_crc32(0, payload, len),
           bench_zlib(0, payload, len));

    calls = BENCH_CRC_BYTES / len;

    for (i = 0; i < BENCH_ROUNDS; i++) {
        for (j = 0; j < nvariants; j++) {
            t[j][i] = bench_crc(variants[j].crc, payload, len, calls);
        }
    }

    printf("  CRC-32, median of %d rounds:\n", BENCH_ROUNDS);

    for (j = 0; j < nvariants; j++) {
        ns[j] = bench_median(t[j], BENCH_ROUNDS);

        printf("    %-24s %7.0f ns  %6.2f GB/s  %5.2fx zlib\n",
               variants[j].name, ns[j], len / ns[j], ns[0] / ns[j]);
    }

    /* the gzip, before and after */

    memset(&zs, 0, sizeof(z_stream));
    memset(&rs, 0, sizeof(z_stream));

    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY)
        != Z_OK
        || deflateInit2(&rs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY)
           != Z_OK)
    {
        exit(1);
    }

    bound = deflateBound(&zs, len) + 32;

    zout = malloc(bound);
    rout = malloc(bound);

    if (zout == NULL || rout == NULL) {
        exit(1);
    }

    zlen = bench_zlib_deflate(&zs, payload, len, zout, bound);
    rlen = bench_gzip_raw(&rs, payload, len, rout, bound);

    printf("  gzip level 1: %zu bytes with zlib's wrapper, %zu raw + "
           "ldseg_crc32(): %s\n", zlen, rlen,
           (zlen != 0 && zlen == rlen && memcmp(zout, rout, zlen) == 0)
           ? "the same bytes" : "DIFFERENT BYTES");

    for (i = 0; i < BENCH_ROUNDS; i++) {
        tz[i] = bench_now();

        for (j = 0; j < BENCH_GZIPS; j++) {
            (void) bench_zlib_deflate(&zs, payload, len, zout, bound);
        }

        tz[i] = (bench_now() - tz[i]) / BENCH_GZIPS;

        tr[i] = bench_now();

        for (j = 0; j < BENCH_GZIPS; j++) {
            (void) bench_gzip_raw(&rs, payload, len, rout, bound);
        }

        tr[i] = (bench_now() - tr[i]) / BENCH_GZIPS;
    }

    before = bench_median(tz, BENCH_ROUNDS);
    after = bench_median(tr, BENCH_ROUNDS);

    printf("  gzip per payload, median of %d rounds: before %.2f us, "
           "after %.2f us\n    (%.2f us less, %.0f%%; %.3f us per event)\n\n",
           BENCH_ROUNDS, before / 1000, after / 1000,
           (before - after) / 1000, 100 * (before - after) / before,
           (before - after) / 1000 / nevents);

    deflateEnd(&zs);
    deflateEnd(&rs);

    free(zout);
    free(rout);
}


/* non-zero if the raw deflate stream inflates to the payload */

static int
bench_inflates(const unsigned char *p, size_t n, const char *payload,
    size_t len)
{
    int             rc;
    z_stream        z;
    unsigned char  *back;

    back = malloc(len + 1);
    if (back == NULL) {
        return 0;
    }

    memset(&z, 0, sizeof(z_stream));

    if (inflateInit2(&z, -15) != Z_OK) {
        free(back);
        return 0;
    }

    z.next_in = (unsigned char *) p;
    z.avail_in = n;
    z.next_out = back;
    z.avail_out = len + 1;

    rc = inflate(&z, Z_FINISH);

    rc = (rc == Z_STREAM_END && z.total_out == len
          && memcmp(back, payload, len) == 0);

    inflateEnd(&z);
    free(back);

    return rc;
}


/*
 * The deflate of a payload, zlib's level 1 (before) against
 * ldseg_deflate() (now), alternating within a round.
 */

static void
bench_deflate(const char *name, const char *payload, size_t len,
    size_t nevents)
{
    size_t            i, j, calls, bound, zlen, dlen, first;
    double            tz[BENCH_ROUNDS], td[BENCH_ROUNDS], z, l;
    z_stream          zs;
    unsigned char    *zout, *dout;
    ldseg_deflate_t  *d;

    memset(&zs, 0, sizeof(z_stream));

    if (deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        exit(1);
    }

    d = malloc(sizeof(ldseg_deflate_t));
    bound = deflateBound(&zs, len);
    zout = malloc(bound);
    dout = malloc(ldseg_deflate_bound(len));

    if (d == NULL || zout == NULL || dout == NULL) {
        exit(1);
    }

    ldseg_deflate_init(d);

    zlen = bench_zlib_deflate(&zs, payload, len, zout, bound);
    dlen = ldseg_deflate(d, (const uint8_t *) payload, len, dout);

    if (!bench_inflates(dout, dlen, payload, len)) {
        printf("%s: ldseg_deflate() DOES NOT INFLATE TO THE PAYLOAD\n", name);
        exit(1);
    }

    first = dlen;

    calls = BENCH_DEFLATE_BYTES / len + 1;

    for (i = 0; i < BENCH_ROUNDS; i++) {
        tz[i] = bench_now();

        for (j = 0; j < calls; j++) {
            (void) bench_zlib_deflate(&zs, payload, len, zout, bound);
        }

        tz[i] = (bench_now() - tz[i]) / calls;

        td[i] = bench_now();

        for (j = 0; j < calls; j++) {
            dlen = ldseg_deflate(d, (const uint8_t *) payload, len, dout);
        }

        td[i] = (bench_now() - td[i]) / calls;
    }

    /* the codes learned from the payloads before */

    if (!bench_inflates(dout, dlen, payload, len)) {
        printf("%s: ldseg_deflate() DOES NOT INFLATE TO THE PAYLOAD\n", name);
        exit(1);
    }

    z = bench_median(tz, BENCH_ROUNDS);
    l = bench_median(td, BENCH_ROUNDS);

    printf("%s: %zu events, %zu bytes, median of %d rounds\n",
           name, nevents, len, BENCH_ROUNDS);
    printf("    zlib level 1     %8.1f us  %5.0f MB/s  %6.3f us/event  "
           "%5.1f%%\n", z / 1000, len * 1000 / z, z / 1000 / nevents,
           100.0 * zlen / len);
    printf("    ldseg_deflate()  %8.1f us  %5.0f MB/s  %6.3f us/event  "
           "%5.1f%%  %.2fx zlib\n", l / 1000, len * 1000 / l,
           l / 1000 / nevents, 100.0 * dlen / len, z / l);
    printf("    (ldseg_deflate()'s first call, with no codes learned yet: "
           "%.1f%%)\n", 100.0 * first / len);

    deflateEnd(&zs);

    free(d);
    free(zout);
    free(dout);
}


int
main(int argc, char **argv)
{
    char        *payload, *varied[2], *repeated[2];
    size_t       len, nevents, i, k, calls, vlen[2], vevents[2], rlen[2];
    size_t       revents[2];
    double       tz[BENCH_ROUNDS], tl[BENCH_ROUNDS];
    const char  *path;

    static const size_t  sizes[] = { 16, 32, 64, 128, 256, 1024, 4096 };

    path = (argc > 1) ? argv[1] : "bench/batch.json";

    varied[0] = bench_varied(BENCH_MESSAGES, &vlen[0], &vevents[0]);
    varied[1] = bench_varied(10 * BENCH_MESSAGES, &vlen[1], &vevents[1]);
    repeated[0] = bench_repeated(path, 5, &rlen[0], &revents[0]);
    repeated[1] = bench_repeated(path, 50, &rlen[1], &revents[1]);

    if (varied[0] == NULL || varied[1] == NULL || repeated[0] == NULL
        || repeated[1] == NULL)
    {
        return 1;
    }

    if (argc > 2 && strcmp(argv[2], "deflate") == 0) {
        goto deflate;
    }

    payload = varied[0];
    len = vlen[0];
    nevents = vevents[0];

    bench_measure("varied events", payload, len, nevents);

    /* short buffers: where folding starts to pay */

    printf("ns per call by length, zlib / ldseg_crc32():\n");

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        calls = 4 * 1024 * 1024 / (sizes[k] < 256 ? 256 : sizes[k]);

        for (i = 0; i < BENCH_ROUNDS; i++) {
            tz[i] = bench_crc(bench_zlib, payload, sizes[k], calls);
            tl[i] = bench_crc(ldseg_crc32, payload, sizes[k], calls);
        }

        printf("  %5zu bytes: %7.1f / %7.1f ns\n", sizes[k],
               bench_median(tz, BENCH_ROUNDS), bench_median(tl, BENCH_ROUNDS));
    }

    printf("\n");

    bench_measure("bench/batch.json x 5", repeated[0], rlen[0], revents[0]);

deflate:

    printf("raw deflate, zlib level 1 (before) and ldseg_deflate() (now):\n");

    for (i = 0; i < 2; i++) {
        bench_deflate("  varied events", varied[i], vlen[i], vevents[i]);
    }

    for (i = 0; i < 2; i++) {
        bench_deflate("  bench/batch.json's, the same again", repeated[i],
                      rlen[i], revents[i]);
    }

    for (i = 0; i < 2; i++) {
        free(varied[i]);
        free(repeated[i]);
    }

    return 0;
}

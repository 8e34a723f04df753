
/*
 * Copyright (C) ldseg authors
 *
 * Delivery policy: the outcome of every class of answer, Retry-After,
 * the backoff caps and jitter, the dead-letter threshold, overflow, and
 * the split point of payloads with tricky strings.
 */


#include <limits.h>

#include <ldseg_delivery.h>
#include <ldseg_json.h>

#include "unit.h"


#define TEST_NELTS(a)  (sizeof(a) / sizeof((a)[0]))

#define D_DONE         LDSEG_DELIVERY_DONE
#define D_RETRY        LDSEG_DELIVERY_RETRY
#define D_SPLIT        LDSEG_DELIVERY_SPLIT
#define D_REFUSED      LDSEG_DELIVERY_REFUSED_ID
#define D_DEAD         LDSEG_DELIVERY_DEAD_LETTER


typedef struct {
    unsigned                      conf;      /* index in test_confs */
    long                          status;
    int64_t                       retry_after_s;
    unsigned                      attempts;
    uint32_t                      rnd;
    ldseg_delivery_e              outcome;
    uint64_t                      delay_ms;
    unsigned                      pause;
    unsigned                      behind;
} test_outcome_t;


typedef struct {
    const char                   *text;
    size_t                        nevents;
    const char                   *left;      /* NULL: -1 */
} test_split_t;


static int test_outcome_row(size_t i, const test_outcome_t *t);
static int test_jitter(const ldseg_delivery_conf_t *conf, long status);
static int test_jitter_reach(void);
static int test_invariants(void);
static uint64_t test_backoff(const ldseg_delivery_conf_t *conf,
    unsigned attempts);
static int test_split_row(size_t i, const test_split_t *t);
static int test_split_halves(void);
static int test_split_count(const char *p, size_t len, size_t *n);
static int test_split_large(void);


static const ldseg_delivery_conf_t  test_confs[] = {
    /* 0: the defaults, no dead letter */
    { 1000, 60000, 3600000, 0 },

    /* 1, 2: dead letter on the first and the fifth refusal */
    { 1000, 60000, 3600000, 1 },
    { 1000, 60000, 3600000, 5 },

    /* 3: no caps */
    { 1000, UINT64_MAX, UINT64_MAX, 0 },

    /* 4: a base that overflows when doubled; a small Retry-After cap */
    { (UINT64_MAX / 2) + 1, UINT64_MAX, 1500, 0 },

    /* 5: the largest threshold */
    { 1000, 60000, 3600000, UINT_MAX },

    /* 6: everything zero */
    { 0, 0, 0, 0 }
};


static const test_outcome_t  test_outcomes[] = {

    /* 2xx: done, whatever else is known */
    { 0, 200, 0, 0, 0, D_DONE, 0, 0, 0 },
    { 0, 201, 0, 0, 0, D_DONE, 0, 0, 0 },
    { 0, 204, 0, 0, 0, D_DONE, 0, 0, 0 },
    { 0, 299, 0, 0, 0, D_DONE, 0, 0, 0 },
    { 1, 202, 30, 7, 0xffffffff, D_DONE, 0, 0, 0 },

    /* 413: split at once, never a dead letter */
    { 0, 413, 0, 0, 0, D_SPLIT, 0, 0, 0 },
    { 0, 413, 30, 3, 12345, D_SPLIT, 0, 0, 0 },
    { 1, 413, 0, 9, 0, D_SPLIT, 0, 0, 0 },

    /* 401, 403, 404: the ID is refused, the destination waits max_ms */
    { 0, 401, 0, 0, 0, D_REFUSED, 60000, 1, 0 },
    { 0, 403, 0, 0, 0, D_REFUSED, 60000, 1, 0 },
    { 0, 404, 0, 0, 0, D_REFUSED, 60000, 1, 0 },
    { 1, 404, 30, 9, 0xffffffff, D_REFUSED, 60000, 1, 0 },
    { 3, 401, 0, 0, 0, D_REFUSED, UINT64_MAX, 1, 0 },
    { 6, 403, 0, 0, 0, D_REFUSED, 0, 1, 0 },

    /* no answer, 408, 429, 5xx: retry, the destination pauses */
    { 0, 0, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 0, 0, 0, 500, D_RETRY, 1000, 1, 0 },
    { 0, 0, 0, 0, 501, D_RETRY, 500, 1, 0 },
    { 0, 408, 0, 1, 1000, D_RETRY, 2000, 1, 0 },
    { 0, 429, 0, 1, 0xffffffff, D_RETRY, 1619, 1, 0 },
    { 0, 500, 0, 2, 1, D_RETRY, 2001, 1, 0 },
    { 0, 502, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 503, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 504, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 599, 0, 0, 0, D_RETRY, 500, 1, 0 },

    /* a status with no meaning here is retried like a 5xx */
    { 0, 100, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 101, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 199, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 300, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 301, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 304, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 399, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 600, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 999, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, -1, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, -404, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, LONG_MAX, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, LONG_MIN, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 1, 500, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 1, 408, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 1, 429, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 1, 0, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 1, 302, 0, 0, 0, D_RETRY, 500, 1, 0 },

    /* the backoff doubles, then max_ms caps it */
    { 0, 500, 0, 5, 0, D_RETRY, 16000, 1, 0 },
    { 0, 500, 0, 5, 16000, D_RETRY, 32000, 1, 0 },
    { 0, 500, 0, 6, 0, D_RETRY, 30000, 1, 0 },
    { 0, 500, 0, 6, 30000, D_RETRY, 60000, 1, 0 },
    { 0, 500, 0, 16, 0, D_RETRY, 30000, 1, 0 },
    { 0, 500, 0, UINT_MAX, 0xffffffff, D_RETRY, 30000 + 24135, 1, 0 },

    /* ... and stops doubling after 16 attempts */
    { 3, 500, 0, 15, 0, D_RETRY, 16384000, 1, 0 },
    { 3, 500, 0, 16, 0, D_RETRY, 32768000, 1, 0 },
    { 3, 500, 0, 17, 0, D_RETRY, 32768000, 1, 0 },
    { 3, 500, 0, 1000, 0, D_RETRY, 32768000, 1, 0 },
    { 3, 500, 0, UINT_MAX, 0, D_RETRY, 32768000, 1, 0 },

    /* a base that would overflow when shifted is capped first */
    { 4, 500, 0, 0, 0, D_RETRY, 4611686018427387904ULL, 1, 0 },
    { 4, 500, 0, 1, 0, D_RETRY, 9223372036854775807ULL, 1, 0 },
    { 4, 500, 0, 1, 0xffffffff, D_RETRY, 9223372041149743102ULL, 1, 0 },
    { 4, 500, 0, UINT_MAX, 0xffffffff, D_RETRY, 9223372041149743102ULL,
      1, 0 },

    /* Retry-After wins, without jitter, capped */
    { 0, 503, 30, 0, 0, D_RETRY, 30000, 1, 0 },
    { 0, 429, 1, 0, 0xffffffff, D_RETRY, 1000, 1, 0 },
    { 0, 429, 1, 12, 0xffffffff, D_RETRY, 1000, 1, 0 },
    { 0, 0, 120, 0, 0, D_RETRY, 120000, 1, 0 },
    { 0, 302, 5, 0, 0, D_RETRY, 5000, 1, 0 },
    { 0, 500, 3599, 0, 0, D_RETRY, 3599000, 1, 0 },
    { 0, 500, 3600, 0, 0, D_RETRY, 3600000, 1, 0 },
    { 0, 500, 3601, 0, 0, D_RETRY, 3600000, 1, 0 },
    { 0, 500, 7200, 0, 0, D_RETRY, 3600000, 1, 0 },
    { 0, 500, INT64_MAX, 0, 0, D_RETRY, 3600000, 1, 0 },
    { 0, 500, INT64_MAX / 1000 + 1, 0, 0, D_RETRY, 3600000, 1, 0 },
    { 0, 500, 0, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 500, -1, 0, 0, D_RETRY, 500, 1, 0 },
    { 0, 500, INT64_MIN, 0, 0, D_RETRY, 500, 1, 0 },
    { 3, 500, INT64_MAX, 0, 0, D_RETRY, UINT64_MAX, 1, 0 },
    { 3, 500, 18446744073709551LL, 0, 0, D_RETRY,
      18446744073709551000ULL, 1, 0 },
    { 3, 500, 18446744073709552LL, 0, 0, D_RETRY, UINT64_MAX, 1, 0 },
    { 4, 500, 1, 0, 0, D_RETRY, 1000, 1, 0 },
    { 4, 500, 2, 0, 0, D_RETRY, 1500, 1, 0 },

    /* all zero: no delay at all */
    { 6, 500, 0, 3, 0xffffffff, D_RETRY, 0, 1, 0 },
    { 6, 500, 10, 3, 0, D_RETRY, 0, 1, 0 },
    { 6, 400, 0, 3, 0xffffffff, D_RETRY, 0, 0, 1 },

    /* other 4xx: the payload waits behind newer ones, not the destination */
    { 0, 400, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 402, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 405, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 406, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 407, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 409, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 410, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 411, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 412, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 414, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 415, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 416, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 417, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 418, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 421, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 422, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 425, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 426, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 428, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 431, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 451, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 499, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 0, 400, 0, 3, 0, D_RETRY, 4000, 0, 1 },
    { 0, 400, 0, 3, 4000, D_RETRY, 8000, 0, 1 },
    { 0, 400, 0, UINT_MAX, 0, D_RETRY, 30000, 0, 1 },
    { 0, 400, 10, 0, 0, D_RETRY, 10000, 0, 1 },
    { 0, 400, INT64_MAX, 0, 0, D_RETRY, 3600000, 0, 1 },

    /* dead letter after 1: the first refusal */
    { 1, 400, 0, 0, 0, D_DEAD, 0, 0, 0 },
    { 1, 422, 0, 0, 0, D_DEAD, 0, 0, 0 },
    { 1, 499, 30, 0, 0xffffffff, D_DEAD, 0, 0, 0 },
    { 1, 400, 0, UINT_MAX, 0, D_DEAD, 0, 0, 0 },

    /* dead letter after 5: the fifth refusal */
    { 2, 400, 0, 0, 0, D_RETRY, 500, 0, 1 },
    { 2, 400, 0, 3, 0, D_RETRY, 4000, 0, 1 },
    { 2, 400, 7, 3, 0, D_RETRY, 7000, 0, 1 },
    { 2, 400, 0, 4, 0, D_DEAD, 0, 0, 0 },
    { 2, 400, 7, 4, 0, D_DEAD, 0, 0, 0 },
    { 2, 400, 0, 5, 0, D_DEAD, 0, 0, 0 },
    { 2, 400, 0, UINT_MAX, 0, D_DEAD, 0, 0, 0 },
    { 2, 500, 0, 4, 0, D_RETRY, 8000, 1, 0 },
    { 2, 404, 0, 4, 0, D_REFUSED, 60000, 1, 0 },

    /* dead letter after UINT_MAX: attempts + 1 must not wrap */
    { 5, 400, 0, UINT_MAX - 2, 0, D_RETRY, 30000, 0, 1 },
    { 5, 400, 0, UINT_MAX - 1, 0, D_DEAD, 0, 0, 0 },
    { 5, 400, 0, UINT_MAX, 0, D_DEAD, 0, 0, 0 },

    /* dead letter off: never */
    { 0, 400, 0, UINT_MAX - 1, 0, D_RETRY, 30000, 0, 1 }
};


static const test_split_t  test_splits[] = {

    /* the "," after the first nevents / 2 events */
    { "[{\"a\":1},{\"b\":2}]", 2, "[{\"a\":1}" },
    { "[{\"a\":1},{\"b\":2},{\"c\":3}]", 3, "[{\"a\":1}" },
    { "[{\"a\":1},{\"b\":2},{\"c\":3},{\"d\":4}]", 4,
      "[{\"a\":1},{\"b\":2}" },
    { "[{\"a\":1},{\"b\":2},{\"c\":3},{\"d\":4},{\"e\":5}]", 5,
      "[{\"a\":1},{\"b\":2}" },
    { "[{},{},{},{}]", 4, "[{},{}" },
    { "[{\"a\":1},{\"b\":2},{\"c\":3},{\"d\":4}]", 2, "[{\"a\":1}" },
    { "[{\"a\":1},{\"b\":2}", 2, "[{\"a\":1}" },

    /* strings */
    { "[{\"k\":\"a,b\"},{\"k\":\"c\"}]", 2, "[{\"k\":\"a,b\"}" },
    { "[{\"k\":\"\\\",\"},{\"k\":1}]", 2, "[{\"k\":\"\\\",\"}" },
    { "[{\"k\":\"\\\\\\\\\"},{\"k\":1}]", 2, "[{\"k\":\"\\\\\\\\\"}" },
    { "[{\"k\":\"\\\\\"},{\"k\":\",\"}]", 2, "[{\"k\":\"\\\\\"}" },
    { "[{\"k\":\"{[\"},{\"k\":\"]}\"}]", 2, "[{\"k\":\"{[\"}" },
    { "[{\"k\":\"}],\"},{\"k\":1}]", 2, "[{\"k\":\"}],\"}" },
    { "[{\"k\":\"\\u0022,\"},{\"k\":1}]", 2, "[{\"k\":\"\\u0022,\"}" },
    { "[{\"k\":\"\xc3\xa9,\xe2\x80\xa8\"},{\"k\":1}]", 2,
      "[{\"k\":\"\xc3\xa9,\xe2\x80\xa8\"}" },
    { "[{\"a,\\\"b\":\"[\",\"c\":\"\\\\\\\"{\"},{\"d\":\"]\"},{\"e\":1}]", 3,
      "[{\"a,\\\"b\":\"[\",\"c\":\"\\\\\\\"{\"}" },

    /* nesting */
    { "[{\"a\":{\"b\":[1,2,{\"c\":[3,4]}]},\"d\":[]},{\"e\":{}}]", 2,
      "[{\"a\":{\"b\":[1,2,{\"c\":[3,4]}]},\"d\":[]}" },
    { "[{\"a\":[[[[\",\"]]]]},{\"b\":[{},{}]},{\"c\":{\"d\":{}}}]", 3,
      "[{\"a\":[[[[\",\"]]]]}" },

    /* errors */
    { "[{\"a\":1},{\"b\":2}]", 0, NULL },
    { "[{\"a\":1},{\"b\":2}]", 1, NULL },
    { "[{\"a\":1},{\"b\":2}]", 3, NULL },
    { "[{\"a\":1},{\"b\":2}]", (size_t) -1, NULL },
    { "", 2, NULL },
    { "[", 2, NULL },
    { "[]", 2, NULL },
    { "{\"a\":1},{\"b\":2}", 2, NULL },
    { " [{\"a\":1},{\"b\":2}]", 2, NULL },
    { "[{\"a\":1}]", 2, NULL },
    { "[{\"a\":\"x,y\"}]", 2, NULL },
    { "[{\"a\":[1,2]}]", 2, NULL },
    { "[{\"a\":{\"b\":1,\"c\":2}}]", 2, NULL },
    { "[{\"a\":\"1},{\"b\":2}]", 2, NULL },
    { "[{\"k\":\"\\\"},{\"k\":1}]", 2, NULL },
    { "[{\"a\":1}},{\"b\":2}]", 2, NULL },
    { "[{\"a\":1}],{\"b\":2}]", 2, NULL },
    { "[{\"a\":1},{\"b\":2}],{\"c\":3}", 3, NULL }
};


/* events that pair up in test_split_halves() */
static const char  *test_events[] = {
    "{\"k\":\"a,b\"}",
    "{\"k\":\"\\\"\"}",
    "{\"k\":\"\\\\\\\\\"}",
    "{\"k\":\"{[\"}",
    "{\"k\":\"]}\",\"l\":[1,{\"m\":[]},\",\"]}",
    "{}",
    "{\"k\":\"\\\\\",\"l\":\"\\\\\\\",\"}",
    "{\"a\":{\"b\":{\"c\":[[],[{}],\"[\"]}}}"
};


static int
test_outcome_row(size_t i, const test_outcome_t *t)
{
    ldseg_delivery_t  d;

    memset(&d, 0xff, sizeof(ldseg_delivery_t));

    ldseg_delivery_outcome(&test_confs[t->conf], t->status,
                           t->retry_after_s, t->attempts, t->rnd, &d);

    return ok(d.outcome == t->outcome && d.delay_ms == t->delay_ms
              && d.pause_destination == t->pause
              && d.move_behind == t->behind,
              "outcome row %zu: conf %u, status %ld, retry-after %lld, "
              "attempts %u, rnd %lu: %s, %llu ms%s%s (got %s, %llu ms, "
              "pause %u, behind %u)",
              i, t->conf, t->status, (long long) t->retry_after_s,
              t->attempts, (unsigned long) t->rnd,
              ldseg_delivery_name(t->outcome),
              (unsigned long long) t->delay_ms,
              t->pause ? ", destination paused" : "",
              t->behind ? ", moved behind" : "",
              ldseg_delivery_name(d.outcome),
              (unsigned long long) d.delay_ms,
              (unsigned) d.pause_destination, (unsigned) d.move_behind);
}


/* the backoff without jitter, written independently: doubling in a loop */

static uint64_t
test_backoff(const ldseg_delivery_conf_t *conf, unsigned attempts)
{
    unsigned  k;
    uint64_t  d;

    d = conf->base_ms;

    for (k = 0; k < attempts && k < 16; k++) {
        if (d > conf->max_ms || d > UINT64_MAX / 2) {
            return conf->max_ms;
        }

        d *= 2;
    }

    return (d > conf->max_ms) ? conf->max_ms : d;
}


/* for many attempts and random numbers the delay lies in [d / 2, d] */

static int
test_jitter(const ldseg_delivery_conf_t *conf, long status)
{
    size_t            i, j;
    uint64_t          d;
    ldseg_delivery_t  out;

    static const unsigned  attempts[] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20,
        31, 32, 33, 64, 1000, UINT_MAX - 1, UINT_MAX
    };

    static const uint32_t  rnds[] = {
        0, 1, 2, 3, 499, 500, 501, 999, 1000, 1001, 12345, 65535, 65536,
        0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff
    };

    for (i = 0; i < TEST_NELTS(attempts); i++) {
        d = test_backoff(conf, attempts[i]);

        for (j = 0; j < TEST_NELTS(rnds); j++) {
            ldseg_delivery_outcome(conf, status, 0, attempts[i], rnds[j],
                                   &out);

            if (out.outcome != LDSEG_DELIVERY_RETRY
                || out.delay_ms < d / 2 || out.delay_ms > d)
            {
                unit_diag("attempts %u, rnd %lu: %llu ms not in "
                          "[%llu, %llu]", attempts[i],
                          (unsigned long) rnds[j],
                          (unsigned long long) out.delay_ms,
                          (unsigned long long) (d / 2),
                          (unsigned long long) d);
                return 0;
            }
        }
    }

    return 1;
}


/* with a small backoff every delay from d / 2 up is reached */

static int
test_jitter_reach(void)
{
    char              seen[64];
    uint32_t          rnd;
    unsigned          attempts;
    uint64_t          d, v;
    ldseg_delivery_t  out;

    static const ldseg_delivery_conf_t  conf = { 3, 50, 0, 0 };

    for (attempts = 0; attempts < 6; attempts++) {
        d = test_backoff(&conf, attempts);
        memset(seen, 0, sizeof(seen));

        for (rnd = 0; rnd < 200; rnd++) {
            ldseg_delivery_outcome(&conf, 503, 0, attempts, rnd, &out);

            if (out.delay_ms < d / 2 || out.delay_ms > d) {
                return 0;
            }

            seen[out.delay_ms] = 1;
        }

        for (v = 0; v < sizeof(seen); v++) {
            if ((seen[v] != 0) != (v >= d / 2 && v <= d / 2 * 2)) {
                unit_diag("attempts %u: delay %llu %sseen", attempts,
                          (unsigned long long) v,
                          seen[v] != 0 ? "" : "not ");
                return 0;
            }
        }
    }

    return 1;
}


/*
 * Random inputs of any size: the outcome follows the status class, the
 * delay never exceeds max(max_ms, retry_after_max_ms), and the same
 * inputs give the same answer.
 */

static int
test_invariants(void)
{
    long                   status;
    size_t                 i;
    int64_t                ra;
    uint64_t               x, cap;
    unsigned               attempts;
    ldseg_delivery_t       a, b;
    ldseg_delivery_conf_t  conf;

    static const long  statuses[] = {
        0, 100, 200, 204, 302, 400, 401, 403, 404, 408, 413, 422, 429, 500,
        503, 599, 600, -1
    };

    x = 0x9e3779b97f4a7c15ULL;

    for (i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;

        conf.base_ms = (i & 1) ? x : x % 10000;
        conf.max_ms = (i & 2) ? x * 3 : x % 1000000;
        conf.retry_after_max_ms = (i & 4) ? x * 5 : x % 7200000;
        conf.dead_letter_after = (unsigned) (x >> 40) % 8;

        status = statuses[(x >> 8) % TEST_NELTS(statuses)];
        ra = (i & 8) ? (int64_t) (x * 7) : (int64_t) (x % 10000) - 100;
        attempts = (i & 16) ? (unsigned) (x >> 20) : (unsigned) (x % 40);

        ldseg_delivery_outcome(&conf, status, ra, attempts,
                               (uint32_t) (x >> 32), &a);
        ldseg_delivery_outcome(&conf, status, ra, attempts,
                               (uint32_t) (x >> 32), &b);

        cap = (conf.max_ms > conf.retry_after_max_ms)
              ? conf.max_ms : conf.retry_after_max_ms;

        if (a.outcome != b.outcome || a.delay_ms != b.delay_ms
            || a.pause_destination != b.pause_destination
            || a.move_behind != b.move_behind
            || a.delay_ms > cap
            || ((status >= 200 && status <= 299)
                != (a.outcome == LDSEG_DELIVERY_DONE))
            || (a.outcome != LDSEG_DELIVERY_RETRY
                && a.outcome != LDSEG_DELIVERY_REFUSED_ID
                && a.delay_ms != 0)
            || (a.move_behind && a.pause_destination)
            || (a.outcome == LDSEG_DELIVERY_DEAD_LETTER
                && conf.dead_letter_after == 0))
        {
            unit_diag("row %zu: status %ld, %s, %llu ms", i, status,
                      ldseg_delivery_name(a.outcome),
                      (unsigned long long) a.delay_ms);
            return 0;
        }
    }

    return 1;
}


static int
test_split_row(size_t i, const test_split_t *t)
{
    int     rc;
    size_t  off, len;

    off = (size_t) -2;
    len = strlen(t->text);

    rc = ldseg_delivery_split(t->text, len, t->nevents, &off);

    if (t->left == NULL) {
        return ok(rc == -1 && off == (size_t) -2,
                  "split row %zu: %s with %zu events is refused (got %d)",
                  i, t->text, t->nevents, rc);
    }

    return ok(rc == 0 && off == strlen(t->left)
              && memcmp(t->text, t->left, off) == 0 && t->text[off] == ',',
              "split row %zu: %s with %zu events splits at %zu "
              "(got %d, %zu)", i, t->text, t->nevents, strlen(t->left), rc,
              rc == 0 ? off : 0);
}


/* counts the elements of an array, 0 if it is not valid JSON */

static int
test_split_count(const char *p, size_t len, size_t *n)
{
    const char        *q;
    ldseg_json_val_t   v;

    if (ldseg_json_validate(p, len, 100) != LDSEG_OK) {
        return 0;
    }

    q = p;
    *n = 0;

    while (ldseg_json_array_next(&q, p + len, &v) != 0) {
        (*n)++;
    }

    return 1;
}


/*
 * Arrays of 2 to 40 tricky events: both halves are valid arrays holding
 * nevents / 2 and the rest of the events.
 */

static int
test_split_halves(void)
{
    char        *buf, *half;
    size_t       n, k, len, off, nl, nr;
    const char  *ev;

    buf = malloc(64 * 1024);
    half = malloc(64 * 1024);

    if (buf == NULL || half == NULL) {
        free(buf);
        free(half);
        return 0;
    }

    for (n = 2; n <= 40; n++) {
        len = 0;
        buf[len++] = '[';

        for (k = 0; k < n; k++) {
            if (k != 0) {
                buf[len++] = ',';
            }

            ev = test_events[(k * 3 + n) % TEST_NELTS(test_events)];
            memcpy(buf + len, ev, strlen(ev));
            len += strlen(ev);
        }

        buf[len++] = ']';

        if (ldseg_delivery_split(buf, len, n, &off) != 0) {
            unit_diag("%zu events: not split", n);
            goto failed;
        }

        memcpy(half, buf, off);
        half[off] = ']';

        if (test_split_count(half, off + 1, &nl) == 0 || nl != n / 2) {
            unit_diag("%zu events: bad left half %.*s", n, (int) off + 1,
                      half);
            goto failed;
        }

        half[0] = '[';
        memcpy(half + 1, buf + off + 1, len - off - 1);

        if (test_split_count(half, len - off, &nr) == 0 || nr != n - n / 2) {
            unit_diag("%zu events: bad right half %.*s", n,
                      (int) (len - off), half);
            goto failed;
        }

        /* with one event more than the text holds, it is refused */

        if (ldseg_delivery_split(buf, len, n + 1, &off) != -1) {
            unit_diag("%zu events: split as %zu", n, n + 1);
            goto failed;
        }
    }

    free(buf);
    free(half);

    return 1;

failed:

    free(buf);
    free(half);

    return 0;
}


/* 100001 events: the split lands after event 50000 */

static int
test_split_large(void)
{
    int      rc;
    char    *buf;
    size_t   n, k, len, off;

    static const char  ev[] = "{\"k\":\"\\\",{[\\\\\",\"n\":[1,{\"x\":\"]}\"}],"
                              "\"pad\":\"0123456789abcdef012\"}";

    n = 100001;
    buf = malloc(n * sizeof(ev) + 2);

    if (buf == NULL) {
        return 0;
    }

    len = 0;
    buf[len++] = '[';

    for (k = 0; k < n; k++) {
        if (k != 0) {
            buf[len++] = ',';
        }

        memcpy(buf + len, ev, sizeof(ev) - 1);
        len += sizeof(ev) - 1;
    }

    buf[len++] = ']';

    off = 0;
    rc = ldseg_delivery_split(buf, len, n, &off);
    free(buf);

    return rc == 0 && off == 1 + 50000 * sizeof(ev) - 1;
}


int
main(void)
{
    size_t  i, len, off;

    static const long  retry[] = { 0, 408, 429, 500, 503, 599, 302, 101 };
    static const long  behind[] = { 400, 409, 422, 451 };

    for (i = 0; i < TEST_NELTS(test_outcomes); i++) {
        test_outcome_row(i, &test_outcomes[i]);
    }

    for (i = 0; i < TEST_NELTS(retry); i++) {
        ok(test_jitter(&test_confs[0], retry[i]),
           "status %ld: jitter in [d/2, d] with the default caps", retry[i]);
        ok(test_jitter(&test_confs[3], retry[i]),
           "status %ld: jitter in [d/2, d] without caps", retry[i]);
        ok(test_jitter(&test_confs[4], retry[i]),
           "status %ld: jitter in [d/2, d] with an overflowing base",
           retry[i]);
    }

    for (i = 0; i < TEST_NELTS(behind); i++) {
        ok(test_jitter(&test_confs[0], behind[i]),
           "status %ld: jitter in [d/2, d] for a refused payload",
           behind[i]);
    }

    ok(test_jitter_reach(), "the jitter reaches every delay in "
       "[d/2, d/2*2] and no other");
    ok(test_invariants(), "1000000 random answers: the class decides, "
       "delay within caps, deterministic");

    ok(strcmp(ldseg_delivery_name(LDSEG_DELIVERY_DONE), "done") == 0,
       "name of done");
    ok(strcmp(ldseg_delivery_name(LDSEG_DELIVERY_RETRY), "retry") == 0,
       "name of retry");
    ok(strcmp(ldseg_delivery_name(LDSEG_DELIVERY_SPLIT), "split") == 0,
       "name of split");
    ok(strcmp(ldseg_delivery_name(LDSEG_DELIVERY_REFUSED_ID), "refused_id")
       == 0, "name of refused_id");
    ok(strcmp(ldseg_delivery_name(LDSEG_DELIVERY_DEAD_LETTER),
              "dead_letter") == 0, "name of dead_letter");
    ok(strcmp(ldseg_delivery_name((ldseg_delivery_e) 5), "unknown") == 0,
       "name of an unknown outcome");
    ok(strcmp(ldseg_delivery_name((ldseg_delivery_e) 1000), "unknown") == 0,
       "name of a far unknown outcome");

    for (i = 0; i < TEST_NELTS(test_splits); i++) {
        test_split_row(i, &test_splits[i]);
    }

    /* a length that ends before the separator */

    len = strlen(test_splits[0].text);
    off = 0;

    ok(ldseg_delivery_split(test_splits[0].text, 8, 2, &off) == -1,
       "split: the length ends before the separator");
    ok(ldseg_delivery_split(test_splits[0].text, 9, 2, &off) == 0
       && off == 8, "split: the length ends at the separator");
    ok(ldseg_delivery_split(test_splits[0].text, len - 1, 2, &off) == 0
       && off == 8, "split: the length ends before the \"]\"");
    ok(ldseg_delivery_split(NULL, 0, 2, &off) == -1,
       "split: an empty text");

    ok(test_split_halves(), "split: both halves of 2 to 40 tricky events "
       "are arrays of the right size");
    ok(test_split_large(), "split: 100001 events split after 50000");

    return done();
}

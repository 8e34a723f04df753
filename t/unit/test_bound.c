
/*
 * Copyright (C) ldseg authors
 *
 * Bounded cost per byte: identities longer than LDSEG_MAX_IDENTITY once
 * stringified reject their message ("invalid_identity"), exactly at the
 * bound, on single endpoints and inside batches; and every event of a set
 * of adversarial messages is at most its message's size plus
 * LDSEG_EVENT_SLACK (t/unit/test_conformance.c checks the same over the
 * conformance cases).
 */


#include "unit.h"


#define TEST_BODY_MAX  (600 * 1024)


/*
 * A body: printf format fmt whose single %s is replaced by unit repeated
 * count times, between open and close.
 */
typedef struct {
    const char                   *name;
    ldseg_endpoint_e              ep;
    ldseg_format_e                format;
    const char                   *fmt;
    const char                   *open;
    const char                   *unit;
    const char                   *sep;       /* between repetitions */
    size_t                        count;
    const char                   *close;
    const char                   *msgs;      /* as in test_segment.c */
} test_bound_t;


static size_t test_build(const test_bound_t *t, char *buf);
static void test_identity(const test_bound_t *t, char *buf);
static void test_slack(const test_bound_t *t, char *buf, size_t *max);


/* 1024 = 64 x 16: "0123456789abcdef" */
#define X16    "0123456789abcdef"

static const test_bound_t  test_identities[] = {

    { "userId of 1024 bytes", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":%s}", "\"", X16, "", 64, "\"", "E" },

    { "userId of 1025 bytes", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":%s}", "\"x", X16, "", 64, "\"",
      "R:invalid_identity" },

    { "anonymousId of 1024 bytes alone", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"anonymousId\":%s}", "\"", X16, "", 64, "\"", "E" },

    { "anonymousId of 1025 bytes alone", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"anonymousId\":%s}", "\"", X16, "", 64, "-\"",
      "R:invalid_identity" },

    { "escapes count as sent", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":%s}", "\"", "\\u0041", "", 171, "\"",
      "R:invalid_identity" },

    { "one-element array id of 1025 bytes", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":%s}", "[\"x", X16, "", 64, "\"]",
      "R:invalid_identity" },

    /* 63 x "[object Object]," + "[object Object]" = 1023 */
    { "64 objects as anonymousId: 1023 bytes", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}", "[", "{}",
      ",", 64, "]", "E" },

    { "65 objects as anonymousId: 1039 bytes", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}", "[", "{}",
      ",", 65, "]", "R:invalid_identity" },

    { "7000 objects as anonymousId", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}", "[", "{}",
      ",", 7000, "]", "R:invalid_identity" },

    /* "100000000000000000000" (21) x 46 + 45 commas = 1011 */
    { "1e20 x 46 as anonymousId", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}", "[", "1e20",
      ",", 46, "]", "E" },

    { "1e20 x 49 as anonymousId", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}", "[", "1e20",
      ",", 49, "]", "R:invalid_identity" },

    /* "0.30000000000000004," x 52 - 1 = 1039 */
    { "17-digit numbers as anonymousId", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}", "[",
      "0.30000000000000004", ",", 52, "]", "R:invalid_identity" },

    { "17-digit numbers as anonymousId alone", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"anonymousId\":%s}", "[",
      "0.30000000000000004", ",", 52, "]", "R:invalid_identity" },

    { "nested arrays around white space", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}",
      "[[[[[[[[[[[[[[[[[[[[", " ", "", 5000, "]]]]]]]]]]]]]]]]]]]]", "E" },

    { "nested arrays of objects", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"anonymousId\":%s}",
      "[[[[[[[[[[", "[{\"a\":[1,\"]\"]},null]", ",", 70,
      "]]]]]]]]]]", "R:invalid_identity" },

    { "previousId of 1024 bytes", LDSEG_EP_ALIAS, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"previousId\":%s}", "\"", X16, "", 64, "\"", "E" },

    { "previousId of 1025 bytes", LDSEG_EP_ALIAS, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"previousId\":%s}", "\"!", X16, "", 64, "\"",
      "R:invalid_identity" },

    { "groupId of 1024 bytes", LDSEG_EP_GROUP, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"groupId\":%s}", "\"", X16, "", 64, "\"",
      "S:no_event_for_type" },

    { "groupId of 1025 bytes", LDSEG_EP_GROUP, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"groupId\":%s}", "\"!", X16, "", 64, "\"",
      "R:invalid_identity" },

    { "classic userId of 1025 bytes", LDSEG_EP_TRACK, LDSEG_FORMAT_CLASSIC,
      "{\"event\":\"E\",\"userId\":%s}", "\"x", X16, "", 64, "\"",
      "R:invalid_identity" },

    { "identify with a long anonymousId", LDSEG_EP_IDENTIFY,
      LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"previousId\":\"p\",\"anonymousId\":%s}", "[",
      "{}", ",", 100, "]", "R:invalid_identity" },

    { "batch: the long one rejected, the others kept", LDSEG_EP_BATCH,
      LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\"},"
      "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\","
      "\"anonymousId\":%s},{\"type\":\"alias\",\"userId\":\"u\","
      "\"previousId\":\"p\"}]}", "[", "{}", ",", 7000, "]",
      "E R:invalid_identity E" },

    { "batch: 1024 bytes kept", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[{\"type\":\"identify\",\"userId\":%s,"
      "\"anonymousId\":\"a\"}]}", "\"", X16, "", 64, "\"", "E" }
};


/* messages built to make events as large as they can be */

static const test_bound_t  test_adversarial[] = {

    { "anonymousId written twice", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":1e20,\"anonymousId\":%s,\"properties\":"
      "{\"revenue\":-1e-300}}", "[\"", X16, "", 64, "\"]", "E" },

    { "anonymousId string written twice", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":-1e20,\"anonymousId\":%s}", "\"", X16, "", 64, "\"",
      "E" },

    { "objects up to the bound", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":1e20,\"userId\":-1e20,\"anonymousId\":%s,"
      "\"properties\":{\"value\":true}}", "[", "{}", ",", 64, "]", "E" },

    { "numbers up to the bound", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":1e20,\"userId\":1e20,\"anonymousId\":%s}", "[", "1e20",
      ",", 46, "]", "E" },

    { "null anonymousId", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":1e20,\"userId\":1e20,\"anonymousId\":%s}", "", "null",
      "", 1, "", "E" },

    { "long metric token", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"properties\":{\"revenue\":%s}}",
      "1.", "0000000000", "", 3000, "1", "E" },

    { "metric string", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"properties\":{\"revenue\":%s}}",
      "\"", " ", "", 2, "1e-300\"", "E" },

    { "classic", LDSEG_EP_TRACK, LDSEG_FORMAT_CLASSIC,
      "{\"event\":1e20,\"anonymousId\":%s,\"properties\":{\"value\":"
      "[\"-1.2345678901234567e-300\"]}}", "[-1e", "2", "", 1, "0]", "E" },

    { "alias of numbers", LDSEG_EP_ALIAS, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":-1e20,\"previousId\":%s}", "[", "1e20", "", 1, "]",
      "E" },

    { "identify of booleans", LDSEG_EP_IDENTIFY, LDSEG_FORMAT_CLASSIC,
      "{\"userId\":false,\"anonymousId\":%s}", "[", "true", "", 1, "]",
      "E" },

    { "minimal track", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":%s,\"userId\":0}", "", "0", "", 1, "", "E" },

    { "batch of minimal messages", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[%s]}", "", "{\"type\":\"track\",\"event\":1e20,"
      "\"anonymousId\":[-1e20]}", ",", 2000, "", NULL },

    { "batch at the bound", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[%s]}", "", "{\"type\":\"track\",\"event\":1e20,"
      "\"anonymousId\":[\"" X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
      X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
      X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
      X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
      X16 "\"]}", ",", 400, "", NULL }
};


static size_t
test_build(const test_bound_t *t, char *buf)
{
    int     n;
    char   *mid, *p;
    size_t  i;

    mid = malloc(TEST_BODY_MAX);
    p = mid;

    p += sprintf(p, "%s", t->open);

    for (i = 0; i < t->count; i++) {
        p += sprintf(p, "%s%s", i == 0 ? "" : t->sep, t->unit);
    }

    sprintf(p, "%s", t->close);

    n = snprintf(buf, TEST_BODY_MAX, t->fmt, mid);
    free(mid);

    return (size_t) n;
}


static void
test_identity(const test_bound_t *t, char *buf)
{
    char                msgs[256], *p;
    size_t              i, len;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;
    ldseg_msg_result_t *m;

    len = test_build(t, buf);

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.format = t->format;
    opt.now_ms = 1700000000000LL;

    rc = ldseg_process(buf, len, t->ep, &opt, &a, &res, &err);

    if (!ok(rc == LDSEG_OK, "%s: processed", t->name)) {
        unit_diag("rc %d %s", (int) rc, unit_code(err));
        return;
    }

    p = msgs;
    *p = '\0';

    for (i = 0; i < res.n && p < msgs + sizeof(msgs) - 64; i++) {
        m = &res.msgs[i];

        if (m->status == LDSEG_MSG_EVENT) {
            p += sprintf(p, "%sE", i == 0 ? "" : " ");

        } else {
            p += sprintf(p, "%s%c:%s", i == 0 ? "" : " ",
                         m->status == LDSEG_MSG_SKIPPED ? 'S' : 'R',
                         unit_code(m->err));
        }
    }

    if (!ok(strcmp(msgs, t->msgs) == 0, "%s: %s", t->name, t->msgs)) {
        unit_diag("got %s", msgs);
    }

    /* a single endpoint answers 400 when its message is rejected */

    if (t->ep != LDSEG_EP_BATCH && res.nrejected == 1) {
        ok(res.n == 1
           && strcmp(unit_code(res.msgs[0].err), "invalid_identity") == 0
           && res.msgs[0].err.message != NULL && res.events_len == 0,
           "%s: rejected with a message, no event", t->name);
    }

    ldseg_result_free(&res, &a);
    ok(ua.live == 0, "%s: all memory returned", t->name);
}


static void
test_slack(const test_bound_t *t, char *buf, size_t *max)
{
    int                 within;
    size_t              i, len, excess;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;
    ldseg_msg_result_t *m;

    len = test_build(t, buf);

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.format = t->format;
    opt.now_ms = -8640000000000000LL;

    rc = ldseg_process(buf, len, t->ep, &opt, &a, &res, &err);

    if (!ok(rc == LDSEG_OK && res.nevents != 0, "%s: events", t->name)) {
        unit_diag("rc %d %s", (int) rc, rc == LDSEG_OK ? "" : unit_code(err));
        return;
    }

    within = 1;

    for (i = 0; i < res.n; i++) {
        m = &res.msgs[i];

        if (m->status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (m->msg_len == 0 || m->msg_len > len
            || m->event_len > m->msg_len + LDSEG_EVENT_SLACK)
        {
            within = 0;
            unit_diag("message %zu: %zu bytes, event %zu bytes", i,
                      m->msg_len, m->event_len);
        }

        excess = (m->event_len > m->msg_len)
                 ? m->event_len - m->msg_len : 0;

        if (excess > *max) {
            *max = excess;
        }
    }

    if (t->msgs != NULL) {
        within = within && res.n == 1;
    }

    ok(within, "%s: event <= message + %d", t->name,
       (int) LDSEG_EVENT_SLACK);

    ldseg_result_free(&res, &a);
    ok(ua.live == 0, "%s: all memory returned", t->name);
}


int
main(void)
{
    char    *buf;
    size_t   i, max;

    buf = malloc(TEST_BODY_MAX);
    if (buf == NULL) {
        return 1;
    }

    for (i = 0; i < sizeof(test_identities) / sizeof(test_bound_t); i++) {
        test_identity(&test_identities[i], buf);
    }

    max = 0;

    for (i = 0; i < sizeof(test_adversarial) / sizeof(test_bound_t); i++) {
        test_slack(&test_adversarial[i], buf, &max);
    }

    unit_diag("largest event - message: %zu bytes (bound %d)", max,
              (int) LDSEG_EVENT_SLACK);

    ok(max > LDSEG_MAX_IDENTITY, "the adversarial set reaches past "
       "LDSEG_MAX_IDENTITY (%zu)", max);

    free(buf);

    return done();
}

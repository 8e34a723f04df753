
/*
 * Copyright (C) ldseg authors
 *
 * ldseg_process() table: endpoints, limits, bad input, batch results with
 * indexes and reasons, the classic format, skips; plus the allocator
 * contract (every failure unwinds, nothing leaks) and ldseg_uuid_format().
 */


#include <ldseg_json.h>

#include "unit.h"


#define T  "\"timestamp\":\"2022-05-04T03:02:03Z\""

#define NOW  1700000000000LL


typedef struct {
    const char                   *name;
    ldseg_endpoint_e              ep;
    ldseg_format_e                format;
    const char                   *body;
    ldseg_rc_t                    rc;
    const char                   *code;      /* the reason if rc != OK */
    const char                   *msgs;      /* "E", "S:code", "R:code" */
    const char                   *events;    /* exact text, NULL: any */
} test_seg_t;


static void test_row(const test_seg_t *t);
static void test_limits(void);
static void test_alloc_failures(void);
static void test_write_key(void);
static void test_endpoints(void);
static void test_reasons(void);
static void test_client_side_id(void);
static void test_uuid(void);
static void test_json(void);


static const test_seg_t  test_rows[] = {

    { "track", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u1\",\"event\":\"Buy\"," T
      ",\"properties\":{\"revenue\":\"12.50\",\"x\":\"\\u0000\"}}",
      LDSEG_OK, NULL, "E",
      "{\"kind\":\"custom\",\"key\":\"Buy\",\"contextKeys\":{\"user\":"
      "\"u1\"},\"creationDate\":1651633323000,\"metricValue\":12.5,"
      "\"data\":{\"revenue\":\"12.50\",\"x\":\"\\u0000\"}}" },

    { "track with anonymousId and raw metric", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      " {\"anonymousId\":\"a\\\"1\",\"event\":\"E\",\"properties\":"
      "{\"value\":1.50E2}} \n",
      LDSEG_OK, NULL, "E",
      "{\"kind\":\"custom\",\"key\":\"E\",\"contextKeys\":{\"user\":"
      "\"a\\\"1\",\"unauthenticatedUser\":\"a\\\"1\"},\"creationDate\":"
      "1700000000000,\"metricValue\":1.50E2,\"data\":{\"value\":1.50E2}}" },

    { "track without event", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u1\"}", LDSEG_OK, NULL, "R:missing_event", "" },

    { "track with empty event", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u1\",\"event\":\"\"}", LDSEG_OK, NULL,
      "R:missing_event", "" },

    { "track without identity", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":null,\"anonymousId\":\"\"}", LDSEG_OK,
      NULL, "R:missing_identity", "" },

    { "track with object id", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":{}}", LDSEG_OK, NULL,
      "R:missing_identity", "" },

    { "track with array properties", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"properties\":[]}", LDSEG_OK,
      NULL, "R:invalid_properties", "" },

    { "track with bad timestamp", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"timestamp\":true}", LDSEG_OK,
      NULL, "R:invalid_timestamp", "" },

    { "track with non-numeric revenue", LDSEG_EP_TRACK,
      LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"properties\":"
      "{\"revenue\":\"n/a\"}}", LDSEG_OK, NULL, "R:invalid_metric", "" },

    { "track with infinite value", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"E\",\"userId\":\"u\",\"properties\":{\"value\":1e999}}",
      LDSEG_OK, NULL, "R:invalid_metric", "" },

    { "duplicate keys: last wins", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"event\":\"A\",\"userId\":\"u\",\"properties\":{\"revenue\":1},"
      "\"event\":\"B\",\"properties\":{\"x\":1}," T "}",
      LDSEG_OK, NULL, "E",
      "{\"kind\":\"custom\",\"key\":\"B\",\"contextKeys\":{\"user\":"
      "\"u\"},\"creationDate\":1651633323000,\"data\":{\"x\":1}}" },

    { "escaped key names", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"\\u0065vent\":\"A\",\"user\\u0049d\":\"u\"," T "}",
      LDSEG_OK, NULL, "E",
      "{\"kind\":\"custom\",\"key\":\"A\",\"contextKeys\":{\"user\":"
      "\"u\"},\"creationDate\":1651633323000,\"data\":{}}" },

    { "endpoint decides the type", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"type\":\"identify\",\"event\":\"E\",\"userId\":\"u\"," T "}",
      LDSEG_OK, NULL, "E", NULL },

    { "classic track", LDSEG_EP_TRACK, LDSEG_FORMAT_CLASSIC,
      "{\"event\":\"E\",\"anonymousId\":7,\"properties\":{\"revenue\":3,"
      "\"value\":\"4\"}," T "}",
      LDSEG_OK, NULL, "E",
      "{\"kind\":\"custom\",\"key\":\"E\",\"userKey\":\"7\","
      "\"creationDate\":1651633323000,\"metricValue\":4,\"data\":"
      "{\"revenue\":3,\"value\":\"4\"}}" },

    { "classic identify", LDSEG_EP_IDENTIFY, LDSEG_FORMAT_CLASSIC,
      "{\"userId\":\"u\",\"anonymousId\":\"a\"," T "}",
      LDSEG_OK, NULL, "E",
      "{\"kind\":\"alias\",\"key\":\"u\",\"previousKey\":\"a\","
      "\"contextKind\":\"user\",\"previousContextKind\":\"anonymousUser\","
      "\"creationDate\":1651633323000}" },

    { "identify without userId", LDSEG_EP_IDENTIFY, LDSEG_FORMAT_ACTIONS,
      "{\"anonymousId\":\"a\"}", LDSEG_OK, NULL,
      "S:identify_without_user_id", "" },

    { "identify without previous id", LDSEG_EP_IDENTIFY,
      LDSEG_FORMAT_ACTIONS, "{\"userId\":\"u\"}", LDSEG_OK, NULL,
      "S:identify_without_previous_id", "" },

    { "alias without userId", LDSEG_EP_ALIAS, LDSEG_FORMAT_ACTIONS,
      "{\"previousId\":\"p\",\"anonymousId\":\"a\"}", LDSEG_OK, NULL,
      "R:missing_user_id", "" },

    { "alias without previous id", LDSEG_EP_ALIAS, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"previousId\":\"\",\"anonymousId\":\"\"}",
      LDSEG_OK, NULL, "R:missing_previous_id", "" },

    { "page", LDSEG_EP_PAGE, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\"}", LDSEG_OK, NULL, "S:no_event_for_type", "" },

    { "screen without identity", LDSEG_EP_SCREEN, LDSEG_FORMAT_ACTIONS,
      "{}", LDSEG_OK, NULL, "R:missing_identity", "" },

    { "group with bad properties", LDSEG_EP_GROUP, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",\"properties\":1}", LDSEG_OK, NULL,
      "R:invalid_properties", "" },

    { "not JSON", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{\"userId\":\"u\",", LDSEG_EINVAL, "invalid_json", NULL, NULL },

    { "empty body", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "", LDSEG_EINVAL, "invalid_json", NULL, NULL },

    { "trailing garbage", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{} x", LDSEG_EINVAL, "invalid_json", NULL, NULL },

    { "two values", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "{}{}", LDSEG_EINVAL, "invalid_json", NULL, NULL },

    { "not an object", LDSEG_EP_TRACK, LDSEG_FORMAT_ACTIONS,
      "[{\"userId\":\"u\"}]", LDSEG_EINVAL, "not_an_object", NULL, NULL },

    { "batch body not an object", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "\"x\"", LDSEG_EINVAL, "not_an_object", NULL, NULL },

    { "batch without batch", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"writeKey\":\"k\"}", LDSEG_EINVAL, "invalid_batch", NULL, NULL },

    { "batch with object batch", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":{\"a\":1}}", LDSEG_EINVAL, "invalid_batch", NULL, NULL },

    { "batch with invalid object batch", LDSEG_EP_BATCH,
      LDSEG_FORMAT_ACTIONS,
      "{\"batch\":{\"a\":01}}", LDSEG_EINVAL, "invalid_json", NULL, NULL },

    { "batch with bad JSON inside", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[{\"type\":\"track\",\"x\":tru}]}", LDSEG_EINVAL,
      "invalid_json", NULL, NULL },

    { "batch with bad JSON in a duplicate", LDSEG_EP_BATCH,
      LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[nul],\"batch\":[]}", LDSEG_EINVAL, "invalid_json", NULL,
      NULL },

    { "batch with a trailing comma", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[{},]}", LDSEG_EINVAL, "invalid_json", NULL, NULL },

    { "empty batch", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[ ]}", LDSEG_OK, NULL, "", "" },

    { "mixed batch", LDSEG_EP_BATCH, LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
      T "},1,{\"userId\":\"u\"},{\"type\":\"Track\",\"userId\":\"u\"},"
      "{\"type\":\"page\",\"userId\":\"u\"},{\"type\":\"alias\","
      "\"userId\":\"u\",\"previousId\":\"p\"," T "},{\"type\":\"track\"}],"
      "\"context\":{},\"sentAt\":\"x\",\"integrations\":{}}",
      LDSEG_OK, NULL,
      "E R:not_an_object R:invalid_type R:invalid_type S:no_event_for_type "
      "E R:missing_identity",
      "{\"kind\":\"custom\",\"key\":\"E\",\"contextKeys\":{\"user\":"
      "\"u\"},\"creationDate\":1651633323000,\"data\":{}},{\"kind\":"
      "\"alias\",\"key\":\"u\",\"previousKey\":\"p\",\"contextKind\":"
      "\"user\",\"previousContextKind\":\"anonymousUser\","
      "\"creationDate\":1651633323000}" },

    { "batch message type as short form", LDSEG_EP_BATCH,
      LDSEG_FORMAT_ACTIONS,
      "{\"batch\":[{\"type\":\"t\",\"userId\":\"u\",\"event\":\"E\"}]}",
      LDSEG_OK, NULL, "R:invalid_type", "" },

    { "unknown endpoint", LDSEG_EP_UNKNOWN, LDSEG_FORMAT_ACTIONS,
      "{}", LDSEG_EINVAL, "unknown_endpoint", NULL, NULL }
};


static const char  *test_bad_json[] = {
    "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}",
    "{\"a\":+1}", "{\"a\":[1,]}", "{\"a\":1,}", "{,}", "{\"a\" 1}",
    "{\"a\":\"\t\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}",
    "{\"a\":\"\\u12\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}",
    "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xe2\x82\"}", "{\"a\":\"\xe2\x82", "{'a':1}",
    "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":true1}", "{\"a\":nul}",
    "{/*c*/}", "{\"a\":1}//", "\xef\xbb\xbf{}", "{\"a\":[}", "{\"a\":{]}",
    "{\"a\"}", "{\"a\":}", "{1:2}", "{\"a\":\"\\"
};


static const char  *test_good_json[] = {
    "{}", " \t\r\n{} \t\r\n", "{\"a\":[]}", "{\"a\":-0}",
    "{\"a\":-0.0e+00}", "{\"a\":1E-5}", "{\"a\":\"\\u0000\\ud800\\/\"}",
    "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"}",
    "{\"a\":[true,false,null,{\"b\":[[]]}]}", "{\"\":1}"
};


static void
test_row(const test_seg_t *t)
{
    char                buf[256];
    char               *p;
    size_t              i;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;
    ldseg_msg_result_t *m;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.format = t->format;
    opt.now_ms = NOW;

    err.reason = LDSEG_REASON_N;
    rc = ldseg_process(t->body, strlen(t->body), t->ep, &opt, &a, &res, &err);

    if (!ok(rc == t->rc, "%s: rc %d", t->name, (int) t->rc)) {
        unit_diag("got rc %d %s", (int) rc, unit_code(err));
    }

    if (rc != LDSEG_OK) {
        ok(strcmp(unit_code(err), t->code) == 0
           && err.message != NULL,
           "%s: code %s", t->name, t->code);
        ok(ua.live == 0, "%s: nothing allocated", t->name);
        return;
    }

    p = buf;
    *p = '\0';

    for (i = 0; i < res.n; i++) {
        m = &res.msgs[i];

        if (i != 0) {
            *p++ = ' ';
        }

        if (m->status == LDSEG_MSG_EVENT) {
            p += sprintf(p, "E");

        } else {
            p += sprintf(p, "%c:%s",
                         m->status == LDSEG_MSG_SKIPPED ? 'S' : 'R',
                         unit_code(m->err));
        }
    }

    *p = '\0';

    if (!ok(strcmp(buf, t->msgs) == 0, "%s: messages %s", t->name, t->msgs))
    {
        unit_diag("got %s", buf);
    }

    if (t->events != NULL) {
        if (!ok(res.events_len == strlen(t->events)
                && memcmp(res.events == NULL ? "" : res.events, t->events,
                          res.events_len) == 0,
                "%s: events", t->name))
        {
            unit_diag("got %.*s", (int) res.events_len,
                      res.events == NULL ? "" : res.events);
        }
    }

    ldseg_result_free(&res, &a);
    ok(ua.live == 0, "%s: all memory returned", t->name);
}


static void
test_limits(void)
{
    char                body[600];
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);

    strcpy(body, "{\"userId\":\"u\",\"event\":\"E\"}");

    opt.max_message = strlen(body);
    rc = ldseg_process(body, strlen(body), LDSEG_EP_TRACK, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_OK, "message at the limit accepted");
    ldseg_result_free(&res, &a);

    opt.max_message = strlen(body) - 1;
    rc = ldseg_process(body, strlen(body), LDSEG_EP_TRACK, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_ETOOBIG && strcmp(unit_code(err), "too_large") == 0,
       "message over the limit: too_large");

    strcpy(body, "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\","
                 "\"event\":\"E\"},{\"type\":\"track\",\"userId\":\"u\","
                 "\"event\":\"Eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"}]}");

    opt.max_message = 50;
    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_OK && res.n == 2
       && res.msgs[0].status == LDSEG_MSG_EVENT
       && res.msgs[1].status == LDSEG_MSG_REJECTED
       && strcmp(unit_code(res.msgs[1].err), "too_large") == 0
       && res.nevents == 1 && res.nrejected == 1,
       "batch message over the limit: that message too_large");
    ldseg_result_free(&res, &a);

    ldseg_options_init(&opt);
    opt.max_batch_messages = 1;
    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_ETOOBIG && strcmp(unit_code(err), "too_many_messages") == 0,
       "too many messages");

    opt.max_batch_messages = 2;
    opt.max_batch_bytes = strlen(body) - 1;
    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_ETOOBIG && strcmp(unit_code(err), "too_large") == 0,
       "batch over the byte limit: too_large");

    ldseg_options_init(&opt);
    opt.max_depth = 3;
    strcpy(body, "{\"userId\":\"u\",\"event\":\"E\",\"properties\":"
                 "{\"a\":{\"b\":1}}}");
    rc = ldseg_process(body, strlen(body), LDSEG_EP_TRACK, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_OK, "depth at the limit accepted");
    ldseg_result_free(&res, &a);

    strcpy(body, "{\"userId\":\"u\",\"event\":\"E\",\"properties\":"
                 "{\"a\":{\"b\":[]}}}");
    rc = ldseg_process(body, strlen(body), LDSEG_EP_TRACK, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_EINVAL && strcmp(unit_code(err), "too_deep") == 0,
       "too deep");

    strcpy(body, "{\"batch\":[{\"type\":\"page\",\"userId\":[[1]]}]}");
    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_EINVAL && strcmp(unit_code(err), "too_deep") == 0,
       "too deep inside a batch");

    ok(ua.live == 0, "limits: all memory returned");
}


static void
test_alloc_failures(void)
{
    int                 all;
    size_t              k;
    ldseg_rc_t          rc;
    const char         *body;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    body = "{\"writeKey\":\"wk\",\"batch\":[{\"type\":\"track\","
           "\"userId\":\"u\",\"event\":\"E\"},{\"type\":\"identify\","
           "\"userId\":\"u\",\"anonymousId\":\"a\"}]}";

    ldseg_options_init(&opt);
    all = 1;

    for (k = 1; k <= 5; k++) {
        unit_allocator(&a, &ua);
        ua.fail_at = k;

        rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a,
                           &res, &err);

        if (rc == LDSEG_OK) {
            ldseg_result_free(&res, &a);

        } else if (rc != LDSEG_ENOMEM
                   || strcmp(unit_code(err), "no_memory") != 0)
        {
            all = 0;
        }

        if (ua.live != 0) {
            all = 0;
        }
    }

    ok(all, "every allocation failure gives ENOMEM and leaks nothing");
}


static void
test_write_key(void)
{
    const char         *body;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);

    body = "{\"userId\":\"u\",\"event\":\"E\",\"writeKey\":\"k\\u00e9\\/1\"}";
    rc = ldseg_process(body, strlen(body), LDSEG_EP_TRACK, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_OK && res.write_key_len == 5
       && memcmp(res.write_key, "k\xc3\xa9/1", 5) == 0,
       "writeKey decoded");
    ldseg_result_free(&res, &a);

    body = "{\"batch\":[{\"writeKey\":\"inner\"}],\"writeKey\":\"outer\"}";
    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_OK && res.write_key_len == 5
       && memcmp(res.write_key, "outer", 5) == 0,
       "batch writeKey from the top level");
    ldseg_result_free(&res, &a);

    body = "{\"userId\":\"u\",\"writeKey\":5}";
    rc = ldseg_process(body, strlen(body), LDSEG_EP_PAGE, &opt, &a, &res,
                       &err);
    ok(rc == LDSEG_OK && res.write_key == NULL, "non-string writeKey: none");
    ldseg_result_free(&res, &a);

    ok(ua.live == 0, "writeKey: all memory returned");
}


static void
test_endpoints(void)
{
    size_t  i;

    static const struct {
        const char        *name;
        ldseg_endpoint_e   ep;
    } eps[] = {
        { "track", LDSEG_EP_TRACK }, { "t", LDSEG_EP_TRACK },
        { "identify", LDSEG_EP_IDENTIFY }, { "i", LDSEG_EP_IDENTIFY },
        { "alias", LDSEG_EP_ALIAS }, { "a", LDSEG_EP_ALIAS },
        { "page", LDSEG_EP_PAGE }, { "p", LDSEG_EP_PAGE },
        { "screen", LDSEG_EP_SCREEN }, { "s", LDSEG_EP_SCREEN },
        { "group", LDSEG_EP_GROUP }, { "g", LDSEG_EP_GROUP },
        { "batch", LDSEG_EP_BATCH }, { "import", LDSEG_EP_BATCH },
        { "b", LDSEG_EP_BATCH }, { "tracks", LDSEG_EP_UNKNOWN },
        { "", LDSEG_EP_UNKNOWN }, { "Track", LDSEG_EP_UNKNOWN }
    };

    for (i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
        ok(ldseg_endpoint(eps[i].name, strlen(eps[i].name)) == eps[i].ep,
           "endpoint \"%s\"", eps[i].name);
    }

    ok(strcmp(ldseg_endpoint_name(LDSEG_EP_IDENTIFY), "identify") == 0
       && strcmp(ldseg_endpoint_name(LDSEG_EP_BATCH), "batch") == 0
       && strcmp(ldseg_endpoint_name(LDSEG_EP_UNKNOWN), "unknown") == 0,
       "endpoint names");
}


static void
test_reasons(void)
{
    int          r, q, named, unique;
    const char  *name;

    /* every reason has a name of its own: the status counters use them */

    named = 1;
    unique = 1;

    for (r = 0; r < LDSEG_REASON_N; r++) {
        name = ldseg_reason_name((ldseg_reason_e) r);

        if (strcmp(name, "unknown") == 0
            || strspn(name, "abcdefghijklmnopqrstuvwxyz_") != strlen(name))
        {
            unit_diag("reason %d: \"%s\"", r, name);
            named = 0;
        }

        for (q = 0; q < r; q++) {
            if (strcmp(name, ldseg_reason_name((ldseg_reason_e) q)) == 0) {
                unit_diag("reasons %d and %d: \"%s\"", q, r, name);
                unique = 0;
            }
        }
    }

    ok(named, "reasons: every one has a name");
    ok(unique, "reasons: names are distinct");
    ok(strcmp(ldseg_reason_name(LDSEG_REASON_INVALID_ENCODING),
              "invalid_encoding") == 0
       && strcmp(ldseg_reason_name(LDSEG_REASON_UNKNOWN_WRITE_KEY),
                 "unknown_write_key") == 0
       && strcmp(ldseg_reason_name(LDSEG_REASON_NO_EVENT_FOR_TYPE),
                 "no_event_for_type") == 0,
       "reasons: names of some");
    ok(strcmp(ldseg_reason_name(LDSEG_REASON_N), "unknown") == 0
       && strcmp(ldseg_reason_name((ldseg_reason_e) -1), "unknown") == 0,
       "reasons: out of range is \"unknown\"");
}


static void
test_client_side_id(void)
{
    size_t  i;
    char    big[LDSEG_CLIENT_SIDE_ID_MAX + 1];

    static const struct {
        const char  *id;
        ldseg_rc_t   rc;
    } ids[] = {
        { "5f3a-B_9", LDSEG_OK }, { "a", LDSEG_OK }, { "", LDSEG_EINVAL },
        { "a b", LDSEG_EINVAL }, { "a/b", LDSEG_EINVAL },
        { "a.b", LDSEG_EINVAL }, { "a%2f", LDSEG_EINVAL },
        { "\xc3\xa9", LDSEG_EINVAL }
    };

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        ok(ldseg_client_side_id_check(ids[i].id, strlen(ids[i].id))
           == ids[i].rc, "client-side ID \"%s\"", ids[i].id);
    }

    memset(big, 'a', sizeof(big));

    ok(ldseg_client_side_id_check(big, LDSEG_CLIENT_SIDE_ID_MAX) == LDSEG_OK
       && ldseg_client_side_id_check(big, sizeof(big)) == LDSEG_ETOOBIG,
       "client-side ID: %d bytes at most", LDSEG_CLIENT_SIDE_ID_MAX);
}


static void
test_uuid(void)
{
    char                  buf[40];
    static unsigned char  rnd[16] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };

    memset(buf, 'X', sizeof(buf));
    ldseg_uuid_format(buf, rnd);

    ok(memcmp(buf, "ffffffff-ffff-4fff-bfff-ffffffffffff", 36) == 0
       && buf[36] == 'X',
       "uuid: version and variant bits, exactly 36 bytes");

    memset(rnd, 0, sizeof(rnd));
    ldseg_uuid_format(buf, rnd);

    ok(memcmp(buf, "00000000-0000-4000-8000-000000000000", 36) == 0,
       "uuid of zero bytes");
}


static void
test_json(void)
{
    size_t  i;

    for (i = 0; i < sizeof(test_bad_json) / sizeof(test_bad_json[0]); i++) {
        ok(ldseg_json_validate(test_bad_json[i], strlen(test_bad_json[i]),
                               64) == LDSEG_EINVAL,
           "bad JSON row %zu refused", i);
    }

    for (i = 0; i < sizeof(test_good_json) / sizeof(test_good_json[0]); i++)
    {
        ok(ldseg_json_validate(test_good_json[i], strlen(test_good_json[i]),
                               64) == LDSEG_OK,
           "good JSON row %zu accepted", i);
    }

    ok(ldseg_json_validate("[[[]]]", 6, 3) == LDSEG_OK
       && ldseg_json_validate("[[[[]]]]", 8, 3) == LDSEG_EINVAL,
       "depth limit");

    ok(ldseg_json_validate("{\"a\":\"\\u0000\"}", 14, 64) == LDSEG_OK
       && ldseg_json_validate("{\"a\":1}", 6, 64) == LDSEG_EINVAL,
       "never reads past the length");
}


int
main(void)
{
    size_t  i;

    for (i = 0; i < sizeof(test_rows) / sizeof(test_rows[0]); i++) {
        test_row(&test_rows[i]);
    }

    test_limits();
    test_alloc_failures();
    test_write_key();
    test_endpoints();
    test_reasons();
    test_client_side_id();
    test_uuid();
    test_json();

    return done();
}

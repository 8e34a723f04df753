
/*
 * Copyright (C) ldseg authors
 *
 * Segment's pipeline before the destination: empty identities, the
 * "integrations" object (per message and per batch), clock-skew
 * correction with sentAt, messageIds (reported, unescaped, bounded) and
 * the marking of duplicates with ldseg_result_duplicate() and
 * ldseg_result_compact().
 */


#include <ldseg_json.h>
#include <ldseg_segment.h>
#include <ldseg_time.h>

#include "unit.h"


#define T     "\"timestamp\":\"2022-05-04T03:02:03Z\""
#define T_MS  "1651633323000"

/* a client whose clock sent the message 10 s after its timestamp */
#define S10   "\"sentAt\":\"2022-05-04T03:02:13Z\""

#define NOW   1700000000000LL

#define EV(key, user, ms)                                                    \
    "{\"kind\":\"custom\",\"key\":\"" key "\",\"contextKeys\":{\"user\":"    \
    "\"" user "\"},\"creationDate\":" ms ",\"data\":{}}"


typedef struct {
    const char                   *name;
    ldseg_endpoint_e              ep;
    const char                   *body;
    const char                   *msgs;      /* "E", "S:code", "R:code" */
    const char                   *events;    /* exact text, NULL: any */
    ldseg_format_e                format;
    unsigned                      no_skew;
} test_pipe_t;


static void test_row(const test_pipe_t *t);
static void test_skew_arithmetic(void);
static void test_integrations_table(void);
static void test_message_ids(void);
static void test_duplicates(void);
static void test_alloc_failures(void);


static const test_pipe_t  test_rows[] = {

    /* identities: "" is absent, as Segment's API treats it */

    { "track: empty userId, anonymousId used", LDSEG_EP_TRACK,
      "{\"userId\":\"\",\"anonymousId\":\"a\",\"event\":\"E\"," T "}", "E",
      "{\"kind\":\"custom\",\"key\":\"E\",\"contextKeys\":{\"user\":\"a\","
      "\"unauthenticatedUser\":\"a\"},\"creationDate\":" T_MS
      ",\"data\":{}}",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "track: empty anonymousId is no unauthenticatedUser", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"anonymousId\":\"\",\"event\":\"E\"," T "}", "E",
      EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "track: both empty", LDSEG_EP_TRACK,
      "{\"userId\":\"\",\"anonymousId\":\"\",\"event\":\"E\"," T "}",
      "R:missing_identity", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "identify: empty userId with anonymousId is valid, sends nothing",
      LDSEG_EP_IDENTIFY, "{\"userId\":\"\",\"anonymousId\":\"a\"," T "}",
      "S:identify_without_user_id", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "identify: empty previousId, anonymousId used", LDSEG_EP_IDENTIFY,
      "{\"userId\":\"u\",\"previousId\":\"\",\"anonymousId\":\"a\"," T "}",
      "E",
      "{\"kind\":\"alias\",\"key\":\"u\",\"previousKey\":\"a\","
      "\"contextKind\":\"user\",\"previousContextKind\":\"anonymousUser\","
      "\"creationDate\":" T_MS "}",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "alias: empty userId", LDSEG_EP_ALIAS,
      "{\"userId\":\"\",\"previousId\":\"p\"," T "}", "R:missing_identity",
      "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "batch: empty ids in every message", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"\",\"anonymousId\":\"a\","
      "\"event\":\"E\"," T "},{\"type\":\"identify\",\"userId\":\"\","
      "\"anonymousId\":\"a\"},{\"type\":\"page\",\"userId\":\"\"}]}",
      "E S:identify_without_user_id R:missing_identity", NULL,
      LDSEG_FORMAT_ACTIONS, 0 },

    { "escaped empty userId is not empty", LDSEG_EP_TRACK,
      "{\"userId\":\"\\u0000\",\"event\":\"E\"," T "}", "E",
      EV("E", "\\u0000", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    /* integrations */

    { "All false", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"integrations\":{\"All\":false}}",
      "S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "All false, LaunchDarkly (Actions) true", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":{\"All\":"
      "false,\"LaunchDarkly (Actions)\":true}}", "E", EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "All false, LaunchDarkly true", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":{"
      "\"LaunchDarkly\":true,\"All\":false}}", "E", EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "LaunchDarkly false", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"integrations\":{"
      "\"LaunchDarkly\":false}}", "S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "LaunchDarkly (Actions) false", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"integrations\":{\"All\":true,"
      "\"LaunchDarkly (Actions)\":false}}", "S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "the destination's own name before its other one", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":{"
      "\"LaunchDarkly\":false,\"LaunchDarkly (Actions)\":true}}", "E",
      EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "classic: its own name is LaunchDarkly", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"integrations\":{"
      "\"LaunchDarkly\":false,\"LaunchDarkly (Actions)\":true}}",
      "S:integrations_disabled", "", LDSEG_FORMAT_CLASSIC, 0 },

    { "an options object turns it on", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":{\"All\":"
      "false,\"LaunchDarkly (Actions)\":{\"x\":[1]}}}", "E",
      EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "null is not set: All decides", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"integrations\":{\"All\":false,"
      "\"LaunchDarkly (Actions)\":null,\"LaunchDarkly\":null}}",
      "S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "only false turns it off: 0, \"false\", \"\" are on", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
      T ",\"integrations\":{\"All\":0}},{\"type\":\"track\",\"userId\":"
      "\"u\",\"event\":\"E\"," T ",\"integrations\":{\"LaunchDarkly\":"
      "\"false\"}},{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
      T ",\"integrations\":{\"All\":false,\"LaunchDarkly\":\"\"}}]}",
      "E E E", NULL,
      LDSEG_FORMAT_ACTIONS, 0 },

    { "integrations that is not an object has no keys", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":[false]}",
      "E", EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "escaped key names", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"integrations\":{"
      "\"LaunchDarkly \\u0028Actions)\":false}}", "S:integrations_disabled",
      "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "case matters", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":{"
      "\"launchdarkly\":false,\"all\":false}}", "E", EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "last integrations wins", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"integrations\":{\"All\":"
      "false},\"integrations\":{}}", "E", EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "a refusal of the destination's is a skip when it is off",
      LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
      "\"properties\":{\"revenue\":\"n/a\"},\"integrations\":{\"All\":"
      "false}},{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
      "\"timestamp\":true,\"integrations\":{\"All\":false}},"
      "{\"type\":\"page\",\"userId\":\"u\",\"properties\":1,"
      "\"integrations\":{\"All\":false}}]}",
      "S:integrations_disabled S:integrations_disabled "
      "S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "Segment's API refusals stand", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"integrations\":"
      "{\"All\":false}},{\"type\":\"track\",\"event\":\"E\","
      "\"integrations\":{\"All\":false}},{\"type\":\"alias\",\"userId\":"
      "\"u\",\"integrations\":{\"All\":false}},{\"type\":\"x\","
      "\"integrations\":{\"All\":false}}]}",
      "R:missing_event R:missing_identity R:missing_previous_id "
      "R:invalid_type", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "skips of other kinds become integrations_disabled", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"page\",\"userId\":\"u\",\"integrations\":"
      "{\"All\":false}},{\"type\":\"identify\",\"anonymousId\":\"a\","
      "\"integrations\":{\"All\":false}}]}",
      "S:integrations_disabled S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    /* batch-level integrations: for messages that have none of their own */

    { "batch integrations after the messages", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\","
      T "},{\"type\":\"track\",\"userId\":\"u\",\"event\":\"B\"," T
      ",\"integrations\":{}},{\"type\":\"track\",\"userId\":\"u\","
      "\"event\":\"C\"," T ",\"integrations\":null}],"
      "\"integrations\":{\"All\":false}}",
      "S:integrations_disabled E S:integrations_disabled",
      EV("B", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "batch integrations before the messages", LDSEG_EP_BATCH,
      "{\"integrations\":{\"LaunchDarkly (Actions)\":false},\"batch\":["
      "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\"," T "},"
      "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"B\"," T
      ",\"integrations\":{\"All\":true}}]}",
      "S:integrations_disabled E", EV("B", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "a message's own integrations replace the batch's", LDSEG_EP_BATCH,
      "{\"integrations\":{\"LaunchDarkly\":true},\"batch\":["
      "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\","
      "\"integrations\":{\"All\":false}}]}",
      "S:integrations_disabled", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "batch integrations not an object", LDSEG_EP_BATCH,
      "{\"integrations\":false,\"batch\":[{\"type\":\"track\",\"userId\":"
      "\"u\",\"event\":\"A\"," T "}]}", "E", EV("A", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    /* clock skew */

    { "sentAt 10 s after timestamp: 10 s before receipt", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T "," S10 "}", "E",
      EV("E", "u", "1699999990000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "clock skew off", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T "," S10 "}", "E",
      EV("E", "u", T_MS), LDSEG_FORMAT_ACTIONS, 1 },

    { "no timestamp: the receive time", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," S10 "}", "E",
      EV("E", "u", "1700000000000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "empty timestamp: the receive time", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"timestamp\":\"\"," S10 "}", "E",
      EV("E", "u", "1700000000000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "sentAt before timestamp", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"sentAt\":"
      "\"2022-05-04T03:02:02.5Z\"}", "E", EV("E", "u", "1700000000500"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "sentAt with a zone, timestamp in epoch ms", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"timestamp\":1651633323000,"
      "\"sentAt\":\"2022-05-04T05:02:04+02:00\"}", "E",
      EV("E", "u", "1699999999000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "sentAt in epoch ms", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\"," T ",\"sentAt\":1651633324000}",
      "E", EV("E", "u", "1699999999000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "sentAt that names no instant corrects nothing", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
      T ",\"sentAt\":\"x\"},{\"type\":\"track\",\"userId\":\"u\","
      "\"event\":\"E\"," T ",\"sentAt\":null},{\"type\":\"track\","
      "\"userId\":\"u\",\"event\":\"E\"," T ",\"sentAt\":{}},"
      "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\"," T
      ",\"sentAt\":\"\"}]}", "E E E E",
      EV("E", "u", T_MS) "," EV("E", "u", T_MS) ","
      EV("E", "u", T_MS) "," EV("E", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "a correction beyond Date's range is not made", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"timestamp\":-8640000000000000,"
      "\"sentAt\":8640000000000000}", "E",
      EV("E", "u", "-8640000000000000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "batch sentAt after the messages; a message's own wins",
      LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\","
      T "},{\"type\":\"track\",\"userId\":\"u\",\"event\":\"B\"," T
      ",\"sentAt\":\"2022-05-04T03:02:04Z\"},{\"type\":\"identify\","
      "\"userId\":\"u\",\"anonymousId\":\"a\"," T "}],"
      "\"sentAt\":\"2022-05-04T03:02:23Z\"}", "E E E",
      EV("A", "u", "1699999980000") "," EV("B", "u", "1699999999000") ","
      "{\"kind\":\"alias\",\"key\":\"u\",\"previousKey\":\"a\","
      "\"contextKind\":\"user\",\"previousContextKind\":\"anonymousUser\","
      "\"creationDate\":1699999980000}",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "batch sentAt before the messages", LDSEG_EP_BATCH,
      "{\"sentAt\":\"2022-05-04T03:02:13Z\",\"batch\":[{\"type\":\"track\","
      "\"userId\":\"u\",\"event\":\"A\"," T "}]}", "E",
      EV("A", "u", "1699999990000"),
      LDSEG_FORMAT_ACTIONS, 0 },

    { "batch sentAt, clock skew off", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\","
      T "}],\"sentAt\":\"2022-05-04T03:02:13Z\"}", "E",
      EV("A", "u", T_MS), LDSEG_FORMAT_ACTIONS, 1 },

    { "invalid timestamp with a sentAt still refused", LDSEG_EP_TRACK,
      "{\"userId\":\"u\",\"event\":\"E\",\"timestamp\":\"x\"," S10 "}",
      "R:invalid_timestamp", "",
      LDSEG_FORMAT_ACTIONS, 0 },

    { "a sentAt of another message does not leak", LDSEG_EP_BATCH,
      "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\","
      T "," S10 "},{\"type\":\"track\",\"userId\":\"u\",\"event\":\"B\","
      T "}]}", "E E",
      EV("A", "u", "1699999990000") "," EV("B", "u", T_MS),
      LDSEG_FORMAT_ACTIONS, 0 }
};


static void
test_row(const test_pipe_t *t)
{
    char                buf[512];
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
    opt.clock_skew = !t->no_skew;

    err.reason = LDSEG_REASON_N;
    rc = ldseg_process(t->body, strlen(t->body), t->ep, &opt, &a, &res, &err);

    if (!ok(rc == LDSEG_OK, "%s: processed", t->name)) {
        unit_diag("got rc %d %s", (int) rc, ldseg_reason_name(err.reason));
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
                         ldseg_reason_name(m->err.reason));
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
test_skew_arithmetic(void)
{
    int64_t  ms;

    ms = 7;
    ok(ldseg_time_skew(1000, 1000, 5000, &ms) == LDSEG_OK && ms == 5000,
       "skew: sent when stamped is received now");

    ok(ldseg_time_skew(1000, 4000, 5000, &ms) == LDSEG_OK && ms == 2000,
       "skew: the interval is kept");

    ok(ldseg_time_skew(9000, 4000, 5000, &ms) == LDSEG_OK && ms == 10000,
       "skew: a timestamp after sentAt stays after receipt");

    ok(ldseg_time_skew(-8640000000000000LL, 8640000000000000LL,
                       8640000000000000LL, &ms) == LDSEG_OK
       && ms == -8640000000000000LL,
       "skew: extremes that cancel out");

    ms = 7;
    ok(ldseg_time_skew(-8640000000000000LL, 8640000000000000LL, 0, &ms)
       == LDSEG_EINVAL && ms == 7,
       "skew: out of Date's range refused, nothing written");

    ok(ldseg_time_skew(8640000000000000LL, -8640000000000000LL,
                       8640000000000000LL, &ms) == LDSEG_EINVAL,
       "skew: out of range the other way");
}


static void
test_integrations_table(void)
{
    size_t                i;
    ldseg_integrations_t  own, batch;

    /* { own set, all, ld, ld_actions, batch set, all, ld, ld_actions,
     *   actions enabled, classic enabled } */
    static const unsigned  rows[][10] = {
        { 0, 0, 0, 0,  0, 0, 0, 0,  1, 1 },
        { 1, 1, 0, 0,  0, 0, 0, 0,  0, 0 },
        { 1, 1, 2, 0,  0, 0, 0, 0,  1, 1 },
        { 1, 1, 0, 2,  0, 0, 0, 0,  1, 1 },
        { 1, 2, 1, 2,  0, 0, 0, 0,  1, 0 },
        { 1, 2, 2, 1,  0, 0, 0, 0,  0, 1 },
        { 0, 0, 0, 0,  1, 1, 0, 0,  0, 0 },
        { 1, 0, 0, 0,  1, 1, 0, 0,  1, 1 },
        { 0, 0, 0, 0,  0, 1, 0, 0,  1, 1 },
        { 1, 0, 0, 1,  1, 0, 0, 2,  0, 0 },
        { 1, 0, 0, 0,  1, 0, 1, 0,  1, 1 }
    };

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        own.set = rows[i][0];
        own.all = rows[i][1];
        own.ld = rows[i][2];
        own.ld_actions = rows[i][3];
        batch.set = rows[i][4];
        batch.all = rows[i][5];
        batch.ld = rows[i][6];
        batch.ld_actions = rows[i][7];

        ok(ldseg_segment_enabled(&own, &batch, LDSEG_FORMAT_ACTIONS)
           == (int) rows[i][8]
           && ldseg_segment_enabled(&own, &batch, LDSEG_FORMAT_CLASSIC)
              == (int) rows[i][9],
           "integrations table row %zu", i);
    }

    own.set = 0;
    own.all = LDSEG_INT_UNSET;
    own.ld = LDSEG_INT_UNSET;
    own.ld_actions = LDSEG_INT_UNSET;
    ok(ldseg_segment_enabled(&own, NULL, LDSEG_FORMAT_ACTIONS) == 1,
       "integrations: single message, nothing set: on");

    own.set = 1;
    own.all = LDSEG_INT_OFF;
    ok(ldseg_segment_enabled(&own, NULL, LDSEG_FORMAT_ACTIONS) == 0,
       "integrations: single message, All false: off");
}


static void
test_message_ids(void)
{
    char                body[2048], id[LDSEG_MAX_MESSAGE_ID + 2];
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.now_ms = NOW;
    opt.message_ids = 1;

    memset(id, 'm', sizeof(id));
    id[sizeof(id) - 1] = '\0';

    /* messages 0-7, then one whose id is 256 bytes, one of 257 */

    snprintf(body, sizeof(body),
             "{\"batch\":["
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":\"m-1\"},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":\"a\\u0062\\\"c\"},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":\"\"},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":5},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\"},"
             "{\"type\":\"track\",\"userId\":\"u\",\"messageId\":\"m-5\"},"
             "{\"type\":\"page\",\"userId\":\"u\",\"messageId\":\"m-6\"},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":\"\\u00e9\",\"integrations\":{\"All\":false}},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":\"%.*s\"},"
             "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\","
             "\"messageId\":\"%s\"}]}",
             LDSEG_MAX_MESSAGE_ID, id, id);

    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);

    if (!ok(rc == LDSEG_OK && res.n == 10, "message ids: processed")) {
        return;
    }

    ok(res.msgs[0].message_id_len == 3
       && memcmp(res.msgs[0].message_id, "m-1", 3) == 0,
       "message id as sent");
    ok(res.msgs[1].message_id_len == 4
       && memcmp(res.msgs[1].message_id, "ab\"c", 4) == 0,
       "message id unescaped");
    ok(res.msgs[2].message_id == NULL && res.msgs[3].message_id == NULL
       && res.msgs[4].message_id == NULL,
       "empty, number or absent message id: none");
    ok(res.msgs[5].status == LDSEG_MSG_REJECTED
       && res.msgs[5].message_id == NULL,
       "a rejected message reports no message id");
    ok(res.msgs[6].status == LDSEG_MSG_SKIPPED
       && res.msgs[6].message_id_len == 3
       && memcmp(res.msgs[6].message_id, "m-6", 3) == 0,
       "a skipped message reports its message id");
    ok(res.msgs[7].status == LDSEG_MSG_SKIPPED
       && res.msgs[7].message_id_len == 2
       && memcmp(res.msgs[7].message_id, "\xc3\xa9", 2) == 0,
       "integrations_disabled reports its message id, unescaped");
    ok(res.msgs[8].status == LDSEG_MSG_EVENT
       && res.msgs[8].message_id_len == LDSEG_MAX_MESSAGE_ID,
       "a message id of 256 bytes is accepted");
    ok(res.msgs[9].status == LDSEG_MSG_REJECTED
       && res.msgs[9].err.reason == LDSEG_REASON_INVALID_MESSAGE_ID
       && res.msgs[9].message_id == NULL,
       "a message id of 257 bytes: invalid_message_id");
    if (!ok(res.nevents == 6 && res.nskipped == 2 && res.nrejected == 2,
            "message ids: counts"))
    {
        unit_diag("%zu %zu %zu", res.nevents, res.nskipped, res.nrejected);
    }

    ldseg_result_free(&res, &a);

    /* without message_ids nothing is reported, nothing is bounded */

    opt.message_ids = 0;

    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);

    ok(rc == LDSEG_OK && res.msgs[0].message_id == NULL
       && res.msgs[1].message_id == NULL
       && res.msgs[9].status == LDSEG_MSG_EVENT
       && res.ids == NULL,
       "without message_ids: none reported, a long one accepted");

    ldseg_result_free(&res, &a);

    /* a single message */

    opt.message_ids = 1;

    body[0] = '\0';
    strcat(body, "{\"userId\":\"u\",\"event\":\"E\",\"messageId\":\"x\\/y\"}");

    rc = ldseg_process(body, strlen(body), LDSEG_EP_TRACK, &opt, &a, &res,
                       &err);

    ok(rc == LDSEG_OK && res.msgs[0].message_id_len == 3
       && memcmp(res.msgs[0].message_id, "x/y", 3) == 0,
       "single message: message id unescaped");

    ldseg_result_free(&res, &a);

    ok(ua.live == 0, "message ids: all memory returned");
}


static void
test_duplicates(void)
{
    const char         *body;
    ldseg_rc_t          rc;
    unit_alloc_t        ua;
    ldseg_error_t       err;
    ldseg_result_t      res, want;
    ldseg_options_t     opt;
    ldseg_allocator_t   a;

    unit_allocator(&a, &ua);
    ldseg_options_init(&opt);
    opt.now_ms = NOW;

    body = "{\"batch\":["
           "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\"},"
           "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"B\"},"
           "{\"type\":\"page\",\"userId\":\"u\"},"
           "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"C\"},"
           "{\"type\":\"track\",\"userId\":\"u\"},"
           "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"D\"}]}";

    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &res,
                       &err);

    if (!ok(rc == LDSEG_OK && res.nevents == 4, "duplicates: processed")) {
        return;
    }

    ldseg_result_duplicate(&res, 0);
    ldseg_result_duplicate(&res, 2);
    ldseg_result_duplicate(&res, 3);
    ldseg_result_duplicate(&res, 4);       /* rejected: unchanged */
    ldseg_result_duplicate(&res, 3);       /* twice: unchanged */

    ok(res.nevents == 2 && res.nskipped == 0 && res.nrejected == 1
       && res.nduplicates == 3
       && res.msgs[0].status == LDSEG_MSG_DUPLICATE
       && res.msgs[2].status == LDSEG_MSG_DUPLICATE
       && res.msgs[3].status == LDSEG_MSG_DUPLICATE
       && res.msgs[4].status == LDSEG_MSG_REJECTED
       && res.msgs[1].status == LDSEG_MSG_EVENT
       && res.msgs[5].status == LDSEG_MSG_EVENT
       && res.msgs[0].err.reason == LDSEG_REASON_DUPLICATE
       && strcmp(ldseg_reason_name(LDSEG_REASON_DUPLICATE), "duplicate") == 0,
       "duplicates: statuses, reasons and counts");

    ldseg_result_compact(&res);

    body = "{\"batch\":["
           "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"B\"},"
           "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"D\"}]}";

    rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a, &want,
                       &err);

    ok(rc == LDSEG_OK && res.events_len == want.events_len
       && memcmp(res.events, want.events, want.events_len) == 0
       && res.msgs[1].event_off == 0
       && res.msgs[5].event_off == want.msgs[1].event_off
       && res.msgs[5].event_len == want.msgs[1].event_len,
       "duplicates: the remaining events joined as by ldseg_process()");

    ldseg_result_free(&want, &a);

    ldseg_result_duplicate(&res, 1);
    ldseg_result_duplicate(&res, 5);
    ldseg_result_compact(&res);

    ok(res.nevents == 0 && res.events_len == 0 && res.nduplicates == 5,
       "duplicates: no event left");

    ldseg_result_free(&res, &a);

    /* nothing to compact */

    rc = ldseg_process("{\"userId\":\"u\"}", 14, LDSEG_EP_PAGE, &opt, &a,
                       &res, &err);
    ldseg_result_duplicate(&res, 0);
    ldseg_result_compact(&res);

    ok(rc == LDSEG_OK && res.nskipped == 0 && res.nduplicates == 1
       && res.events == NULL && res.events_len == 0,
       "duplicates: a skipped single message");

    ldseg_result_free(&res, &a);

    ok(ua.live == 0, "duplicates: all memory returned");
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
           "\"userId\":\"u\",\"event\":\"E\",\"messageId\":\"a\\/b\"},"
           "{\"type\":\"identify\",\"userId\":\"u\",\"anonymousId\":\"a\","
           "\"messageId\":\"c\"}],\"sentAt\":\"2022-05-04T03:02:03Z\"}";

    ldseg_options_init(&opt);
    opt.message_ids = 1;
    all = 1;

    for (k = 1; k <= 7; k++) {
        unit_allocator(&a, &ua);
        ua.fail_at = k;

        rc = ldseg_process(body, strlen(body), LDSEG_EP_BATCH, &opt, &a,
                           &res, &err);

        if (rc == LDSEG_OK) {
            ldseg_result_free(&res, &a);

        } else if (rc != LDSEG_ENOMEM
                   || err.reason != LDSEG_REASON_NO_MEMORY)
        {
            all = 0;
        }

        if (ua.live != 0) {
            all = 0;
        }
    }

    ok(all, "pipeline: every allocation failure gives ENOMEM, no leak");
}


int
main(void)
{
    size_t  i;

    for (i = 0; i < sizeof(test_rows) / sizeof(test_rows[0]); i++) {
        test_row(&test_rows[i]);
    }

    test_skew_arithmetic();
    test_integrations_table();
    test_message_ids();
    test_duplicates();
    test_alloc_failures();

    return done();
}

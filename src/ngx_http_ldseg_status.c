
/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_status": the zone's counters as JSON, or in Prometheus text
 * exposition format with "?format=prometheus", in total and per
 * destination.  The counters are read without the lock (they are
 * atomics); the queue gauges and the destinations in one round under it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_dedupe.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_reply.h"
#include "ngx_http_ldseg_sender.h"


typedef struct {
    const char                   *name;
    const char                   *help;
    size_t                        offset;
} ngx_http_ldseg_counter_t;


/* a test event waiting for LaunchDarkly's answer */
typedef struct {
    ngx_http_request_t           *r;
    void                         *post;
    ngx_str_t                     id;
} ngx_http_ldseg_test_t;


/* what one status answer shows */
typedef struct {
    ngx_http_ldseg_stats_t       *st;
    ngx_http_ldseg_usage_t        u;
    ngx_http_ldseg_view_t         v;
    ngx_http_ldseg_main_conf_t   *lmcf;
    time_t                        now;

    /* ldseg_dedupe's zone, NULL without it */
    ngx_http_ldseg_dedupe_usage_t    du_usage;
    ngx_http_ldseg_dedupe_usage_t   *du;

    /* the chart's three series, NGX_HTTP_LDSEG_HISTORY seconds each */
    uint32_t                     *series;
} ngx_http_ldseg_status_t;


static size_t ngx_http_ldseg_status_size(ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_status_json(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_dest_json(u_char *p,
    ngx_http_ldseg_dest_status_t *ds);
static u_char *ngx_http_ldseg_dstats_json(u_char *p,
    ngx_http_ldseg_dstats_t *d);
static u_char *ngx_http_ldseg_status_export(u_char *p,
    ngx_http_ldseg_stats_t *st, ngx_http_ldseg_account_t *a,
    u_char (*keys)[NGX_HTTP_LDSEG_CRED_MAX], ngx_uint_t n,
    ngx_uint_t prometheus);
static u_char *ngx_http_ldseg_status_prometheus(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_dest_prometheus(u_char *p,
    ngx_http_ldseg_status_t *ss);
static ngx_int_t ngx_http_ldseg_dest_names(ngx_pool_t *pool,
    ngx_http_ldseg_view_t *v);
static u_char *ngx_http_ldseg_dest_labels(u_char *p,
    ngx_http_ldseg_dest_status_t *ds);
static ngx_int_t ngx_http_ldseg_status_recent(ngx_http_request_t *r,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_time_ms(u_char *p, uint64_t ms);
static ngx_uint_t ngx_http_ldseg_wants_html(ngx_http_request_t *r);
static ngx_int_t ngx_http_ldseg_status_test(ngx_http_request_t *r);
static void ngx_http_ldseg_test_answer(void *data, long status,
    ngx_str_t *error, u_char *id);
static void ngx_http_ldseg_test_cleanup(void *data);
static ngx_int_t ngx_http_ldseg_status_html(ngx_http_request_t *r,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_html_head(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_html_totals(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_html_chart(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_html_dests(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_html_errors(u_char *p,
    ngx_http_ldseg_status_t *ss);
static u_char *ngx_http_ldseg_html_recent(u_char *p,
    ngx_http_ldseg_status_t *ss);


#define ngx_http_ldseg_stat(st, c)                                           \
    (*(ngx_atomic_t *) ((u_char *) (st) + (c)->offset))

#define ngx_http_ldseg_dstat(d, c)                                           \
    (*(uint64_t *) ((u_char *) (d) + (c)->offset))

/* the bytes of one destination's JSON object or Prometheus samples */
#define NGX_HTTP_LDSEG_DEST_SIZE      6144


/* any reason indexes the zone's counters */
typedef char  ngx_http_ldseg_reasons_fit_t
                  [(LDSEG_REASON_N <= NGX_HTTP_LDSEG_NREASONS) ? 1 : -1];

/* and every skip the zone's skip counters */
typedef char  ngx_http_ldseg_skips_fit_t
                  [(LDSEG_REASON_NSKIP - LDSEG_REASON_NREJECT
                    <= NGX_HTTP_LDSEG_NSKIPS) ? 1 : -1];


const char  *ngx_http_ldseg_drops[NGX_HTTP_LDSEG_NDROPS] = {
    "too_large_for_launchdarkly",
    "spool_corrupt",
    "no_room",
    "dead_letter_unwritable"
};


static ngx_str_t  ngx_http_ldseg_text =
    ngx_string("text/plain; version=0.0.4");


/* indexed by NGX_HTTP_LDSEG_RECENT_* */
static const char  *ngx_http_ldseg_outcomes[] = {
    "queued", "delivered", "retrying", "dead_lettered", "dropped", "split",
    "not_queued"
};


/* the message and event counters, in the order they are shown */
static ngx_http_ldseg_counter_t  ngx_http_ldseg_counters[] = {
    { "requests", "Tracking API requests handled.",
      offsetof(ngx_http_ldseg_stats_t, requests) },
    { "received", "Segment messages received.",
      offsetof(ngx_http_ldseg_stats_t, received) },
    { "accepted", "Segment messages accepted (answered 2xx).",
      offsetof(ngx_http_ldseg_stats_t, accepted) },
    { "rejected", "Segment messages rejected.",
      offsetof(ngx_http_ldseg_stats_t, rejected) },
    { "skipped", "Accepted messages that map to no LaunchDarkly event.",
      offsetof(ngx_http_ldseg_stats_t, skipped) },
    { "duplicate", "Accepted messages whose messageId was accepted within "
      "the ldseg_dedupe window: nothing sent.",
      offsetof(ngx_http_ldseg_stats_t, duplicate) },
    { "translated", "LaunchDarkly events produced.",
      offsetof(ngx_http_ldseg_stats_t, translated) },
    { "queued", "LaunchDarkly events queued.",
      offsetof(ngx_http_ldseg_stats_t, queued) },
    { "delivered", "LaunchDarkly events acknowledged by LaunchDarkly.",
      offsetof(ngx_http_ldseg_stats_t, delivered) },
    { "failed", "LaunchDarkly events in POSTs that failed (kept, retried).",
      offsetof(ngx_http_ldseg_stats_t, failed) },
    { "dropped", "LaunchDarkly events given up on.",
      offsetof(ngx_http_ldseg_stats_t, dropped) },
    { "dead_lettered", "LaunchDarkly events LaunchDarkly refused on every "
      "attempt, written to the dead-letter file.",
      offsetof(ngx_http_ldseg_stats_t, dead_lettered) },
    { "lease_expired", "Payloads taken over after a lease expired.",
      offsetof(ngx_http_ldseg_stats_t, lease_expired) },
    { "spooled", "LaunchDarkly events written to the spool.",
      offsetof(ngx_http_ldseg_stats_t, spooled) },
    { "replayed", "LaunchDarkly events loaded from the spool at start.",
      offsetof(ngx_http_ldseg_stats_t, replayed) },
    { NULL, NULL, 0 }
};


/* a destination's counters, in the order they are shown */
static ngx_http_ldseg_counter_t  ngx_http_ldseg_dest_counters[] = {
    { "received", "Segment messages received in requests that queued "
      "events for the destination.",
      offsetof(ngx_http_ldseg_dstats_t, received) },
    { "accepted", "Of them, Segment messages accepted.",
      offsetof(ngx_http_ldseg_dstats_t, accepted) },
    { "rejected", "Of them, Segment messages rejected.",
      offsetof(ngx_http_ldseg_dstats_t, rejected) },
    { "queued", "LaunchDarkly events queued for the destination.",
      offsetof(ngx_http_ldseg_dstats_t, queued) },
    { "delivered", "LaunchDarkly events the destination acknowledged.",
      offsetof(ngx_http_ldseg_dstats_t, delivered) },
    { "failed", "LaunchDarkly events in POSTs that failed (kept, retried).",
      offsetof(ngx_http_ldseg_dstats_t, failed) },
    { "dead_lettered", "LaunchDarkly events the destination refused on "
      "every attempt.",
      offsetof(ngx_http_ldseg_dstats_t, dead_lettered) },
    { "dropped", "LaunchDarkly events given up on as too large.",
      offsetof(ngx_http_ldseg_dstats_t, dropped) },
    { "posts", "POSTs to the destination started.",
      offsetof(ngx_http_ldseg_dstats_t, posts) },
    { "posts_failed", "POSTs to the destination that failed.",
      offsetof(ngx_http_ldseg_dstats_t, posts_failed) },
    { "retries", "POSTs that sent a payload again.",
      offsetof(ngx_http_ldseg_dstats_t, retries) },
    { "subrequests", "ldseg_deliver subrequests to the destination started.",
      offsetof(ngx_http_ldseg_dstats_t, subrequests) },
    { "subrequests_accepted", "Of them, answered with 2xx.",
      offsetof(ngx_http_ldseg_dstats_t, subrequests_accepted) },
    { "subrequests_failed", "Of them, failed (non-2xx, upstream error, "
      "timeout, client gone).",
      offsetof(ngx_http_ldseg_dstats_t, subrequests_failed) },
    { NULL, NULL, 0 }
};


static const char  *ngx_http_ldseg_pauses[] = {
    NULL, "backoff", "retry_after", "refused"
};


/* the export's counters: totals, and per write key */
static ngx_http_ldseg_counter_t  ngx_http_ldseg_export_counters[] = {
    { "requests", "SDK event posts read for the export.",
      offsetof(ngx_http_ldseg_stats_t, export_requests) },
    { "received", "SDK events read (an unusable post counts one).",
      offsetof(ngx_http_ldseg_stats_t, export_received) },
    { "exported", "Segment messages queued for Segment.",
      offsetof(ngx_http_ldseg_stats_t, exported) },
    { "skipped", "SDK events that are not exported (index, identify, "
      "summary, alias, debug).",
      offsetof(ngx_http_ldseg_stats_t, export_skipped) },
    { "rejected", "SDK events (or unusable posts) that cannot be exported.",
      offsetof(ngx_http_ldseg_stats_t, export_rejected) },
    { "dropped", "Segment messages given up on (queue full, dead letter).",
      offsetof(ngx_http_ldseg_stats_t, export_dropped) },
    { "delivered", "Segment messages acknowledged by Segment.",
      offsetof(ngx_http_ldseg_stats_t, export_delivered) },
    { "failed", "Segment messages in POSTs that failed (kept, retried).",
      offsetof(ngx_http_ldseg_stats_t, export_failed) },
    { "dead_lettered", "Segment messages written to ldseg_dead_letter "
      "(refused by Segment, or over its 32 KB).",
      offsetof(ngx_http_ldseg_stats_t, export_dead_lettered) },
    { NULL, NULL, 0 }
};


static ngx_http_ldseg_counter_t  ngx_http_ldseg_account_counters[] = {
    { "exported", "Segment messages queued, by write key.",
      offsetof(ngx_http_ldseg_account_t, exported) },
    { "skipped", "SDK events not exported, by write key.",
      offsetof(ngx_http_ldseg_account_t, skipped) },
    { "rejected", "SDK events that cannot be exported, by write key.",
      offsetof(ngx_http_ldseg_account_t, rejected) },
    { "dropped", "Segment messages given up on, by write key.",
      offsetof(ngx_http_ldseg_account_t, dropped) },
    { "delivered", "Segment messages acknowledged, by write key.",
      offsetof(ngx_http_ldseg_account_t, delivered) },
    { "failed", "Segment messages in failed POSTs, by write key.",
      offsetof(ngx_http_ldseg_account_t, failed) },
    { "dead_lettered", "Segment messages written to ldseg_dead_letter, by "
      "write key.",
      offsetof(ngx_http_ldseg_account_t, dead_lettered) },
    { NULL, NULL, 0 }
};


static ngx_http_ldseg_counter_t  ngx_http_ldseg_post_counters[] = {
    { "sent", "POSTs to LaunchDarkly started.",
      offsetof(ngx_http_ldseg_stats_t, posts_sent) },
    { "succeeded", "POSTs LaunchDarkly answered with 2xx.",
      offsetof(ngx_http_ldseg_stats_t, posts_succeeded) },
    { "failed", "POSTs that failed and were given back to the queue.",
      offsetof(ngx_http_ldseg_stats_t, posts_failed) },
    { NULL, NULL, 0 }
};


static ngx_http_ldseg_counter_t  ngx_http_ldseg_subrequest_counters[] = {
    { "sent", "ldseg_deliver subrequests started (POSTs to LaunchDarkly "
      "through an nginx location).",
      offsetof(ngx_http_ldseg_stats_t, subrequests_sent) },
    { "accepted", "ldseg_deliver subrequests answered with 2xx.",
      offsetof(ngx_http_ldseg_stats_t, subrequests_accepted) },
    { "failed", "ldseg_deliver subrequests that failed (non-2xx, upstream "
      "error, timeout, client gone).",
      offsetof(ngx_http_ldseg_stats_t, subrequests_failed) },
    { NULL, NULL, 0 }
};


ngx_int_t
ngx_http_ldseg_status_handler(ngx_http_request_t *r)
{
    u_char                      *body, *last;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_str_t                    format, arg;
    ngx_uint_t                   prometheus, html, what;
    ngx_uint_t                   n;
    ngx_http_ldseg_stats_t      *st;
    ngx_http_ldseg_status_t      ss;
    ngx_http_ldseg_account_t    *a;
    ngx_http_ldseg_main_conf_t  *lmcf;
    u_char                     (*keys)[NGX_HTTP_LDSEG_CRED_MAX];

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->uri.len >= 5
        && ngx_strncmp(r->uri.data + r->uri.len - 5, "/test", 5) == 0)
    {
        return ngx_http_ldseg_status_test(r);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_ldseg_not_allowed(r, "GET, HEAD",
                                          "the status accepts GET and HEAD "
                                          "only");
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    st = ngx_http_ldseg_queue_stats(lmcf->shm_zone);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    prometheus = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 10
        && ngx_strncmp(format.data, "prometheus", 10) == 0)
    {
        prometheus = 1;
    }

    ngx_memzero(&ss, sizeof(ngx_http_ldseg_status_t));

    ss.st = st;
    ss.lmcf = lmcf;
    ss.now = ngx_time();
    ss.du = NULL;

    if (lmcf->dedupe != NULL) {
        ngx_http_ldseg_dedupe_usage(lmcf->dedupe, &ss.du_usage);
        ss.du = &ss.du_usage;
    }

    what = 0;
    html = 0;

    if (ngx_http_arg(r, (u_char *) "recent", 6, &arg) == NGX_OK
        && arg.len == 1 && arg.data[0] == '1')
    {
        what = NGX_HTTP_LDSEG_VIEW_RECENT;

    } else if (!prometheus && ngx_http_ldseg_wants_html(r)) {
        html = 1;
        what = NGX_HTTP_LDSEG_VIEW_HISTORY|NGX_HTTP_LDSEG_VIEW_RECENT;

        ss.series = ngx_palloc(r->pool, 3 * NGX_HTTP_LDSEG_HISTORY
                                        * sizeof(uint32_t));
        if (ss.series == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_ldseg_queue_usage(lmcf->shm_zone, &ss.u);

    if (ngx_http_ldseg_queue_view(lmcf->shm_zone, r->pool, what, &ss.v)
        != NGX_OK
        || ngx_http_ldseg_dest_names(r->pool, &ss.v) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (html) {
        return ngx_http_ldseg_status_html(r, &ss);
    }

    if (what == NGX_HTTP_LDSEG_VIEW_RECENT) {
        return ngx_http_ldseg_status_recent(r, &ss);
    }

    /* the export's write keys: at most 6 lines of about 150 bytes each */

    a = ngx_palloc(r->pool, (NGX_HTTP_LDSEG_ACCOUNTS_MAX + 1)
                            * sizeof(ngx_http_ldseg_account_t));
    keys = ngx_palloc(r->pool, (NGX_HTTP_LDSEG_ACCOUNTS_MAX + 1)
                               * NGX_HTTP_LDSEG_CRED_MAX);
    if (a == NULL || keys == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = ngx_http_ldseg_queue_accounts(lmcf->shm_zone, a, keys,
                                      NGX_HTTP_LDSEG_ACCOUNTS_MAX + 1);

    len = ngx_http_ldseg_status_size(&ss) + 4096 + n * 1024;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (prometheus) {
        last = ngx_http_ldseg_status_prometheus(body, &ss);

    } else {
        /* the export's object goes before the closing "}\n" */
        last = ngx_http_ldseg_status_json(body, &ss) - 2;
    }

    last = ngx_http_ldseg_status_export(last, st, a, keys, n, prometheus);

    if (prometheus) {
        return ngx_http_ldseg_send(r, NGX_HTTP_OK, &ngx_http_ldseg_text,
                                   body, last - body);
    }

    return ngx_http_ldseg_send_json(r, NGX_HTTP_OK, body, last - body);
}


static ngx_int_t
ngx_http_ldseg_status_recent(ngx_http_request_t *r,
    ngx_http_ldseg_status_t *ss)
{
    u_char                   *body, *p;
    size_t                    len;
    ngx_uint_t                i, n;
    uint64_t                  k;
    ngx_http_ldseg_ring_t    *ring;
    ngx_http_ldseg_recent_t  *e;

    /*
     * {"size":N,"total":T,"recent":[...]}, newest first; an event cut to
     * NGX_HTTP_LDSEG_RECENT_EVENT bytes is shown as a string
     */

    ring = ss->v.recent;
    n = 0;

    if (ring != NULL) {
        n = (ring->total < ring->n) ? (ngx_uint_t) ring->total : ring->n;
    }

    len = 128 + n * (6 * NGX_HTTP_LDSEG_RECENT_EVENT
                     + NGX_HTTP_LDSEG_RECENT_ID + 512);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"size\":%ui,\"total\":%uL,\"recent\":[",
                    ring ? ring->n : 0, ring ? ring->total : 0);

    for (i = 0; i < n; i++) {
        k = ring->total - 1 - i;
        e = &ring->e[k % ring->n];

        p = ngx_sprintf(p, "%s{\"payload_id\":", i ? "," : "");

        if (e->has_payload_id) {
            *p++ = '"';
            ldseg_uuid_format((char *) p, e->payload_id);
            p += LDSEG_UUID_LEN;
            *p++ = '"';

        } else {
            p = ngx_sprintf(p, "null");
        }

        p = ngx_sprintf(p, ",\"client_side_id\":\"%*s\",\"queued\":",
                        (size_t) e->id_len, e->client_side_id);
        p = ngx_http_ldseg_time_ms(p, e->queued);
        p = ngx_sprintf(p, ",\"answered\":");
        p = ngx_http_ldseg_time_ms(p, e->answered);

        p = ngx_sprintf(p, ",\"outcome\":\"%s\",\"status\":",
                        ngx_http_ldseg_outcomes[e->outcome]);

        if (e->answered) {
            p = ngx_sprintf(p, "%ud", (unsigned) e->status);

        } else {
            p = ngx_sprintf(p, "null");
        }

        p = ngx_sprintf(p, ",\"attempts\":%ud,\"event\":",
                        (unsigned) e->attempts);

        if (e->truncated) {
            *p++ = '"';
            p = (u_char *) ngx_escape_json(p, e->event, e->event_len);
            p = ngx_sprintf(p, "\",\"event_truncated\":true}");

        } else {
            p = ngx_cpymem(p, e->event, e->event_len);
            *p++ = '}';
        }
    }

    p = ngx_sprintf(p, "]}\n");

    return ngx_http_ldseg_send_json(r, NGX_HTTP_OK, body, p - body);
}


static u_char *
ngx_http_ldseg_time_ms(u_char *p, uint64_t ms)
{
    ngx_tm_t  tm;

    if (ms == 0) {
        return ngx_sprintf(p, "null");
    }

    ngx_gmtime((time_t) (ms / 1000), &tm);

    return ngx_sprintf(p, "\"%4d-%02d-%02dT%02d:%02d:%02d.%03uLZ\"",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                       ms % 1000);
}


static size_t
ngx_http_ldseg_status_size(ngx_http_ldseg_status_t *ss)
{
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_ldseg_dest_status_t  *ds;

    /*
     * A generous bound: the totals' lines are short and their count
     * known; a destination adds its URL and its escaped error text (6
     * bytes at most for one byte) to a bounded number of lines, and each
     * Prometheus metric repeats its labels.
     */

    len = 16384;

    ds = ss->v.dests->elts;

    for (i = 0; i < ss->v.dests->nelts; i++) {
        len += NGX_HTTP_LDSEG_DEST_SIZE + 40 * 2 * ds[i].url.len
               + 6 * ds[i].error.len;
    }

    return len;
}


static u_char *
ngx_http_ldseg_status_json(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_uint_t                     i;
    ngx_http_ldseg_usage_t        *u;
    ngx_http_ldseg_stats_t        *st;
    ngx_http_ldseg_counter_t      *c;
    ngx_http_ldseg_alert_sh_t     *al;
    ngx_http_ldseg_alert_conf_t   *ac;
    ngx_http_ldseg_dedupe_usage_t *du;
    ngx_http_ldseg_dest_status_t  *ds;

    st = ss->st;
    u = &ss->u;

    p = ngx_sprintf(p, "{\"version\":\"%s\"", LDSEG_VERSION);

    for (c = ngx_http_ldseg_counters; c->name; c++) {
        p = ngx_sprintf(p, ",\"%s\":%uA", c->name, ngx_http_ldseg_stat(st, c));
    }

    p = ngx_sprintf(p, ",\"rejected_reasons\":{");

    for (i = 0; i < LDSEG_REASON_NREJECT; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "",
                        ldseg_reason_name(i), st->rejected_reasons[i]);
    }

    p = ngx_sprintf(p, "},\"skipped_reasons\":{");

    for (i = LDSEG_REASON_NREJECT; i < LDSEG_REASON_NSKIP; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA",
                        i == LDSEG_REASON_NREJECT ? "" : ",",
                        ldseg_reason_name(i),
                        st->skipped_reasons[i - LDSEG_REASON_NREJECT]);
    }

    p = ngx_sprintf(p, "},\"dropped_reasons\":{");

    for (i = 0; i < NGX_HTTP_LDSEG_NDROPS; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "",
                        ngx_http_ldseg_drops[i], st->dropped_reasons[i]);
    }

    p = ngx_sprintf(p, "},\"queue\":{\"events\":%ui,\"bytes\":%uz,"
                    "\"memory\":%uz,\"size\":%uz,\"destinations\":%ui},"
                    "\"spool\":{\"events\":%ui,\"bytes\":%O}", u->events,
                    u->bytes, u->memory, u->size, u->destinations,
                    u->spool_events, u->spool_bytes);

    du = ss->du;

    if (du != NULL) {
        p = ngx_sprintf(p, ",\"dedupe\":{\"entries\":%ui,\"size\":%uz,"
                        "\"evicted\":%ui,\"unremembered\":%ui}",
                        du->entries, du->size, du->evicted,
                        du->unremembered);
    }

    p = ngx_sprintf(p, ",\"posts\":{");

    for (c = ngx_http_ldseg_post_counters; c->name; c++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA",
                        c == ngx_http_ldseg_post_counters ? "" : ",",
                        c->name, ngx_http_ldseg_stat(st, c));
    }

    /* leases held now: a worker that died holds none once taken over */
    p = ngx_sprintf(p, ",\"in_flight\":%ui}", u->inflight);

    p = ngx_sprintf(p, ",\"subrequests\":{");

    for (c = ngx_http_ldseg_subrequest_counters; c->name; c++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA",
                        c == ngx_http_ldseg_subrequest_counters ? "" : ",",
                        c->name, ngx_http_ldseg_stat(st, c));
    }

    *p++ = '}';

    p = ngx_sprintf(p, ",\"destinations\":[");

    ds = ss->v.dests->elts;

    for (i = 0; i < ss->v.dests->nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_ldseg_dest_json(p, &ds[i]);
    }

    p = ngx_sprintf(p, "],\"retired_destinations\":{\"count\":%ui,",
                    ss->v.nretired);
    p = ngx_http_ldseg_dstats_json(p, &ss->v.retired);
    *p++ = '}';

    ac = &ss->lmcf->alert;
    al = &ss->v.alert;

    if (ac->rate) {
        p = ngx_sprintf(p, ",\"alert\":{\"threshold\":%ui.%04ui,"
                        "\"window_ms\":%M,\"delivery_rate\":",
                        ac->rate / 10000, ac->rate % 10000, ac->window);

        if (al->known) {
            p = ngx_sprintf(p, "%ui.%04ui", al->rate / 10000,
                            al->rate % 10000);

        } else {
            p = ngx_sprintf(p, "null");
        }

        p = ngx_sprintf(p, ",\"low\":%s,\"oldest_age_ms\":%M",
                        al->low ? "true" : "false", al->oldest);

        if (ac->max_age) {
            p = ngx_sprintf(p, ",\"max_age_ms\":%M,\"old\":%s",
                            ac->max_age, al->old ? "true" : "false");
        }

        *p++ = '}';
    }

    p = ngx_sprintf(p, "}\n");

    return p;
}


static u_char *
ngx_http_ldseg_dest_json(u_char *p, ngx_http_ldseg_dest_status_t *ds)
{
    if (ds->kind == NGX_HTTP_LDSEG_SEGMENT) {
        p = ngx_sprintf(p, "{\"kind\":\"segment\",\"client_side_id\":null,"
                        "\"write_key\":\"%V\",\"events_url\":\"%V\",",
                        &ds->id, &ds->base);

    } else {
        p = ngx_sprintf(p, "{\"kind\":\"launchdarkly\",\"client_side_id\":"
                        "\"%V\",\"write_key\":null,\"events_url\":\"%V\",",
                        &ds->id, &ds->base);
    }

    p = ngx_http_ldseg_dstats_json(p, &ds->stats);

    p = ngx_sprintf(p, ",\"queue\":{\"events\":%ui,\"bytes\":%uz,"
                    "\"in_flight\":%ui,\"oldest_age_ms\":",
                    ds->events, ds->bytes, ds->inflight);

    if (ds->has_oldest) {
        p = ngx_sprintf(p, "%M}", ds->oldest_age);

    } else {
        p = ngx_sprintf(p, "null}");
    }

    if (ds->last_time) {
        p = ngx_sprintf(p, ",\"last_status\":%ui,\"last_status_time\":%T",
                        ds->last_status, ds->last_time);

    } else {
        p = ngx_sprintf(p, ",\"last_status\":null,\"last_status_time\":null");
    }

    if (ds->error_time) {
        p = ngx_sprintf(p, ",\"last_error\":\"");
        p = (u_char *) ngx_escape_json(p, ds->error.data, ds->error.len);
        p = ngx_sprintf(p, "\",\"last_error_time\":%T", ds->error_time);

    } else {
        p = ngx_sprintf(p, ",\"last_error\":null,\"last_error_time\":null");
    }

    if (ds->paused_by) {
        p = ngx_sprintf(p, ",\"paused\":\"%s\",\"paused_ms\":%M",
                        ngx_http_ldseg_pauses[ds->paused_by], ds->paused_ms);

    } else {
        p = ngx_sprintf(p, ",\"paused\":null,\"paused_ms\":0");
    }

    p = ngx_sprintf(p, ",\"refused\":%ui}", ds->refused);

    return p;
}


static u_char *
ngx_http_ldseg_dstats_json(u_char *p, ngx_http_ldseg_dstats_t *d)
{
    ngx_http_ldseg_counter_t  *c;

    for (c = ngx_http_ldseg_dest_counters; c->name; c++) {
        p = ngx_sprintf(p, "%s\"%s\":%uL",
                        c == ngx_http_ldseg_dest_counters ? "" : ",",
                        c->name, ngx_http_ldseg_dstat(d, c));
    }

    return p;
}


/*
 * How each destination is named: LaunchDarkly's by the client-side ID of
 * ".../events/bulk/ID" and the events URL before it, Segment's by the
 * label of its write key (a credential) and the export URL before
 * "/v1/batch".
 */

static ngx_int_t
ngx_http_ldseg_dest_names(ngx_pool_t *pool, ngx_http_ldseg_view_t *v)
{
    u_char                        *p, *last;
    ngx_str_t                     *url;
    ngx_uint_t                     i;
    ngx_http_ldseg_dest_status_t  *ds;

    ds = v->dests->elts;

    for (i = 0; i < v->dests->nelts; i++) {
        url = &ds[i].url;
        last = url->data + url->len;

        for (p = last; p > url->data && p[-1] != '/'; p--) { /* void */ }

        if (ds[i].kind == NGX_HTTP_LDSEG_SEGMENT) {
            ds[i].id.data = ngx_pnalloc(pool, NGX_HTTP_LDSEG_KEY_LABEL_LEN);
            if (ds[i].id.data == NULL) {
                return NGX_ERROR;
            }

            ds[i].id.len = ngx_http_ldseg_export_key_label(ds[i].id.data,
                                                    ds[i].cred.data,
                                                    ds[i].cred.len)
                           - ds[i].id.data;

            ds[i].base.data = url->data;
            ds[i].base.len = url->len;

            if (url->len >= sizeof("/v1/batch") - 1) {
                ds[i].base.len -= sizeof("/v1/batch") - 1;
            }

            continue;
        }

        ds[i].id.data = p;
        ds[i].id.len = last - p;

        ds[i].base.data = url->data;
        ds[i].base.len = p - url->data;

        if (ds[i].base.len >= sizeof("/events/bulk/") - 1) {
            ds[i].base.len -= sizeof("/events/bulk/") - 1;
        }
    }

    return NGX_OK;
}


static u_char *
ngx_http_ldseg_status_prometheus(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_uint_t                 i;
    ngx_http_ldseg_usage_t    *u;
    ngx_http_ldseg_stats_t    *st;
    ngx_http_ldseg_counter_t  *c;

    st = ss->st;
    u = &ss->u;

    for (c = ngx_http_ldseg_counters; c->name; c++) {

        if (ngx_strcmp(c->name, "rejected") == 0) {
            p = ngx_sprintf(p, "# HELP ldseg_rejected_total %s\n"
                            "# TYPE ldseg_rejected_total counter\n", c->help);

            for (i = 0; i < LDSEG_REASON_NREJECT; i++) {
                p = ngx_sprintf(p, "ldseg_rejected_total{reason=\"%s\"} %uA\n",
                                ldseg_reason_name(i),
                                st->rejected_reasons[i]);
            }

            continue;
        }

        if (ngx_strcmp(c->name, "skipped") == 0) {
            p = ngx_sprintf(p, "# HELP ldseg_skipped_total %s\n"
                            "# TYPE ldseg_skipped_total counter\n", c->help);

            for (i = LDSEG_REASON_NREJECT; i < LDSEG_REASON_NSKIP; i++) {
                p = ngx_sprintf(p, "ldseg_skipped_total{reason=\"%s\"} %uA\n",
                                ldseg_reason_name(i),
                                st->skipped_reasons[i - LDSEG_REASON_NREJECT]);
            }

            continue;
        }

        if (ngx_strcmp(c->name, "dropped") == 0) {
            p = ngx_sprintf(p, "# HELP ldseg_dropped_total %s\n"
                            "# TYPE ldseg_dropped_total counter\n", c->help);

            for (i = 0; i < NGX_HTTP_LDSEG_NDROPS; i++) {
                p = ngx_sprintf(p, "ldseg_dropped_total{reason=\"%s\"} %uA\n",
                                ngx_http_ldseg_drops[i],
                                st->dropped_reasons[i]);
            }

            continue;
        }

        p = ngx_sprintf(p, "# HELP ldseg_%s_total %s\n"
                        "# TYPE ldseg_%s_total counter\n"
                        "ldseg_%s_total %uA\n",
                        c->name, c->help, c->name, c->name,
                        ngx_http_ldseg_stat(st, c));
    }

    for (c = ngx_http_ldseg_post_counters; c->name; c++) {
        p = ngx_sprintf(p, "# HELP ldseg_posts_%s_total %s\n"
                        "# TYPE ldseg_posts_%s_total counter\n"
                        "ldseg_posts_%s_total %uA\n",
                        c->name, c->help, c->name, c->name,
                        ngx_http_ldseg_stat(st, c));
    }

    for (c = ngx_http_ldseg_subrequest_counters; c->name; c++) {
        p = ngx_sprintf(p, "# HELP ldseg_subrequests_%s_total %s\n"
                        "# TYPE ldseg_subrequests_%s_total counter\n"
                        "ldseg_subrequests_%s_total %uA\n",
                        c->name, c->help, c->name, c->name,
                        ngx_http_ldseg_stat(st, c));
    }

    p = ngx_sprintf(p, "# HELP ldseg_queue_events LaunchDarkly events waiting "
                    "or in flight.\n"
                    "# TYPE ldseg_queue_events gauge\n"
                    "ldseg_queue_events %ui\n"
                    "# HELP ldseg_queue_bytes Bytes of queued events.\n"
                    "# TYPE ldseg_queue_bytes gauge\n"
                    "ldseg_queue_bytes %uz\n"
                    "# HELP ldseg_queue_memory_bytes Zone memory the queued "
                    "events take.\n"
                    "# TYPE ldseg_queue_memory_bytes gauge\n"
                    "ldseg_queue_memory_bytes %uz\n"
                    "# HELP ldseg_queue_size_bytes Size of the ldseg zone.\n"
                    "# TYPE ldseg_queue_size_bytes gauge\n"
                    "ldseg_queue_size_bytes %uz\n"
                    "# HELP ldseg_posts_in_flight POSTs being sent now.\n"
                    "# TYPE ldseg_posts_in_flight gauge\n"
                    "ldseg_posts_in_flight %ui\n"
                    "# HELP ldseg_destinations Destinations (events URL "
                    "and client-side ID) in the queue.\n"
                    "# TYPE ldseg_destinations gauge\n"
                    "ldseg_destinations %ui\n"
                    "# HELP ldseg_spool_events LaunchDarkly events with a "
                    "copy in the spool.\n"
                    "# TYPE ldseg_spool_events gauge\n"
                    "ldseg_spool_events %ui\n"
                    "# HELP ldseg_spool_bytes Size of the spool files.\n"
                    "# TYPE ldseg_spool_bytes gauge\n"
                    "ldseg_spool_bytes %O\n",
                    u->events, u->bytes, u->memory, u->size, u->inflight,
                    u->destinations, u->spool_events, u->spool_bytes);

    p = ngx_sprintf(p, "# HELP ldseg_retired_destinations Destinations "
                    "freed when empty and idle; their counters stay in "
                    "the totals.\n"
                    "# TYPE ldseg_retired_destinations gauge\n"
                    "ldseg_retired_destinations %ui\n", ss->v.nretired);

    if (ss->lmcf->alert.rate) {
        p = ngx_sprintf(p, "# HELP ldseg_alert 1 while an ldseg_alert "
                        "condition holds, by kind.\n"
                        "# TYPE ldseg_alert gauge\n"
                        "ldseg_alert{kind=\"delivery_rate\"} %d\n"
                        "ldseg_alert{kind=\"max_age\"} %d\n"
                        "# HELP ldseg_delivery_rate Share of the events "
                        "tried in the alert window that were delivered.\n"
                        "# TYPE ldseg_delivery_rate gauge\n"
                        "ldseg_delivery_rate %ui.%04ui\n",
                        ss->v.alert.low, ss->v.alert.old,
                        ss->v.alert.known ? ss->v.alert.rate / 10000 : 1,
                        ss->v.alert.known ? ss->v.alert.rate % 10000 : 0);
    }

    if (ss->du != NULL) {
        p = ngx_sprintf(p, "# HELP ldseg_dedupe_entries messageIds remembered "
                        "or reserved in the ldseg_dedupe zone.\n"
                        "# TYPE ldseg_dedupe_entries gauge\n"
                        "ldseg_dedupe_entries %ui\n"
                        "# HELP ldseg_dedupe_size_bytes Size of the "
                        "ldseg_dedupe zone.\n"
                        "# TYPE ldseg_dedupe_size_bytes gauge\n"
                        "ldseg_dedupe_size_bytes %uz\n"
                        "# HELP ldseg_dedupe_evicted_total messageIds "
                        "forgotten before their window ended, to make "
                        "room.\n"
                        "# TYPE ldseg_dedupe_evicted_total counter\n"
                        "ldseg_dedupe_evicted_total %ui\n"
                        "# HELP ldseg_dedupe_unremembered_total Messages "
                        "accepted without being remembered: no room.\n"
                        "# TYPE ldseg_dedupe_unremembered_total counter\n"
                        "ldseg_dedupe_unremembered_total %ui\n",
                        ss->du->entries, ss->du->size, ss->du->evicted,
                        ss->du->unremembered);
    }

    return ngx_http_ldseg_dest_prometheus(p, ss);
}


static u_char *
ngx_http_ldseg_dest_prometheus(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_uint_t                     i, n, k, gauge;
    ngx_http_ldseg_counter_t      *c;
    ngx_http_ldseg_dest_status_t  *ds;

    static const char  *gauges[][2] = {
        { "queue_events", "LaunchDarkly events of the destination waiting "
          "or in flight." },
        { "queue_bytes", "Bytes of the destination's queued events." },
        { "posts_in_flight", "POSTs to the destination being sent now." },
        { "oldest_event_age_seconds", "Age of the destination's oldest "
          "queued event." },
        { "last_status", "HTTP status of the destination's last answer "
          "(0: none, or no answer)." },
        { "last_status_timestamp_seconds", "When the destination last "
          "answered or failed to." },
        { "paused", "1 while POSTs to the destination wait, by reason." },
        { NULL, NULL }
    };

    /* one metric family at a time, a sample per destination */

    ds = ss->v.dests->elts;
    n = ss->v.dests->nelts;

    if (n == 0) {
        return p;
    }

    for (c = ngx_http_ldseg_dest_counters; c->name; c++) {
        p = ngx_sprintf(p, "# HELP ldseg_destination_%s_total %s\n"
                        "# TYPE ldseg_destination_%s_total counter\n",
                        c->name, c->help, c->name);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "ldseg_destination_%s_total{", c->name);
            p = ngx_http_ldseg_dest_labels(p, &ds[i]);
            p = ngx_sprintf(p, "} %uL\n",
                            ngx_http_ldseg_dstat(&ds[i].stats, c));
        }
    }

    for (gauge = 0; gauges[gauge][0]; gauge++) {
        p = ngx_sprintf(p, "# HELP ldseg_destination_%s %s\n"
                        "# TYPE ldseg_destination_%s gauge\n",
                        gauges[gauge][0], gauges[gauge][1], gauges[gauge][0]);

        for (i = 0; i < n; i++) {

            if (gauge == 6) {
                for (k = 1; k < 4; k++) {
                    p = ngx_sprintf(p, "ldseg_destination_paused{");
                    p = ngx_http_ldseg_dest_labels(p, &ds[i]);
                    p = ngx_sprintf(p, ",reason=\"%s\"} %d\n",
                                    ngx_http_ldseg_pauses[k],
                                    ds[i].paused_by == k);
                }

                continue;
            }

            p = ngx_sprintf(p, "ldseg_destination_%s{", gauges[gauge][0]);
            p = ngx_http_ldseg_dest_labels(p, &ds[i]);
            p = ngx_sprintf(p, "} ");

            switch (gauge) {
            case 0:
                p = ngx_sprintf(p, "%ui\n", ds[i].events);
                break;
            case 1:
                p = ngx_sprintf(p, "%uz\n", ds[i].bytes);
                break;
            case 2:
                p = ngx_sprintf(p, "%ui\n", ds[i].inflight);
                break;
            case 3:
                p = ngx_sprintf(p, "%M.%03M\n", ds[i].oldest_age / 1000,
                                ds[i].oldest_age % 1000);
                break;
            case 4:
                p = ngx_sprintf(p, "%ui\n", ds[i].last_status);
                break;
            default:
                p = ngx_sprintf(p, "%T\n", ds[i].last_time);
                break;
            }
        }
    }

    return p;
}


/*
 * A destination's Prometheus labels: kind, then client_side_id
 * (LaunchDarkly) or write_key (Segment, its label), and events_url
 */

static u_char *
ngx_http_ldseg_dest_labels(u_char *p, ngx_http_ldseg_dest_status_t *ds)
{
    if (ds->kind == NGX_HTTP_LDSEG_SEGMENT) {
        return ngx_sprintf(p, "kind=\"segment\",write_key=\"%V\","
                           "events_url=\"%V\"", &ds->id, &ds->base);
    }

    return ngx_sprintf(p, "kind=\"launchdarkly\",client_side_id=\"%V\","
                       "events_url=\"%V\"", &ds->id, &ds->base);
}


static ngx_uint_t
ngx_http_ldseg_wants_html(ngx_http_request_t *r)
{
    ngx_str_t  format;

    /* ?format=html, or a browser's Accept without any ?format= */

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        return format.len == 4 && ngx_strncmp(format.data, "html", 4) == 0;
    }

    return r->headers_in.accept != NULL
           && ngx_strlcasestrn(r->headers_in.accept->value.data,
                               r->headers_in.accept->value.data
                               + r->headers_in.accept->value.len,
                               (u_char *) "text/html", 9 - 1)
              != NULL;
}


static ngx_int_t
ngx_http_ldseg_status_html(ngx_http_request_t *r,
    ngx_http_ldseg_status_t *ss)
{
    u_char                        *body, *p;
    size_t                         len;
    ngx_uint_t                     i, n;
    ngx_http_ldseg_dest_status_t  *ds;

    static ngx_str_t  type = ngx_string("text/html; charset=utf-8");

    /*
     * One page, nothing fetched: numbers in tables (data-k attributes name
     * them as the JSON does), the chart as inline SVG drawn here, and a
     * meta refresh.  Sized generously: fixed parts, the chart's points,
     * and per destination and recent event their escaped texts.
     */

    len = 65536 + 3 * NGX_HTTP_LDSEG_HISTORY * 16;

    ds = ss->v.dests->elts;

    for (i = 0; i < ss->v.dests->nelts; i++) {
        len += 4096 + 4 * ds[i].url.len + 6 * ds[i].error.len;
    }

    if (ss->v.recent != NULL) {
        n = ss->v.recent->n;
        len += n * (6 * NGX_HTTP_LDSEG_RECENT_EVENT + 6 * 64 + 1024);
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_ldseg_html_head(body, ss);
    p = ngx_http_ldseg_html_totals(p, ss);
    p = ngx_http_ldseg_html_chart(p, ss);
    p = ngx_http_ldseg_html_dests(p, ss);
    p = ngx_http_ldseg_html_errors(p, ss);
    p = ngx_http_ldseg_html_recent(p, ss);

    p = ngx_sprintf(p, "</body></html>\n");

    return ngx_http_ldseg_send(r, NGX_HTTP_OK, &type, body, p - body);
}


static u_char *
ngx_http_ldseg_html_head(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_tm_t  tm;

    ngx_gmtime(ss->now, &tm);

    return ngx_sprintf(p,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"5\">"
        "<meta name=\"viewport\" content=\"width=device-width\">"
        "<link rel=\"icon\" href=\"data:,\">"
        "<title>ldseg status</title><style>"
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;"
        "background:#fafafa}"
        "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;"
        "margin:1.4em 0 .4em}"
        "table{border-collapse:collapse;background:#fff}"
        "th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}"
        "th{background:#f0f0f0}td.t,th.t{text-align:left}"
        ".bad{color:#b00020;font-weight:600}.ok{color:#0a7a2f}"
        ".muted{color:#777}svg{background:#fff;border:1px solid #ddd}"
        "code{font-size:12px;word-break:break-all}"
        "</style></head><body>"
        "<h1>ldseg %s</h1><p class=\"muted\">zone \"%V\", "
        "%4d-%02d-%02d %02d:%02d:%02d UTC, refreshed every 5 s; "
        "<a href=\"?format=json\">JSON</a> &middot; "
        "<a href=\"?format=prometheus\">Prometheus</a></p>\n",
        LDSEG_VERSION, &ss->lmcf->shm_zone->shm.name,
        tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
        tm.ngx_tm_min, tm.ngx_tm_sec);
}


static u_char *
ngx_http_ldseg_html_totals(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_http_ldseg_counter_t     *c;
    ngx_http_ldseg_alert_sh_t    *al;
    ngx_http_ldseg_alert_conf_t  *ac;

    p = ngx_sprintf(p, "<h2>Totals</h2><table id=\"totals\"><tr>");

    for (c = ngx_http_ldseg_counters; c->name; c++) {
        p = ngx_sprintf(p, "<th title=\"%s\">%s</th>", c->help, c->name);
    }

    p = ngx_sprintf(p, "</tr><tr>");

    for (c = ngx_http_ldseg_counters; c->name; c++) {
        p = ngx_sprintf(p, "<td data-k=\"%s\"%s>%uA</td>", c->name,
                        (ngx_strcmp(c->name, "dropped") == 0
                         && ngx_http_ldseg_stat(ss->st, c))
                        ? " class=\"bad\"" : "",
                        ngx_http_ldseg_stat(ss->st, c));
    }

    p = ngx_sprintf(p, "</tr></table>\n<p>Queue: <span data-k=\"queue.events\">"
                    "%ui</span> events, <span data-k=\"queue.bytes\">%uz"
                    "</span> bytes of %uz, <span data-k=\"queue.destinations\">"
                    "%ui</span> destinations holding events; POSTs in "
                    "flight: <span data-k=\"posts.in_flight\">%ui</span>; "
                    "spool: %ui events.</p>\n",
                    ss->u.events, ss->u.bytes, ss->u.size,
                    ss->u.destinations, ss->u.inflight, ss->u.spool_events);

    ac = &ss->lmcf->alert;
    al = &ss->v.alert;

    if (ac->rate) {
        p = ngx_sprintf(p, "<p id=\"alert\">Delivery rate over the last "
                        "%M s: ", ac->window / 1000);

        if (al->known) {
            p = ngx_sprintf(p, "<span class=\"%s\">%ui.%02ui%%</span>",
                            al->low ? "bad" : "ok", al->rate / 100,
                            al->rate % 100);

        } else {
            p = ngx_sprintf(p, "<span class=\"muted\">nothing tried</span>");
        }

        p = ngx_sprintf(p, " (alert below %ui.%02ui%%)%s</p>\n",
                        ac->rate / 100, ac->rate % 100,
                        al->old ? "; <span class=\"bad\">queued events "
                                  "older than max_age</span>" : "");
    }

    return p;
}


static u_char *
ngx_http_ldseg_html_chart(u_char *p, ngx_http_ldseg_status_t *ss)
{
    uint32_t                k, sec, from, now, prev;
    uint32_t                sums[3], maxv, v;
    uint32_t               *series[3];
    ngx_uint_t              i, s, found;
    ngx_http_ldseg_tick_t  *h, *t, *pt;

    static const char  *names[3] = { "received", "delivered", "rejected" };
    static const char  *colors[3] = { "#1f6feb", "#0a7a2f", "#b00020" };

    /*
     * Events per second over the last NGX_HTTP_LDSEG_HISTORY seconds from
     * the zone's samples of the cumulative counters: the difference of
     * two samples is spread over the seconds between them.
     */

    p = ngx_sprintf(p, "<h2>Last 15 minutes, per second</h2>");

    h = ss->v.history;

    if (h == NULL) {
        return ngx_sprintf(p, "<p class=\"muted\">No history: the zone is "
                           "smaller than %uz bytes.</p>\n",
                           (size_t) NGX_HTTP_LDSEG_HISTORY_ZONE);
    }

    for (s = 0; s < 3; s++) {
        series[s] = ss->series + s * NGX_HTTP_LDSEG_HISTORY;
        ngx_memzero(series[s], NGX_HTTP_LDSEG_HISTORY * sizeof(uint32_t));
        sums[s] = 0;
    }

    now = (uint32_t) ss->now;
    from = now - (NGX_HTTP_LDSEG_HISTORY - 1);
    pt = NULL;
    prev = 0;
    maxv = 1;

    for (sec = from - 1; sec != now + 1; sec++) {
        t = &h[sec % NGX_HTTP_LDSEG_HISTORY];

        if (t->sec != sec) {
            continue;
        }

        if (pt != NULL) {
            for (s = 0; s < 3; s++) {
                v = (s == 0) ? t->received - pt->received
                    : (s == 1) ? t->delivered - pt->delivered
                    : t->rejected - pt->rejected;

                sums[s] += v;

                for (k = prev + 1; k <= sec; k++) {
                    if (k - from < NGX_HTTP_LDSEG_HISTORY) {
                        series[s][k - from] = v / (sec - prev)
                            + ((k - prev) <= v % (sec - prev) ? 1 : 0);

                        if (series[s][k - from] > maxv) {
                            maxv = series[s][k - from];
                        }
                    }
                }
            }
        }

        pt = t;
        prev = sec;
    }

    found = (pt != NULL);

    p = ngx_sprintf(p, "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
                    "width=\"960\" height=\"240\" viewBox=\"0 0 960 240\" "
                    "role=\"img\" aria-label=\"events per second\">"
                    "<line x1=\"50\" y1=\"210\" x2=\"950\" y2=\"210\" "
                    "stroke=\"#999\"/><line x1=\"50\" y1=\"10\" x2=\"50\" "
                    "y2=\"210\" stroke=\"#999\"/>"
                    "<text x=\"45\" y=\"16\" text-anchor=\"end\" "
                    "font-size=\"11\">%uD/s</text>"
                    "<text x=\"45\" y=\"210\" text-anchor=\"end\" "
                    "font-size=\"11\">0</text>"
                    "<text x=\"50\" y=\"228\" font-size=\"11\">-15 min</text>"
                    "<text x=\"950\" y=\"228\" text-anchor=\"end\" "
                    "font-size=\"11\">now</text>", maxv);

    for (s = 0; found && s < 3; s++) {
        p = ngx_sprintf(p, "<polyline fill=\"none\" stroke=\"%s\" "
                        "stroke-width=\"1.5\" points=\"", colors[s]);

        for (i = 0; i < NGX_HTTP_LDSEG_HISTORY; i++) {
            p = ngx_sprintf(p, "%ui,%uD ", 50 + i,
                            210 - (uint32_t) ((uint64_t) series[s][i] * 200
                                              / maxv));
        }

        p = ngx_sprintf(p, "\"/>");
    }

    p = ngx_sprintf(p, "</svg>\n<p id=\"legend\">");

    for (s = 0; s < 3; s++) {
        p = ngx_sprintf(p, "<span style=\"color:%s\">&#9632; %s</span> "
                        "<span data-k=\"chart.%s\">%uD</span> in 15 min"
                        "%s", colors[s], names[s], names[s], sums[s],
                        s < 2 ? " &middot; " : "");
    }

    return ngx_sprintf(p, "</p>\n");
}


static u_char *
ngx_http_ldseg_html_dests(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_str_t                      id, base;
    ngx_uint_t                     i;
    const char                    *kind;
    ngx_http_ldseg_counter_t      *c;
    ngx_http_ldseg_dest_status_t  *ds;

    ds = ss->v.dests->elts;

    p = ngx_sprintf(p, "<h2>Destinations</h2>");

    if (ss->v.dests->nelts == 0) {
        p = ngx_sprintf(p, "<p class=\"muted\">None yet.</p>");
    }

    p = ngx_sprintf(p, "<table id=\"destinations\"><tr>"
                    "<th class=\"t\">kind</th>"
                    "<th class=\"t\">client-side ID or write key</th>"
                    "<th class=\"t\">events URL</th>");

    for (c = ngx_http_ldseg_dest_counters; c->name; c++) {
        p = ngx_sprintf(p, "<th title=\"%s\">%s</th>", c->help, c->name);
    }

    p = ngx_sprintf(p, "<th>in queue</th><th>oldest</th>"
                    "<th>last status</th><th class=\"t\">state</th></tr>");

    for (i = 0; i < ss->v.dests->nelts; i++) {
        id = ds[i].id;
        base = ds[i].base;
        kind = (ds[i].kind == NGX_HTTP_LDSEG_SEGMENT) ? "segment"
                                                      : "launchdarkly";

        p = ngx_sprintf(p, "<tr data-id=\"%V\" data-kind=\"%s\">"
                        "<td class=\"t\" data-t=\"kind\">%s</td>"
                        "<td class=\"t\">%V</td><td class=\"t\">%V</td>",
                        &id, kind, kind, &id, &base);

        for (c = ngx_http_ldseg_dest_counters; c->name; c++) {
            p = ngx_sprintf(p, "<td data-k=\"%s\">%uL</td>", c->name,
                            ngx_http_ldseg_dstat(&ds[i].stats, c));
        }

        p = ngx_sprintf(p, "<td data-k=\"queue.events\">%ui</td>",
                        ds[i].events);

        if (ds[i].has_oldest) {
            p = ngx_sprintf(p, "<td>%M.%01M s</td>", ds[i].oldest_age / 1000,
                            ds[i].oldest_age % 1000 / 100);

        } else {
            p = ngx_sprintf(p, "<td class=\"muted\">-</td>");
        }

        if (ds[i].last_time) {
            p = ngx_sprintf(p, "<td data-k=\"last_status\" class=\"%s\">"
                            "%ui</td>",
                            (ds[i].last_status >= 200
                             && ds[i].last_status < 300) ? "ok" : "bad",
                            ds[i].last_status);

        } else {
            p = ngx_sprintf(p, "<td class=\"muted\">-</td>");
        }

        if (ds[i].paused_by) {
            p = ngx_sprintf(p, "<td class=\"t bad\">paused: %s, %M s</td>",
                            ngx_http_ldseg_pauses[ds[i].paused_by],
                            (ds[i].paused_ms + 999) / 1000);

        } else {
            p = ngx_sprintf(p, "<td class=\"t ok\">sending</td>");
        }

        p = ngx_sprintf(p, "</tr>");
    }

    return ngx_sprintf(p, "</table>\n");
}


static u_char *
ngx_http_ldseg_html_errors(u_char *p, ngx_http_ldseg_status_t *ss)
{
    ngx_tm_t                       tm;
    ngx_str_t                      id;
    ngx_uint_t                     i, any;
    ngx_http_ldseg_dest_status_t  *ds;

    ds = ss->v.dests->elts;
    any = 0;

    p = ngx_sprintf(p, "<h2>Last errors</h2><table id=\"errors\"><tr>"
                    "<th class=\"t\">time (UTC)</th>"
                    "<th class=\"t\">client-side ID or write key</th>"
                    "<th class=\"t\">error</th></tr>");

    for (i = 0; i < ss->v.dests->nelts; i++) {
        if (ds[i].error_time == 0) {
            continue;
        }

        any = 1;

        id = ds[i].id;
        ngx_gmtime(ds[i].error_time, &tm);

        p = ngx_sprintf(p, "<tr><td class=\"t\">%4d-%02d-%02d %02d:%02d:%02d"
                        "</td><td class=\"t\">%V</td><td class=\"t\">",
                        tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                        tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec, &id);

        p = (u_char *) ngx_escape_html(p, ds[i].error.data, ds[i].error.len);

        p = ngx_sprintf(p, "</td></tr>");
    }

    if (!any) {
        p = ngx_sprintf(p, "<tr><td class=\"t muted\" colspan=\"3\">none"
                        "</td></tr>");
    }

    return ngx_sprintf(p, "</table>\n");
}


static u_char *
ngx_http_ldseg_html_recent(u_char *p, ngx_http_ldseg_status_t *ss)
{
    u_char                   *u;
    ngx_uint_t                i, n;
    ngx_http_ldseg_ring_t    *ring;
    ngx_http_ldseg_recent_t  *e;

    ring = ss->v.recent;

    if (ring == NULL) {
        return p;
    }

    n = (ring->total < ring->n) ? (ngx_uint_t) ring->total : ring->n;

    p = ngx_sprintf(p, "<h2>Recent events</h2><table id=\"recent\"><tr>"
                    "<th class=\"t\">queued (UTC)</th>"
                    "<th class=\"t\">client-side ID</th>"
                    "<th class=\"t\">payload ID</th><th class=\"t\">outcome"
                    "</th><th>status</th><th class=\"t\">event</th></tr>");

    for (i = 0; i < n; i++) {
        e = &ring->e[(ring->total - 1 - i) % ring->n];

        p = ngx_sprintf(p, "<tr><td class=\"t\">");

        /* the JSON string without its quotes */
        u = p;
        p = ngx_http_ldseg_time_ms(p, e->queued);
        ngx_memmove(u, u + 1, p - u - 2);
        p -= 2;
        p = ngx_sprintf(p, "</td><td class=\"t\">%*s</td><td class=\"t\">"
                        "<code>", (size_t) e->id_len, e->client_side_id);

        if (e->has_payload_id) {
            u = p;
            ldseg_uuid_format((char *) p, e->payload_id);
            p = u + LDSEG_UUID_LEN;
        }

        p = ngx_sprintf(p, "</code></td><td class=\"t\">%s</td><td>",
                        ngx_http_ldseg_outcomes[e->outcome]);

        if (e->answered) {
            p = ngx_sprintf(p, "%ud", (unsigned) e->status);
        }

        p = ngx_sprintf(p, "</td><td class=\"t\"><code>");
        p = (u_char *) ngx_escape_html(p, e->event, e->event_len);
        p = ngx_sprintf(p, "%s</code></td></tr>",
                        e->truncated ? "&hellip;" : "");
    }

    return ngx_sprintf(p, "</table>\n");
}


/*
 * "POST <status>/test?client_side_id=ID": one synthetic custom event
 * (key "ldseg-test-event") POSTed to the ID's events URL at once, by this
 * worker's sender with a new payload ID; the answer waits for
 * LaunchDarkly's (bounded by ldseg_timeout): 200 when it took it, 502
 * otherwise, with its status and the payload ID.
 */

static ngx_int_t
ngx_http_ldseg_status_test(ngx_http_request_t *r)
{
    u_char                      *p;
    size_t                       len;
    ngx_str_t                    id, url;
    ngx_time_t                  *tp;
    ngx_pool_cleanup_t          *cln;
    ngx_http_ldseg_test_t       *t;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;
    u_char                       body[sizeof("[{\"kind\":\"custom\",\"key\":"
                                     "\"ldseg-test-event\",\"contextKeys\":"
                                     "{\"user\":\"ldseg-test\"},"
                                     "\"creationDate\":,\"data\":{}}]")
                                     + NGX_INT64_LEN];

    if (!(r->method & NGX_HTTP_POST)) {
        return ngx_http_ldseg_not_allowed(r, "POST",
                                          "the test event is sent with POST");
    }

    if (ngx_http_arg(r, (u_char *) "client_side_id", 14, &id) != NGX_OK
        || ldseg_client_side_id_check((const char *) id.data, id.len)
           != LDSEG_OK)
    {
        return ngx_http_ldseg_error(r, NGX_HTTP_BAD_REQUEST,
                                    LDSEG_REASON_INVALID_CLIENT_SIDE_ID,
                                    "client_side_id= must be a client-side "
                                    "ID (letters, digits, \"-\" and \"_\")");
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    url.len = lcf->events_url.len + sizeof("/events/bulk/") - 1 + id.len;
    url.data = ngx_pnalloc(r->pool, url.len);
    if (url.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(url.data, lcf->events_url.data, lcf->events_url.len);
    p = ngx_cpymem(p, "/events/bulk/", sizeof("/events/bulk/") - 1);
    ngx_memcpy(p, id.data, id.len);

    tp = ngx_timeofday();

    len = ngx_sprintf(body, "[{\"kind\":\"custom\",\"key\":"
                      "\"ldseg-test-event\",\"contextKeys\":{\"user\":"
                      "\"ldseg-test\"},\"creationDate\":%uL,\"data\":{}}]",
                      (uint64_t) tp->sec * 1000 + tp->msec)
          - body;

    t = ngx_pcalloc(r->pool, sizeof(ngx_http_ldseg_test_t));
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->r = r;
    t->id = id;

    t->post = ngx_http_ldseg_sender_test(lmcf->sender, &url, body, len,
                                         ngx_http_ldseg_test_answer, t);
    if (t->post == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_ldseg_test_cleanup;
    cln->data = t;

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_ldseg_test_answer(void *data, long status, ngx_str_t *error,
    u_char *id)
{
    ngx_http_ldseg_test_t *t = data;

    u_char              *body, *p;
    size_t               len;
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = t->r;
    c = r->connection;
    t->post = NULL;

    len = sizeof("{\"status\":,\"payload_id\":\"\",\"client_side_id\":"
                 "\"\",\"error\":\"\"}") + NGX_INT_T_LEN + LDSEG_UUID_LEN
          + t->id.len + 6 * error->len;

    body = ngx_pnalloc(r->pool, len);

    if (body == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else {
        p = ngx_sprintf(body, "{\"status\":%l,\"payload_id\":\"", status);
        ldseg_uuid_format((char *) p, id);
        p += LDSEG_UUID_LEN;
        p = ngx_sprintf(p, "\",\"client_side_id\":\"%V\"", &t->id);

        if (error->len) {
            p = ngx_sprintf(p, ",\"error\":\"");
            p = (u_char *) ngx_escape_json(p, error->data, error->len);
            *p++ = '"';
        }

        *p++ = '}';

        rc = ngx_http_ldseg_send_json(r, (status >= 200 && status < 300)
                                         ? NGX_HTTP_OK : NGX_HTTP_BAD_GATEWAY,
                                      body, p - body);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_ldseg_test_cleanup(void *data)
{
    ngx_http_ldseg_test_t *t = data;

    /* the request ends before the answer came: nobody to tell */

    if (t->post != NULL) {
        ngx_http_ldseg_sender_test_cancel(t->post);
        t->post = NULL;
    }
}


/*
 * The export: totals, then one entry per write key, shown by its label
 * only (a write key is a credential: ngx_http_ldseg_export_key_label());
 * write keys beyond the ones counted on their own share the entry
 * "other".  JSON: closes the object the main counters opened.
 */

static u_char *
ngx_http_ldseg_status_export(u_char *p, ngx_http_ldseg_stats_t *st,
    ngx_http_ldseg_account_t *a, u_char (*keys)[NGX_HTTP_LDSEG_CRED_MAX],
    ngx_uint_t n, ngx_uint_t prometheus)
{
    ngx_uint_t                 i;
    ngx_http_ldseg_counter_t  *c;

    if (!prometheus) {
        p = ngx_sprintf(p, ",\"export\":{");

        for (c = ngx_http_ldseg_export_counters; c->name; c++) {
            p = ngx_sprintf(p, "%s\"%s\":%uA",
                            c == ngx_http_ldseg_export_counters ? "" : ",",
                            c->name, ngx_http_ldseg_stat(st, c));
        }

        p = ngx_sprintf(p, ",\"write_keys\":[");

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "%s{\"write_key\":\"", i ? "," : "");
            p = ngx_http_ldseg_export_key_label(p, keys[i], a[i].key_len);
            *p++ = '"';

            for (c = ngx_http_ldseg_account_counters; c->name; c++) {
                p = ngx_sprintf(p, ",\"%s\":%uA", c->name,
                                ngx_http_ldseg_stat(&a[i], c));
            }

            *p++ = '}';
        }

        return ngx_sprintf(p, "]}}\n");
    }

    for (c = ngx_http_ldseg_export_counters; c->name; c++) {
        p = ngx_sprintf(p, "# HELP ldseg_export_%s_total %s\n"
                        "# TYPE ldseg_export_%s_total counter\n"
                        "ldseg_export_%s_total %uA\n",
                        c->name, c->help, c->name, c->name,
                        ngx_http_ldseg_stat(st, c));
    }

    for (c = ngx_http_ldseg_account_counters; c->name; c++) {
        p = ngx_sprintf(p, "# HELP ldseg_export_write_key_%s_total %s\n"
                        "# TYPE ldseg_export_write_key_%s_total counter\n",
                        c->name, c->help, c->name);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "ldseg_export_write_key_%s_total"
                            "{write_key=\"", c->name);
            p = ngx_http_ldseg_export_key_label(p, keys[i], a[i].key_len);
            p = ngx_sprintf(p, "\"} %uA\n", ngx_http_ldseg_stat(&a[i], c));
        }
    }

    return p;
}

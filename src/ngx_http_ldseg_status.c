
/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_status": the zone's counters as JSON, or in Prometheus text
 * exposition format with "?format=prometheus".  The counters are read
 * without the lock (they are atomics); the queue gauges under it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_dedupe.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_reply.h"


typedef struct {
    const char                   *name;
    const char                   *help;
    size_t                        offset;
} ngx_http_ldseg_counter_t;


static u_char *ngx_http_ldseg_status_json(u_char *p,
    ngx_http_ldseg_stats_t *st, ngx_http_ldseg_usage_t *u,
    ngx_http_ldseg_dedupe_usage_t *du);
static u_char *ngx_http_ldseg_status_prometheus(u_char *p,
    ngx_http_ldseg_stats_t *st, ngx_http_ldseg_usage_t *u,
    ngx_http_ldseg_dedupe_usage_t *du);


#define ngx_http_ldseg_stat(st, c)                                           \
    (*(ngx_atomic_t *) ((u_char *) (st) + (c)->offset))


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


static ngx_http_ldseg_counter_t  ngx_http_ldseg_post_counters[] = {
    { "sent", "POSTs to LaunchDarkly started.",
      offsetof(ngx_http_ldseg_stats_t, posts_sent) },
    { "succeeded", "POSTs LaunchDarkly answered with 2xx.",
      offsetof(ngx_http_ldseg_stats_t, posts_succeeded) },
    { "failed", "POSTs that failed and were given back to the queue.",
      offsetof(ngx_http_ldseg_stats_t, posts_failed) },
    { NULL, NULL, 0 }
};


ngx_int_t
ngx_http_ldseg_status_handler(ngx_http_request_t *r)
{
    u_char                         *body, *last;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_str_t                       format;
    ngx_uint_t                      prometheus;
    ngx_http_ldseg_usage_t          u;
    ngx_http_ldseg_stats_t         *st;
    ngx_http_ldseg_main_conf_t     *lmcf;
    ngx_http_ldseg_dedupe_usage_t   du, *dup;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
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

    ngx_http_ldseg_queue_usage(lmcf->shm_zone, &u);

    dup = NULL;

    if (lmcf->dedupe != NULL) {
        ngx_http_ldseg_dedupe_usage(lmcf->dedupe, &du);
        dup = &du;
    }

    /* a generous fixed bound: every line is short and their count known */

    len = 16384;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (prometheus) {
        last = ngx_http_ldseg_status_prometheus(body, st, &u, dup);

    } else {
        last = ngx_http_ldseg_status_json(body, st, &u, dup);
    }

    if (prometheus) {
        return ngx_http_ldseg_send(r, NGX_HTTP_OK, &ngx_http_ldseg_text,
                                   body, last - body);
    }

    return ngx_http_ldseg_send_json(r, NGX_HTTP_OK, body, last - body);
}


static u_char *
ngx_http_ldseg_status_json(u_char *p, ngx_http_ldseg_stats_t *st,
    ngx_http_ldseg_usage_t *u, ngx_http_ldseg_dedupe_usage_t *du)
{
    ngx_uint_t                 i;
    ngx_http_ldseg_counter_t  *c;

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
                    "\"size\":%uz,\"destinations\":%ui},\"spool\":"
                    "{\"events\":%ui,\"bytes\":%O}", u->events, u->bytes,
                    u->size, u->destinations, u->spool_events,
                    u->spool_bytes);

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
    p = ngx_sprintf(p, ",\"in_flight\":%ui}}\n", u->inflight);

    return p;
}


static u_char *
ngx_http_ldseg_status_prometheus(u_char *p, ngx_http_ldseg_stats_t *st,
    ngx_http_ldseg_usage_t *u, ngx_http_ldseg_dedupe_usage_t *du)
{
    ngx_uint_t                 i;
    ngx_http_ldseg_counter_t  *c;

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

    p = ngx_sprintf(p, "# HELP ldseg_queue_events LaunchDarkly events waiting "
                    "or in flight.\n"
                    "# TYPE ldseg_queue_events gauge\n"
                    "ldseg_queue_events %ui\n"
                    "# HELP ldseg_queue_bytes Bytes of queued events.\n"
                    "# TYPE ldseg_queue_bytes gauge\n"
                    "ldseg_queue_bytes %uz\n"
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
                    u->events, u->bytes, u->size, u->inflight,
                    u->destinations, u->spool_events, u->spool_bytes);

    if (du == NULL) {
        return p;
    }

    p = ngx_sprintf(p, "# HELP ldseg_dedupe_entries messageIds remembered "
                    "or reserved in the ldseg_dedupe zone.\n"
                    "# TYPE ldseg_dedupe_entries gauge\n"
                    "ldseg_dedupe_entries %ui\n"
                    "# HELP ldseg_dedupe_size_bytes Size of the "
                    "ldseg_dedupe zone.\n"
                    "# TYPE ldseg_dedupe_size_bytes gauge\n"
                    "ldseg_dedupe_size_bytes %uz\n"
                    "# HELP ldseg_dedupe_evicted_total messageIds forgotten "
                    "before their window ended, to make room.\n"
                    "# TYPE ldseg_dedupe_evicted_total counter\n"
                    "ldseg_dedupe_evicted_total %ui\n"
                    "# HELP ldseg_dedupe_unremembered_total Messages "
                    "accepted without being remembered: no room.\n"
                    "# TYPE ldseg_dedupe_unremembered_total counter\n"
                    "ldseg_dedupe_unremembered_total %ui\n",
                    du->entries, du->size, du->evicted, du->unremembered);

    return p;
}


/*
 * Copyright (C) ldseg authors
 *
 * The content handler of "ldseg_export on": a LaunchDarkly SDK's event
 * post is read, its events are translated to Segment track messages by
 * the core (ldseg_export.c) and queued for the write key's Segment
 * destination, and then the untouched request always goes on to the
 * "ldseg_pass" location, whose answer (LaunchDarkly's) the SDK gets.  The
 * export never answers the SDK itself: an unusable body, a full queue or
 * a missing write key only cost the export, counted and logged.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_sender.h"
#include "ldseg_export.h"


/* what an SDK posted, told by the path */
typedef enum {
    NGX_HTTP_LDSEG_POST_OTHER = 0,     /* passed on, not read */
    NGX_HTTP_LDSEG_POST_EVENTS,        /* exported */
    NGX_HTTP_LDSEG_POST_DIAGNOSTIC     /* passed on, never exported */
} ngx_http_ldseg_post_e;


static ngx_http_ldseg_post_e ngx_http_ldseg_export_kind(ngx_http_request_t *r,
    ngx_str_t *id);
static void ngx_http_ldseg_export_body_handler(ngx_http_request_t *r);
static void ngx_http_ldseg_export(ngx_http_request_t *r);
static void ngx_http_ldseg_export_large(ngx_http_request_t *r,
    ngx_str_t *key, ldseg_result_t *res, ngx_http_ldseg_stats_t *stats,
    ngx_http_ldseg_account_t *a);
static ngx_int_t ngx_http_ldseg_export_options(ngx_http_request_t *r,
    ldseg_export_options_t *opt);
static ngx_int_t ngx_http_ldseg_export_enqueue(ngx_http_request_t *r,
    ngx_str_t *key, ldseg_result_t *res, ngx_http_ldseg_stats_t *stats,
    ngx_http_ldseg_account_t *a);
static void ngx_http_ldseg_export_log(ngx_http_request_t *r,
    ngx_uint_t level, const char *fmt, ngx_str_t *key, ngx_uint_t n);
static ngx_int_t ngx_http_ldseg_export_pass(ngx_http_request_t *r);


static ngx_str_t  ngx_http_ldseg_payload_id =
    ngx_string("X-LaunchDarkly-Payload-ID");


ngx_int_t
ngx_http_ldseg_export_handler(ngx_http_request_t *r)
{
    ngx_int_t   rc;
    ngx_str_t   id;

    /* anything but an event post goes on as nginx would pass it */

    if (!(r->method & NGX_HTTP_POST)
        || ngx_http_ldseg_export_kind(r, &id) != NGX_HTTP_LDSEG_POST_EVENTS)
    {
        return ngx_http_ldseg_export_pass(r);
    }

    /*
     * The body is read here, as proxy_pass would read it, and stays in
     * r->request_body for the ldseg_pass location to send unchanged.
     */

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                          ngx_http_ldseg_export_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * Event posts: "/bulk" (server-side SDKs), "/events/bulk/<client-side
 * ID>" (client-side), "/mobile", "/mobile/events", "/mobile/events/bulk";
 * diagnostic posts end in "/diagnostic" or "/diagnostic/<ID>".  The path
 * may have any prefix (a location of the user's choice); id is the
 * client-side ID of a client-side post.
 */

static ngx_http_ldseg_post_e
ngx_http_ldseg_export_kind(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char     *p, *last, *seg;
    size_t      len;
    ngx_str_t   path;

    ngx_str_null(id);

    path = r->uri;
    last = path.data + path.len;

    if (last > path.data && last[-1] == '/') {
        last--;
    }

    /* the last segment, and the one before it */

    for (seg = last; seg > path.data && seg[-1] != '/'; seg--) { /* void */ }

    len = last - seg;

    if (len == 10 && ngx_strncmp(seg, "diagnostic", 10) == 0) {
        return NGX_HTTP_LDSEG_POST_DIAGNOSTIC;
    }

    if (len == 4 && ngx_strncmp(seg, "bulk", 4) == 0) {
        return NGX_HTTP_LDSEG_POST_EVENTS;
    }

    if ((len == 6 && ngx_strncmp(seg, "mobile", 6) == 0)
        || (len == 6 && ngx_strncmp(seg, "events", 6) == 0
            && seg - path.data >= 8
            && ngx_strncmp(seg - 8, "/mobile/", 8) == 0))
    {
        return NGX_HTTP_LDSEG_POST_EVENTS;
    }

    /* ".../events/bulk/<ID>" and ".../events/diagnostic/<ID>" */

    if (seg - path.data < 1) {
        return NGX_HTTP_LDSEG_POST_OTHER;
    }

    p = seg - 1;

    if (p - path.data >= 11 && ngx_strncmp(p - 11, "/diagnostic", 11) == 0) {
        return NGX_HTTP_LDSEG_POST_DIAGNOSTIC;
    }

    if (p - path.data >= 12 && ngx_strncmp(p - 12, "/events/bulk", 12) == 0
        && len > 0)
    {
        id->data = seg;
        id->len = len;
        return NGX_HTTP_LDSEG_POST_EVENTS;
    }

    return NGX_HTTP_LDSEG_POST_OTHER;
}


static void
ngx_http_ldseg_export_body_handler(ngx_http_request_t *r)
{
    ngx_http_ldseg_export(r);

    ngx_http_finalize_request(r, ngx_http_ldseg_export_pass(r));
}


/*
 * Everything here is best effort for the export and invisible to the SDK:
 * every way out counts what was lost and goes on to ldseg_pass.
 */

static void
ngx_http_ldseg_export(ngx_http_request_t *r)
{
    u_char                      *data;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_str_t                    key;
    ldseg_rc_t                   lrc;
    ldseg_error_t                err;
    ldseg_result_t               res;
    ldseg_allocator_t            alloc;
    ngx_http_ldseg_stats_t      *stats;
    ldseg_export_options_t       opt;
    ngx_http_ldseg_account_t    *a;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    stats = ngx_http_ldseg_queue_stats(lmcf->shm_zone);
    if (stats == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&stats->export_requests, 1);

    if (ngx_http_complex_value(r, lcf->export_write_key, &key) != NGX_OK) {
        return;
    }

    if (key.len == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "ldseg export: no write key, nothing exported");
        return;
    }

    if (ngx_http_ldseg_export_key_check(&key) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ldseg: \"ldseg_export_write_key\" evaluated to a "
                      "value that cannot be a write key (longer than %d "
                      "bytes, or not printable ASCII without quotes, "
                      "\"\\\" and \":\"), nothing exported",
                      NGX_HTTP_LDSEG_CRED_MAX);
        return;
    }

    a = ngx_http_ldseg_queue_account(lmcf->shm_zone, key.data, key.len);

    rc = ngx_http_ldseg_read_body(r, &data, &len, LDSEG_MAX_BATCH_BYTES * 2,
                                  &err);

    if (rc == NGX_OK) {
        if (ngx_http_ldseg_export_options(r, &opt) != NGX_OK) {
            return;
        }

        alloc.alloc = ngx_http_ldseg_pool_alloc;
        alloc.free = ngx_http_ldseg_pool_free;
        alloc.ctx = r->pool;

        lrc = ldseg_export_process((const char *) data, len, &opt, &alloc,
                                   &res, &err);

        if (lrc == LDSEG_ENOMEM) {
            return;
        }

        rc = (lrc == LDSEG_OK) ? NGX_OK : NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ldseg: SDK event post not exported: %s", err.message);

        (void) ngx_atomic_fetch_add(&stats->export_received, 1);
        (void) ngx_atomic_fetch_add(&stats->export_rejected, 1);

        if (a) {
            (void) ngx_atomic_fetch_add(&a->rejected, 1);
        }

        return;
    }

    if (rc != NGX_OK) {
        return;
    }

    /* messages over Segment's 32 KB: dead-lettered or dropped, below */

    (void) ngx_atomic_fetch_add(&stats->export_received, res.n);
    (void) ngx_atomic_fetch_add(&stats->export_skipped, res.nskipped);
    (void) ngx_atomic_fetch_add(&stats->export_rejected,
                                res.nrejected - res.nlarge);

    if (a) {
        (void) ngx_atomic_fetch_add(&a->skipped, res.nskipped);
        (void) ngx_atomic_fetch_add(&a->rejected, res.nrejected - res.nlarge);
    }

    if (res.nrejected > res.nlarge) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ldseg: %uz events of an SDK post cannot be exported "
                      "(not an object, or without a context key)",
                      res.nrejected - res.nlarge);
    }

    if (res.nlarge) {
        ngx_http_ldseg_export_large(r, &key, &res, stats, a);
    }

    if (res.nevents == 0) {
        return;
    }

    if (ngx_http_ldseg_export_enqueue(r, &key, &res, stats, a) != NGX_OK) {
        (void) ngx_atomic_fetch_add(&stats->export_dropped, res.nevents);

        if (a) {
            (void) ngx_atomic_fetch_add(&a->dropped, res.nevents);
        }

        return;
    }

    (void) ngx_atomic_fetch_add(&stats->exported, res.nevents);

    if (a) {
        (void) ngx_atomic_fetch_add(&a->exported, res.nevents);
    }
}


/*
 * Messages over Segment's 32 KB, which Segment would refuse with the
 * whole batch: never cut, never queued, but written whole to
 * ldseg_dead_letter; without one they are dropped.  Counted and logged
 * either way.
 */

static void
ngx_http_ldseg_export_large(ngx_http_request_t *r, ngx_str_t *key,
    ldseg_result_t *res, ngx_http_ldseg_stats_t *stats,
    ngx_http_ldseg_account_t *a)
{
    ngx_int_t                    rc;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    rc = ngx_http_ldseg_sender_dead_letter(lmcf->sender, key,
                                           (u_char *) res->large,
                                           res->large_len);

    if (rc == NGX_OK) {
        (void) ngx_atomic_fetch_add(&stats->export_dead_lettered,
                                    res->nlarge);

        if (a) {
            (void) ngx_atomic_fetch_add(&a->dead_lettered, res->nlarge);
        }

        ngx_http_ldseg_export_log(r, NGX_LOG_WARN,
                                  "ldseg: %ui exported messages for write "
                                  "key \"%V...\" are larger than Segment's "
                                  "32 KB, they go to \"ldseg_dead_letter\"",
                                  key, res->nlarge);
        return;
    }

    (void) ngx_atomic_fetch_add(&stats->export_dropped, res->nlarge);

    if (a) {
        (void) ngx_atomic_fetch_add(&a->dropped, res->nlarge);
    }

    ngx_http_ldseg_export_log(r, NGX_LOG_WARN,
                              (rc == NGX_DECLINED)
                              ? "ldseg: %ui exported messages for write key "
                                "\"%V...\" are larger than Segment's 32 KB "
                                "and dropped: no \"ldseg_dead_letter\""
                              : "ldseg: %ui exported messages for write key "
                                "\"%V...\" are larger than Segment's 32 KB "
                                "and dropped: the dead letter failed",
                              key, res->nlarge);
}


static ngx_int_t
ngx_http_ldseg_export_options(ngx_http_request_t *r,
    ldseg_export_options_t *opt)
{
    ngx_str_t                   id, env;
    ngx_uint_t                  i, k;
    ngx_keyval_t               *kv;
    ngx_table_elt_t            *h;
    ngx_list_part_t            *part;
    ngx_http_ldseg_loc_conf_t  *lcf;

    static const char  *kinds[] = { "feature", "click", "pageview", "custom" };

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    ldseg_export_options_init(opt);

    /* the environment: configured, else the client-side ID of the path */

    (void) ngx_http_ldseg_export_kind(r, &id);

    if (lcf->export_environment != NULL) {
        if (ngx_http_complex_value(r, lcf->export_environment, &env)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        env = id;
    }

    opt->environment.p = (const char *) env.data;
    opt->environment.len = env.len;
    opt->project.p = (const char *) lcf->export_project.data;
    opt->project.len = lcf->export_project.len;

    if (lcf->export_labels != NULL) {
        kv = lcf->export_labels->elts;

        for (i = 0; i < lcf->export_labels->nelts; i++) {
            for (k = 0; k < LDSEG_EXPORT_NKINDS; k++) {
                if (ngx_strcmp(kv[i].key.data, kinds[k]) == 0) {
                    opt->label[k].p = (const char *) kv[i].value.data;
                    opt->label[k].len = kv[i].value.len;
                }
            }
        }
    }

    /* the SDK's payload ID: the core checks it before using it */

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == ngx_http_ldseg_payload_id.len
            && ngx_strncasecmp(h[i].key.data, ngx_http_ldseg_payload_id.data,
                               ngx_http_ldseg_payload_id.len) == 0)
        {
            opt->payload_id.p = (const char *) h[i].value.data;
            opt->payload_id.len = h[i].value.len;
            break;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ldseg_export_enqueue(ngx_http_request_t *r, ngx_str_t *key,
    ldseg_result_t *res, ngx_http_ldseg_stats_t *stats,
    ngx_http_ldseg_account_t *a)
{
    ngx_uint_t                   full;
    ngx_http_ldseg_target_t      target;
    ngx_http_ldseg_enqueue_e     erc;
    ngx_http_ldseg_queue_conf_t  qc;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    /* within Segment's limits: 2500 messages and 500 KB a batch */

    qc.batch_size = ngx_min(lmcf->batch_size, LDSEG_MAX_BATCH_MESSAGES);
    qc.max_payload = ngx_min(lmcf->max_payload,
                             LDSEG_MAX_BATCH_BYTES - sizeof("{\"batch\":}"));
    qc.limit = lmcf->queue_limit;
    qc.max_destinations = lmcf->max_destinations;

    target.kind = NGX_HTTP_LDSEG_SEGMENT;
    target.url = lcf->export_url;
    target.cred = *key;

    erc = ngx_http_ldseg_queue_enqueue(lmcf->shm_zone, &target, res, &qc,
                                       &full);

    if (erc == NGX_HTTP_LDSEG_ENQ_OK) {
        ngx_http_ldseg_sender_queued(lmcf->sender, full);
        return NGX_OK;
    }

    if (erc == NGX_HTTP_LDSEG_ENQ_FULL) {
        ngx_http_ldseg_sender_full(lmcf->sender);
    }

    /*
     * The SDK's request goes on all the same: it cannot be asked to send
     * these events again to us alone.  One line a second per worker.
     */

    switch (erc) {

    case NGX_HTTP_LDSEG_ENQ_DESTINATIONS:
        ngx_http_ldseg_export_log(r, NGX_LOG_WARN,
                                  "ldseg: \"ldseg_max_destinations\" "
                                  "reached, %ui exported events for write "
                                  "key \"%V...\" dropped", key, res->nevents);
        break;

    case NGX_HTTP_LDSEG_ENQ_REFUSED:
        ngx_http_ldseg_export_log(r, NGX_LOG_WARN,
                                  "ldseg: Segment refuses write keys whose "
                                  "events fill their share of the zone, %ui "
                                  "exported events for write key "
                                  "\"%V...\" dropped", key, res->nevents);
        break;

    default:
        ngx_http_ldseg_export_log(r, NGX_LOG_WARN,
                                  "ldseg: the queue is full, %ui exported "
                                  "events for write key \"%V...\" dropped",
                                  key, res->nevents);
        break;
    }

    return NGX_ERROR;
}


ngx_int_t
ngx_http_ldseg_export_key_check(ngx_str_t *key)
{
    u_char  *p, *last;

    if (key->len == 0 || key->len > NGX_HTTP_LDSEG_CRED_MAX) {
        return NGX_ERROR;
    }

    last = key->data + key->len;

    for (p = key->data; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\'
            || *p == ':')
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


u_char *
ngx_http_ldseg_export_key_label(u_char *p, u_char *key, size_t len)
{
    if (len == 0) {
        return ngx_cpymem(p, "other", 5);
    }

    return ngx_sprintf(p, "%*s...%08xD",
                       ngx_min(len, NGX_HTTP_LDSEG_KEY_PREFIX), key,
                       ngx_crc32_long(key, len));
}


static void
ngx_http_ldseg_export_log(ngx_http_request_t *r, ngx_uint_t level,
    const char *fmt, ngx_str_t *key, ngx_uint_t n)
{
    ngx_str_t                    prefix;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    if ((ngx_msec_int_t) (ngx_current_msec - lmcf->export_logged) < 1000) {
        return;
    }

    lmcf->export_logged = ngx_current_msec;

    /* a write key is a credential: its first characters only */

    prefix.data = key->data;
    prefix.len = ngx_min(key->len, NGX_HTTP_LDSEG_KEY_PREFIX);

    ngx_log_error(level, r->connection->log, 0, fmt, n, &prefix);
}


static ngx_int_t
ngx_http_ldseg_export_pass(ngx_http_request_t *r)
{
    ngx_http_ldseg_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    (void) ngx_http_named_location(r, &lcf->pass);

    return NGX_DONE;
}

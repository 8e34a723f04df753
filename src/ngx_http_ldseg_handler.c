
/*
 * Copyright (C) ldseg authors
 *
 * The content handler of "ldseg on": reads the Segment request body (from
 * memory or from its temporary file, inflating gzip), hands it to the core
 * for validation and translation, queues the events in one lock round and
 * answers the client as Segment's API does, or passes the untouched
 * request on to the "ldseg_pass" location.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <zlib.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_crash.h"
#include "ngx_http_ldseg_dedupe.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_reply.h"
#include "ngx_http_ldseg_sender.h"
#include "ngx_http_ldseg_deliver.h"


/* a request waiting for its "ldseg_deliver" subrequests */
typedef struct {
    ngx_http_ldseg_stats_t       *stats;
    ldseg_result_t                res;
    ngx_http_ldseg_dedupe_t       dd;
    ngx_http_ldseg_target_t       target;
    ngx_shm_zone_t               *zone;
    ngx_uint_t                    max_destinations;
} ngx_http_ldseg_waiting_t;


static ngx_int_t ngx_http_ldseg_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_ldseg_read_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ldseg_too_large(ngx_http_request_t *r);
static void ngx_http_ldseg_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ldseg_process(ngx_http_request_t *r);
static ngx_int_t ngx_http_ldseg_read(ngx_http_request_t *r,
    ngx_http_ldseg_ctx_t *ctx, ngx_str_t *body, ldseg_error_t *err);
static ngx_int_t ngx_http_ldseg_inflate(ngx_http_request_t *r, u_char *in,
    size_t len, u_char **out, size_t *outlen, size_t limit,
    ldseg_error_t *err);
static ngx_str_t *ngx_http_ldseg_content_encoding(ngx_http_request_t *r);
static ngx_int_t ngx_http_ldseg_translate(ngx_http_request_t *r,
    ngx_http_ldseg_ctx_t *ctx, ngx_str_t *body, ldseg_result_t *res,
    ldseg_error_t *err);
static ngx_int_t ngx_http_ldseg_destination(ngx_http_request_t *r,
    ldseg_result_t *res, ngx_str_t *url, ldseg_error_t *err);
static ngx_int_t ngx_http_ldseg_duplicates(ngx_http_request_t *r,
    ngx_http_ldseg_stats_t *stats, ldseg_result_t *res,
    ngx_http_ldseg_dedupe_t *dd, ldseg_error_t *err);
static ngx_int_t ngx_http_ldseg_enqueue(ngx_http_request_t *r,
    ngx_http_ldseg_stats_t *stats, ngx_str_t *url, ldseg_result_t *res,
    ldseg_error_t *err);
static ngx_int_t ngx_http_ldseg_deliver_start(ngx_http_request_t *r,
    ngx_http_ldseg_stats_t *stats, ngx_str_t *url, ldseg_result_t *res,
    ngx_http_ldseg_dedupe_t *dd);
static void ngx_http_ldseg_delivered(ngx_http_request_t *r, void *data,
    ngx_http_ldseg_deliver_result_t *dr);
static void ngx_http_ldseg_deliver_ended(void *data,
    ngx_http_ldseg_deliver_result_t *dr);
static void ngx_http_ldseg_count_subrequests(ngx_http_ldseg_waiting_t *w,
    ngx_http_ldseg_deliver_result_t *dr);
static void ngx_http_ldseg_refuse(ngx_http_request_t *r,
    ngx_http_ldseg_stats_t *stats, ldseg_result_t *res,
    ngx_http_ldseg_enqueue_e erc, ldseg_error_t *err);
static ngx_int_t ngx_http_ldseg_reply(ngx_http_request_t *r,
    ldseg_result_t *res);
static void ngx_http_ldseg_count(ngx_http_ldseg_stats_t *stats,
    ldseg_result_t *res);
static void ngx_http_ldseg_count_refused(ngx_http_ldseg_stats_t *stats,
    ldseg_reason_e reason);
static void ngx_http_ldseg_count_all_refused(ngx_http_ldseg_stats_t *stats,
    ldseg_result_t *res, ldseg_reason_e reason);
static void ngx_http_ldseg_log_invalid(ngx_http_request_t *r,
    ngx_http_ldseg_ctx_t *ctx, const char *what, ldseg_error_t *err);


static ngx_http_request_body_filter_pt  ngx_http_ldseg_next_body_filter;


ngx_int_t
ngx_http_ldseg_handler(ngx_http_request_t *r)
{
    u_char                      *p, *last;
    size_t                       limit;
    ngx_int_t                    rc;
    ldseg_endpoint_e             ep;
    ngx_http_ldseg_ctx_t        *ctx;
    ngx_http_ldseg_stats_t      *stats;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    if (!(r->method & NGX_HTTP_POST)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (r->method == NGX_HTTP_OPTIONS && lcf->cors) {
            return ngx_http_ldseg_preflight(r, lcf->cors);
        }

        return ngx_http_ldseg_not_allowed(r, lcf->cors ? "POST, OPTIONS"
                                                       : "POST",
                                          "the Tracking API accepts POST "
                                          "only");
    }

    /* the last path segment names the endpoint: /v1/track, /v1/t, ... */

    last = r->uri.data + r->uri.len;

    if (last > r->uri.data && last[-1] == '/') {
        last--;
    }

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) {
        /* void */
    }

    ep = ldseg_endpoint((const char *) p, last - p);

    if (ep == LDSEG_EP_UNKNOWN) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ldseg_error(r, NGX_HTTP_NOT_FOUND,
                                    LDSEG_REASON_UNKNOWN_ENDPOINT,
                                    "unknown Tracking API endpoint");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ldseg_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->endpoint = ep;
    ctx->max_body_size = lcf->max_body_size;
    ngx_http_set_ctx(r, ctx, ngx_http_ldseg_module);

    if (ctx->max_body_size
        && r->headers_in.content_length_n > ctx->max_body_size)
    {
        /* no "100 Continue" for a body that is refused */
        r->expect_tested = 1;

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ldseg_too_large(r);
    }

    limit = (ep == LDSEG_EP_BATCH) ? LDSEG_MAX_BATCH_BYTES
                                   : LDSEG_MAX_MESSAGE;

    if (r->headers_in.content_length_n > (off_t) limit
        && ngx_http_ldseg_content_encoding(r) == NULL)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);
        stats = ngx_http_ldseg_queue_stats(lmcf->shm_zone);

        if (stats) {
            (void) ngx_atomic_fetch_add(&stats->requests, 1);
        }

        ngx_http_ldseg_count_refused(stats, LDSEG_REASON_TOO_LARGE);

        return ngx_http_ldseg_error(r, NGX_HTTP_BAD_REQUEST,
                                    LDSEG_REASON_TOO_LARGE,
                                    "the request body exceeds Segment's "
                                    "size limit");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_ldseg_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_ldseg_too_large(r);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    if (rc == NGX_AGAIN
#if (NGX_HTTP_V2)
        && r->stream == NULL
#endif
       )
    {
        /* the rest of the body comes later: a limit may be found then */
        r->read_event_handler = ngx_http_ldseg_read_body_handler;
    }

    return NGX_DONE;
}


ngx_int_t
ngx_http_ldseg_body_filter_init(ngx_conf_t *cf)
{
    ngx_http_ldseg_next_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_ldseg_body_filter;

    return NGX_OK;
}


/*
 * A body without Content-Length (chunked) is measured as it is read: over
 * the location's client_max_body_size it is refused with 413, which the
 * handler and ngx_http_ldseg_read_body_handler() answer with JSON.
 */

static ngx_int_t
ngx_http_ldseg_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t           *cl;
    ngx_http_ldseg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ldseg_module);

    if (ctx == NULL || ctx->max_body_size == 0) {
        return ngx_http_ldseg_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        ctx->body_size += ngx_buf_size(cl->buf);
    }

    if (ctx->body_size > ctx->max_body_size) {
        r->lingering_close = 1;
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    return ngx_http_ldseg_next_body_filter(r, in);
}


/*
 * nginx's own handler of a body being read, but for the answer when the
 * body turns out too large: ngx_http_read_unbuffered_request_body() reads
 * on (and calls the post handler at the end) exactly as nginx's static
 * handler does, and leaves the finalizing to its caller.
 */

static void
ngx_http_ldseg_read_body_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_read_unbuffered_request_body(r);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_http_finalize_request(r, ngx_http_ldseg_too_large(r));
        return;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* a body over client_max_body_size: counted as one too_large message */

static ngx_int_t
ngx_http_ldseg_too_large(ngx_http_request_t *r)
{
    ngx_http_ldseg_ctx_t        *ctx;
    ngx_http_ldseg_stats_t      *stats;
    ngx_http_ldseg_main_conf_t  *lmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ldseg_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    stats = ngx_http_ldseg_queue_stats(lmcf->shm_zone);

    if (stats) {
        (void) ngx_atomic_fetch_add(&stats->requests, 1);
    }

    ngx_http_ldseg_count_refused(stats, LDSEG_REASON_TOO_LARGE);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ldseg: \"%s\" request body is larger than "
                  "client_max_body_size %O",
                  ldseg_endpoint_name(ctx->endpoint), ctx->max_body_size);

    /* the rest of the body is not read: the connection is not kept */
    r->keepalive = 0;

    return ngx_http_ldseg_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                LDSEG_REASON_TOO_LARGE,
                                "the request body is larger than the server "
                                "accepts");
}


static void
ngx_http_ldseg_body_handler(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_ldseg_process(r));
}


/*
 * The request path: read the body, have the core process it, find the
 * destination, queue the events, answer.  Each step answers nothing
 * itself: it returns NGX_OK to go on, NGX_DECLINED with err set for an
 * answer to the client, or NGX_ERROR.
 */

static ngx_int_t
ngx_http_ldseg_process(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    body, url;
    ldseg_error_t                err;
    ldseg_result_t               res;
    ngx_http_ldseg_dedupe_t      dd;
    ngx_http_ldseg_ctx_t        *ctx;
    ngx_http_ldseg_stats_t      *stats;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ldseg_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    stats = ngx_http_ldseg_queue_stats(lmcf->shm_zone);

    if (stats == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_atomic_fetch_add(&stats->requests, 1);

    rc = ngx_http_ldseg_read(r, ctx, &body, &err);

    if (rc == NGX_OK) {
        rc = ngx_http_ldseg_translate(r, ctx, &body, &res, &err);
    }

    if (rc == NGX_DECLINED) {
        ngx_http_ldseg_count_refused(stats, err.reason);

        return ngx_http_ldseg_error(r, NGX_HTTP_BAD_REQUEST, err.reason,
                                    err.message);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_ldseg_destination(r, &res, &url, &err);

    if (rc != NGX_OK) {
        ngx_http_ldseg_count_all_refused(stats, &res, err.reason);

        return ngx_http_ldseg_error(r, rc, err.reason, err.message);
    }

    rc = ngx_http_ldseg_duplicates(r, stats, &res, &dd, &err);

    if (rc == NGX_DECLINED) {
        return ngx_http_ldseg_unavailable(r, lcf->retry_after, err.reason,
                                          err.message);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (lcf->deliver.len && res.nevents) {
        return ngx_http_ldseg_deliver_start(r, stats, &url, &res, &dd);
    }

    if (ngx_http_ldseg_enqueue(r, stats, &url, &res, &err) != NGX_OK) {
        /* not accepted: a retry must get through */
        ngx_http_ldseg_dedupe_release(&dd);

        return ngx_http_ldseg_unavailable(r, lcf->retry_after, err.reason,
                                          err.message);
    }

    ngx_http_ldseg_dedupe_commit(&dd);

    ngx_http_ldseg_count(stats, &res);

    ngx_http_ldseg_set_events(r, res.nld);

    return ngx_http_ldseg_reply(r, &res);
}


static ngx_int_t
ngx_http_ldseg_read(ngx_http_request_t *r, ngx_http_ldseg_ctx_t *ctx,
    ngx_str_t *body, ldseg_error_t *err)
{
    size_t     limit;
    ngx_int_t  rc;

    limit = (ctx->endpoint == LDSEG_EP_BATCH) ? LDSEG_MAX_BATCH_BYTES
                                              : LDSEG_MAX_MESSAGE;

    rc = ngx_http_ldseg_read_body(r, &body->data, &body->len, limit, err);

    if (rc == NGX_DECLINED) {
        ngx_http_ldseg_log_invalid(r, ctx, "request", err);
    }

    return rc;
}


ngx_int_t
ngx_http_ldseg_read_body(ngx_http_request_t *r, u_char **data, size_t *len,
    size_t limit, ldseg_error_t *err)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *data = (u_char *) "";
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        goto decode;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        /* the common case: one buffer in memory, used in place */
        *data = cl->buf->pos;
        *len = cl->buf->last - cl->buf->pos;
        goto decode;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        size += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    if (size > (off_t) LDSEG_MAX_BATCH_BYTES * 4) {
        err->reason = LDSEG_REASON_TOO_LARGE;
        err->message = "the request body exceeds Segment's size limit";
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, (size_t) size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;

    /* a body that did not fit client_body_buffer_size is in a file */

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "ldseg: cannot read the request body from \"%V\"",
                              &b->file->name);
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *len = p - *data;

decode:

    if (ngx_http_ldseg_content_encoding(r)) {
        return ngx_http_ldseg_inflate(r, *data, *len, data, len, limit, err);
    }

    return NGX_OK;
}


static ngx_str_t *
ngx_http_ldseg_content_encoding(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Content-Encoding") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Encoding",
                               sizeof("Content-Encoding") - 1) == 0)
        {
            return &h[i].value;
        }
    }
}


static ngx_int_t
ngx_http_ldseg_inflate(ngx_http_request_t *r, u_char *in, size_t len,
    u_char **out, size_t *outlen, size_t limit, ldseg_error_t *err)
{
    int         rc;
    size_t      ratio;
    u_char     *buf;
    z_stream    z;
    ngx_str_t  *enc;

    enc = ngx_http_ldseg_content_encoding(r);

    if (enc->len == 8 && ngx_strncasecmp(enc->data, (u_char *) "identity", 8)
                         == 0)
    {
        return NGX_OK;
    }

    if (!(enc->len == 4 && ngx_strncasecmp(enc->data, (u_char *) "gzip", 4)
                           == 0))
    {
        err->reason = LDSEG_REASON_INVALID_ENCODING;
        err->message = "only gzip is accepted as Content-Encoding";
        return NGX_DECLINED;
    }

    /*
     * A body may expand to Segment's limit, and to at most
     * NGX_HTTP_LDSEG_GZIP_RATIO times its own size (plus a little for
     * small ones): a few hundred bytes of gzip never cost a worker the
     * parsing of half a megabyte.  One byte more than the bound tells a
     * body that is too large.
     */

    ratio = len * NGX_HTTP_LDSEG_GZIP_RATIO + NGX_HTTP_LDSEG_GZIP_SLACK;

    if (ratio < limit) {
        limit = ratio;

    } else {
        ratio = 0;
    }

    buf = ngx_pnalloc(r->pool, limit + 1);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&z, sizeof(z_stream));

    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        return NGX_ERROR;
    }

    z.next_in = in;
    z.avail_in = len;
    z.next_out = buf;
    z.avail_out = limit + 1;

    rc = inflate(&z, Z_FINISH);

    *out = buf;
    *outlen = limit + 1 - z.avail_out;

    inflateEnd(&z);

    if (rc == Z_STREAM_END) {
        return NGX_OK;
    }

    if (z.avail_out == 0) {
        err->reason = LDSEG_REASON_TOO_LARGE;
        err->message = ratio ? "the gzip request body expands too much"
                             : "the request body exceeds Segment's size limit";

    } else {
        err->reason = LDSEG_REASON_INVALID_JSON;
        err->message = "the gzip request body is corrupt";
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_ldseg_translate(ngx_http_request_t *r, ngx_http_ldseg_ctx_t *ctx,
    ngx_str_t *body, ldseg_result_t *res, ldseg_error_t *err)
{
    ngx_uint_t                   i;
    ldseg_rc_t                   lrc;
    ngx_time_t                  *tp;
    ldseg_options_t              opt;
    ldseg_allocator_t            alloc;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    ldseg_options_init(&opt);
    opt.format = (ldseg_format_e) lcf->format;
    opt.clock_skew = lcf->clock_skew;
    opt.message_ids = (lmcf->dedupe != NULL);
    opt.mappings = lcf->mappings;
    tp = ngx_timeofday();
    opt.now_ms = (int64_t) tp->sec * 1000 + tp->msec;

    alloc.alloc = ngx_http_ldseg_pool_alloc;
    alloc.free = ngx_http_ldseg_pool_free;
    alloc.ctx = r->pool;

    lrc = ldseg_process((const char *) body->data, body->len, ctx->endpoint,
                        &opt, &alloc, res, err);

    if (lrc == LDSEG_ENOMEM) {
        return NGX_ERROR;
    }

    if (lrc != LDSEG_OK) {
        ngx_http_ldseg_log_invalid(r, ctx, "request", err);
        return NGX_DECLINED;
    }

    if (res->write_key) {
        ctx->write_key.data = (u_char *) res->write_key;
        ctx->write_key.len = res->write_key_len;
        ctx->write_key_set = 1;
    }

    /* with mappings, a subscription may refuse what another one took */

    for (i = 0; i < res->n && lcf->mappings != NULL; i++) {
        if (res->msgs[i].status == LDSEG_MSG_EVENT
            && res->msgs[i].err.message != NULL)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "ldseg: message %ui: a subscription refused it, "
                          "the other subscriptions' events are queued: %s",
                          i, res->msgs[i].err.message);
        }
    }

    if (res->nrejected == 0) {
        return NGX_OK;
    }

    /* a single message that is rejected makes the request a 400 */

    if (ctx->endpoint != LDSEG_EP_BATCH) {
        *err = res->msgs[0].err;
        ngx_http_ldseg_log_invalid(r, ctx, "message", err);
        return NGX_DECLINED;
    }

    for (i = 0; i < res->n; i++) {
        if (res->msgs[i].status == LDSEG_MSG_REJECTED) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "ldseg: invalid message %ui in batch: %s",
                          i, res->msgs[i].err.message);
        }
    }

    return NGX_OK;
}


/*
 * The events URL of the request's client-side ID, found for every valid
 * request, whether it has events to send or not: a write key without a
 * client-side ID is answered 401 alike.  NGX_OK, or the status of the
 * answer with err set.
 */

static ngx_int_t
ngx_http_ldseg_destination(ngx_http_request_t *r, ldseg_result_t *res,
    ngx_str_t *url, ldseg_error_t *err)
{
    u_char                     *p;
    ngx_str_t                   id;
    ngx_http_ldseg_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    if (ngx_http_complex_value(r, lcf->client_side_id, &id) != NGX_OK) {
        err->reason = LDSEG_REASON_INTERNAL_ERROR;
        err->message = "internal error";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (id.len == 0) {
        err->reason = LDSEG_REASON_UNKNOWN_WRITE_KEY;
        err->message = "no LaunchDarkly client-side ID is configured for "
                       "this write key";
        return NGX_HTTP_UNAUTHORIZED;
    }

    /*
     * It goes into a URL: a plain token of bounded length only (a literal
     * was checked at nginx -t)
     */

    if (lcf->client_side_id->lengths != NULL
        && ldseg_client_side_id_check((const char *) id.data, id.len)
           != LDSEG_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ldseg: \"ldseg_client_side_id\" evaluated to a "
                      "value that is not a plain token of at most %d "
                      "characters", LDSEG_CLIENT_SIDE_ID_MAX);

        err->reason = LDSEG_REASON_INVALID_CLIENT_SIDE_ID;
        err->message = "the configured LaunchDarkly client-side ID is "
                       "invalid";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    url->len = lcf->events_url.len + sizeof("/events/bulk/") - 1 + id.len;
    url->data = ngx_pnalloc(r->pool, url->len);
    if (url->data == NULL) {
        err->reason = LDSEG_REASON_INTERNAL_ERROR;
        err->message = "internal error";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(url->data, lcf->events_url.data, lcf->events_url.len);
    p = ngx_cpymem(p, "/events/bulk/", sizeof("/events/bulk/") - 1);
    ngx_memcpy(p, id.data, id.len);

    ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_ID, p, id.len);

    return NGX_OK;
}


/*
 * With ldseg_dedupe: the messages whose messageId (with the request's
 * write key, as $ldseg_write_key has it) was accepted before are marked
 * duplicates in res, before anything is queued; the others are reserved
 * in dd until the request commits or releases them.  NGX_OK; NGX_DECLINED
 * with err set (and the refusal counted) when another request is
 * accepting one of them right now; NGX_ERROR.
 */

static ngx_int_t
ngx_http_ldseg_duplicates(ngx_http_request_t *r,
    ngx_http_ldseg_stats_t *stats, ldseg_result_t *res,
    ngx_http_ldseg_dedupe_t *dd, ldseg_error_t *err)
{
    ngx_int_t                    rc;
    ngx_str_t                    wk;
    ngx_http_variable_value_t    vv;
    ngx_http_ldseg_main_conf_t  *lmcf;

    dd->nreserved = 0;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    if (lmcf->dedupe == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&vv, sizeof(ngx_http_variable_value_t));

    if (ngx_http_ldseg_write_key_variable(r, &vv, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_null(&wk);

    if (!vv.not_found) {
        wk.data = vv.data;
        wk.len = vv.len;
    }

    rc = ngx_http_ldseg_dedupe_reserve(lmcf->dedupe, &wk, res, r->pool, dd);

    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ldseg: a messageId of the request is being accepted "
                      "by another request, %ui messages refused with 503",
                      res->nevents + res->nskipped + res->nduplicates);

        err->reason = LDSEG_REASON_MESSAGE_IN_PROGRESS;
        err->message = "a message with the same messageId is being "
                       "accepted by another request, retry later";

        ngx_http_ldseg_count_all_refused(stats, res, err->reason);

        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    /* a worker killed here leaves reservations nobody finishes */
    ngx_http_ldseg_crash("dedupe_reserved");

    return NGX_OK;
}


/*
 * Queues the events in one lock round.  NGX_OK, or NGX_DECLINED with err
 * set: nothing was queued, the client is to retry.
 */

static ngx_int_t
ngx_http_ldseg_enqueue(ngx_http_request_t *r, ngx_http_ldseg_stats_t *stats,
    ngx_str_t *url, ldseg_result_t *res, ldseg_error_t *err)
{
    ngx_uint_t                   full;
    ngx_http_ldseg_target_t      target;
    ngx_http_ldseg_enqueue_e     erc;
    ngx_http_ldseg_queue_conf_t  qc;
    ngx_http_ldseg_main_conf_t  *lmcf;

    if (res->nevents == 0) {
        return NGX_OK;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    qc.batch_size = lmcf->batch_size;
    qc.max_payload = lmcf->max_payload;
    qc.limit = lmcf->queue_limit;
    qc.max_destinations = lmcf->max_destinations;

    target.kind = NGX_HTTP_LDSEG_LAUNCHDARKLY;
    target.url = *url;
    ngx_str_null(&target.cred);

    erc = ngx_http_ldseg_queue_enqueue(lmcf->shm_zone, &target, res, &qc,
                                       &full);

    if (erc == NGX_HTTP_LDSEG_ENQ_FULL) {
        ngx_http_ldseg_sender_full(lmcf->sender);
    }

    if (erc != NGX_HTTP_LDSEG_ENQ_OK) {
        ngx_http_ldseg_refuse(r, stats, res, erc, err);
        return NGX_DECLINED;
    }

    ngx_http_ldseg_sender_queued(lmcf->sender, full);

    (void) ngx_atomic_fetch_add(&stats->queued, res->nld);

    return NGX_OK;
}


/*
 * "ldseg_deliver uri": the events go out through subrequests now, and the
 * request waits for them (NGX_DONE); ngx_http_ldseg_delivered() answers.
 */

static ngx_int_t
ngx_http_ldseg_deliver_start(ngx_http_request_t *r,
    ngx_http_ldseg_stats_t *stats, ngx_str_t *url, ldseg_result_t *res,
    ngx_http_ldseg_dedupe_t *dd)
{
    u_char                      *p;
    ngx_str_t                    id;
    ngx_http_ldseg_waiting_t    *w;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    w = ngx_palloc(r->pool, sizeof(ngx_http_ldseg_waiting_t));
    if (w == NULL) {
        goto failed;
    }

    w->stats = stats;
    w->res = *res;
    w->dd = *dd;
    w->dd.res = &w->res;
    w->zone = lmcf->shm_zone;
    w->max_destinations = lmcf->max_destinations;

    /* url is events_url + "/events/bulk/" + the client-side ID */

    id.data = url->data + lcf->events_url.len + sizeof("/events/bulk/") - 1;
    id.len = url->data + url->len - id.data;

    /*
     * The destination in the status: the location's URI in place of the
     * events URL, so that it tells the two ways apart
     */

    w->target.kind = NGX_HTTP_LDSEG_LAUNCHDARKLY;
    w->target.url.len = lcf->deliver.len + sizeof("/events/bulk/") - 1
                        + id.len;
    w->target.url.data = ngx_pnalloc(r->pool, w->target.url.len);
    if (w->target.url.data == NULL) {
        goto failed;
    }

    p = ngx_cpymem(w->target.url.data, lcf->deliver.data, lcf->deliver.len);
    p = ngx_cpymem(p, "/events/bulk/", sizeof("/events/bulk/") - 1);
    ngx_memcpy(p, id.data, id.len);

    ngx_str_null(&w->target.cred);

    if (ngx_http_ldseg_deliver(r, &lcf->deliver, &id, &w->res,
                               ngx_http_ldseg_delivered,
                               ngx_http_ldseg_deliver_ended, w)
        == NGX_DONE)
    {
        return NGX_DONE;
    }

failed:

    ngx_http_ldseg_dedupe_release(dd);

    ngx_http_ldseg_count_all_refused(stats, res,
                                     LDSEG_REASON_INTERNAL_ERROR);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * Every subrequest has finished: 200 (or the ldseg_pass location) when
 * LaunchDarkly accepted all the events, else 503 with Retry-After, so
 * that the client keeps its events and sends them again.
 */

static void
ngx_http_ldseg_delivered(ngx_http_request_t *r, void *data,
    ngx_http_ldseg_deliver_result_t *dr)
{
    ngx_http_ldseg_waiting_t *w = data;

    ngx_int_t                   rc;
    ngx_http_ldseg_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    if (!dr->ok) {
        ngx_http_ldseg_dedupe_release(&w->dd);

        ngx_http_ldseg_count_all_refused(w->stats, &w->res,
                                         LDSEG_REASON_UPSTREAM_FAILED);
        ngx_http_ldseg_count_subrequests(w, dr);

        rc = ngx_http_ldseg_unavailable(r, lcf->retry_after,
                                        LDSEG_REASON_UPSTREAM_FAILED,
                                        "LaunchDarkly did not accept the "
                                        "events, retry later");

        ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_RESULT,
                               (u_char *) "upstream_failed", 15);

        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_ldseg_dedupe_commit(&w->dd);

    ngx_http_ldseg_count(w->stats, &w->res);
    ngx_http_ldseg_count_subrequests(w, dr);

    ngx_http_ldseg_set_events(r, w->res.nevents);

    ngx_http_finalize_request(r, ngx_http_ldseg_reply(r, &w->res));
}


/* the request ended while its subrequests ran: the client went away */

static void
ngx_http_ldseg_deliver_ended(void *data, ngx_http_ldseg_deliver_result_t *dr)
{
    ngx_http_ldseg_waiting_t *w = data;

    ngx_http_ldseg_dedupe_release(&w->dd);

    ngx_http_ldseg_count_all_refused(w->stats, &w->res,
                                     LDSEG_REASON_UPSTREAM_FAILED);
    ngx_http_ldseg_count_subrequests(w, dr);
}


static void
ngx_http_ldseg_count_subrequests(ngx_http_ldseg_waiting_t *w,
    ngx_http_ldseg_deliver_result_t *dr)
{
    (void) ngx_atomic_fetch_add(&w->stats->subrequests_sent, dr->sent);
    (void) ngx_atomic_fetch_add(&w->stats->subrequests_accepted,
                                dr->accepted);
    (void) ngx_atomic_fetch_add(&w->stats->subrequests_failed, dr->failed);

    if (dr->dropped) {
        (void) ngx_atomic_fetch_add(&w->stats->dropped, dr->dropped);
        (void) ngx_atomic_fetch_add(
                   &w->stats->dropped_reasons[NGX_HTTP_LDSEG_DROP_TOO_LARGE],
                   dr->dropped);
    }

    /* the destination's counters: the one lock round of the request */

    (void) ngx_http_ldseg_queue_count_delivered(w->zone, &w->target, &w->res,
                                                dr->sent, dr->accepted,
                                                dr->failed, dr->dropped,
                                                w->max_destinations);
}


static void
ngx_http_ldseg_refuse(ngx_http_request_t *r, ngx_http_ldseg_stats_t *stats,
    ldseg_result_t *res, ngx_http_ldseg_enqueue_e erc, ldseg_error_t *err)
{
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    /*
     * Never 200 followed by a drop: the client is told to keep the events
     * and retry, which Segment's libraries do on 503.
     */

    if (erc == NGX_HTTP_LDSEG_ENQ_DESTINATIONS) {
        err->reason = LDSEG_REASON_TOO_MANY_DESTINATIONS;
        err->message = "too many LaunchDarkly destinations are queued, "
                       "retry later";

    } else {
        err->reason = LDSEG_REASON_QUEUE_FULL;
        err->message = "the event queue is full, retry later";
    }

    /* one line a second per worker: the counters have every refusal */

    if ((ngx_msec_int_t) (ngx_current_msec - lmcf->refuse_logged) < 1000) {
        goto count;
    }

    lmcf->refuse_logged = ngx_current_msec;

    switch (erc) {

    case NGX_HTTP_LDSEG_ENQ_REFUSED:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ldseg: LaunchDarkly refuses client-side IDs whose "
                      "events fill their share of zone \"%V\", %ui events "
                      "refused with 503", &lmcf->shm_zone->shm.name,
                      res->nld);
        break;

    case NGX_HTTP_LDSEG_ENQ_DESTINATIONS:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ldseg: \"ldseg_max_destinations\" %ui reached, %ui "
                      "events refused with 503", lmcf->max_destinations,
                      res->nld);
        break;

    case NGX_HTTP_LDSEG_ENQ_MOVED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ldseg: the queue moved to the resized zone \"%V\", "
                      "%ui events refused with 503 by an old worker",
                      &lmcf->shm_zone->shm.name, res->nld);
        break;

    default:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ldseg zone \"%V\" is full, %ui events refused "
                      "with 503", &lmcf->shm_zone->shm.name, res->nld);
        break;
    }

count:

    ngx_http_ldseg_count_all_refused(stats, res, err->reason);
}


static ngx_int_t
ngx_http_ldseg_reply(ngx_http_request_t *r, ldseg_result_t *res)
{
    ngx_http_variable_value_t   *v;
    ngx_http_ldseg_loc_conf_t   *lcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ldseg: %ui messages, %ui events queued, %ui rejected",
                   res->n, res->nld, res->nrejected);

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    if (lcf->pass.len == 0) {
        return ngx_http_ldseg_accepted(r, res);
    }

    ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_RESULT,
                           (u_char *) (res->nrejected ? "partial"
                                                      : "accepted"),
                           res->nrejected ? 7 : 8);

    /*
     * ngx_http_named_location() clears the module's context, and with it
     * the body's writeKey: $ldseg_write_key keeps its value in its slot
     * of r->variables, which the redirect leaves alone.
     */

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    v = ngx_http_get_flushed_variable(r, lmcf->write_key_index);

    if (v != NULL && v->valid) {
        v->no_cacheable = 0;
    }

    /*
     * The one answer that is not ldseg's own: the passed location's goes
     * to the same page, and needs the CORS headers as much.
     */

    if (ngx_http_ldseg_cors_headers(r, lcf->cors) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_http_named_location(r, &lcf->pass);

    return NGX_DONE;
}


static void
ngx_http_ldseg_count(ngx_http_ldseg_stats_t *stats, ldseg_result_t *res)
{
    ngx_uint_t      i;
    ldseg_reason_e  reason;

    if (stats == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&stats->received, res->n);
    (void) ngx_atomic_fetch_add(&stats->accepted,
                                res->nevents + res->nskipped
                                + res->nduplicates);
    (void) ngx_atomic_fetch_add(&stats->translated, res->nld);

    if (res->nskipped) {
        (void) ngx_atomic_fetch_add(&stats->skipped, res->nskipped);
    }

    if (res->nduplicates) {
        (void) ngx_atomic_fetch_add(&stats->duplicate, res->nduplicates);
    }

    if (res->nrejected == 0 && res->nskipped == 0) {
        return;
    }

    (void) ngx_atomic_fetch_add(&stats->rejected, res->nrejected);

    for (i = 0; i < res->n; i++) {

        reason = res->msgs[i].err.reason;

        switch (res->msgs[i].status) {

        case LDSEG_MSG_REJECTED:
            (void) ngx_atomic_fetch_add(&stats->rejected_reasons[reason], 1);
            break;

        case LDSEG_MSG_SKIPPED:
            /* none when the request was refused after all */

            if (res->nskipped != 0
                && reason >= LDSEG_REASON_NREJECT
                && reason < LDSEG_REASON_NSKIP)
            {
                (void) ngx_atomic_fetch_add(&stats->skipped_reasons[
                                      reason - LDSEG_REASON_NREJECT], 1);
            }

            break;

        default:
            break;
        }
    }
}


/* an unusable request counts as one rejected message */

static void
ngx_http_ldseg_count_refused(ngx_http_ldseg_stats_t *stats,
    ldseg_reason_e reason)
{
    if (stats == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&stats->received, 1);
    (void) ngx_atomic_fetch_add(&stats->rejected, 1);
    (void) ngx_atomic_fetch_add(&stats->rejected_reasons[reason], 1);
}


/*
 * A valid request refused as a whole: its messages that were to be
 * accepted count as rejected for reason, the others keep their own.
 */

static void
ngx_http_ldseg_count_all_refused(ngx_http_ldseg_stats_t *stats,
    ldseg_result_t *res, ldseg_reason_e reason)
{
    ngx_uint_t  n;

    if (res->n == 0) {
        ngx_http_ldseg_count_refused(stats, reason);
        return;
    }

    n = res->nevents + res->nskipped + res->nduplicates;

    res->nrejected += n;
    res->nevents = 0;
    res->nld = 0;
    res->nskipped = 0;
    res->nduplicates = 0;

    ngx_http_ldseg_count(stats, res);

    if (stats) {
        (void) ngx_atomic_fetch_add(&stats->rejected_reasons[reason], n);
    }
}


static void
ngx_http_ldseg_log_invalid(ngx_http_request_t *r, ngx_http_ldseg_ctx_t *ctx,
    const char *what, ldseg_error_t *err)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ldseg: invalid \"%s\" %s: %s",
                  ldseg_endpoint_name(ctx->endpoint), what, err->message);
}


ngx_int_t
ngx_http_ldseg_write_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                *p, *last;
    ngx_str_t              user;
    ngx_http_ldseg_ctx_t  *ctx;

    /* server libraries: HTTP Basic auth, the write key as the user */

    if (r->headers_in.authorization
        && ngx_http_auth_basic_user(r) == NGX_OK
        && r->headers_in.user.len)
    {
        user = r->headers_in.user;
        goto found;
    }

    /* analytics.js: "writeKey" in the body */

    ctx = ngx_http_get_module_ctx(r, ngx_http_ldseg_module);

    if (ctx && ctx->write_key_set) {
        user = ctx->write_key;
        goto found;
    }

    v->not_found = 1;

    return NGX_OK;

found:

    /* a write key that is not a plain token cannot select anything */

    last = user.data + user.len;

    for (p = user.data; p < last; p++) {
        if (*p <= ' ' || *p == '"' || *p == '\\' || *p >= 0x7f) {
            v->not_found = 1;
            return NGX_OK;
        }
    }

    v->data = user.data;
    v->len = user.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


void *
ngx_http_ldseg_pool_alloc(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}


void
ngx_http_ldseg_pool_free(void *ctx, void *p)
{
    /* the request pool frees everything at once */
}

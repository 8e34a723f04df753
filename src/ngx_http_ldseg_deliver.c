
/*
 * Copyright (C) ldseg authors
 *
 * The second way to deliver ("ldseg_deliver uri"): a request's events go
 * to LaunchDarkly through nginx subrequests to a location, so nginx's own
 * upstream machinery (keepalive pools, proxy_ssl_*, resolver, failover,
 * $upstream_* in logs) carries them, and the client hears 200 only when
 * LaunchDarkly has accepted its events.
 *
 * The events are divided into payloads exactly as the queue divides them
 * (ldseg_result_run()), and each becomes a POST with the body and headers
 * the sender would send.  The subrequests are in-memory (LaunchDarkly's
 * answer never reaches the client) and "background": they finish in any
 * order without nginx's postponed-output ordering, and each one wakes the
 * main request, whose write handler starts the next chunks and answers
 * when none is left.  A 413 splits its payload into halves, and a half
 * that gets a 413 again is split again, down to single messages; the
 * events of a single message LaunchDarkly finds too large are dropped and
 * counted, as the queue drops them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_sender.h"
#include "ngx_http_ldseg_deliver.h"


typedef struct ngx_http_ldseg_dchunk_s  ngx_http_ldseg_dchunk_t;

typedef struct {
    ngx_http_request_t               *request;
    ngx_str_t                         uri;
    ldseg_result_t                   *res;

    /* chunks not started yet, in order */
    ngx_http_ldseg_dchunk_t          *todo;
    ngx_http_ldseg_dchunk_t         **last;

    ngx_uint_t                        inflight;
    ngx_http_ldseg_deliver_result_t   dr;

    ngx_http_ldseg_deliver_pt         handler;
    ngx_http_ldseg_deliver_end_pt     end;
    void                             *data;

    unsigned                          failed:1;
    unsigned                          posted:1;
    unsigned                          finished:1;
} ngx_http_ldseg_dctx_t;


struct ngx_http_ldseg_dchunk_s {
    ngx_http_ldseg_dchunk_t          *next;
    ngx_http_ldseg_dctx_t            *ctx;

    /* the events of messages [first, last) */
    size_t                            first;
    size_t                            last;
    size_t                            nevents;

    unsigned                          done:1;
};


static ngx_http_ldseg_dchunk_t *ngx_http_ldseg_deliver_chunk(
    ngx_http_ldseg_dctx_t *ctx, size_t first, size_t last, size_t nevents);
static ngx_int_t ngx_http_ldseg_deliver_send(ngx_http_ldseg_dctx_t *ctx,
    ngx_http_ldseg_dchunk_t *ch);
static ngx_int_t ngx_http_ldseg_deliver_headers(ngx_http_request_t *r,
    ngx_http_headers_in_t *hin, ngx_uint_t gzip);
static ngx_int_t ngx_http_ldseg_deliver_header(ngx_http_request_t *r,
    ngx_http_headers_in_t *hin, char *key, u_char *value, size_t len,
    ngx_table_elt_t **h);
static ngx_int_t ngx_http_ldseg_deliver_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_ldseg_deliver_split(ngx_http_ldseg_dctx_t *ctx,
    ngx_http_ldseg_dchunk_t *ch);
static void ngx_http_ldseg_deliver_wake(ngx_http_request_t *r);
static void ngx_http_ldseg_deliver_cleanup(void *data);


ngx_int_t
ngx_http_ldseg_deliver(ngx_http_request_t *r, ngx_str_t *uri, ngx_str_t *id,
    ldseg_result_t *res, ngx_http_ldseg_deliver_pt handler,
    ngx_http_ldseg_deliver_end_pt end, void *data)
{
    u_char                      *p;
    size_t                       i, j, n, last, room;
    ngx_pool_cleanup_t          *cln;
    ngx_http_ldseg_ctx_t        *lctx;
    ngx_http_ldseg_dctx_t       *ctx;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);
    lctx = ngx_http_get_module_ctx(r, ngx_http_ldseg_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ldseg_dctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->request = r;
    ctx->uri = *uri;
    ctx->res = res;
    ctx->last = &ctx->todo;
    ctx->handler = handler;
    ctx->end = end;
    ctx->data = data;

    lctx->deliver = ctx;

    /* $ldseg_events_path, read by the subrequests through r->main */

    lctx->events_path.len = sizeof("/events/bulk/") - 1 + id->len;
    lctx->events_path.data = ngx_pnalloc(r->pool, lctx->events_path.len);
    if (lctx->events_path.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(lctx->events_path.data, "/events/bulk/",
                   sizeof("/events/bulk/") - 1);
    ngx_memcpy(p, id->data, id->len);

    /* the queue's payloads, as if the request were alone in the queue */

    for (i = 0; i < res->n; i = j) {

        if (res->msgs[i].status != LDSEG_MSG_EVENT) {
            j = i + 1;
            continue;
        }

        room = 0;
        j = ldseg_result_run(res, i, 0, 0, lmcf->batch_size,
                             lmcf->max_payload, &room, &n, &last);

        if (ngx_http_ldseg_deliver_chunk(ctx, i, j, n) == NULL) {
            return NGX_ERROR;
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_ldseg_deliver_cleanup;
    cln->data = ctx;

    /* the main request's own reference while it waits */

    r->main->count++;

    r->write_event_handler = ngx_http_ldseg_deliver_wake;

    /* a client that goes away ends the request, and its subrequests */
    r->read_event_handler = ngx_http_test_reading;

    ngx_http_ldseg_deliver_wake(r);

    return NGX_DONE;
}


static ngx_http_ldseg_dchunk_t *
ngx_http_ldseg_deliver_chunk(ngx_http_ldseg_dctx_t *ctx, size_t first,
    size_t last, size_t nevents)
{
    ngx_http_ldseg_dchunk_t  *ch;

    ch = ngx_pcalloc(ctx->request->pool, sizeof(ngx_http_ldseg_dchunk_t));
    if (ch == NULL) {
        return NULL;
    }

    ch->ctx = ctx;
    ch->first = first;
    ch->last = last;
    ch->nevents = nevents;

    *ctx->last = ch;
    ctx->last = &ch->next;

    return ch;
}


/*
 * The main request's write handler: woken by every subrequest that ends
 * (and by the client connection's write events, which change nothing).
 * Starts chunks up to NGX_HTTP_LDSEG_DELIVER_PARALLEL at once, and none
 * after a failure; once nothing is in flight, the handler answers.
 */

static void
ngx_http_ldseg_deliver_wake(ngx_http_request_t *r)
{
    ngx_http_ldseg_ctx_t     *lctx;
    ngx_http_ldseg_dctx_t    *ctx;
    ngx_http_ldseg_dchunk_t  *ch;

    lctx = ngx_http_get_module_ctx(r, ngx_http_ldseg_module);

    if (lctx == NULL || lctx->deliver == NULL) {
        return;
    }

    ctx = lctx->deliver;
    ctx->posted = 0;

    if (ctx->finished) {
        return;
    }

    while (!ctx->failed
           && ctx->todo != NULL
           && ctx->inflight < NGX_HTTP_LDSEG_DELIVER_PARALLEL)
    {
        ch = ctx->todo;
        ctx->todo = ch->next;

        if (ctx->todo == NULL) {
            ctx->last = &ctx->todo;
        }

        if (ngx_http_ldseg_deliver_send(ctx, ch) != NGX_OK) {
            ctx->failed = 1;

            if (ctx->dr.status == 0) {
                ctx->dr.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    if (ctx->inflight) {
        return;
    }

    ctx->finished = 1;
    ctx->dr.ok = !ctx->failed;

    /* the handler answers and finalizes r, releasing its own reference */

    ctx->handler(r, ctx->data, &ctx->dr);
}


static ngx_int_t
ngx_http_ldseg_deliver_send(ngx_http_ldseg_dctx_t *ctx,
    ngx_http_ldseg_dchunk_t *ch)
{
    u_char                      *body, *p, *gz;
    size_t                       i, start, end, len, gzlen;
    ngx_buf_t                   *b;
    ngx_chain_t                 *cl;
    ldseg_result_t              *res;
    ngx_http_request_t          *r, *sr;
    ngx_http_headers_in_t       *hin;
    ngx_http_request_body_t     *rb;
    ngx_http_post_subrequest_t  *ps;
    ngx_http_ldseg_main_conf_t  *lmcf;

    r = ctx->request;
    res = ctx->res;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    /* the bytes of the run: its first event up to the end of its last */

    start = 0;
    end = 0;

    for (i = ch->first; i < ch->last; i++) {
        if (res->msgs[i].status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (end == 0) {
            start = res->msgs[i].event_off;
        }

        end = res->msgs[i].event_off + res->msgs[i].event_len;
    }

    len = end - start + 2;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = body;
    *p++ = '[';
    p = ngx_cpymem(p, res->events + start, end - start);
    *p++ = ']';

    gz = ngx_http_ldseg_sender_encode(lmcf->sender, r->pool, body, len,
                                      &gzlen);

    if (gz != NULL) {
        body = gz;
        len = gzlen;
    }

    /* everything the subrequest needs, before it exists */

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);
    hin = ngx_palloc(r->pool, sizeof(ngx_http_headers_in_t));
    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));

    if (rb == NULL || b == NULL || cl == NULL || hin == NULL || ps == NULL) {
        return NGX_ERROR;
    }

    b->start = body;
    b->pos = body;
    b->last = body + len;
    b->end = body + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl->buf = b;
    cl->next = NULL;

    rb->bufs = cl;
    rb->rest = 0;

    if (ngx_http_ldseg_deliver_headers(r, hin, gz != NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    hin->content_length_n = len;

    ps->handler = ngx_http_ldseg_deliver_done;
    ps->data = ch;

    if (ngx_http_subrequest(r, &ctx->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* from here on, the subrequest runs and ends in ..._done() */

    ctx->inflight++;
    ctx->dr.sent++;

    sr->method = NGX_HTTP_POST;
    ngx_str_set(&sr->method_name, "POST");

    sr->request_body = rb;

    /* the list's first part moves with the copy */

    sr->headers_in = *hin;
    sr->headers_in.headers.last = &sr->headers_in.headers.part;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ldseg deliver: subrequest \"%V\", %uz events, %uz bytes",
                   &ctx->uri, ch->nevents, len);

    return NGX_OK;
}


/*
 * The subrequest's headers: only these, none of the client's (its
 * Authorization holds the Segment write key, its Cookie the visitor's)
 */

static ngx_int_t
ngx_http_ldseg_deliver_headers(ngx_http_request_t *r,
    ngx_http_headers_in_t *hin, ngx_uint_t gzip)
{
    u_char           *p;
    u_char            id[16];
    ngx_table_elt_t  *h;

    ngx_memzero(hin, sizeof(ngx_http_headers_in_t));

    hin->content_length_n = -1;
    hin->keep_alive_n = -1;

    if (ngx_list_init(&hin->headers, r->pool, 6, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_ldseg_deliver_header(r, hin, "Content-Type",
                                      (u_char *) NGX_HTTP_LDSEG_JSON,
                                      sizeof(NGX_HTTP_LDSEG_JSON) - 1, &h)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    hin->content_type = h;

    if (ngx_http_ldseg_deliver_header(r, hin, NGX_HTTP_LDSEG_SCHEMA,
                             (u_char *) NGX_HTTP_LDSEG_SCHEMA_VERSION,
                             sizeof(NGX_HTTP_LDSEG_SCHEMA_VERSION) - 1, &h)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a payload ID of this process's own, as the queue's */

    p = ngx_pnalloc(r->pool, LDSEG_UUID_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_ldseg_queue_random_id(id);
    ldseg_uuid_format((char *) p, id);

    if (ngx_http_ldseg_deliver_header(r, hin, NGX_HTTP_LDSEG_PAYLOAD_ID, p,
                                      LDSEG_UUID_LEN, &h)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_ldseg_deliver_header(r, hin, "User-Agent",
                                  (u_char *) NGX_HTTP_LDSEG_USER_AGENT,
                                  sizeof(NGX_HTTP_LDSEG_USER_AGENT) - 1, &h)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    hin->user_agent = h;

    if (gzip
        && ngx_http_ldseg_deliver_header(r, hin, "Content-Encoding",
                                         (u_char *) "gzip", 4, &h)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ldseg_deliver_header(ngx_http_request_t *r,
    ngx_http_headers_in_t *hin, char *key, u_char *value, size_t len,
    ngx_table_elt_t **h)
{
    size_t            n;
    ngx_table_elt_t  *e;

    e = ngx_list_push(&hin->headers);
    if (e == NULL) {
        return NGX_ERROR;
    }

    n = ngx_strlen(key);

    e->key.len = n;
    e->key.data = (u_char *) key;
    e->value.len = len;
    e->value.data = value;

    e->lowcase_key = ngx_pnalloc(r->pool, n);
    if (e->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    e->hash = ngx_hash_strlow(e->lowcase_key, e->key.data, n);

    *h = e;

    return NGX_OK;
}


/*
 * A subrequest ends: its status decides.  It returns NGX_OK for an error
 * status so that nginx sends no error page of its own (the subrequest is
 * in memory, but nothing is to be made of it), and keeps the codes that
 * end the whole request (the client went away).
 */

static ngx_int_t
ngx_http_ldseg_deliver_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_ldseg_dchunk_t *ch = data;

    ngx_uint_t              status;
    ngx_http_ldseg_dctx_t  *ctx;

    if (ch->done) {
        return rc;
    }

    ch->done = 1;
    ctx = ch->ctx;
    ctx->inflight--;

    status = (rc == NGX_OK) ? sr->headers_out.status
                            : (rc >= 100 && rc < 1000) ? (ngx_uint_t) rc : 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "ldseg deliver: subrequest done rc:%i status:%ui "
                   "events:%uz", rc, status, ch->nevents);

    if (rc == NGX_OK && status >= 200 && status < 300) {
        ctx->dr.accepted++;

    } else {
        ctx->dr.failed++;

        if (rc == NGX_OK && status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
            && !ctx->failed)
        {
            /*
             * LaunchDarkly finds the payload too big: halves, as often
             * as it takes; one message's events, which cannot be
             * divided, it will never take: they are dropped, and the
             * request goes on as with the queue, which drops them too
             */

            switch (ngx_http_ldseg_deliver_split(ctx, ch)) {

            case NGX_OK:
                break;

            case NGX_DECLINED:
                ctx->dr.dropped += ch->nevents;

                ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                              "ldseg: LaunchDarkly answered 413 to the "
                              "%uz event(s) of one message, dropped",
                              ch->nevents);
                break;

            default: /* NGX_ERROR */
                ctx->failed = 1;
                ctx->dr.status = status;
            }

        } else if (!ctx->failed) {
            ctx->failed = 1;
            ctx->dr.status = status;

            ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                          "ldseg: subrequest \"%V\" for %uz events failed "
                          "(status %ui), the client is answered 503",
                          &ctx->uri, ch->nevents, status);
        }
    }

    if (!ctx->posted) {
        ctx->posted = 1;

        if (ngx_http_post_request(ctx->request, NULL) != NGX_OK) {
            ctx->posted = 0;
        }
    }

    if (rc == NGX_HTTP_CLIENT_CLOSED_REQUEST
        || rc == NGX_HTTP_REQUEST_TIME_OUT
        || sr->connection->error)
    {
        return rc;
    }

    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return NGX_OK;
    }

    return rc;
}


/*
 * NGX_OK: the chunk's messages are now two chunks, to be sent;
 * NGX_DECLINED: they are one message, which cannot be divided;
 * NGX_ERROR: no memory.
 */

static ngx_int_t
ngx_http_ldseg_deliver_split(ngx_http_ldseg_dctx_t *ctx,
    ngx_http_ldseg_dchunk_t *ch)
{
    size_t                    i, n, half;
    ldseg_result_t           *res;
    ngx_http_ldseg_dchunk_t  *a, *b;

    res = ctx->res;
    half = ch->nevents / 2;

    /*
     * The message after the first half's last event (a message mapped to
     * several events stays whole: a payload of one such message is not
     * split)
     */

    n = 0;

    for (i = ch->first; i < ch->last && n < half; i++) {
        if (res->msgs[i].status == LDSEG_MSG_EVENT) {
            n += res->msgs[i].nld;
        }
    }

    if (i == ch->last || n == 0) {
        return NGX_DECLINED;
    }

    a = ngx_http_ldseg_deliver_chunk(ctx, ch->first, i, n);
    if (a == NULL) {
        return NGX_ERROR;
    }

    b = ngx_http_ldseg_deliver_chunk(ctx, i, ch->last, ch->nevents - n);
    if (b == NULL) {
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "ldseg: LaunchDarkly answered 413 to %uz events, "
                  "sending them again in two halves", ch->nevents);

    return NGX_OK;
}


static void
ngx_http_ldseg_deliver_cleanup(void *data)
{
    ngx_http_ldseg_dctx_t *ctx = data;

    if (ctx->finished) {
        return;
    }

    /* the request ended first: what is still in flight counts as failed */

    ctx->finished = 1;
    ctx->dr.failed += ctx->inflight;
    ctx->inflight = 0;

    ctx->end(ctx->data, &ctx->dr);
}


ngx_int_t
ngx_http_ldseg_events_path_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_ldseg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_ldseg_module);

    if (ctx == NULL || ctx->events_path.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ctx->events_path.data;
    v->len = ctx->events_path.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * Copyright (C) ldseg authors
 *
 * The sender.  A flush timer in every worker leases payloads from the
 * shared queue, builds each POST (gzip when smaller) and hands it to
 * libcurl through the adapter in ngx_http_ldseg_curl.c.  A payload is only
 * removed after LaunchDarkly answered 2xx; what any other answer means
 * (retry with backoff, split, refused ID, dead letter) is decided by the
 * nginx-free delivery policy (ldseg_delivery.c), and the queue applies it.
 *
 * A Segment destination (the export) gets the same payloads wrapped as
 * {"batch":[...]} and POSTed to /v1/batch with HTTP Basic auth; the
 * payload itself stays the JSON array, which a 413 splits.
 *
 * The same timer runs the spool: payloads older than the spool delay are
 * copied out of the zone and appended to this worker's spool file by one
 * job at a time in the thread pool, together with the record marks and
 * unlinks that completed POSTs left behind.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <curl/curl.h>
#include <zlib.h>

#include <sys/random.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_spool.h"
#include "ngx_http_ldseg_curl.h"
#include "ngx_http_ldseg_sender.h"
#include "ldseg_crc32.h"
#include "ldseg_deflate.h"


#define NGX_HTTP_LDSEG_BACKOFF_BASE   1000
#define NGX_HTTP_LDSEG_RETRY_AFTER_MAX  (3600 * 1000)

/* RFC 1952 framing around the raw deflate stream */
#define NGX_HTTP_LDSEG_GZIP_HEADER    10
#define NGX_HTTP_LDSEG_GZIP_TRAILER   8


typedef struct {
    ngx_queue_t                   queue;
    ngx_pool_t                   *pool;
    CURL                         *easy;
    struct curl_slist            *headers;
    u_char                       *body;
    size_t                        len;
    ngx_http_ldseg_lease_t        lease;
    ngx_http_ldseg_account_t     *account;   /* Segment: the write key's */
    char                          error[CURL_ERROR_SIZE];

    /* a test POST: outside the queue, its answer goes to handler */
    ngx_http_ldseg_test_pt        handler;
    void                         *data;
    unsigned                      test:1;
} ngx_http_ldseg_post_t;


struct ngx_http_ldseg_sender_s {
    ngx_http_ldseg_main_conf_t   *lmcf;
    ngx_shm_zone_t               *zone;
    ngx_http_ldseg_stats_t       *stats;
    ngx_log_t                    *log;
    ngx_http_ldseg_curl_t         curl;
    ngx_event_t                   flush;
    ngx_event_t                   kick;
    ngx_connection_t              dummy;
    ngx_queue_t                   posts;
    ngx_uint_t                    inflight;
    ngx_msec_t                    exit_deadline;
    ldseg_delivery_conf_t         dconf;
    ldseg_deflate_t              *deflate;

    /* the spool: this worker's file, the job in the thread pool, and
     * the file operations that wait for the next job */
    ngx_fd_t                      spool_fd;
    off_t                         spool_size;
    uint32_t                      spool_file;
    ngx_http_ldseg_spool_job_t   *job;
    ngx_http_ldseg_spool_ops_t    pending;

    unsigned                      exiting:1;
    unsigned                      spool_all:1;
    unsigned                      spool_full_logged:1;
};


static void ngx_http_ldseg_flush_handler(ngx_event_t *ev);
static void ngx_http_ldseg_kick_handler(ngx_event_t *ev);
static void ngx_http_ldseg_flush(ngx_http_ldseg_sender_t *s,
    ngx_uint_t full_only);
static ngx_int_t ngx_http_ldseg_post(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l);
static ngx_int_t ngx_http_ldseg_post_send(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post);
static void ngx_http_ldseg_test_done(ngx_http_ldseg_post_t *post,
    long code, CURLcode result);
static void ngx_http_ldseg_post_free(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post);
static void ngx_http_ldseg_post_done(void *data, CURL *easy,
    CURLcode result);
static void ngx_http_ldseg_complete(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l, ldseg_delivery_t *d, long code,
    ngx_http_ldseg_answer_t *a, u_char *body, size_t len);
static void ngx_http_ldseg_alert_log(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_alert_out_t *out);
static void ngx_http_ldseg_tap(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l, long code, ngx_http_ldseg_answer_t *a,
    u_char *body, size_t len);
static ngx_int_t ngx_http_ldseg_dead_letter_line(ngx_http_ldseg_sender_t *s,
    u_char *pid, ngx_uint_t kind, ngx_str_t *name, long code,
    const char *reason, u_char *body, size_t len);
static void ngx_http_ldseg_dead_letter(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l, long code, u_char *body, size_t len);
static void ngx_http_ldseg_drop(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l, ngx_uint_t n, ngx_uint_t reason);
static ngx_str_t ngx_http_ldseg_client_side_id(ngx_http_ldseg_lease_t *l);
static const char *ngx_http_ldseg_dest_name(ngx_http_ldseg_lease_t *l);
static void ngx_http_ldseg_count_posted(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post, ngx_uint_t ok);
static void ngx_http_ldseg_abort_all(void *data);
static ngx_http_ldseg_spool_ops_t *ngx_http_ldseg_pending(
    ngx_http_ldseg_sender_t *s);
static ngx_http_ldseg_spool_job_t *ngx_http_ldseg_spool_tick(
    ngx_http_ldseg_sender_t *s, ngx_uint_t all, ngx_uint_t sync);
static void ngx_http_ldseg_spool_job_done(ngx_http_ldseg_spool_job_t *job);
static void ngx_http_ldseg_spool_drain(ngx_http_ldseg_sender_t *s);
static size_t ngx_http_ldseg_curl_discard(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static u_char *ngx_http_ldseg_gzip(ngx_http_ldseg_sender_t *s,
    ngx_pool_t *pool, u_char *data, size_t len, size_t *out);


u_char *
ngx_http_ldseg_sender_encode(ngx_http_ldseg_sender_t *s, ngx_pool_t *pool,
    u_char *data, size_t len, size_t *out)
{
    if (s == NULL || !s->lmcf->gzip || len <= 512) {
        return NULL;
    }

    return ngx_http_ldseg_gzip(s, pool, data, len, out);
}


ngx_int_t
ngx_http_ldseg_sender_init(ngx_cycle_t *cycle,
    ngx_http_ldseg_main_conf_t *lmcf)
{
    ngx_http_ldseg_sender_t  *s;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "ldseg: curl_global_init() failed");
        return NGX_ERROR;
    }

    s = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ldseg_sender_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_ldseg_curl_init(&s->curl, cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    s->curl.done = ngx_http_ldseg_post_done;
    s->curl.abort = ngx_http_ldseg_abort_all;
    s->curl.data = s;

    s->lmcf = lmcf;
    s->zone = lmcf->shm_zone;
    s->stats = ngx_http_ldseg_queue_stats(lmcf->shm_zone);
    s->log = cycle->log;
    s->spool_fd = NGX_INVALID_FILE;
    ngx_queue_init(&s->posts);

    s->dconf.base_ms = NGX_HTTP_LDSEG_BACKOFF_BASE;
    s->dconf.max_ms = lmcf->max_backoff;
    s->dconf.retry_after_max_ms = NGX_HTTP_LDSEG_RETRY_AFTER_MAX;
    s->dconf.dead_letter_after = lmcf->dead_letter.len
                                 ? (unsigned) lmcf->dead_letter_after : 0;

    /* debug logging reads the events' data as a connection */
    s->dummy.fd = (ngx_socket_t) -1;
    s->dummy.data = s;

    s->flush.handler = ngx_http_ldseg_flush_handler;
    s->flush.data = &s->dummy;
    s->flush.log = cycle->log;
    s->flush.cancelable = 1;

    s->kick.handler = ngx_http_ldseg_kick_handler;
    s->kick.data = &s->dummy;
    s->kick.log = cycle->log;

    lmcf->sender = s;

    ngx_add_timer(&s->flush, lmcf->flush_interval);

    return NGX_OK;
}


void
ngx_http_ldseg_sender_exit(ngx_http_ldseg_main_conf_t *lmcf)
{
    ngx_http_ldseg_sender_t  *s;

    s = lmcf->sender;

    if (s == NULL) {
        return;
    }

    ngx_http_ldseg_abort_all(s);

    if (s->kick.posted) {
        ngx_delete_posted_event(&s->kick);
    }

    /* what could not be delivered goes to the spool, if there is one */
    ngx_http_ldseg_spool_drain(s);

    ngx_http_ldseg_curl_cleanup(&s->curl);

    curl_global_cleanup();

    if (s->deflate != NULL) {
        ngx_free(s->deflate);
        s->deflate = NULL;
    }

    ngx_http_ldseg_queue_release(s->zone);

    lmcf->sender = NULL;
}


void
ngx_http_ldseg_sender_queued(ngx_http_ldseg_sender_t *s, ngx_uint_t full)
{
    if (s == NULL) {
        return;
    }

    /* events wait: a graceful exit now waits for the next flush */
    s->flush.cancelable = 0;

    if (!full || s->flush.posted || s->inflight >= s->lmcf->max_inflight) {
        return;
    }

    ngx_post_event(&s->flush, &ngx_posted_events);
}


void
ngx_http_ldseg_sender_full(ngx_http_ldseg_sender_t *s)
{
    if (s == NULL || s->lmcf->spool.path.data == NULL) {
        return;
    }

    /*
     * The zone is full: what is in memory goes to the spool at once, not
     * after the spool delay, so that the next requests find room.
     */

    s->spool_all = 1;

    if (!s->flush.posted) {
        ngx_post_event(&s->flush, &ngx_posted_events);
    }
}


static void
ngx_http_ldseg_flush_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_http_ldseg_usage_t    u;
    ngx_http_ldseg_sender_t  *s;

    c = ev->data;
    s = c->data;

    if (ngx_terminate) {
        return;
    }

    if (ngx_exiting) {

        /*
         * On reload and quit, go on sending what is queued for at most
         * ldseg_shutdown_timeout; what is left then stays in the zone for
         * the new workers, or for the next start when a spool is used.
         */

        if (!s->exiting) {
            s->exiting = 1;
            s->exit_deadline = ngx_current_msec + s->lmcf->shutdown_timeout;
        }

        if ((ngx_msec_int_t) (ngx_current_msec - s->exit_deadline) >= 0) {
            ngx_http_ldseg_abort_all(s);
            return;
        }
    }

    ngx_http_ldseg_queue_usage(s->zone, &u);

    if (ngx_exiting && u.events == 0 && s->inflight == 0 && s->job == NULL) {
        return;
    }

    /*
     * Re-arm first.  While events wait, the timer keeps an exiting worker
     * alive; an idle worker exits at once.
     */

    ev->cancelable = (u.events == 0 && s->job == NULL);

    if (!ev->timer_set) {
        ngx_add_timer(ev, ngx_exiting ? 100 : s->lmcf->flush_interval);
    }

    /*
     * The timer sends everything; a flush posted because a payload filled
     * up sends full payloads only, so that it does not also send the one
     * that just started to fill.
     */

    ngx_http_ldseg_flush(s, !ev->timedout && !ngx_exiting);

    if (ev->timedout || s->spool_all) {
        ev->timedout = 0;

        /* what waited longer than the spool delay is written to disk */
        (void) ngx_http_ldseg_spool_tick(s, s->spool_all, 0);
        s->spool_all = 0;
    }
}


static void
ngx_http_ldseg_kick_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_http_ldseg_sender_t  *s;

    c = ev->data;
    s = c->data;

    /* POSTs ended: their places go to the next payloads */

    if (!ngx_terminate) {
        ngx_http_ldseg_flush(s, !ngx_exiting);
    }
}


static void
ngx_http_ldseg_flush(ngx_http_ldseg_sender_t *s, ngx_uint_t full_only)
{
    ngx_int_t               rc;
    ngx_msec_t              lease_time;
    ldseg_delivery_t        d;
    ngx_http_ldseg_lease_t  l;

    lease_time = s->lmcf->timeout + s->lmcf->connect_timeout + 10000;

    while (s->inflight < s->lmcf->max_inflight) {

        if (ngx_http_ldseg_queue_lease(s->zone, ngx_current_msec, lease_time,
                                       full_only, &l)
            != NGX_OK)
        {
            return;
        }

        rc = ngx_http_ldseg_post(s, &l);

        if (rc == NGX_OK) {
            continue;
        }

        /* not sent: given back at once, or dropped when its record is bad */

        ngx_memzero(&d, sizeof(ldseg_delivery_t));

        if (rc == NGX_DECLINED) {
            d.outcome = LDSEG_DELIVERY_DONE;
            ngx_http_ldseg_drop(s, &l, l.nevents,
                               NGX_HTTP_LDSEG_DROP_CORRUPT);

        } else {
            d.outcome = LDSEG_DELIVERY_RETRY;
            d.delay_ms = NGX_HTTP_LDSEG_BACKOFF_BASE;
        }

        ngx_http_ldseg_complete(s, &l, &d, 0, NULL, NULL, 0);

        if (rc == NGX_ERROR) {
            return;
        }
    }
}


static ngx_int_t
ngx_http_ldseg_post(ngx_http_ldseg_sender_t *s, ngx_http_ldseg_lease_t *l)
{
    u_char                 *body, *last;
    size_t                  len;
    ngx_int_t               rc;
    ngx_pool_t             *pool;
    ngx_http_ldseg_post_t  *post;

    pool = ngx_create_pool(l->len + l->disk.len + 4096, s->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    post = ngx_pcalloc(pool, sizeof(ngx_http_ldseg_post_t));
    if (post == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    post->pool = pool;
    post->lease = *l;

    if (l->on_disk) {
        rc = ngx_http_ldseg_spool_read(&l->disk, l->id, pool, &body, &len,
                                       s->log);
        if (rc != NGX_OK) {
            ngx_destroy_pool(pool);
            return rc;
        }

    } else {
        body = ngx_pnalloc(pool, l->len + 2);
        if (body == NULL) {
            ngx_destroy_pool(pool);
            return NGX_ERROR;
        }

        last = ngx_http_ldseg_queue_copy_out(s->zone, l, body);

        if (last == NULL) {
            /* the lease was lost: another worker sends it */
            ngx_destroy_pool(pool);
            return NGX_ABORT;
        }

        len = last - body;
    }

    post->body = body;
    post->len = len;

    return ngx_http_ldseg_post_send(s, post);
}


static ngx_int_t
ngx_http_ldseg_post_send(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post)
{
    u_char                 *body, *last, *gz, *send;
    size_t                  len, gzlen, slen;
    CURL                   *easy;
    ngx_pool_t             *pool;
    struct curl_slist      *h;
    ngx_http_ldseg_lease_t *l;
    u_char                  id[sizeof(NGX_HTTP_LDSEG_PAYLOAD_ID ": ")
                               + LDSEG_UUID_LEN];

    /* the body is in post->pool; on NGX_ERROR the post is freed */

    pool = post->pool;
    body = post->body;
    len = post->len;
    l = &post->lease;

    /* the URL is NUL-terminated in the post's copy of the lease */
    post->lease.url[post->lease.url_len] = '\0';

    send = body;
    slen = len;

    if (l->kind == NGX_HTTP_LDSEG_SEGMENT) {

        /* Segment's batch: the messages in {"batch":[...]} */

        send = ngx_pnalloc(pool, len + sizeof("{\"batch\":}") - 1);
        if (send == NULL) {
            ngx_destroy_pool(pool);
            return NGX_ERROR;
        }

        last = ngx_cpymem(send, "{\"batch\":", sizeof("{\"batch\":") - 1);
        last = ngx_cpymem(last, body, len);
        *last++ = '}';
        slen = last - send;

        post->lease.cred[post->lease.cred_len] = '\0';
        post->account = ngx_http_ldseg_queue_account(s->zone,
                                                     post->lease.cred,
                                                     post->lease.cred_len);
    }

    gz = NULL;
    gzlen = 0;

    gz = ngx_http_ldseg_sender_encode(s, pool, send, slen, &gzlen);

    easy = curl_easy_init();
    if (easy == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    post->easy = easy;

    last = ngx_cpymem(id, NGX_HTTP_LDSEG_PAYLOAD_ID ": ",
                      sizeof(NGX_HTTP_LDSEG_PAYLOAD_ID ": ") - 1);
    ldseg_uuid_format((char *) last, l->id);
    last[LDSEG_UUID_LEN] = '\0';

    h = curl_slist_append(NULL, "Content-Type: " NGX_HTTP_LDSEG_JSON);
    if (h) {
        post->headers = h;
    }
    if (h && l->kind == NGX_HTTP_LDSEG_LAUNCHDARKLY) {
        h = curl_slist_append(h, NGX_HTTP_LDSEG_SCHEMA ": "
                              NGX_HTTP_LDSEG_SCHEMA_VERSION);
        if (h) {
            h = curl_slist_append(h, (char *) id);
        }
    }
    if (h) {
        h = curl_slist_append(h, "User-Agent: " NGX_HTTP_LDSEG_USER_AGENT);
    }
    if (h) {
        /* no 100-continue round trip before large payloads */
        h = curl_slist_append(h, "Expect:");
    }
    if (h && gz) {
        h = curl_slist_append(h, "Content-Encoding: gzip");
    }

    if (h == NULL) {
        ngx_http_ldseg_post_free(s, post);
        return NGX_ERROR;
    }

    curl_easy_setopt(easy, CURLOPT_URL, (char *) post->lease.url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);

    if (gz) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *) gz);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) gzlen);

    } else {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *) send);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) slen);
    }

    if (l->kind == NGX_HTTP_LDSEG_SEGMENT) {
        /* Segment's server libraries: the write key as the user */
        curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt(easy, CURLOPT_USERNAME, (char *) post->lease.cred);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, "");
    }

    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, post->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) s->lmcf->timeout);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) s->lmcf->connect_timeout);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, post);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, post->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_ldseg_curl_discard);

    if (ngx_http_ldseg_curl_add(&s->curl, easy) != NGX_OK) {
        ngx_http_ldseg_post_free(s, post);
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&s->posts, &post->queue);
    s->inflight++;

    if (!post->test) {
        (void) ngx_atomic_fetch_add(&s->stats->posts_sent, 1);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "ldseg post: %ui events, %uz bytes, attempt %ui",
                   l->nevents, len, l->attempts + 1);

    return NGX_OK;
}


static void
ngx_http_ldseg_post_free(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post)
{
    if (post->queue.next) {
        ngx_queue_remove(&post->queue);
        s->inflight--;
    }

    if (post->easy) {
        ngx_http_ldseg_curl_remove(&s->curl, post->easy);
        curl_easy_cleanup(post->easy);
    }

    if (post->headers) {
        curl_slist_free_all(post->headers);
    }

    ngx_destroy_pool(post->pool);
}


static void
ngx_http_ldseg_post_done(void *data, CURL *easy, CURLcode result)
{
    ngx_http_ldseg_sender_t *s = data;

    long                     code;
    u_char                  *p;
    curl_off_t               retry_after;
    ldseg_delivery_t         d;
    ngx_http_ldseg_post_t   *post;
    ngx_http_ldseg_lease_t  *l;
    ngx_http_ldseg_answer_t  a;
    u_char                   error[NGX_HTTP_LDSEG_ERROR_MAX];

    post = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &post);

    if (post == NULL) {
        return;
    }

    l = &post->lease;
    code = 0;
    retry_after = 0;

    if (result == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after);
    }

    if (post->test) {
        ngx_http_ldseg_test_done(post, code, result);
        ngx_http_ldseg_post_free(s, post);
        return;
    }

    ldseg_delivery_outcome(&s->dconf, code, (int64_t) retry_after,
                           (unsigned) l->attempts, (uint32_t) ngx_random(),
                           &d);

    if (d.outcome == LDSEG_DELIVERY_DONE) {
        ngx_http_ldseg_count_posted(s, post, 1);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                       "ldseg post: %ui events delivered, status %l",
                       l->nevents, code);

    } else {
        ngx_http_ldseg_count_posted(s, post, 0);

        if (result != CURLE_OK) {
            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "ldseg: POST to %s failed: %s, "
                          "%ui events requeued", ngx_http_ldseg_dest_name(l),
                          post->error[0] ? post->error
                                         : curl_easy_strerror(result),
                          l->nevents);

        } else if (d.outcome != LDSEG_DELIVERY_REFUSED_ID) {
            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "ldseg: POST to %s failed: status %l, "
                          "%ui events, outcome %s, next try in %uL ms",
                          ngx_http_ldseg_dest_name(l), code, l->nevents,
                          ldseg_delivery_name(d.outcome), d.delay_ms);
        }
    }

    /* what the status shows of it: the time, and the error, bounded */

    a.time = ngx_time();
    a.retry_after = (retry_after > 0);
    a.error = NULL;
    a.error_len = 0;

    if (d.outcome != LDSEG_DELIVERY_DONE) {
        if (result != CURLE_OK) {
            p = ngx_snprintf(error, NGX_HTTP_LDSEG_ERROR_MAX, "%s",
                             post->error[0] ? post->error
                                            : curl_easy_strerror(result));

        } else {
            p = ngx_snprintf(error, NGX_HTTP_LDSEG_ERROR_MAX,
                             "LaunchDarkly answered %l", code);
        }

        a.error = error;
        a.error_len = p - error;
    }

    ngx_http_ldseg_complete(s, l, &d, code, &a, post->body, post->len);

    if (s->lmcf->tap.len) {
        ngx_http_ldseg_tap(s, l, code, &a, post->body, post->len);
    }

    ngx_http_ldseg_post_free(s, post);

    /* the freed place goes to the next payload, after libcurl's loop */

    if (!s->kick.posted) {
        ngx_post_event(&s->kick, &ngx_posted_events);
    }
}


/*
 * The counters of an ended POST: LaunchDarkly events in the main ones,
 * Segment messages in the export's and their write key's.
 */

static void
ngx_http_ldseg_count_posted(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post, ngx_uint_t ok)
{
    ngx_uint_t                 n;
    ngx_http_ldseg_account_t  *a;

    n = post->lease.nevents;
    a = post->account;

    (void) ngx_atomic_fetch_add(ok ? &s->stats->posts_succeeded
                                   : &s->stats->posts_failed, 1);

    if (post->lease.kind == NGX_HTTP_LDSEG_LAUNCHDARKLY) {
        (void) ngx_atomic_fetch_add(ok ? &s->stats->delivered
                                       : &s->stats->failed, n);
        return;
    }

    (void) ngx_atomic_fetch_add(ok ? &s->stats->export_delivered
                                   : &s->stats->export_failed, n);

    if (a != NULL) {
        (void) ngx_atomic_fetch_add(ok ? &a->delivered : &a->failed, n);
    }
}


static const char *
ngx_http_ldseg_dest_name(ngx_http_ldseg_lease_t *l)
{
    return (l->kind == NGX_HTTP_LDSEG_SEGMENT) ? "Segment" : "LaunchDarkly";
}


static void
ngx_http_ldseg_complete(ngx_http_ldseg_sender_t *s, ngx_http_ldseg_lease_t *l,
    ldseg_delivery_t *d, long code, ngx_http_ldseg_answer_t *a, u_char *body,
    size_t len)
{
    ngx_str_t                    id;
    ngx_http_ldseg_done_t        done;
    ngx_http_ldseg_spool_ops_t  *ops;

    ops = ngx_http_ldseg_pending(s);
    if (ops == NULL) {
        return;
    }

    ngx_http_ldseg_queue_complete(s->zone, l, d, (ngx_uint_t) code, a,
                                  ngx_current_msec, body, len, ops, &done);

    if (done.dropped) {
        ngx_http_ldseg_drop(s, l, done.dropped, done.drop_reason);
    }

    if (done.refused_first) {
        id = ngx_http_ldseg_client_side_id(l);

        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "ldseg: %s answered %l for %s \"%V%s\", its events "
                      "are kept and sent again every %uL ms",
                      ngx_http_ldseg_dest_name(l), code,
                      l->kind ? "write key" : "client-side ID", &id,
                      l->kind ? "..." : "", d->delay_ms);
    }

    if (done.dead_letter) {
        ngx_http_ldseg_dead_letter(s, l, code, body, len);
    }
}


static void
ngx_http_ldseg_alert_log(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_alert_out_t *out)
{
    ngx_str_t                     ids;
    ngx_http_ldseg_alert_conf_t  *ac;

    /* this process found the change under the lock: one line for each */

    ac = &s->lmcf->alert;

    if (out->rate_change < 0) {
        ids.len = (out->ids_len > 2) ? out->ids_len - 2 : 0;
        ids.data = out->ids + 2;

        ngx_log_error(NGX_LOG_WARN, s->log, 0,
                      "ldseg: delivery rate to LaunchDarkly is %ui.%02ui%% "
                      "over the last %M ms, below %ui.%02ui%%, client-side "
                      "IDs: %V", out->rate / 100, out->rate % 100, ac->window,
                      ac->rate / 100, ac->rate % 100, &ids);

    } else if (out->rate_change > 0) {
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "ldseg: delivery rate to LaunchDarkly recovered to "
                      "%ui.%02ui%% over the last %M ms",
                      out->rate / 100, out->rate % 100, ac->window);
    }

    if (out->age_change < 0) {
        ids.len = (out->age_ids_len > 2) ? out->age_ids_len - 2 : 0;
        ids.data = out->age_ids + 2;

        ngx_log_error(NGX_LOG_WARN, s->log, 0,
                      "ldseg: the oldest queued event waits for %M ms, "
                      "longer than %M ms, client-side IDs: %V",
                      out->age, ac->max_age, &ids);

    } else if (out->age_change > 0) {
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "ldseg: no queued event waits longer than %M ms any "
                      "more", ac->max_age);
    }
}


static void
ngx_http_ldseg_tap(ngx_http_ldseg_sender_t *s, ngx_http_ldseg_lease_t *l,
    long code, ngx_http_ldseg_answer_t *a, u_char *body, size_t len)
{
    u_char                      *line, *p;
    size_t                       size;
    ngx_tm_t                     tm;
    ngx_str_t                    id;
    ngx_time_t                  *tp;
    ngx_http_ldseg_spool_ops_t  *ops;

    /*
     * ldseg_tap: one JSON line per POST as it completes, appended by the
     * next spool job (the thread pool), so the worker never waits for
     * the disk
     */

    id = ngx_http_ldseg_client_side_id(l);

    size = sizeof("{\"time\":\"1970-01-01T00:00:00.000Z\",\"payload_id\":"
                  "\"\",\"client_side_id\":\"\",\"status\":,"
                  "\"attempt\":,\"error\":\"\",\"events\":}\n")
           + LDSEG_UUID_LEN + id.len + 2 * NGX_INT_T_LEN
           + 6 * a->error_len + len;

    ops = ngx_http_ldseg_pending(s);
    line = (ops != NULL) ? ngx_pnalloc(ops->pool, size) : NULL;

    if (line == NULL) {
        return;
    }

    tp = ngx_timeofday();
    ngx_gmtime(tp->sec, &tm);

    p = ngx_sprintf(line, "{\"time\":\"%4d-%02d-%02dT%02d:%02d:%02d.%03MZ\","
                    "\"payload_id\":\"", tm.ngx_tm_year, tm.ngx_tm_mon,
                    tm.ngx_tm_mday, tm.ngx_tm_hour, tm.ngx_tm_min,
                    tm.ngx_tm_sec, tp->msec);
    ldseg_uuid_format((char *) p, l->id);
    p += LDSEG_UUID_LEN;

    p = ngx_sprintf(p, "\",\"client_side_id\":\"%V\",\"status\":%l,"
                    "\"attempt\":%ui,", &id, code, l->attempts + 1);

    if (a->error != NULL) {
        p = ngx_sprintf(p, "\"error\":\"");
        p = (u_char *) ngx_escape_json(p, a->error, a->error_len);
        p = ngx_sprintf(p, "\",");
    }

    p = ngx_sprintf(p, "\"events\":");
    p = ngx_cpymem(p, body, len);
    *p++ = '}';
    *p++ = '\n';

    (void) ngx_http_ldseg_spool_op_tap(ops, &s->lmcf->tap,
                                       s->lmcf->tap_max_size, line, p - line);
}


static void
ngx_http_ldseg_dead_letter(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l, long code, u_char *body, size_t len)
{
    ngx_str_t                  id, name;
    ngx_http_ldseg_account_t  *a;

    /*
     * LaunchDarkly (or Segment) refused the payload on every attempt: it
     * goes to the dead-letter file as one JSON line, written and synced by
     * the next spool job, and leaves the queue.
     */

    id = ngx_http_ldseg_client_side_id(l);

    if (l->kind == NGX_HTTP_LDSEG_SEGMENT) {
        name.data = l->cred;
        name.len = l->cred_len;

    } else {
        name = id;
    }

    if (ngx_http_ldseg_dead_letter_line(s, l->id, l->kind, &name, code, NULL,
                                        body, len)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "ldseg: %ui events refused by %s could not be "
                      "written to \"%V\"", l->nevents,
                      ngx_http_ldseg_dest_name(l), &s->lmcf->dead_letter);

        ngx_http_ldseg_drop(s, l, l->nevents, NGX_HTTP_LDSEG_DROP_DEAD);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, s->log, 0,
                  "ldseg: %s refused %ui events of %s \"%V%s\" with "
                  "status %l on %ui attempts, they go to \"%V\"",
                  ngx_http_ldseg_dest_name(l), l->nevents,
                  l->kind ? "write key" : "client-side ID", &id,
                  l->kind ? "..." : "", code, l->attempts + 1,
                  &s->lmcf->dead_letter);

    if (l->kind == NGX_HTTP_LDSEG_LAUNCHDARKLY) {
        (void) ngx_atomic_fetch_add(&s->stats->dead_lettered, l->nevents);
        return;
    }

    (void) ngx_atomic_fetch_add(&s->stats->export_dead_lettered, l->nevents);

    a = ngx_http_ldseg_queue_account(s->zone, l->cred, l->cred_len);

    if (a != NULL) {
        (void) ngx_atomic_fetch_add(&a->dead_lettered, l->nevents);
    }
}


ngx_int_t
ngx_http_ldseg_sender_dead_letter(ngx_http_ldseg_sender_t *s,
    ngx_str_t *key, u_char *msgs, size_t len)
{
    if (s == NULL || s->lmcf->dead_letter.len == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_ldseg_dead_letter_line(s, NULL, NGX_HTTP_LDSEG_SEGMENT,
                                           key, 0, "too_large", msgs, len);
}


/*
 * One dead-letter line for the next spool job:
 *
 *     {"payload_id":"<ID>"|null,"client_side_id":"<ID>" (LaunchDarkly) |
 *      "write_key":"segW...<CRC32>" (Segment),"status":<status>|null,
 *      ["reason":"<why>",]"time":"<ISO 8601>","events":[<events>]}
 *
 * name is the client-side ID, or the write key (written as its label);
 * body the events: a JSON array, or for lines with a reason (messages
 * that never were a payload) elements joined by ','.
 */

static ngx_int_t
ngx_http_ldseg_dead_letter_line(ngx_http_ldseg_sender_t *s, u_char *pid,
    ngx_uint_t kind, ngx_str_t *name, long code, const char *reason,
    u_char *body, size_t len)
{
    u_char                      *line, *p;
    size_t                       size;
    ngx_tm_t                     tm;
    ngx_http_ldseg_spool_ops_t  *ops;

    size = sizeof("{\"payload_id\":\"\",\"client_side_id\":\"\","
                  "\"status\":null,\"reason\":\"\","
                  "\"time\":\"1970-01-01T00:00:00Z\",\"events\":[]}\n")
           + LDSEG_UUID_LEN + name->len + NGX_HTTP_LDSEG_KEY_LABEL_LEN
           + NGX_INT_T_LEN + 32 + len;

    ops = ngx_http_ldseg_pending(s);
    line = (ops != NULL) ? ngx_pnalloc(ops->pool, size) : NULL;

    if (line == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(line, "{\"payload_id\":", sizeof("{\"payload_id\":") - 1);

    if (pid != NULL) {
        *p++ = '"';
        ldseg_uuid_format((char *) p, pid);
        p += LDSEG_UUID_LEN;
        *p++ = '"';

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    if (kind == NGX_HTTP_LDSEG_SEGMENT) {
        p = ngx_cpymem(p, ",\"write_key\":\"", sizeof(",\"write_key\":\"") - 1);
        p = ngx_http_ldseg_export_key_label(p, name->data, name->len);

    } else {
        p = ngx_sprintf(p, ",\"client_side_id\":\"%V", name);
    }

    if (code) {
        p = ngx_sprintf(p, "\",\"status\":%l", code);

    } else {
        p = ngx_sprintf(p, "\",\"status\":null");
    }

    if (reason != NULL) {
        p = ngx_sprintf(p, ",\"reason\":\"%s\"", reason);
    }

    ngx_gmtime(ngx_time(), &tm);

    p = ngx_sprintf(p, ",\"time\":\"%4d-%02d-%02dT%02d:%02d:%02dZ\","
                    "\"events\":", tm.ngx_tm_year, tm.ngx_tm_mon,
                    tm.ngx_tm_mday, tm.ngx_tm_hour, tm.ngx_tm_min,
                    tm.ngx_tm_sec);

    if (reason != NULL) {
        *p++ = '[';
    }

    p = ngx_cpymem(p, body, len);

    if (reason != NULL) {
        *p++ = ']';
    }

    *p++ = '}';
    *p++ = '\n';

    return ngx_http_ldseg_spool_op_append(ops, &s->lmcf->dead_letter, line,
                                          p - line);
}


static void
ngx_http_ldseg_drop(ngx_http_ldseg_sender_t *s, ngx_http_ldseg_lease_t *l,
    ngx_uint_t n, ngx_uint_t reason)
{
    ngx_http_ldseg_account_t  *a;

    if (l->kind == NGX_HTTP_LDSEG_SEGMENT) {
        ngx_log_error(NGX_LOG_WARN, s->log, 0,
                      "ldseg: %ui exported events dropped: %s", n,
                      ngx_http_ldseg_drops[reason]);

        (void) ngx_atomic_fetch_add(&s->stats->export_dropped, n);

        a = ngx_http_ldseg_queue_account(s->zone, l->cred, l->cred_len);

        if (a != NULL) {
            (void) ngx_atomic_fetch_add(&a->dropped, n);
        }

        return;
    }

    /* accepted events given up on: one line and the counters, by reason */

    ngx_log_error(NGX_LOG_WARN, s->log, 0, "ldseg: %ui events dropped: %s",
                  n, ngx_http_ldseg_drops[reason]);

    (void) ngx_atomic_fetch_add(&s->stats->dropped, n);
    (void) ngx_atomic_fetch_add(&s->stats->dropped_reasons[reason], n);
}


static ngx_str_t
ngx_http_ldseg_client_side_id(ngx_http_ldseg_lease_t *l)
{
    u_char     *p, *last;
    ngx_str_t   id;

    if (l->kind == NGX_HTTP_LDSEG_SEGMENT) {
        /* a write key is a credential: its first characters only */
        id.data = l->cred;
        id.len = ngx_min(l->cred_len, NGX_HTTP_LDSEG_KEY_PREFIX);
        return id;
    }

    /* the last path segment of ".../events/bulk/ID" */

    last = l->url + l->url_len;

    for (p = last; p > l->url && p[-1] != '/'; p--) { /* void */ }

    id.data = p;
    id.len = last - p;

    return id;
}


static void
ngx_http_ldseg_abort_all(void *data)
{
    ngx_http_ldseg_sender_t *s = data;

    ngx_queue_t            *q;
    ldseg_delivery_t        d;
    ngx_http_ldseg_post_t  *post;

    ngx_memzero(&d, sizeof(ldseg_delivery_t));
    d.outcome = LDSEG_DELIVERY_RETRY;

    while (!ngx_queue_empty(&s->posts)) {
        q = ngx_queue_head(&s->posts);
        post = ngx_queue_data(q, ngx_http_ldseg_post_t, queue);

        if (post->test) {
            ngx_http_ldseg_test_done(post, 0, CURLE_ABORTED_BY_CALLBACK);
            ngx_http_ldseg_post_free(s, post);
            continue;
        }

        ngx_http_ldseg_complete(s, &post->lease, &d, 0, NULL, NULL, 0);

        (void) ngx_atomic_fetch_add(&s->stats->posts_failed, 1);

        ngx_http_ldseg_post_free(s, post);
    }
}


void *
ngx_http_ldseg_sender_test(ngx_http_ldseg_sender_t *s, ngx_str_t *url,
    u_char *body, size_t len, ngx_http_ldseg_test_pt handler, void *data)
{
    ssize_t                 n;
    size_t                  got;
    ngx_pool_t             *pool;
    ngx_http_ldseg_post_t  *post;

    if (s == NULL || url->len >= NGX_HTTP_LDSEG_URL_MAX) {
        return NULL;
    }

    pool = ngx_create_pool(len + 4096, s->log);
    if (pool == NULL) {
        return NULL;
    }

    post = ngx_pcalloc(pool, sizeof(ngx_http_ldseg_post_t));
    if (post == NULL) {
        goto failed;
    }

    post->pool = pool;
    post->test = 1;
    post->handler = handler;
    post->data = data;

    post->body = ngx_pnalloc(pool, len);
    if (post->body == NULL) {
        goto failed;
    }

    ngx_memcpy(post->body, body, len);
    post->len = len;

    post->lease.url_len = url->len;
    ngx_memcpy(post->lease.url, url->data, url->len);
    post->lease.nevents = 1;

    /* a payload ID of this process's own, as the queue's */

    for (got = 0; got < 16; got += n) {
        n = getrandom(post->lease.id + got, 16 - got, 0);

        if (n <= 0) {
            if (n == -1 && ngx_errno == NGX_EINTR) {
                n = 0;
                continue;
            }

            goto failed;
        }
    }

    if (ngx_http_ldseg_post_send(s, post) != NGX_OK) {
        /* freed */
        return NULL;
    }

    return post;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


void
ngx_http_ldseg_sender_test_cancel(void *test)
{
    ngx_http_ldseg_post_t *post = test;

    /* the request went away: the POST ends unheard */

    post->handler = NULL;
}


static void
ngx_http_ldseg_test_done(ngx_http_ldseg_post_t *post, long code,
    CURLcode result)
{
    ngx_str_t               error;
    ngx_http_ldseg_test_pt  handler;

    handler = post->handler;

    if (handler == NULL) {
        return;
    }

    post->handler = NULL;

    ngx_str_null(&error);

    if (result != CURLE_OK) {
        error.data = (u_char *) (post->error[0]
                                 ? post->error : curl_easy_strerror(result));
        error.len = ngx_strlen(error.data);
    }

    handler(post->data, code, &error, post->lease.id);
}


static ngx_http_ldseg_spool_ops_t *
ngx_http_ldseg_pending(ngx_http_ldseg_sender_t *s)
{
    ngx_pool_t  *pool;

    /* file operations wait in a pool of their own for the next job */

    if (s->pending.pool != NULL) {
        return &s->pending;
    }

    pool = ngx_create_pool(4096, s->log);
    if (pool == NULL) {
        return NULL;
    }

    if (ngx_http_ldseg_spool_ops_init(&s->pending, pool) != NGX_OK) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    return &s->pending;
}


static ngx_http_ldseg_spool_job_t *
ngx_http_ldseg_spool_tick(ngx_http_ldseg_sender_t *s, ngx_uint_t all,
    ngx_uint_t sync)
{
    ngx_int_t                     rc;
    ngx_pool_t                   *pool;
    ngx_http_ldseg_spool_ops_t   *ops;
    ngx_http_ldseg_spool_job_t   *job;
    ngx_http_ldseg_spool_conf_t  *scf;
    ngx_http_ldseg_alert_out_t    alert;

    if (s->job != NULL) {
        /* one job at a time: the next flush starts the next */
        return NULL;
    }

    ops = ngx_http_ldseg_pending(s);
    if (ops == NULL) {
        return NULL;
    }

    ngx_http_ldseg_queue_reap(s->zone, ngx_current_msec, ops,
                              &s->lmcf->alert, &alert);

    ngx_http_ldseg_alert_log(s, &alert);

    /* a pool of the job's own: freed at once when there is nothing to do */

    pool = ngx_create_pool(2 * NGX_MAX_PATH + 4096, s->log);
    if (pool == NULL) {
        return NULL;
    }

    job = ngx_pcalloc(pool, sizeof(ngx_http_ldseg_spool_job_t));
    if (job == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    job->pool = pool;
    job->ops = *ops;
    job->fd = &s->spool_fd;
    job->size = &s->spool_size;
    job->log = s->log;
    job->handler = ngx_http_ldseg_spool_job_done;
    job->data = s;

    scf = &s->lmcf->spool;

    if (scf->path.data != NULL && !ngx_terminate) {
        job->claims = ngx_array_create(pool, 16,
                                       sizeof(ngx_http_ldseg_spool_claim_t));
        if (job->claims == NULL) {
            ngx_destroy_pool(pool);
            return NULL;
        }

        rc = ngx_http_ldseg_queue_spool_claim(s->zone, ngx_current_msec,
                                              scf->delay, all,
                                              scf->max_size, &scf->path,
                                              &s->spool_file, job);

        if (rc == NGX_OK) {
            s->spool_full_logged = 0;

            job->file = s->spool_file;
            job->fsync = scf->fsync;
            ngx_http_ldseg_spool_name(scf->path.data, scf->path.len,
                                      s->spool_file, job->name);
            ngx_memcpy(job->dir, scf->path.data, scf->path.len);
            job->dir[scf->path.len] = '\0';

        } else if (rc == NGX_BUSY && !s->spool_full_logged) {
            ngx_log_error(NGX_LOG_WARN, s->log, 0,
                          "ldseg_spool \"%V\" reached max_size, events stay "
                          "in memory only", &scf->path);
            s->spool_full_logged = 1;
        }
    }

    if (job->len == 0 && job->ops.ops->nelts == 0) {
        /* nothing to do: the pending pool waits for operations */
        ngx_destroy_pool(pool);
        return NULL;
    }

    /* the job owns the pending operations and their pool now */

    s->pending.pool = NULL;
    s->pending.ops = NULL;
    s->job = job;

    if (sync
        || ngx_http_ldseg_spool_job_start(job, s->lmcf->tp) != NGX_OK)
    {
        ngx_http_ldseg_spool_job_run(job);
        job->handler(job);
    }

    return job;
}


static void
ngx_http_ldseg_spool_job_done(ngx_http_ldseg_spool_job_t *job)
{
    ngx_http_ldseg_sender_t *s = job->data;

    ngx_uint_t                   i, done;
    ngx_http_ldseg_spool_op_t   *op;
    ngx_http_ldseg_spool_ops_t  *ops;

    if (job->len && !job->written) {
        ngx_log_error(NGX_LOG_ERR, s->log, job->err,
                      "ldseg: %s on spool file \"%s\" failed, %ui payloads "
                      "stay in memory only", job->failed, job->name,
                      job->claims->nelts);

    } else if (job->failed) {
        ngx_log_error(NGX_LOG_ERR, s->log, job->err,
                      "ldseg: %s in the spool failed", job->failed);
    }

    op = job->ops.ops->elts;

    for (i = 0; i < job->ops.ops->nelts; i++) {
        if (op[i].err) {
            ngx_log_error(NGX_LOG_ERR, s->log, op[i].err,
                          "ldseg: %s \"%s\" failed",
                          op[i].type == NGX_HTTP_LDSEG_SPOOL_MARK
                          ? "marking a record of"
                          : op[i].type == NGX_HTTP_LDSEG_SPOOL_UNLINK
                            ? "unlinking" : "appending to",
                          op[i].name);
        }
    }

    if (job->len) {

        /* a failed write may have left a torn record: use a new file */

        done = !job->written
                || s->spool_size >= NGX_HTTP_LDSEG_SPOOL_ROTATE;

        ops = ngx_http_ldseg_pending(s);

        if (ops != NULL) {
            ngx_http_ldseg_queue_spool_done(s->zone, job, job->written,
                                            done, ops);
        }

        if (done) {
            if (s->spool_fd != NGX_INVALID_FILE) {
                ngx_close_file(s->spool_fd);
                s->spool_fd = NGX_INVALID_FILE;
            }

            s->spool_file = 0;
        }
    }

    s->job = NULL;

    ngx_destroy_pool(job->ops.pool);
    ngx_destroy_pool(job->pool);
}


static void
ngx_http_ldseg_spool_drain(ngx_http_ldseg_sender_t *s)
{
    ngx_uint_t                   n;
    ngx_http_ldseg_spool_job_t  *job, closing;

    /*
     * Worker exit: everything still in memory is written at once, in
     * this process.  A job the thread pool still runs is waited for (the
     * pool's threads may already be gone, having run it).
     */

    for (n = 0; s->job != NULL && !s->job->complete && n < 500; n++) {
        ngx_msleep(10);
    }

    if (s->job != NULL) {
        if (!s->job->complete) {
            ngx_log_error(NGX_LOG_ALERT, s->log, 0,
                          "ldseg: a spool job did not end");
            return;
        }

        s->job->handler(s->job);
    }

    for (n = 0; n < 64; n++) {
        job = ngx_http_ldseg_spool_tick(s, 1, 1);

        if (job == NULL) {
            break;
        }
    }

    /* this worker's file is closed for good */

    if (s->spool_file != 0) {
        ngx_memzero(&closing, sizeof(ngx_http_ldseg_spool_job_t));
        closing.file = s->spool_file;
        closing.size = &s->spool_size;

        if (ngx_http_ldseg_pending(s) != NULL) {
            ngx_http_ldseg_queue_spool_done(s->zone, &closing, 0, 1,
                                            &s->pending);
        }

        s->spool_file = 0;
    }

    if (s->spool_fd != NGX_INVALID_FILE) {
        ngx_close_file(s->spool_fd);
        s->spool_fd = NGX_INVALID_FILE;
    }

    /* the last marks and unlinks */
    (void) ngx_http_ldseg_spool_tick(s, 1, 1);

    if (s->pending.pool != NULL) {
        ngx_destroy_pool(s->pending.pool);
        s->pending.pool = NULL;
    }
}


static size_t
ngx_http_ldseg_curl_discard(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    return size * nmemb;
}


static u_char *
ngx_http_ldseg_gzip(ngx_http_ldseg_sender_t *s, ngx_pool_t *pool,
    u_char *data, size_t len, size_t *out)
{
    u_char    *buf, *p;
    size_t     bound, n;
    uint32_t   crc;

    /* deflate, no flags, no time, XFL 4 (fastest), OS 3 (Unix): zlib's */

    static const u_char  header[NGX_HTTP_LDSEG_GZIP_HEADER] = {
        0x1f, 0x8b, Z_DEFLATED, 0, 0, 0, 0, 0, 4, 3
    };

    /*
     * Raw deflate by ldseg_deflate() (several times faster than zlib's
     * level 1, with codes learned from the POSTs before) in a gzip header
     * and trailer written here, with the CRC-32 of ldseg_crc32().  Its
     * state, about 260 KB, most of it the hash table, is made once per
     * worker, at the first POST that compresses, and never cleared between
     * POSTs.
     */

    if (s->deflate == NULL) {
        s->deflate = ngx_alloc(sizeof(ldseg_deflate_t), s->log);
        if (s->deflate == NULL) {
            return NULL;
        }

        ldseg_deflate_init(s->deflate);
    }

    n = ldseg_deflate_bound(len);
    if (n == 0) {
        return NULL;
    }

    bound = NGX_HTTP_LDSEG_GZIP_HEADER + n + NGX_HTTP_LDSEG_GZIP_TRAILER;

    buf = ngx_pnalloc(pool, bound);
    if (buf == NULL) {
        return NULL;
    }

    p = ngx_cpymem(buf, header, NGX_HTTP_LDSEG_GZIP_HEADER);

    p += ldseg_deflate(s->deflate, data, len, p);

    /* the CRC-32 and the length modulo 2^32, little-endian */

    crc = ldseg_crc32(0, data, len);

    *p++ = (u_char) crc;
    *p++ = (u_char) (crc >> 8);
    *p++ = (u_char) (crc >> 16);
    *p++ = (u_char) (crc >> 24);

    *p++ = (u_char) len;
    *p++ = (u_char) (len >> 8);
    *p++ = (u_char) (len >> 16);
    *p++ = (u_char) (len >> 24);

    *out = p - buf;

    /* send it compressed only when that is smaller */

    if (*out >= len) {
        return NULL;
    }

    return buf;
}

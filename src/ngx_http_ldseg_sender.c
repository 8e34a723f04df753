
/*
 * Copyright (C) ldseg authors
 *
 * The sender.  libcurl's multi_socket interface is mapped onto nginx's
 * event loop: every socket libcurl opens gets a connection structure with
 * level-triggered read/write events, and libcurl's single timeout is an
 * nginx timer.  The worker therefore never blocks on LaunchDarkly; name
 * resolution happens in libcurl's resolver thread.
 *
 * A payload is leased from the shared queue before it is sent and only
 * acknowledged (removed) after LaunchDarkly answered 2xx; any other outcome
 * gives it back with a pause for its destination, so it is sent again with
 * the same payload ID and the same events.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <curl/curl.h>
#include <sys/random.h>
#include <zlib.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_shm.h"
#include "ngx_http_ldseg_sender.h"
#include "ngx_http_ldseg_spool.h"


#define NGX_HTTP_LDSEG_BACKOFF_BASE   1000


typedef struct {
    ngx_queue_t                   queue;
    ngx_pool_t                   *pool;
    CURL                         *easy;
    struct curl_slist            *headers;
    ngx_http_ldseg_lease_t        lease;
    char                          error[CURL_ERROR_SIZE];
} ngx_http_ldseg_post_t;


typedef struct {
    CURLM                        *multi;
    ngx_http_ldseg_main_conf_t   *lmcf;
    ngx_log_t                    *log;
    ngx_event_t                   flush;
    ngx_event_t                   timer;
    ngx_connection_t              dummy;
    ngx_queue_t                   posts;
    ngx_uint_t                    inflight;
    ngx_msec_t                    exit_deadline;
    z_stream                      zstream;
    unsigned                      zstream_ready:1;
    unsigned                      exiting:1;
    unsigned                      cleaning:1;
    unsigned                      spool_all:1;
} ngx_http_ldseg_sender_t;


static void ngx_http_ldseg_flush_handler(ngx_event_t *ev);
static void ngx_http_ldseg_flush(ngx_http_ldseg_sender_t *s,
    ngx_uint_t full_only);
static ngx_int_t ngx_http_ldseg_post(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_lease_t *l);
static void ngx_http_ldseg_post_free(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post);
static void ngx_http_ldseg_post_done(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post, CURLcode result);
static void ngx_http_ldseg_check_multi(ngx_http_ldseg_sender_t *s);
static void ngx_http_ldseg_abort_all(ngx_http_ldseg_sender_t *s);
static int ngx_http_ldseg_curl_socket(CURL *easy, curl_socket_t fd,
    int what, void *userp, void *socketp);
static int ngx_http_ldseg_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_ldseg_curl_timer_handler(ngx_event_t *ev);
static void ngx_http_ldseg_curl_event_handler(ngx_event_t *ev);
static size_t ngx_http_ldseg_curl_discard(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static u_char *ngx_http_ldseg_gzip(ngx_http_ldseg_sender_t *s,
    ngx_pool_t *pool, u_char *data, size_t len, size_t *out);


static ngx_http_ldseg_sender_t  *ngx_http_ldseg_sender;


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

    s->multi = curl_multi_init();
    if (s->multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "ldseg: curl_multi_init() failed");
        return NGX_ERROR;
    }

    s->lmcf = lmcf;
    s->log = cycle->log;
    ngx_queue_init(&s->posts);

    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_ldseg_curl_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_ldseg_curl_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);

    /* debug logging reads the timer's data as a connection */
    s->dummy.fd = (ngx_socket_t) -1;

    s->timer.handler = ngx_http_ldseg_curl_timer_handler;
    s->timer.data = &s->dummy;
    s->timer.log = cycle->log;
    s->timer.cancelable = 1;

    s->flush.handler = ngx_http_ldseg_flush_handler;
    s->flush.data = &s->dummy;
    s->flush.log = cycle->log;
    s->flush.cancelable = 1;

    ngx_http_ldseg_sender = s;

    ngx_add_timer(&s->flush, lmcf->flush_interval);

    return NGX_OK;
}


void
ngx_http_ldseg_sender_exit(ngx_cycle_t *cycle)
{
    ngx_http_ldseg_sender_t  *s;

    s = ngx_http_ldseg_sender;

    if (s == NULL) {
        return;
    }

    ngx_http_ldseg_abort_all(s);

    /* what could not be delivered goes to the spool, if there is one */
    ngx_http_ldseg_spool_write(s->lmcf->shm_zone, s->log, 1);
    ngx_http_ldseg_spool_close(s->lmcf->shm_zone, s->log);

    /* the socket callback may still run here; it must find s */
    s->cleaning = 1;
    curl_multi_cleanup(s->multi);
    s->multi = NULL;

    curl_global_cleanup();

    if (s->zstream_ready) {
        deflateEnd(&s->zstream);
    }

    ngx_http_ldseg_shm_release(s->lmcf->shm_zone);

    ngx_http_ldseg_sender = NULL;
}


void
ngx_http_ldseg_sender_queued(ngx_uint_t full)
{
    ngx_http_ldseg_sender_t  *s;

    s = ngx_http_ldseg_sender;

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
ngx_http_ldseg_sender_full(void)
{
    ngx_http_ldseg_sender_t  *s;

    s = ngx_http_ldseg_sender;

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


void
ngx_http_ldseg_random(u_char *buf, size_t len)
{
    size_t          i;
    static size_t   avail;
    static u_char   pool[1024];

    /* one getrandom() for 64 payload IDs; the pool is per process */

    if (len > sizeof(pool)) {
        goto weak;
    }

    if (avail < len) {
        if (getrandom(pool, sizeof(pool), GRND_NONBLOCK)
            != (ssize_t) sizeof(pool))
        {
            goto weak;
        }

        avail = sizeof(pool);
    }

    ngx_memcpy(buf, pool + sizeof(pool) - avail, len);
    avail -= len;

    return;

weak:

    for (i = 0; i < len; i++) {
        buf[i] = (u_char) ngx_random();
    }
}


static void
ngx_http_ldseg_flush_handler(ngx_event_t *ev)
{
    ngx_http_ldseg_usage_t    u;
    ngx_http_ldseg_sender_t  *s;

    s = ngx_http_ldseg_sender;

    if (s == NULL || ngx_terminate) {
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
            ngx_http_ldseg_spool_write(s->lmcf->shm_zone, ev->log, 1);
            return;
        }
    }

    ngx_http_ldseg_shm_usage(s->lmcf->shm_zone, &u);

    if (ngx_exiting && u.events == 0 && s->inflight == 0) {
        return;
    }

    /*
     * Re-arm first.  While events wait, the timer keeps an exiting worker
     * alive; an idle worker exits at once.
     */

    ev->cancelable = (u.events == 0);

    if (!ev->timer_set) {
        ngx_add_timer(ev, ngx_exiting ? 100 : s->lmcf->flush_interval);
    }

    /*
     * The timer sends everything; a flush posted because a payload filled
     * up sends full payloads only, so that it does not also send the one
     * that just started to fill.
     */

    ngx_http_ldseg_flush(s, !ev->timedout && !ngx_exiting);

    ev->timedout = 0;

    /* what waited longer than the spool delay is written to disk */
    ngx_http_ldseg_spool_write(s->lmcf->shm_zone, ev->log, s->spool_all);
    s->spool_all = 0;
}


static void
ngx_http_ldseg_flush(ngx_http_ldseg_sender_t *s, ngx_uint_t full_only)
{
    u_char                      rnd[16];
    ngx_int_t                   rc;
    ngx_msec_t                  lease_time;
    ngx_http_ldseg_lease_t      l;
    ngx_http_ldseg_spool_ref_t  ref;

    lease_time = s->lmcf->timeout + s->lmcf->connect_timeout + 10000;

    while (s->inflight < s->lmcf->max_inflight) {

        ngx_http_ldseg_random(rnd, sizeof(rnd));

        if (ngx_http_ldseg_shm_lease(s->lmcf->shm_zone, ngx_current_msec,
                                     lease_time, full_only, rnd, &l)
            != NGX_OK)
        {
            return;
        }

        rc = ngx_http_ldseg_post(s, &l);

        if (rc == NGX_OK) {
            continue;
        }

        ngx_http_ldseg_shm_complete(s->lmcf->shm_zone, &l,
                                    rc == NGX_DECLINED ? NGX_HTTP_LDSEG_CORRUPT
                                                       : NGX_HTTP_LDSEG_RETRY,
                                    0, ngx_current_msec,
                                    NGX_HTTP_LDSEG_BACKOFF_BASE, &ref);

        ngx_http_ldseg_spool_forget(s->lmcf->shm_zone, &ref, s->log);

        if (rc == NGX_ERROR) {
            return;
        }
    }
}


static ngx_int_t
ngx_http_ldseg_post(ngx_http_ldseg_sender_t *s, ngx_http_ldseg_lease_t *l)
{
    u_char                 *body, *last, *gz, *url;
    size_t                  len, gzlen;
    ngx_int_t               rc;
    CURL                   *easy;
    ngx_pool_t             *pool;
    struct curl_slist      *h;
    ngx_http_ldseg_post_t  *post;
    u_char                  id[sizeof("X-LaunchDarkly-Payload-ID: ")
                               + LDSEG_UUID_LEN];

    pool = ngx_create_pool(l->len + l->slen + l->dest->url_len + 2048,
                           s->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    post = ngx_pcalloc(pool, sizeof(ngx_http_ldseg_post_t));
    body = ngx_pnalloc(pool, l->sfile ? 1 : l->len + 2);
    url = ngx_pnalloc(pool, l->dest->url_len + 1);

    if (post == NULL || body == NULL || url == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    post->pool = pool;
    post->lease = *l;

    if (l->sfile) {
        /* the payload is on disk only */

        rc = ngx_http_ldseg_spool_read(s->lmcf->shm_zone, l, pool, &body,
                                       &len, s->log);
        if (rc != NGX_OK) {
            ngx_destroy_pool(pool);
            return rc;
        }

    } else {
        last = ngx_http_ldseg_shm_copy(l, body);
        len = last - body;
    }

    ngx_memcpy(url, l->dest->url, l->dest->url_len);
    url[l->dest->url_len] = '\0';

    gz = NULL;
    gzlen = 0;

    if (s->lmcf->gzip && len > 512) {
        gz = ngx_http_ldseg_gzip(s, pool, body, len, &gzlen);
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    post->easy = easy;

    last = ngx_cpymem(id, "X-LaunchDarkly-Payload-ID: ",
                      sizeof("X-LaunchDarkly-Payload-ID: ") - 1);
    ldseg_uuid_format((char *) last, l->id);
    last[LDSEG_UUID_LEN] = '\0';

    h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) {
        post->headers = h;
        h = curl_slist_append(h, "X-LaunchDarkly-Event-Schema: 4");
    }
    if (h) {
        h = curl_slist_append(h, (char *) id);
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

    curl_easy_setopt(easy, CURLOPT_URL, (char *) url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);

    if (gz) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *) gz);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) gzlen);

    } else {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *) body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) len);
    }

    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, post->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) s->lmcf->timeout);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) s->lmcf->connect_timeout);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, post);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, post->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_ldseg_curl_discard);

    ngx_queue_insert_tail(&s->posts, &post->queue);
    s->inflight++;

    /* a transfer is running: a graceful exit waits for it */
    s->timer.cancelable = 0;

    if (curl_multi_add_handle(s->multi, easy) != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, s->log, 0,
                      "ldseg: curl_multi_add_handle() failed");
        ngx_http_ldseg_post_free(s, post);
        return NGX_ERROR;
    }

    (void) ngx_atomic_fetch_add(
                    &ngx_http_ldseg_shm_stats(s->lmcf->shm_zone)->posts_sent,
                    1);

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
        if (s->multi) {
            curl_multi_remove_handle(s->multi, post->easy);
        }

        curl_easy_cleanup(post->easy);
    }

    if (post->headers) {
        curl_slist_free_all(post->headers);
    }

    if (s->inflight == 0) {
        s->timer.cancelable = 1;
    }

    ngx_destroy_pool(post->pool);
}


static void
ngx_http_ldseg_check_multi(ngx_http_ldseg_sender_t *s)
{
    int                     left;
    CURLMsg                *msg;
    ngx_uint_t              done;
    ngx_http_ldseg_post_t  *post;

    done = 0;

    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        post = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &post);

        if (post == NULL) {
            continue;
        }

        ngx_http_ldseg_post_done(s, post, msg->data.result);
        done = 1;
    }

    if (done && !ngx_terminate) {
        ngx_http_ldseg_flush(s, !ngx_exiting);
    }
}


static void
ngx_http_ldseg_post_done(ngx_http_ldseg_sender_t *s,
    ngx_http_ldseg_post_t *post, CURLcode result)
{
    long                         code;
    u_char                      *id, *last;
    curl_off_t                   retry_after;
    ngx_msec_t                   delay;
    ngx_uint_t                   attempts, shift;
    ngx_http_ldseg_lease_t      *l;
    ngx_http_ldseg_stats_t      *stats;
    ngx_http_ldseg_outcome_e     outcome;
    ngx_http_ldseg_spool_ref_t   ref;

    l = &post->lease;
    stats = ngx_http_ldseg_shm_stats(s->lmcf->shm_zone);

    code = 0;
    retry_after = 0;

    if (result == CURLE_OK) {
        curl_easy_getinfo(post->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(post->easy, CURLINFO_RETRY_AFTER, &retry_after);
    }

    /* exponential backoff with jitter, capped by ldseg_retry_max_delay */

    attempts = l->attempts;
    shift = attempts < 16 ? attempts : 16;
    delay = (ngx_msec_t) NGX_HTTP_LDSEG_BACKOFF_BASE << shift;

    if (delay > s->lmcf->max_backoff) {
        delay = s->lmcf->max_backoff;
    }

    delay = delay / 2 + ngx_random() % (delay / 2 + 1);

    if (code >= 200 && code < 300) {
        outcome = NGX_HTTP_LDSEG_DELIVERED;

        (void) ngx_atomic_fetch_add(&stats->posts_succeeded, 1);
        (void) ngx_atomic_fetch_add(&stats->delivered, l->nevents);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                       "ldseg post: %ui events delivered, status %l",
                       l->nevents, code);

    } else {
        (void) ngx_atomic_fetch_add(&stats->posts_failed, 1);
        (void) ngx_atomic_fetch_add(&stats->failed, l->nevents);

        if (code == 413) {
            outcome = NGX_HTTP_LDSEG_SPLIT;

        } else {
            outcome = NGX_HTTP_LDSEG_RETRY;
        }

        if (code == 401 || code == 403 || code == 404) {
            /* a wrong client-side ID is probed at the slowest rate */
            delay = s->lmcf->max_backoff;

            if (l->dest->last_status != (ngx_uint_t) code) {
                id = ngx_strlchr(l->dest->url + 8,
                                 l->dest->url + l->dest->url_len, '/');

                while (id != NULL) {
                    last = ngx_strlchr(id + 1,
                                       l->dest->url + l->dest->url_len, '/');
                    if (last == NULL) {
                        break;
                    }

                    id = last;
                }

                ngx_log_error(NGX_LOG_ERR, s->log, 0,
                              "ldseg: LaunchDarkly answered %l for client-side "
                              "ID \"%*s\", its events are kept and sent "
                              "again every %M ms", code,
                              id ? (size_t) (l->dest->url + l->dest->url_len
                                             - id - 1)
                                 : (size_t) 0,
                              id ? id + 1 : (u_char *) "", delay);
            }

        } else if (retry_after > 0) {
            delay = (ngx_msec_t) retry_after * 1000;

            if (delay > 3600 * 1000) {
                delay = 3600 * 1000;
            }
        }

        if (result != CURLE_OK) {
            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "ldseg: POST to LaunchDarkly failed: %s, "
                          "%ui events requeued",
                          post->error[0] ? post->error
                                         : curl_easy_strerror(result),
                          l->nevents);

        } else if (code != 401 && code != 403 && code != 404) {
            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "ldseg: POST to LaunchDarkly failed: status %l, "
                          "%ui events requeued, next try in %M ms",
                          code, l->nevents, delay);
        }
    }

    ngx_http_ldseg_shm_complete(s->lmcf->shm_zone, l, outcome,
                                (ngx_uint_t) code, ngx_current_msec, delay,
                                &ref);

    ngx_http_ldseg_spool_forget(s->lmcf->shm_zone, &ref, s->log);

    ngx_http_ldseg_post_free(s, post);
}


static void
ngx_http_ldseg_abort_all(ngx_http_ldseg_sender_t *s)
{
    ngx_queue_t                 *q;
    ngx_http_ldseg_post_t       *post;
    ngx_http_ldseg_spool_ref_t   ref;

    while (!ngx_queue_empty(&s->posts)) {
        q = ngx_queue_head(&s->posts);
        post = ngx_queue_data(q, ngx_http_ldseg_post_t, queue);

        ngx_http_ldseg_shm_complete(s->lmcf->shm_zone, &post->lease,
                                    NGX_HTTP_LDSEG_RETRY, 0,
                                    ngx_current_msec, 0, &ref);

        (void) ngx_atomic_fetch_add(
                   &ngx_http_ldseg_shm_stats(s->lmcf->shm_zone)->posts_failed,
                   1);

        ngx_http_ldseg_post_free(s, post);
    }
}


static int
ngx_http_ldseg_curl_socket(CURL *easy, curl_socket_t fd, int what,
    void *userp, void *socketp)
{
    ngx_http_ldseg_sender_t *s = userp;

    ngx_connection_t  *c;

    c = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (c == NULL) {
            return 0;
        }

        /* libcurl closes the socket itself: only forget it here */

        if (c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;

        if (!s->cleaning) {
            curl_multi_assign(s->multi, fd, NULL);
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_get_connection(fd, s->log);
        if (c == NULL) {
            return -1;
        }

        c->data = s;
        c->read->handler = ngx_http_ldseg_curl_event_handler;
        c->write->handler = ngx_http_ldseg_curl_event_handler;
        c->read->log = s->log;
        c->write->log = s->log;

        curl_multi_assign(s->multi, fd, c);
    }

    /*
     * Level-triggered: libcurl may leave data unread, and an edge-triggered
     * event would then never fire again.
     */

    if (what & CURL_POLL_IN) {
        if (!c->read->active
            && ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            return -1;
        }

    } else if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (what & CURL_POLL_OUT) {
        if (!c->write->active
            && ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            return -1;
        }

    } else if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


static int
ngx_http_ldseg_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_ldseg_sender_t *s = userp;

    if (timeout_ms < 0) {
        if (s->timer.timer_set) {
            ngx_del_timer(&s->timer);
        }

        return 0;
    }

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    ngx_add_timer(&s->timer, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_ldseg_curl_timer_handler(ngx_event_t *ev)
{
    int                       running;
    ngx_http_ldseg_sender_t  *s;

    s = ngx_http_ldseg_sender;

    if (s == NULL || s->multi == NULL) {
        return;
    }

    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);

    ngx_http_ldseg_check_multi(s);
}


static void
ngx_http_ldseg_curl_event_handler(ngx_event_t *ev)
{
    int                       running, action;
    ngx_socket_t              fd;
    ngx_connection_t         *c;
    ngx_http_ldseg_sender_t  *s;

    c = ev->data;
    s = c->data;

    if (c->close) {
        /* worker_shutdown_timeout: give everything back and stop */
        ngx_http_ldseg_abort_all(s);
        return;
    }

    fd = c->fd;
    action = ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;

    /* c may be freed inside: libcurl can remove the socket */
    curl_multi_socket_action(s->multi, fd, action, &running);

    ngx_http_ldseg_check_multi(s);
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
    u_char    *buf;
    size_t     bound;
    z_stream  *z;

    /*
     * One deflate state per worker, reset for every POST: setting it up
     * costs more than compressing a typical payload.
     */

    z = &s->zstream;

    if (!s->zstream_ready) {
        if (deflateInit2(z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY)
            != Z_OK)
        {
            return NULL;
        }

        s->zstream_ready = 1;

    } else if (deflateReset(z) != Z_OK) {
        return NULL;
    }

    bound = deflateBound(z, len) + 32;

    buf = ngx_pnalloc(pool, bound);
    if (buf == NULL) {
        return NULL;
    }

    z->next_in = data;
    z->avail_in = len;
    z->next_out = buf;
    z->avail_out = bound;

    if (deflate(z, Z_FINISH) != Z_STREAM_END) {
        return NULL;
    }

    *out = bound - z->avail_out;

    /* send it compressed only when that is smaller */

    if (*out >= len) {
        return NULL;
    }

    return buf;
}

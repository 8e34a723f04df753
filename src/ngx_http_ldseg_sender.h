
/*
 * Copyright (C) ldseg authors
 *
 * The sender: a flush timer in every worker leases payloads from the
 * shared queue and POSTs them to LaunchDarkly through libcurl on nginx's
 * event loop (ngx_http_ldseg_curl.c), and hands what waits too long to
 * the spool.  Its state is per process and hangs off the main
 * configuration (lmcf->sender), the flush event and the curl adapter.
 */


#ifndef _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_
#define _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_ldseg_module.h"


/*
 * What every POST of events to LaunchDarkly carries, whichever way it
 * goes (the queue's libcurl or a "ldseg_deliver" subrequest), besides
 * "User-Agent: " NGX_HTTP_LDSEG_USER_AGENT
 */
#define NGX_HTTP_LDSEG_JSON           "application/json"
#define NGX_HTTP_LDSEG_SCHEMA         "X-LaunchDarkly-Event-Schema"
#define NGX_HTTP_LDSEG_SCHEMA_VERSION "4"
#define NGX_HTTP_LDSEG_PAYLOAD_ID     "X-LaunchDarkly-Payload-ID"


/* starts the sender in a worker; NGX_OK or NGX_ERROR */
ngx_int_t ngx_http_ldseg_sender_init(ngx_cycle_t *cycle,
    ngx_http_ldseg_main_conf_t *lmcf);

/* aborts transfers, spools what is left, gives back leases, frees libcurl */
void ngx_http_ldseg_sender_exit(ngx_http_ldseg_main_conf_t *lmcf);

/* events were queued; full: a payload is full, flush it now */
void ngx_http_ldseg_sender_queued(ngx_http_ldseg_sender_t *s,
    ngx_uint_t full);

/* the zone is full: spool what is in memory now */
void ngx_http_ldseg_sender_full(ngx_http_ldseg_sender_t *s);

/*
 * Segment messages of write key key that no POST can deliver (over
 * Segment's 32 KB: msgs, len bytes of them joined by ','): one line with
 * "reason":"too_large" for ldseg_dead_letter, copied and written by the
 * next spool job.  NGX_OK; NGX_DECLINED: no ldseg_dead_letter (or no
 * sender in this process); NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_sender_dead_letter(ngx_http_ldseg_sender_t *s,
    ngx_str_t *key, u_char *msgs, size_t len);

/*
 * A POST body (len bytes at data) as the sender sends it: gzip from pool
 * with *out its length, when "ldseg_gzip" is on, the body is over 512
 * bytes and gzip makes it smaller; NULL when it goes as it is (s NULL
 * too: not a worker).
 */
u_char *ngx_http_ldseg_sender_encode(ngx_http_ldseg_sender_t *s,
    ngx_pool_t *pool, u_char *data, size_t len, size_t *out);


/*
 * The answer to a test POST: status 0 when there was none (error says
 * why), id the payload ID it carried
 */
typedef void (*ngx_http_ldseg_test_pt)(void *data, long status,
    ngx_str_t *error, u_char *id);

/*
 * POSTs body (a JSON array, copied) to url now, outside the queue, with a
 * new payload ID; handler(data, ...) is called once with the answer,
 * within ldseg_timeout.  Returns a handle for
 * ngx_http_ldseg_sender_test_cancel(), or NULL (nothing will be called).
 */
void *ngx_http_ldseg_sender_test(ngx_http_ldseg_sender_t *s, ngx_str_t *url,
    u_char *body, size_t len, ngx_http_ldseg_test_pt handler, void *data);

/* the handler of a test POST is no longer to be called */
void ngx_http_ldseg_sender_test_cancel(void *test);


#endif /* _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_ */

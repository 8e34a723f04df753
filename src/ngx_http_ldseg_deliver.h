
/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_deliver uri": a request's events POSTed to LaunchDarkly through
 * nginx subrequests to a location (typically one that proxy_passes to
 * LaunchDarkly), all in parallel, and the client answered once every one
 * has finished.  Nothing is queued.
 */


#ifndef _NGX_HTTP_LDSEG_DELIVER_H_INCLUDED_
#define _NGX_HTTP_LDSEG_DELIVER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ldseg.h"


/*
 * Subrequests of one request in flight at most; a request with more
 * chunks starts the next as earlier ones finish.  Segment's 2500 messages
 * per batch bound the chunks of a request, and 413s, whose halves are
 * split again down to single messages, add at most two for each message:
 * far below nginx's 65535 subrequests of a request.
 */
#define NGX_HTTP_LDSEG_DELIVER_PARALLEL  32


/* what became of a request's subrequests */
typedef struct {
    ngx_uint_t                    sent;
    ngx_uint_t                    accepted;
    ngx_uint_t                    failed;     /* 413s that were split too */
    ngx_uint_t                    dropped;    /* events of single messages
                                                 answered 413 */
    ngx_uint_t                    status;     /* of the first failure */
    unsigned                      ok:1;       /* every event accepted */
} ngx_http_ldseg_deliver_result_t;


/*
 * Called once in the main request when every subrequest has finished
 * (ok or not); the handler finalizes r.
 */
typedef void (*ngx_http_ldseg_deliver_pt)(ngx_http_request_t *r,
    void *data, ngx_http_ldseg_deliver_result_t *dr);

/*
 * Called instead of the handler when the request ends before its
 * subrequests do (the client went away), from the request pool's
 * cleanup: the counts of what was sent, those in flight as failed.
 */
typedef void (*ngx_http_ldseg_deliver_end_pt)(void *data,
    ngx_http_ldseg_deliver_result_t *dr);


/*
 * Starts the subrequests that POST res's events to uri, divided as the
 * queue divides them (ldseg_result_run()), each body a JSON array,
 * gzipped as the sender would, with the sender's headers and a payload
 * ID of its own; $ldseg_events_path is "/events/bulk/<id>" in them.
 * NGX_DONE: the request waits (r->main->count is held) until handler is
 * called; NGX_ERROR: nothing was started.
 */
ngx_int_t ngx_http_ldseg_deliver(ngx_http_request_t *r, ngx_str_t *uri,
    ngx_str_t *id, ldseg_result_t *res, ngx_http_ldseg_deliver_pt handler,
    ngx_http_ldseg_deliver_end_pt end, void *data);

/* $ldseg_events_path */
ngx_int_t ngx_http_ldseg_events_path_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_LDSEG_DELIVER_H_INCLUDED_ */

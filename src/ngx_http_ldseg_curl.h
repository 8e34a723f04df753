
/*
 * Copyright (C) ldseg authors
 *
 * libcurl's multi_socket interface on nginx's event loop: the sockets
 * libcurl opens get level-triggered nginx events and its single timeout
 * is an nginx timer.  This file knows nothing of what is sent; a finished
 * transfer is handed to the owner's done handler.
 */


#ifndef _NGX_HTTP_LDSEG_CURL_H_INCLUDED_
#define _NGX_HTTP_LDSEG_CURL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <curl/curl.h>


/* a transfer ended; easy is still in the multi handle */
typedef void (*ngx_http_ldseg_curl_done_pt)(void *data, CURL *easy,
    CURLcode result);

/* worker_shutdown_timeout closed a socket: abort every transfer */
typedef void (*ngx_http_ldseg_curl_abort_pt)(void *data);


typedef struct {
    CURLM                        *multi;
    ngx_log_t                    *log;
    ngx_event_t                   timer;
    ngx_connection_t              dummy;
    ngx_uint_t                    transfers;
    ngx_http_ldseg_curl_done_pt   done;
    ngx_http_ldseg_curl_abort_pt  abort;
    void                         *data;
    unsigned                      cleaning:1;
} ngx_http_ldseg_curl_t;


/*
 * Sets up a multi handle in cu (owned by the caller, allocated for the
 * process's life); libcurl must be initialized.  NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_curl_init(ngx_http_ldseg_curl_t *cu, ngx_log_t *log);

/* starts a transfer; NGX_OK or NGX_ERROR (nothing started) */
ngx_int_t ngx_http_ldseg_curl_add(ngx_http_ldseg_curl_t *cu, CURL *easy);

/* takes a transfer out of the multi handle (not freed) */
void ngx_http_ldseg_curl_remove(ngx_http_ldseg_curl_t *cu, CURL *easy);

/* frees the multi handle; the socket callback may still run inside */
void ngx_http_ldseg_curl_cleanup(ngx_http_ldseg_curl_t *cu);


#endif /* _NGX_HTTP_LDSEG_CURL_H_INCLUDED_ */


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


#endif /* _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_ */

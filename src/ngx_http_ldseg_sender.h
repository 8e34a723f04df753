
/*
 * Copyright (C) ldseg authors
 *
 * The sender: a flush timer in every worker leases payloads from the
 * shared queue and POSTs them to LaunchDarkly with libcurl's multi
 * interface, driven by nginx's event loop.
 */


#ifndef _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_
#define _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_ldseg_module.h"


/* starts the sender in a worker; NGX_OK or NGX_ERROR */
ngx_int_t ngx_http_ldseg_sender_init(ngx_cycle_t *cycle,
    ngx_http_ldseg_main_conf_t *lmcf);

/* aborts transfers, gives back leases and frees libcurl */
void ngx_http_ldseg_sender_exit(ngx_cycle_t *cycle);

/* events were queued; full: a payload is full, flush it now */
void ngx_http_ldseg_sender_queued(ngx_uint_t full);

/* the zone is full: spool what is in memory now */
void ngx_http_ldseg_sender_full(void);

/* fills 16 random bytes */
void ngx_http_ldseg_random(u_char *buf, size_t len);


#endif /* _NGX_HTTP_LDSEG_SENDER_H_INCLUDED_ */


/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_dedupe": the messageIds accepted within a window, shared by all
 * workers in a zone of their own, so that a message a client sends again
 * (a retry after a lost answer) is answered and not sent twice.
 */


#ifndef _NGX_HTTP_LDSEG_DEDUPE_H_INCLUDED_
#define _NGX_HTTP_LDSEG_DEDUPE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ldseg.h"


/* the messageIds of one request between reserve and commit or release */
typedef struct {
    ngx_shm_zone_t               *zone;
    ldseg_result_t               *res;
    ngx_uint_t                   *reserved;  /* message indexes */
    ngx_uint_t                    nreserved;
    ngx_uint_t                    unremembered;
    u_char                        scope[8];  /* of the write key */
} ngx_http_ldseg_dedupe_t;


typedef struct {
    ngx_uint_t                    entries;
    size_t                        size;
    ngx_uint_t                    evicted;
    ngx_uint_t                    unremembered;
} ngx_http_ldseg_dedupe_usage_t;


/* "ldseg_dedupe zone=NAME:SIZE [window=time]" directive handler */
char *ngx_http_ldseg_dedupe(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * Looks up the messageIds of res's accepted messages, scoped by
 * write_key, in one lock round.  Each one accepted within the window, or
 * earlier in res, is marked a duplicate in res (ldseg_result_duplicate(),
 * then ldseg_result_compact()); each other one is reserved for this
 * request until ngx_http_ldseg_dedupe_commit() remembers it or
 * ngx_http_ldseg_dedupe_release() forgets it, one of which must follow
 * before the request's handler returns.  d->reserved is allocated from
 * pool.
 *
 * NGX_OK; NGX_BUSY when another request is accepting one of these
 * messageIds right now (nothing is reserved, nothing marked: the client
 * should retry); NGX_ERROR on allocation failure (nothing reserved).
 * A message the zone cannot hold even after evicting older entries is
 * accepted without being remembered (d->unremembered counts them).
 */
ngx_int_t ngx_http_ldseg_dedupe_reserve(ngx_shm_zone_t *zone,
    ngx_str_t *write_key, ldseg_result_t *res, ngx_pool_t *pool,
    ngx_http_ldseg_dedupe_t *d);

/* the reserved messageIds were accepted: they are remembered for window */
void ngx_http_ldseg_dedupe_commit(ngx_http_ldseg_dedupe_t *d);

/* the reserved messageIds were not accepted: they are forgotten */
void ngx_http_ldseg_dedupe_release(ngx_http_ldseg_dedupe_t *d);

/* the zone's gauges and counters, for the status page */
void ngx_http_ldseg_dedupe_usage(ngx_shm_zone_t *zone,
    ngx_http_ldseg_dedupe_usage_t *u);


#endif /* _NGX_HTTP_LDSEG_DEDUPE_H_INCLUDED_ */


/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_zone": the shared memory zone that holds the queue, its
 * initialization (structures only) and the handover of a resized zone's
 * queue once a reload is committed.
 */


#ifndef _NGX_HTTP_LDSEG_ZONE_H_INCLUDED_
#define _NGX_HTTP_LDSEG_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* "ldseg_zone NAME SIZE" directive handler */
char *ngx_http_ldseg_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * The configuration of cycle is committed (init_module): a zone that a
 * resize copied from stops sending what was copied.  NGX_OK.
 */
ngx_int_t ngx_http_ldseg_zone_commit(ngx_shm_zone_t *zone);


#endif /* _NGX_HTTP_LDSEG_ZONE_H_INCLUDED_ */

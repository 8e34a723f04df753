
/*
 * Copyright (C) ldseg authors
 *
 * The durable spool ("ldseg_spool"): payloads that were not delivered
 * within a short delay are appended to files in a local directory, so a
 * crash of every nginx process, a quit during an outage or an outage longer
 * than the zone can absorb loses nothing; the next start replays them.
 */


#ifndef _NGX_HTTP_LDSEG_SPOOL_H_INCLUDED_
#define _NGX_HTTP_LDSEG_SPOOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_ldseg_shm.h"


typedef struct {
    ngx_str_t                     path;      /* NULL data: no spool */
    off_t                         max_size;
    ngx_msec_t                    delay;
    ngx_flag_t                    fsync;
} ngx_http_ldseg_spool_conf_t;


/* "ldseg_spool PATH [max_size=SIZE] [delay=TIME] [fsync=on|off]" */
char *ngx_http_ldseg_spool_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Loads the spool directory into a fresh zone (master, at start): every
 * intact record becomes a payload kept on disk only.  Corrupt or truncated
 * records are skipped with a log line.  NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_spool_load(ngx_shm_zone_t *zone, ngx_log_t *log);

/*
 * Writes payloads older than the spool delay (all of them when all is set)
 * to this worker's spool file; called from the flush timer and at exit.
 */
void ngx_http_ldseg_spool_write(ngx_shm_zone_t *zone, ngx_log_t *log,
    ngx_uint_t all);

/*
 * Reads a payload kept on disk only, allocating from pool; *body is the
 * JSON array to POST.  NGX_OK, NGX_DECLINED (corrupt or missing: the
 * caller drops and counts the payload) or NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_spool_read(ngx_shm_zone_t *zone,
    ngx_http_ldseg_lease_t *l, ngx_pool_t *pool, u_char **body, size_t *len,
    ngx_log_t *log);

/*
 * After the zone let go of a payload: unlinks a file that holds nothing
 * more and marks the payload's record as done.
 */
void ngx_http_ldseg_spool_forget(ngx_shm_zone_t *zone,
    ngx_http_ldseg_spool_ref_t *ref, ngx_log_t *log);

/* unlinks spool file number n */
void ngx_http_ldseg_spool_unlink(ngx_shm_zone_t *zone, uint32_t n,
    ngx_log_t *log);

/* closes this worker's spool file (worker exit) */
void ngx_http_ldseg_spool_close(ngx_shm_zone_t *zone, ngx_log_t *log);


#endif /* _NGX_HTTP_LDSEG_SPOOL_H_INCLUDED_ */

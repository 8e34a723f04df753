
/*
 * Copyright (C) ldseg authors
 *
 * The shared-memory queue: destinations (one per events URL and client-side
 * ID), payloads (the events of one future POST) and chunks (the events one
 * request added to a payload), plus the counters every worker bumps.
 */


#ifndef _NGX_HTTP_LDSEG_SHM_H_INCLUDED_
#define _NGX_HTTP_LDSEG_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ldseg.h"


#define NGX_HTTP_LDSEG_LAYOUT         2


/* reasons a message is rejected; the order is that of ngx_http_ldseg_reasons */
#define NGX_HTTP_LDSEG_NREASONS       16
#define NGX_HTTP_LDSEG_REASON_FULL    14
#define NGX_HTTP_LDSEG_REASON_OTHER   15

/* reasons an accepted event is given up on */
#define NGX_HTTP_LDSEG_NDROPS         3
#define NGX_HTTP_LDSEG_DROP_TOO_LARGE 0
#define NGX_HTTP_LDSEG_DROP_CORRUPT   1
#define NGX_HTTP_LDSEG_DROP_NO_ROOM   2


typedef struct {
    ngx_atomic_t                  requests;
    ngx_atomic_t                  received;
    ngx_atomic_t                  accepted;
    ngx_atomic_t                  rejected;
    ngx_atomic_t                  skipped;
    ngx_atomic_t                  translated;
    ngx_atomic_t                  queued;
    ngx_atomic_t                  delivered;
    ngx_atomic_t                  failed;
    ngx_atomic_t                  dropped;
    ngx_atomic_t                  posts_sent;
    ngx_atomic_t                  posts_succeeded;
    ngx_atomic_t                  posts_failed;
    ngx_atomic_t                  lease_expired;
    ngx_atomic_t                  spooled;
    ngx_atomic_t                  replayed;
    ngx_atomic_t                  rejected_reasons[NGX_HTTP_LDSEG_NREASONS];
    ngx_atomic_t                  dropped_reasons[NGX_HTTP_LDSEG_NDROPS];
} ngx_http_ldseg_stats_t;


/* a spool file: payloads whose durable copy it holds are "live" */
typedef struct {
    ngx_queue_t                   queue;
    uint32_t                      number;
    ngx_pid_t                     writer;
    ngx_uint_t                    live;
    off_t                         size;
} ngx_http_ldseg_sfile_t;


typedef struct ngx_http_ldseg_chunk_s  ngx_http_ldseg_chunk_t;

struct ngx_http_ldseg_chunk_s {
    ngx_http_ldseg_chunk_t       *next;
    uint32_t                      nevents;
    uint32_t                      len;
    u_char                        data[1];
};


typedef struct ngx_http_ldseg_dest_s  ngx_http_ldseg_dest_t;

typedef struct {
    ngx_queue_t                   queue;
    ngx_http_ldseg_dest_t        *dest;
    ngx_http_ldseg_chunk_t       *head;
    ngx_http_ldseg_chunk_t       *tail;
    uint64_t                      seq;
    ngx_msec_t                    lease_until;
    ngx_uint_t                    lease_gen;
    ngx_uint_t                    nevents;
    size_t                        len;
    ngx_uint_t                    attempts;
    ngx_pid_t                     owner;
    ngx_msec_t                    created;

    /* the durable copy, when spooled; head == NULL: on disk only */
    ngx_http_ldseg_sfile_t       *sfile;
    off_t                         soff;
    size_t                        slen;
    ngx_msec_t                    spool_until;

    u_char                        id[16];
    unsigned                      leased:1;
    unsigned                      closed:1;
    unsigned                      has_id:1;
    unsigned                      done:1;
    unsigned                      spooling:1;
} ngx_http_ldseg_payload_t;


struct ngx_http_ldseg_dest_s {
    ngx_queue_t                   queue;
    ngx_queue_t                   payloads;
    size_t                        bytes;
    ngx_msec_t                    not_before;
    ngx_uint_t                    failures;
    ngx_uint_t                    inflight;
    ngx_uint_t                    last_status;
    size_t                        url_len;
    u_char                        url[1];
};


typedef struct {
    ngx_uint_t                    layout;
    ngx_queue_t                   dests;
    ngx_uint_t                    ndests;
    ngx_uint_t                    events;
    size_t                        bytes;
    uint64_t                      seq;
    ngx_queue_t                   sfiles;
    uint32_t                      spool_seq;
    ngx_uint_t                    migrated;
    off_t                         spool_bytes;
    ngx_uint_t                    spool_events;
    ngx_http_ldseg_stats_t        stats;
} ngx_http_ldseg_sh_t;


typedef struct {
    ngx_http_ldseg_sh_t          *sh;
    ngx_slab_pool_t              *shpool;
    size_t                        size;
    void                         *spool;   /* ngx_http_ldseg_spool_conf_t */
} ngx_http_ldseg_shctx_t;


/* what a worker holds while it POSTs a payload */
typedef struct {
    ngx_http_ldseg_dest_t        *dest;
    ngx_http_ldseg_payload_t     *payload;
    uint64_t                      seq;
    ngx_uint_t                    lease_gen;
    ngx_uint_t                    nevents;
    size_t                        len;
    ngx_uint_t                    attempts;
    uint32_t                      sfile;    /* number, 0: in memory */
    off_t                         soff;
    size_t                        slen;
    u_char                        id[16];
} ngx_http_ldseg_lease_t;


/* what the spool must do on disk once the zone let go of a payload */
typedef struct {
    uint32_t                      unlink;   /* file to unlink, or 0 */
    uint32_t                      file;     /* file of a record to mark */
    off_t                         off;      /* its offset */
} ngx_http_ldseg_spool_ref_t;


typedef enum {
    NGX_HTTP_LDSEG_DELIVERED = 0,
    NGX_HTTP_LDSEG_RETRY,
    NGX_HTTP_LDSEG_SPLIT,
    NGX_HTTP_LDSEG_CORRUPT
} ngx_http_ldseg_outcome_e;


/* "ldseg_zone" directive handler */
char *ngx_http_ldseg_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* the counters, or NULL when the zone is not yet usable */
ngx_http_ldseg_stats_t *ngx_http_ldseg_shm_stats(ngx_shm_zone_t *zone);

typedef struct {
    ngx_uint_t                    events;
    size_t                        bytes;
    size_t                        size;
    ngx_uint_t                    inflight;
    ngx_uint_t                    spool_events;
    off_t                         spool_bytes;
} ngx_http_ldseg_usage_t;


/* the queue's gauges, read under the lock */
void ngx_http_ldseg_shm_usage(ngx_shm_zone_t *zone, ngx_http_ldseg_usage_t *u);

/*
 * Appends the events of res for the destination url (copied by value) in
 * one lock round.  NGX_OK: all queued, *full is set when a payload reached
 * the batch size; NGX_DECLINED: the zone is full, or holds limit bytes
 * (0: no limit); NGX_BUSY: LaunchDarkly refuses the client-side ID and
 * its share of the zone is used up.  Nothing was queued then.
 */
ngx_int_t ngx_http_ldseg_shm_enqueue(ngx_shm_zone_t *zone, ngx_str_t *url,
    ldseg_result_t *res, ngx_uint_t batch_size, size_t max_payload,
    size_t limit, ngx_uint_t *full);

/*
 * Leases the next payload ready to send (with full_only, one that takes
 * no more events).  NGX_OK: l is filled and the
 * caller must end the lease with ngx_http_ldseg_shm_complete(); rnd gives
 * the payload ID when the payload has none yet.  NGX_DECLINED: nothing.
 */
ngx_int_t ngx_http_ldseg_shm_lease(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_msec_t lease_time, ngx_uint_t full_only, u_char *rnd,
    ngx_http_ldseg_lease_t *l);

/* copies the leased payload as a JSON array into buf (l->len + 2 bytes) */
u_char *ngx_http_ldseg_shm_copy(ngx_http_ldseg_lease_t *l, u_char *buf);

/*
 * Ends a lease; delay is the pause for the destination on RETRY.  ref tells
 * what the caller must do in the spool (ngx_http_ldseg_spool_forget()).
 */
void ngx_http_ldseg_shm_complete(ngx_shm_zone_t *zone,
    ngx_http_ldseg_lease_t *l, ngx_http_ldseg_outcome_e outcome,
    ngx_uint_t status, ngx_msec_t now, ngx_msec_t delay,
    ngx_http_ldseg_spool_ref_t *ref);

/* gives back every lease this process holds (worker exit) */
void ngx_http_ldseg_shm_release(ngx_shm_zone_t *zone);

/* for the spool: queue internals, called with the zone locked */
ngx_http_ldseg_dest_t *ngx_http_ldseg_dest_locked(ngx_http_ldseg_shctx_t *ctx,
    ngx_str_t *url);
ngx_http_ldseg_payload_t *ngx_http_ldseg_payload_new(
    ngx_http_ldseg_shctx_t *ctx, ngx_http_ldseg_dest_t *dest);
void ngx_http_ldseg_payload_free(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p);
uint32_t ngx_http_ldseg_payload_unspool(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p);
void ngx_http_ldseg_payload_drop_locked(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_spool_ref_t *ref);
ngx_http_ldseg_sfile_t *ngx_http_ldseg_sfile_new(ngx_http_ldseg_shctx_t *ctx,
    uint32_t number);
uint32_t ngx_http_ldseg_sfile_release(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_sfile_t *sf);

/* another process with this pid no longer exists */
ngx_uint_t ngx_http_ldseg_pid_dead(ngx_pid_t pid);

/* index of a rejection code in ngx_http_ldseg_reasons */
ngx_uint_t ngx_http_ldseg_reason(const char *code);

extern const char  *ngx_http_ldseg_reasons[NGX_HTTP_LDSEG_NREASONS];
extern const char  *ngx_http_ldseg_drops[NGX_HTTP_LDSEG_NDROPS];


#endif /* _NGX_HTTP_LDSEG_SHM_H_INCLUDED_ */

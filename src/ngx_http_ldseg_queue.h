
/*
 * Copyright (C) ldseg authors
 *
 * The shared-memory queue: destinations (one per events URL and client-side
 * ID), payloads (the events of one future POST), chunks (the events of
 * one or more requests, in a payload), the spool files that hold durable
 * copies, and the counters every worker bumps.  Every operation on them is in
 * ngx_http_ldseg_queue.c, the only file that takes the zone lock.
 */


#ifndef _NGX_HTTP_LDSEG_QUEUE_H_INCLUDED_
#define _NGX_HTTP_LDSEG_QUEUE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ldseg.h"
#include "ldseg_delivery.h"
#include "ngx_http_ldseg_spool.h"


#define NGX_HTTP_LDSEG_LAYOUT         11


/* what a destination is: where its payloads go, and in which form */
#define NGX_HTTP_LDSEG_LAUNCHDARKLY   0     /* a JSON array of events */
#define NGX_HTTP_LDSEG_SEGMENT        1     /* {"batch":[...]}, Basic auth */

/* write keys with counters of their own; the others share one */
#define NGX_HTTP_LDSEG_ACCOUNTS_MAX   64


/*
 * Counters of rejected messages, indexed by ldseg_reason_e: room for
 * LDSEG_REASON_NREJECT and more, so that a reason added later changes
 * nothing in the zone's layout.
 */
#define NGX_HTTP_LDSEG_NREASONS       64

/*
 * Counters of skipped messages, indexed by ldseg_reason_e from
 * LDSEG_REASON_NREJECT on, with room to spare in the same way.
 */
#define NGX_HTTP_LDSEG_NSKIPS         16

/* reasons an accepted event is given up on */
#define NGX_HTTP_LDSEG_NDROPS         4
#define NGX_HTTP_LDSEG_DROP_TOO_LARGE 0
#define NGX_HTTP_LDSEG_DROP_CORRUPT   1
#define NGX_HTTP_LDSEG_DROP_NO_ROOM   2
#define NGX_HTTP_LDSEG_DROP_DEAD      3

/* bytes of a destination's last error text kept for the status */
#define NGX_HTTP_LDSEG_ERROR_MAX      128

/* snapshots of delivery counters spread over the alert window */
#define NGX_HTTP_LDSEG_SNAPS          10

/* seconds of per-second history for the status page, and the least zone
 * size that holds it */
#define NGX_HTTP_LDSEG_HISTORY        900
#define NGX_HTTP_LDSEG_HISTORY_ZONE   (256 * 1024)

/*
 * An empty destination is kept this long with its counters for the
 * status, unless the zone runs short of free pages or the number of
 * destinations reaches ldseg_max_destinations
 */
#define NGX_HTTP_LDSEG_LINGER         (15 * 60 * 1000)

/* ldseg_recent: entries at most, and the bytes of an event and an ID */
#define NGX_HTTP_LDSEG_RECENT_MAX     1000
#define NGX_HTTP_LDSEG_RECENT_EVENT   448
#define NGX_HTTP_LDSEG_RECENT_ID      64

/* what became of a recent event */
#define NGX_HTTP_LDSEG_RECENT_QUEUED      0
#define NGX_HTTP_LDSEG_RECENT_DELIVERED   1
#define NGX_HTTP_LDSEG_RECENT_RETRYING    2
#define NGX_HTTP_LDSEG_RECENT_DEAD        3
#define NGX_HTTP_LDSEG_RECENT_DROPPED     4
#define NGX_HTTP_LDSEG_RECENT_SPLIT       5
#define NGX_HTTP_LDSEG_RECENT_REFUSED     6

/* why a destination waits */
#define NGX_HTTP_LDSEG_PAUSE_NONE     0
#define NGX_HTTP_LDSEG_PAUSE_BACKOFF  1
#define NGX_HTTP_LDSEG_PAUSE_RETRY_AFTER  2
#define NGX_HTTP_LDSEG_PAUSE_REFUSED  3


typedef struct {
    ngx_atomic_t                  requests;
    ngx_atomic_t                  received;
    ngx_atomic_t                  accepted;
    ngx_atomic_t                  rejected;
    ngx_atomic_t                  skipped;
    ngx_atomic_t                  duplicate;
    ngx_atomic_t                  translated;
    ngx_atomic_t                  queued;
    ngx_atomic_t                  delivered;
    ngx_atomic_t                  failed;
    ngx_atomic_t                  dropped;
    ngx_atomic_t                  dead_lettered;
    ngx_atomic_t                  posts_sent;
    ngx_atomic_t                  posts_succeeded;
    ngx_atomic_t                  posts_failed;
    ngx_atomic_t                  lease_expired;
    ngx_atomic_t                  spooled;
    ngx_atomic_t                  replayed;
    ngx_atomic_t                  rejected_reasons[NGX_HTTP_LDSEG_NREASONS];
    ngx_atomic_t                  skipped_reasons[NGX_HTTP_LDSEG_NSKIPS];
    ngx_atomic_t                  dropped_reasons[NGX_HTTP_LDSEG_NDROPS];

    /* the export: SDK posts in, Segment messages out */
    ngx_atomic_t                  export_requests;
    ngx_atomic_t                  export_received;
    ngx_atomic_t                  exported;
    ngx_atomic_t                  export_skipped;
    ngx_atomic_t                  export_rejected;
    ngx_atomic_t                  export_dropped;
    ngx_atomic_t                  export_delivered;
    ngx_atomic_t                  export_failed;
    ngx_atomic_t                  export_dead_lettered;

    /* ldseg_deliver: the subrequests that POSTed events to LaunchDarkly */
    ngx_atomic_t                  subrequests_sent;
    ngx_atomic_t                  subrequests_accepted;
    ngx_atomic_t                  subrequests_failed;
} ngx_http_ldseg_stats_t;


/*
 * The counters of one destination, changed only under the zone lock by
 * operations that hold it anyway (enqueue, lease, complete): messages of
 * the requests that queued events for it, and its LaunchDarkly events.
 */
typedef struct {
    uint64_t                      received;
    uint64_t                      accepted;
    uint64_t                      rejected;
    uint64_t                      queued;
    uint64_t                      delivered;
    uint64_t                      failed;
    uint64_t                      dead_lettered;
    uint64_t                      dropped;
    uint64_t                      posts;
    uint64_t                      posts_failed;
    uint64_t                      retries;
    uint64_t                      subrequests;
    uint64_t                      subrequests_accepted;
    uint64_t                      subrequests_failed;
} ngx_http_ldseg_dstats_t;


/* delivery counters at one moment, for the rate over the alert window */
typedef struct {
    ngx_msec_t                    time;
    uint64_t                      delivered;
    uint64_t                      failed;
    uint64_t                      dead;
} ngx_http_ldseg_snap_t;


/* the zone's cumulative counters at one second, for the status page */
typedef struct {
    uint32_t                      sec;
    uint32_t                      received;
    uint32_t                      rejected;
    uint32_t                      delivered;
    uint32_t                      failed;
} ngx_http_ldseg_tick_t;


typedef struct {
    ngx_msec_t                    next;       /* the next check */
    ngx_uint_t                    snap;
    ngx_http_ldseg_snap_t         snaps[NGX_HTTP_LDSEG_SNAPS];
    ngx_uint_t                    rate;       /* 1/10000, of the window */
    ngx_msec_t                    oldest;     /* age of the oldest event */
    unsigned                      low:1;      /* rate below threshold */
    unsigned                      old:1;      /* an event older than max */
    unsigned                      known:1;    /* rate has data */
} ngx_http_ldseg_alert_sh_t;


/* one translated event of ldseg_recent, with what became of it */
typedef struct {
    uint64_t                      dest_id;
    uint64_t                      seq;        /* of its payload */
    uint64_t                      queued;     /* Unix ms */
    uint64_t                      answered;   /* Unix ms, 0: not yet */
    uint16_t                      status;
    uint16_t                      attempts;
    uint16_t                      event_len;
    uint8_t                       id_len;
    uint8_t                       outcome;
    u_char                        payload_id[16];
    u_char                        client_side_id[NGX_HTTP_LDSEG_RECENT_ID];
    u_char                        event[NGX_HTTP_LDSEG_RECENT_EVENT];
    unsigned                      has_payload_id:1;
    unsigned                      truncated:1;
} ngx_http_ldseg_recent_t;


/* the ring of ldseg_recent: n entries, total ever written */
typedef struct {
    ngx_uint_t                    n;
    uint64_t                      total;
    ngx_http_ldseg_recent_t       e[1];
} ngx_http_ldseg_ring_t;


/*
 * The export counters of one write key: created at its first export,
 * never freed (at most NGX_HTTP_LDSEG_ACCOUNTS_MAX, then the write keys
 * share the account of key_len 0), so a worker may keep a pointer.
 */
typedef struct {
    ngx_queue_t                   queue;
    ngx_atomic_t                  exported;
    ngx_atomic_t                  skipped;
    ngx_atomic_t                  rejected;
    ngx_atomic_t                  dropped;
    ngx_atomic_t                  delivered;
    ngx_atomic_t                  failed;
    ngx_atomic_t                  dead_lettered;
    size_t                        key_len;
    u_char                        key[1];
} ngx_http_ldseg_account_t;


/* a spool file: payloads whose durable copy it holds are "live" */
typedef struct {
    ngx_queue_t                   queue;
    uint32_t                      number;
    ngx_pid_t                     writer;
    ngx_uint_t                    live;
    off_t                         size;

    /* loaded in part at start: it is kept for the next start */
    unsigned                      pinned:1;

    size_t                        dir_len;
    u_char                        dir[1];
} ngx_http_ldseg_sfile_t;


typedef struct ngx_http_ldseg_chunk_s  ngx_http_ldseg_chunk_t;

/*
 * Events one or more requests added to a payload, comma-separated: len
 * bytes of data, room for size; the open payload's last chunk takes the
 * next request's events while they fit.
 */
struct ngx_http_ldseg_chunk_s {
    ngx_http_ldseg_chunk_t       *next;
    uint32_t                      nevents;
    uint32_t                      len;
    uint32_t                      size;
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
    ngx_msec_t                    not_before;
    size_t                        mem;       /* bytes of its chunks */
    size_t                        slab;      /* zone memory of its chunks */

    /* the durable copy, when spooled; head == NULL: on disk only */
    ngx_http_ldseg_sfile_t       *sfile;
    off_t                         soff;
    size_t                        slen;

    /* a half of a split not finished yet: its payload is parent */
    uint64_t                      parent;

    /* being written to the spool by this process until spool_until */
    ngx_pid_t                     spooler;
    ngx_msec_t                    spool_until;

    u_char                        id[16];
    unsigned                      leased:1;
    unsigned                      closed:1;
    unsigned                      has_id:1;
    unsigned                      done:1;
    unsigned                      spooling:1;
    unsigned                      copied:1;
    unsigned                      hold:1;

    /* its halves were made, held, and it is not yet gone */
    unsigned                      splitting:1;
} ngx_http_ldseg_payload_t;


struct ngx_http_ldseg_dest_s {
    ngx_str_node_t                sn;
    ngx_queue_t                   queue;
    ngx_queue_t                   payloads;
    uint64_t                      id;
    size_t                        bytes;     /* in memory */
    size_t                        dbytes;    /* on disk only */
    ngx_msec_t                    not_before;
    ngx_uint_t                    failures;
    ngx_uint_t                    inflight;
    ngx_uint_t                    refused;   /* 401, 403, 404 or 0 */

    /* for the status: counters, the last answer and error, the alert */
    ngx_http_ldseg_dstats_t       stats;
    time_t                        last_time;
    ngx_uint_t                    last_status;
    time_t                        error_time;
    ngx_uint_t                    paused_by;
    ngx_msec_t                    oldest;    /* recount: oldest created */
    ngx_uint_t                    snap;
    ngx_http_ldseg_snap_t         snaps[NGX_HTTP_LDSEG_SNAPS];
    ngx_uint_t                    rate;      /* 1/10000, of the window */
    size_t                        error_len;
    u_char                        error[NGX_HTTP_LDSEG_ERROR_MAX];
    ngx_msec_t                    idle_since;
    unsigned                      low:1;
    unsigned                      has_oldest:1;
    unsigned                      idle:1;

    ngx_uint_t                    kind;      /* NGX_HTTP_LDSEG_SEGMENT... */
    size_t                        url_len;
    size_t                        cred_len;

    /*
     * The rbtree key: the URL, then for Segment a NUL and the write key
     * (a URL holds no NUL, so the kinds never collide)
     */
    u_char                        url[1];
};


/* a destination as the handler, the spool and a resize name it */
typedef struct {
    ngx_uint_t                    kind;
    ngx_str_t                     url;
    ngx_str_t                     cred;      /* Segment: the write key */
} ngx_http_ldseg_target_t;


typedef struct {
    ngx_uint_t                    layout;
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   dests;
    ngx_uint_t                    ndests;
    uint64_t                      dest_seq;
    ngx_uint_t                    events;
    size_t                        bytes;
    size_t                        mem;       /* the chunks' zone memory */
    uint64_t                      seq;
    ngx_queue_t                   sfiles;
    uint32_t                      spool_seq;
    ngx_uint_t                    spool_events;
    off_t                         spool_bytes;

    /* the write keys' export counters */
    ngx_queue_t                   accounts;
    ngx_uint_t                    naccounts;

    /* a reload moved the queue to a resized zone, which now serves */
    ngx_uint_t                    handed_over;

    ngx_http_ldseg_stats_t        stats;

    /* the counters of destinations freed when empty and idle */
    ngx_http_ldseg_dstats_t       retired;
    ngx_uint_t                    nretired;

    ngx_http_ldseg_alert_sh_t     alert;

    /* ldseg_recent, or NULL */
    ngx_http_ldseg_ring_t        *recent;

    /* NGX_HTTP_LDSEG_HISTORY seconds, or NULL in a small zone */
    ngx_http_ldseg_tick_t        *history;
    uint32_t                      history_sec;
} ngx_http_ldseg_sh_t;


typedef struct ngx_http_ldseg_zone_s  ngx_http_ldseg_zone_t;

struct ngx_http_ldseg_zone_s {
    ngx_http_ldseg_sh_t          *sh;
    ngx_slab_pool_t              *shpool;
    size_t                        size;
    ngx_str_t                     name;

    /* the zone a resize copied from, until the reload is committed */
    ngx_http_ldseg_zone_t        *old;

    void                         *spool;   /* ngx_http_ldseg_spool_conf_t */
};


/* the state of a spool replay */
typedef struct {
    ngx_http_ldseg_zone_t        *zone;
    ngx_http_ldseg_sfile_t       *sfile;
    ngx_uint_t                    full;
    ngx_uint_t                    events;
    ngx_uint_t                    pinned;
} ngx_http_ldseg_replay_t;


/* what the queue needs from the configuration */
typedef struct {
    ngx_uint_t                    batch_size;
    size_t                        max_payload;
    size_t                        limit;
    ngx_uint_t                    max_destinations;
} ngx_http_ldseg_queue_conf_t;


typedef enum {
    NGX_HTTP_LDSEG_ENQ_OK = 0,
    NGX_HTTP_LDSEG_ENQ_FULL,
    NGX_HTTP_LDSEG_ENQ_REFUSED,
    NGX_HTTP_LDSEG_ENQ_DESTINATIONS,
    NGX_HTTP_LDSEG_ENQ_MOVED
} ngx_http_ldseg_enqueue_e;


/* what a worker holds while it POSTs a payload */
typedef struct {
    ngx_http_ldseg_dest_t        *dest;
    uint64_t                      dest_id;
    uint64_t                      seq;
    ngx_uint_t                    lease_gen;
    ngx_uint_t                    nevents;
    size_t                        len;
    ngx_uint_t                    attempts;
    u_char                        id[16];

    /* the destination, copied */
    ngx_uint_t                    kind;
    size_t                        url_len;
    u_char                        url[NGX_HTTP_LDSEG_URL_MAX];
    size_t                        cred_len;
    u_char                        cred[NGX_HTTP_LDSEG_CRED_MAX + 1];

    /* on disk only: where, file name and record */
    ngx_http_ldseg_spool_loc_t    disk;
    unsigned                      on_disk:1;
} ngx_http_ldseg_lease_t;


/* what became of a completed payload */
typedef struct {
    ngx_uint_t                    dropped;       /* events given up on */
    ngx_uint_t                    drop_reason;
    ngx_uint_t                    dead_letter;   /* write it there */
    ngx_uint_t                    refused_first; /* log the refused ID */
} ngx_http_ldseg_done_t;


/* what the sender knows of an answer, for the destination's status */
typedef struct {
    time_t                        time;
    ngx_uint_t                    retry_after;  /* it had Retry-After */
    size_t                        error_len;
    u_char                       *error;        /* NULL: no error */
} ngx_http_ldseg_answer_t;


/* ldseg_alert: thresholds (rate 0: off) */
typedef struct {
    ngx_uint_t                    rate;      /* 1/10000 */
    ngx_msec_t                    window;
    ngx_msec_t                    max_age;   /* 0: off */
} ngx_http_ldseg_alert_conf_t;


#define NGX_HTTP_LDSEG_ALERT_IDS      512

/* a change of alert state this process found, to log outside the lock */
typedef struct {
    ngx_int_t                     rate_change;   /* -1 low, 1 recovered */
    ngx_uint_t                    rate;
    ngx_int_t                     age_change;    /* -1 old, 1 recovered */
    ngx_msec_t                    age;
    size_t                        ids_len;
    u_char                        ids[NGX_HTTP_LDSEG_ALERT_IDS];
    size_t                        age_ids_len;
    u_char                        age_ids[NGX_HTTP_LDSEG_ALERT_IDS];
} ngx_http_ldseg_alert_out_t;


/* a destination as the status shows it, copied out of the zone */
typedef struct {
    ngx_uint_t                    kind;      /* NGX_HTTP_LDSEG_SEGMENT... */
    ngx_str_t                     url;
    ngx_str_t                     cred;      /* Segment: the write key */
    ngx_http_ldseg_dstats_t       stats;
    ngx_uint_t                    events;
    size_t                        bytes;
    ngx_uint_t                    inflight;
    ngx_msec_t                    oldest_age;
    ngx_uint_t                    has_oldest;
    ngx_uint_t                    last_status;
    time_t                        last_time;
    time_t                        error_time;
    ngx_str_t                     error;
    ngx_uint_t                    paused_by;
    ngx_msec_t                    paused_ms;
    ngx_uint_t                    refused;
    ngx_uint_t                    rate;
    ngx_uint_t                    low;

    /* set by the status: the client-side ID or write key label, the URL */
    ngx_str_t                     id;
    ngx_str_t                     base;
} ngx_http_ldseg_dest_status_t;


/* the zone as the status shows it */
typedef struct {
    ngx_array_t                  *dests;   /* ngx_http_ldseg_dest_status_t */
    ngx_http_ldseg_dstats_t       retired;
    ngx_uint_t                    nretired;
    ngx_http_ldseg_alert_sh_t     alert;
    ngx_http_ldseg_tick_t        *history; /* NULL, or a copy */
    ngx_http_ldseg_ring_t        *recent;  /* NULL, or a copy */
} ngx_http_ldseg_view_t;


typedef struct {
    ngx_uint_t                    events;
    size_t                        bytes;
    size_t                        memory;    /* the zone memory they take */
    size_t                        size;
    ngx_uint_t                    inflight;
    ngx_uint_t                    destinations;
    ngx_uint_t                    spool_events;
    off_t                         spool_bytes;
} ngx_http_ldseg_usage_t;


/* a fresh zone's structures; NGX_OK or NGX_ERROR */
ngx_int_t ngx_http_ldseg_queue_init(ngx_http_ldseg_zone_t *z);

/*
 * Copies the queue of the zone oz (a reload resized it) into the fresh
 * zone z, fixing payload IDs in oz first so both copies carry the same
 * ID.  Nothing in oz is removed or disabled: if the reload fails, its
 * workers go on as before.  NGX_ERROR (logged) when a payload fits
 * neither in z's memory nor on disk.
 */
ngx_int_t ngx_http_ldseg_queue_copy(ngx_http_ldseg_zone_t *oz,
    ngx_http_ldseg_zone_t *z, ngx_log_t *log);

/*
 * The reload that resized oz into z is committed (no new worker runs
 * yet): what oz's workers queued since the copy is copied too, and they
 * let go of everything copied.
 */
void ngx_http_ldseg_queue_handover(ngx_http_ldseg_zone_t *oz,
    ngx_http_ldseg_zone_t *z, ngx_log_t *log);

/*
 * Spool replay at start, the handler of ngx_http_ldseg_spool_scan() with
 * an ngx_http_ldseg_replay_t as data: every record becomes a payload kept
 * on disk only, while the zone has room; a file whose records do not all
 * fit is pinned (never unlinked in this run).
 */
ngx_int_t ngx_http_ldseg_queue_replay(void *data,
    ngx_http_ldseg_spool_rec_t *rec);

/* the counters, or NULL when the zone is not yet usable */
ngx_http_ldseg_stats_t *ngx_http_ldseg_queue_stats(ngx_shm_zone_t *zone);

/* the queue's gauges, read under the lock */
void ngx_http_ldseg_queue_usage(ngx_shm_zone_t *zone,
    ngx_http_ldseg_usage_t *u);

/*
 * Appends the events of res for the destination target (copied by value)
 * in one lock round; *full is set when a payload reached the batch size.
 * Nothing is queued unless NGX_HTTP_LDSEG_ENQ_OK is returned.
 */
ngx_http_ldseg_enqueue_e ngx_http_ldseg_queue_enqueue(ngx_shm_zone_t *zone,
    ngx_http_ldseg_target_t *target, ldseg_result_t *res,
    ngx_http_ldseg_queue_conf_t *qc, ngx_uint_t *full);

/*
 * 16 random bytes for a payload ID, from the kernel in the calling
 * process (ngx_random() only if getrandom() fails)
 */
void ngx_http_ldseg_queue_random_id(u_char *id);

/*
 * The counters of a request whose events went to LaunchDarkly through
 * subrequests ("ldseg_deliver"), nothing queued: its messages and its
 * subrequests sent, accepted and failed, and the events dropped as too
 * large, are added to the destination of target (made when new, within
 * max_destinations) in one lock round.  NGX_OK, or NGX_DECLINED when the
 * destination has no room: the totals count the request all the same.
 */
ngx_int_t ngx_http_ldseg_queue_count_delivered(ngx_shm_zone_t *zone,
    ngx_http_ldseg_target_t *target, ldseg_result_t *res, ngx_uint_t sent,
    ngx_uint_t accepted, ngx_uint_t failed, ngx_uint_t dropped,
    ngx_uint_t max_destinations);

/*
 * The export counters of write key key (created at first use; the shared
 * account once NGX_HTTP_LDSEG_ACCOUNTS_MAX keys have their own); they
 * live as long as the zone.  NULL: no room in the zone.
 */
ngx_http_ldseg_account_t *ngx_http_ldseg_queue_account(ngx_shm_zone_t *zone,
    u_char *key, size_t len);

/* the accounts, for the status page: each one under the lock, by index */
ngx_uint_t ngx_http_ldseg_queue_accounts(ngx_shm_zone_t *zone,
    ngx_http_ldseg_account_t *out, u_char (*keys)[NGX_HTTP_LDSEG_CRED_MAX],
    ngx_uint_t max);

/*
 * Leases the next payload ready to send (with full_only, one that takes
 * no more events) and gives it a payload ID from getrandom() if it has
 * none.  NGX_OK: l is filled and the lease must be ended with
 * ngx_http_ldseg_queue_complete(); NGX_DECLINED: nothing to send.
 */
ngx_int_t ngx_http_ldseg_queue_lease(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_msec_t lease_time, ngx_uint_t full_only, ngx_http_ldseg_lease_t *l);

/*
 * Copies a leased payload held in memory as a JSON array into buf
 * (l->len + 2 bytes).  NULL when the lease was lost meanwhile.
 */
u_char *ngx_http_ldseg_queue_copy_out(ngx_shm_zone_t *zone,
    ngx_http_ldseg_lease_t *l, u_char *buf);

/*
 * Ends a lease with the delivery outcome d of status; body is what was
 * sent (the split needs it).  Spool records to mark and files to unlink
 * are added to ops; *done tells the caller what else to do.
 */
void ngx_http_ldseg_queue_complete(ngx_shm_zone_t *zone,
    ngx_http_ldseg_lease_t *l, ldseg_delivery_t *d, ngx_uint_t status,
    ngx_http_ldseg_answer_t *a, ngx_msec_t now, u_char *body, size_t len,
    ngx_http_ldseg_spool_ops_t *ops, ngx_http_ldseg_done_t *done);

/*
 * Claims payloads older than delay (all of them with all) for the spool
 * file file (0: a new file is numbered in dir and *file set) and copies
 * them as spool records into job.  NGX_OK: job holds records;
 * NGX_DECLINED: nothing to write; NGX_BUSY: the spool is at max_size.
 */
ngx_int_t ngx_http_ldseg_queue_spool_claim(ngx_shm_zone_t *zone,
    ngx_msec_t now, ngx_msec_t delay, ngx_uint_t all, off_t max_size,
    ngx_str_t *dir, uint32_t *file, ngx_http_ldseg_spool_job_t *job);

/*
 * The spool job ended: with ok, its records are the payloads' durable
 * copies; records of payloads that went away meanwhile are added to ops.
 * close: this process is done with the file.
 */
void ngx_http_ldseg_queue_spool_done(ngx_shm_zone_t *zone,
    ngx_http_ldseg_spool_job_t *job, ngx_uint_t ok, ngx_uint_t close,
    ngx_http_ldseg_spool_ops_t *ops);

/*
 * Housekeeping from the flush timer: files of dead writers are closed,
 * files that hold nothing are unlinked (ops), empty idle destinations and
 * forgotten payloads are freed (their counters kept as "retired").  One
 * process at a time also samples the history and checks the alert ac
 * (may be NULL); a change of alert state is returned in out, to be
 * logged once by this process.
 */
void ngx_http_ldseg_queue_reap(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_http_ldseg_spool_ops_t *ops, ngx_http_ldseg_alert_conf_t *ac,
    ngx_http_ldseg_alert_out_t *out);

#define NGX_HTTP_LDSEG_VIEW_HISTORY   1
#define NGX_HTTP_LDSEG_VIEW_RECENT    2

/*
 * Copies what the status shows into v, allocated from pool: every
 * destination, the retired counters, the alert state and, as "what"
 * asks, the per-second history and the recent events.  NGX_OK or
 * NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_queue_view(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_uint_t what, ngx_http_ldseg_view_t *v);

/*
 * Gives the zone a ring of n recent events (0: none), keeping the one it
 * has when its size is n.  From init_module, once a configuration is
 * committed.  NGX_OK, or NGX_DECLINED (logged) when the zone has no room.
 */
ngx_int_t ngx_http_ldseg_queue_recent(ngx_shm_zone_t *zone, ngx_uint_t n,
    ngx_log_t *log);

/* the bytes a ring of n recent events takes */
#define ngx_http_ldseg_recent_size(n)                                        \
    (offsetof(ngx_http_ldseg_ring_t, e)                                      \
     + (n) * sizeof(ngx_http_ldseg_recent_t))

/* gives back every lease this process holds (worker exit) */
void ngx_http_ldseg_queue_release(ngx_shm_zone_t *zone);

/* another process with this pid no longer exists */
ngx_uint_t ngx_http_ldseg_pid_dead(ngx_pid_t pid);


#endif /* _NGX_HTTP_LDSEG_QUEUE_H_INCLUDED_ */

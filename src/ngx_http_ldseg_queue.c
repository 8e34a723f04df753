
/*
 * Copyright (C) ldseg authors
 *
 * The shared-memory queue, and the only code that takes the zone lock.
 * Every worker appends the events of a request in one lock round, and
 * every worker's flush timer leases whole payloads from it.  A payload is
 * leased, not popped: it stays in the queue until its POST is
 * acknowledged, so a worker that dies mid-POST loses nothing; when the
 * lease deadline passes (or its owner is dead) another worker sends the
 * same payload again, under the same payload ID.  Everything lives inside
 * the zone and is stored by value, so the zone survives "nginx -s reload"
 * with its contents.
 *
 * Gauges (queued events and bytes, leases in flight, live records per
 * spool file) are kept up to date by every operation and recounted from
 * the payloads by ngx_http_ldseg_queue_reap(): a worker killed between
 * two steps of an operation leaves whole lists behind, and the recount
 * repairs the numbers.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <ngx_md5.h>
#include <sys/random.h>

#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_spool.h"
#include "ngx_http_ldseg_crash.h"


/* bytes of records one spool job writes at most */
#define NGX_HTTP_LDSEG_SPOOL_JOB_MAX  (4 * 1024 * 1024)

/* a spool write that has not ended by then is taken over */
#define NGX_HTTP_LDSEG_SPOOL_CLAIM    60000

/* the bytes of a destination's key (the URL, then NUL and write key) */
#define ngx_http_ldseg_dest_key_len(d)                                      \
    ((d)->url_len + ((d)->kind ? 1 + (d)->cred_len : 0))


static ngx_http_ldseg_dest_t *ngx_http_ldseg_dest_get(
    ngx_http_ldseg_zone_t *z, ngx_http_ldseg_target_t *target,
    ngx_uint_t max);
static ngx_http_ldseg_dest_t *ngx_http_ldseg_dest_lookup(
    ngx_http_ldseg_zone_t *z, ngx_http_ldseg_target_t *target);
static void ngx_http_ldseg_dest_target(ngx_http_ldseg_dest_t *dest,
    ngx_http_ldseg_target_t *target);
static ngx_http_ldseg_account_t *ngx_http_ldseg_account_get(
    ngx_http_ldseg_zone_t *z, u_char *key, size_t len);
static ngx_http_ldseg_dest_t *ngx_http_ldseg_dest_find(
    ngx_http_ldseg_zone_t *z, ngx_http_ldseg_dest_t *dest, uint64_t id);
static void ngx_http_ldseg_dest_free(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest);
static ngx_uint_t ngx_http_ldseg_dest_idle(ngx_http_ldseg_dest_t *dest,
    ngx_msec_t now);
static size_t ngx_http_ldseg_refused_bytes(ngx_http_ldseg_zone_t *z);
static ngx_http_ldseg_payload_t *ngx_http_ldseg_payload_new(
    ngx_http_ldseg_zone_t *z, ngx_http_ldseg_dest_t *dest);
static ngx_http_ldseg_payload_t *ngx_http_ldseg_payload_find(
    ngx_http_ldseg_dest_t *dest, uint64_t seq);
static ngx_uint_t ngx_http_ldseg_payload_unfinished(
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *p);
static void ngx_http_ldseg_payload_gone(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_spool_ops_t *ops);
static void ngx_http_ldseg_payload_forget(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_spool_ops_t *ops);
static void ngx_http_ldseg_payload_free_chunks(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p);
static ngx_int_t ngx_http_ldseg_payload_split(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p, u_char *body, size_t len,
    ngx_http_ldseg_payload_t **halves);
static ngx_http_ldseg_payload_t *ngx_http_ldseg_payload_from(
    ngx_http_ldseg_zone_t *z, ngx_http_ldseg_dest_t *dest, u_char *data,
    size_t len, ngx_uint_t nevents);
static void ngx_http_ldseg_payload_unsplit(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *p);
static ngx_int_t ngx_http_ldseg_payload_copy_to(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *op);
static ngx_http_ldseg_chunk_t *ngx_http_ldseg_chunk_alloc(
    ngx_http_ldseg_zone_t *z, size_t len, size_t size);
static size_t ngx_http_ldseg_slab_size(size_t size);
static u_char *ngx_http_ldseg_payload_copy(ngx_http_ldseg_payload_t *p,
    u_char *buf);
static ngx_uint_t ngx_http_ldseg_evict(ngx_http_ldseg_zone_t *z);
static ngx_http_ldseg_sfile_t *ngx_http_ldseg_sfile_new(
    ngx_http_ldseg_zone_t *z, uint32_t number, u_char *dir, size_t dir_len);
static ngx_http_ldseg_sfile_t *ngx_http_ldseg_sfile_find(
    ngx_http_ldseg_zone_t *z, uint32_t number);
static ngx_uint_t ngx_http_ldseg_sfile_release(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_sfile_t *sf, ngx_http_ldseg_spool_ops_t *ops);
static void ngx_http_ldseg_recount(ngx_http_ldseg_zone_t *z,
    ngx_msec_t now, ngx_http_ldseg_spool_ops_t *ops);
static void ngx_http_ldseg_half_id(u_char *id, u_char *parent,
    ngx_uint_t half);
static ngx_int_t ngx_http_ldseg_view_cmp(const void *a, const void *b);
static void ngx_http_ldseg_dstats_add(ngx_http_ldseg_dstats_t *to,
    ngx_http_ldseg_dstats_t *from);
static void ngx_http_ldseg_watch(ngx_http_ldseg_zone_t *z, ngx_msec_t now,
    ngx_http_ldseg_alert_conf_t *ac, ngx_http_ldseg_alert_out_t *out);
static ngx_uint_t ngx_http_ldseg_snap_rate(ngx_http_ldseg_snap_t *snaps,
    ngx_uint_t *snap, ngx_http_ldseg_snap_t *cur, ngx_msec_t now,
    ngx_msec_t every, ngx_uint_t zero_base, ngx_uint_t *rate);
static u_char *ngx_http_ldseg_add_id(u_char *p, u_char *last,
    ngx_http_ldseg_dest_t *dest);
static void ngx_http_ldseg_recent_add(ngx_http_ldseg_ring_t *ring,
    ngx_http_ldseg_dest_t *dest, uint64_t seq, ldseg_result_t *res,
    ngx_uint_t from, ngx_uint_t to, uint64_t now);
static void ngx_http_ldseg_recent_done(ngx_http_ldseg_ring_t *ring,
    ngx_http_ldseg_lease_t *l, ngx_uint_t outcome, ngx_uint_t status,
    uint64_t now);
static uint64_t ngx_http_ldseg_unix_ms(void);


/* the key of this process's last destination and its hash */
static u_char    ngx_http_ldseg_last_key[NGX_HTTP_LDSEG_URL_MAX + 1
                                         + NGX_HTTP_LDSEG_CRED_MAX];
static size_t    ngx_http_ldseg_last_key_len;
static uint32_t  ngx_http_ldseg_last_hash;


ngx_int_t
ngx_http_ldseg_queue_init(ngx_http_ldseg_zone_t *z)
{
    size_t                len;
    uint32_t              sec;
    ngx_http_ldseg_sh_t  *sh;

    sh = ngx_slab_calloc(z->shpool, sizeof(ngx_http_ldseg_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    z->sh = sh;
    z->shpool->data = sh;

    sh->layout = NGX_HTTP_LDSEG_LAYOUT;
    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->dests);
    ngx_queue_init(&sh->sfiles);
    ngx_queue_init(&sh->accounts);

    len = sizeof(" in ldseg zone \"\"") + z->name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in ldseg zone \"%V\"%Z", &z->name);

    /* a full zone is answered with 503 and logged by the caller */
    z->shpool->log_nomem = 0;

    /* the status page's history, where it costs a small part of the zone */

    if (z->size >= NGX_HTTP_LDSEG_HISTORY_ZONE) {
        sh->history = ngx_slab_calloc(z->shpool,
                                      NGX_HTTP_LDSEG_HISTORY
                                      * sizeof(ngx_http_ldseg_tick_t));

        if (sh->history != NULL) {
            /*
             * A zero sample a second before the zone was made: what comes
             * before the first worker's first sample is in the chart too.
             */
            sec = (uint32_t) ngx_time() - 1;
            sh->history[sec % NGX_HTTP_LDSEG_HISTORY].sec = sec;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_queue_copy(ngx_http_ldseg_zone_t *oz, ngx_http_ldseg_zone_t *z,
    ngx_log_t *log)
{
    ngx_uint_t                 copied, disk;
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_sh_t       *osh;
    ngx_http_ldseg_dest_t     *odest, *dest;
    ngx_http_ldseg_sfile_t    *osf, *sf;
    ngx_http_ldseg_target_t    target;
    ngx_http_ldseg_account_t  *oa, *a;
    ngx_http_ldseg_payload_t  *op;

    /*
     * The master runs this while the new configuration may still be
     * rejected: the old zone is only read, apart from fixing payload IDs
     * and marking what was copied, which its workers ignore unless the
     * reload is committed (ngx_http_ldseg_queue_handover()).
     */

    osh = oz->sh;
    copied = 0;
    disk = 0;

    ngx_shmtx_lock(&oz->shpool->mutex);

    for (q = ngx_queue_head(&osh->sfiles);
         q != ngx_queue_sentinel(&osh->sfiles);
         q = ngx_queue_next(q))
    {
        osf = ngx_queue_data(q, ngx_http_ldseg_sfile_t, queue);

        sf = ngx_http_ldseg_sfile_new(z, osf->number, osf->dir,
                                      osf->dir_len);
        if (sf == NULL) {
            goto nomem;
        }

        sf->writer = osf->writer;
        sf->size = osf->size;
        sf->pinned = osf->pinned;
        z->sh->spool_bytes += osf->size;
    }

    /* the old workers go on numbering their files: leave them room */
    z->sh->spool_seq = osh->spool_seq + 0x1000000;
    z->sh->seq = osh->seq;
    z->sh->stats = osh->stats;
    z->sh->retired = osh->retired;
    z->sh->nretired = osh->nretired;
    z->sh->alert = osh->alert;

    if (z->sh->history && osh->history) {
        ngx_memcpy(z->sh->history, osh->history,
                   NGX_HTTP_LDSEG_HISTORY * sizeof(ngx_http_ldseg_tick_t));
        z->sh->history_sec = osh->history_sec;
    }

    /* the write keys' counters go on where they were */

    for (q = ngx_queue_head(&osh->accounts);
         q != ngx_queue_sentinel(&osh->accounts);
         q = ngx_queue_next(q))
    {
        oa = ngx_queue_data(q, ngx_http_ldseg_account_t, queue);

        a = ngx_http_ldseg_account_get(z, oa->key, oa->key_len);
        if (a == NULL) {
            goto nomem;
        }

        a->exported = oa->exported;
        a->skipped = oa->skipped;
        a->rejected = oa->rejected;
        a->dropped = oa->dropped;
        a->delivered = oa->delivered;
        a->failed = oa->failed;
    }

    for (dq = ngx_queue_head(&osh->dests);
         dq != ngx_queue_sentinel(&osh->dests);
         dq = ngx_queue_next(dq))
    {
        odest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        ngx_http_ldseg_dest_target(odest, &target);

        dest = ngx_http_ldseg_dest_get(z, &target, 0);
        if (dest == NULL) {
            goto nomem;
        }

        dest->refused = odest->refused;
        dest->stats = odest->stats;
        dest->last_time = odest->last_time;
        dest->last_status = odest->last_status;
        dest->error_time = odest->error_time;
        dest->paused_by = odest->paused_by;
        dest->snap = odest->snap;
        ngx_memcpy(dest->snaps, odest->snaps, sizeof(odest->snaps));
        dest->rate = odest->rate;
        dest->low = odest->low;
        dest->error_len = odest->error_len;
        ngx_memcpy(dest->error, odest->error, odest->error_len);

        for (q = ngx_queue_head(&odest->payloads);
             q != ngx_queue_sentinel(&odest->payloads);
             q = ngx_queue_next(q))
        {
            op = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (op->done || op->nevents == 0
                || ngx_http_ldseg_payload_unfinished(odest, op))
            {
                continue;
            }

            switch (ngx_http_ldseg_payload_copy_to(z, dest, op)) {

            case NGX_OK:
                copied += op->nevents;
                break;

            case NGX_DONE:
                copied += op->nevents;
                disk += op->nevents;
                break;

            default:
                goto nomem;
            }
        }
    }

    ngx_shmtx_unlock(&oz->shpool->mutex);

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "ldseg_zone \"%V\" resized: %ui queued events copied, "
                  "%ui of them on disk only", &z->name, copied, disk);

    return NGX_OK;

nomem:

    ngx_shmtx_unlock(&oz->shpool->mutex);

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "ldseg_zone \"%V\" of %uz bytes is too small for the "
                  "queued events, which stay with the running workers",
                  &z->name, z->size);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_ldseg_payload_copy_to(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *op)
{
    ngx_http_ldseg_chunk_t    *chunk, *nc;
    ngx_http_ldseg_payload_t  *p;

    /*
     * A copy of op (in a zone the master holds locked) at the end of dest
     * in the new zone z, which no worker uses yet.  NGX_OK: in memory;
     * NGX_DONE: on disk only; NGX_DECLINED: no room, nothing copied.
     */

    /*
     * Both copies may be sent: under the same ID, and with the same
     * events, so the old workers add no more events to it (harmless if
     * the reload fails: their next events start a new payload).
     */

    if (!op->has_id) {
        ngx_http_ldseg_queue_random_id(op->id);
        op->has_id = 1;
    }

    op->closed = 1;

    /* room is made by leaving what is on disk on disk only */

    p = ngx_http_ldseg_payload_new(z, dest);

    if (p == NULL && ngx_http_ldseg_evict(z)) {
        p = ngx_http_ldseg_payload_new(z, dest);
    }

    if (p == NULL) {
        return NGX_DECLINED;
    }

    p->nevents = op->nevents;
    p->len = op->len;
    p->attempts = op->attempts;
    p->closed = 1;
    p->has_id = 1;
    ngx_memcpy(p->id, op->id, 16);

    if (op->sfile) {
        p->sfile = ngx_http_ldseg_sfile_find(z, op->sfile->number);

        if (p->sfile) {
            p->soff = op->soff;
            p->slen = op->slen;
        }
    }

    for (chunk = op->head; chunk; chunk = chunk->next) {
        nc = ngx_http_ldseg_chunk_alloc(z, chunk->len, chunk->len);

        if (nc == NULL && p->sfile == NULL && ngx_http_ldseg_evict(z)) {
            nc = ngx_http_ldseg_chunk_alloc(z, chunk->len, chunk->len);
        }

        if (nc == NULL) {
            break;
        }

        nc->nevents = chunk->nevents;
        ngx_memcpy(nc->data, chunk->data, chunk->len);

        if (p->tail) {
            p->tail->next = nc;

        } else {
            p->head = nc;
        }

        p->tail = nc;
        p->mem += nc->len;
        p->slab += ngx_http_ldseg_slab_size(offsetof(ngx_http_ldseg_chunk_t,
                                                     data) + nc->size);
    }

    if (chunk != NULL || op->head == NULL) {

        /* no room in memory: it must be on disk to be kept */

        ngx_http_ldseg_payload_free_chunks(z, p);

        if (p->sfile == NULL) {
            ngx_queue_remove(&p->queue);
            ngx_slab_free_locked(z->shpool, p);
            return NGX_DECLINED;
        }
    }

    if (p->sfile) {
        p->sfile->live++;
        z->sh->spool_events += p->nevents;
    }

    if (p->head == NULL) {
        dest->dbytes += p->len;

    } else {
        z->sh->bytes += p->mem;
        z->sh->mem += p->slab;
        dest->bytes += p->mem;
    }

    z->sh->events += p->nevents;

    op->copied = 1;

    return (p->head == NULL) ? NGX_DONE : NGX_OK;
}


void
ngx_http_ldseg_queue_handover(ngx_http_ldseg_zone_t *oz,
    ngx_http_ldseg_zone_t *z, ngx_log_t *log)
{
    ngx_uint_t                 n, kept;
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_dest_t     *odest, *dest;
    ngx_http_ldseg_target_t    target;
    ngx_http_ldseg_payload_t  *op;

    /*
     * The reload is committed and no new worker runs yet: what the old
     * workers queued since the copy is copied too, and from now on they
     * answer 503 and stop sending what the new zone has a copy of.  What
     * finds no room stays theirs to send.
     */

    n = 0;
    kept = 0;

    ngx_shmtx_lock(&oz->shpool->mutex);

    for (dq = ngx_queue_head(&oz->sh->dests);
         dq != ngx_queue_sentinel(&oz->sh->dests);
         dq = ngx_queue_next(dq))
    {
        odest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        ngx_http_ldseg_dest_target(odest, &target);
        dest = NULL;

        for (q = ngx_queue_head(&odest->payloads);
             q != ngx_queue_sentinel(&odest->payloads);
             q = ngx_queue_next(q))
        {
            op = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (op->copied || op->done || op->nevents == 0
                || ngx_http_ldseg_payload_unfinished(odest, op))
            {
                continue;
            }

            if (dest == NULL) {
                dest = ngx_http_ldseg_dest_get(z, &target, 0);
            }

            if (dest != NULL
                && ngx_http_ldseg_payload_copy_to(z, dest, op)
                   != NGX_DECLINED)
            {
                n += op->nevents;

            } else {
                kept += op->nevents;
            }
        }
    }

    oz->sh->handed_over = 1;

    /* the old workers wait only for what is still theirs, then exit */
    ngx_http_ldseg_recount(oz, ngx_current_msec, NULL);

    ngx_shmtx_unlock(&oz->shpool->mutex);

    if (n || kept) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "ldseg_zone \"%V\": %ui events queued during the "
                      "reload copied, %ui left to the old workers",
                      &z->name, n, kept);
    }
}


ngx_int_t
ngx_http_ldseg_queue_replay(void *data, ngx_http_ldseg_spool_rec_t *rec)
{
    ngx_http_ldseg_replay_t *rp = data;

    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_sfile_t    *sf;
    ngx_http_ldseg_target_t    target;
    ngx_http_ldseg_payload_t  *p;

    z = rp->zone;

    if (rec->rec == NULL) {

        /* a file begins */

        sf = ngx_http_ldseg_sfile_new(z, rec->file, rec->dir.data,
                                      rec->dir.len);
        rp->sfile = sf;

        if (sf == NULL) {
            /* unknown to the zone: no worker touches it */
            rp->full = 1;
            return NGX_OK;
        }

        sf->size = rec->file_size;
        z->sh->spool_bytes += rec->file_size;

        return NGX_OK;
    }

    sf = rp->sfile;

    if (sf == NULL) {
        return NGX_OK;
    }

    if (!rp->full) {
        target.kind = rec->kind;
        target.url = rec->url;
        target.cred = rec->cred;

        dest = ngx_http_ldseg_dest_get(z, &target, 0);
        p = (dest != NULL) ? ngx_http_ldseg_payload_new(z, dest) : NULL;

        if (p != NULL) {
            p->nevents = rec->nevents;
            p->len = rec->body_len;
            p->closed = 1;
            p->has_id = 1;
            ngx_memcpy(p->id, rec->id, 16);

            p->sfile = sf;
            p->soff = rec->off;
            p->slen = rec->len;

            sf->live++;
            dest->dbytes += p->len;
            z->sh->events += p->nevents;
            z->sh->spool_events += p->nevents;
            z->sh->stats.replayed += p->nevents;
            rp->events += p->nevents;

            return NGX_OK;
        }

        rp->full = 1;
    }

    /* its records stay on disk for the next start */

    if (!sf->pinned) {
        sf->pinned = 1;
        rp->pinned++;
    }

    return NGX_OK;
}


ngx_http_ldseg_stats_t *
ngx_http_ldseg_queue_stats(ngx_shm_zone_t *zone)
{
    ngx_http_ldseg_zone_t  *z;

    if (zone == NULL) {
        return NULL;
    }

    z = zone->data;

    if (z == NULL || z->sh == NULL) {
        return NULL;
    }

    return &z->sh->stats;
}


void
ngx_http_ldseg_queue_usage(ngx_shm_zone_t *zone, ngx_http_ldseg_usage_t *u)
{
    size_t                  slab;
    ngx_queue_t            *q, *pq;
    ngx_http_ldseg_dest_t  *dest;
    ngx_http_ldseg_zone_t  *z;

    z = zone->data;

    slab = ngx_http_ldseg_slab_size(sizeof(ngx_http_ldseg_payload_t));

    ngx_shmtx_lock(&z->shpool->mutex);

    u->events = z->sh->events;
    u->bytes = z->sh->bytes;
    u->memory = z->sh->mem;
    u->inflight = 0;
    u->destinations = 0;

    for (q = ngx_queue_head(&z->sh->dests);
         q != ngx_queue_sentinel(&z->sh->dests);
         q = ngx_queue_next(q))
    {
        dest = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);
        u->inflight += dest->inflight;

        /* the chunks' memory, and the payloads' own */

        for (pq = ngx_queue_head(&dest->payloads);
             pq != ngx_queue_sentinel(&dest->payloads);
             pq = ngx_queue_next(pq))
        {
            u->memory += slab;
        }

        /* the ones kept empty for their counters are not in the queue */

        if (!ngx_http_ldseg_dest_idle(dest, ngx_current_msec)) {
            u->destinations++;
        }
    }

    u->spool_events = z->sh->spool_events;
    u->spool_bytes = z->sh->spool_bytes;

    ngx_shmtx_unlock(&z->shpool->mutex);

    u->size = z->size;
}


ngx_http_ldseg_enqueue_e
ngx_http_ldseg_queue_enqueue(ngx_shm_zone_t *zone,
    ngx_http_ldseg_target_t *target, ldseg_result_t *res,
    ngx_http_ldseg_queue_conf_t *qc, ngx_uint_t *full)
{
    size_t                     len, start, end, room, slab, count;
    uint32_t                   n, otail_len, otail_nevents;
    ngx_uint_t                 i, j;
    ngx_queue_t               *q;
    ngx_http_ldseg_sh_t       *sh;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_zone_t     *z;
    size_t                     olen, omem, oslab;
    ngx_uint_t                 onevents;
    uint64_t                   rtotal, now;
    ngx_http_ldseg_chunk_t    *chunk, *next, *otail;
    ngx_http_ldseg_payload_t  *p, *op, *first;
    ngx_http_ldseg_enqueue_e   rc;

    z = zone->data;
    sh = z->sh;
    *full = 0;

    now = ngx_http_ldseg_unix_ms();
    rtotal = 0;

    dest = NULL;
    op = NULL;
    first = NULL;
    otail = NULL;
    otail_len = 0;
    otail_nevents = 0;
    onevents = 0;
    olen = 0;
    omem = 0;
    oslab = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    /*
     * A committed reload moved this zone's queue to a resized zone that
     * the old workers cannot reach: they answer 503, the client retries
     * and reaches a new worker.
     */

    if (sh->handed_over) {
        rc = NGX_HTTP_LDSEG_ENQ_MOVED;
        goto failed;
    }

    rc = NGX_HTTP_LDSEG_ENQ_FULL;

    if (sh->recent != NULL) {
        rtotal = sh->recent->total;
    }

    if (qc->limit && sh->bytes + res->events_len > qc->limit
        && (ngx_http_ldseg_evict(z) == 0
            || sh->bytes + res->events_len > qc->limit))
    {
        goto failed;
    }

    dest = ngx_http_ldseg_dest_get(z, target, qc->max_destinations);

    if (dest == NULL) {
        if (qc->max_destinations && sh->ndests >= qc->max_destinations) {
            rc = NGX_HTTP_LDSEG_ENQ_DESTINATIONS;
        }

        goto failed;
    }

    /*
     * While LaunchDarkly refuses a client-side ID, its events are kept,
     * but all refused IDs together may fill an eighth of the zone only
     * (in memory and in the spool): the other destinations go on, and
     * the clients of refused ones get 503 and keep their events.
     */

    if (dest->refused
        && ngx_http_ldseg_refused_bytes(z) + res->events_len > z->size / 8)
    {
        rc = NGX_HTTP_LDSEG_ENQ_REFUSED;
        goto failed;
    }

    /* the open payload: the last one, if it still takes events */

    p = NULL;

    if (!ngx_queue_empty(&dest->payloads)) {
        q = ngx_queue_last(&dest->payloads);
        p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

        if (p->closed || p->head == NULL) {
            p = NULL;

        } else {
            /* remembered as it was, to undo on a full zone */
            op = p;
            otail = p->tail;
            otail_len = otail->len;
            otail_nevents = otail->nevents;
            onevents = p->nevents;
            olen = p->len;
            omem = p->mem;
            oslab = p->slab;
        }
    }

    i = 0;

    while (i < res->n) {

        if (res->msgs[i].status != LDSEG_MSG_EVENT) {
            i++;
            continue;
        }

        /*
         * The open payload takes the next event only within the limits;
         * max_payload bounds the POST body, the array's brackets included
         */

        if (p != NULL
            && (p->nevents >= qc->batch_size
                || p->len + 1 + res->msgs[i].event_len + 2 > qc->max_payload))
        {
            p->closed = 1;
            p = NULL;
        }

        if (p == NULL) {
            p = ngx_http_ldseg_payload_new(z, dest);

            if (p == NULL && ngx_http_ldseg_evict(z)) {
                p = ngx_http_ldseg_payload_new(z, dest);
            }

            if (p == NULL) {
                goto undo;
            }

            if (first == NULL) {
                first = p;
            }
        }

        /*
         * Take events i.. while the payload has room; at least one.  They
         * go after a comma into the room left in the payload's last chunk
         * while they fit there, else into a new chunk.
         */

        chunk = p->tail;
        room = 0;

        if (chunk != NULL && chunk->size > chunk->len + 1) {
            room = chunk->size - chunk->len - 1;
        }

        start = res->msgs[i].event_off;

        j = ldseg_result_run(res, i, p->nevents, p->len, qc->batch_size,
                             qc->max_payload, &room, &count, &end);

        n = (uint32_t) (end - start);

        if (room) {

            /* invisible until the chunk's length takes it in */

            chunk->data[chunk->len] = ',';
            ngx_memcpy(&chunk->data[chunk->len + 1], res->events + start, n);

            ngx_http_ldseg_crash("queue_enqueue_append");

            chunk->len += 1 + n;
            chunk->nevents += (uint32_t) count;
            p->len += 1 + n;
            p->nevents += count;
            p->mem += 1 + n;

            ngx_http_ldseg_crash("queue_enqueue_appended");

            sh->events += count;
            sh->bytes += 1 + n;
            dest->bytes += 1 + n;

        } else {

            /*
             * A new chunk with room for as much as the payload holds
             * already, up to a page: a payload of small events takes a
             * few growing chunks, then pages filled to their ends
             */

            len = ngx_min(p->len, ngx_pagesize
                                  - offsetof(ngx_http_ldseg_chunk_t, data));

            chunk = ngx_http_ldseg_chunk_alloc(z, n, ngx_max(n, len));

            if (chunk == NULL && len > n) {
                chunk = ngx_http_ldseg_chunk_alloc(z, n, n);
            }

            if (chunk == NULL && ngx_http_ldseg_evict(z)) {
                chunk = ngx_http_ldseg_chunk_alloc(z, n, n);
            }

            if (chunk == NULL) {
                goto undo;
            }

            chunk->nevents = (uint32_t) count;
            ngx_memcpy(chunk->data, res->events + start, n);

            ngx_http_ldseg_crash("queue_enqueue_chunk");

            if (p->tail) {
                p->tail->next = chunk;
                p->len += 1 + n;

            } else {
                p->head = chunk;
                p->len = n;
            }

            slab = ngx_http_ldseg_slab_size(offsetof(ngx_http_ldseg_chunk_t,
                                                     data) + chunk->size);

            p->tail = chunk;
            p->nevents += count;
            p->mem += n;
            p->slab += slab;

            ngx_http_ldseg_crash("queue_enqueue_linked");

            sh->events += count;
            sh->bytes += n;
            sh->mem += slab;
            dest->bytes += n;
        }

        if (sh->recent != NULL) {
            ngx_http_ldseg_recent_add(sh->recent, dest, p->seq, res, i, j,
                                      now);
        }

        if (p->nevents >= qc->batch_size || p->len + 2 >= qc->max_payload) {
            p->closed = 1;
            *full = 1;
        }

        i = j;
    }

    /* the request's messages, where the lock is held anyway */

    dest->stats.received += res->n;
    dest->stats.accepted += res->nevents + res->nskipped + res->nduplicates;
    dest->stats.rejected += res->nrejected;
    dest->stats.queued += res->nevents;

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_HTTP_LDSEG_ENQ_OK;

undo:

    /*
     * The zone is full: what this request added is taken back (the new
     * payloads, then the open payload's new chunks), so that a request is
     * queued whole or not at all.
     */

    while (first != NULL) {
        q = ngx_queue_last(&dest->payloads);
        p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

        ngx_http_ldseg_payload_forget(z, p, NULL);

        if (p == first) {
            break;
        }
    }

    /* the recent events of this request were not queued after all */

    if (sh->recent != NULL) {
        for ( /* void */ ; rtotal < sh->recent->total; rtotal++) {
            if (sh->recent->total - rtotal <= sh->recent->n) {
                sh->recent->e[rtotal % sh->recent->n].outcome =
                                                NGX_HTTP_LDSEG_RECENT_REFUSED;
            }
        }
    }

    if (op != NULL) {
        chunk = (otail != NULL) ? otail->next : op->head;

        while (chunk) {
            next = chunk->next;
            sh->events -= chunk->nevents;
            sh->bytes -= chunk->len;
            slab = offsetof(ngx_http_ldseg_chunk_t, data) + chunk->size;
            sh->mem -= ngx_http_ldseg_slab_size(slab);
            dest->bytes -= chunk->len;
            ngx_slab_free_locked(z->shpool, chunk);
            chunk = next;
        }

        if (otail != NULL) {
            /* what went into its room */
            sh->events -= otail->nevents - otail_nevents;
            sh->bytes -= otail->len - otail_len;
            dest->bytes -= otail->len - otail_len;

            otail->len = otail_len;
            otail->nevents = otail_nevents;
            otail->next = NULL;

        } else {
            op->head = NULL;
        }

        op->tail = otail;
        op->nevents = onevents;
        op->len = olen;
        op->mem = omem;
        op->slab = oslab;
        op->closed = 0;
    }

failed:

    /* refused with 503 as a whole: every message counts as rejected */

    if (dest == NULL) {
        dest = ngx_http_ldseg_dest_lookup(z, target);
    }

    if (dest != NULL) {
        dest->stats.received += res->n;
        dest->stats.rejected += res->n;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_ldseg_queue_lease(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_msec_t lease_time, ngx_uint_t full_only, ngx_http_ldseg_lease_t *l)
{
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_sh_t       *sh;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_payload_t  *p;

    z = zone->data;
    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (dq = ngx_queue_head(&sh->dests);
         dq != ngx_queue_sentinel(&sh->dests);
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        if ((ngx_msec_int_t) (dest->not_before - now) > 0) {
            continue;
        }

        for (q = ngx_queue_head(&dest->payloads);
             q != ngx_queue_sentinel(&dest->payloads);
             q = ngx_queue_next(q))
        {
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (p->done || p->nevents == 0 || (full_only && !p->closed)
                || p->hold || (p->copied && sh->handed_over)
                || (p->head == NULL && p->sfile == NULL)
                || (ngx_msec_int_t) (p->not_before - now) > 0)
            {
                continue;
            }

            if (p->leased) {
                if ((ngx_msec_int_t) (p->lease_until - now) > 0
                    && !ngx_http_ldseg_pid_dead(p->owner))
                {
                    continue;
                }

                /*
                 * The worker that leased it died or hangs: send it again,
                 * without the halves of a split it may have left held.
                 */

                p->leased = 0;
                dest->inflight--;
                (void) ngx_atomic_fetch_add(&sh->stats.lease_expired, 1);
            }

            /*
             * A split of it cut short by a killed worker (its lease
             * ended before the split, or expired): p is sent whole, the
             * held halves go.  Were they kept, a second split of p would
             * finish the first one too, and the events would be sent
             * under the IDs of both.
             */

            if (p->splitting) {
                ngx_http_ldseg_payload_unsplit(z, dest, p);
            }

            /* after a failure, probe with one payload at a time */

            if (dest->failures && dest->inflight) {
                break;
            }

            if (!p->has_id) {
                ngx_http_ldseg_queue_random_id(p->id);
                p->has_id = 1;
            }

            p->closed = 1;
            p->lease_until = now + lease_time;
            p->lease_gen++;
            p->owner = ngx_pid;
            p->leased = 1;
            dest->inflight++;

            dest->stats.posts++;

            if (p->attempts) {
                dest->stats.retries++;
            }

            ngx_http_ldseg_crash("queue_lease");

            l->dest = dest;
            l->dest_id = dest->id;
            l->seq = p->seq;
            l->lease_gen = p->lease_gen;
            l->nevents = p->nevents;
            l->len = p->len;
            l->attempts = p->attempts;
            ngx_memcpy(l->id, p->id, 16);

            l->kind = dest->kind;
            l->url_len = dest->url_len;
            ngx_memcpy(l->url, dest->url, dest->url_len);
            l->cred_len = dest->cred_len;
            ngx_memcpy(l->cred, dest->url + dest->url_len + 1,
                       dest->cred_len);

            l->on_disk = (p->head == NULL);
            l->disk.off = 0;
            l->disk.len = 0;

            if (l->on_disk) {
                ngx_http_ldseg_spool_name(p->sfile->dir, p->sfile->dir_len,
                                          p->sfile->number, l->disk.name);
                l->disk.off = p->soff;
                l->disk.len = p->slen;
            }

            /* round robin between destinations */
            ngx_queue_remove(dq);
            ngx_queue_insert_tail(&sh->dests, dq);

            ngx_shmtx_unlock(&z->shpool->mutex);

            return NGX_OK;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_ldseg_queue_count_delivered(ngx_shm_zone_t *zone,
    ngx_http_ldseg_target_t *target, ldseg_result_t *res, ngx_uint_t sent,
    ngx_uint_t accepted, ngx_uint_t failed, ngx_uint_t dropped,
    ngx_uint_t max_destinations)
{
    ngx_int_t               rc;
    ngx_http_ldseg_dest_t  *dest;
    ngx_http_ldseg_zone_t  *z;

    z = zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&z->shpool->mutex);

    /* an old worker after a resize counts in the zone it was given */

    dest = ngx_http_ldseg_dest_get(z, target, max_destinations);

    if (dest != NULL) {
        dest->stats.received += res->n;
        dest->stats.accepted += res->nevents + res->nskipped
                                + res->nduplicates;
        dest->stats.rejected += res->nrejected;
        dest->stats.subrequests += sent;
        dest->stats.subrequests_accepted += accepted;
        dest->stats.subrequests_failed += failed;
        dest->stats.dropped += dropped;

        /* it lingers for the status from now on */
        dest->idle = 0;

        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


u_char *
ngx_http_ldseg_queue_copy_out(ngx_shm_zone_t *zone, ngx_http_ldseg_lease_t *l,
    u_char *buf)
{
    u_char                    *last;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_payload_t  *p;

    z = zone->data;
    last = NULL;

    ngx_shmtx_lock(&z->shpool->mutex);

    dest = ngx_http_ldseg_dest_find(z, l->dest, l->dest_id);
    p = (dest != NULL) ? ngx_http_ldseg_payload_find(dest, l->seq) : NULL;

    if (p != NULL && p->leased && p->lease_gen == l->lease_gen
        && p->head != NULL && p->len == l->len)
    {
        last = ngx_http_ldseg_payload_copy(p, buf);

        ngx_http_ldseg_crash("queue_copy_out");
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return last;
}


void
ngx_http_ldseg_queue_complete(ngx_shm_zone_t *zone, ngx_http_ldseg_lease_t *l,
    ldseg_delivery_t *d, ngx_uint_t status, ngx_http_ldseg_answer_t *a,
    ngx_msec_t now, u_char *body, size_t len, ngx_http_ldseg_spool_ops_t *ops,
    ngx_http_ldseg_done_t *done)
{
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_payload_t  *p, *halves[2];

    z = zone->data;
    ngx_memzero(done, sizeof(ngx_http_ldseg_done_t));

    ngx_shmtx_lock(&z->shpool->mutex);

    dest = ngx_http_ldseg_dest_find(z, l->dest, l->dest_id);

    if (dest == NULL) {
        /* the lease expired, another worker delivered it, all is gone */
        goto unlock;
    }

    /* the status of the destination: the POST's outcome, as it ended */

    if (a != NULL) {
        dest->last_time = a->time;
        dest->last_status = status;

        if (d->outcome == LDSEG_DELIVERY_DONE) {
            dest->stats.delivered += l->nevents;
            dest->paused_by = NGX_HTTP_LDSEG_PAUSE_NONE;

        } else {
            dest->stats.failed += l->nevents;
            dest->stats.posts_failed++;

            if (a->error != NULL) {
                dest->error_time = a->time;
                dest->error_len = ngx_min(a->error_len,
                                          NGX_HTTP_LDSEG_ERROR_MAX);
                ngx_memcpy(dest->error, a->error, dest->error_len);
            }

            if (d->pause_destination) {
                dest->paused_by = (d->outcome == LDSEG_DELIVERY_REFUSED_ID)
                                  ? NGX_HTTP_LDSEG_PAUSE_REFUSED
                                  : a->retry_after
                                    ? NGX_HTTP_LDSEG_PAUSE_RETRY_AFTER
                                    : NGX_HTTP_LDSEG_PAUSE_BACKOFF;
            }
        }
    }

    /* only an answer of LaunchDarkly changes whether it refuses the ID */

    if (d->outcome == LDSEG_DELIVERY_REFUSED_ID) {
        if (dest->refused != status) {
            done->refused_first = 1;
        }

        dest->refused = status;

    } else if (d->outcome == LDSEG_DELIVERY_DONE) {
        dest->refused = 0;
        dest->failures = 0;
    }

    p = ngx_http_ldseg_payload_find(dest, l->seq);

    if (p == NULL) {
        /* the lease expired and another worker delivered it */
        goto unlock;
    }

    if (p->lease_gen != l->lease_gen) {

        /* the lease expired and another worker took the payload over */

        if (d->outcome == LDSEG_DELIVERY_DONE) {
            if (p->leased) {
                p->done = 1;

            } else {
                ngx_http_ldseg_payload_gone(z, p, ops);
            }
        }

        goto unlock;
    }

    if (p->done) {

        /*
         * An earlier lease of it was delivered meanwhile: LaunchDarkly
         * has the events, whatever this POST's answer (a split or a retry
         * would send them again under other payload IDs)
         */

        if (p->leased) {
            p->leased = 0;
            dest->inflight--;
        }

        ngx_http_ldseg_payload_gone(z, p, ops);
        goto unlock;
    }

    if (p->leased) {
        p->leased = 0;
        dest->inflight--;
    }

    ngx_http_ldseg_crash("queue_complete");

    if (z->sh->recent != NULL && a != NULL) {
        ngx_http_ldseg_recent_done(z->sh->recent, l,
            d->outcome == LDSEG_DELIVERY_DONE
            ? NGX_HTTP_LDSEG_RECENT_DELIVERED
            : d->outcome == LDSEG_DELIVERY_DEAD_LETTER
              ? NGX_HTTP_LDSEG_RECENT_DEAD
              : d->outcome == LDSEG_DELIVERY_SPLIT
                ? (p->nevents < 2 ? NGX_HTTP_LDSEG_RECENT_DROPPED
                                  : NGX_HTTP_LDSEG_RECENT_SPLIT)
                : NGX_HTTP_LDSEG_RECENT_RETRYING,
            status, ngx_http_ldseg_unix_ms());
    }

    switch (d->outcome) {

    case LDSEG_DELIVERY_DONE:
        ngx_http_ldseg_payload_gone(z, p, ops);
        break;

    case LDSEG_DELIVERY_SPLIT:

        if (p->nevents < 2) {
            /* one event LaunchDarkly will never take */
            done->dropped = p->nevents;
            done->drop_reason = NGX_HTTP_LDSEG_DROP_TOO_LARGE;
            dest->stats.dropped += p->nevents;
            ngx_http_ldseg_payload_gone(z, p, ops);
            break;
        }

        if (body != NULL
            && ngx_http_ldseg_payload_split(z, p, body, len, halves)
               == NGX_OK)
        {
            /*
             * The halves are held until the original is gone: a worker
             * killed in between leaves either the original or the
             * halves, never both (ngx_http_ldseg_recount()).
             */

            ngx_http_ldseg_crash("queue_split");
            ngx_http_ldseg_payload_forget(z, p, ops);
            ngx_http_ldseg_crash("queue_split_forgotten");
            halves[0]->hold = 0;
            halves[1]->hold = 0;
            break;
        }

        /* no room for the halves yet */
        p->attempts++;
        p->not_before = now + 1000;
        break;

    case LDSEG_DELIVERY_DEAD_LETTER:
        done->dead_letter = p->nevents;
        dest->stats.dead_lettered += p->nevents;
        ngx_http_ldseg_payload_gone(z, p, ops);
        break;

    default: /* LDSEG_DELIVERY_RETRY, LDSEG_DELIVERY_REFUSED_ID */

        p->attempts++;

        if (d->pause_destination) {
            dest->failures++;
            dest->not_before = now + (ngx_msec_t) d->delay_ms;

        } else {
            p->not_before = now + (ngx_msec_t) d->delay_ms;
        }

        if (d->move_behind) {
            ngx_queue_remove(&p->queue);
            ngx_queue_insert_tail(&dest->payloads, &p->queue);
        }

        break;
    }

unlock:

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_int_t
ngx_http_ldseg_queue_spool_claim(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_msec_t delay, ngx_uint_t all, off_t max_size, ngx_str_t *dir,
    uint32_t *file, ngx_http_ldseg_spool_job_t *job)
{
    u_char                        *b;
    size_t                         size, rlen;
    ngx_uint_t                     pass;
    ngx_queue_t                   *dq, *q;
    ngx_http_ldseg_sh_t           *sh;
    ngx_http_ldseg_dest_t         *dest;
    ngx_http_ldseg_zone_t         *z;
    ngx_http_ldseg_sfile_t        *sf;
    ngx_http_ldseg_payload_t      *p;
    ngx_http_ldseg_spool_claim_t  *c;

    z = zone->data;
    sh = z->sh;
    size = 0;
    b = NULL;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (sh->spool_bytes >= max_size) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_BUSY;
    }

    /*
     * Two passes: the first sizes the records, the second copies them
     * into one buffer of this process, so the payloads can be written
     * without the lock and are never read from the zone unlocked.
     */

    for (pass = 0; pass < 2; pass++) {

        if (pass == 1) {
            if (size == 0) {
                break;
            }

            job->buf = ngx_pnalloc(job->pool, size);
            if (job->buf == NULL) {
                break;
            }

            b = job->buf;
            size = 0;
        }

        for (dq = ngx_queue_head(&sh->dests);
             dq != ngx_queue_sentinel(&sh->dests);
             dq = ngx_queue_next(dq))
        {
            dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

            for (q = ngx_queue_head(&dest->payloads);
                 q != ngx_queue_sentinel(&dest->payloads);
                 q = ngx_queue_next(q))
            {
                p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

                if (p->head == NULL || p->sfile != NULL || p->done
                    || p->hold || p->nevents == 0
                    || (p->copied && sh->handed_over)
                    || (p->spooling
                        && (ngx_msec_int_t) (p->spool_until - now) > 0
                        && !ngx_http_ldseg_pid_dead(p->spooler))
                    || (!all && now - p->created < delay))
                {
                    continue;
                }

                rlen = ngx_http_ldseg_spool_record_size(
                           ngx_http_ldseg_dest_key_len(dest), p->len + 2);

                if (size > 0 && size + rlen > NGX_HTTP_LDSEG_SPOOL_JOB_MAX) {
                    goto next;
                }

                if (pass == 0) {
                    size += rlen;
                    continue;
                }

                if (size + rlen > job->len) {
                    /* the first pass sized a smaller set */
                    goto next;
                }

                c = ngx_array_push(job->claims);
                if (c == NULL) {
                    goto next;
                }

                if (!p->has_id) {
                    ngx_http_ldseg_queue_random_id(p->id);
                    p->has_id = 1;
                }

                /* it takes no more events: the record is its whole self */

                p->closed = 1;
                p->spooling = 1;
                p->spooler = ngx_pid;
                p->spool_until = now + NGX_HTTP_LDSEG_SPOOL_CLAIM;

                c->owner = dest;
                c->owner_id = dest->id;
                c->seq = p->seq;
                ngx_memcpy(c->id, p->id, 16);
                c->pos = size;
                c->len = rlen;
                c->off = 0;

                b = ngx_http_ldseg_spool_record_start(job->buf + size,
                                        p->id, p->nevents, dest->kind,
                                        dest->url,
                                        ngx_http_ldseg_dest_key_len(dest));
                b = ngx_http_ldseg_payload_copy(p, b);

                size += rlen;
            }
        }

    next:

        if (pass == 0) {
            /* the bound of the second pass */
            job->len = size;
        }
    }

    if (b == NULL || job->claims->nelts == 0) {
        job->len = 0;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_DECLINED;
    }

    job->len = size;

    if (*file == 0) {
        sf = ngx_http_ldseg_sfile_new(z, ++sh->spool_seq, dir->data, dir->len);

        if (sf == NULL) {
            c = job->claims->elts;

            for (pass = 0; pass < job->claims->nelts; pass++) {
                dest = c[pass].owner;
                p = ngx_http_ldseg_payload_find(dest, c[pass].seq);
                if (p != NULL) {
                    p->spooling = 0;
                }
            }

            job->len = 0;
            ngx_shmtx_unlock(&z->shpool->mutex);
            return NGX_DECLINED;
        }

        sf->writer = ngx_pid;
        *file = sf->number;
    }

    ngx_http_ldseg_crash("queue_spool_claim");

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


void
ngx_http_ldseg_queue_spool_done(ngx_shm_zone_t *zone,
    ngx_http_ldseg_spool_job_t *job, ngx_uint_t ok, ngx_uint_t close,
    ngx_http_ldseg_spool_ops_t *ops)
{
    off_t                          base;
    ngx_uint_t                     i;
    ngx_http_ldseg_sh_t           *sh;
    ngx_http_ldseg_dest_t         *dest;
    ngx_http_ldseg_zone_t         *z;
    ngx_http_ldseg_sfile_t        *sf;
    ngx_http_ldseg_payload_t      *p;
    ngx_http_ldseg_spool_claim_t  *c;

    z = zone->data;
    sh = z->sh;

    base = ok ? *job->size - (off_t) job->len : 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    sf = (job->file != 0) ? ngx_http_ldseg_sfile_find(z, job->file) : NULL;

    if (ok && sf != NULL) {
        sh->spool_bytes += *job->size - sf->size;
        sf->size = *job->size;
    }

    c = (job->claims != NULL) ? job->claims->elts : NULL;

    for (i = 0; c != NULL && i < job->claims->nelts; i++) {
        c[i].off = base + c[i].pos;

        dest = ngx_http_ldseg_dest_find(z, c[i].owner, c[i].owner_id);
        p = (dest != NULL) ? ngx_http_ldseg_payload_find(dest, c[i].seq)
                           : NULL;

        if (p != NULL && p->spooling && p->spooler == ngx_pid
            && ngx_memcmp(p->id, c[i].id, 16) == 0)
        {
            p->spooling = 0;

            if (ok && sf != NULL && p->sfile == NULL) {
                p->sfile = sf;
                p->soff = c[i].off;
                p->slen = c[i].len;
                sf->live++;
                sh->spool_events += p->nevents;
                (void) ngx_atomic_fetch_add(&sh->stats.spooled, p->nevents);
                continue;
            }
        }

        if (ok && sf != NULL) {
            /* delivered or split while it was written: never replayed */
            (void) ngx_http_ldseg_spool_op_file(ops, NGX_HTTP_LDSEG_SPOOL_MARK,
                                                sf->dir, sf->dir_len,
                                                sf->number, c[i].off);
        }
    }

    ngx_http_ldseg_crash("queue_spool_done");

    if (close && sf != NULL && sf->writer == ngx_pid) {
        sf->writer = 0;
        (void) ngx_http_ldseg_sfile_release(z, sf, ops);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_http_ldseg_queue_reap(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_http_ldseg_spool_ops_t *ops, ngx_http_ldseg_alert_conf_t *ac,
    ngx_http_ldseg_alert_out_t *out)
{
    ngx_uint_t              pages, short_of_pages;
    ngx_queue_t            *q, *next;
    ngx_http_ldseg_sh_t    *sh;
    ngx_http_ldseg_dest_t  *dest;
    ngx_http_ldseg_zone_t  *z;
    ngx_http_ldseg_sfile_t *sf;

    z = zone->data;
    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    ngx_http_ldseg_recount(z, now, ops);

    ngx_http_ldseg_crash("queue_reap");

    ngx_http_ldseg_watch(z, now, ac, out);

    /* files of workers that died are closed; empty ones unlinked */

    for (q = ngx_queue_head(&sh->sfiles);
         q != ngx_queue_sentinel(&sh->sfiles);
         q = next)
    {
        next = ngx_queue_next(q);
        sf = ngx_queue_data(q, ngx_http_ldseg_sfile_t, queue);

        if (sf->writer && ngx_http_ldseg_pid_dead(sf->writer)) {
            sf->writer = 0;
        }

        (void) ngx_http_ldseg_sfile_release(z, sf, ops);
    }

    /*
     * Empty destinations that wait for nothing are kept a while for the
     * status (their counters go on), and freed at once when the zone
     * runs short of free pages.
     */

    pages = (z->shpool->end - z->shpool->start) / ngx_pagesize;
    short_of_pages = (z->shpool->pfree < pages / 4);

    for (q = ngx_queue_head(&sh->dests);
         q != ngx_queue_sentinel(&sh->dests);
         q = next)
    {
        next = ngx_queue_next(q);
        dest = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);

        if (!ngx_http_ldseg_dest_idle(dest, now)) {
            dest->idle = 0;
            continue;
        }

        if (!dest->idle) {
            dest->idle = 1;
            dest->idle_since = now;
        }

        if (short_of_pages || sh->handed_over
            || now - dest->idle_since >= NGX_HTTP_LDSEG_LINGER)
        {
            ngx_http_ldseg_dest_free(z, dest);
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_http_ldseg_queue_release(ngx_shm_zone_t *zone)
{
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_payload_t  *p;

    z = zone->data;

    if (z == NULL || z->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    for (dq = ngx_queue_head(&z->sh->dests);
         dq != ngx_queue_sentinel(&z->sh->dests);
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        for (q = ngx_queue_head(&dest->payloads);
             q != ngx_queue_sentinel(&dest->payloads);
             q = ngx_queue_next(q))
        {
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (p->leased && p->owner == ngx_pid) {
                p->leased = 0;
                dest->inflight--;
            }

            if (p->spooling && p->spooler == ngx_pid) {
                p->spooling = 0;
            }
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_int_t
ngx_http_ldseg_queue_view(ngx_shm_zone_t *zone, ngx_pool_t *pool,
    ngx_uint_t what, ngx_http_ldseg_view_t *v)
{
    size_t                         rsize;
    ngx_int_t                      rc;
    ngx_msec_t                     now;
    ngx_queue_t                   *dq, *q;
    ngx_http_ldseg_sh_t           *sh;
    ngx_http_ldseg_dest_t         *dest;
    ngx_http_ldseg_zone_t         *z;
    ngx_http_ldseg_payload_t      *p;
    ngx_http_ldseg_dest_status_t  *ds;

    z = zone->data;
    sh = z->sh;
    now = ngx_current_msec;
    rc = NGX_ERROR;

    v->history = NULL;
    v->recent = NULL;
    rsize = 0;

    if (what & NGX_HTTP_LDSEG_VIEW_RECENT) {

        /* sized without the lock: the ring may change until it is held */

        rsize = ngx_http_ldseg_recent_size(NGX_HTTP_LDSEG_RECENT_MAX);

        v->recent = ngx_palloc(pool, rsize);
        if (v->recent == NULL) {
            return NGX_ERROR;
        }
    }

    if (what & NGX_HTTP_LDSEG_VIEW_HISTORY) {
        v->history = ngx_palloc(pool, NGX_HTTP_LDSEG_HISTORY
                                      * sizeof(ngx_http_ldseg_tick_t));
        if (v->history == NULL) {
            return NGX_ERROR;
        }
    }

    /*
     * Copied in one lock round, into the request's pool: the number of
     * destinations is bounded by ldseg_max_destinations.
     */

    ngx_shmtx_lock(&z->shpool->mutex);

    v->dests = ngx_array_create(pool, sh->ndests ? sh->ndests : 1,
                                sizeof(ngx_http_ldseg_dest_status_t));
    if (v->dests == NULL) {
        goto done;
    }

    for (dq = ngx_queue_head(&sh->dests);
         dq != ngx_queue_sentinel(&sh->dests);
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        ds = ngx_array_push(v->dests);
        if (ds == NULL) {
            goto done;
        }

        ngx_memzero(ds, sizeof(ngx_http_ldseg_dest_status_t));

        ds->url.len = dest->url_len;
        ds->url.data = ngx_pnalloc(pool, dest->url_len + dest->error_len
                                         + dest->cred_len);
        if (ds->url.data == NULL) {
            goto done;
        }

        ngx_memcpy(ds->url.data, dest->url, dest->url_len);

        ds->error.len = dest->error_len;
        ds->error.data = ds->url.data + dest->url_len;
        ngx_memcpy(ds->error.data, dest->error, dest->error_len);

        /* Segment: the write key, which the status shows as its label */

        ds->kind = dest->kind;
        ds->cred.len = dest->cred_len;
        ds->cred.data = ds->error.data + dest->error_len;

        if (dest->cred_len) {
            ngx_memcpy(ds->cred.data, dest->url + dest->url_len + 1,
                       dest->cred_len);
        }

        ds->stats = dest->stats;
        ds->last_status = dest->last_status;
        ds->last_time = dest->last_time;
        ds->error_time = dest->error_time;
        ds->refused = dest->refused;
        ds->rate = dest->rate;
        ds->low = dest->low;

        if ((ngx_msec_int_t) (dest->not_before - now) > 0) {
            ds->paused_by = dest->paused_by ? dest->paused_by
                                            : NGX_HTTP_LDSEG_PAUSE_BACKOFF;
            ds->paused_ms = dest->not_before - now;
        }

        for (q = ngx_queue_head(&dest->payloads);
             q != ngx_queue_sentinel(&dest->payloads);
             q = ngx_queue_next(q))
        {
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (p->done || p->hold || p->nevents == 0
                || (p->copied && sh->handed_over))
            {
                continue;
            }

            ds->events += p->nevents;
            ds->bytes += p->head ? p->mem : p->len;

            if (p->leased) {
                ds->inflight++;
            }

            if (!ds->has_oldest || now - p->created > ds->oldest_age) {
                ds->oldest_age = now - p->created;
                ds->has_oldest = 1;
            }
        }
    }

    v->retired = sh->retired;
    v->nretired = sh->nretired;
    v->alert = sh->alert;

    if (v->recent != NULL) {
        if (sh->recent != NULL
            && ngx_http_ldseg_recent_size(sh->recent->n) <= rsize)
        {
            ngx_memcpy(v->recent, sh->recent,
                       ngx_http_ldseg_recent_size(sh->recent->n));

        } else {
            v->recent = NULL;
        }
    }

    if (v->history != NULL) {
        if (sh->history != NULL) {
            ngx_memcpy(v->history, sh->history,
                       NGX_HTTP_LDSEG_HISTORY * sizeof(ngx_http_ldseg_tick_t));

        } else {
            v->history = NULL;
        }
    }

    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&z->shpool->mutex);

    /* in a stable order (the lease rotates the list), out of the lock */

    if (rc == NGX_OK) {
        ngx_sort(v->dests->elts, v->dests->nelts,
                 sizeof(ngx_http_ldseg_dest_status_t),
                 ngx_http_ldseg_view_cmp);
    }

    return rc;
}


static ngx_int_t
ngx_http_ldseg_view_cmp(const void *a, const void *b)
{
    ngx_int_t                      rc;
    ngx_http_ldseg_dest_status_t  *da, *db;

    da = (ngx_http_ldseg_dest_status_t *) a;
    db = (ngx_http_ldseg_dest_status_t *) b;

    rc = ngx_memn2cmp(da->url.data, db->url.data, da->url.len, db->url.len);

    return rc;
}


static void
ngx_http_ldseg_dstats_add(ngx_http_ldseg_dstats_t *to,
    ngx_http_ldseg_dstats_t *from)
{
    to->received += from->received;
    to->accepted += from->accepted;
    to->rejected += from->rejected;
    to->queued += from->queued;
    to->delivered += from->delivered;
    to->failed += from->failed;
    to->dead_lettered += from->dead_lettered;
    to->dropped += from->dropped;
    to->posts += from->posts;
    to->posts_failed += from->posts_failed;
    to->retries += from->retries;
    to->subrequests += from->subrequests;
    to->subrequests_accepted += from->subrequests_accepted;
    to->subrequests_failed += from->subrequests_failed;
}


static void
ngx_http_ldseg_watch(ngx_http_ldseg_zone_t *z, ngx_msec_t now,
    ngx_http_ldseg_alert_conf_t *ac, ngx_http_ldseg_alert_out_t *out)
{
    u_char                     *ids, *age_ids, *last, *age_last;
    uint32_t                    sec;
    ngx_uint_t                  rate, known, old;
    ngx_msec_t                  every, age, oldest;
    ngx_queue_t                *dq;
    ngx_http_ldseg_sh_t        *sh;
    ngx_http_ldseg_snap_t       cur;
    ngx_http_ldseg_tick_t      *tick;
    ngx_http_ldseg_dest_t      *dest;
    ngx_http_ldseg_alert_sh_t  *al;

    /*
     * Under the lock from the flush timer of every worker, but done by
     * one process a second: the first that finds the check due.  Only
     * that process logs a change, so every change is logged once.
     */

    sh = z->sh;
    al = &sh->alert;

    if (out != NULL) {
        ngx_memzero(out, offsetof(ngx_http_ldseg_alert_out_t, ids));
    }

    if (al->next != 0 && (ngx_msec_int_t) (now - al->next) < 0) {
        return;
    }

    /* as often as the alert window needs snapshots, a second at most */

    every = (ac != NULL && ac->rate) ? ac->window / NGX_HTTP_LDSEG_SNAPS
                                     : 1000;

    if (every == 0) {
        every = 1;
    }

    al->next = (now + ngx_min(every, 1000)) | 1;

    /* the per-second history: cumulative counters, read as they are */

    sec = (uint32_t) ngx_time();

    if (sh->history != NULL && sec != sh->history_sec) {
        tick = &sh->history[sec % NGX_HTTP_LDSEG_HISTORY];

        tick->sec = sec;
        tick->received = (uint32_t) sh->stats.received;
        tick->rejected = (uint32_t) sh->stats.rejected;
        tick->delivered = (uint32_t) sh->stats.delivered;
        tick->failed = (uint32_t) sh->stats.failed;

        sh->history_sec = sec;
    }

    if (ac == NULL || ac->rate == 0 || out == NULL) {
        return;
    }

    /* the rate of the zone over the window */

    cur.time = now | 1;
    cur.delivered = sh->stats.delivered;
    cur.failed = sh->stats.failed;
    cur.dead = sh->stats.dead_lettered;

    if (al->snaps[0].time == 0) {
        /* the first check: the window starts now */
        al->snaps[0] = cur;
        al->snap = 1;
    }

    known = ngx_http_ldseg_snap_rate(al->snaps, &al->snap, &cur, now, every,
                                     0, &rate);

    ids = out->ids;
    last = out->ids + NGX_HTTP_LDSEG_ALERT_IDS;
    age_ids = out->age_ids;
    age_last = out->age_ids + NGX_HTTP_LDSEG_ALERT_IDS;
    oldest = 0;
    old = 0;

    for (dq = ngx_queue_head(&sh->dests);
         dq != ngx_queue_sentinel(&sh->dests);
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        /* a destination's counters start at 0: a snapshot of zeros */

        cur.delivered = dest->stats.delivered;
        cur.failed = dest->stats.failed;
        cur.dead = dest->stats.dead_lettered;

        if (ngx_http_ldseg_snap_rate(dest->snaps, &dest->snap, &cur, now,
                                     every, 1, &dest->rate))
        {
            dest->low = (dest->rate < ac->rate);
        }

        if (dest->low) {
            ids = ngx_http_ldseg_add_id(ids, last, dest);
        }

        if (dest->has_oldest) {
            age = now - dest->oldest;

            if (age > oldest) {
                oldest = age;
            }

            if (ac->max_age && age > ac->max_age) {
                old = 1;
                age_ids = ngx_http_ldseg_add_id(age_ids, age_last, dest);
            }
        }
    }

    out->ids_len = ids - out->ids;
    out->age_ids_len = age_ids - out->age_ids;

    al->oldest = oldest;

    /* no attempt in the window tells nothing: the state stays */

    if (known) {
        al->known = 1;
        al->rate = rate;

        if (rate < ac->rate && !al->low) {
            al->low = 1;
            out->rate_change = -1;

        } else if (rate >= ac->rate && al->low) {
            al->low = 0;
            out->rate_change = 1;
        }

        out->rate = rate;
    }

    if (ac->max_age) {
        if (old && !al->old) {
            al->old = 1;
            out->age_change = -1;

        } else if (!old && al->old) {
            al->old = 0;
            out->age_change = 1;
        }

        out->age = oldest;
    }
}


static ngx_uint_t
ngx_http_ldseg_snap_rate(ngx_http_ldseg_snap_t *snaps, ngx_uint_t *snap,
    ngx_http_ldseg_snap_t *cur, ngx_msec_t now, ngx_msec_t every,
    ngx_uint_t zero_base, ngx_uint_t *rate)
{
    uint64_t                delivered, all;
    ngx_uint_t              last;
    ngx_http_ldseg_snap_t  *base, zero;

    /*
     * snaps is a ring of NGX_HTTP_LDSEG_SNAPS snapshots taken every
     * "every" ms; the oldest is about a window old.  Returns 1 with the
     * delivered share in 1/10000 when any event was tried since then.
     */

    last = (*snap + NGX_HTTP_LDSEG_SNAPS - 1) % NGX_HTTP_LDSEG_SNAPS;

    if (snaps[last].time == 0
        || (ngx_msec_int_t) (now - snaps[last].time) >= (ngx_msec_int_t) every)
    {
        snaps[*snap] = *cur;
        *snap = (*snap + 1) % NGX_HTTP_LDSEG_SNAPS;
    }

    base = &snaps[*snap];

    if (base->time == 0) {
        /* not a whole window yet: since the counters started */

        if (zero_base) {
            ngx_memzero(&zero, sizeof(ngx_http_ldseg_snap_t));
            base = &zero;

        } else {
            base = &snaps[0];
        }
    }

    delivered = cur->delivered - base->delivered;
    all = delivered + (cur->failed - base->failed) + (cur->dead - base->dead);

    if (all == 0) {
        return 0;
    }

    *rate = (ngx_uint_t) (delivered * 10000 / all);

    return 1;
}


static u_char *
ngx_http_ldseg_add_id(u_char *p, u_char *last, ngx_http_ldseg_dest_t *dest)
{
    u_char  *id, *end;

    /* ", \"ID\"" while it fits; "..." once when the next one does not */

    end = dest->url + dest->url_len;

    for (id = end; id > dest->url && id[-1] != '/'; id--) { /* void */ }

    if (p == NULL) {
        return NULL;
    }

    if ((size_t) (last - p) < (size_t) (end - id) + 8) {
        if (last - p >= 5) {
            p = ngx_cpymem(p, ", ...", 5);
        }

        return last;
    }

    return ngx_sprintf(p, ", \"%*s\"", end - id, id);
}


ngx_int_t
ngx_http_ldseg_queue_recent(ngx_shm_zone_t *zone, ngx_uint_t n,
    ngx_log_t *log)
{
    ngx_int_t               rc;
    ngx_http_ldseg_sh_t    *sh;
    ngx_http_ldseg_zone_t  *z;
    ngx_http_ldseg_ring_t  *ring;

    z = zone->data;

    if (z == NULL || z->sh == NULL) {
        return NGX_OK;
    }

    sh = z->sh;
    rc = NGX_OK;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (sh->recent != NULL && sh->recent->n == n) {
        goto done;
    }

    /* a committed configuration with another size: a new ring */

    if (sh->recent != NULL) {
        ring = sh->recent;
        sh->recent = NULL;
        ngx_slab_free_locked(z->shpool, ring);
    }

    if (n == 0) {
        goto done;
    }

    ring = ngx_slab_calloc_locked(z->shpool, ngx_http_ldseg_recent_size(n));

    if (ring == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ldseg_zone \"%V\" has no room for \"ldseg_recent\" "
                      "%ui, recent events are not kept", &zone->shm.name, n);
        rc = NGX_DECLINED;
        goto done;
    }

    ring->n = n;
    sh->recent = ring;

done:

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


static void
ngx_http_ldseg_recent_add(ngx_http_ldseg_ring_t *ring,
    ngx_http_ldseg_dest_t *dest, uint64_t seq, ldseg_result_t *res,
    ngx_uint_t from, ngx_uint_t to, uint64_t now)
{
    u_char                   *id, *end;
    size_t                    len;
    ngx_uint_t                k;
    ngx_http_ldseg_recent_t  *e;

    /* the events of messages from..to, bounded copies (under the lock) */

    end = dest->url + dest->url_len;

    for (id = end; id > dest->url && id[-1] != '/'; id--) { /* void */ }

    for (k = from; k < to; k++) {

        if (res->msgs[k].status != LDSEG_MSG_EVENT) {
            continue;
        }

        e = &ring->e[ring->total % ring->n];
        ring->total++;

        ngx_memzero(e, offsetof(ngx_http_ldseg_recent_t, client_side_id));

        e->has_payload_id = 0;
        e->dest_id = dest->id;
        e->seq = seq;
        e->queued = now;

        e->id_len = (uint8_t) ngx_min((size_t) (end - id),
                                      NGX_HTTP_LDSEG_RECENT_ID);
        ngx_memcpy(e->client_side_id, id, e->id_len);

        len = res->msgs[k].event_len;

        e->truncated = (len > NGX_HTTP_LDSEG_RECENT_EVENT);
        e->event_len = (uint16_t) ngx_min(len, NGX_HTTP_LDSEG_RECENT_EVENT);
        ngx_memcpy(e->event, res->events + res->msgs[k].event_off,
                   e->event_len);
    }
}


static void
ngx_http_ldseg_recent_done(ngx_http_ldseg_ring_t *ring,
    ngx_http_ldseg_lease_t *l, ngx_uint_t outcome, ngx_uint_t status,
    uint64_t now)
{
    ngx_uint_t                i, n;
    ngx_http_ldseg_recent_t  *e;

    /* the events of the payload learn its ID and what became of it */

    n = (ring->total < ring->n) ? (ngx_uint_t) ring->total : ring->n;

    for (i = 0; i < n; i++) {
        e = &ring->e[i];

        if (e->seq != l->seq || e->dest_id != l->dest_id
            || (e->outcome != NGX_HTTP_LDSEG_RECENT_QUEUED
                && e->outcome != NGX_HTTP_LDSEG_RECENT_RETRYING))
        {
            continue;
        }

        ngx_memcpy(e->payload_id, l->id, 16);
        e->has_payload_id = 1;
        e->outcome = (uint8_t) outcome;
        e->status = (uint16_t) status;
        e->attempts = (uint16_t) ngx_min(l->attempts + 1, 65535);
        e->answered = now;
    }
}


static uint64_t
ngx_http_ldseg_unix_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}

ngx_uint_t
ngx_http_ldseg_pid_dead(ngx_pid_t pid)
{
    return pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH;
}


static void
ngx_http_ldseg_recount(ngx_http_ldseg_zone_t *z, ngx_msec_t now,
    ngx_http_ldseg_spool_ops_t *ops)
{
    ngx_queue_t               *dq, *q, *next;
    ngx_http_ldseg_sh_t       *sh;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_sfile_t    *sf;
    ngx_http_ldseg_payload_t  *p;

    /*
     * Every gauge is derived again from the payloads: an operation cut
     * short by a killed worker leaves consistent lists (each link is one
     * store) but may have missed a counter.  Payloads delivered while
     * another worker held them, and claims of dead processes, end here.
     */

    sh = z->sh;

    sh->events = 0;
    sh->bytes = 0;
    sh->mem = 0;
    sh->spool_events = 0;
    sh->spool_bytes = 0;

    for (q = ngx_queue_head(&sh->sfiles);
         q != ngx_queue_sentinel(&sh->sfiles);
         q = ngx_queue_next(q))
    {
        sf = ngx_queue_data(q, ngx_http_ldseg_sfile_t, queue);
        sf->live = 0;
        sh->spool_bytes += sf->size;
    }

    for (dq = ngx_queue_head(&sh->dests);
         dq != ngx_queue_sentinel(&sh->dests);
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        dest->bytes = 0;
        dest->dbytes = 0;
        dest->inflight = 0;
        dest->has_oldest = 0;

        for (q = ngx_queue_head(&dest->payloads);
             q != ngx_queue_sentinel(&dest->payloads);
             q = next)
        {
            next = ngx_queue_next(q);
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (p->leased && ngx_http_ldseg_pid_dead(p->owner)) {
                p->leased = 0;
            }

            if (p->spooling && ngx_http_ldseg_pid_dead(p->spooler)) {
                p->spooling = 0;
            }

            if (p->copied && sh->handed_over) {
                /* the resized zone sends it */
                continue;
            }

            if (p->hold) {

                /*
                 * A split cut short: with the original still there, the
                 * half goes (the original is sent again); without it, the
                 * split is finished.
                 */

                if (ngx_http_ldseg_payload_find(dest, p->parent) != NULL) {
                    ngx_queue_remove(&p->queue);
                    ngx_http_ldseg_payload_free_chunks(z, p);
                    ngx_slab_free_locked(z->shpool, p);
                    continue;
                }

                p->hold = 0;
            }

            if (p->done && !p->spooling && ops != NULL
                && (!p->leased
                    || (ngx_msec_int_t) (p->lease_until - now) <= 0))
            {
                p->leased = 0;

                if (p->sfile) {
                    p->sfile->live++;
                }

                /* halves it may have held go first: find next again */

                if (p->splitting) {
                    ngx_http_ldseg_payload_unsplit(z, dest, p);
                    next = ngx_queue_next(q);
                }

                ngx_http_ldseg_payload_forget(z, p, ops);
                continue;
            }

            if (p->head == NULL && p->sfile == NULL && !p->leased) {
                /* an empty payload left by a killed worker */
                ngx_queue_remove(&p->queue);
                ngx_slab_free_locked(z->shpool, p);
                continue;
            }

            sh->events += p->nevents;
            sh->bytes += p->mem;
            sh->mem += p->slab;
            dest->bytes += p->mem;

            if (p->nevents
                && (!dest->has_oldest
                    || (ngx_msec_int_t) (p->created - dest->oldest) < 0))
            {
                dest->oldest = p->created;
                dest->has_oldest = 1;
            }

            if (p->head == NULL) {
                dest->dbytes += p->len;
            }

            if (p->leased) {
                dest->inflight++;
            }

            if (p->sfile) {
                p->sfile->live++;
                sh->spool_events += p->nevents;
            }
        }
    }
}


static ngx_http_ldseg_dest_t *
ngx_http_ldseg_dest_get(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_target_t *target, ngx_uint_t max)
{
    u_char                  buf[NGX_HTTP_LDSEG_URL_MAX + 1
                                + NGX_HTTP_LDSEG_CRED_MAX], *p;
    uint32_t                hash;
    ngx_str_t               key;
    ngx_queue_t            *q;
    ngx_str_node_t         *sn;
    ngx_http_ldseg_dest_t  *dest;

    /* the key: the URL, and for Segment a NUL and the write key */

    if (target->url.len > NGX_HTTP_LDSEG_URL_MAX
        || target->cred.len > NGX_HTTP_LDSEG_CRED_MAX)
    {
        return NULL;
    }

    key.data = buf;
    p = ngx_cpymem(buf, target->url.data, target->url.len);

    if (target->kind != NGX_HTTP_LDSEG_LAUNCHDARKLY) {
        *p++ = '\0';
        p = ngx_cpymem(p, target->cred.data, target->cred.len);
    }

    key.len = p - buf;

    /*
     * Once per request: the byte table, a lookup per byte instead of two;
     * the same CRC32 as ngx_crc32_short(), so zones kept from before
     * still find their destinations.  A worker's requests mostly go to
     * the destination of its previous one: its key and hash are kept (in
     * the process, not the zone), and a key equal to it is not hashed.
     */

    if (key.len == ngx_http_ldseg_last_key_len
        && ngx_memcmp(key.data, ngx_http_ldseg_last_key, key.len) == 0)
    {
        hash = ngx_http_ldseg_last_hash;

    } else {
        hash = ngx_crc32_long(key.data, key.len);

        ngx_memcpy(ngx_http_ldseg_last_key, key.data, key.len);
        ngx_http_ldseg_last_key_len = key.len;
        ngx_http_ldseg_last_hash = hash;
    }

    sn = ngx_str_rbtree_lookup(&z->sh->rbtree, &key, hash);
    if (sn != NULL) {
        return (ngx_http_ldseg_dest_t *) sn;
    }

    if (max && z->sh->ndests >= max) {

        /* an empty destination kept for its counters makes room */

        for (q = ngx_queue_head(&z->sh->dests);
             q != ngx_queue_sentinel(&z->sh->dests);
             q = ngx_queue_next(q))
        {
            dest = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);

            if (ngx_http_ldseg_dest_idle(dest, ngx_current_msec)) {
                ngx_http_ldseg_dest_free(z, dest);
                break;
            }
        }

        if (z->sh->ndests >= max) {
            return NULL;
        }
    }

    dest = ngx_slab_calloc_locked(z->shpool,
                              offsetof(ngx_http_ldseg_dest_t, url) + key.len);
    if (dest == NULL) {
        return NULL;
    }

    ngx_queue_init(&dest->payloads);
    dest->id = ++z->sh->dest_seq;
    dest->kind = target->kind;
    dest->url_len = target->url.len;
    dest->cred_len = (target->kind != NGX_HTTP_LDSEG_LAUNCHDARKLY)
                     ? target->cred.len : 0;
    ngx_memcpy(dest->url, key.data, key.len);

    dest->sn.node.key = hash;
    dest->sn.str.len = key.len;
    dest->sn.str.data = dest->url;

    ngx_rbtree_insert(&z->sh->rbtree, &dest->sn.node);
    ngx_queue_insert_tail(&z->sh->dests, &dest->queue);
    z->sh->ndests++;

    return dest;
}


static ngx_http_ldseg_dest_t *
ngx_http_ldseg_dest_lookup(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_target_t *target)
{
    u_char           buf[NGX_HTTP_LDSEG_URL_MAX + 1
                         + NGX_HTTP_LDSEG_CRED_MAX], *p;
    ngx_str_t        key;
    ngx_str_node_t  *sn;

    if (target->url.len > NGX_HTTP_LDSEG_URL_MAX
        || target->cred.len > NGX_HTTP_LDSEG_CRED_MAX)
    {
        return NULL;
    }

    key.data = buf;
    p = ngx_cpymem(buf, target->url.data, target->url.len);

    if (target->kind != NGX_HTTP_LDSEG_LAUNCHDARKLY) {
        *p++ = '\0';
        p = ngx_cpymem(p, target->cred.data, target->cred.len);
    }

    key.len = p - buf;

    sn = ngx_str_rbtree_lookup(&z->sh->rbtree, &key,
                               ngx_crc32_long(key.data, key.len));

    return (ngx_http_ldseg_dest_t *) sn;
}


static void
ngx_http_ldseg_dest_target(ngx_http_ldseg_dest_t *dest,
    ngx_http_ldseg_target_t *target)
{
    target->kind = dest->kind;
    target->url.data = dest->url;
    target->url.len = dest->url_len;
    target->cred.data = dest->url + dest->url_len + 1;
    target->cred.len = dest->cred_len;
}


ngx_http_ldseg_account_t *
ngx_http_ldseg_queue_account(ngx_shm_zone_t *zone, u_char *key, size_t len)
{
    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_account_t  *a;

    z = zone->data;

    ngx_shmtx_lock(&z->shpool->mutex);
    a = ngx_http_ldseg_account_get(z, key, len);
    ngx_shmtx_unlock(&z->shpool->mutex);

    return a;
}


ngx_uint_t
ngx_http_ldseg_queue_accounts(ngx_shm_zone_t *zone,
    ngx_http_ldseg_account_t *out, u_char (*keys)[NGX_HTTP_LDSEG_CRED_MAX],
    ngx_uint_t max)
{
    ngx_uint_t                 n;
    ngx_queue_t               *q;
    ngx_http_ldseg_zone_t     *z;
    ngx_http_ldseg_account_t  *a;

    z = zone->data;
    n = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (q = ngx_queue_head(&z->sh->accounts);
         q != ngx_queue_sentinel(&z->sh->accounts) && n < max;
         q = ngx_queue_next(q))
    {
        a = ngx_queue_data(q, ngx_http_ldseg_account_t, queue);

        out[n] = *a;
        ngx_memcpy(keys[n], a->key, a->key_len);
        n++;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return n;
}


static ngx_http_ldseg_account_t *
ngx_http_ldseg_account_get(ngx_http_ldseg_zone_t *z, u_char *key, size_t len)
{
    ngx_queue_t               *q;
    ngx_http_ldseg_account_t  *a;

    /*
     * A short list searched under the lock once per request or POST:
     * past NGX_HTTP_LDSEG_ACCOUNTS_MAX keys the rest share the account
     * with no key, so a write key chosen by a variable cannot grow it.
     */

    if (len > NGX_HTTP_LDSEG_CRED_MAX) {
        len = 0;
    }

    for ( ;; ) {
        for (q = ngx_queue_head(&z->sh->accounts);
             q != ngx_queue_sentinel(&z->sh->accounts);
             q = ngx_queue_next(q))
        {
            a = ngx_queue_data(q, ngx_http_ldseg_account_t, queue);

            if (a->key_len == len && ngx_memcmp(a->key, key, len) == 0) {
                return a;
            }
        }

        if (len == 0 || z->sh->naccounts < NGX_HTTP_LDSEG_ACCOUNTS_MAX) {
            break;
        }

        len = 0;
    }

    a = ngx_slab_calloc_locked(z->shpool,
                           offsetof(ngx_http_ldseg_account_t, key) + len + 1);
    if (a == NULL) {
        return NULL;
    }

    a->key_len = len;
    ngx_memcpy(a->key, key, len);

    ngx_queue_insert_tail(&z->sh->accounts, &a->queue);
    z->sh->naccounts++;

    return a;
}


static ngx_http_ldseg_dest_t *
ngx_http_ldseg_dest_find(ngx_http_ldseg_zone_t *z, ngx_http_ldseg_dest_t *dest,
    uint64_t id)
{
    ngx_queue_t            *q;
    ngx_http_ldseg_dest_t  *d;

    /* a destination a worker knows of may have been freed meanwhile */

    for (q = ngx_queue_head(&z->sh->dests);
         q != ngx_queue_sentinel(&z->sh->dests);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);

        if (d == dest) {
            return (d->id == id) ? d : NULL;
        }
    }

    return NULL;
}


static ngx_uint_t
ngx_http_ldseg_dest_idle(ngx_http_ldseg_dest_t *dest, ngx_msec_t now)
{
    /* nothing queued, in flight or paused */

    return ngx_queue_empty(&dest->payloads) && dest->inflight == 0
           && (ngx_msec_int_t) (dest->not_before - now) <= 0;
}


static void
ngx_http_ldseg_dest_free(ngx_http_ldseg_zone_t *z, ngx_http_ldseg_dest_t *dest)
{
    /* its counters stay in the totals of freed destinations */

    ngx_http_ldseg_dstats_add(&z->sh->retired, &dest->stats);
    z->sh->nretired++;

    ngx_rbtree_delete(&z->sh->rbtree, &dest->sn.node);
    ngx_queue_remove(&dest->queue);
    z->sh->ndests--;

    ngx_slab_free_locked(z->shpool, dest);
}


static size_t
ngx_http_ldseg_refused_bytes(ngx_http_ldseg_zone_t *z)
{
    size_t                  n;
    ngx_queue_t            *q;
    ngx_http_ldseg_dest_t  *dest;

    n = 0;

    for (q = ngx_queue_head(&z->sh->dests);
         q != ngx_queue_sentinel(&z->sh->dests);
         q = ngx_queue_next(q))
    {
        dest = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);

        if (dest->refused) {
            n += dest->bytes + dest->dbytes;
        }
    }

    return n;
}


static ngx_http_ldseg_payload_t *
ngx_http_ldseg_payload_new(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest)
{
    ngx_http_ldseg_payload_t  *p;

    p = ngx_slab_calloc_locked(z->shpool, sizeof(ngx_http_ldseg_payload_t));
    if (p == NULL) {
        return NULL;
    }

    p->seq = ++z->sh->seq;
    p->dest = dest;
    p->created = ngx_current_msec;
    p->not_before = ngx_current_msec;
    ngx_queue_insert_tail(&dest->payloads, &p->queue);

    return p;
}


static ngx_http_ldseg_payload_t *
ngx_http_ldseg_payload_find(ngx_http_ldseg_dest_t *dest, uint64_t seq)
{
    ngx_queue_t               *q;
    ngx_http_ldseg_payload_t  *p;

    for (q = ngx_queue_head(&dest->payloads);
         q != ngx_queue_sentinel(&dest->payloads);
         q = ngx_queue_next(q))
    {
        p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

        if (p->seq == seq) {
            return p;
        }
    }

    return NULL;
}


static ngx_uint_t
ngx_http_ldseg_payload_unfinished(ngx_http_ldseg_dest_t *dest,
    ngx_http_ldseg_payload_t *p)
{
    /*
     * A half held by a split a killed worker cut short, with the original
     * still there: the original is copied whole and split again if need
     * be.  A held half whose original is gone is of a finished split.
     */

    return p->hold && ngx_http_ldseg_payload_find(dest, p->parent) != NULL;
}


static void
ngx_http_ldseg_payload_gone(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_spool_ops_t *ops)
{
    /*
     * The payload is done with (delivered, dead-lettered, dropped), not
     * split: halves that a split of it cut short left held go with it,
     * else ngx_http_ldseg_recount() would take them for a finished split
     * and send its events again.
     */

    if (p->splitting) {
        ngx_http_ldseg_payload_unsplit(z, p->dest, p);
    }

    ngx_http_ldseg_payload_forget(z, p, ops);
}


static void
ngx_http_ldseg_payload_forget(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_spool_ops_t *ops)
{
    off_t                    off;
    ngx_http_ldseg_dest_t   *dest;
    ngx_http_ldseg_sfile_t  *sf;

    /*
     * The payload leaves the queue; its record is marked, or its file
     * unlinked, through ops (NULL for a payload that has no record).
     */

    dest = p->dest;

    z->sh->events -= p->nevents;
    z->sh->bytes -= p->mem;
    z->sh->mem -= p->slab;
    dest->bytes -= p->mem;

    if (p->head == NULL) {
        dest->dbytes -= p->len;
    }

    ngx_queue_remove(&p->queue);

    ngx_http_ldseg_crash("queue_forget");

    sf = p->sfile;

    if (sf != NULL) {
        off = p->soff;
        sf->live--;
        z->sh->spool_events -= p->nevents;

        if (!ngx_http_ldseg_sfile_release(z, sf, ops)) {
            (void) ngx_http_ldseg_spool_op_file(ops, NGX_HTTP_LDSEG_SPOOL_MARK,
                                                sf->dir, sf->dir_len,
                                                sf->number, off);
        }
    }

    ngx_http_ldseg_payload_free_chunks(z, p);
    ngx_slab_free_locked(z->shpool, p);
}


static void
ngx_http_ldseg_payload_free_chunks(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p)
{
    ngx_http_ldseg_chunk_t  *chunk, *next;

    chunk = p->head;

    p->head = NULL;
    p->tail = NULL;
    p->mem = 0;
    p->slab = 0;

    for ( /* void */ ; chunk; chunk = next) {
        next = chunk->next;
        ngx_slab_free_locked(z->shpool, chunk);
    }
}


static ngx_int_t
ngx_http_ldseg_payload_split(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_payload_t *p, u_char *body, size_t len,
    ngx_http_ldseg_payload_t **halves)
{
    size_t                     off;
    ngx_uint_t                 first;
    ngx_http_ldseg_payload_t  *a, *b;

    /*
     * A payload too large for LaunchDarkly is replaced by two halves (new
     * payloads), made from the body that was sent: the same for a payload
     * in memory and one held on disk only.  The halves' IDs are derived
     * from the payload's ID, so every split of one payload (one ID always
     * carries the same body) gives the same halves under the same IDs:
     * the old workers' copy and a resized zone's, or the original and its
     * spool record replayed after a crash, may each be split, and
     * LaunchDarkly drops the second copy of each half.
     */

    if (p->splitting) {
        /* halves of an earlier split cut short */
        ngx_http_ldseg_payload_unsplit(z, p->dest, p);
    }

    if (ldseg_delivery_split((const char *) body, len, p->nevents, &off)
        != 0)
    {
        return NGX_ERROR;
    }

    first = p->nevents / 2;

    a = ngx_http_ldseg_payload_from(z, p->dest, body + 1, off - 1, first);
    if (a == NULL) {
        return NGX_ERROR;
    }

    b = ngx_http_ldseg_payload_from(z, p->dest, body + off + 1,
                                    len - off - 2, p->nevents - first);
    if (b == NULL) {
        ngx_http_ldseg_payload_forget(z, a, NULL);
        return NGX_ERROR;
    }

    /* in the place of the original, in order */

    ngx_queue_remove(&a->queue);
    ngx_queue_remove(&b->queue);
    ngx_queue_insert_after(&p->queue, &a->queue);
    ngx_queue_insert_after(&a->queue, &b->queue);

    a->attempts = p->attempts + 1;
    b->attempts = p->attempts + 1;

    if (p->has_id) {
        ngx_http_ldseg_half_id(a->id, p->id, 0);
        ngx_http_ldseg_half_id(b->id, p->id, 1);
        a->has_id = 1;
        b->has_id = 1;
    }

    /*
     * Halves of a payload a resized zone has a copy of: that zone splits
     * its copy itself, and the old workers let go of these halves with
     * the payload (ngx_http_ldseg_queue_handover())
     */

    a->copied = p->copied;
    b->copied = p->copied;

    /*
     * Held right behind the original until it is gone, which is marked
     * splitting: a killed worker may leave both (the same lock round),
     * and whoever sends or drops the original again removes the halves
     * (ngx_http_ldseg_payload_unsplit())
     */

    a->parent = p->seq;
    b->parent = p->seq;
    a->hold = 1;
    b->hold = 1;
    p->splitting = 1;

    halves[0] = a;
    halves[1] = b;

    return NGX_OK;
}


static void
ngx_http_ldseg_payload_unsplit(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *p)
{
    ngx_queue_t               *q, *next;
    ngx_http_ldseg_payload_t  *h;

    /*
     * Halves of p that a killed worker left held go: p is sent whole, or
     * is done with.  A held half has no spool record.
     */

    for (q = ngx_queue_next(&p->queue);
         q != ngx_queue_sentinel(&dest->payloads);
         q = next)
    {
        next = ngx_queue_next(q);
        h = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

        if (h->hold && h->parent == p->seq) {
            ngx_http_ldseg_payload_forget(z, h, NULL);
        }
    }

    p->splitting = 0;
}


static ngx_http_ldseg_payload_t *
ngx_http_ldseg_payload_from(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_dest_t *dest, u_char *data, size_t len, ngx_uint_t nevents)
{
    ngx_http_ldseg_chunk_t    *chunk;
    ngx_http_ldseg_payload_t  *p;

    chunk = ngx_http_ldseg_chunk_alloc(z, len, len);

    if (chunk == NULL && ngx_http_ldseg_evict(z)) {
        chunk = ngx_http_ldseg_chunk_alloc(z, len, len);
    }

    if (chunk == NULL) {
        return NULL;
    }

    p = ngx_http_ldseg_payload_new(z, dest);
    if (p == NULL) {
        ngx_slab_free_locked(z->shpool, chunk);
        return NULL;
    }

    chunk->nevents = (uint32_t) nevents;
    ngx_memcpy(chunk->data, data, len);

    p->head = chunk;
    p->tail = chunk;
    p->nevents = nevents;
    p->len = len;
    p->mem = len;
    p->slab = ngx_http_ldseg_slab_size(offsetof(ngx_http_ldseg_chunk_t, data)
                                       + chunk->size);
    p->closed = 1;

    z->sh->events += nevents;
    z->sh->bytes += len;
    z->sh->mem += p->slab;
    dest->bytes += len;

    return p;
}


/*
 * A chunk of len bytes with room for size (>= len) at least: all the
 * slab gives it, whose sizes are powers of 2 up to half a page, then
 * whole pages
 */

static ngx_http_ldseg_chunk_t *
ngx_http_ldseg_chunk_alloc(ngx_http_ldseg_zone_t *z, size_t len, size_t size)
{
    size_t                   slab;
    ngx_http_ldseg_chunk_t  *chunk;

    slab = ngx_http_ldseg_slab_size(offsetof(ngx_http_ldseg_chunk_t, data)
                                    + size);

    chunk = ngx_slab_alloc_locked(z->shpool, slab);
    if (chunk == NULL) {
        return NULL;
    }

    chunk->next = NULL;
    chunk->nevents = 0;
    chunk->len = (uint32_t) len;
    chunk->size = (uint32_t) (slab - offsetof(ngx_http_ldseg_chunk_t, data));

    return chunk;
}


/* the bytes ngx_slab_alloc_locked() takes for an allocation of size */

static size_t
ngx_http_ldseg_slab_size(size_t size)
{
    size_t  s;

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (s = 8; s < size; s <<= 1) { /* void */ }

    return s;
}


static u_char *
ngx_http_ldseg_payload_copy(ngx_http_ldseg_payload_t *p, u_char *buf)
{
    u_char                  *b;
    ngx_http_ldseg_chunk_t  *chunk;

    b = buf;
    *b++ = '[';

    for (chunk = p->head; chunk; chunk = chunk->next) {
        if (chunk != p->head) {
            *b++ = ',';
        }

        b = ngx_cpymem(b, chunk->data, chunk->len);
    }

    *b++ = ']';

    return b;
}


static ngx_uint_t
ngx_http_ldseg_evict(ngx_http_ldseg_zone_t *z)
{
    ngx_uint_t                 freed;
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_payload_t  *p;

    /*
     * The zone is full: payloads that are safe in the spool give their
     * memory back and are read from disk when their turn comes.
     */

    freed = 0;

    for (dq = ngx_queue_head(&z->sh->dests);
         dq != ngx_queue_sentinel(&z->sh->dests);
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        for (q = ngx_queue_last(&dest->payloads);
             q != ngx_queue_sentinel(&dest->payloads);
             q = ngx_queue_prev(q))
        {
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (p->head == NULL || p->sfile == NULL || p->leased
                || p->spooling || p->done)
            {
                continue;
            }

            freed += p->mem;
            z->sh->bytes -= p->mem;
            z->sh->mem -= p->slab;
            dest->bytes -= p->mem;
            dest->dbytes += p->len;

            ngx_http_ldseg_payload_free_chunks(z, p);

            ngx_http_ldseg_crash("queue_evict");
        }
    }

    return freed;
}


static ngx_http_ldseg_sfile_t *
ngx_http_ldseg_sfile_new(ngx_http_ldseg_zone_t *z, uint32_t number,
    u_char *dir, size_t dir_len)
{
    ngx_http_ldseg_sfile_t  *sf;

    sf = ngx_slab_calloc_locked(z->shpool,
                                offsetof(ngx_http_ldseg_sfile_t, dir) + dir_len);
    if (sf == NULL) {
        return NULL;
    }

    sf->number = number;
    sf->dir_len = dir_len;
    ngx_memcpy(sf->dir, dir, dir_len);

    ngx_queue_insert_tail(&z->sh->sfiles, &sf->queue);

    return sf;
}


static ngx_http_ldseg_sfile_t *
ngx_http_ldseg_sfile_find(ngx_http_ldseg_zone_t *z, uint32_t number)
{
    ngx_queue_t             *q;
    ngx_http_ldseg_sfile_t  *sf;

    for (q = ngx_queue_head(&z->sh->sfiles);
         q != ngx_queue_sentinel(&z->sh->sfiles);
         q = ngx_queue_next(q))
    {
        sf = ngx_queue_data(q, ngx_http_ldseg_sfile_t, queue);

        if (sf->number == number) {
            return sf;
        }
    }

    return NULL;
}


static ngx_uint_t
ngx_http_ldseg_sfile_release(ngx_http_ldseg_zone_t *z,
    ngx_http_ldseg_sfile_t *sf, ngx_http_ldseg_spool_ops_t *ops)
{
    /*
     * A file that no writer holds open and that holds nothing live is
     * unlinked; not a file loaded in part (it holds records for the next
     * start), and not by the workers of a zone that handed its queue over
     * (the new zone knows the file).
     */

    if (sf->live || sf->writer || sf->pinned || z->sh->handed_over) {
        return 0;
    }

    if (ngx_http_ldseg_spool_op_file(ops, NGX_HTTP_LDSEG_SPOOL_UNLINK,
                                     sf->dir, sf->dir_len, sf->number, 0)
        != NGX_OK)
    {
        return 0;
    }

    z->sh->spool_bytes -= sf->size;

    ngx_queue_remove(&sf->queue);

    ngx_http_ldseg_crash("queue_sfile_release");

    ngx_slab_free_locked(z->shpool, sf);

    return 1;
}


static void
ngx_http_ldseg_half_id(u_char *id, u_char *parent, ngx_uint_t half)
{
    u_char       in[16 + 1];
    ngx_md5_t    md5;

    /*
     * The ID of half 0 or 1 of the payload with ID parent: MD5 of the ID
     * as sent (its version and variant bits fixed, as ldseg_uuid_format()
     * writes them) and the half's number.  Another split of the same
     * payload gives the same ID, a split of any other payload another one.
     */

    ngx_memcpy(in, parent, 16);
    in[6] = (u_char) ((in[6] & 0x0f) | 0x40);
    in[8] = (u_char) ((in[8] & 0x3f) | 0x80);
    in[16] = (u_char) half;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, "ldseg split", sizeof("ldseg split") - 1);
    ngx_md5_update(&md5, in, sizeof(in));
    ngx_md5_final(id, &md5);
}


void
ngx_http_ldseg_queue_random_id(u_char *id)
{
    ssize_t     n;
    size_t      got;
    ngx_uint_t  i;

    /*
     * From the kernel, in the process that uses it: no random stream is
     * ever shared by two processes (a pool inherited across fork() would
     * give every worker the same payload IDs).
     */

    for (got = 0; got < 16; got += n) {
        n = getrandom(id + got, 16 - got, 0);

        if (n <= 0) {
            if (n == -1 && ngx_errno == NGX_EINTR) {
                n = 0;
                continue;
            }

            break;
        }
    }

    if (got < 16) {
        for (i = got; i < 16; i++) {
            id[i] = (u_char) ngx_random();
        }
    }
}

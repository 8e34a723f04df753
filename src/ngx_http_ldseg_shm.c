
/*
 * Copyright (C) ldseg authors
 *
 * The shared-memory queue.  Every worker appends the events of a request in
 * one lock round, and every worker's flush timer leases whole payloads from
 * it.  A payload is leased, not popped: it stays in the queue until its POST
 * is acknowledged, so a worker that dies mid-POST loses nothing; when the
 * lease deadline passes another worker sends the same payload again, under
 * the same payload ID.  Everything lives inside the zone and is stored by
 * value, so the zone survives "nginx -s reload" with its contents.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_shm.h"
#include "ngx_http_ldseg_spool.h"
#include "ngx_http_ldseg_sender.h"


static ngx_int_t ngx_http_ldseg_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_ldseg_migrate(ngx_shm_zone_t *shm_zone,
    ngx_http_ldseg_shctx_t *ctx);
static ngx_uint_t ngx_http_ldseg_evict_locked(ngx_http_ldseg_shctx_t *ctx);
static ngx_http_ldseg_payload_t *ngx_http_ldseg_payload_find(
    ngx_http_ldseg_dest_t *dest, uint64_t seq);
static ngx_int_t ngx_http_ldseg_payload_split(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *p);
static ngx_int_t ngx_http_ldseg_chunk_split(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_chunk_t *chunk);


const char  *ngx_http_ldseg_drops[NGX_HTTP_LDSEG_NDROPS] = {
    "too_large_for_launchdarkly",
    "spool_corrupt",
    "no_room"
};


const char  *ngx_http_ldseg_reasons[NGX_HTTP_LDSEG_NREASONS] = {
    "invalid_json",
    "not_an_object",
    "too_large",
    "too_many_messages",
    "too_deep",
    "invalid_batch",
    "invalid_type",
    "missing_event",
    "missing_identity",
    "invalid_properties",
    "invalid_timestamp",
    "missing_user_id",
    "missing_previous_id",
    "invalid_metric",
    "queue_full",
    "other"
};


char *
ngx_http_ldseg_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_main_conf_t  *lmcf = conf;

    ssize_t                  size;
    ngx_str_t               *value;
    ngx_shm_zone_t          *shm_zone;
    ngx_http_ldseg_shctx_t  *ctx;

    if (lmcf->shm_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_zone\" name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_zone\" size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ldseg_zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_ldseg_shctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->size = size;

    shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                     &ngx_http_ldseg_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ldseg_zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_ldseg_init_zone;
    shm_zone->data = ctx;

    lmcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ldseg_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ldseg_shctx_t  *octx = data;

    size_t                   len;
    ngx_http_ldseg_shctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        /* reload: the same zone, with its queue, stays in use */

        if (octx->sh->layout != NGX_HTTP_LDSEG_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "ldseg_zone \"%V\" has an incompatible layout, "
                          "restart nginx to use it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_calloc(ctx->shpool, sizeof(ngx_http_ldseg_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ctx->sh->layout = NGX_HTTP_LDSEG_LAYOUT;
    ngx_queue_init(&ctx->sh->dests);
    ngx_queue_init(&ctx->sh->sfiles);

    len = sizeof(" in ldseg zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in ldseg zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is answered with 503 and logged by the caller */
    ctx->shpool->log_nomem = 0;

    if (ngx_test_config || ngx_process == NGX_PROCESS_SIGNALLER) {
        return NGX_OK;
    }

    /*
     * A reload that changed the zone size gets a new zone: the queue of
     * the old one is copied over.  On a start, the spool is replayed.
     */

    ngx_http_ldseg_migrate(shm_zone, ctx);

    if (ngx_http_ldseg_spool_load(shm_zone, shm_zone->shm.log) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_ldseg_migrate(ngx_shm_zone_t *shm_zone, ngx_http_ldseg_shctx_t *ctx)
{
    u_char                     rnd[16];
    ngx_uint_t                 i, copied, lost;
    ngx_queue_t               *dq, *q, *next, *fq;
    ngx_list_part_t           *part;
    ngx_shm_zone_t            *ozone;
    ngx_http_ldseg_sh_t       *osh;
    ngx_http_ldseg_dest_t     *odest, *dest;
    ngx_http_ldseg_chunk_t    *chunk, *nc;
    ngx_http_ldseg_sfile_t    *osf, *sf;
    ngx_http_ldseg_shctx_t    *octx;
    ngx_http_ldseg_payload_t  *op, *p;
    ngx_str_t                  url;

    /* during ngx_init_cycle(), ngx_cycle is still the old cycle */

    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    ozone = part->elts;
    octx = NULL;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            ozone = part->elts;
            i = 0;
        }

        if (ozone[i].tag == &ngx_http_ldseg_module
            && ozone[i].shm.addr != NULL
            && ozone[i].shm.name.len == shm_zone->shm.name.len
            && ngx_strncmp(ozone[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) == 0)
        {
            octx = ozone[i].data;
            break;
        }
    }

    if (octx == NULL || octx->sh == NULL
        || octx->sh->layout != NGX_HTTP_LDSEG_LAYOUT)
    {
        return;
    }

    osh = octx->sh;
    copied = 0;
    lost = 0;

    ngx_shmtx_lock(&octx->shpool->mutex);

    for (fq = ngx_queue_head(&osh->sfiles);
         fq != ngx_queue_sentinel(&osh->sfiles);
         fq = ngx_queue_next(fq))
    {
        osf = ngx_queue_data(fq, ngx_http_ldseg_sfile_t, queue);

        sf = ngx_http_ldseg_sfile_new(ctx, osf->number);
        if (sf == NULL) {
            break;
        }

        sf->writer = osf->writer;
        sf->size = osf->size;
        ctx->sh->spool_bytes += osf->size;
    }

    ctx->sh->spool_seq = osh->spool_seq;
    ctx->sh->stats = osh->stats;

    for (dq = ngx_queue_head(&osh->dests);
         dq != ngx_queue_sentinel(&osh->dests);
         dq = ngx_queue_next(dq))
    {
        odest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        url.data = odest->url;
        url.len = odest->url_len;

        dest = ngx_http_ldseg_dest_locked(ctx, &url);

        for (q = ngx_queue_head(&odest->payloads);
             q != ngx_queue_sentinel(&odest->payloads);
             q = next)
        {
            next = ngx_queue_next(q);
            op = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (op->done || op->nevents == 0) {
                continue;
            }

            /* the old workers may still send it: under the same ID */

            if (!op->has_id) {
                ngx_http_ldseg_random(rnd, 16);
                ngx_memcpy(op->id, rnd, 16);
                op->has_id = 1;
            }

            p = (dest != NULL) ? ngx_http_ldseg_payload_new(ctx, dest) : NULL;

            if (p == NULL) {
                lost += op->nevents;
                continue;
            }

            p->nevents = op->nevents;
            p->len = op->len;
            p->attempts = op->attempts;
            p->closed = 1;
            p->has_id = 1;
            ngx_memcpy(p->id, op->id, 16);

            if (op->sfile) {
                for (fq = ngx_queue_head(&ctx->sh->sfiles);
                     fq != ngx_queue_sentinel(&ctx->sh->sfiles);
                     fq = ngx_queue_next(fq))
                {
                    sf = ngx_queue_data(fq, ngx_http_ldseg_sfile_t, queue);

                    if (sf->number == op->sfile->number) {
                        p->sfile = sf;
                        p->soff = op->soff;
                        p->slen = op->slen;
                        sf->live++;
                        ctx->sh->spool_events += p->nevents;
                        break;
                    }
                }
            }

            for (chunk = op->head; chunk; chunk = chunk->next) {
                nc = ngx_slab_alloc_locked(ctx->shpool,
                           offsetof(ngx_http_ldseg_chunk_t, data) + chunk->len);
                if (nc == NULL) {
                    break;
                }

                nc->next = NULL;
                nc->nevents = chunk->nevents;
                nc->len = chunk->len;
                ngx_memcpy(nc->data, chunk->data, chunk->len);

                if (p->tail) {
                    p->tail->next = nc;

                } else {
                    p->head = nc;
                }

                p->tail = nc;
                ctx->sh->bytes += nc->len;
                dest->bytes += nc->len;
            }

            if (chunk != NULL) {
                /* no room: a spooled payload stays on disk, else it is lost */

                for (chunk = p->head; chunk; chunk = nc) {
                    nc = chunk->next;
                    ctx->sh->bytes -= chunk->len;
                    dest->bytes -= chunk->len;
                    ngx_slab_free_locked(ctx->shpool, chunk);
                }

                p->head = NULL;
                p->tail = NULL;

                if (p->sfile == NULL) {
                    lost += p->nevents;
                    ngx_queue_remove(&p->queue);
                    ngx_slab_free_locked(ctx->shpool, p);
                    continue;
                }
            }

            ctx->sh->events += p->nevents;
            copied += p->nevents;

            /* the old zone keeps only what the old workers send now */

            op->done = 1;

            if (!op->leased && !op->spooling) {
                osh->events -= op->nevents;
                for (chunk = op->head; chunk; chunk = chunk->next) {
                    osh->bytes -= chunk->len;
                    odest->bytes -= chunk->len;
                }

                ngx_http_ldseg_payload_free(octx, op);
            }
        }
    }

    /*
     * The spool files now belong to the new zone: the old one neither
     * unlinks them nor reuses their numbers.
     */

    osh->migrated = 1;
    osh->spool_seq += 0x1000000;

    ngx_shmtx_unlock(&octx->shpool->mutex);

    if (lost) {
        (void) ngx_atomic_fetch_add(
                &ctx->sh->stats.dropped_reasons[NGX_HTTP_LDSEG_DROP_NO_ROOM],
                lost);
        (void) ngx_atomic_fetch_add(&ctx->sh->stats.dropped, lost);
    }

    if (lost) {
        ngx_log_error(NGX_LOG_ERR, shm_zone->shm.log, 0,
                      "ldseg_zone \"%V\" resized: %ui queued events moved, "
                      "%ui lost for lack of room", &shm_zone->shm.name,
                      copied, lost);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "ldseg_zone \"%V\" resized: %ui queued events moved",
                      &shm_zone->shm.name, copied);
    }
}


ngx_http_ldseg_stats_t *
ngx_http_ldseg_shm_stats(ngx_shm_zone_t *zone)
{
    ngx_http_ldseg_shctx_t  *ctx;

    if (zone == NULL) {
        return NULL;
    }

    ctx = zone->data;

    if (ctx == NULL || ctx->sh == NULL) {
        return NULL;
    }

    return &ctx->sh->stats;
}


void
ngx_http_ldseg_shm_usage(ngx_shm_zone_t *zone, ngx_http_ldseg_usage_t *u)
{
    ngx_queue_t             *q;
    ngx_http_ldseg_dest_t   *dest;
    ngx_http_ldseg_shctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    u->events = ctx->sh->events;
    u->bytes = ctx->sh->bytes;
    u->inflight = 0;

    for (q = ngx_queue_head(&ctx->sh->dests);
         q != ngx_queue_sentinel(&ctx->sh->dests);
         q = ngx_queue_next(q))
    {
        dest = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);
        u->inflight += dest->inflight;
    }

    u->spool_events = ctx->sh->spool_events;
    u->spool_bytes = ctx->sh->spool_bytes;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    u->size = ctx->size;
}


ngx_uint_t
ngx_http_ldseg_reason(const char *code)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_LDSEG_NREASONS - 1; i++) {
        if (ngx_strcmp(code, ngx_http_ldseg_reasons[i]) == 0) {
            return i;
        }
    }

    return NGX_HTTP_LDSEG_REASON_OTHER;
}


ngx_int_t
ngx_http_ldseg_shm_enqueue(ngx_shm_zone_t *zone, ngx_str_t *url,
    ldseg_result_t *res, ngx_uint_t batch_size, size_t max_payload,
    size_t limit, ngx_uint_t *full)
{
    size_t                     len, start, end, olen;
    uint32_t                   n;
    ngx_http_ldseg_spool_ref_t  ref;
    ngx_uint_t                 i, j, count, onevents;
    ngx_queue_t               *q;
    ngx_http_ldseg_chunk_t    *chunk, *next, *otail;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_shctx_t    *ctx;
    ngx_http_ldseg_payload_t  *p, *first, *op;

    ctx = zone->data;
    *full = 0;

    otail = NULL;
    onevents = 0;
    olen = 0;
    op = NULL;
    first = NULL;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /*
     * A reload moved this zone's queue to a resized zone that the old
     * workers cannot reach: they answer 503, the client retries and
     * reaches a new worker.
     */

    if (ctx->sh->migrated) {
        goto full;
    }

    if (limit && ctx->sh->bytes + res->events_len > limit
        && (ngx_http_ldseg_evict_locked(ctx) == 0
            || ctx->sh->bytes + res->events_len > limit))
    {
        goto full;
    }

    dest = ngx_http_ldseg_dest_locked(ctx, url);
    if (dest == NULL) {
        goto full;
    }

    /*
     * While LaunchDarkly refuses the client-side ID, its events are kept
     * but may fill an eighth of the zone only: the other destinations go
     * on, and the clients of this one get 503 and keep their events.
     */

    if ((dest->last_status == 401 || dest->last_status == 403
         || dest->last_status == 404)
        && dest->bytes + res->events_len > ctx->size / 8)
    {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_BUSY;
    }

    /* remember the open payload as it was, to undo on a full zone */

    if (!ngx_queue_empty(&dest->payloads)) {
        q = ngx_queue_last(&dest->payloads);
        op = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

        if (op->leased || op->closed) {
            op = NULL;

        } else {
            otail = op->tail;
            onevents = op->nevents;
            olen = op->len;
        }
    }

    p = op;
    i = 0;

    while (i < res->n) {

        if (res->msgs[i].status != LDSEG_MSG_EVENT) {
            i++;
            continue;
        }

        if (p == NULL || p->closed) {
            p = ngx_http_ldseg_payload_new(ctx, dest);

            if (p == NULL && ngx_http_ldseg_evict_locked(ctx)) {
                p = ngx_http_ldseg_payload_new(ctx, dest);
            }

            if (p == NULL) {
                goto undo;
            }

            if (first == NULL) {
                first = p;
            }
        }

        /* take events i.. while the payload has room; at least one */

        start = res->msgs[i].event_off;
        end = start;
        count = 0;
        len = p->len;

        for (j = i; j < res->n; j++) {
            if (res->msgs[j].status != LDSEG_MSG_EVENT) {
                continue;
            }

            if (count > 0
                && (p->nevents + count >= batch_size
                    || len + res->msgs[j].event_len + 1 > max_payload))
            {
                break;
            }

            len += res->msgs[j].event_len + (len ? 1 : 0);
            end = res->msgs[j].event_off + res->msgs[j].event_len;
            count++;
        }

        n = (uint32_t) (end - start);

        chunk = ngx_slab_alloc_locked(ctx->shpool,
                                 offsetof(ngx_http_ldseg_chunk_t, data) + n);

        if (chunk == NULL && ngx_http_ldseg_evict_locked(ctx)) {
            chunk = ngx_slab_alloc_locked(ctx->shpool,
                                 offsetof(ngx_http_ldseg_chunk_t, data) + n);
        }

        if (chunk == NULL) {
            goto undo;
        }

        chunk->next = NULL;
        chunk->nevents = (uint32_t) count;
        chunk->len = n;
        ngx_memcpy(chunk->data, res->events + start, n);

        if (p->tail) {
            p->tail->next = chunk;
            p->len += 1 + n;

        } else {
            p->head = chunk;
            p->len = n;
        }

        p->tail = chunk;
        p->nevents += count;

        ctx->sh->events += count;
        ctx->sh->bytes += n;
        dest->bytes += n;

        if (p->nevents >= batch_size || p->len >= max_payload) {
            p->closed = 1;
            *full = 1;
        }

        i = j;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;

undo:

    /* drop what this request added: new payloads, then the open one's tail */

    if (first) {
        for ( ;; ) {
            q = ngx_queue_last(&dest->payloads);
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            ngx_http_ldseg_payload_drop_locked(ctx, p, &ref);

            if (p == first) {
                break;
            }
        }
    }

    if (op) {
        chunk = otail ? otail->next : op->head;

        while (chunk) {
            next = chunk->next;
            ctx->sh->events -= chunk->nevents;
            ctx->sh->bytes -= chunk->len;
            dest->bytes -= chunk->len;
            ngx_slab_free_locked(ctx->shpool, chunk);
            chunk = next;
        }

        if (otail) {
            otail->next = NULL;

        } else {
            op->head = NULL;
        }

        op->tail = otail;
        op->nevents = onevents;
        op->len = olen;
        op->closed = 0;
    }

full:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_DECLINED;
}


ngx_http_ldseg_dest_t *
ngx_http_ldseg_dest_locked(ngx_http_ldseg_shctx_t *ctx, ngx_str_t *url)
{
    ngx_queue_t            *q;
    ngx_http_ldseg_dest_t  *dest;

    for (q = ngx_queue_head(&ctx->sh->dests);
         q != ngx_queue_sentinel(&ctx->sh->dests);
         q = ngx_queue_next(q))
    {
        dest = ngx_queue_data(q, ngx_http_ldseg_dest_t, queue);

        if (dest->url_len == url->len
            && ngx_memcmp(dest->url, url->data, url->len) == 0)
        {
            return dest;
        }
    }

    dest = ngx_slab_calloc_locked(ctx->shpool,
                           offsetof(ngx_http_ldseg_dest_t, url) + url->len);
    if (dest == NULL) {
        return NULL;
    }

    ngx_queue_init(&dest->payloads);
    dest->url_len = url->len;
    ngx_memcpy(dest->url, url->data, url->len);

    ngx_queue_insert_tail(&ctx->sh->dests, &dest->queue);
    ctx->sh->ndests++;

    return dest;
}


ngx_http_ldseg_payload_t *
ngx_http_ldseg_payload_new(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_dest_t *dest)
{
    ngx_http_ldseg_payload_t  *p;

    p = ngx_slab_calloc_locked(ctx->shpool, sizeof(ngx_http_ldseg_payload_t));
    if (p == NULL) {
        return NULL;
    }

    p->seq = ++ctx->sh->seq;
    p->dest = dest;
    p->created = ngx_current_msec;
    ngx_queue_insert_tail(&dest->payloads, &p->queue);

    return p;
}


void
ngx_http_ldseg_payload_free(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p)
{
    ngx_http_ldseg_chunk_t  *chunk, *next;

    ngx_queue_remove(&p->queue);

    for (chunk = p->head; chunk; chunk = next) {
        next = chunk->next;
        ngx_slab_free_locked(ctx->shpool, chunk);
    }

    ngx_slab_free_locked(ctx->shpool, p);
}


uint32_t
ngx_http_ldseg_payload_unspool(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p)
{
    ngx_http_ldseg_sfile_t  *sf;

    sf = p->sfile;

    if (sf == NULL) {
        return 0;
    }

    p->sfile = NULL;
    sf->live--;
    ctx->sh->spool_events -= p->nevents;

    return ngx_http_ldseg_sfile_release(ctx, sf);
}


ngx_http_ldseg_sfile_t *
ngx_http_ldseg_sfile_new(ngx_http_ldseg_shctx_t *ctx, uint32_t number)
{
    ngx_http_ldseg_sfile_t  *sf;

    sf = ngx_slab_calloc_locked(ctx->shpool, sizeof(ngx_http_ldseg_sfile_t));
    if (sf == NULL) {
        return NULL;
    }

    sf->number = number;
    ngx_queue_insert_tail(&ctx->sh->sfiles, &sf->queue);

    return sf;
}


uint32_t
ngx_http_ldseg_sfile_release(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_sfile_t *sf)
{
    uint32_t  number;

    /* a closed file that holds nothing live is unlinked by the caller */

    if (sf->live || sf->writer || ctx->sh->migrated) {
        return 0;
    }

    number = sf->number;
    ctx->sh->spool_bytes -= sf->size;

    ngx_queue_remove(&sf->queue);
    ngx_slab_free_locked(ctx->shpool, sf);

    return number;
}


static ngx_uint_t
ngx_http_ldseg_evict_locked(ngx_http_ldseg_shctx_t *ctx)
{
    ngx_uint_t                 freed;
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_chunk_t    *chunk, *next;
    ngx_http_ldseg_payload_t  *p;

    /*
     * The zone is full: payloads that are safe in the spool give their
     * memory back and are read from disk when their turn comes.
     */

    freed = 0;

    for (dq = ngx_queue_head(&ctx->sh->dests);
         dq != ngx_queue_sentinel(&ctx->sh->dests);
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

            for (chunk = p->head; chunk; chunk = next) {
                next = chunk->next;
                ctx->sh->bytes -= chunk->len;
                dest->bytes -= chunk->len;
                freed += chunk->len;
                ngx_slab_free_locked(ctx->shpool, chunk);
            }

            p->head = NULL;
            p->tail = NULL;
        }
    }

    return freed;
}


ngx_uint_t
ngx_http_ldseg_pid_dead(ngx_pid_t pid)
{
    return pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH;
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


ngx_int_t
ngx_http_ldseg_shm_lease(ngx_shm_zone_t *zone, ngx_msec_t now,
    ngx_msec_t lease_time, ngx_uint_t full_only, u_char *rnd,
    ngx_http_ldseg_lease_t *l)
{
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_shctx_t    *ctx;
    ngx_http_ldseg_payload_t  *p;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (dq = ngx_queue_head(&ctx->sh->dests);
         dq != ngx_queue_sentinel(&ctx->sh->dests);
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

            if (p->done || p->nevents == 0 || (full_only && !p->closed)) {
                continue;
            }

            if (p->leased) {
                if ((ngx_msec_int_t) (p->lease_until - now) > 0
                    && !ngx_http_ldseg_pid_dead(p->owner))
                {
                    continue;
                }

                /* the worker that leased it died or hangs: send it again */

                p->leased = 0;
                dest->inflight--;
                (void) ngx_atomic_fetch_add(&ctx->sh->stats.lease_expired, 1);
            }

            /* after a failure, probe with one payload at a time */

            if (dest->failures && dest->inflight) {
                break;
            }

            p->leased = 1;
            p->closed = 1;
            p->lease_until = now + lease_time;
            p->lease_gen++;
            p->owner = ngx_pid;

            if (!p->has_id) {
                ngx_memcpy(p->id, rnd, 16);
                p->has_id = 1;
            }

            dest->inflight++;

            l->dest = dest;
            l->payload = p;
            l->seq = p->seq;
            l->lease_gen = p->lease_gen;
            l->nevents = p->nevents;
            l->len = p->len;
            l->attempts = p->attempts;
            ngx_memcpy(l->id, p->id, 16);

            if (p->head == NULL) {
                l->sfile = p->sfile->number;
                l->soff = p->soff;
                l->slen = p->slen;

            } else {
                l->sfile = 0;
                l->soff = 0;
                l->slen = 0;
            }

            /* round robin between destinations */
            ngx_queue_remove(dq);
            ngx_queue_insert_tail(&ctx->sh->dests, dq);

            ngx_shmtx_unlock(&ctx->shpool->mutex);

            return NGX_OK;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_DECLINED;
}


u_char *
ngx_http_ldseg_shm_copy(ngx_http_ldseg_lease_t *l, u_char *buf)
{
    u_char                  *p;
    ngx_http_ldseg_chunk_t  *chunk;

    /*
     * No lock: a leased payload is neither changed nor freed by others
     * until the lease deadline, which is far beyond a memory copy.
     */

    p = buf;
    *p++ = '[';

    for (chunk = l->payload->head; chunk; chunk = chunk->next) {
        if (chunk != l->payload->head) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, chunk->data, chunk->len);
    }

    *p++ = ']';

    return p;
}


void
ngx_http_ldseg_shm_complete(ngx_shm_zone_t *zone, ngx_http_ldseg_lease_t *l,
    ngx_http_ldseg_outcome_e outcome, ngx_uint_t status, ngx_msec_t now,
    ngx_msec_t delay, ngx_http_ldseg_spool_ref_t *ref)
{
    ngx_int_t                  rc;
    ngx_uint_t                 drop;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_shctx_t    *ctx;
    ngx_http_ldseg_payload_t  *p;

    ctx = zone->data;
    dest = l->dest;
    ngx_memzero(ref, sizeof(ngx_http_ldseg_spool_ref_t));

    ngx_shmtx_lock(&ctx->shpool->mutex);

    dest->last_status = status;

    p = ngx_http_ldseg_payload_find(dest, l->seq);

    if (p == NULL) {
        /* the lease expired and another worker delivered it */
        goto done;
    }

    if (p->leased && p->lease_gen != l->lease_gen) {
        /* the lease expired and another worker sends it now */

        if (outcome == NGX_HTTP_LDSEG_DELIVERED) {
            p->done = 1;
        }

        goto done;
    }

    if (p->leased) {
        p->leased = 0;
        dest->inflight--;
    }

    drop = NGX_HTTP_LDSEG_NDROPS;

    if (outcome == NGX_HTTP_LDSEG_CORRUPT) {
        drop = NGX_HTTP_LDSEG_DROP_CORRUPT;

    } else if (outcome == NGX_HTTP_LDSEG_SPLIT) {
        rc = ngx_http_ldseg_payload_split(ctx, dest, p);

        if (rc == NGX_OK) {
            /* the record stays valid: the halves are not on disk yet */
            p->attempts++;
            ref->unlink = ngx_http_ldseg_payload_unspool(ctx, p);
            goto done;
        }

        if (rc == NGX_DECLINED) {
            /* one event LaunchDarkly will never take */
            drop = NGX_HTTP_LDSEG_DROP_TOO_LARGE;
        }
    }

    if (drop != NGX_HTTP_LDSEG_NDROPS) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "ldseg: %ui events dropped: %s", p->nevents,
                      ngx_http_ldseg_drops[drop]);

        (void) ngx_atomic_fetch_add(&ctx->sh->stats.dropped, p->nevents);
        (void) ngx_atomic_fetch_add(&ctx->sh->stats.dropped_reasons[drop],
                                    p->nevents);

        outcome = NGX_HTTP_LDSEG_DELIVERED;
    }

    if (outcome == NGX_HTTP_LDSEG_DELIVERED || p->done) {
        if (outcome == NGX_HTTP_LDSEG_DELIVERED) {
            dest->failures = 0;
        }

        if (p->spooling) {
            /* the spooler reads it now and frees it when done */
            p->done = 1;
            goto done;
        }

        ngx_http_ldseg_payload_drop_locked(ctx, p, ref);

        goto done;
    }

    p->attempts++;
    dest->failures++;
    dest->not_before = now + delay;

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


void
ngx_http_ldseg_payload_drop_locked(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *p, ngx_http_ldseg_spool_ref_t *ref)
{
    ngx_http_ldseg_chunk_t  *chunk;

    ctx->sh->events -= p->nevents;

    for (chunk = p->head; chunk; chunk = chunk->next) {
        ctx->sh->bytes -= chunk->len;
        p->dest->bytes -= chunk->len;
    }

    /* its record is marked, so that a replay after a crash skips it */

    if (p->sfile) {
        ref->file = p->sfile->number;
        ref->off = p->soff;
    }

    ref->unlink = ngx_http_ldseg_payload_unspool(ctx, p);

    ngx_http_ldseg_payload_free(ctx, p);
}


static ngx_int_t
ngx_http_ldseg_payload_split(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_dest_t *dest, ngx_http_ldseg_payload_t *p)
{
    ngx_uint_t                 nchunks, i;
    ngx_http_ldseg_chunk_t    *chunk, *prev;
    ngx_http_ldseg_payload_t  *np;

    /*
     * A payload too large for LaunchDarkly is split in two halves, both
     * new payloads with new IDs: between its chunks, or, for a payload of
     * one chunk, between the events of that chunk.
     */

    if (p->nevents < 2) {
        return NGX_DECLINED;
    }

    if (p->head == NULL) {
        /* on disk only: sent again as it is */
        return NGX_ERROR;
    }

    if (p->head == p->tail
        && ngx_http_ldseg_chunk_split(ctx, p, p->head) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (p->head->next != NULL && p->tail == p->head) {
        p->tail = p->head->next;
    }

    nchunks = 0;
    for (chunk = p->head; chunk; chunk = chunk->next) {
        nchunks++;
    }

    np = ngx_slab_calloc_locked(ctx->shpool, sizeof(ngx_http_ldseg_payload_t));
    if (np == NULL) {
        return NGX_ERROR;
    }

    prev = NULL;
    chunk = p->head;

    for (i = 0; i < nchunks / 2; i++) {
        prev = chunk;
        chunk = chunk->next;
    }

    np->seq = ++ctx->sh->seq;
    np->dest = p->dest;
    np->head = chunk;
    np->tail = p->tail;
    np->closed = 1;

    for ( /* void */ ; chunk; chunk = chunk->next) {
        np->nevents += chunk->nevents;
        np->len += chunk->len + (np->len ? 1 : 0);
    }

    prev->next = NULL;
    p->tail = prev;
    p->nevents -= np->nevents;
    p->len = 0;

    for (chunk = p->head; chunk; chunk = chunk->next) {
        p->len += chunk->len + (p->len ? 1 : 0);
    }

    p->has_id = 0;

    ngx_queue_insert_after(&p->queue, &np->queue);

    (void) dest;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ldseg_chunk_split(ngx_http_ldseg_shctx_t *ctx,
    ngx_http_ldseg_payload_t *pl, ngx_http_ldseg_chunk_t *chunk)
{
    u_char                  *p, *last;
    uint32_t                 n, len;
    ngx_uint_t               depth, string, escape;
    ngx_http_ldseg_chunk_t  *second;

    /*
     * The events are JSON objects joined by ",": the separator between
     * two events is a comma outside any string at depth 0.
     */

    p = chunk->data;
    last = p + chunk->len;
    depth = 0;
    string = 0;
    escape = 0;
    n = 0;

    for ( /* void */ ; p < last; p++) {

        if (string) {
            if (escape) {
                escape = 0;

            } else if (*p == '\\') {
                escape = 1;

            } else if (*p == '"') {
                string = 0;
            }

            continue;
        }

        switch (*p) {

        case '"':
            string = 1;
            break;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            depth--;
            break;

        case ',':
            if (depth == 0 && ++n == chunk->nevents / 2) {
                goto found;
            }
            break;
        }
    }

    return NGX_ERROR;

found:

    len = (uint32_t) (last - p - 1);

    second = ngx_slab_alloc_locked(ctx->shpool,
                               offsetof(ngx_http_ldseg_chunk_t, data) + len);
    if (second == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(second->data, p + 1, len);
    second->len = len;
    second->nevents = chunk->nevents - n;
    second->next = chunk->next;

    /* the first half stays in place: its slab block is merely longer */

    chunk->len = (uint32_t) (p - chunk->data);
    chunk->nevents = n;
    chunk->next = second;

    /* the comma between the halves is gone */
    ctx->sh->bytes--;
    pl->dest->bytes--;

    return NGX_OK;
}


void
ngx_http_ldseg_shm_release(ngx_shm_zone_t *zone)
{
    ngx_queue_t               *dq, *q;
    ngx_http_ldseg_dest_t     *dest;
    ngx_http_ldseg_shctx_t    *ctx;
    ngx_http_ldseg_payload_t  *p;

    ctx = zone->data;

    if (ctx == NULL || ctx->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (dq = ngx_queue_head(&ctx->sh->dests);
         dq != ngx_queue_sentinel(&ctx->sh->dests);
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
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_dedupe zone=NAME:SIZE [window=time]": the messageIds accepted
 * within the window, with the write key that scopes them, in a shared
 * memory zone of their own shaped like limit_req's: a red-black tree for
 * the lookup and a queue, most recently accepted first, from whose tail
 * expired entries go and, when the zone is full, the oldest ones.
 *
 * A messageId is first reserved (pending, with the process and request
 * that own it), then committed once the request's events are queued, or
 * released when they are not (a 503): a client retrying after a 503 gets
 * through, and one retrying after a lost 200 is answered as a duplicate.
 * Another request that finds a messageId pending is answered 503 instead
 * of 200, so that if the first one fails the message is not lost.  Every
 * step happens within one handler call with no I/O in between; a pending
 * entry whose owner died is taken over at once, or after a few seconds
 * when the owner's death cannot be told.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_dedupe.h"


#define NGX_HTTP_LDSEG_DEDUPE_LAYOUT   1

/* how long a reservation holds when its request never finishes */
#define NGX_HTTP_LDSEG_DEDUPE_PENDING  10000

/* the longest key: the write key's scope and the messageId */
#define NGX_HTTP_LDSEG_DEDUPE_KEY      (8 + LDSEG_MAX_MESSAGE_ID)

/* entries freed at most to make room for one */
#define NGX_HTTP_LDSEG_DEDUPE_EVICT    32

#define NGX_HTTP_LDSEG_DEDUPE_DONE     0
#define NGX_HTTP_LDSEG_DEDUPE_RESERVED 1


typedef struct {
    u_char                        color;
    u_char                        state;
    u_short                       len;
    ngx_queue_t                   queue;
    ngx_msec_t                    expire;
    ngx_pid_t                     owner;     /* reserved: by whom */
    ngx_uint_t                    gen;       /* reserved: by which request */
    u_char                        data[1];
} ngx_http_ldseg_dedupe_node_t;


typedef struct {
    ngx_uint_t                    layout;
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   queue;     /* most recent first */
    ngx_atomic_t                  entries;
    ngx_atomic_t                  evicted;
    ngx_atomic_t                  unremembered;
} ngx_http_ldseg_dedupe_sh_t;


typedef struct {
    ngx_http_ldseg_dedupe_sh_t   *sh;
    ngx_slab_pool_t              *shpool;
    ngx_msec_t                    window;
    ngx_uint_t                    gen;       /* this process's requests */
    ngx_msec_t                    last_warn;
} ngx_http_ldseg_dedupe_ctx_t;


static ngx_int_t ngx_http_ldseg_dedupe_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_ldseg_dedupe_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);
static size_t ngx_http_ldseg_dedupe_key(ngx_http_ldseg_dedupe_t *d,
    ngx_uint_t i, u_char *key);
static ngx_http_ldseg_dedupe_node_t *ngx_http_ldseg_dedupe_lookup(
    ngx_http_ldseg_dedupe_ctx_t *ctx, u_char *key, size_t len,
    uint32_t hash);
static ngx_http_ldseg_dedupe_node_t *ngx_http_ldseg_dedupe_alloc(
    ngx_http_ldseg_dedupe_ctx_t *ctx, size_t len, ngx_msec_t now,
    ngx_log_t *log);
static ngx_uint_t ngx_http_ldseg_dedupe_expire(
    ngx_http_ldseg_dedupe_ctx_t *ctx, ngx_msec_t now, ngx_uint_t force);
static void ngx_http_ldseg_dedupe_delete(ngx_http_ldseg_dedupe_ctx_t *ctx,
    ngx_http_ldseg_dedupe_node_t *dn);
static ngx_uint_t ngx_http_ldseg_dedupe_live(
    ngx_http_ldseg_dedupe_node_t *dn, ngx_msec_t now);
static ngx_uint_t ngx_http_ldseg_dedupe_ours(ngx_http_ldseg_dedupe_ctx_t *ctx,
    ngx_http_ldseg_dedupe_node_t *dn);
static ngx_uint_t ngx_http_ldseg_dedupe_orphan(
    ngx_http_ldseg_dedupe_node_t *dn);
static void ngx_http_ldseg_dedupe_undo(ngx_http_ldseg_dedupe_t *d);


/* the zone's tag: the zones of ldseg_zone have the module's */
static ngx_uint_t  ngx_http_ldseg_dedupe_tag;


char *
ngx_http_ldseg_dedupe(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_main_conf_t  *lmcf = conf;

    u_char                       *p;
    ssize_t                       size;
    ngx_str_t                    *value, name, s;
    ngx_msec_t                    window;
    ngx_uint_t                    i;
    ngx_shm_zone_t               *shm_zone;
    ngx_http_ldseg_dedupe_ctx_t  *ctx;

    if (lmcf->dedupe != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    name.len = 0;
    size = 0;
    window = 24 * 60 * 60 * 1000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_dedupe\" zone size in "
                                   "\"%V\", zone=name:size is expected",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (name.len == 0 || size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_dedupe\" zone \"%V\", "
                                   "zone=name:size is expected", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ldseg_dedupe zone \"%V\" is too small, "
                                   "at least %uz bytes are needed", &name,
                                   8 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0) {

            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            window = ngx_parse_time(&s, 0);

            if (window == (ngx_msec_t) NGX_ERROR || window == 0
                || window > (ngx_msec_t) 365 * 24 * 60 * 60 * 1000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_dedupe\" window \"%V\", "
                                   "a time from 1ms to 365d is expected",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_dedupe\" parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_dedupe\" needs zone=name:size");
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_ldseg_dedupe_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->window = window;

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_ldseg_dedupe_tag);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ldseg_dedupe zone \"%V\" is already used",
                           &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_ldseg_dedupe_init_zone;
    shm_zone->data = ctx;

    lmcf->dedupe = shm_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ldseg_dedupe_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ldseg_dedupe_ctx_t  *octx = data;

    size_t                        len;
    ngx_http_ldseg_dedupe_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        /* reload: the same zone, with what it remembers, stays in use */

        if (octx->sh->layout != NGX_HTTP_LDSEG_DEDUPE_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "ldseg_dedupe zone \"%V\" has an incompatible "
                          "layout, restart nginx to use it",
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

    ctx->sh = ngx_slab_calloc(ctx->shpool,
                              sizeof(ngx_http_ldseg_dedupe_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ctx->sh->layout = NGX_HTTP_LDSEG_DEDUPE_LAYOUT;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_ldseg_dedupe_rbtree_insert_value);

    ngx_queue_init(&ctx->sh->queue);

    len = sizeof(" in ldseg_dedupe zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in ldseg_dedupe zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is the normal state of a window: logged here, not there */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_ldseg_dedupe_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_ldseg_dedupe_node_t   *dn, *dnt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            dn = (ngx_http_ldseg_dedupe_node_t *) &node->color;
            dnt = (ngx_http_ldseg_dedupe_node_t *) &temp->color;

            p = (ngx_memn2cmp(dn->data, dnt->data, dn->len, dnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* the key of message i: the write key's scope, then the messageId */

static size_t
ngx_http_ldseg_dedupe_key(ngx_http_ldseg_dedupe_t *d, ngx_uint_t i,
    u_char *key)
{
    ldseg_msg_result_t  *mr;

    mr = &d->res->msgs[i];

    ngx_memcpy(key, d->scope, sizeof(d->scope));
    ngx_memcpy(key + sizeof(d->scope), mr->message_id, mr->message_id_len);

    return sizeof(d->scope) + mr->message_id_len;
}


static ngx_http_ldseg_dedupe_node_t *
ngx_http_ldseg_dedupe_lookup(ngx_http_ldseg_dedupe_ctx_t *ctx, u_char *key,
    size_t len, uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_ldseg_dedupe_node_t  *dn;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        dn = (ngx_http_ldseg_dedupe_node_t *) &node->color;

        rc = ngx_memn2cmp(key, dn->data, len, (size_t) dn->len);

        if (rc == 0) {
            return dn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* an entry that still counts: remembered within the window, or reserved */

static ngx_uint_t
ngx_http_ldseg_dedupe_live(ngx_http_ldseg_dedupe_node_t *dn, ngx_msec_t now)
{
    return (ngx_msec_int_t) (dn->expire - now) > 0;
}


static ngx_uint_t
ngx_http_ldseg_dedupe_ours(ngx_http_ldseg_dedupe_ctx_t *ctx,
    ngx_http_ldseg_dedupe_node_t *dn)
{
    return dn->state == NGX_HTTP_LDSEG_DEDUPE_RESERVED
           && dn->owner == ngx_pid && dn->gen == ctx->gen;
}


/* a reservation whose owner is gone (a worker killed mid-request) */

static ngx_uint_t
ngx_http_ldseg_dedupe_orphan(ngx_http_ldseg_dedupe_node_t *dn)
{
    return dn->state == NGX_HTTP_LDSEG_DEDUPE_RESERVED
           && dn->owner != ngx_pid
           && kill(dn->owner, 0) == -1 && ngx_errno == NGX_ESRCH;
}


static void
ngx_http_ldseg_dedupe_delete(ngx_http_ldseg_dedupe_ctx_t *ctx,
    ngx_http_ldseg_dedupe_node_t *dn)
{
    ngx_rbtree_node_t  *node;

    ngx_queue_remove(&dn->queue);

    node = (ngx_rbtree_node_t *)
               ((u_char *) dn - offsetof(ngx_rbtree_node_t, color));

    ngx_rbtree_delete(&ctx->sh->rbtree, node);

    ngx_slab_free_locked(ctx->shpool, node);

    ctx->sh->entries--;
}


/*
 * Frees expired entries from the tail, two at most; with "force", the
 * oldest entry first whatever its window, unless it is a live
 * reservation.  Returns how many entries were freed before their time.
 */

static ngx_uint_t
ngx_http_ldseg_dedupe_expire(ngx_http_ldseg_dedupe_ctx_t *ctx,
    ngx_msec_t now, ngx_uint_t force)
{
    ngx_uint_t                     n, evicted;
    ngx_queue_t                   *q;
    ngx_http_ldseg_dedupe_node_t  *dn;

    evicted = 0;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&ctx->sh->queue)) {
            break;
        }

        q = ngx_queue_last(&ctx->sh->queue);
        dn = ngx_queue_data(q, ngx_http_ldseg_dedupe_node_t, queue);

        if (ngx_http_ldseg_dedupe_live(dn, now)) {

            if (!force || dn->state == NGX_HTTP_LDSEG_DEDUPE_RESERVED) {
                break;
            }

            evicted++;
        }

        force = 0;

        ngx_http_ldseg_dedupe_delete(ctx, dn);
    }

    return evicted;
}


static ngx_http_ldseg_dedupe_node_t *
ngx_http_ldseg_dedupe_alloc(ngx_http_ldseg_dedupe_ctx_t *ctx, size_t len,
    ngx_msec_t now, ngx_log_t *log)
{
    size_t                         size;
    ngx_uint_t                     i, evicted;
    ngx_rbtree_node_t             *node;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_ldseg_dedupe_node_t, data)
           + len;

    evicted = ngx_http_ldseg_dedupe_expire(ctx, now, 0);

    node = ngx_slab_alloc_locked(ctx->shpool, size);

    for (i = 0; node == NULL && i < NGX_HTTP_LDSEG_DEDUPE_EVICT; i++) {

        if (ngx_queue_empty(&ctx->sh->queue)) {
            break;
        }

        evicted += ngx_http_ldseg_dedupe_expire(ctx, now, 1);

        node = ngx_slab_alloc_locked(ctx->shpool, size);
    }

    if (evicted) {
        (void) ngx_atomic_fetch_add(&ctx->sh->evicted, evicted);

        if ((ngx_msec_int_t) (ngx_current_msec - ctx->last_warn) >= 60000) {
            ctx->last_warn = ngx_current_msec;

            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "ldseg_dedupe zone is full, messageIds accepted "
                          "within the window are forgotten%s",
                          ctx->shpool->log_ctx);
        }
    }

    if (node == NULL) {
        return NULL;
    }

    return (ngx_http_ldseg_dedupe_node_t *) &node->color;
}


ngx_int_t
ngx_http_ldseg_dedupe_reserve(ngx_shm_zone_t *zone, ngx_str_t *write_key,
    ldseg_result_t *res, ngx_pool_t *pool, ngx_http_ldseg_dedupe_t *d)
{
    u_char                         key[NGX_HTTP_LDSEG_DEDUPE_KEY];
    size_t                         len;
    uint32_t                       hash;
    ngx_uint_t                     i, n, ndup, *dup;
    ngx_msec_t                     now;
    ngx_rbtree_node_t             *node;
    ngx_http_ldseg_dedupe_ctx_t   *ctx;
    ngx_http_ldseg_dedupe_node_t  *dn;

    ctx = zone->data;

    d->zone = zone;
    d->res = res;
    d->reserved = NULL;
    d->nreserved = 0;
    d->unremembered = 0;

    n = 0;

    for (i = 0; i < res->n; i++) {
        if (res->msgs[i].message_id != NULL) {
            n++;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    /* reserved messages first, duplicates from the end */

    d->reserved = ngx_palloc(pool, n * sizeof(ngx_uint_t));
    if (d->reserved == NULL) {
        return NGX_ERROR;
    }

    dup = d->reserved + n;
    ndup = 0;

    /* the write key's scope: two different hashes of it */

    hash = ngx_crc32_short(write_key->data, write_key->len);
    ngx_memcpy(d->scope, &hash, 4);
    hash = ngx_murmur_hash2(write_key->data, write_key->len);
    ngx_memcpy(d->scope + 4, &hash, 4);

    now = ngx_current_msec;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->gen++;

    for (i = 0; i < res->n; i++) {

        if (res->msgs[i].message_id == NULL) {
            continue;
        }

        len = ngx_http_ldseg_dedupe_key(d, i, key);
        hash = ngx_crc32_short(key, len);

        dn = ngx_http_ldseg_dedupe_lookup(ctx, key, len, hash);

        if (dn != NULL && ngx_http_ldseg_dedupe_live(dn, now)
            && !ngx_http_ldseg_dedupe_orphan(dn))
        {
            if (dn->state == NGX_HTTP_LDSEG_DEDUPE_DONE
                || ngx_http_ldseg_dedupe_ours(ctx, dn))
            {
                /* accepted before, or earlier in this request */
                *--dup = i;
                ndup++;
                continue;
            }

            /* another request is accepting it right now */

            ngx_http_ldseg_dedupe_undo(d);

            ngx_shmtx_unlock(&ctx->shpool->mutex);

            d->nreserved = 0;

            return NGX_BUSY;
        }

        if (dn == NULL) {
            dn = ngx_http_ldseg_dedupe_alloc(ctx, len, now,
                                             ngx_cycle->log);

            if (dn == NULL) {
                d->unremembered++;
                continue;
            }

            node = (ngx_rbtree_node_t *)
                       ((u_char *) dn - offsetof(ngx_rbtree_node_t, color));

            node->key = hash;
            dn->len = (u_short) len;
            ngx_memcpy(dn->data, key, len);

            ngx_rbtree_insert(&ctx->sh->rbtree, node);
            ctx->sh->entries++;

        } else {
            /* expired, or a reservation its request never finished */
            ngx_queue_remove(&dn->queue);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "ldseg dedupe: entry of %P taken over",
                           dn->owner);
        }

        dn->state = NGX_HTTP_LDSEG_DEDUPE_RESERVED;
        dn->owner = ngx_pid;
        dn->gen = ctx->gen;
        dn->expire = now + NGX_HTTP_LDSEG_DEDUPE_PENDING;

        ngx_queue_insert_head(&ctx->sh->queue, &dn->queue);

        d->reserved[d->nreserved++] = i;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (d->unremembered) {
        (void) ngx_atomic_fetch_add(&ctx->sh->unremembered, d->unremembered);

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "ldseg_dedupe zone cannot hold the messageIds of a "
                      "request, %ui messages accepted without being "
                      "remembered%s", d->unremembered,
                      ctx->shpool->log_ctx);
    }

    for (i = 0; i < ndup; i++) {
        ldseg_result_duplicate(res, dup[i]);
    }

    if (ndup) {
        ldseg_result_compact(res);
    }

    return NGX_OK;
}


/* under the lock: forgets what this request reserved */

static void
ngx_http_ldseg_dedupe_undo(ngx_http_ldseg_dedupe_t *d)
{
    u_char                         key[NGX_HTTP_LDSEG_DEDUPE_KEY];
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_ldseg_dedupe_ctx_t   *ctx;
    ngx_http_ldseg_dedupe_node_t  *dn;

    ctx = d->zone->data;

    for (i = 0; i < d->nreserved; i++) {
        len = ngx_http_ldseg_dedupe_key(d, d->reserved[i], key);

        dn = ngx_http_ldseg_dedupe_lookup(ctx, key, len,
                                          ngx_crc32_short(key, len));

        if (dn != NULL && ngx_http_ldseg_dedupe_ours(ctx, dn)) {
            ngx_http_ldseg_dedupe_delete(ctx, dn);
        }
    }
}


void
ngx_http_ldseg_dedupe_commit(ngx_http_ldseg_dedupe_t *d)
{
    u_char                         key[NGX_HTTP_LDSEG_DEDUPE_KEY];
    size_t                         len;
    ngx_uint_t                     i;
    ngx_msec_t                     now;
    ngx_http_ldseg_dedupe_ctx_t   *ctx;
    ngx_http_ldseg_dedupe_node_t  *dn;

    if (d->nreserved == 0) {
        return;
    }

    ctx = d->zone->data;
    now = ngx_current_msec;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (i = 0; i < d->nreserved; i++) {
        len = ngx_http_ldseg_dedupe_key(d, d->reserved[i], key);

        /* looked up again: a reservation is never trusted as a pointer */

        dn = ngx_http_ldseg_dedupe_lookup(ctx, key, len,
                                          ngx_crc32_short(key, len));

        if (dn == NULL || !ngx_http_ldseg_dedupe_ours(ctx, dn)) {
            continue;
        }

        dn->state = NGX_HTTP_LDSEG_DEDUPE_DONE;
        dn->expire = now + ctx->window;

        ngx_queue_remove(&dn->queue);
        ngx_queue_insert_head(&ctx->sh->queue, &dn->queue);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    d->nreserved = 0;
}


void
ngx_http_ldseg_dedupe_release(ngx_http_ldseg_dedupe_t *d)
{
    ngx_http_ldseg_dedupe_ctx_t  *ctx;

    if (d->nreserved == 0) {
        return;
    }

    ctx = d->zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_ldseg_dedupe_undo(d);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    d->nreserved = 0;
}


void
ngx_http_ldseg_dedupe_usage(ngx_shm_zone_t *zone,
    ngx_http_ldseg_dedupe_usage_t *u)
{
    ngx_http_ldseg_dedupe_ctx_t  *ctx;

    ctx = zone->data;

    u->entries = ctx->sh->entries;
    u->size = zone->shm.size;
    u->evicted = ctx->sh->evicted;
    u->unremembered = ctx->sh->unremembered;
}

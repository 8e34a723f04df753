
/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_zone" and its initialization, in the shape of limit_req's zone.
 * The master runs ngx_http_ldseg_init_zone() while the new configuration
 * can still be rejected (a listen socket that cannot be bound, another
 * module's error), so it never disables or removes anything: a reload
 * that keeps the size reuses the zone; one that changes it copies the
 * queue into the new zone and leaves the old one serving as before; the
 * old workers let go of what was copied only once the reload is committed
 * (ngx_http_ldseg_zone_commit(), from init_module).  At start, the spool
 * directory is read into the fresh zone; only workers change the disk.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_zone.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_spool.h"


static ngx_int_t ngx_http_ldseg_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_ldseg_zone_t *ngx_http_ldseg_old_zone(
    ngx_shm_zone_t *shm_zone);
static ngx_int_t ngx_http_ldseg_zone_replay(ngx_http_ldseg_zone_t *z,
    ngx_log_t *log);


char *
ngx_http_ldseg_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_main_conf_t  *lmcf = conf;

    ssize_t                 size;
    ngx_str_t              *value;
    ngx_shm_zone_t         *shm_zone;
    ngx_http_ldseg_zone_t  *z;

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

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_ldseg_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    z->size = size;
    z->name = value[1];

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
    shm_zone->data = z;

    lmcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ldseg_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ldseg_zone_t  *oz = data;

    ngx_http_ldseg_zone_t  *z;

    z = shm_zone->data;

    if (oz) {
        /* reload: the same zone, with its queue, stays in use */

        if (oz->sh->layout != NGX_HTTP_LDSEG_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "ldseg_zone \"%V\" has an incompatible layout, "
                          "restart nginx to use it", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        z->sh = oz->sh;
        z->shpool = oz->shpool;

        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    if (ngx_http_ldseg_queue_init(z) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_test_config || ngx_process == NGX_PROCESS_SIGNALLER) {
        return NGX_OK;
    }

    /* a reload that changed the size: copy the queue, touch nothing */

    oz = ngx_http_ldseg_old_zone(shm_zone);

    if (oz != NULL) {
        if (ngx_http_ldseg_queue_copy(oz, z, shm_zone->shm.log) != NGX_OK) {
            return NGX_ERROR;
        }

        z->old = oz;

        return NGX_OK;
    }

    return ngx_http_ldseg_zone_replay(z, shm_zone->shm.log);
}


static ngx_http_ldseg_zone_t *
ngx_http_ldseg_old_zone(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t              i;
    ngx_shm_zone_t         *ozone;
    ngx_list_part_t        *part;
    ngx_http_ldseg_zone_t  *oz;

    /* during ngx_init_cycle(), ngx_cycle is still the old cycle */

    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    ozone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            ozone = part->elts;
            i = 0;
        }

        if (ozone[i].tag != &ngx_http_ldseg_module
            || ozone[i].shm.addr == NULL
            || ozone[i].shm.name.len != shm_zone->shm.name.len
            || ngx_strncmp(ozone[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) != 0)
        {
            continue;
        }

        oz = ozone[i].data;

        if (oz == NULL || oz->sh == NULL
            || oz->sh->layout != NGX_HTTP_LDSEG_LAYOUT)
        {
            return NULL;
        }

        return oz;
    }
}


static ngx_int_t
ngx_http_ldseg_zone_replay(ngx_http_ldseg_zone_t *z, ngx_log_t *log)
{
    ngx_http_ldseg_replay_t       rp;
    ngx_http_ldseg_spool_conf_t  *scf;

    scf = z->spool;

    if (scf == NULL || scf->path.data == NULL) {
        return NGX_OK;
    }

    ngx_memzero(&rp, sizeof(ngx_http_ldseg_replay_t));
    rp.zone = z;

    if (ngx_http_ldseg_spool_scan(&scf->path, ngx_http_ldseg_queue_replay,
                                  &rp, &z->sh->spool_seq, log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rp.events) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "ldseg: %ui spooled events from \"%V\" will be sent",
                      rp.events, &scf->path);
    }

    if (rp.pinned) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ldseg_zone \"%V\" is too small to replay the whole "
                      "spool: %ui files in \"%V\" stay on disk for the next "
                      "start", &z->name, rp.pinned, &scf->path);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_zone_commit(ngx_shm_zone_t *zone)
{
    ngx_http_ldseg_zone_t  *z;

    z = zone->data;

    if (z == NULL || z->old == NULL) {
        return NGX_OK;
    }

    /* the old zone is still mapped: the master frees it after this */

    ngx_http_ldseg_queue_handover(z->old, z, zone->shm.log);
    z->old = NULL;

    return NGX_OK;
}

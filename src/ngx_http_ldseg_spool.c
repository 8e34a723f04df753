
/*
 * Copyright (C) ldseg authors
 *
 * The durable spool.  Each worker appends records to a file of its own,
 * "ldseg-NNNNNNNN.spool" in the spool directory; a record holds one payload
 * (destination URL, payload ID and the JSON array to POST) behind a header
 * with a magic number, its length and a CRC32, so a torn or corrupt tail is
 * recognized and skipped.  The zone counts, per file, the payloads whose
 * durable copy it holds; a closed file that holds none is unlinked.  A
 * payload delivered while its file still holds others may be replayed
 * after a crash: it then carries the same payload ID, which LaunchDarkly
 * uses to drop the duplicate.
 *
 * A record whose payload was delivered (or given up on) while its file
 * still holds others gets its magic overwritten with "LDS0", so a replay
 * skips it; that write is not synced, so after a power loss the payload may
 * still be sent twice, with its payload ID.
 *
 * Record layout, integers in host byte order:
 *
 *     0  "LDS1" ("LDS0": done)
 *     4  CRC32 of bytes 8..len
 *     8  len, the whole record
 *    12  number of events
 *    16  payload ID, 16 bytes
 *    32  URL length, 2 bytes; 2 bytes reserved
 *    36  URL, then the JSON array
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <dirent.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_shm.h"
#include "ngx_http_ldseg_spool.h"
#include "ngx_http_ldseg_sender.h"


#define NGX_HTTP_LDSEG_SPOOL_MAGIC    "LDS1"
#define NGX_HTTP_LDSEG_SPOOL_DONE     "LDS0"
#define NGX_HTTP_LDSEG_SPOOL_HEADER   36
#define NGX_HTTP_LDSEG_SPOOL_ROTATE   (1024 * 1024)
#define NGX_HTTP_LDSEG_SPOOL_CLAIMS   256
#define NGX_HTTP_LDSEG_SPOOL_NAME     "ldseg-%08uD.spool"


typedef struct {
    ngx_http_ldseg_payload_t     *payload;
    ngx_http_ldseg_dest_t        *dest;
    off_t                         off;
    size_t                        len;
    ngx_http_ldseg_spool_ref_t    ref;
} ngx_http_ldseg_spool_claim_t;


typedef struct {
    ngx_fd_t                      fd;
    ngx_http_ldseg_sfile_t       *sfile;
    off_t                         size;
    ngx_uint_t                    full_logged;
} ngx_http_ldseg_spool_writer_t;


static ngx_int_t ngx_http_ldseg_spool_open(ngx_http_ldseg_shctx_t *ctx,
    ngx_log_t *log);
static void ngx_http_ldseg_spool_name(ngx_http_ldseg_spool_conf_t *scf,
    uint32_t n, u_char *name);
static ngx_int_t ngx_http_ldseg_spool_load_file(ngx_http_ldseg_shctx_t *ctx,
    uint32_t n, ngx_log_t *log);
static ngx_int_t ngx_http_ldseg_spool_check(u_char *rec, size_t avail);
static ssize_t ngx_http_ldseg_spool_pread(u_char *name, u_char *buf,
    size_t len, off_t off, ngx_log_t *log);
static int ngx_libc_cdecl ngx_http_ldseg_spool_cmp(const void *a,
    const void *b);


static ngx_http_ldseg_spool_writer_t  ngx_http_ldseg_spool_writer = {
    NGX_INVALID_FILE, NULL, 0, 0
};


char *
ngx_http_ldseg_spool_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_spool_conf_t  *scf;

    off_t             size;
    ngx_str_t        *value, s;
    ngx_msec_t        delay;
    ngx_uint_t        i;
    ngx_path_t       *path;
    ngx_file_info_t   fi;

    scf = (ngx_http_ldseg_spool_conf_t *) ((u_char *) conf + cmd->offset);

    if (scf->path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    scf->path = value[1];

    if (scf->path.len > 1 && scf->path.data[scf->path.len - 1] == '/') {
        scf->path.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &scf->path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* file names are built in NGX_MAX_PATH buffers: checked once, here */

    if (scf->path.len + sizeof("/ldseg-00000000.spool") > NGX_MAX_PATH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_spool\" path \"%V\" is too long",
                           &scf->path);
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(scf->path.data, &fi) == NGX_FILE_ERROR
        || !ngx_is_dir(&fi))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_spool\" directory \"%V\" does not exist",
                           &scf->path);
        return NGX_CONF_ERROR;
    }

    /* like the temporary paths: nginx makes it the workers' own at start */

    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_CONF_ERROR;
    }

    path->name = scf->path;
    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    if (ngx_add_path(cf, &path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_offset(&s);
            if (size == NGX_ERROR || size < NGX_HTTP_LDSEG_SPOOL_ROTATE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_spool\" max_size \"%V\", "
                                   "at least 1m is needed", &value[i]);
                return NGX_CONF_ERROR;
            }

            scf->max_size = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "delay=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            delay = ngx_parse_time(&s, 0);
            if (delay == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_spool\" delay \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            scf->delay = delay;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fsync=on") == 0) {
            scf->fsync = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fsync=off") == 0) {
            scf->fsync = 0;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_spool\" parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_ldseg_spool_name(ngx_http_ldseg_spool_conf_t *scf, uint32_t n,
    u_char *name)
{
    ngx_sprintf(name, "%V/" NGX_HTTP_LDSEG_SPOOL_NAME "%Z", &scf->path, n);
}


ngx_int_t
ngx_http_ldseg_spool_load(ngx_shm_zone_t *zone, ngx_log_t *log)
{
    DIR                          *dir;
    uint32_t                     *nums, n, max;
    ngx_uint_t                    count, alloc, i;
    struct dirent                *de;
    ngx_http_ldseg_shctx_t       *ctx;
    ngx_http_ldseg_spool_conf_t  *scf;

    ctx = zone->data;
    scf = ctx->spool;

    if (scf == NULL || scf->path.data == NULL) {
        return NGX_OK;
    }

    dir = opendir((char *) scf->path.data);
    if (dir == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "ldseg: opendir(\"%V\") failed", &scf->path);
        return NGX_ERROR;
    }

    count = 0;
    alloc = 64;
    max = ctx->sh->spool_seq;

    nums = ngx_alloc(alloc * sizeof(uint32_t), log);
    if (nums == NULL) {
        closedir(dir);
        return NGX_ERROR;
    }

    while ((de = readdir(dir)) != NULL) {

        if (ngx_strlen(de->d_name) != sizeof("ldseg-00000000.spool") - 1
            || ngx_strncmp(de->d_name, "ldseg-", 6) != 0
            || ngx_strcmp(de->d_name + 14, ".spool") != 0)
        {
            continue;
        }

        n = (uint32_t) ngx_atoi((u_char *) de->d_name + 6, 8);
        if (n == (uint32_t) NGX_ERROR || n == 0) {
            continue;
        }

        if (count == alloc) {
            uint32_t  *more;

            more = ngx_alloc(2 * alloc * sizeof(uint32_t), log);
            if (more == NULL) {
                ngx_free(nums);
                closedir(dir);
                return NGX_ERROR;
            }

            ngx_memcpy(more, nums, alloc * sizeof(uint32_t));
            ngx_free(nums);
            nums = more;
            alloc *= 2;
        }

        nums[count++] = n;

        if (n > max) {
            max = n;
        }
    }

    closedir(dir);

    /* replay in the order the payloads were written */

    ngx_qsort(nums, count, sizeof(uint32_t), ngx_http_ldseg_spool_cmp);

    ctx->sh->spool_seq = max;

    for (i = 0; i < count; i++) {
        if (ngx_http_ldseg_spool_load_file(ctx, nums[i], log) != NGX_OK) {
            break;
        }
    }

    ngx_free(nums);

    if (ctx->sh->spool_events) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "ldseg: %ui spooled events from \"%V\" will be sent",
                      ctx->sh->spool_events, &scf->path);
    }

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_ldseg_spool_cmp(const void *a, const void *b)
{
    uint32_t  x, y;

    x = *(const uint32_t *) a;
    y = *(const uint32_t *) b;

    return (x < y) ? -1 : (x > y);
}


static ngx_int_t
ngx_http_ldseg_spool_load_file(ngx_http_ldseg_shctx_t *ctx, uint32_t n,
    ngx_log_t *log)
{
    u_char                       *buf, *rec, name[NGX_MAX_PATH];
    size_t                        len, off, rlen;
    uint16_t                      ulen;
    uint32_t                      nevents, len32;
    ngx_str_t                     url;
    ngx_file_info_t               fi;
    ngx_http_ldseg_dest_t        *dest;
    ngx_http_ldseg_sfile_t       *sf;
    ngx_http_ldseg_payload_t     *p;
    ngx_http_ldseg_spool_conf_t  *scf;

    scf = ctx->spool;

    ngx_http_ldseg_spool_name(scf, n, name);

    if (ngx_file_info(name, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_file_info_n " \"%s\" failed", name);
        return NGX_OK;
    }

    len = (size_t) ngx_file_size(&fi);

    buf = ngx_alloc(len + 1, log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_ldseg_spool_pread(name, buf, len, 0, log) != (ssize_t) len) {
        ngx_free(buf);
        return NGX_OK;
    }

    sf = ngx_http_ldseg_sfile_new(ctx, n);
    if (sf == NULL) {
        ngx_free(buf);
        goto nomem;
    }

    sf->size = len;
    ctx->sh->spool_bytes += len;

    for (off = 0; off < len; off += rlen) {
        rec = buf + off;

        if (ngx_http_ldseg_spool_check(rec, len - off) != NGX_OK) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "ldseg: spool file \"%s\" is corrupt or truncated "
                          "at offset %uz, the last %uz bytes are skipped",
                          name, off, len - off);
            break;
        }

        ngx_memcpy(&len32, rec + 8, 4);
        ngx_memcpy(&nevents, rec + 12, 4);
        ngx_memcpy(&ulen, rec + 32, 2);
        rlen = len32;

        if (ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_DONE, 4) == 0) {
            continue;
        }

        url.data = rec + NGX_HTTP_LDSEG_SPOOL_HEADER;
        url.len = ulen;

        dest = ngx_http_ldseg_dest_locked(ctx, &url);
        p = (dest != NULL) ? ngx_http_ldseg_payload_new(ctx, dest) : NULL;

        if (p == NULL) {
            ngx_free(buf);
            goto nomem;
        }

        p->nevents = nevents;
        p->len = rlen - NGX_HTTP_LDSEG_SPOOL_HEADER - ulen - 2;
        p->closed = 1;
        p->has_id = 1;
        ngx_memcpy(p->id, rec + 16, 16);

        p->sfile = sf;
        p->soff = off;
        p->slen = rlen;

        sf->live++;
        ctx->sh->events += nevents;
        ctx->sh->spool_events += nevents;
        ctx->sh->stats.replayed += nevents;
    }

    ngx_free(buf);

    if (sf->live == 0) {
        ngx_http_ldseg_sfile_release(ctx, sf);

        if (ngx_delete_file(name) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          ngx_delete_file_n " \"%s\" failed", name);
        }
    }

    return NGX_OK;

nomem:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "ldseg zone is too small to replay the whole spool, "
                  "files from \"%s\" on stay on disk for the next start",
                  name);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_ldseg_spool_check(u_char *rec, size_t avail)
{
    uint16_t  ulen;
    uint32_t  crc, len;

    if (avail < NGX_HTTP_LDSEG_SPOOL_HEADER
        || (ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_MAGIC, 4) != 0
            && ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_DONE, 4) != 0))
    {
        return NGX_ERROR;
    }

    ngx_memcpy(&crc, rec + 4, 4);
    ngx_memcpy(&len, rec + 8, 4);
    ngx_memcpy(&ulen, rec + 32, 2);

    if (len > avail || len < NGX_HTTP_LDSEG_SPOOL_HEADER + (size_t) ulen + 2)
    {
        return NGX_ERROR;
    }

    if (ngx_crc32_long(rec + 8, len - 8) != crc) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_ldseg_spool_write(ngx_shm_zone_t *zone, ngx_log_t *log,
    ngx_uint_t all)
{
    u_char                         *buf, *b, *last;
    size_t                          size, written;
    uint16_t                        ulen;
    uint32_t                        crc, len32, nev, gone, unlink[8];
    ngx_uint_t                      i, nclaims, nunlink, ok;
    ngx_msec_t                      now;
    ngx_queue_t                    *dq, *q, *fq, *next;
    ngx_http_ldseg_dest_t          *dest;
    ngx_http_ldseg_sfile_t         *sf;
    ngx_http_ldseg_lease_t          l;
    ngx_http_ldseg_shctx_t         *ctx;
    ngx_http_ldseg_payload_t       *p;
    ngx_http_ldseg_spool_conf_t    *scf;
    ngx_http_ldseg_spool_claim_t    claims[NGX_HTTP_LDSEG_SPOOL_CLAIMS];
    ngx_http_ldseg_spool_writer_t  *w;

    ctx = zone->data;
    scf = ctx->spool;
    w = &ngx_http_ldseg_spool_writer;

    if (scf == NULL || scf->path.data == NULL) {
        return;
    }

    now = ngx_current_msec;
    nclaims = 0;
    nunlink = 0;
    size = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* files of workers that died are closed */

    for (fq = ngx_queue_head(&ctx->sh->sfiles);
         fq != ngx_queue_sentinel(&ctx->sh->sfiles);
         fq = next)
    {
        next = ngx_queue_next(fq);
        sf = ngx_queue_data(fq, ngx_http_ldseg_sfile_t, queue);

        if (sf->writer && ngx_http_ldseg_pid_dead(sf->writer)) {
            sf->writer = 0;
            gone = ngx_http_ldseg_sfile_release(ctx, sf);

            if (gone && nunlink < 8) {
                unlink[nunlink++] = gone;
            }
        }
    }

    if (ctx->sh->spool_bytes >= scf->max_size) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (!w->full_logged) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "ldseg_spool \"%V\" reached max_size, events stay "
                          "in memory only", &scf->path);
            w->full_logged = 1;
        }

        goto unlink;
    }

    w->full_logged = 0;

    for (dq = ngx_queue_head(&ctx->sh->dests);
         dq != ngx_queue_sentinel(&ctx->sh->dests)
         && nclaims < NGX_HTTP_LDSEG_SPOOL_CLAIMS;
         dq = ngx_queue_next(dq))
    {
        dest = ngx_queue_data(dq, ngx_http_ldseg_dest_t, queue);

        for (q = ngx_queue_head(&dest->payloads);
             q != ngx_queue_sentinel(&dest->payloads)
             && nclaims < NGX_HTTP_LDSEG_SPOOL_CLAIMS;
             q = ngx_queue_next(q))
        {
            p = ngx_queue_data(q, ngx_http_ldseg_payload_t, queue);

            if (p->head == NULL || p->sfile || p->done || p->nevents == 0
                || (p->spooling
                    && (ngx_msec_int_t) (p->spool_until - now) > 0))
            {
                continue;
            }

            if (!all && now - p->created < scf->delay) {
                continue;
            }

            /*
             * A payload being spooled is closed for good and not freed:
             * its chunks are read without the lock.
             */

            if (!p->has_id) {
                ngx_http_ldseg_random(p->id, 16);
                p->has_id = 1;
            }

            p->spooling = 1;
            p->spool_until = now + 60000;
            p->closed = 1;

            ngx_memzero(&claims[nclaims], sizeof(ngx_http_ldseg_spool_claim_t));
            claims[nclaims].payload = p;
            claims[nclaims].dest = dest;
            nclaims++;

            size += NGX_HTTP_LDSEG_SPOOL_HEADER + dest->url_len + p->len + 2;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (nclaims == 0) {
        goto unlink;
    }

    ok = 0;
    written = 0;

    buf = ngx_alloc(size, log);

    if (buf != NULL
        && (w->fd != NGX_INVALID_FILE
            || ngx_http_ldseg_spool_open(ctx, log) == NGX_OK))
    {
        b = buf;

        for (i = 0; i < nclaims; i++) {
            p = claims[i].payload;
            dest = claims[i].dest;

            claims[i].off = w->size + (b - buf);

            ulen = (uint16_t) dest->url_len;
            nev = (uint32_t) p->nevents;

            ngx_memcpy(b, NGX_HTTP_LDSEG_SPOOL_MAGIC, 4);
            ngx_memcpy(b + 12, &nev, 4);
            ngx_memcpy(b + 16, p->id, 16);
            ngx_memcpy(b + 32, &ulen, 2);
            ngx_memzero(b + 34, 2);

            last = ngx_cpymem(b + NGX_HTTP_LDSEG_SPOOL_HEADER, dest->url,
                              dest->url_len);

            l.payload = p;
            last = ngx_http_ldseg_shm_copy(&l, last);

            claims[i].len = last - b;

            len32 = (uint32_t) claims[i].len;
            ngx_memcpy(b + 8, &len32, 4);
            crc = ngx_crc32_long(b + 8, claims[i].len - 8);
            ngx_memcpy(b + 4, &crc, 4);

            b = last;
        }

        written = b - buf;

        if (ngx_write_fd(w->fd, buf, written) == (ssize_t) written
            && (!scf->fsync || fdatasync(w->fd) == 0))
        {
            ok = 1;
            w->size += written;

        } else {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "ldseg: cannot write to the spool in \"%V\", "
                          "%ui payloads stay in memory only",
                          &scf->path, nclaims);

            /* a short write may have left a torn record: use a new file */
            ngx_close_file(w->fd);
            w->fd = NGX_INVALID_FILE;
        }
    }

    if (buf != NULL) {
        ngx_free(buf);
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ok) {
        w->sfile->size = w->size;
        ctx->sh->spool_bytes += written;
    }

    for (i = 0; i < nclaims; i++) {
        p = claims[i].payload;
        p->spooling = 0;

        if (ok) {
            p->sfile = w->sfile;
            p->soff = claims[i].off;
            p->slen = claims[i].len;
            w->sfile->live++;
            ctx->sh->spool_events += p->nevents;
            (void) ngx_atomic_fetch_add(&ctx->sh->stats.spooled, p->nevents);
        }

        if (p->done && !p->leased) {
            /* delivered while it was being written */
            ngx_http_ldseg_payload_drop_locked(ctx, p, &claims[i].ref);
        }
    }

    if (w->sfile && (!ok || w->size >= NGX_HTTP_LDSEG_SPOOL_ROTATE)) {
        w->sfile->writer = 0;
        gone = ngx_http_ldseg_sfile_release(ctx, w->sfile);
        w->sfile = NULL;

        if (gone && nunlink < 8) {
            unlink[nunlink++] = gone;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (w->sfile == NULL && w->fd != NGX_INVALID_FILE) {
        ngx_close_file(w->fd);
        w->fd = NGX_INVALID_FILE;
    }

    for (i = 0; i < nclaims; i++) {
        ngx_http_ldseg_spool_forget(zone, &claims[i].ref, log);
    }

unlink:

    for (i = 0; i < nunlink; i++) {
        ngx_http_ldseg_spool_unlink(zone, unlink[i], log);
    }
}


static ngx_int_t
ngx_http_ldseg_spool_open(ngx_http_ldseg_shctx_t *ctx, ngx_log_t *log)
{
    u_char                         name[NGX_MAX_PATH];
    uint32_t                       n;
    ngx_http_ldseg_sfile_t        *sf;
    ngx_http_ldseg_spool_conf_t   *scf;
    ngx_http_ldseg_spool_writer_t *w;

    scf = ctx->spool;
    w = &ngx_http_ldseg_spool_writer;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    n = ++ctx->sh->spool_seq;

    sf = ngx_http_ldseg_sfile_new(ctx, n);
    if (sf != NULL) {
        sf->writer = ngx_pid;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (sf == NULL) {
        return NGX_ERROR;
    }

    ngx_http_ldseg_spool_name(scf, n, name);

    w->fd = ngx_open_file(name, NGX_FILE_APPEND, NGX_FILE_CREATE_OR_OPEN,
                          NGX_FILE_DEFAULT_ACCESS);

    if (w->fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", name);

        ngx_shmtx_lock(&ctx->shpool->mutex);
        sf->writer = 0;
        (void) ngx_http_ldseg_sfile_release(ctx, sf);
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        return NGX_ERROR;
    }

    w->sfile = sf;
    w->size = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_spool_read(ngx_shm_zone_t *zone, ngx_http_ldseg_lease_t *l,
    ngx_pool_t *pool, u_char **body, size_t *len, ngx_log_t *log)
{
    u_char                       *buf, name[NGX_MAX_PATH];
    ssize_t                       n;
    uint16_t                      ulen;
    ngx_http_ldseg_shctx_t       *ctx;
    ngx_http_ldseg_spool_conf_t  *scf;

    ctx = zone->data;
    scf = ctx->spool;

    if (scf == NULL || scf->path.data == NULL) {
        return NGX_DECLINED;
    }

    buf = ngx_pnalloc(pool, l->slen);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_http_ldseg_spool_name(scf, l->sfile, name);

    n = ngx_http_ldseg_spool_pread(name, buf, l->slen, l->soff, log);

    if (n != (ssize_t) l->slen
        || ngx_http_ldseg_spool_check(buf, l->slen) != NGX_OK
        || ngx_memcmp(buf + 16, l->id, 16) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ldseg: spool record at offset %O of \"%s\" is "
                      "corrupt", l->soff, name);
        return NGX_DECLINED;
    }

    ngx_memcpy(&ulen, buf + 32, 2);

    *body = buf + NGX_HTTP_LDSEG_SPOOL_HEADER + ulen;
    *len = l->slen - NGX_HTTP_LDSEG_SPOOL_HEADER - ulen;

    return NGX_OK;
}


static ssize_t
ngx_http_ldseg_spool_pread(u_char *name, u_char *buf, size_t len, off_t off,
    ngx_log_t *log)
{
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_file_t  file;

    fd = ngx_open_file(name, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", name);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name.data = name;
    file.name.len = ngx_strlen(name);
    file.log = log;

    n = (len > 0) ? ngx_read_file(&file, buf, len, off) : 0;

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", name);
    }

    return n;
}


void
ngx_http_ldseg_spool_forget(ngx_shm_zone_t *zone,
    ngx_http_ldseg_spool_ref_t *ref, ngx_log_t *log)
{
    u_char                        name[NGX_MAX_PATH];
    ngx_fd_t                      fd;
    ngx_http_ldseg_shctx_t       *ctx;
    ngx_http_ldseg_spool_conf_t  *scf;

    if (ref->unlink) {
        ngx_http_ldseg_spool_unlink(zone, ref->unlink, log);
    }

    if (ref->file == 0 || ref->file == ref->unlink) {
        return;
    }

    ctx = zone->data;
    scf = ctx->spool;

    if (scf == NULL || scf->path.data == NULL) {
        return;
    }

    ngx_http_ldseg_spool_name(scf, ref->file, name);

    fd = ngx_open_file(name, NGX_FILE_WRONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    if (pwrite(fd, NGX_HTTP_LDSEG_SPOOL_DONE, 4, ref->off) != 4) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "pwrite() to \"%s\" failed", name);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", name);
    }
}


void
ngx_http_ldseg_spool_unlink(ngx_shm_zone_t *zone, uint32_t n, ngx_log_t *log)
{
    u_char                       name[NGX_MAX_PATH];
    ngx_http_ldseg_shctx_t      *ctx;
    ngx_http_ldseg_spool_conf_t *scf;

    ctx = zone->data;
    scf = ctx->spool;

    if (n == 0 || scf == NULL || scf->path.data == NULL) {
        return;
    }

    ngx_http_ldseg_spool_name(scf, n, name);

    if (ngx_delete_file(name) == NGX_FILE_ERROR && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_delete_file_n " \"%s\" failed", name);
    }
}


void
ngx_http_ldseg_spool_close(ngx_shm_zone_t *zone, ngx_log_t *log)
{
    uint32_t                        n;
    ngx_http_ldseg_shctx_t         *ctx;
    ngx_http_ldseg_spool_writer_t  *w;

    ctx = zone->data;
    w = &ngx_http_ldseg_spool_writer;

    if (w->fd != NGX_INVALID_FILE) {
        ngx_close_file(w->fd);
        w->fd = NGX_INVALID_FILE;
    }

    if (w->sfile == NULL) {
        return;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    w->sfile->writer = 0;
    n = ngx_http_ldseg_sfile_release(ctx, w->sfile);
    w->sfile = NULL;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_ldseg_spool_unlink(zone, n, log);
}

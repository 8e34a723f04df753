
/*
 * Copyright (C) ldseg authors
 *
 * The durable spool: file I/O only.  Each worker appends records to a file
 * of its own, "ldseg-NNNNNNNN.spool" in the spool directory; a record holds
 * one payload (destination, payload ID and the JSON array to POST)
 * behind a header with a magic number, its length and a CRC32, so a torn
 * or corrupt tail is recognized and skipped.  The queue counts, per file,
 * the payloads whose durable copy it holds; a closed file that holds none
 * is unlinked by a worker.  The master only reads the directory (replay
 * at start), so a configuration that is rejected changes nothing on disk.
 *
 * A record whose payload was delivered (or given up on) while its file
 * still holds others gets its magic overwritten with "LDS0", so a replay
 * skips it; that write is not synced, so after a power loss the payload may
 * still be sent twice, with its payload ID, which LaunchDarkly uses to drop
 * the duplicate.
 *
 * Files are created 0600 (they hold user identities) and the directory is
 * synced after a file is created, so a power loss cannot lose a synced
 * record with its directory entry.  Appends, fdatasync() and the other
 * file operations of a flush run as one job in an nginx thread pool.
 *
 * Record layout, integers in host byte order:
 *
 *     0  "LDS1" (LaunchDarkly), "LDS2" (Segment), "LDS0": done
 *     4  CRC32 of bytes 8..len
 *     8  len, the whole record
 *    12  number of events
 *    16  payload ID, 16 bytes
 *    32  key length, 2 bytes
 *    34  destination kind, 1 byte (0 LaunchDarkly, 1 Segment); 1 reserved
 *    36  key, then the JSON array
 *
 * The key is the destination's: its URL, and for Segment a NUL and the
 * write key.  A LaunchDarkly record is the same as before the export
 * existed; a Segment record has a magic of its own, so that an older
 * version skips it as corrupt rather than sending it to LaunchDarkly.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include <dirent.h>

#include "ngx_http_ldseg_spool.h"
#include "ngx_http_ldseg_crash.h"


#define NGX_HTTP_LDSEG_SPOOL_MAGIC    "LDS1"
#define NGX_HTTP_LDSEG_SPOOL_MAGIC2   "LDS2"
#define NGX_HTTP_LDSEG_SPOOL_DONE     "LDS0"
#define NGX_HTTP_LDSEG_SPOOL_NAME     "ldseg-%08uD.spool"
#define NGX_HTTP_LDSEG_SPOOL_MODE     0600


static ngx_int_t ngx_http_ldseg_spool_scan_file(ngx_str_t *dir, uint32_t n,
    ngx_http_ldseg_spool_rec_pt handler, void *data, ngx_log_t *log);
static ngx_fd_t ngx_http_ldseg_spool_open_regular(u_char *name,
    off_t *size, ngx_log_t *log);
static ngx_int_t ngx_http_ldseg_spool_check(u_char *rec, size_t avail);
static ssize_t ngx_http_ldseg_spool_pread(ngx_fd_t fd, u_char *buf,
    size_t len, off_t off);
static ngx_int_t ngx_http_ldseg_spool_write_all(ngx_fd_t fd, u_char *buf,
    size_t len);
static void ngx_http_ldseg_spool_sync_dir(ngx_http_ldseg_spool_job_t *job);
static void ngx_http_ldseg_spool_do_op(ngx_http_ldseg_spool_op_t *op);
#if (NGX_THREADS)
static void ngx_http_ldseg_spool_thread(void *data, ngx_log_t *log);
static void ngx_http_ldseg_spool_thread_done(ngx_event_t *ev);
#endif
static int ngx_libc_cdecl ngx_http_ldseg_spool_cmp(const void *a,
    const void *b);


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

        if (ngx_strncmp(value[i].data, "thread_pool=", 12) == 0) {
            scf->thread_pool.data = value[i].data + 12;
            scf->thread_pool.len = value[i].len - 12;

            if (scf->thread_pool.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_spool\" thread_pool "
                                   "\"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_spool\" parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}




void
ngx_http_ldseg_spool_name(u_char *dir, size_t dir_len, uint32_t n,
    u_char *name)
{
    /* the directive checked that every name fits in NGX_MAX_PATH */

    ngx_sprintf(name, "%*s/" NGX_HTTP_LDSEG_SPOOL_NAME "%Z", dir_len, dir, n);
}


size_t
ngx_http_ldseg_spool_record_size(size_t url_len, size_t body_len)
{
    return NGX_HTTP_LDSEG_SPOOL_HEADER + url_len + body_len;
}


u_char *
ngx_http_ldseg_spool_record_start(u_char *rec, u_char *id,
    ngx_uint_t nevents, ngx_uint_t kind, u_char *url, size_t url_len)
{
    uint16_t  ulen;
    uint32_t  nev;

    ulen = (uint16_t) url_len;
    nev = (uint32_t) nevents;

    ngx_memcpy(rec, kind ? NGX_HTTP_LDSEG_SPOOL_MAGIC2
                         : NGX_HTTP_LDSEG_SPOOL_MAGIC, 4);
    ngx_memzero(rec + 4, 8);
    ngx_memcpy(rec + 12, &nev, 4);
    ngx_memcpy(rec + 16, id, 16);
    ngx_memcpy(rec + 32, &ulen, 2);
    rec[34] = (u_char) kind;
    rec[35] = 0;

    return ngx_cpymem(rec + NGX_HTTP_LDSEG_SPOOL_HEADER, url, url_len);
}


void
ngx_http_ldseg_spool_record_seal(u_char *rec, size_t len)
{
    uint32_t  crc, len32;

    len32 = (uint32_t) len;
    ngx_memcpy(rec + 8, &len32, 4);

    crc = ngx_crc32_long(rec + 8, len - 8);
    ngx_memcpy(rec + 4, &crc, 4);
}


ngx_int_t
ngx_http_ldseg_spool_scan(ngx_str_t *dir, ngx_http_ldseg_spool_rec_pt handler,
    void *data, uint32_t *max, ngx_log_t *log)
{
    DIR            *d;
    uint32_t       *nums, *more, n;
    ngx_uint_t      count, alloc, i;
    struct dirent  *de;

    d = opendir((char *) dir->data);
    if (d == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "ldseg: opendir(\"%V\") failed", dir);
        return NGX_ERROR;
    }

    count = 0;
    alloc = 64;

    nums = ngx_alloc(alloc * sizeof(uint32_t), log);
    if (nums == NULL) {
        closedir(d);
        return NGX_ERROR;
    }

    while ((de = readdir(d)) != NULL) {

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

        if (n > *max) {
            *max = n;
        }

        if (count == alloc) {
            more = ngx_alloc(2 * alloc * sizeof(uint32_t), log);
            if (more == NULL) {
                ngx_free(nums);
                closedir(d);
                return NGX_ERROR;
            }

            ngx_memcpy(more, nums, alloc * sizeof(uint32_t));
            ngx_free(nums);
            nums = more;
            alloc *= 2;
        }

        nums[count++] = n;
    }

    closedir(d);

    /* replay in the order the payloads were written */

    ngx_qsort(nums, count, sizeof(uint32_t), ngx_http_ldseg_spool_cmp);

    for (i = 0; i < count; i++) {
        if (ngx_http_ldseg_spool_scan_file(dir, nums[i], handler, data, log)
            != NGX_OK)
        {
            ngx_free(nums);
            return NGX_ERROR;
        }
    }

    ngx_free(nums);

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
ngx_http_ldseg_spool_scan_file(ngx_str_t *dir, uint32_t n,
    ngx_http_ldseg_spool_rec_pt handler, void *data, ngx_log_t *log)
{
    u_char                      *buf, *rec, *p, name[NGX_MAX_PATH];
    off_t                        size;
    size_t                       len, off, rlen;
    uint16_t                     ulen;
    uint32_t                     len32;
    ngx_fd_t                     fd;
    ngx_int_t                    rc;
    ngx_http_ldseg_spool_rec_t   r;

    ngx_http_ldseg_spool_name(dir->data, dir->len, n, name);

    fd = ngx_http_ldseg_spool_open_regular(name, &size, log);
    if (fd == NGX_INVALID_FILE) {
        return NGX_OK;
    }

    len = (size_t) size;

    buf = ngx_alloc(len + 1, log);
    if (buf == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_http_ldseg_spool_pread(fd, buf, len, 0) != (ssize_t) len) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "ldseg: cannot read spool file \"%s\", skipped", name);
        ngx_close_file(fd);
        ngx_free(buf);
        return NGX_OK;
    }

    ngx_close_file(fd);

    ngx_memzero(&r, sizeof(ngx_http_ldseg_spool_rec_t));
    r.dir = *dir;
    r.file = n;
    r.file_size = size;

    rc = handler(data, &r);

    for (off = 0; off < len && rc == NGX_OK; off += rlen) {
        rec = buf + off;

        if (ngx_http_ldseg_spool_check(rec, len - off) != NGX_OK) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "ldseg: spool file \"%s\" is corrupt or truncated "
                          "at offset %uz, the last %uz bytes are skipped",
                          name, off, len - off);
            break;
        }

        ngx_memcpy(&len32, rec + 8, 4);
        rlen = len32;

        if (ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_DONE, 4) == 0) {
            continue;
        }

        ngx_memcpy(&r.nevents, rec + 12, 4);
        ngx_memcpy(&ulen, rec + 32, 2);

        r.rec = rec;
        r.off = off;
        r.len = rlen;
        r.id = rec + 16;
        r.kind = rec[34];
        r.url.data = rec + NGX_HTTP_LDSEG_SPOOL_HEADER;
        r.url.len = ulen;
        r.cred.data = NULL;
        r.cred.len = 0;
        r.body_len = rlen - NGX_HTTP_LDSEG_SPOOL_HEADER - ulen;

        if (r.kind != 0) {
            p = ngx_strlchr(r.url.data, r.url.data + ulen, '\0');

            if (p == NULL) {
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "ldseg: spool record at offset %uz of \"%s\" "
                              "has no write key, skipped", off, name);
                continue;
            }

            r.url.len = p - r.url.data;
            r.cred.data = p + 1;
            r.cred.len = ulen - r.url.len - 1;
        }

        rc = handler(data, &r);
    }

    ngx_free(buf);

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


static ngx_fd_t
ngx_http_ldseg_spool_open_regular(u_char *name, off_t *size, ngx_log_t *log)
{
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    /*
     * Only regular files are read: a FIFO or a device in the directory
     * would block open() or read() forever.  O_NONBLOCK keeps open() of a
     * FIFO from waiting for a writer; the type is then checked on the fd.
     */

    fd = open((char *) name, O_RDONLY|O_NONBLOCK|O_NOFOLLOW);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "ldseg: spool file \"%s\" cannot be opened, skipped",
                      name);
        return NGX_INVALID_FILE;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "ldseg: \"%s\" in the spool directory is not a "
                      "regular file, skipped", name);
        ngx_close_file(fd);
        return NGX_INVALID_FILE;
    }

    *size = ngx_file_size(&fi);

    return fd;
}


static ngx_int_t
ngx_http_ldseg_spool_check(u_char *rec, size_t avail)
{
    uint16_t  ulen;
    uint32_t  crc, len;

    if (avail < NGX_HTTP_LDSEG_SPOOL_HEADER
        || (ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_MAGIC, 4) != 0
            && ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_MAGIC2, 4) != 0
            && ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_DONE, 4) != 0))
    {
        return NGX_ERROR;
    }

    /* the kind goes with its magic (a done record keeps its kind) */

    if (rec[34] > 1
        || (rec[34] == 0
            && ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_MAGIC2, 4) == 0)
        || (rec[34] == 1
            && ngx_memcmp(rec, NGX_HTTP_LDSEG_SPOOL_MAGIC, 4) == 0))
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


ngx_int_t
ngx_http_ldseg_spool_read(ngx_http_ldseg_spool_loc_t *loc, u_char *id,
    ngx_pool_t *pool, u_char **body, size_t *len, ngx_log_t *log)
{
    u_char    *buf;
    off_t      size;
    ssize_t    n;
    uint16_t   ulen;
    ngx_fd_t   fd;

    buf = ngx_pnalloc(pool, loc->len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    fd = ngx_http_ldseg_spool_open_regular(loc->name, &size, log);
    if (fd == NGX_INVALID_FILE) {
        return NGX_DECLINED;
    }

    n = ngx_http_ldseg_spool_pread(fd, buf, loc->len, loc->off);

    ngx_close_file(fd);

    if (n != (ssize_t) loc->len
        || ngx_http_ldseg_spool_check(buf, loc->len) != NGX_OK
        || ngx_memcmp(buf + 16, id, 16) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ldseg: spool record at offset %O of \"%s\" is "
                      "corrupt", loc->off, loc->name);
        return NGX_DECLINED;
    }

    ngx_memcpy(&ulen, buf + 32, 2);

    *body = buf + NGX_HTTP_LDSEG_SPOOL_HEADER + ulen;
    *len = loc->len - NGX_HTTP_LDSEG_SPOOL_HEADER - ulen;

    return NGX_OK;
}


static ssize_t
ngx_http_ldseg_spool_pread(ngx_fd_t fd, u_char *buf, size_t len, off_t off)
{
    ssize_t  n;
    size_t   done;

    for (done = 0; done < len; done += n) {
        n = pread(fd, buf + done, len - done, off + done);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            return (done > 0) ? (ssize_t) done : n;
        }
    }

    return done;
}


static ngx_int_t
ngx_http_ldseg_spool_write_all(ngx_fd_t fd, u_char *buf, size_t len)
{
    ssize_t  n;

    while (len) {
        n = write(fd, buf, len);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        if (n <= 0) {
            if (n == 0) {
                ngx_set_errno(NGX_ENOSPC);
            }

            return NGX_ERROR;
        }

        buf += n;
        len -= n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_spool_ops_init(ngx_http_ldseg_spool_ops_t *ops,
    ngx_pool_t *pool)
{
    ops->pool = pool;
    ops->ops = ngx_array_create(pool, 4, sizeof(ngx_http_ldseg_spool_op_t));

    return (ops->ops == NULL) ? NGX_ERROR : NGX_OK;
}


ngx_int_t
ngx_http_ldseg_spool_op_file(ngx_http_ldseg_spool_ops_t *ops,
    ngx_http_ldseg_spool_op_e type, u_char *dir, size_t dir_len, uint32_t n,
    off_t off)
{
    ngx_http_ldseg_spool_op_t  *op;

    op = ngx_array_push(ops->ops);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(op, sizeof(ngx_http_ldseg_spool_op_t));

    op->name = ngx_pnalloc(ops->pool,
                           dir_len + sizeof("/ldseg-00000000.spool"));
    if (op->name == NULL) {
        ops->ops->nelts--;
        return NGX_ERROR;
    }

    ngx_http_ldseg_spool_name(dir, dir_len, n, op->name);

    op->type = type;
    op->off = off;

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_spool_op_append(ngx_http_ldseg_spool_ops_t *ops,
    ngx_str_t *name, u_char *data, size_t len)
{
    ngx_http_ldseg_spool_op_t  *op;

    op = ngx_array_push(ops->ops);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(op, sizeof(ngx_http_ldseg_spool_op_t));

    op->name = ngx_pnalloc(ops->pool, name->len + 1);
    op->data = ngx_pnalloc(ops->pool, len);

    if (op->name == NULL || op->data == NULL) {
        ops->ops->nelts--;
        return NGX_ERROR;
    }

    ngx_memcpy(op->name, name->data, name->len);
    op->name[name->len] = '\0';
    ngx_memcpy(op->data, data, len);

    op->type = NGX_HTTP_LDSEG_SPOOL_APPEND;
    op->len = len;

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_spool_op_tap(ngx_http_ldseg_spool_ops_t *ops,
    ngx_str_t *name, off_t max_size, u_char *data, size_t len)
{
    ngx_http_ldseg_spool_op_t  *op;

    if (ngx_http_ldseg_spool_op_append(ops, name, data, len) != NGX_OK) {
        return NGX_ERROR;
    }

    op = ops->ops->elts;
    op = &op[ops->ops->nelts - 1];

    op->type = NGX_HTTP_LDSEG_SPOOL_TAP;
    op->off = max_size;

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_spool_job_start(ngx_http_ldseg_spool_job_t *job, void *tp)
{
#if (NGX_THREADS)
    ngx_thread_task_t           *task;
    ngx_http_ldseg_spool_job_t **ctx;

    if (tp != NULL) {
        task = ngx_thread_task_alloc(job->pool, sizeof(void *));
        if (task == NULL) {
            return NGX_ERROR;
        }

        ctx = task->ctx;
        *ctx = job;

        task->handler = ngx_http_ldseg_spool_thread;
        task->event.data = job;
        task->event.handler = ngx_http_ldseg_spool_thread_done;
        task->event.log = job->log;

        if (ngx_thread_task_post(tp, task) != NGX_OK) {
            return NGX_ERROR;
        }

        return NGX_OK;
    }
#endif

    ngx_http_ldseg_spool_job_run(job);
    job->handler(job);

    return NGX_OK;
}


#if (NGX_THREADS)

static void
ngx_http_ldseg_spool_thread(void *data, ngx_log_t *log)
{
    ngx_http_ldseg_spool_job_t  **ctx = data;

    ngx_http_ldseg_spool_job_run(*ctx);
}


static void
ngx_http_ldseg_spool_thread_done(ngx_event_t *ev)
{
    ngx_http_ldseg_spool_job_t  *job = ev->data;

    job->handler(job);
}

#endif


void
ngx_http_ldseg_spool_job_run(ngx_http_ldseg_spool_job_t *job)
{
    ngx_uint_t                     i, created;
    ngx_http_ldseg_spool_op_t     *op;
    ngx_http_ldseg_spool_claim_t  *c;

    /*
     * Runs in a thread: no logging and no allocation from the job's pool,
     * only system calls; errors are left in the job for the worker.
     */

    if (job->len) {
        created = 0;

        /* the CRCs are computed here, off the worker's event loop */

        c = job->claims->elts;

        for (i = 0; i < job->claims->nelts; i++) {
            ngx_http_ldseg_spool_record_seal(job->buf + c[i].pos, c[i].len);
        }

        if (*job->fd == NGX_INVALID_FILE) {
            *job->fd = open((char *) job->name,
                            O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW,
                            NGX_HTTP_LDSEG_SPOOL_MODE);

            if (*job->fd == NGX_INVALID_FILE) {
                job->err = ngx_errno;
                job->failed = "open()";
                goto ops;
            }

            *job->size = 0;
            created = 1;
        }

        ngx_http_ldseg_crash("spool_before_write");

        if (ngx_http_ldseg_spool_write_all(*job->fd, job->buf, job->len)
            != NGX_OK)
        {
            job->err = ngx_errno;
            job->failed = "write()";
            goto ops;
        }

        ngx_http_ldseg_crash("spool_after_write");

        if (job->fsync && fdatasync(*job->fd) == -1) {
            job->err = ngx_errno;
            job->failed = "fdatasync()";
            goto ops;
        }

        if (created && job->fsync) {
            ngx_http_ldseg_spool_sync_dir(job);
        }

        *job->size += job->len;
        job->written = 1;
    }

ops:

    if (job->ops.ops) {
        op = job->ops.ops->elts;

        for (i = 0; i < job->ops.ops->nelts; i++) {
            ngx_http_ldseg_spool_do_op(&op[i]);
        }
    }

    job->complete = 1;
}


static void
ngx_http_ldseg_spool_sync_dir(ngx_http_ldseg_spool_job_t *job)
{
    int  fd;

    /* the new file's directory entry must survive a power loss too */

    fd = open((char *) job->dir, O_RDONLY|O_DIRECTORY);

    if (fd == -1) {
        job->err = ngx_errno;
        job->failed = "open() of the directory";
        return;
    }

    if (fsync(fd) == -1) {
        job->err = ngx_errno;
        job->failed = "fsync() of the directory";
    }

    (void) close(fd);
}


static void
ngx_http_ldseg_spool_do_op(ngx_http_ldseg_spool_op_t *op)
{
    ngx_fd_t         fd;
    ngx_file_info_t  fi;
    u_char           old[NGX_MAX_PATH + 3];

    switch (op->type) {

    case NGX_HTTP_LDSEG_SPOOL_MARK:

        /* the record's payload is gone: a replay skips it */

        fd = open((char *) op->name, O_WRONLY|O_NOFOLLOW|O_NONBLOCK);
        if (fd == NGX_INVALID_FILE) {
            if (ngx_errno != NGX_ENOENT) {
                op->err = ngx_errno;
            }
            return;
        }

        ngx_http_ldseg_crash("spool_mark");

        if (pwrite(fd, NGX_HTTP_LDSEG_SPOOL_DONE, 4, op->off) != 4) {
            op->err = ngx_errno;
        }

        (void) close(fd);
        return;

    case NGX_HTTP_LDSEG_SPOOL_UNLINK:

        ngx_http_ldseg_crash("spool_unlink");

        if (unlink((char *) op->name) == -1 && ngx_errno != NGX_ENOENT) {
            op->err = ngx_errno;
        }

        return;

    case NGX_HTTP_LDSEG_SPOOL_APPEND:

        fd = open((char *) op->name, O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW,
                  NGX_HTTP_LDSEG_SPOOL_MODE);
        if (fd == NGX_INVALID_FILE) {
            op->err = ngx_errno;
            return;
        }

        if (ngx_http_ldseg_spool_write_all(fd, op->data, op->len) != NGX_OK
            || fdatasync(fd) == -1)
        {
            op->err = ngx_errno;
        }

        (void) close(fd);
        return;

    case NGX_HTTP_LDSEG_SPOOL_TAP:

        /* one old file is kept: a full one becomes "name.1" */

        if (op->off > 0 && ngx_file_info(op->name, &fi) != NGX_FILE_ERROR
            && ngx_file_size(&fi) > 0
            && ngx_file_size(&fi) + (off_t) op->len > op->off)
        {
            (void) ngx_snprintf(old, sizeof(old), "%s.1%Z", op->name);

            if (rename((char *) op->name, (char *) old) == -1) {
                op->err = ngx_errno;
                return;
            }
        }

        fd = open((char *) op->name, O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW,
                  NGX_HTTP_LDSEG_SPOOL_MODE);
        if (fd == NGX_INVALID_FILE) {
            op->err = ngx_errno;
            return;
        }

        if (ngx_http_ldseg_spool_write_all(fd, op->data, op->len) != NGX_OK) {
            op->err = ngx_errno;
        }

        (void) close(fd);
        return;
    }
}

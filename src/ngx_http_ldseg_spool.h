
/*
 * Copyright (C) ldseg authors
 *
 * The durable spool ("ldseg_spool"): file I/O only.  The record format,
 * appending records, reading one back, marking records done, unlinking
 * files and scanning the directory at start.  It never takes the zone
 * lock and knows nothing of the queue: the queue hands it bytes to write
 * and takes back where they were written.  Appends and fdatasync() run in
 * an nginx thread pool, so a slow disk never stalls a worker.
 */


#ifndef _NGX_HTTP_LDSEG_SPOOL_H_INCLUDED_
#define _NGX_HTTP_LDSEG_SPOOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* events URL + "/events/bulk/" + client-side ID */
#define NGX_HTTP_LDSEG_URL_MAX        1536
/* a Segment write key at most (its length is one byte of a record) */
#define NGX_HTTP_LDSEG_CRED_MAX       255
#define NGX_HTTP_LDSEG_SPOOL_HEADER   36
#define NGX_HTTP_LDSEG_SPOOL_ROTATE   (1024 * 1024)


typedef struct {
    ngx_str_t                     path;      /* NULL data: no spool */
    off_t                         max_size;
    ngx_msec_t                    delay;
    ngx_flag_t                    fsync;
    ngx_str_t                     thread_pool;
} ngx_http_ldseg_spool_conf_t;


/* where a record is: the file's full name, offset and length */
typedef struct {
    u_char                        name[NGX_MAX_PATH];
    off_t                         off;
    size_t                        len;
} ngx_http_ldseg_spool_loc_t;


/* one record (or, with rec == NULL, the start of a file) at replay */
typedef struct {
    ngx_str_t                     dir;
    uint32_t                      file;
    off_t                         file_size;

    u_char                       *rec;       /* NULL: a file begins */
    off_t                         off;
    size_t                        len;
    uint32_t                      nevents;
    u_char                       *id;
    ngx_uint_t                    kind;
    ngx_str_t                     url;
    ngx_str_t                     cred;
    size_t                        body_len;
} ngx_http_ldseg_spool_rec_t;

typedef ngx_int_t (*ngx_http_ldseg_spool_rec_pt)(void *data,
    ngx_http_ldseg_spool_rec_t *rec);


/* file operations for the next spool job: mark, unlink, append a line */
typedef enum {
    NGX_HTTP_LDSEG_SPOOL_MARK = 0,
    NGX_HTTP_LDSEG_SPOOL_UNLINK,
    NGX_HTTP_LDSEG_SPOOL_APPEND,
    NGX_HTTP_LDSEG_SPOOL_TAP
} ngx_http_ldseg_spool_op_e;


typedef struct {
    ngx_http_ldseg_spool_op_e     type;
    u_char                       *name;
    off_t                         off;
    u_char                       *data;
    size_t                        len;
    ngx_err_t                     err;
} ngx_http_ldseg_spool_op_t;


typedef struct {
    ngx_pool_t                   *pool;
    ngx_array_t                  *ops;
} ngx_http_ldseg_spool_ops_t;


/* a record written for the queue: whose it is and where it went */
typedef struct {
    void                         *owner;
    uint64_t                      owner_id;
    uint64_t                      seq;
    u_char                        id[16];
    size_t                        pos;       /* in the job's buffer */
    size_t                        len;
    off_t                         off;       /* in the file */
} ngx_http_ldseg_spool_claim_t;


typedef struct ngx_http_ldseg_spool_job_s  ngx_http_ldseg_spool_job_t;

typedef void (*ngx_http_ldseg_spool_done_pt)(ngx_http_ldseg_spool_job_t *job);

struct ngx_http_ldseg_spool_job_s {
    ngx_pool_t                   *pool;

    /* records to append to the file "name" (fd, size: the writer's) */
    u_char                       *buf;
    size_t                        len;
    ngx_array_t                  *claims;
    uint32_t                      file;
    u_char                        name[NGX_MAX_PATH];
    u_char                        dir[NGX_MAX_PATH];
    ngx_fd_t                     *fd;
    off_t                        *size;
    ngx_flag_t                    fsync;

    ngx_http_ldseg_spool_ops_t    ops;

    /* results */
    ngx_uint_t                    written;
    ngx_err_t                     err;
    const char                   *failed;

    ngx_http_ldseg_spool_done_pt  handler;
    void                         *data;
    ngx_log_t                    *log;
    volatile ngx_uint_t           complete;
};


/* "ldseg_spool PATH [max_size=] [delay=] [fsync=] [thread_pool=]" */
char *ngx_http_ldseg_spool_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the full name of spool file n in dir, NUL-terminated, into name */
void ngx_http_ldseg_spool_name(u_char *dir, size_t dir_len, uint32_t n,
    u_char *name);

/*
 * bytes a record of a url_len URL (its key: the URL and, for Segment, a
 * NUL and the write key) and a body_len JSON array takes
 */
size_t ngx_http_ldseg_spool_record_size(size_t url_len, size_t body_len);

/*
 * writes a record's header, the destination's kind and its key (url_len
 * bytes as above) at rec; returns where the body goes
 */
u_char *ngx_http_ldseg_spool_record_start(u_char *rec, u_char *id,
    ngx_uint_t nevents, ngx_uint_t kind, u_char *url, size_t url_len);

/* sets the length and CRC of a complete record of len bytes */
void ngx_http_ldseg_spool_record_seal(u_char *rec, size_t len);

/*
 * Reads the spool directory dir (the master, at start; nothing is
 * changed): handler is called for every file that is a regular spool
 * file, then for each of its intact records that is not marked done, in
 * the order they were written.  *max is the highest file number seen.
 * Anything else in the directory is skipped with a log line; a corrupt
 * tail is skipped with a log line.  NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_spool_scan(ngx_str_t *dir,
    ngx_http_ldseg_spool_rec_pt handler, void *data, uint32_t *max,
    ngx_log_t *log);

/*
 * Reads the record at loc into a buffer from pool; *body is its JSON
 * array.  NGX_OK, NGX_DECLINED (missing, corrupt, or not the payload id)
 * or NGX_ERROR (no memory).
 */
ngx_int_t ngx_http_ldseg_spool_read(ngx_http_ldseg_spool_loc_t *loc,
    u_char *id, ngx_pool_t *pool, u_char **body, size_t *len,
    ngx_log_t *log);

/* starts a list of file operations allocated from pool */
ngx_int_t ngx_http_ldseg_spool_ops_init(ngx_http_ldseg_spool_ops_t *ops,
    ngx_pool_t *pool);

/* adds a mark or an unlink of spool file n in dir (offset off: mark) */
ngx_int_t ngx_http_ldseg_spool_op_file(ngx_http_ldseg_spool_ops_t *ops,
    ngx_http_ldseg_spool_op_e type, u_char *dir, size_t dir_len, uint32_t n,
    off_t off);

/* adds a line (data is copied) to append to the file name, synced */
ngx_int_t ngx_http_ldseg_spool_op_append(ngx_http_ldseg_spool_ops_t *ops,
    ngx_str_t *name, u_char *data, size_t len);

/*
 * The same for ldseg_tap: not synced, and a file that the line would take
 * over max_size (0: no limit) is first renamed to name.1, which replaces
 * the one kept before.
 */
ngx_int_t ngx_http_ldseg_spool_op_tap(ngx_http_ldseg_spool_ops_t *ops,
    ngx_str_t *name, off_t max_size, u_char *data, size_t len);

/*
 * Runs a job: its records are appended (the file is created 0600 and its
 * directory entry synced when *fd is invalid), then synced, then the file
 * operations are done.  In the thread pool tp when there is one, else at
 * once; job->handler is then called in the worker.  NGX_OK or NGX_ERROR
 * (nothing was started).
 */
ngx_int_t ngx_http_ldseg_spool_job_start(ngx_http_ldseg_spool_job_t *job,
    void *tp);

/* runs a job in the calling process, without a thread (worker exit) */
void ngx_http_ldseg_spool_job_run(ngx_http_ldseg_spool_job_t *job);


#endif /* _NGX_HTTP_LDSEG_SPOOL_H_INCLUDED_ */

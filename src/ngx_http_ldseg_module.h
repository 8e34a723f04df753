
/*
 * Copyright (C) ldseg authors
 *
 * Declarations shared by the glue files: configuration structures, the
 * module itself and the functions one glue file calls in another.
 */


#ifndef _NGX_HTTP_LDSEG_MODULE_H_INCLUDED_
#define _NGX_HTTP_LDSEG_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ldseg.h"
#include "ngx_http_ldseg_spool.h"
#include "ngx_http_ldseg_cors.h"
#include "ngx_http_ldseg_queue.h"


#define NGX_HTTP_LDSEG_DEFAULT_URL    "https://events.launchdarkly.com"
#define NGX_HTTP_LDSEG_SEGMENT_URL    "https://api.segment.io"
#define NGX_HTTP_LDSEG_USER_AGENT     "ldseg/" LDSEG_VERSION

/* how much a gzip body may expand: ratio, and bytes for small bodies */
#define NGX_HTTP_LDSEG_GZIP_RATIO     100
#define NGX_HTTP_LDSEG_GZIP_SLACK     (16 * 1024)

/* the characters of a write key shown in logs and the status */
#define NGX_HTTP_LDSEG_KEY_PREFIX     4

/* a write key as the status and dead letters name it: "segW...1a2b3c4d" */
#define NGX_HTTP_LDSEG_KEY_LABEL_LEN  (NGX_HTTP_LDSEG_KEY_PREFIX + 3 + 8)

/* an events URL at most */
#define NGX_HTTP_LDSEG_EVENTS_URL_MAX 1024


typedef struct ngx_http_ldseg_sender_s  ngx_http_ldseg_sender_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_shm_zone_t               *dedupe;    /* ldseg_dedupe, or NULL */
    ngx_msec_t                    flush_interval;
    ngx_uint_t                    batch_size;
    size_t                        max_payload;
    ngx_msec_t                    timeout;
    ngx_msec_t                    connect_timeout;
    ngx_uint_t                    max_inflight;
    ngx_msec_t                    max_backoff;
    ngx_msec_t                    shutdown_timeout;
    ngx_flag_t                    gzip;
    size_t                        queue_limit;
    ngx_uint_t                    max_destinations;
    ngx_str_t                     dead_letter;
    ngx_uint_t                    dead_letter_after;
    ngx_http_ldseg_spool_conf_t   spool;
    ngx_http_ldseg_alert_conf_t   alert;
    ngx_uint_t                    recent;
    ngx_str_t                     tap;
    off_t                         tap_max_size;

    /* the thread pool of spool and dead-letter writes, or NULL */
    void                         *tp;

    /* set when some location has "ldseg on" */
    ngx_uint_t                    enabled;

    /* this process's sender, in workers */
    ngx_http_ldseg_sender_t      *sender;

    /* this process's last log line about events refused with 503 */
    ngx_msec_t                    refuse_logged;

    /* this process's last log line about exports dropped */
    ngx_msec_t                    export_logged;

    /* $ldseg_write_key; $ldseg_events, $ldseg_result, ... */
    ngx_int_t                     write_key_index;
    ngx_int_t                     var_index[3];

    /* the http level's core configuration, as written (never merged) */
    ngx_http_core_loc_conf_t     *http_clcf;
} ngx_http_ldseg_main_conf_t;


typedef struct {
    ngx_flag_t                    enable;
    ngx_uint_t                    format;
    ldseg_mappings_t             *mappings;  /* NULL: the presets */
    ngx_http_complex_value_t     *client_side_id;
    ngx_str_t                     events_url;
    ngx_str_t                     pass;
    ngx_str_t                     deliver;   /* "": the queue */
    time_t                        retry_after;
    ngx_http_ldseg_cors_t        *cors;
    ngx_flag_t                    clock_skew;

    /* ldseg_export and its directives */
    ngx_flag_t                    export;
    ngx_http_complex_value_t     *export_write_key;
    ngx_str_t                     export_url;     /* ".../v1/batch" */
    ngx_http_complex_value_t     *export_environment;
    ngx_str_t                     export_project;
    ngx_array_t                  *export_labels;  /* ngx_keyval_t */

    /* the location's core configuration, when "ldseg on" is in it */
    ngx_http_core_loc_conf_t     *clcf;

    /*
     * client_max_body_size of a location with "ldseg on": ldseg enforces
     * it, so that a body over it gets a JSON 413 (0: no limit)
     */
    off_t                         max_body_size;

    /* client_body_buffer_size was set when "ldseg on" was read */
    unsigned                      body_buffer_set:1;
} ngx_http_ldseg_loc_conf_t;


typedef struct {
    ldseg_endpoint_e              endpoint;
    ngx_str_t                     write_key;

    /* the body so far, and the limit (0: none) */
    off_t                         body_size;
    off_t                         max_body_size;

    /* ldseg_deliver: "/events/bulk/<id>", and the subrequests' state */
    ngx_str_t                     events_path;
    void                         *deliver;

    unsigned                      write_key_set:1;
} ngx_http_ldseg_ctx_t;


extern ngx_module_t  ngx_http_ldseg_module;


ngx_int_t ngx_http_ldseg_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_ldseg_export_handler(ngx_http_request_t *r);

/*
 * A write key goes into status JSON and Basic auth: 1 to
 * NGX_HTTP_LDSEG_CRED_MAX printable ASCII bytes, without quotes, "\"
 * and ":".  NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_export_key_check(ngx_str_t *key);

/*
 * Writes how the status and dead letters name a write key, which is a
 * credential: its first NGX_HTTP_LDSEG_KEY_PREFIX characters, "...", and
 * the CRC32 of the whole key in hex, so that two keys with the same first
 * characters differ (at most NGX_HTTP_LDSEG_KEY_LABEL_LEN bytes; "other"
 * for len 0, the write keys without counters of their own).  Returns the
 * end of what was written.
 */
u_char *ngx_http_ldseg_export_key_label(u_char *p, u_char *key, size_t len);

/*
 * The request body read by nginx, in one buffer (copied from its buffers
 * or temporary file into r->pool when needed), gunzipped when it says so,
 * at most limit bytes once gunzipped.  NGX_OK, NGX_DECLINED with err set
 * (too large, not gzip, corrupt) or NGX_ERROR.
 */
ngx_int_t ngx_http_ldseg_read_body(ngx_http_request_t *r, u_char **data,
    size_t *len, size_t limit, ldseg_error_t *err);

/* the core's allocator on r->pool (free does nothing) */
void *ngx_http_ldseg_pool_alloc(void *ctx, size_t size);
void ngx_http_ldseg_pool_free(void *ctx, void *p);
ngx_int_t ngx_http_ldseg_body_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_ldseg_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_ldseg_write_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

extern const char  *ngx_http_ldseg_drops[];


#endif /* _NGX_HTTP_LDSEG_MODULE_H_INCLUDED_ */

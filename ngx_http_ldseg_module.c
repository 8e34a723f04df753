
/*
 * Copyright (C) ldseg authors
 *
 * ngx_http_ldseg_module: Segment Tracking API in, LaunchDarkly events out.
 *
 * This file is the glue: directives, configuration create/merge, the
 * $ldseg_write_key variable and the worker hooks.  The work is done in
 * src/: the content handler, the shared queue, the sender, the status
 * page, and the nginx-free Segment model and translation.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ldseg_mapping.h"
#include "ngx_http_ldseg_zone.h"
#include "ngx_http_ldseg_dedupe.h"
#include "ngx_http_ldseg_queue.h"
#include "ngx_http_ldseg_sender.h"
#include "ngx_http_ldseg_reply.h"
#include "ngx_http_ldseg_deliver.h"


static ngx_int_t ngx_http_ldseg_preconfiguration(ngx_conf_t *cf);
static void *ngx_http_ldseg_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ldseg_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_ldseg_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ldseg_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ldseg_enable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_client_side_id(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_ldseg_events_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_parse_url(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *url);
static char *ngx_http_ldseg_export_enable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_export_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_export_label(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_set_complex(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_deliver_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_set_format(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_mappings(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_ldseg_conf_alloc(void *ctx, size_t size);
static void ngx_http_ldseg_conf_free(void *ctx, void *p);
static char *ngx_http_ldseg_set_bounded(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_dead_letter(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_alert(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_recent(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_tap(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ldseg_check_dir(ngx_conf_t *cf, ngx_str_t *name,
    const char *directive);
static ngx_int_t ngx_http_ldseg_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_ldseg_init_process(ngx_cycle_t *cycle);
static void ngx_http_ldseg_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_ldseg_formats[] = {
    { ngx_string("actions"), LDSEG_FORMAT_ACTIONS },
    { ngx_string("classic"), LDSEG_FORMAT_CLASSIC },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_ldseg_batch_bounds = {
    NULL, 1, 10000
};


static ngx_conf_num_bounds_t  ngx_http_ldseg_inflight_bounds = {
    NULL, 1, 1024
};


static ngx_conf_num_bounds_t  ngx_http_ldseg_destinations_bounds = {
    NULL, 1, 1000000
};


static ngx_conf_num_bounds_t  ngx_http_ldseg_dead_letter_bounds = {
    NULL, 1, 1000
};


static ngx_command_t  ngx_http_ldseg_commands[] = {

    { ngx_string("ldseg_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_ldseg_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ldseg"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_ldseg_enable,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, enable),
      NULL },

    { ngx_string("ldseg_client_side_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_client_side_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, client_side_id),
      NULL },

    { ngx_string("ldseg_events_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_events_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, events_url),
      NULL },

    { ngx_string("ldseg_export"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_ldseg_export_enable,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, export),
      NULL },

    { ngx_string("ldseg_export_write_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_complex,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, export_write_key),
      NULL },

    { ngx_string("ldseg_export_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_export_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, export_url),
      NULL },

    { ngx_string("ldseg_export_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_complex,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, export_environment),
      NULL },

    { ngx_string("ldseg_export_project"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, export_project),
      NULL },

    { ngx_string("ldseg_export_label"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_ldseg_export_label,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, export_labels),
      NULL },

    { ngx_string("ldseg_format"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_format,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, format),
      &ngx_http_ldseg_formats },

    { ngx_string("ldseg_mappings"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_mappings,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, mappings),
      NULL },

    { ngx_string("ldseg_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, pass),
      NULL },

    { ngx_string("ldseg_deliver"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_deliver_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, deliver),
      NULL },

    { ngx_string("ldseg_cors"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ldseg_cors,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, cors),
      NULL },

    { ngx_string("ldseg_retry_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, retry_after),
      NULL },

    { ngx_string("ldseg_clock_skew"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ldseg_loc_conf_t, clock_skew),
      NULL },

    { ngx_string("ldseg_dedupe"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_ldseg_dedupe,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ldseg_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ldseg_status,
      0,
      0,
      NULL },

    { ngx_string("ldseg_flush_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, flush_interval),
      NULL },

    { ngx_string("ldseg_batch_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_bounded,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, batch_size),
      &ngx_http_ldseg_batch_bounds },

    { ngx_string("ldseg_max_payload"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, max_payload),
      NULL },

    { ngx_string("ldseg_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, timeout),
      NULL },

    { ngx_string("ldseg_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, connect_timeout),
      NULL },

    { ngx_string("ldseg_max_inflight"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_bounded,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, max_inflight),
      &ngx_http_ldseg_inflight_bounds },

    { ngx_string("ldseg_retry_max_delay"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, max_backoff),
      NULL },

    { ngx_string("ldseg_shutdown_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, shutdown_timeout),
      NULL },

    { ngx_string("ldseg_queue_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, queue_limit),
      NULL },

    { ngx_string("ldseg_max_destinations"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_bounded,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, max_destinations),
      &ngx_http_ldseg_destinations_bounds },

    { ngx_string("ldseg_dead_letter"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_dead_letter,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, dead_letter),
      NULL },

    { ngx_string("ldseg_dead_letter_after"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_set_bounded,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, dead_letter_after),
      &ngx_http_ldseg_dead_letter_bounds },

    { ngx_string("ldseg_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ldseg_spool_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, spool),
      NULL },

    { ngx_string("ldseg_alert"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ldseg_alert,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, alert),
      NULL },

    { ngx_string("ldseg_recent"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ldseg_recent,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, recent),
      NULL },

    { ngx_string("ldseg_tap"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_ldseg_tap,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ldseg_gzip"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ldseg_main_conf_t, gzip),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ldseg_module_ctx = {
    ngx_http_ldseg_preconfiguration,       /* preconfiguration */
    ngx_http_ldseg_body_filter_init,       /* postconfiguration */

    ngx_http_ldseg_create_main_conf,       /* create main configuration */
    ngx_http_ldseg_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ldseg_create_loc_conf,        /* create location configuration */
    ngx_http_ldseg_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_ldseg_module = {
    NGX_MODULE_V1,
    &ngx_http_ldseg_module_ctx,            /* module context */
    ngx_http_ldseg_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_ldseg_init_module,            /* init module */
    ngx_http_ldseg_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ldseg_exit_process,           /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_ldseg_write_key_name =
    ngx_string("ldseg_write_key");


static ngx_str_t  ngx_http_ldseg_events_path_name =
    ngx_string("ldseg_events_path");


/* in the order of NGX_HTTP_LDSEG_VAR_* */
static ngx_str_t  ngx_http_ldseg_var_names[] = {
    ngx_string("ldseg_events"),
    ngx_string("ldseg_result"),
    ngx_string("ldseg_client_side_id")
};


static ngx_int_t
ngx_http_ldseg_preconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                   i;
    ngx_http_variable_t         *var;
    ngx_http_ldseg_main_conf_t  *lmcf;

    var = ngx_http_add_variable(cf, &ngx_http_ldseg_write_key_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_ldseg_write_key_variable;

    var = ngx_http_add_variable(cf, &ngx_http_ldseg_events_path_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_ldseg_events_path_variable;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ldseg_module);

    /* the http level's core configuration, which nginx does not merge */

    lmcf->http_clcf = ngx_http_conf_get_module_loc_conf(cf,
                                                        ngx_http_core_module);

    /* an index, so that a value can outlive ngx_http_named_location() */

    lmcf->write_key_index = ngx_http_get_variable_index(cf,
                                             &ngx_http_ldseg_write_key_name);
    if (lmcf->write_key_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * $ldseg_events, $ldseg_result and $ldseg_client_side_id are indexed
     * and set in r->variables as the request is answered
     * (ngx_http_ldseg_set_var())
     */

    for (i = 0; i < NGX_HTTP_LDSEG_NVARS; i++) {
        var = ngx_http_add_variable(cf, &ngx_http_ldseg_var_names[i], 0);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = ngx_http_ldseg_unset_variable;

        lmcf->var_index[i] = ngx_http_get_variable_index(cf,
                                               &ngx_http_ldseg_var_names[i]);
        if (lmcf->var_index[i] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void *
ngx_http_ldseg_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ldseg_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lmcf->shm_zone = NULL;
     *     lmcf->dedupe = NULL;
     *     lmcf->spool.path = { 0, NULL };
     *     lmcf->alert = { 0, 0, 0 };
     *     lmcf->tap = { 0, NULL };
     *     lmcf->tap_max_size = 0;
     *     lmcf->enabled = 0;
     *     lmcf->http_clcf = NULL;
     */

    lmcf->flush_interval = NGX_CONF_UNSET_MSEC;
    lmcf->batch_size = NGX_CONF_UNSET_UINT;
    lmcf->max_payload = NGX_CONF_UNSET_SIZE;
    lmcf->timeout = NGX_CONF_UNSET_MSEC;
    lmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->max_inflight = NGX_CONF_UNSET_UINT;
    lmcf->max_backoff = NGX_CONF_UNSET_MSEC;
    lmcf->shutdown_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->gzip = NGX_CONF_UNSET;
    lmcf->queue_limit = NGX_CONF_UNSET_SIZE;
    lmcf->max_destinations = NGX_CONF_UNSET_UINT;
    lmcf->dead_letter_after = NGX_CONF_UNSET_UINT;
    lmcf->recent = NGX_CONF_UNSET_UINT;
    lmcf->spool.max_size = NGX_CONF_UNSET;
    lmcf->spool.delay = NGX_CONF_UNSET_MSEC;
    lmcf->spool.fsync = NGX_CONF_UNSET;

    return lmcf;
}


static char *
ngx_http_ldseg_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ldseg_main_conf_t  *lmcf = conf;

    ngx_conf_init_msec_value(lmcf->flush_interval, 1000);
    ngx_conf_init_uint_value(lmcf->batch_size, 1000);
    ngx_conf_init_size_value(lmcf->max_payload, 512 * 1024);
    ngx_conf_init_msec_value(lmcf->timeout, 10000);
    ngx_conf_init_msec_value(lmcf->connect_timeout, 5000);
    ngx_conf_init_uint_value(lmcf->max_inflight, 8);
    ngx_conf_init_msec_value(lmcf->max_backoff, 60000);
    ngx_conf_init_msec_value(lmcf->shutdown_timeout, 5000);
    ngx_conf_init_value(lmcf->gzip, 1);
    ngx_conf_init_size_value(lmcf->queue_limit, 0);
    ngx_conf_init_uint_value(lmcf->max_destinations, 1000);
    ngx_conf_init_uint_value(lmcf->dead_letter_after, 5);
    ngx_conf_init_uint_value(lmcf->recent, 0);
    ngx_conf_init_value(lmcf->spool.max_size, 1024 * 1024 * 1024);
    ngx_conf_init_msec_value(lmcf->spool.delay, 1000);
    ngx_conf_init_value(lmcf->spool.fsync, 1);

    if (lmcf->flush_interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_flush_interval\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (lmcf->max_payload < LDSEG_MAX_MESSAGE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_max_payload\" must be at least %uz",
                           (size_t) LDSEG_MAX_MESSAGE);
        return NGX_CONF_ERROR;
    }

    if (lmcf->max_backoff < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_retry_max_delay\" must be at least 1s");
        return NGX_CONF_ERROR;
    }

    if (lmcf->enabled && lmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg\", \"ldseg_export\" and "
                           "\"ldseg_status\" require "
                           "\"ldseg_zone\" in the http block");
        return NGX_CONF_ERROR;
    }

    if (lmcf->alert.rate && lmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_alert\" requires \"ldseg_zone\"");
        return NGX_CONF_ERROR;
    }

    if (lmcf->recent && lmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_recent\" requires \"ldseg_zone\"");
        return NGX_CONF_ERROR;
    }

    if (lmcf->recent
        && ngx_http_ldseg_recent_size(lmcf->recent)
           > ((ngx_http_ldseg_zone_t *) lmcf->shm_zone->data)->size / 4)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_recent\" %ui needs %uz bytes, more than "
                           "a quarter of ldseg_zone \"%V\"", lmcf->recent,
                           ngx_http_ldseg_recent_size(lmcf->recent),
                           &lmcf->shm_zone->shm.name);
        return NGX_CONF_ERROR;
    }

    if (lmcf->spool.path.data && lmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_spool\" requires \"ldseg_zone\"");
        return NGX_CONF_ERROR;
    }

    if (lmcf->shm_zone) {
        ((ngx_http_ldseg_zone_t *) lmcf->shm_zone->data)->spool =
                                                               &lmcf->spool;
    }

#if (NGX_THREADS)

    /* spool appends, fdatasync() and dead letters run in a thread pool */

    if (lmcf->spool.path.data || lmcf->dead_letter.data || lmcf->tap.data) {
        lmcf->tp = ngx_thread_pool_add(cf, lmcf->spool.thread_pool.len
                                           ? &lmcf->spool.thread_pool
                                           : NULL);
        if (lmcf->tp == NULL) {
            return NGX_CONF_ERROR;
        }
    }

#else

    if (lmcf->spool.thread_pool.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_spool\" thread_pool= needs nginx built "
                           "with threads");
        return NGX_CONF_ERROR;
    }

#endif

    return NGX_CONF_OK;
}


static void *
ngx_http_ldseg_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ldseg_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ldseg_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->events_url = { 0, NULL };
     *     conf->pass = { 0, NULL };
     *     conf->deliver = { 0, NULL };
     *     conf->export_url = { 0, NULL };
     *     conf->export_project = { 0, NULL };
     *     conf->clcf = NULL;
     *     conf->max_body_size = 0;
     *     conf->body_buffer_set = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->format = NGX_CONF_UNSET_UINT;
    conf->mappings = NGX_CONF_UNSET_PTR;
    conf->client_side_id = NGX_CONF_UNSET_PTR;
    conf->retry_after = NGX_CONF_UNSET;
    conf->cors = NGX_CONF_UNSET_PTR;
    conf->clock_skew = NGX_CONF_UNSET;
    conf->export = NGX_CONF_UNSET;
    conf->export_write_key = NGX_CONF_UNSET_PTR;
    conf->export_environment = NGX_CONF_UNSET_PTR;
    conf->export_labels = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_ldseg_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ldseg_loc_conf_t *prev = parent;
    ngx_http_ldseg_loc_conf_t *conf = child;

    ngx_http_ldseg_main_conf_t  *lmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_uint_value(conf->format, prev->format,
                              LDSEG_FORMAT_ACTIONS);
    ngx_conf_merge_ptr_value(conf->mappings, prev->mappings, NULL);

    if (conf->mappings != NULL && conf->format != LDSEG_FORMAT_ACTIONS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_mappings\" needs \"ldseg_format "
                           "actions\"");
        return NGX_CONF_ERROR;
    }
    ngx_conf_merge_ptr_value(conf->client_side_id, prev->client_side_id,
                             NULL);
    ngx_conf_merge_str_value(conf->events_url, prev->events_url,
                             NGX_HTTP_LDSEG_DEFAULT_URL);
    ngx_conf_merge_str_value(conf->pass, prev->pass, "");
    ngx_conf_merge_str_value(conf->deliver, prev->deliver, "");
    ngx_conf_merge_sec_value(conf->retry_after, prev->retry_after, 5);
    ngx_conf_merge_ptr_value(conf->cors, prev->cors, NULL);
    ngx_conf_merge_value(conf->clock_skew, prev->clock_skew, 1);
    ngx_conf_merge_value(conf->export, prev->export, 0);
    ngx_conf_merge_ptr_value(conf->export_write_key, prev->export_write_key,
                             NULL);
    ngx_conf_merge_str_value(conf->export_url, prev->export_url,
                             NGX_HTTP_LDSEG_SEGMENT_URL "/v1/batch");
    ngx_conf_merge_ptr_value(conf->export_environment,
                             prev->export_environment, NULL);
    ngx_conf_merge_str_value(conf->export_project, prev->export_project, "");
    ngx_conf_merge_ptr_value(conf->export_labels, prev->export_labels, NULL);

    if (conf->enable && conf->client_side_id == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg\" requires \"ldseg_client_side_id\"");
        return NGX_CONF_ERROR;
    }

    if (conf->export && conf->enable) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_export\" and \"ldseg\" cannot be in "
                           "the same location");
        return NGX_CONF_ERROR;
    }

    if (conf->export && conf->export_write_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_export\" requires "
                           "\"ldseg_export_write_key\"");
        return NGX_CONF_ERROR;
    }

    /* the SDK's own request always goes on, to LaunchDarkly */

    if (conf->export && conf->pass.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_export\" requires \"ldseg_pass\"");
        return NGX_CONF_ERROR;
    }

    if (conf->clcf == NULL) {
        return NGX_CONF_OK;
    }

    /*
     * nginx refuses a body over client_max_body_size with its HTML page
     * before the content handler runs: in a location with "ldseg on"
     * ldseg applies the limit itself and answers with JSON.
     */

    conf->max_body_size = conf->clcf->client_max_body_size;
    conf->clcf->client_max_body_size = 0;

    /*
     * Unless client_body_buffer_size was set, a body of any size Segment
     * accepts is read into memory: nginx's default of two pages would
     * send most batches through a temporary file.  nginx allocates only
     * what a body needs, so the larger bound costs nothing for small ones.
     *
     * nginx has merged the server and location levels before this runs:
     * a value equal to nginx's default is told from none by the http
     * level, which nginx leaves unmerged, and by what the location and
     * its server held when "ldseg on" was read.
     */

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ldseg_module);

    if (!conf->body_buffer_set
        && lmcf->http_clcf->client_body_buffer_size == NGX_CONF_UNSET_SIZE
        && conf->clcf->client_body_buffer_size == (size_t) 2 * ngx_pagesize)
    {
        conf->clcf->client_body_buffer_size = LDSEG_MAX_BATCH_BYTES;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    char                        *rv;
    ngx_http_core_srv_conf_t    *cscf;
    ngx_http_core_loc_conf_t    *clcf, *sclcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (!lcf->enable) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ldseg_handler;
    lcf->clcf = clcf;

    /* set in this location or in its server, so far (merged values lose it) */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    sclcf = cscf->ctx->loc_conf[ngx_http_core_module.ctx_index];

    if (clcf->client_body_buffer_size != NGX_CONF_UNSET_SIZE
        || sclcf->client_body_buffer_size != NGX_CONF_UNSET_SIZE)
    {
        lcf->body_buffer_set = 1;
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ldseg_module);
    lmcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ldseg_status_handler;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ldseg_module);
    lmcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_client_side_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    ldseg_rc_t                         rc;
    ngx_str_t                         *value;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->client_side_id != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_client_side_id\" must not be empty");
        return NGX_CONF_ERROR;
    }

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cv->lengths == NULL) {

        /* a literal ID goes into a URL: the check requests make, now */

        rc = ldseg_client_side_id_check((const char *) value[1].data,
                                        value[1].len);

        if (rc == LDSEG_ETOOBIG) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"ldseg_client_side_id\" is longer than %d "
                               "characters", LDSEG_CLIENT_SIDE_ID_MAX);
            return NGX_CONF_ERROR;
        }

        if (rc != LDSEG_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"ldseg_client_side_id\" \"%V\": "
                               "only letters, digits, \"-\" and \"_\" "
                               "are allowed", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    lcf->client_side_id = cv;

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_events_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    if (lcf->events_url.data) {
        return "is duplicate";
    }

    return ngx_http_ldseg_parse_url(cf, cmd, &lcf->events_url);
}


static char *
ngx_http_ldseg_export_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    u_char     *p;
    char       *rv;
    ngx_str_t   url;

    if (lcf->export_url.data) {
        return "is duplicate";
    }

    rv = ngx_http_ldseg_parse_url(cf, cmd, &url);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* stored in its final form: Segment's batch endpoint */

    lcf->export_url.len = url.len + sizeof("/v1/batch") - 1;
    lcf->export_url.data = ngx_pnalloc(cf->pool, lcf->export_url.len);
    if (lcf->export_url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(lcf->export_url.data, url.data, url.len);
    ngx_memcpy(p, "/v1/batch", sizeof("/v1/batch") - 1);

    return NGX_CONF_OK;
}


/* "http(s)://host[:port]" with one optional "/", into url without it */

static char *
ngx_http_ldseg_parse_url(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *url)
{
    u_char      *p, *last;
    size_t       add;
    ngx_url_t    u;
    ngx_str_t   *value;
    const char  *err;

    value = cf->args->elts;
    err = "expected http(s)://host[:port]";

    if (value[1].len > NGX_HTTP_LDSEG_EVENTS_URL_MAX) {
        err = "the URL is too long";
        goto invalid;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    if (value[1].len > 7
        && ngx_strncasecmp(value[1].data, (u_char *) "http://", 7) == 0)
    {
        add = 7;
        u.default_port = 80;

    } else if (value[1].len > 8
               && ngx_strncasecmp(value[1].data, (u_char *) "https://", 8)
                  == 0)
    {
        add = 8;
        u.default_port = 443;

    } else {
        goto invalid;
    }

    /* as proxy_pass does: the address is checked, not resolved */

    u.url.data = value[1].data + add;
    u.url.len = value[1].len - add;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            err = u.err;
        }

        goto invalid;
    }

    /* nothing after host[:port] but one slash, which is dropped */

    if (u.uri.len > 1 || (u.uri.len == 1 && u.uri.data[0] != '/')) {
        err = "a path, query or fragment is not allowed";
        goto invalid;
    }

    /* a host name or an address: no user info, no spaces, ... */

    last = u.host.data + u.host.len;

    for (p = u.host.data; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
              || *p == ':' || *p == '[' || *p == ']'))
        {
            err = "invalid host";
            goto invalid;
        }
    }

    url->data = value[1].data;
    url->len = value[1].len - u.uri.len;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"%V\" \"%V\": %s", &cmd->name,
                       &value[1], err);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_ldseg_export_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    char                        *rv;
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_ldseg_main_conf_t  *lmcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (!lcf->export) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ldseg_export_handler;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ldseg_module);
    lmcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_set_complex(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                         *value;
    ngx_http_complex_value_t          *cv, **cvp;
    ngx_http_compile_complex_value_t   ccv;

    /* ngx_http_set_complex_value_slot() with an "unset" of its own */

    cvp = (ngx_http_complex_value_t **) ((u_char *) conf + cmd->offset);

    if (*cvp != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* a literal write key is checked as a request would check it */

    if (cv->lengths == NULL && cmd->offset
        == offsetof(ngx_http_ldseg_loc_conf_t, export_write_key)
        && ngx_http_ldseg_export_key_check(&value[1]) != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V\": 1 to %d printable "
                           "characters without quotes, \"\\\" and \":\" "
                           "are expected", &cmd->name, &value[1],
                           NGX_HTTP_LDSEG_CRED_MAX);
        return NGX_CONF_ERROR;
    }

    *cvp = cv;

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_export_label(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    ngx_str_t     *value;
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    static const char  *kinds[] = { "feature", "click", "pageview", "custom" };

    value = cf->args->elts;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (ngx_strcmp(value[1].data, kinds[i]) == 0) {
            break;
        }
    }

    if (i == sizeof(kinds) / sizeof(kinds[0])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_export_label\" kind \"%V\", it "
                           "must be \"feature\", \"click\", \"pageview\" "
                           "or \"custom\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[2].len == 0 || value[2].len > 200) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_export_label\" name \"%V\": "
                           "1 to 200 characters", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (lcf->export_labels == NGX_CONF_UNSET_PTR) {
        lcf->export_labels = ngx_array_create(cf->pool, 4,
                                              sizeof(ngx_keyval_t));
        if (lcf->export_labels == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    kv = lcf->export_labels->elts;

    for (i = 0; i < lcf->export_labels->nelts; i++) {
        if (ngx_strcmp(kv[i].key.data, value[1].data) == 0) {
            return "is duplicate";
        }
    }

    kv = ngx_array_push(lcf->export_labels);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    kv->key = value[1];
    kv->value = value[2];

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->pass.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len < 2 || value[1].data[0] != '@') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_pass\" \"%V\": a named location "
                           "such as \"@upstream\" is expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->pass = value[1];

    return NGX_CONF_OK;
}


/*
 * "ldseg_deliver queue | uri": the URI of the location the subrequests
 * go to; "queue" is kept as an empty string that is set
 */

static char *
ngx_http_ldseg_deliver_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    u_char     *p;
    ngx_str_t  *value;

    if (lcf->deliver.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 5 && ngx_strncmp(value[1].data, "queue", 5) == 0) {
        ngx_str_set(&lcf->deliver, "");
        return NGX_CONF_OK;
    }

    if (value[1].len > 0 && value[1].data[0] == '@') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_deliver\" \"%V\": a subrequest "
                           "cannot reach a named location, use the URI of "
                           "an internal location such as \"/ld\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[1].len < 2 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_deliver\" \"%V\": \"queue\" "
                           "or a URI starting with \"/\" is expected",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (*p <= ' ' || *p == '?' || *p == '#' || *p == '$' || *p >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"ldseg_deliver\" \"%V\": the URI "
                               "may not have arguments, variables, spaces "
                               "or control characters", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    lcf->deliver = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_set_format(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    ngx_str_t        *value;
    ngx_conf_enum_t  *e;

    if (lcf->format != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            lcf->format = e->value;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"ldseg_format\" \"%V\", it must be "
                       "\"actions\" or \"classic\"", &value[1]);

    return NGX_CONF_ERROR;
}


/*
 * ldseg_mappings FILE | off: a file of Segment subscriptions, compiled
 * now (src/ldseg_mapping.c); whatever in it Segment would refuse, or ldseg
 * does not implement, fails "nginx -t" naming the subscription and field.
 */

static char *
ngx_http_ldseg_mappings(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_loc_conf_t *lcf = conf;

    char                err[512];
    u_char             *buf;
    size_t              size;
    ssize_t             n;
    ngx_str_t          *value, name;
    ngx_file_t          file;
    ldseg_rc_t          rc;
    ngx_file_info_t     fi;
    ldseg_mappings_t   *maps;
    ldseg_allocator_t   a;

    if (lcf->mappings != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->mappings = NULL;
        return NGX_CONF_OK;
    }

    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = name;
    file.log = cf->log;

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    buf = NULL;
    size = 0;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", name.data);
        goto failed;
    }

    if (ngx_file_size(&fi) > LDSEG_MAPPING_MAX_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ldseg_mappings \"%V\" is larger than %d bytes",
                           &name, LDSEG_MAPPING_MAX_FILE);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_pnalloc(cf->temp_pool, size + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, size, 0);

    if (n == NGX_ERROR || (size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ldseg_mappings \"%V\": cannot read it", &name);
        goto failed;
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    /* the compiled mappings live as long as the configuration */

    a.alloc = ngx_http_ldseg_conf_alloc;
    a.free = ngx_http_ldseg_conf_free;
    a.ctx = cf->pool;

    rc = ldseg_mappings_compile((const char *) buf, size, &a, &maps, err,
                                sizeof(err));

    if (rc == LDSEG_ENOMEM) {
        return NGX_CONF_ERROR;
    }

    if (rc != LDSEG_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ldseg_mappings \"%V\": %s", &name, err);
        return NGX_CONF_ERROR;
    }

    lcf->mappings = maps;

    return NGX_CONF_OK;

failed:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    return NGX_CONF_ERROR;
}


static void *
ngx_http_ldseg_conf_alloc(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}


static void
ngx_http_ldseg_conf_free(void *ctx, void *p)
{
    /* the configuration's pool frees it all */
}


static char *
ngx_http_ldseg_set_bounded(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_int_t               n;
    ngx_str_t              *value;
    ngx_uint_t             *np;
    ngx_conf_num_bounds_t  *bounds;

    /* ngx_conf_set_num_slot() with bounds, naming the directive on error */

    np = (ngx_uint_t *) ((u_char *) conf + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    bounds = cmd->post;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < bounds->low || n > bounds->high) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V\", it must be a number "
                           "from %i to %i", &cmd->name, &value[1],
                           bounds->low, bounds->high);
        return NGX_CONF_ERROR;
    }

    *np = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_dead_letter(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_main_conf_t *lmcf = conf;

    ngx_str_t  *value;

    if (lmcf->dead_letter.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    lmcf->dead_letter = value[1];

    if (lmcf->dead_letter.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_dead_letter\" must not be empty");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &lmcf->dead_letter, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_ldseg_check_dir(cf, &lmcf->dead_letter,
                                    "ldseg_dead_letter");
}


static char *
ngx_http_ldseg_check_dir(ngx_conf_t *cf, ngx_str_t *name,
    const char *directive)
{
    ngx_str_t        dir;
    ngx_file_info_t  fi;

    /* a file in a directory that exists; created 0600 when first needed */

    dir = *name;

    while (dir.len > 1 && dir.data[dir.len - 1] != '/') {
        dir.len--;
    }

    dir.data = ngx_pstrdup(cf->pool, &dir);
    if (dir.data == NULL) {
        return NGX_CONF_ERROR;
    }

    dir.data[dir.len] = '\0';

    if (ngx_file_info(dir.data, &fi) == NGX_FILE_ERROR || !ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" directory \"%s\" does not exist",
                           directive, dir.data);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ldseg_tap(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_main_conf_t *lmcf = conf;

    off_t       size;
    ngx_str_t  *value, v;

    if (lmcf->tap.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    lmcf->tap = value[1];
    lmcf->tap_max_size = 64 * 1024 * 1024;

    if (lmcf->tap.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_tap\" must not be empty");
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "max_size=", 9) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"ldseg_tap\" parameter \"%V\"",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        v.data = value[2].data + 9;
        v.len = value[2].len - 9;

        size = ngx_parse_offset(&v);

        if (size == NGX_ERROR || size < 4096) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"ldseg_tap\" max_size \"%V\", it "
                               "must be a size of 4k or more", &v);
            return NGX_CONF_ERROR;
        }

        lmcf->tap_max_size = size;
    }

    if (ngx_conf_full_name(cf->cycle, &lmcf->tap, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_ldseg_check_dir(cf, &lmcf->tap, "ldseg_tap");
}


static char *
ngx_http_ldseg_alert(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_alert_conf_t *ac = (ngx_http_ldseg_alert_conf_t *)
                                      ((u_char *) conf + cmd->offset);

    u_char      *p, *last;
    ngx_str_t   *value, v;
    ngx_int_t    n;
    ngx_uint_t   i, rate, digits;
    ngx_msec_t   ms;

    if (ac->rate) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ac->window = 5 * 60 * 1000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "delivery_rate=", 14) == 0) {

            /* 0.95, 1, .9: a share with at most four decimals */

            p = value[i].data + 14;
            last = value[i].data + value[i].len;
            rate = 0;
            digits = 0;

            while (p < last && *p >= '0' && *p <= '9') {
                rate = rate * 10 + (*p++ - '0') * 10000;

                if (rate > 10000) {
                    goto invalid_rate;
                }

                digits++;
            }

            if (p < last && *p == '.') {
                p++;

                for (n = 1000; p < last && *p >= '0' && *p <= '9'; n /= 10) {
                    if (n == 0) {
                        goto invalid_rate;
                    }

                    rate += (*p++ - '0') * n;
                    digits++;
                }
            }

            if (p != last || digits == 0 || rate == 0 || rate > 10000) {
                goto invalid_rate;
            }

            ac->rate = rate;
            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0
            || ngx_strncmp(value[i].data, "max_age=", 8) == 0)
        {
            v.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            v.len = value[i].data + value[i].len - v.data;

            ms = ngx_parse_time(&v, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms < 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ldseg_alert\" time \"%V\", "
                                   "it must be 1s or more", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[0] == 'w') {
                ac->window = ms;

            } else {
                ac->max_age = ms;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_alert\" parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (ac->rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ldseg_alert\" requires delivery_rate=");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid_rate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"ldseg_alert\" \"%V\", the delivery rate "
                       "must be a share from 0.0001 to 1", &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_ldseg_recent(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ldseg_main_conf_t *lmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (lmcf->recent != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        lmcf->recent = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < 1 || n > NGX_HTTP_LDSEG_RECENT_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_recent\" \"%V\", it must be "
                           "\"off\" or a number from 1 to %d", &value[1],
                           NGX_HTTP_LDSEG_RECENT_MAX);
        return NGX_CONF_ERROR;
    }

    lmcf->recent = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ldseg_init_module(ngx_cycle_t *cycle)
{
    ngx_http_ldseg_main_conf_t  *lmcf;

    /* the configuration is committed: a resize's old zone lets go */

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_ldseg_module);

    if (lmcf == NULL || lmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    if (ngx_http_ldseg_zone_commit(lmcf->shm_zone) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the ring of ldseg_recent, as this configuration sizes it */

    (void) ngx_http_ldseg_queue_recent(lmcf->shm_zone, lmcf->recent,
                                       cycle->log);

    return NGX_OK;
}


static ngx_int_t
ngx_http_ldseg_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ldseg_main_conf_t  *lmcf;

    /* cache manager and loader processes have no use for the sender */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_ldseg_module);

    if (lmcf == NULL || lmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    return ngx_http_ldseg_sender_init(cycle, lmcf);
}


static void
ngx_http_ldseg_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_ldseg_module);

    if (lmcf != NULL) {
        ngx_http_ldseg_sender_exit(lmcf);
    }
}

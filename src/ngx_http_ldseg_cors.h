
/*
 * Copyright (C) ldseg authors
 */


#ifndef _NGX_HTTP_LDSEG_CORS_H_INCLUDED_
#define _NGX_HTTP_LDSEG_CORS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* how long a browser may cache a preflight: Chromium's cap */
#define NGX_HTTP_LDSEG_CORS_MAX_AGE  "7200"


typedef struct {
    /* "ldseg_cors *": every origin */
    ngx_uint_t                    any;

    /* of ngx_str_t: "scheme://host[:port]", lower case, no default port */
    ngx_array_t                   origins;
} ngx_http_ldseg_cors_t;


/*
 * The "ldseg_cors" directive: "off", "*" or a list of origins, checked
 * here; the result (NULL for "off") goes to the ngx_http_ldseg_cors_t *
 * at cmd->offset, allocated from cf->pool.
 */
char *ngx_http_ldseg_cors(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * Adds the CORS headers every answer of a location with "ldseg_cors"
 * carries: "Vary: Origin" (unless "*"), and for an allowed Origin,
 * Access-Control-Allow-Origin and -Expose-Headers.  Returns NGX_OK, or
 * NGX_ERROR when the headers cannot be allocated.
 */
ngx_int_t ngx_http_ldseg_cors_headers(ngx_http_request_t *r,
    ngx_http_ldseg_cors_t *cors);

/*
 * For an OPTIONS request (a preflight): adds what a preflight answer
 * carries besides the headers above (-Allow-Methods, -Allow-Headers,
 * -Max-Age) and returns NGX_OK when the Origin is allowed or absent;
 * returns NGX_DECLINED, adding nothing, when it is not allowed.  NGX_ERROR
 * when the headers cannot be allocated.
 */
ngx_int_t ngx_http_ldseg_cors_preflight(ngx_http_request_t *r,
    ngx_http_ldseg_cors_t *cors);


#endif /* _NGX_HTTP_LDSEG_CORS_H_INCLUDED_ */

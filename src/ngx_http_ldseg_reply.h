
/*
 * Copyright (C) ldseg authors
 *
 * The answers of ldseg's locations: JSON errors, the accepted answer with
 * its list of rejected batch messages, 503 with Retry-After, 405 with
 * Allow, and the one sender every answer goes through.
 */


#ifndef _NGX_HTTP_LDSEG_REPLY_H_INCLUDED_
#define _NGX_HTTP_LDSEG_REPLY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ldseg.h"
#include "ngx_http_ldseg_cors.h"


/*
 * Every function below sends the whole answer (headers and body from the
 * request pool) and returns what a content handler returns: the result of
 * ngx_http_output_filter(), or NGX_HTTP_INTERNAL_SERVER_ERROR when nothing
 * could be sent.
 */

/* body (len bytes, not copied) with content type "type" */
ngx_int_t ngx_http_ldseg_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);

/* the same as application/json */
ngx_int_t ngx_http_ldseg_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);

/* {"success":false,"code":"<reason>","message":"..."} */
ngx_int_t ngx_http_ldseg_error(ngx_http_request_t *r, ngx_uint_t status,
    ldseg_reason_e reason, const char *message);

/* 200 {"success":true}, with "rejected":[{index, code, message}...] */
ngx_int_t ngx_http_ldseg_accepted(ngx_http_request_t *r,
    ldseg_result_t *res);

/* 503 with "Retry-After: retry_after" and a JSON error */
ngx_int_t ngx_http_ldseg_unavailable(ngx_http_request_t *r,
    time_t retry_after, ldseg_reason_e reason, const char *message);

/* 405 with "Allow: <allow>" and a JSON error */
ngx_int_t ngx_http_ldseg_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message);

/*
 * The answer to OPTIONS with "ldseg_cors": 204 with the preflight's CORS
 * headers, or 403 origin_not_allowed for an origin it does not list.
 */
ngx_int_t ngx_http_ldseg_preflight(ngx_http_request_t *r,
    ngx_http_ldseg_cors_t *cors);

/* the variables for access logs, set as the request is answered */
#define NGX_HTTP_LDSEG_VAR_EVENTS     0
#define NGX_HTTP_LDSEG_VAR_RESULT     1
#define NGX_HTTP_LDSEG_VAR_ID         2
#define NGX_HTTP_LDSEG_NVARS          3

/*
 * Sets a variable's value for the rest of the request (data is not
 * copied: the request pool or static); the value lives in r->variables,
 * which "ldseg_pass" leaves alone, so the access log of the named
 * location sees it.
 */
void ngx_http_ldseg_set_var(ngx_http_request_t *r, ngx_uint_t var,
    u_char *data, size_t len);

/* $ldseg_events and $ldseg_result: the number; "rejected:<code>" */
void ngx_http_ldseg_set_events(ngx_http_request_t *r, ngx_uint_t n);
void ngx_http_ldseg_set_rejected(ngx_http_request_t *r,
    ldseg_reason_e reason);

/* the get handler of the three: not found until set */
ngx_int_t ngx_http_ldseg_unset_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_LDSEG_REPLY_H_INCLUDED_ */

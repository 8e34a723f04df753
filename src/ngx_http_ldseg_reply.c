
/*
 * Copyright (C) ldseg authors
 *
 * The answers of ldseg's locations.  Each is sized first and written into
 * one buffer from the request pool; all go out through
 * ngx_http_ldseg_send(), so a HEAD gets the same headers without a body.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_module.h"
#include "ngx_http_ldseg_reply.h"


static ngx_int_t ngx_http_ldseg_error_body(ngx_http_request_t *r,
    ngx_uint_t status, ldseg_reason_e reason, const char *message);
static ngx_int_t ngx_http_ldseg_header(ngx_http_request_t *r,
    const char *name, u_char *value, size_t len);


ngx_int_t
ngx_http_ldseg_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len)
{
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_chain_t                 out;
    ngx_http_ldseg_loc_conf_t  *lcf;

    /* every answer, errors included: a page never sees an opaque failure */

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ldseg_module);

    if (ngx_http_ldseg_cors_headers(r, lcf->cors) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (r->method == NGX_HTTP_HEAD) {
        return ngx_http_send_header(r);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_ldseg_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    static ngx_str_t  type = ngx_string("application/json");

    return ngx_http_ldseg_send(r, status, &type, body, len);
}


ngx_int_t
ngx_http_ldseg_error(ngx_http_request_t *r, ngx_uint_t status,
    ldseg_reason_e reason, const char *message)
{
    ngx_http_ldseg_set_rejected(r, reason);

    return ngx_http_ldseg_error_body(r, status, reason, message);
}


static ngx_int_t
ngx_http_ldseg_error_body(ngx_http_request_t *r, ngx_uint_t status,
    ldseg_reason_e reason, const char *message)
{
    u_char      *body, *p;
    size_t       len, clen, mlen;
    const char  *code;

    code = ldseg_reason_name(reason);

    clen = ngx_strlen(code);
    mlen = ngx_strlen(message);

    len = sizeof("{\"success\":false,\"code\":\"\",\"message\":\"\"}") - 1
          + clen + ngx_escape_json(NULL, (u_char *) code, clen)
          + mlen + ngx_escape_json(NULL, (u_char *) message, mlen);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"success\":false,\"code\":\"",
                   sizeof("{\"success\":false,\"code\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, (u_char *) code, clen);
    p = ngx_cpymem(p, "\",\"message\":\"", sizeof("\",\"message\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, (u_char *) message, mlen);
    p = ngx_cpymem(p, "\"}", 2);

    return ngx_http_ldseg_send_json(r, status, body, p - body);
}


ngx_int_t
ngx_http_ldseg_accepted(ngx_http_request_t *r, ldseg_result_t *res)
{
    u_char         *body, *p;
    size_t          len, clen, mlen;
    ngx_uint_t      i, first;
    const char     *code;
    ldseg_error_t  *err;

    if (res->nrejected == 0) {
        ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_RESULT,
                               (u_char *) "accepted", 8);

        return ngx_http_ldseg_send_json(r, NGX_HTTP_OK,
                                        (u_char *) "{\"success\":true}",
                                        sizeof("{\"success\":true}") - 1);
    }

    /* a batch: valid messages were accepted, the others are listed */

    if (res->nrejected < res->n) {
        ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_RESULT,
                               (u_char *) "partial", 7);

    } else {
        for (i = 0; res->msgs[i].status != LDSEG_MSG_REJECTED; i++) {
            /* void */
        }

        ngx_http_ldseg_set_rejected(r, res->msgs[i].err.reason);
    }

    len = sizeof("{\"success\":true,\"rejected\":[]}") - 1;

    for (i = 0; i < res->n; i++) {
        if (res->msgs[i].status != LDSEG_MSG_REJECTED) {
            continue;
        }

        err = &res->msgs[i].err;
        code = ldseg_reason_name(err->reason);
        clen = ngx_strlen(code);
        mlen = ngx_strlen(err->message);

        len += sizeof(",{\"index\":,\"code\":\"\",\"message\":\"\"}") - 1
               + NGX_INT_T_LEN
               + clen + ngx_escape_json(NULL, (u_char *) code, clen)
               + mlen + ngx_escape_json(NULL, (u_char *) err->message, mlen);
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"success\":true,\"rejected\":[",
                   sizeof("{\"success\":true,\"rejected\":[") - 1);

    first = 1;

    for (i = 0; i < res->n; i++) {
        if (res->msgs[i].status != LDSEG_MSG_REJECTED) {
            continue;
        }

        err = &res->msgs[i].err;
        code = ldseg_reason_name(err->reason);

        if (!first) {
            *p++ = ',';
        }

        first = 0;

        p = ngx_sprintf(p, "{\"index\":%ui,\"code\":\"", i);
        p = (u_char *) ngx_escape_json(p, (u_char *) code, ngx_strlen(code));
        p = ngx_cpymem(p, "\",\"message\":\"",
                       sizeof("\",\"message\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, (u_char *) err->message,
                                       ngx_strlen(err->message));
        p = ngx_cpymem(p, "\"}", 2);
    }

    p = ngx_cpymem(p, "]}", 2);

    return ngx_http_ldseg_send_json(r, NGX_HTTP_OK, body, p - body);
}


ngx_int_t
ngx_http_ldseg_unavailable(ngx_http_request_t *r, time_t retry_after,
    ldseg_reason_e reason, const char *message)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_ldseg_header(r, "Retry-After", p,
                              ngx_sprintf(p, "%T", retry_after) - p)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_RESULT,
                           (u_char *) "backpressure", 12);
    ngx_http_ldseg_set_events(r, 0);

    return ngx_http_ldseg_error_body(r, NGX_HTTP_SERVICE_UNAVAILABLE, reason,
                                     message);
}


ngx_int_t
ngx_http_ldseg_not_allowed(ngx_http_request_t *r, const char *allow,
    const char *message)
{
    if (ngx_http_ldseg_header(r, "Allow", (u_char *) allow,
                              ngx_strlen(allow))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ldseg_error(r, NGX_HTTP_NOT_ALLOWED,
                                LDSEG_REASON_METHOD_NOT_ALLOWED, message);
}


ngx_int_t
ngx_http_ldseg_preflight(ngx_http_request_t *r, ngx_http_ldseg_cors_t *cors)
{
    static ngx_str_t  type = ngx_null_string;

    switch (ngx_http_ldseg_cors_preflight(r, cors)) {

    case NGX_OK:
        return ngx_http_ldseg_send(r, NGX_HTTP_NO_CONTENT, &type, NULL, 0);

    case NGX_DECLINED:
        return ngx_http_ldseg_error(r, NGX_HTTP_FORBIDDEN,
                                    LDSEG_REASON_ORIGIN_NOT_ALLOWED,
                                    "this origin may not call the Tracking "
                                    "API (see \"ldseg_cors\")");

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


void
ngx_http_ldseg_set_var(ngx_http_request_t *r, ngx_uint_t var, u_char *data,
    size_t len)
{
    ngx_http_variable_value_t   *v;
    ngx_http_ldseg_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_ldseg_module);

    v = &r->variables[lmcf->var_index[var]];

    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->escape = 0;
}


/*
 * $ldseg_events is set on every request, whether a log reads it or not:
 * one digit points into a constant, more are written backwards by hand
 * (ngx_sprintf() costs a hundred instructions a request here)
 */

void
ngx_http_ldseg_set_events(ngx_http_request_t *r, ngx_uint_t n)
{
    u_char         *p, *last;
    static u_char   digits[] = "0123456789";

    if (n < 10) {
        ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_EVENTS, &digits[n], 1);
        return;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return;
    }

    last = p + NGX_INT_T_LEN;
    p = last;

    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_EVENTS, p, last - p);
}


void
ngx_http_ldseg_set_rejected(ngx_http_request_t *r, ldseg_reason_e reason)
{
    u_char      *p;
    size_t       len;
    const char  *code;

    code = ldseg_reason_name(reason);
    len = sizeof("rejected:") - 1 + ngx_strlen(code);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return;
    }

    ngx_sprintf(p, "rejected:%s", code);

    ngx_http_ldseg_set_var(r, NGX_HTTP_LDSEG_VAR_RESULT, p, len);
    ngx_http_ldseg_set_events(r, 0);
}


ngx_int_t
ngx_http_ldseg_unset_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    /* asked before the request was answered, or of another location */

    v->not_found = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ldseg_header(ngx_http_request_t *r, const char *name,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(name);
    h->key.data = (u_char *) name;
    h->value.len = len;
    h->value.data = value;

    return NGX_OK;
}

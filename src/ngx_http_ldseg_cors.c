
/*
 * Copyright (C) ldseg authors
 *
 * "ldseg_cors": lets pages on other origins call the Tracking API, as
 * analytics.js does from every site it runs on.  The directive's origins
 * are checked and normalized at load time; at run time the request's
 * Origin is matched against them, for the headers every answer carries
 * (the error answers included, so that a page never sees an opaque
 * failure) and for the answer to a preflight.
 *
 * analytics.js posts "text/plain" bodies, which alone would need no
 * preflight, but it adds "Authorization: Basic <write key>" to every
 * request and "X-Retry-Count" to retries: both must be allowed, or the
 * browser never sends the request.  It reads "Retry-After" of a 429 or
 * 5xx, which a page sees only when it is exposed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ldseg_cors.h"


static char *ngx_http_ldseg_cors_origin(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *origin);
static ngx_str_t *ngx_http_ldseg_cors_request_origin(ngx_http_request_t *r);
static ngx_int_t ngx_http_ldseg_cors_allowed(ngx_http_ldseg_cors_t *cors,
    ngx_str_t *origin);
static ngx_int_t ngx_http_ldseg_cors_header(ngx_http_request_t *r,
    char *key, ngx_str_t *value);


static ngx_str_t  ngx_http_ldseg_cors_any = ngx_string("*");
static ngx_str_t  ngx_http_ldseg_cors_vary = ngx_string("Origin");
static ngx_str_t  ngx_http_ldseg_cors_expose = ngx_string("Retry-After");
static ngx_str_t  ngx_http_ldseg_cors_methods = ngx_string("POST");
static ngx_str_t  ngx_http_ldseg_cors_allow_headers =
    ngx_string("Content-Type, Authorization, X-Retry-Count");
static ngx_str_t  ngx_http_ldseg_cors_max_age =
    ngx_string(NGX_HTTP_LDSEG_CORS_MAX_AGE);


char *
ngx_http_ldseg_cors(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char                    *rv;
    ngx_str_t               *value, *origin;
    ngx_uint_t               i;
    ngx_http_ldseg_cors_t  **field, *cors;

    field = (ngx_http_ldseg_cors_t **) (p + cmd->offset);

    if (*field != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (cf->args->nelts > 2
            && ((value[i].len == 1 && value[i].data[0] == '*')
                || (value[i].len == 3
                    && ngx_strncmp(value[i].data, "off", 3) == 0)))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"ldseg_cors\" \"%V\" must be its only "
                               "value", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        *field = NULL;
        return NGX_CONF_OK;
    }

    cors = ngx_pcalloc(cf->pool, sizeof(ngx_http_ldseg_cors_t));
    if (cors == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&cors->origins, cf->pool, cf->args->nelts - 1,
                       sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (value[1].len == 1 && value[1].data[0] == '*') {
        cors->any = 1;
        *field = cors;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        origin = ngx_array_push(&cors->origins);
        if (origin == NULL) {
            return NGX_CONF_ERROR;
        }

        rv = ngx_http_ldseg_cors_origin(cf, &value[i], origin);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    *field = cors;

    return NGX_CONF_OK;
}


/*
 * An origin as browsers send it: "http" or "https", "://", a host name,
 * an IPv4 address or a bracketed IPv6 address, and a port unless it is the
 * scheme's default; nothing else (no path, not even "/").  The stored copy
 * is in lower case, without a default port, so that it compares with what
 * a browser sends.
 */

static char *
ngx_http_ldseg_cors_origin(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *origin)
{
    u_char      *p, *last, *host, *end, *port;
    size_t       skip;
    ngx_int_t    n;
    ngx_uint_t   https;

    p = value->data;
    last = p + value->len;

    if (value->len > 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0) {
        https = 0;
        skip = 7;

    } else if (value->len > 8
               && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        https = 1;
        skip = 8;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_cors\" origin \"%V\": an origin "
                           "is \"http://host[:port]\" or "
                           "\"https://host[:port]\", or \"*\"", value);
        return NGX_CONF_ERROR;
    }

    host = p + skip;
    p = host;

    if (*p == '[') {
        for (p++; p < last && *p != ']'; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')
                  || (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
            {
                break;
            }
        }

        if (p == last || *p != ']' || p == host + 1) {
            goto invalid_host;
        }

        p++;

    } else {
        for ( /* void */ ; p < last; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                  || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            {
                break;
            }
        }

        if (p == host || *host == '.' || *host == '-' || p[-1] == '.') {
            goto invalid_host;
        }
    }

    end = p;
    port = NULL;
    n = 0;

    if (p < last && *p == ':') {
        port = ++p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        n = ngx_atoi(port, p - port);

        if (p == port || p - port > 5 || n < 1 || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"ldseg_cors\" origin \"%V\": "
                               "invalid port", value);
            return NGX_CONF_ERROR;
        }

        if (n == (https ? 443 : 80)) {
            /* browsers leave the default port out */
            port = NULL;
        }
    }

    if (p != last) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"ldseg_cors\" origin \"%V\": an origin "
                           "has no path, query or wildcard, only "
                           "\"scheme://host[:port]\"", value);
        return NGX_CONF_ERROR;
    }

    origin->data = ngx_pnalloc(cf->pool, value->len);
    if (origin->data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(origin->data, https ? "https://" : "http://", skip);

    while (host < end) {
        *p++ = ngx_tolower(*host);
        host++;
    }

    if (port) {
        /* the port without leading zeros */
        p = ngx_sprintf(p, ":%i", n);
    }

    origin->len = p - origin->data;

    return NGX_CONF_OK;

invalid_host:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"ldseg_cors\" origin \"%V\": invalid host",
                       value);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_ldseg_cors_headers(ngx_http_request_t *r,
    ngx_http_ldseg_cors_t *cors)
{
    ngx_str_t  *origin;

    if (cors == NULL) {
        return NGX_OK;
    }

    origin = ngx_http_ldseg_cors_request_origin(r);

    if (cors->any) {
        origin = &ngx_http_ldseg_cors_any;

    } else {
        /* the answer depends on the Origin: caches must know */

        if (ngx_http_ldseg_cors_header(r, "Vary", &ngx_http_ldseg_cors_vary)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (origin == NULL
            || ngx_http_ldseg_cors_allowed(cors, origin) != NGX_OK)
        {
            return NGX_OK;
        }
    }

    if (ngx_http_ldseg_cors_header(r, "Access-Control-Allow-Origin", origin)
        != NGX_OK
        || ngx_http_ldseg_cors_header(r, "Access-Control-Expose-Headers",
                                      &ngx_http_ldseg_cors_expose)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_cors_preflight(ngx_http_request_t *r,
    ngx_http_ldseg_cors_t *cors)
{
    ngx_str_t  *origin;

    origin = ngx_http_ldseg_cors_request_origin(r);

    if (origin && !cors->any
        && ngx_http_ldseg_cors_allowed(cors, origin) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ldseg: origin \"%V\" is not allowed by "
                      "\"ldseg_cors\"", origin);
        return NGX_DECLINED;
    }

    if (ngx_http_ldseg_cors_header(r, "Access-Control-Allow-Methods",
                                   &ngx_http_ldseg_cors_methods)
        != NGX_OK
        || ngx_http_ldseg_cors_header(r, "Access-Control-Allow-Headers",
                                      &ngx_http_ldseg_cors_allow_headers)
           != NGX_OK
        || ngx_http_ldseg_cors_header(r, "Access-Control-Max-Age",
                                      &ngx_http_ldseg_cors_max_age)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_str_t *
ngx_http_ldseg_cors_request_origin(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Origin") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Origin",
                               sizeof("Origin") - 1) == 0)
        {
            return &h[i].value;
        }
    }
}


static ngx_int_t
ngx_http_ldseg_cors_allowed(ngx_http_ldseg_cors_t *cors, ngx_str_t *origin)
{
    ngx_str_t   *o;
    ngx_uint_t   i;

    o = cors->origins.elts;

    for (i = 0; i < cors->origins.nelts; i++) {
        if (o[i].len == origin->len
            && ngx_strncasecmp(o[i].data, origin->data, origin->len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_ldseg_cors_header(ngx_http_request_t *r, char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value = *value;

    return NGX_OK;
}

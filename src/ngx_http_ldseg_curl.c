
/*
 * Copyright (C) ldseg authors
 *
 * libcurl multi <-> nginx events, in the shape of curl's multi-uv.c and
 * multi-event.c examples.  Every socket libcurl opens gets an nginx
 * connection structure with level-triggered read and write events, and
 * libcurl's single timeout is an nginx timer.  The worker therefore never
 * blocks; name resolution happens in libcurl's resolver thread.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <curl/curl.h>

#include "ngx_http_ldseg_curl.h"


static void ngx_http_ldseg_curl_check(ngx_http_ldseg_curl_t *cu);
static int ngx_http_ldseg_curl_socket(CURL *easy, curl_socket_t fd,
    int what, void *userp, void *socketp);
static int ngx_http_ldseg_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_ldseg_curl_timer_handler(ngx_event_t *ev);
static void ngx_http_ldseg_curl_event_handler(ngx_event_t *ev);


ngx_int_t
ngx_http_ldseg_curl_init(ngx_http_ldseg_curl_t *cu, ngx_log_t *log)
{
    cu->multi = curl_multi_init();
    if (cu->multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "ldseg: curl_multi_init() failed");
        return NGX_ERROR;
    }

    cu->log = log;

    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_ldseg_curl_socket);
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_ldseg_curl_timer);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);

    /* debug logging reads the timer's data as a connection */

    cu->dummy.fd = (ngx_socket_t) -1;
    cu->dummy.data = cu;

    cu->timer.handler = ngx_http_ldseg_curl_timer_handler;
    cu->timer.data = &cu->dummy;
    cu->timer.log = log;
    cu->timer.cancelable = 1;

    return NGX_OK;
}


ngx_int_t
ngx_http_ldseg_curl_add(ngx_http_ldseg_curl_t *cu, CURL *easy)
{
    if (curl_multi_add_handle(cu->multi, easy) != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, cu->log, 0,
                      "ldseg: curl_multi_add_handle() failed");
        return NGX_ERROR;
    }

    cu->transfers++;

    /* a transfer is running: a graceful exit waits for it */
    cu->timer.cancelable = 0;

    return NGX_OK;
}


void
ngx_http_ldseg_curl_remove(ngx_http_ldseg_curl_t *cu, CURL *easy)
{
    if (cu->multi == NULL) {
        return;
    }

    if (curl_multi_remove_handle(cu->multi, easy) == CURLM_OK
        && cu->transfers > 0)
    {
        cu->transfers--;
    }

    if (cu->transfers == 0) {
        cu->timer.cancelable = 1;
    }
}


void
ngx_http_ldseg_curl_cleanup(ngx_http_ldseg_curl_t *cu)
{
    if (cu->multi == NULL) {
        return;
    }

    /* the socket callback may run here and must not touch the multi */

    cu->cleaning = 1;
    curl_multi_cleanup(cu->multi);
    cu->multi = NULL;

    if (cu->timer.timer_set) {
        ngx_del_timer(&cu->timer);
    }
}


static void
ngx_http_ldseg_curl_check(ngx_http_ldseg_curl_t *cu)
{
    int       left;
    CURLMsg  *msg;

    while (cu->multi != NULL
           && (msg = curl_multi_info_read(cu->multi, &left)) != NULL)
    {
        if (msg->msg == CURLMSG_DONE) {
            cu->done(cu->data, msg->easy_handle, msg->data.result);
        }
    }
}


static int
ngx_http_ldseg_curl_socket(CURL *easy, curl_socket_t fd, int what,
    void *userp, void *socketp)
{
    ngx_http_ldseg_curl_t *cu = userp;

    ngx_connection_t  *c;

    c = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (c == NULL) {
            return 0;
        }

        /* libcurl closes the socket itself: only forget it here */

        if (c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;

        if (!cu->cleaning) {
            curl_multi_assign(cu->multi, fd, NULL);
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_get_connection(fd, cu->log);
        if (c == NULL) {
            return -1;
        }

        c->data = cu;
        c->read->handler = ngx_http_ldseg_curl_event_handler;
        c->write->handler = ngx_http_ldseg_curl_event_handler;
        c->read->log = cu->log;
        c->write->log = cu->log;

        curl_multi_assign(cu->multi, fd, c);
    }

    /*
     * Level-triggered: libcurl may leave data unread, and an edge-triggered
     * event would then never fire again.
     */

    if (what & CURL_POLL_IN) {
        if (!c->read->active
            && ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            return -1;
        }

    } else if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (what & CURL_POLL_OUT) {
        if (!c->write->active
            && ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            return -1;
        }

    } else if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


static int
ngx_http_ldseg_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_ldseg_curl_t *cu = userp;

    if (cu->timer.timer_set) {
        ngx_del_timer(&cu->timer);
    }

    if (timeout_ms >= 0) {
        ngx_add_timer(&cu->timer, (ngx_msec_t) timeout_ms);
    }

    return 0;
}


static void
ngx_http_ldseg_curl_timer_handler(ngx_event_t *ev)
{
    int                     running;
    ngx_connection_t       *c;
    ngx_http_ldseg_curl_t  *cu;

    c = ev->data;
    cu = c->data;

    if (cu->multi == NULL) {
        return;
    }

    curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);

    ngx_http_ldseg_curl_check(cu);
}


static void
ngx_http_ldseg_curl_event_handler(ngx_event_t *ev)
{
    int                     running, action;
    ngx_socket_t            fd;
    ngx_connection_t       *c;
    ngx_http_ldseg_curl_t  *cu;

    c = ev->data;
    cu = c->data;

    if (c->close) {
        /* worker_shutdown_timeout: give everything back and stop */
        cu->abort(cu->data);
        return;
    }

    fd = c->fd;
    action = ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;

    /* c may be freed inside: libcurl can remove the socket */
    curl_multi_socket_action(cu->multi, fd, action, &running);

    ngx_http_ldseg_curl_check(cu);
}

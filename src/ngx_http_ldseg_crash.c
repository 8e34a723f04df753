
/*
 * Copyright (C) ldseg authors
 *
 * Crash points (see ngx_http_ldseg_crash.h): compiled only in the test
 * build of "make crashpoints"; in a normal build this file holds no code.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_ldseg_crash.h"


#if (NGX_HTTP_LDSEG_CRASHPOINTS)

void
ngx_http_ldseg_crash_point(const char *name)
{
    u_char  *p, path[NGX_MAX_PATH];

    /*
     * The master runs zone initialization and spool replay too, but a
     * master that dies takes the whole server with it: only workers,
     * which the master replaces, are killed.
     */

    if (ngx_process != NGX_PROCESS_WORKER) {
        return;
    }

    /* nginx ends the prefix with a slash ("-p DIR" or the built-in one) */

    p = ngx_snprintf(path, NGX_MAX_PATH - 1, "%Vcrash-%s",
                     &ngx_cycle->prefix, name);
    *p = '\0';

    /* unlink() is atomic: of all the processes passing here, one dies */

    if (unlink((char *) path) != 0) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "ldseg: crash point \"%s\" reached, killing process %P",
                  name, ngx_pid);

    (void) kill(ngx_pid, SIGKILL);
}

#endif

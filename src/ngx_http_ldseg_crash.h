
/*
 * Copyright (C) ldseg authors
 *
 * Crash points, for tests only.  The queue and the spool name the places
 * where a worker that dies must leave the zone and the disk consistent:
 *
 *     ngx_http_ldseg_crash("queue_enqueue_chunk_linked");
 *
 * In a normal build the macro is empty.  Built with
 * -DNGX_HTTP_LDSEG_CRASHPOINTS=1 ("make crashpoints"), a worker that
 * passes a point removes the file "crash-NAME" in the nginx prefix and, if
 * that file existed, kills itself with SIGKILL at once: a test arms one
 * point by creating that file, and exactly one process dies there.
 */


#ifndef _NGX_HTTP_LDSEG_CRASH_H_INCLUDED_
#define _NGX_HTTP_LDSEG_CRASH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#if (NGX_HTTP_LDSEG_CRASHPOINTS)

#define ngx_http_ldseg_crash(name)  ngx_http_ldseg_crash_point(name)

/*
 * Kills the calling worker process with SIGKILL if the test armed the
 * point "name" (a file "crash-NAME" in the nginx prefix, which the call
 * removes); returns at once otherwise, and always in other processes.
 */
void ngx_http_ldseg_crash_point(const char *name);

#else

#define ngx_http_ldseg_crash(name)

#endif


#endif /* _NGX_HTTP_LDSEG_CRASH_H_INCLUDED_ */

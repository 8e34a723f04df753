
/*
 * Copyright (C) ldseg authors
 *
 * Crash points: with -DNGX_HTTP_LDSEG_CRASHPOINTS=1 ("make crashpoints")
 * a named point kills its worker when armed; otherwise they compile to
 * nothing.
 */


#ifndef _NGX_HTTP_LDSEG_CRASH_H_INCLUDED_
#define _NGX_HTTP_LDSEG_CRASH_H_INCLUDED_


#if (NGX_HTTP_LDSEG_CRASHPOINTS)

void ngx_http_ldseg_crashpoint(const char *name);

#define ngx_http_ldseg_crash(name)  ngx_http_ldseg_crashpoint(name)

#else

#define ngx_http_ldseg_crash(name)

#endif


#endif /* _NGX_HTTP_LDSEG_CRASH_H_INCLUDED_ */

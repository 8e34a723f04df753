
/*
 * Copyright (C) ldseg authors
 *
 * What the C benchmarks share: the core's allocator callbacks over malloc
 * and the clock they read.
 */


#ifndef _LDSEG_BENCH_H_INCLUDED_
#define _LDSEG_BENCH_H_INCLUDED_


#include <stdlib.h>
#include <time.h>

#include <ldseg.h>


static inline void *
bench_alloc(void *ctx, size_t size)
{
    return malloc(size);
}


static inline void
bench_free(void *ctx, void *p)
{
    free(p);
}


/* the core's allocator over malloc */

static inline void
bench_allocator(ldseg_allocator_t *a)
{
    a->alloc = bench_alloc;
    a->free = bench_free;
    a->ctx = NULL;
}


/* ns of the process's CPU time: other processes on the machine do not count */

static inline double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


#endif /* _LDSEG_BENCH_H_INCLUDED_ */

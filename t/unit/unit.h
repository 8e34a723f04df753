
/*
 * Copyright (C) ldseg authors
 *
 * Tiny TAP helpers and a counting malloc allocator for the unit tests.
 * Every test binary includes this once.
 */


#ifndef _LDSEG_UNIT_H_INCLUDED_
#define _LDSEG_UNIT_H_INCLUDED_


#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldseg.h>


/* not every test uses every helper */
#if defined(__GNUC__)
#define UNIT_UNUSED  __attribute__((unused))
#else
#define UNIT_UNUSED
#endif


typedef struct {
    size_t                        live;      /* blocks not yet freed */
    size_t                        total;     /* blocks ever allocated */
    size_t                        fail_at;   /* 1-based; 0: never fail */
} unit_alloc_t;


static UNIT_UNUSED int unit_ok(int cond, const char *fmt, ...);
static UNIT_UNUSED int unit_done(void);
static UNIT_UNUSED void unit_diag(const char *fmt, ...);
static UNIT_UNUSED void *unit_alloc(void *ctx, size_t size);
static UNIT_UNUSED void unit_free(void *ctx, void *p);
static UNIT_UNUSED void unit_allocator(ldseg_allocator_t *a, unit_alloc_t *ua);
static UNIT_UNUSED uint32_t unit_random(uint32_t *state);


static unsigned  unit_n;
static unsigned  unit_failed;


static int
unit_ok(int cond, const char *fmt, ...)
{
    va_list  args;

    unit_n++;

    if (!cond) {
        unit_failed++;
        printf("not ");
    }

    printf("ok %u - ", unit_n);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
    fflush(stdout);

    return cond;
}


static void
unit_diag(const char *fmt, ...)
{
    va_list  args;

    printf("# ");

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}


static int
unit_done(void)
{
    printf("1..%u\n", unit_n);

    if (unit_failed != 0) {
        printf("# failed %u of %u\n", unit_failed, unit_n);
        return 1;
    }

    return 0;
}


static void *
unit_alloc(void *ctx, size_t size)
{
    unit_alloc_t  *ua;

    ua = ctx;

    if (ua->fail_at != 0 && ua->total + 1 == ua->fail_at) {
        ua->total++;
        return NULL;
    }

    ua->total++;
    ua->live++;

    return malloc(size == 0 ? 1 : size);
}


static void
unit_free(void *ctx, void *p)
{
    unit_alloc_t  *ua;

    ua = ctx;

    if (p != NULL) {
        ua->live--;
        free(p);
    }
}


static void
unit_allocator(ldseg_allocator_t *a, unit_alloc_t *ua)
{
    memset(ua, 0, sizeof(unit_alloc_t));

    a->alloc = unit_alloc;
    a->free = unit_free;
    a->ctx = ua;
}


/* the name of an ldseg_error_t's reason: "missing_event", ... */
#define unit_code(e)  ldseg_reason_name((e).reason)

#define ok    unit_ok
#define done  unit_done


static uint32_t
unit_random(uint32_t *state)
{
    /* xorshift32: the same bytes on every run */

    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;

    return *state;
}


#endif /* _LDSEG_UNIT_H_INCLUDED_ */

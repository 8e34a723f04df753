
/*
 * Copyright (C) ldseg authors
 *
 * Delivery policy, free of nginx: what an answer from LaunchDarkly means
 * for the payload that was sent (done, retry, split, refused ID, dead
 * letter) and how long to wait before the next try.
 */


#ifndef _LDSEG_DELIVERY_H_INCLUDED_
#define _LDSEG_DELIVERY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef enum {
    LDSEG_DELIVERY_DONE = 0,          /* 2xx: delivered */
    LDSEG_DELIVERY_RETRY,             /* keep it and try again later */
    LDSEG_DELIVERY_SPLIT,             /* 413: send it again in two halves */
    LDSEG_DELIVERY_REFUSED_ID,        /* 401, 403, 404: wrong credential */
    LDSEG_DELIVERY_DEAD_LETTER        /* refused on too many attempts */
} ldseg_delivery_e;


typedef struct {
    uint64_t                      base_ms;       /* first backoff, 1000 */
    uint64_t                      max_ms;        /* ldseg_retry_max_delay */
    uint64_t                      retry_after_max_ms;  /* cap, 3600000 */
    unsigned                      dead_letter_after;   /* 0: never */
} ldseg_delivery_conf_t;


typedef struct {
    ldseg_delivery_e              outcome;

    /* the pause before the next try: of the destination or the payload */
    uint64_t                      delay_ms;
    unsigned                      pause_destination:1;

    /* a payload LaunchDarkly rejects goes behind newer ones */
    unsigned                      move_behind:1;
} ldseg_delivery_t;


/*
 * The outcome of one POST.  status is the HTTP status, 0 when there was no
 * answer (connection error, timeout); retry_after_s the Retry-After value
 * in seconds, 0 or less when absent; attempts the tries made before this
 * one; rnd a random number for the jitter.
 */
void ldseg_delivery_outcome(const ldseg_delivery_conf_t *conf, long status,
    int64_t retry_after_s, unsigned attempts, uint32_t rnd,
    ldseg_delivery_t *out);

/* a short name of an outcome, for logs: "done", "retry", ... */
const char *ldseg_delivery_name(ldseg_delivery_e outcome);

/*
 * Where to split a JSON array of nevents events that ldseg wrote (objects
 * joined by ","; no whitespace): *off is the offset of the "," after the
 * first nevents / 2 events.  0, or -1 when nevents < 2 or the text holds
 * fewer events.
 */
int ldseg_delivery_split(const char *array, size_t len, size_t nevents,
    size_t *off);


#endif /* _LDSEG_DELIVERY_H_INCLUDED_ */

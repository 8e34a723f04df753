
/*
 * Copyright (C) ldseg authors
 *
 * The Segment Tracking API model: which fields of a message matter, the
 * request-level limits, single messages and batches.
 */


#ifndef _LDSEG_SEGMENT_H_INCLUDED_
#define _LDSEG_SEGMENT_H_INCLUDED_


#include <ldseg.h>
#include <ldseg_json.h>


/* slots of ldseg_segment_msg_t.f[] */
typedef enum {
    LDSEG_F_TYPE = 0,
    LDSEG_F_EVENT,
    LDSEG_F_USER_ID,
    LDSEG_F_ANONYMOUS_ID,
    LDSEG_F_PREVIOUS_ID,
    LDSEG_F_GROUP_ID,
    LDSEG_F_PROPERTIES,
    LDSEG_F_TIMESTAMP,
    LDSEG_F_WRITE_KEY,
    LDSEG_F_REVENUE,              /* properties.revenue */
    LDSEG_F_VALUE,                /* properties.value */
    LDSEG_F_BATCH,                /* top level of a batch body only */
    LDSEG_F_N
} ldseg_segment_field_e;


/* the spans of one message's fields; type LDSEG_JSON_NONE when absent */
typedef struct {
    ldseg_json_val_t              f[LDSEG_F_N];

    /* the message holds values JavaScript reads differently (js->odd) */
    unsigned                      odd;
} ldseg_segment_msg_t;


/*
 * Prepared messages of a batch are kept in blocks of this many, which are
 * never moved: a batch of 2500 tiny messages costs no copying and no
 * allocation large enough to be mapped (and faulted in) afresh.  A block
 * (16 * 216 bytes) stays below a page, so nginx's request pool serves it
 * without a malloc() of its own.
 */
#define LDSEG_SEGMENT_BLOCK        16


/* ldseg_translate.h: one prepared message */
struct ldseg_event_s;


/* one request body, scanned: its messages, prepared for translation */
typedef struct {
    const ldseg_options_t        *opt;
    const ldseg_allocator_t      *a;

    struct ldseg_event_s        **blocks;
    size_t                        nblocks;   /* allocated blocks */
    size_t                        cap;       /* slots in blocks[] */
    size_t                        n;         /* messages */

    /* a single-message endpoint's message, in blocks[0][0] */
    struct ldseg_event_s         *one;

    /* the body's "writeKey" value; type LDSEG_JSON_NONE when absent */
    ldseg_json_val_t              write_key;
} ldseg_segment_t;


/* the prepared message i < s->n */
#define ldseg_segment_message(s, i)                                          \
    (&(s)->blocks[(i) / LDSEG_SEGMENT_BLOCK][(i) % LDSEG_SEGMENT_BLOCK])


/*
 * Scans the body of a request to endpoint ep once, checking Segment's
 * limits, and prepares every message (ldseg_translate_prepare()) into s;
 * single is the storage of a single-message endpoint's message.
 *
 * LDSEG_OK: s holds s->n prepared messages, which refer to the body;
 *     ldseg_segment_free() returns its memory.
 * LDSEG_EINVAL / LDSEG_ETOOBIG / LDSEG_ENOMEM: err says why, s holds
 *     nothing to free.
 */
ldseg_rc_t ldseg_segment_parse(ldseg_segment_t *s, const char *body,
    size_t len, ldseg_endpoint_e ep, struct ldseg_event_s *single,
    const ldseg_options_t *opt, const ldseg_allocator_t *a,
    ldseg_error_t *err);

void ldseg_segment_free(ldseg_segment_t *s);

/*
 * The message type named by a batch message's "type" value (a string
 * token with its quotes); LDSEG_EP_UNKNOWN for anything else.
 */
ldseg_endpoint_e ldseg_segment_type(const ldseg_json_val_t *v);


#endif /* _LDSEG_SEGMENT_H_INCLUDED_ */


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
    LDSEG_F_MESSAGE_ID,
    LDSEG_F_SENT_AT,
    LDSEG_F_INTEGRATIONS,
    LDSEG_F_INT_ALL,              /* integrations.All */
    LDSEG_F_INT_LD,               /* integrations.LaunchDarkly */
    LDSEG_F_INT_LD_ACTIONS,       /* integrations["LaunchDarkly (Actions)"] */
    LDSEG_F_BATCH,                /* top level of a batch body only */
    LDSEG_F_BATCH_CONTEXT,        /* the same: the batch's "context" */
    LDSEG_F_N
} ldseg_segment_field_e;


/*
 * What "integrations" says of one destination name: nothing (absent or
 * null: the next name decides), false (off) or anything else (on).
 */
typedef enum {
    LDSEG_INT_UNSET = 0,
    LDSEG_INT_OFF,
    LDSEG_INT_ON
} ldseg_integration_e;


/* an "integrations" object as far as LaunchDarkly is concerned */
typedef struct {
    unsigned                      set:1;     /* present and not null */
    unsigned                      all:2;     /* ldseg_integration_e */
    unsigned                      ld:2;
    unsigned                      ld_actions:2;
} ldseg_integrations_t;


typedef struct ldseg_mapping_run_s  ldseg_mapping_run_t;

/*
 * The spans of one message's fields (type LDSEG_JSON_NONE when absent):
 * LDSEG_F_N of them, then, with mappings, the slots of every path they
 * read; the message's own span; the request's mappings state or NULL;
 * the batch's "context" object when the message has none of its own (its
 * slots are then the batch context's), else NULL.
 */
typedef struct {
    ldseg_json_val_t             *f;
    ldseg_json_val_t              msg;
    ldseg_mapping_run_t          *run;
    const ldseg_json_val_t       *ctx;

    /* the message holds values JavaScript reads differently (js->odd) */
    unsigned                      odd;

    /* the message is in a batch */
    unsigned                      batch;
} ldseg_segment_msg_t;


/*
 * Prepared messages of a batch are kept in blocks of this many, which are
 * never moved: a batch of 2500 tiny messages costs no copying and no
 * allocation large enough to be mapped (and faulted in) afresh.  A block
 * (16 * 248 bytes) stays below a page, so nginx's request pool serves it
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

    /* a batch body's own integrations and sentAt, for its messages */
    ldseg_integrations_t          integ;
    int64_t                       sent_ms;
    unsigned                      has_sent;

    /* some integrations or sentAt, or messageIds to bound */
    unsigned                      pipeline;

    /*
     * With mappings that read "context": the batch's "context" object
     * (the last one in the body; type LDSEG_JSON_NONE when there is none
     * or it is not an object), its scan slots, whether it holds values
     * JavaScript reads differently, and whether the body after a batch
     * array was looked into for it (then it is the body's last one).
     */
    ldseg_json_val_t              ctx;
    ldseg_json_val_t             *ctx_vals;
    unsigned                      ctx_odd;
    unsigned                      ahead;

    /* a message's keys: the model's, or the mappings' with them */
    const ldseg_json_key_t       *keys;
    size_t                        nkeys;
    ldseg_mapping_run_t          *run;
} ldseg_segment_t;


/* the prepared message i < s->n */
#define ldseg_segment_message(s, i)                                          \
    (&(s)->blocks[(i) / LDSEG_SEGMENT_BLOCK][(i) % LDSEG_SEGMENT_BLOCK])


/*
 * Scans the body of a request to endpoint ep once, checking Segment's
 * limits, and prepares every message (ldseg_translate_prepare()) into s;
 * single is the storage of a single-message endpoint's message; run, if
 * not NULL, the mappings' state (ldseg_mapping_run.h).  Then
 * Segment's pipeline, which needs the whole body (a batch's own sentAt and
 * integrations may follow its messages), decides: "integrations", clock
 * skew, the bound on messageIds (opt->message_ids).
 *
 * LDSEG_OK: s holds s->n prepared messages, which refer to the body;
 *     ldseg_segment_free() returns its memory.
 * LDSEG_EINVAL / LDSEG_ETOOBIG / LDSEG_ENOMEM: err says why, s holds
 *     nothing to free.
 */
ldseg_rc_t ldseg_segment_parse(ldseg_segment_t *s, const char *body,
    size_t len, ldseg_endpoint_e ep, struct ldseg_event_s *single,
    ldseg_mapping_run_t *run, const ldseg_options_t *opt,
    const ldseg_allocator_t *a, ldseg_error_t *err);

/*
 * The keys the Segment model reads from a message (the table a message
 * is scanned with); the mappings compiler starts its tree with them.
 */
const ldseg_json_key_t *ldseg_segment_keys(size_t *n);

void ldseg_segment_free(ldseg_segment_t *s);

/*
 * The message type named by a batch message's "type" value (a string
 * token with its quotes); LDSEG_EP_UNKNOWN for anything else.
 */
ldseg_endpoint_e ldseg_segment_type(const ldseg_json_val_t *v);

/*
 * What Segment's API does to a message before any destination sees it:
 * an empty-string userId, anonymousId or previousId is absent.
 */
void ldseg_segment_normalize(ldseg_segment_msg_t *m);

/* the "integrations" slots of m (or of a batch body) */
void ldseg_segment_integrations(const ldseg_segment_msg_t *m,
    ldseg_integrations_t *in);

/*
 * Whether the destination of format "format" runs for a message whose own
 * integrations are "own" in a batch whose are "batch" (NULL for a single
 * message): the message's object if it has one, else the batch's; then,
 * as Segment's analytics-core reads it, the destination's name, else its
 * other name, else "All", and only false turns it off.  1 or 0.
 */
int ldseg_segment_enabled(const ldseg_integrations_t *own,
    const ldseg_integrations_t *batch, ldseg_format_e format);

/*
 * The instant a "timestamp" or "sentAt" value names, read as the
 * reference reads a timestamp: an ISO-8601 string or epoch milliseconds.
 * LDSEG_OK with *set = 1 and *ms, or *set = 0 when v names none (absent,
 * null, "", or a number beyond Date's range, which the reference replaces
 * with the current time); LDSEG_EINVAL for anything else.
 */
ldseg_rc_t ldseg_segment_instant(const ldseg_json_val_t *v, int64_t *ms,
    unsigned *set);


#endif /* _LDSEG_SEGMENT_H_INCLUDED_ */


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
 * The message type named by a batch message's "type" value (a string
 * token with its quotes); LDSEG_EP_UNKNOWN for anything else.
 */
ldseg_endpoint_e ldseg_segment_type(const ldseg_json_val_t *v);


#endif /* _LDSEG_SEGMENT_H_INCLUDED_ */

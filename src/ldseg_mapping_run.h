
/*
 * Copyright (C) ldseg authors
 *
 * Running compiled mappings over a message on the request path: the
 * subscriptions that match, mapping-kit's resolution of their mappings,
 * then each action's field rules (ajv's coercions as the destination's
 * schema sets them, removeEmptyValues(), the action's perform()), and
 * the LaunchDarkly events written out.  No JSON is parsed here but the
 * request's: values are the spans its scan recorded.
 */


#ifndef _LDSEG_MAPPING_RUN_H_INCLUDED_
#define _LDSEG_MAPPING_RUN_H_INCLUDED_


#include <ldseg.h>
#include <ldseg_json.h>
#include <ldseg_value.h>
#include <ldseg_segment.h>
#include <ldseg_translate.h>
#include <ldseg_mapping.h>


/*
 * The caller's memory that holds a run, for small mappings (the
 * presets': and a hundred messages' skew records)
 */
#define LDSEG_MAPPING_RUN_STACK  6144

/*
 * A request's state: the scan slots, a scratch arena reused for every
 * message and the request's events, written as they are made (hint: the
 * body's size, to size them).  It lives in buf (8-byte aligned) if it
 * fits, else it is allocated.  NULL: the allocator failed.
 */
ldseg_mapping_run_t *ldseg_mapping_run_create(const ldseg_mappings_t *maps,
    const ldseg_allocator_t *a, size_t hint, void *buf, size_t buf_size);

void ldseg_mapping_run_free(ldseg_mapping_run_t *run);

/*
 * Hands the events over: ','-joined, every mapped event's text_off and
 * text_len are within them; the caller frees them with the allocator.
 */
void ldseg_mapping_run_events(ldseg_mapping_run_t *run, char **events,
    size_t *len);

/*
 * A creationDate written with the message's own "timestamp": where its
 * digits are in the events, and the timestamp; Segment's clock skew, which
 * is applied once the whole body is read, may move it (ldseg_process()
 * writes such dates anew).  Recorded only when the options apply clock
 * skew and the message has a timestamp, no sentAt of its own (then its
 * events are written with the corrected timestamp) and is in a batch.
 */
typedef struct {
    uint32_t                      off;
    uint32_t                      len;
    int64_t                       ms;
} ldseg_mapping_skew_t;


/* the records, in the events' order */
size_t ldseg_mapping_run_skews(const ldseg_mapping_run_t *run,
    const ldseg_mapping_skew_t **skews);

/* ms in decimal, as creationDate is written (at most 20 bytes) */
size_t ldseg_mapping_format_ms(int64_t ms, char *dst);

/*
 * Drops the events written so far (and their skew records): a body's
 * last "batch" key is its batch, an earlier one's messages are not.
 */
void ldseg_mapping_run_reset(ldseg_mapping_run_t *run);

/* the scan's value slots (the mappings' nslots of them), cleared */
ldseg_json_val_t *ldseg_mapping_run_vals(ldseg_mapping_run_t *run);

/* whether the allocator failed while a message was prepared */
int ldseg_mapping_run_nomem(const ldseg_mapping_run_t *run);

/*
 * Runs the mappings over message m (its slots scanned, its span in
 * m->msg) of type "type", which passed the Segment model's checks (ev->ms
 * is its "timestamp"); fills ev: LDSEG_MSG_EVENT with the events appended
 * to the request's (ev->text_off), or SKIPPED or REJECTED with the
 * reason.
 */
void ldseg_mapping_prepare(ldseg_mapping_run_t *run,
    const ldseg_segment_msg_t *m, ldseg_endpoint_e type,
    const ldseg_options_t *opt, ldseg_event_t *ev);

/*
 * mapping-kit's get() path: the first "$." taken out (strip: @path), then
 * split at ".", at "[" before a quote or a digit and at "]"s after one,
 * empty segments dropped, quotes removed.  Segments come from ar; no
 * segment means the payload itself.
 */
ldseg_rc_t ldseg_mapping_split(ldseg_arena_t *ar, const char *s, size_t len,
    unsigned strip, ldseg_path_t *path);

/* JavaScript's String.prototype.trim() over UTF-8 */
void ldseg_mapping_trim(const char **s, size_t *len);


#endif /* _LDSEG_MAPPING_RUN_H_INCLUDED_ */


/*
 * Copyright (C) ldseg authors
 *
 * The export direction: a LaunchDarkly SDK's event post (a JSON array of
 * event-schema-4 events) to Segment track messages in the shape of
 * LaunchDarkly's Data Export to Segment.  Plain C like the rest of the
 * core: the glue passes the options taken from the configuration.
 */


#ifndef _LDSEG_EXPORT_H_INCLUDED_
#define _LDSEG_EXPORT_H_INCLUDED_


#include <ldseg.h>


typedef enum {
    LDSEG_EXPORT_FEATURE = 0,
    LDSEG_EXPORT_CLICK,
    LDSEG_EXPORT_PAGEVIEW,
    LDSEG_EXPORT_CUSTOM,
    LDSEG_EXPORT_NKINDS
} ldseg_export_kind_e;


typedef struct {
    const char                   *p;
    size_t                        len;
} ldseg_export_str_t;


typedef struct {
    /* the "event" of each kind ("feature", "click", "pageview", "custom") */
    ldseg_export_str_t            label[LDSEG_EXPORT_NKINDS];

    /* properties.environment and properties.project (len 0: left out) */
    ldseg_export_str_t            environment;
    ldseg_export_str_t            project;

    /*
     * The SDK post's X-LaunchDarkly-Payload-ID (len 0: none): messageId
     * is "<payload ID>-<index>", else "<hash of the body>-<index>", so a
     * post sent again gives the same messageIds.
     */
    ldseg_export_str_t            payload_id;

    size_t                        max_body;      /* the whole post */
    size_t                        max_message;   /* Segment's 32 KB */
    unsigned                      max_depth;
} ldseg_export_options_t;


void ldseg_export_options_init(ldseg_export_options_t *opt);

/*
 * Translates one SDK post.  LDSEG_OK: res holds one entry per SDK event:
 * LDSEG_MSG_EVENT with its Segment message (compact JSON, at event_off /
 * event_len of res->events, joined by ','), LDSEG_MSG_SKIPPED for kinds
 * that are not exported (index, identify, summary, alias, debug; err
 * "not_exported"), LDSEG_MSG_REJECTED for events that cannot be
 * (err "no_context_key", "too_large", "not_an_object", "invalid_event");
 * a "too_large" message is kept whole in res->large (its event_off and
 * event_len), for the caller to dead-letter: it is never cut.
 * LDSEG_EINVAL / LDSEG_ETOOBIG: the body is unusable (not JSON, not an
 * array, too large or deep).  Memory as ldseg_process(): freed with
 * ldseg_result_free().
 */
ldseg_rc_t ldseg_export_process(const char *body, size_t len,
    const ldseg_export_options_t *opt, const ldseg_allocator_t *a,
    ldseg_result_t *res, ldseg_error_t *err);

/* ISO 8601 UTC with milliseconds ("2024-01-15T10:20:30.123Z") into dst */
#define LDSEG_EXPORT_TIME_LEN  32

size_t ldseg_export_time(int64_t ms, char *dst);


#endif /* _LDSEG_EXPORT_H_INCLUDED_ */

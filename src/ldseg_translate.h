
/*
 * Copyright (C) ldseg authors
 *
 * One Segment message to one LaunchDarkly event, in two steps: prepare
 * validates and decides (event, skip or reject), write serializes the
 * event as compact JSON.
 */


#ifndef _LDSEG_TRANSLATE_H_INCLUDED_
#define _LDSEG_TRANSLATE_H_INCLUDED_


#include <ldseg.h>
#include <ldseg_json.h>
#include <ldseg_segment.h>


typedef enum {
    LDSEG_EVENT_CUSTOM = 0,       /* actions "custom" */
    LDSEG_EVENT_CLASSIC,          /* classic "custom" with "userKey" */
    LDSEG_EVENT_ALIAS,
    LDSEG_EVENT_MAPPED            /* written by the mappings */
} ldseg_event_kind_e;


/*
 * A prepared event: spans into the request body plus the few computed
 * values.  Valid only while the body is.
 */
typedef struct ldseg_event_s  ldseg_event_t;

struct ldseg_event_s {
    ldseg_msg_status_e            status;
    ldseg_error_t                 err;
    ldseg_event_kind_e            kind;
    ldseg_json_val_t              key;       /* event name or user key */
    ldseg_json_val_t              user;      /* context key (custom) */
    ldseg_json_val_t              anon;      /* anonymousId as sent */
    ldseg_json_val_t              prev;      /* previous key (alias) */
    ldseg_json_val_t              data;      /* properties object */
    ldseg_json_val_t              metric;    /* a number token, if raw */
    double                        metric_v;  /* otherwise this */
    int64_t                       ms;
    size_t                        anon_len;  /* String(anon)'s length */
    size_t                        msg_len;   /* the message's bytes */

    /* MAPPED: the events, ','-joined, in the mappings' run */
    uint32_t                      text_off;
    uint32_t                      text_len;

    /* Segment's pipeline, applied once the whole body is read */
    const char                   *mid;       /* messageId contents */
    size_t                        mid_len;   /* as sent, escapes included */
    int64_t                       sent_ms;   /* the message's own sentAt */
    ldseg_integrations_t          integ;     /* its own "integrations" */
    unsigned                      has_metric:1;
    unsigned                      clean:1;   /* data needs ldseg_out_data */
    unsigned                      has_ts:1;  /* ms is its timestamp */
    unsigned                      has_sent:1;
    unsigned                      mid_esc:1; /* mid has escapes */

    /* REJECTED by the destination's rules, not by Segment's API */
    unsigned                      refused:1;

    /* MAPPED: how many events (subscriptions are fewer than 65536) */
    unsigned                      nld:16;
};


/*
 * Decides what message m of type "type" becomes under opt; fills ev
 * (ev->status, ev->err; "invalid_identity" for an identity longer than
 * LDSEG_MAX_IDENTITY once stringified; ev->refused when the destination,
 * not Segment's API, refuses it) and records what Segment's pipeline
 * needs later (messageId, sentAt, integrations).  m is normalized
 * (ldseg_segment_normalize()) by the caller.  Allocates nothing.
 */
void ldseg_translate_prepare(const ldseg_segment_msg_t *m,
    ldseg_endpoint_e type, const ldseg_options_t *opt, ldseg_event_t *ev);

/*
 * Serializes a prepared LDSEG_MSG_EVENT as compact JSON into dst and
 * returns its length; with dst NULL only the length is computed, which is
 * exactly what a later call writes.  The length is at most the message's
 * plus LDSEG_EVENT_SLACK.
 */
size_t ldseg_translate_write(const ldseg_event_t *ev, char *dst);


#endif /* _LDSEG_TRANSLATE_H_INCLUDED_ */

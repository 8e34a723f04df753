
/*
 * Copyright (C) ldseg authors
 *
 * The core's entry: endpoints, reasons, options and ldseg_process(),
 * which has the Segment model scan the body once (preparing every
 * message), sizes the output exactly and writes all events into one
 * buffer.
 */


#include <string.h>

#include <ldseg.h>
#include <ldseg_segment.h>
#include <ldseg_translate.h>
#include <ldseg_mapping_run.h>


typedef struct {
    const char                   *name;
    size_t                        len;
    ldseg_endpoint_e              ep;
} ldseg_endpoint_name_t;


static ldseg_rc_t ldseg_write_key(const ldseg_json_val_t *v,
    const ldseg_allocator_t *a, ldseg_result_t *res);
static ldseg_rc_t ldseg_output(const ldseg_segment_t *s,
    ldseg_mapping_run_t *run, const ldseg_allocator_t *a,
    ldseg_result_t *res);
static ldseg_rc_t ldseg_output_mapped(const ldseg_segment_t *s,
    ldseg_mapping_run_t *run, const ldseg_allocator_t *a,
    ldseg_result_t *res);
static ldseg_rc_t ldseg_message_ids(const ldseg_segment_t *s,
    const ldseg_allocator_t *a, ldseg_result_t *res);


static const ldseg_endpoint_name_t  ldseg_endpoints[] = {
    { "track", 5, LDSEG_EP_TRACK },
    { "identify", 8, LDSEG_EP_IDENTIFY },
    { "alias", 5, LDSEG_EP_ALIAS },
    { "page", 4, LDSEG_EP_PAGE },
    { "screen", 6, LDSEG_EP_SCREEN },
    { "group", 5, LDSEG_EP_GROUP },
    { "batch", 5, LDSEG_EP_BATCH },
    { "import", 6, LDSEG_EP_BATCH },
    { "t", 1, LDSEG_EP_TRACK },
    { "i", 1, LDSEG_EP_IDENTIFY },
    { "a", 1, LDSEG_EP_ALIAS },
    { "p", 1, LDSEG_EP_PAGE },
    { "s", 1, LDSEG_EP_SCREEN },
    { "g", 1, LDSEG_EP_GROUP },
    { "b", 1, LDSEG_EP_BATCH }
};


/* indexed by ldseg_reason_e */
static const char  *ldseg_reasons[LDSEG_REASON_N] = {
    "invalid_json",
    "not_an_object",
    "too_large",
    "too_many_messages",
    "too_deep",
    "invalid_batch",
    "invalid_type",
    "missing_event",
    "missing_identity",
    "invalid_properties",
    "invalid_timestamp",
    "missing_user_id",
    "missing_previous_id",
    "invalid_metric",
    "queue_full",
    "too_many_destinations",
    "invalid_identity",
    "invalid_encoding",
    "unknown_write_key",
    "invalid_client_side_id",
    "internal_error",
    "invalid_message_id",
    "message_in_progress",
    "invalid_context",
    "mapping_failed",
    "upstream_failed",
    "identify_without_user_id",
    "identify_without_previous_id",
    "no_event_for_type",
    "integrations_disabled",
    "not_subscribed",
    "unknown_endpoint",
    "method_not_allowed",
    "origin_not_allowed",
    "no_memory",
    "duplicate",
    "not_an_array",
    "no_context_key",
    "not_exported",
    "none"
};


ldseg_endpoint_e
ldseg_endpoint(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(ldseg_endpoints) / sizeof(ldseg_endpoints[0]);
         i++)
    {
        if (ldseg_endpoints[i].len == len
            && memcmp(ldseg_endpoints[i].name, name, len) == 0)
        {
            return ldseg_endpoints[i].ep;
        }
    }

    return LDSEG_EP_UNKNOWN;
}


const char *
ldseg_endpoint_name(ldseg_endpoint_e ep)
{
    switch (ep) {
    case LDSEG_EP_TRACK:
        return "track";
    case LDSEG_EP_IDENTIFY:
        return "identify";
    case LDSEG_EP_ALIAS:
        return "alias";
    case LDSEG_EP_PAGE:
        return "page";
    case LDSEG_EP_SCREEN:
        return "screen";
    case LDSEG_EP_GROUP:
        return "group";
    case LDSEG_EP_BATCH:
        return "batch";
    default:
        return "unknown";
    }
}


const char *
ldseg_reason_name(ldseg_reason_e reason)
{
    if ((unsigned) reason >= LDSEG_REASON_N
        || ldseg_reasons[reason] == NULL)
    {
        return "unknown";
    }

    return ldseg_reasons[reason];
}


ldseg_rc_t
ldseg_client_side_id_check(const char *p, size_t len)
{
    const char  *last;

    if (len == 0) {
        return LDSEG_EINVAL;
    }

    if (len > LDSEG_CLIENT_SIDE_ID_MAX) {
        return LDSEG_ETOOBIG;
    }

    for (last = p + len; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            return LDSEG_EINVAL;
        }
    }

    return LDSEG_OK;
}


void
ldseg_options_init(ldseg_options_t *opt)
{
    opt->format = LDSEG_FORMAT_ACTIONS;
    opt->now_ms = 0;
    opt->max_message = LDSEG_MAX_MESSAGE;
    opt->max_batch_bytes = LDSEG_MAX_BATCH_BYTES;
    opt->max_batch_messages = LDSEG_MAX_BATCH_MESSAGES;
    opt->max_depth = LDSEG_MAX_DEPTH;
    opt->clock_skew = 1;
    opt->message_ids = 0;
    opt->mappings = NULL;
}


ldseg_rc_t
ldseg_process(const char *body, size_t len, ldseg_endpoint_e ep,
    const ldseg_options_t *opt, const ldseg_allocator_t *a,
    ldseg_result_t *res, ldseg_error_t *err)
{
    uint64_t              stack[LDSEG_MAPPING_RUN_STACK / 8];
    ldseg_rc_t            rc;
    ldseg_event_t         single;
    ldseg_segment_t       s;
    ldseg_mapping_run_t  *run;

    memset(res, 0, sizeof(ldseg_result_t));

    /* with mappings, the request's state: on the stack if it fits */

    run = NULL;

    if (opt->mappings != NULL) {
        run = ldseg_mapping_run_create(opt->mappings, a, len, stack,
                                       sizeof(stack));
        if (run == NULL) {
            err->reason = LDSEG_REASON_NO_MEMORY;
            err->message = "out of memory";
            return LDSEG_ENOMEM;
        }
    }

    rc = ldseg_segment_parse(&s, body, len, ep, &single, run, opt, a, err);
    if (rc != LDSEG_OK) {
        ldseg_mapping_run_free(run);
        return rc;
    }

    if (run != NULL && ldseg_mapping_run_nomem(run)) {
        goto nomem;
    }

    if (s.n != 0) {
        res->msgs = a->alloc(a->ctx, s.n * sizeof(ldseg_msg_result_t));
        if (res->msgs == NULL) {
            goto nomem;
        }

        memset(res->msgs, 0, s.n * sizeof(ldseg_msg_result_t));
        res->n = s.n;
    }

    if (ldseg_write_key(&s.write_key, a, res) != LDSEG_OK
        || ldseg_output(&s, run, a, res) != LDSEG_OK)
    {
        goto nomem;
    }

    ldseg_segment_free(&s);
    ldseg_mapping_run_free(run);

    return LDSEG_OK;

nomem:

    ldseg_segment_free(&s);
    ldseg_mapping_run_free(run);

    ldseg_result_free(res, a);

    err->reason = LDSEG_REASON_NO_MEMORY;
    err->message = "out of memory";

    return LDSEG_ENOMEM;
}


static ldseg_rc_t
ldseg_write_key(const ldseg_json_val_t *v, const ldseg_allocator_t *a,
    ldseg_result_t *res)
{
    if (v->type != LDSEG_JSON_STRING) {
        return LDSEG_OK;
    }

    res->write_key = a->alloc(a->ctx, v->len);
    if (res->write_key == NULL) {
        return LDSEG_ENOMEM;
    }

    res->write_key_len = ldseg_json_string_decode(v->p, v->len,
                                                  res->write_key);

    return LDSEG_OK;
}


/*
 * Two passes over the prepared messages: the first sizes every event
 * (and the buffer), the second writes them.
 */

static ldseg_rc_t
ldseg_output(const ldseg_segment_t *s, ldseg_mapping_run_t *run,
    const ldseg_allocator_t *a, ldseg_result_t *res)
{
    char                *p;
    size_t               i, len, total;
    ldseg_event_t       *ev;
    ldseg_msg_result_t  *mr;

    total = 0;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];
        ev = ldseg_segment_message(s, i);
        mr->status = ev->status;
        mr->err = ev->err;
        mr->msg_len = ev->msg_len;

        switch (mr->status) {

        case LDSEG_MSG_EVENT:
            if (ev->kind == LDSEG_EVENT_MAPPED) {
                mr->event_off = ev->text_off;
                mr->event_len = ev->text_len;
                mr->nld = ev->nld;
                res->nevents++;
                res->nld += mr->nld;
                break;
            }

            len = ldseg_translate_write(ev, NULL);

            /* the event and a comma; cannot overflow below SIZE_MAX / 2 */
            if (len > ((size_t) -1) / 2 - total) {
                return LDSEG_ENOMEM;
            }

            mr->event_len = len;
            mr->nld = 1;
            total += len + 1;
            res->nevents++;
            res->nld++;
            break;

        case LDSEG_MSG_SKIPPED:
            res->nskipped++;
            break;

        default:
            res->nrejected++;
            break;
        }
    }

    if (s->opt->message_ids && ldseg_message_ids(s, a, res) != LDSEG_OK) {
        return LDSEG_ENOMEM;
    }

    if (run != NULL) {
        return ldseg_output_mapped(s, run, a, res);
    }

    if (res->nevents == 0) {
        return LDSEG_OK;
    }

    res->events = a->alloc(a->ctx, total);
    if (res->events == NULL) {
        return LDSEG_ENOMEM;
    }

    p = res->events;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];

        if (mr->status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (p != res->events) {
            *p++ = ',';
        }

        mr->event_off = (size_t) (p - res->events);
        p += ldseg_translate_write(ldseg_segment_message(s, i), p);
    }

    res->events_len = (size_t) (p - res->events);

    return LDSEG_OK;
}


/*
 * The messageIds of the accepted messages: in place in the body, or, for
 * the few sent with escapes, unescaped into one buffer.
 */

static ldseg_rc_t
ldseg_message_ids(const ldseg_segment_t *s, const ldseg_allocator_t *a,
    ldseg_result_t *res)
{
    char                *p;
    size_t               i, total;
    ldseg_event_t       *ev;
    ldseg_msg_result_t  *mr;

    total = 0;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];
        ev = ldseg_segment_message(s, i);

        if (mr->status == LDSEG_MSG_REJECTED || ev->mid == NULL) {
            continue;
        }

        if (!ev->mid_esc) {
            mr->message_id = ev->mid;
            mr->message_id_len = ev->mid_len;
            continue;
        }

        /* at most LDSEG_MAX_MESSAGE_ID + 2 each: no overflow */
        total += ev->mid_len + 2;
    }

    if (total == 0) {
        return LDSEG_OK;
    }

    res->ids = a->alloc(a->ctx, total);
    if (res->ids == NULL) {
        return LDSEG_ENOMEM;
    }

    p = res->ids;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];
        ev = ldseg_segment_message(s, i);

        if (mr->status == LDSEG_MSG_REJECTED || ev->mid == NULL
            || !ev->mid_esc)
        {
            continue;
        }

        /* the token with its quotes: mid follows the opening one */

        mr->message_id = p;
        mr->message_id_len = ldseg_json_string_decode(ev->mid - 1,
                                                      ev->mid_len + 2, p);
        p += mr->message_id_len;
    }

    return LDSEG_OK;
}


/*
 * With mappings, the events were written as the messages were read, into
 * the run's buffer, which becomes the result's.  Segment's pipeline may
 * then have moved a message's timestamp (clock skew): the creationDate of
 * each event whose timestamp is the message's is written anew.  If it
 * turned a message off (integrations, a messageId too long), the events
 * are copied again without that message's.
 */

static ldseg_rc_t
ldseg_output_mapped(const ldseg_segment_t *s, ldseg_mapping_run_t *run,
    const ldseg_allocator_t *a, ldseg_result_t *res)
{
    char                        *p, *old, digits[24];
    size_t                       i, k, n, nsk, total, at, old_len, dlen;
    unsigned                     rewrite;
    ldseg_event_t               *ev;
    ldseg_msg_result_t          *mr;
    const ldseg_mapping_skew_t  *sk;

    nsk = ldseg_mapping_run_skews(run, &sk);
    ldseg_mapping_run_events(run, &old, &old_len);

    /*
     * Only the pipeline changes anything.  A date moved by clock skew is
     * written anew in place when its digits are as many (they are from
     * 2001 to 2286); a message turned off, or a date that is longer or
     * shorter, needs the events copied.
     */

    rewrite = 0;
    k = 0;

    for (i = 0; s->pipeline && i < res->n && !rewrite; i++) {
        ev = ldseg_segment_message(s, i);

        if (ev->kind != LDSEG_EVENT_MAPPED) {
            continue;
        }

        if (ev->status != LDSEG_MSG_EVENT) {
            rewrite = 1;
            break;
        }

        for ( /* void */ ; k < nsk && sk[k].off < ev->text_off; k++) {
            /* void */
        }

        for ( ; k < nsk && sk[k].off < ev->text_off + ev->text_len; k++) {
            if (sk[k].ms == ev->ms) {
                continue;
            }

            dlen = ldseg_mapping_format_ms(ev->ms, digits);

            if (dlen != sk[k].len) {
                rewrite = 1;
                break;
            }

            memcpy(old + sk[k].off, digits, dlen);
        }
    }

    if (!rewrite) {
        res->events = old;
        res->events_len = old_len;
        return LDSEG_OK;
    }

    /* the size: every event's text, the digits of corrected dates */

    total = 0;
    k = 0;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];
        ev = ldseg_segment_message(s, i);

        if (mr->status != LDSEG_MSG_EVENT) {
            continue;
        }

        total += mr->event_len + 1;

        for ( /* void */ ; k < nsk && sk[k].off < ev->text_off; k++) {
            /* void */
        }

        for ( ; k < nsk && sk[k].off < ev->text_off + ev->text_len; k++) {
            total = total + ldseg_mapping_format_ms(ev->ms, digits)
                    - sk[k].len;
        }
    }

    res->events = NULL;
    res->events_len = 0;

    if (res->nevents == 0) {
        a->free(a->ctx, old);
        return LDSEG_OK;
    }

    res->events = a->alloc(a->ctx, total);
    if (res->events == NULL) {
        a->free(a->ctx, old);
        return LDSEG_ENOMEM;
    }

    p = res->events;
    k = 0;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];
        ev = ldseg_segment_message(s, i);

        if (mr->status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (p != res->events) {
            *p++ = ',';
        }

        mr->event_off = (size_t) (p - res->events);
        at = ev->text_off;

        for ( /* void */ ; k < nsk && sk[k].off < ev->text_off; k++) {
            /* void */
        }

        for ( ; k < nsk && sk[k].off < ev->text_off + ev->text_len; k++) {
            n = sk[k].off - at;
            memcpy(p, old + at, n);
            p += n;

            dlen = ldseg_mapping_format_ms(ev->ms, digits);
            memcpy(p, digits, dlen);
            p += dlen;

            at = sk[k].off + sk[k].len;
        }

        n = ev->text_off + ev->text_len - at;
        memcpy(p, old + at, n);
        p += n;

        mr->event_len = (size_t) (p - res->events) - mr->event_off;
    }

    res->events_len = (size_t) (p - res->events);

    a->free(a->ctx, old);

    return LDSEG_OK;
}


void
ldseg_result_free(ldseg_result_t *res, const ldseg_allocator_t *a)
{
    if (res->msgs != NULL) {
        a->free(a->ctx, res->msgs);
    }

    if (res->events != NULL) {
        a->free(a->ctx, res->events);
    }

    if (res->write_key != NULL) {
        a->free(a->ctx, res->write_key);
    }

    if (res->large != NULL) {
        a->free(a->ctx, res->large);
    }

    if (res->ids != NULL) {
        a->free(a->ctx, res->ids);
    }

    memset(res, 0, sizeof(ldseg_result_t));
}


void
ldseg_result_duplicate(ldseg_result_t *res, size_t i)
{
    ldseg_msg_result_t  *mr;

    mr = &res->msgs[i];

    switch (mr->status) {

    case LDSEG_MSG_EVENT:
        res->nevents--;
        res->nld -= mr->nld;
        break;

    case LDSEG_MSG_SKIPPED:
        res->nskipped--;
        break;

    default:
        return;
    }

    mr->status = LDSEG_MSG_DUPLICATE;
    mr->err.reason = LDSEG_REASON_DUPLICATE;
    mr->err.message = "a message with this messageId was accepted before";
    res->nduplicates++;
}


void
ldseg_result_compact(ldseg_result_t *res)
{
    char                *p;
    size_t               i;
    ldseg_msg_result_t  *mr;

    if (res->events == NULL) {
        return;
    }

    /* events only move towards the start: memmove() in order is safe */

    p = res->events;

    for (i = 0; i < res->n; i++) {
        mr = &res->msgs[i];

        if (mr->status != LDSEG_MSG_EVENT) {
            continue;
        }

        if (p != res->events) {
            *p++ = ',';
        }

        memmove(p, res->events + mr->event_off, mr->event_len);
        mr->event_off = (size_t) (p - res->events);
        p += mr->event_len;
    }

    res->events_len = (size_t) (p - res->events);
}


size_t
ldseg_result_run(const ldseg_result_t *res, size_t i, size_t nevents,
    size_t len, size_t batch_size, size_t max_payload, size_t *room,
    size_t *count, size_t *end)
{
    size_t                     j, n, start;
    const ldseg_msg_result_t  *mr;

    n = 0;
    start = 0;
    *end = 0;

    for (j = i; j < res->n; j++) {
        mr = &res->msgs[j];

        if (mr->status != LDSEG_MSG_EVENT) {
            continue;
        }

        /* the array's brackets and a ',' before every event but the first */

        if (n > 0
            && (nevents + n >= batch_size
                || len + 1 + mr->event_len + 2 > max_payload))
        {
            break;
        }

        if (n == 0) {
            start = mr->event_off;
        }

        if (*room && mr->event_off + mr->event_len - start > *room) {
            if (n > 0) {
                break;
            }

            /* not even the first one fits */
            *room = 0;
        }

        len += mr->event_len + (len ? 1 : 0);
        *end = mr->event_off + mr->event_len;

        /* one message may give several events (mappings) */
        n += mr->nld;
    }

    *count = n;

    return j;
}

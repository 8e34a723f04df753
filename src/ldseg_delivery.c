
/*
 * Copyright (C) ldseg authors
 *
 * Delivery policy: maps the answer to one POST onto what happens to the
 * payload and to its destination, computes the backoff, and finds where
 * a payload refused as too large splits in two.  The caller passes the
 * random number for the jitter, so the policy is deterministic.
 */


#include <ldseg_delivery.h>


/* attempts beyond this no longer double the backoff */
#define LDSEG_DELIVERY_MAX_SHIFT  16


static uint64_t ldseg_delivery_delay(const ldseg_delivery_conf_t *conf,
    int64_t retry_after_s, unsigned attempts, uint32_t rnd);


static const char  *ldseg_delivery_names[] = {
    "done",
    "retry",
    "split",
    "refused_id",
    "dead_letter"
};


void
ldseg_delivery_outcome(const ldseg_delivery_conf_t *conf, long status,
    int64_t retry_after_s, unsigned attempts, uint32_t rnd,
    ldseg_delivery_t *out)
{
    out->outcome = LDSEG_DELIVERY_RETRY;
    out->delay_ms = 0;
    out->pause_destination = 0;
    out->move_behind = 0;

    if (status >= 200 && status <= 299) {
        out->outcome = LDSEG_DELIVERY_DONE;
        return;
    }

    switch (status) {

    case 413:
        out->outcome = LDSEG_DELIVERY_SPLIT;
        return;

    case 401:
    case 403:
    case 404:

        /*
         * a wrong or revoked client-side ID: every payload of the
         * destination would get the same answer, so pause it for long
         */

        out->outcome = LDSEG_DELIVERY_REFUSED_ID;
        out->delay_ms = conf->max_ms;
        out->pause_destination = 1;
        return;

    case 408:
    case 429:
        break;

    default:

        if (status < 400 || status > 499) {
            break;
        }

        /*
         * LaunchDarkly refuses this payload, not the destination: the
         * delay holds the payload only, and it goes behind newer ones
         * so that it cannot block them; attempts + 1 would wrap
         */

        if (conf->dead_letter_after != 0
            && attempts >= conf->dead_letter_after - 1)
        {
            out->outcome = LDSEG_DELIVERY_DEAD_LETTER;
            return;
        }

        out->delay_ms = ldseg_delivery_delay(conf, retry_after_s, attempts,
                                             rnd);
        out->move_behind = 1;
        return;
    }

    /* no answer, 408, 429, 5xx, or a status that has no meaning here */

    out->delay_ms = ldseg_delivery_delay(conf, retry_after_s, attempts, rnd);
    out->pause_destination = 1;
}


/*
 * Retry-After wins when present, without jitter; otherwise
 * base_ms << min(attempts, 16) capped at max_ms, jittered into
 * [d / 2, d].  Both caps are checked before any multiplication or shift,
 * so no input overflows.
 */

static uint64_t
ldseg_delivery_delay(const ldseg_delivery_conf_t *conf, int64_t retry_after_s,
    unsigned attempts, uint32_t rnd)
{
    unsigned  shift;
    uint64_t  d;

    if (retry_after_s > 0) {
        if ((uint64_t) retry_after_s > conf->retry_after_max_ms / 1000) {
            return conf->retry_after_max_ms;
        }

        return (uint64_t) retry_after_s * 1000;
    }

    shift = (attempts < LDSEG_DELIVERY_MAX_SHIFT) ? attempts
                                                  : LDSEG_DELIVERY_MAX_SHIFT;

    if (conf->base_ms > (conf->max_ms >> shift)) {
        d = conf->max_ms;

    } else {
        d = conf->base_ms << shift;
    }

    /* full jitter over the upper half spreads retries of many workers */

    return d / 2 + (uint64_t) rnd % (d / 2 + 1);
}


const char *
ldseg_delivery_name(ldseg_delivery_e outcome)
{
    if ((size_t) outcome
        >= sizeof(ldseg_delivery_names) / sizeof(ldseg_delivery_names[0]))
    {
        return "unknown";
    }

    return ldseg_delivery_names[outcome];
}


/*
 * A single pass that tracks only whether it is inside a string and how
 * deep inside an event it is: a "," outside strings at depth 0 separates
 * two events.  The whole array is read, up to its closing "]", so that a
 * text holding fewer than nevents events is refused rather than split
 * with wrong counts.
 */

int
ldseg_delivery_split(const char *array, size_t len, size_t nevents,
    size_t *off)
{
    char    c;
    size_t  i, depth, seps, at;
    enum {
        sw_value = 0,
        sw_string,
        sw_escape
    } state;

    if (nevents < 2 || len == 0 || array[0] != '[') {
        return -1;
    }

    state = sw_value;
    depth = 0;
    seps = 0;
    at = 0;

    for (i = 1; i < len; i++) {
        c = array[i];

        switch (state) {

        case sw_string:
            if (c == '\\') {
                state = sw_escape;

            } else if (c == '"') {
                state = sw_value;
            }

            continue;

        case sw_escape:
            state = sw_string;
            continue;

        case sw_value:
            break;
        }

        switch (c) {

        case '"':
            state = sw_string;
            break;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (depth != 0) {
                depth--;
                break;
            }

            if (c == '}') {
                /* not a text that ldseg wrote */
                return -1;
            }

            goto end;

        case ',':
            if (depth != 0) {
                break;
            }

            seps++;

            if (seps == nevents / 2) {
                at = i;
            }

            break;

        default:
            break;
        }
    }

end:

    if (seps < nevents - 1) {
        return -1;
    }

    *off = at;

    return 0;
}

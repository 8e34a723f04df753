
/*
 * Copyright (C) ldseg authors
 *
 * ldseg_result_run(): how a request's events are divided into payloads,
 * the one rule of the queue and of "ldseg_deliver": ldseg_batch_size
 * events and ldseg_max_payload bytes (brackets and commas included) at
 * most, at least one event, messages without an event passed over.
 */


#include "unit.h"


typedef struct {
    const char                   *name;
    const char                   *statuses;  /* 'e' event, 's' skipped */
    size_t                        event_len;
    size_t                        nevents;   /* already in the payload */
    size_t                        len;
    size_t                        batch;
    size_t                        max;
    size_t                        from;
    size_t                        next;      /* expected */
    size_t                        count;
} unit_run_case_t;


static const unit_run_case_t  unit_run_cases[] = {

    { "all fit", "eeee", 10, 0, 0, 100, 1000, 0, 4, 4 },
    { "batch size", "eeeee", 10, 0, 0, 2, 1000, 0, 2, 2 },
    { "second run", "eeeee", 10, 0, 0, 2, 1000, 2, 4, 2 },
    { "last run short", "eeeee", 10, 0, 0, 2, 1000, 4, 5, 1 },

    /* [a,b] = 2 + 10 + 1 + 10 = 23 bytes: a third event needs 34 */
    { "bytes: 23 fits 2", "eee", 10, 0, 0, 100, 33, 0, 2, 2 },
    { "bytes: 34 fits 3", "eee", 10, 0, 0, 100, 34, 0, 3, 3 },
    { "one event over the bytes still goes", "ee", 10, 0, 0, 100, 5, 0, 1,
      1 },

    { "skipped passed over", "eseese", 10, 0, 0, 2, 1000, 0, 3, 2 },
    { "skipped at the end", "ees", 10, 0, 0, 100, 1000, 0, 3, 2 },

    /* an open payload: its events and bytes count */
    { "open payload: events", "eee", 10, 1, 10, 2, 1000, 0, 1, 1 },
    { "open payload: bytes", "eee", 10, 1, 10, 100, 34, 0, 2, 2 },

    { NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0 }
};


int
main(void)
{
    char                     events[1024];
    size_t                   i, n, next, count, end, off, room;
    ldseg_result_t           res;
    ldseg_msg_result_t       msgs[16];
    const unit_run_case_t   *c;

    for (c = unit_run_cases; c->name; c++) {

        memset(&res, 0, sizeof(res));
        memset(msgs, 0, sizeof(msgs));

        n = strlen(c->statuses);
        off = 0;

        for (i = 0; i < n; i++) {
            if (c->statuses[i] == 's') {
                msgs[i].status = LDSEG_MSG_SKIPPED;
                continue;
            }

            if (off) {
                events[off++] = ',';
            }

            msgs[i].status = LDSEG_MSG_EVENT;
            msgs[i].nld = 1;
            msgs[i].event_off = off;
            msgs[i].event_len = c->event_len;
            memset(events + off, 'x', c->event_len);
            off += c->event_len;
        }

        res.n = n;
        res.msgs = msgs;
        res.events = events;
        res.events_len = off;

        room = 0;
        next = ldseg_result_run(&res, c->from, c->nevents, c->len, c->batch,
                                c->max, &room, &count, &end);

        unit_ok(next == c->next && count == c->count,
                "%s: next %zu count %zu", c->name, next, count);

        /* the run ends where its last event ends */

        for (i = next; i > c->from; i--) {
            if (msgs[i - 1].status == LDSEG_MSG_EVENT) {
                break;
            }
        }

        unit_ok(i > c->from
                && end == msgs[i - 1].event_off + msgs[i - 1].event_len,
                "%s: end %zu", c->name, end);
    }

    /*
     * Four messages of 10-byte events, the second mapped to 3 events: the
     * room of a chunk (",e1,e2" is 21 bytes after the comma the queue
     * writes) and several events per message
     */

    memset(&res, 0, sizeof(res));
    memset(msgs, 0, sizeof(msgs));
    memset(events, 'x', 43);

    for (i = 0; i < 4; i++) {
        msgs[i].status = LDSEG_MSG_EVENT;
        msgs[i].nld = (i == 1) ? 3 : 1;
        msgs[i].event_off = i * 11;
        msgs[i].event_len = 10;
    }

    res.n = 4;
    res.msgs = msgs;
    res.events = events;
    res.events_len = 43;

    room = 21;
    next = ldseg_result_run(&res, 0, 0, 0, 100, 1000, &room, &count, &end);
    unit_ok(next == 2 && count == 4 && end == 21 && room == 21,
            "room for two messages: next %zu count %zu end %zu room %zu",
            next, count, end, room);

    room = 5;
    next = ldseg_result_run(&res, 0, 0, 0, 100, 1000, &room, &count, &end);
    unit_ok(next == 4 && count == 6 && end == 43 && room == 0,
            "no room for the first: a new chunk, next %zu count %zu room %zu",
            next, count, room);

    room = 0;
    next = ldseg_result_run(&res, 0, 0, 0, 3, 1000, &room, &count, &end);
    unit_ok(next == 2 && count == 4,
            "batch size 3: the mapped message's events all go, next %zu "
            "count %zu", next, count);

    return unit_done();
}


/*
 * Copyright (C) ldseg authors
 *
 * Core API shared by the pure C layers (Segment model, translation,
 * helpers) and the nginx glue.  Nothing here knows nginx: the glue passes
 * an allocator backed by the request pool, the current time and the
 * options taken from the configuration.
 */


#ifndef _LDSEG_H_INCLUDED_
#define _LDSEG_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define LDSEG_VERSION                 "0.1.0"

/* Segment's documented limits */
#define LDSEG_MAX_MESSAGE             (32 * 1024)
#define LDSEG_MAX_BATCH_BYTES         (500 * 1024)
#define LDSEG_MAX_BATCH_MESSAGES      2500
#define LDSEG_MAX_DEPTH               64

/*
 * Bounded cost per byte.  An identity (userId, anonymousId, previousId,
 * groupId) whose JavaScript String() is longer than LDSEG_MAX_IDENTITY
 * bytes rejects its message with "invalid_identity"; then every event is
 * at most its message's size plus LDSEG_EVENT_SLACK: the event's own text
 * (at most 167 bytes), two ids written as numbers (25 more bytes each) and
 * anonymousId written a second time as a string (LDSEG_MAX_IDENTITY).
 */
#define LDSEG_MAX_IDENTITY            1024
#define LDSEG_EVENT_SLACK             (LDSEG_MAX_IDENTITY + 256)

/* a client-side ID is at most this long */
#define LDSEG_CLIENT_SIDE_ID_MAX      256

/*
 * The longest "messageId" (its bytes as sent, escapes included) that can
 * be remembered for de-duplication; with opt->message_ids a message whose
 * messageId is longer is rejected with "invalid_message_id".  Segment's
 * libraries send 36 to 61 bytes; Segment documents a limit of 100.
 */
#define LDSEG_MAX_MESSAGE_ID          256


typedef enum {
    LDSEG_OK = 0,
    LDSEG_EINVAL,                 /* the request body is unusable */
    LDSEG_ETOOBIG,                /* a size or count limit was exceeded */
    LDSEG_ENOMEM
} ldseg_rc_t;


/*
 * Why a request or a message is refused or skipped.  The name of a reason
 * (ldseg_reason_name()) is stable and machine readable: it is the "code"
 * of a JSON error body and the label of a status counter.  Reasons below
 * LDSEG_REASON_NREJECT are counted by index in "rejected_reasons": add a
 * rejection before LDSEG_REASON_NREJECT, anything else after it.
 */
typedef enum {
    LDSEG_REASON_INVALID_JSON = 0,
    LDSEG_REASON_NOT_AN_OBJECT,
    LDSEG_REASON_TOO_LARGE,
    LDSEG_REASON_TOO_MANY_MESSAGES,
    LDSEG_REASON_TOO_DEEP,
    LDSEG_REASON_INVALID_BATCH,
    LDSEG_REASON_INVALID_TYPE,
    LDSEG_REASON_MISSING_EVENT,
    LDSEG_REASON_MISSING_IDENTITY,
    LDSEG_REASON_INVALID_PROPERTIES,
    LDSEG_REASON_INVALID_TIMESTAMP,
    LDSEG_REASON_MISSING_USER_ID,
    LDSEG_REASON_MISSING_PREVIOUS_ID,
    LDSEG_REASON_INVALID_METRIC,
    LDSEG_REASON_QUEUE_FULL,
    LDSEG_REASON_TOO_MANY_DESTINATIONS,
    LDSEG_REASON_INVALID_IDENTITY,
    LDSEG_REASON_INVALID_ENCODING,
    LDSEG_REASON_UNKNOWN_WRITE_KEY,
    LDSEG_REASON_INVALID_CLIENT_SIDE_ID,
    LDSEG_REASON_INTERNAL_ERROR,
    LDSEG_REASON_INVALID_MESSAGE_ID,
    LDSEG_REASON_MESSAGE_IN_PROGRESS,
    LDSEG_REASON_INVALID_CONTEXT,          /* mappings: context kind, keys */
    LDSEG_REASON_MAPPING_FAILED,           /* mappings: mapping-kit fails */
    LDSEG_REASON_UPSTREAM_FAILED,

    LDSEG_REASON_NREJECT,

    /*
     * valid messages that map to no event ("skipped"), counted by index
     * from LDSEG_REASON_NREJECT on in "skipped_reasons"
     */
    LDSEG_REASON_IDENTIFY_WITHOUT_USER_ID = LDSEG_REASON_NREJECT,
    LDSEG_REASON_IDENTIFY_WITHOUT_PREVIOUS_ID,
    LDSEG_REASON_NO_EVENT_FOR_TYPE,
    LDSEG_REASON_INTEGRATIONS_DISABLED,
    LDSEG_REASON_NOT_SUBSCRIBED,           /* mappings: no subscription */

    LDSEG_REASON_NSKIP,

    /* answered, not counted */
    LDSEG_REASON_UNKNOWN_ENDPOINT = LDSEG_REASON_NSKIP,
    LDSEG_REASON_METHOD_NOT_ALLOWED,
    LDSEG_REASON_ORIGIN_NOT_ALLOWED,
    LDSEG_REASON_NO_MEMORY,

    /* accepted before (ldseg_result_duplicate()), counted as "duplicate" */
    LDSEG_REASON_DUPLICATE,

    /* LaunchDarkly SDK event posts (ldseg_export.c) */
    LDSEG_REASON_NOT_AN_ARRAY,
    LDSEG_REASON_NO_CONTEXT_KEY,
    LDSEG_REASON_NOT_EXPORTED,

    /* an event: no reason */
    LDSEG_REASON_NONE,

    LDSEG_REASON_N
} ldseg_reason_e;


/* reason tells why; message is a static human sentence */
typedef struct {
    ldseg_reason_e                reason;
    const char                   *message;
} ldseg_error_t;


/*
 * All memory the core returns comes from this allocator.  The glue passes a
 * request pool allocator whose free is a no-op; unit tests pass a counting
 * malloc allocator and check that everything is freed by ldseg_result_free().
 */
typedef struct {
    void                       *(*alloc)(void *ctx, size_t size);
    void                        (*free)(void *ctx, void *p);
    void                         *ctx;
} ldseg_allocator_t;


typedef enum {
    LDSEG_EP_UNKNOWN = 0,
    LDSEG_EP_TRACK,
    LDSEG_EP_IDENTIFY,
    LDSEG_EP_ALIAS,
    LDSEG_EP_PAGE,
    LDSEG_EP_SCREEN,
    LDSEG_EP_GROUP,
    LDSEG_EP_BATCH                /* "batch", "import" and "b" */
} ldseg_endpoint_e;


typedef enum {
    LDSEG_FORMAT_ACTIONS = 0,     /* Segment's "LaunchDarkly (Actions)" */
    LDSEG_FORMAT_CLASSIC          /* Segment's classic LaunchDarkly */
} ldseg_format_e;


typedef enum {
    LDSEG_MSG_EVENT = 0,          /* valid, produced one LaunchDarkly event */
    LDSEG_MSG_SKIPPED,            /* valid Segment, maps to no event */
    LDSEG_MSG_REJECTED,           /* invalid, err tells why */
    LDSEG_MSG_DUPLICATE           /* accepted before by another message */
} ldseg_msg_status_e;


/*
 * With mappings, one message may give several events (one per matching
 * subscription): event_off/event_len then span them all, nld says how
 * many, and err (its message not NULL) names a subscription's refusal
 * next to them, if any.
 */
typedef struct {
    ldseg_msg_status_e            status;
    ldseg_error_t                 err;       /* REJECTED: why; SKIPPED: why */
    size_t                        event_off; /* EVENT: offset in res->events */
    size_t                        event_len; /* EVENT: length of the events */
    size_t                        nld;       /* EVENT: LaunchDarkly events */
    size_t                        msg_len;   /* the message's bytes */

    /*
     * With opt->message_ids, an accepted (EVENT or SKIPPED) message's
     * "messageId" string, unescaped, not NUL-terminated, at most
     * LDSEG_MAX_MESSAGE_ID bytes; NULL when it has none (absent, not a
     * string, or "").
     */
    const char                   *message_id;
    size_t                        message_id_len;
} ldseg_msg_result_t;


typedef struct ldseg_mappings_s  ldseg_mappings_t;


typedef struct {
    ldseg_format_e                format;
    int64_t                       now_ms;    /* receivedAt: Segment's clock */
    size_t                        max_message;
    size_t                        max_batch_bytes;
    size_t                        max_batch_messages;
    unsigned                      max_depth;

    /* timestamp = now_ms - (sentAt - timestamp) when there is a sentAt */
    unsigned                      clock_skew;

    /* report (and bound) each accepted message's "messageId" */
    unsigned                      message_ids;

    /* compiled mappings (ldseg_mapping.h); NULL: the built-in presets */
    const ldseg_mappings_t       *mappings;
} ldseg_options_t;


typedef struct {
    size_t                        n;          /* messages seen */
    ldseg_msg_result_t           *msgs;       /* n entries */
    size_t                        nevents;    /* messages with EVENT */
    size_t                        nskipped;
    size_t                        nrejected;
    size_t                        nduplicates;
    size_t                        nld;        /* LaunchDarkly events */

    /*
     * All events, serialized as compact JSON, in message order, joined by
     * ',' and nothing else: "[" + events + "]" is a valid JSON array, and
     * any run of consecutive events is one slice of this buffer.
     */
    char                         *events;
    size_t                        events_len;

    /* the body's "writeKey" string (analytics.js), unescaped; NULL if none */
    char                         *write_key;
    size_t                        write_key_len;

    /* unescaped messageIds, which msgs[].message_id point into */
    char                         *ids;

    /*
     * ldseg_export_process(): the messages over max_message, whole (each
     * one REJECTED "too_large"), joined by ',' as events are; their
     * msgs[].event_off and event_len place them here.  NULL: none.
     */
    char                         *large;
    size_t                        large_len;
    size_t                        nlarge;
} ldseg_result_t;


/* "invalid_json", "too_large", ...; "unknown" outside the enum */
const char *ldseg_reason_name(ldseg_reason_e reason);

/*
 * A client-side ID goes into the events URL: a plain token (letters,
 * digits, "-" and "_") of 1 to LDSEG_CLIENT_SIDE_ID_MAX bytes.  LDSEG_OK,
 * LDSEG_ETOOBIG (too long) or LDSEG_EINVAL (empty, or another byte).
 */
ldseg_rc_t ldseg_client_side_id_check(const char *p, size_t len);

/* "track" -> LDSEG_EP_TRACK ... "t" -> LDSEG_EP_TRACK; unknown names: 0 */
ldseg_endpoint_e ldseg_endpoint(const char *name, size_t len);

/* "track", "identify", ... for logs and JSON answers */
const char *ldseg_endpoint_name(ldseg_endpoint_e ep);

void ldseg_options_init(ldseg_options_t *opt);

/*
 * Parses, validates and translates one Segment Tracking API request body
 * sent to endpoint ep.  For a single-message endpoint the endpoint decides
 * the message type.
 *
 * LDSEG_OK: res is filled; for a single-message endpoint res->n == 1 and a
 *     rejected message is reported in res->msgs[0] (the caller answers 400).
 * LDSEG_EINVAL / LDSEG_ETOOBIG: the whole body is unusable, err says why,
 *     res holds nothing to free.
 * LDSEG_ENOMEM: the allocator failed, res holds nothing to free.
 *
 * The body need not be NUL-terminated.  The memory in res belongs to the
 * allocator; ldseg_result_free() returns it.
 */
ldseg_rc_t ldseg_process(const char *body, size_t len, ldseg_endpoint_e ep,
    const ldseg_options_t *opt, const ldseg_allocator_t *a,
    ldseg_result_t *res, ldseg_error_t *err);

void ldseg_result_free(ldseg_result_t *res, const ldseg_allocator_t *a);

/*
 * Marks the accepted (EVENT or SKIPPED) message i a duplicate of one
 * accepted before: it is answered as accepted and sends nothing.  The
 * counts change at once; the events of the messages still EVENT are
 * contiguous again only after ldseg_result_compact().
 */
void ldseg_result_duplicate(ldseg_result_t *res, size_t i);

/*
 * Moves the events that remain so that they are joined as
 * ldseg_process() joins them; offsets and events_len follow.  Allocates
 * nothing.
 */
void ldseg_result_compact(ldseg_result_t *res);

/*
 * The run of events that a payload (a JSON array) already holding
 * nevents events in len bytes, brackets excluded, takes from message i
 * on, within batch_size events and max_payload bytes, brackets included:
 * at least one event, and the events from message i on while they fit.
 * Returns the index of the message after the run; *count is the number
 * of events of the run, and the run's bytes are res->events from the
 * offset of its first event up to *end.  A message mapped to several
 * events counts them all.  *room (0: none) is the room left in the
 * payload's last chunk: the run stops before an event that would not fit
 * in it, or, when not even the first one fits, *room becomes 0 and the run
 * goes on as if there were none (a new chunk).  Both delivery modes divide
 * a request's events with it, so they send the same payloads.
 */
size_t ldseg_result_run(const ldseg_result_t *res, size_t i,
    size_t nevents, size_t len, size_t batch_size, size_t max_payload,
    size_t *room, size_t *count, size_t *end);


/* ldseg_uuid.c: formats 16 random bytes as an RFC 4122 version 4 UUID */
#define LDSEG_UUID_LEN                36

void ldseg_uuid_format(char *dst, const unsigned char rnd[16]);


#endif /* _LDSEG_H_INCLUDED_ */

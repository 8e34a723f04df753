
/*
 * Copyright (C) ldseg authors
 *
 * Mappings in Segment's own format: a JSON array of subscriptions
 * {"name", "subscribe" (FQL), "partnerAction" ("trackEvent" or
 * "aliasUser"), "mapping"}, compiled once, at configuration time, into
 * FQL trees, mapping-kit expressions and the key tables with which the
 * request's single scan of a message records every value the mappings
 * read.  cJSON parses the file here; nothing in this file runs per
 * request.
 */


#ifndef _LDSEG_MAPPING_H_INCLUDED_
#define _LDSEG_MAPPING_H_INCLUDED_


#include <ldseg.h>
#include <ldseg_json.h>
#include <ldseg_value.h>
#include <ldseg_fql.h>


/* a mappings file at most, and its subscriptions */
#define LDSEG_MAPPING_MAX_FILE     (1024 * 1024)
#define LDSEG_MAPPING_MAX_SUBS     1024

/* the nesting of the file's JSON at most (what compiling it recurses) */
#define LDSEG_MAPPING_MAX_DEPTH    64

/*
 * What one message may make the mappings build and write: this many
 * times its size, plus LDSEG_EVENT_SLACK per subscription and the size of
 * the mappings file.
 */
#define LDSEG_MAPPING_GROWTH       8

/*
 * What resolving the mappings over one message may allocate besides: the
 * values it builds and drops (twice the limit above, plus this).
 */
#define LDSEG_MAPPING_SCRATCH      (64 * 1024)


typedef enum {
    LDSEG_ACTION_TRACK = 0,       /* trackEvent */
    LDSEG_ACTION_ALIAS            /* aliasUser */
} ldseg_action_e;


/* the fields of the two actions */
typedef enum {
    LDSEG_FIELD_CONTEXT_KIND = 0,
    LDSEG_FIELD_USER_KEY,
    LDSEG_FIELD_ADDITIONAL_KEYS,
    LDSEG_FIELD_EVENT_NAME,
    LDSEG_FIELD_METRIC_VALUE,
    LDSEG_FIELD_EVENT_PROPERTIES,
    LDSEG_FIELD_TIMESTAMP,
    LDSEG_FIELD_PREVIOUS_KEY,
    LDSEG_FIELD_N
} ldseg_field_e;


typedef enum {
    LDSEG_EX_LITERAL = 0,         /* lit */
    LDSEG_EX_OBJECT,              /* keys[i]: args[i] */
    LDSEG_EX_ARRAY,               /* args */
    LDSEG_EX_PATH,                /* path */
    LDSEG_EX_PATH_DYNAMIC,        /* args[0] gives the path */
    LDSEG_EX_TEMPLATE,            /* parts: literal text, path, ... */
    LDSEG_EX_TEMPLATE_DYNAMIC,    /* args[0] gives the template, or str */
    LDSEG_EX_IF,                  /* args: condition, then, else */
    LDSEG_EX_CASE,                /* args[0]; flag: upper */
    LDSEG_EX_REPLACE,             /* args[0]; strings; flags */
    LDSEG_EX_ARRAY_PATH,          /* path or args[0]; args[1]: shape */
    LDSEG_EX_JSON,                /* args[0]; flag: encode, decode, none */
    LDSEG_EX_FLATTEN,             /* args[0]; str: separator; flag */
    LDSEG_EX_MERGE,               /* args: objects; flag: left */
    LDSEG_EX_EXCLUDE_WHEN_NULL    /* args[0] */
} ldseg_expr_e;


/*
 * A path as mapping-kit's get() splits it.  slots[i] is the scan slot
 * of the first i + 1 segments when the path is read from the message
 * (LDSEG_MAPPING_NO_SLOT inside @arrayPath items).
 */
#define LDSEG_MAPPING_NO_SLOT      ((unsigned) -1)

typedef struct {
    size_t                        nsegs;
    char                        **segs;
    size_t                       *lens;
    unsigned                     *slots;
    unsigned                      type;      /* segs[0] is "type" */
    unsigned                      direct;    /* one segment, a slot */
} ldseg_path_t;


typedef struct ldseg_expr_s  ldseg_expr_t;

/* a part of a template: literal text (escaped), or a path */
typedef struct {
    const char                   *text;
    size_t                        len;
    ldseg_path_t                 *path;
} ldseg_template_part_t;


struct ldseg_expr_s {
    ldseg_expr_e                  kind;
    unsigned                      flags;
    const ldseg_mv_t             *lit;
    ldseg_expr_t                **args;
    size_t                        nargs;
    ldseg_mv_member_t            *keys;      /* OBJECT: key of args[i] */
    ldseg_path_t                 *path;
    ldseg_template_part_t        *parts;
    size_t                        nparts;
    const char                   *str[4];    /* decoded UTF-8 */
    size_t                        len[4];

    /*
     * The two shapes nearly every mapping is made of, read without the
     * general evaluation: LDSEG_FAST_SLOT, {"@path": "$.x"} (slot);
     * LDSEG_FAST_COALESCE, {"@if": {"exists": {"@path": "$.x"}, "then":
     * {"@path": "$.x"}, "else": E}} (slot, and slot2 if E is such a path).
     */
    unsigned                      fast;
    unsigned                      slot;
    unsigned                      slot2;
};


#define LDSEG_FAST_NONE            0
#define LDSEG_FAST_SLOT            1
#define LDSEG_FAST_COALESCE        2


#define LDSEG_EX_IF_BLANK          0x01
#define LDSEG_EX_IF_SAME           0x02      /* then: the path of exists */
#define LDSEG_EX_IF_COALESCE       0x04      /* read from the message */
#define LDSEG_EX_CASE_UPPER        0x01
#define LDSEG_EX_REPLACE_GLOBAL    0x01
#define LDSEG_EX_REPLACE_ICASE     0x02
#define LDSEG_EX_REPLACE_SECOND    0x04
#define LDSEG_EX_JSON_ENCODE       0x01
#define LDSEG_EX_JSON_DECODE       0x02
#define LDSEG_EX_FLATTEN_NO_ARRAYS 0x01
#define LDSEG_EX_MERGE_LEFT        0x01
#define LDSEG_EX_ITEM              0x80      /* inside @arrayPath items */


typedef struct {
    char                         *name;
    ldseg_fql_t                  *fql;
    ldseg_action_e                action;
    ldseg_expr_t                 *fields[LDSEG_FIELD_N];
} ldseg_subscription_t;


struct ldseg_mappings_s {
    ldseg_arena_t                 ar;        /* everything below */
    ldseg_subscription_t         *subs;
    size_t                        nsubs;

    /* the scan's table for a message: the Segment model's keys too */
    ldseg_json_key_t             *keys;
    size_t                        nkeys;
    unsigned                      nslots;

    /*
     * When the mappings read a message's "context" (a path through it,
     * or the whole message), its slot, else LDSEG_MAPPING_NO_SLOT; the
     * table its object is scanned with (NULL when no path goes into it);
     * every slot below it, for a batch's context to stand in for a
     * message's (Segment's API gives a message without one the batch's).
     */
    unsigned                      ctx_slot;
    const ldseg_json_key_t       *ctx_keys;
    size_t                        nctx_keys;
    unsigned                     *ctx_slots;
    size_t                        nctx_slots;

    /* the FQL conditions' paths, by ldseg_fql_t.path */
    ldseg_path_t                **paths;
    size_t                        npaths;

    size_t                        slack;     /* see LDSEG_MAPPING_GROWTH */
};


/*
 * Compiles a mappings file (JSON text, not NUL-terminated).  LDSEG_OK
 * with *out set; LDSEG_EINVAL with a sentence naming the subscription and
 * the field in err; LDSEG_ENOMEM.  The memory comes from a and is
 * returned by ldseg_mappings_free().
 */
ldseg_rc_t ldseg_mappings_compile(const char *json, size_t len,
    const ldseg_allocator_t *a, ldseg_mappings_t **out, char *err,
    size_t err_len);

void ldseg_mappings_free(ldseg_mappings_t *maps);

#endif /* _LDSEG_MAPPING_H_INCLUDED_ */

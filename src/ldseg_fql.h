
/*
 * Copyright (C) ldseg authors
 *
 * Segment's subscription language (FQL) as @segment/destination-
 * subscriptions 3.37 parses it with @segment/fql-ts 1.10: the same
 * tokens, the same grouping (a group's operator is the last "and"/"or"
 * in it, parentheses do not nest) and the same comparisons.  Parsing
 * happens once, at configuration time; matching a message only compares
 * values.
 */


#ifndef _LDSEG_FQL_H_INCLUDED_
#define _LDSEG_FQL_H_INCLUDED_


#include <ldseg.h>
#include <ldseg_value.h>


#define LDSEG_FQL_MAX_LEN  8192


typedef enum {
    LDSEG_FQL_GROUP = 0,
    LDSEG_FQL_TYPE,
    LDSEG_FQL_EVENT,
    LDSEG_FQL_NAME,
    LDSEG_FQL_USER_ID,
    LDSEG_FQL_PROPERTY,
    LDSEG_FQL_TRAIT,
    LDSEG_FQL_CONTEXT
} ldseg_fql_field_e;


typedef enum {
    LDSEG_FQL_OP_UNKNOWN = 0,
    LDSEG_FQL_OP_AND,
    LDSEG_FQL_OP_OR,
    LDSEG_FQL_OP_EQ,
    LDSEG_FQL_OP_NE,
    LDSEG_FQL_OP_NUM_EQ,
    LDSEG_FQL_OP_NUM_NE,
    LDSEG_FQL_OP_LT,
    LDSEG_FQL_OP_LE,
    LDSEG_FQL_OP_GT,
    LDSEG_FQL_OP_GE,
    LDSEG_FQL_OP_CONTAINS,
    LDSEG_FQL_OP_NOT_CONTAINS,
    LDSEG_FQL_OP_STARTS,
    LDSEG_FQL_OP_NOT_STARTS,
    LDSEG_FQL_OP_ENDS,
    LDSEG_FQL_OP_NOT_ENDS,
    LDSEG_FQL_OP_EXISTS,
    LDSEG_FQL_OP_NOT_EXISTS,
    LDSEG_FQL_OP_TRUE,
    LDSEG_FQL_OP_FALSE
} ldseg_fql_op_e;


typedef struct ldseg_fql_s  ldseg_fql_t;

/*
 * A group (field LDSEG_FQL_GROUP, op AND or OR, children) or a condition
 * on a field.  For properties, traits and context, segs are the path
 * below that object (as destination-subscriptions' get() splits it);
 * "path" is the caller's handle for the field's value.
 */
struct ldseg_fql_s {
    ldseg_fql_field_e             field;
    ldseg_fql_op_e                op;
    ldseg_fql_t                 **children;
    size_t                        nchildren;
    char                        **segs;
    size_t                       *seg_lens;
    size_t                        nsegs;
    unsigned                      no_path;   /* get() of "": undefined */
    char                         *str;       /* String(expected), UTF-8 */
    size_t                        str_len;
    double                        num;       /* Number(expected) */
    unsigned                      path;

    /* the node reads "type" only: its result for each ldseg_endpoint_e */
    unsigned                      type_only;
    unsigned                      type_mask;
};


/* the value of a condition's field in the message being matched */
typedef const ldseg_mv_t *(*ldseg_fql_get_pt)(void *ctx,
    const ldseg_fql_t *cond);


/*
 * Parses s (not NUL-terminated) into a tree allocated from ar (which
 * keeps it).  NULL: invalid, with a sentence in err (or ar->nomem).
 */
ldseg_fql_t *ldseg_fql_parse(const char *s, size_t len, ldseg_arena_t *ar,
    char *err, size_t err_len);

/*
 * Whether a message of type "type" matches: 1 or 0; -1 when get()
 * failed (an arena limit), which the caller reports.
 */
int ldseg_fql_match(const ldseg_fql_t *fql, ldseg_endpoint_e type,
    ldseg_fql_get_pt get, void *ctx, ldseg_arena_t *ar);


#endif /* _LDSEG_FQL_H_INCLUDED_ */

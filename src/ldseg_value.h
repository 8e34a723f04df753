
/*
 * Copyright (C) ldseg authors
 *
 * JavaScript values for the mappings: a value is either a span of the
 * message (a validated JSON token, copied verbatim when it is written
 * out unchanged) or built while a mapping runs.  The few JavaScript
 * operations Segment's mapping-kit relies on are here: property access
 * the way its get() walks a path, String(), JSON.stringify(),
 * JSON.parse() and the object member order of JSON.parse().  Everything
 * is allocated from an arena with a byte limit, so that what a message
 * may make a mapping build is bounded by its size.
 */


#ifndef _LDSEG_VALUE_H_INCLUDED_
#define _LDSEG_VALUE_H_INCLUDED_


#include <ldseg.h>
#include <ldseg_json.h>


typedef enum {
    LDSEG_MV_UNDEFINED = 0,
    LDSEG_MV_NULL,
    LDSEG_MV_FALSE,
    LDSEG_MV_TRUE,
    LDSEG_MV_NUMBER,
    LDSEG_MV_STRING,
    LDSEG_MV_ARRAY,
    LDSEG_MV_OBJECT
} ldseg_mv_type_e;


typedef struct ldseg_mv_s  ldseg_mv_t;

/*
 * STRING: p/len is the JSON-escaped content, without the quotes (esc: it
 *     may hold escapes).
 * NUMBER: num; p/len is the message's token, or p is NULL.
 * ARRAY, OBJECT: p/len is the message's token, or p is NULL and child
 *     lists the elements (members carry key/key_len/key_esc, escaped like
 *     strings); a built object never has two members with one key.
 */
struct ldseg_mv_s {
    ldseg_mv_type_e               type;
    unsigned                      esc;
    unsigned                      key_esc;
    double                        num;
    const char                   *p;
    size_t                        len;
    const char                   *key;
    size_t                        key_len;
    const ldseg_mv_t             *child;
    ldseg_mv_t                   *next;
};


typedef struct {
    const char                   *key;
    size_t                        key_len;
    unsigned                      key_esc;
    const ldseg_mv_t             *val;
} ldseg_mv_member_t;


typedef struct ldseg_arena_block_s  ldseg_arena_block_t;

typedef struct {
    ldseg_allocator_t             a;         /* a copy */
    ldseg_arena_block_t          *blocks;
    ldseg_arena_block_t          *cur;
    ldseg_arena_block_t          *large;
    char                         *pos;
    char                         *end;
    size_t                        used;
    size_t                        limit;
    unsigned                      over;      /* the limit was reached */
    unsigned                      nomem;     /* the allocator failed */
} ldseg_arena_t;


/* a string being built in an arena */
typedef struct {
    ldseg_arena_t                *ar;
    char                         *p;
    size_t                        len;
    size_t                        cap;
    unsigned                      failed;
    unsigned                      throws;    /* String() would throw */
} ldseg_buf_t;


extern const ldseg_mv_t  ldseg_mv_undefined;
extern const ldseg_mv_t  ldseg_mv_null;
extern const ldseg_mv_t  ldseg_mv_true;
extern const ldseg_mv_t  ldseg_mv_false;
extern const ldseg_mv_t  ldseg_mv_empty;


/*
 * The arena: blocks from the allocator, reused after a reset; at most
 * limit bytes are handed out between resets.  ldseg_arena_alloc() returns
 * NULL with over or nomem set.
 */
void ldseg_arena_init(ldseg_arena_t *ar, const ldseg_allocator_t *a,
    size_t limit);
/* the same with buf (8-byte aligned, the caller's) as its first block */
void ldseg_arena_init_buf(ldseg_arena_t *ar, const ldseg_allocator_t *a,
    size_t limit, void *buf, size_t size);
void *ldseg_arena_alloc(ldseg_arena_t *ar, size_t size);
void ldseg_arena_reset(ldseg_arena_t *ar, size_t limit);
void ldseg_arena_free(ldseg_arena_t *ar);

void ldseg_buf_init(ldseg_buf_t *b, ldseg_arena_t *ar);
void ldseg_buf_add(ldseg_buf_t *b, const char *s, size_t len);
/* appends decoded UTF-8 as JSON string content (JSON.stringify escapes) */
void ldseg_buf_escape(ldseg_buf_t *b, const char *s, size_t len);

/*
 * A value of the message's token (LDSEG_JSON_NONE: undefined); key and
 * next are not set: link a copy (ldseg_mv_copy()).
 */
void ldseg_mv_token(ldseg_mv_t *v, const ldseg_json_val_t *tok);
ldseg_mv_t *ldseg_mv_new(ldseg_arena_t *ar, ldseg_mv_type_e type);
ldseg_mv_t *ldseg_mv_copy(ldseg_arena_t *ar, const ldseg_mv_t *v);
ldseg_mv_t *ldseg_mv_string(ldseg_arena_t *ar, const char *p, size_t len,
    unsigned esc);
ldseg_mv_t *ldseg_mv_number(ldseg_arena_t *ar, double num);

/* JavaScript falsiness: undefined, null, false, 0, NaN, "" */
int ldseg_mv_falsy(const ldseg_mv_t *v);

/*
 * v[key] for an object, array or string v (key decoded UTF-8): own
 * members only, the last of duplicate keys, array and string indexes and
 * "length" (UTF-16 units).  Anything else gives undefined.  NULL: the
 * arena failed.
 */
const ldseg_mv_t *ldseg_mv_get(ldseg_arena_t *ar, const ldseg_mv_t *v,
    const char *key, size_t len);

/* the members of an object in JSON.parse() order, duplicates resolved */
ldseg_rc_t ldseg_mv_members(ldseg_arena_t *ar, const ldseg_mv_t *v,
    ldseg_mv_member_t **members, size_t *n);

/*
 * A built object of the members m[0..n) (keys escaped), in JSON.parse()
 * order: a duplicate key keeps the first one's place and the last one's
 * value.  NULL: the arena failed.
 */
const ldseg_mv_t *ldseg_mv_object(ldseg_arena_t *ar,
    const ldseg_mv_member_t *m, size_t n);

/* the elements of an array (span or built), in order */
ldseg_rc_t ldseg_mv_elements(ldseg_arena_t *ar, const ldseg_mv_t *v,
    const ldseg_mv_t ***elts, size_t *n);

/* the decoded UTF-8 of a string value (a pointer into it if unescaped) */
ldseg_rc_t ldseg_mv_decode(ldseg_arena_t *ar, const ldseg_mv_t *s,
    const char **p, size_t *len);

/*
 * String(v), as JSON string content, appended to b; b->failed and
 * b->throws when String() throws in the reference (an object with a
 * "toString" or "__proto__" key).
 */
void ldseg_mv_to_string(ldseg_buf_t *b, const ldseg_mv_t *v);

/*
 * JSON.stringify(v) appended to b; returns 0 (nothing appended) when
 * JSON.stringify() gives undefined.
 */
int ldseg_mv_stringify(ldseg_buf_t *b, const ldseg_mv_t *v);

/*
 * JSON.parse() of the decoded text s, or NULL (with ar->over and
 * ar->nomem clear) when it is not JSON.
 */
const ldseg_mv_t *ldseg_mv_parse(ldseg_arena_t *ar, const char *s,
    size_t len);

/*
 * The JSON text of v as an event carries it (the value mapping-kit
 * produced, after removeUndefined() copied it): tokens of the message
 * verbatim, undefined and "__proto__" members left out, undefined
 * elements and non-finite numbers null; with clean (the message holds
 * such values), the message's objects and arrays are rewritten that way
 * too.  dst NULL: the length only.  v must not be undefined.
 */
size_t ldseg_mv_write(const ldseg_mv_t *v, char *dst, unsigned clean);

/* v is an array whose String() is "" (mapping-kit's @if "blank") */
int ldseg_mv_blank(const ldseg_mv_t *v);

/*
 * In validated JSON (no bound needed): the closing quote of the string
 * whose contents start at p, and the byte after the value at p (the
 * translation's data rewrite uses them too)
 */
const char *ldseg_mv_string_end(const char *p);
const char *ldseg_mv_skip(const char *p);


#endif /* _LDSEG_VALUE_H_INCLUDED_ */

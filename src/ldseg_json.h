
/*
 * Copyright (C) ldseg authors
 *
 * A strict (RFC 8259), single-pass, validating JSON scanner that records
 * byte spans instead of building a tree.  Nothing is allocated.
 */


#ifndef _LDSEG_JSON_H_INCLUDED_
#define _LDSEG_JSON_H_INCLUDED_


#include <ldseg.h>


typedef enum {
    LDSEG_JSON_NONE = 0,          /* absent */
    LDSEG_JSON_NULL,
    LDSEG_JSON_FALSE,
    LDSEG_JSON_TRUE,
    LDSEG_JSON_NUMBER,
    LDSEG_JSON_STRING,
    LDSEG_JSON_ARRAY,
    LDSEG_JSON_OBJECT
} ldseg_json_type_e;


/* one value: p/len is the whole token ("..." with quotes, {...}, 12.5) */
typedef struct {
    const char                   *p;
    size_t                        len;
    ldseg_json_type_e             type;
} ldseg_json_val_t;


typedef struct ldseg_json_key_s  ldseg_json_key_t;
typedef struct ldseg_json_s      ldseg_json_t;

/*
 * Parses (and validates) the value at p for a key, at nesting depth
 * "depth", filling v; returns as ldseg_json_value().
 */
typedef const char *(*ldseg_json_handler_pt)(ldseg_json_t *js,
    const char *p, unsigned depth, ldseg_json_val_t *v);

/*
 * A key the caller wants from an object: its value goes to vals[slot]
 * (last occurrence wins).  With sub, an object value is scanned with that
 * table too (its slots are cleared first).  With handler, the handler
 * parses the value and fills vals[slot] instead.
 */
struct ldseg_json_key_s {
    const char                   *name;
    size_t                        len;
    unsigned                      slot;
    ldseg_json_handler_pt         handler;
    const ldseg_json_key_t       *sub;
    size_t                        nsub;
};


struct ldseg_json_s {
    const char                   *end;
    unsigned                      max_depth;
    const char                   *code;      /* why the scan failed */
    void                         *ctx;       /* for handlers */

    /*
     * Counts the values JavaScript's JSON.parse() and JSON.stringify()
     * do not give back as sent: numbers out of a double's range (they
     * become Infinity, written as null) and "__proto__" keys (copying
     * the object sets its prototype instead).  Zeroed by the caller.
     */
    unsigned                      odd;
};


/*
 * Validates and skips the value at p (leading whitespace allowed) that sits
 * at nesting depth "depth" (0 for a document's top value).  Returns the
 * byte after the value, or NULL with js->code set ("invalid_json",
 * "too_deep" or a handler's code).  v may be NULL.
 */
const char *ldseg_json_value(ldseg_json_t *js, const char *p, unsigned depth,
    ldseg_json_val_t *v);

/*
 * Validates and skips the object at p ('{' after optional whitespace),
 * filling vals[] for the keys of the table.  Returns as ldseg_json_value().
 */
const char *ldseg_json_object(ldseg_json_t *js, const char *p, unsigned depth,
    const ldseg_json_key_t *keys, size_t nkeys, ldseg_json_val_t *vals);

/* records a failure (the first one wins); returns NULL */
const char *ldseg_json_fail(ldseg_json_t *js, const char *code);

/* whether the key token (quotes included; esc: it has escapes) is __proto__ */
int ldseg_json_key_proto(const char *key, size_t len, unsigned esc);

/* skips JSON whitespace */
const char *ldseg_json_ws(const char *p, const char *end);

/*
 * Checks that [p, p + len) is exactly one JSON value with optional
 * surrounding whitespace.  LDSEG_OK or LDSEG_EINVAL.
 */
ldseg_rc_t ldseg_json_validate(const char *p, size_t len, unsigned max_depth);

/*
 * The end of the value at p (no whitespace before it) without validating
 * it: strings are skipped to their closing quote and containers by their
 * brackets.  Never reads past end, on any bytes; NULL when the value does
 * not end before end.  v may be NULL.
 */
const char *ldseg_json_skip(const char *p, const char *end,
    ldseg_json_val_t *v);

/*
 * Walks the elements of a validated array token: *pp starts at '[' (or
 * just after a previous element); returns 1 with v set, 0 at the end.
 */
int ldseg_json_array_next(const char **pp, const char *end,
    ldseg_json_val_t *v);

/*
 * Walks the members of a validated object token: *pp starts at '{' (or
 * just after a previous member); returns 1 with the name (a string token)
 * and the value set, 0 at the end.
 */
int ldseg_json_object_next(const char **pp, const char *end,
    ldseg_json_val_t *name, ldseg_json_val_t *value);

/*
 * Decodes a validated string token (with its quotes) into dst, which must
 * hold tok_len bytes; lone surrogates become U+FFFD.  Returns the length.
 */
size_t ldseg_json_string_decode(const char *tok, size_t tok_len, char *dst);

/*
 * The same for the contents of a validated string, without its quotes;
 * dst must hold len bytes.
 */
size_t ldseg_json_unescape(const char *s, size_t len, char *dst);

/* four hex digits at p into *cp: 0, or -1 if they are not hex digits */
int ldseg_json_hex(const char *p, unsigned *cp);

/* writes code point cp as UTF-8 (1 to 4 bytes); returns the length */
size_t ldseg_json_put_utf8(char *dst, unsigned cp);


#endif /* _LDSEG_JSON_H_INCLUDED_ */

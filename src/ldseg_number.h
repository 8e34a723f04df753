
/*
 * Copyright (C) ldseg authors
 *
 * Numbers the JavaScript way: JSON number tokens to doubles, JS
 * ToNumber() over strings and Number.prototype.toString() formatting,
 * so that ids and metric values come out as Segment's destination makes
 * them.
 */


#ifndef _LDSEG_NUMBER_H_INCLUDED_
#define _LDSEG_NUMBER_H_INCLUDED_


#include <ldseg.h>


/* enough for any double formatted by ldseg_number_format() */
#define LDSEG_NUMBER_LEN  32


/*
 * Converts a validated JSON number token to the nearest double, correctly
 * rounded whatever its length (overflow gives +-HUGE_VAL).
 */
double ldseg_number_parse(const char *p, size_t len);

/*
 * JavaScript ToNumber() over a string that is already decoded (UTF-8):
 * trims JS whitespace, "" -> 0, decimal, "Infinity", 0x/0o/0b.
 * LDSEG_OK with *v set, or LDSEG_EINVAL when the result would be NaN.
 */
ldseg_rc_t ldseg_number_from_string(const char *p, size_t len, double *v);

/*
 * Formats v as JavaScript's String(v) does (shortest round trip, the same
 * switch to exponent notation).  dst must hold LDSEG_NUMBER_LEN bytes; no
 * NUL is written.  Returns the length.
 */
size_t ldseg_number_format(double v, char *dst);


#endif /* _LDSEG_NUMBER_H_INCLUDED_ */

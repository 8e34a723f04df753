
/*
 * Copyright (C) ldseg authors
 *
 * ISO-8601 timestamps to epoch milliseconds, as Segment's destination
 * reads them.  Pure civil-date arithmetic: no TZ, no libc time functions.
 */


#ifndef _LDSEG_TIME_H_INCLUDED_
#define _LDSEG_TIME_H_INCLUDED_


#include <ldseg.h>


/* the largest |time| a JavaScript Date holds, in milliseconds */
#define LDSEG_TIME_MAX_MS  8640000000000000LL


/*
 * Parses s (not NUL-terminated) into *ms.  Accepted:
 *   YYYY[-MM[-DD]] [(T|t|' ')hh[:mm[:ss[.fraction]]]] [Z|z|(+|-)hh[:]mm]
 * With a zone (JavaScript Date rules): two-digit fields, month 1-12,
 * day 1-31 (rolling over the month end), hh 0-24 (24:00 only), mm and ss
 * 0-59, a time needs minutes.  Without a zone (dayjs rules, UTC): one or
 * two digit fields, any values roll over, years 0-99 mean 1900-1999.
 * Fractions of any length are truncated to milliseconds.
 * Returns LDSEG_OK or LDSEG_EINVAL.
 */
ldseg_rc_t ldseg_time_parse(const char *s, size_t len, int64_t *ms);

/*
 * The same; fast 0 skips the shortcut for YYYY-MM-DDTHH:mm:ss[.f]Z and
 * its zones (tests check that both ways agree).
 */
ldseg_rc_t ldseg_time_read(const char *s, size_t len, int fast, int64_t *ms);

/* days from 1970-01-01 to the proleptic Gregorian date y-m-d (m 1-12) */
int64_t ldseg_time_days(int64_t y, int64_t m, int64_t d);

/*
 * Segment's clock-skew correction: a message stamped "ts" by a client
 * whose clock said "sent" when it sent the message, received when the
 * server's clock said "received", happened at received - (sent - ts):
 * the client's clock is trusted for the interval, not for the instant.
 * All three in epoch milliseconds within +-LDSEG_TIME_MAX_MS.  Returns
 * LDSEG_OK with *ms set, or LDSEG_EINVAL (*ms untouched) when the result
 * would be outside JavaScript's date range.
 */
ldseg_rc_t ldseg_time_skew(int64_t ts, int64_t sent, int64_t received,
    int64_t *ms);


#endif /* _LDSEG_TIME_H_INCLUDED_ */

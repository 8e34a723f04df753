
/*
 * Copyright (C) ldseg authors
 *
 * Timestamps as Segment's destination reads them: dayjs(s), which sends
 * a string that does not end with "Z" through its loose pattern
 *
 *   ^(\d{4})[-/]?(\d{1,2})?[-/]?(\d{0,2})[Tt\s]*(\d{1,2})?:?(\d{1,2})?:?
 *    (\d{1,2})?[.:]?(\d+)?$
 *
 * and Date.UTC()-style arithmetic (everything rolls over), and every
 * other string through JavaScript's Date.parse() (V8's DateParser: the
 * ES5 ISO format, then its legacy parser).  Where that reading is not
 * what the string says, ldseg differs on purpose (README.md, "Deliberate
 * differences"): a fraction is a decimal fraction of a second (dayjs
 * reads ".5" as 5 ms), a year written with three or four digits is that
 * year (dayjs and the legacy parser read 0050 as 1950 and 0010 as 2010),
 * and it refuses what the loose pattern splits into no date (1995-152 as
 * the 152nd month, 1727365857) and zone-less strings only the legacy
 * parser reads (May 4 2022: the reference's local time).
 */


#include <ldseg_time.h>


#define LDSEG_TIME_NONE  INT32_MAX

/* the loose pattern's captures: 7 groups, start and length (-1: unset) */
typedef struct {
    const char                   *s;
    size_t                        len;
    int                           g[7][2];
} ldseg_time_loose_t;


static int ldseg_time_ws(const char *s, size_t len, size_t i);
static int ldseg_time_loose_match(ldseg_time_loose_t *lm, int el,
    size_t pos);
static int64_t ldseg_time_group(const ldseg_time_loose_t *lm, int g,
    int64_t def);
static size_t ldseg_time_digits(const char *s, size_t len, size_t i);
static int ldseg_time_clock(const char *s, size_t len, size_t *i);
static int ldseg_time_loose_readable(const char *s, size_t len);
static ldseg_rc_t ldseg_time_loose(const char *s, size_t len, int64_t *ms);
static ldseg_rc_t ldseg_time_v8(const char *s, size_t len, int64_t *ms);
static ldseg_rc_t ldseg_time_iso(const char *s, size_t len, int64_t *ms);
static int64_t ldseg_time_make(int64_t y, int64_t mon, int64_t d, int64_t h,
    int64_t mi, int64_t sec, int64_t msec);


int64_t
ldseg_time_days(int64_t y, int64_t m, int64_t d)
{
    int64_t  era, yoe, doy, doe;

    /* H. Hinnant's days_from_civil */

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/* MakeDate(MakeDay(y, mon, d), MakeTime(...)): mon 0-based, rolls over */

static int64_t
ldseg_time_make(int64_t y, int64_t mon, int64_t d, int64_t h, int64_t mi,
    int64_t sec, int64_t msec)
{
    int64_t  q;

    q = (mon >= 0) ? mon / 12 : -((11 - mon) / 12);
    y += q;
    mon -= q * 12;

    return (ldseg_time_days(y, mon + 1, 1) + d - 1) * 86400000
           + h * 3600000 + mi * 60000 + sec * 1000 + msec;
}


/*
 * The length of the JavaScript white space (\s) at s[i], 0 if none:
 * ASCII tab to carriage return and space, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF.
 */

static int
ldseg_time_ws(const char *s, size_t len, size_t i)
{
    unsigned char  c, c1, c2;

    c = (unsigned char) s[i];

    if (c == ' ' || (c >= '\t' && c <= '\r')) {
        return 1;
    }

    if (c == 0xc2 && i + 1 < len && (unsigned char) s[i + 1] == 0xa0) {
        return 2;
    }

    if (i + 2 >= len) {
        return 0;
    }

    c1 = (unsigned char) s[i + 1];
    c2 = (unsigned char) s[i + 2];

    if ((c == 0xe1 && c1 == 0x9a && c2 == 0x80)
        || (c == 0xe2 && c1 == 0x80 && (c2 <= 0x8a || c2 == 0xa8
                                        || c2 == 0xa9 || c2 == 0xaf))
        || (c == 0xe2 && c1 == 0x81 && c2 == 0x9f)
        || (c == 0xe3 && c1 == 0x80 && c2 == 0x80)
        || (c == 0xef && c1 == 0xbb && c2 == 0xbf))
    {
        return 3;
    }

    return 0;
}


/*
 * Matches the loose pattern's elements from el on at pos, greedy with
 * backtracking as JavaScript's RegExp does; 1 with the groups set.
 * Elements: 0 (\d{4}), 1 [-/]?, 2 (\d{1,2})?, 3 [-/]?, 4 (\d{0,2}),
 * 5 [Tt\s]*, 6 (\d{1,2})?, 7 :?, 8 (\d{1,2})?, 9 :?, 10 (\d{1,2})?,
 * 11 [.:]?, 12 (\d+)?$.  At most 4 * 3 * 2 * 3 * 2 * 3 * 2 * 3 * 2 ways
 * are tried after the white space, whose only useful stop is its end.
 */

static int
ldseg_time_loose_match(ldseg_time_loose_t *lm, int el, size_t pos)
{
    int          g, w;
    size_t       n, max, min, stops[64], nstops;
    const char  *s;

    static const int  group[12] = { 0, -1, 1, -1, 2, -1, 3, -1, 4, -1, 5,
                                    -1 };

    s = lm->s;

    switch (el) {

    case 12:
        /* (\d+)?$: only every digit left can reach the end */
        n = ldseg_time_digits(s, lm->len, pos);
        lm->g[6][0] = (int) pos;
        lm->g[6][1] = (n == 0) ? -1 : (int) n;

        return pos + n == lm->len;

    case 1:
    case 3:
    case 7:
    case 9:
    case 11:
        if (pos < lm->len
            && ((el <= 3 && (s[pos] == '-' || s[pos] == '/'))
                || (el >= 7 && el <= 9 && s[pos] == ':')
                || (el == 11 && (s[pos] == '.' || s[pos] == ':')))
            && ldseg_time_loose_match(lm, el + 1, pos + 1))
        {
            return 1;
        }

        return ldseg_time_loose_match(lm, el + 1, pos);

    case 5:
        /* [Tt\s]*: every stop, longest first */
        nstops = 0;
        stops[nstops++] = pos;

        while (pos < lm->len && nstops < 64) {
            w = (s[pos] == 'T' || s[pos] == 't') ? 1
                                                 : ldseg_time_ws(s, lm->len,
                                                                 pos);
            if (w == 0) {
                break;
            }

            pos += (size_t) w;
            stops[nstops++] = pos;
        }

        if (pos < lm->len && nstops == 64) {
            /* longer runs of white space: no timestamp */
            return 0;
        }

        while (nstops-- > 0) {
            if (ldseg_time_loose_match(lm, 6, stops[nstops])) {
                return 1;
            }
        }

        return 0;

    default:
        break;
    }

    /* digit groups */

    g = group[el];
    min = (el == 0) ? 4 : 0;
    max = (el == 0) ? 4 : 2;

    n = ldseg_time_digits(s, lm->len, pos);

    if (n > max) {
        n = max;
    }

    for ( ;; ) {
        if (n < min) {
            return 0;
        }

        lm->g[g][0] = (int) pos;
        lm->g[g][1] = (n == 0 && el != 4) ? -1 : (int) n;

        if (ldseg_time_loose_match(lm, el + 1, pos + n)) {
            return 1;
        }

        if (n == 0) {
            lm->g[g][1] = -1;
            return 0;
        }

        n--;
    }
}


static size_t
ldseg_time_digits(const char *s, size_t len, size_t i)
{
    size_t  n;

    for (n = 0; i + n < len && s[i + n] >= '0' && s[i + n] <= '9'; n++) {
        /* void */
    }

    return n;
}


/* a group's number; def if unset or empty */

static int64_t
ldseg_time_group(const ldseg_time_loose_t *lm, int g, int64_t def)
{
    int      i;
    int64_t  v;

    if (lm->g[g][1] <= 0) {
        return def;
    }

    v = 0;

    for (i = 0; i < lm->g[g][1]; i++) {
        v = v * 10 + (lm->s[lm->g[g][0] + i] - '0');
    }

    return v;
}


/*
 * A time after a date, at *i: h[h][:m[m][:s[s]]] or hh[mm[ss]] (pieces
 * that run together have two digits each); moves *i past it.
 */

static int
ldseg_time_clock(const char *s, size_t len, size_t *i)
{
    int     k;
    size_t  n, p;

    p = *i;
    n = ldseg_time_digits(s, len, p);

    if (n == 4 || n == 6) {
        *i = p + n;
        return 1;
    }

    if (n == 0 || n > 2) {
        return 0;
    }

    p += n;

    for (k = 0; k < 2 && p + 1 < len && s[p] == ':'; k++) {
        n = ldseg_time_digits(s, len, p + 1);

        if (n == 0 || n > 2) {
            break;
        }

        p += 1 + n;
    }

    *i = p;

    return 1;
}


/*
 * What of the loose pattern ldseg reads (README.md): a date
 * YYYY[(-|/)M[M][(-|/)D[D]]], with an optional time after [Tt\s]+, or a
 * date written together, YYYYMM[DD] (month 01-12, day 01-31), with an
 * optional time after [Tt\s]* once the day is there; a time is
 * ldseg_time_clock()'s with an optional fraction "[.:]digits".
 */

static int
ldseg_time_loose_readable(const char *s, size_t len)
{
    int     w;
    size_t  i, n, k;

    i = 4;
    n = ldseg_time_digits(s, len, i);

    if (n == 0) {

        /* separated */

        for (k = 0; k < 2 && i < len && (s[i] == '-' || s[i] == '/'); k++) {
            n = ldseg_time_digits(s, len, i + 1);

            if (n == 0 || n > 2) {
                return 0;
            }

            i += 1 + n;
        }

        if (i == len) {
            return 1;
        }

        w = (s[i] == 'T' || s[i] == 't') ? 1 : ldseg_time_ws(s, len, i);

        if (w == 0) {
            return 0;
        }

    } else {

        /* together */

        if (n != 2 && n != 4) {
            if (n < 4) {
                return 0;
            }

            n = 4;
        }

        k = (size_t) ((s[4] - '0') * 10 + (s[5] - '0'));

        if (k < 1 || k > 12) {
            return 0;
        }

        if (n == 2) {
            return i + 2 == len;
        }

        k = (size_t) ((s[6] - '0') * 10 + (s[7] - '0'));

        if (k < 1 || k > 31) {
            return 0;
        }

        i += 4;
        w = 0;
    }

    while (i < len) {
        w = (s[i] == 'T' || s[i] == 't') ? 1 : ldseg_time_ws(s, len, i);

        if (w == 0) {
            break;
        }

        i += (size_t) w;
    }

    if (i < len && s[i] >= '0' && s[i] <= '9'
        && !ldseg_time_clock(s, len, &i))
    {
        return 0;
    }

    if (i < len && (s[i] == '.' || s[i] == ':')) {
        n = ldseg_time_digits(s, len, i + 1);

        if (n == 0) {
            return 0;
        }

        i += 1 + n;
    }

    return i == len;
}


/*
 * The loose pattern: LDSEG_OK with *ms, LDSEG_EINVAL for a refused form,
 * LDSEG_EAGAIN (LDSEG_ETOOBIG here) if the pattern does not match.
 */

static ldseg_rc_t
ldseg_time_loose(const char *s, size_t len, int64_t *ms)
{
    int                 i;
    int64_t             y, mon, d, frac, scale;
    ldseg_time_loose_t  lm;

    lm.s = s;
    lm.len = len;

    for (i = 0; i < 7; i++) {
        lm.g[i][0] = 0;
        lm.g[i][1] = -1;
    }

    for (i = 0; (size_t) i < len; i++) {
        if ((s[i] < '0' || s[i] > ':') && s[i] != '-' && s[i] != '/'
            && s[i] != '.' && s[i] != 'T' && s[i] != 't' && s[i] != ' '
            && (s[i] < '\t' || s[i] > '\r') && (unsigned char) s[i] < 0x80)
        {
            return LDSEG_ETOOBIG;
        }
    }

    if (!ldseg_time_loose_match(&lm, 0, 0)) {
        return LDSEG_ETOOBIG;
    }

    if (!ldseg_time_loose_readable(s, len)) {
        return LDSEG_EINVAL;
    }

    y = ldseg_time_group(&lm, 0, 0);

    /* d[2] - 1 || 0: "0" is month -1; d[3] || 1: "00" is day 0 */
    mon = (lm.g[1][1] > 0) ? ldseg_time_group(&lm, 1, 0) - 1 : 0;
    d = (lm.g[2][1] > 0) ? ldseg_time_group(&lm, 2, 0) : 1;

    /* the fraction as a decimal fraction, truncated to milliseconds */

    frac = 0;

    if (lm.g[6][1] > 0) {
        scale = 100;

        for (i = 0; i < lm.g[6][1] && i < 3; i++) {
            frac += (s[lm.g[6][0] + i] - '0') * scale;
            scale /= 10;
        }
    }

    *ms = ldseg_time_make(y, mon, d, ldseg_time_group(&lm, 3, 0),
                          ldseg_time_group(&lm, 4, 0),
                          ldseg_time_group(&lm, 5, 0), frac);

    return LDSEG_OK;
}


/* V8's DateParser (src/date/dateparser*): tokens and composers */

typedef enum {
    LDSEG_TOK_END = 0,
    LDSEG_TOK_NUMBER,
    LDSEG_TOK_SYMBOL,
    LDSEG_TOK_WS,
    LDSEG_TOK_UNKNOWN,
    LDSEG_TOK_MONTH,
    LDSEG_TOK_ZONE,
    LDSEG_TOK_TSEP,
    LDSEG_TOK_AMPM,
    LDSEG_TOK_WORD                /* a keyword V8 does not know */
} ldseg_tok_e;


typedef struct {
    ldseg_tok_e                   type;
    int                           value;     /* number, symbol, keyword */
    int                           len;
} ldseg_tok_t;


typedef struct {
    const char                   *s;
    size_t                        len;
    size_t                        pos;
    ldseg_tok_t                   next;
} ldseg_v8_scan_t;


typedef struct {
    int                           comp[3];
    int                           digits[3];
    int                           n;
    int                           named_month;
    int                           iso;
} ldseg_v8_day_t;


typedef struct {
    int                           comp[4];
    int                           n;
    int                           hour_offset;
} ldseg_v8_time_t;


typedef struct {
    int                           sign;
    int                           hour;
    int                           minute;
} ldseg_v8_tz_t;


static const struct {
    char                          k[4];
    ldseg_tok_e                   type;
    int                           value;
} ldseg_v8_keywords[] = {
    { "jan", LDSEG_TOK_MONTH, 1 }, { "feb", LDSEG_TOK_MONTH, 2 },
    { "mar", LDSEG_TOK_MONTH, 3 }, { "apr", LDSEG_TOK_MONTH, 4 },
    { "may", LDSEG_TOK_MONTH, 5 }, { "jun", LDSEG_TOK_MONTH, 6 },
    { "jul", LDSEG_TOK_MONTH, 7 }, { "aug", LDSEG_TOK_MONTH, 8 },
    { "sep", LDSEG_TOK_MONTH, 9 }, { "oct", LDSEG_TOK_MONTH, 10 },
    { "nov", LDSEG_TOK_MONTH, 11 }, { "dec", LDSEG_TOK_MONTH, 12 },
    { "am", LDSEG_TOK_AMPM, 0 }, { "pm", LDSEG_TOK_AMPM, 12 },
    { "ut", LDSEG_TOK_ZONE, 0 }, { "utc", LDSEG_TOK_ZONE, 0 },
    { "z", LDSEG_TOK_ZONE, 0 }, { "gmt", LDSEG_TOK_ZONE, 0 },
    { "cdt", LDSEG_TOK_ZONE, -5 }, { "cst", LDSEG_TOK_ZONE, -6 },
    { "edt", LDSEG_TOK_ZONE, -4 }, { "est", LDSEG_TOK_ZONE, -5 },
    { "mdt", LDSEG_TOK_ZONE, -6 }, { "mst", LDSEG_TOK_ZONE, -7 },
    { "pdt", LDSEG_TOK_ZONE, -7 }, { "pst", LDSEG_TOK_ZONE, -8 },
    { "t", LDSEG_TOK_TSEP, 0 }
};


#define ldseg_between(x, lo, hi)                                             \
    ((unsigned) ((x) - (lo)) <= (unsigned) ((hi) - (lo)))
#define ldseg_is_minute(x)  ldseg_between(x, 0, 59)
#define ldseg_is_hour(x)    ldseg_between(x, 0, 23)
#define ldseg_is_month(x)   ldseg_between(x, 1, 12)
#define ldseg_is_day(x)     ldseg_between(x, 1, 31)


static ldseg_tok_t
ldseg_v8_scan(ldseg_v8_scan_t *sc)
{
    int            n, i;
    char           pre[3];
    size_t         start, k;
    ldseg_tok_t    t;
    unsigned char  c;

    t.value = 0;
    t.len = 0;

    if (sc->pos >= sc->len || sc->s[sc->pos] == '\0') {
        /* V8 reads a NUL as the end */
        t.type = LDSEG_TOK_END;
        return t;
    }

    start = sc->pos;
    c = (unsigned char) sc->s[sc->pos];

    if (c >= '0' && c <= '9') {
        n = 0;
        i = 0;

        while (sc->pos < sc->len && sc->s[sc->pos] >= '0'
               && sc->s[sc->pos] <= '9')
        {
            if (i < 9) {
                n = n * 10 + (sc->s[sc->pos] - '0');
            }

            i++;
            sc->pos++;
        }

        t.type = LDSEG_TOK_NUMBER;
        t.value = n;
        t.len = (int) (sc->pos - start);
        return t;
    }

    if (c == ':' || c == '-' || c == '+' || c == '.' || c == ')') {
        sc->pos++;
        t.type = LDSEG_TOK_SYMBOL;
        t.value = c;
        t.len = 1;
        return t;
    }

    if (c >= 'A') {
        /* a word: characters >= 'A' (UTF-8 bytes of non-ASCII ones too) */
        n = 0;

        while (sc->pos < sc->len
               && (unsigned char) sc->s[sc->pos] >= 'A')
        {
            c = (unsigned char) sc->s[sc->pos];

            if (n < 3) {
                pre[n] = (c >= 'A' && c <= 'Z') ? (char) (c + 32) : (char) c;
            }

            /* one UTF-16 unit per code point below U+10000, else two */
            if (c < 0x80 || (c & 0xc0) == 0xc0) {
                n += (c >= 0xf0) ? 2 : 1;
            }

            sc->pos++;
        }

        t.type = LDSEG_TOK_WORD;
        t.len = n;

        for (k = 0; k < sizeof(ldseg_v8_keywords)
                        / sizeof(ldseg_v8_keywords[0]); k++)
        {
            for (i = 0; i < 3; i++) {
                if (ldseg_v8_keywords[k].k[i]
                    != (i < n ? pre[i] : '\0'))
                {
                    break;
                }
            }

            /* a word longer than a keyword: month names only */
            if (i == 3
                && (n <= 3 || ldseg_v8_keywords[k].type == LDSEG_TOK_MONTH))
            {
                t.type = ldseg_v8_keywords[k].type;
                t.value = ldseg_v8_keywords[k].value;
                break;
            }
        }

        return t;
    }

    n = ldseg_time_ws(sc->s, sc->len, sc->pos);

    if (n != 0 || c == '\n' || c == '\r') {
        sc->pos += (size_t) (n ? n : 1);
        t.type = LDSEG_TOK_WS;
        t.len = 1;
        return t;
    }

    if (c == '(') {
        n = 0;

        do {
            if (sc->s[sc->pos] == ')') {
                n--;

            } else if (sc->s[sc->pos] == '(') {
                n++;
            }

            sc->pos++;
        } while (n > 0 && sc->pos < sc->len && sc->s[sc->pos] != '\0');

        t.type = LDSEG_TOK_UNKNOWN;
        return t;
    }

    sc->pos++;
    t.type = LDSEG_TOK_UNKNOWN;

    return t;
}


static ldseg_tok_t
ldseg_v8_next(ldseg_v8_scan_t *sc)
{
    ldseg_tok_t  t;

    t = sc->next;
    sc->next = ldseg_v8_scan(sc);

    return t;
}


static int
ldseg_v8_skip(ldseg_v8_scan_t *sc, int sym)
{
    if (sc->next.type == LDSEG_TOK_SYMBOL && sc->next.value == sym) {
        sc->next = ldseg_v8_scan(sc);
        return 1;
    }

    return 0;
}


#define ldseg_v8_fixed(t, n)                                                 \
    ((t).type == LDSEG_TOK_NUMBER && (t).len == (n))
#define ldseg_v8_sign(t)                                                     \
    ((t).type == LDSEG_TOK_SYMBOL && ((t).value == '+' || (t).value == '-'))
#define ldseg_v8_z(t)                                                        \
    ((t).type == LDSEG_TOK_ZONE && (t).len == 1 && (t).value == 0)


static int
ldseg_v8_ms(ldseg_tok_t t)
{
    int  n, len;

    n = t.value;
    len = t.len;

    if (len == 1) {
        return n * 100;
    }

    if (len == 2) {
        return n * 10;
    }

    if (len > 9) {
        len = 9;
    }

    while (len-- > 3) {
        n /= 10;
    }

    return n;
}


static int
ldseg_v8_day_add(ldseg_v8_day_t *day, int n, int digits)
{
    if (day->n == 3) {
        return 0;
    }

    day->digits[day->n] = digits;
    day->comp[day->n++] = n;

    return 1;
}


static int
ldseg_v8_time_add(ldseg_v8_time_t *tm, int n)
{
    if (tm->n == 4) {
        return 0;
    }

    tm->comp[tm->n++] = n;

    return 1;
}


static int
ldseg_v8_time_final(ldseg_v8_time_t *tm, int n)
{
    if (!ldseg_v8_time_add(tm, n)) {
        return 0;
    }

    while (tm->n < 4) {
        tm->comp[tm->n++] = 0;
    }

    return 1;
}


static int
ldseg_v8_time_expecting(const ldseg_v8_time_t *tm, int n)
{
    return (tm->n == 1 && ldseg_is_minute(n))
           || (tm->n == 2 && ldseg_is_minute(n))
           || (tm->n == 3 && ldseg_between(n, 0, 999));
}


static void
ldseg_v8_tz_set(ldseg_v8_tz_t *tz, int hours)
{
    tz->sign = (hours < 0) ? -1 : 1;
    tz->hour = hours * tz->sign;
    tz->minute = 0;
}


/* ParseES5DateTime(): the token to go on with; type UNKNOWN + len -1: invalid */

static ldseg_tok_t
ldseg_v8_es5(ldseg_v8_scan_t *sc, ldseg_v8_day_t *day, ldseg_v8_time_t *tm,
    ldseg_v8_tz_t *tz)
{
    int          sign, year, h24, hm;
    ldseg_tok_t  t, invalid;

    invalid.type = LDSEG_TOK_UNKNOWN;
    invalid.value = 0;
    invalid.len = -1;

    if (ldseg_v8_sign(sc->next)) {
        t = ldseg_v8_next(sc);

        if (!ldseg_v8_fixed(sc->next, 6)) {
            return t;
        }

        sign = (t.value == '+') ? 1 : -1;
        year = ldseg_v8_next(sc).value;

        if (sign < 0 && year == 0) {
            return t;
        }

        (void) ldseg_v8_day_add(day, sign * year, 6);

    } else if (ldseg_v8_fixed(sc->next, 4)) {
        (void) ldseg_v8_day_add(day, ldseg_v8_next(sc).value, 4);

    } else {
        return ldseg_v8_next(sc);
    }

    if (ldseg_v8_skip(sc, '-')) {
        if (!ldseg_v8_fixed(sc->next, 2) || !ldseg_is_month(sc->next.value)) {
            return ldseg_v8_next(sc);
        }

        (void) ldseg_v8_day_add(day, ldseg_v8_next(sc).value, 2);

        if (ldseg_v8_skip(sc, '-')) {
            if (!ldseg_v8_fixed(sc->next, 2)
                || !ldseg_is_day(sc->next.value))
            {
                return ldseg_v8_next(sc);
            }

            (void) ldseg_v8_day_add(day, ldseg_v8_next(sc).value, 2);
        }
    }

    if (sc->next.type != LDSEG_TOK_TSEP) {
        if (sc->next.type != LDSEG_TOK_END) {
            return ldseg_v8_next(sc);
        }

    } else {
        (void) ldseg_v8_next(sc);

        if (!ldseg_v8_fixed(sc->next, 2) || !ldseg_between(sc->next.value, 0, 24))
        {
            return invalid;
        }

        h24 = (sc->next.value == 24);
        (void) ldseg_v8_time_add(tm, ldseg_v8_next(sc).value);

        if (!ldseg_v8_skip(sc, ':')) {
            return invalid;
        }

        if (!ldseg_v8_fixed(sc->next, 2) || !ldseg_is_minute(sc->next.value)
            || (h24 && sc->next.value > 0))
        {
            return invalid;
        }

        (void) ldseg_v8_time_add(tm, ldseg_v8_next(sc).value);

        if (ldseg_v8_skip(sc, ':')) {
            if (!ldseg_v8_fixed(sc->next, 2)
                || !ldseg_is_minute(sc->next.value)
                || (h24 && sc->next.value > 0))
            {
                return invalid;
            }

            (void) ldseg_v8_time_add(tm, ldseg_v8_next(sc).value);

            if (ldseg_v8_skip(sc, '.')) {
                if (sc->next.type != LDSEG_TOK_NUMBER
                    || (h24 && sc->next.value > 0))
                {
                    return invalid;
                }

                (void) ldseg_v8_time_add(tm, ldseg_v8_ms(ldseg_v8_next(sc)));
            }
        }

        if (ldseg_v8_z(sc->next)) {
            (void) ldseg_v8_next(sc);
            ldseg_v8_tz_set(tz, 0);

        } else if (ldseg_v8_sign(sc->next)) {
            tz->sign = (ldseg_v8_next(sc).value == '+') ? 1 : -1;

            if (ldseg_v8_fixed(sc->next, 4)) {
                hm = ldseg_v8_next(sc).value;

                if (!ldseg_is_hour(hm / 100) || !ldseg_is_minute(hm % 100)) {
                    return invalid;
                }

                tz->hour = hm / 100;
                tz->minute = hm % 100;

            } else {
                if (!ldseg_v8_fixed(sc->next, 2)
                    || !ldseg_is_hour(sc->next.value))
                {
                    return invalid;
                }

                tz->hour = ldseg_v8_next(sc).value;

                if (!ldseg_v8_skip(sc, ':')) {
                    return invalid;
                }

                if (!ldseg_v8_fixed(sc->next, 2)
                    || !ldseg_is_minute(sc->next.value))
                {
                    return invalid;
                }

                tz->minute = ldseg_v8_next(sc).value;
            }
        }

        if (sc->next.type != LDSEG_TOK_END) {
            return invalid;
        }
    }

    /* date-only forms without an offset are UTC */

    if (tz->hour == LDSEG_TIME_NONE && tm->n == 0) {
        ldseg_v8_tz_set(tz, 0);
    }

    day->iso = 1;

    t.type = LDSEG_TOK_END;
    t.value = 0;
    t.len = 0;

    return t;
}


/*
 * Date.parse() as V8 does it, except (README.md) that a zone-less string
 * the legacy parser reads is refused and a year written with three or
 * more digits is not moved into 1950-2049.
 */

static ldseg_rc_t
ldseg_time_v8(const char *s, size_t len, int64_t *ms)
{
    int               n, read_number, legacy, year, mon, d, i, len_n;
    int               h, mi, sec, msec;
    int64_t           t;
    ldseg_tok_t       tok, peek;
    ldseg_v8_tz_t     tz;
    ldseg_v8_day_t    day;
    ldseg_v8_time_t   tm;
    ldseg_v8_scan_t   sc;

    sc.s = s;
    sc.len = len;
    sc.pos = 0;
    sc.next = ldseg_v8_scan(&sc);

    day.n = 0;
    day.named_month = LDSEG_TIME_NONE;
    day.iso = 0;
    tm.n = 0;
    tm.hour_offset = LDSEG_TIME_NONE;
    tz.sign = LDSEG_TIME_NONE;
    tz.hour = LDSEG_TIME_NONE;
    tz.minute = LDSEG_TIME_NONE;

    tok = ldseg_v8_es5(&sc, &day, &tm, &tz);

    if (tok.type == LDSEG_TOK_UNKNOWN && tok.len == -1) {
        return LDSEG_EINVAL;
    }

    read_number = (day.n != 0);
    legacy = 0;

    for ( ; tok.type != LDSEG_TOK_END; tok = ldseg_v8_next(&sc)) {

        if (tok.type == LDSEG_TOK_NUMBER) {
            legacy = 1;
            read_number = 1;
            n = tok.value;

            if (ldseg_v8_skip(&sc, ':')) {
                if (ldseg_v8_skip(&sc, ':')) {
                    if (tm.n != 0) {
                        return LDSEG_EINVAL;
                    }

                    (void) ldseg_v8_time_add(&tm, n);
                    (void) ldseg_v8_time_add(&tm, 0);

                } else {
                    if (!ldseg_v8_time_add(&tm, n)) {
                        return LDSEG_EINVAL;
                    }

                    if (sc.next.type == LDSEG_TOK_SYMBOL
                        && sc.next.value == '.')
                    {
                        (void) ldseg_v8_next(&sc);
                    }
                }

            } else if (ldseg_v8_skip(&sc, '.')
                       && ldseg_v8_time_expecting(&tm, n))
            {
                /* V8 takes the '.' whether or not a time follows */
                (void) ldseg_v8_time_add(&tm, n);

                if (sc.next.type != LDSEG_TOK_NUMBER) {
                    return LDSEG_EINVAL;
                }

                if (!ldseg_v8_time_final(&tm,
                                         ldseg_v8_ms(ldseg_v8_next(&sc))))
                {
                    return LDSEG_EINVAL;
                }

            } else if (tz.hour != LDSEG_TIME_NONE
                       && tz.minute == LDSEG_TIME_NONE
                       && ldseg_is_minute(n))
            {
                tz.minute = n;

            } else if (ldseg_v8_time_expecting(&tm, n)) {
                if (!ldseg_v8_time_final(&tm, n)) {
                    return LDSEG_EINVAL;
                }

                peek = sc.next;

                if (peek.type != LDSEG_TOK_END && peek.type != LDSEG_TOK_WS
                    && !ldseg_v8_z(peek) && !ldseg_v8_sign(peek))
                {
                    return LDSEG_EINVAL;
                }

            } else {
                if (!ldseg_v8_day_add(&day, n, tok.len)) {
                    return LDSEG_EINVAL;
                }

                (void) ldseg_v8_skip(&sc, '-');
            }

        } else if (tok.type >= LDSEG_TOK_MONTH) {
            legacy = 1;

            if (tok.type == LDSEG_TOK_AMPM && tm.n != 0) {
                tm.hour_offset = tok.value;

            } else if (tok.type == LDSEG_TOK_MONTH) {
                day.named_month = tok.value;
                (void) ldseg_v8_skip(&sc, '-');

            } else if (tok.type == LDSEG_TOK_ZONE && read_number) {
                ldseg_v8_tz_set(&tz, tok.value);

            } else {
                if (read_number || sc.next.type == LDSEG_TOK_NUMBER) {
                    return LDSEG_EINVAL;
                }
            }

        } else if (ldseg_v8_sign(tok)
                   && ((tz.hour == 0 && tz.minute == 0) || tm.n != 0))
        {
            legacy = 1;
            tz.sign = (tok.value == '+') ? 1 : -1;
            n = 0;
            len_n = 0;

            if (sc.next.type == LDSEG_TOK_NUMBER) {
                peek = ldseg_v8_next(&sc);
                len_n = peek.len;
                n = peek.value;
            }

            read_number = 1;

            if (sc.next.type == LDSEG_TOK_SYMBOL && sc.next.value == ':') {
                tz.hour = n;
                tz.minute = LDSEG_TIME_NONE;

            } else if (len_n == 1 || len_n == 2) {
                tz.hour = n;
                tz.minute = 0;

            } else if (len_n == 3 || len_n == 4) {
                tz.hour = n / 100;
                tz.minute = n % 100;

            } else {
                return LDSEG_EINVAL;
            }

        } else if ((ldseg_v8_sign(tok)
                    || (tok.type == LDSEG_TOK_SYMBOL && tok.value == ')'))
                   && read_number)
        {
            return LDSEG_EINVAL;
        }
    }

    /* DayComposer::Write() */

    if (day.n < 1) {
        return LDSEG_EINVAL;
    }

    while (day.n < 3) {
        day.digits[day.n] = 0;
        day.comp[day.n++] = 1;
    }

    year = 0;
    i = -1;

    /* a first number of three or more digits is a year, as written */

    if (day.named_month == LDSEG_TIME_NONE) {
        if (day.iso || !ldseg_is_day(day.comp[0]) || day.digits[0] > 2) {
            year = day.comp[0];
            i = 0;
            mon = day.comp[1];
            d = day.comp[2];

        } else {
            mon = day.comp[0];
            d = day.comp[1];
            year = day.comp[2];
            i = 2;
        }

    } else {
        mon = day.named_month;

        if (!ldseg_is_day(day.comp[0]) || day.digits[0] > 2) {
            year = day.comp[0];
            i = 0;
            d = day.comp[1];

        } else {
            d = day.comp[0];
            year = day.comp[1];
            i = 1;
        }
    }

    if (!day.iso && (i < 0 || day.digits[i] <= 2)) {
        if (ldseg_between(year, 0, 49)) {
            year += 2000;

        } else if (ldseg_between(year, 50, 99)) {
            year += 1900;
        }
    }

    if (!ldseg_is_month(mon) || !ldseg_is_day(d)) {
        return LDSEG_EINVAL;
    }

    if (year > 300000 || year < -300000) {
        /* beyond TimeClip()'s +-275760 years; V8 reads up to 9 digits */
        return LDSEG_EINVAL;
    }

    /* TimeComposer::Write() */

    while (tm.n < 4) {
        tm.comp[tm.n++] = 0;
    }

    h = tm.comp[0];
    mi = tm.comp[1];
    sec = tm.comp[2];
    msec = tm.comp[3];

    if (tm.hour_offset != LDSEG_TIME_NONE) {
        if (!ldseg_between(h, 0, 12)) {
            return LDSEG_EINVAL;
        }

        h = h % 12 + tm.hour_offset;
    }

    if (!ldseg_is_hour(h) || !ldseg_is_minute(mi) || !ldseg_is_minute(sec)
        || !ldseg_between(msec, 0, 999))
    {
        if (h != 24 || mi != 0 || sec != 0 || msec != 0) {
            return LDSEG_EINVAL;
        }
    }

    /* TimeZoneComposer::Write(); no offset: local time */

    if (tz.sign == LDSEG_TIME_NONE) {
        if (legacy || !day.iso) {
            /* the reference's local time: refused (README.md) */
            return LDSEG_EINVAL;
        }

        tz.sign = 1;
        tz.hour = 0;
        tz.minute = 0;
    }

    if (tz.hour == LDSEG_TIME_NONE) {
        tz.hour = 0;
    }

    if (tz.minute == LDSEG_TIME_NONE) {
        tz.minute = 0;
    }

    if ((int64_t) tz.hour * 3600 + (int64_t) tz.minute * 60 > 0x3fffffff) {
        return LDSEG_EINVAL;
    }

    t = ldseg_time_make(year, mon - 1, d, h, mi, sec, msec)
        - tz.sign * ((int64_t) tz.hour * 3600000
                     + (int64_t) tz.minute * 60000);

    *ms = t;

    return LDSEG_OK;
}


/*
 * The form nearly every client sends, read without the tokenizer: what
 * V8's ES5 path reads of YYYY-MM-DDTHH:mm[:ss[.fraction]] with a zone (Z,
 * +HH:mm, +HHmm).  LDSEG_ETOOBIG: not this form (the general readers
 * decide), LDSEG_EINVAL: this form, out of range.
 */

static ldseg_rc_t
ldseg_time_iso(const char *s, size_t len, int64_t *ms)
{
    int      i, n;
    int64_t  v[6], frac, scale, off;

    /* the shape "dddd-dd-ddTdd:dd" */

#define ldseg_dd(i)  ((unsigned) (s[i] - '0') <= 9                            \
                      && (unsigned) (s[(i) + 1] - '0') <= 9)

    if (len < sizeof("dddd-dd-ddTdd:dd")
        || !(ldseg_dd(0) && ldseg_dd(2) && s[4] == '-' && ldseg_dd(5)
             && s[7] == '-' && ldseg_dd(8) && (s[10] == 'T' || s[10] == 't')
             && ldseg_dd(11) && s[13] == ':' && ldseg_dd(14)))
    {
        return LDSEG_ETOOBIG;
    }

#undef ldseg_dd

#define ldseg_d2(p)  ((int64_t) ((p)[0] - '0') * 10 + ((p)[1] - '0'))

    v[0] = ldseg_d2(s) * 100 + ldseg_d2(s + 2);
    v[1] = ldseg_d2(s + 5);
    v[2] = ldseg_d2(s + 8);
    v[3] = ldseg_d2(s + 11);
    v[4] = ldseg_d2(s + 14);
    v[5] = 0;
    frac = 0;
    i = 16;

    if (i + 2 < (int) len && s[i] == ':' && s[i + 1] >= '0'
        && s[i + 1] <= '9' && s[i + 2] >= '0' && s[i + 2] <= '9')
    {
        v[5] = ldseg_d2(s + i + 1);
        i += 3;

        if (i < (int) len && s[i] == '.') {
            i++;
            scale = 100;

            for (n = 0; i < (int) len && s[i] >= '0' && s[i] <= '9'; n++) {
                frac += (s[i] - '0') * scale;
                scale /= 10;
                i++;
            }

            if (n == 0) {
                return LDSEG_ETOOBIG;
            }
        }
    }

    /* the zone */

    if (i >= (int) len) {
        /* none: the loose pattern's reading */
        return LDSEG_ETOOBIG;
    }

    if (i + 1 == (int) len && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;

    } else if ((s[i] == '+' || s[i] == '-')
               && ((i + 6 == (int) len && s[i + 3] == ':')
                   || i + 5 == (int) len))
    {
        n = (i + 6 == (int) len) ? 4 : 3;

        if (s[i + 1] < '0' || s[i + 1] > '9' || s[i + 2] < '0'
            || s[i + 2] > '9' || s[i + n] < '0' || s[i + n] > '9'
            || s[i + n + 1] < '0' || s[i + n + 1] > '9')
        {
            return LDSEG_ETOOBIG;
        }

        off = ldseg_d2(s + i + 1) * 60 + ldseg_d2(s + i + n);

        if (ldseg_d2(s + i + 1) > 23 || ldseg_d2(s + i + n) > 59) {
            return LDSEG_EINVAL;
        }

        if (s[i] == '-') {
            off = -off;
        }

    } else {
        return LDSEG_ETOOBIG;
    }

#undef ldseg_d2

    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 24
        || v[4] > 59 || v[5] > 59
        || (v[3] == 24 && (v[4] != 0 || v[5] != 0 || frac != 0)))
    {
        return LDSEG_EINVAL;
    }

    *ms = ldseg_time_make(v[0], v[1] - 1, v[2], v[3], v[4], v[5], frac)
          - off * 60000;

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_time_parse(const char *s, size_t len, int64_t *ms)
{
    return ldseg_time_read(s, len, 1, ms);
}


ldseg_rc_t
ldseg_time_read(const char *s, size_t len, int fast, int64_t *ms)
{
    ldseg_rc_t  rc;

    if (len == 0) {
        return LDSEG_EINVAL;
    }

    rc = fast ? ldseg_time_iso(s, len, ms) : LDSEG_ETOOBIG;

    if (rc == LDSEG_ETOOBIG && s[len - 1] != 'Z' && s[len - 1] != 'z') {
        rc = ldseg_time_loose(s, len, ms);
    }

    if (rc == LDSEG_ETOOBIG) {
        rc = ldseg_time_v8(s, len, ms);
    }

    if (rc != LDSEG_OK) {
        return LDSEG_EINVAL;
    }

    /* TimeClip() */

    if (*ms > LDSEG_TIME_MAX_MS || *ms < -LDSEG_TIME_MAX_MS) {
        return LDSEG_EINVAL;
    }

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_time_skew(int64_t ts, int64_t sent, int64_t received, int64_t *ms)
{
    int64_t  t;

    /* each within +-8.64e15: the sum cannot overflow 64 bits */

    t = received - (sent - ts);

    if (t > LDSEG_TIME_MAX_MS || t < -LDSEG_TIME_MAX_MS) {
        return LDSEG_EINVAL;
    }

    *ms = t;

    return LDSEG_OK;
}


/*
 * Copyright (C) ldseg authors
 *
 * The ISO-8601 reader.  Two sets of rules meet here because the reference
 * does: a string with a zone goes to JavaScript's Date parser (strict
 * ranges), one without goes through dayjs' regular expression and
 * Date.UTC() (anything rolls over).  One deliberate difference: a fraction
 * is always a decimal fraction of a second (dayjs reads ".5" as 5 ms).
 */


#include <ldseg_time.h>


typedef struct {
    int64_t                       v[6];      /* Y M D h m s */
    int                           digits[6];
    int                           present[6];
    int64_t                       frac_ms;
    int                           has_frac;
    int                           zoned;
    int64_t                       offset_min;
} ldseg_time_fields_t;


static const char *ldseg_time_num(const char *p, const char *end, int min,
    int max, int64_t *v, int *n);
static ldseg_rc_t ldseg_time_scan(const char *p, const char *end,
    ldseg_time_fields_t *f);


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


static const char *
ldseg_time_num(const char *p, const char *end, int min, int max, int64_t *v,
    int *n)
{
    int  i;

    *v = 0;

    for (i = 0; i < max && p < end && *p >= '0' && *p <= '9'; i++) {
        *v = *v * 10 + (*p - '0');
        p++;
    }

    *n = i;

    if (i < min) {
        return NULL;
    }

    return p;
}


static ldseg_rc_t
ldseg_time_scan(const char *p, const char *end, ldseg_time_fields_t *f)
{
    int          i, n;
    int64_t      hh, mm, scale;
    const char  *q;

    /* year */

    p = ldseg_time_num(p, end, 4, 4, &f->v[0], &f->digits[0]);
    if (p == NULL) {
        return LDSEG_EINVAL;
    }

    f->present[0] = 1;

    /* -MM[-DD] */

    for (i = 1; i <= 2; i++) {
        if (p == end || *p != '-') {
            break;
        }

        p = ldseg_time_num(p + 1, end, 1, 2, &f->v[i], &f->digits[i]);
        if (p == NULL) {
            return LDSEG_EINVAL;
        }

        f->present[i] = 1;
    }

    /* time */

    if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {

        if (!f->present[2]) {
            return LDSEG_EINVAL;
        }

        p = ldseg_time_num(p + 1, end, 1, 2, &f->v[3], &f->digits[3]);
        if (p == NULL) {
            return LDSEG_EINVAL;
        }

        f->present[3] = 1;

        for (i = 4; i <= 5; i++) {
            if (p == end || *p != ':') {
                break;
            }

            p = ldseg_time_num(p + 1, end, 1, 2, &f->v[i], &f->digits[i]);
            if (p == NULL) {
                return LDSEG_EINVAL;
            }

            f->present[i] = 1;
        }

        if (f->present[5] && p < end && *p == '.') {
            p++;
            q = p;
            scale = 100;

            while (p < end && *p >= '0' && *p <= '9') {
                f->frac_ms += (*p - '0') * scale;
                scale /= 10;
                p++;
            }

            if (p == q) {
                return LDSEG_EINVAL;
            }

            f->has_frac = 1;
        }
    }

    /* zone */

    if (p < end && (*p == 'Z' || *p == 'z')) {
        f->zoned = 1;
        p++;

    } else if (p < end && (*p == '+' || *p == '-')) {

        if (!f->present[3]) {
            return LDSEG_EINVAL;
        }

        q = ldseg_time_num(p + 1, end, 2, 2, &hh, &n);
        if (q == NULL) {
            return LDSEG_EINVAL;
        }

        if (q < end && *q == ':') {
            q++;
        }

        q = ldseg_time_num(q, end, 2, 2, &mm, &n);
        if (q == NULL || hh > 23 || mm > 59) {
            return LDSEG_EINVAL;
        }

        f->offset_min = hh * 60 + mm;

        if (*p == '-') {
            f->offset_min = -f->offset_min;
        }

        f->zoned = 1;
        p = q;
    }

    if (p != end) {
        return LDSEG_EINVAL;
    }

    return LDSEG_OK;
}


ldseg_rc_t
ldseg_time_parse(const char *s, size_t len, int64_t *ms)
{
    int                   i;
    int64_t               y, m, days, t;
    ldseg_time_fields_t   f;

    for (i = 0; i < 6; i++) {
        f.v[i] = 0;
        f.digits[i] = 0;
        f.present[i] = 0;
    }

    f.frac_ms = 0;
    f.has_frac = 0;
    f.zoned = 0;
    f.offset_min = 0;

    if (ldseg_time_scan(s, s + len, &f) != LDSEG_OK) {
        return LDSEG_EINVAL;
    }

    if (!f.present[1]) {
        f.v[1] = 1;
    }

    if (!f.present[2]) {
        f.v[2] = 1;
    }

    y = f.v[0];

    if (f.zoned) {

        for (i = 1; i <= 5; i++) {
            if (f.present[i] && f.digits[i] != 2) {
                return LDSEG_EINVAL;
            }
        }

        if (f.present[3] && !f.present[4]) {
            return LDSEG_EINVAL;
        }

        if (f.v[1] < 1 || f.v[1] > 12 || f.v[2] < 1 || f.v[2] > 31
            || f.v[3] > 24 || f.v[4] > 59 || f.v[5] > 59)
        {
            return LDSEG_EINVAL;
        }

        if (f.v[3] == 24 && (f.v[4] != 0 || f.v[5] != 0 || f.frac_ms != 0)) {
            return LDSEG_EINVAL;
        }

        days = ldseg_time_days(y, f.v[1], 1) + f.v[2] - 1;

    } else {

        /* Date.UTC(y, month - 1, day, ...): everything rolls over */

        if (y < 100) {
            y += 1900;
        }

        m = f.v[1] - 1;
        y += (m >= 0) ? m / 12 : -((11 - m) / 12);
        m -= ((m >= 0) ? m / 12 : -((11 - m) / 12)) * 12;

        days = ldseg_time_days(y, m + 1, 1) + f.v[2] - 1;
    }

    t = days * 86400000
        + f.v[3] * 3600000 + f.v[4] * 60000 + f.v[5] * 1000
        + f.frac_ms
        - f.offset_min * 60000;

    if (t > LDSEG_TIME_MAX_MS || t < -LDSEG_TIME_MAX_MS) {
        return LDSEG_EINVAL;
    }

    *ms = t;

    return LDSEG_OK;
}


/*
 * Copyright (C) ldseg authors
 *
 * JSON helpers for the unit tests that compare with the reference: read a
 * file of the repository (LDSEG_TEST_DIR or "."), and compare events as
 * parsed JSON: key order ignored, numbers as doubles, absent differs from
 * null; with now set, "creationDate" must be UNIT_NOW_MS, the time the
 * test passes to the core.
 */


#ifndef _LDSEG_UNIT_JSON_H_INCLUDED_
#define _LDSEG_UNIT_JSON_H_INCLUDED_


#include <cjson/cJSON.h>

#include "unit.h"


#define UNIT_NOW_MS  1700000000123LL


static UNIT_UNUSED const char *unit_json_dir(void);
static UNIT_UNUSED char *unit_json_read(const char *path, size_t *len);
static UNIT_UNUSED cJSON *unit_json_load(const char *path);
static UNIT_UNUSED int unit_json_equal(const cJSON *a, const cJSON *b,
    int now);


static const char *
unit_json_dir(void)
{
    const char  *d;

    d = getenv("LDSEG_TEST_DIR");

    return (d != NULL) ? d : ".";
}


static char *
unit_json_read(const char *path, size_t *len)
{
    FILE    *f;
    char    *buf, full[1024];
    long     size;

    snprintf(full, sizeof(full), "%s/%s", unit_json_dir(), path);

    f = fopen(full, "rb");
    if (f == NULL) {
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    buf = malloc((size_t) size + 1);
    if (buf == NULL || fread(buf, 1, (size_t) size, f) != (size_t) size) {
        fclose(f);
        free(buf);
        return NULL;
    }

    fclose(f);
    buf[size] = '\0';
    *len = (size_t) size;

    return buf;
}


static cJSON *
unit_json_load(const char *path)
{
    char    *s;
    size_t   len;
    cJSON   *j;

    s = unit_json_read(path, &len);
    if (s == NULL) {
        return NULL;
    }

    j = cJSON_ParseWithLength(s, len);
    free(s);

    return j;
}


static int
unit_json_equal(const cJSON *a, const cJSON *b, int now)
{
    int           n;
    const cJSON  *x, *y;

    if (a == NULL || b == NULL) {
        return a == b;
    }

    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) {
        return a->valuedouble == b->valuedouble;
    }

    if ((a->type & 0xff) != (b->type & 0xff)) {
        return 0;
    }

    if (cJSON_IsString(a)) {
        return strcmp(a->valuestring, b->valuestring) == 0;
    }

    if (cJSON_IsArray(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) {
            return 0;
        }

        for (x = a->child, y = b->child; x != NULL; x = x->next, y = y->next)
        {
            if (!unit_json_equal(x, y, now)) {
                return 0;
            }
        }

        return 1;
    }

    if (cJSON_IsObject(a)) {
        n = 0;

        for (x = a->child; x != NULL; x = x->next) {
            n++;
            y = cJSON_GetObjectItemCaseSensitive(b, x->string);

            if (y == NULL) {
                return 0;
            }

            if (now && strcmp(x->string, "creationDate") == 0) {
                /* a: ours; the expectation is "the time of processing" */
                if (x->valuedouble != (double) UNIT_NOW_MS) {
                    return 0;
                }

                continue;
            }

            if (!unit_json_equal(x, y, 0)) {
                return 0;
            }
        }

        return n == cJSON_GetArraySize(b);
    }

    return 1;
}


#endif /* _LDSEG_UNIT_JSON_H_INCLUDED_ */

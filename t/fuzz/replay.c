
/*
 * Copyright (C) ldseg authors
 *
 * A main() for fuzz targets built without libFuzzer: feeds every file of
 * the directory argv[1] to LLVMFuzzerTestOneInput() once.
 */


#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static int replay_file(const char *path);


static int
replay_file(const char *path)
{
    FILE     *f;
    long      size;
    uint8_t  *buf;

    f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fclose(f);
        return -1;
    }

    /* an exact-size copy, so that ASan catches any over-read */

    buf = malloc(size == 0 ? 1 : (size_t) size);
    if (buf == NULL || fread(buf, 1, (size_t) size, f) != (size_t) size) {
        free(buf);
        fclose(f);
        return -1;
    }

    fclose(f);

    LLVMFuzzerTestOneInput(buf, (size_t) size);
    free(buf);

    return 0;
}


int
main(int argc, char **argv)
{
    DIR            *dir;
    char            path[4096];
    size_t          n;
    struct dirent  *de;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
        return 2;
    }

    dir = opendir(argv[1]);
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }

    n = 0;

    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);

        if (replay_file(path) != 0) {
            fprintf(stderr, "cannot read %s\n", path);
            closedir(dir);
            return 1;
        }

        n++;
    }

    closedir(dir);
    printf("%s: %zu inputs replayed\n", argv[1], n);

    return 0;
}

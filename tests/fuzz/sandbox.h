/*
 * A folder the config and catalog targets may read, and nothing else: paths in a
 * fuzzed config or catalog (catalog folders, sql_file, TLS files, the access log)
 * could name /dev/stdin, /dev/zero or the whole disk. The targets link with
 * -Wl,--wrap for the file calls gateway/config.c and gateway/catalog.c make (fopen,
 * stat, access, scandir, realpath): while `sandbox_active`, a path outside the
 * sandbox folder, or with a ".." segment, is refused with ENOENT. Outside the target's
 * call (libFuzzer reading its corpus) they pass straight through.
 */
#ifndef tollgate_tests_fuzz_sandbox_h
#define tollgate_tests_fuzz_sandbox_h

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"
#include "tollgate/buf.h"

static char sandbox_dir[512];
static size_t sandbox_len;
static int sandbox_active;
static size_t sandbox_refused; /* paths refused so far */

static int sandbox_allows(const char *path)
{
    if (!sandbox_active)
        return 1;
    if (path == NULL || strncmp(path, sandbox_dir, sandbox_len) != 0 || (path[sandbox_len] != '/' && path[sandbox_len] != '\0'))
        goto refused;
    for (const char *p = path + sandbox_len; (p = strstr(p, "/..")) != NULL; p += 3)
        if (p[3] == '/' || p[3] == '\0')
            goto refused;
    return 1;
refused:
    ++sandbox_refused;
    errno = ENOENT;
    return 0;
}

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode)
{
    return sandbox_allows(path) ? __real_fopen(path, mode) : NULL;
}

int __real_stat(const char *path, struct stat *st);
int __wrap_stat(const char *path, struct stat *st);
int __wrap_stat(const char *path, struct stat *st)
{
    return sandbox_allows(path) ? __real_stat(path, st) : -1;
}

int __real_access(const char *path, int mode);
int __wrap_access(const char *path, int mode);
int __wrap_access(const char *path, int mode)
{
    return sandbox_allows(path) ? __real_access(path, mode) : -1;
}

typedef int (*sandbox_filter_t)(const struct dirent *);
typedef int (*sandbox_compar_t)(const struct dirent **, const struct dirent **);
int __real_scandir(const char *path, struct dirent ***list, sandbox_filter_t filter, sandbox_compar_t compar);
int __wrap_scandir(const char *path, struct dirent ***list, sandbox_filter_t filter, sandbox_compar_t compar);
int __wrap_scandir(const char *path, struct dirent ***list, sandbox_filter_t filter, sandbox_compar_t compar)
{
    return sandbox_allows(path) ? __real_scandir(path, list, filter, compar) : -1;
}

char *__real_realpath(const char *path, char *resolved);
char *__wrap_realpath(const char *path, char *resolved);
char *__wrap_realpath(const char *path, char *resolved)
{
    return sandbox_allows(path) ? __real_realpath(path, resolved) : NULL;
}

/* writes `len` bytes to <sandbox>/<name> (folders made as needed) */
static void sandbox_write(const char *name, const void *text, size_t len)
{
    char path[1024];
    int active = sandbox_active;
    sandbox_active = 0;
    snprintf(path, sizeof(path), "%s/%s", sandbox_dir, name);
    for (char *s = strchr(path + sandbox_len + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *fp = fopen(path, "wb");
    FUZZ_ASSERT(fp != NULL, "cannot write %s", path);
    FUZZ_ASSERT(fwrite(text, 1, len, fp) == len || len == 0, "cannot write %s", path);
    FUZZ_ASSERT(fclose(fp) == 0, "cannot write %s", path);
    sandbox_active = active;
}

static int sandbox_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void sandbox_remove(void)
{
    sandbox_active = 0;
    if (sandbox_len != 0)
        nftw(sandbox_dir, sandbox_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* makes the sandbox folder under $TMPDIR (or /tmp), removed at exit */
static void sandbox_init(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(sandbox_dir, sizeof(sandbox_dir), "%s/tgfuzzXXXXXX", base != NULL && base[0] != '\0' ? base : "/tmp");
    FUZZ_ASSERT(mkdtemp(sandbox_dir) != NULL, "mkdtemp %s", sandbox_dir);
    /* the real path: the loader compares realpath()s */
    char *real = realpath(sandbox_dir, NULL);
    FUZZ_ASSERT(real != NULL && strlen(real) < sizeof(sandbox_dir), "realpath %s", sandbox_dir);
    strcpy(sandbox_dir, real);
    free(real);
    sandbox_len = strlen(sandbox_dir);
    atexit(sandbox_remove);
}

/* the checks every error list gets: each names a file of the sandbox and survives JSON */
static inline void check_errors(const tg_errors_t *errs)
{
    for (size_t i = 0; i < errs->n; ++i) {
        const char *m = errs->msgs[i];
        FUZZ_ASSERT(m != NULL && m[0] != '\0', "empty error %zu", i);
        FUZZ_ASSERT(strncmp(m, sandbox_dir, sandbox_len) == 0 && m[sandbox_len] == '/', "error names no file: %s", m);
        tg_buf_t b = {0};
        tg_buf_append_json_string(&b, m, strlen(m));
        fuzz_check_json("error message", b.base, b.len, 0);
        tg_buf_dispose(&b);
    }
}

#endif

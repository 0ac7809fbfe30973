/*
 * Shared by the config and catalog tests: a scratch folder per test for config and
 * catalog files, JSON written with ' for " so that it reads in C, and helpers to
 * parse a config and look for an error message.
 */
#ifndef tollgate_tests_config_fixture_h
#define tollgate_tests_config_fixture_h

#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include "tollgate/config.h"

static char dir[512];

/* a fresh scratch folder under $TEST_TMPDIR (or /tmp) */
static void make_dir(void)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/tgcfgXXXXXX", base != NULL ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_dir(void)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* JSON written with ' for " (and ` for ') so that it reads in C */
static char *j(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; *p != '\0'; ++p)
        *p = *p == '\'' ? '"' : *p == '`' ? '\'' : *p;
    return d;
}

/* writes <dir>/<name> (folders made as needed) from `text` in the ' notation */
static void write_file(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    for (char *s = strchr(path + strlen(dir) + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    char *t = j(text);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp, "cannot write %s", path);
    fputs(t, fp);
    fclose(fp);
    free(t);
}

/* parses `text` (' notation) as <dir>/tollgate.json */
static tg_config_t *parse_config(const char *text, tg_errors_t *errs)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tollgate.json", dir);
    char *t = j(text);
    tg_config_t *cfg = tg_config_parse(t, strlen(t), path, errs);
    free(t);
    return cfg;
}

static void dump(const tg_errors_t *errs)
{
    for (size_t i = 0; i < errs->n; ++i)
        fprintf(stderr, "  error: %s\n", errs->msgs[i]);
}

/* the message holding every one of the given strings (b, c may be NULL), or NULL */
static const char *find_error(const tg_errors_t *errs, const char *a, const char *b, const char *c)
{
    for (size_t i = 0; i < errs->n; ++i) {
        const char *m = errs->msgs[i];
        if (strstr(m, a) != NULL && (b == NULL || strstr(m, b) != NULL) && (c == NULL || strstr(m, c) != NULL))
            return m;
    }
    return NULL;
}

/* asserts that `cfg` was rejected with a message holding `a` (and `b`, `c` when given); frees the errors */
static void assert_rejected(tg_config_t *cfg, tg_errors_t *errs, const char *a, const char *b, const char *c)
{
    if (cfg != NULL || find_error(errs, a, b, c) == NULL)
        dump(errs);
    cr_assert_null(cfg, "expected the config to be rejected");
    cr_assert_not_null(find_error(errs, a, b, c), "no error mentions \"%s\" / \"%s\" / \"%s\"", a, b ? b : "", c ? c : "");
    tg_errors_dispose(errs);
}

#endif

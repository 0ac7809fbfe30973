/*
 * Shared by the fuzz targets: the checks every target makes of what it produced
 * (valid UTF-8, valid JSON), written independently of the code under test, and a
 * failure that aborts with a message (libFuzzer then keeps the input).
 */
#ifndef tollgate_tests_fuzz_common_h
#define tollgate_tests_fuzz_common_h

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

/** aborts with the message when `cond` does not hold */
#define FUZZ_ASSERT(cond, ...)                                                                                                   \
    do {                                                                                                                         \
        if (!(cond)) {                                                                                                           \
            fprintf(stderr, "%s:%d: assertion failed: %s: ", __FILE__, __LINE__, #cond);                                        \
            fprintf(stderr, __VA_ARGS__);                                                                                        \
            fputc('\n', stderr);                                                                                                 \
            abort();                                                                                                             \
        }                                                                                                                        \
    } while (0)

/* RFC 3629 strict UTF-8, by the table (not gateway/util.c's code: an independent oracle) */
static inline int fuzz_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c == 0xe0)
            need = 2, lo = 0xa0;
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
            need = 2;
        else if (c == 0xed)
            need = 2, hi = 0x9f;
        else if (c == 0xf0)
            need = 3, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            need = 3;
        else if (c == 0xf4)
            need = 3, hi = 0x8f;
        else
            return 0;
        if (n - i <= need || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; ++k)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += need + 1;
    }
    return 1;
}

/* a strict RFC 8259 validator (grammar only; strings' UTF-8 is checked apart), independent of gateway/json.c */
struct fuzz_json_t {
    const char *p, *end;
};

static inline void fuzz_json_ws(struct fuzz_json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        ++j->p;
}

static inline int fuzz_json_digits(struct fuzz_json_t *j)
{
    const char *st = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        ++j->p;
    return j->p != st;
}

static inline int fuzz_json_value(struct fuzz_json_t *j, int depth)
{
    if (depth > 10000 || j->p == j->end)
        return 0;
    char c = *j->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        ++j->p;
        fuzz_json_ws(j);
        if (j->p < j->end && *j->p == close)
            return ++j->p, 1;
        for (;;) {
            if (c == '{') {
                if (j->p == j->end || *j->p != '"' || !fuzz_json_value(j, depth + 1))
                    return 0;
                fuzz_json_ws(j);
                if (j->p == j->end || *j->p++ != ':')
                    return 0;
                fuzz_json_ws(j);
            }
            if (!fuzz_json_value(j, depth + 1))
                return 0;
            fuzz_json_ws(j);
            if (j->p == j->end)
                return 0;
            if (*j->p == close)
                return ++j->p, 1;
            if (*j->p++ != ',')
                return 0;
            fuzz_json_ws(j);
        }
    }
    if (c == '"') {
        for (++j->p; j->p < j->end; ++j->p) {
            unsigned char ch = (unsigned char)*j->p;
            if (ch == '"')
                return ++j->p, 1;
            if (ch < 0x20)
                return 0;
            if (ch == '\\') {
                if (++j->p == j->end)
                    return 0;
                if (*j->p == 'u') {
                    for (int k = 0; k < 4; ++k) {
                        if (++j->p == j->end || !((*j->p >= '0' && *j->p <= '9') || (*j->p >= 'a' && *j->p <= 'f') ||
                                                  (*j->p >= 'A' && *j->p <= 'F')))
                            return 0;
                    }
                } else if (strchr("\"\\/bfnrt", *j->p) == NULL || *j->p == '\0') {
                    return 0;
                }
            }
        }
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (c == '-')
            ++j->p;
        if (j->p < j->end && *j->p == '0')
            ++j->p;
        else if (!fuzz_json_digits(j))
            return 0;
        if (j->p < j->end && *j->p == '.') {
            ++j->p;
            if (!fuzz_json_digits(j))
                return 0;
        }
        if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
            ++j->p;
            if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
                ++j->p;
            if (!fuzz_json_digits(j))
                return 0;
        }
        return 1;
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; ++k) {
        size_t n = strlen(lits[k]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[k], n) == 0)
            return j->p += n, 1;
    }
    return 0;
}

/** is s[0, n) exactly one JSON value, whitespace around it allowed? */
static inline int fuzz_json_valid(const char *s, size_t n)
{
    struct fuzz_json_t j = {s, s + n};
    fuzz_json_ws(&j);
    if (!fuzz_json_value(&j, 0))
        return 0;
    fuzz_json_ws(&j);
    return j.p == j.end;
}

/**
 * Asserts that out[0, len) is valid UTF-8 and one valid JSON value; with `keep`,
 * returns it as jansson reads it (NUL escapes allowed: a caller's \u0000 is written
 * back escaped), or NULL when it holds a number jansson cannot (json_decref it).
 */
static inline json_t *fuzz_check_json(const char *what, const char *out, size_t len, int keep)
{
    FUZZ_ASSERT(fuzz_utf8_valid(out, len), "%s is not valid UTF-8: %.*s", what, (int)(len > 2000 ? 2000 : len), out);
    FUZZ_ASSERT(fuzz_json_valid(out, len), "%s is not JSON: %.*s", what, (int)(len > 2000 ? 2000 : len), out);
    if (!keep)
        return NULL;
    json_error_t err;
    json_t *v = json_loadb(out, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    FUZZ_ASSERT(v != NULL || strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL,
                "%s: jansson cannot read it (%s at %d): %.*s", what, err.text, err.position, (int)(len > 2000 ? 2000 : len), out);
    return v;
}

/** are the bytes s[0, n) free of ASCII control characters (a header value or a log line)? */
static inline int fuzz_no_controls(const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

#endif

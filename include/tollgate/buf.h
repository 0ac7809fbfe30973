/*
 * Growable byte buffers and error lists: the two containers every module shares.
 */
#ifndef tollgate__buf_h
#define tollgate__buf_h

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/**
 * A growable byte buffer. Zero-initialise it (`tg_buf_t b = {0};`), append, and
 * `tg_buf_dispose` when done. `base` is always NUL-terminated once anything was
 * appended, so it can be passed to C string functions; `len` excludes the NUL.
 */
typedef struct st_tg_buf_t {
    char *base; /* the bytes; NULL until the first append */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated (including room for the NUL) */
} tg_buf_t;

/** makes room for at least `extra` more bytes (plus the NUL); aborts on OOM */
void tg_buf_reserve(tg_buf_t *b, size_t extra);
/** appends `n` bytes */
static inline void tg_buf_append(tg_buf_t *b, const void *p, size_t n);
/** appends a C string */
static inline void tg_buf_appends(tg_buf_t *b, const char *s);
/** appends one byte */
static inline void tg_buf_appendc(tg_buf_t *b, char c);
/** appends printf-formatted text */
void tg_buf_printf(tg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tg_buf_vprintf(tg_buf_t *b, const char *fmt, va_list ap);
/** appends `s` (`n` bytes of UTF-8) as a quoted JSON string, escaping as RFC 8259 requires */
void tg_buf_append_json_string(tg_buf_t *b, const char *s, size_t n);
/** appends `v` in decimal (no printf: hot paths) */
void tg_buf_append_uint(tg_buf_t *b, uint64_t v);
/** empties the buffer, keeping its memory */
static inline void tg_buf_reset(tg_buf_t *b);
/** frees the memory; the buffer may be reused afterwards */
void tg_buf_dispose(tg_buf_t *b);

/**
 * A list of human-readable error messages (config and catalog validation collects
 * every error before giving up, so `--check` can print them all at once).
 */
typedef struct st_tg_errors_t {
    char **msgs; /* each malloc'd, NUL-terminated */
    size_t n;
} tg_errors_t;

/** appends a printf-formatted message */
void tg_errors_add(tg_errors_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** frees every message and empties the list */
void tg_errors_dispose(tg_errors_t *e);

/* inline defs */

inline void tg_buf_append(tg_buf_t *b, const void *p, size_t n)
{
    if (b->cap - b->len <= n)
        tg_buf_reserve(b, n);
    memcpy(b->base + b->len, p, n);
    b->len += n;
    b->base[b->len] = '\0';
}

inline void tg_buf_appends(tg_buf_t *b, const char *s)
{
    tg_buf_append(b, s, strlen(s));
}

inline void tg_buf_appendc(tg_buf_t *b, char c)
{
    if (b->cap - b->len <= 1)
        tg_buf_reserve(b, 1);
    b->base[b->len++] = c;
    b->base[b->len] = '\0';
}

inline void tg_buf_reset(tg_buf_t *b)
{
    b->len = 0;
    if (b->base != NULL)
        b->base[0] = '\0';
}

#endif

/*
 * Private declarations shared by the gateway's modules: allocation that dies on OOM,
 * fatal errors and logging.
 */
#ifndef tollgate__internal_h
#define tollgate__internal_h

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "tollgate.h" /* the log levels, and the public API the library defines */

#define TG_LIKELY(x) __builtin_expect(!!(x), 1)
#define TG_UNLIKELY(x) __builtin_expect(!!(x), 0)

/** prints file:line and the message to stderr, then aborts */
#define tg_fatal(...) tg__fatal(__FILE__, __LINE__, __VA_ARGS__)
void tg__fatal(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

/** malloc/calloc/realloc/strdup that abort on OOM (h2o_mem_alloc's contract) */
void *tg_malloc(size_t n);
void *tg_calloc(size_t n, size_t sz);
void *tg_realloc(void *p, size_t n);
char *tg_strdup(const char *s);
char *tg_strndup(const char *s, size_t n);

/** the most verbose level logged (TG_LOG_* of tollgate.h; TG_LOG_INFO unless tg_set_log_level) */
extern int tg_log_level;
/** one record: to the embedder's tg_set_log_handler, else a line to stderr (timestamp, level, message) */
void tg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/**
 * copies src into dst (size bytes, NUL included) as one log line's text: \n \r \t become
 * spaces, other control bytes \xHH; stops early rather than cut an escape; returns the length
 */
size_t tg_log_escape(char *dst, size_t size, const char *src);

/** the value of a hex digit, or -1 */
int tg_hex_value(int c);

/**
 * Is `s` a decimal number: -?digits[.digits][(e|E)[+-]?digits]? With `json`, the
 * integer part follows RFC 8259 too (0, or no leading zero).
 */
int tg_is_number(const char *s, size_t len, int json);

/**
 * Length of the strict UTF-8 sequence at s[0] (1 to 4; no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 if the bytes there are not one.
 */
size_t tg_utf8_seq_len(const unsigned char *s, size_t n);

/** is s[0, n) strict UTF-8? */
int tg_utf8_valid(const char *s, size_t n);

/** a condition variable whose timed waits count on CLOCK_MONOTONIC: a wall-clock step must not stall or rush them */
void tg_cond_init_monotonic(pthread_cond_t *cond);

/** FNV-1a over `n` bytes, continuing from `h` (TG_FNV1A_INIT to start) */
#define TG_FNV1A_INIT 0xcbf29ce484222325ull
static inline uint64_t tg_fnv1a(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *c = p, *end = c + n; c != end; ++c)
        h = (h ^ *c) * 0x100000001b3ull;
    return h;
}

/** monotonic clock in milliseconds */
uint64_t tg_now_ms(void);
/** monotonic clock in nanoseconds */
uint64_t tg_now_ns(void);

#endif

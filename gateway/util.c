/*
 * Allocation that dies on OOM, fatal errors, logging and the clock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"

int tg_log_level = TG_LOG_INFO;

/*
 * The embedder's log handler (tg_set_log_handler), or NULL: stderr. Set before any
 * gateway runs (tollgate.h says so), so the two are read without a lock.
 */
static tg_log_fn log_fn;
static void *log_data;

const char *tg_version(void)
{
    return TOLLGATE_VERSION;
}

void tg_set_log_handler(tg_log_fn fn, void *data)
{
    log_fn = fn;
    log_data = data;
}

void tg_set_log_level(int level)
{
    tg_log_level = level < TG_LOG_ERROR ? TG_LOG_ERROR : level > TG_LOG_DEBUG ? TG_LOG_DEBUG : level;
}

void tg__fatal(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(msg, sizeof(msg), "fatal: %s:%d: ", file, line);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    /* the embedder's log sees it too; stderr always does, as the process is about to abort */
    if (log_fn != NULL)
        log_fn(TG_LOG_ERROR, msg, log_data);
    fprintf(stderr, "%s\n", msg);
    abort();
}

void *tg_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL && n != 0)
        tg_fatal("out of memory allocating %zu bytes", n);
    return p;
}

void *tg_calloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (p == NULL && n != 0 && sz != 0)
        tg_fatal("out of memory allocating %zu bytes", n * sz);
    return p;
}

void *tg_realloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL && n != 0)
        tg_fatal("out of memory allocating %zu bytes", n);
    return p;
}

char *tg_strdup(const char *s)
{
    return tg_strndup(s, strlen(s));
}

char *tg_strndup(const char *s, size_t n)
{
    char *d = tg_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void tg_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > tg_log_level)
        return;
    tg_log_fn fn = log_fn;
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    char msg[2048], line[2048 + 64];
    va_list ap;
    va_start(ap, fmt);
    /* an embedder's handler gets the message alone; it has its own timestamps and names */
    int n = fn != NULL ? 0 : snprintf(line, sizeof(line), "%s.%03ldZ tollgate %s: ", ts, now.tv_nsec / 1000000, names[level]);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /*
     * One record a line, whatever the message quotes (libpq's are several lines, ending
     * in a newline; a client's bytes may be anything): line breaks and tabs become
     * spaces, other control bytes \xHH, and trailing blanks go.
     */
    size_t len = tg_log_escape(line + n, sizeof(line) - (size_t)n, msg) + (size_t)n;
    while (len > (size_t)n && line[len - 1] == ' ')
        line[--len] = '\0';
    if (fn != NULL) {
        fn(level, line, log_data);
        return;
    }
    /* One write per line so lines from different threads never interleave. */
    fprintf(stderr, "%s\n", line);
}

size_t tg_log_escape(char *dst, size_t size, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    if (size == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; ++p) {
        unsigned char c = *p;
        if (c == '\n' || c == '\r' || c == '\t') {
            if (len + 1 >= size)
                break;
            dst[len++] = ' ';
        } else if (c < 0x20 || c == 0x7f) {
            if (len + 4 >= size)
                break;
            dst[len++] = '\\', dst[len++] = 'x', dst[len++] = hex[c >> 4], dst[len++] = hex[c & 15];
        } else {
            if (len + 1 >= size)
                break;
            dst[len++] = (char)c;
        }
    }
    dst[len] = '\0';
    return len;
}

uint64_t tg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t tg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

int tg_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Skips digits from s[i]; returns the new index. */
static size_t skip_digits(const char *s, size_t len, size_t i)
{
    while (i < len && s[i] >= '0' && s[i] <= '9')
        ++i;
    return i;
}

int tg_is_number(const char *s, size_t len, int json)
{
    size_t i = 0, start;
    if (i < len && s[i] == '-')
        ++i;
    start = i;
    i = json && i < len && s[i] == '0' ? i + 1 : skip_digits(s, len, i);
    if (i == start)
        return 0;
    if (i < len && s[i] == '.') {
        start = ++i;
        if ((i = skip_digits(s, len, i)) == start)
            return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            ++i;
        start = i;
        if ((i = skip_digits(s, len, i)) == start)
            return 0;
    }
    return i == len;
}

size_t tg_utf8_seq_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n <= need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= need; ++k)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return need + 1;
}

int tg_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            ++i;
            continue;
        }
        size_t k = tg_utf8_seq_len(u + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

void tg_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

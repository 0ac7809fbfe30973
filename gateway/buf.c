/*
 * Growable buffers, JSON string escaping and error lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/buf.h"
#include "internal.h"

void tg_buf_reserve(tg_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need)
        cap *= 2;
    b->base = tg_realloc(b->base, cap);
    b->cap = cap;
}

void tg_buf_vprintf(tg_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(b->base != NULL ? b->base + b->len : NULL, b->base != NULL ? b->cap - b->len : 0, fmt, ap);
    if (n < 0)
        tg_fatal("vsnprintf failed");
    if (b->base == NULL || (size_t)n >= b->cap - b->len) {
        tg_buf_reserve(b, (size_t)n);
        vsnprintf(b->base + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

void tg_buf_printf(tg_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void tg_buf_append_uint(tg_buf_t *b, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    tg_buf_reserve(b, n);
    while (n != 0)
        b->base[b->len++] = digits[--n];
    b->base[b->len] = '\0';
}

void tg_buf_append_json_string(tg_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX (6 bytes), plus the quotes. */
    tg_buf_reserve(b, n * 6 + 2);
    char *d = b->base + b->len;
    *d++ = '"';
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *d++ = (char)c;
            continue;
        }
        if (c >= 0x80) {
            /* JSON is UTF-8: a byte that does not start a whole, strict sequence becomes U+FFFD (6 bytes at most, as reserved) */
            size_t k = tg_utf8_seq_len((const unsigned char *)s + i, n - i);
            if (k == 0) {
                memcpy(d, "\\ufffd", 6);
                d += 6;
            } else {
                memcpy(d, s + i, k);
                d += k;
                i += k - 1;
            }
            continue;
        }
        *d++ = '\\';
        switch (c) {
        case '"':
            *d++ = '"';
            break;
        case '\\':
            *d++ = '\\';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
            break;
        }
    }
    *d++ = '"';
    *d = '\0';
    b->len = (size_t)(d - b->base);
}

void tg_buf_dispose(tg_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

void tg_errors_add(tg_errors_t *e, const char *fmt, ...)
{
    tg_buf_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e->msgs = tg_realloc(e->msgs, sizeof(*e->msgs) * (e->n + 1));
    e->msgs[e->n++] = b.base;
}

void tg_errors_dispose(tg_errors_t *e)
{
    for (size_t i = 0; i < e->n; ++i)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}

/* Request parameters: the path, query string and JSON body become checked PostgreSQL text values. */

/*
 * What is accepted, and how leniently (docs/reference.md says the same to users):
 *
 * - Sources. Path values are percent-decoded ('+' stays '+'); query-string keys and
 *   values are percent-decoded with '+' as space. A query key without '=' has the
 *   value "". Empty `&&` segments are skipped. A query key (or body member) that is
 *   not a parameter of the query taking its value from that place is "unknown
 *   parameter": a path parameter sent in the query string is unknown too. A
 *   body parameter sent in the query string (POST, PUT, PATCH) is "must be in the
 *   JSON body", once, and nothing else is said of it (not "is required").
 *   A scalar sent twice in the query string is "must not be repeated" (no type error
 *   on top). A bad %XX escape is "is not valid percent-encoding" (named by the raw
 *   key when the key itself is bad). Bodies are validated by tg_json_parse (strict
 *   RFC 8259, UTF-8, at most TG_JSON_MAX_DEPTH deep) and never re-serialized: values
 *   are the bytes sent. A key twice in any object makes the body malformed
 *   (TG_PARAMS_BAD_JSON), closing off parameter pollution and documents that two
 *   readers would read differently. Any JSON value that is not an object (array, string, null,
 *   number) is "body must be a JSON object". With TG_PARAMS_BAD_JSON only `detail`
 *   counts; `errors` is not meaningful.
 * - Missing values: the catalog default (already canonical, not re-checked), else
 *   "is required", else SQL NULL. An explicit JSON null is "must not be null" for a
 *   required parameter, else SQL NULL (so null overrides a default).
 * - int2/int4/int8: text is an optional '-' and decimal digits only (no '+', no
 *   spaces; leading zeros allowed, canonical form drops them). From JSON only a number
 *   written as an integer: 3.0, "3" and 1e2 are "must be an integer"; one past the
 *   type (past 64 bits too) is "is out of range for intN".
 * - float4/float8: text is -?digits[.digits][(e|E)[+-]digits] or exactly "NaN",
 *   "Infinity", "-Infinity" (no hex floats, no "inf"). From JSON a number (its text
 *   as written, which PostgreSQL parses as we did), or a JSON string holding exactly one of those three spellings (mirrors the output encoding).
 *   A value that overflows the type, or underflows to zero, is out of range (as
 *   PostgreSQL says).
 * - numeric: the same text grammar (and the same three specials). From JSON a number
 *   or a string in the text grammar, either passed exactly as written (40 digits,
 *   "-0", "1E+2" and "2.50" reach PostgreSQL as such). min/max compare exactly, in
 *   decimal, against the bound as the catalog wrote it; NaN fails every bound.
 * - text: valid UTF-8 (checked here for path/query, by tg_json_parse for bodies), no NUL byte
 *   (a body's \u0000 is "must not contain a NUL character"). From JSON only a string.
 *   max_length counts code points.
 * - bool: text "true"/"false"/"t"/"f"/"1"/"0" (lower case only), JSON true/false;
 *   canonical "true"/"false".
 * - uuid: 8-4-4-4-12 hex digits in either case (no braces, no dashless form);
 *   canonical lower case. From JSON a string.
 * - date: YYYY-MM-DD, years 0001-9999, a real calendar day.
 * - timestamptz: RFC 3339, YYYY-MM-DD(T|t| )HH:MM:SS[.1-9 digits](Z|z|+HH:MM|-HH:MM),
 *   seconds 00-60 (leap second, as PostgreSQL), offset hours 00-15 (PostgreSQL's
 *   limit). The offset is required: a local time would depend on the session's
 *   TimeZone. Canonical: 'T' and 'Z' upper case, the rest as given.
 * - json/jsonb: from a body any JSON value except null (null is SQL NULL), passed as
 *   the bytes the body holds for it (whitespace, key order and number spellings kept;
 *   jsonb then normalizes as PostgreSQL does). From text it must pass tg_json_parse
 *   and is passed as given.
 * - enum applies to the canonical text, for every type (so numbers match as written:
 *   an enum of 1.5 does not take 1.50).
 * - Arrays: from the query string repeated keys (no key at all is "missing": give the
 *   catalog a default of [] to allow empty arrays there); from JSON an array whose
 *   elements follow the JSON rules above, null elements being NULL. (The catalog
 *   refuses array path parameters.) Only the first
 *   bad element of a parameter is reported, as reason "element N <reason>", N from 0
 *   (so a huge bad array cannot make a huge error response). The canonical form is a
 *   PostgreSQL array literal with every element double-quoted, '"' and '\' escaped by
 *   '\', and NULL unquoted. tg_params_check_text on an array parameter checks one
 *   element.
 * - Errors: every bad parameter is reported in one go, in this order: query-string
 *   problems (unknown keys, repeats) in the order seen, unknown body members, then
 *   the parameters in catalog order.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/json.h"
#include "tollgate/params.h"
#include "internal.h"

/* reasons (kept here so the tests and the docs can quote them) */
#define R_REQUIRED "is required"
#define R_NOT_NULL "must not be null"
#define R_UNKNOWN "unknown parameter"
#define R_FROM_TENANT "is the caller's tenant and cannot be sent"
#define R_IN_BODY "must be in the JSON body"
#define R_REPEATED "must not be repeated"
#define R_BAD_ESCAPE "is not valid percent-encoding"
#define R_INTEGER "must be an integer"
#define R_NUMBER "must be a number"
#define R_STRING "must be a string"
#define R_UTF8 "must be valid UTF-8"
#define R_NUL "must not contain a NUL character"
#define R_BOOL "must be a boolean"
#define R_UUID "must be a valid uuid"
#define R_DATE "must be a date (YYYY-MM-DD)"
#define R_TIMESTAMP "must be an RFC 3339 timestamp with an offset"
#define R_JSON "must be valid JSON"
#define R_ARRAY "must be an array"
#define R_STR_(x) #x
#define R_STR(x) R_STR_(x)
#define R_TOO_MANY "must have at most " R_STR(TG_MAX_ARRAY_ITEMS) " items"

static char *pool_strndup(h2o_mem_pool_t *pool, const char *s, size_t n)
{
    char *d = h2o_mem_alloc_pool(pool, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static const char *pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof(tmp))
        return pool_strndup(pool, tmp, (size_t)n);
    char *d = h2o_mem_alloc_pool(pool, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

/* Writes `d` in the shortest "%.Ng" form that reads back as the same double; returns the length. */
static int format_double(char *buf, size_t cap, double d)
{
    int n = 0;
    for (int prec = 15; prec <= 17; ++prec) {
        n = snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return n;
}

static const char *format_int(h2o_mem_pool_t *pool, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    return pool_strndup(pool, tmp, (size_t)n);
}

/* UTF-8 */

/* code points in valid UTF-8 */
static size_t utf8_count(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; ++i)
        count += ((unsigned char)s[i] & 0xc0) != 0x80;
    return count;
}

/* percent-decoding */

char *tg_percent_decode(const char *s, size_t len, int plus_is_space, h2o_mem_pool_t *pool, size_t *out_len)
{
    char *d = h2o_mem_alloc_pool(pool, len + 1), *p = d;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (c == '%') {
            int h, l;
            if (len - i < 3 || (h = tg_hex_value((unsigned char)s[i + 1])) < 0 || (l = tg_hex_value((unsigned char)s[i + 2])) < 0)
                return NULL;
            *p++ = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            *p++ = ' ';
        } else {
            *p++ = c;
        }
    }
    *p = '\0';
    if (out_len != NULL)
        *out_len = (size_t)(p - d);
    return d;
}

/* scalar checks */

/* Parses -?digits into `*out`: 0, -1 on bad syntax, -2 if it does not fit 64 bits. */
static int parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (len > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == len)
        return -1;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    int overflow = 0;
    for (; i < len; ++i) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (v > (limit - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (overflow)
        return -2;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* names of the integer types, for range messages (tg_type_name lives in the catalog module, which depends on this one) */
static const char *int_type_name(tg_type_t t)
{
    return t == TG_TYPE_INT2 ? "int2" : t == TG_TYPE_INT4 ? "int4" : "int8";
}

static const char *check_int_value(const tg_param_t *p, int64_t v, h2o_mem_pool_t *pool, const char **canon)
{
    if ((p->type == TG_TYPE_INT2 && (v < INT16_MIN || v > INT16_MAX)) ||
        (p->type == TG_TYPE_INT4 && (v < INT32_MIN || v > INT32_MAX)))
        return pool_printf(pool, "is out of range for %s", int_type_name(p->type));
    if (p->has_min && v < p->imin)
        return pool_printf(pool, "must be at least %lld", (long long)p->imin);
    if (p->has_max && v > p->imax)
        return pool_printf(pool, "must be at most %lld", (long long)p->imax);
    *canon = format_int(pool, v);
    return NULL;
}

static int is_special_float(const char *s, size_t len)
{
    return (len == 3 && memcmp(s, "NaN", 3) == 0) || (len == 8 && memcmp(s, "Infinity", 8) == 0) ||
           (len == 9 && memcmp(s, "-Infinity", 9) == 0);
}

static const char *format_bound(h2o_mem_pool_t *pool, const char *what, double b)
{
    char tmp[40];
    format_double(tmp, sizeof(tmp), b);
    return pool_printf(pool, "must be at %s %s", what, tmp);
}

/*
 * A finite decimal in the text grammar (-?digits[.digits][(e|E)[+-]digits], leading
 * zeros allowed) seen as 0.D x 10^exp: D its significant digits, no leading or trailing
 * zeros, read in place (the '.' is skipped over).
 */
struct st_decimal_t {
    int neg;
    const char *first; /* the first significant digit */
    const char *dot;   /* the '.', or NULL */
    size_t n;          /* significant digits; 0: the value is zero */
    int64_t exp;
};

static void decimal_read(const char *s, size_t len, struct st_decimal_t *d)
{
    const char *end = s + len, *p = s;
    *d = (struct st_decimal_t){0};
    if (p < end && *p == '-')
        d->neg = 1, ++p;
    const char *mant_end = p;
    while (mant_end < end && *mant_end != 'e' && *mant_end != 'E')
        ++mant_end;
    /* the exponent, saturated far beyond anything PostgreSQL accepts, so order is kept */
    if (mant_end < end) {
        const char *e = mant_end + 1;
        int eneg = 0;
        if (*e == '+' || *e == '-')
            eneg = *e++ == '-';
        for (; e < end; ++e)
            if (d->exp < ((int64_t)1 << 40))
                d->exp = d->exp * 10 + (*e - '0');
        if (eneg)
            d->exp = -d->exp;
    }
    d->dot = memchr(p, '.', (size_t)(mant_end - p));
    size_t int_digits = (size_t)((d->dot != NULL ? d->dot : mant_end) - p), leading = 0;
    /* skip leading zeros, on both sides of the '.' */
    const char *q = p;
    while (q < mant_end && (*q == '0' || *q == '.')) {
        if (*q == '0')
            ++leading;
        ++q;
    }
    if (q == mant_end)
        return; /* zero */
    d->first = q;
    const char *last = mant_end - 1;
    while (*last == '0' || *last == '.')
        --last;
    d->n = (size_t)(last - q + 1) - (d->dot != NULL && d->dot > q && d->dot < last ? 1 : 0);
    d->exp += (int64_t)int_digits - (int64_t)leading;
}

static int decimal_digit(const struct st_decimal_t *d, size_t k)
{
    const char *p = d->first + k;
    if (d->dot != NULL && p >= d->dot && d->first < d->dot)
        ++p;
    return *p - '0';
}

/* -1, 0, 1 as a < b, a == b, a > b */
static int decimal_cmp(const struct st_decimal_t *a, const struct st_decimal_t *b)
{
    int sa = a->n == 0 ? 0 : a->neg ? -1 : 1, sb = b->n == 0 ? 0 : b->neg ? -1 : 1;
    if (sa != sb || sa == 0)
        return (sa > sb) - (sa < sb);
    int mag = 0; /* |a| against |b| */
    if (a->exp != b->exp) {
        mag = a->exp > b->exp ? 1 : -1;
    } else {
        size_t n = a->n < b->n ? a->n : b->n;
        for (size_t k = 0; k < n && mag == 0; ++k)
            mag = decimal_digit(a, k) - decimal_digit(b, k);
        if (mag == 0)
            mag = (a->n > b->n) - (a->n < b->n); /* the longer one has a non-zero digit more */
        mag = (mag > 0) - (mag < 0);
    }
    return sa * mag;
}

/*
 * Compares a numeric's text (the grammar above, or NaN/Infinity/-Infinity) with a
 * catalog bound as the catalog wrote it, exactly. Returns -1, 0, 1, or 2 for NaN,
 * which fails every bound.
 */
static int numeric_cmp_bound(const char *s, size_t len, const char *bound)
{
    if (is_special_float(s, len))
        return s[0] == 'N' ? 2 : s[0] == '-' ? -1 : 1;
    struct st_decimal_t a, b;
    decimal_read(s, len, &a);
    decimal_read(bound, strlen(bound), &b);
    return decimal_cmp(&a, &b);
}

/*
 * Range and bounds of a float or numeric whose canonical text `canon` is known to be
 * well-formed. Floats are compared as the type stores them; numerics exactly, in
 * decimal, against the bounds as the catalog wrote them (`min_text`, `max_text`).
 */
static const char *check_float_canon(const tg_param_t *p, const char *canon, h2o_mem_pool_t *pool)
{
    if (p->type == TG_TYPE_NUMERIC) {
        size_t len = strlen(canon);
        int c;
        if (p->has_min && ((c = numeric_cmp_bound(canon, len, p->min_text)) == 2 || c < 0))
            return pool_printf(pool, "must be at least %s", p->min_text);
        if (p->has_max && ((c = numeric_cmp_bound(canon, len, p->max_text)) == 2 || c > 0))
            return pool_printf(pool, "must be at most %s", p->max_text);
        return NULL;
    }
    double d;
    errno = 0;
    if (p->type == TG_TYPE_FLOAT4) {
        float f = strtof(canon, NULL);
        if (errno == ERANGE && (f == 0 || isinf(f)))
            return "is out of range for float4";
        /* As float4 stores them: the value and the bounds rounded to float (0.1 is within max 0.1). */
        if (p->has_min && !(f >= (float)p->min))
            return format_bound(pool, "least", p->min);
        if (p->has_max && !(f <= (float)p->max))
            return format_bound(pool, "most", p->max);
        return NULL;
    }
    d = strtod(canon, NULL);
    if (errno == ERANGE && (d == 0 || isinf(d)))
        return "is out of range for float8";
    if (p->has_min && !(d >= p->min))
        return format_bound(pool, "least", p->min);
    if (p->has_max && !(d <= p->max))
        return format_bound(pool, "most", p->max);
    return NULL;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; ++i) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

/* YYYY-MM-DD at `s` (10 bytes available) */
static int valid_date(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (s[4] != '-' || s[7] != '-' || y < 1 || m < 1 || m > 12 || d < 1)
        return 0;
    return d <= mdays[m - 1] + (m == 2 && is_leap(y));
}

static int valid_timestamptz(const char *s, size_t len)
{
    if (len < 20 || !valid_date(s) || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return 0;
    int hh = digits(s + 11, 2), mi = digits(s + 14, 2), ss = digits(s + 17, 2);
    if (s[13] != ':' || s[16] != ':' || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 60)
        return 0;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            ++i;
        if (i == start || i - start > 9)
            return 0;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z'))
        return i + 1 == len;
    if (len - i != 6 || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':')
        return 0;
    int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
    return oh >= 0 && oh <= 15 && om >= 0 && om <= 59;
}

static const char *check_uuid(const char *s, size_t len, h2o_mem_pool_t *pool, const char **canon)
{
    if (len != 36)
        return R_UUID;
    char *d = h2o_mem_alloc_pool(pool, 37);
    for (size_t i = 0; i < 36; ++i) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return R_UUID;
        } else if (tg_hex_value((unsigned char)c) < 0) {
            return R_UUID;
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        }
        d[i] = c;
    }
    d[36] = '\0';
    *canon = d;
    return NULL;
}

/*
 * Checks one scalar given as text. When `owned`, `s` is NUL-terminated pool memory
 * the caller gives up, so it can be the canonical form without a copy.
 */
static const char *check_text_value(const tg_param_t *p, const char *s, size_t len, int owned, h2o_mem_pool_t *pool,
                                    const char **canon)
{
#define CANON_AS_GIVEN() (*canon = owned ? s : pool_strndup(pool, s, len))
    switch (p->type) {
    case TG_TYPE_INT2:
    case TG_TYPE_INT4:
    case TG_TYPE_INT8: {
        int64_t v;
        switch (parse_int64(s, len, &v)) {
        case 0:
            return check_int_value(p, v, pool, canon);
        case -2:
            return pool_printf(pool, "is out of range for %s", int_type_name(p->type));
        default:
            return R_INTEGER;
        }
    }
    case TG_TYPE_FLOAT4:
    case TG_TYPE_FLOAT8:
    case TG_TYPE_NUMERIC: {
        if (!tg_is_number(s, len, 0) && !is_special_float(s, len))
            return R_NUMBER;
        const char *c = CANON_AS_GIVEN();
        const char *err = check_float_canon(p, c, pool);
        if (err != NULL)
            return err;
        *canon = c;
        return NULL;
    }
    case TG_TYPE_TEXT:
        if (memchr(s, '\0', len) != NULL)
            return R_NUL;
        if (!tg_utf8_valid(s, len))
            return R_UTF8;
        if (p->max_length >= 0 && utf8_count(s, len) > (size_t)p->max_length)
            return pool_printf(pool, "must be at most %ld characters", p->max_length);
        CANON_AS_GIVEN();
        return NULL;
    case TG_TYPE_BOOL:
        if (len == 1) {
            if (s[0] == 't' || s[0] == '1') {
                *canon = "true";
                return NULL;
            }
            if (s[0] == 'f' || s[0] == '0') {
                *canon = "false";
                return NULL;
            }
        } else if (len == 4 && memcmp(s, "true", 4) == 0) {
            *canon = "true";
            return NULL;
        } else if (len == 5 && memcmp(s, "false", 5) == 0) {
            *canon = "false";
            return NULL;
        }
        return R_BOOL;
    case TG_TYPE_UUID:
        return check_uuid(s, len, pool, canon);
    case TG_TYPE_DATE:
        if (len != 10 || !valid_date(s))
            return R_DATE;
        CANON_AS_GIVEN();
        return NULL;
    case TG_TYPE_TIMESTAMPTZ: {
        if (!valid_timestamptz(s, len))
            return R_TIMESTAMP;
        char *d = owned ? (char *)s : pool_strndup(pool, s, len);
        d[10] = 'T';
        if (d[len - 1] == 'z')
            d[len - 1] = 'Z';
        *canon = d;
        return NULL;
    }
    case TG_TYPE_JSON:
    case TG_TYPE_JSONB: {
        tg_json_t v;
        if (tg_json_parse(s, len, &v, NULL) != 0)
            return R_JSON;
        CANON_AS_GIVEN();
        return NULL;
    }
    default:
        tg_fatal("unknown parameter type %d", (int)p->type);
    }
#undef CANON_AS_GIVEN
}

/* The content of the JSON string `v` as NUL-terminated text (unescaped into `pool` when it has escapes). */
static char *json_string_text(const tg_json_t *v, h2o_mem_pool_t *pool, size_t *len)
{
    if (!tg_json_string_has_escapes(v)) {
        *len = v->len - 2;
        return pool_strndup(pool, v->text + 1, *len);
    }
    char *d = h2o_mem_alloc_pool(pool, v->len);
    *len = tg_json_string_decode(v, d);
    d[*len] = '\0';
    return d;
}

/*
 * Checks one non-null JSON value (any JSON value for json/jsonb), without the enum
 * check. Numbers and json values are taken as the bytes the caller wrote.
 */
static const char *check_json_value(const tg_param_t *p, const tg_json_t *v, h2o_mem_pool_t *pool, const char **canon)
{
    switch (p->type) {
    case TG_TYPE_INT2:
    case TG_TYPE_INT4:
    case TG_TYPE_INT8:
        if (v->type != TG_JSON_NUMBER || !tg_json_number_is_integer(v))
            return R_INTEGER;
        return check_text_value(p, v->text, v->len, 0, pool, canon);
    case TG_TYPE_FLOAT4:
    case TG_TYPE_FLOAT8:
    case TG_TYPE_NUMERIC: {
        const char *c;
        if (v->type == TG_JSON_NUMBER) {
            c = pool_strndup(pool, v->text, v->len);
        } else if (v->type == TG_JSON_STRING) {
            size_t len;
            c = json_string_text(v, pool, &len);
            if (!is_special_float(c, len) && (p->type != TG_TYPE_NUMERIC || !tg_is_number(c, len, 0)))
                return R_NUMBER;
        } else {
            return R_NUMBER;
        }
        const char *err = check_float_canon(p, c, pool);
        if (err != NULL)
            return err;
        *canon = c;
        return NULL;
    }
    case TG_TYPE_BOOL:
        if (v->type != TG_JSON_TRUE && v->type != TG_JSON_FALSE)
            return R_BOOL;
        *canon = v->type == TG_JSON_TRUE ? "true" : "false";
        return NULL;
    case TG_TYPE_TEXT:
    case TG_TYPE_UUID:
    case TG_TYPE_DATE:
    case TG_TYPE_TIMESTAMPTZ: {
        if (v->type != TG_JSON_STRING)
            return p->type == TG_TYPE_TEXT ? R_STRING : p->type == TG_TYPE_UUID ? R_UUID
                                                       : p->type == TG_TYPE_DATE ? R_DATE
                                                                                 : R_TIMESTAMP;
        size_t len;
        char *text = json_string_text(v, pool, &len);
        return check_text_value(p, text, len, 1, pool, canon);
    }
    case TG_TYPE_JSON:
    case TG_TYPE_JSONB:
        *canon = pool_strndup(pool, v->text, v->len);
        return NULL;
    default:
        tg_fatal("unknown parameter type %d", (int)p->type);
    }
}

/* the enum check, on a canonical value */
static const char *check_enum(const tg_param_t *p, const char *canon, h2o_mem_pool_t *pool)
{
    if (p->enum_values == NULL)
        return NULL;
    for (size_t i = 0; i < p->n_enum; ++i)
        if (strcmp(p->enum_values[i], canon) == 0)
            return NULL;
    tg_buf_t b = {0};
    tg_buf_appends(&b, "must be one of: ");
    for (size_t i = 0; i < p->n_enum; ++i) {
        if (i != 0)
            tg_buf_append(&b, ", ", 2);
        tg_buf_appends(&b, p->enum_values[i]);
    }
    const char *r = pool_strndup(pool, b.base, b.len);
    tg_buf_dispose(&b);
    return r;
}

static const char *check_scalar_text(const tg_param_t *p, const char *s, size_t len, int owned, h2o_mem_pool_t *pool,
                                     const char **canon)
{
    const char *c, *err;
    if ((err = check_text_value(p, s, len, owned, pool, &c)) != NULL || (err = check_enum(p, c, pool)) != NULL)
        return err;
    *canon = c;
    return NULL;
}

static const char *check_scalar_json(const tg_param_t *p, const tg_json_t *v, h2o_mem_pool_t *pool, const char **canon)
{
    const char *c, *err;
    if ((err = check_json_value(p, v, pool, &c)) != NULL || (err = check_enum(p, c, pool)) != NULL)
        return err;
    *canon = c;
    return NULL;
}

/* arrays */

/* Builds the PostgreSQL array literal of `n` canonical elements (NULL: a NULL element). */
static const char *array_literal(const char **elems, size_t n, h2o_mem_pool_t *pool)
{
    size_t size = 2 + (n != 0 ? n - 1 : 0);
    for (size_t i = 0; i < n; ++i) {
        if (elems[i] == NULL) {
            size += 4;
            continue;
        }
        size += 2;
        for (const char *s = elems[i]; *s != '\0'; ++s)
            size += 1 + (*s == '"' || *s == '\\');
    }
    char *d = h2o_mem_alloc_pool(pool, size + 1), *o = d;
    *o++ = '{';
    for (size_t i = 0; i < n; ++i) {
        if (i != 0)
            *o++ = ',';
        if (elems[i] == NULL) {
            memcpy(o, "NULL", 4);
            o += 4;
            continue;
        }
        *o++ = '"';
        for (const char *s = elems[i]; *s != '\0'; ++s) {
            if (*s == '"' || *s == '\\')
                *o++ = '\\';
            *o++ = *s;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return d;
}

static const char *element_error(h2o_mem_pool_t *pool, size_t i, const char *reason)
{
    return pool_printf(pool, "element %zu %s", i, reason);
}

const char *tg_params_check_text(const tg_param_t *p, const char *s, size_t len, h2o_mem_pool_t *pool, const char **canon)
{
    return check_scalar_text(p, s, len, 0, pool, canon);
}

const char *tg_params_check_json(const tg_param_t *p, const tg_json_t *v, h2o_mem_pool_t *pool, const char **canon)
{
    if (v->type == TG_JSON_NULL) {
        *canon = NULL;
        return NULL;
    }
    if (!p->is_array)
        return check_scalar_json(p, v, pool, canon);
    if (v->type != TG_JSON_ARRAY)
        return R_ARRAY;
    size_t n = tg_json_count(v), i = 0;
    if (n > TG_MAX_ARRAY_ITEMS)
        return R_TOO_MANY;
    const char **elems = h2o_mem_alloc_pool(pool, sizeof(*elems) * (n + 1));
    tg_json_iter_t it;
    tg_json_t e;
    for (tg_json_iter_init(&it, v); tg_json_iter_next(&it, NULL, &e); ++i) {
        const char *err;
        if (e.type == TG_JSON_NULL)
            elems[i] = NULL;
        else if ((err = check_scalar_json(p, &e, pool, &elems[i])) != NULL)
            return element_error(pool, i, err);
    }
    *canon = array_literal(elems, n, pool);
    return NULL;
}

/* decoding a request */

/* one key=value of the query string that names a parameter */
struct st_qs_pair_t {
    const char *value;
    size_t len;
    int next; /* the next pair of the same parameter, -1: none */
};

/* what was found for one parameter */
struct st_slot_t {
    int first, last;     /* pairs of the query string, -1: none */
    size_t count;        /* how many */
    tg_json_t json;      /* the body member (when `in_body`) */
    int in_body;
    int failed;          /* already reported */
};

struct st_error_list_t {
    tg_params_t *out;
    size_t cap;
    h2o_mem_pool_t *pool;
};

static void add_error(struct st_error_list_t *l, const char *name, const char *reason)
{
    tg_params_t *out = l->out;
    if (out->n_errors_total++ == TG_MAX_PARAM_ERRORS || out->n_errors == TG_MAX_PARAM_ERRORS)
        return;
    if (out->n_errors == l->cap) {
        size_t cap = l->cap == 0 ? 4 : l->cap * 2;
        tg_param_error_t *e = h2o_mem_alloc_pool(l->pool, sizeof(*e) * cap);
        if (out->n_errors != 0)
            memcpy(e, out->errors, sizeof(*e) * out->n_errors);
        out->errors = e;
        l->cap = cap;
    }
    out->errors[out->n_errors].name = name;
    out->errors[out->n_errors].reason = reason;
    ++out->n_errors;
}

static int find_param(const tg_query_t *q, tg_param_source_t source, const char *name, size_t len)
{
    for (size_t i = 0; i < q->n_params; ++i) {
        const tg_param_t *p = &q->params[i];
        /* by length first: `name` may hold a NUL (a decoded %00), where strncmp would stop and p->name[len] be past its end */
        if (p->source == source && strlen(p->name) == len && memcmp(p->name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* Why a key that names no parameter of its place is refused: it may name the tenant-bound one. */
static const char *unknown_reason(const tg_query_t *q, const char *name, size_t len)
{
    return find_param(q, TG_SOURCE_TENANT, name, len) >= 0 ? R_FROM_TENANT : R_UNKNOWN;
}

/* Splits the query string and files each pair under its parameter; reports unknown keys and repeats. */
static void scan_query_string(const tg_query_t *q, h2o_iovec_t qs, struct st_slot_t *slots, struct st_error_list_t *errs,
                              h2o_mem_pool_t *pool, struct st_qs_pair_t **pairs_out)
{
    size_t n = 1;
    for (size_t i = 0; i < qs.len; ++i)
        n += qs.base[i] == '&';
    struct st_qs_pair_t *pairs = h2o_mem_alloc_pool(pool, sizeof(*pairs) * n);
    int np = 0;
    const char *s = qs.base, *end = qs.base + qs.len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s)), *seg_end = amp != NULL ? amp : end;
        if (seg_end != s) {
            const char *eq = memchr(s, '=', (size_t)(seg_end - s)), *key_end = eq != NULL ? eq : seg_end;
            size_t klen;
            char *key = tg_percent_decode(s, (size_t)(key_end - s), 1, pool, &klen);
            int idx;
            if (key == NULL) {
                add_error(errs, pool_strndup(pool, s, (size_t)(key_end - s)), R_BAD_ESCAPE);
            } else if (memchr(key, '\0', klen) == NULL && (idx = find_param(q, TG_SOURCE_BODY, key, klen)) >= 0) {
                /* A body parameter in the query string (POST /x?id=1): one error saying where it goes, not "unknown" and "required". */
                if (!slots[idx].failed)
                    add_error(errs, q->params[idx].name, R_IN_BODY);
                slots[idx].failed = 1;
            } else if (memchr(key, '\0', klen) != NULL || (idx = find_param(q, TG_SOURCE_QUERY, key, klen)) < 0) {
                add_error(errs, key, unknown_reason(q, key, klen));
            } else {
                struct st_slot_t *slot = &slots[idx];
                if (!q->params[idx].is_array && slot->count != 0) {
                    if (!slot->failed)
                        add_error(errs, q->params[idx].name, R_REPEATED);
                    slot->failed = 1;
                } else {
                    pairs[np].value = eq != NULL ? eq + 1 : seg_end;
                    pairs[np].len = (size_t)(seg_end - pairs[np].value);
                    pairs[np].next = -1;
                    if (slot->last >= 0)
                        pairs[slot->last].next = np;
                    else
                        slot->first = np;
                    slot->last = np++;
                }
                ++slot->count;
            }
        }
        s = seg_end + 1;
    }
    *pairs_out = pairs;
}

/* Decodes and checks text values (path or query string); arrays become literals. */
static const char *decode_text_values(const tg_param_t *p, const struct st_qs_pair_t *pairs, int first, size_t count,
                                      int plus_is_space, h2o_mem_pool_t *pool, const char **canon)
{
    if (p->is_array && count > TG_MAX_ARRAY_ITEMS)
        return R_TOO_MANY;
    const char **elems = p->is_array ? h2o_mem_alloc_pool(pool, sizeof(*elems) * count) : NULL;
    size_t i = 0;
    for (int at = first; at >= 0; at = pairs[at].next, ++i) {
        size_t len;
        const char *err, *c;
        char *s = tg_percent_decode(pairs[at].value, pairs[at].len, plus_is_space, pool, &len);
        if (s == NULL)
            err = R_BAD_ESCAPE;
        else
            err = check_scalar_text(p, s, len, 1, pool, &c);
        if (err != NULL)
            return p->is_array ? element_error(pool, i, err) : err;
        if (!p->is_array) {
            *canon = c;
            return NULL;
        }
        elems[i] = c;
    }
    *canon = array_literal(elems, i, pool);
    return NULL;
}

int tg_params_decode(const tg_query_t *q, const tg_route_match_t *m, h2o_iovec_t query_string, h2o_iovec_t body,
                     const char *tenant, h2o_mem_pool_t *pool, tg_params_t *out)
{
    size_t n = q->n_params;
    struct st_error_list_t errs = {out, 0, pool};
    struct st_slot_t *slots = h2o_mem_alloc_pool(pool, sizeof(*slots) * (n + 1));
    struct st_qs_pair_t *pairs = NULL;

    out->values = h2o_mem_alloc_pool(pool, sizeof(*out->values) * (n + 1));
    out->errors = NULL;
    out->n_errors = 0;
    out->n_errors_total = 0;
    out->detail = NULL;
    for (size_t i = 0; i < n; ++i) {
        slots[i] = (struct st_slot_t){.first = -1, .last = -1};
        out->values[i] = NULL;
    }

    if (query_string.len != 0)
        scan_query_string(q, query_string, slots, &errs, pool, &pairs);

    if (body.len != 0) {
        tg_json_t root, key, value;
        tg_json_error_t jerr;
        if (tg_json_parse(body.base, body.len, &root, &jerr) != 0) {
            out->detail = pool_printf(pool, "body is not valid JSON: %s at line %u column %u", jerr.reason, jerr.line, jerr.column);
            return TG_PARAMS_BAD_JSON;
        }
        if (root.type != TG_JSON_OBJECT) {
            out->detail = "body must be a JSON object";
            return TG_PARAMS_BAD_JSON;
        }
        tg_json_iter_t it;
        for (tg_json_iter_init(&it, &root); tg_json_iter_next(&it, &key, &value);) {
            /* A plain key is looked up in place; only an escaped one (or one to report) is copied. */
            int escaped = tg_json_string_has_escapes(&key);
            size_t klen = key.len - 2;
            const char *k = escaped ? json_string_text(&key, pool, &klen) : key.text + 1;
            int nul = escaped && memchr(k, '\0', klen) != NULL, idx = nul ? -1 : find_param(q, TG_SOURCE_BODY, k, klen);
            if (idx < 0) {
                add_error(&errs, escaped ? k : pool_strndup(pool, k, klen), nul ? R_UNKNOWN : unknown_reason(q, k, klen));
            } else {
                slots[idx].json = value;
                slots[idx].in_body = 1;
            }
        }
    }

    for (size_t i = 0; i < n; ++i) {
        const tg_param_t *p = &q->params[i];
        struct st_slot_t *slot = &slots[i];
        const char *err = NULL, *canon = NULL;
        int present = 0;
        if (slot->failed)
            continue;
        switch (p->source) {
        case TG_SOURCE_PATH:
            if (m != NULL && p->path_index >= 0 && (size_t)p->path_index < m->n_path_params) {
                struct st_qs_pair_t one = {m->path_params[p->path_index].base, m->path_params[p->path_index].len, -1};
                present = 1;
                err = decode_text_values(p, &one, 0, 1, 0, pool, &canon);
            }
            break;
        case TG_SOURCE_QUERY:
            if (slot->count != 0) {
                present = 1;
                err = decode_text_values(p, pairs, slot->first, slot->count, 1, pool, &canon);
            }
            break;
        case TG_SOURCE_TENANT:
            present = 1;
            canon = tenant;
            break;
        case TG_SOURCE_BODY:
            if (slot->in_body) {
                present = 1;
                if (slot->json.type == TG_JSON_NULL)
                    err = p->required ? R_NOT_NULL : NULL;
                else
                    err = tg_params_check_json(p, &slot->json, pool, &canon);
            }
            break;
        }
        if (!present) {
            if (p->has_default)
                canon = p->default_text;
            else if (p->required)
                err = R_REQUIRED;
        }
        if (err != NULL)
            add_error(&errs, p->name, err);
        else
            out->values[i] = canon;
    }

    return out->n_errors != 0 ? TG_PARAMS_INVALID : TG_PARAMS_OK;
}

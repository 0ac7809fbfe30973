/* Strict JSON validation that keeps values as the bytes sent, and walks over the validated text. */

/*
 * Why not jansson for request bodies: jansson turns every number into an int64 or a
 * double (so 19.90 comes back 19.9, 3.14159265358979323846 loses its tail, and an
 * integer past 64 bits is a parse error) and rebuilds strings and objects, so a value
 * re-serialized from it is not what the caller wrote. Here a document is validated
 * once, in place; a value is the window of input bytes it occupies, and that window
 * is what reaches PostgreSQL.
 *
 * The validator is recursive descent with an explicit depth bound. Object keys are
 * collected on one stack shared by all open objects; when an object closes, its own
 * keys (the top of the stack) are checked for duplicates: pairwise when there are
 * few, else sorted, so a hostile object with many keys costs O(n log n), not O(n^2).
 * Walking validated text (iteration, lookup) only needs to find where a value ends,
 * which is a matter of brackets and quotes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/json.h"
#include "internal.h"

#define TG_JSON_STR_(x) #x
#define TG_JSON_STR(x) TG_JSON_STR_(x)

/* Objects with at most this many keys are checked for duplicates pairwise. */
#define TG_JSON_PAIRWISE_KEYS 8

/* one key of an open object: its raw content, and its unescaped form when it has escapes */
struct st_key_t {
    const char *at; /* its opening quote, for the error's position */
    const char *s;
    size_t len;
    char *decoded; /* malloc'd when the raw key has escapes, else NULL (s, len are the key) */
};

typedef struct st_parser_t {
    const char *start, *p, *end;
    int depth;
    tg_json_error_t *err;
    struct st_key_t *keys; /* keys of every open object, innermost last */
    size_t n_keys, cap_keys;
} parser_t;

static int fail(parser_t *ps, const char *at, const char *reason)
{
    if (ps->err != NULL) {
        ps->err->reason = reason;
        ps->err->offset = (size_t)(at - ps->start);
        unsigned line = 1, column = 1;
        for (const char *c = ps->start; c < at; ++c) {
            if (*c == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        ps->err->line = line;
        ps->err->column = column;
    }
    return -1;
}

static inline int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && is_ws(*ps->p))
        ++ps->p;
}

static inline int is_digit(char c)
{
    return (unsigned)(c - '0') <= 9;
}

/* the four hex digits at s as a code unit, or -1 */
static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; ++i) {
        int h = tg_hex_value((unsigned char)s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* A string at ps->p (on its opening quote). Sets *has_escapes; leaves ps->p past the closing quote. */
static int parse_string(parser_t *ps, int *has_escapes)
{
    const char *p = ps->p + 1, *end = ps->end;
    *has_escapes = 0;
    for (;;) {
        /* the common case: plain printable ASCII */
        while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' && *p != '\\')
            ++p;
        if (p == end)
            return fail(ps, p, "unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            ps->p = p + 1;
            return 0;
        }
        if (c < 0x20)
            return fail(ps, p, "control character in string (escape it)");
        if (c >= 0x80) {
            size_t k = tg_utf8_seq_len((const unsigned char *)p, (size_t)(end - p));
            if (k == 0)
                return fail(ps, p, "invalid UTF-8 in string");
            p += k;
            continue;
        }
        /* a backslash */
        *has_escapes = 1;
        if (end - p < 2)
            return fail(ps, p, "unterminated string");
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u': {
            int u;
            if (end - p < 6 || (u = hex4(p + 2)) < 0)
                return fail(ps, p, "invalid \\u escape");
            if (u >= 0xdc00 && u <= 0xdfff)
                return fail(ps, p, "lone low surrogate in \\u escape");
            if (u >= 0xd800 && u <= 0xdbff) {
                int lo;
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff)
                    return fail(ps, p, "high surrogate not followed by a low surrogate");
                p += 12;
            } else {
                p += 6;
            }
            break;
        }
        default:
            return fail(ps, p, "invalid escape in string");
        }
    }
}

static int parse_number(parser_t *ps)
{
    const char *p = ps->p, *end = ps->end;
    if (p < end && *p == '-')
        ++p;
    if (p == end || !is_digit(*p))
        return fail(ps, ps->p, "invalid number");
    if (*p == '0') {
        ++p;
        if (p < end && is_digit(*p))
            return fail(ps, ps->p, "invalid number (leading zero)");
    } else {
        while (p < end && is_digit(*p))
            ++p;
    }
    if (p < end && *p == '.') {
        ++p;
        if (p == end || !is_digit(*p))
            return fail(ps, ps->p, "invalid number");
        while (p < end && is_digit(*p))
            ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < end && (*p == '+' || *p == '-'))
            ++p;
        if (p == end || !is_digit(*p))
            return fail(ps, ps->p, "invalid number");
        while (p < end && is_digit(*p))
            ++p;
    }
    /* "1x", "1.5.2", "0x10": a number runs into something that cannot follow it */
    if (p < end && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-' ||
                    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return fail(ps, ps->p, "invalid number");
    ps->p = p;
    return 0;
}

static int parse_literal(parser_t *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, ps->p, "invalid token");
    ps->p += n;
    if (ps->p < ps->end && ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z') || is_digit(*ps->p)))
        return fail(ps, ps->p - n, "invalid token");
    return 0;
}

/* the unescaped form of a key, for comparison */
static void key_bytes(const struct st_key_t *k, const char **s, size_t *len)
{
    *s = k->decoded != NULL ? k->decoded : k->s;
    *len = k->len;
}

static int key_cmp(const void *a, const void *b)
{
    const char *sa, *sb;
    size_t la, lb;
    key_bytes(a, &sa, &la);
    key_bytes(b, &sb, &lb);
    int c = memcmp(sa, sb, la < lb ? la : lb);
    return c != 0 ? c : (la > lb) - (la < lb);
}

/* equal keys in document order */
static int key_cmp_then_place(const void *a, const void *b)
{
    int c = key_cmp(a, b);
    const char *pa = ((const struct st_key_t *)a)->at, *pb = ((const struct st_key_t *)b)->at;
    return c != 0 ? c : (pa > pb) - (pa < pb);
}

/* The first key of keys[from, n_keys) that repeats an earlier one (in document order), or NULL. */
static const char *find_duplicate(parser_t *ps, size_t from)
{
    struct st_key_t *k = ps->keys + from;
    size_t n = ps->n_keys - from;
    if (n <= TG_JSON_PAIRWISE_KEYS) {
        for (size_t j = 1; j < n; ++j)
            for (size_t i = 0; i < j; ++i)
                if (key_cmp(&k[i], &k[j]) == 0)
                    return k[j].at;
        return NULL;
    }
    qsort(k, n, sizeof(*k), key_cmp_then_place);
    const char *first = NULL;
    for (size_t i = 1; i < n; ++i)
        if (key_cmp(&k[i - 1], &k[i]) == 0 && (first == NULL || k[i].at < first))
            first = k[i].at;
    return first;
}

static void pop_keys(parser_t *ps, size_t to)
{
    while (ps->n_keys > to)
        free(ps->keys[--ps->n_keys].decoded);
}

static void push_key(parser_t *ps, const char *quoted, size_t quoted_len, int has_escapes)
{
    if (ps->n_keys == ps->cap_keys) {
        ps->cap_keys = ps->cap_keys == 0 ? 16 : ps->cap_keys * 2;
        ps->keys = tg_realloc(ps->keys, ps->cap_keys * sizeof(*ps->keys));
    }
    struct st_key_t *k = &ps->keys[ps->n_keys++];
    k->at = quoted;
    k->s = quoted + 1;
    k->len = quoted_len - 2;
    k->decoded = NULL;
    if (has_escapes) {
        tg_json_t v = {TG_JSON_STRING, quoted, quoted_len};
        k->decoded = tg_malloc(quoted_len);
        k->len = tg_json_string_decode(&v, k->decoded);
    }
}

static int parse_value(parser_t *ps, tg_json_t *out);

static int parse_container(parser_t *ps, int object)
{
    const char *open = ps->p;
    char close = object ? '}' : ']';
    size_t keys_from = ps->n_keys;
    if (++ps->depth > TG_JSON_MAX_DEPTH)
        return fail(ps, open, "nested deeper than " TG_JSON_STR(TG_JSON_MAX_DEPTH) " levels");
    ++ps->p;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ++ps->p;
        --ps->depth;
        return 0;
    }
    for (;;) {
        tg_json_t v;
        if (object) {
            int esc;
            const char *k = ps->p;
            if (ps->p == ps->end)
                return fail(ps, ps->p, "unexpected end of input");
            if (*ps->p != '"')
                return fail(ps, ps->p, "expected a string as object key");
            if (parse_string(ps, &esc) != 0)
                return -1;
            push_key(ps, k, (size_t)(ps->p - k), esc);
            skip_ws(ps);
            if (ps->p == ps->end || *ps->p != ':')
                return fail(ps, ps->p, "expected ':' after an object key");
            ++ps->p;
        }
        if (parse_value(ps, &v) != 0)
            return -1;
        skip_ws(ps);
        if (ps->p == ps->end)
            return fail(ps, ps->p, "unexpected end of input");
        if (*ps->p == close)
            break;
        if (*ps->p != ',')
            return fail(ps, ps->p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        ++ps->p;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close)
            return fail(ps, ps->p, "trailing comma");
    }
    ++ps->p;
    --ps->depth;
    if (object) {
        const char *dup = find_duplicate(ps, keys_from);
        pop_keys(ps, keys_from);
        if (dup != NULL)
            return fail(ps, dup, "duplicate key in object");
    }
    return 0;
}

static int parse_value(parser_t *ps, tg_json_t *out)
{
    skip_ws(ps);
    if (ps->p == ps->end)
        return fail(ps, ps->p, "unexpected end of input");
    const char *start = ps->p;
    int r, esc;
    switch (*ps->p) {
    case '{':
        out->type = TG_JSON_OBJECT;
        r = parse_container(ps, 1);
        break;
    case '[':
        out->type = TG_JSON_ARRAY;
        r = parse_container(ps, 0);
        break;
    case '"':
        out->type = TG_JSON_STRING;
        r = parse_string(ps, &esc);
        break;
    case 't':
        out->type = TG_JSON_TRUE;
        r = parse_literal(ps, "true", 4);
        break;
    case 'f':
        out->type = TG_JSON_FALSE;
        r = parse_literal(ps, "false", 5);
        break;
    case 'n':
        out->type = TG_JSON_NULL;
        r = parse_literal(ps, "null", 4);
        break;
    default:
        if (*ps->p == '-' || is_digit(*ps->p)) {
            out->type = TG_JSON_NUMBER;
            r = parse_number(ps);
        } else {
            r = fail(ps, ps->p, "invalid token");
        }
        break;
    }
    out->text = start;
    out->len = (size_t)(ps->p - start);
    return r;
}

int tg_json_parse(const char *text, size_t len, tg_json_t *out, tg_json_error_t *err)
{
    parser_t ps = {.start = text, .p = text, .end = text + len, .err = err};
    tg_json_t v;
    int r = parse_value(&ps, &v);
    if (r == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            r = fail(&ps, ps.p, "unexpected characters after the value");
    }
    pop_keys(&ps, 0);
    free(ps.keys);
    if (r == 0)
        *out = v;
    return r;
}

/* walking validated text */

/* the end of the validated value starting at p */
static const char *skip_value(const char *p, const char *end)
{
    if (*p == '"') {
        for (++p; *p != '"'; ++p)
            if (*p == '\\')
                ++p;
        return p + 1;
    }
    if (*p == '[' || *p == '{') {
        size_t depth = 0;
        for (; p < end; ++p) {
            if (*p == '"') {
                p = skip_value(p, end) - 1;
            } else if (*p == '[' || *p == '{') {
                ++depth;
            } else if ((*p == ']' || *p == '}') && --depth == 0) {
                return p + 1;
            }
        }
        return end;
    }
    while (p < end && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}' && *p != ':')
        ++p;
    return p;
}

static tg_json_type_t type_at(const char *p)
{
    switch (*p) {
    case '{':
        return TG_JSON_OBJECT;
    case '[':
        return TG_JSON_ARRAY;
    case '"':
        return TG_JSON_STRING;
    case 't':
        return TG_JSON_TRUE;
    case 'f':
        return TG_JSON_FALSE;
    case 'n':
        return TG_JSON_NULL;
    default:
        return TG_JSON_NUMBER;
    }
}

static const char *skip_ws_to(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        ++p;
    return p;
}

/* the value at p (after whitespace); returns where it ends */
static const char *take_value(const char *p, const char *end, tg_json_t *out)
{
    p = skip_ws_to(p, end);
    const char *e = skip_value(p, end);
    out->type = type_at(p);
    out->text = p;
    out->len = (size_t)(e - p);
    return e;
}

void tg_json_iter_init(tg_json_iter_t *it, const tg_json_t *container)
{
    if (container->type == TG_JSON_ARRAY || container->type == TG_JSON_OBJECT) {
        it->p = container->text + 1;
        it->end = container->text + container->len - 1;
        it->object = container->type == TG_JSON_OBJECT;
    } else {
        it->p = it->end = NULL;
        it->object = 0;
    }
}

int tg_json_iter_next(tg_json_iter_t *it, tg_json_t *key, tg_json_t *value)
{
    const char *p = skip_ws_to(it->p, it->end);
    if (p < it->end && *p == ',')
        p = skip_ws_to(p + 1, it->end);
    if (p >= it->end)
        return 0;
    if (it->object) {
        tg_json_t k;
        p = take_value(p, it->end, &k);
        if (key != NULL)
            *key = k;
        p = skip_ws_to(p, it->end) + 1; /* the ':' */
    }
    it->p = take_value(p, it->end, value);
    return 1;
}

size_t tg_json_count(const tg_json_t *container)
{
    tg_json_iter_t it;
    tg_json_t k, v;
    size_t n = 0;
    tg_json_iter_init(&it, container);
    while (tg_json_iter_next(&it, &k, &v))
        ++n;
    return n;
}

int tg_json_string_has_escapes(const tg_json_t *v)
{
    return v->len > 2 && memchr(v->text + 1, '\\', v->len - 2) != NULL;
}

/* Writes code point `cp` as UTF-8; returns the bytes written. */
static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t tg_json_string_decode(const tg_json_t *v, char *dst)
{
    const char *p = v->text + 1, *end = v->text + v->len - 1;
    char *d = dst;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t plain = (size_t)((bs != NULL ? bs : end) - p);
        memmove(d, p, plain);
        d += plain;
        p += plain;
        if (bs == NULL)
            break;
        char c = p[1];
        p += 2;
        switch (c) {
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u': {
            unsigned cp = (unsigned)hex4(p);
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                /* validated: a low surrogate follows */
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)hex4(p + 2) - 0xdc00);
                p += 6;
            }
            d += put_utf8(d, cp);
            break;
        }
        default: /* '"', '\\', '/' */
            *d++ = c;
            break;
        }
    }
    return (size_t)(d - dst);
}

int tg_json_string_equals(const tg_json_t *k, const char *s, size_t n)
{
    if (!tg_json_string_has_escapes(k))
        return k->len - 2 == n && memcmp(k->text + 1, s, n) == 0;
    if (k->len - 2 < n)
        return 0; /* unescaping only shrinks */
    char stack[256], *buf = k->len <= sizeof(stack) ? stack : tg_malloc(k->len);
    size_t len = tg_json_string_decode(k, buf);
    int eq = len == n && memcmp(buf, s, n) == 0;
    if (buf != stack)
        free(buf);
    return eq;
}

int tg_json_object_get(const tg_json_t *object, const char *key, size_t key_len, tg_json_t *out)
{
    if (object->type != TG_JSON_OBJECT)
        return 0;
    tg_json_iter_t it;
    tg_json_t k;
    tg_json_iter_init(&it, object);
    while (tg_json_iter_next(&it, &k, out))
        if (tg_json_string_equals(&k, key, key_len))
            return 1;
    return 0;
}

int tg_json_array_get(const tg_json_t *array, size_t i, tg_json_t *out)
{
    if (array->type != TG_JSON_ARRAY)
        return 0;
    tg_json_iter_t it;
    tg_json_iter_init(&it, array);
    for (size_t n = 0; tg_json_iter_next(&it, NULL, out); ++n)
        if (n == i)
            return 1;
    return 0;
}

int tg_json_number_is_integer(const tg_json_t *v)
{
    for (size_t i = 0; i < v->len; ++i)
        if (v->text[i] == '.' || v->text[i] == 'e' || v->text[i] == 'E')
            return 0;
    return 1;
}

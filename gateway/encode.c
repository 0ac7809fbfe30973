/* libpq's text output becomes JSON here, value by value, written straight into the response buffer. */

/*
 * Assumptions and choices:
 * - Values are libpq text format from PostgreSQL 15 with DateStyle ISO and
 *   client_encoding UTF8; TimeZone may be anything (the offset is in the text).
 * - A value that does not look like what its type prints is written as a JSON string
 *   of its text, so the response is always valid JSON.
 * - Timestamps: "2026-01-02 03:04:05.123+00" becomes "2026-01-02T03:04:05.123+00:00";
 *   an offset with seconds (historic local mean time, "+05:53:28") is kept as is;
 *   "infinity"/"-infinity" and BC dates ("0044-03-15 12:00:00+00 BC") are written
 *   unchanged as strings, since RFC 3339 cannot express them.
 * - void (SELECT pg_sleep(1)) prints as an empty string: it is written as null.
 * - Arrays: only the array types listed in tg_encoding_for_oid are parsed (all of
 *   them use ',' as delimiter; box[] uses ';' and is not among them). Any other
 *   array type, user-defined ones included, is a string of its literal.
 */
#include <string.h>
#include "tollgate/encode.h"
#include "internal.h"

/* PostgreSQL 15 type OIDs (pg_type.dat) */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_VOID = 2278,
    OID_JSONB = 3802,
};

tg_column_enc_t tg_encoding_for_oid(Oid type)
{
    tg_column_enc_t e = {TG_ENC_STRING, TG_ENC_STRING};
    switch (type) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        e.enc = TG_ENC_INT;
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        e.enc = TG_ENC_FLOAT;
        break;
    case OID_BOOL:
        e.enc = TG_ENC_BOOL;
        break;
    case OID_JSON:
    case OID_JSONB:
        e.enc = TG_ENC_JSON;
        break;
    case OID_TIMESTAMPTZ:
        e.enc = TG_ENC_TIMESTAMPTZ;
        break;
    case OID_TIMESTAMP:
        e.enc = TG_ENC_TIMESTAMP;
        break;
    case OID_VOID:
        e.enc = TG_ENC_NULL;
        break;
    /* arrays */
    case 1005: /* int2[] */
    case 1007: /* int4[] */
    case 1016: /* int8[] */
    case 1028: /* oid[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_INT;
        break;
    case 1021: /* float4[] */
    case 1022: /* float8[] */
    case 1231: /* numeric[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_FLOAT;
        break;
    case 1000: /* bool[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_BOOL;
        break;
    case 199:  /* json[] */
    case 3807: /* jsonb[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_JSON;
        break;
    case 1185: /* timestamptz[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_TIMESTAMPTZ;
        break;
    case 1115: /* timestamp[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_TIMESTAMP;
        break;
    case 1001: /* bytea[] */
    case 1002: /* char[] */
    case 1003: /* name[] */
    case 1009: /* text[] */
    case 1014: /* bpchar[] */
    case 1015: /* varchar[] */
    case 1182: /* date[] */
    case 1183: /* time[] */
    case 1187: /* interval[] */
    case 1270: /* timetz[] */
    case 2951: /* uuid[] */
    case 1041: /* inet[] */
    case 651:  /* cidr[] */
    case 1040: /* macaddr[] */
    case 775:  /* macaddr8[] */
    case 791:  /* money[] */
    case 1561: /* bit[] */
    case 1563: /* varbit[] */
    case 3643: /* tsvector[] */
    case 3645: /* tsquery[] */
    case 3221: /* pg_lsn[] */
    case 2211: /* regtype[] */
    case 1263: /* cstring[] */
        e.enc = TG_ENC_ARRAY;
        e.elem = TG_ENC_STRING;
        break;
    default:
        break;
    }
    return e;
}

void tg_encode_columns(const PGresult *res, tg_column_enc_t *encs, tg_buf_t *keys)
{
    int n = PQnfields(res);
    tg_buf_reset(keys);
    for (int i = 0; i < n; ++i) {
        encs[i] = tg_encoding_for_oid(PQftype(res, i));
        const char *name = PQfname(res, i);
        encs[i].key_off = (uint32_t)keys->len;
        tg_buf_append_json_string(keys, name, strlen(name));
        tg_buf_appendc(keys, ':');
        encs[i].key_len = (uint32_t)(keys->len - encs[i].key_off);
    }
}

static inline int is_digit(char c)
{
    return (unsigned)(c - '0') <= 9;
}

/* appends raw bytes (inline, grows only when needed) */
static inline void put(tg_buf_t *out, const char *s, size_t n)
{
    tg_buf_append(out, s, n);
}

/* -?[0-9]+ (PostgreSQL prints integers without leading zeros) */
static int is_json_integer(const char *s, size_t len)
{
    size_t i = s[0] == '-';
    if (i == len || (s[i] == '0' && len - i > 1))
        return 0;
    for (; i < len; ++i)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}

/* two digits at s[0..1] */
static inline int two_digits(const char *s)
{
    return is_digit(s[0]) && is_digit(s[1]);
}

/*
 * Parses "Y+-MM-DD HH:MM:SS[.frac]" (ISO DateStyle; the year may have more than four
 * digits) and returns the length of that part, or 0.
 */
static size_t scan_datetime(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_digit(s[i]))
        ++i;
    if (i < 4 || len - i < 15)
        return 0;
    const char *d = s + i;
    if (d[0] != '-' || !two_digits(d + 1) || d[3] != '-' || !two_digits(d + 4) || d[6] != ' ' || !two_digits(d + 7) ||
        d[9] != ':' || !two_digits(d + 10) || d[12] != ':' || !two_digits(d + 13))
        return 0;
    i += 15;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit(s[i]))
            ++i;
        if (i == start)
            return 0;
    }
    return i;
}

/* the position of the ' ' between date and time of a value scan_datetime accepted */
static inline size_t date_end(const char *s)
{
    size_t i = 0;
    while (is_digit(s[i]))
        ++i;
    return i + 6;
}

static void encode_timestamp(tg_buf_t *out, const char *s, size_t len)
{
    size_t dt = scan_datetime(s, len);
    if (dt == 0 || dt != len) {
        tg_buf_append_json_string(out, s, len);
        return;
    }
    size_t sp = date_end(s);
    tg_buf_reserve(out, len + 2);
    char *o = out->base + out->len;
    *o++ = '"';
    memcpy(o, s, sp);
    o[sp] = 'T';
    memcpy(o + sp + 1, s + sp + 1, len - sp - 1);
    o += len;
    *o++ = '"';
    *o = '\0';
    out->len += len + 2;
}

static void encode_timestamptz(tg_buf_t *out, const char *s, size_t len)
{
    size_t dt = scan_datetime(s, len), i = dt;
    /* the offset: [+-]HH, [+-]HH:MM or [+-]HH:MM:SS, and nothing after it (" BC" is left alone) */
    if (dt == 0 || len - i < 3 || (s[i] != '+' && s[i] != '-') || !two_digits(s + i + 1))
        goto as_string;
    size_t off = len - i;
    if (off != 3 && !(off == 6 && s[i + 3] == ':' && two_digits(s + i + 4)) &&
        !(off == 9 && s[i + 3] == ':' && two_digits(s + i + 4) && s[i + 6] == ':' && two_digits(s + i + 7)))
        goto as_string;

    size_t sp = date_end(s);
    tg_buf_reserve(out, len + 5);
    char *o = out->base + out->len, *start = o;
    *o++ = '"';
    memcpy(o, s, sp);
    o[sp] = 'T';
    memcpy(o + sp + 1, s + sp + 1, len - sp - 1);
    o += len;
    if (off == 3) {
        memcpy(o, ":00", 3);
        o += 3;
    }
    *o++ = '"';
    *o = '\0';
    out->len += (size_t)(o - start);
    return;

as_string:
    tg_buf_append_json_string(out, s, len);
}

static void encode_scalar(tg_buf_t *out, tg_encoding_t enc, const char *s, size_t len);

/* array literals */

struct st_array_parser_t {
    const char *s, *end;
    tg_encoding_t elem;
    tg_buf_t scratch; /* unescaped quoted elements */
};

/* PostgreSQL's array_out puts no spaces around elements, but its input allows them; accept both. */
static inline void skip_space(struct st_array_parser_t *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        ++p->s;
}

/* one element at p->s; returns 0 or -1 if malformed */
static int parse_element(struct st_array_parser_t *p, tg_buf_t *out)
{
    if (*p->s == '"') {
        const char *start = ++p->s;
        int escaped = 0;
        while (p->s < p->end && *p->s != '"') {
            if (*p->s == '\\') {
                if (++p->s == p->end)
                    return -1;
                escaped = 1;
            }
            ++p->s;
        }
        if (p->s == p->end)
            return -1;
        const char *stop = p->s++;
        if (!escaped) {
            encode_scalar(out, p->elem, start, (size_t)(stop - start));
            return 0;
        }
        tg_buf_reset(&p->scratch);
        tg_buf_reserve(&p->scratch, (size_t)(stop - start));
        char *d = p->scratch.base;
        for (const char *c = start; c < stop; ++c) {
            if (*c == '\\')
                ++c;
            *d++ = *c;
        }
        encode_scalar(out, p->elem, p->scratch.base, (size_t)(d - p->scratch.base));
        return 0;
    }
    const char *start = p->s;
    while (p->s < p->end && *p->s != ',' && *p->s != '}' && *p->s != '{' && *p->s != '"' && *p->s != '\\')
        ++p->s;
    const char *stop = p->s;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\n' || stop[-1] == '\r'))
        --stop;
    size_t n = (size_t)(stop - start);
    if (n == 0)
        return -1;
    if (n == 4 && (start[0] | 0x20) == 'n' && (start[1] | 0x20) == 'u' && (start[2] | 0x20) == 'l' && (start[3] | 0x20) == 'l')
        put(out, "null", 4);
    else
        encode_scalar(out, p->elem, start, n);
    return 0;
}

/* `{...}` at p->s (nested up to PostgreSQL's MAXDIM of 6); returns 0 or -1 */
static int parse_array(struct st_array_parser_t *p, tg_buf_t *out, int depth)
{
    if (depth > 6 || p->s == p->end || *p->s != '{')
        return -1;
    ++p->s;
    tg_buf_appendc(out, '[');
    skip_space(p);
    if (p->s < p->end && *p->s == '}') {
        ++p->s;
        tg_buf_appendc(out, ']');
        return 0;
    }
    for (;;) {
        skip_space(p);
        if (p->s == p->end)
            return -1;
        if (*p->s == '{') {
            if (parse_array(p, out, depth + 1) != 0)
                return -1;
        } else if (parse_element(p, out) != 0) {
            return -1;
        }
        skip_space(p);
        if (p->s == p->end)
            return -1;
        if (*p->s == '}') {
            ++p->s;
            tg_buf_appendc(out, ']');
            return 0;
        }
        if (*p->s != ',')
            return -1;
        ++p->s;
        tg_buf_appendc(out, ',');
    }
}

static void encode_array(tg_buf_t *out, tg_encoding_t elem, const char *s, size_t len)
{
    struct st_array_parser_t p = {s, s + len, elem, {0}};
    size_t mark = out->len;
    /* dimension decoration, e.g. "[0:1]={1,2}" or "[1:2][1:1]={{1},{2}}" */
    if (len != 0 && s[0] == '[') {
        const char *eq = memchr(s, '=', len);
        if (eq == NULL)
            goto malformed;
        p.s = eq + 1;
    }
    if (parse_array(&p, out, 1) != 0)
        goto malformed;
    skip_space(&p);
    if (p.s != p.end)
        goto malformed;
    tg_buf_dispose(&p.scratch);
    return;

malformed:
    tg_buf_dispose(&p.scratch);
    out->len = mark;
    if (out->base != NULL)
        out->base[mark] = '\0';
    tg_buf_append_json_string(out, s, len);
}

static void encode_scalar(tg_buf_t *out, tg_encoding_t enc, const char *s, size_t len)
{
    switch (enc) {
    case TG_ENC_INT:
        if (TG_LIKELY(len != 0 && is_json_integer(s, len)))
            put(out, s, len);
        else
            tg_buf_append_json_string(out, s, len);
        break;
    case TG_ENC_FLOAT:
        if (TG_LIKELY(tg_is_number(s, len, 1)))
            put(out, s, len);
        else
            tg_buf_append_json_string(out, s, len); /* NaN, Infinity, -Infinity */
        break;
    case TG_ENC_BOOL:
        if (len == 1 && s[0] == 't')
            put(out, "true", 4);
        else if (len == 1 && s[0] == 'f')
            put(out, "false", 5);
        else
            tg_buf_append_json_string(out, s, len);
        break;
    case TG_ENC_JSON:
        /* PostgreSQL has checked json and jsonb; only an empty value cannot be embedded */
        if (TG_LIKELY(len != 0))
            put(out, s, len);
        else
            put(out, "\"\"", 2);
        break;
    case TG_ENC_TIMESTAMPTZ:
        encode_timestamptz(out, s, len);
        break;
    case TG_ENC_TIMESTAMP:
        encode_timestamp(out, s, len);
        break;
    case TG_ENC_NULL:
        put(out, "null", 4);
        break;
    case TG_ENC_ARRAY: /* arrays of arrays are nested literals, never an element encoding */
    case TG_ENC_STRING:
    default:
        tg_buf_append_json_string(out, s, len);
        break;
    }
}

void tg_encode_value(tg_buf_t *out, tg_column_enc_t enc, const char *text, size_t len)
{
    if (enc.enc == TG_ENC_ARRAY)
        encode_array(out, enc.elem, text, len);
    else
        encode_scalar(out, enc.enc, text, len);
}

void tg_encode_row(tg_buf_t *out, const PGresult *res, int row, const tg_column_enc_t *encs, const tg_buf_t *keys)
{
    int n = PQnfields(res);
    tg_buf_appendc(out, '{');
    for (int i = 0; i < n; ++i) {
        if (i != 0)
            tg_buf_appendc(out, ',');
        put(out, keys->base + encs[i].key_off, encs[i].key_len);
        if (PQgetisnull(res, row, i))
            put(out, "null", 4);
        else
            tg_encode_value(out, encs[i], PQgetvalue(res, row, i), (size_t)PQgetlength(res, row, i));
    }
    tg_buf_appendc(out, '}');
}

int tg_column_index(const PGresult *res, const char *name, size_t len)
{
    for (int i = 0, n = PQnfields(res); i != n; ++i) {
        const char *f = PQfname(res, i);
        if (strncmp(f, name, len) == 0 && f[len] == '\0')
            return i;
    }
    return -1;
}

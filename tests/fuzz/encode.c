/*
 * Fuzz target: result encoding of arbitrary server text per column type
 * (gateway/encode.c: tg_encode_value for every encoding, tg_encode_columns and
 * tg_encode_row on a PGresult made here with PQmakeEmptyPGresult).
 *
 * Input: the first byte picks the column's type OID from a table (every type the
 * encoder knows, arrays included, and some it does not); the rest is the value's
 * text as libpq would hand it over.
 *
 * Asserts (the value is written after "[0," in the buffer and "]" follows it, so the
 * encoder must leave what was before it alone, the malformed-array rollback too):
 * - the buffer is NUL-terminated and its prefix untouched;
 * - the output is valid UTF-8 JSON, whatever the text, for every encoding except json
 *   and jsonb (and arrays of them), which PostgreSQL has checked: those are embedded
 *   as they are, so the output is checked when the text is JSON jansson reads;
 * - each encoding does what it says: integers and JSON numbers pass as written, else
 *   become strings; 't'/'f' are true/false; a string is the text (where it is
 *   UTF-8); timestamps are the text or its RFC 3339 form; void is null; an array
 *   literal is an array or, when malformed, the text as a string;
 * - a row of three columns (the text also as the first column's name, a NULL, an
 *   int4) is a valid JSON object.
 */
#include <libpq-fe.h>
#include "tollgate/encode.h"
#include "common.h"

static const Oid oids[] = {
    16,   20,   21,   23,   26,   114,  700,  701,  1114, 1184, 1700, 2278, 3802, /* scalars */
    1005, 1007, 1016, 1028, 1021, 1022, 1231, 1000, 199,  3807, 1185, 1115,       /* arrays of known elements */
    1009, 1182, 2951, 1001, 1015,                                                 /* arrays as strings */
    25,   1043, 17,   1082, 2950, 0,    99999,                                    /* strings and unknown */
};
#define N_OIDS (sizeof(oids) / sizeof(oids[0]))

static int json_enc(tg_encoding_t e)
{
    return e == TG_ENC_JSON;
}

/* -?(0|[1-9][0-9]*) */
static int is_json_int(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-';
    if (i == n)
        return 0;
    if (s[i] == '0')
        return n - i == 1;
    for (; i < n; ++i)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* is s[0, n) exactly one JSON number (RFC 8259)? */
static int is_json_num(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        ++i;
    if (i == n)
        return 0;
    if (s[i] == '0') {
        ++i;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            ++i;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        size_t st = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            ++i;
        if (i == st)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            ++i;
        size_t st = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            ++i;
        if (i == st)
            return 0;
    }
    return i == n;
}

static int jansson_reads(const char *s, size_t n)
{
    if (n == 0 || memchr(s, '\0', n) != NULL)
        return 0;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_decref(v);
    return v != NULL;
}

/* `got` is the JSON string of `text` (when text is UTF-8) */
static void is_string_of(json_t *got, const char *text, size_t len, const char *what)
{
    FUZZ_ASSERT(json_is_string(got), "%s: not a string", what);
    if (fuzz_utf8_valid(text, len))
        FUZZ_ASSERT(json_string_length(got) == len && memcmp(json_string_value(got), text, len) == 0, "%s: string is not the text",
                    what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    Oid oid = oids[data[0] % N_OIDS];
    size_t len = size - 1;
    char *text = malloc(len + 1); /* exact size for the encoder (libpq adds a NUL; so do we, past `len`) */
    memcpy(text, data + 1, len);
    text[len] = '\0';
    tg_column_enc_t enc = tg_encoding_for_oid(oid);

    tg_buf_t b = {0};
    tg_buf_appends(&b, "[0,");
    size_t start = b.len;
    tg_encode_value(&b, enc, text, len);
    FUZZ_ASSERT(b.base != NULL && b.base[b.len] == '\0', "not NUL-terminated");
    FUZZ_ASSERT(b.len >= start && memcmp(b.base, "[0,", 3) == 0, "prefix overwritten");
    size_t out_len = b.len - start;
    tg_buf_appendc(&b, ']');
    const char *out = b.base + start; /* after the append: it may have moved the buffer */

    int unchecked = (enc.enc == TG_ENC_JSON && !jansson_reads(text, len)) || (enc.enc == TG_ENC_ARRAY && json_enc(enc.elem));
    if (!unchecked) {
        json_t *doc = fuzz_check_json("encoded value", b.base, b.len, 1);
        if (doc == NULL) /* a number jansson cannot hold: valid, checked above */
            goto row;
        FUZZ_ASSERT(json_is_array(doc) && json_array_size(doc) == 2, "not [0, value]: %s", b.base);
        json_t *got = json_array_get(doc, 1);
        switch (enc.enc) {
        case TG_ENC_INT:
            if (is_json_int(text, len))
                FUZZ_ASSERT(out_len == len && memcmp(out, text, len) == 0, "integer not as written");
            else
                is_string_of(got, text, len, "int");
            break;
        case TG_ENC_FLOAT:
            if (is_json_num(text, len))
                FUZZ_ASSERT(out_len == len && memcmp(out, text, len) == 0, "number not as written");
            else
                is_string_of(got, text, len, "float");
            break;
        case TG_ENC_BOOL:
            if (len == 1 && text[0] == 't')
                FUZZ_ASSERT(json_is_true(got), "t is not true");
            else if (len == 1 && text[0] == 'f')
                FUZZ_ASSERT(json_is_false(got), "f is not false");
            else
                is_string_of(got, text, len, "bool");
            break;
        case TG_ENC_JSON:
            FUZZ_ASSERT(out_len == len && memcmp(out, text, len) == 0, "json not embedded as is");
            break;
        case TG_ENC_TIMESTAMPTZ:
        case TG_ENC_TIMESTAMP: {
            FUZZ_ASSERT(json_is_string(got), "timestamp not a string");
            const char *s = json_string_value(got);
            size_t n = json_string_length(got);
            if ((n == len && memcmp(s, text, len) == 0) || !fuzz_utf8_valid(text, len))
                break;
            FUZZ_ASSERT(n == len || (enc.enc == TG_ENC_TIMESTAMPTZ && n == len + 3 && memcmp(s + len, ":00", 3) == 0),
                        "timestamp length changed: %s -> %s", text, s);
            size_t diff = 0, at = 0;
            for (size_t i = 0; i < len; ++i)
                if (s[i] != text[i])
                    ++diff, at = i;
            FUZZ_ASSERT(diff <= 1 && (diff == 0 || (text[at] == ' ' && s[at] == 'T')), "timestamp changed: %s -> %s", text, s);
            break;
        }
        case TG_ENC_NULL:
            FUZZ_ASSERT(json_is_null(got), "void is not null");
            break;
        case TG_ENC_ARRAY:
            if (!json_is_array(got))
                is_string_of(got, text, len, "malformed array");
            break;
        case TG_ENC_STRING:
        default:
            is_string_of(got, text, len, "string");
            break;
        }
        json_decref(doc);
    }

row:;
    /* a row: the text as a column name too */
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    FUZZ_ASSERT(res != NULL, "PQmakeEmptyPGresult");
    PGresAttDesc attrs[3] = {
        {.name = text, .typid = oid, .typlen = -1, .atttypmod = -1},
        {.name = "n", .typid = oid, .typlen = -1, .atttypmod = -1},
        {.name = "x", .typid = 23, .typlen = 4, .atttypmod = -1},
    };
    FUZZ_ASSERT(PQsetResultAttrs(res, 3, attrs), "PQsetResultAttrs");
    FUZZ_ASSERT(PQsetvalue(res, 0, 0, text, (int)len) && PQsetvalue(res, 0, 1, NULL, -1) && PQsetvalue(res, 0, 2, "1", 1),
                "PQsetvalue");
    tg_column_enc_t encs[3];
    tg_buf_t keys = {0}, row = {0};
    tg_encode_columns(res, encs, &keys);
    tg_encode_row(&row, res, 0, encs, &keys);
    if (!unchecked) {
        json_t *doc = fuzz_check_json("encoded row", row.base, row.len, 1);
        FUZZ_ASSERT(doc == NULL || (json_is_object(doc) && json_object_size(doc) >= 2 && json_object_size(doc) <= 3 &&
                                     json_is_integer(json_object_get(doc, "x"))),
                    "row is not an object with x");
        json_decref(doc);
    }
    PQclear(res);
    tg_buf_dispose(&keys);
    tg_buf_dispose(&row);
    tg_buf_dispose(&b);
    free(text);
    return 0;
}

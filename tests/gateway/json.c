/* Tests of gateway/json.c: the strict raw-JSON validator, its walks, lookups and string decoding, against tollgate/json.h. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/json.h"

#define COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

static const char *type_name(tg_json_type_t t)
{
    static const char *names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return (unsigned)t < COUNTOF(names) ? names[t] : "?";
}

/* `s[0, n)` made printable for messages (C escapes, cut at 72 bytes); the last eight results stay valid */
static const char *show(const char *s, size_t n)
{
    static char bufs[8][72 * 4 + 32];
    static unsigned next;
    char *dst = bufs[next++ % 8], *p = dst;
    size_t i;
    for (i = 0; i != n && i != 72; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            *p++ = '\\';
            *p++ = '\\';
        } else if (c >= 0x20 && c < 0x7f) {
            *p++ = (char)c;
        } else {
            p += sprintf(p, "\\x%02x", c);
        }
    }
    if (i != n)
        p += sprintf(p, "...(%zu bytes)", n);
    *p = '\0';
    return dst;
}

/* one tg_json_parse of a copy of the input in a heap buffer of exactly its size (nothing after it is readable) */
typedef struct {
    char *buf;
    size_t len;
    int rc;
    tg_json_t v;
    tg_json_error_t err;
} parsed_t;

static parsed_t parse(const char *s, size_t n)
{
    parsed_t p;
    memset(&p, 0, sizeof(p));
    p.buf = malloc(n != 0 ? n : 1);
    cr_assert_not_null(p.buf);
    memcpy(p.buf, s, n);
    p.len = n;
    p.v.type = (tg_json_type_t)-1;
    p.err.reason = NULL;
    p.err.offset = SIZE_MAX;
    p.rc = tg_json_parse(p.buf, n, &p.v, &p.err);
    return p;
}

static void dispose(parsed_t *p)
{
    free(p->buf);
    p->buf = NULL;
}

/* parses a document that must be valid; the test stops if it is not */
static parsed_t parse_ok(const char *s, size_t n)
{
    parsed_t p = parse(s, n);
    cr_assert_eq(p.rc, 0, "%s: refused (%s at %zu)", show(s, n), p.err.reason != NULL ? p.err.reason : "(no reason)", p.err.offset);
    return p;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int text_is(const tg_json_t *v, const char *s, size_t n)
{
    return v->text != NULL && v->len == n && memcmp(v->text, s, n) == 0;
}

/* the refusal is well formed: reason set, offset in the input, line and column those of the offset */
static void expect_refused(const parsed_t *p, const char *what)
{
    cr_expect_eq(p->rc, -1, "%s: accepted (rc %d), should be refused", what, p->rc);
    if (p->rc != -1)
        return;
    cr_expect_not_null(p->err.reason, "%s: no reason", what);
    if (p->err.reason != NULL)
        cr_expect_neq(p->err.reason[0], '\0', "%s: empty reason", what);
    cr_expect_leq(p->err.offset, p->len, "%s: offset %zu past the input (%zu bytes)", what, p->err.offset, p->len);
    if (p->err.offset > p->len)
        return;
    unsigned line = 1, column = 1;
    int cr = 0;
    for (size_t i = 0; i != p->err.offset; ++i) {
        if (p->buf[i] == '\r')
            cr = 1;
        if (p->buf[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    if (!cr) {
        cr_expect_eq(p->err.line, line, "%s: line %u for offset %zu, want %u", what, p->err.line, p->err.offset, line);
        cr_expect_eq(p->err.column, column, "%s: column %u for offset %zu, want %u", what, p->err.column, p->err.offset, column);
    } else {
        /* whether a CR ends a line is not the contract's business; only plausibility */
        cr_expect_geq(p->err.line, 1, "%s: line %u", what, p->err.line);
        cr_expect_leq(p->err.line, line, "%s: line %u, at most %u", what, p->err.line, line);
        cr_expect_geq(p->err.column, 1, "%s: column %u", what, p->err.column);
        cr_expect_leq(p->err.column, p->err.offset + 1, "%s: column %u for offset %zu", what, p->err.column, p->err.offset);
    }
}

/* `open` `depth` times, `inner`, `close` `depth` times, NUL-terminated */
static char *nest(const char *open, size_t depth, const char *inner, const char *close, size_t *len)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    *len = depth * (lo + lc) + li;
    char *s = malloc(*len + 1), *p = s;
    cr_assert_not_null(s);
    for (size_t i = 0; i != depth; ++i, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (size_t i = 0; i != depth; ++i, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

/* valid documents: the value is the document without the whitespace around it */

#define OK(s, t) {s, sizeof(s) - 1, TG_JSON_##t}

static const struct {
    const char *in;
    size_t len;
    tg_json_type_t type;
} valid_cases[] = {
    OK("0", NUMBER),
    OK("-0", NUMBER),
    OK("1E+2", NUMBER),
    OK("2.50", NUMBER),
    OK("12345678901234567890123", NUMBER),
    OK("123456789012345678901234567890.1234567890", NUMBER),
    OK("-1.5e-300", NUMBER),
    OK("1e999999", NUMBER),
    OK("0.0", NUMBER),
    OK("-0.0E-0", NUMBER),
    OK("0e0", NUMBER),
    OK("1e-0", NUMBER),
    OK("123e+45", NUMBER),
    OK("1E5", NUMBER),
    OK("-1", NUMBER),
    OK("10", NUMBER),
    OK("-12345678901234567890", NUMBER),
    OK("0.000001", NUMBER),
    OK("\"\"", STRING),
    OK("\"abc\"", STRING),
    OK("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u0000\"", STRING),
    OK("\"\\u00E9\\uABCD\\uffff\"", STRING),
    OK("\"\\ud83d\\ude00\"", STRING),
    OK("\"\\uD83D\\uDE00\"", STRING),
    OK("\"\\ud800\\udc00\\udbff\\udfff\"", STRING),
    OK("\"\xc3\xa9\"", STRING),
    OK("\"\xe2\x82\xac\"", STRING),
    OK("\"\xf0\x9f\x98\x80\"", STRING),
    OK("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"", STRING),
    OK("\"\x7f\"", STRING),
    OK("\"'/[]{}:, #\"", STRING),
    OK("true", TRUE),
    OK("false", FALSE),
    OK("null", NULL),
    OK("[]", ARRAY),
    OK("{}", OBJECT),
    OK("[ ]", ARRAY),
    OK("{ \n }", OBJECT),
    OK("[[]]", ARRAY),
    OK("[{}]", ARRAY),
    OK("{\"a\":{}}", OBJECT),
    OK("[[],{}]", ARRAY),
    OK("{\"a\":{\"b\":[1,{\"c\":null}]}}", OBJECT),
    OK("[1,\"a\",true,false,null,{},[],-0.5e3]", ARRAY),
    OK("{\"\":0}", OBJECT),
    OK("{\"\\u0000\":1}", OBJECT),
    OK("{\"a\\\"b\":\"c\\\\d\"}", OBJECT),
    OK(" 0", NUMBER),
    OK("0 ", NUMBER),
    OK(" \t\r\n0 \t\r\n", NUMBER),
    OK("\n\"x\"\t", STRING),
    OK("\r\ntrue\r\n", TRUE),
    OK("\tnull", NULL),
    OK("\n\n\nfalse\n", FALSE),
    OK("[\n]", ARRAY),
    OK("{ \t\r\n}", OBJECT),
    OK(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ \t\r\n] \t\r\n, \t\r\n\"b\" \t\r\n: \t\r\nnull \t\r\n} "
       "\t\r\n, "
       "\t\r\n\"s\" \t\r\n] \t\r\n",
       ARRAY),
};

Test(json, valid_documents)
{
    for (size_t i = 0; i != COUNTOF(valid_cases); ++i) {
        const char *in = valid_cases[i].in;
        size_t n = valid_cases[i].len, lead = 0, trail = 0;
        while (lead != n && is_ws(in[lead]))
            ++lead;
        while (trail != n - lead && is_ws(in[n - 1 - trail]))
            ++trail;
        parsed_t p = parse(in, n);
        cr_expect_eq(p.rc, 0, "%s: refused (%s at %zu)", show(in, n), p.err.reason != NULL ? p.err.reason : "(no reason)",
                     p.err.offset);
        if (p.rc == 0) {
            cr_expect_eq(p.v.type, valid_cases[i].type, "%s: type %s, want %s", show(in, n), type_name(p.v.type),
                         type_name(valid_cases[i].type));
            cr_expect_eq(p.v.text, p.buf + lead, "%s: text at offset %td, want %zu", show(in, n), p.v.text - p.buf, lead);
            cr_expect_eq(p.v.len, n - lead - trail, "%s: len %zu, want %zu", show(in, n), p.v.len, n - lead - trail);
        }
        dispose(&p);
    }
}

/* only `len` bytes are the document, whatever follows them */
Test(json, length_bounds_the_document)
{
    static const struct {
        const char *in;
        size_t len;
        int ok;
        tg_json_type_t type;
    } cases[] = {
        {"[1]garbage", 3, 1, TG_JSON_ARRAY},
        {"12345", 2, 1, TG_JSON_NUMBER},
        {"truex", 4, 1, TG_JSON_TRUE},
        {"\"ab\"xyz", 4, 1, TG_JSON_STRING},
        {"{} {}", 2, 1, TG_JSON_OBJECT},
        {"0 1", 1, 1, TG_JSON_NUMBER},
        {"\"ab\"", 3, 0, 0},
        {"[1,2]", 4, 0, 0},
        {"nullx", 3, 0, 0},
        {"1.5", 2, 0, 0},
        {"{\"a\":1}", 6, 0, 0},
        {"x", 0, 0, 0},
    };
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        tg_json_t v = {0};
        tg_json_error_t err = {NULL, SIZE_MAX, 0, 0};
        int rc = tg_json_parse(cases[i].in, cases[i].len, &v, &err);
        const char *what = show(cases[i].in, cases[i].len);
        if (cases[i].ok) {
            cr_expect_eq(rc, 0, "%s (len %zu): refused (%s)", what, cases[i].len, err.reason != NULL ? err.reason : "(no reason)");
            if (rc == 0) {
                cr_expect_eq(v.type, cases[i].type, "%s (len %zu): type %s", what, cases[i].len, type_name(v.type));
                cr_expect_eq(v.text, cases[i].in, "%s (len %zu): text not at the start", what, cases[i].len);
                cr_expect_eq(v.len, cases[i].len, "%s (len %zu): len %zu", what, cases[i].len, v.len);
            }
        } else {
            cr_expect_eq(rc, -1, "%s (len %zu): accepted", what, cases[i].len);
            cr_expect_not_null(err.reason, "%s (len %zu): no reason", what, cases[i].len);
            cr_expect_leq(err.offset, cases[i].len, "%s (len %zu): offset %zu", what, cases[i].len, err.offset);
        }
    }
}

/* invalid documents, with the offsets where the problem may be reported ([0, len] when any place is fine) */

struct bad_t {
    const char *in;
    size_t len;
    size_t lo, hi;
};

#define BAD(s) {s, sizeof(s) - 1, 0, sizeof(s) - 1}
#define BAD_AT(s, lo, hi) {s, sizeof(s) - 1, lo, hi}

static const struct bad_t invalid_cases[] = {
    /* nothing, or more than one value */
    BAD_AT("", 0, 0),
    BAD(" "),
    BAD(" \t\r\n"),
    BAD_AT("{} {}", 3, 3),
    BAD_AT("1 2", 2, 2),
    BAD_AT("[] x", 3, 3),
    BAD_AT("\"a\" \"b\"", 4, 4),
    BAD_AT("null,", 4, 4),
    BAD_AT("{}}", 2, 2),
    BAD_AT("[1]]", 3, 3),
    /* commas */
    BAD_AT("[1,]", 2, 3),
    BAD_AT("[1,2,]", 4, 5),
    BAD_AT("{\"a\":1,}", 6, 7),
    BAD_AT("[,]", 1, 1),
    BAD_AT("[,1]", 1, 1),
    BAD_AT("{,}", 1, 1),
    BAD_AT("[1,,2]", 2, 3),
    /* numbers */
    BAD_AT("01", 0, 1),
    BAD_AT("00", 0, 1),
    BAD_AT("-01", 0, 2),
    BAD_AT("[01]", 1, 2),
    BAD_AT("-", 0, 1),
    BAD_AT("1.", 0, 2),
    BAD_AT("[1.]", 1, 3),
    BAD_AT(".5", 0, 0),
    BAD_AT("+1", 0, 0),
    BAD_AT("1e", 0, 2),
    BAD_AT("1E", 0, 2),
    BAD_AT("1e+", 0, 3),
    BAD_AT("1e-", 0, 3),
    BAD_AT("-.5", 0, 1),
    BAD_AT("1.e5", 0, 2),
    BAD_AT("1.5e", 0, 4),
    BAD_AT("--1", 0, 1),
    BAD_AT("- 1", 0, 1),
    BAD_AT("1ee2", 0, 2),
    BAD_AT("0x10", 0, 1),
    BAD_AT("0x1F", 0, 1),
    BAD_AT("1_000", 0, 1),
    BAD_AT("NaN", 0, 0),
    BAD_AT("nan", 0, 2),
    BAD_AT("[NaN]", 1, 1),
    BAD_AT("Infinity", 0, 0),
    BAD_AT("-Infinity", 0, 1),
    /* quotes, comments, keys, colons */
    BAD_AT("'a'", 0, 0),
    BAD_AT("['a']", 1, 1),
    BAD_AT("{'a':1}", 1, 1),
    BAD_AT("/* c */ 1", 0, 0),
    BAD_AT("1 // c", 2, 2),
    BAD_AT("[1 /* c */]", 3, 3),
    BAD_AT("[1,2]// c", 5, 5),
    BAD_AT("# c\n1", 0, 0),
    BAD_AT("{a:1}", 1, 1),
    BAD_AT("{1:2}", 1, 1),
    BAD_AT("{null:1}", 1, 1),
    BAD_AT("{\"a\" 1}", 5, 5),
    BAD_AT("{\"a\"}", 4, 4),
    BAD_AT("{\"a\":}", 5, 5),
    BAD_AT("{\"a\",1}", 4, 4),
    BAD_AT("{\"a\"::1}", 5, 5),
    BAD_AT("{\"a\"=1}", 4, 4),
    BAD_AT("[1 2]", 3, 3),
    BAD_AT("[\"a\" \"b\"]", 5, 5),
    BAD_AT("{\"a\":1 \"b\":2}", 7, 7),
    BAD_AT("[1:2]", 2, 2),
    /* unterminated, mismatched */
    BAD_AT("\"abc", 0, 4),
    BAD_AT("\"", 0, 1),
    BAD_AT("\"abc\\", 0, 5),
    BAD_AT("\"\\\"", 0, 3),
    BAD_AT("\"\\u00", 0, 5),
    BAD_AT("[", 0, 1),
    BAD_AT("[1", 0, 2),
    BAD_AT("[1,", 0, 3),
    BAD_AT("[[]", 0, 3),
    BAD_AT("{", 0, 1),
    BAD_AT("{\"a", 0, 3),
    BAD_AT("{\"a\"", 0, 4),
    BAD_AT("{\"a\":", 0, 5),
    BAD_AT("{\"a\":1", 0, 6),
    BAD_AT("[}", 1, 1),
    BAD_AT("{]", 1, 1),
    BAD_AT("[1}", 2, 2),
    BAD_AT("{\"a\":1]", 6, 6),
    BAD_AT("]", 0, 0),
    BAD_AT("}", 0, 0),
    BAD_AT(":", 0, 0),
    BAD_AT(",", 0, 0),
    /* raw control characters in strings */
    BAD_AT("\"a\x01"
           "b\"",
           2, 2),
    BAD_AT("\"\x1f\"", 1, 1),
    BAD_AT("\"a\nb\"", 2, 2),
    BAD_AT("\"\t\"", 1, 1),
    BAD_AT("\"\r\"", 1, 1),
    BAD_AT("\"\x00\"", 1, 1),
    BAD_AT("{\"k\x01\":1}", 3, 3),
    /* escapes */
    BAD_AT("\"\\x\"", 1, 2),
    BAD_AT("\"\\u12\"", 1, 5),
    BAD_AT("\"\\u12G4\"", 1, 5),
    BAD_AT("\"\\u00e\"", 1, 6),
    BAD_AT("\"\\u\"", 1, 3),
    BAD_AT("\"\\u-123\"", 1, 3),
    BAD_AT("\"\\u 123\"", 1, 3),
    BAD_AT("\"\\a\"", 1, 2),
    BAD_AT("\"\\U0041\"", 1, 2),
    BAD_AT("\"\\'\"", 1, 2),
    BAD_AT("\"\\ \"", 1, 2),
    BAD_AT("\"\\0\"", 1, 2),
    /* surrogates */
    BAD_AT("\"\\ud83d\"", 1, 7),
    BAD_AT("\"\\ud83d\\u0041\"", 1, 13),
    BAD_AT("\"\\ud83dx\"", 1, 7),
    BAD_AT("\"\\ud83d\\n\"", 1, 8),
    BAD_AT("\"\\ud83d\\ud83d\"", 1, 13),
    BAD_AT("\"\\uDBFF\\uE000\"", 1, 13),
    BAD_AT("\"\\ude00\"", 1, 7),
    BAD_AT("\"\\ude00\\ud83d\"", 1, 7),
    BAD_AT("\"\\udc00\"", 1, 7),
    BAD_AT("{\"\\ud83d\":1}", 2, 8),
    /* UTF-8 */
    BAD_AT("\"\xff\"", 1, 1),
    BAD_AT("\"\xfe\"", 1, 1),
    BAD_AT("\"\x80\"", 1, 1),
    BAD_AT("\"\xbf\"", 1, 1),
    BAD_AT("\"\xc0\x80\"", 1, 2),
    BAD_AT("\"\xc1\xbf\"", 1, 2),
    BAD_AT("\"\xe0\x80\x80\"", 1, 3),
    BAD_AT("\"\xe0\x9f\xbf\"", 1, 3),
    BAD_AT("\"\xed\xa0\x80\"", 1, 3),
    BAD_AT("\"\xed\xbf\xbf\"", 1, 3),
    BAD_AT("\"\xf0\x80\x80\x80\"", 1, 4),
    BAD_AT("\"\xf0\x8f\xbf\xbf\"", 1, 4),
    BAD_AT("\"\xf4\x90\x80\x80\"", 1, 4),
    BAD_AT("\"\xf5\x80\x80\x80\"", 1, 4),
    BAD_AT("\"\xc3\x28\"", 1, 2),
    BAD_AT("\"\xe2\x28\xa1\"", 1, 3),
    BAD_AT("\"a\xc3\"", 2, 3),
    BAD_AT("\"\xe2\x82\"", 1, 3),
    BAD_AT("\"\xf0\x9f\x98\"", 1, 4),
    BAD_AT("\"\xc3", 1, 2),
    BAD_AT("\"\xf0\x9f\x98", 1, 4),
    BAD_AT("{\"\xff\":1}", 2, 2),
    BAD_AT("[\xc3\xa9]", 1, 1),
    BAD_AT("\xc3\xa9", 0, 0),
    /* literals */
    BAD_AT("tru", 0, 3),
    BAD_AT("nul", 0, 3),
    BAD_AT("fals", 0, 4),
    BAD_AT("t", 0, 1),
    BAD_AT("falsey", 0, 5),
    BAD_AT("nulll", 0, 4),
    BAD_AT("truex", 0, 4),
    BAD_AT("nul1", 0, 3),
    BAD_AT("trUe", 0, 2),
    BAD_AT("True", 0, 0),
    BAD_AT("NULL", 0, 0),
    BAD_AT("[tru]", 1, 4),
    BAD_AT("[true false]", 6, 6),
    /* NUL bytes and other whitespace outside strings */
    BAD_AT("\x00", 0, 0),
    BAD_AT("\0"
           "1",
           0, 0),
    BAD_AT("1\x00", 1, 1),
    BAD_AT("{}\x00", 2, 2),
    BAD_AT("[1\x00]", 2, 2),
    BAD_AT("[1,\x00"
           "2]",
           3, 3),
    BAD_AT("\v1", 0, 0),
    BAD_AT("\f1", 0, 0),
    BAD_AT("[1,\v2]", 3, 3),
    BAD_AT("1\xa0", 1, 1),
    BAD_AT("\xc2\xa0"
           "1",
           0, 0),
};

static void run_bad(const struct bad_t *c)
{
    parsed_t p = parse(c->in, c->len);
    const char *what = show(c->in, c->len);
    expect_refused(&p, what);
    if (p.rc == -1 && p.err.offset <= p.len)
        cr_expect(p.err.offset >= c->lo && p.err.offset <= c->hi, "%s: problem reported at %zu (%s), want %zu..%zu", what,
                  p.err.offset, p.err.reason != NULL ? p.err.reason : "(no reason)", c->lo, c->hi);
    dispose(&p);
}

Test(json, invalid_documents)
{
    for (size_t i = 0; i != COUNTOF(invalid_cases); ++i)
        run_bad(&invalid_cases[i]);
}

/* the exact line and column (bytes) of errors in multi-line documents */
Test(json, error_line_and_column)
{
    static const struct {
        const char *in;
        unsigned line, col_lo, col_hi;
    } cases[] = {
        {"[1,2,x]", 1, 6, 6},
        {"[\n1,\n  x]", 3, 3, 3},
        {"{\n\"a\":1,\n\"b\"2}", 3, 4, 4},
        {"{}\n\n  x", 3, 3, 3},
        {"[\n\"ok\",\n\"\xff\"]", 3, 2, 2},
        {"[1,\n2,\n\"ab\x01\"]", 3, 4, 4},
        {"\n\n\n\n1 2", 5, 3, 3},
        {"[\"\xc3\xa9\",\n \"\xc3\xa9\" x]", 2, 7, 7},
        {"{\n  \"a\": 1,\n  \"a\": 2\n}", 3, 3, 5},
        {"[\n  [\n    01\n  ]\n]", 3, 5, 6},
        {"1\r\n2", 2, 1, 1},
    };
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        size_t n = strlen(cases[i].in);
        parsed_t p = parse(cases[i].in, n);
        const char *what = show(cases[i].in, n);
        expect_refused(&p, what);
        if (p.rc == -1) {
            cr_expect_eq(p.err.line, cases[i].line, "%s: line %u, want %u", what, p.err.line, cases[i].line);
            cr_expect(p.err.column >= cases[i].col_lo && p.err.column <= cases[i].col_hi, "%s: column %u, want %u..%u", what,
                      p.err.column, cases[i].col_lo, cases[i].col_hi);
        }
        dispose(&p);
    }
}

/* the reason is a fixed phrase: it never echoes what the client sent */
Test(json, reason_does_not_quote_the_input)
{
    static const char *cases[] = {
        "\"zqxj\x01\"", "[zqxj]", "zqxj", "{\"zqxj\":1,\"zqxj\":2}", "{zqxj:1}", "\"\\zqxj\"", "[1,zqxj]", "\"zqxj",
    };
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        parsed_t p = parse(cases[i], strlen(cases[i]));
        expect_refused(&p, show(cases[i], strlen(cases[i])));
        if (p.rc == -1 && p.err.reason != NULL)
            cr_expect_null(strstr(p.err.reason, "zqxj"), "%s: reason \"%s\" quotes the input", show(cases[i], strlen(cases[i])),
                           p.err.reason);
        dispose(&p);
    }
}

/* depth: TG_JSON_MAX_DEPTH containers deep is accepted, one more is refused at the container that is too deep */

Test(json, depth_limit_arrays)
{
    size_t n;
    char *s = nest("[", TG_JSON_MAX_DEPTH, "", "]", &n);
    parsed_t p = parse_ok(s, n);
    cr_expect_eq(p.v.type, TG_JSON_ARRAY);
    cr_expect_eq(p.v.len, n);
    /* walk down to the innermost (empty) array */
    tg_json_t v = p.v;
    for (int d = 1; d != TG_JSON_MAX_DEPTH; ++d) {
        tg_json_t e;
        cr_assert(tg_json_array_get(&v, 0, &e), "depth %d: no element", d);
        cr_assert_eq(e.type, TG_JSON_ARRAY, "depth %d: type %s", d, type_name(e.type));
        cr_assert_eq(e.len, v.len - 2, "depth %d: len %zu, want %zu", d, e.len, v.len - 2);
        v = e;
    }
    cr_expect_eq(v.len, 2);
    cr_expect_eq(tg_json_count(&v), 0);
    dispose(&p);
    free(s);

    s = nest("[", TG_JSON_MAX_DEPTH, "0", "]", &n);
    p = parse_ok(s, n);
    dispose(&p);
    free(s);

    s = nest("[", TG_JSON_MAX_DEPTH + 1, "", "]", &n);
    p = parse(s, n);
    expect_refused(&p, "arrays one deeper than the limit");
    cr_expect_eq(p.err.offset, TG_JSON_MAX_DEPTH, "arrays one deeper than the limit: offset %zu, want %d", p.err.offset,
                 TG_JSON_MAX_DEPTH);
    dispose(&p);
    free(s);

    s = nest("[", TG_JSON_MAX_DEPTH, "{}", "]", &n);
    p = parse(s, n);
    expect_refused(&p, "an object inside arrays at the limit");
    cr_expect_eq(p.err.offset, TG_JSON_MAX_DEPTH, "an object inside arrays at the limit: offset %zu", p.err.offset);
    dispose(&p);
    free(s);

    s = nest("[", TG_JSON_MAX_DEPTH, "[0]", "]", &n);
    p = parse(s, n);
    expect_refused(&p, "a scalar one deeper than the limit");
    dispose(&p);
    free(s);
}

Test(json, depth_limit_objects)
{
    size_t n;
    char *s = nest("{\"a\":", TG_JSON_MAX_DEPTH, "1", "}", &n);
    parsed_t p = parse_ok(s, n);
    cr_expect_eq(p.v.type, TG_JSON_OBJECT);
    cr_expect_eq(p.v.len, n);
    tg_json_t v = p.v;
    for (int d = 1; d != TG_JSON_MAX_DEPTH; ++d) {
        tg_json_t e;
        cr_assert(tg_json_object_get(&v, "a", 1, &e), "depth %d: no member", d);
        cr_assert_eq(e.type, TG_JSON_OBJECT, "depth %d: type %s", d, type_name(e.type));
        v = e;
    }
    cr_expect(text_is(&v, "{\"a\":1}", 7), "innermost: %s", show(v.text, v.len));
    dispose(&p);
    free(s);

    s = nest("{\"a\":", TG_JSON_MAX_DEPTH - 1, "{}", "}", &n);
    p = parse_ok(s, n);
    dispose(&p);
    free(s);

    s = nest("{\"a\":", TG_JSON_MAX_DEPTH + 1, "1", "}", &n);
    p = parse(s, n);
    expect_refused(&p, "objects one deeper than the limit");
    cr_expect_eq(p.err.offset, 5 * TG_JSON_MAX_DEPTH, "objects one deeper than the limit: offset %zu, want %d", p.err.offset,
                 5 * TG_JSON_MAX_DEPTH);
    dispose(&p);
    free(s);

    s = nest("{\"a\":", TG_JSON_MAX_DEPTH, "[]", "}", &n);
    p = parse(s, n);
    expect_refused(&p, "an array inside objects at the limit");
    cr_expect_eq(p.err.offset, 5 * TG_JSON_MAX_DEPTH, "an array inside objects at the limit: offset %zu", p.err.offset);
    dispose(&p);
    free(s);
}

Test(json, depth_limit_mixed_and_siblings)
{
    size_t n;
    /* arrays and objects alternating, TG_JSON_MAX_DEPTH in all */
    char *s = nest("[{\"k\":", TG_JSON_MAX_DEPTH / 2, "0", "}]", &n);
    parsed_t p = parse_ok(s, n);
    dispose(&p);
    free(s);
    s = nest("[{\"k\":", TG_JSON_MAX_DEPTH / 2, "[0]", "}]", &n);
    p = parse(s, n);
    expect_refused(&p, "mixed, one deeper than the limit");
    dispose(&p);
    free(s);

    /* depth goes back down: two siblings each at the limit */
    size_t m;
    char *inner = nest("[", TG_JSON_MAX_DEPTH - 1, "", "]", &m);
    char *both = malloc(2 * m + 4);
    cr_assert_not_null(both);
    sprintf(both, "[%s,%s]", inner, inner);
    p = parse_ok(both, 2 * m + 3);
    cr_expect_eq(tg_json_count(&p.v), 2);
    dispose(&p);
    free(both);
    free(inner);

    /* far too deep: refused at the limit, without exhausting the stack */
    s = nest("[", 1000000, "", "]", &n);
    p = parse(s, n);
    expect_refused(&p, "a million nested arrays");
    cr_expect_eq(p.err.offset, TG_JSON_MAX_DEPTH, "a million nested arrays: offset %zu", p.err.offset);
    dispose(&p);
    free(s);
    s = nest("[", 1000000, "", "", &n);
    p = parse(s, n);
    expect_refused(&p, "a million unclosed arrays");
    dispose(&p);
    free(s);
}

/* duplicate keys: refused at any depth, compared after unescaping; the problem is the second key */

static const struct bad_t duplicate_cases[] = {
    BAD_AT("{\"a\":1,\"a\":2}", 7, 9),
    BAD_AT("{\"a\":1,\"b\":2,\"a\":3}", 13, 15),
    BAD_AT("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"b\":5}", 25, 27),
    BAD_AT("[{\"a\":1,\"a\":2}]", 8, 10),
    BAD_AT("[1,[{\"x\":{\"a\":1,\"a\":2}}]]", 16, 18),
    BAD_AT("{\"o\":{\"k\":1,\"k\":2}}", 12, 14),
    BAD_AT("{\"x\":[{\"y\":1},{\"z\":2,\"z\":3}]}", 21, 23),
    BAD_AT("{\"a\":{},\"a\":[]}", 8, 10),
    BAD_AT("{\"a\":1,\"\\u0061\":2}", 7, 14),
    BAD_AT("{\"\\u0061\":1,\"a\":2}", 12, 14),
    BAD_AT("{\"\\u00e9\":1,\"\xc3\xa9\":2}", 12, 15),
    BAD_AT("{\"\\u00e9\":1,\"\\u00E9\":2}", 12, 19),
    BAD_AT("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", 18, 23),
    BAD_AT("{\"\\/\":1,\"/\":2}", 8, 10),
    BAD_AT("{\"\\n\":1,\"\\u000a\":2}", 8, 15),
    BAD_AT("{\"\":1,\"\":2}", 6, 7),
    BAD_AT("{\"a\\u0000\":1,\"a\\u0000\":2}", 13, 21),
};

Test(json, duplicate_keys_refused)
{
    for (size_t i = 0; i != COUNTOF(duplicate_cases); ++i)
        run_bad(&duplicate_cases[i]);
}

Test(json, distinct_keys_accepted)
{
    static const struct {
        const char *in;
        size_t members;
    } cases[] = {
        {"{\"a\":1,\"ab\":2}", 2},
        {"{\"ab\":1,\"a\":2}", 2},
        {"{\"a\":1,\"A\":2}", 2},
        {"{\"a\":1,\"a \":2}", 2},
        {"{\"a\":{\"a\":1}}", 1},
        {"{\"a\":1,\"b\":{\"a\":2}}", 2},
        {"[{\"a\":1},{\"a\":2}]", 2},
        {"{\"a\":[{\"b\":1}],\"b\":[{\"a\":1}]}", 2},
        {"{\"a\\u0000\":1,\"a\":2}", 2},
        {"{\"a\":1,\"a\\u0000\":2}", 2},
        {"{\"\\u0000\":1,\"\":2}", 2},
        {"{\"a\\u0000b\":1,\"a\\u0000c\":2}", 2},
        {"{\"\":1,\" \":2}", 2},
        {"{\"\\u0061b\":1,\"a\":2}", 2},
        {"{\"\\u00e9\":1,\"\\u00e8\":2,\"e\":3}", 3},
        {"{\"\\ud83d\\ude00\":1,\"\\ud83d\\ude01\":2}", 2},
        {"{\"\\\"\":1,\"\\\\\":2,\"\\/\":3}", 3},
        {"{\"abcdefghijklmnopqrstuvwxyz0\":1,\"abcdefghijklmnopqrstuvwxyz1\":2}", 2},
    };
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        parsed_t p = parse(cases[i].in, strlen(cases[i].in));
        const char *what = show(cases[i].in, strlen(cases[i].in));
        cr_expect_eq(p.rc, 0, "%s: refused (%s at %zu)", what, p.err.reason != NULL ? p.err.reason : "(no reason)", p.err.offset);
        if (p.rc == 0)
            cr_expect_eq(tg_json_count(&p.v), cases[i].members, "%s: %zu members, want %zu", what, tg_json_count(&p.v),
                         cases[i].members);
        dispose(&p);
    }
}

/* {"k0":0,...,"k999":999}, with key `last` in place of "k999" when not NULL; *last_at gets where the last key starts */
static char *big_object(const char *last, size_t *len, size_t *last_at)
{
    size_t cap = 1000 * 32, n = 0;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    s[n++] = '{';
    for (int i = 0; i != 1000; ++i) {
        if (i != 0)
            s[n++] = ',';
        if (i == 999) {
            *last_at = n;
            if (last != NULL) {
                n += (size_t)sprintf(s + n, "%s:%d", last, i);
                continue;
            }
        }
        n += (size_t)sprintf(s + n, "\"k%d\":%d", i, i);
    }
    s[n++] = '}';
    s[n] = '\0';
    *len = n;
    return s;
}

Test(json, duplicate_keys_in_a_big_object)
{
    size_t n, last_at;
    char *s = big_object(NULL, &n, &last_at);
    parsed_t p = parse_ok(s, n);
    cr_expect_eq(tg_json_count(&p.v), 1000);
    tg_json_t v;
    cr_expect(tg_json_object_get(&p.v, "k500", 4, &v) && text_is(&v, "500", 3), "k500");
    cr_expect(tg_json_object_get(&p.v, "k999", 4, &v) && text_is(&v, "999", 3), "k999");
    cr_expect(!tg_json_object_get(&p.v, "k1000", 5, &v), "k1000");
    dispose(&p);
    free(s);

    static const struct {
        const char *last;
        size_t key_len;
    } dups[] = {{"\"k0\"", 4}, {"\"k500\"", 6}, {"\"\\u006b0\"", 9}, {"\"k\\u0030\"", 9}};
    for (size_t i = 0; i != COUNTOF(dups); ++i) {
        s = big_object(dups[i].last, &n, &last_at);
        p = parse(s, n);
        expect_refused(&p, dups[i].last);
        if (p.rc == -1)
            cr_expect(p.err.offset >= last_at && p.err.offset < last_at + dups[i].key_len,
                      "last key %s: problem reported at %zu, want %zu..%zu", dups[i].last, p.err.offset, last_at,
                      last_at + dups[i].key_len - 1);
        dispose(&p);
        free(s);
    }
}

/* walks: every element or member, exact windows, in document order, then 0 */

struct member_t {
    const char *key; /* NULL for array elements */
    const char *value;
    tg_json_type_t type;
};

static const struct {
    const char *doc;
    size_t n;
    struct member_t m[8];
} walk_cases[] = {
    {"[]", 0, {{0}}},
    {"[ \t\r\n]", 0, {{0}}},
    {"{}", 0, {{0}}},
    {"{ \n }", 0, {{0}}},
    {"0", 0, {{0}}},
    {"\"[1,2]\"", 0, {{0}}},
    {"null", 0, {{0}}},
    {"true", 0, {{0}}},
    {"[1]", 1, {{NULL, "1", TG_JSON_NUMBER}}},
    {"[ 1 ]", 1, {{NULL, "1", TG_JSON_NUMBER}}},
    {"[1, \"two\" ,{\"a\":[3]},[ ],null,true,false, -0.5e3 ]",
     8,
     {{NULL, "1", TG_JSON_NUMBER},
      {NULL, "\"two\"", TG_JSON_STRING},
      {NULL, "{\"a\":[3]}", TG_JSON_OBJECT},
      {NULL, "[ ]", TG_JSON_ARRAY},
      {NULL, "null", TG_JSON_NULL},
      {NULL, "true", TG_JSON_TRUE},
      {NULL, "false", TG_JSON_FALSE},
      {NULL, "-0.5e3", TG_JSON_NUMBER}}},
    {"[\"a,b\",\"]\",\"\\\"]\",\"\\\\\",\"{\",\"}\"]",
     6,
     {{NULL, "\"a,b\"", TG_JSON_STRING},
      {NULL, "\"]\"", TG_JSON_STRING},
      {NULL, "\"\\\"]\"", TG_JSON_STRING},
      {NULL, "\"\\\\\"", TG_JSON_STRING},
      {NULL, "\"{\"", TG_JSON_STRING},
      {NULL, "\"}\"", TG_JSON_STRING}}},
    {"[[1,[2]],{\"x\":{\"y\":[]}}]", 2, {{NULL, "[1,[2]]", TG_JSON_ARRAY}, {NULL, "{\"x\":{\"y\":[]}}", TG_JSON_OBJECT}}},
    {"[\n  {\n    \"a\": [ 1, 2 ]\n  }\n]", 1, {{NULL, "{\n    \"a\": [ 1, 2 ]\n  }", TG_JSON_OBJECT}}},
    {"{\"a\":1}", 1, {{"\"a\"", "1", TG_JSON_NUMBER}}},
    {"{ \"a\" : 1 ,\n\t\"b\\n\":\"x\" , \"\\u00e9\":[1, 2] ,\"\":{ } }",
     4,
     {{"\"a\"", "1", TG_JSON_NUMBER},
      {"\"b\\n\"", "\"x\"", TG_JSON_STRING},
      {"\"\\u00e9\"", "[1, 2]", TG_JSON_ARRAY},
      {"\"\"", "{ }", TG_JSON_OBJECT}}},
    {"{\"k\\\"ey\":{\"inner\":{\"a\":1,\"b\":2}},\"z\":null,\"t\":true,\"f\":false,\"s\":\"}\"}",
     5,
     {{"\"k\\\"ey\"", "{\"inner\":{\"a\":1,\"b\":2}}", TG_JSON_OBJECT},
      {"\"z\"", "null", TG_JSON_NULL},
      {"\"t\"", "true", TG_JSON_TRUE},
      {"\"f\"", "false", TG_JSON_FALSE},
      {"\"s\"", "\"}\"", TG_JSON_STRING}}},
    {"{\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}", 1, {{"\"\xc3\xa9\"", "\"\xf0\x9f\x98\x80\"", TG_JSON_STRING}}},
};

Test(json, walks)
{
    static const char marker[] = "untouched";
    for (size_t i = 0; i != COUNTOF(walk_cases); ++i) {
        const char *doc = walk_cases[i].doc;
        char what[400]; /* outlives the show() calls below */
        snprintf(what, sizeof(what), "%s", show(doc, strlen(doc)));
        parsed_t p = parse_ok(doc, strlen(doc));
        int is_object = p.v.type == TG_JSON_OBJECT;
        tg_json_iter_t it;
        tg_json_iter_init(&it, &p.v);
        const char *prev_end = p.v.text;
        size_t k;
        for (k = 0; k != walk_cases[i].n; ++k) {
            const struct member_t *m = &walk_cases[i].m[k];
            tg_json_t key = {TG_JSON_NULL, marker, sizeof(marker)}, value = {0};
            int more = tg_json_iter_next(&it, &key, &value);
            cr_expect_eq(more, 1, "%s: ended after %zu, want %zu", what, k, walk_cases[i].n);
            if (more != 1)
                break;
            cr_expect(text_is(&value, m->value, strlen(m->value)), "%s [%zu]: value %s, want %s", what, k,
                      value.text != NULL ? show(value.text, value.len) : "NULL", show(m->value, strlen(m->value)));
            cr_expect_eq(value.type, m->type, "%s [%zu]: type %s, want %s", what, k, type_name(value.type), type_name(m->type));
            if (is_object) {
                cr_expect(text_is(&key, m->key, strlen(m->key)), "%s [%zu]: key %s, want %s", what, k,
                          key.text != NULL ? show(key.text, key.len) : "NULL", show(m->key, strlen(m->key)));
                cr_expect_eq(key.type, TG_JSON_STRING, "%s [%zu]: key type %s", what, k, type_name(key.type));
                cr_expect(key.text >= prev_end && key.text + key.len <= value.text, "%s [%zu]: key out of order", what, k);
            } else {
                cr_expect(key.type == TG_JSON_NULL && key.text == marker && key.len == sizeof(marker),
                          "%s [%zu]: the key of an array element was written", what, k);
                cr_expect(value.text >= prev_end, "%s [%zu]: out of document order", what, k);
            }
            cr_expect(value.text > p.v.text && value.text + value.len < p.v.text + p.v.len, "%s [%zu]: not inside the container",
                      what, k);
            prev_end = value.text + value.len;
        }
        if (k == walk_cases[i].n) {
            tg_json_t key, value;
            cr_expect_eq(tg_json_iter_next(&it, &key, &value), 0, "%s: more than %zu", what, walk_cases[i].n);
            cr_expect_eq(tg_json_iter_next(&it, &key, &value), 0, "%s: more after the end", what);
        }
        cr_expect_eq(tg_json_count(&p.v), walk_cases[i].n, "%s: count %zu, want %zu", what, tg_json_count(&p.v), walk_cases[i].n);
        dispose(&p);
    }
}

Test(json, walk_arrays_with_null_key)
{
    parsed_t p = parse_ok("[1,[2],{\"a\":3}]", strlen("[1,[2],{\"a\":3}]"));
    tg_json_iter_t it;
    tg_json_t v;
    tg_json_iter_init(&it, &p.v);
    cr_expect(tg_json_iter_next(&it, NULL, &v) && text_is(&v, "1", 1), "first element");
    cr_expect(tg_json_iter_next(&it, NULL, &v) && text_is(&v, "[2]", 3), "second element");
    cr_expect(tg_json_iter_next(&it, NULL, &v) && text_is(&v, "{\"a\":3}", 7), "third element");
    cr_expect(!tg_json_iter_next(&it, NULL, &v), "end");
    dispose(&p);
}

/* walks of values found by walks stay inside them */
Test(json, nested_walks)
{
    const char doc[] = "{\"a\":{\"b\":[1,[2,3]],\"c\":4},\"b\":5}";
    parsed_t p = parse_ok(doc, sizeof(doc) - 1);
    tg_json_iter_t it;
    tg_json_t k, a, b, c, e;
    tg_json_iter_init(&it, &p.v);
    cr_assert(tg_json_iter_next(&it, &k, &a));
    cr_expect(text_is(&k, "\"a\"", 3));
    cr_assert(text_is(&a, "{\"b\":[1,[2,3]],\"c\":4}", 21), "a: %s", show(a.text, a.len));

    tg_json_iter_t ia;
    tg_json_iter_init(&ia, &a);
    cr_assert(tg_json_iter_next(&ia, &k, &b));
    cr_expect(text_is(&k, "\"b\"", 3));
    cr_expect(text_is(&b, "[1,[2,3]]", 9), "a.b: %s", show(b.text, b.len));
    cr_assert(tg_json_iter_next(&ia, &k, &c));
    cr_expect(text_is(&k, "\"c\"", 3));
    cr_expect(text_is(&c, "4", 1), "a.c: %s", show(c.text, c.len));
    cr_expect(!tg_json_iter_next(&ia, &k, &c), "a has two members (the outer \"b\" is not one)");
    cr_expect_eq(tg_json_count(&a), 2);

    tg_json_iter_t ib;
    tg_json_iter_init(&ib, &b);
    cr_assert(tg_json_iter_next(&ib, NULL, &e));
    cr_expect(text_is(&e, "1", 1));
    cr_assert(tg_json_iter_next(&ib, NULL, &e));
    cr_expect(text_is(&e, "[2,3]", 5));
    cr_expect_eq(e.type, TG_JSON_ARRAY);
    cr_expect(!tg_json_iter_next(&ib, NULL, &c), "a.b has two elements");
    cr_expect_eq(tg_json_count(&b), 2);
    cr_expect_eq(tg_json_count(&e), 2);
    tg_json_t x;
    cr_expect(tg_json_array_get(&e, 1, &x) && text_is(&x, "3", 1), "a.b[1][1]");
    cr_expect(!tg_json_array_get(&e, 2, &x), "a.b[1][2]");

    cr_assert(tg_json_iter_next(&it, &k, &e));
    cr_expect(text_is(&k, "\"b\"", 3));
    cr_expect(text_is(&e, "5", 1));
    cr_expect(!tg_json_iter_next(&it, &k, &e));
    dispose(&p);
}

Test(json, count)
{
    static const struct {
        const char *doc;
        size_t n;
    } cases[] = {
        {"[]", 0},
        {"[ ]", 0},
        {"{}", 0},
        {"{\n}", 0},
        {"[1]", 1},
        {"[[]]", 1},
        {"[[1,2,3]]", 1},
        {"[1,[2,3],{\"a\":4}]", 3},
        {"[null,null,null,null,null]", 5},
        {"{\"a\":1,\"b\":2}", 2},
        {"{\"a\":[1,2,3],\"b\":{\"c\":1,\"d\":2}}", 2},
        {"[\"a,b\",\",\"]", 2},
        {"[\"]\",\"[\"]", 2},
        {"{\"a\":\"}\",\"b\":\"{\"}", 2},
        {"{\"a,b\":\",\"}", 1},
        {"0", 0},
        {"\"a,b\"", 0},
        {"null", 0},
        {"true", 0},
        {"false", 0},
        {"-1.5", 0},
    };
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        parsed_t p = parse_ok(cases[i].doc, strlen(cases[i].doc));
        cr_expect_eq(tg_json_count(&p.v), cases[i].n, "%s: count %zu, want %zu", cases[i].doc, tg_json_count(&p.v), cases[i].n);
        dispose(&p);
    }
}

/* lookups: keys given unescaped, compared whole */
Test(json, object_get)
{
    static const char doc[] = "{\"a\":1,\"ab\":[2],\"\\u00e9t\\u00e9\":\"summer\",\"k\\\"q\":null,\"\":0,\"n\\u0000ul\":true,"
                              "\"A\":{\"x\":false},\"\\ud83d\\ude00\":\"smile\"}";
#define FOUND(k, v, t) {k, sizeof(k) - 1, v, TG_JSON_##t}
#define MISSING(k) {k, sizeof(k) - 1, NULL, 0}
    static const struct {
        const char *key;
        size_t key_len;
        const char *value;
        tg_json_type_t type;
    } cases[] = {
        FOUND("a", "1", NUMBER),
        FOUND("ab", "[2]", ARRAY),
        FOUND("\xc3\xa9t\xc3\xa9", "\"summer\"", STRING),
        FOUND("k\"q", "null", NULL),
        FOUND("", "0", NUMBER),
        FOUND("n\0ul", "true", TRUE),
        FOUND("A", "{\"x\":false}", OBJECT),
        FOUND("\xf0\x9f\x98\x80", "\"smile\"", STRING),
        MISSING("b"),
        MISSING("abc"),
        MISSING("aa"),
        MISSING("a\0"),
        MISSING("\xc3\xa9"),
        MISSING("\xc3\xa9t\xc3\xa9s"),
        MISSING("n"),
        MISSING("n\0"),
        MISSING("n\0u"),
        MISSING("nul"),
        MISSING("\"a\""),
        MISSING("k\\\"q"),
        MISSING("\\u00e9t\\u00e9"),
        MISSING("\\ud83d\\ude00"),
        MISSING("x"),
        MISSING("false"),
    };
#undef FOUND
#undef MISSING
    parsed_t p = parse_ok(doc, sizeof(doc) - 1);
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        const char *what = show(cases[i].key, cases[i].key_len);
        tg_json_t v = {0};
        int found = tg_json_object_get(&p.v, cases[i].key, cases[i].key_len, &v);
        if (cases[i].value != NULL) {
            cr_expect_eq(found, 1, "key \"%s\": not found", what);
            if (found) {
                cr_expect(text_is(&v, cases[i].value, strlen(cases[i].value)), "key \"%s\": %s, want %s", what, show(v.text, v.len),
                          cases[i].value);
                cr_expect_eq(v.type, cases[i].type, "key \"%s\": type %s", what, type_name(v.type));
            }
        } else {
            cr_expect_eq(found, 0, "key \"%s\": found (%s)", what, found ? show(v.text, v.len) : "");
        }
    }
    tg_json_t v;
    cr_expect(tg_json_object_get(&p.v, "abX", 2, &v) && text_is(&v, "[2]", 3), "key_len bounds the key");
    cr_expect(tg_json_object_get(&p.v, "aX", 1, &v) && text_is(&v, "1", 1), "key_len bounds the key");
    dispose(&p);
}

Test(json, object_get_nested_and_empty)
{
    parsed_t p = parse_ok("{\"o\":{\"x\":1},\"x\":2}", 19);
    tg_json_t o, v;
    cr_assert(tg_json_object_get(&p.v, "o", 1, &o));
    cr_expect(tg_json_object_get(&o, "x", 1, &v) && text_is(&v, "1", 1), "o.x is the inner one");
    cr_expect(tg_json_object_get(&p.v, "x", 1, &v) && text_is(&v, "2", 1), "x is the outer one");
    dispose(&p);

    p = parse_ok("{\"o\":{\"y\":1},\"x\":2}", 19);
    cr_assert(tg_json_object_get(&p.v, "o", 1, &o));
    cr_expect(!tg_json_object_get(&o, "x", 1, &v), "o has no x (the outer one is not a member)");
    cr_expect(!tg_json_object_get(&p.v, "y", 1, &v), "y is not an outer member");
    dispose(&p);

    p = parse_ok("{ }", 3);
    cr_expect(!tg_json_object_get(&p.v, "", 0, &v), "empty object, empty key");
    cr_expect(!tg_json_object_get(&p.v, "a", 1, &v), "empty object");
    dispose(&p);
}

Test(json, array_get)
{
    static const char doc[] = "[10, \"x\" ,[1,2],{\"a\":1}, null]";
    static const struct {
        size_t i;
        const char *value;
        tg_json_type_t type;
    } cases[] = {
        {0, "10", TG_JSON_NUMBER},
        {1, "\"x\"", TG_JSON_STRING},
        {2, "[1,2]", TG_JSON_ARRAY},
        {3, "{\"a\":1}", TG_JSON_OBJECT},
        {4, "null", TG_JSON_NULL},
        {5, NULL, 0},
        {6, NULL, 0},
        {1000, NULL, 0},
        {SIZE_MAX, NULL, 0},
    };
    parsed_t p = parse_ok(doc, sizeof(doc) - 1);
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        tg_json_t v = {0};
        int found = tg_json_array_get(&p.v, cases[i].i, &v);
        if (cases[i].value != NULL) {
            cr_expect_eq(found, 1, "[%zu]: none", cases[i].i);
            if (found) {
                cr_expect(text_is(&v, cases[i].value, strlen(cases[i].value)), "[%zu]: %s, want %s", cases[i].i,
                          show(v.text, v.len), cases[i].value);
                cr_expect_eq(v.type, cases[i].type, "[%zu]: type %s", cases[i].i, type_name(v.type));
            }
        } else {
            cr_expect_eq(found, 0, "[%zu]: found (%s)", cases[i].i, found ? show(v.text, v.len) : "");
        }
    }
    dispose(&p);

    tg_json_t v;
    p = parse_ok("[]", 2);
    cr_expect(!tg_json_array_get(&p.v, 0, &v), "empty array [0]");
    dispose(&p);
    p = parse_ok("[[1,2],3]", 9);
    tg_json_t inner;
    cr_assert(tg_json_array_get(&p.v, 0, &inner));
    cr_expect(tg_json_array_get(&inner, 1, &v) && text_is(&v, "2", 1), "[0][1]");
    cr_expect(!tg_json_array_get(&inner, 2, &v), "[0][2] (3 is not in [1,2])");
    cr_expect(tg_json_array_get(&p.v, 1, &v) && text_is(&v, "3", 1), "[1]");
    dispose(&p);
}

/* strings: escapes and decoding, byte for byte */

#define STR(in, out, esc) {in, sizeof(in) - 1, out, sizeof(out) - 1, esc}

static const struct {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
    int escapes;
} string_cases[] = {
    STR("\"\"", "", 0),
    STR("\"abc\"", "abc", 0),
    STR("\"a b\"", "a b", 0),
    STR("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 0),
    STR("\"\x7f\"", "\x7f", 0),
    STR("\"'/[]{}:,\"", "'/[]{}:,", 0),
    STR("\"\\\"\"", "\"", 1),
    STR("\"\\\\\"", "\\", 1),
    STR("\"\\/\"", "/", 1),
    STR("\"a\\/b\"", "a/b", 1),
    STR("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 1),
    STR("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\" \\ / \b \f \n \r \t", 1),
    STR("\"\\u0000\"", "\0", 1),
    STR("\"a\\u0000b\"", "a\0b", 1),
    STR("\"\\u0000\\u0000\"", "\0\0", 1),
    STR("\"\\u0041\"", "A", 1),
    STR("\"\\u00e9\"", "\xc3\xa9", 1),
    STR("\"\\u00E9\"", "\xc3\xa9", 1),
    STR("\"\\u001f\\u0001\"", "\x1f\x01", 1),
    STR("\"\\u007f\"", "\x7f", 1),
    STR("\"\\u0080\"", "\xc2\x80", 1),
    STR("\"\\u07ff\"", "\xdf\xbf", 1),
    STR("\"\\u0800\"", "\xe0\xa0\x80", 1),
    STR("\"\\u20ac\"", "\xe2\x82\xac", 1),
    STR("\"\\u20AC\"", "\xe2\x82\xac", 1),
    STR("\"\\ud7ff\"", "\xed\x9f\xbf", 1),
    STR("\"\\ue000\"", "\xee\x80\x80", 1),
    STR("\"\\uffff\"", "\xef\xbf\xbf", 1),
    STR("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 1),
    STR("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 1),
    STR("\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 1),
    STR("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 1),
    STR("\"\\u005c\"", "\\", 1),
    STR("\"\\u0022\"", "\"", 1),
    STR("\"\\\\u0041\"", "\\u0041", 1),
    STR("\"\\\\n\"", "\\n", 1),
    STR("\"x\\u00e9y\\ud83d\\ude00z\\n\"", "x\xc3\xa9y\xf0\x9f\x98\x80z\n", 1),
    STR("\"\xc3\xa9\\t\xc3\xa9\"", "\xc3\xa9\t\xc3\xa9", 1),
};

/* decodes `v` into a buffer of v->len bytes followed by guard bytes, checks nothing past v->len was written */
static size_t decode_checked(const tg_json_t *v, char *out, const char *what)
{
    enum { GUARD = 16 };
    char *dst = malloc(v->len + GUARD);
    cr_assert_not_null(dst);
    memset(dst, 0x5a, v->len + GUARD);
    size_t n = tg_json_string_decode(v, dst);
    cr_expect_leq(n, v->len, "%s: decoded %zu bytes from %zu", what, n, v->len);
    for (size_t i = 0; i != GUARD; ++i)
        cr_expect_eq(dst[v->len + i], 0x5a, "%s: wrote past v->len (byte %zu)", what, v->len + i);
    memcpy(out, dst, n <= v->len ? n : v->len);
    free(dst);
    return n;
}

Test(json, strings)
{
    for (size_t i = 0; i != COUNTOF(string_cases); ++i) {
        const char *what = show(string_cases[i].in, string_cases[i].in_len);
        parsed_t p = parse_ok(string_cases[i].in, string_cases[i].in_len);
        cr_expect_eq(p.v.type, TG_JSON_STRING, "%s: type %s", what, type_name(p.v.type));
        int esc = tg_json_string_has_escapes(&p.v) != 0;
        cr_expect_eq(esc, string_cases[i].escapes, "%s: has_escapes %d, want %d", what, esc, string_cases[i].escapes);
        if (!string_cases[i].escapes)
            cr_expect(p.v.len - 2 == string_cases[i].out_len && memcmp(p.v.text + 1, string_cases[i].out, p.v.len - 2) == 0,
                      "%s: content between the quotes", what);
        char out[64];
        size_t n = decode_checked(&p.v, out, what);
        cr_expect_eq(n, string_cases[i].out_len, "%s: decoded %zu bytes (%s), want %zu", what, n, show(out, n),
                     string_cases[i].out_len);
        if (n == string_cases[i].out_len)
            cr_expect_eq(memcmp(out, string_cases[i].out, n), 0, "%s: decoded %s, want %s", what, show(out, n),
                         show(string_cases[i].out, string_cases[i].out_len));
        dispose(&p);
    }
}

/* strings found by walks and lookups: keys decode too, and nothing past the window is read */
Test(json, strings_inside_containers)
{
    const char doc[] = "{\"\\u00e9\":\"\\u00e8\",\"a\":[\"a\\n\",\"b\",\"x\",\"\\\\\"],\"plain\":\"p\"}";
    parsed_t p = parse_ok(doc, sizeof(doc) - 1);
    tg_json_iter_t it;
    tg_json_t k, v, e;
    char out[16];
    tg_json_iter_init(&it, &p.v);
    cr_assert(tg_json_iter_next(&it, &k, &v));
    cr_expect(tg_json_string_has_escapes(&k), "key \\u00e9 has escapes");
    cr_expect(decode_checked(&k, out, "key") == 2 && memcmp(out, "\xc3\xa9", 2) == 0, "key decodes to C3 A9");
    cr_expect(decode_checked(&v, out, "value") == 2 && memcmp(out, "\xc3\xa8", 2) == 0, "value decodes to C3 A8");

    cr_assert(tg_json_object_get(&p.v, "a", 1, &v));
    cr_assert(tg_json_array_get(&v, 0, &e));
    cr_expect(tg_json_string_has_escapes(&e), "a[0] has escapes");
    cr_expect(decode_checked(&e, out, "a[0]") == 2 && memcmp(out, "a\n", 2) == 0, "a[0] decodes to a LF");
    cr_assert(tg_json_array_get(&v, 1, &e));
    cr_expect(!tg_json_string_has_escapes(&e), "a[1] \"b\" has none (the escape after it is not its own)");
    cr_expect(decode_checked(&e, out, "a[1]") == 1 && out[0] == 'b', "a[1] decodes to b");
    cr_assert(tg_json_array_get(&v, 2, &e));
    cr_expect(!tg_json_string_has_escapes(&e), "a[2] \"x\" has none (the next element has one)");
    cr_assert(tg_json_array_get(&v, 3, &e));
    cr_expect(decode_checked(&e, out, "a[3]") == 1 && out[0] == '\\', "a[3] decodes to a backslash");

    cr_assert(tg_json_object_get(&p.v, "plain", 5, &v));
    cr_expect(!tg_json_string_has_escapes(&v), "plain");
    tg_json_iter_init(&it, &p.v);
    cr_assert(tg_json_iter_next(&it, &k, &v));
    cr_assert(tg_json_iter_next(&it, &k, &v));
    cr_expect(!tg_json_string_has_escapes(&k), "key \"a\" has none");
    dispose(&p);
}

/* numbers: integers are those with neither fraction nor exponent */
Test(json, number_is_integer)
{
    static const struct {
        const char *in;
        int integer;
    } cases[] = {
        {"0", 1},
        {"-0", 1},
        {"123", 1},
        {"9", 1},
        {"-7", 1},
        {"-12345678901234567890", 1},
        {"12345678901234567890123", 1},
        {"1.0", 0},
        {"1e2", 0},
        {"1E+2", 0},
        {"1E-2", 0},
        {"0.5", 0},
        {"-0.0", 0},
        {"2.50", 0},
        {"1e0", 0},
        {"0e0", 0},
        {"-1.5e-300", 0},
        {"1e999999", 0},
        {"10", 1},
        {"100", 1},
    };
    for (size_t i = 0; i != COUNTOF(cases); ++i) {
        parsed_t p = parse_ok(cases[i].in, strlen(cases[i].in));
        cr_expect_eq(p.v.type, TG_JSON_NUMBER, "%s: type %s", cases[i].in, type_name(p.v.type));
        int integer = tg_json_number_is_integer(&p.v) != 0;
        cr_expect_eq(integer, cases[i].integer, "%s: is_integer %d, want %d", cases[i].in, integer, cases[i].integer);
        dispose(&p);
    }

    /* inside containers: only the number's own bytes count */
    static const struct {
        size_t i;
        const char *value;
        int integer;
    } elems[] = {{0, "1", 1}, {1, "2.5", 0}, {2, "3e1", 0}, {3, "-4", 1}, {4, "5", 1}};
    const char doc[] = "[1,2.5,3e1,-4,5]";
    parsed_t p = parse_ok(doc, sizeof(doc) - 1);
    for (size_t i = 0; i != COUNTOF(elems); ++i) {
        tg_json_t v;
        cr_assert(tg_json_array_get(&p.v, elems[i].i, &v), "[%zu]", elems[i].i);
        cr_expect(text_is(&v, elems[i].value, strlen(elems[i].value)), "[%zu]: %s", elems[i].i, show(v.text, v.len));
        int integer = tg_json_number_is_integer(&v) != 0;
        cr_expect_eq(integer, elems[i].integer, "[%zu] %s: is_integer %d", elems[i].i, elems[i].value, integer);
    }
    dispose(&p);
    p = parse_ok("{\"a\":7,\"b\":0.1}", 15);
    tg_json_t v;
    cr_assert(tg_json_object_get(&p.v, "a", 1, &v));
    cr_expect(tg_json_number_is_integer(&v), "a: 7 followed by ,\"b\":0.1");
    cr_assert(tg_json_object_get(&p.v, "b", 1, &v));
    cr_expect(!tg_json_number_is_integer(&v), "b: 0.1");
    dispose(&p);
}

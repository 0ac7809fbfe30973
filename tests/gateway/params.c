/* Tests of gateway/params.c: parameter decoding and checking from path, query string and body. */
#include <criterion/criterion.h>
#include <h2o.h>
#include <jansson.h>
#include "tollgate/encode.h"
#include "tollgate/params.h"

static h2o_mem_pool_t pool;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
}

static void teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

TestSuite(params, .init = setup, .fini = teardown);

/* a required scalar body parameter with no bounds */
static tg_param_t param(const char *name, tg_type_t type, tg_param_source_t source)
{
    tg_param_t p = {0};
    p.name = (char *)name;
    p.type = type;
    p.required = 1;
    p.source = source;
    p.max_length = -1;
    return p;
}

static const char *type_name(tg_type_t t)
{
    static const char *names[] = {"int2", "int4", "int8", "float4", "float8", "numeric", "text",
                                  "bool", "uuid", "date", "timestamptz", "json", "jsonb"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static h2o_iovec_t iov(const char *s)
{
    return h2o_iovec_init(s, s != NULL ? strlen(s) : 0);
}

/* expected outcome: `canon` when `err` is NULL */
struct case_t {
    tg_type_t type;
    const char *in;
    const char *canon;
    const char *err;
};

#define OK(t, in, canon) {TG_TYPE_##t, in, canon, NULL}
#define BAD(t, in, err) {TG_TYPE_##t, in, NULL, err}

static const struct case_t text_cases[] = {
    OK(INT2, "0", "0"),
    OK(INT2, "-32768", "-32768"),
    OK(INT2, "32767", "32767"),
    BAD(INT2, "32768", "is out of range for int2"),
    BAD(INT2, "-32769", "is out of range for int2"),
    OK(INT4, "2147483647", "2147483647"),
    OK(INT4, "-2147483648", "-2147483648"),
    BAD(INT4, "2147483648", "is out of range for int4"),
    OK(INT4, "007", "7"),
    OK(INT4, "-0", "0"),
    BAD(INT4, "+1", "must be an integer"),
    BAD(INT4, " 1", "must be an integer"),
    BAD(INT4, "1 ", "must be an integer"),
    BAD(INT4, "1.0", "must be an integer"),
    BAD(INT4, "1e3", "must be an integer"),
    BAD(INT4, "", "must be an integer"),
    BAD(INT4, "-", "must be an integer"),
    BAD(INT4, "0x10", "must be an integer"),
    BAD(INT4, "1); DROP TABLE users;--", "must be an integer"),
    OK(INT8, "9223372036854775807", "9223372036854775807"),
    OK(INT8, "-9223372036854775808", "-9223372036854775808"),
    BAD(INT8, "9223372036854775808", "is out of range for int8"),
    BAD(INT8, "-9223372036854775809", "is out of range for int8"),
    BAD(INT8, "12345678901234567890123", "is out of range for int8"),
    BAD(INT8, "1E+2", "must be an integer"),
    OK(INT8, "-9223372036854775808", "-9223372036854775808"),
    BAD(INT8, "9223372036854775808", "is out of range for int8"),
    BAD(INT8, "-9223372036854775809", "is out of range for int8"),
    BAD(INT8, "99999999999999999999999", "is out of range for int8"),
    OK(FLOAT8, "1.5", "1.5"),
    OK(FLOAT8, "-0.25e-3", "-0.25e-3"),
    OK(FLOAT8, "1E+10", "1E+10"),
    OK(FLOAT8, "42", "42"),
    OK(FLOAT8, "NaN", "NaN"),
    OK(FLOAT8, "Infinity", "Infinity"),
    OK(FLOAT8, "-Infinity", "-Infinity"),
    BAD(FLOAT8, "nan", "must be a number"),
    BAD(FLOAT8, "inf", "must be a number"),
    BAD(FLOAT8, "infinity", "must be a number"),
    BAD(FLOAT8, "0x10", "must be a number"),
    BAD(FLOAT8, "1.", "must be a number"),
    BAD(FLOAT8, ".5", "must be a number"),
    BAD(FLOAT8, "1e", "must be a number"),
    BAD(FLOAT8, "+1", "must be a number"),
    BAD(FLOAT8, "", "must be a number"),
    BAD(FLOAT8, "1e999", "is out of range for float8"),
    BAD(FLOAT8, "1e-400", "is out of range for float8"),
    OK(FLOAT4, "3.5", "3.5"),
    OK(FLOAT4, "1e-40", "1e-40"),
    BAD(FLOAT4, "1e39", "is out of range for float4"),
    BAD(FLOAT4, "1e-50", "is out of range for float4"),
    OK(NUMERIC, "123.4500", "123.4500"),
    OK(NUMERIC, "12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678"),
    OK(NUMERIC, "-1e-5", "-1e-5"),
    OK(NUMERIC, "NaN", "NaN"),
    OK(NUMERIC, "-Infinity", "-Infinity"),
    BAD(NUMERIC, "1,5", "must be a number"),
    BAD(NUMERIC, "abc", "must be a number"),
    OK(TEXT, "h\xc3\xa9llo", "h\xc3\xa9llo"),
    OK(TEXT, "", ""),
    OK(TEXT, "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"),
    OK(TEXT, "1); DROP TABLE users;--", "1); DROP TABLE users;--"),
    BAD(TEXT, "\xff", "must be valid UTF-8"),
    BAD(TEXT, "\xc0\xaf", "must be valid UTF-8"),
    BAD(TEXT, "\xe0\x80\xaf", "must be valid UTF-8"),
    BAD(TEXT, "\xed\xa0\x80", "must be valid UTF-8"),
    BAD(TEXT, "\xf4\x90\x80\x80", "must be valid UTF-8"),
    BAD(TEXT, "\xe2\x82", "must be valid UTF-8"),
    BAD(TEXT, "a\x80", "must be valid UTF-8"),
    OK(BOOL, "true", "true"),
    OK(BOOL, "false", "false"),
    OK(BOOL, "t", "true"),
    OK(BOOL, "f", "false"),
    OK(BOOL, "1", "true"),
    OK(BOOL, "0", "false"),
    BAD(BOOL, "TRUE", "must be a boolean"),
    BAD(BOOL, "yes", "must be a boolean"),
    BAD(BOOL, "", "must be a boolean"),
    BAD(BOOL, "truee", "must be a boolean"),
    OK(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    OK(UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    BAD(UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11", "must be a valid uuid"),
    BAD(UUID, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "must be a valid uuid"),
    BAD(UUID, "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "must be a valid uuid"),
    BAD(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "must be a valid uuid"),
    BAD(UUID, "a0eebc99-9c0b4-ef8-bb6d-6bb9bd380a11", "must be a valid uuid"),
    OK(DATE, "2024-02-29", "2024-02-29"),
    OK(DATE, "2000-02-29", "2000-02-29"),
    OK(DATE, "0001-01-01", "0001-01-01"),
    OK(DATE, "9999-12-31", "9999-12-31"),
    BAD(DATE, "2023-02-29", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "1900-02-29", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024-04-31", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024-13-01", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024-00-10", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024-01-00", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "0000-01-01", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "24-01-01", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024-1-01", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024/01/01", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "2024-01-01T00:00:00Z", "must be a date (YYYY-MM-DD)"),
    OK(TIMESTAMPTZ, "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
    OK(TIMESTAMPTZ, "2026-01-02 03:04:05.123+05:30", "2026-01-02T03:04:05.123+05:30"),
    OK(TIMESTAMPTZ, "2026-01-02t03:04:05z", "2026-01-02T03:04:05Z"),
    OK(TIMESTAMPTZ, "2026-01-02T03:04:05.123456789-15:59", "2026-01-02T03:04:05.123456789-15:59"),
    OK(TIMESTAMPTZ, "2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T24:00:00Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T23:60:00Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T23:00:61Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-02-30T00:00:00Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05+16:00", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05+05:60", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05+0530", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05+05", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05.Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05.1234567890Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02X03:04:05Z", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "2026-01-02T03:04:05ZZ", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "now", "must be an RFC 3339 timestamp with an offset"),
    OK(JSON, "{\"a\":1}", "{\"a\":1}"),
    OK(JSON, "[1, 2]", "[1, 2]"),
    OK(JSON, "\"x\"", "\"x\""),
    OK(JSONB, "1", "1"),
    OK(JSONB, "null", "null"),
    BAD(JSON, "nul", "must be valid JSON"),
    BAD(JSON, "", "must be valid JSON"),
    BAD(JSONB, "{", "must be valid JSON"),
    BAD(JSONB, "{\"a\":1} x", "must be valid JSON"),
};

static void run_text_case(const struct case_t *c, size_t len)
{
    tg_param_t p = param("x", c->type, TG_SOURCE_QUERY);
    const char *canon = "unset";
    const char *err = tg_params_check_text(&p, c->in, len, &pool, &canon);
    if (c->err != NULL) {
        cr_expect_str_eq(err != NULL ? err : "(none)", c->err, "%s: %s", type_name(c->type), c->in);
    } else {
        cr_expect_null(err, "%s: %s: %s", type_name(c->type), c->in, err);
        if (err == NULL)
            cr_expect_str_eq(canon, c->canon, "%s: %s", type_name(c->type), c->in);
    }
}

Test(params, text_values)
{
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); ++i)
        run_text_case(&text_cases[i], strlen(text_cases[i].in));
}

Test(params, text_with_nul_byte)
{
    struct case_t c = BAD(TEXT, "a\0b", "must not contain a NUL character");
    run_text_case(&c, 3);
    struct case_t i = BAD(INT4, "1\0", "must be an integer");
    run_text_case(&i, 2);
}

Test(params, text_not_nul_terminated)
{
    /* the value is a slice of a longer buffer: nothing past `len` may be read */
    tg_param_t p = param("x", TG_TYPE_INT4, TG_SOURCE_QUERY);
    const char *canon;
    cr_assert_null(tg_params_check_text(&p, "12345", 2, &pool, &canon));
    cr_assert_str_eq(canon, "12");
    p.type = TG_TYPE_TEXT;
    cr_assert_null(tg_params_check_text(&p, "abcdef", 3, &pool, &canon));
    cr_assert_str_eq(canon, "abc");
    p.type = TG_TYPE_TIMESTAMPTZ;
    cr_assert_null(tg_params_check_text(&p, "2026-01-02 03:04:05Zjunk", 20, &pool, &canon));
    cr_assert_str_eq(canon, "2026-01-02T03:04:05Z");
}

static const struct case_t json_cases[] = {
    OK(INT4, "5", "5"),
    OK(INT4, "-5", "-5"),
    OK(INT4, "-0", "0"),
    BAD(INT4, "5.0", "must be an integer"),
    BAD(INT4, "1e2", "must be an integer"),
    BAD(INT4, "\"5\"", "must be an integer"),
    BAD(INT4, "true", "must be an integer"),
    BAD(INT4, "[5]", "must be an integer"),
    BAD(INT4, "{}", "must be an integer"),
    BAD(INT4, "2147483648", "is out of range for int4"),
    BAD(INT2, "-32769", "is out of range for int2"),
    OK(INT8, "9223372036854775807", "9223372036854775807"),
    OK(INT8, "-9223372036854775808", "-9223372036854775808"),
    BAD(INT8, "9223372036854775808", "is out of range for int8"),
    BAD(INT8, "-9223372036854775809", "is out of range for int8"),
    BAD(INT8, "12345678901234567890123", "is out of range for int8"),
    BAD(INT8, "1E+2", "must be an integer"),
    OK(FLOAT8, "1.5", "1.5"),
    OK(FLOAT8, "0.1", "0.1"),
    OK(FLOAT8, "3", "3"),
    OK(FLOAT8, "1e300", "1e300"),
    OK(FLOAT8, "1E+2", "1E+2"),
    OK(FLOAT8, "-0", "-0"),
    BAD(FLOAT8, "1e309", "is out of range for float8"),
    BAD(FLOAT8, "1e-400", "is out of range for float8"),
    OK(FLOAT8, "0.30000000000000004", "0.30000000000000004"),
    OK(FLOAT8, "\"NaN\"", "NaN"),
    OK(FLOAT8, "\"Infinity\"", "Infinity"),
    OK(FLOAT4, "\"-Infinity\"", "-Infinity"),
    OK(FLOAT4, "0.1", "0.1"),
    BAD(FLOAT4, "1e39", "is out of range for float4"),
    BAD(FLOAT8, "\"1.5\"", "must be a number"),
    BAD(FLOAT8, "\"nan\"", "must be a number"),
    BAD(FLOAT8, "true", "must be a number"),
    BAD(FLOAT8, "[]", "must be a number"),
    OK(NUMERIC, "\"12345678901234567890.123456789\"", "12345678901234567890.123456789"),
    OK(NUMERIC, "0.1", "0.1"),
    OK(NUMERIC, "12", "12"),
    /* numbers reach PostgreSQL as written: no double in between */
    OK(NUMERIC, "19.90", "19.90"),
    OK(NUMERIC, "3.14159265358979323846264338327950288419", "3.14159265358979323846264338327950288419"),
    OK(NUMERIC, "123456789012345678901234567890.0123456789", "123456789012345678901234567890.0123456789"),
    OK(NUMERIC, "12345678901234567890123", "12345678901234567890123"),
    OK(NUMERIC, "-0", "-0"),
    OK(NUMERIC, "1E+2", "1E+2"),
    OK(NUMERIC, "-1.5e-300", "-1.5e-300"),
    OK(NUMERIC, "\"1\\u002e5\"", "1.5"),
    OK(NUMERIC, "\"NaN\"", "NaN"),
    OK(NUMERIC, "\"-1.50e3\"", "-1.50e3"),
    BAD(NUMERIC, "\"abc\"", "must be a number"),
    BAD(NUMERIC, "\" 1\"", "must be a number"),
    BAD(NUMERIC, "{}", "must be a number"),
    OK(TEXT, "\"h\\u00e9llo\"", "h\xc3\xa9llo"),
    OK(TEXT, "\"\"", ""),
    OK(TEXT, "\"a\\\"b\\\\c\"", "a\"b\\c"),
    BAD(TEXT, "5", "must be a string"),
    BAD(TEXT, "true", "must be a string"),
    BAD(TEXT, "[\"a\"]", "must be a string"),
    BAD(TEXT, "\"a\\u0000b\"", "must not contain a NUL character"),
    OK(BOOL, "true", "true"),
    OK(BOOL, "false", "false"),
    BAD(BOOL, "\"true\"", "must be a boolean"),
    BAD(BOOL, "1", "must be a boolean"),
    OK(UUID, "\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\"", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    BAD(UUID, "5", "must be a valid uuid"),
    BAD(UUID, "\"x\"", "must be a valid uuid"),
    OK(DATE, "\"2024-02-29\"", "2024-02-29"),
    BAD(DATE, "20240229", "must be a date (YYYY-MM-DD)"),
    BAD(DATE, "\"2024-02-30\"", "must be a date (YYYY-MM-DD)"),
    OK(TIMESTAMPTZ, "\"2026-01-02 03:04:05Z\"", "2026-01-02T03:04:05Z"),
    BAD(TIMESTAMPTZ, "1700000000", "must be an RFC 3339 timestamp with an offset"),
    BAD(TIMESTAMPTZ, "\"2026-01-02\"", "must be an RFC 3339 timestamp with an offset"),
    /* json values are the bytes sent: whitespace inside, key order, number spellings, escapes */
    OK(JSON, "{\"b\": [1, 2.5, \"x\", null, true, false], \"a\": {}}", "{\"b\": [1, 2.5, \"x\", null, true, false], \"a\": {}}"),
    OK(JSON, " [ 1 , 2 ] ", "[ 1 , 2 ]"),
    OK(JSON, "0.1", "0.1"),
    OK(JSON, "2.50", "2.50"),
    OK(JSON, "\"s\\\"q\"", "\"s\\\"q\""),
    OK(JSON, "\"\\u00e9\\n\\u0001\"", "\"\\u00e9\\n\\u0001\""),
    OK(JSONB, "{\"x\": {\"y\": [[]]}}", "{\"x\": {\"y\": [[]]}}"),
    OK(JSONB, "-12", "-12"),
    OK(JSONB, "{\"pi\": 3.14159265358979323846264, \"amount\": 19.90}", "{\"pi\": 3.14159265358979323846264, \"amount\": 19.90}"),
    OK(JSONB, "{\"big\": 12345678901234567890123, \"e\": -1E-7, \"z\": -0}", "{\"big\": 12345678901234567890123, \"e\": -1E-7, \"z\": -0}"),
};

static tg_json_t parse(const char *s)
{
    tg_json_t v;
    tg_json_error_t err;
    cr_assert_eq(tg_json_parse(s, strlen(s), &v, &err), 0, "test JSON %s: %s", s, err.reason);
    return v;
}

static void run_json_case(const tg_param_t *p, const struct case_t *c)
{
    tg_json_t v = parse(c->in);
    const char *canon = "unset";
    const char *err = tg_params_check_json(p, &v, &pool, &canon);
    if (c->err != NULL) {
        cr_expect_str_eq(err != NULL ? err : "(none)", c->err, "%s: %s", type_name(p->type), c->in);
    } else {
        cr_expect_null(err, "%s: %s: %s", type_name(p->type), c->in, err);
        if (err == NULL) {
            if (c->canon == NULL)
                cr_expect_null(canon, "%s: %s", type_name(p->type), c->in);
            else
                cr_expect_str_eq(canon != NULL ? canon : "(null)", c->canon, "%s: %s", type_name(p->type), c->in);
        }
    }
}

Test(params, json_values)
{
    for (size_t i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); ++i) {
        tg_param_t p = param("x", json_cases[i].type, TG_SOURCE_BODY);
        run_json_case(&p, &json_cases[i]);
    }
}

Test(params, json_null_is_sql_null_for_every_type)
{
    for (int t = 0; t < TG_TYPE__COUNT; ++t) {
        for (int arr = 0; arr < 2; ++arr) {
            tg_param_t p = param("x", (tg_type_t)t, TG_SOURCE_BODY);
            p.is_array = arr;
            struct case_t c = {(tg_type_t)t, "null", NULL, NULL};
            run_json_case(&p, &c);
        }
    }
}

/* bounds */

struct bound_case_t {
    const char *in;  /* text */
    const char *err; /* NULL: good */
};

static void run_bounds(const tg_param_t *p, const struct bound_case_t *cases, size_t n, int as_json)
{
    for (size_t i = 0; i < n; ++i) {
        const char *canon, *err;
        if (as_json) {
            tg_json_t v = parse(cases[i].in);
            err = tg_params_check_json(p, &v, &pool, &canon);
        } else {
            err = tg_params_check_text(p, cases[i].in, strlen(cases[i].in), &pool, &canon);
        }
        if (cases[i].err == NULL)
            cr_expect_null(err, "%s: %s", cases[i].in, err);
        else
            cr_expect_str_eq(err != NULL ? err : "(none)", cases[i].err, "%s", cases[i].in);
    }
}

#define RUN_BOUNDS(p, cases, as_json) run_bounds(p, cases, sizeof(cases) / sizeof(cases[0]), as_json)

Test(params, int_bounds)
{
    tg_param_t p = param("n", TG_TYPE_INT4, TG_SOURCE_QUERY);
    p.has_min = p.has_max = 1;
    p.imin = 1;
    p.imax = 100;
    p.min = 1;
    p.max = 100;
    static const struct bound_case_t cases[] = {
        {"1", NULL}, {"100", NULL}, {"0", "must be at least 1"}, {"101", "must be at most 100"}, {"-5", "must be at least 1"},
    };
    RUN_BOUNDS(&p, cases, 0);
    RUN_BOUNDS(&p, cases, 1);

    /* exact at the edge of int8, where doubles would round */
    tg_param_t q = param("n", TG_TYPE_INT8, TG_SOURCE_QUERY);
    q.has_max = 1;
    q.imax = 9007199254740993LL;
    q.max = 9007199254740993.0;
    static const struct bound_case_t big[] = {
        {"9007199254740993", NULL},
        {"9007199254740994", "must be at most 9007199254740993"},
    };
    RUN_BOUNDS(&q, big, 0);
    RUN_BOUNDS(&q, big, 1);
}

Test(params, float_bounds)
{
    tg_param_t p = param("f", TG_TYPE_FLOAT8, TG_SOURCE_QUERY);
    p.has_min = p.has_max = 1;
    p.min = 0.5;
    p.max = 2.5;
    static const struct bound_case_t cases[] = {
        {"0.5", NULL},
        {"2.5", NULL},
        {"0.4", "must be at least 0.5"},
        {"2.6", "must be at most 2.5"},
        {"NaN", "must be at least 0.5"},
        {"Infinity", "must be at most 2.5"},
        {"-Infinity", "must be at least 0.5"},
    };
    RUN_BOUNDS(&p, cases, 0);
    static const struct bound_case_t json[] = {
        {"1", NULL}, {"0.4", "must be at least 0.5"}, {"3", "must be at most 2.5"}, {"\"NaN\"", "must be at least 0.5"},
    };
    RUN_BOUNDS(&p, json, 1);

    tg_param_t q = param("f", TG_TYPE_FLOAT4, TG_SOURCE_QUERY);
    q.has_max = 1;
    q.max = 0.1;
    static const struct bound_case_t only_max[] = {{"0.05", NULL}, {"0.2", "must be at most 0.1"}, {"NaN", "must be at most 0.1"}};
    RUN_BOUNDS(&q, only_max, 0);
}

Test(params, numeric_bounds)
{
    tg_param_t p = param("amount", TG_TYPE_NUMERIC, TG_SOURCE_BODY);
    p.has_min = p.has_max = 1;
    p.min_text = "-10";
    p.max_text = "10";
    static const struct bound_case_t cases[] = {
        {"10", NULL},
        {"10.0000", NULL},
        {"10.0000001", "must be at most 10"},
        {"-10.5", "must be at least -10"},
        {"1e1", NULL},
        {"1e2", "must be at most 10"},
    };
    RUN_BOUNDS(&p, cases, 0);
    static const struct bound_case_t json[] = {
        {"10", NULL},
        {"\"10.01\"", "must be at most 10"},
        {"-10.01", "must be at least -10"},
        {"\"Infinity\"", "must be at most 10"},
        {"\"-Infinity\"", "must be at least -10"},
        {"\"NaN\"", "must be at least -10"},
    };
    RUN_BOUNDS(&p, json, 1);

    /* exact in decimal: a double would round each of these onto the bound */
    static const struct bound_case_t exact[] = {
        {"10.00000000000000000000000000001", "must be at most 10"},
        {"9.99999999999999999999999999999", NULL},
        {"-10.00000000000000000000000000001", "must be at least -10"},
        {"0.0000000000000000000000000000000000001", NULL},
        {"-0", NULL},
        {"0e99999999999999999999", NULL},
        {"1e-99999999999999999999", NULL},
        {"1e99999999999999999999", "must be at most 10"},
        {"-1e99999999999999999999", "must be at least -10"},
        {"0.1e2", NULL},
        {"0.11e2", "must be at most 10"},
        {"0.01e3", NULL},
        {"-0.1000000000000000000000001E+2", "must be at least -10"},
    };
    RUN_BOUNDS(&p, exact, 0);
    RUN_BOUNDS(&p, exact, 1);
    static const struct bound_case_t text_only[] = {{"0000010.000", NULL}, {"-0009.9", NULL}, {"00010.0001", "must be at most 10"}};
    RUN_BOUNDS(&p, text_only, 0);

    /* a fractional bound, compared as the catalog wrote it (0.1), not as its double (0.1000000000000000055...) */
    tg_param_t f = param("rate", TG_TYPE_NUMERIC, TG_SOURCE_BODY);
    f.has_min = f.has_max = 1;
    f.min_text = "0.1";
    f.max_text = "1e20";
    static const struct bound_case_t frac[] = {
        {"0.1", NULL},
        {"0.10000000000000000000001", NULL},
        {"0.09999999999999999999999", "must be at least 0.1"},
        {"100000000000000000000", NULL},
        {"100000000000000000000.000000001", "must be at most 1e20"},
        {"1.00000000000000000000e20", NULL},
    };
    RUN_BOUNDS(&f, frac, 0);
    RUN_BOUNDS(&f, frac, 1);

    /* bounds no double holds: past 2^53, and 16-17 digits whose shortest double form differs */
    tg_param_t g = param("big", TG_TYPE_NUMERIC, TG_SOURCE_BODY);
    g.has_max = 1;
    g.max_text = "12345678901234567";
    static const struct bound_case_t big[] = {{"12345678901234567", NULL}, {"12345678901234568", "must be at most 12345678901234567"}};
    RUN_BOUNDS(&g, big, 0);
    RUN_BOUNDS(&g, big, 1);
    g.max_text = "9.999999999999999";
    static const struct bound_case_t nines[] = {{"9.999999999999999", NULL}, {"9.9999999999999991", "must be at most 9.999999999999999"}};
    RUN_BOUNDS(&g, nines, 0);
}

/* float4 values and bounds meet as float4 stores them */
Test(params, float4_bounds_in_float)
{
    tg_param_t p = param("f", TG_TYPE_FLOAT4, TG_SOURCE_QUERY);
    p.has_min = p.has_max = 1;
    p.min = 0.1;
    p.max = 0.3;
    static const struct bound_case_t cases[] = {{"0.1", NULL}, {"0.3", NULL}, {"0.30000001", NULL}, {"0.3000001", "must be at most 0.3"},
                                                {"0.0999999", "must be at least 0.1"}};
    RUN_BOUNDS(&p, cases, 0);
}

Test(params, max_length_counts_code_points)
{
    tg_param_t p = param("s", TG_TYPE_TEXT, TG_SOURCE_QUERY);
    p.max_length = 3;
    static const struct bound_case_t cases[] = {
        {"", NULL}, {"abc", NULL}, {"h\xc3\xa9\xc3\xa9", NULL}, {"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", NULL},
        {"abcd", "must be at most 3 characters"}, {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "must be at most 3 characters"},
    };
    RUN_BOUNDS(&p, cases, 0);
    static const struct bound_case_t json[] = {{"\"\\u00e9\\u00e9\\u00e9\"", NULL}, {"\"abcd\"", "must be at most 3 characters"}};
    RUN_BOUNDS(&p, json, 1);
    p.max_length = 0;
    static const struct bound_case_t zero[] = {{"", NULL}, {"a", "must be at most 0 characters"}};
    RUN_BOUNDS(&p, zero, 0);
}

Test(params, enums_compare_canonical_text)
{
    char *vals[] = {"a", "b c"};
    tg_param_t p = param("e", TG_TYPE_TEXT, TG_SOURCE_QUERY);
    p.enum_values = vals;
    p.n_enum = 2;
    static const struct bound_case_t cases[] = {
        {"a", NULL},
        {"b c", NULL},
        {"c", "must be one of: a, b c"},
        {"A", "must be one of: a, b c"},
        {"", "must be one of: a, b c"},
    };
    RUN_BOUNDS(&p, cases, 0);
    static const struct bound_case_t json[] = {{"\"b c\"", NULL}, {"\"x\"", "must be one of: a, b c"}, {"5", "must be a string"}};
    RUN_BOUNDS(&p, json, 1);

    char *ints[] = {"1", "2"};
    tg_param_t q = param("e", TG_TYPE_INT4, TG_SOURCE_QUERY);
    q.enum_values = ints;
    q.n_enum = 2;
    static const struct bound_case_t icases[] = {{"01", NULL}, {"2", NULL}, {"3", "must be one of: 1, 2"}};
    RUN_BOUNDS(&q, icases, 0);

    char *uuids[] = {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"};
    tg_param_t u = param("e", TG_TYPE_UUID, TG_SOURCE_QUERY);
    u.enum_values = uuids;
    u.n_enum = 1;
    static const struct bound_case_t ucases[] = {{"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", NULL}};
    RUN_BOUNDS(&u, ucases, 0);
}

/* arrays through tg_params_check_json */

static tg_param_t array_param(tg_type_t type)
{
    tg_param_t p = param("arr", type, TG_SOURCE_BODY);
    p.is_array = 1;
    return p;
}

Test(params, json_arrays)
{
    static const struct case_t cases[] = {
        OK(INT4, "[1, 2, null, -3]", "{\"1\",\"2\",NULL,\"-3\"}"),
        OK(INT4, "[]", "{}"),
        OK(INT4, "[null]", "{NULL}"),
        BAD(INT4, "[1, \"x\"]", "element 1 must be an integer"),
        BAD(INT4, "[1, 2.5, \"x\"]", "element 1 must be an integer"),
        BAD(INT4, "[[1]]", "element 0 must be an integer"),
        BAD(INT4, "5", "must be an array"),
        BAD(INT4, "{\"0\": 1}", "must be an array"),
        BAD(INT2, "[1, 40000]", "element 1 is out of range for int2"),
        OK(TEXT, "[\"a\", \"NULL\", \"\"]", "{\"a\",\"NULL\",\"\"}"),
        OK(TEXT, "[\"a\\\"b\", \"c\\\\d\", \"},{\", \"1); DROP TABLE users;--\"]",
           "{\"a\\\"b\",\"c\\\\d\",\"},{\",\"1); DROP TABLE users;--\"}"),
        OK(TEXT, "[\"\\\"},{\\\"\"]", "{\"\\\"},{\\\"\"}"),
        BAD(TEXT, "[\"a\", 1]", "element 1 must be a string"),
        OK(BOOL, "[true, false]", "{\"true\",\"false\"}"),
        OK(UUID, "[\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\"]", "{\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}"),
        OK(FLOAT8, "[1.5, \"NaN\"]", "{\"1.5\",\"NaN\"}"),
        OK(NUMERIC, "[\"1.10\", 2]", "{\"1.10\",\"2\"}"),
        OK(DATE, "[\"2024-02-29\"]", "{\"2024-02-29\"}"),
        OK(TIMESTAMPTZ, "[\"2026-01-02 03:04:05Z\"]", "{\"2026-01-02T03:04:05Z\"}"),
        OK(JSON, "[{\"a\": \"x\\\"y\"}, null, [1], \"s\"]", "{\"{\\\"a\\\": \\\"x\\\\\\\"y\\\"}\",NULL,\"[1]\",\"\\\"s\\\"\"}"),
        OK(JSONB, "[1]", "{\"1\"}"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_param_t p = array_param(cases[i].type);
        run_json_case(&p, &cases[i]);
    }
}

Test(params, array_element_bounds)
{
    tg_param_t p = array_param(TG_TYPE_TEXT);
    p.max_length = 3;
    char *vals[] = {"ab", "abc", "abcd"};
    p.enum_values = vals;
    p.n_enum = 3;
    static const struct bound_case_t cases[] = {
        {"[\"ab\", \"abc\"]", NULL},
        {"[\"ab\", \"abcd\"]", "element 1 must be at most 3 characters"},
        {"[\"x\"]", "element 0 must be one of: ab, abc, abcd"},
    };
    RUN_BOUNDS(&p, cases, 1);

    tg_param_t q = array_param(TG_TYPE_INT8);
    q.has_min = 1;
    q.imin = 0;
    static const struct bound_case_t ints[] = {{"[0, 5]", NULL}, {"[0, 5, -1]", "element 2 must be at least 0"}};
    RUN_BOUNDS(&q, ints, 1);
}

/*
 * Array literals must round-trip exactly: parse each literal back with the response
 * encoder's array parser (which follows PostgreSQL's array_in rules) and compare.
 */
Test(params, array_literal_round_trip)
{
    static const char *payloads[] = {
        "1); DROP TABLE users;--", "\"},{\"", "}", "{", ",", "\\", "\\\"", "\"", "NULL", "null", "", " ", " a ", "a,b",
        "{\"a\":1}", "'; SELECT pg_sleep(10); --", "\xc3\xa9\xe2\x82\xac", "\\\\\"\"\\", "tab\there", "new\nline",
    };
    size_t n = sizeof(payloads) / sizeof(payloads[0]);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; ++i)
        json_array_append_new(arr, json_string(payloads[i]));
    json_array_append_new(arr, json_null());

    tg_param_t p = array_param(TG_TYPE_TEXT);
    const char *canon;
    char *text = json_dumps(arr, 0);
    tg_json_t raw = parse(text);
    cr_assert_null(tg_params_check_json(&p, &raw, &pool, &canon));
    free(text);

    tg_buf_t b = {0};
    tg_encode_value(&b, tg_encoding_for_oid(1009 /* text[] */), canon, strlen(canon));
    json_error_t err;
    json_t *back = json_loadb(b.base, b.len, 0, &err);
    cr_assert_not_null(back, "%s: %s", b.base, err.text);
    cr_assert(json_equal(arr, back), "literal %s decodes to %s", canon, b.base);
    json_decref(back);
    json_decref(arr);
    tg_buf_dispose(&b);
}

/* tg_percent_decode */

Test(params, percent_decode)
{
    static const struct {
        const char *in;
        int plus;
        const char *out; /* NULL: rejected */
        size_t out_len;
    } cases[] = {
        {"abc", 1, "abc", 3},
        {"a+b", 1, "a b", 3},
        {"a+b", 0, "a+b", 3},
        {"a%20b%2B", 1, "a b+", 4},
        {"%e2%82%AC", 0, "\xe2\x82\xac", 3},
        {"%00x", 0, "\0x", 2},
        {"", 1, "", 0},
        {"%", 1, NULL, 0},
        {"%2", 1, NULL, 0},
        {"%zz", 1, NULL, 0},
        {"a%2", 1, NULL, 0},
        {"%%41", 1, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        size_t len = 99;
        char *d = tg_percent_decode(cases[i].in, strlen(cases[i].in), cases[i].plus, &pool, &len);
        if (cases[i].out == NULL) {
            cr_expect_null(d, "%s", cases[i].in);
            continue;
        }
        cr_assert_not_null(d, "%s", cases[i].in);
        cr_expect_eq(len, cases[i].out_len, "%s", cases[i].in);
        cr_expect_eq(memcmp(d, cases[i].out, len), 0, "%s", cases[i].in);
        cr_expect_eq(d[len], '\0', "%s", cases[i].in);
    }
}

/* tg_params_decode */

static void expect_error(const tg_params_t *out, size_t i, const char *name, const char *reason)
{
    cr_assert_lt(i, out->n_errors, "error %zu of %zu", i, out->n_errors);
    cr_expect_str_eq(out->errors[i].name, name, "error %zu", i);
    cr_expect_str_eq(out->errors[i].reason, reason, "error %zu", i);
}

static void expect_values(const tg_params_t *out, const char *const *want, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (want[i] == NULL)
            cr_expect_null(out->values[i], "value %zu is %s", i, out->values[i]);
        else
            cr_expect_str_eq(out->values[i] != NULL ? out->values[i] : "(NULL)", want[i], "value %zu", i);
    }
}

Test(params, decode_path)
{
    tg_param_t ps[] = {param("org", TG_TYPE_TEXT, TG_SOURCE_PATH), param("id", TG_TYPE_INT8, TG_SOURCE_PATH)};
    ps[1].path_index = 1;
    tg_query_t q = {.name = "get", .params = ps, .n_params = 2};
    tg_route_match_t m = {.query = &q, .n_path_params = 2};
    m.path_params[0] = (tg_slice_t){"a%2Fb+c%C3%A9/rest", 13};
    m.path_params[1] = (tg_slice_t){"0042", 4};
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&q, &m, iov(""), iov(""), "t1", &pool, &out), TG_PARAMS_OK);
    cr_assert_eq(out.n_errors, 0);
    const char *want[] = {"a/b+c\xc3\xa9", "42"};
    expect_values(&out, want, 2);

    m.path_params[0] = (tg_slice_t){"%zz", 3};
    m.path_params[1] = (tg_slice_t){"x", 1};
    cr_assert_eq(tg_params_decode(&q, &m, iov(""), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);
    expect_error(&out, 0, "org", "is not valid percent-encoding");
    expect_error(&out, 1, "id", "must be an integer");

    m.path_params[0] = (tg_slice_t){"%FF", 3};
    m.path_params[1] = (tg_slice_t){"1", 1};
    cr_assert_eq(tg_params_decode(&q, &m, iov(""), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1);
    expect_error(&out, 0, "org", "must be valid UTF-8");
}

/* GET /search?q=..&limit=..&ids=..&opt=.. */
static tg_param_t search_params[4];
static tg_query_t search = {.name = "search", .params = search_params, .n_params = 4};

static void search_init(void)
{
    setup();
    search_params[0] = param("q", TG_TYPE_TEXT, TG_SOURCE_QUERY);
    search_params[1] = param("limit", TG_TYPE_INT4, TG_SOURCE_QUERY);
    search_params[1].required = 0;
    search_params[1].has_default = 1;
    search_params[1].default_text = "10";
    search_params[1].has_max = 1;
    search_params[1].imax = 100;
    search_params[1].max = 100;
    search_params[2] = param("ids", TG_TYPE_INT4, TG_SOURCE_QUERY);
    search_params[2].is_array = 1;
    search_params[2].required = 0;
    search_params[3] = param("opt", TG_TYPE_TEXT, TG_SOURCE_QUERY);
    search_params[3].required = 0;
}

Test(params, decode_query_string, .init = search_init, .fini = teardown)
{
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&search, NULL, iov("q=hello+world%21&ids=1&ids=02&ids=3"), iov(""), "t1", &pool, &out), TG_PARAMS_OK);
    const char *want[] = {"hello world!", "10", "{\"1\",\"2\",\"3\"}", NULL};
    expect_values(&out, want, 4);

    cr_assert_eq(tg_params_decode(&search, NULL, iov("&&limit=100&q&opt=&ids=7&"), iov(""), "t1", &pool, &out), TG_PARAMS_OK);
    const char *want2[] = {"", "100", "{\"7\"}", ""};
    expect_values(&out, want2, 4);

    /* the key is percent-decoded too */
    cr_assert_eq(tg_params_decode(&search, NULL, iov("%71=x&li%6Dit=5"), iov(""), "t1", &pool, &out), TG_PARAMS_OK);
    const char *want3[] = {"x", "5", NULL, NULL};
    expect_values(&out, want3, 4);
}

Test(params, decode_query_string_collects_every_error, .init = search_init, .fini = teardown)
{
    tg_params_t out;
    int rc = tg_params_decode(&search, NULL, iov("q=a&q=b&limit=x&zzz=1&ids=1&ids=y&ids=z&q=c&li+mit=1&%zz=1&opt=%G0"), iov(""),
                              "t1", &pool, &out);
    cr_assert_eq(rc, TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 7, "got %zu errors", out.n_errors);
    expect_error(&out, 0, "q", "must not be repeated");
    expect_error(&out, 1, "zzz", "unknown parameter");
    expect_error(&out, 2, "li mit", "unknown parameter");
    expect_error(&out, 3, "%zz", "is not valid percent-encoding");
    expect_error(&out, 4, "limit", "must be an integer");
    expect_error(&out, 5, "ids", "element 1 must be an integer");
    expect_error(&out, 6, "opt", "is not valid percent-encoding");
}

Test(params, decode_query_string_required_and_bounds, .init = search_init, .fini = teardown)
{
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&search, NULL, iov("limit=101"), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);
    expect_error(&out, 0, "q", "is required");
    expect_error(&out, 1, "limit", "must be at most 100");

    cr_assert_eq(tg_params_decode(&search, NULL, iov(""), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1);
    expect_error(&out, 0, "q", "is required");
}

Test(params, decode_query_array_quoting, .init = search_init, .fini = teardown)
{
    search_params[2].type = TG_TYPE_TEXT;
    tg_params_t out;
    /* "},{"  a\b  1); DROP TABLE users;--  NULL */
    cr_assert_eq(tg_params_decode(&search, NULL,
                                  iov("q=x&ids=%22%7D%2C%7B%22&ids=a%5Cb&ids=1)%3B+DROP+TABLE+users%3B--&ids=NULL"), iov(""),
                                  "t1", &pool, &out),
                 TG_PARAMS_OK);
    cr_assert_str_eq(out.values[2], "{\"\\\"},{\\\"\",\"a\\\\b\",\"1); DROP TABLE users;--\",\"NULL\"}");
}

Test(params, decode_lists_at_most_its_cap_of_errors_and_counts_all, .init = search_init, .fini = teardown)
{
    tg_buf_t qs = {0};
    for (int i = 0; i != 1000; ++i)
        tg_buf_printf(&qs, "%sk%d=1", i == 0 ? "" : "&", i);
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&search, NULL, h2o_iovec_init(qs.base, qs.len), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, TG_MAX_PARAM_ERRORS);
    /* the 1,000 unknown keys, and q missing */
    cr_assert_eq(out.n_errors_total, 1001, "%zu", out.n_errors_total);
    expect_error(&out, 0, "k0", "unknown parameter");
    tg_buf_dispose(&qs);
}

Test(params, decode_query_key_for_path_param_is_unknown)
{
    tg_param_t ps[] = {param("id", TG_TYPE_INT4, TG_SOURCE_PATH)};
    tg_query_t q = {.name = "get", .params = ps, .n_params = 1};
    tg_route_match_t m = {.query = &q, .n_path_params = 1};
    m.path_params[0] = (tg_slice_t){"5", 1};
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&q, &m, iov("id=6"), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1);
    expect_error(&out, 0, "id", "unknown parameter");
    cr_assert_str_eq(out.values[0], "5");
}

/* POST /users with a JSON body */
static tg_param_t user_params[5];
static tg_query_t user = {.name = "create_user", .method = TG_METHOD_POST, .params = user_params, .n_params = 5};

static void user_init(void)
{
    setup();
    user_params[0] = param("name", TG_TYPE_TEXT, TG_SOURCE_BODY);
    user_params[1] = param("age", TG_TYPE_INT4, TG_SOURCE_BODY);
    user_params[1].has_min = 1;
    user_params[1].imin = 0;
    user_params[2] = param("tags", TG_TYPE_TEXT, TG_SOURCE_BODY);
    user_params[2].is_array = 1;
    user_params[2].required = 0;
    user_params[3] = param("note", TG_TYPE_TEXT, TG_SOURCE_BODY);
    user_params[3].required = 0;
    user_params[3].has_default = 1;
    user_params[3].default_text = "hi";
    user_params[4] = param("settings", TG_TYPE_JSONB, TG_SOURCE_BODY);
    user_params[4].required = 0;
    user_params[4].has_default = 1;
    user_params[4].default_text = NULL;
}

Test(params, decode_body, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    const char *body = "{\"name\": \"bob\", \"age\": 30, \"tags\": [\"a\", \"\\\"},{\\\"\"], \"settings\": {\"dark\": true}}";
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov(body), "t1", &pool, &out), TG_PARAMS_OK);
    cr_assert_eq(out.n_errors, 0);
    const char *want[] = {"bob", "30", "{\"a\",\"\\\"},{\\\"\"}", "hi", "{\"dark\": true}"};
    expect_values(&out, want, 5);
}

Test(params, decode_body_collects_every_error, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    const char *body = "{\"name\": 5, \"age\": -1, \"tags\": \"x\", \"extra\": 1, \"Name\": \"x\"}";
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov(body), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 5, "got %zu", out.n_errors);
    expect_error(&out, 0, "extra", "unknown parameter");
    expect_error(&out, 1, "Name", "unknown parameter");
    expect_error(&out, 2, "name", "must be a string");
    expect_error(&out, 3, "age", "must be at least 0");
    expect_error(&out, 4, "tags", "must be an array");
    cr_assert_null(out.detail);
}

Test(params, a_body_parameter_in_the_query_string_is_one_error_saying_where_it_goes, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    /* POST /users?name=bob&name=al&age=3&colour=red: name and age are said to belong in the body, once each, and not "is required" */
    cr_assert_eq(tg_params_decode(&user, NULL, iov("name=bob&name=al&age=3&colour=red"), iov(""), "t1", &pool, &out),
                 TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 3, "got %zu", out.n_errors);
    expect_error(&out, 0, "name", "must be in the JSON body");
    expect_error(&out, 1, "age", "must be in the JSON body");
    expect_error(&out, 2, "colour", "unknown parameter");

    /* in the query string and in the body: still the one error, the body's value not judged */
    cr_assert_eq(tg_params_decode(&user, NULL, iov("age=3"), iov("{\"name\": \"bob\", \"age\": -1}"), "t1", &pool, &out),
                 TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1, "got %zu", out.n_errors);
    expect_error(&out, 0, "age", "must be in the JSON body");
}

Test(params, decode_body_missing_and_defaults, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov("{}"), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);
    expect_error(&out, 0, "name", "is required");
    expect_error(&out, 1, "age", "is required");

    /* an empty body has no members */
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);

    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov(" {\"age\": 0, \"name\": \"\"}\n"), "t1", &pool, &out), TG_PARAMS_OK);
    const char *want[] = {"", "0", NULL, "hi", NULL};
    expect_values(&out, want, 5);
}

Test(params, decode_body_nulls, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    const char *body = "{\"name\": null, \"age\": 1, \"tags\": null, \"note\": null, \"settings\": null}";
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov(body), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1);
    expect_error(&out, 0, "name", "must not be null");
    /* an explicit null overrides the default */
    cr_assert_null(out.values[3]);
    cr_assert_null(out.values[2]);
    cr_assert_null(out.values[4]);

    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov("{\"name\":\"a\",\"age\":1,\"tags\":[null,\"x\",null]}"), "t1", &pool, &out),
                 TG_PARAMS_OK);
    cr_assert_str_eq(out.values[2], "{NULL,\"x\",NULL}");
}

Test(params, decode_bad_bodies, .init = user_init, .fini = teardown)
{
    static const struct {
        const char *body;
        const char *detail; /* exact, or a prefix when it ends in '*' */
    } cases[] = {
        {"{\"name\":", "body is not valid JSON: *"},
        {"{\"name\": \"a\",}", "body is not valid JSON: *"},
        {"{\"name\": \"a\", \"name\": \"b\"}", "body is not valid JSON: *"},
        {"nope", "body is not valid JSON: *"},
        {"{} {}", "body is not valid JSON: *"},
        {"\xff", "body is not valid JSON: *"},
        {"[1]", "body must be a JSON object"},
        {"\"x\"", "body must be a JSON object"},
        {"null", "body must be a JSON object"},
        {"42", "body must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_params_t out;
        cr_expect_eq(tg_params_decode(&user, NULL, iov(""), iov(cases[i].body), "t1", &pool, &out), TG_PARAMS_BAD_JSON, "%s",
                     cases[i].body);
        cr_assert_not_null(out.detail, "%s", cases[i].body);
        size_t n = strlen(cases[i].detail);
        if (cases[i].detail[n - 1] == '*') {
            cr_expect_eq(strncmp(out.detail, cases[i].detail, n - 1), 0, "%s: %s", cases[i].body, out.detail);
            cr_expect_not_null(strstr(out.detail, " at line 1 column "), "%s: %s", cases[i].body, out.detail);
        } else {
            cr_expect_str_eq(out.detail, cases[i].detail, "%s", cases[i].body);
        }
    }
}

Test(params, decode_exact_syntax_error_detail, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov("{\n  \"name\": tru\n}"), "t1", &pool, &out), TG_PARAMS_BAD_JSON);
    cr_assert_str_eq(out.detail, "body is not valid JSON: invalid token at line 2 column 11");
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov("{\"name\": \"a\",\n \"tags\": [{\"k\": 1, \"k\": 2}]}"), "t1", &pool, &out),
                 TG_PARAMS_BAD_JSON);
    cr_assert_str_eq(out.detail, "body is not valid JSON: duplicate key in object at line 2 column 20");
}

/* The body's bytes for a json/jsonb or numeric member are what is bound, not a re-serialization. */
Test(params, decode_keeps_body_bytes, .init = user_init, .fini = teardown)
{
    tg_params_t out;
    const char *body = "{\"name\": \"n\\u00e9\", \"age\": 3, \"settings\": {\"pi\": 3.14159265358979323846264, \"big\": 12345678901234567890123,"
                       " \"amount\": 19.90,\n \"list\": [1E+2, -0]}}";
    cr_assert_eq(tg_params_decode(&user, NULL, iov(""), iov(body), "t1", &pool, &out), TG_PARAMS_OK);
    cr_assert_str_eq(out.values[0], "n\xc3\xa9");
    cr_assert_str_eq(out.values[4],
                     "{\"pi\": 3.14159265358979323846264, \"big\": 12345678901234567890123, \"amount\": 19.90,\n \"list\": [1E+2, -0]}");
}

Test(params, decode_without_params)
{
    tg_query_t q = {.name = "ping"};
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&q, NULL, iov(""), iov(""), "t1", &pool, &out), TG_PARAMS_OK);
    cr_assert_eq(out.n_errors, 0);
    cr_assert_eq(tg_params_decode(&q, NULL, iov("x=1"), iov("{\"y\":2}"), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);
    expect_error(&out, 0, "x", "unknown parameter");
    expect_error(&out, 1, "y", "unknown parameter");
}

Test(params, decode_mixed_sources)
{
    /* PATCH /users/{id} with a body, and a query string that only holds unknown keys */
    tg_param_t ps[] = {param("id", TG_TYPE_UUID, TG_SOURCE_PATH), param("email", TG_TYPE_TEXT, TG_SOURCE_BODY)};
    tg_query_t q = {.name = "patch", .method = TG_METHOD_PATCH, .params = ps, .n_params = 2};
    tg_route_match_t m = {.query = &q, .n_path_params = 1};
    m.path_params[0] = (tg_slice_t){"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", 36};
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&q, &m, iov(""), iov("{\"email\":\"a@b\"}"), "t1", &pool, &out), TG_PARAMS_OK);
    const char *want[] = {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a@b"};
    expect_values(&out, want, 2);

    /* a body member naming the path parameter is unknown; the body parameter in the query string belongs in the body */
    cr_assert_eq(tg_params_decode(&q, &m, iov("email=x"), iov("{\"email\":\"a@b\",\"id\":\"x\"}"), "t1", &pool, &out),
                 TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);
    expect_error(&out, 0, "email", "must be in the JSON body");
    expect_error(&out, 1, "id", "unknown parameter");
}

Test(params, decode_many_errors_grow_the_list)
{
    tg_param_t ps[40];
    char names[40][16];
    for (int i = 0; i < 40; ++i) {
        snprintf(names[i], sizeof(names[i]), "p%d", i);
        ps[i] = param(names[i], TG_TYPE_INT4, TG_SOURCE_BODY);
    }
    tg_query_t q = {.name = "many", .params = ps, .n_params = 40};
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&q, NULL, iov(""), iov("{\"p3\": 3}"), "t1", &pool, &out), TG_PARAMS_INVALID);
    /* 39 missing: the first TG_MAX_PARAM_ERRORS listed, all counted */
    cr_assert_eq(out.n_errors, TG_MAX_PARAM_ERRORS);
    cr_assert_eq(out.n_errors_total, 39);
    expect_error(&out, 0, "p0", "is required");
    expect_error(&out, 31, "p32", "is required");
    cr_assert_str_eq(out.values[3], "3");
}

/* from: "tenant": the caller's tenant name is bound, and the caller cannot send it from anywhere */
Test(params, tenant_bound_parameter)
{
    tg_param_t ps[] = {param("owner", TG_TYPE_TEXT, TG_SOURCE_TENANT), param("n", TG_TYPE_INT4, TG_SOURCE_QUERY)};
    tg_query_t q = {.name = "mine", .method = TG_METHOD_GET, .params = ps, .n_params = 2};
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&q, NULL, iov("n=3"), iov(""), "billing", &pool, &out), TG_PARAMS_OK);
    const char *want[] = {"billing", "3"};
    expect_values(&out, want, 2);

    cr_assert_eq(tg_params_decode(&q, NULL, iov("n=3&owner=analytics"), iov(""), "billing", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1);
    expect_error(&out, 0, "owner", "is the caller's tenant and cannot be sent");

    tg_param_t bs[] = {param("owner", TG_TYPE_TEXT, TG_SOURCE_TENANT), param("note", TG_TYPE_TEXT, TG_SOURCE_BODY)};
    tg_query_t b = {.name = "note", .method = TG_METHOD_POST, .params = bs, .n_params = 2};
    cr_assert_eq(tg_params_decode(&b, NULL, iov(""), iov("{\"note\": \"x\"}"), "anonymous", &pool, &out), TG_PARAMS_OK);
    const char *bwant[] = {"anonymous", "x"};
    expect_values(&out, bwant, 2);
    cr_assert_eq(tg_params_decode(&b, NULL, iov("owner=x"), iov("{\"note\": \"x\", \"owner\": \"other\"}"), "anonymous", &pool, &out),
                 TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 2);
    expect_error(&out, 0, "owner", "is the caller's tenant and cannot be sent");
    expect_error(&out, 1, "owner", "is the caller's tenant and cannot be sent");
    /* escaped in the body, it is still the same key */
    cr_assert_eq(tg_params_decode(&b, NULL, iov(""), iov("{\"note\": \"x\", \"\\u006fwner\": \"other\"}"), "a", &pool, &out),
                 TG_PARAMS_INVALID);
    expect_error(&out, 0, "owner", "is the caller's tenant and cannot be sent");
}

Test(params, arrays_take_at_most_their_cap_of_items, .init = search_init, .fini = teardown)
{
    /* the query string: TG_MAX_ARRAY_ITEMS repeats pass, one more is a 400 naming the parameter */
    tg_buf_t qs = {0};
    tg_buf_appends(&qs, "q=x");
    for (int i = 0; i != TG_MAX_ARRAY_ITEMS; ++i)
        tg_buf_appends(&qs, "&ids=1");
    tg_params_t out;
    cr_assert_eq(tg_params_decode(&search, NULL, iov(qs.base), iov(""), "t1", &pool, &out), TG_PARAMS_OK);
    tg_buf_appends(&qs, "&ids=1");
    cr_assert_eq(tg_params_decode(&search, NULL, iov(qs.base), iov(""), "t1", &pool, &out), TG_PARAMS_INVALID);
    cr_assert_eq(out.n_errors, 1);
    expect_error(&out, 0, "ids", "must have at most 10000 items");
    tg_buf_dispose(&qs);

    /* a JSON body */
    tg_buf_t js = {0};
    tg_buf_appendc(&js, '[');
    for (int i = 0; i != TG_MAX_ARRAY_ITEMS + 1; ++i)
        tg_buf_appends(&js, i == 0 ? "1" : ",1");
    tg_buf_appendc(&js, ']');
    tg_param_t p = array_param(TG_TYPE_INT4);
    tg_json_t v = parse(js.base);
    const char *canon;
    cr_assert_str_eq(tg_params_check_json(&p, &v, &pool, &canon), "must have at most 10000 items");
    tg_buf_dispose(&js);
}

/* Tests of gateway/encode.c: libpq text values and rows to JSON. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include "tollgate/encode.h"

/* OIDs used below */
enum {
    BOOL = 16,
    INT8 = 20,
    INT2 = 21,
    INT4 = 23,
    TEXT = 25,
    OID = 26,
    JSON = 114,
    JSON_ARR = 199,
    FLOAT4 = 700,
    FLOAT8 = 701,
    BOOL_ARR = 1000,
    INT2_ARR = 1005,
    INT4_ARR = 1007,
    TEXT_ARR = 1009,
    INT8_ARR = 1016,
    BOX_ARR = 1020,
    FLOAT8_ARR = 1022,
    DATE = 1082,
    TIMESTAMP = 1114,
    TIMESTAMP_ARR = 1115,
    TIMESTAMPTZ = 1184,
    TIMESTAMPTZ_ARR = 1185,
    NUMERIC_ARR = 1231,
    NUMERIC = 1700,
    UUID = 2950,
    UUID_ARR = 2951,
    VOID = 2278,
    JSONB = 3802,
    JSONB_ARR = 3807,
    USER_TYPE = 16384,
};

static const struct {
    Oid oid;
    const char *in;
    const char *out;
} cases[] = {
    /* integers */
    {INT2, "-32768", "-32768"},
    {INT4, "42", "42"},
    {INT8, "-9223372036854775808", "-9223372036854775808"},
    {OID, "4294967295", "4294967295"},
    {INT4, "0", "0"},
    {INT4, "abc", "\"abc\""},
    {INT4, "01", "\"01\""},
    {INT4, "-", "\"-\""},
    {INT4, "", "\"\""},
    /* floats and numeric */
    {FLOAT8, "1.5", "1.5"},
    {FLOAT8, "-0", "-0"},
    {FLOAT8, "1e+30", "1e+30"},
    {FLOAT4, "1e-05", "1e-05"},
    {FLOAT8, "NaN", "\"NaN\""},
    {FLOAT8, "Infinity", "\"Infinity\""},
    {FLOAT4, "-Infinity", "\"-Infinity\""},
    {NUMERIC, "123.4500", "123.4500"},
    {NUMERIC, "-0.000000000000000000000001", "-0.000000000000000000000001"},
    {NUMERIC, "NaN", "\"NaN\""},
    {NUMERIC, "Infinity", "\"Infinity\""},
    {FLOAT8, ".5", "\".5\""},
    {FLOAT8, "1.", "\"1.\""},
    /* bool */
    {BOOL, "t", "true"},
    {BOOL, "f", "false"},
    {BOOL, "x", "\"x\""},
    /* json */
    {JSON, "{\"a\": [1, 2]}", "{\"a\": [1, 2]}"},
    {JSONB, "{\"a\": \"</\\u0000>\"}", "{\"a\": \"</\\u0000>\"}"},
    {JSONB, "3", "3"},
    {JSON, "", "\"\""},
    /* timestamptz: every offset form, specials, BC, five-digit years */
    {TIMESTAMPTZ, "2026-01-02 03:04:05.123+00", "\"2026-01-02T03:04:05.123+00:00\""},
    {TIMESTAMPTZ, "2026-01-02 03:04:05+05:30", "\"2026-01-02T03:04:05+05:30\""},
    {TIMESTAMPTZ, "2026-01-02 03:04:05.000001-03", "\"2026-01-02T03:04:05.000001-03:00\""},
    {TIMESTAMPTZ, "1850-01-01 00:00:00+05:53:28", "\"1850-01-01T00:00:00+05:53:28\""},
    {TIMESTAMPTZ, "12345-06-07 08:09:10+00", "\"12345-06-07T08:09:10+00:00\""},
    {TIMESTAMPTZ, "infinity", "\"infinity\""},
    {TIMESTAMPTZ, "-infinity", "\"-infinity\""},
    {TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC", "\"0044-03-15 12:00:00+00 BC\""},
    {TIMESTAMPTZ, "2026-01-02 03:04:05", "\"2026-01-02 03:04:05\""},
    {TIMESTAMPTZ, "2026-01-02 03:04:05+1", "\"2026-01-02 03:04:05+1\""},
    {TIMESTAMPTZ, "2026-01-02 03:04:05+01:0", "\"2026-01-02 03:04:05+01:0\""},
    {TIMESTAMPTZ, "garbage", "\"garbage\""},
    /* timestamp */
    {TIMESTAMP, "2026-01-02 03:04:05", "\"2026-01-02T03:04:05\""},
    {TIMESTAMP, "2026-01-02 03:04:05.5", "\"2026-01-02T03:04:05.5\""},
    {TIMESTAMP, "infinity", "\"infinity\""},
    {TIMESTAMP, "0044-03-15 12:00:00 BC", "\"0044-03-15 12:00:00 BC\""},
    {TIMESTAMP, "2026-01-02 03:04:05+00", "\"2026-01-02 03:04:05+00\""},
    /* strings */
    {TEXT, "plain", "\"plain\""},
    {TEXT, "q\"b\\s\n\x01 é", "\"q\\\"b\\\\s\\n\\u0001 é\""},
    {DATE, "2026-01-02", "\"2026-01-02\""},
    {UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""},
    {USER_TYPE, "{1,2}", "\"{1,2}\""},
    /* void: what SELECT pg_sleep(0) returns, printed as "" */
    {VOID, "", "null"},
    /* arrays */
    {INT4_ARR, "{1,2,NULL}", "[1,2,null]"},
    {INT2_ARR, "{}", "[]"},
    {INT8_ARR, "{{1,2},{3,4}}", "[[1,2],[3,4]]"},
    {INT4_ARR, "{{{1},{NULL}},{{3},{4}}}", "[[[1],[null]],[[3],[4]]]"},
    {INT4_ARR, "[0:1]={1,2}", "[1,2]"},
    {INT4_ARR, "[1:2][1:1]={{1},{2}}", "[[1],[2]]"},
    {INT4_ARR, "{{},{}}", "[[],[]]"},
    {TEXT_ARR, "{a,\"b c\",\"NULL\",NULL,\"q\\\"x\\\\y\",\"\"}", "[\"a\",\"b c\",\"NULL\",null,\"q\\\"x\\\\y\",\"\"]"},
    {TEXT_ARR, "{\"},{\",\"1); DROP TABLE users;--\"}", "[\"},{\",\"1); DROP TABLE users;--\"]"},
    {TEXT_ARR, "{{a,b},{\"c,d\",NULL}}", "[[\"a\",\"b\"],[\"c,d\",null]]"},
    {TEXT_ARR, "{null,Null}", "[null,null]"},
    {FLOAT8_ARR, "{1.5,NaN,-Infinity,Infinity}", "[1.5,\"NaN\",\"-Infinity\",\"Infinity\"]"},
    {NUMERIC_ARR, "{1.50,-2}", "[1.50,-2]"},
    {BOOL_ARR, "{t,f,NULL}", "[true,false,null]"},
    {JSONB_ARR, "{\"{\\\"a\\\": 1}\",\"[1, 2]\",NULL,3}", "[{\"a\": 1},[1, 2],null,3]"},
    {JSON_ARR, "{\"\\\"s\\\"\"}", "[\"s\"]"},
    {TIMESTAMPTZ_ARR, "{\"2026-01-02 03:04:05+00\",infinity,NULL}", "[\"2026-01-02T03:04:05+00:00\",\"infinity\",null]"},
    {TIMESTAMP_ARR, "{\"2026-01-02 03:04:05.25\"}", "[\"2026-01-02T03:04:05.25\"]"},
    {UUID_ARR, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]"},
    {BOX_ARR, "{(1,1),(0,0);(2,2),(1,1)}", "\"{(1,1),(0,0);(2,2),(1,1)}\""},
    /* malformed arrays become strings */
    {INT4_ARR, "{1,2", "\"{1,2\""},
    {INT4_ARR, "{1,,2}", "\"{1,,2}\""},
    {TEXT_ARR, "{\"a}", "\"{\\\"a}\""},
    {TEXT_ARR, "{a}x", "\"{a}x\""},
    {INT4_ARR, "[0:1]{1,2}", "\"[0:1]{1,2}\""},
    {INT4_ARR, "", "\"\""},
    {INT4_ARR, "{{{{{{{1}}}}}}}", "\"{{{{{{{1}}}}}}}\""},
    {INT4_ARR, "{x}", "[\"x\"]"},
};

Test(encode, values)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_buf_t b = {0};
        tg_buf_appends(&b, "<");
        tg_encode_value(&b, tg_encoding_for_oid(cases[i].oid), cases[i].in, strlen(cases[i].in));
        cr_expect_str_eq(b.base + 1, cases[i].out, "oid %u %s", (unsigned)cases[i].oid, cases[i].in);
        cr_expect_eq(b.base[0], '<');
        cr_expect_eq(strlen(b.base), b.len);
        tg_buf_dispose(&b);
    }
}

Test(encode, outputs_are_valid_json)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_buf_t b = {0};
        tg_encode_value(&b, tg_encoding_for_oid(cases[i].oid), cases[i].in, strlen(cases[i].in));
        json_error_t err;
        json_t *v = json_loadb(b.base, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        cr_expect_not_null(v, "%s: %s", b.base, err.text);
        json_decref(v);
        tg_buf_dispose(&b);
    }
}

Test(encode, encodings_for_oids)
{
    static const struct {
        Oid oid;
        tg_encoding_t enc, elem;
    } m[] = {
        {INT2, TG_ENC_INT, TG_ENC_STRING},        {INT8, TG_ENC_INT, TG_ENC_STRING},
        {NUMERIC, TG_ENC_FLOAT, TG_ENC_STRING},   {BOOL, TG_ENC_BOOL, TG_ENC_STRING},
        {JSONB, TG_ENC_JSON, TG_ENC_STRING},      {TIMESTAMPTZ, TG_ENC_TIMESTAMPTZ, TG_ENC_STRING},
        {TIMESTAMP, TG_ENC_TIMESTAMP, TG_ENC_STRING}, {TEXT, TG_ENC_STRING, TG_ENC_STRING},
        {INT8_ARR, TG_ENC_ARRAY, TG_ENC_INT},     {NUMERIC_ARR, TG_ENC_ARRAY, TG_ENC_FLOAT},
        {JSON_ARR, TG_ENC_ARRAY, TG_ENC_JSON},    {1015, TG_ENC_ARRAY, TG_ENC_STRING},
        {1182, TG_ENC_ARRAY, TG_ENC_STRING},      {BOX_ARR, TG_ENC_STRING, TG_ENC_STRING},
        {USER_TYPE, TG_ENC_STRING, TG_ENC_STRING}, {VOID, TG_ENC_NULL, TG_ENC_STRING},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); ++i) {
        tg_column_enc_t e = tg_encoding_for_oid(m[i].oid);
        cr_expect_eq(e.enc, m[i].enc, "oid %u", (unsigned)m[i].oid);
        if (e.enc == TG_ENC_ARRAY)
            cr_expect_eq(e.elem, m[i].elem, "oid %u", (unsigned)m[i].oid);
    }
}

/* a result built offline, as libpq would hand it over */
static PGresult *make_result(void)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[] = {
        {.name = "id", .typid = INT8, .typlen = 8, .atttypmod = -1},
        {.name = "we\"ird", .typid = TEXT, .typlen = -1, .atttypmod = -1},
        {.name = "ok", .typid = BOOL, .typlen = 1, .atttypmod = -1},
        {.name = "at", .typid = TIMESTAMPTZ, .typlen = 8, .atttypmod = -1},
        {.name = "tags", .typid = TEXT_ARR, .typlen = -1, .atttypmod = -1},
        {.name = "doc", .typid = JSONB, .typlen = -1, .atttypmod = -1},
    };
    cr_assert(PQsetResultAttrs(res, 6, attrs));
    static const char *rows[2][6] = {
        {"1", "a\"b", "t", "2026-01-02 03:04:05+00", "{x,\"y z\"}", "{\"k\": [1]}"},
        {"2", NULL, "f", NULL, "{}", "null"},
    };
    for (int r = 0; r < 2; ++r)
        for (int c = 0; c < 6; ++c)
            cr_assert(PQsetvalue(res, r, c, (char *)rows[r][c], rows[r][c] != NULL ? (int)strlen(rows[r][c]) : -1));
    return res;
}

Test(encode, rows)
{
    PGresult *res = make_result();
    tg_column_enc_t encs[6];
    tg_buf_t keys = {0};
    tg_encode_columns(res, encs, &keys);
    cr_assert_eq(encs[4].enc, TG_ENC_ARRAY);
    tg_buf_t b = {0};
    tg_buf_appendc(&b, '[');
    tg_encode_row(&b, res, 0, encs, &keys);
    tg_buf_appendc(&b, ',');
    tg_encode_row(&b, res, 1, encs, &keys);
    tg_buf_appendc(&b, ']');
    cr_assert_str_eq(b.base, "[{\"id\":1,\"we\\\"ird\":\"a\\\"b\",\"ok\":true,\"at\":\"2026-01-02T03:04:05+00:00\","
                             "\"tags\":[\"x\",\"y z\"],\"doc\":{\"k\": [1]}},"
                             "{\"id\":2,\"we\\\"ird\":null,\"ok\":false,\"at\":null,\"tags\":[],\"doc\":null}]");
    tg_buf_dispose(&b);
    tg_buf_dispose(&keys);
    PQclear(res);
}

Test(encode, long_values_grow_the_buffer)
{
    tg_buf_t b = {0};
    tg_buf_t in = {0};
    tg_buf_appendc(&in, '{');
    for (int i = 0; i < 2000; ++i)
        tg_buf_printf(&in, "%s\"e\\\\%d\"", i ? "," : "", i);
    tg_buf_appendc(&in, '}');
    tg_encode_value(&b, tg_encoding_for_oid(TEXT_ARR), in.base, in.len);
    json_error_t err;
    json_t *v = json_loadb(b.base, b.len, 0, &err);
    cr_assert_not_null(v, "%s", err.text);
    cr_assert_eq(json_array_size(v), 2000);
    cr_assert_str_eq(json_string_value(json_array_get(v, 1999)), "e\\1999");
    json_decref(v);
    tg_buf_dispose(&b);
    tg_buf_dispose(&in);
}

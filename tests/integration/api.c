/*
 * End-to-end tests: the real gateway (started by tests/run.sh with
 * tests/integration/config.json) in front of a real PostgreSQL primary and replica.
 * Every test runs over HTTP/1.1 and HTTP/2 (cleartext, prior knowledge).
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"
#include "tollgate/consistency.h"


/* Asserts status and, for errors, the problem+json shape; returns the response. `header` as for http(). */
static resp_t *expect_h(proto_t p, long status, const char *method, const char *path, const char *body, const char *ctype,
                        const char *header)
{
    resp_t *r = http(p, method, path, body, ctype, header);
    cr_assert_eq(r->status, status, "[%s] %s %s: status %ld, want %ld; body: %s", proto_name(p), method, path, r->status, status,
                 r->body);
    cr_assert_eq(r->http_version, p == PROTO_H1 ? 1 : 2, "[%s] wrong HTTP version %ld", proto_name(p), r->http_version);
    char *ct = resp_header(r, "content-type");
    cr_assert_not_null(ct, "[%s] %s %s: no content-type", proto_name(p), method, path);
    if (status >= 400) {
        cr_assert_str_eq(ct, "application/problem+json", "[%s] %s %s", proto_name(p), method, path);
        cr_assert(json_is_object(r->json), "[%s] error body is not a JSON object: %s", proto_name(p), r->body);
        cr_assert_eq(json_integer_value(json_object_get(r->json, "status")), status, "[%s] body status: %s", proto_name(p),
                     r->body);
        cr_assert_not_null(jstr(r, "type"), "[%s] problem without type: %s", proto_name(p), r->body);
        cr_assert_not_null(jstr(r, "title"), "[%s] problem without title: %s", proto_name(p), r->body);
        /* Nothing internal leaks: no SQL text, no connection string. */
        static const char *leaks[] = {"SELECT", "INSERT", "UPDATE ", "FROM ", "host=", "port=", "dbname", "user=", "pg_sleep"};
        for (size_t i = 0; i != sizeof(leaks) / sizeof(leaks[0]); ++i)
            cr_assert_null(strstr(r->body, leaks[i]), "[%s] %s %s: error body leaks \"%s\": %s", proto_name(p), method, path,
                           leaks[i], r->body);
    } else {
        cr_assert_str_eq(ct, "application/json", "[%s] %s %s", proto_name(p), method, path);
        cr_assert_not_null(r->json, "[%s] body is not JSON: %s", proto_name(p), r->body);
    }
    free(ct);
    return r;
}

static resp_t *expect(proto_t p, long status, const char *method, const char *path, const char *body, const char *ctype)
{
    return expect_h(p, status, method, path, body, ctype, NULL);
}

static const char *problem_type(const resp_t *r)
{
    return jstr(r, "type");
}

/* The JSON value of member `key` of the body, serialised compactly, for exact comparisons. */
static char *member(const resp_t *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    cr_assert_not_null(v, "no member %s in %s", key, r->body);
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
}

static void assert_member(const resp_t *r, const char *key, const char *want)
{
    char *got = member(r, key);
    cr_assert_str_eq(got, want, "member %s: got %s, want %s (body %s)", key, got, want, r->body);
    free(got);
}

/* The `errors` entry for parameter `name`, or NULL. */
static const char *param_error(const resp_t *r, const char *name)
{
    json_t *errs = json_object_get(r->json, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
            return json_string_value(json_object_get(e, "reason"));
    }
    return NULL;
}

Test(builtin, healthz)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/healthz", NULL, NULL);
        cr_assert_str_eq(jstr(r, "status"), "ok");
        resp_free(r);
    }
}

Test(builtin, h2c_upgrade_serves_http2)
{
    resp_t *r = http(PROTO_H2C_UPGRADE, "GET", "/users/1", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "body %s", r->body);
    cr_assert_eq(r->http_version, 2, "Upgrade: h2c did not switch to HTTP/2");
    cr_assert_eq(json_integer_value(json_object_get(r->json, "id")), 1);
    resp_free(r);
}

Test(builtin, request_id_echoed_or_made)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = http(p, "GET", "/users/1", NULL, NULL, "X-Request-Id: abc-123");
        char *id = resp_header(r, "x-request-id");
        cr_assert_str_eq(id, "abc-123", "[%s]", proto_name(p));
        free(id);
        resp_free(r);
        r = http(p, "GET", "/nope", NULL, NULL, NULL);
        id = resp_header(r, "x-request-id");
        cr_assert_not_null(id, "[%s] no request id on an error", proto_name(p));
        cr_assert_geq(strlen(id), 8);
        free(id);
        resp_free(r);
    }
}

Test(routing, unknown_route_is_404)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 404, "GET", "/no/such/thing", NULL, NULL);
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:no-route");
        resp_free(r);
    }
}

Test(routing, wrong_method_is_405_with_allow)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 405, "PUT", "/users/1", NULL, NULL);
        char *allow = resp_header(r, "allow");
        cr_assert_str_eq(allow, "GET, HEAD, PATCH, DELETE", "[%s]", proto_name(p));
        free(allow);
        resp_free(r);
    }
}

Test(routing, path_params_decoded_in_route_order)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/echo/path/a%20b%2Fc/42", NULL, NULL);
        assert_member(r, "n", "42");
        assert_member(r, "t", "\"a b/c\"");
        resp_free(r);
        r = expect(p, 400, "GET", "/echo/path/abcdefghijklmnopqrstuvwxyz/1", NULL, NULL);
        cr_assert_not_null(param_error(r, "t"), "[%s] %s", proto_name(p), r->body);
        resp_free(r);
    }
}

Test(reads, get_user_and_missing_row)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/users/7", NULL, NULL);
        cr_assert_eq(json_integer_value(json_object_get(r->json, "id")), 7);
        cr_assert(json_is_string(json_object_get(r->json, "email")));
        cr_assert(json_is_object(json_object_get(r->json, "settings")), "jsonb is embedded: %s", r->body);
        resp_free(r);
        r = expect(p, 404, "GET", "/users/999999999", NULL, NULL);
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:not-found");
        resp_free(r);
        r = expect(p, 404, "GET", "/rows/missing", NULL, NULL);
        resp_free(r);
    }
}

Test(reads, returns_many_and_max_rows)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/rows/many?n=3", NULL, NULL);
        cr_assert_str_eq(r->body, "[{\"n\":1},{\"n\":2},{\"n\":3}]");
        resp_free(r);
        r = expect(p, 200, "GET", "/rows/many?n=0", NULL, NULL);
        cr_assert_str_eq(r->body, "[]");
        resp_free(r);
        r = expect(p, 200, "GET", "/rows/many?n=1000", NULL, NULL);
        cr_assert_eq(json_array_size(r->json), 1000);
        resp_free(r);
        r = expect(p, 500, "GET", "/rows/many?n=1001", NULL, NULL);
        cr_assert(strstr(jstr(r, "detail"), "max_rows") != NULL, "%s", r->body);
        resp_free(r);
    }
}

Test(writes, create_read_update_delete)
{
    FOR_EACH_PROTO(p)
    {
        char body[256], path[64];
        snprintf(body, sizeof(body), "{\"email\":\"crud-%d-%ld@example.com\",\"name\":\"Crud\",\"settings\":{\"a\":[1,2]}}", p,
                 (long)getpid());
        resp_t *r = expect(p, 200, "POST", "/users", body, "application/json");
        json_int_t id = json_integer_value(json_object_get(r->json, "id"));
        cr_assert_gt(id, 0);
        assert_member(r, "settings", "{\"a\":[1,2]}");
        resp_free(r);
        /* The same email again violates the unique constraint: 409. */
        r = expect(p, 409, "POST", "/users", body, "application/json; charset=utf-8");
        cr_assert_str_eq(jstr(r, "sqlstate"), "23505");
        resp_free(r);
        snprintf(path, sizeof(path), "/users/%lld", (long long)id);
        r = expect(p, 200, "PATCH", path, "{\"name\":\"Renamed\"}", "application/json");
        cr_assert_str_eq(jstr(r, "name"), "Renamed");
        resp_free(r);
        r = expect(p, 200, "DELETE", path, NULL, NULL);
        assert_member(r, "rows_affected", "1");
        resp_free(r);
        r = expect(p, 200, "DELETE", path, NULL, NULL);
        assert_member(r, "rows_affected", "0");
        resp_free(r);
    }
}

Test(writes, returns_none_counts_rows)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "POST", "/rows/touch", "{\"ids\":[1,2,3,999999999]}", "application/json");
        cr_assert_str_eq(r->body, "{\"rows_affected\":3}");
        resp_free(r);
        r = expect(p, 200, "PUT", "/users/3/active", "{\"active\":true}", "application/json");
        cr_assert_str_eq(r->body, "{\"rows_affected\":1}");
        resp_free(r);
    }
}

Test(params, every_scalar_type_from_the_body)
{
    const char *body = "{\"int2\":-32768,\"int4\":2147483647,\"int8\":-9223372036854775808,\"float4\":1.5,\"float8\":-0.25,"
                       "\"numeric\":\"12345678901234567890.0123456789\",\"text\":\"h\\u00e9llo \\\"w\\\"\",\"bool\":false,"
                       "\"uuid\":\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\",\"date\":\"2024-02-29\","
                       "\"timestamptz\":\"2026-01-02T03:04:05.5+02:00\",\"json\":{\"k\":[1,\"x\"]},\"jsonb\":[true,null]}";
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "POST", "/echo/scalars", body, "application/json");
        assert_member(r, "int2", "-32768");
        assert_member(r, "int4", "2147483647");
        assert_member(r, "int8", "-9223372036854775808");
        assert_member(r, "float4", "1.5");
        assert_member(r, "float8", "-0.25");
        cr_assert(strstr(r->body, "\"numeric\":12345678901234567890.0123456789") != NULL, "numeric keeps every digit: %s",
                  r->body);
        assert_member(r, "text", "\"h\\u00E9llo \\\"w\\\"\"");
        assert_member(r, "bool", "false");
        assert_member(r, "uuid", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
        assert_member(r, "date", "\"2024-02-29\"");
        assert_member(r, "timestamptz", "\"2026-01-02T01:04:05.5+00:00\"");
        assert_member(r, "json", "{\"k\":[1,\"x\"]}");
        assert_member(r, "jsonb", "[true,null]");
        resp_free(r);
        /* Omitted optional parameters are SQL NULL. */
        r = expect(p, 200, "POST", "/echo/scalars", "{}", "application/json");
        assert_member(r, "int4", "null");
        assert_member(r, "json", "null");
        resp_free(r);
        /* An empty body is no parameters at all. */
        r = expect(p, 200, "POST", "/echo/scalars", NULL, NULL);
        assert_member(r, "text", "null");
        resp_free(r);
    }
}

Test(params, every_array_type_from_the_body)
{
    const char *body = "{\"int2\":[1,null,-2],\"int4\":[],\"int8\":[9007199254740993],\"float4\":[0.5],\"float8\":[1e300],"
                       "\"numeric\":[1.25,\"2.50\"],\"text\":[\"a,b\",\"}{\",\"\\\"q\\\"\",\"back\\\\slash\",\"NULL\",null,\"\"],"
                       "\"bool\":[true,false],\"uuid\":[\"00000000-0000-0000-0000-000000000001\"],\"date\":[\"2026-12-31\"],"
                       "\"timestamptz\":[\"2026-01-02T03:04:05Z\"],\"json\":[{\"a\":1},[2]],\"jsonb\":[\"s\",3]}";
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "POST", "/echo/arrays", body, "application/json");
        assert_member(r, "int2", "[1,null,-2]");
        assert_member(r, "int4", "[]");
        assert_member(r, "int8", "[9007199254740993]");
        assert_member(r, "float4", "[0.5]");
        cr_assert(strstr(r->body, "\"float8\":[1e+300]") != NULL, "%s", r->body);
        /* Quoting round-trips: commas, braces, quotes, backslashes, the word NULL, real NULL, empty string. */
        assert_member(r, "text", "[\"a,b\",\"}{\",\"\\\"q\\\"\",\"back\\\\slash\",\"NULL\",null,\"\"]");
        assert_member(r, "bool", "[true,false]");
        assert_member(r, "uuid", "[\"00000000-0000-0000-0000-000000000001\"]");
        assert_member(r, "date", "[\"2026-12-31\"]");
        assert_member(r, "timestamptz", "[\"2026-01-02T03:04:05+00:00\"]");
        assert_member(r, "json", "[{\"a\":1},[2]]");
        assert_member(r, "jsonb", "[\"s\",3]");
        cr_assert(strstr(r->body, "\"numeric\":[1.25,2.50]") != NULL, "%s", r->body);
        resp_free(r);
    }
}

Test(params, query_string_scalars_and_repeated_keys)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET",
                           "/echo/query?int2=7&int8=-1&float8=2.5&numeric=-0.001&text=a+b%26c%3D&bool=true"
                           "&uuid=00000000-0000-0000-0000-00000000000a&date=2026-03-01&timestamptz=2026-03-01T00:00:00Z"
                           "&json=%7B%22x%22%3A1%7D&int4s=1&int4s=2&int4s=3&texts=x&texts=%2C",
                           NULL, NULL);
        assert_member(r, "int2", "7");
        assert_member(r, "int8", "-1");
        assert_member(r, "float8", "2.5");
        assert_member(r, "text", "\"a b&c=\"");
        assert_member(r, "bool", "true");
        assert_member(r, "json", "{\"x\":1}");
        assert_member(r, "int4s", "[1,2,3]");
        assert_member(r, "texts", "[\"x\",\",\"]");
        assert_member(r, "int4", "null");
        cr_assert(strstr(r->body, "\"numeric\":-0.001") != NULL, "%s", r->body);
        resp_free(r);
    }
}

Test(params, defaults_and_bounds)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/echo/bounds?i=-10", NULL, NULL);
        assert_member(r, "i", "-10");
        assert_member(r, "s", "\"abc\"");
        assert_member(r, "e", "\"red\"");
        assert_member(r, "b", "true");
        assert_member(r, "d", "\"2026-01-02\"");
        assert_member(r, "big", "9223372036854775807");
        assert_member(r, "opt", "null");
        assert_member(r, "small", "[1,2,3]");
        cr_assert(strstr(r->body, "\"n\":1.5") != NULL, "%s", r->body);
        resp_free(r);
        r = expect(p, 200, "GET", "/echo/bounds?i=10&s=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9&e=blue&small=0&small=9", NULL, NULL);
        assert_member(r, "s", "\"\\u00E9\\u00E9\\u00E9\\u00E9\\u00E9\""); /* 5 characters, 10 bytes: within max_length 5 */
        assert_member(r, "e", "\"blue\"");
        assert_member(r, "small", "[0,9]");
        resp_free(r);
    }
}

Test(params, a_400_lists_at_most_32_errors_and_counts_them_all)
{
    char path[8192];
    int n = snprintf(path, sizeof(path), "/echo/bounds?i=1");
    for (int k = 0; k != 500; ++k)
        n += snprintf(path + n, sizeof(path) - (size_t)n, "&u%d=1", k);
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 400, "GET", path, NULL, NULL);
        cr_assert_eq(json_array_size(json_object_get(r->json, "errors")), 32, "%s", r->body);
        cr_assert_eq(json_integer_value(json_object_get(r->json, "error_count")), 500, "%s", r->body);
        resp_free(r);
    }
}

Test(params, answers_are_utf8_whatever_the_request_carried)
{
    FOR_EACH_PROTO(p)
    {
        /* an unknown key that decodes to bytes that are not UTF-8 is named in the answer, as U+FFFD */
        resp_t *r = expect(p, 400, "GET", "/echo/bounds?i=1&%FF%FE=1&a%C3=2", NULL, NULL);
        cr_assert_not_null(r->json, "not JSON: %s", r->body);
        cr_assert_not_null(param_error(r, "\xef\xbf\xbd\xef\xbf\xbd"), "%s", r->body);
        cr_assert_not_null(param_error(r, "a\xef\xbf\xbd"), "%s", r->body);
        resp_free(r);
    }
}

Test(params, every_bad_parameter_reported_at_once)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 400, "GET", "/echo/bounds?i=11&s=toolong&e=purple&n=100&f=2&b=maybe&d=2026-02-30&small=10&zzz=1",
                           NULL, NULL);
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:invalid-parameters");
        static const char *bad[] = {"i", "s", "e", "n", "f", "b", "d", "zzz"};
        for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
            cr_assert_not_null(param_error(r, bad[i]), "[%s] no error for %s: %s", proto_name(p), bad[i], r->body);
        cr_assert(strstr(r->body, "small") != NULL, "array element out of bounds: %s", r->body);
        resp_free(r);
        r = expect(p, 400, "GET", "/echo/bounds", NULL, NULL);
        cr_assert_not_null(param_error(r, "i"), "missing required: %s", r->body);
        resp_free(r);
        r = expect(p, 400, "GET", "/echo/bounds?i=abc", NULL, NULL);
        cr_assert_not_null(param_error(r, "i"));
        resp_free(r);
        r = expect(p, 400, "GET", "/users/12abc", NULL, NULL);
        cr_assert_not_null(param_error(r, "id"));
        resp_free(r);
        r = expect(p, 400, "GET", "/echo/query?int2=40000&int4=1.5&uuid=xyz&timestamptz=yesterday&json=%7B", NULL, NULL);
        static const char *bad2[] = {"int2", "int4", "uuid", "timestamptz", "json"};
        for (size_t i = 0; i != sizeof(bad2) / sizeof(bad2[0]); ++i)
            cr_assert_not_null(param_error(r, bad2[i]), "[%s] no error for %s: %s", proto_name(p), bad2[i], r->body);
        resp_free(r);
    }
}

Test(params, wrong_json_types_in_the_body)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 400, "POST", "/echo/scalars",
                           "{\"int4\":\"12\",\"bool\":1,\"text\":5,\"int2\":1.5,\"uuid\":true,\"unknown\":1}", "application/json");
        static const char *bad[] = {"int4", "bool", "text", "int2", "uuid", "unknown"};
        for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
            cr_assert_not_null(param_error(r, bad[i]), "[%s] no error for %s: %s", proto_name(p), bad[i], r->body);
        resp_free(r);
        r = expect(p, 400, "POST", "/echo/arrays", "{\"int4\":5,\"text\":[1]}", "application/json");
        cr_assert_not_null(param_error(r, "int4"), "scalar for an array: %s", r->body);
        resp_free(r);
    }
}

Test(params, a_body_parameter_in_the_query_string_is_one_clear_error)
{
    FOR_EACH_PROTO(p)
    {
        /* POST /users?email=..&name=..: each said to belong in the body, once, and not also "is required" */
        resp_t *r = expect(p, 400, "POST", "/users?email=a%40example.com&name=A&colour=red", NULL, NULL);
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:invalid-parameters");
        json_t *errs = json_object_get(r->json, "errors");
        cr_assert_eq(json_array_size(errs), 3, "[%s] %s", proto_name(p), r->body);
        cr_assert_str_eq(param_error(r, "email"), "must be in the JSON body", "[%s] %s", proto_name(p), r->body);
        cr_assert_str_eq(param_error(r, "name"), "must be in the JSON body", "[%s] %s", proto_name(p), r->body);
        cr_assert_str_eq(param_error(r, "colour"), "unknown parameter", "[%s] %s", proto_name(p), r->body);
        resp_free(r);
    }
}

Test(body, malformed_json_is_400)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 400, "POST", "/users", "{\"email\": ", "application/json");
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:malformed-json");
        resp_free(r);
        r = expect(p, 400, "POST", "/users", "[1,2]", "application/json");
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:malformed-json");
        resp_free(r);
    }
}

Test(body, wrong_content_type_is_415)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 415, "POST", "/users", "email=x", "application/x-www-form-urlencoded");
        resp_free(r);
        r = expect(p, 415, "POST", "/users", "{\"email\":\"a\"}", "text/plain");
        resp_free(r);
    }
}

Test(body, oversized_body_is_413)
{
    /* The test config sets max_body_bytes to 65536. */
    size_t n = 70000;
    char *big = malloc(n + 64);
    strcpy(big, "{\"email\":\"");
    memset(big + 10, 'a', n);
    strcpy(big + 10 + n, "\",\"name\":\"x\"}");
    FOR_EACH_PROTO(p)
    {
        resp_t *r = http(p, "POST", "/users", big, "application/json", NULL);
        cr_assert_eq(r->status, 413, "%s: %ld %s", proto_name(p), r->status, r->body);
        if (p == PROTO_H1) {
            /* refused on its Content-Length before any body is read: h2o's own answer (docs/reference.md, section 7) */
            cr_assert_not_null(strstr(r->body, "request entity is too large"), "%s", r->body);
        } else {
            /* the body cut off at the limit by the guard; tollgate's problem+json */
            cr_assert_not_null(r->json, "%s", r->body);
            cr_assert(strstr(jstr(r, "detail"), "max_body_bytes") != NULL, "%s", r->body);
        }
        resp_free(r);
    }
    free(big);
}

Test(encoding, every_column_type)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/encode/special", NULL, NULL);
        static const char *want[][2] = {
            {"i2", "32767"},
            {"i4", "2147483647"},
            {"i8", "9223372036854775807"},
            {"f4", "1.5"},
            {"f_nan", "\"NaN\""},
            {"f_inf", "\"Infinity\""},
            {"f4_ninf", "\"-Infinity\""},
            {"n_nan", "\"NaN\""},
            {"n_inf", "\"Infinity\""},
            {"t", "\"tab\\\\there \\\"quoted\\\" \\u00E9 \\u2603\""}, /* the SQL has a literal backslash */
            {"nul", "null"},
            {"yes", "true"},
            {"no", "false"},
            {"jb", "{\"a\":[1,null,\"x\"],\"b\":{}}"},
            {"js", "[1,2]"},
            {"arr_i4", "[1,null,3]"},
            {"arr_t", "[\"a\",\"b c\",null]"},
            {"arr_jb", "[{\"k\":1}]"},
            {"arr_b", "[true,false]"},
            {"arr_empty", "[]"},
            {"arr_f8", "[\"NaN\",2.5]"},
            {"ts", "\"2026-01-02T03:04:05.123+00:00\""},
            {"d", "\"2026-01-02\""},
            {"u", "\"00000000-0000-0000-0000-000000000001\""},
            {"by", "\"\\\\x0102\""},
            {"iv", "\"1 day 02:00:00\""},
        };
        for (size_t i = 0; i != sizeof(want) / sizeof(want[0]); ++i)
            assert_member(r, want[i][0], want[i][1]);
        /* Exact digits, as PostgreSQL printed them (jansson would round these). */
        cr_assert(strstr(r->body, "\"n_big\":12345678901234567890.123456789") != NULL, "%s", r->body);
        cr_assert(strstr(r->body, "\"n_scale\":0.10") != NULL, "%s", r->body);
        cr_assert(strstr(r->body, "\"f8\":0.1,") != NULL, "float8 as PostgreSQL prints it: %s", r->body);
        resp_free(r);
    }
}

/* --- exact data: what the gateway stored, read back with libpq --- */

/* A value of the exact_probe row `id` (a SQL expression over its columns), or NULL. */
static char *probe(long long id, const char *expr)
{
    char sql[256], idtext[32];
    snprintf(sql, sizeof(sql), "SELECT %s FROM exact_probe WHERE id = $1", expr);
    snprintf(idtext, sizeof(idtext), "%lld", id);
    const char *params[] = {idtext};
    return pg_sql_params(0, sql, 1, params);
}

/* PostgreSQL's own reading of `text` as `type`, printed: what a value-for-value comparison expects. */
static char *pg_reads(const char *text, const char *type)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT $1::%s::text", type);
    const char *params[] = {text};
    return pg_sql_params(0, sql, 1, params);
}

static void expect_probe(long long id, const char *expr, const char *want)
{
    char *got = probe(id, expr);
    cr_assert_not_null(got, "row %lld: %s is NULL, want %s", id, expr, want);
    cr_assert_str_eq(got, want, "row %lld: %s", id, expr);
    free(got);
}

/* A document no double can carry: long decimals, an integer past 64 bits, exponents, -0, nesting, odd whitespace. */
static const char EXACT_DOC[] = "{\"pi\": 3.14159265358979323846264338327950288419716939937510, \"amount\": 19.90,\n"
                                "  \"big\": 12345678901234567890123, \"neg_big\": -98765432109876543210987654321,"
                                " \"e\": 1E+2, \"tiny\": 2.50e-300, \"neg0\": -0,\n"
                                "  \"nested\": [[1.10, [2.50]], {\"z\": 1, \"a\": [true, null, \"\\u00e9\\n\"]}], \"empty\": {}}";

Test(exact, numbers_and_json_reach_postgres_as_sent)
{
    FOR_EACH_PROTO(p)
    {
        long long id = 900001 + p;
        char body[2048];
        snprintf(body, sizeof(body),
                 "{\"id\": %lld, \"num\": 3.1415926535897932384626433832795028841971,"
                 " \"num10\": 123456789012345678901234567890.0123456789,"
                 " \"doc_json\": %s, \"doc_jsonb\": %s, \"f8\": 0.1000000000000000055511151231257827}",
                 id, EXACT_DOC, EXACT_DOC);
        resp_t *r = expect(p, 200, "POST", "/exact", body, "application/json");
        cr_assert_eq(json_integer_value(json_object_get(r->json, "id")), id, "%s", r->body);
        resp_free(r);
        /* numeric and json keep every byte; a 40-digit numeric with scale 10 too */
        expect_probe(id, "num::text", "3.1415926535897932384626433832795028841971");
        expect_probe(id, "num10::text", "123456789012345678901234567890.0123456789");
        expect_probe(id, "doc_json::text", EXACT_DOC);
        /* jsonb normalizes (key order, whitespace) as PostgreSQL does: compare with its own reading of the text sent */
        char *want = pg_reads(EXACT_DOC, "jsonb");
        expect_probe(id, "doc_jsonb::text", want);
        free(want);
        char *jb = probe(id, "doc_jsonb::text");
        static const char *kept[] = {"3.14159265358979323846264338327950288419716939937510", "19.90", "12345678901234567890123",
                                     "-98765432109876543210987654321", "[[1.10, [2.50]]", "000250,"};
        for (size_t i = 0; i != sizeof(kept) / sizeof(kept[0]); ++i)
            cr_assert_not_null(strstr(jb, kept[i]), "jsonb lost %s: %s", kept[i], jb);
        free(jb);
        /* float8 from the text sent: the same double PostgreSQL reads from it */
        want = pg_reads("0.1000000000000000055511151231257827", "float8");
        expect_probe(id, "f8::text", want);
        free(want);

        /* numerics as JSON strings, and spellings PostgreSQL normalizes (compared value for value) */
        snprintf(body, sizeof(body),
                 "{\"id\": %lld, \"num\": \"-0.00000000000000000000000000000000000001\","
                 " \"num10\": \"-123456789012345678901234567890.0123456789\", \"doc_json\": [1E+2, -0, 2.50]}",
                 id);
        r = expect(p, 200, "POST", "/exact", body, "application/json");
        resp_free(r);
        expect_probe(id, "num::text", "-0.00000000000000000000000000000000000001");
        expect_probe(id, "num10::text", "-123456789012345678901234567890.0123456789");
        expect_probe(id, "doc_json::text", "[1E+2, -0, 2.50]");
        snprintf(body, sizeof(body), "{\"id\": %lld, \"num\": 1E+2, \"num10\": -0}", id);
        r = expect(p, 200, "POST", "/exact", body, "application/json");
        resp_free(r);
        want = pg_reads("1E+2", "numeric");
        expect_probe(id, "num::text", want);
        free(want);
        want = pg_reads("-0", "numeric(50,10)");
        expect_probe(id, "num10::text", want);
        free(want);
    }
    pg_sql(0, "DELETE FROM exact_probe WHERE id IN (900001, 900002)");
}

Test(exact, int8_at_both_ends_from_body_query_string_and_path)
{
    static const char *ends[] = {"9223372036854775807", "-9223372036854775808"};
    static const char *past[] = {"9223372036854775808", "-9223372036854775809", "123456789012345678901234567890"};
    FOR_EACH_PROTO(p)
    {
        for (size_t i = 0; i != 2; ++i) {
            char body[128], path[128];
            snprintf(body, sizeof(body), "{\"id\": %s}", ends[i]);
            resp_t *r = expect(p, 200, "POST", "/exact", body, "application/json");
            resp_free(r);
            char *got = probe(strtoll(ends[i], NULL, 10), "id::text");
            cr_assert_not_null(got, "row %s was not stored", ends[i]);
            cr_assert_str_eq(got, ends[i]);
            free(got);
            snprintf(path, sizeof(path), "/exact/echo/%s", ends[i]);
            r = expect(p, 200, "GET", path, NULL, NULL);
            cr_assert_str_eq(jstr(r, "id"), ends[i], "%s", r->body);
            resp_free(r);
            snprintf(path, sizeof(path), "/exact/echo?id=%s", ends[i]);
            r = expect(p, 200, "GET", path, NULL, NULL);
            cr_assert_str_eq(jstr(r, "id"), ends[i], "%s", r->body);
            resp_free(r);
        }
        for (size_t i = 0; i != sizeof(past) / sizeof(past[0]); ++i) {
            char body[128], path[128];
            snprintf(body, sizeof(body), "{\"id\": %s}", past[i]);
            resp_t *r = expect(p, 400, "POST", "/exact", body, "application/json");
            cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:invalid-parameters", "%s: %s", past[i], r->body);
            cr_assert_str_eq(param_error(r, "id"), "is out of range for int8", "%s: %s", past[i], r->body);
            resp_free(r);
            snprintf(path, sizeof(path), "/exact/echo/%s", past[i]);
            r = expect(p, 400, "GET", path, NULL, NULL);
            cr_assert_str_eq(param_error(r, "id"), "is out of range for int8", "%s: %s", past[i], r->body);
            resp_free(r);
            snprintf(path, sizeof(path), "/exact/echo?id=%s", past[i]);
            r = expect(p, 400, "GET", path, NULL, NULL);
            cr_assert_str_eq(param_error(r, "id"), "is out of range for int8", "%s: %s", past[i], r->body);
            resp_free(r);
        }
    }
    pg_sql(0, "DELETE FROM exact_probe WHERE id IN (9223372036854775807, -9223372036854775808)");
}

Test(exact, query_string_numerics_and_json_pass_through)
{
    CURL *c = curl_easy_init();
    static const char num[] = "-1234567890123456789012345678901234567890.0123456789";
    static const char doc[] = "{\"a\": 1.10, \"big\": 12345678901234567890123, \"b\": [1E+2]}";
    char *enc_num = curl_easy_escape(c, num, 0), *enc_doc = curl_easy_escape(c, doc, 0);
    char path[1024];
    snprintf(path, sizeof(path), "/exact/echo?num=%s&doc_json=%s&doc_jsonb=%s", enc_num, enc_doc, enc_doc);
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", path, NULL, NULL);
        cr_assert_str_eq(jstr(r, "num"), num, "%s", r->body);
        cr_assert_str_eq(jstr(r, "doc_json"), doc, "%s", r->body);
        char *want = pg_reads(doc, "jsonb");
        cr_assert_str_eq(jstr(r, "doc_jsonb"), want, "%s", r->body);
        free(want);
        resp_free(r);
    }
    curl_free(enc_num);
    curl_free(enc_doc);
    curl_easy_cleanup(c);
}

Test(exact, catalog_defaults_are_taken_as_written)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/exact/default", NULL, NULL);
        cr_assert_str_eq(jstr(r, "num"), "1.10", "%s", r->body);
        cr_assert_str_eq(jstr(r, "doc"), "{\"price\": 19.90, \"n\": [1E+2, -0]}", "%s", r->body);
        resp_free(r);
    }
}

Test(exact, bodies_that_two_readers_could_read_differently_are_refused)
{
    char deep[1200];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"id\": 1, \"doc_json\": ");
    for (int i = 0; i < 512; ++i)
        deep[n++] = '[';
    for (int i = 0; i < 512; ++i)
        deep[n++] = ']';
    snprintf(deep + n, sizeof(deep) - n, "}");
    static const char *bad[] = {
        "{\"id\": 1, \"doc_json\": {\"a\": 1, \"a\": 2}}",
        "{\"id\": 1, \"doc_jsonb\": [{\"k\": 1, \"\\u006b\": 2}]}",
        "{\"id\": 1, \"id\": 2}",
        "{\"id\": 1, \"doc_json\": \"\\ud800\"}",
        "{\"id\": 1, \"doc_json\": 01}",
    };
    FOR_EACH_PROTO(p)
    {
        for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
            resp_t *r = expect(p, 400, "POST", "/exact", bad[i], "application/json");
            cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:malformed-json", "%s: %s", bad[i], r->body);
            resp_free(r);
        }
        resp_t *r = expect(p, 400, "POST", "/exact", deep, "application/json");
        cr_assert_not_null(strstr(jstr(r, "detail"), "nested deeper than 512 levels"), "%s", r->body);
        resp_free(r);
    }
    char *left = pg_sql(0, "SELECT count(*) FROM exact_probe WHERE id IN (1, 2)");
    cr_assert_str_eq(left, "0");
    free(left);
}

/* --- writes that declare a result shape never commit one that breaks it --- */

static void expect_count(const char *where, const char *want)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM exact_probe WHERE %s", where);
    char *got = pg_sql(0, sql);
    cr_assert_str_eq(got, want, "%s", sql);
    free(got);
}

Test(writes, returns_one_touching_two_rows_is_rolled_back)
{
    FOR_EACH_PROTO(p)
    {
        int g = 7100 + 10 * p;
        char sql[256], body[128], where[64];
        snprintf(sql, sizeof(sql), "INSERT INTO exact_probe (id, grp) VALUES (%d, %d), (%d, %d), (%d, %d)", g, g, g + 1, g, g + 2,
                 g + 5);
        pg_sql(0, sql);
        /* two rows match: 500, and neither changed */
        snprintf(body, sizeof(body), "{\"from\": %d, \"to\": %d}", g, g + 1);
        resp_t *r = expect(p, 500, "PATCH", "/exact/group/one", body, "application/json");
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:too-many-rows", "%s", r->body);
        cr_assert_not_null(strstr(jstr(r, "detail"), "rolled back"), "%s", r->body);
        resp_free(r);
        snprintf(where, sizeof(where), "grp = %d", g);
        expect_count(where, "2");
        snprintf(where, sizeof(where), "grp = %d", g + 1);
        expect_count(where, "0");
        /* one row matches: committed, and the connection works on as before */
        for (int round = 0; round != 2; ++round) {
            snprintf(body, sizeof(body), "{\"from\": %d, \"to\": %d}", g + 5 + round, g + 6 + round);
            r = expect(p, 200, "PATCH", "/exact/group/one", body, "application/json");
            cr_assert_eq(json_integer_value(json_object_get(r->json, "id")), g + 2, "%s", r->body);
            resp_free(r);
            snprintf(where, sizeof(where), "id = %d AND grp = %d", g + 2, g + 6 + round);
            expect_count(where, "1");
        }
        /* no row: 404, nothing to roll back */
        snprintf(body, sizeof(body), "{\"from\": %d, \"to\": %d}", g + 9, g + 1);
        r = expect(p, 404, "PATCH", "/exact/group/one", body, "application/json");
        resp_free(r);
        snprintf(sql, sizeof(sql), "DELETE FROM exact_probe WHERE id BETWEEN %d AND %d", g, g + 2);
        pg_sql(0, sql);
    }
}

Test(writes, returns_many_over_max_rows_is_rolled_back)
{
    FOR_EACH_PROTO(p)
    {
        long long first = 200000 + 10000LL * p;
        int g = 8100 + p;
        char body[128], where[64], sql[128];
        /* 1001 rows, max_rows is 1000: nothing is inserted */
        snprintf(body, sizeof(body), "{\"first\": %lld, \"last\": %lld, \"grp\": %d}", first, first + 1000, g);
        resp_t *r = expect(p, 500, "POST", "/exact/fill", body, "application/json");
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:too-many-rows", "%s", r->body);
        cr_assert_not_null(strstr(jstr(r, "detail"), "max_rows (1000); it was rolled back"), "%s", r->body);
        resp_free(r);
        snprintf(where, sizeof(where), "grp = %d", g);
        expect_count(where, "0");
        /* exactly max_rows rows: all committed */
        snprintf(body, sizeof(body), "{\"first\": %lld, \"last\": %lld, \"grp\": %d}", first, first + 999, g);
        r = expect(p, 200, "POST", "/exact/fill", body, "application/json");
        cr_assert_eq(json_array_size(r->json), 1000, "%zu rows", json_array_size(r->json));
        resp_free(r);
        expect_count(where, "1000");
        snprintf(sql, sizeof(sql), "DELETE FROM exact_probe WHERE grp = %d", g);
        pg_sql(0, sql);
    }
}

struct held_call {
    proto_t p;
    const char *body;
    resp_t *r;
};

static void *held_call_main(void *arg)
{
    struct held_call *h = arg;
    h->r = http(h->p, "PATCH", "/exact/held", h->body, "application/json", NULL);
    return NULL;
}

/* A guarded write whose connection dies before its Sync did not commit, and the caller is told so. */
Test(writes, a_guarded_write_cut_off_before_commit_is_known_not_applied)
{
    FOR_EACH_PROTO(p)
    {
        int g = 7300 + 10 * p;
        char sql[160], body[128], where[64];
        snprintf(sql, sizeof(sql), "INSERT INTO exact_probe (id, grp) VALUES (%d, %d)", g, g);
        pg_sql(0, sql);
        snprintf(body, sizeof(body), "{\"from\": %d, \"to\": %d, \"seconds\": 3}", g, g + 1);
        struct held_call h = {p, body, NULL};
        pthread_t t;
        pthread_create(&t, NULL, held_call_main, &h);
        /* wait until it runs, then end its session */
        char *killed = NULL;
        for (int i = 0; i != 50 && killed == NULL; ++i) {
            usleep(100 * 1000);
            killed = pg_sql(0, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%-- exact_held' AND pid <> "
                               "pg_backend_pid() AND state = 'active'");
        }
        pthread_join(t, NULL);
        cr_assert_not_null(killed, "the held write never showed up in pg_stat_activity");
        free(killed);
        cr_assert_eq(h.r->status, 503, "%s", h.r->body);
        cr_assert_str_eq(jstr(h.r, "type"), "urn:tollgate:problem:connection-lost");
        cr_assert_not_null(strstr(jstr(h.r, "detail"), "not applied"), "%s", h.r->body);
        resp_free(h.r);
        snprintf(where, sizeof(where), "id = %d AND grp = %d", g, g);
        expect_count(where, "1");
        snprintf(sql, sizeof(sql), "DELETE FROM exact_probe WHERE id = %d", g);
        pg_sql(0, sql);
    }
}

/* DDL while serving: kept connections' prepared statements go stale (0A000); calls are prepared anew, not failed. */
Test(schema, a_column_added_while_serving_is_served)
{
    for (int i = 0; i != 8; ++i) {
        resp_t *r = expect(PROTOS[i % 2], 200, "GET", "/schema/probe", NULL, NULL);
        cr_assert_null(strstr(r->body, "\"b\""), "%s", r->body);
        resp_free(r);
    }
    pg_sql(0, "ALTER TABLE schema_probe ADD COLUMN b int NOT NULL DEFAULT 7");
    /* reads go to the replica: wait for it to replay the change */
    char *seen = NULL;
    for (int i = 0; i != 100; ++i) {
        seen = pg_sql(1, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'schema_probe'::regclass AND attname = 'b'");
        if (seen != NULL && strcmp(seen, "1") == 0)
            break;
        free(seen);
        seen = NULL;
        usleep(50 * 1000);
    }
    cr_assert_not_null(seen, "the replica did not replay the ALTER TABLE");
    free(seen);
    for (int i = 0; i != 24; ++i) {
        resp_t *r = expect(PROTOS[i % 2], 200, "GET", "/schema/probe", NULL, NULL);
        cr_assert_str_eq(r->body, "[{\"id\":1,\"a\":\"one\",\"b\":7},{\"id\":2,\"a\":\"two\",\"b\":7}]", "call %d", i);
        resp_free(r);
    }
    pg_sql(0, "ALTER TABLE schema_probe DROP COLUMN b");
}

Test(encoding, void_is_null)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/exact/void", NULL, NULL);
        cr_assert_str_eq(r->body, "{\"slept\":null,\"one\":1}");
        resp_free(r);
    }
}

Test(errors, class_22_is_400)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 400, "GET", "/errors/div_zero?n=0", NULL, NULL);
        cr_assert_str_eq(jstr(r, "sqlstate"), "22012");
        resp_free(r);
        r = expect(p, 400, "GET", "/errors/bad_cast?s=abc", NULL, NULL);
        cr_assert_str_eq(jstr(r, "sqlstate"), "22P02");
        resp_free(r);
        r = expect(p, 200, "GET", "/errors/div_zero?n=2", NULL, NULL);
        assert_member(r, "q", "0");
        resp_free(r);
    }
}

Test(errors, class_23_is_409)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 409, "POST", "/errors/unique", "{\"id\":1}", "application/json");
        cr_assert_str_eq(jstr(r, "sqlstate"), "23505");
        cr_assert_null(strstr(r->body, "users_email_key"), "constraint names are schema internals: %s", r->body);
        resp_free(r);
        r = expect(p, 409, "POST", "/errors/foreign_key", "{\"user_id\":999999999}", "application/json");
        cr_assert_str_eq(jstr(r, "sqlstate"), "23503");
        resp_free(r);
        r = expect(p, 409, "POST", "/errors/check", "{\"status\":\"lost\"}", "application/json");
        cr_assert_str_eq(jstr(r, "sqlstate"), "23514");
        resp_free(r);
    }
}

Test(errors, a_commit_that_fails_is_not_a_success)
{
    FOR_EACH_PROTO(p)
    {
        /* The INSERT succeeds; the deferred foreign key fails at commit (the pipeline's Sync). */
        char body[64];
        int id = (int)(getpid() % 100000) * 10 + p; /* fresh ids for every run */
        snprintf(body, sizeof(body), "{\"id\": %d, \"ref\": -1}", id);
        resp_t *r = expect(p, 409, "POST", "/errors/deferred", body, "application/json");
        cr_assert_str_eq(jstr(r, "sqlstate"), "23503");
        resp_free(r);
        snprintf(body, sizeof(body), "{\"id\": %d, \"ref\": %d}", id + 5, id + 5);
        r = expect(p, 200, "POST", "/errors/deferred", body, "application/json");
        resp_free(r);
    }
}

Test(errors, an_execution_error_does_not_unprepare_the_statement)
{
    FOR_EACH_PROTO(p)
    {
        /* The first call on each connection carries the Parse and fails after it; later calls must still work. */
        for (int i = 0; i != 12; ++i) {
            resp_t *r = expect(p, 500, "GET", "/errors/regclass?t=no_such_table", NULL, NULL);
            cr_assert_str_eq(jstr(r, "sqlstate"), "42P01");
            resp_free(r);
        }
        for (int i = 0; i != 12; ++i) {
            resp_t *r = expect(p, 200, "GET", "/errors/regclass?t=pg_class", NULL, NULL);
            resp_free(r);
        }
    }
}

Test(errors, other_database_errors_are_500_without_internals)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 500, "GET", "/errors/other", NULL, NULL);
        cr_assert_str_eq(jstr(r, "sqlstate"), "21000");
        cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:database-error");
        /* PostgreSQL's own message is logged, not sent. */
        cr_assert_null(strstr(r->body, "subquery"), "%s", r->body);
        resp_free(r);
    }
}

Test(errors, statement_timeout_is_504)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 504, "GET", "/errors/slow?seconds=3", NULL, NULL);
        cr_assert_str_eq(jstr(r, "sqlstate"), "57014");
        resp_free(r);
        /* The connection is fine afterwards, and a fast call under the same timeout succeeds. */
        r = expect(p, 200, "GET", "/errors/slow?seconds=0", NULL, NULL);
        resp_free(r);
    }
}

Test(errors, switched_off_query_is_503)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 503, "GET", "/limits/disabled", NULL, NULL);
        char *ra = resp_header(r, "retry-after");
        cr_assert_not_null(ra, "[%s] 503 without Retry-After", proto_name(p));
        free(ra);
        resp_free(r);
    }
}

Test(catalog, sql_file)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect(p, 200, "GET", "/sql/file?echo=hi", NULL, NULL);
        assert_member(r, "answer", "42");
        assert_member(r, "echo", "\"hi\"");
        resp_free(r);
    }
}

/* Classic injection payloads, in every place a value can come from, come back as data. */
static const char *payloads[] = {
    "'; DROP TABLE users; --",
    "1 OR 1=1",
    "\" OR \"\"=\"",
    "$1); DELETE FROM users; --",
    "'); SELECT pg_sleep(5); --",
    "\\'; TRUNCATE orders; --",
    "}, {\"a\":1",
    "NULL",
};

Test(injection, payloads_come_back_as_data)
{
    FOR_EACH_PROTO(p)
    {
        for (size_t i = 0; i != sizeof(payloads) / sizeof(payloads[0]); ++i) {
            const char *s = payloads[i];
            CURL *c = curl_easy_init();
            char *enc = curl_easy_escape(c, s, 0);
            char path[512], body[512];
            json_t *js = json_string(s);
            char *quoted = json_dumps(js, JSON_ENCODE_ANY);
            /* path parameter */
            snprintf(path, sizeof(path), "/echo/path/%s/1", enc);
            resp_t *r = http(p, "GET", path, NULL, NULL, NULL);
            if (strlen(s) <= 20) {
                cr_assert_eq(r->status, 200, "[%s] path %s: %s", proto_name(p), s, r->body);
                cr_assert_str_eq(jstr(r, "t"), s);
            } else {
                cr_assert_eq(r->status, 400, "[%s] path %s: %s", proto_name(p), s, r->body);
            }
            resp_free(r);
            /* query string, scalar and array */
            snprintf(path, sizeof(path), "/echo/query?text=%s&texts=%s&texts=%s", enc, enc, enc);
            r = expect(p, 200, "GET", path, NULL, NULL);
            cr_assert_str_eq(jstr(r, "text"), s);
            cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r->json, "texts"), 1)), s);
            resp_free(r);
            /* body, scalar and array */
            snprintf(body, sizeof(body), "{\"text\":%s}", quoted);
            r = expect(p, 200, "POST", "/echo/scalars", body, "application/json");
            cr_assert_str_eq(jstr(r, "text"), s);
            resp_free(r);
            snprintf(body, sizeof(body), "{\"text\":[%s,%s]}", quoted, quoted);
            r = expect(p, 200, "POST", "/echo/arrays", body, "application/json");
            cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r->json, "text"), 0)), s);
            resp_free(r);
            /* a typed parameter refuses it rather than passing it on */
            snprintf(path, sizeof(path), "/users/%s", enc);
            r = expect(p, 400, "GET", path, NULL, NULL);
            resp_free(r);
            free(quoted);
            json_decref(js);
            curl_free(enc);
            curl_easy_cleanup(c);
        }
        /* And the tables are all still there. */
        resp_t *r = expect(p, 200, "GET", "/users/1", NULL, NULL);
        resp_free(r);
        r = expect(p, 200, "GET", "/orders?ids=1&ids=2", NULL, NULL);
        resp_free(r);
    }
}

/* ---- tenants and limits (tenants from tests/integration/config.json) ---- */

/* --- who may call what, and rows scoped to the caller --- */

#define ALPHA "Authorization: Bearer tg-alpha-key" /* queries: notes_*, get_user */
#define BETA "Authorization: Bearer tg-beta-key"   /* queries: notes_mine; rate 0.001/s, burst 20 */
#define GAMMA "Authorization: Bearer tg-gamma-key" /* the same as beta, for one test alone (tests run in parallel) */

/* whole tokens left by the RateLimit header of `r` */
static long tokens_left(const resp_t *r)
{
    char *v = resp_header(r, "ratelimit");
    cr_assert_not_null(v, "no RateLimit header: %s", r->headers);
    const char *at = strstr(v, ";r=");
    cr_assert_not_null(at, "%s", v);
    long n = strtol(at + 3, NULL, 10);
    free(v);
    return n;
}

Test(tenants, query_allow_lists)
{
    FOR_EACH_PROTO(p)
    {
        static const struct {
            const char *who, *method, *path, *body;
            long status;
        } calls[] = {
            {ALPHA, "GET", "/notes/mine", NULL, 200},
            {ALPHA, "GET", "/users/1", NULL, 200},
            {ALPHA, "GET", "/rows/many?n=1", NULL, 403},
            {ALPHA, "POST", "/rows/touch", "{\"ids\": [1]}", 403},
            {BETA, "GET", "/notes/mine", NULL, 200},
            {BETA, "POST", "/notes", "{\"note\": \"never\"}", 403},
            {BETA, "GET", "/users/1", NULL, 403},
            {NULL, "GET", "/rows/many?n=1", NULL, 200}, /* the test tenant has no list: every query */
            {"X-API-Key: nope", "GET", "/notes/mine", NULL, 401},
        };
        for (size_t i = 0; i != sizeof(calls) / sizeof(calls[0]); ++i) {
            resp_t *r = expect_h(p, calls[i].status, calls[i].method, calls[i].path, calls[i].body,
                                 calls[i].body != NULL ? "application/json" : NULL, calls[i].who);
            if (calls[i].status == 403) {
                cr_assert_str_eq(problem_type(r), "urn:tollgate:problem:forbidden", "%s", r->body);
                char *rl = resp_header(r, "ratelimit");
                cr_assert_null(rl, "a forbidden call is not counted: no RateLimit header");
                free(rl);
            }
            resp_free(r);
        }
        /* a keyless caller learns nothing about routes: 401 for a route, for a forbidden one and for none */
        static const char *paths[] = {"/notes/mine", "/users/1", "/no/such/route"};
        for (size_t i = 0; i != 3; ++i) {
            resp_t *r = http(p, "GET", paths[i], NULL, NULL, "Authorization: Basic eDp5");
            cr_assert_eq(r->status, 401, "%s: %ld", paths[i], r->status);
            resp_free(r);
        }
    }
}

Test(tenants, a_forbidden_call_costs_no_tokens)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect_h(p, 200, "GET", "/notes/mine", NULL, NULL, GAMMA);
        long before = tokens_left(r);
        resp_free(r);
        for (int i = 0; i != 5; ++i) {
            r = expect_h(p, 403, "GET", "/users/1", NULL, NULL, GAMMA);
            resp_free(r);
        }
        r = expect_h(p, 200, "GET", "/notes/mine", NULL, NULL, GAMMA);
        cr_assert_eq(tokens_left(r), before - 1, "five 403s in between took no token (%ld, then %ld)", before, tokens_left(r));
        resp_free(r);
    }
}

/* the notes of the caller, as one comma-separated string */
static char *notes_of(proto_t p, const char *who)
{
    resp_t *r = expect_h(p, 200, "GET", "/notes/mine", NULL, NULL, who);
    struct {
        char *s;
        size_t len;
    } out = {NULL, 0};
    size_t i;
    json_t *row;
    json_array_foreach(r->json, i, row)
    {
        const char *n = json_string_value(json_object_get(row, "note"));
        size_t len = strlen(n);
        out.s = realloc(out.s, out.len + len + 2);
        if (out.len != 0)
            out.s[out.len++] = ',';
        memcpy(out.s + out.len, n, len);
        out.len += len;
        out.s[out.len] = '\0';
    }
    resp_free(r);
    return out.s != NULL ? out.s : strdup("");
}

Test(tenants, from_tenant_scopes_rows_to_the_caller)
{
    FOR_EACH_PROTO(p)
    {
        char *beta = notes_of(p, BETA);
        cr_assert_str_eq(beta, "b1");
        free(beta);
        /* alpha adds a note: it is alpha's, whatever alpha would like it to be */
        char body[64];
        snprintf(body, sizeof(body), "{\"note\": \"a-%s\"}", proto_name(p));
        resp_t *r = expect_h(p, 200, "POST", "/notes", body, "application/json", ALPHA);
        cr_assert_str_eq(jstr(r, "owner"), "alpha", "%s", r->body);
        resp_free(r);
        char *alpha = notes_of(p, ALPHA);
        cr_assert(strncmp(alpha, "a-", 2) == 0 || strncmp(alpha, "a1", 2) == 0, "%s", alpha);
        cr_assert_null(strstr(alpha, "b1"), "%s", alpha);
        cr_assert_null(strstr(alpha, "n1"), "%s", alpha);
        cr_assert_not_null(strstr(alpha, "a1,a2"), "%s", alpha);
        free(alpha);
        /* the caller cannot say whose rows it wants: 400 naming the parameter, from the query string or the body */
        r = expect_h(p, 400, "GET", "/notes/mine?owner=beta", NULL, NULL, ALPHA);
        cr_assert_str_eq(param_error(r, "owner"), "is the caller's tenant and cannot be sent", "%s", r->body);
        resp_free(r);
        r = expect_h(p, 400, "POST", "/notes", "{\"note\": \"x\", \"owner\": \"beta\"}", "application/json", ALPHA);
        cr_assert_str_eq(param_error(r, "owner"), "is the caller's tenant and cannot be sent", "%s", r->body);
        resp_free(r);
        beta = notes_of(p, BETA);
        cr_assert_str_eq(beta, "b1", "nothing was added for beta");
        free(beta);
    }
    pg_sql(0, "DELETE FROM tenant_notes WHERE note LIKE 'a-%'");
}

Test(tenants, keys_in_either_header_and_401_forms)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = http(p, "GET", "/users/1", NULL, NULL, "Authorization:");
        cr_assert_eq(r->status, 401, "[%s] no key: %ld", proto_name(p), r->status);
        char *wa = resp_header(r, "www-authenticate");
        cr_assert_not_null(wa);
        cr_assert(strncmp(wa, "Bearer", 6) == 0, "%s", wa);
        free(wa);
        cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:missing-key");
        resp_free(r);
        r = http(p, "GET", "/users/1", NULL, NULL, "Authorization: Bearer not-a-key");
        cr_assert_eq(r->status, 401);
        wa = resp_header(r, "www-authenticate");
        cr_assert(strstr(wa, "error=\"invalid_token\"") != NULL, "%s", wa);
        free(wa);
        resp_free(r);
        r = http(p, "GET", "/users/1", NULL, NULL, "Authorization: Basic dGc6dGc=");
        cr_assert_eq(r->status, 401, "a key must be a Bearer token");
        resp_free(r);
        /* a key longer than any can be: refused like any wrong key (and not hashed) */
        {
            char huge[2100] = "X-API-Key: ";
            memset(huge + 11, 'k', 2000);
            huge[2011] = '\0';
            r = http(p, "GET", "/users/1", NULL, NULL, huge);
            cr_assert_eq(r->status, 401, "a 2,000-byte key: %ld", r->status);
            cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:invalid-key");
            resp_free(r);
        }
        r = http(p, "GET", "/users/1", NULL, NULL, "X-API-Key: tg-test-key");
        cr_assert_eq(r->status, 200, "X-API-Key: %s", r->body);
        resp_free(r);
        r = http(p, "GET", "/users/1", NULL, NULL, "Authorization: bearer tg-test-key");
        cr_assert_eq(r->status, 200, "the scheme is case-insensitive: %s", r->body);
        resp_free(r);
        /* Another scheme in Authorization does not hide X-API-Key... */
        r = http(p, "GET", "/users/1", NULL, NULL, "Authorization: Basic dGc6dGc=\nX-API-Key: tg-capped-key");
        char *policy = resp_header(r, "ratelimit-policy");
        cr_assert_str_eq(policy, "\"tenant\";q=1000;w=1", "served as tenant capped, not as anyone else");
        free(policy);
        resp_free(r);
        /* ...and an empty Bearer token is a bad key, never anonymous. */
        r = http(p, "GET", "/users/1", NULL, NULL, "Authorization: Bearer ");
        cr_assert_eq(r->status, 401);
        resp_free(r);
        /* Built-in endpoints need no key. */
        r = http(p, "GET", "/healthz", NULL, NULL, "Authorization:");
        cr_assert_eq(r->status, 200);
        resp_free(r);
    }
}

Test(tenants, ratelimit_headers_on_every_catalog_response)
{
    FOR_EACH_PROTO(p)
    {
        static const char *paths[] = {"/users/1", "/users/999999999", "/echo/bounds", "/limits/disabled"};
        for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
            resp_t *r = http(p, "GET", paths[i], NULL, NULL, NULL);
            char *policy = resp_header(r, "ratelimit-policy"), *state = resp_header(r, "ratelimit");
            cr_assert_not_null(policy, "[%s] %s (%ld): no RateLimit-Policy", proto_name(p), paths[i], r->status);
            cr_assert_str_eq(policy, "\"tenant\";q=100000;w=1");
            unsigned long rem, t;
            cr_assert_eq(sscanf(state, "\"tenant\";r=%lu;t=%lu", &rem, &t), 2, "RateLimit: %s", state);
            cr_assert_leq(rem, 100000);
            free(policy);
            free(state);
            resp_free(r);
        }
    }
}

Test(tenants, burst_then_429_with_retry_after)
{
    /* Tenant "burst": 3 tokens, 0.5 per second. */
    int n429 = 0, n200 = 0;
    for (int i = 0; i != 5; ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/users/1", NULL, NULL, "X-API-Key: tg-burst-key");
        char *state = resp_header(r, "ratelimit");
        cr_assert_not_null(state);
        if (r->status == 200) {
            ++n200;
        } else {
            cr_assert_eq(r->status, 429, "%ld %s", r->status, r->body);
            ++n429;
            char *ra = resp_header(r, "retry-after");
            cr_assert_not_null(ra, "429 without Retry-After");
            cr_assert(atoi(ra) >= 1 && atoi(ra) <= 2, "one token at 0.5/s comes within 2 s: Retry-After %s", ra);
            free(ra);
            cr_assert(strncmp(state, "\"tenant\";r=0;", 13) == 0, "RateLimit: %s", state);
            cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:rate-limited");
        }
        free(state);
        resp_free(r);
    }
    cr_assert_eq(n200, 3);
    cr_assert_eq(n429, 2);
    /* Another tenant is untouched by this one's 429s. */
    for (int i = 0; i != 10; ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/users/1", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200);
        resp_free(r);
    }
}

Test(tenants, cost_takes_several_tokens)
{
    /* Tenant "cost": 10 tokens, 1 per second; /limits/costly costs 5. */
    resp_t *r = http(PROTO_H2, "GET", "/limits/costly", NULL, NULL, "X-API-Key: tg-cost-key");
    cr_assert_eq(r->status, 200, "%s", r->body);
    char *state = resp_header(r, "ratelimit");
    cr_assert(strncmp(state, "\"tenant\";r=5;", 13) == 0, "%s", state);
    free(state);
    resp_free(r);
    r = http(PROTO_H1, "GET", "/limits/costly", NULL, NULL, "X-API-Key: tg-cost-key");
    cr_assert_eq(r->status, 200);
    resp_free(r);
    r = http(PROTO_H2, "GET", "/limits/costly", NULL, NULL, "X-API-Key: tg-cost-key");
    cr_assert_eq(r->status, 429);
    char *ra = resp_header(r, "retry-after");
    cr_assert(atoi(ra) >= 4 && atoi(ra) <= 5, "5 tokens at 1/s: Retry-After %s", ra);
    free(ra);
    resp_free(r);
    /* Nothing is left for a cost-1 call either. */
    r = http(PROTO_H1, "GET", "/users/1", NULL, NULL, "X-API-Key: tg-cost-key");
    cr_assert_eq(r->status, 429);
    resp_free(r);
}

Test(tenants, in_flight_cap_answers_429)
{
    /* Tenant "capped": at most 2 calls in flight. */
    int refused = concurrent(4, "GET", "/limits/sleep?seconds=1", NULL, "X-API-Key: tg-capped-key", 429, "urn:tollgate:problem:too-many-in-flight");
    cr_assert_eq(refused, 2, "2 of 4 concurrent calls are over the cap");
    /* Slots come back: calls one after another pass. */
    for (int i = 0; i != 4; ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/limits/sleep?seconds=0", NULL, NULL, "X-API-Key: tg-capped-key");
        cr_assert_eq(r->status, 200);
        resp_free(r);
    }
}

Test(tenants, query_in_flight_cap_answers_503)
{
    /* /limits/capped takes one call at a time over all tenants. */
    int refused = concurrent(3, "GET", "/limits/capped?seconds=1", NULL, NULL, 503, "urn:tollgate:problem:query-busy");
    cr_assert_eq(refused, 2);
    resp_t *r = http(PROTO_H2, "GET", "/limits/capped?seconds=0", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "the slot came back");
    resp_free(r);
}

/* `status`, `location` and `not_found_if_none` (tests/integration/catalog/rest.json) */
Test(rest, a_create_answers_201_with_its_location_and_a_write_of_no_row_404)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = expect_h(p, 201, "POST", "/rest/items", "{\"name\":\"made\"}", "application/json", NULL);
        json_int_t id = json_integer_value(json_object_get(r->json, "id"));
        cr_assert_gt(id, 0, "[%s] %s", proto_name(p), r->body);
        char *loc = resp_header(r, "location"), want[64];
        snprintf(want, sizeof(want), "/rest/items/%lld", (long long)id);
        cr_assert_not_null(loc, "[%s] no Location", proto_name(p));
        cr_assert_str_eq(loc, want, "[%s]", proto_name(p));
        resp_free(r);
        /* the Location is the new row's */
        r = expect_h(p, 200, "GET", loc, NULL, NULL, NULL);
        cr_assert_str_eq(jstr(r, "name"), "made");
        resp_free(r);
        /* an update of it: 200 and the count; of a row that is not there: 404 */
        r = expect_h(p, 200, "PUT", loc, "{\"name\":\"renamed\"}", "application/json", NULL);
        cr_assert_eq(json_integer_value(json_object_get(r->json, "rows_affected")), 1);
        resp_free(r);
        resp_free(expect_h(p, 404, "PUT", "/rest/items/2000000000", "{\"name\":\"x\"}", "application/json", NULL));
        /* a delete: 204 with no body, then 404 */
        r = http(p, "DELETE", loc, NULL, NULL, NULL);
        cr_assert_eq(r->status, 204, "[%s] DELETE %s: %ld %s", proto_name(p), loc, r->status, r->body);
        cr_assert_eq(r->body_len, 0, "[%s] a 204 has no body: %s", proto_name(p), r->body);
        char *cl = resp_header(r, "content-length"), *ct = resp_header(r, "content-type");
        cr_assert(cl == NULL && ct == NULL, "[%s] a 204 has no Content-Length (%s) nor Content-Type (%s)", proto_name(p), cl, ct);
        resp_free(r);
        r = expect_h(p, 404, "DELETE", loc, NULL, NULL, NULL);
        cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:not-found");
        resp_free(r);
        free(loc);
    }
}

/* The URL of a Link: rel="next" header (malloc'd), or NULL */
static char *next_link(const resp_t *r)
{
    char *link = resp_header(r, "link");
    if (link == NULL)
        return NULL;
    cr_assert_eq(link[0], '<', "Link: %s", link);
    char *end = strstr(link, ">; rel=\"next\"");
    cr_assert_not_null(end, "Link: %s", link);
    *end = '\0';
    memmove(link, link + 1, strlen(link + 1) + 1);
    return link;
}

/* `cursor`: keyset pages, each full one with a Link to the next, which keeps the other parameters */
Test(rest, keyset_pages_link_to_the_next_until_the_last)
{
    FOR_EACH_PROTO(p)
    {
        char prefix[32], body[64], url[256];
        snprintf(prefix, sizeof(prefix), "page%d-%d-", (int)getpid(), (int)p);
        json_int_t made[5];
        for (int i = 0; i != 5; ++i) {
            snprintf(body, sizeof(body), "{\"name\":\"%s%d\"}", prefix, i);
            resp_t *r = expect_h(p, 201, "POST", "/rest/items", body, "application/json", NULL);
            made[i] = json_integer_value(json_object_get(r->json, "id"));
            resp_free(r);
        }
        /* the caller's own `after` is replaced, the other parameters kept */
        snprintf(url, sizeof(url), "/rest/pages?prefix=%s&after=0&limit=2", prefix);
        char *next = strdup(url);
        int seen = 0, pages = 0;
        while (next != NULL) {
            resp_t *r = expect_h(p, 200, "GET", next, NULL, NULL, NULL);
            cr_assert(json_is_array(r->json));
            for (size_t i = 0; i != json_array_size(r->json); ++i, ++seen) {
                cr_assert_lt(seen, 5, "[%s] more rows than were made: %s", proto_name(p), r->body);
                cr_assert_eq(json_integer_value(json_object_get(json_array_get(r->json, i), "id")), made[seen], "[%s] page %d: %s",
                             proto_name(p), pages, r->body);
            }
            free(next);
            next = next_link(r);
            if (next != NULL) {
                cr_assert_eq(json_array_size(r->json), 2, "[%s] only a full page links on", proto_name(p));
                char want[160];
                snprintf(want, sizeof(want), "/rest/pages?prefix=%s&limit=2&after=%lld", prefix, (long long)made[seen - 1]);
                cr_assert_str_eq(next, want, "[%s]", proto_name(p));
            }
            resp_free(r);
            cr_assert_lt(++pages, 10);
        }
        cr_assert_eq(seen, 5, "[%s] every row once, in order", proto_name(p));
        cr_assert_eq(pages, 3, "[%s] 2 + 2 + 1", proto_name(p));
    }
}

/* the text of a pg_lsn ("16/B374D848") as a number */
static uint64_t lsn_of(const char *text)
{
    uint64_t v = 0;
    cr_assert_eq(tg_pg_lsn_parse(text, &v), 0, "not a pg_lsn: %s", text);
    return v;
}

/*
 * A committed write names the primary's WAL position after its commit: a token of the
 * primary's timeline, at or past where the WAL was before the write and not past where
 * it is after; a failed write and a read name none.
 */
Test(read_after, a_committed_write_names_its_wal_position)
{
    FOR_EACH_PROTO(p)
    {
        char *before = pg_sql(0, "SELECT pg_current_wal_insert_lsn()::text");
        char *file = pg_sql(0, "SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        uint32_t tl;
        cr_assert_eq(tg_pg_walfile_timeline(file, &tl), 0);
        resp_t *r = expect_h(p, 201, "POST", "/rest/items", "{\"name\":\"read-after\"}", "application/json", NULL);
        char *tok = resp_header(r, "tollgate-read-after");
        cr_assert_not_null(tok, "[%s] a committed write names no position", proto_name(p));
        tg_rw_token_t t;
        cr_assert_eq(tg_rw_token_parse(tok, strlen(tok), &t), 0, "[%s] not a token: %s", proto_name(p), tok);
        char *after = pg_sql(0, "SELECT pg_current_wal_insert_lsn()::text");
        cr_assert_eq(t.timeline, tl, "[%s] the primary's timeline", proto_name(p));
        cr_assert(t.lsn > lsn_of(before) && t.lsn <= lsn_of(after), "[%s] %s is not between %s and %s", proto_name(p), tok, before, after);
        resp_free(r);
        free(before), free(file), free(after);
        /* a write that failed (a unique key taken), and a read: no token */
        char path[64];
        snprintf(path, sizeof(path), "/batch/note/ra-%d-%d", (int)p, (int)getpid());
        resp_free(expect_h(p, 200, "GET", path, NULL, NULL, NULL));
        r = expect_h(p, 409, "GET", path, NULL, NULL, NULL);
        cr_assert_null(resp_header(r, "tollgate-read-after"), "[%s] a failed write named a position", proto_name(p));
        resp_free(r);
        r = expect_h(p, 200, "GET", "/users/1", NULL, NULL, NULL);
        cr_assert_null(resp_header(r, "tollgate-read-after"), "[%s] a read named a position", proto_name(p));
        resp_free(r);
    }
}

/* A Tollgate-Read-After that is not one token as a write gave it is a 400 naming the header; a good one is taken. */
Test(read_after, a_malformed_token_is_a_400_naming_the_header)
{
    static const char *const bad[] = {"Tollgate-Read-After;", /* empty (curl: a ; sends it so) */
                                      "Tollgate-Read-After: banana",
                                      "Tollgate-Read-After: 1.abc",      /* lower case */
                                      "Tollgate-Read-After: 01.ABC",     /* a leading zero */
                                      "Tollgate-Read-After: 0.ABC",      /* timeline 0 */
                                      "Tollgate-Read-After: 1/ABC",      /* pg_lsn's form */
                                      "Tollgate-Read-After: 1.10000000000000000", /* 17 digits */
                                      "Tollgate-Read-After: 1.A\nTollgate-Read-After: 1.B"};
    FOR_EACH_PROTO(p)
    {
        for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
            resp_t *r = expect_h(p, 400, "GET", "/users/1", NULL, NULL, bad[i]);
            cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:malformed-read-after", "[%s] %s", proto_name(p), bad[i]);
            cr_assert(strstr(jstr(r, "detail"), "Tollgate-Read-After") != NULL, "[%s] %s: %s", proto_name(p), bad[i], r->body);
            resp_free(r);
        }
        /* a token this primary's writes could have made: served (from wherever has it) */
        resp_free(expect_h(p, 200, "GET", "/users/1", NULL, NULL, "Tollgate-Read-After: 1.0"));
    }
}

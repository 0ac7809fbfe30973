/* Tests of gateway/problem.c: problem+json bodies and reason phrases. */
#include <criterion/criterion.h>
#include "tollgate/problem.h"

static char *format(const tg_problem_t *p)
{
    tg_buf_t b = {0};
    tg_problem_format(&b, p);
    return b.base;
}

Test(problem, minimal_omits_optional_fields)
{
    tg_problem_t p = {.status = 404};
    char *s = format(&p);
    cr_assert_str_eq(s, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404}");
    free(s);
}

Test(problem, every_field)
{
    tg_param_error_t errs[] = {{"id", "must be an integer"}, {"zzz", "unknown parameter"}};
    tg_problem_t p = {.status = 400,
                      .type = "invalid-parameters",
                      .title = "Invalid parameters",
                      .detail = "2 parameters are invalid",
                      .sqlstate = "22P02",
                      .errors = errs,
                      .n_errors = 2};
    char *s = format(&p);
    cr_assert_str_eq(s, "{\"type\":\"urn:tollgate:problem:invalid-parameters\",\"title\":\"Invalid parameters\",\"status\":400,"
                        "\"detail\":\"2 parameters are invalid\",\"sqlstate\":\"22P02\",\"errors\":["
                        "{\"name\":\"id\",\"reason\":\"must be an integer\"},"
                        "{\"name\":\"zzz\",\"reason\":\"unknown parameter\"}]}");
    free(s);
}

Test(problem, sqlstate_without_detail)
{
    tg_problem_t p = {.status = 409, .type = "conflict", .sqlstate = "23505"};
    char *s = format(&p);
    cr_assert_str_eq(s, "{\"type\":\"urn:tollgate:problem:conflict\",\"title\":\"Conflict\",\"status\":409,"
                        "\"sqlstate\":\"23505\"}");
    free(s);
}

Test(problem, strings_are_escaped)
{
    tg_param_error_t errs[] = {{"a\"b", "bad\\\n\x01"}};
    tg_problem_t p = {.status = 400, .type = "x\"y", .title = "t\tt", .detail = "</script>\"", .errors = errs, .n_errors = 1};
    char *s = format(&p);
    cr_assert_str_eq(s, "{\"type\":\"urn:tollgate:problem:x\\\"y\",\"title\":\"t\\tt\",\"status\":400,\"detail\":\"</script>\\\"\","
                        "\"errors\":[{\"name\":\"a\\\"b\",\"reason\":\"bad\\\\\\n\\u0001\"}]}");
    free(s);
}

Test(problem, empty_errors_omitted)
{
    tg_param_error_t errs[1] = {{"a", "b"}};
    tg_problem_t p = {.status = 503, .errors = errs, .n_errors = 0};
    char *s = format(&p);
    cr_assert_str_eq(s, "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503}");
    free(s);
}

Test(problem, a_cut_errors_list_says_how_many_there_were)
{
    tg_param_error_t e[2] = {{"a", "unknown parameter"}, {"b", "unknown parameter"}};
    tg_problem_t p = {.status = 400, .type = "invalid-parameters", .errors = e, .n_errors = 2, .n_errors_total = 700};
    tg_buf_t b = {0};
    tg_problem_format(&b, &p);
    cr_assert(strstr(b.base, "\"errors\":[{\"name\":\"a\"") != NULL, "%s", b.base);
    cr_assert(strstr(b.base, "],\"error_count\":700}") != NULL, "%s", b.base);
    p.n_errors_total = 2;
    tg_buf_reset(&b);
    tg_problem_format(&b, &p);
    cr_assert_null(strstr(b.base, "error_count"), "%s", b.base);
    tg_buf_dispose(&b);
}

Test(problem, appends_after_existing_content)
{
    tg_buf_t b = {0};
    tg_buf_appends(&b, "prefix|");
    /* a long slug also makes the buffer grow while the type is being assembled */
    char slug[600];
    memset(slug, 's', sizeof(slug) - 1);
    slug[sizeof(slug) - 1] = '\0';
    tg_problem_t p = {.status = 500, .type = slug};
    tg_problem_format(&b, &p);
    cr_assert_eq(strncmp(b.base, "prefix|{\"type\":\"urn:tollgate:problem:sss", 40), 0);
    const char *tail = "s\",\"title\":\"Internal Server Error\",\"status\":500}";
    cr_assert_str_eq(b.base + b.len - strlen(tail), tail);
    cr_assert_eq(b.len, strlen("prefix|{\"type\":\"urn:tollgate:problem:") + 599 + strlen(tail) - 1);
    cr_assert_eq(strlen(b.base), b.len);
    tg_buf_dispose(&b);
}

Test(problem, reason_phrases)
{
    static const struct {
        int status;
        const char *reason;
    } cases[] = {
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {418, "Unknown"},
        {0, "Unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        cr_expect_str_eq(tg_status_reason(cases[i].status), cases[i].reason, "status %d", cases[i].status);
}

Test(problem, unknown_status_title)
{
    tg_problem_t p = {.status = 418};
    char *s = format(&p);
    cr_assert_str_eq(s, "{\"type\":\"about:blank\",\"title\":\"Unknown\",\"status\":418}");
    free(s);
}

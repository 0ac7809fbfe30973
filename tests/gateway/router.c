/* Tests of gateway/router.c: path templates, literal-over-param precedence, 404 and 405. */
#include <criterion/criterion.h>
#include "tollgate/router.h"

static tg_query_t Q[] = {
    {.name = "get_user", .method = TG_METHOD_GET, .path = "/users/{id}"},
    {.name = "new_user_form", .method = TG_METHOD_GET, .path = "/users/new"},
    {.name = "create_user", .method = TG_METHOD_POST, .path = "/users"},
    {.name = "list_users", .method = TG_METHOD_GET, .path = "/users"},
    {.name = "user_order", .method = TG_METHOD_GET, .path = "/users/{id}/orders/{order_id}"},
    {.name = "delete_user", .method = TG_METHOD_DELETE, .path = "/users/{id}"},
    {.name = "root", .method = TG_METHOD_GET, .path = "/"},
    {.name = "publish", .method = TG_METHOD_POST, .path = "/users/{id}/publish"},
    {.name = "touch", .method = TG_METHOD_GET, .path = "/users/{id}/touch", .access = TG_ACCESS_WRITE},
    {.name = "ping", .method = TG_METHOD_GET, .path = "/p/ping", .access = TG_ACCESS_WRITE},
    {.name = "ping_id", .method = TG_METHOD_GET, .path = "/p/{id}"},
    {.name = "post_p", .method = TG_METHOD_POST, .path = "/p/{id}"},
};

static tg_router_t *R;

static void setup(void)
{
    tg_errors_t e = {0};
    R = tg_router_build(Q, sizeof(Q) / sizeof(Q[0]), &e);
    cr_assert_not_null(R);
    cr_assert_eq(e.n, 0);
}

static void teardown(void)
{
    tg_router_free(R);
}

static int match(const char *method, const char *path, tg_route_match_t *m)
{
    return tg_router_match(R, method, strlen(method), path, strlen(path), m);
}

TestSuite(router, .init = setup, .fini = teardown);

/* Table-driven: method, path, expected query name (NULL: not found / bad method), expected result. */
static const struct {
    const char *method, *path, *query;
    int result;
} cases[] = {
    {"GET", "/users/42", "get_user", TG_ROUTE_FOUND},
    {"GET", "/users/new", "new_user_form", TG_ROUTE_FOUND},
    {"GET", "/users", "list_users", TG_ROUTE_FOUND},
    {"POST", "/users", "create_user", TG_ROUTE_FOUND},
    {"DELETE", "/users/7", "delete_user", TG_ROUTE_FOUND},
    {"GET", "/", "root", TG_ROUTE_FOUND},
    {"GET", "/users/1/orders/2", "user_order", TG_ROUTE_FOUND},
    {"GET", "/users/", NULL, TG_ROUTE_NOT_FOUND},
    {"GET", "/users//orders/2", NULL, TG_ROUTE_NOT_FOUND},
    {"GET", "/nope", NULL, TG_ROUTE_NOT_FOUND},
    {"GET", "/users/1/orders", NULL, TG_ROUTE_NOT_FOUND},
    {"GET", "", NULL, TG_ROUTE_NOT_FOUND},
    {"GET", "users", NULL, TG_ROUTE_NOT_FOUND},
    {"PUT", "/users/1", NULL, TG_ROUTE_BAD_METHOD},
    {"BREW", "/users", NULL, TG_ROUTE_BAD_METHOD},
    {"GET", "/users/1/publish", NULL, TG_ROUTE_BAD_METHOD},
    /* "new" matches the literal, which lacks DELETE, so the {id} route must serve it. */
    {"DELETE", "/users/new", "delete_user", TG_ROUTE_FOUND},
    /* HEAD is answered wherever GET is, and only there; the name is case-sensitive like every method's */
    {"HEAD", "/users/42", "get_user", TG_ROUTE_FOUND},
    {"HEAD", "/users/new", "new_user_form", TG_ROUTE_FOUND},
    {"HEAD", "/users/1/publish", NULL, TG_ROUTE_BAD_METHOD},
    {"head", "/users/42", NULL, TG_ROUTE_BAD_METHOD},
    {"OPTIONS", "/users", NULL, TG_ROUTE_BAD_METHOD},
};

Test(router, table)
{
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_route_match_t m;
        int r = match(cases[i].method, cases[i].path, &m);
        cr_assert_eq(r, cases[i].result, "%s %s: got %d, want %d", cases[i].method, cases[i].path, r, cases[i].result);
        if (cases[i].query != NULL)
            cr_assert_str_eq(m.query->name, cases[i].query, "%s %s", cases[i].method, cases[i].path);
    }
}

Test(router, captures_path_params_in_order)
{
    tg_route_match_t m;
    cr_assert_eq(match("GET", "/users/12/orders/a%20b", &m), TG_ROUTE_FOUND);
    cr_assert_eq(m.n_path_params, 2);
    cr_assert_eq(m.path_params[0].len, 2);
    cr_assert_eq(memcmp(m.path_params[0].base, "12", 2), 0);
    cr_assert_eq(m.path_params[1].len, 5);
    cr_assert_eq(memcmp(m.path_params[1].base, "a%20b", 5), 0);
}

Test(router, literal_route_has_no_captures)
{
    tg_route_match_t m;
    cr_assert_eq(match("GET", "/users/new", &m), TG_ROUTE_FOUND);
    cr_assert_eq(m.n_path_params, 0);
}

Test(router, allow_lists_every_method_of_the_path)
{
    tg_route_match_t m;
    cr_assert_eq(match("PATCH", "/users/9", &m), TG_ROUTE_BAD_METHOD);
    tg_buf_t b = {0};
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "GET, HEAD, DELETE");
    tg_buf_reset(&b);
    /* /users/new is served by both the literal (GET) and the {id} routes (GET, DELETE). */
    cr_assert_eq(match("POST", "/users/new", &m), TG_ROUTE_BAD_METHOD);
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "GET, HEAD, DELETE");
    tg_buf_reset(&b);
    /* no GET, no HEAD */
    cr_assert_eq(match("GET", "/users/3/publish", &m), TG_ROUTE_BAD_METHOD);
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "POST");
    tg_buf_dispose(&b);
}

Test(router, head_never_runs_a_write)
{
    tg_route_match_t m;
    cr_assert_eq(match("GET", "/users/3/touch", &m), TG_ROUTE_FOUND, "a GET route may write (declared so)");
    cr_assert_str_eq(m.query->name, "touch");
    cr_assert_eq(match("HEAD", "/users/3/touch", &m), TG_ROUTE_BAD_METHOD, "but HEAD must be safe");
    cr_assert_null(m.query);
    tg_buf_t b = {0};
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "GET", "and Allow does not offer it");
    tg_buf_reset(&b);
    /* HEAD takes the route GET takes: not a read route of a wider template behind the write */
    cr_assert_eq(match("GET", "/p/ping", &m), TG_ROUTE_FOUND);
    cr_assert_str_eq(m.query->name, "ping");
    cr_assert_eq(match("HEAD", "/p/ping", &m), TG_ROUTE_BAD_METHOD, "not /p/{id} with id = ping");
    cr_assert_eq(match("HEAD", "/p/pong", &m), TG_ROUTE_FOUND);
    cr_assert_str_eq(m.query->name, "ping_id");
    cr_assert_eq(match("PUT", "/users/3/touch", &m), TG_ROUTE_BAD_METHOD);
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "GET");
    tg_buf_reset(&b);
    /* Allow says HEAD only where HEAD is answered: the route GET takes decides, not a wider one behind it */
    cr_assert_eq(match("PUT", "/p/ping", &m), TG_ROUTE_BAD_METHOD);
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "GET, POST", "not HEAD: the GET of /p/ping writes");
    tg_buf_reset(&b);
    /* and the 405 of a HEAD lists every method the path takes */
    cr_assert_eq(match("HEAD", "/p/ping", &m), TG_ROUTE_BAD_METHOD);
    tg_router_format_allow(m.allow, &b);
    cr_assert_str_eq(b.base, "GET, POST");
    tg_buf_dispose(&b);
}

Test(router_build, duplicate_route_is_an_error)
{
    tg_query_t dup[] = {
        {.name = "a", .method = TG_METHOD_GET, .path = "/x/{id}"},
        {.name = "b", .method = TG_METHOD_GET, .path = "/x/{other}", .file = "cat.json", .line = 7, .route_line = 9, .entry = 3},
        {.name = "c", .method = TG_METHOD_GET, .path = "/x/{c}", .file = "cat.json", .line = 12},
    };
    tg_errors_t e = {0};
    cr_assert_null(tg_router_build(dup, 3, &e));
    cr_assert_eq(e.n, 2);
    /* as every catalog error: the entry by its index and name, the line of its route */
    cr_assert_str_eq(e.msgs[0], "cat.json:9: queries[3] (b).route: \"GET /x/{other}\" is already taken by query a");
    cr_assert_str_eq(e.msgs[1], "cat.json:12: queries[0] (c).route: \"GET /x/{c}\" is already taken by query a", "no route line: the entry's");
    tg_errors_dispose(&e);
}

Test(router_build, one_segment_has_one_name_on_every_method)
{
    tg_query_t q[] = {
        {.name = "get_a", .method = TG_METHOD_GET, .path = "/a/{id}"},
        {.name = "del_a", .method = TG_METHOD_DELETE, .path = "/a/{user_id}", .file = "cat.json", .line = 4, .entry = 1},
        {.name = "sub", .method = TG_METHOD_GET, .path = "/a/{id}/b/{x}"},
        {.name = "sub2", .method = TG_METHOD_POST, .path = "/a/{id}/b/{x}"},
    };
    tg_errors_t e = {0};
    cr_assert_null(tg_router_build(q, 4, &e));
    cr_assert_eq(e.n, 1, "only the renamed one");
    cr_assert_str_eq(e.msgs[0], "cat.json:4: queries[1] (del_a).route: segment {user_id} is {id} in query get_a's route \"GET /a/{id}\": one "
                                "path must name it the same way");
    tg_errors_dispose(&e);
}

Test(router_build, malformed_segment_is_an_error)
{
    tg_query_t bad[] = {
        {.name = "a", .method = TG_METHOD_GET, .path = "/x/id{id}"},
        {.name = "b", .method = TG_METHOD_GET, .path = "nope"},
    };
    tg_errors_t e = {0};
    cr_assert_null(tg_router_build(bad, 2, &e));
    cr_assert_eq(e.n, 2, "both errors are reported");
    cr_assert(strstr(e.msgs[0], "id{id}") != NULL, "%s", e.msgs[0]);
    cr_assert(strstr(e.msgs[1], "must start with '/'") != NULL, "%s", e.msgs[1]);
    cr_assert(strncmp(e.msgs[1], "queries[0] (b).route: ", 22) == 0, "no file known, no prefix: %s", e.msgs[1]);
    tg_errors_dispose(&e);
}

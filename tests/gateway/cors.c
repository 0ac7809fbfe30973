/* Tests of gateway/cors.c: which origins a config may list, and which requests they let in. */
#include <criterion/criterion.h>
#include <string.h>
#include "tollgate/cors.h"

static int check(const char *s)
{
    char why[256] = "";
    int r = tg_cors_check_origin(s, why, sizeof(why));
    cr_assert(r == 0 || why[0] != '\0', "%s: refused without a reason", s);
    return r;
}

Test(cors, origins_a_config_may_list)
{
    static const char *const good[] = {"*", "https://app.example", "http://localhost", "http://localhost:3000", "https://a-b.c_d.example",
                                       "https://127.0.0.1:8443", "http://[::1]:8080", "https://x:65535"};
    for (size_t i = 0; i != sizeof(good) / sizeof(good[0]); ++i)
        cr_assert_eq(check(good[i]), 0, "%s", good[i]);
    static const char *const bad[] = {"", "**", "null", "app.example", "ftp://app.example", "HTTPS://app.example", "https://",
                                      "https://App.Example", "https://app.example/", "https://app.example/x", "https://app.example?q",
                                      "https://app.example:", "https://app.example:0", "https://app.example:65536",
                                      "https://app.example:080", "https://app example", "https://[::1", "https://a.example:80x"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        cr_assert_eq(check(bad[i]), -1, "\"%s\" should be refused", bad[i]);
}

Test(cors, reasons_name_the_problem)
{
    char why[256];
    cr_assert_eq(tg_cors_check_origin("https://app.example/", why, sizeof(why)), -1);
    cr_assert(strstr(why, "no path") != NULL, "%s", why);
    cr_assert_eq(tg_cors_check_origin("https://App.example", why, sizeof(why)), -1);
    cr_assert(strstr(why, "lower case") != NULL, "%s", why);
    cr_assert_eq(tg_cors_check_origin("https://a:99999", why, sizeof(why)), -1);
    cr_assert(strstr(why, "port") != NULL, "%s", why);
    /* the scheme's own port: a browser never sends it, so the entry could never match */
    cr_assert_eq(tg_cors_check_origin("https://app.example:443", why, sizeof(why)), -1);
    cr_assert(strstr(why, "default port 443") != NULL, "%s", why);
    cr_assert_eq(tg_cors_check_origin("http://app.example:80", why, sizeof(why)), -1);
    cr_assert(strstr(why, "default port 80") != NULL, "%s", why);
    cr_assert_eq(tg_cors_check_origin("http://app.example:443", why, sizeof(why)), 0, "not http's own");
    cr_assert_eq(tg_cors_check_origin("https://app.example:80", why, sizeof(why)), 0, "not https's own");
}

static int allows(const tg_cors_t *c, const char *origin)
{
    return tg_cors_allows(c, origin, strlen(origin));
}

Test(cors, listed_origins_match_exactly)
{
    char *list[] = {"https://app.example", "http://localhost:3000"};
    tg_cors_t c = {.origins = list, .n_origins = 2};
    cr_assert(allows(&c, "https://app.example"));
    cr_assert(allows(&c, "http://localhost:3000"));
    cr_assert_not(allows(&c, "http://app.example"), "another scheme is another origin");
    cr_assert_not(allows(&c, "https://app.example:443"), "browsers leave the default port out");
    cr_assert_not(allows(&c, "https://app.example.evil"));
    cr_assert_not(allows(&c, "https://app.exampl"));
    cr_assert_not(allows(&c, "http://localhost"));
    cr_assert_not(allows(&c, ""));
    cr_assert_not(allows(&c, "null"));
    /* a header value is not NUL-terminated: only its length counts */
    cr_assert(tg_cors_allows(&c, "https://app.example/ignored", 19));
    cr_assert_not(tg_cors_allows(NULL, "https://app.example", 19), "no cors: nothing is allowed");
}

Test(cors, any_lets_in_every_origin_but_null)
{
    char *list[] = {"*"};
    tg_cors_t c = {.origins = list, .n_origins = 1, .any = 1};
    cr_assert(allows(&c, "https://app.example"));
    cr_assert(allows(&c, "http://10.0.0.1:81"));
    cr_assert_not(allows(&c, "null"), "an opaque origin is never let in");
    cr_assert_not(allows(&c, ""));
}

/*
 * The small fixed catalog the router and parameter targets run against, loaded
 * through the real config and catalog loader once per process (from files in a
 * temporary folder that is removed at once), so that defaults, bounds and enums are
 * what the loader makes of them.
 */
#ifndef tollgate_tests_fuzz_fixture_h
#define tollgate_tests_fuzz_fixture_h

#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "common.h"

/* one scalar parameter of every type, then one array of every type: `src` decides where from (the route) */
#define FIXTURE_ALL_TYPES                                                                                                        \
    "{\"name\":\"i2\",\"type\":\"int2\",\"required\":false,\"min\":-100,\"max\":100},"                                           \
    "{\"name\":\"i4\",\"type\":\"int4\",\"required\":false},"                                                                    \
    "{\"name\":\"i8\",\"type\":\"int8\",\"required\":false,\"min\":1},"                                                          \
    "{\"name\":\"f4\",\"type\":\"float4\",\"required\":false,\"min\":0,\"max\":1},"                                              \
    "{\"name\":\"f8\",\"type\":\"float8\",\"required\":false,\"max\":1e300},"                                                    \
    "{\"name\":\"num\",\"type\":\"numeric\",\"required\":false,\"min\":-1.5,\"max\":123456789012345678901234567890.25},"  \
    "{\"name\":\"txt\",\"type\":\"text\",\"required\":false,\"max_length\":8},"                                                  \
    "{\"name\":\"b\",\"type\":\"bool\",\"required\":false},"                                                                     \
    "{\"name\":\"u\",\"type\":\"uuid\",\"required\":false},"                                                                     \
    "{\"name\":\"d\",\"type\":\"date\",\"required\":false},"                                                                     \
    "{\"name\":\"ts\",\"type\":\"timestamptz\",\"required\":false},"                                                             \
    "{\"name\":\"j\",\"type\":\"json\",\"required\":false},"                                                                     \
    "{\"name\":\"jb\",\"type\":\"jsonb\",\"required\":false},"                                                                   \
    "{\"name\":\"ai2\",\"type\":\"int2[]\",\"required\":false},"                                                                 \
    "{\"name\":\"ai4\",\"type\":\"int4[]\",\"required\":false},"                                                                 \
    "{\"name\":\"ai8\",\"type\":\"int8[]\",\"required\":false},"                                                                 \
    "{\"name\":\"af4\",\"type\":\"float4[]\",\"required\":false},"                                                               \
    "{\"name\":\"af8\",\"type\":\"float8[]\",\"required\":false},"                                                               \
    "{\"name\":\"anum\",\"type\":\"numeric[]\",\"required\":false},"                                                             \
    "{\"name\":\"atxt\",\"type\":\"text[]\",\"required\":false},"                                                                \
    "{\"name\":\"ab\",\"type\":\"bool[]\",\"required\":false},"                                                                  \
    "{\"name\":\"au\",\"type\":\"uuid[]\",\"required\":false},"                                                                  \
    "{\"name\":\"ad\",\"type\":\"date[]\",\"required\":false},"                                                                  \
    "{\"name\":\"ats\",\"type\":\"timestamptz[]\",\"required\":false},"                                                          \
    "{\"name\":\"aj\",\"type\":\"json[]\",\"required\":false},"                                                                  \
    "{\"name\":\"ajb\",\"type\":\"jsonb[]\",\"required\":false},"                                                                \
    "{\"name\":\"color\",\"type\":\"text\",\"enum\":[\"red\",\"green\",\"bl\\u00fce\"],\"default\":\"red\"},"                   \
    "{\"name\":\"level\",\"type\":\"int2\",\"enum\":[1,2,3],\"required\":false},"                                               \
    "{\"name\":\"ratio\",\"type\":\"numeric\",\"enum\":[1.5,2],\"required\":false},"                                         \
    "{\"name\":\"when\",\"type\":\"date\",\"default\":\"2026-01-01\"},"                                                         \
    "{\"name\":\"tags\",\"type\":\"text[]\",\"default\":[\"a\",null,\"b\\\"c\"]},"                                                \
    "{\"name\":\"limit\",\"type\":\"int4\",\"default\":20,\"min\":1,\"max\":100},"                                              \
    "{\"name\":\"need\",\"type\":\"int8\"},"                                                                                     \
    "{\"name\":\"owner\",\"type\":\"text\",\"from\":\"tenant\"}"
#define FIXTURE_ALL_TYPES_N 34

/* name, route, params (JSON array members), number of params */
static const struct fixture_query_t {
    const char *name, *route, *params;
    int n;
} fixture_queries[] = {
    {"root", "GET /", "", 0},
    {"get_user", "GET /users/{id}", "{\"name\":\"id\",\"type\":\"int8\",\"min\":1}", 1},
    {"new_user", "POST /users/new", "{\"name\":\"email\",\"type\":\"text\",\"max_length\":20},{\"name\":\"name\",\"type\":\"text\",\"required\":false}", 2},
    {"put_user", "PUT /users/{id}", "{\"name\":\"id\",\"type\":\"int8\"},{\"name\":\"name\",\"type\":\"text\"}", 2},
    {"delete_user", "DELETE /users/{id}", "{\"name\":\"id\",\"type\":\"int8\"}", 1},
    {"user_orders", "GET /users/{id}/orders",
     "{\"name\":\"id\",\"type\":\"int8\"},{\"name\":\"limit\",\"type\":\"int4\",\"default\":20,\"min\":1,\"max\":100},"
     "{\"name\":\"status\",\"type\":\"text\",\"enum\":[\"open\",\"paid\"],\"required\":false}",
     3},
    {"my_orders", "GET /users/me/orders", "{\"name\":\"owner\",\"type\":\"text\",\"from\":\"tenant\"}", 1},
    {"orders", "GET /orders", "{\"name\":\"ids\",\"type\":\"int8[]\"}", 1},
    {"create_order", "POST /orders", "{\"name\":\"user_id\",\"type\":\"int8\"},{\"name\":\"items\",\"type\":\"jsonb\"}", 2},
    {"abcde", "GET /a/{b}/c/{d}/e", "{\"name\":\"b\",\"type\":\"text\"},{\"name\":\"d\",\"type\":\"int4\"}", 2},
    {"deep", "GET /p/{p1}/{p2}/{p3}/{p4}/{p5}/{p6}/{p7}/{p8}/{p9}/{p10}/{p11}/{p12}/{p13}/{p14}/{p15}/{p16}",
     "{\"name\":\"p1\",\"type\":\"text\"},{\"name\":\"p2\",\"type\":\"text\"},{\"name\":\"p3\",\"type\":\"text\"},"
     "{\"name\":\"p4\",\"type\":\"text\"},{\"name\":\"p5\",\"type\":\"text\"},{\"name\":\"p6\",\"type\":\"text\"},"
     "{\"name\":\"p7\",\"type\":\"text\"},{\"name\":\"p8\",\"type\":\"text\"},{\"name\":\"p9\",\"type\":\"text\"},"
     "{\"name\":\"p10\",\"type\":\"text\"},{\"name\":\"p11\",\"type\":\"text\"},{\"name\":\"p12\",\"type\":\"text\"},"
     "{\"name\":\"p13\",\"type\":\"text\"},{\"name\":\"p14\",\"type\":\"text\"},{\"name\":\"p15\",\"type\":\"text\"},"
     "{\"name\":\"p16\",\"type\":\"text\"}",
     16},
    {"patch_item", "PATCH /items/{id}", "{\"name\":\"id\",\"type\":\"uuid\"},{\"name\":\"doc\",\"type\":\"json\",\"required\":false}", 2},
    {"files", "GET /files/", "", 0},
    /* GET routes that write (access is "write" for these names): HEAD must refuse them, and not fall back to /users/{id} */
    {"touch_me", "GET /users/me", "", 0},
    {"touch_user", "GET /users/{id}/touch", "{\"name\":\"id\",\"type\":\"int8\"}", 1},
    {"path_types", "GET /t/{i2}/{i4}/{i8}/{f4}/{f8}/{num}/{txt}/{b}/{u}/{d}/{ts}",
     "{\"name\":\"i2\",\"type\":\"int2\"},{\"name\":\"i4\",\"type\":\"int4\"},{\"name\":\"i8\",\"type\":\"int8\",\"max\":1000},"
     "{\"name\":\"f4\",\"type\":\"float4\"},{\"name\":\"f8\",\"type\":\"float8\",\"min\":-1},{\"name\":\"num\",\"type\":\"numeric\",\"max\":9.99},"
     "{\"name\":\"txt\",\"type\":\"text\",\"max_length\":3},{\"name\":\"b\",\"type\":\"bool\"},{\"name\":\"u\",\"type\":\"uuid\"},"
     "{\"name\":\"d\",\"type\":\"date\"},{\"name\":\"ts\",\"type\":\"timestamptz\"}",
     11},
    {"query_types", "GET /q", FIXTURE_ALL_TYPES, FIXTURE_ALL_TYPES_N},
    {"delete_types", "DELETE /q", FIXTURE_ALL_TYPES, FIXTURE_ALL_TYPES_N},
    {"body_types", "POST /b", FIXTURE_ALL_TYPES, FIXTURE_ALL_TYPES_N},
    {"put_types", "PUT /b/{id}", "{\"name\":\"id\",\"type\":\"int4\"}," FIXTURE_ALL_TYPES, FIXTURE_ALL_TYPES_N + 1},
};
#define FIXTURE_N_QUERIES (sizeof(fixture_queries) / sizeof(fixture_queries[0]))

static inline int fixture_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/** the fixed catalog, loaded once (kept for the life of the process) */
static inline const tg_config_t *fixture_config(void)
{
    static tg_config_t *cfg;
    if (cfg != NULL)
        return cfg;
    const char *base = getenv("TMPDIR");
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/tgfuzzXXXXXX", base != NULL && base[0] != '\0' ? base : "/tmp");
    FUZZ_ASSERT(mkdtemp(dir) != NULL, "mkdtemp %s", dir);

    tg_buf_t b = {0};
    tg_buf_appends(&b, "{\"queries\": [\n");
    for (size_t i = 0; i < FIXTURE_N_QUERIES; ++i) {
        const struct fixture_query_t *q = &fixture_queries[i];
        tg_buf_printf(&b, "%s{\"name\":\"%s\",\"route\":\"%s\",\"sql\":\"SELECT 1", i == 0 ? "" : ",\n", q->name, q->route);
        for (int k = 1; k <= q->n; ++k)
            tg_buf_printf(&b, ", $%d", k);
        tg_buf_printf(&b, "\",\"params\":[%s],\"returns\":\"one\",\"access\":\"%s\"}", q->params,
                      strncmp(q->route, "GET ", 4) == 0 && strncmp(q->name, "touch_", 6) != 0 ? "read" : "write");
    }
    tg_buf_appends(&b, "\n]}\n");
    snprintf(path, sizeof(path), "%s/catalog.json", dir);
    FILE *fp = fopen(path, "w");
    FUZZ_ASSERT(fp != NULL, "cannot write %s", path);
    fwrite(b.base, 1, b.len, fp);
    fclose(fp);

    static const char config[] = "{\"listen\":[{\"host\":\"127.0.0.1\",\"port\":8080}],"
                                 "\"primary\":\"host=127.0.0.1 dbname=app\",\"catalog\":[\"catalog.json\"]}";
    tg_errors_t errs = {0};
    snprintf(path, sizeof(path), "%s/tollgate.json", dir);
    cfg = tg_config_parse(config, sizeof(config) - 1, path, &errs);
    for (size_t i = 0; i < errs.n; ++i)
        fprintf(stderr, "fixture: %s\n", errs.msgs[i]);
    FUZZ_ASSERT(cfg != NULL && cfg->n_queries == FIXTURE_N_QUERIES, "the fixture catalog does not load");
    tg_errors_dispose(&errs);
    tg_buf_dispose(&b);
    nftw(dir, fixture_rm, 8, FTW_DEPTH | FTW_PHYS);
    return cfg;
}

/** the fixture's query by name */
static inline const tg_query_t *fixture_query(const char *name)
{
    const tg_query_t *q = tg_config_find_query(fixture_config(), name);
    FUZZ_ASSERT(q != NULL, "no fixture query %s", name);
    return q;
}

#endif

/*
 * Fuzz target: a catalog file (gateway/catalog.c: every entry field, parameters with
 * their types, bounds, enums and defaults, routes, SQL placeholders, sql_file,
 * invalidates; then the router built from it).
 *
 * Input: the catalog file's bytes, written to <sandbox>/catalog.json (the loader
 * only reads catalogs by path) and loaded through a fixed config. The sandbox
 * (tests/fuzz/sandbox.h) also holds sql/order_report.sql and sql/answer.sql for
 * sql_file; nothing outside it can be opened while the target runs.
 *
 * Asserts: a config is returned exactly when no error was reported; every error names
 * the file (starts with a sandbox path) and reads back from a JSON string; on success,
 * every query's route, with each {param} replaced by a value, routes to a query of its
 * method, every path parameter is in the route, and every default and enum value is
 * canonical for its parameter (checked again as text, it comes out the same);
 * everything is freed (LeakSanitizer).
 */
#include "sandbox.h"
#include "params_check.h"
#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/router.h"

static const char config[] = "{\"listen\": [{\"host\": \"127.0.0.1\", \"port\": 8080}],\n"
                             " \"primary\": \"host=127.0.0.1 dbname=app\",\n"
                             " \"tenants\": [{\"name\": \"t\", \"keys\": [], \"rate\": 10, \"burst\": 10, \"queries\": [\"get_*\"]}],\n"
                             " \"catalog\": [\"catalog.json\"]}\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sandbox_init();
    sandbox_write("sql/order_report.sql", "SELECT count(*) FROM orders WHERE created_at >= $1\n", 51);
    sandbox_write("sql/answer.sql", "SELECT 42 AS answer\n", 20);
    return 0;
}

/* the route of `q` with every {param} replaced by "1": it must route to a query of its method */
static void check_route(const tg_config_t *cfg, const tg_query_t *q)
{
    tg_buf_t b = {0};
    size_t n_params = 0;
    for (const char *s = q->path; *s != '\0';) {
        if (*s == '{') {
            const char *close = strchr(s, '}');
            FUZZ_ASSERT(close != NULL, "unclosed { in %s", q->path);
            tg_buf_appendc(&b, '1');
            s = close + 1;
            ++n_params;
        } else {
            tg_buf_appendc(&b, *s++);
        }
    }
    tg_route_match_t m;
    const char *method = tg_method_name(q->method);
    int rc = tg_router_match(cfg->router, method, strlen(method), b.base, b.len, &m);
    FUZZ_ASSERT(rc == TG_ROUTE_FOUND && m.query->method == q->method, "route %s %s (as %s) does not route: %d", method, q->path,
                b.base, rc);
    if (m.query == q)
        FUZZ_ASSERT(m.n_path_params == n_params, "%zu path params for %s", m.n_path_params, q->path);
    for (size_t i = 0; i < q->n_params; ++i)
        if (q->params[i].source == TG_SOURCE_PATH)
            FUZZ_ASSERT(q->params[i].path_index >= 0 && (size_t)q->params[i].path_index < n_params, "path param %s not in %s",
                        q->params[i].name, q->path);
    tg_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/tollgate.json", sandbox_dir);
    sandbox_write("catalog.json", data, size);
    tg_errors_t errs = {0};
    sandbox_active = 1;
    tg_config_t *cfg = tg_config_parse(config, sizeof(config) - 1, path, &errs);
    sandbox_active = 0;
    FUZZ_ASSERT((cfg == NULL) == (errs.n != 0), "config %p with %zu errors", (void *)cfg, errs.n);
    check_errors(&errs);
    if (cfg != NULL) {
        FUZZ_ASSERT(cfg->router != NULL, "no router");
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        for (size_t i = 0; i < cfg->n_queries; ++i) {
            const tg_query_t *q = &cfg->queries[i];
            FUZZ_ASSERT(q->name != NULL && q->path != NULL && q->sql != NULL && q->index == i, "query %zu", i);
            check_route(cfg, q);
            for (size_t k = 0; k < q->n_params; ++k) {
                const tg_param_t *p = &q->params[k];
                FUZZ_ASSERT(p->name != NULL && (unsigned)p->type < TG_TYPE__COUNT, "param %zu of %s", k, q->name);
                if (p->has_default && p->default_text != NULL) {
                    if (p->is_array)
                        check_array_literal(p, p->default_text, &pool);
                    else
                        check_canonical(p, p->default_text, &pool);
                }
                for (size_t e = 0; e < p->n_enum; ++e) {
                    tg_param_t scalar = *p;
                    scalar.is_array = 0;
                    check_canonical(&scalar, p->enum_values[e], &pool);
                }
            }
        }
        h2o_mem_clear_pool(&pool);
        tg_config_free(cfg);
    }
    tg_errors_dispose(&errs);
    return 0;
}

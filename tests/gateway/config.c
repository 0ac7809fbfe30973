/* Tests of gateway/config.c: config fields, defaults, every kind of error, keys and hashes. */
#include "config_fixture.h"

TestSuite(config, .init = make_dir, .fini = remove_dir);

#define CATALOG_OK "{'queries': [{'name': 'q', 'route': 'GET /q', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'}]}"
#define LISTEN "'listen': [{'host': '127.0.0.1', 'port': 8080}]"
#define PRIMARY "'primary': 'dbname=app'"
#define CATALOG "'catalog': ['catalog.json']"
#define BASE LISTEN ", " PRIMARY ", " CATALOG

/* parses `text` as <dir>/tollgate.json, with a good catalog.json next to it */
static tg_config_t *parse(const char *text, tg_errors_t *errs)
{
    char path[1024];
    write_file("catalog.json", CATALOG_OK);
    snprintf(path, sizeof(path), "%s/tollgate.json", dir);
    char *t = j(text);
    tg_config_t *cfg = tg_config_parse(t, strlen(t), path, errs);
    free(t);
    return cfg;
}

/* asserts that parsing `text` fails with a message holding `a` (and `b`, `c` when given) */
static void expect_error(const char *text, const char *a, const char *b, const char *c)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = parse(text, &errs);
    if (cfg != NULL || find_error(&errs, a, b, c) == NULL)
        dump(&errs);
    cr_assert_null(cfg, "expected the config to be rejected");
    cr_assert_not_null(find_error(&errs, a, b, c), "no error mentions \"%s\" / \"%s\" / \"%s\"", a, b ? b : "", c ? c : "");
    tg_errors_dispose(&errs);
}

static tg_config_t *parse_ok(const char *text)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = parse(text, &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg, "expected the config to load");
    cr_assert_eq(errs.n, 0);
    return cfg;
}

#define KEY_A "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define KEY_B "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

/* --- what loads --- */

Test(config, minimal_config_gets_every_default)
{
    tg_config_t *cfg = parse_ok("{" BASE "}");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    cr_assert_eq(cfg->n_listen, 1);
    cr_assert_str_eq(cfg->listen[0].host, "127.0.0.1");
    cr_assert_eq(cfg->listen[0].port, 8080);
    cr_assert_null(cfg->listen[0].cert_file);
    cr_assert_null(cfg->listen[0].key_file);
    cr_assert_eq(cfg->has_admin_listen, 0);
    cr_assert_eq(cfg->has_admin_token, 0);
    cr_assert_eq(cfg->threads, cpus < 1 ? 1 : cpus);
    cr_assert_gt(cfg->threads, 0);
    cr_assert_str_eq(cfg->primary, "dbname=app");
    cr_assert_eq(cfg->n_replicas, 0);
    cr_assert_eq(cfg->pool.size, 16);
    cr_assert_eq(cfg->pool.acquire_timeout_ms, 1000);
    cr_assert_float_eq(cfg->pool.low_priority_share, 0.5, 1e-12);
    cr_assert_eq(cfg->replica_max_lag_ms, 10000);
    cr_assert_eq(cfg->read_after_wait_ms, 100);
    cr_assert_eq(cfg->health_interval_ms, 1000);
    cr_assert_eq(cfg->default_timeout_ms, 5000);
    cr_assert_eq(cfg->max_body_bytes, 1048576);
    cr_assert_eq(cfg->max_rows, 10000);
    cr_assert_eq(cfg->max_in_flight, 0);
    cr_assert_eq(cfg->shutdown_grace_ms, 10000);
    cr_assert_eq(cfg->cache_max_bytes, 67108864);
    cr_assert_null(cfg->access_log);
    cr_assert_eq(cfg->n_tenants, 0);
    cr_assert_eq(cfg->has_anonymous, 0);
    cr_assert_eq(cfg->n_catalog_paths, 1);
    char want[1024];
    snprintf(want, sizeof(want), "%s/catalog.json", dir);
    cr_assert_str_eq(cfg->catalog_paths[0], want);
    snprintf(want, sizeof(want), "%s/tollgate.json", dir);
    cr_assert_str_eq(cfg->path, want);
    cr_assert_str_eq(cfg->dir, dir);
    cr_assert_eq(cfg->n_queries, 1);
    cr_assert_str_eq(cfg->queries[0].name, "q");
    cr_assert_eq(cfg->queries[0].timeout_ms, 5000);
    cr_assert_not_null(cfg->router);
    tg_config_free(cfg);
}

Test(config, explicit_values_and_nulls)
{
    write_file("tls/cert.pem", "cert");
    write_file("tls/key.pem", "key");
    write_file("logs/.keep", ""); /* the access log's folder must exist */
    tg_config_t *cfg =
        parse_ok("{'listen': [{'host': '127.0.0.1', 'port': 8080},"
                 "            {'host': '0.0.0.0', 'port': 8443, 'tls': {'cert_file': 'tls/cert.pem', 'key_file': 'tls/key.pem'}}],"
                 " 'admin_listen': {'host': '127.0.0.1', 'port': 9090},"
                 " 'admin_token': '" KEY_A "',"
                 " 'threads': 3, " PRIMARY ", 'replicas': ['host=r1', 'host=r2'],"
                 " 'pool': {'size': 8, 'acquire_timeout_ms': 250, 'low_priority_share': 0.25},"
                 " 'replica_max_lag_ms': 500, 'read_after_wait_ms': 0, 'health_interval_ms': 200, 'default_timeout_ms': 1500,"
                 " 'max_body_bytes': 4096, 'max_rows': 50, 'max_in_flight': 100, 'shutdown_grace_ms': 0,"
                 " 'cache': {'max_bytes': 0}, 'access_log': 'logs/access.log',"
                 " 'tenants': [{'name': 'billing', 'keys': ['" KEY_A "', '" KEY_B "'], 'rate': 200, 'burst': 400,"
                 "              'max_in_flight': 64, 'priority': 'high'},"
                 "             {'name': 'batch', 'keys': [], 'rate': 0.5, 'burst': 1, 'priority': 'low'}],"
                 " 'anonymous': {'rate': 2.5, 'burst': 10}, " CATALOG "}");
    char want[1024];

    cr_assert_eq(cfg->n_listen, 2);
    cr_assert_str_eq(cfg->listen[1].host, "0.0.0.0");
    cr_assert_eq(cfg->listen[1].port, 8443);
    snprintf(want, sizeof(want), "%s/tls/cert.pem", dir);
    cr_assert_str_eq(cfg->listen[1].cert_file, want);
    snprintf(want, sizeof(want), "%s/tls/key.pem", dir);
    cr_assert_str_eq(cfg->listen[1].key_file, want);
    cr_assert_eq(cfg->has_admin_listen, 1);
    cr_assert_str_eq(cfg->admin_listen.host, "127.0.0.1");
    cr_assert_eq(cfg->admin_listen.port, 9090);
    cr_assert_eq(cfg->has_admin_token, 1);
    cr_assert_eq(cfg->admin_token[0], 0xba);
    cr_assert_eq(cfg->admin_token[31], 0xad);
    cr_assert_eq(cfg->threads, 3);
    cr_assert_eq(cfg->n_replicas, 2);
    cr_assert_str_eq(cfg->replicas[1], "host=r2");
    cr_assert_eq(cfg->pool.size, 8);
    cr_assert_eq(cfg->pool.acquire_timeout_ms, 250);
    cr_assert_float_eq(cfg->pool.low_priority_share, 0.25, 1e-12);
    cr_assert_eq(cfg->replica_max_lag_ms, 500);
    cr_assert_eq(cfg->read_after_wait_ms, 0);
    cr_assert_eq(cfg->health_interval_ms, 200);
    cr_assert_eq(cfg->default_timeout_ms, 1500);
    cr_assert_eq(cfg->queries[0].timeout_ms, 1500, "a query's timeout defaults to default_timeout_ms");
    cr_assert_eq(cfg->max_body_bytes, 4096);
    cr_assert_eq(cfg->max_rows, 50);
    cr_assert_eq(cfg->max_in_flight, 100);
    cr_assert_eq(cfg->shutdown_grace_ms, 0);
    cr_assert_eq(cfg->cache_max_bytes, 0);
    snprintf(want, sizeof(want), "%s/logs/access.log", dir);
    cr_assert_str_eq(cfg->access_log, want);
    cr_assert_eq(cfg->n_tenants, 2);
    cr_assert_str_eq(cfg->tenants[0].name, "billing");
    cr_assert_eq(cfg->tenants[0].n_keys, 2);
    cr_assert_eq(cfg->tenants[0].keys[0][0], 0xba);
    cr_assert_eq(cfg->tenants[0].keys[1][0], 0x2c);
    cr_assert_eq(cfg->tenants[0].keys[1][31], 0x24);
    cr_assert_float_eq(cfg->tenants[0].rate, 200, 1e-12);
    cr_assert_float_eq(cfg->tenants[0].burst, 400, 1e-12);
    cr_assert_eq(cfg->tenants[0].max_in_flight, 64);
    cr_assert_eq(cfg->tenants[0].priority, TG_PRIORITY_HIGH);
    cr_assert_str_eq(cfg->tenants[1].name, "batch");
    cr_assert_eq(cfg->tenants[1].n_keys, 0);
    cr_assert_float_eq(cfg->tenants[1].rate, 0.5, 1e-12);
    cr_assert_eq(cfg->tenants[1].max_in_flight, 0);
    cr_assert_eq(cfg->tenants[1].priority, TG_PRIORITY_LOW);
    cr_assert_eq(cfg->has_anonymous, 1);
    cr_assert_float_eq(cfg->anonymous_rate, 2.5, 1e-12);
    cr_assert_float_eq(cfg->anonymous_burst, 10, 1e-12);
    tg_config_free(cfg);
}

Test(config, nulls_mean_off)
{
    tg_config_t *cfg = parse_ok("{" BASE ", 'admin_listen': null, 'admin_token': null, 'access_log': null, 'anonymous': null,"
                                " 'threads': 0}");
    cr_assert_eq(cfg->has_admin_listen, 0);
    cr_assert_eq(cfg->has_admin_token, 0);
    cr_assert_null(cfg->access_log);
    cr_assert_eq(cfg->has_anonymous, 0);
    cr_assert_gt(cfg->threads, 0);
    tg_config_free(cfg);
}

Test(config, access_log_dash_is_stdout)
{
    tg_config_t *cfg = parse_ok("{" BASE ", 'access_log': '-'}");
    cr_assert_str_eq(cfg->access_log, "-");
    tg_config_free(cfg);
}

Test(config, absolute_catalog_path_is_kept)
{
    char text[2048], abs[1024];
    snprintf(abs, sizeof(abs), "%s/elsewhere/c.json", dir);
    write_file("elsewhere/c.json", CATALOG_OK);
    snprintf(text, sizeof(text), "{" LISTEN ", " PRIMARY ", 'catalog': ['%s']}", abs);
    tg_config_t *cfg = parse_ok(text);
    cr_assert_str_eq(cfg->catalog_paths[0], abs);
    cr_assert_str_eq(cfg->queries[0].file, abs);
    tg_config_free(cfg);
}

Test(config, load_full_fixture)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = tg_config_load("tests/fixtures/config/full/tollgate.json", &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);

    cr_assert_str_eq(cfg->path, "tests/fixtures/config/full/tollgate.json");
    cr_assert_str_eq(cfg->dir, "tests/fixtures/config/full");
    cr_assert_eq(cfg->n_listen, 2);
    cr_assert_str_eq(cfg->listen[1].cert_file, "tests/fixtures/config/full/tls/cert.pem");
    cr_assert_str_eq(cfg->listen[1].key_file, "tests/fixtures/config/full/tls/key.pem");
    cr_assert_eq(cfg->has_admin_listen, 1);
    cr_assert_eq(cfg->admin_listen.port, 9090);
    cr_assert_eq(cfg->has_admin_token, 1);
    cr_assert_eq(cfg->threads, 2);
    cr_assert_eq(cfg->n_replicas, 1);
    cr_assert_eq(cfg->pool.size, 16);
    cr_assert_eq(cfg->default_timeout_ms, 5000);
    cr_assert_eq(cfg->cache_max_bytes, 67108864);
    cr_assert_str_eq(cfg->access_log, "-");
    cr_assert_eq(cfg->n_tenants, 2);
    cr_assert_eq(cfg->has_anonymous, 1);
    cr_assert_eq(cfg->n_catalog_paths, 1);
    cr_assert_str_eq(cfg->catalog_paths[0], "tests/fixtures/config/full/catalog/");

    /* catalog/ holds 10-users.json and 20-orders.json (read in name order) and a README that is not JSON */
    cr_assert_eq(cfg->n_queries, 5);
    cr_assert_str_eq(cfg->queries[0].name, "get_user");
    cr_assert_str_eq(cfg->queries[0].file, "tests/fixtures/config/full/catalog/10-users.json");
    cr_assert_eq(cfg->queries[0].line, 3);
    cr_assert_str_eq(cfg->queries[3].name, "list_orders");
    cr_assert_str_eq(cfg->queries[3].file, "tests/fixtures/config/full/catalog/20-orders.json");
    for (size_t i = 0; i < cfg->n_queries; ++i)
        cr_assert_eq(cfg->queries[i].index, i);

    const tg_query_t *q = tg_config_find_query(cfg, "list_orders");
    cr_assert_eq(q, cfg->queries + 3);
    cr_assert_str_eq(q->sql, "SELECT id, total\nFROM orders\nWHERE user_id = $1\nORDER BY id\nLIMIT $2");
    q = tg_config_find_query(cfg, "order_report");
    cr_assert_not_null(q);
    cr_assert_str_eq(q->sql, "-- from a file next to the catalog\nSELECT count(*) AS n FROM orders WHERE created_at >= $1\n");
    cr_assert_null(tg_config_find_query(cfg, "nope"));
    tg_config_free(cfg);
}

/* --- errors --- */

Test(config, missing_file)
{
    tg_errors_t errs = {0};
    cr_assert_null(tg_config_load("tests/fixtures/config/does-not-exist.json", &errs));
    cr_assert_eq(errs.n, 1);
    cr_assert_not_null(strstr(errs.msgs[0], "tests/fixtures/config/does-not-exist.json: "));
    cr_assert_not_null(strstr(errs.msgs[0], "No such file"));
    tg_errors_dispose(&errs);
}

Test(config, syntax_error_names_the_line)
{
    expect_error("{\n" LISTEN ",\n" PRIMARY ",\n 'threads': 2,,\n" CATALOG "}", "tollgate.json:4: invalid JSON", NULL, NULL);
}

Test(config, duplicate_json_key_is_an_error)
{
    expect_error("{" BASE ",\n 'threads': 1,\n 'threads': 2}", "tollgate.json:3:", "invalid JSON", "threads");
}

Test(config, root_must_be_an_object)
{
    expect_error("[1, 2]", "tollgate.json: ", "object", NULL);
}

Test(config, unknown_fields)
{
    expect_error("{" BASE ", 'treads': 4}", "tollgate.json:1: treads: unknown field (did you mean \"threads\"?)", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'sizes': 4}}", "tollgate.json:1: pool.sizes: unknown field (did you mean \"size\"?)", NULL, NULL);
    expect_error("{" BASE ", 'cache': {'max_byte': 4}}", "cache.max_byte: unknown field", NULL, NULL);
    expect_error("{'listen': [{'host': 'a', 'port': 1, 'ipv6': true}], " PRIMARY ", " CATALOG "}", "listen[0].ipv6: unknown field",
                 NULL, NULL);
    write_file("c.pem", "x");
    expect_error("{'listen': [{'host': 'a', 'port': 1, 'tls': {'cert_file': 'c.pem', 'key_file': 'c.pem', 'ca': 'x'}}], " PRIMARY
                 ", " CATALOG "}",
                 "listen[0].tls.ca: unknown field", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 1, 'burst': 1, 'colour': 'red'}]}",
                 "tenants[0].colour: unknown field", NULL, NULL);
    expect_error("{" BASE ", 'anonymous': {'rate': 1, 'burst': 1, 'max_in_flight': 3}}", "anonymous.max_in_flight: unknown field",
                 NULL, NULL);
}

Test(config, wrong_types)
{
    expect_error("{" BASE ", 'threads': '4'}", "tollgate.json:1: threads: must be an integer", NULL, NULL);
    expect_error("{" BASE ", 'threads': 2.5}", "threads: must be an integer", NULL, NULL);
    expect_error("{" LISTEN ", 'primary': 5, " CATALOG "}", "primary: must be a non-empty string", NULL, NULL);
    expect_error("{" BASE ", 'replicas': 'host=r1'}", "replicas: must be an array", NULL, NULL);
    expect_error("{" BASE ", 'replicas': ['host=r1', 7]}", "replicas[1]:", NULL, NULL);
    expect_error("{" BASE ", 'pool': 16}", "pool: must be an object", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'low_priority_share': 'half'}}", "pool.low_priority_share: must be a number", NULL, NULL);
    expect_error("{" BASE ", 'max_body_bytes': true}", "max_body_bytes: must be an integer", NULL, NULL);
    expect_error("{" BASE ", 'access_log': false}", "access_log:", NULL, NULL);
    expect_error("{" BASE ", 'access_log': '/nonexistent-dir/access.log'}", "access_log: /nonexistent-dir/access.log cannot be created in /nonexistent-dir: No such file", NULL, NULL);
    expect_error("{" BASE ", 'access_log': '/'}", "access_log: / is a folder", NULL, NULL);
    expect_error("{" BASE ", 'cache': []}", "cache: must be an object", NULL, NULL);
    expect_error("{" BASE ", 'tenants': {}}", "tenants: must be an array", NULL, NULL);
    expect_error("{" BASE ", 'tenants': ['billing']}", "tenants[0]: must be an object", NULL, NULL);
    expect_error("{" BASE ", 'anonymous': true}", "anonymous: must be null or an object", NULL, NULL);
    expect_error("{'listen': {'host': 'a', 'port': 1}, " PRIMARY ", " CATALOG "}", "listen: must be a non-empty array", NULL, NULL);
    expect_error("{'listen': [{'host': 'a', 'port': '80'}], " PRIMARY ", " CATALOG "}", "listen[0].port: must be an integer", NULL,
                 NULL);
    expect_error("{" LISTEN ", " PRIMARY ", 'catalog': 'catalog.json'}", "catalog: must be a non-empty array", NULL, NULL);
    expect_error("{" LISTEN ", " PRIMARY ", 'catalog': ['catalog.json', 3]}", "catalog[1]:", NULL, NULL);
}

Test(config, missing_required_fields_all_reported)
{
    tg_errors_t errs = {0};
    cr_assert_null(parse("{'threads': 1}", &errs));
    /* a missing member is at the object that lacks it: here, the file's first line */
    cr_assert_not_null(find_error(&errs, "tollgate.json:1: listen: required", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:1: primary: required", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:1: catalog: required", NULL, NULL));
    cr_assert_eq(errs.n, 3);
    tg_errors_dispose(&errs);

    expect_error("{'listen': [], " PRIMARY ", " CATALOG "}", "listen: must be a non-empty array", NULL, NULL);
    expect_error("{" LISTEN ", " PRIMARY ", 'catalog': []}", "catalog: must be a non-empty array", NULL, NULL);
    expect_error("{'listen': [{'port': 80}], " PRIMARY ", " CATALOG "}", "listen[0].host: required", NULL, NULL);
    expect_error("{'listen': [{'host': 'h'}], " PRIMARY ", " CATALOG "}", "listen[0].port: required", NULL, NULL);
    expect_error("{'listen': [{'host': 'h', 'port': 1, 'tls': {'cert_file': 'c.pem'}}], " PRIMARY ", " CATALOG "}",
                 "listen[0].tls.key_file: required", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'rate': 1, 'burst': 1}]}", "tenants[0].keys: required", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'keys': [], 'rate': 1, 'burst': 1}]}", "tenants[0].name: required", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'burst': 1}]}", "tenants[0].rate: required", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 1}]}", "tenants[0].burst: required", NULL, NULL);
    expect_error("{" BASE ", 'anonymous': {'rate': 1}}", "anonymous.burst: required", NULL, NULL);
}

Test(config, values_out_of_range)
{
    expect_error("{" BASE ", 'pool': {'size': 0}}", "pool.size: must be an integer >= 1", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'acquire_timeout_ms': -1}}", "pool.acquire_timeout_ms:", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'low_priority_share': 1.5}}", "pool.low_priority_share: must be a number between 0 and 1",
                 NULL, NULL);
    expect_error("{" BASE ", 'pool': {'low_priority_share': -0.1}}", "pool.low_priority_share:", NULL, NULL);
    expect_error("{'listen': [{'host': 'h', 'port': 70000}], " PRIMARY ", " CATALOG "}",
                 "listen[0].port: must be an integer between 0 and 65535", NULL, NULL);
    expect_error("{" BASE ", 'threads': -1}", "threads:", NULL, NULL);
    expect_error("{" BASE ", 'threads': 100000}", "threads:", NULL, NULL);
    expect_error("{" BASE ", 'default_timeout_ms': 0}", "default_timeout_ms: must be an integer >= 1", NULL, NULL);
    expect_error("{" BASE ", 'health_interval_ms': 0}", "health_interval_ms:", NULL, NULL);
    expect_error("{" BASE ", 'replica_max_lag_ms': -5}", "replica_max_lag_ms:", NULL, NULL);
    expect_error("{" BASE ", 'read_after_wait_ms': 60001}", "read_after_wait_ms: must be an integer between 0 and 60000 (got 60001)", NULL, NULL);
    expect_error("{" BASE ", 'read_after_wait_ms': 1.5}", "read_after_wait_ms:", NULL, NULL);
    expect_error("{" BASE ", 'max_rows': 0}", "max_rows:", NULL, NULL);
    expect_error("{" BASE ", 'max_body_bytes': 0}", "max_body_bytes:", NULL, NULL);
    expect_error("{" BASE ", 'max_in_flight': -1}", "max_in_flight:", NULL, NULL);
    expect_error("{" BASE ", 'shutdown_grace_ms': -1}", "shutdown_grace_ms:", NULL, NULL);
    expect_error("{" BASE ", 'default_timeout_ms': 3000000000}", "default_timeout_ms:", NULL, NULL);
    expect_error("{" BASE ", 'cache': {'max_bytes': -1}}", "cache.max_bytes:", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 0, 'burst': 1}]}",
                 "tenants[0].rate: must be a number between 1e-06 and 1e+09", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 1, 'burst': 0.5}]}",
                 "tenants[0].burst: must be a number between 1 and 1e+09", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 1, 'burst': 1, 'max_in_flight': -2}]}",
                 "tenants[0].max_in_flight:", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 1, 'burst': 1, 'priority': 'urgent'}]}",
                 "tenants[0].priority: must be \"high\" or \"low\"", NULL, NULL);
    expect_error("{" BASE ", 'anonymous': {'rate': -1, 'burst': 1}}", "anonymous.rate:", NULL, NULL);
    expect_error("{" LISTEN ", 'primary': '', " CATALOG "}", "primary: must be a non-empty string", NULL, NULL);
}

Test(config, bad_sha256)
{
    expect_error("{" BASE ", 'admin_token': 'hunter2'}", "admin_token: must be null or \"sha256:<64 hex digits>\"", NULL, NULL);
    expect_error("{" BASE ", 'admin_token': 'sha256:abcd'}", "admin_token:", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': ['" KEY_A "', 'sha256:zz'], 'rate': 1, 'burst': 1}]}",
                 "tenants[0].keys[1]: must be \"sha256:<64 hex digits>\"", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [42], 'rate': 1, 'burst': 1}]}", "tenants[0].keys[0]:", NULL, NULL);
}

Test(config, empty_and_short_keys_are_refused_with_the_reason)
{
    /* an empty key, a key pasted as it is, a digest one digit short or long, a digit that is not hex: each its own reason */
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [''], 'rate': 1, 'burst': 1}]}",
                 "tenants[0].keys[0]: is empty: must be \"sha256:<64 hex digits>\"", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': ['demo-key'], 'rate': 1, 'burst': 1}]}",
                 "tenants[0].keys[0]: must be \"sha256:<64 hex digits>\", the SHA-256 of the key, not the key itself", NULL, NULL);
    char text[512];
    snprintf(text, sizeof(text), "{" BASE ", 'tenants': [{'name': 't', 'keys': ['%.*s'], 'rate': 1, 'burst': 1}]}",
             (int)strlen(KEY_A) - 1, KEY_A);
    expect_error(text, "tenants[0].keys[0]: must be \"sha256:<64 hex digits>\" (got 63 hex digits)", NULL, NULL);
    snprintf(text, sizeof(text), "{" BASE ", 'tenants': [{'name': 't', 'keys': ['%s0'], 'rate': 1, 'burst': 1}]}", KEY_A);
    expect_error(text, "tenants[0].keys[0]: must be \"sha256:<64 hex digits>\" (got 65 hex digits)", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': ['sha256:'], 'rate': 1, 'burst': 1}]}", "(got 0 hex digits)", NULL,
                 NULL);
    snprintf(text, sizeof(text), "{" BASE ", 'tenants': [{'name': 't', 'keys': ['%.*sg'], 'rate': 1, 'burst': 1}]}",
             (int)strlen(KEY_A) - 1, KEY_A);
    expect_error(text, "tenants[0].keys[0]:", "not a hex digit", NULL);
    expect_error("{" BASE ", 'admin_token': ''}", "admin_token: is empty: must be null or \"sha256:<64 hex digits>\"", NULL, NULL);
}

Test(config, unknown_fields_suggest_the_nearest_known_one)
{
    expect_error("{" BASE ", 'pool': {'szie': 4}}", "pool.szie: unknown field (did you mean \"size\"?)", NULL, NULL);
    expect_error("{" BASE ", 'default_timout_ms': 4}", "default_timout_ms: unknown field (did you mean \"default_timeout_ms\"?)", NULL,
                 NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 't', 'keys': [], 'rate': 1, 'burst': 1, 'prority': 'low'}]}",
                 "tenants[0].prority: unknown field (did you mean \"priority\"?)", NULL, NULL);
    /* nothing close: no guess */
    tg_errors_t errs = {0};
    cr_assert_null(parse("{" BASE ", 'colour': 'red'}", &errs));
    cr_assert_eq(errs.n, 1);
    cr_assert(strstr(errs.msgs[0], "colour: unknown field") != NULL && strstr(errs.msgs[0], "did you mean") == NULL, "%s", errs.msgs[0]);
    tg_errors_dispose(&errs);
}

/* gateway/config_internal.h's, which the tests do not see */
const char *tg__nearest_name(const char *key, const char *const *allowed);

Test(config, nearest_name_is_close_or_nothing)
{
    static const char *const names[] = {"timeout_ms", "cost", "sql", "sql_file", "max", "min", NULL};
    cr_assert_str_eq(tg__nearest_name("timout_ms", names), "timeout_ms");
    cr_assert_str_eq(tg__nearest_name("timeotu_ms", names), "timeout_ms", "a transposition is one edit");
    cr_assert_str_eq(tg__nearest_name("Cost", names), "cost");
    cr_assert_str_eq(tg__nearest_name("sq", names), "sql");
    cr_assert_str_eq(tg__nearest_name("sql_fiel", names), "sql_file");
    cr_assert_str_eq(tg__nearest_name("cots", names), "cost");
    cr_assert_null(tg__nearest_name("ctso", names), "two edits from a short name is too far");
    cr_assert_null(tg__nearest_name("x", names), "a one-letter key is no typo of anything");
    cr_assert_null(tg__nearest_name("colour", names));
    cr_assert_null(tg__nearest_name("timeout", names), "three short of timeout_ms");
}

Test(config, an_empty_catalog_is_a_warning)
{
    char path[1024];
    write_file("none.json", "{'queries': []}");
    snprintf(path, sizeof(path), "%s/tollgate.json", dir);
    char *t = j("{" LISTEN ", " PRIMARY ",\n 'catalog': ['none.json']}");
    tg_errors_t errs = {0};
    tg_config_t *cfg = tg_config_parse(t, strlen(t), path, &errs);
    free(t);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg, "no queries is allowed");
    cr_assert_eq(cfg->n_queries, 0);
    cr_assert_eq(cfg->warnings.n, 1);
    cr_assert_not_null(find_error(&cfg->warnings, "tollgate.json:2: catalog: the catalog has no queries", NULL, NULL), "%s",
                       cfg->warnings.msgs[0]);
    tg_config_free(cfg);
}

Test(config, duplicate_tenants_and_keys)
{
    expect_error("{" BASE ", 'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 1},"
                 "                         {'name': 'b', 'keys': [], 'rate': 1, 'burst': 1},"
                 "                         {'name': 'a', 'keys': [], 'rate': 1, 'burst': 1}]}",
                 "tenants[2].name: duplicate tenant \"a\"", "tenants[0]", NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 'a', 'keys': ['" KEY_A "'], 'rate': 1, 'burst': 1},"
                 "                         {'name': 'b', 'keys': ['" KEY_B "', '" KEY_A "'], 'rate': 1, 'burst': 1}]}",
                 "tenants[1].keys:", "tenant a", NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 'a', 'keys': ['" KEY_B "', '" KEY_B "'], 'rate': 1, 'burst': 1}]}",
                 "tenants[0].keys: the same key is listed twice", NULL, NULL);
    /* the hex digits' case does not make a different key */
    expect_error("{" BASE ", 'tenants': [{'name': 'a', 'keys': ['" KEY_A "'], 'rate': 1, 'burst': 1},"
                 " {'name': 'b', 'keys': ['sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD'], 'rate': 1,"
                 " 'burst': 1}]}",
                 "tenants[1].keys:", NULL, NULL);
}

Test(config, tenant_names)
{
    expect_error("{" BASE ", 'tenants': [{'name': 'anonymous', 'keys': [], 'rate': 1, 'burst': 1}]}",
                 "tenants[0].name:", "reserved", NULL);
    expect_error("{" BASE ", 'tenants': [{'name': 'a b/c', 'keys': [], 'rate': 1, 'burst': 1}]}", "tenants[0].name:", NULL, NULL);
    expect_error("{" BASE ", 'tenants': [{'name': '', 'keys': [], 'rate': 1, 'burst': 1}]}", "tenants[0].name:", NULL, NULL);
    /* "-" alone is what metrics call "no tenant" / "no backend" */
    expect_error("{" BASE ", 'tenants': [{'name': '-', 'keys': [], 'rate': 1, 'burst': 1}]}", "tenants[0].name:", "not \"-\" alone", NULL);
    expect_error("{" BASE ", 'replicas': [{'name': '-', 'dsn': 'host=r1'}]}", "replicas[0].name:", NULL, NULL);
}

Test(config, duplicate_listen_addresses)
{
    expect_error("{'listen': [{'host': '127.0.0.1', 'port': 8080}, {'host': '127.0.0.1', 'port': 8080}], " PRIMARY ", " CATALOG "}",
                 "listen[1]: 127.0.0.1:8080 is already used by listen[0]", NULL, NULL);
    expect_error("{" BASE ", 'admin_listen': {'host': '127.0.0.1', 'port': 8080}}", "admin_listen: 127.0.0.1:8080", "listen[0]",
                 NULL);
    tg_config_t *cfg = parse_ok("{'listen': [{'host': '127.0.0.1', 'port': 8080}, {'host': '127.0.0.1', 'port': 8081}], " PRIMARY
                                ", " CATALOG "}");
    cr_assert_eq(cfg->n_listen, 2);
    tg_config_free(cfg);
}

Test(config, tls_files_must_exist)
{
    write_file("cert.pem", "x");
    expect_error("{'listen': [{'host': 'h', 'port': 1, 'tls': {'cert_file': 'cert.pem', 'key_file': 'nokey.pem'}}], " PRIMARY
                 ", " CATALOG "}",
                 "listen[0].tls.key_file: cannot read", "nokey.pem", "No such file");
}

Test(config, catalog_path_must_exist)
{
    expect_error("{" LISTEN ", " PRIMARY ", 'catalog': ['catalog.json', 'missing/']}", "tollgate.json:1: catalog[1]:", "missing/",
                 "No such file");
}

Test(config, every_error_is_reported_at_once)
{
    tg_errors_t errs = {0};
    write_file("bad.json", "{'queries': [\n"
                           "  {'name': 'q1', 'route': 'GET /a', 'sql': 'SELECT $1', 'returns': 'one', 'access': 'read',\n"
                           "   'params': [{'name': 'x', 'type': 'int9'}]},\n"
                           "  {'name': 'q2', 'route': 'GET /b', 'sql': 'SELECT $2', 'returns': 'one', 'access': 'read'}\n"
                           "]}");
    cr_assert_null(parse("{'listen': [{'host': 'h', 'port': 1}], " PRIMARY ",\n"
                         " 'threads': 'x',\n"
                         " 'pool': {'size': 0,\n"
                         "          'bogus': 1},\n"
                         " 'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 1},\n"
                         "             {'name': 'a', 'keys': [],\n"
                         "              'rate': 0, 'burst': 1}],\n"
                         " 'catalog': ['bad.json',\n"
                         "             'nope.json']}",
                         &errs));
    if (errs.n != 8)
        dump(&errs);
    /* each on its field's own line */
    cr_assert_not_null(find_error(&errs, "tollgate.json:2: threads:", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:3: pool.size:", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:4: pool.bogus: unknown field", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:6: tenants[1].name: duplicate", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:7: tenants[1].rate:", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "tollgate.json:9: catalog[1]:", "nope.json", NULL));
    cr_assert_not_null(find_error(&errs, "bad.json:3: queries[0] (q1).params[0] (x).type: unknown type \"int9\"", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "bad.json:4: queries[1] (q2).sql: $2", NULL, NULL));
    cr_assert_eq(errs.n, 8);
    tg_errors_dispose(&errs);
}

Test(config, errors_are_appended_to_existing_ones)
{
    tg_errors_t errs = {0};
    tg_errors_add(&errs, "earlier");
    cr_assert_null(parse("{" BASE ", 'threads': -1}", &errs));
    cr_assert_eq(errs.n, 2);
    cr_assert_str_eq(errs.msgs[0], "earlier");
    tg_errors_dispose(&errs);

    /* and a good config loads even when the list already holds something */
    tg_errors_add(&errs, "earlier");
    tg_config_t *cfg = parse("{" BASE "}", &errs);
    cr_assert_not_null(cfg);
    cr_assert_eq(errs.n, 1);
    tg_config_free(cfg);
    tg_errors_dispose(&errs);
}

/* --- keys --- */

Test(config, parse_sha256)
{
    uint8_t out[32], zero[32] = {0};

    cr_assert_eq(tg_parse_sha256(KEY_A, out), 0);
    cr_assert_eq(out[0], 0xba);
    cr_assert_eq(out[1], 0x78);
    cr_assert_eq(out[31], 0xad);
    cr_assert_eq(tg_parse_sha256("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", out), 0);
    cr_assert_eq(out[0], 0xba);

    memset(out, 0, sizeof(out));
    cr_assert_eq(tg_parse_sha256("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", out), -1);
    cr_assert_eq(tg_parse_sha256("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", out), -1);
    cr_assert_eq(tg_parse_sha256("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015add", out), -1);
    cr_assert_eq(tg_parse_sha256("sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", out), -1);
    cr_assert_eq(tg_parse_sha256("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", out), -1);
    cr_assert_eq(tg_parse_sha256("", out), -1);
    cr_assert_eq(memcmp(out, zero, 32), 0, "a failed parse leaves the output alone");
}

Test(config, hash_key)
{
    char out[72];
    uint8_t d[32];

    tg_hash_key("abc", 3, out);
    cr_assert_str_eq(out, KEY_A);
    tg_hash_key("hello", 5, out);
    cr_assert_str_eq(out, KEY_B);
    tg_hash_key("", 0, out);
    cr_assert_str_eq(out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tg_hash_key("abcdef", 3, out); /* only `len` bytes count */
    cr_assert_str_eq(out, KEY_A);
    cr_assert_eq(strlen(out), 71);
    cr_assert_eq(tg_parse_sha256(out, d), 0);
}

/* --- who may call what (tenants[].queries, anonymous.queries) --- */

Test(config, query_pattern_match)
{
    static const struct {
        const char *pattern, *name;
        int match;
    } cases[] = {
        {"get_user", "get_user", 1}, {"get_user", "get_users", 0}, {"get_users", "get_user", 0}, {"get_*", "get_user", 1},
        {"get_*", "get_", 1},        {"get_*", "get", 0},          {"get_*", "list_get_x", 0}, {"*", "anything", 1},
        {"*", "", 1},                {"Get_*", "get_user", 0},     {"orders_*", "orders", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        cr_expect_eq(tg_query_pattern_match(cases[i].pattern, cases[i].name), cases[i].match, "%s vs %s", cases[i].pattern,
                     cases[i].name);
}

#define LISTS_CATALOG                                                                                                            \
    "{'queries': ["                                                                                                              \
    "{'name': 'get_user', 'route': 'GET /u', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'},"                            \
    "{'name': 'get_order', 'route': 'GET /o', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'},"                           \
    "{'name': 'refund_order', 'route': 'POST /r', 'sql': 'SELECT 1', 'returns': 'none', 'access': 'write', 'cost': 5}]}"

static tg_config_t *parse_lists(const char *tenants, tg_errors_t *errs)
{
    char path[1024], text[2048];
    write_file("lists.json", LISTS_CATALOG);
    snprintf(path, sizeof(path), "%s/tollgate.json", dir);
    snprintf(text, sizeof(text), "{" LISTEN ", " PRIMARY ", 'catalog': ['lists.json'], %s}", tenants);
    char *t = j(text);
    tg_config_t *cfg = tg_config_parse(t, strlen(t), path, errs);
    free(t);
    return cfg;
}

static int allows(const tg_query_list_t *l, const tg_config_t *cfg, const char *query)
{
    const tg_query_t *q = tg_config_find_query(cfg, query);
    cr_assert_not_null(q, "%s", query);
    return tg_query_list_allows(l, q);
}

static const char *find_warning(const tg_config_t *cfg, const char *a, const char *b)
{
    return find_error(&cfg->warnings, a, b, NULL);
}

Test(config, tenant_query_lists_resolve_against_the_catalog)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = parse_lists("'tenants': [{'name': 'billing', 'keys': [], 'rate': 1, 'burst': 10, 'queries': ['refund_order', 'get_*']},"
                                   " {'name': 'analytics', 'keys': [], 'rate': 1, 'burst': 1, 'queries': ['get_order']},"
                                   " {'name': 'nothing', 'keys': [], 'rate': 1, 'burst': 10, 'queries': []},"
                                   " {'name': 'all', 'keys': [], 'rate': 1, 'burst': 1}],"
                                   " 'anonymous': {'rate': 1, 'burst': 10, 'queries': ['get_user']}",
                                   &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    const tg_tenant_t *billing = &cfg->tenants[0], *analytics = &cfg->tenants[1], *nothing = &cfg->tenants[2], *all = &cfg->tenants[3];
    cr_expect(allows(&billing->queries, cfg, "refund_order"));
    cr_expect(allows(&billing->queries, cfg, "get_user"));
    cr_expect(allows(&billing->queries, cfg, "get_order"));
    cr_expect(!allows(&analytics->queries, cfg, "refund_order"));
    cr_expect(!allows(&analytics->queries, cfg, "get_user"));
    cr_expect(allows(&analytics->queries, cfg, "get_order"));
    cr_expect(!allows(&nothing->queries, cfg, "get_order"));
    cr_expect(allows(&all->queries, cfg, "refund_order"), "no list: every query");
    cr_expect(allows(&cfg->anonymous_queries, cfg, "get_user"));
    cr_expect(!allows(&cfg->anonymous_queries, cfg, "refund_order"));
    /* a write not everyone may call, and costs only where the tenant may call the query */
    cr_expect_null(find_warning(cfg, "(refund_order): writes", NULL));
    cr_expect_not_null(find_warning(cfg, "(refund_order): costs 5 tokens", "tenant all's burst"));
    cr_expect_null(find_warning(cfg, "(refund_order): costs", "analytics"), "analytics (burst 1) may not call it: no warning");
    cr_expect_null(find_warning(cfg, "costs", "anonymous"), "anonymous (burst 10) may not call refund_order");
    tg_config_free(cfg);

    /* keyless callers that may call the costly write */
    cfg = parse_lists("'tenants': [], 'anonymous': {'rate': 1, 'burst': 2, 'queries': ['refund_order']}", &errs);
    cr_assert_not_null(cfg);
    cr_expect_not_null(find_warning(cfg, "(refund_order): costs 5 tokens, more than anonymous's burst (2)", NULL));
    cr_expect_null(find_warning(cfg, "(refund_order): writes", NULL), "anonymous's own list names it: on purpose");
    tg_config_free(cfg);
}

Test(config, query_list_warnings)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = parse_lists("'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 10, 'queries': ['get_user', 'no_such', 'zz_*']},"
                                   " {'name': 'b', 'keys': [], 'rate': 1, 'burst': 10}]",
                                   &errs);
    cr_assert_not_null(cfg);
    cr_expect_not_null(find_warning(cfg, "tollgate.json:1: tenants[0] (a).queries[1]: \"no_such\" names no catalog query", NULL));
    cr_expect_not_null(find_warning(cfg, "tollgate.json:1: tenants[0] (a).queries[2]: \"zz_*\" names no catalog query", NULL));
    cr_expect_null(find_warning(cfg, "\"get_user\" names no", NULL));
    /* a may not call refund_order: no warning about everyone */
    cr_expect_null(find_warning(cfg, "(refund_order): writes", NULL));
    tg_config_free(cfg);

    /* keyless callers with no list reach every write, whatever the tenants' lists say */
    cfg = parse_lists("'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 10, 'queries': []}], 'anonymous': {'rate': 1, 'burst': 10}",
                      &errs);
    cr_assert_not_null(cfg);
    cr_expect_not_null(find_warning(cfg, "lists.json:", "(refund_order): writes and keyless callers may call it"));
    cr_expect_null(find_warning(cfg, "(get_user): writes", NULL));
    tg_config_free(cfg);

    /* every tenant may, one of them only for having no list */
    cfg = parse_lists("'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 10, 'queries': ['*']},"
                      " {'name': 'b', 'keys': [], 'rate': 1, 'burst': 10}]",
                      &errs);
    cr_assert_not_null(cfg);
    cr_expect_not_null(find_warning(cfg, "lists.json:", "(refund_order): writes and every tenant may call it"));
    tg_config_free(cfg);

    /* every caller has a list that names it: chosen, not a default */
    cfg = parse_lists("'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 10, 'queries': ['refund_order']}]", &errs);
    cr_assert_not_null(cfg);
    cr_expect_eq(cfg->warnings.n, 0, "%s", cfg->warnings.n != 0 ? cfg->warnings.msgs[0] : "");
    tg_config_free(cfg);
}

Test(config, query_list_errors)
{
    expect_error("{" BASE ", 'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 1, 'queries': 'get_user'}]}",
                 "tenants[0].queries: must be an array", NULL, NULL);
    static const char *bad[] = {"''",      "'get user'", "'*get'",     "'get*x'",
                                "'a**'",   "1",          "null",       "'get-user'",
                                "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'" /* 64: longer than any name */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char text[512];
        snprintf(text, sizeof(text), "{" BASE ", 'tenants': [{'name': 'a', 'keys': [], 'rate': 1, 'burst': 1, 'queries': ['ok', %s]}]}",
                 bad[i]);
        expect_error(text, "tenants[0].queries[1]: must be a query name", NULL, NULL);
    }
    expect_error("{" BASE ", 'anonymous': {'rate': 1, 'burst': 1, 'queries': ['a', 'b c']}}", "anonymous.queries[1]: must be a query name",
                 NULL, NULL);
}

/* --- compression and cors --- */

Test(config, compression_and_cors_defaults)
{
    tg_config_t *cfg = parse_ok("{" BASE "}");
    cr_assert_eq(cfg->compression.on, 1, "compression is on by default");
    cr_assert_eq(cfg->compression.min_bytes, 1024);
    cr_assert_null(cfg->cors, "CORS is off by default");
    tg_config_free(cfg);

    cfg = parse_ok("{" BASE ", 'compression': null, 'cors': null}");
    cr_assert_eq(cfg->compression.on, 0);
    cr_assert_null(cfg->cors);
    tg_config_free(cfg);

    cfg = parse_ok("{" BASE ", 'compression': {}, 'cors': {'origins': ['*']}}");
    cr_assert_eq(cfg->compression.on, 1, "an empty object is the default");
    cr_assert_eq(cfg->compression.min_bytes, 1024);
    cr_assert_not_null(cfg->cors);
    cr_assert_eq(cfg->cors->any, 1);
    cr_assert_eq(cfg->cors->max_age_s, 600);
    cr_assert_str_eq(cfg->cors->max_age, "600");
    tg_config_free(cfg);
}

Test(config, compression_and_cors_values)
{
    tg_config_t *cfg = parse_ok("{" BASE ", 'compression': {'min_bytes': 0},"
                                " 'cors': {'origins': ['https://app.example', 'http://localhost:3000', 'https://[::1]:8443'],"
                                "          'max_age_s': 7200}}");
    cr_assert_eq(cfg->compression.on, 1);
    cr_assert_eq(cfg->compression.min_bytes, 0);
    cr_assert_eq(cfg->cors->n_origins, 3);
    cr_assert_eq(cfg->cors->any, 0);
    cr_assert_str_eq(cfg->cors->origins[1], "http://localhost:3000");
    cr_assert_eq(cfg->cors->max_age_s, 7200);
    cr_assert_str_eq(cfg->cors->max_age, "7200");
    tg_config_free(cfg);
}

Test(config, compression_and_cors_errors)
{
    expect_error("{" BASE ", 'compression': true}", "tollgate.json:1: compression: must be null or an object", NULL, NULL);
    expect_error("{" BASE ", 'compression': 1024}", "compression: must be null or an object", NULL, NULL);
    expect_error("{" BASE ", 'compression': {'min_bytes': -1}}", "compression.min_bytes: must be an integer >= 0", NULL, NULL);
    expect_error("{" BASE ", 'compression': {'min_bytes': '1k'}}", "compression.min_bytes: must be an integer", NULL, NULL);
    expect_error("{" BASE ", 'compression': {'min_bytes': 10, 'level': 9}}", "compression.level: unknown field", NULL, NULL);
    expect_error("{" BASE ", 'compression': {'brotli': true}}", "compression.brotli: unknown field", NULL, NULL);

    expect_error("{" BASE ", 'cors': true}", "cors: must be null or an object", NULL, NULL);
    expect_error("{" BASE ", 'cors': ['https://a.example']}", "cors: must be null or an object", NULL, NULL);
    expect_error("{" BASE ", 'cors': {}}", "cors.origins: required", NULL, NULL);
    expect_error("{" BASE ", 'cors': {'origins': []}}", "cors.origins: must be a non-empty array", NULL, NULL);
    expect_error("{" BASE ", 'cors': {'origins': 'https://a.example'}}", "cors.origins: must be a non-empty array", NULL, NULL);
    expect_error("{" BASE ", 'cors': {'origins': [7]}}", "cors.origins[0]: must be a string", NULL, NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['*'], 'credentials': true}}", "cors.credentials: unknown field", NULL, NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['https://a.example/']}}", "cors.origins[0]:", "no path", NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['https://a.example', 'a.example']}}", "cors.origins[1]:", "is not an origin", NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['https://App.example']}}", "cors.origins[0]:", "lower case", NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['https://a.example:0']}}", "cors.origins[0]:", "port", NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['https://a.example', 'https://a.example']}}", "cors.origins[1]:", "listed twice",
                 NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['null']}}", "cors.origins[0]:", "is not an origin", NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['*'], 'max_age_s': -1}}", "cors.max_age_s: must be an integer between 0 and 86400",
                 NULL, NULL);
    expect_error("{" BASE ", 'cors': {'origins': ['*'], 'max_age_s': 100000}}", "cors.max_age_s:", NULL, NULL);

    /* every one of them at once */
    tg_errors_t errs = {0};
    cr_assert_null(parse("{" BASE ", 'compression': {'min_bytes': -1, 'x': 1}, 'cors': {'origins': ['ftp://a', 'https://b/'], 'y': 2}}",
                         &errs));
    cr_assert_eq(errs.n, 5, "got %zu errors", errs.n);
    tg_errors_dispose(&errs);
}

/* --- shared_limits --- */

Test(config, shared_limits_defaults_and_url)
{
    tg_config_t *cfg = parse_ok("{" BASE "}");
    cr_assert_null(cfg->shared_limits, "off by default");
    tg_config_free(cfg);
    cfg = parse_ok("{" BASE ", 'shared_limits': {'redis': 'redis://10.0.0.5'}}");
    const tg_shared_limits_t *s = cfg->shared_limits;
    cr_assert_not_null(s);
    cr_assert_str_eq(s->host, "10.0.0.5");
    cr_assert_eq(s->port, 6379);
    cr_assert_eq(s->db, 0);
    cr_assert_null(s->user);
    cr_assert_null(s->password);
    cr_assert_str_eq(s->prefix, "tollgate:");
    cr_assert_eq(s->lease_ms, 100);
    cr_assert_eq(s->health_interval_ms, 1000);
    cr_assert_eq(s->timeout_ms, 250);
    cr_assert_eq(s->expected_instances, 1);
    cr_assert_str_eq(s->redis_shown, "redis://10.0.0.5:6379/0");
    tg_config_free(cfg);
    cfg = parse_ok("{" BASE ", 'shared_limits': {'redis': 'redis://app:p%40ss@[::1]:7000/3', 'prefix': 'eu:', 'lease_ms': 50,"
                   " 'health_interval_ms': 400, 'timeout_ms': 100, 'expected_instances': 4}}");
    s = cfg->shared_limits;
    cr_assert_str_eq(s->host, "::1");
    cr_assert_eq(s->port, 7000);
    cr_assert_eq(s->db, 3);
    cr_assert_str_eq(s->user, "app");
    cr_assert_str_eq(s->password, "p@ss", "percent-decoded");
    cr_assert_str_eq(s->redis_shown, "redis://app:***@[::1]:7000/3", "never the password");
    cr_assert_str_eq(s->prefix, "eu:");
    cr_assert_eq(s->lease_ms, 50);
    cr_assert_eq(s->expected_instances, 4);
    tg_config_free(cfg);
    cfg = parse_ok("{" BASE ", 'shared_limits': {'redis': 'redis://:secret@cache:6380/'}}");
    cr_assert_null(cfg->shared_limits->user);
    cr_assert_str_eq(cfg->shared_limits->password, "secret");
    cr_assert_str_eq(cfg->shared_limits->redis_shown, "redis://:***@cache:6380/0");
    tg_config_free(cfg);
}

Test(config, shared_limits_errors_name_the_field)
{
    tg_errors_t errs = {0};
    assert_rejected(parse("{" BASE ", 'shared_limits': {}}", &errs), &errs, "shared_limits.redis", "required", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': 'redis://x'}", &errs), &errs, "shared_limits", "null or an object", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'http://x'}}", &errs), &errs, "shared_limits.redis", "redis://", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'rediss://x'}}", &errs), &errs, "shared_limits.redis", "TLS", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://x:0'}}", &errs), &errs, "shared_limits.redis", "port", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://x:6379/a'}}", &errs), &errs, "shared_limits.redis", "database",
                    NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://x?db=1'}}", &errs), &errs, "shared_limits.redis", "query", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://user@x'}}", &errs), &errs, "shared_limits.redis", "password",
                    NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://:p%zz@x'}}", &errs), &errs, "shared_limits.redis", "escape",
                    NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://[::1'}}", &errs), &errs, "shared_limits.redis", "brackets", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://:6379'}}", &errs), &errs, "shared_limits.redis", "host", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://x', 'lease_mss': 5}}", &errs), &errs, "shared_limits.lease_mss",
                    "lease_ms", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://x', 'timeout_ms': 1000}}", &errs), &errs, "shared_limits.timeout_ms",
                    "less than", NULL);
    assert_rejected(parse("{" BASE ", 'shared_limits': {'redis': 'redis://x', 'expected_instances': 0}}", &errs), &errs,
                    "shared_limits.expected_instances", NULL, NULL);
}

Test(config, pool_overload_and_retry_budget)
{
    tg_config_t *cfg = parse_ok("{" BASE "}");
    cr_assert_eq(cfg->pool.overload.adaptive, 1, "adaptive by default");
    cr_assert_float_eq(cfg->pool.overload.tolerance, 1.5, 1e-12);
    cr_assert_float_eq(cfg->pool.retry_budget.ratio, 0.1, 1e-12);
    cr_assert_float_eq(cfg->pool.retry_budget.min_per_s, 3, 1e-12);
    cr_assert_eq(cfg->pool.retry_budget.window_ms, 10000);
    tg_config_free(cfg);
    cfg = parse_ok("{" BASE ", 'pool': {'overload': false}}");
    cr_assert_eq(cfg->pool.overload.adaptive, 0);
    tg_config_free(cfg);
    cfg = parse_ok("{" BASE ", 'pool': {'overload': {'tolerance': 2.5},"
                   " 'retry_budget': {'ratio': 0.2, 'min_per_s': 0, 'window_ms': 5000}}}");
    cr_assert_eq(cfg->pool.overload.adaptive, 1);
    cr_assert_float_eq(cfg->pool.overload.tolerance, 2.5, 1e-12);
    cr_assert_float_eq(cfg->pool.retry_budget.ratio, 0.2, 1e-12);
    cr_assert_float_eq(cfg->pool.retry_budget.min_per_s, 0, 1e-12);
    cr_assert_eq(cfg->pool.retry_budget.window_ms, 5000);
    tg_config_free(cfg);
    cfg = parse_ok("{" BASE ", 'pool': {'overload': {'adaptive': false, 'tolerance': 3}}}");
    cr_assert_eq(cfg->pool.overload.adaptive, 0);
    tg_config_free(cfg);
    expect_error("{" BASE ", 'pool': {'overload': 1}}", "pool.overload: must be false, true or an object", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'overload': {'adaptive': 'yes'}}}", "pool.overload.adaptive: must be true or false", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'overload': {'tolerance': 0.5}}}", "pool.overload.tolerance: must be a number between 1 and 100",
                 NULL, NULL);
    expect_error("{" BASE ", 'pool': {'overload': {'tolrance': 2}}}", "pool.overload.tolrance: unknown field (did you mean \"tolerance\"?)",
                 NULL, NULL);
    expect_error("{" BASE ", 'pool': {'retry_budget': {'ratio': -1}}}", "pool.retry_budget.ratio: must be a number", NULL, NULL);
    expect_error("{" BASE ", 'pool': {'retry_budget': {'window_ms': 1}}}", "pool.retry_budget.window_ms: must be an integer", NULL,
                 NULL);
    expect_error("{" BASE ", 'pool': {'retry_budget': true}}", "pool.retry_budget: must be an object", NULL, NULL);
}

/* Tests of gateway/catalog.c: types and methods, catalog entries, their errors, placeholders, files and folders. */
#include "config_fixture.h"

TestSuite(catalog, .init = make_dir, .fini = remove_dir);

#define CONFIG_WITH(catalog) "{'listen': [{'host': '127.0.0.1', 'port': 8080}], 'primary': 'dbname=app', 'catalog': [" catalog "]}"

/* loads `catalog` as <dir>/catalog.json under a minimal config */
static tg_config_t *load(const char *catalog, tg_errors_t *errs)
{
    write_file("catalog.json", catalog);
    return parse_config(CONFIG_WITH("'catalog.json'"), errs);
}

static void expect_error(const char *catalog, const char *a, const char *b, const char *c)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = load(catalog, &errs);
    if (cfg != NULL || find_error(&errs, a, b, c) == NULL)
        dump(&errs);
    cr_assert_null(cfg, "expected the catalog to be rejected");
    cr_assert_not_null(find_error(&errs, a, b, c), "no error mentions \"%s\" / \"%s\" / \"%s\"", a, b ? b : "", c ? c : "");
    tg_errors_dispose(&errs);
}

/* `errs` holds the `n` messages of `want` (each found by its start or a part of it) and no other; disposed of */
static void expect_exactly(tg_errors_t *errs, const char *const *want, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (find_error(errs, want[i], NULL, NULL) == NULL)
            dump(errs);
        cr_assert_not_null(find_error(errs, want[i], NULL, NULL), "missing: %s", want[i]);
    }
    cr_assert_eq(errs->n, n);
    tg_errors_dispose(errs);
}

static tg_config_t *load_ok(const char *catalog)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = load(catalog, &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg, "expected the catalog to load");
    cr_assert_eq(errs.n, 0);
    return cfg;
}

/* one query entry in a catalog, from its members */
#define Q(members) "{'queries': [{" members "}]}"
/* the members every entry needs, for a read */
#define READ(name, route, sql) "'name': '" name "', 'route': '" route "', 'sql': '" sql "', 'returns': 'many', 'access': 'read'"
#define WRITE(name, route, sql) "'name': '" name "', 'route': '" route "', 'sql': '" sql "', 'returns': 'none', 'access': 'write'"

/* --- types and methods --- */

Test(catalog, type_table)
{
    static const struct {
        const char *name;
        tg_type_t t;
        unsigned oid, array_oid;
    } want[] = {
        {"int2", TG_TYPE_INT2, 21, 1005},
        {"int4", TG_TYPE_INT4, 23, 1007},
        {"int8", TG_TYPE_INT8, 20, 1016},
        {"float4", TG_TYPE_FLOAT4, 700, 1021},
        {"float8", TG_TYPE_FLOAT8, 701, 1022},
        {"numeric", TG_TYPE_NUMERIC, 1700, 1231},
        {"text", TG_TYPE_TEXT, 25, 1009},
        {"bool", TG_TYPE_BOOL, 16, 1000},
        {"uuid", TG_TYPE_UUID, 2950, 2951},
        {"date", TG_TYPE_DATE, 1082, 1182},
        {"timestamptz", TG_TYPE_TIMESTAMPTZ, 1184, 1185},
        {"json", TG_TYPE_JSON, 114, 199},
        {"jsonb", TG_TYPE_JSONB, 3802, 3807},
    };
    cr_assert_eq(sizeof(want) / sizeof(want[0]), TG_TYPE__COUNT);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); ++i) {
        cr_assert_str_eq(tg_type_name(want[i].t), want[i].name);
        cr_assert_eq(tg_type_from_name(want[i].name, strlen(want[i].name)), (int)want[i].t, "%s", want[i].name);
        cr_assert_eq(tg_type_oid(want[i].t, 0), want[i].oid, "%s", want[i].name);
        cr_assert_eq(tg_type_oid(want[i].t, 1), want[i].array_oid, "%s[]", want[i].name);
    }
    cr_assert_eq(tg_type_from_name("int9", 4), -1);
    cr_assert_eq(tg_type_from_name("int4[]", 6), -1);
    cr_assert_eq(tg_type_from_name("int", 3), -1);
    cr_assert_eq(tg_type_from_name("INT4", 4), -1);
    cr_assert_eq(tg_type_from_name("int4x", 4), TG_TYPE_INT4, "only `len` bytes count");
    cr_assert_eq(tg_type_from_name("", 0), -1);
}

Test(catalog, method_table)
{
    const char *names[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    tg_method_t ms[] = {TG_METHOD_GET, TG_METHOD_POST, TG_METHOD_PUT, TG_METHOD_PATCH, TG_METHOD_DELETE};
    for (size_t i = 0; i < 5; ++i) {
        cr_assert_str_eq(tg_method_name(ms[i]), names[i]);
        cr_assert_eq(tg_method_from_name(names[i], strlen(names[i])), (int)ms[i]);
    }
    cr_assert_eq(tg_method_from_name("get", 3), -1);
    cr_assert_eq(tg_method_from_name("HEAD", 4), -1);
    cr_assert_eq(tg_method_from_name("GETS", 4), -1);
    cr_assert_eq(tg_method_from_name("POSTX", 4), TG_METHOD_POST);
}

/* --- what loads --- */

Test(catalog, spec_example_entry)
{
    tg_config_t *cfg = load_ok("{'queries': [\n"
                               "  {\n"
                               "    'name': 'get_user',\n"
                               "    'route': 'GET /users/{id}',\n"
                               "    'description': 'One user by id',\n"
                               "    'sql': 'SELECT id, email, name, settings FROM users WHERE id = $1',\n"
                               "    'params': [{'name': 'id', 'type': 'int8', 'min': 1}],\n"
                               "    'returns': 'one',\n"
                               "    'access': 'read',\n"
                               "    'timeout_ms': 2000,\n"
                               "    'cost': 1,\n"
                               "    'max_in_flight': 0,\n"
                               "    'priority': null,\n"
                               "    'cache': {'ttl_ms': 1000, 'stale_ms': 5000},\n"
                               "    'invalidates': [],\n"
                               "    'enabled': true\n"
                               "  }\n"
                               "]}");
    cr_assert_eq(cfg->n_queries, 1);
    const tg_query_t *q = cfg->queries;
    cr_assert_eq(q->index, 0);
    cr_assert_str_eq(q->name, "get_user");
    cr_assert_str_eq(q->description, "One user by id");
    cr_assert_eq(q->method, TG_METHOD_GET);
    cr_assert_str_eq(q->path, "/users/{id}");
    cr_assert_str_eq(q->sql, "SELECT id, email, name, settings FROM users WHERE id = $1");
    cr_assert_eq(q->n_params, 1);
    const tg_param_t *p = q->params;
    cr_assert_str_eq(p->name, "id");
    cr_assert_eq(p->type, TG_TYPE_INT8);
    cr_assert_eq(p->is_array, 0);
    cr_assert_eq(p->required, 1);
    cr_assert_eq(p->source, TG_SOURCE_PATH);
    cr_assert_eq(p->path_index, 0);
    cr_assert_eq(p->has_default, 0);
    cr_assert_null(p->default_text);
    cr_assert_eq(p->has_min, 1);
    cr_assert_eq(p->imin, 1);
    cr_assert_float_eq(p->min, 1.0, 1e-12);
    cr_assert_eq(p->has_max, 0);
    cr_assert_eq(p->max_length, -1);
    cr_assert_null(p->enum_values);
    cr_assert_eq(p->n_enum, 0);
    cr_assert_eq(q->returns, TG_RETURNS_ONE);
    cr_assert_eq(q->access, TG_ACCESS_READ);
    cr_assert_eq(q->timeout_ms, 2000);
    cr_assert_eq(q->cost, 1);
    cr_assert_eq(q->max_in_flight, 0);
    cr_assert_eq(q->priority, TG_PRIORITY_INHERIT);
    cr_assert_eq(q->cached, 1);
    cr_assert_eq(q->cache_ttl_ms, 1000);
    cr_assert_eq(q->cache_stale_ms, 5000);
    cr_assert_eq(q->n_invalidates, 0);
    cr_assert_eq(q->enabled, 1);
    char want[1024];
    snprintf(want, sizeof(want), "%s/catalog.json", dir);
    cr_assert_str_eq(q->file, want);
    cr_assert_eq(q->line, 3);
    cr_assert_not_null(cfg->router);
    cr_assert_eq(tg_config_find_query(cfg, "get_user"), q);
    tg_config_free(cfg);
}

Test(catalog, defaults)
{
    write_file("catalog.json", Q(WRITE("touch", "POST /touch", "SELECT 1")));
    tg_errors_t errs = {0};
    tg_config_t *cfg = parse_config("{'listen': [{'host': 'h', 'port': 1}], 'primary': 'x', 'default_timeout_ms': 1234,"
                                    " 'catalog': ['catalog.json']}",
                                    &errs);
    cr_assert_not_null(cfg);
    const tg_query_t *q = cfg->queries;
    cr_assert_null(q->description);
    cr_assert_eq(q->n_params, 0);
    cr_assert_eq(q->returns, TG_RETURNS_NONE);
    cr_assert_eq(q->access, TG_ACCESS_WRITE);
    cr_assert_eq(q->timeout_ms, 1234);
    cr_assert_eq(q->cost, 1);
    cr_assert_eq(q->max_in_flight, 0);
    cr_assert_eq(q->priority, TG_PRIORITY_INHERIT);
    cr_assert_eq(q->cached, 0);
    cr_assert_eq(q->n_invalidates, 0);
    cr_assert_eq(q->enabled, 1);
    cr_assert_eq(q->line, 1);
    tg_config_free(cfg);
}

Test(catalog, explicit_values)
{
    tg_config_t *cfg = load_ok(
        "{'queries': [\n"
        "{" READ("c", "GET /c",
                 "SELECT 1") ", 'cache': {'ttl_ms': 50}},\n"
                             "{" WRITE(
                                 "w", "PATCH /w",
                                 "SELECT 1") ", 'timeout_ms': 99, 'cost': 7, 'max_in_flight': 3,"
                                             " 'priority': 'low', 'invalidates': ['c'], 'enabled': false, 'description': null},\n"
                                             "{" READ("h", "GET /h",
                                                      "SELECT 1") ", 'priority': 'high', 'cache': null, 'params': null}\n"
                                                                  "]}");
    cr_assert_eq(cfg->n_queries, 3);
    const tg_query_t *c = tg_config_find_query(cfg, "c"), *w = tg_config_find_query(cfg, "w"), *h = tg_config_find_query(cfg, "h");
    cr_assert_eq(c->cached, 1);
    cr_assert_eq(c->cache_ttl_ms, 50);
    cr_assert_eq(c->cache_stale_ms, 0);
    cr_assert_eq(c->returns, TG_RETURNS_MANY);
    cr_assert_eq(w->method, TG_METHOD_PATCH);
    cr_assert_eq(w->timeout_ms, 99);
    cr_assert_eq(w->cost, 7);
    cr_assert_eq(w->max_in_flight, 3);
    cr_assert_eq(w->priority, TG_PRIORITY_LOW);
    cr_assert_eq(w->n_invalidates, 1);
    cr_assert_str_eq(w->invalidates[0], "c");
    cr_assert_eq(w->enabled, 0);
    cr_assert_null(w->description);
    cr_assert_eq(h->priority, TG_PRIORITY_HIGH);
    cr_assert_eq(h->cached, 0);
    cr_assert_eq(c->line, 2);
    cr_assert_eq(w->line, 3);
    cr_assert_eq(h->line, 4);
    cr_assert_eq(h->index, 2);
    tg_config_free(cfg);
}

Test(catalog, parameter_sources)
{
    tg_config_t *cfg = load_ok(
        "{'queries': [\n"
        "{" READ(
            "g", "GET /g/{b}/x/{a}",
            "SELECT $1, $2, $3") ", 'params': [{'name': 'q', 'type': 'text'}, {'name': 'a', 'type': 'int4'}, {'name': 'b', 'type': "
                                 "'uuid'}]},\n"
                                 "{" WRITE(
                                     "d", "DELETE /d",
                                     "SELECT $1") ", 'params': [{'name': 'q', 'type': 'int4'}]},\n"
                                                  "{" WRITE(
                                                      "p", "POST /p",
                                                      "SELECT $1") ", 'params': [{'name': 'q', 'type': 'int4'}]},\n"
                                                                   "{" WRITE(
                                                                       "u", "PUT /u/{id}",
                                                                       "SELECT $1, $2") ", 'params': [{'name': 'id', 'type': "
                                                                                        "'int4'}, {'name': 'body', 'type': "
                                                                                        "'jsonb'}]},\n"
                                                                                        "{" WRITE(
                                                                                            "pa", "PATCH /pa",
                                                                                            "SELECT $1") ", 'params': [{'name': "
                                                                                                         "'q', 'type': 'int4'}]}\n"
                                                                                                         "]}");
    const tg_query_t *g = tg_config_find_query(cfg, "g");
    cr_assert_eq(g->params[0].source, TG_SOURCE_QUERY);
    cr_assert_eq(g->params[1].source, TG_SOURCE_PATH);
    cr_assert_eq(g->params[1].path_index, 1, "a is the route's second {param}");
    cr_assert_eq(g->params[2].source, TG_SOURCE_PATH);
    cr_assert_eq(g->params[2].path_index, 0);
    cr_assert_eq(tg_config_find_query(cfg, "d")->params[0].source, TG_SOURCE_QUERY);
    cr_assert_eq(tg_config_find_query(cfg, "p")->params[0].source, TG_SOURCE_BODY);
    cr_assert_eq(tg_config_find_query(cfg, "pa")->params[0].source, TG_SOURCE_BODY);
    const tg_query_t *u = tg_config_find_query(cfg, "u");
    cr_assert_eq(u->params[0].source, TG_SOURCE_PATH);
    cr_assert_eq(u->params[0].path_index, 0);
    cr_assert_eq(u->params[1].source, TG_SOURCE_BODY);
    cr_assert_eq(u->params[1].type, TG_TYPE_JSONB);
    tg_config_free(cfg);
}

Test(catalog, sql_lines_are_joined)
{
    tg_config_t *cfg =
        load_ok(Q("'name': 'q', 'route': 'GET /q', 'sql': ['SELECT a', '  FROM t', 'WHERE a = $1', ''], 'returns': 'many',"
                  " 'access': 'read', 'params': [{'name': 'a', 'type': 'int4'}]"));
    cr_assert_str_eq(cfg->queries[0].sql, "SELECT a\n  FROM t\nWHERE a = $1\n");
    tg_config_free(cfg);
}

Test(catalog, sql_file_is_relative_to_the_catalog_file)
{
    tg_errors_t errs = {0};
    write_file("cat/sql/q.sql", "SELECT *\nFROM t WHERE id = $1\n");
    write_file("cat/q.json", Q("'name': 'q', 'route': 'GET /q/{id}', 'sql_file': 'sql/q.sql', 'returns': 'one', 'access': 'read',"
                               " 'params': [{'name': 'id', 'type': 'int8'}]"));
    tg_config_t *cfg = parse_config(CONFIG_WITH("'cat/q.json'"), &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    cr_assert_str_eq(cfg->queries[0].sql, "SELECT *\nFROM t WHERE id = $1\n");
    tg_config_free(cfg);
}

Test(catalog, folder_catalog_reads_json_files_in_name_order)
{
    tg_errors_t errs = {0};
    write_file("cat/b.json", Q(READ("from_b", "GET /b", "SELECT 1")));
    write_file("cat/a.json",
               "{'queries': [{" READ("from_a1", "GET /a1", "SELECT 1") "}, {" READ("from_a2", "GET /a2", "SELECT 1") "}]}");
    write_file("cat/c.json", Q(READ("from_c", "GET /c", "SELECT 1")));
    write_file("cat/c.json.bak", "not json");
    write_file("cat/notes.txt", "not json");
    write_file("cat/sub/d.json", Q(READ("from_sub", "GET /d", "SELECT 1")));
    write_file("other.json", Q(READ("from_other", "GET /o", "SELECT 1")));
    tg_config_t *cfg = parse_config(CONFIG_WITH("'cat', 'other.json'"), &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    /* created b, a, c: neither creation order nor its reverse is name order */
    cr_assert_eq(cfg->n_queries, 5);
    cr_assert_str_eq(cfg->queries[0].name, "from_a1");
    cr_assert_str_eq(cfg->queries[1].name, "from_a2");
    cr_assert_str_eq(cfg->queries[2].name, "from_b");
    cr_assert_str_eq(cfg->queries[3].name, "from_c");
    cr_assert_str_eq(cfg->queries[4].name, "from_other");
    cr_assert_null(tg_config_find_query(cfg, "from_sub"), "folders are not read recursively");
    char want[1024];
    snprintf(want, sizeof(want), "%s/cat/b.json", dir);
    cr_assert_str_eq(cfg->queries[2].file, want);
    for (size_t i = 0; i < 5; ++i)
        cr_assert_eq(cfg->queries[i].index, i);
    tg_config_free(cfg);
}

Test(catalog, folder_order_is_byte_order_of_names)
{
    static const char *const created[] = {"zz", "30-y", "05-x", "m", "A", "_u", "1-z", "k9"};
    static const char *const sorted[] = {"05-x", "1-z", "30-y", "A", "_u", "k9", "m", "zz"};
    tg_errors_t errs = {0};
    char name[1024], text[256];

    for (size_t i = 0; i < 8; ++i) {
        snprintf(name, sizeof(name), "cat/%s.json", created[i]);
        snprintf(text, sizeof(text),
                 Q("'name': 'q%zu', 'route': 'GET /r%zu', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'"), i, i);
        write_file(name, text);
    }
    tg_config_t *cfg = parse_config(CONFIG_WITH("'cat/'"), &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    cr_assert_eq(cfg->n_queries, 8);
    for (size_t i = 0; i < 8; ++i) {
        snprintf(name, sizeof(name), "%s/cat/%s.json", dir, sorted[i]);
        cr_assert_str_eq(cfg->queries[i].file, name);
    }
    tg_config_free(cfg);
}

Test(catalog, a_file_named_twice_is_read_once)
{
    tg_errors_t errs = {0};
    write_file("cat/a.json", Q(READ("a", "GET /a", "SELECT 1")));
    write_file("cat/b.json", Q(READ("b", "GET /b", "SELECT 1")));
    tg_config_t *cfg = parse_config(CONFIG_WITH("'cat/b.json', 'cat', './cat/../cat/a.json'"), &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    cr_assert_eq(cfg->n_queries, 2);
    cr_assert_str_eq(cfg->queries[0].name, "b");
    cr_assert_str_eq(cfg->queries[1].name, "a");
    tg_config_free(cfg);
}

Test(catalog, entry_lines_follow_the_name_member)
{
    tg_config_t *cfg = load_ok("{\n"
                               "  'queries': [\n"
                               "    {'route': 'GET /a',\n"
                               "     'params': [{'name': 'x', 'type': 'int4'},\n"
                               "                {'name': 'y', 'type': 'int4'}],\n"
                               "     'sql': 'SELECT $1, $2 -- \\'name\\': {',\n"
                               "     'name': 'a', 'returns': 'one', 'access': 'read'},\n"
                               "\n"
                               "    {'name': 'b', 'route': 'GET /b', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'},\n"
                               "    {\n"
                               "      'name':\n"
                               "        'c', 'route': 'GET /c', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'}\n"
                               "  ]\n"
                               "}\n");
    cr_assert_eq(cfg->n_queries, 3);
    cr_assert_eq(cfg->queries[0].line, 7);
    cr_assert_eq(cfg->queries[1].line, 9);
    cr_assert_eq(cfg->queries[2].line, 11);
    tg_config_free(cfg);
}

Test(catalog, bounds_enum_default_and_arrays)
{
    tg_config_t *cfg =
        load_ok(Q("'name': 'q', 'route': 'GET /q', 'returns': 'many', 'access': 'read',"
                  " 'sql': 'SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9',"
                  " 'params': ["
                  "  {'name': 'big', 'type': 'int8', 'min': -9007199254740993, 'max': 9223372036854775807},"
                  "  {'name': 'f', 'type': 'float8', 'min': -1.5, 'max': 2.25},"
                  "  {'name': 'lim', 'type': 'int4', 'default': 20, 'min': 1, 'max': 100},"
                  "  {'name': 'status', 'type': 'text', 'enum': ['open', 'closed'], 'default': 'open', 'max_length': 10},"
                  "  {'name': 'ids', 'type': 'int4[]', 'default': [1, 2], 'max': 5},"
                  "  {'name': 'opt', 'type': 'text', 'required': false},"
                  "  {'name': 'nul', 'type': 'date', 'default': null},"
                  "  {'name': 'tags', 'type': 'text[]', 'max_length': 3, 'required': true},"
                  "  {'name': 'n', 'type': 'numeric', 'min': 0}"
                  "]"));
    const tg_param_t *p = cfg->queries[0].params;
    cr_assert_eq(cfg->queries[0].n_params, 9);

    cr_assert_eq(p[0].has_min, 1);
    cr_assert_eq(p[0].has_max, 1);
    cr_assert_eq(p[0].imin, -9007199254740993LL, "integer bounds are exact");
    cr_assert_eq(p[0].imax, INT64_MAX);

    cr_assert_float_eq(p[1].min, -1.5, 1e-12);
    cr_assert_float_eq(p[1].max, 2.25, 1e-12);

    cr_assert_eq(p[2].has_default, 1);
    cr_assert_str_eq(p[2].default_text, "20");
    cr_assert_eq(p[2].required, 0);
    cr_assert_eq(p[2].imin, 1);
    cr_assert_eq(p[2].imax, 100);
    cr_assert_float_eq(p[2].max, 100.0, 1e-12);

    cr_assert_eq(p[3].n_enum, 2);
    cr_assert_str_eq(p[3].enum_values[0], "open");
    cr_assert_str_eq(p[3].enum_values[1], "closed");
    cr_assert_str_eq(p[3].default_text, "open");
    cr_assert_eq(p[3].max_length, 10);

    cr_assert_eq(p[4].type, TG_TYPE_INT4);
    cr_assert_eq(p[4].is_array, 1);
    cr_assert_eq(p[4].has_default, 1);
    cr_assert_not_null(p[4].default_text);
    cr_assert_not_null(strchr(p[4].default_text, '{'), "an array default is an array literal: %s", p[4].default_text);
    cr_assert_eq(p[4].imax, 5);

    cr_assert_eq(p[5].required, 0);
    cr_assert_eq(p[5].has_default, 0);

    cr_assert_eq(p[6].has_default, 1);
    cr_assert_null(p[6].default_text, "a null default is SQL NULL");
    cr_assert_eq(p[6].required, 0);

    cr_assert_eq(p[7].is_array, 1);
    cr_assert_eq(p[7].type, TG_TYPE_TEXT);
    cr_assert_eq(p[7].max_length, 3);
    cr_assert_eq(p[7].required, 1);

    cr_assert_eq(p[8].type, TG_TYPE_NUMERIC);
    cr_assert_eq(p[8].has_min, 1);
    cr_assert_eq(p[8].has_max, 0);
    tg_config_free(cfg);
}

Test(catalog, placeholders_in_literals_and_comments_do_not_count)
{
    /* in JSON: \\n is a newline in the SQL, \\' a quote; ` becomes ' */
    tg_config_t *cfg = load_ok(Q("'name': 'q', 'route': 'GET /q', 'returns': 'many', 'access': 'read',"
                                 " 'params': [{'name': 'a', 'type': 'int4'}, {'name': 'b', 'type': 'int4'}],"
                                 " 'sql': ['SELECT `$3`, `it``s $4`, E`\\\\`$5`, \\\"$6\\\", \\\"a\\\"\\\"$7\\\",',"
                                 "         '$$ $8 $$, $fn$ $9 $x$ $10 $fn$, col$11, -- $12',"
                                 "         '/* $13 /* $14 */ $15 */ $2 + $1']"));
    cr_assert_str_eq(cfg->queries[0].sql, "SELECT '$3', 'it''s $4', E'\\'$5', \"$6\", \"a\"\"$7\",\n"
                                          "$$ $8 $$, $fn$ $9 $x$ $10 $fn$, col$11, -- $12\n"
                                          "/* $13 /* $14 */ $15 */ $2 + $1");
    tg_config_free(cfg);
}

/* --- errors: the entry as a whole --- */

Test(catalog, catalog_file_syntax_error)
{
    expect_error("{'queries': [\n  {'name': 'q',\n   'route': 'GET /q' 'sql': 'x'}\n]}", "catalog.json:3: invalid JSON", NULL,
                 NULL);
}

Test(catalog, catalog_file_shape)
{
    expect_error("[]", "catalog.json:", "must be an object", NULL);
    expect_error("{}", "catalog.json:1: queries: required", NULL, NULL);
    expect_error("{'queries': {}}", "catalog.json:1: queries: must be an array", NULL, NULL);
    expect_error("{'queries': [], 'version': 2}", "catalog.json:1: version: unknown field (a catalog file holds only \"queries\")", NULL,
                 NULL);
    expect_error("{'queries': [],\n 'querys': []}", "catalog.json:2: querys: unknown field (did you mean \"queries\"?)", NULL, NULL);
    expect_error("{'queries': [42]}", "catalog.json:1: queries[0]: must be an object", NULL, NULL);
}

Test(catalog, missing_sql_file_names_the_path)
{
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql_file': 'nope.sql', 'returns': 'one', 'access': 'read'"),
                 "catalog.json:1: queries[0] (q).sql_file: cannot read", "nope.sql", "No such file");
}

Test(catalog, empty_files)
{
    write_file("empty.sql", "");
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql_file': 'empty.sql', 'returns': 'one', 'access': 'read'"),
                 "queries[0] (q).sql_file: is empty", NULL, NULL);
    expect_error("", "catalog.json:", "invalid JSON", NULL);
}

Test(catalog, sql_and_sql_file_both_or_neither)
{
    write_file("x.sql", "SELECT 1");
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'sql_file': 'x.sql'"), "queries[0] (q).sql_file: give either sql or sql_file",
                 NULL, NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'returns': 'one', 'access': 'read'"), "queries[0] (q).sql: required", NULL,
                 NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': '  \\n ', 'returns': 'one', 'access': 'read'"),
                 "queries[0] (q).sql: is empty", NULL, NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': 7, 'returns': 'one', 'access': 'read'"), "queries[0] (q).sql: must be",
                 NULL, NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': ['SELECT', 1], 'returns': 'one', 'access': 'read'"),
                 "queries[0] (q).sql[1]: must be a string", NULL, NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': [], 'returns': 'one', 'access': 'read'"), "queries[0] (q).sql: must be",
                 NULL, NULL);
}

Test(catalog, unknown_fields_name_the_line)
{
    expect_error("{'queries': [\n"
                 "  {" READ("a", "GET /a", "SELECT 1") "},\n"
                                                       "  {" READ("b", "GET /b", "SELECT 1") ",\n"
                                                                                             "   'colour': 'red'}\n"
                                                                                             "]}",
                 "catalog.json:4: queries[1] (b).colour: unknown field", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'a', 'type': 'int4', 'nullable': true}]"),
                 "queries[0] (q).params[0].nullable: unknown field", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': {'ttl_ms': 1, 'ttl': 2}"), "queries[0] (q).cache.ttl: unknown field",
                 NULL, NULL);
}

Test(catalog, errors_name_the_line_of_the_field_itself)
{
    tg_errors_t errs = {0};
    /* the same keys in both entries and both parameters: each error is on its own field's line, whatever came before */
    cr_assert_null(load("{'queries': [\n"                                                                   /* 1 */
                        "  {'name': 'a', 'route': 'GET /a', 'sql': 'SELECT $1, $2', 'returns': 'many',\n"  /* 2 */
                        "   'access': 'read', 'timeout_ms': 5,\n"                                          /* 3 */
                        "   'params': [{'name': 'x', 'type': 'int4', 'max': 5},\n"                         /* 4 */
                        "              {'name': 'y', 'type': 'int4',\n"                                    /* 5 */
                        "               'max': 'big'}]},\n"                                                /* 6 */
                        "  {'name': 'b',\n"                                                               /* 7 */
                        "   'route': 'GET /a',\n"                                                         /* 8 */
                        "   'sql': 'SELECT 1', 'returns': 'many', 'access': 'read',\n"                     /* 9 */
                        "   'timout_ms': 5},\n"                                                           /* 10 */
                        "  {'name': 'a', 'route': 'GET /c', 'sql': 'SELECT 1',\n"                         /* 11 */
                        "   'returns': 'many', 'access': 'read'}\n"                                       /* 12 */
                        "]}",
                        &errs));
    const char *want[] = {
        "catalog.json:6: queries[0] (a).params[1] (y).max: must be an integer",
        "catalog.json:10: queries[1] (b).timout_ms: unknown field (did you mean \"timeout_ms\"?)",
        "catalog.json:11: queries[2] (a).name: duplicate query name, first defined at ",
        "catalog.json:8: queries[1] (b).route: \"GET /a\" is already taken by query a",
    };
    expect_exactly(&errs, want, sizeof(want) / sizeof(want[0]));
}

Test(catalog, wrong_types)
{
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'timeout_ms': '1000'"), "queries[0] (q).timeout_ms: must be an integer", NULL,
                 NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'enabled': 'yes'"), "queries[0] (q).enabled: must be true or false", NULL,
                 NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'description': 5"), "queries[0] (q).description: must be a string", NULL,
                 NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'params': {}"), "queries[0] (q).params: must be an array", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'params': ['a']"), "queries[0] (q).params[0]: must be an object", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': 1000"), "queries[0] (q).cache: must be null or an object", NULL,
                 NULL);
    expect_error(Q(WRITE("q", "POST /q", "SELECT 1") ", 'invalidates': 'x'"), "queries[0] (q).invalidates: must be an array", NULL,
                 NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': 'SELECT 1', 'returns': 'all', 'access': 'read'"),
                 "queries[0] (q).returns: must be \"one\", \"many\" or \"none\"", NULL, NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'rw'"),
                 "queries[0] (q).access: must be \"read\" or \"write\"", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'priority': 'urgent'"),
                 "queries[0] (q).priority: must be null, \"high\" or \"low\"", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'a', 'type': 'int4', 'required': 'no'}]"),
                 "queries[0] (q).params[0] (a).required: must be true or false", NULL, NULL);
}

Test(catalog, missing_required_fields)
{
    expect_error(Q("'route': 'GET /q', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'"),
                 "catalog.json:1: queries[0].name: required", NULL, NULL);
    expect_error(Q("'name': 'q', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'"), "queries[0] (q).route: required", NULL,
                 NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': 'SELECT 1', 'access': 'read'"), "queries[0] (q).returns: required", NULL,
                 NULL);
    expect_error(Q("'name': 'q', 'route': 'GET /q', 'sql': 'SELECT 1', 'returns': 'one'"), "queries[0] (q).access: required", NULL,
                 NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'type': 'int4'}]"), "queries[0] (q).params[0].name: required",
                 NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'a'}]"), "queries[0] (q).params[0] (a).type: required",
                 NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': {'stale_ms': 5}"), "queries[0] (q).cache.ttl_ms: required", NULL,
                 NULL);
}

Test(catalog, bad_names)
{
    expect_error(Q(READ("get-user", "GET /q", "SELECT 1")), "queries[0].name: must be a name", NULL, NULL);
    expect_error(Q(READ("", "GET /q", "SELECT 1")), "queries[0].name: must be a name", NULL, NULL);
    expect_error(Q(READ("a234567890123456789012345678901234567890123456789012345678901234", "GET /q", "SELECT 1")),
                 "queries[0].name:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'a b', 'type': 'int4'}]"),
                 "queries[0] (q).params[0].name: must be a name", NULL, NULL);
}

Test(catalog, duplicate_query_name_across_files)
{
    tg_errors_t errs = {0};
    write_file("a.json", "{'queries': [\n{" READ("q", "GET /a", "SELECT 1") "}]}");
    write_file("b.json", "{'queries': [\n{" READ("r", "GET /r", "SELECT 1") "},\n{" READ("q", "GET /b", "SELECT 1") "}]}");
    cr_assert_null(parse_config(CONFIG_WITH("'a.json', 'b.json'"), &errs));
    char want[1024];
    snprintf(want, sizeof(want), "b.json:3: queries[1] (q).name: duplicate query name, first defined at %s/a.json:2", dir);
    if (find_error(&errs, want, NULL, NULL) == NULL)
        dump(&errs);
    cr_assert_not_null(find_error(&errs, want, NULL, NULL));
    cr_assert_eq(errs.n, 1);
    tg_errors_dispose(&errs);
}

Test(catalog, duplicate_route)
{
    tg_errors_t errs = {0};
    cr_assert_null(load("{'queries': [{" READ("first", "GET /users/{id}",
                                              "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4'}]},"
                                                           " {" READ("second", "GET /users/{id}",
                                                                     "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4'}]}]}",
                        &errs));
    if (find_error(&errs, "first", "second", NULL) == NULL)
        dump(&errs);
    cr_assert_not_null(find_error(&errs, "first", "second", NULL), "the router names both queries");

    /* the same path with another method is fine */
    tg_config_t *cfg =
        load_ok("{'queries': [{" READ("first", "GET /users", "SELECT 1") "}, {" WRITE("second", "POST /users", "SELECT 1") "}]}");
    tg_config_free(cfg);
    tg_errors_dispose(&errs);
}

Test(catalog, duplicate_route_is_reported_with_other_errors)
{
    tg_errors_t errs = {0};
    cr_assert_null(load("{'queries': [{" READ("first", "GET /u", "SELECT 1") "}, {" READ(
                            "second", "GET /u", "SELECT 1") "},"
                                                            " {" READ("third", "GET /t", "SELECT $1") "}]}",
                        &errs));
    cr_assert_not_null(find_error(&errs, "queries[2] (third).sql: $1", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "first", "second", NULL), "the router still checked the good routes");
    tg_errors_dispose(&errs);
}

/* --- errors: routes --- */

Test(catalog, bad_routes)
{
    expect_error(Q(READ("q", "FETCH /q", "SELECT 1")), "queries[0] (q).route: unknown method \"FETCH\"", NULL, NULL);
    expect_error(Q(READ("q", "get /q", "SELECT 1")), "queries[0] (q).route: unknown method", NULL, NULL);
    expect_error(Q(READ("q", "GET q", "SELECT 1")), "queries[0] (q).route: the path must start with '/'", NULL, NULL);
    expect_error(Q(READ("q", "GET /healthz", "SELECT 1")), "queries[0] (q).route: /healthz is a built-in endpoint", NULL, NULL);
    expect_error(Q(READ("q", "GET", "SELECT 1")), "queries[0] (q).route: must be a string \"METHOD /path\"", NULL, NULL);
    expect_error(Q(READ("q", "GET /q?x=1", "SELECT 1")), "queries[0] (q).route:", NULL, NULL);
    expect_error(Q(READ("q", "GET  /q", "SELECT 1")), "queries[0] (q).route:", NULL, NULL);
    expect_error(Q(READ("q", "GET /a//b", "SELECT 1")), "queries[0] (q).route: empty path segment", NULL, NULL);
    expect_error(Q(READ("q", "GET /users/x{id}", "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4'}]"),
                 "queries[0] (q).route: a path parameter must be a whole segment", "x{id}", NULL);
    expect_error(Q(READ("q", "GET /users/{}", "SELECT 1")), "queries[0] (q).route: a path parameter must be a whole segment", NULL,
                 NULL);
    expect_error(Q(READ("q", "GET /users/{id", "SELECT 1")), "queries[0] (q).route: a path parameter must be a whole segment", NULL,
                 NULL);
    expect_error(Q(READ("q", "GET /{id}/{id}", "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4'}]"),
                 "queries[0] (q).route: {id} appears twice", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'route': 5"), "invalid JSON", NULL, NULL); /* duplicate key */
    expect_error(Q("'name': 'q', 'route': 5, 'sql': 'SELECT 1', 'returns': 'one', 'access': 'read'"),
                 "queries[0] (q).route: must be", NULL, NULL);
}

Test(catalog, route_param_not_declared)
{
    expect_error(Q(READ("q", "GET /users/{id}/orders/{oid}", "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4'}]"),
                 "queries[0] (q).route: {oid} is not a declared parameter", NULL, NULL);
}

Test(catalog, path_params_cannot_be_arrays_json_or_optional)
{
    expect_error(Q(READ("q", "GET /u/{ids}", "SELECT $1") ", 'params': [{'name': 'ids', 'type': 'int4[]'}]"),
                 "queries[0] (q).params[0] (ids): a path parameter cannot be an array", NULL, NULL);
    expect_error(Q(READ("q", "GET /u/{doc}", "SELECT $1") ", 'params': [{'name': 'doc', 'type': 'jsonb'}]"),
                 "queries[0] (q).params[0] (doc): a path parameter cannot be json", NULL, NULL);
    expect_error(Q(READ("q", "GET /u/{id}", "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4', 'default': 1}]"),
                 "queries[0] (q).params[0] (id): a path parameter", NULL, NULL);
    expect_error(Q(READ("q", "GET /u/{id}", "SELECT $1") ", 'params': [{'name': 'id', 'type': 'int4', 'required': false}]"),
                 "queries[0] (q).params[0] (id): a path parameter", NULL, NULL);
}

/* --- errors: placeholders --- */

Test(catalog, placeholder_beyond_params)
{
    expect_error(Q(READ("q", "GET /q",
                        "SELECT $1, $3, $3, $2") ", 'params': [{'name': 'a', 'type': 'int4'}, {'name': 'b', 'type': 'int4'}]"),
                 "catalog.json:1: queries[0] (q).sql: $3 has no parameter (params declares 2)", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $0")), "queries[0] (q).sql: $0", NULL, NULL);

    tg_errors_t errs = {0};
    cr_assert_null(load(Q(READ("q", "GET /q", "SELECT $2, $2, $1, $2")), &errs));
    cr_assert_not_null(find_error(&errs, "queries[0] (q).sql: $1 has no parameter (params declares 0)", NULL, NULL));
    cr_assert_not_null(find_error(&errs, "queries[0] (q).sql: $2 has no parameter (params declares 0)", NULL, NULL));
    cr_assert_eq(errs.n, 2, "each missing parameter is reported once");
    tg_errors_dispose(&errs);
}

Test(catalog, unused_param)
{
    expect_error(
        Q(READ("q", "GET /q", "SELECT $1 -- $2") ", 'params': [{'name': 'a', 'type': 'int4'}, {'name': 'b', 'type': 'int4'}]"),
        "queries[0] (q).params[1] (b): not used: $2 does not appear in the SQL", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT `$1`") ", 'params': [{'name': 'a', 'type': 'int4'}]"),
                 "queries[0] (q).params[0] (a): not used", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $body$ $1 $body$") ", 'params': [{'name': 'a', 'type': 'int4'}]"),
                 "queries[0] (q).params[0] (a): not used", NULL, NULL);
}

/* --- errors: parameters --- */

Test(catalog, bad_type_name)
{
    expect_error("{'queries': [\n{" READ("q", "GET /q", "SELECT $1") ",\n 'params': [{'name': 'x', 'type': 'int9'}]}]}",
                 "catalog.json:3: queries[0] (q).params[0] (x).type: unknown type \"int9\"", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4[][]'}]"),
                 "queries[0] (q).params[0] (x).type: unknown type", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'varchar'}]"),
                 "queries[0] (q).params[0] (x).type: unknown type", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 4}]"),
                 "queries[0] (q).params[0] (x).type: must be a string", NULL, NULL);
}

Test(catalog, duplicate_param_name)
{
    expect_error(
        Q(READ("q", "GET /q", "SELECT $1, $2") ", 'params': [{'name': 'x', 'type': 'int4'}, {'name': 'x', 'type': 'text'}]"),
        "queries[0] (q).params[1].name: duplicate parameter \"x\"", NULL, NULL);
}

Test(catalog, bounds_only_on_numbers)
{
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'min': 1}]"),
                 "queries[0] (q).params[0] (x).min: only numeric parameters take bounds", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'date', 'max': 1}]"),
                 "queries[0] (q).params[0] (x).max: only numeric", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'min': 1.5}]"),
                 "queries[0] (q).params[0] (x).min: must be an integer", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int2', 'max': 40000}]"),
                 "queries[0] (q).params[0] (x).max: 40000 is out of range for int2", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'min': -2147483649}]"),
                 "queries[0] (q).params[0] (x).min:", "int4", NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'float8', 'min': '1'}]"),
                 "queries[0] (q).params[0] (x).min: must be a number", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int8', 'min': 10, 'max': 9}]"),
                 "queries[0] (q).params[0] (x).max: must not be less than min", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'numeric', 'min': 0.5, 'max': 0.25}]"),
                 "queries[0] (q).params[0] (x).max: must not be less than min", NULL, NULL);
}

Test(catalog, max_length_only_on_text)
{
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'max_length': 5}]"),
                 "queries[0] (q).params[0] (x).max_length: only text parameters", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'max_length': 0}]"),
                 "queries[0] (q).params[0] (x).max_length: must be an integer >= 1", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'max_length': '5'}]"),
                 "queries[0] (q).params[0] (x).max_length: must be an integer", NULL, NULL);
}

Test(catalog, bad_enums)
{
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'enum': []}]"),
                 "queries[0] (q).params[0] (x).enum: must be a non-empty array", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'enum': 'a'}]"),
                 "queries[0] (q).params[0] (x).enum: must be a non-empty array", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'enum': [1, 'two']}]"),
                 "queries[0] (q).params[0] (x).enum[1]:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'enum': [1, 50], 'max': 10}]"),
                 "queries[0] (q).params[0] (x).enum[1]:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'enum': ['a', null]}]"),
                 "queries[0] (q).params[0] (x).enum[1]: null", NULL, NULL);
}

Test(catalog, bad_defaults)
{
    expect_error(
        Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'min': 1, 'max': 10, 'default': 11}]"),
        "queries[0] (q).params[0] (x).default:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'default': 'ten'}]"),
                 "queries[0] (q).params[0] (x).default:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'text', 'enum': ['a'], 'default': 'b'}]"),
                 "queries[0] (q).params[0] (x).default:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4[]', 'default': 3}]"),
                 "queries[0] (q).params[0] (x).default:", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'required': true, 'default': 3}]"),
                 "queries[0] (q).params[0] (x).required: a parameter with a default is not required", NULL, NULL);

    /* required: false with a default is fine */
    tg_config_t *cfg =
        load_ok(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'x', 'type': 'int4', 'required': false, 'default': 3}]"));
    cr_assert_str_eq(cfg->queries[0].params[0].default_text, "3");
    cr_assert_eq(cfg->queries[0].params[0].required, 0);
    tg_config_free(cfg);
}

/* --- errors: cache and invalidates --- */

Test(catalog, cache_only_on_reads)
{
    expect_error(Q(WRITE("w", "POST /w", "SELECT 1") ", 'cache': {'ttl_ms': 1000}"), "queries[0] (w).cache: only read queries",
                 NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': {'ttl_ms': 0}"),
                 "queries[0] (q).cache.ttl_ms: must be an integer >= 1", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': {'ttl_ms': 10, 'stale_ms': -1}"),
                 "queries[0] (q).cache.stale_ms:", NULL, NULL);
}

Test(catalog, invalidates_must_name_cached_queries)
{
    expect_error("{'queries': [\n{" READ("plain", "GET /p", "SELECT 1") "},\n"
                                                                        "{" WRITE("w", "POST /w",
                                                                                  "SELECT 1") ", 'invalidates': ['plain']}]}",
                 "catalog.json:3: queries[1] (w).invalidates[0]: \"plain\" is not cached", NULL, NULL);
    expect_error(Q(WRITE("w", "POST /w", "SELECT 1") ", 'invalidates': ['ghost']"),
                 "catalog.json:1: queries[0] (w).invalidates[0]: no query is named \"ghost\"", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': {'ttl_ms': 5}, 'invalidates': ['q']"),
                 "queries[0] (q).invalidates: only write queries invalidate", NULL, NULL);
    expect_error(
        "{'queries': [{" READ("c", "GET /c", "SELECT 1") ", 'cache': {'ttl_ms': 5}},"
                                                         " {" WRITE("w", "POST /w", "SELECT 1") ", 'invalidates': ['c', 'c']}]}",
        "queries[1] (w).invalidates[1]: \"c\" is listed twice", NULL, NULL);
    expect_error(Q(WRITE("w", "POST /w", "SELECT 1") ", 'invalidates': [3]"), "queries[0] (w).invalidates[0]: must be a query name",
                 NULL, NULL);
}

Test(catalog, invalidates_may_name_a_query_in_another_file)
{
    tg_errors_t errs = {0};
    write_file("w.json", Q(WRITE("w", "POST /w", "SELECT 1") ", 'invalidates': ['c']"));
    write_file("r.json", Q(READ("c", "GET /c", "SELECT 1") ", 'cache': {'ttl_ms': 5}"));
    tg_config_t *cfg = parse_config(CONFIG_WITH("'w.json', 'r.json'"), &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    tg_config_free(cfg);
}

/* --- many errors at once --- */

Test(catalog, every_error_in_a_catalog_is_reported)
{
    tg_errors_t errs = {0};
    cr_assert_null(load("{'queries': [\n"
                        "{'name': 'a', 'route': 'GET /a/{id}', 'sql': 'SELECT $2', 'returns': 'one', 'access': 'read',\n"
                        " 'params': [{'name': 'x', 'type': 'text', 'min': 1}], 'cost': 0, 'extra': 1},\n"
                        "{'name': 'b', 'route': 'POST /b', 'sql': 'SELECT 1', 'returns': 'one', 'access': 'write',\n"
                        " 'cache': {'ttl_ms': 10}, 'invalidates': ['a']},\n"
                        "{'route': 'GET /c', 'sql': 'SELECT 1', 'returns': 'one'}\n"
                        "]}",
                        &errs));
    const char *want[] = {
        /* each on the line of its own field, not of the entry's name */
        "catalog.json:3: queries[0] (a).extra: unknown field",
        "catalog.json:3: queries[0] (a).params[0] (x).min: only numeric",
        "catalog.json:2: queries[0] (a).route: {id} is not a declared parameter",
        "catalog.json:2: queries[0] (a).sql: $2 has no parameter",
        "catalog.json:3: queries[0] (a).params[0] (x): not used",
        "catalog.json:3: queries[0] (a).cost:",
        "catalog.json:5: queries[1] (b).cache: only read queries",
        "catalog.json:5: queries[1] (b).invalidates[0]: \"a\" is not cached",
        "catalog.json:6: queries[2].name: required",
        "catalog.json:6: queries[2].access: required",
    };
    expect_exactly(&errs, want, sizeof(want) / sizeof(want[0]));
}

/* --- from: "tenant" --- */

Test(catalog, from_tenant_binds_the_caller_in_any_method)
{
    tg_config_t *cfg = load_ok("{'queries': [{" READ("mine", "GET /mine", "SELECT $1, $2")
                               ", 'params': [{'name': 'owner', 'type': 'text', 'from': 'tenant'}, {'name': 'n', 'type': 'int4'}]},"
                               " {" WRITE("note", "POST /notes", "SELECT $1") ", 'params': [{'name': 'owner', 'type': 'text', 'from': 'tenant'}]}]}");
    const tg_query_t *q = tg_config_find_query(cfg, "mine"), *w = tg_config_find_query(cfg, "note");
    cr_assert_eq(q->params[0].source, TG_SOURCE_TENANT);
    cr_assert(q->params[0].required);
    cr_assert_eq(q->params[1].source, TG_SOURCE_QUERY);
    cr_assert_eq(w->params[0].source, TG_SOURCE_TENANT);
    tg_config_free(cfg);
}

Test(catalog, from_tenant_errors)
{
#define TENANT_PARAM(extra) Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'owner', 'from': 'tenant'" extra "}]")
    expect_error(TENANT_PARAM(", 'type': 'int8'"), "queries[0] (q).params[0] (owner).type: a parameter from the tenant", "must be text",
                 NULL);
    expect_error(TENANT_PARAM(", 'type': 'text[]'"), "(owner).type: a parameter from the tenant", NULL, NULL);
    expect_error(TENANT_PARAM(", 'type': 'text', 'default': 'x'"), "(owner).from: a parameter from the tenant is always given",
                 "takes no default", NULL);
    expect_error(TENANT_PARAM(", 'type': 'text', 'required': false"), "(owner).from:", "takes no required", NULL);
    expect_error(TENANT_PARAM(", 'type': 'text', 'enum': ['a']"), "(owner).from:", "takes no enum", NULL);
    expect_error(TENANT_PARAM(", 'type': 'text', 'max_length': 3"), "(owner).from:", "takes no max_length", NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'owner', 'type': 'text', 'from': 'header'}]"),
                 "(owner).from: must be \"tenant\"", NULL, NULL);
    expect_error(Q(READ("q", "GET /q/{owner}", "SELECT $1") ", 'params': [{'name': 'owner', 'type': 'text', 'from': 'tenant'}]"),
                 "queries[0] (q).route: {owner} is bound to the caller's tenant", NULL, NULL);
#undef TENANT_PARAM
}

/* numeric bounds keep the catalog's text: no double holds 12345678901234567 */
Test(catalog, numeric_bounds_keep_their_text)
{
    tg_config_t *cfg = load_ok(Q(READ("q", "GET /q", "SELECT $1") ", 'params': [{'name': 'n', 'type': 'numeric', 'min': -0.10, "
                                                                     "'max': 12345678901234567}]"));
    const tg_param_t *p = &tg_config_find_query(cfg, "q")->params[0];
    cr_assert_str_eq(p->min_text, "-0.10");
    cr_assert_str_eq(p->max_text, "12345678901234567");
    tg_config_free(cfg);
}

/* --- REST habits: status, location, not_found_if_none, cursor --- */

#define CREATE(extra)                                                                                                              \
    Q("'name': 'c', 'route': 'POST /items', 'sql': 'INSERT INTO t (n) VALUES ($1) RETURNING id', 'params': [{'name': 'n', "     \
      "'type': 'text'}], 'returns': 'one', 'access': 'write'" extra)
#define PAGE(extra)                                                                                                                \
    Q("'name': 'p', 'route': 'GET /items', 'sql': 'SELECT id FROM t WHERE id > $1 LIMIT $2', 'params': [{'name': 'after', "    \
      "'type': 'int8', 'default': 0}, {'name': 'limit', 'type': 'int4', 'default': 10}], 'returns': 'many', 'access': 'read'" extra)

Test(catalog, status_location_and_not_found_if_none)
{
    tg_config_t *cfg = load_ok(CREATE(", 'status': 201, 'location': '/items/{id}'"));
    cr_assert_eq(cfg->queries[0].status, 201);
    cr_assert_str_eq(cfg->queries[0].location, "/items/{id}");
    tg_config_free(cfg);
    cfg = load_ok(Q(WRITE("d", "DELETE /items/{id}", "DELETE FROM t WHERE id = $1") ", 'params': [{'name': 'id', 'type': "
                                                                                  "'int8'}], 'status': 204, 'not_found_if_none': true"));
    cr_assert_eq(cfg->queries[0].status, 204);
    cr_assert(cfg->queries[0].not_found_if_none);
    tg_config_free(cfg);
    cfg = load_ok(Q(READ("r", "GET /r", "SELECT 1")));
    cr_assert_eq(cfg->queries[0].status, 200, "200 unless given");
    cr_assert_null(cfg->queries[0].location);
    cr_assert_eq(cfg->queries[0].cursor_param, -1);
    tg_config_free(cfg);

    expect_error(CREATE(", 'status': 302"), "queries[0] (c).status: must be an integer between 200 and 204 (got 302)", NULL, NULL);
    expect_error(CREATE(", 'status': 204"), "queries[0] (c).status: 204 sends no body", NULL, NULL);
    expect_error(CREATE(", 'location': 'items/{id}'"), "queries[0] (c).location: must be a path", NULL, NULL);
    expect_error(CREATE(", 'location': '/items/{id'"), "queries[0] (c).location: must be a path", NULL, NULL);
    expect_error(CREATE(", 'location': '/items/{}'"), "queries[0] (c).location: must be a path", NULL, NULL);
    expect_error(Q(WRITE("w", "POST /w", "SELECT 1") ", 'location': '/w/{id}'"), "queries[0] (w).location: is filled from the answer",
                 NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'cache': {'ttl_ms': 5}, 'location': '/q/{id}'"),
                 "queries[0] (q).location: cannot be combined with cache", NULL, NULL);
    expect_error(Q(READ("q", "GET /q", "SELECT 1") ", 'not_found_if_none': true"), "queries[0] (q).not_found_if_none: is for writes",
                 NULL, NULL);
    expect_error(Q(WRITE("w", "POST /w", "SELECT 1") ", 'not_found_if_none': 1"), "queries[0] (w).not_found_if_none: must be true",
                 NULL, NULL);
}

Test(catalog, a_cursor_names_a_column_and_query_string_parameters)
{
    tg_config_t *cfg = load_ok(PAGE(", 'cursor': {'column': 'id', 'param': 'after', 'limit': 'limit'}"));
    cr_assert_str_eq(cfg->queries[0].cursor_column, "id");
    cr_assert_eq(cfg->queries[0].cursor_param, 0);
    cr_assert_eq(cfg->queries[0].cursor_limit, 1);
    tg_config_free(cfg);
    cfg = load_ok(PAGE(", 'cursor': {'column': 'id', 'param': 'after'}"));
    cr_assert_eq(cfg->queries[0].cursor_limit, -1, "no limit: a Link on every page that is not empty");
    tg_config_free(cfg);

    expect_error(PAGE(", 'cursor': {'param': 'after'}"), "queries[0] (p).cursor.column: required", NULL, NULL);
    expect_error(PAGE(", 'cursor': {'column': 'id'}"), "queries[0] (p).cursor.param: required", NULL, NULL);
    expect_error(PAGE(", 'cursor': {'column': 'id', 'param': 'ghost'}"), "queries[0] (p).cursor.param: \"ghost\" must be", NULL, NULL);
    expect_error(PAGE(", 'cursor': {'column': 'id', 'param': 'after', 'limit': 'after2'}"), "queries[0] (p).cursor.limit:", NULL, NULL);
    expect_error(PAGE(", 'cursor': {'column': 'id', 'param': 'after', 'size': 3}"), "queries[0] (p).cursor", "size", NULL);
    expect_error(PAGE(", 'cursor': 'id'"), "queries[0] (p).cursor: must be null or an object", NULL, NULL);
    expect_error(CREATE(", 'cursor': {'column': 'id', 'param': 'n'}"), "queries[0] (c).cursor: pages are for returns \"many\"", NULL,
                 NULL);
    /* a body parameter cannot take it: the Link is a GET of the same route */
    expect_error(Q("'name': 'b', 'route': 'POST /b', 'sql': 'SELECT $1::int8 AS id', 'params': [{'name': 'after', 'type': 'int8'}], "
                   "'returns': 'many', 'access': 'write', 'cursor': {'column': 'id', 'param': 'after'}"),
                 "queries[0] (b).cursor.param: \"after\" must be a scalar parameter of this query taken from the query string", NULL,
                 NULL);
}

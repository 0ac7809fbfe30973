/* Tests of gateway/snapshot.c: reference counts, and pins that let a call outlive reloads. */
#include "config_fixture.h"
#include "tollgate/snapshot.h"

TestSuite(snapshot, .init = make_dir, .fini = remove_dir);

static tg_config_t *config_with(const char *sql)
{
    char catalog[256];
    snprintf(catalog, sizeof(catalog), "{'queries': [{'name': 'q', 'route': 'GET /q', 'sql': '%s', 'returns': 'one', 'access': 'read'}]}",
             sql);
    write_file("catalog.json", catalog);
    tg_errors_t errs = {0};
    tg_config_t *cfg = parse_config("{'listen': [{'host': '127.0.0.1', 'port': 8080}], 'primary': 'dbname=app', 'catalog': ['catalog.json'],"
                                    " 'tenants': [{'name': 't', 'keys': [], 'rate': 1, 'burst': 5}]}",
                                    &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg);
    return cfg;
}

static size_t refs(tg_snapshot_t *s)
{
    return atomic_load(&s->refs);
}

Test(snapshot, a_call_outlives_two_reloads_and_holds_only_its_own)
{
    tg_state_t *state = tg_state_create(1);
    tg_snapshot_t *s1 = tg_snapshot_create(config_with("SELECT 1"), state, 1, 0);
    tg_snapshot_t *s2 = tg_snapshot_create(config_with("SELECT 2"), state, 2, 0);
    tg_snapshot_t *s3 = tg_snapshot_create(config_with("SELECT 3"), state, 3, 0);
    /* the test's own references, to watch the counts */
    tg_snapshot_ref(s1), tg_snapshot_ref(s2), tg_snapshot_ref(s3);

    tg_pins_t pins;
    tg_pins_init(&pins, s1);
    tg_pin_t *call = tg_pins_hold(&pins);
    cr_assert_eq(call->snap, s1);
    cr_assert_eq(refs(s1), 2);

    tg_pins_set(&pins, s2);
    cr_assert_eq(refs(s1), 2, "the call still holds s1");
    tg_pins_set(&pins, s3);
    cr_assert_eq(refs(s2), 1, "nothing held s2: let go at once");
    cr_assert_eq(refs(s1), 2);
    cr_assert_eq(pins.current->snap, s3);
    cr_assert_eq(tg_pins_hold(&pins)->snap, s3, "new calls start on the newest");
    tg_pins_drop(&pins, pins.current);

    /* the same query name in each: one live state, its SQL (and statement name) per snapshot */
    cr_assert_eq(s1->config->queries[0].state, s3->config->queries[0].state);
    cr_assert_str_neq(s1->config->queries[0].stmt_name, s3->config->queries[0].stmt_name);
    cr_assert_str_eq(s1->config->queries[0].sql, "SELECT 1", "the old call's query is still whole");

    tg_pins_drop(&pins, call);
    cr_assert_eq(refs(s1), 1, "its last call ended: the pin let s1 go");
    cr_assert_null(pins.retired);
    tg_pins_dispose(&pins);
    cr_assert_eq(refs(s3), 1);
    tg_snapshot_release(s1), tg_snapshot_release(s2), tg_snapshot_release(s3);
    tg_state_free(state);
}

Test(snapshot, statement_names_follow_the_sql_and_types)
{
    tg_state_t *state = tg_state_create(1);
    tg_snapshot_t *a = tg_snapshot_create(config_with("SELECT 1"), state, 1, 0);
    tg_snapshot_t *b = tg_snapshot_create(config_with("SELECT 1"), state, 2, 0);
    tg_snapshot_t *c = tg_snapshot_create(config_with("SELECT  1"), state, 3, 0);
    const char *na = a->config->queries[0].stmt_name;
    cr_assert_eq(strlen(na), 35);
    cr_assert_eq(strncmp(na, "tg_", 3), 0);
    cr_assert_str_eq(na, b->config->queries[0].stmt_name, "the same SQL and types: the same statement on a kept connection");
    cr_assert_str_neq(na, c->config->queries[0].stmt_name, "other SQL under the same query name: prepared anew");
    tg_snapshot_release(a), tg_snapshot_release(b), tg_snapshot_release(c);
    tg_state_free(state);
}

/* Tests of gateway/state.c: live state by name, and the ids metrics label it with. */
#include <criterion/criterion.h>
#include "tollgate/state.h"

Test(state, ids_follow_creation_and_a_name_keeps_its_id)
{
    tg_state_t *s = tg_state_create(2);
    tg_query_state_t *a = tg_state_bind_query(s, "get_user", 1, "SELECT 1"), *b = tg_state_bind_query(s, "list_orders", 1, "SELECT 2");
    cr_assert_eq(a->id, 1);
    cr_assert_eq(b->id, 2);
    cr_assert_eq(tg_state_bind_query(s, "get_user", 0, "SELECT 1"), a);
    cr_assert_str_eq(tg_state_query_name(s, 2), "list_orders");
    cr_assert_null(tg_state_query_name(s, 0));
    cr_assert_null(tg_state_query_name(s, 3));
    tg_tenant_state_t *t = tg_state_bind_tenant(s, "billing", 1, 0);
    cr_assert_eq(t->id, 1);
    cr_assert_str_eq(tg_state_tenant_name(s, 1), "billing");
    cr_assert_null(tg_state_tenant_name(s, 2));
    tg_state_free(s);
}

Test(state, a_backend_name_bound_again_after_a_reload_keeps_its_id)
{
    tg_state_t *s = tg_state_create(1);
    uint32_t p = tg_state_bind_backend(s, "primary"), r = tg_state_bind_backend(s, "replica1");
    cr_assert_neq(p, r);
    cr_assert_neq(p, 0);
    /* a reload that changes replica1's connection string makes a new backend of the same name: one label */
    cr_assert_eq(tg_state_bind_backend(s, "replica1"), r);
    cr_assert_str_eq(tg_state_backend_name(s, r), "replica1");
    cr_assert_null(tg_state_backend_name(s, 0));
    tg_state_free(s);
}

Test(state, new_sql_moves_the_cache_epoch_and_the_same_sql_does_not)
{
    tg_state_t *s = tg_state_create(1);
    tg_query_state_t *q = tg_state_bind_query(s, "get_user", 1, "SELECT 1");
    uint64_t e0 = atomic_load(&q->cache_epoch);
    tg_state_bind_query(s, "get_user", 1, "SELECT 1");
    cr_assert_eq(atomic_load(&q->cache_epoch), e0, "a reload with the same SQL keeps the entries");
    tg_state_bind_query(s, "get_user", 1, "SELECT 2");
    cr_assert_eq(atomic_load(&q->cache_epoch), e0 + 1, "new SQL: the old answers are not its own");
    tg_state_invalidate(q);
    cr_assert_eq(atomic_load(&q->cache_epoch), e0 + 2);
    tg_state_free(s);
}

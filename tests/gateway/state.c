/* Tests of gateway/state.c: live state by name, and the ids metrics label it with. */
#include <criterion/criterion.h>
#include "tollgate/state.h"

Test(state, ids_follow_creation_and_a_name_keeps_its_id)
{
    tg_state_t *s = tg_state_create(2);
    tg_query_state_t *a = tg_state_bind_query(s, "get_user", 1), *b = tg_state_bind_query(s, "list_orders", 1);
    cr_assert_eq(a->id, 1);
    cr_assert_eq(b->id, 2);
    cr_assert_eq(tg_state_bind_query(s, "get_user", 0), a);
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

/*
 * Tests of gateway/limits.c: token-bucket arithmetic on an injected clock (no
 * sleeping), exactness under many threads, key lookup, the order limits apply in, and
 * the RateLimit header values.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <time.h>
#include "tollgate/limits.h"

#define S 1000000000ull /* one second in ns */

Test(bucket, starts_full_and_refuses_past_burst)
{
    tg_bucket_t b;
    tg_bucket_state_t st;
    tg_bucket_init(&b, 10, 20, 100 * S);
    for (int i = 0; i != 20; ++i) {
        cr_assert_eq(tg_bucket_take(&b, 1, 100 * S, &st), 1, "take %d", i);
        cr_assert_eq(st.remaining, (uint64_t)(19 - i));
    }
    cr_assert_eq(tg_bucket_take(&b, 1, 100 * S, &st), 0);
    cr_assert_eq(st.remaining, 0);
    cr_assert_eq(st.retry_after_s, 1, "one token comes back in 0.1 s: Retry-After rounds up to 1");
    cr_assert_eq(st.full_in_s, 2, "20 tokens at 10/s refill in 2 s");
}

Test(bucket, refills_at_rate_and_never_beyond_burst)
{
    tg_bucket_t b;
    tg_bucket_state_t st;
    tg_bucket_init(&b, 10, 20, 0);
    for (int i = 0; i != 20; ++i)
        tg_bucket_take(&b, 1, 0, &st);
    /* 0.5 s later: 5 tokens. */
    for (int i = 0; i != 5; ++i)
        cr_assert_eq(tg_bucket_take(&b, 1, S / 2, &st), 1, "take %d", i);
    cr_assert_eq(tg_bucket_take(&b, 1, S / 2, &st), 0);
    /* An hour idle: full, not more. */
    for (int i = 0; i != 20; ++i)
        cr_assert_eq(tg_bucket_take(&b, 1, 3600 * S, &st), 1);
    cr_assert_eq(tg_bucket_take(&b, 1, 3600 * S, &st), 0);
}

Test(bucket, cost_takes_several_tokens_and_retry_after_says_when_they_are_there)
{
    tg_bucket_t b;
    tg_bucket_state_t st;
    tg_bucket_init(&b, 2, 10, 0);
    cr_assert_eq(tg_bucket_take(&b, 5, 0, &st), 1);
    cr_assert_eq(st.remaining, 5);
    cr_assert_eq(tg_bucket_take(&b, 5, 0, &st), 1);
    cr_assert_eq(st.remaining, 0);
    cr_assert_eq(st.full_in_s, 5);
    /* 5 tokens at 2/s: 2.5 s, rounded up to 3. */
    cr_assert_eq(tg_bucket_take(&b, 5, 0, &st), 0);
    cr_assert_eq(st.retry_after_s, 3);
    cr_assert_eq(tg_bucket_take(&b, 5, 2 * S, &st), 0, "4 tokens are not 5");
    cr_assert_eq(st.remaining, 4);
    cr_assert_eq(st.retry_after_s, 1);
    cr_assert_eq(tg_bucket_take(&b, 5, 5 * S / 2, &st), 1);
}

Test(bucket, rates_below_one_per_second)
{
    tg_bucket_t b;
    tg_bucket_state_t st;
    tg_bucket_init(&b, 0.1, 1, 0); /* one call per 10 s */
    cr_assert_eq(tg_bucket_take(&b, 1, 0, &st), 1);
    cr_assert_eq(tg_bucket_take(&b, 1, 9 * S, &st), 0);
    cr_assert_eq(st.retry_after_s, 1);
    cr_assert_eq(tg_bucket_take(&b, 1, 1 * S, &st), 0);
    cr_assert_eq(st.retry_after_s, 9);
    cr_assert_eq(tg_bucket_take(&b, 1, 10 * S, &st), 1);
}

Test(bucket, peeking_takes_nothing)
{
    tg_bucket_t b;
    tg_bucket_state_t st;
    tg_bucket_init(&b, 1, 3, 0);
    for (int i = 0; i != 10; ++i)
        cr_assert_eq(tg_bucket_take(&b, 0, 0, &st), 1);
    cr_assert_eq(st.remaining, 3);
    cr_assert_eq(st.full_in_s, 0);
}

/* Many threads on one bucket: what is granted never exceeds burst + rate * elapsed. */
struct hammer {
    tg_bucket_t *b;
    _Atomic uint64_t granted;
    uint64_t until_ns;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * S + (uint64_t)ts.tv_nsec;
}

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    tg_bucket_state_t st;
    uint64_t now;
    while ((now = mono_ns()) < h->until_ns)
        if (tg_bucket_take(h->b, 1, now, &st))
            ++h->granted;
    return NULL;
}

Test(bucket, exact_under_many_threads)
{
    tg_bucket_t b;
    uint64_t start = mono_ns();
    tg_bucket_init(&b, 1000, 100, start);
    struct hammer h = {.b = &b, .until_ns = start + S / 5};
    pthread_t t[8];
    for (int i = 0; i != 8; ++i)
        pthread_create(&t[i], NULL, hammer_main, &h);
    for (int i = 0; i != 8; ++i)
        pthread_join(t[i], NULL);
    double elapsed = (double)(mono_ns() - start) / 1e9;
    double bound = 100 + 1000 * elapsed;
    cr_assert_leq((double)h.granted, bound, "granted %lu > burst + rate * elapsed = %.1f", (unsigned long)h.granted, bound);
    /* And the bucket was not starved by contention: most of what it could give was given. */
    cr_assert_geq((double)h.granted, 0.5 * (100 + 1000 * 0.2), "granted only %lu", (unsigned long)h.granted);
}

static tg_query_t queries[2] = {
    {.index = 0, .name = "q", .cost = 1, .enabled = 1, .max_in_flight = 2},
    {.index = 1, .name = "off", .cost = 1, .enabled = 0},
};

static tg_config_t *make_config(void)
{
    static uint8_t keys_a[1][32], keys_b[2][32];
    static char hex[72];
    /* Keys as the config holds them: SHA-256 digests. */
    tg_hash_key("key-a", 5, hex);
    tg_parse_sha256(hex, keys_a[0]);
    tg_hash_key("key-b1", 6, hex);
    tg_parse_sha256(hex, keys_b[0]);
    tg_hash_key("key-b2", 6, hex);
    tg_parse_sha256(hex, keys_b[1]);
    static tg_tenant_t tenants[2];
    tenants[0] = (tg_tenant_t){.name = "a", .keys = keys_a, .n_keys = 1, .rate = 1, .burst = 3, .max_in_flight = 1, .enabled = 1};
    tenants[1] = (tg_tenant_t){.name = "b", .keys = keys_b, .n_keys = 2, .rate = 100, .burst = 100, .priority = TG_PRIORITY_LOW, .enabled = 1};
    static tg_config_t cfg;
    cfg = (tg_config_t){.tenants = tenants, .n_tenants = 2, .has_anonymous = 1, .anonymous_rate = 5, .anonymous_burst = 5,
                        .queries = queries, .n_queries = 2, .max_in_flight = 3};
    return &cfg;
}

Test(keys, lookup_by_digest)
{
    tg_state_t *state = tg_state_create(1);
    tg_limits_t *l = tg_limits_create(make_config(), state, 0);
    cr_assert_str_eq(tg_limits_find_key(l, "key-a", 5)->name, "a");
    cr_assert_str_eq(tg_limits_find_key(l, "key-b1", 6)->name, "b");
    cr_assert_str_eq(tg_limits_find_key(l, "key-b2", 6)->name, "b");
    cr_assert_null(tg_limits_find_key(l, "key-b", 5));
    cr_assert_null(tg_limits_find_key(l, "", 0));
    cr_assert_null(tg_limits_find_key(l, "key-a ", 6));
    cr_assert_str_eq(l->anonymous->name, "anonymous");
    tg_limits_free(l);
    tg_state_free(state);
}

Test(admit, limits_apply_in_order_and_release)
{
    tg_state_t *state = tg_state_create(1);
    tg_limits_t *l = tg_limits_create(make_config(), state, 0);
    tg_limits_tenant_t *a = tg_limits_find_key(l, "key-a", 5), *b = tg_limits_find_key(l, "key-b1", 6);
    tg_bucket_state_t st;
    tg_admission_t adm1, adm2, adm3, adm4;
    /* Tenant a: in-flight cap 1. */
    cr_assert_eq(tg_limits_admit(l, a, &queries[0], 0, &st, &adm1), TG_ADMIT_OK);
    cr_assert_eq(st.remaining, 2);
    cr_assert_eq(tg_limits_admit(l, a, &queries[0], 0, &st, &adm2), TG_ADMIT_TENANT_BUSY);
    tg_limits_release(&adm1);
    tg_limits_release(&adm1); /* idempotent */
    cr_assert_eq(atomic_load(&a->state->in_flight), 0);
    /* Its bucket (burst 3) is now spent: two takes above, one more, then 429. */
    cr_assert_eq(tg_limits_admit(l, a, &queries[0], 0, &st, &adm1), TG_ADMIT_OK);
    tg_limits_release(&adm1);
    cr_assert_eq(tg_limits_admit(l, a, &queries[0], 0, &st, &adm1), TG_ADMIT_RATE_LIMITED);
    cr_assert_eq(st.retry_after_s, 1);
    /* Switched off by an operator: 403 before anything else. */
    tg_state_switch_tenant(state, a->state, TG_SWITCH_OFF, "test");
    cr_assert_eq(tg_limits_admit(l, a, &queries[0], 10 * S, &st, &adm1), TG_ADMIT_TENANT_DISABLED);
    /* Query in-flight cap 2 over all tenants, then the gateway cap 3. */
    cr_assert_eq(tg_limits_admit(l, b, &queries[0], 0, &st, &adm1), TG_ADMIT_OK);
    cr_assert_eq(tg_limits_admit(l, l->anonymous, &queries[0], 0, &st, &adm2), TG_ADMIT_OK);
    cr_assert_eq(tg_limits_admit(l, b, &queries[0], 0, &st, &adm3), TG_ADMIT_QUERY_BUSY);
    cr_assert_eq(atomic_load(&b->state->in_flight), 1, "a refused call holds nothing");
    /* "off" ships switched off (enabled: false); an operator's switch on overrides the files */
    cr_assert_eq(tg_limits_admit(l, b, &queries[1], 0, &st, &adm3), TG_ADMIT_QUERY_DISABLED);
    tg_state_switch_query(state, queries[1].state, TG_SWITCH_ON, 30, NULL);
    cr_assert_eq(tg_limits_admit(l, b, &queries[1], 0, &st, &adm3), TG_ADMIT_OK);
    cr_assert_eq(tg_limits_admit(l, b, &queries[1], 0, &st, &adm4), TG_ADMIT_GATEWAY_BUSY);
    tg_state_switch_query(state, queries[1].state, TG_SWITCH_OFF, 7, "melting");
    tg_limits_release(&adm3);
    cr_assert_eq(tg_limits_admit(l, b, &queries[1], 0, &st, &adm4), TG_ADMIT_QUERY_DISABLED);
    cr_assert_eq(atomic_load(&queries[1].state->retry_after_s), 7);
    cr_assert_str_eq(queries[1].state->reason, "melting");
    tg_limits_release(&adm1);
    tg_limits_release(&adm2);
    cr_assert_eq(atomic_load(l->in_flight), 0);
    cr_assert_eq(atomic_load(&queries[0].state->in_flight), 0);
    cr_assert_eq(atomic_load(&b->state->in_flight), 0);
    tg_limits_free(l);
    tg_state_free(state);
}

/* A second snapshot of the same names finds the same live state: spent tokens, in-flight slots and switches carry over. */
Test(admit, live_state_carries_over_to_the_next_snapshot_by_name)
{
    tg_state_t *state = tg_state_create(1);
    tg_config_t *cfg = make_config();
    tg_limits_t *l1 = tg_limits_create(cfg, state, 0);
    tg_limits_tenant_t *a1 = tg_limits_find_key(l1, "key-a", 5);
    tg_bucket_state_t st;
    tg_admission_t held;
    cr_assert_eq(tg_limits_admit(l1, a1, &queries[0], 0, &st, &held), TG_ADMIT_OK);
    tg_state_switch_query(state, queries[0].state, TG_SWITCH_OFF, 9, "hot");
    tg_query_state_t *q0 = queries[0].state;

    /* the next snapshot: the same config again, with tenant a's burst raised */
    cfg->tenants[0].burst = 10;
    tg_limits_t *l2 = tg_limits_create(cfg, state, 0);
    tg_limits_tenant_t *a2 = tg_limits_find_key(l2, "key-a", 5);
    cr_assert_neq(a1, a2);
    cr_assert_eq(a1->state, a2->state, "one tenant state per name");
    cr_assert_eq(queries[0].state, q0, "one query state per name");
    cr_assert_eq(atomic_load(&a2->state->in_flight), 1, "the call admitted on the old snapshot still counts");
    cr_assert_eq(tg_state_is_off(&q0->switched, queries[0].enabled), 1, "the operator's switch survives");
    /* the bucket keeps what was spent (1 of a's tokens), under the new burst */
    tg_bucket_take(&a2->bucket, 0, 0, &st);
    cr_assert_eq(st.remaining, 9);
    tg_limits_release(&held);
    cr_assert_eq(atomic_load(&a2->state->in_flight), 0);
    /* the files now ship it off too: the operator's switch agrees and stays (no moment of it served) */
    queries[0].enabled = 0;
    tg_limits_t *l3 = tg_limits_create(cfg, state, 0);
    cr_assert_eq(atomic_load(&q0->switched), TG_SWITCH_OFF);
    /* the files switch it on again: they were changed on purpose, the switch that says otherwise goes, with its reason */
    queries[0].enabled = 1;
    tg_limits_t *l4 = tg_limits_create(cfg, state, 0);
    cr_assert_eq(atomic_load(&q0->switched), TG_SWITCH_NONE);
    cr_assert_null(q0->reason);
    tg_limits_free(l4);
    cfg->tenants[0].burst = 3;
    tg_limits_free(l1);
    tg_limits_free(l2);
    tg_limits_free(l3);
    tg_state_free(state);
}

Test(headers, ratelimit_values)
{
    tg_limits_tenant_t t = {.name = "x"};
    tg_bucket_init(&t.bucket, 200, 400, 0);
    tg_buf_t out = {0};
    tg_limits_format_policy(&t, &out);
    cr_assert_str_eq(out.base, "\"tenant\";q=400;w=2");
    tg_buf_reset(&out);
    tg_bucket_init(&t.bucket, 0.5, 3, 0);
    tg_limits_format_policy(&t, &out);
    cr_assert_str_eq(out.base, "\"tenant\";q=3;w=6");
    tg_buf_reset(&out);
    tg_bucket_init(&t.bucket, 3, 10, 0);
    tg_limits_format_policy(&t, &out);
    cr_assert_str_eq(out.base, "\"tenant\";q=10;w=4", "ceil(10/3) = 4");
    tg_buf_reset(&out);
    tg_bucket_state_t st = {.remaining = 17, .full_in_s = 3};
    tg_limits_format_state(&st, &out);
    cr_assert_str_eq(out.base, "\"tenant\";r=17;t=3");
    tg_buf_dispose(&out);
}

Test(bucket, a_full_bucket_holds_exactly_burst_whatever_the_rounding)
{
    /* 1e9 / 7 and 1e9 / 600 are not whole nanoseconds: the burst must still be whole. */
    static const double cases[][2] = {{7, 7}, {600, 1200}, {3, 10}, {1e-6, 1}, {1e9, 1e9}};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_bucket_t b;
        tg_bucket_state_t st;
        tg_bucket_init(&b, cases[i][0], cases[i][1], 0);
        unsigned burst = (unsigned)cases[i][1];
        cr_assert_eq(tg_bucket_take(&b, burst, 0, &st), 1, "rate %g burst %g: the whole burst at once", cases[i][0], cases[i][1]);
        cr_assert_eq(st.remaining, 0);
        cr_assert_eq(tg_bucket_take(&b, 1, 0, &st), 0);
    }
}

Test(bucket, huge_costs_at_tiny_rates_never_wrap)
{
    tg_bucket_t b;
    tg_bucket_state_t st;
    tg_bucket_init(&b, 1e-6, 1, 0); /* one token per 11.6 days */
    cr_assert_eq(tg_bucket_take(&b, 1, 0, &st), 1);
    for (int i = 0; i != 1000; ++i)
        cr_assert_eq(tg_bucket_take(&b, 1000000, 0, &st), 0, "take %d", i);
    cr_assert_eq(tg_bucket_take(&b, 1, 0, &st), 0);
}

Test(admit, shared_limits_spend_the_lease_or_a_local_share_while_redis_is_away)
{
    tg_state_t *state = tg_state_create(1);
    tg_limits_t *l = tg_limits_create(make_config(), state, 0);
    tg_lease_health_t health = {.wake_fd = -1};
    atomic_store(&health.divisor, 2);
    tg_limits_share(l, &health);
    tg_limits_tenant_t *b = tg_limits_find_key(l, "key-b1", 6);
    cr_assert_eq(tg_lease_rate(&b->state->lease), 100, "the lease knows the tenant's rate");
    cr_assert_eq(tg_lease_burst(&b->state->lease), 100);
    tg_bucket_state_t st;
    tg_admission_t adm;
    /* Redis never reached: b's bucket is local at 100 / 2 per second, burst 50 */
    int ok = 0;
    for (int i = 0; i != 60; ++i) {
        if (tg_limits_admit(l, b, &queries[0], 10 * S, &st, &adm) == TG_ADMIT_OK)
            ++ok;
        tg_limits_release(&adm);
    }
    cr_assert_eq(ok, 50, "burst / divisor: %d", ok);
    cr_assert_eq(atomic_load(&b->state->tat_ns), 0, "the tenant's own bucket is not what is spent");
    /* Redis answers: the lease, empty, passes one call on credit and no more until a block comes */
    atomic_store(&health.good_until_ns, 20 * S);
    cr_assert_eq(tg_limits_admit(l, b, &queries[0], 11 * S, &st, &adm), TG_ADMIT_OK);
    tg_limits_release(&adm);
    cr_assert_eq(tg_limits_admit(l, b, &queries[0], 11 * S, &st, &adm), TG_ADMIT_RATE_LIMITED);
    cr_assert_eq(st.retry_after_s, 1, "2 tokens owed at 100/s: within a second");
    tg_lease_granted(&b->state->lease, 10, 10, 40, 11 * S);
    cr_assert_eq(tg_limits_admit(l, b, &queries[0], 11 * S, &st, &adm), TG_ADMIT_OK);
    tg_limits_release(&adm);
    cr_assert_eq(st.remaining, 8 + 40, "the balance after the call and the global bucket as last seen");
    /* a peek (the disabled path, /admin/status) takes nothing */
    tg_limits_peek(l, b, 11 * S, &st);
    cr_assert_eq(atomic_load(&b->state->lease.tokens), 8);
    tg_limits_free(l);
    tg_state_free(state);
}

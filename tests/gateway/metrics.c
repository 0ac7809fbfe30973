/* Tests of gateway/metrics.c: per-thread cells summed when collected, histogram buckets, growth. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include "tollgate/metrics.h"

static uint64_t value_of(const tg_metrics_series_t *s, size_t n, uint64_t key, size_t slot)
{
    for (size_t i = 0; i != n; ++i)
        if (s[i].key == key)
            return s[i].v[slot];
    return UINT64_MAX;
}

static uint64_t key(tg_metric_kind_t kind, uint32_t a, uint32_t b, uint32_t c)
{
    return (uint64_t)kind << 60 | (uint64_t)a << 40 | (uint64_t)b << 20 | c;
}

Test(metrics, the_same_key_on_two_threads_is_one_series_with_the_sum)
{
    tg_metrics_thread_t *t[2] = {tg_metrics_thread_create(), tg_metrics_thread_create()};
    for (int i = 0; i != 3; ++i)
        tg_metrics_count(t[0], TG_M_REQUESTS, 1, 2, 200);
    for (int i = 0; i != 4; ++i)
        tg_metrics_count(t[1], TG_M_REQUESTS, 1, 2, 200);
    tg_metrics_count(t[1], TG_M_REQUESTS, 1, 2, 429);
    tg_metrics_count(t[0], TG_M_SHED, 1, 0, TG_SHED_POOL_TIMEOUT);
    tg_metrics_series_t *s;
    size_t n = tg_metrics_collect(t, 2, &s);
    cr_assert_eq(n, 3);
    cr_assert_eq(value_of(s, n, key(TG_M_REQUESTS, 1, 2, 200), 0), 7);
    cr_assert_eq(value_of(s, n, key(TG_M_REQUESTS, 1, 2, 429), 0), 1);
    cr_assert_eq(value_of(s, n, key(TG_M_SHED, 1, 0, TG_SHED_POOL_TIMEOUT), 0), 1);
    /* sorted by key: kinds in order, so a family's series are together */
    for (size_t i = 1; i != n; ++i)
        cr_assert_lt(s[i - 1].key, s[i].key);
    cr_assert_eq(tg_metrics_key_kind(s[0].key), TG_M_REQUESTS);
    cr_assert_eq(tg_metrics_key_a(s[0].key), 1);
    cr_assert_eq(tg_metrics_key_b(s[0].key), 2);
    cr_assert_eq(tg_metrics_key_c(s[0].key), 200);
    free(s);
    tg_metrics_thread_free(t[0]);
    tg_metrics_thread_free(t[1]);
}

Test(metrics, an_observation_on_a_bound_falls_in_that_bucket)
{
    tg_metrics_thread_t *t = tg_metrics_thread_create();
    tg_metrics_observe(t, TG_M_DB_SECONDS, 3, 4, 0);        /* le 0.0005 */
    tg_metrics_observe(t, TG_M_DB_SECONDS, 3, 4, 500);      /* le 0.0005: the bound is inclusive */
    tg_metrics_observe(t, TG_M_DB_SECONDS, 3, 4, 501);      /* le 0.001 */
    tg_metrics_observe(t, TG_M_DB_SECONDS, 3, 4, 10000000); /* le 10 */
    tg_metrics_observe(t, TG_M_DB_SECONDS, 3, 4, 10000001); /* +Inf */
    tg_metrics_series_t *s;
    size_t n = tg_metrics_collect(&t, 1, &s);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].key, key(TG_M_DB_SECONDS, 3, 4, 0));
    cr_assert_eq(s[0].v[0], 2);
    cr_assert_eq(s[0].v[1], 1);
    cr_assert_eq(s[0].v[TG_METRICS_BUCKETS - 2], 1);
    cr_assert_eq(s[0].v[TG_METRICS_BUCKETS - 1], 1);
    uint64_t total = 0;
    for (size_t i = 0; i != TG_METRICS_BUCKETS; ++i)
        total += s[0].v[i];
    cr_assert_eq(total, 5);
    cr_assert_eq(s[0].v[TG_METRICS_BUCKETS], 0 + 500 + 501 + 10000000 + 10000001);
    free(s);
    tg_metrics_thread_free(t);
}

Test(metrics, thousands_of_series_keep_their_own_counts)
{
    tg_metrics_thread_t *t = tg_metrics_thread_create();
    for (uint32_t round = 0; round != 3; ++round)
        for (uint32_t q = 1; q <= 50; ++q)
            for (uint32_t tenant = 1; tenant <= 100; ++tenant)
                tg_metrics_count(t, TG_M_REQUESTS, q, tenant, 200 + (q + tenant) % 3);
    tg_metrics_series_t *s;
    size_t n = tg_metrics_collect(&t, 1, &s);
    cr_assert_eq(n, 5000);
    for (size_t i = 0; i != n; ++i) {
        cr_assert_eq(s[i].v[0], 3, "series %zu", i);
        uint32_t q = tg_metrics_key_a(s[i].key), tenant = tg_metrics_key_b(s[i].key);
        cr_assert_eq(tg_metrics_key_c(s[i].key), 200 + (q + tenant) % 3);
    }
    free(s);
    tg_metrics_thread_free(t);
}

Test(metrics, an_id_past_the_key_space_is_clamped_not_spilled_into_another_field)
{
    tg_metrics_thread_t *t = tg_metrics_thread_create();
    tg_metrics_count(t, TG_M_REFUSED, 0x7fffffff, 0, TG_REFUSAL_RATE_LIMITED);
    tg_metrics_series_t *s;
    size_t n = tg_metrics_collect(&t, 1, &s);
    cr_assert_eq(n, 1);
    cr_assert_eq(tg_metrics_key_kind(s[0].key), TG_M_REFUSED);
    cr_assert_eq(tg_metrics_key_a(s[0].key), 0xfffff);
    cr_assert_eq(tg_metrics_key_b(s[0].key), 0);
    free(s);
    tg_metrics_thread_free(t);
}

#define WRITER_CALLS 200000

static void *count_many(void *arg)
{
    tg_metrics_thread_t *t = arg;
    for (uint32_t i = 0; i != WRITER_CALLS; ++i)
        tg_metrics_count(t, TG_M_REQUESTS, 1 + i % 7, 1 + i % 300, 200);
    return NULL;
}

/* Owners count while another thread collects: every collection sees counts that only grow, and the last one is exact. */
Test(metrics, collecting_while_owners_count_sees_no_torn_or_lost_counts)
{
    tg_metrics_thread_t *t[2] = {tg_metrics_thread_create(), tg_metrics_thread_create()};
    pthread_t tid[2];
    for (int i = 0; i != 2; ++i)
        pthread_create(&tid[i], NULL, count_many, t[i]);
    uint64_t last = 0;
    for (int round = 0; round != 50; ++round) {
        tg_metrics_series_t *s;
        size_t n = tg_metrics_collect(t, 2, &s);
        uint64_t sum = 0;
        for (size_t i = 0; i != n; ++i)
            sum += s[i].v[0];
        cr_assert_geq(sum, last);
        cr_assert_leq(sum, 2 * WRITER_CALLS);
        last = sum;
        free(s);
    }
    for (int i = 0; i != 2; ++i)
        pthread_join(tid[i], NULL);
    tg_metrics_series_t *s;
    size_t n = tg_metrics_collect(t, 2, &s);
    uint64_t sum = 0;
    for (size_t i = 0; i != n; ++i)
        sum += s[i].v[0];
    cr_assert_eq(sum, 2 * WRITER_CALLS);
    cr_assert_eq(n, 7 * 300 / 1); /* i % 7 and i % 300 meet in every pair once lcm(7, 300) = 2100 calls have passed */
    free(s);
    tg_metrics_thread_free(t[0]);
    tg_metrics_thread_free(t[1]);
}

Test(metrics, reason_names_are_label_values_and_unknown_ones_say_other)
{
    cr_assert_str_eq(tg_refusal_name(TG_REFUSAL_RATE_LIMITED), "rate_limited");
    cr_assert_str_eq(tg_shed_name(TG_SHED_CLIENT_GONE), "client_gone");
    cr_assert_str_eq(tg_shed_name(TG_SHED__END), "other");
    cr_assert_str_eq(tg_refusal_name((tg_refusal_t)99), "other");
}

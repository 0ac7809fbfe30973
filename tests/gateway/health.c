/* Tests of gateway/health.c (LSN parsing is gateway/consistency.c's, tested there): the primary's LSN history, lag, and when a replica may take reads. */
#include <criterion/criterion.h>
#include "tollgate/health.h"

Test(lsn, idle_primary_means_no_lag)
{
    tg_lsn_history_t h = {0};
    tg_lsn_history_add(&h, 1000, 500);
    /* The primary writes nothing for a minute: the same LSN adds no sample... */
    for (uint64_t t = 2000; t <= 61000; t += 1000)
        tg_lsn_history_add(&h, t, 500);
    cr_assert_eq(h.n, 1);
    /* ...and a replica that replayed it is not behind, however long ago the last commit was. */
    cr_assert_eq(tg_lsn_lag_ms(&h, 500, 61000), 0);
    cr_assert_eq(tg_lsn_lag_ms(&h, 600, 61000), 0);
}

/* After a failover the primary is another server, maybe behind the last position seen: measure from it afresh. */
Test(lsn, a_lower_position_is_a_new_primary)
{
    tg_lsn_history_t h = {0};
    tg_lsn_history_add(&h, 1000, 1000);
    tg_lsn_history_add(&h, 2000, 2000);
    /* promoted standby: it had replayed up to 1500 */
    tg_lsn_history_add(&h, 3000, 1500);
    cr_assert_eq(h.n, 1, "the old server's samples are gone");
    cr_assert_eq(tg_lsn_lag_ms(&h, 1500, 5000), 0, "a replica at the new primary's position is not behind");
    tg_lsn_history_add(&h, 4000, 1600);
    cr_assert_eq(tg_lsn_lag_ms(&h, 1500, 5000), 1000, "and lag grows again from the new primary's writes");
}

Test(lsn, lag_grows_from_the_first_unreplayed_write)
{
    tg_lsn_history_t h = {0};
    tg_lsn_history_add(&h, 1000, 100);
    tg_lsn_history_add(&h, 2000, 200);
    tg_lsn_history_add(&h, 3000, 300);
    /* Replayed up to 150: the WAL at 200 exists since t=2000. */
    cr_assert_eq(tg_lsn_lag_ms(&h, 150, 3500), 1500);
    cr_assert_eq(tg_lsn_lag_ms(&h, 150, 9500), 7500, "it keeps growing while the primary is idle");
    cr_assert_eq(tg_lsn_lag_ms(&h, 200, 3500), 500);
    cr_assert_eq(tg_lsn_lag_ms(&h, 300, 3500), 0);
    cr_assert_eq(tg_lsn_lag_ms(&h, 50, 3500), 2500);
    /* A repeated LSN adds nothing (a lower one is another server: a_lower_position_is_a_new_primary). */
    tg_lsn_history_add(&h, 4000, 300);
    cr_assert_eq(h.n, 3);
}

Test(lsn, history_rolls_over)
{
    tg_lsn_history_t h = {0};
    for (uint64_t i = 1; i <= TG_LSN_HISTORY + 10; ++i)
        tg_lsn_history_add(&h, i * 10, i);
    cr_assert_eq(h.n, TG_LSN_HISTORY);
    /* The oldest kept sample is LSN 11 at t=110: a replica further behind is at least that old. */
    cr_assert_eq(tg_lsn_lag_ms(&h, 3, 10000), 10000 - 110);
    cr_assert_eq(tg_lsn_lag_ms(&h, TG_LSN_HISTORY + 10, 10000), 0);
}

static tg_backend_t replica(int up, uint64_t checked_at, int64_t lag)
{
    tg_backend_t b = {.name = "r"};
    atomic_init(&b.up, up);
    atomic_init(&b.checked_at_ms, checked_at);
    atomic_init(&b.lag_ms, lag);
    return b;
}

Test(usable, table)
{
    /* interval 1000 ms, max lag 500 ms, now = 100000 */
    static const struct {
        int up;
        uint64_t checked_at;
        int64_t lag;
        int want, last_resort;
    } cases[] = {
        {1, 99500, 0, 1, 0},     /* fresh, caught up */
        {1, 99500, 500, 1, 0},   /* at the bound */
        {1, 99500, 501, 0, 0},   /* past it */
        {1, 99500, -1, 0, 0},    /* lag unknown: no answer yet */
        {1, 99500, -3, 0, 1},    /* not in recovery (promoted): a last resort only */
        {0, 99500, -3, 0, 0},    /* ...not when down */
        {1, 95999, -3, 0, 0},    /* ...or stale */
        {1, 99500, -2, 1, 0},    /* not comparable: the primary cannot be checked; the replica still serves */
        {0, 99500, -2, 0, 0},    /* ...but not when it is down itself */
        {1, 95999, -2, 0, 0},    /* ...or its last check is stale */
        {0, 99500, 0, 0, 0},     /* down */
        {1, 0, 0, 0, 0},         /* never checked */
        {1, 95999, 0, 0, 0},     /* last check over 4 s ago: hung, stop trusting it */
        {1, 97000, 0, 1, 0},     /* 3 s ago: still within 3 intervals + 1 s */
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        tg_backend_t b = replica(cases[i].up, cases[i].checked_at, cases[i].lag);
        cr_assert_eq(tg_health_replica_usable(&b, 100000, 1000, 500), cases[i].want, "case %zu", i);
        cr_assert_eq(tg_health_replica_last_resort(&b, 100000, 1000), cases[i].last_resort, "case %zu", i);
    }
}

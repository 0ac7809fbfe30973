/*
 * Tests of gateway/overload.c on an injected clock (nothing sleeps): the adaptive limit
 * against a model backend whose latency the test sets interval by interval (at its
 * floor, 4x under load, noisy, a slower mix for good), admission, and the retry budget
 * as its window slides.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include "tollgate/overload.h"

#define MS 1000000ull
#define S 1000000000ull
#define F (2 * MS) /* the model backend's unloaded median */

static tg_overload_params_t pool16(void)
{
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, 16, 8);
    p.min_limit = 8; /* limits 8..128 */
    return p;
}

/* what one sample's latency is, for the i-th call of an interval */
typedef uint64_t (*latency_fn)(unsigned i, void *arg);

static uint64_t fixed(unsigned i, void *arg)
{
    (void)i;
    return *(uint64_t *)arg;
}

/*
 * One interval of `offered` calls at once: each is admitted or shed, the admitted ones
 * run (a sample each, with what is in flight), then end. The clock moves on by one
 * interval. Returns how many were admitted.
 */
static unsigned interval(tg_overload_t *o, uint64_t *now, unsigned offered, latency_fn lat, void *arg)
{
    unsigned admitted = 0;
    for (unsigned i = 0; i != offered; ++i)
        admitted += tg_overload_try_acquire(o, NULL);
    for (unsigned i = 0; i != admitted; ++i)
        tg_overload_sample(o, lat(i, arg), atomic_load(&o->in_flight), *now + (i + 1) * 50000);
    for (unsigned i = 0; i != admitted; ++i)
        tg_overload_release(o);
    *now += 100 * MS;
    tg_overload_update(o, *now);
    return admitted;
}

static void run_fixed(tg_overload_t *o, uint64_t *now, unsigned n, unsigned offered, uint64_t latency)
{
    for (unsigned k = 0; k != n; ++k)
        interval(o, now, offered, fixed, &latency);
}

/* a controller whose floor is measured: a quiet start (4 calls in flight at most: low load) */
static void warmed(tg_overload_t *o, uint64_t *now)
{
    tg_overload_params_t p = pool16();
    *now = 1000 * S;
    tg_overload_init(o, &p, *now);
    run_fixed(o, now, 10, 4, F);
    uint64_t floor = atomic_load(&o->floor_ns);
    cr_assert(floor >= F * 9 / 10 && floor <= F * 11 / 10, "the floor is the quiet median: %llu", (unsigned long long)floor);
    cr_assert_eq(tg_overload_limit(o), 128, "a quiet start leaves the limit where it began: max");
}

Test(overload, bounds_come_from_the_pool)
{
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, 16, 8);
    cr_assert_eq(p.min_limit, 2, "an eighth of the connections");
    cr_assert_eq(p.max_limit, 128, "connections x pipeline depth");
    tg_overload_params_for_pool(&p, 32, 8);
    cr_assert_eq(p.min_limit, 4);
    tg_overload_params_for_pool(&p, 100, 8);
    cr_assert_eq(p.min_limit, 13, "rounded up");
    tg_overload_params_for_pool(&p, 3, 1);
    cr_assert_eq(p.min_limit, 2, "at least 2");
    cr_assert_eq(p.max_limit, 3, "no pipelining: still room below the connections");
    tg_overload_params_for_pool(&p, 0, 0);
    cr_assert_eq(p.min_limit, 1);
    cr_assert_eq(p.max_limit, 1);
}

Test(overload, admission_stops_at_the_limit_and_suggests_a_retry_after)
{
    tg_overload_params_t p = pool16();
    p.min_limit = 1;
    p.max_limit = 3;
    tg_overload_t o;
    tg_overload_init(&o, &p, 0);
    uint32_t ra = 0;
    for (int i = 0; i != 3; ++i)
        cr_assert_eq(tg_overload_try_acquire(&o, &ra), 1, "call %d is under the limit", i);
    cr_assert_eq(tg_overload_try_acquire(&o, &ra), 0, "the fourth is over it");
    cr_assert_eq(ra, 1, "nothing measured: Retry-After 1");
    cr_assert_eq(atomic_load(&o.shed), 1);
    tg_overload_release(&o);
    cr_assert_eq(tg_overload_try_acquire(&o, NULL), 1, "a released call makes room");
    atomic_store(&o.recent_ns, 3 * S);
    cr_assert_eq(tg_overload_try_acquire(&o, &ra), 0);
    cr_assert_eq(ra, 6, "twice a recent median of 3 s");
    atomic_store(&o.recent_ns, 100 * S);
    tg_overload_try_acquire(&o, &ra);
    cr_assert_eq(ra, 30, "at most 30 s");
    cr_assert_eq(atomic_load(&o.admitted), 4);
}

/*
 * Loaded from the start (a restart in the busy hour): the first interval's median is the
 * floor for now, and no probe pins the limit to its minimum (the fault matrix's fresh
 * starts shed a fifth of their writes so); a later slowdown is still cut.
 */
Test(overload, a_start_under_load_takes_its_first_median_as_the_floor_without_a_probe)
{
    tg_overload_params_t p = pool16();
    tg_overload_t o;
    uint64_t now = 1000 * S;
    tg_overload_init(&o, &p, now);
    for (int k = 0; k != 30; ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){F});
        cr_assert(!atomic_load(&o.probing), "interval %d: probed at a start under load", k);
        cr_assert_eq(tg_overload_limit(&o), 128, "interval %d: the limit moved", k);
    }
    uint64_t floor = atomic_load(&o.floor_ns);
    cr_assert(floor >= F * 9 / 10 && floor <= F * 11 / 10, "%llu", (unsigned long long)floor);
    run_fixed(&o, &now, 30, 200, 4 * F);
    cr_assert_lt(tg_overload_limit(&o), 32, "a slowdown after a start under load is cut: %u", tg_overload_limit(&o));
}

Test(overload, no_probe_while_the_limit_is_far_above_its_minimum)
{
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, 16, 8); /* limits 2..128 */
    tg_overload_t o;
    uint64_t now = 5 * S;
    tg_overload_init(&o, &p, now);
    run_fixed(&o, &now, 20, 2, F); /* quiet: the floor */
    cr_assert_gt(atomic_load(&o.floor_ns), 0);
    for (int k = 0; k != 250; ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){5 * F / 2});
        cr_assert(!atomic_load(&o.probing), "interval %d: probed with the limit at %u", k, tg_overload_limit(&o));
    }
    cr_assert_gt(tg_overload_limit(&o), 4 * 2, "held above 4x the minimum: %u", tg_overload_limit(&o));
    /* but a floor three windows old is checked, at a quarter of the limit, and the slower mix becomes the floor */
    int probed = 0, k;
    for (k = 0; k != 200 && !(atomic_load(&o.floor_ns) >= 5 * F / 2 * 9 / 10 && tg_overload_limit(&o) == 128); ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){5 * F / 2});
        if (atomic_load(&o.probing)) {
            probed = 1;
            cr_assert_geq(tg_overload_limit(&o), 2, "pinned to a quarter of the limit, at least the minimum");
        }
    }
    cr_assert(probed, "probed once the floor was 30 s old");
    cr_assert_lt(k, 200, "the slower mix became the floor and the limit came back: floor %llu, limit %u",
                 (unsigned long long)atomic_load(&o.floor_ns), tg_overload_limit(&o));
}

Test(overload, the_limit_stays_at_max_while_latency_is_at_the_floor)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    for (int k = 0; k != 50; ++k) {
        unsigned a = interval(&o, &now, 200, fixed, &(uint64_t){F});
        cr_assert_eq(tg_overload_limit(&o), 128, "interval %d: limit %u", k, tg_overload_limit(&o));
        cr_assert_eq(a, 128, "interval %d", k);
    }
    /* and grows back to max from below when latency is fine */
    o.ctl.limit = 20;
    unsigned prev = 20;
    for (int k = 0; k != 30; ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){F});
        cr_assert_geq(tg_overload_limit(&o), prev, "never falls at the floor (interval %d)", k);
        prev = tg_overload_limit(&o);
    }
    cr_assert_eq(prev, 128, "grown back to max: %u", prev);
}

Test(overload, four_times_the_floor_under_load_shrinks_to_min_and_the_floor_brings_it_back)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    run_fixed(&o, &now, 5, 200, F);
    unsigned before = tg_overload_limit(&o);
    cr_assert_eq(before, 128);
    int k = 0;
    while (tg_overload_limit(&o) > 16 && k < 20) {
        interval(&o, &now, 200, fixed, &(uint64_t){4 * F});
        ++k;
    }
    cr_assert_leq(k, 6, "near min (<= 2 x min) within 6 intervals: took %d, limit %u", k, tg_overload_limit(&o));
    run_fixed(&o, &now, 6, 200, 4 * F);
    cr_assert_eq(tg_overload_limit(&o), 8, "at min: %u", tg_overload_limit(&o));
    cr_assert_eq(interval(&o, &now, 200, fixed, &(uint64_t){4 * F}), 8, "the excess is shed at once");
    uint64_t floor = atomic_load(&o.floor_ns);
    cr_assert_leq(floor, F * 11 / 10, "seconds of slowness at min_limit do not lift the floor: %llu", (unsigned long long)floor);
    k = 0;
    while (tg_overload_limit(&o) < before && k < 40) {
        interval(&o, &now, 200, fixed, &(uint64_t){F});
        ++k;
    }
    cr_assert_leq(k, 25, "back to %u within 25 intervals: took %d, limit %u", before, k, tg_overload_limit(&o));
}

Test(overload, a_small_pool_can_shrink_to_its_minimum_too)
{
    /* 3 connections, no pipelining: limits 2..3 (review: with a headroom of sqrt(limit) at every gradient it could not move) */
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, 3, 1);
    tg_overload_t o;
    uint64_t now = 1000 * S;
    tg_overload_init(&o, &p, now);
    run_fixed(&o, &now, 60, 2, F); /* a quiet start (at most min_limit in flight): the floor */
    cr_assert_neq(atomic_load(&o.floor_ns), 0, "the floor is measured");
    cr_assert_eq(tg_overload_limit(&o), p.max_limit);
    run_fixed(&o, &now, 30, 50, 10 * F);
    cr_assert_eq(tg_overload_limit(&o), p.min_limit, "ten times the floor under load: the minimum, not %u", tg_overload_limit(&o));
}

/* 1 in 10 calls 50x slower, and one interval in five with a quarter of its calls 20x slower */
static uint64_t noisy(unsigned i, void *arg)
{
    unsigned k = *(unsigned *)arg;
    if (i % 10 == 3)
        return 50 * F;
    if (k % 5 == 0 && i % 4 == 1)
        return 20 * F;
    return F + (i % 3) * F / 10;
}

Test(overload, outliers_do_not_collapse_the_limit)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    for (unsigned k = 0; k != 150; ++k) {
        interval(&o, &now, 200, noisy, &k);
        /* the median stays within the target: the floor's window runs out, but there is nothing to probe for */
        cr_assert(!atomic_load(&o.probing), "interval %u: probed among outliers", k);
        cr_assert_geq(tg_overload_limit(&o), 120, "interval %u: limit %u", k, tg_overload_limit(&o));
    }
    cr_assert_leq(atomic_load(&o.floor_ns), F * 12 / 10, "outliers do not lift the floor: %llu", (unsigned long long)atomic_load(&o.floor_ns));
}

Test(overload, a_slower_mix_for_good_becomes_the_floor_within_a_window)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    /* the mix is 3x slower from now on, whatever the load: the limit dips, then the floor follows */
    unsigned lowest = 128;
    int k;
    for (k = 0; k != 200; ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){3 * F});
        if (tg_overload_limit(&o) < lowest)
            lowest = tg_overload_limit(&o);
        uint64_t floor = atomic_load(&o.floor_ns);
        if (floor >= 3 * F * 9 / 10 && tg_overload_limit(&o) == 128)
            break;
    }
    cr_assert_lt(lowest, 64, "3x the floor shrank it at first: lowest %u", lowest);
    cr_assert_lt(k, 200, "within 20 s the floor is the new mix's and the limit is back at max: floor %llu, limit %u",
                 (unsigned long long)atomic_load(&o.floor_ns), tg_overload_limit(&o));
    cr_assert_geq(k, 90, "not before the old floor's window ran out (10 s): %d", k);
    uint64_t floor = atomic_load(&o.floor_ns);
    cr_assert(floor >= 3 * F * 9 / 10 && floor <= 3 * F * 11 / 10, "%llu", (unsigned long long)floor);
}

/*
 * Load that never lets up, at 1.5x the floor: within the tolerance, so the limit stays
 * at max, and the floor, though older than its window, is never probed for: a probe
 * would pin the limit to its minimum and shed a healthy backend's calls for nothing
 * (found by review: 1-2% of calls refused every 10 s). Above the target the stale floor
 * is probed (a_slower_mix_for_good_becomes_the_floor_within_a_window).
 */
Test(overload, a_busy_backend_within_its_target_is_never_probed)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    for (int k = 0; k != 300; ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){3 * F / 2});
        cr_assert(!atomic_load(&o.probing), "probed at interval %d, within the target", k);
        cr_assert_eq(tg_overload_limit(&o), 128, "the limit moved at interval %d", k);
    }
    uint64_t floor = atomic_load(&o.floor_ns);
    cr_assert(floor >= F * 9 / 10 && floor <= F * 11 / 10, "the floor stays the quiet one: %llu", (unsigned long long)floor);
}

/* Above the target with a stale floor: one short probe at min, and the floor re-measured. */
Test(overload, load_above_the_target_is_probed_for_the_floor_once_it_is_stale)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    /* 2.5x the floor (tolerance 2): the gradient cuts; at 10 s the floor is measured again */
    int probed = -1, k;
    for (k = 0; k != 150; ++k) {
        interval(&o, &now, 200, fixed, &(uint64_t){5 * F / 2});
        if (probed < 0 && atomic_load(&o.probing)) {
            probed = k;
            cr_assert_eq(tg_overload_limit(&o), 8, "the probe pins the limit to min");
        }
        if (probed >= 0 && k > probed + 1 && !atomic_load(&o.probing))
            break;
    }
    cr_assert_geq(probed, 95, "no probe while the floor is fresh: %d", probed);
    cr_assert_leq(probed, 105, "the floor expired at 10 s: probed at %d", probed);
    cr_assert_leq(k - probed, 6, "32 samples at 8 an interval: the probe is short (%d intervals)", k - probed);
    uint64_t floor = atomic_load(&o.floor_ns);
    cr_assert(floor >= 5 * F / 2 * 9 / 10 && floor <= 5 * F / 2 * 11 / 10, "the floor re-measured: %llu", (unsigned long long)floor);
    run_fixed(&o, &now, 20, 200, 5 * F / 2);
    cr_assert_eq(tg_overload_limit(&o), 128, "back at max against the new floor");
}

Test(overload, slow_calls_still_decide_after_ten_intervals)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    /* one call every other interval, at 4x: 8 samples are never in, so the decision waits 10 intervals */
    unsigned start = tg_overload_limit(&o);
    for (int k = 0; k != 9; ++k) {
        if (k % 2 == 0)
            tg_overload_sample(&o, 4 * F, 128, now + MS);
        now += 100 * MS;
        tg_overload_update(&o, now);
        cr_assert_eq(tg_overload_limit(&o), start, "too few samples yet (interval %d)", k);
    }
    now += 100 * MS;
    tg_overload_update(&o, now);
    cr_assert_lt(tg_overload_limit(&o), start, "decided on the 5 that came: %u", tg_overload_limit(&o));
    /* and 8 samples decide without waiting */
    start = tg_overload_limit(&o);
    for (int i = 0; i != 8; ++i)
        tg_overload_sample(&o, 4 * F, 128, now + (uint64_t)i * MS);
    now += 100 * MS;
    tg_overload_update(&o, now);
    cr_assert_lt(tg_overload_limit(&o), start, "8 samples: decided at the interval's end: %u", tg_overload_limit(&o));
}

Test(overload, a_quiet_interval_far_under_its_limit_does_not_move_it)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    run_fixed(&o, &now, 20, 10, 4 * F); /* 10 in flight of 128: not loaded */
    cr_assert_eq(tg_overload_limit(&o), 128, "%u", tg_overload_limit(&o));
}

Test(overload, calls_waiting_for_a_connection_make_an_interval_loaded)
{
    /* slow calls are not pipelined: 10 connections full, the rest waiting in the pool, the limit (128) never reached */
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    tg_overload_note_wait(&o);
    interval(&o, &now, 10, fixed, &(uint64_t){4 * F});
    cr_assert_lt(tg_overload_limit(&o), 128, "the wait told the controller it is loaded: %u", tg_overload_limit(&o));
    cr_assert_eq(atomic_load(&o.shed), 0, "a wait is not a refusal");
    for (int k = 0; k != 10; ++k) {
        tg_overload_note_wait(&o);
        interval(&o, &now, 10, fixed, &(uint64_t){4 * F});
    }
    cr_assert_leq(tg_overload_limit(&o), 16, "down near its minimum: %u", tg_overload_limit(&o));
    run_fixed(&o, &now, 10, 10, 4 * F);
    cr_assert_eq(tg_overload_limit(&o), 8, "and at it once calls are refused: %u", tg_overload_limit(&o));
}

Test(overload, new_bounds_keep_what_was_learned)
{
    tg_overload_t o;
    uint64_t now;
    warmed(&o, &now);
    run_fixed(&o, &now, 8, 200, 4 * F);
    uint32_t learned = tg_overload_limit(&o);
    cr_assert_lt(learned, 128);
    uint64_t floor = atomic_load(&o.floor_ns);
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, 32, 8);
    p.min_limit = 16; /* limits 16..256 */
    tg_overload_set_params(&o, &p);
    cr_assert_eq(tg_overload_limit(&o), learned < 16 ? 16 : learned, "clamped into the new bounds, not reset: %u", tg_overload_limit(&o));
    cr_assert_eq(atomic_load(&o.floor_ns), floor, "the floor stays");
    tg_overload_params_for_pool(&p, 4, 2); /* limits 2..8 */
    tg_overload_set_params(&o, &p);
    cr_assert_eq(tg_overload_limit(&o), 8);
    /* a limit at its maximum (nothing learned) follows the maximum up */
    tg_overload_t fresh;
    tg_overload_init(&fresh, &p, now);
    tg_overload_params_for_pool(&p, 16, 8);
    p.tolerance = 1.5;
    tg_overload_set_params(&fresh, &p);
    cr_assert_eq(tg_overload_limit(&fresh), 128);
    cr_assert_eq(fresh.ctl.p.tolerance, 1.5);
}

Test(overload, a_sub_millisecond_floor_doubling_within_the_slack_leaves_the_limit)
{
    tg_overload_t o;
    tg_overload_params_t p = pool16();
    p.slack_ns = 1 * MS;
    uint64_t now = 1000 * S;
    tg_overload_init(&o, &p, now);
    run_fixed(&o, &now, 10, 4, 200000); /* a 0.2 ms floor */
    run_fixed(&o, &now, 20, 200, 500000); /* 0.5 ms under load: within 1.5 x 0.2 + 1 ms */
    cr_assert_eq(tg_overload_limit(&o), 128, "%u", tg_overload_limit(&o));
    run_fixed(&o, &now, 10, 200, 20 * MS); /* queueing for real */
    cr_assert_eq(tg_overload_limit(&o), 8, "%u", tg_overload_limit(&o));
}

Test(overload, what_different_threads_write_sits_on_different_cache_lines)
{
    size_t admit = offsetof(tg_overload_t, in_flight) / 64, sample = offsetof(tg_overload_t, hist) / 64,
           sample_end = (offsetof(tg_overload_t, n_samples) + sizeof(uint32_t) - 1) / 64, ctl = offsetof(tg_overload_t, next_ns) / 64,
           own = offsetof(tg_overload_t, ctl) / 64;
    cr_assert_eq(offsetof(tg_overload_t, limit) / 64, admit, "the limit is read with in_flight by every admission");
    cr_assert_eq((offsetof(tg_overload_t, waited) + 7) / 64, admit);
    cr_assert_lt(admit, sample);
    cr_assert_lt(sample_end, ctl);
    cr_assert_lt((offsetof(tg_overload_t, probing) + sizeof(int) - 1) / 64, own);
    cr_assert_neq(offsetof(tg_retry_budget_t, calls) / 64, offsetof(tg_retry_budget_t, ratio) / 64);
    cr_assert_neq(offsetof(tg_retry_budget_t, calls) / 64, offsetof(tg_retry_budget_t, retries) / 64);
}

struct hammer {
    tg_overload_t *o;
    _Atomic uint32_t *peak;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i != 200000; ++i) {
        if (!tg_overload_try_acquire(h->o, NULL))
            continue;
        uint32_t n = atomic_load(&h->o->in_flight), p = atomic_load(h->peak);
        while (n > p && !atomic_compare_exchange_weak(h->peak, &p, n))
            ;
        tg_overload_release(h->o);
    }
    return NULL;
}

Test(overload, threads_never_admit_past_the_limit)
{
    tg_overload_params_t p = pool16();
    p.min_limit = p.max_limit = 2;
    tg_overload_t o;
    tg_overload_init(&o, &p, 0);
    _Atomic uint32_t peak = 0;
    struct hammer h = {&o, &peak};
    pthread_t t[4];
    for (int i = 0; i != 4; ++i)
        pthread_create(&t[i], NULL, hammer_run, &h);
    for (int i = 0; i != 4; ++i)
        pthread_join(t[i], NULL);
    cr_assert_leq(atomic_load(&peak), 2, "peak %u", atomic_load(&peak));
    cr_assert_eq(atomic_load(&o.in_flight), 0);
    cr_assert_eq(atomic_load(&o.admitted) + atomic_load(&o.shed), 800000);
}

Test(retry_budget, ten_percent_of_calls_plus_the_minimum_then_refused)
{
    tg_retry_budget_t b;
    tg_retry_budget_init(&b, 0, -1, -1); /* 10 s, 10%, 3/s: 30 retries a window whatever the calls */
    uint64_t now = 100 * S;
    for (int i = 0; i != 200; ++i)
        tg_retry_budget_call(&b, now);
    int taken = 0;
    for (int i = 0; i != 100; ++i)
        taken += tg_retry_budget_take(&b, now + 1 * MS);
    cr_assert_eq(taken, 20 + 30, "10%% of 200 and 3/s x 10 s: %d", taken);
    cr_assert_eq(atomic_load(&b.refused), 50);
    cr_assert_eq(tg_retry_budget_take(&b, now + 2 * MS), 0, "spent");
    for (int i = 0; i != 10; ++i)
        tg_retry_budget_call(&b, now + 3 * MS);
    cr_assert_eq(tg_retry_budget_take(&b, now + 4 * MS), 1, "10 calls more: one retry more");
    cr_assert_eq(tg_retry_budget_take(&b, now + 4 * MS), 0, "and only one: refusals were not counted as retries");
}

Test(retry_budget, a_quiet_gateway_can_still_retry)
{
    tg_retry_budget_t b;
    tg_retry_budget_init(&b, 10 * S, 0.1, 3);
    int taken = 0;
    for (int i = 0; i != 40; ++i)
        taken += tg_retry_budget_take(&b, 50 * S);
    cr_assert_eq(taken, 30, "no calls at all: the minimum, %d", taken);
}

Test(retry_budget, it_recovers_as_the_window_slides)
{
    tg_retry_budget_t b;
    tg_retry_budget_init(&b, 10 * S, 0.1, 0); /* no minimum: the ratio alone */
    uint64_t t0 = 200 * S;
    for (int i = 0; i != 100; ++i)
        tg_retry_budget_call(&b, t0);
    for (int i = 0; i != 100; ++i)
        tg_retry_budget_call(&b, t0 + 5 * S);
    int taken = 0;
    for (int i = 0; i != 50; ++i)
        taken += tg_retry_budget_take(&b, t0 + 5 * S);
    cr_assert_eq(taken, 20, "10%% of 200: %d", taken);
    cr_assert_eq(tg_retry_budget_take(&b, t0 + 9 * S + 900 * MS), 0, "still inside the window");
    /* at t0 + 10 s the first 100 calls leave the window: 100 calls, 20 retries: over */
    cr_assert_eq(tg_retry_budget_take(&b, t0 + 10 * S + 1 * MS), 0, "retries left with calls still in: 20 of 100");
    /* at t0 + 15 s the retries leave too */
    for (int i = 0; i != 30; ++i)
        tg_retry_budget_call(&b, t0 + 15 * S);
    taken = 0;
    for (int i = 0; i != 10; ++i)
        taken += tg_retry_budget_take(&b, t0 + 15 * S + 1 * MS);
    cr_assert_eq(taken, 3, "a window on: 10%% of the 30 calls in it, %d", taken);
    cr_assert_eq(tg_retry_budget_take(&b, t0 + 100 * S), 0, "no calls, no minimum: none");
}

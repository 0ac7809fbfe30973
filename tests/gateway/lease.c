/*
 * Tests of gateway/lease.c on an injected clock: spending and credit, block sizing from
 * the demand, short grants, giving back, the RateLimit view, and whole runs of several
 * instances against a model of the global bucket (the arithmetic shared.c's Lua script
 * does in Redis), checking the bounds: at most burst + rate * T + one block of
 * credit per instance, and at least 90% of rate * T for a tenant over its rate.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "tollgate/lease.h"

#define MS 1000000ull
#define S 1000000000ull

static tg_lease_t *new_lease(double rate, double burst)
{
    static tg_lease_t leases[8];
    static int next;
    tg_lease_t *l = &leases[next++ % 8];
    memset(l, 0, sizeof(*l));
    tg_lease_set_limits(l, rate, burst);
    return l;
}

static const tg_lease_params_t P3 = {.lease_ns = 100 * MS, .idle_ns = 1 * S, .instances = 3};

Test(lease, a_first_call_passes_on_credit_and_the_next_waits_for_a_block)
{
    tg_lease_t *l = new_lease(20, 20);
    int64_t left;
    int wake;
    cr_assert_eq(tg_lease_take(l, 1, &left, &wake), 1, "a balance of 0 is not negative: the call passes");
    cr_assert_eq(left, -1);
    cr_assert_eq(atomic_load(&l->want), 1, "a block is wanted");
    cr_assert_eq(wake, 1, "in debt, under any low water: the thread is woken");
    cr_assert_eq(tg_lease_take(l, 1, &left, &wake), 0, "in debt: refused");
    cr_assert_eq(left, -1, "a refusal takes nothing");
    cr_assert_eq(atomic_load(&l->asked), 2, "both are demand");
}

Test(lease, a_block_repays_the_debt_and_wakes_the_thread_under_low_water)
{
    tg_lease_t *l = new_lease(20, 20);
    int64_t left;
    int wake;
    tg_lease_take(l, 1, &left, &wake);
    int64_t n = tg_lease_plan(l, &P3, 10 * S);
    cr_assert_eq(n, 2, "a block (1: nothing measured yet) and the debt (1): %lld", (long long)n);
    tg_lease_granted(l, n, n, 18, 10 * S);
    cr_assert_eq(atomic_load(&l->tokens), 1);
    cr_assert_eq(atomic_load(&l->want), 0, "asked for: no longer wanted");
    cr_assert_eq(tg_lease_take(l, 1, &left, &wake), 1);
    cr_assert_eq(left, 0);
    cr_assert_eq(wake, 1, "under low water (1): the one call that finds it so wakes the thread");
    cr_assert_eq(tg_lease_take(l, 1, &left, &wake), 1, "0 left: passes on credit");
    cr_assert_eq(wake, 0, "wanted already: nobody writes to the eventfd again");
}

Test(lease, a_burst_on_a_drained_lease_passes_on_credit_down_to_one_block)
{
    tg_lease_t *l = new_lease(100, 100);
    tg_lease_prime(l, 100000000ull, 2);
    cr_assert_eq(atomic_load(&l->block), 5, "the even share of one lease of the rate: 100/s x 0.1 s / 2");
    tg_lease_prime(l, 100000000ull, 1);
    cr_assert_eq(atomic_load(&l->block), 5, "priming once only");
    int64_t left;
    int wake, passed = 0;
    for (int i = 0; i != 10; ++i)
        passed += tg_lease_take(l, 1, &left, &wake);
    cr_assert_eq(passed, 5, "from 0 down to -5, a block: five calls, then refused");
    cr_assert_eq(atomic_load(&l->tokens), -5);
    cr_assert_eq(tg_lease_take(l, 7, &left, &wake), 0, "in debt: even a costly call waits");
    int64_t n = tg_lease_plan(l, &P3, 10 * S);
    cr_assert(n >= 5 + 1, "the next ask repays the debt and brings a block: %lld", (long long)n);
    tg_lease_granted(l, n, n, 0, 10 * S);
    cr_assert_eq(tg_lease_take(l, 7, &left, &wake), 1, "a call dearer than a block passes on a non-negative balance");
    tg_lease_t *big = new_lease(1e6, 10);
    tg_lease_prime(big, 100000000ull, 4);
    cr_assert_eq(atomic_load(&big->block), 2, "at most burst / instances");
}

Test(lease, while_redis_is_away_only_a_held_balance_is_spent)
{
    tg_lease_t *l = new_lease(10, 10);
    int64_t left;
    cr_assert_eq(tg_lease_spend_held(l, 1, &left), 0, "nothing held: the local bucket decides");
    atomic_store(&l->tokens, 2);
    cr_assert_eq(tg_lease_spend_held(l, 2, &left), 1);
    cr_assert_eq(left, 0);
    cr_assert_eq(tg_lease_spend_held(l, 1, &left), 0, "no credit while away");
    cr_assert_eq(atomic_load(&l->asked), 0, "and no demand counted: the thread is not leasing");
}

Test(lease, a_cost_of_zero_only_reads)
{
    tg_lease_t *l = new_lease(20, 20);
    int64_t left;
    int wake;
    cr_assert_eq(tg_lease_take(l, 0, &left, &wake), 1);
    cr_assert_eq(atomic_load(&l->tokens), 0);
    cr_assert_eq(atomic_load(&l->want), 0, "reading the bucket wants nothing");
}

/* Calls at `per_s` for `seconds`, planned every 10 ms, every ask granted in full: the block size at the end. */
static int64_t size_after_demand(tg_lease_t *l, const tg_lease_params_t *p, double per_s, double seconds, uint64_t *now)
{
    double owed = 0;
    for (uint64_t end = *now + (uint64_t)(seconds * S); *now < end; *now += 10 * MS) {
        for (owed += per_s / 100; owed >= 1; owed -= 1) {
            int64_t left;
            int wake;
            tg_lease_take(l, 1, &left, &wake);
        }
        int64_t n = tg_lease_plan(l, p, *now);
        if (n > 0)
            tg_lease_granted(l, n, n, 1e9, *now);
    }
    return l->ctl.size;
}

Test(lease, the_block_follows_the_demand_over_one_lease)
{
    tg_lease_t *l = new_lease(1e6, 1e6);
    uint64_t now = S;
    int64_t size = size_after_demand(l, &P3, 1000, 3, &now);
    cr_assert(size >= 90 && size <= 110, "1000 calls/s over a 100 ms lease: about 100, got %lld", (long long)size);
    size = size_after_demand(l, &P3, 10000, 3, &now);
    cr_assert(size >= 900 && size <= 1100, "10x the demand, 10x the block: got %lld", (long long)size);
    size = size_after_demand(l, &P3, 100, 3, &now);
    cr_assert(size >= 8 && size <= 12, "and back down: got %lld", (long long)size);
}

Test(lease, the_block_is_at_most_burst_over_instances_and_at_least_the_largest_cost)
{
    tg_lease_t *l = new_lease(1000, 30);
    uint64_t now = S;
    cr_assert_eq(size_after_demand(l, &P3, 5000, 2, &now), 10, "30 / 3 instances: no instance holds more than its share");
    tg_lease_t *m = new_lease(10, 10);
    int64_t left;
    int wake;
    tg_lease_take(m, 7, &left, &wake);
    tg_lease_plan(m, &P3, 5 * S);
    cr_assert_eq(m->ctl.size, 7, "a call costing 7 needs a block of 7 (more than 10 / 3)");
}

Test(lease, a_short_grant_holds_the_next_ask_until_the_bucket_could_refill_it)
{
    tg_lease_t *l = new_lease(10, 10);
    int64_t left;
    int wake;
    tg_lease_take(l, 1, &left, &wake);
    uint64_t now = 10 * S;
    int64_t n = tg_lease_plan(l, &P3, now);
    cr_assert_eq(n, 2);
    tg_lease_seed(l, 42);
    tg_lease_granted(l, n, 0, 0.2, now);
    cr_assert_eq(atomic_load(&l->want), 1, "still wanted");
    uint64_t wait = l->ctl.next_ask_ns - now;
    cr_assert(wait >= 50 * MS && wait < 150 * MS, "a block of 1 at 10/s refills in 100 ms, +-50%%: %llu ms", (unsigned long long)(wait / MS));
    cr_assert_eq(tg_lease_plan(l, &P3, now + wait - 1), 0, "not before");
    cr_assert_eq(tg_lease_plan(l, &P3, now + wait), 2, "then again");
}

Test(lease, an_unspent_balance_goes_back_and_so_does_what_the_demand_no_longer_needs)
{
    tg_lease_t *l = new_lease(1e6, 1e6);
    uint64_t now = S;
    size_after_demand(l, &P3, 10000, 2, &now);
    int64_t bal = atomic_load(&l->tokens);
    cr_assert(bal > 0, "a balance in hand: %lld", (long long)bal);
    /* the calls stop: within idle_ns (and a little) the balance goes back whole, in one piece or two */
    int64_t back = 0;
    for (uint64_t end = now + P3.idle_ns + 100 * MS; now < end; now += 10 * MS)
        back += tg_lease_plan(l, &P3, now);
    cr_assert_eq(back, -bal, "all of it (%lld), got %lld", (long long)bal, (long long)back);
    cr_assert_eq(atomic_load(&l->tokens), 0);

    /* the demand falls tenfold: what exceeds two blocks goes back, one block stays */
    tg_lease_t *m = new_lease(1e6, 1e6);
    now = S;
    size_after_demand(m, &P3, 10000, 2, &now);
    atomic_store(&m->tokens, 1000);
    size_after_demand(m, &P3, 100, 2, &now);
    cr_assert(atomic_load(&m->tokens) <= 2 * m->ctl.size, "at most two blocks kept: %lld (block %lld)", (long long)atomic_load(&m->tokens),
              (long long)m->ctl.size);
}

Test(lease, calls_that_stopped_want_nothing_more)
{
    tg_lease_t *l = new_lease(10, 10);
    int64_t left;
    int wake;
    tg_lease_take(l, 1, &left, &wake);
    tg_lease_plan(l, &P3, S); /* samples: the call was at 1 s */
    tg_lease_granted(l, 2, 0, 0, S);
    cr_assert_eq(atomic_load(&l->want), 1);
    int64_t n = 0;
    for (uint64_t now = S + 10 * MS; now < 5 * S; now += 10 * MS)
        if (tg_lease_plan(l, &P3, now) > 0)
            tg_lease_granted(l, 2, 0, 0, now), ++n;
    cr_assert_eq(atomic_load(&l->want), 0, "idle for idle_ns: no longer wanted");
    cr_assert(n <= 15, "a starved ask repeats at most once per refill of a block (100 ms +-50%%) while it matters: %lld", (long long)n);
}

Test(lease, the_view_adds_the_balance_to_the_global_bucket_as_last_seen)
{
    tg_lease_t *l = new_lease(10, 20);
    tg_lease_granted(l, 5, 5, 7.5, S);
    tg_lease_view_t v;
    tg_lease_view(l, 5, 1, 1, &v);
    cr_assert_eq(v.remaining, 12, "5 here + 7.5 there, whole tokens");
    cr_assert_eq(v.full_in_s, 1, "7.5 missing at 10/s: 0.75 s, rounded up");
    cr_assert_eq(v.retry_after_s, 0);
    tg_lease_granted(l, 5, 0, 0.5, S);
    tg_lease_view(l, -1, 3, 0, &v);
    cr_assert_eq(v.remaining, 0);
    cr_assert_eq(v.retry_after_s, 1, "1 owed + 3 wanted - 0.5 there = 3.5 tokens at 10/s: 1 s");
    tg_lease_t *slow = new_lease(0.1, 5);
    tg_lease_view(slow, -1, 1, 0, &v);
    cr_assert_eq(v.retry_after_s, 20, "2 tokens at 0.1/s");
    cr_assert_eq(v.full_in_s, 50, "5 tokens at 0.1/s");
}

Test(lease, the_divisor_is_zero_while_redis_answered_within_the_interval)
{
    tg_lease_health_t h = {0};
    atomic_store(&h.divisor, 3);
    cr_assert_eq(tg_lease_divisor(&h, S), 3, "never reached: local");
    atomic_store(&h.good_until_ns, 2 * S);
    cr_assert_eq(tg_lease_divisor(&h, S), 0, "leases");
    cr_assert_eq(tg_lease_divisor(&h, 2 * S), 3, "no good round trip for an interval: local, without waiting for the thread");
    atomic_store(&h.divisor, 0);
    cr_assert_eq(tg_lease_divisor(&h, 3 * S), 1, "never 0 when local");
}

/* ---- whole runs against a model of the global bucket --------------------------------- */

typedef struct {
    double rate, burst, tokens;
    uint64_t at;
    uint64_t asks;
} model_t;

/* shared.c's LEASE_LUA, in C */
static int64_t model_lease(model_t *m, int64_t n, uint64_t now)
{
    ++m->asks;
    if (now > m->at)
        m->tokens += (double)(now - m->at) / S * m->rate;
    m->at = now;
    if (m->tokens > m->burst)
        m->tokens = m->burst;
    if (n < 0) {
        m->tokens = fmin(m->burst, m->tokens - (double)n);
        return 0;
    }
    int64_t g = (int64_t)floor(fmin((double)n, m->tokens));
    m->tokens -= (double)g;
    return g;
}

typedef struct {
    tg_lease_t lease;
    double per_s, owed;
    uint64_t admitted, refused, next_plan;
} instance_t;

/*
 * `n` instances, calls at per_s[i] each, for `seconds`; every instance's thread plans
 * every 25 ms, or 0.2 ms after a worker woke it (a loopback round trip), its asks
 * answered by the model. Returns the calls admitted over all instances.
 */
static uint64_t run(model_t *m, instance_t *in, size_t n, double seconds, const tg_lease_params_t *p)
{
    uint64_t total = 0, step = S / 10000; /* 0.1 ms */
    for (uint64_t now = S; now < S + (uint64_t)(seconds * S); now += step) {
        for (size_t i = 0; i != n; ++i) {
            instance_t *x = &in[i];
            for (x->owed += x->per_s * (double)step / S; x->owed >= 1; x->owed -= 1) {
                int64_t left;
                int wake;
                if (tg_lease_take(&x->lease, 1, &left, &wake))
                    ++x->admitted, ++total;
                else
                    ++x->refused;
                if (wake && x->next_plan > now + 2 * step)
                    x->next_plan = now + 2 * step;
            }
            if (now >= x->next_plan) {
                int64_t k = tg_lease_plan(&x->lease, p, now);
                if (k != 0) {
                    int64_t g = model_lease(m, k, now);
                    if (k > 0)
                        tg_lease_granted(&x->lease, k, g, m->tokens, now);
                }
                x->next_plan = now + 25 * MS;
                if (atomic_load(&x->lease.want) && x->lease.ctl.next_ask_ns > now && x->lease.ctl.next_ask_ns < x->next_plan)
                    x->next_plan = x->lease.ctl.next_ask_ns;
            }
        }
    }
    return total;
}

static void setup_run(model_t *m, instance_t *in, size_t n, double rate, double burst, const double *per_s)
{
    *m = (model_t){.rate = rate, .burst = burst, .tokens = burst, .at = S};
    for (size_t i = 0; i != n; ++i) {
        memset(&in[i], 0, sizeof(in[i]));
        tg_lease_set_limits(&in[i].lease, rate, burst);
        tg_lease_seed(&in[i].lease, 0x5eed0000u + i);
        in[i].per_s = per_s[i];
    }
}

/*
 * Three instances calling a tenant of 20/s, burst 20, at `per_s` each for 10 s: the
 * total within burst + rate * 10 + one block of credit each (20 / 3, rounded down) and
 * at least 90% of rate * 10. Fills `in`.
 */
static void three_over_the_rate(const char *name, const double per_s[3], instance_t in[3])
{
    model_t m;
    setup_run(&m, in, 3, 20, 20, per_s);
    uint64_t total = run(&m, in, 3, 10, &P3);
    cr_log_info("%s: %llu admitted (%llu, %llu, %llu), %llu asks", name, (unsigned long long)total, (unsigned long long)in[0].admitted,
                (unsigned long long)in[1].admitted, (unsigned long long)in[2].admitted, (unsigned long long)m.asks);
    cr_assert(total <= 20 + 20 * 10 + 3 * 6, "%s: more than burst + rate * 10 + a block each: %llu", name, (unsigned long long)total);
    cr_assert(total >= 180, "%s: less than 90%% of rate * 10: %llu", name, (unsigned long long)total);
}

Test(lease_run, three_instances_over_the_rate_get_the_rate_between_them)
{
    instance_t in[3];
    const double per_s[3] = {100, 100, 100};
    three_over_the_rate("even", per_s, in);
    for (int i = 0; i != 3; ++i)
        cr_assert(in[i].admitted >= 40, "no instance starved: %d got %llu", i, (unsigned long long)in[i].admitted);
}

Test(lease_run, an_unequal_spread_holds_the_same_total)
{
    instance_t in[3];
    const double per_s[3] = {240, 30, 30};
    three_over_the_rate("80/10/10", per_s, in);
    cr_assert(in[1].admitted >= 15 && in[2].admitted >= 15, "the small ones are served too: %llu, %llu", (unsigned long long)in[1].admitted,
              (unsigned long long)in[2].admitted);
}

Test(lease_run, under_the_rate_every_call_passes)
{
    model_t m;
    instance_t in[3];
    const double per_s[3] = {50, 30, 10};
    setup_run(&m, in, 3, 200, 50, per_s);
    run(&m, in, 3, 5, &P3);
    for (int i = 0; i != 3; ++i)
        cr_assert_eq(in[i].refused, 0, "90/s of a 200/s tenant: nothing refused, but instance %d refused %llu", i,
                     (unsigned long long)in[i].refused);
}

Test(lease_run, a_busy_tenant_costs_few_round_trips)
{
    model_t m;
    instance_t in[1];
    const double per_s[1] = {20000};
    setup_run(&m, in, 1, 1e7, 1e6, per_s);
    tg_lease_params_t p1 = P3;
    p1.instances = 1;
    run(&m, in, 1, 5, &p1);
    cr_assert(in[0].refused <= 5, "only calls of the first round trip may find the balance in debt: %llu refused",
              (unsigned long long)in[0].refused);
    double per_call = (double)m.asks / (double)in[0].admitted;
    cr_assert(per_call <= 0.005, "asks per call: %g (%llu asks)", per_call, (unsigned long long)m.asks);
}

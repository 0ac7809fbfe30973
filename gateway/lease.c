/*
 * Token leases: a tenant's local balance of tokens taken from its global bucket, spent
 * lock-free by the workers, and the controller that sizes, asks for and gives back
 * blocks (tollgate/lease.h). No clock of its own, no Redis.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "tollgate/lease.h"

#define NS_PER_S 1e9
/* demand is sampled no more often than this: shorter intervals say little */
#define SAMPLE_MIN_NS 5000000ull
/* a rise is believed from a window this short, holding this many tokens */
#define ATTACK_MIN_NS 1000000ull
#define ATTACK_MIN_TOKENS 8
/* a short grant holds the next ask back this long at least, and at most */
#define WAIT_MIN_NS 2000000ull
#define WAIT_MAX_NS 1000000000ull

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double double_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

void tg_lease_set_limits(tg_lease_t *l, double rate, double burst)
{
    atomic_store_explicit(&l->rate_bits, bits_of(rate), memory_order_relaxed);
    atomic_store_explicit(&l->burst_bits, bits_of(burst), memory_order_relaxed);
}

double tg_lease_rate(const tg_lease_t *l)
{
    return double_of(atomic_load_explicit(&l->rate_bits, memory_order_relaxed));
}

double tg_lease_burst(const tg_lease_t *l)
{
    return double_of(atomic_load_explicit(&l->burst_bits, memory_order_relaxed));
}

int tg_lease_take(tg_lease_t *l, unsigned cost, int64_t *left, int *wake)
{
    *wake = 0;
    uint32_t mc = atomic_load_explicit(&l->max_cost, memory_order_relaxed);
    while (cost > mc && !atomic_compare_exchange_weak_explicit(&l->max_cost, &mc, cost, memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&l->asked, cost, memory_order_relaxed);
    /* credit: a call may take the balance down to minus one block (minus its own cost, if more) */
    int64_t block = atomic_load_explicit(&l->block, memory_order_relaxed), floor_at = (int64_t)cost - (block > (int64_t)cost ? block : (int64_t)cost);
    int64_t t = atomic_load_explicit(&l->tokens, memory_order_relaxed);
    int admitted = 1;
    do {
        if (t < floor_at) {
            admitted = 0; /* a block's worth spent on credit already: the next block repays it first */
            break;
        }
    } while (cost != 0 &&
             !atomic_compare_exchange_weak_explicit(&l->tokens, &t, t - (int64_t)cost, memory_order_relaxed, memory_order_relaxed));
    *left = admitted ? t - (int64_t)cost : t;
    if (cost != 0 && *left < atomic_load_explicit(&l->low_water, memory_order_relaxed) && !atomic_load_explicit(&l->want, memory_order_relaxed) &&
        !atomic_exchange_explicit(&l->want, 1, memory_order_relaxed))
        *wake = 1;
    return admitted;
}

int tg_lease_spend_held(tg_lease_t *l, unsigned cost, int64_t *left)
{
    int64_t t = atomic_load_explicit(&l->tokens, memory_order_relaxed);
    do {
        if (t < (int64_t)cost || cost == 0) {
            *left = t;
            return 0;
        }
    } while (!atomic_compare_exchange_weak_explicit(&l->tokens, &t, t - (int64_t)cost, memory_order_relaxed, memory_order_relaxed));
    *left = t - (int64_t)cost;
    return 1;
}

void tg_lease_prime(tg_lease_t *l, uint64_t lease_ns, uint32_t instances)
{
    if (atomic_load_explicit(&l->block, memory_order_relaxed) != 0)
        return;
    double n = instances < 1 ? 1 : instances, hi = floor(tg_lease_burst(l) / n);
    double b = ceil(tg_lease_rate(l) * (double)lease_ns / NS_PER_S / n);
    if (hi < 1)
        hi = 1;
    b = b < 1 ? 1 : b > hi ? hi : b;
    int64_t zero = 0;
    if (atomic_compare_exchange_strong_explicit(&l->block, &zero, (int64_t)b, memory_order_relaxed, memory_order_relaxed))
        atomic_store_explicit(&l->low_water, ((int64_t)b + 1) / 2, memory_order_relaxed);
}

void tg_lease_view(const tg_lease_t *l, int64_t left, unsigned cost, int admitted, tg_lease_view_t *v)
{
    double rate = tg_lease_rate(l), burst = tg_lease_burst(l);
    double global = (double)atomic_load_explicit(&l->global_milli, memory_order_relaxed) / 1000.0;
    double rem = (left > 0 ? (double)left : 0) + global;
    if (rem > burst)
        rem = burst;
    v->remaining = (uint64_t)floor(rem + 1e-9);
    v->full_in_s = (uint64_t)ceil((burst - rem) / rate - 1e-9);
    v->retry_after_s = 0;
    if (!admitted) {
        /* what this instance must still take from the global bucket: the debt, then the cost */
        double shortfall = (double)cost - (double)left - global;
        double s = shortfall <= 0 ? 1 : ceil(shortfall / rate - 1e-9);
        v->retry_after_s = s < 1 ? 1 : s > 86400 * 365.0 ? 86400 * 365 : (uint64_t)s;
    }
}

/*
 * The recent demand, from how far `asked` moved since the last sample. Before anything
 * was measured an instance expects its even share of the rate. The estimate rises at
 * once when a short window (at least 1 ms and 8 tokens: enough to mean something)
 * shows more, so a tenant that starts busy is not refused while the average catches
 * up, and falls slowly, weighted over about two leases.
 */
static void sample_demand(tg_lease_t *l, uint64_t asked, const tg_lease_params_t *p, uint64_t now_ns)
{
    tg_lease_ctl_t *c = &l->ctl;
    if (c->sampled_ns == 0) {
        c->sampled_ns = now_ns;
        c->asked_then = asked;
        c->demand_per_s = tg_lease_rate(l) / (p->instances < 1 ? 1 : p->instances);
        if (asked != 0)
            c->active_ns = now_ns;
        return;
    }
    uint64_t dt_ns = now_ns - c->sampled_ns;
    double dt = (double)dt_ns / NS_PER_S, moved = (double)(asked - c->asked_then);
    if (asked != c->asked_then)
        c->active_ns = now_ns; /* whatever the window: a call was asked, so a block may be wanted */
    int attack = dt_ns >= ATTACK_MIN_NS && moved >= ATTACK_MIN_TOKENS && moved / dt > c->demand_per_s;
    if (!attack && dt_ns < SAMPLE_MIN_NS)
        return;
    if (attack) {
        c->demand_per_s = moved / dt;
    } else {
        double tau = 2 * (double)p->lease_ns / NS_PER_S;
        if (tau < 0.2)
            tau = 0.2;
        c->demand_per_s += (1 - exp(-dt / tau)) * (moved / dt - c->demand_per_s);
    }
    c->sampled_ns = now_ns;
    c->asked_then = asked;
}

/* The block to ask for: the recent demand over one lease, between the largest cost and burst / instances. */
static int64_t block_size(const tg_lease_t *l, const tg_lease_params_t *p)
{
    double burst = tg_lease_burst(l);
    uint32_t mc = atomic_load_explicit(&l->max_cost, memory_order_relaxed);
    double lo = mc < 1 ? 1 : mc, hi = floor(burst / (p->instances < 1 ? 1 : p->instances));
    if (hi < lo)
        hi = lo;
    double size = ceil(l->ctl.demand_per_s * (double)p->lease_ns / NS_PER_S);
    return (int64_t)(size < lo ? lo : size > hi ? hi : size);
}

int64_t tg_lease_plan(tg_lease_t *l, const tg_lease_params_t *p, uint64_t now_ns)
{
    tg_lease_ctl_t *c = &l->ctl;
    sample_demand(l, atomic_load_explicit(&l->asked, memory_order_relaxed), p, now_ns);
    c->size = block_size(l, p);
    atomic_store_explicit(&l->low_water, (c->size + 1) / 2, memory_order_relaxed);
    atomic_store_explicit(&l->block, c->size, memory_order_relaxed);

    int64_t bal = atomic_load_explicit(&l->tokens, memory_order_relaxed);
    int wanted = atomic_load_explicit(&l->want, memory_order_relaxed);
    int active = c->active_ns != 0 && now_ns - c->active_ns < p->idle_ns;
    if (wanted && !active)
        atomic_store_explicit(&l->want, 0, memory_order_relaxed); /* wanted once, by calls that stopped */
    else if (active && (wanted || bal < (c->size + 1) / 2)) {
        if (now_ns < c->next_ask_ns)
            return 0; /* the bucket was empty a moment ago: wait for it to refill a block */
        atomic_store_explicit(&l->want, 0, memory_order_relaxed);
        if (bal < c->size)
            return c->size - bal; /* a block, and the debt */
        return 0;
    }
    if (bal > 0 && !active)
        return -tg_lease_drain(l); /* nobody spends it here: back to the others */
    if (bal > 2 * c->size) {
        /* the demand fell: keep one block, give back the rest */
        while (bal > 2 * c->size &&
               !atomic_compare_exchange_weak_explicit(&l->tokens, &bal, c->size, memory_order_relaxed, memory_order_relaxed))
            ;
        if (bal > 2 * c->size)
            return -(bal - c->size);
    }
    return 0;
}

/* xorshift64*: the jitter of a short grant's wait (seeded per lease: instances must not move in step) */
static double jitter(tg_lease_ctl_t *c, uint64_t now_ns)
{
    if (c->rng == 0)
        c->rng = (now_ns ^ (uint64_t)(uintptr_t)c) | 1;
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0; /* [0, 1) */
}

void tg_lease_seed(tg_lease_t *l, uint64_t seed)
{
    l->ctl.rng = seed | 1;
}

void tg_lease_granted(tg_lease_t *l, int64_t asked, int64_t granted, double global_left, uint64_t now_ns)
{
    if (granted > 0)
        atomic_fetch_add_explicit(&l->tokens, granted, memory_order_relaxed);
    atomic_store_explicit(&l->global_milli, global_left > 0 ? (uint64_t)llround(global_left * 1000) : 0, memory_order_relaxed);
    if (granted >= asked) {
        l->ctl.next_ask_ns = 0;
        return;
    }
    /*
     * Short: the global bucket is empty, and every instance that wants its tenant's
     * tokens is asking. Each waits for the bucket to refill a block (block / rate), the
     * same whatever it got, so that they ask equally often and share what comes in
     * evenly; jittered by +-50%, so that none always comes just after another.
     */
    double wait = (double)l->ctl.size / tg_lease_rate(l) * NS_PER_S * (0.5 + jitter(&l->ctl, now_ns));
    uint64_t w = wait < (double)WAIT_MIN_NS ? WAIT_MIN_NS : wait > (double)WAIT_MAX_NS ? WAIT_MAX_NS : (uint64_t)wait;
    l->ctl.next_ask_ns = now_ns + w;
    atomic_store_explicit(&l->want, 1, memory_order_relaxed); /* still wanted, when the wait is over */
}

void tg_lease_failed(tg_lease_t *l, uint64_t retry_at_ns)
{
    l->ctl.next_ask_ns = retry_at_ns;
    atomic_store_explicit(&l->want, 1, memory_order_relaxed);
}

int64_t tg_lease_drain(tg_lease_t *l)
{
    int64_t t = atomic_load_explicit(&l->tokens, memory_order_relaxed);
    while (t > 0 && !atomic_compare_exchange_weak_explicit(&l->tokens, &t, 0, memory_order_relaxed, memory_order_relaxed))
        ;
    return t > 0 ? t : 0;
}

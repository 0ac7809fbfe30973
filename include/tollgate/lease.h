/*
 * Token leases: one instance's share of a tenant's global bucket (shared_limits).
 *
 * With shared_limits the tenant's bucket lives in Redis, shared by every instance;
 * an instance never asks it on a request's way. Its lease thread (tollgate/shared.h)
 * takes tokens from it in blocks, ahead of need, into the tenant's local balance, and
 * the workers spend the balance with one compare-and-swap, as they spend a local
 * bucket. This module is that balance and the arithmetic that sizes the blocks; it
 * knows nothing of Redis, and its clock is always a parameter.
 *
 * - Spending (workers, lock-free): a call passes while it leaves the balance no lower
 *   than minus one block (or minus its own cost, if more): calls that find too little
 *   pass on credit, and the next block repays it first. So a burst on a cold or
 *   drained lease is not refused while the block it woke the thread for is on its
 *   way, and an instance is never more than one block (or one call) ahead of what it
 *   leased. A lease that was never sized starts with the instance's even share of one
 *   lease of the rate (tg_lease_prime).
 * - Sizing (the lease thread): a block covers `lease_ns` of the instance's recent
 *   demand (tokens asked here, granted or not, an exponentially weighted rate), so the
 *   instance that gets most of a tenant's traffic leases most of its tokens; at least
 *   the largest cost asked, at most burst / instances (no instance hoards the bucket).
 *   A block is asked when the balance falls under half the size (a worker wakes the
 *   thread then). A short grant (the global bucket was empty) waits until the bucket
 *   could have refilled a block, jittered, before asking again: every instance asks as
 *   often, and they share what comes in evenly.
 * - Returning: a balance nobody spends for `idle_ns` goes back to the global bucket,
 *   and so does what exceeds twice the size after the demand fell.
 */
#ifndef tollgate__lease_h
#define tollgate__lease_h

#include <stdatomic.h>
#include <stdint.h>

/*
 * Whether leases are spent now, published by the lease thread and read by every call:
 * until `good_until_ns` (the last good round trip to Redis plus one health interval)
 * leases are spent; after it, the tenant is limited locally at rate / divisor.
 */
typedef struct st_tg_lease_health_t {
    _Atomic uint64_t good_until_ns; /* 0: not reached (yet, or any more) */
    _Atomic uint32_t divisor;       /* N: live instances last seen, else expected_instances */
    _Atomic uint64_t lease_ns;      /* shared_limits.lease_ms (for tg_lease_prime) */
    int wake_fd;                    /* the lease thread's eventfd: a worker writes to it when a block is wanted */
} tg_lease_health_t;

/** 0 while leases are spent at `now_ns`, else the divisor of the local limits */
static inline uint32_t tg_lease_divisor(const tg_lease_health_t *h, uint64_t now_ns)
{
    if (now_ns < atomic_load_explicit(&h->good_until_ns, memory_order_relaxed))
        return 0;
    uint32_t n = atomic_load_explicit(&h->divisor, memory_order_relaxed);
    return n == 0 ? 1 : n;
}

/** what the lease thread alone reads and writes */
typedef struct st_tg_lease_ctl_t {
    uint64_t sampled_ns;   /* when `asked` was last sampled (0: never) */
    uint64_t asked_then;   /* its value then */
    uint64_t active_ns;    /* when calls were last asked here */
    double demand_per_s;   /* tokens asked here per second, weighted to the recent */
    int64_t size;          /* the block it asks for now */
    uint64_t next_ask_ns;  /* no ask before (after a short grant) */
    uint64_t rng;          /* the jitter's state (0: seeded at first use) */
} tg_lease_ctl_t;

/** one tenant's lease on this instance (in its live state: it outlives snapshots) */
typedef struct st_tg_lease_t {
    /* the workers' */
    _Atomic int64_t tokens;     /* leased and not spent; below 0: spent on credit */
    _Atomic uint64_t asked;     /* tokens asked for here, granted or not, ever */
    _Atomic uint32_t max_cost;  /* the largest cost asked */
    _Atomic int want;           /* the balance fell under low water: a block is wanted now */
    /* the lease thread's, read by the workers */
    _Atomic int64_t low_water;
    _Atomic int64_t block;         /* the block it asks for now (/admin/status) */
    _Atomic uint64_t global_milli; /* the global bucket's tokens after the last block, x 1000 (for RateLimit) */
    /* the tenant's settings (doubles' bits), as the current snapshot has them */
    _Atomic uint64_t rate_bits, burst_bits;
    _Atomic uint64_t local_tat_ns; /* the local bucket (rate / divisor) while Redis is away */
    tg_lease_ctl_t ctl;
} tg_lease_t;

/** the tenant's rate and burst as the config now says (any thread) */
void tg_lease_set_limits(tg_lease_t *l, double rate, double burst);
double tg_lease_rate(const tg_lease_t *l);
double tg_lease_burst(const tg_lease_t *l);

/**
 * A worker spends `cost` from the balance: 1 if the call may pass (the balance was not
 * negative), else 0. `*left` gets the balance after (or as found, when refused). Sets
 * `*wake` when the lease thread should be woken (the balance fell under low water and
 * no one asked yet).
 */
int tg_lease_take(tg_lease_t *l, unsigned cost, int64_t *left, int *wake);

/**
 * While Redis is away: a worker spends `cost` of a leased balance it still holds
 * (no credit, no wake); 1 if it could. `*left` gets the balance after (or as found).
 */
int tg_lease_spend_held(tg_lease_t *l, unsigned cost, int64_t *left);

/** gives a lease never sized its first block: the rate over one lease, shared by `instances`, within 1..burst/instances */
void tg_lease_prime(tg_lease_t *l, uint64_t lease_ns, uint32_t instances);

/** what RateLimit and Retry-After say, from this instance's view of the global bucket */
typedef struct st_tg_lease_view_t {
    uint64_t remaining;     /* the balance plus the global bucket as last seen, at most burst */
    uint64_t full_in_s;     /* (burst - remaining) / rate, rounded up */
    uint64_t retry_after_s; /* refused: until `cost` could be there, at least 1 */
} tg_lease_view_t;

void tg_lease_view(const tg_lease_t *l, int64_t left, unsigned cost, int admitted, tg_lease_view_t *v);

/** what the lease thread's controller is given */
typedef struct st_tg_lease_params_t {
    uint64_t lease_ns;  /* a block covers this much of the recent demand */
    uint64_t idle_ns;   /* a balance unspent this long goes back */
    uint32_t instances; /* live instances (at least 1) */
} tg_lease_params_t;

/**
 * What the controller wants done at `now_ns`: ask the global bucket for `n` tokens
 * (returns n > 0), give back `n` tokens it has already taken out of the balance
 * (returns -n), or nothing (0). Samples the demand and resizes the block on the way.
 */
int64_t tg_lease_plan(tg_lease_t *l, const tg_lease_params_t *p, uint64_t now_ns);

/**
 * The answer to an ask of `asked` tokens: `granted` of them, the global bucket holding
 * `global_left` after it. A short grant holds the next ask back.
 */
void tg_lease_granted(tg_lease_t *l, int64_t asked, int64_t granted, double global_left, uint64_t now_ns);

/** seeds the jitter of the waits after short grants (tests; otherwise seeded from the lease's address and the clock) */
void tg_lease_seed(tg_lease_t *l, uint64_t seed);

/** an ask that got no answer, or an error: still wanted, asked again from `retry_at_ns` on */
void tg_lease_failed(tg_lease_t *l, uint64_t retry_at_ns);

/** takes the whole positive balance out (to give it back: at a stop, or when leaving shared limits); returns it */
int64_t tg_lease_drain(tg_lease_t *l);

#endif

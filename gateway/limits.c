/*
 * Tenants and limits: API key lookup, GCRA token buckets and in-flight caps over live
 * state shared lock-free by every worker thread and carried across reloads.
 */
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tollgate/limits.h"
#include "internal.h"

#define NS_PER_S 1000000000ull

static uint64_t ceil_s(uint64_t ns)
{
    return (ns + NS_PER_S - 1) / NS_PER_S;
}

void tg_bucket_init_shared(tg_bucket_t *b, double rate, double burst, _Atomic uint64_t *tat_ns)
{
    b->tat_ns = tat_ns;
    b->rate = rate;
    b->burst = burst;
    /* The config bounds rate (1e-6..1e9/s) and burst (1..1e9), so these fit in 64 bits. */
    double interval = 1e9 / rate;
    b->interval_ns = interval < 1 ? 1 : (uint64_t)llround(interval);
    /* In the same rounded unit, so that a full bucket holds exactly `burst` tokens. */
    b->capacity_ns = (uint64_t)llround(burst * (double)b->interval_ns);
}

void tg_bucket_init(tg_bucket_t *b, double rate, double burst, uint64_t now_ns)
{
    atomic_init(&b->own_tat_ns, now_ns);
    tg_bucket_init_shared(b, rate, burst, &b->own_tat_ns);
}

/* Whole tokens in the bucket when it is `debt_ns` short of full. */
static uint64_t tokens_left(const tg_bucket_t *b, uint64_t debt_ns)
{
    double left = b->burst - (double)debt_ns / (double)b->interval_ns;
    return left <= 0 ? 0 : (uint64_t)floor(left + 1e-9);
}

int tg_bucket_take(tg_bucket_t *b, unsigned cost, uint64_t now_ns, tg_bucket_state_t *st)
{
    uint64_t tat = atomic_load_explicit(b->tat_ns, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now_ns ? tat : now_ns; /* a full bucket does not fill beyond full */
        uint64_t need, next;
        int overflow = __builtin_mul_overflow((uint64_t)cost, b->interval_ns, &need) || __builtin_add_overflow(base, need, &next);
        if (overflow || next - now_ns > b->capacity_ns) {
            if (overflow)
                next = UINT64_MAX;
            st->remaining = tokens_left(b, base - now_ns);
            st->full_in_s = ceil_s(base - now_ns);
            uint64_t wait = overflow ? UINT64_MAX / 2 : next - now_ns - b->capacity_ns;
            st->retry_after_s = wait < NS_PER_S ? 1 : ceil_s(wait);
            return 0;
        }
        if (cost == 0 ||
            atomic_compare_exchange_weak_explicit(b->tat_ns, &tat, next, memory_order_relaxed, memory_order_relaxed)) {
            st->remaining = tokens_left(b, next - now_ns);
            st->full_in_s = ceil_s(next - now_ns);
            st->retry_after_s = 0;
            return 1;
        }
        /* Another thread took tokens meanwhile: `tat` was reloaded, try again. */
    }
}

static size_t key_slot(const uint8_t digest[32], size_t mask)
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    return (size_t)h & mask;
}

static int digest_empty(const uint8_t d[32])
{
    static const uint8_t zero[32];
    return memcmp(d, zero, 32) == 0;
}

static void init_tenant(tg_limits_tenant_t *t, tg_state_t *state, const char *name, double rate, double burst, int max_in_flight,
                        tg_priority_t priority, const tg_query_list_t *queries, int enabled, uint64_t now_ns)
{
    t->state = tg_state_bind_tenant(state, name, enabled, now_ns);
    tg_bucket_init_shared(&t->bucket, rate, burst, &t->state->tat_ns);
    t->name = name;
    t->max_in_flight = max_in_flight;
    t->priority = priority;
    t->queries = queries;
    t->enabled = enabled;
    tg_buf_t policy = {0};
    tg_limits_format_policy(t, &policy);
    t->policy_len = policy.len < sizeof(t->policy) ? policy.len : sizeof(t->policy) - 1;
    memcpy(t->policy, policy.base, t->policy_len);
    t->policy[t->policy_len] = '\0';
    tg_buf_dispose(&policy);
}

tg_limits_t *tg_limits_create(tg_config_t *cfg, tg_state_t *state, uint64_t now_ns)
{
    tg_limits_t *l = tg_calloc(1, sizeof(*l));
    l->n_tenants = cfg->n_tenants + (cfg->has_anonymous ? 1 : 0);
    if (posix_memalign((void **)&l->tenants, 64, sizeof(*l->tenants) * (l->n_tenants + 1)) != 0)
        tg_fatal("out of memory");
    size_t n_keys = 0;
    for (size_t i = 0; i != cfg->n_tenants; ++i) {
        const tg_tenant_t *t = &cfg->tenants[i];
        init_tenant(&l->tenants[i], state, t->name, t->rate, t->burst, t->max_in_flight, t->priority, &t->queries, t->enabled, now_ns);
        n_keys += t->n_keys;
    }
    if (cfg->has_anonymous) {
        l->anonymous = &l->tenants[cfg->n_tenants];
        init_tenant(l->anonymous, state, "anonymous", cfg->anonymous_rate, cfg->anonymous_burst, 0, TG_PRIORITY_HIGH,
                    &cfg->anonymous_queries, 1, now_ns);
    }
    size_t cap = 16;
    while (cap < n_keys * 2)
        cap *= 2;
    l->keys = tg_calloc(cap, sizeof(*l->keys));
    l->keys_mask = cap - 1;
    for (size_t i = 0; i != cfg->n_tenants; ++i) {
        for (size_t k = 0; k != cfg->tenants[i].n_keys; ++k) {
            const uint8_t *d = cfg->tenants[i].keys[k];
            size_t s = key_slot(d, l->keys_mask);
            while (!digest_empty(l->keys[s].digest))
                s = (s + 1) & l->keys_mask;
            memcpy(l->keys[s].digest, d, 32);
            l->keys[s].tenant = (uint32_t)i;
        }
    }
    for (size_t i = 0; i != cfg->n_queries; ++i)
        cfg->queries[i].state = tg_state_bind_query(state, cfg->queries[i].name, cfg->queries[i].enabled, cfg->queries[i].sql);
    /* what shapes each answer, for the cache's keys: the statement (SQL and parameter types), returns, max_rows, status */
    for (size_t i = 0; i != cfg->n_queries; ++i) {
        tg_query_t *q = &cfg->queries[i];
        uint64_t parts[3] = {(uint64_t)q->returns, (uint64_t)cfg->max_rows, (uint64_t)q->status};
        q->cache_def = tg_fnv1a(tg_fnv1a(TG_FNV1A_INIT, q->stmt_name, strlen(q->stmt_name)), parts, sizeof(parts));
    }
    /* what each write invalidates, by state: the names were checked against the catalog */
    for (size_t i = 0; i != cfg->n_queries; ++i) {
        tg_query_t *q = &cfg->queries[i];
        if (q->n_invalidates == 0)
            continue;
        q->invalidate_states = tg_calloc(q->n_invalidates, sizeof(*q->invalidate_states));
        for (size_t j = 0; j != q->n_invalidates; ++j)
            q->invalidate_states[j] = tg_config_find_query(cfg, q->invalidates[j])->state;
    }
    l->in_flight = &state->in_flight;
    l->max_in_flight = cfg->max_in_flight;
    return l;
}

void tg_limits_free(tg_limits_t *l)
{
    if (l == NULL)
        return;
    free(l->tenants);
    free(l->keys);
    free(l);
}

void tg_limits_share(tg_limits_t *l, const tg_lease_health_t *health)
{
    l->shared = health;
    for (size_t i = 0; i != l->n_tenants; ++i) {
        tg_lease_t *lease = &l->tenants[i].state->lease;
        tg_lease_set_limits(lease, l->tenants[i].bucket.rate, l->tenants[i].bucket.burst);
        tg_lease_prime(lease, atomic_load(&health->lease_ns), atomic_load(&health->divisor));
    }
}

tg_limits_tenant_t *tg_limits_find_key(const tg_limits_t *l, const char *key, size_t len)
{
    uint8_t d[32];
    SHA256((const unsigned char *)key, len, d);
    /*
     * Lookups compare digests, never keys (a digest says nothing usable about its key),
     * and in constant time all the same.
     */
    for (size_t s = key_slot(d, l->keys_mask);; s = (s + 1) & l->keys_mask) {
        if (digest_empty(l->keys[s].digest))
            return NULL;
        if (CRYPTO_memcmp(l->keys[s].digest, d, 32) == 0)
            return &l->tenants[l->keys[s].tenant];
    }
}

/*
 * Takes a slot under `cap` (0: no cap, but still counted). Returns 1 if taken. A
 * compare-and-swap rather than add-then-undo, so a refused caller never makes the
 * count look higher to others for a moment.
 */
static int take_slot(_Atomic int *counter, int cap)
{
    if (cap <= 0) {
        atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
        return 1;
    }
    int n = atomic_load_explicit(counter, memory_order_relaxed);
    do {
        if (n >= cap)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(counter, &n, n + 1, memory_order_relaxed, memory_order_relaxed));
    return 1;
}

/*
 * Takes `cost` of the tenant's tokens: from its own bucket, or with shared_limits from
 * its lease of the global one, or, while Redis is away, from what is left of that
 * lease and then a local bucket of its share (rate / divisor, burst / divisor: the
 * divisor is the live instances last seen).
 */
static int take_tokens(const tg_limits_t *l, tg_limits_tenant_t *t, unsigned cost, uint64_t now_ns, tg_bucket_state_t *st)
{
    if (l->shared == NULL)
        return tg_bucket_take(&t->bucket, cost, now_ns, st);
    uint32_t n = tg_lease_divisor(l->shared, now_ns);
    if (n == 0) {
        int64_t left;
        int wake;
        int ok = tg_lease_take(&t->state->lease, cost, &left, &wake);
        if (wake && l->shared->wake_fd >= 0) {
            uint64_t one = 1;
            (void)!write(l->shared->wake_fd, &one, sizeof(one)); /* an eventfd: never blocks, never short */
        }
        tg_lease_view_t v;
        tg_lease_view(&t->state->lease, left, cost, ok, &v);
        *st = (tg_bucket_state_t){.remaining = v.remaining, .full_in_s = v.full_in_s, .retry_after_s = v.retry_after_s};
        return ok;
    }
    /* a balance leased before Redis went away is spent first: the local bucket started empty then (shared.c) */
    int64_t left;
    if (tg_lease_spend_held(&t->state->lease, cost, &left)) {
        tg_lease_view_t v;
        tg_lease_view(&t->state->lease, left, cost, 1, &v);
        *st = (tg_bucket_state_t){.remaining = v.remaining, .full_in_s = v.full_in_s};
        return 1;
    }
    tg_bucket_t local;
    double burst = t->bucket.burst / n;
    tg_bucket_init_shared(&local, t->bucket.rate / n, burst < 1 ? 1 : burst, &t->state->lease.local_tat_ns);
    return tg_bucket_take(&local, cost, now_ns, st);
}

void tg_limits_peek(const tg_limits_t *l, tg_limits_tenant_t *tenant, uint64_t now_ns, tg_bucket_state_t *st)
{
    take_tokens(l, tenant, 0, now_ns, st);
}

tg_admit_t tg_limits_admit(tg_limits_t *l, tg_limits_tenant_t *tenant, const tg_query_t *q, uint64_t now_ns,
                           tg_bucket_state_t *bucket, tg_admission_t *adm)
{
    tg_tenant_state_t *ts = tenant->state;
    tg_query_state_t *qs = q->state;
    *adm = (tg_admission_t){.tenant = ts, .query = qs, .gateway = l->in_flight};
    if (tg_state_is_off(&ts->switched, tenant->enabled)) {
        take_tokens(l, tenant, 0, now_ns, bucket);
        return TG_ADMIT_TENANT_DISABLED;
    }
    if (!take_tokens(l, tenant, (unsigned)q->cost, now_ns, bucket))
        return TG_ADMIT_RATE_LIMITED;
    if (!take_slot(&ts->in_flight, tenant->max_in_flight))
        return TG_ADMIT_TENANT_BUSY;
    adm->holds_tenant = 1;
    if (tg_state_is_off(&qs->switched, q->enabled)) {
        tg_limits_release(adm);
        return TG_ADMIT_QUERY_DISABLED;
    }
    if (!take_slot(&qs->in_flight, q->max_in_flight)) {
        tg_limits_release(adm);
        return TG_ADMIT_QUERY_BUSY;
    }
    adm->holds_query = 1;
    if (!take_slot(l->in_flight, l->max_in_flight)) {
        tg_limits_release(adm);
        return TG_ADMIT_GATEWAY_BUSY;
    }
    adm->holds_gateway = 1;
    return TG_ADMIT_OK;
}

void tg_limits_release(tg_admission_t *adm)
{
    if (adm->holds_tenant)
        atomic_fetch_sub_explicit(&adm->tenant->in_flight, 1, memory_order_relaxed);
    if (adm->holds_query)
        atomic_fetch_sub_explicit(&adm->query->in_flight, 1, memory_order_relaxed);
    if (adm->holds_gateway)
        atomic_fetch_sub_explicit(adm->gateway, 1, memory_order_relaxed);
    adm->holds_tenant = adm->holds_query = adm->holds_gateway = 0;
}

void tg_limits_format_policy(const tg_limits_tenant_t *t, tg_buf_t *out)
{
    tg_buf_printf(out, "\"tenant\";q=%.0f;w=%.0f", floor(t->bucket.burst), ceil(t->bucket.burst / t->bucket.rate - 1e-9));
}

void tg_limits_format_state(const tg_bucket_state_t *st, tg_buf_t *out)
{
    tg_buf_appends(out, "\"tenant\";r=");
    tg_buf_append_uint(out, st->remaining);
    tg_buf_appends(out, ";t=");
    tg_buf_append_uint(out, st->full_in_s);
}

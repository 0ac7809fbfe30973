/*
 * Tenants and limits: who a request is (API key -> tenant), and the limits every
 * call passes before it reaches a backend, in the documented order (docs/reference.md): tenant switched off,
 * tenant token bucket and in-flight cap, query switched off and in-flight cap, the
 * gateway-wide in-flight cap.
 *
 * A snapshot's limits are its settings bound to live state found by name
 * (tollgate/state.h), which every worker thread shares lock-free and a reload keeps:
 * a bucket is one atomic word (GCRA: the "theoretical arrival time" of the next token,
 * in nanoseconds), so concurrent takers can never spend the same tokens; in-flight
 * caps are atomic counters. Each tenant's state sits on its own cache line.
 */
#ifndef tollgate__limits_h
#define tollgate__limits_h

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/lease.h"
#include "tollgate/state.h"

/**
 * A token bucket: `burst` tokens, refilled at `rate` per second, as GCRA. The one word
 * of state (`*tat_ns`) is the bucket's own, or a tenant's live state shared by every
 * snapshot (tg_bucket_init_shared), so that a reload keeps what was spent; the rest is
 * the snapshot's settings, never written once made.
 */
typedef struct st_tg_bucket_t {
    _Atomic uint64_t *tat_ns;    /* when the bucket is full again (<= now: full) */
    _Atomic uint64_t own_tat_ns; /* the word `tat_ns` points at, for a bucket of its own */
    uint64_t interval_ns;        /* one token's worth of time: 1e9 / rate */
    uint64_t capacity_ns;        /* burst tokens' worth of time: burst * interval */
    double rate, burst;
} tg_bucket_t;

/** what a take found */
typedef struct st_tg_bucket_state_t {
    uint64_t remaining;      /* whole tokens left after the take (or now, when refused) */
    uint64_t full_in_s;      /* seconds until the bucket is full again, rounded up */
    uint64_t retry_after_s;  /* when refused: seconds until the cost is available, rounded up (at least 1) */
} tg_bucket_state_t;

/** a bucket of its own, full at `now_ns` (it must not be copied: it points at itself) */
void tg_bucket_init(tg_bucket_t *b, double rate, double burst, uint64_t now_ns);

/** a bucket whose state is the word `tat_ns` (a tenant's live state) */
void tg_bucket_init_shared(tg_bucket_t *b, double rate, double burst, _Atomic uint64_t *tat_ns);

/**
 * Takes `cost` tokens at `now_ns` if they are there (returns 1) or takes nothing
 * (returns 0); a cost of 0 only reads. `st` says what is left either way. Exact under
 * any number of threads.
 */
int tg_bucket_take(tg_bucket_t *b, unsigned cost, uint64_t now_ns, tg_bucket_state_t *st);

/** one tenant as a snapshot sees it: its settings, and its live state (found by name) */
typedef struct st_tg_limits_tenant_t {
    tg_bucket_t bucket;
    tg_tenant_state_t *state;       /* in flight, switch, the bucket's word: carried across reloads */
    const char *name;
    int max_in_flight;              /* 0: no cap */
    int enabled;                    /* what the files say (`enabled`); an operator's switch overrides it */
    tg_priority_t priority;
    const tg_query_list_t *queries; /* what it may call (the config's list) */
    char policy[64];                /* its RateLimit-Policy value, made once (tg_limits_format_policy) */
    size_t policy_len;
} __attribute__((aligned(64))) tg_limits_tenant_t;

/** all of it, for one snapshot */
typedef struct st_tg_limits_t {
    tg_limits_tenant_t *tenants;  /* config order, then "anonymous" when configured */
    size_t n_tenants;
    tg_limits_tenant_t *anonymous; /* NULL: keyless requests get 401 */
    struct {
        uint8_t digest[32];
        uint32_t tenant;          /* index into tenants */
    } *keys;                     /* open addressing on the digest; digest of all zero bytes: empty */
    size_t keys_mask;
    _Atomic int *in_flight;      /* gateway-wide (the live state's) */
    int max_in_flight;           /* 0: no cap */
    const tg_lease_health_t *shared; /* shared_limits: tenants spend leases of their global buckets; NULL: local buckets */
} tg_limits_t;

/**
 * The limits of `cfg`, bound to the live state in `state`: every tenant (and
 * anonymous) to the state of its name (a new name's bucket full at `now_ns`), and
 * every query's `state` to the state of its name. `cfg` must outlive the result.
 */
tg_limits_t *tg_limits_create(tg_config_t *cfg, tg_state_t *state, uint64_t now_ns);
void tg_limits_free(tg_limits_t *l);

/**
 * From now on (before the snapshot is published) the tenants' buckets are global
 * (shared_limits): each call spends its tenant's lease while `health` says Redis is
 * there, else a local bucket of rate / divisor and burst / divisor. Gives every tenant's
 * lease its rate and burst.
 */
void tg_limits_share(tg_limits_t *l, const tg_lease_health_t *health);

/**
 * The tenant an API key belongs to, or NULL. The key is hashed (SHA-256) and only the
 * digest is looked up and compared, so the time taken says nothing about the keys.
 */
tg_limits_tenant_t *tg_limits_find_key(const tg_limits_t *l, const char *key, size_t len);

/** how a call fared against the limits */
typedef enum en_tg_admit_t {
    TG_ADMIT_OK,
    TG_ADMIT_TENANT_DISABLED,  /* 403 */
    TG_ADMIT_RATE_LIMITED,     /* 429, the bucket is short */
    TG_ADMIT_TENANT_BUSY,      /* 429, the tenant's in-flight cap */
    TG_ADMIT_QUERY_DISABLED,   /* 503 */
    TG_ADMIT_QUERY_BUSY,       /* 503, the query's in-flight cap */
    TG_ADMIT_GATEWAY_BUSY,     /* 503, the gateway's in-flight cap */
} tg_admit_t;

/** the slots a call holds while it runs (in live state, so a reload meanwhile changes nothing) */
typedef struct st_tg_admission_t {
    tg_tenant_state_t *tenant;
    tg_query_state_t *query;
    _Atomic int *gateway;
    uint8_t holds_tenant, holds_query, holds_gateway;
} tg_admission_t;

/**
 * Applies every limit, in order, for `tenant` calling `q` at `now_ns`; `bucket` gets
 * the bucket's state (for the RateLimit headers). On TG_ADMIT_OK the call holds an
 * in-flight slot at each capped layer until tg_limits_release. A refusal holds
 * nothing (the tokens taken by a later refusal are not given back, as in any bucket).
 */
tg_admit_t tg_limits_admit(tg_limits_t *l, tg_limits_tenant_t *tenant, const tg_query_t *q, uint64_t now_ns,
                           tg_bucket_state_t *bucket, tg_admission_t *adm);

/** what the tenant's bucket holds at `now_ns` (its lease's view with shared_limits), taking nothing */
void tg_limits_peek(const tg_limits_t *l, tg_limits_tenant_t *tenant, uint64_t now_ns, tg_bucket_state_t *st);

/** gives back the in-flight slots of an admitted call (idempotent) */
void tg_limits_release(tg_admission_t *adm);

/** `RateLimit-Policy` value: "tenant";q=<burst>;w=<ceil(burst/rate)> */
void tg_limits_format_policy(const tg_limits_tenant_t *t, tg_buf_t *out);

/** `RateLimit` value: "tenant";r=<remaining>;t=<seconds until full> */
void tg_limits_format_state(const tg_bucket_state_t *st, tg_buf_t *out);

#endif

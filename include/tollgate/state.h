/*
 * Live state that outlives any one config snapshot, found by name: each tenant's
 * bucket and in-flight count, each query's in-flight count, kill switch and latency
 * estimate, the gateway's in-flight count. A reload builds a new snapshot whose
 * tenants and queries point at the state of the same names, so buckets, switches and
 * counters carry over, and a query or tenant that is new starts fresh.
 *
 * The values are atomics (or per-thread slots) read and written by the workers
 * without locks; the registry's mutex only guards finding and creating entries, which
 * happens when a snapshot is built and when an operator names one (admin calls).
 * Entries live as long as the registry: a name that leaves the config and comes back
 * finds its old state.
 */
#ifndef tollgate__state_h
#define tollgate__state_h

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "tollgate/cache.h"
#include "tollgate/lease.h"

/** an operator's switch, set through the admin API */
typedef enum en_tg_switch_t {
    TG_SWITCH_NONE = 0, /* the files decide (`enabled`) */
    TG_SWITCH_OFF = 1,  /* switched off by an operator */
    TG_SWITCH_ON = 2,   /* switched on by an operator, whatever the files say */
} tg_switch_t;

/*
 * What a query is expected to take before it was ever measured: as much as a pipeline
 * may hold (TG_PIPELINE_MAX_WAIT_MS in pool.c), so an unmeasured query never queues
 * behind another and nothing queues behind it until its first result says it is quick.
 */
#define TG_EST_INITIAL_MS 10.0

/** one worker thread's view of a query: written by that thread only */
typedef struct st_tg_query_slot_t {
    _Atomic uint64_t calls;  /* calls answered (relaxed stores by the owner; others only read) */
    _Atomic uint64_t errors; /* of which answered with a status of 500 or more */
    double est_ms;           /* recent execution time, an exponentially weighted average (the pool's; only the owner reads it) */
} __attribute__((aligned(64))) tg_query_slot_t;

/** the owner thread counts an answer of its query with `status` */
static inline void tg_query_slot_count(tg_query_slot_t *slot, int status)
{
    atomic_store_explicit(&slot->calls, atomic_load_explicit(&slot->calls, memory_order_relaxed) + 1, memory_order_relaxed);
    if (status >= 500)
        atomic_store_explicit(&slot->errors, atomic_load_explicit(&slot->errors, memory_order_relaxed) + 1, memory_order_relaxed);
}

/** a query's live state */
typedef struct st_tg_query_state_t {
    _Atomic int in_flight;     /* calls admitted and not answered, over all threads and snapshots */
    _Atomic int switched;      /* tg_switch_t */
    _Atomic int retry_after_s; /* what a switched-off query answers with */
    int file_enabled;          /* `enabled` in the files when last bound (a change there clears the switch) */
    char *name;
    uint32_t id;               /* 1, 2, ... in order of creation: its label in the metrics (tollgate/metrics.h) */
    char *reason;              /* why it was switched off (for /admin/status and the log), or NULL; guarded by the registry */
    tg_query_slot_t *slots;    /* one per worker thread */
    /* the result cache (tollgate/cache.h) */
    _Atomic uint64_t cache_epoch;     /* bumped by a write that invalidates it, a purge, or new SQL: older entries are not served */
    _Atomic uint64_t cache_invalidated_ms; /* tg_now_ms() of the last invalidation, 0 never */
    _Atomic int64_t cache_entries, cache_bytes;
    _Atomic uint64_t cache_evictions;
    uint64_t sql_hash;                /* of the SQL when last bound (a change bumps the epoch) */
    tg_cache_query_t cache;           /* the above as the cache counts into them (made once, with the state) */
} __attribute__((aligned(64))) tg_query_state_t;

/** a tenant's live state */
typedef struct st_tg_tenant_state_t {
    _Atomic uint64_t tat_ns; /* its bucket: when it is full again (GCRA); see tg_bucket_t */
    _Atomic int in_flight;
    _Atomic int switched;    /* tg_switch_t */
    int file_enabled;        /* `enabled` in the files when last bound */
    char *name;
    uint32_t id;             /* 1, 2, ... in order of creation (metrics) */
    char *reason;            /* guarded by the registry */
    tg_lease_t lease;        /* with shared_limits: its share of the global bucket (tollgate/lease.h) */
} __attribute__((aligned(64))) tg_tenant_state_t;

typedef struct st_tg_state_t {
    pthread_mutex_t mutex;
    tg_query_state_t **queries; /* every query state ever made, in order of creation */
    size_t n_queries, cap_queries;
    tg_tenant_state_t **tenants;
    size_t n_tenants, cap_tenants;
    char **backends;            /* every backend name ever bound: backend id i + 1 is backends[i] (metrics) */
    size_t n_backends, cap_backends;
    size_t n_threads;           /* slots per query */
    _Atomic int in_flight;      /* gateway-wide */
} tg_state_t;

/** a registry whose query states have `n_threads` per-thread slots */
tg_state_t *tg_state_create(size_t n_threads);
void tg_state_free(tg_state_t *s);

/**
 * The state of query (or tenant) `name`, made if new (a new tenant's bucket is full at
 * `now_ns`). `file_enabled` is what the files say now: when it differs from what they
 * said when the state was last bound, an operator's switch that says otherwise is
 * cleared (with its reason), since the files were changed on purpose. Takes the
 * registry's mutex.
 */
tg_query_state_t *tg_state_bind_query(tg_state_t *s, const char *name, int file_enabled, const char *sql);
tg_tenant_state_t *tg_state_bind_tenant(tg_state_t *s, const char *name, int file_enabled, uint64_t now_ns);

/** the id (1, 2, ...) of backend name `name`, made if new; the same name keeps its id. Takes the mutex. */
uint32_t tg_state_bind_backend(tg_state_t *s, const char *name);

/**
 * The name of query, tenant or backend `id` (ids of tg_state_t's entries), or NULL for
 * 0 or an unknown id. Call with the registry's mutex held; names never change or move.
 */
const char *tg_state_query_name(const tg_state_t *s, uint32_t id);
const char *tg_state_tenant_name(const tg_state_t *s, uint32_t id);
const char *tg_state_backend_name(const tg_state_t *s, uint32_t id);

/**
 * Invalidates the query's cached results: its epoch moves on, and the time is kept
 * (fetches soon after read from the primary: a replica may not have the write yet).
 * Any thread, no lock.
 */
void tg_state_invalidate(tg_query_state_t *q);

/** drops the query's cached results without the primary window (a purge, new SQL): the epoch only */
void tg_state_drop_cached(tg_query_state_t *q);

/** finds without making; NULL if there is none. Takes the registry's mutex. */
tg_query_state_t *tg_state_find_query(tg_state_t *s, const char *name);
tg_tenant_state_t *tg_state_find_tenant(tg_state_t *s, const char *name);

/** is it switched off now, given what its files say? */
static inline int tg_state_is_off(_Atomic int *switched, int file_enabled)
{
    int sw = atomic_load_explicit(switched, memory_order_relaxed);
    return sw == TG_SWITCH_OFF || (sw == TG_SWITCH_NONE && !file_enabled);
}

/**
 * An operator's switch with its reason (copied; NULL for none). TG_SWITCH_ON on a name
 * the files enable hands it back to the files (TG_SWITCH_NONE), decided under the
 * registry's mutex from what the files said when last bound. Takes the mutex.
 */
void tg_state_switch_query(tg_state_t *s, tg_query_state_t *q, tg_switch_t sw, int retry_after_s, const char *reason);
void tg_state_switch_tenant(tg_state_t *s, tg_tenant_state_t *t, tg_switch_t sw, const char *reason);

#endif

/*
 * Counters and histograms kept per worker thread, with no lock and no shared cache
 * line on the hot path, summed when /metrics is scraped.
 *
 * Each thread owns a table of cells keyed by (kind, a, b, c): kind says what is
 * counted, a/b/c are ids from the live-state registry (query, tenant, backend: names
 * from the config, never from request data, so the label space is bounded) and small
 * codes (a status, a reason). A cell is made the first time its key is counted and
 * lives as long as the table. Only the owner writes a cell (a relaxed load and store,
 * no read-modify-write); the scraper reads cells with relaxed loads and finds them
 * through chunk lists published with release stores, so it never blocks the owner.
 */
#ifndef tollgate__metrics_h
#define tollgate__metrics_h

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/** what a cell counts; a, b and c are as listed */
typedef enum en_tg_metric_kind_t {
    TG_M_REQUESTS = 1,    /* counter: a query id (0: none), b tenant id (0: none), c HTTP status */
    TG_M_REFUSED,         /* counter: a tenant id, c tg_refusal_t */
    TG_M_SHED,            /* counter: a query id, c tg_shed_t */
    TG_M_CACHE,           /* counter: a query id, c how a cached call was answered, or TG_CACHE_REFRESH: a refresh started (handlers/respond.h) */
    TG_M_READ_AFTER,      /* counter: a query id, c tg_read_after_t: where a read with Tollgate-Read-After was served */
    TG_M_REQUEST_SECONDS, /* histogram: a query id */
    TG_M_DB_SECONDS,      /* histogram: a query id, b backend id */
    TG_M_WAIT_SECONDS,    /* histogram: a query id (admission to the call's first send) */
    TG_M__END
} tg_metric_kind_t;

/** why a tenant's call was refused before it cost the database anything */
typedef enum en_tg_refusal_t {
    TG_REFUSAL_RATE_LIMITED,   /* its bucket was empty (429) */
    TG_REFUSAL_TENANT_BUSY,    /* its in-flight cap (429) */
    TG_REFUSAL_TENANT_DISABLED, /* switched off (403) */
    TG_REFUSAL_FORBIDDEN,      /* a query it may not call (403) */
    TG_REFUSAL__END
} tg_refusal_t;

/** why an admitted or admissible call was not served */
typedef enum en_tg_shed_t {
    TG_SHED_QUERY_DISABLED, /* the query's kill switch (503) */
    TG_SHED_QUERY_BUSY,     /* the query's in-flight cap (503) */
    TG_SHED_GATEWAY_BUSY,   /* max_in_flight (503) */
    TG_SHED_QUEUE_FULL,     /* the pool's wait queue was full (503) */
    TG_SHED_POOL_TIMEOUT,   /* no connection within acquire_timeout_ms (503) */
    TG_SHED_NO_BACKEND,     /* no backend could take it (503) */
    TG_SHED_SHUTTING_DOWN,  /* the gateway was stopping (503) */
    TG_SHED_CLIENT_GONE,    /* the client left before its answer */
    TG_SHED_BACKEND_OVERLOADED, /* every backend that could take it was at its adaptive limit (503) */
    TG_SHED__END
} tg_shed_t;

/** where a read with a read-after token was served */
typedef enum en_tg_read_after_t {
    TG_READ_AFTER_REPLICA,        /* a replica had replayed past it already */
    TG_READ_AFTER_REPLICA_WAITED, /* a replica, after waiting for it to replay that far */
    TG_READ_AFTER_PRIMARY,        /* the primary (none had, within read_after_wait_ms, or none could) */
    TG_READ_AFTER_CACHE,          /* a cached entry read after the write */
    TG_READ_AFTER__END
} tg_read_after_t;

/** the label value of a refusal or shed reason, or of where a read after a token was served */
const char *tg_refusal_name(tg_refusal_t r);
const char *tg_shed_name(tg_shed_t s);
const char *tg_read_after_name(tg_read_after_t s);

/** histogram buckets: upper bounds in microseconds (the last bucket, +Inf, is implied) */
#define TG_METRICS_BUCKETS 15
extern const uint64_t tg_metrics_bucket_us[TG_METRICS_BUCKETS - 1];

typedef struct st_tg_metrics_thread_t tg_metrics_thread_t;

tg_metrics_thread_t *tg_metrics_thread_create(void);
void tg_metrics_thread_free(tg_metrics_thread_t *t);

/** adds one to counter (kind, a, b, c); owner thread only */
void tg_metrics_count(tg_metrics_thread_t *t, tg_metric_kind_t kind, uint32_t a, uint32_t b, uint32_t c);

/** adds an observation of `us` microseconds to histogram (kind, a, b); owner thread only */
void tg_metrics_observe(tg_metrics_thread_t *t, tg_metric_kind_t kind, uint32_t a, uint32_t b, uint64_t us);

/** one series as scraped: a counter's value in v[0]; a histogram's buckets (not cumulative) in v[0..14], its sum in us in v[15] */
typedef struct st_tg_metrics_series_t {
    uint64_t key;
    uint64_t v[TG_METRICS_BUCKETS + 1];
} tg_metrics_series_t;

/** the parts of a key */
static inline tg_metric_kind_t tg_metrics_key_kind(uint64_t key) { return (tg_metric_kind_t)(key >> 60); }
static inline uint32_t tg_metrics_key_a(uint64_t key) { return (uint32_t)(key >> 40) & 0xfffff; }
static inline uint32_t tg_metrics_key_b(uint64_t key) { return (uint32_t)(key >> 20) & 0xfffff; }
static inline uint32_t tg_metrics_key_c(uint64_t key) { return (uint32_t)key & 0xfffff; }

/**
 * Every series of the `n` tables, summed over them, sorted by key (so by kind, then
 * a, b, c): a malloc'd array (*out) of the returned length. Any thread; the owners
 * keep counting meanwhile.
 */
size_t tg_metrics_collect(tg_metrics_thread_t *const *tables, size_t n, tg_metrics_series_t **out);

#endif

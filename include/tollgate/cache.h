/*
 * The result cache: one logical cache shared by every worker thread, sharded so
 * threads rarely meet on a lock, that never lets a miss storm through.
 *
 * An entry is a finished answer (status, content type, body) kept as a blob with an
 * atomic reference count: a hit takes a reference and sends the blob's bytes as they
 * are, so one body serves any number of requests on any thread without a copy.
 *
 * Single flight: a key has at most one fetch (a "flight") per epoch. The first miss
 * makes it and is told to fetch (TG_CACHE_LEAD); later misses, on any thread, join it
 * as waiters (TG_CACHE_JOINED). The flight is not a request: when the fetch ends,
 * tg_cache_complete hands every waiter a reference to the same answer through the
 * waiter's `deliver` (which wakes the waiter's own thread), and stores it if it may
 * be cached. A waiter that leaves is taken out of its flight; the fetch goes on for
 * the others.
 *
 * Stale-while-revalidate: past its TTL and within its stale time an entry is still
 * served (TG_CACHE_STALE), and the first such caller is also told to refresh it
 * (TG_CACHE_STALE_LEAD: a flight with no waiters); a failed refresh leaves the stale
 * entry serving until its stale time runs out.
 *
 * Invalidation is by epoch: each query has a counter (its live state's) that writes,
 * purges and SQL changes bump; an entry or flight of an older epoch is never served
 * or joined, and is reclaimed when met (or purged). Memory: every entry's key, body
 * and bookkeeping count against max_bytes (split evenly over the shards); the least
 * recently used entries go first.
 */
#ifndef tollgate__cache_h
#define tollgate__cache_h

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "tollgate/consistency.h"

/** a finished answer, shared by reference */
typedef struct st_tg_cache_blob_t {
    _Atomic long refs;
    int status;
    int problem;          /* the body is application/problem+json (else application/json) */
    int retry_after_s;    /* > 0: a Retry-After to send */
    int shed;             /* tg_shed_t + 1 when the answer sheds the call (no backend, pool timeout), else 0 */
    int stored;           /* it was stored (set before it is delivered) */
    uint64_t stored_at_ms; /* when it was made (tg_now_ms): the Age of a hit */
    const struct st_tg_backend_t *backend; /* where it was fetched (backends live as long as the gateway), or NULL */
    float db_ms;          /* how long the fetch ran on it */
    uint64_t sent_ns;     /* when the fetch went out (tg_now_ns), or 0 */
    uint32_t data_timeline; /* a WAL position its data is known to include (tg_call_t.data_lsn); timeline 0: none known */
    uint64_t data_lsn;
    int read_after_waited;  /* its fetch waited for a replica to replay past its token */
    size_t len;
    char body[];
} tg_cache_blob_t;

/** a blob of `len` bytes (copied from `body`), one reference */
tg_cache_blob_t *tg_cache_blob_new(int status, int problem, const char *body, size_t len);
static inline tg_cache_blob_t *tg_cache_blob_ref(tg_cache_blob_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
void tg_cache_blob_unref(tg_cache_blob_t *b);

/** what a query's entries count into: its live state's figures (they outlive the cache's entries) */
typedef struct st_tg_cache_query_t {
    uint32_t id;                 /* part of every key */
    _Atomic uint64_t *epoch;     /* bumped to invalidate */
    _Atomic int64_t *entries, *bytes; /* gauges */
    _Atomic uint64_t *evictions; /* entries dropped for room */
} tg_cache_query_t;

typedef struct st_tg_cache_flight_t tg_cache_flight_t;

/** a caller waiting for a flight, embedded in the caller's own state */
typedef struct st_tg_cache_waiter_t {
    struct st_tg_cache_waiter_t *next, **pprev; /* in its flight (guarded by the shard's lock) */
    tg_cache_flight_t *flight;   /* NULL once delivery has begun (or never joined); read under the shard's lock */
    struct st_tg_shard_t *shard; /* the shard of the flight it joined (never cleared: leaving locks it first) */
    /* called once, on the completing thread, outside any lock, with a reference for the waiter */
    void (*deliver)(struct st_tg_cache_waiter_t *w, tg_cache_blob_t *answer);
} tg_cache_waiter_t;

typedef enum en_tg_cache_lookup_t {
    TG_CACHE_HIT,        /* *blob: a fresh entry (a reference) */
    TG_CACHE_STALE,      /* *blob: a stale entry (a reference); its refresh is under way */
    TG_CACHE_STALE_LEAD, /* *blob: a stale entry (a reference), and *flight: the refresh to fetch (no waiter) */
    TG_CACHE_LEAD,       /* a miss: *flight to fetch, and the waiter joined it */
    TG_CACHE_JOINED,     /* a miss with a fetch under way: the waiter joined it */
    TG_CACHE_BYPASS,     /* tg_cache_lookup_after: no entry has the token's write and a fetch is under way: read without the cache */
} tg_cache_lookup_t;

typedef struct st_tg_cache_t tg_cache_t;

/** a cache of at most `max_bytes` (0: nothing is stored, but misses still share their fetch) */
tg_cache_t *tg_cache_create(size_t max_bytes);
void tg_cache_free(tg_cache_t *c);

/**
 * Looks `key` (its query's id first: tg_cache_key) up at `now_ms` and the query's
 * current epoch, with `waiter` ready to join a flight on a miss. Any thread.
 */
tg_cache_lookup_t tg_cache_lookup(tg_cache_t *c, const tg_cache_query_t *q, const void *key, size_t key_len, uint64_t now_ms,
                                  tg_cache_waiter_t *waiter, tg_cache_blob_t **blob, tg_cache_flight_t **flight);

/**
 * The fetch of `flight` ended with `answer` (a reference the call takes over; never
 * NULL): every waiter gets it, and it is stored for `ttl_ms` (+ `stale_ms`) if
 * `cacheable`, the max_bytes allow it and the query's epoch is still the flight's.
 * An uncacheable answer of a refresh leaves the stale entry as it was. Frees the flight.
 */
void tg_cache_complete(tg_cache_t *c, tg_cache_flight_t *flight, tg_cache_blob_t *answer, int cacheable, int ttl_ms, int stale_ms,
                       uint64_t now_ms);

/**
 * tg_cache_lookup for a read that must include the write of token `after` (NULL: as
 * tg_cache_lookup): an entry counts only if its data includes that write
 * (tg_rw_entry_fresh on the blob's data_timeline and data_lsn); no waiter joins a fetch
 * already under way (TG_CACHE_BYPASS: it may have been sent before the write). A miss
 * leads a fetch as usual: the caller sends it with the token, and those who join it
 * later get what it read.
 */
tg_cache_lookup_t tg_cache_lookup_after(tg_cache_t *c, const tg_cache_query_t *q, const void *key, size_t key_len, uint64_t now_ms,
                                        const tg_rw_token_t *after, tg_cache_waiter_t *waiter, tg_cache_blob_t **blob,
                                        tg_cache_flight_t **flight);

/** the key bytes of a flight (its fetch binds its values from them) */
const void *tg_cache_flight_key(const tg_cache_flight_t *f, size_t *len);

/**
 * Takes `waiter` out of its flight: 1 if it was still waiting (it will not be
 * delivered), 0 if delivery has begun (it will be, once, on the completing thread).
 */
int tg_cache_leave(tg_cache_t *c, tg_cache_waiter_t *waiter);

/** drops every stored entry of query `id` (0: of every query); flights go on. Returns the entries dropped. */
size_t tg_cache_purge(tg_cache_t *c, uint32_t id);

/** a new max_bytes (a reload): the least recently used entries past it go at once */
void tg_cache_set_max_bytes(tg_cache_t *c, size_t max_bytes);

/** bytes counted against max_bytes, over every shard */
size_t tg_cache_bytes(tg_cache_t *c);

/**
 * The key of a call: the query's id, a hash of its definition (`def`: what shapes its
 * answer, so a reload that changes it never meets the old answers, even from workers
 * still on the old snapshot), then each value as (1 byte: NULL or not, 4 bytes of
 * length, the bytes, a NUL), so distinct value lists never share a key and the values
 * can be bound from the key itself. Writes to `out` (`cap` bytes); returns the length,
 * or 0 if it does not fit.
 */
#define TG_CACHE_KEY_HEAD 12
size_t tg_cache_key(uint32_t query_id, uint64_t def, const char *const *values, size_t n_values, char *out, size_t cap);

/** the `n_values` values of a key (pointers into `key`, NULL for SQL NULL): 0, or -1 if it does not hold as many */
int tg_cache_key_values(const char *key, size_t len, const char **values, size_t n_values);

#endif

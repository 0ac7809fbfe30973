/* The result cache: sharded entries, single flight, stale-while-revalidate (tollgate/cache.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/cache.h"
#include "internal.h"

/* Shards: threads meet on one lock only when their keys hash to it. */
#define TG_CACHE_SHARDS 64
/* What an entry costs beyond its key and body (the node, the blob's header). */
#define TG_CACHE_OVERHEAD (sizeof(tg_node_t) + sizeof(tg_cache_blob_t))

typedef struct st_tg_node_t tg_node_t;

struct st_tg_cache_flight_t {
    tg_node_t *node;             /* the key's node (kept while the flight exists) */
    struct st_tg_shard_t *shard;
    uint64_t epoch;              /* the query's epoch when it started: a later one's callers do not join it */
    tg_cache_waiter_t *waiters;
};

struct st_tg_node_t {
    tg_node_t *chain;            /* next in its bucket */
    tg_node_t *lru_prev, *lru_next; /* while it holds a blob: most recent at the head */
    uint64_t hash;
    tg_cache_query_t query;
    tg_cache_blob_t *blob;       /* the stored answer, or NULL */
    uint64_t epoch;              /* the blob's */
    uint64_t fresh_until, stale_until;
    size_t cost;                 /* what the blob counts against the shard's budget */
    tg_cache_flight_t *flight;   /* the newest fetch under way, or NULL */
    int n_flights;               /* fetches under way that point here (an older epoch's may outlive the newest) */
    size_t key_len;
    char key[];
};

typedef struct st_tg_shard_t {
    pthread_mutex_t mutex;
    tg_node_t **buckets;
    size_t n_buckets, n_nodes;
    tg_node_t *lru_head, *lru_tail;
    size_t bytes, budget;
} __attribute__((aligned(64))) tg_shard_t;

struct st_tg_cache_t {
    tg_shard_t shards[TG_CACHE_SHARDS];
};

tg_cache_blob_t *tg_cache_blob_new(int status, int problem, const char *body, size_t len)
{
    tg_cache_blob_t *b = tg_malloc(sizeof(*b) + len + 1);
    atomic_init(&b->refs, 1);
    b->status = status;
    b->problem = problem;
    b->retry_after_s = 0;
    b->shed = 0;
    b->stored = 0;
    b->stored_at_ms = 0;
    b->backend = NULL;
    b->db_ms = 0;
    b->sent_ns = 0;
    b->len = len;
    memcpy(b->body, body, len);
    b->body[len] = '\0';
    return b;
}

void tg_cache_blob_unref(tg_cache_blob_t *b)
{
    if (b != NULL && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

tg_cache_t *tg_cache_create(size_t max_bytes)
{
    tg_cache_t *c;
    if (posix_memalign((void **)&c, 64, sizeof(*c)) != 0)
        tg_fatal("out of memory");
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i != TG_CACHE_SHARDS; ++i) {
        tg_shard_t *s = &c->shards[i];
        pthread_mutex_init(&s->mutex, NULL);
        s->n_buckets = 64;
        s->buckets = tg_calloc(s->n_buckets, sizeof(*s->buckets));
        s->budget = max_bytes / TG_CACHE_SHARDS;
    }
    return c;
}

void tg_cache_free(tg_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i != TG_CACHE_SHARDS; ++i) {
        tg_shard_t *s = &c->shards[i];
        for (size_t b = 0; b != s->n_buckets; ++b) {
            for (tg_node_t *n = s->buckets[b], *next; n != NULL; n = next) {
                next = n->chain;
                tg_cache_blob_unref(n->blob);
                free(n->flight); /* the gateway is gone: nobody completes it */
                free(n);
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mutex);
    }
    free(c);
}

static uint64_t hash_of(const void *key, size_t len)
{
    /* FNV-1a, then a final mix so that the low bits (the bucket) and the high bits (the shard) both spread */
    uint64_t h = tg_fnv1a(TG_FNV1A_INIT, key, len);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static tg_shard_t *shard_of(tg_cache_t *c, uint64_t hash)
{
    return &c->shards[(hash >> 58) % TG_CACHE_SHARDS];
}

static tg_node_t **slot_of(tg_shard_t *s, uint64_t hash, const void *key, size_t len)
{
    tg_node_t **p = &s->buckets[hash & (s->n_buckets - 1)];
    for (; *p != NULL; p = &(*p)->chain)
        if ((*p)->hash == hash && (*p)->key_len == len && memcmp((*p)->key, key, len) == 0)
            break;
    return p;
}

static void grow(tg_shard_t *s)
{
    size_t n = s->n_buckets * 2;
    tg_node_t **b = tg_calloc(n, sizeof(*b));
    for (size_t i = 0; i != s->n_buckets; ++i) {
        for (tg_node_t *node = s->buckets[i], *next; node != NULL; node = next) {
            next = node->chain;
            node->chain = b[node->hash & (n - 1)];
            b[node->hash & (n - 1)] = node;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

static void lru_unlink(tg_shard_t *s, tg_node_t *n)
{
    if (n->lru_prev != NULL)
        n->lru_prev->lru_next = n->lru_next;
    else
        s->lru_head = n->lru_next;
    if (n->lru_next != NULL)
        n->lru_next->lru_prev = n->lru_prev;
    else
        s->lru_tail = n->lru_prev;
    n->lru_prev = n->lru_next = NULL;
}

static void lru_push(tg_shard_t *s, tg_node_t *n)
{
    n->lru_prev = NULL;
    n->lru_next = s->lru_head;
    if (s->lru_head != NULL)
        s->lru_head->lru_prev = n;
    else
        s->lru_tail = n;
    s->lru_head = n;
}

/* Drops a node's stored answer (the node stays while a flight needs it). */
static void drop_blob(tg_shard_t *s, tg_node_t *n)
{
    if (n->blob == NULL)
        return;
    lru_unlink(s, n);
    tg_cache_blob_unref(n->blob);
    n->blob = NULL;
    s->bytes -= n->cost;
    atomic_fetch_sub_explicit(n->query.entries, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(n->query.bytes, (int64_t)n->cost, memory_order_relaxed);
    n->cost = 0;
}

/* Frees a node with neither a blob nor a flight. */
static void remove_if_empty(tg_shard_t *s, tg_node_t *n)
{
    if (n->blob != NULL || n->n_flights != 0)
        return;
    tg_node_t **p = slot_of(s, n->hash, n->key, n->key_len);
    *p = n->chain;
    --s->n_nodes;
    free(n);
}

static tg_cache_flight_t *new_flight(tg_shard_t *s, tg_node_t *n, uint64_t epoch)
{
    tg_cache_flight_t *f = tg_calloc(1, sizeof(*f));
    f->node = n;
    f->shard = s;
    f->epoch = epoch;
    n->flight = f;
    ++n->n_flights;
    return f;
}

static void join(tg_cache_flight_t *f, tg_cache_waiter_t *w)
{
    w->flight = f;
    w->shard = f->shard;
    w->next = f->waiters;
    if (w->next != NULL)
        w->next->pprev = &w->next;
    w->pprev = &f->waiters;
    f->waiters = w;
}

tg_cache_lookup_t tg_cache_lookup(tg_cache_t *c, const tg_cache_query_t *q, const void *key, size_t key_len, uint64_t now_ms,
                                  tg_cache_waiter_t *waiter, tg_cache_blob_t **blob, tg_cache_flight_t **flight)
{
    return tg_cache_lookup_after(c, q, key, key_len, now_ms, NULL, waiter, blob, flight);
}

tg_cache_lookup_t tg_cache_lookup_after(tg_cache_t *c, const tg_cache_query_t *q, const void *key, size_t key_len, uint64_t now_ms,
                                        const tg_rw_token_t *after, tg_cache_waiter_t *waiter, tg_cache_blob_t **blob,
                                        tg_cache_flight_t **flight)
{
    uint64_t hash = hash_of(key, key_len);
    tg_shard_t *s = shard_of(c, hash);
    tg_cache_lookup_t r;
    *blob = NULL, *flight = NULL;
    pthread_mutex_lock(&s->mutex);
    /* under the lock: an epoch read before it could be older than a flight started meanwhile, and replace it */
    uint64_t epoch = atomic_load_explicit(q->epoch, memory_order_acquire);
    tg_node_t *n = *slot_of(s, hash, key, key_len);
    if (n != NULL && n->blob != NULL && (n->epoch != epoch || now_ms >= n->stale_until))
        drop_blob(s, n); /* invalidated, or past its stale time */
    /* an entry read before the token's write is no answer to it (it stays for the others) */
    int usable = n != NULL && n->blob != NULL && (after == NULL || tg_rw_entry_fresh(after, n->blob->data_timeline, n->blob->data_lsn));
    if (usable) {
        lru_unlink(s, n);
        lru_push(s, n);
        *blob = tg_cache_blob_ref(n->blob);
        if (now_ms < n->fresh_until) {
            r = TG_CACHE_HIT;
        } else if (n->flight != NULL && n->flight->epoch == epoch) {
            r = TG_CACHE_STALE;
        } else {
            *flight = new_flight(s, n, epoch);
            r = TG_CACHE_STALE_LEAD;
        }
    } else if (n != NULL && n->flight != NULL && n->flight->epoch == epoch) {
        if (after != NULL) {
            r = TG_CACHE_BYPASS; /* a fetch under way may have been sent before the write: its answer is no answer either */
        } else {
            join(n->flight, waiter);
            r = TG_CACHE_JOINED;
        }
    } else {
        if (n == NULL) {
            n = tg_calloc(1, sizeof(*n) + key_len);
            n->hash = hash;
            n->query = *q;
            n->key_len = key_len;
            memcpy(n->key, key, key_len);
            tg_node_t **b = &s->buckets[hash & (s->n_buckets - 1)];
            n->chain = *b;
            *b = n;
            if (++s->n_nodes > s->n_buckets)
                grow(s);
        }
        /* a flight of an older epoch goes on for its own waiters; this one is the key's now (a newer one is never replaced: see above) */
        *flight = new_flight(s, n, epoch);
        join(*flight, waiter);
        r = TG_CACHE_LEAD;
    }
    pthread_mutex_unlock(&s->mutex);
    return r;
}

const void *tg_cache_flight_key(const tg_cache_flight_t *f, size_t *len)
{
    *len = f->node->key_len;
    return f->node->key;
}

/* Makes room for `cost` bytes: least recently used first (never the node being stored). */
static void evict_for(tg_shard_t *s, size_t cost, tg_node_t *keep)
{
    while (s->bytes + cost > s->budget && s->lru_tail != NULL) {
        tg_node_t *victim = s->lru_tail;
        if (victim == keep) {
            if (victim->lru_prev == NULL)
                break;
            victim = victim->lru_prev;
        }
        atomic_fetch_add_explicit(victim->query.evictions, 1, memory_order_relaxed);
        drop_blob(s, victim);
        remove_if_empty(s, victim);
    }
}

void tg_cache_complete(tg_cache_t *c, tg_cache_flight_t *f, tg_cache_blob_t *answer, int cacheable, int ttl_ms, int stale_ms,
                       uint64_t now_ms)
{
    (void)c;
    tg_shard_t *s = f->shard;
    tg_node_t *n = f->node;
    pthread_mutex_lock(&s->mutex);
    tg_cache_waiter_t *waiters = f->waiters;
    for (tg_cache_waiter_t *w = waiters; w != NULL; w = w->next)
        w->flight = NULL; /* delivery begins: tg_cache_leave says so from now on */
    if (n->flight == f)
        n->flight = NULL;
    --n->n_flights;
    size_t cost = n->key_len + answer->len + TG_CACHE_OVERHEAD;
    if (cacheable && f->epoch == atomic_load_explicit(n->query.epoch, memory_order_acquire) && cost <= s->budget) {
        drop_blob(s, n);
        evict_for(s, cost, n);
        n->blob = tg_cache_blob_ref(answer);
        n->epoch = f->epoch;
        n->fresh_until = now_ms + (uint64_t)ttl_ms;
        n->stale_until = n->fresh_until + (uint64_t)stale_ms;
        n->cost = cost;
        answer->stored = 1;
        s->bytes += cost;
        atomic_fetch_add_explicit(n->query.entries, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(n->query.bytes, (int64_t)cost, memory_order_relaxed);
        lru_push(s, n);
    }
    remove_if_empty(s, n);
    pthread_mutex_unlock(&s->mutex);
    free(f);
    /* outside the lock: a waiter's delivery may answer a request on this thread */
    for (tg_cache_waiter_t *w = waiters, *next; w != NULL; w = next) {
        next = w->next;
        w->deliver(w, tg_cache_blob_ref(answer));
    }
    tg_cache_blob_unref(answer);
}

int tg_cache_leave(tg_cache_t *c, tg_cache_waiter_t *w)
{
    (void)c;
    /* the shard is the waiter's own field: the flight may be completed and freed by another thread until the lock is held */
    tg_shard_t *s = w->shard;
    if (s == NULL)
        return 0; /* never joined */
    pthread_mutex_lock(&s->mutex);
    int waiting = w->flight != NULL;
    if (waiting) {
        if (w->next != NULL)
            w->next->pprev = w->pprev;
        *w->pprev = w->next;
        w->flight = NULL;
    }
    pthread_mutex_unlock(&s->mutex);
    return waiting;
}

size_t tg_cache_purge(tg_cache_t *c, uint32_t id)
{
    size_t dropped = 0;
    for (size_t i = 0; i != TG_CACHE_SHARDS; ++i) {
        tg_shard_t *s = &c->shards[i];
        pthread_mutex_lock(&s->mutex);
        for (tg_node_t *n = s->lru_head, *next; n != NULL; n = next) {
            next = n->lru_next;
            if (id != 0 && n->query.id != id)
                continue;
            drop_blob(s, n);
            remove_if_empty(s, n);
            ++dropped;
        }
        pthread_mutex_unlock(&s->mutex);
    }
    return dropped;
}

void tg_cache_set_max_bytes(tg_cache_t *c, size_t max_bytes)
{
    for (size_t i = 0; i != TG_CACHE_SHARDS; ++i) {
        tg_shard_t *s = &c->shards[i];
        pthread_mutex_lock(&s->mutex);
        s->budget = max_bytes / TG_CACHE_SHARDS;
        evict_for(s, 0, NULL); /* a smaller bound holds at once */
        pthread_mutex_unlock(&s->mutex);
    }
}

size_t tg_cache_bytes(tg_cache_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i != TG_CACHE_SHARDS; ++i) {
        pthread_mutex_lock(&c->shards[i].mutex);
        n += c->shards[i].bytes;
        pthread_mutex_unlock(&c->shards[i].mutex);
    }
    return n;
}

size_t tg_cache_key(uint32_t query_id, uint64_t def, const char *const *values, size_t n_values, char *out, size_t cap)
{
    size_t len = 0;
    if (cap < TG_CACHE_KEY_HEAD)
        return 0;
    memcpy(out, &query_id, 4);
    memcpy(out + 4, &def, 8);
    len = TG_CACHE_KEY_HEAD;
    for (size_t i = 0; i != n_values; ++i) {
        uint32_t n = values[i] != NULL ? (uint32_t)strlen(values[i]) : 0;
        if (cap - len < 6 + (size_t)n)
            return 0;
        out[len++] = values[i] != NULL;
        memcpy(out + len, &n, 4);
        len += 4;
        if (n != 0)
            memcpy(out + len, values[i], n);
        len += n;
        out[len++] = '\0';
    }
    return len;
}

int tg_cache_key_values(const char *key, size_t len, const char **values, size_t n_values)
{
    size_t at = TG_CACHE_KEY_HEAD;
    if (len < TG_CACHE_KEY_HEAD)
        return -1;
    for (size_t i = 0; i != n_values; ++i) {
        uint32_t n;
        if (len - at < 6)
            return -1;
        int present = key[at++];
        memcpy(&n, key + at, 4);
        at += 4;
        if (len - at < (size_t)n + 1)
            return -1;
        values[i] = present ? key + at : NULL;
        at += n + 1;
    }
    return at == len ? 0 : -1;
}

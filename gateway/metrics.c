/* Per-thread counters and histograms, summed when scraped (tollgate/metrics.h). */
#include <stdlib.h>
#include <string.h>
#include "tollgate/metrics.h"
#include "internal.h"

const uint64_t tg_metrics_bucket_us[TG_METRICS_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *tg_refusal_name(tg_refusal_t r)
{
    static const char *const names[TG_REFUSAL__END] = {"rate_limited", "tenant_in_flight", "tenant_disabled", "forbidden"};
    return (unsigned)r < TG_REFUSAL__END ? names[r] : "other";
}

const char *tg_shed_name(tg_shed_t s)
{
    static const char *const names[TG_SHED__END] = {"query_disabled", "query_in_flight", "gateway_in_flight", "queue_full",
                                                    "pool_timeout",   "no_backend",      "shutting_down",     "client_gone",
                                                    "backend_overloaded"};
    return (unsigned)s < TG_SHED__END ? names[s] : "other";
}

const char *tg_read_after_name(tg_read_after_t s)
{
    static const char *const names[TG_READ_AFTER__END] = {"replica", "replica_after_wait", "primary", "cache"};
    return (unsigned)s < TG_READ_AFTER__END ? names[s] : "other";
}

/* Cells of one size, appended to chunks that are published and never moved or freed before the table. */
#define TG_CHUNK_CELLS 256

typedef struct st_tg_chunk_t {
    struct st_tg_chunk_t *next;  /* older chunk */
    _Atomic size_t used;         /* cells published (a release store after the cell's key is written) */
    _Atomic uint64_t cells[];    /* used * stride words: the key, then the values */
} tg_chunk_t;

typedef struct st_tg_cells_t {
    _Atomic(tg_chunk_t *) head; /* newest chunk */
    size_t stride;              /* words per cell */
} tg_cells_t;

struct st_tg_metrics_thread_t {
    tg_cells_t counters;   /* stride 2: key, value */
    tg_cells_t histograms; /* stride 2 + TG_METRICS_BUCKETS: key, buckets, sum */
    /* the owner's index, key -> cell, open addressing; nobody else reads it */
    uint64_t *keys;
    _Atomic uint64_t **slots;
    size_t cap, n;
};

tg_metrics_thread_t *tg_metrics_thread_create(void)
{
    tg_metrics_thread_t *t = tg_calloc(1, sizeof(*t));
    t->counters.stride = 2;
    t->histograms.stride = 2 + TG_METRICS_BUCKETS;
    t->cap = 256;
    t->keys = tg_calloc(t->cap, sizeof(*t->keys));
    t->slots = tg_calloc(t->cap, sizeof(*t->slots));
    return t;
}

static void free_chunks(tg_cells_t *c)
{
    tg_chunk_t *ch = atomic_load(&c->head);
    while (ch != NULL) {
        tg_chunk_t *next = ch->next;
        free(ch);
        ch = next;
    }
}

void tg_metrics_thread_free(tg_metrics_thread_t *t)
{
    if (t == NULL)
        return;
    free_chunks(&t->counters);
    free_chunks(&t->histograms);
    free(t->keys);
    free(t->slots);
    free(t);
}

static uint64_t make_key(tg_metric_kind_t kind, uint32_t a, uint32_t b, uint32_t c)
{
    /* ids past 2^20 - 1 (a million queries or tenants) share the last one rather than corrupt the key */
    a = a < 0xfffff ? a : 0xfffff, b = b < 0xfffff ? b : 0xfffff, c = c < 0xfffff ? c : 0xfffff;
    return (uint64_t)kind << 60 | (uint64_t)a << 40 | (uint64_t)b << 20 | c;
}

static size_t hash_of(uint64_t key)
{
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ull;
    return (size_t)(key ^ key >> 29);
}

/* Appends a zeroed cell for `key` and publishes it. */
static _Atomic uint64_t *new_cell(tg_cells_t *c, uint64_t key)
{
    tg_chunk_t *ch = atomic_load_explicit(&c->head, memory_order_relaxed);
    size_t used = ch != NULL ? atomic_load_explicit(&ch->used, memory_order_relaxed) : TG_CHUNK_CELLS;
    if (used == TG_CHUNK_CELLS) {
        tg_chunk_t *fresh = tg_calloc(1, sizeof(*fresh) + sizeof(fresh->cells[0]) * c->stride * TG_CHUNK_CELLS);
        fresh->next = ch;
        atomic_store_explicit(&c->head, fresh, memory_order_release);
        ch = fresh, used = 0;
    }
    _Atomic uint64_t *cell = ch->cells + used * c->stride;
    atomic_store_explicit(cell, key, memory_order_relaxed);
    atomic_store_explicit(&ch->used, used + 1, memory_order_release);
    return cell;
}

static void grow_index(tg_metrics_thread_t *t)
{
    size_t cap = t->cap * 2;
    uint64_t *keys = tg_calloc(cap, sizeof(*keys));
    _Atomic uint64_t **slots = tg_calloc(cap, sizeof(*slots));
    for (size_t i = 0; i != t->cap; ++i) {
        if (t->keys[i] == 0)
            continue;
        size_t j = hash_of(t->keys[i]) & (cap - 1);
        while (keys[j] != 0)
            j = (j + 1) & (cap - 1);
        keys[j] = t->keys[i], slots[j] = t->slots[i];
    }
    free(t->keys);
    free(t->slots);
    t->keys = keys, t->slots = slots, t->cap = cap;
}

/* The cell of `key` (never 0: kinds start at 1), made if new. */
static _Atomic uint64_t *cell_of(tg_metrics_thread_t *t, uint64_t key, tg_cells_t *cells)
{
    size_t i = hash_of(key) & (t->cap - 1);
    for (; t->keys[i] != 0; i = (i + 1) & (t->cap - 1))
        if (t->keys[i] == key)
            return t->slots[i];
    _Atomic uint64_t *cell = new_cell(cells, key);
    t->keys[i] = key, t->slots[i] = cell;
    if (++t->n * 2 > t->cap)
        grow_index(t);
    return cell;
}

/* The owner is the only writer: a plain load and store, no locked instruction. */
static inline void bump(_Atomic uint64_t *v, uint64_t by)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + by, memory_order_relaxed);
}

void tg_metrics_count(tg_metrics_thread_t *t, tg_metric_kind_t kind, uint32_t a, uint32_t b, uint32_t c)
{
    bump(cell_of(t, make_key(kind, a, b, c), &t->counters) + 1, 1);
}

void tg_metrics_observe(tg_metrics_thread_t *t, tg_metric_kind_t kind, uint32_t a, uint32_t b, uint64_t us)
{
    _Atomic uint64_t *cell = cell_of(t, make_key(kind, a, b, 0), &t->histograms);
    size_t i = 0;
    while (i != TG_METRICS_BUCKETS - 1 && us > tg_metrics_bucket_us[i])
        ++i;
    bump(cell + 1 + i, 1);
    bump(cell + 1 + TG_METRICS_BUCKETS, us);
}

static int by_key(const void *x, const void *y)
{
    uint64_t a = ((const tg_metrics_series_t *)x)->key, b = ((const tg_metrics_series_t *)y)->key;
    return a < b ? -1 : a > b;
}

/* Copies every published cell of `c` into the array (values in v[0..stride-2]). */
static void copy_cells(tg_cells_t *c, tg_metrics_series_t **out, size_t *n, size_t *cap)
{
    for (tg_chunk_t *ch = atomic_load_explicit(&c->head, memory_order_acquire); ch != NULL; ch = ch->next) {
        size_t used = atomic_load_explicit(&ch->used, memory_order_acquire);
        for (size_t i = 0; i != used; ++i) {
            if (*n == *cap) {
                *cap = *cap == 0 ? 64 : *cap * 2;
                *out = tg_realloc(*out, *cap * sizeof(**out));
            }
            tg_metrics_series_t *s = &(*out)[(*n)++];
            memset(s, 0, sizeof(*s));
            _Atomic uint64_t *cell = ch->cells + i * c->stride;
            s->key = atomic_load_explicit(cell, memory_order_relaxed);
            for (size_t j = 1; j != c->stride; ++j)
                s->v[j - 1] = atomic_load_explicit(cell + j, memory_order_relaxed);
        }
    }
}

size_t tg_metrics_collect(tg_metrics_thread_t *const *tables, size_t n_tables, tg_metrics_series_t **out)
{
    tg_metrics_series_t *all = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i != n_tables; ++i) {
        copy_cells(&tables[i]->counters, &all, &n, &cap);
        copy_cells(&tables[i]->histograms, &all, &n, &cap);
    }
    if (n != 0)
        qsort(all, n, sizeof(*all), by_key);
    /* the same key from several threads: one series, summed */
    size_t m = 0;
    for (size_t i = 0; i != n; ++i) {
        if (m != 0 && all[m - 1].key == all[i].key) {
            for (size_t j = 0; j != TG_METRICS_BUCKETS + 1; ++j)
                all[m - 1].v[j] += all[i].v[j];
        } else {
            all[m++] = all[i];
        }
    }
    *out = all;
    return m;
}

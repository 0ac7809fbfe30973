/* Live state by name: what a reload carries from one snapshot to the next. */
#include <stdlib.h>
#include <string.h>
#include "tollgate/state.h"
#include "internal.h"

tg_state_t *tg_state_create(size_t n_threads)
{
    tg_state_t *s = tg_calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mutex, NULL);
    s->n_threads = n_threads != 0 ? n_threads : 1;
    atomic_init(&s->in_flight, 0);
    return s;
}

void tg_state_free(tg_state_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i != s->n_queries; ++i) {
        free(s->queries[i]->name);
        free(s->queries[i]->reason);
        free(s->queries[i]->slots);
        free(s->queries[i]);
    }
    free(s->queries);
    for (size_t i = 0; i != s->n_tenants; ++i) {
        free(s->tenants[i]->name);
        free(s->tenants[i]->reason);
        free(s->tenants[i]);
    }
    free(s->tenants);
    for (size_t i = 0; i != s->n_backends; ++i)
        free(s->backends[i]);
    free(s->backends);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

/* cache-line aligned, zeroed */
static void *alloc_aligned(size_t size)
{
    void *p;
    if (posix_memalign(&p, 64, size) != 0)
        tg_fatal("out of memory");
    memset(p, 0, size);
    return p;
}

static tg_query_state_t *find_query(tg_state_t *s, const char *name)
{
    for (size_t i = 0; i != s->n_queries; ++i)
        if (strcmp(s->queries[i]->name, name) == 0)
            return s->queries[i];
    return NULL;
}

static tg_tenant_state_t *find_tenant(tg_state_t *s, const char *name)
{
    for (size_t i = 0; i != s->n_tenants; ++i)
        if (strcmp(s->tenants[i]->name, name) == 0)
            return s->tenants[i];
    return NULL;
}

/* Appends `p` to a growable array of pointers. */
static void push(void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        *cap = *cap == 0 ? 16 : *cap * 2;
        *arr = tg_realloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*n)++] = p;
}

/*
 * The files changed a name's `enabled`: they decide again, so an operator's switch
 * that says otherwise is cleared. One that says the same is kept: clearing it now,
 * while workers still serve the old snapshot (with the old `enabled`), would flip the
 * name for a moment (a query switched off, then shipped off, served until the
 * workers took the new snapshot).
 */
static int clear_if_files_disagree(_Atomic int *switched, char **reason, int file_enabled)
{
    int sw = atomic_load(switched);
    if ((sw == TG_SWITCH_OFF && !file_enabled) || (sw == TG_SWITCH_ON && file_enabled))
        return 0;
    atomic_store(switched, TG_SWITCH_NONE);
    free(*reason);
    *reason = NULL;
    return 1;
}

static uint64_t sql_hash_of(const char *sql)
{
    return sql != NULL ? tg_fnv1a(TG_FNV1A_INIT, sql, strlen(sql)) : TG_FNV1A_INIT;
}

tg_query_state_t *tg_state_bind_query(tg_state_t *s, const char *name, int file_enabled, const char *sql)
{
    uint64_t sql_hash = sql_hash_of(sql);
    pthread_mutex_lock(&s->mutex);
    tg_query_state_t *q = find_query(s, name);
    if (q == NULL) {
        q = alloc_aligned(sizeof(*q));
        q->name = tg_strdup(name);
        q->id = (uint32_t)s->n_queries + 1;
        q->slots = alloc_aligned(sizeof(*q->slots) * s->n_threads);
        for (size_t i = 0; i != s->n_threads; ++i)
            q->slots[i].est_ms = TG_EST_INITIAL_MS;
        atomic_init(&q->in_flight, 0);
        atomic_init(&q->switched, TG_SWITCH_NONE);
        atomic_init(&q->retry_after_s, 30);
        q->file_enabled = file_enabled;
        q->sql_hash = sql_hash;
        q->cache = (tg_cache_query_t){.id = q->id, .epoch = &q->cache_epoch, .entries = &q->cache_entries, .bytes = &q->cache_bytes,
                                      .evictions = &q->cache_evictions};
        push((void ***)&s->queries, &s->n_queries, &s->cap_queries, q);
    } else if (q->sql_hash != sql_hash) {
        /* new SQL: what the old one cached is not its answer */
        q->sql_hash = sql_hash;
        tg_state_drop_cached(q);
    }
    if (q->file_enabled != file_enabled) {
        if (clear_if_files_disagree(&q->switched, &q->reason, file_enabled))
            atomic_store(&q->retry_after_s, 30);
        q->file_enabled = file_enabled;
    }
    pthread_mutex_unlock(&s->mutex);
    return q;
}

tg_tenant_state_t *tg_state_bind_tenant(tg_state_t *s, const char *name, int file_enabled, uint64_t now_ns)
{
    pthread_mutex_lock(&s->mutex);
    tg_tenant_state_t *t = find_tenant(s, name);
    if (t == NULL) {
        t = alloc_aligned(sizeof(*t));
        t->name = tg_strdup(name);
        t->id = (uint32_t)s->n_tenants + 1;
        atomic_init(&t->tat_ns, now_ns);
        atomic_init(&t->in_flight, 0);
        atomic_init(&t->switched, TG_SWITCH_NONE);
        t->file_enabled = file_enabled;
        push((void ***)&s->tenants, &s->n_tenants, &s->cap_tenants, t);
    } else if (t->file_enabled != file_enabled) {
        clear_if_files_disagree(&t->switched, &t->reason, file_enabled);
        t->file_enabled = file_enabled;
    }
    pthread_mutex_unlock(&s->mutex);
    return t;
}

tg_query_state_t *tg_state_find_query(tg_state_t *s, const char *name)
{
    pthread_mutex_lock(&s->mutex);
    tg_query_state_t *q = find_query(s, name);
    pthread_mutex_unlock(&s->mutex);
    return q;
}

tg_tenant_state_t *tg_state_find_tenant(tg_state_t *s, const char *name)
{
    pthread_mutex_lock(&s->mutex);
    tg_tenant_state_t *t = find_tenant(s, name);
    pthread_mutex_unlock(&s->mutex);
    return t;
}

static void set_reason(char **slot, tg_switch_t sw, const char *reason)
{
    free(*slot);
    *slot = sw == TG_SWITCH_OFF && reason != NULL ? tg_strdup(reason) : NULL;
}

/* Switching on what the files switch on hands it back to them; switching on what they ship off overrides them. */
static tg_switch_t resolve(tg_switch_t sw, int file_enabled)
{
    return sw == TG_SWITCH_ON && file_enabled ? TG_SWITCH_NONE : sw;
}

void tg_state_switch_query(tg_state_t *s, tg_query_state_t *q, tg_switch_t sw, int retry_after_s, const char *reason)
{
    pthread_mutex_lock(&s->mutex);
    sw = resolve(sw, q->file_enabled);
    set_reason(&q->reason, sw, reason);
    atomic_store(&q->retry_after_s, sw == TG_SWITCH_OFF ? retry_after_s : 30);
    atomic_store(&q->switched, (int)sw);
    pthread_mutex_unlock(&s->mutex);
}

void tg_state_switch_tenant(tg_state_t *s, tg_tenant_state_t *t, tg_switch_t sw, const char *reason)
{
    pthread_mutex_lock(&s->mutex);
    sw = resolve(sw, t->file_enabled);
    set_reason(&t->reason, sw, reason);
    atomic_store(&t->switched, (int)sw);
    pthread_mutex_unlock(&s->mutex);
}

uint32_t tg_state_bind_backend(tg_state_t *s, const char *name)
{
    pthread_mutex_lock(&s->mutex);
    size_t i = 0;
    while (i != s->n_backends && strcmp(s->backends[i], name) != 0)
        ++i;
    if (i == s->n_backends)
        push((void ***)&s->backends, &s->n_backends, &s->cap_backends, tg_strdup(name));
    pthread_mutex_unlock(&s->mutex);
    return (uint32_t)i + 1;
}

const char *tg_state_query_name(const tg_state_t *s, uint32_t id)
{
    return id != 0 && id <= s->n_queries ? s->queries[id - 1]->name : NULL;
}

const char *tg_state_tenant_name(const tg_state_t *s, uint32_t id)
{
    return id != 0 && id <= s->n_tenants ? s->tenants[id - 1]->name : NULL;
}

const char *tg_state_backend_name(const tg_state_t *s, uint32_t id)
{
    return id != 0 && id <= s->n_backends ? s->backends[id - 1] : NULL;
}

void tg_state_drop_cached(tg_query_state_t *q)
{
    atomic_fetch_add_explicit(&q->cache_epoch, 1, memory_order_acq_rel);
}

void tg_state_invalidate(tg_query_state_t *q)
{
    atomic_store_explicit(&q->cache_invalidated_ms, tg_now_ms(), memory_order_relaxed);
    atomic_fetch_add_explicit(&q->cache_epoch, 1, memory_order_acq_rel);
}

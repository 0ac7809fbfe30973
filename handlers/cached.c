/*
 * Cached queries: a call is answered from the cache (a hit, or a stale entry while one
 * refresh runs), or waits for the one fetch of its key, on whatever thread that fetch
 * runs. The fetch is not a request: it is its own object, submitted to the pool of
 * the thread that missed first, and it ends for everyone who waits for it even when
 * the caller that started it has gone. Its answer is a blob shared by reference; each
 * waiter gets it on its own thread (h2o's multithread messages when that is another
 * thread), and sends it without copying the body.
 */
#include <pthread.h>
#include <string.h>
#include "tollgate/health.h"
#include "../gateway/internal.h"
#include "call.h"

/** one fetch of a key: a call of its own, shared by every caller waiting for it */
typedef struct st_tg_fetch_t {
    tg_call_t call;            /* must be first: the pool's callback gets &call */
    tg_cache_flight_t *flight;
    tg_handler_ctx_t *worker;  /* the thread it runs on */
    tg_pin_t *pin;             /* the snapshot it started on (its query and config) */
    tg_admission_t adm;        /* a refresh holds the in-flight slots of the hit that started it: the caps bound refreshes too */
    char id[129];              /* the request id of the call that started it, for error lines */
    const char *values[];      /* bound from the flight's key */
} tg_fetch_t;

static const char *const cache_status[] = {
    [TG_ANS_CACHE_HIT] = "tollgate; hit",
    [TG_ANS_CACHE_STALE] = "tollgate; hit; fwd=stale",
    [TG_ANS_CACHE_COLLAPSED] = "tollgate; fwd=miss; collapsed",
};

/* Answers a waiting call with the answer of its fetch, on the call's own thread. */
static void answer(tg_query_ctx_t *ctx)
{
    tg_cache_blob_t *blob = ctx->delivered;
    ctx->delivered = NULL;
    h2o_req_t *req = ctx->req;
    if (req == NULL) { /* its client left while the answer was on its way */
        tg_cache_blob_unref(blob);
        tg_ctx_free(ctx);
        return;
    }
    tg_handler_ctx_t *w = ctx->worker;
    req = tg_ctx_take_req(ctx); /* its answer's cache field is its role already */
    w->ans.backend = blob->backend;
    w->ans.db_ms = blob->db_ms;
    /* the pool wait is the fetch's, for the call that started it; one that joined waited for the fetch, not for the pool */
    w->ans.sent_ns = ctx->cache_role == TG_ANS_CACHE_MISS ? blob->sent_ns : 0;
    w->ans.submitted = ctx->cache_role == TG_ANS_CACHE_MISS;
    if (ctx->call.read_after.timeline != 0) /* only ever the fetch's leader: a read after a token joins none */
        w->ans.read_after = tg_read_after_code(blob->backend, blob->read_after_waited);
    tg_ctx_shed(w, blob->shed);
    const char *status = ctx->cache_role == TG_ANS_CACHE_COLLAPSED ? cache_status[TG_ANS_CACHE_COLLAPSED]
                         : blob->stored                             ? "tollgate; fwd=miss; stored"
                                                                    : "tollgate; fwd=miss";
    tg_respond_blob(w, req, blob, status, 0);
    tg_ctx_free(ctx);
}

/* The cache delivers on the thread that completed the fetch: a waiter of another thread is woken through its loop. */
static void deliver(tg_cache_waiter_t *waiter, tg_cache_blob_t *blob)
{
    tg_query_ctx_t *ctx = H2O_STRUCT_FROM_MEMBER(tg_query_ctx_t, waiter, waiter);
    ctx->delivered = blob;
    tg_worker_t *owner = ctx->worker->worker;
    if (owner == tg_current_worker) {
        answer(ctx);
    } else {
        ctx->msg = (h2o_multithread_message_t){{NULL}};
        h2o_multithread_send_message(&owner->cache_receiver, &ctx->msg);
    }
}

void tg_handler_cache_delivery(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        answer(H2O_STRUCT_FROM_MEMBER(tg_query_ctx_t, msg, m));
    }
}

/* The fetch ended: one answer for every caller waiting, stored if it is a success. */
static void on_fetch_done(tg_call_t *call, tg_call_status_t status)
{
    tg_fetch_t *f = (tg_fetch_t *)call;
    tg_handler_ctx_t *w = f->worker;
    const tg_query_t *q = call->query;
    tg_outcome_t o;
    tg_outcome_of(w, f->pin->snap->config, q, status, call, h2o_iovec_init(f->id, strlen(f->id)), &o);
    tg_cache_blob_t *blob = tg_cache_blob_new(o.status, o.problem, w->scratch.base, w->scratch.len);
    blob->retry_after_s = o.retry_after_s;
    blob->shed = o.shed;
    blob->stored_at_ms = tg_now_ms();
    blob->backend = call->backend;
    blob->db_ms = call->db_ms;
    blob->sent_ns = call->sent_ns;
    blob->data_timeline = call->data_timeline;
    blob->data_lsn = call->data_lsn;
    blob->read_after_waited = call->read_after_waited;
    if (call->result != NULL)
        PQclear(call->result);
    /* errors are never cached, and neither is a 404 of `returns: one` */
    tg_cache_complete(tg_worker_cache(w->worker), f->flight, blob, status == TG_CALL_OK && o.status == 200, q->cache_ttl_ms,
                      q->cache_stale_ms, blob->stored_at_ms);
    tg_limits_release(&f->adm);
    tg_pins_drop(&w->worker->pins, f->pin);
    --w->n_calls;
    tg_scratch_trim(w);
    free(f);
}

/*
 * Starts the fetch of `flight` on this thread's pool, for `q` as the snapshot of `ctx`
 * has it. It takes over the call's in-flight slots until it ends, so that the tenant's,
 * the query's and the gateway's caps bound fetches as they bound calls, even once the
 * caller that started it has left (a refresh's caller is answered at once).
 */
static void start_fetch(tg_query_ctx_t *ctx, tg_cache_flight_t *flight, int lead)
{
    tg_handler_ctx_t *w = ctx->worker;
    const tg_query_t *q = ctx->call.query;
    tg_fetch_t *f = tg_malloc(sizeof(*f) + sizeof(f->values[0]) * (q->n_params + 1));
    size_t key_len;
    const char *key = tg_cache_flight_key(flight, &key_len);
    if (tg_cache_key_values(key, key_len, f->values, q->n_params) != 0)
        tg_fatal("a cache key does not hold its query's values");
    /* high priority: callers of any tenant may wait for it */
    f->call = (tg_call_t){.query = q, .values = f->values, .cb = on_fetch_done, .priority = TG_PRIORITY_HIGH};
    /*
     * The fetch a read after a token leads goes with the token: what it reads then has
     * the write, for all who join it later. Not a refresh: its caller was answered
     * already, from an entry that had its write.
     */
    if (lead)
        f->call.read_after = ctx->call.read_after;
    /*
     * Soon after a write invalidated the query, a replica may not have replayed it yet:
     * what it answers could be cached as if it were new. Until every usable replica must
     * have it, the fetch reads from the primary. A usable replica's lag is under
     * replica_max_lag_ms by its last check; checks (and the primary's position they
     * compare with) come every health_interval_ms and take up to a check timeout, so
     * the measure can be that much old: the window is the sum.
     */
    uint64_t invalidated = atomic_load_explicit(&q->state->cache_invalidated_ms, memory_order_relaxed);
    const tg_config_t *cfg = ctx->pin->snap->config;
    uint64_t window = (uint64_t)cfg->replica_max_lag_ms + 2 * (uint64_t)cfg->health_interval_ms +
                      (uint64_t)tg_health_check_timeout_ms(cfg->health_interval_ms);
    if (invalidated != 0 && tg_now_ms() < invalidated + window)
        f->call.primary_only = 1;
    f->flight = flight;
    f->worker = w;
    f->pin = tg_pins_hold(&w->worker->pins);
    f->adm = ctx->adm;
    ctx->adm = (tg_admission_t){0};
    size_t n = ctx->id.len < sizeof(f->id) - 1 ? ctx->id.len : sizeof(f->id) - 1;
    memcpy(f->id, ctx->id.base, n);
    f->id[n] = '\0';
    ++w->n_calls; /* a graceful stop waits for it too */
    tg_pool_submit(w->worker->pool, &f->call);
}

void tg_cached_call(tg_query_ctx_t *ctx, const char *const *values)
{
    tg_handler_ctx_t *w = ctx->worker;
    const tg_query_t *q = ctx->call.query;
    /* the key: the query and its values as bound, so ?a=1&b=2 and ?b=2&a=1 are one entry */
    size_t need = TG_CACHE_KEY_HEAD;
    for (size_t i = 0; i != q->n_params; ++i)
        need += 6 + (values[i] != NULL ? strlen(values[i]) : 0);
    tg_buf_reset(&w->cache_key);
    tg_buf_reserve(&w->cache_key, need);
    size_t key_len = tg_cache_key(q->state->id, q->cache_def, values, q->n_params, w->cache_key.base, need);
    ctx->waiter = (tg_cache_waiter_t){.deliver = deliver};
    tg_cache_blob_t *blob;
    tg_cache_flight_t *flight;
    tg_cache_t *cache = tg_worker_cache(w->worker);
    const tg_rw_token_t *after = ctx->call.read_after.timeline != 0 ? &ctx->call.read_after : NULL;
    tg_cache_lookup_t r =
        tg_cache_lookup_after(cache, &q->state->cache, w->cache_key.base, key_len, tg_now_ms(), after, &ctx->waiter, &blob, &flight);
    switch (r) {
    case TG_CACHE_HIT:
    case TG_CACHE_STALE:
    case TG_CACHE_STALE_LEAD: {
        /* the refresh first: it copies what it needs from the call, which is answered at once after */
        if (r == TG_CACHE_STALE_LEAD) {
            tg_metrics_count(w->worker->metrics, TG_M_CACHE, q->state->id, 0, TG_CACHE_REFRESH);
            start_fetch(ctx, flight, 0);
        }
        h2o_req_t *req = tg_ctx_take_req(ctx);
        w->ans.cache = r == TG_CACHE_HIT ? TG_ANS_CACHE_HIT : TG_ANS_CACHE_STALE;
        w->ans.read_after = after != NULL ? 1 + TG_READ_AFTER_CACHE : 0;
        w->ans.submitted = 0; /* nothing ran for it (its call was never submitted: no backend, no time) */
        tg_respond_blob(w, req, blob, cache_status[w->ans.cache], 1);
        tg_ctx_free(ctx);
        break;
    }
    case TG_CACHE_LEAD:
        ctx->cache_role = TG_ANS_CACHE_MISS;
        start_fetch(ctx, flight, 1); /* may answer ctx before it returns (a fetch that fails at once) */
        break;
    case TG_CACHE_JOINED:
        ctx->cache_role = TG_ANS_CACHE_COLLAPSED;
        break;
    case TG_CACHE_BYPASS:
        tg_pool_submit(w->worker->pool, &ctx->call); /* from the database, where its token allows; nothing stored */
        break;
    }
}

int tg_cached_leave(tg_query_ctx_t *ctx)
{
    return tg_cache_leave(tg_worker_cache(ctx->worker->worker), &ctx->waiter);
}

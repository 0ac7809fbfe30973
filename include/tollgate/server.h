/*
 * Worker threads: each owns an h2o context and event loop, its accepted connections
 * and its own backend pool. Handlers reach their worker through the request's context.
 */
#ifndef tollgate__server_h
#define tollgate__server_h

#include <pthread.h>
#include <stdint.h>
#include <h2o.h>
#include "tollgate.h"
#include "tollgate/accesslog.h"
#include "tollgate/buf.h"
#include "tollgate/cache.h"
#include "tollgate/config.h"
#include "tollgate/conn.h"
#include "tollgate/metrics.h"
#include "tollgate/pool.h"
#include "tollgate/shared.h"
#include "tollgate/snapshot.h"

/** one worker thread */
typedef struct st_tg_worker_t {
    h2o_context_t ctx;             /* this thread's h2o context (its loop is ctx.loop) */
    tg_gateway_t *gw;
    tg_pins_t pins;                /* the snapshot new requests are served on, and older ones calls still hold */
    size_t index;                  /* 0..threads-1 */
    pthread_t tid;
    tg_pool_t *pool;               /* this thread's backend connections */
    tg_backend_t **backends;       /* the backends of the snapshot it serves (the worker's own list): [0] is the primary */
    size_t n_backends;
    size_t n_conns;                /* client connections open on this thread */
    tg_conns_t conns;              /* them, each behind the guard (tollgate/conn.h) */
    h2o_timeout_t accept_pause;    /* how long accepting pauses when no descriptor is left */
    int shutting_down;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t stop_receiver;
    h2o_multithread_receiver_t reload_receiver;
    struct st_tg_listener_t *listeners; /* this thread's wrappers of the listening sockets */
    size_t n_listeners;
    tg_metrics_thread_t *metrics;  /* this thread's counters and histograms (the gateway's; summed when scraped) */
    tg_cache_t *cache;             /* the gateway's result cache, shared by every thread */
    h2o_multithread_receiver_t cache_receiver; /* answers of cache fetches that ran on another thread */
    tg_accesslog_t *access_log;    /* the gateway's; this thread writes its own ring of it */
} tg_worker_t;

/*
 * The gateway's life is tollgate.h's (start, run, stop, free); these two are what its
 * tg_gateway_create* and tg_gateway_reload (gateway/api.c) and the admin API call.
 */

/**
 * Creates a gateway for `cfg` (ownership passes to the gateway) and binds every
 * listener. `text`: the JSON the config was parsed from (copied; reloads parse it
 * again), NULL when it is the file cfg->path. Returns NULL with the reasons in `errs`
 * if a listener cannot be bound, TLS or the access log cannot be set up; `cfg` is
 * freed then too.
 */
tg_gateway_t *tg_gateway_create_config(tg_config_t *cfg, const char *text, tg_errors_t *errs);

/**
 * Reloads the config, and the catalog it names, while the gateway runs: `text` if
 * given (the config from now on), else the gateway's text or file again. Read and
 * checked in full on the calling thread (never a worker's); if anything is wrong
 * nothing is taken, the errors are appended to `errs` (as --check prints them) and -1
 * is returned. Otherwise every worker serves the new config from its next request on,
 * calls in flight finish on the one they started on, `*generation` gets the new
 * generation and 0 is returned. Settings that take a restart (listen, threads,
 * admin_listen, http) are left as they are and named in `notes`. TLS certificate
 * files are read again. One reload runs at a time.
 */
int tg_gateway_reload_config(tg_gateway_t *gw, const char *text, tg_errors_t *errs, tg_errors_t *notes, uint64_t *generation);

/** the worker whose loop runs on this thread, or NULL (any other thread) */
extern __thread tg_worker_t *tg_current_worker;

/** the result cache */
static inline tg_cache_t *tg_worker_cache(const tg_worker_t *w)
{
    return w->cache;
}

/** the config new requests on this worker are served with */
static inline const tg_config_t *tg_worker_config(const tg_worker_t *w)
{
    return w->pins.current->snap->config;
}

/** the limits new requests on this worker are admitted by */
static inline tg_limits_t *tg_worker_limits(const tg_worker_t *w)
{
    return w->pins.current->snap->limits;
}

/** the gateway's current snapshot, with a reference for the caller (tg_snapshot_release); any thread */
tg_snapshot_t *tg_gateway_snapshot(tg_gateway_t *gw);

/** the gateway's live state by name (switches, counters) */
tg_state_t *tg_gateway_state(tg_gateway_t *gw);

/** shared_limits' service (status, switches to publish); NULL once the gateway has stopped */
tg_shared_t *tg_gateway_shared(tg_gateway_t *gw);

/** the number of worker threads (fixed for the gateway's life) */
size_t tg_gateway_threads(tg_gateway_t *gw);

/** the current config's backends, [0] the primary: a malloc'd copy of the list (the backends are the gateway's) */
tg_backend_t **tg_gateway_backends(tg_gateway_t *gw, size_t *n);

/** the read-retry budget the workers' pools share (tollgate/overload.h); lives as long as the gateway */
struct st_tg_retry_budget_t *tg_gateway_retry_budget(tg_gateway_t *gw);

/** every worker's metrics table (n: tg_gateway_threads); the array and tables are the gateway's */
tg_metrics_thread_t *const *tg_gateway_metrics(tg_gateway_t *gw);

/** the access log (always there; off while no file is configured) */
tg_accesslog_t *tg_gateway_access_log(tg_gateway_t *gw);

/** what the process figures in /metrics need: reloads taken and rejected, the wall-clock start time */
typedef struct st_tg_gateway_figures_t {
    uint64_t reloads_ok, reloads_failed;
    double started_at_s; /* Unix time */
    uint64_t client_connections; /* open now, over every listener */
    uint64_t closed[5];          /* connections closed early: rapid reset, control flood, too many streams, slow request, stalled */
    uint64_t bodies_refused;     /* HTTP/2 bodies cut off at max_body_bytes */
} tg_gateway_figures_t;
void tg_gateway_figures(tg_gateway_t *gw, tg_gateway_figures_t *out);

/** the admin listener's handler: h2o's handler and the gateway it reports on */
typedef struct st_tg_admin_handler_t {
    h2o_handler_t super;
    tg_gateway_t *gw;
} tg_admin_handler_t;

/** the admin API (handlers/admin.c): answers every request on the admin listener, on its own thread */
int tg_handle_admin(h2o_handler_t *self, h2o_req_t *req);

/**
 * The request handler of the main listeners (handlers/catalog.c), registered on
 * `pathconf`: built-in endpoints and catalog calls. Its state on each worker thread
 * is its own h2o handler context, made when the worker's h2o context is.
 */
h2o_handler_t *tg_handler_register(h2o_pathconf_t *pathconf);

/**
 * Registers the logger of h2o's own answers (its 413 for a body past its limit, its
 * 400s), which never reach `handler`, on `hostconf`: they are counted and logged on
 * the handler's per-thread state (handlers/observe.c).
 */
void tg_observe_register(h2o_hostconf_t *hostconf, h2o_handler_t *handler);

/** a worker's receiver of cache answers (handlers/cached.c): each message is a waiting call to answer */
void tg_handler_cache_delivery(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/** the gateway's result cache (for the admin API's purge) */
tg_cache_t *tg_gateway_cache(tg_gateway_t *gw);

/** catalog calls in progress on the thread of `ctx` (decoded, not yet answered) */
size_t tg_handler_calls(h2o_context_t *ctx, h2o_handler_t *handler);

/** frees the handler's state on the thread of `ctx` (at exit; h2o 2.2.5's contexts are not disposed) */
void tg_handler_dispose(h2o_context_t *ctx, h2o_handler_t *handler);

#endif

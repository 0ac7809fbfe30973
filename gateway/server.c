/*
 * The gateway: binds listeners, starts one worker thread per configured thread (each
 * with its own h2o loop, accepted sockets and backend pool) and shuts them down
 * gracefully.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "tollgate.h"
#include "tollgate/health.h"
#include "tollgate/limits.h"
#include "tollgate/overload.h"
#include "tollgate/relay.h"
#include "tollgate/server.h"
#include "tollgate/snapshot.h"
#include "internal.h"

/* After the last call of a shutdown ends, how long the loop keeps running to write the responses. */
#define TG_SHUTDOWN_FLUSH_MS 100

/*
 * What latency may rise by, above tolerance x its floor, before a backend's limit
 * shrinks: a query mix whose unloaded median is 0.2 ms reads 0.5 ms on a busy machine
 * with nothing queued (bench/overload.sh, tests/integration/overload.c).
 */
#define TG_OVERLOAD_SLACK_MS 1

/* Most calls in flight on one connection's pipeline. */
#define TG_PIPELINE_DEPTH 32

/** a listening socket, bound once at create */
typedef struct st_tg_listen_socket_t {
    int fd;
    SSL_CTX *ssl_ctx; /* NULL: cleartext */
    _Atomic long n_conns; /* client connections open on it, over every worker */
    long max_conns;       /* listen[].max_connections */
} tg_listen_socket_t;

/** one worker's wrapper of a listening socket */
typedef struct st_tg_listener_t {
    int fd;             /* this worker's dup of the listening socket */
    h2o_socket_t *sock; /* wraps fd once the worker runs */
    h2o_accept_ctx_t accept_ctx;
    tg_worker_t *worker;
    tg_listen_socket_t *shared;   /* the socket it copies: the connection count and cap */
    h2o_timeout_entry_t resume;   /* accepting paused while no descriptor is left */
} tg_listener_t;

struct st_tg_gateway_t {
    tg_snapshot_t *snapshot;  /* the current one (the gateway holds a reference) */
    tg_state_t *state;        /* live state by name, kept across snapshots */
    tg_snapshot_t *initial;   /* the one the gateway started with (held): its listeners and threads stay until a restart */
    const tg_config_t *config; /* initial->config */
    char *text;               /* the JSON text the config is parsed from (tg_gateway_create_json, or a reload given one); NULL: the file config->path */
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    tg_guard_limits_t guard;  /* what one client connection may do (max_body_bytes and http.* at start) */
    tg_listen_socket_t *sockets;
    size_t n_sockets;
    tg_backend_t **known;      /* every backend made, by role, name and connection string (kept: a reload may bring one back) */
    size_t n_known;
    tg_backend_t **backends;   /* the current config's: [0] is the primary */
    size_t n_backends;
    tg_health_t *health;
    pthread_mutex_t reload_mutex; /* one reload at a time */
    pthread_mutex_t snapshot_mutex; /* guards `snapshot` for readers off the workers (the admin API) */
    h2o_handler_t *handler;    /* the main listeners' request handler (its state per thread is its own) */
    tg_worker_t *workers;
    size_t n_workers;
    _Atomic int stopping;
    h2o_multithread_message_t *stop_msgs;
    tg_metrics_thread_t **metrics; /* one per worker */
    tg_cache_t *cache;             /* the result cache, shared by the workers */
    tg_relay_t *relay;             /* calls handed between the workers' pools */
    tg_shared_t *shared;           /* shared_limits' lease thread (idle while shared_limits is null); NULL once stopped */
    tg_retry_budget_t *retry_budget; /* the read-retry budget, shared by the workers' pools (pool.retry_budget at start) */
    /*
     * The worker threads start at create and make their own loop, context and queue
     * (h2o 2.2.5 keeps a socket's buffer pool per thread, in the thread that made the
     * socket: a queue made here and read on a worker would share this thread's pool
     * between the workers), then wait for tg_gateway_run.
     */
    pthread_mutex_t start_mutex;
    pthread_mutex_t stop_mutex;    /* held through tg_gateway_stop, so that tg_gateway_free waits for one under way */
    pthread_cond_t start_cond;
    size_t n_set_up;               /* workers whose loop and queue exist */
    int go;                        /* tg_gateway_start (or destroy) let them run */
    int started;                   /* tg_gateway_start ran: the admin thread too */
    int joined;                    /* the worker threads have been joined */
    tg_accesslog_t *access_log;
    _Atomic uint64_t reloads_ok, reloads_failed;
    double started_at_s;
    struct {
        int fd;                     /* -1: no admin_listen */
        h2o_globalconf_t globalconf;
        h2o_context_t ctx;
        h2o_accept_ctx_t accept_ctx;
        h2o_socket_t *sock;
        pthread_t tid;
        int running;
        int paused;                 /* accepting stopped: out of descriptors */
    } admin;
};

/*
 * The snapshot of `cfg`: with shared_limits its tenants spend leases of their global
 * buckets (the lease thread has the settings already: configured before).
 */
static tg_snapshot_t *make_snapshot(tg_gateway_t *gw, tg_config_t *cfg, uint64_t generation)
{
    tg_snapshot_t *snap = tg_snapshot_create(cfg, gw->state, generation, tg_now_ns());
    if (cfg->shared_limits != NULL)
        tg_limits_share(snap->limits, tg_shared_health(gw->shared));
    return snap;
}

static int bind_listener(const tg_listen_t *l, tg_errors_t *errs)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)l->port);
    int r = getaddrinfo(l->host, port, &hints, &res);
    if (r != 0) {
        tg_errors_add(errs, "listen %s:%u: %s", l->host, (unsigned)l->port, gai_strerror(r));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        tg_errors_add(errs, "listen %s:%u: %s", l->host, (unsigned)l->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static const char *ssl_error(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return e != 0 ? buf : "unknown error";
}

static SSL_CTX *setup_tls(const tg_listen_t *l, tg_errors_t *errs)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tg_errors_add(errs, "listen %s:%u: cannot set up TLS: %s", l->host, (unsigned)l->port, ssl_error());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, l->cert_file) != 1) {
        tg_errors_add(errs, "listen %s:%u: cannot load tls.cert_file %s: %s", l->host, (unsigned)l->port, l->cert_file,
                      ssl_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, l->key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        tg_errors_add(errs, "listen %s:%u: cannot load tls.key_file %s: %s", l->host, (unsigned)l->port, l->key_file, ssl_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

static void setup_workers(tg_gateway_t *gw);
static void setup_admin(tg_gateway_t *gw, tg_errors_t *errs);

/* The backend with this role, name and connection string: the one made before, or a new one. */
static tg_backend_t *find_backend(tg_gateway_t *gw, int is_primary, const char *name, const char *conninfo)
{
    for (size_t i = 0; i != gw->n_known; ++i) {
        tg_backend_t *b = gw->known[i];
        if (b->is_primary == is_primary && strcmp(b->name, name) == 0 && strcmp(b->conninfo, conninfo) == 0)
            return b;
    }
    tg_backend_t *b = tg_calloc(1, sizeof(*b));
    if (posix_memalign((void **)&b->slots, 64, sizeof(*b->slots) * gw->n_workers) != 0)
        tg_fatal("out of memory");
    memset(b->slots, 0, sizeof(*b->slots) * gw->n_workers);
    b->name = tg_strdup(name);
    b->metrics_id = tg_state_bind_backend(gw->state, name);
    b->conninfo = tg_strdup(conninfo);
    b->canceller = tg_canceller_start();
    b->is_primary = is_primary;
    atomic_init(&b->up, 0);
    atomic_init(&b->lag_ms, -1);
    atomic_init(&b->checked_at_ms, 0);
    atomic_init(&b->passed_at_ms, 0);
    gw->known = tg_realloc(gw->known, sizeof(*gw->known) * (gw->n_known + 1));
    gw->known[gw->n_known++] = b;
    return b;
}

/* Most calls in flight on one connection: TG_PIPELINE_DEPTH, or TOLLGATE_PIPELINE_DEPTH's (benchmarks). */
static int pipeline_depth(void)
{
    const char *depth = getenv("TOLLGATE_PIPELINE_DEPTH");
    return depth != NULL && atoi(depth) > 0 ? atoi(depth) : TG_PIPELINE_DEPTH;
}

/*
 * A backend's adaptive limit, made with it, its bounds from pool.size (its
 * connections over all threads) and the pipeline depth, its tolerance the config's;
 * a reload that changes them keeps what the limit learned (tg_overload_set_params).
 */
static void configure_overload(tg_backend_t *b, const tg_config_t *cfg)
{
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, cfg->pool.size, pipeline_depth());
    p.tolerance = cfg->pool.overload.tolerance;
    p.slack_ns = TG_OVERLOAD_SLACK_MS * 1000000ull;
    if (b->overload == NULL) {
        if (posix_memalign((void **)&b->overload, 64, sizeof(*b->overload)) != 0)
            tg_fatal("out of memory");
        tg_overload_init(b->overload, &p, tg_now_ns());
    } else if (memcmp(&b->overload->ctl.p, &p, sizeof(p)) != 0) {
        /* ctl.p is the controller's, read here only to compare (a reload is rare; set_params takes its lock) */
        tg_overload_set_params(b->overload, &p);
    }
}

/* The backends `cfg` names, [0] the primary (malloc'd array; the backends are the registry's). */
static tg_backend_t **backends_of(tg_gateway_t *gw, const tg_config_t *cfg, size_t *n)
{
    *n = 1 + cfg->n_replicas;
    tg_backend_t **list = tg_calloc(*n, sizeof(*list));
    list[0] = find_backend(gw, 1, "primary", cfg->primary);
    for (size_t i = 0; i != cfg->n_replicas; ++i)
        list[1 + i] = find_backend(gw, 0, cfg->replica_names[i], cfg->replicas[i]);
    for (size_t i = 0; i != *n; ++i)
        configure_overload(list[i], cfg);
    return list;
}

static int in_list(tg_backend_t *const *list, size_t n, const tg_backend_t *b)
{
    for (size_t i = 0; i != n; ++i)
        if (list[i] == b)
            return 1;
    return 0;
}

static void destroy(tg_gateway_t *gw);

tg_gateway_t *tg_gateway_create_config(tg_config_t *cfg, const char *text, tg_errors_t *errs)
{
    tg_gateway_t *gw = tg_calloc(1, sizeof(*gw));
    gw->config = cfg;
    gw->text = text != NULL ? tg_strdup(text) : NULL;
    pthread_mutex_init(&gw->reload_mutex, NULL);
    pthread_mutex_init(&gw->snapshot_mutex, NULL);
    pthread_mutex_init(&gw->start_mutex, NULL);
    pthread_mutex_init(&gw->stop_mutex, NULL);
    pthread_cond_init(&gw->start_cond, NULL);
    /* Each worker owns a share of pool.size, so there are never more workers than that. */
    gw->n_workers = (size_t)cfg->threads;
    if (gw->n_workers > (size_t)cfg->pool.size) {
        tg_log(TG_LOG_WARN, "threads (%d) is more than pool.size (%d): running %d threads", cfg->threads, cfg->pool.size,
               cfg->pool.size);
        gw->n_workers = (size_t)cfg->pool.size;
    }
    gw->state = tg_state_create(gw->n_workers);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    gw->started_at_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    char err[512];
    if ((gw->access_log = tg_accesslog_create(cfg->access_log, gw->n_workers, err, sizeof(err))) == NULL)
        tg_errors_add(errs, "%s", err);
    gw->cache = tg_cache_create(cfg->cache_max_bytes);
    if (posix_memalign((void **)&gw->retry_budget, 64, sizeof(*gw->retry_budget)) != 0)
        tg_fatal("out of memory");
    tg_retry_budget_init(gw->retry_budget, (uint64_t)cfg->pool.retry_budget.window_ms * 1000000, cfg->pool.retry_budget.ratio,
                         cfg->pool.retry_budget.min_per_s);
    gw->shared = tg_shared_create(gw->state);
    tg_shared_configure(gw->shared, cfg->shared_limits);
    gw->snapshot = make_snapshot(gw, cfg, 1);
    /* the lease thread may have read Redis's switches before the snapshot bound every name: again, now */
    tg_shared_resync(gw->shared);
    gw->initial = tg_snapshot_ref(gw->snapshot);
    gw->sockets = tg_calloc(cfg->n_listen, sizeof(*gw->sockets));
    for (size_t i = 0; i != cfg->n_listen; ++i) {
        gw->sockets[i].fd = -1;
        if (cfg->listen[i].cert_file != NULL && (gw->sockets[i].ssl_ctx = setup_tls(&cfg->listen[i], errs)) == NULL)
            continue;
        gw->sockets[i].fd = bind_listener(&cfg->listen[i], errs);
        gw->sockets[i].max_conns = cfg->listen[i].max_connections;
    }
    gw->n_sockets = cfg->n_listen;
    setup_admin(gw, errs);
    if (errs->n != 0) {
        destroy(gw);
        return NULL;
    }

    /* Backends: the primary first, then the replicas in config order. */
    gw->backends = backends_of(gw, cfg, &gw->n_backends);

    h2o_config_init(&gw->globalconf);
    gw->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    /*
     * No request holds more than max_body_bytes of body. Over HTTP/1.1 h2o refuses a
     * larger Content-Length on the headers, and a chunked body once it reaches the limit,
     * with its own text/plain 413 (and closes the connection); over HTTP/2 the guard cuts
     * the body off before h2o would reset the stream, and the handler answers the 413.
     */
    gw->globalconf.max_request_entity_size = cfg->max_body_bytes + 1; /* h2o refuses a chunked body that reaches it: one of max_body_bytes passes */
    /* HTTP/1.1: h2o's one timer, from the end of the previous answer to the whole next request; the guard keeps the rest. */
    gw->globalconf.http1.req_timeout = (uint64_t)cfg->http.idle_timeout_ms;
    /*
     * At most h2o's own 10 s for HTTP/2: a streamed answer read slowly over HTTP/2 can
     * end (its last frames flushed) only when the idle timeout fires. Seen under ASan
     * (tests/integration/reads.c, a slow client); present since streamed answers came, and
     * masked by this default, so it stays until the cause is found.
     */
    gw->globalconf.http2.idle_timeout = cfg->http.idle_timeout_ms < 10000 ? (uint64_t)cfg->http.idle_timeout_ms : 10000;
    gw->globalconf.http2.max_concurrent_requests_per_connection = (size_t)cfg->http.max_streams_per_connection;
    gw->globalconf.handshake_timeout = (uint64_t)cfg->http.header_timeout_ms;
    gw->guard = (tg_guard_limits_t){
        .max_body_bytes = cfg->max_body_bytes,
        /* h2o advertises 100 and refuses a stream past 100 (open or half-closed); twice that is no race, but a client that ignores it */
        .max_streams = 200,
        .header_timeout_ms = (uint64_t)cfg->http.header_timeout_ms,
        .body_timeout_ms = (uint64_t)cfg->http.body_timeout_ms,
        .reset_burst = TG_GUARD_RESET_BURST,
        .reset_per_s = TG_GUARD_RESET_PER_S,
        .control_burst = TG_GUARD_CONTROL_BURST,
        .control_per_s = TG_GUARD_CONTROL_PER_S,
    };
    gw->hostconf = h2o_config_register_host(&gw->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(gw->hostconf, "/", 0);
    gw->handler = tg_handler_register(pathconf); /* h2o_config_register_path gave it the chunked filter (streamed answers) */
    /*
     * gzip by h2o's filter (it runs before the chunked one), on every answer the
     * handler marks (tg_respond_encoding: by the current snapshot's `compression`, so
     * a reload changes it); never a HEAD, an HTTP/1.0 request or a status other than
     * 200. Quality 1, h2o's own default: on the fly, the cheapest. Debian's
     * libh2o-evloop has no brotli (H2O_USE_BROTLI 0), so no `br`.
     */
    h2o_compress_args_t compress = {.min_size = 0, .gzip = {.quality = 1}, .brotli = {.quality = -1}};
    h2o_compress_register(pathconf, &compress);
    tg_observe_register(gw->hostconf, gw->handler);
    for (size_t i = 0; i != cfg->warnings.n; ++i)
        tg_log(TG_LOG_WARN, "%s", cfg->warnings.msgs[i]);
    setup_workers(gw);
    /* Health checks from now on: a reload may come before tg_gateway_run. */
    gw->health = tg_health_create(cfg->health_interval_ms);
    for (size_t i = 0; i != gw->n_backends; ++i)
        tg_health_add(gw->health, gw->backends[i]);
    return gw;
}

static void on_conn_close(void *data)
{
    tg_listener_t *l = data;
    --l->worker->n_conns;
    atomic_fetch_sub_explicit(&l->shared->n_conns, 1, memory_order_relaxed);
}

/* How long accepting pauses when no descriptor is left (accept4 failing with EMFILE keeps the listener readable). */
#define TG_ACCEPT_PAUSE_MS 100

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_accept_resume(h2o_timeout_entry_t *entry)
{
    tg_listener_t *l = H2O_STRUCT_FROM_MEMBER(tg_listener_t, resume, entry);
    if (l->sock != NULL && !l->worker->shutting_down)
        h2o_socket_read_start(l->sock, on_accept);
}

/*
 * Accepts a bounded batch per wakeup, so one busy listener cannot starve the loop. A
 * worker's listener counts its connections against listen[].max_connections (past it
 * a new connection is closed at once, which costs little) and, out of descriptors,
 * stops accepting for a moment rather than spin. Returns -1 when out of descriptors.
 */
static int accept_batch(h2o_socket_t *listener, h2o_accept_ctx_t *accept_ctx, tg_listener_t *l)
{
    for (int i = 0; i != 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return errno == EMFILE || errno == ENFILE ? -1 : 0;
        if (l != NULL) {
            if (atomic_fetch_add_explicit(&l->shared->n_conns, 1, memory_order_relaxed) >= l->shared->max_conns) {
                atomic_fetch_sub_explicit(&l->shared->n_conns, 1, memory_order_relaxed);
                h2o_socket_close(sock);
                continue;
            }
            ++l->worker->n_conns;
            tg_conn_attach(&l->worker->conns, sock, on_conn_close, l);
        }
        h2o_accept(accept_ctx, sock);
    }
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tg_listener_t *l = listener->data;
    if (err != NULL || accept_batch(listener, &l->accept_ctx, l) == 0)
        return;
    static _Atomic uint64_t warned_at;
    uint64_t now = tg_now_ms(), last = atomic_load(&warned_at);
    if (now > last + 10000 && atomic_compare_exchange_strong(&warned_at, &last, now))
        tg_log(TG_LOG_WARN, "out of file descriptors: not accepting connections for %d ms at a time (raise the limit, or lower "
                            "listen[].max_connections or pool.size)",
               TG_ACCEPT_PAUSE_MS);
    h2o_socket_read_stop(listener);
    if (!h2o_timeout_is_linked(&l->resume))
        h2o_timeout_link(l->worker->ctx.loop, &l->worker->accept_pause, &l->resume);
}

static void on_stop_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tg_worker_t *w = H2O_STRUCT_FROM_MEMBER(tg_worker_t, stop_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    w->shutting_down = 1;
}

/* pool.size is the total per backend: split it, the first threads taking the remainder. */
static int conns_per_thread(const tg_config_t *cfg, size_t n_workers, size_t index)
{
    return cfg->pool.size / (int)n_workers + ((int)index < cfg->pool.size % (int)n_workers ? 1 : 0);
}

/* The bound of a worker's wait queue. */
#define MAX_WAITERS(cfg) ((cfg)->pool.size * TG_PIPELINE_DEPTH * 4)

/** what a reload sends each worker */
typedef struct st_tg_reload_msg_t {
    h2o_multithread_message_t super;
    tg_snapshot_t *snap;      /* a reference for the worker */
    tg_backend_t **backends;  /* the worker's own copy of the list */
    size_t n_backends;
    SSL_CTX **ssl_ctx;        /* per listener: a reference for the worker, or NULL (cleartext, or unchanged) */
} tg_reload_msg_t;

/* A reload reaches the worker: new calls start on the new snapshot; calls in flight finish on the one they started on. */
static void on_reload_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tg_worker_t *w = H2O_STRUCT_FROM_MEMBER(tg_worker_t, reload_receiver, receiver);
    tg_gateway_t *gw = w->gw;
    while (!h2o_linklist_is_empty(messages)) {
        tg_reload_msg_t *m = H2O_STRUCT_FROM_MEMBER(tg_reload_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        const tg_config_t *cfg = m->snap->config;
        /* The pool takes the new settings while the old snapshot is still pinned (it compares them). */
        if (w->pool != NULL)
            tg_pool_reconfigure(w->pool, cfg, m->backends, m->n_backends, conns_per_thread(cfg, gw->n_workers, w->index),
                                MAX_WAITERS(cfg));
        free(w->backends);
        w->backends = m->backends;
        w->n_backends = m->n_backends;
        for (size_t i = 0; i != w->n_listeners; ++i) {
            if (m->ssl_ctx[i] == NULL)
                continue;
            /* Connections made with the old certificate keep it (each SSL holds its context). */
            SSL_CTX_free(w->listeners[i].accept_ctx.ssl_ctx);
            w->listeners[i].accept_ctx.ssl_ctx = m->ssl_ctx[i];
        }
        free(m->ssl_ctx);
        tg_pins_set(&w->pins, m->snap);
        free(m);
    }
}

__thread tg_worker_t *tg_current_worker;

/* On the worker's thread: its loop, its h2o context (the handler makes its own state for the thread) and its queue. */
static void set_up_loop(tg_worker_t *w)
{
    tg_gateway_t *gw = w->gw;
    h2o_context_init(&w->ctx, h2o_evloop_create(), &gw->globalconf);
    tg_conns_init(&w->conns, &w->ctx, &gw->guard, (uint64_t)gw->config->http.idle_timeout_ms);
    h2o_timeout_init(w->ctx.loop, &w->accept_pause, TG_ACCEPT_PAUSE_MS);
    w->queue = h2o_multithread_create_queue(w->ctx.loop);
    h2o_multithread_register_receiver(w->queue, &w->stop_receiver, on_stop_message);
    h2o_multithread_register_receiver(w->queue, &w->reload_receiver, on_reload_message);
    h2o_multithread_register_receiver(w->queue, &w->cache_receiver, tg_handler_cache_delivery);
    tg_relay_attach(gw->relay, w->index, w->queue);
    pthread_mutex_lock(&gw->start_mutex);
    ++gw->n_set_up;
    pthread_cond_broadcast(&gw->start_cond);
    while (!gw->go)
        pthread_cond_wait(&gw->start_cond, &gw->start_mutex);
    pthread_mutex_unlock(&gw->start_mutex);
}

/* Lets the parked worker threads run (once). */
static void let_workers_go(tg_gateway_t *gw)
{
    pthread_mutex_lock(&gw->start_mutex);
    gw->go = 1;
    pthread_cond_broadcast(&gw->start_cond);
    pthread_mutex_unlock(&gw->start_mutex);
}

static void *worker_main(void *arg)
{
    tg_worker_t *w = arg;
    tg_current_worker = w;
    tg_gateway_t *gw = w->gw;
    set_up_loop(w);
    const tg_config_t *cfg = tg_worker_config(w);
    h2o_loop_t *loop = w->ctx.loop;

    /* pool.size is the total per backend: split it, the first threads taking the remainder. */
    tg_pool_config_t pc = {
        .config = cfg,
        .backends = w->backends,
        .n_backends = w->n_backends,
        .conns_per_backend = conns_per_thread(cfg, gw->n_workers, w->index),
        .pipeline_depth = pipeline_depth(),
        .max_waiters = MAX_WAITERS(cfg),
        .thread_index = w->index,
        .n_threads = gw->n_workers,
        .relay = gw->n_workers > 1 ? tg_relay_send : NULL,
        .relay_arg = tg_relay_arg(gw->relay, w->index),
        .health = gw->health, /* made with the gateway, stopped only after the workers */
        .retry_budget = gw->retry_budget,
    };
    w->pool = tg_pool_create(loop, &pc);
    tg_relay_set_pool(gw->relay, w->index, w->pool);

    for (size_t i = 0; i != w->n_listeners; ++i) {
        tg_listener_t *l = &w->listeners[i];
        l->sock = h2o_evloop_socket_create(loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        h2o_socket_read_start(l->sock, on_accept);
    }

    while (!w->shutting_down && !atomic_load(&gw->stopping))
        h2o_evloop_run(loop, INT32_MAX);
    w->shutting_down = 1; /* the handler answers new calls 503 from now on */
    /* no more calls from other threads; those already sent here are taken in (and waited for below) */
    tg_relay_close(gw->relay, w->index);
    h2o_evloop_run(loop, 0);

    cfg = tg_worker_config(w);
    /*
     * Stop accepting, ask HTTP/2 clients to go away, and let the calls in flight
     * finish (at most shutdown_grace_ms). Idle HTTP/1 keep-alive connections do not
     * hold the exit: once no call is left, the loop runs a moment longer so the last
     * responses get written, and then the process goes.
     */
    for (size_t i = 0; i != w->n_listeners; ++i) {
        if (h2o_timeout_is_linked(&w->listeners[i].resume))
            h2o_timeout_unlink(&w->listeners[i].resume);
        h2o_socket_read_stop(w->listeners[i].sock);
        h2o_socket_close(w->listeners[i].sock);
        w->listeners[i].sock = NULL;
    }
    h2o_context_request_shutdown(&w->ctx);
    uint64_t now = tg_now_ms(), deadline = now + (uint64_t)cfg->shutdown_grace_ms, quiet_since = 0;
    /* connections, or calls: a cache fetch other threads' callers wait for may run here with no connection of its own */
    while ((w->n_conns != 0 || tg_handler_calls(&w->ctx, gw->handler) != 0 || tg_pool_pending(w->pool) != 0) && now < deadline) {
        h2o_evloop_run(loop, 20);
        now = tg_now_ms();
        /* Quiet means the whole gateway: a worker with nothing left still answers late calls on its connections (503). */
        if (tg_handler_calls(&w->ctx, gw->handler) != 0 || atomic_load(&gw->state->in_flight) != 0)
            quiet_since = 0;
        else if (quiet_since == 0)
            quiet_since = now;
        else if (now - quiet_since >= TG_SHUTDOWN_FLUSH_MS)
            break;
    }
    size_t left = tg_handler_calls(&w->ctx, gw->handler);
    if (left != 0)
        tg_log(TG_LOG_WARN, "worker %zu: %zu calls still running after shutdown_grace_ms; abandoning them", w->index, left);
    /* In this thread: pool callbacks touch this loop's requests. Calls relayed here from now on end at once. */
    tg_relay_set_pool(gw->relay, w->index, NULL);
    tg_pool_destroy(w->pool);
    w->pool = NULL;
    tg_conns_dispose(&w->conns);
    return NULL;
}

/* Workers are set up at create, their threads started and parked (set_up_loop), so that tg_gateway_stop can reach them whenever it is called. */
static void setup_workers(tg_gateway_t *gw)
{
    const tg_config_t *cfg = gw->config;
    gw->workers = tg_calloc(gw->n_workers, sizeof(*gw->workers));
    gw->metrics = tg_calloc(gw->n_workers, sizeof(*gw->metrics));
    gw->stop_msgs = tg_calloc(gw->n_workers, sizeof(*gw->stop_msgs));
    gw->relay = tg_relay_create(gw->n_workers);
    for (size_t i = 0; i != gw->n_workers; ++i) {
        tg_worker_t *w = &gw->workers[i];
        w->gw = gw;
        w->metrics = gw->metrics[i] = tg_metrics_thread_create();
        w->access_log = gw->access_log;
        tg_pins_init(&w->pins, tg_snapshot_ref(gw->snapshot));
        w->backends = tg_calloc(gw->n_backends, sizeof(*w->backends));
        memcpy(w->backends, gw->backends, sizeof(*w->backends) * gw->n_backends);
        w->n_backends = gw->n_backends;
        w->index = i;
        w->cache = gw->cache;
        /* Each worker's own copy of every listening socket, made now so that a stop can close the originals at any time. */
        w->listeners = tg_calloc(gw->n_sockets, sizeof(*w->listeners));
        w->n_listeners = gw->n_sockets;
        for (size_t j = 0; j != gw->n_sockets; ++j) {
            tg_listener_t *l = &w->listeners[j];
            l->worker = w;
            l->accept_ctx.ctx = &w->ctx;
            l->accept_ctx.hosts = gw->globalconf.hosts;
            l->shared = &gw->sockets[j];
            l->resume.cb = on_accept_resume;
            l->accept_ctx.ssl_ctx = gw->sockets[j].ssl_ctx;
            /* each worker holds its own reference: a reload swaps it */
            if (l->accept_ctx.ssl_ctx != NULL)
                SSL_CTX_up_ref(l->accept_ctx.ssl_ctx);
            if ((l->fd = dup(gw->sockets[j].fd)) < 0)
                tg_fatal("dup: %s", strerror(errno));
        }
    }
    /* Each thread makes its loop and queue; once all have, messages (a stop, a reload) can reach every worker. */
    for (size_t i = 0; i != gw->n_workers; ++i)
        h2o_multithread_create_thread(&gw->workers[i].tid, NULL, worker_main, &gw->workers[i]);
    pthread_mutex_lock(&gw->start_mutex);
    while (gw->n_set_up != gw->n_workers)
        pthread_cond_wait(&gw->start_cond, &gw->start_mutex);
    pthread_mutex_unlock(&gw->start_mutex);
    int per_thread = cfg->pool.size / (int)gw->n_workers;
    if (per_thread < 2 && cfg->pool.low_priority_share < 1)
        tg_log(TG_LOG_WARN, "pool.size %d over %zu threads leaves a thread one connection per backend: low-priority calls will not "
                            "run there (low_priority_share %.2f of one connection is none)",
               cfg->pool.size, gw->n_workers, cfg->pool.low_priority_share);
}

/* Restart-only settings that differ: noted, and left as they are. Returns whether `listen` is the same. */
static int note_restart_only(const tg_config_t *old, const tg_config_t *cfg, tg_errors_t *notes)
{
    int listen_same = old->n_listen == cfg->n_listen;
    for (size_t i = 0; listen_same && i != cfg->n_listen; ++i) {
        const tg_listen_t *a = &old->listen[i], *b = &cfg->listen[i];
        listen_same = a->port == b->port && strcmp(a->host, b->host) == 0 && (a->cert_file == NULL) == (b->cert_file == NULL);
    }
    if (!listen_same)
        tg_errors_add(notes, "listen: changed; the listeners stay as they are until a restart");
    if (old->threads != cfg->threads)
        tg_errors_add(notes, "threads: changed (%d to %d); takes a restart", old->threads, cfg->threads);
    int admin_same = old->has_admin_listen == cfg->has_admin_listen &&
                     (!cfg->has_admin_listen ||
                      (old->admin_listen.port == cfg->admin_listen.port && strcmp(old->admin_listen.host, cfg->admin_listen.host) == 0));
    if (!admin_same)
        tg_errors_add(notes, "admin_listen: changed; the admin listener stays as it is until a restart");
    if (memcmp(&old->http, &cfg->http, sizeof(cfg->http)) != 0)
        tg_errors_add(notes, "http: changed; its timeouts and stream cap stay as they are until a restart");
    if (memcmp(&old->pool.retry_budget, &cfg->pool.retry_budget, sizeof(cfg->pool.retry_budget)) != 0)
        tg_errors_add(notes, "pool.retry_budget: changed; the read-retry budget stays as it is until a restart");
    if (cfg->max_body_bytes > old->max_body_bytes)
        tg_errors_add(notes, "max_body_bytes: raised (%zu to %zu); bodies past %zu are refused until a restart", old->max_body_bytes,
                      cfg->max_body_bytes, old->max_body_bytes);
    return listen_same;
}

/* The listeners' TLS certificates, read again: a new context per TLS listener (or NULL), or -1 with the reasons. */
/* Frees the TLS contexts a rejected reload made (one per listener, NULL where none). */
static void free_tls_ctxs(tg_gateway_t *gw, SSL_CTX **ctxs)
{
    for (size_t i = 0; i != gw->n_sockets; ++i)
        if (ctxs[i] != NULL)
            SSL_CTX_free(ctxs[i]), ctxs[i] = NULL;
}

static int reload_tls(tg_gateway_t *gw, const tg_config_t *cfg, SSL_CTX **ctxs, tg_errors_t *errs)
{
    int ok = 0;
    for (size_t i = 0; i != gw->n_sockets; ++i) {
        ctxs[i] = NULL;
        /* the listener as it was bound, with the certificate files the new config names for it */
        if (gw->sockets[i].ssl_ctx == NULL || i >= cfg->n_listen || cfg->listen[i].cert_file == NULL)
            continue;
        if ((ctxs[i] = setup_tls(&cfg->listen[i], errs)) == NULL)
            ok = -1;
    }
    if (ok != 0)
        free_tls_ctxs(gw, ctxs);
    return ok;
}

/* The config a reload takes: `text` if given, else the gateway's text again, else its file. */
static tg_config_t *reload_source(tg_gateway_t *gw, const char *text, tg_errors_t *errs)
{
    if (text == NULL)
        text = gw->text;
    if (text == NULL)
        return tg_config_load(gw->config->path, errs);
    return tg_config_parse(text, strlen(text), gw->config->path, errs);
}

int tg_gateway_reload_config(tg_gateway_t *gw, const char *text, tg_errors_t *errs, tg_errors_t *notes, uint64_t *generation)
{
    pthread_mutex_lock(&gw->reload_mutex);
    int r = -1;
    tg_config_t *cfg = NULL;
    if (gw->health == NULL || atomic_load(&gw->stopping)) {
        tg_errors_add(errs, "the gateway is stopping");
        goto Exit;
    }
    cfg = reload_source(gw, text, errs);
    if (cfg == NULL)
        goto Exit;
    if (cfg->pool.size < (int)gw->n_workers) {
        tg_errors_add(errs, "%s: pool.size: %d is fewer connections than the %zu threads running (threads takes a restart)",
                      cfg->path, cfg->pool.size, gw->n_workers);
        tg_config_free(cfg);
        goto Exit;
    }
    SSL_CTX **ctxs = tg_calloc(gw->n_sockets + 1, sizeof(*ctxs));
    /* Certificates are read again for the listeners as they were bound, so only while `listen` is the same. */
    if (note_restart_only(gw->config, cfg, notes) && reload_tls(gw, cfg, ctxs, errs) != 0) {
        free(ctxs);
        tg_config_free(cfg);
        goto Exit;
    }
    /* The access log is reopened on every reload (logrotate may have moved it), or moves to the path now named. */
    char err[512];
    if (tg_accesslog_reopen(gw->access_log, cfg->access_log, err, sizeof(err)) != 0) {
        free_tls_ctxs(gw, ctxs);
        free(ctxs);
        tg_errors_add(errs, "%s", err);
        tg_config_free(cfg);
        goto Exit;
    }
    for (size_t i = 0; i != cfg->warnings.n; ++i)
        tg_log(TG_LOG_WARN, "%s", cfg->warnings.msgs[i]);

    /*
     * Backends by role, name and connection string: those kept keep their health and
     * connections. The checkers of those that leave stop first: an old primary's must
     * not sample into the lag history a new primary starts.
     */
    size_t n;
    tg_backend_t **backends = backends_of(gw, cfg, &n);
    for (size_t i = 0; i != gw->n_backends; ++i)
        if (!in_list(backends, n, gw->backends[i]))
            tg_health_remove(gw->health, gw->backends[i]);
    for (size_t i = 0; i != n; ++i)
        if (!in_list(gw->backends, gw->n_backends, backends[i]))
            tg_health_add(gw->health, backends[i]);
    tg_health_set_interval(gw->health, cfg->health_interval_ms);
    tg_cache_set_max_bytes(gw->cache, cfg->cache_max_bytes);

    uint64_t gen = gw->snapshot->generation + 1;
    tg_shared_configure(gw->shared, cfg->shared_limits);
    tg_snapshot_t *snap = make_snapshot(gw, cfg, gen);
    /* binding may have cleared switches whose files changed: Redis's (the fleet's) are applied again */
    tg_shared_resync(gw->shared);
    pthread_mutex_lock(&gw->snapshot_mutex);
    tg_snapshot_t *old = gw->snapshot;
    gw->snapshot = snap;
    tg_backend_t **old_backends = gw->backends;
    gw->backends = backends;
    gw->n_backends = n;
    pthread_mutex_unlock(&gw->snapshot_mutex);

    /* Every worker takes it on its own loop; until then it serves the old one. */
    for (size_t i = 0; i != gw->n_workers; ++i) {
        tg_reload_msg_t *m = tg_calloc(1, sizeof(*m));
        m->snap = tg_snapshot_ref(snap);
        m->backends = tg_calloc(n, sizeof(*m->backends));
        memcpy(m->backends, backends, sizeof(*backends) * n);
        m->n_backends = n;
        m->ssl_ctx = tg_calloc(gw->n_sockets + 1, sizeof(*m->ssl_ctx));
        for (size_t j = 0; j != gw->n_sockets; ++j)
            if (ctxs[j] != NULL && SSL_CTX_up_ref(ctxs[j]) == 1)
                m->ssl_ctx[j] = ctxs[j];
        h2o_multithread_send_message(&gw->workers[i].reload_receiver, &m->super);
    }
    for (size_t j = 0; j != gw->n_sockets; ++j) {
        if (ctxs[j] == NULL)
            continue;
        SSL_CTX_free(gw->sockets[j].ssl_ctx);
        gw->sockets[j].ssl_ctx = ctxs[j];
    }
    free(ctxs);
    tg_snapshot_release(old);

    /* The leaving backends' checkers, told to stop before the swap, are joined after it (a hung one takes a while). */
    tg_health_reap(gw->health);
    free(old_backends);
    if (text != NULL) {
        /* this text is the config from now on: a reload without one (SIGHUP, the admin API) parses it again */
        free(gw->text);
        gw->text = tg_strdup(text);
    }
    *generation = gen;
    tg_log(TG_LOG_INFO, "reloaded %s: generation %llu, %zu queries, %zu tenants", gw->config->path, (unsigned long long)gen,
           cfg->n_queries, cfg->n_tenants);
    for (size_t i = 0; i != notes->n; ++i)
        tg_log(TG_LOG_WARN, "reload: %s", notes->msgs[i]);
    r = 0;
Exit:
    atomic_fetch_add(r == 0 ? &gw->reloads_ok : &gw->reloads_failed, 1);
    if (r != 0) {
        tg_log(TG_LOG_ERROR, "reload of %s rejected (%zu error%s); the current config stays", gw->config->path, errs->n,
               errs->n == 1 ? "" : "s");
        for (size_t i = 0; i != errs->n; ++i)
            tg_log(TG_LOG_ERROR, "reload: %s", errs->msgs[i]);
    }
    pthread_mutex_unlock(&gw->reload_mutex);
    return r;
}

size_t tg_gateway_threads(tg_gateway_t *gw)
{
    return gw->n_workers;
}

tg_retry_budget_t *tg_gateway_retry_budget(tg_gateway_t *gw)
{
    return gw->retry_budget;
}

tg_backend_t **tg_gateway_backends(tg_gateway_t *gw, size_t *n)
{
    pthread_mutex_lock(&gw->snapshot_mutex);
    tg_backend_t **copy = tg_calloc(gw->n_backends + 1, sizeof(*copy));
    memcpy(copy, gw->backends, sizeof(*copy) * gw->n_backends);
    *n = gw->n_backends;
    pthread_mutex_unlock(&gw->snapshot_mutex);
    return copy;
}

/*
 * The admin API has a thread and loop of its own: a reload it runs reads and checks
 * files there, never on a worker's loop, and a slow admin call never delays a catalog
 * call. It is bound at create (exit 3 if it cannot be) and serves until the stop.
 */
static void on_admin_accept(h2o_socket_t *listener, const char *err)
{
    tg_gateway_t *gw = listener->data;
    /* out of descriptors: the admin loop wakes every 100 ms anyway; wait for it rather than spin */
    if (err == NULL && accept_batch(listener, &gw->admin.accept_ctx, NULL) != 0) {
        h2o_socket_read_stop(listener);
        gw->admin.paused = 1;
    }
}

static void *admin_main(void *arg)
{
    tg_gateway_t *gw = arg;
    h2o_context_init(&gw->admin.ctx, h2o_evloop_create(), &gw->admin.globalconf);
    h2o_loop_t *loop = gw->admin.ctx.loop;
    gw->admin.sock = h2o_evloop_socket_create(loop, gw->admin.fd, H2O_SOCKET_FLAG_DONT_READ);
    gw->admin.fd = -1; /* the socket owns it now */
    gw->admin.sock->data = gw;
    h2o_socket_read_start(gw->admin.sock, on_admin_accept);
    while (!atomic_load(&gw->stopping)) {
        h2o_evloop_run(loop, 100);
        if (gw->admin.paused) {
            gw->admin.paused = 0;
            h2o_socket_read_start(gw->admin.sock, on_admin_accept);
        }
    }
    h2o_socket_read_stop(gw->admin.sock);
    h2o_socket_close(gw->admin.sock);
    /* a moment for the last answers to leave */
    uint64_t until = tg_now_ms() + 100;
    while (tg_now_ms() < until)
        h2o_evloop_run(loop, 20);
    return NULL;
}

static void setup_admin(tg_gateway_t *gw, tg_errors_t *errs)
{
    const tg_config_t *cfg = gw->config;
    gw->admin.fd = -1;
    if (!cfg->has_admin_listen)
        return;
    if ((gw->admin.fd = bind_listener(&cfg->admin_listen, errs)) < 0)
        return;
    h2o_config_init(&gw->admin.globalconf);
    gw->admin.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    gw->admin.globalconf.max_request_entity_size = 1024 * 1024;
    h2o_hostconf_t *host = h2o_config_register_host(&gw->admin.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    tg_admin_handler_t *handler = (tg_admin_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = tg_handle_admin;
    handler->gw = gw;
    /* its loop and h2o context are made on the admin thread (admin_main), like the workers' */
    gw->admin.accept_ctx.ctx = &gw->admin.ctx;
    gw->admin.accept_ctx.hosts = gw->admin.globalconf.hosts;
}

tg_snapshot_t *tg_gateway_snapshot(tg_gateway_t *gw)
{
    pthread_mutex_lock(&gw->snapshot_mutex);
    tg_snapshot_t *s = tg_snapshot_ref(gw->snapshot);
    pthread_mutex_unlock(&gw->snapshot_mutex);
    return s;
}

tg_metrics_thread_t *const *tg_gateway_metrics(tg_gateway_t *gw)
{
    return gw->metrics;
}

tg_cache_t *tg_gateway_cache(tg_gateway_t *gw)
{
    return gw->cache;
}

tg_accesslog_t *tg_gateway_access_log(tg_gateway_t *gw)
{
    return gw->access_log;
}

void tg_gateway_figures(tg_gateway_t *gw, tg_gateway_figures_t *out)
{
    out->reloads_ok = atomic_load(&gw->reloads_ok);
    out->reloads_failed = atomic_load(&gw->reloads_failed);
    out->started_at_s = gw->started_at_s;
    out->client_connections = 0;
    for (size_t i = 0; i != gw->n_sockets; ++i)
        out->client_connections += (uint64_t)atomic_load_explicit(&gw->sockets[i].n_conns, memory_order_relaxed);
    memset(out->closed, 0, sizeof(out->closed));
    out->bodies_refused = 0;
    for (size_t i = 0; i != gw->n_workers; ++i) {
        const tg_conn_stats_t *st = &gw->workers[i].conns.stats;
        out->closed[0] += atomic_load_explicit(&st->rapid_reset, memory_order_relaxed);
        out->closed[1] += atomic_load_explicit(&st->control_flood, memory_order_relaxed);
        out->closed[2] += atomic_load_explicit(&st->too_many_streams, memory_order_relaxed);
        out->closed[3] += atomic_load_explicit(&st->slow_request, memory_order_relaxed);
        out->closed[4] += atomic_load_explicit(&st->stalled, memory_order_relaxed);
        out->bodies_refused += atomic_load_explicit(&st->body_refused, memory_order_relaxed);
    }
}

void tg_gateway_reopen_logs(tg_gateway_t *gw)
{
    tg_accesslog_rotate(gw->access_log);
}

tg_state_t *tg_gateway_state(tg_gateway_t *gw)
{
    return gw->state;
}

tg_shared_t *tg_gateway_shared(tg_gateway_t *gw)
{
    return gw->shared;
}

int tg_gateway_start(tg_gateway_t *gw)
{
    const tg_config_t *cfg = gw->config;
    if (gw->started)
        return 0;
    gw->started = 1;
    let_workers_go(gw);
    if (gw->admin.fd >= 0) {
        pthread_create(&gw->admin.tid, NULL, admin_main, gw);
        gw->admin.running = 1;
    }
    tg_log(TG_LOG_INFO, "serving %zu queries on %zu listener(s) with %zu thread(s)", cfg->n_queries, gw->n_sockets,
           gw->n_workers);
    return 0;
}

/* Waits for a started gateway's threads to end (after tg_gateway_stop) and lets go of what only they used. */
static void wait_stopped(tg_gateway_t *gw)
{
    if (gw->joined)
        return; /* a second run, or a free after run: the threads are gone already */
    for (size_t i = 0; i != gw->n_workers; ++i)
        pthread_join(gw->workers[i].tid, NULL);
    gw->joined = 1;
    /* the last answers' lines (the process may exit without tg_gateway_free) */
    tg_accesslog_flush(gw->access_log);
    if (gw->admin.running) {
        pthread_join(gw->admin.tid, NULL);
        gw->admin.running = 0;
    }
    for (size_t i = 0; i != gw->n_workers; ++i) {
        tg_worker_t *w = &gw->workers[i];
        for (size_t j = 0; j != w->n_listeners; ++j)
            if (w->listeners[j].accept_ctx.ssl_ctx != NULL)
                SSL_CTX_free(w->listeners[j].accept_ctx.ssl_ctx);
        free(w->listeners);
        w->listeners = NULL;
        w->n_listeners = 0;
        tg_handler_dispose(&w->ctx, gw->handler);
        /* The h2o context and loop are left to process exit: h2o 2.2.5 cannot dispose a loop with sockets pending close. */
    }
    pthread_mutex_lock(&gw->reload_mutex);
    tg_health_stop(gw->health);
    gw->health = NULL;
    /* every lease back to the global buckets, and out of the live instances */
    tg_shared_free(gw->shared);
    gw->shared = NULL;
    pthread_mutex_unlock(&gw->reload_mutex);
}

int tg_gateway_run(tg_gateway_t *gw)
{
    tg_gateway_start(gw);
    wait_stopped(gw);
    return 0;
}

void tg_gateway_stop(tg_gateway_t *gw)
{
    /*
     * Held throughout: the workers see `stopping` at their next wakeup, run can return
     * and free be called while this is still closing sockets and sending messages.
     */
    pthread_mutex_lock(&gw->stop_mutex);
    if (atomic_exchange(&gw->stopping, 1)) {
        pthread_mutex_unlock(&gw->stop_mutex);
        return;
    }
    /* Each worker closes its copy when it gets the message; the kernel stops accepting once every copy is closed. */
    for (size_t i = 0; i != gw->n_sockets; ++i) {
        int fd = gw->sockets[i].fd;
        gw->sockets[i].fd = -1;
        if (fd >= 0)
            close(fd);
    }
    for (size_t i = 0; i != gw->n_workers; ++i) {
        gw->stop_msgs[i] = (h2o_multithread_message_t){{NULL}};
        h2o_multithread_send_message(&gw->workers[i].stop_receiver, &gw->stop_msgs[i]);
    }
    pthread_mutex_unlock(&gw->stop_mutex);
}

void tg_gateway_free(tg_gateway_t *gw)
{
    if (gw == NULL)
        return;
    if (gw->started && !gw->joined) {
        /* started and not waited for (tg_gateway_start): stop it and wait here */
        tg_gateway_stop(gw);
        wait_stopped(gw);
    }
    /* a stop from another thread may still be closing sockets: let it finish */
    pthread_mutex_lock(&gw->stop_mutex);
    pthread_mutex_unlock(&gw->stop_mutex);
    destroy(gw);
}

static void destroy(tg_gateway_t *gw)
{
    if (gw->workers != NULL && !gw->joined) {
        /* never run: the parked workers stop at once */
        atomic_store(&gw->stopping, 1);
        let_workers_go(gw);
        for (size_t i = 0; i != gw->n_workers; ++i)
            pthread_join(gw->workers[i].tid, NULL);
        gw->joined = 1;
    }
    tg_health_stop(gw->health);
    tg_shared_free(gw->shared);
    if (gw->admin.fd >= 0)
        close(gw->admin.fd);
    for (size_t i = 0; i != gw->n_sockets; ++i) {
        if (gw->sockets[i].fd >= 0)
            close(gw->sockets[i].fd);
        if (gw->sockets[i].ssl_ctx != NULL)
            SSL_CTX_free(gw->sockets[i].ssl_ctx);
    }
    free(gw->sockets);
    for (size_t i = 0; i != gw->n_known; ++i) {
        free((char *)gw->known[i]->name);
        tg_canceller_stop(gw->known[i]->canceller);
        free((char *)gw->known[i]->conninfo);
        free(gw->known[i]->slots);
        free(gw->known[i]->overload);
        free(gw->known[i]);
    }
    free(gw->known);
    free(gw->backends);
    for (size_t i = 0; gw->workers != NULL && i != gw->n_workers; ++i) {
        tg_worker_t *w = &gw->workers[i];
        if (w->pins.current != NULL)
            tg_pins_dispose(&w->pins);
        free(w->backends);
    }
    tg_relay_free(gw->relay);
    free(gw->retry_budget);
    free(gw->workers);
    free(gw->stop_msgs);
    for (size_t i = 0; gw->metrics != NULL && i != gw->n_workers; ++i)
        tg_metrics_thread_free(gw->metrics[i]);
    free(gw->metrics);
    tg_accesslog_free(gw->access_log);
    tg_cache_free(gw->cache);
    pthread_mutex_destroy(&gw->reload_mutex);
    pthread_mutex_destroy(&gw->snapshot_mutex);
    pthread_mutex_destroy(&gw->start_mutex);
    pthread_mutex_destroy(&gw->stop_mutex);
    pthread_cond_destroy(&gw->start_cond);
    tg_snapshot_release(gw->snapshot);
    tg_snapshot_release(gw->initial);
    tg_state_free(gw->state);
    free(gw->text);
    free(gw);
}

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
#include <unistd.h>
#include "tollgate.h"
#include "tollgate/health.h"
#include "tollgate/limits.h"
#include "tollgate/server.h"
#include "tollgate/snapshot.h"
#include "internal.h"

/* How often HTTP/1 clients with a call in flight are checked for having left. */
#define TG_H1_CHECK_MS 200

/* After the last call of a shutdown ends, how long the loop keeps running to write the responses. */
#define TG_SHUTDOWN_FLUSH_MS 100

/* Most calls in flight on one connection's pipeline. */
#define TG_PIPELINE_DEPTH 32

/** a listening socket, bound once at create */
typedef struct st_tg_listen_socket_t {
    int fd;
    SSL_CTX *ssl_ctx; /* NULL: cleartext */
} tg_listen_socket_t;

/** one worker's wrapper of a listening socket */
typedef struct st_tg_listener_t {
    int fd;             /* this worker's dup of the listening socket */
    h2o_socket_t *sock; /* wraps fd once the worker runs */
    h2o_accept_ctx_t accept_ctx;
    tg_worker_t *worker;
} tg_listener_t;

struct st_tg_gateway_t {
    tg_snapshot_t *snapshot;  /* the current one (the gateway holds a reference) */
    tg_state_t *state;        /* live state by name, kept across snapshots */
    tg_snapshot_t *initial;   /* the one the gateway started with (held): its listeners and threads stay until a restart */
    const tg_config_t *config; /* initial->config */
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    tg_listen_socket_t *sockets;
    size_t n_sockets;
    tg_backend_t *backends;
    char **backend_names;
    size_t n_backends;
    tg_health_t *health;
    tg_canceller_t *canceller;
    tg_worker_t *workers;
    size_t n_workers;
    _Atomic int stopping;
    h2o_multithread_message_t *stop_msgs;
};

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

tg_gateway_t *tg_gateway_create(tg_config_t *cfg, tg_errors_t *errs)
{
    tg_gateway_t *gw = tg_calloc(1, sizeof(*gw));
    gw->config = cfg;
    /* Each worker owns a share of pool.size, so there are never more workers than that. */
    gw->n_workers = (size_t)cfg->threads;
    if (gw->n_workers > (size_t)cfg->pool.size) {
        tg_log(TG_LOG_WARN, "threads (%d) is more than pool.size (%d): running %d threads", cfg->threads, cfg->pool.size,
               cfg->pool.size);
        gw->n_workers = (size_t)cfg->pool.size;
    }
    gw->state = tg_state_create(gw->n_workers);
    gw->snapshot = tg_snapshot_create(cfg, gw->state, 1, tg_now_ns());
    gw->initial = tg_snapshot_ref(gw->snapshot);
    gw->sockets = tg_calloc(cfg->n_listen, sizeof(*gw->sockets));
    for (size_t i = 0; i != cfg->n_listen; ++i) {
        gw->sockets[i].fd = -1;
        if (cfg->listen[i].cert_file != NULL && (gw->sockets[i].ssl_ctx = setup_tls(&cfg->listen[i], errs)) == NULL)
            continue;
        gw->sockets[i].fd = bind_listener(&cfg->listen[i], errs);
    }
    gw->n_sockets = cfg->n_listen;
    if (errs->n != 0) {
        tg_gateway_destroy(gw);
        return NULL;
    }

    /* Backends: the primary first, then the replicas in config order. */
    gw->n_backends = 1 + cfg->n_replicas;
    gw->backends = tg_calloc(gw->n_backends, sizeof(*gw->backends));
    gw->backend_names = tg_calloc(gw->n_backends, sizeof(*gw->backend_names));
    for (size_t i = 0; i != gw->n_backends; ++i) {
        tg_backend_t *b = &gw->backends[i];
        char name[32];
        snprintf(name, sizeof(name), i == 0 ? "primary" : "replica%zu", i);
        gw->backend_names[i] = tg_strdup(name);
        b->name = gw->backend_names[i];
        b->conninfo = i == 0 ? cfg->primary : cfg->replicas[i - 1];
        b->is_primary = i == 0;
        atomic_init(&b->up, 0);
        atomic_init(&b->lag_ms, -1);
        atomic_init(&b->checked_at_ms, 0);
    }

    h2o_config_init(&gw->globalconf);
    gw->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    /*
     * h2o answers bodies over its limit with its own text/plain 413 before our handler
     * runs. Give it headroom so that bodies up to a few times max_body_bytes reach the
     * handler, which answers with problem+json; only absurd ones get h2o's answer.
     */
    gw->globalconf.max_request_entity_size = cfg->max_body_bytes * 4 + 65536;
    gw->hostconf = h2o_config_register_host(&gw->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(gw->hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = tg_handle_request;
    for (size_t i = 0; i != cfg->warnings.n; ++i)
        tg_log(TG_LOG_WARN, "%s", cfg->warnings.msgs[i]);
    setup_workers(gw);
    return gw;
}

static void on_conn_close(void *data)
{
    tg_worker_t *w = data;
    --w->n_conns;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tg_listener_t *l = listener->data;
    if (err != NULL)
        return;
    /* Take a bounded batch per wakeup so one busy listener cannot starve the loop. */
    for (int i = 0; i != 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        ++l->worker->n_conns;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = l->worker;
        h2o_accept(&l->accept_ctx, sock);
    }
}

static void on_stop_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tg_worker_t *w = H2O_STRUCT_FROM_MEMBER(tg_worker_t, stop_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    w->shutting_down = 1;
}

static void *worker_main(void *arg)
{
    tg_worker_t *w = arg;
    tg_gateway_t *gw = w->gw;
    const tg_config_t *cfg = tg_worker_config(w);
    h2o_loop_t *loop = w->ctx.loop;

    /* pool.size is the total per backend: split it, the first threads taking the remainder. */
    int per_thread = cfg->pool.size / (int)gw->n_workers + ((int)w->index < cfg->pool.size % (int)gw->n_workers ? 1 : 0);
    tg_pool_config_t pc = {
        .config = cfg,
        .backends = gw->backends,
        .n_backends = gw->n_backends,
        .conns_per_backend = per_thread,
        .pipeline_depth = TG_PIPELINE_DEPTH,
        .max_waiters = cfg->pool.size * TG_PIPELINE_DEPTH * 4,
        .canceller = gw->canceller,
        .thread_index = w->index,
    };
    const char *depth = getenv("TOLLGATE_PIPELINE_DEPTH");
    if (depth != NULL && atoi(depth) > 0)
        pc.pipeline_depth = atoi(depth);
    w->pool = tg_pool_create(loop, &pc);

    for (size_t i = 0; i != w->n_listeners; ++i) {
        tg_listener_t *l = &w->listeners[i];
        l->sock = h2o_evloop_socket_create(loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        h2o_socket_read_start(l->sock, on_accept);
    }

    while (!w->shutting_down && !atomic_load(&gw->stopping))
        h2o_evloop_run(loop, INT32_MAX);
    w->shutting_down = 1; /* the handler answers new calls 503 from now on */

    /*
     * Stop accepting, ask HTTP/2 clients to go away, and let the calls in flight
     * finish (at most shutdown_grace_ms). Idle HTTP/1 keep-alive connections do not
     * hold the exit: once no call is left, the loop runs a moment longer so the last
     * responses get written, and then the process goes.
     */
    for (size_t i = 0; i != w->n_listeners; ++i) {
        h2o_socket_read_stop(w->listeners[i].sock);
        h2o_socket_close(w->listeners[i].sock);
    }
    h2o_context_request_shutdown(&w->ctx);
    uint64_t now = tg_now_ms(), deadline = now + (uint64_t)cfg->shutdown_grace_ms, quiet_since = 0;
    while (w->n_conns != 0 && now < deadline) {
        h2o_evloop_run(loop, 20);
        now = tg_now_ms();
        /* Quiet means the whole gateway: a worker with nothing left still answers late calls on its connections (503). */
        if (w->n_calls != 0 || atomic_load(&gw->state->in_flight) != 0)
            quiet_since = 0;
        else if (quiet_since == 0)
            quiet_since = now;
        else if (now - quiet_since >= TG_SHUTDOWN_FLUSH_MS)
            break;
    }
    if (w->n_calls != 0)
        tg_log(TG_LOG_WARN, "worker %zu: %zu calls still running after shutdown_grace_ms; abandoning them", w->index, w->n_calls);
    /* In this thread: pool callbacks touch this loop's requests. */
    tg_pool_destroy(w->pool);
    w->pool = NULL;
    return NULL;
}

/* Workers are set up at create, before any thread runs, so that tg_gateway_stop can reach them whenever it is called. */
static void setup_workers(tg_gateway_t *gw)
{
    const tg_config_t *cfg = gw->config;
    gw->workers = tg_calloc(gw->n_workers, sizeof(*gw->workers));
    gw->stop_msgs = tg_calloc(gw->n_workers, sizeof(*gw->stop_msgs));
    for (size_t i = 0; i != gw->n_workers; ++i) {
        tg_worker_t *w = &gw->workers[i];
        w->gw = gw;
        tg_pins_init(&w->pins, tg_snapshot_ref(gw->snapshot));
        w->backends = gw->backends;
        w->n_backends = gw->n_backends;
        w->index = i;
        w->id_prefix = (uint32_t)(tg_now_ms() * 2654435761u) ^ (uint32_t)(i << 24) ^ (uint32_t)getpid();
        h2o_context_init(&w->ctx, h2o_evloop_create(), &gw->globalconf);
        h2o_linklist_init_anchor(&w->h1_calls);
        h2o_timeout_init(w->ctx.loop, &w->h1_check_timeout, TG_H1_CHECK_MS);
        w->h1_check.cb = tg_handle_check_h1_clients;
        w->queue = h2o_multithread_create_queue(w->ctx.loop);
        h2o_multithread_register_receiver(w->queue, &w->stop_receiver, on_stop_message);
        /* Each worker's own copy of every listening socket, made now so that a stop can close the originals at any time. */
        w->listeners = tg_calloc(gw->n_sockets, sizeof(*w->listeners));
        w->n_listeners = gw->n_sockets;
        for (size_t j = 0; j != gw->n_sockets; ++j) {
            tg_listener_t *l = &w->listeners[j];
            l->worker = w;
            l->accept_ctx.ctx = &w->ctx;
            l->accept_ctx.hosts = gw->globalconf.hosts;
            l->accept_ctx.ssl_ctx = gw->sockets[j].ssl_ctx;
            if ((l->fd = dup(gw->sockets[j].fd)) < 0)
                tg_fatal("dup: %s", strerror(errno));
        }
    }
    int per_thread = cfg->pool.size / (int)gw->n_workers;
    if (per_thread < 2 && cfg->pool.low_priority_share < 1)
        tg_log(TG_LOG_WARN, "pool.size %d over %zu threads leaves a thread one connection per backend: low-priority calls will not "
                            "run there (low_priority_share %.2f of one connection is none)",
               cfg->pool.size, gw->n_workers, cfg->pool.low_priority_share);
}

int tg_gateway_run(tg_gateway_t *gw)
{
    const tg_config_t *cfg = gw->config;
    gw->canceller = tg_canceller_start();
    gw->health = tg_health_start(gw->backends, gw->n_backends, cfg);
    for (size_t i = 0; i != gw->n_workers; ++i)
        h2o_multithread_create_thread(&gw->workers[i].tid, NULL, worker_main, &gw->workers[i]);
    tg_log(TG_LOG_INFO, "serving %zu queries on %zu listener(s) with %zu thread(s)", cfg->n_queries, gw->n_sockets,
           gw->n_workers);
    for (size_t i = 0; i != gw->n_workers; ++i)
        pthread_join(gw->workers[i].tid, NULL);
    for (size_t i = 0; i != gw->n_workers; ++i) {
        tg_worker_t *w = &gw->workers[i];
        free(w->listeners);
        tg_buf_dispose(&w->scratch);
        tg_buf_dispose(&w->keys);
        while (w->free_calls != NULL) {
            void *next = *(void **)w->free_calls;
            free(w->free_calls);
            w->free_calls = next;
        }
        /* The h2o context and loop are left to process exit: h2o 2.2.5 cannot dispose a loop with sockets pending close. */
    }
    tg_health_stop(gw->health);
    tg_canceller_stop(gw->canceller);
    return 0;
}

void tg_gateway_stop(tg_gateway_t *gw)
{
    if (atomic_exchange(&gw->stopping, 1))
        return;
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
}

void tg_gateway_destroy(tg_gateway_t *gw)
{
    if (gw == NULL)
        return;
    for (size_t i = 0; i != gw->n_sockets; ++i) {
        if (gw->sockets[i].fd >= 0)
            close(gw->sockets[i].fd);
        if (gw->sockets[i].ssl_ctx != NULL)
            SSL_CTX_free(gw->sockets[i].ssl_ctx);
    }
    free(gw->sockets);
    for (size_t i = 0; i != gw->n_backends; ++i)
        free(gw->backend_names[i]);
    free(gw->backend_names);
    free(gw->backends);
    for (size_t i = 0; gw->workers != NULL && i != gw->n_workers; ++i) {
        tg_worker_t *w = &gw->workers[i];
        if (w->pins.current != NULL)
            tg_pins_dispose(&w->pins);
    }
    free(gw->workers);
    free(gw->stop_msgs);
    tg_snapshot_release(gw->snapshot);
    tg_snapshot_release(gw->initial);
    tg_state_free(gw->state);
    free(gw);
}

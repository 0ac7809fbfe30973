/*
 * Client connections as tollgate keeps them: every accepted socket gets a tg_conn_t,
 * which puts the guard (tollgate/guard.h) in front of h2o's own reading, and a sweep
 * once a second that closes connections past a deadline h2o 2.2.5 does not keep:
 * a request's headers or body arriving too slowly, or a client that does not read
 * its answer.
 *
 * h2o installs its read callbacks through h2o_socket_read_start, from inside
 * libh2o-evloop (HTTP/1 before each request, HTTP/2 once, TLS after the handshake).
 * conn.c defines that function itself: the dynamic linker binds libh2o's calls to
 * it (symbol interposition), and it wraps the callback of tollgate's client sockets
 * and calls libh2o's own for every socket. h2o_socket_close and
 * h2o_http2_handle_upgrade are interposed the same way: a connection the guard closed
 * lingers after h2o is done with it, so that its client reads the GOAWAY (conn.c),
 * and an h2c upgrade with bytes behind it is answered over HTTP/1.1.
 */
#ifndef tollgate__conn_h
#define tollgate__conn_h

#include <stdatomic.h>
#include <stdint.h>
#include <h2o.h>
#include "tollgate/buf.h"
#include "tollgate/guard.h"

typedef struct st_tg_conn_t tg_conn_t;

/** why connections were closed early, over a worker's life (written by its thread, read by any) */
typedef struct {
    _Atomic uint64_t rapid_reset;   /* client resets over budget */
    _Atomic uint64_t control_flood; /* control or empty frames over budget */
    _Atomic uint64_t too_many_streams;
    _Atomic uint64_t slow_request;  /* headers or body past their timeout */
    _Atomic uint64_t stalled;       /* an answer the client did not read for http.idle_timeout_ms */
    _Atomic uint64_t body_refused;  /* HTTP/2 bodies cut off at max_body_bytes (their calls answered 413) */
} tg_conn_stats_t;

/** one worker's client connections */
typedef struct {
    h2o_linklist_t all;            /* every tg_conn_t of this worker */
    h2o_loop_t *loop;
    tg_guard_limits_t limits;
    uint64_t idle_timeout_ms;      /* a write pending that long without progress closes the connection */
    h2o_timeout_t sweep_timeout;
    h2o_timeout_entry_t sweep;
    h2o_timeout_t zero_timeout;    /* bytes held back from h2o come through the guard on it */
    tg_buf_t hold;                 /* bytes held back while h2o parses a part of the buffer */
    tg_conn_stats_t stats;
    uint64_t logged_at_ms;         /* the last "closing a connection" line (at most one a second) */
    uint64_t not_logged;
} tg_conns_t;

/** sets up a worker's set, on its loop (ctx: the worker's h2o context, to learn h2o's HTTP/2 read callback) */
void tg_conns_init(tg_conns_t *cs, h2o_context_t *ctx, const tg_guard_limits_t *limits, uint64_t idle_timeout_ms);

/** stops the sweep and resets the connections still lingering (the others close with their sockets) */
void tg_conns_dispose(tg_conns_t *cs);

/**
 * Takes a just-accepted socket, before h2o_accept: sets its on_close, which calls
 * on_close(data) when it closes. The connection is the guard's from its first byte.
 */
tg_conn_t *tg_conn_attach(tg_conns_t *cs, h2o_socket_t *sock, void (*on_close)(void *data), void *data);

/**
 * For the handler: whether an HTTP/2 request's body was cut off at max_body_bytes (it
 * is to answer 413). Answers 1 once per request.
 */
int tg_conn_body_refused(h2o_req_t *req);

#endif

/* Client connections, the guard in front of h2o's reading, and the sweep: see include/tollgate/conn.h. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include "tollgate/conn.h"
#include "internal.h"

/* How often the sweep looks at every connection's deadlines. */
#define TG_SWEEP_MS 1000

struct st_tg_conn_t {
    h2o_linklist_t link; /* in tg_conns_t.all */
    tg_conns_t *set;
    h2o_socket_t *sock;
    h2o_socket_cb inner; /* h2o's read callback of the moment */
    void (*on_close)(void *data);
    void *data;
    int reading;         /* inside on_guarded_read: a close then only marks it */
    int walked_h2;       /* the bytes h2o is parsing now went through the guard as HTTP/2 frames */
    int closed;          /* the socket closed while reading: freed on the way out */
    uint64_t reads;      /* reads so far (the sweep gives an idle connection's buffer back) */
    uint64_t reads_seen; /* `reads` at the last sweep */
    uint64_t kill_at_ms; /* the guard closed it: shut down then if h2o has not closed it yet, or stop lingering */
    int goaway;          /* the guard told it why in a GOAWAY: linger() once h2o is done with it */
    int lingering;       /* h2o closed it after the guard's GOAWAY: see linger() */
    int closing;         /* the guard closed it; h2o is told once its pending write is out (on_notified_then_close) */
    h2o_socket_cb notified; /* h2o's write callback of the moment, for on_notified_then_close */
    tg_buf_t held;       /* bytes h2o was about to parse unguarded, for `deliver` */
    h2o_timeout_entry_t deliver;
    int shut;            /* the sweep shut it down: h2o closes it on its next read or write */
    size_t written;      /* sock->bytes_written at the last sweep */
    int outq;            /* the socket's unsent bytes (SIOCOUTQ) at the last sweep */
    uint64_t writing_since_ms;
    tg_guard_t guard;
};

/* h2o's HTTP/2 read callback (static in libh2o), learnt once by tg_conns_init: sock->data is an h2o_http2_conn_t under it. */
static _Atomic(h2o_socket_cb) h2_read;

static void conn_on_close(void *data);
static void probe_on_close(void *data)
{
}

/*
 * libh2o's own definition of a function tollgate interposes (`self`, its own address,
 * is not it), looked up once into *cache.
 */
static void *real_fn(const char *name, void *self, _Atomic(void *) *cache)
{
    void *f = atomic_load_explicit(cache, memory_order_relaxed);
    if (f != NULL)
        return f;
    f = dlsym(RTLD_NEXT, name);
    if (f == NULL || f == self) {
        /* tollgate linked as a shared object loaded after libh2o: ask libh2o itself */
        void *lib = dlopen("libh2o-evloop.so.0.13", RTLD_LAZY | RTLD_NOLOAD);
        f = lib != NULL ? dlsym(lib, name) : NULL;
    }
    if (f == NULL || f == self)
        tg_fatal("%s not found in libh2o-evloop: %s", name, dlerror());
    atomic_store_explicit(cache, f, memory_order_relaxed);
    return f;
}

/*
 * The three interposed functions stay exported whatever the visibility the library is
 * built with (libtollgate.so: -fvisibility=hidden): libh2o's own calls bind to them only if
 * the executable or libtollgate.so exports them (gateway/libtollgate.lds lists them).
 */
#define TG_INTERPOSED __attribute__((visibility("default")))

/* libh2o's `fn`, of type `type` */
#define REAL(fn, type)                                                                                                           \
    ({                                                                                                                            \
        static _Atomic(void *) real_;                                                                                              \
        (type)real_fn(#fn, (void *)fn, &real_);                                                                                    \
    })

static void on_guarded_read(h2o_socket_t *sock, const char *err);

static inline tg_conn_t *conn_of(h2o_socket_t *sock)
{
    return sock->on_close.cb == conn_on_close ? sock->on_close.data : NULL;
}

static void on_deliver(h2o_timeout_entry_t *entry);
static void unhold(tg_conn_t *c, h2o_socket_t *sock);

/* Does the HTTP/1.1 request at the start of `in` have bytes behind it (its body, if any, is in `in` whole)? */
static int upgrade_has_more(h2o_req_t *req, const h2o_buffer_t *in)
{
    const char *start = in->bytes, *end;
    if (start == NULL)
        return 0;
    if (req->entity.base != NULL) {
        end = req->entity.base + req->entity.len;
        if (end < start || end > start + in->size)
            return 1; /* not where it is expected: be safe */
    } else {
        size_t i = 0;
        for (; i + 1 < in->size; ++i)
            if (start[i] == '\n' && (start[i + 1] == '\n' || (i + 2 < in->size && start[i + 1] == '\r' && start[i + 2] == '\n')))
                break;
        if (i + 1 >= in->size)
            return 1;
        end = start + i + (start[i + 1] == '\n' ? 2 : 3);
    }
    return end != start + in->size;
}

/* The interposed h2o_socket_read_start (see conn.h): tollgate's client sockets read through the guard. */
TG_INTERPOSED void h2o_socket_read_start(h2o_socket_t *sock, h2o_socket_cb cb)
{
    tg_conn_t *c = conn_of(sock);
    if (c != NULL && cb != on_guarded_read) {
        c->inner = cb;
        if (cb == atomic_load_explicit(&h2_read, memory_order_relaxed)) {
            if (c->guard.proto != TG_GUARD_HTTP2)
                c->guard.proto = TG_GUARD_HTTP2, c->guard.preface_done = 0;
            /*
             * h2o's HTTP/2 takes over a socket that already holds bytes (the first flight
             * of a TLS client, a preface sent behind an HTTP/1.1 request) and parses them
             * itself, past the guard. Unless the guard has just walked them as HTTP/2 frames
             * (a prior-knowledge preface, in this very read), they are held back from it and
             * come through the guard first, at the connection's next read or at once from
             * the loop (a TLS handshake that ends inside a read decrypts such bytes too).
             */
            if (!(c->reading && c->walked_h2) && sock->input->size != 0) {
                tg_buf_append(&c->held, sock->input->bytes, sock->input->size);
                h2o_buffer_consume(&sock->input, sock->input->size);
                if (!h2o_timeout_is_linked(&c->deliver))
                    h2o_timeout_link(c->set->loop, &c->set->zero_timeout, &c->deliver);
            }
        } else if (c->guard.proto == TG_GUARD_HTTP1) {
            tg_guard_h1_next(&c->guard, sock->input->size, tg_now_ms()); /* the next request on a kept-alive connection */
        }
        cb = on_guarded_read;
    } else if (sock->on_close.cb == probe_on_close) {
        atomic_store_explicit(&h2_read, cb, memory_order_relaxed);
    }
    REAL(h2o_socket_read_start, void (*)(h2o_socket_t *, h2o_socket_cb))(sock, cb);
}

/*
 * The interposed h2o_http2_handle_upgrade (Upgrade: h2c). h2o parses whatever the
 * client sent after its upgrade request before the 101 itself, past the guard. RFC
 * 7540 (3.2) has the client wait for the 101, so a request with bytes behind it is
 * served over HTTP/1.1 instead (h2o goes on with those bytes as the next request: a
 * preface then switches the connection to HTTP/2 through the guard).
 */
TG_INTERPOSED int h2o_http2_handle_upgrade(h2o_req_t *req, struct timeval connected_at)
{
    /* h2o 2.2.5's HTTP/1 connection: an h2o_conn_t, then its socket (lib/http1.c, struct st_h2o_http1_conn_t) */
    h2o_socket_t *sock = ((struct {
                             h2o_conn_t super;
                             h2o_socket_t *sock;
                         } *)req->conn)
                             ->sock;
    if (sock != NULL && conn_of(sock) != NULL && upgrade_has_more(req, sock->input))
        return -1;
    return REAL(h2o_http2_handle_upgrade, int (*)(h2o_req_t *, struct timeval))(req, connected_at);
}

static void real_close(h2o_socket_t *sock)
{
    REAL(h2o_socket_close, void (*)(h2o_socket_t *))(sock);
}

/*
 * h2o 2.2.5's evloop socket (lib/common/socket/evloop.c.h, struct st_h2o_evloop_socket_t),
 * as far as the count of buffers it has still to write. h2o closes an HTTP/2 connection
 * right after handing its last frames to h2o_socket_write: all of them are usually in
 * the kernel already, only the notice of it is pending.
 */
struct evloop_socket {
    h2o_socket_t super;
    int fd;
    int flags;
    h2o_evloop_t *loop;
    size_t unsent; /* _wreq.cnt */
};

/* Has h2o bytes of this socket's that it has not written yet (or does its fd not sit where the layout above says)? */
static int has_unsent(h2o_socket_t *sock)
{
    const struct evloop_socket *es = (const struct evloop_socket *)sock;
    return es->fd != h2o_socket_get_fd(sock) || es->unsent != 0;
}

static void on_linger_read(h2o_socket_t *sock, const char *err);

/* The notice of h2o's last write, which h2o, having closed, no longer waits for. */
static void on_linger_written(h2o_socket_t *sock, const char *err)
{
    if (err != NULL)
        real_close(sock);
}

/*
 * A connection the guard closed has its GOAWAY in the kernel's send queue, and its
 * client (a flood) has sent more: closing a socket with unread input makes the kernel
 * answer with a reset and throw that queue away, so the client would never learn
 * why. Instead it is shut for writing (the GOAWAY, then the end of the stream), its
 * input read and dropped until the client closes, and reset by the first sweep past
 * kill_at_ms. Only connections told why in a GOAWAY linger (a slow HTTP/1 client is
 * just closed). TLS connections close at once: shutting a TLS socket for writing
 * would cut off h2o's close_notify.
 */
static int linger(tg_conn_t *c, h2o_socket_t *sock)
{
    if (!c->goaway || c->lingering || c->shut || sock->ssl != NULL || tg_now_ms() >= c->kill_at_ms)
        return 0;
    if (h2o_socket_is_writing(sock)) {
        if (has_unsent(sock))
            return 0; /* a client not reading: what is left dies with h2o's buffer */
        sock->_cb.write = on_linger_written;
    }
    c->lingering = 1;
    shutdown(h2o_socket_get_fd(sock), SHUT_WR);
    h2o_buffer_consume(&sock->input, sock->input->size);
    REAL(h2o_socket_read_start, void (*)(h2o_socket_t *, h2o_socket_cb))(sock, on_linger_read);
    return 1;
}

/*
 * The end of a linger that ran out: a reset, so that neither bytes still queued for a
 * client that reads nothing nor the FIN behind them hold the socket in the kernel.
 */
static void abort_close(h2o_socket_t *sock)
{
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_LINGER, &now, sizeof(now));
    real_close(sock);
}

/* A lingering socket's input is dropped; its client's close (or an error) ends it. */
static void on_linger_read(h2o_socket_t *sock, const char *err)
{
    if (err != NULL)
        real_close(sock);
    else
        h2o_buffer_consume(&sock->input, sock->input->size);
}

/* The interposed h2o_socket_close: a client socket's protocol object is gone from here on (h2o frees it first). */
TG_INTERPOSED void h2o_socket_close(h2o_socket_t *sock)
{
    tg_conn_t *c = conn_of(sock);
    if (c != NULL) {
        c->inner = NULL;
        if (linger(c, sock))
            return;
    }
    real_close(sock);
}

/* h2o's HTTP/2 connection on the socket, or NULL (not HTTP/2, or closing) */
static inline h2o_http2_conn_t *h2_conn(tg_conn_t *c)
{
    return c->inner != NULL && c->inner == atomic_load_explicit(&h2_read, memory_order_relaxed) ? c->sock->data : NULL;
}

static size_t *content_length(void *ctx, uint32_t stream_id)
{
    h2o_http2_conn_t *hc = h2_conn(ctx);
    h2o_http2_stream_t *stream = hc != NULL ? h2o_http2_conn_get_stream(hc, stream_id) : NULL;
    return stream != NULL ? &stream->_expected_content_length : NULL;
}

/* WINDOW_UPDATE of a stream whose DATA the guard dropped, so its client may send the rest (to be dropped) */
static void credit_stream(void *ctx, uint32_t stream_id, size_t n)
{
    h2o_http2_conn_t *hc = h2_conn(ctx);
    if (hc == NULL || hc->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING)
        return;
    while (n != 0) {
        int32_t k = n > INT32_MAX ? INT32_MAX : (int32_t)n;
        h2o_http2_encode_window_update_frame(&hc->_write.buf, stream_id, k);
        n -= (size_t)k;
    }
    h2o_http2_conn_request_write(hc);
}

/* RST_STREAM NO_ERROR for a cut-off body still coming long after its answer (the guard's prune) */
static void reset_stream(void *ctx, uint32_t stream_id)
{
    h2o_http2_conn_t *hc = h2_conn(ctx);
    if (hc == NULL || hc->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING)
        return;
    h2o_http2__encode_rst_stream_frame(&hc->_write.buf, stream_id, 0);
    h2o_http2_conn_request_write(hc);
}

static void note_close(tg_conn_t *c, const char *why)
{
    tg_conns_t *cs = c->set;
    uint64_t now = tg_now_ms();
    if (now < cs->logged_at_ms + 1000) {
        ++cs->not_logged;
        return;
    }
    char peer[NI_MAXHOST] = "?";
    struct sockaddr_storage sa;
    socklen_t salen = h2o_socket_getpeername(c->sock, (void *)&sa);
    if (salen != 0) {
        size_t n = h2o_socket_getnumerichost((void *)&sa, salen, peer);
        peer[n == SIZE_MAX ? 0 : n] = '\0';
    }
    if (cs->not_logged != 0)
        tg_log(TG_LOG_WARN, "closing a client connection from %s: %s (and %llu more since the last such line)", peer, why,
               (unsigned long long)cs->not_logged);
    else
        tg_log(TG_LOG_WARN, "closing a client connection from %s: %s", peer, why);
    cs->logged_at_ms = now;
    cs->not_logged = 0;
}

static void free_conn(tg_conn_t *c);

/* Calls `cb` of h2o's on `sock`, during which a close only marks c; returns 0 if the socket is gone since (c freed). */
static int call_h2o(tg_conn_t *c, h2o_socket_cb cb, h2o_socket_t *sock, const char *err)
{
    int outer = c->reading;
    c->reading = 1;
    cb(sock, err);
    c->reading = outer;
    if (c->closed && !outer) {
        free_conn(c);
        return 0;
    }
    return !c->closed;
}

/*
 * h2o was waiting to be told it may write (on_notify_write) when the guard closed the
 * connection: it writes now, the GOAWAY with the rest, and only then is told of the
 * close, so that it waits for that write instead of throwing its buffer away.
 */
static void on_notified_then_close(h2o_socket_t *sock, const char *err)
{
    tg_conn_t *c = conn_of(sock);
    h2o_socket_cb cb = c->notified;
    c->notified = NULL;
    if (call_h2o(c, cb, sock, err) && c->inner != NULL)
        call_h2o(c, c->inner, sock, "closed by tollgate's guard");
}

/* An empty SETTINGS frame: the server's preface, which must come before its GOAWAY. */
static void put_settings(h2o_buffer_t **buf)
{
    static const char settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    h2o_iovec_t room = h2o_buffer_reserve(buf, sizeof(settings));
    if (room.base == NULL)
        tg_fatal("out of memory");
    memcpy(room.base, settings, sizeof(settings));
    (*buf)->size += sizeof(settings);
}

/* Closes a connection the guard refused, through h2o's own path (its read callback, told of an error). */
static void close_guarded(tg_conn_t *c, const char *why, int code)
{
    tg_conns_t *cs = c->set;
    _Atomic uint64_t *count = c->guard.closed_for == TG_GUARD_FOR_RESETS    ? &cs->stats.rapid_reset
                              : c->guard.closed_for == TG_GUARD_FOR_CONTROL ? &cs->stats.control_flood
                              : c->guard.closed_for == TG_GUARD_FOR_STREAMS ? &cs->stats.too_many_streams
                                                                        : &cs->stats.slow_request;
    atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
    note_close(c, why);
    c->kill_at_ms = tg_now_ms() + 2000; /* a client that reads nothing would hold the GOAWAY, and the connection, for ever */
    h2o_socket_t *sock = c->sock;
    h2o_http2_conn_t *hc = h2_conn(c);
    if (hc != NULL && code != 0 && hc->state < H2O_HTTP2_CONN_STATE_IS_CLOSING) {
        /* The preface came in this very read: h2o has not sent its SETTINGS, which must come first. */
        if (c->guard.preface_now)
            put_settings(&hc->_write.buf);
        h2o_http2_encode_goaway_frame(&hc->_write.buf, hc->pull_stream_ids.max_open, -code, h2o_iovec_init(why, strlen(why)));
        h2o_http2_conn_request_write(hc);
        c->goaway = 1;
        if (hc->_write.buf_in_flight == NULL && h2o_socket_is_writing(sock)) {
            /* h2o waits for leave to write: told of the close now, it would free the GOAWAY unsent */
            c->closing = 1;
            c->notified = sock->_cb.write;
            sock->_cb.write = on_notified_then_close;
            return;
        }
        /* otherwise h2o's close waits for its write (in flight, or the one just requested) */
    } else if (code != 0 && c->guard.proto == TG_GUARD_HTTP2 && c->guard.preface_now && sock->ssl == NULL &&
               sock->bytes_written == 0 && !h2o_socket_is_writing(sock)) {
        /*
         * The client's preface and the flood came in one read: h2o has not made an HTTP/2
         * connection yet, and would close it with nothing said. The socket has sent nothing
         * so far, so the server's preface and GOAWAY fit its empty send buffer.
         */
        uint8_t f[160];
        size_t n = tg_guard_goaway(f, sizeof(f), (uint32_t)code, why);
        if (send(h2o_socket_get_fd(sock), f, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n)
            c->goaway = 1;
        else
            tg_log(TG_LOG_DEBUG, "the GOAWAY to a client connection was not sent whole: %s", strerror(errno));
    }
    c->inner(sock, "closed by tollgate's guard");
}

/* Dropped DATA bytes go back to the client as connection window, after h2o's own updates. */
static void give_back(tg_conn_t *c)
{
    h2o_http2_conn_t *hc = h2_conn(c);
    if (c->guard.refund == 0 || hc == NULL || hc->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING)
        return;
    while (c->guard.refund != 0) {
        int32_t n = c->guard.refund > INT32_MAX ? INT32_MAX : (int32_t)c->guard.refund;
        h2o_http2_encode_window_update_frame(&hc->_write.buf, 0, n);
        c->guard.refund -= (uint64_t)n;
    }
    h2o_http2_conn_request_write(hc);
}

static void free_conn(tg_conn_t *c)
{
    h2o_linklist_unlink(&c->link);
    if (h2o_timeout_is_linked(&c->deliver))
        h2o_timeout_unlink(&c->deliver);
    tg_buf_dispose(&c->held);
    free(c);
}

/*
 * The read callback of every client socket: the guard looks at what h2o is about to
 * parse, then h2o's own callback parses it. A split hands h2o the first part, holds
 * the rest back and looks again once h2o has taken it in.
 */
static void on_guarded_read(h2o_socket_t *sock, const char *err)
{
    tg_conn_t *c = sock->on_close.data;
    tg_conns_t *cs = c->set;
    if (c->inner == NULL)
        return; /* closing */
    if (c->closing) {
        /* the guard closed it and h2o is to be told once its write is out: the rest is dropped */
        h2o_buffer_consume(&sock->input, sock->input->size);
        return;
    }
    if (c->held.len != 0)
        unhold(c, sock); /* the oldest bytes first, whatever woke us */
    c->reading = 1;
    c->walked_h2 = 0;
    ++c->reads;
    if (err == NULL && sock->input->size != 0) {
        tg_guard_h2o_t h = {c, content_length, reset_stream, credit_stream};
        for (;;) {
            size_t len = sock->input->size, split = 0;
            const char *why = NULL;
            int code = 0;
            h2o_http2_conn_t *hc = h2_conn(c);
            uint32_t streams = hc != NULL ? hc->num_streams.pull.open : 0; /* h2o counts a half-closed stream as open too */
            uint64_t now = tg_now_ms(); /* one clock read per scan */
            if (hc != NULL)
                tg_guard_prune(&c->guard, &cs->limits, &h, now);
            uint64_t refused = c->guard.n_refused;
            int r = tg_guard_scan(&c->guard, &cs->limits, &h, (uint8_t *)sock->input->bytes, &len, &split, streams, now, &why,
                                  &code);
            if (len != sock->input->size)
                sock->input->size = len;
            c->walked_h2 = c->guard.proto == TG_GUARD_HTTP2;
            if (c->guard.n_refused != refused)
                atomic_fetch_add_explicit(&cs->stats.body_refused, c->guard.n_refused - refused, memory_order_relaxed);
            if (r == TG_GUARD_CLOSE) {
                close_guarded(c, why, code);
                goto Out;
            }
            if (r == TG_GUARD_PASS)
                break;
            /* TG_GUARD_SPLIT: h2o parses [0, split) (it takes every whole frame), then the rest comes back. */
            tg_buf_reset(&cs->hold);
            tg_buf_append(&cs->hold, sock->input->bytes + split, len - split);
            sock->input->size = split;
            c->inner(sock, NULL);
            if (c->closed)
                goto Out;
            h2o_iovec_t room = h2o_buffer_reserve(&sock->input, cs->hold.len);
            if (room.base == NULL)
                tg_fatal("out of memory");
            memcpy(room.base, cs->hold.base, cs->hold.len);
            sock->input->size += cs->hold.len;
            /* h2o closing, or holding back its reading (its output is full): the rest waits, in its buffer, as h2o's own would */
            if (c->inner == NULL || !h2o_socket_is_reading(sock) || ((hc = h2_conn(c)) != NULL && hc->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING))
                goto Out;
        }
    }
    c->inner(sock, err);
Out:
    if (!c->closed)
        give_back(c);
    c->reading = 0;
    if (c->closed)
        free_conn(c);
}

/* Puts bytes held back from h2o (see h2o_socket_read_start) in front of anything read since. */
static void unhold(tg_conn_t *c, h2o_socket_t *sock)
{
    size_t newer = sock->input->size;
    h2o_iovec_t room = h2o_buffer_reserve(&sock->input, c->held.len);
    if (room.base == NULL)
        tg_fatal("out of memory");
    memmove(sock->input->bytes + c->held.len, sock->input->bytes, newer);
    memcpy(sock->input->bytes, c->held.base, c->held.len);
    sock->input->size += c->held.len;
    tg_buf_dispose(&c->held);
    if (h2o_timeout_is_linked(&c->deliver))
        h2o_timeout_unlink(&c->deliver);
}

/* Held bytes with nothing read since: through the guard now. */
static void on_deliver(h2o_timeout_entry_t *entry)
{
    tg_conn_t *c = H2O_STRUCT_FROM_MEMBER(tg_conn_t, deliver, entry);
    if (c->sock != NULL && c->inner != NULL && c->held.len != 0)
        on_guarded_read(c->sock, NULL);
}

static void conn_on_close(void *data)
{
    tg_conn_t *c = data;
    if (c->on_close != NULL)
        c->on_close(c->data);
    c->sock = NULL;
    if (c->reading)
        c->closed = 1;
    else
        free_conn(c);
}

tg_conn_t *tg_conn_attach(tg_conns_t *cs, h2o_socket_t *sock, void (*on_close)(void *data), void *data)
{
    tg_conn_t *c = tg_calloc(1, sizeof(*c));
    c->set = cs;
    c->sock = sock;
    c->on_close = on_close;
    c->data = data;
    c->deliver.cb = on_deliver;
    h2o_linklist_insert(&cs->all, &c->link);
    sock->on_close.cb = conn_on_close;
    sock->on_close.data = c;
    return c;
}

int tg_conn_body_refused(h2o_req_t *req)
{
    if (req->version < 0x200)
        return 0;
    h2o_http2_conn_t *hc = (h2o_http2_conn_t *)req->conn;
    tg_conn_t *c = hc->sock != NULL ? conn_of(hc->sock) : NULL;
    if (c == NULL)
        return 0;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    return tg_guard_take_refused(&c->guard, stream->stream_id);
}

/*
 * Once a second: a connection whose request is past a deadline (the guard's, while h2o
 * reads it) or whose answer has not moved for idle_timeout_ms is shut down; h2o sees
 * the end of the socket and closes it its own way. A connection that read nothing
 * since the last sweep and holds no unparsed bytes gives its input buffer back (h2o
 * makes one at its next read), so an idle connection costs no buffer.
 */
static void on_sweep(h2o_timeout_entry_t *entry)
{
    tg_conns_t *cs = H2O_STRUCT_FROM_MEMBER(tg_conns_t, sweep, entry);
    uint64_t now = tg_now_ms();
    for (h2o_linklist_t *l = cs->all.next, *next; l != &cs->all; l = next) {
        next = l->next; /* a lingering connection's close frees it */
        tg_conn_t *c = H2O_STRUCT_FROM_MEMBER(tg_conn_t, link, l);
        h2o_socket_t *sock = c->sock;
        if (c->lingering) {
            if (now > c->kill_at_ms)
                abort_close(sock);
            continue;
        }
        if (c->reads == c->reads_seen && sock->input->size == 0 && sock->input->bytes != NULL && c->inner != NULL) {
            h2o_buffer_dispose(&sock->input);
            h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
        }
        c->reads_seen = c->reads;
        if (c->shut)
            continue;
        const char *why = NULL;
        if (c->kill_at_ms != 0 && now > c->kill_at_ms) {
            shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
            c->shut = 1;
            continue;
        }
        if (h2o_socket_is_writing(sock)) {
            /* progress: a new write, or the kernel's send queue moving (a client reading slowly still reads) */
            int outq = -1;
            ioctl(h2o_socket_get_fd(sock), SIOCOUTQ, &outq);
            if (c->writing_since_ms == 0 || sock->bytes_written != c->written || outq != c->outq) {
                c->written = sock->bytes_written;
                c->outq = outq;
                c->writing_since_ms = now;
            } else if (now > c->writing_since_ms + cs->idle_timeout_ms) {
                why = "it has not read its answer for http.idle_timeout_ms";
                atomic_fetch_add_explicit(&cs->stats.stalled, 1, memory_order_relaxed);
            }
        } else {
            c->writing_since_ms = 0;
        }
        if (h2_conn(c) != NULL) {
            tg_guard_h2o_t h = {c, content_length, reset_stream, credit_stream};
            tg_guard_prune(&c->guard, &cs->limits, &h, now);
        }
        if (why == NULL && h2o_socket_is_reading(sock) && (why = tg_guard_expired(&c->guard, &cs->limits, now)) != NULL)
            atomic_fetch_add_explicit(&cs->stats.slow_request, 1, memory_order_relaxed);
        if (why != NULL) {
            note_close(c, why);
            shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
            c->shut = 1;
        }
    }
    h2o_timeout_link(cs->loop, &cs->sweep_timeout, &cs->sweep);
}

/* Learns h2o's HTTP/2 read callback: a throwaway HTTP/2 connection over a socket pair, closed at once. */
static void learn_h2_read(h2o_context_t *ctx)
{
    if (atomic_load(&h2_read) != NULL)
        return;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        tg_fatal("socketpair: %s", strerror(errno));
    h2o_socket_t *sock = h2o_evloop_socket_create(ctx->loop, fds[0], H2O_SOCKET_FLAG_DONT_READ);
    sock->on_close.cb = probe_on_close;
    h2o_accept_ctx_t actx = {.ctx = ctx, .hosts = ctx->globalconf->hosts};
    struct timeval now;
    gettimeofday(&now, NULL);
    h2o_http2_accept(&actx, sock, now);
    h2o_socket_cb cb = atomic_load(&h2_read);
    if (cb == NULL)
        tg_fatal("h2o's HTTP/2 read callback was not seen: is h2o_socket_read_start interposed?");
    cb(sock, "probe"); /* h2o closes the connection and the socket */
    close(fds[1]);
}

void tg_conns_init(tg_conns_t *cs, h2o_context_t *ctx, const tg_guard_limits_t *limits, uint64_t idle_timeout_ms)
{
    *cs = (tg_conns_t){.loop = ctx->loop, .limits = *limits, .idle_timeout_ms = idle_timeout_ms};
    h2o_linklist_init_anchor(&cs->all);
    learn_h2_read(ctx);
    h2o_timeout_init(cs->loop, &cs->sweep_timeout, TG_SWEEP_MS);
    h2o_timeout_init(cs->loop, &cs->zero_timeout, 0);
    cs->sweep.cb = on_sweep;
    h2o_timeout_link(cs->loop, &cs->sweep_timeout, &cs->sweep);
}

void tg_conns_dispose(tg_conns_t *cs)
{
    for (h2o_linklist_t *l = cs->all.next, *next; l != &cs->all; l = next) {
        next = l->next;
        tg_conn_t *c = H2O_STRUCT_FROM_MEMBER(tg_conn_t, link, l);
        if (c->lingering)
            abort_close(c->sock);
    }
    if (h2o_timeout_is_linked(&cs->sweep))
        h2o_timeout_unlink(&cs->sweep);
    tg_buf_dispose(&cs->hold);
}

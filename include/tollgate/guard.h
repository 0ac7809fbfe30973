/*
 * What one client connection may cost: a look at every byte a client sends before h2o
 * parses it (gateway/conn.c feeds it), with no allocation and no h2o types.
 *
 * h2o 2.2.5 buffers whole request bodies, runs the handler for every HEADERS frame
 * even when its RST_STREAM follows in the same packet (it predates the rapid-reset fix,
 * CVE-2023-44487), and resets the stream of an oversized body with REFUSED_STREAM,
 * which clients retry. The guard:
 *
 *   - HTTP/2: walks the frames of the buffer h2o is about to parse (h2o leaves only an
 *     incomplete frame behind, so each complete frame is seen once), charges client
 *     resets and control frames to token buckets, keeps a request whose RST_STREAM
 *     came in the same buffer from running at all, counts streams, and cuts a body off
 *     at max_body_bytes: the DATA frame that passes it becomes an empty one that ends
 *     the stream (h2o then runs the request, which answers 413), the stream's later
 *     DATA frames are dropped, and the bytes dropped are given back as connection
 *     window (tg_guard_t.refund);
 *   - HTTP/1.1: keeps the header and body deadlines (h2o's one timer runs from the end
 *     of the previous answer and is not reset by bytes);
 *   - both: says when a deadline has passed (tg_guard_expired).
 */
#ifndef TOLLGATE_GUARD_H
#define TOLLGATE_GUARD_H

#include <stddef.h>
#include <stdint.h>

/** what one connection may do (from max_body_bytes and http.*) */
typedef struct {
    size_t max_body_bytes;
    uint32_t max_streams;   /* HTTP/2 streams a connection may hold at once before it is closed (open and half-closed) */
    uint64_t header_timeout_ms; /* from a request's first byte (HTTP/2: a HEADERS without END_HEADERS) to its headers' end */
    uint64_t body_timeout_ms;   /* from a request's headers to its body's end */
    uint32_t reset_burst, reset_per_s;     /* client RST_STREAM frames */
    uint32_t control_burst, control_per_s; /* SETTINGS, PING, PRIORITY, empty DATA/HEADERS/CONTINUATION, unknown types */
} tg_guard_limits_t;

/** the defaults of the budgets (the rest come from the config) */
#define TG_GUARD_RESET_BURST 200
#define TG_GUARD_RESET_PER_S 50
#define TG_GUARD_CONTROL_BURST 1000
#define TG_GUARD_CONTROL_PER_S 200

/** RST_STREAM frames of one buffer whose requests are kept from running (the rest are only charged) */
#define TG_GUARD_RESETS_SEEN 256

/** HTTP/2 streams with a body under way (or cut off) that one connection tracks at once */
#define TG_GUARD_STREAMS 128

typedef struct {
    uint32_t id;
    uint8_t refused;  /* its body passed max_body_bytes: what follows is dropped, the call answers 413 */
    uint8_t answered; /* the handler took the refusal (tg_guard_take_refused) */
    uint8_t client_ended; /* the client's own END_STREAM (or RST_STREAM) came */
    uint8_t checked;  /* its Content-Length was compared with max_body_bytes */
    uint8_t fresh;    /* its HEADERS came in the buffer being scanned: h2o has not parsed it yet */
    uint64_t body;    /* DATA bytes so far, padding left out */
    uint64_t since_ms; /* when its HEADERS came (refused: when it was cut off) */
} tg_guard_stream_t;

enum { TG_GUARD_NEW, TG_GUARD_HTTP1, TG_GUARD_HTTP2 };

/** one connection's state; zero it to start */
typedef struct {
    int proto;        /* TG_GUARD_NEW until the first bytes say */
    int preface_done; /* HTTP/2: the client preface is behind */
    int preface_now;  /* HTTP/2: the last scan took the client preface (h2o has sent no SETTINGS yet) */
    /* HTTP/2 */
    tg_guard_stream_t streams[TG_GUARD_STREAMS];
    unsigned n_streams;
    uint32_t max_id;          /* the highest client stream id seen */
    uint32_t block_stream;    /* a header block waiting for END_HEADERS, or 0 */
    uint64_t block_since_ms;
    double reset_tokens, control_tokens;
    uint64_t refill_ms; /* 0: the buckets are not filled yet */
    uint64_t refund;    /* DATA bytes dropped and not yet given back as connection window */
    /* HTTP/1.1 */
    int h1_state; /* 0 between requests, 1 headers coming, 2 body coming */
    size_t h1_scanned;
    uint64_t h1_since_ms;
    /* what it did */
    uint64_t n_resets, n_control, n_refused;
    uint64_t n_defused; /* requests kept from running because their reset came with them */
    int closed_for;     /* TG_GUARD_FOR_RESETS..SLOW once a scan answered TG_GUARD_CLOSE, else 0 */
} tg_guard_t;

/** what the HTTP/2 scan asks of h2o */
typedef struct {
    void *ctx;
    /** h2o's expected body length (SIZE_MAX: none given) of a stream it has parsed the HEADERS of, or NULL */
    size_t *(*content_length)(void *ctx, uint32_t stream_id);
    /** tells the client to stop sending on a stream (RST_STREAM NO_ERROR); may be NULL */
    void (*reset)(void *ctx, uint32_t stream_id);
    /** gives back `n` bytes of a stream's flow-control window (its dropped DATA); may be NULL */
    void (*credit)(void *ctx, uint32_t stream_id, size_t n);
} tg_guard_h2o_t;

/** why the guard closed a connection (tg_guard_t.closed_for) */
enum { TG_GUARD_FOR_RESETS = 1, TG_GUARD_FOR_CONTROL, TG_GUARD_FOR_STREAMS, TG_GUARD_FOR_SLOW };

enum {
    TG_GUARD_PASS,  /* hand the buffer (maybe shortened) to h2o */
    TG_GUARD_SPLIT, /* hand h2o the first *split bytes, then scan what is left again */
    TG_GUARD_CLOSE, /* close the connection: *why says why, *code is the GOAWAY error code */
};

/**
 * Looks at the bytes h2o is about to parse: buf[0, *len) (h2o's input buffer, which
 * starts at a frame boundary, or at the connection's start). May shorten it (dropped
 * DATA payloads). `streams_now` is how many client streams h2o holds (open and
 * half-closed) before this buffer. Returns TG_GUARD_PASS, TG_GUARD_SPLIT or
 * TG_GUARD_CLOSE.
 */
int tg_guard_scan(tg_guard_t *g, const tg_guard_limits_t *lim, const tg_guard_h2o_t *h, uint8_t *buf, size_t *len, size_t *split,
                  uint32_t streams_now, uint64_t now_ms, const char **why, int *code);

/**
 * HTTP/2: forgets the streams h2o no longer has (it refused, reset or answered them),
 * but for a cut-off body its client is still sending, kept (its DATA dropped) until the
 * client ends it or http.body_timeout_ms after the cut, when h->reset tells it to stop.
 * Call before a scan or a deadline check.
 */
void tg_guard_prune(tg_guard_t *g, const tg_guard_limits_t *lim, const tg_guard_h2o_t *h, uint64_t now_ms);

/** HTTP/1.1: h2o starts reading the next request; `buffered` bytes of it are already in */
void tg_guard_h1_next(tg_guard_t *g, size_t buffered, uint64_t now_ms);

/** a deadline that has passed at `now_ms` (the connection is to be closed), or NULL */
const char *tg_guard_expired(const tg_guard_t *g, const tg_guard_limits_t *lim, uint64_t now_ms);

/**
 * The handler's question for an HTTP/2 request: was its body cut off at
 * max_body_bytes? Returns 1 once (the stream's entry is then answered).
 */
int tg_guard_take_refused(tg_guard_t *g, uint32_t stream_id);

/**
 * What a server sends to close an HTTP/2 connection before any frame of its own: its
 * preface (an empty SETTINGS), then GOAWAY with last stream 0, `code` and `why` as
 * debug data (cut to fit). For a connection the guard closes in the read that carried
 * the client's preface, before h2o has made an HTTP/2 connection of it. Writes at most
 * `cap` bytes to `out` (cap >= 26) and returns how many.
 */
size_t tg_guard_goaway(uint8_t *out, size_t cap, uint32_t code, const char *why);

/** the HTTP/2 client connection preface */
#define TG_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define TG_H2_PREFACE_LEN 24

#endif

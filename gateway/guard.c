/* What one client connection may cost: see include/tollgate/guard.h. */
#include <string.h>
#include "tollgate/guard.h"

/* RFC 7540 frame types and flags */
enum {
    FRAME_DATA = 0,
    FRAME_HEADERS = 1,
    FRAME_PRIORITY = 2,
    FRAME_RST_STREAM = 3,
    FRAME_SETTINGS = 4,
    FRAME_PUSH_PROMISE = 5,
    FRAME_PING = 6,
    FRAME_GOAWAY = 7,
    FRAME_WINDOW_UPDATE = 8,
    FRAME_CONTINUATION = 9,
};
#define FLAG_END_STREAM 0x1
#define FLAG_END_HEADERS 0x4
#define FLAG_PADDED 0x8
#define FRAME_HEADER 9
/* h2o's SETTINGS_MAX_FRAME_SIZE: a longer frame is h2o's to refuse (it closes the connection) */
#define MAX_FRAME 16384
/* GOAWAY error codes */
#define H2_PROTOCOL_ERROR 0x1
#define H2_ENHANCE_YOUR_CALM 0xb

/* the payload length and the stream of the frame header at `f` */
static inline size_t frame_length(const uint8_t *f)
{
    return ((size_t)f[0] << 16) | ((size_t)f[1] << 8) | f[2];
}

static inline uint32_t frame_stream(const uint8_t *f)
{
    return ((uint32_t)(f[5] & 0x7f) << 24) | ((uint32_t)f[6] << 16) | ((uint32_t)f[7] << 8) | f[8];
}

static tg_guard_stream_t *find(tg_guard_t *g, uint32_t id)
{
    for (unsigned i = 0; i != g->n_streams; ++i)
        if (g->streams[i].id == id)
            return &g->streams[i];
    return NULL;
}

static void drop(tg_guard_t *g, tg_guard_stream_t *st)
{
    *st = g->streams[--g->n_streams];
}

/* A stream to track; NULL if the table is full of live ones (the connection is then closed). */
static tg_guard_stream_t *add(tg_guard_t *g, const tg_guard_h2o_t *h, uint32_t id, uint64_t now_ms)
{
    if (g->n_streams == TG_GUARD_STREAMS) {
        /*
         * A refusal answered whose stream is over on both sides may go (never one still
         * to answer, nor one whose client still sends while h2o has the stream: its DATA
         * would reach h2o and reset the answer).
         */
        for (unsigned i = 0; i != g->n_streams; ++i)
            if (g->streams[i].refused && g->streams[i].answered &&
                (g->streams[i].client_ended || h->content_length(h->ctx, g->streams[i].id) == NULL)) {
                drop(g, &g->streams[i]);
                break;
            }
        if (g->n_streams == TG_GUARD_STREAMS)
            return NULL;
    }
    tg_guard_stream_t *st = &g->streams[g->n_streams++];
    *st = (tg_guard_stream_t){.id = id, .since_ms = now_ms, .fresh = 1};
    return st;
}

/* Tops the buckets up for the time since the last scan. */
static void refill(tg_guard_t *g, const tg_guard_limits_t *lim, uint64_t now_ms)
{
    if (g->refill_ms == 0) {
        g->reset_tokens = lim->reset_burst;
        g->control_tokens = lim->control_burst;
    } else if (now_ms > g->refill_ms) {
        double s = (double)(now_ms - g->refill_ms) / 1000.0;
        g->reset_tokens += s * lim->reset_per_s;
        g->control_tokens += s * lim->control_per_s;
        if (g->reset_tokens > lim->reset_burst)
            g->reset_tokens = lim->reset_burst;
        if (g->control_tokens > lim->control_burst)
            g->control_tokens = lim->control_burst;
    }
    if (now_ms > g->refill_ms)
        g->refill_ms = now_ms;
}

/* Takes one token; returns 0 when none is left. */
static int take(double *tokens)
{
    if (*tokens < 1)
        return 0;
    *tokens -= 1;
    return 1;
}

/* Removes n bytes at buf[at] from the buffer. */
static void cut(uint8_t *buf, size_t *len, size_t at, size_t n)
{
    memmove(buf + at, buf + at + n, *len - at - n);
    *len -= n;
}

const char *tg_guard_expired(const tg_guard_t *g, const tg_guard_limits_t *lim, uint64_t now_ms)
{
    if (g->proto == TG_GUARD_HTTP1) {
        if (g->h1_state == 1 && now_ms > g->h1_since_ms + lim->header_timeout_ms)
            return "its request headers took longer than http.header_timeout_ms";
        if (g->h1_state == 2 && now_ms > g->h1_since_ms + lim->body_timeout_ms)
            return "its request body took longer than http.body_timeout_ms";
        return NULL;
    }
    if (g->block_stream != 0 && now_ms > g->block_since_ms + lim->header_timeout_ms)
        return "a header block took longer than http.header_timeout_ms";
    for (unsigned i = 0; i != g->n_streams; ++i) {
        const tg_guard_stream_t *st = &g->streams[i];
        if (!st->refused && now_ms > st->since_ms + lim->body_timeout_ms)
            return "a request body took longer than http.body_timeout_ms";
    }
    return NULL;
}

void tg_guard_h1_next(tg_guard_t *g, size_t buffered, uint64_t now_ms)
{
    g->h1_state = buffered != 0;
    g->h1_since_ms = now_ms;
    g->h1_scanned = 0;
}

/* HTTP/1.1: the buffer holds the request being read, from its start. Notes when its headers end. */
static void scan_h1(tg_guard_t *g, const uint8_t *buf, size_t len, uint64_t now_ms)
{
    if (len == 0)
        return;
    if (g->h1_state == 0)
        tg_guard_h1_next(g, len, now_ms);
    if (g->h1_state != 1)
        return;
    /* A blank line ends the headers (picohttpparser takes "\n\n" as well as "\r\n\r\n"). */
    size_t from = g->h1_scanned <= len && g->h1_scanned > 2 ? g->h1_scanned - 2 : 0;
    for (size_t i = from; i < len; ++i) {
        if (buf[i] != '\n')
            continue;
        if ((i + 1 < len && buf[i + 1] == '\n') || (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')) {
            g->h1_state = 2;
            g->h1_since_ms = now_ms;
            return;
        }
    }
    g->h1_scanned = len;
}

/*
 * A DATA frame at buf[at] (payload length plen): counted against max_body_bytes, cut
 * off or dropped. Sets *step to the bytes to move on by; returns 0, or -1 to split here.
 */
static int data_frame(tg_guard_t *g, const tg_guard_limits_t *lim, const tg_guard_h2o_t *h, uint8_t *buf, size_t *len, size_t at,
                      size_t plen, uint64_t now_ms, size_t *step, int *control)
{
    uint8_t flags = buf[at + 4];
    uint32_t id = frame_stream(buf + at);
    tg_guard_stream_t *st = find(g, id);
    *step = FRAME_HEADER + plen;
    *control = plen == 0 && !(flags & FLAG_END_STREAM); /* empty frames cost h2o a round each and carry nothing (CVE-2019-9518) */
    if (st == NULL) {
        *control = 1; /* no body under way there: h2o answers it with a reset (a flood of those is CVE-2019-9514's) */
        return 0;
    }
    if (st->refused) {
        /* Cut off already: the frame goes, its bytes are given back as connection window. */
        if (flags & FLAG_END_STREAM)
            st->client_ended = 1;
        if (st->client_ended && st->answered)
            drop(g, st);
        g->refund += plen;
        if (h->credit != NULL && plen != 0)
            h->credit(h->ctx, id, plen); /* the stream's window too: the client may send the rest, to be dropped */
        cut(buf, len, at, FRAME_HEADER + plen);
        *step = 0;
        return 0;
    }
    size_t data = plen;
    if (flags & FLAG_PADDED) {
        if (plen < 1 || buf[at + FRAME_HEADER] >= plen)
            return 0; /* malformed: h2o closes the connection */
        data = plen - 1 - buf[at + FRAME_HEADER];
    }
    size_t *cl = NULL;
    int crossing = st->body + data > lim->max_body_bytes;
    /*
     * A declared length is compared once h2o has parsed the HEADERS: at once when they
     * came earlier, else at the stream's next DATA frame. Only a cut needs h2o's stream
     * now (its expected length is to be forgotten): only then is the buffer split.
     */
    if ((!st->checked && !st->fresh) || crossing) {
        if ((cl = h->content_length(h->ctx, id)) == NULL) {
            if (st->fresh)
                return -1; /* h2o has not parsed its HEADERS yet: let it, then look again */
            drop(g, st);   /* h2o no longer has it (it refused or reset it) */
            return 0;
        }
        st->checked = 1;
    }
    if (crossing || (cl != NULL && *cl != SIZE_MAX && *cl > lim->max_body_bytes)) {
        /*
         * Cut off here: the frame becomes an empty one that ends the stream, so h2o runs
         * the request now (the handler answers 413) with what came before. h2o would
         * reset a request shorter than its Content-Length, so that is forgotten.
         */
        st->refused = 1;
        st->client_ended = (flags & FLAG_END_STREAM) != 0;
        st->since_ms = now_ms; /* its remainder is dropped for at most http.body_timeout_ms from now */
        ++g->n_refused;
        if (h->credit != NULL && plen != 0)
            h->credit(h->ctx, id, plen);
        *cl = SIZE_MAX;
        buf[at] = buf[at + 1] = buf[at + 2] = 0;
        buf[at + 4] = FLAG_END_STREAM;
        g->refund += plen;
        cut(buf, len, at + FRAME_HEADER, plen);
        *step = FRAME_HEADER;
        return 0;
    }
    st->body += data;
    if (flags & FLAG_END_STREAM)
        drop(g, st);
    return 0;
}

/* The streams of the whole RST_STREAM frames in buf[0, len) (at most TG_GUARD_RESETS_SEEN). */
static size_t reset_ids(const uint8_t *buf, size_t len, uint32_t *ids)
{
    size_t n = 0;
    for (size_t at = 0; len - at >= FRAME_HEADER && n != TG_GUARD_RESETS_SEEN;) {
        size_t plen = frame_length(buf + at);
        if (plen > MAX_FRAME || len - at < FRAME_HEADER + plen)
            break;
        if (buf[at + 3] == FRAME_RST_STREAM)
            ids[n++] = frame_stream(buf + at);
        at += FRAME_HEADER + plen;
    }
    return n;
}

static int is_reset(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i != n; ++i)
        if (ids[i] == id)
            return 1;
    return 0;
}

static int close_with(tg_guard_t *g, int kind, const char **why, int *code, const char *reason, int error)
{
    g->closed_for = kind;
    *why = reason;
    *code = error;
    return TG_GUARD_CLOSE;
}

int tg_guard_scan(tg_guard_t *g, const tg_guard_limits_t *lim, const tg_guard_h2o_t *h, uint8_t *buf, size_t *len, size_t *split,
                  uint32_t streams_now, uint64_t now_ms, const char **why, int *code)
{
    const char *late;
    *code = 0;
    if (g->proto != TG_GUARD_HTTP2) {
        size_t n = *len < TG_H2_PREFACE_LEN ? *len : TG_H2_PREFACE_LEN;
        if (n != 0 && memcmp(buf, TG_H2_PREFACE, n) == 0) {
            if (n < TG_H2_PREFACE_LEN)
                return TG_GUARD_PASS; /* h2o waits for the rest too */
            g->proto = TG_GUARD_HTTP2;
            g->preface_done = 0;
        } else if (n != 0) {
            g->proto = TG_GUARD_HTTP1;
        }
    }
    if (g->proto != TG_GUARD_HTTP2) {
        scan_h1(g, buf, *len, now_ms);
        return (late = tg_guard_expired(g, lim, now_ms)) != NULL ? close_with(g, TG_GUARD_FOR_SLOW, why, code, late, 0) : TG_GUARD_PASS;
    }

    size_t at = 0;
    g->preface_now = 0;
    if (!g->preface_done) {
        /* The preface, unless h2o took it in already (it parses some buffers before the guard sees them) */
        size_t n = *len < TG_H2_PREFACE_LEN ? *len : TG_H2_PREFACE_LEN;
        if (memcmp(buf, TG_H2_PREFACE, n) == 0) {
            if (n < TG_H2_PREFACE_LEN)
                return TG_GUARD_PASS;
            at = TG_H2_PREFACE_LEN;
            g->preface_now = 1;
        }
        g->preface_done = 1;
    }
    refill(g, lim, now_ms);
    for (unsigned i = 0; i != g->n_streams; ++i)
        g->streams[i].fresh = 0; /* h2o has parsed all it was given */
    uint32_t streams = streams_now;
    uint32_t resets[TG_GUARD_RESETS_SEEN];
    size_t n_resets = reset_ids(buf + at, *len - at, resets);

    while (*len - at >= FRAME_HEADER) {
        size_t plen = frame_length(buf + at);
        uint8_t type = buf[at + 3], flags = buf[at + 4];
        uint32_t id = frame_stream(buf + at);
        if (plen > MAX_FRAME)
            break; /* h2o closes the connection on it (FRAME_SIZE_ERROR) */
        if (*len - at < FRAME_HEADER + plen)
            break; /* incomplete: h2o leaves it in its buffer, and it is scanned whole next time */
        int control = 0;
        size_t step = FRAME_HEADER + plen;
        /*
         * A request whose RST_STREAM is already in this buffer (rapid reset) loses its
         * END_STREAM: h2o decodes its headers (the HPACK state stays right) but waits
         * for a body instead of running it, and the reset then drops it unrun.
         */
        if ((type == FRAME_HEADERS || type == FRAME_DATA) && (flags & FLAG_END_STREAM) && is_reset(resets, n_resets, id)) {
            flags &= (uint8_t)~FLAG_END_STREAM;
            buf[at + 4] = flags;
            ++g->n_defused;
        }
        switch (type) {
        case FRAME_DATA:
            if (data_frame(g, lim, h, buf, len, at, plen, now_ms, &step, &control) != 0) {
                *split = at;
                return TG_GUARD_SPLIT;
            }
            break;
        case FRAME_HEADERS:
            if (plen == 0 && !(flags & FLAG_END_HEADERS))
                control = 1;
            if (id != 0 && (id & 1) && id > g->max_id) {
                g->max_id = id;
                if (++streams > lim->max_streams)
                    return close_with(g, TG_GUARD_FOR_STREAMS, why, code, "it opened more streams than SETTINGS_MAX_CONCURRENT_STREAMS allows", H2_PROTOCOL_ERROR);
                if (!(flags & FLAG_END_STREAM) && add(g, h, id, now_ms) == NULL)
                    return close_with(g, TG_GUARD_FOR_STREAMS, why, code, "it has too many request bodies under way", H2_ENHANCE_YOUR_CALM);
            } else if (flags & FLAG_END_STREAM) {
                tg_guard_stream_t *st = find(g, id); /* trailers end the body */
                if (st != NULL) {
                    st->client_ended = 1;
                    if (!st->refused || st->answered)
                        drop(g, st);
                }
            }
            if (!(flags & FLAG_END_HEADERS)) {
                g->block_stream = id;
                g->block_since_ms = now_ms;
            }
            break;
        case FRAME_CONTINUATION:
            if (plen == 0 && !(flags & FLAG_END_HEADERS))
                control = 1;
            if (flags & FLAG_END_HEADERS) {
                /* h2o parses the whole block, its content-length included, only now: as good as new */
                tg_guard_stream_t *st = find(g, g->block_stream);
                if (st != NULL && !st->checked)
                    st->fresh = 1;
                g->block_stream = 0;
            }
            break;
        case FRAME_RST_STREAM: {
            ++g->n_resets;
            if (!take(&g->reset_tokens))
                return close_with(g, TG_GUARD_FOR_RESETS, why, code, "it reset streams faster than tollgate allows (rapid reset)", H2_ENHANCE_YOUR_CALM);
            tg_guard_stream_t *st = find(g, id);
            if (st != NULL) {
                st->client_ended = 1;
                if (!st->refused || st->answered)
                    drop(g, st);
            }
            if (streams != 0)
                --streams;
            break;
        }
        case FRAME_WINDOW_UPDATE:
        case FRAME_GOAWAY:
            break;
        case FRAME_PRIORITY:
        case FRAME_SETTINGS:
        case FRAME_PUSH_PROMISE: /* h2o refuses it */
        case FRAME_PING:
            control = 1;
            break;
        default:
            /*
             * A type h2o does not know: it would skip it with a line of its own on stderr
             * for each. RFC 7540 has them ignored; they go here, charged all the same.
             */
            control = 1;
            cut(buf, len, at, FRAME_HEADER + plen);
            step = 0;
            break;
        }
        if (control) {
            ++g->n_control;
            if (!take(&g->control_tokens))
                return close_with(g, TG_GUARD_FOR_CONTROL, why, code, "it sent control or empty frames faster than tollgate allows", H2_ENHANCE_YOUR_CALM);
        }
        at += step;
    }
    if ((late = tg_guard_expired(g, lim, now_ms)) != NULL)
        return close_with(g, TG_GUARD_FOR_SLOW, why, code, late, H2_ENHANCE_YOUR_CALM);
    return TG_GUARD_PASS;
}

void tg_guard_prune(tg_guard_t *g, const tg_guard_limits_t *lim, const tg_guard_h2o_t *h, uint64_t now_ms)
{
    for (unsigned i = 0; i < g->n_streams;) {
        tg_guard_stream_t *st = &g->streams[i];
        st->fresh = 0; /* h2o has parsed all it was given */
        if (h->content_length(h->ctx, st->id) != NULL) {
            ++i;
            continue;
        }
        /*
         * h2o is done with it. A cut-off body its client still sends stays, so that its
         * DATA keeps being dropped (h2o would reset the stream for DATA on a closed one,
         * and clients take that for a failed call), until the client ends it, or until
         * http.body_timeout_ms after the cut: then it is told to stop (RST_STREAM
         * NO_ERROR, RFC 7540 8.1).
         */
        if (st->refused && !st->client_ended) {
            if (now_ms <= st->since_ms + lim->body_timeout_ms) {
                ++i;
                continue;
            }
            if (st->answered && h->reset != NULL) /* one h2o reset itself needs none */
                h->reset(h->ctx, st->id);
        }
        drop(g, st);
    }
}

int tg_guard_take_refused(tg_guard_t *g, uint32_t stream_id)
{
    tg_guard_stream_t *st = find(g, stream_id);
    if (st == NULL || !st->refused || st->answered)
        return 0;
    st->answered = 1;
    if (st->client_ended)
        drop(g, st);
    return 1;
}

/* a frame header: 24-bit length, type, flags, stream 0 */
static void put_header(uint8_t *f, size_t len, uint8_t type)
{
    f[0] = (uint8_t)(len >> 16), f[1] = (uint8_t)(len >> 8), f[2] = (uint8_t)len;
    f[3] = type, f[4] = 0;
    f[5] = f[6] = f[7] = f[8] = 0;
}

size_t tg_guard_goaway(uint8_t *out, size_t cap, uint32_t code, const char *why)
{
    size_t debug = strlen(why);
    if (debug > cap - 26)
        debug = cap - 26;
    put_header(out, 0, FRAME_SETTINGS);
    put_header(out + 9, 8 + debug, FRAME_GOAWAY);
    memset(out + 18, 0, 4); /* last stream: none was processed */
    out[22] = (uint8_t)(code >> 24), out[23] = (uint8_t)(code >> 16), out[24] = (uint8_t)(code >> 8), out[25] = (uint8_t)code;
    memcpy(out + 26, why, debug);
    return 26 + debug;
}

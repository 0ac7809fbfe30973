/*
 * A `returns: many` read answered as its rows arrive, in bounded memory. The pool
 * hands each row over as libpq reads it (single-row mode); rows are encoded into
 * `building`, and once that holds TG_STREAM_CHUNK bytes the response starts and the
 * chunk goes to h2o, which owns it (`sending`) until it asks for more. While h2o still
 * writes one chunk and the next is full, the pool stops reading the call's connection,
 * so the server blocks on its socket instead of the gateway buffering the result: at
 * most two chunks, and what libpq and the kernel hold, per streamed call.
 *
 * A result smaller than a chunk is answered whole, like any other (a 500 when it has
 * more than max_rows). Once the response has started it can only end whole or cut
 * off: an error, a lost connection or a row past max_rows ends it with
 * H2O_SEND_STATE_ERROR (HTTP/2: RST_STREAM; HTTP/1.1: a broken chunk and the
 * connection closed), so the client never sees a complete-looking array.
 *
 * A HEAD runs the same call and encodes the same rows, keeping none past a chunk.
 * When the call ends it is answered with the head its GET would have had (200
 * without Content-Length past a chunk, with it below; 500 past max_rows, where the
 * GET would be cut off) and no body: no call outlives its answer.
 *
 * The stream lives in its request's memory: h2o may still write the last chunk after
 * the call ended, and a client that leaves takes the stream with it (the call's rows
 * are then thrown away as they come).
 */
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/encode.h"
#include "../gateway/internal.h"
#include "call.h"

/* How many bytes of encoded rows go to h2o at a time. */
#define TG_STREAM_CHUNK (64 * 1024)

struct st_tg_stream_t {
    h2o_generator_t gen;
    h2o_req_t *req;
    tg_query_ctx_t *ctx;      /* the call, until it ends */
    tg_buf_t building;        /* rows encoded since the last chunk went */
    tg_buf_t sending;         /* the chunk h2o is writing: kept until it asks for more */
    tg_buf_t keys;            /* the columns' escaped names */
    tg_column_enc_t *encs;
    size_t n_rows;
    size_t max_rows;
    size_t bytes;             /* handed to h2o so far */
    int started;              /* the head went out: the answer ends whole or cut off */
    int busy;                 /* h2o holds `sending` */
    int paused;               /* the call's connection waits for h2o (tg_pool_resume) */
    int over;                 /* past max_rows: the rest is thrown away */
    int done;                 /* the last send (final or cut off) went to h2o, or is due once it asks */
    int head;                 /* a HEAD: rows are encoded (their shape and count checked), never sent */
    int spilled;              /* a HEAD's rows passed a chunk: its GET would have been streamed */
    h2o_send_state_t last;    /* how it ends, once `done` */
};

/* Hands `building` to h2o as the next chunk, with `state`. */
static void send_chunk(tg_stream_t *s, h2o_send_state_t state)
{
    tg_buf_t t = s->sending;
    s->sending = s->building;
    s->building = t;
    tg_buf_reset(&s->building);
    s->bytes += s->sending.len;
    s->busy = h2o_send_state_is_in_progress(state);
    h2o_iovec_t v = h2o_iovec_init(s->sending.base, s->sending.len);
    h2o_send(s->req, &v, v.len != 0 ? 1 : 0, state);
}

/* The response ends with what is built (FINAL) or cut off (ERROR): now, or when h2o asks for more. */
static void finish(tg_stream_t *s, h2o_send_state_t state)
{
    if (s->done)
        return;
    s->done = 1;
    s->last = state;
    if (!s->busy)
        send_chunk(s, state);
}

/* The call's connection, paused for this stream, is read again (its rows are wanted, or thrown away as they come). */
static void resume_rows(tg_stream_t *s)
{
    if (s->paused && s->ctx != NULL) {
        s->paused = 0;
        tg_pool_resume(&s->ctx->call);
    }
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    tg_stream_t *s = H2O_STRUCT_FROM_MEMBER(tg_stream_t, gen, gen);
    s->busy = 0;
    if (s->done) {
        send_chunk(s, s->last);
        return;
    }
    if (s->building.len >= TG_STREAM_CHUNK)
        send_chunk(s, H2O_SEND_STATE_IN_PROGRESS);
    resume_rows(s);
}

/* The request's memory goes: so does the stream, and its call throws its rows away. */
static void dispose(void *p)
{
    tg_stream_t *s = p;
    resume_rows(s);
    if (s->ctx != NULL)
        s->ctx->stream = NULL;
    tg_buf_dispose(&s->building);
    tg_buf_dispose(&s->sending);
    tg_buf_dispose(&s->keys);
    free(s->encs);
}

static tg_stream_t *open_stream(tg_query_ctx_t *ctx, const PGresult *row)
{
    h2o_req_t *req = ctx->req;
    tg_stream_t *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), dispose);
    /* no stop callback: a client that leaves takes the request's memory, and dispose() hears of it */
    *s = (tg_stream_t){.gen = {on_proceed, NULL}, .req = req, .ctx = ctx, .max_rows = ctx->pin->snap->config->max_rows,
                       .head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"))};
    s->encs = tg_malloc(sizeof(*s->encs) * (size_t)(PQnfields(row) > 0 ? PQnfields(row) : 1));
    tg_encode_columns(row, s->encs, &s->keys);
    tg_buf_appendc(&s->building, '[');
    ctx->stream = s;
    return s;
}

int tg_stream_row(tg_call_t *call, PGresult *row)
{
    tg_query_ctx_t *ctx = (tg_query_ctx_t *)call;
    tg_stream_t *s = ctx->stream;
    if (row == NULL) {
        /* sent again before anything went out: its rows come again from the first */
        if (s != NULL && !s->started) {
            tg_buf_reset(&s->building);
            tg_buf_appendc(&s->building, '[');
            s->n_rows = 0;
            s->over = 0;
            s->spilled = 0;
        }
        return 0;
    }
    if (ctx->req == NULL || (s == NULL && (s = open_stream(ctx, row)) == NULL) || s->over) {
        PQclear(row);
        return 0;
    }
    if (++s->n_rows > s->max_rows) {
        /* the rest is thrown away; a started answer is cut off now, one not started answers 500 when the call ends */
        s->over = 1;
        PQclear(row);
        if (s->started)
            finish(s, H2O_SEND_STATE_ERROR);
        return 0;
    }
    if (s->n_rows != 1)
        tg_buf_appendc(&s->building, ',');
    tg_encode_row(&s->building, row, 0, s->encs, &s->keys);
    PQclear(row);
    if (s->building.len < TG_STREAM_CHUNK)
        return 0;
    if (s->head) {
        s->spilled = 1;
        tg_buf_reset(&s->building);
        return 0;
    }
    if (!s->started) {
        s->started = 1;
        call->delivered = 1; /* from now on no interim 102 may probe its HTTP/1 client: it would land inside the body */
        h2o_req_t *req = s->req;
        req->res.status = call->query->status;
        req->res.reason = tg_status_reason(req->res.status);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        /* compressed a chunk at a time (h2o's filter flushes each), so it stays streamed */
        tg_respond_encoding(ctx->worker, req, 200, SIZE_MAX); /* its length is not known: past any min_bytes */
        h2o_start_response(req, &s->gen);
    }
    if (s->busy) {
        s->paused = 1; /* h2o still writes the last chunk: the server waits */
        return 1;
    }
    send_chunk(s, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

void tg_stream_detach(tg_query_ctx_t *ctx)
{
    if (ctx->stream != NULL) {
        ctx->stream->ctx = NULL;
        ctx->stream = NULL;
    }
}

void tg_stream_cut(tg_query_ctx_t *ctx)
{
    tg_stream_t *s = ctx->stream;
    if (s == NULL || !s->started)
        return;
    finish(s, H2O_SEND_STATE_ERROR);
    resume_rows(s);
}

int tg_stream_end(tg_query_ctx_t *ctx, tg_call_status_t status)
{
    tg_stream_t *s = ctx->stream;
    if (ctx->req == NULL)
        return 0;
    tg_handler_ctx_t *w = ctx->worker;
    if (s != NULL) {
        s->ctx = NULL;
        ctx->stream = NULL;
    }
    if (s == NULL || !s->started) {
        /* all of it is here: answered whole, or a 500 for too many rows; an error is answered as any call's */
        if (status != TG_CALL_OK)
            return 0;
        if (ctx->gone) {
            /* its client was taken for gone, and its rows since were thrown away: never a part of them as if whole */
            tg_respond_error(w, tg_ctx_take_req(ctx), 503, "client-gone", "the client closed the connection");
            return 1;
        }
        if (s == NULL)
            return 0; /* no row: answered as any call's */
        h2o_req_t *req = tg_ctx_take_req(ctx);
        if (s->over) {
            char d[128];
            snprintf(d, sizeof(d), "the query returned more than max_rows (%zu) rows", s->max_rows);
            tg_respond_error(w, req, 500, "too-many-rows", d);
        } else if (s->spilled) {
            tg_respond_head_unsized(w, req);
        } else {
            tg_buf_appendc(&s->building, ']');
            tg_respond_bytes(w, req, 200, 0, s->building.base, s->building.len, 0);
        }
        return 1;
    }
    /* started: it ends whole, or cut off so the client cannot take it for whole */
    h2o_req_t *req = tg_ctx_take_req(ctx);
    int whole = status == TG_CALL_OK && !s->over && !ctx->gone;
    if (!whole) {
        const char *why = s->over                       ? "more rows than max_rows"
                          : ctx->gone                     ? "its client left"
                          : status == TG_CALL_DB_ERROR    ? "a database error"
                                                          : "the connection was lost";
        tg_log(TG_LOG_WARN, "request %.*s: query %s: its streamed answer was cut off after %zu rows: %s", (int)ctx->id.len, ctx->id.base,
               ctx->call.query->name, s->n_rows > s->max_rows ? s->max_rows : s->n_rows, why);
    } else {
        tg_buf_appendc(&s->building, ']');
    }
    /* observed as what the client got: a whole 200, or an answer that failed (500) */
    tg_respond_count(w, req, whole ? 200 : 500, s->bytes + s->building.len);
    finish(s, whole ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_ERROR);
    return 1;
}

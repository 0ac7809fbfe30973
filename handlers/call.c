/*
 * A call context's life, shared by the handler's files: made for an admitted call
 * (from a per-thread free list), described for the observer when its answer is sent
 * (or its client is gone), and given back with what it holds (its in-flight slots, a
 * cache answer, its snapshot pin).
 */
#include <stdlib.h>
#include "../gateway/internal.h"
#include "call.h"

/* Most call contexts a worker keeps for reuse. */
#define TG_MAX_FREE_CALLS 1024

/* Largest response buffer a worker keeps between responses. */
#define TG_SCRATCH_KEEP (1024 * 1024)

tg_query_ctx_t *tg_ctx_alloc(tg_handler_ctx_t *w)
{
    ++w->n_calls;
    tg_query_ctx_t *ctx = w->free_calls;
    if (ctx == NULL)
        return tg_malloc(sizeof(*ctx));
    w->free_calls = *(void **)ctx;
    --w->n_free_calls;
    return ctx;
}

void tg_ctx_h1_unwatch(tg_query_ctx_t *ctx)
{
    if (h2o_linklist_is_linked(&ctx->h1_link))
        h2o_linklist_unlink(&ctx->h1_link);
}

void tg_ctx_free(tg_query_ctx_t *ctx)
{
    tg_handler_ctx_t *w = ctx->worker;
    --w->n_calls;
    tg_ctx_h1_unwatch(ctx);
    tg_stream_detach(ctx);
    tg_limits_release(&ctx->adm);
    if (ctx->delivered != NULL) {
        tg_cache_blob_unref(ctx->delivered);
        ctx->delivered = NULL;
    }
    tg_pins_drop(&w->worker->pins, ctx->pin);
    ctx->pin = NULL;
    if (w->n_free_calls >= TG_MAX_FREE_CALLS) {
        free(ctx);
        return;
    }
    *(void **)ctx = w->free_calls;
    w->free_calls = ctx;
    ++w->n_free_calls;
}

/* The call's answer is about to be sent (or its client is gone): what observing it needs. */
static void describe(tg_query_ctx_t *ctx)
{
    ctx->worker->ans = (tg_answer_t){.started_ns = ctx->started_ns, .id = ctx->id, .query = ctx->call.query, .tenant = ctx->tenant,
                                     .backend = ctx->call.backend, .db_ms = ctx->call.db_ms, .sent_ns = ctx->call.sent_ns,
                                     .submitted = 1, .cache = ctx->cache_role};
    if (ctx->call.read_after.timeline != 0)
        ctx->worker->ans.read_after = tg_read_after_code(ctx->call.backend, ctx->call.read_after_waited);
}

void tg_ctx_observe_gone(tg_query_ctx_t *ctx)
{
    describe(ctx);
    ctx->worker->ans.gone = 1;
    ctx->worker->ans.shed = TG_SHED_CLIENT_GONE + 1;
}

void tg_ctx_describe_answer(tg_query_ctx_t *ctx)
{
    if (ctx->gone)
        tg_ctx_observe_gone(ctx);
    else
        describe(ctx);
}

void tg_ctx_shed(tg_handler_ctx_t *w, int shed)
{
    if (shed != 0 && !w->ans.gone)
        w->ans.shed = shed;
}

h2o_req_t *tg_ctx_take_req(tg_query_ctx_t *ctx)
{
    h2o_req_t *req = ctx->req;
    *ctx->req_hook = NULL; /* first: sending may free the request's pool, and the hook with it */
    ctx->req = NULL;
    tg_ctx_describe_answer(ctx);
    return req;
}

void tg_scratch_trim(tg_handler_ctx_t *w)
{
    /* one huge response must not pin its memory in the worker for good */
    if (w->scratch.cap > TG_SCRATCH_KEEP)
        tg_buf_dispose(&w->scratch);
}

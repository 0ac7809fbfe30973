/*
 * A catalog call in progress, shared by the handler's files: call.c (its context's
 * life), catalog.c (admission, the pool's calls, clients that leave), cached.c (the result cache: hits, fetches shared
 * by many calls, waiters woken on their own thread) and answer.c (the answer of a
 * finished call, made without its request).
 */
#ifndef tollgate__handlers_call_h
#define tollgate__handlers_call_h

#include "tollgate/cache.h"
#include "tollgate/limits.h"
#include "tollgate/pool.h"
#include "respond.h"

/** a catalog call in progress; it outlives its request if the client goes away */
typedef struct st_tg_query_ctx_t {
    tg_call_t call;   /* must be first: the pool's callback gets &call (unused while it waits for a cache fetch) */
    h2o_req_t *req;   /* NULL once the request is gone */
    void **req_hook;  /* pool memory of the request that points back here */
    tg_handler_ctx_t *worker; /* the handler's state on the thread the call runs on */
    h2o_linklist_t h1_link; /* in worker->h1_calls while an HTTP/1 call runs */
    tg_admission_t adm;     /* the in-flight slots it holds */
    tg_pin_t *pin;          /* the snapshot it started on (its query, config and limits), held until it ends */
    int h1_asked;           /* an HTTP/1.1 client that stopped sending was sent an interim 102 (client_gone) */
    int gone;               /* its HTTP/1 client left while the call ran: the answer is observed as 499 */
    const tg_limits_tenant_t *tenant; /* the caller (the pinned snapshot's) */
    h2o_iovec_t id;         /* its request id, in the request's memory (valid while `req` is) */
    uint64_t started_ns;    /* when its request reached the handler */
    /* waiting for a cache fetch instead of running its own call */
    int cache_role;         /* 0: not; TG_ANS_CACHE_MISS (it started the fetch) or TG_ANS_CACHE_COLLAPSED (it joined one) */
    tg_cache_waiter_t waiter;
    h2o_multithread_message_t msg; /* the answer's delivery from another thread */
    tg_cache_blob_t *delivered;    /* the answer, once delivered */
    struct st_tg_stream_t *stream; /* a streamed read's answer, once its first row came (stream.c), until it ends */
} tg_query_ctx_t;

typedef struct st_tg_stream_t tg_stream_t;

/** a call context for an admitted call on `w`'s thread (counted in w->n_calls until freed); the caller fills it */
tg_query_ctx_t *tg_ctx_alloc(tg_handler_ctx_t *w);

/** gives back a call context (its admission, a cache answer it still holds, its pin) */
void tg_ctx_free(tg_query_ctx_t *ctx);

/** takes an HTTP/1 call off its thread's list of calls watched for a client leaving */
void tg_ctx_h1_unwatch(tg_query_ctx_t *ctx);

/** sets `w->ans` from the call (an answer is about to be observed): as 499 if its client was found gone while it ran */
void tg_ctx_describe_answer(tg_query_ctx_t *ctx);

/** sets `w->ans` for a call whose client left before its answer: status 499, shed as client_gone */
void tg_ctx_observe_gone(tg_query_ctx_t *ctx);

/** why the answer being sent sheds its call (`shed`: tg_shed_t + 1, or 0 for none), unless its client had left already (that is the reason then) */
void tg_ctx_shed(tg_handler_ctx_t *w, int shed);

/** tg_answer_t.read_after of a read after a token that ran on `b` (NULL: it never ran: 0), after waiting for a replica or not */
static inline int tg_read_after_code(const tg_backend_t *b, int waited)
{
    return b == NULL ? 0 : 1 + (b->is_primary ? TG_READ_AFTER_PRIMARY : waited ? TG_READ_AFTER_REPLICA_WAITED : TG_READ_AFTER_REPLICA);
}

/**
 * The call is about to be answered: takes its request (unhooked, so that the request's
 * disposal no longer reaches the call), and describes the answer (tg_ctx_describe_answer).
 * The call's `req` is NULL from here on.
 */
h2o_req_t *tg_ctx_take_req(tg_query_ctx_t *ctx);

/** gives back the worker's response buffer if one huge answer grew it */
void tg_scratch_trim(tg_handler_ctx_t *w);

/** the answer of a finished call: its body is in w->scratch */
typedef struct st_tg_outcome_t {
    int status;
    int problem;       /* the body is problem+json */
    int retry_after_s; /* > 0: send Retry-After */
    int shed;          /* tg_shed_t + 1, or 0 */
    /* headers of a success, in w->extra (len 0: none): Location, and the cursor of a next page (Link: rel="next") */
    uint32_t location_off, location_len;
    uint32_t next_off, next_len;
    char read_after[40]; /* TG_RW_TOKEN_MAX + 1 at least: a committed write's Tollgate-Read-After token, or "" */
} tg_outcome_t;

/**
 * A write that ended with `status` drops the entries of the cached queries it
 * invalidates if it committed, or may have (its connection was lost after it was
 * sent): for every finished write, whether its client is still there or not, before
 * its answer is sent.
 */
void tg_invalidate_after(const tg_query_t *q, tg_call_status_t status);

/**
 * The answer of `call` (of query `q` on `cfg`) that ended with `status`, its body into
 * w->scratch; error lines name request `id`.
 */
void tg_outcome_of(tg_handler_ctx_t *w, const tg_config_t *cfg, const tg_query_t *q, tg_call_status_t status, const tg_call_t *call,
                   h2o_iovec_t id, tg_outcome_t *o);

/** sends it (the body in w->scratch, copied) */
void tg_respond_outcome(tg_handler_ctx_t *w, h2o_req_t *req, const tg_query_t *q, const tg_outcome_t *o);

/**
 * A cached query's call, admitted and decoded (`values`): answered from the cache, or
 * made to wait for the fetch of its key (its own, or one already under way on any
 * thread). `ctx` is set up as for a call, not submitted; it is the cache path's from
 * here on (it may be answered and freed before this returns).
 */
void tg_cached_call(tg_query_ctx_t *ctx, const char *const *values);

/** the call's client left while it waited for a fetch: 1 if it may be freed now, 0 if its answer is on its way (freed then) */
int tg_cached_leave(tg_query_ctx_t *ctx);

/** the `rows` of a streamed read's call (tollgate/pool.h): encodes the row into its answer, sent in chunks (stream.c) */
int tg_stream_row(tg_call_t *call, PGresult *row);

/**
 * A streamed read ended with `status`: answers it (whole, 500 past max_rows, 503 when
 * its client was taken for gone, or a started answer ended or cut off) and returns 1;
 * 0 when it is answered as any call (no row came, or an error before the answer
 * started).
 */
int tg_stream_end(tg_query_ctx_t *ctx, tg_call_status_t status);

/** its HTTP/1 client left: a started stream is cut off now (its rows are thrown away as they come) */
void tg_stream_cut(tg_query_ctx_t *ctx);

/** the call is freed: its stream, if any, lives on in its request's memory without it */
void tg_stream_detach(tg_query_ctx_t *ctx);

#endif

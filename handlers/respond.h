/*
 * Response helpers shared by the handlers: JSON bodies, problem+json errors and the
 * headers every response carries.
 */
#ifndef tollgate__handlers_respond_h
#define tollgate__handlers_respond_h

#include <h2o.h>
#include "tollgate/cache.h"
#include "tollgate/limits.h"
#include "tollgate/metrics.h"
#include "tollgate/problem.h"
#include "tollgate/server.h"

/**
 * What the answer being sent is about, for its counters, histograms, access-log line
 * and debug line (handlers/observe.c). Filled as the request is handled; cleared when
 * the answer is sent.
 */
typedef struct st_tg_answer_t {
    uint64_t started_ns;              /* tg_now_ns() when the request reached the handler */
    h2o_iovec_t id;                   /* its request id (in the request's memory) */
    const tg_query_t *query;          /* the catalog query answered, or NULL (no route, not identified) */
    const tg_limits_tenant_t *tenant; /* the caller, or NULL (not identified yet) */
    const tg_backend_t *backend;      /* where its call last ran, or NULL */
    float db_ms;                      /* how long the call ran on the backend */
    uint64_t sent_ns;                 /* when its call was first sent (the end of its pool wait), or 0 */
    int submitted;                    /* its call went to the pool (so it waited there, until sent_ns or until now) */
    int refusal;                      /* tg_refusal_t + 1, or 0 */
    int shed;                         /* tg_shed_t + 1, or 0 */
    int builtin;                      /* /healthz, /readyz or /openapi.json: logged, not counted as a request */
    int gone;                         /* the client left before its answer: observed as status 499, whatever is sent */
    int cache;                        /* a cached query's answer: TG_ANS_CACHE_*; 0 for others */
    int read_after;                   /* a read with Tollgate-Read-After that ran: tg_read_after_t + 1; else 0 */
} tg_answer_t;

/** how a cached query was answered (tg_answer_t.cache; minus 1, the `result` of tollgate_cache_requests_total) */
enum { TG_ANS_CACHE_HIT = 1, TG_ANS_CACHE_STALE, TG_ANS_CACHE_MISS, TG_ANS_CACHE_COLLAPSED, TG_ANS_CACHE__END };
/** the code tollgate_cache_refreshes_total counts under (TG_M_CACHE's c): past the answers' TG_ANS_CACHE_* - 1 */
#define TG_CACHE_REFRESH (TG_ANS_CACHE__END - 1)
/** the label value and access-log word of each (index: TG_ANS_CACHE_* - 1) */
extern const char *const tg_ans_cache_names[4];

/**
 * The catalog handler's state on one worker thread (h2o's handler context, made by
 * on_context_init): what its requests and calls need between them. The worker itself
 * keeps what is not the handler's: the snapshot pins, the pool, the backends.
 */
typedef struct st_tg_handler_ctx_t {
    tg_worker_t *worker;           /* the thread it serves on */
    tg_buf_t scratch;              /* response bodies are built here, then copied into the request's pool */
    tg_buf_t keys;                 /* the escaped column names of the result being encoded */
    tg_buf_t extra;                /* the values of an outcome's Location and Link headers (tg_outcome_t) */
    uint32_t id_prefix;            /* random, for request ids */
    uint64_t id_seq;               /* request ids issued */
    size_t n_calls;                /* catalog calls in progress (decoded, not yet answered) */
    void *free_calls;              /* recycled call contexts (a singly linked list), so calls need no malloc */
    size_t n_free_calls;
    h2o_linklist_t h1_calls;       /* HTTP/1 calls in flight: h2o 2.2.5 notices an HTTP/1 client leaving only when it writes */
    h2o_timeout_t h1_check_timeout; /* how often they are checked for a closed client socket */
    h2o_timeout_entry_t h1_check;
    tg_answer_t ans;               /* what the answer being sent is about */
    tg_buf_t line;                 /* access-log and debug lines are built here */
    tg_buf_t cache_key;            /* a cached call's key is built here */
    int64_t clock_sec;             /* the wall-clock second `clock_text` shows */
    char clock_text[24];           /* "YYYY-MM-DDTHH:MM:SS" of clock_sec */
} tg_handler_ctx_t;

/** the caller's X-Request-Id if it is sane (at most 128 printable bytes), else {NULL, 0} */
h2o_iovec_t tg_request_id_sent(h2o_req_t *req);

/** sets X-Request-Id on the response: the caller's (if sane) or a new one; returns it */
h2o_iovec_t tg_respond_request_id(tg_handler_ctx_t *w, h2o_req_t *req);

/**
 * Sends `status` with the JSON body in `body` (copied). This and tg_respond_problem
 * observe the answer as `w->ans` describes it (tg_observe_answer), then clear it.
 */
void tg_respond_json(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *body, size_t len);

/** sends `status` with `body` (copied) as JSON or problem+json, with a Retry-After if `retry_after_s` > 0; observed as tg_respond_json is */
void tg_respond_bytes(tg_handler_ctx_t *w, h2o_req_t *req, int status, int problem, const char *body, size_t len, int retry_after_s);

/**
 * Sends a shared answer (the cache's) without copying its body: the request holds the
 * reference it is given until its memory is freed. Adds `Cache-Status: cache_status`
 * and, with `with_age`, `Age`. Observed as tg_respond_json is.
 */
void tg_respond_blob(tg_handler_ctx_t *w, h2o_req_t *req, tg_cache_blob_t *blob, const char *cache_status, int with_age);

/**
 * Sends 200 with the JSON `body` of snapshot `snap` without copying it: the request
 * holds a reference to `snap` until its memory is freed, so a reload meanwhile cannot
 * free the body under it. Observed as tg_respond_json is.
 */
void tg_respond_snapshot_json(tg_handler_ctx_t *w, h2o_req_t *req, tg_snapshot_t *snap, const char *body, size_t len);

/** sends `status` with `body` (copied) as `content_type`: no counting, no per-thread state (the admin API uses it) */
void tg_respond_body(h2o_req_t *req, int status, const char *content_type, size_t ct_len, const char *body, size_t len);

/** counts an answer of `status` and `len` bytes for its query and observes it (tg_observe_answer), before h2o may recycle `req` */
void tg_respond_count(tg_handler_ctx_t *w, h2o_req_t *req, int status, size_t len);

/**
 * Whether h2o's compress filter (registered in gateway/server.c) gzips this answer, by
 * the config the request is served on, so that a reload changes it: a 200 of
 * `len` bytes (or at least that many: a streamed one) when `compression` is on and
 * `len` >= its min_bytes; never an error. With compression on, every 200 says
 * `Vary: accept-encoding`. Every answer of the main listener goes through here.
 */
void tg_respond_encoding(tg_handler_ctx_t *w, h2o_req_t *req, int status, size_t len);

/** answers a HEAD whose GET would have been streamed: 200 and its headers, no Content-Length (the GET has none), no body */
void tg_respond_head_unsized(tg_handler_ctx_t *w, h2o_req_t *req);

/** sends `status` without a body or Content-Length (a 204); counted and observed as tg_respond_json is */
void tg_respond_status(tg_handler_ctx_t *w, h2o_req_t *req, int status);

/** sends a problem+json error; `retry_after_s` > 0 adds Retry-After */
void tg_respond_problem(tg_handler_ctx_t *w, h2o_req_t *req, const tg_problem_t *p, int retry_after_s);

/** the Retry-After of an error answered without a reason of its own to wait: 1 s for a 503 (it is temporary), none otherwise */
static inline int tg_retry_after_of(int status)
{
    return status == 503 ? 1 : 0;
}

/** the common case: status, type slug and detail (and tg_retry_after_of's Retry-After) */
void tg_respond_error(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *type, const char *detail);

/**
 * Counts an answer of `status` with a body of `bytes` in the metrics, and logs its
 * access-log line (and, at debug level, its debug line), as `w->ans` describes it.
 * `req` may be one whose client has gone (status 499: nothing was delivered).
 */
void tg_observe_answer(tg_handler_ctx_t *w, h2o_req_t *req, int status, size_t bytes);

/** GET /metrics on the admin listener: every figure in Prometheus' text format (handlers/metrics.c) */
void tg_respond_metrics(tg_gateway_t *gw, h2o_req_t *req, tg_snapshot_t *snap);

/** the built-in endpoints of the main listener (/healthz, /readyz, /openapi.json): answers and returns 1, or 0 if `path` is none */
int tg_handle_builtin(tg_handler_ctx_t *w, h2o_req_t *req, h2o_iovec_t path);

#endif

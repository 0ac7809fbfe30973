/*
 * Response helpers shared by the handlers: JSON bodies, problem+json errors and the
 * headers every response carries.
 */
#ifndef tollgate__handlers_respond_h
#define tollgate__handlers_respond_h

#include <h2o.h>
#include "tollgate/problem.h"
#include "tollgate/server.h"

/**
 * The catalog handler's state on one worker thread (h2o's handler context, made by
 * on_context_init): what its requests and calls need between them. The worker itself
 * keeps what is not the handler's: the snapshot pins, the pool, the backends.
 */
typedef struct st_tg_handler_ctx_t {
    tg_worker_t *worker;           /* the thread it serves on */
    tg_buf_t scratch;              /* response bodies are built here, then copied into the request's pool */
    tg_buf_t keys;                 /* the escaped column names of the result being encoded */
    uint32_t id_prefix;            /* random, for request ids */
    uint64_t id_seq;               /* request ids issued */
    size_t n_calls;                /* catalog calls in progress (decoded, not yet answered) */
    void *free_calls;              /* recycled call contexts (a singly linked list), so calls need no malloc */
    size_t n_free_calls;
    h2o_linklist_t h1_calls;       /* HTTP/1 calls in flight: h2o 2.2.5 notices an HTTP/1 client leaving only when it writes */
    h2o_timeout_t h1_check_timeout; /* how often they are checked for a closed client socket */
    h2o_timeout_entry_t h1_check;
    const tg_query_t *answering;   /* the catalog query whose answer is being sent (for its counters), or NULL */
    int answered;                  /* the status of the last answer sent */
} tg_handler_ctx_t;

/** sets X-Request-Id on the response: the caller's (if sane) or a new one; returns it */
h2o_iovec_t tg_respond_request_id(tg_handler_ctx_t *w, h2o_req_t *req);

/**
 * Sends `status` with the JSON body in `body` (copied). This and tg_respond_problem
 * count the answer for `w->answering`, the query being answered, if set (and clear it).
 */
void tg_respond_json(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *body, size_t len);

/** sends `status` with `body` (copied) as `content_type`: no counting, no per-thread state (the admin API uses it) */
void tg_respond_body(h2o_req_t *req, int status, const char *content_type, size_t ct_len, const char *body, size_t len);

/** sends a problem+json error; `retry_after_s` > 0 adds Retry-After */
void tg_respond_problem(tg_handler_ctx_t *w, h2o_req_t *req, const tg_problem_t *p, int retry_after_s);

/** the common case: status, type slug and detail */
void tg_respond_error(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *type, const char *detail);

/** the built-in endpoints of the main listener (/healthz, /readyz): answers and returns 1, or 0 if `path` is none */
int tg_handle_builtin(tg_handler_ctx_t *w, h2o_req_t *req, h2o_iovec_t path);

#endif

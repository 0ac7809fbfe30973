/*
 * Response helpers shared by the handlers: JSON bodies, problem+json errors and the
 * headers every response carries.
 */
#ifndef tollgate__handlers_respond_h
#define tollgate__handlers_respond_h

#include <h2o.h>
#include "tollgate/problem.h"
#include "tollgate/server.h"

/** sets X-Request-Id on the response: the caller's (if sane) or a new one; returns it */
h2o_iovec_t tg_respond_request_id(tg_worker_t *w, h2o_req_t *req);

/**
 * Sends `status` with the JSON body in `body` (copied). This and tg_respond_problem
 * count the answer for `w->answering`, the query being answered, if set (and clear it).
 */
void tg_respond_json(tg_worker_t *w, h2o_req_t *req, int status, const char *body, size_t len);

/** sends a problem+json error; `retry_after_s` > 0 adds Retry-After */
void tg_respond_problem(tg_worker_t *w, h2o_req_t *req, const tg_problem_t *p, int retry_after_s);

/** the common case: status, type slug and detail */
void tg_respond_error(tg_worker_t *w, h2o_req_t *req, int status, const char *type, const char *detail);

/** the built-in endpoints of the main listener (/healthz, /readyz): answers and returns 1, or 0 if `path` is none */
int tg_handle_builtin(tg_worker_t *w, h2o_req_t *req, h2o_iovec_t path);

#endif

/*
 * The request handler: built-in endpoints, then catalog routes. A catalog call is
 * decoded and checked here, handed to the worker's pool, and answered from the pool's
 * callback with the result written straight from libpq's text into the JSON body.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "tollgate/conn.h"
#include "tollgate/cors.h"
#include "tollgate/encode.h"
#include "tollgate/health.h"
#include "tollgate/limits.h"
#include "tollgate/params.h"
#include "tollgate/router.h"
#include "../gateway/internal.h"
#include "call.h"

/*
 * Its client left: 1 if the call can end now (it was still waiting: for a connection,
 * or for a cache fetch), 0 if it runs on (a sent call is cancelled, a fetch goes on for
 * its other callers) and ends when its answer comes.
 */
static int ctx_abandon(tg_query_ctx_t *ctx)
{
    if (ctx->cache_role != 0)
        return tg_cached_leave(ctx);
    return tg_pool_abandon(ctx->worker->worker->pool, &ctx->call);
}

/* An HTTP/1 call is watched for its client leaving (HTTP/2 tells us through the request's disposal). */
static void h1_watch(tg_query_ctx_t *ctx)
{
    tg_handler_ctx_t *w = ctx->worker;
    h2o_linklist_insert(&w->h1_calls, &ctx->h1_link);
    if (!h2o_timeout_is_linked(&w->h1_check))
        h2o_timeout_link(w->worker->ctx.loop, &w->h1_check_timeout, &w->h1_check);
}

/*
 * Has an HTTP/1 client gone? It says so only by closing its connection, and its FIN
 * cannot be told from that of a client that merely stopped sending after its request
 * (shutdown(SHUT_WR), which HTTP/1.1 allows). So on a FIN alone, a cleartext HTTP/1.1
 * client is asked, once, with an interim "102 Processing" (every HTTP/1.1 client must
 * skip a 1xx it did not expect): one still reading gets its answer after it; a
 * closed socket answers with a reset, seen at the next check as POLLHUP or POLLERR.
 * An HTTP/1.0 or TLS client (where a byte of our own cannot be slipped in) that sends
 * a FIN is taken as gone.
 */
static int client_gone(tg_query_ctx_t *ctx)
{
    h2o_req_t *req = ctx->req;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL)
        return 0;
    struct pollfd p = {.fd = h2o_socket_get_fd(sock), .events = POLLRDHUP};
    if (poll(&p, 1, 0) != 1)
        return 0;
    if ((p.revents & (POLLHUP | POLLERR)) != 0)
        return 1;
    /* a streamed answer has started: nothing may be slipped into its body, and a FIN alone is a client still reading */
    if (ctx->call.delivered)
        return 0;
    if ((p.revents & POLLRDHUP) == 0 || ctx->h1_asked)
        return 0; /* a half-closed client that read the 102 is still there: it gets its answer */
    if (req->version < 0x101 || sock->ssl != NULL)
        return 1;
    /*
     * Only onto an empty send queue, so that the 28 bytes go out whole and nothing of
     * h2o's can be behind or around them (it writes nothing before the final answer,
     * but a pipelining client may not have read the previous one yet): else ask at a
     * later check.
     */
    int queued = 0;
    if (h2o_socket_is_writing(sock) || ioctl(p.fd, SIOCOUTQ, &queued) != 0 || queued != 0)
        return 0;
    static const char processing[] = "HTTP/1.1 102 Processing\r\n\r\n";
    ssize_t n = send(p.fd, processing, sizeof(processing) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    ctx->h1_asked = 1;
    return n != (ssize_t)(sizeof(processing) - 1);
}

static void check_h1_clients(h2o_timeout_entry_t *entry)
{
    tg_handler_ctx_t *w = H2O_STRUCT_FROM_MEMBER(tg_handler_ctx_t, h1_check, entry);
    h2o_linklist_t *node = w->h1_calls.next;
    while (node != &w->h1_calls) {
        tg_query_ctx_t *ctx = H2O_STRUCT_FROM_MEMBER(tg_query_ctx_t, h1_link, node);
        node = node->next;
        if (ctx->req == NULL || !client_gone(ctx))
            continue;
        tg_ctx_h1_unwatch(ctx);
        /* A sent call is cancelled and answers into the void; a waiting one is dropped, and the request ended here. */
        ctx->gone = 1;
        tg_stream_cut(ctx);
        if (ctx_abandon(ctx)) {
            h2o_req_t *req = tg_ctx_take_req(ctx);
            tg_respond_error(w, req, 503, "client-gone", "the client closed the connection");
            tg_ctx_free(ctx);
        }
    }
    if (!h2o_linklist_is_empty(&w->h1_calls))
        h2o_timeout_link(w->worker->ctx.loop, &w->h1_check_timeout, &w->h1_check);
}

/* The longest API key looked up: a longer one is not valid. */
#define TG_MAX_KEY_BYTES 512

/* How often HTTP/1 clients with a call in flight are checked for having left. */
#define TG_H1_CHECK_MS 200


/* The request's pool is being freed: the client went away (or the response is done). */
static void on_req_dispose(void *p)
{
    tg_query_ctx_t *ctx = *(tg_query_ctx_t **)p;
    if (ctx == NULL)
        return;
    /* The request's memory is still there while its pool is cleared: the line can quote it. */
    tg_ctx_observe_gone(ctx);
    tg_observe_answer(ctx->worker, ctx->req, 499, 0);
    ctx->req = NULL;
    /* A call still waiting for a connection is dropped; one already sent finishes and is discarded. */
    if (ctx_abandon(ctx))
        tg_ctx_free(ctx);
}

static void on_call_done(tg_call_t *call, tg_call_status_t status)
{
    tg_query_ctx_t *ctx = (tg_query_ctx_t *)call;
    tg_invalidate_after(call->query, status);
    if (call->rows != NULL && tg_stream_end(ctx, status)) {
        /* answered by its stream */
    } else if (ctx->req != NULL) {
        tg_handler_ctx_t *w = ctx->worker;
        h2o_req_t *req = tg_ctx_take_req(ctx);
        tg_outcome_t o;
        tg_outcome_of(w, ctx->pin->snap->config, call->query, status, call, ctx->id, &o);
        tg_ctx_shed(w, o.shed);
        tg_respond_outcome(w, req, call->query, &o);
    }
    if (call->result != NULL)
        PQclear(call->result);
    tg_scratch_trim(ctx->worker);
    tg_ctx_free(ctx);
}

/* Is the body JSON? "application/json", any case, parameters allowed. */
static int is_json_content_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i == -1)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;
    if (v.len < n || !h2o_lcstris(v.base, n, want, n))
        return 0;
    return v.len == n || v.base[n] == ';' || v.base[n] == ' ';
}

/*
 * Who is calling: the tenant of the key in `Authorization: Bearer KEY` or
 * `X-API-Key: KEY`, or "anonymous" for keyless requests when configured. Otherwise
 * answers 401 and returns NULL.
 */
static tg_limits_tenant_t *identify(tg_handler_ctx_t *w, h2o_req_t *req, tg_limits_t *limits)
{
    /* A Bearer token, else X-API-Key; another Authorization scheme is not a key. */
    h2o_iovec_t key = {NULL, 0};
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len >= 6 && h2o_lcstris(v.base, 6, H2O_STRLIT("bearer")) && (v.len == 6 || v.base[6] == ' ')) {
            key = h2o_iovec_init(v.base + 6, v.len - 6);
            while (key.len != 0 && key.base[0] == ' ')
                ++key.base, --key.len;
            while (key.len != 0 && key.base[key.len - 1] == ' ')
                --key.len;
        }
    }
    if (key.base == NULL && (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-api-key"), -1)) != -1)
        key = req->headers.entries[i].value;
    if (key.base == NULL) {
        if (limits->anonymous != NULL)
            return limits->anonymous;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"tollgate\""));
        tg_respond_error(w, req, 401, "missing-key", "an API key is required (Authorization: Bearer KEY, or X-API-Key: KEY)");
        return NULL;
    }
    /*
     * A key was given, even an empty one: it must be valid; it never falls back to
     * anonymous. One longer than any key can be is refused unhashed: a hash of a huge
     * header per unauthenticated request costs the gateway, not the caller.
     */
    tg_limits_tenant_t *t = key.len != 0 && key.len <= TG_MAX_KEY_BYTES ? tg_limits_find_key(limits, key.base, key.len) : NULL;
    if (t == NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"tollgate\", error=\"invalid_token\""));
        tg_respond_error(w, req, 401, "invalid-key", "the API key is not valid");
    }
    return t;
}

static void add_header_buf(h2o_req_t *req, const char *name, size_t name_len, const tg_buf_t *b)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 0, NULL, h2o_strdup(&req->pool, b->base, b->len).base,
                          b->len);
}

/* The RateLimit headers every catalog response of a known tenant carries. */
static void add_ratelimit_headers(tg_handler_ctx_t *w, h2o_req_t *req, const tg_limits_tenant_t *t, const tg_bucket_state_t *st)
{
    tg_buf_t *b = &w->scratch;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("ratelimit-policy"), 0, NULL,
                          h2o_strdup(&req->pool, t->policy, t->policy_len).base, t->policy_len);
    tg_buf_reset(b);
    tg_limits_format_state(st, b);
    add_header_buf(req, H2O_STRLIT("ratelimit"), b);
}

/* Answers a refused admission. */
static void respond_refused(tg_handler_ctx_t *w, h2o_req_t *req, const tg_query_t *q, tg_admit_t a, const tg_bucket_state_t *st)
{
    tg_problem_t p = {0};
    int retry = 1;
    switch (a) {
    case TG_ADMIT_TENANT_DISABLED:
        w->ans.refusal = TG_REFUSAL_TENANT_DISABLED + 1;
        p = (tg_problem_t){.status = 403, .type = "tenant-disabled", .detail = "this tenant is switched off"};
        retry = 0;
        break;
    case TG_ADMIT_RATE_LIMITED:
        w->ans.refusal = TG_REFUSAL_RATE_LIMITED + 1;
        p = (tg_problem_t){.status = 429, .type = "rate-limited", .detail = "the tenant's rate limit is exhausted"};
        /* A tiny rate and a large cost can ask for billions of seconds: clamp what an int carries. */
        retry = st->retry_after_s > INT_MAX ? INT_MAX : (int)st->retry_after_s;
        break;
    case TG_ADMIT_TENANT_BUSY:
        w->ans.refusal = TG_REFUSAL_TENANT_BUSY + 1;
        p = (tg_problem_t){.status = 429, .type = "too-many-in-flight", .detail = "the tenant has too many calls in flight"};
        break;
    case TG_ADMIT_QUERY_DISABLED:
        w->ans.shed = TG_SHED_QUERY_DISABLED + 1;
        p = (tg_problem_t){.status = 503, .type = "query-disabled", .detail = "this query is switched off"};
        retry = atomic_load(&q->state->retry_after_s);
        break;
    case TG_ADMIT_QUERY_BUSY:
        w->ans.shed = TG_SHED_QUERY_BUSY + 1;
        p = (tg_problem_t){.status = 503, .type = "query-busy", .detail = "this query has too many calls in flight"};
        break;
    case TG_ADMIT_GATEWAY_BUSY:
        w->ans.shed = TG_SHED_GATEWAY_BUSY + 1;
        p = (tg_problem_t){.status = 503, .type = "overloaded", .detail = "the gateway has too many calls in flight"};
        break;
    case TG_ADMIT_OK:
        tg_fatal("respond_refused called for an admitted call");
    }
    tg_respond_problem(w, req, &p, retry);
}

/* Checks the body and decodes every parameter; on a problem, answers it (413, 415, 400) and returns -1. */
static int decode_request(tg_handler_ctx_t *w, h2o_req_t *req, const tg_query_t *q, const tg_route_match_t *m, h2o_iovec_t qs,
                          const tg_limits_tenant_t *tenant, tg_params_t *params)
{
    const tg_config_t *cfg = tg_worker_config(w->worker);
    h2o_iovec_t body = {NULL, 0};
    /* An HTTP/2 body over the limit the gateway started with was cut off there (tollgate/conn.h): it never arrives whole. */
    int cut_off = tg_conn_body_refused(req);
    if (cut_off || (q->method != TG_METHOD_GET && q->method != TG_METHOD_DELETE && req->entity.base != NULL && req->entity.len != 0)) {
        if (cut_off || req->entity.len > cfg->max_body_bytes) {
            char *d = h2o_mem_alloc_pool(&req->pool, 96);
            snprintf(d, 96, "the body is larger than max_body_bytes (%zu)", cfg->max_body_bytes);
            tg_respond_error(w, req, 413, "body-too-large", d);
            return -1;
        }
        if (!is_json_content_type(req)) {
            tg_respond_error(w, req, 415, "unsupported-media-type", "the body must be application/json");
            return -1;
        }
        body = req->entity;
    }
    switch (tg_params_decode(q, m, qs, body, tenant->name, &req->pool, params)) {
    case TG_PARAMS_OK:
        return 0;
    case TG_PARAMS_BAD_JSON:
        tg_respond_error(w, req, 400, "malformed-json", params->detail);
        return -1;
    default: {
        tg_problem_t p = {.status = 400, .type = "invalid-parameters", .title = "Invalid parameters",
                          .detail = "one or more parameters are missing or invalid", .errors = params->errors,
                          .n_errors = params->n_errors, .n_errors_total = params->n_errors_total};
        tg_respond_problem(w, req, &p, 0);
        return -1;
    }
    }
}

/*
 * Tollgate-Read-After: the token a write answered, for a read that must see that write
 * (tg_call_t.read_after). A write goes to the primary anyway: its token is checked,
 * then not used. Returns 0, or -1 once it answered 400: a token that does not parse
 * (strictly: tollgate/consistency.h), or the header twice.
 */
static int read_after_token(tg_handler_ctx_t *w, h2o_req_t *req, const tg_query_t *q, tg_rw_token_t *out)
{
    *out = (tg_rw_token_t){0};
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tollgate-read-after"), -1);
    if (i < 0)
        return 0;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    if (h2o_find_header_by_str(&req->headers, H2O_STRLIT("tollgate-read-after"), i) >= 0 || tg_rw_token_parse(v->base, v->len, out) != 0) {
        tg_respond_error(w, req, 400, "malformed-read-after",
                         "the Tollgate-Read-After header must hold one token, as a write's answer gave it");
        return -1;
    }
    if (q->access != TG_ACCESS_READ)
        *out = (tg_rw_token_t){0};
    return 0;
}

/* Everything after routing, for `tenant` calling `q` on the worker's current snapshot. */
static void handle_call(tg_handler_ctx_t *w, h2o_req_t *req, tg_limits_tenant_t *tenant, const tg_route_match_t *m, h2o_iovec_t qs,
                        h2o_iovec_t id)
{
    const tg_config_t *cfg = tg_worker_config(w->worker);
    const tg_query_t *q = m->query;

    /* A query the tenant may not call costs it nothing, like a route that does not exist. */
    if (!tg_query_list_allows(tenant->queries, q)) {
        w->ans.refusal = TG_REFUSAL_FORBIDDEN + 1;
        tg_respond_error(w, req, 403, "forbidden", "this tenant may not call this query");
        return;
    }

    /* The limits, before anything costs more: a flood of bad requests is throttled too. */
    tg_bucket_state_t bucket;
    tg_admission_t adm;
    /* the clock as the request reached the handler, a few microseconds ago */
    tg_admit_t admitted = tg_limits_admit(tg_worker_limits(w->worker), tenant, q, w->ans.started_ns, &bucket, &adm);
    add_ratelimit_headers(w, req, tenant, &bucket);
    if (admitted != TG_ADMIT_OK) {
        respond_refused(w, req, q, admitted, &bucket);
        return;
    }

    tg_params_t params;
    tg_rw_token_t after;
    if (read_after_token(w, req, q, &after) != 0 || decode_request(w, req, q, m, qs, tenant, &params) != 0) {
        tg_limits_release(&adm);
        return;
    }

    tg_query_ctx_t *ctx = tg_ctx_alloc(w);
    ctx->call = (tg_call_t){.query = q, .values = params.values, .cb = on_call_done,
                            .priority = q->priority != TG_PRIORITY_INHERIT ? q->priority : tenant->priority,
                            .want_lsn = q->access == TG_ACCESS_WRITE, /* its answer carries Tollgate-Read-After */
                            .read_after = after};
    /* A write that declares its result's shape must not commit a result that breaks it. */
    if (q->access == TG_ACCESS_WRITE && q->returns != TG_RETURNS_NONE)
        ctx->call.guard_rows = q->returns == TG_RETURNS_ONE ? 1 : cfg->max_rows < UINT32_MAX ? (uint32_t)cfg->max_rows : UINT32_MAX;
    ctx->adm = adm;
    ctx->pin = tg_pins_hold(&w->worker->pins);
    ctx->req = req;
    ctx->worker = w;
    ctx->h1_link = (h2o_linklist_t){NULL, NULL};
    ctx->h1_asked = 0;
    ctx->gone = 0;
    ctx->cache_role = 0;
    ctx->delivered = NULL;
    ctx->stream = NULL;
    /*
     * A list read streams its rows as they come (a write's rows are checked before it
     * commits: never). Not to HTTP/1.0, which has no chunks: an answer of unknown
     * length could only end by closing, and a cut-off one would look whole.
     */
    if (q->returns == TG_RETURNS_MANY && q->access == TG_ACCESS_READ && !q->cached && q->location == NULL && q->cursor_column == NULL && q->status == 200 &&
        req->version >= 0x101) /* nor when its headers need its rows (location, cursor), nor a status h2o would not chunk */
        ctx->call.rows = tg_stream_row;
    ctx->tenant = tenant;
    ctx->id = id;
    ctx->started_ns = w->ans.started_ns;
    ctx->req_hook = h2o_mem_alloc_shared(&req->pool, sizeof(*ctx->req_hook), on_req_dispose);
    *ctx->req_hook = ctx;
    if (req->version < 0x200)
        h1_watch(ctx);
    /* Not answered yet: the answer is observed when it comes (on_call_done, or the cache's). */
    w->ans = (tg_answer_t){0};
    if (q->cached)
        tg_cached_call(ctx, params.values); /* may answer and free ctx before it returns */
    else
        tg_pool_submit(w->worker->pool, &ctx->call);
}

/*
 * CORS, when the config has `cors`: every answer says `Vary: origin` (it depends on
 * it), and one to an allowed Origin carries Access-Control-Allow-Origin (that origin)
 * and the headers its script may read, whatever the answer (a script must be able to
 * read a 429 too). A request is never refused for its Origin: the browser enforces
 * CORS; keys are the access control. Returns whether the Origin is allowed.
 */
static int add_cors_headers(h2o_req_t *req, const tg_cors_t *cors, int preflight)
{
    if (cors == NULL)
        return 0;
    h2o_set_header_token(&req->pool, &req->res.headers, H2O_TOKEN_VARY, H2O_STRLIT("origin"));
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (i == -1)
        return 0;
    h2o_iovec_t origin = req->headers.entries[i].value;
    if (!tg_cors_allows(cors, origin.base, origin.len))
        return 0;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, origin.base, origin.len);
    if (!preflight)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                              H2O_STRLIT(TG_CORS_EXPOSE_HEADERS));
    return 1;
}

/* A CORS preflight: OPTIONS with an Origin and an Access-Control-Request-Method. */
static int is_preflight(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
           h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1) != -1 &&
           h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) != -1;
}

/*
 * Answers a preflight, before any key is looked for (browsers send none with it) and
 * without spending tokens: 403 `origin-not-allowed` (no CORS headers) for an origin
 * not listed, 404 for a path without routes, else 204 with the methods the path
 * takes (the browser refuses a method not among them itself), the request headers
 * the gateway reads and how long to keep it.
 */
static void respond_preflight(tg_handler_ctx_t *w, h2o_req_t *req, const tg_config_t *cfg, h2o_iovec_t path, int allowed)
{
    if (!allowed) {
        tg_respond_error(w, req, 403, "origin-not-allowed", "this Origin is not in the gateway's cors.origins");
        return;
    }
    /* no route has OPTIONS: a path with routes is a bad method, with every method it takes in `allow` */
    tg_route_match_t m;
    if (tg_router_match(cfg->router, H2O_STRLIT("OPTIONS"), path.base, path.len, &m) != TG_ROUTE_BAD_METHOD) {
        tg_respond_error(w, req, 404, "no-route", "no route matches the path");
        return;
    }
    tg_buf_t *allow = &w->scratch;
    tg_buf_reset(allow);
    tg_router_format_allow(m.allow, allow);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          h2o_strdup(&req->pool, allow->base, allow->len).base, allow->len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT(TG_CORS_ALLOW_HEADERS));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL, cfg->cors->max_age,
                          strlen(cfg->cors->max_age));
    tg_respond_status(w, req, 204);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    tg_handler_ctx_t *w = h2o_context_get_handler_context(req->conn->ctx, self);
    const tg_config_t *cfg = tg_worker_config(w->worker);
    w->ans = (tg_answer_t){.started_ns = tg_now_ns()};
    h2o_iovec_t id = w->ans.id = tg_respond_request_id(w, req);

    h2o_iovec_t path = req->path;
    h2o_iovec_t qs = {NULL, 0};
    if (req->query_at != SIZE_MAX) {
        qs = h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
        path.len = req->query_at;
    }
    int preflight = cfg->cors != NULL && is_preflight(req);
    int cors_ok = add_cors_headers(req, cfg->cors, preflight);
    if (tg_handle_builtin(w, req, path))
        return 0;
    if (w->worker->shutting_down) {
        /* Calls in flight finish; a new one on a connection still open is turned away, and the connection closed. */
        req->http1_is_persistent = 0;
        w->ans.shed = TG_SHED_SHUTTING_DOWN + 1;
        tg_respond_error(w, req, 503, "shutting-down", "the gateway is shutting down");
        return 0;
    }
    if (preflight) {
        respond_preflight(w, req, cfg, path, cors_ok);
        return 0;
    }
    tg_limits_tenant_t *tenant = identify(w, req, tg_worker_limits(w->worker));
    if (tenant == NULL)
        return 0;
    w->ans.tenant = tenant;

    tg_route_match_t m;
    switch (tg_router_match(cfg->router, req->method.base, req->method.len, path.base, path.len, &m)) {
    case TG_ROUTE_FOUND:
        break;
    case TG_ROUTE_BAD_METHOD: {
        tg_buf_t allow = {0};
        tg_router_format_allow(m.allow, &allow);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow.base, allow.len).base,
                       allow.len);
        tg_buf_dispose(&allow);
        tg_respond_error(w, req, 405, "method-not-allowed", "the path does not take this method");
        return 0;
    }
    default:
        tg_respond_error(w, req, 404, "no-route", "no route matches the path");
        return 0;
    }
    /* From here on every answer is counted for the query (tg_respond_*). */
    w->ans.query = m.query;
    handle_call(w, req, tenant, &m, qs, id);
    return 0;
}

static void on_context_init(h2o_handler_t *self, h2o_context_t *ctx)
{
    tg_handler_ctx_t *w = tg_calloc(1, sizeof(*w));
    w->worker = H2O_STRUCT_FROM_MEMBER(tg_worker_t, ctx, ctx);
    w->id_prefix = (uint32_t)(tg_now_ms() * 2654435761u) ^ (uint32_t)(w->worker->index << 24) ^ (uint32_t)getpid();
    h2o_linklist_init_anchor(&w->h1_calls);
    h2o_timeout_init(ctx->loop, &w->h1_check_timeout, TG_H1_CHECK_MS);
    w->h1_check.cb = check_h1_clients;
    h2o_context_set_handler_context(ctx, self, w);
}

static void on_context_dispose(h2o_handler_t *self, h2o_context_t *ctx)
{
    tg_handler_ctx_t *w = h2o_context_get_handler_context(ctx, self);
    if (w == NULL)
        return;
    tg_buf_dispose(&w->scratch);
    tg_buf_dispose(&w->keys);
    tg_buf_dispose(&w->extra);
    tg_buf_dispose(&w->line);
    tg_buf_dispose(&w->cache_key);
    while (w->free_calls != NULL) {
        void *next = *(void **)w->free_calls;
        free(w->free_calls);
        w->free_calls = next;
    }
    if (h2o_timeout_is_linked(&w->h1_check))
        h2o_timeout_unlink(&w->h1_check);
    h2o_timeout_dispose(ctx->loop, &w->h1_check_timeout);
    free(w);
    h2o_context_set_handler_context(ctx, self, NULL);
}

h2o_handler_t *tg_handler_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *h = h2o_create_handler(pathconf, sizeof(*h));
    h->on_req = on_req;
    h->on_context_init = on_context_init;
    h->on_context_dispose = on_context_dispose;
    return h;
}

size_t tg_handler_calls(h2o_context_t *ctx, h2o_handler_t *handler)
{
    tg_handler_ctx_t *w = h2o_context_get_handler_context(ctx, handler);
    return w != NULL ? w->n_calls : 0;
}

void tg_handler_dispose(h2o_context_t *ctx, h2o_handler_t *handler)
{
    on_context_dispose(handler, ctx);
}

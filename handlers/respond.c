/*
 * Response helpers: JSON bodies, problem+json errors, request ids.
 */
#include <stdio.h>
#include <string.h>
#include "../gateway/internal.h"
#include "respond.h"

h2o_iovec_t tg_request_id_sent(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i == -1)
        return h2o_iovec_init(NULL, 0);
    h2o_iovec_t id = req->headers.entries[i].value;
    /* Only if it is short and printable: it goes into logs and headers. */
    int ok = id.len != 0 && id.len <= 128;
    for (size_t j = 0; ok && j != id.len; ++j)
        ok = id.base[j] > 0x20 && id.base[j] < 0x7f;
    return ok ? id : h2o_iovec_init(NULL, 0);
}

h2o_iovec_t tg_respond_request_id(tg_handler_ctx_t *w, h2o_req_t *req)
{
    h2o_iovec_t id = tg_request_id_sent(req);
    if (id.base == NULL) {
        /* 16 hex digits: the thread's random prefix, then its sequence (by hand: this is every request's) */
        static const char hex[] = "0123456789abcdef";
        uint64_t v = (uint64_t)w->id_prefix << 32 | (uint32_t)++w->id_seq;
        id.base = h2o_mem_alloc_pool(&req->pool, 17);
        for (int i = 15; i >= 0; --i, v >>= 4)
            id.base[i] = hex[v & 15];
        id.base[16] = '\0';
        id.len = 16;
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id.base, id.len);
    return id;
}

void tg_respond_count(tg_handler_ctx_t *w, h2o_req_t *req, int status, size_t len)
{
    if (w->ans.query != NULL)
        tg_query_slot_count(&w->ans.query->state->slots[w->worker->index], w->ans.gone ? 499 : status);
    tg_observe_answer(w, req, status, len);
}

/* A HEAD is answered with the head its GET would have: h2o sends no body after it (h2o_send_inline, or nothing sent here). */
static int is_head(h2o_req_t *req)
{
    return h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
}

void tg_respond_encoding(tg_handler_ctx_t *w, h2o_req_t *req, int status, size_t len)
{
    const tg_config_t *cfg = w != NULL ? tg_worker_config(w->worker) : NULL;
    if (cfg == NULL || !cfg->compression.on || status != 200) {
        req->compress_hint = H2O_COMPRESS_HINT_DISABLE;
        return;
    }
    /* whether it is compressed or not, the answer depends on Accept-Encoding: caches must keep the two apart */
    h2o_set_header_token(&req->pool, &req->res.headers, H2O_TOKEN_VARY, H2O_STRLIT("accept-encoding"));
    req->compress_hint = len >= cfg->compression.min_bytes ? H2O_COMPRESS_HINT_ENABLE : H2O_COMPRESS_HINT_DISABLE;
}

/* What every answer's head has: its status, its content type and its length. */
static void set_head(h2o_req_t *req, int status, const char *content_type, size_t ct_len, size_t len)
{
    req->res.status = status;
    req->res.reason = tg_status_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, ct_len);
    req->res.content_length = len;
}

static void send_body(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *content_type, size_t ct_len, const char *body,
                      size_t len)
{
    if (w != NULL)
        tg_respond_count(w, req, status, is_head(req) ? 0 : len);
    tg_respond_encoding(w, req, status, len);
    tg_respond_body(req, status, content_type, ct_len, body, len);
}

void tg_respond_body(h2o_req_t *req, int status, const char *content_type, size_t ct_len, const char *body, size_t len)
{
    set_head(req, status, content_type, ct_len, len);
    h2o_send_inline(req, body, len);
}

void tg_respond_json(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *body, size_t len)
{
    send_body(w, req, status, H2O_STRLIT("application/json"), body, len);
}

static void add_retry_after(h2o_req_t *req, int retry_after_s)
{
    if (retry_after_s <= 0)
        return;
    char *v = h2o_mem_alloc_pool(&req->pool, 16);
    int n = snprintf(v, 16, "%d", retry_after_s);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
}

/* A JSON answer's content type: a problem's, or plain JSON's. */
static h2o_iovec_t content_type_of(int problem)
{
    return problem ? h2o_iovec_init(H2O_STRLIT(TG_PROBLEM_CONTENT_TYPE)) : h2o_iovec_init(H2O_STRLIT("application/json"));
}

void tg_respond_bytes(tg_handler_ctx_t *w, h2o_req_t *req, int status, int problem, const char *body, size_t len, int retry_after_s)
{
    add_retry_after(req, retry_after_s);
    h2o_iovec_t ct = content_type_of(problem);
    send_body(w, req, status, ct.base, ct.len, body, len);
}

/* the request's reference to a shared blob, given back when its memory is freed (the body has been sent by then) */
static void release_blob(void *p)
{
    tg_cache_blob_unref(*(tg_cache_blob_t **)p);
}

/* Sends `body` as it is, without a copy: whoever calls makes it outlive the request. */
static void send_uncopied(tg_handler_ctx_t *w, h2o_req_t *req, int status, h2o_iovec_t ct, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    set_head(req, status, ct.base, ct.len, len);
    tg_respond_encoding(w, req, status, len);
    h2o_start_response(req, &generator);
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    if (is_head(req))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

void tg_respond_blob(tg_handler_ctx_t *w, h2o_req_t *req, tg_cache_blob_t *blob, const char *cache_status, int with_age)
{
    tg_cache_blob_t **hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), release_blob);
    *hold = blob;
    add_retry_after(req, blob->retry_after_s);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("cache-status"), 0, NULL, cache_status, strlen(cache_status));
    if (with_age) {
        uint64_t now = tg_now_ms(), age = now > blob->stored_at_ms ? (now - blob->stored_at_ms) / 1000 : 0;
        char *v = h2o_mem_alloc_pool(&req->pool, 24);
        int n = snprintf(v, 24, "%llu", (unsigned long long)age);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_AGE, NULL, v, (size_t)n);
    }
    tg_respond_count(w, req, blob->status, is_head(req) ? 0 : blob->len);
    /* the body as it is, shared by every request that gets it: no copy (h2o_send_inline would copy it) */
    send_uncopied(w, req, blob->status, content_type_of(blob->problem), blob->body, blob->len);
}

/* the request's reference to its snapshot, given back when its memory is freed (the body has been sent by then) */
static void release_snapshot(void *p)
{
    tg_snapshot_release(*(tg_snapshot_t **)p);
}

void tg_respond_snapshot_json(tg_handler_ctx_t *w, h2o_req_t *req, tg_snapshot_t *snap, const char *body, size_t len)
{
    tg_snapshot_t **hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), release_snapshot);
    *hold = tg_snapshot_ref(snap);
    tg_respond_count(w, req, 200, is_head(req) ? 0 : len);
    send_uncopied(w, req, 200, content_type_of(0), body, len);
}

void tg_respond_head_unsized(tg_handler_ctx_t *w, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    tg_respond_count(w, req, 200, 0);
    set_head(req, 200, H2O_STRLIT("application/json"), SIZE_MAX);
    tg_respond_encoding(w, req, 200, SIZE_MAX);
    h2o_start_response(req, &generator);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

void tg_respond_status(tg_handler_ctx_t *w, h2o_req_t *req, int status)
{
    tg_respond_count(w, req, status, 0);
    req->res.status = status;
    req->res.reason = tg_status_reason(status);
    /* no Content-Length: a 204 must not have one */
    req->res.content_length = SIZE_MAX;
    req->compress_hint = H2O_COMPRESS_HINT_DISABLE;
    h2o_send_inline(req, "", 0);
}

void tg_respond_problem(tg_handler_ctx_t *w, h2o_req_t *req, const tg_problem_t *p, int retry_after_s)
{
    tg_buf_reset(&w->scratch);
    tg_problem_format(&w->scratch, p);
    tg_respond_bytes(w, req, p->status, 1, w->scratch.base, w->scratch.len, retry_after_s);
}

void tg_respond_error(tg_handler_ctx_t *w, h2o_req_t *req, int status, const char *type, const char *detail)
{
    tg_problem_t p = {.status = status, .type = type, .detail = detail};
    tg_respond_problem(w, req, &p, tg_retry_after_of(status));
}

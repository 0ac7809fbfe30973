/*
 * The admin API, on its own listener and thread: status, reload, kill switches for
 * queries and tenants. JSON in and out, problem+json errors, and with `admin_token`
 * every call needs `Authorization: Bearer TOKEN` (its SHA-256 compared in constant
 * time). Switches are live state (tollgate/state.h): every worker sees them on its
 * next request, and they survive reloads for the names that still exist.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "tollgate.h"
#include "tollgate/health.h"
#include "tollgate/json.h"
#include "tollgate/overload.h"
#include "tollgate/problem.h"
#include "tollgate/server.h"
#include "../gateway/internal.h"
#include "respond.h"

/* The largest admin request body. */
#define TG_ADMIN_MAX_BODY 65536
/* The longest reason an operator may give for a switch. */
#define TG_ADMIN_MAX_REASON 500
/* The longest Retry-After a switched-off query may answer with (a day). */
#define TG_ADMIN_MAX_RETRY_S 86400

static void send_json(h2o_req_t *req, int status, const char *content_type, const tg_buf_t *b)
{
    tg_respond_body(req, status, content_type, strlen(content_type), b->base, b->len);
}

static void send_problem(h2o_req_t *req, int status, const char *type, const char *detail)
{
    tg_buf_t b = {0};
    tg_problem_t p = {.status = status, .type = type, .detail = detail};
    tg_problem_format(&b, &p);
    send_json(req, status, TG_PROBLEM_CONTENT_TYPE, &b);
    tg_buf_dispose(&b);
}

/* Does the request carry the admin token (or is none configured)? */
static int authorized(const tg_config_t *cfg, h2o_req_t *req)
{
    if (!cfg->has_admin_token)
        return 1;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 7 || !h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
        return 0;
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)v.base + 7, v.len - 7, d);
    return CRYPTO_memcmp(d, cfg->admin_token, sizeof(d)) == 0;
}

static void iso_time(char *out, size_t size, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03dZ", (int)(ms % 1000));
}

static void append_switch(tg_buf_t *b, _Atomic int *switched, int file_enabled, const char *reason)
{
    int sw = atomic_load(switched), off = tg_state_is_off(switched, file_enabled);
    tg_buf_printf(b, "\"switched_off\":%s,\"switched_by\":%s,\"reason\":", off ? "true" : "false",
                  sw == TG_SWITCH_OFF                  ? "\"operator\""
                  : sw == TG_SWITCH_ON && !file_enabled ? "\"operator (on)\""
                  : off                                 ? "\"config\""
                                                        : "null");
    if (reason != NULL)
        tg_buf_append_json_string(b, reason, strlen(reason));
    else
        tg_buf_appends(b, "null");
}

/*
 * GET /admin/status: the snapshot, every backend (connections summed over the worker
 * threads, as each published them on its last tick), tenant and query. No
 * connection string, key or password appears.
 */
static void respond_status(tg_gateway_t *gw, h2o_req_t *req, tg_snapshot_t *snap)
{
    const tg_config_t *cfg = snap->config;
    tg_state_t *state = tg_gateway_state(gw);
    size_t n_threads = tg_gateway_threads(gw), n_backends;
    tg_backend_t **backends = tg_gateway_backends(gw, &n_backends);
    uint64_t now_ms = tg_now_ms(), now_ns = tg_now_ns();
    char at[40];
    iso_time(at, sizeof(at), snap->loaded_at_ms);
    tg_buf_t b = {0};
    tg_buf_printf(&b, "{\"generation\":%llu,\"loaded_at\":\"%s\",\"threads\":%zu,\"backends\":[", (unsigned long long)snap->generation,
                  at, n_threads);
    for (size_t i = 0; i != n_backends; ++i) {
        tg_backend_t *be = backends[i];
        tg_backend_totals_t tot = tg_backend_totals(be, n_threads);
        int up = tg_health_backend_up(be, now_ms, cfg->health_interval_ms);
        tg_buf_printf(&b, "%s{\"name\":", i != 0 ? "," : "");
        tg_buf_append_json_string(&b, be->name, strlen(be->name));
        tg_buf_printf(&b, ",\"role\":\"%s\",\"state\":\"%s\",", be->is_primary ? "primary" : "replica", up ? "up" : "down");
        tg_health_format_lag(&b, be);
        tg_buf_appendc(&b, ',');
        tg_health_format_position(&b, be);
        tg_buf_printf(&b, ",\"connections\":{\"ready\":%d,\"idle\":%d,\"busy\":%d,\"connecting\":%d},\"in_flight\":%ld", tot.ready,
                      tot.idle, tot.busy, tot.connecting, tot.in_flight);
        const tg_overload_t *o = be->overload;
        if (o != NULL)
            tg_buf_printf(&b, ",\"overload\":{\"adaptive\":%s,\"limit\":%u,\"in_flight\":%u,\"floor_ms\":%.3f,\"recent_ms\":%.3f,"
                              "\"probing\":%s,\"shed\":%llu}",
                          cfg->pool.overload.adaptive ? "true" : "false", (unsigned)atomic_load(&o->limit), (unsigned)atomic_load(&o->in_flight),
                          (double)atomic_load(&o->floor_ns) / 1e6, (double)atomic_load(&o->recent_ns) / 1e6,
                          atomic_load(&o->probing) ? "true" : "false", (unsigned long long)atomic_load(&o->shed));
        tg_buf_appendc(&b, '}');
    }
    free(backends);
    const tg_retry_budget_t *rb = tg_gateway_retry_budget(gw);
    tg_buf_printf(&b, "],\"retry_budget\":{\"sent\":%llu,\"refused\":%llu,\"failovers\":%llu", (unsigned long long)atomic_load(&rb->taken),
                  (unsigned long long)atomic_load(&rb->refused), (unsigned long long)atomic_load(&rb->failovers));
    tg_buf_appends(&b, "},\"tenants\":[");
    const tg_limits_t *l = snap->limits;
    pthread_mutex_lock(&state->mutex); /* the reasons */
    for (size_t i = 0; i != l->n_tenants; ++i) {
        tg_limits_tenant_t *t = &l->tenants[i];
        tg_bucket_state_t st;
        tg_limits_peek(l, t, now_ns, &st);
        tg_buf_printf(&b, "%s{\"name\":", i != 0 ? "," : "");
        tg_buf_append_json_string(&b, t->name, strlen(t->name));
        tg_buf_printf(&b, ",\"tokens\":%llu,\"rate\":%g,\"burst\":%g,\"in_flight\":%d,\"max_in_flight\":%d,",
                      (unsigned long long)st.remaining, t->bucket.rate, t->bucket.burst, atomic_load(&t->state->in_flight),
                      t->max_in_flight);
        append_switch(&b, &t->state->switched, t->enabled, t->state->reason);
        tg_buf_appends(&b, ",\"queries\":");
        if (t->queries->patterns == NULL) {
            tg_buf_appends(&b, "null");
        } else {
            tg_buf_appendc(&b, '[');
            for (size_t k = 0; k != t->queries->n_patterns; ++k) {
                if (k != 0)
                    tg_buf_appendc(&b, ',');
                tg_buf_append_json_string(&b, t->queries->patterns[k], strlen(t->queries->patterns[k]));
            }
            tg_buf_appendc(&b, ']');
        }
        tg_buf_appendc(&b, '}');
    }
    tg_buf_appends(&b, "],\"queries\":[");
    for (size_t i = 0; i != cfg->n_queries; ++i) {
        const tg_query_t *q = &cfg->queries[i];
        tg_query_state_t *qs = q->state;
        uint64_t calls = 0, errors = 0;
        for (size_t t = 0; t != n_threads; ++t) {
            calls += atomic_load_explicit(&qs->slots[t].calls, memory_order_relaxed);
            errors += atomic_load_explicit(&qs->slots[t].errors, memory_order_relaxed);
        }
        tg_buf_printf(&b, "%s{\"name\":", i != 0 ? "," : "");
        tg_buf_append_json_string(&b, q->name, strlen(q->name));
        tg_buf_t route = {0};
        tg_buf_printf(&route, "%s %s", tg_method_name(q->method), q->path);
        tg_buf_appends(&b, ",\"route\":");
        tg_buf_append_json_string(&b, route.base, route.len);
        tg_buf_dispose(&route);
        tg_buf_printf(&b, ",\"access\":\"%s\",\"calls\":%llu,\"errors\":%llu,\"in_flight\":%d,\"max_in_flight\":%d,\"retry_after_s\":%d,",
                      q->access == TG_ACCESS_WRITE ? "write" : "read", (unsigned long long)calls, (unsigned long long)errors,
                      atomic_load(&qs->in_flight), q->max_in_flight, atomic_load(&qs->retry_after_s));
        append_switch(&b, &qs->switched, q->enabled, qs->reason);
        tg_buf_appendc(&b, '}');
    }
    pthread_mutex_unlock(&state->mutex);
    tg_buf_appends(&b, "],\"shared_limits\":");
    tg_shared_t *shared = tg_gateway_shared(gw);
    if (shared != NULL)
        tg_shared_status(shared, &b);
    else
        tg_buf_appends(&b, "null");
    tg_buf_appends(&b, "}");
    send_json(req, 200, "application/json", &b);
    tg_buf_dispose(&b);
}

/* POST /admin/reload: the same reload as SIGHUP; 200 with the generation, or 422 with every error. */
static void respond_reload(tg_gateway_t *gw, h2o_req_t *req)
{
    tg_errors_t errs = {0}, notes = {0};
    uint64_t generation = 0;
    int ok = tg_gateway_reload_config(gw, NULL, &errs, &notes, &generation) == 0;
    tg_buf_t b = {0};
    if (ok)
        tg_buf_printf(&b, "{\"reloaded\":true,\"generation\":%llu,\"notes\":[", (unsigned long long)generation);
    else
        tg_buf_appends(&b, "{\"reloaded\":false,\"errors\":[");
    tg_errors_t *list = ok ? &notes : &errs;
    for (size_t i = 0; i != list->n; ++i) {
        if (i != 0)
            tg_buf_appendc(&b, ',');
        tg_buf_append_json_string(&b, list->msgs[i], strlen(list->msgs[i]));
    }
    tg_buf_appends(&b, "]}");
    send_json(req, ok ? 200 : 422, "application/json", &b);
    tg_buf_dispose(&b);
    tg_errors_dispose(&errs);
    tg_errors_dispose(&notes);
}

/* The optional body of a disable: {"retry_after_s": N, "reason": "..."}. Returns NULL, or why it is refused. */
static const char *read_switch_body(h2o_req_t *req, int query, int *retry_after_s, char *reason, size_t reason_size)
{
    reason[0] = '\0';
    if (req->entity.base == NULL || req->entity.len == 0)
        return NULL;
    tg_json_t root, key, value;
    if (tg_json_parse(req->entity.base, req->entity.len, &root, NULL) != 0 || root.type != TG_JSON_OBJECT)
        return "the body must be a JSON object";
    tg_json_iter_t it;
    for (tg_json_iter_init(&it, &root); tg_json_iter_next(&it, &key, &value);) {
        if (query && tg_json_string_equals(&key, "retry_after_s", 13)) {
            long long v;
            char *end;
            char num[32];
            if (value.type != TG_JSON_NUMBER || !tg_json_number_is_integer(&value) || value.len >= sizeof(num))
                return "retry_after_s must be an integer from 1 to 86400";
            memcpy(num, value.text, value.len);
            num[value.len] = '\0';
            v = strtoll(num, &end, 10);
            if (v < 1 || v > TG_ADMIN_MAX_RETRY_S)
                return "retry_after_s must be an integer from 1 to 86400";
            *retry_after_s = (int)v;
        } else if (tg_json_string_equals(&key, "reason", 6)) {
            if (value.type != TG_JSON_STRING || value.len > TG_ADMIN_MAX_REASON + 2 || reason_size <= value.len)
                return "reason must be a string of at most 500 bytes";
            size_t n = tg_json_string_decode(&value, reason);
            reason[n] = '\0';
            if (strlen(reason) != n)
                return "reason must not contain a NUL character";
        } else {
            return query ? "unknown field (a disable takes retry_after_s and reason)" : "unknown field (a disable takes reason)";
        }
    }
    return NULL;
}

/*
 * POST /admin/cache/purge: {"query": "name"} drops that cached query's entries, {} (or
 * no body) every query's. The epochs move first, so a fetch under way does not store
 * what it fetched before the purge.
 */
static void respond_purge(tg_gateway_t *gw, h2o_req_t *req, tg_snapshot_t *snap)
{
    const tg_config_t *cfg = snap->config;
    char name[128] = "";
    if (req->entity.base != NULL && req->entity.len != 0) {
        tg_json_t root, key, value;
        if (tg_json_parse(req->entity.base, req->entity.len, &root, NULL) != 0 || root.type != TG_JSON_OBJECT) {
            send_problem(req, 400, "invalid-body", "the body must be a JSON object: {\"query\": \"name\"} or {}");
            return;
        }
        tg_json_iter_t it;
        for (tg_json_iter_init(&it, &root); tg_json_iter_next(&it, &key, &value);) {
            if (!tg_json_string_equals(&key, "query", 5) || value.type != TG_JSON_STRING || value.len >= sizeof(name)) {
                send_problem(req, 400, "invalid-body", "a purge takes only \"query\": the name of a cached query");
                return;
            }
            name[tg_json_string_decode(&value, name)] = '\0';
        }
    }
    const tg_query_t *only = NULL;
    if (name[0] != '\0') {
        for (size_t i = 0; i != cfg->n_queries && only == NULL; ++i)
            if (strcmp(cfg->queries[i].name, name) == 0)
                only = &cfg->queries[i];
        if (only == NULL || !only->cached) {
            send_problem(req, 404, "not-found", only == NULL ? "no such query" : "that query is not cached");
            return;
        }
    }
    for (size_t i = 0; i != cfg->n_queries; ++i)
        if (cfg->queries[i].cached && (only == NULL || only == &cfg->queries[i]))
            tg_state_drop_cached(cfg->queries[i].state);
    size_t dropped = tg_cache_purge(tg_gateway_cache(gw), only != NULL ? only->state->id : 0);
    tg_log(TG_LOG_INFO, "cache purged (%s): %zu entries", only != NULL ? only->name : "every query", dropped);
    tg_buf_t b = {0};
    tg_buf_printf(&b, "{\"purged\":%zu,\"query\":", dropped);
    if (only != NULL)
        tg_buf_append_json_string(&b, only->name, strlen(only->name));
    else
        tg_buf_appends(&b, "null");
    tg_buf_appendc(&b, '}');
    send_json(req, 200, "application/json", &b);
    tg_buf_dispose(&b);
}

/* POST /admin/(queries|tenants)/NAME/(disable|enable) */
static void respond_switch(tg_gateway_t *gw, h2o_req_t *req, tg_snapshot_t *snap, int query, h2o_iovec_t name, int off)
{
    tg_state_t *state = tg_gateway_state(gw);
    char n[128], reason[TG_ADMIN_MAX_REASON + 8];
    if (name.len == 0 || name.len >= sizeof(n) || memchr(name.base, '\0', name.len) != NULL) {
        send_problem(req, 404, "not-found", query ? "no such query" : "no such tenant");
        return;
    }
    memcpy(n, name.base, name.len);
    n[name.len] = '\0';
    /* only names of the current snapshot */
    tg_query_state_t *qs = NULL;
    tg_tenant_state_t *ts = NULL;
    if (query) {
        const tg_query_t *q = tg_config_find_query(snap->config, n);
        if (q != NULL)
            qs = q->state;
    } else {
        for (size_t i = 0; i != snap->limits->n_tenants && ts == NULL; ++i)
            if (strcmp(snap->limits->tenants[i].name, n) == 0)
                ts = snap->limits->tenants[i].state;
    }
    if (qs == NULL && ts == NULL) {
        send_problem(req, 404, "not-found", query ? "no such query" : "no such tenant");
        return;
    }
    int retry = 30;
    const char *why = off ? read_switch_body(req, query, &retry, reason, sizeof(reason)) : NULL;
    if (why != NULL) {
        send_problem(req, 400, "invalid-body", why);
        return;
    }
    if (!off)
        reason[0] = '\0';
    tg_switch_t sw = off ? TG_SWITCH_OFF : TG_SWITCH_ON; /* (an ON the files agree with becomes theirs again) */
    /* with shared_limits every instance takes it from Redis within a second (queued before it is applied here: see shared.h) */
    tg_shared_t *shared = tg_gateway_shared(gw);
    if (shared != NULL)
        tg_shared_publish_switch(shared, query, n, sw, retry, reason[0] != '\0' ? reason : NULL);
    if (query)
        tg_state_switch_query(state, qs, sw, retry, reason[0] != '\0' ? reason : NULL);
    else
        tg_state_switch_tenant(state, ts, sw, reason[0] != '\0' ? reason : NULL);
    /* one log line, whatever the reason holds */
    tg_buf_t quoted = {0};
    if (reason[0] != '\0')
        tg_buf_append_json_string(&quoted, reason, strlen(reason));
    tg_log(TG_LOG_INFO, "%s %s switched %s by an operator%s%s", query ? "query" : "tenant", n, off ? "off" : "on",
           quoted.len != 0 ? ": " : "", quoted.len != 0 ? quoted.base : "");
    tg_buf_dispose(&quoted);
    tg_buf_t b = {0};
    tg_buf_appends(&b, "{\"name\":");
    tg_buf_append_json_string(&b, n, strlen(n));
    tg_buf_printf(&b, ",\"switched_off\":%s", off ? "true" : "false");
    if (query && off)
        tg_buf_printf(&b, ",\"retry_after_s\":%d", retry);
    tg_buf_appends(&b, "}");
    send_json(req, 200, "application/json", &b);
    tg_buf_dispose(&b);
}

/* Splits "/admin/queries/NAME/disable" into its kind, name and verb. Returns 1 if it has that shape. */
static int split_switch_path(h2o_iovec_t path, int *query, h2o_iovec_t *name, int *off)
{
    static const char q[] = "/admin/queries/", t[] = "/admin/tenants/";
    const char *rest;
    if (path.len > sizeof(q) - 1 && memcmp(path.base, q, sizeof(q) - 1) == 0)
        *query = 1, rest = path.base + sizeof(q) - 1;
    else if (path.len > sizeof(t) - 1 && memcmp(path.base, t, sizeof(t) - 1) == 0)
        *query = 0, rest = path.base + sizeof(t) - 1;
    else
        return 0;
    const char *end = path.base + path.len, *slash = memchr(rest, '/', (size_t)(end - rest));
    if (slash == NULL)
        return 0;
    *name = h2o_iovec_init(rest, (size_t)(slash - rest));
    size_t verb = (size_t)(end - slash - 1);
    if (verb == 7 && memcmp(slash + 1, "disable", 7) == 0)
        *off = 1;
    else if (verb == 6 && memcmp(slash + 1, "enable", 6) == 0)
        *off = 0;
    else
        return 0;
    return memchr(name->base, '/', name->len) == NULL;
}

/* 405 with the one method the path takes */
static void method_not_allowed(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    send_problem(req, 405, "method-not-allowed", "the path does not take this method");
}

int tg_handle_admin(h2o_handler_t *self, h2o_req_t *req)
{
    tg_gateway_t *gw = ((tg_admin_handler_t *)self)->gw;
    tg_snapshot_t *snap = tg_gateway_snapshot(gw);
    h2o_iovec_t path = req->path_normalized;
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")),
        is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")), query, off;
    h2o_iovec_t name;
    if (!authorized(snap->config, req)) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"tollgate-admin\""));
        send_problem(req, 401, "unauthorized", "the admin API needs Authorization: Bearer <admin token>");
    } else if (req->entity.len > TG_ADMIN_MAX_BODY) {
        send_problem(req, 413, "body-too-large", "admin request bodies are at most 64 KiB");
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        if (is_get)
            tg_respond_metrics(gw, req, snap);
        else
            method_not_allowed(req, "GET");
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/admin/status"))) {
        if (is_get)
            respond_status(gw, req, snap);
        else
            method_not_allowed(req, "GET");
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/admin/cache/purge"))) {
        if (is_post)
            respond_purge(gw, req, snap);
        else
            method_not_allowed(req, "POST");
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/admin/reload"))) {
        if (is_post)
            respond_reload(gw, req);
        else
            method_not_allowed(req, "POST");
    } else if (split_switch_path(path, &query, &name, &off)) {
        if (is_post)
            respond_switch(gw, req, snap, query, name, off);
        else
            method_not_allowed(req, "POST");
    } else {
        send_problem(req, 404, "no-route", "no admin call has this path");
    }
    tg_snapshot_release(snap);
    return 0;
}

/* The main listener's built-in endpoints: /healthz, /readyz and /openapi.json. */
#include <stdatomic.h>
#include <string.h>
#include "tollgate/health.h"
#include "tollgate/server.h"
#include "../gateway/internal.h"
#include "respond.h"

/*
 * GET /readyz: 200 when the primary is reachable or, for a catalog of reads only, a
 * replica is usable; 503 otherwise. The body has every backend's state by the health
 * checks, and its connections as the answering worker thread sees them.
 */
static void respond_readyz(tg_handler_ctx_t *w, h2o_req_t *req)
{
    const tg_config_t *cfg = tg_worker_config(w->worker);
    uint64_t now = tg_now_ms();
    int read_only = 1;
    for (size_t i = 0; i != cfg->n_queries; ++i)
        if (cfg->queries[i].access == TG_ACCESS_WRITE)
            read_only = 0;
    tg_buf_t *b = &w->scratch;
    tg_buf_reset(b);
    tg_buf_appends(b, "{\"backends\":[");
    int primary_ok = 0, replica_ok = 0;
    for (size_t i = 0; i != w->worker->n_backends; ++i) {
        const tg_backend_t *be = w->worker->backends[i];
        tg_pool_backend_stats_t st = {0};
        tg_pool_backend_stats(w->worker->pool, be, &st);
        int up = tg_health_backend_up(be, now, cfg->health_interval_ms);
        if (be->is_primary) {
            primary_ok = up || st.connected > 0;
        } else if (tg_health_replica_usable(be, now, cfg->health_interval_ms, cfg->replica_max_lag_ms)) {
            replica_ok = 1;
        }
        tg_buf_printf(b, "%s{\"name\":\"%s\",\"role\":\"%s\",\"state\":\"%s\",", i != 0 ? "," : "", be->name,
                      be->is_primary ? "primary" : "replica", up ? "up" : "down");
        tg_health_format_lag(b, be);
        tg_buf_printf(b, ",\"connections\":{\"ready\":%d,\"connecting\":%d,\"busy\":%d},\"in_flight\":%zu}", st.connected,
                      st.connecting, st.busy, st.in_flight);
    }
    int ready = !w->worker->shutting_down && (primary_ok || (read_only && replica_ok));
    /* the backends that are down, by name, so that a 503 (or a 200 without the primary) says why */
    tg_buf_appends(b, "],\"down\":[");
    for (size_t i = 0, n = 0; i != w->worker->n_backends; ++i) {
        const tg_backend_t *be = w->worker->backends[i];
        if (tg_health_backend_up(be, now, cfg->health_interval_ms))
            continue;
        tg_buf_printf(b, "%s", n++ != 0 ? "," : "");
        tg_buf_append_json_string(b, be->name, strlen(be->name));
    }
    tg_buf_printf(b, "],\"ready\":%s}", ready ? "true" : "false");
    tg_respond_json(w, req, ready ? 200 : 503, b->base, b->len);
}

int tg_handle_builtin(tg_handler_ctx_t *w, h2o_req_t *req, h2o_iovec_t path)
{
    w->ans.builtin = 1; /* probes are logged, not counted as requests */
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        tg_respond_json(w, req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
        return 1;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/readyz"))) {
        respond_readyz(w, req);
        return 1;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/openapi.json"))) {
        /* made with the snapshot (tollgate/openapi.h): the one new requests on this thread are served on */
        tg_snapshot_t *snap = w->worker->pins.current->snap;
        tg_respond_snapshot_json(w, req, snap, snap->openapi.base, snap->openapi.len);
        return 1;
    }
    w->ans.builtin = 0;
    return 0;
}


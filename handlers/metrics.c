/*
 * GET /metrics: the Prometheus text format (0.0.4). Counters and histograms are
 * summed over the worker threads' tables (tollgate/metrics.h); gauges are read from
 * the live state, the backends and /proc when scraped. Every family has its HELP and
 * TYPE even before it has a series, so dashboards and alerts see a name from the
 * start. Label values are names from the config.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "tollgate.h"
#include "tollgate/health.h"
#include "tollgate/overload.h"
#include "../gateway/internal.h"
#include "respond.h"

static void family(tg_buf_t *b, const char *name, const char *type, const char *help)
{
    tg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped, as the format asks. */
static void label_value(tg_buf_t *b, const char *s)
{
    tg_buf_appendc(b, '"');
    for (; *s != '\0'; ++s) {
        if (*s == '\\' || *s == '"')
            tg_buf_appendc(b, '\\'), tg_buf_appendc(b, *s);
        else if (*s == '\n')
            tg_buf_appends(b, "\\n");
        else
            tg_buf_appendc(b, *s);
    }
    tg_buf_appendc(b, '"');
}

/* Appends `k="v"` to a label list (a comma first unless it is empty). */
static void label(tg_buf_t *b, const char *k, const char *v)
{
    if (b->len != 0)
        tg_buf_appendc(b, ',');
    tg_buf_printf(b, "%s=", k);
    label_value(b, v);
}

static const char *or_dash(const char *s)
{
    return s != NULL ? s : "-";
}

/* One sample line: name{labels} value. */
static void sample(tg_buf_t *b, const char *name, const char *suffix, const tg_buf_t *labels, const char *extra, const char *value)
{
    tg_buf_printf(b, "%s%s{%.*s%s%s} %s\n", name, suffix, (int)labels->len, labels->base != NULL ? labels->base : "",
                  labels->len != 0 && extra != NULL ? "," : "", extra != NULL ? extra : "", value);
}

/* The counter series of one kind, from s[i] on (sorted by key): returns the index past them. */
static size_t counters(tg_buf_t *b, tg_buf_t *l, const tg_state_t *st, const tg_metrics_series_t *s, size_t i, size_t n,
                       tg_metric_kind_t kind, const char *name)
{
    for (; i != n && tg_metrics_key_kind(s[i].key) == kind; ++i) {
        uint32_t a = tg_metrics_key_a(s[i].key), bb = tg_metrics_key_b(s[i].key), c = tg_metrics_key_c(s[i].key);
        char text[24];
        tg_buf_reset(l);
        if (kind == TG_M_REQUESTS) {
            snprintf(text, sizeof(text), "%u", c);
            label(l, "query", or_dash(tg_state_query_name(st, a)));
            label(l, "tenant", or_dash(tg_state_tenant_name(st, bb)));
            label(l, "status", text);
        } else if (kind == TG_M_REFUSED) {
            label(l, "tenant", or_dash(tg_state_tenant_name(st, a)));
            label(l, "reason", tg_refusal_name((tg_refusal_t)c));
        } else if (kind == TG_M_READ_AFTER) {
            label(l, "query", or_dash(tg_state_query_name(st, a)));
            label(l, "served", tg_read_after_name((tg_read_after_t)c));
        } else if (kind == TG_M_CACHE) {
            label(l, "query", or_dash(tg_state_query_name(st, a)));
            if (c != TG_CACHE_REFRESH)
                label(l, "result", c < TG_CACHE_REFRESH ? tg_ans_cache_names[c] : "other");
        } else {
            label(l, "query", or_dash(tg_state_query_name(st, a)));
            label(l, "reason", tg_shed_name((tg_shed_t)c));
        }
        snprintf(text, sizeof(text), "%llu", (unsigned long long)s[i].v[0]);
        sample(b, name, "", l, NULL, text);
    }
    return i;
}

static size_t histograms(tg_buf_t *b, tg_buf_t *l, const tg_state_t *st, const tg_metrics_series_t *s, size_t i, size_t n,
                         tg_metric_kind_t kind, const char *name)
{
    for (; i != n && tg_metrics_key_kind(s[i].key) == kind; ++i) {
        tg_buf_reset(l);
        label(l, "query", or_dash(tg_state_query_name(st, tg_metrics_key_a(s[i].key))));
        if (kind == TG_M_DB_SECONDS)
            label(l, "backend", or_dash(tg_state_backend_name(st, tg_metrics_key_b(s[i].key))));
        uint64_t cumulative = 0;
        char le[40], text[40];
        for (size_t j = 0; j != TG_METRICS_BUCKETS; ++j) {
            cumulative += s[i].v[j];
            if (j != TG_METRICS_BUCKETS - 1)
                snprintf(le, sizeof(le), "le=\"%g\"", (double)tg_metrics_bucket_us[j] / 1e6);
            else
                strcpy(le, "le=\"+Inf\"");
            snprintf(text, sizeof(text), "%llu", (unsigned long long)cumulative);
            sample(b, name, "_bucket", l, le, text);
        }
        snprintf(text, sizeof(text), "%.6f", (double)s[i].v[TG_METRICS_BUCKETS] / 1e6);
        sample(b, name, "_sum", l, NULL, text);
        snprintf(text, sizeof(text), "%llu", (unsigned long long)cumulative);
        sample(b, name, "_count", l, NULL, text);
    }
    return i;
}

/*
 * The cache: calls by how they were answered (hit, stale, miss: started a fetch,
 * collapsed: waited for another's) and refreshes started, per thread and summed; and
 * from the live state, evictions, entries and bytes.
 */
static size_t skip_to(const tg_metrics_series_t *s, size_t i, size_t n, tg_metric_kind_t kind);

static void cache_figures(tg_buf_t *b, tg_buf_t *l, const tg_state_t *st, const tg_metrics_series_t *s, size_t *i, size_t n,
                          const tg_config_t *cfg)
{
    size_t start = skip_to(s, *i, n, TG_M_CACHE), end = start;
    while (end != n && tg_metrics_key_kind(s[end].key) == TG_M_CACHE)
        ++end;
    family(b, "tollgate_cache_requests_total", "counter",
           "Calls of cached queries by how they were answered: hit, stale (served while refreshed), miss (started a fetch), collapsed (waited for one).");
    for (size_t j = start; j != end; ++j)
        if (tg_metrics_key_c(s[j].key) != TG_CACHE_REFRESH)
            counters(b, l, st, s, j, j + 1, TG_M_CACHE, "tollgate_cache_requests_total");
    family(b, "tollgate_cache_refreshes_total", "counter", "Background refreshes of stale entries started.");
    for (size_t j = start; j != end; ++j)
        if (tg_metrics_key_c(s[j].key) == TG_CACHE_REFRESH)
            counters(b, l, st, s, j, j + 1, TG_M_CACHE, "tollgate_cache_refreshes_total");
    *i = end;
    char text[32];
    static const struct {
        const char *name, *type, *help;
    } gauges[] = {
        {"tollgate_cache_evictions_total", "counter", "Entries dropped to stay within cache.max_bytes (least recently used first)."},
        {"tollgate_cache_entries", "gauge", "Entries stored."},
        {"tollgate_cache_bytes", "gauge", "Bytes the entries count against cache.max_bytes (keys, bodies and bookkeeping)."},
    };
    for (size_t g = 0; g != 3; ++g) {
        family(b, gauges[g].name, gauges[g].type, gauges[g].help);
        for (size_t q = 0; q != cfg->n_queries; ++q) {
            const tg_query_state_t *qs = cfg->queries[q].state;
            if (!cfg->queries[q].cached)
                continue;
            long long v = g == 0 ? (long long)atomic_load(&qs->cache_evictions)
                          : g == 1 ? (long long)atomic_load(&qs->cache_entries)
                                   : (long long)atomic_load(&qs->cache_bytes);
            snprintf(text, sizeof(text), "%lld", v);
            tg_buf_reset(l);
            label(l, "query", qs->name);
            sample(b, gauges[g].name, "", l, NULL, text);
        }
    }
}

/* Skips series of kinds before `kind` (none are expected), so every family prints only its own. */
static size_t skip_to(const tg_metrics_series_t *s, size_t i, size_t n, tg_metric_kind_t kind)
{
    while (i != n && tg_metrics_key_kind(s[i].key) < kind)
        ++i;
    return i;
}

/* The process: CPU, memory and descriptors from /proc, as Prometheus' own clients name them. */
static void process_figures(tg_buf_t *b, double started_at_s)
{
    double cpu_s = -1, vsize = -1, rss = -1;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* the fields after the command name, which may hold spaces and parentheses: from the last ')' */
        char *p = strrchr(buf, ')');
        unsigned long utime, stime, vs;
        long rs;
        if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %lu %ld",
                                &utime, &stime, &vs, &rs) == 4) {
            long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
            cpu_s = (double)(utime + stime) / (double)(ticks > 0 ? ticks : 100);
            vsize = (double)vs;
            rss = (double)rs * (double)page;
        }
    }
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            fds += e->d_name[0] != '.';
        closedir(d);
        --fds; /* the one opendir holds */
    }
    struct rlimit rl;
    family(b, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.");
    tg_buf_printf(b, "process_start_time_seconds %.3f\n", started_at_s);
    if (cpu_s >= 0) {
        family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
        tg_buf_printf(b, "process_cpu_seconds_total %.2f\n", cpu_s);
        family(b, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
        tg_buf_printf(b, "process_resident_memory_bytes %.0f\n", rss);
        family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes.");
        tg_buf_printf(b, "process_virtual_memory_bytes %.0f\n", vsize);
    }
    family(b, "process_open_fds", "gauge", "Open file descriptors.");
    tg_buf_printf(b, "process_open_fds %ld\n", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        family(b, "process_max_fds", "gauge", "The most file descriptors the process may open.");
        tg_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

/* one series per backend of a family: the figure `what` picks from its adaptive limit (printf'd with `fmt`) */
enum { OV_LIMIT, OV_IN_FLIGHT, OV_FLOOR, OV_RECENT, OV_SHED };

static void overload_family(tg_buf_t *b, tg_buf_t *l, tg_backend_t *const *backends, size_t n, const char *metric, const char *type,
                            const char *help, int what)
{
    family(b, metric, type, help);
    for (size_t i = 0; i != n; ++i) {
        const tg_overload_t *o = backends[i]->overload;
        if (o == NULL)
            continue;
        char text[32];
        switch (what) {
        case OV_LIMIT:
            snprintf(text, sizeof(text), "%u", (unsigned)atomic_load_explicit(&o->limit, memory_order_relaxed));
            break;
        case OV_IN_FLIGHT:
            snprintf(text, sizeof(text), "%u", (unsigned)atomic_load_explicit(&o->in_flight, memory_order_relaxed));
            break;
        case OV_FLOOR:
        case OV_RECENT:
            snprintf(text, sizeof(text), "%.6f",
                     (double)atomic_load_explicit(what == OV_FLOOR ? &o->floor_ns : &o->recent_ns, memory_order_relaxed) / 1e9);
            break;
        default:
            snprintf(text, sizeof(text), "%llu", (unsigned long long)atomic_load_explicit(&o->shed, memory_order_relaxed));
            break;
        }
        tg_buf_reset(l);
        label(l, "backend", backends[i]->name);
        sample(b, metric, "", l, NULL, text);
    }
}

/* The backends' adaptive limits (tollgate/overload.h). */
static void overload_figures(tg_buf_t *b, tg_buf_t *l, tg_backend_t *const *backends, size_t n)
{
    overload_family(b, l, backends, n, "tollgate_backend_concurrency_limit", "gauge",
                    "Each backend's adaptive concurrency limit: calls it may have in flight over every worker thread.", OV_LIMIT);
    overload_family(b, l, backends, n, "tollgate_backend_in_flight_admitted", "gauge",
                    "Calls holding an admission of each backend's adaptive limit (on its connections).", OV_IN_FLIGHT);
    overload_family(b, l, backends, n, "tollgate_backend_latency_floor_seconds", "gauge",
                    "Each backend's unloaded median latency, as its adaptive limit measured it (0 until measured).", OV_FLOOR);
    overload_family(b, l, backends, n, "tollgate_backend_latency_recent_seconds", "gauge",
                    "Each backend's median latency over the adaptive limit's last interval.", OV_RECENT);
    overload_family(b, l, backends, n, "tollgate_overload_shed_total", "counter",
                    "Calls each backend's adaptive limit refused (a read refused by two backends counts at both).", OV_SHED);
}

static void backend_figures(tg_buf_t *b, tg_buf_t *l, tg_gateway_t *gw, const tg_config_t *cfg)
{
    size_t n, n_threads = tg_gateway_threads(gw);
    tg_backend_t **backends = tg_gateway_backends(gw, &n);
    uint64_t now_ms = tg_now_ms();
    family(b, "tollgate_backend_up", "gauge", "1 while the health checker finds the backend up, else 0.");
    for (size_t i = 0; i != n; ++i) {
        tg_buf_reset(l);
        label(l, "backend", backends[i]->name);
        label(l, "role", backends[i]->is_primary ? "primary" : "replica");
        sample(b, "tollgate_backend_up", "", l, NULL, tg_health_backend_up(backends[i], now_ms, cfg->health_interval_ms) ? "1" : "0");
    }
    family(b, "tollgate_replica_lag_seconds", "gauge",
           "Replay lag of each replica behind the primary by the last health check, in seconds (absent while unknown).");
    for (size_t i = 0; i != n; ++i) {
        int64_t lag = atomic_load(&backends[i]->lag_ms);
        if (backends[i]->is_primary || lag < 0)
            continue;
        char text[32];
        snprintf(text, sizeof(text), "%.3f", (double)lag / 1000);
        tg_buf_reset(l);
        label(l, "backend", backends[i]->name);
        sample(b, "tollgate_replica_lag_seconds", "", l, NULL, text);
    }
    family(b, "tollgate_backend_connections", "gauge", "Pooled connections to each backend, by state, over every worker thread.");
    for (size_t i = 0; i != n; ++i) {
        tg_backend_totals_t t = tg_backend_totals(backends[i], n_threads);
        const struct {
            const char *state;
            long v;
        } states[] = {{"idle", t.idle}, {"busy", t.busy}, {"connecting", t.connecting}};
        for (size_t j = 0; j != sizeof(states) / sizeof(states[0]); ++j) {
            char text[24];
            snprintf(text, sizeof(text), "%ld", states[j].v);
            tg_buf_reset(l);
            label(l, "backend", backends[i]->name);
            label(l, "state", states[j].state);
            sample(b, "tollgate_backend_connections", "", l, NULL, text);
        }
    }
    family(b, "tollgate_backend_in_flight", "gauge", "Calls sent to each backend and not yet answered.");
    for (size_t i = 0; i != n; ++i) {
        char text[24];
        snprintf(text, sizeof(text), "%ld", tg_backend_totals(backends[i], n_threads).in_flight);
        tg_buf_reset(l);
        label(l, "backend", backends[i]->name);
        sample(b, "tollgate_backend_in_flight", "", l, NULL, text);
    }
    overload_figures(b, l, backends, n);
    free(backends);
}

/* A gauge family of one series per name: metric{label="names[i]"} values[i]. */
static void gauge_per_name(tg_buf_t *b, tg_buf_t *l, const char *metric, const char *help, const char *key, const char *const *names,
                           const long *values, size_t n)
{
    family(b, metric, "gauge", help);
    for (size_t i = 0; i != n; ++i) {
        char text[24];
        snprintf(text, sizeof(text), "%ld", values[i]);
        tg_buf_reset(l);
        label(l, key, names[i]);
        sample(b, metric, "", l, NULL, text);
    }
}

/* Tenants and queries of the current snapshot: in flight and switched off. */
static void live_figures(tg_buf_t *b, tg_buf_t *l, const tg_snapshot_t *snap, tg_state_t *st)
{
    const tg_config_t *cfg = snap->config;
    const tg_limits_t *lim = snap->limits;
    family(b, "tollgate_in_flight", "gauge", "Catalog calls admitted and not yet answered, gateway-wide.");
    tg_buf_printf(b, "tollgate_in_flight %d\n", atomic_load(&st->in_flight));
    size_t n = lim->n_tenants > cfg->n_queries ? lim->n_tenants : cfg->n_queries;
    const char **names = tg_calloc(n + 1, sizeof(*names));
    long *in_flight = tg_calloc(n + 1, sizeof(*in_flight)), *off = tg_calloc(n + 1, sizeof(*off));
    for (size_t i = 0; i != lim->n_tenants; ++i) {
        tg_tenant_state_t *t = lim->tenants[i].state;
        names[i] = lim->tenants[i].name;
        in_flight[i] = atomic_load(&t->in_flight);
        off[i] = tg_state_is_off(&t->switched, t->file_enabled);
    }
    gauge_per_name(b, l, "tollgate_tenant_in_flight", "Calls of each tenant admitted and not yet answered.", "tenant", names, in_flight,
                   lim->n_tenants);
    gauge_per_name(b, l, "tollgate_tenant_switched_off", "1 while the tenant is switched off (its calls answer 403).", "tenant", names, off,
                   lim->n_tenants);
    for (size_t i = 0; i != cfg->n_queries; ++i) {
        tg_query_state_t *q = cfg->queries[i].state;
        names[i] = cfg->queries[i].name;
        in_flight[i] = atomic_load(&q->in_flight);
        off[i] = tg_state_is_off(&q->switched, cfg->queries[i].enabled);
    }
    gauge_per_name(b, l, "tollgate_query_in_flight", "Calls of each query admitted and not yet answered.", "query", names, in_flight,
                   cfg->n_queries);
    gauge_per_name(b, l, "tollgate_query_switched_off", "1 while the query's kill switch is off (it answers 503).", "query", names, off,
                   cfg->n_queries);
    free(names);
    free(in_flight);
    free(off);
}

/* shared_limits (only while it is configured) */
static void shared_figures(tg_buf_t *b, tg_shared_t *sh)
{
    tg_shared_counters_t c;
    if (sh == NULL || (tg_shared_counters(sh, &c), !c.configured))
        return;
    family(b, "tollgate_shared_limits_up", "gauge", "1 while tenant limits are global (Redis answers), 0 while they are local (rate / instances).");
    tg_buf_printf(b, "tollgate_shared_limits_up %d\n", c.up);
    family(b, "tollgate_shared_limits_instances", "gauge", "Live instances sharing the limits, as last seen in Redis (0: never reached).");
    tg_buf_printf(b, "tollgate_shared_limits_instances %u\n", c.instances);
    family(b, "tollgate_shared_limits_fallbacks_total", "counter", "Times the limits went local because Redis stopped answering.");
    tg_buf_printf(b, "tollgate_shared_limits_fallbacks_total %llu\n", (unsigned long long)c.fallbacks);
    family(b, "tollgate_shared_limits_redis_commands_total", "counter", "Commands sent to Redis (leases, ticks, switches).");
    tg_buf_printf(b, "tollgate_shared_limits_redis_commands_total %llu\n", (unsigned long long)c.commands);
    family(b, "tollgate_shared_limits_leased_tokens_total", "counter", "Tokens taken from the tenants' global buckets.");
    tg_buf_printf(b, "tollgate_shared_limits_leased_tokens_total %llu\n", (unsigned long long)c.leased);
    family(b, "tollgate_shared_limits_returned_tokens_total", "counter", "Leased tokens given back unspent.");
    tg_buf_printf(b, "tollgate_shared_limits_returned_tokens_total %llu\n", (unsigned long long)c.returned);
}

void tg_respond_metrics(tg_gateway_t *gw, h2o_req_t *req, tg_snapshot_t *snap)
{
    tg_state_t *st = tg_gateway_state(gw);
    size_t n_threads = tg_gateway_threads(gw);
    tg_metrics_series_t *s;
    size_t n = tg_metrics_collect(tg_gateway_metrics(gw), n_threads, &s), i = 0;
    tg_gateway_figures_t fig;
    tg_gateway_figures(gw, &fig);
    tg_buf_t b = {0}, l = {0};

    family(&b, "tollgate_build_info", "gauge", "The running build: always 1, labelled with its version.");
    tg_buf_printf(&b, "tollgate_build_info{version=\"%s\"} 1\n", TOLLGATE_VERSION);
    family(&b, "tollgate_config_generation", "gauge", "Generation of the config snapshot being served (1 at start, +1 a reload).");
    tg_buf_printf(&b, "tollgate_config_generation %llu\n", (unsigned long long)snap->generation);
    family(&b, "tollgate_reloads_total", "counter", "Config reloads (SIGHUP or POST /admin/reload), by result.");
    tg_buf_printf(&b, "tollgate_reloads_total{result=\"ok\"} %llu\ntollgate_reloads_total{result=\"rejected\"} %llu\n",
                  (unsigned long long)fig.reloads_ok, (unsigned long long)fig.reloads_failed);
    family(&b, "tollgate_threads", "gauge", "Worker threads.");
    tg_buf_printf(&b, "tollgate_threads %zu\n", n_threads);
    family(&b, "tollgate_client_connections", "gauge", "Client connections open, over every listener.");
    tg_buf_printf(&b, "tollgate_client_connections %llu\n", (unsigned long long)fig.client_connections);
    family(&b, "tollgate_client_connections_closed_total", "counter",
           "Client connections tollgate closed for what they did, by reason (see docs/reference.md, hostile clients).");
    static const char *const reasons[] = {"rapid_reset", "control_flood", "too_many_streams", "slow_request", "stalled"};
    for (size_t r = 0; r != sizeof(reasons) / sizeof(reasons[0]); ++r)
        tg_buf_printf(&b, "tollgate_client_connections_closed_total{reason=\"%s\"} %llu\n", reasons[r], (unsigned long long)fig.closed[r]);
    family(&b, "tollgate_bodies_refused_total", "counter", "HTTP/2 request bodies cut off at max_body_bytes (each call answered 413).");
    tg_buf_printf(&b, "tollgate_bodies_refused_total %llu\n", (unsigned long long)fig.bodies_refused);

    /* the per-thread tables, under the registry's mutex for the names (ids only grow; names never move) */
    pthread_mutex_lock(&st->mutex);
    family(&b, "tollgate_requests_total", "counter",
           "Answered requests by catalog query, tenant and HTTP status (\"-\": none; 499: the client left first).");
    i = counters(&b, &l, st, s, skip_to(s, i, n, TG_M_REQUESTS), n, TG_M_REQUESTS, "tollgate_requests_total");
    family(&b, "tollgate_refused_total", "counter", "Calls refused before they cost the database anything, by tenant and reason.");
    i = counters(&b, &l, st, s, skip_to(s, i, n, TG_M_REFUSED), n, TG_M_REFUSED, "tollgate_refused_total");
    family(&b, "tollgate_shed_total", "counter", "Calls not served to protect the gateway or the database, by query and reason.");
    i = counters(&b, &l, st, s, skip_to(s, i, n, TG_M_SHED), n, TG_M_SHED, "tollgate_shed_total");
    cache_figures(&b, &l, st, s, &i, n, snap->config);
    family(&b, "tollgate_read_after_total", "counter",
           "Reads sent with Tollgate-Read-After, by query and where they were served: a replica that had the write, one after waiting for it, the primary, or the cache.");
    i = counters(&b, &l, st, s, skip_to(s, i, n, TG_M_READ_AFTER), n, TG_M_READ_AFTER, "tollgate_read_after_total");
    family(&b, "tollgate_request_duration_seconds", "histogram", "Time from a request reaching the handler to its answer, by query.");
    i = histograms(&b, &l, st, s, skip_to(s, i, n, TG_M_REQUEST_SECONDS), n, TG_M_REQUEST_SECONDS, "tollgate_request_duration_seconds");
    family(&b, "tollgate_db_duration_seconds", "histogram", "Time a call ran on its backend, by query and backend.");
    i = histograms(&b, &l, st, s, skip_to(s, i, n, TG_M_DB_SECONDS), n, TG_M_DB_SECONDS, "tollgate_db_duration_seconds");
    family(&b, "tollgate_pool_wait_seconds", "histogram", "Time from admission to a call being sent to a backend connection, by query.");
    i = histograms(&b, &l, st, s, skip_to(s, i, n, TG_M_WAIT_SECONDS), n, TG_M_WAIT_SECONDS, "tollgate_pool_wait_seconds");
    live_figures(&b, &l, snap, st);
    pthread_mutex_unlock(&st->mutex);
    free(s);

    backend_figures(&b, &l, gw, snap->config);
    const tg_retry_budget_t *rb = tg_gateway_retry_budget(gw);
    family(&b, "tollgate_read_retries_total", "counter",
           "Reads sent again after their connection was lost, by outcome: sent (the retry budget had one), refused (it had none: "
           "answered 503), failover (their backend was gone: free).");
    tg_buf_printf(&b,
                  "tollgate_read_retries_total{outcome=\"sent\"} %llu\ntollgate_read_retries_total{outcome=\"refused\"} %llu\n"
                  "tollgate_read_retries_total{outcome=\"failover\"} %llu\n",
                  (unsigned long long)atomic_load(&rb->taken), (unsigned long long)atomic_load(&rb->refused),
                  (unsigned long long)atomic_load(&rb->failovers));
    tg_accesslog_t *log = tg_gateway_access_log(gw);
    family(&b, "tollgate_access_log_lines_total", "counter", "Access-log lines written whole to the file.");
    tg_buf_printf(&b, "tollgate_access_log_lines_total %llu\n", (unsigned long long)tg_accesslog_written(log));
    family(&b, "tollgate_access_log_dropped_total", "counter", "Access-log lines dropped because the file could not keep up (never the request delayed), or lost to a write error.");
    tg_buf_printf(&b, "tollgate_access_log_dropped_total %llu\n", (unsigned long long)tg_accesslog_dropped(log));
    shared_figures(&b, tg_gateway_shared(gw));
    process_figures(&b, fig.started_at_s);

    tg_respond_body(req, 200, H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"), b.base, b.len);
    tg_buf_dispose(&b);
    tg_buf_dispose(&l);
}

/*
 * The result cache on a live gateway (each test starts its own, threads 4, against the
 * real primary and replica): a storm of 1,000 cold callers on one key is one database
 * execution (counted in the servers' own logs), stale-while-revalidate, a leader that
 * leaves, invalidation by a write, the memory bound over 100,000 keys, purge.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

static char admin_base[64];

static pid_t start(gw_opts_t *o)
{
    o->threads = 4;
    o->pool_size = o->pool_size != 0 ? o->pool_size : 8;
    o->with_replica = 1;
    o->admin_port = -1;
    pid_t pid = start_gateway(o);
    snprintf(admin_base, sizeof(admin_base), "http://127.0.0.1:%d", o->admin_port);
    wait_backends_up(15);
    return pid;
}

static resp_t *admin(const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", admin_base, path);
    return http(PROTO_H1, method, url, body, body != NULL ? "application/json" : NULL, "Authorization: Basic bm9uZTpub25l");
}

/* A key no earlier run used (the servers' logs outlive a test). */
static const char *fresh_key(const char *what)
{
    static char k[64];
    snprintf(k, sizeof(k), "%s-%d-%ld", what, (int)getpid(), (long)(now_s() * 1000));
    return k;
}

/* Executions of cache_probe(k) so far: its WARNING lines in the primary's and the replica's server logs. */
static int executions(const char *k)
{
    char cmd[512], line[64];
    snprintf(cmd, sizeof(cmd), "cat '%s/primary.log' '%s/replica.log' 2>/dev/null | grep -c 'WARNING:  tollgate-cache-probe %s$'",
             env("TG_PG_DIR"), env("TG_PG_DIR"), k);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int n = fgets(line, sizeof(line), p) != NULL ? atoi(line) : -1;
    pclose(p);
    return n;
}

/* the server writes its log line a moment after the query; wait until it is there (or the count is past `want`) */
static int executions_settled(const char *k, int want)
{
    double deadline = now_s() + 3;
    int n;
    while ((n = executions(k)) < want && now_s() < deadline)
        usleep(50 * 1000);
    usleep(300 * 1000); /* and a moment more, for any line that should not be there */
    return executions(k);
}


/* Sends METHOD url (with a JSON body, or none) over `version` and gives up after `timeout_ms`: the curl result. */
static CURLcode give_up_after(const char *method, const char *url, const char *json_body, long version, long timeout_ms)
{
    CURL *e = curl_easy_init();
    struct curl_slist *h = json_body != NULL ? curl_slist_append(NULL, "Content-Type: application/json") : NULL;
    http_body_t g = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version);
    if (json_body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, json_body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_append_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    free(g.p);
    return rc;
}

/*
 * Sends `n` GETs of `url` at once, each on a connection of its own: the even ones over
 * HTTP/2 (prior knowledge), the odd ones over HTTP/1.1. Fills status[i] and bodies[i];
 * returns the seconds the slowest took. (Not multiplexed: curl 7.88 opening several
 * prior-knowledge streams on a new connection at once gets "Error in the HTTP2 framing
 * layer" from h2o 2.2.5 even for /healthz; h2load's do not.)
 */
static double blast(const char *url, int n, long *status, char **bodies, double timeout_s)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    CURL **e = calloc((size_t)n, sizeof(*e));
    http_body_t *g = calloc((size_t)n, sizeof(*g));
    for (int i = 0; i != n; ++i) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_HTTP_VERSION, i % 2 == 0 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, http_append_body);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &g[i]);
        curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
        curl_easy_setopt(e[i], CURLOPT_FORBID_REUSE, 1L);
        curl_multi_add_handle(m, e[i]);
    }
    double start = now_s(), slowest = 0;
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE && now_s() - start > slowest)
                slowest = now_s() - start;
    }
    for (int i = 0; i != n; ++i) {
        status[i] = 0;
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &status[i]);
        bodies[i] = g[i].p != NULL ? g[i].p : strdup("");
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    free(e);
    free(g);
    curl_multi_cleanup(m);
    return slowest;
}

Test(cache, a_thousand_cold_callers_on_one_key_are_one_database_execution, .timeout = 120)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    const char *k = fresh_key("storm");
    char url[256];
    snprintf(url, sizeof(url), "%s/cache/probe?k=%s", getenv("TG_URL"), k);
    enum { N = 1000 };
    static long status[N];
    static char *bodies[N];
    double slowest = blast(url, N, status, bodies, 30);
    int ok = 0, same = 0;
    for (int i = 0; i != N; ++i) {
        ok += status[i] == 200;
        same += strcmp(bodies[i], bodies[0]) == 0;
    }
    cr_expect_eq(ok, N, "%d of %d answered 200 (first other: %s)", ok, N, bodies[0]);
    cr_expect_eq(same, N, "every caller got the same answer (%d did)", same);
    cr_expect_eq(executions_settled(k, 1), 1, "one execution in the database for %d callers", N);
    cr_log_info("1000 cold callers: slowest %.3f s", slowest);
    for (int i = 0; i != N; ++i)
        free(bodies[i]);
    /* and /metrics says how they were answered: one miss, the rest collapsed or hits */
    resp_t *r = admin("GET", "/metrics", NULL);
    cr_expect(strstr(r->body, "tollgate_cache_requests_total{query=\"cache_probe\",result=\"miss\"} 1\n") != NULL, "%s",
              strstr(r->body, "tollgate_cache_requests_total") != NULL ? strstr(r->body, "tollgate_cache_requests_total") : r->body);
    resp_free(r);
    stop_gateway(pid, 10);
}

/* A string member of the answer's JSON (http() parsed it), or "(none)": valid while `r` is */
static const char *member(const resp_t *r, const char *name)
{
    const char *v = jstr(r, name);
    return v != NULL ? v : "(none)";
}

Test(cache, a_stale_entry_is_served_at_once_while_one_refresh_runs, .timeout = 90)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    const char *k = fresh_key("swr");
    char path[128], first_at[128];
    snprintf(path, sizeof(path), "/cache/swr?k=%s", k);
    resp_t *r = http(PROTO_H2, "GET", path, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    snprintf(first_at, sizeof(first_at), "%s", member(r, "at"));
    resp_free(r);
    usleep(1200 * 1000); /* past ttl_ms (1 s) */
    for (int i = 0; i != 4; ++i) {
        double t0 = now_s();
        r = http(PROTOS[i % 2], "GET", path, NULL, NULL, NULL);
        double took = now_s() - t0;
        char *cs = resp_header(r, "cache-status");
        cr_expect_eq(r->status, 200);
        cr_expect(cs != NULL && strcmp(cs, "tollgate; hit; fwd=stale") == 0, "Cache-Status: %s", cs != NULL ? cs : "(none)");
        cr_expect_lt(took, 0.5, "a stale answer does not wait for the 2 s refresh (%.3f s)", took);
        cr_expect_str_eq(member(r, "at"), first_at, "the stale copy");
        free(cs);
        resp_free(r);
    }
    /* the refresh (2 s) ends; then the new data */
    usleep(2500 * 1000);
    r = http(PROTO_H1, "GET", path, NULL, NULL, NULL);
    char *cs = resp_header(r, "cache-status");
    cr_expect(cs != NULL && strcmp(cs, "tollgate; hit") == 0, "Cache-Status: %s", cs != NULL ? cs : "(none)");
    cr_expect_str_neq(member(r, "at"), first_at, "the refreshed answer");
    free(cs);
    resp_free(r);
    cr_expect_eq(executions_settled(k, 2), 2, "the first fetch and one refresh, for five calls");
    stop_gateway(pid, 10);
}

/* The value of sample `series` in a /metrics scrape, or 0. */
static double metric(const char *series)
{
    resp_t *r = admin("GET", "/metrics", NULL);
    double v = metrics_sample(r->body, series);
    resp_free(r);
    return v;
}

Test(cache, the_callers_waiting_get_their_answer_when_the_one_who_started_the_fetch_leaves, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    const char *k = fresh_key("leader");
    char url[256];
    /* a 2 s fetch: plenty of time to see the leader leave and the others join while it runs */
    snprintf(url, sizeof(url), "%s/cache/swr?k=%s", getenv("TG_URL"), k);
    double t0 = now_s();
    cr_assert_neq(give_up_after("GET", url, NULL, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, 300), CURLE_OK, "the leader gave up");
    /* the gateway saw it leave (an HTTP/2 connection closed: at once) */
    double deadline = now_s() + 1;
    while (metric("tollgate_requests_total{query=\"cache_swr\",tenant=\"anonymous\",status=\"499\"}") != 1 && now_s() < deadline)
        usleep(20 * 1000);
    cr_assert_eq(metric("tollgate_requests_total{query=\"cache_swr\",tenant=\"anonymous\",status=\"499\"}"), 1, "the leader's 499");
    cr_assert_lt(now_s() - t0, 1.8, "still inside the fetch's 2 s");
    enum { N = 20 };
    long status[N];
    char *bodies[N];
    blast(url, N, status, bodies, 10);
    for (int i = 0; i != N; ++i) {
        cr_expect_eq(status[i], 200, "caller %d: %ld %s", i, status[i], bodies[i]);
        free(bodies[i]);
    }
    cr_expect_eq(executions_settled(k, 1), 1, "the leader's fetch was not cancelled: it served the others");
    double collapsed = metric("tollgate_cache_requests_total{query=\"cache_swr\",result=\"collapsed\"}"),
           hits = metric("tollgate_cache_requests_total{query=\"cache_swr\",result=\"hit\"}");
    cr_expect_eq(collapsed + hits, N, "every caller joined the fetch or hit what it stored (%g + %g)", collapsed, hits);
    cr_expect_gt(collapsed, 0, "some joined the running fetch");
    cr_expect_eq(metric("tollgate_cache_requests_total{query=\"cache_swr\",result=\"miss\"}"), 1, "the leader that left is the one miss");
    stop_gateway(pid, 10);
}

Test(cache, a_write_that_invalidates_is_seen_by_the_next_read_at_once, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    const char *k = fresh_key("kv");
    char path[128], body[128];
    snprintf(path, sizeof(path), "/cache/kv/%s", k);
    for (int i = 0; i != 20; ++i) {
        snprintf(body, sizeof(body), "{\"v\": \"v%d\"}", i);
        resp_t *w = http(PROTOS[i % 2], "PUT", path, body, "application/json", NULL);
        cr_assert_eq(w->status, 200, "%s", w->body);
        resp_free(w);
        /* twice: the first fetches (and stores), the second is a hit of what the first stored */
        for (int j = 0; j != 2; ++j) {
            resp_t *r = http(PROTOS[(i + j) % 2], "GET", path, NULL, NULL, NULL);
            char want[16];
            snprintf(want, sizeof(want), "v%d", i);
            cr_assert_eq(r->status, 200, "%s", r->body);
            cr_assert_str_eq(member(r, "v"), want, "round %d read %d: the write is seen at once", i, j);
            char *cs = resp_header(r, "cache-status");
            cr_assert(cs != NULL && strcmp(cs, j == 0 ? "tollgate; fwd=miss; stored" : "tollgate; hit") == 0, "round %d read %d: %s", i, j,
                      cs != NULL ? cs : "(none)");
            free(cs);
            resp_free(r);
        }
    }
    stop_gateway(pid, 10);
}

Test(cache, a_write_whose_client_leaves_leaves_the_cache_agreeing_with_the_database, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    const char *k = fresh_key("gone");
    char path[128], slow[128];
    snprintf(path, sizeof(path), "/cache/kv/%s", k);
    snprintf(slow, sizeof(slow), "/cache/kv-slow/%s", k);
    resp_t *r = http(PROTO_H1, "PUT", path, "{\"v\": \"before\"}", "application/json", NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    r = http(PROTO_H2, "GET", path, NULL, NULL, NULL);
    cr_assert_str_eq(member(r, "v"), "before");
    resp_free(r);
    /* the write is sent, its client gives up; the write commits 0.5 s later anyway */
    char url[256];
    snprintf(url, sizeof(url), "%s%s", getenv("TG_URL"), slow);
    cr_assert_neq(give_up_after("PUT", url, "{\"v\": \"after\"}", CURL_HTTP_VERSION_1_1, 150), CURLE_OK, "the writer gave up first");
    /* its call ends (cancelled, or committed first): its 499 is counted and it is no longer in flight */
    double deadline = now_s() + 10;
    while ((metric("tollgate_requests_total{query=\"cache_kv_set_slow\",tenant=\"anonymous\",status=\"499\"}") != 1 ||
            metric("tollgate_query_in_flight{query=\"cache_kv_set_slow\"}") != 0) && now_s() < deadline)
        usleep(20 * 1000);
    cr_assert_eq(metric("tollgate_query_in_flight{query=\"cache_kv_set_slow\"}"), 0, "the write's call ended");
    /* the gateway cancels the call of a client that left, which may or may not beat the commit: the cache agrees with the database either way */
    const char *params[1] = {k};
    char *v = pg_sql_params(0, "SELECT v FROM cache_kv WHERE k = $1", 1, params);
    cr_assert_not_null(v);
    r = http(PROTO_H1, "GET", path, NULL, NULL, NULL);
    cr_expect_str_eq(member(r, "v"), v, "the cached read says what the database has");
    cr_log_info("the write whose client left was %s", strcmp(v, "after") == 0 ? "committed" : "cancelled");
    free(v);
    resp_free(r);
    stop_gateway(pid, 10);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* a process's resident memory, in MB */
static double rss_mb(pid_t pid)
{
    char statm[64];
    long pages = 0;
    snprintf(statm, sizeof(statm), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(statm, "r");
    cr_assert(f != NULL && fscanf(f, "%*d %ld", &pages) == 1);
    fclose(f);
    return (double)pages * (double)sysconf(_SC_PAGESIZE) / 1048576;
}

Test(cache, one_hundred_thousand_keys_stay_within_max_bytes_and_rss_stays_bounded, .timeout = 300)
{
    size_t max = 2 * 1024 * 1024;
    gw_opts_t o = {.extra = json_pack("{s:{s:I}}", "cache", "max_bytes", (json_int_t)max)};
    pid_t pid = start(&o);
    double rss_before = rss_mb(pid);
    /* 100,000 distinct keys, 256 at a time over 64 kept-alive HTTP/1.1 connections */
    enum { BATCH = 256, TOTAL = 100000 };
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    int sent = 0, done = 0, bad = 0;
    while (done < TOTAL) {
        int in_flight = sent - done;
        while (sent < TOTAL && in_flight < BATCH) {
            CURL *e = curl_easy_init();
            char url[256];
            snprintf(url, sizeof(url), "%s/cache/sweep?k=sweep-%d", getenv("TG_URL"), sent);
            curl_easy_setopt(e, CURLOPT_URL, url);
            curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
            curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
            curl_multi_add_handle(m, e);
            ++sent, ++in_flight;
        }
        int running;
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long st = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
            bad += st != 200;
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            ++done;
        }
    }
    curl_multi_cleanup(m);
    cr_expect_eq(bad, 0, "%d of %d calls were not 200", bad, TOTAL);
    double grown_mb = rss_mb(pid) - rss_before;
    resp_t *r = admin("GET", "/metrics", NULL);
    cr_assert_not_null(strstr(r->body, "tollgate_cache_bytes{query=\"cache_sweep\"} "));
    cr_assert_not_null(strstr(r->body, "tollgate_cache_evictions_total{query=\"cache_sweep\"} "));
    double bytes = metrics_sample(r->body, "tollgate_cache_bytes{query=\"cache_sweep\"}"),
           evictions = metrics_sample(r->body, "tollgate_cache_evictions_total{query=\"cache_sweep\"}");
    resp_free(r);
    cr_expect_leq(bytes, (double)max, "the cache's own count: %.0f bytes of %zu", bytes, max);
    cr_expect_gt(evictions, TOTAL / 2, "the oldest went (%.0f evictions)", evictions);
    cr_log_info("100,000 keys: RSS %+.1f MB, cache %.0f bytes, %.0f evictions", grown_mb, bytes, evictions);
    /* 100,000 answers of 1 KB would be 100 MB; bounded, RSS grows by the cache's 2 MB and the allocator's slack */
    if (getenv("TG_ASAN") == NULL) /* AddressSanitizer's shadow memory and quarantine are no gateway's */
        cr_expect_lt(grown_mb, 40, "RSS grew by %.1f MB", grown_mb);
    stop_gateway(pid, 10);
}

Test(cache, purge_drops_entries_and_errors_are_never_cached, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    const char *k = fresh_key("purge");
    char path[128];
    snprintf(path, sizeof(path), "/cache/probe?k=%s", k);
    resp_t *r = http(PROTO_H1, "GET", path, NULL, NULL, NULL);
    resp_free(r);
    r = http(PROTO_H2, "GET", path, NULL, NULL, NULL);
    char *cs = resp_header(r, "cache-status"), *age = resp_header(r, "age");
    cr_expect(cs != NULL && strcmp(cs, "tollgate; hit") == 0, "%s", cs != NULL ? cs : "(none)");
    cr_expect_not_null(age, "a hit has an Age");
    free(cs), free(age);
    resp_free(r);
    r = admin("POST", "/admin/cache/purge", "{\"query\": \"cache_probe\"}");
    cr_expect_eq(r->status, 200, "%s", r->body);
    cr_expect(strstr(r->body, "\"purged\":1") != NULL, "%s", r->body);
    resp_free(r);
    r = http(PROTO_H1, "GET", path, NULL, NULL, NULL);
    cs = resp_header(r, "cache-status");
    cr_expect(cs != NULL && strcmp(cs, "tollgate; fwd=miss; stored") == 0, "after the purge: %s", cs != NULL ? cs : "(none)");
    free(cs);
    resp_free(r);
    cr_expect_eq(executions_settled(k, 2), 2);
    r = admin("POST", "/admin/cache/purge", "{\"query\": \"ping\"}");
    cr_expect_eq(r->status, 404, "a query that is not cached: %s", r->body);
    resp_free(r);
    r = admin("POST", "/admin/cache/purge", "{\"nope\": 1}");
    cr_expect_eq(r->status, 400, "%s", r->body);
    resp_free(r);
    /* errors are not cached: division by zero twice is two executions (two misses) */
    for (int i = 0; i != 2; ++i) {
        r = http(PROTOS[i], "GET", "/cache/error?n=0", NULL, NULL, NULL);
        cr_expect_eq(r->status, 400, "%s", r->body);
        cs = resp_header(r, "cache-status");
        cr_expect(cs != NULL && strcmp(cs, "tollgate; fwd=miss") == 0, "an error is not stored: %s", cs != NULL ? cs : "(none)");
        free(cs);
        resp_free(r);
    }
    stop_gateway(pid, 10);
}

/*
 * Tenant limits shared across instances through Redis (shared_limits): three
 * gateways naming one redis-server that the test starts itself (TG_REDIS_BIN, no
 * persistence, on loopback), a tenant of rate 20/s and burst 20 called as fast as
 * each client thread can over keep-alive HTTP/1.1, and what was admitted counted:
 * the global bound over even and uneven spreads, Redis SIGKILLed under traffic (no
 * call fails or waits; every instance goes local at rate / 3 within one health
 * interval, and rejoins when Redis is back on the same port), kill switches carried
 * between instances and kept over a restart, an instance that never reaches Redis
 * (rate / expected_instances), and the config's refusals. tests/run.sh runs them one
 * at a time.
 *
 * Environment: TG_GATEWAY_BIN, TG_REDIS_BIN (redis-server), TG_PRIMARY_DSN,
 * TG_REPLICA_DSN, TG_CATALOG_DIR (see proc.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"
#include <hiredis/hiredis.h>

/* The tenant every test limits: 20 calls a second, 20 at once. */
#define RATE 20.0
#define BURST 20.0
#define TENANT_KEY "tg-shared-tenant-key"
#define PATH "/limits/ping" /* SELECT 1: the cheapest catalog query */
#define MAX_GW 3
#define MAX_THREADS 16

/* --- Redis: a child of the test, spoken to with hiredis --- */

typedef struct {
    pid_t pid;
    int port;
    char dir[64];
    const char *password; /* --requirepass (NULL: none) */
} redis_t;

/* the folder of this test's Redis: removed by the suite's fini even when the test failed */
static char redis_dir[64];

/* Appends a reply to `out` as text: errors keep a leading '-', nil is "(nil)", an array one element a line. */
static void reply_text(const redisReply *r, http_body_t *out)
{
    char num[32];
    switch (r->type) {
    case REDIS_REPLY_ERROR:
        http_append_body("-", 1, 1, out);
        /* fall through */
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        http_append_body(r->str, 1, r->len, out);
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(num, sizeof(num), "%lld", r->integer);
        http_append_body(num, 1, strlen(num), out);
        break;
    case REDIS_REPLY_ARRAY:
        for (size_t i = 0; i != r->elements; ++i) {
            if (i > 0)
                http_append_body("\n", 1, 1, out);
            reply_text(r->element[i], out);
        }
        break;
    default:
        http_append_body("(nil)", 1, 5, out);
    }
}

/*
 * Sends one command (its words, NULL-terminated) to the Redis on `port` with hiredis
 * (the gateway's own client) and returns the reply as text (malloc'd), or NULL when
 * nothing answers.
 */
static char *redis_cmd(int port, const char *const *words)
{
    struct timeval tv = {.tv_sec = 2};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    int n = 0;
    while (words[n] != NULL)
        ++n;
    redisReply *r = redisCommandArgv(c, n, (const char **)words, NULL);
    http_body_t out = {0};
    if (r != NULL)
        reply_text(r, &out);
    freeReplyObject(r);
    redisFree(c);
    if (r == NULL)
        return NULL;
    return out.p != NULL ? out.p : strdup("");
}

#define REDIS(port, ...) redis_cmd(port, (const char *const[]){__VA_ARGS__, NULL})

/* Starts redis-server on `port` (0: a free one) with no persistence, and waits for PING. */
static void redis_start(redis_t *r, int port)
{
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof(r->dir), "/tmp/tollgate-shared-redis.XXXXXX");
        cr_assert_not_null(mkdtemp(r->dir));
        snprintf(redis_dir, sizeof(redis_dir), "%s", r->dir);
    }
    r->port = port != 0 ? port : free_port();
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", r->port);
    char *argv[] = {(char *)env("TG_REDIS_BIN"),
                    "--port",
                    ports,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    r->dir,
                    r->password != NULL ? "--requirepass" : NULL,
                    (char *)r->password,
                    NULL};
    r->pid = spawn(argv, getenv("TG_REDIS_LOGS") == NULL);
    for (double until = now_s() + 5;;) {
        char *pong = REDIS(r->port, "PING");
        /* with a password, PING before AUTH is refused: it answers all the same */
        int up = pong != NULL && (strcmp(pong, "PONG") == 0 || strncmp(pong, "-NOAUTH", 7) == 0);
        free(pong);
        if (up)
            return;
        int st;
        cr_assert_eq(waitpid(r->pid, &st, WNOHANG), 0, "redis-server (%s) exited at start on port %d (TG_REDIS_LOGS=1 shows why)",
                     argv[0], r->port);
        cr_assert_lt(now_s(), until, "redis-server did not answer PING on port %d within 5 s", r->port);
        usleep(20 * 1000);
    }
}

/* SIGKILL: no goodbye to its clients, the port closed at once */
static void redis_kill(redis_t *r)
{
    cr_assert_eq(kill(r->pid, SIGKILL), 0);
    cr_assert_eq(waitpid(r->pid, NULL, 0), r->pid);
    r->pid = 0;
    char *pong = REDIS(r->port, "PING");
    cr_assert_null(pong, "something still answers on port %d after the SIGKILL", r->port);
}

static void remove_redis_dir(void)
{
    if (redis_dir[0] == '\0')
        return;
    char dump[96];
    snprintf(dump, sizeof(dump), "%s/dump.rdb", redis_dir);
    unlink(dump);
    rmdir(redis_dir);
    redis_dir[0] = '\0';
}

static void redis_stop(redis_t *r)
{
    if (r->pid > 0)
        redis_kill(r);
    remove_redis_dir();
}

/* --- gateways --- */

typedef struct {
    pid_t pid;
    int port, admin_port;
} gw_t;

/* `tollgate --hash-key KEY` */
static const char *key_hash(void)
{
    static char out[128];
    if (out[0] != '\0')
        return out;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' --hash-key '%s'", env("TG_GATEWAY_BIN"), TENANT_KEY);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(out, sizeof(out), p));
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* shared_limits naming the Redis on `redis_port` (health_interval_ms 0: the default) */
static json_t *shared_limits(int redis_port, int health_interval_ms, int expected_instances)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
    json_t *sl = json_pack("{s:s}", "redis", url);
    if (health_interval_ms > 0)
        json_object_set_new(sl, "health_interval_ms", json_integer(health_interval_ms));
    if (expected_instances > 0)
        json_object_set_new(sl, "expected_instances", json_integer(expected_instances));
    return sl;
}

/* The tenant "t" (RATE, BURST) and `sl` as shared_limits (taken over). */
static json_t *tenant_config(json_t *sl)
{
    return json_pack("{s:[{s:s,s:[s],s:f,s:f}],s:o}", "tenants", "name", "t", "keys", key_hash(), "rate", RATE, "burst", BURST,
                     "shared_limits", sl);
}

/* Starts (or starts again, on the same ports) gateway `g` with `sl` as its shared_limits (taken over), serving once its backends
 * are up. */
static void gw_start_with(gw_t *g, json_t *sl)
{
    /*
     * Without the adaptive limit: three gateways, their clients and Redis on two cores
     * make a 0.2 ms read take milliseconds, which the limit rightly reads as a backend
     * slowing down; this suite counts what the tenant limits let through.
     */
    gw_opts_t o = {.port = g->port, .admin_port = g->admin_port != 0 ? g->admin_port : -1, .no_overload = 1};
    o.extra = tenant_config(sl);
    g->pid = start_gateway(&o);
    g->port = o.port;
    g->admin_port = o.admin_port;
    wait_backends_up(15);
}

static void gw_start(gw_t *g, int redis_port, int health_interval_ms, int expected_instances)
{
    gw_start_with(g, shared_limits(redis_port, health_interval_ms, expected_instances));
}

static resp_t *admin(const gw_t *g, const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g->admin_port, path);
    /* an Authorization of its own keeps the client from sending a tenant key */
    return http(PROTO_H1, method, url, body, body != NULL ? "application/json" : NULL, "Authorization: Basic bm9uZTpub25l");
}

/* The gateway's /admin/status "shared_limits" (a new reference; the test fails if it is not an object). */
static json_t *shared_status(const gw_t *g)
{
    resp_t *r = admin(g, "GET", "/admin/status", NULL);
    cr_assert_eq(r->status, 200, "GET /admin/status: %ld %s", r->status, r->body);
    json_t *sl = json_object_get(r->json, "shared_limits");
    cr_assert(json_is_object(sl), "/admin/status has no shared_limits object: %s", r->body);
    json_incref(sl);
    resp_free(r);
    return sl;
}

static const char *jget_str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : "(none)";
}

/* a sample of the gateway's /metrics */
static double metric(const gw_t *g, const char *series)
{
    resp_t *r = admin(g, "GET", "/metrics", NULL);
    cr_assert_eq(r->status, 200, "GET /metrics: %ld", r->status);
    cr_assert_not_null(strstr(r->body, series), "/metrics has no %s", series);
    double v = metrics_sample(r->body, series);
    resp_free(r);
    return v;
}

/*
 * Polls every gateway until its status says `state` (and `divisor`, if not 0) for at
 * most `timeout_s`; fills `seen_after[i]` with the seconds it took each (if given).
 */
static void wait_state(const gw_t *gws, int n, const char *state, int divisor, double timeout_s, double *seen_after)
{
    double start = now_s(), until = start + timeout_s;
    int done[MAX_GW] = {0}, left = n;
    while (left > 0) {
        for (int i = 0; i != n; ++i) {
            if (done[i])
                continue;
            json_t *sl = shared_status(&gws[i]);
            int d = (int)json_integer_value(json_object_get(sl, "divisor"));
            if (strcmp(jget_str(sl, "state"), state) == 0 && (divisor == 0 || d == divisor)) {
                done[i] = 1, --left;
                if (seen_after != NULL)
                    seen_after[i] = now_s() - start;
            } else if (now_s() > until) {
                char *text = json_dumps(sl, JSON_COMPACT);
                cr_assert_fail("gateway %d is not \"%s\"%s within %.1f s: %s", i, state, divisor ? " with that divisor" : "",
                               timeout_s, text);
            }
            json_decref(sl);
        }
        if (left > 0)
            usleep(25 * 1000);
    }
}

/* --- traffic: client threads calling as fast as they can, answers counted --- */

typedef struct {
    _Atomic long ok, limited, other; /* 200, 429, anything else that answered */
    _Atomic long transport;          /* no answer (refused, reset, timed out) */
    _Atomic long ok_without_ratelimit, limited_without_retry_after;
    _Atomic long max_us; /* the slowest call */
    _Atomic long slow;   /* calls slower than SLOW_S */
} counts_t;

typedef struct {
    long ok, limited, other, transport, ok_without_ratelimit, limited_without_retry_after, max_us, slow;
} tally_t;

/* A call this slow would be one that waited on a Redis that does not answer (timeout_ms 400 in that test). */
#define SLOW_S 0.3

typedef struct traffic traffic_t;

typedef struct {
    traffic_t *tr;
    int gw; /* which gateway this thread calls */
    pthread_t t;
} client_t;

struct traffic {
    int n_gw, n_threads;
    int ports[MAX_GW];
    _Atomic int stop;
    counts_t per[MAX_GW];
    client_t clients[MAX_THREADS];
    pthread_mutex_t mutex;
    char first_bad[512]; /* the first answer that was not 200 or 429 */
    double started, stopped;
};

typedef struct {
    int retry_after, ratelimit, policy;
} seen_headers_t;

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    seen_headers_t *h = ud;
    size_t n = size * nmemb;
    if (n >= 12 && strncasecmp(p, "retry-after:", 12) == 0)
        h->retry_after = 1;
    else if (n >= 17 && strncasecmp(p, "ratelimit-policy:", 17) == 0)
        h->policy = 1;
    else if (n >= 10 && strncasecmp(p, "ratelimit:", 10) == 0)
        h->ratelimit = 1;
    return n;
}

static void note_max(_Atomic long *max, long v)
{
    long cur = atomic_load(max);
    while (v > cur && !atomic_compare_exchange_weak(max, &cur, v))
        ;
}

/* One keep-alive HTTP/1.1 connection (one curl handle), calls back to back until told to stop. */
static void *client_main(void *arg)
{
    client_t *c = arg;
    traffic_t *tr = c->tr;
    counts_t *k = &tr->per[c->gw];
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", tr->ports[c->gw], PATH);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Authorization: Bearer " TENANT_KEY);
    http_body_t body = {0};
    seen_headers_t seen;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_append_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &seen);
    while (!atomic_load(&tr->stop)) {
        seen = (seen_headers_t){0};
        body.n = 0;
        double t0 = now_s();
        CURLcode rc = curl_easy_perform(h);
        double took = now_s() - t0;
        note_max(&k->max_us, (long)(took * 1e6));
        if (took >= SLOW_S)
            atomic_fetch_add(&k->slow, 1);
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            atomic_fetch_add(&k->ok, 1);
            if (!seen.ratelimit || !seen.policy)
                atomic_fetch_add(&k->ok_without_ratelimit, 1);
        } else if (status == 429) {
            atomic_fetch_add(&k->limited, 1);
            if (!seen.retry_after)
                atomic_fetch_add(&k->limited_without_retry_after, 1);
            /* still a thousand calls a second past the limit, without taking the CPU the gateways' lease threads need */
            usleep(1000);
        } else {
            atomic_fetch_add(rc == CURLE_OK ? &k->other : &k->transport, 1);
            pthread_mutex_lock(&tr->mutex);
            if (tr->first_bad[0] == '\0')
                snprintf(tr->first_bad, sizeof(tr->first_bad), "gateway %d: %s %ld %.*s", c->gw,
                         rc == CURLE_OK ? "status" : curl_easy_strerror(rc), status, (int)(body.n < 300 ? body.n : 300),
                         body.p != NULL ? body.p : "");
            pthread_mutex_unlock(&tr->mutex);
            if (rc != CURLE_OK)
                usleep(10 * 1000); /* a refused connection must not spin */
        }
    }
    free(body.p);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return NULL;
}

/* Starts `n_threads` clients, thread i calling gateway `target[i]`. */
static void traffic_start(traffic_t *tr, const gw_t *gws, int n_gw, int n_threads, const int *target)
{
    memset(tr, 0, sizeof(*tr));
    cr_assert_leq(n_threads, MAX_THREADS);
    tr->n_gw = n_gw, tr->n_threads = n_threads;
    pthread_mutex_init(&tr->mutex, NULL);
    for (int i = 0; i != n_gw; ++i)
        tr->ports[i] = gws[i].port;
    tr->started = now_s();
    for (int i = 0; i != n_threads; ++i) {
        tr->clients[i] = (client_t){.tr = tr, .gw = target[i]};
        pthread_create(&tr->clients[i].t, NULL, client_main, &tr->clients[i]);
    }
}

/* Stops the clients; returns the seconds the traffic ran. */
static double traffic_stop(traffic_t *tr)
{
    atomic_store(&tr->stop, 1);
    for (int i = 0; i != tr->n_threads; ++i)
        pthread_join(tr->clients[i].t, NULL);
    tr->stopped = now_s();
    pthread_mutex_destroy(&tr->mutex);
    return tr->stopped - tr->started;
}

/* the counts so far of gateway `i` (-1: all of them summed) */
static tally_t tally(traffic_t *tr, int i)
{
    tally_t t = {0};
    for (int g = 0; g != tr->n_gw; ++g) {
        if (i >= 0 && g != i)
            continue;
        counts_t *k = &tr->per[g];
        t.ok += atomic_load(&k->ok), t.limited += atomic_load(&k->limited), t.other += atomic_load(&k->other);
        t.transport += atomic_load(&k->transport), t.ok_without_ratelimit += atomic_load(&k->ok_without_ratelimit);
        t.limited_without_retry_after += atomic_load(&k->limited_without_retry_after);
        long m = atomic_load(&k->max_us);
        if (m > t.max_us)
            t.max_us = m;
        t.slow += atomic_load(&k->slow);
    }
    return t;
}

static tally_t minus(tally_t a, tally_t b)
{
    return (tally_t){a.ok - b.ok,
                     a.limited - b.limited,
                     a.other - b.other,
                     a.transport - b.transport,
                     a.ok_without_ratelimit - b.ok_without_ratelimit,
                     a.limited_without_retry_after - b.limited_without_retry_after,
                     a.max_us,
                     a.slow - b.slow};
}

/* Every answer was 200 or 429 with its headers, none slower than `max_s` (0: not checked). */
static void expect_clean(traffic_t *tr, double max_s)
{
    tally_t t = tally(tr, -1);
    cr_assert_eq(t.other + t.transport, 0, "%ld answers were neither 200 nor 429 and %ld calls got no answer; the first: %s",
                 t.other, t.transport, tr->first_bad);
    cr_assert_gt(t.limited, 0, "the tenant was never limited: the test sent too little to test anything");
    cr_assert_eq(t.limited_without_retry_after, 0, "%ld of %ld 429s had no Retry-After", t.limited_without_retry_after, t.limited);
    cr_assert_eq(t.ok_without_ratelimit, 0, "%ld of %ld 200s lacked RateLimit or RateLimit-Policy", t.ok_without_ratelimit, t.ok);
    if (max_s > 0)
        cr_assert_lt(t.max_us / 1e6, max_s, "a call took %.3f s", t.max_us / 1e6);
}

/*
 * The most a tenant gets through `n` instances over `seconds`: the burst, the rate
 * over the window, and per instance one block of credit (a block is at most
 * burst / n, rounded down).
 */
static double global_bound(int n, double seconds)
{
    return BURST + RATE * seconds + n * floor(BURST / n);
}

/* the lowest balance of tenant t seen on any instance while shared, and where */
typedef struct {
    long lowest;
    int gw;
    char sample[256];
} debt_t;

/*
 * Waits `seconds` while the traffic runs, reading every instance's status about
 * every 200 ms: the lowest lease balance ("lease_tokens") of tenant t seen while
 * "shared". An instance is never more than one block (at most burst / N) ahead of
 * what it leased, so the balance never goes under -floor(burst / N).
 */
static debt_t watch_leases(const gw_t *gws, int n, double seconds)
{
    debt_t d = {.lowest = 0, .gw = -1};
    for (double until = now_s() + seconds; now_s() < until;) {
        for (int i = 0; i != n; ++i) {
            json_t *sl = shared_status(&gws[i]), *t;
            size_t k;
            if (strcmp(jget_str(sl, "state"), "shared") == 0)
                json_array_foreach(json_object_get(sl, "tenants"), k, t)
                {
                    long bal = (long)json_integer_value(json_object_get(t, "lease_tokens"));
                    if (strcmp(jget_str(t, "name"), "t") == 0 && bal < d.lowest) {
                        char *text = json_dumps(t, JSON_COMPACT);
                        d.lowest = bal, d.gw = i;
                        snprintf(d.sample, sizeof(d.sample), "%s", text);
                        free(text);
                    }
                }
            json_decref(sl);
        }
        double left = until - now_s();
        if (left > 0)
            usleep((useconds_t)((left < 0.2 ? left : 0.2) * 1e6));
    }
    return d;
}

static void expect_debt_bounded(const debt_t *d, int n)
{
    cr_assert_geq(d->lowest, -(long)floor(BURST / n), "gateway %d went %ld tokens into debt, more than one block (burst / %d): %s",
                  d->gw, -d->lowest, n, d->sample);
}

static void three_gateways(gw_t *gws, int redis_port, int health_interval_ms)
{
    memset(gws, 0, sizeof(gw_t) * MAX_GW);
    for (int i = 0; i != MAX_GW; ++i)
        gw_start(&gws[i], redis_port, health_interval_ms, 0);
    /* each has leased nothing yet, but has registered and sees the others */
    for (double until = now_s() + 10;;) {
        int all = 1;
        for (int i = 0; i != MAX_GW; ++i) {
            json_t *sl = shared_status(&gws[i]);
            all &= strcmp(jget_str(sl, "state"), "shared") == 0 && json_integer_value(json_object_get(sl, "instances")) == MAX_GW;
            json_decref(sl);
        }
        if (all)
            return;
        cr_assert_lt(now_s(), until, "the three gateways do not all say \"shared\" with 3 instances within 10 s");
        usleep(50 * 1000);
    }
}

static void stop_all(gw_t *gws, int n)
{
    for (int i = 0; i != n; ++i)
        stop_gateway(gws[i].pid, 10);
}

/* Runs the clients (thread i on gateway target[i]) for `seconds` and checks the global bound. */
static void bounded_run(const int *target, int n_threads, double seconds)
{
    redis_t rd = {0};
    redis_start(&rd, 0);
    gw_t gws[MAX_GW];
    three_gateways(gws, rd.port, 0);
    traffic_t tr;
    traffic_start(&tr, gws, MAX_GW, n_threads, target);
    debt_t debt = watch_leases(gws, MAX_GW, seconds);
    double ran = traffic_stop(&tr);
    tally_t all = tally(&tr, -1);
    for (int i = 0; i != MAX_GW; ++i) {
        tally_t t = tally(&tr, i);
        cr_log_info("gateway %d: %ld 200, %ld 429", i, t.ok, t.limited);
    }
    cr_log_info("%.2f s: %ld admitted of %ld (bound %.0f)", ran, all.ok, all.ok + all.limited, global_bound(MAX_GW, ran));
    expect_clean(&tr, 0);
    cr_assert_leq(all.ok, global_bound(MAX_GW, ran), "%ld calls admitted in %.2f s over three instances: more than the global %.0f",
                  all.ok, ran, global_bound(MAX_GW, ran));
    cr_assert_geq(all.ok, 0.9 * RATE * ran, "only %ld calls admitted in %.2f s: less than 90%% of the rate", all.ok, ran);
    expect_debt_bounded(&debt, MAX_GW);
    /* what each instance shows of it */
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", rd.port);
    const char *ids[MAX_GW];
    json_t *st[MAX_GW];
    for (int i = 0; i != MAX_GW; ++i) {
        json_t *sl = st[i] = shared_status(&gws[i]);
        cr_assert_str_eq(jget_str(sl, "state"), "shared", "gateway %d", i);
        cr_assert_str_eq(jget_str(sl, "redis"), url, "gateway %d", i);
        cr_assert_str_eq(jget_str(sl, "prefix"), "tollgate:", "gateway %d", i);
        cr_assert_eq(json_integer_value(json_object_get(sl, "instances")), MAX_GW, "gateway %d", i);
        cr_assert(json_is_null(json_object_get(sl, "last_error")), "gateway %d has a last_error while shared", i);
        ids[i] = jget_str(sl, "instance");
        cr_assert_neq(strcmp(ids[i], "(none)"), 0, "gateway %d names no instance", i);
        for (int j = 0; j != i; ++j)
            cr_assert_neq(strcmp(ids[i], ids[j]), 0, "gateways %d and %d are both %s", j, i, ids[i]);
        json_t *tenants = json_object_get(sl, "tenants"), *t, *mine = NULL;
        size_t k;
        json_array_foreach(tenants, k, t) if (strcmp(jget_str(t, "name"), "t") == 0) mine = t;
        cr_assert_not_null(mine, "gateway %d shows no lease of tenant t", i);
        json_int_t size = json_integer_value(json_object_get(mine, "lease_size"));
        cr_assert(size >= 1 && size <= (json_int_t)floor(BURST / MAX_GW), "gateway %d leases blocks of %lld: not 1 to burst / 3", i,
                  (long long)size);
        cr_assert_eq(metric(&gws[i], "tollgate_shared_limits_up"), 1, "gateway %d", i);
        cr_assert_eq(metric(&gws[i], "tollgate_shared_limits_instances"), MAX_GW, "gateway %d", i);
        cr_assert_gt(metric(&gws[i], "tollgate_shared_limits_leased_tokens_total"), 0, "gateway %d", i);
        cr_assert_gt(metric(&gws[i], "tollgate_shared_limits_redis_commands_total"), 0, "gateway %d", i);
    }
    for (int i = 0; i != MAX_GW; ++i)
        json_decref(st[i]);
    char *live = REDIS(rd.port, "ZCARD", "tollgate:instances");
    cr_assert(live != NULL && strcmp(live, "3") == 0, "tollgate:instances holds %s, not the 3 gateways",
              live != NULL ? live : "(no answer)");
    free(live);
    /* the global bucket is in this Redis, under the default prefix */
    char *exists = REDIS(rd.port, "EXISTS", "tollgate:bucket:t");
    cr_assert(exists != NULL && strcmp(exists, "1") == 0, "no tollgate:bucket:t in Redis (%s)",
              exists != NULL ? exists : "no answer");
    free(exists);
    stop_all(gws, MAX_GW);
    /* a stopping instance leaves the list of live instances */
    live = REDIS(rd.port, "ZCARD", "tollgate:instances");
    cr_assert(live != NULL && strcmp(live, "0") == 0, "tollgate:instances holds %s after every gateway stopped",
              live != NULL ? live : "(no answer)");
    free(live);
    redis_stop(&rd);
}

/* --- the tests --- */

/* the Redis itself dies with the test process (spawn) */
TestSuite(shared, .timeout = 90, .fini = remove_redis_dir);

Test(shared, three_instances_hold_the_global_rate)
{
    int target[] = {0, 1, 2};
    bounded_run(target, 3, 10);
}

Test(shared, an_uneven_spread_holds_the_global_rate)
{
    /* 8 of 10 client threads on the first instance */
    int target[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2};
    bounded_run(target, 10, 10);
}

Test(shared, redis_killed_under_traffic_goes_local_and_rejoins)
{
    const int health_ms = 500;
    const double window = 5;
    redis_t rd = {0};
    redis_start(&rd, 0);
    gw_t gws[MAX_GW];
    three_gateways(gws, rd.port, health_ms);
    traffic_t tr;
    int target[] = {0, 1, 2};
    traffic_start(&tr, gws, MAX_GW, 3, target);
    usleep(2000 * 1000);

    redis_kill(&rd);
    double went[MAX_GW];
    wait_state(gws, MAX_GW, "local", 3, health_ms / 1000.0 + 1.0, went);
    for (int i = 0; i != MAX_GW; ++i) {
        cr_log_info("gateway %d local %.2f s after the SIGKILL", i, went[i]);
        json_t *sl = shared_status(&gws[i]);
        cr_assert_geq(json_integer_value(json_object_get(sl, "fallbacks")), 1, "gateway %d counts no fallback", i);
        cr_assert(json_is_string(json_object_get(sl, "last_error")), "gateway %d: local with no last_error", i);
        json_decref(sl);
        cr_assert_eq(metric(&gws[i], "tollgate_shared_limits_up"), 0, "gateway %d: tollgate_shared_limits_up", i);
        cr_assert_geq(metric(&gws[i], "tollgate_shared_limits_fallbacks_total"), 1, "gateway %d", i);
    }

    /* local: each instance admits rate / 3 (plus its burst / 3), so the total stays near the rate */
    tally_t before[MAX_GW], during[MAX_GW];
    for (int i = 0; i != MAX_GW; ++i)
        before[i] = tally(&tr, i);
    double w0 = now_s();
    usleep((useconds_t)(window * 1e6));
    double w = now_s() - w0;
    long total = 0;
    for (int i = 0; i != MAX_GW; ++i) {
        during[i] = minus(tally(&tr, i), before[i]);
        total += during[i].ok;
        double hi = ceil(BURST / 3) + RATE / 3 * w + 1, lo = 0.8 * RATE / 3 * w;
        cr_log_info("gateway %d local: %ld 200 in %.2f s (allowed %.0f to %.0f)", i, during[i].ok, w, lo, hi);
        cr_assert_leq(during[i].ok, hi, "gateway %d admitted %ld in %.2f s while local: more than rate / 3", i, during[i].ok, w);
        cr_assert_geq(during[i].ok, lo, "gateway %d admitted only %ld in %.2f s while local", i, during[i].ok, w);
    }
    cr_assert_leq(total, BURST + RATE * w + MAX_GW, "%ld admitted in %.2f s while local: the instances did not divide the rate",
                  total, w);

    /* Redis back on the same port (empty: a restarted Redis has full buckets) */
    redis_start(&rd, rd.port);
    double back[MAX_GW];
    wait_state(gws, MAX_GW, "shared", 0, 5, back);
    for (int i = 0; i != MAX_GW; ++i) {
        cr_log_info("gateway %d shared again %.2f s after Redis came back", i, back[i]);
        cr_assert_eq(metric(&gws[i], "tollgate_shared_limits_up"), 1, "gateway %d: tollgate_shared_limits_up", i);
    }
    tally_t again = tally(&tr, -1);
    w0 = now_s();
    debt_t debt = watch_leases(gws, MAX_GW, window);
    w = now_s() - w0;
    tally_t after = minus(tally(&tr, -1), again);
    double ran = traffic_stop(&tr);
    cr_log_info("shared again: %ld 200 in %.2f s (bound %.0f); %.1f s of traffic in all", after.ok, w, global_bound(MAX_GW, w),
                ran);
    cr_assert_leq(after.ok, global_bound(MAX_GW, w) + MAX_GW, "%ld admitted in %.2f s after the rejoin: over the global bound",
                  after.ok, w);
    /* the rate again at once (the blocks' cap keeps N = 3 while the instances register again one by one) */
    cr_assert_geq(after.ok, 0.8 * RATE * w, "only %ld admitted in %.2f s after the rejoin", after.ok, w);
    expect_debt_bounded(&debt, MAX_GW);
    /* no call failed or waited on Redis at any time: not at the kill, not while local, not at the rejoin */
    expect_clean(&tr, 2.0);
    stop_all(gws, MAX_GW);
    redis_stop(&rd);
}

/* GET PATH on `g` as `who` (NULL: anonymous); returns the status, and checks the problem type of a refusal */
/*
 * A Redis that stops answering without closing anything (SIGSTOP: every command times
 * out): the instances go local within one health interval and a timeout, and no call
 * waits on it, which a SIGKILL (refused at once) cannot show.
 */
Test(shared, redis_blackholed_under_traffic_goes_local_without_slowing_calls)
{
    const int health_ms = 500, timeout_ms = 400;
    redis_t rd = {0};
    redis_start(&rd, 0);
    gw_t gws[MAX_GW];
    memset(gws, 0, sizeof(gws));
    for (int i = 0; i != MAX_GW; ++i) {
        json_t *sl = shared_limits(rd.port, health_ms, 0);
        json_object_set_new(sl, "timeout_ms", json_integer(timeout_ms));
        gw_start_with(&gws[i], sl);
    }
    wait_state(gws, MAX_GW, "shared", 0, 10, NULL);
    traffic_t tr;
    int target[] = {0, 1, 2};
    traffic_start(&tr, gws, MAX_GW, 3, target);
    usleep(1500 * 1000);
    tally_t before = tally(&tr, -1);

    cr_assert_eq(kill(rd.pid, SIGSTOP), 0);
    double went[MAX_GW];
    wait_state(gws, MAX_GW, "local", 3, (health_ms + timeout_ms) / 1000.0 + 1.0, went);
    for (int i = 0; i != MAX_GW; ++i) {
        cr_log_info("gateway %d local %.2f s after Redis stopped answering", i, went[i]);
        cr_assert_leq(went[i], (health_ms + timeout_ms) / 1000.0 + 0.5, "gateway %d went local only after %.2f s", i, went[i]);
    }
    usleep(2000 * 1000);
    tally_t during = minus(tally(&tr, -1), before);
    cr_assert_eq(kill(rd.pid, SIGCONT), 0);
    double back[MAX_GW];
    wait_state(gws, MAX_GW, "shared", 0, 5, back);
    usleep(500 * 1000);
    traffic_stop(&tr);
    tally_t all = minus(tally(&tr, -1), before);
    long calls = all.ok + all.limited;
    cr_log_info("blackholed: %ld calls (%ld while stopped), %ld slower than %.1f s, the slowest %.3f s", calls, during.ok + during.limited,
                all.slow, SLOW_S, all.max_us / 1e6);
    cr_assert_gt(during.ok + during.limited, 100, "calls were answered while Redis was stopped");
    /* a call that waited on Redis would take timeout_ms (400 ms); a loaded machine may stall a few on its own */
    cr_assert_leq(all.slow, calls / 100 + 3, "%ld of %ld calls took %.1f s or more: calls wait on Redis", all.slow, calls, SLOW_S);
    expect_clean(&tr, 2.0);
    stop_all(gws, MAX_GW);
    redis_stop(&rd);
}

static long call(const gw_t *g, const char *path, const char *who)
{
    char url[128], auth[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g->port, path);
    /* "Authorization:" with nothing after it: curl sends no such header */
    snprintf(auth, sizeof(auth), "Authorization:%s%s", who != NULL ? " Bearer " : "", who != NULL ? who : "");
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, auth);
    long st = r->status;
    const char *type = jstr(r, "type");
    if (st == 503)
        cr_assert(type != NULL && strcmp(type, "urn:tollgate:problem:query-disabled") == 0, "503 of another kind: %s", r->body);
    if (st == 403)
        cr_assert(type != NULL && strcmp(type, "urn:tollgate:problem:tenant-disabled") == 0, "403 of another kind: %s", r->body);
    resp_free(r);
    return st;
}

/* Polls `g` until `path` answers `want` to `who`, for at most `timeout_s` from `since`; returns how long it took. */
static double wait_answer(const gw_t *g, const char *name, const char *path, const char *who, long want, double since,
                          double timeout_s)
{
    long st;
    while ((st = call(g, path, who)) != want) {
        cr_assert_lt(now_s() - since, timeout_s, "gateway %s still answers %ld (not %ld) to %s %.1f s after the switch", name, st,
                     want, path, timeout_s);
        usleep(20 * 1000);
    }
    return now_s() - since;
}

static void post_switch(const gw_t *g, const char *path, const char *body)
{
    resp_t *r = admin(g, "POST", path, body);
    cr_assert_eq(r->status, 200, "POST %s: %ld %s", path, r->status, r->body);
    resp_free(r);
}

Test(shared, kill_switches_reach_every_instance_and_survive_a_restart)
{
    redis_t rd = {0};
    redis_start(&rd, 0);
    gw_t gws[MAX_GW];
    three_gateways(gws, rd.port, 0); /* the default health interval: switches still travel within a second */
    gw_t *a = &gws[0], *b = &gws[1], *c = &gws[2];
    cr_assert_eq(call(a, PATH, NULL), 200);

    /* off on A: B and C refuse within a second, with A's Retry-After */
    post_switch(a, "/admin/queries/ping/disable", "{\"retry_after_s\": 7, \"reason\": \"test: shared switch\"}");
    double t0 = now_s();
    cr_log_info("query off: B after %.2f s, C after %.2f s", wait_answer(b, "B", PATH, NULL, 503, t0, 1.0),
                wait_answer(c, "C", PATH, NULL, 503, t0, 1.0));
    cr_assert_eq(call(a, PATH, NULL), 503, "A itself switched at once");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->port, PATH);
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, "Authorization:");
    char *retry = resp_header(r, "retry-after");
    cr_assert(retry != NULL && strcmp(retry, "7") == 0, "C's 503 carries A's Retry-After 7 (got %s)",
              retry != NULL ? retry : "none");
    free(retry);
    resp_free(r);
    char *sw = REDIS(rd.port, "HGETALL", "tollgate:switches");
    cr_assert(sw != NULL && strstr(sw, "ping") != NULL, "the switch is in tollgate:switches: %s", sw != NULL ? sw : "(no answer)");
    free(sw);

    /* on again through B: A and C serve within a second */
    post_switch(b, "/admin/queries/ping/enable", NULL);
    t0 = now_s();
    cr_log_info("query on: A after %.2f s, C after %.2f s", wait_answer(a, "A", PATH, NULL, 200, t0, 1.0),
                wait_answer(c, "C", PATH, NULL, 200, t0, 1.0));

    /* off again (the query, and the tenant t), then B restarted while Redis holds both */
    post_switch(a, "/admin/queries/ping/disable", NULL);
    post_switch(a, "/admin/tenants/t/disable", "{\"reason\": \"test: tenant off\"}");
    t0 = now_s();
    wait_answer(b, "B", PATH, NULL, 503, t0, 1.0);
    wait_answer(b, "B", "/limits/sleep?seconds=0", TENANT_KEY, 403, t0, 1.0);
    stop_gateway(b->pid, 10);
    gw_start(b, rd.port, 0, 0);
    t0 = now_s();
    double q = wait_answer(b, "B (restarted)", PATH, NULL, 503, t0, 1.0);
    double t = wait_answer(b, "B (restarted)", "/limits/sleep?seconds=0", TENANT_KEY, 403, t0, 1.0);
    cr_log_info("restarted B: query off after %.2f s, tenant off after %.2f s", q, t);
    json_t *sl = shared_status(b);
    cr_assert_str_eq(jget_str(sl, "state"), "shared");
    json_decref(sl);
    /* and C, which never restarted, still has both */
    cr_assert_eq(call(c, PATH, NULL), 503);
    cr_assert_eq(call(c, "/limits/sleep?seconds=0", TENANT_KEY), 403);
    stop_all(gws, MAX_GW);
    redis_stop(&rd);
}

Test(shared, an_instance_that_never_reaches_redis_limits_at_rate_over_expected_instances)
{
    const double window = 5;
    gw_t g = {0};
    int nobody = free_port(); /* nothing listens there */
    gw_start(&g, nobody, 0, 2);
    /* it never reached Redis: local from the start (within one default health interval), N = expected_instances */
    wait_state(&g, 1, "local", 2, 1.0 + 1.0, NULL);
    json_t *sl = shared_status(&g);
    cr_assert_eq(json_integer_value(json_object_get(sl, "instances")), 0, "it never saw an instance");
    cr_assert(json_is_string(json_object_get(sl, "last_error")), "local with no last_error");
    json_decref(sl);
    cr_assert_eq(metric(&g, "tollgate_shared_limits_up"), 0);
    traffic_t tr;
    int target[] = {0, 0};
    traffic_start(&tr, &g, 1, 2, target);
    usleep((useconds_t)(window * 1e6));
    double ran = traffic_stop(&tr);
    tally_t t = tally(&tr, 0);
    double hi = ceil(BURST / 2) + RATE / 2 * ran + 1, lo = 0.8 * RATE / 2 * ran;
    cr_log_info("no Redis, expected_instances 2: %ld 200 in %.2f s (allowed %.0f to %.0f)", t.ok, ran, lo, hi);
    expect_clean(&tr, 2.0);
    cr_assert_leq(t.ok, hi, "%ld admitted in %.2f s: more than rate / 2", t.ok, ran);
    cr_assert_geq(t.ok, lo, "only %ld admitted in %.2f s", t.ok, ran);
    stop_gateway(g.pid, 10);
}

Test(shared, a_password_is_sent_with_auth_and_never_shown)
{
    redis_t rd = {.password = "Redis-Pw-S3cret"};
    redis_start(&rd, 0);
    char url[128];
    snprintf(url, sizeof(url), "redis://:%s@127.0.0.1:%d/0", rd.password, rd.port);
    gw_t g = {0}, wrong = {0};
    gw_start_with(&g, json_pack("{s:s}", "redis", url));
    wait_state(&g, 1, "shared", 0, 5, NULL);
    resp_t *r = admin(&g, "GET", "/admin/status", NULL);
    cr_assert_null(strstr(r->body, rd.password), "/admin/status shows the Redis password: %s", r->body);
    char shown[128];
    snprintf(shown, sizeof(shown), "\"redis\":\"redis://:***@127.0.0.1:%d/0\"", rd.port);
    cr_assert_not_null(strstr(r->body, shown), "no %s in %s", shown, r->body);
    resp_free(r);
    /* a wrong password: the instance serves, limiting locally, and says why */
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d/0", rd.port);
    gw_start_with(&wrong, json_pack("{s:s}", "redis", url));
    wait_state(&wrong, 1, "local", 1, 2.0, NULL);
    json_t *sl = shared_status(&wrong);
    cr_assert(json_is_string(json_object_get(sl, "last_error")), "local with no last_error");
    json_decref(sl);
    cr_assert_eq(call(&wrong, "/limits/ping", NULL), 200, "an instance whose Redis refuses it still serves");
    stop_gateway(wrong.pid, 10);
    stop_gateway(g.pid, 10);
    redis_stop(&rd);
}

/* `tollgate --check` on a config whose shared_limits is `sl` (JSON text): exit 1 and `want` in its errors */
static void refused(const char *sl, const char *want, const char *also)
{
    gw_opts_t o = {.port = 1};
    json_error_t e;
    json_t *v = json_loads(sl, 0, &e);
    cr_assert_not_null(v, "%s: %s", sl, e.text);
    o.extra = json_pack("{s:o}", "shared_limits", v);
    const char *path = write_config(&o);
    char cmd[1024], err[8192], errfile[] = "/tmp/tollgate-shared-check.XXXXXX";
    int fd = mkstemp(errfile);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "'%s' --config '%s' --check </dev/null >/dev/null 2>'%s'", env("TG_GATEWAY_BIN"), path, errfile);
    int st = system(cmd);
    FILE *f = fopen(errfile, "r");
    size_t n = f != NULL ? fread(err, 1, sizeof(err) - 1, f) : 0;
    err[n] = '\0';
    if (f != NULL)
        fclose(f);
    unlink(errfile);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "shared_limits %s: --check exits %d, not 1: %s", sl, WEXITSTATUS(st), err);
    cr_assert_not_null(strstr(err, want), "shared_limits %s: no \"%s\" in: %s", sl, want, err);
    if (also != NULL)
        cr_assert_not_null(strcasestr(err, also), "shared_limits %s: no \"%s\" in: %s", sl, also, err);
}

Test(shared, check_refuses_bad_shared_limits)
{
    refused("{\"redis\": \"http://x\"}", "shared_limits.redis:", "redis://");
    refused("{\"redis\": \"rediss://x\"}", "shared_limits.redis:", "TLS");
    refused("{\"prefix\": \"p:\"}", "shared_limits.redis:", NULL);
    refused("{\"redis\": \"redis://127.0.0.1:6379/0\", \"lease_msx\": 100}", "shared_limits.lease_msx:", "unknown field");
    refused("{\"redis\": \"redis://127.0.0.1:6379/0\", \"timeout_ms\": 500, \"health_interval_ms\": 500}",
            "shared_limits.timeout_ms:", "health_interval_ms");
    /* and the same config with a good shared_limits passes */
    gw_opts_t o = {.port = 1};
    o.extra = json_pack("{s:{s:s,s:i,s:i}}", "shared_limits", "redis", "redis://127.0.0.1:6379/0", "timeout_ms", 100,
                        "health_interval_ms", 500);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --config '%s' --check >/dev/null 2>&1", env("TG_GATEWAY_BIN"), write_config(&o));
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a good shared_limits checks (exit %d)", WEXITSTATUS(st));
}

/* --- the helpers themselves, on this machine's redis-server and a gateway without shared_limits --- */

TestSuite(shared_helpers, .timeout = 60, .fini = remove_redis_dir);

Test(shared_helpers, redis_starts_answers_dies_and_starts_again_on_its_port)
{
    redis_t rd = {0};
    redis_start(&rd, 0);
    char *v = REDIS(rd.port, "SET", "k", "v a l");
    cr_assert_str_eq(v, "OK");
    free(v);
    v = REDIS(rd.port, "GET", "k");
    cr_assert_str_eq(v, "v a l");
    free(v);
    v = REDIS(rd.port, "HSET", "h", "a", "1", "b", "2");
    cr_assert_str_eq(v, "2");
    free(v);
    v = REDIS(rd.port, "HGETALL", "h");
    cr_assert_str_eq(v, "a\n1\nb\n2");
    free(v);
    v = REDIS(rd.port, "GET", "missing");
    cr_assert_str_eq(v, "(nil)");
    free(v);
    v = REDIS(rd.port, "NOSUCHCOMMAND");
    cr_assert(v != NULL && v[0] == '-', "an error reply: %s", v);
    free(v);
    int port = rd.port;
    redis_kill(&rd);
    redis_start(&rd, port);
    cr_assert_eq(rd.port, port);
    v = REDIS(rd.port, "GET", "k");
    cr_assert_str_eq(v, "(nil)", "no persistence: a restarted Redis is empty");
    free(v);
    redis_stop(&rd);
}

/* the traffic generator against a gateway that limits the tenant alone: rate + burst, exactly counted */
Test(shared_helpers, traffic_counts_a_local_limit)
{
    gw_t g = {0};
    gw_opts_t o = {.admin_port = -1};
    o.extra = json_pack("{s:[{s:s,s:[s],s:f,s:f}]}", "tenants", "name", "t", "keys", key_hash(), "rate", RATE, "burst", BURST);
    g.pid = start_gateway(&o);
    g.port = o.port, g.admin_port = o.admin_port;
    wait_backends_up(15);
    traffic_t tr;
    int target[] = {0, 0, 0};
    traffic_start(&tr, &g, 1, 3, target);
    usleep(3 * 1000 * 1000);
    double ran = traffic_stop(&tr);
    tally_t t = tally(&tr, 0);
    cr_log_info("local limit: %ld 200, %ld 429 in %.2f s", t.ok, t.limited, ran);
    expect_clean(&tr, 2.0);
    cr_assert_leq(t.ok, BURST + RATE * ran + 1);
    cr_assert_geq(t.ok, BURST + 0.8 * RATE * ran, "the full bucket and most of the rate (the clients' start is not all refill)");
    stop_gateway(g.pid, 10);
}

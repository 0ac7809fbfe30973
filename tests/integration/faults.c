/*
 * Network faults between the gateway and its servers, made by tests/faultproxy.c (a
 * loopback proxy in front of a server that blackholes, cuts or refuses on command),
 * and a failover done as an HA tool does it (the primary stops, the replica is
 * promoted, the gateway follows a libpq multi-host primary string). Under a bounded
 * read load, a failed read is any answer that is not the query's own: not 200, or no
 * answer within 5 s. Each test runs its own gateway (health checks every 200 ms,
 * acquire_timeout_ms 500); tests/run.sh runs them one at a time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

/* --- the proxy --- */

typedef struct {
    pid_t pid;
    int port, ctl;
} proxy_t;

/* sends one command; returns the reply line (static) */
static const char *proxy_say(const proxy_t *p, const char *cmd)
{
    static char reply[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->ctl), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return NULL;
    }
    char line[64];
    snprintf(line, sizeof(line), "%s\n", cmd);
    (void)!write(fd, line, strlen(line));
    ssize_t n = read(fd, reply, sizeof(reply) - 1);
    close(fd);
    reply[n > 0 ? n : 0] = '\0';
    return reply;
}

static void proxy(const proxy_t *p, const char *cmd)
{
    const char *r = proxy_say(p, cmd);
    cr_assert(r != NULL && strncmp(r, "ok", 2) == 0, "faultproxy %s: %s", cmd, r != NULL ? r : "no answer");
}

static unsigned long proxy_count(const proxy_t *p)
{
    const char *r = proxy_say(p, "count");
    cr_assert(r != NULL && strncmp(r, "ok ", 3) == 0, "faultproxy count: %s", r != NULL ? r : "no answer");
    return strtoul(r + 3, NULL, 10);
}

/* the port= of a connection string */
static int dsn_port(const char *dsn)
{
    const char *p = strstr(dsn, "port=");
    cr_assert_not_null(p, "%s", dsn);
    return atoi(p + 5);
}

/* `dsn` with its port replaced (malloc'd) */
static char *dsn_on_port(const char *dsn, int port)
{
    const char *p = strstr(dsn, "port=");
    cr_assert_not_null(p);
    size_t digits = strspn(p + 5, "0123456789");
    char *out = NULL;
    cr_assert_gt(asprintf(&out, "%.*sport=%d%s", (int)(p - dsn), dsn, port, p + 5 + digits), 0);
    return out;
}

static proxy_t proxies[2];

static proxy_t *start_proxy(int slot, const char *target_dsn)
{
    proxy_t *p = &proxies[slot];
    p->port = free_port();
    p->ctl = free_port();
    char a1[16], a2[16], a3[16];
    snprintf(a1, sizeof(a1), "%d", p->port);
    snprintf(a2, sizeof(a2), "%d", dsn_port(target_dsn));
    snprintf(a3, sizeof(a3), "%d", p->ctl);
    char *argv[] = {(char *)env("TG_FAULTPROXY_BIN"), a1, a2, a3, NULL};
    p->pid = spawn(argv, 0);
    for (int i = 0; i != 100 && proxy_say(p, "pass") == NULL; ++i)
        usleep(20 * 1000);
    proxy(p, "pass");
    return p;
}

static void stop_proxies(void)
{
    for (int i = 0; i != 2; ++i) {
        if (proxies[i].pid > 0) {
            kill(proxies[i].pid, SIGKILL);
            waitpid(proxies[i].pid, NULL, 0);
        }
        proxies[i] = (proxy_t){0};
    }
}

/* --- reads and writes --- */

/* A bounded read load: a few threads, each one request at a time, for a while. */
struct load {
    double until;
    _Atomic int ok, failed, on_primary;
    char last_error[512];
    pthread_t t[3];
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    for (int i = 0; now_s() < l->until; ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/routing/read", NULL, NULL, NULL);
        if (r->status == 200) {
            ++l->ok;
            if (!json_is_true(json_object_get(r->json, "in_recovery")))
                ++l->on_primary;
        } else {
            ++l->failed;
            snprintf(l->last_error, sizeof(l->last_error), "%ld %s", r->status, r->status == 0 ? "(no answer within 5 s)" : r->body);
        }
        resp_free(r);
        usleep(2000);
    }
    return NULL;
}

static void load_start(struct load *l, double seconds)
{
    l->until = now_s() + seconds;
    for (int i = 0; i != 3; ++i)
        pthread_create(&l->t[i], NULL, load_main, l);
}

static void load_join_expect_no_failure(struct load *l, const char *what)
{
    for (int i = 0; i != 3; ++i)
        pthread_join(l->t[i], NULL);
    cr_assert_gt(l->ok, 100, "%s: the load did not run (%d ok)", what, l->ok);
    cr_assert_eq(l->failed, 0, "%s: %d of %d reads failed; last: %s", what, l->failed, l->ok + l->failed, l->last_error);
}

/* POST /routing/write: the status, and how long it took */
static long write_once(proto_t p, double *took)
{
    double t0 = now_s();
    resp_t *r = http(p, "POST", "/routing/write", NULL, NULL, NULL);
    long st = r->status;
    if (st == 503) {
        char *ra = resp_header(r, "retry-after");
        cr_assert_not_null(ra, "a 503 without Retry-After: %s", r->body);
        free(ra);
    }
    resp_free(r);
    if (took != NULL)
        *took = now_s() - t0;
    return st;
}

static void wait_writes_back(double timeout_s)
{
    double until = now_s() + timeout_s;
    int in_a_row = 0;
    long st = 0;
    while (now_s() < until && in_a_row < 5) {
        st = write_once(PROTOS[in_a_row % 2], NULL);
        in_a_row = st == 200 ? in_a_row + 1 : 0;
        if (st != 200)
            usleep(100 * 1000);
    }
    cr_assert_eq(in_a_row, 5, "writes did not come back within %.0f s (last %ld)", timeout_s, st);
}

/*
 * A gateway with one server behind a new proxy (`which`: the replica or the
 * primary), `o` completing its config; waits until reads are on the replica.
 * *via is the connection string through the proxy (freed by the caller).
 */
static pid_t gateway_behind_proxy(const char *which, gw_opts_t *o, proxy_t **px, char **via)
{
    int replica = strcmp(which, "replica") == 0;
    const char *dsn = env(replica ? "TG_REPLICA_DSN" : "TG_PRIMARY_DSN");
    *px = start_proxy(0, dsn);
    *via = dsn_on_port(dsn, (*px)->port);
    o->with_replica = 1;
    if (replica)
        o->replica = *via;
    else
        o->primary = *via;
    pid_t pid = start_gateway(o);
    wait_reads_on(1, 10);
    return pid;
}

static void init_suite(void)
{
    http_timeout_s = 5; /* no answer within 5 s is a failed call */
}

TestSuite(faults, .init = init_suite, .fini = stop_proxies);

/* A replica that stops answering (its packets dropped) mid-load: reads move to the primary, none fails, and come back. */
Test(faults, replica_blackholed_under_read_load, .timeout = 90)
{
    proxy_t *px;
    char *via;
    gw_opts_t o = {0};
    pid_t pid = gateway_behind_proxy("replica", &o, &px, &via);
    struct load l = {0};
    load_start(&l, 6);
    usleep(1500 * 1000);
    proxy(px, "blackhole");
    usleep(3000 * 1000);
    proxy(px, "pass");
    load_join_expect_no_failure(&l, "replica blackholed");
    cr_assert_gt(l.on_primary, 0, "reads should have moved to the primary while the replica was silent");
    wait_reads_on(1, 15);
    stop_gateway(pid, 5);
    free(via);
}

/* Every connection to the replica reset, three times over: no read fails. */
Test(faults, replica_connections_cut_under_read_load, .timeout = 90)
{
    proxy_t *px;
    char *via;
    gw_opts_t o = {0};
    pid_t pid = gateway_behind_proxy("replica", &o, &px, &via);
    struct load l = {0};
    load_start(&l, 5);
    for (int i = 0; i != 3; ++i) {
        usleep(1000 * 1000);
        proxy(px, "cut");
    }
    load_join_expect_no_failure(&l, "replica connections cut");
    wait_reads_on(1, 10);
    stop_gateway(pid, 5);
    free(via);
}

struct pending_write {
    pthread_t t;
    long status;
    double took;
};

static void *write_main(void *arg)
{
    struct pending_write *w = arg;
    w->status = write_once(PROTO_H2, &w->took);
    return NULL;
}

/*
 * The primary blackholed: writes answer 503 (with Retry-After) within the acquire
 * timeout (the one already sent: "outcome unknown", once the primary has passed no
 * health check for tg_health_silent_ms: 2 s connect + 1 s check + 200 ms + 250 ms here);
 * reads go on on the replica and never wait behind a write; writes come back. One
 * worker thread, so that the write that waits and the read share one pool.
 */
Test(faults, primary_blackholed_writes_503_reads_go_on, .timeout = 90)
{
    proxy_t *px;
    char *via;
    gw_opts_t o = {.threads = 1};
    pid_t pid = gateway_behind_proxy("primary", &o, &px, &via);
    cr_assert_eq(write_once(PROTO_H1, NULL), 200);
    struct load l = {0};
    load_start(&l, 8);
    usleep(500 * 1000);
    proxy(px, "blackhole");
    double t0 = now_s();
    for (int i = 0; now_s() < t0 + 5; ++i) {
        double took;
        long st = write_once(PROTOS[i % 2], &took);
        cr_assert_eq(st, 503, "write %d with the primary blackholed: %ld", i, st);
        /*
         * The first was sent on a connection: it ends when the primary has been silent
         * to its health checks for long enough, and the idle connections are closed
         * with it; the others wait for a connection (the new ones hang) and time out.
         */
        cr_assert_lt(took, i == 0 ? 2.0 + 1.0 + 0.2 + 0.25 + 0.5 : 0.5 + 0.4, "write %d took %.2f s", i, took);
        /* a write waiting for the primary meanwhile does not hold reads back */
        struct pending_write w = {0};
        pthread_create(&w.t, NULL, write_main, &w);
        usleep(50 * 1000);
        double r0 = now_s();
        cr_assert_eq(read_hits_replica(PROTO_H2), 1);
        cr_assert_lt(now_s() - r0, 0.3, "a read waited %.2f s behind a write bound for the silent primary", now_s() - r0);
        pthread_join(w.t, NULL);
        cr_assert_eq(w.status, 503);
    }
    proxy(px, "pass");
    load_join_expect_no_failure(&l, "primary blackholed");
    wait_writes_back(15);
    stop_gateway(pid, 5);
    free(via);
}

/*
 * A replica that keeps the health checker's session but refuses new connections (as
 * at max_connections): the pool that lost a connection probes it with backoff, not a
 * storm, and reads stay on the replica (on the connections left) instead of flapping.
 */
Test(faults, a_replica_refusing_new_connections_is_probed_not_stormed, .timeout = 90)
{
    proxy_t *px;
    char *via;
    gw_opts_t o = {0};
    pid_t pid = gateway_behind_proxy("replica", &o, &px, &via);
    proxy(px, "reject");
    unsigned long before = proxy_count(px);
    free(pg_sql(1, "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity WHERE application_name = 'tollgate' "
                   "LIMIT 1) s"));
    /* a read sent on the dying session at that moment is rightly retried on the primary: let the gateway see it end first */
    usleep(200 * 1000);
    double until = now_s() + 5;
    int reads = 0;
    while (now_s() < until) {
        int v = read_hits_replica(PROTOS[reads % 2]);
        cr_assert_eq(v, 1, "read %d did not come from the replica (%d): reads flapped", reads, v);
        ++reads;
        usleep(20 * 1000);
    }
    unsigned long attempts = proxy_count(px) - before;
    /* one thread's backoff from 100 ms doubling (+-25%): about 6 attempts in 5 s; a reset per health pass would be 25+ */
    cr_assert_leq(attempts, 10, "%lu connection attempts in 5 s", attempts);
    cr_assert_geq(attempts, 2, "the lost connection was not even retried (%lu)", attempts);
    proxy(px, "pass");
    stop_gateway(pid, 5);
    free(via);
}

/* a libpq multi-host primary string over two loopback ports, the first tried first, as an HA setup gives it */
static void multi_host_primary(char *out, size_t size, int first, int second)
{
    const char *rest = strstr(env("TG_PRIMARY_DSN"), "dbname=");
    cr_assert_not_null(rest);
    snprintf(out, size, "host=127.0.0.1,127.0.0.1 port=%d,%d %s target_session_attrs=read-write", first, second, rest);
}

/* Writes over `p` answer 200 within `timeout_s` (tried every `pause_ms`), run by the server on `port`: the promoted one. */
static void expect_writes_on(int port, proto_t p, double timeout_s, int pause_ms)
{
    double until = now_s() + timeout_s;
    long st = 0;
    resp_t *r = NULL;
    while (now_s() < until) {
        r = http(p, "POST", "/routing/write", NULL, NULL, NULL);
        if ((st = r->status) == 200)
            break;
        resp_free(r);
        r = NULL;
        usleep((useconds_t)pause_ms * 1000);
    }
    cr_assert_eq(st, 200, "writes did not resume on the promoted server within %.0f s", timeout_s);
    long long ran_on = json_integer_value(json_object_get(r->json, "port"));
    resp_free(r);
    cr_assert_eq(ran_on, port, "the write ran on port %lld, not the promoted server's %d", ran_on, port);
}

/* Whatever the test did, the primary runs and the replica streams from it again. */
static void rebuild_replica(void)
{
    char line[512];
    snprintf(line, sizeof(line), "%s rebuild-replica >/dev/null 2>&1", getenv("TG_PG_SCRIPT") != NULL ? getenv("TG_PG_SCRIPT") : "false");
    (void)system(line);
}

/*
 * Failover by an HA tool: the primary stops, the replica is promoted. With a libpq
 * multi-host primary string the gateway's writes resume on the promoted server, and
 * reads never fail meanwhile (the promoted server serves them while the primary
 * pool reconnects). Its fini rebuilds the replica from the old primary.
 */
Test(failover, promotion_followed_by_a_multi_host_primary, .timeout = 180, .fini = rebuild_replica)
{
    int rport = dsn_port(env("TG_REPLICA_DSN"));
    char primary[512];
    multi_host_primary(primary, sizeof(primary), dsn_port(env("TG_PRIMARY_DSN")), rport);
    http_timeout_s = 5;
    gw_opts_t o = {.with_replica = 1, .primary = primary};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 10);
    cr_assert_eq(write_once(PROTO_H1, NULL), 200);
    struct load l = {0};
    load_start(&l, 8);
    usleep(1000 * 1000);
    pg_script("stop-primary");
    usleep(500 * 1000);
    pg_script("promote-replica");
    expect_writes_on(rport, PROTOS[0], 10, 100);
    load_join_expect_no_failure(&l, "promotion");
    stop_gateway(pid, 5);
}

/*
 * The same failover with a first host that is dead, not refusing (its packets are
 * dropped: here a blackholed proxy): libpq's non-blocking connect has no timeout of
 * its own and would wait on it for ever; after the pool's connect timeout the host list
 * starts one further on, and writes resume on the promoted server.
 */
Test(failover, promotion_past_a_dead_first_host, .timeout = 180, .fini = rebuild_replica)
{
    proxy_t *px = start_proxy(1, env("TG_PRIMARY_DSN"));
    int rport = dsn_port(env("TG_REPLICA_DSN"));
    char primary[512];
    multi_host_primary(primary, sizeof(primary), px->port, rport);
    http_timeout_s = 5;
    gw_opts_t o = {.with_replica = 1, .primary = primary};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 10);
    cr_assert_eq(write_once(PROTO_H1, NULL), 200);
    proxy(px, "blackhole"); /* the primary's machine dies: nothing comes back */
    pg_script("stop-primary");
    pg_script("promote-replica");
    expect_writes_on(rport, PROTOS[1], 25, 200);
    stop_gateway(pid, 10);
}

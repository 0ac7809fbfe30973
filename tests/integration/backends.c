/*
 * Where requests go, against a real primary and streaming replica: reads on the
 * replica and writes on the primary, a replica or the primary killed, a lagging
 * replica, an exhausted pool, and a client that leaves in the middle of a query.
 * Each test runs its own gateway (health checks every 200 ms, replica_max_lag_ms
 * 1000, acquire_timeout_ms 500) and may stop and start the servers, so tests/run.sh
 * runs these one at a time after the API suite.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"
#include "tollgate/consistency.h"

Test(routing, reads_on_the_replica_writes_on_the_primary, .timeout = 60)
{
    gw_opts_t o = {.with_replica = 1};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 5);
    for (int i = 0; i != 2; ++i)
        for (int n = 0; n != 10; ++n) {
            cr_assert_eq(read_hits_replica(PROTOS[i]), 1, "[%s] a read went to the primary", proto_name(PROTOS[i]));
            resp_t *r = http(PROTOS[i], "POST", "/routing/write", NULL, NULL, NULL);
            cr_assert_eq(r->status, 200, "%s", r->body);
            cr_assert(json_is_false(json_object_get(r->json, "in_recovery")), "[%s] a write went to the replica",
                      proto_name(PROTOS[i]));
            resp_free(r);
        }
    /* /readyz names both backends and says the replica is up. */
    resp_t *r = http(PROTO_H1, "GET", "/readyz", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    json_t *b = json_object_get(r->json, "backends");
    cr_assert_eq(json_array_size(b), 2, "%s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(b, 1), "state")), "up", "%s", r->body);
    cr_assert(json_is_integer(json_object_get(json_array_get(b, 1), "lag_ms")), "%s", r->body);
    resp_free(r);
    stop_gateway(pid, 5);
}

Test(routing, without_replicas_reads_use_the_primary, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start_gateway(&o);
    double until = now_s() + 5;
    int v;
    while ((v = read_hits_replica(PROTO_H2)) == -1 && now_s() < until)
        usleep(50000);
    for (int i = 0; i != 10; ++i)
        cr_assert_eq(read_hits_replica(PROTOS[i % 2]), 0);
    stop_gateway(pid, 5);
}

/* A bounded read load in a thread: counts answers that were not 200. */
struct load {
    double until;
    _Atomic int ok, failed;
    char last_error[512];
};

static void *read_load(void *arg)
{
    struct load *l = arg;
    for (int i = 0; now_s() < l->until; ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/routing/read", NULL, NULL, NULL);
        if (r->status == 200) {
            ++l->ok;
        } else {
            ++l->failed;
            snprintf(l->last_error, sizeof(l->last_error), "%ld %s", r->status, r->body);
        }
        resp_free(r);
        usleep(2000);
    }
    return NULL;
}

Test(failover, replica_killed_under_read_load, .timeout = 90)
{
    gw_opts_t o = {.with_replica = 1};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 5);
    struct load l = {.until = now_s() + 4};
    pthread_t t[2];
    for (int i = 0; i != 2; ++i)
        pthread_create(&t[i], NULL, read_load, &l);
    usleep(1000000);
    pg_script("stop-replica");
    for (int i = 0; i != 2; ++i)
        pthread_join(t[i], NULL);
    cr_assert_gt(l.ok, 100, "the load did not run (%d ok)", l.ok);
    cr_assert_eq(l.failed, 0, "%d of %d reads failed while the replica died; last: %s", l.failed, l.ok + l.failed, l.last_error);
    cr_assert_eq(read_hits_replica(PROTO_H2), 0, "with the replica down, reads are served by the primary");
    pg_script("start-replica");
    /* Back within a few health intervals (200 ms) plus the replica's own start. */
    wait_reads_on(1, 10);
    stop_gateway(pid, 5);
}

/* A catalog folder of its own: a read only, or a read and a write. */
static const char *catalog_of(int with_write)
{
    static char dir[128];
    char path[200];
    snprintf(dir, sizeof(dir), "/tmp/tollgate-backends-%d-%d", (int)getpid(), with_write);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/catalog.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"queries\": [{\"name\": \"where_read\", \"route\": \"GET /routing/read\", \"sql\": \"SELECT pg_is_in_recovery() AS "
               "in_recovery\", \"returns\": \"one\", \"access\": \"read\"}%s]}",
            with_write ? ", {\"name\": \"where_write\", \"route\": \"POST /routing/write\", \"sql\": \"SELECT 1 AS ok\", "
                         "\"returns\": \"one\", \"access\": \"write\"}"
                       : "");
    fclose(f);
    return dir;
}

static long readyz(json_t **body)
{
    resp_t *r = http(PROTO_H1, "GET", "/readyz", NULL, NULL, NULL);
    long st = r->status;
    if (body != NULL)
        *body = json_incref(r->json);
    resp_free(r);
    return st;
}

static void restart_primary(void)
{
    /* whatever the test did, the primary is up for the next one */
    char line[512];
    snprintf(line, sizeof(line), "%s start-primary >/dev/null 2>&1", getenv("TG_PG_SCRIPT") != NULL ? getenv("TG_PG_SCRIPT") : "false");
    (void)system(line);
}

Test(failover, replicas_serve_reads_when_the_primary_was_down_from_the_start, .timeout = 90, .fini = restart_primary)
{
    pg_script("stop-primary");
    /* a read-only catalog: ready on the replica alone */
    gw_opts_t o = {.with_replica = 1, .catalog = catalog_of(0)};
    pid_t pid = start_gateway(&o);
    double until = now_s() + 10;
    json_t *body = NULL;
    while (readyz(NULL) != 200 && now_s() < until)
        usleep(100 * 1000);
    cr_assert_eq(readyz(&body), 200, "a read-only catalog with a usable replica is ready");
    char *text = json_dumps(body, 0);
    cr_assert_not_null(strstr(text, "\"down\": [\"primary\"]"), "names the backend that is down: %s", text);
    cr_assert_not_null(strstr(text, "\"lag\": \"primary-unreachable\""), "%s", text);
    free(text);
    json_decref(body);
    /* at once: a thread whose own replica connection is still opening waits for it rather than fail on the down primary */
    for (int i = 0; i != 10; ++i)
        cr_assert_eq(read_hits_replica(PROTOS[i % 2]), 1, "reads are served by the replica");
    stop_gateway(pid, 5);

    /* with writes: reads served, writes 503 with Retry-After, not ready; then the primary comes and writes are served */
    gw_opts_t w = {.with_replica = 1, .catalog = catalog_of(1)};
    pid = start_gateway(&w);
    until = now_s() + 10;
    while (read_hits_replica(PROTO_H2) != 1 && now_s() < until)
        usleep(100 * 1000);
    cr_assert_eq(read_hits_replica(PROTO_H1), 1);
    cr_assert_eq(readyz(NULL), 503, "writes cannot be served: not ready");
    resp_t *r = http(PROTO_H2, "POST", "/routing/write", NULL, NULL, NULL);
    cr_assert_eq(r->status, 503, "%s", r->body);
    char *ra = resp_header(r, "retry-after");
    cr_assert_not_null(ra);
    free(ra);
    resp_free(r);
    pg_script("start-primary");
    until = now_s() + 15;
    long st = 0;
    while (now_s() < until) {
        r = http(PROTO_H1, "POST", "/routing/write", NULL, NULL, NULL);
        st = r->status;
        resp_free(r);
        if (st == 200)
            break;
        usleep(100 * 1000);
    }
    cr_assert_eq(st, 200, "writes are served once the primary is up, without a restart");
    until = now_s() + 10;
    while (readyz(NULL) != 200 && now_s() < until)
        usleep(100 * 1000);
    cr_assert_eq(readyz(NULL), 200);
    stop_gateway(pid, 5);
}

Test(failover, primary_killed, .timeout = 90)
{
    gw_opts_t o = {.with_replica = 1};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 5);
    pg_script("stop-primary");
    for (int i = 0; i != 2; ++i) {
        double t0 = now_s();
        resp_t *r = http(PROTOS[i], "POST", "/routing/write", NULL, NULL, NULL);
        double took = now_s() - t0;
        cr_assert_eq(r->status, 503, "[%s] a write with the primary down: %ld %s", proto_name(PROTOS[i]), r->status, r->body);
        cr_assert_lt(took, 0.5 + 0.3, "[%s] the 503 took %.2f s, more than acquire_timeout_ms", proto_name(PROTOS[i]), took);
        char *ra = resp_header(r, "retry-after");
        cr_assert_not_null(ra, "503 without Retry-After");
        free(ra);
        resp_free(r);
        /* Reads go on, on the replica. */
        for (int n = 0; n != 10; ++n)
            cr_assert_eq(read_hits_replica(PROTOS[i]), 1, "[%s] reads stopped with the primary down", proto_name(PROTOS[i]));
    }
    pg_script("start-primary");
    double until = now_s() + 15;
    long st = 0;
    int in_a_row = 0;
    while (now_s() < until && in_a_row < 10) {
        resp_t *r = http(PROTOS[in_a_row % 2], "POST", "/routing/write", NULL, NULL, NULL);
        st = r->status;
        resp_free(r);
        in_a_row = st == 200 ? in_a_row + 1 : 0;
        if (st != 200)
            usleep(100000);
    }
    cr_assert_eq(in_a_row, 10, "writes did not come back after the primary restarted (last %ld)", st);
    stop_gateway(pid, 5);
}

Test(lag, reads_leave_a_lagging_replica_and_come_back, .timeout = 90)
{
    gw_opts_t o = {.with_replica = 1, .max_lag_ms = 1000};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 5);
    free(pg_sql(1, "SELECT pg_wal_replay_pause()"));
    /* WAL the replica will not replay. */
    free(pg_sql(0, "CREATE TABLE IF NOT EXISTS lag_probe (n int); INSERT INTO lag_probe VALUES (1)"));
    double t0 = now_s();
    /* Within the lag bound, reads may stay; past it (plus a health interval or two) they must leave. */
    wait_reads_on(0, 5);
    cr_assert_gt(now_s() - t0, 0.5, "reads left the replica long before its lag reached replica_max_lag_ms");
    resp_t *r = http(PROTO_H1, "GET", "/readyz", NULL, NULL, NULL);
    json_t *lag = json_object_get(json_array_get(json_object_get(r->json, "backends"), 1), "lag_ms");
    cr_assert(json_integer_value(lag) > 1000, "readyz shows the lag: %s", r->body);
    resp_free(r);
    free(pg_sql(1, "SELECT pg_wal_replay_resume()"));
    wait_reads_on(1, 5);
    free(pg_sql(0, "DROP TABLE lag_probe"));
    stop_gateway(pid, 5);
}

/* More concurrent slow calls than connections: the extra ones get 503 after acquire_timeout_ms. */
Test(pool, exhaustion_answers_503_and_the_pool_recovers, .timeout = 60)
{
    gw_opts_t o = {.pool_size = 2, .acquire_timeout_ms = 500}; /* one connection per thread */
    pid_t pid = start_gateway(&o);
    /* Measure the sleep once, so the pool knows it is slow and will not pipeline behind it. */
    resp_t *warm = http(PROTO_H2, "POST", "/limits/sleep", "{\"seconds\": 1.5}", "application/json", NULL);
    cr_assert_eq(warm->status, 200, "%s", warm->body);
    resp_free(warm);
    enum { N = 6 };
    double t0 = now_s();
    int busy = concurrent(N, "POST", "/limits/sleep", "{\"seconds\": 1.5}", NULL, 503, "urn:tollgate:problem:pool-timeout");
    int ok = N - busy;
    cr_assert_lt(now_s() - t0, 5, "nothing may wait beyond its timeouts");
    cr_assert_geq(ok, 1, "the connections served some");
    cr_assert_geq(busy, 1, "more calls than connections must be refused, not queued forever");
    /* The pool is whole afterwards: every connection serves again. */
    for (int i = 0; i != 10; ++i) {
        resp_t *r = http(PROTOS[i % 2], "POST", "/limits/sleep", "{\"seconds\": 0}", "application/json", NULL);
        cr_assert_eq(r->status, 200, "after exhaustion: %ld %s", r->status, r->body);
        resp_free(r);
    }
    stop_gateway(pid, 5);
}

/* How many pg_sleep calls of the gateway's are running on the primary. */
static int running_sleeps(void)
{
    char *n = pg_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tollgate' AND state = 'active' "
                        "AND query LIKE '%pg_sleep%'");
    int v = atoi(n);
    free(n);
    return v;
}

Test(cancel, a_client_that_leaves_cancels_its_query, .timeout = 60)
{
    gw_opts_t o = {.pool_size = 2};
    pid_t pid = start_gateway(&o);
    /* Over HTTP/2 the stream is reset; the gateway must cancel the statement on the server. */
    resp_t *r = http(PROTO_H2, "POST", "/limits/sleep", "{\"seconds\": 0}", "application/json", NULL);
    cr_assert_eq(r->status, 200);
    resp_free(r);
    /* HTTP/2 resets the stream; an HTTP/1.1 client just closes its connection. */
    for (int i = 0; i != 2; ++i) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd),
                 "curl -s %s -m 0.5 -H 'Content-Type: application/json' -d '{\"seconds\": 10}' %s/limits/sleep >/dev/null 2>&1",
                 i == 0 ? "--http2-prior-knowledge" : "--http1.1", getenv("TG_URL"));
        system(cmd);
        double t0 = now_s();
        while (running_sleeps() > 0 && now_s() - t0 < 3)
            usleep(50000);
        double gone = now_s() - t0;
        cr_assert_eq(running_sleeps(), 0, "[%s] the abandoned pg_sleep(10) still runs", i == 0 ? "HTTP/2" : "HTTP/1.1");
        cr_assert_lt(gone, 1.0, "[%s] the query was cancelled only after %.2f s", i == 0 ? "HTTP/2" : "HTTP/1.1", gone);
    }
    /* The connection it ran on is clean: the next calls succeed. */
    for (int i = 0; i != 6; ++i) {
        r = http(PROTOS[i % 2], "POST", "/limits/sleep", "{\"seconds\": 0}", "application/json", NULL);
        cr_assert_eq(r->status, 200, "after a cancel: %ld %s", r->status, r->body);
        resp_free(r);
    }
    stop_gateway(pid, 5);
}

/* Sends `request` over HTTP/1.1 on a socket of its own, shuts down writing, and reads until EOF (at most 10 s). */
static char *h1_half_closed(const char *request)
{
    const char *url = getenv("TG_URL");
    int port = atoi(strrchr(url, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    shutdown(fd, SHUT_WR);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    static char buf[8192];
    size_t n = 0;
    for (ssize_t r; n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0;)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
    return buf;
}

/*
 * HTTP/1.1 lets a client shut down its sending side after the request and still read
 * the answer: such a client is not taken for gone (it is sent an interim 102, then
 * its answer), and its query is not cancelled. One that really closed was covered above.
 */
Test(cancel, a_half_closed_http1_client_gets_its_answer, .timeout = 60)
{
    gw_opts_t o = {.pool_size = 2};
    pid_t pid = start_gateway(&o);
    const char *got = h1_half_closed("GET /limits/sleep?seconds=1 HTTP/1.1\r\nHost: tollgate\r\nConnection: close\r\n\r\n");
    cr_assert_not_null(strstr(got, "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 "), "%s", got);
    cr_assert_not_null(strstr(got, "\r\n\r\n{\"slept\":true}"), "the answer's body: %s", got);
    /* HTTP/1.0 has no 1xx: a FIN from it still means gone (its query is cancelled, nothing is answered) */
    double t0 = now_s();
    got = h1_half_closed("GET /limits/sleep?seconds=5 HTTP/1.0\r\nHost: tollgate\r\n\r\n");
    cr_assert(strncmp(got, "HTTP/1.", 7) != 0 || atoi(got + 9) != 200, "%s", got);
    cr_assert_eq(strstr(got, "102 Processing"), NULL, "no 1xx for HTTP/1.0: %s", got);
    while (running_sleeps() > 0 && now_s() - t0 < 3)
        usleep(50000);
    cr_assert_eq(running_sleeps(), 0);
    cr_assert_lt(now_s() - t0, 2, "the HTTP/1.0 client's query was not cancelled");
    stop_gateway(pid, 5);
}

/*
 * The log is one record a line: a database error's several lines, and the notice a
 * server sends its sessions when it shuts down (to the health checker's session too),
 * come out as single timestamped lines, never raw or blank. Lines about a call name
 * its request id, and at debug level every answered call has one.
 */
Test(logs, one_record_a_line_and_the_request_id_in_it, .timeout = 60, .fini = restart_primary)
{
    char log[128];
    snprintf(log, sizeof(log), "/tmp/tollgate-log-test-%d.log", (int)getpid());
    gw_opts_t o = {.log_path = log};
    setenv("TOLLGATE_LOG", "debug", 1);
    pid_t pid = start_gateway(&o);
    unsetenv("TOLLGATE_LOG");
    /* a server restarted by the test before may still be starting: wait until the gateway is ready */
    double until = now_s() + 15;
    while (readyz(NULL) != 200 && now_s() < until)
        usleep(100 * 1000);
    cr_assert_eq(readyz(NULL), 200);
    resp_t *r = http(PROTO_H1, "GET", "/errors/other", NULL, NULL, "X-Request-Id: probe-error-1");
    cr_assert_eq(r->status, 500, "%s", r->body);
    resp_free(r);
    r = http(PROTO_H2, "GET", "/errors/secret?v=pa55-w0rd-in-a-row", NULL, NULL, "X-Request-Id: probe-error-3");
    cr_assert_eq(r->status, 500, "%s", r->body);
    cr_assert_null(strstr(r->body, "pa55"), "the value reached the answer: %s", r->body);
    resp_free(r);
    r = http(PROTO_H2, "GET", "/routing/read", NULL, NULL, "X-Request-Id: probe-read-2");
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    pg_script("stop-primary");
    usleep(1000 * 1000); /* the checker's next round reads what its session got */
    pg_script("start-primary");
    stop_gateway(pid, 5);
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0, error_line = 0, call_line = 0, notice_line = 0, secret_line = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        ++n;
        cr_assert(strncmp(line, "20", 2) == 0 && strstr(line, "Z tollgate ") != NULL, "line %d is not a log record: [%s]", n, line);
        if (strstr(line, "error: request probe-error-1: query error_other failed: 21000") != NULL)
            error_line = 1;
        if (strstr(line, "error: request probe-error-3: query error_secret failed: P0001") != NULL)
            secret_line = 1;
        cr_assert_null(strstr(line, "pa55"), "a value from a server message reached the log: [%s]", line);
        if (strstr(line, "warn: primary: server WARNING 57P01 (health check session)") != NULL)
            notice_line = 1; /* "terminating connection due to immediate shutdown command", as its SQLSTATE only */
        if (strstr(line, ": server ") != NULL) /* notices, not libpq's connection errors (their first line is logged) */
            cr_assert_null(strstr(line, "terminating connection"), "a server notice's text reached the log: [%s]", line);
        if (strstr(line, "debug: request probe-read-2: GET /routing/read query=where_read tenant=anonymous backend=primary status=200 "
                         "total_ms=") != NULL &&
            strstr(line, " db_ms=") != NULL)
            call_line = 1;
    }
    fclose(f);
    unlink(log);
    cr_assert(error_line, "the database error was not logged on its line, with its request id");
    cr_assert(secret_line, "the raised exception was not logged with its SQLSTATE");
    cr_assert(call_line, "no debug line for the call, with its request id, tenant, backend and status");
    cr_assert(notice_line, "the shutdown's WARNING to the health checker's session was not logged as a record");
}

/* ---- limits that need a gateway of their own ---- */

Test(limits, anonymous_callers_get_their_own_bucket, .timeout = 30)
{
    gw_opts_t o = {.anonymous_rate = 1, .anonymous_burst = 2};
    pid_t pid = start_gateway(&o);
    int ok = 0, limited = 0;
    for (int i = 0; i != 4; ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/limits/ping", NULL, NULL, NULL);
        char *policy = resp_header(r, "ratelimit-policy");
        cr_assert_not_null(policy);
        cr_assert_str_eq(policy, "\"tenant\";q=2;w=2");
        free(policy);
        if (r->status == 200)
            ++ok;
        else if (r->status == 429)
            ++limited;
        resp_free(r);
    }
    cr_assert_eq(ok, 2, "a keyless caller is served as \"anonymous\", burst 2");
    cr_assert_eq(limited, 2);
    stop_gateway(pid, 5);
}


Test(limits, anonymous_callers_have_their_own_query_list, .timeout = 30)
{
    gw_opts_t o = {.anonymous_queries = json_pack("[s,s]", "pi*", "notes_mine")};
    pid_t pid = start_gateway(&o);
    for (int i = 0; i != 2; ++i) {
        resp_t *r = http(PROTOS[i], "GET", "/limits/ping", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "a prefix pattern (pi*) lets anonymous call ping: %s", r->body);
        resp_free(r);
        r = http(PROTOS[i], "POST", "/echo/scalars", "{}", "application/json", NULL);
        cr_assert_eq(r->status, 403, "not on anonymous's list: %s", r->body);
        cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:forbidden");
        resp_free(r);
        /* bound to the tenant "anonymous": its rows only */
        r = http(PROTOS[i], "GET", "/notes/mine", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "%s", r->body);
        cr_assert_str_eq(r->body, "[{\"note\":\"n1\"}]");
        resp_free(r);
    }
    stop_gateway(pid, 5);
}

Test(limits, gateway_in_flight_cap_answers_503, .timeout = 30)
{
    gw_opts_t o = {.max_in_flight = 2};
    pid_t pid = start_gateway(&o);
    int busy = concurrent(4, "GET", "/limits/sleep?seconds=1", NULL, NULL, 503, "urn:tollgate:problem:overloaded");
    int ok = 4 - busy;
    cr_assert_eq(ok, 2);
    cr_assert_eq(busy, 2);
    stop_gateway(pid, 5);
}

/* A low-priority flood of slow calls; high-priority calls must keep finding a connection. */
static void *low_flood(void *arg)
{
    return http(PROTO_H2, "GET", "/limits/low?seconds=1.5", NULL, NULL, NULL);
}

Test(limits, low_priority_never_takes_every_connection, .timeout = 60)
{
    /* 4 connections to the primary (2 per thread); low work may hold half of them. */
    gw_opts_t o = {.pool_size = 4, .low_priority_share = 0.5, .acquire_timeout_ms = 3000};
    pid_t pid = start_gateway(&o);
    /* Teach the pool that the low query is slow, so it does not pipeline behind it. */
    resp_t *warm = http(PROTO_H2, "GET", "/limits/low?seconds=0.3", NULL, NULL, NULL);
    cr_assert_eq(warm->status, 200, "%s", warm->body);
    resp_free(warm);
    enum { N = 8 };
    pthread_t t[N];
    for (int i = 0; i != N; ++i)
        pthread_create(&t[i], NULL, low_flood, NULL);
    usleep(300000);
    /* While the flood runs, high-priority writes are served at once. */
    for (int i = 0; i != 10; ++i) {
        double t0 = now_s();
        resp_t *r = http(PROTOS[i % 2], "POST", "/limits/sleep", "{\"seconds\": 0}", "application/json", NULL);
        double took = now_s() - t0;
        cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
        cr_assert_lt(took, 0.5, "a high-priority call waited %.2f s behind low-priority work", took);
        resp_free(r);
    }
    for (int i = 0; i != N; ++i) {
        resp_t *r;
        pthread_join(t[i], (void **)&r);
        cr_assert(r->status == 200 || r->status == 503, "%ld %s", r->status, r->body);
        resp_free(r);
    }
    stop_gateway(pid, 5);
}

static pid_t stopped_backend;

/* Whatever happened in the test, the stopped server process runs again. */
static void resume_backend(void)
{
    if (stopped_backend > 0)
        kill(stopped_backend, SIGCONT);
}

/* A server that stops answering (its process stopped) must not hold health checks, routing or shutdown. */
Test(failover, a_hung_replica_is_dropped_and_does_not_hold_shutdown, .timeout = 60, .fini = resume_backend)
{
    gw_opts_t o = {.with_replica = 1, .grace_ms = 1000};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 5);
    char *hp = NULL;
    for (int i = 0; i != 50 && hp == NULL; ++i) {
        hp = pg_sql(1, "SELECT pid FROM pg_stat_activity WHERE application_name = 'tollgate-health'");
        if (hp == NULL)
            usleep(100000);
    }
    cr_assert_not_null(hp, "no health-check session on the replica");
    pid_t backend = stopped_backend = atoi(hp);
    free(hp);
    kill(backend, SIGSTOP);
    /* Within a few health intervals (200 ms) plus the check's own timeout (1 s), reads leave it. */
    double t0 = now_s();
    wait_reads_on(0, 6);
    resp_t *r = http(PROTO_H1, "GET", "/readyz", NULL, NULL, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r->json, "backends"), 1), "state")), "down",
                     "%s", r->body);
    resp_free(r);
    t0 = now_s();
    kill(pid, SIGTERM);
    int rc = wait_exit(pid, 8);
    kill(backend, SIGCONT);
    cr_assert_eq(rc, 0);
    cr_assert_lt(now_s() - t0, 5, "shutdown waited on the hung server");
}

/* A call from a client that gives up after `max_s`: curl, in a thread of its own. */
struct leaving_call {
    char cmd[512];
};

static void *leaving_call_main(void *arg)
{
    struct leaving_call *c = arg;
    (void)system(c->cmd);
    return NULL;
}

static void leave_after(pthread_t *t, struct leaving_call *c, const char *method, const char *path, double max_s)
{
    snprintf(c->cmd, sizeof(c->cmd), "curl -s -o /dev/null --http2-prior-knowledge --max-time %.1f -X %s '%s%s' %s", max_s, method,
             getenv("TG_URL"), path, strcmp(method, "POST") == 0 ? "-H 'Content-Type: application/json' -d '{\"seconds\": 8}'" : "");
    pthread_create(t, NULL, leaving_call_main, c);
}

/* Is a pg_sleep of the gateway's still running on the primary? */
static int sleeping_on_primary(void)
{
    char *n = pg_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tollgate' AND state = 'active' AND "
                        "query LIKE '%pg_sleep%'");
    int v = n != NULL && strcmp(n, "0") != 0;
    free(n);
    return v;
}

/*
 * A cancel aimed at a host that takes no connection (its postmaster stopped) waits on
 * that backend's own canceller: a cancel for the primary is sent at once, calls go on,
 * and shutdown is not held.
 */
Test(cancel, a_silent_host_delays_only_its_own_cancels, .timeout = 60, .fini = resume_backend)
{
    gw_opts_t o = {.with_replica = 1, .grace_ms = 1000};
    pid_t pid = start_gateway(&o);
    wait_reads_on(1, 5);
    /* a slow read runs on the replica... */
    pthread_t t1, t2;
    struct leaving_call c1, c2;
    leave_after(&t1, &c1, "GET", "/limits/sleep?seconds=4", 1.0);
    usleep(400 * 1000);
    /* ...then the replica stops taking connections (its sessions run on), so the cancel for that read hangs */
    char path[512], line[64] = "";
    snprintf(path, sizeof(path), "%s/replica/postmaster.pid", env("TG_PG_DIR"));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    pid_t postmaster = stopped_backend = atoi(line);
    cr_assert_gt(postmaster, 0);
    kill(postmaster, SIGSTOP);
    pthread_join(t1, NULL); /* the client left: the gateway sends the replica's cancel, which cannot land */
    /* a slow write on the primary whose client leaves: its cancel must not wait behind the replica's */
    leave_after(&t2, &c2, "POST", "/limits/sleep", 1.0);
    pthread_join(t2, NULL);
    double until = now_s() + 2.5;
    while (sleeping_on_primary() && now_s() < until)
        usleep(100 * 1000);
    cr_assert(!sleeping_on_primary(), "the primary's cancel was delayed by the silent replica's");
    /* calls go on (reads leave the silent replica) */
    for (int i = 0; i != 4; ++i) {
        resp_t *r = http(PROTOS[i % 2], "POST", "/routing/write", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "%s", r->body);
        resp_free(r);
    }
    double t0 = now_s();
    kill(pid, SIGTERM);
    int rc = wait_exit(pid, 10);
    kill(postmaster, SIGCONT);
    stopped_backend = 0;
    cr_assert_eq(rc, 0);
    cr_assert_lt(now_s() - t0, 5, "shutdown waited on the silent host's cancel");
}

/*
 * Read-your-writes (tg_call_t.read_after). A gateway with the replica and an admin
 * listener; reads wait up to 400 ms for a replica to replay past their token.
 */
static int rw_admin_port;

/* /admin/status, for what a failure should show (the backends' WAL positions); the caller frees it */
static char *rw_status(void)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/status", rw_admin_port);
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, NULL);
    char *body = strdup(r->body != NULL ? r->body : "");
    resp_free(r);
    return body;
}

/* is the replica's WAL position known to the gateway (/admin/status "wal")? Not while its WAL receiver is away (a primary restart) */
static int replica_position_known(void)
{
    char *body = rw_status();
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    json_t *wal = json_object_get(json_array_get(json_object_get(j, "backends"), 1), "wal");
    int known = json_is_object(wal);
    json_decref(j);
    return known;
}

static pid_t start_rw_gateway(void)
{
    json_t *extra = json_pack("{s:i}", "read_after_wait_ms", 400);
    gw_opts_t o = {.with_replica = 1, .max_lag_ms = 30000, .admin_port = -1, .extra = extra};
    pid_t pid = start_gateway(&o);
    rw_admin_port = o.admin_port;
    wait_reads_on(1, 10);
    /* an earlier test may have restarted the primary: the replica's receiver comes back within wal_retrieve_retry_interval */
    double until = now_s() + 15;
    while (!replica_position_known() && now_s() < until)
        usleep(100 * 1000);
    char *st = rw_status();
    cr_assert(replica_position_known(), "the replica's WAL position is not known: %s", st);
    free(st);
    return pid;
}

static void resume_replay(void)
{
    free(pg_sql(1, "SELECT pg_wal_replay_resume()"));
}

static double read_after_served(const char *query, const char *served)
{
    char url[96], series[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", rw_admin_port);
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200);
    snprintf(series, sizeof(series), "tollgate_read_after_total{query=\"%s\",served=\"%s\"}", query, served);
    double v = metrics_sample(r->body, series);
    resp_free(r);
    return v;
}

/* PUT /routing/values/<k> = v: its token (the caller frees it) */
static char *rw_set(proto_t p, const char *k, int v)
{
    char path[128], body[64];
    snprintf(path, sizeof(path), "/routing/values/%s", k);
    snprintf(body, sizeof(body), "{\"v\": %d}", v);
    resp_t *r = http(p, "PUT", path, body, "application/json", NULL);
    cr_assert_eq(r->status, 200, "[%s] %s", proto_name(p), r->body);
    char *tok = resp_header(r, "tollgate-read-after");
    cr_assert_not_null(tok, "[%s] a write named no position", proto_name(p));
    tok = strdup(tok);
    resp_free(r);
    return tok;
}

/*
 * GET <route>/<k>, with the token when there is one: the value (-1: null), whether a
 * replica served it, how long it took, and (hit, when not NULL) whether the cache did
 */
static int rw_get_cached(proto_t p, const char *route, const char *k, const char *token, int *on_replica, double *took_s, int *hit)
{
    char path[128], hdr[96];
    snprintf(path, sizeof(path), "%s/%s", route, k);
    snprintf(hdr, sizeof(hdr), "Tollgate-Read-After: %s", token != NULL ? token : "");
    double t0 = now_s();
    resp_t *r = http(p, "GET", path, NULL, NULL, token != NULL ? hdr : NULL);
    if (took_s != NULL)
        *took_s = now_s() - t0;
    cr_assert_eq(r->status, 200, "[%s] %s: %s", proto_name(p), path, r->body);
    json_t *v = json_object_get(r->json, "v");
    int value = json_is_integer(v) ? (int)json_integer_value(v) : -1;
    *on_replica = json_is_true(json_object_get(r->json, "in_recovery"));
    if (hit != NULL) {
        const char *cs = resp_header(r, "cache-status");
        *hit = cs != NULL && strstr(cs, "hit") != NULL;
    }
    resp_free(r);
    return value;
}

static int rw_get(proto_t p, const char *route, const char *k, const char *token, int *on_replica, double *took_s)
{
    return rw_get_cached(p, route, k, token, on_replica, took_s, NULL);
}

/*
 * With the replica's replay paused, a read without the token is served stale by the
 * replica (the write is not there yet), and the same read with the token sees the
 * write: after waiting read_after_wait_ms for the replica, from the primary. The
 * cached route answers it from the database too, not from its older entry.
 */
Test(read_after, a_paused_replica_sends_the_read_to_the_primary_after_the_wait, .timeout = 90, .fini = resume_replay)
{
    pid_t pid = start_rw_gateway();
    FOR_EACH_PROTO(p)
    {
        char k[48];
        snprintf(k, sizeof(k), "paused-%d-%d", (int)p, (int)getpid());
        free(rw_set(p, k, 1));
        /* the replica has the first value, and the cache holds it */
        int on_replica;
        double until = now_s() + 10;
        while (rw_get(p, "/routing/values", k, NULL, &on_replica, NULL) != 1 && now_s() < until)
            usleep(20000);
        cr_assert_eq(rw_get(p, "/routing/cached-values", k, NULL, &on_replica, NULL), 1, "[%s]", proto_name(p));
        free(pg_sql(1, "SELECT pg_wal_replay_pause()"));
        char *tok = rw_set(p, k, 2);
        /* without the token: the replica, which has not replayed the write (stale), and the cache's entry */
        cr_assert_eq(rw_get(p, "/routing/values", k, NULL, &on_replica, NULL), 1, "[%s] a paused replica served the write", proto_name(p));
        cr_assert(on_replica, "[%s] a read without a token left the replica", proto_name(p));
        cr_assert_eq(rw_get(p, "/routing/cached-values", k, NULL, &on_replica, NULL), 1, "[%s]", proto_name(p));
        double before = read_after_served("rw_get", "primary"), took;
        /* with it: the write, from the primary, after the wait */
        cr_assert_eq(rw_get(p, "/routing/values", k, tok, &on_replica, &took), 2, "[%s] a read after %s missed the write", proto_name(p), tok);
        cr_assert(!on_replica, "[%s] a paused replica answered a read after %s", proto_name(p), tok);
        cr_assert(took >= 0.35 && took < 2.0, "[%s] waited %.3f s, not about read_after_wait_ms (0.4 s), after %s; %s", proto_name(p), took,
                  tok, rw_status());
        cr_assert_eq(read_after_served("rw_get", "primary"), before + 1, "[%s]", proto_name(p));
        cr_assert_eq(rw_get(p, "/routing/cached-values", k, tok, &on_replica, NULL), 2, "[%s] the cache answered a read after %s", proto_name(p), tok);
        cr_assert(!on_replica, "[%s]", proto_name(p));
        resume_replay();
        /* replayed: the replica serves it, at once or after a short wait */
        until = now_s() + 10;
        do
            cr_assert_eq(rw_get(p, "/routing/values", k, tok, &on_replica, NULL), 2, "[%s] a read after %s missed the write", proto_name(p), tok);
        while (!on_replica && now_s() < until && usleep(20000) == 0);
        cr_assert(on_replica, "[%s] the replica never took reads after %s once it replayed", proto_name(p), tok);
        free(tok);
    }
    stop_gateway(pid, 5);
}

/*
 * With replay running, a read right after its write, with the write's token, sees the
 * write, and in the common case a replica serves it (at once or after a short wait).
 */
Test(read_after, reads_after_a_write_see_it_and_mostly_use_the_replica, .timeout = 90)
{
    pid_t pid = start_rw_gateway();
    enum { N = 40 };
    int on_replica_n = 0;
    for (int i = 0; i != N; ++i) {
        proto_t p = PROTOS[i % 2];
        char k[48];
        snprintf(k, sizeof(k), "running-%d-%d", i, (int)getpid());
        char *tok = rw_set(p, k, i + 100);
        int on_replica;
        cr_assert_eq(rw_get(p, "/routing/values", k, tok, &on_replica, NULL), i + 100, "[%s] a read after %s missed the write", proto_name(p), tok);
        on_replica_n += on_replica;
        free(tok);
    }
    double replica = read_after_served("rw_get", "replica"), waited = read_after_served("rw_get", "replica_after_wait"),
           primary = read_after_served("rw_get", "primary");
    cr_assert_eq(replica + waited + primary, N, "every read after a token is counted once: %g + %g + %g", replica, waited, primary);
    cr_assert_eq(replica + waited, on_replica_n, "the counts say where they ran");
    cr_assert_geq(on_replica_n, N / 2, "only %d of %d reads after a write were served by the replica", on_replica_n, N);
    /* a cached entry answers a read after the token once one was read past it (the first such read fetches it) */
    char *tok = rw_set(PROTO_H2, "running-cached", 5);
    int hit = 0, on_replica, n = 0;
    for (double until = now_s() + 5; !hit && now_s() < until; ++n)
        cr_assert_eq(rw_get_cached(PROTOS[n % 2], "/routing/cached-values", "running-cached", tok, &on_replica, NULL, &hit), 5);
    cr_assert(hit, "no cached entry answered a read after %s in %d tries", tok, n);
    cr_assert_geq(read_after_served("rw_get_cached", "cache"), 1);
    free(tok);
    stop_gateway(pid, 5);
}

/*
 * A token of another timeline (as after a failover) cannot be told apart from data that
 * lost its write: the primary answers it at once, without waiting for a replica. One
 * far past the primary's position on its own timeline (forged, or from a primary not
 * yet seen) waits read_after_wait_ms, then the primary answers.
 */
Test(read_after, another_timeline_goes_to_the_primary_at_once_and_a_future_position_after_the_wait, .timeout = 60)
{
    pid_t pid = start_rw_gateway();
    char *tok = rw_set(PROTO_H2, "timelines", 7);
    tg_rw_token_t t;
    cr_assert_eq(tg_rw_token_parse(tok, strlen(tok), &t), 0, "%s", tok);
    char other[TG_RW_TOKEN_MAX + 1], future[TG_RW_TOKEN_MAX + 1];
    tg_rw_token_format(&(tg_rw_token_t){.timeline = t.timeline + 1, .lsn = 1}, other);
    tg_rw_token_format(&(tg_rw_token_t){.timeline = t.timeline, .lsn = t.lsn + ((uint64_t)1 << 40)}, future);
    FOR_EACH_PROTO(p)
    {
        int on_replica;
        double took;
        cr_assert_eq(rw_get(p, "/routing/values", "timelines", other, &on_replica, &took), 7, "[%s]", proto_name(p));
        cr_assert(!on_replica && took < 0.3, "[%s] %s: on the replica %d, after %.3f s", proto_name(p), other, on_replica, took);
        cr_assert_eq(rw_get(p, "/routing/values", "timelines", future, &on_replica, &took), 7, "[%s]", proto_name(p));
        cr_assert(!on_replica && took >= 0.35 && took < 2.0, "[%s] %s: on the replica %d, after %.3f s", proto_name(p), future, on_replica, took);
    }
    free(tok);
    stop_gateway(pid, 5);
}

/*
 * Hostile clients against live gateways (each test starts its own, on the real primary
 * and replica): bodies over max_body_bytes over both protocols, HTTP/2 rapid reset and
 * floods, more streams than advertised, oversized header blocks, slow and silent
 * clients, clients that never read, normal calls served alongside them, idle HTTP/2
 * connections by the thousand, and secrets kept out of logs and answers.
 *
 * The abusive client is tests/abuse.c ($TG_ABUSE_BIN), which prints what it saw as one
 * line of key=value pairs.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

static int admin_port;

/* a gateway with an admin listener, these config members (or NULL) and listeners (or NULL), once its backends are up */
static pid_t start_on(json_t *listen, int port, json_t *extra, const char *log)
{
    gw_opts_t o = {.admin_port = -1, .extra = extra, .log_path = log, .with_replica = 1, .listen = listen, .port = port};
    pid_t pid = start_gateway(&o);
    admin_port = o.admin_port;
    wait_backends_up(15);
    return pid;
}

static pid_t start(json_t *extra, const char *log)
{
    return start_on(NULL, 0, extra, log);
}

/* the gateway's /metrics, from its admin listener */
static resp_t *scrape(void)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", admin_port);
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200);
    return r;
}

static double metric(const char *series)
{
    resp_t *r = scrape();
    double v = metrics_sample(r->body, series);
    resp_free(r);
    return v;
}

/* the sum of the series whose line starts with `prefix` */
static double metric_sum(const char *prefix)
{
    resp_t *r = scrape();
    double sum = 0;
    size_t n = strlen(prefix);
    for (const char *line = r->body; line != NULL && *line != '\0';) {
        if (strncmp(line, prefix, n) == 0) {
            const char *sp = strchr(line, ' ');
            if (sp != NULL)
                sum += strtod(sp + 1, NULL);
        }
        line = strchr(line, '\n');
        if (line != NULL)
            ++line;
    }
    resp_free(r);
    return sum;
}

/* the gateway's port, from $TG_URL */
static const char *port(void)
{
    return strrchr(getenv("TG_URL"), ':') + 1;
}

typedef struct {
    long opened, refused, closed, goaway, goaway_code, frames, requests, answers, resets, aborted;
} abuse_t;

/* Runs the abusive client: MODE with CONNS connections for at most SECONDS, on PATH. */
static abuse_t abuse(const char *mode, int conns, int seconds, const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' %s 127.0.0.1 %s %d %d '%s'", env("TG_ABUSE_BIN"), mode, port(), conns, seconds, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[512] = "";
    cr_assert_not_null(fgets(line, sizeof(line), p), "no output from %s", cmd);
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
    abuse_t a;
    int n = sscanf(strstr(line, "opened="),
                   "opened=%ld refused=%ld closed=%ld goaway=%ld goaway_code=%ld frames=%ld requests=%ld answers=%ld resets=%ld aborted=%ld",
                   &a.opened, &a.refused, &a.closed, &a.goaway, &a.goaway_code, &a.frames, &a.requests, &a.answers, &a.resets, &a.aborted);
    cr_assert_eq(n, 10, "unexpected output: %s", line);
    cr_log_info("%s", line);
    return a;
}

/* `n` GETs of `path` over HTTP/2 (one connection) and HTTP/1.1 in turn: how many answered 200 */
static int normal_calls(int n, const char *path)
{
    int ok = 0;
    for (int i = 0; i != n; ++i) {
        resp_t *r = http(i % 2 ? PROTO_H2 : PROTO_H1, "GET", path, NULL, NULL, NULL);
        ok += r->status == 200;
        if (r->status != 200)
            cr_log_warn("GET %s over %s: %ld %s", path, proto_name(i % 2 ? PROTO_H2 : PROTO_H1), r->status, r->body);
        resp_free(r);
    }
    return ok;
}

static char *big_json(size_t n)
{
    char *b = malloc(n + 16);
    strcpy(b, "{\"x\":\"");
    memset(b + 6, 'a', n);
    strcpy(b + 6 + n, "\"}");
    return b;
}

Test(abuse, bodies_over_the_limit_answer_413_over_both_protocols_and_never_a_reset)
{
    pid_t gw = start(json_pack("{s:i}", "max_body_bytes", 65536), NULL);
    char *body = big_json(400000);
    /* HTTP/2: the guard cuts the body off, the handler answers problem+json (curl would retry a REFUSED_STREAM) */
    resp_t *r = http(PROTO_H2, "POST", "/errors/unique", body, "application/json", NULL);
    cr_assert_eq(r->status, 413, "HTTP/2: %ld %s", r->status, r->body);
    cr_assert_eq(r->http_version, 2);
    cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:body-too-large");
    resp_free(r);
    /* HTTP/1.1: h2o refuses the Content-Length on the headers, with its own text/plain 413 */
    r = http(PROTO_H1, "POST", "/errors/unique", body, "application/json", NULL);
    cr_assert_eq(r->status, 413, "HTTP/1.1: %ld %s", r->status, r->body);
    cr_assert_not_null(strstr(r->body, "too large"), "%s", r->body);
    resp_free(r);
    /*
     * 40 MB, more than the stream's 16 MB window: the client is still sending when the
     * 413 is out, and must be let finish (its window given back, its bytes dropped), not
     * reset (clients take a reset for a failed call)
     */
    char *huge = big_json(40 << 20);
    double t0 = now_s();
    r = http(PROTO_H2, "POST", "/errors/unique", huge, "application/json", NULL);
    cr_assert_eq(r->status, 413, "40 MB over HTTP/2: %ld %s", r->status, r->body);
    cr_assert_lt(now_s() - t0, 20, "it took %.1f s", now_s() - t0);
    resp_free(r);
    free(huge);
    /* a body under the limit still reaches the handler */
    char *fits = big_json(60000);
    r = http(PROTO_H2, "POST", "/errors/unique", fits, "application/json", NULL);
    cr_assert_eq(r->status, 400, "read whole, and its unknown member refused: %ld %s", r->status, r->body);
    resp_free(r);
    /* 100 oversized bodies on one connection, 10 at a time: each a 413, and the connection window keeps flowing (40 MB dropped) */
    FILE *f = fopen("/tmp/tollgate-abuse-body.json", "w");
    fputs(body, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "timeout 60 h2load -n 100 -c 1 -m 10 -H 'content-type: application/json' -d /tmp/tollgate-abuse-body.json %s/errors/unique",
             getenv("TG_URL"));
    FILE *p = popen(cmd, "r");
    char line[512];
    int codes = 0, done = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strstr(line, "status codes: 0 2xx, 0 3xx, 100 4xx, 0 5xx") != NULL)
            codes = 1;
        if (strstr(line, "requests: 100 total, 100 started, 100 done") != NULL && strstr(line, "0 errored, 0 timeout") != NULL)
            done = 1;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert(done && codes, "h2load did not get 100 answers of 4xx on one connection");
    cr_assert_geq(metric("tollgate_bodies_refused_total"), 101);
    unlink("/tmp/tollgate-abuse-body.json");
    free(body);
    free(fits);
    stop_gateway(gw, 5);
}

Test(abuse, rapid_reset_closes_the_connection_and_costs_the_database_no_cancels)
{
    pid_t gw = start(NULL, NULL);
    char *before = pg_sql(0, "SELECT 1"); /* the servers answer */
    free(before);
    const char *dir = env("TG_PG_DIR");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cat '%s'/primary.log '%s'/replica.log | grep -c 'canceling statement due to user request'", dir, dir);
    FILE *p = popen(cmd, "r");
    long cancels_before = 0, cancels_after = 0;
    cr_assert_eq(fscanf(p, "%ld", &cancels_before), 1);
    pclose(p);
    /* the same behind an HTTP/1.1 request, in one write: h2o would parse it all itself (the guard holds it back first) */
    abuse_t pre = abuse("h1-then-reset", 2, 5, "/healthz");
    cr_assert_eq(pre.closed, 2);
    cr_assert_eq(metric("tollgate_client_connections_closed_total{reason=\"rapid_reset\"}"), 2,
                 "the flood behind the HTTP/1.1 request went through the guard");
    /*
     * and behind an Upgrade: h2c request, sent before the 101: no upgrade, the request is
     * answered over HTTP/1.1 (and the connection closed, as h2o does after a request whose
     * Connection header names no keep-alive): none of the flood ever runs
     */
    double rows_before = metric_sum("tollgate_requests_total{query=\"stream_rows\"");
    pre = abuse("h2c-then-reset", 2, 5, "/stream/rows?n=1");
    cr_assert_eq(pre.closed, 2);
    cr_assert_eq(pre.answers, 2, "each upgrade request answered over HTTP/1.1");
    cr_assert_eq(metric_sum("tollgate_requests_total{query=\"stream_rows\"") - rows_before, 2, "only the two upgrade requests ran");
    /* each pair starts a 50 ms query, reset at once */
    abuse_t a = abuse("rapid-reset", 4, 10, "/errors/slow?seconds=0.05");
    cr_assert_eq(a.closed, 4, "every connection closed by the gateway");
    cr_assert_eq(a.goaway, 4);
    cr_assert_eq(a.goaway_code, 11, "ENHANCE_YOUR_CALM");
    cr_assert_eq(a.aborted, 0, "the connections end with a FIN, not a reset: %ld reset", a.aborted);
    cr_assert_lt(a.requests, 4 * 1000, "closed after a bounded number of resets: %ld", a.requests);
    cr_assert_eq(metric("tollgate_client_connections_closed_total{reason=\"rapid_reset\"}"), 6);
    usleep(500 * 1000);
    p = popen(cmd, "r");
    cr_assert_eq(fscanf(p, "%ld", &cancels_after), 1);
    pclose(p);
    cr_assert_eq(cancels_after, cancels_before, "the abandoned calls cost %ld cancels", cancels_after - cancels_before);
    /* a reset sent with its request keeps it from running: few of them were ever calls (3 are the control below) */
    for (int i = 0; i != 3; ++i)
        resp_free(http(PROTO_H2, "GET", "/errors/slow?seconds=0.01", NULL, NULL, NULL));
    double calls = metric_sum("tollgate_requests_total{query=\"error_timeout\"");
    cr_assert_geq(calls, 3, "the three calls sent whole are counted");
    cr_assert_lt(calls, a.requests / 10.0, "%.0f of %ld reset requests ran", calls - 3, a.requests);
    /* requests reset 5 ms after they started run, and are abandoned before 100 ms: still no cancel */
    abuse_t late = abuse("reset-late", 2, 3, "/errors/slow?seconds=0.05");
    cr_assert_gt(late.requests, 50);
    usleep(500 * 1000);
    cr_assert_gt(metric_sum("tollgate_requests_total{query=\"error_timeout\""), calls + 50, "the late resets' calls ran");
    p = popen(cmd, "r");
    cr_assert_eq(fscanf(p, "%ld", &cancels_after), 1);
    pclose(p);
    cr_assert_eq(cancels_after, cancels_before, "calls abandoned after 5 ms cost %ld cancels", cancels_after - cancels_before);
    cr_assert_eq(normal_calls(20, "/stream/rows?n=1"), 20, "normal calls go on");
    stop_gateway(gw, 5);
}

Test(abuse, floods_of_control_and_empty_frames_and_too_many_streams_close_the_connection)
{
    pid_t gw = start(NULL, NULL);
    static const char *const modes[] = {"ping-flood", "settings-flood", "empty-data", "streams"};
    for (size_t i = 0; i != sizeof(modes) / sizeof(modes[0]); ++i) {
        abuse_t a = abuse(modes[i], 2, 10, "/stream/rows?n=1");
        cr_assert_eq(a.closed, 2, "%s: both connections closed", modes[i]);
        if (i != 0) { /* the PING flood does not read: it sees no GOAWAY */
            /* each is told why, even when its preface and the flood came in one read (h2o had no HTTP/2 connection yet) */
            cr_assert_eq(a.goaway, 2, "%s: a GOAWAY on each connection", modes[i]);
            /* and the connection ends with a FIN: the flood's unread bytes do not turn the close into a reset */
            cr_assert_eq(a.aborted, 0, "%s: %ld connections reset", modes[i], a.aborted);
            cr_assert_eq(a.goaway_code, 11, "%s: ENHANCE_YOUR_CALM", modes[i]);
        }
    }
    cr_assert_geq(metric("tollgate_client_connections_closed_total{reason=\"control_flood\"}"), 6);
    cr_assert_geq(metric("tollgate_client_connections_closed_total{reason=\"too_many_streams\"}"), 2);
    /* a 512 KB header block: h2o refuses the stream (past 400 KB) and then closes the connection */
    abuse_t a = abuse("big-headers", 2, 5, "/stream/rows?n=1");
    cr_assert_eq(a.resets, 2, "the stream refused");
    cr_assert_eq(a.answers, 0);
    cr_assert_eq(normal_calls(20, "/stream/rows?n=1"), 20);
    stop_gateway(gw, 5);
}

Test(abuse, slow_silent_and_non_reading_clients_are_timed_out)
{
    char log[64];
    snprintf(log, sizeof(log), "/tmp/tollgate-abuse-%d.log", (int)getpid());
    /* a long idle timeout: the slow clients are the guard's to close, not h2o's */
    pid_t gw = start(json_pack("{s:{s:i,s:i,s:i}}", "http", "idle_timeout_ms", 30000, "header_timeout_ms", 1500, "body_timeout_ms", 1500),
                     log);
    static const char *const slow[] = {"slow-headers", "slow-body"};
    for (size_t i = 0; i != sizeof(slow) / sizeof(slow[0]); ++i) {
        double before = metric("tollgate_client_connections_closed_total{reason=\"slow_request\"}"), t0 = now_s();
        abuse_t a = abuse(slow[i], 3, 10, "/stream/rows?n=1");
        double took = now_s() - t0;
        cr_assert_eq(a.closed, 3, "%s: every connection closed", slow[i]);
        cr_assert_lt(took, 5, "%s: closed after %.1f s (timeout 1.5 s, checked every second)", slow[i], took);
        cr_assert_eq(metric("tollgate_client_connections_closed_total{reason=\"slow_request\"}"), before + 3, "%s: as slow requests", slow[i]);
    }
    cr_assert_eq(normal_calls(20, "/stream/rows?n=1"), 20);
    stop_gateway(gw, 5);
    /* one line a record, each closing line says why */
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    char line[4096];
    int closing = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        cr_assert(strncmp(line, "20", 2) == 0, "not a log record: [%s]", line);
        if (strstr(line, "closing a client connection from 127.0.0.1: ") != NULL && strstr(line, "timeout_ms") != NULL)
            ++closing;
    }
    fclose(f);
    unlink(log);
    cr_assert_geq(closing, 1, "no log line says why a connection was closed");

    /* a short idle timeout: silent clients, and clients that ask for 100 KB answers and never read them */
    gw = start(json_pack("{s:{s:i}}", "http", "idle_timeout_ms", 2000), NULL);
    static const char *const silent[] = {"idle", "h2-idle"};
    for (size_t i = 0; i != sizeof(silent) / sizeof(silent[0]); ++i) {
        double t0 = now_s();
        abuse_t a = abuse(silent[i], 3, 10, "/stream/rows?n=1");
        cr_assert_eq(a.closed, 3, "%s: every connection closed", silent[i]);
        cr_assert_lt(now_s() - t0, 5, "%s: closed after %.1f s (timeout 2 s)", silent[i], now_s() - t0);
    }
    abuse_t a = abuse("no-read", 3, 10, "/stream/rows?n=900");
    cr_assert_eq(a.closed, 3, "non-reading clients closed");
    cr_assert_geq(metric("tollgate_client_connections_closed_total{reason=\"stalled\"}"), 3);
    cr_assert_eq(normal_calls(20, "/stream/rows?n=1"), 20);
    stop_gateway(gw, 5);
}

/* A bounded load of normal calls while abusive clients hold connections: it keeps its success rate. */
Test(abuse, normal_calls_keep_their_success_rate_under_abuse)
{
    pid_t gw = start(json_pack("{s:{s:i}}", "http", "idle_timeout_ms", 20000), NULL);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "for m in slow-headers:300 idle:300 h2-idle:300 ping-flood:10 rapid-reset:10 no-read:20; do "
             "'%s' ${m%%%%:*} 127.0.0.1 %s ${m##*:} 12 /stream/rows?n=900 >/dev/null & done; wait",
             env("TG_ABUSE_BIN"), port());
    FILE *bg = popen(cmd, "r");
    cr_assert_not_null(bg);
    sleep(2);
    /* read now: slow-headers and h2-idle are closed at 10 s (header_timeout_ms, h2o's HTTP/2 idle timeout), h2load may end later */
    double abusive = metric("tollgate_client_connections");
    snprintf(cmd, sizeof(cmd), "timeout 60 h2load -n 2000 -c 4 -m 4 %s/stream/rows?n=1 2>&1", getenv("TG_URL"));
    FILE *p = popen(cmd, "r");
    char line[512];
    int all_ok = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strstr(line, "finished in") != NULL || strstr(line, "status codes") != NULL)
            cr_log_info("%s", line);
        if (strstr(line, "status codes: 2000 2xx") != NULL)
            all_ok = 1;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert(all_ok, "normal calls did not all succeed under abuse");
    cr_assert_geq(abusive, 500, "the abusive connections were there meanwhile");
    pclose(bg);
    stop_gateway(gw, 5);
}

/* The gateway's resident memory, in MB (from /proc). */
static double rss_mb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    double kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtod(line + 6, NULL);
    fclose(f);
    return kb / 1024;
}

Test(abuse, ten_thousand_idle_http2_connections_fit_in_100_mb)
{
    int p = free_port();
    pid_t gw = start_on(json_pack("[{s:s,s:i,s:i}]", "host", "127.0.0.1", "port", p, "max_connections", 12000), p, NULL, NULL);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' h2-idle 127.0.0.1 %s 10000 8 / >/dev/null", env("TG_ABUSE_BIN"), port());
    FILE *bg = popen(cmd, "r");
    double peak = 0, conns = 0;
    for (int i = 0; i != 14; ++i) {
        usleep(500 * 1000);
        double m = rss_mb(gw), c = metric("tollgate_client_connections");
        if (c > conns)
            conns = c;
        if (c >= 9990 && m > peak)
            peak = m;
    }
    pclose(bg);
    cr_log_info("10,000 idle HTTP/2 connections: gateway RSS %.1f MB", peak);
    cr_assert_geq(conns, 9990, "only %.0f connections were open at once", conns);
    if (getenv("TG_ASAN") == NULL) /* AddressSanitizer's shadow memory and quarantine are no gateway's */
        cr_assert_leq(peak, 100, "RSS %.1f MB", peak);
    cr_assert_eq(normal_calls(10, "/stream/rows?n=1"), 10);
    stop_gateway(gw, 5);
}


/* `tollgate --hash-key KEY` */
static void hash_key(const char *key, char *out, size_t size)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "'%s' --hash-key '%s'", env("TG_GATEWAY_BIN"), key);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(out, (int)size, p));
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

#define SECRET_KEY "tg-key-Sup3rS3cret"
#define SECRET_TOKEN "admin-T0ken-Sup3rS3cret"
#define SECRET_PASSWORD "pw-Sup3rS3cret"
#define SECRET_VALUE "v4lue-Sup3rS3cret" /* a parameter value the database quotes in its error: never in the gateway's log */

/* Every answer seen: its headers and body, one after another. */
static char *seen;
static size_t seen_len;

static resp_t *keep(resp_t *r)
{
    size_t h = r->headers != NULL ? strlen(r->headers) : 0;
    seen = realloc(seen, seen_len + h + r->body_len + 1);
    memcpy(seen + seen_len, r->headers != NULL ? r->headers : "", h);
    memcpy(seen + seen_len + h, r->body, r->body_len);
    seen_len += h + r->body_len;
    seen[seen_len] = '\0';
    return r;
}

static void no_secret_in(const char *what, const char *text, size_t len)
{
    static const char *const secrets[] = {SECRET_KEY, SECRET_TOKEN, SECRET_PASSWORD};
    for (size_t i = 0; i != sizeof(secrets) / sizeof(secrets[0]); ++i)
        cr_assert_null(memmem(text, len, secrets[i], strlen(secrets[i])), "%s holds the secret %s", what, secrets[i]);
}

Test(abuse, keys_tokens_and_passwords_never_reach_logs_or_answers)
{
    char key_hash[128], token_hash[128], log[64], access[64], dsn[512];
    hash_key(SECRET_KEY, key_hash, sizeof(key_hash));
    hash_key(SECRET_TOKEN, token_hash, sizeof(token_hash));
    snprintf(log, sizeof(log), "/tmp/tollgate-secrets-%d.log", (int)getpid());
    snprintf(access, sizeof(access), "/tmp/tollgate-secrets-access-%d.log", (int)getpid());
    /* the servers trust loopback, so a password in the connection string is sent to no one, but it is in the config */
    snprintf(dsn, sizeof(dsn), "%s password=%s", env("TG_PRIMARY_DSN"), SECRET_PASSWORD);
    gw_opts_t o = {.admin_port = -1, .log_path = log, .with_replica = 1, .primary = dsn, .admin_token = token_hash};
    o.extra = json_pack("{s:[{s:s,s:[s],s:i,s:i}],s:s,s:n}", "tenants", "name", "t", "keys", key_hash, "rate", 1000, "burst", 1000,
                        "access_log", access, "anonymous");
    setenv("TOLLGATE_LOG", "debug", 1);
    pid_t gw = start_gateway(&o);
    unsetenv("TOLLGATE_LOG");
    /* the password is in the config the gateway read */
    char cfg_path[256];
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/tollgate-process-test-%d.json", (int)getpid());
    FILE *cf = fopen(cfg_path, "r");
    cr_assert_not_null(cf);
    char cfg[16384];
    size_t cfg_len = fread(cfg, 1, sizeof(cfg), cf);
    fclose(cf);
    cr_assert_not_null(memmem(cfg, cfg_len, SECRET_PASSWORD, strlen(SECRET_PASSWORD)), "the test's own config lacks the password");
    wait_backends_up(15);
    char admin_url[128], bad_key[128];
    const char *auth = "Authorization: Bearer " SECRET_KEY;
    snprintf(bad_key, sizeof(bad_key), "Authorization: Bearer %sX", SECRET_KEY);
    for (int i = 0; i != 2; ++i) {
        proto_t p = i ? PROTO_H2 : PROTO_H1;
        resp_free(keep(http(p, "GET", "/stream/rows?n=3", NULL, NULL, auth)));
        resp_free(keep(http(p, "GET", "/stream/rows?n=3", NULL, NULL, bad_key)));           /* 401 */
        resp_free(keep(http(p, "GET", "/stream/rows?n=x", NULL, NULL, auth)));              /* 400 */
        /* a raised exception whose message and DETAIL quote the value: 500 */
        resp_t *r = keep(http(p, "GET", "/errors/secret?v=" SECRET_VALUE, NULL, NULL, auth));
        cr_assert_eq(r->status, 500);
        resp_free(r);
        resp_free(keep(http(p, "POST", "/errors/unique", "{\"id\":1}", "application/json", auth))); /* 409 */
        resp_free(keep(http(p, "GET", "/readyz", NULL, NULL, auth)));
        resp_free(keep(http(p, "GET", "/openapi.json", NULL, NULL, auth)));
    }
    static const char *const admin_paths[] = {"/admin/status", "/admin/backends", "/admin/tenants", "/admin/queries", "/metrics",
                                              "/admin/config"};
    for (size_t i = 0; i != sizeof(admin_paths) / sizeof(admin_paths[0]); ++i) {
        snprintf(admin_url, sizeof(admin_url), "http://127.0.0.1:%d%s", o.admin_port, admin_paths[i]);
        resp_free(keep(http(PROTO_H1, "GET", admin_url, NULL, NULL, "Authorization: Bearer " SECRET_TOKEN)));
        resp_free(keep(http(PROTO_H1, "GET", admin_url, NULL, NULL, "Authorization: Bearer " SECRET_TOKEN "x")));
    }
    snprintf(admin_url, sizeof(admin_url), "http://127.0.0.1:%d/admin/reload", o.admin_port);
    resp_free(keep(http(PROTO_H1, "POST", admin_url, NULL, NULL, "Authorization: Bearer " SECRET_TOKEN)));
    stop_gateway(gw, 5);
    cr_assert_gt(seen_len, 1000, "the answers were kept");
    no_secret_in("an answer", seen, seen_len);
    const char *const files[2] = {log, access};
    for (int i = 0; i != 2; ++i) {
        FILE *f = fopen(files[i], "r");
        cr_assert_not_null(f, "%s", files[i]);
        char *text = NULL;
        size_t cap = 0, len = getdelim(&text, &cap, '\0', f);
        fclose(f);
        cr_assert_gt((long)len, 100, "%s is empty", files[i]);
        no_secret_in(files[i], text, len);
        if (i == 0)
            cr_assert_null(memmem(text, len, SECRET_VALUE, strlen(SECRET_VALUE)), "the log quotes a value from a server message");
        free(text);
        unlink(files[i]);
    }
    free(seen);
    seen = NULL, seen_len = 0;
}

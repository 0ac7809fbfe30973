/*
 * Tests that start their own gateway processes: the command line and its exit codes,
 * a database that refuses connections at start (503, then recovery), and graceful
 * shutdown. They stop and start the primary, so tests/run.sh runs them after the API
 * suite, one at a time (--jobs 1).
 *
 * Environment: TG_GATEWAY_BIN (the tollgated binary), TG_PG_SCRIPT (tests/pg.sh),
 * TG_PG_DIR, TG_PRIMARY_DSN, TG_CATALOG_DIR (tests/integration/catalog, absolute).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "http.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set (run tests through tests/run.sh)", name);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A free TCP port on 127.0.0.1 (bound then released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Writes a config listening on `port` and returns its path (static buffer). */
static const char *catalog_override; /* a catalog path instead of $TG_CATALOG_DIR */

static const char *write_config_listen(json_t *listen, const char *primary, int grace_ms)
{
    static char path[256];
    snprintf(path, sizeof(path), "/tmp/tollgate-process-test-%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    json_t *cfg = json_pack("{s:o,s:i,s:s,s:[],s:{s:i,s:i},s:i,s:[s]}", "listen", listen, "threads", 2, "primary", primary,
                            "replicas", "pool", "size", 4, "acquire_timeout_ms", 500, "shutdown_grace_ms", grace_ms, "catalog",
                            catalog_override != NULL ? catalog_override : env("TG_CATALOG_DIR"));
    json_dumpf(cfg, f, JSON_INDENT(2));
    json_decref(cfg);
    fclose(f);
    return path;
}

static const char *write_config(int port, const char *primary, int grace_ms)
{
    return write_config_listen(json_pack("[{s:s,s:i}]", "host", "127.0.0.1", "port", port), primary, grace_ms);
}

/* Starts a child that dies with this test process, so a failed assertion leaves no gateway behind. */
static pid_t spawn(char *const argv[], int quiet)
{
    pid_t parent = getpid(), pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs the gateway binary with `args` to completion; returns its exit code. */
static int run_cli(const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), (char *)a1, (char *)a2, (char *)a3, NULL};
    pid_t pid = spawn(argv, 1);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st), "the gateway died of a signal");
    return WEXITSTATUS(st);
}

static void pg_script(const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s %s >/dev/null 2>&1", env("TG_PG_SCRIPT"), cmd);
    cr_assert_eq(system(line), 0, "%s failed", line);
}

/* Waits for the gateway on `port` to answer /healthz; fails after 10 s. */
static void wait_healthy_scheme(const char *scheme, int port)
{
    char url[64];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme, port);
    setenv("TG_URL", url, 1);
    double until = now_s() + 10;
    for (;;) {
        resp_t *r = http(PROTO_H1, "GET", "/healthz", NULL, NULL, NULL);
        long st = r->status;
        resp_free(r);
        if (st == 200)
            return;
        cr_assert(now_s() < until, "the gateway did not come up");
        usleep(50000);
    }
}

static void wait_healthy(int port)
{
    wait_healthy_scheme("http", port);
}

static int wait_exit(pid_t pid, double timeout_s)
{
    double until = now_s() + timeout_s;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_s() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("the gateway did not exit within %.1f s", timeout_s);
        }
        usleep(20000);
    }
    cr_assert(WIFEXITED(st), "the gateway died of a signal");
    return WEXITSTATUS(st);
}

Test(cli, exit_codes)
{
    cr_assert_eq(run_cli("--version", NULL, NULL), 0);
    cr_assert_eq(run_cli("--help", NULL, NULL), 0);
    cr_assert_eq(run_cli("--bogus", NULL, NULL), 2, "bad usage is 2");
    cr_assert_eq(run_cli(NULL, NULL, NULL), 2, "no --config is 2");
    cr_assert_eq(run_cli("--config", "/nonexistent/tollgate.json", "--check"), 1, "a missing config is 1");
    const char *good = write_config(free_port(), env("TG_PRIMARY_DSN"), 1000);
    cr_assert_eq(run_cli("--config", good, "--check"), 0, "a good config checks");
    FILE *f = fopen("/tmp/tollgate-bad-config.json", "w");
    fputs("{\"listen\": [], \"primary\": 5, \"nonsense\": true}", f);
    fclose(f);
    cr_assert_eq(run_cli("--config", "/tmp/tollgate-bad-config.json", "--check"), 1, "a bad config is 1");
    cr_assert_eq(run_cli("--config", "/tmp/tollgate-bad-config.json", NULL), 1, "serving a bad config is 1");
}

Test(cli, hash_key_prints_sha256_form)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --hash-key secret-key-1", env("TG_GATEWAY_BIN"));
    FILE *p = popen(cmd, "r");
    char out[128] = "";
    cr_assert_not_null(fgets(out, sizeof(out), p));
    cr_assert_eq(pclose(p), 0);
    /* sha256("secret-key-1"), as `printf %s secret-key-1 | sha256sum` prints it */
    cr_assert_str_eq(out, "sha256:a6c1eaef9d5f23f4e13d9b574cbbe07ae877227d92be87d077005dc6776bcdcc\n");
}

Test(cli, check_db_prepares_every_statement)
{
    const char *good = write_config(free_port(), env("TG_PRIMARY_DSN"), 1000);
    cr_assert_eq(run_cli("--config", good, "--check --db"), 2, "--check --db are two arguments");
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)good, "--check", "--db", NULL};
    int st;
    waitpid(spawn(argv, 1), &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0, "the test catalog prepares on the primary");

    /* A catalog the parser accepts but PostgreSQL does not. */
    const char *path = "/tmp/tollgate-check-db-catalog.json";
    FILE *f = fopen(path, "w");
    fputs("{\"queries\": [\n"
          "  {\"name\": \"no_column\", \"route\": \"GET /a/{id}\", \"sql\": \"SELECT nope FROM users WHERE id = $1\",\n"
          "   \"params\": [{\"name\": \"id\", \"type\": \"int8\"}], \"returns\": \"one\", \"access\": \"read\"},\n"
          "  {\"name\": \"twice\", \"route\": \"GET /b\", \"sql\": \"SELECT 1 AS x, 2 AS x\",\n"
          "   \"params\": [], \"returns\": \"many\", \"access\": \"read\"}\n"
          "]}\n",
          f);
    fclose(f);
    catalog_override = path;
    const char *bad = write_config(free_port(), env("TG_PRIMARY_DSN"), 1000);
    catalog_override = NULL;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s --config %s --check --db 2>&1", env("TG_GATEWAY_BIN"), bad);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    cr_assert_eq(WEXITSTATUS(rc), 1, "a catalog PostgreSQL rejects is a bad catalog: %s", out);
    cr_assert(strstr(out, "tollgate-check-db-catalog.json:2: queries (no_column).sql: PostgreSQL cannot prepare it") != NULL,
              "%s", out);
    cr_assert(strstr(out, "queries (twice).sql: two result columns are named \"x\"") != NULL, "%s", out);
    /* The same catalog passes the offline check: only the database knows. */
    cr_assert_eq(run_cli("--config", bad, "--check"), 0);
}

Test(cli, port_in_use_is_3)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    listen(fd, 1);
    getsockname(fd, (struct sockaddr *)&a, &len);
    const char *cfg = write_config(ntohs(a.sin_port), env("TG_PRIMARY_DSN"), 1000);
    cr_assert_eq(run_cli("--config", cfg, NULL), 3, "a port in use is 3");
    close(fd);
}

Test(outage, database_down_at_start_then_recovers, .timeout = 60)
{
    pg_script("stop-primary");
    int port = free_port();
    const char *cfg = write_config(port, env("TG_PRIMARY_DSN"), 1000);
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)cfg, NULL};
    pid_t pid = spawn(argv, 1);
    wait_healthy(port);

    for (int i = 0; i != 2; ++i) {
        proto_t p = PROTOS[i];
        double t0 = now_s();
        resp_t *r = http(p, "GET", "/limits/ping", NULL, NULL, NULL);
        cr_assert_eq(r->status, 503, "[%s] database down: %ld %s", proto_name(p), r->status, r->body);
        cr_assert_lt(now_s() - t0, 1.0, "a 503 for a dead backend must come at once");
        char *ra = resp_header(r, "retry-after");
        cr_assert_not_null(ra, "503 without Retry-After");
        free(ra);
        cr_assert_str_eq(json_string_value(json_object_get(r->json, "type")), "urn:tollgate:problem:no-backend");
        resp_free(r);
    }
    pg_script("start-primary");
    /* Every worker thread (each has its own pool) must find the primary again, over both protocols. */
    double until = now_s() + 15;
    for (int i = 0; i != 2; ++i) {
        long st = 0;
        int ok_in_a_row = 0;
        while (now_s() < until && ok_in_a_row < 10) {
            resp_t *r = http(PROTOS[i], "GET", "/limits/ping", NULL, NULL, NULL);
            st = r->status;
            resp_free(r);
            ok_in_a_row = st == 200 ? ok_in_a_row + 1 : 0;
            if (st != 200)
                usleep(100000);
        }
        cr_assert_eq(ok_in_a_row, 10, "[%s] the gateway did not recover after the primary came back (last %ld)",
                     proto_name(PROTOS[i]), st);
    }
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 5), 0);
}

/* A request in flight when SIGTERM arrives still gets its answer, then the process exits 0. */
static void *slow_request(void *arg)
{
    return http(PROTO_H2, "GET", "/limits/sleep?seconds=1", NULL, NULL, NULL);
}

Test(shutdown, sigterm_finishes_in_flight_requests, .timeout = 30)
{
    int port = free_port();
    const char *cfg = write_config(port, env("TG_PRIMARY_DSN"), 5000);
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)cfg, NULL};
    pid_t pid = spawn(argv, 1);
    wait_healthy(port);
    /* Wait until the pool is connected, so the slow call is really in flight. */
    double until = now_s() + 10;
    for (;;) {
        resp_t *r = http(PROTO_H1, "GET", "/limits/ping", NULL, NULL, NULL);
        long st = r->status;
        resp_free(r);
        if (st == 200)
            break;
        cr_assert(now_s() < until, "the pool never connected");
        usleep(50000);
    }
    pthread_t t;
    pthread_create(&t, NULL, slow_request, NULL);
    usleep(300000);
    double t0 = now_s();
    kill(pid, SIGTERM);
    resp_t *r;
    pthread_join(t, (void **)&r);
    cr_assert_eq(r->status, 200, "the in-flight request was cut: %ld %s", r->status, r->body);
    resp_free(r);
    cr_assert_eq(wait_exit(pid, 5), 0);
    cr_assert_lt(now_s() - t0, 4.0, "shutdown took too long");
}

/* A TLS listener negotiates h2 or http/1.1 with ALPN and serves both; a cleartext one sits beside it. */
Test(tls, alpn_h2_and_http1, .timeout = 30)
{
    char dir[] = "/tmp/tollgate-tls-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024], cert[300], key[300];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout %s -out %s >/dev/null 2>&1", key,
             cert);
    cr_assert_eq(system(cmd), 0, "openssl could not make a certificate");
    int tls_port = free_port(), plain_port = free_port();
    json_t *listen = json_pack("[{s:s,s:i,s:{s:s,s:s}},{s:s,s:i}]", "host", "127.0.0.1", "port", tls_port, "tls", "cert_file",
                               cert, "key_file", key, "host", "127.0.0.1", "port", plain_port);
    const char *cfg = write_config_listen(listen, env("TG_PRIMARY_DSN"), 1000);
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)cfg, NULL};
    pid_t pid = spawn(argv, 1);
    wait_healthy_scheme("https", tls_port);
    for (int i = 0; i != 2; ++i) {
        resp_t *r = http(PROTOS[i], "GET", "/healthz", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "[%s over TLS] %ld %s", proto_name(PROTOS[i]), r->status, r->body);
        cr_assert_eq(r->http_version, i == 0 ? 1 : 2, "[%s over TLS] ALPN chose the wrong protocol", proto_name(PROTOS[i]));
        resp_free(r);
    }
    wait_healthy(plain_port);
    resp_t *r = http(PROTO_H2, "GET", "/healthz", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "the cleartext listener beside it");
    resp_free(r);
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 5), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    system(cmd);
}

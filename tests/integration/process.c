/*
 * Tests that start their own gateway processes: the command line and its exit codes,
 * a database that refuses connections at start (503, then recovery), and graceful
 * shutdown. They stop and start the primary, so tests/run.sh runs them after the API
 * suite, one at a time (--jobs 1).
 *
 * Environment: TG_GATEWAY_BIN (the tollgate binary), TG_PG_SCRIPT (tests/pg.sh),
 * TG_PG_DIR, TG_PRIMARY_DSN, TG_CATALOG_DIR (tests/integration/catalog, absolute).
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <criterion/criterion.h>
#include <strings.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

/* A config for a gateway on `port` with only the primary (static path). */
static const char *simple_config(int port, const char *primary, int grace_ms, const char *catalog)
{
    gw_opts_t o = {.port = port, .primary = primary, .grace_ms = grace_ms, .catalog = catalog};
    return write_config(&o);
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

/* reads a whole small file into `buf` (NUL-terminated; "" when absent) */
static void slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f != NULL)
        fclose(f);
}

/*
 * Runs `printf 'STDIN' | TG_GATEWAY_BIN ARGS` in sh (stdin /dev/null when `stdin_fmt`
 * is NULL; it is printf's format, so "\\n" is a newline) and returns the exit code,
 * with stdout and stderr in `out` and `err`.
 */
static int run_shell(const char *stdin_fmt, const char *args, char *out, size_t out_size, char *err, size_t err_size)
{
    char cmd[4096];
    if (stdin_fmt != NULL)
        snprintf(cmd, sizeof(cmd), "printf '%s' | '%s' %s >/tmp/tollgate-cli.out 2>/tmp/tollgate-cli.err", stdin_fmt, env("TG_GATEWAY_BIN"),
                 args);
    else
        snprintf(cmd, sizeof(cmd), "'%s' %s </dev/null >/tmp/tollgate-cli.out 2>/tmp/tollgate-cli.err", env("TG_GATEWAY_BIN"), args);
    int st = system(cmd);
    slurp("/tmp/tollgate-cli.out", out, out_size);
    slurp("/tmp/tollgate-cli.err", err, err_size);
    cr_assert(WIFEXITED(st), "%s died", cmd);
    return WEXITSTATUS(st);
}

/* Waits for the gateway on `port` to answer /healthz over `scheme`. */
static void wait_healthy_scheme(const char *scheme, int port)
{
    char url[64];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme, port);
    wait_healthy_url(url);
}

static void wait_healthy(int port)
{
    wait_healthy_scheme("http", port);
}

Test(cli, exit_codes)
{
    cr_assert_eq(run_cli("--version", NULL, NULL), 0);
    cr_assert_eq(run_cli("--help", NULL, NULL), 0);
    cr_assert_eq(run_cli("--bogus", NULL, NULL), 2, "bad usage is 2");
    cr_assert_eq(run_cli(NULL, NULL, NULL), 2, "no --config is 2");
    cr_assert_eq(run_cli("--config", "/nonexistent/tollgate.json", "--check"), 1, "a missing config is 1");
    const char *good = simple_config(0, NULL, 1000, NULL);
    cr_assert_eq(run_cli("--config", good, "--check"), 0, "a good config checks");
    write_text("/tmp/tollgate-bad-config.json",
               "{\"listen\": [], \"primary\": 5, \"nonsense\": true}");
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

Test(cli, help_and_bad_usage)
{
    char out[8192], err[8192];
    cr_assert_eq(run_shell(NULL, "-h", out, sizeof(out), err, sizeof(err)), 0, "-h is --help");
    cr_assert(strstr(out, "usage:") != NULL && strstr(out, "--hash-key -") != NULL, "usage on stdout: %s", out);
    cr_assert_str_eq(err, "");
    char help[8192];
    cr_assert_eq(run_shell(NULL, "--help", help, sizeof(help), err, sizeof(err)), 0);
    cr_assert_str_eq(out, help, "-h and --help print the same");
    static const char *const bad[] = {"--bogus", "-x", "stray", "--check", "--config", "--hash-key k --check", "--db --config x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        cr_assert_eq(run_shell(NULL, bad[i], out, sizeof(out), err, sizeof(err)), 2, "%s is bad usage", bad[i]);
        cr_assert_str_eq(out, "", "%s: nothing on stdout", bad[i]);
        cr_assert(strstr(err, "usage:") != NULL, "%s: the usage on stderr: %s", bad[i], err);
    }
}

Test(cli, hash_key_from_stdin_and_empty_keys)
{
    char out[1024], err[1024];
    const char *want = "sha256:a6c1eaef9d5f23f4e13d9b574cbbe07ae877227d92be87d077005dc6776bcdcc\n"; /* sha256("secret-key-1") */
    cr_assert_eq(run_shell("secret-key-1\\n", "--hash-key -", out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out, want, "the newline is not part of the key");
    cr_assert_eq(run_shell("secret-key-1", "--hash-key -", out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out, want, "no newline at all");
    cr_assert_eq(run_shell("secret-key-1\\r\\n", "--hash-key -", out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out, want, "a CRLF line");
    cr_assert_eq(run_shell("secret-key-1\\nmore\\n", "--hash-key -", out, sizeof(out), err, sizeof(err)), 2);
    cr_assert(strstr(err, "more than one line") != NULL, "%s", err);
    cr_assert_str_eq(out, "");
    /* empty: on stdin (nothing, or an empty line), or as the argument */
    const char *empty[] = {"", "\\n"};
    for (size_t i = 0; i < 2; ++i) {
        cr_assert_eq(run_shell(empty[i], "--hash-key -", out, sizeof(out), err, sizeof(err)), 2);
        cr_assert(strstr(err, "tollgate: --hash-key: the key is empty") != NULL, "%s", err);
        cr_assert_str_eq(out, "");
    }
    cr_assert_eq(run_shell(NULL, "--hash-key ''", out, sizeof(out), err, sizeof(err)), 2);
    cr_assert(strstr(err, "tollgate: --hash-key: the key is empty") != NULL, "%s", err);
    cr_assert_str_eq(out, "");
}

Test(cli, check_names_the_line_of_each_field_and_warns_of_an_empty_catalog)
{
    char out[8192], err[8192], args[1024];
    const char *path = "/tmp/tollgate-check-lines.json";
    write_text(path,
               "{\n"
               "  \"listen\": [{\"host\": \"127.0.0.1\", \"port\": 1}],\n"
               "  \"primary\": \"dbname=app\",\n"
               "  \"pool\": {\"size\": 4,\n"
               "           \"acquire_timout_ms\": 5},\n"
               "  \"tenants\": [{\"name\": \"a\", \"rate\": 1, \"burst\": 1,\n"
               "               \"keys\": [\"sha256:abc\",\n"
               "                        \"\"]}],\n"
               "  \"catalog\": [\"/tmp/tollgate-check-lines-catalog.json\"]\n"
               "}\n");
    write_text("/tmp/tollgate-check-lines-catalog.json",
               "{\"queries\": []}\n");
    snprintf(args, sizeof(args), "--config %s --check", path);
    cr_assert_eq(run_shell(NULL, args, out, sizeof(out), err, sizeof(err)), 1, "%s", err);
    cr_assert(strstr(err, "tollgate-check-lines.json:5: pool.acquire_timout_ms: unknown field (did you mean \"acquire_timeout_ms\"?)\n") !=
                  NULL,
              "%s", err);
    cr_assert(strstr(err, "tollgate-check-lines.json:7: tenants[0].keys[0]: must be \"sha256:<64 hex digits>\" (got 3 hex digits)\n") != NULL,
              "%s", err);
    cr_assert(strstr(err, "tollgate-check-lines.json:8: tenants[0].keys[1]: is empty: must be") != NULL, "%s", err);
    cr_assert(strstr(err, "tollgate-check-lines.json: 3 errors\n") != NULL, "%s", err);

    /* the same config made good: the empty catalog is a warning, and --check passes */
    write_text(path,
               "{\"listen\": [{\"host\": \"127.0.0.1\", \"port\": 1}], \"primary\": \"dbname=app\",\n"
               " \"catalog\": [\"/tmp/tollgate-check-lines-catalog.json\"]}\n");
    cr_assert_eq(run_shell(NULL, args, out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(err, "warning: /tmp/tollgate-check-lines.json:2: catalog: the catalog has no queries: every call will answer 404\n");
    cr_assert_str_eq(out, "/tmp/tollgate-check-lines.json: ok (0 queries)\n");
}

Test(cli, check_db_prepares_every_statement)
{
    const char *good = simple_config(0, NULL, 1000, NULL);
    cr_assert_eq(run_cli("--config", good, "--check --db"), 2, "--check --db are two arguments");
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)good, "--check", "--db", NULL};
    int st;
    waitpid(spawn(argv, 1), &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0, "the test catalog prepares on the primary");

    /* A catalog the parser accepts but PostgreSQL does not. */
    const char *path = "/tmp/tollgate-check-db-catalog.json";
    write_text(path,
               "{\"queries\": [\n"
               "  {\"name\": \"no_column\", \"route\": \"GET /a/{id}\", \"sql\": \"SELECT nope FROM users WHERE id = $1\",\n"
               "   \"params\": [{\"name\": \"id\", \"type\": \"int8\"}], \"returns\": \"one\", \"access\": \"read\"},\n"
               "  {\"name\": \"twice\", \"route\": \"GET /b\",\n"
               "   \"sql\": \"SELECT 1 AS x, 2 AS x\",\n"
               "   \"params\": [], \"returns\": \"many\", \"access\": \"read\"}\n"
               "]}\n");
    const char *bad = simple_config(0, NULL, 1000, path);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s --config %s --check --db 2>&1", env("TG_GATEWAY_BIN"), bad);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    cr_assert_eq(WEXITSTATUS(rc), 1, "a catalog PostgreSQL rejects is a bad catalog: %s", out);
    cr_assert(strstr(out, "tollgate-check-db-catalog.json:2: queries[0] (no_column).sql: PostgreSQL cannot prepare it") != NULL,
              "%s", out);
    cr_assert(strstr(out, "tollgate-check-db-catalog.json:5: queries[1] (twice).sql: two result columns are named \"x\"") != NULL, "%s",
              out);
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
    const char *cfg = simple_config(ntohs(a.sin_port), NULL, 1000, NULL);
    cr_assert_eq(run_cli("--config", cfg, NULL), 3, "a port in use is 3");
    close(fd);
}

Test(outage, database_down_at_start_then_recovers, .timeout = 60)
{
    pg_script("stop-primary");
    int port = free_port();
    const char *cfg = simple_config(port, NULL, 1000, NULL);
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
    const char *cfg = simple_config(port, NULL, 5000, NULL);
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
    gw_opts_t o = {.listen = listen};
    const char *cfg = write_config(&o);
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

/* One HTTP/1.1 request on an open socket; returns the status (the whole answer is read). */
static int h1_on_socket(int fd)
{
    static const char req[] = "GET /limits/ping HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    char buf[4096];
    size_t n = 0;
    /* Read until the headers and the Content-Length body are in. */
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        cr_assert_gt(r, 0, "the connection closed before an answer");
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
        if (end != NULL && cl != NULL && n >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 15))
            break;
    }
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    if (status == 503)
        cr_assert_not_null(strcasestr(buf, "retry-after:"), "a 503 without Retry-After: %s", buf);
    return status;
}

Test(shutdown, new_calls_on_open_connections_get_503, .timeout = 30)
{
    int port = free_port();
    const char *cfg = simple_config(port, NULL, 3000, NULL);
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)cfg, NULL};
    pid_t pid = spawn(argv, 1);
    wait_healthy(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    /* Keep a slow call in flight so the gateway stays in its grace period. */
    pthread_t t;
    pthread_create(&t, NULL, slow_request, NULL);
    int st = 0;
    for (int i = 0; i != 50 && st != 200; ++i) {
        st = h1_on_socket(fd);
        if (st != 200)
            usleep(100000);
    }
    cr_assert_eq(st, 200, "the keep-alive connection works");
    usleep(200000);
    kill(pid, SIGTERM);
    usleep(300000);
    cr_assert_eq(h1_on_socket(fd), 503, "a new call during shutdown is turned away");
    close(fd);
    resp_t *r;
    pthread_join(t, (void **)&r);
    cr_assert_eq(r->status, 200, "the call in flight still finished: %ld", r->status);
    resp_free(r);
    cr_assert_eq(wait_exit(pid, 5), 0);
}

/* --- client connections: the cap per listener, and running out of descriptors --- */

/* an idle TCP connection to the gateway (no request), or -1 */
static int idle_connection(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

Test(connections, a_listener_past_max_connections_closes_new_ones_and_serves_the_rest, .timeout = 30)
{
    gw_opts_t o = {.port = free_port()};
    o.listen = json_pack("[{s:s,s:i,s:i}]", "host", "127.0.0.1", "port", o.port, "max_connections", 3);
    pid_t pid = start_gateway(&o);
    /*
     * Hold three idle connections the gateway kept open (one opened while the start's
     * own health check was still counted is closed at once: open another).
     */
    int fds[3], held = 0;
    for (int tries = 0; held != 3 && tries != 30; ++tries) {
        int fd = idle_connection(o.port);
        cr_assert_geq(fd, 0);
        usleep(100 * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 0) == 0)
            fds[held++] = fd; /* nothing to read and no hang-up: kept */
        else
            close(fd);
    }
    cr_assert_eq(held, 3, "three idle connections kept open");
    resp_t *r = http(PROTO_H1, "GET", "/healthz", NULL, NULL, NULL);
    cr_assert_neq(r->status, 200, "a 4th connection is closed at once, not served");
    resp_free(r);
    close(fds[0]);
    usleep(300 * 1000);
    r = http(PROTO_H2, "GET", "/healthz", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "with one closed there is room again: %ld", r->status);
    resp_free(r);
    close(fds[1]), close(fds[2]);
    stop_gateway(pid, 5);
}

Test(connections, running_out_of_descriptors_pauses_accepting_and_the_gateway_goes_on, .timeout = 60)
{
    gw_opts_t o = {.pool_size = 2};
    const char *cfg = write_config(&o);
    char *argv[] = {"/usr/bin/prlimit", "--nofile=64:64", (char *)env("TG_GATEWAY_BIN"), "--config", (char *)cfg, NULL};
    pid_t pid = spawn(argv, getenv("TG_GATEWAY_LOGS") == NULL);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", o.port);
    wait_healthy_url(url);
    /* more idle connections than descriptors are left */
    int fds[120], n = 0;
    for (int i = 0; i != 120; ++i)
        if ((fds[n] = idle_connection(o.port)) >= 0)
            ++n;
    usleep(500 * 1000);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the gateway is still running");
    for (int i = 0; i != n; ++i)
        close(fds[i]);
    /* once they are gone, it serves again */
    double until = now_s() + 10;
    long st = 0;
    while (now_s() < until && st != 200) {
        resp_t *r = http(PROTO_H1, "GET", "/limits/ping", NULL, NULL, NULL);
        st = r->status;
        resp_free(r);
        if (st != 200)
            usleep(200 * 1000);
    }
    cr_assert_eq(st, 200, "served again after the descriptors came back");
    stop_gateway(pid, 10);
}

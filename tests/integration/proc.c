/* Helpers for tests that run their own gateways (see proc.h). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set (run tests through tests/run.sh)", name);
    return v;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

#define OR(v, d) ((v) != 0 ? (v) : (d))

const char *write_config(gw_opts_t *o)
{
    static char path[256];
    snprintf(path, sizeof(path), "/tmp/tollgate-process-test-%d.json", (int)getpid());
    if (o->port == 0)
        o->port = free_port();
    json_t *listen = o->listen != NULL ? o->listen : json_pack("[{s:s,s:i}]", "host", "127.0.0.1", "port", o->port);
    o->listen = NULL;
    json_t *replicas = json_array();
    if (o->with_replica)
        json_array_append_new(replicas, json_string(o->replica != NULL ? o->replica : env("TG_REPLICA_DSN")));
    /* Keyless callers are served as "anonymous", with limits high enough not to matter unless a test sets them. */
    json_t *cfg = json_pack("{s:o,s:i,s:s,s:o,s:{s:i,s:i,s:f},s:i,s:i,s:i,s:i,s:{s:f,s:f},s:[s]}", "listen", listen, "threads",
                            OR(o->threads, 2),
                            "primary", o->primary != NULL ? o->primary : env("TG_PRIMARY_DSN"), "replicas", replicas, "pool",
                            "size", OR(o->pool_size, 4), "acquire_timeout_ms", OR(o->acquire_timeout_ms, 500),
                            "low_priority_share", o->low_priority_share != 0 ? o->low_priority_share : 0.5, "shutdown_grace_ms",
                            OR(o->grace_ms, 1000), "health_interval_ms", OR(o->health_interval_ms, 200), "replica_max_lag_ms",
                            OR(o->max_lag_ms, 1000), "max_in_flight", o->max_in_flight, "anonymous", "rate",
                            o->anonymous_rate != 0 ? o->anonymous_rate : 1e6, "burst",
                            o->anonymous_burst != 0 ? o->anonymous_burst : 1e6, "catalog",
                            o->catalog != NULL ? o->catalog : env("TG_CATALOG_DIR"));
    cr_assert_not_null(cfg);
    if (o->anonymous_queries != NULL)
        json_object_set_new(json_object_get(cfg, "anonymous"), "queries", o->anonymous_queries);
    o->anonymous_queries = NULL;
    if (o->admin_port < 0)
        o->admin_port = free_port();
    if (o->admin_port > 0)
        json_object_set_new(cfg, "admin_listen", json_pack("{s:s,s:i}", "host", "127.0.0.1", "port", o->admin_port));
    if (o->admin_token != NULL)
        json_object_set_new(cfg, "admin_token", json_string(o->admin_token));
    if (o->no_overload)
        json_object_set_new(json_object_get(cfg, "pool"), "overload", json_false());
    if (o->extra != NULL)
        json_object_update(cfg, o->extra);
    json_decref(o->extra);
    o->extra = NULL;
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    json_dumpf(cfg, f, JSON_INDENT(2));
    json_decref(cfg);
    fclose(f);
    return path;
}

static pid_t spawn_to(char *const argv[], const char *out)
{
    pid_t parent = getpid(), pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (out != NULL) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

pid_t spawn(char *const argv[], int quiet)
{
    return spawn_to(argv, quiet ? "/dev/null" : NULL);
}

pid_t spawn_logged(char *const argv[], const char *path)
{
    return spawn_to(argv, path);
}

void wait_healthy_url(const char *url)
{
    setenv("TG_URL", url, 1);
    double until = now_s() + 10;
    for (;;) {
        resp_t *r = http(PROTO_H1, "GET", "/healthz", NULL, NULL, NULL);
        long st = r->status;
        resp_free(r);
        if (st == 200)
            return;
        cr_assert(now_s() < until, "the gateway did not come up at %s", url);
        usleep(50000);
    }
}

/* the last `max` bytes of the file at `path`, NUL-terminated in `buf` */
static const char *file_tail(const char *path, char *buf, size_t max)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return buf;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)max - 1 ? size - ((long)max - 1) : 0, SEEK_SET);
    buf[fread(buf, 1, max - 1, f)] = '\0';
    fclose(f);
    return buf;
}

/* Gives the config at `path` new free ports where the harness chose them: its one listener's, its admin listener's. */
static void new_ports(const char *path, gw_opts_t *o, int listen, int admin)
{
    json_t *cfg = json_load_file(path, 0, NULL);
    cr_assert_not_null(cfg);
    if (listen) {
        o->port = free_port();
        json_object_set_new(json_array_get(json_object_get(cfg, "listen"), 0), "port", json_integer(o->port));
    }
    if (admin) {
        o->admin_port = free_port();
        json_object_set_new(json_object_get(cfg, "admin_listen"), "port", json_integer(o->admin_port));
    }
    cr_assert_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
    json_decref(cfg);
}

/*
 * Starts the gateway and waits for /healthz. A port free_port() found can be taken
 * as the source port of some other process's connection before the gateway binds
 * it; a gateway that exits for that (exit code 3: it could not bind), with ports the
 * test did not choose, is started again on new ones. Any other failure fails the
 * test with the end of its output.
 */
pid_t start_gateway(gw_opts_t *o)
{
    int own_listen = o->listen == NULL && o->port == 0, own_admin = o->admin_port < 0;
    const char *cfg = write_config(o);
    char scratch[96], tail[2048], url[64];
    snprintf(scratch, sizeof(scratch), "/tmp/tollgate-gateway-%d.log", (int)getpid());
    const char *log = o->log_path != NULL ? o->log_path : getenv("TG_GATEWAY_LOGS") == NULL ? scratch : NULL;
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)cfg, NULL};
    for (int attempt = 1;; ++attempt) {
        pid_t pid = log != NULL ? spawn_logged(argv, log) : spawn(argv, 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", o->port);
        setenv("TG_URL", url, 1);
        int st = 0;
        for (double until = now_s() + 10;;) {
            resp_t *r = http(PROTO_H1, "GET", "/healthz", NULL, NULL, NULL);
            long status = r->status;
            resp_free(r);
            if (status == 200) {
                if (log == scratch)
                    unlink(scratch);
                return pid;
            }
            if (waitpid(pid, &st, WNOHANG) == pid)
                break;
            if (now_s() > until) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                cr_assert_fail("the gateway did not come up at %s within 10 s; its output ends:\n%s", url,
                               log != NULL ? file_tail(log, tail, sizeof(tail)) : "(shown above)");
            }
            usleep(50000);
        }
        const char *out = log != NULL ? file_tail(log, tail, sizeof(tail)) : "";
        int taken = WIFEXITED(st) && WEXITSTATUS(st) == 3 && (log == NULL || strstr(out, "Address already in use") != NULL);
        if ((own_listen || own_admin) && taken && attempt < 3) {
            cr_log_warn("a port was taken before the gateway bound it (listen %d, admin %d); trying new ones", o->port,
                        o->admin_port);
            new_ports(cfg, o, own_listen, own_admin);
            continue;
        }
        cr_assert_fail("the gateway exited (status %d) instead of coming up at %s; its output ends:\n%s",
                       WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), url, log != NULL ? out : "(shown above)");
    }
}

int wait_exit(pid_t pid, double timeout_s)
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

void stop_gateway(pid_t pid, double timeout_s)
{
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, timeout_s), 0, "the gateway did not exit 0 on SIGTERM");
}

int read_hits_replica(proto_t p)
{
    resp_t *r = http(p, "GET", "/routing/read", NULL, NULL, NULL);
    int v = r->status == 200 ? json_is_true(json_object_get(r->json, "in_recovery")) : -1;
    resp_free(r);
    return v;
}

void wait_reads_on(int want, double timeout_s)
{
    double until = now_s() + timeout_s;
    int v = -2;
    while (now_s() < until) {
        if ((v = read_hits_replica(PROTO_H1)) == want && read_hits_replica(PROTO_H2) == want)
            return;
        usleep(50000);
    }
    cr_assert_fail("reads did not go to the %s within %.1f s (last: %d)", want ? "replica" : "primary", timeout_s, v);
}

void pg_script(const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s %s >/dev/null 2>&1", env("TG_PG_SCRIPT"), cmd);
    cr_assert_eq(system(line), 0, "%s failed", line);
}

char *pg_sql(int replica, const char *sql)
{
    return pg_sql_params(replica, sql, 0, NULL);
}

char *pg_sql_params(int replica, const char *sql, int n, const char *const *params)
{
    /* The test servers trust loopback: the same DSN as the superuser (a later keyword wins). */
    char dsn[512];
    snprintf(dsn, sizeof(dsn), "%s user=postgres", env(replica ? "TG_REPLICA_DSN" : "TG_PRIMARY_DSN"));
    PGconn *c = PQconnectdb(dsn);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "cannot connect to the %s: %s", replica ? "replica" : "primary", PQerrorMessage(c));
    /* Without parameters, several statements may go in one string (the simple protocol). */
    PGresult *r = n == 0 ? PQexec(c, sql) : PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    char *out = st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    PQfinish(c);
    return out;
}

void wait_backends_up(double timeout_s)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        resp_t *r = http(PROTO_H1, "GET", "/readyz", NULL, NULL, NULL);
        int ready = r->status == 200 && strstr(r->body, "\"state\":\"down\"") == NULL;
        resp_free(r);
        if (ready)
            return;
        cr_assert_lt(now_s(), deadline, "the gateway's backends are not up after %.0f s", timeout_s);
        usleep(50 * 1000);
    }
}

double metrics_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        if (line != NULL)
            ++line;
    }
    return 0;
}

void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_geq(fputs(text, f), 0, "cannot write %s", path);
    fclose(f);
}

/*
 * Seeing inside a live gateway (each test starts its own, with an admin listener,
 * against the real primary and replica): /metrics counts exactly what was sent over
 * two threads, passes `promtool check metrics`, is scraped by a real Prometheus; the
 * Grafana dashboard asks only for what /metrics has; the access log has one line a
 * request, survives logrotate's move + SIGUSR1 without losing a line, and a path that
 * cannot be written is refused at start and at reload.
 *
 * Environment, beyond proc.h's: TG_PROMTOOL_BIN and TG_PROMETHEUS_BIN (Debian's
 * `prometheus` package), TG_REPO_DIR (the checkout: the dashboard and scrape config).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

/* sha256("obs-tight-key"): a tenant with a 10-token bucket that refills too slowly to matter, allowed two queries */
#define TIGHT_KEY "obs-tight-key"

static char tmp_dir[128];

static void setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/tollgate-observe-%d", (int)getpid());
    mkdir(tmp_dir, 0755);
}

static pid_t prometheus_pid; /* killed before the folder it writes is removed, however the test ended */

static void teardown(void)
{
    if (prometheus_pid > 0) {
        kill(prometheus_pid, SIGKILL);
        waitpid(prometheus_pid, NULL, 0);
        prometheus_pid = 0;
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
}

TestSuite(observe, .init = setup, .fini = teardown);

static char admin_base[64];

static char *tight_hash(void)
{
    static char hash[80];
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "'%s' --hash-key %s", env("TG_GATEWAY_BIN"), TIGHT_KEY);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(hash, sizeof(hash), p));
    pclose(p);
    hash[strcspn(hash, "\n")] = '\0';
    return hash;
}

/* A gateway with two threads, the replica, an admin listener, the tenant "tight" and `access_log` (NULL: off). */
static pid_t start(const char *access_log, gw_opts_t *o)
{
    o->threads = 2;
    o->with_replica = 1;
    o->admin_port = -1;
    json_t *extra = json_pack("{s:[{s:s,s:[s],s:f,s:i,s:[s,s]}]}", "tenants", "name", "tight", "keys", tight_hash(), "rate", 0.001,
                              "burst", 10, "queries", "costly", "error_*");
    if (access_log != NULL)
        json_object_set_new(extra, "access_log", json_string(access_log));
    o->extra = extra;
    pid_t pid = start_gateway(o);
    snprintf(admin_base, sizeof(admin_base), "http://127.0.0.1:%d", o->admin_port);
    /* serving once both backends are up by the health checker (probes are logged, not counted) */
    wait_backends_up(15);
    return pid;
}

static resp_t *admin(const char *method, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", admin_base, path);
    return http(PROTO_H1, method, url, NULL, NULL, "Authorization: Basic bm9uZTpub25l");
}

static char *scrape(void)
{
    return resp_take_body(admin("GET", "/metrics"), "text/plain; version=0.0.4");
}

static void send_n(int n, const char *method, const char *path, const char *header, long want)
{
    for (int i = 0; i != n; ++i) {
        resp_t *r = http(PROTOS[i % 2], method, path, NULL, NULL, header);
        cr_assert_eq(r->status, want, "%s %s: %ld %s", method, path, r->status, r->body);
        resp_free(r);
    }
}

/* --- /metrics --- */

Test(observe, counters_move_by_exactly_the_calls_sent_over_two_threads, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(NULL, &o);
    char *before = scrape();
    /* 20 over both protocols and (their connections land on either thread) both threads */
    send_n(20, "GET", "/limits/ping", NULL, 200);
    send_n(6, "GET", "/no/such/route", NULL, 404);
    send_n(3, "GET", "/limits/ping?nope=1", NULL, 400);
    /* tight: 10 tokens, 5 a call: two served, then refused */
    send_n(2, "GET", "/limits/costly", "X-API-Key: " TIGHT_KEY, 200);
    send_n(3, "GET", "/limits/costly", "X-API-Key: " TIGHT_KEY, 429);
    send_n(4, "GET", "/limits/ping", "X-API-Key: " TIGHT_KEY, 403);
    send_n(2, "GET", "/limits/ping", "X-API-Key: not-a-key", 401);
    char *after = scrape();
    static const struct {
        const char *series;
        double delta;
    } want[] = {
        {"tollgate_requests_total{query=\"ping\",tenant=\"anonymous\",status=\"200\"}", 20},
        {"tollgate_requests_total{query=\"-\",tenant=\"anonymous\",status=\"404\"}", 6},
        {"tollgate_requests_total{query=\"ping\",tenant=\"anonymous\",status=\"400\"}", 3},
        {"tollgate_requests_total{query=\"costly\",tenant=\"tight\",status=\"200\"}", 2},
        {"tollgate_requests_total{query=\"costly\",tenant=\"tight\",status=\"429\"}", 3},
        {"tollgate_requests_total{query=\"ping\",tenant=\"tight\",status=\"403\"}", 4},
        {"tollgate_requests_total{query=\"-\",tenant=\"-\",status=\"401\"}", 2},
        {"tollgate_refused_total{tenant=\"tight\",reason=\"rate_limited\"}", 3},
        {"tollgate_refused_total{tenant=\"tight\",reason=\"forbidden\"}", 4},
        {"tollgate_request_duration_seconds_count{query=\"ping\"}", 27},
        {"tollgate_request_duration_seconds_bucket{query=\"ping\",le=\"+Inf\"}", 27},
        {"tollgate_pool_wait_seconds_count{query=\"ping\"}", 20},
    };
    for (size_t i = 0; i != sizeof(want) / sizeof(want[0]); ++i)
        cr_expect_eq(metrics_sample(after, want[i].series) - metrics_sample(before, want[i].series), want[i].delta, "%s: %g -> %g, want +%g",
                     want[i].series, metrics_sample(before, want[i].series), metrics_sample(after, want[i].series), want[i].delta);
    /* every one of the 20 pings that ran has its database time, on the replica or (if it lagged) the primary */
    double on_replica = metrics_sample(after, "tollgate_db_duration_seconds_count{query=\"ping\",backend=\"replica1\"}"),
           on_primary = metrics_sample(after, "tollgate_db_duration_seconds_count{query=\"ping\",backend=\"primary\"}");
    cr_expect_eq(on_replica + on_primary, 20, "replica %g + primary %g", on_replica, on_primary);
    double costly = metrics_sample(after, "tollgate_db_duration_seconds_count{query=\"costly\",backend=\"replica1\"}") +
                    metrics_sample(after, "tollgate_db_duration_seconds_count{query=\"costly\",backend=\"primary\"}");
    cr_expect_eq(costly, 2, "the two costly calls served have their database time (%g)", costly);
    cr_expect_eq(metrics_sample(after, "tollgate_backend_up{backend=\"primary\",role=\"primary\"}"), 1);
    cr_expect_eq(metrics_sample(after, "tollgate_backend_up{backend=\"replica1\",role=\"replica\"}"), 1);
    cr_expect_eq(metrics_sample(after, "tollgate_threads"), 2);
    cr_expect_gt(metrics_sample(after, "process_resident_memory_bytes"), 1e6);
    free(before);
    free(after);
    stop_gateway(pid, 10);
}

/* Each sample line's series (name and labels) appears once. */
static void expect_no_duplicate_series(const char *text)
{
    size_t cap = 4096, n = 0;
    char **seen = calloc(cap, sizeof(*seen));
    char *copy = strdup(text);
    for (char *line = strtok(copy, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "a sample without a value: %s", line);
        *sp = '\0';
        for (size_t i = 0; i != n; ++i)
            cr_assert_str_neq(seen[i], line, "series written twice: %s", line);
        cr_assert_lt(n, cap);
        seen[n++] = line;
    }
    free(seen);
    free(copy);
}

Test(observe, promtool_accepts_a_scrape_taken_after_traffic_of_every_kind, .timeout = 90)
{
    gw_opts_t o = {0};
    pid_t pid = start(NULL, &o);
    send_n(3, "GET", "/limits/ping", NULL, 200);
    send_n(1, "GET", "/no/such/route", NULL, 404);
    send_n(1, "GET", "/errors/div_zero?n=0", NULL, 400);
    send_n(1, "GET", "/limits/ping", "X-API-Key: not-a-key", 401);
    send_n(1, "GET", "/limits/ping", "X-API-Key: " TIGHT_KEY, 403);
    send_n(2, "GET", "/limits/costly", "X-API-Key: " TIGHT_KEY, 200);
    send_n(1, "GET", "/limits/costly", "X-API-Key: " TIGHT_KEY, 429);
    send_n(1, "GET", "/errors/slow?seconds=2", NULL, 504);
    resp_t *r = admin("POST", "/admin/queries/ping/disable");
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    send_n(2, "GET", "/limits/ping", NULL, 503);
    char *text = scrape();
    cr_expect_eq(metrics_sample(text, "tollgate_shed_total{query=\"ping\",reason=\"query_disabled\"}"), 2);
    cr_expect_eq(metrics_sample(text, "tollgate_requests_total{query=\"error_timeout\",tenant=\"anonymous\",status=\"504\"}"), 1);
    cr_expect_eq(metrics_sample(text, "tollgate_query_switched_off{query=\"ping\"}"), 1);
    expect_no_duplicate_series(text);
    char path[256], cmd[1024];
    snprintf(path, sizeof(path), "%s/scrape.txt", tmp_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' > '%s.out' 2>&1", env("TG_PROMTOOL_BIN"), path, path);
    int st = system(cmd);
    char out[4096] = "";
    snprintf(cmd, sizeof(cmd), "%s.out", path);
    if ((f = fopen(cmd, "r")) != NULL) {
        out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
        fclose(f);
    }
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool check metrics failed (%d):\n%s", st, out);
    free(text);
    stop_gateway(pid, 10);
}

/* `s` percent-encoded for a query string (static buffer) */
static const char *url_encode(const char *s)
{
    static char out[1024];
    size_t n = 0;
    for (; *s != '\0' && n + 4 < sizeof(out); ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, 4, "%%%02X", c);
    }
    out[n] = '\0';
    return out;
}

/* GET on Prometheus' HTTP API; the body's JSON. */
static json_t *prom_query(int port, const char *promql)
{
    char url[1200];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", port, url_encode(promql));
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, "Authorization: Basic bm9uZTpub25l");
    json_t *j = r->status == 200 && r->json != NULL ? json_incref(r->json) : NULL;
    resp_free(r);
    return j;
}

/* The first result's value of an instant query, or NAN (none yet). */
static double prom_value(int port, const char *promql)
{
    json_t *j = prom_query(port, promql);
    json_t *v = json_array_get(json_object_get(json_object_get(j, "data"), "result"), 0);
    const char *s = json_string_value(json_array_get(json_object_get(v, "value"), 1));
    double d = s != NULL ? strtod(s, NULL) : 0.0 / 0.0;
    json_decref(j);
    return d;
}

Test(observe, a_real_prometheus_scrapes_the_admin_listener, .timeout = 90)
{
    gw_opts_t o = {0};
    pid_t gw = start(NULL, &o);
    send_n(7, "GET", "/limits/ping", NULL, 200);
    char yml[256], data[256], listen[64];
    snprintf(yml, sizeof(yml), "%s/prometheus.yml", tmp_dir);
    snprintf(data, sizeof(data), "%s/prom-data", tmp_dir);
    int port = free_port();
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", port);
    FILE *f = fopen(yml, "w");
    cr_assert_not_null(f);
    fprintf(f, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tollgate\n"
               "    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
            o.admin_port);
    fclose(f);
    char config_flag[300], data_flag[300];
    snprintf(config_flag, sizeof(config_flag), "--config.file=%s", yml);
    snprintf(data_flag, sizeof(data_flag), "--storage.tsdb.path=%s", data);
    char *argv[] = {(char *)env("TG_PROMETHEUS_BIN"), config_flag, data_flag, listen, "--log.level=warn", NULL};
    pid_t prom = prometheus_pid = spawn(argv, getenv("TG_GATEWAY_LOGS") == NULL);
    double up = 0.0 / 0.0, count = 0.0 / 0.0, deadline = now_s() + 45;
    while (now_s() < deadline) {
        up = prom_value(port, "up{job=\"tollgate\"}");
        count = prom_value(port, "sum(tollgate_requests_total{query=\"ping\",status=\"200\"})");
        if (up == 1 && count == 7)
            break;
        usleep(500 * 1000);
    }
    cr_expect_eq(up, 1, "Prometheus sees the target up (%g)", up);
    cr_expect_eq(count, 7, "Prometheus has the request counter's value (%g)", count);
    /* a histogram it can compute a quantile from */
    double p99 = prom_value(port, "histogram_quantile(0.99, sum by (le) (tollgate_request_duration_seconds_bucket{query=\"ping\"}))");
    cr_expect(p99 > 0 && p99 <= 10, "p99 of ping: %g", p99);
    kill(prom, SIGTERM);
    wait_exit(prom, 20);
    prometheus_pid = 0;
    stop_gateway(gw, 10);
}

/* Every metric name the dashboard's queries use, checked against the HELP/TYPE lines of a scrape. */
Test(observe, the_grafana_dashboard_asks_only_for_metrics_that_exist, .timeout = 60)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/config/grafana/tollgate.json", env("TG_REPO_DIR"));
    json_error_t jerr;
    json_t *dash = json_load_file(path, 0, &jerr);
    cr_assert_not_null(dash, "%s: %s (line %d)", path, jerr.text, jerr.line);
    gw_opts_t o = {0};
    pid_t pid = start(NULL, &o);
    send_n(1, "GET", "/limits/ping", NULL, 200);
    char *text = scrape();
    /* the dump of the whole dashboard: names are found wherever an expr holds them */
    char *all = json_dumps(dash, JSON_COMPACT);
    int names = 0, panels_with_expr = 0;
    for (const char *p = all; (p = strstr(p, "\"expr\":\"")) != NULL; ++panels_with_expr) {
        p += 8;
        const char *end = p;
        while (*end != '\0' && !(*end == '"' && end[-1] != '\\'))
            ++end;
        for (const char *q = p; q < end; ++q) {
            if (strncmp(q, "tollgate_", 9) != 0 && strncmp(q, "process_", 8) != 0)
                continue;
            if (q != p && (q[-1] == '_' || (q[-1] >= 'a' && q[-1] <= 'z')))
                continue;
            char name[128];
            size_t n = 0;
            while (q + n < end && n + 1 < sizeof(name) && ((q[n] >= 'a' && q[n] <= 'z') || q[n] == '_' || (q[n] >= '0' && q[n] <= '9')))
                name[n] = q[n], ++n;
            name[n] = '\0';
            q += n;
            /* a histogram's series are its family's name and a suffix */
            static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
            char family[160], type_line[200];
            snprintf(family, sizeof(family), "%s", name);
            snprintf(type_line, sizeof(type_line), "# TYPE %s ", family);
            if (strstr(text, type_line) == NULL)
                for (size_t s = 0; s != 3; ++s) {
                    size_t fl = strlen(family), sl = strlen(suffixes[s]);
                    if (fl > sl && strcmp(family + fl - sl, suffixes[s]) == 0) {
                        family[fl - sl] = '\0';
                        snprintf(type_line, sizeof(type_line), "# TYPE %s histogram", family);
                        break;
                    }
                }
            cr_expect(strstr(text, type_line) != NULL, "the dashboard uses %s, which /metrics does not have", name);
            ++names;
        }
        p = end;
    }
    cr_expect_geq(panels_with_expr, 8, "the dashboard has its panels (%d queries)", panels_with_expr);
    cr_expect_geq(names, 8);
    free(all);
    free(text);
    json_decref(dash);
    /* and the scrape config Prometheus is told to use is one it accepts */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' check config '%s/config/prometheus.yml' > /dev/null 2>&1", env("TG_PROMTOOL_BIN"), env("TG_REPO_DIR"));
    int st = system(cmd);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool check config config/prometheus.yml: %d", st);
    stop_gateway(pid, 10);
}

Test(observe, a_client_that_leaves_is_counted_as_shed_with_status_499, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(NULL, &o);
    long saved = http_timeout_s;
    http_timeout_s = 1;
    for (int i = 0; i != 2; ++i) {
        resp_t *r = http(PROTOS[i], "GET", "/limits/sleep?seconds=3", NULL, NULL, NULL);
        cr_assert_leq(r->status, 0, "the client gave up first (%s: %ld %s)", proto_name(PROTOS[i]), r->status, r->body);
        resp_free(r);
    }
    http_timeout_s = saved;
    double deadline = now_s() + 10, shed = 0;
    char *text = NULL;
    while (now_s() < deadline) {
        free(text);
        text = scrape();
        if ((shed = metrics_sample(text, "tollgate_shed_total{query=\"sleep\",reason=\"client_gone\"}")) == 2)
            break;
        usleep(100 * 1000);
    }
    cr_expect_eq(shed, 2);
    cr_expect_eq(metrics_sample(text, "tollgate_requests_total{query=\"sleep\",tenant=\"anonymous\",status=\"499\"}"), 2);
    free(text);
    stop_gateway(pid, 10);
}

/* --- the access log --- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

/* start_gateway and start() poll /healthz and /readyz until the gateway serves: those lines are not the test's */
static int is_probe(const char *line)
{
    return strstr(line, "\"path\":\"/readyz\"") != NULL || strstr(line, "\"path\":\"/healthz\"") != NULL;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (nl == NULL)
            break;
        char *copy = strndup(line, (size_t)(nl - line));
        n += !is_probe(copy);
        free(copy);
        line = nl + 1;
    }
    return n;
}

/* Waits until the files hold `n` lines in all (the writer drains every few ms). */
static void wait_lines(const char *a, const char *b, int n)
{
    double deadline = now_s() + 10;
    int have = 0;
    while (now_s() < deadline) {
        char *x = read_file(a), *y = b != NULL ? read_file(b) : strdup("");
        have = count_lines(x) + count_lines(y);
        free(x), free(y);
        if (have >= n)
            break;
        usleep(20 * 1000);
    }
    cr_assert_eq(have, n, "lines in the access log (%s)", a);
}

Test(observe, the_access_log_has_one_json_line_per_request_with_its_id, .timeout = 60)
{
    char log[256];
    snprintf(log, sizeof(log), "%s/access.log", tmp_dir);
    gw_opts_t o = {0};
    pid_t pid = start(log, &o);
    for (int i = 0; i != 6; ++i) {
        char header[256];
        snprintf(header, sizeof(header), "X-Request-Id: obs-%d\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0%d",
                 i, i % 2);
        resp_t *r = http(PROTOS[i % 2], "GET", i < 4 ? "/limits/ping" : "/no/such/route", NULL, NULL, header);
        cr_assert_eq(r->status, i < 4 ? 200 : 404);
        resp_free(r);
    }
    /* h2o's own answer to a body far past its limit (the handler never sees it) is logged too */
    size_t big = 8 * 1024 * 1024;
    char *body = malloc(big + 1);
    memset(body, 'a', big);
    body[big] = '\0';
    resp_t *r = http(PROTO_H1, "POST", "/limits/sleep", body, "application/json", "X-Request-Id: obs-big");
    cr_assert_eq(r->status, 413);
    resp_free(r);
    free(body);
    wait_lines(log, NULL, 7);
    char *text = read_file(log);
    /* the threads' lines come in each thread's order, not the requests': each is checked by its id */
    int i = 0, seen[7] = {0};
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (is_probe(line))
            continue;
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        cr_assert_not_null(j, "a line that is not JSON: %s (%s)", line, jerr.text);
        const char *time = json_string_value(json_object_get(j, "time"));
        int y, mo, d, h, mi, s, ms;
        char z;
        cr_expect(time != NULL && strlen(time) == 24 && sscanf(time, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z) == 8 && z == 'Z',
                  "RFC 3339 time with ms: %s", line);
        cr_expect_str_eq(json_string_value(json_object_get(j, "remote")), "127.0.0.1");
        long status = json_integer_value(json_object_get(j, "status"));
        const char *id = json_string_value(json_object_get(j, "request_id"));
        int n = -1;
        cr_assert(id != NULL && (strcmp(id, "obs-big") == 0 || (sscanf(id, "obs-%d", &n) == 1 && n >= 0 && n < 6)), "%s", line);
        if (n < 0)
            n = 6;
        cr_assert_eq(seen[n]++, 0, "logged twice: %s", line);
        if (n < 6) {
            char tp[64];
            snprintf(tp, sizeof(tp), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0%d", n % 2);
            cr_expect_str_eq(json_string_value(json_object_get(j, "traceparent")), tp, "%s", line);
            cr_expect_str_eq(json_string_value(json_object_get(j, "protocol")), n % 2 ? "HTTP/2" : "HTTP/1.1", "%s", line);
            cr_expect_str_eq(json_string_value(json_object_get(j, "method")), "GET");
            cr_expect_str_eq(json_string_value(json_object_get(j, "tenant")), "anonymous");
            cr_expect(json_is_number(json_object_get(j, "total_ms")) && json_is_number(json_object_get(j, "db_ms")), "%s", line);
            cr_expect(json_integer_value(json_object_get(j, "bytes")) > 0, "%s", line);
            if (n < 4) {
                cr_expect_eq(status, 200, "%s", line);
                cr_expect_str_eq(json_string_value(json_object_get(j, "query")), "ping");
                cr_expect_str_eq(json_string_value(json_object_get(j, "path")), "/limits/ping");
                cr_expect_not_null(json_string_value(json_object_get(j, "backend")), "%s", line);
            } else {
                cr_expect_eq(status, 404, "%s", line);
                cr_expect(json_is_null(json_object_get(j, "query")), "%s", line);
                cr_expect(json_is_null(json_object_get(j, "backend")), "%s", line);
            }
        } else {
            /* h2o's own 413 */
            cr_expect_eq(status, 413, "%s", line);
            cr_expect_str_eq(json_string_value(json_object_get(j, "method")), "POST");
            cr_expect_str_eq(json_string_value(json_object_get(j, "path")), "/limits/sleep");
            cr_expect(json_object_get(j, "traceparent") == NULL, "no traceparent was sent: %s", line);
        }
        json_decref(j);
        ++i;
    }
    cr_assert_eq(i, 7);
    free(text);
    stop_gateway(pid, 10);
}

struct load {
    _Atomic int stop;
    _Atomic int sent; /* requests answered (each with id rot-N, N from 0) */
    _Atomic int failed;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    while (!atomic_load(&l->stop)) {
        int n = atomic_load(&l->sent);
        char header[64];
        snprintf(header, sizeof(header), "X-Request-Id: rot-%d", n);
        resp_t *r = http(PROTOS[n % 2], "GET", "/limits/ping", NULL, NULL, header);
        if (r->status != 200)
            atomic_fetch_add(&l->failed, 1);
        resp_free(r);
        atomic_fetch_add(&l->sent, 1);
    }
    return NULL;
}

/* Marks each rot-N id of `text` in `seen`; returns how many lines it had, and the smallest and largest id. */
static int mark_ids(char *text, char *seen, int max, int *lo, int *hi)
{
    int lines = 0;
    *lo = max, *hi = -1;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (is_probe(line))
            continue;
        ++lines;
        json_t *j = json_loads(line, 0, NULL);
        cr_assert_not_null(j, "a line that is not JSON: %s", line);
        const char *id = json_string_value(json_object_get(j, "request_id"));
        int n;
        cr_assert(id != NULL && sscanf(id, "rot-%d", &n) == 1 && n >= 0 && n < max, "%s", line);
        cr_assert_eq(seen[n], 0, "rot-%d logged twice", n);
        seen[n] = 1;
        *lo = n < *lo ? n : *lo, *hi = n > *hi ? n : *hi;
        json_decref(j);
    }
    return lines;
}

Test(observe, sigusr1_after_a_move_starts_a_new_file_and_loses_no_line, .timeout = 90)
{
    char log[256], moved[300];
    snprintf(log, sizeof(log), "%s/access.log", tmp_dir);
    snprintf(moved, sizeof(moved), "%s.1", log);
    gw_opts_t o = {0};
    pid_t pid = start(log, &o);
    struct load l = {0};
    pthread_t tid;
    pthread_create(&tid, NULL, load_main, &l);
    while (atomic_load(&l.sent) < 100)
        usleep(10 * 1000);
    /* logrotate: move the file, then tell the gateway (its `postrotate`) */
    cr_assert_eq(rename(log, moved), 0);
    int at_move = atomic_load(&l.sent);
    usleep(100 * 1000);
    cr_assert_eq(kill(pid, SIGUSR1), 0);
    int at_signal = atomic_load(&l.sent);
    while (atomic_load(&l.sent) < at_signal + 100)
        usleep(10 * 1000);
    atomic_store(&l.stop, 1);
    pthread_join(tid, NULL);
    int sent = atomic_load(&l.sent);
    cr_assert_eq(atomic_load(&l.failed), 0);
    wait_lines(log, moved, sent);
    char *seen = calloc((size_t)sent, 1);
    char *old = read_file(moved), *fresh = read_file(log);
    int old_lo, old_hi, new_lo, new_hi;
    int in_old = mark_ids(old, seen, sent, &old_lo, &old_hi), in_new = mark_ids(fresh, seen, sent, &new_lo, &new_hi);
    for (int n = 0; n != sent; ++n)
        cr_expect_eq(seen[n], 1, "rot-%d is in neither file", n);
    cr_expect_geq(in_old, at_move, "what was logged before the move is in the moved file");
    cr_expect_gt(in_new, 0, "the new file has what came after the signal");
    /* one client, one request at a time: the ids grow with time, and the old file's all come before the new file's */
    cr_expect_lt(old_hi, new_lo, "the moved file ends (rot-%d) before the new one starts (rot-%d)", old_hi, new_lo);
    cr_expect_geq(new_lo, at_move, "the new file starts after the move (rot-%d, moved at %d)", new_lo, at_move);
    free(old), free(fresh), free(seen);
    stop_gateway(pid, 10);
}

Test(observe, an_access_log_that_cannot_be_written_is_refused_at_start_and_at_reload, .timeout = 60)
{
    /* at start: a config error, exit 1, the message naming the field and the path */
    char err_log[256];
    snprintf(err_log, sizeof(err_log), "%s/gateway.err", tmp_dir);
    gw_opts_t bad = {.extra = json_pack("{s:s}", "access_log", "/nonexistent-dir/access.log")};
    const char *config = write_config(&bad);
    char *argv[] = {(char *)env("TG_GATEWAY_BIN"), "--config", (char *)config, NULL};
    pid_t p = spawn_logged(argv, err_log);
    cr_assert_eq(wait_exit(p, 10), 1);
    char *msg = read_file(err_log);
    cr_expect(strstr(msg, "access_log: /nonexistent-dir/access.log cannot be created") != NULL, "%s", msg);
    free(msg);

    /* at reload: rejected whole (422), and the old file goes on */
    char log[256];
    snprintf(log, sizeof(log), "%s/access.log", tmp_dir);
    gw_opts_t o = {0};
    pid_t pid = start(log, &o);
    send_n(1, "GET", "/limits/ping", NULL, 200);
    /* the same config with another access_log: rewrite the file the gateway reads */
    gw_opts_t again = {.port = o.port, .threads = 2, .with_replica = 1, .admin_port = o.admin_port,
                       .extra = json_pack("{s:s}", "access_log", "/nonexistent-dir/access.log")};
    write_config(&again);
    resp_t *r = admin("POST", "/admin/reload");
    cr_expect_eq(r->status, 422, "%s", r->body);
    cr_expect(strstr(r->body, "access_log") != NULL, "%s", r->body);
    resp_free(r);
    send_n(1, "GET", "/limits/ping", NULL, 200);
    wait_lines(log, NULL, 2);
    stop_gateway(pid, 10);
}

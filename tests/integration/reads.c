/*
 * Reads toward the database's limit, on live gateways against the real primary and
 * replica (each test starts its own): reads sharing one Sync (a failing one fails
 * alone, statement timeouts stay per call, a write never shares one), one client
 * connection using more than its thread's share of the pool, and list reads streamed
 * in bounded memory (whole when they end well, cut off when they do not).
 *
 * A burst is many GETs at once on one HTTP/2 connection (nghttp, prior knowledge):
 * they reach the gateway in one read, so one turn of its loop, and share Syncs. Which
 * reads shared a transaction shows in their transaction_timestamp().
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

/* a gateway as `o` says, once its backends are up */
static pid_t start_ready(gw_opts_t o)
{
    pid_t pid = start_gateway(&o);
    wait_backends_up(15);
    return pid;
}

/* a gateway of `threads` threads and a pool of `pool` on the primary alone (reads and writes share its connections) */
static pid_t start_primary_only(int threads, int pool, json_t *extra)
{
    return start_ready((gw_opts_t){.threads = threads, .pool_size = pool, .acquire_timeout_ms = 5000, .extra = extra});
}

typedef struct {
    int code;          /* 0: no answer */
    json_t *body;      /* its JSON, matched to the path through the body's "n" (or NULL) */
} answer_t;

/* a time of nghttp's statistics ("+1.06ms", "+113us", "+2.1s") in ms */
static double stat_ms(const char *t)
{
    char *end;
    double v = strtod(t + (*t == '+'), &end);
    return strcmp(end, "us") == 0 ? v / 1000 : strcmp(end, "ms") == 0 ? v : strcmp(end, "s") == 0 ? v * 1000 : -1;
}

/*
 * GETs paths[0..n) at once on one HTTP/2 connection (nghttp with `opts`); fills
 * codes[i] and, if not NULL, end_ms[i] (when its answer ended, from the connection's
 * start) from nghttp's statistics (by path), and returns the JSON objects of the
 * bodies, in arrival order (none with -n). nghttp asks for gzip by default: these
 * tests count and time the plain bytes, so it takes identity.
 */
static json_t *burst_with(const char *opts, const char *const *paths, int n, int *codes, double *end_ms)
{
    char cmd[8192];
    int len = snprintf(cmd, sizeof(cmd), "timeout 30 nghttp -s -H 'accept-encoding: identity' %s", opts);
    for (int i = 0; i != n; ++i)
        len += snprintf(cmd + len, sizeof(cmd) - (size_t)len, " '%s%s'", getenv("TG_URL"), paths[i]);
    cr_assert_lt(len, (int)sizeof(cmd) - 1);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, got = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + got, 1, cap - got - 1, p)) > 0)
        if ((got += k) + 1 == cap)
            out = realloc(out, cap *= 2);
    out[got] = '\0';
    cr_assert_eq(pclose(p), 0, "nghttp failed:\n%s", out);
    char *stats = strstr(out, "***** Statistics *****");
    cr_assert_not_null(stats, "no statistics in nghttp's output:\n%s", out);
    *stats = '\0';
    /* the bodies: JSON objects one after another */
    json_t *bodies = json_array();
    for (size_t at = 0; out[at] != '\0';) {
        json_error_t e;
        json_t *j = json_loadb(out + at, strlen(out + at), JSON_DISABLE_EOF_CHECK, &e);
        cr_assert_not_null(j, "a body that is not JSON at %zu: %s", at, out + at);
        json_array_append_new(bodies, j);
        at += e.position;
        while (out[at] == '\n' || out[at] == ' ')
            ++at;
    }
    /* "  id  responseEnd requestStart  process code size request path" */
    for (int i = 0; i != n; ++i)
        codes[i] = 0;
    for (char *line = strtok(stats + 1, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int id, code;
        char a[32], b[32], c[32], size[32], path[512];
        if (sscanf(line, " %d %31s %31s %31s %d %31s %511s", &id, a, b, c, &code, size, path) != 7)
            continue;
        for (int i = 0; i != n; ++i) {
            if (strcmp(paths[i], path) != 0)
                continue;
            codes[i] = code;
            if (end_ms != NULL)
                end_ms[i] = stat_ms(a);
        }
    }
    free(out);
    return bodies;
}

static json_t *burst(const char *const *paths, int n, int *codes)
{
    return burst_with("", paths, n, codes, NULL);
}

/* the body whose "n" is `n` (reads answer their n back), or NULL */
static json_t *body_of(json_t *bodies, int n)
{
    size_t i;
    json_t *b;
    json_array_foreach(bodies, i, b) {
        json_t *v = json_object_get(b, "n");
        if (json_is_integer(v) && json_integer_value(v) == n)
            return b;
    }
    return NULL;
}

static const char *tx_of(json_t *body)
{
    return body != NULL ? json_string_value(json_object_get(body, "tx")) : NULL;
}

/* Calls `path` until every worker thread has measured its query (a query never measured takes a connection of its own). */
static void warm(const char *path, int times)
{
    for (int i = 0; i != times; ++i) {
        resp_t *r = http(i % 2 ? PROTO_H1 : PROTO_H2, "GET", path, NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "warming %s: %ld %s", path, r->status, r->body);
        resp_free(r);
    }
}

Test(batch, a_failing_read_fails_alone_and_the_others_answer_right, .timeout = 60)
{
    pid_t gw = start_primary_only(1, 2, NULL);
    warm("/batch/div/7", 20);
    enum { N = 21, BAD = 10 };
    char bufs[N][32];
    const char *paths[N];
    for (int i = 0; i != N; ++i) {
        snprintf(bufs[i], sizeof(bufs[i]), "/batch/div/%d", i == BAD ? 0 : i + 1);
        paths[i] = bufs[i];
    }
    int codes[N];
    json_t *bodies = burst(paths, N, codes);
    int shared = 0;
    for (int i = 0; i != N; ++i) {
        if (i == BAD) {
            cr_expect_eq(codes[i], 400, "the division by zero: %d", codes[i]);
            continue;
        }
        cr_expect_eq(codes[i], 200, "%s: %d", paths[i], codes[i]);
        json_t *b = body_of(bodies, i + 1);
        cr_assert_not_null(b, "no answer for %s", paths[i]);
        cr_expect_eq(json_integer_value(json_object_get(b, "q")), 1000 / (i + 1), "%s: a wrong answer", paths[i]);
        for (int j = 0; j != i; ++j)
            if (j != BAD && tx_of(body_of(bodies, j + 1)) != NULL && strcmp(tx_of(b), tx_of(body_of(bodies, j + 1))) == 0)
                ++shared;
    }
    /* the reads of the burst shared transactions (Syncs): else this test tested nothing */
    cr_expect_gt(shared, 0, "no two reads of the burst shared a transaction");
    json_decref(bodies);
    stop_gateway(gw, 10);
}

Test(batch, statement_timeouts_stay_per_call, .timeout = 60)
{
    pid_t gw = start_primary_only(1, 2, NULL);
    warm("/batch/nap/9?s=0", 20);
    /*
     * 5 and 6 sleep 200 ms each, in one transaction (one batch): within their own
     * 300 ms each, though together they pass it; 2 passes its own and fails alone.
     */
    const char *paths[] = {"/batch/nap/1?s=0", "/batch/nap/5?s=0.2", "/batch/nap/6?s=0.2", "/batch/nap/2?s=1",
                           "/batch/nap/3?s=0", "/batch/nap/4?s=0"};
    int codes[6];
    double t0 = now_s();
    json_t *bodies = burst(paths, 6, codes);
    double took = now_s() - t0;
    cr_expect_eq(codes[3], 504, "the call past its timeout: %d", codes[3]);
    int ns[] = {1, 5, 6, 0, 3, 4};
    for (int i = 0; i != 6; ++i) {
        if (i == 3)
            continue;
        cr_expect_eq(codes[i], 200, "%s: %d", paths[i], codes[i]);
        cr_expect_not_null(body_of(bodies, ns[i]), "no answer for %s", paths[i]);
    }
    const char *t5 = tx_of(body_of(bodies, 5)), *t6 = tx_of(body_of(bodies, 6));
    cr_expect(t5 != NULL && t6 != NULL && strcmp(t5, t6) == 0, "5 and 6 did not share a transaction (%s, %s): nothing tested",
              t5 != NULL ? t5 : "-", t6 != NULL ? t6 : "-");
    cr_expect_lt(took, 5.0, "the burst took %.2f s", took);
    json_decref(bodies);
    stop_gateway(gw, 10);
}

Test(batch, a_write_never_shares_a_sync, .timeout = 60)
{
    pid_t gw = start_primary_only(1, 2, NULL);
    char k0[64], k1[64], p0[96], p1[96];
    snprintf(k0, sizeof(k0), "old-%d-%ld", (int)getpid(), (long)(now_s() * 1000));
    snprintf(k1, sizeof(k1), "new-%d-%ld", (int)getpid(), (long)(now_s() * 1000));
    snprintf(p0, sizeof(p0), "/batch/note/%s", k0);
    snprintf(p1, sizeof(p1), "/batch/note/%s", k1);
    warm("/batch/div/7", 20);
    warm(p0, 1); /* k0 is there: storing it again fails */
    /* had the write shared the failing read's Sync, it would have been answered and then rolled back with it */
    const char *paths[] = {"/batch/div/1", p1, "/batch/div/0", "/batch/div/2", p0, "/batch/div/3"};
    int codes[6];
    json_t *bodies = burst(paths, 6, codes);
    cr_expect_eq(codes[2], 400, "the failing read: %d", codes[2]);
    cr_expect_eq(codes[1], 200, "the new write, among failing calls: %d", codes[1]);
    cr_expect_eq(codes[4], 409, "the write of a key stored before: %d", codes[4]);
    for (int n = 1; n <= 3; ++n) {
        json_t *b = body_of(bodies, n);
        cr_assert_not_null(b, "no answer for /batch/div/%d", n);
        cr_expect_eq(json_integer_value(json_object_get(b, "q")), 1000 / n);
    }
    /* the write committed, in a transaction of its own */
    const char *params[] = {k1};
    char *count = pg_sql_params(0, "SELECT count(*) FROM batch_notes WHERE k = $1", 1, params);
    cr_expect_str_eq(count, "1", "the write did not commit");
    free(count);
    size_t i;
    json_t *b, *write = NULL;
    json_array_foreach(bodies, i, b) if (json_is_string(json_object_get(b, "k"))) write = b;
    cr_assert_not_null(write, "no answer of the write");
    for (int n = 1; n <= 3; ++n)
        cr_expect_str_neq(tx_of(body_of(bodies, n)), tx_of(write), "the write shared a transaction with /batch/div/%d", n);
    json_decref(bodies);
    stop_gateway(gw, 10);
}

/* Sessions of the gateway running pg_sleep on the primary now. */
static int sleeping_sessions(void)
{
    char *v = pg_sql(0, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tollgate' AND state = 'active' "
                        "AND query LIKE '%pg_sleep%'");
    int n = v != NULL ? atoi(v) : -1;
    free(v);
    return n;
}

Test(relay, one_client_connection_uses_more_than_its_threads_share_of_the_pool, .timeout = 60)
{
    /*
     * pool.size 4 over 2 threads: 2 connections each; one HTTP/2 connection lands on one
     * thread. Without the adaptive limit: 1 s calls after 50 ms ones would look like an
     * overloaded backend to it (20 times its floor) and the queued ones be shed.
     */
    pid_t gw = start_ready((gw_opts_t){.threads = 2, .pool_size = 4, .acquire_timeout_ms = 5000, .no_overload = 1});
    warm("/slow/read?s=0.05", 8);
    char url[256], out[128];
    snprintf(url, sizeof(url), "%s/slow/read?s=1", getenv("TG_URL"));
    snprintf(out, sizeof(out), "/tmp/tollgate-relay-%d.out", (int)getpid());
    char *const argv[] = {"/usr/bin/h2load", "-c1", "-m8", "-n8", url, NULL};
    pid_t h = spawn_logged(argv, out);
    int most = 0;
    for (double deadline = now_s() + 2.5; now_s() < deadline;) {
        int n = sleeping_sessions();
        if (n > most)
            most = n;
        usleep(50 * 1000);
    }
    cr_expect_eq(wait_exit(h, 20), 0, "h2load failed");
    char cmd[256], line[256];
    snprintf(cmd, sizeof(cmd), "grep -E '^(requests|status codes):' %s", out);
    FILE *p = popen(cmd, "r");
    int ok = 0;
    while (fgets(line, sizeof(line), p) != NULL)
        ok += strstr(line, "8 succeeded") != NULL || strstr(line, "8 2xx") != NULL;
    pclose(p);
    unlink(out);
    cr_expect_eq(ok, 2, "not every call of the connection answered 200");
    cr_expect_gt(most, 2, "one client connection reached only %d backend connections (its thread has 2)", most);
    stop_gateway(gw, 10);
}

/* ------------------------------------------------------------------------------ */

static pid_t start_streaming(int max_rows)
{
    return start_ready((gw_opts_t){.threads = 2, .pool_size = 4, .with_replica = 1, .extra = json_pack("{s:i}", "max_rows", max_rows)});
}

/* Is `r` the whole array of rows 1..n? */
static void expect_rows(const resp_t *r, int n)
{
    cr_assert_eq(r->status, 200, "status %ld: %.200s", r->status, r->body);
    cr_assert(json_is_array(r->json), "not a JSON array (%zu bytes)", r->body_len);
    cr_assert_eq(json_array_size(r->json), (size_t)n);
    for (int i = 0; i != n; ++i)
        if (json_integer_value(json_object_get(json_array_get(r->json, (size_t)i), "i")) != i + 1)
            cr_assert_fail("row %d is not row %d", i, i + 1);
}

/* GET `path` over `p`: the whole array of rows 1..n */
static void expect_get_rows(proto_t p, const char *path, int n)
{
    resp_t *r = http(p, "GET", path, NULL, NULL, NULL);
    expect_rows(r, n);
    resp_free(r);
}

/*
 * GETs $TG_URL`path` over HTTP `version` (CURL_HTTP_VERSION_*), its body to
 * `write`(`arg`): the curl result; *status the HTTP status, *length the
 * Content-Length (-1: none).
 */
static CURLcode curl_get(const char *path, long version, curl_write_callback write, void *arg, long *status, curl_off_t *length)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", getenv("TG_URL"), path);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, arg);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(e);
    *status = 0;
    *length = -1;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, length);
    curl_easy_cleanup(e);
    return rc;
}

Test(stream, a_result_of_several_mb_arrives_whole_and_parses, .timeout = 120)
{
    pid_t gw = start_streaming(100000);
    for (int k = 0; k != 2; ++k) {
        proto_t p = PROTOS[k];
        resp_t *r = http(p, "GET", "/stream/rows?n=50000", NULL, NULL, NULL);
        expect_rows(r, 50000);
        cr_expect_gt(r->body_len, 5u << 20, "%zu bytes", r->body_len);
        /* sent as it came: no length up front (HTTP/1.1 chunked) */
        char *cl = resp_header(r, "content-length"), *te = resp_header(r, "transfer-encoding");
        cr_expect_null(cl, "%s: a streamed answer with a content-length", proto_name(p));
        if (p == PROTO_H1)
            cr_expect(te != NULL && strcmp(te, "chunked") == 0, "HTTP/1.1 without chunked encoding");
        free(cl);
        free(te);
        resp_free(r);
        /* a small result is answered whole, with its length */
        r = http(p, "GET", "/stream/rows?n=10", NULL, NULL, NULL);
        expect_rows(r, 10);
        cl = resp_header(r, "content-length");
        cr_expect_not_null(cl, "%s: a small answer without its length", proto_name(p));
        free(cl);
        resp_free(r);
        r = http(p, "GET", "/stream/rows?n=0", NULL, NULL, NULL);
        cr_expect_eq(r->status, 200);
        cr_expect_str_eq(r->body, "[]");
        resp_free(r);
    }
    /* HTTP/1.0 has no chunks: its answer comes whole, with its length, never streamed */
    http_body_t g = {0};
    long status;
    curl_off_t len;
    cr_assert_eq(curl_get("/stream/rows?n=50000", CURL_HTTP_VERSION_1_0, http_append_body, &g, &status, &len), CURLE_OK);
    cr_expect_eq(status, 200);
    cr_expect_eq((size_t)len, g.n, "HTTP/1.0: a length of %lld for %zu bytes", (long long)len, g.n);
    json_t *j = json_loadb(g.p, g.n, 0, NULL);
    cr_expect(json_is_array(j) && json_array_size(j) == 50000, "HTTP/1.0: not the whole array");
    json_decref(j);
    free(g.p);
    stop_gateway(gw, 10);
}

Test(stream, max_rows_is_a_500_before_the_answer_starts_and_a_cut_after, .timeout = 120)
{
    pid_t gw = start_streaming(2000);
    for (int k = 0; k != 2; ++k) {
        proto_t p = PROTOS[k];
        /* exactly max_rows: whole */
        expect_get_rows(p, "/stream/rows?n=2000", 2000);
        /* small rows: the 2001st comes before a chunk is full, so the answer is a 500 that says why */
        resp_t *r = http(p, "GET", "/stream/small?n=2001", NULL, NULL, NULL);
        cr_expect_eq(r->status, 500, "%s: %ld", proto_name(p), r->status);
        cr_expect(jstr(r, "type") != NULL && strstr(jstr(r, "type"), "too-many-rows") != NULL, "%s", r->body);
        resp_free(r);
        /* big rows: the answer has started when the 2001st comes: cut off, never a complete-looking array */
        r = http(p, "GET", "/stream/rows?n=5000", NULL, NULL, NULL);
        cr_expect_lt(r->status, 0, "%s: a cut-off answer looked whole: status %ld, %zu bytes", proto_name(p), r->status, r->body_len);
        cr_expect_null(r->json, "%s: the cut-off answer parses as JSON", proto_name(p));
        resp_free(r);
        /* an error after rows were sent: cut off too; one before any: answered as such */
        r = http(p, "GET", "/stream/fail?n=1500", NULL, NULL, NULL);
        cr_expect_lt(r->status, 0, "%s: an answer that failed midway looked whole: %ld", proto_name(p), r->status);
        cr_expect_null(r->json);
        resp_free(r);
        r = http(p, "GET", "/stream/fail?n=3", NULL, NULL, NULL);
        cr_expect_eq(r->status, 400, "%s: %ld", proto_name(p), r->status);
        resp_free(r);
    }
    /* the gateway goes on serving */
    expect_get_rows(PROTO_H2, "/stream/rows?n=100", 100);
    stop_gateway(gw, 10);
}

/* the gateway's resident memory (`field` VmRSS) or its peak so far (VmHWM), in kB */
static long rss_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

struct counted {
    size_t n;
    char first, last;
};

static size_t count_body(char *p, size_t size, size_t n, void *arg)
{
    struct counted *c = arg;
    if (c->n == 0 && size * n != 0)
        c->first = p[0];
    if (size * n != 0)
        c->last = p[size * n - 1];
    c->n += size * n;
    return size * n;
}

Test(stream, a_100_mb_answer_in_a_few_mb, .timeout = 180)
{
    pid_t gw = start_streaming(1000000);
    /* warm: every thread's buffers and connections as they are after ordinary use */
    for (int k = 0; k != 4; ++k)
        expect_get_rows(PROTOS[k % 2], "/stream/rows?n=20000", 20000);
    long before = rss_kb(gw, "VmRSS");
    struct counted c = {0};
    long status;
    curl_off_t len;
    CURLcode rc = curl_get("/stream/rows?n=900000", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, count_body, &c, &status, &len);
    long after = rss_kb(gw, "VmHWM");
    cr_assert_eq(rc, CURLE_OK, "%s", curl_easy_strerror(rc));
    cr_expect_eq(status, 200);
    cr_expect_gt(c.n, (size_t)100 << 20, "only %zu bytes", c.n);
    cr_expect(c.first == '[' && c.last == ']', "not a whole array");
    cr_log_info("a %zu-byte answer: resident memory %ld kB before, at most %ld kB while it was served", c.n, before, after);
    if (getenv("TG_ASAN") == NULL) /* AddressSanitizer's shadow memory and quarantine are no gateway's */
        cr_expect_lt(after - before, 16 * 1024, "resident memory grew by %ld kB for a %zu-byte answer", after - before, c.n);
    stop_gateway(gw, 10);
}

/* A client that asks for `path` over HTTP/1.1 and then reads nothing: the socket (close it to go). */
static int ask_and_stall(const char *path)
{
    int port = 0;
    cr_assert_eq(sscanf(getenv("TG_URL"), "http://127.0.0.1:%d", &port), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0), small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    return fd;
}

Test(stream, a_client_that_stops_reading_holds_no_other_call, .timeout = 90)
{
    /* one thread, 2 connections per backend: the stalled stream holds one, and nothing may wait behind it */
    pid_t gw = start_ready((gw_opts_t){.threads = 1, .pool_size = 2, .with_replica = 1, .extra = json_pack("{s:i}", "max_rows", 1000000)});
    warm("/batch/div/7", 10);
    warm("/stream/rows?n=10", 4); /* measured as quick: a pipeline would let point reads queue behind it */
    /*
     * A slow reader on the same HTTP/2 connection as point reads sent with it (a
     * 63-byte stream window: the stream crawls), while the stream's query is still
     * measured as quick: they must not queue behind it on its backend connection.
     */
    const char *paths[] = {"/stream/rows?n=60000", "/batch/div/1", "/batch/div/2", "/batch/div/3", "/batch/div/4"};
    int codes[5];
    double end_ms[5];
    json_t *none = burst_with("-n -w 6", paths, 5, codes, end_ms);
    json_decref(none);
    cr_expect_eq(codes[0], 200, "the slow stream: %d", codes[0]);
    for (int i = 1; i != 5; ++i) {
        cr_expect_eq(codes[i], 200, "%s: %d", paths[i], codes[i]);
        cr_expect_lt(end_ms[i], 500, "%s ended after %.0f ms, behind the stream (%.0f ms)", paths[i], end_ms[i], end_ms[0]);
    }
    /* the point reads' bound means something only if the stream outlasts it well (it took 0.9 to 1.5 s for 30,000 rows) */
    cr_expect_gt(end_ms[0], 1000, "the stream took %.0f ms: too fast to show anything", end_ms[0]);
    int fd = ask_and_stall("/stream/rows?n=400000"); /* ~50 MB: far more than the sockets hold */
    usleep(1500 * 1000); /* its chunks fill the sockets; the stream pauses its connection */
    for (int i = 0; i != 20; ++i) {
        double t0 = now_s();
        resp_t *r = http(i % 2 ? PROTO_H1 : PROTO_H2, "GET", "/batch/div/8", NULL, NULL, NULL);
        double took = now_s() - t0;
        cr_expect_eq(r->status, 200);
        cr_expect_lt(took, 1.0, "a point read took %.2f s beside a stalled stream", took);
        resp_free(r);
    }
    close(fd);
    /* the gateway goes on: the stream's connection comes back */
    usleep(500 * 1000);
    expect_get_rows(PROTO_H1, "/stream/rows?n=30000", 30000);
    stop_gateway(gw, 10);
}

struct fetched {
    proto_t p;
    const char *path;
    resp_t *r;
};

static void *fetch_thread(void *arg)
{
    struct fetched *f = arg;
    f->r = http(f->p, "GET", f->path, NULL, NULL, NULL);
    return NULL;
}

Test(stream, a_read_lost_before_its_answer_started_is_sent_again, .timeout = 90)
{
    pid_t gw = start_streaming(100000);
    for (int k = 0; k != 2; ++k) {
        /* 300 rows (~36 KB, under a chunk): 299 reach the gateway, then the server pauses; its session is ended then */
        struct fetched f = {PROTOS[k], "/stream/nap?n=300&s=1.5", NULL};
        pthread_t t;
        pthread_create(&t, NULL, fetch_thread, &f);
        static const char where[] = "FROM pg_stat_activity WHERE query LIKE '%repeat(''z''%' AND state = 'active' "
                                    "AND pid <> pg_backend_pid()";
        char q[512], *running = NULL;
        snprintf(q, sizeof(q), "SELECT count(*) %s", where);
        for (double deadline = now_s() + 5; now_s() < deadline && (running == NULL || atoi(running) == 0); usleep(20 * 1000)) {
            free(running);
            running = pg_sql(1, q);
        }
        cr_expect(running != NULL && atoi(running) > 0, "the read never ran on the replica");
        free(running);
        usleep(500 * 1000); /* its first rows are at the gateway; the server sleeps before the last */
        snprintf(q, sizeof(q), "SELECT count(pg_terminate_backend(pid)) %s", where);
        char *killed = pg_sql(1, q);
        cr_expect(killed != NULL && atoi(killed) > 0, "no session to end");
        free(killed);
        pthread_join(t, NULL);
        /* answered by the retry (on another backend): every row, once */
        expect_rows(f.r, 300);
        resp_free(f.r);
    }
    stop_gateway(gw, 10);
}

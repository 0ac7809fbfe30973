/*
 * What browsers and HTTP caches see (part of the main suite: the gateway tests/run.sh
 * starts with tests/integration/config.json, whose `cors` lists https://app.example
 * and http://localhost:3000 with max_age_s 300, and whose `compression` has
 * min_bytes 1024): HEAD on GET routes and built-ins, CORS preflights and simple
 * requests, gzip. Every test runs over HTTP/1.1 and HTTP/2.
 */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "http.h"
#include "proc.h"


static resp_t *get(proto_t p, const char *method, const char *path, const char *header, long status)
{
    resp_t *r = http(p, method, path, NULL, NULL, header);
    cr_assert_eq(r->status, status, "[%s] %s %s: %ld, want %ld: %s", proto_name(p), method, path, r->status, status, r->body);
    cr_assert_eq(r->http_version, p == PROTO_H1 ? 1 : 2, "[%s] answered over HTTP/%ld", proto_name(p), r->http_version);
    return r;
}

/* asserts response header `name` is `want` (NULL: absent) */
static void assert_header(const resp_t *r, proto_t p, const char *name, const char *want)
{
    char *v = resp_header(r, name);
    if (want == NULL)
        cr_assert_null(v, "[%s] %s: %s, want none", proto_name(p), name, v);
    else
        cr_assert(v != NULL && strcmp(v, want) == 0, "[%s] %s: %s, want %s", proto_name(p), name, v != NULL ? v : "(none)", want);
    free(v);
}

/* asserts response header `name` holds `part` */
static void assert_header_has(const resp_t *r, proto_t p, const char *name, const char *part)
{
    char *v = resp_header(r, name);
    cr_assert(v != NULL && strstr(v, part) != NULL, "[%s] %s: %s, want it to hold %s", proto_name(p), name, v != NULL ? v : "(none)",
              part);
    free(v);
}

/* the sum of /metrics samples whose line starts with `prefix` (the main suite's admin listener) */
static double metric_sum(const char *prefix)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", getenv("TG_ADMIN_URL") != NULL ? getenv("TG_ADMIN_URL") : "http://127.0.0.1:9090");
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "scrape: %ld", r->status);
    double sum = 0;
    size_t n = strlen(prefix);
    for (const char *line = r->body; line != NULL && *line != '\0'; line = strchr(line, '\n'), line = line != NULL ? line + 1 : NULL)
        if (strncmp(line, prefix, n) == 0 && strchr(line, ' ') != NULL)
            sum += strtod(strchr(line, ' ') + 1, NULL);
    resp_free(r);
    return sum;
}

/* --- HEAD --- */

Test(head, a_point_read_has_its_gets_headers_and_no_body)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *g = get(p, "GET", "/users/3", NULL, 200);
        resp_t *h = get(p, "HEAD", "/users/3", NULL, 200);
        cr_assert_eq(h->body_len, 0, "[%s] HEAD sent %zu body bytes", proto_name(p), h->body_len);
        char *len = resp_header(g, "content-length");
        cr_assert_not_null(len);
        cr_assert_eq((size_t)atol(len), g->body_len);
        assert_header(h, p, "content-length", len);
        assert_header(h, p, "content-type", "application/json");
        assert_header_has(h, p, "ratelimit", "r=");
        assert_header_has(h, p, "ratelimit-policy", "\"tenant\"");
        char *id = resp_header(h, "x-request-id");
        cr_assert(id != NULL && strlen(id) == 16, "[%s] x-request-id %s", proto_name(p), id);
        free(id);
        free(len);
        resp_free(g);
        resp_free(h);
    }
}

Test(head, sends_no_body_bytes_over_http1_on_a_kept_connection)
{
    /* the next answer on the connection starts right after the HEAD's head: not one body byte between them */
    const char *key = getenv("TG_API_KEY");
    char req[1024];
    snprintf(req, sizeof(req),
             "HEAD /users/4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
             "HEAD /stream/rows?n=900 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
             "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             key, key);
    size_t n;
    char *all = http_raw(req, &n);
    char *first_end = strstr(all, "\r\n\r\n");
    cr_assert_not_null(first_end, "%s", all);
    cr_assert_eq(strncmp(all, "HTTP/1.1 200 ", 13), 0, "%s", all);
    cr_assert_not_null(strcasestr(all, "content-length: "), "the point read's HEAD has its GET's length: %s", all);
    char *second = first_end + 4, *second_end = strstr(second, "\r\n\r\n");
    cr_assert_eq(strncmp(second, "HTTP/1.1 200 ", 13), 0, "the streamed HEAD's head follows the first one's at once: %s", all);
    cr_assert_not_null(second_end);
    *second_end = '\0';
    cr_assert_null(strcasestr(second, "content-length"), "a streamed GET has no length, so neither has its HEAD: %s", second);
    cr_assert_null(strcasestr(second, "transfer-encoding"), "%s", second);
    char *third = second_end + 4;
    cr_assert_eq(strncmp(third, "HTTP/1.1 200 ", 13), 0, "then the third answer: %s", third);
    cr_assert_not_null(strstr(third, "{\"status\":\"ok\"}"));
    free(all);
}

Test(head, runs_the_query_and_counts_as_it)
{
    const char *series = "tollgate_requests_total{query=\"stream_small\",tenant=\"test\",status=\"200\"}";
    double before = metric_sum(series);
    FOR_EACH_PROTO(p)
    {
        resp_t *h = get(p, "HEAD", "/stream/small?n=3", NULL, 200);
        cr_assert_eq(h->body_len, 0);
        assert_header(h, p, "content-length", "25"); /* [{"i":1},{"i":2},{"i":3}] */
        resp_free(h);
    }
    cr_assert_eq(metric_sum(series) - before, 2, "each HEAD is a call of its query");
    /* its parameters are checked like the GET's */
    FOR_EACH_PROTO(p)
    {
        resp_t *h = get(p, "HEAD", "/stream/small?n=x", NULL, 400);
        cr_assert_eq(h->body_len, 0);
        assert_header(h, p, "content-type", "application/problem+json");
        resp_free(h);
    }
}

Test(head, on_a_streamed_route_ends_cleanly)
{
    const char *series = "tollgate_requests_total{query=\"stream_rows_head\",tenant=\"test\",status=\"200\"}";
    double before = metric_sum(series);
    FOR_EACH_PROTO(p)
    {
        /* 900 rows of about 120 bytes: its GET streams (no Content-Length) */
        resp_t *g = get(p, "GET", "/stream/head_rows?n=900", NULL, 200);
        cr_assert(json_is_array(g->json) && json_array_size(g->json) == 900, "[%s] %.100s", proto_name(p), g->body);
        assert_header(g, p, "content-length", NULL);
        resp_t *h = get(p, "HEAD", "/stream/head_rows?n=900", NULL, 200);
        cr_assert_eq(h->body_len, 0, "[%s] HEAD sent %zu body bytes", proto_name(p), h->body_len);
        assert_header(h, p, "content-type", "application/json");
        assert_header(h, p, "content-length", NULL);
        resp_free(g);
        resp_free(h);
        /* past max_rows (1000) the GET is cut off midway; the HEAD, answered at the end, says 500 */
        h = get(p, "HEAD", "/stream/head_rows?n=1500", NULL, 500);
        cr_assert_eq(h->body_len, 0);
        assert_header(h, p, "content-type", "application/problem+json");
        resp_free(h);
    }
    cr_assert_eq(metric_sum(series) - before, 4, "two GETs and two HEADs answered 200");
}

Test(head, of_the_built_ins)
{
    FOR_EACH_PROTO(p)
    {
        const char *paths[] = {"/healthz", "/readyz"};
        for (int i = 0; i != 2; ++i) {
            resp_t *h = http(p, "HEAD", paths[i], NULL, NULL, "Authorization:");
            cr_assert(h->status == 200 || (i == 1 && h->status == 503), "[%s] HEAD %s: %ld", proto_name(p), paths[i], h->status);
            cr_assert_eq(h->body_len, 0, "[%s] HEAD %s sent a body", proto_name(p), paths[i]);
            char *len = resp_header(h, "content-length");
            cr_assert(len != NULL && atol(len) > 0, "[%s] HEAD %s: content-length %s", proto_name(p), paths[i], len);
            free(len);
            resp_free(h);
        }
    }
}

Test(head, only_where_get_is)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = get(p, "HEAD", "/notes", NULL, 405);
        assert_header(r, p, "allow", "POST");
        cr_assert_eq(r->body_len, 0);
        resp_free(r);
    }
}

/* A GET route whose query writes (batch_note INSERTs its k) never runs on a HEAD: 405, and nothing stored. */
Test(head, never_runs_a_write)
{
    FOR_EACH_PROTO(p)
    {
        char path[96], k[64];
        snprintf(k, sizeof(k), "head-%d-%d", (int)p, (int)getpid());
        snprintf(path, sizeof(path), "/batch/note/%s", k);
        resp_t *r = get(p, "HEAD", path, NULL, 405);
        assert_header(r, p, "allow", "GET");
        resp_free(r);
        const char *params[] = {k};
        char *n = pg_sql_params(0, "SELECT count(*) FROM batch_notes WHERE k = $1", 1, params);
        cr_assert(n != NULL && strcmp(n, "0") == 0, "[%s] a HEAD stored %s: %s", proto_name(p), k, n != NULL ? n : "(no answer)");
        free(n);
        r = get(p, "GET", path, NULL, 200); /* the GET itself still writes */
        resp_free(r);
        n = pg_sql_params(0, "SELECT count(*) FROM batch_notes WHERE k = $1", 1, params);
        cr_assert(n != NULL && strcmp(n, "1") == 0, "[%s] the GET stored %s: %s", proto_name(p), k, n != NULL ? n : "(no answer)");
        free(n);
    }
}

/* --- CORS --- */

#define PREFLIGHT(origin, method) "Authorization:\nOrigin: " origin "\nAccess-Control-Request-Method: " method

Test(cors, preflight_from_an_allowed_origin)
{
    FOR_EACH_PROTO(p)
    {
        /* no key: browsers send none with a preflight */
        resp_t *r = get(p, "OPTIONS", "/users/1",
                        PREFLIGHT("https://app.example", "PATCH") "\nAccess-Control-Request-Headers: authorization, content-type", 204);
        assert_header(r, p, "access-control-allow-origin", "https://app.example");
        assert_header(r, p, "access-control-allow-methods", "GET, HEAD, PATCH, DELETE");
        assert_header(r, p, "access-control-allow-headers", "Authorization, X-API-Key, Content-Type, X-Request-Id, traceparent, Tollgate-Read-After");
        assert_header(r, p, "access-control-max-age", "300");
        assert_header_has(r, p, "vary", "origin");
        assert_header(r, p, "content-length", NULL);
        assert_header(r, p, "ratelimit", NULL);
        cr_assert_eq(r->body_len, 0);
        resp_free(r);
        /* a path without routes */
        r = get(p, "OPTIONS", "/no/such/path", PREFLIGHT("http://localhost:3000", "GET"), 404);
        assert_header(r, p, "access-control-allow-origin", "http://localhost:3000");
        resp_free(r);
    }
}

Test(cors, preflight_from_another_origin_is_403_without_cors_headers)
{
    static const char *const others[] = {PREFLIGHT("https://evil.example", "GET"), PREFLIGHT("http://app.example", "GET"),
                                         PREFLIGHT("https://app.example:8443", "GET"), PREFLIGHT("null", "GET")};
    FOR_EACH_PROTO(p)
    {
        for (size_t i = 0; i != sizeof(others) / sizeof(others[0]); ++i) {
            resp_t *r = get(p, "OPTIONS", "/users/1", others[i], 403);
            cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:origin-not-allowed");
            assert_header(r, p, "access-control-allow-origin", NULL);
            assert_header(r, p, "access-control-allow-methods", NULL);
            assert_header_has(r, p, "vary", "origin");
            resp_free(r);
        }
    }
}

Test(cors, options_without_preflight_headers_is_405_with_allow)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = get(p, "OPTIONS", "/users/1", NULL, 405);
        assert_header(r, p, "allow", "GET, HEAD, PATCH, DELETE");
        resp_free(r);
        /* an Origin alone is no preflight: the key comes first, as for any method */
        r = get(p, "OPTIONS", "/users/1", "Authorization:\nOrigin: https://app.example", 401);
        assert_header(r, p, "access-control-allow-origin", "https://app.example");
        resp_free(r);
    }
}

Test(cors, simple_requests_from_allowed_and_other_origins)
{
    FOR_EACH_PROTO(p)
    {
        resp_t *r = get(p, "GET", "/users/1", "Origin: https://app.example", 200);
        assert_header(r, p, "access-control-allow-origin", "https://app.example");
        assert_header_has(r, p, "vary", "origin");
        static const char *const exposed[] = {"X-Request-Id", "RateLimit", "RateLimit-Policy", "Retry-After", "Cache-Status", "Location", "Link", "Tollgate-Read-After"};
        for (size_t i = 0; i != sizeof(exposed) / sizeof(exposed[0]); ++i)
            assert_header_has(r, p, "access-control-expose-headers", exposed[i]);
        resp_free(r);
        /* an error, which the page's script must be able to read too */
        r = get(p, "GET", "/users/1", "Authorization: Bearer wrong\nOrigin: http://localhost:3000", 401);
        assert_header(r, p, "access-control-allow-origin", "http://localhost:3000");
        resp_free(r);
        /* another origin is served (CORS is the browser's to enforce), without CORS headers */
        r = get(p, "GET", "/users/1", "Origin: https://evil.example", 200);
        assert_header(r, p, "access-control-allow-origin", NULL);
        assert_header(r, p, "access-control-expose-headers", NULL);
        assert_header_has(r, p, "vary", "origin");
        resp_free(r);
        r = get(p, "GET", "/users/1", NULL, 200);
        assert_header(r, p, "access-control-allow-origin", NULL);
        assert_header_has(r, p, "vary", "origin");
        resp_free(r);
    }
}

/* --- compression --- */

/* a gzip body inflated (malloc'd, NUL-terminated) */
static char *gunzip(const char *in, size_t len, size_t *out_len)
{
    z_stream z = {0};
    cr_assert_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    int rc;
    do {
        if (cap - n < 4096)
            out = realloc(out, cap *= 2);
        z.next_out = (Bytef *)out + n;
        z.avail_out = (uInt)(cap - n - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - 1 - z.avail_out;
    } while (rc == Z_OK);
    cr_assert_eq(rc, Z_STREAM_END, "not a whole gzip stream (zlib %d) after %zu bytes in", rc, len - z.avail_in);
    cr_assert_eq(z.avail_in, 0, "bytes after the gzip stream");
    inflateEnd(&z);
    out[n] = '\0';
    *out_len = n;
    return out;
}

static void assert_gzip_of(proto_t p, const char *path)
{
    resp_t *plain = get(p, "GET", path, NULL, 200);
    resp_t *z = get(p, "GET", path, "Accept-Encoding: gzip", 200);
    assert_header(plain, p, "content-encoding", NULL);
    assert_header(z, p, "content-encoding", "gzip");
    assert_header(z, p, "content-type", "application/json");
    assert_header_has(z, p, "vary", "accept-encoding");
    assert_header_has(plain, p, "vary", "accept-encoding");
    cr_assert_lt(z->body_len, plain->body_len / 4, "[%s] %s: %zu gzip bytes for %zu", proto_name(p), path, z->body_len, plain->body_len);
    size_t n;
    char *text = gunzip(z->body, z->body_len, &n);
    cr_assert_eq(n, plain->body_len, "[%s] %s: inflated to %zu bytes, plain %zu", proto_name(p), path, n, plain->body_len);
    cr_assert_eq(memcmp(text, plain->body, n), 0, "[%s] %s: inflated body differs from the plain one", proto_name(p), path);
    free(text);
    resp_free(plain);
    resp_free(z);
}

Test(compression, gzip_answers_decode_to_the_plain_ones)
{
    FOR_EACH_PROTO(p)
    {
        assert_gzip_of(p, "/stream/rows?n=50");  /* about 6 KB, answered whole */
        assert_gzip_of(p, "/stream/rows?n=900"); /* about 110 KB, streamed: gzip a chunk at a time */
    }
}

Test(compression, small_answers_errors_and_other_encodings_are_sent_as_they_are)
{
    char bad[1024] = "/stream/small?n=x";
    for (int i = 0; i != 40; ++i)
        snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), "&zz%d=1", i);
    FOR_EACH_PROTO(p)
    {
        /* a point read of about 150 bytes, under min_bytes */
        resp_t *r = get(p, "GET", "/users/1", "Accept-Encoding: gzip, deflate, br", 200);
        assert_header(r, p, "content-encoding", NULL);
        assert_header_has(r, p, "vary", "accept-encoding");
        cr_assert(json_is_object(r->json), "[%s] %s", proto_name(p), r->body);
        char *len = resp_header(r, "content-length");
        cr_assert(len != NULL && (size_t)atol(len) == r->body_len);
        free(len);
        resp_free(r);
        /* a problem over 1 KB: errors are never compressed */
        r = get(p, "GET", bad, "Accept-Encoding: gzip", 400);
        cr_assert_gt(r->body_len, 1024);
        assert_header(r, p, "content-encoding", NULL);
        cr_assert(json_is_object(r->json), "[%s] %s", proto_name(p), r->body);
        resp_free(r);
        /* no gzip among what the client takes (brotli is not built into Debian's h2o) */
        r = get(p, "GET", "/stream/rows?n=50", "Accept-Encoding: br, identity", 200);
        assert_header(r, p, "content-encoding", NULL);
        cr_assert(json_is_array(r->json));
        resp_free(r);
        /* a HEAD is not compressed: its length is the plain body's */
        resp_t *g = get(p, "GET", "/stream/rows?n=50", NULL, 200);
        r = get(p, "HEAD", "/stream/rows?n=50", "Accept-Encoding: gzip", 200);
        assert_header(r, p, "content-encoding", NULL);
        len = resp_header(r, "content-length");
        cr_assert(len != NULL && (size_t)atol(len) == g->body_len, "[%s] HEAD length %s, GET %zu", proto_name(p), len, g->body_len);
        free(len);
        resp_free(r);
        resp_free(g);
    }
}

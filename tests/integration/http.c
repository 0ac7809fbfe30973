/* libcurl client for the integration tests. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <pthread.h>
#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http.h"

const proto_t PROTOS[2] = {PROTO_H1, PROTO_H2};
long http_timeout_s = 30;

const char *proto_name(proto_t p)
{
    return p == PROTO_H1 ? "HTTP/1.1" : p == PROTO_H2 ? "HTTP/2 (prior knowledge)" : "HTTP/2 (h2c upgrade)";
}

size_t http_append_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_body_t *a = ud;
    size_t n = size * nmemb;
    a->p = realloc(a->p, a->n + n + 1);
    memcpy(a->p + a->n, ptr, n);
    a->n += n;
    a->p[a->n] = '\0';
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    size_t n = size * nmemb;
    /* Lower-case the name so lookups need not care how it was sent. */
    char *colon = memchr(ptr, ':', n);
    for (char *c = ptr; colon != NULL && c < colon; ++c)
        *c = (char)tolower((unsigned char)*c);
    return http_append_body(ptr, size, nmemb, ud);
}

resp_t *http(proto_t p, const char *method, const char *path, const char *body, const char *content_type,
             const char *extra_header)
{
    const char *base = getenv("TG_URL");
    if (base == NULL)
        base = "http://127.0.0.1:8080";
    char url[4096];
    /* an absolute URL (another listener, such as the admin API) is taken as it is */
    snprintf(url, sizeof(url), "%s%s", strncmp(path, "http://", 7) == 0 ? "" : base, path);
    CURL *c = curl_easy_init();
    http_body_t b = {0}, h = {0};
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, http_timeout_s);
    /* bodies as they came: a test that sends Accept-Encoding decodes them itself */
    curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    /*
     * HEAD: over HTTP/1.1 curl must not wait for the Content-Length's bytes (none
     * come); over HTTP/2 it reads the stream to its end, so any body bytes sent show
     * (and it must not hold the Content-Length against the empty stream).
     */
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, p == PROTO_H1 ? CURLOPT_NOBODY : CURLOPT_IGNORE_CONTENT_LENGTH, 1L);
    int tls = strncmp(base, "https:", 6) == 0;
    /* Over TLS, HTTP/2 is negotiated with ALPN; in cleartext it is prior knowledge or an Upgrade. */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, p == PROTO_H1   ? CURL_HTTP_VERSION_1_1
                                              : p == PROTO_H2 ? (tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
                                                              : CURL_HTTP_VERSION_2_0);
    if (tls) {
        /* The tests' certificate is self-signed. */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (content_type != NULL) {
        char line[256];
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, line);
    } else if (body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type:");
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    /* Several headers may be given, one per line. */
    for (const char *h = extra_header; h != NULL && *h != '\0';) {
        const char *nl = strchr(h, '\n');
        size_t n = nl != NULL ? (size_t)(nl - h) : strlen(h);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)n, h);
        hdrs = curl_slist_append(hdrs, line);
        h = nl != NULL ? nl + 1 : NULL;
    }
    /* The suite's tenant key, unless the test chose its own (or none: "Authorization:" sends no such header). */
    const char *key = getenv("TG_API_KEY");
    if (key != NULL && (extra_header == NULL || (strncasecmp(extra_header, "authorization:", 14) != 0 &&
                                                 strncasecmp(extra_header, "x-api-key:", 10) != 0))) {
        char line[256];
        snprintf(line, sizeof(line), "Authorization: Bearer %s", key);
        hdrs = curl_slist_append(hdrs, line);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    resp_t *r = calloc(1, sizeof(*r));
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        long v = 0;
        curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &v);
        r->http_version = v == CURL_HTTP_VERSION_2_0 ? 2 : 1;
    } else {
        r->status = -(long)rc;
    }
    r->body = b.p != NULL ? b.p : strdup("");
    r->body_len = b.n;
    r->headers = h.p != NULL ? h.p : strdup("");
    r->json = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return r;
}

char *http_raw(const char *request, size_t *len)
{
    const char *base = getenv("TG_URL");
    int port = 8080;
    const char *colon = base != NULL ? strrchr(base, ':') : NULL;
    if (colon != NULL)
        port = atoi(colon + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect to port %d", port);
    struct timeval tv = {.tv_sec = http_timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t n = strlen(request);
    cr_assert_eq(send(fd, request, n, MSG_NOSIGNAL), (ssize_t)n);
    http_body_t b = {0};
    char buf[16384];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
        http_append_body(buf, 1, (size_t)r, &b);
    cr_assert_eq(r, 0, "the gateway did not close the connection (timed out?)");
    close(fd);
    *len = b.n;
    return b.p != NULL ? b.p : strdup("");
}

char *resp_header(const resp_t *r, const char *name)
{
    size_t n = strlen(name);
    char lname[128];
    for (size_t i = 0; i <= n && i < sizeof(lname); ++i)
        lname[i] = (char)tolower((unsigned char)name[i]);
    /* Headers of the last response only (an h2c upgrade has a 101 block first). */
    const char *block = r->headers, *s;
    while ((s = strstr(block + 1, "\r\nhttp/")) != NULL || (s = strstr(block + 1, "\r\nHTTP/")) != NULL)
        block = s + 2;
    for (const char *line = block; line != NULL && *line != '\0';) {
        const char *eol = strstr(line, "\r\n");
        if (strncmp(line, lname, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                ++v;
            size_t len = eol != NULL ? (size_t)(eol - v) : strlen(v);
            char *out = malloc(len + 1);
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
        line = eol != NULL ? eol + 2 : NULL;
    }
    return NULL;
}

void resp_free(resp_t *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->headers);
    if (r->json != NULL)
        json_decref(r->json);
    free(r);
}

const char *jstr(const resp_t *r, const char *key)
{
    if (r->json == NULL || !json_is_object(r->json))
        return NULL;
    return json_string_value(json_object_get(r->json, key));
}

struct concurrent_arg {
    proto_t p;
    const char *method, *path, *body, *header;
    resp_t *r;
};

static void *concurrent_one(void *arg)
{
    struct concurrent_arg *a = arg;
    a->r = http(a->p, a->method, a->path, a->body, a->body != NULL ? "application/json" : NULL, a->header);
    return NULL;
}

int concurrent(int n, const char *method, const char *path, const char *body, const char *header, long status, const char *type)
{
    pthread_t t[16];
    struct concurrent_arg a[16];
    cr_assert_leq(n, 16);
    for (int i = 0; i != n; ++i) {
        a[i] = (struct concurrent_arg){.p = PROTOS[i % 2], .method = method, .path = path, .body = body, .header = header};
        pthread_create(&t[i], NULL, concurrent_one, &a[i]);
    }
    int hits = 0;
    for (int i = 0; i != n; ++i) {
        pthread_join(t[i], NULL);
        if (a[i].r->status == status) {
            ++hits;
            cr_assert_str_eq(jstr(a[i].r, "type"), type);
            char *ra = resp_header(a[i].r, "retry-after");
            cr_assert_not_null(ra, "%ld without Retry-After", status);
            free(ra);
        } else {
            cr_assert_eq(a[i].r->status, 200, "%s %s: %ld %s", method, path, a[i].r->status, a[i].r->body);
        }
        resp_free(a[i].r);
    }
    return hits;
}

char *resp_take_body(resp_t *r, const char *content_type)
{
    cr_assert_eq(r->status, 200, "%s", r->body);
    char *ct = resp_header(r, "content-type");
    cr_assert(ct != NULL && strncmp(ct, content_type, strlen(content_type)) == 0, "content-type %s, not %s", ct != NULL ? ct : "(none)",
              content_type);
    free(ct);
    char *body = strdup(r->body);
    resp_free(r);
    return body;
}

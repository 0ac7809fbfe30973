/*
 * A small HTTP client for the integration tests: one request over libcurl, HTTP/1.1 or
 * HTTP/2 (cleartext, prior knowledge, or Upgrade: h2c), with the status, headers and
 * parsed JSON body of the answer.
 */
#ifndef tollgate_tests_http_h
#define tollgate_tests_http_h

#include <jansson.h>
#include <stddef.h>

/** the protocols every test runs over */
typedef enum { PROTO_H1, PROTO_H2, PROTO_H2C_UPGRADE } proto_t;
extern const proto_t PROTOS[2];
/** runs the block once per protocol, `p` the one */
#define FOR_EACH_PROTO(p) for (proto_t p = PROTO_H1; p <= PROTO_H2; p = (proto_t)(p + 1))
const char *proto_name(proto_t p);

typedef struct {
    long status;
    long http_version; /* 2 for HTTP/2, 1 for 1.x (CURL_HTTP_VERSION_*) */
    char *body;        /* NUL-terminated */
    size_t body_len;
    char *headers;     /* raw response header block, lower-cased names */
    json_t *json;      /* the body parsed, or NULL */
} resp_t;

/**
 * Sends METHOD path (relative to $TG_URL, unless it is an absolute http:// URL) with an optional body and content type.
 * `extra_header` may be NULL or "Name: value" lines separated by '\n'. Unless one of them
 * is Authorization or X-API-Key, $TG_API_KEY (when set) is sent as a Bearer token.
 */
/** how long one request may take in all (seconds; default 30) */
extern long http_timeout_s;

resp_t *http(proto_t p, const char *method, const char *path, const char *body, const char *content_type,
             const char *extra_header);
/**
 * Bodies come as they were sent: never decoded (a test that sends Accept-Encoding
 * decodes them itself). A HEAD over HTTP/2 reads its stream to the end, so body
 * bytes the gateway should not have sent show in `body_len`; over HTTP/1.1 curl
 * reads none (see http_raw).
 */

/**
 * Sends `request` (raw bytes: one HTTP/1.1 request or several pipelined, the last
 * with Connection: close) on a new connection to $TG_URL's port on loopback, and
 * returns every byte the gateway sent until it closed (malloc'd, NUL-terminated).
 */
char *http_raw(const char *request, size_t *len);

/** the value of a response header (case-insensitive name), malloc'd, or NULL */
char *resp_header(const resp_t *r, const char *name);
void resp_free(resp_t *r);
/** asserts `r` is a 200 whose Content-Type starts with `content_type`; returns its body (malloc'd) and frees `r` */
char *resp_take_body(resp_t *r, const char *content_type);

/**
 * Sends `n` (at most 16) identical requests at once, alternating HTTP/1.1 and HTTP/2.
 * Each answer must be 200, or `status` with the problem type `type` and a Retry-After
 * (the test fails otherwise). Returns how many were `status`.
 */
int concurrent(int n, const char *method, const char *path, const char *body, const char *header, long status, const char *type);

/** a body as curl writes it (CURLOPT_WRITEFUNCTION http_append_body, CURLOPT_WRITEDATA an http_body_t): malloc'd, NUL-terminated */
typedef struct {
    char *p;
    size_t n;
} http_body_t;
size_t http_append_body(char *ptr, size_t size, size_t nmemb, void *ud);

/** a string member of the JSON body, or NULL */
const char *jstr(const resp_t *r, const char *key);

#endif

/*
 * Operator controls on a live gateway (each test starts its own, with an admin
 * listener, against the real primary and replica): kill switches on every thread,
 * reloads under load that keep the database connections, a reload that removes a
 * query with a call in flight, the OpenAPI document following reloads, rejected
 * reloads, the admin token.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

/* Two catalogs that share "stable" and "shared" (with other SQL) and differ in one route each. */
#define CATALOG_A                                                                                                                \
    "{\"queries\": ["                                                                                                            \
    "{\"name\": \"stable\", \"route\": \"GET /r/stable\", \"sql\": \"SELECT 1 AS v\", \"returns\": \"one\", \"access\": \"read\"},"    \
    "{\"name\": \"shared\", \"route\": \"GET /r/shared\", \"sql\": \"SELECT 'a' AS version\", \"returns\": \"one\", \"access\": \"read\"}," \
    "{\"name\": \"only_a\", \"route\": \"GET /r/a\", \"sql\": \"SELECT 'a' AS v\", \"returns\": \"one\", \"access\": \"read\"},"       \
    "{\"name\": \"sleepy\", \"route\": \"GET /r/sleep\", \"sql\": \"SELECT pg_sleep($1) AS slept\", \"params\": [{\"name\": \"s\", "   \
    "\"type\": \"float8\", \"max\": 5}], \"returns\": \"one\", \"access\": \"read\"}]}"
#define CATALOG_B                                                                                                                \
    "{\"queries\": ["                                                                                                            \
    "{\"name\": \"stable\", \"route\": \"GET /r/stable\", \"sql\": \"SELECT 1 AS v\", \"returns\": \"one\", \"access\": \"read\"},"    \
    "{\"name\": \"shared\", \"route\": \"GET /r/shared\", \"sql\": \"SELECT 'b' AS version\", \"returns\": \"one\", \"access\": \"read\"}," \
    "{\"name\": \"only_b\", \"route\": \"GET /r/b\", \"sql\": \"SELECT 'b' AS v\", \"returns\": \"one\", \"access\": \"read\"}]}"

static char catalog_dir[256];

static void write_catalog(const char *text)
{
    char path[320], tmp[330];
    snprintf(path, sizeof(path), "%s/catalog.json", catalog_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(rename(tmp, path), 0); /* a reload never reads half a file */
}

static void setup(void)
{
    snprintf(catalog_dir, sizeof(catalog_dir), "/tmp/tollgate-operator-%d", (int)getpid());
    mkdir(catalog_dir, 0755);
    write_catalog(CATALOG_A);
}

static void teardown(void)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/catalog.json", catalog_dir);
    unlink(path);
    rmdir(catalog_dir);
}

TestSuite(operator, .init = setup, .fini = teardown);

static char admin_base[64];

/* an admin call; `token` NULL sends none */
static resp_t *admin(const char *method, const char *path, const char *body, const char *token)
{
    char url[256], header[128];
    snprintf(url, sizeof(url), "%s%s", admin_base, path);
    if (token != NULL)
        snprintf(header, sizeof(header), "Authorization: Bearer %s", token);
    /* an Authorization header of its own keeps the test client from sending $TG_API_KEY */
    return http(PROTO_H1, method, url, body, body != NULL ? "application/json" : NULL,
                token != NULL ? header : "Authorization: Basic bm9uZTpub25l");
}

static pid_t start(gw_opts_t *o)
{
    o->catalog = catalog_dir;
    o->admin_port = -1;
    pid_t pid = start_gateway(o);
    snprintf(admin_base, sizeof(admin_base), "http://127.0.0.1:%d", o->admin_port);
    return pid;
}

static void expect_reload(const char *token, int ok)
{
    resp_t *r = admin("POST", "/admin/reload", NULL, token);
    cr_assert_eq(r->status, ok ? 200 : 422, "%s", r->body);
    cr_assert(json_is_true(json_object_get(r->json, "reloaded")) == ok, "%s", r->body);
    resp_free(r);
}

/* --- kill switches --- */

struct load {
    _Atomic int stop;
    _Atomic int switched;     /* 1 once the disable has been answered, 3 just before the enable is sent, 2 once it is answered */
    _Atomic long ok, refused; /* 200s and 503 query-disabled */
    _Atomic long after_disable_ok; /* 200s to calls sent after the disable was answered: must stay 0 */
    _Atomic long after_enable_refused;
    _Atomic long other;       /* anything else: must stay 0 */
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    for (int i = 0; !atomic_load(&l->stop); ++i) {
        int before = atomic_load(&l->switched);
        resp_t *r = http(PROTOS[i % 2], "GET", "/r/stable", NULL, NULL, NULL);
        int after = atomic_load(&l->switched);
        if (r->status == 200) {
            atomic_fetch_add(&l->ok, 1);
            /* sent after the disable was answered, and answered before the enable was even sent */
            if (before == 1 && after == 1)
                atomic_fetch_add(&l->after_disable_ok, 1);
        } else if (r->status == 503 && jstr(r, "type") != NULL && strcmp(jstr(r, "type"), "urn:tollgate:problem:query-disabled") == 0) {
            atomic_fetch_add(&l->refused, 1);
            if (before == 2)
                atomic_fetch_add(&l->after_enable_refused, 1);
        } else {
            atomic_fetch_add(&l->other, 1);
        }
        resp_free(r);
    }
    return NULL;
}

Test(operator, a_switch_takes_effect_on_every_thread, .timeout = 60)
{
    gw_opts_t o = {.threads = 4, .pool_size = 8};
    pid_t pid = start(&o);
    struct load l = {0};
    pthread_t t[8];
    for (int i = 0; i != 8; ++i)
        pthread_create(&t[i], NULL, load_main, &l);
    usleep(500 * 1000);
    resp_t *r = admin("POST", "/admin/queries/stable/disable", "{\"retry_after_s\": 9, \"reason\": \"test: melting\"}", NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    atomic_store(&l.switched, 1);
    usleep(1000 * 1000);
    /* what a caller sees: 503 with the operator's Retry-After, never the reason */
    r = http(PROTO_H2, "GET", "/r/stable", NULL, NULL, NULL);
    cr_assert_eq(r->status, 503);
    char *retry = resp_header(r, "retry-after");
    cr_assert_str_eq(retry, "9");
    free(retry);
    cr_assert_null(strstr(r->body, "melting"), "the reason is for operators: %s", r->body);
    resp_free(r);
    /* what the operator sees */
    r = admin("GET", "/admin/status", NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(strstr(r->body, "\"reason\":\"test: melting\""), "%s", r->body);
    cr_assert_null(strstr(r->body, "dbname"), "no connection string in the status: %s", r->body);
    resp_free(r);
    atomic_store(&l.switched, 3);
    r = admin("POST", "/admin/queries/stable/enable", NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    atomic_store(&l.switched, 2);
    usleep(1000 * 1000);
    atomic_store(&l.stop, 1);
    for (int i = 0; i != 8; ++i)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&l.other), 0, "every call answered 200 or 503 query-disabled");
    cr_assert_eq(atomic_load(&l.after_disable_ok), 0, "no call sent after the disable was answered got 200");
    cr_assert_eq(atomic_load(&l.after_enable_refused), 0, "no call sent after the enable was answered was refused");
    cr_assert_gt(atomic_load(&l.refused), 20, "the switch was seen (%ld refusals)", atomic_load(&l.refused));
    cr_assert_gt(atomic_load(&l.ok), 20);
    r = admin("POST", "/admin/queries/no_such/disable", NULL, NULL);
    cr_assert_eq(r->status, 404);
    resp_free(r);
    r = admin("POST", "/admin/queries/stable/disable", "{\"retry_after_s\": 0}", NULL);
    cr_assert_eq(r->status, 400, "retry_after_s out of range: %s", r->body);
    resp_free(r);
    stop_gateway(pid, 10);
}

Test(operator, a_tenant_switch_and_a_switch_survive_a_reload, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    resp_t *r = admin("POST", "/admin/tenants/anonymous/disable", "{\"reason\": \"abuse\"}", NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    r = http(PROTO_H1, "GET", "/r/stable", NULL, NULL, NULL);
    cr_assert_eq(r->status, 403, "%s", r->body);
    cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:tenant-disabled");
    resp_free(r);
    r = admin("POST", "/admin/queries/shared/disable", NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert(json_is_true(json_object_get(r->json, "switched_off")), "%s", r->body);
    resp_free(r);
    write_catalog(CATALOG_B);
    expect_reload(NULL, 1);
    /* both switches survived the reload */
    r = http(PROTO_H2, "GET", "/r/stable", NULL, NULL, NULL);
    cr_assert_eq(r->status, 403, "the tenant's switch survived the reload: %s", r->body);
    cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:tenant-disabled");
    resp_free(r);
    r = admin("POST", "/admin/tenants/anonymous/enable", NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    r = http(PROTO_H2, "GET", "/r/shared", NULL, NULL, NULL);
    cr_assert_eq(r->status, 503, "the query's switch survived the reload: %s", r->body);
    cr_assert_str_eq(jstr(r, "type"), "urn:tollgate:problem:query-disabled");
    resp_free(r);
    r = http(PROTO_H2, "GET", "/r/stable", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    resp_free(r);
    stop_gateway(pid, 10);
}

/* --- reloads under load --- */

/* the gateway's own database sessions on the primary and the replica, as "pid,pid,..." */
static char *sessions(int replica)
{
    return pg_sql(replica, "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE application_name = 'tollgate'");
}

static void *stable_load_main(void *arg)
{
    struct load *l = arg;
    for (int i = 0; !atomic_load(&l->stop); ++i) {
        resp_t *r = http(PROTOS[i % 2], "GET", "/r/stable", NULL, NULL, NULL);
        if (r->status == 200)
            atomic_fetch_add(&l->ok, 1);
        else
            atomic_fetch_add(&l->other, 1);
        resp_free(r);
        usleep(2000); /* a bounded rate: about 500 calls/s per thread */
    }
    return NULL;
}

Test(operator, twenty_reloads_under_load_fail_nothing_and_keep_the_connections, .timeout = 120)
{
    gw_opts_t o = {.with_replica = 1, .pool_size = 4};
    pid_t pid = start(&o);
    /* every connection up and used once, so the sessions are all there */
    usleep(1000 * 1000);
    char *primary_before = sessions(0), *replica_before = sessions(1);
    cr_assert_not_null(primary_before);
    cr_assert_not_null(replica_before);
    struct load l = {0};
    pthread_t t[4];
    for (int i = 0; i != 4; ++i)
        pthread_create(&t[i], NULL, stable_load_main, &l);
    for (int round = 0; round != 20; ++round) {
        int b = round % 2 == 0;
        write_catalog(b ? CATALOG_B : CATALOG_A);
        expect_reload(NULL, 1);
        /* the changed SQL is what runs, and the changed route is there (and the other gone) */
        resp_t *r = http(PROTOS[round % 2], "GET", "/r/shared", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "round %d: %s", round, r->body);
        cr_assert_str_eq(jstr(r, "version"), b ? "b" : "a", "round %d", round);
        resp_free(r);
        r = http(PROTOS[round % 2], "GET", b ? "/r/b" : "/r/a", NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "round %d: %s", round, r->body);
        resp_free(r);
        r = http(PROTOS[round % 2], "GET", b ? "/r/a" : "/r/b", NULL, NULL, NULL);
        cr_assert_eq(r->status, 404, "round %d: %s", round, r->body);
        resp_free(r);
        usleep(100 * 1000);
    }
    atomic_store(&l.stop, 1);
    for (int i = 0; i != 4; ++i)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&l.other), 0, "failed calls during the reloads: %ld of %ld", atomic_load(&l.other),
                 atomic_load(&l.ok) + atomic_load(&l.other));
    cr_assert_gt(atomic_load(&l.ok), 100);
    char *primary_after = sessions(0), *replica_after = sessions(1);
    cr_assert_str_eq(primary_after, primary_before, "the primary's sessions are the same processes");
    cr_assert_str_eq(replica_after, replica_before, "the replica's sessions are the same processes");
    free(primary_before), free(primary_after), free(replica_before), free(replica_after);
    resp_t *r = admin("GET", "/admin/status", NULL, NULL);
    cr_assert_not_null(strstr(r->body, "\"generation\":21"), "%s", r->body);
    resp_free(r);
    stop_gateway(pid, 10);
}

struct slow_call {
    resp_t *r;
};

static void *slow_call_main(void *arg)
{
    struct slow_call *c = arg;
    c->r = http(PROTO_H2, "GET", "/r/sleep?s=2", NULL, NULL, NULL);
    return NULL;
}

Test(operator, a_call_in_flight_finishes_on_the_config_it_started_on, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    struct slow_call c = {0};
    pthread_t t;
    pthread_create(&t, NULL, slow_call_main, &c);
    usleep(500 * 1000);
    write_catalog(CATALOG_B); /* no "sleepy" any more */
    expect_reload(NULL, 1);
    resp_t *r = http(PROTO_H1, "GET", "/r/sleep?s=0", NULL, NULL, NULL);
    cr_assert_eq(r->status, 404, "new calls no longer find the route: %s", r->body);
    resp_free(r);
    pthread_join(t, NULL);
    cr_assert_eq(c.r->status, 200, "the call in flight finished: %s", c.r->body);
    cr_assert_str_eq(c.r->body, "{\"slept\":null}");
    resp_free(c.r);
    stop_gateway(pid, 10);
}

/* --- the OpenAPI document --- */

/* GET /openapi.json over `p`: the document's text (malloc'd), checked to be a JSON object */
static char *openapi_doc(proto_t p)
{
    resp_t *r = http(p, "GET", "/openapi.json", NULL, NULL, "Authorization: Basic bm9uZTpub25l");
    cr_assert(r->status != 200 || json_is_object(r->json), "not a JSON object: %.200s", r->body);
    return resp_take_body(r, "application/json");
}

/* does the document have an operation `id` at GET `path`? */
static int has_operation(const char *doc, const char *path, const char *id)
{
    json_t *d = json_loads(doc, 0, NULL);
    json_t *op = json_object_get(json_object_get(json_object_get(d, "paths"), path), "get");
    const char *got = json_string_value(json_object_get(op, "operationId"));
    int yes = got != NULL && strcmp(got, id) == 0;
    json_decref(d);
    return yes;
}

Test(operator, the_openapi_document_follows_reloads, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    char *a = openapi_doc(PROTO_H1), *a2 = openapi_doc(PROTO_H2);
    cr_assert_str_eq(a, a2, "the same document over HTTP/1.1 and HTTP/2, from whichever thread");
    cr_assert(has_operation(a, "/r/a", "only_a") && has_operation(a, "/r/sleep", "sleepy") && !has_operation(a, "/r/b", "only_b"));

    /* a reload that removes only_a and sleepy and adds only_b */
    write_catalog(CATALOG_B);
    expect_reload(NULL, 1);
    for (int i = 0; i < 4; ++i) { /* every thread has the new snapshot */
        char *b = openapi_doc(PROTOS[i % 2]);
        cr_assert(has_operation(b, "/r/b", "only_b"), "the added query is in the document");
        cr_assert(!has_operation(b, "/r/a", "only_a") && !has_operation(b, "/r/sleep", "sleepy"), "the removed ones are not");
        cr_assert_null(strstr(b, "SELECT"), "no SQL text");
        free(b);
    }

    /* back to the first catalog: the same bytes as before */
    write_catalog(CATALOG_A);
    expect_reload(NULL, 1);
    char *again = openapi_doc(PROTO_H2);
    cr_assert_str_eq(again, a, "the same catalog gives the same document");
    free(again);
    free(a);
    free(a2);
    stop_gateway(pid, 10);
}

/* --- rejected reloads --- */

/* the errors of a rejected reload, joined */
static char *rejected(void)
{
    resp_t *r = admin("POST", "/admin/reload", NULL, NULL);
    cr_assert_eq(r->status, 422, "%s", r->body);
    cr_assert(json_is_false(json_object_get(r->json, "reloaded")), "%s", r->body);
    char *errors = json_dumps(json_object_get(r->json, "errors"), 0);
    resp_free(r);
    return errors;
}

static void still_serving(void)
{
    resp_t *r = http(PROTO_H2, "GET", "/r/a", NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "the old catalog keeps serving: %s", r->body);
    resp_free(r);
}

Test(operator, bad_reloads_are_rejected_whole_and_the_old_config_serves, .timeout = 60)
{
    gw_opts_t o = {0};
    pid_t pid = start(&o);
    /* a broken catalog */
    write_catalog("{\"queries\": [{\"name\": \"x\", \"route\": \"GET /x\", \"sql\": \"SELECT 1\", \"returns\": \"sometimes\", \"access\": \"read\"}]}");
    char *e = rejected();
    cr_assert_not_null(strstr(e, "catalog.json"), "%s", e);
    cr_assert_not_null(strstr(e, "returns"), "names the field: %s", e);
    free(e);
    still_serving();
    write_catalog("{\"queries\": [");
    e = rejected();
    cr_assert_not_null(strstr(e, "invalid JSON"), "%s", e);
    free(e);
    still_serving();
    write_catalog(CATALOG_A);
    /* an unknown config field */
    o.extra = json_pack("{s:i}", "max_rowz", 5);
    write_config(&o);
    e = rejected();
    cr_assert_not_null(strstr(e, "max_rowz"), "%s", e);
    free(e);
    still_serving();
    /* a bad tenant key */
    o.extra = json_pack("{s:[{s:s,s:[s],s:i,s:i}]}", "tenants", "name", "t", "keys", "sha256:nothex", "rate", 1, "burst", 1);
    write_config(&o);
    e = rejected();
    cr_assert_not_null(strstr(e, "tenants[0].keys[0]"), "%s", e);
    free(e);
    still_serving();
    /* a restart-only change is taken but noted */
    write_config(&o); /* (the bad tenant is gone: extra was used up) */
    o.threads = 3;
    write_config(&o);
    resp_t *r = admin("POST", "/admin/reload", NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_not_null(strstr(r->body, "threads: changed"), "%s", r->body);
    resp_free(r);
    stop_gateway(pid, 10);
}

/* --- cors and compression follow the snapshot --- */

/* GET /r/stable ({"v":1}) from https://app.example, taking gzip */
static resp_t *browser_get(proto_t p)
{
    resp_t *r = http(p, "GET", "/r/stable", NULL, NULL, "Origin: https://app.example\nAccept-Encoding: gzip");
    cr_assert_eq(r->status, 200, "%s", r->body);
    return r;
}

static int has_header(const resp_t *r, const char *name, const char *value)
{
    char *v = resp_header(r, name);
    int yes = v != NULL && (value == NULL || strstr(v, value) != NULL);
    free(v);
    return yes;
}

Test(operator, cors_and_compression_change_at_a_reload, .timeout = 60)
{
    gw_opts_t o = {0};
    o.extra = json_pack("{s:n}", "compression");
    pid_t pid = start(&o);
    for (int i = 0; i != 2; ++i) {
        resp_t *r = browser_get(PROTOS[i]);
        cr_assert_not(has_header(r, "content-encoding", NULL), "compression is off");
        cr_assert_not(has_header(r, "access-control-allow-origin", NULL), "cors is off");
        cr_assert_not(has_header(r, "vary", NULL), "nothing varies");
        resp_free(r);
        /* without cors an OPTIONS is no preflight: a call (keyless callers are anonymous here) of a method no route has */
        r = http(PROTOS[i], "OPTIONS", "/r/stable", NULL, NULL, "Authorization:\nOrigin: https://app.example\nAccess-Control-Request-Method: GET");
        cr_assert_eq(r->status, 405, "%s", r->body);
        cr_assert(has_header(r, "allow", "GET, HEAD"));
        resp_free(r);
    }

    o.extra = json_pack("{s:{s:i},s:{s:[s]}}", "compression", "min_bytes", 0, "cors", "origins", "https://app.example");
    write_config(&o);
    resp_t *r = admin("POST", "/admin/reload", NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_null(strstr(r->body, "cors"), "no restart needed: %s", r->body);
    cr_assert_null(strstr(r->body, "compression"), "no restart needed: %s", r->body);
    resp_free(r);
    /* every thread has taken it once both answer so */
    for (int i = 0; i != 8; ++i) {
        r = browser_get(PROTOS[i % 2]);
        char *ce = resp_header(r, "content-encoding");
        cr_assert(ce != NULL && strcmp(ce, "gzip") == 0, "min_bytes 0: even 7 bytes are gzipped (%s)", ce);
        free(ce);
        cr_assert(has_header(r, "access-control-allow-origin", "https://app.example"));
        cr_assert(has_header(r, "vary", "origin") && has_header(r, "vary", "accept-encoding"));
        resp_free(r);
        r = http(PROTOS[i % 2], "OPTIONS", "/r/stable", NULL, NULL,
                 "Authorization:\nOrigin: https://app.example\nAccess-Control-Request-Method: GET");
        cr_assert_eq(r->status, 204, "%s", r->body);
        cr_assert(has_header(r, "access-control-allow-methods", "GET, HEAD"));
        resp_free(r);
    }

    /* a bad cors is rejected whole: the one before serves on */
    o.extra = json_pack("{s:{s:[s]}}", "cors", "origins", "https://app.example/");
    write_config(&o);
    char *e = rejected();
    cr_assert_not_null(strstr(e, "cors.origins[0]"), "%s", e);
    cr_assert_not_null(strstr(e, "no path"), "%s", e);
    free(e);
    r = browser_get(PROTO_H2);
    cr_assert(has_header(r, "access-control-allow-origin", "https://app.example"), "the last good config serves");
    resp_free(r);
    stop_gateway(pid, 10);
}

/* --- the admin token, and the main listener --- */

Test(operator, the_admin_token_and_the_main_listener, .timeout = 60)
{
    /* the admin token's digest, as `tollgate --hash-key admin-secret` prints it */
    gw_opts_t o = {0};
    char hex[128];
    FILE *p = popen("\"$TG_GATEWAY_BIN\" --hash-key admin-secret", "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(hex, sizeof(hex), p));
    pclose(p);
    hex[strcspn(hex, "\n")] = '\0';
    o.admin_token = hex;
    pid_t pid = start(&o);
    resp_t *r = admin("GET", "/admin/status", NULL, NULL);
    cr_assert_eq(r->status, 401, "no token: %s", r->body);
    char *www = resp_header(r, "www-authenticate");
    cr_assert_not_null(www);
    free(www);
    resp_free(r);
    r = admin("GET", "/admin/status", NULL, "admin-secreT");
    cr_assert_eq(r->status, 401, "a wrong token");
    resp_free(r);
    r = admin("POST", "/admin/queries/stable/disable", NULL, "wrong");
    cr_assert_eq(r->status, 401);
    resp_free(r);
    r = admin("GET", "/admin/status", NULL, "admin-secret");
    cr_assert_eq(r->status, 200, "%s", r->body);
    cr_assert_not_null(strstr(r->body, "\"generation\":1"), "%s", r->body);
    cr_assert_null(strstr(r->body, "admin-secret"), "%s", r->body);
    resp_free(r);
    r = admin("POST", "/admin/status", NULL, "admin-secret");
    cr_assert_eq(r->status, 405);
    resp_free(r);
    /* the main listener serves no admin call: an unknown route to it */
    r = http(PROTO_H1, "GET", "/admin/status", NULL, NULL, NULL);
    cr_assert_eq(r->status, 404, "%s", r->body);
    resp_free(r);
    r = http(PROTO_H2, "POST", "/admin/reload", NULL, NULL, "X-API-Key: not-a-key");
    cr_assert_eq(r->status, 401, "a caller without a valid key learns nothing: %s", r->body);
    resp_free(r);
    stop_gateway(pid, 10);
}

/*
 * The adaptive overload limit against a real primary and a real gateway: a read whose
 * cost grows with how many of its kind run at once (it sleeps knob.v seconds for each,
 * counted in pg_stat_activity: waiting, not CPU), the knob turned by the test. With it
 * slow and 50 callers the gateway sheds at once (503 backend-overloaded, Retry-After)
 * and keeps its successful calls far below the statement timeout; with it fast again
 * the limit climbs back; and every admission is given back once the load stops.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http.h"
#include "proc.h"

#define CALLERS 50
#define POOL_SIZE 8
#define TIMEOUT_MS 10000

static char admin_base[64];

/* A catalog of one read: sleeps knob.v seconds per call of its kind running now (itself included). */
static const char *catalog(void)
{
    static char dir[128];
    char path[200];
    snprintf(dir, sizeof(dir), "/tmp/tollgate-overload-%d", (int)getpid());
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/catalog.json", dir);
    write_text(path, "{\"queries\": [{\"name\": \"contended\", \"route\": \"GET /overload/contended\", \"access\": \"read\","
                     " \"returns\": \"one\", \"sql\": \"SELECT pg_sleep(k.v * (SELECT count(*) FROM pg_stat_activity"
                     " WHERE state = 'active' AND query LIKE '%tollgate_contended%')) IS NOT NULL AS ok"
                     " FROM knob k WHERE k.id = 1 /* tollgate_contended */\"}]}");
    return dir;
}

static void set_knob(double v)
{
    char sql[80];
    snprintf(sql, sizeof(sql), "UPDATE knob SET v = %g WHERE id = 1", v);
    free(pg_sql(0, sql));
}

static json_t *status_backend(void)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/admin/status", admin_base);
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "%s", r->body);
    json_t *o = json_incref(json_object_get(json_array_get(json_object_get(r->json, "backends"), 0), "overload"));
    cr_assert_not_null(o, "/admin/status names the primary's overload: %s", r->body);
    resp_free(r);
    return o;
}

static long overload_int(const char *key)
{
    json_t *o = status_backend();
    long v = (long)json_integer_value(json_object_get(o, key));
    json_decref(o);
    return v;
}

static double scrape(const char *series)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", admin_base);
    resp_t *r = http(PROTO_H1, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200);
    double v = metrics_sample(r->body, series);
    resp_free(r);
    return v;
}

/* a bounded load of callers: what they got, the slowest success, and one 503's headers and body */
struct load {
    _Atomic int stop;
    _Atomic int ok, shed, other;
    _Atomic long max_ok_ms;
    _Atomic int retry_after_ok, typed;
    char other_error[256];
};

static void *caller(void *arg)
{
    struct load *l = arg;
    for (int i = 0; !atomic_load(&l->stop); ++i) {
        double t0 = now_s();
        resp_t *r = http(PROTOS[i % 2], "GET", "/overload/contended", NULL, NULL, NULL);
        long ms = (long)((now_s() - t0) * 1000);
        if (r->status == 200) {
            ++l->ok;
            long cur = atomic_load(&l->max_ok_ms);
            while (ms > cur && !atomic_compare_exchange_weak(&l->max_ok_ms, &cur, ms))
                ;
        } else if (r->status == 503 && r->body != NULL && strstr(r->body, "backend-overloaded") != NULL) {
            ++l->shed;
            char *ra = resp_header(r, "retry-after");
            if (ra != NULL && atoi(ra) >= 1 && atoi(ra) <= 30)
                ++l->retry_after_ok;
            free(ra);
            if (strstr(r->body, "Database Backend Overloaded") != NULL)
                ++l->typed;
            usleep(20000); /* a client that heeds the 503 a little: not a tight loop on the gateway */
        } else {
            ++l->other;
            snprintf(l->other_error, sizeof(l->other_error), "%ld %s", r->status, r->body != NULL ? r->body : "");
        }
        resp_free(r);
    }
    return NULL;
}

static pid_t start(void)
{
    json_t *extra = json_pack("{s:i,s:{s:i,s:i,s:{s:f}}}", "default_timeout_ms", TIMEOUT_MS, "pool", "size", POOL_SIZE,
                              "acquire_timeout_ms", 3000, "overload", "tolerance", 1.5);
    gw_opts_t o = {.catalog = catalog(), .threads = 2, .admin_port = -1, .extra = extra};
    pid_t pid = start_gateway(&o);
    snprintf(admin_base, sizeof(admin_base), "http://127.0.0.1:%d", o.admin_port);
    wait_backends_up(15);
    return pid;
}

Test(overload, a_database_slowed_by_contention_sheds_at_once_and_recovers, .timeout = 120)
{
    set_knob(0);
    pid_t pid = start();
    long max_limit = overload_int("limit");
    cr_assert_geq(max_limit, POOL_SIZE, "the limit starts at its maximum: %ld", max_limit);
    /* unloaded: a few callers for a while, so the limit measures its floor */
    struct load quiet = {0};
    pthread_t t[CALLERS];
    for (int i = 0; i != 2; ++i)
        pthread_create(&t[i], NULL, caller, &quiet);
    double until = now_s() + 10;
    json_t *ov;
    while ((ov = status_backend()) != NULL && json_real_value(json_object_get(ov, "floor_ms")) == 0 && now_s() < until) {
        json_decref(ov);
        usleep(100000);
    }
    double floor_ms = json_real_value(json_object_get(ov, "floor_ms"));
    json_decref(ov);
    atomic_store(&quiet.stop, 1);
    for (int i = 0; i != 2; ++i)
        pthread_join(t[i], NULL);
    cr_assert_gt(floor_ms, 0, "no floor measured within 10 s (%d calls)", quiet.ok);
    cr_assert_eq(quiet.shed + quiet.other, 0, "unloaded, nothing is refused: %d shed, %d other (%s)", quiet.shed, quiet.other,
                 quiet.other_error);

    /* slow: 20 ms per call of its kind running, 50 callers */
    set_knob(0.02);
    struct load slow = {0};
    for (int i = 0; i != CALLERS; ++i)
        pthread_create(&t[i], NULL, caller, &slow);
    until = now_s() + 15;
    long limit = max_limit;
    while ((limit = overload_int("limit")) >= max_limit / 4 && now_s() < until)
        usleep(100000);
    cr_assert_lt(limit, max_limit / 4, "the limit came down within 15 s: %ld of %ld", limit, max_limit);
    usleep(3000000); /* settled: shedding, not queueing (the slow phase is 6 s at most past this) */
    json_t *loaded = status_backend();
    limit = (long)json_integer_value(json_object_get(loaded, "limit"));
    double recent_ms = json_real_value(json_object_get(loaded, "recent_ms"));
    json_decref(loaded);
    /* the callers' count first: the metric, read after, has every one of them (and those since) */
    int shed_slow = atomic_load(&slow.shed);
    double shed_metric = scrape("tollgate_overload_shed_total{backend=\"primary\"}");
    double limit_metric = scrape("tollgate_backend_concurrency_limit{backend=\"primary\"}");

    /* fast again: the limit climbs back under the same 50 callers */
    atomic_store(&slow.stop, 1);
    for (int i = 0; i != CALLERS; ++i)
        pthread_join(t[i], NULL);
    set_knob(0);
    struct load fast = {0};
    double fast_from = now_s();
    for (int i = 0; i != CALLERS; ++i)
        pthread_create(&t[i], NULL, caller, &fast);
    until = now_s() + 10;
    long back = 0;
    while ((back = overload_int("limit")) < 4 * limit && now_s() < until)
        usleep(100000);
    double recovered_in = now_s() - fast_from;
    usleep(2000000);
    atomic_store(&fast.stop, 1);
    for (int i = 0; i != CALLERS; ++i)
        pthread_join(t[i], NULL);
    double fast_s = now_s() - fast_from;
    json_t *f = status_backend();
    long fast_limit = (long)json_integer_value(json_object_get(f, "limit"));
    double fast_recent_ms = json_real_value(json_object_get(f, "recent_ms")), fast_floor_ms = json_real_value(json_object_get(f, "floor_ms"));
    json_decref(f);
    cr_log_info("floor %.3f ms; slow: limit %ld of %ld, recent %.1f ms, %d ok, %d shed, slowest success %ld ms; fast again: limit %ld "
                "(4x the slow one after %.1f s), %ld at the end, recent %.3f ms, floor %.3f ms, %.0f ok/s, %d shed",
                floor_ms, limit, max_limit, recent_ms, slow.ok, slow.shed, (long)slow.max_ok_ms, back, recovered_in, fast_limit,
                fast_recent_ms, fast_floor_ms, fast.ok / fast_s, fast.shed);
    cr_assert_gt(shed_slow, 0, "the slow database's excess was shed (503 backend-overloaded)");
    cr_assert_eq(slow.retry_after_ok, slow.shed, "every 503 said Retry-After (1..30 s): %d of %d", slow.retry_after_ok, slow.shed);
    cr_assert_eq(slow.typed, slow.shed, "every 503 said what it was: %d of %d", slow.typed, slow.shed);
    cr_assert_eq(slow.other + fast.other, 0, "no other failure (no pool timeout, no statement timeout): %d, last %s %s", slow.other + fast.other,
                 slow.other_error, fast.other_error);
    cr_assert_gt(slow.ok, 50, "calls still succeeded: %d", slow.ok);
    cr_assert_lt(slow.max_ok_ms, TIMEOUT_MS / 3, "successful calls stay far below the statement timeout: %ld ms", (long)slow.max_ok_ms);
    cr_assert_geq(shed_metric, shed_slow, "tollgate_overload_shed_total counts them: %g", shed_metric);
    cr_assert_lt(limit_metric, max_limit, "tollgate_backend_concurrency_limit shows the limit down: %g", limit_metric);
    cr_assert_geq(back, 4 * limit, "the limit climbed to 4x its slow value within 10 s of the knob going fast: %ld (slow %ld)", back, limit);
    cr_assert_gt(fast.ok, 20 * slow.ok / 6, "fast again, the calls go through: %d ok in %.1f s", fast.ok, fast_s);

    /* every admission given back: nothing in flight once the callers stopped */
    until = now_s() + 5;
    long in_flight;
    while ((in_flight = overload_int("in_flight")) != 0 && now_s() < until)
        usleep(50000);
    cr_assert_eq(in_flight, 0, "admissions still held with nothing running: %ld", in_flight);
    cr_assert_eq(scrape("tollgate_backend_in_flight_admitted{backend=\"primary\"}"), 0);
    set_knob(0);
    stop_gateway(pid, 10);
}

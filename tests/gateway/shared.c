/*
 * Tests of gateway/shared.c: the switch values it keeps in Redis, and the lease thread
 * against a real redis-server (Debian's, started here on a free loopback port with no
 * persistence; tests/run.sh installs it): a tenant's first call leases a block, the
 * global bucket is in Redis under the prefix, a switch set here is written there and
 * one written there is applied here, and the thread falls back to rate / N when Redis
 * dies and rejoins when it is back.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "tollgate/shared.h"

Test(switch_value, formats_and_parses_back)
{
    tg_buf_t b = {0};
    tg_shared_format_switch(&b, TG_SWITCH_OFF, 30, "bad plan: see #42");
    cr_assert_eq(b.len, strlen("off 30 bad plan: see #42"));
    cr_assert(memcmp(b.base, "off 30 bad plan: see #42", b.len) == 0);
    tg_switch_t sw;
    int retry;
    const char *reason;
    size_t rlen;
    cr_assert_eq(tg_shared_parse_switch(b.base, b.len, &sw, &retry, &reason, &rlen), 0);
    cr_assert_eq(sw, TG_SWITCH_OFF);
    cr_assert_eq(retry, 30);
    cr_assert_eq(rlen, strlen("bad plan: see #42"));
    cr_assert(memcmp(reason, "bad plan: see #42", rlen) == 0);
    tg_buf_reset(&b);
    tg_shared_format_switch(&b, TG_SWITCH_OFF, 5, NULL);
    cr_assert_eq(tg_shared_parse_switch(b.base, b.len, &sw, &retry, &reason, &rlen), 0);
    cr_assert_eq(retry, 5);
    cr_assert_null(reason, "no reason");
    tg_buf_reset(&b);
    tg_shared_format_switch(&b, TG_SWITCH_ON, 0, "ignored");
    cr_assert_eq(tg_shared_parse_switch(b.base, b.len, &sw, &retry, &reason, &rlen), 0);
    cr_assert_eq(sw, TG_SWITCH_ON);
    tg_buf_dispose(&b);
}

Test(switch_value, refuses_what_tollgate_did_not_write)
{
    static const char *const bad[] = {"", "of", "off", "off ", "off x", "off 1x", "off 99999999999", "onn", "OFF 1", "on "};
    tg_switch_t sw;
    int retry;
    const char *reason;
    size_t rlen;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        cr_assert_eq(tg_shared_parse_switch(bad[i], strlen(bad[i]), &sw, &retry, &reason, &rlen), -1, "\"%s\"", bad[i]);
}

/* ---- against a real Redis ------------------------------------------------------------ */

static pid_t redis_pid;
static int redis_port;
static char redis_dir[] = "/tmp/tollgate-shared-test.XXXXXX";

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static redisContext *redis(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    return c != NULL && !c->err ? c : (redisFree(c), NULL);
}

static void start_redis(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    const char *bin = getenv("TG_REDIS_BIN") != NULL ? getenv("TG_REDIS_BIN") : "/usr/bin/redis-server";
    redis_pid = fork();
    if (redis_pid == 0) {
        execl(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", redis_dir, "--loglevel",
              "warning", (char *)NULL);
        _exit(127);
    }
    for (double end = now_s() + 10; now_s() < end; usleep(20000)) {
        redisContext *c = redis();
        if (c != NULL) {
            redisFree(c);
            return;
        }
    }
    cr_assert_fail("redis-server (%s) did not come up on port %d", bin, redis_port);
}

static void kill_redis(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

static void setup_redis(void)
{
    cr_assert_not_null(mkdtemp(redis_dir));
    redis_port = free_port();
    start_redis();
}

static void teardown_redis(void)
{
    kill_redis();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
    (void)!system(cmd);
}

static tg_shared_limits_t *settings(int port)
{
    static tg_shared_limits_t s;
    static char url[64], shown[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    snprintf(shown, sizeof(shown), "%s", url);
    s = (tg_shared_limits_t){.redis = url, .redis_shown = shown, .host = "127.0.0.1", .port = port, .prefix = "test:", .lease_ms = 100,
                             .health_interval_ms = 200, .timeout_ms = 100, .expected_instances = 3};
    return &s;
}

/* waits up to `s` seconds for `cond`; returns whether it came */
#define WAIT_FOR(s, cond)                                                                                                                  \
    ({                                                                                                                                     \
        double end_ = now_s() + (s);                                                                                                       \
        while (!(cond) && now_s() < end_)                                                                                                  \
            usleep(5000);                                                                                                                  \
        (cond);                                                                                                                            \
    })

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static char *hget(const char *key, const char *field)
{
    redisContext *c = redis();
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    char *v = r != NULL && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

Test(shared_redis, leases_switches_fallback_and_rejoin, .init = setup_redis, .fini = teardown_redis, .timeout = 60)
{
    tg_state_t *state = tg_state_create(1);
    tg_tenant_state_t *t = tg_state_bind_tenant(state, "acme", 1, 0);
    tg_query_state_t *q = tg_state_bind_query(state, "get_user", 1, "SELECT 1");
    tg_lease_set_limits(&t->lease, 10, 10);
    tg_shared_t *sh = tg_shared_create(state);
    tg_shared_configure(sh, settings(redis_port));
    const tg_lease_health_t *h = tg_shared_health(sh);
    cr_assert_eq(tg_lease_divisor(h, mono_ns()), 3, "before the first round trip: expected_instances");
    cr_assert(WAIT_FOR(5, tg_lease_divisor(h, mono_ns()) == 0), "reaches Redis");

    /* a first call on credit; the thread leases a block and repays it */
    int64_t left;
    int wake;
    cr_assert_eq(tg_lease_take(&t->lease, 1, &left, &wake), 1);
    cr_assert_eq(wake, 1);
    uint64_t one = 1;
    (void)!write(h->wake_fd, &one, sizeof(one));
    cr_assert(WAIT_FOR(2, atomic_load(&t->lease.tokens) >= 0), "the debt is repaid: %lld", (long long)atomic_load(&t->lease.tokens));
    char *tokens = hget("test:bucket:acme", "tokens");
    cr_assert_not_null(tokens, "the global bucket is in Redis under the prefix");
    double in_redis = strtod(tokens, NULL);
    free(tokens);
    cr_assert(in_redis <= 9.01 && in_redis >= 0, "10 less the block taken: %g", in_redis);
    tg_shared_counters_t c;
    tg_shared_counters(sh, &c);
    cr_assert(c.configured && c.up && c.instances == 1 && c.leased >= 2, "up, 1 instance, %llu leased", (unsigned long long)c.leased);

    /* a switch set here goes to Redis; one written there is applied here */
    tg_shared_publish_switch(sh, 1, "get_user", TG_SWITCH_OFF, 12, "maintenance");
    cr_assert(WAIT_FOR(2, ({
                  char *v = hget("test:switches", "query:get_user");
                  int ok = v != NULL && strcmp(v, "off 12 maintenance") == 0;
                  free(v);
                  ok;
              })),
              "published");
    redisContext *rc = redis();
    freeReplyObject(redisCommand(rc, "HSET test:switches tenant:acme %s", "off 0 abuse"));
    freeReplyObject(redisCommand(rc, "INCR test:switches:version"));
    redisFree(rc);
    cr_assert(WAIT_FOR(1, atomic_load(&t->switched) == TG_SWITCH_OFF), "applied within a second");
    pthread_mutex_lock(&state->mutex);
    cr_assert_str_eq(t->reason, "abuse");
    pthread_mutex_unlock(&state->mutex);
    cr_assert_eq(atomic_load(&q->switched), TG_SWITCH_OFF, "Redis's view is this instance's too");

    /* Redis dies: local at rate / N (N = 1, the instances last seen) within one health interval; back: shared again */
    kill_redis();
    double t0 = now_s();
    cr_assert(WAIT_FOR(1, tg_lease_divisor(h, mono_ns()) != 0), "local");
    cr_assert(now_s() - t0 <= 0.2 + 0.15, "within one health interval (200 ms): %.3f s", now_s() - t0);
    cr_assert_eq(tg_lease_divisor(h, mono_ns()), 1);
    cr_assert(atomic_load(&t->lease.local_tat_ns) > mono_ns() + 500000000ull,
              "the local bucket starts empty after leases (10 at 10/s: full in 1 s), not with a fresh burst");
    tg_shared_counters(sh, &c);
    cr_assert(!c.up && c.fallbacks == 1);
    start_redis();
    cr_assert(WAIT_FOR(5, tg_lease_divisor(h, mono_ns()) == 0), "rejoins");
    cr_assert(WAIT_FOR(1, atomic_load(&t->switched) == TG_SWITCH_NONE), "a Redis that lost its switches has none: the tenant is back to its files");

    tg_shared_free(sh);
    tg_state_free(state);
}

/* one call of the tenant on credit, and the eventfd written as a worker would */
static void call_once(const tg_lease_health_t *h, tg_tenant_state_t *t)
{
    int64_t left;
    int wake;
    tg_lease_take(&t->lease, 1, &left, &wake);
    uint64_t one = 1;
    (void)!write(h->wake_fd, &one, sizeof(one));
}

Test(shared_redis, a_bad_key_or_a_flushed_script_is_one_tenants_problem_and_late_names_get_their_switches, .init = setup_redis,
     .fini = teardown_redis, .timeout = 60)
{
    redisContext *rc = redis();
    freeReplyObject(redisCommand(rc, "SET test:bucket:bad %s", "not a hash"));
    freeReplyObject(redisCommand(rc, "HSET test:switches query:late %s", "off 9 late"));
    freeReplyObject(redisCommand(rc, "INCR test:switches:version"));
    tg_state_t *state = tg_state_create(1);
    tg_tenant_state_t *bad = tg_state_bind_tenant(state, "bad", 1, 0), *good = tg_state_bind_tenant(state, "good", 1, 0);
    tg_lease_set_limits(&bad->lease, 10, 10);
    tg_lease_set_limits(&good->lease, 10, 10);
    tg_shared_t *sh = tg_shared_create(state);
    tg_shared_configure(sh, settings(redis_port));
    const tg_lease_health_t *h = tg_shared_health(sh);
    cr_assert(WAIT_FOR(5, tg_lease_divisor(h, mono_ns()) == 0), "reaches Redis");

    /* a name bound after the thread read the switches (a snapshot made after configure) gets them at the resync */
    usleep(100000);
    tg_query_state_t *late = tg_state_bind_query(state, "late", 1, "SELECT 1");
    tg_shared_resync(sh);
    cr_assert_eq(atomic_load(&late->switched), TG_SWITCH_OFF, "at once, from the view last read");

    /* WRONGTYPE on one tenant's bucket: that tenant's lease fails, the others' go on, nothing goes local */
    call_once(h, bad);
    call_once(h, good);
    cr_assert(WAIT_FOR(2, atomic_load(&good->lease.tokens) >= 0), "the good tenant is served");
    usleep(300000);
    tg_shared_counters_t c;
    tg_shared_counters(sh, &c);
    cr_assert_eq(c.fallbacks, 0, "an error reply is not Redis going away");
    cr_assert_eq(tg_lease_divisor(h, mono_ns()), 0);
    cr_assert(atomic_load(&bad->lease.tokens) < 0, "the bad tenant's debt stays");
    tg_buf_t st = {0};
    tg_shared_status(sh, &st);
    tg_buf_appendc(&st, '\0');
    cr_assert(strstr(st.base, "WRONGTYPE") != NULL && strstr(st.base, "tenant bad") != NULL, "last_error says which: %s", st.base);
    tg_buf_dispose(&st);

    /* SCRIPT FLUSH: NOSCRIPT once, the script is loaded again, no fallback */
    freeReplyObject(redisCommand(rc, "SCRIPT FLUSH"));
    int64_t before = atomic_load(&good->lease.tokens);
    for (int i = 0; i < before + 6; ++i)
        call_once(h, good);
    cr_assert(WAIT_FOR(3, atomic_load(&good->lease.tokens) >= 0), "leases again after NOSCRIPT: %lld", (long long)atomic_load(&good->lease.tokens));
    tg_shared_counters(sh, &c);
    cr_assert_eq(c.fallbacks, 0);
    redisFree(rc);
    tg_shared_free(sh);
    tg_state_free(state);
}

Test(shared_redis, switches_that_cannot_be_written_stay_here_and_written_ones_are_not_undone, .init = setup_redis, .fini = teardown_redis,
     .timeout = 60)
{
    tg_state_t *state = tg_state_create(1);
    tg_query_state_t *q = tg_state_bind_query(state, "q", 1, "SELECT 1");
    tg_tenant_state_t *t = tg_state_bind_tenant(state, "acme", 1, 0);
    tg_lease_set_limits(&t->lease, 10, 10);
    tg_shared_t *sh = tg_shared_create(state);
    tg_shared_configure(sh, settings(redis_port));
    const tg_lease_health_t *h = tg_shared_health(sh);
    cr_assert(WAIT_FOR(5, tg_lease_divisor(h, mono_ns()) == 0), "reaches Redis");

    /* written, then a resync (a reload) before the next read of Redis: the view knows it already */
    tg_shared_publish_switch(sh, 1, "q", TG_SWITCH_OFF, 3, "hot");
    tg_state_switch_query(state, q, TG_SWITCH_OFF, 3, "hot");
    cr_assert(WAIT_FOR(2, ({
                  char *v = hget("test:switches", "query:q");
                  int ok = v != NULL;
                  free(v);
                  ok;
              })));
    tg_shared_resync(sh);
    cr_assert_eq(atomic_load(&q->switched), TG_SWITCH_OFF, "not undone by the view read before it");

    /* the switches' key of another type: the switch holds here, the limits stay shared */
    redisContext *rc = redis();
    freeReplyObject(redisCommand(rc, "DEL test:switches"));
    freeReplyObject(redisCommand(rc, "SET test:switches %s", "a string"));
    redisFree(rc);
    tg_shared_publish_switch(sh, 0, "acme", TG_SWITCH_OFF, 0, "abuse");
    tg_state_switch_tenant(state, t, TG_SWITCH_OFF, "abuse");
    usleep(600000);
    tg_shared_counters_t c;
    tg_shared_counters(sh, &c);
    cr_assert_eq(c.fallbacks, 0, "an error reply to a switch is not Redis going away");
    cr_assert_eq(tg_lease_divisor(h, mono_ns()), 0);
    cr_assert_eq(atomic_load(&t->switched), TG_SWITCH_OFF, "the switch holds on this instance");
    tg_buf_t st = {0};
    tg_shared_status(sh, &st);
    tg_buf_appendc(&st, '\0');
    cr_assert(strstr(st.base, "\"pending_switches\":0") != NULL, "not stuck in the queue: %s", st.base);
    tg_buf_dispose(&st);
    tg_shared_free(sh);
    tg_state_free(state);
}

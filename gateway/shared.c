/*
 * shared_limits: the lease thread and its Redis (tollgate/shared.h).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <hiredis/hiredis.h>
#include "tollgate/shared.h"
#include "internal.h"

/*
 * One tenant's bucket: refilled at ARGV[1] / 1e6 tokens a second up to ARGV[2] / 1e6
 * since it was last touched (on Redis's clock, so the instances' clocks never matter;
 * a clock that stepped back refills nothing), then ARGV[3] tokens taken (as many as
 * there are, whole) or, negative, given back. Every number goes as an integer, so no
 * locale can make a decimal point a comma. A bucket nobody touched for as long as it
 * takes to fill is full, so it expires then (or never, when that is over 30 days).
 * Returns {granted, tokens left x 1000}.
 */
static const char LEASE_LUA[] =
    "local rate, burst, n = tonumber(ARGV[1]) / 1000000, tonumber(ARGV[2]) / 1000000, tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')\n"
    "local tokens, at = tonumber(b[1]), tonumber(b[2])\n"
    "if tokens == nil or at == nil then tokens, at = burst, now end\n"
    "if now > at then tokens = tokens + (now - at) * rate / 1000000; at = now end\n"
    "if tokens > burst then tokens = burst end\n"
    "local granted = 0\n"
    "if n > 0 then\n"
    "  granted = math.floor(math.min(n, tokens))\n"
    "  if granted < 0 then granted = 0 end\n"
    "  tokens = tokens - granted\n"
    "else\n"
    "  tokens = math.min(burst, tokens - n)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.0f', at))\n"
    "local ttl = math.ceil(burst / rate * 1000) + 1000\n"
    "if ttl <= 2592000000 then redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl)) else redis.call('PERSIST', KEYS[1]) end\n"
    "return {granted, string.format('%.0f', tokens * 1000)}\n";

/*
 * One tick of an instance: registers it (ARGV[1]) in the live set at Redis's time in
 * ms, or takes it out (ARGV[3] = "1"), drops those not seen for ARGV[2] ms, and
 * returns {live instances, the switches' version}.
 */
static const char TICK_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local stale = tonumber(ARGV[2])\n"
    "if ARGV[3] == '1' then redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "else redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1]) end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - stale))\n"
    "redis.call('PEXPIRE', KEYS[1], string.format('%.0f', stale * 2))\n"
    "local v = redis.call('GET', KEYS[2])\n"
    "return {redis.call('ZCARD', KEYS[1]), v or '0'}\n";

/* A tick every health interval / 4, at most this: switches reach every instance within a second. */
#define TICK_MAX_NS 250000000ull
/* How long the thread sleeps with nothing configured. */
#define IDLE_NS 1000000000ull

typedef struct st_switch_kv_t {
    char *field, *value;
} switch_kv_t;

typedef struct st_switch_op_t {
    char *field; /* "query:NAME" / "tenant:NAME" */
    char *value; /* tg_shared_format_switch's */
} switch_op_t;

/* what the thread needs of one tenant while it plans (copied from the registry under its mutex) */
typedef struct st_lease_ref_t {
    tg_tenant_state_t *t;
    int64_t n; /* planned: > 0 ask, < 0 give back */
} lease_ref_t;

struct st_tg_shared_t {
    tg_state_t *state;
    tg_lease_health_t health;
    pthread_t tid;
    pthread_mutex_t mutex;         /* guards what follows, up to the thread's own */
    tg_shared_limits_t *settings;  /* the latest configured (owned), NULL: off */
    uint64_t settings_gen;
    int stop, resync;
    switch_op_t *ops;              /* switches to publish, in order */
    size_t n_ops, cap_ops;
    char last_error[256];
    char instance[128];            /* this instance's id in the live set */
    switch_kv_t *known;            /* the switches Redis had when last read (field, value) */
    size_t n_known;
    int have_known;
    char version[32];              /* the switches' version last applied ("": none yet); guarded too */
    uint32_t instances;            /* live instances last seen, 0 never */
    _Atomic int up;
    _Atomic uint64_t fallbacks, commands, leased, returned;
    /* the thread's own */
    tg_shared_limits_t *cur;       /* its copy of the settings */
    uint64_t seen_gen;
    redisContext *rc;
    char sha_lease[48], sha_tick[48];
    uint64_t next_connect_ns, next_tick_ns;
    uint32_t cap_instances;        /* the N of the blocks' cap: sh->instances, held up for a while when it falls */
    uint64_t lower_since_ns;
    int ever_up, said_down;
    lease_ref_t *refs;
    size_t n_refs, cap_refs;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? tg_strdup(s) : NULL;
}

static tg_shared_limits_t *copy_settings(const tg_shared_limits_t *s)
{
    if (s == NULL)
        return NULL;
    tg_shared_limits_t *c = tg_calloc(1, sizeof(*c));
    *c = *s;
    c->redis = dup_or_null(s->redis);
    c->redis_shown = dup_or_null(s->redis_shown);
    c->host = dup_or_null(s->host);
    c->user = dup_or_null(s->user);
    c->password = dup_or_null(s->password);
    c->prefix = dup_or_null(s->prefix);
    return c;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Do the two settings reach the same Redis in the same way? (Else: reconnect.) */
static int same_connection(const tg_shared_limits_t *a, const tg_shared_limits_t *b)
{
    return a != NULL && b != NULL && same_str(a->host, b->host) && a->port == b->port && a->db == b->db &&
           same_str(a->user, b->user) && same_str(a->password, b->password) && same_str(a->prefix, b->prefix) &&
           a->timeout_ms == b->timeout_ms;
}

static uint64_t tick_ns(const tg_shared_limits_t *s)
{
    uint64_t t = (uint64_t)s->health_interval_ms * 1000000ull / 4;
    return t > TICK_MAX_NS ? TICK_MAX_NS : t;
}

/* ---- switches' values ---------------------------------------------------------- */

void tg_shared_format_switch(tg_buf_t *out, tg_switch_t sw, int retry_after_s, const char *reason)
{
    if (sw == TG_SWITCH_OFF)
        tg_buf_printf(out, "off %d %s", retry_after_s, reason != NULL ? reason : "");
    else
        tg_buf_appends(out, "on");
}

int tg_shared_parse_switch(const char *value, size_t len, tg_switch_t *sw, int *retry_after_s, const char **reason, size_t *reason_len)
{
    *reason = NULL;
    *reason_len = 0;
    *retry_after_s = 0;
    if (len == 2 && memcmp(value, "on", 2) == 0) {
        *sw = TG_SWITCH_ON;
        return 0;
    }
    if (len < 5 || memcmp(value, "off ", 4) != 0)
        return -1;
    size_t i = 4;
    long long r = 0;
    if (i == len || value[i] < '0' || value[i] > '9')
        return -1;
    for (; i != len && value[i] >= '0' && value[i] <= '9'; ++i)
        if ((r = r * 10 + (value[i] - '0')) > 86400 * 365)
            return -1;
    if (i != len && value[i] != ' ')
        return -1;
    *sw = TG_SWITCH_OFF;
    *retry_after_s = (int)r;
    if (i != len && i + 1 != len) {
        *reason = value + i + 1;
        *reason_len = len - i - 1;
    }
    return 0;
}

/* ---- Redis ----------------------------------------------------------------------- */

static void set_error(tg_shared_t *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(tg_shared_t *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&sh->mutex);
    vsnprintf(sh->last_error, sizeof(sh->last_error), fmt, ap);
    pthread_mutex_unlock(&sh->mutex);
    va_end(ap);
}

/* What went wrong with the connection, or the error reply. */
static const char *what_failed(const redisContext *rc, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        return r->str;
    return rc->errstr[0] != '\0' ? rc->errstr : "no answer";
}

static uint32_t divisor_now(const tg_shared_t *sh)
{
    uint32_t seen = sh->instances > sh->cap_instances ? sh->instances : sh->cap_instances; /* held up as the blocks' cap is */
    uint32_t n = seen != 0 ? seen : (uint32_t)sh->cur->expected_instances;
    return n == 0 ? 1 : n;
}

static void collect_tenants(tg_shared_t *sh);

/*
 * Going local after leases: each tenant's local bucket starts empty (refilling at
 * rate / N from now), and the calls spend what the lease still holds first. A full
 * local burst on every fallback would let a Redis that fails now and then through
 * at the rate plus a burst each time.
 */
static void empty_local_buckets(tg_shared_t *sh) /* of the tenants last collected */
{
    uint64_t now = tg_now_ns();
    for (size_t i = 0; i != sh->n_refs; ++i) {
        tg_lease_t *l = &sh->refs[i].t->lease;
        double full_in = tg_lease_burst(l) / tg_lease_rate(l) * 1e9; /* the same for rate / N and burst / N */
        atomic_store_explicit(&l->local_tat_ns, now + (full_in > 1e18 ? (uint64_t)1e18 : (uint64_t)full_in), memory_order_relaxed);
    }
}

/* Redis failed or left: every call limits locally from now on (said once until it is back). */
static void go_local(tg_shared_t *sh, const char *why)
{
    if (sh->rc != NULL) {
        redisFree(sh->rc);
        sh->rc = NULL;
    }
    atomic_store(&sh->health.good_until_ns, 0);
    atomic_store(&sh->health.divisor, divisor_now(sh));
    set_error(sh, "%s", why);
    if (atomic_exchange(&sh->up, 0)) {
        atomic_fetch_add(&sh->fallbacks, 1);
        collect_tenants(sh);
        empty_local_buckets(sh);
    }
    sh->lower_since_ns = 0; /* a fall of the count is timed over connected ticks only */
    if (!sh->said_down) {
        sh->said_down = 1;
        tg_log(TG_LOG_WARN, "shared_limits: Redis at %s %s (%s): limiting every tenant locally at rate / %u until it answers",
               sh->cur->redis_shown, sh->ever_up ? "is unreachable" : "cannot be reached", why, divisor_now(sh));
    }
    sh->next_connect_ns = tg_now_ns() + tick_ns(sh->cur);
    /* the switches are read again in full when it is back */
    pthread_mutex_lock(&sh->mutex);
    sh->version[0] = '\0';
    pthread_mutex_unlock(&sh->mutex);
}

/* A round trip worked: leases are spent for one more health interval. */
static void went_well(tg_shared_t *sh)
{
    atomic_store(&sh->health.good_until_ns, tg_now_ns() + (uint64_t)sh->cur->health_interval_ms * 1000000ull);
}

static redisReply *command(tg_shared_t *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(sh->rc, fmt, ap);
    va_end(ap);
    atomic_fetch_add_explicit(&sh->commands, 1, memory_order_relaxed);
    return r;
}

/* SCRIPT LOAD into `sha`; 0 or -1 (the reason in `why`) */
static int load_script(tg_shared_t *sh, const char *lua, char *sha, size_t size, char *why, size_t why_size)
{
    redisReply *r = command(sh, "SCRIPT LOAD %s", lua);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && r->len < size;
    if (ok)
        memcpy(sha, r->str, r->len + 1);
    else
        snprintf(why, why_size, "SCRIPT LOAD: %s", what_failed(sh->rc, r));
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int simple_command_ok(tg_shared_t *sh, redisReply *r, const char *what, char *why, size_t why_size)
{
    int ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(why, why_size, "%s: %s", what, what_failed(sh->rc, r));
    freeReplyObject(r);
    return ok;
}

/* Connects, authenticates, selects the database and loads the scripts; 0 or -1 (gone local). */
static int connect_redis(tg_shared_t *sh)
{
    const tg_shared_limits_t *s = sh->cur;
    struct timeval tv = {.tv_sec = s->timeout_ms / 1000, .tv_usec = (s->timeout_ms % 1000) * 1000};
    char why[320];
    sh->rc = redisConnectWithTimeout(s->host, s->port, tv);
    if (sh->rc == NULL || sh->rc->err) {
        snprintf(why, sizeof(why), "connect: %s", sh->rc != NULL ? sh->rc->errstr : "out of memory");
        go_local(sh, why);
        return -1;
    }
    redisSetTimeout(sh->rc, tv);
    redisEnableKeepAlive(sh->rc);
    int ok = 1;
    if (s->password != NULL)
        ok = simple_command_ok(sh, s->user != NULL ? command(sh, "AUTH %s %s", s->user, s->password) : command(sh, "AUTH %s", s->password),
                               "AUTH", why, sizeof(why));
    if (ok && s->db != 0)
        ok = simple_command_ok(sh, command(sh, "SELECT %d", s->db), "SELECT", why, sizeof(why));
    if (ok)
        ok = load_script(sh, LEASE_LUA, sh->sha_lease, sizeof(sh->sha_lease), why, sizeof(why)) == 0 &&
             load_script(sh, TICK_LUA, sh->sha_tick, sizeof(sh->sha_tick), why, sizeof(why)) == 0;
    if (!ok) {
        go_local(sh, why);
        return -1;
    }
    return 0;
}

/* ---- ticks and switches ----------------------------------------------------------- */

static void key_of(tg_buf_t *b, const tg_shared_limits_t *s, const char *what)
{
    tg_buf_reset(b);
    tg_buf_appends(b, s->prefix);
    tg_buf_appends(b, what);
    tg_buf_appendc(b, '\0');
}

/* One tick (or, `leave`, the last one): {live instances, version}. Returns 0, or -1 (gone local). */
static int tick(tg_shared_t *sh, int leave, char *version, size_t version_size)
{
    tg_buf_t k1 = {0}, k2 = {0};
    key_of(&k1, sh->cur, "instances");
    key_of(&k2, sh->cur, "switches:version");
    char stale[32];
    snprintf(stale, sizeof(stale), "%llu", (unsigned long long)sh->cur->health_interval_ms * 3);
    redisReply *r = command(sh, "EVALSHA %s 2 %s %s %s %s %s", sh->sha_tick, k1.base, k2.base, sh->instance, stale, leave ? "1" : "0");
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* SCRIPT FLUSH (or a Redis that lost its scripts but not the connection): load both again, try once more */
        char why[320];
        freeReplyObject(r);
        r = NULL;
        if (load_script(sh, TICK_LUA, sh->sha_tick, sizeof(sh->sha_tick), why, sizeof(why)) != 0 ||
            load_script(sh, LEASE_LUA, sh->sha_lease, sizeof(sh->sha_lease), why, sizeof(why)) != 0) {
            tg_buf_dispose(&k1);
            tg_buf_dispose(&k2);
            go_local(sh, why);
            return -1;
        }
        r = command(sh, "EVALSHA %s 2 %s %s %s %s %s", sh->sha_tick, k1.base, k2.base, sh->instance, stale, leave ? "1" : "0");
    }
    tg_buf_dispose(&k1);
    tg_buf_dispose(&k2);
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
             r->element[1]->type == REDIS_REPLY_STRING;
    if (!ok) {
        char why[320];
        snprintf(why, sizeof(why), "tick: %s", what_failed(sh->rc, r));
        freeReplyObject(r);
        go_local(sh, why);
        return -1;
    }
    long long n = r->element[0]->integer;
    snprintf(version, version_size, "%s", r->element[1]->str);
    freeReplyObject(r);
    pthread_mutex_lock(&sh->mutex);
    sh->instances = n < 1 ? 1 : n > 1000000 ? 1000000 : (uint32_t)n;
    pthread_mutex_unlock(&sh->mutex);
    /*
     * The count that caps the blocks (burst / N) rises at once and falls only once it
     * has been lower for as long as a gone instance takes to leave the set: after a
     * Redis restart the instances register again one by one, and the first must not
     * take the whole burst as its block.
     */
    uint64_t now = tg_now_ns(), hold = (uint64_t)sh->cur->health_interval_ms * 3000000ull;
    if (sh->instances >= sh->cap_instances) {
        sh->cap_instances = sh->instances;
        sh->lower_since_ns = 0;
    } else if (sh->lower_since_ns == 0) {
        sh->lower_since_ns = now;
    } else if (now - sh->lower_since_ns >= hold) {
        sh->cap_instances = sh->instances;
        sh->lower_since_ns = 0;
    }
    atomic_store(&sh->health.divisor, divisor_now(sh));
    went_well(sh);
    return 0;
}

/* one name's switch as Redis has it, and as the live state has it (read under the registry's mutex) */
typedef struct st_switch_view_t {
    int query;
    void *st;           /* tg_query_state_t * or tg_tenant_state_t * */
    const char *name;   /* the state's (never freed) */
    int sw, file_enabled, retry_after_s;
    char *reason;       /* a copy, or NULL */
} switch_view_t;

/* The effective switch of `sw` given what the files say (as tg_state_switch_* resolves it). */
static int resolve_switch(int sw, int file_enabled)
{
    return sw == TG_SWITCH_ON && file_enabled ? TG_SWITCH_NONE : sw;
}

static switch_view_t *view_switches(tg_state_t *s, size_t *n)
{
    pthread_mutex_lock(&s->mutex);
    switch_view_t *v = tg_calloc(s->n_queries + s->n_tenants + 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i != s->n_queries; ++i) {
        tg_query_state_t *q = s->queries[i];
        v[k++] = (switch_view_t){1, q, q->name, atomic_load(&q->switched), q->file_enabled, atomic_load(&q->retry_after_s),
                                 dup_or_null(q->reason)};
    }
    for (size_t i = 0; i != s->n_tenants; ++i) {
        tg_tenant_state_t *t = s->tenants[i];
        v[k++] = (switch_view_t){0, t, t->name, atomic_load(&t->switched), t->file_enabled, 0, dup_or_null(t->reason)};
    }
    pthread_mutex_unlock(&s->mutex);
    *n = k;
    return v;
}

/* The value Redis has for KIND NAME in the last view read, or NULL. */
static const char *find_field(const tg_shared_t *sh, const char *kind, const char *name)
{
    size_t kl = strlen(kind);
    for (size_t i = 0; i != sh->n_known; ++i) {
        const char *f = sh->known[i].field;
        if (strncmp(f, kind, kl) == 0 && strcmp(f + kl, name) == 0)
            return sh->known[i].value;
    }
    return NULL;
}

/* Sets FIELD to VALUE in the view last read (sh->mutex held). */
static void remember(tg_shared_t *sh, const char *field, const char *value)
{
    for (size_t i = 0; i != sh->n_known; ++i)
        if (strcmp(sh->known[i].field, field) == 0) {
            free(sh->known[i].value);
            sh->known[i].value = tg_strdup(value);
            return;
        }
    sh->known = realloc(sh->known, (sh->n_known + 1) * sizeof(*sh->known));
    if (sh->known == NULL)
        tg_fatal("out of memory");
    sh->known[sh->n_known++] = (switch_kv_t){tg_strdup(field), tg_strdup(value)};
}

/* Does a switch of KIND NAME set here wait to be written (sh->mutex held)? */
static int op_queued(const tg_shared_t *sh, const char *kind, const char *name)
{
    size_t kl = strlen(kind);
    for (size_t i = 0; i != sh->n_ops; ++i)
        if (strncmp(sh->ops[i].field, kind, kl) == 0 && strcmp(sh->ops[i].field + kl, name) == 0)
            return 1;
    return 0;
}

/*
 * Applies the switches Redis had when last read to the live state: a name Redis has no
 * switch for has none. Called with sh->mutex held (the lock order is sh->mutex, then
 * the registry's). A name whose switch set here waits to be written is left alone: an
 * operator's switch is queued before it is applied (tg_shared_publish_switch) and
 * remembered in the view once written, so a view read before it never undoes it.
 */
static void apply_known(tg_shared_t *sh)
{
    size_t n;
    switch_view_t *v = view_switches(sh->state, &n);
    for (size_t i = 0; i != n; ++i) {
        if (op_queued(sh, v[i].query ? "query:" : "tenant:", v[i].name))
            continue;
        const char *val = find_field(sh, v[i].query ? "query:" : "tenant:", v[i].name);
        tg_switch_t sw = TG_SWITCH_NONE;
        int retry = 30;
        const char *reason = NULL;
        size_t reason_len = 0;
        if (val != NULL && tg_shared_parse_switch(val, strlen(val), &sw, &retry, &reason, &reason_len) != 0) {
            tg_log(TG_LOG_WARN, "shared_limits: the switch of %s %s in Redis is not one tollgate wrote; left as it is",
                   v[i].query ? "query" : "tenant", v[i].name);
            continue;
        }
        char *why = reason != NULL ? tg_strndup(reason, reason_len) : NULL;
        int want = resolve_switch(sw, v[i].file_enabled);
        int differs = want != v[i].sw || (want == TG_SWITCH_OFF && (!same_str(why, v[i].reason) || (v[i].query && retry != v[i].retry_after_s)));
        if (differs) {
            if (v[i].query)
                tg_state_switch_query(sh->state, v[i].st, sw, retry, why);
            else
                tg_state_switch_tenant(sh->state, v[i].st, sw, why);
            tg_log(TG_LOG_INFO, "shared_limits: %s %s switched %s through Redis%s%s", v[i].query ? "query" : "tenant", v[i].name,
                   want == TG_SWITCH_OFF ? "off" : want == TG_SWITCH_ON ? "on" : "back to its files", why != NULL ? ": " : "",
                   why != NULL ? why : "");
        }
        free(why);
    }
    for (size_t i = 0; i != n; ++i)
        free(v[i].reason);
    free(v);
}

static void free_known(tg_shared_t *sh)
{
    for (size_t i = 0; i != sh->n_known; ++i) {
        free(sh->known[i].field);
        free(sh->known[i].value);
    }
    free(sh->known);
    sh->known = NULL;
    sh->n_known = 0;
}

/* Sends the switches set here, in order; 0, or -1 (gone local; they stay queued). */
static int publish_switches(tg_shared_t *sh)
{
    pthread_mutex_lock(&sh->mutex);
    size_t n = sh->n_ops;
    pthread_mutex_unlock(&sh->mutex);
    if (n == 0)
        return 0;
    tg_buf_t hash = {0}, ver = {0};
    key_of(&hash, sh->cur, "switches");
    key_of(&ver, sh->cur, "switches:version");
    for (size_t i = 0; i != n; ++i) {
        /* only this thread takes ops off the queue: the first n stay where they are */
        pthread_mutex_lock(&sh->mutex);
        switch_op_t op = sh->ops[i];
        pthread_mutex_unlock(&sh->mutex);
        redisAppendCommand(sh->rc, "HSET %s %s %s", hash.base, op.field, op.value);
        redisAppendCommand(sh->rc, "INCR %s", ver.base);
    }
    atomic_fetch_add_explicit(&sh->commands, 2 * n, memory_order_relaxed);
    /* an error reply (the switches' key of another type, say) loses that switch for the others, not the limits */
    int broken = 0;
    char why[320] = "";
    for (size_t i = 0; i != 2 * n && !broken; ++i) {
        redisReply *r = NULL;
        if (redisGetReply(sh->rc, (void **)&r) != REDIS_OK || r == NULL) {
            snprintf(why, sizeof(why), "publishing a switch: %s", what_failed(sh->rc, r));
            broken = 1;
        } else if (r->type == REDIS_REPLY_ERROR) {
            set_error(sh, "a switch could not be written to Redis (%s): it holds on this instance only", r->str);
            tg_log(TG_LOG_WARN, "shared_limits: a switch could not be written to Redis (%s): it holds on this instance only", r->str);
        }
        freeReplyObject(r);
    }
    tg_buf_dispose(&hash);
    tg_buf_dispose(&ver);
    if (broken) {
        go_local(sh, why);
        return -1;
    }
    pthread_mutex_lock(&sh->mutex);
    for (size_t i = 0; i != n; ++i) {
        /* the view last read knows it now too: a resync before the next read must not undo it */
        remember(sh, sh->ops[i].field, sh->ops[i].value);
        free(sh->ops[i].field);
        free(sh->ops[i].value);
    }
    memmove(sh->ops, sh->ops + n, (sh->n_ops - n) * sizeof(*sh->ops));
    sh->n_ops -= n;
    pthread_mutex_unlock(&sh->mutex);
    return 0;
}

/* Reads and applies the switches when their version moved (or a resync was asked); 0 or -1 (gone local). */
static int sync_switches(tg_shared_t *sh, const char *version, int force)
{
    if (!force && strcmp(version, sh->version) == 0)
        return 0;
    tg_buf_t hash = {0};
    key_of(&hash, sh->cur, "switches");
    redisReply *r = command(sh, "HGETALL %s", hash.base);
    tg_buf_dispose(&hash);
    if (r == NULL || (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_ERROR)) {
        char why[320];
        snprintf(why, sizeof(why), "HGETALL: %s", what_failed(sh->rc, r));
        freeReplyObject(r);
        go_local(sh, why);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* the switches' key is not a hash (someone wrote it): the limits are fine, the switches cannot be read */
        set_error(sh, "the switches (%sswitches): %s", sh->cur->prefix, r->str);
        freeReplyObject(r);
        return 0;
    }
    switch_kv_t *kv = tg_calloc(r->elements / 2 + 1, sizeof(*kv));
    size_t n = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i + 1]->type == REDIS_REPLY_STRING)
            kv[n++] = (switch_kv_t){tg_strndup(r->element[i]->str, r->element[i]->len), tg_strndup(r->element[i + 1]->str, r->element[i + 1]->len)};
    freeReplyObject(r);
    pthread_mutex_lock(&sh->mutex);
    free_known(sh);
    sh->known = kv;
    sh->n_known = n;
    sh->have_known = 1;
    apply_known(sh);
    snprintf(sh->version, sizeof(sh->version), "%s", version);
    pthread_mutex_unlock(&sh->mutex);
    return 0;
}

/* ---- leases ------------------------------------------------------------------------ */

/* The tenants that have limits (a snapshot gave them a rate), copied from the registry. */
static void collect_tenants(tg_shared_t *sh)
{
    tg_state_t *s = sh->state;
    pthread_mutex_lock(&s->mutex);
    if (sh->cap_refs < s->n_tenants) {
        sh->cap_refs = s->n_tenants * 2;
        sh->refs = realloc(sh->refs, sh->cap_refs * sizeof(*sh->refs));
        if (sh->refs == NULL)
            tg_fatal("out of memory");
    }
    sh->n_refs = 0;
    for (size_t i = 0; i != s->n_tenants; ++i)
        if (atomic_load_explicit(&s->tenants[i]->lease.rate_bits, memory_order_relaxed) != 0)
            sh->refs[sh->n_refs++] = (lease_ref_t){s->tenants[i], 0};
    pthread_mutex_unlock(&s->mutex);
}

static void append_lease(tg_shared_t *sh, tg_buf_t *key, const tg_tenant_state_t *t, int64_t n)
{
    char rate[40], burst[40], count[24];
    /* in millionths, as integers (the config bounds both: 1 to 1e15 millionths) */
    snprintf(rate, sizeof(rate), "%lld", (long long)llround(tg_lease_rate(&t->lease) * 1e6));
    snprintf(burst, sizeof(burst), "%lld", (long long)llround(tg_lease_burst(&t->lease) * 1e6));
    snprintf(count, sizeof(count), "%lld", (long long)n);
    tg_buf_reset(key);
    tg_buf_appends(key, sh->cur->prefix);
    tg_buf_appends(key, "bucket:");
    tg_buf_appends(key, t->name);
    tg_buf_appendc(key, '\0');
    redisAppendCommand(sh->rc, "EVALSHA %s 1 %s %s %s %s", sh->sha_lease, key->base, rate, burst, count);
}

/*
 * Plans every tenant's lease and sends what is to be asked or given back in one
 * pipeline. Returns 0, or -1 (gone local: asks not answered are wanted again).
 */
static int run_leases(tg_shared_t *sh, uint64_t now_ns, uint64_t *next_ns, int ticked)
{
    collect_tenants(sh);
    /* kept empty while leases are spent: a fallback the workers see before this thread does starts empty too */
    if (ticked)
        empty_local_buckets(sh);
    uint64_t lease_ns = (uint64_t)sh->cur->lease_ms * 1000000ull;
    tg_lease_params_t p = {
        .lease_ns = lease_ns,
        /* unspent for four leases, or two health intervals, whichever is longer: back to the others */
        .idle_ns = lease_ns * 4 > (uint64_t)sh->cur->health_interval_ms * 2000000ull ? lease_ns * 4
                                                                                      : (uint64_t)sh->cur->health_interval_ms * 2000000ull,
        .instances = sh->cap_instances != 0 ? sh->cap_instances : 1,
    };
    tg_buf_t key = {0};
    size_t sent = 0;
    for (size_t i = 0; i != sh->n_refs; ++i) {
        tg_lease_t *l = &sh->refs[i].t->lease;
        int64_t n = tg_lease_plan(l, &p, now_ns);
        sh->refs[i].n = n;
        if (n != 0) {
            append_lease(sh, &key, sh->refs[i].t, n);
            ++sent;
        } else if (atomic_load_explicit(&l->want, memory_order_relaxed) && l->ctl.next_ask_ns > now_ns && l->ctl.next_ask_ns < *next_ns) {
            *next_ns = l->ctl.next_ask_ns; /* wake when its wait is over */
        }
    }
    tg_buf_dispose(&key);
    if (sent == 0)
        return 0;
    atomic_fetch_add_explicit(&sh->commands, sent, memory_order_relaxed);
    /*
     * An error reply (a key of the wrong type, a script error, NOSCRIPT after a SCRIPT
     * FLUSH) fails that tenant's lease only: the stream is still in step. Only a
     * broken connection or a timeout means Redis is away.
     */
    int broken = 0, noscript = 0;
    char why[320] = "";
    uint64_t now = tg_now_ns();
    for (size_t i = 0; i != sh->n_refs; ++i) {
        int64_t n = sh->refs[i].n;
        if (n == 0)
            continue;
        tg_lease_t *l = &sh->refs[i].t->lease;
        redisReply *r = NULL;
        if (!broken && (redisGetReply(sh->rc, (void **)&r) != REDIS_OK || r == NULL)) {
            snprintf(why, sizeof(why), "lease: %s", what_failed(sh->rc, r));
            broken = 1;
        }
        int good = !broken && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
                   r->element[1]->type == REDIS_REPLY_STRING;
        if (good && n > 0) {
            long long granted = r->element[0]->integer;
            tg_lease_granted(l, n, granted, (double)strtoll(r->element[1]->str, NULL, 10) / 1000.0, now);
            atomic_fetch_add_explicit(&sh->leased, (uint64_t)(granted > 0 ? granted : 0), memory_order_relaxed);
        } else if (good) {
            atomic_fetch_add_explicit(&sh->returned, (uint64_t)-n, memory_order_relaxed);
        } else {
            if (!broken) {
                noscript |= r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
                set_error(sh, "the lease of tenant %s: %s", sh->refs[i].t->name,
                          r->type == REDIS_REPLY_ERROR ? r->str : "an answer that is not {granted, tokens}");
            }
            if (n > 0)
                tg_lease_failed(l, now + tick_ns(sh->cur)); /* tried again a tick later, not at once */
        }
        freeReplyObject(r);
    }
    if (broken) {
        go_local(sh, why);
        return -1;
    }
    went_well(sh);
    if (noscript) {
        char why2[320];
        if (load_script(sh, LEASE_LUA, sh->sha_lease, sizeof(sh->sha_lease), why2, sizeof(why2)) != 0) {
            go_local(sh, why2);
            return -1;
        }
    }
    return 0;
}

/* Gives every positive balance back (a stop, or shared_limits turned off). */
static void give_back_all(tg_shared_t *sh)
{
    collect_tenants(sh);
    tg_buf_t key = {0};
    size_t sent = 0;
    for (size_t i = 0; i != sh->n_refs; ++i) {
        int64_t n = tg_lease_drain(&sh->refs[i].t->lease);
        if (n > 0) {
            append_lease(sh, &key, sh->refs[i].t, -n);
            ++sent;
            atomic_fetch_add_explicit(&sh->returned, (uint64_t)n, memory_order_relaxed);
        }
    }
    tg_buf_dispose(&key);
    atomic_fetch_add_explicit(&sh->commands, sent, memory_order_relaxed);
    for (size_t i = 0; i != sent; ++i) {
        redisReply *r = NULL;
        if (redisGetReply(sh->rc, (void **)&r) != REDIS_OK)
            break;
        freeReplyObject(r);
    }
}

/* ---- the thread ---------------------------------------------------------------------- */

static void disconnect_and_leave(tg_shared_t *sh)
{
    if (sh->rc != NULL) {
        char v[32];
        publish_switches(sh); /* what an operator set here last still reaches the others */
        if (sh->rc == NULL)
            return;
        give_back_all(sh);
        if (sh->rc != NULL && !sh->rc->err)
            tick(sh, 1, v, sizeof(v));
        if (sh->rc != NULL)
            redisFree(sh->rc);
        sh->rc = NULL;
    }
    atomic_store(&sh->health.good_until_ns, 0);
    atomic_store(&sh->up, 0);
}

/* Takes new settings if there are; returns 1 if the switches must be applied again in full. */
static int take_settings(tg_shared_t *sh, int *stop)
{
    pthread_mutex_lock(&sh->mutex);
    *stop = sh->stop;
    int resync = sh->resync;
    sh->resync = 0;
    tg_shared_limits_t *next = NULL;
    int changed = sh->settings_gen != sh->seen_gen;
    if (changed) {
        next = copy_settings(sh->settings);
        sh->seen_gen = sh->settings_gen;
    }
    pthread_mutex_unlock(&sh->mutex);
    if (!changed)
        return resync;
    if (!same_connection(sh->cur, next)) {
        if (sh->cur != NULL)
            disconnect_and_leave(sh);
        sh->next_connect_ns = 0;
        sh->said_down = 0;
        pthread_mutex_lock(&sh->mutex);
        sh->version[0] = '\0';
        free_known(sh);
        sh->have_known = 0;
        sh->instances = 0;
        sh->cap_instances = 0;
        sh->last_error[0] = '\0';
        pthread_mutex_unlock(&sh->mutex);
    }
    tg_shared_limits_free(sh->cur);
    sh->cur = next;
    if (next != NULL && sh->rc == NULL)
        atomic_store(&sh->health.divisor, divisor_now(sh));
    return 1;
}

static void wait_for(tg_shared_t *sh, uint64_t ns)
{
    struct pollfd pfd = {.fd = sh->health.wake_fd, .events = POLLIN};
    int ms = (int)((ns + 999999) / 1000000);
    if (poll(&pfd, 1, ms) > 0) {
        uint64_t v;
        (void)!read(sh->health.wake_fd, &v, sizeof(v));
    }
}

/* One pass while configured: connect if due, tick if due, publish, lease. Returns how long to sleep. */
static uint64_t step(tg_shared_t *sh, int resync)
{
    uint64_t now = tg_now_ns(), tick_every = tick_ns(sh->cur);
    int ticked = 0;
    if (sh->rc == NULL) {
        if (now < sh->next_connect_ns)
            return sh->next_connect_ns - now;
        if (connect_redis(sh) != 0)
            return tick_every;
        resync = 1;
        sh->next_tick_ns = 0;
    }
    if (now >= sh->next_tick_ns || resync) {
        char version[32];
        if (tick(sh, 0, version, sizeof(version)) != 0)
            return tick_every;
        sh->next_tick_ns = now + tick_every;
        ticked = 1;
        if (!atomic_exchange(&sh->up, 1)) {
            if (sh->said_down || sh->ever_up)
                tg_log(TG_LOG_INFO, "shared_limits: Redis at %s answers again: tenant limits are global (%u instances)",
                       sh->cur->redis_shown, sh->instances);
            else
                tg_log(TG_LOG_INFO, "shared_limits: tenant limits are global through Redis at %s (%u instances), instance %s",
                       sh->cur->redis_shown, sh->instances, sh->instance);
            sh->said_down = 0;
            sh->ever_up = 1;
            set_error(sh, "%s", "");
        }
        if (publish_switches(sh) != 0 || sync_switches(sh, version, resync) != 0)
            return tick_every;
    } else if (publish_switches(sh) != 0) {
        return tick_every;
    }
    uint64_t next = sh->next_tick_ns;
    if (run_leases(sh, tg_now_ns(), &next, ticked) != 0)
        return tick_every;
    now = tg_now_ns();
    return next > now ? next - now : 0;
}

static void *shared_main(void *arg)
{
    tg_shared_t *sh = arg;
    for (;;) {
        int stop, resync = take_settings(sh, &stop);
        if (stop)
            break;
        wait_for(sh, sh->cur == NULL ? IDLE_NS : step(sh, resync));
    }
    if (sh->cur != NULL)
        disconnect_and_leave(sh);
    return NULL;
}

/* ---- the API --------------------------------------------------------------------------- */

static void make_instance_id(char *out, size_t size)
{
    char host[64] = "";
    uint32_t r = 0;
    gethostname(host, sizeof(host) - 1);
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)tg_now_ns();
    snprintf(out, size, "%s:%d:%08x", host[0] != '\0' ? host : "tollgate", (int)getpid(), r);
}

tg_shared_t *tg_shared_create(tg_state_t *state)
{
    tg_shared_t *sh = tg_calloc(1, sizeof(*sh));
    sh->state = state;
    sh->health.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sh->health.wake_fd < 0)
        tg_fatal("eventfd: %s", strerror(errno));
    atomic_init(&sh->health.divisor, 1);
    pthread_mutex_init(&sh->mutex, NULL);
    make_instance_id(sh->instance, sizeof(sh->instance));
    if (pthread_create(&sh->tid, NULL, shared_main, sh) != 0)
        tg_fatal("cannot start the shared_limits thread");
    return sh;
}

static void wake(tg_shared_t *sh)
{
    uint64_t one = 1;
    (void)!write(sh->health.wake_fd, &one, sizeof(one));
}

void tg_shared_configure(tg_shared_t *sh, const tg_shared_limits_t *settings)
{
    tg_shared_limits_t *copy = copy_settings(settings);
    pthread_mutex_lock(&sh->mutex);
    if (!same_connection(sh->settings, copy)) {
        /* another Redis (or prefix): its switches are not the old one's */
        free_known(sh);
        sh->have_known = 0;
    }
    tg_shared_limits_free(sh->settings);
    sh->settings = copy;
    ++sh->settings_gen;
    if (settings != NULL) { /* until the thread has a connection: local limits at rate / expected_instances */
        atomic_store(&sh->health.divisor, sh->instances != 0 ? sh->instances : (uint32_t)settings->expected_instances);
        atomic_store(&sh->health.lease_ns, (uint64_t)settings->lease_ms * 1000000ull);
    }
    pthread_mutex_unlock(&sh->mutex);
    wake(sh);
}

const tg_lease_health_t *tg_shared_health(tg_shared_t *sh)
{
    return &sh->health;
}

void tg_shared_publish_switch(tg_shared_t *sh, int query, const char *name, tg_switch_t sw, int retry_after_s, const char *reason)
{
    tg_buf_t f = {0}, v = {0};
    tg_buf_printf(&f, "%s:%s", query ? "query" : "tenant", name);
    tg_shared_format_switch(&v, sw, retry_after_s, reason);
    pthread_mutex_lock(&sh->mutex);
    if (sh->settings == NULL) {
        pthread_mutex_unlock(&sh->mutex);
        tg_buf_dispose(&f);
        tg_buf_dispose(&v);
        return;
    }
    if (sh->n_ops == sh->cap_ops) {
        sh->cap_ops = sh->cap_ops == 0 ? 8 : sh->cap_ops * 2;
        sh->ops = realloc(sh->ops, sh->cap_ops * sizeof(*sh->ops));
        if (sh->ops == NULL)
            tg_fatal("out of memory");
    }
    sh->ops[sh->n_ops++] = (switch_op_t){tg_strndup(f.base, f.len), tg_strndup(v.base, v.len)};
    pthread_mutex_unlock(&sh->mutex);
    tg_buf_dispose(&f);
    tg_buf_dispose(&v);
    wake(sh);
}

void tg_shared_resync(tg_shared_t *sh)
{
    pthread_mutex_lock(&sh->mutex);
    /* at once, from the view last read: a name whose files changed is never served against Redis's switch */
    if (sh->settings != NULL && sh->have_known)
        apply_known(sh);
    sh->resync = 1;
    pthread_mutex_unlock(&sh->mutex);
    wake(sh);
}

static void append_json_str(tg_buf_t *out, const char *s)
{
    if (s == NULL)
        tg_buf_appends(out, "null");
    else
        tg_buf_append_json_string(out, s, strlen(s));
}

void tg_shared_status(tg_shared_t *sh, tg_buf_t *out)
{
    pthread_mutex_lock(&sh->mutex);
    const tg_shared_limits_t *s = sh->settings;
    if (s == NULL) {
        pthread_mutex_unlock(&sh->mutex);
        tg_buf_appends(out, "null");
        return;
    }
    int up = atomic_load(&sh->up) && tg_lease_divisor(&sh->health, tg_now_ns()) == 0;
    tg_buf_appends(out, "{\"redis\":");
    append_json_str(out, s->redis_shown);
    tg_buf_appends(out, ",\"prefix\":");
    append_json_str(out, s->prefix);
    tg_buf_printf(out, ",\"state\":\"%s\",\"instance\":", up ? "shared" : "local");
    append_json_str(out, sh->instance);
    tg_buf_printf(out, ",\"instances\":%u,\"divisor\":%u,\"expected_instances\":%d,\"lease_ms\":%d,\"health_interval_ms\":%d,\"last_error\":",
                  sh->instances, atomic_load(&sh->health.divisor), s->expected_instances, s->lease_ms, s->health_interval_ms);
    append_json_str(out, sh->last_error[0] != '\0' ? sh->last_error : NULL);
    tg_buf_printf(out, ",\"fallbacks\":%llu,\"pending_switches\":%zu,\"tenants\":[", (unsigned long long)atomic_load(&sh->fallbacks),
                  sh->n_ops);
    pthread_mutex_unlock(&sh->mutex);
    tg_state_t *st = sh->state;
    pthread_mutex_lock(&st->mutex);
    int first = 1;
    for (size_t i = 0; i != st->n_tenants; ++i) {
        tg_lease_t *l = &st->tenants[i]->lease;
        if (atomic_load_explicit(&l->rate_bits, memory_order_relaxed) == 0)
            continue;
        tg_buf_appends(out, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
        append_json_str(out, st->tenants[i]->name);
        tg_buf_printf(out, ",\"lease_tokens\":%lld,\"lease_size\":%lld}", (long long)atomic_load(&l->tokens),
                      (long long)atomic_load(&l->block));
    }
    pthread_mutex_unlock(&st->mutex);
    tg_buf_appends(out, "]}");
}

void tg_shared_counters(tg_shared_t *sh, tg_shared_counters_t *out)
{
    pthread_mutex_lock(&sh->mutex);
    out->configured = sh->settings != NULL;
    out->instances = sh->instances;
    pthread_mutex_unlock(&sh->mutex);
    out->up = atomic_load(&sh->up) && tg_lease_divisor(&sh->health, tg_now_ns()) == 0;
    out->fallbacks = atomic_load(&sh->fallbacks);
    out->commands = atomic_load(&sh->commands);
    out->leased = atomic_load(&sh->leased);
    out->returned = atomic_load(&sh->returned);
}

void tg_shared_free(tg_shared_t *sh)
{
    if (sh == NULL)
        return;
    pthread_mutex_lock(&sh->mutex);
    sh->stop = 1;
    pthread_mutex_unlock(&sh->mutex);
    wake(sh);
    pthread_join(sh->tid, NULL);
    tg_shared_limits_free(sh->cur);
    tg_shared_limits_free(sh->settings);
    for (size_t i = 0; i != sh->n_ops; ++i) {
        free(sh->ops[i].field);
        free(sh->ops[i].value);
    }
    free(sh->ops);
    free(sh->refs);
    free_known(sh);
    close(sh->health.wake_fd);
    pthread_mutex_destroy(&sh->mutex);
    free(sh);
}

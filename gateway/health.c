/*
 * Health checks: one blocking checker thread per backend, publishing up/down and
 * replica lag through the backend's atomics. See tollgate/health.h for how lag is
 * measured and why.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tollgate/consistency.h"
#include "tollgate/health.h"
#include "internal.h"

void tg_lsn_history_add(tg_lsn_history_t *h, uint64_t at_ms, uint64_t lsn)
{
    if (h->n != 0) {
        uint64_t last = h->s[(h->first + h->n - 1) % TG_LSN_HISTORY].lsn;
        if (last == lsn)
            return;
        /*
         * A server's WAL position never goes back: a lower one is another server (a
         * standby promoted behind a multi-host primary string). Its positions are not
         * comparable with the old ones, so lag is measured from it afresh.
         */
        if (lsn < last)
            *h = (tg_lsn_history_t){0};
    }
    if (h->n == TG_LSN_HISTORY) {
        h->first = (h->first + 1) % TG_LSN_HISTORY;
        --h->n;
    }
    size_t i = (h->first + h->n++) % TG_LSN_HISTORY;
    h->s[i].at_ms = at_ms;
    h->s[i].lsn = lsn;
}

uint64_t tg_lsn_lag_ms(const tg_lsn_history_t *h, uint64_t replay_lsn, uint64_t now_ms)
{
    /* The oldest sample the replica has not reached: the primary had that WAL since then. */
    for (size_t k = 0; k != h->n; ++k) {
        size_t i = (h->first + k) % TG_LSN_HISTORY;
        if (h->s[i].lsn > replay_lsn)
            return now_ms > h->s[i].at_ms ? now_ms - h->s[i].at_ms : 0;
    }
    return 0;
}

/** the primary's LSN history, shared by the replicas' checkers */
typedef struct st_tg_health_shared_t {
    pthread_mutex_t mutex;
    tg_lsn_history_t history;
    int primary_known;      /* at least one sample */
    uint64_t primary_at_ms; /* when the last sample was taken */
} tg_health_shared_t;

/** one backend's checker */
typedef struct st_tg_checker_t {
    struct st_tg_health_t *health;
    tg_backend_t *backend;
    pthread_t tid;
    PGconn *conn;
    int ever_up;  /* for the log: first contact or a comeback */
    int quiet;    /* a failure now is not a verdict yet (check_once decides) */
    int lost;     /* the last failure was the session lost, not a check that got no answer */
    int failed;   /* a failure was held back while quiet */
    char why[256]; /* what it was */
    int stopping; /* guarded by the health's stop_mutex */
    uint64_t seen_refresh; /* the health's refresh_gen at this checker's last round */
    uint64_t session;      /* sessions made so far (a new one may be to a restarted, rewound or other server) */
    uint64_t position_session; /* the session the backend's position was last read on */
    int hidden_warned;     /* the "timeline hidden from this role" warning was logged */
    struct st_tg_checker_t *next;
} tg_checker_t;

struct st_tg_health_t {
    _Atomic int interval_ms;
    tg_health_shared_t shared;
    tg_checker_t *checkers;
    tg_checker_t *leaving;  /* told to stop, not joined yet */
    pthread_mutex_t stop_mutex;
    pthread_cond_t stop_cond;
    uint64_t refresh_gen;           /* guarded by stop_mutex: a replica whose checker has not seen it checks again at once */
    _Atomic uint64_t refresh_at_ms; /* when the last early round was asked for (tg_health_refresh) */
};

/* Publishes a backend's WAL position (see tg_backend_t.wal_timeline); timeline 0: not known. */
static void set_position(tg_backend_t *b, uint32_t timeline, uint64_t lsn)
{
    if (atomic_load(&b->wal_timeline) != timeline)
        atomic_store(&b->wal_timeline, 0);
    atomic_store(&b->wal_lsn, lsn);
    atomic_store(&b->wal_timeline, timeline);
}

void tg_health_position(const tg_backend_t *b, uint32_t *timeline, uint64_t *lsn)
{
    uint32_t before = atomic_load(&b->wal_timeline);
    *lsn = atomic_load(&b->wal_lsn);
    *timeline = atomic_load(&b->wal_timeline) == before ? before : 0;
}

/* a timeline as pg_stat_wal_receiver's received_tli reads in text: decimal, 1 or more; "" (NULL: no receiver) is -1 */
static int parse_timeline(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = *s >= '1' && *s <= '9' ? strtoul(s, &end, 10) : 0;
    if (v == 0 || errno != 0 || *end != '\0' || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void set_up(tg_checker_t *k, int up, const char *why)
{
    tg_backend_t *b = k->backend;
    if (!up && k->quiet) {
        k->failed = 1;
        snprintf(k->why, sizeof(k->why), "%s", why != NULL ? why : "failed");
        return;
    }
    int was = atomic_exchange(&b->up, up);
    if (up) {
        uint64_t now = tg_now_ms();
        atomic_store(&b->checked_at_ms, now);
        atomic_store(&b->passed_at_ms, now);
        if (!was) {
            tg_log(TG_LOG_INFO, k->ever_up ? "%s: health check passed; taking it back" : "%s: up", b->name);
            k->ever_up = 1;
        }
    } else if (was || atomic_load(&b->checked_at_ms) != 0) {
        tg_log(TG_LOG_WARN, "%s: health check failed: %.*s", b->name, (int)strcspn(why, "\n"), why);
        atomic_store(&b->checked_at_ms, 0);
    }
}

/*
 * One query, one row, one or two text columns, answered within `timeout_ms`: a
 * server that stops answering (hung, or a network that drops packets) must not hold
 * this thread, or shutdown, for longer. Returns the result or NULL (the connection is
 * then closed and the backend marked down).
 */
static PGresult *ask(tg_checker_t *k, const char *sql, int timeout_ms)
{
    const char *why = NULL;
    PGresult *res = NULL, *r;
    uint64_t deadline = tg_now_ms() + (uint64_t)timeout_ms;
    if (!PQsendQuery(k->conn, sql)) {
        why = PQerrorMessage(k->conn);
        goto Fail;
    }
    for (;;) {
        while (!PQisBusy(k->conn)) {
            if ((r = PQgetResult(k->conn)) == NULL)
                goto Done;
            if (res == NULL)
                res = r;
            else
                PQclear(r);
        }
        uint64_t now = tg_now_ms();
        if (now >= deadline) {
            why = "no answer within the health check's timeout";
            goto Fail;
        }
        struct pollfd p = {.fd = PQsocket(k->conn), .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR) {
            why = strerror(errno);
            goto Fail;
        }
        if (!PQconsumeInput(k->conn)) {
            why = PQerrorMessage(k->conn);
            goto Fail;
        }
    }
Done:
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        return res;
    why = PQresultStatus(res) == PGRES_FATAL_ERROR ? PQresultErrorMessage(res) : "unexpected answer";
Fail:
    k->lost = PQstatus(k->conn) == CONNECTION_BAD;
    set_up(k, 0, why);
    PQclear(res);
    PQfinish(k->conn);
    k->conn = NULL;
    return NULL;
}

/* A notice on the checker's session (a WARNING that the server shuts down), as one log line. */
static void on_notice(void *arg, const PGresult *res)
{
    const tg_checker_t *k = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED), *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int warning = severity != NULL && strcmp(severity, "WARNING") == 0;
    tg_log(warning ? TG_LOG_WARN : TG_LOG_DEBUG, "%s: server %s %s (health check session)", k->backend->name,
           severity != NULL ? severity : "NOTICE", state != NULL ? state : "(no SQLSTATE)");
}

/* One check; returns 1 if it passed. */
static int check_round(tg_checker_t *k)
{
    tg_health_t *h = k->health;
    tg_backend_t *b = k->backend;
    if (k->conn == NULL) {
        /* Bounded waits: a dead host must not stall this checker for long. */
        int interval_ms = atomic_load(&h->interval_ms);
        char ct[16], opt[64];
        snprintf(ct, sizeof(ct), "%d", tg_health_connect_timeout_ms(interval_ms) / 1000);
        snprintf(opt, sizeof(opt), "-c statement_timeout=%d", tg_health_check_timeout_ms(interval_ms));
        const char *kw[] = {"dbname", "connect_timeout", "options", "fallback_application_name", NULL};
        const char *val[] = {b->conninfo, ct, opt, "tollgate-health", NULL};
        k->conn = PQconnectdbParams(kw, val, 1);
        /* The server's notices (a shutdown's WARNING) go through the log, not raw to stderr. */
        if (k->conn != NULL)
            PQsetNoticeReceiver(k->conn, on_notice, k);
        if (PQstatus(k->conn) != CONNECTION_OK || PQsetnonblocking(k->conn, 1) != 0) {
            set_up(k, 0, PQerrorMessage(k->conn));
            PQfinish(k->conn);
            k->conn = NULL;
            return 0;
        }
        ++k->session;
    }
    int timeout_ms = tg_health_check_timeout_ms(atomic_load(&h->interval_ms));
    if (b->is_primary) {
        /* the position and its timeline: the timeline is the first 8 hex digits of its WAL file's name */
        PGresult *res = ask(k, "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())", timeout_ms);
        if (res == NULL)
            return 0;
        uint64_t lsn;
        uint32_t tl;
        if (tg_pg_lsn_parse(PQgetvalue(res, 0, 0), &lsn) == 0 && tg_pg_walfile_timeline(PQgetvalue(res, 0, 1), &tl) == 0)
            set_position(b, tl, lsn);
        /* a primary leaving the config must not sample into the history its successor starts */
        pthread_mutex_lock(&h->stop_mutex);
        int leaving = k->stopping;
        pthread_mutex_unlock(&h->stop_mutex);
        if (!leaving && tg_pg_lsn_parse(PQgetvalue(res, 0, 0), &lsn) == 0) {
            pthread_mutex_lock(&h->shared.mutex);
            tg_lsn_history_add(&h->shared.history, tg_now_ms(), lsn);
            h->shared.primary_known = 1;
            h->shared.primary_at_ms = tg_now_ms();
            pthread_mutex_unlock(&h->shared.mutex);
        }
        PQclear(res);
        set_up(k, 1, NULL);
        return 1;
    }
    /*
     * Its replay position, and the timeline it is on: the one its WAL receiver follows
     * (read with the position, so they go together). Replay may still be short of a
     * switch to a new timeline the receiver already follows: a token of the old one then
     * finds this replica on another and goes to the primary, and one of the new is past
     * the switch, which a replay position short of it is not. Unknown without a receiver.
     */
    PGresult *res = ask(k,
                        "SELECT pg_is_in_recovery()::text, pg_last_wal_replay_lsn()::text, (SELECT received_tli FROM pg_stat_wal_receiver)::text, "
                        "(SELECT pid IS NOT NULL AND received_tli IS NULL FROM pg_stat_wal_receiver)::text",
                        timeout_ms);
    if (res == NULL)
        return 0;
    uint64_t replay;
    uint32_t tl;
    int64_t lag = TG_LAG_UNKNOWN;
    int in_recovery = strcmp(PQgetvalue(res, 0, 0), "true") == 0, has_replay = tg_pg_lsn_parse(PQgetvalue(res, 0, 1), &replay) == 0;
    if (in_recovery && has_replay && parse_timeline(PQgetvalue(res, 0, 2), &tl) == 0) {
        set_position(b, tl, replay);
        k->position_session = k->session;
    } else if (!in_recovery || k->position_session != k->session) {
        /*
         * Promoted (its positions are its own history's), or a new session: the server
         * may have restarted behind where it was (a crash recovers to its last restart
         * point), been rewound or restored, or be another behind the same conninfo.
         */
        set_position(b, 0, 0);
    }
    /*
     * Otherwise in recovery without a WAL receiver (reconnecting, or replaying from an
     * archive), on the session its position was read on: it has not restarted since,
     * so what it had it still has (replay never goes back in one run, and a later
     * switch of timeline forks after it): that stays, not advanced.
     */
    if (in_recovery && strcmp(PQgetvalue(res, 0, 3), "true") == 0 && !k->hidden_warned) {
        k->hidden_warned = 1;
        tg_log(TG_LOG_WARN,
               "%s: its WAL receiver's timeline is hidden from this role (grant it pg_read_all_stats): reads with Tollgate-Read-After "
               "go to the primary",
               b->name);
    }
    if (!in_recovery) {
        /* Promoted or never a replica: its data may not be the primary's; reads go to it only as a last resort. */
        lag = TG_LAG_NOT_IN_RECOVERY;
        if (atomic_load(&b->lag_ms) != TG_LAG_NOT_IN_RECOVERY)
            tg_log(TG_LOG_WARN, "%s: is not in recovery; reads go to it only while the primary cannot be reached", b->name);
    } else if (has_replay) {
        /*
         * Lag is measured against the primary's recent samples. Without them (the
         * primary unreachable since the start, or down now) it cannot be: the replica
         * then serves what it has replayed, which is all there is while the primary
         * is gone, and is only as stale as it was when the primary was last seen.
         */
        uint64_t now = tg_now_ms(), fresh = 3 * (uint64_t)atomic_load(&h->interval_ms) + 1000;
        pthread_mutex_lock(&h->shared.mutex);
        if (h->shared.primary_known && now <= h->shared.primary_at_ms + fresh)
            lag = (int64_t)tg_lsn_lag_ms(&h->shared.history, replay, now);
        else
            lag = TG_LAG_UNCOMPARED;
        pthread_mutex_unlock(&h->shared.mutex);
        if (lag == TG_LAG_UNCOMPARED && atomic_load(&b->lag_ms) != TG_LAG_UNCOMPARED)
            tg_log(TG_LOG_WARN, "%s: the primary cannot be checked: serving reads with the lag unknown", b->name);
    }
    PQclear(res);
    atomic_store(&b->lag_ms, lag);
    set_up(k, 1, NULL);
    return 1;
}

/*
 * One round. A check whose session was lost (the server ended it, a network cut it,
 * an idle reaper) is tried again at once on a new one before the verdict: one lost
 * session says nothing of the server, and must not take it out of routing for a
 * whole interval. A check that got no answer in time is a verdict: the server hangs.
 */
static void check_once(tg_checker_t *k)
{
    k->quiet = k->conn != NULL;
    k->lost = k->failed = 0;
    int passed = check_round(k);
    int retry = !passed && k->quiet && k->lost;
    k->quiet = 0;
    if (retry)
        check_round(k);
    else if (!passed && k->failed)
        set_up(k, 0, k->why);
}

/*
 * Waits (stop_mutex held) until the next round is due: an interval from now, at once
 * when the interval is made shorter (a reload), or early for a replica whose position
 * is wanted (tg_health_refresh), but only on a session that is up to a backend up by
 * its last check: an early round never connects, so forged tokens cannot make a down
 * replica's postmaster fork a process per refresh.
 */
static void wait_next_round(tg_checker_t *k)
{
    tg_health_t *h = k->health;
    int interval_ms = atomic_load(&h->interval_ms);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)interval_ms * 1000000;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    while (!k->stopping && atomic_load(&h->interval_ms) >= interval_ms) {
        if (!k->backend->is_primary && k->seen_refresh != h->refresh_gen) {
            k->seen_refresh = h->refresh_gen;
            if (k->conn != NULL && atomic_load(&k->backend->up))
                return;
        }
        if (pthread_cond_timedwait(&h->stop_cond, &h->stop_mutex, &until) == ETIMEDOUT)
            return;
    }
}

static void *checker_main(void *arg)
{
    tg_checker_t *k = arg;
    tg_health_t *h = k->health;
    pthread_mutex_lock(&h->stop_mutex);
    while (!k->stopping) {
        pthread_mutex_unlock(&h->stop_mutex);
        check_once(k);
        pthread_mutex_lock(&h->stop_mutex);
        wait_next_round(k);
    }
    pthread_mutex_unlock(&h->stop_mutex);
    if (k->conn != NULL)
        PQfinish(k->conn);
    return NULL;
}

tg_health_t *tg_health_create(int interval_ms)
{
    tg_health_t *h = tg_calloc(1, sizeof(*h));
    atomic_init(&h->interval_ms, interval_ms);
    pthread_mutex_init(&h->shared.mutex, NULL);
    pthread_mutex_init(&h->stop_mutex, NULL);
    /* Waits measure intervals: a wall-clock step must not stall the checks. */
    tg_cond_init_monotonic(&h->stop_cond);
    return h;
}

void tg_health_set_interval(tg_health_t *h, int interval_ms)
{
    pthread_mutex_lock(&h->stop_mutex);
    int old = atomic_exchange(&h->interval_ms, interval_ms);
    /* A shorter one wakes the checkers: one asleep for the long old interval would let its backend look stale by the new. */
    if (interval_ms < old)
        pthread_cond_broadcast(&h->stop_cond);
    pthread_mutex_unlock(&h->stop_mutex);
}

void tg_health_refresh(tg_health_t *h)
{
    uint64_t now = tg_now_ms(), at = atomic_load_explicit(&h->refresh_at_ms, memory_order_relaxed);
    /* merged: at most one early round per TG_HEALTH_REFRESH_MS, however many calls ask */
    if (now < at + TG_HEALTH_REFRESH_MS || !atomic_compare_exchange_strong(&h->refresh_at_ms, &at, now))
        return;
    pthread_mutex_lock(&h->stop_mutex);
    ++h->refresh_gen;
    pthread_cond_broadcast(&h->stop_cond);
    pthread_mutex_unlock(&h->stop_mutex);
}

void tg_health_add(tg_health_t *h, tg_backend_t *b)
{
    tg_checker_t *k = tg_calloc(1, sizeof(*k));
    k->health = h;
    k->backend = b;
    if (b->is_primary) {
        /* A new primary's WAL positions are its own: lag is measured against them from now on. */
        pthread_mutex_lock(&h->shared.mutex);
        h->shared.history = (tg_lsn_history_t){0};
        h->shared.primary_known = 0;
        pthread_mutex_unlock(&h->shared.mutex);
        /* Its first sample should exist before the replicas' next checks. */
        check_once(k);
    }
    pthread_mutex_lock(&h->stop_mutex);
    k->seen_refresh = h->refresh_gen;
    k->next = h->checkers;
    h->checkers = k;
    pthread_mutex_unlock(&h->stop_mutex);
    pthread_create(&k->tid, NULL, checker_main, k);
}

/*
 * Tells checkers (all of them, or `b`'s) to stop and moves them to the leaving list,
 * without waiting: one may be blocked in a connect or a check for seconds.
 */
static void detach_checkers(tg_health_t *h, const tg_backend_t *b)
{
    pthread_mutex_lock(&h->stop_mutex);
    for (tg_checker_t **p = &h->checkers; *p != NULL;) {
        tg_checker_t *k = *p;
        if (b != NULL && k->backend != b) {
            p = &k->next;
            continue;
        }
        k->stopping = 1;
        *p = k->next;
        k->next = h->leaving;
        h->leaving = k;
    }
    pthread_cond_broadcast(&h->stop_cond);
    pthread_mutex_unlock(&h->stop_mutex);
}

/* Joins the checkers that were told to stop; each takes at most one check's timeout. */
static void reap_checkers(tg_health_t *h)
{
    pthread_mutex_lock(&h->stop_mutex);
    tg_checker_t *stopped = h->leaving;
    h->leaving = NULL;
    pthread_mutex_unlock(&h->stop_mutex);
    while (stopped != NULL) {
        tg_checker_t *next = stopped->next;
        pthread_join(stopped->tid, NULL);
        free(stopped);
        stopped = next;
    }
}

/* Stops checkers (all of them, or `b`'s) and joins them. */
static void stop_checkers(tg_health_t *h, const tg_backend_t *b)
{
    detach_checkers(h, b);
    reap_checkers(h);
}


void tg_health_remove(tg_health_t *h, const tg_backend_t *b)
{
    detach_checkers(h, b);
}

void tg_health_reap(tg_health_t *h)
{
    reap_checkers(h);
}

void tg_health_stop(tg_health_t *h)
{
    if (h == NULL)
        return;
    stop_checkers(h, NULL);
    free(h);
}

int tg_health_check_timeout_ms(int interval_ms)
{
    return (interval_ms / 1000 + 1) * 1000;
}

int tg_health_connect_timeout_ms(int interval_ms)
{
    int t = tg_health_check_timeout_ms(interval_ms);
    return t < 2000 ? 2000 : t;
}

int tg_health_silent_ms(int interval_ms)
{
    return tg_health_connect_timeout_ms(interval_ms) + tg_health_check_timeout_ms(interval_ms) + interval_ms + 250;
}

int tg_health_backend_up(const tg_backend_t *b, uint64_t now_ms, int interval_ms)
{
    if (!atomic_load_explicit(&b->up, memory_order_relaxed))
        return 0;
    uint64_t at = atomic_load_explicit(&b->checked_at_ms, memory_order_relaxed);
    return at != 0 && now_ms <= at + 3 * (uint64_t)interval_ms + 1000;
}

int tg_health_replica_usable(const tg_backend_t *b, uint64_t now_ms, int interval_ms, int max_lag_ms)
{
    if (!tg_health_backend_up(b, now_ms, interval_ms))
        return 0;
    int64_t lag = atomic_load_explicit(&b->lag_ms, memory_order_relaxed);
    return lag == TG_LAG_UNCOMPARED || (lag >= 0 && lag <= max_lag_ms);
}

int tg_health_replica_last_resort(const tg_backend_t *b, uint64_t now_ms, int interval_ms)
{
    return tg_health_backend_up(b, now_ms, interval_ms) &&
           atomic_load_explicit(&b->lag_ms, memory_order_relaxed) == TG_LAG_NOT_IN_RECOVERY;
}

void tg_health_format_position(tg_buf_t *out, const tg_backend_t *b)
{
    uint32_t tl;
    uint64_t lsn;
    tg_health_position(b, &tl, &lsn);
    if (tl == 0)
        tg_buf_appends(out, "\"wal\":null");
    else
        tg_buf_printf(out, "\"wal\":{\"timeline\":%" PRIu32 ",\"lsn\":\"%" PRIX64 "/%" PRIX64 "\"}", tl, lsn >> 32, lsn & 0xffffffffu);
}

void tg_health_format_lag(tg_buf_t *out, const tg_backend_t *b)
{
    int64_t lag = atomic_load(&b->lag_ms);
    if (b->is_primary)
        tg_buf_appends(out, "\"lag_ms\":null,\"lag\":\"none\"");
    else if (lag >= 0)
        tg_buf_printf(out, "\"lag_ms\":%lld,\"lag\":\"measured\"", (long long)lag);
    else
        tg_buf_printf(out, "\"lag_ms\":null,\"lag\":\"%s\"",
                      lag == TG_LAG_UNCOMPARED       ? "primary-unreachable"
                      : lag == TG_LAG_NOT_IN_RECOVERY ? "not-in-recovery"
                                                      : "unknown");
}

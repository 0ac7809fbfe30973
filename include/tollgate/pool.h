/*
 * Backend connection pools. Each worker thread owns one tg_pool_t: for every backend
 * (the primary, then each replica) a set of non-blocking libpq connections watched by
 * the thread's h2o event loop, in pipeline mode, with each catalog statement prepared
 * once per connection. Calls are queued on a connection's pipeline (one Sync per call,
 * so each call is its own implicit transaction and an error aborts only that call; a
 * guarded call's Sync waits for its result, see `guard_rows`), or
 * wait for at most `acquire_timeout_ms` when no connection has room, in bounded FIFOs
 * by where they may go (writes: the primary; reads: any backend serving reads) and
 * priority, so a read never waits behind a write held up by the primary.
 *
 * Connections are opened a few at a time per backend and thread, with one backoff per
 * backend after a failed attempt (doubling to 3 s, jittered) and a single probe while
 * none is up; the health checker's view, not one connection's error, decides routing.
 */
#ifndef tollgate__pool_h
#define tollgate__pool_h

#include <stdatomic.h>
#include <stdint.h>
#include <h2o.h>
#include <libpq-fe.h>
#include "tollgate/cancel.h"
#include "tollgate/config.h"
#include "tollgate/consistency.h"
#include "tollgate/state.h"

typedef struct st_tg_pool_t tg_pool_t;
typedef struct st_tg_pgconn_t tg_pgconn_t;
typedef struct st_tg_call_t tg_call_t;

/** how a call ended, as seen by the pool */
typedef enum en_tg_call_status_t {
    TG_CALL_OK,             /* `result` holds the statement's result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) */
    TG_CALL_DB_ERROR,       /* `result` holds the PGRES_FATAL_ERROR result: see its SQLSTATE */
    TG_CALL_NO_BACKEND,     /* no backend could take the call (down, or not connected yet) */
    TG_CALL_ACQUIRE_TIMEOUT,/* no connection had room within acquire_timeout_ms */
    TG_CALL_QUEUE_FULL,     /* the wait queue is full */
    TG_CALL_CONN_LOST,      /* the connection died while the call was on it; for writes the outcome is unknown */
    TG_CALL_ROLLED_BACK,    /* the statement returned more than `guard_rows` rows, so it was rolled back; `result` holds them */
    TG_CALL_CONN_LOST_UNCOMMITTED, /* the connection died, but the call is known not to have committed (failed, or its Sync never went out) */
    TG_CALL_OVERLOADED,     /* every backend that could take it is at its adaptive limit (tollgate/overload.h): `retry_after_s` says when to come back */
} tg_call_status_t;

/** called once when a call ends; `call->result` (may be NULL) now belongs to the callee */
typedef void (*tg_call_cb)(tg_call_t *call, tg_call_status_t status);

/**
 * A row of a streamed read as it arrives (a PGRES_SINGLE_TUPLE result, now the
 * callee's to clear). Returns 0 for more, or 1 to pause: nothing more is read from the
 * call's connection (the server blocks once the socket's buffers are full) until
 * tg_pool_resume. `row` NULL: the call is sent again (its connection was lost before
 * `delivered`): forget the rows so far, they all come again.
 */
typedef int (*tg_call_rows_cb)(tg_call_t *call, PGresult *row);

/**
 * One execution of a catalog query. The caller embeds it (first member `super` style),
 * fills `query`, `values` and `cb`, and hands it to tg_pool_submit. The pool never frees
 * it. `values` must stay valid until the call was sent or ended.
 */
struct st_tg_call_t {
    const tg_query_t *query;
    const char *const *values; /* query->n_params text values (NULL = SQL NULL) */
    tg_call_cb cb;
    tg_priority_t priority;    /* TG_PRIORITY_HIGH or TG_PRIORITY_LOW (the query's, else the tenant's) */
    /**
     * 0, or the most rows the statement may return and still commit: the call is then
     * sent without its Sync, its result read, and only then committed, or rolled back
     * when it has more rows (TG_CALL_ROLLED_BACK). Costs one round trip more, and from
     * the moment it is sent until its result is read (the calls queued ahead of it, its
     * own run, one round trip) nothing is queued behind it on its connection. For
     * writes that declare a result shape.
     */
    uint32_t guard_rows;
    uint8_t primary_only;      /* a read that goes to the primary, as a write does (it must see what a write just committed) */
    /**
     * A read's Tollgate-Read-After (timeline 0: none): it is answered only from data that
     * includes that WAL position. A replica takes it only once its last known replay
     * position is past the token on the primary's timeline (tg_rw_route); while none is
     * but one on that timeline is behind, it waits up to read_after_wait_ms for one to
     * catch up (asking the health checker for fresh positions), then goes to the primary.
     */
    tg_rw_token_t read_after;
    uint8_t read_after_waited; /* set before cb: it waited for a replica to replay past its token */
    /**
     * Set before cb for a read that ran: a WAL position its data is known to include
     * (what a cached entry of it answers reads after a token with: tg_rw_entry_fresh).
     * Its backend's position by the last check before it was sent: a replica's replay
     * position; the primary's, less one (a position the primary reported is at or past a
     * token's only once the token's write was visible there if it is strictly past it:
     * the token is read after its write's answer, the check may have come just before).
     * Timeline 0: none known.
     */
    uint32_t data_timeline;
    uint64_t data_lsn;
    /**
     * A write whose answer names the primary's WAL position after its commit
     * (Tollgate-Read-After): a query reading it is queued right after the write's own
     * Sync on the same connection (no extra round trip), and the call ends once its
     * answer is in. Set before cb: `lsn_timeline` 0 when the position is not known.
     */
    uint8_t want_lsn;
    uint32_t lsn_timeline;
    uint64_t lsn;
    /**
     * NULL, or a read's rows are handed over one by one as they arrive (libpq's
     * single-row mode), in bounded memory; `result` is then the final, empty
     * PGRES_TUPLES_OK, or the error that ended the rows. Such a call runs alone on
     * its connection (nothing is queued behind it: its client's pace would hold them)
     * and stays on its own thread (it is never relayed).
     */
    tg_call_rows_cb rows;
    uint8_t delivered;         /* set by the caller once some of its answer reached its client: never sent again */
    PGresult *result;          /* set before cb */
    const struct st_tg_backend_t *backend; /* set before cb: the backend it last ran on, or NULL (logs, metrics) */
    float db_ms;               /* set before cb: how long it ran at the head of its connection (0 if it never did) */
    uint64_t sent_ns;          /* set before cb: tg_now_ns() when it was first sent, or 0 if it never was (its pool wait ends there); 0 from the caller before the first submit */
    uint32_t retry_after_s;    /* set before cb for TG_CALL_OVERLOADED: what Retry-After should say (the backend's limit suggests it) */
    /* private */
    tg_call_t *_next;          /* in a connection's pipeline FIFO, or the wait queue */
    tg_call_t **_pprev;        /* for O(1) removal from the wait queue */
    tg_pgconn_t *_conn;        /* the connection it runs on (NULL while waiting) */
    tg_pool_t *_pool;          /* the pool it waits in */
    h2o_timeout_entry_t _acquire_timer;
    uint8_t _steps;            /* commands left before the Sync (PREPARE? SET? EXECUTE) */
    uint8_t _step_kinds;       /* bit i: command i from the end is (1) the statement itself */
    uint8_t _waiting;          /* in the wait queue */
    uint8_t _wq;               /* which wait queue (pool.c wait_kind), while _waiting */
    uint8_t _sent_prepare;
    uint8_t _sent_set;         /* a SET statement_timeout went with it */
    uint8_t _parse_failed;     /* its Parse failed: the statement is not prepared on that connection */
    uint8_t _nsteps;           /* commands sent before the Sync */
    uint8_t _retries;          /* times a read was sent again after its connection died */
    uint8_t _replanned;        /* already sent again because its prepared statement was stale or missing */
    uint8_t _sent_dealloc;     /* a DEALLOCATE of its stale statement went first */
    uint8_t _abandoned;        /* the caller left while it ran (or while it waited to be retried) */
    uint8_t _retrying;         /* in one of the pool's retry lists: sent again later */
    uint8_t _undecided;        /* guarded: sent without its Sync; commit or roll back once its result is in */
    uint8_t _rolled_back;      /* guarded: its result broke guard_rows and a ROLLBACK went before its Sync */
    uint8_t _batched;          /* a read sent without a Sync of its own: it ends at its command's end, its batch's Sync comes later */
    uint8_t _aborted;          /* the server skipped it (PIPELINE_ABORTED): a call before it in its batch failed */
    uint8_t _solo;             /* sent again after its batch failed: with its own Sync */
    uint8_t _away;             /* handed to another thread's pool (tg_pool_config_t.relay): its end comes back through tg_pool_relay_done */
    uint8_t _guest;            /* a call relayed here from another thread: it stays */
    uint8_t _single;           /* single-row mode is set for its statement */
    uint8_t _streamed;         /* a row was handed to `rows` */
    uint64_t _rw_until_ms;     /* read_after: it may wait for a replica until then (set when it first reaches a pool) */
    uint8_t _admitted;         /* holds an admission of its backend's overload limit: released exactly once, where it leaves its connection */
    uint8_t _lsn_phase;        /* want_lsn: 1 the position's query is queued behind the call's Sync; 2 that Sync came, the position is being read */
    struct st_tg_backend_pool_t *_avoid; /* a retried read avoids the backend that failed it */
    float _est_ms;             /* what the pool expected it to take when sent */
    uint64_t _wait_seq;        /* its number in arrival order while it waits */
    uint64_t _started_ns;      /* tg_now_ns() when it reached the head of its connection's pipeline */
    uint64_t _queued_ns;       /* tg_now_ns() when it was last put on a connection: its overload sample runs from there */
};

/**
 * A backend as the pools see it, shared by all threads. The name and conninfo never
 * change; the atomics are written by the health checker (one connection's error in
 * one pool says nothing of the backend) and read when routing.
 */
typedef struct st_tg_backend_t {
    const char *name;               /* "primary", "replica1", ... (for logs and /readyz) */
    const char *conninfo;           /* as configured: never shown to clients */
    uint32_t metrics_id;            /* its name's id in the live-state registry (the `backend` label of metrics) */
    int is_primary;
    _Atomic int up;                 /* the health checker's last verdict: 1 up, 0 down */
    _Atomic int64_t lag_ms;         /* replicas: replay lag by the last check; -1 unknown */
    _Atomic uint64_t checked_at_ms; /* tg_now_ms() of the last successful check; 0 never, or the last one failed */
    _Atomic uint64_t passed_at_ms;  /* tg_now_ms() of the last successful check, never reset; 0 never */
    /*
     * Its WAL position by the last check that read one (read-your-writes, tollgate/consistency.h):
     * a primary's pg_current_wal_lsn() and timeline, a replica's pg_last_wal_replay_lsn() and
     * the timeline its WAL receiver is on. Timeline 0: not known. Written by the health
     * checker alone (timeline 0, the position, then the timeline, so that a reader that sees the
     * same timeline before and after has a position of it): read with tg_health_position().
     */
    _Atomic uint32_t wal_timeline;
    _Atomic uint64_t wal_lsn;
    struct st_tg_canceller_t *canceller; /* sends its cancels (its own: a silent host delays only these); NULL: never cancel */
    struct st_tg_overload_t *overload;   /* its adaptive concurrency limit, fed by every thread's pool; NULL: none (no admission) */
    struct st_tg_backend_slot_t {
        _Atomic int ready, connecting, busy; /* this thread's connections */
        _Atomic long in_flight;              /* calls on them */
        _Atomic int idle;                    /* ready connections with nothing in flight, stored at each change (relaying) */
    } __attribute__((aligned(64))) * slots; /* one per worker thread, published by its pool on each tick; NULL: none */
} tg_backend_t;

/** a backend's connections and calls, summed over the `n_threads` worker threads as each published them on its last tick */
typedef struct st_tg_backend_totals_t {
    int ready, connecting, busy, idle;
    long in_flight;
} tg_backend_totals_t;

static inline tg_backend_totals_t tg_backend_totals(const tg_backend_t *b, size_t n_threads)
{
    tg_backend_totals_t t = {0};
    for (size_t i = 0; b->slots != NULL && i != n_threads; ++i) {
        t.ready += atomic_load_explicit(&b->slots[i].ready, memory_order_relaxed);
        t.connecting += atomic_load_explicit(&b->slots[i].connecting, memory_order_relaxed);
        t.busy += atomic_load_explicit(&b->slots[i].busy, memory_order_relaxed);
        t.in_flight += atomic_load_explicit(&b->slots[i].in_flight, memory_order_relaxed);
    }
    t.idle = t.ready > t.busy ? t.ready - t.busy : 0;
    return t;
}

/** per-thread pool settings, derived from the config */
typedef struct st_tg_pool_config_t {
    const tg_config_t *config;    /* the settings (timeouts, shares); must live until the next tg_pool_reconfigure */
    tg_backend_t *const *backends; /* [0] is the primary; shared by every thread's pool (the array is only read here) */
    size_t n_backends;
    int conns_per_backend;        /* this thread's share of pool.size */
    int pipeline_depth;           /* most calls in flight on one connection (1: no pipelining) */
    int max_waiters;              /* bound of the wait queue */

    size_t thread_index;          /* which of each query's per-thread slots (tollgate/state.h) is this pool's */
    size_t n_threads;             /* how many pools there are (one per worker thread), for relaying */
    /**
     * Where a call goes that finds no room here (no connection it may use can take it
     * now) while another thread's pool has idle connections it could use (their
     * backends' `slots[thread].idle`): `relay` hands it to thread `thread`'s pool and
     * returns 1, and its end comes back on this thread through tg_pool_relay_done; 0:
     * it waits here. NULL: calls never leave their thread. Only a call that would
     * wait takes this path; one that finds room here never does.
     */
    int (*relay)(void *arg, tg_call_t *call, size_t thread);
    void *relay_arg;
    /** asked for fresh replica positions when a read waits for its token (NULL: the positions come at their interval) */
    struct st_tg_health_t *health;
    struct st_tg_retry_budget_t *retry_budget; /* the gateway's, shared by every thread's pool; NULL: reads retry without one */
} tg_pool_config_t;

/** state of one backend in one thread's pool, for /readyz and logs */
typedef struct st_tg_pool_backend_stats_t {
    int connected;  /* connections ready */
    int connecting; /* connections being opened */
    int busy;       /* connections with calls in flight */
    size_t in_flight;
    int up;         /* at least one connection ready, or none has failed yet */
    const char *last_error; /* the last connection error (for logs only), or NULL */
} tg_pool_backend_stats_t;

/** creates a pool on `loop` and starts connecting every connection */
tg_pool_t *tg_pool_create(h2o_loop_t *loop, const tg_pool_config_t *pc);

/** closes every connection; calls still waiting or in flight end with TG_CALL_NO_BACKEND */
void tg_pool_destroy(tg_pool_t *pool);

/**
 * Runs `call` on a backend suited to its query: writes on the primary; reads on the
 * least busy usable replica, else the primary. The call's callback runs exactly once,
 * possibly before this returns (e.g. TG_CALL_NO_BACKEND). A read whose connection dies
 * before any result is retried (twice at most), on another backend when one can take it.
 */
void tg_pool_submit(tg_pool_t *pool, tg_call_t *call);

/**
 * The caller lost interest (its client went away). A waiting call is dropped at once
 * and its callback is NOT run (returns 1). A call already sent is cancelled on the
 * server when it runs alone on its connection; either way its callback still runs.
 */
int tg_pool_abandon(tg_pool_t *pool, tg_call_t *call);

/** a streamed call that paused its connection (its `rows` returned 1) wants rows again; a no-op otherwise */
void tg_pool_resume(tg_call_t *call);

/** fills `out` for backend `b`; -1 if this pool does not route to it */
int tg_pool_backend_stats(const tg_pool_t *pool, const tg_backend_t *b, tg_pool_backend_stats_t *out);

/**
 * Takes a reload on the pool's own thread: from now on `cfg` gives the settings
 * (acquire timeout, low-priority share, default statement timeout for new
 * connections) and `backends` ([0] the primary) the backends, each with
 * `conns_per_backend` connections. A backend already in the pool (the same object)
 * keeps its connections, their prepared statements and its calls; one no longer named
 * takes no new calls and is closed once its calls are done; a new one connects now.
 * Connections beyond a smaller count are closed once idle.
 */
void tg_pool_reconfigure(tg_pool_t *pool, const tg_config_t *cfg, tg_backend_t *const *backends, size_t n, int conns_per_backend,
                         int max_waiters);

/** total calls in flight or waiting in this pool, its own relayed to other threads' pools included */
size_t tg_pool_pending(const tg_pool_t *pool);

/**
 * A call this pool relayed (tg_pool_config_t.relay) ended on the other thread with
 * `status`, its `result`, `backend`, `db_ms` and `sent_ns` copied back: runs its
 * callback, on the call's own thread.
 */
void tg_pool_relay_done(tg_pool_t *pool, tg_call_t *call, tg_call_status_t status);

#endif

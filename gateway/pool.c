/*
 * Herding libpq connections happens here: connecting without blocking, pipelining
 * calls onto ready connections, reading their results back in order, and handing
 * waiting calls to whichever connection frees up first.
 *
 * A connection is in exactly one state (DOWN, CONNECTING, READY); only the functions
 * named conn_* move it. A READY connection is always in pipeline mode and carries a
 * FIFO of the calls sent on it. Each call is sent as
 *
 *     [Parse (first use on this connection)] [SET statement_timeout (when it differs)]
 *     Bind/Execute of the prepared statement, Sync
 *
 * so it is its own implicit transaction: an error aborts only that call. Results come
 * back in the same order: each command's results end with a NULL from PQgetResult,
 * and each call ends with PGRES_PIPELINE_SYNC.
 *
 * Reads share Syncs. A read that needs nothing but its Bind/Execute (its statement is
 * prepared on the connection, the session's statement_timeout is its own, no result
 * guard) is sent without a Sync, and every connection with such calls gets one Sync
 * once this turn of the loop has handled its socket events (the pool's 0 ms flush
 * timer): one transaction, one send and one server flush for all the reads that
 * arrived together, instead of one each. Each of them ends at its own command's end,
 * not at the Sync. When one fails (an error, its statement_timeout, which PostgreSQL
 * applies per Execute), the server skips the rest of that batch (PIPELINE_ABORTED):
 * those never ran, and each is sent again with a Sync of its own. Everything else (a
 * write, a first use that sends its Parse, a SET, a guarded call, a read sent again)
 * goes alone with its own Sync, closing any batch open before it, so a write never
 * shares a transaction with anything.
 *
 * A guarded call (a write that must not commit more rows than its query declares) is
 * sent with a Flush instead of its Sync, so the server answers while the implicit
 * transaction is still open. When its result is in, a ROLLBACK goes first if it has
 * too many rows (PostgreSQL rolls an implicit transaction back on ROLLBACK, with a
 * WARNING that no transaction block was open), then the Sync, which commits whatever
 * was not rolled back. Until then the connection is `held`: a call queued behind it
 * would run inside its transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tollgate/health.h"
#include "tollgate/pool.h"
#include "tollgate/consistency.h"
#include "tollgate/overload.h"
#include "internal.h"

enum { CONN_DOWN, CONN_CONNECTING, CONN_READY };

/* Reconnect backoff: doubles from the first to the last, with +-25% jitter. */
#define TG_BACKOFF_FIRST_MS 100
#define TG_BACKOFF_MAX_MS 3000
/* A call joins a busy pipeline only if the calls ahead are expected to finish within this. */
#define TG_PIPELINE_MAX_WAIT_MS 10.0
/* Weight of the newest sample in a query's running estimate. */
#define TG_EST_ALPHA 0.25
/* The janitor's period: reconnects are due at most this late. */
#define TG_TICK_MS 50
/* How long an abandoned call runs before a cancel is worth its cost (cancel_sent). */
#define TG_CANCEL_AFTER_MS 100
/*
 * PostgreSQL ends a statement at its timeout; a call at the head of a pipeline this
 * much longer than that means the server or the network stopped answering.
 */
#define TG_WATCHDOG_GRACE_MS 5000
/* How many times a read whose connection died before any result is sent again. */
#define TG_READ_RETRIES 2
/*
 * A read's second retry waits up to this long (one timer for a batch): its first one
 * also landed on a dead connection (a fault that cut both servers), and by then every
 * reset has been seen and new connections are being made.
 */
#define TG_RETRY_PAUSE_MS 25
/*
 * How often reads waiting for a replica to replay past their token look again. The
 * positions they compare with come from the health checker, asked for an early round
 * (at most one per TG_HEALTH_REFRESH_MS) each time a read starts waiting.
 */
#define TG_RW_POLL_MS 5
/*
 * Ready connections of one backend lost within this long of each other say its server
 * went away (killed, restarted, cut off: they go together, if milliseconds apart): a
 * read sent elsewhere then is a failover, not a retry (retry_allowed).
 */
#define TG_LOST_BURST_MS 100
/* How long a connection waits for its cancel to be taken before it is closed instead. */
#define TG_CANCEL_DEADLINE_MS 3000
/* A connection attempt taking longer fails (the server accepted TCP and said nothing, or SYNs are dropped). */
#define TG_CONNECT_TIMEOUT_MS 5000
/*
 * Connection attempts in flight per backend and thread: a fleet of gateways (and
 * threads) coming back at once opens a few connections each, not its whole pool in
 * the same second. While nothing is up, a single attempt probes the backend.
 */
#define TG_MAX_CONNECTING 2

typedef struct st_tg_backend_pool_t tg_backend_pool_t;

struct st_tg_pgconn_t {
    tg_backend_pool_t *bp;
    PGconn *pg;
    h2o_socket_t *sock;      /* wraps a dup of PQsocket(pg); DONT_READ: h2o only signals readiness */
    int fd;                  /* the PQsocket value that `sock` wraps */
    int state;               /* CONN_* */
    tg_call_t *head;         /* calls sent and not yet ended, oldest first */
    tg_call_t **tail;
    unsigned n_inflight;
    unsigned n_low;          /* low-priority calls among them */
    double pending_ms;       /* expected time to drain the calls in flight (sum of their estimates) */
    struct st_tg_stmt_set_t {
        struct st_tg_stmt_slot_t *slots; /* open addressing on the name */
        size_t cap, used;                /* used: filled or removed slots */
    } prepared;              /* statements whose Parse was sent on this connection, by name (tg_query_t.stmt_name) */
    int cur_timeout_ms;      /* statement_timeout in force once every SET sent has been confirmed */
    int unconfirmed_sets;    /* calls in flight that sent a SET */
    uint64_t connect_started; /* for CONNECTING: when, to time it out */
    unsigned host_rotation;  /* for CONNECTING: the backend's host_rotation it started with */
    uint64_t ready_at;       /* for READY: when it connected */
    tg_cancel_job_t *cancel; /* a cancel sent for `cancel_target`: no new calls until it is done and the target ended */
    uint64_t cancel_at;      /* when it was sent: a cancel the host does not answer fences the connection only so long */
    tg_call_t *cancel_target;
    tg_call_t *held;         /* a guarded call whose Sync is not sent yet: nothing may be queued behind it */
    int session_timeout_ms;  /* the statement_timeout its session started with */
    int retiring;            /* pool.size shrank: no new calls; closed once its calls are done */
    int batch_open;          /* reads were sent since the last Sync: the pool's flush sends one */
    int paused;              /* a streamed call's consumer is full: its socket is not read (tg_pool_resume) */
    int n_streams;           /* streamed calls in flight on it (at most one, alone: nothing joins behind one) */
    int resumed;             /* it was resumed: what libpq holds already is processed at the pool's flush */
};

struct st_tg_backend_pool_t {
    tg_pool_t *pool;
    tg_backend_t *backend;
    int backoff_ms;          /* the next wait after a failed attempt: one backoff per backend, not per connection */
    uint64_t retry_at;       /* no attempt before then (the last one failed) */
    uint64_t failed_at;      /* when the last connection attempt failed */
    const char *keywords[12]; /* libpq connection parameters: the conninfo, our session settings, rotated host lists */
    const char *values[12];
    char *options;           /* the `options` value we pass (the user's, plus ours) */
    /*
     * A multi-host conninfo ("host=a,b"): libpq tries the hosts in order, but in
     * non-blocking mode it has no connect timeout of its own, so an attempt stuck on a
     * first host that drops packets (a dead machine) would never reach the second.
     * After an attempt times out the list starts one host later: host, hostaddr and
     * port lists passed rotated, after the conninfo, which they override.
     */
    unsigned host_rotation;
    char *rotated[3];        /* host, hostaddr, port as passed (NULL: not rotated) */
    int session_timeout_ms;  /* the statement_timeout in `options` */
    tg_pgconn_t **conns;     /* each allocated alone: sockets point at them */
    int n_conns;
    int draining;            /* the backend left the config: no new calls; freed once its calls are done */
    int n_ready;
    int n_busy;              /* ready connections with calls in flight */
    int n_stream_conns;      /* connections with a streamed call in flight */
    int n_connecting;
    int low_conns;           /* connections with a low-priority call in flight */
    int down;                /* the last attempt failed and nothing is ready: fail calls fast */
    size_t in_flight;
    uint64_t lost_at_ms;     /* when a ready connection was last lost */
    int lost_burst;          /* ready connections lost within TG_LOST_BURST_MS of each other, up to lost_at_ms */
    char last_error[256];
};

struct st_tg_pool_t {
    h2o_loop_t *loop;
    tg_pool_config_t pc;
    const tg_config_t *cfg;  /* the settings in force (pc.config at first, then each reconfigure's) */
    tg_backend_pool_t **bps; /* the backends calls may go to: [0] is the primary */
    size_t n_bps;
    tg_backend_pool_t **draining; /* backends that left the config, finishing their calls */
    size_t n_draining;
    /*
     * Calls waiting for room, oldest first, by what they wait for (the primary:
     * writes; any backend that serves reads: reads; a streamed read: a connection it
     * may hold alone) and priority (high, low). A call waits only behind calls bound
     * where it is: never a read behind a write waiting on a saturated or unreachable
     * primary, nor behind a streamed read waiting for a connection of its own.
     */
    struct st_tg_waitq_t {
        tg_call_t *head, **tail;
    } waitq[3][2];
    size_t n_waiting_to[2];  /* waiting for the primary / for reads: each is bounded by max_waiters */
    uint64_t wait_seq;       /* numbers the calls that start waiting, for arrival order across queues */
    h2o_timeout_t acquire_timeout;
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick;
    /*
     * Reads to send again after their connection died, once the loop has handled
     * every socket that became readable this turn (in its timeouts phase): a fault
     * that cuts a server's every connection resets them at once, and a read retried
     * at once would land on a sibling already dead but not yet seen to be.
     */
    struct st_tg_retry_list_t {
        tg_call_t *head, **tail;
        h2o_timeout_t timeout;   /* 0 ms: after this turn's socket events; TG_RETRY_PAUSE_MS for a second retry; TG_RW_POLL_MS: reads waiting for their token */
        h2o_timeout_entry_t entry;
    } retry[3];
    /* 0 ms: the Syncs of batched reads go out once this turn's socket events are handled */
    h2o_timeout_t flush_timeout;
    h2o_timeout_entry_t flush;
    size_t n_away;        /* its calls relayed to other threads' pools, not ended yet */
    unsigned seed;        /* for backoff jitter */
    size_t rr;            /* rotates the first replica pick_backend looks at */
};

/* one slot of a connection's set of prepared statements */
struct st_tg_stmt_slot_t {
    char name[40];
    uint8_t state; /* 0 empty, 1 prepared, 2 removed, 3 stale (its plan no longer fits: DEALLOCATE, then prepare again) */
};


/* when the call reached the head of its connection's pipeline, in tg_now_ms() terms */
static inline uint64_t started_ms(const tg_call_t *call)
{
    return call->_started_ns / 1000000;
}

/* May the call go to a replica? Reads may, but for one that must see the primary's latest (tg_call_t.primary_only). */
static inline int reads_anywhere(const tg_call_t *call)
{
    return call->query->access == TG_ACCESS_READ && !call->primary_only;
}

/*
 * Overload (tollgate/overload.h): a call holds an admission of its backend's adaptive
 * limit from when it is put on a connection until it leaves it (finish_head,
 * fail_inflight), `_admitted` saying so, so that it is given back exactly once. Calls
 * waiting for a connection hold none: they are admitted when they are sent.
 */
static tg_overload_t *overload_of(const tg_backend_pool_t *bp)
{
    return bp->pool->cfg->pool.overload.adaptive ? bp->backend->overload : NULL;
}

/* the call left its connection: its admission goes back (the backend's, whatever the config says now) */
static void release_admission(const tg_backend_pool_t *bp, tg_call_t *call)
{
    if (call->_admitted) {
        call->_admitted = 0;
        tg_overload_release(bp->backend->overload);
    }
}

static size_t stmt_hash(const char *name)
{
    /* names are "tg_" and hex digits of a SHA-256: any eight of them are as good as a hash */
    size_t h = 0;
    for (int i = 3; i < 11 && name[i] != '\0'; ++i)
        h = h << 4 | (size_t)tg_hex_value((unsigned char)name[i]);
    return h;
}

/* the slot holding `name`, or the empty slot where it would go */
static struct st_tg_stmt_slot_t *stmt_slot(struct st_tg_stmt_set_t *set, const char *name)
{
    size_t mask = set->cap - 1;
    struct st_tg_stmt_slot_t *removed = NULL;
    for (size_t i = stmt_hash(name) & mask;; i = (i + 1) & mask) {
        struct st_tg_stmt_slot_t *s = &set->slots[i];
        if (s->state == 0)
            return removed != NULL ? removed : s;
        if (s->state == 2) {
            if (removed == NULL)
                removed = s;
        } else if (strcmp(s->name, name) == 0) {
            return s;
        }
    }
}

/* what the connection has of statement `name`: 1 prepared, 3 stale (below), else nothing usable */
static uint8_t stmt_state(struct st_tg_stmt_set_t *set, const char *name)
{
    return set->cap != 0 ? stmt_slot(set, name)->state : 0;
}

static void stmt_clear(struct st_tg_stmt_set_t *set)
{
    free(set->slots);
    *set = (struct st_tg_stmt_set_t){NULL, 0, 0};
}

static void stmt_add(struct st_tg_stmt_set_t *set, const char *name)
{
    if ((set->used + 1) * 2 > set->cap) {
        struct st_tg_stmt_set_t old = *set;
        set->cap = old.cap == 0 ? 16 : old.cap * 2;
        set->slots = tg_calloc(set->cap, sizeof(*set->slots));
        set->used = 0;
        for (size_t i = 0; i != old.cap; ++i)
            if (old.slots[i].state == 1)
                stmt_add(set, old.slots[i].name);
        free(old.slots);
    }
    struct st_tg_stmt_slot_t *s = stmt_slot(set, name);
    if (s->state == 1)
        return;
    if (s->state == 0)
        ++set->used;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->state = 1;
}

/* It is prepared on the server with a plan that no longer fits (0A000 after DDL): state 3. */
static void stmt_mark_stale(struct st_tg_stmt_set_t *set, const char *name)
{
    if (set->cap == 0)
        return;
    struct st_tg_stmt_slot_t *s = stmt_slot(set, name);
    if (s->state == 1)
        s->state = 3;
}

static void stmt_remove(struct st_tg_stmt_set_t *set, const char *name)
{
    if (set->cap == 0)
        return;
    struct st_tg_stmt_slot_t *s = stmt_slot(set, name);
    if (s->state == 1)
        s->state = 2;
}

/* this thread's running estimate of what `q` takes (live state: it survives reloads) */
static double *est_of(const tg_pool_t *pool, const tg_query_t *q)
{
    return &q->state->slots[pool->pc.thread_index].est_ms;
}

/*
 * The backend's idle connections in this thread, as the other threads see them: a
 * call that finds no room in its own thread's pool is relayed to one with idle
 * connections (tg_pool_config_t.relay). Stored at each change, by this thread only.
 */
static void publish_idle(tg_backend_pool_t *bp)
{
    if (bp->backend->slots == NULL)
        return;
    int idle = bp->draining ? 0 : bp->n_ready - bp->n_busy;
    atomic_store_explicit(&bp->backend->slots[bp->pool->pc.thread_index].idle, idle > 0 ? idle : 0, memory_order_relaxed);
}

static void conn_start(tg_pgconn_t *c);
static void conn_fail(tg_pgconn_t *c, const char *why);
static void cancel_sent(tg_call_t *call);
static void on_conn_read(h2o_socket_t *sock, const char *err);
static void drain_waiters(tg_pool_t *pool);
static void start_connections(tg_backend_pool_t *bp, uint64_t now);
static void init_backend_params(tg_backend_pool_t *bp);
static void count_low(tg_pgconn_t *c, const tg_call_t *call, int delta);

static void close_socket(tg_pgconn_t *c)
{
    if (c->sock != NULL) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
        c->fd = -1;
    }
}

/*
 * libpq may switch sockets while connecting (one per address it tries): keep the
 * wrapper on the current one. Returns -1 when no descriptor is left for the wrapper's
 * dup (the connection fails; the gateway goes on).
 */
static int wrap_socket(tg_pgconn_t *c)
{
    int fd = PQsocket(c->pg);
    /* A new socket often gets the number of the one libpq just closed (our dup keeps the old one open): compare inodes. */
    if (c->sock != NULL && c->fd == fd) {
        struct stat ours, theirs;
        if (fstat(h2o_socket_get_fd(c->sock), &ours) == 0 && fstat(fd, &theirs) == 0 && ours.st_ino == theirs.st_ino &&
            ours.st_dev == theirs.st_dev)
            return 0;
    }
    close_socket(c);
    int dupfd = dup(fd);
    if (dupfd < 0)
        return -1;
    c->sock = h2o_evloop_socket_create(c->bp->pool->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->fd = fd;
    return 0;
}

#define TG_NO_FD "out of file descriptors"

static void set_down(tg_pgconn_t *c)
{
    tg_backend_pool_t *bp = c->bp;
    if (c->state == CONN_READY)
        --bp->n_ready;
    else if (c->state == CONN_CONNECTING)
        --bp->n_connecting;
    c->state = CONN_DOWN;
    c->batch_open = 0;
    c->paused = 0;
    c->resumed = 0;
    close_socket(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
}

/*
 * Has the health checker passed a check since this pool's last failed attempt, while
 * nothing is up here? Then the server is there (restarted, promoted, found by the
 * checker first): a down pool probes it at once, backoff or not; at most once per
 * passing check, since the probe's failure moves failed_at past it.
 */
static int probe_due(const tg_backend_pool_t *bp)
{
    return bp->down && bp->n_connecting == 0 &&
           atomic_load_explicit(&bp->backend->passed_at_ms, memory_order_relaxed) > bp->failed_at;
}

/*
 * Do calls bound for `bp` end at once (503) rather than wait? When its connections
 * all failed here, and either the health checker finds it down too, or no attempt is
 * in flight or due within the acquire timeout (the backoff runs past it and no check
 * has passed since the last failure). A backend the checker reaches while this
 * thread could not (a promoted server the checker found first) is waited for.
 */
static int fails_fast(const tg_backend_pool_t *bp)
{
    if (!bp->down)
        return 0;
    uint64_t now = tg_now_ms();
    if (!tg_health_backend_up(bp->backend, now, bp->pool->cfg->health_interval_ms))
        return 1;
    if (bp->n_connecting != 0 || probe_due(bp))
        return 0;
    return bp->retry_at > now + (uint64_t)bp->pool->cfg->pool.acquire_timeout_ms;
}

/*
 * Has the backend passed no health check for tg_health_silent_ms? (*passed_at: the
 * last pass.) A backend leaving the config has no checker: never.
 */
static int backend_silent(const tg_backend_pool_t *bp, uint64_t now, uint64_t *passed_at)
{
    *passed_at = atomic_load_explicit(&bp->backend->passed_at_ms, memory_order_relaxed);
    return !bp->draining && *passed_at != 0 && now > *passed_at + (uint64_t)tg_health_silent_ms(bp->pool->cfg->health_interval_ms);
}

/* A connection attempt failed: the backend's next one waits, doubling, with jitter so a fleet never reconnects in step. */
static void back_off(tg_backend_pool_t *bp)
{
    bp->failed_at = tg_now_ms();
    int jitter = bp->backoff_ms / 4;
    int delay = bp->backoff_ms - jitter + (jitter > 0 ? (int)(rand_r(&bp->pool->seed) % (unsigned)(2 * jitter + 1)) : 0);
    bp->retry_at = bp->failed_at + (uint64_t)delay;
    bp->backoff_ms = bp->backoff_ms * 2 > TG_BACKOFF_MAX_MS ? TG_BACKOFF_MAX_MS : bp->backoff_ms * 2;
}

/*
 * Did the server end the session under the call (57P01 an administrator's terminate or
 * a fast shutdown, 57P02 a crash, 57P03 not accepting)? Its error says nothing of the
 * call: for a read it is a lost connection, and the read goes elsewhere.
 */
static int session_ended(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && strncmp(state, "57P0", 4) == 0 && state[4] >= '1' && state[4] <= '3' && state[5] == '\0';
}

/*
 * Ends every call on the connection with `status`; they are unlinked before their
 * callbacks run. When the connection was lost, a read that had no result yet is
 * retried, at most TG_READ_RETRIES times, each time away from the backend that just
 * failed it when another can take it: it changed nothing. The first retry goes once
 * this turn of the loop has seen its other socket events, the second after
 * TG_RETRY_PAUSE_MS: a fault that cuts every connection (of one server, or of both)
 * resets them together, and a read sent again at once lands on one already dead but
 * not yet seen to be. A write never is: it may have committed.
 */
static void send_later(tg_pool_t *pool, struct st_tg_retry_list_t *l, tg_call_t *call)
{
    call->_retrying = 1;
    *l->tail = call;
    l->tail = &call->_next;
    if (!h2o_timeout_is_linked(&l->entry))
        h2o_timeout_link(pool->loop, &l->timeout, &l->entry);
}

static void fail_inflight(tg_pgconn_t *c, tg_call_status_t status)
{
    tg_pool_t *pool = c->bp->pool;
    tg_call_t *call = c->head;
    c->head = NULL;
    c->tail = &c->head;
    c->held = NULL;
    c->bp->in_flight -= c->n_inflight;
    if (c->n_inflight != 0)
        --c->bp->n_busy;
    c->n_inflight = 0;
    if (c->n_streams != 0)
        --c->bp->n_stream_conns;
    c->n_streams = 0;
    publish_idle(c->bp);
    c->pending_ms = 0;
    if (c->n_low != 0) {
        c->n_low = 0;
        --c->bp->low_conns;
    }
    while (call != NULL) {
        tg_call_t *next = call->_next;
        call->_next = NULL;
        call->_conn = NULL;
        release_admission(c->bp, call); /* a lost call is no sample: it says nothing of the backend's speed */
        if (call->_lsn_phase == 2) {
            /* its own Sync came: its outcome is settled, only its position is lost */
            ExecStatusType s = call->result != NULL ? PQresultStatus(call->result) : PGRES_FATAL_ERROR;
            call->lsn_timeline = 0;
            call->cb(call, s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK ? (call->_rolled_back ? TG_CALL_ROLLED_BACK : TG_CALL_OK)
                                                                          : TG_CALL_DB_ERROR);
            call = next;
            continue;
        }
        int retry = status == TG_CALL_CONN_LOST && call->query->access == TG_ACCESS_READ && call->_retries < TG_READ_RETRIES &&
                    !call->_abandoned && (call->result == NULL || session_ended(call->result)) && !call->delivered;
        if (retry && call->_streamed)
            call->rows(call, NULL); /* what its rows built so far goes: they all come again */
        /*
         * A write is known not to have committed when its Sync never went out (a guarded
         * call still undecided), or when it had already failed: an error aborts the
         * implicit transaction, whatever happens to the connection next.
         */
        int failed = call->result != NULL && PQresultStatus(call->result) == PGRES_FATAL_ERROR;
        tg_call_status_t st = status == TG_CALL_CONN_LOST && call->query->access == TG_ACCESS_WRITE && (call->_undecided || failed)
                                  ? TG_CALL_CONN_LOST_UNCOMMITTED
                                  : status;
        if (call->result != NULL) {
            PQclear(call->result);
            call->result = NULL;
        }
        if (retry) {
            call->_avoid = c->bp;
            send_later(pool, &pool->retry[call->_retries++ != 0], call);
        } else {
            call->cb(call, st);
        }
        call = next;
    }
}

/* calls waiting in all the queues */
static size_t n_waiting(const tg_pool_t *pool)
{
    return pool->n_waiting_to[0] + pool->n_waiting_to[1];
}

static inline int reads_after(const tg_call_t *call);
static tg_rw_route_t rw_route(const tg_pool_t *pool, const tg_call_t *call, uint64_t now, uint64_t *mask);

/*
 * Which queue a call would wait in now: 2 streamed reads; 0 calls bound for the primary
 * (writes, reads that must see the primary, and reads after a token that no replica
 * has replayed yet: behind a busy primary they must not hold up the reads the
 * replicas could take); 1 the other reads.
 */
static int wait_kind(const tg_pool_t *pool, const tg_call_t *call)
{
    if (call->rows != NULL)
        return 2;
    uint64_t mask;
    return reads_anywhere(call) && (!reads_after(call) || rw_route(pool, call, tg_now_ms(), &mask) == TG_RW_REPLICA);
}

/* the queue `call` would wait in now: by where it may go (wait_kind) and its priority */
static struct st_tg_waitq_t *queue_of(tg_pool_t *pool, const tg_call_t *call)
{
    return &pool->waitq[wait_kind(pool, call)][call->priority == TG_PRIORITY_LOW];
}

/* the queue a waiting call is in (the one wait_push chose) */
static struct st_tg_waitq_t *queue_in(tg_pool_t *pool, const tg_call_t *call)
{
    return &pool->waitq[call->_wq][call->priority == TG_PRIORITY_LOW];
}

static void fail_waiters(tg_pool_t *pool, tg_call_status_t status)
{
    for (int k = 0; k != 3; ++k) {
        for (int p = 0; p != 2; ++p) {
            while (pool->waitq[k][p].head != NULL) {
                tg_call_t *call = pool->waitq[k][p].head;
                tg_pool_abandon(pool, call);
                call->cb(call, status);
            }
        }
    }
}

/* Lets go of the connection's cancel job, if any. */
static void clear_cancel(tg_pgconn_t *c)
{
    if (c->cancel != NULL) {
        tg_cancel_release(c->cancel);
        c->cancel = NULL;
    }
    c->cancel_target = NULL;
}

static void conn_fail(tg_pgconn_t *c, const char *why)
{
    tg_backend_pool_t *bp = c->bp;
    int was_ready = c->state == CONN_READY;
    /*
     * One connection's error says nothing of the others (a watchdog closed it, the
     * server ended that session): routing follows the health checker, and this
     * thread's pool stops using the backend only when none of its connections is up.
     */
    clear_cancel(c);
    /* Keep the first line of libpq's message: the rest repeats it. */
    size_t len = strcspn(why, "\n");
    if (bp->last_error[0] == '\0' || strncmp(bp->last_error, why, len) != 0) {
        tg_log(TG_LOG_WARN, "%s: connection %s: %.*s", bp->backend->name, was_ready ? "lost" : "failed", (int)len, why);
        snprintf(bp->last_error, sizeof(bp->last_error), "%.*s", (int)len, why);
    }
    if (was_ready) {
        uint64_t now = tg_now_ms();
        bp->lost_burst = now - bp->lost_at_ms <= TG_LOST_BURST_MS ? bp->lost_burst + 1 : 1;
        bp->lost_at_ms = now;
    }
    set_down(c);
    /* A connection that was working is most often lost alone (terminated, a restart): it reconnects at the next tick, once. */
    if (!was_ready)
        back_off(bp);
    if (bp->n_ready == 0 && bp->n_connecting == 0 && !was_ready && !bp->down) {
        bp->down = 1;
        tg_log(TG_LOG_WARN, "%s: no connection is up; calls answer 503 until one is", bp->backend->name);
    }
    fail_inflight(c, TG_CALL_CONN_LOST);
    /* Waiters bound for a backend now down end now (or go elsewhere, for reads). */
    if (bp->down)
        drain_waiters(bp->pool);
}

static void conn_ready(tg_pgconn_t *c)
{
    tg_backend_pool_t *bp = c->bp;
    if (PQenterPipelineMode(c->pg) != 1) {
        conn_fail(c, "could not enter pipeline mode");
        return;
    }
    --bp->n_connecting;
    ++bp->n_ready;
    publish_idle(bp);
    c->state = CONN_READY;
    c->ready_at = tg_now_ms();
    bp->backoff_ms = TG_BACKOFF_FIRST_MS;
    bp->retry_at = 0;
    c->cur_timeout_ms = c->session_timeout_ms;
    c->unconfirmed_sets = 0;
    stmt_clear(&c->prepared);
    if (bp->down) {
        bp->down = 0;
        bp->last_error[0] = '\0';
        tg_log(TG_LOG_INFO, "%s: connected", bp->backend->name);
    }
    h2o_socket_read_start(c->sock, on_conn_read);
    drain_waiters(bp->pool);
    /* it answers: the rest of its connections may follow, a few at a time */
    start_connections(bp, tg_now_ms());
}

static void on_connect_io(h2o_socket_t *sock, const char *err)
{
    tg_pgconn_t *c = sock->data;
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
        if (wrap_socket(c) != 0) {
            conn_fail(c, TG_NO_FD);
            return;
        }
        conn_ready(c);
        return;
    case PGRES_POLLING_FAILED:
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    case PGRES_POLLING_READING:
        if (wrap_socket(c) != 0) {
            conn_fail(c, TG_NO_FD);
            return;
        }
        if (!h2o_socket_is_reading(c->sock))
            h2o_socket_read_start(c->sock, on_connect_io);
        return;
    case PGRES_POLLING_WRITING:
        if (wrap_socket(c) != 0) {
            conn_fail(c, TG_NO_FD);
            return;
        }
        if (h2o_socket_is_reading(c->sock))
            h2o_socket_read_stop(c->sock);
        if (!h2o_socket_is_writing(c->sock))
            h2o_socket_notify_write(c->sock, on_connect_io);
        return;
    default:
        conn_fail(c, "unexpected state while connecting");
        return;
    }
}

/*
 * Server notices, one line each: WARNINGs at warn level, but for the one a guarded
 * call's ROLLBACK always draws (25P01, no transaction in progress); the rest (a RAISE
 * NOTICE) at debug.
 */
static void on_notice(void *arg, const PGresult *res)
{
    /*
     * Severity and SQLSTATE only: a notice's text is the server's or a RAISE's, and may
     * quote parameter values or stored data.
     */
    const tg_backend_pool_t *bp = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED), *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int warning = severity != NULL && strcmp(severity, "WARNING") == 0 && (state == NULL || strcmp(state, "25P01") != 0);
    tg_log(warning ? TG_LOG_WARN : TG_LOG_DEBUG, "%s: server %s %s", bp->backend->name, severity != NULL ? severity : "NOTICE",
           state != NULL ? state : "(no SQLSTATE)");
}

static void conn_start(tg_pgconn_t *c)
{
    tg_backend_pool_t *bp = c->bp;
    c->state = CONN_CONNECTING;
    ++bp->n_connecting;
    c->connect_started = tg_now_ms();
    c->host_rotation = bp->host_rotation;
    c->session_timeout_ms = bp->session_timeout_ms;
    c->pg = PQconnectStartParams(bp->keywords, bp->values, 1);
    if (c->pg == NULL) {
        conn_fail(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD || PQsetnonblocking(c->pg, 1) != 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, on_notice, bp);
    /* libpq's first poll must wait until the socket is writable. */
    if (wrap_socket(c) != 0) {
        conn_fail(c, TG_NO_FD);
        return;
    }
    h2o_socket_notify_write(c->sock, on_connect_io);
}

static void flush_conn(tg_pgconn_t *c);

static void on_conn_write(h2o_socket_t *sock, const char *err)
{
    tg_pgconn_t *c = sock->data;
    if (err != NULL) {
        conn_fail(c, err);
        return;
    }
    flush_conn(c);
}

static void flush_conn(tg_pgconn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0)
        conn_fail(c, PQerrorMessage(c->pg));
    else if (r == 1 && !h2o_socket_is_writing(c->sock))
        h2o_socket_notify_write(c->sock, on_conn_write);
}

/* Ends the call at the head of the FIFO: its Sync arrived. */
/*
 * A call that failed because its prepared statement, not its data, was wrong on this
 * connection never ran: after DDL PostgreSQL refuses a kept plan whose result type
 * changed (0A000, "cached plan must not change result type"), and a call pipelined
 * behind a Parse that failed finds no statement (26000). Such a call is sent again,
 * once, with the statement prepared anew (deallocated first when it is stale).
 * Returns 1 if it was; its callback runs when that one ends.
 */
static int replan(tg_pgconn_t *c, tg_call_t *call)
{
    const char *state = call->result != NULL ? PQresultErrorField(call->result, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL || call->_replanned || call->_abandoned)
        return 0;
    if (strcmp(state, "0A000") == 0 && !call->_parse_failed && !call->_sent_prepare)
        stmt_mark_stale(&c->prepared, call->query->stmt_name);
    else if (strcmp(state, "26000") == 0 && !call->_sent_prepare)
        stmt_remove(&c->prepared, call->query->stmt_name);
    else
        return 0;
    tg_log(TG_LOG_DEBUG, "%s: query %s: its prepared statement was %s; preparing it again", c->bp->backend->name, call->query->name,
           state[0] == '0' ? "planned for another result type" : "missing");
    PQclear(call->result);
    call->result = NULL;
    call->_replanned = 1;
    tg_pool_submit(c->bp->pool, call);
    return 1;
}

/*
 * What a write's Tollgate-Read-After names: the primary's WAL insert position, read in a
 * transaction of its own right after the write's Sync, so at or past its commit record
 * (a position read inside the write's transaction would come before it), and the
 * timeline, from the WAL file name of that position (its first 8 hex digits). A fixed
 * statement, never request data.
 */
static const char LSN_SQL[] = "SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn())";

static int send_lsn_query(tg_pgconn_t *c, tg_call_t *call)
{
    if (!PQsendQueryParams(c->pg, LSN_SQL, 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(c->pg))
        return -1;
    call->_lsn_phase = 1;
    return 0;
}

/* The position's answer: kept when it parses, else the call has none (never its result). */
static void take_lsn(tg_call_t *call, const PGresult *r)
{
    uint64_t lsn;
    uint32_t tl;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 2 && tg_pg_lsn_parse(PQgetvalue(r, 0, 0), &lsn) == 0 &&
        tg_pg_walfile_timeline(PQgetvalue(r, 0, 1), &tl) == 0) {
        call->lsn = lsn;
        call->lsn_timeline = tl;
    }
}

static void finish_head(tg_pgconn_t *c)
{
    tg_call_t *call = c->head;
    uint64_t now_ns = tg_now_ns(), now = now_ns / 1000000;
    /* a batched read skipped because one before it in its batch failed: it never ran */
    int skipped = call->_batched && call->_aborted && call->result == NULL;
    if (!skipped) {
        double *est = est_of(c->bp->pool, call->query);
        *est += TG_EST_ALPHA * ((double)(now - started_ms(call)) - *est);
        call->db_ms = (float)((double)(now_ns - call->_started_ns) / 1e6);
    }
    c->pending_ms -= call->_est_ms;
    if (c->cancel_target == call)
        c->cancel_target = NULL; /* the connection takes calls again once the cancel itself is done */
    if ((c->head = call->_next) == NULL) {
        c->tail = &c->head;
        c->pending_ms = 0; /* no drift from rounding */
    } else {
        c->head->_started_ns = now_ns;
    }
    call->_next = NULL;
    call->_conn = NULL;
    count_low(c, call, -1);
    if (call->rows != NULL && --c->n_streams == 0)
        --c->bp->n_stream_conns;
    if (--c->n_inflight == 0) {
        --c->bp->n_busy;
        publish_idle(c->bp);
    }
    --c->bp->in_flight;
    ExecStatusType rs = call->result != NULL ? PQresultStatus(call->result) : PGRES_FATAL_ERROR;
    if (call->_admitted && !skipped && (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK)) {
        /*
         * it ran: from when it was put on the connection (its wait in the pipeline
         * included) to its result. Not an error: errors are often fast (a missing table
         * in a deploy, a serialization failure) and would drag the floor down.
         */
        tg_overload_t *o = c->bp->backend->overload;
        tg_overload_sample(o, now_ns - call->_queued_ns, atomic_load_explicit(&o->in_flight, memory_order_relaxed), now_ns);
    }
    release_admission(c->bp, call);
    if (skipped && !call->_abandoned) {
        /* sent again with a Sync of its own: whatever fails next fails only it */
        call->_solo = 1;
        tg_pool_submit(c->bp->pool, call);
        return;
    }
    ExecStatusType st = call->result != NULL ? PQresultStatus(call->result) : PGRES_FATAL_ERROR;
    tg_call_status_t status = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? TG_CALL_OK : TG_CALL_DB_ERROR;
    if (call->_rolled_back && status == TG_CALL_OK)
        status = TG_CALL_ROLLED_BACK;
    if (call->_sent_set) {
        /* The SET committed with the call, or was rolled back with it. */
        --c->unconfirmed_sets;
        if (status == TG_CALL_OK)
            c->cur_timeout_ms = call->query->timeout_ms;
    }
    if (call->_parse_failed)
        stmt_remove(&c->prepared, call->query->stmt_name); /* prepare again next time */
    if (status == TG_CALL_DB_ERROR && replan(c, call))
        return;
    call->cb(call, status);
}

/*
 * A guarded call's result is in: roll it back if it has more rows than it may
 * commit, then send its Sync. Returns 0, or -1 if the connection broke (and was
 * failed, with its calls).
 */
static int decide(tg_pgconn_t *c, tg_call_t *call)
{
    c->held = NULL;
    if (call->result != NULL && PQresultStatus(call->result) == PGRES_TUPLES_OK &&
        (uint32_t)PQntuples(call->result) > call->guard_rows) {
        /* A fixed statement, never request data. */
        if (!PQsendQueryParams(c->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0)) {
            conn_fail(c, PQerrorMessage(c->pg));
            return -1;
        }
        call->_rolled_back = 1;
        call->_steps = 1;
    }
    if (!PQpipelineSync(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    if (call->want_lsn) {
        /* the Sync may leave with the position's query: from here a lost connection leaves the outcome unknown */
        call->_undecided = 0;
        if (send_lsn_query(c, call) != 0) {
            conn_fail(c, PQerrorMessage(c->pg));
            return -1;
        }
    }
    /* Until the Sync has gone out, a lost connection means the write did not commit (fail_inflight). */
    flush_conn(c);
    if (c->state != CONN_READY)
        return -1;
    call->_undecided = 0;
    return 0;
}

static void process_results(tg_pgconn_t *c)
{
    int idle_nulls = 0;
    while (c->head != NULL && c->state == CONN_READY && !c->paused) {
        tg_call_t *call = c->head;
        /*
         * A streamed call's statement is next in libpq's queue: single-row mode must be
         * set before libpq parses any of its result (PQisBusy parses). It is refused
         * while libpq still stands before it (at a batch's Sync): tried again then.
         */
        if (call->rows != NULL && !call->_single && call->_steps == 1 && PQsetSingleRowMode(c->pg))
            call->_single = 1;
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            /* One command's results are complete. */
            if (call->_steps > 0) {
                --call->_steps;
                idle_nulls = 0;
                if (call->_steps == 0 && call->_batched)
                    finish_head(c); /* its batch's Sync comes later, for the last of them */
                else if (call->_steps == 0 && call->_undecided && decide(c, call) != 0)
                    return;
            } else if (++idle_nulls > 1) {
                break; /* nothing more until input arrives */
            }
            continue;
        }
        idle_nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (call->_lsn_phase == 2 && st != PGRES_PIPELINE_SYNC) {
            take_lsn(call, r); /* the position's answer, after the call's own ended */
            PQclear(r);
            continue;
        }
        if (st == PGRES_SINGLE_TUPLE) {
            call->_streamed = 1;
            if (call->_abandoned || call->result != NULL) {
                PQclear(r); /* nobody wants it, or an error came first */
            } else if (call->rows(call, r)) {
                c->paused = 1;
                h2o_socket_read_stop(c->sock);
            }
            continue;
        }
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            /* the call's own Sync, once all its commands are in; otherwise that of a batch of reads, all ended already */
            if (!call->_batched && call->_steps == 0 && call->_lsn_phase == 1) {
                /* its commit is settled: its WAL position's query comes next, and its Sync ends the call */
                call->_lsn_phase = 2;
                call->_steps = 1;
            } else if (!call->_batched && call->_steps == 0) {
                finish_head(c);
            }
            continue;
        }
        if (st == PGRES_PIPELINE_ABORTED)
            call->_aborted = 1;
        /*
         * Keep the statement's own result, unless an error comes: the first error of
         * the call wins, whether it failed Parse, the SET, the statement, or the
         * commit at Sync (a deferred constraint, a serialization failure), which
         * arrives after the statement's good result and must replace it.
         */
        int is_error = st == PGRES_FATAL_ERROR;
        int have_error = call->result != NULL && PQresultStatus(call->result) == PGRES_FATAL_ERROR;
        if (is_error && call->_sent_prepare && call->_steps == call->_nsteps - call->_sent_dealloc)
            call->_parse_failed = 1; /* the first command (after a DEALLOCATE) was the Parse */
        if (!have_error && !call->_rolled_back && (is_error || (call->_steps == 1 && st != PGRES_PIPELINE_ABORTED))) {
            if (call->result != NULL)
                PQclear(call->result);
            call->result = r;
        } else {
            PQclear(r);
        }
    }
    if (c->state == CONN_READY && PQstatus(c->pg) == CONNECTION_BAD)
        conn_fail(c, PQerrorMessage(c->pg));
}

static void on_conn_read(h2o_socket_t *sock, const char *err)
{
    tg_pgconn_t *c = sock->data;
    if (err != NULL) {
        conn_fail(c, err);
        return;
    }
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    process_results(c);
    if (c->state == CONN_READY)
        flush_conn(c);
    drain_waiters(c->bp->pool);
}

/* Sends the Sync of the reads batched on the connection since its last one. Returns 0, or -1 if the connection broke. */
static int close_batch(tg_pgconn_t *c)
{
    if (!c->batch_open)
        return 0;
    c->batch_open = 0;
    return PQpipelineSync(c->pg) ? 0 : -1;
}

/*
 * Does the call need its own Sync (`prepared`: its statement is ready on the
 * connection)? See the top of this file: reads share theirs when they need nothing else.
 */
static int goes_alone(const tg_pgconn_t *c, const tg_call_t *call, int prepared)
{
    const tg_query_t *q = call->query;
    return q->access != TG_ACCESS_READ || call->_solo || call->guard_rows != 0 || c->bp->pool->pc.pipeline_depth <= 1 || !prepared ||
           c->cur_timeout_ms != q->timeout_ms || c->unconfirmed_sets != 0;
}

/*
 * Queues the call's commands on the connection's pipeline. Returns 0; -1 if the connection broke
 * (the call is not on it: it may go elsewhere); -2 if it broke once a write's Sync was
 * queued (the call is on it, and ends when the connection is failed).
 */
static int send_call(tg_pgconn_t *c, tg_call_t *call)
{
    const tg_query_t *q = call->query;
    const char *name = q->stmt_name;
    uint8_t steps = 0;
    call->_sent_prepare = 0;
    call->_sent_dealloc = 0;
    call->_aborted = 0;
    call->_single = 0;
    call->_streamed = 0;
    call->result = NULL;
    uint8_t stmt = stmt_state(&c->prepared, name); /* one lookup, for the batch check and the sends */
    call->_batched = !goes_alone(c, call, stmt == 1);
    /* nothing of a batch before it may share its transaction */
    if (!call->_batched && close_batch(c) != 0)
        return -1;
    if (stmt == 3) {
        /* The name is ours (hex digits), never request data. */
        char dealloc[64];
        snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", name);
        if (!PQsendQueryParams(c->pg, dealloc, 0, NULL, NULL, NULL, NULL, 0))
            return -1;
        stmt_remove(&c->prepared, name);
        call->_sent_dealloc = 1;
        ++steps;
    }
    if (stmt != 1) {
        Oid oids[q->n_params + 1];
        for (size_t i = 0; i != q->n_params; ++i)
            oids[i] = tg_type_oid(q->params[i].type, q->params[i].is_array);
        if (!PQsendPrepare(c->pg, name, q->sql, (int)q->n_params, oids))
            return -1;
        stmt_add(&c->prepared, name);
        call->_sent_prepare = 1;
        ++steps;
    }
    call->_sent_set = 0;
    call->_parse_failed = 0;
    /*
     * A SET commits with its call, or rolls back if that call fails: while one sent
     * earlier on this connection is unconfirmed, the server's value is unknown, so
     * every call sends its own.
     */
    if (c->cur_timeout_ms != q->timeout_ms || c->unconfirmed_sets != 0) {
        /* Queued in the same pipeline: no extra round trip. The value is ours, never request data. */
        char set[64];
        snprintf(set, sizeof(set), "SET statement_timeout = %d", q->timeout_ms);
        if (!PQsendQueryParams(c->pg, set, 0, NULL, NULL, NULL, NULL, 0))
            return -1;
        call->_sent_set = 1;
        ++c->unconfirmed_sets;
        ++steps;
    }
    if (!PQsendQueryPrepared(c->pg, name, (int)q->n_params, call->values, NULL, NULL, 0))
        return -1;
    ++steps;
    call->_rolled_back = 0;
    call->_undecided = call->guard_rows != 0;
    if (call->_batched) {
        c->batch_open = 1;
        tg_pool_t *pool = c->bp->pool;
        if (!h2o_timeout_is_linked(&pool->flush))
            h2o_timeout_link(pool->loop, &pool->flush_timeout, &pool->flush);
    } else if (!(call->_undecided ? PQsendFlushRequest(c->pg) : PQpipelineSync(c->pg))) {
        /* A guarded call asks for its results now and sends its Sync once it has seen them (decide). */
        return -1;
    }
    call->_lsn_phase = 0;
    call->lsn = 0;
    call->lsn_timeline = 0;
    /*
     * A guarded write's goes after its Sync too, in decide(). The write's Sync is queued
     * (and may have left): if the position's query cannot be, the call is still linked
     * to the connection, which fails with it (-2: the outcome unknown), never sent again.
     */
    int lsn_failed = call->want_lsn && !call->_batched && !call->_undecided && send_lsn_query(c, call) != 0;
    if (call->_undecided)
        c->held = call;
    call->_steps = call->_nsteps = steps;
    call->_conn = c;
    call->_next = NULL;
    uint64_t now_ns = tg_now_ns();
    call->_queued_ns = now_ns;
    if (c->head == NULL)
        call->_started_ns = now_ns;
    if (call->sent_ns == 0)
        call->sent_ns = now_ns;
    call->_est_ms = (float)*est_of(c->bp->pool, q);
    call->backend = c->bp->backend;
    if (call->query->access == TG_ACCESS_READ) {
        tg_health_position(c->bp->backend, &call->data_timeline, &call->data_lsn);
        if (c->bp->backend->is_primary && call->data_lsn-- == 0)
            call->data_timeline = 0; /* see tg_call_t.data_lsn */
    }
    c->pending_ms += call->_est_ms;
    *c->tail = call;
    c->tail = &call->_next;
    count_low(c, call, 1);
    if (call->rows != NULL && c->n_streams++ == 0)
        ++c->bp->n_stream_conns;
    if (c->n_inflight++ == 0) {
        ++c->bp->n_busy;
        publish_idle(c->bp);
    }
    ++c->bp->in_flight;
    return lsn_failed ? -2 : 0;
}

static void flush_batches(tg_backend_pool_t *bp)
{
    for (int i = 0; i < bp->n_conns; ++i) {
        tg_pgconn_t *c = bp->conns[i];
        if (c->resumed && c->state == CONN_READY) {
            /* rows libpq read before its consumer paused it: no socket event will tell of them */
            c->resumed = 0;
            process_results(c);
        }
        if (!c->batch_open || c->state != CONN_READY)
            continue;
        if (close_batch(c) != 0)
            conn_fail(c, PQerrorMessage(c->pg));
        else
            flush_conn(c);
    }
}

/* This turn's batches get their Syncs, and go out. */
static void on_flush(h2o_timeout_entry_t *entry)
{
    tg_pool_t *pool = H2O_STRUCT_FROM_MEMBER(tg_pool_t, flush, entry);
    for (size_t b = 0; b != pool->n_bps; ++b)
        flush_batches(pool->bps[b]);
    for (size_t b = 0; b != pool->n_draining; ++b)
        flush_batches(pool->draining[b]);
    drain_waiters(pool);
}

void tg_pool_resume(tg_call_t *call)
{
    tg_pgconn_t *c = call->_conn;
    if (c == NULL || !c->paused || c->head != call || c->state != CONN_READY)
        return;
    tg_pool_t *pool = c->bp->pool;
    c->paused = 0;
    c->resumed = 1;
    h2o_socket_read_start(c->sock, on_conn_read);
    if (!h2o_timeout_is_linked(&pool->flush))
        h2o_timeout_link(pool->loop, &pool->flush_timeout, &pool->flush);
}

/*
 * How many of a backend's ready connections (in this thread) low-priority calls may
 * hold: pool.low_priority_share of them, rounded down; at least one when that still
 * leaves one for high-priority calls (or the share is 1). With one connection per
 * thread a share below 1 therefore gives low-priority calls none: a slow batch on the
 * only connection would leave high-priority calls nowhere to go.
 */
static int low_conn_limit(const tg_backend_pool_t *bp)
{
    double share = bp->pool->cfg->pool.low_priority_share;
    int n = (int)(share * bp->n_ready);
    if (n < 1 && share > 0 && (bp->n_ready >= 2 || share >= 1))
        n = 1;
    return n;
}

/* Counts a call in or out of its connection's low-priority tally. */
static void count_low(tg_pgconn_t *c, const tg_call_t *call, int delta)
{
    if (call->priority != TG_PRIORITY_LOW)
        return;
    if (delta > 0 && c->n_low++ == 0)
        ++c->bp->low_conns;
    else if (delta < 0 && --c->n_low == 0)
        --c->bp->low_conns;
}

/*
 * Which connection takes the next call. Two forces pull apart:
 *
 * - Pipelining is what makes a few connections serve many callers: PostgreSQL
 *   answers a deep pipeline on one backend far faster than the same calls spread one
 *   by one over many backends (more processes woken, more context switches). So a
 *   call joins the first busy connection that has room, filling connections in order.
 * - But a call queued behind a slow one waits as long as it: a point read behind a
 *   report. So it joins a pipeline only if the calls ahead (by each query's recent
 *   execution time, an exponentially weighted average per thread) are expected to
 *   drain within TG_PIPELINE_MAX_WAIT_MS, counting its own, and the call running at
 *   the head is not already overdue. Otherwise an idle connection takes it; with
 *   none, it waits in the queue for the next free one.
 *
 * A query never measured yet is expected to take the whole budget, so it neither
 * queues behind others nor lets others queue behind it until its first result.
 */
static tg_pgconn_t *pick_conn(tg_backend_pool_t *bp, const tg_call_t *call, uint64_t now)
{
    tg_pool_t *pool = bp->pool;
    tg_pgconn_t *idle = NULL;
    unsigned depth = (unsigned)pool->pc.pipeline_depth;
    /*
     * A streamed call is the last on its connection (its client's pace must not hold
     * calls behind it), and streams hold at most all but one of the backend's ready
     * connections, so the other calls always have one.
     */
    if (call->rows != NULL && bp->n_ready > 1 && bp->n_stream_conns + 1 >= bp->n_ready)
        return NULL;
    double own = call->query != NULL ? *est_of(pool, call->query) : 0;
    /* Low-priority work holds at most its share of the connections, so high-priority work always finds one. */
    int low = call->priority == TG_PRIORITY_LOW, low_full = low && bp->low_conns >= low_conn_limit(bp);
    /* a silent server's connections made before its last pass take nothing (the janitor closes them) */
    uint64_t passed_at;
    int silent = backend_silent(bp, now, &passed_at);
    for (int i = 0; i != bp->n_conns; ++i) {
        tg_pgconn_t *c = bp->conns[i];
        if (c->state != CONN_READY || c->n_inflight >= depth || c->held != NULL || c->retiring || c->paused || c->n_streams != 0)
            continue;
        if (silent && c->ready_at <= passed_at)
            continue;
        if (low_full && c->n_low == 0)
            continue;
        /* An abandoned call alone on its connection may yet be cancelled (cancel_sent): nothing joins it meanwhile. */
        if (c->head != NULL && c->head->_abandoned && c->head->_next == NULL)
            continue;
        if (c->cancel != NULL) {
            /* A cancel could hit whatever runs when it lands: send nothing until it landed and its target ended. */
            if (c->cancel_target != NULL || !atomic_load(&c->cancel->done))
                continue;
            clear_cancel(c);
        }
        if (c->n_inflight == 0) {
            if (idle == NULL)
                idle = c;
            continue;
        }
        if (c->pending_ms + own >= TG_PIPELINE_MAX_WAIT_MS)
            continue;
        double head_est = *est_of(pool, c->head->query);
        if ((double)(now - started_ms(c->head)) > 2 * head_est + TG_PIPELINE_MAX_WAIT_MS)
            continue;
        return c;
    }
    return idle;
}

/*
 * Is every connection of the backend (in this thread) stuck behind a call running far
 * past what its query takes, by half the acquire timeout? Then the server or the
 * network has stalled (a blackhole is noticed by the health checker only after its
 * check times out, and by the connections after the silence threshold): reads
 * waiting for it would time out, so they go elsewhere.
 */
static int stalled(const tg_backend_pool_t *bp, uint64_t now)
{
    tg_pool_t *pool = bp->pool;
    double grace = pool->cfg->pool.acquire_timeout_ms / 2.0 + TG_PIPELINE_MAX_WAIT_MS;
    int ready = 0;
    for (int i = 0; i != bp->n_conns; ++i) {
        const tg_pgconn_t *c = bp->conns[i];
        if (c->state != CONN_READY || c->retiring)
            continue;
        ++ready;
        if (c->head == NULL || (double)(now - started_ms(c->head)) <= 2 * *est_of(pool, c->head->query) + grace)
            return 0;
    }
    return ready != 0;
}

/* Does the call carry a read-after token that decides where it may go? */
static inline int reads_after(const tg_call_t *call)
{
    return call->read_after.timeline != 0 && reads_anywhere(call);
}

/*
 * Where a read with a token may go now (tg_rw_route), by the health checker's last
 * positions: bit j of *mask is replica bps[1 + j], which has replayed past the token.
 */
static tg_rw_route_t rw_route(const tg_pool_t *pool, const tg_call_t *call, uint64_t now, uint64_t *mask);

/* may a read after a token go to replica bps[1 + j], by rw_route's mask? */
static inline int rw_has(uint64_t mask, size_t j)
{
    return j < TG_RW_MAX_REPLICAS && (mask >> j & 1) != 0;
}

/*
 * May replica bps[k] (k >= 1) take the read now? Usable by its health checks and, for a
 * read after a token, one that has its write (`rw_mask` by rw_route; ignored otherwise).
 * Every place that chooses a replica for a read asks this.
 */
static int may_take_read(const tg_pool_t *pool, const tg_call_t *call, size_t k, uint64_t rw_mask, uint64_t now)
{
    return (!reads_after(call) || rw_has(rw_mask, k - 1)) &&
           tg_health_replica_usable(pool->bps[k]->backend, now, pool->cfg->health_interval_ms, pool->cfg->replica_max_lag_ms);
}

static tg_rw_route_t rw_route(const tg_pool_t *pool, const tg_call_t *call, uint64_t now, uint64_t *mask)
{
    const tg_config_t *cfg = pool->cfg;
    size_t n = pool->n_bps > 1 ? pool->n_bps - 1 : 0;
    if (n > TG_RW_MAX_REPLICAS)
        n = TG_RW_MAX_REPLICAS;
    tg_rw_replica_t r[n + 1];
    uint32_t primary_tl = 0;
    uint64_t primary_lsn;
    if (pool->n_bps != 0)
        tg_health_position(pool->bps[0]->backend, &primary_tl, &primary_lsn);
    for (size_t j = 0; j != n; ++j) {
        const tg_backend_t *b = pool->bps[1 + j]->backend;
        tg_health_position(b, &r[j].timeline, &r[j].replay_lsn);
        r[j].usable = tg_health_replica_usable(b, now, cfg->health_interval_ms, cfg->replica_max_lag_ms);
    }
    return tg_rw_route(&call->read_after, primary_tl, r, n, mask);
}

/*
 * A read with a token that no replica has replayed yet, while one on its timeline is
 * behind it: it waits (up to read_after_wait_ms from its arrival) for the next
 * positions, which the health checker is asked to read at once, and looks again every
 * TG_RW_POLL_MS. Returns 1 if it waits, 0 if it goes now (to a replica that has the
 * write, or to the primary: pick_avoiding takes no other).
 */
static int rw_wait(tg_pool_t *pool, tg_call_t *call)
{
    uint64_t mask, now = tg_now_ms();
    if (pool->cfg->read_after_wait_ms <= 0 || now >= call->_rw_until_ms || rw_route(pool, call, now, &mask) != TG_RW_WAIT)
        return 0;
    call->read_after_waited = 1;
    call->_pool = pool;
    send_later(pool, &pool->retry[2], call);
    if (pool->pc.health != NULL)
        tg_health_refresh(pool->pc.health);
    return 1;
}

/*
 * Where a call goes, and on which connection (*conn, NULL: none has room now): writes
 * to the primary; reads to a usable replica (up by a recent health check, lag within
 * replica_max_lag_ms or not comparable, connected in this thread, not stalled), one
 * with a connection free before one without, then the one with the least work
 * outstanding here; else the primary, or, while neither this thread nor the health
 * checker can reach it, a replica that is no longer in recovery (promoted: see
 * TG_LAG_NOT_IN_RECOVERY). A read being retried avoids `avoid`, the backend that
 * failed it.
 */
static tg_backend_pool_t *pick_avoiding(tg_pool_t *pool, const tg_call_t *call, const tg_backend_pool_t *avoid, tg_pgconn_t **conn)
{
    tg_backend_pool_t *best = NULL, *coming = NULL;
    tg_pgconn_t *best_conn = NULL;
    uint64_t now = tg_now_ms();
    /* a read with a token: only the replicas that have replayed past it (none: the primary) */
    uint64_t rw_mask = 0;
    int after = reads_after(call);
    if (after)
        rw_route(pool, call, now, &rw_mask);
    if (reads_anywhere(call) && pool->n_bps > 1 && (!after || rw_mask != 0)) {
        size_t n = pool->n_bps - 1;
        /* Start at a rotating replica, so ties spread instead of piling on the first. */
        size_t start = pool->rr++ % n;
        for (size_t k = 0; k != n; ++k) {
            size_t j = (start + k) % n;
            tg_backend_pool_t *bp = pool->bps[1 + j];
            if (bp == avoid || !may_take_read(pool, call, 1 + j, rw_mask, now))
                continue;
            if (bp->n_ready == 0) {
                /* a usable replica this thread is still connecting to: where a read waits if the primary cannot take it */
                if (coming == NULL && !fails_fast(bp))
                    coming = bp;
                continue;
            }
            /* with dozens of replicas: one that cannot beat the best so far is not searched for a connection */
            if (best_conn != NULL && bp->in_flight >= best->in_flight)
                continue;
            tg_pgconn_t *c = pick_conn(bp, call, now);
            if (c == NULL && stalled(bp, now))
                continue;
            if (best == NULL || (c != NULL && best_conn == NULL) ||
                ((c != NULL) == (best_conn != NULL) && bp->in_flight < best->in_flight)) {
                best = bp;
                best_conn = c;
            }
        }
    }
    /*
     * The last resort while this thread cannot reach the primary (a failover): a promoted
     * replica the checker reaches. Never for a read with a token: whether the promoted
     * one's history has the write is not known.
     */
    if (best == NULL && call->query->access == TG_ACCESS_READ && !after && pool->bps[0]->down &&
        !tg_health_backend_up(pool->bps[0]->backend, now, pool->cfg->health_interval_ms)) {
        for (size_t k = 1; k < pool->n_bps && best == NULL; ++k) {
            tg_backend_pool_t *bp = pool->bps[k];
            if (bp != avoid && bp->n_ready != 0 && tg_health_replica_last_resort(bp->backend, now, pool->cfg->health_interval_ms)) {
                best = bp;
                best_conn = pick_conn(bp, call, now);
            }
        }
    }
    if (best == NULL) {
        best = pool->bps[0];
        best_conn = pick_conn(best, call, now);
        /* the primary would fail the read at once, and a usable replica's connection is on its way: wait for that */
        if (best_conn == NULL && coming != NULL && fails_fast(best))
            best = coming;
    }
    *conn = best_conn;
    return best;
}

static tg_backend_pool_t *pick_backend(tg_pool_t *pool, const tg_call_t *call, tg_pgconn_t **conn)
{
    tg_backend_pool_t *bp = pick_avoiding(pool, call, call->_avoid, conn);
    /* Avoiding the backend that failed a read must not turn its retry into a 503 while that backend could take it. */
    if (*conn == NULL && call->_avoid != NULL && fails_fast(bp))
        bp = pick_avoiding(pool, call, NULL, conn);
    return bp;
}

/* One admission of `bp`'s adaptive limit for the call: 1 admitted (or the limit is off), 0 refused (*retry_after_s set). */
static int admit(tg_backend_pool_t *bp, tg_call_t *call, uint32_t *retry_after_s)
{
    tg_overload_t *o = overload_of(bp);
    if (o == NULL)
        return 1;
    if (call->_retries != 0)
        tg_overload_acquire(o); /* admitted once already: a failover or a budgeted retry is never shed */
    else if (!tg_overload_try_acquire(o, retry_after_s))
        return 0;
    call->_admitted = 1;
    return 1;
}

/*
 * `refused` is at its limit. A read tries the other backends that may serve it, in
 * pick_avoiding's order (replicas that may take it, then the primary; never the one
 * that just failed it): the first with a connection free now that admits it takes it.
 * Returns that backend (*conn its connection), or NULL. A read that must see the
 * primary (primary_only) and a write have nowhere else to go.
 */

static tg_backend_pool_t *admit_elsewhere(tg_pool_t *pool, tg_call_t *call, const tg_backend_pool_t *refused, tg_pgconn_t **conn,
                                          uint32_t *retry_after_s)
{
    if (call->query->access != TG_ACCESS_READ || pool->n_bps < 2)
        return NULL;
    uint64_t now = tg_now_ms(), rw_mask = ~(uint64_t)0;
    uint32_t ignored;
    int after = reads_after(call);
    if (after)
        rw_route(pool, call, now, &rw_mask);
    /* k runs over the replicas (1..n-1) when the read may go to one, then ends on the primary (n, taken modulo n) */
    for (size_t k = reads_anywhere(call) ? 1 : pool->n_bps; k <= pool->n_bps; ++k) {
        tg_backend_pool_t *bp = pool->bps[k % pool->n_bps];
        if (bp == refused || (k != pool->n_bps && (bp == call->_avoid || bp->n_ready == 0 || !may_take_read(pool, call, k, rw_mask, now))))
            continue;
        /*
         * Reads a replica refused spill onto the primary only while half its limit is
         * free: the primary is the writes' only way in, and a slow replica (a slow link
         * looks like overload to its limit) must not have its reads crowd them out.
         */
        if (k == pool->n_bps && refused != pool->bps[0] && overload_of(bp) != NULL && !tg_overload_has_headroom(overload_of(bp)))
            continue;
        tg_pgconn_t *c = pick_conn(bp, call, now);
        if (c != NULL && admit(bp, call, retry_after_s != NULL ? &ignored : NULL)) {
            *conn = c;
            return bp;
        }
    }
    return NULL;
}

/*
 * Sends the call on `c`, or, if that connection breaks while sending, on the next of
 * `bp`'s with room. Returns 1 if sent (or ended: the backend is down, or every backend
 * that could take it now is at its adaptive limit), 0 if it must wait.
 */
static int send_on(tg_backend_pool_t *bp, tg_call_t *call, tg_pgconn_t *c)
{
    uint32_t retry_after_s = 1;
    if (c != NULL && !call->_admitted && !admit(bp, call, &retry_after_s) &&
        (bp = admit_elsewhere(bp->pool, call, bp, &c, &retry_after_s)) == NULL) {
        /* shed at once, never queued: waiting would only add this call's wait to the backend's overload */
        call->retry_after_s = retry_after_s;
        call->cb(call, TG_CALL_OVERLOADED);
        return 1;
    }
    for (; c != NULL; c = pick_conn(bp, call, tg_now_ms())) {
        int r = send_call(c, call);
        if (r == 0) {
            if (!call->_batched)
                flush_conn(c); /* a batch goes out with its Sync (on_flush) */
            return 1;
        }
        conn_fail(c, PQerrorMessage(c->pg));
        if (r == -2)
            return 1; /* its Sync was queued: it ended with the connection, its outcome unknown */
    }
    release_admission(bp, call); /* not sent after all: admitted again when it is */
    if (fails_fast(bp)) {
        call->cb(call, TG_CALL_NO_BACKEND);
        return 1;
    }
    return 0;
}

/* Tries to put the call on a connection now. Returns 1 if sent (or ended), 0 if it must wait. */
static int try_send(tg_pool_t *pool, tg_call_t *call)
{
    tg_pgconn_t *c;
    tg_backend_pool_t *bp = pick_backend(pool, call, &c);
    return send_on(bp, call, c);
}

static void on_acquire_timeout(h2o_timeout_entry_t *entry)
{
    tg_call_t *call = H2O_STRUCT_FROM_MEMBER(tg_call_t, _acquire_timer, entry);
    tg_pool_abandon(call->_pool, call);
    call->cb(call, TG_CALL_ACQUIRE_TIMEOUT);
}


/* Puts a call in the wait queue, at the back (new calls) or the front (a call that lost its turn). */
static void wait_push(tg_pool_t *pool, tg_call_t *call, int at_head)
{
    call->_waiting = 1;
    call->_pool = pool;
    if (!at_head)
        call->_wait_seq = ++pool->wait_seq; /* a call put back first in line keeps its place */
    call->_wq = (uint8_t)wait_kind(pool, call);
    struct st_tg_waitq_t *q = queue_in(pool, call);
    if (at_head && q->head != NULL) {
        call->_next = q->head;
        call->_pprev = &q->head;
        q->head->_pprev = &call->_next;
        q->head = call;
    } else {
        call->_next = NULL;
        call->_pprev = q->tail;
        *q->tail = call;
        q->tail = &call->_next;
    }
    ++pool->n_waiting_to[call->_wq != 0];
    call->_acquire_timer = (h2o_timeout_entry_t){0};
    call->_acquire_timer.cb = on_acquire_timeout;
    h2o_timeout_link(pool->loop, &pool->acquire_timeout, &call->_acquire_timer);
}

/*
 * Hands waiting calls to connections with room: high priority first, then low. In
 * each, writes (bound for the primary) and reads (bound for any backend serving them)
 * wait in separate queues, so one that cannot go on never holds the other; while both
 * can, the call that came first goes first (they may share the primary).
 */
static void drain_waiters(tg_pool_t *pool)
{
    for (int p = 0; p != 2; ++p) {
        int blocked[3] = {0, 0, 0};
        for (;;) {
            int k = -1;
            for (int j = 0; j != 3; ++j) {
                const tg_call_t *h = pool->waitq[j][p].head;
                if (!blocked[j] && h != NULL && (k < 0 || h->_wait_seq < pool->waitq[k][p].head->_wait_seq))
                    k = j;
            }
            if (k < 0)
                break;
            tg_call_t *call = pool->waitq[k][p].head;
            /* One choice of backend and connection, used for both the check and the send. */
            tg_pgconn_t *c;
            tg_backend_pool_t *bp = pick_backend(pool, call, &c);
            if (c == NULL && !fails_fast(bp)) {
                blocked[k] = 1;
                continue;
            }
            tg_pool_abandon(pool, call);
            if (!send_on(bp, call, c)) {
                /* Every connection with room broke while sending: wait again, first in line. */
                wait_push(pool, call, 1);
                blocked[k] = 1;
            }
        }
    }
}

static void free_conn(tg_pgconn_t *c)
{
    clear_cancel(c);
    if (c->state != CONN_DOWN)
        set_down(c);
    stmt_clear(&c->prepared);
    free(c);
}

static void free_backend_pool(tg_backend_pool_t *bp)
{
    for (int i = 0; i != bp->n_conns; ++i) {
        fail_inflight(bp->conns[i], TG_CALL_NO_BACKEND);
        free_conn(bp->conns[i]);
    }
    free(bp->conns);
    free(bp->options);
    for (int k = 0; k != 3; ++k)
        free(bp->rotated[k]);
    free(bp);
}

/* Does another backend of the pool answer its health checks? */
static int another_backend_up(const tg_backend_pool_t *bp, uint64_t now)
{
    const tg_pool_t *pool = bp->pool;
    for (size_t i = 0; i != pool->n_bps; ++i)
        if (pool->bps[i] != bp && tg_health_backend_up(pool->bps[i]->backend, now, pool->cfg->health_interval_ms))
            return 1;
    return 0;
}

/* Does the connection carry reads only? */
static int only_reads(const tg_pgconn_t *c)
{
    for (const tg_call_t *call = c->head; call != NULL; call = call->_next)
        if (call->query->access != TG_ACCESS_READ)
            return 0;
    return 1;
}

/* Janitor work on one backend's connections: timeouts, the watchdog, reconnects, retired connections. */
static void tick_backend(tg_backend_pool_t *bp, uint64_t now)
{
    /*
     * A server that has passed no health check for tg_health_silent_ms stopped
     * answering (hung, or a network that drops its packets): a connection with a call
     * sent since its last pass will not be answered either, and is closed (its reads
     * fail over, its writes answer "outcome unknown"), long before the statement
     * timeout; an idle one that connected before that pass would take a call only to
     * lose it, and is closed too (once: one that connected since proved the server
     * takes sessions). A backend leaving the config has no checker any more.
     */
    uint64_t passed_at;
    int silent = backend_silent(bp, now, &passed_at);
    uint64_t silent_ms = (uint64_t)tg_health_silent_ms(bp->pool->cfg->health_interval_ms);
    /*
     * Sooner for reads: once a check has failed (the server took longer than a check
     * may, or is gone) and another backend answers its checks, a connection carrying
     * only reads that have waited longer than a check may take (and twice their usual
     * time) is closed, and its reads go elsewhere. They changed nothing; writes wait
     * for the silence threshold, since closing answers them "outcome unknown".
     */
    int failing = !bp->draining && passed_at != 0 && !atomic_load_explicit(&bp->backend->up, memory_order_relaxed) &&
                  another_backend_up(bp, now);
    uint64_t check_ms = (uint64_t)tg_health_check_timeout_ms(bp->pool->cfg->health_interval_ms);
    for (int i = 0; i < bp->n_conns; ++i) {
        tg_pgconn_t *c = bp->conns[i];
        /* In non-blocking mode libpq leaves connect_timeout to us. */
        if (c->state == CONN_CONNECTING && now > c->connect_started + TG_CONNECT_TIMEOUT_MS) {
            conn_fail(c, "connecting timed out");
            /* a multi-host conninfo's next attempt starts at the next host (once per list tried: attempts time out together) */
            if ((bp->rotated[0] != NULL || bp->rotated[1] != NULL) && c->host_rotation == bp->host_rotation) {
                ++bp->host_rotation;
                init_backend_params(bp);
            }
            continue;
        }
        /* An abandoned call that has now run long enough to be worth a cancel. */
        if (c->state == CONN_READY && c->head != NULL && c->head->_abandoned && c->cancel == NULL && c->head->_next == NULL)
            cancel_sent(c->head);
        /* A cancel the host does not take: the connection is closed (its calls fail over) rather than fenced for good. */
        if (c->state == CONN_READY && c->cancel != NULL && !atomic_load(&c->cancel->done) && now > c->cancel_at + TG_CANCEL_DEADLINE_MS) {
            conn_fail(c, "a cancel got no answer in time");
            continue;
        }
        if (c->state == CONN_READY && c->head != NULL &&
            now > started_ms(c->head) + (uint64_t)c->head->query->timeout_ms + TG_WATCHDOG_GRACE_MS) {
            /* a paused stream's server is blocked sending to us, where its statement timeout cannot end it */
            conn_fail(c, c->paused ? "a streamed result's client read it too slowly, long past the statement timeout"
                                   : "no answer from the server long after the statement timeout");
            continue;
        }
        /* silent since the last pass, or since the head call started if that was later */
        if (c->state == CONN_READY && c->head != NULL && !bp->draining && passed_at != 0 &&
            now > (passed_at > started_ms(c->head) ? passed_at : started_ms(c->head)) + silent_ms) {
            conn_fail(c, "no answer, and no health check passed, for too long");
            continue;
        }
        if (failing && c->state == CONN_READY && c->head != NULL &&
            now > started_ms(c->head) + check_ms + 2 * (uint64_t)*est_of(bp->pool, c->head->query) && only_reads(c)) {
            conn_fail(c, "its reads waited on a server that failed its health check: sending them elsewhere");
            continue;
        }
        if (silent && c->state == CONN_READY && c->head == NULL && c->ready_at <= passed_at) {
            conn_fail(c, "the server passed no health check for too long: closing an idle connection to it");
            continue;
        }
        /* A connection pool.size no longer wants goes once it has nothing in flight. */
        if (c->retiring && c->n_inflight == 0 && (c->cancel == NULL || atomic_load(&c->cancel->done))) {
            free_conn(c);
            bp->conns[i--] = bp->conns[--bp->n_conns];
            continue;
        }
    }
    start_connections(bp, now);
}

/*
 * Opens the backend's missing connections, at most TG_MAX_CONNECTING at a time (one
 * while none is up here: a probe), and none before its backoff has passed.
 */
static void start_connections(tg_backend_pool_t *bp, uint64_t now)
{
    if (bp->draining || (now < bp->retry_at && !probe_due(bp)))
        return;
    int cap = bp->n_ready == 0 && bp->down ? 1 : TG_MAX_CONNECTING;
    for (int i = 0; i != bp->n_conns && bp->n_connecting < cap && (now >= bp->retry_at || probe_due(bp)); ++i) {
        tg_pgconn_t *c = bp->conns[i];
        if (c->state == CONN_DOWN && !c->retiring)
            conn_start(c);
    }
}

/* What this thread has of a backend, for the admin API (which sums the threads). */
static void publish(tg_backend_pool_t *bp, int gone)
{
    if (bp->backend->slots == NULL)
        return;
    struct st_tg_backend_slot_t *s = &bp->backend->slots[bp->pool->pc.thread_index];
    int busy = 0;
    for (int i = 0; i != bp->n_conns; ++i)
        busy += bp->conns[i]->n_inflight != 0;
    atomic_store_explicit(&s->ready, gone ? 0 : bp->n_ready, memory_order_relaxed);
    atomic_store_explicit(&s->connecting, gone ? 0 : bp->n_connecting, memory_order_relaxed);
    atomic_store_explicit(&s->busy, gone ? 0 : busy, memory_order_relaxed);
    atomic_store_explicit(&s->in_flight, gone ? 0 : (long)bp->in_flight, memory_order_relaxed);
}

/*
 * Is the backend a read's connection was lost on gone, by the time its retry runs
 * (after this turn's other socket events, or the second retry's pause)? It left the
 * config, or this pool finds it down, or the health checker does, or two or more of
 * its connections here were lost within TG_LOST_BURST_MS (a killed or restarted server
 * resets them all, if milliseconds apart), or none of several is left. Then sending the
 * read elsewhere is a failover, and free; otherwise (one connection lost while its
 * siblings live: a server dropping sessions as it drowns, a watchdog; or the only
 * connection of this thread) it is a retry, and takes one from the gateway's budget.
 */
static int backend_gone(const tg_pool_t *pool, const tg_backend_pool_t *avoid)
{
    const tg_backend_pool_t *bp = NULL;
    for (size_t i = 0; i != pool->n_bps && bp == NULL; ++i)
        bp = pool->bps[i] == avoid ? avoid : NULL;
    for (size_t i = 0; i != pool->n_draining && bp == NULL; ++i)
        bp = pool->draining[i] == avoid ? avoid : NULL;
    uint64_t now = tg_now_ms();
    return bp == NULL || bp->draining || bp->down || (bp->n_conns >= 2 && bp->n_ready == 0) ||
           (bp->lost_burst >= 2 && now - bp->lost_at_ms <= TG_LOST_BURST_MS + TG_RETRY_PAUSE_MS) ||
           !tg_health_backend_up(bp->backend, now, pool->cfg->health_interval_ms);
}

/* may the read go again? Failovers always may; other retries when the budget has one (tollgate/overload.h) */
static int retry_allowed(tg_pool_t *pool, const tg_call_t *call)
{
    tg_retry_budget_t *b = pool->pc.retry_budget;
    if (b == NULL)
        return 1;
    if (backend_gone(pool, call->_avoid)) {
        atomic_fetch_add_explicit(&b->failovers, 1, memory_order_relaxed);
        return 1;
    }
    return tg_retry_budget_take(b, tg_now_ns());
}

/*
 * sends the reads of a retry list again (or, at `submit` 0, ends them with `status`);
 * `budgeted`: they are retries after a lost connection (retry_allowed), not reads
 * that waited for a replica to replay past their token
 */
static void run_retries(tg_pool_t *pool, struct st_tg_retry_list_t *l, int submit, int budgeted, tg_call_status_t status)
{
    tg_call_t *call = l->head;
    l->head = NULL;
    l->tail = &l->head;
    while (call != NULL) {
        tg_call_t *next = call->_next;
        call->_next = NULL;
        call->_retrying = 0;
        /* A caller that left meanwhile may have freed what the call points to (its values): it is not sent again. */
        if (submit && !call->_abandoned && (!budgeted || retry_allowed(pool, call)))
            tg_pool_submit(pool, call);
        else
            call->cb(call, submit ? TG_CALL_CONN_LOST : status);
        call = next;
    }
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    tg_pool_t *pool = H2O_STRUCT_FROM_MEMBER(tg_pool_t, retry[0].entry, entry);
    run_retries(pool, &pool->retry[0], 1, 1, TG_CALL_OK);
}

static void on_retry_later(h2o_timeout_entry_t *entry)
{
    tg_pool_t *pool = H2O_STRUCT_FROM_MEMBER(tg_pool_t, retry[1].entry, entry);
    run_retries(pool, &pool->retry[1], 1, 1, TG_CALL_OK);
}

static void on_rw_poll(h2o_timeout_entry_t *entry)
{
    tg_pool_t *pool = H2O_STRUCT_FROM_MEMBER(tg_pool_t, retry[2].entry, entry);
    run_retries(pool, &pool->retry[2], 1, 0, TG_CALL_OK);
}

/* sets up the pool's retry lists */
static void init_retries(tg_pool_t *pool)
{
    static const uint64_t pause[3] = {0, TG_RETRY_PAUSE_MS, TG_RW_POLL_MS};
    static h2o_timeout_cb const cb[3] = {on_retry, on_retry_later, on_rw_poll};
    for (int i = 0; i != 3; ++i) {
        struct st_tg_retry_list_t *l = &pool->retry[i];
        l->tail = &l->head;
        h2o_timeout_init(pool->loop, &l->timeout, pause[i]);
        l->entry.cb = cb[i];
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tg_pool_t *pool = H2O_STRUCT_FROM_MEMBER(tg_pool_t, tick, entry);
    uint64_t now = tg_now_ms();
    for (size_t b = 0; b != pool->n_bps; ++b) {
        tick_backend(pool->bps[b], now);
        publish(pool->bps[b], 0);
    }
    /* A backend that left the config goes once its calls are done. */
    for (size_t b = 0; b < pool->n_draining; ++b) {
        tg_backend_pool_t *bp = pool->draining[b];
        tick_backend(bp, now);
        if (bp->in_flight == 0) {
            tg_log(TG_LOG_DEBUG, "%s: drained; closing its connections", bp->backend->name);
            publish(bp, 1);
            free_backend_pool(bp);
            pool->draining[b--] = pool->draining[--pool->n_draining];
        }
    }
    /* Room can appear without an event on a connection (a cancel that finished on its thread). */
    drain_waiters(pool);
    h2o_timeout_link(pool->loop, &pool->tick_timeout, &pool->tick);
}

/*
 * Builds the libpq parameters: the configured conninfo (expanded as `dbname`), then our
 * session settings, which later keywords let override: UTF-8, ISO dates in UTC (the
 * JSON encoder turns them into RFC 3339), and the default statement timeout, so only
 * queries with their own timeout_ms need a SET. A user's `options` go first, so that
 * ours win over them.
 */
/* how many comma-separated entries `list` has (1 for NULL or no comma) */
static size_t list_count(const char *list)
{
    size_t n = 1;
    for (const char *p = list; p != NULL && *p != '\0'; ++p)
        n += *p == ',';
    return n;
}

/* `list` with its first `by` entries moved to the end (malloc'd) */
static char *list_rotate(const char *list, size_t by)
{
    const char *p = list;
    for (size_t i = 0; i != by; ++i)
        p = strchr(p, ',') + 1;
    tg_buf_t b = {0};
    tg_buf_printf(&b, "%s", p);
    if (by != 0)
        tg_buf_printf(&b, ",%.*s", (int)(p - 1 - list), list);
    return b.base;
}

static void init_backend_params(tg_backend_pool_t *bp)
{
    const tg_config_t *cfg = bp->pool->cfg;
    char *user_options = NULL;
    /* host, hostaddr, port of a multi-host conninfo, rotated by bp->host_rotation */
    static const char *const rotatable[3] = {"host", "hostaddr", "port"};
    char *lists[3] = {NULL, NULL, NULL};
    PQconninfoOption *opts = PQconninfoParse(bp->backend->conninfo, NULL);
    if (opts != NULL) {
        for (PQconninfoOption *o = opts; o->keyword != NULL; ++o) {
            if (o->val == NULL)
                continue;
            if (strcmp(o->keyword, "options") == 0)
                user_options = tg_strdup(o->val);
            for (int k = 0; k != 3; ++k)
                if (strcmp(o->keyword, rotatable[k]) == 0)
                    lists[k] = tg_strdup(o->val);
        }
        PQconninfoFree(opts);
    }
    size_t n_hosts = list_count(lists[0]) > list_count(lists[1]) ? list_count(lists[0]) : list_count(lists[1]);
    for (int k = 0; k != 3; ++k) {
        free(bp->rotated[k]);
        bp->rotated[k] = NULL;
        /* a single port applies to every host: only a list of one per host turns with them */
        if (n_hosts > 1 && lists[k] != NULL && list_count(lists[k]) == n_hosts)
            bp->rotated[k] = list_rotate(lists[k], bp->host_rotation % n_hosts);
        free(lists[k]);
    }
    /* The user's options first: ours come after and win, since the encoder relies on them (and timeouts are the config's). */
    tg_buf_t b = {0};
    if (user_options != NULL) {
        tg_buf_printf(&b, "%s ", user_options);
        free(user_options);
    }
    tg_buf_printf(&b, "-c DateStyle=ISO -c TimeZone=UTC -c statement_timeout=%d", cfg->default_timeout_ms);
    free(bp->options);
    bp->options = b.base;
    bp->session_timeout_ms = cfg->default_timeout_ms;
    size_t i = 0;
    bp->keywords[i] = "dbname", bp->values[i++] = bp->backend->conninfo;
    bp->keywords[i] = "client_encoding", bp->values[i++] = "UTF8";
    bp->keywords[i] = "fallback_application_name", bp->values[i++] = "tollgate";
    bp->keywords[i] = "options", bp->values[i++] = bp->options;
    for (int k = 0; k != 3; ++k)
        if (bp->rotated[k] != NULL)
            bp->keywords[i] = rotatable[k], bp->values[i++] = bp->rotated[k];
    bp->keywords[i] = NULL, bp->values[i] = NULL;
}

/* Grows a backend's connections to `n` (new ones connect now), or retires the extra ones. */
static void set_conn_count(tg_backend_pool_t *bp, int n)
{
    int live = 0;
    for (int i = 0; i != bp->n_conns; ++i)
        live += !bp->conns[i]->retiring;
    for (int i = bp->n_conns - 1; i >= 0 && live > n; --i) {
        if (!bp->conns[i]->retiring) {
            bp->conns[i]->retiring = 1;
            --live;
        }
    }
    if (live >= n)
        return;
    bp->conns = tg_realloc(bp->conns, sizeof(*bp->conns) * (size_t)(bp->n_conns + (n - live)));
    for (; live < n; ++live) {
        tg_pgconn_t *c = tg_calloc(1, sizeof(*c));
        c->bp = bp;
        c->fd = -1;
        c->tail = &c->head;
        bp->conns[bp->n_conns++] = c;
    }
    start_connections(bp, tg_now_ms());
}

static tg_backend_pool_t *new_backend_pool(tg_pool_t *pool, tg_backend_t *b, int n_conns)
{
    tg_backend_pool_t *bp = tg_calloc(1, sizeof(*bp));
    bp->pool = pool;
    bp->backend = b;
    bp->backoff_ms = TG_BACKOFF_FIRST_MS;
    init_backend_params(bp);
    set_conn_count(bp, n_conns);
    return bp;
}

tg_pool_t *tg_pool_create(h2o_loop_t *loop, const tg_pool_config_t *pc)
{
    tg_pool_t *pool = tg_calloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->pc = *pc;
    pool->cfg = pc->config;
    for (int k = 0; k != 3; ++k)
        for (int p = 0; p != 2; ++p)
            pool->waitq[k][p].tail = &pool->waitq[k][p].head;
    pool->seed = (unsigned)tg_now_ms() ^ (unsigned)(uintptr_t)pool;
    h2o_timeout_init(loop, &pool->acquire_timeout, (uint64_t)pc->config->pool.acquire_timeout_ms);
    h2o_timeout_init(loop, &pool->tick_timeout, TG_TICK_MS);
    pool->tick.cb = on_tick;
    h2o_timeout_init(loop, &pool->flush_timeout, 0);
    pool->flush.cb = on_flush;
    init_retries(pool);
    pool->bps = tg_calloc(pc->n_backends + 1, sizeof(*pool->bps));
    for (size_t b = 0; b != pc->n_backends; ++b)
        pool->bps[pool->n_bps++] = new_backend_pool(pool, pc->backends[b], pc->conns_per_backend);
    h2o_timeout_link(loop, &pool->tick_timeout, &pool->tick);
    return pool;
}

void tg_pool_reconfigure(tg_pool_t *pool, const tg_config_t *cfg, tg_backend_t *const *backends, size_t n, int conns_per_backend,
                         int max_waiters)
{
    int timeout_changed = cfg->default_timeout_ms != pool->cfg->default_timeout_ms;
    pool->cfg = cfg;
    pool->pc.config = cfg;
    pool->pc.conns_per_backend = conns_per_backend;
    pool->pc.max_waiters = max_waiters;
    /* h2o expires an entry at its registration time plus the timeout's value: changed in place, it applies to the waiting too. */
    pool->acquire_timeout.timeout = (uint64_t)cfg->pool.acquire_timeout_ms;
    tg_backend_pool_t **next = tg_calloc(n + 1, sizeof(*next));
    for (size_t i = 0; i != n; ++i) {
        for (size_t j = 0; j != pool->n_bps && next[i] == NULL; ++j) {
            if (pool->bps[j] != NULL && pool->bps[j]->backend == backends[i]) {
                next[i] = pool->bps[j];
                pool->bps[j] = NULL;
            }
        }
        if (next[i] == NULL)
            next[i] = new_backend_pool(pool, backends[i], 0);
        else if (timeout_changed)
            init_backend_params(next[i]); /* new connections start with the new default; kept ones know their own */
    }
    /* What is left has left the config: it finishes its calls and goes (on_tick). */
    for (size_t j = 0; j != pool->n_bps; ++j) {
        tg_backend_pool_t *bp = pool->bps[j];
        if (bp == NULL)
            continue;
        bp->draining = 1;
        pool->draining = tg_realloc(pool->draining, sizeof(*pool->draining) * (pool->n_draining + 1));
        pool->draining[pool->n_draining++] = bp;
    }
    free(pool->bps);
    pool->bps = next;
    pool->n_bps = n;
    /* Only now connect: a connection that fails at once drains the waiters, which must see the new backends whole. */
    for (size_t i = 0; i != n; ++i)
        set_conn_count(next[i], conns_per_backend);
    drain_waiters(pool);
}

void tg_pool_destroy(tg_pool_t *pool)
{
    fail_waiters(pool, TG_CALL_NO_BACKEND);
    for (int i = 0; i != 3; ++i)
        run_retries(pool, &pool->retry[i], 0, 0, TG_CALL_NO_BACKEND);
    for (size_t b = 0; b != pool->n_bps; ++b)
        free_backend_pool(pool->bps[b]);
    for (size_t b = 0; b != pool->n_draining; ++b)
        free_backend_pool(pool->draining[b]);
    free(pool->bps);
    free(pool->draining);
    if (h2o_timeout_is_linked(&pool->tick))
        h2o_timeout_unlink(&pool->tick);
    h2o_timeout_dispose(pool->loop, &pool->tick_timeout);
    if (h2o_timeout_is_linked(&pool->flush))
        h2o_timeout_unlink(&pool->flush);
    h2o_timeout_dispose(pool->loop, &pool->flush_timeout);
    for (int i = 0; i != 3; ++i) {
        if (h2o_timeout_is_linked(&pool->retry[i].entry))
            h2o_timeout_unlink(&pool->retry[i].entry);
        h2o_timeout_dispose(pool->loop, &pool->retry[i].timeout);
    }
    h2o_timeout_dispose(pool->loop, &pool->acquire_timeout);
    free(pool);
}

/*
 * The other thread whose pool has the most idle connections the call could use (the
 * primary for a write; for a read the usable replicas, or the primary when none is),
 * or -1 when none has one. Reads their published counts: no lock, and no thread
 * waits for another.
 */
static int relay_target(const tg_pool_t *pool, const tg_call_t *call)
{
    const tg_backend_pool_t *cand[pool->n_bps + 1];
    size_t n = 0;
    uint64_t now = tg_now_ms(), rw_mask = ~(uint64_t)0;
    int after = reads_after(call);
    if (after)
        rw_route(pool, call, now, &rw_mask);
    if (reads_anywhere(call))
        for (size_t b = 1; b < pool->n_bps; ++b)
            if (may_take_read(pool, call, b, rw_mask, now))
                cand[n++] = pool->bps[b];
    if (n == 0 && pool->n_bps != 0)
        cand[n++] = pool->bps[0];
    int best = -1, best_idle = 0;
    for (size_t t = 0; t != pool->pc.n_threads; ++t) {
        if (t == pool->pc.thread_index)
            continue;
        int idle = 0;
        for (size_t k = 0; k != n; ++k)
            if (cand[k]->backend->slots != NULL)
                idle += atomic_load_explicit(&cand[k]->backend->slots[t].idle, memory_order_relaxed);
        if (idle > best_idle) {
            best = (int)t;
            best_idle = idle;
        }
    }
    /*
     * Claim the connection: the count goes down at once, so the calls right behind
     * this one do not all go to that thread before it has taken any (it stores its
     * true count again at its next change).
     */
    for (size_t k = 0; best >= 0 && k != n; ++k) {
        if (cand[k]->backend->slots == NULL)
            continue;
        _Atomic int *idle = &cand[k]->backend->slots[best].idle;
        int v = atomic_load_explicit(idle, memory_order_relaxed);
        while (v > 0)
            if (atomic_compare_exchange_weak_explicit(idle, &v, v - 1, memory_order_relaxed, memory_order_relaxed))
                return best;
    }
    return -1;
}

/* No room here: another thread's pool with an idle connection for the call takes it. Returns 1 if one did. */
static int relay_away(tg_pool_t *pool, tg_call_t *call)
{
    if (pool->pc.relay == NULL || call->_guest || call->rows != NULL)
        return 0;
    int t = relay_target(pool, call);
    if (t < 0)
        return 0;
    call->_away = 1;
    call->_pool = pool;
    if (!pool->pc.relay(pool->pc.relay_arg, call, (size_t)t)) {
        call->_away = 0;
        return 0;
    }
    ++pool->n_away;
    return 1;
}

void tg_pool_relay_done(tg_pool_t *pool, tg_call_t *call, tg_call_status_t status)
{
    call->_away = 0;
    --pool->n_away;
    call->cb(call, status);
}

/*
 * The call waits: every backend it could go to (the primary; for a read, the usable
 * replicas too) had no connection with room. Their limits hear that they are loaded:
 * slow calls are not pipelined, so a limit can sit above what the connections carry
 * while calls queue behind them, and it must still be able to come down.
 */
static void note_wait(tg_pool_t *pool, const tg_call_t *call)
{
    uint64_t now = tg_now_ms();
    for (size_t k = 0; k != (reads_anywhere(call) ? pool->n_bps : 1) && k != pool->n_bps; ++k) {
        tg_overload_t *o = overload_of(pool->bps[k]);
        if (o != NULL && (k == 0 || may_take_read(pool, call, k, ~(uint64_t)0, now)))
            tg_overload_note_wait(o);
    }
}

/*
 * A call that would wait: is every backend it could go to at its adaptive limit (the
 * primary; for a read also the usable replicas, those with its write for a read after
 * a token)? Never for a retry (admitted once already) or with the limit off.
 */
static int at_limit_everywhere(tg_pool_t *pool, const tg_call_t *call, uint32_t *retry_after_s)
{
    if (call->_retries != 0 || pool->n_bps == 0)
        return 0;
    uint64_t now = tg_now_ms(), rw_mask = ~(uint64_t)0;
    int after = reads_after(call);
    if (after)
        rw_route(pool, call, now, &rw_mask);
    for (size_t k = 0; k != pool->n_bps; ++k) {
        tg_backend_pool_t *bp = pool->bps[k];
        if (k != 0 && (!reads_anywhere(call) || !may_take_read(pool, call, k, rw_mask, now)))
            continue;
        tg_overload_t *o = overload_of(bp);
        if (o == NULL || !tg_overload_full(o))
            return 0;
    }
    *retry_after_s = 1;
    tg_overload_refused(pool->bps[0]->backend->overload, retry_after_s);
    return 1;
}

void tg_pool_submit(tg_pool_t *pool, tg_call_t *call)
{
    /* the retry budget counts reads once each: not their retries, nor a copy relayed from another thread, nor a read after a token looking again */
    if (pool->pc.retry_budget != NULL && call->query->access == TG_ACCESS_READ && call->sent_ns == 0 && call->_retries == 0 &&
        !call->_guest && call->_rw_until_ms == 0)
        tg_retry_budget_call(pool->pc.retry_budget, tg_now_ns());
    call->result = NULL;
    call->backend = NULL;
    call->db_ms = 0;
    call->_conn = NULL;
    call->_waiting = 0;
    call->_abandoned = 0;
    /* a read after a token waits for a replica at most read_after_wait_ms from its arrival, retries and relays included */
    if (reads_after(call) && call->_rw_until_ms == 0)
        call->_rw_until_ms = tg_now_ms() + (uint64_t)pool->cfg->read_after_wait_ms;
    if (reads_after(call) && rw_wait(pool, call))
        return;
    /* First come, first served: a new call never overtakes one already waiting. */
    int kind = wait_kind(pool, call);
    if (pool->waitq[kind][call->priority == TG_PRIORITY_LOW].head == NULL && try_send(pool, call))
        return;
    if (relay_away(pool, call))
        return;
    uint32_t retry_after_s;
    if (at_limit_everywhere(pool, call, &retry_after_s)) {
        /* a connection that frees would not admit it either: shed now, not after a wait that only adds to the overload */
        call->retry_after_s = retry_after_s;
        call->cb(call, TG_CALL_OVERLOADED);
        return;
    }
    note_wait(pool, call);
    /* Writes and reads each have the whole bound: writes piling up for a silent primary leave reads room to wait. */
    if (pool->n_waiting_to[kind != 0] >= (size_t)pool->pc.max_waiters) {
        call->cb(call, TG_CALL_QUEUE_FULL);
        return;
    }
    /* A retried read avoided the backend that failed it; once it waits it takes what frees first, like the reads behind it. */
    call->_avoid = NULL;
    wait_push(pool, call, 0);
}

/*
 * A call whose client left is cancelled on the server when that is safe: it runs
 * alone on its connection (a cancel lands on whatever runs when it arrives, so the
 * connection takes no new calls until the cancel is done and the call ended), and it
 * has run TG_CANCEL_AFTER_MS (else the tick looks again then). Otherwise it finishes;
 * its result is thrown away. The wait is what keeps clients that open and reset calls
 * by the thousand (HTTP/2 rapid reset) from costing the server a cancel each: a
 * cancel is a new connection to the postmaster and a process forked for it, far
 * more than the short query it would stop.
 */
static void cancel_sent(tg_call_t *call)
{
    tg_pgconn_t *c = call->_conn;
    tg_canceller_t *canceller = c->bp->backend->canceller;
    if (canceller == NULL || c->state != CONN_READY || c->head != call || call->_next != NULL || c->cancel != NULL ||
        tg_now_ms() < started_ms(call) + TG_CANCEL_AFTER_MS)
        return;
    if ((c->cancel = tg_cancel_send(canceller, c->pg)) != NULL) {
        c->cancel_target = call;
        c->cancel_at = tg_now_ms();
    }
}

int tg_pool_abandon(tg_pool_t *pool, tg_call_t *call)
{
    if (call->_away) {
        call->_abandoned = 1; /* it runs on in the other pool (its values are its own copies there); its end is discarded */
        return 0;
    }
    if (call->_retrying) {
        call->_abandoned = 1; /* ended, not sent again, when its retry list runs */
        return 0;
    }
    if (call->_conn != NULL) {
        call->_abandoned = 1;
        cancel_sent(call);
        return 0;
    }
    if (!call->_waiting)
        return 0;
    *call->_pprev = call->_next;
    if (call->_next != NULL)
        call->_next->_pprev = call->_pprev;
    else
        queue_in(pool, call)->tail = call->_pprev;
    call->_next = NULL;
    call->_waiting = 0;
    --pool->n_waiting_to[call->_wq != 0];
    if (h2o_timeout_is_linked(&call->_acquire_timer))
        h2o_timeout_unlink(&call->_acquire_timer);
    return 1;
}

int tg_pool_backend_stats(const tg_pool_t *pool, const tg_backend_t *b, tg_pool_backend_stats_t *out)
{
    const tg_backend_pool_t *bp = NULL;
    for (size_t i = 0; i != pool->n_bps && bp == NULL; ++i)
        if (pool->bps[i]->backend == b)
            bp = pool->bps[i];
    if (bp == NULL)
        return -1;
    out->connected = bp->n_ready;
    out->connecting = bp->n_connecting;
    out->busy = 0;
    for (int j = 0; j != bp->n_conns; ++j)
        if (bp->conns[j]->n_inflight != 0)
            ++out->busy;
    out->in_flight = bp->in_flight;
    out->up = !bp->down;
    out->last_error = bp->last_error[0] != '\0' ? bp->last_error : NULL;
    return 0;
}

size_t tg_pool_pending(const tg_pool_t *pool)
{
    size_t n = n_waiting(pool) + pool->n_away;
    for (int i = 0; i != 3; ++i)
        for (const tg_call_t *c = pool->retry[i].head; c != NULL; c = c->_next)
            ++n;
    for (size_t b = 0; b != pool->n_bps; ++b)
        n += pool->bps[b]->in_flight;
    for (size_t b = 0; b != pool->n_draining; ++b)
        n += pool->draining[b]->in_flight;
    return n;
}

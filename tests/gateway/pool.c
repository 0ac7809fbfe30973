/*
 * Tests of gateway/pool.c without a database: connection choice for pipelining, the
 * wait queue (FIFO, bounded, abandon, acquire timeout) and reconnect backoff. The
 * module is included so its statics can be driven directly (h2o's t/00unit style).
 * Real connections are exercised by the integration suites.
 */
#include <criterion/criterion.h>
#include "gateway/pool.c"

/* the live state each query's estimates live in (one thread: slot 0) */
static tg_query_slot_t slots[5] = {{.est_ms = TG_EST_INITIAL_MS}, {.est_ms = TG_EST_INITIAL_MS}, {.est_ms = TG_EST_INITIAL_MS},
                                   {.est_ms = TG_EST_INITIAL_MS}, {.est_ms = TG_EST_INITIAL_MS}};
static tg_query_state_t states[5] = {{.slots = &slots[0]}, {.slots = &slots[1]}, {.slots = &slots[2]}, {.slots = &slots[3]},
                                     {.slots = &slots[4]}};
static tg_query_t queries[3] = {
    {.index = 0, .name = "fast", .timeout_ms = 1000, .stmt_name = "tg_00000000000000000000000000000001", .state = &states[0]},
    {.index = 1, .name = "slow", .timeout_ms = 1000, .stmt_name = "tg_00000000000000000000000000000002", .state = &states[1]},
    {.index = 2, .name = "other", .timeout_ms = 1000, .stmt_name = "tg_00000000000000000000000000000003", .state = &states[2]},
};

/* what the pool expects query `i` to take */
static void set_est(int i, double ms)
{
    slots[i].est_ms = ms;
}
static tg_config_t config = {.queries = queries, .n_queries = 3, .pool = {.size = 4, .acquire_timeout_ms = 50}};
static tg_backend_t backend = {.name = "primary", .conninfo = "host=127.0.0.1 port=1", .is_primary = 1};

static tg_backend_t *one_backend[1] = {&backend};

/*
 * Under LeakSanitizer (tests/asan.sh): the fake pools and calls these tests build by
 * hand, and their event loops (h2o 2.2.5 cannot destroy one), are not taken apart:
 * they are the tests' own allocations, never the pool's.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:make_pool\nleak:make_routed_pool\nleak:load_conn\nleak:add_ready_conn\nleak:h2o_evloop_create\n";
}

/* A pool whose connections never connect: the tests set their states by hand. */
static tg_pool_t *make_pool(h2o_loop_t *loop, int n_conns, int depth, int max_waiters)
{
    tg_pool_t *pool = tg_calloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->pc = (tg_pool_config_t){.config = &config, .backends = one_backend, .n_backends = 1, .conns_per_backend = n_conns,
                                  .pipeline_depth = depth, .max_waiters = max_waiters};
    pool->cfg = &config;
    for (int k = 0; k != 3; ++k)
        for (int p = 0; p != 2; ++p)
            pool->waitq[k][p].tail = &pool->waitq[k][p].head;
    pool->seed = 1;
    h2o_timeout_init(loop, &pool->acquire_timeout, (uint64_t)config.pool.acquire_timeout_ms);
    init_retries(pool);
    pool->bps = tg_calloc(1, sizeof(*pool->bps));
    pool->n_bps = 1;
    tg_backend_pool_t *bp = pool->bps[0] = tg_calloc(1, sizeof(*bp));
    bp->pool = pool;
    bp->backend = &backend;
    bp->backoff_ms = TG_BACKOFF_FIRST_MS;
    bp->n_conns = n_conns;
    bp->conns = tg_calloc((size_t)n_conns, sizeof(*bp->conns));
    for (int i = 0; i != n_conns; ++i) {
        tg_pgconn_t *c = bp->conns[i] = tg_calloc(1, sizeof(*c));
        c->bp = bp;
        c->tail = &c->head;
        c->state = CONN_READY;
    }
    bp->n_ready = n_conns;
    return pool;
}

static tg_call_t high_call = {.priority = TG_PRIORITY_HIGH};

/* Puts `n` fake calls of query `q` on connection `c`, the first having started at `started`. */
static tg_call_t *load_conn(tg_pgconn_t *c, const tg_query_t *q, int n, uint64_t started)
{
    tg_call_t *calls = tg_calloc((size_t)n, sizeof(*calls));
    for (int i = 0; i != n; ++i) {
        calls[i].query = q;
        calls[i]._started_ns = started * 1000000;
        calls[i]._est_ms = (float)*est_of(c->bp->pool, q);
        *c->tail = &calls[i];
        c->tail = &calls[i]._next;
        ++c->n_inflight;
        c->pending_ms += calls[i]._est_ms;
    }
    return calls;
}

Test(pool_pick, an_unmeasured_query_takes_an_idle_connection)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 3, 8, 10);
    tg_backend_pool_t *bp = pool->bps[0];
    uint64_t now = 1000000;
    set_est(0, 0.1);
    load_conn(bp->conns[0], &queries[0], 1, now);
    load_conn(bp->conns[2], &queries[0], 2, now);
    tg_call_t fresh = {.query = &queries[2]}; /* never measured: expected to take the whole budget */
    cr_assert_eq(pick_conn(bp, &fresh, now), bp->conns[1]);
}

Test(pool_pick, quick_calls_fill_busy_connections_first)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 3, 8, 10);
    tg_backend_pool_t *bp = pool->bps[0];
    uint64_t now = 1000000;
    set_est(0, 0.5);
    tg_call_t quick = {.query = &queries[0]};
    /* All idle: the first. */
    cr_assert_eq(pick_conn(bp, &quick, now), bp->conns[0]);
    /* One busy with quick calls: pile onto it rather than wake another backend... */
    load_conn(bp->conns[1], &queries[0], 3, now);
    cr_assert_eq(pick_conn(bp, &quick, now), bp->conns[1]);
    /* ...until its pipeline is full (depth 8). */
    load_conn(bp->conns[1], &queries[0], 5, now);
    cr_assert_eq(pick_conn(bp, &quick, now), bp->conns[0]);
    /* Or until the calls ahead would take longer than the budget. */
    tg_pool_t *pool2 = make_pool(loop, 2, 64, 10);
    set_est(0, 1.0);
    load_conn(pool2->bps[0]->conns[0], &queries[0], 8, now);
    cr_assert_eq(pick_conn(pool2->bps[0], &quick, now), pool2->bps[0]->conns[0], "8 ms ahead + 1 ms own fit in 10 ms");
    load_conn(pool2->bps[0]->conns[0], &queries[0], 1, now);
    cr_assert_eq(pick_conn(pool2->bps[0], &quick, now), pool2->bps[0]->conns[1], "9 ms ahead + 1 ms own do not");
}

Test(pool_pick, never_behind_a_slow_call)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 2, 32, 10);
    tg_backend_pool_t *bp = pool->bps[0];
    uint64_t now = 1000000;
    /* conn 0 runs a query known to take 500 ms; conn 1 one that is overdue although thought fast. */
    set_est(1, 500);
    set_est(0, 0.2);
    load_conn(bp->conns[0], &queries[1], 1, now);
    load_conn(bp->conns[1], &queries[0], 1, now - 200);
    cr_assert_null(pick_conn(bp, &high_call, now), "a fast call must not queue behind slow ones");
    /* Once conn 1's head is fresh again, it is fit. */
    bp->conns[1]->head->_started_ns = now * 1000000;
    cr_assert_eq(pick_conn(bp, &high_call, now), bp->conns[1]);
}

Test(pool_pick, respects_pipeline_depth_and_state)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 2, 2, 10);
    tg_backend_pool_t *bp = pool->bps[0];
    uint64_t now = 1000000;
    set_est(0, 0.1);
    load_conn(bp->conns[0], &queries[0], 2, now);
    bp->conns[1]->state = CONN_CONNECTING;
    cr_assert_null(pick_conn(bp, &high_call, now), "a full pipeline and a connecting connection take nothing");
    bp->conns[1]->state = CONN_READY;
    cr_assert_eq(pick_conn(bp, &high_call, now), bp->conns[1]);
}

/* Records how calls ended. */
static tg_call_status_t ended[16];
static tg_call_t *ended_call[16];
static int n_ended;

static void record(tg_call_t *call, tg_call_status_t status)
{
    ended_call[n_ended] = call;
    ended[n_ended++] = status;
}

Test(pool_wait, down_backend_fails_fast)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 4, 10);
    pool->bps[0]->conns[0]->state = CONN_DOWN;
    pool->bps[0]->n_ready = 0;
    pool->bps[0]->down = 1;
    n_ended = 0;
    tg_call_t call = {.query = &queries[0], .cb = record};
    tg_pool_submit(pool, &call);
    cr_assert_eq(n_ended, 1);
    cr_assert_eq(ended[0], TG_CALL_NO_BACKEND);
    cr_assert_eq(n_waiting(pool), 0);
    /* ...unless the health checker reaches it (a promoted server it found first): then the call waits for the probe */
    config.health_interval_ms = 1000;
    atomic_store(&backend.up, 1);
    atomic_store(&backend.checked_at_ms, tg_now_ms());
    n_ended = 0;
    tg_call_t waits = {.query = &queries[0], .cb = record};
    tg_pool_submit(pool, &waits);
    cr_assert_eq(n_ended, 0);
    cr_assert_eq(n_waiting(pool), 1);
    tg_pool_abandon(pool, &waits);
    atomic_store(&backend.up, 0);
    atomic_store(&backend.checked_at_ms, 0);
}

Test(pool_wait, queue_is_fifo_bounded_and_abandonable)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 1, 3);
    tg_backend_pool_t *bp = pool->bps[0];
    bp->conns[0]->state = CONN_CONNECTING; /* not ready yet, not down: calls wait */
    bp->n_ready = 0;
    bp->n_connecting = 1;
    n_ended = 0;
    tg_call_t calls[4];
    for (int i = 0; i != 4; ++i) {
        calls[i] = (tg_call_t){.query = &queries[0], .cb = record};
        tg_pool_submit(pool, &calls[i]);
    }
    cr_assert_eq(n_waiting(pool), 3);
    cr_assert_eq(n_ended, 1, "the fourth call finds the queue full");
    cr_assert_eq(ended[0], TG_CALL_QUEUE_FULL);
    cr_assert_eq(ended_call[0], &calls[3]);
    /* Abandon the middle one: the others keep their order. */
    cr_assert_eq(tg_pool_abandon(pool, &calls[1]), 1);
    cr_assert_eq(tg_pool_abandon(pool, &calls[1]), 0, "abandoning twice is harmless");
    struct st_tg_waitq_t *q = queue_of(pool, &calls[0]);
    cr_assert_eq(q->head, &calls[0]);
    cr_assert_eq(calls[0]._next, &calls[2]);
    cr_assert_eq(q->tail, &calls[2]._next);
    cr_assert_eq(n_waiting(pool), 2);
    /* The backend goes down: every waiter ends at once, oldest first. */
    n_ended = 0;
    bp->conns[0]->state = CONN_DOWN;
    bp->n_connecting = 0;
    bp->down = 1;
    fail_waiters(pool, TG_CALL_NO_BACKEND);
    cr_assert_eq(n_ended, 2);
    cr_assert_eq(ended_call[0], &calls[0]);
    cr_assert_eq(ended_call[1], &calls[2]);
    cr_assert_eq(q->head, NULL);
    cr_assert_eq(q->tail, &q->head);
}

Test(pool_wait, acquire_timeout_ends_the_wait)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 1, 3);
    tg_backend_pool_t *bp = pool->bps[0];
    bp->conns[0]->state = CONN_CONNECTING;
    bp->n_ready = 0;
    n_ended = 0;
    tg_call_t call = {.query = &queries[0], .cb = record};
    tg_pool_submit(pool, &call);
    cr_assert_eq(n_ended, 0);
    /* Run the loop until the 50 ms acquire timeout fires (bounded: at most 2 s). */
    for (int i = 0; i != 200 && n_ended == 0; ++i)
        h2o_evloop_run(loop, 10);
    cr_assert_eq(n_ended, 1);
    cr_assert_eq(ended[0], TG_CALL_ACQUIRE_TIMEOUT);
    cr_assert_eq(n_waiting(pool), 0);
}

Test(pool_backoff, doubles_with_jitter_up_to_the_cap)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 1, 1);
    tg_backend_pool_t *bp = pool->bps[0];
    int expect = TG_BACKOFF_FIRST_MS;
    for (int i = 0; i != 12; ++i) {
        uint64_t before = tg_now_ms();
        back_off(bp);
        uint64_t delay = bp->retry_at - before;
        cr_assert_geq(delay + 1, (uint64_t)(expect - expect / 4), "attempt %d: delay %lu, base %d", i, (unsigned long)delay,
                      expect);
        cr_assert_leq(delay, (uint64_t)(expect + expect / 4 + 1), "attempt %d: delay %lu, base %d", i, (unsigned long)delay,
                      expect);
        expect = expect * 2 > TG_BACKOFF_MAX_MS ? TG_BACKOFF_MAX_MS : expect * 2;
    }
    cr_assert_eq(bp->backoff_ms, TG_BACKOFF_MAX_MS);
}

/* Connections open a few at a time, one while nothing is up, none during the backend's backoff. */
Test(pool_backoff, attempts_in_flight_are_capped_per_backend)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 6, 1, 1);
    tg_backend_pool_t *bp = pool->bps[0];
    init_backend_params(bp); /* port 1: each attempt stays in progress until the loop runs */
    for (int i = 0; i != 6; ++i)
        bp->conns[i]->state = CONN_DOWN;
    bp->n_ready = 0;
    uint64_t now = tg_now_ms();
    start_connections(bp, now);
    cr_assert_eq(bp->n_connecting, TG_MAX_CONNECTING, "a pool of 6 opens %d at a time", TG_MAX_CONNECTING);
    start_connections(bp, now);
    cr_assert_eq(bp->n_connecting, TG_MAX_CONNECTING, "and not more on the next tick");
    /* every attempt failed: the backend is down, backing off, then probed by one attempt */
    for (int i = 0; i != 6; ++i)
        if (bp->conns[i]->state == CONN_CONNECTING)
            conn_fail(bp->conns[i], "refused");
    cr_assert(bp->down);
    cr_assert_eq(bp->n_connecting, 0);
    start_connections(bp, tg_now_ms());
    cr_assert_eq(bp->n_connecting, 0, "nothing during the backoff");
    start_connections(bp, bp->retry_at);
    cr_assert_eq(bp->n_connecting, 1, "one probe while nothing is up");
    for (int i = 0; i != 6; ++i)
        if (bp->conns[i]->state == CONN_CONNECTING)
            set_down(bp->conns[i]);
}

/*
 * A connection whose head call has seen no health check pass for tg_health_silent_ms
 * (5.25 s at a 1 s interval) is closed; one that has seen a pass is left alone, and so
 * is a backend leaving the config (its checker is gone).
 */
Test(pool_watchdog, a_backend_silent_to_its_health_checks_loses_its_calls)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 4, 1);
    tg_backend_pool_t *bp = pool->bps[0];
    init_backend_params(bp); /* the closed connection reconnects (to port 1) */
    config.health_interval_ms = 1000;
    static tg_query_t w = {.index = 0, .name = "w", .access = TG_ACCESS_WRITE, .timeout_ms = 60000, .state = &states[4]};
    uint64_t now = tg_now_ms();
    tg_call_t *call = load_conn(bp->conns[0], &w, 1, now - 6000);
    call->cb = record;
    bp->in_flight = 1;
    atomic_store(&backend.checked_at_ms, 0);       /* the last check failed (a blip)... */
    atomic_store(&backend.passed_at_ms, now - 100); /* ...but one passed since the call started */
    n_ended = 0;
    tick_backend(bp, now);
    cr_assert_eq(n_ended, 0, "a call on a backend that answers its checks runs on, whatever the last one said");
    atomic_store(&backend.passed_at_ms, now - 6500);
    bp->draining = 1;
    tick_backend(bp, now);
    cr_assert_eq(n_ended, 0, "a backend leaving the config has no checker: its calls run on");
    bp->draining = 0;
    tick_backend(bp, now - 800);
    cr_assert_eq(n_ended, 0, "not before the check's timeout, an interval and the slack");
    tick_backend(bp, now);
    cr_assert_eq(n_ended, 1);
    cr_assert_eq(ended[0], TG_CALL_CONN_LOST, "a write on a silent server: outcome unknown");
    cr_assert_neq(bp->conns[0]->state, CONN_READY);
    set_down(bp->conns[0]);
    atomic_store(&backend.passed_at_ms, 0);
}

/* Reads stuck on a server that failed its check are sent elsewhere after a check's timeout; a connection with a write is not. */
Test(pool_watchdog, reads_leave_a_server_that_failed_its_check)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 2, 4, 10);
    tg_backend_pool_t *bp = pool->bps[0];
    init_backend_params(bp);
    config.health_interval_ms = 1000; /* a check may take 2 s */
    static tg_query_t r = {.index = 0, .name = "r", .access = TG_ACCESS_READ, .timeout_ms = 60000, .state = &states[3]};
    static tg_query_t w = {.index = 1, .name = "w", .access = TG_ACCESS_WRITE, .timeout_ms = 60000, .state = &states[4]};
    uint64_t now = tg_now_ms();
    /* another backend answers its checks: the reads have somewhere to go */
    static tg_backend_t other = {.name = "replica1"};
    atomic_store(&other.up, 1);
    atomic_store(&other.checked_at_ms, now);
    tg_backend_pool_t *obp = tg_calloc(1, sizeof(*obp));
    obp->pool = pool;
    obp->backend = &other;
    pool->bps = tg_realloc(pool->bps, 2 * sizeof(*pool->bps));
    pool->bps[1] = obp;
    pool->n_bps = 2;
    tg_call_t *reads = load_conn(bp->conns[0], &r, 2, now - 2500);
    tg_call_t *mixed = load_conn(bp->conns[1], &r, 1, now - 2500);
    tg_call_t *write = load_conn(bp->conns[1], &w, 1, now - 2500);
    reads[0].cb = reads[1].cb = mixed->cb = write->cb = record;
    bp->in_flight = 4;
    atomic_store(&backend.passed_at_ms, now - 3000);
    atomic_store(&backend.up, 1);
    n_ended = 0;
    tick_backend(bp, now);
    cr_assert_eq(bp->conns[0]->state, CONN_READY, "the checks pass: slow reads run on");
    atomic_store(&backend.up, 0); /* the last check failed */
    atomic_store(&other.up, 0);
    tick_backend(bp, now);
    cr_assert_eq(bp->conns[0]->state, CONN_READY, "nowhere else to go: the reads wait for their server");
    atomic_store(&other.up, 1);
    tick_backend(bp, now - 600);
    cr_assert_eq(bp->conns[0]->state, CONN_READY, "not before they waited as long as a check may take");
    tick_backend(bp, now);
    cr_assert_neq(bp->conns[0]->state, CONN_READY, "reads only: closed, its reads go elsewhere");
    cr_assert_eq(pool->retry[0].head, &reads[0]);
    cr_assert_eq(bp->conns[1]->state, CONN_READY, "a write on it: it waits for the silence threshold");
    run_retries(pool, &pool->retry[0], 0, 0, TG_CALL_NO_BACKEND);
    for (int i = 0; i != 2; ++i)
        if (bp->conns[i]->state != CONN_DOWN)
            set_down(bp->conns[i]);
    atomic_store(&backend.passed_at_ms, 0);
}

/* Idle connections to a silent server are closed (they would take a call only to lose it), once: not those made since its last pass. */
Test(pool_watchdog, idle_connections_to_a_silent_server_are_closed_once)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 2, 4, 1);
    tg_backend_pool_t *bp = pool->bps[0];
    init_backend_params(bp);
    config.health_interval_ms = 1000;
    uint64_t now = tg_now_ms();
    bp->conns[0]->ready_at = now - 10000; /* connected before the last pass */
    bp->conns[1]->ready_at = now - 2000;  /* since */
    set_est(0, 1);
    atomic_store(&backend.passed_at_ms, now - 5000);
    tick_backend(bp, now);
    cr_assert_eq(bp->conns[0]->state, CONN_READY, "5 s without a pass is not silence yet");
    tg_call_t probe = {.query = &queries[0]};
    cr_assert_eq(pick_conn(bp, &probe, now), bp->conns[0]);
    atomic_store(&backend.passed_at_ms, now - 6000);
    cr_assert_eq(pick_conn(bp, &probe, now), bp->conns[1], "silent: a connection made before the last pass takes nothing");
    tick_backend(bp, now);
    cr_assert_neq(bp->conns[0]->state, CONN_READY, "idle, connected before the last pass: closed");
    cr_assert_eq(bp->conns[1]->state, CONN_READY, "connected since: the server took it; kept");
    for (int i = 0; i != 2; ++i)
        if (bp->conns[i]->state != CONN_DOWN)
            set_down(bp->conns[i]);
    atomic_store(&backend.passed_at_ms, 0);
}

Test(pool_params, session_settings_keep_the_users_options)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 1, 1);
    tg_backend_t b = {.name = "x", .conninfo = "host=127.0.0.1 options='-c work_mem=64MB'"};
    tg_backend_pool_t *bp = pool->bps[0];
    bp->backend = &b;
    config.default_timeout_ms = 1234;
    init_backend_params(bp);
    cr_assert_str_eq(bp->keywords[0], "dbname");
    cr_assert_str_eq(bp->values[0], b.conninfo);
    /* the user's first, ours after: a user's DateStyle or statement_timeout cannot undo ours */
    cr_assert_str_eq(bp->options, "-c work_mem=64MB -c DateStyle=ISO -c TimeZone=UTC -c statement_timeout=1234");
    tg_backend_t override = {.name = "y", .conninfo = "host=127.0.0.1 options='-c DateStyle=SQL -c statement_timeout=0'"};
    bp->backend = &override;
    init_backend_params(bp);
    cr_assert_str_eq(bp->options, "-c DateStyle=SQL -c statement_timeout=0 -c DateStyle=ISO -c TimeZone=UTC -c statement_timeout=1234");
    cr_assert_eq(bp->session_timeout_ms, 1234);
}

/* A multi-host conninfo's hosts (and a port list of one per host) are passed rotated after each timed-out attempt. */
Test(pool_params, a_multi_host_list_turns_after_a_timeout)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 1, 1, 1);
    tg_backend_pool_t *bp = pool->bps[0];
    tg_backend_t b = {.name = "primary", .conninfo = "host=a,b,c port=1,2,3 dbname=app target_session_attrs=read-write"};
    bp->backend = &b;
    init_backend_params(bp);
    cr_assert_str_eq(bp->rotated[0], "a,b,c", "no rotation yet: the order as written");
    bp->host_rotation = 1;
    init_backend_params(bp);
    cr_assert_str_eq(bp->rotated[0], "b,c,a");
    cr_assert_str_eq(bp->rotated[2], "2,3,1", "the ports turn with their hosts");
    cr_assert_null(bp->rotated[1], "no hostaddr given");
    int found = 0;
    for (int i = 0; bp->keywords[i] != NULL; ++i)
        if (strcmp(bp->keywords[i], "host") == 0) {
            cr_assert_str_eq(bp->values[i], "b,c,a");
            cr_assert_str_eq(bp->keywords[0], "dbname", "after the conninfo, which they override");
            found = 1;
        }
    cr_assert(found);
    bp->host_rotation = 5;
    init_backend_params(bp);
    cr_assert_str_eq(bp->rotated[0], "c,a,b");
    tg_backend_t one_port = {.name = "primary", .conninfo = "postgresql://x,y:5433/app"};
    bp->backend = &one_port;
    init_backend_params(bp);
    cr_assert_str_eq(bp->rotated[0], "y,x");
    /* two attempts that started on the same list and time out together turn it once */
    bp->backend = &b;
    bp->host_rotation = 0;
    init_backend_params(bp);
    bp->conns[0]->state = CONN_CONNECTING;
    bp->conns[0]->connect_started = 1;
    bp->conns[0]->host_rotation = 0;
    bp->n_ready = 0;
    bp->n_connecting = 1;
    bp->draining = 1; /* nothing reconnects in this test */
    tick_backend(bp, tg_now_ms());
    cr_assert_eq(bp->host_rotation, 1);
    bp->conns[0]->state = CONN_CONNECTING; /* a second attempt, started on the old list, times out after */
    bp->conns[0]->host_rotation = 0;
    bp->n_connecting = 1;
    tick_backend(bp, tg_now_ms());
    cr_assert_eq(bp->host_rotation, 1, "an attempt on a list already turned does not turn it again");
    bp->draining = 0;
    tg_backend_t single = {.name = "primary", .conninfo = "host=a port=1 dbname=app"};
    bp->backend = &single;
    init_backend_params(bp);
    cr_assert_null(bp->rotated[0], "one host: nothing to turn");
    cr_assert_null(bp->rotated[2]);
}

/* Replica choice: two replicas beside the primary, health by hand, no sleeping. */
static tg_backend_t three[3] = {{.name = "primary", .is_primary = 1}, {.name = "replica1"}, {.name = "replica2"}};

static tg_backend_t *three_backends[3] = {&three[0], &three[1], &three[2]};

static tg_pool_t *make_routed_pool(h2o_loop_t *loop)
{
    tg_pool_t *pool = make_pool(loop, 1, 4, 10);
    pool->pc.backends = three_backends;
    pool->pc.n_backends = 3;
    free(pool->bps);
    pool->bps = tg_calloc(3, sizeof(*pool->bps));
    pool->n_bps = 3;
    for (int b = 0; b != 3; ++b) {
        tg_backend_pool_t *bp = pool->bps[b] = tg_calloc(1, sizeof(*bp));
        bp->pool = pool;
        bp->backend = &three[b];
        bp->n_ready = 1;
        atomic_store(&three[b].up, 1);
        atomic_store(&three[b].lag_ms, b == 0 ? -1 : 0);
        atomic_store(&three[b].checked_at_ms, tg_now_ms());
    }
    config.health_interval_ms = 1000;
    config.replica_max_lag_ms = 500;
    return pool;
}

static tg_query_t read_q = {.index = 0, .name = "r", .access = TG_ACCESS_READ, .state = &states[3]};
static tg_query_t write_q = {.index = 1, .name = "w", .access = TG_ACCESS_WRITE, .state = &states[4]};

/* where pick_backend sends a call */
static tg_backend_pool_t *route(tg_pool_t *pool, const tg_call_t *call)
{
    tg_pgconn_t *c;
    return pick_backend(pool, call, &c);
}

Test(pool_route, writes_primary_reads_least_busy_replica)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    tg_call_t w = {.query = &write_q}, r = {.query = &read_q};
    cr_assert_eq(route(pool, &w), pool->bps[0]);
    pool->bps[1]->in_flight = 5;
    pool->bps[2]->in_flight = 2;
    for (int i = 0; i != 4; ++i)
        cr_assert_eq(route(pool, &r), pool->bps[2], "the least busy replica, whatever the rotation");
    pool->bps[2]->in_flight = 9;
    cr_assert_eq(route(pool, &r), pool->bps[1]);
}

Test(pool_route, ties_rotate)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    tg_call_t r = {.query = &read_q};
    int hits[3] = {0};
    for (int i = 0; i != 10; ++i) {
        tg_backend_pool_t *got = route(pool, &r);
        for (int b = 0; b != 3; ++b)
            hits[b] += got == pool->bps[b];
    }
    cr_assert_eq(hits[0], 0);
    cr_assert_eq(hits[1], 5);
    cr_assert_eq(hits[2], 5);
}

Test(pool_route, unusable_replicas_leave_reads_to_the_primary)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    tg_call_t r = {.query = &read_q};
    atomic_store(&three[1].lag_ms, 501);      /* lagging */
    atomic_store(&three[2].up, 0);            /* down */
    cr_assert_eq(route(pool, &r), pool->bps[0]);
    atomic_store(&three[2].up, 1);
    pool->bps[2]->n_ready = 0;                 /* up, but this thread has no connection yet */
    cr_assert_eq(route(pool, &r), pool->bps[0]);
    pool->bps[2]->n_ready = 1;
    cr_assert_eq(route(pool, &r), pool->bps[2]);
    /* A read retried after replica2 failed it goes elsewhere. */
    r._avoid = pool->bps[2];
    cr_assert_eq(route(pool, &r), pool->bps[0]);
    atomic_store(&three[1].lag_ms, 0);
    cr_assert_eq(route(pool, &r), pool->bps[1]);
}

/* At start with the primary down: a read on a thread whose replica connection is still opening waits for it, never a 503 at once. */
Test(pool_route, a_read_waits_for_a_connecting_replica_when_the_primary_cannot_take_it)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    tg_call_t r = {.query = &read_q}, w = {.query = &write_q};
    pool->bps[1]->n_ready = pool->bps[2]->n_ready = 0; /* both replicas: up by the checker, this thread still connecting */
    cr_assert_eq(route(pool, &r), pool->bps[0], "while the primary is up, reads may go there");
    pool->bps[0]->down = 1;
    atomic_store(&three[0].up, 0); /* the primary is down: it fails calls at once */
    cr_assert(fails_fast(pool->bps[0]));
    tg_backend_pool_t *got = route(pool, &r);
    cr_assert(got == pool->bps[1] || got == pool->bps[2], "the read waits for a replica that is coming");
    cr_assert(!fails_fast(got));
    cr_assert_eq(route(pool, &w), pool->bps[0], "a write has nowhere else to go");
    atomic_store(&three[1].up, 0), atomic_store(&three[2].up, 0);
    cr_assert_eq(route(pool, &r), pool->bps[0], "no replica usable either: the read fails with the primary");
    atomic_store(&three[0].up, 1), atomic_store(&three[1].up, 1), atomic_store(&three[2].up, 1);
}

/* gives a routed pool's backend (which has none) one idle ready connection */
static tg_pgconn_t *add_ready_conn(tg_backend_pool_t *bp)
{
    tg_pgconn_t *c = tg_calloc(1, sizeof(*c));
    c->bp = bp;
    c->tail = &c->head;
    c->state = CONN_READY;
    bp->conns = tg_calloc(1, sizeof(*bp->conns));
    bp->conns[0] = c;
    bp->n_conns = 1;
    return c;
}

/* A replica with a free connection beats a less busy one without: a read waits for no backend while another has room. */
Test(pool_route, a_replica_with_room_first)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    tg_backend_pool_t *roomy = pool->bps[2];
    tg_pgconn_t *c = add_ready_conn(roomy);
    roomy->in_flight = 7;
    pool->bps[1]->in_flight = 0; /* the idler replica has no connection with room */
    tg_call_t r = {.query = &read_q};
    for (int i = 0; i != 4; ++i) {
        tg_pgconn_t *got;
        cr_assert_eq(pick_backend(pool, &r, &got), roomy);
        cr_assert_eq(got, c);
    }
}

/* A replica whose every connection is stuck far past its calls' estimates is passed over: reads waiting for it would time out. */
Test(pool_route, a_stalled_replica_is_passed_over)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    atomic_store(&three[2].up, 0); /* only replica1 is usable */
    tg_backend_pool_t *bp = pool->bps[1];
    tg_pgconn_t *c = add_ready_conn(bp);
    set_est(3, 1);
    uint64_t now = tg_now_ms();
    load_conn(c, &read_q, 4, now - 20); /* busy, a little overdue: it may still answer; the read waits for it */
    tg_call_t r = {.query = &read_q};
    cr_assert_eq(route(pool, &r), bp);
    c->head->_started_ns = (now - 400) * 1000000; /* past 2 x 1 ms + half the 50 ms acquire timeout + 10 ms by far */
    cr_assert_eq(route(pool, &r), pool->bps[0], "the stalled replica is passed over for the primary");
    atomic_store(&three[2].up, 1);
    cr_assert_eq(route(pool, &r), pool->bps[2], "or for another replica");
}

/* While this thread cannot reach the primary, a promoted replica (not in recovery) takes reads; otherwise never. */
Test(pool_route, a_promoted_replica_is_the_last_resort)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    atomic_store(&three[1].lag_ms, TG_LAG_NOT_IN_RECOVERY);
    atomic_store(&three[2].up, 0);
    tg_call_t r = {.query = &read_q}, w = {.query = &write_q};
    cr_assert_eq(route(pool, &r), pool->bps[0], "the primary answers: reads stay off the promoted server");
    pool->bps[0]->down = 1;
    cr_assert_eq(route(pool, &r), pool->bps[0], "this thread cannot reach the primary, but the health checker can: no");
    atomic_store(&three[0].up, 0);
    cr_assert_eq(route(pool, &r), pool->bps[1], "neither reaches the primary: the promoted server serves reads");
    cr_assert_eq(route(pool, &w), pool->bps[0], "never writes");
    atomic_store(&three[0].up, 1);
    atomic_store(&three[1].lag_ms, 0);
    atomic_store(&three[2].up, 1);
}

/*
 * Reads and writes wait in queues of their own: a read submitted while a write waits
 * for a primary still connecting is routed at once (here to a replica whose pool is
 * down in this thread, so it ends at once) instead of queueing behind the write.
 */
Test(pool_wait, a_read_never_waits_behind_a_write)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    pool->bps[0]->n_ready = 0; /* the primary: connecting */
    n_ended = 0;
    tg_call_t w = {.query = &write_q, .cb = record}, r = {.query = &read_q, .cb = record};
    tg_pool_submit(pool, &w);
    cr_assert_eq(n_waiting(pool), 1, "the write waits for the primary");
    cr_assert_eq(queue_of(pool, &w)->head, &w);
    cr_assert_neq(queue_of(pool, &r), queue_of(pool, &w));
    /* the replicas have no connection with room either (none here): the read is routed, then waits in its own queue */
    size_t routed = pool->rr;
    tg_pool_submit(pool, &r);
    cr_assert_eq(pool->rr, routed + 1, "the read was routed at once, not queued behind the write unseen");
    cr_assert_eq(queue_of(pool, &r)->head, &r);
    cr_assert_eq(queue_of(pool, &w)->head, &w);
    cr_assert_null(w._next, "the write's queue holds the write alone");
    /* the write's queue stays blocked; draining still reaches the read (routed again) */
    drain_waiters(pool);
    cr_assert_eq(pool->rr, routed + 2);
    cr_assert_eq(n_ended, 0);
    tg_pool_abandon(pool, &w);
    tg_pool_abandon(pool, &r);
}

/* Reads and writes bound for the same backend are handed out in arrival order, and each kind has its own bound. */
Test(pool_wait, arrival_order_across_queues_and_a_bound_each)
{
    tg_pool_t *pool = make_pool(h2o_evloop_create(), 1, 1, 2);
    tg_backend_pool_t *bp = pool->bps[0];
    bp->conns[0]->state = CONN_CONNECTING; /* nothing has room yet: calls wait */
    bp->n_ready = 0;
    bp->n_connecting = 1;
    tg_call_t w1 = {.query = &write_q, .cb = record}, r1 = {.query = &read_q, .cb = record}, w2 = {.query = &write_q, .cb = record},
              w3 = {.query = &write_q, .cb = record}, r2 = {.query = &read_q, .cb = record};
    n_ended = 0;
    tg_pool_submit(pool, &w1);
    tg_pool_submit(pool, &r1);
    tg_pool_submit(pool, &w2);
    cr_assert_eq(n_ended, 0);
    tg_pool_submit(pool, &w3);
    cr_assert_eq(n_ended, 1, "two writes wait already: the bound is full for writes");
    cr_assert_eq(ended[0], TG_CALL_QUEUE_FULL);
    r2._avoid = bp; /* a retried read that has to wait takes whatever frees first */
    tg_pool_submit(pool, &r2);
    cr_assert_eq(n_ended, 1, "reads have a bound of their own");
    cr_assert_null(r2._avoid);
    /* the backend is found down: the waiters end in the order they came, reads and writes mixed */
    n_ended = 0;
    bp->conns[0]->state = CONN_DOWN;
    bp->n_connecting = 0;
    bp->down = 1;
    drain_waiters(pool);
    cr_assert_eq(n_ended, 4);
    cr_assert_eq(ended_call[0], &w1);
    cr_assert_eq(ended_call[1], &r1);
    cr_assert_eq(ended_call[2], &w2);
    cr_assert_eq(ended_call[3], &r2);
    cr_assert_eq(n_waiting(pool), 0);
}

/*
 * A read on a lost connection is sent again only once the loop has seen this turn's
 * other socket events (a cut resets every connection at once), at most twice; a write
 * is never sent again.
 */
Test(pool_retry, reads_go_again_after_this_turn_of_the_loop)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 2, 4, 10);
    tg_backend_pool_t *bp = pool->bps[0];
    init_backend_params(bp);
    tg_call_t *r = load_conn(bp->conns[0], &read_q, 1, tg_now_ms());
    tg_call_t *w = load_conn(bp->conns[0], &write_q, 1, tg_now_ms());
    r->cb = w->cb = record;
    bp->in_flight = 2;
    n_ended = 0;
    conn_fail(bp->conns[0], "reset");
    cr_assert_eq(n_ended, 1, "the write ends at once: it may have committed");
    cr_assert_eq(ended_call[0], w);
    cr_assert_eq(ended[0], TG_CALL_CONN_LOST);
    cr_assert_eq(pool->retry[0].head, r, "the read waits for the end of this turn");
    cr_assert_eq(r->_retries, 1);
    cr_assert_eq(r->_conn, NULL);
    cr_assert_eq(tg_pool_pending(pool), 1, "and counts as pending (shutdown waits for it)");
    /* the other connection is found dead in the same turn; then the read goes again, to what is left */
    conn_fail(bp->conns[1], "reset");
    on_retry(&pool->retry[0].entry);
    cr_assert_null(pool->retry[0].head);
    cr_assert(r->_waiting, "the read was submitted again: it waits for a connection (both are reconnecting)");
    cr_assert_eq(n_ended, 1);
    tg_pool_abandon(pool, r);
    /* lost again: the second retry waits TG_RETRY_PAUSE_MS; lost a third time, it ends */
    bp->conns[0]->state = CONN_READY;
    ++bp->n_ready;
    tg_call_t *again = load_conn(bp->conns[0], &read_q, 1, tg_now_ms());
    again->cb = record;
    again->_retries = 1;
    bp->in_flight = 1;
    conn_fail(bp->conns[0], "reset");
    cr_assert_eq(pool->retry[1].head, again);
    cr_assert(h2o_timeout_is_linked(&pool->retry[1].entry));
    /* its client leaves meanwhile: it is not sent again (what it points to may be gone), and its callback still runs */
    n_ended = 0;
    cr_assert_eq(tg_pool_abandon(pool, again), 0);
    on_retry_later(&pool->retry[1].entry);
    cr_assert_eq(n_ended, 1);
    cr_assert_eq(ended_call[0], again);
    cr_assert_eq(ended[0], TG_CALL_CONN_LOST);
    cr_assert(!again->_waiting && again->_conn == NULL, "not submitted");
    bp->conns[0]->state = CONN_READY;
    ++bp->n_ready;
    tg_call_t *last = load_conn(bp->conns[0], &read_q, 1, tg_now_ms());
    last->cb = record;
    last->_retries = 2;
    bp->in_flight = 1;
    n_ended = 0;
    conn_fail(bp->conns[0], "reset");
    cr_assert_eq(n_ended, 1);
    cr_assert_eq(ended[0], TG_CALL_CONN_LOST, "retried twice already: it ends");
    for (int i = 0; i != 2; ++i)
        if (bp->conns[i]->state != CONN_DOWN)
            set_down(bp->conns[i]);
}

Test(pool_priority, low_work_holds_at_most_its_share)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_pool_t *pool = make_pool(loop, 4, 1, 10); /* no pipelining: one call per connection */
    tg_backend_pool_t *bp = pool->bps[0];
    config.pool.low_priority_share = 0.5;
    uint64_t now = 1000000;
    tg_call_t low = {.query = &queries[0], .priority = TG_PRIORITY_LOW};
    /* Two low calls take two of the four connections; a third low call finds no room... */
    for (int i = 0; i != 2; ++i) {
        tg_pgconn_t *c = pick_conn(bp, &low, now);
        cr_assert_not_null(c, "low call %d", i);
        tg_call_t *held = load_conn(c, &queries[0], 1, now);
        held->priority = TG_PRIORITY_LOW;
        count_low(c, held, 1);
    }
    cr_assert_eq(bp->low_conns, 2);
    cr_assert_null(pick_conn(bp, &low, now), "low work may hold only half the connections");
    /* ...while high-priority calls still find the other two. */
    cr_assert_not_null(pick_conn(bp, &high_call, now));
    config.pool.low_priority_share = 0.01;
    cr_assert_eq(low_conn_limit(bp), 1, "a tiny share still lets low work run while one connection stays free");
    config.pool.low_priority_share = 0;
    cr_assert_eq(low_conn_limit(bp), 0);
    /* With one ready connection, low work gets none unless the share is all of it. */
    config.pool.low_priority_share = 0.5;
    bp->n_ready = 1;
    cr_assert_eq(low_conn_limit(bp), 0);
    config.pool.low_priority_share = 1;
    cr_assert_eq(low_conn_limit(bp), 1);
    config.pool.low_priority_share = 0.5;
    bp->n_ready = 4;
}

/* --- reconfiguring a live pool (a reload) --- */

static tg_backend_t slow_backend = {.name = "primary", .conninfo = "host=127.0.0.1 port=1", .is_primary = 1};
static tg_backend_t bad_backend = {.name = "replica1", .conninfo = "host=127.0.0.1 port=notaport"}; /* refused at once by libpq */

Test(pool_reconfigure, keeps_backends_by_object_drains_the_rest_and_survives_a_connection_failing_at_once)
{
    h2o_loop_t *loop = h2o_evloop_create();
    tg_backend_t *first[1] = {&slow_backend};
    tg_pool_config_t pc = {.config = &config, .backends = first, .n_backends = 1, .conns_per_backend = 2, .pipeline_depth = 4,
                           .max_waiters = 10};
    tg_pool_t *pool = tg_pool_create(loop, &pc);
    tg_backend_pool_t *kept = pool->bps[0];
    cr_assert_eq(kept->n_conns, 2);
    /* a call waits: nothing is connected yet */
    n_ended = 0;
    tg_call_t call = {.query = &queries[0], .cb = record};
    tg_pool_submit(pool, &call);
    cr_assert_eq(n_waiting(pool), 1);

    /* a reload adds a replica whose connections fail as they start: the waiters must see the new backends whole */
    tg_backend_t *second[2] = {&slow_backend, &bad_backend};
    tg_pool_reconfigure(pool, &config, second, 2, 3, 10);
    cr_assert_eq(pool->n_bps, 2);
    cr_assert_eq(pool->bps[0], kept, "the same backend keeps its pool and connections");
    cr_assert_eq(kept->n_conns, 3, "pool.size grew: one more connection");
    cr_assert_eq(pool->bps[1]->backend, &bad_backend);
    cr_assert(pool->bps[1]->down, "its connections failed at once");
    cr_assert_eq(pool->n_draining, 0);

    /* shrink: the extra connections retire (closed once idle); the replica leaves and drains */
    tg_pool_reconfigure(pool, &config, first, 1, 1, 10);
    cr_assert_eq(pool->n_bps, 1);
    cr_assert_eq(pool->bps[0], kept);
    cr_assert_eq(pool->n_draining, 1);
    int retiring = 0;
    for (int i = 0; i != kept->n_conns; ++i)
        retiring += kept->conns[i]->retiring;
    cr_assert_eq(retiring, 2);
    /* the janitor frees what is idle: the drained replica, the retired connections */
    h2o_timeout_unlink(&pool->tick);
    on_tick(&pool->tick);
    cr_assert_eq(pool->n_draining, 0);
    cr_assert_eq(kept->n_conns, 1);
    tg_pool_abandon(pool, &call);
    tg_pool_destroy(pool);
}

/* A connection's set of prepared statements: add, find, remove (a failed Parse), growth past its first size. */
Test(pool_statements, the_set_of_prepared_names)
{
    struct st_tg_stmt_set_t set = {NULL, 0, 0};
    char names[100][40];
    cr_assert(stmt_state(&set, "tg_00000000000000000000000000000001") != 1);
    for (int i = 0; i != 100; ++i) {
        snprintf(names[i], sizeof(names[i]), "tg_%032x", (unsigned)(i * 2654435761u));
        stmt_add(&set, names[i]);
    }
    for (int i = 0; i != 100; ++i)
        cr_assert(stmt_state(&set, names[i]) == 1, "%s", names[i]);
    for (int i = 0; i < 100; i += 2)
        stmt_remove(&set, names[i]);
    for (int i = 0; i != 100; ++i)
        cr_assert_eq(stmt_state(&set, names[i]) == 1, i % 2, "%s", names[i]);
    stmt_add(&set, names[0]);
    cr_assert(stmt_state(&set, names[0]) == 1, "prepared again after a failed Parse");
    cr_assert(stmt_state(&set, "tg_ffffffffffffffffffffffffffffffff") != 1);
    stmt_clear(&set);
    cr_assert(stmt_state(&set, names[1]) != 1, "a new session has none");
}

/* Adaptive limits by hand: each of the three routed backends gets one fixed at `limit` (its minimum and maximum). */
static tg_overload_t limits[3];

static void give_limits(uint32_t limit)
{
    config.pool.overload.adaptive = 1;
    for (int b = 0; b != 3; ++b) {
        tg_overload_params_t p = {.min_limit = limit, .max_limit = limit, .interval_ns = 100000000, .floor_window_ns = 10000000000ull,
                                  .tolerance = 1.5};
        tg_overload_init(&limits[b], &p, tg_now_ns());
        three[b].overload = &limits[b];
    }
}

Test(pool_overload, a_read_its_backend_refuses_goes_elsewhere_and_one_none_admits_ends_at_once)
{
    tg_pool_t *pool = make_routed_pool(h2o_evloop_create());
    for (int b = 0; b != 3; ++b)
        add_ready_conn(pool->bps[b]);
    give_limits(1);
    tg_call_t r = {.query = &read_q, .cb = record};
    tg_pgconn_t *c = NULL;
    uint32_t ra = 0;
    cr_assert(tg_overload_try_acquire(&limits[1], NULL), "replica1 is full");
    cr_assert_eq(admit_elsewhere(pool, &r, pool->bps[1], &c, &ra), pool->bps[2], "the other replica first");
    cr_assert_eq(c, pool->bps[2]->conns[0]);
    cr_assert(r._admitted);
    cr_assert_eq(atomic_load(&limits[2].in_flight), 1);
    release_admission(pool->bps[2], &r);
    release_admission(pool->bps[2], &r);
    cr_assert_eq(atomic_load(&limits[2].in_flight), 0, "given back once, however often it is asked");
    cr_assert(!r._admitted);
    cr_assert(tg_overload_try_acquire(&limits[2], NULL), "replica2 is full too");
    cr_assert_eq(admit_elsewhere(pool, &r, pool->bps[1], &c, &ra), pool->bps[0], "then the primary");
    release_admission(pool->bps[0], &r);
    cr_assert(tg_overload_try_acquire(&limits[0], NULL), "and the primary");
    uint64_t shed = atomic_load(&limits[1].shed);
    n_ended = 0;
    cr_assert_eq(send_on(pool->bps[1], &r, pool->bps[1]->conns[0]), 1, "ended, not waiting");
    cr_assert_eq(n_ended, 1);
    cr_assert_eq(ended[0], TG_CALL_OVERLOADED);
    cr_assert_geq(r.retry_after_s, 1, "with the limit's Retry-After");
    cr_assert(!r._waiting && !r._admitted && r._conn == NULL);
    cr_assert_eq(atomic_load(&limits[1].shed), shed + 1);
    for (int b = 0; b != 3; ++b)
        cr_assert_eq(atomic_load(&limits[b].in_flight), 1, "nothing taken by the refused call");
    /* a write, and a read that must see the primary, have nowhere else to go */
    tg_overload_release(&limits[1]);
    tg_overload_release(&limits[2]);
    tg_call_t w = {.query = &write_q, .cb = record}, p = {.query = &read_q, .primary_only = 1, .cb = record};
    cr_assert_null(admit_elsewhere(pool, &w, pool->bps[0], &c, &ra));
    cr_assert_null(admit_elsewhere(pool, &p, pool->bps[0], &c, &ra));
    /* overload: false: nothing is admitted, nothing refused */
    config.pool.overload.adaptive = 0;
    cr_assert(admit(pool->bps[0], &w, &ra));
    cr_assert(!w._admitted);
    cr_assert_eq(atomic_load(&limits[0].in_flight), 1);
}

/* a pool of `n_conns` to one backend up by its checks, whose retry budget allows no retry but a failover */
static tg_pool_t *failover_pool(int n_conns, tg_retry_budget_t *budget)
{
    tg_pool_t *pool = make_pool(h2o_evloop_create(), n_conns, 8, 10);
    init_backend_params(pool->bps[0]);
    config.health_interval_ms = 1000;
    atomic_store(&backend.up, 1);
    atomic_store(&backend.checked_at_ms, tg_now_ms());
    tg_retry_budget_init(budget, 0, 0, 0);
    pool->pc.retry_budget = budget;
    return pool;
}

Test(pool_overload, every_admission_goes_back_once_after_a_burst_with_failures)
{
    tg_retry_budget_t budget;
    tg_pool_t *pool = failover_pool(2, &budget);
    tg_backend_pool_t *bp = pool->bps[0];
    tg_overload_t o;
    tg_overload_params_t p;
    tg_overload_params_for_pool(&p, 2, 8);
    tg_overload_init(&o, &p, tg_now_ns());
    backend.overload = &o;
    config.pool.overload.adaptive = 1;
    tg_call_t *reads = load_conn(bp->conns[0], &read_q, 4, tg_now_ms());
    tg_call_t *writes = load_conn(bp->conns[1], &write_q, 3, tg_now_ms());
    for (int i = 0; i != 7; ++i) {
        tg_call_t *call = i < 4 ? &reads[i] : &writes[i - 4];
        cr_assert(tg_overload_try_acquire(&o, NULL));
        call->_admitted = 1;
        call->_queued_ns = tg_now_ns();
        call->cb = record;
    }
    bp->in_flight = 7;
    n_ended = 0;
    /* two reads end with database errors: no samples (errors are often fast: they would drag the floor down) */
    finish_head(bp->conns[0]);
    finish_head(bp->conns[0]);
    cr_assert_eq(n_ended, 2);
    cr_assert_eq(ended[0], TG_CALL_DB_ERROR);
    cr_assert_eq(atomic_load(&o.in_flight), 5);
    cr_assert_eq(atomic_load(&o.n_samples), 0);
    /* the reads' connection is lost while its sibling lives: their retries need the budget, which has none */
    conn_fail(bp->conns[0], "reset");
    cr_assert_eq(atomic_load(&o.in_flight), 3, "lost calls give theirs back");
    cr_assert_eq(atomic_load(&o.n_samples), 0, "and are no samples");
    on_retry(&pool->retry[0].entry);
    cr_assert_eq(n_ended, 4);
    cr_assert_eq(ended[2], TG_CALL_CONN_LOST, "refused by the budget: it ends as a last retry does");
    cr_assert_eq(atomic_load(&budget.refused), 2);
    conn_fail(bp->conns[1], "reset");
    cr_assert_eq(n_ended, 7);
    cr_assert_eq(atomic_load(&o.in_flight), 0, "every admission given back");
    cr_assert_eq(bp->in_flight, 0);
    /* the backend's last connection goes with a read on it: a failover, free */
    bp->conns[0]->state = CONN_READY;
    ++bp->n_ready;
    tg_call_t *last = load_conn(bp->conns[0], &read_q, 1, tg_now_ms());
    last->cb = record;
    cr_assert(tg_overload_try_acquire(&o, NULL));
    last->_admitted = 1;
    bp->in_flight = 1;
    conn_fail(bp->conns[0], "reset");
    on_retry(&pool->retry[0].entry);
    cr_assert_eq(atomic_load(&budget.failovers), 1);
    cr_assert_eq(atomic_load(&budget.refused), 2);
    cr_assert(last->_waiting, "sent again: it waits for a connection");
    cr_assert_eq(atomic_load(&o.in_flight), 0, "waiting holds no admission");
    cr_assert_gt(atomic_load(&o.waited), 0, "and tells the limit its backend is loaded");
    tg_pool_abandon(pool, last);
    for (int i = 0; i != 2; ++i)
        if (bp->conns[i]->state != CONN_DOWN)
            set_down(bp->conns[i]);
}

/*
 * A server that goes away resets its connections together, if milliseconds apart: two
 * of a backend's connections lost within TG_LOST_BURST_MS make their reads' retries
 * failovers, free of the budget, though a third connection still looks up (review: a
 * killed server's first resets were charged to the budget, and with one connection
 * per thread any lone loss was free).
 */
Test(pool_overload, connections_lost_together_are_a_failover_one_alone_a_retry)
{
    tg_retry_budget_t budget;
    tg_pool_t *pool = failover_pool(3, &budget);
    tg_backend_pool_t *bp = pool->bps[0];
    config.pool.overload.adaptive = 0;
    tg_call_t *a = load_conn(bp->conns[0], &read_q, 2, tg_now_ms()), *b = load_conn(bp->conns[1], &read_q, 2, tg_now_ms());
    for (int i = 0; i != 2; ++i)
        a[i].cb = b[i].cb = record;
    bp->in_flight = 4;
    n_ended = 0;
    /* one lost alone, its siblings up: a retry, which this budget refuses */
    conn_fail(bp->conns[0], "reset");
    on_retry(&pool->retry[0].entry);
    cr_assert_eq(atomic_load(&budget.refused), 2);
    cr_assert_eq(atomic_load(&budget.failovers), 0);
    cr_assert_eq(n_ended, 2);
    /* a second lost right after it, the third still ready: the server is going away */
    conn_fail(bp->conns[1], "reset");
    cr_assert_eq(bp->n_ready, 1, "one connection still looks up");
    on_retry(&pool->retry[0].entry);
    cr_assert_eq(atomic_load(&budget.failovers), 2, "both reads failed over for free");
    cr_assert_eq(atomic_load(&budget.refused), 2);
    for (int i = 0; i != 2; ++i)
        if (b[i]._waiting || b[i]._conn != NULL)
            tg_pool_abandon(pool, &b[i]);
    for (int i = 0; i != 3; ++i)
        if (bp->conns[i]->state != CONN_DOWN)
            set_down(bp->conns[i]);
}

/*
 * Overload: an adaptive concurrency limit per backend, and a budget for read retries.
 * Pure: no clock of its own (every call takes `now_ns`), no pool, no h2o. gateway/pool.c
 * admits, releases and samples; docs/reference.md ("Overload") says what a user sees.
 *
 * The limit (tg_overload_t, one per backend, shared by every worker thread)
 * -----------------------------------------------------------------------
 * Shared, fed from all worker threads with relaxed atomics, not one per thread: the
 * latency it measures is the database's, and so is the concurrency it limits (each
 * thread's pool has its own connections to a backend, pool.size in all), so one
 * estimate from every thread's samples is N times less noisy, and a per-thread share
 * (limit / threads) would cap the thread that happens to get the load while the others
 * sit idle. The hot path is a compare-and-swap to admit, a decrement to release, and
 * two increments and a maximum per sample; the controller runs once per interval, on
 * whichever thread's sample finds it due (a try-lock: the others go on).
 *
 * - Samples: one per call that ran on the backend, its latency from when it was sent
 *   to its result (its wait in the connection's pipeline included: that queueing is
 *   what too high a limit makes; its wait for a connection excluded), with the
 *   backend's in-flight figure then. Calls that never ran (refused, no backend, lost
 *   before they were sent), lost ones and database errors (often fast: they would drag
 *   the floor down) are not samples (the pool's choice: it samples successes only). They go into a log histogram (8 bins per
 *   power of two: 12.5% steps), so the controller compares medians: a few outliers
 *   move a median nowhere, where they drag a mean.
 * - Every interval (100 ms; longer, up to 10 intervals, until it holds 8 samples, so a
 *   backend whose calls take seconds still decides on something), when the interval
 *   was loaded (some call refused, or at least half the limit in flight: an interval
 *   far under its limit says nothing about whether the limit is right, and a quiet
 *   gateway's one slow call must not shrink it):
 *       gradient = clamp((tolerance * floor + slack) / recent, 0.5, 1.0)
 *       limit    = clamp(limit * gradient + sqrt(limit) * (2 * gradient - 1), min_limit, max_limit)
 *   `recent` is the interval's median, `floor` the unloaded median. The headroom shrinks
 *   with the gradient, to none at its floor, so that a small limit (a 3-connection pool)
 *   can still halve. A tolerance of 2 lets latency double before the limit shrinks (a
 *   review found that it settles near 2.3x a backend's capacity: 1.5 is to be tried
 *   against bench/overload.sh when this is wired): at a higher
 *   concurrency than the floor's some rise is normal and not queueing. At the floor
 *   the limit grows by sqrt(limit) an interval (from 4 to 100 in under 20); at 4x the
 *   floor it halves (plus the headroom) each interval, down to min_limit in a few.
 *   The headroom is also why a limit settles where limit * (1 - g) = sqrt(limit) * (2g - 1):
 *   it keeps probing upwards a little, and finds room again when latency falls.
 * - The floor is the median latency of the backend's query mix as unloaded as this
 *   instance can make it: of at least 32 samples taken in intervals in which no more
 *   than min_limit calls were in flight. A median, not the fastest call ever: the mix
 *   has cheap and dear queries, and its median at low load is what a loaded median
 *   is comparable to. It is a windowed minimum: a lower measure replaces it at once, a
 *   higher one only once the floor is older than `floor_window_ns` (10 s), so the floor
 *   follows a mix that became slower for good (a deploy) within one window, and one
 *   loaded moment cannot lift it. Low-load intervals come by themselves on a gateway
 *   that is not always busy, and whenever the limit itself sits at min_limit; under
 *   load that never lets up, an expired floor is measured again by pinning the limit to
 *   min_limit until 32 samples are in, at most 2 s (Envoy's way; BBR's ProbeRTT),
 *   then the limit goes back to what it was (the gradient corrects it from there).
 *   Only while the interval's median is above the target (tolerance x floor + slack):
 *   then the floor decides how far the limit is cut, and an old one could cut it
 *   wrongly; within the target the floor decides nothing, and a probe would only shed
 *   a healthy backend's calls (review: 1-2% every 10 s); and only once the limit is
 *   within 4x its minimum (bursts far above it were shed for the probe's length every
 *   window: the fault matrix's writes), or, higher, once the floor is three windows old,
 *   pinned then to a quarter of the limit (else a slower mix could park the limit above
 *   4x its minimum, against a floor it no longer has, for good). A probe costs a share of
 *   refused calls for about one interval a window while latency is above its target.
 *   A window's worth of low-load samples too few for a full measure (slow calls at a
 *   small limit) still becomes the floor when the window ends (at least 4). The limit starts at
 *   max_limit (what the pool allows now), and the gradient leaves it there until the
 *   first floor; a start under load takes its first interval's median as its floor,
 *   without a probe (one at a start shed a fresh gateway's writes for seconds); a
 *   start into an overloaded backend keeps that floor until a low-load interval.
 *   A slowdown that outlasts the window even at min_limit (a vacuum, another client of
 *   the database) becomes the floor: this instance's calls are not what makes it
 *   slow, so shedding them would not help, and the limit then finds the backend's
 *   capacity at its new speed.
 * - Bounds (tg_overload_params_for_pool): max_limit = the backend's connections x the
 *   pipeline depth (the most the pool can have on it anyway); min_limit = an eighth of
 *   its connections, at least 2 (1 with a single connection), far below them: pools
 *   are sized for the busy hour, and a query whose cost grows under contention queues
 *   inside the database at a concurrency much smaller than that (its knee: often about
 *   its cores), which a floor of half the connections never relieved (bench/overload.sh:
 *   pool.size 32, knee 4, the limit held at 16 served a quarter of the peak). A
 *   pipeline depth of 1 still leaves the limit room to move.
 *
 * The retry budget (tg_retry_budget_t, one per gateway, shared by every worker)
 * --------------------------------------------------------------------------
 * A read sent again after its connection was lost takes a retry from the budget, and
 * goes again only if it got one: over the last `window_ns` (10 s, in 10 buckets) retries
 * may be at most `ratio` (10%) of calls, plus `min_per_s` (3) a second of the window,
 * so a quiet gateway can still retry (additive, as Finagle's RetryBudget). Every call counts once (tg_retry_budget_call),
 * its retries do not. The caller must NOT take from the budget for the calls of a
 * backend the health checker has just taken out: failing those over is not a retry
 * (the backend is gone, not overloaded; the fault matrix's zero failed reads needs
 * them all). The budget stops retry storms: when the database is dropping
 * connections because it is drowning, re-sending every lost read doubles its load.
 * A retry is counted before it is checked, so threads taking the last one at once
 * may both be refused, never both admitted. Bucket numbers wrap after 2^28 buckets
 * (8.5 years of 1 s buckets): a bucket untouched that long could look current.
 */
#ifndef tollgate__overload_h
#define tollgate__overload_h

#include <stdatomic.h>
#include <stdint.h>

/* the latency histogram: 8 bins per power of two from 1 us to 2^36 ns (69 s), one under, one over */
#define TG_OVERLOAD_SUBBINS 8
#define TG_OVERLOAD_MIN_SHIFT 10
#define TG_OVERLOAD_MAX_SHIFT 36
#define TG_OVERLOAD_BINS ((TG_OVERLOAD_MAX_SHIFT - TG_OVERLOAD_MIN_SHIFT) * TG_OVERLOAD_SUBBINS + 2)

typedef struct st_tg_overload_params_t {
    uint32_t min_limit, max_limit;
    uint64_t interval_ns;     /* how often the limit moves (100 ms) */
    uint64_t floor_window_ns; /* a floor older than this may rise, or is measured again (10 s) */
    double tolerance;         /* latency may be this many times the floor before the limit shrinks (2) */
    uint64_t slack_ns;        /* and this much more, absolutely (0 here; the gateway's 1 ms): a sub-millisecond floor's
                                 doubling is the noise of a busy machine, not a queue worth shedding for */
} tg_overload_params_t;

/** the defaults, with bounds from pool.size (one backend's connections over all threads) and the pipeline depth */
void tg_overload_params_for_pool(tg_overload_params_t *p, int pool_size, int pipeline_depth);

/** the controller's own state: only the thread that holds `busy` reads or writes it */
typedef struct st_tg_overload_ctl_t {
    tg_overload_params_t p;
    double limit;
    uint64_t window_start_ns; /* when the samples now in the histogram began */
    uint64_t shed_then;       /* `shed` at the last update */
    uint64_t waited_then;     /* `waited` at the last update */
    uint64_t floor_ns;        /* 0: not measured yet */
    uint64_t floor_at_ns;     /* when the floor was last measured (or confirmed) */
    uint32_t low[TG_OVERLOAD_BINS]; /* samples of low-load intervals, towards the next floor measure */
    uint32_t n_low;
    uint64_t low_since_ns;    /* when the first of them came */
    int probing;              /* the limit is pinned to probe_limit to measure the floor */
    double probe_limit;       /* min_limit; max(min_limit, limit / 4) for a probe of a floor three windows old */
    double saved_limit;       /* the limit before the probe */
    uint64_t probe_started_ns;
    uint64_t next_probe_ns;   /* no probe before (after one that found too few samples) */
} tg_overload_ctl_t;

/*
 * Laid out by who writes what, each group on cache lines of its own: every admission
 * writes the first (in_flight, with the limit it is checked against beside it), every
 * sample the second (the histogram), and the controller the third and fourth. Two
 * threads admitting while two others sample would otherwise keep taking one line from
 * each other (false sharing).
 */
typedef struct st_tg_overload_t {
    /* the workers', at each admission and release */
    _Alignas(64) _Atomic uint32_t in_flight; /* admitted and not released */
    _Atomic uint32_t limit;         /* the controller's; read by every admission */
    _Atomic uint32_t max_in_flight; /* the most in flight seen this interval */
    _Atomic uint64_t admitted, shed;/* ever (/metrics) */
    _Atomic uint64_t waited;        /* calls that found no connection free on the backend (the pool's note_wait): load too */
    /* the workers', at each sample */
    _Alignas(64) _Atomic uint32_t hist[TG_OVERLOAD_BINS];
    _Atomic uint32_t n_samples;     /* in `hist` */
    /* the controller's, read by the workers (next_ns at each sample) */
    _Alignas(64) _Atomic uint64_t next_ns; /* the next update is due */
    _Atomic int busy;               /* the controller is running */
    _Atomic uint64_t floor_ns, recent_ns; /* the floor and the last interval's median (/admin/status, Retry-After) */
    _Atomic int probing;
    _Alignas(64) tg_overload_ctl_t ctl;
} tg_overload_t;

/** a limit at max_limit, no floor yet; the first update is due one interval after `now_ns` */
void tg_overload_init(tg_overload_t *o, const tg_overload_params_t *p, uint64_t now_ns);

/**
 * Admission of one call to the backend: 1 if it may go (release it when it ends),
 * 0 if the backend is at its limit: answer 503 at once, `*retry_after_s` (may be NULL)
 * is what Retry-After should say (twice the recent median latency, 1..30 s).
 */
int tg_overload_try_acquire(tg_overload_t *o, uint32_t *retry_after_s);
void tg_overload_release(tg_overload_t *o);

/** is the backend at its limit now (a call would be refused)? */
static inline int tg_overload_full(const tg_overload_t *o)
{
    return atomic_load_explicit(&o->in_flight, memory_order_relaxed) >= atomic_load_explicit(&o->limit, memory_order_relaxed);
}

/** is less than half the limit in flight (room that overflow from elsewhere may take)? */
static inline int tg_overload_has_headroom(const tg_overload_t *o)
{
    return 2 * atomic_load_explicit(&o->in_flight, memory_order_relaxed) < atomic_load_explicit(&o->limit, memory_order_relaxed);
}

/** counts a call refused without trying (tg_overload_full said so), and sets what its Retry-After should say (may be NULL) */
void tg_overload_refused(tg_overload_t *o, uint32_t *retry_after_s);

/**
 * An admission whatever the limit (release it as any): for a read sent again after its
 * connection was lost, which was admitted once already. Refusing it would turn a
 * failover into a failed read; the retry budget bounds how many there are.
 */
void tg_overload_acquire(tg_overload_t *o);

/**
 * A call that ran on the backend took `latency_ns`, with `in_flight` calls on it then
 * (the in-flight count as the pool knows it). Runs the controller when it is due.
 */
void tg_overload_sample(tg_overload_t *o, uint64_t latency_ns, uint32_t in_flight, uint64_t now_ns);

/** runs the controller if it is due (what tg_overload_sample does after recording; exposed for a tick) */
void tg_overload_update(tg_overload_t *o, uint64_t now_ns);

/**
 * A call bound for the backend found no connection with room and waits for one: the
 * interval counts as loaded, as with a refusal (the pool may hold fewer calls than the
 * limit allows: slow calls are not pipelined, so the limit can sit above what the
 * connections carry while calls queue behind them).
 */
static inline void tg_overload_note_wait(tg_overload_t *o)
{
    atomic_fetch_add_explicit(&o->waited, 1, memory_order_relaxed);
}

/**
 * New bounds or tolerance (a reload): what was learned stays, the limit (and a probe's
 * saved limit) clamped into the new bounds. Waits for a controller run under way (a
 * few microseconds); any thread.
 */
void tg_overload_set_params(tg_overload_t *o, const tg_overload_params_t *p);

static inline uint32_t tg_overload_limit(const tg_overload_t *o)
{
    return atomic_load_explicit(&o->limit, memory_order_relaxed);
}

/* the retry budget: 10 buckets over the window, each a bucket number (high 28 bits) and a count (low 36) */
#define TG_RETRY_BUCKETS 10

typedef struct st_tg_retry_budget_t {
    uint64_t bucket_ns;    /* window / TG_RETRY_BUCKETS */
    double ratio;          /* retries per call */
    double min_retries;    /* retries the window always allows: min_per_s x its seconds */
    /* every read call writes `calls`, every retry `retries`: apart from the settings each of them reads, and each other */
    _Alignas(64) _Atomic uint64_t calls[TG_RETRY_BUCKETS];
    _Alignas(64) _Atomic uint64_t retries[TG_RETRY_BUCKETS];
    _Atomic uint64_t taken, refused; /* ever (/metrics) */
    _Atomic uint64_t failovers;      /* ever: reads sent again, free, because their backend was gone (counted by the caller) */
} tg_retry_budget_t;

/** window_ns 0, ratio < 0 or min_per_s < 0 take the defaults (10 s, 10%, 3/s) */
void tg_retry_budget_init(tg_retry_budget_t *b, uint64_t window_ns, double ratio, double min_per_s);

/** a call was made (once per call, not per retry) */
void tg_retry_budget_call(tg_retry_budget_t *b, uint64_t now_ns);

/** 1: a retry may be sent (and is counted), 0: the budget is spent, the call ends with its error */
int tg_retry_budget_take(tg_retry_budget_t *b, uint64_t now_ns);

#endif

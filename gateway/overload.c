/*
 * Overload: a backend's adaptive concurrency limit (a gradient controller on its
 * latency against its unloaded floor) and the gateway's read-retry budget
 * (tollgate/overload.h). No clock of its own, no pool.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "tollgate/overload.h"

#define MS 1000000ull
/* an interval decides on no fewer samples, unless it has waited this many intervals for them */
#define MIN_SAMPLES 8
#define MAX_WAIT_INTERVALS 10
/* a floor is the median of this many low-load samples; a probe that cannot find them ends after PROBE_MAX_NS */
#define FLOOR_SAMPLES 32
#define FLOOR_SAMPLES_AT_LEAST 4
#define PROBE_MAX_NS (2000 * MS)
/*
 * A probe only once the gradient has brought the limit within this factor of its
 * minimum: there pinning it costs a few calls and tells whether the floor still holds;
 * higher up, bursts far above the minimum (the fault matrix's writes, ten at a time)
 * would be shed for the probe's length, every window.
 */
#define PROBE_WITHIN 4
/* a measure this close above the floor (about one histogram bin) confirms it */
#define FLOOR_CONFIRM 1.15
#define GRADIENT_MIN 0.5
#define RETRY_AFTER_MAX_S 30

void tg_overload_params_for_pool(tg_overload_params_t *p, int pool_size, int pipeline_depth)
{
    uint32_t conns = pool_size < 1 ? 1 : (uint32_t)pool_size, depth = pipeline_depth < 1 ? 1 : (uint32_t)pipeline_depth;
    /* an eighth of the connections, at least 2 (1 with one connection): see the header */
    p->min_limit = conns < 2 ? 1 : conns < 16 ? 2 : (conns + 7) / 8;
    p->max_limit = conns * depth;
    if (p->max_limit < p->min_limit)
        p->max_limit = p->min_limit;
    p->interval_ns = 100 * MS;
    p->floor_window_ns = 10000 * MS;
    p->tolerance = 2.0;
    p->slack_ns = 0;
}

static void publish_limit(tg_overload_t *o)
{
    double l = o->ctl.limit;
    uint32_t n = l < o->ctl.p.min_limit ? o->ctl.p.min_limit : l > o->ctl.p.max_limit ? o->ctl.p.max_limit : (uint32_t)l;
    atomic_store_explicit(&o->limit, n, memory_order_relaxed);
}

void tg_overload_init(tg_overload_t *o, const tg_overload_params_t *p, uint64_t now_ns)
{
    memset(o, 0, sizeof(*o));
    o->ctl.p = *p;
    if (o->ctl.p.min_limit < 1)
        o->ctl.p.min_limit = 1;
    if (o->ctl.p.max_limit < o->ctl.p.min_limit)
        o->ctl.p.max_limit = o->ctl.p.min_limit;
    if (o->ctl.p.tolerance < 1)
        o->ctl.p.tolerance = 1;
    o->ctl.limit = o->ctl.p.max_limit; /* no floor yet: what the pool allows without a controller */
    o->ctl.window_start_ns = now_ns;
    publish_limit(o);
    atomic_store_explicit(&o->next_ns, now_ns + o->ctl.p.interval_ns, memory_order_relaxed);
}

static void atomic_max(_Atomic uint32_t *a, uint32_t v)
{
    uint32_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

void tg_overload_refused(tg_overload_t *o, uint32_t *retry_after_s)
{
    atomic_fetch_add_explicit(&o->shed, 1, memory_order_relaxed);
    if (retry_after_s != NULL) {
        /* a couple of the backend's current service times: sooner, the call would find it as full */
        double s = ceil(2.0 * (double)atomic_load_explicit(&o->recent_ns, memory_order_relaxed) / 1e9);
        *retry_after_s = s < 1 ? 1 : s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : (uint32_t)s;
    }
}

/* an admission was taken, `in_flight` now in flight with it */
static void count_admitted(tg_overload_t *o, uint32_t in_flight)
{
    atomic_fetch_add_explicit(&o->admitted, 1, memory_order_relaxed);
    atomic_max(&o->max_in_flight, in_flight);
}

int tg_overload_try_acquire(tg_overload_t *o, uint32_t *retry_after_s)
{
    uint32_t limit = atomic_load_explicit(&o->limit, memory_order_relaxed);
    uint32_t n = atomic_load_explicit(&o->in_flight, memory_order_relaxed);
    do {
        if (n >= limit) {
            tg_overload_refused(o, retry_after_s);
            return 0;
        }
    } while (!atomic_compare_exchange_weak_explicit(&o->in_flight, &n, n + 1, memory_order_relaxed, memory_order_relaxed));
    count_admitted(o, n + 1);
    return 1;
}

void tg_overload_acquire(tg_overload_t *o)
{
    count_admitted(o, atomic_fetch_add_explicit(&o->in_flight, 1, memory_order_relaxed) + 1);
}

void tg_overload_release(tg_overload_t *o)
{
    atomic_fetch_sub_explicit(&o->in_flight, 1, memory_order_relaxed);
}

/* 8 bins per power of two: a bin is 12.5% wide */
static unsigned bin_of(uint64_t ns)
{
    if (ns < (1ull << TG_OVERLOAD_MIN_SHIFT))
        return 0;
    unsigned k = 63 - (unsigned)__builtin_clzll(ns);
    if (k >= TG_OVERLOAD_MAX_SHIFT)
        return TG_OVERLOAD_BINS - 1;
    unsigned j = (unsigned)(ns >> (k - 3)) & (TG_OVERLOAD_SUBBINS - 1);
    return 1 + (k - TG_OVERLOAD_MIN_SHIFT) * TG_OVERLOAD_SUBBINS + j;
}

/* a bin's middle */
static uint64_t bin_value(unsigned i)
{
    if (i == 0)
        return (1ull << TG_OVERLOAD_MIN_SHIFT) / 2;
    if (i >= TG_OVERLOAD_BINS - 1)
        return 1ull << TG_OVERLOAD_MAX_SHIFT;
    --i;
    unsigned k = TG_OVERLOAD_MIN_SHIFT + i / TG_OVERLOAD_SUBBINS, j = i % TG_OVERLOAD_SUBBINS;
    return (uint64_t)ldexp(1.0 + (j + 0.5) / TG_OVERLOAD_SUBBINS, (int)k);
}

static uint64_t median(const uint32_t *counts, uint64_t total)
{
    uint64_t rank = (total + 1) / 2, seen = 0;
    for (unsigned i = 0; i != TG_OVERLOAD_BINS; ++i)
        if ((seen += counts[i]) >= rank)
            return bin_value(i);
    return bin_value(TG_OVERLOAD_BINS - 1);
}

void tg_overload_sample(tg_overload_t *o, uint64_t latency_ns, uint32_t in_flight, uint64_t now_ns)
{
    atomic_fetch_add_explicit(&o->hist[bin_of(latency_ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->n_samples, 1, memory_order_relaxed);
    atomic_max(&o->max_in_flight, in_flight);
    tg_overload_update(o, now_ns);
}

/* on: pins the limit to `pin` (at least min_limit) until the floor is measured; off: the limit goes back */
static void set_probing(tg_overload_t *o, int on, double pin, uint64_t now_ns)
{
    tg_overload_ctl_t *c = &o->ctl;
    c->probing = on;
    if (on) {
        c->saved_limit = c->limit;
        c->probe_limit = pin < c->p.min_limit ? c->p.min_limit : pin;
        c->limit = c->probe_limit;
        c->probe_started_ns = now_ns;
        c->n_low = 0; /* the probe measures the present */
        memset(c->low, 0, sizeof(c->low));
    } else {
        c->limit = c->saved_limit; /* the gradient corrects it from there, against the new floor */
    }
    atomic_store_explicit(&o->probing, on, memory_order_relaxed);
    publish_limit(o);
}

/*
 * A new measure of the unloaded median: a windowed minimum. Lower, or the floor has
 * outlived its window: it is the floor. About the same: the floor still holds. Higher
 * within the window: one moment's load, or a slower mix that the window's end will tell.
 */
static void measured(tg_overload_t *o, uint64_t m, uint64_t now_ns)
{
    tg_overload_ctl_t *c = &o->ctl;
    if (c->floor_ns == 0 || m <= c->floor_ns || now_ns - c->floor_at_ns > c->p.floor_window_ns) {
        c->floor_ns = m;
        c->floor_at_ns = now_ns;
    } else if ((double)m <= (double)c->floor_ns * FLOOR_CONFIRM) {
        c->floor_at_ns = now_ns;
    }
    atomic_store_explicit(&o->floor_ns, c->floor_ns, memory_order_relaxed);
}

static void forget_low(tg_overload_ctl_t *c)
{
    c->n_low = 0;
    memset(c->low, 0, sizeof(c->low));
}

/* Would the gradient shrink the limit at `recent_ns` against the floor (no floor yet: it cannot tell)? */
static int above_target(const tg_overload_ctl_t *c, uint64_t recent_ns)
{
    return c->floor_ns == 0 || c->p.tolerance * (double)c->floor_ns + (double)c->p.slack_ns < (double)recent_ns;
}

/*
 * The floor's side of an interval: gather low-load samples, measure, start or end a
 * probe. `counts` NULL: no samples. `recent_ns`: the interval's median.
 */
static void floor_step(tg_overload_t *o, const uint32_t *counts, uint32_t total, int low, int loaded, uint64_t recent_ns, uint64_t now_ns)
{
    tg_overload_ctl_t *c = &o->ctl;
    if (c->n_low != 0 && now_ns - c->low_since_ns > c->p.floor_window_ns) {
        /*
         * A window's worth of low-load samples, too few for a full measure (slow calls at a
         * small limit): enough to go by, or the limit could sit at its minimum for good
         * against a floor the backend no longer has. Fewer: too old to say what it does now.
         */
        if (c->n_low >= FLOOR_SAMPLES_AT_LEAST)
            measured(o, median(c->low, c->n_low), now_ns);
        forget_low(c);
    }
    if (counts != NULL && low) {
        if (c->n_low == 0)
            c->low_since_ns = now_ns;
        for (unsigned i = 0; i != TG_OVERLOAD_BINS; ++i)
            c->low[i] += counts[i];
        c->n_low += total;
    }
    if (c->n_low >= FLOOR_SAMPLES) {
        measured(o, median(c->low, c->n_low), now_ns);
        forget_low(c);
        if (c->probing)
            set_probing(o, 0, 0, now_ns);
        return;
    }
    if (c->probing && now_ns - c->probe_started_ns >= PROBE_MAX_NS) {
        /* too few calls to measure well: take what there is, or keep the old floor and ask again later */
        if (c->n_low >= FLOOR_SAMPLES_AT_LEAST)
            measured(o, median(c->low, c->n_low), now_ns);
        else
            c->next_probe_ns = now_ns + c->p.floor_window_ns / 2;
        forget_low(c);
        set_probing(o, 0, 0, now_ns);
        return;
    }
    if (counts != NULL && c->floor_ns == 0 && !low) {
        /*
         * A start under load (a restart in the busy hour): the first interval's median is
         * the floor for now, as any measure (a lower one replaces it at once, a higher one
         * after its window). Not a probe: pinning the limit to its minimum at a start sheds
         * for seconds a backend that may be fine (the fault matrix's fresh starts lost a
         * fifth of their writes). A start into a backend that is overloaded already takes
         * that latency as its floor until a low-load interval measures a lower one.
         */
        measured(o, recent_ns, now_ns);
        return;
    }
    int stale = c->floor_ns == 0 || now_ns - c->floor_at_ns > c->p.floor_window_ns;
    /*
     * Near the minimum the probe pins the limit to it; a floor three windows old is
     * checked however high the limit sits (a slower mix could park it above PROBE_WITHIN
     * for good, shedding the rest), at a quarter of the limit: a burst loses a few calls
     * for the probe's length, not most of them.
     */
    int near = c->limit <= PROBE_WITHIN * c->p.min_limit, old = now_ns - c->floor_at_ns > 3 * c->p.floor_window_ns;
    int check = above_target(c, recent_ns) && (near || old);
    /*
     * Load that never lets up: make the low load to measure at. Only under load, and only
     * while the floor is what decides: when latency is above its target (the gradient is
     * cutting the limit, so an old floor could be cutting it wrongly), and the limit is
     * near its minimum already (PROBE_WITHIN). A busy backend within its target gains
     * nothing from a new measure, and a probe would shed its calls.
     */
    if (counts != NULL && !c->probing && !low && loaded && stale && check && now_ns >= c->next_probe_ns)
        set_probing(o, 1, near ? c->p.min_limit : c->limit / 4, now_ns);
}

/* The limit's side: only a loaded interval says whether the limit is right. */
static void gradient_step(tg_overload_t *o, uint64_t recent_ns)
{
    tg_overload_ctl_t *c = &o->ctl;
    double g = (c->p.tolerance * (double)c->floor_ns + (double)c->p.slack_ns) / (double)recent_ns;
    g = g < GRADIENT_MIN ? GRADIENT_MIN : g > 1.0 ? 1.0 : g;
    /* the headroom shrinks with the gradient: at its floor (0.5) none, so even a limit of 4 can halve */
    double l = c->limit * g + sqrt(c->limit) * (2 * g - 1);
    c->limit = l < c->p.min_limit ? c->p.min_limit : l > c->p.max_limit ? c->p.max_limit : l;
    publish_limit(o);
}

static void run(tg_overload_t *o, uint64_t now_ns)
{
    tg_overload_ctl_t *c = &o->ctl;
    atomic_store_explicit(&o->next_ns, now_ns + c->p.interval_ns, memory_order_relaxed);
    uint32_t n = atomic_load_explicit(&o->n_samples, memory_order_relaxed);
    if (n < MIN_SAMPLES && now_ns - c->window_start_ns < MAX_WAIT_INTERVALS * c->p.interval_ns) {
        floor_step(o, NULL, 0, 0, 0, 0, now_ns); /* too few yet: keep gathering (a probe may still time out) */
        return;
    }
    uint32_t counts[TG_OVERLOAD_BINS], total = 0;
    for (unsigned i = 0; i != TG_OVERLOAD_BINS; ++i)
        total += counts[i] = atomic_exchange_explicit(&o->hist[i], 0, memory_order_relaxed);
    atomic_store_explicit(&o->n_samples, 0, memory_order_relaxed);
    uint32_t mx = atomic_exchange_explicit(&o->max_in_flight, atomic_load_explicit(&o->in_flight, memory_order_relaxed),
                                           memory_order_relaxed);
    uint64_t shed = atomic_load_explicit(&o->shed, memory_order_relaxed), waited = atomic_load_explicit(&o->waited, memory_order_relaxed);
    int refused = shed != c->shed_then || waited != c->waited_then;
    c->shed_then = shed;
    c->waited_then = waited;
    c->window_start_ns = now_ns;
    if (total == 0) {
        floor_step(o, NULL, 0, 0, 0, 0, now_ns);
        return;
    }
    uint64_t recent = median(counts, total);
    atomic_store_explicit(&o->recent_ns, recent, memory_order_relaxed);
    int loaded = refused || 2.0 * mx >= c->limit;
    if (!c->probing && c->floor_ns != 0 && loaded)
        gradient_step(o, recent);
    floor_step(o, counts, total, mx <= (c->probing ? c->probe_limit : c->p.min_limit), loaded, recent, now_ns);
}

static double clamp_limit(const tg_overload_params_t *p, double l)
{
    return l < p->min_limit ? p->min_limit : l > p->max_limit ? p->max_limit : l;
}

void tg_overload_set_params(tg_overload_t *o, const tg_overload_params_t *p)
{
    int expected = 0;
    while (!atomic_compare_exchange_weak_explicit(&o->busy, &expected, 1, memory_order_acquire, memory_order_relaxed))
        expected = 0; /* a controller run is a few microseconds */
    tg_overload_ctl_t *c = &o->ctl;
    uint32_t old_max = c->p.max_limit;
    c->p = *p;
    if (c->p.min_limit < 1)
        c->p.min_limit = 1;
    if (c->p.max_limit < c->p.min_limit)
        c->p.max_limit = c->p.min_limit;
    if (c->p.tolerance < 1)
        c->p.tolerance = 1;
    /* a limit that sat at the old maximum (no overload seen) stays at the maximum: it was the pool's size, not a finding */
    c->limit = c->limit >= old_max ? c->p.max_limit : clamp_limit(&c->p, c->limit);
    c->saved_limit = c->saved_limit >= old_max ? c->p.max_limit : clamp_limit(&c->p, c->saved_limit);
    if (c->probing)
        c->limit = c->probe_limit = clamp_limit(&c->p, c->probe_limit);
    publish_limit(o);
    atomic_store_explicit(&o->busy, 0, memory_order_release);
}

void tg_overload_update(tg_overload_t *o, uint64_t now_ns)
{
    if (now_ns < atomic_load_explicit(&o->next_ns, memory_order_relaxed))
        return;
    if (atomic_exchange_explicit(&o->busy, 1, memory_order_acquire))
        return; /* another thread is running it */
    if (now_ns >= atomic_load_explicit(&o->next_ns, memory_order_relaxed))
        run(o, now_ns);
    atomic_store_explicit(&o->busy, 0, memory_order_release);
}

/*
 * The retry budget. A bucket is one atomic word: its bucket number in the high bits
 * and its count in the low, so a bucket that comes round again is reset and counted
 * in one compare-and-swap, and no thread's count is lost to another's reset.
 */
#define COUNT_BITS 36
#define COUNT_MASK ((1ull << COUNT_BITS) - 1)
#define EPOCH_MASK ((1ull << (64 - COUNT_BITS)) - 1)

void tg_retry_budget_init(tg_retry_budget_t *b, uint64_t window_ns, double ratio, double min_per_s)
{
    memset(b, 0, sizeof(*b));
    if (window_ns == 0)
        window_ns = 10000 * MS;
    b->bucket_ns = window_ns / TG_RETRY_BUCKETS;
    if (b->bucket_ns == 0)
        b->bucket_ns = 1;
    b->ratio = ratio < 0 ? 0.1 : ratio;
    b->min_retries = (min_per_s < 0 ? 3.0 : min_per_s) * (double)(b->bucket_ns * TG_RETRY_BUCKETS) / 1e9;
}

static uint64_t epoch_of(const tg_retry_budget_t *b, uint64_t now_ns)
{
    return (now_ns / b->bucket_ns) & EPOCH_MASK;
}

static void bucket_add(_Atomic uint64_t *slots, uint64_t epoch)
{
    _Atomic uint64_t *s = &slots[epoch % TG_RETRY_BUCKETS];
    uint64_t v = atomic_load_explicit(s, memory_order_relaxed), nv;
    do {
        uint64_t count = (v >> COUNT_BITS) == epoch ? v & COUNT_MASK : 0; /* a bucket from a window ago starts again */
        nv = epoch << COUNT_BITS | (count + 1);
    } while (!atomic_compare_exchange_weak_explicit(s, &v, nv, memory_order_relaxed, memory_order_relaxed));
}

/* takes back one count of bucket `epoch`, unless that bucket has come round again since */
static void bucket_undo(_Atomic uint64_t *slots, uint64_t epoch)
{
    _Atomic uint64_t *s = &slots[epoch % TG_RETRY_BUCKETS];
    uint64_t v = atomic_load_explicit(s, memory_order_relaxed);
    while ((v >> COUNT_BITS) == epoch && (v & COUNT_MASK) != 0 &&
           !atomic_compare_exchange_weak_explicit(s, &v, v - 1, memory_order_relaxed, memory_order_relaxed))
        ;
}

static uint64_t window_sum(const _Atomic uint64_t *slots, uint64_t epoch)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i != TG_RETRY_BUCKETS; ++i) {
        uint64_t v = atomic_load_explicit(&slots[i], memory_order_relaxed);
        if (((epoch - (v >> COUNT_BITS)) & EPOCH_MASK) < TG_RETRY_BUCKETS)
            sum += v & COUNT_MASK;
    }
    return sum;
}

void tg_retry_budget_call(tg_retry_budget_t *b, uint64_t now_ns)
{
    bucket_add(b->calls, epoch_of(b, now_ns));
}

int tg_retry_budget_take(tg_retry_budget_t *b, uint64_t now_ns)
{
    /* counted first, then checked: two threads taking the last retry at once cannot both get it */
    uint64_t e = epoch_of(b, now_ns);
    bucket_add(b->retries, e);
    double allowed = b->ratio * (double)window_sum(b->calls, e) + b->min_retries;
    if ((double)window_sum(b->retries, e) <= allowed + 1e-9) {
        atomic_fetch_add_explicit(&b->taken, 1, memory_order_relaxed);
        return 1;
    }
    bucket_undo(b->retries, e);
    atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
    return 0;
}

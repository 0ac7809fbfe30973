/* Tests of gateway/cache.c: keys, hits and expiry, single flight (waiters, errors, a waiter leaving), epochs, the memory bound. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/cache.h"

static _Atomic uint64_t epoch;
static _Atomic int64_t entries, bytes;
static _Atomic uint64_t evictions;

static tg_cache_query_t query(uint32_t id)
{
    return (tg_cache_query_t){.id = id, .epoch = &epoch, .entries = &entries, .bytes = &bytes, .evictions = &evictions};
}

static void reset(void)
{
    atomic_store(&epoch, 0), atomic_store(&entries, 0), atomic_store(&bytes, 0), atomic_store(&evictions, 0);
}

TestSuite(cache, .init = reset);

struct waiter {
    tg_cache_waiter_t super;
    tg_cache_blob_t *_Atomic got;
    _Atomic int calls; /* delivery may come from another thread */
};

static void deliver(tg_cache_waiter_t *w, tg_cache_blob_t *b)
{
    struct waiter *x = (struct waiter *)w;
    atomic_store(&x->got, b);
    atomic_fetch_add(&x->calls, 1);
}

static struct waiter waiter(void)
{
    return (struct waiter){.super = {.deliver = deliver}};
}

static size_t key_of(uint32_t q, const char *v, char *out)
{
    const char *values[1] = {v};
    return tg_cache_key(q, 77, values, 1, out, 256);
}

Test(cache, keys_tell_null_from_empty_and_value_lists_apart_and_give_the_values_back)
{
    char a[256], b[256], c[256];
    const char *v1[2] = {"ab", "c"}, *v2[2] = {"a", "bc"}, *v3[2] = {NULL, "c"}, *v4[2] = {"", "c"};
    size_t la = tg_cache_key(1, 5, v1, 2, a, sizeof(a)), lb = tg_cache_key(1, 5, v2, 2, b, sizeof(b));
    cr_assert(la == lb && memcmp(a, b, la) != 0, "ab|c and a|bc differ");
    size_t l3 = tg_cache_key(1, 5, v3, 2, c, sizeof(c)), l4 = tg_cache_key(1, 5, v4, 2, b, sizeof(b));
    cr_assert(l3 == l4 && memcmp(c, b, l3) != 0, "NULL and '' differ");
    cr_assert_neq(memcmp(a, (tg_cache_key(2, 5, v1, 2, b, sizeof(b)), b), la), 0, "another query, another key");
    cr_assert_neq(memcmp(a, (tg_cache_key(1, 6, v1, 2, b, sizeof(b)), b), la), 0, "another definition of the query, another key");
    const char *back[2];
    cr_assert_eq(tg_cache_key_values(a, la, back, 2), 0);
    cr_assert_str_eq(back[0], "ab");
    cr_assert_str_eq(back[1], "c");
    cr_assert_eq(tg_cache_key_values(c, l3, back, 2), 0);
    cr_assert_null(back[0]);
    cr_assert_eq(tg_cache_key_values(a, la, back, 1), -1, "a key holds exactly its values");
    cr_assert_eq(tg_cache_key(1, 5, v1, 2, a, 14), 0, "too small a buffer says so");
}

/*
 * A read after a write's token: an entry answers it only if its data includes the
 * write (its position at or past the token, on its timeline); else it leads a fetch of
 * its own, and never joins one already under way (sent before the write, perhaps).
 */
Test(cache, a_read_after_a_token_takes_only_an_entry_that_has_the_write_and_joins_no_fetch)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    tg_cache_query_t q = query(1);
    char k[256];
    size_t kl = key_of(1, "7", k);
    struct waiter w1 = waiter(), w2 = waiter(), w3 = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *f, *f2;
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1000, &w1.super, &blob, &f), TG_CACHE_LEAD);
    tg_rw_token_t at = {.timeline = 2, .lsn = 500}, past = {.timeline = 2, .lsn = 501}, other = {.timeline = 3, .lsn = 10};
    /* a fetch under way: a read after any token reads without the cache */
    cr_assert_eq(tg_cache_lookup_after(c, &q, k, kl, 1001, &at, &w2.super, &blob, &f2), TG_CACHE_BYPASS);
    cr_assert_null(blob);
    tg_cache_blob_t *answer = tg_cache_blob_new(200, 0, "{\"v\":1}", 7);
    answer->data_timeline = 2, answer->data_lsn = 500;
    tg_cache_complete(c, f, answer, 1, 1000, 0, 1002);
    cr_assert(w1.calls == 1 && w2.calls == 0, "the read after the token was not a waiter");
    /* read at 2/500: it has the write of a token at 2/500, not one past it, nor another timeline's */
    cr_assert_eq(tg_cache_lookup_after(c, &q, k, kl, 1003, &at, &w2.super, &blob, &f2), TG_CACHE_HIT);
    cr_assert_eq(blob, answer);
    tg_cache_blob_unref(blob);
    cr_assert_eq(tg_cache_lookup_after(c, &q, k, kl, 1004, &past, &w2.super, &blob, &f2), TG_CACHE_LEAD, "an entry older than the token");
    cr_assert_null(blob);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1005, &w3.super, &blob, &f), TG_CACHE_HIT, "the entry still answers reads without a token");
    tg_cache_blob_unref(blob);
    cr_assert_eq(tg_cache_lookup_after(c, &q, k, kl, 1006, &other, &w3.super, &blob, &f), TG_CACHE_BYPASS,
                 "the token's fetch is under way: another joins none");
    tg_cache_blob_t *newer = tg_cache_blob_new(200, 0, "{\"v\":2}", 7);
    newer->data_timeline = 2, newer->data_lsn = 900;
    tg_cache_complete(c, f2, newer, 1, 1000, 0, 1007);
    cr_assert(w2.calls == 1 && w2.got == newer, "the token's own fetch answered it");
    cr_assert_eq(tg_cache_lookup_after(c, &q, k, kl, 1008, &past, &w3.super, &blob, &f), TG_CACHE_HIT, "the newer entry has it");
    cr_assert_eq(blob, newer);
    tg_cache_blob_unref(blob);
    tg_cache_blob_unref(w1.got), tg_cache_blob_unref(w2.got);
    tg_cache_free(c);
}

Test(cache, a_miss_leads_others_join_and_all_get_the_one_answer_which_is_then_a_hit)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    tg_cache_query_t q = query(1);
    char k[256];
    size_t kl = key_of(1, "42", k);
    struct waiter w1 = waiter(), w2 = waiter(), w3 = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *f, *f2;
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1000, &w1.super, &blob, &f), TG_CACHE_LEAD);
    cr_assert_not_null(f);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1001, &w2.super, &blob, &f2), TG_CACHE_JOINED);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1002, &w3.super, &blob, &f2), TG_CACHE_JOINED);
    size_t fl;
    const char *fk = tg_cache_flight_key(f, &fl);
    cr_assert(fl == kl && memcmp(fk, k, kl) == 0);
    tg_cache_blob_t *answer = tg_cache_blob_new(200, 0, "{\"id\":42}", 9);
    tg_cache_complete(c, f, answer, 1, 100, 50, 1010);
    cr_assert(w1.calls == 1 && w2.calls == 1 && w3.calls == 1, "every waiter once");
    cr_assert(w1.got == answer && w2.got == answer && w3.got == answer, "one body for all");
    cr_assert(answer->stored);
    cr_assert_eq(atomic_load(&entries), 1);
    /* fresh until 1110, stale until 1160 */
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1109, &w1.super, &blob, &f), TG_CACHE_HIT);
    cr_assert_eq(blob, answer);
    tg_cache_blob_unref(blob);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1110, &w1.super, &blob, &f), TG_CACHE_STALE_LEAD, "the first stale caller refreshes");
    tg_cache_blob_unref(blob);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1111, &w2.super, &blob, &f2), TG_CACHE_STALE, "the others are served stale");
    tg_cache_blob_unref(blob);
    /* the refresh fails: the stale entry stays until its stale time */
    tg_cache_complete(c, f, tg_cache_blob_new(500, 1, "{}", 2), 0, 100, 50, 1120);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1159, &w1.super, &blob, &f), TG_CACHE_STALE_LEAD);
    cr_assert_eq(blob, answer, "still the old answer");
    tg_cache_blob_unref(blob);
    tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "{\"id\":43}", 9), 1, 100, 50, 1159);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1160, &w1.super, &blob, &f), TG_CACHE_HIT);
    cr_assert_str_eq(blob->body, "{\"id\":43}", "the refresh's answer");
    tg_cache_blob_unref(blob);
    tg_cache_blob_unref(w1.got), tg_cache_blob_unref(w2.got), tg_cache_blob_unref(w3.got);
    tg_cache_free(c);
}

Test(cache, an_error_is_delivered_to_every_waiter_and_never_stored)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    tg_cache_query_t q = query(1);
    char k[256];
    size_t kl = key_of(1, "0", k);
    struct waiter w1 = waiter(), w2 = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *f, *f2;
    tg_cache_lookup(c, &q, k, kl, 0, &w1.super, &blob, &f);
    tg_cache_lookup(c, &q, k, kl, 0, &w2.super, &blob, &f2);
    tg_cache_blob_t *err = tg_cache_blob_new(400, 1, "{\"type\":\"x\"}", 12);
    tg_cache_complete(c, f, err, 0, 1000, 0, 1);
    cr_assert(w1.got == err && w2.got == err);
    cr_assert(!err->stored);
    cr_assert_eq(atomic_load(&entries), 0);
    struct waiter w3 = waiter();
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 2, &w3.super, &blob, &f), TG_CACHE_LEAD, "the next call fetches again");
    tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "1", 1), 0, 1000, 0, 3);
    tg_cache_blob_unref(w1.got), tg_cache_blob_unref(w2.got), tg_cache_blob_unref(w3.got);
    tg_cache_free(c);
}

Test(cache, a_waiter_that_leaves_is_not_delivered_and_the_others_are)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    tg_cache_query_t q = query(1);
    char k[256];
    size_t kl = key_of(1, "7", k);
    struct waiter leader = waiter(), other = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *f, *f2;
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &leader.super, &blob, &f), TG_CACHE_LEAD);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &other.super, &blob, &f2), TG_CACHE_JOINED);
    cr_assert_eq(tg_cache_leave(c, &leader.super), 1, "the leader's client left: the fetch is not its own");
    cr_assert_eq(tg_cache_leave(c, &leader.super), 0, "leaving twice is nothing");
    tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "ok", 2), 1, 1000, 0, 1);
    cr_assert_eq(leader.calls, 0);
    cr_assert_eq(other.calls, 1);
    cr_assert_eq(tg_cache_leave(c, &other.super), 0, "after delivery began, leaving says so");
    tg_cache_blob_unref(other.got);
    tg_cache_free(c);
}

Test(cache, a_new_epoch_neither_serves_nor_joins_the_old_and_the_old_fetch_does_not_store)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    tg_cache_query_t q = query(1);
    char k[256];
    size_t kl = key_of(1, "k", k);
    struct waiter w1 = waiter(), w2 = waiter(), w3 = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *old, *fresh, *f;
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &w1.super, &blob, &old), TG_CACHE_LEAD);
    atomic_fetch_add(&epoch, 1); /* a write invalidated the query while the read was fetched */
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 1, &w2.super, &blob, &fresh), TG_CACHE_LEAD, "a caller after the write does not get the old fetch");
    tg_cache_complete(c, old, tg_cache_blob_new(200, 0, "old", 3), 1, 1000, 0, 2);
    cr_assert_str_eq(w1.got->body, "old");
    cr_assert(!w1.got->stored, "an older epoch's answer is not stored");
    cr_assert_eq(w2.calls, 0);
    tg_cache_complete(c, fresh, tg_cache_blob_new(200, 0, "new", 3), 1, 1000, 0, 3);
    cr_assert_str_eq(w2.got->body, "new");
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 4, &w3.super, &blob, &f), TG_CACHE_HIT);
    cr_assert_str_eq(blob->body, "new");
    tg_cache_blob_unref(blob);
    atomic_fetch_add(&epoch, 1);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 5, &w3.super, &blob, &f), TG_CACHE_LEAD, "invalidated: a miss");
    cr_assert_eq(atomic_load(&entries), 0, "and the old entry's memory is given back");
    tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "x", 1), 0, 1000, 0, 6);
    tg_cache_blob_unref(w1.got), tg_cache_blob_unref(w2.got), tg_cache_blob_unref(w3.got);
    tg_cache_free(c);
}

Test(cache, one_hundred_thousand_keys_stay_within_max_bytes_least_recently_used_first)
{
    size_t max = 1 << 20;
    tg_cache_t *c = tg_cache_create(max);
    tg_cache_query_t q = query(3);
    char k[256], body[200];
    memset(body, 'x', sizeof(body));
    for (int i = 0; i != 100000; ++i) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        size_t kl = key_of(3, v, k);
        struct waiter w = waiter();
        tg_cache_blob_t *blob;
        tg_cache_flight_t *f;
        cr_assert_eq(tg_cache_lookup(c, &q, k, kl, (uint64_t)i, &w.super, &blob, &f), TG_CACHE_LEAD);
        tg_cache_complete(c, f, tg_cache_blob_new(200, 0, body, sizeof(body)), 1, 1 << 30, 0, (uint64_t)i);
        tg_cache_blob_unref(w.got);
        cr_assert_leq(tg_cache_bytes(c), max);
    }
    cr_assert_eq((size_t)atomic_load(&bytes), tg_cache_bytes(c), "the query's gauge is the cache's count");
    cr_assert_gt(atomic_load(&evictions), 90000);
    cr_assert_eq(atomic_load(&entries) + (int64_t)atomic_load(&evictions), 100000);
    /* the newest are there, the oldest gone */
    char v[16] = "99999";
    size_t kl = key_of(3, v, k);
    struct waiter w = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *f;
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 100000, &w.super, &blob, &f), TG_CACHE_HIT);
    tg_cache_blob_unref(blob);
    kl = key_of(3, "0", k);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 100000, &w.super, &blob, &f), TG_CACHE_LEAD);
    tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "", 0), 0, 1, 0, 100001);
    tg_cache_blob_unref(w.got);
    cr_assert_gt(tg_cache_purge(c, 3), 0);
    cr_assert_eq(tg_cache_bytes(c), 0);
    cr_assert_eq(atomic_load(&entries), 0);
    tg_cache_free(c);
}

Test(cache, max_bytes_zero_stores_nothing_but_misses_still_share_one_fetch)
{
    tg_cache_t *c = tg_cache_create(0);
    tg_cache_query_t q = query(1);
    char k[256];
    size_t kl = key_of(1, "1", k);
    struct waiter w1 = waiter(), w2 = waiter();
    tg_cache_blob_t *blob;
    tg_cache_flight_t *f, *f2;
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &w1.super, &blob, &f), TG_CACHE_LEAD);
    cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &w2.super, &blob, &f2), TG_CACHE_JOINED);
    tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "1", 1), 1, 1000, 0, 1);
    cr_assert(w1.calls == 1 && w2.calls == 1);
    cr_assert_eq(tg_cache_bytes(c), 0);
    tg_cache_blob_unref(w1.got), tg_cache_blob_unref(w2.got);
    tg_cache_free(c);
}

#define THREADS 4
#define CALLS 20000

struct racer {
    tg_cache_t *c;
    _Atomic int *fetches;
    int served;
    int wrong; /* answers of another key (asserted by the test's own thread: Criterion's asserts are not thread-safe) */
};

static void *race(void *arg)
{
    struct racer *r = arg;
    tg_cache_query_t q = query(9);
    for (int i = 0; i != CALLS; ++i) {
        char k[256], v[8];
        snprintf(v, sizeof(v), "%d", i % 50);
        size_t kl = key_of(9, v, k);
        struct waiter w = waiter();
        tg_cache_blob_t *blob;
        tg_cache_flight_t *f;
        switch (tg_cache_lookup(r->c, &q, k, kl, (uint64_t)i / 100, &w.super, &blob, &f)) {
        case TG_CACHE_HIT:
        case TG_CACHE_STALE:
            tg_cache_blob_unref(blob);
            ++r->served;
            break;
        case TG_CACHE_STALE_LEAD:
            tg_cache_blob_unref(blob);
            ++r->served;
            atomic_fetch_add(r->fetches, 1);
            tg_cache_complete(r->c, f, tg_cache_blob_new(200, 0, v, strlen(v)), 1, 5, 5, (uint64_t)i / 100);
            break;
        case TG_CACHE_LEAD:
            atomic_fetch_add(r->fetches, 1);
            tg_cache_complete(r->c, f, tg_cache_blob_new(200, 0, v, strlen(v)), 1, 5, 5, (uint64_t)i / 100);
            /* fall through: delivered to this waiter */
        case TG_CACHE_JOINED:
            if (w.calls == 0 && tg_cache_leave(r->c, &w.super) == 1)
                break; /* another thread's fetch had not finished: leaving is allowed */
            while (atomic_load(&w.calls) == 0) {
            }
            r->wrong += strcmp(w.got->body, v) != 0;
            tg_cache_blob_unref(w.got);
            ++r->served;
            break;
        }
    }
    return NULL;
}

/* Four threads on fifty keys: every answer is its key's, and fetches are a small share of the calls. */
Test(cache, threads_racing_on_few_keys_get_their_keys_answers_with_few_fetches, .timeout = 60)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    _Atomic int fetches = 0;
    struct racer r[THREADS];
    pthread_t tid[THREADS];
    for (int i = 0; i != THREADS; ++i) {
        r[i] = (struct racer){c, &fetches, 0};
        pthread_create(&tid[i], NULL, race, &r[i]);
    }
    for (int i = 0; i != THREADS; ++i)
        pthread_join(tid[i], NULL);
    cr_assert_lt(atomic_load(&fetches), THREADS * CALLS / 10, "%d fetches for %d calls", atomic_load(&fetches), THREADS * CALLS);
    for (int i = 0; i != THREADS; ++i) {
        cr_assert_eq(r[i].wrong, 0, "thread %d got %d answers of another key", i, r[i].wrong);
        cr_assert_gt(r[i].served, 0);
    }
    tg_cache_free(c);
}

struct leaver {
    tg_cache_t *c;
    struct waiter *w;
    _Atomic int *ready; /* both threads check in, then both act: their calls overlap */
    int left;
};

static void *leave_now(void *arg)
{
    struct leaver *l = arg;
    atomic_fetch_add(l->ready, 1);
    while (atomic_load(l->ready) != 2) {
    }
    l->left = tg_cache_leave(l->c, &l->w->super);
    return NULL;
}

/* A waiter's client leaving on one thread while its fetch completes on another: delivered or left, exactly one of them. */
Test(cache, a_waiter_leaving_while_its_fetch_completes_is_either_delivered_or_gone, .timeout = 60)
{
    tg_cache_t *c = tg_cache_create(1 << 20);
    tg_cache_query_t q = query(4);
    char k[256];
    size_t kl = key_of(4, "race", k);
    for (int round = 0; round != 2000; ++round) {
        struct waiter leader = waiter(), other = waiter();
        tg_cache_blob_t *blob;
        tg_cache_flight_t *f, *f2;
        cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &leader.super, &blob, &f), TG_CACHE_LEAD);
        cr_assert_eq(tg_cache_lookup(c, &q, k, kl, 0, &other.super, &blob, &f2), TG_CACHE_JOINED);
        _Atomic int ready = 0;
        struct leaver l = {c, &other, &ready, 0};
        pthread_t tid;
        pthread_create(&tid, NULL, leave_now, &l);
        atomic_fetch_add(&ready, 1);
        while (atomic_load(&ready) != 2) {
        }
        tg_cache_complete(c, f, tg_cache_blob_new(200, 0, "x", 1), 0, 10, 0, 1);
        pthread_join(tid, NULL);
        cr_assert_eq(atomic_load(&other.calls) + l.left, 1, "round %d: delivered %d, left %d", round, atomic_load(&other.calls), l.left);
        cr_assert_eq(atomic_load(&leader.calls), 1);
        tg_cache_blob_unref(leader.got);
        if (other.got != NULL)
            tg_cache_blob_unref(other.got);
    }
    tg_cache_free(c);
}

/*
 * Calls that cross threads. Each worker thread has its own pool (tollgate/pool.h), so
 * a client whose calls all arrive on one thread (one HTTP/2 connection) would get
 * only that thread's share of pool.size. When a call finds no room in its own pool
 * while another thread's has idle connections, the pool hands it here: it is copied
 * (its parameter values too: the caller's request may go before the call ends) into
 * a message to that thread, submitted to that thread's pool, and its end sent back as
 * a message to the call's own thread, whose pool runs its callback there.
 *
 * Messages go through h2o's multithread queues (a mutex and a wake-up per batch of
 * messages): only calls that would otherwise wait take this path; a call with room in
 * its own thread's pool never does.
 */
#ifndef tollgate__relay_h
#define tollgate__relay_h

#include <h2o.h>
#include "tollgate/pool.h"

typedef struct st_tg_relay_t tg_relay_t;

/** the gateway's relay between `n_threads` worker threads */
tg_relay_t *tg_relay_create(size_t n_threads);

/** thread `thread`'s inbox receives on `queue` (its loop's); before the threads run */
void tg_relay_attach(tg_relay_t *r, size_t thread, h2o_multithread_queue_t *queue);

/**
 * On thread `thread`: from now on calls relayed to it run in `pool`; NULL (before the
 * pool goes) ends those arriving later with TG_CALL_NO_BACKEND.
 */
void tg_relay_set_pool(tg_relay_t *r, size_t thread, tg_pool_t *pool);

/**
 * Thread `thread` is stopping: no call is relayed to it from now on (they wait in
 * their own pools). Calls relayed to it before still run; its loop must run once
 * more to take those already on their way.
 */
void tg_relay_close(tg_relay_t *r, size_t thread);

/** the `relay_arg` of thread `thread`'s pool (tg_pool_config_t) */
void *tg_relay_arg(tg_relay_t *r, size_t thread);

/** the `relay` of the pools' config: sends `call` to thread `thread`; 1 if sent */
int tg_relay_send(void *arg, tg_call_t *call, size_t thread);

/** unregisters the inboxes and frees the relay; after every worker thread has ended */
void tg_relay_free(tg_relay_t *r);

#endif

/*
 * Query cancellation off the event loop. PQcancel() opens a connection and waits for
 * the server, so it never runs on a worker thread: workers queue a job here and a
 * helper thread sends it, marking the job done when the server has taken it. There is
 * one canceller per backend, so a host that does not answer delays only its own
 * cancels.
 */
#ifndef tollgate__cancel_h
#define tollgate__cancel_h

#include <libpq-fe.h>
#include <stdatomic.h>

typedef struct st_tg_canceller_t tg_canceller_t;

/** one cancel request; shared by the worker that asked and the helper thread */
typedef struct st_tg_cancel_job_t {
    PGcancel *cancel;        /* from PQgetCancel, freed with the job */
    _Atomic int done;        /* the request was sent (or failed): the backend has had its signal */
    _Atomic int refs;        /* 2 while both sides hold it; the last to let go frees it */
    struct st_tg_cancel_job_t *next;
} tg_cancel_job_t;

/** starts the helper thread */
tg_canceller_t *tg_canceller_start(void);

/** stops it after sending what is queued, waiting at most a second (a thread stuck on a silent host is left behind) */
void tg_canceller_stop(tg_canceller_t *c);

/**
 * Queues a cancel for the query running on `conn` (non-blocking: PQgetCancel only
 * copies the connection's cancel key). Returns the job, which the caller releases with
 * tg_cancel_release when it no longer looks at it; NULL if libpq could not make one.
 */
tg_cancel_job_t *tg_cancel_send(tg_canceller_t *c, PGconn *conn);

/** drops the caller's reference to a job */
void tg_cancel_release(tg_cancel_job_t *job);

#endif

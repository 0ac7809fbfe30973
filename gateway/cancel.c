/*
 * Cancellers: one helper thread per backend that sends the PQcancel requests the
 * workers queue for it. PQcancel blocks (connect, then the server's answer) with no
 * timeout in libpq 15, so a blackholed host holds its own canceller, never another
 * backend's; the pool fences a connection whose cancel takes too long and closes it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "tollgate/cancel.h"
#include "internal.h"

struct st_tg_canceller_t {
    pthread_t tid;
    pthread_mutex_t mutex;
    pthread_cond_t cond;      /* jobs, or the stop */
    pthread_cond_t exit_cond; /* the thread ended */
    tg_cancel_job_t *head, **tail;
    int stopping;
    int exited;               /* the thread is done with everything but freeing */
    int orphaned;             /* the stop gave up waiting: the thread frees the canceller itself */
};

/* How long a stop waits for a canceller busy with a host that does not answer. */
#define TG_CANCELLER_STOP_WAIT_MS 1000

void tg_cancel_release(tg_cancel_job_t *job)
{
    if (atomic_fetch_sub(&job->refs, 1) == 1) {
        PQfreeCancel(job->cancel);
        free(job);
    }
}

static void *canceller_main(void *arg)
{
    tg_canceller_t *c = arg;
    pthread_mutex_lock(&c->mutex);
    for (;;) {
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->cond, &c->mutex);
        if (c->head == NULL)
            break;
        tg_cancel_job_t *job = c->head;
        if ((c->head = job->next) == NULL)
            c->tail = &c->head;
        pthread_mutex_unlock(&c->mutex);
        char err[256];
        if (!PQcancel(job->cancel, err, sizeof(err)))
            tg_log(TG_LOG_WARN, "could not cancel a query: %s", err);
        atomic_store(&job->done, 1);
        tg_cancel_release(job);
        pthread_mutex_lock(&c->mutex);
    }
    c->exited = 1;
    int orphaned = c->orphaned;
    pthread_cond_broadcast(&c->exit_cond);
    pthread_mutex_unlock(&c->mutex);
    if (orphaned)
        free(c); /* (its mutexes go with the process: nothing else holds them) */
    return NULL;
}

tg_canceller_t *tg_canceller_start(void)
{
    tg_canceller_t *c = tg_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mutex, NULL);
    pthread_cond_init(&c->cond, NULL);
    tg_cond_init_monotonic(&c->exit_cond);
    c->tail = &c->head;
    pthread_create(&c->tid, NULL, canceller_main, c);
    return c;
}

void tg_canceller_stop(tg_canceller_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mutex);
    c->stopping = 1;
    pthread_cond_signal(&c->cond);
    /* Bounded: a cancel stuck on a host that does not answer must not hold a shutdown. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += TG_CANCELLER_STOP_WAIT_MS / 1000;
    while (!c->exited && pthread_cond_timedwait(&c->exit_cond, &c->mutex, &until) == 0)
        ;
    int exited = c->exited;
    if (!exited)
        c->orphaned = 1;
    pthread_mutex_unlock(&c->mutex);
    if (exited) {
        pthread_join(c->tid, NULL);
        free(c);
    } else {
        tg_log(TG_LOG_WARN, "a cancel is still waiting for a host that does not answer: leaving it behind");
        pthread_detach(c->tid);
    }
}

tg_cancel_job_t *tg_cancel_send(tg_canceller_t *c, PGconn *conn)
{
    PGcancel *cancel = PQgetCancel(conn);
    if (cancel == NULL)
        return NULL;
    tg_cancel_job_t *job = tg_calloc(1, sizeof(*job));
    job->cancel = cancel;
    atomic_init(&job->done, 0);
    atomic_init(&job->refs, 2);
    pthread_mutex_lock(&c->mutex);
    *c->tail = job;
    c->tail = &job->next;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mutex);
    return job;
}

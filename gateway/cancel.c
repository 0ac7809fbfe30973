/*
 * The canceller: a helper thread that sends PQcancel requests queued by the workers.
 */
#include <pthread.h>
#include <stdlib.h>
#include "tollgate/cancel.h"
#include "internal.h"

struct st_tg_canceller_t {
    pthread_t tid;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    tg_cancel_job_t *head, **tail;
    int stopping;
};

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
    pthread_mutex_unlock(&c->mutex);
    return NULL;
}

tg_canceller_t *tg_canceller_start(void)
{
    tg_canceller_t *c = tg_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mutex, NULL);
    pthread_cond_init(&c->cond, NULL);
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
    pthread_mutex_unlock(&c->mutex);
    pthread_join(c->tid, NULL);
    free(c);
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

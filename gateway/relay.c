/*
 * Calls handed from one worker thread's pool to another's, and their ends handed back
 * (see tollgate/relay.h). A relayed call is one allocation: the message, the copy of
 * the call that runs in the other pool, and its parameter values.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/relay.h"
#include "internal.h"

typedef struct st_tg_relay_inbox_t {
    h2o_multithread_receiver_t receiver;
    h2o_multithread_queue_t *queue;
    tg_pool_t *pool;          /* this thread's, or NULL: read and written on this thread only */
    _Atomic int closed;       /* its thread is stopping: nothing more is sent to it */
    _Atomic int sending;      /* senders between their check of `closed` and their send */
    tg_relay_t *relay;
} tg_relay_inbox_t;

struct st_tg_relay_t {
    size_t n;
    tg_relay_inbox_t inboxes[];
};

typedef struct st_tg_relayed_t {
    h2o_multithread_message_t msg;
    tg_call_t call;           /* the copy that runs in the other thread's pool */
    tg_call_t *origin;        /* the caller's, on its own thread */
    tg_relay_inbox_t *home;   /* the origin's thread */
    tg_call_status_t status;
    int done;                 /* on its way back */
    const char *values[];     /* the copies of the values, their text after them */
} tg_relayed_t;

/* On the other thread: the copy ended; its end goes home. */
static void on_relayed_end(tg_call_t *call, tg_call_status_t status)
{
    tg_relayed_t *m = H2O_STRUCT_FROM_MEMBER(tg_relayed_t, call, call);
    m->status = status;
    m->done = 1;
    m->msg = (h2o_multithread_message_t){{NULL}};
    h2o_multithread_send_message(&m->home->receiver, &m->msg);
}

/* Back home: the origin call ends with what its copy got. */
static void come_home(tg_relay_inbox_t *inbox, tg_relayed_t *m)
{
    tg_call_t *o = m->origin;
    o->result = m->call.result;
    o->backend = m->call.backend;
    o->db_ms = m->call.db_ms;
    o->sent_ns = m->call.sent_ns;
    o->retry_after_s = m->call.retry_after_s;
    o->lsn = m->call.lsn;
    o->lsn_timeline = m->call.lsn_timeline;
    o->read_after_waited = m->call.read_after_waited;
    o->data_timeline = m->call.data_timeline;
    o->data_lsn = m->call.data_lsn;
    tg_call_status_t status = m->status;
    free(m);
    if (inbox->pool != NULL) {
        tg_pool_relay_done(inbox->pool, o, status);
    } else if (o->result != NULL) {
        /* the pool is gone (a stop past its grace): its caller is not served any more */
        PQclear(o->result);
        o->result = NULL;
    }
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tg_relay_inbox_t *inbox = H2O_STRUCT_FROM_MEMBER(tg_relay_inbox_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        tg_relayed_t *m = H2O_STRUCT_FROM_MEMBER(tg_relayed_t, msg.link, messages->next);
        h2o_linklist_unlink(&m->msg.link);
        if (m->done)
            come_home(inbox, m);
        else if (inbox->pool == NULL)
            on_relayed_end(&m->call, TG_CALL_NO_BACKEND);
        else
            tg_pool_submit(inbox->pool, &m->call);
    }
}

tg_relay_t *tg_relay_create(size_t n_threads)
{
    tg_relay_t *r = tg_calloc(1, sizeof(*r) + n_threads * sizeof(r->inboxes[0]));
    r->n = n_threads;
    for (size_t i = 0; i != n_threads; ++i)
        r->inboxes[i].relay = r;
    return r;
}

void tg_relay_attach(tg_relay_t *r, size_t thread, h2o_multithread_queue_t *queue)
{
    r->inboxes[thread].queue = queue;
    h2o_multithread_register_receiver(queue, &r->inboxes[thread].receiver, on_message);
}

void tg_relay_set_pool(tg_relay_t *r, size_t thread, tg_pool_t *pool)
{
    r->inboxes[thread].pool = pool;
}

void tg_relay_close(tg_relay_t *r, size_t thread)
{
    tg_relay_inbox_t *in = &r->inboxes[thread];
    atomic_store(&in->closed, 1);
    /* a sender that saw it open is a copy and a queue push from done: its message is in the queue after this */
    while (atomic_load(&in->sending) != 0)
        sched_yield();
}

void *tg_relay_arg(tg_relay_t *r, size_t thread)
{
    return &r->inboxes[thread];
}

int tg_relay_send(void *arg, tg_call_t *call, size_t thread)
{
    tg_relay_inbox_t *home = arg;
    tg_relay_t *r = home->relay;
    if (thread >= r->n || r->inboxes[thread].queue == NULL)
        return 0;
    tg_relay_inbox_t *to = &r->inboxes[thread];
    /* counted in before the check, out after the send: tg_relay_close waits for those who passed it */
    atomic_fetch_add(&to->sending, 1);
    if (atomic_load(&to->closed)) {
        atomic_fetch_sub(&to->sending, 1);
        return 0;
    }
    size_t n = call->query->n_params, text = 0, len[n + 1];
    for (size_t i = 0; i != n; ++i)
        text += len[i] = call->values[i] != NULL ? strlen(call->values[i]) + 1 : 0;
    tg_relayed_t *m = tg_malloc(sizeof(*m) + n * sizeof(m->values[0]) + text);
    char *p = (char *)(m->values + n);
    for (size_t i = 0; i != n; ++i) {
        m->values[i] = call->values[i] != NULL ? memcpy(p, call->values[i], len[i]) : NULL;
        p += len[i];
    }
    m->call = (tg_call_t){.query = call->query, .values = m->values, .cb = on_relayed_end, .priority = call->priority,
                          .guard_rows = call->guard_rows, .primary_only = call->primary_only, .want_lsn = call->want_lsn,
                          .read_after = call->read_after, .read_after_waited = call->read_after_waited, ._rw_until_ms = call->_rw_until_ms,
                          ._retries = call->_retries, /* a read sent again keeps its count (at most TG_READ_RETRIES, never shed) */
                          .sent_ns = call->sent_ns, ._guest = 1};
    m->origin = call;
    m->home = home;
    m->done = 0;
    m->msg = (h2o_multithread_message_t){{NULL}};
    h2o_multithread_send_message(&to->receiver, &m->msg);
    atomic_fetch_sub(&to->sending, 1);
    return 1;
}

void tg_relay_free(tg_relay_t *r)
{
    if (r == NULL)
        return;
    /* a message that never arrived (a stop past its grace) keeps the relay: h2o's queues, left to exit, still point here */
    for (size_t i = 0; i != r->n; ++i)
        if (r->inboxes[i].queue != NULL && !h2o_linklist_is_empty(&r->inboxes[i].receiver._messages))
            return;
    for (size_t i = 0; i != r->n; ++i)
        if (r->inboxes[i].queue != NULL)
            h2o_multithread_unregister_receiver(r->inboxes[i].queue, &r->inboxes[i].receiver);
    free(r);
}

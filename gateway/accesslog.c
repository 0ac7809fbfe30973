/* The access log: per-thread rings drained by a writer thread (tollgate/accesslog.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tollgate/accesslog.h"
#include "internal.h"

/* Each thread's ring (a power of two): about 4,000 lines of 250 bytes between two drains. */
#define TG_RING_BYTES (1u << 20)
/* How often the writer drains the rings. */
#define TG_WRITER_PERIOD_MS 20

typedef struct st_tg_ring_t {
    _Atomic uint64_t head;    /* bytes appended, ever (the producer's; a release store after the bytes) */
    char pad0[56];
    _Atomic uint64_t tail;    /* bytes taken, ever (the writer's) */
    char pad1[56];
    _Atomic uint64_t dropped; /* lines that did not fit (the producer's) */
    uint64_t cut;             /* the writer's: `head` when it took a file handed over, the end of what goes to the old one */
    int skipping;             /* the writer's: a write error dropped the start of a line; its rest is dropped too */
    char *buf;
} __attribute__((aligned(64))) tg_ring_t;

struct st_tg_accesslog_t {
    tg_ring_t *rings;
    size_t n_rings;
    _Atomic int on;           /* a file is open, or is being handed over */
    _Atomic uint64_t failed;  /* lines lost to write errors (the writer's) */
    _Atomic uint64_t written; /* lines written whole (the writer's) */
    int mid_line;             /* the writer's: the file's last byte is not a newline (a line goes on in the next chunk, or was cut) */
    int cut_line;             /* the writer's: a write error left the file in the middle of a line: end it first */
    pthread_t writer;
    pthread_mutex_t mutex;    /* guards what follows (the writer and the control calls only; never a worker) */
    pthread_cond_t wake, done;
    char *path;               /* the current path, or NULL */
    int fd;                   /* the writer's file (-1: none) */
    int next_fd;              /* handed over, taken at the writer's next turn; -2: none */
    int stop;
    uint64_t flush_asked, flush_done;
};

static int open_path(const char *path, char *err, size_t err_size)
{
    int fd = strcmp(path, "-") == 0 ? fcntl(1, F_DUPFD_CLOEXEC, 3) : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(err, err_size, "access_log: cannot open %s for appending: %s", strcmp(path, "-") == 0 ? "stdout" : path,
                 strerror(errno));
    return fd;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; ++q)
        ++lines;
    return lines;
}

/*
 * Writes `n` bytes of ring `r` to `fd`. Lines are never merged: after a write error
 * (a full disk) the rest of the line it cut is dropped, and a line the file was left
 * in the middle of is ended before anything else is written. Lines written whole and
 * lines lost are counted.
 */
static void write_out(tg_accesslog_t *log, tg_ring_t *r, int fd, const char *p, size_t n)
{
    if (r->skipping) {
        const char *nl = memchr(p, '\n', n);
        if (nl == NULL)
            return;
        r->skipping = 0;
        atomic_fetch_add(&log->failed, 1);
        n -= (size_t)(nl + 1 - p), p = nl + 1;
    }
    while (n != 0) {
        ssize_t w = fd < 0 ? -1 : log->cut_line ? write(fd, "\n", 1) : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            atomic_fetch_add(&log->failed, count_lines(p, n));
            r->skipping = p[n - 1] != '\n'; /* the line goes on in the next chunk */
            log->cut_line |= log->mid_line && fd >= 0;
            return;
        }
        if (log->cut_line) {
            log->cut_line = log->mid_line = 0;
            continue;
        }
        atomic_fetch_add(&log->written, count_lines(p, (size_t)w));
        log->mid_line = p[w - 1] != '\n';
        p += w, n -= (size_t)w;
    }
}

/* Writes what each ring holds (up to its cut, with `to_cut`) to `fd`. The writer's only. */
static void drain(tg_accesslog_t *log, int fd, int to_cut)
{
    for (size_t i = 0; i != log->n_rings; ++i) {
        tg_ring_t *r = &log->rings[i];
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t h = to_cut ? r->cut : atomic_load_explicit(&r->head, memory_order_acquire);
        if ((int64_t)(h - t) < 0)
            h = t; /* never behind what was written (a cut is taken by this thread, after its last drain) */
        while (t != h) {
            size_t off = (size_t)(t & (TG_RING_BYTES - 1)), n = (size_t)(h - t);
            if (n > TG_RING_BYTES - off)
                n = TG_RING_BYTES - off;
            write_out(log, r, fd, r->buf + off, n);
            t += n;
        }
        atomic_store_explicit(&r->tail, t, memory_order_release);
    }
}

static void *writer_main(void *arg)
{
    tg_accesslog_t *log = arg;
    pthread_mutex_lock(&log->mutex);
    for (;;) {
        if (!log->stop && log->next_fd == -2 && log->flush_done == log->flush_asked) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until); /* the condition waits on the monotonic clock: a clock step does not stall it */
            until.tv_nsec += TG_WRITER_PERIOD_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L)
                until.tv_sec += 1, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&log->wake, &log->mutex, &until);
        }
        int next = log->next_fd, stop = log->stop;
        uint64_t asked = log->flush_asked;
        log->next_fd = -2;
        /*
         * A file handed over: what each ring holds now goes to the old one, the rest to the
         * new. Taken here, by the only thread that moves the tails, so a cut is never behind
         * a tail; lines logged between the reopen and now go to the old file (which
         * logrotate expects: it was moved, not removed).
         */
        if (next != -2)
            for (size_t i = 0; i != log->n_rings; ++i)
                log->rings[i].cut = atomic_load_explicit(&log->rings[i].head, memory_order_acquire);
        pthread_mutex_unlock(&log->mutex);
        /* What was logged before a reopen goes to the old file, what came after to the new one. */
        if (next != -2) {
            /*
             * From off there is no old file: all goes to the new one. To off, all goes to the
             * old one, the lines of workers that saw the log on just before it went off too.
             */
            if (log->fd >= 0) {
                drain(log, log->fd, next >= 0);
                close(log->fd);
            }
            log->fd = next;
            log->mid_line = log->cut_line = 0;
            for (size_t i = 0; i != log->n_rings; ++i)
                log->rings[i].skipping = 0; /* a new file starts whole */
        }
        drain(log, log->fd, 0);
        pthread_mutex_lock(&log->mutex);
        log->flush_done = asked;
        pthread_cond_broadcast(&log->done);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&log->mutex);
    return NULL;
}

tg_accesslog_t *tg_accesslog_create(const char *path, size_t n_threads, char *err, size_t err_size)
{
    int fd = -1;
    if (path != NULL && (fd = open_path(path, err, err_size)) < 0)
        return NULL;
    tg_accesslog_t *log = tg_calloc(1, sizeof(*log));
    log->n_rings = n_threads != 0 ? n_threads : 1;
    if (posix_memalign((void **)&log->rings, 64, sizeof(*log->rings) * log->n_rings) != 0)
        tg_fatal("out of memory");
    memset(log->rings, 0, sizeof(*log->rings) * log->n_rings);
    for (size_t i = 0; i != log->n_rings; ++i)
        log->rings[i].buf = tg_malloc(TG_RING_BYTES);
    log->fd = fd;
    log->next_fd = -2;
    log->path = path != NULL ? tg_strdup(path) : NULL;
    atomic_init(&log->on, fd >= 0);
    pthread_mutex_init(&log->mutex, NULL);
    tg_cond_init_monotonic(&log->wake);
    pthread_cond_init(&log->done, NULL);
    pthread_create(&log->writer, NULL, writer_main, log);
    return log;
}

void tg_accesslog_free(tg_accesslog_t *log)
{
    if (log == NULL)
        return;
    pthread_mutex_lock(&log->mutex);
    log->stop = 1;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->mutex);
    pthread_join(log->writer, NULL);
    if (log->fd >= 0)
        close(log->fd);
    for (size_t i = 0; i != log->n_rings; ++i)
        free(log->rings[i].buf);
    free(log->rings);
    free(log->path);
    pthread_mutex_destroy(&log->mutex);
    pthread_cond_destroy(&log->wake);
    pthread_cond_destroy(&log->done);
    free(log);
}

/* Opens `path` (NULL: off) and hands it to the writer; the mutex held (workers never take it, so opening here blocks only the writer). */
static int reopen_locked(tg_accesslog_t *log, const char *path, char *err, size_t err_size)
{
    int fd = -1;
    if (path != NULL && (fd = open_path(path, err, err_size)) < 0)
        return -1;
    if (log->next_fd >= 0)
        close(log->next_fd); /* two reopens in one writer turn: the later wins */
    log->next_fd = fd;
    if (path != log->path) {
        free(log->path);
        log->path = path != NULL ? tg_strdup(path) : NULL;
    }
    /* Off: producers stop at once; on: they may start before the writer took the file (it writes their lines there). */
    atomic_store(&log->on, fd >= 0);
    pthread_cond_signal(&log->wake);
    return 0;
}

int tg_accesslog_reopen(tg_accesslog_t *log, const char *path, char *err, size_t err_size)
{
    pthread_mutex_lock(&log->mutex);
    int r = reopen_locked(log, path, err, err_size);
    pthread_mutex_unlock(&log->mutex);
    return r;
}

void tg_accesslog_rotate(tg_accesslog_t *log)
{
    char err[512];
    /* under the mutex throughout: a reload that changes the path meanwhile is not undone */
    pthread_mutex_lock(&log->mutex);
    int r = log->path != NULL ? reopen_locked(log, log->path, err, sizeof(err)) : 1;
    char *path = log->path != NULL ? tg_strdup(log->path) : NULL;
    pthread_mutex_unlock(&log->mutex);
    if (r < 0)
        tg_log(TG_LOG_ERROR, "%s; the access log goes on in the file it had", err);
    else if (r == 0)
        tg_log(TG_LOG_INFO, "access log reopened: %s", path);
    free(path);
}

int tg_accesslog_on(const tg_accesslog_t *log)
{
    return log != NULL && atomic_load_explicit(&log->on, memory_order_relaxed);
}

int tg_accesslog_write(tg_accesslog_t *log, size_t thread, const char *line, size_t len)
{
    if (!tg_accesslog_on(log))
        return -1;
    tg_ring_t *r = &log->rings[thread % log->n_rings];
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (len > TG_RING_BYTES - (size_t)(h - t)) {
        atomic_store_explicit(&r->dropped, atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1, memory_order_relaxed);
        return -1;
    }
    size_t off = (size_t)(h & (TG_RING_BYTES - 1)), first = len < TG_RING_BYTES - off ? len : TG_RING_BYTES - off;
    memcpy(r->buf + off, line, first);
    memcpy(r->buf, line + first, len - first);
    atomic_store_explicit(&r->head, h + len, memory_order_release);
    return 0;
}

uint64_t tg_accesslog_written(const tg_accesslog_t *log)
{
    return log != NULL ? atomic_load(&((tg_accesslog_t *)log)->written) : 0;
}

uint64_t tg_accesslog_dropped(const tg_accesslog_t *log)
{
    uint64_t n = 0;
    for (size_t i = 0; log != NULL && i != log->n_rings; ++i)
        n += atomic_load_explicit(&log->rings[i].dropped, memory_order_relaxed);
    return n + (log != NULL ? atomic_load(&((tg_accesslog_t *)log)->failed) : 0);
}

void tg_accesslog_flush(tg_accesslog_t *log)
{
    pthread_mutex_lock(&log->mutex);
    uint64_t target = ++log->flush_asked;
    pthread_cond_signal(&log->wake);
    while (log->flush_done < target)
        pthread_cond_wait(&log->done, &log->mutex);
    pthread_mutex_unlock(&log->mutex);
}

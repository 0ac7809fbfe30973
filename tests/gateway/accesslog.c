/* Tests of gateway/accesslog.c: lines reach the file whole and in order, reopen loses nothing, a stuck file drops. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tollgate/accesslog.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/tg-accesslog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(accesslog, .init = make_dir, .fini = remove_dir);

static char *path_of(const char *name)
{
    static char p[2][128];
    static int i;
    i ^= 1;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char *buf = malloc(1 << 24);
    *len = fread(buf, 1, (1 << 24) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void log_line(tg_accesslog_t *log, size_t thread, int n)
{
    char line[64];
    int len = snprintf(line, sizeof(line), "{\"thread\":%zu,\"n\":%d}\n", thread, n);
    cr_assert_eq(tg_accesslog_write(log, thread, line, (size_t)len), 0);
}

Test(accesslog, lines_of_every_thread_reach_the_file_whole_and_in_each_threads_order)
{
    char err[256];
    tg_accesslog_t *log = tg_accesslog_create(path_of("access.log"), 3, err, sizeof(err));
    cr_assert_not_null(log, "%s", err);
    cr_assert(tg_accesslog_on(log));
    for (int n = 0; n != 1000; ++n)
        for (size_t t = 0; t != 3; ++t)
            log_line(log, t, n);
    tg_accesslog_flush(log);
    size_t len;
    char *text = slurp(path_of("access.log"), &len);
    int next[3] = {0, 0, 0}, lines = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t t;
        int n;
        cr_assert_eq(sscanf(line, "{\"thread\":%zu,\"n\":%d}", &t, &n), 2, "a torn line: %s", line);
        cr_assert_eq(n, next[t]++, "thread %zu out of order", t);
        ++lines;
    }
    cr_assert_eq(lines, 3000);
    cr_assert_eq(tg_accesslog_written(log), 3000);
    cr_assert_eq(tg_accesslog_dropped(log), 0);
    free(text);
    tg_accesslog_free(log);
}

Test(accesslog, a_path_that_cannot_be_opened_is_refused_with_its_reason)
{
    char err[256] = "";
    cr_assert_null(tg_accesslog_create("/nonexistent-dir/access.log", 1, err, sizeof(err)));
    cr_assert(strstr(err, "/nonexistent-dir/access.log") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}

Test(accesslog, reopen_after_a_move_starts_a_new_file_and_loses_nothing)
{
    char err[256];
    char *live = path_of("access.log");
    tg_accesslog_t *log = tg_accesslog_create(live, 1, err, sizeof(err));
    cr_assert_not_null(log, "%s", err);
    for (int n = 0; n != 500; ++n)
        log_line(log, 0, n);
    /* logrotate: move, then signal; lines logged in between go to the moved file */
    char moved[128];
    snprintf(moved, sizeof(moved), "%s/access.log.1", dir);
    cr_assert_eq(rename(live, moved), 0);
    for (int n = 500; n != 700; ++n)
        log_line(log, 0, n);
    cr_assert_eq(tg_accesslog_reopen(log, live, err, sizeof(err)), 0, "%s", err);
    /* the writer takes the new file at its next turn: what was logged until then goes to the old one */
    tg_accesslog_flush(log);
    for (int n = 700; n != 1000; ++n)
        log_line(log, 0, n);
    tg_accesslog_flush(log);
    size_t len1, len2;
    char *a = slurp(moved, &len1), *b = slurp(live, &len2);
    int seen[1000] = {0}, last_old = -1, first_new = -1;
    for (char *line = strtok(a, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int n;
        cr_assert_eq(sscanf(line, "{\"thread\":0,\"n\":%d}", &n), 1);
        seen[n]++, last_old = n;
    }
    for (char *line = strtok(b, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int n;
        cr_assert_eq(sscanf(line, "{\"thread\":0,\"n\":%d}", &n), 1);
        if (first_new < 0)
            first_new = n;
        seen[n]++;
    }
    for (int n = 0; n != 1000; ++n)
        cr_assert_eq(seen[n], 1, "line %d written %d times", n, seen[n]);
    cr_assert_eq(last_old, 699, "what came before the reopen is in the old file, and only that");
    cr_assert_eq(first_new, 700);
    free(a), free(b);
    tg_accesslog_free(log);
}

#define PRODUCERS 4
#define MAX_LINES (1 << 22)

struct producer {
    tg_accesslog_t *log;
    size_t thread;
    _Atomic int *stop;
    int tried;
    unsigned char *accepted; /* [n]: the log took line n */
    int n_accepted;
};

/* Logs numbered lines until told to stop, a few at a time, as workers do between requests. */
static void *produce(void *arg)
{
    struct producer *p = arg;
    char line[64];
    for (int n = 0; !atomic_load(p->stop) && n != MAX_LINES; ++n) {
        int len = snprintf(line, sizeof(line), "{\"thread\":%zu,\"n\":%d}\n", p->thread, n);
        /* full: the test wants every line while the log is on, so it waits (a worker would drop); off: the line is not taken */
        int r;
        while ((r = tg_accesslog_write(p->log, p->thread, line, (size_t)len)) != 0 && tg_accesslog_on(p->log))
            usleep(100);
        if (r == 0)
            p->accepted[n] = 1, ++p->n_accepted;
        p->tried = n + 1;
        if (n % 16 == 0)
            usleep(20);
    }
    return NULL;
}

/*
 * Reopens while four threads log, some of them turning the log off and on again:
 * every line the log took is in exactly one file (or counted as lost), each thread's
 * lines in its order across the files, and nothing hangs.
 */
Test(accesslog, reopens_under_load_from_several_threads_lose_and_repeat_nothing, .timeout = 60)
{
    char err[256];
    tg_accesslog_t *log = tg_accesslog_create(path_of("0.log"), PRODUCERS, err, sizeof(err));
    cr_assert_not_null(log, "%s", err);
    _Atomic int stop = 0;
    struct producer p[PRODUCERS];
    pthread_t tid[PRODUCERS];
    for (size_t i = 0; i != PRODUCERS; ++i) {
        p[i] = (struct producer){log, i, &stop, 0, calloc(MAX_LINES, 1), 0};
        pthread_create(&tid[i], NULL, produce, &p[i]);
    }
    int files = 1;
    /* back to back: each reopen wakes the writer, so later ones land while it drains; every 7th turns the log off */
    for (; files != 300; ++files) {
        char name[16];
        snprintf(name, sizeof(name), "%d.log", files);
        cr_assert_eq(tg_accesslog_reopen(log, files % 7 == 0 ? NULL : path_of(name), err, sizeof(err)), 0, "%s", err);
        usleep(100 + 150 * (files % 7));
    }
    atomic_store(&stop, 1);
    for (size_t i = 0; i != PRODUCERS; ++i)
        pthread_join(tid[i], NULL);
    tg_accesslog_flush(log);
    int last[PRODUCERS], found[PRODUCERS] = {0};
    for (size_t t = 0; t != PRODUCERS; ++t)
        last[t] = -1;
    for (int f = 0; f != files; ++f) {
        char name[16];
        snprintf(name, sizeof(name), "%d.log", f);
        if (f % 7 == 0 && f != 0) {
            struct stat st;
            cr_assert_neq(stat(path_of(name), &st), 0, "an off turn makes no file");
            continue;
        }
        size_t len;
        char *text = slurp(path_of(name), &len);
        for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            size_t t;
            int n;
            cr_assert_eq(sscanf(line, "{\"thread\":%zu,\"n\":%d}", &t, &n), 2, "a torn line in %s: %s", name, line);
            cr_assert_lt(t, PRODUCERS);
            cr_assert_gt(n, last[t], "thread %zu: line %d in %s after %d", t, n, name, last[t]);
            cr_assert(p[t].accepted[n], "thread %zu: line %d was not taken, yet it is in %s", t, n, name);
            last[t] = n;
            ++found[t];
        }
        free(text);
    }
    int lost = 0;
    for (size_t t = 0; t != PRODUCERS; ++t) {
        cr_assert_gt(p[t].tried, 1000, "thread %zu logged through the reopens", t);
        cr_assert_lt(p[t].n_accepted, p[t].tried, "thread %zu: some lines came while the log was off", t);
        cr_assert_leq(found[t], p[t].n_accepted);
        lost += p[t].n_accepted - found[t];
        free(p[t].accepted);
    }
    /* a line taken by a worker that saw the log on just as it went off may miss the last drain: then it is counted */
    cr_assert_eq((uint64_t)lost, tg_accesslog_dropped(log), "%d lines missing, %llu counted", lost,
                 (unsigned long long)tg_accesslog_dropped(log));
    cr_assert_eq(tg_accesslog_written(log), (uint64_t)(found[0] + found[1] + found[2] + found[3]));
    tg_accesslog_free(log);
}

/* A full disk (here: the file size limit) loses lines, counted, and never glues two lines together. */
Test(accesslog, a_write_error_loses_counted_lines_and_never_merges_two, .timeout = 30)
{
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of the signal */
    struct rlimit small = {1000, RLIM_INFINITY}, big = {RLIM_INFINITY, RLIM_INFINITY};
    char err[256];
    tg_accesslog_t *log = tg_accesslog_create(path_of("full.log"), 1, err, sizeof(err));
    cr_assert_not_null(log, "%s", err);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    char line[80];
    for (int n = 0; n != 30; ++n) {
        int len = snprintf(line, sizeof(line), "{\"n\":%d,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n", n);
        cr_assert_eq(tg_accesslog_write(log, 0, line, (size_t)len), 0);
    }
    tg_accesslog_flush(log);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &big), 0);
    for (int n = 100; n != 110; ++n) {
        int len = snprintf(line, sizeof(line), "{\"n\":%d}\n", n);
        cr_assert_eq(tg_accesslog_write(log, 0, line, (size_t)len), 0);
    }
    tg_accesslog_flush(log);
    size_t len;
    char *text = slurp(path_of("full.log"), &len);
    int whole = 0, fragments = 0, last = -1;
    for (char *l = strtok(text, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        cr_assert(strchr(l, '{') == NULL || strchr(strchr(l, '{') + 1, '{') == NULL, "two lines glued together: %s", l);
        int n;
        if (l[strlen(l) - 1] == '}' && sscanf(l, "{\"n\":%d", &n) == 1) {
            cr_assert_gt(n, last);
            last = n, ++whole;
        } else {
            ++fragments;
        }
    }
    cr_assert_eq(last, 109, "the lines after the disk came back are all there");
    cr_assert_leq(fragments, 1, "at most the one line the error cut");
    cr_assert_gt(tg_accesslog_dropped(log), 0);
    cr_assert_eq(tg_accesslog_written(log), (uint64_t)whole);
    cr_assert_eq(tg_accesslog_written(log) + tg_accesslog_dropped(log), 40, "every line written or counted lost");
    free(text);
    tg_accesslog_free(log);
}

Test(accesslog, a_reopen_that_fails_keeps_the_old_file)
{
    char err[256];
    tg_accesslog_t *log = tg_accesslog_create(path_of("access.log"), 1, err, sizeof(err));
    cr_assert_not_null(log);
    cr_assert_eq(tg_accesslog_reopen(log, "/nonexistent-dir/x.log", err, sizeof(err)), -1);
    cr_assert(strstr(err, "/nonexistent-dir/x.log") != NULL);
    log_line(log, 0, 1);
    tg_accesslog_flush(log);
    size_t len;
    char *text = slurp(path_of("access.log"), &len);
    cr_assert_str_eq(text, "{\"thread\":0,\"n\":1}\n");
    free(text);
    tg_accesslog_free(log);
}

static void *drain_fifo(void *arg)
{
    char buf[65536];
    while (read(*(int *)arg, buf, sizeof(buf)) > 0) {
    }
    return NULL;
}

Test(accesslog, a_file_that_cannot_keep_up_drops_and_counts_lines_and_never_blocks, .timeout = 60)
{
    /* a FIFO nobody reads: the writer blocks on it once the pipe is full, as on a stuck disk */
    char *fifo = path_of("stuck");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    int reader = open(fifo, O_RDONLY | O_NONBLOCK);
    cr_assert_geq(reader, 0);
    char err[256];
    tg_accesslog_t *log = tg_accesslog_create(fifo, 1, err, sizeof(err));
    cr_assert_not_null(log, "%s", err);
    char line[1001];
    memset(line, 'x', 1000);
    line[1000] = '\n';
    int dropped = 0;
    /* 8 MB: far past the pipe's 64 KiB and the ring's 1 MiB */
    for (int i = 0; i != 8000; ++i)
        dropped += tg_accesslog_write(log, 0, line, sizeof(line)) != 0;
    cr_assert_gt(dropped, 0);
    cr_assert_eq(tg_accesslog_dropped(log), (uint64_t)dropped);
    /* drain the pipe from a thread so the writer can finish, then everything kept is written */
    int fl = fcntl(reader, F_GETFL);
    fcntl(reader, F_SETFL, fl & ~O_NONBLOCK);
    pthread_t drainer;
    pthread_create(&drainer, NULL, drain_fifo, &reader);
    tg_accesslog_free(log); /* closes the writing end: the drainer reads end-of-file */
    pthread_join(drainer, NULL);
    close(reader);
}

Test(accesslog, an_off_log_takes_no_lines_and_counts_no_drops)
{
    char err[256];
    tg_accesslog_t *log = tg_accesslog_create(NULL, 1, err, sizeof(err));
    cr_assert_not_null(log);
    cr_assert(!tg_accesslog_on(log));
    cr_assert_eq(tg_accesslog_write(log, 0, "x\n", 2), -1);
    cr_assert_eq(tg_accesslog_dropped(log), 0);
    /* turned on by a reload */
    cr_assert_eq(tg_accesslog_reopen(log, path_of("late.log"), err, sizeof(err)), 0, "%s", err);
    cr_assert(tg_accesslog_on(log));
    cr_assert_eq(tg_accesslog_write(log, 0, "x\n", 2), 0);
    tg_accesslog_flush(log);
    size_t len;
    char *text = slurp(path_of("late.log"), &len);
    cr_assert_str_eq(text, "x\n");
    free(text);
    tg_accesslog_free(log);
}

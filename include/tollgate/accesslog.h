/*
 * The access log: one line a request, written off the event loops.
 *
 * Each worker thread appends whole lines to a ring of its own (one producer, one
 * consumer: no lock, no syscall); a writer thread drains every ring to the file a few
 * times a second. A line that does not fit in its ring (the disk or the pipe cannot
 * keep up) is dropped and counted, never waited for. The file is opened with
 * O_APPEND; reopening it (SIGUSR1 after logrotate moved it, or a reload naming another
 * path) opens the new file first and hands it to the writer, which finishes writing
 * what it took into the old one and goes on in the new one: no line is lost or split
 * between them.
 */
#ifndef tollgate__accesslog_h
#define tollgate__accesslog_h

#include <stddef.h>
#include <stdint.h>

typedef struct st_tg_accesslog_t tg_accesslog_t;

/**
 * A log for `n_threads` producers, writing to `path` ("-": stdout; NULL: off until a
 * reopen names a path). NULL if the file cannot be opened for appending, with the
 * reason in `err`.
 */
tg_accesslog_t *tg_accesslog_create(const char *path, size_t n_threads, char *err, size_t err_size);

/** flushes what was logged, stops the writer and closes the file */
void tg_accesslog_free(tg_accesslog_t *log);

/**
 * Opens `path` ("-": stdout; NULL: off) and makes it the log's file once the writer
 * has written what came before: -1 (the old file stays, `err` says why) if it cannot
 * be opened. The same path opens a new file of that name (logrotate's convention).
 * Any thread but a worker (it opens a file).
 */
int tg_accesslog_reopen(tg_accesslog_t *log, const char *path, char *err, size_t err_size);

/** reopens the current path, as tg_accesslog_reopen does; errors are logged */
void tg_accesslog_rotate(tg_accesslog_t *log);

/** is a file open (are lines worth formatting)? */
int tg_accesslog_on(const tg_accesslog_t *log);

/**
 * Producer `thread` logs `line` (`len` bytes, ending in a newline): 0, or -1 when it
 * was dropped (its ring is full, or the log is off). Never blocks.
 */
int tg_accesslog_write(tg_accesslog_t *log, size_t thread, const char *line, size_t len);

/** lines written whole to a file, and lines dropped (a full ring) or lost (a write error), since the start; neither goes back */
uint64_t tg_accesslog_written(const tg_accesslog_t *log);
uint64_t tg_accesslog_dropped(const tg_accesslog_t *log);

/** waits until every line logged before the call is written (tests; not on a worker) */
void tg_accesslog_flush(tg_accesslog_t *log);

#endif

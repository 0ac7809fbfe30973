/*
 * tollgate: an SQL-over-HTTP gateway, as a library. This is the one installed header
 * (libtollgate.so exports exactly what it declares); everything under
 * include/tollgate/ is the library's own and is not installed.
 *
 * An embedding program creates a gateway from a config file or a config given as JSON
 * text (which binds its listeners), starts it on its own worker threads, reloads it,
 * stops it from any thread, and frees it:
 *
 *     char *err = NULL;
 *     tg_gateway_t *gw;
 *     if (tg_gateway_create("tollgate.json", &gw, &err) != TG_OK) { fputs(err, stderr); free(err); return 1; }
 *     tg_gateway_start(gw);                        // returns at once; tg_gateway_run(gw) blocks instead
 *     ...                                          // tg_gateway_reload(gw, NULL, &err) on SIGHUP
 *     tg_gateway_stop(gw);                         // any thread: finish the calls in flight
 *     tg_gateway_free(gw);                         // waits for them, joins every thread
 *
 * Texts the library hands back (`error`, `message`) are malloc'd: free() them. The
 * functions are C, usable from C++. tests/embed/embed.c is a complete example.
 */
#ifndef tollgate_h
#define tollgate_h

#ifdef __cplusplus
extern "C" {
#endif

/* What libtollgate.so exports: its code is built with -fvisibility=hidden, and a version script (gateway/libtollgate.lds) lists these. */
#if defined(__GNUC__)
#define TG_API __attribute__((visibility("default")))
#else
#define TG_API
#endif

#define TOLLGATE_VERSION "0.1.0"

typedef struct st_tg_gateway_t tg_gateway_t;

/** what tg_gateway_create* and tg_gateway_reload return (the values are the command line's exit codes) */
enum {
    TG_OK = 0,
    TG_ERR_CONFIG = 1, /* the config or the catalog is wrong (or a reload was refused): `error` has every reason, a line each */
    TG_ERR_START = 3,  /* a listener could not be bound, TLS or the access log could not be set up */
};

/** log levels: a record's, and the most verbose one delivered (tg_set_log_level) */
enum { TG_LOG_ERROR, TG_LOG_WARN, TG_LOG_INFO, TG_LOG_DEBUG };

/**
 * Receives each log record: its level and its text, one line (control bytes escaped,
 * no timestamp, no newline), on whatever thread logged it, possibly several at once.
 */
typedef void (*tg_log_fn)(int level, const char *message, void *data);

/** the library's version, TOLLGATE_VERSION as it was built */
TG_API const char *tg_version(void);

/**
 * Routes the log to `fn` (NULL: back to the default, a timestamped line on stderr).
 * Process-wide; set it before creating a gateway, not while one runs.
 */
TG_API void tg_set_log_handler(tg_log_fn fn, void *data);

/** the most verbose level logged (TG_LOG_INFO by default; TG_LOG_DEBUG adds a line per call) */
TG_API void tg_set_log_level(int level);

/**
 * Reads the config file at `config_path` and the catalog it names (relative paths are
 * relative to its folder), and creates a gateway, binding every listener. Returns
 * TG_OK with the gateway in `*gw`, or TG_ERR_CONFIG / TG_ERR_START with `*gw` NULL and
 * every reason in `*error` (one a line; free() it).
 */
TG_API int tg_gateway_create(const char *config_path, tg_gateway_t **gw, char **error);

/**
 * The same from the config as JSON text (NUL-terminated). `name` stands for the
 * file it would be: it names the config in messages and anchors its relative paths
 * (the catalog's); it is never read. A reload without new text parses the same text
 * again (and reads the catalog files again). Neither may be NULL (TG_ERR_CONFIG).
 */
TG_API int tg_gateway_create_json(const char *json, const char *name, tg_gateway_t **gw, char **error);

/** starts the worker threads and returns at once; the gateway serves until tg_gateway_stop. 0 */
TG_API int tg_gateway_start(tg_gateway_t *gw);

/**
 * Starts the gateway (unless tg_gateway_start did) and serves until tg_gateway_stop;
 * the calls in flight then finish (within shutdown_grace_ms) and it returns 0.
 */
TG_API int tg_gateway_run(tg_gateway_t *gw);

/**
 * Reloads the config, as SIGHUP and POST /admin/reload do: `json` NULL reads the
 * config file again (or parses the gateway's JSON text again), and the catalog;
 * otherwise `json` is the config from now on (`name` as at create). Everything is read
 * and checked on the calling thread first: if anything is wrong nothing is taken and
 * TG_ERR_CONFIG comes back with the reasons in `*message`. On TG_OK every worker
 * serves the new config from its next request (calls in flight finish on theirs), and
 * `*message` is NULL or names the settings that wait for a restart (listen, threads,
 * admin_listen, http). `message` may be NULL. Any thread, one reload at a time.
 */
TG_API int tg_gateway_reload(tg_gateway_t *gw, const char *json, char **message);

/** reopens the access log's file (after logrotate moved it) without losing a line; any thread */
TG_API void tg_gateway_reopen_logs(tg_gateway_t *gw);

/** asks the gateway to stop accepting and finish its calls; returns at once; any thread, any number of times */
TG_API void tg_gateway_stop(tg_gateway_t *gw);

/**
 * Frees the gateway. Started with tg_gateway_start, it is stopped first and waited
 * for (every thread joined); after tg_gateway_run, call it once run has returned. A
 * tg_gateway_stop under way on another thread is waited for; none may begin after.
 * NULL is a no-op. What h2o 2.2.5 cannot dispose of stays until the process exits:
 * each worker's event loop (an epoll descriptor and its message pipe), so a program
 * that makes and frees gateways many times should make one and reload it instead.
 */
TG_API void tg_gateway_free(tg_gateway_t *gw);

#ifdef __cplusplus
}
#endif

#endif

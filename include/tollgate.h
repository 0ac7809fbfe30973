/*
 * tollgate: an SQL-over-HTTP gateway, as a library. An embedding program loads a
 * config, creates a gateway (which binds its listeners), runs it on its own worker
 * threads, and stops it from any thread or a signal handler's helper thread.
 *
 *     tg_errors_t errs = {0};
 *     tg_config_t *cfg = tg_config_load("tollgate.json", &errs);
 *     tg_gateway_t *gw = tg_gateway_create(cfg, &errs);   // takes cfg
 *     tg_gateway_run(gw);                                  // until tg_gateway_stop
 *     tg_gateway_destroy(gw);
 */
#ifndef tollgate_h
#define tollgate_h

#include "tollgate/buf.h"
#include "tollgate/config.h"

#define TOLLGATE_VERSION "0.1.0"

typedef struct st_tg_gateway_t tg_gateway_t;

/**
 * Creates a gateway for `cfg` (ownership passes to the gateway) and binds every
 * listener. Returns NULL with the reasons in `errs` if a listener cannot be bound or
 * TLS cannot be set up; `cfg` is freed then too.
 */
tg_gateway_t *tg_gateway_create(tg_config_t *cfg, tg_errors_t *errs);

/**
 * Starts the worker threads and serves until tg_gateway_stop; in-flight requests
 * finish (bounded by shutdown_grace_ms) before it returns 0.
 */
int tg_gateway_run(tg_gateway_t *gw);

/**
 * Reloads the config file the gateway was made from, and the catalog it names, while
 * it runs. The files are read and checked in full on the calling thread (never a
 * worker's); if anything is wrong nothing is taken, the errors are appended to
 * `errs` (as --check prints them) and -1 is returned. Otherwise every worker serves
 * the new config from its next request on, calls in flight finish on the one they
 * started on, `*generation` gets the new generation and 0 is returned. Settings that
 * take a restart (listen, threads, admin_listen) are left as they are and named in
 * `notes`. TLS certificate files are read again. One reload runs at a time.
 */
int tg_gateway_reload(tg_gateway_t *gw, tg_errors_t *errs, tg_errors_t *notes, uint64_t *generation);

/**
 * Reopens the access log's file (SIGUSR1: logrotate moved it), writing what came
 * before into the old one. Errors are logged, and the old file stays. Any thread.
 */
void tg_gateway_reopen_logs(tg_gateway_t *gw);

/** asks a running gateway to stop accepting and finish; safe from any thread */
void tg_gateway_stop(tg_gateway_t *gw);

/** frees a gateway that is not running */
void tg_gateway_destroy(tg_gateway_t *gw);

#endif

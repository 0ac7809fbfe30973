/*
 * Helpers for tests that run their own gateway processes and stop and start the
 * databases: free ports, configs, child processes that die with the test, waiting.
 *
 * Environment: TG_GATEWAY_BIN (tollgate), TG_PG_SCRIPT (tests/pg.sh), TG_PG_DIR,
 * TG_PRIMARY_DSN, TG_REPLICA_DSN, TG_CATALOG_DIR (tests/integration/catalog, absolute).
 */
#ifndef tollgate_tests_proc_h
#define tollgate_tests_proc_h

#include <jansson.h>
#include <sys/types.h>
#include "http.h"

/** what a test gateway's config says; zero fields take the defaults shown */
typedef struct {
    json_t *listen;         /* NULL: one cleartext listener on 127.0.0.1:`port` (taken over) */
    int port;               /* 0: a free one */
    const char *primary;    /* NULL: $TG_PRIMARY_DSN */
    int with_replica;       /* add a replica: `replica`, else $TG_REPLICA_DSN */
    const char *replica;    /* the replica's connection string (with_replica) */
    int pool_size;          /* 0: 4 */
    int no_overload;        /* pool.overload false: no adaptive limit (tests of the pool's own queueing) */
    int acquire_timeout_ms; /* 0: 500 */
    int grace_ms;           /* 0: 1000 */
    int health_interval_ms; /* 0: 200 */
    int max_lag_ms;         /* 0: 1000 */
    const char *catalog;    /* NULL: $TG_CATALOG_DIR */
    int max_in_flight;      /* the gateway-wide cap; 0: none */
    double low_priority_share; /* 0: 0.5 */
    double anonymous_rate;  /* keyless callers are "anonymous": 0 means 1e6 */
    double anonymous_burst; /* 0: 1e6 */
    json_t *anonymous_queries; /* the anonymous tenant's `queries` (taken over); NULL: every query */
    int threads;            /* 0: 2 */
    int admin_port;         /* 0: no admin listener; -1: a free one (filled in) */
    const char *admin_token; /* "sha256:<hex>" of the admin token, or NULL */
    json_t *extra;          /* more config members (taken over), set last */
    const char *log_path;   /* the gateway's stdout and stderr go to this file (NULL: discarded, or shown with TG_GATEWAY_LOGS) */
} gw_opts_t;

/** $name, or the test fails */
const char *env(const char *name);
/** monotonic seconds */
double now_s(void);
/** a free TCP port on 127.0.0.1 */
int free_port(void);
/** writes `text` to the file `path` (the test fails if it cannot) */
void write_text(const char *path, const char *text);
/** writes the config (filling o->port if 0); returns its path (static buffer) */
const char *write_config(gw_opts_t *o);
/** starts a child that dies with the test process */
pid_t spawn(char *const argv[], int quiet);
/** the same, its stdout and stderr written to `path` */
pid_t spawn_logged(char *const argv[], const char *path);
/** writes the config, starts the gateway, waits for /healthz and points TG_URL at it */
pid_t start_gateway(gw_opts_t *o);
/** waits for `url`/healthz to answer 200 and sets TG_URL to `url` */
void wait_healthy_url(const char *url);
/** the value of sample `series` (name{labels} exactly as written) in a /metrics scrape, or 0 if it has none */
double metrics_sample(const char *text, const char *series);
/** polls $TG_URL/readyz until it is 200 with no backend down, for at most `timeout_s` (the test fails then) */
void wait_backends_up(double timeout_s);
/** sends SIGTERM and checks the gateway exits 0 within `timeout_s` */
void stop_gateway(pid_t pid, double timeout_s);
/** waits for a child's exit code, failing the test after `timeout_s` */
int wait_exit(pid_t pid, double timeout_s);
/** Is the answer to GET /routing/read (tests/integration/catalog/routing.json) from the replica? -1 if it failed. */
int read_hits_replica(proto_t p);
/** polls until reads land on the replica (want 1) or the primary (want 0) over both protocols, for at most `timeout_s` */
void wait_reads_on(int want, double timeout_s);

/** runs `$TG_PG_SCRIPT cmd` (stop-primary, start-replica, ...) */
void pg_script(const char *cmd);
/** runs SQL as the superuser on the primary (`replica` 0) or the replica (1); returns the first value (malloc'd) or NULL */
char *pg_sql(int replica, const char *sql);
/** pg_sql with `n` text parameters for $1..$n */
char *pg_sql_params(int replica, const char *sql, int n, const char *const *params);

#endif

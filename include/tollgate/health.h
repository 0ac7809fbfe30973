/*
 * Backend health checks and replica lag. One helper thread per backend (blocking
 * libpq, off the request path) checks it every `health_interval_ms` and publishes the
 * verdict in the backend's atomics, which every worker's pool reads when it routes.
 *
 * Lag is measured in WAL, not in commit timestamps: each round samples the primary's
 * pg_current_wal_lsn() and keeps the time each new LSN was first seen; a replica's lag
 * is how long ago the primary first reported WAL the replica has not replayed
 * (pg_last_wal_replay_lsn()). A replica that has replayed everything the primary last
 * reported has lag 0. Unlike now() - pg_last_xact_replay_timestamp(), this stays 0
 * while the primary is idle (no commits means no new timestamps, not lag) and grows in
 * real time while the replica is behind, whether or not the primary keeps writing.
 */
#ifndef tollgate__health_h
#define tollgate__health_h

#include <stddef.h>
#include <stdint.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/pool.h"

/** how many distinct primary LSNs (with the time each was first seen) are remembered */
#define TG_LSN_HISTORY 256

/** the primary's WAL position over time, oldest first in a ring */
typedef struct st_tg_lsn_history_t {
    struct {
        uint64_t at_ms; /* when this LSN was first seen */
        uint64_t lsn;
    } s[TG_LSN_HISTORY];
    size_t first; /* index of the oldest sample */
    size_t n;
} tg_lsn_history_t;

/**
 * records the primary's LSN at `at_ms`; a repeated one adds nothing, and an older one
 * (another server: a promoted standby) starts the history afresh
 */
void tg_lsn_history_add(tg_lsn_history_t *h, uint64_t at_ms, uint64_t lsn);

/**
 * The lag of a replica that has replayed up to `replay_lsn`, at `now_ms`: 0 if it has
 * replayed the newest LSN seen, else now minus when the primary first reported an LSN
 * beyond it (at least the age of the oldest sample when the history has rolled over).
 */
uint64_t tg_lsn_lag_ms(const tg_lsn_history_t *h, uint64_t replay_lsn, uint64_t now_ms);

/** a replica's lag_ms when it is not known: it never answered */
#define TG_LAG_UNKNOWN (-1)
/**
 * a replica's lag_ms when it answers but is not in recovery (promoted, or never a
 * replica): its data may not be the primary's, so reads go to it only as a last
 * resort, while neither a thread nor the health checker can reach the primary (a
 * failover in progress)
 */
#define TG_LAG_NOT_IN_RECOVERY (-3)
/**
 * a replica's lag_ms while the primary cannot be checked (unreachable at start, or
 * down): it cannot be compared, and the replica stays usable while it answers its
 * checks in recovery. A primary outage must not take reads down with it.
 */
#define TG_LAG_UNCOMPARED (-2)

typedef struct st_tg_health_t tg_health_t;

/** a health checker with no backends yet, checking every `interval_ms` */
tg_health_t *tg_health_create(int interval_ms);

/** from the next round on, checks every `interval_ms` (a reload) */
void tg_health_set_interval(tg_health_t *h, int interval_ms);

/**
 * Starts a checker thread for `b` (which must outlive its checker). A primary's first
 * check runs before this returns, and lag is measured against its WAL from then on.
 */
void tg_health_add(tg_health_t *h, tg_backend_t *b);

/** early rounds of the replicas' checks are at least this far apart, however often they are asked for */
#define TG_HEALTH_REFRESH_MS 5

/**
 * Asks every replica's checker for a round now rather than at its next interval: a read
 * waits for a replica to replay past its token (read-your-writes), and the positions
 * known are up to an interval old. Merged: a call within TG_HEALTH_REFRESH_MS of the
 * last one that asked does nothing, so no number of such reads (forged tokens from the
 * future among them) costs the replicas more than one check per TG_HEALTH_REFRESH_MS.
 * Never blocks on a check; safe from any thread.
 */
void tg_health_refresh(tg_health_t *h);

/**
 * Backend `b`'s WAL position by its last check that read one (tg_backend_t.wal_timeline):
 * `*timeline` 0 when it is not known (never read, a replica promoted or without a WAL
 * receiver, or a change of timeline seen half-way).
 */
void tg_health_position(const tg_backend_t *b, uint32_t *timeline, uint64_t *lsn);

/** tells `b`'s checker to stop (it left the config) without waiting for it: tg_health_reap joins it */
void tg_health_remove(tg_health_t *h, const tg_backend_t *b);

/** joins the checkers tg_health_remove stopped (each within one check's timeout) */
void tg_health_reap(tg_health_t *h);

/** stops and joins every checker thread, and frees `h` */
void tg_health_stop(tg_health_t *h);

/** how long a check's query may take: whole seconds, more than one interval */
int tg_health_check_timeout_ms(int interval_ms);

/** how long a checker's connect may take: as the query, and at least 2 s (libpq's own floor for connect_timeout) */
int tg_health_connect_timeout_ms(int interval_ms);

/**
 * After how long without a passing check a backend has stopped answering, for sure: a
 * round may lose its session, connect again and run its query, each within its
 * timeout, and rounds are an interval apart; plus 250 ms of slack. 5.25 s at the
 * default interval of 1 s, 3.45 s at 200 ms.
 */
int tg_health_silent_ms(int interval_ms);

/**
 * Is backend `b` up by a recent check? Up by its last check, and that check less than
 * 3 intervals + 1 s old: a hung server stops answering checks and must not look up.
 */
int tg_health_backend_up(const tg_backend_t *b, uint64_t now_ms, int interval_ms);

/**
 * May reads go to replica `b` now? It must be up by its last check, that check must be
 * recent (a hung server stops answering checks), and its lag within `max_lag_ms`, or
 * not comparable because the primary cannot be checked (TG_LAG_UNCOMPARED).
 */
int tg_health_replica_usable(const tg_backend_t *b, uint64_t now_ms, int interval_ms, int max_lag_ms);

/** May replica `b` take reads as a last resort (see TG_LAG_NOT_IN_RECOVERY)? Up by a recent check, not in recovery. */
int tg_health_replica_last_resort(const tg_backend_t *b, uint64_t now_ms, int interval_ms);

/**
 * Appends `"lag_ms":N,"lag":"..."` for backend `b` to a JSON object being written:
 * lag_ms null and lag "primary-unreachable" while it cannot be compared,
 * "not-in-recovery" for a replica that was promoted, "unknown" when it is not known,
 * "measured" otherwise (a primary: null, "none").
 */
void tg_health_format_lag(tg_buf_t *out, const tg_backend_t *b);

/**
 * Appends `"wal":{"timeline":N,"lsn":"X/Y"}` for backend `b` (tg_health_position: a
 * primary's current position, a replica's replay position, in pg_lsn's form), or
 * `"wal":null` while it is not known.
 */
void tg_health_format_position(tg_buf_t *out, const tg_backend_t *b);

#endif

/*
 * Read-your-writes: the read-after token, PostgreSQL's text forms of a WAL position and
 * of a timeline, and the two decisions a read with a token needs (where it may go, and
 * whether a cached entry may answer it). Pure: no clock, no libpq, no state; the
 * health checker, the pool and the handlers feed it what they know. Not wired yet.
 *
 * The token. A write's response names the primary's WAL position after the write
 * committed, and the primary's timeline then: (timeline, lsn). A WAL position alone is
 * not enough across a failover: a promoted standby starts a new timeline from where it
 * had replayed, and its positions go on from there, so the same number can name WAL
 * the old primary wrote and the new one never saw. The pair names one point of one
 * history, which is why it is valid on every instance in front of the same primary and
 * across restarts (nothing in it is local to an instance).
 *
 * - Text: "<timeline>.<lsn>", both in upper-case hexadecimal without leading zeros,
 *   e.g. "1.16B374D848" (timeline 1, pg_lsn 16/B374D848). Only [0-9A-F.]: safe as a
 *   header value, in a URL query or path segment and in a cookie without escaping.
 *   The LSN is one 64-bit number, not pg_lsn's "X/X", so it does not look like
 *   something to hand to PostgreSQL, and '/' stays out of URLs. At most 8 + 1 + 16 =
 *   25 characters.
 * - Parsing is strict so that a token has exactly one spelling (it can be compared,
 *   logged and used in a cache key as it is): no lower case, no leading zeros (but
 *   "0" for a zero LSN), no sign, no spaces, nothing before or after, no more digits
 *   than the field holds, and timeline 0 is refused (PostgreSQL's timelines start at
 *   1; 0 is this module's "unknown"). Anything else is malformed: the handler answers
 *   400 naming the header. A different format later can be told apart by a first
 *   character outside [0-9A-F].
 *
 * Where a read with a token goes (tg_rw_route):
 * - Only a token of the primary's current timeline can be satisfied by a replica. A
 *   token of another timeline (older: written before a failover; newer: from a primary
 *   this instance has not seen promoted yet) goes to the primary: whether the write
 *   survived the failover depends on where the timelines forked, which the positions
 *   alone do not say, and a replica must never serve data that lost the write as if it
 *   had it. The primary is then the best answer there is. An unknown primary timeline
 *   (0: not checked yet) sends every token read to the primary, for the same reason.
 * - A replica qualifies when it is usable (up, within the lag bound) and its last known
 *   replay position is on the token's timeline and at or past the token's LSN.
 *   Replay positions only grow on a timeline, so a position the health checker read
 *   some time ago is a lower bound of where the replica is now: a replica that
 *   qualified still does.
 * - No replica qualifies, but a usable one is on the token's timeline, behind it: the
 *   read may wait (up to read_after_wait_ms) for it to replay further. A replica of
 *   unknown position (timeline 0) or on another timeline is no reason to wait.
 * - Otherwise the primary.
 *
 * A cached entry (tg_rw_entry_fresh) answers a read with a token only if it was read
 * at or after the token on the token's timeline: the entry must record the position
 * its data includes, i.e. one known before its query ran (the replica's last known
 * replay position when the query was sent to it, or the primary's position before its
 * query), never one taken after.
 */
#ifndef tollgate__consistency_h
#define tollgate__consistency_h

#include <stddef.h>
#include <stdint.h>

/** a point of one WAL history: `lsn` on timeline `timeline` (never 0 in a valid token) */
typedef struct st_tg_rw_token_t {
    uint32_t timeline;
    uint64_t lsn;
} tg_rw_token_t;

/** the longest token text, without its NUL */
#define TG_RW_TOKEN_MAX 25
/** what tg_rw_token_parse reads at most: longer input is malformed without a look */
#define TG_RW_TOKEN_INPUT_MAX 64

/**
 * writes the token's text and a NUL into `buf` (TG_RW_TOKEN_MAX + 1 bytes); returns its
 * length, or 0 (and writes "") for timeline 0, which no token may carry
 */
size_t tg_rw_token_format(const tg_rw_token_t *t, char *buf);

/** parses a token's text (`len` bytes, no NUL needed), strictly (see above); returns 0 or -1 */
int tg_rw_token_parse(const char *s, size_t len, tg_rw_token_t *out);

/**
 * parses PostgreSQL's pg_lsn text "X/Y" (NUL-terminated): each part 1 to 8 hexadecimal
 * digits, either case, nothing else (what pg_lsn's input function accepts, less its
 * leading and trailing spaces, which the server's output never has); returns 0 or -1.
 * A NULL column's "" and NULL itself are -1.
 */
int tg_pg_lsn_parse(const char *s, uint64_t *out);

/**
 * the timeline of a WAL file name as pg_walfile_name() returns it (NUL-terminated): 24
 * upper-case hexadecimal digits, the first 8 the timeline; 0 or -1 (also for timeline 0)
 */
int tg_pg_walfile_timeline(const char *name, uint32_t *tl);

/** what the health checker last knew of a replica, as tg_rw_route reads it */
typedef struct st_tg_rw_replica_t {
    uint32_t timeline;   /* of its replay position; 0: position unknown */
    uint64_t replay_lsn; /* pg_last_wal_replay_lsn() */
    int usable;          /* up, and within replica_max_lag_ms: a read without a token could go there */
} tg_rw_replica_t;

typedef enum en_tg_rw_route_t {
    TG_RW_REPLICA, /* the replicas in the mask have the write */
    TG_RW_WAIT,    /* none yet; a usable replica on the token's timeline may catch up */
    TG_RW_PRIMARY, /* only the primary can answer */
} tg_rw_route_t;

/** replicas beyond this many are never chosen for a token read (the mask's width) */
#define TG_RW_MAX_REPLICAS 64

/**
 * Where a read carrying `t` may go now, given the primary's current timeline
 * (`primary_tl`, 0: unknown) and the `n` replicas' last known positions. Sets
 * `*qualifying_mask` to the replicas (bit i: r[i]) that have the write: non-zero exactly
 * when the answer is TG_RW_REPLICA.
 */
tg_rw_route_t tg_rw_route(const tg_rw_token_t *t, uint32_t primary_tl, const tg_rw_replica_t *r, size_t n, uint64_t *qualifying_mask);

/** 1 if data read at (entry_tl, entry_lsn) includes the token's write, else 0 */
int tg_rw_entry_fresh(const tg_rw_token_t *t, uint32_t entry_tl, uint64_t entry_lsn);

#endif

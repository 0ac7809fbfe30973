/*
 * shared_limits: tenant buckets global across every instance naming the same Redis,
 * and operator switches that reach all of them.
 *
 * One helper thread per gateway talks to Redis (hiredis, synchronous, every connect
 * and command bounded by timeout_ms); no worker ever does. The thread
 * - leases tokens from each tenant's global bucket into the tenant's local balance
 *   (tollgate/lease.h), ahead of need, and gives back what is not spent; the bucket
 *   arithmetic runs in Redis, in one Lua script, on Redis's own clock;
 * - every tick (health_interval_ms / 4, at most 250 ms) registers the instance in a
 *   sorted set of live instances, counts them, and reads the switches' version; when
 *   it moved, reads the switches and applies them to the live state;
 * - publishes the switches an operator sets through this instance's admin API;
 * - publishes in `tg_lease_health_t` whether leases are spent: when a round trip fails,
 *   or none succeeded for a health interval, every call limits its tenant locally at
 *   rate / N, burst / N (N: the live instances it last saw, else expected_instances)
 *   until Redis answers again.
 *
 * Keys (PREFIX is shared_limits.prefix): PREFIX "bucket:" TENANT (a hash: tokens, at),
 * PREFIX "instances" (a sorted set: instance id by last tick, Redis time in ms),
 * PREFIX "switches" (a hash: "query:NAME" or "tenant:NAME" -> "off RETRY_AFTER REASON"
 * or "on"), PREFIX "switches:version" (a counter bumped by every change).
 */
#ifndef tollgate__shared_h
#define tollgate__shared_h

#include <stdint.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/lease.h"
#include "tollgate/state.h"

typedef struct st_tg_shared_t tg_shared_t;

/** the service for the tenants and queries of `state`; its thread starts at once and idles until configured */
tg_shared_t *tg_shared_create(tg_state_t *state);

/**
 * Takes the settings (copied; NULL: shared_limits is null). A change of Redis, prefix
 * or timeouts reconnects; NULL gives every lease back and leaves. Any thread.
 */
void tg_shared_configure(tg_shared_t *sh, const tg_shared_limits_t *settings);

/** what a snapshot's limits read on every call (tg_limits_share) */
const tg_lease_health_t *tg_shared_health(tg_shared_t *sh);

/**
 * An operator's switch set through this instance: written to Redis for every other
 * instance, kept until Redis takes it. Call it before applying the switch here, so
 * that the lease thread, which applies Redis's view only while nothing set here waits,
 * can never undo it with a view read before. Any thread. With several instances cut
 * off from Redis, the last switch to reach Redis wins.
 */
void tg_shared_publish_switch(tg_shared_t *sh, int query, const char *name, tg_switch_t sw, int retry_after_s, const char *reason);

/**
 * The live state was bound again (a reload, before its snapshot is published): the
 * switches Redis had when last read are applied at once, on the calling thread, and
 * read again from Redis by the lease thread.
 */
void tg_shared_resync(tg_shared_t *sh);

/** appends the `shared_limits` member's value of /admin/status: null, or an object */
void tg_shared_status(tg_shared_t *sh, tg_buf_t *out);

typedef struct st_tg_shared_counters_t {
    int configured;      /* shared_limits is set */
    int up;              /* leases are spent (Redis answers) */
    uint32_t instances;  /* live instances last seen (0: never reached) */
    uint64_t fallbacks;  /* times it went to local limits */
    uint64_t commands;   /* commands sent to Redis */
    uint64_t leased;     /* tokens taken from global buckets */
    uint64_t returned;   /* tokens given back */
} tg_shared_counters_t;

void tg_shared_counters(tg_shared_t *sh, tg_shared_counters_t *out);

/** stops the thread (giving every lease back and leaving, within timeout_ms each) and frees */
void tg_shared_free(tg_shared_t *sh);

/*
 * The switch values kept in Redis (exposed for the tests): "off RETRY_AFTER REASON"
 * or "on". parse returns 0, or -1 for anything else.
 */
void tg_shared_format_switch(tg_buf_t *out, tg_switch_t sw, int retry_after_s, const char *reason);
int tg_shared_parse_switch(const char *value, size_t len, tg_switch_t *sw, int *retry_after_s, const char **reason, size_t *reason_len);

#endif

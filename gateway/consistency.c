/*
 * Read-your-writes' building blocks (tollgate/consistency.h): the token's text, the
 * pg_lsn and WAL file name texts PostgreSQL gives, and where a read with a token may
 * go. Pure: no clock, no libpq.
 */
#include <stdio.h>
#include <string.h>
#include "tollgate/consistency.h"

#define HEX_UPPER 1 /* only 0-9 A-F (else a-f too) */
#define HEX_CANON 2 /* no leading zero (but "0") */

static int hex_value(char c, int flags)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (!(flags & HEX_UPPER) && c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * `len` hex digits at `s`, at most `max_digits` of them: the digit count is the
 * overflow check (8 digits fill 32 bits, 16 fill 64), so no arithmetic can wrap.
 */
static int parse_hex(const char *s, size_t len, size_t max_digits, int flags, uint64_t *out)
{
    if (len == 0 || len > max_digits)
        return -1;
    if ((flags & HEX_CANON) && len > 1 && s[0] == '0')
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i != len; ++i) {
        int d = hex_value(s[i], flags);
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

size_t tg_rw_token_format(const tg_rw_token_t *t, char *buf)
{
    if (t->timeline == 0) {
        buf[0] = '\0';
        return 0;
    }
    int n = snprintf(buf, TG_RW_TOKEN_MAX + 1, "%X.%llX", (unsigned)t->timeline, (unsigned long long)t->lsn);
    return n < 0 ? 0 : (size_t)n;
}

int tg_rw_token_parse(const char *s, size_t len, tg_rw_token_t *out)
{
    if (s == NULL || len == 0 || len > TG_RW_TOKEN_INPUT_MAX)
        return -1;
    /* a NUL inside is not the end: memchr finds the separator within `len` only */
    const char *dot = memchr(s, '.', len);
    if (dot == NULL)
        return -1;
    size_t tl_len = (size_t)(dot - s), lsn_len = len - tl_len - 1;
    uint64_t tl, lsn;
    if (parse_hex(s, tl_len, 8, HEX_UPPER | HEX_CANON, &tl) != 0 || tl == 0 ||
        parse_hex(dot + 1, lsn_len, 16, HEX_UPPER | HEX_CANON, &lsn) != 0)
        return -1;
    *out = (tg_rw_token_t){.timeline = (uint32_t)tl, .lsn = lsn};
    return 0;
}

int tg_pg_lsn_parse(const char *s, uint64_t *out)
{
    if (s == NULL)
        return -1;
    const char *slash = strchr(s, '/');
    if (slash == NULL)
        return -1;
    uint64_t hi, lo;
    if (parse_hex(s, (size_t)(slash - s), 8, 0, &hi) != 0 || parse_hex(slash + 1, strlen(slash + 1), 8, 0, &lo) != 0)
        return -1;
    *out = hi << 32 | lo;
    return 0;
}

int tg_pg_walfile_timeline(const char *name, uint32_t *tl)
{
    /* TTTTTTTTXXXXXXXXYYYYYYYY, as PostgreSQL's IsXLogFileName checks it: upper case only */
    uint64_t v, rest;
    if (name == NULL || strlen(name) != 24 || parse_hex(name, 8, 8, HEX_UPPER, &v) != 0 || parse_hex(name + 8, 16, 16, HEX_UPPER, &rest) != 0 ||
        v == 0)
        return -1;
    *tl = (uint32_t)v;
    return 0;
}

tg_rw_route_t tg_rw_route(const tg_rw_token_t *t, uint32_t primary_tl, const tg_rw_replica_t *r, size_t n, uint64_t *qualifying_mask)
{
    *qualifying_mask = 0;
    /* another timeline's token, or no way to tell: only the primary may answer (see the header) */
    if (t->timeline == 0 || primary_tl == 0 || t->timeline != primary_tl)
        return TG_RW_PRIMARY;
    if (n > TG_RW_MAX_REPLICAS)
        n = TG_RW_MAX_REPLICAS;
    int behind = 0;
    for (size_t i = 0; i != n; ++i) {
        if (!r[i].usable || r[i].timeline != t->timeline)
            continue; /* unknown position (0) or another history: neither has it nor will surely get it */
        if (r[i].replay_lsn >= t->lsn)
            *qualifying_mask |= 1ull << i;
        else
            behind = 1;
    }
    if (*qualifying_mask != 0)
        return TG_RW_REPLICA;
    return behind ? TG_RW_WAIT : TG_RW_PRIMARY;
}

int tg_rw_entry_fresh(const tg_rw_token_t *t, uint32_t entry_tl, uint64_t entry_lsn)
{
    return t->timeline != 0 && entry_tl == t->timeline && entry_lsn >= t->lsn;
}

/*
 * Tests of gateway/consistency.c: the read-after token's text (round trips over many
 * values, and random strings against a regular expression of the grammar, so that the
 * parser accepts exactly one spelling per token), pg_lsn and WAL file name texts, where
 * a read with a token goes (every branch, a failover, unknown positions), and when a
 * cached entry may answer it.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/consistency.h"

/* splitmix64: a fixed sequence, so a failure replays */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int parse_str(const char *s, tg_rw_token_t *t)
{
    return tg_rw_token_parse(s, strlen(s), t);
}

static void round_trip(uint32_t tl, uint64_t lsn)
{
    tg_rw_token_t t = {tl, lsn}, back = {0};
    char buf[TG_RW_TOKEN_MAX + 1];
    size_t len = tg_rw_token_format(&t, buf);
    cr_assert_gt(len, 0);
    cr_assert_leq(len, TG_RW_TOKEN_MAX);
    cr_assert_eq(strlen(buf), len);
    cr_assert_eq(tg_rw_token_parse(buf, len, &back), 0, "%s", buf);
    cr_assert(back.timeline == tl && back.lsn == lsn, "%s: %u %llu", buf, back.timeline, (unsigned long long)back.lsn);
}

Test(token, format)
{
    char buf[TG_RW_TOKEN_MAX + 1];
    tg_rw_token_t t = {1, 0x16B374D848ull};
    cr_assert_eq(tg_rw_token_format(&t, buf), 12);
    cr_assert_str_eq(buf, "1.16B374D848");
    t = (tg_rw_token_t){1, 0};
    tg_rw_token_format(&t, buf);
    cr_assert_str_eq(buf, "1.0");
    t = (tg_rw_token_t){UINT32_MAX, UINT64_MAX};
    cr_assert_eq(tg_rw_token_format(&t, buf), TG_RW_TOKEN_MAX, "the longest token fits the buffer exactly");
    cr_assert_str_eq(buf, "FFFFFFFF.FFFFFFFFFFFFFFFF");
    /* no valid token has timeline 0: the formatter makes none */
    t = (tg_rw_token_t){0, 5};
    strcpy(buf, "junk");
    cr_assert_eq(tg_rw_token_format(&t, buf), 0);
    cr_assert_str_eq(buf, "");
}

Test(token, round_trips)
{
    uint32_t tls[] = {1, 2, 0xF, 0x10, 0x7FFFFFFF, UINT32_MAX - 1, UINT32_MAX};
    uint64_t lsns[] = {0, 1, 0xF, 0x10, 0xFFFFFFFFull, 0x100000000ull, 0x16B374D848ull, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i != sizeof(tls) / sizeof(tls[0]); ++i)
        for (size_t j = 0; j != sizeof(lsns) / sizeof(lsns[0]); ++j)
            round_trip(tls[i], lsns[j]);
    /* every bit length, so every digit count of both fields */
    for (int b = 0; b != 64; ++b) {
        round_trip(1, 1ull << b);
        round_trip(1, (1ull << b) - 1);
        if (b < 32)
            round_trip((uint32_t)1 << b, UINT64_MAX >> b);
    }
    uint64_t state = 42;
    for (int k = 0; k != 100000; ++k) {
        uint64_t a = next_random(&state), lsn = next_random(&state) >> (next_random(&state) % 64);
        uint32_t tl = (uint32_t)(a >> (a % 32));
        if (tl == 0)
            tl = 1;
        round_trip(tl, lsn);
    }
}

Test(token, malformed)
{
    tg_rw_token_t t = {7, 7};
    const char *bad[] = {
        "",                           /* empty */
        ".",                          /* no parts */
        "1",                          /* no LSN */
        "1.",                         /* empty LSN */
        ".16B3",                      /* empty timeline */
        "0.16B3",                     /* timeline 0 */
        "01.16B3",                    /* leading zero (timeline) */
        "1.016B3",                    /* leading zero (LSN) */
        "1.00",                       /* two zeros */
        "1.16b3",                     /* lower case */
        "a.1",                        /* lower case (timeline) */
        " 1.16B3",                    /* spaces */
        "1.16B3 ",
        "1 .16B3",
        "1. 16B3",
        "+1.16B3",                    /* sign */
        "1.-1",
        "0x1.16B3",                   /* prefix */
        "1.16B3x",                    /* trailing garbage */
        "1.16B3.",                    /* a third part */
        "1.2.3",
        "1/16B3",                     /* pg_lsn's separator */
        "1-16B3",
        "100000000.1",                /* timeline over 32 bits */
        "1.10000000000000000",        /* LSN over 64 bits */
        "1.FFFFFFFFFFFFFFFFF",
        "G.1",                        /* not hex */
        "1.16B3G",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        cr_assert_eq(parse_str(bad[i], &t), -1, "accepted \"%s\"", bad[i]);
        cr_assert(t.timeline == 7 && t.lsn == 7, "\"%s\" changed the output", bad[i]);
    }
    cr_assert_eq(tg_rw_token_parse(NULL, 3, &t), -1);
    /* a NUL inside the given length is not an end */
    cr_assert_eq(tg_rw_token_parse("1.5\0" "0", 5, &t), -1);
    cr_assert_eq(tg_rw_token_parse("1\0.5", 4, &t), -1);
    /* only `len` bytes are read: what follows does not matter */
    cr_assert_eq(tg_rw_token_parse("1.5junk", 3, &t), 0);
    cr_assert(t.timeline == 1 && t.lsn == 5);
    /* input over the cap is refused (its digits would be too, but the cap bounds what is read at all) */
    char long_input[TG_RW_TOKEN_INPUT_MAX + 2];
    memset(long_input, '1', sizeof(long_input) - 1);
    long_input[sizeof(long_input) - 1] = '\0';
    long_input[1] = '.';
    cr_assert_eq(tg_rw_token_parse(long_input, TG_RW_TOKEN_INPUT_MAX + 1, &t), -1);
}

/*
 * Random strings over the token's alphabet and its near misses, against the grammar
 * written as a regular expression: the parser accepts exactly what it accepts, with
 * the value the digits say, and formatting the result gives the same text back (one
 * spelling per token).
 */
Test(token, matches_the_grammar)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, "^[1-9A-F][0-9A-F]{0,7}\\.(0|[1-9A-F][0-9A-F]{0,15})$", REG_EXTENDED | REG_NOSUB), 0);
    const char alphabet[] = "0123456789ABCDEF0000FFFF1....af /-xG";
    uint64_t state = 7;
    int accepted = 0;
    for (int k = 0; k != 200000; ++k) {
        char s[32];
        size_t len = next_random(&state) % 28;
        for (size_t i = 0; i != len; ++i)
            s[i] = alphabet[next_random(&state) % (sizeof(alphabet) - 1)];
        /* bias towards one dot, the shape that is hardest to get right */
        if (len > 2 && next_random(&state) % 2 == 0) {
            for (size_t i = 0; i != len; ++i)
                if (s[i] == '.')
                    s[i] = 'A';
            s[next_random(&state) % len] = '.';
        }
        s[len] = '\0';
        tg_rw_token_t t;
        int ok = tg_rw_token_parse(s, len, &t) == 0;
        int want = regexec(&re, s, 0, NULL, 0) == 0;
        cr_assert_eq(ok, want, "\"%s\": parser says %d, grammar %d", s, ok, want);
        if (!ok)
            continue;
        ++accepted;
        char *dot = strchr(s, '.');
        cr_assert_eq(t.timeline, (uint32_t)strtoul(s, NULL, 16), "%s", s);
        cr_assert_eq(t.lsn, (uint64_t)strtoull(dot + 1, NULL, 16), "%s", s);
        char buf[TG_RW_TOKEN_MAX + 1];
        tg_rw_token_format(&t, buf);
        cr_assert_str_eq(buf, s);
    }
    regfree(&re);
    cr_assert_gt(accepted, 1000, "the strings reached the accepting side often enough to mean something (%d)", accepted);
}

Test(pg_lsn, parse)
{
    uint64_t v = 0;
    cr_assert_eq(tg_pg_lsn_parse("0/3000060", &v), 0);
    cr_assert_eq(v, 0x3000060);
    cr_assert_eq(tg_pg_lsn_parse("16/B374D848", &v), 0);
    cr_assert_eq(v, (0x16ull << 32) | 0xB374D848);
    cr_assert_eq(tg_pg_lsn_parse("0/0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(tg_pg_lsn_parse("FFFFFFFF/FFFFFFFF", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    /* pg_lsn's input accepts either case and leading zeros: so does this */
    cr_assert_eq(tg_pg_lsn_parse("16/b374d848", &v), 0);
    cr_assert_eq(v, (0x16ull << 32) | 0xB374D848);
    cr_assert_eq(tg_pg_lsn_parse("00000016/0000000A", &v), 0);
    cr_assert_eq(v, (0x16ull << 32) | 0xA);
}

Test(pg_lsn, malformed)
{
    uint64_t v = 99;
    const char *bad[] = {
        "", "nope", "/", "1/", "/1", "1", "1/2x", "1/2/3", " 1/2", "1/2 ", "1 /2", "1/ 2", "+1/2", "1/-2", "0x1/2", "1/0x2",
        "100000000/0", /* 9 digits: over 32 bits */
        "0/100000000", "1.2", "G/1",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        cr_assert_eq(tg_pg_lsn_parse(bad[i], &v), -1, "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 99, "\"%s\" changed the output", bad[i]);
    }
    cr_assert_eq(tg_pg_lsn_parse(NULL, &v), -1);
}

Test(pg_lsn, round_trips_the_server_form)
{
    uint64_t state = 3;
    for (int k = 0; k != 100000; ++k) {
        uint64_t lsn = next_random(&state) >> (next_random(&state) % 64), v;
        char s[24];
        snprintf(s, sizeof(s), "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn); /* pg_lsn_out's format */
        cr_assert_eq(tg_pg_lsn_parse(s, &v), 0, "%s", s);
        cr_assert_eq(v, lsn, "%s", s);
    }
}

Test(walfile, timeline)
{
    uint32_t tl = 0;
    cr_assert_eq(tg_pg_walfile_timeline("000000010000000000000003", &tl), 0);
    cr_assert_eq(tl, 1);
    cr_assert_eq(tg_pg_walfile_timeline("0000002A00000016000000B3", &tl), 0);
    cr_assert_eq(tl, 0x2A);
    cr_assert_eq(tg_pg_walfile_timeline("FFFFFFFFFFFFFFFFFFFFFFFF", &tl), 0);
    cr_assert_eq(tl, UINT32_MAX);
    tl = 5;
    const char *bad[] = {
        "",
        "00000001000000000000000",   /* 23 digits */
        "0000000100000000000000030", /* 25 */
        "000000000000000000000003",  /* timeline 0 */
        "0000000a0000000000000003",  /* lower case (PostgreSQL never names a file so) */
        "00000001000000000000000b",
        "00000001000000000000000G",
        " 00000001000000000000003",
        "00000001000000000000003 ",
        "000000010000000000000003.partial",
        "00000001.history",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        cr_assert_eq(tg_pg_walfile_timeline(bad[i], &tl), -1, "accepted \"%s\"", bad[i]);
        cr_assert_eq(tl, 5);
    }
    cr_assert_eq(tg_pg_walfile_timeline(NULL, &tl), -1);
}

static tg_rw_replica_t up(uint32_t tl, uint64_t lsn)
{
    return (tg_rw_replica_t){.timeline = tl, .replay_lsn = lsn, .usable = 1};
}

Test(route, replicas_past_the_token_qualify)
{
    tg_rw_token_t t = {3, 1000};
    tg_rw_replica_t r[] = {up(3, 999), up(3, 1000), up(3, 5000), {.timeline = 3, .replay_lsn = 9000, .usable = 0}};
    uint64_t mask = 99;
    cr_assert_eq(tg_rw_route(&t, 3, r, 4, &mask), TG_RW_REPLICA);
    cr_assert_eq(mask, 0x6, "at the token (==) and past it; not behind it, not an unusable one however far on");
}

Test(route, behind_on_the_same_timeline_waits)
{
    tg_rw_token_t t = {3, 1000};
    tg_rw_replica_t r[] = {up(3, 10), up(0, 0), up(2, 5000)};
    uint64_t mask = 99;
    cr_assert_eq(tg_rw_route(&t, 3, r, 3, &mask), TG_RW_WAIT);
    cr_assert_eq(mask, 0);
    /* the token ahead of every replica, all on its timeline */
    tg_rw_replica_t all[] = {up(3, 1), up(3, 500), up(3, 999)};
    cr_assert_eq(tg_rw_route(&t, 3, all, 3, &mask), TG_RW_WAIT);
    cr_assert_eq(mask, 0);
}

Test(route, nothing_to_wait_for_goes_to_the_primary)
{
    tg_rw_token_t t = {3, 1000};
    uint64_t mask = 99;
    /* no replicas */
    cr_assert_eq(tg_rw_route(&t, 3, NULL, 0, &mask), TG_RW_PRIMARY);
    cr_assert_eq(mask, 0);
    /* behind, but not usable (down, or lagging past replica_max_lag_ms) */
    tg_rw_replica_t down[] = {{.timeline = 3, .replay_lsn = 999, .usable = 0}};
    cr_assert_eq(tg_rw_route(&t, 3, down, 1, &mask), TG_RW_PRIMARY);
    /* positions unknown: the health checker has not read them */
    tg_rw_replica_t unknown[] = {up(0, 0), up(0, 5000)};
    cr_assert_eq(tg_rw_route(&t, 3, unknown, 2, &mask), TG_RW_PRIMARY);
    cr_assert_eq(mask, 0);
}

/*
 * A failover: the old primary wrote on timeline 3 up to 5000, a standby that had replayed
 * 4000 was promoted and started timeline 4 there. A timeline 3 token past 4000 names a
 * write the new history lost; one before it names one it kept; the positions cannot tell
 * them apart, so both go to the primary.
 */
Test(route, a_token_of_another_timeline_goes_to_the_primary)
{
    tg_rw_replica_t r[] = {up(3, 5000), up(4, 6000), up(4, 4500)};
    uint64_t mask = 99;
    tg_rw_token_t lost = {3, 4800}, kept = {3, 100};
    cr_assert_eq(tg_rw_route(&lost, 4, r, 3, &mask), TG_RW_PRIMARY, "the replica still on timeline 3 has it, but that history is gone");
    cr_assert_eq(mask, 0);
    cr_assert_eq(tg_rw_route(&kept, 4, r, 3, &mask), TG_RW_PRIMARY, "not by the new timeline's replicas either, though past it");
    cr_assert_eq(mask, 0);
    /* the new timeline's tokens: its replicas, by position */
    tg_rw_token_t fresh = {4, 5000};
    cr_assert_eq(tg_rw_route(&fresh, 4, r, 3, &mask), TG_RW_REPLICA);
    cr_assert_eq(mask, 0x2, "only the timeline 4 replica past 5000; the timeline 3 one at 5000 is another history");
    /* a token of a timeline newer than the primary this instance knows (it has not seen the promotion yet) */
    cr_assert_eq(tg_rw_route(&fresh, 3, r, 3, &mask), TG_RW_PRIMARY);
    cr_assert_eq(mask, 0);
    /* the primary's timeline unknown */
    cr_assert_eq(tg_rw_route(&fresh, 0, r, 3, &mask), TG_RW_PRIMARY);
    cr_assert_eq(mask, 0);
    /* a token with timeline 0 (not one the parser gives, but not trusted either) */
    tg_rw_token_t zero = {0, 0};
    tg_rw_replica_t z[] = {up(0, 0)};
    cr_assert_eq(tg_rw_route(&zero, 0, z, 1, &mask), TG_RW_PRIMARY);
    cr_assert_eq(mask, 0);
}

Test(route, extreme_positions)
{
    uint64_t mask;
    tg_rw_replica_t r[] = {up(1, 0), up(1, UINT64_MAX)};
    tg_rw_token_t zero = {1, 0}, max = {1, UINT64_MAX};
    cr_assert_eq(tg_rw_route(&zero, 1, r, 2, &mask), TG_RW_REPLICA);
    cr_assert_eq(mask, 0x3, "every replica on the timeline is at or past LSN 0");
    cr_assert_eq(tg_rw_route(&max, 1, r, 2, &mask), TG_RW_REPLICA);
    cr_assert_eq(mask, 0x2);
}

Test(route, at_most_64_replicas_are_considered)
{
    tg_rw_replica_t r[70];
    for (size_t i = 0; i != 70; ++i)
        r[i] = up(1, i == 69 ? 500 : 10);
    tg_rw_token_t t = {1, 100};
    uint64_t mask = 99;
    cr_assert_eq(tg_rw_route(&t, 1, r, 70, &mask), TG_RW_WAIT, "the one past it is the 70th: beyond the mask");
    cr_assert_eq(mask, 0);
    r[63] = up(1, 100);
    cr_assert_eq(tg_rw_route(&t, 1, r, 70, &mask), TG_RW_REPLICA);
    cr_assert_eq(mask, 1ull << 63);
}

/* Against a direct model of the rule, over random replica sets and tokens. */
Test(route, matches_the_rule)
{
    uint64_t state = 11;
    for (int k = 0; k != 50000; ++k) {
        size_t n = next_random(&state) % 6;
        tg_rw_replica_t r[6];
        for (size_t i = 0; i != n; ++i)
            r[i] = (tg_rw_replica_t){.timeline = (uint32_t)(next_random(&state) % 3), .replay_lsn = next_random(&state) % 8,
                                     .usable = (int)(next_random(&state) % 4 != 0)};
        tg_rw_token_t t = {(uint32_t)(next_random(&state) % 3), next_random(&state) % 8};
        uint32_t ptl = (uint32_t)(next_random(&state) % 3);
        uint64_t mask, want_mask = 0;
        int behind = 0;
        for (size_t i = 0; i != n; ++i) {
            int same = t.timeline != 0 && r[i].timeline == t.timeline && r[i].usable;
            if (same && r[i].replay_lsn >= t.lsn)
                want_mask |= 1ull << i;
            behind |= same && r[i].replay_lsn < t.lsn;
        }
        tg_rw_route_t want = t.timeline == 0 || ptl != t.timeline ? TG_RW_PRIMARY : want_mask ? TG_RW_REPLICA : behind ? TG_RW_WAIT : TG_RW_PRIMARY;
        if (want == TG_RW_PRIMARY)
            want_mask = 0;
        cr_assert_eq(tg_rw_route(&t, ptl, r, n, &mask), want);
        cr_assert_eq(mask, want_mask);
        /* every replica the mask names has the write */
        for (size_t i = 0; i != n; ++i)
            if (mask & 1ull << i)
                cr_assert(tg_rw_entry_fresh(&t, r[i].timeline, r[i].replay_lsn));
    }
}

Test(entry, fresh)
{
    tg_rw_token_t t = {2, 1000};
    cr_assert_eq(tg_rw_entry_fresh(&t, 2, 1000), 1, "read at the token");
    cr_assert_eq(tg_rw_entry_fresh(&t, 2, 1001), 1, "read after it");
    cr_assert_eq(tg_rw_entry_fresh(&t, 2, 999), 0, "read before it");
    cr_assert_eq(tg_rw_entry_fresh(&t, 1, 5000), 0, "read on the timeline before a failover, however far on");
    cr_assert_eq(tg_rw_entry_fresh(&t, 3, 5000), 0, "read on a later timeline: the token's write may not be in it");
    cr_assert_eq(tg_rw_entry_fresh(&t, 0, UINT64_MAX), 0, "read at an unknown position");
    tg_rw_token_t zero = {2, 0};
    cr_assert_eq(tg_rw_entry_fresh(&zero, 2, 0), 1);
    tg_rw_token_t max = {2, UINT64_MAX};
    cr_assert_eq(tg_rw_entry_fresh(&max, 2, UINT64_MAX - 1), 0);
    cr_assert_eq(tg_rw_entry_fresh(&max, 2, UINT64_MAX), 1);
    tg_rw_token_t none = {0, 0};
    cr_assert_eq(tg_rw_entry_fresh(&none, 0, 0), 0, "no timeline, nothing is known to include it");
}

/* Tests of gateway/guard.c: the look at a client's bytes before h2o parses them. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include "tollgate/guard.h"

static const tg_guard_limits_t LIMITS = {
    .max_body_bytes = 100,
    .max_streams = 4,
    .header_timeout_ms = 1000,
    .body_timeout_ms = 2000,
    .reset_burst = 3,
    .reset_per_s = 1,
    .control_burst = 5,
    .control_per_s = 10,
};

/* A stand-in for h2o: streams it has parsed, each with its expected body length. */
static struct {
    uint32_t id[16];
    size_t cl[16];
    int n;
} fake;

static size_t *fake_cl(void *ctx, uint32_t id)
{
    for (int i = 0; i != fake.n; ++i)
        if (fake.id[i] == id)
            return &fake.cl[i];
    return NULL;
}

static void fake_add(uint32_t id, size_t cl)
{
    fake.id[fake.n] = id, fake.cl[fake.n++] = cl;
}

static const tg_guard_h2o_t H = {NULL, fake_cl, NULL, NULL};

static size_t put_frame(uint8_t *p, size_t len, uint8_t type, uint8_t flags, uint32_t id)
{
    p[0] = (uint8_t)(len >> 16), p[1] = (uint8_t)(len >> 8), p[2] = (uint8_t)len, p[3] = type, p[4] = flags;
    p[5] = (uint8_t)(id >> 24), p[6] = (uint8_t)(id >> 16), p[7] = (uint8_t)(id >> 8), p[8] = (uint8_t)id;
    memset(p + 9, 'x', len);
    return 9 + len;
}

static int scan(tg_guard_t *g, uint8_t *buf, size_t *len, uint64_t now, const char **why)
{
    size_t split = 0;
    int code;
    return tg_guard_scan(g, &LIMITS, &H, buf, len, &split, 0, now, why, &code);
}

/* A guard past the preface. */
static void start(tg_guard_t *g)
{
    memset(g, 0, sizeof(*g));
    memset(&fake, 0, sizeof(fake));
    uint8_t buf[64];
    size_t len = 0;
    memcpy(buf, TG_H2_PREFACE, TG_H2_PREFACE_LEN), len = TG_H2_PREFACE_LEN;
    const char *why = NULL;
    cr_assert_eq(scan(g, buf, &len, 1, &why), TG_GUARD_PASS);
    cr_assert_eq(g->proto, TG_GUARD_HTTP2);
    cr_assert(g->preface_done);
}

/* A guard past the preface with stream `id` open, its body to come; h2o has parsed its HEADERS (expected length `cl`). */
static void open_body(tg_guard_t *g, uint32_t id, size_t cl)
{
    start(g);
    uint8_t buf[64];
    size_t len = put_frame(buf, 10, 1, 0x4, id); /* HEADERS, END_HEADERS: a body follows */
    const char *why;
    cr_assert_eq(scan(g, buf, &len, 2, &why), TG_GUARD_PASS);
    fake_add(id, cl);
}

Test(guard, a_body_past_the_limit_is_cut_off_into_an_empty_end_of_stream)
{
    tg_guard_t g;
    open_body(&g, 1, SIZE_MAX); /* no Content-Length */
    uint8_t buf[1024];
    size_t len;
    const char *why;
    /* 60 + 60 bytes: the second frame passes 100 */
    len = put_frame(buf, 60, 0, 0, 1);
    len += put_frame(buf + len, 60, 0, 0, 1);
    len += put_frame(buf + len, 60, 0, 0x1, 1); /* the client's END_STREAM: dropped too */
    cr_assert_eq(scan(&g, buf, &len, 3, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 9 + 60 + 9, "the first frame whole, then an empty one: %zu bytes", len);
    cr_assert_eq(buf[69 + 0] | buf[69 + 1] | buf[69 + 2], 0, "the cut-off frame is empty");
    cr_assert_eq(buf[69 + 3], 0);
    cr_assert_eq(buf[69 + 4], 0x1, "and ends the stream");
    cr_assert_eq(g.refund, 120, "the bytes dropped are to be given back as window");
    cr_assert_eq(g.n_refused, 1);
    cr_assert_eq(fake.cl[0], SIZE_MAX);
    cr_assert_eq(tg_guard_take_refused(&g, 1), 1, "the handler learns it once");
    cr_assert_eq(tg_guard_take_refused(&g, 1), 0);
    cr_assert_eq(g.n_streams, 0, "answered and ended: forgotten");
}

Test(guard, a_content_length_over_the_limit_is_refused_at_the_first_data_frame)
{
    tg_guard_t g;
    open_body(&g, 1, 5000);
    uint8_t buf[1024];
    size_t len;
    const char *why;
    len = put_frame(buf, 10, 0, 0, 1);
    cr_assert_eq(scan(&g, buf, &len, 3, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 9, "not one body byte reaches h2o");
    cr_assert_eq(buf[4], 0x1);
    cr_assert_eq(fake.cl[0], SIZE_MAX, "h2o would reset a request shorter than its Content-Length");
    cr_assert_eq(tg_guard_take_refused(&g, 1), 1);
    /* the rest of that body is dropped as it comes */
    len = put_frame(buf, 50, 0, 0, 1);
    len += put_frame(buf + len, 0, 8, 0, 0); /* a WINDOW_UPDATE behind it stays */
    cr_assert_eq(scan(&g, buf, &len, 4, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 9);
    cr_assert_eq(buf[3], 8);
    cr_assert_eq(g.refund, 60);
}

Test(guard, a_body_within_the_limit_in_the_buffer_of_its_headers_passes_unsplit)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = put_frame(buf, 10, 1, 0x4, 3), split = 0;
    len += put_frame(buf + len, 20, 0, 0x1, 3);
    const char *why;
    int code;
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 2, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(len, 48, "untouched");
    cr_assert_eq(g.n_streams, 0, "its END_STREAM ends its tracking");
}

Test(guard, a_cut_in_the_buffer_of_its_headers_splits_so_h2o_parses_them_first)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = put_frame(buf, 10, 1, 0x4, 3), split = 0;
    len += put_frame(buf + len, 120, 0, 0x1, 3); /* past 100 */
    const char *why;
    int code;
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 2, &why, &code), TG_GUARD_SPLIT);
    cr_assert_eq(split, 19, "h2o takes the HEADERS first");
    /* h2o took the HEADERS: what is left is scanned again */
    fake_add(3, 120);
    memmove(buf, buf + 19, len - 19), len -= 19;
    cr_assert_eq(scan(&g, buf, &len, 3, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 9, "cut off");
    cr_assert_eq(fake.cl[0], SIZE_MAX);
    cr_assert_eq(tg_guard_take_refused(&g, 3), 1);
}

static uint32_t reset_id[8];
static int n_reset;
static void fake_reset(void *ctx, uint32_t id)
{
    reset_id[n_reset++] = id;
}

static size_t credited;
static void fake_credit(void *ctx, uint32_t id, size_t n)
{
    credited += n;
}

Test(guard, a_cut_off_body_still_coming_is_dropped_with_its_window_given_back_then_reset_after_the_body_timeout)
{
    tg_guard_t g;
    open_body(&g, 1, 5000);
    uint8_t buf[1024];
    size_t len;
    const char *why;
    tg_guard_h2o_t h = {NULL, fake_cl, fake_reset, fake_credit};
    size_t split;
    int code;
    credited = 0;
    len = put_frame(buf, 10, 0, 0, 1);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &h, buf, &len, &split, 0, 3, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(credited, 10, "the cut frame's bytes go back to the stream's window");
    cr_assert_eq(tg_guard_take_refused(&g, 1), 1, "the handler answers 413");
    /* an empty DATA frame of that stream is dropped too (h2o would reset the answer with STREAM_CLOSED) */
    len = put_frame(buf, 0, 0, 0, 1);
    len += put_frame(buf + len, 30, 0, 0, 1);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &h, buf, &len, &split, 0, 4, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(len, 0);
    cr_assert_eq(credited, 40);
    n_reset = 0;
    tg_guard_prune(&g, &LIMITS, &h, 5);
    cr_assert_eq(n_reset, 0, "h2o still has the stream: the answer is under way");
    fake.n = 0; /* answered and closed */
    tg_guard_prune(&g, &LIMITS, &h, 1000);
    cr_assert_eq(n_reset, 0, "the client may still send the rest, which is dropped (no reset it would take for a failure)");
    cr_assert_eq(g.n_streams, 1);
    len = put_frame(buf, 30, 0, 0, 1);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &h, buf, &len, &split, 0, 1001, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(len, 0, "still dropped after the answer");
    tg_guard_prune(&g, &LIMITS, &h, 2004);
    cr_assert_eq(n_reset, 1, "past http.body_timeout_ms after the cut the client is told to stop");
    cr_assert_eq(reset_id[0], 1);
    cr_assert_eq(g.n_streams, 0);
}

Test(guard, the_stream_table_never_drops_a_refusal_still_to_be_answered)
{
    tg_guard_t g;
    start(&g);
    static uint8_t buf[TG_GUARD_STREAMS * 30 + 64];
    size_t len = 0;
    const char *why;
    tg_guard_limits_t lim = LIMITS;
    lim.max_streams = 1000;
    size_t split;
    int code;
    for (uint32_t i = 0; i != TG_GUARD_STREAMS; ++i)
        len += put_frame(buf + len, 10, 1, 0x4, 1 + 2 * i);
    cr_assert_eq(tg_guard_scan(&g, &lim, &H, buf, &len, &split, 0, 2, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(g.n_streams, TG_GUARD_STREAMS);
    for (uint32_t i = 0; i != TG_GUARD_STREAMS; ++i)
        fake.n < 16 ? fake_add(1 + 2 * i, 5000) : (void)0;
    /* the first stream's body is refused, its client ends it, nobody has answered yet */
    len = put_frame(buf, 10, 0, 0x1, 1);
    cr_assert_eq(tg_guard_scan(&g, &lim, &H, buf, &len, &split, 0, 3, &why, &code), TG_GUARD_PASS);
    len = put_frame(buf, 10, 1, 0x4, 1 + 2 * TG_GUARD_STREAMS); /* one more body: the table is full */
    cr_assert_eq(tg_guard_scan(&g, &lim, &H, buf, &len, &split, 0, 4, &why, &code), TG_GUARD_CLOSE);
    cr_assert_eq(tg_guard_take_refused(&g, 1), 1, "the refusal was kept for its handler");
}

Test(guard, a_preface_h2o_took_in_before_the_guard_is_not_skipped_blind)
{
    tg_guard_t g = {.proto = TG_GUARD_HTTP2}; /* as the wrapper leaves it when h2o's HTTP/2 took the socket over */
    uint8_t buf[1024];
    size_t len = 0;
    const char *why = NULL;
    for (uint32_t id = 1; id <= 7; id += 2) {
        len += put_frame(buf + len, 10, 1, 0x5, id);
        len += put_frame(buf + len, 4, 3, 0, id);
    }
    memset(&fake, 0, sizeof(fake));
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_CLOSE, "the frames are read from the buffer's start");
    cr_assert(g.preface_done);
}

Test(guard, frames_of_unknown_types_are_dropped_and_charged)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = put_frame(buf, 5, 0xfa, 0, 0);
    len += put_frame(buf + len, 8, 6, 0, 0);
    const char *why;
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 17, "the unknown frame is gone, the PING stays");
    cr_assert_eq(buf[3], 6);
    cr_assert_eq(g.n_control, 2);
}

Test(guard, padding_does_not_count_toward_the_body)
{
    tg_guard_t g;
    open_body(&g, 1, SIZE_MAX);
    uint8_t buf[1024];
    size_t len;
    const char *why;
    len = put_frame(buf, 200, 0, 0x8, 1); /* PADDED */
    buf[9] = 150;                         /* 150 bytes of padding: 49 of data */
    cr_assert_eq(scan(&g, buf, &len, 3, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 209);
    cr_assert_eq(g.n_refused, 0);
}

Test(guard, resets_past_the_budget_close_the_connection)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = 0;
    const char *why = NULL;
    for (uint32_t id = 1; id <= 7; id += 2) {
        len += put_frame(buf + len, 10, 1, 0x5, id);
        len += put_frame(buf + len, 4, 3, 0, id);
    }
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_CLOSE, "4 resets, a budget of 3");
    cr_assert_not_null(strstr(why, "rapid reset"));
    cr_assert_eq(g.closed_for, TG_GUARD_FOR_RESETS, "the reason the connection is counted under");
    /* refilled at 1/s: a reset 1.5 s later passes */
    tg_guard_t h;
    start(&h);
    len = 0;
    for (uint32_t id = 1; id <= 5; id += 2) {
        len += put_frame(buf + len, 10, 1, 0x5, id);
        len += put_frame(buf + len, 4, 3, 0, id);
    }
    cr_assert_eq(scan(&h, buf, &len, 2, &why), TG_GUARD_PASS);
    len = put_frame(buf, 10, 1, 0x5, 7) + 0;
    len += put_frame(buf + len, 4, 3, 0, 7);
    cr_assert_eq(scan(&h, buf, &len, 1502, &why), TG_GUARD_PASS);
}

Test(guard, control_and_empty_frames_past_the_budget_close_the_connection)
{
    static const uint8_t kinds[][2] = {{6, 0}, {4, 0}, {2, 0}, {0xfa, 0}, {0, 0}};
    for (size_t k = 0; k != sizeof(kinds) / sizeof(kinds[0]); ++k) {
        tg_guard_t g;
        start(&g);
        uint8_t buf[1024];
        size_t len = 0;
        const char *why = NULL;
        for (int i = 0; i != 6; ++i)
            len += put_frame(buf + len, kinds[k][0] == 0 ? 0 : 8, kinds[k][0], kinds[k][1], kinds[k][0] == 0 || kinds[k][0] == 2 ? 1 : 0);
        cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_CLOSE, "type %d: 6 frames, a budget of 5", kinds[k][0]);
        cr_assert_not_null(strstr(why, "control or empty frames"));
        cr_assert_eq(g.closed_for, TG_GUARD_FOR_CONTROL);
    }
    /* WINDOW_UPDATE frames are not charged */
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = 0;
    const char *why = NULL;
    for (int i = 0; i != 50; ++i)
        len += put_frame(buf + len, 4, 8, 0, 0);
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_PASS);
}

Test(guard, more_streams_than_allowed_close_the_connection)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = 0, split;
    const char *why = NULL;
    int code;
    for (uint32_t id = 1; id <= 5; id += 2)
        len += put_frame(buf + len, 10, 1, 0x5, id);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 1, 2, &why, &code), TG_GUARD_PASS, "1 held + 3 new = 4");
    len = put_frame(buf, 10, 1, 0x5, 7);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 4, 3, &why, &code), TG_GUARD_CLOSE, "a fifth");
    cr_assert_eq(code, 0x1, "PROTOCOL_ERROR");
}

Test(guard, deadlines_of_bodies_and_header_blocks)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = put_frame(buf, 10, 1, 0x4, 1);
    const char *why;
    cr_assert_eq(scan(&g, buf, &len, 10, &why), TG_GUARD_PASS);
    cr_assert_null(tg_guard_expired(&g, &LIMITS, 2010));
    cr_assert_not_null(tg_guard_expired(&g, &LIMITS, 2011), "a body under way for over 2 s");
    /* pruned once h2o no longer has the stream: no deadline then */
    tg_guard_prune(&g, &LIMITS, &H, 5000);
    cr_assert_null(tg_guard_expired(&g, &LIMITS, 5000));

    start(&g);
    len = put_frame(buf, 10, 1, 0x1, 1); /* no END_HEADERS */
    cr_assert_eq(scan(&g, buf, &len, 10, &why), TG_GUARD_PASS);
    cr_assert_not_null(tg_guard_expired(&g, &LIMITS, 1011), "a header block unfinished for over 1 s");
    len = put_frame(buf, 10, 9, 0x4, 1); /* CONTINUATION, END_HEADERS */
    cr_assert_eq(scan(&g, buf, &len, 20, &why), TG_GUARD_PASS);
    cr_assert_null(tg_guard_expired(&g, &LIMITS, 1500));
}

Test(guard, incomplete_frames_wait_and_oversized_ones_are_left_to_h2o)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[32768];
    size_t len = put_frame(buf, 100, 6, 0, 0) - 10; /* a PING cut short */
    const char *why;
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_PASS);
    cr_assert_eq(g.n_control, 0, "not counted until whole");
    len = put_frame(buf, 20000, 0, 0, 1); /* past SETTINGS_MAX_FRAME_SIZE: h2o closes on it */
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_PASS);
    cr_assert_eq(len, 20009, "untouched");
}

Test(guard, http1_header_and_body_deadlines)
{
    tg_guard_t g = {0};
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n";
    size_t len = strlen(req), split;
    const char *why = NULL;
    int code;
    uint8_t buf[256];
    memcpy(buf, req, len);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 100, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(g.proto, TG_GUARD_HTTP1);
    cr_assert_eq(g.h1_state, 1);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 1200, &why, &code), TG_GUARD_CLOSE, "headers for 1.1 s");
    cr_assert_not_null(strstr(why, "header_timeout_ms"));

    memset(&g, 0, sizeof(g));
    len = strlen(req);
    tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 100, &why, &code);
    memcpy(buf + len, "\r\nbody", 6), len += 6; /* the blank line */
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 900, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(g.h1_state, 2);
    cr_assert_null(tg_guard_expired(&g, &LIMITS, 2900));
    cr_assert_not_null(tg_guard_expired(&g, &LIMITS, 2901), "a body under way for over 2 s");
    tg_guard_h1_next(&g, 0, 3000); /* the next request on the connection */
    cr_assert_null(tg_guard_expired(&g, &LIMITS, 60000), "no deadline between requests (h2o's idle timeout)");
}

Test(guard, a_connection_that_starts_with_the_preface_is_http2_whatever_came_before)
{
    tg_guard_t g = {0};
    uint8_t buf[64];
    size_t len = 10, split;
    const char *why;
    int code;
    memcpy(buf, TG_H2_PREFACE, len);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 1, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(g.proto, TG_GUARD_NEW, "a part of the preface: not decided yet");
    g.proto = TG_GUARD_HTTP1; /* after an Upgrade: h2c request */
    len = TG_H2_PREFACE_LEN;
    memcpy(buf, TG_H2_PREFACE, len);
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 1, &why, &code), TG_GUARD_PASS);
    cr_assert_eq(g.proto, TG_GUARD_HTTP2);
    cr_assert(g.preface_now, "this scan took the preface: a GOAWAY now needs the server's SETTINGS first");
    len = put_frame(buf, 0, 4, 0, 0); /* SETTINGS */
    cr_assert_eq(tg_guard_scan(&g, &LIMITS, &H, buf, &len, &split, 0, 1, &why, &code), TG_GUARD_PASS);
    cr_assert(!g.preface_now, "a later one did not");
}

Test(guard, a_request_whose_reset_came_with_it_never_runs)
{
    tg_guard_t g;
    start(&g);
    uint8_t buf[1024];
    size_t len = put_frame(buf, 10, 1, 0x5, 1); /* HEADERS, END_STREAM | END_HEADERS */
    len += put_frame(buf + len, 4, 3, 0, 1);   /* its RST_STREAM */
    len += put_frame(buf + len, 10, 1, 0x5, 3); /* another request, not reset */
    const char *why;
    cr_assert_eq(scan(&g, buf, &len, 2, &why), TG_GUARD_PASS);
    cr_assert_eq(buf[4], 0x4, "stream 1 lost its END_STREAM: h2o waits for a body, then drops it at the reset");
    cr_assert_eq(buf[19 + 13 + 4], 0x5, "stream 3 keeps its own");
    cr_assert_eq(g.n_defused, 1);
    cr_assert_eq(g.n_streams, 0, "and is not left tracked as a body under way");
}

/* The server preface and GOAWAY for a connection h2o never made HTTP/2: byte for byte, and cut to fit. */
Test(guard, a_goaway_before_any_server_frame_starts_with_the_server_preface)
{
    uint8_t out[64];
    size_t n = tg_guard_goaway(out, sizeof(out), 0xb, "calm");
    static const uint8_t want[] = {0, 0, 0, 4, 0, 0, 0, 0, 0,           /* SETTINGS, empty */
                                   0, 0, 12, 7, 0, 0, 0, 0, 0,          /* GOAWAY, 8 + 4 bytes, stream 0 */
                                   0, 0, 0, 0, 0, 0, 0, 0xb, 'c', 'a', 'l', 'm'}; /* last stream 0, ENHANCE_YOUR_CALM */
    cr_assert_eq(n, sizeof(want));
    cr_assert_arr_eq(out, want, sizeof(want));
    char why[100];
    memset(why, 'w', sizeof(why) - 1), why[sizeof(why) - 1] = '\0';
    n = tg_guard_goaway(out, 40, 0x1, why);
    cr_assert_eq(n, 40, "the debug data is cut to the room there is");
    cr_assert_eq(out[11], 40 - 18, "and the frame's length says so");
    cr_assert_eq(out[25], 0x1);
}

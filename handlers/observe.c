/*
 * What each answer tells the operator: its counters and histograms (per thread,
 * tollgate/metrics.h), its access-log line (tollgate/accesslog.h) and, with
 * TOLLGATE_LOG=debug, its debug line. Label values are names from the config (query,
 * tenant, backend), never request data; the access log quotes request data (method,
 * path, ids) escaped as JSON strings.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include "tollgate/accesslog.h"
#include "../gateway/internal.h"
#include "respond.h"

/* The most bytes of the path (and of other request data) an access-log line quotes. */
#define TG_LOG_MAX_FIELD 2048

/* A JSON string of request bytes, which may be anything: invalid UTF-8 is escaped byte by byte. */
static void append_request_string(tg_buf_t *b, const char *s, size_t n)
{
    if (n > TG_LOG_MAX_FIELD)
        n = TG_LOG_MAX_FIELD;
    tg_buf_reserve(b, n * 6 + 2);
    char *d = b->base + b->len;
    *d++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t seq = c < 0x80 ? 1 : tg_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && seq != 0) {
            memcpy(d, s + i, seq);
            d += seq, i += seq;
            continue;
        }
        if (c == '"' || c == '\\') {
            *d++ = '\\', *d++ = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            d += sprintf(d, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        }
        ++i;
    }
    *d++ = '"';
    b->len = (size_t)(d - b->base);
}

/* A W3C traceparent (version 00 layout, any version but ff): the header's value, or {NULL, 0}. */
static h2o_iovec_t traceparent_of(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("traceparent"), -1);
    if (i == -1)
        return h2o_iovec_init(NULL, 0);
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len != 55 || v.base[2] != '-' || v.base[35] != '-' || v.base[52] != '-' || (v.base[0] == 'f' && v.base[1] == 'f'))
        return h2o_iovec_init(NULL, 0);
    for (size_t j = 0; j != v.len; ++j) {
        char c = v.base[j];
        if (j == 2 || j == 35 || j == 52)
            continue;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return h2o_iovec_init(NULL, 0);
    }
    return v;
}

const char *const tg_ans_cache_names[4] = {"hit", "stale", "miss", "collapsed"};

/* Numbers by hand (tg_buf_append_uint): printf's float formatting was a tenth of a busy gateway's CPU. */

/* ".NNN": a fraction of 0 to 999 thousandths */
static void append_thousandths(tg_buf_t *b, unsigned n)
{
    char d[4] = {'.', (char)('0' + n / 100), (char)('0' + n / 10 % 10), (char)('0' + n % 10)};
    tg_buf_append(b, d, 4);
}

/* `us` microseconds as milliseconds with three decimals: 1234 -> "1.234" */
static void append_ms(tg_buf_t *b, uint64_t us)
{
    tg_buf_append_uint(b, us / 1000);
    append_thousandths(b, (unsigned)(us % 1000));
}

static const char *protocol_of(const h2o_req_t *req)
{
    return req->version >= 0x200 ? "HTTP/2" : req->version == 0x101 ? "HTTP/1.1" : "HTTP/1.0";
}

static void append_remote(tg_buf_t *b, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    char text[INET6_ADDRSTRLEN] = "-";
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    socklen_t len = sock != NULL ? req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) : 0;
    if (len != 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
    else if (len != 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
    tg_buf_appendc(b, '"');
    tg_buf_appends(b, text);
    tg_buf_appendc(b, '"');
}

/* "2026-12-01T12:54:17.123Z": the second's text is kept per thread, made again when the second changes. */
static void append_time(tg_handler_ctx_t *w, tg_buf_t *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != w->clock_sec) {
        struct tm tm;
        time_t t = ts.tv_sec;
        gmtime_r(&t, &tm);
        strftime(w->clock_text, sizeof(w->clock_text), "%Y-%m-%dT%H:%M:%S", &tm);
        w->clock_sec = ts.tv_sec;
    }
    tg_buf_appendc(b, '"');
    tg_buf_appends(b, w->clock_text);
    append_thousandths(b, (unsigned)(ts.tv_nsec / 1000000));
    tg_buf_appends(b, "Z\"");
}

static void append_name_or_null(tg_buf_t *b, const char *name)
{
    if (name != NULL)
        tg_buf_append_json_string(b, name, strlen(name));
    else
        tg_buf_appends(b, "null");
}

static void log_access(tg_handler_ctx_t *w, tg_accesslog_t *log, h2o_req_t *req, int status, size_t bytes, uint64_t total_us,
                       uint64_t wait_us)
{
    const tg_answer_t *a = &w->ans;
    tg_buf_t *b = &w->line;
    tg_buf_reset(b);
    tg_buf_appends(b, "{\"time\":");
    append_time(w, b);
    tg_buf_appends(b, ",\"request_id\":");
    if (a->id.base != NULL)
        append_request_string(b, a->id.base, a->id.len);
    else
        tg_buf_appends(b, "null");
    tg_buf_appends(b, ",\"remote\":");
    append_remote(b, req);
    tg_buf_appends(b, ",\"protocol\":\"");
    tg_buf_appends(b, protocol_of(req));
    tg_buf_appends(b, "\",\"method\":");
    append_request_string(b, req->input.method.base, req->input.method.len);
    tg_buf_appends(b, ",\"path\":");
    append_request_string(b, req->input.path.base, req->input.path.len);
    tg_buf_appends(b, ",\"query\":");
    append_name_or_null(b, a->query != NULL ? a->query->name : NULL);
    tg_buf_appends(b, ",\"tenant\":");
    append_name_or_null(b, a->tenant != NULL ? a->tenant->name : NULL);
    tg_buf_appends(b, ",\"status\":");
    tg_buf_append_uint(b, (uint64_t)status);
    tg_buf_appends(b, ",\"bytes\":");
    tg_buf_append_uint(b, bytes);
    tg_buf_appends(b, ",\"total_ms\":");
    append_ms(b, total_us);
    tg_buf_appends(b, ",\"db_ms\":");
    append_ms(b, (uint64_t)((double)a->db_ms * 1000));
    tg_buf_appends(b, ",\"wait_ms\":");
    append_ms(b, wait_us);
    tg_buf_appends(b, ",\"backend\":");
    append_name_or_null(b, a->backend != NULL ? a->backend->name : NULL);
    if (a->cache != 0) {
        tg_buf_appends(b, ",\"cache\":\"");
        tg_buf_appends(b, tg_ans_cache_names[a->cache - 1]);
        tg_buf_appendc(b, '"');
    }
    h2o_iovec_t tp = traceparent_of(req);
    if (tp.base != NULL) {
        tg_buf_appends(b, ",\"traceparent\":\"");
        tg_buf_append(b, tp.base, tp.len);
        tg_buf_appendc(b, '"');
    }
    tg_buf_appends(b, "}\n");
    tg_accesslog_write(log, w->worker->index, b->base, b->len);
}

void tg_observe_answer(tg_handler_ctx_t *w, h2o_req_t *req, int status, size_t bytes)
{
    tg_answer_t *a = &w->ans;
    if (a->gone)
        status = 499, bytes = 0; /* nginx's "client closed request": nothing reached the client */
    tg_metrics_thread_t *m = w->worker->metrics;
    uint64_t now_ns = tg_now_ns();
    uint64_t total_us = a->started_ns != 0 && now_ns > a->started_ns ? (now_ns - a->started_ns) / 1000 : 0;
    /* a call that never went out (pool timeout, queue full, its client left) waited until now: the longest waits count too */
    uint64_t wait_end = a->sent_ns != 0 ? a->sent_ns : a->submitted ? now_ns : 0;
    uint64_t wait_us = wait_end > a->started_ns && a->started_ns != 0 ? (wait_end - a->started_ns) / 1000 : 0;
    uint32_t qid = a->query != NULL ? a->query->state->id : 0, tid = a->tenant != NULL ? a->tenant->state->id : 0;
    if (!a->builtin) {
        tg_metrics_count(m, TG_M_REQUESTS, qid, tid, (uint32_t)status);
        if (a->refusal != 0)
            tg_metrics_count(m, TG_M_REFUSED, tid, 0, (uint32_t)a->refusal - 1);
        if (a->shed != 0)
            tg_metrics_count(m, TG_M_SHED, qid, 0, (uint32_t)a->shed - 1);
        if (a->cache != 0)
            tg_metrics_count(m, TG_M_CACHE, qid, 0, (uint32_t)a->cache - 1);
        if (a->read_after != 0)
            tg_metrics_count(m, TG_M_READ_AFTER, qid, 0, (uint32_t)a->read_after - 1);
        if (a->query != NULL) {
            tg_metrics_observe(m, TG_M_REQUEST_SECONDS, qid, 0, total_us);
            /* only calls that ran (reached the head of their connection): one lost on the way has no database time */
            /* a fetch shared by many calls ran once: its time counts for the call that started it */
            if (a->backend != NULL && a->db_ms > 0 && a->cache != TG_ANS_CACHE_COLLAPSED)
                tg_metrics_observe(m, TG_M_DB_SECONDS, qid, a->backend->metrics_id, (uint64_t)((double)a->db_ms * 1000));
            if (a->submitted)
                tg_metrics_observe(m, TG_M_WAIT_SECONDS, qid, 0, wait_us);
        }
    }
    tg_accesslog_t *log = w->worker->access_log;
    if (tg_accesslog_on(log))
        log_access(w, log, req, status, bytes, total_us, wait_us);
    /* TOLLGATE_LOG=debug: a line per answer, to follow one through the log by its request id */
    if (tg_log_level >= TG_LOG_DEBUG && !a->builtin)
        /* the route as the catalog writes it, never the request's own path or values (the access log has those) */
        tg_log(TG_LOG_DEBUG, "request %.*s: %s %s query=%s tenant=%s backend=%s status=%d total_ms=%.3f db_ms=%.3f wait_ms=%.3f",
               a->id.base != NULL ? (int)a->id.len : 1, a->id.base != NULL ? a->id.base : "-", a->query != NULL ? tg_method_name(a->query->method) : "-",
               a->query != NULL ? a->query->path : "-", a->query != NULL ? a->query->name : "-", a->tenant != NULL ? a->tenant->name : "-",
               a->backend != NULL ? a->backend->name : "-", status, (double)total_us / 1000, (double)a->db_ms,
               (double)wait_us / 1000);
    *a = (tg_answer_t){0};
}


/* h2o's own answers (its 413, its 400s for what it cannot parse) never reach the handler: its logger sees them. */
typedef struct st_tg_fallback_logger_t {
    h2o_logger_t super;
    h2o_handler_t *handler; /* whose per-thread state (tg_handler_ctx_t) counts them */
} tg_fallback_logger_t;

static void on_fallback_access(h2o_logger_t *self, h2o_req_t *req)
{
    tg_fallback_logger_t *l = (tg_fallback_logger_t *)self;
    tg_handler_ctx_t *w = h2o_context_get_handler_context(req->conn->ctx, l->handler);
    if (w == NULL || req->res.status == 0)
        return;
    /* h2o's own clock of when the request began (wall time), turned into ours */
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t ago_us = ((int64_t)now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                     (now.tv_usec - req->timestamps.request_begin_at.tv_usec);
    w->ans = (tg_answer_t){.started_ns = req->timestamps.request_begin_at.tv_sec != 0 && ago_us > 0 ? tg_now_ns() - (uint64_t)ago_us * 1000 : 0,
                           .id = tg_request_id_sent(req)};
    tg_observe_answer(w, req, req->res.status, req->bytes_sent);
}

void tg_observe_register(h2o_hostconf_t *hostconf, h2o_handler_t *handler)
{
    tg_fallback_logger_t *l = (tg_fallback_logger_t *)h2o_create_logger(&hostconf->fallback_path, sizeof(*l));
    l->super.log_access = on_fallback_access;
    l->handler = handler;
}

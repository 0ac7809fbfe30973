/*
 * The answer a finished call gets, made without its request: the status, the body
 * (JSON written straight from libpq's text, or a problem), a Retry-After, and why the
 * call was shed if it was. A call answers its own request with it; a cache fetch turns
 * it into a blob that answers every caller waiting for that fetch.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/encode.h"
#include "tollgate/params.h"
#include "../gateway/internal.h"
#include "call.h"
#include "tollgate/consistency.h"

/* what we say of an SQLSTATE */
typedef struct st_tg_state_detail_t {
    const char *state, *detail;
} tg_state_detail_t;

/* the detail for `state` in `table` (n entries), or `otherwise` */
static const char *detail_of(const tg_state_detail_t *table, size_t n, const char *state, const char *otherwise)
{
    for (size_t i = 0; i != n; ++i)
        if (strcmp(table[i].state, state) == 0)
            return table[i].detail;
    return otherwise;
}

static const char *data_exception_detail(const char *state)
{
    static const tg_state_detail_t details[] = {
        {"22012", "division by zero"},
        {"22P02", "a value does not have the format its type needs"},
        {"22003", "a number is out of range for its type"},
        {"22001", "a string is too long for its type"},
        {"22007", "a date or time value has the wrong format"},
        {"22008", "a date or time value is out of range"},
        {"22023", "a parameter value is not valid"},
        {"2201E", "an invalid argument for a logarithm"},
        {"22004", "a null value is not allowed here"},
    };
    return detail_of(details, sizeof(details) / sizeof(details[0]), state, "a value is not valid for the query");
}

static const char *constraint_detail(const char *state)
{
    static const tg_state_detail_t details[] = {
        {"23505", "a row with the same unique key already exists"},
        {"23503", "a referenced row does not exist, or the row is still referenced"},
        {"23514", "a value fails a check constraint"},
        {"23502", "a required value is null"},
        {"23P01", "the row conflicts with an existing row"},
    };
    return detail_of(details, sizeof(details) / sizeof(details[0]), state, "the change violates an integrity constraint");
}

/* A problem into w->scratch, with the Retry-After tg_respond_error would give it. */
static void problem(tg_handler_ctx_t *w, tg_outcome_t *o, const tg_problem_t *p)
{
    tg_buf_reset(&w->scratch);
    tg_problem_format(&w->scratch, p);
    o->status = p->status;
    o->problem = 1;
    o->retry_after_s = tg_retry_after_of(p->status);
}

static void error(tg_handler_ctx_t *w, tg_outcome_t *o, int status, const char *type, const char *detail)
{
    tg_problem_t p = {.status = status, .type = type, .detail = detail};
    problem(w, o, &p);
}

/* One line: "query Q failed: SQLSTATE (SEVERITY) schema=.. table=.. column=.. constraint=.. type=.." (names as JSON strings). */
static void log_db_error(tg_handler_ctx_t *w, const tg_query_t *q, const PGresult *res, const char *state, h2o_iovec_t id)
{
    static const struct {
        int field;
        const char *label;
    } names[] = {{PG_DIAG_SCHEMA_NAME, " schema="}, {PG_DIAG_TABLE_NAME, " table="}, {PG_DIAG_COLUMN_NAME, " column="},
                 {PG_DIAG_CONSTRAINT_NAME, " constraint="}, {PG_DIAG_DATATYPE_NAME, " type="}};
    tg_buf_t *b = &w->line;
    tg_buf_reset(b);
    for (size_t i = 0; res != NULL && i != sizeof(names) / sizeof(names[0]); ++i) {
        const char *v = PQresultErrorField(res, names[i].field);
        if (v == NULL)
            continue;
        tg_buf_appends(b, names[i].label);
        tg_buf_append_json_string(b, v, strlen(v));
    }
    const char *severity = res != NULL ? PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
    tg_log(TG_LOG_ERROR, "request %.*s: query %s failed: %s (%s)%s", (int)id.len, id.base, q->name, state != NULL ? state : "-",
           severity != NULL ? severity : res != NULL ? "no severity" : "no result", b->len != 0 ? b->base : "");
}

static void db_error(tg_handler_ctx_t *w, tg_outcome_t *o, const tg_query_t *q, const PGresult *res, h2o_iovec_t id)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    tg_problem_t p = {.sqlstate = state};
    char d[96];
    if (state != NULL && strncmp(state, "22", 2) == 0) {
        /* Data exceptions are the caller's; PostgreSQL's own message may quote stored values or types, so say it our way. */
        p.status = 400, p.type = "invalid-value", p.detail = data_exception_detail(state);
    } else if (state != NULL && strncmp(state, "23", 2) == 0) {
        /* PostgreSQL's message names the constraint, part of the schema: say what kind it was instead. */
        p.status = 409, p.type = "constraint-violation", p.detail = constraint_detail(state);
    } else if (state != NULL && strcmp(state, "57014") == 0) {
        snprintf(d, sizeof(d), "the query ran longer than its %d ms timeout", q->timeout_ms);
        p.status = 504, p.type = "statement-timeout", p.detail = d;
    } else {
        /*
         * Anything else is ours or the database's; tell the caller only the SQLSTATE.
         * The log gets the SQLSTATE, the severity and the schema objects named: never
         * the message, whose text (and DETAIL) may quote parameter values and stored
         * data, and may span lines.
         */
        log_db_error(w, q, res, state, id);
        p.status = 500, p.type = "database-error", p.detail = "the database could not run the query";
    }
    problem(w, o, &p);
}

/* Appends `s` to `b` percent-encoded but for RFC 3986's unreserved characters. */
static void append_escaped(tg_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            tg_buf_appendc(b, (char)c);
        } else {
            tg_buf_appendc(b, '%');
            tg_buf_appendc(b, hex[c >> 4]);
            tg_buf_appendc(b, hex[c & 15]);
        }
    }
}

/*
 * The Location of a success: the query's template filled from the answer's first row
 * (each value percent-encoded), into w->extra. None when a column is missing or NULL
 * (`--check --db` names a missing one).
 */
static void fill_location(tg_handler_ctx_t *w, tg_outcome_t *o, const tg_query_t *q, const PGresult *res)
{
    size_t start = w->extra.len, lit_len, len;
    const char *at = q->location, *lit, *name;
    for (;;) {
        int more = tg_template_next(&at, &lit, &lit_len, &name, &len);
        tg_buf_append(&w->extra, lit, lit_len);
        if (!more)
            break;
        int col = tg_column_index(res, name, len);
        if (col < 0 || PQgetisnull(res, 0, col)) {
            w->extra.len = start;
            return;
        }
        append_escaped(&w->extra, PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col));
    }
    o->location_off = (uint32_t)start, o->location_len = (uint32_t)(w->extra.len - start);
}

/*
 * A page of a `cursor` query that may have a next one (it is full: as many rows as
 * its limit, or, with no limit declared, not empty): the last row's cursor value,
 * percent-encoded, into w->extra.
 */
static void fill_next(tg_handler_ctx_t *w, tg_outcome_t *o, const tg_query_t *q, const PGresult *res, const char *const *values)
{
    int nrows = PQntuples(res), col = tg_column_index(res, q->cursor_column, strlen(q->cursor_column));
    if (nrows == 0 || col < 0 || PQgetisnull(res, nrows - 1, col))
        return;
    if (q->cursor_limit >= 0 && values != NULL && values[q->cursor_limit] != NULL &&
        nrows < strtoll(values[q->cursor_limit], NULL, 10))
        return;
    size_t start = w->extra.len;
    append_escaped(&w->extra, PQgetvalue(res, nrows - 1, col), (size_t)PQgetlength(res, nrows - 1, col));
    o->next_off = (uint32_t)start, o->next_len = (uint32_t)(w->extra.len - start);
}

static void result(tg_handler_ctx_t *w, tg_outcome_t *o, const tg_config_t *cfg, const tg_query_t *q, const tg_call_t *call,
                   h2o_iovec_t id)
{
    const PGresult *res = call->result;
    tg_buf_t *b = &w->scratch;
    tg_buf_reset(b);
    tg_buf_reset(&w->extra);
    int nrows = PQntuples(res), nfields = PQnfields(res);
    tg_column_enc_t encs_stack[32], *encs = nfields <= 32 ? encs_stack : tg_malloc(sizeof(*encs) * (size_t)nfields);
    char d[128];
    *o = (tg_outcome_t){.status = q->status};
    switch (q->returns) {
    case TG_RETURNS_ONE:
        if (nrows == 0) {
            error(w, o, 404, "not-found", "no row matched");
            break;
        }
        if (nrows > 1) {
            tg_log(TG_LOG_ERROR, "request %.*s: query %s (returns: one) returned %d rows", (int)id.len, id.base, q->name, nrows);
            error(w, o, 500, "too-many-rows", "the query returned more than one row");
            break;
        }
        tg_encode_columns(res, encs, &w->keys);
        tg_encode_row(b, res, 0, encs, &w->keys);
        if (q->location != NULL)
            fill_location(w, o, q, res);
        break;
    case TG_RETURNS_MANY:
        if ((size_t)nrows > cfg->max_rows) {
            snprintf(d, sizeof(d), "the query returned %d rows, more than max_rows (%zu)", nrows, cfg->max_rows);
            error(w, o, 500, "too-many-rows", d);
            break;
        }
        tg_encode_columns(res, encs, &w->keys);
        tg_buf_appendc(b, '[');
        for (int i = 0; i != nrows; ++i) {
            if (i != 0)
                tg_buf_appendc(b, ',');
            tg_encode_row(b, res, i, encs, &w->keys);
        }
        tg_buf_appendc(b, ']');
        if (nrows == 0 && q->not_found_if_none) {
            error(w, o, 404, "not-found", "no row matched");
            break;
        }
        if (q->location != NULL && nrows != 0)
            fill_location(w, o, q, res);
        if (q->cursor_column != NULL)
            fill_next(w, o, q, res, call->values);
        break;
    case TG_RETURNS_NONE: {
        const char *n = PQcmdTuples((PGresult *)res);
        if (q->not_found_if_none && (n[0] == '\0' || strcmp(n, "0") == 0)) {
            error(w, o, 404, "not-found", "no row matched");
            break;
        }
        if (q->status == 204) /* no content */
            break;
        tg_buf_appends(b, "{\"rows_affected\":");
        tg_buf_appends(b, n[0] != '\0' ? n : "0");
        tg_buf_appendc(b, '}');
    } break;
    }
    if (encs != encs_stack)
        free(encs);
}

void tg_outcome_of(tg_handler_ctx_t *w, const tg_config_t *cfg, const tg_query_t *q, tg_call_status_t status, const tg_call_t *call,
                   h2o_iovec_t id, tg_outcome_t *o)
{
    char d[160];
    *o = (tg_outcome_t){0};
    switch (status) {
    case TG_CALL_OK:
        result(w, o, cfg, q, call, id);
        if (call->lsn_timeline != 0 && o->status < 300) {
            /* the write committed: a read sent with this token is answered from data that includes it */
            tg_rw_token_t t = {.timeline = call->lsn_timeline, .lsn = call->lsn};
            o->read_after[tg_rw_token_format(&t, o->read_after)] = '\0';
        }
        break;
    case TG_CALL_DB_ERROR:
        db_error(w, o, q, call->result, id);
        break;
    case TG_CALL_NO_BACKEND:
        error(w, o, 503, "no-backend", "no database backend is available for this query");
        o->shed = TG_SHED_NO_BACKEND + 1;
        break;
    case TG_CALL_ACQUIRE_TIMEOUT:
        error(w, o, 503, "pool-timeout", "no database connection became free within acquire_timeout_ms");
        o->shed = TG_SHED_POOL_TIMEOUT + 1;
        break;
    case TG_CALL_QUEUE_FULL:
        error(w, o, 503, "overloaded", "too many calls are waiting for a database connection");
        o->shed = TG_SHED_QUEUE_FULL + 1;
        break;
    case TG_CALL_OVERLOADED: {
        /* the backend's latency is far above its unloaded latency: shed now rather than queue into a timeout */
        tg_problem_t p = {.status = 503, .type = "backend-overloaded", .title = "Database Backend Overloaded",
                          .detail = "the database backend is overloaded: its adaptive concurrency limit is reached; retry later"};
        problem(w, o, &p);
        o->retry_after_s = call->retry_after_s > 0 ? (int)call->retry_after_s : 1;
        o->shed = TG_SHED_BACKEND_OVERLOADED + 1;
    } break;
    case TG_CALL_ROLLED_BACK:
        if (q->returns == TG_RETURNS_ONE)
            snprintf(d, sizeof(d), "the write returned %d rows, more than one; it was rolled back", PQntuples(call->result));
        else
            snprintf(d, sizeof(d), "the write returned %d rows, more than max_rows (%zu); it was rolled back", PQntuples(call->result),
                     cfg->max_rows);
        tg_log(TG_LOG_ERROR, "request %.*s: query %s (returns: %s) returned %d rows: rolled back", (int)id.len, id.base, q->name,
               q->returns == TG_RETURNS_ONE ? "one" : "many", PQntuples(call->result));
        error(w, o, 500, "too-many-rows", d);
        break;
    case TG_CALL_CONN_LOST_UNCOMMITTED:
        error(w, o, 503, "connection-lost", "the database connection was lost before the write committed; it was not applied");
        break;
    case TG_CALL_CONN_LOST:
        error(w, o, 503, "connection-lost",
              q->access == TG_ACCESS_WRITE ? "the database connection was lost; the write's outcome is unknown"
                                           : "the database connection was lost");
        break;
    }
}

void tg_invalidate_after(const tg_query_t *q, tg_call_status_t status)
{
    /*
     * Committed, or maybe (its connection was lost after it was sent, or a stop ended it
     * in flight: "no backend"): what it changed must not be served from the cache.
     */
    if (q->access != TG_ACCESS_WRITE || (status != TG_CALL_OK && status != TG_CALL_CONN_LOST && status != TG_CALL_NO_BACKEND))
        return;
    for (size_t i = 0; i != q->n_invalidates; ++i)
        if (q->invalidate_states != NULL && q->invalidate_states[i] != NULL)
            tg_state_invalidate(q->invalidate_states[i]);
}

/*
 * Link: <the request's own path and query, the cursor parameter set to the last row's
 * value>; rel="next". Any other value the caller gave for that parameter is dropped.
 */
static void add_next_link(tg_handler_ctx_t *w, h2o_req_t *req, const tg_query_t *q, h2o_iovec_t after)
{
    const char *param = q->params[q->cursor_param].name;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    tg_buf_t *b = &w->keys; /* free again: the rows are encoded */
    tg_buf_reset(b);
    tg_buf_appendc(b, '<');
    tg_buf_append(b, req->path.base, path_len);
    tg_buf_appendc(b, '?');
    if (req->query_at != SIZE_MAX) {
        const char *s = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (s < end) {
            const char *amp = memchr(s, '&', (size_t)(end - s)), *pair_end = amp != NULL ? amp : end;
            const char *eq = memchr(s, '=', (size_t)(pair_end - s));
            size_t klen;
            char *key = tg_percent_decode(s, (size_t)((eq != NULL ? eq : pair_end) - s), 1, &req->pool, &klen);
            if (pair_end != s && (key == NULL || klen != strlen(param) || memcmp(key, param, klen) != 0)) {
                tg_buf_append(b, s, (size_t)(pair_end - s));
                tg_buf_appendc(b, '&');
            }
            s = pair_end + 1;
        }
    }
    tg_buf_appends(b, param);
    tg_buf_appendc(b, '=');
    tg_buf_append(b, after.base, after.len);
    tg_buf_appends(b, ">; rel=\"next\"");
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("link"), 0, NULL, h2o_strdup(&req->pool, b->base, b->len).base,
                          b->len);
}

void tg_respond_outcome(tg_handler_ctx_t *w, h2o_req_t *req, const tg_query_t *q, const tg_outcome_t *o)
{
    if (o->read_after[0] != '\0') {
        size_t n = strlen(o->read_after);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("tollgate-read-after"), 0, NULL,
                              h2o_strdup(&req->pool, o->read_after, n).base, n);
    }
    if (o->location_len != 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                       h2o_strdup(&req->pool, w->extra.base + o->location_off, o->location_len).base, o->location_len);
    if (o->next_len != 0)
        add_next_link(w, req, q, h2o_iovec_init(w->extra.base + o->next_off, o->next_len));
    if (o->status == 204) {
        tg_respond_status(w, req, 204); /* no body, no Content-Type, no Content-Length (RFC 9110 8.6) */
        return;
    }
    tg_respond_bytes(w, req, o->status, o->problem, w->scratch.base, w->scratch.len, o->retry_after_s);
}

/*
 * The OpenAPI 3.1 document of a catalog. Written by hand, not through a DOM, so that
 * numbers (a numeric bound or default as the catalog wrote it, an int8's range) and
 * json defaults go out exactly as they are, and so that the same catalog gives the
 * same bytes: paths in byte order, methods in a fixed order, members in a fixed order.
 *
 * Each parameter's schema says what tollgate accepts (gateway/params.c), not what a
 * type could hold: where it comes from follows the catalog's rule (the path if the
 * route names it; the query string for GET and DELETE, arrays as repeated keys;
 * else a member of the JSON body), and optional body members may be null (SQL NULL).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate.h"
#include "tollgate/openapi.h"
#include "tollgate/params.h"
#include "tollgate/problem.h"
#include "internal.h"

/* --- a JSON writer, two spaces an indent --- */

#define MAX_DEPTH 32

typedef struct st_writer_t {
    tg_buf_t *b;
    int depth;
    int after_key;                   /* a key was written: the next value is its */
    unsigned char empty[MAX_DEPTH];  /* per open container: nothing in it yet */
} writer_t;

static void newline(writer_t *w)
{
    tg_buf_appendc(w->b, '\n');
    for (int i = 0; i < w->depth; ++i)
        tg_buf_appends(w->b, "  ");
}

/* before a member or an element: the comma and the new line */
static void sep(writer_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0)
        return;
    if (!w->empty[w->depth])
        tg_buf_appendc(w->b, ',');
    w->empty[w->depth] = 0;
    newline(w);
}

static void key(writer_t *w, const char *k)
{
    sep(w);
    tg_buf_append_json_string(w->b, k, strlen(k));
    tg_buf_appends(w->b, ": ");
    w->after_key = 1;
}

static void open_(writer_t *w, char c)
{
    sep(w);
    tg_buf_appendc(w->b, c);
    if (++w->depth >= MAX_DEPTH)
        tg_fatal("openapi: nested too deep");
    w->empty[w->depth] = 1;
}

static void close_(writer_t *w, char c)
{
    int was_empty = w->empty[w->depth--];
    if (!was_empty)
        newline(w);
    tg_buf_appendc(w->b, c);
}

static void obj(writer_t *w) { open_(w, '{'); }
static void arr(writer_t *w) { open_(w, '['); }
static void end_obj(writer_t *w) { close_(w, '}'); }
static void end_arr(writer_t *w) { close_(w, ']'); }

static void str(writer_t *w, const char *s)
{
    sep(w);
    tg_buf_append_json_string(w->b, s, strlen(s));
}

static void strn(writer_t *w, const char *s, size_t n)
{
    sep(w);
    tg_buf_append_json_string(w->b, s, n);
}

/* a value already in JSON form */
static void raw(writer_t *w, const char *s, size_t n)
{
    sep(w);
    tg_buf_append(w->b, s, n);
}

static void raws(writer_t *w, const char *s) { raw(w, s, strlen(s)); }

static void integer(writer_t *w, int64_t v)
{
    char t[24];
    raw(w, t, (size_t)snprintf(t, sizeof(t), "%" PRId64, v));
}

static void kobj(writer_t *w, const char *k) { key(w, k); obj(w); }
static void karr(writer_t *w, const char *k) { key(w, k); arr(w); }
static void kstr(writer_t *w, const char *k, const char *v) { key(w, k); str(w, v); }
static void kraw(writer_t *w, const char *k, const char *v) { key(w, k); raws(w, v); }
static void kint(writer_t *w, const char *k, int64_t v) { key(w, k); integer(w, v); }
static void kref(writer_t *w, const char *k, const char *ref) { kobj(w, k); kstr(w, "$ref", ref); end_obj(w); }

/* a double in the shortest form that reads back the same (a valid JSON number: bounds are finite) */
static void number(writer_t *w, double d)
{
    char t[40];
    int n = 0;
    for (int prec = 15; prec <= 17; ++prec) {
        n = snprintf(t, sizeof(t), "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    raw(w, t, (size_t)n);
}

/* --- what a query answers --- */

int tg_openapi_success_status(const tg_query_t *q)
{
    return q->status;
}

int tg_openapi_answers_not_found(const tg_query_t *q)
{
    return q->returns == TG_RETURNS_ONE || q->not_found_if_none;
}

static int takes_body(const tg_query_t *q)
{
    return q->method != TG_METHOD_GET && q->method != TG_METHOD_DELETE;
}

/* --- parameter schemas --- */

static const char NUMERIC_PATTERN[] = "^(-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?|NaN|Infinity|-Infinity)$";
static const char FLOAT_SPECIALS_PATTERN[] = "^(NaN|Infinity|-Infinity)$";

static int is_int(tg_type_t t) { return t == TG_TYPE_INT2 || t == TG_TYPE_INT4 || t == TG_TYPE_INT8; }
static int is_float(tg_type_t t) { return t == TG_TYPE_FLOAT4 || t == TG_TYPE_FLOAT8; }
static int is_json(tg_type_t t) { return t == TG_TYPE_JSON || t == TG_TYPE_JSONB; }

/* the JSON Schema type of a scalar of type `t`: one name, or two for floats and numerics (a string for NaN and the like) */
static void type_names(tg_type_t t, const char **first, const char **second)
{
    *second = NULL;
    if (is_int(t)) {
        *first = "integer";
    } else if (is_float(t) || t == TG_TYPE_NUMERIC) {
        *first = "number", *second = "string";
    } else if (t == TG_TYPE_BOOL) {
        *first = "boolean";
    } else {
        *first = "string";
    }
}

static void int_range(tg_type_t t, int64_t *lo, int64_t *hi)
{
    if (t == TG_TYPE_INT2)
        *lo = INT16_MIN, *hi = INT16_MAX;
    else if (t == TG_TYPE_INT4)
        *lo = INT32_MIN, *hi = INT32_MAX;
    else
        *lo = INT64_MIN, *hi = INT64_MAX;
}

/*
 * A scalar value given as PostgreSQL text (a canonical enum value or default, or an
 * element of an array default) written as the JSON a caller would send for it.
 * `as_string` writes a float or numeric as a string (the other spelling a numeric
 * takes), and a json value as its text (as the query string carries it).
 */
static void scalar_value(writer_t *w, const tg_param_t *p, const char *s, size_t n, int as_string)
{
    if (is_int(p->type) || p->type == TG_TYPE_BOOL) {
        raw(w, s, n);
    } else if (is_float(p->type) || p->type == TG_TYPE_NUMERIC) {
        if (!as_string && tg_is_number(s, n, 1))
            raw(w, s, n);
        else
            strn(w, s, n);
    } else if (is_json(p->type) && !as_string) {
        raw(w, s, n); /* checked as JSON when the catalog was read, and kept as written */
    } else {
        strn(w, s, n);
    }
}

/*
 * An array default: a PostgreSQL array literal as tg_params_check_json makes it, every
 * element double-quoted with '"' and '\' escaped by '\', NULL unquoted.
 */
static void array_value(writer_t *w, const tg_param_t *p, const char *lit, int in_body)
{
    tg_buf_t elem = {0};
    const char *c = lit + 1; /* past '{' */
    arr(w);
    while (*c != '\0' && *c != '}') {
        if (*c == '"') {
            tg_buf_reset(&elem);
            for (++c; *c != '\0' && *c != '"'; ++c) {
                if (*c == '\\' && c[1] != '\0')
                    ++c;
                tg_buf_appendc(&elem, *c);
            }
            if (*c == '"')
                ++c;
            scalar_value(w, p, elem.base != NULL ? elem.base : "", elem.len, !in_body && is_json(p->type));
        } else {
            raws(w, "null");
            c += strncmp(c, "NULL", 4) == 0 ? 4 : 1;
        }
        if (*c == ',')
            ++c;
    }
    end_arr(w);
    tg_buf_dispose(&elem);
}

/* the default, as the place it comes from would carry it (a json value in the query string is its text) */
static void default_value(writer_t *w, const tg_param_t *p, int in_body)
{
    key(w, "default");
    if (p->default_text == NULL)
        raws(w, "null");
    else if (p->is_array)
        array_value(w, p, p->default_text, in_body);
    else
        scalar_value(w, p, p->default_text, strlen(p->default_text), !in_body && is_json(p->type));
}

/*
 * The members of a scalar's schema (the element's, for arrays): its type, format and
 * bounds as tollgate checks them. `in_body`: a JSON value (else text from the path or
 * the query string); `nullable`: null is accepted (SQL NULL).
 */
static void scalar_schema(writer_t *w, const tg_param_t *p, int in_body, int nullable)
{
    tg_type_t t = p->type;
    if (is_json(t)) {
        if (!in_body) {
            /* the text of a JSON document */
            kstr(w, "type", "string");
            kstr(w, "contentMediaType", "application/json");
        } else if (!nullable) {
            /* any JSON value: null is not one (it is SQL NULL, refused for a required parameter) */
            kobj(w, "not");
            kstr(w, "type", "null");
            end_obj(w);
        }
        return;
    }
    const char *first, *second;
    type_names(t, &first, &second);
    nullable = nullable && in_body;
    if (second == NULL && !nullable) {
        kstr(w, "type", first);
    } else {
        karr(w, "type");
        str(w, first);
        if (second != NULL)
            str(w, second);
        if (nullable)
            str(w, "null");
        end_arr(w);
    }
    if (is_int(t)) {
        int64_t lo, hi;
        int_range(t, &lo, &hi);
        kstr(w, "format", t == TG_TYPE_INT8 ? "int64" : "int32");
        kint(w, "minimum", p->has_min ? p->imin : lo);
        kint(w, "maximum", p->has_max ? p->imax : hi);
    } else if (is_float(t)) {
        kstr(w, "format", t == TG_TYPE_FLOAT4 ? "float" : "double");
        kstr(w, "pattern", FLOAT_SPECIALS_PATTERN);
        if (p->has_min)
            key(w, "minimum"), number(w, p->min);
        if (p->has_max)
            key(w, "maximum"), number(w, p->max);
    } else if (t == TG_TYPE_NUMERIC) {
        /* exact decimals: a JSON number or a string, either reaching PostgreSQL as written; the bounds as the catalog wrote them */
        kstr(w, "pattern", NUMERIC_PATTERN);
        if (p->has_min && p->min_text != NULL)
            kraw(w, "minimum", p->min_text);
        if (p->has_max && p->max_text != NULL)
            kraw(w, "maximum", p->max_text);
    } else if (t == TG_TYPE_TEXT) {
        if (p->max_length >= 0)
            kint(w, "maxLength", p->max_length);
    } else if (t == TG_TYPE_UUID) {
        kstr(w, "format", "uuid");
    } else if (t == TG_TYPE_DATE) {
        kstr(w, "format", "date");
    } else if (t == TG_TYPE_TIMESTAMPTZ) {
        kstr(w, "format", "date-time");
    }
    if (p->enum_values != NULL) {
        karr(w, "enum");
        for (size_t i = 0; i < p->n_enum; ++i) {
            const char *v = p->enum_values[i];
            scalar_value(w, p, v, strlen(v), 0);
            /* a numeric is matched on its text as sent, number or string: both spellings */
            if (t == TG_TYPE_NUMERIC && tg_is_number(v, strlen(v), 1))
                scalar_value(w, p, v, strlen(v), 1);
        }
        if (nullable)
            raws(w, "null");
        end_arr(w);
    }
}

/* a parameter's whole schema: the scalar's, or an array of them; the description and the default */
static void param_schema(writer_t *w, const tg_param_t *p, int in_body, int with_description)
{
    int nullable = in_body && !p->required;
    obj(w);
    if (with_description && p->description != NULL)
        kstr(w, "description", p->description);
    if (p->is_array) {
        if (nullable) {
            karr(w, "type");
            str(w, "array");
            str(w, "null");
            end_arr(w);
        } else {
            kstr(w, "type", "array");
        }
        kobj(w, "items");
        scalar_schema(w, p, in_body, in_body); /* a body's array may hold nulls (NULL elements) */
        end_obj(w);
        kint(w, "maxItems", TG_MAX_ARRAY_ITEMS);
    } else {
        scalar_schema(w, p, in_body, nullable);
    }
    if (p->has_default)
        default_value(w, p, in_body);
    end_obj(w);
}

/* a path or query-string parameter */
static void parameter(writer_t *w, const tg_param_t *p)
{
    int in_path = p->source == TG_SOURCE_PATH;
    obj(w);
    kstr(w, "name", p->name);
    kstr(w, "in", in_path ? "path" : "query");
    if (p->description != NULL)
        kstr(w, "description", p->description);
    kraw(w, "required", p->required ? "true" : "false");
    if (p->is_array) {
        kstr(w, "style", "form");
        kraw(w, "explode", "true");
    }
    key(w, "schema");
    param_schema(w, p, 0, 0);
    end_obj(w);
}

static void request_body(writer_t *w, const tg_query_t *q)
{
    int any = 0, any_required = 0;
    for (size_t i = 0; i < q->n_params; ++i) {
        if (q->params[i].source == TG_SOURCE_BODY) {
            any = 1;
            any_required |= q->params[i].required;
        }
    }
    if (!any)
        return;
    kobj(w, "requestBody");
    kraw(w, "required", any_required ? "true" : "false");
    kobj(w, "content");
    kobj(w, "application/json");
    kobj(w, "schema");
    kstr(w, "type", "object");
    kobj(w, "properties");
    for (size_t i = 0; i < q->n_params; ++i) {
        if (q->params[i].source == TG_SOURCE_BODY) {
            key(w, q->params[i].name);
            param_schema(w, q->params + i, 1, 1);
        }
    }
    end_obj(w);
    if (any_required) {
        karr(w, "required");
        for (size_t i = 0; i < q->n_params; ++i)
            if (q->params[i].source == TG_SOURCE_BODY && q->params[i].required)
                str(w, q->params[i].name);
        end_arr(w);
    }
    /* a member that is not a parameter is an error (unknown parameter) */
    kraw(w, "additionalProperties", "false");
    end_obj(w);
    end_obj(w);
    end_obj(w);
    end_obj(w);
}

/* --- responses --- */

static void header_ref(writer_t *w, const char *name)
{
    char ref[64];
    snprintf(ref, sizeof(ref), "#/components/headers/%s", name);
    kref(w, name, ref);
}

static void success_response(writer_t *w, const tg_config_t *cfg, const tg_query_t *q)
{
    char status[8];
    snprintf(status, sizeof(status), "%d", tg_openapi_success_status(q));
    kobj(w, status);
    kstr(w, "description", q->status == 204                ? "Done: no content"
                           : q->returns == TG_RETURNS_ONE    ? "The row, as an object of its columns"
                           : q->returns == TG_RETURNS_MANY ? "The rows, as an array of objects of their columns"
                                                           : "The number of rows the statement affected");
    kobj(w, "headers");
    header_ref(w, "X-Request-Id");
    header_ref(w, "RateLimit-Policy");
    header_ref(w, "RateLimit");
    if (q->cached) {
        header_ref(w, "Cache-Status");
        header_ref(w, "Age");
    }
    if (q->location != NULL)
        header_ref(w, "Location");
    if (q->cursor_column != NULL)
        header_ref(w, "Link");
    if (q->access == TG_ACCESS_WRITE)
        header_ref(w, "Tollgate-Read-After");
    end_obj(w);
    if (q->status == 204) {
        end_obj(w);
        return;
    }
    kobj(w, "content");
    kobj(w, "application/json");
    kobj(w, "schema");
    switch (q->returns) {
    case TG_RETURNS_ONE:
        kstr(w, "$ref", "#/components/schemas/Row");
        break;
    case TG_RETURNS_MANY:
        kstr(w, "type", "array");
        kref(w, "items", "#/components/schemas/Row");
        kint(w, "maxItems", cfg->max_rows > INT64_MAX ? INT64_MAX : (int64_t)cfg->max_rows);
        break;
    case TG_RETURNS_NONE:
        kstr(w, "$ref", "#/components/schemas/RowsAffected");
        break;
    }
    end_obj(w);
    end_obj(w);
    end_obj(w);
    end_obj(w);
}

/* the errors every catalog call can answer, by status; each is a response in components */
static const struct {
    const char *status, *name, *description;
} error_responses[] = {
    {"400", "BadRequest", "The body or a parameter is not valid (malformed-json, invalid-parameters), the "
                          "Tollgate-Read-After header is not a token (malformed-read-after), or the database refused a value "
                          "(invalid-value)"},
    {"401", "Unauthorized", "No API key where one is needed (missing-key), or one no tenant has (invalid-key)"},
    {"403", "Forbidden", "The tenant may not call this query (forbidden), or is switched off (tenant-disabled)"},
    {"404", "NotFound", "The statement found no row (not-found)"},
    {"409", "Conflict", "The write violates an integrity constraint (constraint-violation)"},
    {"413", "ContentTooLarge", "The body is larger than the gateway takes (body-too-large)"},
    {"415", "UnsupportedMediaType", "A body that is not application/json (unsupported-media-type)"},
    {"429", "TooManyRequests", "The tenant's rate limit is exhausted (rate-limited), or it has too many calls in flight "
                               "(too-many-in-flight)"},
    {"500", "InternalServerError", "The result does not fit `returns` (too-many-rows), or the database could not run the "
                                   "query (database-error)"},
    {"503", "ServiceUnavailable", "The query, the gateway or the database cannot take the call now (query-disabled, "
                                  "query-busy, overloaded, backend-overloaded, no-backend, pool-timeout, connection-lost, shutting-down)"},
    {"504", "GatewayTimeout", "The statement ran past its timeout (statement-timeout)"},
};
#define N_ERROR_RESPONSES (sizeof(error_responses) / sizeof(error_responses[0]))

/* does a call of `q` answer the error response `i`? */
static int answers(const tg_query_t *q, size_t i)
{
    const char *s = error_responses[i].status;
    if (strcmp(s, "404") == 0)
        return tg_openapi_answers_not_found(q);
    if (strcmp(s, "409") == 0)
        return q->access == TG_ACCESS_WRITE;
    if (strcmp(s, "413") == 0 || strcmp(s, "415") == 0)
        return takes_body(q);
    return 1;
}

/* --- operations --- */

static const char *const method_keys[TG_METHOD__COUNT] = {
    [TG_METHOD_GET] = "get", [TG_METHOD_POST] = "post", [TG_METHOD_PUT] = "put", [TG_METHOD_PATCH] = "patch",
    [TG_METHOD_DELETE] = "delete",
};

/* the schemes that identify a caller; with `keyless`, also none (the tenant "anonymous") */
static void security(writer_t *w, int keyless)
{
    karr(w, "security");
    obj(w), karr(w, "bearer"), end_arr(w), end_obj(w);
    obj(w), karr(w, "apiKey"), end_arr(w), end_obj(w);
    if (keyless)
        obj(w), end_obj(w);
    end_arr(w);
}

static void operation(writer_t *w, const tg_config_t *cfg, const tg_query_t *q)
{
    kobj(w, method_keys[q->method]);
    kstr(w, "operationId", q->name);
    if (q->description != NULL) {
        const char *nl = strchr(q->description, '\n');
        key(w, "summary");
        strn(w, q->description, nl != NULL ? (size_t)(nl - q->description) : strlen(q->description));
        if (nl != NULL)
            kstr(w, "description", q->description);
    } else {
        kstr(w, "summary", q->name); /* tools list operations by it */
    }
    /* keyless callers are anonymous for the queries on its list only */
    if (cfg->has_anonymous && !tg_query_list_allows(&cfg->anonymous_queries, q))
        security(w, 0);
    int any = q->access == TG_ACCESS_READ; /* every read takes Tollgate-Read-After */
    for (size_t i = 0; i < q->n_params; ++i)
        any |= q->params[i].source == TG_SOURCE_PATH || q->params[i].source == TG_SOURCE_QUERY;
    if (any) {
        karr(w, "parameters");
        /* path parameters in route order, then the query string's in catalog order */
        for (int j = 0; j < TG_ROUTER_MAX_PATH_PARAMS; ++j)
            for (size_t i = 0; i < q->n_params; ++i)
                if (q->params[i].source == TG_SOURCE_PATH && q->params[i].path_index == j)
                    parameter(w, q->params + i);
        for (size_t i = 0; i < q->n_params; ++i)
            if (q->params[i].source == TG_SOURCE_QUERY)
                parameter(w, q->params + i);
        if (q->access == TG_ACCESS_READ) {
            obj(w);
            kstr(w, "$ref", "#/components/parameters/Tollgate-Read-After");
            end_obj(w);
        }
        end_arr(w);
    }
    request_body(w, q);
    kobj(w, "responses");
    success_response(w, cfg, q);
    for (size_t i = 0; i < N_ERROR_RESPONSES; ++i) {
        if (!answers(q, i))
            continue;
        char ref[64];
        snprintf(ref, sizeof(ref), "#/components/responses/%s", error_responses[i].name);
        kref(w, error_responses[i].status, ref);
    }
    end_obj(w);
    end_obj(w);
}

static int by_path_then_method(const void *a, const void *b)
{
    const tg_query_t *x = *(const tg_query_t *const *)a, *y = *(const tg_query_t *const *)b;
    int c = strcmp(x->path, y->path);
    return c != 0 ? c : (int)x->method - (int)y->method;
}

static void builtin_response(writer_t *w, const char *status, const char *description, const char *schema)
{
    kobj(w, status);
    kstr(w, "description", description);
    kobj(w, "headers");
    header_ref(w, "X-Request-Id");
    end_obj(w);
    kobj(w, "content");
    kobj(w, "application/json");
    kref(w, "schema", schema);
    end_obj(w);
    end_obj(w);
    end_obj(w);
}

/* a built-in endpoint: GET, no key, a JSON answer of `schema` (a $ref); with `not_ready`, a 503 of it too */
static void builtin(writer_t *w, const char *path, const char *id, const char *summary, const char *schema, const char *not_ready)
{
    kobj(w, path);
    kobj(w, "get");
    kstr(w, "operationId", id);
    kstr(w, "summary", summary);
    karr(w, "security"), end_arr(w);
    kobj(w, "responses");
    builtin_response(w, "200", "OK", schema);
    if (not_ready != NULL)
        builtin_response(w, "503", not_ready, schema);
    end_obj(w);
    end_obj(w);
    end_obj(w);
}

static void paths(writer_t *w, const tg_config_t *cfg)
{
    const tg_query_t **sorted = tg_malloc((cfg->n_queries + 1) * sizeof(*sorted));
    for (size_t i = 0; i < cfg->n_queries; ++i)
        sorted[i] = cfg->queries + i;
    qsort(sorted, cfg->n_queries, sizeof(*sorted), by_path_then_method);
    kobj(w, "paths");
    for (size_t i = 0; i < cfg->n_queries;) {
        size_t j = i;
        kobj(w, sorted[i]->path);
        for (; j < cfg->n_queries && strcmp(sorted[j]->path, sorted[i]->path) == 0; ++j)
            operation(w, cfg, sorted[j]);
        end_obj(w);
        i = j;
    }
    builtin(w, "/healthz", "healthz", "Liveness: 200 while the process serves", "#/components/schemas/Health", NULL);
    builtin(w, "/openapi.json", "openapi", "This document", "#/components/schemas/OpenAPI", NULL);
    builtin(w, "/readyz", "readyz", "Readiness: 200 when the databases the catalog needs can be reached", "#/components/schemas/Readiness",
            "Not ready: shutting down, or the databases cannot be reached");
    end_obj(w);
    free(sorted);
}

/* --- components --- */

/* `k`: a string, with a `format` and a `pattern` when not NULL */
static void schema_string(writer_t *w, const char *k, const char *format, const char *pattern)
{
    kobj(w, k);
    kstr(w, "type", "string");
    if (format != NULL)
        kstr(w, "format", format);
    if (pattern != NULL)
        kstr(w, "pattern", pattern);
    end_obj(w);
}

/* `key`: an array whose items are of JSON type `item_type` */
static void array_property(writer_t *w, const char *key, const char *item_type)
{
    kobj(w, key);
    kstr(w, "type", "array");
    kobj(w, "items");
    kstr(w, "type", item_type);
    end_obj(w);
    end_obj(w);
}

static void schemas(writer_t *w)
{
    kobj(w, "schemas");

    kobj(w, "Health");
    kstr(w, "type", "object");
    kobj(w, "properties");
    kobj(w, "status");
    karr(w, "enum"), str(w, "ok"), end_arr(w);
    end_obj(w);
    end_obj(w);
    karr(w, "required"), str(w, "status"), end_arr(w);
    end_obj(w);

    kobj(w, "OpenAPI");
    kstr(w, "type", "object");
    kstr(w, "description", "An OpenAPI 3.1 document");
    end_obj(w);

    kobj(w, "Problem");
    kstr(w, "type", "object");
    kstr(w, "description", "An error (RFC 9457)");
    kobj(w, "properties");
    schema_string(w, "type", "uri", "^urn:tollgate:problem:[a-z-]+$");
    schema_string(w, "title", NULL, NULL);
    kobj(w, "status");
    kstr(w, "type", "integer");
    kint(w, "minimum", 400);
    kint(w, "maximum", 599);
    end_obj(w);
    schema_string(w, "detail", NULL, NULL);
    schema_string(w, "sqlstate", NULL, "^[0-9A-Z]{5}$");
    kobj(w, "errors");
    kstr(w, "type", "array");
    kint(w, "maxItems", TG_MAX_PARAM_ERRORS);
    kobj(w, "items");
    kstr(w, "type", "object");
    kobj(w, "properties");
    schema_string(w, "name", NULL, NULL);
    schema_string(w, "reason", NULL, NULL);
    end_obj(w);
    karr(w, "required"), str(w, "name"), str(w, "reason"), end_arr(w);
    end_obj(w);
    end_obj(w);
    kobj(w, "error_count");
    kstr(w, "type", "integer");
    kint(w, "minimum", TG_MAX_PARAM_ERRORS + 1);
    end_obj(w);
    end_obj(w);
    karr(w, "required"), str(w, "type"), str(w, "title"), str(w, "status"), str(w, "detail"), end_arr(w);
    end_obj(w);

    kobj(w, "Readiness");
    kstr(w, "type", "object");
    kobj(w, "properties");
    array_property(w, "backends", "object");
    array_property(w, "down", "string");
    kobj(w, "ready");
    kstr(w, "type", "boolean");
    end_obj(w);
    end_obj(w);
    karr(w, "required"), str(w, "backends"), str(w, "down"), str(w, "ready"), end_arr(w);
    end_obj(w);

    /* the columns are the statement's: known only once it is prepared on a database, not from the catalog */
    kobj(w, "Row");
    kstr(w, "type", "object");
    kstr(w, "description", "A result row: its columns by name, in result order, as tollgate writes PostgreSQL's values "
                           "(numbers, strings, booleans, null, json values, arrays). The columns are the statement's own.");
    kraw(w, "additionalProperties", "true");
    end_obj(w);

    kobj(w, "RowsAffected");
    kstr(w, "type", "object");
    kobj(w, "properties");
    kobj(w, "rows_affected");
    kstr(w, "type", "integer");
    kint(w, "minimum", 0);
    end_obj(w);
    end_obj(w);
    karr(w, "required"), str(w, "rows_affected"), end_arr(w);
    kraw(w, "additionalProperties", "false");
    end_obj(w);

    end_obj(w);
}

static void error_response_components(writer_t *w)
{
    kobj(w, "responses");
    for (size_t i = 0; i < N_ERROR_RESPONSES; ++i) {
        const char *s = error_responses[i].status;
        kobj(w, error_responses[i].name);
        kstr(w, "description", error_responses[i].description);
        kobj(w, "headers");
        header_ref(w, "X-Request-Id");
        /* answers from the limits on have them (tollgate/limits.h): not a 401 (no tenant yet), nor a 403 forbidden */
        if (strcmp(s, "401") == 0) {
            header_ref(w, "WWW-Authenticate");
        } else {
            header_ref(w, "RateLimit-Policy");
            header_ref(w, "RateLimit");
        }
        if (strcmp(s, "429") == 0 || strcmp(s, "503") == 0)
            header_ref(w, "Retry-After");
        end_obj(w);
        kobj(w, "content");
        kobj(w, TG_PROBLEM_CONTENT_TYPE);
        kref(w, "schema", "#/components/schemas/Problem");
        end_obj(w);
        end_obj(w);
        end_obj(w);
    }
    end_obj(w);
}

static void header(writer_t *w, const char *name, const char *description, const char *type)
{
    kobj(w, name);
    kstr(w, "description", description);
    kobj(w, "schema");
    kstr(w, "type", type);
    if (strcmp(type, "integer") == 0)
        kint(w, "minimum", 0);
    end_obj(w);
    end_obj(w);
}

static void headers(writer_t *w)
{
    kobj(w, "headers");
    header(w, "Age", "Whole seconds since a cached answer was fetched (cache hits)", "integer");
    header(w, "Cache-Status", "How a cached query was answered: `tollgate; hit`, `tollgate; hit; fwd=stale`, "
                              "`tollgate; fwd=miss; stored`, `tollgate; fwd=miss` or `tollgate; fwd=miss; collapsed`",
           "string");
    header(w, "Link", "A full page's next one: `</path?...&<cursor param>=<last row's key>>; rel=\"next\"` (RFC 8288)", "string");
    header(w, "Location", "Where what the call made is: the query's `location` filled from its row", "string");
    header(w, "RateLimit", "The tenant's bucket now: `\"tenant\";r=<whole tokens left>;t=<seconds until full>`", "string");
    header(w, "RateLimit-Policy", "The tenant's limit: `\"tenant\";q=<burst>;w=<seconds to fill the bucket>`", "string");
    header(w, "Retry-After", "Seconds to wait before calling again", "integer");
    header(w, "WWW-Authenticate", "`Bearer realm=\"tollgate\"`, with `error=\"invalid_token\"` for a key that is not valid",
           "string");
    header(w, "Tollgate-Read-After", "A write's WAL position after it committed: send it back as the Tollgate-Read-After of a read "
                                     "that must see the write",
           "string");
    header(w, "X-Request-Id", "The caller's X-Request-Id when it is sane, else a new id", "string");
    end_obj(w);
}

/* the request header of reads that must see a write (docs/reference.md, Read-your-writes) */
static void parameters(writer_t *w)
{
    kobj(w, "parameters");
    kobj(w, "Tollgate-Read-After");
    kstr(w, "name", "Tollgate-Read-After");
    kstr(w, "in", "header");
    kstr(w, "description", "The Tollgate-Read-After of a write's answer: this read is answered only from data that includes that "
                           "write (a replica that has replayed it, else, after read_after_wait_ms, the primary)");
    kraw(w, "required", "false");
    kobj(w, "schema");
    kstr(w, "type", "string");
    kstr(w, "pattern", "^([1-9A-F][0-9A-F]{0,7})\\.(0|[1-9A-F][0-9A-F]{0,15})$");
    end_obj(w);
    end_obj(w);
    end_obj(w);
}

static void security_schemes(writer_t *w)
{
    kobj(w, "securitySchemes");
    kobj(w, "apiKey");
    kstr(w, "type", "apiKey");
    kstr(w, "in", "header");
    kstr(w, "name", "X-API-Key");
    kstr(w, "description", "The API key, read when Authorization holds no Bearer key");
    end_obj(w);
    kobj(w, "bearer");
    kstr(w, "type", "http");
    kstr(w, "scheme", "bearer");
    kstr(w, "description", "Authorization: Bearer <API key>");
    end_obj(w);
    end_obj(w);
}

void tg_openapi_build(const tg_config_t *cfg, tg_buf_t *out)
{
    writer_t w = {out};
    obj(&w);
    kstr(&w, "openapi", "3.1.0");
    kobj(&w, "info");
    kstr(&w, "title", "tollgate");
    kstr(&w, "version", TOLLGATE_VERSION);
    kstr(&w, "description", "The catalog's queries as JSON endpoints. Errors are application/problem+json.");
    kobj(&w, "license");
    kstr(&w, "name", "MIT");
    kstr(&w, "identifier", "MIT");
    end_obj(&w);
    end_obj(&w);
    /* the gateway that serves the document: its paths are relative to where it was fetched */
    karr(&w, "servers");
    obj(&w), kstr(&w, "url", "/"), end_obj(&w);
    end_arr(&w);
    security(&w, cfg->has_anonymous);
    paths(&w, cfg);
    kobj(&w, "components");
    schemas(&w);
    error_response_components(&w);
    parameters(&w);
    headers(&w);
    security_schemes(&w);
    end_obj(&w);
    end_obj(&w);
    tg_buf_appendc(out, '\n');
}

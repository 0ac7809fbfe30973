/*
 * What the two parameter targets assert of a decode (tg_params_decode), whatever the
 * request held:
 *
 * - the status is one the API has (BAD_JSON only when there was a body), and
 *   INVALID exactly when errors were listed; at most TG_MAX_PARAM_ERRORS are listed
 *   and n_errors_total counts at least those;
 * - every error has a name and a reason, and names a parameter of the query unless
 *   its reason is about an unknown key (unknown, tenant-bound, bad escape), when it
 *   names the key sent;
 * - on OK: every required parameter has a value, a tenant-bound one is the tenant,
 *   and every value is NUL-terminated valid UTF-8 (no NUL inside) that is already
 *   canonical: checked again as text it is accepted and comes out the same (for
 *   arrays: a well-formed array literal whose elements each are); json values parse;
 * - the 400 problem+json built from the errors is valid UTF-8 JSON whose `errors`
 *   array has the listed errors, names and reasons as given (where they are UTF-8),
 *   and `error_count` exactly when the list was cut.
 */
#ifndef tollgate_tests_fuzz_params_check_h
#define tollgate_tests_fuzz_params_check_h

#include <h2o.h>
#include "tollgate/json.h"
#include "tollgate/params.h"
#include "tollgate/problem.h"
#include "common.h"

#define FUZZ_TENANT "t\xc3\xa9nant-1"

/* checks one canonical scalar by checking it again */
static inline void check_canonical(const tg_param_t *p, const char *v, h2o_mem_pool_t *pool)
{
    size_t len = strlen(v);
    FUZZ_ASSERT(fuzz_utf8_valid(v, len), "value of %s is not UTF-8", p->name);
    const char *again = NULL;
    const char *err = tg_params_check_text(p, v, len, pool, &again);
    FUZZ_ASSERT(err == NULL, "value \"%s\" of %s (%s) is refused when checked again: %s", v, p->name, tg_type_name(p->type), err);
    FUZZ_ASSERT(again != NULL && strcmp(again, v) == 0, "value \"%s\" of %s is not canonical: \"%s\"", v, p->name,
                again != NULL ? again : "(null)");
    if (p->type == TG_TYPE_JSON || p->type == TG_TYPE_JSONB) {
        tg_json_t j;
        FUZZ_ASSERT(tg_json_parse(v, len, &j, NULL) == 0, "json value of %s does not parse", p->name);
    }
}

/* an array literal {"a",NULL,"b\"c"}: every element quoted or NULL */
static inline void check_array_literal(const tg_param_t *p, const char *v, h2o_mem_pool_t *pool)
{
    size_t len = strlen(v);
    FUZZ_ASSERT(len >= 2 && v[0] == '{' && v[len - 1] == '}', "array value of %s is not a literal: %s", p->name, v);
    const char *s = v + 1, *end = v + len - 1;
    if (s == end)
        return;
    char *elem = h2o_mem_alloc_pool(pool, len);
    for (;;) {
        if (end - s >= 4 && memcmp(s, "NULL", 4) == 0) {
            s += 4;
        } else {
            FUZZ_ASSERT(*s == '"', "array element of %s not quoted: %s", p->name, v);
            size_t n = 0;
            for (++s; s < end && *s != '"'; ++s) {
                if (*s == '\\') {
                    ++s;
                    FUZZ_ASSERT(s < end && (*s == '"' || *s == '\\'), "bad escape in array value of %s: %s", p->name, v);
                }
                elem[n++] = *s;
            }
            FUZZ_ASSERT(s < end, "unterminated element in array value of %s: %s", p->name, v);
            ++s;
            elem[n] = '\0';
            check_canonical(p, elem, pool);
        }
        if (s == end)
            return;
        FUZZ_ASSERT(*s == ',', "array value of %s: expected ',': %s", p->name, v);
        ++s;
    }
}

static inline int key_reason(const char *reason)
{
    return strcmp(reason, "unknown parameter") == 0 || strcmp(reason, "is not valid percent-encoding") == 0 ||
           strcmp(reason, "is the caller's tenant and cannot be sent") == 0;
}

static inline int is_param_name(const tg_query_t *q, const char *name)
{
    for (size_t i = 0; i < q->n_params; ++i)
        if (strcmp(q->params[i].name, name) == 0)
            return 1;
    return 0;
}

/* the whole decode result, as the header says */
static inline void check_decode(const tg_query_t *q, int rc, const tg_params_t *out, int had_body, h2o_mem_pool_t *pool)
{
    FUZZ_ASSERT(rc == TG_PARAMS_OK || rc == TG_PARAMS_INVALID || (had_body && rc == TG_PARAMS_BAD_JSON), "rc %d", rc);
    if (rc == TG_PARAMS_BAD_JSON) {
        FUZZ_ASSERT(out->detail != NULL, "BAD_JSON without a detail");
        FUZZ_ASSERT(fuzz_utf8_valid(out->detail, strlen(out->detail)), "detail not UTF-8");
        tg_problem_t pr = {.status = 400, .type = "malformed-body", .detail = out->detail};
        tg_buf_t b = {0};
        tg_problem_format(&b, &pr);
        fuzz_check_json("BAD_JSON problem", b.base, b.len, 0);
        tg_buf_dispose(&b);
        return;
    }
    FUZZ_ASSERT((rc == TG_PARAMS_INVALID) == (out->n_errors != 0), "rc %d with %zu errors", rc, out->n_errors);
    FUZZ_ASSERT(out->n_errors <= TG_MAX_PARAM_ERRORS, "%zu errors listed", out->n_errors);
    FUZZ_ASSERT(out->n_errors_total >= out->n_errors, "total %zu < listed %zu", out->n_errors_total, out->n_errors);
    FUZZ_ASSERT(out->n_errors == (out->n_errors_total < TG_MAX_PARAM_ERRORS ? out->n_errors_total : TG_MAX_PARAM_ERRORS),
                "listed %zu of %zu", out->n_errors, out->n_errors_total);
    for (size_t i = 0; i < out->n_errors; ++i) {
        const tg_param_error_t *e = &out->errors[i];
        FUZZ_ASSERT(e->name != NULL && e->reason != NULL, "error %zu has no name or reason", i);
        FUZZ_ASSERT(key_reason(e->reason) || is_param_name(q, e->name), "error %zu (\"%s\": %s) names no parameter of %s", i,
                    e->name, e->reason, q->name);
    }
    if (rc == TG_PARAMS_OK) {
        for (size_t i = 0; i < q->n_params; ++i) {
            const tg_param_t *p = &q->params[i];
            const char *v = out->values[i];
            if (p->source == TG_SOURCE_TENANT) {
                FUZZ_ASSERT(v != NULL && strcmp(v, FUZZ_TENANT) == 0, "tenant parameter %s is not the tenant", p->name);
                continue;
            }
            FUZZ_ASSERT(v != NULL || !p->required, "required %s has no value", p->name);
            if (v == NULL)
                continue;
            if (p->is_array)
                check_array_literal(p, v, pool);
            else
                check_canonical(p, v, pool);
        }
    } else {
        tg_problem_t pr = {.status = 400,
                           .type = "invalid-parameters",
                           .detail = "some parameters are not valid",
                           .errors = out->errors,
                           .n_errors = out->n_errors,
                           .n_errors_total = out->n_errors_total};
        tg_buf_t b = {0};
        tg_problem_format(&b, &pr);
        json_t *doc = fuzz_check_json("invalid-parameters problem", b.base, b.len, 1);
        json_t *errors = json_object_get(doc, "errors");
        FUZZ_ASSERT(json_is_array(errors) && json_array_size(errors) == out->n_errors, "errors array of %zu, expected %zu",
                    json_array_size(errors), out->n_errors);
        for (size_t i = 0; i < out->n_errors; ++i) {
            json_t *e = json_array_get(errors, i), *name = json_object_get(e, "name"), *reason = json_object_get(e, "reason");
            FUZZ_ASSERT(json_is_string(name) && json_is_string(reason), "errors[%zu] lacks name or reason", i);
            size_t nl = strlen(out->errors[i].name);
            if (fuzz_utf8_valid(out->errors[i].name, nl))
                FUZZ_ASSERT(json_string_length(name) == nl && memcmp(json_string_value(name), out->errors[i].name, nl) == 0,
                            "errors[%zu].name is not the name sent", i);
            FUZZ_ASSERT(strcmp(json_string_value(reason), out->errors[i].reason) == 0, "errors[%zu].reason differs", i);
        }
        json_t *count = json_object_get(doc, "error_count");
        if (out->n_errors_total > out->n_errors)
            FUZZ_ASSERT(json_is_integer(count) && (size_t)json_integer_value(count) == out->n_errors_total, "error_count wrong");
        else
            FUZZ_ASSERT(count == NULL, "error_count on an uncut list");
        json_decref(doc);
        tg_buf_dispose(&b);
    }
}

#endif

/*
 * Fuzz target: problem+json and header building (gateway/problem.c:
 * tg_problem_format; gateway/buf.c: tg_buf_append_json_string, tg_buf_append_uint;
 * gateway/util.c: tg_log_escape, the one-line log form; gateway/router.c: the Allow
 * header; gateway/limits.c: the RateLimit header).
 *
 * Input: byte 0 says which of type, title, detail and sqlstate are NULL (bits 0-3) and
 * picks the status (bits 4-7); byte 1 adds to n_errors_total; the rest is split on NUL
 * bytes into type, title, detail, sqlstate, then (name, reason) pairs, at most 40.
 *
 * Asserts:
 * - the problem is valid UTF-8 JSON whose members are exactly what was given: type
 *   "urn:tollgate:problem:<type>" (or "about:blank"), title (or the status's reason
 *   phrase), status, detail and sqlstate when given, an `errors` array of the pairs,
 *   `error_count` exactly when the total is larger than the list; strings as given
 *   where they are UTF-8 (invalid bytes become U+FFFD);
 * - the whole input as one JSON string (NULs included) reads back as the input when it
 *   is UTF-8, and takes at most 6 bytes per input byte plus the quotes;
 * - every buffer stays NUL-terminated (tg_buf_t's promise);
 * - a log line made of any field (into a destination of any size) is one line with no
 *   control characters, within its size, and the fields' printable bytes kept;
 * - Allow and RateLimit header values have no control characters and the expected form.
 */
#include <inttypes.h>
#include "tollgate/limits.h"
#include "tollgate/problem.h"
#include "tollgate/router.h"
#include "../../gateway/internal.h"
#include "common.h"

static const int statuses[16] = {400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 502, 503, 504, 200, 418, 999};

static void check_terminated(const tg_buf_t *b, const char *what)
{
    FUZZ_ASSERT(b->base != NULL && b->len < b->cap && b->base[b->len] == '\0', "%s: the buffer is not NUL-terminated", what);
}

/* `got` is the JSON string `want` (when `want` is UTF-8) */
static void same_string(json_t *got, const char *want, const char *what)
{
    FUZZ_ASSERT(json_is_string(got), "%s is not a string", what);
    size_t n = strlen(want);
    if (fuzz_utf8_valid(want, n))
        FUZZ_ASSERT(json_string_length(got) == n && memcmp(json_string_value(got), want, n) == 0, "%s is not as given", what);
}

static void check_log_escape(const char *s, size_t size)
{
    char *dst = malloc(size + 1);
    size_t n = tg_log_escape(dst, size, s);
    if (size == 0) {
        FUZZ_ASSERT(n == 0, "wrote into nothing");
    } else {
        FUZZ_ASSERT(n < size && dst[n] == '\0' && strlen(dst) == n, "log escape: %zu bytes into %zu", n, size);
        FUZZ_ASSERT(fuzz_no_controls(dst, n), "log line has control characters");
        /* the printable bytes in order: the escape may stop early, never reorder */
        size_t i = 0;
        for (const char *p = s; *p != '\0' && i < n; ++p) {
            unsigned char c = (unsigned char)*p;
            if (c == '\n' || c == '\r' || c == '\t') {
                FUZZ_ASSERT(dst[i] == ' ', "a line break is not a space");
                i += 1;
            } else if (c < 0x20 || c == 0x7f) {
                FUZZ_ASSERT(i + 4 <= n && dst[i] == '\\' && dst[i + 1] == 'x', "control not \\x");
                i += 4;
            } else {
                FUZZ_ASSERT(dst[i] == (char)c, "byte changed");
                i += 1;
            }
        }
    }
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned flags = data[0], extra = data[1];
    size_t len = size - 2;
    char *text = malloc(len + 1);
    memcpy(text, data + 2, len);
    text[len] = '\0';

    /* the fields, NUL-separated */
    const char *fields[4 + 80];
    size_t n_fields = 0;
    for (const char *p = text; p <= text + len && n_fields < sizeof(fields) / sizeof(fields[0]); p += strlen(p) + 1)
        fields[n_fields++] = p;
    const char *f[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; ++i)
        f[i] = (flags & (1u << i)) || (size_t)i >= n_fields ? NULL : fields[i];
    tg_param_error_t errors[40];
    size_t n_errors = 0;
    for (size_t i = 4; i + 1 < n_fields && n_errors < 40; i += 2, ++n_errors) {
        errors[n_errors].name = fields[i];
        errors[n_errors].reason = fields[i + 1];
    }
    tg_problem_t p = {.status = statuses[flags >> 4],
                      .type = f[0],
                      .title = f[1],
                      .detail = f[2],
                      .sqlstate = f[3],
                      .errors = n_errors != 0 ? errors : NULL,
                      .n_errors = n_errors,
                      .n_errors_total = n_errors + (n_errors != 0 ? extra : 0)};

    /* the problem */
    tg_buf_t b = {0};
    tg_buf_appends(&b, "x");
    tg_buf_reset(&b); /* a buffer that was used before */
    tg_problem_format(&b, &p);
    check_terminated(&b, "problem");
    json_t *doc = fuzz_check_json("problem", b.base, b.len, 1);
    FUZZ_ASSERT(json_is_object(doc), "problem is not an object");
    json_t *type = json_object_get(doc, "type");
    FUZZ_ASSERT(json_is_string(type), "no type");
    if (p.type == NULL) {
        FUZZ_ASSERT(strcmp(json_string_value(type), "about:blank") == 0, "type is not about:blank");
    } else {
        const char *t = json_string_value(type);
        FUZZ_ASSERT(strncmp(t, "urn:tollgate:problem:", 21) == 0, "type lacks its prefix: %s", t);
        size_t n = strlen(p.type);
        if (fuzz_utf8_valid(p.type, n))
            FUZZ_ASSERT(json_string_length(type) == 21 + n && memcmp(t + 21, p.type, n) == 0, "type is not as given");
    }
    same_string(json_object_get(doc, "title"), p.title != NULL ? p.title : tg_status_reason(p.status), "title");
    FUZZ_ASSERT(json_integer_value(json_object_get(doc, "status")) == p.status, "status");
    if (p.detail != NULL)
        same_string(json_object_get(doc, "detail"), p.detail, "detail");
    else
        FUZZ_ASSERT(json_object_get(doc, "detail") == NULL, "detail not asked for");
    if (p.sqlstate != NULL)
        same_string(json_object_get(doc, "sqlstate"), p.sqlstate, "sqlstate");
    else
        FUZZ_ASSERT(json_object_get(doc, "sqlstate") == NULL, "sqlstate not asked for");
    json_t *errs = json_object_get(doc, "errors");
    if (n_errors == 0) {
        FUZZ_ASSERT(errs == NULL && json_object_get(doc, "error_count") == NULL, "errors without any");
    } else {
        FUZZ_ASSERT(json_is_array(errs) && json_array_size(errs) == n_errors, "errors array");
        for (size_t i = 0; i < n_errors; ++i) {
            json_t *e = json_array_get(errs, i);
            FUZZ_ASSERT(json_is_object(e) && json_object_size(e) == 2, "errors[%zu]", i);
            same_string(json_object_get(e, "name"), errors[i].name, "errors[].name");
            same_string(json_object_get(e, "reason"), errors[i].reason, "errors[].reason");
        }
        json_t *count = json_object_get(doc, "error_count");
        if (p.n_errors_total > n_errors)
            FUZZ_ASSERT(json_integer_value(count) == (json_int_t)p.n_errors_total, "error_count");
        else
            FUZZ_ASSERT(count == NULL, "error_count on an uncut list");
    }
    FUZZ_ASSERT(json_object_size(doc) == 3u + (p.detail != NULL) + (p.sqlstate != NULL) + (n_errors != 0) +
                                              (n_errors != 0 && p.n_errors_total > n_errors),
                "unexpected members");
    json_decref(doc);

    /* the whole input as one string, NULs and all */
    tg_buf_reset(&b);
    tg_buf_append_json_string(&b, text, len);
    check_terminated(&b, "json string");
    FUZZ_ASSERT(b.len <= 6 * len + 2, "json string of %zu bytes for %zu", b.len, len);
    json_t *s = fuzz_check_json("json string", b.base, b.len, 1);
    FUZZ_ASSERT(json_is_string(s), "not a string");
    if (fuzz_utf8_valid(text, len))
        FUZZ_ASSERT(json_string_length(s) == len && memcmp(json_string_value(s), text, len) == 0, "string is not the input");
    json_decref(s);

    /* log lines */
    for (size_t i = 0; i < n_fields && i < 6; ++i)
        check_log_escape(fields[i], (size_t)(extra + i) % 300);

    /* headers: Allow, RateLimit */
    tg_buf_reset(&b);
    tg_router_format_allow(flags & 63, &b); /* every method and TG_ROUTER_ALLOW_HEAD */
    FUZZ_ASSERT(b.len == 0 || (b.base[b.len] == '\0' && fuzz_no_controls(b.base, b.len)), "Allow");
    uint64_t nums[2] = {0, 0};
    memcpy(nums, data, size < sizeof(nums) ? size : sizeof(nums));
    tg_bucket_state_t st = {.remaining = nums[0], .full_in_s = nums[1]};
    tg_buf_reset(&b);
    tg_limits_format_state(&st, &b);
    check_terminated(&b, "RateLimit");
    char want[80];
    snprintf(want, sizeof(want), "\"tenant\";r=%" PRIu64 ";t=%" PRIu64, nums[0], nums[1]);
    FUZZ_ASSERT(strcmp(b.base, want) == 0, "RateLimit \"%s\", expected \"%s\"", b.base, want);
    FUZZ_ASSERT(fuzz_no_controls(tg_status_reason(p.status), strlen(tg_status_reason(p.status))), "reason phrase");

    tg_buf_dispose(&b);
    free(text);
    return 0;
}

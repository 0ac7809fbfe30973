/*
 * Fuzz target: JSON request bodies against a catalog entry's parameters
 * (gateway/json.c: tg_json_parse and its walks; gateway/params.c: tg_params_decode
 * with a body, tg_params_check_json for every type and array type).
 *
 * Input: the first byte picks the query (POST /b and PUT /b/{id}: one body parameter
 * of every type and every array type, with bounds, enums, defaults, a required one
 * and a tenant-bound one; and a few small entries); the rest is the body.
 *
 * Asserts, besides tests/fuzz/params_check.h:
 * - tg_json_parse agrees with jansson (strict, duplicates refused, NUL allowed):
 *   what jansson reads, tg_json_parse accepts (unless nested deeper than
 *   TG_JSON_MAX_DEPTH), and what tg_json_parse accepts jansson reads too (unless a
 *   number jansson cannot hold, or a NUL in a key, which jansson does not support);
 *   a raw NUL byte is refused (jansson stops at one); when both accept, the trees are the same: types, sizes, keys and strings as
 *   decoded, iteration, lookup by key and by index;
 * - a body tg_json_parse refuses is BAD_JSON, and so is one that is not an object.
 */
#include "fixture.h"
#include "params_check.h"
#include "tollgate/router.h"

static const struct {
    const char *method, *path;
} targets[] = {
    {"POST", "/b"}, {"PUT", "/b/7"}, {"POST", "/users/new"}, {"PUT", "/users/5"}, {"POST", "/orders"},
    {"PATCH", "/items/a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
};
#define N_TARGETS (sizeof(targets) / sizeof(targets[0]))

/* the same document, read by both: walks them side by side */
static void same_tree(const tg_json_t *v, json_t *j, int depth)
{
    FUZZ_ASSERT(depth <= TG_JSON_MAX_DEPTH + 1, "deeper than the limit");
    switch (v->type) {
    case TG_JSON_NULL:
        FUZZ_ASSERT(json_is_null(j), "null differs");
        FUZZ_ASSERT(v->len == 4 && memcmp(v->text, "null", 4) == 0, "null text");
        break;
    case TG_JSON_TRUE:
        FUZZ_ASSERT(json_is_true(j), "true differs");
        break;
    case TG_JSON_FALSE:
        FUZZ_ASSERT(json_is_false(j), "false differs");
        break;
    case TG_JSON_NUMBER: {
        FUZZ_ASSERT(json_is_number(j), "number differs");
        int integer = tg_json_number_is_integer(v);
        FUZZ_ASSERT(integer == (memchr(v->text, '.', v->len) == NULL && memchr(v->text, 'e', v->len) == NULL &&
                                memchr(v->text, 'E', v->len) == NULL),
                    "is_integer wrong for %.*s", (int)v->len, v->text);
        FUZZ_ASSERT(integer == json_is_integer(j), "integer differs for %.*s", (int)v->len, v->text);
        break;
    }
    case TG_JSON_STRING: {
        FUZZ_ASSERT(json_is_string(j), "string differs");
        FUZZ_ASSERT(v->len >= 2 && v->text[0] == '"' && v->text[v->len - 1] == '"', "string window");
        char *d = malloc(v->len);
        size_t n = tg_json_string_decode(v, d);
        FUZZ_ASSERT(n <= v->len, "decoded longer than the text");
        FUZZ_ASSERT(n == json_string_length(j) && memcmp(d, json_string_value(j), n) == 0, "string content differs: %.*s",
                    (int)v->len, v->text);
        FUZZ_ASSERT(tg_json_string_equals(v, d, n), "string_equals of its own content fails");
        if (!tg_json_string_has_escapes(v))
            FUZZ_ASSERT(n == v->len - 2 && memcmp(d, v->text + 1, n) == 0, "no escapes but content differs");
        free(d);
        break;
    }
    case TG_JSON_ARRAY: {
        FUZZ_ASSERT(json_is_array(j), "array differs");
        size_t n = tg_json_count(v);
        FUZZ_ASSERT(n == json_array_size(j), "array size %zu vs %zu", n, json_array_size(j));
        tg_json_iter_t it;
        tg_json_t e, at;
        size_t i = 0;
        for (tg_json_iter_init(&it, v); tg_json_iter_next(&it, NULL, &e); ++i) {
            FUZZ_ASSERT(i < n, "iteration past the count");
            FUZZ_ASSERT(tg_json_array_get(v, i, &at) && at.text == e.text && at.len == e.len, "array_get(%zu) differs", i);
            same_tree(&e, json_array_get(j, i), depth + 1);
        }
        FUZZ_ASSERT(i == n && !tg_json_array_get(v, n, &at), "iteration count differs");
        break;
    }
    case TG_JSON_OBJECT: {
        FUZZ_ASSERT(json_is_object(j), "object differs");
        size_t n = tg_json_count(v);
        FUZZ_ASSERT(n == json_object_size(j), "object size %zu vs %zu", n, json_object_size(j));
        tg_json_iter_t it;
        tg_json_t k, e, got;
        size_t i = 0;
        for (tg_json_iter_init(&it, v); tg_json_iter_next(&it, &k, &e); ++i) {
            FUZZ_ASSERT(k.type == TG_JSON_STRING, "key not a string");
            char *d = malloc(k.len + 1);
            size_t kn = tg_json_string_decode(&k, d);
            d[kn] = '\0';
            json_t *member = json_object_getn(j, d, kn);
            FUZZ_ASSERT(member != NULL, "key %s missing in jansson's", d);
            FUZZ_ASSERT(tg_json_object_get(v, d, kn, &got) && got.text == e.text && got.len == e.len, "object_get(%s) differs", d);
            same_tree(&e, member, depth + 1);
            free(d);
        }
        FUZZ_ASSERT(i == n, "iteration count differs");
        break;
    }
    default:
        FUZZ_ASSERT(0, "type %d", (int)v->type);
    }
}

static int jansson_cannot_hold(const char *text)
{
    return strstr(text, "too big") != NULL || strstr(text, "overflow") != NULL || strstr(text, "NUL byte in object key") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const tg_config_t *cfg = fixture_config();
    size_t len = size - 1;
    char *body = malloc(len + 1); /* exact size, so that any read past the body is caught */
    memcpy(body, data + 1, len);

    /* the parser against jansson */
    tg_json_t root;
    tg_json_error_t jerr;
    json_error_t err;
    int ours = tg_json_parse(body, len, &root, &jerr);
    json_t *theirs = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
    if (len != 0 && memchr(body, '\0', len) != NULL) {
        /* a raw NUL is never JSON (jansson stops reading at one, and would take "true\0") */
        FUZZ_ASSERT(ours != 0, "we accept a body with a raw NUL byte");
    } else if (ours != 0) {
        FUZZ_ASSERT(jerr.reason != NULL && jerr.offset <= len && jerr.line >= 1 && jerr.column >= 1, "error position");
        FUZZ_ASSERT(theirs == NULL || strstr(jerr.reason, "nested deeper") != NULL, "jansson reads what we refuse (%s at %zu)",
                    jerr.reason, jerr.offset);
    } else {
        FUZZ_ASSERT(root.text >= body && root.text + root.len <= body + len, "root window outside the body");
        FUZZ_ASSERT(theirs != NULL || jansson_cannot_hold(err.text), "we accept what jansson refuses: %s", err.text);
        if (theirs != NULL)
            same_tree(&root, theirs, 0);
    }
    json_decref(theirs);

    /* the decode */
    const char *method = targets[data[0] % N_TARGETS].method, *path = targets[data[0] % N_TARGETS].path;
    tg_route_match_t m;
    FUZZ_ASSERT(tg_router_match(cfg->router, method, strlen(method), path, strlen(path), &m) == TG_ROUTE_FOUND, "%s %s", method,
                path);
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tg_params_t out;
    int rc = tg_params_decode(m.query, &m, h2o_iovec_init("", 0), h2o_iovec_init(body, len), FUZZ_TENANT, &pool, &out);
    if (len != 0)
        FUZZ_ASSERT((rc == TG_PARAMS_BAD_JSON) == (ours != 0 || root.type != TG_JSON_OBJECT), "BAD_JSON is %d for a body we %s",
                    rc == TG_PARAMS_BAD_JSON, ours != 0 ? "refuse" : "accept");
    check_decode(m.query, rc, &out, len != 0, &pool);
    h2o_mem_clear_pool(&pool);
    free(body);
    return 0;
}

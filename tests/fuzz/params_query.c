/*
 * Fuzz target: query-string and path-parameter decoding for every parameter type
 * (gateway/params.c: tg_params_decode with no body, tg_percent_decode, the text
 * checks of each type), against the fixture catalog.
 *
 * Input: the first byte's low bit picks GET or DELETE; the rest is a request target.
 * If it starts with '/', the part before the first '?' is routed (gateway/router.c)
 * and a matching query gets its path parameters and the rest as its query string;
 * a path that routes nowhere, or input that does not start with '/', is the query
 * string of GET /q or DELETE /q (one parameter of every type and every array type,
 * bounds, enums, defaults, a required one and a tenant-bound one).
 *
 * Asserts what tests/fuzz/params_check.h says, plus that every path parameter value
 * comes from the path (no crash, no leak, no read outside the input: ASan).
 */
#include "fixture.h"
#include "params_check.h"
#include "tollgate/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const tg_config_t *cfg = fixture_config();
    const char *method = (data[0] & 1) ? "DELETE" : "GET";
    size_t len = size - 1;
    char *target = malloc(len + 1); /* exact size (plus a byte the decoder never reads) */
    memcpy(target, data + 1, len);
    target[len] = '\0';

    const tg_query_t *q = NULL;
    tg_route_match_t m = {0}, *mp = NULL;
    h2o_iovec_t qs = h2o_iovec_init(target, len);
    if (len != 0 && target[0] == '/') {
        const char *question = memchr(target, '?', len);
        size_t plen = question != NULL ? (size_t)(question - target) : len;
        if (tg_router_match(cfg->router, method, strlen(method), target, plen, &m) == TG_ROUTE_FOUND) {
            q = m.query;
            mp = &m;
            qs = question != NULL ? h2o_iovec_init(question + 1, len - plen - 1) : h2o_iovec_init("", 0);
        }
    }
    if (q == NULL)
        q = fixture_query((data[0] & 1) ? "delete_types" : "query_types");

    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tg_params_t out;
    int rc = tg_params_decode(q, mp, qs, h2o_iovec_init(NULL, 0), FUZZ_TENANT, &pool, &out);
    check_decode(q, rc, &out, 0, &pool);
    h2o_mem_clear_pool(&pool);
    free(target);
    return 0;
}

/*
 * Fuzz target: route matching on raw request paths (gateway/router.c) against the
 * fixture catalog.
 *
 * Input: a method and a path. If the first byte is below 8 it picks the method from a
 * table ("GET", ..., "HEAD", "get", "OPTIONS") and the rest is the path; otherwise the
 * bytes before the first space are the method (any bytes) and the rest the path (no
 * space: "GET" and the whole input).
 *
 * Asserts, against a brute-force matcher written here over the catalog's templates:
 * FOUND exactly when some route of that method matches, and then the route whose
 * segments are literal first (literal beats {param}, segment by segment), with path
 * parameters that are the matching segments, in the route's order, inside the path
 * buffer; BAD_METHOD exactly when only routes of other methods match, with `allow`
 * the union of their methods and an Allow header listing exactly those; NOT_FOUND
 * otherwise, with `allow` 0. No crash, no read outside the input (ASan).
 */
#include "fixture.h"
#include "tollgate/router.h"

static const char *const method_table[8] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get", "OPTIONS"};
static const char *const method_names[TG_METHOD__COUNT] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

/* the method index as the catalog spells it (HEAD is GET's, as HTTP wants), or -1 */
static int method_of(const char *m, size_t len)
{
    for (int i = 0; i < TG_METHOD__COUNT; ++i)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], m, len) == 0)
            return i;
    return len == 4 && memcmp(m, "HEAD", 4) == 0 ? TG_METHOD_GET : -1;
}

#define MAX_SEGS 64

typedef struct {
    const char *base;
    size_t len;
} seg_t;

/* "/" is no segment; otherwise what follows the first '/' split on '/' (empty segments kept) */
static int split(const char *s, size_t len, seg_t *out, int max)
{
    if (len <= 1)
        return 0;
    int n = 0;
    const char *p = s + 1, *end = s + len;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash != NULL ? slash : end;
        if (n == max)
            return -1;
        out[n].base = p;
        out[n].len = (size_t)(stop - p);
        ++n;
        if (slash == NULL)
            return n;
        p = slash + 1;
    }
}

static int is_param(const seg_t *s)
{
    return s->len >= 2 && s->base[0] == '{' && s->base[s->len - 1] == '}';
}

/*
 * Does template `t` match the path segments? Fills `kinds` (1 literal, 0 param per
 * segment) and the captured segments.
 */
static int template_match(const char *t, const seg_t *ps, int np, char *kinds, seg_t *caps, int *ncaps)
{
    seg_t ts[MAX_SEGS];
    int nt = split(t, strlen(t), ts, MAX_SEGS);
    FUZZ_ASSERT(nt >= 0, "template %s has too many segments", t);
    if (nt != np)
        return 0;
    *ncaps = 0;
    for (int i = 0; i < nt; ++i) {
        if (is_param(&ts[i])) {
            if (ps[i].len == 0)
                return 0;
            kinds[i] = 0;
            caps[(*ncaps)++] = ps[i];
        } else {
            if (ts[i].len != ps[i].len || memcmp(ts[i].base, ps[i].base, ps[i].len) != 0)
                return 0;
            kinds[i] = 1;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const tg_config_t *cfg = fixture_config();
    const char *method;
    size_t method_len;
    const char *in = (const char *)data;
    const char *path;
    size_t path_len;

    if (size > 0 && data[0] < 8) {
        method = method_table[data[0]];
        method_len = strlen(method);
        path = in + 1;
        path_len = size - 1;
    } else {
        const char *sp = size > 0 ? memchr(in, ' ', size) : NULL;
        if (sp != NULL) {
            method = in;
            method_len = (size_t)(sp - in);
            path = sp + 1;
            path_len = size - method_len - 1;
        } else {
            method = "GET";
            method_len = 3;
            path = in;
            path_len = size;
        }
    }
    /* exact-size copies, so that any read past either is caught */
    char *mcopy = malloc(method_len + 1), *pcopy = malloc(path_len + 1);
    memcpy(mcopy, method, method_len);
    memcpy(pcopy, path, path_len);

    tg_route_match_t m;
    memset(&m, 0xa5, sizeof(m));
    int rc = tg_router_match(cfg->router, mcopy, method_len, pcopy, path_len, &m);
    FUZZ_ASSERT(rc == TG_ROUTE_FOUND || rc == TG_ROUTE_NOT_FOUND || rc == TG_ROUTE_BAD_METHOD, "rc %d", rc);

    /* the brute-force answer */
    int meth = method_of(mcopy, method_len);
    seg_t ps[MAX_SEGS];
    int np = path_len > 0 && pcopy[0] == '/' ? split(pcopy, path_len, ps, MAX_SEGS) : -1;
    const tg_query_t *best = NULL, *best_get = NULL; /* best_get: the route a GET takes (HEAD's, if it reads) */
    char best_kinds[MAX_SEGS], best_get_kinds[MAX_SEGS];
    seg_t best_caps[MAX_SEGS];
    int best_ncaps = 0;
    unsigned allow = 0;
    for (size_t i = 0; np >= 0 && i < cfg->n_queries; ++i) {
        const tg_query_t *q = &cfg->queries[i];
        char kinds[MAX_SEGS];
        seg_t caps[MAX_SEGS];
        int ncaps;
        if (!template_match(q->path, ps, np, kinds, caps, &ncaps))
            continue;
        allow |= 1u << q->method;
        if (q->method == TG_METHOD_GET && (best_get == NULL || memcmp(kinds, best_get_kinds, (size_t)np) > 0)) {
            best_get = q;
            memcpy(best_get_kinds, kinds, (size_t)np);
        }
        if ((int)q->method != meth)
            continue;
        FUZZ_ASSERT(best == NULL || memcmp(kinds, best_kinds, (size_t)np) != 0, "two routes %s and %s of one shape", q->name,
                    best->name);
        if (best == NULL || memcmp(kinds, best_kinds, (size_t)np) > 0) {
            best = q;
            memcpy(best_kinds, kinds, (size_t)np);
            memcpy(best_caps, caps, sizeof(caps[0]) * (size_t)ncaps);
            best_ncaps = ncaps;
        }
    }

    int is_head = method_len == 4 && memcmp(mcopy, "HEAD", 4) == 0;
    if (best_get != NULL && best_get->access != TG_ACCESS_WRITE)
        allow |= TG_ROUTER_ALLOW_HEAD;
    if (best != NULL && is_head && best->access == TG_ACCESS_WRITE)
        best = NULL; /* HEAD never runs a write: a 405 */
    if (best != NULL) {
        FUZZ_ASSERT(rc == TG_ROUTE_FOUND, "rc %d, expected %s", rc, best->name);
        FUZZ_ASSERT(m.query == best, "matched %s, expected %s", m.query != NULL ? m.query->name : "(null)", best->name);
        FUZZ_ASSERT(m.n_path_params == (size_t)best_ncaps, "%zu path params, expected %d", m.n_path_params, best_ncaps);
        for (int k = 0; k < best_ncaps; ++k) {
            FUZZ_ASSERT(m.path_params[k].base == best_caps[k].base && m.path_params[k].len == best_caps[k].len,
                        "path param %d is not the segment", k);
            FUZZ_ASSERT(m.path_params[k].base >= pcopy && m.path_params[k].base + m.path_params[k].len <= pcopy + path_len,
                        "path param %d outside the path", k);
        }
    } else if (allow != 0) {
        FUZZ_ASSERT(rc == TG_ROUTE_BAD_METHOD, "rc %d, expected BAD_METHOD", rc);
        FUZZ_ASSERT(m.allow == allow, "allow %#x, expected %#x", m.allow, allow);
        FUZZ_ASSERT(meth < 0 || is_head || (m.allow & (1u << meth)) == 0, "allow has the method");
        FUZZ_ASSERT(!is_head || (m.allow & TG_ROUTER_ALLOW_HEAD) == 0, "a HEAD refused with HEAD in Allow");
        tg_buf_t b = {0}, want = {0};
        tg_router_format_allow(m.allow, &b);
        for (int i = 0; i < TG_METHOD__COUNT; ++i)
            if (allow & (1u << i))
                tg_buf_printf(&want, "%s%s%s", want.len != 0 ? ", " : "", method_names[i],
                              i == TG_METHOD_GET && (allow & TG_ROUTER_ALLOW_HEAD) != 0 ? ", HEAD" : "");
        FUZZ_ASSERT(b.len == want.len && memcmp(b.base, want.base, b.len) == 0, "Allow \"%s\", expected \"%s\"", b.base,
                    want.base);
        FUZZ_ASSERT(fuzz_no_controls(b.base, b.len), "Allow has control characters");
        tg_buf_dispose(&b);
        tg_buf_dispose(&want);
    } else {
        FUZZ_ASSERT(rc == TG_ROUTE_NOT_FOUND, "rc %d, expected NOT_FOUND", rc);
        FUZZ_ASSERT(m.allow == 0 && m.query == NULL, "NOT_FOUND with allow %#x", m.allow);
    }
    free(mcopy);
    free(pcopy);
    return 0;
}

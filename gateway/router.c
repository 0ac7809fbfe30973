/*
 * Route matching over a trie of path segments: literal children first, then the
 * one `{param}` child, backtracking so that "GET /users/{id}" and
 * "POST /users/new" can live side by side. HEAD is matched as GET (HTTP requires a
 * server that answers GET to answer HEAD), and Allow lists it after GET, except on a
 * GET route whose query writes: HEAD must be safe, so there it is a 405.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/router.h"
#include "internal.h"

typedef struct st_tg_route_node_t tg_route_node_t;

/** a literal segment leading to a child */
typedef struct st_tg_route_edge_t {
    char *seg; /* the literal segment, exact bytes as written in the catalog */
    size_t len;
    tg_route_node_t *child;
} tg_route_edge_t;

struct st_tg_route_node_t {
    tg_route_edge_t *lits;                          /* literal children */
    size_t n_lits;
    tg_route_node_t *param;                         /* the `{name}` child, if any */
    const tg_query_t *by_method[TG_METHOD__COUNT];  /* the queries ending here */
};

struct st_tg_router_t {
    tg_route_node_t root;
};

static tg_route_node_t *child_for(tg_route_node_t *n, const char *seg, size_t len, int is_param)
{
    if (is_param) {
        if (n->param == NULL)
            n->param = tg_calloc(1, sizeof(*n->param));
        return n->param;
    }
    for (size_t i = 0; i != n->n_lits; ++i)
        if (n->lits[i].len == len && memcmp(n->lits[i].seg, seg, len) == 0)
            return n->lits[i].child;
    n->lits = tg_realloc(n->lits, sizeof(*n->lits) * (n->n_lits + 1));
    tg_route_edge_t *e = &n->lits[n->n_lits++];
    e->seg = tg_strndup(seg, len);
    e->len = len;
    e->child = tg_calloc(1, sizeof(*e->child));
    return e->child;
}

static void free_node(tg_route_node_t *n)
{
    for (size_t i = 0; i != n->n_lits; ++i) {
        free_node(n->lits[i].child);
        free(n->lits[i].child);
        free(n->lits[i].seg);
    }
    free(n->lits);
    if (n->param != NULL) {
        free_node(n->param);
        free(n->param);
    }
}

/* Reports a problem with q's route, prefixed with where q was defined when known. */
__attribute__((format(printf, 3, 4))) static void route_error(tg_errors_t *errs, const tg_query_t *q, const char *fmt, ...)
{
    tg_buf_t b = {0};
    /* "FILE:LINE: queries[i] (NAME).route: ", as every catalog error; LINE is the route's own */
    int line = q->route_line > 0 ? q->route_line : q->line;
    if (q->file != NULL && line > 0)
        tg_buf_printf(&b, "%s:%d: ", q->file, line);
    else if (q->file != NULL)
        tg_buf_printf(&b, "%s: ", q->file);
    tg_buf_printf(&b, "queries[%u] (%s).route: ", q->entry, q->name);
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    tg_errors_add(errs, "%s", b.base);
    tg_buf_dispose(&b);
}

/*
 * Two paths of the same shape: the first {param} segment they name differently, in
 * `a` and `b`; returns 0 when every one has the same name.
 */
static int renamed_param(const char *a, const char *b, tg_slice_t *in_a, tg_slice_t *in_b)
{
    while (*a != '\0' && *b != '\0') {
        size_t la = strcspn(a + 1, "/") + 1, lb = strcspn(b + 1, "/") + 1; /* "/seg" */
        if (a[1] == '{' && (la != lb || memcmp(a, b, la) != 0)) {
            *in_a = (tg_slice_t){a + 1, la - 1};
            *in_b = (tg_slice_t){b + 1, lb - 1};
            return 1;
        }
        a += la, b += lb;
    }
    return 0;
}

static int add_route(tg_router_t *r, const tg_query_t *q, tg_errors_t *errs)
{
    const char *p = q->path;
    if (p == NULL || p[0] != '/') {
        route_error(errs, q, "the path must start with '/'");
        return -1;
    }
    tg_route_node_t *n = &r->root;
    size_t n_params = 0;
    /* "/" alone is the root; otherwise each '/'-separated segment is one level. */
    if (p[1] != '\0') {
        const char *seg = p + 1;
        for (;;) {
            const char *end = strchr(seg, '/');
            size_t len = end != NULL ? (size_t)(end - seg) : strlen(seg);
            int is_param = len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
            if (!is_param && (memchr(seg, '{', len) != NULL || memchr(seg, '}', len) != NULL)) {
                route_error(errs, q, "segment \"%.*s\" must be a literal or a whole {name}", (int)len, seg);
                return -1;
            }
            if (is_param && ++n_params > TG_ROUTER_MAX_PATH_PARAMS) {
                route_error(errs, q, "more than %d {params}", TG_ROUTER_MAX_PATH_PARAMS);
                return -1;
            }
            n = child_for(n, seg, len, is_param);
            if (end == NULL)
                break;
            seg = end + 1;
        }
    }
    if (n->by_method[q->method] != NULL) {
        route_error(errs, q, "\"%s %s\" is already taken by query %s", tg_method_name(q->method), q->path,
                    n->by_method[q->method]->name);
        return -1;
    }
    /* one path, one set of names: OpenAPI (and any reader) must see the same parameters on every method of a path */
    for (int i = 0; i != TG_METHOD__COUNT; ++i) {
        const tg_query_t *other = n->by_method[i];
        tg_slice_t mine, theirs;
        if (other == NULL)
            continue;
        if (renamed_param(q->path, other->path, &mine, &theirs)) {
            route_error(errs, q, "segment %.*s is %.*s in query %s's route \"%s %s\": one path must name it the same way", (int)mine.len,
                        mine.base, (int)theirs.len, theirs.base, other->name, tg_method_name(other->method), other->path);
            return -1;
        }
        break; /* the others were checked against this one */
    }
    n->by_method[q->method] = q;
    return 0;
}

tg_router_t *tg_router_build(const tg_query_t *queries, size_t n, tg_errors_t *errs)
{
    tg_router_t *r = tg_calloc(1, sizeof(*r));
    int failed = 0;
    for (size_t i = 0; i != n; ++i)
        if (add_route(r, &queries[i], errs) != 0)
            failed = 1;
    if (failed) {
        tg_router_free(r);
        return NULL;
    }
    return r;
}

void tg_router_free(tg_router_t *r)
{
    if (r == NULL)
        return;
    free_node(&r->root);
    free(r);
}

/** matching state carried down the recursion */
struct match_ctx {
    int method; /* tg_method_t, or -1 for a method no route can have */
    int get_seen; /* a node with a GET route was reached: the one a GET takes (nodes are visited in precedence order) */
    tg_route_match_t *m;
    tg_slice_t caps[TG_ROUTER_MAX_PATH_PARAMS];
    unsigned allow;  /* methods of every node whose path matched */
    int path_found;
};

static int match_node(const tg_route_node_t *n, const char *seg, const char *end, size_t depth, struct match_ctx *c)
{
    if (seg == NULL) {
        /* The whole path is consumed: does this node serve the method? */
        unsigned here = 0;
        for (int i = 0; i != TG_METHOD__COUNT; ++i)
            if (n->by_method[i] != NULL)
                here |= 1u << i;
        if (here == 0)
            return 0;
        /* HEAD is a GET without the body, so only a read may answer it: the route a GET takes decides */
        const tg_query_t *get = n->by_method[TG_METHOD_GET];
        if (get != NULL && !c->get_seen) {
            c->get_seen = 1;
            if (get->access != TG_ACCESS_WRITE)
                here |= TG_ROUTER_ALLOW_HEAD;
        }
        c->path_found = 1;
        c->allow |= here;
        if (c->method >= 0 && n->by_method[c->method] != NULL) {
            c->m->query = n->by_method[c->method];
            c->m->n_path_params = depth;
            memcpy(c->m->path_params, c->caps, sizeof(c->caps[0]) * depth);
            return 1;
        }
        return 0;
    }
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    size_t len = slash != NULL ? (size_t)(slash - seg) : (size_t)(end - seg);
    const char *next = slash != NULL ? slash + 1 : NULL;
    for (size_t i = 0; i != n->n_lits; ++i) {
        const tg_route_edge_t *e = &n->lits[i];
        if (e->len == len && memcmp(e->seg, seg, len) == 0 && match_node(e->child, next, end, depth, c))
            return 1;
    }
    /* A {param} takes any non-empty segment. */
    if (n->param != NULL && len != 0 && depth < TG_ROUTER_MAX_PATH_PARAMS) {
        c->caps[depth].base = seg;
        c->caps[depth].len = len;
        if (match_node(n->param, next, end, depth + 1, c))
            return 1;
    }
    return 0;
}

int tg_router_match(const tg_router_t *r, const char *method_name, size_t method_len, const char *path, size_t path_len,
                    tg_route_match_t *m)
{
    int method = tg_method_from_name(method_name, method_len), head = 0;
    if (method < 0 && method_len == 4 && memcmp(method_name, "HEAD", 4) == 0)
        method = TG_METHOD_GET, head = 1;
    struct match_ctx c = {.method = method, .m = m};
    m->query = NULL;
    m->n_path_params = 0;
    m->allow = 0;
    if (path_len == 0 || path[0] != '/')
        return TG_ROUTE_NOT_FOUND;
    const char *first = path_len == 1 ? NULL : path + 1;
    if (match_node(&r->root, first, path + path_len, 0, &c)) {
        if (!head || m->query->access != TG_ACCESS_WRITE)
            return TG_ROUTE_FOUND;
        /* the route a GET would take writes: HEAD must be safe (a link checker must never run a write); Allow: every method of the path */
        struct match_ctx all = {.method = -1, .m = m};
        match_node(&r->root, first, path + path_len, 0, &all);
        m->query = NULL;
        m->n_path_params = 0;
        m->allow = all.allow;
        return TG_ROUTE_BAD_METHOD;
    }
    if (!c.path_found)
        return TG_ROUTE_NOT_FOUND;
    m->allow = c.allow;
    return TG_ROUTE_BAD_METHOD;
}

void tg_router_format_allow(unsigned allow, tg_buf_t *out)
{
    int first = 1;
    for (int i = 0; i != TG_METHOD__COUNT; ++i) {
        if ((allow & (1u << i)) == 0)
            continue;
        if (!first)
            tg_buf_appends(out, ", ");
        tg_buf_appends(out, tg_method_name((tg_method_t)i));
        if (i == TG_METHOD_GET && (allow & TG_ROUTER_ALLOW_HEAD) != 0)
            tg_buf_appends(out, ", HEAD");
        first = 0;
    }
}

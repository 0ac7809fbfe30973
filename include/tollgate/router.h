/*
 * Route matching: maps a method and a request path to a catalog query and the
 * values of the route's `{name}` segments.
 */
#ifndef tollgate__router_h
#define tollgate__router_h

#include <stddef.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"

/** most `{name}` segments a route may have */
#define TG_ROUTER_MAX_PATH_PARAMS 16

typedef struct st_tg_router_t tg_router_t;

/** a slice of the request path (still percent-encoded) */
typedef struct st_tg_slice_t {
    const char *base;
    size_t len;
} tg_slice_t;

/** result codes of tg_router_match */
enum {
    TG_ROUTE_FOUND = 0,       /* `query` and `path_params` are set */
    TG_ROUTE_NOT_FOUND = -1,  /* no route has this path: 404 */
    TG_ROUTE_BAD_METHOD = -2, /* the path matches, the method does not: 405, `allow` is set */
};

/** in tg_route_match_t.allow: the path takes HEAD (its GET route is a read) */
#define TG_ROUTER_ALLOW_HEAD (1u << TG_METHOD__COUNT)

/** what tg_router_match found */
typedef struct st_tg_route_match_t {
    const tg_query_t *query;
    tg_slice_t path_params[TG_ROUTER_MAX_PATH_PARAMS]; /* in the order the route names them */
    size_t n_path_params;
    unsigned allow; /* for TG_ROUTE_BAD_METHOD: bit (1 << tg_method_t) per method the path takes, and TG_ROUTER_ALLOW_HEAD */
} tg_route_match_t;

/**
 * Builds the router for a catalog. Problems (a route that is not "METHOD /path",
 * two queries on the same method and path, a malformed `{}` segment) go to `errs`;
 * returns NULL if there was any. The queries must outlive the router.
 */
tg_router_t *tg_router_build(const tg_query_t *queries, size_t n, tg_errors_t *errs);

/** frees a router */
void tg_router_free(tg_router_t *r);

/**
 * Matches `path` (without the query string) for `method_name` (as the client sent
 * it: any method name; "HEAD" finds the GET route, unless that route's query writes:
 * TG_ROUTE_BAD_METHOD then). Literal segments win over
 * `{param}` segments. Returns TG_ROUTE_FOUND, TG_ROUTE_NOT_FOUND or
 * TG_ROUTE_BAD_METHOD.
 */
int tg_router_match(const tg_router_t *r, const char *method_name, size_t method_len, const char *path, size_t path_len,
                    tg_route_match_t *m);

/** writes the Allow header value for a bit set ("GET, HEAD, POST": HEAD after GET where TG_ROUTER_ALLOW_HEAD is set) */
void tg_router_format_allow(unsigned allow, tg_buf_t *out);

#endif

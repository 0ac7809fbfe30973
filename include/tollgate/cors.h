/*
 * Cross-origin requests from browsers (CORS): the origins a config allows, and the
 * header values the gateway answers them with. Pure logic; the handler
 * (handlers/catalog.c) adds the headers and answers preflights.
 */
#ifndef tollgate__cors_h
#define tollgate__cors_h

#include <stddef.h>

/** the headers a preflight may ask for: every request header the gateway reads */
#define TG_CORS_ALLOW_HEADERS "Authorization, X-API-Key, Content-Type, X-Request-Id, traceparent, Tollgate-Read-After"
/** the response headers a browser's script may read besides the safelisted ones (Content-Type, Content-Length, ...) */
#define TG_CORS_EXPOSE_HEADERS "X-Request-Id, RateLimit, RateLimit-Policy, Retry-After, Cache-Status, Age, Location, Link, Tollgate-Read-After"
/** how long a browser may keep a preflight's answer when the config says nothing (seconds) */
#define TG_CORS_DEFAULT_MAX_AGE_S 600

/** a config's `cors` (the config holds it; NULL there: CORS is off) */
typedef struct st_tg_cors_t {
    char **origins;   /* serialized origins, "https://app.example[:port]", exactly as browsers send them */
    size_t n_origins;
    int any;          /* "*" was listed: every origin but "null" */
    int max_age_s;    /* Access-Control-Max-Age of preflights */
    char max_age[16]; /* the same, as the header's text */
} tg_cors_t;

/**
 * Is `s` an origin the config may list: "*", or "http://HOST" / "https://HOST" with
 * an optional ":PORT", lower case, no path (not even "/")? Returns 0, or -1 with the
 * reason in `why`.
 */
int tg_cors_check_origin(const char *s, char *why, size_t why_len);

/** is `origin` (the request's Origin header, `len` bytes) allowed by `cors`? "null" never is */
int tg_cors_allows(const tg_cors_t *cors, const char *origin, size_t len);

/** frees one (NULL: nothing) */
void tg_cors_free(tg_cors_t *cors);

#endif

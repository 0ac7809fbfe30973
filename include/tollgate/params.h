/*
 * Parameter decoding: turns the path, query string and JSON body of a request into
 * the text values bound to a catalog query's $1..$n, checking each against its type
 * and bounds. Request data is only ever bound, never spliced into SQL.
 */
#ifndef tollgate__params_h
#define tollgate__params_h

#include <stddef.h>
#include <h2o.h>
#include "tollgate/config.h"
#include "tollgate/json.h"
#include "tollgate/router.h"

/** one bad parameter, for the problem's `errors` array */
typedef struct st_tg_param_error_t {
    const char *name;   /* the parameter (or the unknown key) */
    const char *reason; /* what is wrong, e.g. "must be an integer" */
} tg_param_error_t;

/** what went wrong overall (the status to answer) */
enum {
    TG_PARAMS_OK = 0,
    TG_PARAMS_INVALID = 1,  /* 400; see `errors` */
    TG_PARAMS_BAD_JSON = 2, /* 400; the body is not a JSON object; `detail` says why */
};

/** the most errors a 400 lists: a request of many bad keys must not buy an answer many times its size */
#define TG_MAX_PARAM_ERRORS 32
/** the most items an array parameter takes (query string or JSON body); more is a 400 naming the parameter */
#define TG_MAX_ARRAY_ITEMS 10000

/** the decoded values and the errors, all allocated from the request's pool */
typedef struct st_tg_params_t {
    const char **values;      /* values[i] binds $(i+1): PostgreSQL text form, NUL-terminated; NULL is SQL NULL */
    tg_param_error_t *errors; /* the bad parameters: the first TG_MAX_PARAM_ERRORS of them */
    size_t n_errors;
    size_t n_errors_total;    /* all of them (more than n_errors when the list was cut) */
    const char *detail;       /* for TG_PARAMS_BAD_JSON: why the body was rejected */
} tg_params_t;

/**
 * Decodes every parameter of `q`. `m` holds the path parameters from the router;
 * `query_string` is what follows '?' (may be empty); `body` is the raw request body
 * (empty when none; the caller has already checked its content type and size);
 * `tenant` is the caller's tenant name, bound to `from: "tenant"` parameters (it must
 * live as long as `out`). Unknown query-string keys and body members are errors too,
 * and so is sending a tenant-bound parameter.
 * Returns TG_PARAMS_OK, TG_PARAMS_INVALID or TG_PARAMS_BAD_JSON.
 */
int tg_params_decode(const tg_query_t *q, const tg_route_match_t *m, h2o_iovec_t query_string, h2o_iovec_t body,
                     const char *tenant, h2o_mem_pool_t *pool, tg_params_t *out);

/**
 * Checks one scalar value given as text (path or query string) against `p`, and
 * writes its canonical PostgreSQL text form to `*canon` (pool-allocated). Returns
 * NULL if good, else the reason. Exposed for tests and for catalog defaults.
 */
const char *tg_params_check_text(const tg_param_t *p, const char *s, size_t len, h2o_mem_pool_t *pool, const char **canon);

/**
 * Checks one JSON value (a body member, or a catalog `default` or `enum` value, as
 * returned by tg_json_parse) against `p`: a scalar, or for array parameters a JSON
 * array of scalars, which becomes a PostgreSQL array literal. Numbers, numerics in
 * strings and json/jsonb values are taken as the bytes written, never re-serialized.
 * JSON null gives `*canon = NULL` (SQL NULL). Returns NULL if good, else the reason.
 */
const char *tg_params_check_json(const tg_param_t *p, const tg_json_t *v, h2o_mem_pool_t *pool, const char **canon);

/** decodes %XX escapes (and '+' as space when `plus_is_space`) into `pool` memory; NULL on a bad escape */
char *tg_percent_decode(const char *s, size_t len, int plus_is_space, h2o_mem_pool_t *pool, size_t *out_len);

#endif

/*
 * The configuration snapshot: the config file and the catalog it names, parsed and
 * validated into one immutable structure. A snapshot is built once (at start, later
 * on reload) and never modified; threads share it read-only.
 */
#ifndef tollgate__config_h
#define tollgate__config_h

#include <stddef.h>
#include <stdint.h>
#include "tollgate/buf.h"
#include "tollgate/cors.h"

/** parameter types (docs/reference.md lists them); arrays are the same type with `is_array` set */
typedef enum en_tg_type_t {
    TG_TYPE_INT2,
    TG_TYPE_INT4,
    TG_TYPE_INT8,
    TG_TYPE_FLOAT4,
    TG_TYPE_FLOAT8,
    TG_TYPE_NUMERIC,
    TG_TYPE_TEXT,
    TG_TYPE_BOOL,
    TG_TYPE_UUID,
    TG_TYPE_DATE,
    TG_TYPE_TIMESTAMPTZ,
    TG_TYPE_JSON,
    TG_TYPE_JSONB,
    TG_TYPE__COUNT
} tg_type_t;

/** the type's name as written in the catalog ("int4"), without "[]" */
const char *tg_type_name(tg_type_t t);
/** looks a type name up; returns -1 if unknown */
int tg_type_from_name(const char *name, size_t len);
/** the PostgreSQL OID of the type (or of its array type when `is_array`) */
unsigned tg_type_oid(tg_type_t t, int is_array);

/** where a parameter's value comes from (derived from the route and method at load) */
typedef enum en_tg_param_source_t {
    TG_SOURCE_PATH,  /* a `{name}` segment of the route */
    TG_SOURCE_QUERY, /* the query string (GET and DELETE) */
    TG_SOURCE_BODY,  /* a member of the JSON object body (other methods) */
    TG_SOURCE_TENANT, /* `from: "tenant"`: the caller's tenant name; the caller cannot set it */
} tg_param_source_t;

/** one parameter of a catalog query; the i-th binds `$i+1` */
typedef struct st_tg_param_t {
    char *name;               /* as in the catalog */
    char *description;        /* for documentation (OpenAPI); NULL: none */
    tg_type_t type;           /* scalar type (element type for arrays) */
    int is_array;             /* declared as `type[]` */
    int required;             /* true unless `required: false` or a `default` is given */
    tg_param_source_t source; /* path, query string or body */
    int path_index;           /* for TG_SOURCE_PATH: index of the `{name}` among the route's params */
    int has_default;          /* a `default` was given */
    char *default_text;       /* the default as PostgreSQL text (array literal for arrays); NULL means SQL NULL */
    int has_min, has_max;     /* bounds given (numeric types only) */
    double min, max;          /* the bounds, for float and numeric types */
    int64_t imin, imax;       /* the same bounds, exact, for integer types */
    char *min_text, *max_text; /* numeric: the bounds as the catalog wrote them (compared exactly, in decimal) */
    long max_length;          /* longest text in characters (each element for arrays); -1: no limit */
    char **enum_values;       /* allowed values in canonical text form; NULL: any */
    size_t n_enum;
} tg_param_t;

/** what a query answers with */
typedef enum en_tg_returns_t {
    TG_RETURNS_ONE,  /* 200 with a JSON object; 404 when no row */
    TG_RETURNS_MANY, /* 200 with a JSON array (at most max_rows rows) */
    TG_RETURNS_NONE, /* 200 with {"rows_affected": N} */
} tg_returns_t;

/** where a query may run */
typedef enum en_tg_access_t {
    TG_ACCESS_READ,  /* a replica may serve it */
    TG_ACCESS_WRITE, /* always the primary */
} tg_access_t;

/** priority classes (tenants and queries) */
typedef enum en_tg_priority_t {
    TG_PRIORITY_INHERIT = -1, /* queries only: use the tenant's */
    TG_PRIORITY_HIGH = 0,
    TG_PRIORITY_LOW = 1,
} tg_priority_t;

/** HTTP methods a route may use */
typedef enum en_tg_method_t {
    TG_METHOD_GET,
    TG_METHOD_POST,
    TG_METHOD_PUT,
    TG_METHOD_PATCH,
    TG_METHOD_DELETE,
    TG_METHOD__COUNT
} tg_method_t;

/** "GET", "POST", ... */
const char *tg_method_name(tg_method_t m);
/** looks a method up; -1 if not one of the above */
int tg_method_from_name(const char *name, size_t len);

/**
 * Walks a `location` template ("/users/{id}"): from *at, the literal text before the
 * next {name} (lit, lit_len) and that name (name, len); returns 1, or 0 at the end,
 * when lit holds what is left. *at moves past what was returned.
 */
int tg_template_next(const char **at, const char **lit, size_t *lit_len, const char **name, size_t *len);

/** one catalog entry */
typedef struct st_tg_query_t {
    uint32_t index;         /* position in tg_config_t.queries */
    char *name;             /* unique over the catalog */
    char *description;      /* may be NULL */
    tg_method_t method;     /* from `route` */
    char *path;             /* the path template of `route`, e.g. "/users/{id}" */
    char *sql;              /* the statement text (sql, joined sql lines, or sql_file's contents) */
    tg_param_t *params;     /* params[i] binds $(i+1) */
    size_t n_params;
    tg_returns_t returns;
    tg_access_t access;
    int timeout_ms;         /* statement timeout (default_timeout_ms when not given) */
    int cost;               /* tokens a call takes (default 1) */
    int max_in_flight;      /* 0: no cap */
    tg_priority_t priority; /* TG_PRIORITY_INHERIT unless given */
    int cached;             /* a `cache` object was given */
    int cache_ttl_ms;
    int cache_stale_ms;
    char **invalidates;     /* names of cached queries a successful call drops */
    struct st_tg_query_state_t **invalidate_states; /* their live states (bound with `state`), or NULL */
    size_t n_invalidates;
    int enabled;            /* false: ships switched off */
    int status;             /* the status of a success: 200 unless `status` says 201, 202, 203 or 204 (returns none) */
    char *location;         /* `location`: a path template whose {column}s the answer's first row fills (Location header), or NULL */
    int not_found_if_none;  /* a write that touched no row answers 404 (returns none: 0 rows affected; many: no row) */
    char *cursor_column;    /* `cursor.column`: the column of the last row that the next page starts after, or NULL */
    int cursor_param;       /* `cursor.param`: index of the query-string parameter that takes it (Link: rel="next") */
    int cursor_limit;       /* `cursor.limit`: index of the parameter that bounds the page, or -1 (a Link on every non-empty page) */
    char *file;             /* the catalog file it came from */
    int line;               /* its line in that file: of its "name", else of its opening brace (0 if unknown) */
    int route_line;         /* the line of its "route" (0 if unknown) */
    uint32_t entry;         /* its index in its file's "queries" (error messages name it queries[entry]) */
    char stmt_name[40];     /* the prepared statement's name, from a hash of its SQL and parameter types: "tg_<32 hex>" */
    uint64_t cache_def;     /* a hash of what shapes its answer (the statement, `returns`, max_rows): part of its cache keys */
    struct st_tg_query_state_t *state; /* its live state (tollgate/state.h), bound by tg_limits_create; NULL before */
} tg_query_t;

/** a listening address */
typedef struct st_tg_listen_t {
    char *host;      /* numeric address or name, resolved at start */
    uint16_t port;
    char *cert_file; /* TLS certificate chain (PEM); NULL: cleartext */
    char *key_file;  /* TLS private key (PEM) */
    long max_connections; /* client connections open at once on it; past it new ones are closed at once (default 10000) */
} tg_listen_t;

/** a tenant: who a key belongs to and the limits it gets */
/**
 * The catalog queries a tenant may call (`queries` in the config): names, or prefixes
 * ending in '*' ("orders_*"; "*" alone is every query).
 */
typedef struct st_tg_query_list_t {
    char **patterns;   /* as configured; NULL (no `queries`): every query */
    size_t n_patterns;
    uint8_t *allowed;  /* by query index, resolved once the catalog is read; NULL: every query */
} tg_query_list_t;

/** does `pattern` (a name, or a prefix ending in '*') match the query name `name`? */
int tg_query_pattern_match(const char *pattern, const char *name);

typedef struct st_tg_tenant_t {
    char *name;
    uint8_t (*keys)[32]; /* SHA-256 of each accepted key */
    size_t n_keys;
    double rate;         /* tokens per second */
    double burst;        /* bucket size */
    int max_in_flight;   /* 0: no cap */
    tg_priority_t priority;
    tg_query_list_t queries; /* what it may call */
    int enabled;             /* false: ships switched off (403) */
} tg_tenant_t;

/** the whole configuration snapshot */
/** `shared_limits`: tenant buckets global across every instance naming the same Redis (and prefix) */
typedef struct st_tg_shared_limits_t {
    char *redis;            /* the URL as written */
    char *redis_shown;      /* the same without its password (logs, /admin/status) */
    char *host;             /* a name, an IPv4 or an IPv6 address (without brackets) */
    int port;               /* default 6379 */
    int db;                 /* default 0 */
    char *user, *password;  /* NULL: none (AUTH password alone when no user) */
    char *prefix;           /* of every key it writes; default "tollgate:" */
    int lease_ms;           /* a block covers this much of the instance's recent demand */
    int health_interval_ms; /* Redis is checked this often; away longer: local limits */
    int timeout_ms;         /* connect and command timeout */
    int expected_instances; /* the divisor of an instance that never reached Redis */
} tg_shared_limits_t;

/**
 * Parses `redis://[[user]:password@]host[:port][/db]` into `out`'s host, port, db,
 * user, password and redis_shown (user and password percent-decoded). Returns 0, or -1
 * with the reason in `err`.
 */
int tg_redis_url_parse(const char *url, tg_shared_limits_t *out, char *err, size_t err_size);

/** frees what tg_redis_url_parse and the config put in `s`, and `s` */
void tg_shared_limits_free(tg_shared_limits_t *s);

typedef struct st_tg_config_t {
    char *path;                  /* the config file as given */
    char *dir;                   /* its folder: relative paths in it are relative to this */
    tg_listen_t *listen;         /* at least one */
    size_t n_listen;
    int has_admin_listen;
    tg_listen_t admin_listen;
    int has_admin_token;
    uint8_t admin_token[32];     /* SHA-256 of the admin token */
    int threads;                 /* resolved: 0 in the file becomes the number of CPUs */
    char *primary;               /* libpq connection string */
    char **replicas;             /* libpq connection strings */
    char **replica_names;        /* replica i's name: given ({"name", "dsn"}), else "replica<i+1>" */
    size_t n_replicas;
    struct {
        int size;                /* connections per backend, over all threads */
        int acquire_timeout_ms;
        double low_priority_share;
        struct {
            int adaptive;        /* false (`overload: false`): no limit per backend but the pool's own (no admission, no samples) */
            double tolerance;    /* latency may be this many times its unloaded floor before the limit shrinks */
        } overload;
        struct {
            double ratio;        /* read retries per read call, over the window */
            double min_per_s;    /* retries always allowed, per second of the window */
            int window_ms;
        } retry_budget;          /* read at start: a reload that changes it takes effect at the next start */
    } pool;
    int replica_max_lag_ms;
    int read_after_wait_ms;  /* how long a read with Tollgate-Read-After waits for a replica to replay past it (0: never waits) */
    int health_interval_ms;
    int default_timeout_ms;
    size_t max_body_bytes;
    size_t max_rows;
    int max_in_flight;           /* gateway-wide; 0: no cap */
    int shutdown_grace_ms;
    struct {
        int idle_timeout_ms;   /* a connection with nothing under way is closed after this (and an answer not read for this long) */
        int header_timeout_ms; /* a request's headers must arrive within this of its first byte (and a TLS handshake) */
        int body_timeout_ms;   /* a request's body must arrive within this of its headers */
        int max_streams_per_connection; /* HTTP/2 requests run at once per connection (1 to 100) */
    } http;
    size_t cache_max_bytes;
    struct {
        int on;                  /* false: `compression` is null, nothing is compressed */
        size_t min_bytes;        /* smaller answers are sent as they are */
    } compression;
    tg_cors_t *cors;             /* NULL: `cors` is null, no CORS headers and no preflights */
    char *access_log;            /* NULL: off; "-": stdout; else a file path */
    tg_tenant_t *tenants;
    size_t n_tenants;
    int has_anonymous;           /* keyless requests are served as tenant "anonymous" */
    double anonymous_rate, anonymous_burst;
    tg_query_list_t anonymous_queries; /* what keyless callers may call */
    tg_shared_limits_t *shared_limits; /* NULL: `shared_limits` is null, each instance limits alone */
    char **catalog_paths;        /* as given (resolved against dir) */
    size_t n_catalog_paths;
    tg_query_t *queries;         /* the catalog, in file order */
    size_t n_queries;
    struct st_tg_router_t *router; /* built from the queries */
    tg_errors_t warnings;        /* things that are allowed but probably wrong: logged at start, printed by --check */
} tg_config_t;

/**
 * Reads and validates a config file and the catalog it names. Every problem found is
 * appended to `errs` (each naming the file, the field and, where known, the line);
 * returns NULL if there was any.
 */
tg_config_t *tg_config_load(const char *path, tg_errors_t *errs);

/**
 * Parses a config from memory (`path` only names it in messages and anchors relative
 * paths). Used by tests.
 */
tg_config_t *tg_config_parse(const char *text, size_t len, const char *path, tg_errors_t *errs);

/** frees a snapshot */
void tg_config_free(tg_config_t *cfg);

/**
 * The line of `field` (named as error messages name it: "primary",
 * "queries[2] (get_user).sql") in the config or catalog file `file`, read again
 * now; 0 if the file cannot be read or parsed. For messages made after loading
 * (`--check --db`).
 */
int tg_config_field_line(const char *file, const char *field);

/** looks a query up by name; NULL if none */
const tg_query_t *tg_config_find_query(const tg_config_t *cfg, const char *name);

/**
 * Parses "sha256:<64 hex digits>" into `out`. Returns 0, or -1 if malformed.
 */
int tg_parse_sha256(const char *s, uint8_t out[32]);

/** writes "sha256:<hex>" of `key` into `out` (72 bytes incl. NUL) */
void tg_hash_key(const char *key, size_t len, char out[72]);

/** may a tenant with list `l` call `q`? */
static inline int tg_query_list_allows(const tg_query_list_t *l, const tg_query_t *q)
{
    return l->allowed == NULL || l->allowed[q->index];
}

#endif

/*
 * The config file: read, checked field by field into a snapshot, and freed.
 */
#include <errno.h>
#include <limits.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <jansson.h>
#include "tollgate/config.h"
#include "tollgate/params.h"
#include "tollgate/router.h"
#include "internal.h"
#include "config_internal.h"


/* most worker threads a config may ask for */
#define MAX_THREADS 1024

/* where the errors of one config file go */
typedef struct st_ctx_t {
    tg_errors_t *errs;
    const char *file;
    tg_config_t *cfg;
    tg__source_t src; /* the file's text: each message names the line of its field */
} ctx_t;

__attribute__((format(printf, 3, 4))) static void cfg_error(ctx_t *c, const char *field, const char *fmt, ...)
{
    tg_buf_t m = {0};
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    tg__source_error(c->errs, &c->src, field, "%s", m.base);
    tg_buf_dispose(&m);
}

/* "prefix.key" (or "key" at the top) into `buf` */
static const char *field_name(char *buf, size_t size, const char *prefix, const char *key)
{
    snprintf(buf, size, "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", key);
    return buf;
}

/*
 * Can `path` be opened for appending? Tested without creating it (so --check leaves
 * nothing behind): the file if it exists, else its folder.
 */
static void check_writable(ctx_t *c, const char *path)
{
    if (strcmp(path, "-") == 0)
        return;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            cfg_error(c, "access_log", "%s is a folder, not a file", path);
        else if (access(path, W_OK) != 0)
            cfg_error(c, "access_log", "%s cannot be written: %s", path, strerror(errno));
        return;
    }
    char *dir = tg__path_dir(path);
    if (access(dir, W_OK | X_OK) != 0)
        cfg_error(c, "access_log", "%s cannot be created in %s: %s", path, dir, strerror(errno));
    free(dir);
}

static void check_unknown(ctx_t *c, const char *prefix, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    char f[128];
    json_object_foreach(obj, key, v)
    {
        if (!tg__key_allowed(key, allowed))
            tg__unknown_field(c->errs, &c->src, field_name(f, sizeof(f), prefix, key), key, allowed, NULL);
    }
}

/*
 * Member `key` of `obj`: returns it, or NULL when absent, which is an error (counted,
 * and `*failed` set) when `required`.
 */
static json_t *member(ctx_t *c, json_t *obj, const char *prefix, const char *key, int required, int *failed)
{
    json_t *v = json_object_get(obj, key);
    *failed = 0;
    if (v == NULL && required) {
        char f[128];
        cfg_error(c, field_name(f, sizeof(f), prefix, key), "required");
        *failed = 1;
    }
    return v;
}

/* an integer member; absent keeps `*out` (or is an error when `required`); returns 0 if good */
static int get_int(ctx_t *c, json_t *obj, const char *prefix, const char *key, long long lo, long long hi, int required,
                   long long *out)
{
    int failed;
    json_t *v = member(c, obj, prefix, key, required, &failed);
    char f[128], why[128];

    if (v == NULL)
        return -failed;
    if (tg__json_int(v, lo, hi, out, why, sizeof(why)) != 0) {
        cfg_error(c, field_name(f, sizeof(f), prefix, key), "%s", why);
        return -1;
    }
    return 0;
}

static void get_int_field(ctx_t *c, json_t *obj, const char *prefix, const char *key, long long lo, long long hi, int *out)
{
    long long x = *out;
    if (get_int(c, obj, prefix, key, lo, hi, 0, &x) == 0)
        *out = (int)x;
}

static void get_size_field(ctx_t *c, json_t *obj, const char *prefix, const char *key, long long lo, size_t *out)
{
    long long x = (long long)*out;
    if (get_int(c, obj, prefix, key, lo, LLONG_MAX, 0, &x) == 0)
        *out = (size_t)x;
}

static int get_number(ctx_t *c, json_t *obj, const char *prefix, const char *key, double lo, double hi, int lo_exclusive,
                      int required, double *out)
{
    int failed;
    json_t *v = member(c, obj, prefix, key, required, &failed);
    char f[128], why[128];

    if (v == NULL)
        return -failed;
    if (tg__json_number(v, lo, hi, lo_exclusive, out, why, sizeof(why)) != 0) {
        cfg_error(c, field_name(f, sizeof(f), prefix, key), "%s", why);
        return -1;
    }
    return 0;
}

/* a non-empty string member; returns it (borrowed) or NULL (after an error unless absent and optional) */
static const char *get_string(ctx_t *c, json_t *obj, const char *prefix, const char *key, int required)
{
    int failed;
    json_t *v = member(c, obj, prefix, key, required, &failed);
    char f[128];

    if (v == NULL)
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        cfg_error(c, field_name(f, sizeof(f), prefix, key), "must be a non-empty string");
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        cfg_error(c, field_name(f, sizeof(f), prefix, key), "must not contain a NUL character");
        return NULL;
    }
    return json_string_value(v);
}

/* a file the gateway will read later: resolved against the config's folder and checked now */
static char *get_file(ctx_t *c, json_t *obj, const char *prefix, const char *key)
{
    const char *s = get_string(c, obj, prefix, key, 1);
    char f[128];

    if (s == NULL)
        return NULL;
    char *path = tg__path_join(c->cfg->dir, s);
    if (access(path, R_OK) != 0) {
        cfg_error(c, field_name(f, sizeof(f), prefix, key), "cannot read \"%s\": %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

/* checks that `v` is an object; reports otherwise */
static int want_object(ctx_t *c, json_t *v, const char *field, const char *what)
{
    if (json_is_object(v))
        return 1;
    cfg_error(c, field, "must be %s", what);
    return 0;
}

static void parse_listen(ctx_t *c, json_t *v, const char *field, tg_listen_t *out)
{
    static const char *const fields[] = {"host", "port", "tls", "max_connections", NULL};
    static const char *const tls_fields[] = {"cert_file", "key_file", NULL};
    const char *host;
    long long port = 0;
    json_t *tls;
    char f[128];

    if (!want_object(c, v, field, "an object {\"host\": .., \"port\": ..}"))
        return;
    check_unknown(c, field, v, fields);
    if ((host = get_string(c, v, field, "host", 1)) != NULL)
        out->host = tg_strdup(host);
    if (get_int(c, v, field, "port", 0, 65535, 1, &port) == 0)
        out->port = (uint16_t)port;
    long long maxc = 10000;
    if (get_int(c, v, field, "max_connections", 1, 10000000, 0, &maxc) == 0)
        out->max_connections = (long)maxc;
    if ((tls = json_object_get(v, "tls")) != NULL && !json_is_null(tls)) {
        field_name(f, sizeof(f), field, "tls");
        if (want_object(c, tls, f, "null or an object {\"cert_file\": .., \"key_file\": ..}")) {
            check_unknown(c, f, tls, tls_fields);
            out->cert_file = get_file(c, tls, f, "cert_file");
            out->key_file = get_file(c, tls, f, "key_file");
        }
    }
}

/* two listeners on one address cannot both bind */
static void check_listen_dups(ctx_t *c)
{
    tg_config_t *cfg = c->cfg;
    size_t n = cfg->n_listen + (cfg->has_admin_listen ? 1 : 0);

    for (size_t i = 1; i < n; ++i) {
        const tg_listen_t *a = i < cfg->n_listen ? cfg->listen + i : &cfg->admin_listen;
        if (a->host == NULL || a->port == 0)
            continue;
        for (size_t j = 0; j < i; ++j) {
            const tg_listen_t *b = cfg->listen + j;
            if (b->host != NULL && b->port == a->port && strcmp(a->host, b->host) == 0) {
                char f[64], g[64];
                if (i < cfg->n_listen)
                    snprintf(f, sizeof(f), "listen[%zu]", i);
                else
                    snprintf(f, sizeof(f), "admin_listen");
                snprintf(g, sizeof(g), "listen[%zu]", j);
                cfg_error(c, f, "%s:%u is already used by %s", a->host, (unsigned)a->port, g);
                break;
            }
        }
    }
}

/* Letters, digits, '_', '-' and '.', but not "-" alone: metrics use it for "none" (handlers/metrics.c). */
static int valid_tenant_name(const char *s)
{
    if (strcmp(s, "-") == 0)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
              *s == '.'))
            return 0;
    return 1;
}

/* Is `host` a loopback address (127.0.0.0/8, ::1) or "localhost"? Other names are not trusted to be. */
static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int tg_query_pattern_match(const char *pattern, const char *name)
{
    size_t n = strlen(pattern);
    if (n != 0 && pattern[n - 1] == '*')
        return strncmp(pattern, name, n - 1) == 0;
    return strcmp(pattern, name) == 0;
}

/* `queries` of a tenant (or of anonymous): names of letters, digits and '_', a trailing '*' making a prefix */
static void parse_query_list(ctx_t *c, json_t *obj, const char *prefix, tg_query_list_t *l)
{
    json_t *v = json_object_get(obj, "queries"), *e;
    char f[160];
    size_t i;
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_array(v)) {
        cfg_error(c, field_name(f, sizeof(f), prefix, "queries"), "must be an array of query names (a trailing '*' matches a prefix)");
        return;
    }
    l->patterns = tg_calloc(json_array_size(v) + 1, sizeof(*l->patterns));
    json_array_foreach(v, i, e)
    {
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        size_t n = s != NULL ? strlen(s) : 0, k = 0;
        while (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '_'))
            ++k;
        /* a name is at most 63 characters (as in the catalog), a prefix at most 63 and its '*' */
        if (s == NULL || n == 0 || !(k == n ? n <= 63 : k == n - 1 && s[k] == '*' && n <= 64) || n != json_string_length(e)) {
            snprintf(f, sizeof(f), "%s.queries[%zu]", prefix, i);
            cfg_error(c, f, "must be a query name, or a prefix ending in '*' (\"orders_*\", or \"*\" for all)");
            continue;
        }
        l->patterns[l->n_patterns++] = tg_strdup(s);
    }
}

static void free_query_list(tg_query_list_t *l)
{
    for (size_t i = 0; i < l->n_patterns; ++i)
        free(l->patterns[i]);
    free(l->patterns);
    free(l->allowed);
}

/* a warning about a catalog query: "FILE:LINE: queries[i] (NAME): message", where it is defined */
static void warn_query(tg_config_t *cfg, const tg_query_t *q, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn_query(tg_config_t *cfg, const tg_query_t *q, const char *fmt, ...)
{
    tg_buf_t m = {0}, f = {0};
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    tg_buf_printf(&f, "queries[%u] (%s)", q->entry, q->name);
    tg__field_error(&cfg->warnings, q->file != NULL ? q->file : cfg->path, q->line, f.base, "%s", m.base);
    tg_buf_dispose(&f);
    tg_buf_dispose(&m);
}

/* a warning about one field: "FILE:LINE: FIELD: message", as errors are written */
static void warn_at(ctx_t *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn_at(ctx_t *c, const char *field, const char *fmt, ...)
{
    tg_buf_t m = {0};
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    tg__source_error(&c->cfg->warnings, &c->src, field, "%s", m.base);
    tg_buf_dispose(&m);
}

/* Turns a list's patterns into a per-query table, warning about patterns that match nothing. */
static void resolve_query_list(ctx_t *c, tg_query_list_t *l, const char *who)
{
    tg_config_t *cfg = c->cfg;
    if (l->patterns == NULL)
        return;
    l->allowed = tg_calloc(cfg->n_queries + 1, 1);
    for (size_t i = 0; i < l->n_patterns; ++i) {
        int matched = 0;
        for (size_t q = 0; q < cfg->n_queries; ++q)
            if (tg_query_pattern_match(l->patterns[i], cfg->queries[q].name))
                l->allowed[q] = matched = 1;
        if (!matched) {
            char f[160];
            snprintf(f, sizeof(f), "%s.queries[%zu]", who, i);
            warn_at(c, f, "\"%s\" names no catalog query", l->patterns[i]);
        }
    }
}

/*
 * Once the catalog is read: the tenants' query lists, and what is allowed but
 * probably a mistake (a write open to every caller, a cost no bucket can pay).
 */
static void resolve_tenants(ctx_t *c)
{
    tg_config_t *cfg = c->cfg;
    char who[96];
    for (size_t t = 0; t < cfg->n_tenants; ++t) {
        snprintf(who, sizeof(who), "tenants[%zu] (%s)", t, cfg->tenants[t].name);
        resolve_query_list(c, &cfg->tenants[t].queries, who);
    }
    if (cfg->has_anonymous)
        resolve_query_list(c, &cfg->anonymous_queries, "anonymous");
    for (size_t q = 0; q < cfg->n_queries; ++q) {
        const tg_query_t *query = &cfg->queries[q];
        /* callers that may call it because they have no list at all, and whether every caller may */
        int everyone = cfg->n_tenants != 0 || cfg->has_anonymous, by_default = 0;
        for (size_t t = 0; t < cfg->n_tenants; ++t) {
            const tg_tenant_t *tenant = &cfg->tenants[t];
            int may = tg_query_list_allows(&tenant->queries, query);
            everyone &= may;
            by_default |= tenant->queries.allowed == NULL;
            if (may && query->cost > tenant->burst)
                warn_query(cfg, query, "costs %d tokens, more than tenant %s's burst (%.0f): that tenant always gets 429",
                     query->cost, tenant->name, tenant->burst);
        }
        int anonymous_by_default = cfg->has_anonymous && cfg->anonymous_queries.allowed == NULL;
        if (cfg->has_anonymous) {
            int may = tg_query_list_allows(&cfg->anonymous_queries, query);
            everyone &= may;
            if (may && query->cost > cfg->anonymous_burst)
                warn_query(cfg, query, "costs %d tokens, more than anonymous's burst (%.0f): keyless callers always get 429",
                           query->cost, cfg->anonymous_burst);
        }
        if (query->access != TG_ACCESS_WRITE)
            continue;
        /* A write open to callers without a key, or to everyone only because nobody was given a list, is likely a mistake. */
        if (anonymous_by_default)
            warn_query(cfg, query, "writes and keyless callers may call it: give anonymous a \"queries\" list");
        else if (everyone && by_default)
            warn_query(cfg, query, "writes and every tenant may call it: give tenants a \"queries\" list");
    }
}

/*
 * Why `v` is not a "sha256:<64 hex digits>" digest (NULL: it is one, in `out`); a key
 * pasted as it is, an empty string and a short digest each get told so. `null_ok`:
 * the field may also be null.
 */
static const char *digest_problem(json_t *v, int null_ok, uint8_t out[32], char *why, size_t size)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL, *form = null_ok ? "null or \"sha256:<64 hex digits>\"" : "\"sha256:<64 hex digits>\"";
    if (s != NULL && tg_parse_sha256(s, out) == 0)
        return NULL;
    if (s == NULL || strlen(s) != json_string_length(v))
        snprintf(why, size, "must be %s (see tollgate --hash-key)", form);
    else if (s[0] == '\0')
        snprintf(why, size, "is empty: must be %s (see tollgate --hash-key)", form);
    else if (strncmp(s, "sha256:", 7) != 0)
        snprintf(why, size, "must be %s, the SHA-256 of the key, not the key itself (tollgate --hash-key - prints it)", form);
    else if (strspn(s + 7, "0123456789abcdefABCDEF") != strlen(s + 7))
        snprintf(why, size, "must be %s (after \"sha256:\" comes a character that is not a hex digit)", form);
    else
        snprintf(why, size, "must be %s (got %zu hex digits)", form, strlen(s + 7));
    return why;
}

static void parse_tenant(ctx_t *c, json_t *v, size_t idx, tg_tenant_t *t)
{
    static const char *const fields[] = {"name", "keys", "rate", "burst", "max_in_flight", "priority", "queries", "enabled", NULL};
    char prefix[64], f[128];
    const char *name;
    json_t *keys, *pv;
    long long x;

    snprintf(prefix, sizeof(prefix), "tenants[%zu]", idx);
    t->priority = TG_PRIORITY_HIGH;
    if (!want_object(c, v, prefix, "an object"))
        return;
    check_unknown(c, prefix, v, fields);
    if ((name = get_string(c, v, prefix, "name", 1)) != NULL) {
        if (!valid_tenant_name(name))
            cfg_error(c, field_name(f, sizeof(f), prefix, "name"), "must be letters, digits, '_', '-' or '.' (and not \"-\" alone)");
        else if (strcmp(name, "anonymous") == 0)
            cfg_error(c, field_name(f, sizeof(f), prefix, "name"), "\"anonymous\" is reserved for keyless requests");
        else
            t->name = tg_strdup(name);
    }
    if ((keys = json_object_get(v, "keys")) == NULL) {
        cfg_error(c, field_name(f, sizeof(f), prefix, "keys"), "required");
    } else if (!json_is_array(keys)) {
        cfg_error(c, field_name(f, sizeof(f), prefix, "keys"), "must be an array of \"sha256:<hex>\" (see tollgate --hash-key)");
    } else {
        size_t i;
        json_t *kv;
        t->keys = tg_calloc(json_array_size(keys) + 1, sizeof(*t->keys));
        json_array_foreach(keys, i, kv)
        {
            char why[200];
            if (digest_problem(kv, 0, t->keys[t->n_keys], why, sizeof(why)) != NULL) {
                snprintf(f, sizeof(f), "%s.keys[%zu]", prefix, i);
                cfg_error(c, f, "%s", why);
                continue;
            }
            ++t->n_keys;
        }
    }
    get_number(c, v, prefix, "rate", 1e-6, 1e9, 0, 1, &t->rate);
    get_number(c, v, prefix, "burst", 1, 1e9, 0, 1, &t->burst);
    x = 0;
    if (get_int(c, v, prefix, "max_in_flight", 0, INT_MAX, 0, &x) == 0)
        t->max_in_flight = (int)x;
    if ((pv = json_object_get(v, "priority")) != NULL) {
        if (json_is_string(pv) && strcmp(json_string_value(pv), "high") == 0)
            t->priority = TG_PRIORITY_HIGH;
        else if (json_is_string(pv) && strcmp(json_string_value(pv), "low") == 0)
            t->priority = TG_PRIORITY_LOW;
        else
            cfg_error(c, field_name(f, sizeof(f), prefix, "priority"), "must be \"high\" or \"low\"");
    }
    parse_query_list(c, v, prefix, &t->queries);
    t->enabled = 1;
    if ((pv = json_object_get(v, "enabled")) != NULL) {
        if (json_is_boolean(pv))
            t->enabled = json_is_true(pv);
        else
            cfg_error(c, field_name(f, sizeof(f), prefix, "enabled"), "must be true or false");
    }
}

/* tenant names are unique, and a key belongs to one tenant */
static void check_tenant_dups(ctx_t *c)
{
    tg_config_t *cfg = c->cfg;
    char f[128];

    for (size_t i = 0; i < cfg->n_tenants; ++i) {
        tg_tenant_t *t = cfg->tenants + i;
        for (size_t j = 0; j < i && t->name != NULL; ++j) {
            if (cfg->tenants[j].name != NULL && strcmp(cfg->tenants[j].name, t->name) == 0) {
                snprintf(f, sizeof(f), "tenants[%zu].name", i);
                cfg_error(c, f, "duplicate tenant \"%s\" (also tenants[%zu])", t->name, j);
                break;
            }
        }
        for (size_t k = 0; k < t->n_keys; ++k) {
            int found = 0;
            for (size_t j = 0; j <= i && !found; ++j) {
                tg_tenant_t *u = cfg->tenants + j;
                for (size_t l = 0; l < (j == i ? k : u->n_keys) && !found; ++l) {
                    if (memcmp(u->keys[l], t->keys[k], 32) == 0) {
                        snprintf(f, sizeof(f), "tenants[%zu].keys", i);
                        if (j == i)
                            cfg_error(c, f, "the same key is listed twice");
                        else
                            cfg_error(c, f, "a key is also listed by tenant %s (tenants[%zu]); a key belongs to one tenant",
                                      u->name != NULL ? u->name : "?", j);
                        found = 1;
                    }
                }
            }
        }
    }
}

/* `compression`: null (off) or {"min_bytes": N}; absent keeps the default (on, 1024) */
static void parse_compression(ctx_t *c, json_t *v)
{
    if (v == NULL)
        return;
    if (json_is_null(v)) {
        c->cfg->compression.on = 0;
        return;
    }
    if (!want_object(c, v, "compression", "null or an object {\"min_bytes\": ..}"))
        return;
    static const char *const fields[] = {"min_bytes", NULL};
    check_unknown(c, "compression", v, fields);
    get_size_field(c, v, "compression", "min_bytes", 0, &c->cfg->compression.min_bytes);
}

/* `pool.overload`: false (off), true (the defaults) or {"adaptive": bool, "tolerance": N}; absent keeps the defaults */
static void parse_overload(ctx_t *c, json_t *v)
{
    tg_config_t *cfg = c->cfg;
    if (v == NULL)
        return;
    if (json_is_boolean(v)) {
        cfg->pool.overload.adaptive = json_is_true(v);
        return;
    }
    if (!want_object(c, v, "pool.overload", "false, true or an object {\"adaptive\": .., \"tolerance\": ..}"))
        return;
    static const char *const fields[] = {"adaptive", "tolerance", NULL};
    check_unknown(c, "pool.overload", v, fields);
    json_t *a = json_object_get(v, "adaptive");
    if (a != NULL && !json_is_boolean(a))
        cfg_error(c, "pool.overload.adaptive", "must be true or false");
    else if (a != NULL)
        cfg->pool.overload.adaptive = json_is_true(a);
    get_number(c, v, "pool.overload", "tolerance", 1, 100, 0, 0, &cfg->pool.overload.tolerance);
}

/* `pool.retry_budget`: {"ratio": N, "min_per_s": N, "window_ms": N}, each optional */
static void parse_retry_budget(ctx_t *c, json_t *v)
{
    tg_config_t *cfg = c->cfg;
    if (v == NULL || !want_object(c, v, "pool.retry_budget", "an object {\"ratio\": .., \"min_per_s\": .., \"window_ms\": ..}"))
        return;
    static const char *const fields[] = {"ratio", "min_per_s", "window_ms", NULL};
    check_unknown(c, "pool.retry_budget", v, fields);
    get_number(c, v, "pool.retry_budget", "ratio", 0, 1000, 0, 0, &cfg->pool.retry_budget.ratio);
    get_number(c, v, "pool.retry_budget", "min_per_s", 0, 1e9, 0, 0, &cfg->pool.retry_budget.min_per_s);
    get_int_field(c, v, "pool.retry_budget", "window_ms", 10, 3600000, &cfg->pool.retry_budget.window_ms);
}

/* `len` bytes of URL text, percent-decoded (params.c's decoder), as a new string; NULL if an escape is bad or decodes to NUL */
static char *url_decode(const char *p, size_t len)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    size_t n;
    char *d = tg_percent_decode(p, len, 0, &pool, &n), *out = d != NULL && memchr(d, '\0', n) == NULL ? tg_strndup(d, n) : NULL;
    h2o_mem_clear_pool(&pool);
    return out;
}

int tg_redis_url_parse(const char *url, tg_shared_limits_t *out, char *err, size_t err_size)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, err_size, "TLS (rediss://) is not supported: Debian 12's hiredis (0.14) has none; use redis:// on a "
                                "trusted network, or a local TLS tunnel (stunnel) to the Redis");
        return -1;
    }
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(err, err_size, "must be a Redis URL: redis://[[user]:password@]host[:port][/db]");
        return -1;
    }
    const char *p = url + sizeof(scheme) - 1, *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#' || strchr(end, '?') != NULL || strchr(end, '#') != NULL) {
        snprintf(err, err_size, "takes no query string or fragment: redis://[[user]:password@]host[:port][/db]");
        return -1;
    }
    const char *at = NULL;
    for (const char *q = p; q != end; ++q)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) {
            snprintf(err, err_size, "the part before '@' must be [user]:password");
            return -1;
        }
        out->user = colon == p ? NULL : url_decode(p, (size_t)(colon - p));
        out->password = url_decode(colon + 1, (size_t)(at - colon - 1));
        if ((colon != p && out->user == NULL) || out->password == NULL || out->password[0] == '\0') {
            snprintf(err, err_size, "the user or password is empty or has a bad %%-escape");
            return -1;
        }
        p = at + 1;
    }
    const char *host_end, *port_at = NULL;
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL) {
            snprintf(err, err_size, "an IPv6 address must be in brackets: redis://[::1]:6379");
            return -1;
        }
        out->host = tg_strndup(p + 1, (size_t)(host_end - p - 1));
        if (host_end + 1 != end && host_end[1] != ':') {
            snprintf(err, err_size, "unexpected text after the address");
            return -1;
        }
        port_at = host_end + 1 != end ? host_end + 2 : NULL;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end == NULL)
            host_end = end;
        else
            port_at = host_end + 1;
        out->host = tg_strndup(p, (size_t)(host_end - p));
    }
    if (out->host[0] == '\0') {
        snprintf(err, err_size, "names no host: redis://127.0.0.1:6379/0");
        return -1;
    }
    out->port = 6379;
    if (port_at != NULL) {
        if (!(*port_at >= '0' && *port_at <= '9')) {
            snprintf(err, err_size, "the port must be a number from 1 to 65535");
            return -1;
        }
        char *e;
        long port = strtol(port_at, &e, 10);
        if (e != end || port_at == end || port < 1 || port > 65535) {
            snprintf(err, err_size, "the port must be a number from 1 to 65535");
            return -1;
        }
        out->port = (int)port;
    }
    out->db = 0;
    if (*end == '/' && end[1] != '\0') {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (*e != '\0' || db < 0 || db > 1000000 || !(end[1] >= '0' && end[1] <= '9')) {
            snprintf(err, err_size, "the database (after the last '/') must be a number, 0 by default");
            return -1;
        }
        out->db = (int)db;
    }
    tg_buf_t shown = {0};
    tg_buf_appends(&shown, scheme);
    if (out->password != NULL) {
        if (out->user != NULL)
            tg_buf_appends(&shown, out->user);
        tg_buf_appends(&shown, ":***@");
    }
    tg_buf_appends(&shown, strchr(out->host, ':') != NULL ? "[" : "");
    tg_buf_appends(&shown, out->host);
    tg_buf_printf(&shown, "%s:%d/%d", strchr(out->host, ':') != NULL ? "]" : "", out->port, out->db);
    out->redis_shown = tg_strndup(shown.base, shown.len);
    tg_buf_dispose(&shown);
    return 0;
}

void tg_shared_limits_free(tg_shared_limits_t *s)
{
    if (s == NULL)
        return;
    if (s->redis != NULL)
        OPENSSL_cleanse(s->redis, strlen(s->redis)); /* it may hold the password too */
    free(s->redis);
    free(s->redis_shown);
    free(s->host);
    free(s->user);
    if (s->password != NULL)
        OPENSSL_cleanse(s->password, strlen(s->password));
    free(s->password);
    free(s->prefix);
    free(s);
}

/*
 * `shared_limits`: null (each instance limits alone) or {"redis": URL, "prefix",
 * "lease_ms", "health_interval_ms", "timeout_ms", "expected_instances"}.
 */
static void parse_shared_limits(ctx_t *c, json_t *v)
{
    static const char *const fields[] = {"redis", "prefix", "lease_ms", "health_interval_ms", "timeout_ms", "expected_instances", NULL};
    if (v == NULL || json_is_null(v) ||
        !want_object(c, v, "shared_limits", "null or an object {\"redis\": \"redis://HOST:PORT/DB\", ..}"))
        return;
    check_unknown(c, "shared_limits", v, fields);
    tg_shared_limits_t *sl = tg_calloc(1, sizeof(*sl));
    c->cfg->shared_limits = sl;
    sl->lease_ms = 100;
    sl->health_interval_ms = 1000;
    sl->timeout_ms = 250;
    sl->expected_instances = 1;
    const char *url = get_string(c, v, "shared_limits", "redis", 1), *prefix = get_string(c, v, "shared_limits", "prefix", 0);
    char why[256];
    if (url != NULL) {
        sl->redis = tg_strdup(url);
        if (tg_redis_url_parse(url, sl, why, sizeof(why)) != 0)
            cfg_error(c, "shared_limits.redis", "%s", why);
    }
    sl->prefix = tg_strdup(prefix != NULL ? prefix : "tollgate:");
    get_int_field(c, v, "shared_limits", "lease_ms", 1, 60000, &sl->lease_ms);
    get_int_field(c, v, "shared_limits", "health_interval_ms", 50, 600000, &sl->health_interval_ms);
    get_int_field(c, v, "shared_limits", "timeout_ms", 1, 60000, &sl->timeout_ms);
    get_int_field(c, v, "shared_limits", "expected_instances", 1, 100000, &sl->expected_instances);
    if (sl->timeout_ms >= sl->health_interval_ms)
        cfg_error(c, "shared_limits.timeout_ms", "must be less than shared_limits.health_interval_ms (%d): a check must end within its interval",
                  sl->health_interval_ms);
}

/* `cors`: null (off) or {"origins": [...], "max_age_s": N} */
static void parse_cors(ctx_t *c, json_t *v)
{
    if (v == NULL || json_is_null(v) || !want_object(c, v, "cors", "null or an object {\"origins\": [..]}"))
        return;
    static const char *const fields[] = {"origins", "max_age_s", NULL};
    check_unknown(c, "cors", v, fields);
    tg_cors_t *cors = tg_calloc(1, sizeof(*cors));
    cors->max_age_s = TG_CORS_DEFAULT_MAX_AGE_S;
    /* browsers keep a preflight 2 hours (Chromium) or a day (Firefox) at most */
    get_int_field(c, v, "cors", "max_age_s", 0, 86400, &cors->max_age_s);
    snprintf(cors->max_age, sizeof(cors->max_age), "%d", cors->max_age_s);
    c->cfg->cors = cors;
    json_t *list = json_object_get(v, "origins"), *e;
    size_t i;
    if (list == NULL) {
        cfg_error(c, "cors.origins", "required");
        return;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        cfg_error(c, "cors.origins", "must be a non-empty array of origins (\"https://app.example\") or \"*\"");
        return;
    }
    cors->origins = tg_calloc(json_array_size(list), sizeof(*cors->origins));
    json_array_foreach(list, i, e)
    {
        char f[48], why[256];
        snprintf(f, sizeof(f), "cors.origins[%zu]", i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            cfg_error(c, f, "must be a string");
            continue;
        }
        const char *o = json_string_value(e);
        if (tg_cors_check_origin(o, why, sizeof(why)) != 0) {
            cfg_error(c, f, "%s", why);
            continue;
        }
        for (size_t j = 0; j != cors->n_origins; ++j)
            if (strcmp(cors->origins[j], o) == 0)
                cfg_error(c, f, "\"%s\" is listed twice", o);
        if (strcmp(o, "*") == 0)
            cors->any = 1;
        cors->origins[cors->n_origins++] = tg_strdup(o);
    }
}

static void parse_fields(ctx_t *c, json_t *root)
{
    static const char *const fields[] = {"listen",
                                         "admin_listen",
                                         "admin_token",
                                         "threads",
                                         "primary",
                                         "replicas",
                                         "pool",
                                         "replica_max_lag_ms",
                                         "read_after_wait_ms",
                                         "health_interval_ms",
                                         "default_timeout_ms",
                                         "max_body_bytes",
                                         "max_rows",
                                         "max_in_flight",
                                         "shutdown_grace_ms",
                                         "http",
                                         "cache",
                                         "compression",
                                         "cors",
                                         "access_log",
                                         "tenants",
                                         "anonymous",
                                         "shared_limits",
                                         "catalog",
                                         NULL};
    tg_config_t *cfg = c->cfg;
    const char *s;
    json_t *v;
    size_t i;
    json_t *e;
    char f[64];

    check_unknown(c, "", root, fields);

    /* listen, admin_listen */
    if ((v = json_object_get(root, "listen")) == NULL) {
        cfg_error(c, "listen", "required");
    } else if (!json_is_array(v) || json_array_size(v) == 0) {
        cfg_error(c, "listen", "must be a non-empty array of {\"host\": .., \"port\": ..}");
    } else {
        cfg->listen = tg_calloc(json_array_size(v), sizeof(*cfg->listen));
        cfg->n_listen = json_array_size(v);
        json_array_foreach(v, i, e)
        {
            snprintf(f, sizeof(f), "listen[%zu]", i);
            parse_listen(c, e, f, cfg->listen + i);
        }
    }
    if ((v = json_object_get(root, "admin_listen")) != NULL && !json_is_null(v)) {
        cfg->has_admin_listen = 1;
        parse_listen(c, v, "admin_listen", &cfg->admin_listen);
        if (cfg->admin_listen.cert_file != NULL)
            cfg_error(c, "admin_listen.tls", "the admin API is served in cleartext: bind it to loopback or a private network");
    }
    check_listen_dups(c);

    if ((v = json_object_get(root, "admin_token")) != NULL && !json_is_null(v)) {
        char why[200];
        if (digest_problem(v, 1, cfg->admin_token, why, sizeof(why)) != NULL)
            cfg_error(c, "admin_token", "%s", why);
        else
            cfg->has_admin_token = 1;
    }

    get_int_field(c, root, "", "threads", 0, MAX_THREADS, &cfg->threads);

    /* backends */
    if ((s = get_string(c, root, "", "primary", 1)) != NULL)
        cfg->primary = tg_strdup(s);
    if ((v = json_object_get(root, "replicas")) != NULL) {
        if (!json_is_array(v)) {
            cfg_error(c, "replicas", "must be an array of connection strings");
        } else {
            cfg->replicas = tg_calloc(json_array_size(v) + 1, sizeof(*cfg->replicas));
            cfg->replica_names = tg_calloc(json_array_size(v) + 1, sizeof(*cfg->replica_names));
            json_array_foreach(v, i, e)
            {
                static const char *const replica_fields[] = {"name", "dsn", NULL};
                const char *dsn = NULL, *name = NULL;
                char rname[32];
                snprintf(f, sizeof(f), "replicas[%zu]", i);
                if (json_is_object(e)) {
                    /* {"name": "eu-1", "dsn": "..."}: the name is what logs, /readyz and the admin API call it */
                    check_unknown(c, f, e, replica_fields);
                    dsn = get_string(c, e, f, "dsn", 1);
                    name = get_string(c, e, f, "name", 1);
                    if (name != NULL && (!valid_tenant_name(name) || name[0] == '\0' || strlen(name) > 63 || strcmp(name, "primary") == 0)) {
                        char g[96];
                        cfg_error(c, field_name(g, sizeof(g), f, "name"), "must be 1 to 63 letters, digits, '_', '-' or '.' (and not \"primary\" or \"-\")");
                        name = NULL;
                    }
                } else if (json_is_string(e)) {
                    dsn = json_string_value(e);
                } else {
                    cfg_error(c, f, "must be a connection string or {\"name\": ..., \"dsn\": ...}");
                    continue;
                }
                if (dsn == NULL || dsn[0] == '\0') {
                    if (json_is_string(e))
                        cfg_error(c, f, "must be a non-empty connection string");
                    continue;
                }
                if (name == NULL) {
                    if (json_is_object(e))
                        continue;
                    snprintf(rname, sizeof(rname), "replica%zu", i + 1);
                    name = rname;
                }
                for (size_t j = 0; j != cfg->n_replicas; ++j) {
                    if (strcmp(cfg->replica_names[j], name) == 0) {
                        cfg_error(c, f, "the name \"%s\" is taken by another replica", name);
                        name = NULL;
                        break;
                    }
                }
                if (name == NULL)
                    continue;
                cfg->replica_names[cfg->n_replicas] = tg_strdup(name);
                cfg->replicas[cfg->n_replicas++] = tg_strdup(dsn);
            }
        }
    }
    if ((v = json_object_get(root, "pool")) != NULL && want_object(c, v, "pool", "an object")) {
        static const char *const pool_fields[] = {"size", "acquire_timeout_ms", "low_priority_share", "overload", "retry_budget", NULL};
        check_unknown(c, "pool", v, pool_fields);
        get_int_field(c, v, "pool", "size", 1, INT_MAX, &cfg->pool.size);
        get_int_field(c, v, "pool", "acquire_timeout_ms", 0, INT_MAX, &cfg->pool.acquire_timeout_ms);
        get_number(c, v, "pool", "low_priority_share", 0, 1, 0, 0, &cfg->pool.low_priority_share);
        parse_overload(c, json_object_get(v, "overload"));
        parse_retry_budget(c, json_object_get(v, "retry_budget"));
    }
    get_int_field(c, root, "", "replica_max_lag_ms", 0, INT_MAX, &cfg->replica_max_lag_ms);
    /* a read waits that long for a replica, then goes to the primary: a minute is far past any use */
    get_int_field(c, root, "", "read_after_wait_ms", 0, 60000, &cfg->read_after_wait_ms);
    get_int_field(c, root, "", "health_interval_ms", 1, INT_MAX, &cfg->health_interval_ms);
    get_int_field(c, root, "", "default_timeout_ms", 1, INT_MAX, &cfg->default_timeout_ms);
    get_size_field(c, root, "", "max_body_bytes", 1, &cfg->max_body_bytes);
    get_size_field(c, root, "", "max_rows", 1, &cfg->max_rows);
    get_int_field(c, root, "", "max_in_flight", 0, INT_MAX, &cfg->max_in_flight);
    get_int_field(c, root, "", "shutdown_grace_ms", 0, INT_MAX, &cfg->shutdown_grace_ms);
    if ((v = json_object_get(root, "http")) != NULL && want_object(c, v, "http", "an object")) {
        static const char *const http_fields[] = {"idle_timeout_ms", "header_timeout_ms", "body_timeout_ms", "max_streams_per_connection",
                                                  NULL};
        check_unknown(c, "http", v, http_fields);
        get_int_field(c, v, "http", "idle_timeout_ms", 1, INT_MAX, &cfg->http.idle_timeout_ms);
        get_int_field(c, v, "http", "header_timeout_ms", 1, INT_MAX, &cfg->http.header_timeout_ms);
        get_int_field(c, v, "http", "body_timeout_ms", 1, INT_MAX, &cfg->http.body_timeout_ms);
        /* h2o 2.2.5 advertises SETTINGS_MAX_CONCURRENT_STREAMS 100, fixed: more could never be used */
        get_int_field(c, v, "http", "max_streams_per_connection", 1, 100, &cfg->http.max_streams_per_connection);
    }
    if ((v = json_object_get(root, "cache")) != NULL && want_object(c, v, "cache", "an object {\"max_bytes\": ..}")) {
        static const char *const cache_fields[] = {"max_bytes", NULL};
        check_unknown(c, "cache", v, cache_fields);
        get_size_field(c, v, "cache", "max_bytes", 0, &cfg->cache_max_bytes);
    }
    parse_compression(c, json_object_get(root, "compression"));
    parse_cors(c, json_object_get(root, "cors"));
    if ((v = json_object_get(root, "access_log")) != NULL && !json_is_null(v)) {
        if ((s = get_string(c, root, "", "access_log", 0)) != NULL) {
            cfg->access_log = strcmp(s, "-") == 0 ? tg_strdup(s) : tg__path_join(cfg->dir, s);
            check_writable(c, cfg->access_log);
        }
    }

    /* tenants */
    if ((v = json_object_get(root, "tenants")) != NULL) {
        if (!json_is_array(v)) {
            cfg_error(c, "tenants", "must be an array");
        } else {
            cfg->tenants = tg_calloc(json_array_size(v) + 1, sizeof(*cfg->tenants));
            cfg->n_tenants = json_array_size(v);
            json_array_foreach(v, i, e) parse_tenant(c, e, i, cfg->tenants + i);
            check_tenant_dups(c);
        }
    }
    if ((v = json_object_get(root, "anonymous")) != NULL && !json_is_null(v) &&
        want_object(c, v, "anonymous", "null or an object {\"rate\": .., \"burst\": ..}")) {
        static const char *const anon_fields[] = {"rate", "burst", "queries", NULL};
        check_unknown(c, "anonymous", v, anon_fields);
        cfg->has_anonymous = 1;
        get_number(c, v, "anonymous", "rate", 1e-6, 1e9, 0, 1, &cfg->anonymous_rate);
        get_number(c, v, "anonymous", "burst", 1, 1e9, 0, 1, &cfg->anonymous_burst);
        parse_query_list(c, v, "anonymous", &cfg->anonymous_queries);
    }
    parse_shared_limits(c, json_object_get(root, "shared_limits"));

    /* catalog */
    if ((v = json_object_get(root, "catalog")) == NULL) {
        cfg_error(c, "catalog", "required");
    } else if (!json_is_array(v) || json_array_size(v) == 0) {
        cfg_error(c, "catalog", "must be a non-empty array of catalog files or folders");
    } else {
        cfg->catalog_paths = tg_calloc(json_array_size(v), sizeof(*cfg->catalog_paths));
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) || json_string_length(e) == 0) {
                snprintf(f, sizeof(f), "catalog[%zu]", i);
                cfg_error(c, f, "must be a file or folder path");
                continue;
            }
            cfg->catalog_paths[cfg->n_catalog_paths++] = tg__path_join(cfg->dir, json_string_value(e));
        }
    }
}

tg_config_t *tg_config_parse(const char *text, size_t len, const char *path, tg_errors_t *errs)
{
    size_t before = errs->n;
    json_error_t jerr;
    json_t *root;

    if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        tg__field_error(errs, path, jerr.line, NULL, "invalid JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        tg__field_error(errs, path, 0, NULL, "the config must be a JSON object");
        json_decref(root);
        return NULL;
    }

    tg_config_t *cfg = tg_calloc(1, sizeof(*cfg));
    cfg->path = tg_strdup(path);
    cfg->dir = tg__path_dir(path);
    cfg->threads = 0;
    cfg->pool.size = 16;
    cfg->pool.acquire_timeout_ms = 1000;
    cfg->pool.low_priority_share = 0.5;
    cfg->pool.overload.adaptive = 1;
    cfg->pool.overload.tolerance = 1.5;
    cfg->pool.retry_budget.ratio = 0.1;
    cfg->pool.retry_budget.min_per_s = 3;
    cfg->pool.retry_budget.window_ms = 10000;
    cfg->replica_max_lag_ms = 10000;
    cfg->read_after_wait_ms = 100;
    cfg->health_interval_ms = 1000;
    cfg->default_timeout_ms = 5000;
    cfg->max_body_bytes = 1048576;
    cfg->max_rows = 10000;
    cfg->max_in_flight = 0;
    cfg->shutdown_grace_ms = 10000;
    cfg->http.idle_timeout_ms = 60000;
    cfg->http.header_timeout_ms = 10000;
    cfg->http.body_timeout_ms = 30000;
    cfg->http.max_streams_per_connection = 100;
    cfg->cache_max_bytes = 64 * 1024 * 1024;
    cfg->compression.on = 1;
    cfg->compression.min_bytes = 1024;

    ctx_t c = {errs, path, cfg};
    tg_json_error_t rerr;
    /* jansson has no positions: the text is walked again for them (lines stay unknown if this stricter parse refuses it) */
    (void)tg__source_init(&c.src, path, text, len, &rerr);
    parse_fields(&c, root);
    json_decref(root);
    if (cfg->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    }

    /* the catalog is read even when the config has errors, so that one run reports them all */
    tg__catalog_load(cfg, &c.src, errs);

    if (errs->n != before) {
        tg_config_free(cfg);
        return NULL;
    }
    if (cfg->n_queries == 0)
        warn_at(&c, "catalog", "the catalog has no queries: every call will answer 404");
    resolve_tenants(&c);
    if (cfg->has_admin_listen && !cfg->has_admin_token && !is_loopback(cfg->admin_listen.host))
        warn_at(&c, "admin_listen", "%s without an admin_token: whoever reaches it can reload and switch queries off",
                cfg->admin_listen.host);
    return cfg;
}

tg_config_t *tg_config_load(const char *path, tg_errors_t *errs)
{
    tg_buf_t text = {0};
    int err;

    if ((err = tg__read_file(path, &text)) != 0) {
        tg__field_error(errs, path, 0, NULL, "cannot read: %s", strerror(err));
        tg_buf_dispose(&text);
        return NULL;
    }
    tg_config_t *cfg = tg_config_parse(text.base != NULL ? text.base : "", text.len, path, errs);
    tg_buf_dispose(&text);
    return cfg;
}

int tg_config_field_line(const char *file, const char *field)
{
    tg_buf_t text = {0};
    tg__source_t src;
    tg_json_error_t err;
    int line = 0;
    if (tg__read_file(file, &text) == 0 && tg__source_init(&src, file, text.base != NULL ? text.base : "", text.len, &err) == 0)
        line = tg__source_line(&src, field);
    tg_buf_dispose(&text);
    return line;
}

static void free_listen(tg_listen_t *l)
{
    free(l->host);
    free(l->cert_file);
    free(l->key_file);
}

void tg_config_free(tg_config_t *cfg)
{
    if (cfg == NULL)
        return;
    tg__catalog_dispose(cfg);
    free(cfg->path);
    free(cfg->dir);
    for (size_t i = 0; i < cfg->n_listen; ++i)
        free_listen(cfg->listen + i);
    free(cfg->listen);
    free_listen(&cfg->admin_listen);
    free(cfg->primary);
    for (size_t i = 0; i < cfg->n_replicas; ++i) {
        free(cfg->replicas[i]);
        free(cfg->replica_names[i]);
    }
    free(cfg->replicas);
    free(cfg->replica_names);
    free(cfg->access_log);
    tg_cors_free(cfg->cors);
    for (size_t i = 0; i < cfg->n_tenants; ++i) {
        free(cfg->tenants[i].name);
        free(cfg->tenants[i].keys);
        free_query_list(&cfg->tenants[i].queries);
    }
    free_query_list(&cfg->anonymous_queries);
    tg_shared_limits_free(cfg->shared_limits);
    tg_errors_dispose(&cfg->warnings);
    free(cfg->tenants);
    for (size_t i = 0; i < cfg->n_catalog_paths; ++i)
        free(cfg->catalog_paths[i]);
    free(cfg->catalog_paths);
    free(cfg);
}

int tg_parse_sha256(const char *s, uint8_t out[32])
{
    uint8_t tmp[32];

    if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
        return -1;
    s += 7;
    for (int i = 0; i < 32; ++i) {
        int hi = tg_hex_value(s[2 * i]), lo = tg_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(out, tmp, 32);
    return 0;
}

void tg_hash_key(const char *key, size_t len, char out[72])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)key, len, d);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
        out[7 + 2 * i] = hex[d[i] >> 4];
        out[8 + 2 * i] = hex[d[i] & 15];
    }
    out[71] = '\0';
}

/*
 * The catalog: parameter types and methods, and catalog files read into checked queries.
 */
#define _GNU_SOURCE /* memmem, realpath */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <h2o.h>
#include <jansson.h>
#include <openssl/sha.h>
#include "tollgate/config.h"
#include "tollgate/fieldline.h"
#include "tollgate/json.h"
#include "tollgate/params.h"
#include "tollgate/router.h"
#include "internal.h"
#include "config_internal.h"


/* the type table: names as written in the catalog and PostgreSQL OIDs of the type and its array */
static const struct {
    const char *name;
    unsigned oid;
    unsigned array_oid;
} types[TG_TYPE__COUNT] = {
    [TG_TYPE_INT2] = {"int2", 21, 1005},
    [TG_TYPE_INT4] = {"int4", 23, 1007},
    [TG_TYPE_INT8] = {"int8", 20, 1016},
    [TG_TYPE_FLOAT4] = {"float4", 700, 1021},
    [TG_TYPE_FLOAT8] = {"float8", 701, 1022},
    [TG_TYPE_NUMERIC] = {"numeric", 1700, 1231},
    [TG_TYPE_TEXT] = {"text", 25, 1009},
    [TG_TYPE_BOOL] = {"bool", 16, 1000},
    [TG_TYPE_UUID] = {"uuid", 2950, 2951},
    [TG_TYPE_DATE] = {"date", 1082, 1182},
    [TG_TYPE_TIMESTAMPTZ] = {"timestamptz", 1184, 1185},
    [TG_TYPE_JSON] = {"json", 114, 199},
    [TG_TYPE_JSONB] = {"jsonb", 3802, 3807},
};

static const char *const method_names[TG_METHOD__COUNT] = {
    [TG_METHOD_GET] = "GET",     [TG_METHOD_POST] = "POST",     [TG_METHOD_PUT] = "PUT",
    [TG_METHOD_PATCH] = "PATCH", [TG_METHOD_DELETE] = "DELETE",
};

/* longest query and parameter name: PostgreSQL's identifier limit, so names can reach the database as they are */
#define MAX_NAME_LEN 63

const char *tg_type_name(tg_type_t t)
{
    return (unsigned)t < TG_TYPE__COUNT ? types[t].name : "?";
}

int tg_type_from_name(const char *name, size_t len)
{
    for (int i = 0; i < TG_TYPE__COUNT; ++i)
        if (strlen(types[i].name) == len && memcmp(types[i].name, name, len) == 0)
            return i;
    return -1;
}

unsigned tg_type_oid(tg_type_t t, int is_array)
{
    if ((unsigned)t >= TG_TYPE__COUNT)
        return 0;
    return is_array ? types[t].array_oid : types[t].oid;
}

const char *tg_method_name(tg_method_t m)
{
    return (unsigned)m < TG_METHOD__COUNT ? method_names[m] : "?";
}

int tg_method_from_name(const char *name, size_t len)
{
    for (int i = 0; i < TG_METHOD__COUNT; ++i)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
            return i;
    return -1;
}

const tg_query_t *tg_config_find_query(const tg_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_queries; ++i)
        if (cfg->queries[i].name != NULL && strcmp(cfg->queries[i].name, name) == 0)
            return cfg->queries + i;
    return NULL;
}

/* --- shared helpers --- */

void tg__field_error(tg_errors_t *errs, const char *file, int line, const char *field, const char *fmt, ...)
{
    tg_buf_t b = {0};
    va_list ap;

    if (line > 0)
        tg_buf_printf(&b, "%s:%d: ", file, line);
    else
        tg_buf_printf(&b, "%s: ", file);
    if (field != NULL && field[0] != '\0')
        tg_buf_printf(&b, "%s: ", field);
    va_start(ap, fmt);
    tg_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    tg_errors_add(errs, "%s", b.base);
    tg_buf_dispose(&b);
}

int tg__source_init(tg__source_t *src, const char *file, const char *text, size_t len, tg_json_error_t *err)
{
    src->file = file;
    src->text = NULL;
    if (tg_json_parse(text, len, &src->root, err) != 0)
        return -1;
    src->text = text;
    return 0;
}

int tg__source_line(const tg__source_t *src, const char *field)
{
    return src != NULL && src->text != NULL ? (int)tg_field_line(src->text, &src->root, field) : 0;
}

void tg__source_error(tg_errors_t *errs, const tg__source_t *src, const char *field, const char *fmt, ...)
{
    tg_buf_t m = {0};
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    tg__field_error(errs, src->file, tg__source_line(src, field), field, "%s", m.base);
    tg_buf_dispose(&m);
}

/* the optimal string alignment distance of a and b (at most 64 bytes each; longer: a large number) */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b), d[65][65];
    if (n > 64 || m > 64)
        return SIZE_MAX;
    for (size_t i = 0; i <= n; ++i)
        d[i][0] = i;
    for (size_t j = 0; j <= m; ++j)
        d[0][j] = j;
    for (size_t i = 1; i <= n; ++i) {
        for (size_t j = 1; j <= m; ++j) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

const char *tg__nearest_name(const char *key, const char *const *allowed)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (; *allowed != NULL; ++allowed) {
        /* close: one edit for a name of up to 4 characters, two for longer ones; never more than the key itself */
        size_t d = edit_distance(key, *allowed), limit = strlen(*allowed) <= 4 ? 1 : 2;
        if (d <= limit && d < strlen(key) && d < best_d) {
            best = *allowed;
            best_d = d;
        }
    }
    return best;
}

void tg__unknown_field(tg_errors_t *errs, const tg__source_t *src, const char *field, const char *key, const char *const *allowed,
                       const char *extra)
{
    const char *near = tg__nearest_name(key, allowed);
    if (near != NULL)
        tg__source_error(errs, src, field, "unknown field (did you mean \"%s\"?)", near);
    else
        tg__source_error(errs, src, field, "unknown field%s", extra != NULL ? extra : "");
}

int tg__json_int(const json_t *v, long long lo, long long hi, long long *out, char *why, size_t why_len)
{
    if (!json_is_integer(v)) {
        snprintf(why, why_len, "must be an integer");
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        if (hi >= INT_MAX)
            snprintf(why, why_len, "must be an integer >= %lld (got %lld)", lo, x);
        else
            snprintf(why, why_len, "must be an integer between %lld and %lld (got %lld)", lo, hi, x);
        return -1;
    }
    *out = x;
    return 0;
}

int tg__json_number(const json_t *v, double lo, double hi, int lo_exclusive, double *out, char *why, size_t why_len)
{
    if (!json_is_number(v)) {
        snprintf(why, why_len, "must be a number");
        return -1;
    }
    double x = json_number_value(v);
    if ((lo_exclusive ? x <= lo : x < lo) || x > hi) {
        if (hi >= 1e300)
            snprintf(why, why_len, "must be a number %s %g (got %g)", lo_exclusive ? ">" : ">=", lo, x);
        else
            snprintf(why, why_len, "must be a number between %g and %g (got %g)", lo, hi, x);
        return -1;
    }
    *out = x;
    return 0;
}

int tg__key_allowed(const char *key, const char *const *allowed)
{
    for (; *allowed != NULL; ++allowed)
        if (strcmp(key, *allowed) == 0)
            return 1;
    return 0;
}

char *tg__path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return tg_strdup(".");
    if (slash == path)
        return tg_strdup("/");
    return tg_strndup(path, (size_t)(slash - path));
}

char *tg__path_join(const char *dir, const char *rel)
{
    tg_buf_t b = {0};
    if (rel[0] == '/' || strcmp(dir, ".") == 0)
        return tg_strdup(rel);
    tg_buf_appends(&b, dir);
    if (b.len == 0 || b.base[b.len - 1] != '/')
        tg_buf_appendc(&b, '/');
    tg_buf_appends(&b, rel);
    return b.base;
}

int tg__read_file(const char *path, tg_buf_t *out)
{
    FILE *fp;
    char chunk[8192];
    size_t n;
    struct stat st;

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return EISDIR;
    if ((fp = fopen(path, "rb")) == NULL)
        return errno;
    tg_buf_reserve(out, 0);
    out->len = 0;
    out->base[0] = '\0';
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0)
        tg_buf_append(out, chunk, n);
    if (ferror(fp)) {
        int err = errno != 0 ? errno : EIO;
        fclose(fp);
        return err;
    }
    fclose(fp);
    return 0;
}

/* --- the raw text of each catalog entry --- */

/*
 * jansson keeps no positions and turns numbers into doubles, so each file is also
 * validated by tg_json_parse, and each entry of its "queries" array kept as raw text:
 * for its line (the line of its "name" member, or of its opening brace without one)
 * and for parameter defaults and enum values, which are checked from the bytes the
 * catalog wrote (a numeric default of 1.10 stays 1.10).
 */
static int line_of(const char *text, const char *at, const char **scanned, int *line)
{
    for (; *scanned < at; ++*scanned)
        *line += **scanned == '\n';
    return *line;
}

/*
 * Fills raw[0..n), lines[0..n) and route_lines[0..n) for each entry of the top-level
 * "queries" array (0 when not found), in one pass over the text: the members are in
 * text order, so the line count only moves forward.
 */
static void find_entries(const char *text, const tg_json_t *root, tg_json_t *raw, int *lines, int *route_lines, size_t n)
{
    tg_json_t queries, entry, key, value;
    tg_json_iter_t it, members;
    const char *scanned = text;
    int line = 1;
    if (!tg_json_object_get(root, "queries", 7, &queries))
        return;
    tg_json_iter_init(&it, &queries);
    for (size_t i = 0; i < n && tg_json_iter_next(&it, NULL, &entry); ++i) {
        raw[i] = entry;
        int brace_line = line_of(text, entry.text, &scanned, &line), name_line = 0;
        tg_json_iter_init(&members, &entry);
        while ((name_line == 0 || route_lines[i] == 0) && tg_json_iter_next(&members, &key, &value)) {
            if (name_line == 0 && tg_json_string_equals(&key, "name", 4))
                name_line = line_of(text, key.text, &scanned, &line);
            else if (route_lines[i] == 0 && tg_json_string_equals(&key, "route", 5))
                route_lines[i] = line_of(text, key.text, &scanned, &line);
        }
        lines[i] = name_line != 0 ? name_line : brace_line;
    }
}

/* member `key` of a raw object, or a null value when there is none (or `o` is not an object) */
static tg_json_t raw_member(const tg_json_t *o, const char *key)
{
    tg_json_t v = {TG_JSON_NULL, "null", 4};
    if (o != NULL && !tg_json_object_get(o, key, strlen(key), &v))
        v = (tg_json_t){TG_JSON_NULL, "null", 4};
    return v;
}

/* --- $n placeholders --- */

static int sql_ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static int sql_tag_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

/*
 * Collects the numbers of the $n placeholders of `sql` into `*found` (a malloc'd array),
 * skipping string literals (with E'' escapes), quoted identifiers, dollar-quoted strings,
 * comments (block comments nest, as in PostgreSQL) and identifiers that contain '$'.
 */
static size_t sql_placeholders(const char *sql, long **found)
{
    size_t n = strlen(sql), i = 0, count = 0, cap = 0;
    *found = NULL;

    while (i < n) {
        unsigned char c = (unsigned char)sql[i];
        if (c == '\'') {
            int esc = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') && (i < 2 || !sql_ident_char((unsigned char)sql[i - 2]));
            for (++i; i < n; ++i) {
                if (esc && sql[i] == '\\') {
                    ++i;
                } else if (sql[i] == '\'') {
                    if (i + 1 < n && sql[i + 1] == '\'') {
                        ++i;
                    } else {
                        break;
                    }
                }
            }
            ++i;
        } else if (c == '"') {
            for (++i; i < n && sql[i] != '"'; ++i)
                ;
            ++i;
        } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
            while (i < n && sql[i] != '\n')
                ++i;
        } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
            int depth = 1;
            for (i += 2; i < n && depth > 0;) {
                if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
                    ++depth;
                    i += 2;
                } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
                    --depth;
                    i += 2;
                } else {
                    ++i;
                }
            }
        } else if (c == '$') {
            if (i > 0 && sql_ident_char((unsigned char)sql[i - 1])) {
                ++i; /* part of an identifier such as a$1 */
            } else if (i + 1 < n && isdigit((unsigned char)sql[i + 1])) {
                long v = 0;
                for (++i; i < n && isdigit((unsigned char)sql[i]); ++i)
                    if (v < 1000000)
                        v = v * 10 + (sql[i] - '0');
                if (count == cap) {
                    cap = cap == 0 ? 16 : cap * 2;
                    *found = tg_realloc(*found, cap * sizeof(**found));
                }
                (*found)[count++] = v;
            } else {
                size_t j = i + 1;
                if (j < n && !isdigit((unsigned char)sql[j]))
                    while (j < n && sql_tag_char((unsigned char)sql[j]))
                        ++j;
                if (j < n && sql[j] == '$') {
                    /* a dollar-quoted string: skip to the same tag */
                    size_t tag_len = j - i + 1;
                    const char *close = memmem(sql + j + 1, n - (j + 1), sql + i, tag_len);
                    i = close != NULL ? (size_t)(close - sql) + tag_len : n;
                } else {
                    ++i;
                }
            }
        } else {
            ++i;
        }
    }
    return count;
}

/* --- catalog entries --- */

/* where the errors of one entry go: "FILE:LINE: queries[i] (name)FIELD: message", LINE being FIELD's */
typedef struct st_entry_ctx_t {
    tg_errors_t *errs;
    const tg__source_t *src;
    char prefix[64 + MAX_NAME_LEN];
} entry_ctx_t;

__attribute__((format(printf, 3, 4))) static void entry_error(entry_ctx_t *e, const char *field, const char *fmt, ...)
{
    tg_buf_t f = {0}, m = {0};
    va_list ap;

    tg_buf_printf(&f, "%s%s", e->prefix, field);
    va_start(ap, fmt);
    tg_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    tg__source_error(e->errs, e->src, f.base, "%s", m.base);
    tg_buf_dispose(&f);
    tg_buf_dispose(&m);
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; ++i)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* an optional integer member; returns 0 when absent or good */
static int entry_int(entry_ctx_t *e, const char *field, json_t *obj, const char *key, long long lo, long long hi, int *out)
{
    json_t *v = json_object_get(obj, key);
    char why[128];
    long long x;

    if (v == NULL)
        return 0;
    if (tg__json_int(v, lo, hi, &x, why, sizeof(why)) != 0) {
        entry_error(e, field, "%s", why);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* looks a string member up among `choices`; returns its index, `absent` when absent, -1 after an error */
static int entry_choice(entry_ctx_t *e, const char *field, json_t *obj, const char *key, const char *const *choices, int absent,
                        int null_ok)
{
    json_t *v = json_object_get(obj, key);
    tg_buf_t list = {0};
    int i;

    if (v == NULL || (null_ok && json_is_null(v)))
        return absent;
    if (json_is_string(v))
        for (i = 0; choices[i] != NULL; ++i)
            if (strcmp(json_string_value(v), choices[i]) == 0)
                return i;
    for (i = 0; choices[i] != NULL; ++i)
        tg_buf_printf(&list, "%s\"%s\"", i == 0 ? "" : choices[i + 1] == NULL ? " or " : ", ", choices[i]);
    entry_error(e, field, "must be %s%s", null_ok ? "null, " : "", list.base);
    tg_buf_dispose(&list);
    return -1;
}

static void check_unknown(entry_ctx_t *e, const char *field, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    tg_buf_t f = {0};
    json_object_foreach(obj, key, v)
    {
        if (!tg__key_allowed(key, allowed)) {
            tg_buf_reset(&f);
            tg_buf_printf(&f, "%s%s.%s", e->prefix, field, key);
            tg__unknown_field(e->errs, e->src, f.base, key, allowed, NULL);
        }
    }
    tg_buf_dispose(&f);
}

static int is_numeric_type(tg_type_t t)
{
    return t <= TG_TYPE_NUMERIC;
}

static int is_int_type(tg_type_t t)
{
    return t <= TG_TYPE_INT8;
}

static void int_type_range(tg_type_t t, long long *lo, long long *hi)
{
    switch (t) {
    case TG_TYPE_INT2:
        *lo = -32768;
        *hi = 32767;
        break;
    case TG_TYPE_INT4:
        *lo = INT32_MIN;
        *hi = INT32_MAX;
        break;
    default:
        *lo = INT64_MIN;
        *hi = INT64_MAX;
        break;
    }
}

/* reads a `min` or `max` bound; returns 0 if given and good */
/* A bound: `v` as jansson read it, `raw` as the file wrote it (numeric bounds keep that text, `*text`). */
static int param_bound(entry_ctx_t *e, const char *field, json_t *v, const tg_json_t *raw, tg_param_t *p, double *d, int64_t *i,
                       char **text)
{
    if (is_int_type(p->type)) {
        long long lo, hi;
        int_type_range(p->type, &lo, &hi);
        if (!json_is_integer(v)) {
            entry_error(e, field, "must be an integer (the parameter is %s)", tg_type_name(p->type));
            return -1;
        }
        long long x = json_integer_value(v);
        if (x < lo || x > hi) {
            entry_error(e, field, "%lld is out of range for %s", x, tg_type_name(p->type));
            return -1;
        }
        *i = x;
        *d = (double)x;
        return 0;
    }
    if (!json_is_number(v)) {
        entry_error(e, field, "must be a number");
        return -1;
    }
    *d = json_number_value(v);
    *i = 0;
    if (p->type == TG_TYPE_NUMERIC)
        *text = tg_strndup(raw->text, raw->len);
    return 0;
}

static const char *const param_fields[] = {"name",       "type", "required",    "default", "min", "max",
                                           "max_length", "enum", "description", "from",    NULL};

/* parses params[idx] (`o`, and `raw`, the same member as text) into `p`; returns 0 if it is good */
static int parse_param(entry_ctx_t *e, size_t idx, json_t *o, const tg_json_t *raw, tg_param_t *p, h2o_mem_pool_t *pool)
{
    char field[160];
    size_t before = e->errs->n;
    json_t *v;
    int type_ok = 0;

    p->max_length = -1;
    p->required = 1;
    p->path_index = -1;
    snprintf(field, sizeof(field), ".params[%zu]", idx);
    if (!json_is_object(o)) {
        entry_error(e, field, "must be an object");
        return -1;
    }
    check_unknown(e, field, o, param_fields);

    /* name */
    v = json_object_get(o, "name");
    snprintf(field, sizeof(field), ".params[%zu].name", idx);
    if (v == NULL) {
        entry_error(e, field, "required");
    } else if (!json_is_string(v) || !valid_name(json_string_value(v), json_string_length(v)) ||
               json_string_length(v) > MAX_NAME_LEN) {
        entry_error(e, field, "must be a name of letters, digits and '_' (at most %d)", MAX_NAME_LEN);
    } else {
        p->name = tg_strdup(json_string_value(v));
    }
    if ((v = json_object_get(o, "description")) != NULL && !json_is_null(v)) {
        snprintf(field, sizeof(field), ".params[%zu].description", idx);
        if (json_is_string(v))
            p->description = tg_strdup(json_string_value(v));
        else
            entry_error(e, field, "must be a string");
    }
    /* field names from here on carry the parameter's name */
    char pfx[96];
    if (p->name != NULL)
        snprintf(pfx, sizeof(pfx), ".params[%zu] (%s)", idx, p->name);
    else
        snprintf(pfx, sizeof(pfx), ".params[%zu]", idx);
#define PFIELD(sub) (snprintf(field, sizeof(field), "%s%s", pfx, (sub)), field)

    /* type */
    v = json_object_get(o, "type");
    if (v == NULL) {
        entry_error(e, PFIELD(".type"), "required");
    } else if (!json_is_string(v)) {
        entry_error(e, PFIELD(".type"), "must be a string");
    } else {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > 2 && strcmp(s + len - 2, "[]") == 0) {
            p->is_array = 1;
            len -= 2;
        }
        int t = tg_type_from_name(s, len);
        if (t < 0) {
            entry_error(e, PFIELD(".type"),
                        "unknown type \"%s\" (int2 int4 int8 float4 float8 numeric text bool uuid date "
                        "timestamptz json jsonb, or an array of one as type[])",
                        s);
        } else {
            p->type = (tg_type_t)t;
            type_ok = 1;
        }
    }

    /* required */
    int required_given = 0;
    if ((v = json_object_get(o, "required")) != NULL) {
        if (!json_is_boolean(v)) {
            entry_error(e, PFIELD(".required"), "must be true or false");
        } else {
            required_given = 1;
            p->required = json_is_true(v);
        }
    }

    if (type_ok) {
        json_t *vmin = json_object_get(o, "min"), *vmax = json_object_get(o, "max");
        if ((vmin != NULL || vmax != NULL) && !is_numeric_type(p->type)) {
            entry_error(e, PFIELD(vmin != NULL ? ".min" : ".max"), "only numeric parameters take bounds (this one is %s)",
                        tg_type_name(p->type));
        } else {
            tg_json_t raw_min = raw_member(raw, "min"), raw_max = raw_member(raw, "max");
            if (vmin != NULL && param_bound(e, PFIELD(".min"), vmin, &raw_min, p, &p->min, &p->imin, &p->min_text) == 0)
                p->has_min = 1;
            if (vmax != NULL && param_bound(e, PFIELD(".max"), vmax, &raw_max, p, &p->max, &p->imax, &p->max_text) == 0)
                p->has_max = 1;
            if (p->has_min && p->has_max && (is_int_type(p->type) ? p->imin > p->imax : p->min > p->max))
                entry_error(e, PFIELD(".max"), "must not be less than min");
        }
        if ((v = json_object_get(o, "max_length")) != NULL) {
            long long x;
            char why[128];
            if (p->type != TG_TYPE_TEXT)
                entry_error(e, PFIELD(".max_length"), "only text parameters take max_length (this one is %s)",
                            tg_type_name(p->type));
            else if (tg__json_int(v, 1, INT_MAX, &x, why, sizeof(why)) != 0)
                entry_error(e, PFIELD(".max_length"), "%s", why);
            else
                p->max_length = (long)x;
        }
        /* enum values are checked as scalars of the type, within the bounds above */
        if ((v = json_object_get(o, "enum")) != NULL) {
            if (!json_is_array(v) || json_array_size(v) == 0) {
                entry_error(e, PFIELD(".enum"), "must be a non-empty array of values");
            } else if (p->type == TG_TYPE_JSON || p->type == TG_TYPE_JSONB) {
                entry_error(e, PFIELD(".enum"), "json parameters take no enum");
            } else {
                tg_param_t scalar = *p;
                size_t i;
                json_t *ev;
                scalar.is_array = 0;
                scalar.enum_values = NULL;
                scalar.n_enum = 0;
                scalar.required = 1;
                tg_json_t raw_enum = raw_member(raw, "enum"), rev;
                tg_json_iter_t it;
                tg_json_iter_init(&it, &raw_enum);
                p->enum_values = tg_calloc(json_array_size(v), sizeof(*p->enum_values));
                json_array_foreach(v, i, ev)
                {
                    const char *canon = NULL, *why;
                    char efield[128];
                    snprintf(efield, sizeof(efield), "%s.enum[%zu]", pfx, i);
                    if (!tg_json_iter_next(&it, NULL, &rev))
                        tg_fatal("the raw text of %s does not match its parse", efield);
                    if (json_is_null(ev)) {
                        entry_error(e, efield, "null is not an enum value (make the parameter optional instead)");
                    } else if ((why = tg_params_check_json(&scalar, &rev, pool, &canon)) != NULL) {
                        entry_error(e, efield, "%s", why);
                    } else if (canon != NULL) {
                        p->enum_values[p->n_enum++] = tg_strdup(canon);
                    }
                }
            }
        }
        /* the default, checked last: against the type, bounds, max_length and enum */
        if ((v = json_object_get(o, "default")) != NULL) {
            const char *canon = NULL, *why;
            p->has_default = 1;
            if (required_given && p->required) {
                entry_error(e, PFIELD(".required"), "a parameter with a default is not required");
            }
            p->required = 0;
            tg_json_t raw_default = raw_member(raw, "default");
            if ((why = tg_params_check_json(p, &raw_default, pool, &canon)) != NULL)
                entry_error(e, PFIELD(".default"), "%s", why);
            else
                p->default_text = canon != NULL ? tg_strdup(canon) : NULL;
        }
    } else if (json_object_get(o, "default") != NULL) {
        p->has_default = 1;
        p->required = 0;
    }

    /* from: "tenant" binds the caller's tenant name, which the caller cannot set: nothing about it is optional */
    if ((v = json_object_get(o, "from")) != NULL && !json_is_null(v)) {
        static const char *const not_with_tenant[] = {"required", "default", "enum", "max_length", NULL};
        if (!json_is_string(v) || strcmp(json_string_value(v), "tenant") != 0) {
            entry_error(e, PFIELD(".from"), "must be \"tenant\" (the caller's tenant name)");
        } else {
            p->source = TG_SOURCE_TENANT;
            if (type_ok && (p->type != TG_TYPE_TEXT || p->is_array))
                entry_error(e, PFIELD(".type"), "a parameter from the tenant is the tenant's name: its type must be text");
            for (size_t i = 0; not_with_tenant[i] != NULL; ++i)
                if (json_object_get(o, not_with_tenant[i]) != NULL)
                    entry_error(e, PFIELD(".from"), "a parameter from the tenant is always given: it takes no %s", not_with_tenant[i]);
            p->required = 1;
        }
    }
#undef PFIELD
    return e->errs->n == before ? 0 : -1;
}

/* parses "METHOD /path"; fills the path parameter names (malloc'd) */
static int parse_route(entry_ctx_t *e, json_t *v, tg_query_t *q, char **names, size_t *n_names)
{
    const char *s, *sp, *path;
    size_t before = e->errs->n;

    *n_names = 0;
    if (v == NULL) {
        entry_error(e, ".route", "required");
        return -1;
    }
    if (!json_is_string(v) || (sp = strchr((s = json_string_value(v)), ' ')) == NULL) {
        entry_error(e, ".route", "must be a string \"METHOD /path\"");
        return -1;
    }
    int m = tg_method_from_name(s, (size_t)(sp - s));
    if (m < 0) {
        entry_error(e, ".route", "unknown method \"%.*s\" (GET, POST, PUT, PATCH or DELETE)", (int)(sp - s), s);
        return -1;
    }
    path = sp + 1;
    if (path[0] != '/') {
        entry_error(e, ".route", "the path must start with '/'");
        return -1;
    }
    for (const char *c = path; *c != '\0'; ++c) {
        if (isspace((unsigned char)*c) || *c == '?' || *c == '#' || (unsigned char)*c < 0x20) {
            entry_error(e, ".route", "the path must not contain spaces, '?' or '#'");
            return -1;
        }
    }
    /* The built-in endpoints answer first, so a catalog route there could never be reached. */
    static const char *const builtin[] = {"/healthz", "/readyz", "/openapi.json"};
    for (size_t i = 0; i != sizeof(builtin) / sizeof(builtin[0]); ++i) {
        if (strcmp(path, builtin[i]) == 0) {
            entry_error(e, ".route", "%s is a built-in endpoint", path);
            return -1;
        }
    }
    /* segments: literal, or a whole "{name}" */
    for (const char *seg = path + 1;;) {
        const char *end = strchr(seg, '/');
        size_t len = end != NULL ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 && end != NULL) {
            entry_error(e, ".route", "empty path segment");
        } else if (memchr(seg, '{', len) != NULL || memchr(seg, '}', len) != NULL) {
            if (len < 3 || seg[0] != '{' || seg[len - 1] != '}' || !valid_name(seg + 1, len - 2)) {
                entry_error(e, ".route", "a path parameter must be a whole segment \"{name}\" (got \"%.*s\")", (int)len, seg);
            } else if (*n_names == TG_ROUTER_MAX_PATH_PARAMS) {
                entry_error(e, ".route", "more than %d path parameters", TG_ROUTER_MAX_PATH_PARAMS);
            } else {
                char *name = tg_strndup(seg + 1, len - 2);
                int dup = 0;
                for (size_t i = 0; i < *n_names; ++i)
                    if (strcmp(names[i], name) == 0)
                        dup = 1;
                if (dup) {
                    entry_error(e, ".route", "{%s} appears twice", name);
                    free(name);
                } else {
                    names[(*n_names)++] = name;
                }
            }
        }
        if (end == NULL)
            break;
        seg = end + 1;
    }
    if (e->errs->n != before)
        return -1;
    q->method = (tg_method_t)m;
    q->path = tg_strdup(path);
    return 0;
}

/* reads sql / sql_file into q->sql */
static int parse_sql(entry_ctx_t *e, json_t *o, const char *catalog_dir, tg_query_t *q)
{
    json_t *sql = json_object_get(o, "sql"), *file = json_object_get(o, "sql_file");
    tg_buf_t b = {0};

    if (sql != NULL && file != NULL) {
        entry_error(e, ".sql_file", "give either sql or sql_file, not both");
        return -1;
    }
    if (sql == NULL && file == NULL) {
        entry_error(e, ".sql", "required (or sql_file)");
        return -1;
    }
    if (sql != NULL) {
        if (json_is_string(sql)) {
            tg_buf_append(&b, json_string_value(sql), json_string_length(sql));
        } else if (json_is_array(sql) && json_array_size(sql) != 0) {
            size_t i;
            json_t *line;
            json_array_foreach(sql, i, line)
            {
                if (!json_is_string(line)) {
                    char f[32];
                    snprintf(f, sizeof(f), ".sql[%zu]", i);
                    entry_error(e, f, "must be a string");
                    tg_buf_dispose(&b);
                    return -1;
                }
                if (i != 0)
                    tg_buf_appendc(&b, '\n');
                tg_buf_append(&b, json_string_value(line), json_string_length(line));
            }
        } else {
            entry_error(e, ".sql", "must be a string or a non-empty array of strings");
            return -1;
        }
    } else {
        if (!json_is_string(file) || json_string_length(file) == 0) {
            entry_error(e, ".sql_file", "must be a path");
            return -1;
        }
        char *path = tg__path_join(catalog_dir, json_string_value(file));
        int err = tg__read_file(path, &b);
        if (err != 0) {
            entry_error(e, ".sql_file", "cannot read \"%s\": %s", path, strerror(err));
            free(path);
            tg_buf_dispose(&b);
            return -1;
        }
        free(path);
    }
    if (b.base == NULL || strlen(b.base) != b.len) {
        entry_error(e, sql != NULL ? ".sql" : ".sql_file", b.base == NULL ? "is empty" : "contains a NUL byte");
        tg_buf_dispose(&b);
        return -1;
    }
    size_t i;
    for (i = 0; i < b.len && isspace((unsigned char)b.base[i]); ++i)
        ;
    if (i == b.len) {
        entry_error(e, sql != NULL ? ".sql" : ".sql_file", "is empty");
        tg_buf_dispose(&b);
        return -1;
    }
    q->sql = b.base;
    return 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* every $n names a parameter and every parameter is used */
static void check_placeholders(entry_ctx_t *e, tg_query_t *q)
{
    long *found;
    size_t n = sql_placeholders(q->sql, &found);
    char *used = tg_calloc(q->n_params + 1, 1);

    /* in number order, each number once */
    if (n != 0)
        qsort(found, n, sizeof(*found), cmp_long);
    for (size_t i = 0; i < n; ++i) {
        long v = found[i];
        if (i != 0 && v == found[i - 1])
            continue;
        if (v == 0)
            entry_error(e, ".sql", "$0 is not a placeholder (they start at $1)");
        else if ((size_t)v > q->n_params)
            entry_error(e, ".sql", "$%ld has no parameter (params declares %zu)", v, q->n_params);
        else
            used[v] = 1;
    }
    for (size_t i = 0; i < q->n_params; ++i) {
        if (!used[i + 1]) {
            char f[128];
            snprintf(f, sizeof(f), ".params[%zu] (%s)", i, q->params[i].name != NULL ? q->params[i].name : "?");
            entry_error(e, f, "not used: $%zu does not appear in the SQL", i + 1);
        }
    }
    free(used);
    free(found);
}

static const char *const entry_fields[] = {"name",    "route",       "description", "sql",  "sql_file",      "params",
                                           "returns", "access",      "timeout_ms",  "cost", "max_in_flight", "priority",
                                           "cache",   "invalidates", "enabled",     "status", "location", "not_found_if_none",
                                           "cursor",  NULL};
static const char *const returns_names[] = {"one", "many", "none", NULL};
static const char *const access_names[] = {"read", "write", NULL};
static const char *const priority_names[] = {"high", "low", NULL};

static void free_query(tg_query_t *q);

/* the index of the parameter named `name`, or -1 */
static int param_index(const tg_query_t *q, const char *name)
{
    for (size_t i = 0; i < q->n_params; ++i)
        if (q->params[i].name != NULL && strcmp(q->params[i].name, name) == 0)
            return (int)i;
    return -1;
}

int tg_template_next(const char **at, const char **lit, size_t *lit_len, const char **name, size_t *len)
{
    const char *open = strchr(*at, '{'), *close = open != NULL ? strchr(open, '}') : NULL;
    *lit = *at;
    if (close == NULL) {
        *lit_len = strlen(*at);
        *at += *lit_len;
        return 0;
    }
    *lit_len = (size_t)(open - *at);
    *name = open + 1, *len = (size_t)(close - open - 1);
    *at = close + 1;
    return 1;
}

/* `location`: a path ("/users/{id}") whose {names} are column names, each a whole segment or part of one */
static int valid_location(const char *s)
{
    if (s[0] != '/')
        return 0;
    for (const char *c = s; *c != '\0'; ++c) {
        if (*c == '}' || (unsigned char)*c <= ' ' || *c == '?' || *c == '#')
            return 0;
        if (*c == '{') {
            const char *end = strchr(c, '}');
            if (end == NULL || end == c + 1 || memchr(c + 1, '{', (size_t)(end - c - 1)) != NULL)
                return 0;
            c = end;
        }
    }
    return 1;
}

/*
 * The REST habits of an entry: `status` of a success, `location` of what it made,
 * `not_found_if_none` for writes that match nothing, and `cursor` for keyset pages.
 * Location and cursor need the rows before the answer's headers, so such a query is
 * never streamed; they are not for cached queries (a cached answer keeps no headers).
 */
static void rest_fields(entry_ctx_t *e, json_t *o, tg_query_t *q, int params_ok)
{
    json_t *v;
    if ((v = json_object_get(o, "status")) != NULL && entry_int(e, ".status", o, "status", 200, 204, &q->status) == 0) {
        if (q->status == 204 && q->returns != TG_RETURNS_NONE)
            entry_error(e, ".status", "204 sends no body: only for returns \"none\"");
    }
    if ((v = json_object_get(o, "location")) != NULL && !json_is_null(v)) {
        if (!json_is_string(v) || !valid_location(json_string_value(v)))
            entry_error(e, ".location", "must be a path such as \"/users/{id}\", its {names} columns of the answer");
        else if (q->returns == TG_RETURNS_NONE)
            entry_error(e, ".location", "is filled from the answer's row: not for returns \"none\"");
        else if (q->cached)
            entry_error(e, ".location", "cannot be combined with cache");
        else
            q->location = tg_strdup(json_string_value(v));
    }
    if ((v = json_object_get(o, "not_found_if_none")) != NULL) {
        if (!json_is_boolean(v))
            entry_error(e, ".not_found_if_none", "must be true or false");
        else if (json_is_true(v) && q->access != TG_ACCESS_WRITE)
            entry_error(e, ".not_found_if_none", "is for writes (a read of no row answers [] or, for returns \"one\", 404)");
        else
            q->not_found_if_none = json_is_true(v);
    }
    if ((v = json_object_get(o, "cursor")) == NULL || json_is_null(v))
        return;
    static const char *const cursor_fields[] = {"column", "param", "limit", NULL};
    if (!json_is_object(v)) {
        entry_error(e, ".cursor", "must be null or an object {\"column\": .., \"param\": .., \"limit\": ..}");
        return;
    }
    check_unknown(e, ".cursor", v, cursor_fields);
    json_t *column = json_object_get(v, "column"), *param = json_object_get(v, "param"), *limit = json_object_get(v, "limit");
    int ok = 1;
    if (!json_is_string(column) || json_string_length(column) == 0)
        entry_error(e, ".cursor.column", "required: the column whose last value the next page starts after"), ok = 0;
    if (!json_is_string(param))
        entry_error(e, ".cursor.param", "required: the query-string parameter that takes it"), ok = 0;
    if (limit != NULL && !json_is_null(limit) && !json_is_string(limit))
        entry_error(e, ".cursor.limit", "must be the name of the parameter that bounds the page"), ok = 0;
    if (q->returns != TG_RETURNS_MANY)
        entry_error(e, ".cursor", "pages are for returns \"many\""), ok = 0;
    if (q->cached)
        entry_error(e, ".cursor", "cannot be combined with cache"), ok = 0;
    if (!ok || !params_ok)
        return;
    int pi = param_index(q, json_string_value(param));
    if (pi < 0 || q->params[pi].source != TG_SOURCE_QUERY || q->params[pi].is_array) {
        entry_error(e, ".cursor.param", "\"%s\" must be a scalar parameter of this query taken from the query string (a GET or DELETE)",
                    json_string_value(param));
        return;
    }
    int li = -1;
    if (json_is_string(limit)) {
        li = param_index(q, json_string_value(limit));
        tg_type_t t = li >= 0 ? q->params[li].type : TG_TYPE_TEXT;
        if (li < 0 || q->params[li].is_array || (t != TG_TYPE_INT2 && t != TG_TYPE_INT4 && t != TG_TYPE_INT8)) {
            entry_error(e, ".cursor.limit", "\"%s\" must be an integer parameter of this query", json_string_value(limit));
            return;
        }
    }
    q->cursor_column = tg_strdup(json_string_value(column));
    q->cursor_param = pi;
    q->cursor_limit = li;
}

/*
 * Names the prepared statement after what it is: a hash of its SQL and parameter
 * types. A connection kept across a reload then knows exactly which statements it
 * has, and a query whose SQL changed under the same name is prepared anew.
 */
static void name_statement(tg_query_t *q)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[SHA256_DIGEST_LENGTH];
    tg_buf_t b = {0};
    tg_buf_append(&b, q->sql, strlen(q->sql) + 1);
    for (size_t i = 0; i < q->n_params; ++i)
        tg_buf_printf(&b, "%u,", tg_type_oid(q->params[i].type, q->params[i].is_array));
    SHA256((const unsigned char *)b.base, b.len, d);
    tg_buf_dispose(&b);
    memcpy(q->stmt_name, "tg_", 3);
    for (int i = 0; i < 16; ++i) {
        q->stmt_name[3 + 2 * i] = hex[d[i] >> 4];
        q->stmt_name[4 + 2 * i] = hex[d[i] & 15];
    }
    q->stmt_name[35] = '\0';
}

/*
 * Parses one catalog entry into `q`. Returns 0 if it was good, -1 if not; `q->name` is
 * set whenever the name itself was good (so that later checks can refer to the entry),
 * and `*route_ok` when the route was.
 */
static int parse_entry(entry_ctx_t *e, json_t *o, const tg_json_t *raw, size_t idx, const tg_config_t *cfg, const char *catalog_dir,
                       h2o_mem_pool_t *pool, tg_query_t *q, int *route_ok)
{
    size_t before = e->errs->n;
    char *path_names[TG_ROUTER_MAX_PATH_PARAMS];
    size_t n_path_names = 0;
    json_t *v;
    int sql_ok, params_ok = 1, x; /* params_ok: `params` is an array (its entries may still be bad) */

    snprintf(e->prefix, sizeof(e->prefix), "queries[%zu]", idx);
    *route_ok = 0;
    q->timeout_ms = cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : 5000;
    q->cost = 1;
    q->priority = TG_PRIORITY_INHERIT;
    q->enabled = 1;
    q->status = 200;
    q->cursor_param = q->cursor_limit = -1;
    if (!json_is_object(o)) {
        entry_error(e, "", "must be an object");
        return -1;
    }

    /* name first: the rest of the messages carry it */
    v = json_object_get(o, "name");
    if (v == NULL) {
        entry_error(e, ".name", "required");
    } else if (!json_is_string(v) || !valid_name(json_string_value(v), json_string_length(v)) ||
               json_string_length(v) > MAX_NAME_LEN) {
        entry_error(e, ".name", "must be a name of letters, digits and '_' (at most %d)", MAX_NAME_LEN);
    } else {
        q->name = tg_strdup(json_string_value(v));
        snprintf(e->prefix, sizeof(e->prefix), "queries[%zu] (%s)", idx, q->name);
    }
    check_unknown(e, "", o, entry_fields);

    if (parse_route(e, json_object_get(o, "route"), q, path_names, &n_path_names) == 0)
        *route_ok = 1;

    if ((v = json_object_get(o, "description")) != NULL && !json_is_null(v)) {
        if (json_is_string(v))
            q->description = tg_strdup(json_string_value(v));
        else
            entry_error(e, ".description", "must be a string");
    }
    sql_ok = parse_sql(e, o, catalog_dir, q) == 0;

    /* params */
    if ((v = json_object_get(o, "params")) != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            entry_error(e, ".params", "must be an array");
            params_ok = 0;
        } else {
            size_t i;
            json_t *po;
            tg_json_t raw_params = raw_member(raw, "params"), raw_po;
            tg_json_iter_t it;
            tg_json_iter_init(&it, &raw_params);
            q->params = tg_calloc(json_array_size(v) + 1, sizeof(*q->params));
            q->n_params = json_array_size(v);
            json_array_foreach(v, i, po)
            {
                if (!tg_json_iter_next(&it, NULL, &raw_po))
                    tg_fatal("the raw text of params[%zu] does not match its parse", i);
                parse_param(e, i, po, &raw_po, q->params + i, pool);
                for (size_t j = 0; j < i && q->params[i].name != NULL; ++j) {
                    if (q->params[j].name != NULL && strcmp(q->params[j].name, q->params[i].name) == 0) {
                        char f[128];
                        snprintf(f, sizeof(f), ".params[%zu].name", i);
                        entry_error(e, f, "duplicate parameter \"%s\" (also params[%zu])", q->params[i].name, j);
                        break;
                    }
                }
            }
        }
    }

    /* where each parameter comes from */
    if (*route_ok && params_ok) {
        for (size_t j = 0; j < n_path_names; ++j) {
            int found = param_index(q, path_names[j]);
            if (found < 0) {
                entry_error(e, ".route", "{%s} is not a declared parameter", path_names[j]);
                continue;
            }
            size_t i = (size_t)found;
            tg_param_t *p = q->params + i;
            char f[128];
            snprintf(f, sizeof(f), ".params[%zu] (%s)", i, p->name);
            if (p->source == TG_SOURCE_TENANT) {
                entry_error(e, ".route", "{%s} is bound to the caller's tenant (from: \"tenant\") and cannot be in the path", p->name);
                continue;
            }
            p->source = TG_SOURCE_PATH;
            p->path_index = (int)j;
            if (p->is_array || p->type == TG_TYPE_JSON || p->type == TG_TYPE_JSONB)
                entry_error(e, f, "a path parameter cannot be %s", p->is_array ? "an array" : "json");
            if (p->has_default || !p->required)
                entry_error(e, f, "a path parameter is always given: it takes no default and cannot be optional");
        }
        for (size_t i = 0; i < q->n_params; ++i) {
            if (q->params[i].path_index >= 0 || q->params[i].source == TG_SOURCE_TENANT)
                continue;
            q->params[i].source = q->method == TG_METHOD_GET || q->method == TG_METHOD_DELETE ? TG_SOURCE_QUERY : TG_SOURCE_BODY;
        }
    }
    for (size_t j = 0; j < n_path_names; ++j)
        free(path_names[j]);

    if (sql_ok && params_ok)
        check_placeholders(e, q);

    /* returns, access */
    if ((x = entry_choice(e, ".returns", o, "returns", returns_names, -2, 0)) == -2)
        entry_error(e, ".returns", "required (\"one\", \"many\" or \"none\")");
    else if (x >= 0)
        q->returns = (tg_returns_t)x;
    int access_ok = 0;
    if ((x = entry_choice(e, ".access", o, "access", access_names, -2, 0)) == -2) {
        entry_error(e, ".access", "required (\"read\" or \"write\")");
    } else if (x >= 0) {
        q->access = (tg_access_t)x;
        access_ok = 1;
    }

    entry_int(e, ".timeout_ms", o, "timeout_ms", 1, INT_MAX, &q->timeout_ms);
    entry_int(e, ".cost", o, "cost", 1, 1000000, &q->cost);
    entry_int(e, ".max_in_flight", o, "max_in_flight", 0, INT_MAX, &q->max_in_flight);
    if ((x = entry_choice(e, ".priority", o, "priority", priority_names, TG_PRIORITY_INHERIT, 1)) >= 0)
        q->priority = (tg_priority_t)x;

    /* cache: reads only */
    if ((v = json_object_get(o, "cache")) != NULL && !json_is_null(v)) {
        static const char *const cache_fields[] = {"ttl_ms", "stale_ms", NULL};
        if (!json_is_object(v)) {
            entry_error(e, ".cache", "must be null or an object {\"ttl_ms\": .., \"stale_ms\": ..}");
        } else {
            check_unknown(e, ".cache", v, cache_fields);
            if (json_object_get(v, "ttl_ms") == NULL)
                entry_error(e, ".cache.ttl_ms", "required");
            else
                entry_int(e, ".cache.ttl_ms", v, "ttl_ms", 1, INT_MAX, &q->cache_ttl_ms);
            entry_int(e, ".cache.stale_ms", v, "stale_ms", 0, INT_MAX, &q->cache_stale_ms);
            if (access_ok && q->access == TG_ACCESS_WRITE)
                entry_error(e, ".cache", "only read queries can be cached");
            q->cached = 1;
        }
    }

    /* invalidates: writes only; the names are checked once the whole catalog is in */
    if ((v = json_object_get(o, "invalidates")) != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            entry_error(e, ".invalidates", "must be an array of query names");
        } else if (json_array_size(v) != 0 && access_ok && q->access == TG_ACCESS_READ) {
            entry_error(e, ".invalidates", "only write queries invalidate");
        } else {
            size_t i;
            json_t *nv;
            q->invalidates = tg_calloc(json_array_size(v) + 1, sizeof(*q->invalidates));
            json_array_foreach(v, i, nv)
            {
                char f[64];
                snprintf(f, sizeof(f), ".invalidates[%zu]", i);
                if (!json_is_string(nv)) {
                    entry_error(e, f, "must be a query name");
                    continue;
                }
                int dup = 0;
                for (size_t j = 0; j < q->n_invalidates; ++j)
                    if (strcmp(q->invalidates[j], json_string_value(nv)) == 0)
                        dup = 1;
                if (dup)
                    entry_error(e, f, "\"%s\" is listed twice", json_string_value(nv));
                else
                    q->invalidates[q->n_invalidates++] = tg_strdup(json_string_value(nv));
            }
        }
    }

    if ((v = json_object_get(o, "enabled")) != NULL) {
        if (json_is_boolean(v))
            q->enabled = json_is_true(v);
        else
            entry_error(e, ".enabled", "must be true or false");
    }
    rest_fields(e, o, q, params_ok);
    if (sql_ok && params_ok)
        name_statement(q);
    return e->errs->n == before ? 0 : -1;
}

static void free_query(tg_query_t *q)
{
    free(q->name);
    free(q->location);
    free(q->cursor_column);
    free(q->description);
    free(q->path);
    free(q->sql);
    for (size_t i = 0; i < q->n_params; ++i) {
        tg_param_t *p = q->params + i;
        free(p->name);
        free(p->description);
        free(p->min_text);
        free(p->max_text);
        free(p->default_text);
        for (size_t j = 0; j < p->n_enum; ++j)
            free(p->enum_values[j]);
        free(p->enum_values);
    }
    free(q->params);
    for (size_t i = 0; i < q->n_invalidates; ++i)
        free(q->invalidates[i]);
    free(q->invalidates);
    free(q->invalidate_states);
    free(q->file);
}

/* --- catalog files --- */

typedef struct st_loader_t {
    tg_config_t *cfg;
    tg_errors_t *errs;
    h2o_mem_pool_t pool;
    size_t cap;
    char *route_ok;    /* per query: its route parsed, so the router may see it */
    char **seen;       /* real paths of the files read so far */
    size_t n_seen;
    const tg__source_t *config; /* the config file's text: for the lines of its `catalog` entries */
    struct st_kept_t {
        tg__source_t src;
        tg_buf_t text;
    } *kept; /* every catalog file read, kept until the whole catalog is checked: for the lines of later errors */
    size_t n_kept;
} loader_t;

/* the kept text of catalog file `file`, or NULL */
static const tg__source_t *kept_source(const loader_t *l, const char *file)
{
    for (size_t i = 0; i < l->n_kept; ++i)
        if (strcmp(l->kept[i].src.file, file) == 0)
            return &l->kept[i].src;
    return NULL;
}

/* a file named twice (say, by itself and through its folder) is read once */
static int seen_before(loader_t *l, const char *file)
{
    char *real = realpath(file, NULL);
    if (real == NULL)
        return 0;
    for (size_t i = 0; i < l->n_seen; ++i) {
        if (strcmp(l->seen[i], real) == 0) {
            free(real);
            return 1;
        }
    }
    l->seen = tg_realloc(l->seen, (l->n_seen + 1) * sizeof(*l->seen));
    l->seen[l->n_seen++] = real;
    return 0;
}

static const char *const catalog_fields[] = {"queries", NULL};

static void load_file(loader_t *l, const char *file)
{
    tg_buf_t text = {0};
    json_error_t jerr;
    json_t *root = NULL, *queries;
    tg__source_t src;
    tg_json_error_t rerr;
    int err;

    if (seen_before(l, file))
        return;
    if ((err = tg__read_file(file, &text)) != 0) {
        tg__field_error(l->errs, file, 0, NULL, "cannot read: %s", strerror(err));
        goto Exit;
    }
    if (tg__source_init(&src, file, text.base, text.len, &rerr) != 0) {
        tg__field_error(l->errs, file, (int)rerr.line, NULL, "invalid JSON: %s (column %u)", rerr.reason, rerr.column);
        goto Exit;
    }
    /* What jansson refuses beyond that is mostly a number it cannot hold: say how to write one. */
    if ((root = json_loadb(text.base, text.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        int number = strstr(jerr.text, "too big") != NULL || strstr(jerr.text, "overflow") != NULL;
        tg__field_error(l->errs, file, jerr.line, NULL, "invalid JSON: %s%s", jerr.text,
                        number ? " (numbers in catalog files must fit a 64-bit integer or a double: write larger ones as strings)"
                               : "");
        goto Exit;
    }
    if (!json_is_object(root)) {
        tg__field_error(l->errs, file, 1, NULL, "a catalog file must be an object {\"queries\": [...]}");
        goto Exit;
    }
    const char *key;
    json_t *kv;
    json_object_foreach(root, key, kv)
    {
        if (!tg__key_allowed(key, catalog_fields))
            tg__unknown_field(l->errs, &src, key, key, catalog_fields, " (a catalog file holds only \"queries\")");
    }
    if ((queries = json_object_get(root, "queries")) == NULL) {
        tg__source_error(l->errs, &src, "queries", "required");
        goto Exit;
    }
    if (!json_is_array(queries)) {
        tg__source_error(l->errs, &src, "queries", "must be an array");
        goto Exit;
    }

    /* kept (the text moves into the loader) so that the checks of the whole catalog can name lines too */
    l->kept = tg_realloc(l->kept, (l->n_kept + 1) * sizeof(*l->kept));
    l->kept[l->n_kept].text = text;
    l->kept[l->n_kept].src = src;
    l->kept[l->n_kept].src.file = tg_strdup(file);
    const tg__source_t *kept = &l->kept[l->n_kept++].src;
    text = (tg_buf_t){0};

    size_t n = json_array_size(queries), i;
    int *lines = tg_calloc(n + 1, sizeof(*lines)), *route_lines = tg_calloc(n + 1, sizeof(*route_lines));
    tg_json_t *raw = tg_calloc(n + 1, sizeof(*raw));
    char *dir = tg__path_dir(file);
    json_t *o;
    find_entries(kept->text, &kept->root, raw, lines, route_lines, n);
    json_array_foreach(queries, i, o)
    {
        entry_ctx_t e = {l->errs, kept};
        tg_query_t q = {0};
        int route_ok;
        parse_entry(&e, o, &raw[i], i, l->cfg, dir, &l->pool, &q, &route_ok);
        if (q.name == NULL) {
            free_query(&q);
            continue;
        }
        q.file = tg_strdup(file);
        q.line = lines[i];
        q.route_line = route_lines[i];
        q.entry = (uint32_t)i;
        if (l->cfg->n_queries == l->cap) {
            l->cap = l->cap == 0 ? 16 : l->cap * 2;
            l->cfg->queries = tg_realloc(l->cfg->queries, l->cap * sizeof(*l->cfg->queries));
            l->route_ok = tg_realloc(l->route_ok, l->cap);
        }
        q.index = (uint32_t)l->cfg->n_queries;
        l->route_ok[l->cfg->n_queries] = (char)route_ok;
        l->cfg->queries[l->cfg->n_queries++] = q;
    }
    free(dir);
    free(lines);
    free(route_lines);
    free(raw);

Exit:
    json_decref(root);
    tg_buf_dispose(&text);
}

static int is_json_file(const struct dirent *d)
{
    size_t len = strlen(d->d_name);
    return d->d_name[0] != '.' && len > 5 && strcmp(d->d_name + len - 5, ".json") == 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void load_path(loader_t *l, size_t idx)
{
    const char *path = l->cfg->catalog_paths[idx];
    struct stat st;
    char field[32];

    snprintf(field, sizeof(field), "catalog[%zu]", idx);
    if (stat(path, &st) != 0) {
        tg__source_error(l->errs, l->config, field, "\"%s\": %s", path, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        load_file(l, path);
        return;
    }
    struct dirent **ents;
    int n = scandir(path, &ents, is_json_file, by_name);
    if (n < 0) {
        tg__source_error(l->errs, l->config, field, "\"%s\": %s", path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; ++i) {
        char *file = tg__path_join(path, ents[i]->d_name);
        struct stat fst;
        if (stat(file, &fst) == 0 && S_ISREG(fst.st_mode))
            load_file(l, file);
        free(file);
        free(ents[i]);
    }
    free(ents);
}

static int by_name_then_index(const void *a, const void *b)
{
    const tg_query_t *x = *(const tg_query_t *const *)a, *y = *(const tg_query_t *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->index < y->index ? -1 : x->index > y->index);
}

static void query_error(loader_t *l, const tg_query_t *q, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void query_error(loader_t *l, const tg_query_t *q, const char *field, const char *fmt, ...)
{
    tg__source_t unknown = {q->file, NULL, {0}};
    const tg__source_t *src = kept_source(l, q->file);
    entry_ctx_t e = {l->errs, src != NULL ? src : &unknown};
    tg_buf_t m = {0};
    va_list ap;

    snprintf(e.prefix, sizeof(e.prefix), "queries[%u] (%s)", q->entry, q->name);
    va_start(ap, fmt);
    tg_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    entry_error(&e, field, "%s", m.base);
    tg_buf_dispose(&m);
}

/* checks that need the whole catalog: unique names, invalidates */
static void check_catalog(loader_t *l)
{
    tg_config_t *cfg = l->cfg;
    const tg_query_t **sorted = tg_malloc((cfg->n_queries + 1) * sizeof(*sorted));

    for (size_t i = 0; i < cfg->n_queries; ++i)
        sorted[i] = cfg->queries + i;
    qsort(sorted, cfg->n_queries, sizeof(*sorted), by_name_then_index);
    for (size_t i = 1; i < cfg->n_queries; ++i) {
        size_t first = i - 1;
        while (i < cfg->n_queries && strcmp(sorted[i]->name, sorted[first]->name) == 0) {
            query_error(l, sorted[i], ".name", "duplicate query name, first defined at %s:%d", sorted[first]->file,
                        sorted[first]->line);
            ++i;
        }
    }
    free(sorted);

    for (size_t i = 0; i < cfg->n_queries; ++i) {
        const tg_query_t *q = cfg->queries + i;
        for (size_t j = 0; j < q->n_invalidates; ++j) {
            const tg_query_t *t = tg_config_find_query(cfg, q->invalidates[j]);
            char f[64];
            snprintf(f, sizeof(f), ".invalidates[%zu]", j);
            if (t == NULL)
                query_error(l, q, f, "no query is named \"%s\"", q->invalidates[j]);
            else if (!t->cached)
                query_error(l, q, f, "\"%s\" is not cached", q->invalidates[j]);
        }
    }
}

void tg__catalog_load(tg_config_t *cfg, const tg__source_t *config, tg_errors_t *errs)
{
    loader_t l = {cfg, errs};
    l.config = config;
    size_t before = errs->n;

    h2o_mem_init_pool(&l.pool);
    for (size_t i = 0; i < cfg->n_catalog_paths; ++i)
        load_path(&l, i);
    h2o_mem_clear_pool(&l.pool);
    check_catalog(&l);

    /*
     * The router sees only queries whose route parsed, so that it reports duplicate routes
     * alongside the other errors without repeating ours. A router built on a copy is only
     * for its errors: it is freed at once, as the snapshot is rejected anyway.
     */
    if (errs->n == before) {
        cfg->router = tg_router_build(cfg->queries, cfg->n_queries, errs);
    } else {
        tg_query_t *ok = tg_malloc((cfg->n_queries + 1) * sizeof(*ok));
        size_t n = 0;
        for (size_t i = 0; i < cfg->n_queries; ++i)
            if (l.route_ok[i])
                ok[n++] = cfg->queries[i];
        tg_router_t *r = tg_router_build(ok, n, errs);
        if (r != NULL)
            tg_router_free(r);
        free(ok);
    }
    free(l.route_ok);
    for (size_t i = 0; i < l.n_kept; ++i) {
        free((char *)l.kept[i].src.file);
        tg_buf_dispose(&l.kept[i].text);
    }
    free(l.kept);
    for (size_t i = 0; i < l.n_seen; ++i)
        free(l.seen[i]);
    free(l.seen);
}

void tg__catalog_dispose(tg_config_t *cfg)
{
    if (cfg->router != NULL)
        tg_router_free(cfg->router);
    cfg->router = NULL;
    for (size_t i = 0; i < cfg->n_queries; ++i)
        free_query(cfg->queries + i);
    free(cfg->queries);
    cfg->queries = NULL;
    cfg->n_queries = 0;
}

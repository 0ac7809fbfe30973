/*
 * Helpers shared by the config file parser (config.c) and the catalog parser (catalog.c).
 */
#ifndef tollgate__config_internal_h
#define tollgate__config_internal_h

#include <jansson.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"
#include "tollgate/json.h"

/** a config or catalog file's text, kept while it is checked, for the lines of its fields */
typedef struct st_tg__source_t {
    const char *file;
    const char *text; /* NULL: the lines are not known */
    tg_json_t root;   /* the document, as tg_json_parse made it of `text` */
} tg__source_t;

/** appends "FILE[:LINE]: FIELD: message" to `errs` (line 0: none known) */
void tg__field_error(tg_errors_t *errs, const char *file, int line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** sets `src` up for `file`; its lines stay unknown (text NULL) when tg_json_parse refuses the text, whose error goes in `err` */
int tg__source_init(tg__source_t *src, const char *file, const char *text, size_t len, tg_json_error_t *err);
/** the line of `field` (as errors name it, tollgate/fieldline.h) in `src`; 0 when not known */
int tg__source_line(const tg__source_t *src, const char *field);
/** appends "FILE:LINE: FIELD: message" to `errs`, LINE being the line of FIELD itself in `src` */
void tg__source_error(tg_errors_t *errs, const tg__source_t *src, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/**
 * The message for a key that is not one of the NULL-terminated `allowed`: "unknown
 * field", with `(did you mean "X"?)` when one of them is within a typo of it.
 */
void tg__unknown_field(tg_errors_t *errs, const tg__source_t *src, const char *field, const char *key, const char *const *allowed,
                       const char *extra);
/** the name of `allowed` nearest `key` by edit distance (a transposition counts one) when it is close; else NULL */
const char *tg__nearest_name(const char *key, const char *const *allowed);
/** reads an integer in [lo, hi]; returns 0, or -1 with the reason in `why` */
int tg__json_int(const json_t *v, long long lo, long long hi, long long *out, char *why, size_t why_len);
/** reads a number in [lo, hi] (lo excluded when `lo_exclusive`); returns 0, or -1 with the reason in `why` */
int tg__json_number(const json_t *v, double lo, double hi, int lo_exclusive, double *out, char *why, size_t why_len);
/** is `key` one of the NULL-terminated `allowed`? */
int tg__key_allowed(const char *key, const char *const *allowed);
/** the folder of `path` (malloc'd; "." when it has none) */
char *tg__path_dir(const char *path);
/** `rel` resolved against `dir` (malloc'd; absolute paths are returned as they are) */
char *tg__path_join(const char *dir, const char *rel);
/** reads a whole file into `out`; returns 0 or an errno value */
int tg__read_file(const char *path, tg_buf_t *out);
/** loads every catalog file named by cfg->catalog_paths (`config`: the config's text) into cfg->queries and builds cfg->router */
void tg__catalog_load(tg_config_t *cfg, const tg__source_t *config, tg_errors_t *errs);
/** frees what tg__catalog_load made */
void tg__catalog_dispose(tg_config_t *cfg);

#endif

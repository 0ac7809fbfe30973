/*
 * Helpers shared by the config file parser (config.c) and the catalog parser (catalog.c).
 */
#ifndef tollgate__config_internal_h
#define tollgate__config_internal_h

#include <jansson.h>
#include "tollgate/buf.h"
#include "tollgate/config.h"

/** appends "FILE[:LINE]: FIELD: message" to `errs` (line 0: none known) */
void tg__field_error(tg_errors_t *errs, const char *file, int line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
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
/** loads every catalog file named by cfg->catalog_paths into cfg->queries and builds cfg->router */
void tg__catalog_load(tg_config_t *cfg, tg_errors_t *errs);
/** frees what tg__catalog_load made */
void tg__catalog_dispose(tg_config_t *cfg);

#endif

/*
 * Lines of fields: where in a config or catalog file's text the field an error
 * names is written. jansson keeps no positions, so the field is found again in the
 * raw document (tollgate/json.h) by its path, step by step: the same key nested
 * elsewhere, or earlier in the file, is never taken for it.
 */
#ifndef tollgate__fieldline_h
#define tollgate__fieldline_h

#include "tollgate/json.h"

/**
 * The 1-based line of `field` in `root`, the document tg_json_parse made of `text`.
 * `field` is written as error messages write it: keys joined by '.', array elements
 * as `[N]`, and after any step an optional label ` (name)`, which is skipped:
 * `tenants[0].keys[1]`, `queries[1] (list_users).params[0] (limit).max`. A key
 * holding '.', '[' or " (" is matched whole (the longest key that fits wins).
 * An object member's line is its key's; an array element's, its first byte's. A
 * path that goes past what the document holds (a required member missing, an index
 * past the end) gives the line of the last value it reached: the object that lacks
 * the member. "" or NULL is the line of the document itself.
 */
unsigned tg_field_line(const char *text, const tg_json_t *root, const char *field);

#endif

/*
 * problem+json (RFC 9457) error bodies.
 */
#ifndef tollgate__problem_h
#define tollgate__problem_h

#include <stddef.h>
#include "tollgate/buf.h"
#include "tollgate/params.h"

/** the media type of every error body */
#define TG_PROBLEM_CONTENT_TYPE "application/problem+json"

/** what to say */
typedef struct st_tg_problem_t {
    int status;                     /* the HTTP status */
    const char *type;               /* a slug ("invalid-parameters"); becomes "urn:tollgate:problem:<slug>"; NULL: "about:blank" */
    const char *title;              /* short, fixed per type; NULL: the status's reason phrase */
    const char *detail;             /* this occurrence; NULL: omitted */
    const char *sqlstate;           /* five characters, or NULL */
    const tg_param_error_t *errors; /* per-parameter errors, or NULL */
    size_t n_errors;
    size_t n_errors_total;          /* more than n_errors: the list was cut, and "error_count" says how many there were */
} tg_problem_t;

/** appends the JSON body of `p` to `out` */
void tg_problem_format(tg_buf_t *out, const tg_problem_t *p);

/** the reason phrase of a status ("Not Found"); "Unknown" if not one we send */
const char *tg_status_reason(int status);

#endif

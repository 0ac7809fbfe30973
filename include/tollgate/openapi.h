/*
 * The OpenAPI 3.1 document of a snapshot's catalog, served at GET /openapi.json. Made
 * once per snapshot (tg_snapshot_create), from the config alone: no SQL text, no
 * connection string, nothing a caller does not need. The same config gives the same
 * bytes.
 */
#ifndef tollgate__openapi_h
#define tollgate__openapi_h

#include "tollgate/buf.h"
#include "tollgate/config.h"

/** appends the document of `cfg` (the catalog, the built-in endpoints, the security schemes) to `out` */
void tg_openapi_build(const tg_config_t *cfg, tg_buf_t *out);

/** the status a successful call of `q` answers */
int tg_openapi_success_status(const tg_query_t *q);

/** can a call of `q` answer 404 `not-found` (its statement found no row)? */
int tg_openapi_answers_not_found(const tg_query_t *q);

#endif

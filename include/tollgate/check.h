/*
 * `tollgate --check --db`: prepares every catalog statement on the primary and checks
 * what PostgreSQL says about it against the catalog.
 */
#ifndef tollgate__check_h
#define tollgate__check_h

#include "tollgate/buf.h"
#include "tollgate/config.h"

/**
 * Connects to the primary (blocking: this is a command-line check, not the server)
 * and, for every query, prepares its statement with the declared parameter types and
 * checks that it has the parameters the catalog says and that queries returning rows
 * return uniquely named columns. Every problem goes to `errs`. Returns 0 if none.
 */
int tg_check_db(const tg_config_t *cfg, tg_errors_t *errs);

#endif

/*
 * The database half of `--check`: every catalog statement prepared on the primary.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include "tollgate/check.h"
#include "tollgate/encode.h"
#include "internal.h"

/*
 * "FILE:LINE: queries[i] (NAME)FIELD: " for messages about q's FIELD, as the catalog's
 * own errors are written; the line is FIELD's, read again from the file.
 */
static const char *where(tg_buf_t *b, const tg_query_t *q, const char *field)
{
    tg_buf_t f = {0};
    tg_buf_printf(&f, "queries[%u] (%s)%s", q->entry, q->name, field);
    int line = q->file != NULL ? tg_config_field_line(q->file, f.base) : 0;
    tg_buf_reset(b);
    if (q->file != NULL)
        tg_buf_printf(b, line > 0 ? "%s:%d: " : "%s: ", q->file, line);
    tg_buf_printf(b, "%s: ", f.base);
    tg_buf_dispose(&f);
    return b->base;
}

static void check_query(PGconn *conn, const tg_query_t *q, tg_errors_t *errs)
{
    tg_buf_t at = {0};
    Oid oids[q->n_params + 1];
    for (size_t i = 0; i != q->n_params; ++i)
        oids[i] = tg_type_oid(q->params[i].type, q->params[i].is_array);
    PGresult *res = PQprepare(conn, "", q->sql, (int)q->n_params, oids);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        tg_errors_add(errs, "%sPostgreSQL cannot prepare it: %s (SQLSTATE %s)", where(&at, q, ".sql"), msg != NULL ? msg : "?",
                      state != NULL ? state : "?");
        PQclear(res);
        tg_buf_dispose(&at);
        return;
    }
    PQclear(res);
    res = PQdescribePrepared(conn, "");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        tg_errors_add(errs, "%scannot describe the statement: %.*s", where(&at, q, ".sql"),
                      (int)strcspn(PQerrorMessage(conn), "\n"), PQerrorMessage(conn));
    } else {
        if ((size_t)PQnparams(res) != q->n_params)
            tg_errors_add(errs, "%sthe statement takes %d parameters, the catalog declares %zu", where(&at, q, ".params"), PQnparams(res),
                          q->n_params);
        for (int i = 0; i < PQnparams(res) && (size_t)i < q->n_params; ++i)
            if (PQparamtype(res, i) != oids[i]) {
                char f[96];
                snprintf(f, sizeof(f), ".params[%d] (%s)", i, q->params[i].name);
                tg_errors_add(errs, "%sPostgreSQL takes $%d as type oid %u, not %s", where(&at, q, f), i + 1, PQparamtype(res, i),
                              tg_type_name(q->params[i].type));
            }
        int nf = PQnfields(res);
        if (q->returns != TG_RETURNS_NONE && nf == 0)
            tg_errors_add(errs, "%s\"%s\", but the statement returns no columns", where(&at, q, ".returns"),
                          q->returns == TG_RETURNS_ONE ? "one" : "many");
        /* The columns `location` and `cursor` take their values from */
        const char *t = q->location, *lit, *name;
        size_t lit_len, len;
        while (t != NULL && tg_template_next(&t, &lit, &lit_len, &name, &len))
            if (tg_column_index(res, name, len) < 0)
                tg_errors_add(errs, "%s.location: {%.*s} is not a column of the answer", at.base, (int)len, name);
        if (q->cursor_column != NULL && tg_column_index(res, q->cursor_column, strlen(q->cursor_column)) < 0)
            tg_errors_add(errs, "%s.cursor.column: \"%s\" is not a column of the answer", at.base, q->cursor_column);
        /* Rows become JSON objects: two columns of one name would make a duplicate key. */
        for (int i = 0; i < nf; ++i)
            for (int j = 0; j < i; ++j)
                if (strcmp(PQfname(res, i), PQfname(res, j)) == 0) {
                    tg_errors_add(errs, "%stwo result columns are named \"%s\"; alias one", where(&at, q, ".sql"), PQfname(res, i));
                    j = i;
                }
    }
    PQclear(res);
    tg_buf_dispose(&at);
}

int tg_check_db(const tg_config_t *cfg, tg_errors_t *errs)
{
    size_t before = errs->n;
    PGconn *conn = PQconnectdb(cfg->primary);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(conn);
        tg_buf_t at = {0};
        int line = tg_config_field_line(cfg->path, "primary");
        tg_buf_printf(&at, line > 0 ? "%s:%d: " : "%s: ", cfg->path, line);
        tg_errors_add(errs, "%sprimary: cannot connect: %.*s", at.base, (int)strcspn(msg, "\n"), msg);
        tg_buf_dispose(&at);
        PQfinish(conn);
        return -1;
    }
    for (size_t i = 0; i != cfg->n_queries; ++i)
        check_query(conn, &cfg->queries[i], errs);
    PQfinish(conn);
    return errs->n == before ? 0 : -1;
}

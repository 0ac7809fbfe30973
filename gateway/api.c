/*
 * The embedder's ways in (tollgate.h) that need a config: a gateway created from a
 * config file or from JSON text, and reloaded, with the reasons of a failure handed
 * back as one text instead of the modules' error lists. The rest of the life (start,
 * run, stop, free) is the server module's own.
 */
#include <stdlib.h>
#include <string.h>
#include "tollgate.h"
#include "tollgate/config.h"
#include "tollgate/server.h"
#include "internal.h"

/*
 * The messages of `e` as one malloc'd text, one a line (a message's own line breaks and
 * control bytes escaped, as the log does, so a line is always one message), or NULL
 * when there are none.
 */
static char *joined(const tg_errors_t *e)
{
    if (e->n == 0)
        return NULL;
    tg_buf_t b = {0};
    for (size_t i = 0; i != e->n; ++i) {
        size_t size = strlen(e->msgs[i]) * 4 + 1; /* \xHH at most for each byte */
        char *line = tg_malloc(size);
        tg_log_escape(line, size, e->msgs[i]);
        tg_buf_printf(&b, "%s%s", i != 0 ? "\n" : "", line);
        free(line);
    }
    return b.base;
}

/* Sets *out (when asked for) to `e`'s text, and empties `e`. */
static void hand_back(tg_errors_t *e, char **out)
{
    if (out != NULL)
        *out = joined(e);
    tg_errors_dispose(e);
}

/* A gateway for `cfg` (NULL: it did not parse, the reasons in `errs`). */
static int create(tg_config_t *cfg, const char *text, tg_errors_t *errs, tg_gateway_t **gw, char **error)
{
    int r = TG_OK;
    *gw = NULL;
    if (cfg == NULL)
        r = TG_ERR_CONFIG;
    else if ((*gw = tg_gateway_create_config(cfg, text, errs)) == NULL)
        r = TG_ERR_START;
    if (error != NULL)
        *error = NULL;
    hand_back(errs, r == TG_OK ? NULL : error);
    return r;
}

int tg_gateway_create(const char *config_path, tg_gateway_t **gw, char **error)
{
    tg_errors_t errs = {0};
    tg_config_t *cfg = tg_config_load(config_path, &errs);
    return create(cfg, NULL, &errs, gw, error);
}

int tg_gateway_create_json(const char *json, const char *name, tg_gateway_t **gw, char **error)
{
    tg_errors_t errs = {0};
    if (json == NULL || name == NULL) {
        tg_errors_add(&errs, "tg_gateway_create_json: %s is NULL", json == NULL ? "the JSON text" : "the name");
        return create(NULL, NULL, &errs, gw, error);
    }
    tg_config_t *cfg = tg_config_parse(json, strlen(json), name, &errs);
    return create(cfg, json, &errs, gw, error);
}

int tg_gateway_reload(tg_gateway_t *gw, const char *json, char **message)
{
    tg_errors_t errs = {0}, notes = {0};
    uint64_t generation;
    int r = tg_gateway_reload_config(gw, json, &errs, &notes, &generation) == 0 ? TG_OK : TG_ERR_CONFIG;
    hand_back(r == TG_OK ? &notes : &errs, message);
    tg_errors_dispose(&errs);
    tg_errors_dispose(&notes);
    return r;
}

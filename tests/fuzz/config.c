/*
 * Fuzz target: the config file (gateway/config.c: tg_config_parse, from memory), with
 * the catalog it names read by gateway/catalog.c.
 *
 * Input: the config file's bytes, parsed as <sandbox>/tollgate.json. The sandbox
 * (tests/fuzz/sandbox.h) holds catalog/ (two catalog files and an sql_file), tls/
 * (a certificate and a key) and logs/ (a folder for access_log); nothing outside it
 * can be opened while the target runs.
 *
 * Asserts: a config is returned exactly when no error was reported; every error names
 * a file (starts with a path in the sandbox) and reads back from a JSON string (as the
 * reload answer sends it); a returned config has its listeners, threads, primary,
 * catalog and router, and its warnings are strings; everything is freed (LeakSanitizer).
 */
#include "sandbox.h"
#include "tollgate/buf.h"
#include "tollgate/config.h"

static const char catalog_users[] =
    "{\"queries\": [\n"
    "  {\"name\": \"get_user\", \"route\": \"GET /users/{id}\", \"sql\": \"SELECT id FROM users WHERE id = $1\",\n"
    "   \"params\": [{\"name\": \"id\", \"type\": \"int8\", \"min\": 1}], \"returns\": \"one\", \"access\": \"read\",\n"
    "   \"cache\": {\"ttl_ms\": 1000, \"stale_ms\": 5000}},\n"
    "  {\"name\": \"create_user\", \"route\": \"POST /users\", \"sql\": \"INSERT INTO users (email) VALUES ($1) RETURNING id\",\n"
    "   \"params\": [{\"name\": \"email\", \"type\": \"text\", \"max_length\": 200}], \"returns\": \"one\", \"access\": \"write\",\n"
    "   \"invalidates\": [\"get_user\"]},\n"
    "  {\"name\": \"notes_mine\", \"route\": \"GET /notes\", \"sql\": \"SELECT * FROM notes WHERE owner = $1\",\n"
    "   \"params\": [{\"name\": \"owner\", \"type\": \"text\", \"from\": \"tenant\"}], \"returns\": \"many\", \"access\": \"read\"}\n"
    "]}\n";
static const char catalog_orders[] =
    "{\"queries\": [\n"
    "  {\"name\": \"order_report\", \"route\": \"GET /reports/orders\", \"sql_file\": \"sql/order_report.sql\",\n"
    "   \"params\": [{\"name\": \"since\", \"type\": \"timestamptz\"}], \"returns\": \"one\", \"access\": \"read\", \"cost\": 10}\n"
    "]}\n";
static const char order_sql[] = "SELECT count(*) AS n FROM orders WHERE created_at >= $1\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sandbox_init();
    sandbox_write("catalog/10-users.json", catalog_users, sizeof(catalog_users) - 1);
    sandbox_write("catalog/20-orders.json", catalog_orders, sizeof(catalog_orders) - 1);
    sandbox_write("catalog/sql/order_report.sql", order_sql, sizeof(order_sql) - 1);
    sandbox_write("tls/cert.pem", "-----BEGIN CERTIFICATE-----\n", 28);
    sandbox_write("tls/key.pem", "-----BEGIN PRIVATE KEY-----\n", 28);
    sandbox_write("logs/.keep", "", 0);
    return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/tollgate.json", sandbox_dir);
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    tg_errors_t errs = {0};
    sandbox_active = 1;
    tg_config_t *cfg = tg_config_parse(text, size, path, &errs);
    sandbox_active = 0;
    FUZZ_ASSERT((cfg == NULL) == (errs.n != 0), "config %p with %zu errors", (void *)cfg, errs.n);
    check_errors(&errs);
    if (cfg != NULL) {
        FUZZ_ASSERT(cfg->n_listen >= 1 && cfg->listen != NULL && cfg->threads >= 1 && cfg->primary != NULL, "config incomplete");
        FUZZ_ASSERT(cfg->router != NULL && cfg->n_catalog_paths >= 1, "no catalog or router");
        for (size_t i = 0; i < cfg->n_queries; ++i)
            FUZZ_ASSERT(cfg->queries[i].name != NULL && cfg->queries[i].path != NULL && cfg->queries[i].sql != NULL, "query %zu", i);
        for (size_t i = 0; i < cfg->n_tenants; ++i)
            FUZZ_ASSERT(cfg->tenants[i].name != NULL, "tenant %zu has no name", i);
        for (size_t i = 0; i < cfg->warnings.n; ++i)
            FUZZ_ASSERT(cfg->warnings.msgs[i] != NULL, "warning %zu", i);
        tg_config_free(cfg);
    }
    tg_errors_dispose(&errs);
    free(text);
    return 0;
}

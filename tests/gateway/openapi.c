/*
 * Tests of gateway/openapi.c: the document of a catalog with every type and every
 * `returns`, parameters in the path, the query string and the body as the catalog
 * places them, tenant parameters left out, the errors each call can answer, the
 * security schemes, and the same bytes for the same catalog.
 */
#include "config_fixture.h"
#include <jansson.h>
#include "tollgate.h"
#include "tollgate/openapi.h"

TestSuite(openapi, .init = make_dir, .fini = remove_dir);

/* float specials; numerics' text grammar (with JSON's escaping of the backslash, in the ' notation) */
#define FP "'^(NaN|Infinity|-Infinity)$'"
#define NP "'^(-?[0-9]+(\\\\.[0-9]+)?([eE][+-]?[0-9]+)?|NaN|Infinity|-Infinity)$'"
#define INT8_RANGE "'minimum': -9223372036854775808, 'maximum': 9223372036854775807"
#define INT4_RANGE "'minimum': -2147483648, 'maximum': 2147483647"

static const char catalog[] =
    "{'queries': ["
    /* a write from the body, returns one: every scalar type, bounds, enum, defaults, an array, a tenant parameter */
    " {'name': 'body_types', 'route': 'POST /things/{id}', 'description': 'Every type\\nfrom the body',"
    "  'sql': 'SELECT secret_marker_sql($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)',"
    "  'params': ["
    "   {'name': 'id', 'type': 'int4', 'description': 'the id'},"
    "   {'name': 'i2', 'type': 'int2'},"
    "   {'name': 'i8', 'type': 'int8', 'min': 1},"
    "   {'name': 'f4', 'type': 'float4', 'required': false},"
    "   {'name': 'f8', 'type': 'float8', 'min': -1.5, 'max': 2.5, 'required': false},"
    "   {'name': 'n', 'type': 'numeric', 'min': 0.10, 'max': 99.90, 'required': false},"
    "   {'name': 't', 'type': 'text', 'max_length': 5, 'enum': ['a', 'b'], 'description': 'a letter'},"
    "   {'name': 'b', 'type': 'bool', 'default': true},"
    "   {'name': 'u', 'type': 'uuid'},"
    "   {'name': 'd', 'type': 'date'},"
    "   {'name': 'ts', 'type': 'timestamptz', 'required': false},"
    "   {'name': 'j', 'type': 'json'},"
    "   {'name': 'jb', 'type': 'jsonb', 'default': {'a': [1, 2.50]}},"
    "   {'name': 'ia', 'type': 'int8[]', 'default': [1, null]},"
    "   {'name': 'owner', 'type': 'text', 'from': 'tenant'}],"
    "  'returns': 'one', 'access': 'write'},"
    /* a read from the query string, returns many */
    " {'name': 'query_types', 'route': 'GET /things', 'description': 'Things',"
    "  'sql': 'SELECT $1, $2, $3, $4, $5, $6, $7',"
    "  'params': ["
    "   {'name': 'i4', 'type': 'int4', 'enum': [1, 2]},"
    "   {'name': 'n', 'type': 'numeric', 'enum': [1.50, 'NaN']},"
    "   {'name': 'ta', 'type': 'text[]', 'default': []},"
    "   {'name': 'owner', 'type': 'text', 'from': 'tenant'},"
    "   {'name': 'j', 'type': 'json', 'default': {'x':1}},"
    "   {'name': 'fl', 'type': 'float8', 'default': 'NaN'},"
    "   {'name': 'b', 'type': 'bool', 'required': false}],"
    "  'returns': 'many', 'access': 'read'},"
    /* a delete, returns none; the same path as nothing else */
    " {'name': 'drop_thing', 'route': 'DELETE /things/{id}', 'sql': 'DELETE FROM t WHERE id = $1',"
    "  'params': [{'name': 'id', 'type': 'int8'}], 'returns': 'none', 'access': 'write'},"
    /* a body method with no body parameter */
    " {'name': 'touch', 'route': 'PUT /things/{id}/touch', 'sql': 'SELECT $1',"
    "  'params': [{'name': 'id', 'type': 'uuid'}], 'returns': 'none', 'access': 'write'}"
    "]}";

static tg_config_t *load_catalog(const char *cat, const char *extra)
{
    char config[1024];
    snprintf(config, sizeof(config),
             "{'listen': [{'host': '127.0.0.1', 'port': 8080}], 'primary': 'host=db.example password=hunter2', 'max_rows': 1000,"
             " 'tenants': [{'name': 'x', 'keys': ['sha256:%064d'], 'rate': 1, 'burst': 1}]%s, 'catalog': ['catalog.json']}",
             0, extra);
    tg_errors_t errs = {0};
    write_file("catalog.json", cat);
    tg_config_t *cfg = parse_config(config, &errs);
    if (cfg == NULL)
        dump(&errs);
    cr_assert_not_null(cfg, "the catalog must load");
    tg_errors_dispose(&errs);
    return cfg;
}

static tg_config_t *load_with(const char *extra)
{
    return load_catalog(catalog, extra);
}

/* the document of `cfg` as text (malloc'd) */
static char *build(const tg_config_t *cfg)
{
    tg_buf_t b = {0};
    tg_openapi_build(cfg, &b);
    cr_assert_not_null(b.base);
    return b.base;
}

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    cr_assert_not_null(doc, "the document is not JSON: %s (line %d)", err.text, err.line);
    return doc;
}

/* the document of the fixture catalog with config members `extra`: declares cfg, text (its text) and doc (parsed) */
#define OPEN_DOC(extra)                                                                                                                  \
    tg_config_t *cfg = load_with(extra);                                                                                                 \
    char *text = build(cfg);                                                                                                             \
    json_t *doc = parse(text)

static void close_doc(tg_config_t *cfg, char *text, json_t *doc)
{
    json_decref(doc);
    free(text);
    tg_config_free(cfg);
}

/* doc[k1][k2]... (NULL-terminated keys); asserts each is there */
static json_t *at(json_t *doc, ...)
{
    va_list ap;
    const char *k;
    va_start(ap, doc);
    while ((k = va_arg(ap, const char *)) != NULL) {
        json_t *next = json_object_get(doc, k);
        cr_assert_not_null(next, "no member \"%s\"", k);
        doc = next;
    }
    va_end(ap);
    return doc;
}

/* `got` equals the JSON `want` (' notation) */
static void expect_json(const json_t *got, const char *want)
{
    char *text = j(want);
    json_error_t err;
    json_t *w = json_loads(text, 0, &err);
    cr_assert_not_null(w, "bad expected JSON: %s: %s", err.text, text);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_COMPACT), *e = json_dumps(w, JSON_COMPACT);
        cr_assert_fail("got\n  %s\nwanted\n  %s", g, e);
    }
    json_decref(w);
    free(text);
}

/* the statuses of an operation's responses, comma-separated in document order */
static void expect_statuses(json_t *op, const char *want)
{
    char got[256] = "";
    const char *status;
    json_t *v;
    json_object_foreach(at(op, "responses", NULL), status, v)
    {
        if (got[0] != '\0')
            strcat(got, ",");
        strcat(got, status);
    }
    cr_assert_str_eq(got, want);
}

Test(openapi, document_basics)
{
    OPEN_DOC("");
    cr_assert_str_eq(json_string_value(at(doc, "openapi", NULL)), "3.1.0");
    expect_json(at(doc, "info", NULL), "{'title': 'tollgate', 'version': '" TOLLGATE_VERSION "',"
                                       " 'description': 'The catalog`s queries as JSON endpoints. Errors are application/problem+json.',"
                                       " 'license': {'name': 'MIT', 'identifier': 'MIT'}}");
    expect_json(at(doc, "servers", NULL), "[{'url': '/'}]");
    /* keys only: no anonymous in this config */
    expect_json(at(doc, "security", NULL), "[{'bearer': []}, {'apiKey': []}]");
    expect_json(at(doc, "components", "securitySchemes", NULL),
                "{'apiKey': {'type': 'apiKey', 'in': 'header', 'name': 'X-API-Key',"
                "            'description': 'The API key, read when Authorization holds no Bearer key'},"
                " 'bearer': {'type': 'http', 'scheme': 'bearer', 'description': 'Authorization: Bearer <API key>'}}");
    /* the built-ins, keyless */
    expect_json(at(doc, "paths", "/healthz", "get", "security", NULL), "[]");
    expect_statuses(at(doc, "paths", "/healthz", "get", NULL), "200");
    expect_statuses(at(doc, "paths", "/readyz", "get", NULL), "200,503");
    at(doc, "paths", "/openapi.json", "get", NULL);
    /* every path: the catalog's and the built-ins */
    cr_assert_eq(json_object_size(at(doc, "paths", NULL)), 6);
    /* errors share one Problem schema and carry their headers */
    expect_json(at(doc, "components", "responses", "TooManyRequests", "content", NULL),
                "{'application/problem+json': {'schema': {'$ref': '#/components/schemas/Problem'}}}");
    expect_json(at(doc, "components", "responses", "TooManyRequests", "headers", NULL),
                "{'X-Request-Id': {'$ref': '#/components/headers/X-Request-Id'},"
                " 'RateLimit-Policy': {'$ref': '#/components/headers/RateLimit-Policy'},"
                " 'RateLimit': {'$ref': '#/components/headers/RateLimit'},"
                " 'Retry-After': {'$ref': '#/components/headers/Retry-After'}}");
    expect_json(at(doc, "components", "responses", "Unauthorized", "headers", NULL),
                "{'X-Request-Id': {'$ref': '#/components/headers/X-Request-Id'},"
                " 'WWW-Authenticate': {'$ref': '#/components/headers/WWW-Authenticate'}}");
    expect_json(at(doc, "components", "schemas", "Problem", "required", NULL), "['type', 'title', 'status', 'detail']");
    /* every $ref names something in components (the ones the operations use, by name) */
    const char *name;
    json_t *v;
    json_object_foreach(at(doc, "components", "responses", NULL), name, v)
        at(v, "content", "application/problem+json", "schema", NULL);
    /* nothing of the SQL or the connection string */
    cr_assert_null(strstr(text, "secret_marker_sql"));
    cr_assert_null(strstr(text, "SELECT"));
    cr_assert_null(strstr(text, "DELETE FROM"));
    cr_assert_null(strstr(text, "db.example"));
    cr_assert_null(strstr(text, "hunter2"));
    cr_assert_null(strstr(text, "sha256"));
    close_doc(cfg, text, doc);
}

Test(openapi, body_parameters_have_a_schema_each)
{
    OPEN_DOC("");
    json_t *op = at(doc, "paths", "/things/{id}", "post", NULL);
    cr_assert_str_eq(json_string_value(at(op, "operationId", NULL)), "body_types");
    cr_assert_str_eq(json_string_value(at(op, "summary", NULL)), "Every type");
    cr_assert_str_eq(json_string_value(at(op, "description", NULL)), "Every type\nfrom the body");
    /* the path parameter is in the path; nothing else is a parameter */
    expect_json(at(op, "parameters", NULL),
                "[{'name': 'id', 'in': 'path', 'description': 'the id', 'required': true,"
                "  'schema': {'type': 'integer', 'format': 'int32', " INT4_RANGE "}}]");
    /* the rest is the body; optional members take null; the tenant's is not there */
    expect_json(at(op, "requestBody", NULL),
                "{'required': true, 'content': {'application/json': {'schema': {'type': 'object', 'properties': {"
                " 'i2': {'type': 'integer', 'format': 'int32', 'minimum': -32768, 'maximum': 32767},"
                " 'i8': {'type': 'integer', 'format': 'int64', 'minimum': 1, 'maximum': 9223372036854775807},"
                " 'f4': {'type': ['number', 'string', 'null'], 'format': 'float', 'pattern': " FP "},"
                " 'f8': {'type': ['number', 'string', 'null'], 'format': 'double', 'pattern': " FP ", 'minimum': -1.5, 'maximum': 2.5},"
                " 'n': {'type': ['number', 'string', 'null'], 'pattern': " NP ", 'minimum': 0.10, 'maximum': 99.90},"
                " 't': {'description': 'a letter', 'type': 'string', 'maxLength': 5, 'enum': ['a', 'b']},"
                " 'b': {'type': ['boolean', 'null'], 'default': true},"
                " 'u': {'type': 'string', 'format': 'uuid'},"
                " 'd': {'type': 'string', 'format': 'date'},"
                " 'ts': {'type': ['string', 'null'], 'format': 'date-time'},"
                " 'j': {'not': {'type': 'null'}},"
                " 'jb': {'default': {'a': [1, 2.50]}},"
                " 'ia': {'type': ['array', 'null'], 'items': {'type': ['integer', 'null'], 'format': 'int64', " INT8_RANGE "},"
                "        'maxItems': 10000, 'default': [1, null]}},"
                " 'required': ['i2', 'i8', 't', 'u', 'd', 'j'], 'additionalProperties': false}}}}");
    /* numbers as the catalog wrote them, not as a double prints them */
    cr_assert_not_null(strstr(text, "\"minimum\": 0.10,"), "numeric bounds keep their digits");
    cr_assert_not_null(strstr(text, "\"maximum\": 99.90\n"), "numeric bounds keep their digits");
    cr_assert_not_null(strstr(text, "\"default\": {\"a\": [1, 2.50]}"), "a json default is the catalog's text");
    cr_assert_null(strstr(text, "owner"), "a tenant parameter is not in the document");
    close_doc(cfg, text, doc);
}

Test(openapi, query_parameters_for_get)
{
    OPEN_DOC("");
    json_t *op = at(doc, "paths", "/things", "get", NULL);
    cr_assert_null(json_object_get(op, "requestBody"), "a GET takes no body");
    expect_json(at(op, "parameters", NULL),
                "[{'name': 'i4', 'in': 'query', 'required': true,"
                "  'schema': {'type': 'integer', 'format': 'int32', " INT4_RANGE ", 'enum': [1, 2]}},"
                /* a numeric matches its text as sent: 1.50 as a number or a string */
                " {'name': 'n', 'in': 'query', 'required': true,"
                "  'schema': {'type': ['number', 'string'], 'pattern': " NP ", 'enum': [1.50, '1.50', 'NaN']}},"
                /* arrays as repeated keys */
                " {'name': 'ta', 'in': 'query', 'required': false, 'style': 'form', 'explode': true,"
                "  'schema': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 10000, 'default': []}},"
                /* json in the query string is its text */
                " {'name': 'j', 'in': 'query', 'required': false,"
                "  'schema': {'type': 'string', 'contentMediaType': 'application/json', 'default': '{\\'x\\':1}'}},"
                " {'name': 'fl', 'in': 'query', 'required': false,"
                "  'schema': {'type': ['number', 'string'], 'format': 'double', 'pattern': " FP ", 'default': 'NaN'}},"
                /* the query string has no null */
                " {'name': 'b', 'in': 'query', 'required': false, 'schema': {'type': 'boolean'}},"
                /* and a read may ask for data that includes a write */
                " {'$ref': '#/components/parameters/Tollgate-Read-After'}]");
    cr_assert_not_null(strstr(text, "1.50,"), "a numeric enum keeps its digits");
    close_doc(cfg, text, doc);
}

/* Writes answer a token; reads take it, as a header whose pattern is the token's one spelling. */
Test(openapi, writes_answer_tollgate_read_after_and_reads_take_it)
{
    OPEN_DOC("");
    expect_json(at(doc, "components", "parameters", "Tollgate-Read-After", "schema", NULL),
                "{'type': 'string', 'pattern': '^([1-9A-F][0-9A-F]{0,7})\\\\.(0|[1-9A-F][0-9A-F]{0,15})$'}");
    cr_assert_str_eq(json_string_value(at(doc, "components", "parameters", "Tollgate-Read-After", "in", NULL)), "header");
    cr_assert_not_null(at(doc, "components", "headers", "Tollgate-Read-After", "schema", NULL));
    /* a write's success names its position; a read's does not, and a write takes no token */
    cr_assert_not_null(at(doc, "paths", "/things/{id}/touch", "put", "responses", "200", "headers", "Tollgate-Read-After", NULL));
    cr_assert_null(json_object_get(at(doc, "paths", "/things", "get", "responses", "200", "headers", NULL), "Tollgate-Read-After"));
    json_t *params = at(doc, "paths", "/things/{id}", "delete", "parameters", NULL);
    for (size_t i = 0; i != json_array_size(params); ++i)
        cr_assert_null(json_object_get(json_array_get(params, i), "$ref"), "a write takes no Tollgate-Read-After");
    close_doc(cfg, text, doc);
}

Test(openapi, each_returns_kind_and_its_errors)
{
    OPEN_DOC("");

    /* one: an object, and 404 when there is no row; a write from a body: 409, 413, 415 */
    json_t *one = at(doc, "paths", "/things/{id}", "post", NULL);
    expect_statuses(one, "200,400,401,403,404,409,413,415,429,500,503,504");
    expect_json(at(one, "responses", "200", "content", NULL), "{'application/json': {'schema': {'$ref': '#/components/schemas/Row'}}}");
    expect_json(at(one, "responses", "200", "headers", NULL),
                "{'X-Request-Id': {'$ref': '#/components/headers/X-Request-Id'},"
                " 'RateLimit-Policy': {'$ref': '#/components/headers/RateLimit-Policy'},"
                " 'RateLimit': {'$ref': '#/components/headers/RateLimit'},"
                " 'Tollgate-Read-After': {'$ref': '#/components/headers/Tollgate-Read-After'}}");
    expect_json(at(one, "responses", "404", NULL), "{'$ref': '#/components/responses/NotFound'}");

    /* many: an array of at most max_rows objects; a read from the query string: none of 404, 409, 413, 415 */
    json_t *many = at(doc, "paths", "/things", "get", NULL);
    expect_statuses(many, "200,400,401,403,429,500,503,504");
    expect_json(at(many, "responses", "200", "content", NULL),
                "{'application/json': {'schema': {'type': 'array', 'items': {'$ref': '#/components/schemas/Row'}, 'maxItems': 1000}}}");

    /* none: rows_affected; a DELETE takes no body */
    json_t *none = at(doc, "paths", "/things/{id}", "delete", NULL);
    expect_statuses(none, "200,400,401,403,409,429,500,503,504");
    expect_json(at(none, "responses", "200", "content", NULL),
                "{'application/json': {'schema': {'$ref': '#/components/schemas/RowsAffected'}}}");
    expect_json(at(doc, "components", "schemas", "RowsAffected", NULL),
                "{'type': 'object', 'properties': {'rows_affected': {'type': 'integer', 'minimum': 0}},"
                " 'required': ['rows_affected'], 'additionalProperties': false}");
    expect_json(at(none, "parameters", NULL),
                "[{'name': 'id', 'in': 'path', 'required': true, 'schema': {'type': 'integer', 'format': 'int64', " INT8_RANGE "}}]");

    /* a body method without body parameters has no requestBody, but can still answer 413 and 415 */
    json_t *put = at(doc, "paths", "/things/{id}/touch", "put", NULL);
    cr_assert_null(json_object_get(put, "requestBody"));
    expect_statuses(put, "200,400,401,403,409,413,415,429,500,503,504");

    /* the shared pieces and the functions the lead's status fields will go through */
    cr_assert_eq(tg_openapi_success_status(tg_config_find_query(cfg, "body_types")), 200);
    cr_assert(tg_openapi_answers_not_found(tg_config_find_query(cfg, "body_types")));
    cr_assert_not(tg_openapi_answers_not_found(tg_config_find_query(cfg, "query_types")));
    close_doc(cfg, text, doc);
}

Test(openapi, keyless_callers_by_the_anonymous_list)
{
    OPEN_DOC(", 'anonymous': {'rate': 1, 'burst': 1, 'queries': ['query_types']}");
    /* keyless calls are allowed... */
    expect_json(at(doc, "security", NULL), "[{'bearer': []}, {'apiKey': []}, {}]");
    /* ...of the queries on anonymous's list only */
    cr_assert_null(json_object_get(at(doc, "paths", "/things", "get", NULL), "security"));
    expect_json(at(doc, "paths", "/things/{id}", "post", "security", NULL), "[{'bearer': []}, {'apiKey': []}]");
    expect_json(at(doc, "paths", "/things/{id}", "delete", "security", NULL), "[{'bearer': []}, {'apiKey': []}]");
    close_doc(cfg, text, doc);
}

Test(openapi, same_catalog_same_bytes)
{
    tg_config_t *a = load_with(""), *b = load_with("");
    char *ta = build(a), *ta2 = build(a), *tb = build(b);
    cr_assert_str_eq(ta, ta2);
    cr_assert_str_eq(ta, tb);
    /* paths in byte order, whatever the catalog's order */
    const char *p1 = strstr(ta, "\"/things\":"), *p2 = strstr(ta, "\"/things/{id}\":"), *p3 = strstr(ta, "\"/things/{id}/touch\":");
    cr_assert(p1 != NULL && p2 != NULL && p3 != NULL && p1 < p2 && p2 < p3);
    /* one path item for the two methods of /things/{id}, in a fixed order */
    cr_assert_null(strstr(p2 + 1, "\"/things/{id}\":"));
    cr_assert(strstr(p2, "\"post\":") < strstr(p2, "\"delete\":"));
    free(ta);
    free(ta2);
    free(tb);
    tg_config_free(a);
    tg_config_free(b);
}

/* The REST fields: a create's 201 and Location, a 204 with no content, 404 for not_found_if_none, a page's Link */
Test(openapi, rest_statuses_and_their_headers)
{
    tg_config_t *cfg = load_catalog(
        "{'queries': ["
        " {'name': 'make', 'route': 'POST /items', 'sql': 'INSERT INTO t (n) VALUES ($1) RETURNING id',"
        "  'params': [{'name': 'n', 'type': 'text'}], 'returns': 'one', 'access': 'write', 'status': 201, 'location': '/items/{id}'},"
        " {'name': 'drop', 'route': 'DELETE /items/{id}', 'sql': 'DELETE FROM t WHERE id = $1',"
        "  'params': [{'name': 'id', 'type': 'int8'}], 'returns': 'none', 'access': 'write', 'status': 204, 'not_found_if_none': true},"
        " {'name': 'page', 'route': 'GET /items', 'sql': 'SELECT id FROM t WHERE id > $1 LIMIT $2',"
        "  'params': [{'name': 'after', 'type': 'int8', 'default': 0}, {'name': 'limit', 'type': 'int4', 'default': 10}],"
        "  'returns': 'many', 'access': 'read', 'cursor': {'column': 'id', 'param': 'after', 'limit': 'limit'}}"
        "]}",
        "");
    char *text = build(cfg);
    json_t *doc = parse(text);
    json_t *make = at(doc, "paths", "/items", "post", NULL);
    expect_statuses(make, "201,400,401,403,404,409,413,415,429,500,503,504");
    expect_json(at(make, "responses", "201", "headers", "Location", NULL), "{'$ref': '#/components/headers/Location'}");
    cr_assert_not_null(at(make, "responses", "201", "content", NULL));
    json_t *drop = at(doc, "paths", "/items/{id}", "delete", NULL);
    expect_statuses(drop, "204,400,401,403,404,409,429,500,503,504");
    cr_assert_null(json_object_get(at(drop, "responses", "204", NULL), "content"), "a 204 has no content");
    json_t *page = at(doc, "paths", "/items", "get", NULL);
    expect_json(at(page, "responses", "200", "headers", "Link", NULL), "{'$ref': '#/components/headers/Link'}");
    cr_assert_null(json_object_get(at(page, "responses", "200", "headers", NULL), "Location"));
    cr_assert_not_null(at(doc, "components", "headers", "Link", NULL));
    cr_assert_not_null(at(doc, "components", "headers", "Location", NULL));
    close_doc(cfg, text, doc);
}

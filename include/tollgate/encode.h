/*
 * Result encoding: writes a PostgreSQL result straight from libpq's text format into
 * a JSON response body, one column encoder per result column, with no intermediate
 * JSON objects.
 */
#ifndef tollgate__encode_h
#define tollgate__encode_h

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "tollgate/buf.h"

/** how a column's text becomes JSON */
typedef enum en_tg_encoding_t {
    TG_ENC_STRING,      /* a JSON string (the default for unknown types) */
    TG_ENC_INT,         /* int2/int4/int8/oid: the text as a JSON number */
    TG_ENC_FLOAT,       /* float4/float8/numeric: a number, or "NaN"/"Infinity"/"-Infinity" as strings */
    TG_ENC_BOOL,        /* 't'/'f' -> true/false */
    TG_ENC_JSON,        /* json/jsonb: embedded as is */
    TG_ENC_TIMESTAMPTZ, /* "2026-01-02 03:04:05.123+00" -> "2026-01-02T03:04:05.123+00:00" */
    TG_ENC_TIMESTAMP,   /* "2026-01-02 03:04:05" -> "2026-01-02T03:04:05" */
    TG_ENC_ARRAY,       /* a PostgreSQL array literal -> JSON array of the element encoding */
    TG_ENC_NULL,        /* void (what a function returning nothing gives): always null */
} tg_encoding_t;

/** a column encoding: the kind, for arrays the element's kind, and where its JSON key is */
typedef struct st_tg_column_enc_t {
    tg_encoding_t enc;
    tg_encoding_t elem; /* for TG_ENC_ARRAY */
    uint32_t key_off;   /* set by tg_encode_columns: `"name":` (escaped once per result) in its `keys` buffer */
    uint32_t key_len;
} tg_column_enc_t;

/** the encoding for a PostgreSQL type OID (arrays of known element types included) */
tg_column_enc_t tg_encoding_for_oid(Oid type);

/**
 * Appends one value (`len` bytes of libpq text, not NULL) as JSON. A malformed value
 * (it should not come from PostgreSQL) is written as a JSON string.
 */
void tg_encode_value(tg_buf_t *out, tg_column_enc_t enc, const char *text, size_t len);

/**
 * Appends row `row` of `res` as a JSON object {"column": value, ...} (SQL NULL as
 * null); `encs` and `keys` come from tg_encode_columns.
 */
void tg_encode_row(tg_buf_t *out, const PGresult *res, int row, const tg_column_enc_t *encs, const tg_buf_t *keys);

/**
 * Fills `encs[i]` for every column of `res` (`encs` has PQnfields(res) slots) and
 * writes each column's escaped JSON key into `keys` (reset first), so rows do not
 * escape the names again.
 */
void tg_encode_columns(const PGresult *res, tg_column_enc_t *encs, tg_buf_t *keys);

/**
 * The column of `res` named exactly `name` (case and all, unlike PQfnumber, which
 * folds unquoted names to lower case), or -1.
 */
int tg_column_index(const PGresult *res, const char *name, size_t len);

#endif

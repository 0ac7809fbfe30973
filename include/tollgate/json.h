/*
 * Raw JSON: a strict RFC 8259 validator that keeps every value as the bytes the
 * caller sent. Parameter values (numbers, json and jsonb documents) are handed to
 * PostgreSQL as those bytes, never re-serialized through C doubles or a DOM, so a
 * 40-digit numeric, an integer past 64 bits inside a jsonb document, `-0`, `1E+2`
 * or `2.50` arrive exactly as written.
 *
 * tg_json_parse validates a whole document once (grammar, UTF-8, escapes, depth,
 * duplicate keys); the values it returns are windows on the caller's buffer, and
 * walking them (iteration, lookup, string decoding) never re-validates and allocates
 * only to compare a long escaped key. Nothing here depends on h2o or jansson.
 */
#ifndef tollgate__json_h
#define tollgate__json_h

#include <stddef.h>

/** the deepest nesting of arrays and objects tg_json_parse accepts (a bare scalar is depth 0) */
#define TG_JSON_MAX_DEPTH 512

/** the kind of a JSON value */
typedef enum en_tg_json_type_t {
    TG_JSON_NULL,
    TG_JSON_FALSE,
    TG_JSON_TRUE,
    TG_JSON_NUMBER,
    TG_JSON_STRING,
    TG_JSON_ARRAY,
    TG_JSON_OBJECT,
} tg_json_type_t;

/**
 * One value, as a window on the validated text: `text` points at its first byte and
 * `len` covers it whole (a string with its quotes, a container with its brackets and
 * whatever whitespace is inside them; no whitespace around it).
 */
typedef struct st_tg_json_t {
    tg_json_type_t type;
    const char *text;
    size_t len;
} tg_json_t;

/** where and why a document was refused */
typedef struct st_tg_json_error_t {
    const char *reason; /* a fixed English phrase, e.g. "invalid number"; never quotes the input */
    size_t offset;      /* byte offset of the problem (for a duplicate key: its second occurrence) */
    unsigned line;      /* 1-based line of `offset` */
    unsigned column;    /* 1-based column of `offset`, counted in bytes */
} tg_json_error_t;

/**
 * Validates that text[0, len) is exactly one JSON value with optional whitespace
 * around it: RFC 8259 grammar (no comments, no trailing commas, no NaN, numbers
 * `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` of any length), strings of valid
 * UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF) without raw control
 * characters, escapes `\" \\ \/ \b \f \n \r \t \uXXXX` with surrogate pairs paired
 * (`\u0000` is allowed), nesting at most TG_JSON_MAX_DEPTH, and no object with the
 * same key twice, at any depth (keys compared after unescaping: `"a"` and `"\u0061"`
 * are the same key), since two readers of such a document may disagree on its value.
 * On success fills `out` (pointing into `text`) and returns 0; else fills `err` and
 * returns -1. Scratch memory for the duplicate check is malloc'd and freed before
 * returning; its size is bounded by the number of keys.
 */
int tg_json_parse(const char *text, size_t len, tg_json_t *out, tg_json_error_t *err) __attribute__((warn_unused_result));

/** walks the members of an object or the elements of an array returned by tg_json_parse (or by a walk) */
typedef struct st_tg_json_iter_t {
    /* private */
    const char *p, *end; /* what is left of the container's inside */
    int object;          /* members (key and value) rather than elements */
} tg_json_iter_t;

/** starts a walk over `container` (an array or an object; any other value walks nothing) */
void tg_json_iter_init(tg_json_iter_t *it, const tg_json_t *container);

/**
 * The next element (arrays: `key` is left alone and may be NULL) or member (objects:
 * `key` gets the key as a TG_JSON_STRING, quotes included). Returns 1, or 0 at the end.
 */
int tg_json_iter_next(tg_json_iter_t *it, tg_json_t *key, tg_json_t *value);

/** number of elements or members of a container; 0 for scalars */
size_t tg_json_count(const tg_json_t *container);

/** Looks up member `key` (`key_len` bytes, compared with the unescaped key) of an object. Returns 1 if found. */
int tg_json_object_get(const tg_json_t *object, const char *key, size_t key_len, tg_json_t *out);

/** element `i` of an array. Returns 1 if there is one. */
int tg_json_array_get(const tg_json_t *array, size_t i, tg_json_t *out);

/**
 * Does the TG_JSON_STRING `v` hold escapes? If not, its content is exactly the bytes
 * v->text + 1 .. v->text + v->len - 1 and need not be decoded.
 */
int tg_json_string_has_escapes(const tg_json_t *v);

/**
 * Writes the content of the TG_JSON_STRING `v`, escapes resolved, as UTF-8 into
 * `dst`, which must have room for v->len bytes (decoding never grows a string), and
 * returns its length. The result is not NUL-terminated and may contain NUL bytes
 * (from `\u0000`).
 */
size_t tg_json_string_decode(const tg_json_t *v, char *dst);

/** Does the TG_JSON_STRING `v` unescape to exactly s[0, n)? */
int tg_json_string_equals(const tg_json_t *v, const char *s, size_t n);

/** Is the TG_JSON_NUMBER `v` written as an integer (no fraction, no exponent)? */
int tg_json_number_is_integer(const tg_json_t *v);

#endif

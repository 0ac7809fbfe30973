/*
 * The line of a field in a JSON document, found by the field's path (tollgate/fieldline.h).
 */
#include <stdlib.h>
#include <string.h>
#include "tollgate/fieldline.h"

static unsigned line_at(const char *text, const char *at)
{
    unsigned line = 1;
    for (const char *p = text; p < at; ++p)
        line += *p == '\n';
    return line;
}

/* does `rest` go on to another step (or end) after `n` bytes? */
static int step_ends(const char *rest, size_t n)
{
    char c = rest[n];
    return c == '\0' || c == '.' || c == '[' || (c == ' ' && rest[n + 1] == '(');
}

/*
 * The member of `obj` whose key starts `*rest` and ends a step there (the longest
 * such key); advances `*rest` past it. Returns 1, with the key in `key_out`, if found.
 */
static int take_member(const tg_json_t *obj, const char **rest, tg_json_t *key_out, tg_json_t *value_out)
{
    tg_json_iter_t it;
    tg_json_t key, value;
    size_t best = 0, restlen = strlen(*rest);
    int found = 0;
    char small[128];

    for (tg_json_iter_init(&it, obj); tg_json_iter_next(&it, &key, &value);) {
        /* the decoded key is never longer than its quoted text */
        char *buf = key.len <= sizeof(small) ? small : malloc(key.len);
        size_t n = tg_json_string_decode(&key, buf);
        if (n <= restlen && (n > best || !found) && memcmp(buf, *rest, n) == 0 && step_ends(*rest, n)) {
            best = n;
            found = 1;
            *key_out = key;
            *value_out = value;
        }
        if (buf != small)
            free(buf);
    }
    if (found)
        *rest += best;
    return found;
}

unsigned tg_field_line(const char *text, const tg_json_t *root, const char *field)
{
    tg_json_t at = *root;
    const char *where = root->text, *rest = field != NULL ? field : "";

    while (*rest != '\0') {
        if (rest[0] == ' ' && rest[1] == '(') {
            /* a label, "(name)": names are letters, digits, '_', '-' and '.', never ')' */
            const char *close = strchr(rest, ')');
            if (close == NULL)
                break;
            rest = close + 1;
            continue;
        }
        if (*rest == '[') {
            char *end;
            unsigned long i = strtoul(rest + 1, &end, 10);
            tg_json_t elem;
            if (end == rest + 1 || *end != ']' || at.type != TG_JSON_ARRAY || !tg_json_array_get(&at, i, &elem))
                break;
            at = elem;
            where = elem.text;
            rest = end + 1;
            continue;
        }
        if (*rest == '.' && rest != field)
            ++rest;
        tg_json_t key, value;
        if (at.type != TG_JSON_OBJECT || !take_member(&at, &rest, &key, &value))
            break;
        at = value;
        where = key.text;
    }
    return line_at(text, where);
}

/* Tests of gateway/fieldline.c: the line of a field named by its path, in nested objects and arrays. */
#include <criterion/criterion.h>
#include <string.h>
#include "tollgate/fieldline.h"

static unsigned line_of(const char *text, const char *field)
{
    tg_json_t root;
    tg_json_error_t err;
    cr_assert_eq(tg_json_parse(text, strlen(text), &root, &err), 0, "%s at line %u", err.reason, err.line);
    return tg_field_line(text, &root, field);
}

/* the same keys at several depths and places, so a search for the first occurrence would get them wrong */
static const char doc[] = "{\n"                                          /* 1 */
                          "  \"name\": \"top\",\n"                       /* 2 */
                          "  \"queries\": [\n"                           /* 3 */
                          "    {\"name\": \"a\",\n"                      /* 4 */
                          "     \"params\": [{\"name\": \"id\",\n"       /* 5 */
                          "                 \"max\": 1}],\n"             /* 6 */
                          "     \"timeout_ms\": 5},\n"                   /* 7 */
                          "    {\n"                                      /* 8 */
                          "      \"name\": \"b\",\n"                     /* 9 */
                          "      \"params\": [\n"                        /* 10 */
                          "        {\"name\": \"x\"},\n"                 /* 11 */
                          "        {\"name\": \"y\",\n"                  /* 12 */
                          "         \"max\": 2}\n"                       /* 13 */
                          "      ],\n"                                   /* 14 */
                          "      \"timeout_ms\": 6\n"                    /* 15 */
                          "    }\n"                                      /* 16 */
                          "  ],\n"                                       /* 17 */
                          "  \"a.b\": {\"c\": 1},\n"                     /* 18 */
                          "  \"a\": {\n"                                 /* 19 */
                          "    \"b\": 2}\n"                              /* 20 */
                          "}\n";

Test(fieldline, members_and_elements_by_path)
{
    cr_assert_eq(line_of(doc, "name"), 2);
    cr_assert_eq(line_of(doc, "queries"), 3);
    cr_assert_eq(line_of(doc, "queries[0]"), 4);
    cr_assert_eq(line_of(doc, "queries[0].name"), 4);
    cr_assert_eq(line_of(doc, "queries[0].timeout_ms"), 7);
    cr_assert_eq(line_of(doc, "queries[1]"), 8, "an element is where it starts");
    cr_assert_eq(line_of(doc, "queries[1].name"), 9);
    cr_assert_eq(line_of(doc, "queries[1].timeout_ms"), 15, "not queries[0]'s timeout_ms");
    cr_assert_eq(line_of(doc, "queries[0].params[0].max"), 6);
    cr_assert_eq(line_of(doc, "queries[1].params[1].max"), 13, "not the first max in the file");
    cr_assert_eq(line_of(doc, "queries[1].params[0]"), 11);
}

Test(fieldline, labels_are_skipped)
{
    cr_assert_eq(line_of(doc, "queries[1] (b).params[1] (y).max"), 13);
    cr_assert_eq(line_of(doc, "queries[1] (b)"), 8);
    cr_assert_eq(line_of(doc, "queries[0] (a).params[0] (id)"), 5);
}

Test(fieldline, a_missing_member_is_at_the_object_that_lacks_it)
{
    cr_assert_eq(line_of(doc, "queries[1].returns"), 8);
    cr_assert_eq(line_of(doc, "queries[1] (b).params[0] (x).type"), 11);
    cr_assert_eq(line_of(doc, "queries[7].name"), 3, "past the end: the array");
    cr_assert_eq(line_of(doc, "listen"), 1, "at the top: the document");
    cr_assert_eq(line_of(doc, "name.x"), 2, "a scalar has no members");
    cr_assert_eq(line_of(doc, "name[0]"), 2, "nor elements");
    cr_assert_eq(line_of(doc, ""), 1);
    cr_assert_eq(tg_field_line(doc, &(tg_json_t){TG_JSON_OBJECT, doc, sizeof(doc) - 2}, NULL), 1);
}

Test(fieldline, keys_holding_dots_are_matched_whole)
{
    cr_assert_eq(line_of(doc, "a.b"), 18, "the key \"a.b\" is longer than \"a\"");
    cr_assert_eq(line_of(doc, "a.b.c"), 18);
    cr_assert_eq(line_of(doc, "a"), 19);
    /* a key that is a prefix of another is not taken for it */
    cr_assert_eq(line_of("{\"ab\": 1,\n\"a\": 2}", "a"), 2);
    cr_assert_eq(line_of("{\"a\": 1,\n\"ab\": 2}", "ab"), 2);
}

Test(fieldline, escaped_keys_and_long_keys)
{
    cr_assert_eq(line_of("{\n\"\\u0061\": {\n\"b\": 1}}", "a.b"), 3);
    char big[600];
    memset(big, 'k', 300);
    big[300] = '\0';
    char text[800];
    snprintf(text, sizeof(text), "{\"x\": 1,\n\"%s\": 2}", big);
    cr_assert_eq(line_of(text, big), 2, "a key past the stack buffer");
}

/* Tests of gateway/buf.c: growable buffers, JSON string escaping, error lists. */
#include <criterion/criterion.h>
#include "tollgate/buf.h"
#include "gateway/internal.h"

Test(buf, append_grows_and_stays_terminated)
{
    tg_buf_t b = {0};
    for (int i = 0; i < 1000; ++i)
        tg_buf_appends(&b, "abc");
    cr_assert_eq(b.len, 3000);
    cr_assert_eq(b.base[3000], '\0');
    cr_assert_eq(strncmp(b.base + 2997, "abc", 3), 0);
    tg_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.base, "");
    tg_buf_dispose(&b);
}

Test(buf, printf_longer_than_capacity)
{
    tg_buf_t b = {0};
    tg_buf_appendc(&b, 'x');
    tg_buf_printf(&b, "%0600d|%s", 7, "end");
    cr_assert_eq(b.len, 1 + 600 + 4);
    cr_assert_str_eq(b.base + b.len - 4, "|end");
    tg_buf_dispose(&b);
}

Test(buf, json_string_escapes)
{
    tg_buf_t b = {0};
    const char s[] = "a\"b\\c\n\t\x01\x1f é";
    tg_buf_append_json_string(&b, s, sizeof(s) - 1);
    cr_assert_str_eq(b.base, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f é\"");
    tg_buf_dispose(&b);
}

Test(buf, json_string_is_always_utf8)
{
    tg_buf_t b = {0};
    /* a lone 0xFF, a truncated 2-byte sequence, an overlong '/', a surrogate, then valid 2-, 3- and 4-byte sequences */
    const char s[] = "a\xff b\xc3 c\xc0\xaf d\xed\xa0\x80 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xc3";
    tg_buf_append_json_string(&b, s, sizeof(s) - 1);
    cr_assert_str_eq(b.base, "\"a\\ufffd b\\ufffd c\\ufffd\\ufffd d\\ufffd\\ufffd\\ufffd \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\ufffd\"");
    cr_assert(tg_utf8_valid(b.base, b.len));
    tg_buf_dispose(&b);
}

Test(buf, errors_collect)
{
    tg_errors_t e = {0};
    tg_errors_add(&e, "%s:%d: bad", "f.json", 3);
    tg_errors_add(&e, "second");
    cr_assert_eq(e.n, 2);
    cr_assert_str_eq(e.msgs[0], "f.json:3: bad");
    tg_errors_dispose(&e);
    cr_assert_eq(e.n, 0);
}

/* gateway/util.c's number grammar, shared by the encoder (json) and parameter checks. */
#include "gateway/internal.h"

Test(util, number_grammar)
{
    static const struct {
        const char *s;
        int loose, json;
    } cases[] = {
        {"0", 1, 1},       {"-12.5e+3", 1, 1}, {"007", 1, 0}, {"-0.5", 1, 1}, {"1.", 0, 0},  {".5", 0, 0},
        {"1e", 0, 0},      {"1e-", 0, 0},      {"--1", 0, 0}, {"", 0, 0},     {"-", 0, 0},   {"1 ", 0, 0},
        {"12345678901234567890.0123", 1, 1},   {"0e5", 1, 1}, {"00.1", 1, 0}, {"NaN", 0, 0}, {"+1", 0, 0},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        cr_assert_eq(tg_is_number(cases[i].s, strlen(cases[i].s), 0), cases[i].loose, "\"%s\" (decimal)", cases[i].s);
        cr_assert_eq(tg_is_number(cases[i].s, strlen(cases[i].s), 1), cases[i].json, "\"%s\" (json)", cases[i].s);
    }
    cr_assert_eq(tg_hex_value('a'), 10);
    cr_assert_eq(tg_hex_value('F'), 15);
    cr_assert_eq(tg_hex_value('7'), 7);
    cr_assert_eq(tg_hex_value('g'), -1);
}

Test(buf, append_uint_writes_decimal_from_zero_to_the_largest)
{
    tg_buf_t b = {0};
    static const uint64_t values[] = {0, 7, 10, 99, 100, 4294967296ull, 18446744073709551615ull};
    static const char *const want[] = {"0", "7", "10", "99", "100", "4294967296", "18446744073709551615"};
    for (size_t i = 0; i != sizeof(values) / sizeof(values[0]); ++i) {
        tg_buf_reset(&b);
        tg_buf_appends(&b, "x=");
        tg_buf_append_uint(&b, values[i]);
        cr_assert_eq(b.len, 2 + strlen(want[i]));
        cr_assert(memcmp(b.base + 2, want[i], strlen(want[i])) == 0, "%s: %.*s", want[i], (int)b.len, b.base);
    }
    tg_buf_dispose(&b);
}

Test(buf, log_escape_keeps_one_line_and_no_control_bytes)
{
    char out[64];
    size_t n = tg_log_escape(out, sizeof(out), "a\nb\r\tc\x1b[31md\x7f" "e\x01");
    cr_assert_str_eq(out, "a b  c\\x1b[31md\\x7fe\\x01");
    cr_assert_eq(n, strlen(out));
    /* An escape that does not fit is left out whole, and the result stays terminated. */
    char small[6];
    n = tg_log_escape(small, sizeof(small), "abc\x1b");
    cr_assert_str_eq(small, "abc");
    cr_assert_eq(n, 3);
    /* UTF-8 and other bytes at or above 0x80 pass as they are. */
    tg_log_escape(out, sizeof(out), "caf\xc3\xa9");
    cr_assert_str_eq(out, "caf\xc3\xa9");
}

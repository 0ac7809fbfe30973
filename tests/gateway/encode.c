/* Tests of gateway/encode.c (placeholder until the module lands). */
#include <criterion/criterion.h>
Test(encode, placeholder) { cr_skip_test("module not written yet"); }

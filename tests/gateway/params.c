/* Tests of gateway/params.c (placeholder until the module lands). */
#include <criterion/criterion.h>
Test(params, placeholder) { cr_skip_test("module not written yet"); }

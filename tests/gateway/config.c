/* Tests of gateway/config.c (placeholder until the module lands). */
#include <criterion/criterion.h>
Test(config, placeholder) { cr_skip_test("module not written yet"); }

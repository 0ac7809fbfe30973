/* Tests of gateway/router.c (placeholder until the module lands). */
#include <criterion/criterion.h>
Test(router, placeholder) { cr_skip_test("module not written yet"); }

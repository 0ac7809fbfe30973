/* Tests of gateway/catalog.c (placeholder until the module lands). */
#include <criterion/criterion.h>
Test(catalog, placeholder) { cr_skip_test("module not written yet"); }

/* Tests of gateway/problem.c (placeholder until the module lands). */
#include <criterion/criterion.h>
Test(problem, placeholder) { cr_skip_test("module not written yet"); }

/*
 * test_cublas_lazy.c - cuBLAS and cublasLt are not loaded with the program
 * (they cost every command 0.1 s and 220 MB), and are loaded whole on the
 * first call: every function the CUDA device uses resolves.  No GPU needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublas_api.h>
#pragma GCC diagnostic pop

/* Whether a library whose file name starts with name is mapped. */
static int mapped(const char *name)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, maps)) {
        const char *file = strrchr(line, '/');
        found = file && strncmp(file + 1, name, strlen(name)) == 0;
    }
    fclose(maps);
    return found;
}

static void test_loaded_on_first_call(void **state)
{
    (void)state;
    assert_false(mapped("libcublas.so"));
    assert_false(mapped("libcublasLt.so"));
    /* Loading resolves every forwarded function or none: a status string
     * from the library itself ("success" in cuBLAS 13), not the reason it
     * failed, means all of them resolved. */
    const char *said = cublasGetStatusString(CUBLAS_STATUS_SUCCESS);
    assert_non_null(said);
    if (strstr(said, "LD_LIBRARY_PATH") || strstr(said, "lacks") || !*said)
        fail_msg("cuBLAS did not load: %s", said);
    assert_true(mapped("libcublas.so"));
    assert_true(mapped("libcublasLt.so"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaded_on_first_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

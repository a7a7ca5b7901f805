/* Minimal unit-test helpers: each test program is a main() calling test
 * functions; CHECK* print file:line and count failures; test_exit() returns
 * the exit status meson expects (0 pass, 1 fail, 77 skip). */
#ifndef VSCSI_TEST_H
#define VSCSI_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond) do { \
    test_checks++; \
    if (!(cond)) { \
        test_failures++; \
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    } \
} while (0)

#define CHECK_EQ(a, b) do { \
    long long _a = (long long)(a), _b = (long long)(b); \
    test_checks++; \
    if (_a != _b) { \
        test_failures++; \
        fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n", \
                __FILE__, __LINE__, #a, _a, #b, _b); \
    } \
} while (0)

#define CHECK_MEM(a, b, n) do { \
    test_checks++; \
    if (memcmp((a), (b), (n))) { \
        test_failures++; \
        fprintf(stderr, "%s:%d: CHECK_MEM failed: %s vs %s (%zu bytes)\n", \
                __FILE__, __LINE__, #a, #b, (size_t)(n)); \
    } \
} while (0)

#define RUN_TEST(fn) do { \
    int _before = test_failures; \
    fn(); \
    fprintf(stderr, "%s %s\n", test_failures == _before ? "ok  " : "FAIL", #fn); \
} while (0)

static inline int test_exit(void)
{
    fprintf(stderr, "%d checks, %d failed\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}

#endif

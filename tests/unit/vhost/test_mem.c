/* Guest memory regions: the truncation guard. A frontend that shrinks the
 * file behind a mapped region must not crash the daemon (SIGBUS): an
 * unsealed region is guarded (accesses past the new end see zero pages and
 * are counted), a region sealed with F_SEAL_SHRINK needs no guard. */
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util/log.h"
#include "vhost/mem.h"

#define SZ (64u << 10)

static int make_memfd(bool seal)
{
    int fd = memfd_create("guard", MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0));

    if (fd < 0 || ftruncate(fd, SZ) < 0)
        return -1;
    if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        return -1;
    return fd;
}

static struct vhost_mem_region *map(int fd, uint64_t off, uint64_t size)
{
    struct vhost_mem_desc d = { .gpa = 0x1000000, .size = size, .uva = 0x7f0000000000ull,
                                .mmap_offset = off };
    struct vhost_mem_region *r = NULL;
    const char *why = NULL;

    CHECK_EQ(mem_region_map(&d, fd, &r, &why), 0);
    return r;
}

static void test_truncated_region(void)
{
    int fd = make_memfd(false);
    struct vhost_mem_region *r;
    volatile uint8_t *p;

    CHECK(fd >= 0);
    r = map(fd, 4096, SZ - 4096);
    if (!r)
        return;
    CHECK(!r->sealed);
    CHECK(r->guard != 0);
    p = r->host;
    p[0] = 0x11;
    p[SZ - 4097] = 0x22;
    CHECK_EQ(p[SZ - 4097], 0x22);

    /* The frontend cuts the file to 16 KiB: pages from file offset 16 KiB on are gone. */
    CHECK_EQ(ftruncate(fd, 16384), 0);
    CHECK_EQ(p[0], 0x11);                       /* still backed by the file */
    CHECK_EQ(p[SZ - 4097], 0);                  /* faulted: a zero page now */
    p[SZ - 4097] = 0x33;                        /* writes land somewhere harmless */
    CHECK_EQ(p[SZ - 4097], 0x33);
    CHECK_EQ(p[16384 - 4096 + 100], 0);         /* first lost page, already replaced */
    CHECK_EQ(mem_region_faults(r), 1);
    CHECK_EQ(p[0], 0x11);
    mem_region_unref(r);                        /* logs the truncation */
}

static void test_sealed_region(void)
{
    int fd = make_memfd(true);
    struct vhost_mem_region *r;

    CHECK(fd >= 0);
    r = map(fd, 0, SZ);
    if (!r)
        return;
    CHECK(r->sealed);
    CHECK_EQ(r->guard, 0);
    CHECK(ftruncate(fd, 4096) < 0);             /* the seal refuses */
    CHECK_EQ(mem_region_faults(r), 0);
    mem_region_unref(r);
}

/* Many regions come and go: guard slots are reused. */
static void test_guard_slots_reused(void)
{
    for (int i = 0; i < 600; i++) {
        int fd = make_memfd(false);
        struct vhost_mem_region *r = map(fd, 0, SZ);

        if (!r)
            return;
        CHECK(r->guard != 0);
        mem_region_unref(r);
    }
}

/* A SIGBUS that is not about guest memory still kills the process. */
static void test_foreign_sigbus_not_swallowed(void)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        /* quiet: a sanitizer reports the fault at length */
        if (!freopen("/dev/null", "w", stderr))
            _exit(5);
        int fd = make_memfd(false), gfd = make_memfd(false);
        struct vhost_mem_region *r = map(gfd, 0, SZ);   /* installs the handler */
        volatile uint8_t *p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        (void)r;
        if (ftruncate(fd, 0) < 0)
            _exit(3);
        (void)p[100];                               /* not a region: SIGBUS */
        _exit(4);
    }
    CHECK(pid > 0);
    waitpid(pid, &status, 0);
    /* Killed by SIGBUS, or reported and ended by a sanitizer's own handler
     * (exit 1, or SIGABRT with abort_on_error): anything but carrying on. */
    CHECK(WIFSIGNALED(status) ||
          (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 4));
}

int main(void)
{
    log_set_level(getenv("VHOST_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERR);
    RUN_TEST(test_truncated_region);
    RUN_TEST(test_sealed_region);
    RUN_TEST(test_guard_slots_reused);
    RUN_TEST(test_foreign_sigbus_not_swallowed);
    return test_exit();
}

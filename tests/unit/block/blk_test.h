/* Shared helpers for the block unit tests: temp files, a loop driver, and a
 * blocking "submit and wait" wrapper. Header-only, one copy per test program. */
#ifndef VSCSI_TEST_BLK_TEST_H
#define VSCSI_TEST_BLK_TEST_H

#include "test.h"

#include "block/blk.h"
#include "util/loop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

/* Each program uses a subset of the helpers. */
#define T_STATIC static __attribute__((unused))

T_STATIC struct ev_loop *t_loop;
T_STATIC struct blk_ctx *t_ctx;

T_STATIC const char *const t_cache_names[] = { "writeback", "none", "writethrough",
                                               "directsync", "unsafe" };

T_STATIC bool t_is_tmpfs(const char *dir)
{
    struct statfs sf;

    return statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

/* A writable directory, preferring one on a disk file system (O_DIRECT). */
T_STATIC const char *t_disk_dir(void)
{
    static const char *cands[4];
    const char *env = getenv("TMPDIR");

    cands[0] = env && env[0] ? env : "/var/tmp";
    cands[1] = "/var/tmp";
    cands[2] = "/tmp";
    cands[3] = ".";
    for (int i = 0; i < 4; i++)
        if (access(cands[i], W_OK) == 0 && !t_is_tmpfs(cands[i]))
            return cands[i];
    return NULL;
}

/* Create a file of size bytes (sparse) in dir; path is written to out. */
T_STATIC int t_make_file(const char *dir, uint64_t size, char *out, size_t outlen)
{
    int fd;

    snprintf(out, outlen, "%s/vscsi-blk-test-XXXXXX", dir);
    fd = mkstemp(out);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = -errno;
        close(fd);
        unlink(out);
        return e;
    }
    close(fd);
    return 0;
}

T_STATIC void t_setup(void)
{
    char err[256];

    t_loop = ev_loop_new();
    t_ctx = blk_ctx_new(t_loop, err, sizeof(err));
    if (!t_ctx) {
        fprintf(stderr, "blk_ctx_new: %s\n", err);
        exit(1);
    }
}

T_STATIC void t_teardown(void)
{
    blk_ctx_free(t_ctx);
    ev_loop_free(t_loop);
    t_ctx = NULL;
    t_loop = NULL;
}

T_STATIC double t_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the loop until *counter reaches target (or 20 s pass). */
T_STATIC bool t_wait(const int *counter, int target)
{
    double end = t_now() + 20;

    while (*counter < target && t_now() < end)
        ev_loop_run_once(t_loop, 100);
    return *counter >= target;
}

struct t_done {
    int calls;
    int ret;
};

T_STATIC void t_done_cb(struct blk_req *req, int ret)
{
    struct t_done *r = req->opaque;

    r->calls++;
    r->ret = ret;
}

/* Submit and wait. Returns the completion's ret; a synchronous refusal is
 * returned as is (and counted as a failure unless expect_sync). */
T_STATIC int t_io(struct blk_drive *d, enum blk_op op, uint32_t flags, uint64_t off,
                const struct iovec *iov, unsigned cnt, uint64_t len)
{
    struct t_done r = { 0 };
    struct blk_req req = { .op = op, .flags = flags, .offset = off, .len = len,
                           .iov = iov, .iovcnt = cnt, .done_cb = t_done_cb, .opaque = &r };
    int ret = blk_submit(t_ctx, d, &req);

    if (ret < 0)
        return ret;
    CHECK_EQ(r.calls, 0);           /* never called from inside blk_submit */
    if (!t_wait(&r.calls, 1)) {
        fprintf(stderr, "timeout waiting for op %d\n", (int)op);
        test_failures++;
        return -ETIMEDOUT;
    }
    CHECK_EQ(r.calls, 1);
    return r.ret;
}

T_STATIC int t_rw(struct blk_drive *d, enum blk_op op, uint32_t flags, uint64_t off,
                void *buf, size_t len)
{
    struct iovec v = { .iov_base = buf, .iov_len = len };

    return t_io(d, op, flags, off, &v, 1, len);
}

T_STATIC struct blk_drive *t_open(const char *file, enum blk_cache_mode cache, enum blk_aio aio,
                                bool ro, bool unmap)
{
    struct blk_opts o = { .id = "t0", .driver = BLK_DRIVER_FILE, .filename = file,
                          .cache = cache, .readonly = ro, .discard_unmap = unmap, .aio = aio };
    struct blk_drive *d = NULL;
    char err[256];
    int ret = blk_open(&o, &d, err, sizeof(err));

    if (ret < 0) {
        fprintf(stderr, "blk_open(%s): %s\n", file, err);
        return NULL;
    }
    return d;
}

/* The fd number the process uses for path (to swap the file under a drive). */
T_STATIC int t_find_fd(const char *path)
{
    char real[PATH_MAX], link[PATH_MAX], name[300];
    DIR *dir;
    struct dirent *de;
    int found = -1;

    if (!realpath(path, real))
        return -1;
    dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    while ((de = readdir(dir))) {
        ssize_t n;

        snprintf(name, sizeof(name), "/proc/self/fd/%s", de->d_name);
        n = readlink(name, link, sizeof(link) - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (!strcmp(link, real)) {
            found = atoi(de->d_name);
            break;
        }
    }
    closedir(dir);
    return found;
}

T_STATIC void t_fill(void *buf, size_t len, unsigned seed)
{
    unsigned char *p = buf;

    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 9)) ^ seed);
}

/* Page-aligned buffer; a test cannot go on without it. */
T_STATIC __attribute__((returns_nonnull)) void *t_alloc(size_t len)
{
    void *p = NULL;

    if (posix_memalign(&p, 4096, len ? len : 1)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

#endif

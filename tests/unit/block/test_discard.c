/* Discard, write zeroes (all fallbacks), block status and resize. */
#include "blk_test.h"

#include <sys/uio.h>

#define MiB (1u << 20)
#define KiB 1024u

static const char *g_dir;

static void write_all(const char *path, uint64_t off, size_t len, unsigned seed)
{
    unsigned char *buf = malloc(len);
    int fd = open(path, O_WRONLY);

    t_fill(buf, len, seed);
    CHECK(fd >= 0);
    CHECK_EQ(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    CHECK_EQ(fsync(fd), 0);
    close(fd);
    free(buf);
}

static bool all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

static bool range_zero(struct blk_drive *d, uint64_t off, size_t len)
{
    unsigned char *buf = t_alloc(len);
    bool z;

    memset(buf, 0xaa, len);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, off, buf, len), 0);
    z = all_zero(buf, len);
    free(buf);
    return z;
}

static off_t seek_hole(const char *path, off_t off)
{
    int fd = open(path, O_RDONLY);
    off_t r = lseek(fd, off, SEEK_HOLE);

    close(fd);
    return r;
}

static long long blocks(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long long)st.st_blocks : -1;
}

static void test_discard_punch(void)
{
    for (int aio = 0; aio < 2; aio++) {
        char path[PATH_MAX];
        struct blk_drive *d;
        struct blk_stats st;
        bool mapped;
        uint64_t run;
        long long b;

        CHECK_EQ(t_make_file(g_dir, 4 * MiB, path, sizeof(path)), 0);
        write_all(path, 0, MiB, 1);
        d = t_open(path, BLK_CACHE_WRITEBACK, (enum blk_aio)aio, false, true);
        CHECK(d != NULL);
        if (!d)
            continue;
        CHECK(blk_can_discard(d));
        CHECK(blk_discard_zeroes(d));
        b = blocks(path);
        CHECK_EQ(t_io(d, BLK_OP_DISCARD, 0, 256 * KiB, NULL, 0, 256 * KiB), 0);
        CHECK(blocks(path) <= b - 256 * KiB / 512);
        CHECK_EQ(seek_hole(path, 256 * KiB), 256 * KiB);
        CHECK(range_zero(d, 256 * KiB, 256 * KiB));
        CHECK(!range_zero(d, 0, 4096));

        /* Block status: data, hole, data, then the never-written tail. */
        CHECK_EQ(blk_get_status(d, 0, 4 * MiB, &mapped, &run), 0);
        CHECK(mapped);
        CHECK_EQ(run, 256 * KiB);
        CHECK_EQ(blk_get_status(d, 256 * KiB, 4 * MiB - 256 * KiB, &mapped, &run), 0);
        CHECK(!mapped);
        CHECK_EQ(run, 256 * KiB);
        CHECK_EQ(blk_get_status(d, 300 * KiB, 100 * KiB, &mapped, &run), 0);
        CHECK(!mapped);
        CHECK_EQ(run, 100 * KiB);     /* capped at len */
        CHECK_EQ(blk_get_status(d, 512 * KiB, 3 * MiB, &mapped, &run), 0);
        CHECK(mapped);
        CHECK_EQ(run, 512 * KiB);
        CHECK_EQ(blk_get_status(d, MiB, 3 * MiB, &mapped, &run), 0);
        CHECK(!mapped);
        CHECK_EQ(run, 3 * MiB);
        CHECK_EQ(blk_get_status(d, 4 * MiB - 1, 1, &mapped, &run), 0);
        CHECK_EQ(run, 1);
        CHECK_EQ(blk_get_status(d, 0, 0, &mapped, &run), -EINVAL);
        CHECK_EQ(blk_get_status(d, 4 * MiB, 1, &mapped, &run), -EINVAL);
        CHECK_EQ(blk_get_status(d, 1, UINT64_MAX, &mapped, &run), -EINVAL);

        blk_get_stats(d, &st);
        CHECK_EQ(st.discards, 1);
        blk_close(d);
        unlink(path);
    }
}

static void test_discard_off(void)
{
    for (int aio = 0; aio < 2; aio++) {
        char path[PATH_MAX];
        struct blk_drive *d;
        long long b;

        CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
        write_all(path, 0, MiB, 2);
        d = t_open(path, BLK_CACHE_WRITEBACK, (enum blk_aio)aio, false, false);
        CHECK(d != NULL);
        if (!d)
            continue;
        CHECK(!blk_can_discard(d));
        b = blocks(path);
        CHECK_EQ(t_io(d, BLK_OP_DISCARD, 0, 0, NULL, 0, 512 * KiB), 0);
        CHECK_EQ(blocks(path), b);
        CHECK(!range_zero(d, 0, 4096));
        blk_close(d);
        unlink(path);
    }
}

/* WRITE_ZEROES on dir: with and without MAY_UNMAP, FUA, big, unaligned. */
static void write_zeroes(const char *dir, enum blk_aio aio, enum blk_cache_mode cache)
{
    char path[PATH_MAX];
    struct blk_drive *d;
    struct blk_stats st;
    unsigned char *ref = t_alloc(64 * KiB), *r = t_alloc(64 * KiB);

    CHECK_EQ(t_make_file(dir, 8 * MiB, path, sizeof(path)), 0);
    write_all(path, 0, 8 * MiB, 3);
    d = t_open(path, cache, aio, false, true);
    CHECK(d != NULL);
    if (!d)
        goto out;

    /* Deallocation allowed: a hole. */
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, BLK_F_MAY_UNMAP, MiB, NULL, 0, MiB), 0);
    CHECK(range_zero(d, MiB, MiB));
    CHECK_EQ(seek_hole(path, MiB), MiB);
    /* Not allowed: ZERO_RANGE, or zero buffers where unsupported (tmpfs). */
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, 0, 3 * MiB, NULL, 0, 3 * MiB + 4096), 0);
    CHECK(range_zero(d, 3 * MiB, 3 * MiB + 4096));
    CHECK(!range_zero(d, 3 * MiB - 4096, 4096));
    CHECK(!range_zero(d, 6 * MiB + 4096, 4096));
    /* FUA: the sync step. */
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, BLK_F_FUA, 7 * MiB, NULL, 0, 8192), 0);
    CHECK(range_zero(d, 7 * MiB, 8192));
    /* Unaligned range: only those bytes. */
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 7 * MiB + 65536, ref, 8192), 0);
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, 0, 7 * MiB + 65536 + 100, NULL, 0, 1000), 0);
    memset(ref + 100, 0, 1000);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 7 * MiB + 65536, r, 8192), 0);
    CHECK_MEM(r, ref, 8192);

    blk_get_stats(d, &st);
    CHECK_EQ(st.write_zeroes, 4);
    CHECK_EQ(st.errors, 0);
    blk_close(d);
out:
    unlink(path);
    free(ref);
    free(r);
}

static void test_write_zeroes(void)
{
    const char *dirs[2] = { g_dir, t_is_tmpfs("/dev/shm") ? "/dev/shm" : NULL };

    for (int i = 0; i < 2; i++) {
        if (!dirs[i])
            continue;
        for (int aio = 0; aio < 2; aio++)
            for (int c = 0; c < 3; c++) {
                static const enum blk_cache_mode modes[3] = {
                    BLK_CACHE_WRITEBACK, BLK_CACHE_NONE, BLK_CACHE_WRITETHROUGH };
                int before = test_failures;

                if (modes[c] == BLK_CACHE_NONE && i == 1)
                    continue;       /* O_DIRECT on tmpfs: kernel dependent */
                write_zeroes(dirs[i], (enum blk_aio)aio, modes[c]);
                if (test_failures != before)
                    fprintf(stderr, "  (dir=%s aio=%s cache=%s)\n", dirs[i],
                            aio ? "threads" : "io_uring", t_cache_names[modes[c]]);
            }
    }
}

static void test_resize(void)
{
    char path[PATH_MAX];
    struct blk_drive *d, *ro;
    struct stat st;
    unsigned char buf[4096];
    int fd;

    CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    ro = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, true, false);
    CHECK(d && ro);
    if (!d || !ro)
        goto out;
    CHECK_EQ(blk_resize(d, 8 * MiB), 0);
    CHECK_EQ(blk_size(d), 8 * MiB);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 8 * MiB);
    t_fill(buf, sizeof(buf), 4);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 8 * MiB - 4096, buf, 4096), 0);
    /* The other drive still has the old size until told to re-read it. */
    CHECK_EQ(blk_size(ro), MiB);
    CHECK_EQ(t_rw(ro, BLK_OP_READ, 0, 8 * MiB - 4096, buf, 4096), -EINVAL);
    CHECK_EQ(blk_resize(ro, 0), 0);
    CHECK_EQ(blk_size(ro), 8 * MiB);
    CHECK_EQ(t_rw(ro, BLK_OP_READ, 0, 8 * MiB - 4096, buf, 4096), 0);
    CHECK_EQ(blk_resize(ro, 2 * MiB), -EROFS);
    /* Shrink. */
    CHECK_EQ(blk_resize(d, 512 * KiB), 0);
    CHECK_EQ(blk_size(d), 512 * KiB);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 512 * KiB, buf, 4096), -EINVAL);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 512 * KiB - 4096, buf, 4096), 0);
    /* Grown behind our back, then re-read. */
    fd = open(path, O_WRONLY);
    CHECK_EQ(ftruncate(fd, 3 * MiB), 0);
    close(fd);
    CHECK_EQ(blk_resize(d, 0), 0);
    CHECK_EQ(blk_size(d), 3 * MiB);
    /* A drive that thinks it is larger than the file: reads past EOF fail. */
    fd = open(path, O_WRONLY);
    CHECK_EQ(ftruncate(fd, MiB), 0);
    close(fd);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 2 * MiB, buf, 4096), -EIO);
out:
    blk_close(d);
    blk_close(ro);
    unlink(path);
}

int main(void)
{
    g_dir = t_disk_dir();
    if (!g_dir)
        return 77;
    t_setup();
    RUN_TEST(test_discard_punch);
    RUN_TEST(test_discard_off);
    RUN_TEST(test_write_zeroes);
    RUN_TEST(test_resize);
    t_teardown();
    return test_exit();
}

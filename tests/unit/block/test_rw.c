/* Read/write round trips for both engines and every cache mode; FUA, flush,
 * write-cache state, data visible in the file, O_DIRECT on tmpfs. */
#include "blk_test.h"

#include <sys/uio.h>

#define FILE_SIZE (4u << 20)

static const char *g_dir;

static void roundtrip(enum blk_aio aio, enum blk_cache_mode cache)
{
    char path[PATH_MAX];
    struct blk_drive *d;
    struct blk_stats st;
    unsigned char *w = t_alloc(16384), *r = t_alloc(16384), *f = t_alloc(4096);
    int fd;

    CHECK_EQ(t_make_file(g_dir, FILE_SIZE, path, sizeof(path)), 0);
    d = t_open(path, cache, aio, false, false);
    CHECK(d != NULL);
    if (!d)
        goto out;
    CHECK_EQ(blk_size(d), FILE_SIZE);
    CHECK_EQ(blk_host_block_size(d), 512);
    CHECK_EQ(blk_write_cache(d), cache == BLK_CACHE_WRITEBACK || cache == BLK_CACHE_NONE ||
                                 cache == BLK_CACHE_UNSAFE);
    if (cache == BLK_CACHE_NONE || cache == BLK_CACHE_DIRECTSYNC)
        CHECK(blk_dio_align(d) >= 512);
    else
        CHECK_EQ(blk_dio_align(d), 1);

    /* Three segments written, read back as two. */
    t_fill(w, 16384, (unsigned)cache * 3 + (unsigned)aio);
    struct iovec wv[3] = { { w, 4096 }, { w + 4096, 8192 }, { w + 12288, 4096 } };
    CHECK_EQ(t_io(d, BLK_OP_WRITE, 0, 65536, wv, 3, 16384), 0);
    memset(r, 0xee, 16384);
    struct iovec rv[2] = { { r, 12288 }, { r + 12288, 4096 } };
    CHECK_EQ(t_io(d, BLK_OP_READ, 0, 65536, rv, 2, 16384), 0);
    CHECK_MEM(r, w, 16384);

    /* FUA write, then flush. */
    t_fill(f, 4096, 99);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, BLK_F_FUA, FILE_SIZE - 4096, f, 4096), 0);
    CHECK_EQ(t_io(d, BLK_OP_FLUSH, 0, 0, NULL, 0, 0), 0);

    /* Toggle WCE at run time; writes keep working either way. */
    blk_set_write_cache(d, !blk_write_cache(d));
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 0, w, 4096), 0);
    blk_set_write_cache(d, !blk_write_cache(d));
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 4096, w, 4096), 0);

    /* Zero-length read completes (asynchronously) with success. */
    CHECK_EQ(t_io(d, BLK_OP_READ, 0, 0, NULL, 0, 0), 0);

    /* The data is in the file itself, seen through an independent fd. */
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    {
        unsigned char *chk = t_alloc(16384);
        CHECK_EQ(pread(fd, chk, 16384, 65536), 16384);
        CHECK_MEM(chk, w, 16384);
        CHECK_EQ(pread(fd, chk, 4096, FILE_SIZE - 4096), 4096);
        CHECK_MEM(chk, f, 4096);
        free(chk);
    }
    close(fd);

    blk_get_stats(d, &st);
    CHECK_EQ(st.writes, 4);
    CHECK_EQ(st.reads, 2);
    CHECK_EQ(st.flushes, 1);
    CHECK_EQ(st.write_bytes, 16384 + 3 * 4096);
    CHECK_EQ(st.read_bytes, 16384);
    CHECK_EQ(st.errors, 0);
    CHECK_EQ(st.bounces, 0);    /* page-aligned buffers go straight to the file */
    blk_close(d);
out:
    unlink(path);
    free(w);
    free(r);
    free(f);
}

static void test_roundtrip_all(void)
{
    for (int aio = BLK_AIO_IO_URING; aio <= BLK_AIO_THREADS; aio++)
        for (int c = BLK_CACHE_WRITEBACK; c <= BLK_CACHE_UNSAFE; c++) {
            int before = test_failures;
            roundtrip((enum blk_aio)aio, (enum blk_cache_mode)c);
            if (test_failures != before)
                fprintf(stderr, "  (aio=%s cache=%s)\n", aio ? "threads" : "io_uring",
                        t_cache_names[c]);
        }
}

/* More segments than IOV_MAX: the engines must split the vector. */
static void test_many_segments(void)
{
    enum { SEGS = 2100, SEG = 512 };
    char path[PATH_MAX];
    unsigned char *w = t_alloc(SEGS * SEG), *r = t_alloc(SEGS * SEG);
    static struct iovec v[SEGS];

    CHECK_EQ(t_make_file(g_dir, FILE_SIZE, path, sizeof(path)), 0);
    for (int aio = 0; aio < 2; aio++) {
        struct blk_drive *d = t_open(path, BLK_CACHE_NONE, (enum blk_aio)aio, false, false);
        CHECK(d != NULL);
        if (!d)
            continue;
        t_fill(w, SEGS * SEG, 5 + aio);
        for (int i = 0; i < SEGS; i++)
            v[i] = (struct iovec){ w + i * SEG, SEG };
        CHECK_EQ(t_io(d, BLK_OP_WRITE, 0, 8192, v, SEGS, SEGS * SEG), 0);
        memset(r, 0, SEGS * SEG);
        for (int i = 0; i < SEGS; i++)
            v[i] = (struct iovec){ r + i * SEG, SEG };
        CHECK_EQ(t_io(d, BLK_OP_READ, 0, 8192, v, SEGS, SEGS * SEG), 0);
        CHECK_MEM(r, w, SEGS * SEG);
        blk_close(d);
    }
    unlink(path);
    free(w);
    free(r);
}

/* tmpfs: O_DIRECT either works (Linux 6.6+) or the open fails clearly. */
static void test_tmpfs_direct(void)
{
    char path[PATH_MAX], err[256];
    struct blk_opts o = { .id = "shm", .filename = path, .cache = BLK_CACHE_NONE };
    struct blk_drive *d = NULL;
    unsigned char *w = t_alloc(4096), *r = t_alloc(4096);
    int ret;

    if (!t_is_tmpfs("/dev/shm") || t_make_file("/dev/shm", 1 << 20, path, sizeof(path))) {
        fprintf(stderr, "  no /dev/shm tmpfs; skipped\n");
        goto out;
    }
    ret = blk_open(&o, &d, err, sizeof(err));
    if (ret < 0) {
        CHECK_EQ(ret, -EINVAL);
        CHECK(strstr(err, "drive shm: cannot open") != NULL);
        CHECK(strstr(err, "O_DIRECT") != NULL);
        fprintf(stderr, "  tmpfs refuses O_DIRECT: %s\n", err);
    } else {
        t_fill(w, 4096, 7);
        CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 4096, w, 4096), 0);
        CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 4096, r, 4096), 0);
        CHECK_MEM(r, w, 4096);
        blk_close(d);
    }
    unlink(path);
out:
    free(w);
    free(r);
}

/* A buffered file on tmpfs is served inline (memory copies in the loop
 * thread, no io-wq hop); the same request mix on a disk file goes through
 * io_uring. Data, offsets and flush/discard/write-zeroes behave the same. */
static void inline_mix(const char *dir, bool expect_inline)
{
    char path[PATH_MAX];
    unsigned char *w = t_alloc(65536), *r = t_alloc(65536), *z = t_alloc(4096);
    struct blk_drive *d = NULL;
    struct blk_stats st;

    memset(z, 0, 4096);
    if (t_make_file(dir, 1 << 20, path, sizeof(path)))
        goto out;
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, true);
    CHECK(d != NULL);
    if (!d)
        goto out_unlink;
    t_fill(w, 65536, 11);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 4096 * 3 + 512, w, 65536), 0);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, BLK_F_FUA, 0, w, 4096), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 4096 * 3 + 512, r, 65536), 0);
    CHECK_MEM(r, w, 65536);
    CHECK_EQ(t_rw(d, BLK_OP_FLUSH, 0, 0, NULL, 0), 0);
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, BLK_F_MAY_UNMAP, 16384, NULL, 0, 4096), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 16384, r, 4096), 0);
    CHECK_MEM(r, z, 4096);
    /* past the end: refused at submission, not executed inline */
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, (1 << 20) - 512, r, 4096), -EINVAL);
    blk_get_stats(d, &st);
    CHECK_EQ(st.errors, 0);
    CHECK_EQ(st.inline_ops, expect_inline ? 6 : 0);
    blk_close(d);
out_unlink:
    unlink(path);
out:
    free(w);
    free(r);
    free(z);
}

static void test_tmpfs_inline(void)
{
    inline_mix(g_dir, false);
    if (!t_is_tmpfs("/dev/shm")) {
        fprintf(stderr, "  no /dev/shm tmpfs; inline case skipped\n");
        return;
    }
    inline_mix("/dev/shm", true);
}

/* Readonly drives open the file O_RDONLY. */
static void test_readonly_flags(void)
{
    char path[PATH_MAX];
    struct blk_drive *d;
    int fd;

    CHECK_EQ(t_make_file(g_dir, 65536, path, sizeof(path)), 0);
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, true, false);
    CHECK(d != NULL);
    if (d) {
        fd = t_find_fd(path);
        CHECK(fd >= 0);
        if (fd >= 0)
            CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        CHECK(blk_is_readonly(d));
        blk_close(d);
    }
    unlink(path);
}

int main(void)
{
    g_dir = t_disk_dir();
    if (!g_dir) {
        fprintf(stderr, "no writable directory\n");
        return 77;
    }
    t_setup();
    RUN_TEST(test_roundtrip_all);
    RUN_TEST(test_many_segments);
    RUN_TEST(test_tmpfs_direct);
    RUN_TEST(test_tmpfs_inline);
    RUN_TEST(test_readonly_flags);
    t_teardown();
    return test_exit();
}

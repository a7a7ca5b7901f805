/* Block devices: size and block size ioctls, I/O on both engines with and
 * without O_DIRECT, BLKDISCARD, BLKZEROOUT, resize refused.
 * Needs a scratch device whose contents may be destroyed:
 *   VSCSI_TEST_BLOCKDEV=/dev/loop0 (e.g. losetup -f --show --sector-size 4096 img)
 * Skipped (77) without it. */
#include "blk_test.h"

#include <sys/ioctl.h>
#include <linux/fs.h>

static const char *g_dev;

static bool all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

static void run(enum blk_aio aio, enum blk_cache_mode cache)
{
    struct blk_drive *d = t_open(g_dev, cache, aio, false, true);
    unsigned char *w = t_alloc(1 << 20), *r = t_alloc(1 << 20);
    uint64_t size = 0;
    int bs = 0, fd;
    bool mapped;
    uint64_t run;

    CHECK(d != NULL);
    if (!d)
        goto out;
    fd = open(g_dev, O_RDONLY);
    CHECK_EQ(ioctl(fd, BLKGETSIZE64, &size), 0);
    CHECK_EQ(ioctl(fd, BLKSSZGET, &bs), 0);
    close(fd);
    CHECK_EQ(blk_size(d), size);
    CHECK_EQ(blk_host_block_size(d), bs);
    if (cache == BLK_CACHE_NONE)
        CHECK(blk_dio_align(d) >= (uint32_t)bs);
    CHECK(!blk_discard_zeroes(d));

    t_fill(w, 1 << 20, 1 + aio);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, BLK_F_FUA, 0, w, 1 << 20), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, r, 1 << 20), 0);
    CHECK_MEM(r, w, 1 << 20);
    /* Unaligned to a 4K-sector device (RMW under O_DIRECT). */
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 512, w + 100, 1024), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, r, 8192), 0);
    CHECK_MEM(r + 512, w + 100, 1024);
    CHECK_MEM(r, w, 512);
    CHECK_MEM(r + 1536, w + 1536, 8192 - 1536);
    CHECK_EQ(t_io(d, BLK_OP_FLUSH, 0, 0, NULL, 0, 0), 0);

    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, 0, 65536, NULL, 0, 65536), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 65536, r, 65536), 0);
    CHECK(all_zero(r, 65536));
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, 0, 1000, NULL, 0, 100), 0);  /* unaligned */
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, r, 4096), 0);
    CHECK(all_zero(r + 1000, 100));
    CHECK_MEM(r + 1100, w + 100 + (1100 - 512), 1536 - 1100);  /* from the 512+1024 write */
    CHECK_MEM(r + 1536, w + 1536, 4096 - 1536);
    CHECK_EQ(t_io(d, BLK_OP_DISCARD, 0, 1 << 20, NULL, 0, 1 << 20), 0);

    CHECK_EQ(blk_get_status(d, 0, size, &mapped, &run), 0);
    CHECK(mapped);
    CHECK_EQ(run, size);
    CHECK_EQ(blk_resize(d, size * 2), -EPERM);
    CHECK_EQ(blk_resize(d, 0), 0);
    CHECK_EQ(blk_size(d), size);
    blk_close(d);
out:
    free(w);
    free(r);
}

static void test_bdev(void)
{
    for (int aio = 0; aio < 2; aio++)
        for (int c = 0; c < 2; c++) {
            int before = test_failures;
            run((enum blk_aio)aio, c ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK);
            if (test_failures != before)
                fprintf(stderr, "  (aio=%s cache=%s)\n", aio ? "threads" : "io_uring",
                        c ? "none" : "writeback");
        }
}

int main(void)
{
    struct stat st;

    g_dev = getenv("VSCSI_TEST_BLOCKDEV");
    if (!g_dev || stat(g_dev, &st) || !S_ISBLK(st.st_mode)) {
        fprintf(stderr, "VSCSI_TEST_BLOCKDEV not set to a block device; skipped\n");
        return 77;
    }
    t_setup();
    RUN_TEST(test_bdev);
    t_teardown();
    return test_exit();
}

/* O_DIRECT with misaligned buffers, lengths and offsets: requests bounce
 * through an aligned buffer (counted), aligned ones do not; partial blocks
 * are read-modify-written without touching their neighbours or growing the
 * file. Needs a disk file system (not tmpfs) for a meaningful O_DIRECT. */
#include "blk_test.h"

#include <sys/uio.h>

#define FILE_SIZE (8u << 20)

static const char *g_dir;

/* Compare the file contents at off with want, through an independent fd. */
static void check_file(const char *path, uint64_t off, const void *want, size_t len)
{
    unsigned char *got = malloc(len);
    int fd = open(path, O_RDONLY);

    CHECK(fd >= 0);
    CHECK_EQ(pread(fd, got, len, (off_t)off), (ssize_t)len);
    CHECK_MEM(got, want, len);
    close(fd);
    free(got);
}

static void fill_file(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);

    CHECK(fd >= 0);
    CHECK_EQ(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static uint64_t bounces(struct blk_drive *d)
{
    struct blk_stats st;

    blk_get_stats(d, &st);
    return st.bounces;
}

static void run(enum blk_aio aio, enum blk_cache_mode cache)
{
    char path[PATH_MAX];
    struct blk_drive *d;
    size_t big = (3u << 20) + 4096;
    unsigned char *w = t_alloc(big + 8192), *r = t_alloc(big + 8192), *ref = t_alloc(65536);
    uint64_t b0;

    CHECK_EQ(t_make_file(g_dir, FILE_SIZE, path, sizeof(path)), 0);
    d = t_open(path, cache, aio, false, false);
    CHECK(d != NULL);
    if (!d)
        goto out;
    CHECK(blk_dio_align(d) >= 512);

    /* Aligned: no bounce. */
    t_fill(w, 8192, 1);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 4096, w, 8192), 0);
    CHECK_EQ(bounces(d), 0);

    /* Misaligned buffer address, aligned range. */
    b0 = bounces(d);
    t_fill(w + 1, 8192, 2);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 16384, w + 1, 8192), 0);
    check_file(path, 16384, w + 1, 8192);
    memset(r, 0, 8200);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 16384, r + 3, 8192), 0);
    CHECK_MEM(r + 3, w + 1, 8192);
    CHECK_EQ(bounces(d), b0 + 2);

    /* Odd segment lengths adding up to an aligned total. */
    t_fill(w, 8192, 3);
    struct iovec wv[3] = { { w, 1000 }, { w + 1000, 5000 }, { w + 6000, 2192 } };
    CHECK_EQ(t_io(d, BLK_OP_WRITE, BLK_F_FUA, 32768, wv, 3, 8192), 0);
    check_file(path, 32768, w, 8192);
    struct iovec rv[2] = { { r, 777 }, { r + 777, 8192 - 777 } };
    memset(r, 0, 8192);
    CHECK_EQ(t_io(d, BLK_OP_READ, 0, 32768, rv, 2, 8192), 0);
    CHECK_MEM(r, w, 8192);

    /* Unaligned offset and length: read-modify-write of partial blocks. */
    t_fill(ref, 65536, 4);
    fill_file(path, 65536, ref, 65536);
    t_fill(w, 700, 5);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 65536 + 1636, w, 700), 0);
    memcpy(ref + 1636, w, 700);
    check_file(path, 65536, ref, 65536);        /* neighbours intact */
    memset(r, 0, 700);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 65536 + 1636, r, 700), 0);
    CHECK_MEM(r, w, 700);
    /* ... spanning many blocks, unaligned at both ends, misaligned buffer */
    t_fill(w + 5, 20000, 6);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 65536 + 3333, w + 5, 20000), 0);
    memcpy(ref + 3333, w + 5, 20000);
    check_file(path, 65536, ref, 65536);

    /* Larger than one bounce chunk (1 MiB), misaligned buffer. */
    t_fill(w + 7, big, 7);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 1 << 20, w + 7, big), 0);
    check_file(path, 1 << 20, w + 7, big);
    memset(r, 0, big + 16);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 1 << 20, r + 9, big), 0);
    CHECK_MEM(r + 9, w + 7, big);
    /* ... and unaligned at both ends too */
    t_fill(w + 7, big - 1000, 8);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, (1 << 20) + 300, w + 7, big - 1000), 0);
    check_file(path, (1 << 20) + 300, w + 7, big - 1000);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, (1 << 20) + 300, r + 1, big - 1000), 0);
    CHECK_MEM(r + 1, w + 7, big - 1000);

    blk_close(d);
out:
    unlink(path);
    free(w);
    free(r);
    free(ref);
}

static void test_bounce_all(void)
{
    for (int aio = 0; aio < 2; aio++)
        for (int c = 0; c < 2; c++) {
            enum blk_cache_mode cache = c ? BLK_CACHE_DIRECTSYNC : BLK_CACHE_NONE;
            int before = test_failures;
            run((enum blk_aio)aio, cache);
            if (test_failures != before)
                fprintf(stderr, "  (aio=%s cache=%s)\n", aio ? "threads" : "io_uring",
                        t_cache_names[cache]);
        }
}

/* A partial block past the end of a file whose size is not block-aligned:
 * the write lands and the file does not grow. */
static void test_unaligned_eof(void)
{
    char path[PATH_MAX];
    struct stat st;
    unsigned char w[50], r[50];

    CHECK_EQ(t_make_file(g_dir, 8192 + 100, path, sizeof(path)), 0);
    for (int aio = 0; aio < 2; aio++) {
        struct blk_drive *d = t_open(path, BLK_CACHE_NONE, (enum blk_aio)aio, false, false);
        CHECK(d != NULL);
        if (!d)
            continue;
        t_fill(w, sizeof(w), 9 + aio);
        CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 8192 + 10, w, sizeof(w)), 0);
        CHECK_EQ(stat(path, &st), 0);
        CHECK_EQ(st.st_size, 8192 + 100);
        CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 8192 + 10, r, sizeof(r)), 0);
        CHECK_MEM(r, w, sizeof(w));
        check_file(path, 8192 + 10, w, sizeof(w));
        blk_close(d);
    }
    unlink(path);
}

int main(void)
{
    char path[PATH_MAX];
    int fd;

    g_dir = t_disk_dir();
    if (!g_dir || t_make_file(g_dir, 4096, path, sizeof(path)))
        return 77;
    fd = open(path, O_RDWR | O_DIRECT);
    unlink(path);
    if (fd < 0) {
        fprintf(stderr, "%s does not support O_DIRECT; skipped\n", g_dir);
        return 77;
    }
    close(fd);
    t_setup();
    RUN_TEST(test_bounce_all);
    RUN_TEST(test_unaligned_eof);
    t_teardown();
    return test_exit();
}

/* Quick IOPS numbers for the block layer: one thread, one context, a fixed
 * queue depth of 4 KiB random reads (or writes) kept full for a few seconds.
 *   bench-block [seconds]
 * Runs: null driver; a tmpfs file (page cache, no device) on io_uring and on
 * the thread pool; a disk file with cache=none on both engines. */
#include "blk_test.h"

#include <sys/uio.h>

#define QD_MAX 256
#define BS 4096

struct bench {
    struct blk_drive *d;
    struct blk_req reqs[QD_MAX];
    struct iovec iov[QD_MAX];
    unsigned char *buf;
    uint64_t nblocks;
    uint64_t rng;
    long done;
    bool write;
    bool stop;
};

static uint64_t next_rand(struct bench *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return b->rng;
}

static void issue(struct bench *b, struct blk_req *req);

static void bench_cb(struct blk_req *req, int ret)
{
    struct bench *b = req->opaque;

    if (ret < 0) {
        fprintf(stderr, "I/O error %d\n", ret);
        b->stop = true;
    }
    b->done++;
    if (!b->stop)
        issue(b, req);
}

static void issue(struct bench *b, struct blk_req *req)
{
    req->op = b->write ? BLK_OP_WRITE : BLK_OP_READ;
    req->offset = (next_rand(b) % b->nblocks) * BS;
    if (blk_submit(t_ctx, b->d, req) < 0)
        b->stop = true;
}

static void run(const char *name, struct blk_drive *d, bool write, unsigned qd, double secs)
{
    struct bench *b = calloc(1, sizeof(*b));
    double t0, t1;
    long started;

    b->d = d;
    b->write = write;
    b->nblocks = blk_size(d) / BS;
    b->rng = 0x9e3779b97f4a7c15ull;
    b->buf = t_alloc((size_t)qd * BS);
    memset(b->buf, 0x5a, (size_t)qd * BS);
    for (unsigned i = 0; i < qd; i++) {
        b->iov[i] = (struct iovec){ b->buf + (size_t)i * BS, BS };
        b->reqs[i] = (struct blk_req){ .len = BS, .iov = &b->iov[i], .iovcnt = 1,
                                       .done_cb = bench_cb, .opaque = b };
        issue(b, &b->reqs[i]);
    }
    t0 = t_now();
    started = 0;
    while ((t1 = t_now()) - t0 < secs && !b->stop) {
        ev_loop_run_once(t_loop, 100);
        started++;
    }
    b->stop = true;
    long done = b->done;
    while (blk_ctx_inflight(t_ctx))
        ev_loop_run_once(t_loop, 100);
    printf("%-34s %-5s qd=%-3u %9.0f IOPS  %7.1f MiB/s\n", name, write ? "write" : "read", qd,
           done / (t1 - t0), done / (t1 - t0) * BS / (1 << 20));
    fflush(stdout);
    free(b->buf);
    free(b);
    (void)started;
}

/* A 256 MiB file with real data (not unwritten extents, which O_DIRECT
 * reads answer without touching the device). */
static int make_data_file(const char *dir, char *path, size_t len)
{
    unsigned char *chunk = t_alloc(1 << 20);
    int fd, ret = -1;

    if (!chunk || t_make_file(dir, 0, path, len))
        goto out;
    fd = open(path, O_WRONLY);
    if (fd < 0)
        goto out;
    memset(chunk, 0x3c, 1 << 20);
    for (unsigned i = 0; i < 256; i++)
        if (pwrite(fd, chunk, 1 << 20, (off_t)i << 20) != 1 << 20)
            break;
    ret = fsync(fd);
    close(fd);
out:
    free(chunk);
    return ret;
}

static void file_runs(const char *dir, const char *label, enum blk_cache_mode cache, double secs)
{
    char path[PATH_MAX], name[96];

    if (!dir)
        return;
    for (int aio = 0; aio < 2; aio++) {
        struct blk_drive *d;

        if (make_data_file(dir, path, sizeof(path))) {
            unlink(path);
            return;
        }
        d = t_open(path, cache, (enum blk_aio)aio, false, false);
        if (d) {
            snprintf(name, sizeof(name), "%s %s", label, aio ? "threads" : "io_uring");
            run(name, d, false, 1, secs);
            run(name, d, false, 32, secs);
            run(name, d, true, 32, secs);
            blk_close(d);
        }
        unlink(path);
    }
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    struct blk_opts o = { .id = "null", .driver = BLK_DRIVER_NULL, .size = 1ull << 30 };
    struct blk_drive *d;
    char err[256];

    if (secs <= 0)
        secs = 2;
    t_setup();
    if (blk_open(&o, &d, err, sizeof(err)) == 0) {
        run("null", d, false, 1, secs);
        run("null", d, false, 128, secs);
        run("null", d, true, 128, secs);
        blk_close(d);
    }
    file_runs(t_is_tmpfs("/dev/shm") ? "/dev/shm" : NULL, "tmpfs cache=writeback",
              BLK_CACHE_WRITEBACK, secs);
    file_runs(t_disk_dir(), "disk cache=none", BLK_CACHE_NONE, secs);
    t_teardown();
    return 0;
}

/* Daemon shutdown helpers: vscsid_flush_all flushes every writable drive. */
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "test.h"
#include "util/loop.h"

static int stats_cb(void *opaque, const struct vscsid_drive_info *info)
{
    struct blk_stats st;

    blk_get_stats(info->blk, &st);
    *(uint64_t *)opaque += st.flushes;
    return 0;
}

static void test_flush_all(void)
{
    char img[] = "/tmp/vscsi-flush-XXXXXX", img2[] = "/tmp/vscsi-flush-XXXXXX", opt[256], err[512];
    int fd = mkstemp(img), fd2 = mkstemp(img2);
    struct ev_loop *loop = ev_loop_new();
    struct vscsid *d;
    struct drive_conf dc;
    uint64_t flushes = 0;

    CHECK(fd >= 0 && fd2 >= 0 && ftruncate(fd, 1 << 20) == 0 && ftruncate(fd2, 1 << 20) == 0);
    d = vscsid_new(loop, err, sizeof(err));
    CHECK(d != NULL);
    snprintf(opt, sizeof(opt), "file=%s,id=rw", img);
    CHECK_EQ(cli_parse_drive(opt, &dc, err, sizeof(err)), 0);
    CHECK_EQ(vscsid_add_drive(d, &dc, err, sizeof(err)), 0);
    snprintf(opt, sizeof(opt), "file=%s,id=ro,readonly=on", img2);
    CHECK_EQ(cli_parse_drive(opt, &dc, err, sizeof(err)), 0);
    CHECK_EQ(vscsid_add_drive(d, &dc, err, sizeof(err)), 0);
    CHECK_EQ(vscsid_flush_all(d, 5000), 0);
    vscsid_foreach_drive(d, stats_cb, &flushes);
    CHECK_EQ(flushes, 1);           /* the read-only drive needs none */
    vscsid_quiesce(d);              /* no controller yet: harmless */
    vscsid_free(d);
    ev_loop_free(loop);
    close(fd);
    close(fd2);
    unlink(img);
    unlink(img2);
}

struct read_state {
    int done, ret;
};

static void read_done_cb(struct blk_req *req, int ret)
{
    struct read_state *st = req->opaque;

    st->done = 1;
    st->ret = ret;
}

static int null_read(const char *opt, unsigned char *buf)
{
    struct ev_loop *loop = ev_loop_new();
    char err[512];
    struct vscsid *d = vscsid_new(loop, err, sizeof(err));
    struct drive_conf dc;
    struct read_state st = { 0 };
    struct iovec iov = { buf, 4096 };
    struct blk_req req = { .op = BLK_OP_READ, .offset = 0, .len = 4096, .iov = &iov, .iovcnt = 1,
                           .done_cb = read_done_cb, .opaque = &st };
    struct blk_drive *blk = NULL;

    CHECK_EQ(cli_parse_drive(opt, &dc, err, sizeof(err)), 0);
    CHECK_EQ(blk_open(&dc.blk, &blk, err, sizeof(err)), 0);
    CHECK_EQ(blk_submit(vscsid_blk_ctx(d), blk, &req), 0);
    for (int i = 0; i < 100 && !st.done; i++)
        ev_loop_run_once(loop, 10);
    CHECK(st.done);
    blk_close(blk);
    vscsid_free(d);
    ev_loop_free(loop);
    return st.ret;
}

static void test_null_read_zeroes(void)
{
    static unsigned char buf[4096];

    memset(buf, 0xaa, sizeof(buf));
    CHECK_EQ(null_read("driver=null,size=1M,id=z", buf), 0);
    CHECK(buf[0] == 0 && buf[4095] == 0);
    memset(buf, 0xaa, sizeof(buf));
    CHECK_EQ(null_read("driver=null,size=1M,id=z,read-zeroes=off", buf), 0);
    CHECK(buf[0] == 0xaa && buf[4095] == 0xaa);   /* untouched: no memset per read */
}

int main(void)
{
    RUN_TEST(test_null_read_zeroes);
    RUN_TEST(test_flush_all);
    return test_exit();
}

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

int main(void)
{
    RUN_TEST(test_flush_all);
    return test_exit();
}

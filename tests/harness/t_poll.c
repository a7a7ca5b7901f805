/* Adaptive polling (--poll-us): right after activity the daemon serves a
 * request the guest made available without kicking; with polling off the
 * same request waits for a kick. The window is set far longer than the gap
 * between the two requests, so the test does not depend on timing. */
#include <errno.h>
#include <stdio.h>

#include "t_common.h"

static uint8_t wbuf[8 * BS];

static const struct vuf_vscsid_disk disks[] = {
    { .size = 8 << 20, .target = 0, .lun = 0 },
};

/* TEST UNIT READY without a kick; returns vuf_scsi_complete's result. */
static int tur_no_kick(struct vuf *h, int timeout_ms, struct vuf_scsi_req **out)
{
    static const uint8_t tur[6] = { 0 };
    struct vuf_scsi_io io = { .cdb = tur, .cdb_len = 6, .flags = VUF_IO_NO_KICK };
    struct vuf_scsi_result res;
    struct vuf_scsi_req *req = vuf_scsi_submit(h, &io);

    *out = req;
    if (!req)
        return -1;
    int rc = vuf_scsi_complete(h, req, &res, timeout_ms);
    if (rc == 0)
        *out = NULL;
    return rc;
}

static void test_served_without_kick(void)
{
    struct vuf *h = session();
    struct vuf_scsi_req *req;

    CHECK(h != NULL);
    if (!h)
        return;
    /* activity opens the polling window (1 s) */
    CHECK_EQ(rw10(h, 0, 0, true, 0, 8, wbuf), 0);
    CHECK_EQ(tur_no_kick(h, 500, &req), 0);
    vuf_free(h);
}

static void test_waits_for_kick_without_polling(void)
{
    struct vuf *h = session();
    struct vuf_scsi_req *req;
    struct vuf_scsi_result res;

    CHECK(h != NULL);
    if (!h)
        return;
    CHECK_EQ(rw10(h, 0, 0, true, 0, 8, wbuf), 0);
    CHECK_EQ(tur_no_kick(h, 300, &req), -ETIMEDOUT);
    if (req) {
        CHECK(vuf_vq_kick(h, VUF_SCSI_REQQ) >= 0);
        CHECK_EQ(vuf_scsi_complete(h, req, &res, 2000), 0);
    }
    vuf_free(h);
}

int main(int argc, char **argv)
{
    static const char *const poll_on[] = { "--poll-us", "1000000", NULL };
    static const char *const poll_off[] = { "--poll-us", "0", NULL };

    start_daemon(argc, argv, disks, 1, poll_on);
    RUN(test_served_without_kick);
    stop_daemon();
    start_daemon(argc, argv, disks, 1, poll_off);
    RUN(test_waits_for_kick_without_polling);
    return finish();
}

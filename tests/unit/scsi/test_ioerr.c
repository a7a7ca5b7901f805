/* The I/O error hook (werror/rerror as the SCSI layer sees them): report,
 * ignore, hold; held commands retried in arrival order, completed once,
 * aborted by TMFs, reset by the transport, aborted when their LU goes. */
#include <errno.h>
#include <string.h>

#include "test.h"
#include "scsi_test.h"

#define LUN 1               /* the LU with the hook: target 0 LUN 1 */
#define SIZE (8 * MiB)

struct hook {
    enum scsi_io_error_action action;
    unsigned calls;
    struct scsi_io_error last;
};

static enum scsi_io_error_action hook_cb(void *opaque, const struct scsi_io_error *e)
{
    struct hook *h = opaque;

    h->calls++;
    h->last = *e;
    return h->action;
}

static struct blk_drive *setup(struct t_env **pe, struct hook *h)
{
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .id = "held", .logical_block_size = 512,
                                   .io_error_cb = hook_cb, .io_error_opaque = h };
    struct t_env *e = t_env_new(MiB, 512, false);
    struct blk_drive *d = t_add_lun(e, 0, LUN, &cfg, SIZE);

    t_clear_ua(e, 0, LUN);
    t_clear_ua(e, 0, 0);        /* 3F/0E from adding LUN 1 */
    memset(h, 0, sizeof(*h));
    *pe = e;
    return d;
}

static void fail_next(struct blk_drive *d, int err, unsigned count)
{
    d->fail_errno = err;
    d->fail_op = -1;
    d->fail_count = count;
}

static void run_all(struct t_env *e)
{
    while (fake_ctx_pending(e->ctx))
        fake_ctx_run(e->ctx, 0);
}

static void test_report_ignore(void)
{
    struct t_env *e;
    struct hook h;
    struct blk_drive *d = setup(&e, &h);
    static uint8_t b[4096];
    uint8_t c[16];
    struct tcmd t;

    /* report: the sense for the errno; the hook saw the request */
    h.action = SCSI_IOERR_REPORT;
    fail_next(d, ENOSPC, 1);
    cdb_rw10(c, 0x2a, 16, 8);
    t_run(e, &t, LUN, c, 10, SCSI_DIR_TO_DEV, b, 4096);
    check_sense(&t, 7, 0x27, 0x07);
    CHECK_EQ(h.calls, 1);
    CHECK(!h.last.is_read);
    CHECK_EQ(h.last.err, ENOSPC);
    CHECK_EQ(h.last.offset, 16 * 512);
    CHECK_EQ(h.last.len, 4096);
    fail_next(d, EIO, 1);
    cdb_rw10(c, 0x28, 3, 1);
    t_run(e, &t, LUN, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 0x0b, 0, 0x06);
    CHECK(h.last.is_read);
    /* SYNCHRONIZE CACHE is a write for the policy */
    fail_next(d, EIO, 1);
    uint8_t s10[10] = { 0x35 };
    t_run(e, &t, LUN, s10, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 0x0b, 0, 0x06);
    CHECK(!h.last.is_read);
    CHECK_EQ(h.calls, 3);

    /* ignore: GOOD with the whole transfer, data untouched */
    h.action = SCSI_IOERR_IGNORE;
    memset(b, 0xab, 4096);
    fail_next(d, EIO, 1);
    cdb_rw10(c, 0x2a, 32, 8);
    t_run(e, &t, LUN, c, 10, SCSI_DIR_TO_DEV, b, 4096);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 4096);
    CHECK_EQ(d->data[32 * 512], 0);
    fail_next(d, EIO, 1);
    cdb_rw10(c, 0x28, 32, 8);
    t_run(e, &t, LUN, c, 10, SCSI_DIR_FROM_DEV, b, 4096);
    check_good(&t);
    CHECK_EQ(h.calls, 5);

    /* the LU without a hook reports; the hook is per LU */
    fail_next(e->drive, EIO, 1);
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 0x0b, 0, 0x06);
    CHECK_EQ(h.calls, 5);
    t_env_free(e);
}

/* A WRITE SAME whose second chunk fails after a later WRITE failed: both are
 * held, nothing completes, and the retry goes in arrival order. */
static void test_hold_order(void)
{
    struct t_env *e;
    struct hook h;
    struct blk_drive *d = setup(&e, &h);
    static uint8_t pat[512], w[4096];
    struct tcmd ws, wr, rd;
    uint8_t c[16] = { 0x93 };

    h.action = SCSI_IOERR_HOLD;
    memset(pat, 0x5a, sizeof(pat));
    memset(w, 0xc3, sizeof(w));
    c[12] = 0x10;       /* 4096 blocks: two 1 MiB chunks */
    tcmd_init(&ws, 0, LUN, c, 16, SCSI_DIR_TO_DEV, pat, 512);
    tcmd_submit(e, &ws);
    cdb_rw10(c, 0x2a, 8192, 8);
    tcmd_init(&wr, 0, LUN, c, 10, SCSI_DIR_TO_DEV, w, 4096);
    tcmd_submit(e, &wr);
    CHECK_EQ(fake_ctx_run(e->ctx, 1), 1);   /* WRITE SAME chunk 1 */
    fail_next(d, ENOSPC, 2);
    run_all(e);                             /* WRITE fails, then chunk 2 */
    CHECK_EQ(h.calls, 2);
    CHECK_EQ(ws.done + wr.done, 0);
    CHECK_EQ(scsi_bus_held_count(e->bus), 2);
    CHECK_EQ(fake_ctx_pending(e->ctx), 0);

    /* other commands on the LU still run while these are held */
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &rd, LUN, c, 10, SCSI_DIR_FROM_DEV, w + 2048, 512);
    check_good(&rd);

    scsi_bus_retry_held(e->bus);
    CHECK_EQ(scsi_bus_held_count(e->bus), 0);
    CHECK_EQ(fake_ctx_pending(e->ctx), 2);
    CHECK(e->ctx->q[e->ctx->head % 4096] == &ws.c.breq);   /* arrival order */
    CHECK(e->ctx->q[(e->ctx->head + 1) % 4096] == &wr.c.breq);
    CHECK_EQ(d->fail_errno, 0);
    run_all(e);
    check_good(&ws);
    check_good(&wr);
    CHECK(ws.order < wr.order);
    CHECK_EQ(d->data[4095 * 512], 0x5a);
    CHECK_EQ(d->data[8192 * 512], 0xc3);
    CHECK_EQ(h.calls, 2);

    /* a retry that fails again is held again (and the hook asked again);
     * one refused by blk_submit goes through the hook too */
    cdb_rw10(c, 0x2a, 100, 8);
    tcmd_init(&wr, 0, LUN, c, 10, SCSI_DIR_TO_DEV, w, 4096);
    fail_next(d, EIO, 2);
    tcmd_run(e, &wr);
    CHECK_EQ(scsi_bus_held_count(e->bus), 1);
    scsi_bus_retry_held(e->bus);
    run_all(e);
    CHECK_EQ(wr.done, 0);
    CHECK_EQ(h.calls, 4);
    d->submit_errno = EAGAIN;
    scsi_bus_retry_held(e->bus);
    CHECK_EQ(h.calls, 5);
    CHECK_EQ(h.last.err, EAGAIN);
    CHECK_EQ(scsi_bus_held_count(e->bus), 1);
    d->submit_errno = 0;
    h.action = SCSI_IOERR_REPORT;
    d->submit_errno = EAGAIN;
    scsi_bus_retry_held(e->bus);            /* now reported: BUSY */
    CHECK_EQ(wr.done, 1);
    CHECK_EQ(wr.c.status, SCSI_STATUS_BUSY);
    d->submit_errno = 0;
    t_env_free(e);
}

static int g_tmf_done;

static void tmf_done(struct scsi_tmf *tmf)
{
    (void)tmf;
    g_tmf_done++;
}

/* Held commands are in flight: TMFs abort them at once, the transport resets
 * them selectively, and removing the LU aborts them. */
static bool match_tag(void *opaque, const struct scsi_cmd *cmd)
{
    return cmd->tag == *(uint64_t *)opaque;
}

static void removed_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_abort_reset_remove(void)
{
    struct t_env *e;
    struct hook h;
    struct blk_drive *d = setup(&e, &h);
    static uint8_t w[4][4096];
    struct tcmd t[4];
    struct scsi_tmf tmf;
    uint8_t c[10];

    h.action = SCSI_IOERR_HOLD;
    for (int i = 0; i < 4; i++) {
        cdb_rw10(c, 0x2a, (uint32_t)(64 * i), 8);
        tcmd_init(&t[i], 0, LUN, c, 10, SCSI_DIR_TO_DEV, w[i], 4096);
        t[i].c.tag = 10 + (uint64_t)i;
        tcmd_submit(e, &t[i]);
    }
    fail_next(d, EIO, 4);
    run_all(e);
    CHECK_EQ(scsi_bus_held_count(e->bus), 4);

    /* ABORT TASK of tag 11: that one completes (TASK ABORTED) before the TMF */
    memset(&tmf, 0, sizeof(tmf));
    tmf.type = SCSI_TMF_ABORT_TASK;
    tmf.lun = LUN;
    tmf.tag = 11;
    tmf.done_cb = tmf_done;
    g_tmf_done = 0;
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(g_tmf_done, 1);
    CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
    CHECK_EQ(t[1].done, 1);
    CHECK_EQ(t[1].c.host_status, SCSI_HOST_ABORTED);
    CHECK_EQ(scsi_bus_held_count(e->bus), 3);

    /* the transport resets tag 12 only */
    uint64_t tag = 12;
    scsi_bus_reset_held(e->bus, match_tag, &tag);
    CHECK_EQ(t[2].done, 1);
    CHECK_EQ(t[2].c.host_status, SCSI_HOST_RESET);
    CHECK_EQ(t[0].done + t[3].done, 0);
    CHECK_EQ(scsi_bus_held_count(e->bus), 2);

    /* removing the LU aborts the rest; then the LU goes */
    int removed = 0;
    CHECK_EQ(scsi_bus_remove_lun(e->bus, 0, LUN, removed_cb, &removed), 0);
    CHECK_EQ(removed, 1);
    CHECK_EQ(t[0].done, 1);
    CHECK_EQ(t[3].done, 1);
    CHECK_EQ(t[0].c.host_status, SCSI_HOST_ABORTED);
    CHECK_EQ(scsi_bus_held_count(e->bus), 0);
    CHECK(scsi_bus_find_lun(e->bus, 0, LUN) == NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(t[i].done, 1);
    t_env_free(e);
}

/* A LU reset (all commands) while one is held and one is still in the block
 * layer: both end aborted, the TMF completes after both, once. */
static void test_lu_reset(void)
{
    struct t_env *e;
    struct hook h;
    struct blk_drive *d = setup(&e, &h);
    static uint8_t w[2][4096];
    struct tcmd t[2];
    struct scsi_tmf tmf;
    uint8_t c[10];

    h.action = SCSI_IOERR_HOLD;
    for (int i = 0; i < 2; i++) {
        cdb_rw10(c, 0x2a, (uint32_t)(8 * i), 8);
        tcmd_init(&t[i], 0, LUN, c, 10, SCSI_DIR_TO_DEV, w[i], 4096);
        tcmd_submit(e, &t[i]);
    }
    fail_next(d, EIO, 1);
    fake_ctx_run(e->ctx, 1);
    CHECK_EQ(scsi_bus_held_count(e->bus), 1);
    memset(&tmf, 0, sizeof(tmf));
    tmf.type = SCSI_TMF_LOGICAL_UNIT_RESET;
    tmf.lun = LUN;
    tmf.done_cb = tmf_done;
    g_tmf_done = 0;
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(t[0].done, 1);
    CHECK_EQ(t[0].c.host_status, SCSI_HOST_RESET);
    CHECK_EQ(g_tmf_done, 0);                /* t[1] is still in the block layer */
    fail_next(d, EIO, 1);                   /* and fails: aborted, never held */
    run_all(e);
    CHECK_EQ(t[1].done, 1);
    CHECK_EQ(t[1].c.host_status, SCSI_HOST_RESET);
    CHECK_EQ(g_tmf_done, 1);
    CHECK_EQ(h.calls, 1);
    CHECK_EQ(scsi_bus_held_count(e->bus), 0);
    t_env_free(e);
}

static void medium_gone(void *opaque, struct blk_drive *d)
{
    (void)d;
    (*(int *)opaque)++;
}

/* A removable LU: taking the medium out aborts the commands held on it
 * (retrying them on a medium that is gone would stop again forever). */
static void test_medium_removed(void)
{
    struct hook h = { .action = SCSI_IOERR_HOLD };
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .id = "rm", .logical_block_size = 512,
                                   .removable = true, .io_error_cb = hook_cb, .io_error_opaque = &h };
    struct t_env *e = t_env_new(MiB, 512, false);
    struct blk_drive *d = t_add_lun(e, 0, 2, &cfg, MiB);
    static uint8_t b[4096];
    struct tcmd t;
    uint8_t c[10];
    int gone = 0;

    t_clear_ua(e, 0, 2);
    fail_next(d, EIO, 1);
    cdb_rw10(c, 0x28, 0, 8);
    tcmd_init(&t, 0, 2, c, 10, SCSI_DIR_FROM_DEV, b, 4096);
    tcmd_run(e, &t);
    CHECK_EQ(t.done, 0);
    CHECK_EQ(scsi_bus_held_count(e->bus), 1);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, 2);
    CHECK_EQ(scsi_lun_open_tray(lu, true), 0);
    CHECK_EQ(t.done, 0);                    /* an open tray alone changes nothing */
    CHECK_EQ(scsi_lun_remove_medium(lu, medium_gone, &gone), 0);
    CHECK_EQ(t.done, 1);
    CHECK_EQ(t.c.host_status, SCSI_HOST_ABORTED);
    CHECK_EQ(gone, 1);                      /* and the medium is free at once */
    CHECK_EQ(scsi_bus_held_count(e->bus), 0);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_report_ignore);
    RUN_TEST(test_hold_order);
    RUN_TEST(test_abort_reset_remove);
    RUN_TEST(test_lu_reset);
    RUN_TEST(test_medium_removed);
    return test_exit();
}

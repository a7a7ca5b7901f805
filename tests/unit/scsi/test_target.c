/* Bus, LUN map, unit attentions, task management and hot-plug. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

static const uint8_t tur[6] = { 0 };

static void test_ua_power_on(void)
{
    struct scsi_bus *bus = scsi_bus_new();
    struct blk_drive *d = fake_drive_new(MiB);
    struct blk_ctx *ctx = fake_ctx_new();
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    struct t_env e = { .bus = bus, .ctx = ctx };
    uint8_t b[96];
    struct tcmd t;

    CHECK_EQ(scsi_bus_add_lun(bus, 3, 0, &cfg, d, NULL, 0), 0);
    CHECK(scsi_bus_has_target(bus, 3));
    CHECK(!scsi_bus_has_target(bus, 0));
    CHECK(scsi_bus_find_lun(bus, 3, 0) != NULL);
    /* INQUIRY and REPORT LUNS pass a pending UA without consuming it */
    {
        uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };
        uint8_t rl[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0 };

        tcmd_init(&t, 3, 0, inq, 6, SCSI_DIR_FROM_DEV, b, 96);
        tcmd_run(&e, &t);
        check_good(&t);
        tcmd_init(&t, 3, 0, rl, 12, SCSI_DIR_FROM_DEV, b, 64);
        tcmd_run(&e, &t);
        check_good(&t);
    }
    /* the first other command gets 06/29/00, once */
    tcmd_init(&t, 3, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    tcmd_run(&e, &t);
    check_sense(&t, 6, 0x29, 0);
    CHECK_EQ(t.c.sense_len, 18);
    tcmd_init(&t, 3, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    tcmd_run(&e, &t);
    check_good(&t);
    /* UA wins over an unknown opcode */
    scsi_bus_capacity_changed(bus, 3, 0);
    {
        uint8_t bad[6] = { 0x02 };

        tcmd_init(&t, 3, 0, bad, 6, SCSI_DIR_NONE, NULL, 0);
        tcmd_run(&e, &t);
        check_sense(&t, 6, 0x2a, 0x09);
        tcmd_init(&t, 3, 0, bad, 6, SCSI_DIR_NONE, NULL, 0);
        tcmd_run(&e, &t);
        check_sense(&t, 5, 0x20, 0);
    }
    CHECK_EQ(scsi_bus_remove_lun(bus, 3, 0, NULL, NULL), 0);
    CHECK(!scsi_bus_has_target(bus, 3));
    CHECK_EQ(scsi_bus_remove_lun(bus, 3, 0, NULL, NULL), -ENOENT);
    scsi_bus_free(bus);
    fake_drive_free(d);
    fake_ctx_free(ctx);
}

static void test_ua_luns_changed(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    struct tcmd t;

    t_add_lun(e, 0, 1, &cfg, MiB);
    CHECK_EQ(e->nevents, 1);
    CHECK_EQ(e->events[0].ev, SCSI_EV_LUN_ADDED);
    CHECK_EQ(e->events[0].lun, 1);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x3f, 0x0e);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* the new LUN reports power on (which supersedes 3F/0E) */
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x29, 0);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* capacity change: UA + event; then removal: UA on the others + event */
    scsi_bus_capacity_changed(e->bus, 0, 1);
    CHECK_EQ(e->events[1].ev, SCSI_EV_CAPACITY_CHANGED);
    CHECK_EQ(scsi_bus_remove_lun(e->bus, 0, 1, NULL, NULL), 0);
    CHECK_EQ(e->events[2].ev, SCSI_EV_LUN_REMOVED);
    CHECK_EQ(e->nevents, 3);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x3f, 0x0e);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x25, 0);
    /* several UAs queue in order, without duplicates */
    scsi_bus_capacity_changed(e->bus, 0, 0);
    scsi_bus_capacity_changed(e->bus, 0, 0);
    t_add_lun(e, 0, 2, &cfg, MiB);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x2a, 0x09);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x3f, 0x0e);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* nothing queues behind a pending power on (LUN 2): the daemon adds its
     * LUNs at start, the initiator then sees 29/00 once and GOOD */
    t_add_lun(e, 0, 3, &cfg, MiB);
    scsi_bus_capacity_changed(e->bus, 0, 2);
    t_run(e, &t, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x29, 0x00);
    t_run(e, &t, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_env_free(e);
}

static void tmf_done(struct scsi_tmf *tmf)
{
    int *stamp = tmf->opaque;

    *stamp = (int)++t_order;
}

static void tmf_init(struct scsi_tmf *tmf, enum scsi_tmf_type type, uint8_t target, uint16_t lun,
                     uint64_t tag, int *stamp)
{
    memset(tmf, 0, sizeof(*tmf));
    tmf->type = type;
    tmf->target = target;
    tmf->lun = lun;
    tmf->tag = tag;
    tmf->done_cb = tmf_done;
    tmf->opaque = stamp;
    *stamp = 0;
}

static void read_cmd(struct tcmd *t, uint16_t lun, uint64_t tag, uint32_t lba, void *buf)
{
    uint8_t c[10] = { 0x28, 0, (uint8_t)(lba >> 24), (uint8_t)(lba >> 16), (uint8_t)(lba >> 8), (uint8_t)lba,
                      0, 0, 1, 0 };

    tcmd_init(t, 0, lun, c, 10, SCSI_DIR_FROM_DEV, buf, 512);
    t->c.tag = tag;
}

static void test_abort_task(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    static uint8_t b[4][512];
    struct tcmd t[4];
    struct scsi_tmf tmf;
    int stamp;

    for (int i = 0; i < 3; i++) {
        read_cmd(&t[i], 0, 100 + (uint64_t)i, (uint32_t)i, b[i]);
        tcmd_submit(e, &t[i]);
        CHECK_EQ(t[i].done, 0);
    }
    CHECK_EQ(fake_ctx_pending(e->ctx), 3);
    /* QUERY TASK sees it */
    tmf_init(&tmf, SCSI_TMF_QUERY_TASK, 0, 0, 101, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK(stamp > 0);
    CHECK_EQ(tmf.response, SCSI_TMF_SUCCEEDED);
    tmf_init(&tmf, SCSI_TMF_QUERY_TASK, 0, 0, 999, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
    tmf_init(&tmf, SCSI_TMF_QUERY_TASK_SET, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(tmf.response, SCSI_TMF_SUCCEEDED);

    /* ABORT TASK on tag 101: waits for its I/O, completes it ABORTED, then the TMF */
    tmf_init(&tmf, SCSI_TMF_ABORT_TASK, 0, 0, 101, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(stamp, 0);
    /* the aborted one is no longer a task for QUERY TASK */
    {
        struct scsi_tmf q;
        int qs;

        tmf_init(&q, SCSI_TMF_QUERY_TASK, 0, 0, 101, &qs);
        scsi_bus_tmf(e->bus, &q);
        CHECK_EQ(q.response, SCSI_TMF_COMPLETE);
    }
    fake_ctx_run(e->ctx, 1);                    /* tag 100 completes normally */
    check_good(&t[0]);
    CHECK_EQ(stamp, 0);
    fake_ctx_run(e->ctx, 1);                    /* tag 101: aborted */
    CHECK_EQ(t[1].done, 1);
    CHECK_EQ(t[1].c.host_status, SCSI_HOST_ABORTED);
    CHECK_EQ(t[1].c.status, SCSI_STATUS_TASK_ABORTED);
    CHECK_EQ(t[1].c.sense_len, 0);
    CHECK_EQ(t[1].c.xfer_len, 0);
    CHECK(stamp > 0);
    CHECK((unsigned)stamp > t[1].order);        /* command first, then the TMF */
    CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
    fake_ctx_run(e->ctx, 0);
    check_good(&t[2]);

    /* a tag that isn't there: COMPLETE at once */
    tmf_init(&tmf, SCSI_TMF_ABORT_TASK, 0, 0, 555, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK(stamp > 0);
    CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
    /* absent target / LUN; CLEAR ACA */
    tmf_init(&tmf, SCSI_TMF_ABORT_TASK, 7, 0, 1, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(tmf.response, SCSI_TMF_BAD_TARGET);
    tmf_init(&tmf, SCSI_TMF_LOGICAL_UNIT_RESET, 0, 9, 1, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(tmf.response, SCSI_TMF_INCORRECT_LUN);
    tmf_init(&tmf, SCSI_TMF_CLEAR_ACA, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(tmf.response, SCSI_TMF_REJECTED);
    CHECK(stamp > 0);
    t_env_free(e);
}

static void test_abort_task_set(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    static uint8_t b[4][512];
    struct tcmd t[4];
    struct scsi_tmf tmf;
    int stamp;

    for (uint32_t n = 1; n < 4; n++)
        t_clear_ua_nexus(e, 0, 0, n);
    for (int i = 0; i < 4; i++) {
        read_cmd(&t[i], 0, (uint64_t)i, 0, b[i]);
        t[i].c.nexus = i < 2 ? 1 : 2;
        tcmd_submit(e, &t[i]);
    }
    /* ABORT TASK SET: only the commands of that nexus */
    tmf_init(&tmf, SCSI_TMF_ABORT_TASK_SET, 0, 0, 0, &stamp);
    tmf.nexus = 1;
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(stamp, 0);
    fake_ctx_run(e->ctx, 0);
    CHECK(stamp > 0);
    CHECK_EQ(t[0].c.host_status, SCSI_HOST_ABORTED);
    CHECK_EQ(t[1].c.host_status, SCSI_HOST_ABORTED);
    check_good(&t[2]);
    check_good(&t[3]);
    CHECK((unsigned)stamp > t[1].order && (unsigned)stamp > t[0].order);

    /* CLEAR TASK SET: every nexus */
    for (int i = 0; i < 4; i++) {
        read_cmd(&t[i], 0, (uint64_t)i, 0, b[i]);
        t[i].c.nexus = (uint32_t)i;
        tcmd_submit(e, &t[i]);
    }
    tmf_init(&tmf, SCSI_TMF_CLEAR_TASK_SET, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    fake_ctx_run(e->ctx, 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(t[i].c.host_status, SCSI_HOST_ABORTED);
    CHECK(stamp > 0);
    /* no task left */
    tmf_init(&tmf, SCSI_TMF_QUERY_TASK_SET, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
    t_env_free(e);
}

static void test_lun_reset(void)
{
    struct t_env *e = t_env_new(8 * MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .removable = true };
    static uint8_t b[4][512];
    struct tcmd t[4], w;
    struct scsi_tmf tmf;
    int stamp;
    uint8_t pat[512];

    t_add_lun(e, 0, 1, &cfg, MiB);
    t_clear_ua(e, 0, 0);
    t_clear_ua(e, 0, 1);
    /* an idle LU reset: UA 29/03 on that LUN only */
    tmf_init(&tmf, SCSI_TMF_LOGICAL_UNIT_RESET, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK(stamp > 0);
    CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
    t_run(e, &t[0], 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t[0], 6, 0x29, 0x03);
    t_run(e, &t[0], 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t[0]);
    t_run(e, &t[0], 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t[0]);

    /* a multi-step WRITE SAME (8 chunks) and reads in flight */
    memset(pat, 0x77, sizeof(pat));
    {
        uint8_t c[10] = { 0x41, 0, 0, 0, 0, 0, 0, 0x40, 0x00, 0 };    /* 16384 blocks: 8 MiB */

        tcmd_init(&w, 0, 0, c, 10, SCSI_DIR_TO_DEV, pat, 512);
        tcmd_submit(e, &w);
    }
    for (int i = 0; i < 2; i++) {
        read_cmd(&t[i], 0, (uint64_t)i, 0, b[i]);
        tcmd_submit(e, &t[i]);
    }
    fake_ctx_run(e->ctx, 1);                    /* first WS chunk done, second queued */
    CHECK_EQ(w.done, 0);
    tmf_init(&tmf, SCSI_TMF_LOGICAL_UNIT_RESET, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(stamp, 0);
    fake_ctx_run(e->ctx, 0);
    CHECK_EQ(w.done, 1);
    CHECK_EQ(w.c.host_status, SCSI_HOST_RESET);
    CHECK_EQ(w.c.status, SCSI_STATUS_TASK_ABORTED);
    CHECK_EQ(e->drive->nops[BLK_OP_WRITE], 2);  /* the chain stopped */
    CHECK_EQ(t[0].c.host_status, SCSI_HOST_RESET);
    CHECK_EQ(t[1].c.host_status, SCSI_HOST_RESET);
    CHECK(stamp > 0);
    CHECK((unsigned)stamp > w.order);
    t_run(e, &t[0], 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t[0], 6, 0x29, 0x03);

    /* LU reset clears PREVENT ALLOW */
    {
        uint8_t pa[6] = { 0x1e, 0, 0, 0, 1, 0 }, ssu[6] = { 0x1b, 0, 0, 0, 0x02, 0 };

        t_run(e, &t[0], 1, pa, 6, SCSI_DIR_NONE, NULL, 0);
        check_good(&t[0]);
        t_run(e, &t[0], 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t[0], 5, 0x53, 0x02);
        tmf_init(&tmf, SCSI_TMF_LOGICAL_UNIT_RESET, 0, 1, 0, &stamp);
        scsi_bus_tmf(e->bus, &tmf);
        t_clear_ua(e, 0, 1);
        t_run(e, &t[0], 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
        check_good(&t[0]);
    }
    t_env_free(e);
}

static void test_it_nexus_reset(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    static uint8_t b[4][512];
    struct tcmd t[4];
    struct scsi_tmf tmf;
    int stamp;

    t_add_lun(e, 0, 5, &cfg, MiB);
    t_clear_ua(e, 0, 0);
    t_clear_ua(e, 0, 5);
    t_clear_ua_nexus(e, 0, 5, 9);
    read_cmd(&t[0], 0, 1, 0, b[0]);
    read_cmd(&t[1], 5, 2, 0, b[1]);
    read_cmd(&t[2], 5, 3, 0, b[2]);
    t[2].c.nexus = 9;
    for (int i = 0; i < 3; i++)
        tcmd_submit(e, &t[i]);
    tmf_init(&tmf, SCSI_TMF_I_T_NEXUS_RESET, 0, 0, 0, &stamp);
    scsi_bus_tmf(e->bus, &tmf);
    CHECK_EQ(stamp, 0);
    fake_ctx_run(e->ctx, 0);
    CHECK(stamp > 0);
    CHECK_EQ(t[0].c.host_status, SCSI_HOST_RESET);
    CHECK_EQ(t[1].c.host_status, SCSI_HOST_RESET);
    check_good(&t[2]);
    CHECK((unsigned)stamp > t[1].order);
    t_run(e, &t[0], 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t[0], 6, 0x29, 0x07);
    t_run(e, &t[0], 5, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t[0], 6, 0x29, 0x07);
    /* SAM-5 6.3.4: only the nexus that was reset is told */
    tcmd_init(&t[0], 0, 5, tur, 6, SCSI_DIR_NONE, NULL, 0);
    t[0].c.nexus = 9;
    tcmd_run(e, &t[0]);
    check_good(&t[0]);
    t_env_free(e);
}

static void removed_cb(void *opaque)
{
    int *stamp = opaque;

    *stamp = (int)++t_order;
}

static void test_remove_busy(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    struct blk_drive *d = t_add_lun(e, 0, 1, &cfg, MiB);
    static uint8_t b[2][512];
    struct tcmd t[2], n;
    int stamp = 0;

    (void)d;
    t_clear_ua(e, 0, 1);
    read_cmd(&t[0], 1, 1, 0, b[0]);
    read_cmd(&t[1], 1, 2, 1, b[1]);
    tcmd_submit(e, &t[0]);
    tcmd_submit(e, &t[1]);
    CHECK_EQ(scsi_bus_remove_lun(e->bus, 0, 1, removed_cb, &stamp), 0);
    CHECK_EQ(stamp, 0);
    CHECK(scsi_bus_find_lun(e->bus, 0, 1) == NULL);
    /* new commands see an absent LUN */
    read_cmd(&n, 1, 3, 0, b[0]);
    tcmd_run(e, &n);
    check_sense(&n, 5, 0x25, 0);
    /* TMFs can't reach it any more */
    {
        struct scsi_tmf tmf;
        int s;

        tmf_init(&tmf, SCSI_TMF_ABORT_TASK, 0, 1, 1, &s);
        scsi_bus_tmf(e->bus, &tmf);
        CHECK_EQ(tmf.response, SCSI_TMF_INCORRECT_LUN);
    }
    fake_ctx_run(e->ctx, 1);
    check_good(&t[0]);
    CHECK_EQ(stamp, 0);
    fake_ctx_run(e->ctx, 1);
    check_good(&t[1]);
    CHECK(stamp > 0);
    CHECK((unsigned)stamp > t[1].order);
    /* the address can be reused */
    CHECK(t_add_lun(e, 0, 1, &cfg, MiB) != NULL);
    /* idle removal completes synchronously */
    stamp = 0;
    CHECK_EQ(scsi_bus_remove_lun(e->bus, 0, 1, removed_cb, &stamp), 0);
    CHECK(stamp > 0);
    t_env_free(e);
}

/* Removal while commands wait at the write gate: they still run, the LUN
 * goes when the last one is done. */
static void test_remove_gated(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    static uint8_t w[512], d[1024];
    struct tcmd t1, caw, t2;
    uint8_t wr[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    uint8_t cw[16] = { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 };
    int stamp = 0;

    t_add_lun(e, 0, 1, &cfg, MiB);
    t_clear_ua(e, 0, 1);
    tcmd_init(&t1, 0, 1, wr, 10, SCSI_DIR_TO_DEV, w, 512);
    tcmd_submit(e, &t1);
    tcmd_init(&caw, 0, 1, cw, 16, SCSI_DIR_TO_DEV, d, 1024);
    tcmd_submit(e, &caw);
    tcmd_init(&t2, 0, 1, wr, 10, SCSI_DIR_TO_DEV, w, 512);
    tcmd_submit(e, &t2);
    CHECK_EQ(scsi_bus_remove_lun(e->bus, 0, 1, removed_cb, &stamp), 0);
    fake_ctx_run(e->ctx, 0);
    check_good(&t1);
    check_good(&caw);                           /* zeroes compared equal */
    check_good(&t2);
    CHECK(stamp > 0 && (unsigned)stamp > t2.order);
    t_env_free(e);
}

/* A done_cb that removes the LUN and submits a new command: re-entrancy. */
struct reenter {
    struct tcmd t;
    struct t_env *e;
    struct tcmd next;
    int removed;
};

static void reenter_done(struct scsi_cmd *c)
{
    struct reenter *r = (struct reenter *)c;

    r->t.done++;
    CHECK_EQ(scsi_bus_remove_lun(r->e->bus, 0, 1, removed_cb, &r->removed), 0);
    CHECK_EQ(r->removed, 0);                    /* we are still running */
    tcmd_init(&r->next, 0, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    tcmd_submit(r->e, &r->next);
}

static void test_reentrant_done(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    static struct reenter r;
    static uint8_t b[512];

    t_add_lun(e, 0, 1, &cfg, MiB);
    t_clear_ua(e, 0, 1);
    r.e = e;
    read_cmd(&r.t, 1, 1, 0, b);
    r.t.c.done_cb = reenter_done;
    tcmd_submit(e, &r.t);
    fake_ctx_run(e->ctx, 0);
    CHECK_EQ(r.t.done, 1);
    CHECK(r.removed > 0);
    check_sense(&r.next, 5, 0x25, 0);
    t_env_free(e);
}

static int count_cb(void *opaque, const struct scsi_lun_info *info)
{
    unsigned *c = opaque;
    static unsigned last;

    if (c[0] && info->target * 65536u + info->lun <= last)
        c[1]++;                                 /* out of order */
    last = info->target * 65536u + info->lun;
    c[0]++;
    return 0;
}

static void test_many_luns(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    unsigned c[2] = { 0, 0 };
    static uint8_t b[512];
    struct tcmd t;

    /* 2000 LUNs spread over targets and the whole LUN space */
    for (unsigned i = 0; i < 2000; i++) {
        uint8_t tg = (uint8_t)(1 + i % 7);
        uint16_t l = (uint16_t)((i * 8191u) % 16384);

        CHECK_EQ(scsi_bus_add_lun(e->bus, tg, l, &cfg, e->drive, NULL, 0), 0);
    }
    CHECK_EQ(scsi_bus_lun_count(e->bus), 2001);
    scsi_bus_foreach_lun(e->bus, count_cb, c);
    CHECK_EQ(c[0], 2001);
    CHECK_EQ(c[1], 0);
    /* I/O on one of them (after its UAs) */
    t_clear_ua(e, 3, (uint16_t)((2 * 8191u) % 16384));
    read_cmd(&t, (uint16_t)((2 * 8191u) % 16384), 1, 0, b);
    t.c.target = 3;
    tcmd_run(e, &t);
    check_good(&t);
    for (unsigned i = 0; i < 2000; i++) {
        uint8_t tg = (uint8_t)(1 + i % 7);
        uint16_t l = (uint16_t)((i * 8191u) % 16384);

        CHECK_EQ(scsi_bus_remove_lun(e->bus, tg, l, NULL, NULL), 0);
    }
    CHECK_EQ(scsi_bus_lun_count(e->bus), 1);
    for (uint8_t tg = 1; tg < 8; tg++)
        CHECK(!scsi_bus_has_target(e->bus, tg));
    t_env_free(e);
}

static void test_wlun(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t b[96];
    struct tcmd t;
    uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };

    tcmd_init(&t, 0, 0, inq, 6, SCSI_DIR_FROM_DEV, b, 96);
    t.c.lun_wlun_report = true;
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_EQ(b[0], 0x1e);
    tcmd_init(&t, 0, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    t.c.lun_wlun_report = true;
    tcmd_run(e, &t);
    check_good(&t);
    {
        uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
        static uint8_t buf[512];

        tcmd_init(&t, 0, 0, rd, 10, SCSI_DIR_FROM_DEV, buf, 512);
        t.c.lun_wlun_report = true;
        tcmd_run(e, &t);
        check_sense(&t, 5, 0x20, 0);
    }
    t_env_free(e);
}

/* Random CDBs, buffers and directions on a disk, an absent LUN and the
 * well-known LUN: each completes exactly once, a CHECK CONDITION always has
 * sense, data never goes past the buffer, and nothing crashes. */
static void test_random_cdbs(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, true);
    static uint8_t buf[8192 + 64];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    static const uint8_t ops[] = { 0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2a,
                                   0x2e, 0x2f, 0x34, 0x35, 0x41, 0x42, 0x55, 0x5a, 0x88, 0x8a, 0x8e, 0x8f,
                                   0x89, 0x8b, 0x90, 0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa, 0xae, 0xaf, 0x37, 0xb7, 0x1d };

    for (unsigned i = 0; i < 30000; i++) {
        struct tcmd t;
        uint8_t cdb[32];
        size_t len;
        enum scsi_dir dir;
        uint16_t lun;

        for (unsigned j = 0; j < sizeof(cdb); j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cdb[j] = (uint8_t)x;
        }
        cdb[0] = (x & 3) ? ops[(x >> 8) % sizeof(ops)] : (uint8_t)(x >> 16);
        if (cdb[0] == 0x9e)
            cdb[1] = (x >> 24) & 1 ? 0x10 : 0x12;
        if (cdb[0] == 0xa3)
            cdb[1] = (x >> 24) & 1 ? 0x0c : 0x0d;
        /* mostly small lengths and LBAs so some commands pass the checks */
        if ((x >> 30) & 1) {
            cdb[2] = cdb[3] = cdb[4] = 0;
            cdb[6] = cdb[7] = 0;
            cdb[10] = cdb[11] = cdb[12] = 0;
        }
        if ((x >> 31) & 1)
            cdb[1] &= 0x1f;
        len = (size_t)((x >> 33) % 8193);
        dir = (enum scsi_dir)((x >> 47) % 3);
        lun = (x >> 50) & 1 ? 0 : 3;
        memset(buf, 0xa5, sizeof(buf));
        tcmd_init(&t, 0, lun, cdb, 32, dir, dir == SCSI_DIR_NONE ? NULL : buf, dir == SCSI_DIR_NONE ? 0 : len);
        t.c.lun_wlun_report = ((x >> 52) & 15) == 0;
        tcmd_submit(e, &t);
        fake_ctx_run(e->ctx, 0);
        CHECK_EQ(t.done, 1);
        if (t.c.status == SCSI_STATUS_CHECK_CONDITION)
            CHECK(t.c.sense_len >= 8);
        CHECK(t.c.xfer_len <= t.c.buf_len);
        CHECK_EQ(buf[8192 + 63], 0xa5);
        if (dir != SCSI_DIR_NONE)
            CHECK_EQ(buf[len], 0xa5);
        if (t.done != 1 || (dir != SCSI_DIR_NONE && buf[len] != 0xa5)) {
            fprintf(stderr, "cdb %02x %02x %02x dir %d len %zu\n", cdb[0], cdb[1], cdb[2], dir, len);
            break;
        }
    }
    CHECK_EQ(fake_ctx_pending(e->ctx), 0);
    t_env_free(e);
}

/* ---- concurrent stress: commands in flight, partial drains, TMFs ---- */

#define ST_CMDS 64

static struct tcmd st_cmd[ST_CMDS];
static bool st_busy[ST_CMDS];
static uint8_t st_buf[ST_CMDS][2048];
static unsigned st_tmf_bad, st_tmf_done;

static void st_tmf_cb(struct scsi_tmf *tmf)
{
    int *flag = tmf->opaque;

    (*flag)++;
    st_tmf_done++;
    if (tmf->type == SCSI_TMF_QUERY_TASK_SET || tmf->type == SCSI_TMF_QUERY_TASK)
        return;     /* aborts nothing: answers at once */
    /* every command aborted by now must have completed */
    for (int i = 0; i < ST_CMDS; i++)
        if (st_busy[i] && !st_cmd[i].done && (st_cmd[i].c.flags & SCSI_CMDF_ABORTED))
            st_tmf_bad++;
}

static void test_stress_concurrent(void)
{
    struct t_env *e = t_env_new(MiB, 512, true);
    uint64_t x = 0x243f6a8885a308d3ull;
    unsigned submitted = 0, completed = 0;
    struct scsi_tmf tmfs[8];
    int tmf_flag[8] = { 0 };
    bool tmf_busy[8] = { false };

    for (unsigned round = 0; round < 20000; round++) {
        unsigned r;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r = (unsigned)(x % 100);
        if (r < 60) {
            int i = (int)((x >> 8) % ST_CMDS);
            uint8_t c[16] = { 0 };
            enum scsi_dir dir = SCSI_DIR_TO_DEV;
            size_t len = 1024;
            uint32_t lba = (uint32_t)((x >> 20) % 64);

            if (st_busy[i] && !st_cmd[i].done)
                continue;
            if (st_busy[i])
                completed++;
            switch ((x >> 40) % 6) {
            case 0:     /* READ(10) 2 blocks */
                c[0] = 0x28;
                dir = SCSI_DIR_FROM_DEV;
                break;
            case 1:     /* WRITE(10) 2 blocks */
                c[0] = 0x2a;
                break;
            case 2:     /* COMPARE AND WRITE 1 block, compares whatever is there */
                c[0] = 0x89;
                c[13] = 1;
                break;
            case 3:     /* WRITE SAME(10) 2 blocks, pattern */
                c[0] = 0x41;
                len = 512;
                break;
            case 4: {   /* UNMAP one descriptor */
                uint8_t *pl = st_buf[i];

                c[0] = 0x42;
                c[8] = 24;
                len = 24;
                memset(pl, 0, 24);
                pl[1] = 22;
                pl[3] = 16;
                pl[15] = (uint8_t)lba;
                pl[19] = 2;
                break;
            }
            default:    /* TEST UNIT READY */
                dir = SCSI_DIR_NONE;
                len = 0;
                break;
            }
            if (c[0] == 0x89) {
                c[9] = (uint8_t)lba;
            } else if (c[0] != 0x42 && c[0] != 0) {
                c[5] = (uint8_t)lba;
                c[8] = 2;
            }
            if (c[0] == 0x41)
                memset(st_buf[i], 0x11, 512);
            tcmd_init(&st_cmd[i], 0, 0, c, 16, dir, len ? st_buf[i] : NULL, len);
            st_cmd[i].c.tag = round;
            st_cmd[i].c.nexus = (uint32_t)(x >> 50) & 1;
            st_busy[i] = true;
            submitted++;
            tcmd_submit(e, &st_cmd[i]);
        } else if (r < 90) {
            fake_ctx_run(e->ctx, (unsigned)(x >> 33) % 4 + 1);
        } else {
            int k = (int)((x >> 12) % 8);
            static const enum scsi_tmf_type types[] = {
                SCSI_TMF_ABORT_TASK, SCSI_TMF_ABORT_TASK_SET, SCSI_TMF_CLEAR_TASK_SET,
                SCSI_TMF_LOGICAL_UNIT_RESET, SCSI_TMF_I_T_NEXUS_RESET, SCSI_TMF_QUERY_TASK_SET,
            };

            if (tmf_busy[k] && tmf_flag[k] == 0)
                continue;       /* still waiting */
            CHECK(!tmf_busy[k] || tmf_flag[k] == 1);
            memset(&tmfs[k], 0, sizeof(tmfs[k]));
            tmfs[k].type = types[(x >> 24) % 6];
            tmfs[k].tag = round - (x >> 30) % 8;
            tmfs[k].nexus = (uint32_t)(x >> 51) & 1;
            tmfs[k].done_cb = st_tmf_cb;
            tmfs[k].opaque = &tmf_flag[k];
            tmf_flag[k] = 0;
            tmf_busy[k] = true;
            scsi_bus_tmf(e->bus, &tmfs[k]);
        }
    }
    fake_ctx_run(e->ctx, 0);
    for (int i = 0; i < ST_CMDS; i++) {
        if (st_busy[i]) {
            CHECK_EQ(st_cmd[i].done, 1);
            completed++;
        }
    }
    for (int k = 0; k < 8; k++)
        if (tmf_busy[k])
            CHECK_EQ(tmf_flag[k], 1);
    CHECK_EQ(completed, submitted);
    CHECK_EQ(st_tmf_bad, 0);
    CHECK(st_tmf_done > 100);
    fprintf(stderr, "  %u commands, %u TMFs\n", submitted, st_tmf_done);
    t_env_free(e);
}

/* Two buses (controllers), nexus 1 and 2, one LU with a path on each. */
static void path_cmd(struct scsi_bus *bus, struct blk_ctx *ctx, struct tcmd *t, uint32_t nexus,
                     const uint8_t *cdb, enum scsi_dir dir, void *buf, size_t len)
{
    struct t_env env = { .bus = bus, .ctx = ctx };

    tcmd_init(t, 0, 0, cdb, 16, dir, buf, len);
    t->c.nexus = nexus;
    tcmd_run(&env, t);
}

static void removed_cb2(void *opaque)
{
    ++*(int *)opaque;
}

static void test_multipath(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);   /* bus A: LU 0:0, nexus 1 */
    struct scsi_bus *b2 = scsi_bus_new();
    struct t_env e2 = { .bus = b2, .ctx = e->ctx };
    static uint8_t blk[512], d[1024];
    uint8_t b[256], b2buf[256], c[16];
    struct tcmd t, tc, tw;
    char err[128];
    int removed = 0;

    CHECK_EQ(scsi_bus_add_path(b2, 0, 0, e->bus, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ(scsi_bus_add_path(b2, 0, 1, e->bus, 0, 0, err, sizeof(err)), -EINVAL);    /* same bus */
    CHECK_EQ(scsi_bus_add_path(e->bus, 0, 3, e->bus, 0, 0, err, sizeof(err)), -EINVAL);
    CHECK_EQ(scsi_bus_add_path(b2, 0, 0, e->bus, 0, 7, err, sizeof(err)), -ENOENT);
    CHECK_EQ(scsi_bus_lun_count(b2), 1);
    t_clear_ua_nexus(e, 0, 0, 1);
    t_clear_ua_nexus(&e2, 0, 0, 2);
    /* the same LU designators, different target ports */
    {
        uint8_t inq[16] = { 0x12, 1, 0x83, 0, 255, 0 };

        path_cmd(e->bus, e->ctx, &t, 1, inq, SCSI_DIR_FROM_DEV, b, sizeof(b));
        check_good(&t);
        path_cmd(b2, e->ctx, &t, 2, inq, SCSI_DIR_FROM_DEV, b2buf, sizeof(b2buf));
        check_good(&t);
        CHECK_MEM(&b[40], &b2buf[40], 12 + 4 + 8 + 5);
        CHECK(get_be16(&b[38]) != get_be16(&b2buf[38]));
    }
    /* one reservation state: nexus 1 registers and reserves EA, nexus 2's
     * write through the other path conflicts and sees the key */
    {
        uint8_t reg[16] = { 0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0 };
        uint8_t res[16] = { 0x5f, 0x01, 0x03, 0, 0, 0, 0, 0, 24, 0 };
        uint8_t rk[16] = { 0x5e, 0x00, 0, 0, 0, 0, 0, 0, 255, 0 };
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0 };
        uint8_t p[24] = { 0 };

        put_be64(&p[8], 0x4242);
        path_cmd(e->bus, e->ctx, &t, 1, reg, SCSI_DIR_TO_DEV, p, 24);
        check_good(&t);
        memset(p, 0, sizeof(p));
        put_be64(p, 0x4242);
        path_cmd(e->bus, e->ctx, &t, 1, res, SCSI_DIR_TO_DEV, p, 24);
        check_good(&t);
        path_cmd(b2, e->ctx, &t, 2, wr, SCSI_DIR_TO_DEV, blk, 512);
        CHECK_EQ(t.c.status, SCSI_STATUS_RESERVATION_CONFLICT);
        path_cmd(b2, e->ctx, &t, 2, rk, SCSI_DIR_FROM_DEV, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(get_be32(&b[4]), 8);
        CHECK_EQ(get_be64(&b[8]), 0x4242);
        path_cmd(e->bus, e->ctx, &t, 1, wr, SCSI_DIR_TO_DEV, blk, 512);
        check_good(&t);
        /* CLEAR from path A: nexus 2 was not registered, no UA there */
        reg[1] = 0x03;
        path_cmd(e->bus, e->ctx, &t, 1, reg, SCSI_DIR_TO_DEV, p, 24);
        check_good(&t);
    }
    /* MODE SELECT through path A: 2A/01 MODE PARAMETERS CHANGED for nexus 2 only */
    {
        uint8_t ms[16] = { 0x15, 0x10, 0, 0, 16, 0 };
        uint8_t pg[16] = { 0, 0, 0, 0, 0x0a, 0x0a, 0x04, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0 };
        uint8_t tur[16] = { 0 };

        path_cmd(e->bus, e->ctx, &t, 1, ms, SCSI_DIR_TO_DEV, pg, 16);
        check_good(&t);
        path_cmd(e->bus, e->ctx, &t, 1, tur, SCSI_DIR_NONE, NULL, 0);
        check_good(&t);
        path_cmd(b2, e->ctx, &t, 2, tur, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 6, 0x2a, 0x01);
        CHECK_EQ(t.c.sense[0] & 0x7f, 0x72);    /* D_SENSE=1 is the LU's */
    }
    /* one write gate: a COMPARE AND WRITE on A holds back a write on B */
    memset(d, 0, sizeof(d));
    memset(e->drive->data, 0, 512);
    memset(c, 0, sizeof(c));
    c[0] = 0x89;
    c[13] = 1;
    tcmd_init(&tc, 0, 0, c, 16, SCSI_DIR_TO_DEV, d, 1024);
    tc.c.nexus = 1;
    tcmd_submit(e, &tc);
    {
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 };

        tcmd_init(&tw, 0, 0, wr, 16, SCSI_DIR_TO_DEV, blk, 512);
        tw.c.nexus = 2;
        tcmd_submit(&e2, &tw);
    }
    CHECK_EQ(fake_ctx_pending(e->ctx), 1);      /* the CAW's read only */
    fake_ctx_run(e->ctx, 0);
    check_good(&tc);
    check_good(&tw);
    CHECK(tw.order > tc.order);
    /* REPORT LUNS on bus B lists the path's LUN */
    {
        uint8_t rl[16] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };

        path_cmd(b2, e->ctx, &t, 2, rl, SCSI_DIR_FROM_DEV, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(get_be32(b), 8);
    }
    /* removing path B leaves the LU on A; then A goes too */
    CHECK_EQ(scsi_bus_remove_lun(b2, 0, 0, removed_cb2, &removed), 0);
    CHECK_EQ(removed, 1);
    CHECK_EQ(scsi_bus_lun_count(b2), 0);
    {
        uint8_t tur[16] = { 0 };

        path_cmd(e->bus, e->ctx, &t, 1, tur, SCSI_DIR_NONE, NULL, 0);
        check_good(&t);                         /* bus A's LUN inventory did not change */
    }
    scsi_bus_free(b2);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_ua_power_on);
    RUN_TEST(test_ua_luns_changed);
    RUN_TEST(test_abort_task);
    RUN_TEST(test_abort_task_set);
    RUN_TEST(test_lun_reset);
    RUN_TEST(test_it_nexus_reset);
    RUN_TEST(test_remove_busy);
    RUN_TEST(test_remove_gated);
    RUN_TEST(test_reentrant_done);
    RUN_TEST(test_many_luns);
    RUN_TEST(test_wlun);
    RUN_TEST(test_random_cdbs);
    RUN_TEST(test_stress_concurrent);
    RUN_TEST(test_multipath);
    return test_exit();
}

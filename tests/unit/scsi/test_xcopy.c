/* EXTENDED COPY (LID1) and RECEIVE COPY RESULTS: parameter list checks and
 * limits, copy targets found by designator on the same bus only, copies
 * within and between LUs (overlapping ranges), held results per list id. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

/* a parameter list being built */
struct plist {
    uint8_t b[8192];
    size_t ntd, nsd;
};

static void pl_init(struct plist *p, uint8_t list_id, unsigned usage)
{
    memset(p, 0, sizeof(*p));
    p->b[0] = list_id;
    p->b[1] = (uint8_t)(usage << 3);
}

static uint64_t lun_wwn(struct t_env *e, uint16_t lun)
{
    return scsi_bus_find_lun(e->bus, 0, lun)->wwn;
}

static void pl_tgt(struct plist *p, uint8_t code, uint64_t naa, uint32_t bs)
{
    uint8_t *d = &p->b[16 + 32 * p->ntd++];

    d[0] = code;
    d[4] = 0x01;                /* binary */
    d[5] = 0x03;                /* LU, NAA */
    d[7] = 8;
    put_be64(&d[8], naa);
    d[29] = (uint8_t)(bs >> 16);
    d[30] = (uint8_t)(bs >> 8);
    d[31] = (uint8_t)bs;
}

static void pl_seg(struct plist *p, uint8_t code, uint16_t si, uint16_t di, uint16_t n, uint64_t sl, uint64_t dl)
{
    uint8_t *d = &p->b[16 + 32 * p->ntd + 28 * p->nsd++];

    d[0] = code;
    put_be16(&d[2], 24);
    put_be16(&d[4], si);
    put_be16(&d[6], di);
    put_be16(&d[10], n);
    put_be64(&d[12], sl);
    put_be64(&d[20], dl);
}

static size_t pl_done(struct plist *p)
{
    put_be16(&p->b[2], (uint16_t)(32 * p->ntd));
    put_be32(&p->b[8], (uint32_t)(28 * p->nsd));
    return 16 + 32 * p->ntd + 28 * p->nsd;
}

static void xcopy(struct t_env *e, struct tcmd *t, struct plist *p, uint32_t len)
{
    uint8_t cdb[16] = { 0x83 };

    put_be32(&cdb[10], len);
    tcmd_init(t, 0, 0, cdb, 16, len ? SCSI_DIR_TO_DEV : SCSI_DIR_NONE, len ? p->b : NULL, len);
    tcmd_run(e, t);
}

static size_t rcr(struct t_env *e, struct tcmd *t, uint8_t sa, uint8_t list_id, uint8_t *b, uint32_t alloc)
{
    uint8_t cdb[16] = { 0x84, sa, list_id };

    put_be32(&cdb[10], alloc);
    memset(b, 0xcc, 256);
    tcmd_init(t, 0, 0, cdb, 16, SCSI_DIR_FROM_DEV, b, 256);
    tcmd_run(e, t);
    return t->c.xfer_len;
}

static void test_op_params(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t b[256];
    struct tcmd t;

    CHECK_EQ(rcr(e, &t, 0x03, 0, b, 256), 46);
    check_good(&t);
    CHECK_EQ(get_be32(b), 42);
    CHECK_EQ(get_be16(&b[8]), 16);              /* target descriptors */
    CHECK_EQ(get_be16(&b[10]), 16);             /* segment descriptors */
    CHECK_EQ(get_be32(&b[12]), 1024);
    CHECK_EQ(b[43], 2);
    CHECK_EQ(b[44], 0x02);
    CHECK_EQ(b[45], 0xe4);
    /* truncated to the allocation length */
    CHECK_EQ(rcr(e, &t, 0x03, 0, b, 10), 10);
    CHECK_EQ(b[10], 0xcc);
    /* COPY STATUS of a list id never used: invalid field (byte 2) */
    rcr(e, &t, 0x00, 7, b, 256);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf0002);
    /* service action 02h and 05h..: invalid */
    rcr(e, &t, 0x02, 0, b, 256);
    check_sense(&t, 5, 0x24, 0);
    t_env_free(e);
}

static void test_copy_self(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t *d = e->drive->data, b[256];
    struct plist p;
    struct tcmd t;
    size_t len;

    for (size_t i = 0; i < MiB; i++)
        d[i] = (uint8_t)(i / 512);
    /* zero-length list: nothing */
    xcopy(e, &t, NULL, 0);
    check_good(&t);
    /* copy 100 blocks from LBA 0 to LBA 1000, list id 1 held */
    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
    pl_seg(&p, 0x02, 0, 0, 100, 0, 1000);
    len = pl_done(&p);
    xcopy(e, &t, &p, (uint32_t)len);
    check_good(&t);
    CHECK_MEM(&d[1000 * 512], &d[0], 100 * 512);
    CHECK_EQ(rcr(e, &t, 0x00, 1, b, 256), 12);
    check_good(&t);
    CHECK_EQ(get_be32(b), 8);
    CHECK_EQ(b[4], 0x01);                       /* completed */
    CHECK_EQ(get_be16(&b[5]), 1);
    CHECK_EQ(get_be32(&b[8]), 100 * 512);
    /* FAILED SEGMENT DETAILS of a good copy: nothing */
    CHECK_EQ(rcr(e, &t, 0x04, 1, b, 256), 4);
    CHECK_EQ(get_be32(b), 0);

    /* overlapping, destination later: the source as it was */
    {
        uint8_t *want = malloc(200 * 512);

        memcpy(want, &d[10 * 512], 200 * 512);
        pl_init(&p, 2, 2);
        pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
        pl_seg(&p, 0x02, 0, 0, 200, 10, 60);
        xcopy(e, &t, &p, (uint32_t)pl_done(&p));
        check_good(&t);
        CHECK_MEM(&d[60 * 512], want, 200 * 512);
        free(want);
    }
    /* LIST ID USAGE 10b: not held */
    rcr(e, &t, 0x00, 2, b, 256);
    check_sense(&t, 5, 0x24, 0);
    /* 01b reserved; 11b wants list id 0 */
    pl_init(&p, 3, 1);
    pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
    pl_seg(&p, 0x02, 0, 0, 1, 0, 1);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 5, 0x26, 0);
    p.b[1] = 3 << 3;
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 5, 0x26, 0);
    p.b[0] = 0;
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_good(&t);
    /* a rejected copy with list id 1 drops what was held for it */
    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
    pl_seg(&p, 0x02, 0, 1, 1, 0, 1);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 0x0a, 0x08, 0x04);
    rcr(e, &t, 0x00, 1, b, 256);
    check_sense(&t, 5, 0x24, 0);
    t_env_free(e);
}

static void test_errors(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint64_t wwn = lun_wwn(e, 0);
    struct plist p;
    struct tcmd t;
    size_t len;

    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, wwn, 512);
    pl_seg(&p, 0x02, 0, 0, 8, 0, 100);
    len = pl_done(&p);
    /* truncated header, target or segment descriptor */
    for (size_t l = 1; l < 16; l++) {
        xcopy(e, &t, &p, (uint32_t)l);
        check_sense(&t, 5, 0x1a, 0);
    }
    xcopy(e, &t, &p, 16 + 31);
    check_sense(&t, 5, 0x1a, 0);
    xcopy(e, &t, &p, (uint32_t)len - 1);
    check_sense(&t, 5, 0x1a, 0);
    /* unsupported descriptor type codes */
    p.b[16] = 0xe0;
    xcopy(e, &t, &p, (uint32_t)len);
    check_sense(&t, 5, 0x26, 0x07);
    p.b[16] = 0xe4;
    p.b[48] = 0x03;
    xcopy(e, &t, &p, (uint32_t)len);
    check_sense(&t, 5, 0x26, 0x09);
    p.b[48] = 0x02;
    /* a designator nobody has: unreachable copy target */
    put_be64(&p.b[24], wwn ^ 1);
    xcopy(e, &t, &p, (uint32_t)len);
    check_sense(&t, 0x0a, 0x08, 0x04);
    put_be64(&p.b[24], wwn);
    /* disk block length other than the LU's */
    p.b[46] = 0x10;
    xcopy(e, &t, &p, (uint32_t)len);
    check_sense(&t, 0x0a, 0x0d, 0x03);
    p.b[46] = 0x02;
    /* beyond the end of the LU */
    put_be64(&p.b[48 + 20], 2048 - 7);
    xcopy(e, &t, &p, (uint32_t)len);
    check_sense(&t, 0x0a, 0, 0);
    CHECK_EQ(t_sks(&t.c), 0xa00030);            /* segment pointer at byte 48 */
    put_be64(&p.b[48 + 20], 2048 - 8);
    xcopy(e, &t, &p, (uint32_t)len);
    check_good(&t);
    /* one target and segment descriptor too many, and a too long list */
    pl_init(&p, 1, 0);
    for (int i = 0; i < 17; i++)
        pl_tgt(&p, 0xe4, wwn, 512);
    pl_seg(&p, 0x02, 0, 0, 1, 0, 1);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 5, 0x26, 0x06);
    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, wwn, 512);
    for (int i = 0; i < 17; i++)
        pl_seg(&p, 0x02, 0, 0, 1, 0, 1);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 5, 0x26, 0x08);
    pl_init(&p, 1, 0);
    for (int i = 0; i < 17; i++)
        pl_tgt(&p, 0xe4, wwn, 512);
    for (int i = 0; i < 18; i++)
        pl_seg(&p, 0x02, 0, 0, 1, 0, 1);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 5, 0x1a, 0);
    /* a parameter list length beyond anything we take */
    xcopy(e, &t, &p, 1u << 20);
    check_sense(&t, 5, 0x1a, 0);
    t_env_free(e);
}

static void test_between_luns(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .id = "other" };
    struct blk_drive *d2 = t_add_lun(e, 3, 7, &cfg, MiB);
    struct scsi_lun *lu2 = scsi_bus_find_lun(e->bus, 3, 7);
    struct scsi_bus *bus2 = scsi_bus_new();
    struct blk_drive *d3 = fake_drive_new(MiB);
    struct scsi_dev_config cfg3 = { .type = SCSI_DEV_HD, .id = "elsewhere" };
    char err[128];
    struct plist p;
    struct tcmd t;

    memset(e->drive->data, 0x5a, 64 * 512);
    /* LU 0 -> LU 3:7 (another target of the same bus) */
    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
    pl_tgt(&p, 0xe4, lu2->wwn, 512);
    pl_seg(&p, 0x02, 0, 1, 64, 0, 500);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_good(&t);
    CHECK_MEM(&d2->data[500 * 512], e->drive->data, 64 * 512);
    /* read-only destination */
    d2->readonly = true;
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 0x0a, 0x27, 0);
    d2->readonly = false;
    /* a LU of another bus (another controller) is not reachable */
    CHECK_EQ(scsi_bus_add_lun(bus2, 0, 0, &cfg3, d3, err, sizeof(err)), 0);
    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
    pl_tgt(&p, 0xe4, scsi_bus_find_lun(bus2, 0, 0)->wwn, 512);
    pl_seg(&p, 0x02, 0, 1, 64, 0, 500);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 0x0a, 0x08, 0x04);
    scsi_bus_remove_lun(bus2, 0, 0, NULL, NULL);
    scsi_bus_free(bus2);
    fake_drive_free(d3);
    t_env_free(e);
}

static unsigned removed_calls;

static void removed(void *opaque, struct blk_drive *d)
{
    *(struct blk_drive **)opaque = d;
    removed_calls++;
}

/* Removable copy targets: a CD-ROM is none, a disk with its tray open can't
 * be reached, and a copy holds the medium it reads through a removal. */
static void test_removable_targets(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cd = { .type = SCSI_DEV_CD }, rm = { .type = SCSI_DEV_HD, .removable = true };
    struct blk_drive *cdd = fake_drive_new(64 << 10), *rd = fake_drive_new(MiB), *out = NULL;
    struct scsi_lun *lu2;
    uint8_t cdb[16] = { 0x83 };
    char err[128];
    struct plist p;
    struct tcmd t;
    size_t len;

    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 1, &cd, cdd, err, sizeof(err)), 0);
    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &rm, rd, err, sizeof(err)), 0);
    lu2 = scsi_bus_find_lun(e->bus, 0, 2);
    t_clear_ua(e, 0, 0);
    /* within the CD-ROM: it has 2048-byte blocks, but is no block device */
    pl_init(&p, 1, 0);
    pl_tgt(&p, 0xe4, lun_wwn(e, 1), 2048);
    pl_seg(&p, 0x02, 0, 0, 1, 0, 1);
    xcopy(e, &t, &p, (uint32_t)pl_done(&p));
    check_sense(&t, 0x0a, 0x0d, 0x03);          /* INCORRECT COPY TARGET DEVICE TYPE */
    CHECK_EQ(cdd->nops[BLK_OP_WRITE], 0);

    pl_init(&p, 2, 0);
    pl_tgt(&p, 0xe4, lun_wwn(e, 0), 512);
    pl_tgt(&p, 0xe4, lun_wwn(e, 2), 512);
    pl_seg(&p, 0x02, 1, 0, 8, 0, 16);
    len = pl_done(&p);
    CHECK_EQ(scsi_lun_open_tray(lu2, false), 0);
    xcopy(e, &t, &p, (uint32_t)len);
    check_sense(&t, 0x0a, 0x0d, 0x02);          /* COPY TARGET DEVICE NOT REACHABLE */
    CHECK_EQ(scsi_lun_close_tray(lu2), 0);

    memset(rd->data, 0x3c, 8 * 512);
    put_be32(&cdb[10], (uint32_t)len);
    tcmd_init(&t, 0, 0, cdb, 16, SCSI_DIR_TO_DEV, p.b, len);
    tcmd_submit(e, &t);
    CHECK_EQ(t.done, 0);
    CHECK_EQ(scsi_lun_open_tray(lu2, true), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu2, removed, &out), 0);
    CHECK_EQ(removed_calls, 0);
    fake_ctx_run(e->ctx, 0);
    check_good(&t);
    CHECK_EQ(removed_calls, 1);
    CHECK(out == rd);
    CHECK_EQ(e->drive->data[16 * 512], 0x3c);
    CHECK_EQ(e->drive->data[24 * 512 - 1], 0x3c);
    t_env_free(e);
    fake_drive_free(cdd);
    fake_drive_free(rd);
}

int main(void)
{
    RUN_TEST(test_op_params);
    RUN_TEST(test_copy_self);
    RUN_TEST(test_errors);
    RUN_TEST(test_between_luns);
    RUN_TEST(test_removable_targets);
    return test_exit();
}

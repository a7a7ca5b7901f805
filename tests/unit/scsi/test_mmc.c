/* MMC-6 (SCSI_DEV_CD) and the removable-media state machine: data layouts
 * and truncation of every MMC command, writes refused, READ range checks,
 * the tray moved by the guest (START STOP UNIT, PREVENT ALLOW) and by the
 * host (scsi_lun_open_tray/close_tray/remove_medium/insert_medium), GET
 * EVENT STATUS NOTIFICATION events, removal while commands are in flight,
 * and an empty removable disk. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

#define CD_LUN      1
#define EMPTY_LUN   2
#define BLK         2048

static const uint8_t tur[6] = { 0 };

struct tray_rec {
    unsigned calls;
    bool last;
};

static void tray_cb(void *opaque, bool open)
{
    struct tray_rec *r = opaque;

    r->calls++;
    r->last = open;
}

static struct tray_rec tray1, tray2;

/* A drive whose block i is filled with the byte (i + 1). */
static struct blk_drive *cd_drive(uint64_t size)
{
    struct blk_drive *d = fake_drive_new(size);

    for (uint64_t o = 0; o < size; o++)
        d->data[o] = (uint8_t)(o / BLK + 1);
    d->readonly = true;
    return d;
}

static struct scsi_lun *add_cd(struct t_env *e, uint16_t lun, struct blk_drive *d, struct tray_rec *rec)
{
    struct scsi_dev_config cfg = { .type = SCSI_DEV_CD, .tray_cb = tray_cb, .tray_opaque = rec };
    char err[128];

    memset(rec, 0, sizeof(*rec));
    if (scsi_bus_add_lun(e->bus, 0, lun, &cfg, d, err, sizeof(err))) {
        fprintf(stderr, "add cd: %s\n", err);
        abort();
    }
    t_clear_ua(e, 0, lun);
    t_clear_ua(e, 0, 0);
    e->nevents = 0;
    return scsi_bus_find_lun(e->bus, 0, lun);
}

/* LUN 0 a disk, LUN 1 a CD with a 5-block-and-a-bit medium, LUN 2 an empty CD. */
static struct t_env *cd_env(struct blk_drive **cd)
{
    struct t_env *e = t_env_new(MiB, 512, false);

    *cd = cd_drive(5 * BLK + 100);
    add_cd(e, CD_LUN, *cd, &tray1);
    add_cd(e, EMPTY_LUN, NULL, &tray2);
    t_clear_ua(e, 0, CD_LUN);                   /* 3F/0E from LUN 2 */
    return e;
}

static void run_in(struct t_env *e, struct tcmd *t, uint16_t lun, const uint8_t *cdb, unsigned len, uint8_t *b,
                   size_t blen)
{
    memset(b, 0xcc, blen);
    t_run(e, t, lun, cdb, len, SCSI_DIR_FROM_DEV, b, blen);
}

static void check_field(const struct tcmd *t, unsigned byte, int bit)
{
    check_sense(t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t->c), sense_sks_field(true, byte, bit) & 0xffffff);
}

static void cdb10(uint8_t *c, uint8_t op, uint32_t lba, uint16_t n)
{
    memset(c, 0, 10);
    c[0] = op;
    put_be32(&c[2], lba);
    put_be16(&c[7], n);
}

static void test_config(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cd = { .type = SCSI_DEV_CD }, hd = { .type = SCSI_DEV_HD };
    char err[128];

    /* a CD-ROM has 2048-byte blocks */
    cd.logical_block_size = 512;
    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 1, &cd, NULL, err, sizeof(err)), -EINVAL);
    cd.logical_block_size = 2048;
    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 1, &cd, NULL, err, sizeof(err)), 0);
    /* only a removable disk may start empty */
    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &hd, NULL, err, sizeof(err)), -EINVAL);
    hd.removable = true;
    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &hd, NULL, err, sizeof(err)), 0);
    /* the fixed disk has no tray */
    {
        struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, 0);
        struct scsi_medium_state ms;

        CHECK_EQ(scsi_lun_open_tray(lu, true), -ENOTSUP);
        CHECK_EQ(scsi_lun_close_tray(lu), -ENOTSUP);
        CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), -ENOTSUP);
        CHECK_EQ(scsi_lun_insert_medium(lu, e->drive, err, sizeof(err)), -ENOTSUP);
        scsi_lun_get_medium(lu, &ms);
        CHECK(!ms.removable);
        CHECK(ms.has_medium);
        CHECK(ms.drive == e->drive);
        scsi_lun_get_medium(scsi_bus_find_lun(e->bus, 0, 1), &ms);
        CHECK(ms.removable);
        CHECK(!ms.tray_open);
        CHECK(!ms.has_medium);
        CHECK(ms.drive == NULL);
    }
    t_env_free(e);
}

static void test_inquiry(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[256], full[96];
    struct tcmd t;

    {
        uint8_t c[6] = { 0x12, 0, 0, 0, 96, 0 };

        run_in(e, &t, CD_LUN, c, 6, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 96);
        CHECK_EQ(b[0], 0x05);                   /* CD/DVD device */
        CHECK_EQ(b[1], 0x80);                   /* RMB */
        CHECK_EQ(b[5], 0);                      /* no 3PC */
        CHECK_MEM(&b[16], "VSCSI CD-ROM    ", 16);
        CHECK_EQ(get_be16(&b[62]), 0x04e0);     /* MMC-6 */
        CHECK_EQ(get_be16(&b[64]), 0);
        memcpy(full, b, 96);
        for (unsigned a = 0; a <= 97; a++) {
            c[4] = (uint8_t)a;
            run_in(e, &t, CD_LUN, c, 6, b, sizeof(b));
            CHECK_EQ(t.c.xfer_len, a < 96 ? a : 96);
            CHECK_MEM(b, full, t.c.xfer_len);
        }
    }
    {
        uint8_t c[6] = { 0x12, 1, 0x00, 0, 255, 0 };

        run_in(e, &t, CD_LUN, c, 6, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 7);
        CHECK_EQ(b[0], 0x05);
        CHECK_EQ(b[3], 3);
        CHECK_EQ(b[4], 0x00);
        CHECK_EQ(b[5], 0x80);
        CHECK_EQ(b[6], 0x83);
        c[4] = 4;
        run_in(e, &t, CD_LUN, c, 6, b, sizeof(b));
        CHECK_EQ(t.c.xfer_len, 4);
        CHECK_EQ(b[4], 0xcc);
        c[4] = 255;
        c[2] = 0x83;
        run_in(e, &t, CD_LUN, c, 6, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(b[1], 0x83);
        /* block device pages are not an MMC device's */
        static const uint8_t no[] = { 0x86, 0xb0, 0xb1, 0xb2 };
        for (size_t i = 0; i < sizeof(no); i++) {
            c[2] = no[i];
            run_in(e, &t, CD_LUN, c, 6, b, sizeof(b));
            check_field(&t, 2, 7);
        }
    }
    /* INQUIRY and REQUEST SENSE need no medium */
    {
        uint8_t c[6] = { 0x12, 0, 0, 0, 36, 0 }, rs[6] = { 0x03, 0, 0, 0, 18, 0 };

        run_in(e, &t, EMPTY_LUN, c, 6, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(b[0], 0x05);
        run_in(e, &t, EMPTY_LUN, rs, 6, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(b[2], 0x02);
        CHECK_EQ(b[12], 0x3a);
        CHECK_EQ(b[13], 0x01);                  /* tray closed */
        run_in(e, &t, CD_LUN, rs, 6, b, sizeof(b));
        CHECK_EQ(b[2], 0x00);
    }
    t_env_free(e);
    fake_drive_free(cd);
}

static void test_capacity_read(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[4 * BLK], c[16];
    struct tcmd t;

    /* 5 blocks and 100 bytes: the partial block is not a block */
    cdb10(c, 0x25, 0, 0);
    run_in(e, &t, CD_LUN, c, 10, b, 8);
    check_good(&t);
    CHECK_EQ(get_be32(b), 4);
    CHECK_EQ(get_be32(&b[4]), 2048);
    /* PMI=0 with an LBA */
    c[5] = 1;
    run_in(e, &t, CD_LUN, c, 10, b, 8);
    check_field(&t, 2, 7);

    cdb10(c, 0x28, 1, 2);
    run_in(e, &t, CD_LUN, c, 10, b, 2 * BLK);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 2 * BLK);
    CHECK_EQ(b[0], 2);
    CHECK_EQ(b[BLK - 1], 2);
    CHECK_EQ(b[BLK], 3);
    CHECK_EQ(cd->last_offset, BLK);
    /* READ(12) */
    memset(c, 0, 12);
    c[0] = 0xa8;
    put_be32(&c[2], 4);
    put_be32(&c[6], 1);
    run_in(e, &t, CD_LUN, c, 12, b, BLK);
    check_good(&t);
    CHECK_EQ(b[0], 5);
    /* beyond the capacity: LBA OUT OF RANGE */
    cdb10(c, 0x28, 4, 2);
    run_in(e, &t, CD_LUN, c, 10, b, 2 * BLK);
    check_sense(&t, 5, 0x21, 0);
    cdb10(c, 0x28, 5, 1);
    run_in(e, &t, CD_LUN, c, 10, b, BLK);
    check_sense(&t, 5, 0x21, 0);
    memset(c, 0, 12);
    c[0] = 0xa8;
    put_be32(&c[2], 0xffffffffu);
    put_be32(&c[6], 2);
    run_in(e, &t, CD_LUN, c, 12, b, 2 * BLK);
    check_sense(&t, 5, 0x21, 0);
    /* RDPROTECT is no MMC field */
    cdb10(c, 0x28, 0, 1);
    c[1] = 0x20;
    run_in(e, &t, CD_LUN, c, 10, b, BLK);
    check_field(&t, 1, 5);
    /* MMC has no READ(6) */
    {
        uint8_t r6[6] = { 0x08, 0, 0, 0, 1, 0 };

        run_in(e, &t, CD_LUN, r6, 6, b, BLK);
        check_sense(&t, 5, 0x20, 0);
    }
    /* SEEK(10): the LBA must address a block */
    cdb10(c, 0x2b, 4, 0);
    t_run(e, &t, CD_LUN, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb10(c, 0x2b, 5, 0);
    t_run(e, &t, CD_LUN, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    /* SYNCHRONIZE CACHE and SET CD SPEED: nothing to do */
    cdb10(c, 0x35, 0, 0);
    t_run(e, &t, CD_LUN, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    memset(c, 0, 12);
    c[0] = 0xbb;
    put_be16(&c[2], 0xffff);
    t_run(e, &t, CD_LUN, c, 12, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    CHECK_EQ(cd->nops[BLK_OP_FLUSH], 0);
    t_env_free(e);
    fake_drive_free(cd);
}

static void test_writes_refused(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    static const uint8_t ops[] = { 0x0a, 0x2a, 0xaa, 0x2e, 0xae, 0x8a, 0x41, 0x93, 0x42, 0x04, 0x89, 0x2f };
    uint8_t b[BLK], c[16];
    struct tcmd t;

    memset(b, 0x55, sizeof(b));
    for (size_t i = 0; i < sizeof(ops); i++) {
        memset(c, 0, sizeof(c));
        c[0] = ops[i];
        c[8] = 1;
        t_run(e, &t, CD_LUN, c, 16, SCSI_DIR_TO_DEV, b, BLK);
        check_sense(&t, 5, 0x20, 0);        /* INVALID COMMAND OPERATION CODE */
    }
    CHECK_EQ(cd->nops[BLK_OP_WRITE], 0);
    CHECK_EQ(cd->data[0], 1);
    t_env_free(e);
    fake_drive_free(cd);
}

static size_t read_toc(struct t_env *e, struct tcmd *t, uint16_t lun, bool msf, uint8_t fmt, uint8_t track,
                       uint16_t alloc, uint8_t *b)
{
    uint8_t c[10] = { 0x43, msf ? 0x02 : 0, fmt, 0, 0, 0, track, 0, 0, 0 };

    put_be16(&c[7], alloc);
    run_in(e, t, lun, c, 10, b, 256);
    return t->c.xfer_len;
}

static void test_read_toc(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[256], full[64];
    struct tcmd t;

    /* format 0, LBA: track 1 at 0, lead-out at the capacity */
    CHECK_EQ(read_toc(e, &t, CD_LUN, false, 0, 0, 256, b), 20);
    check_good(&t);
    CHECK_EQ(get_be16(b), 18);
    CHECK_EQ(b[2], 1);
    CHECK_EQ(b[3], 1);
    CHECK_EQ(b[5], 0x14);                       /* ADR 1, data track */
    CHECK_EQ(b[6], 1);
    CHECK_EQ(get_be32(&b[8]), 0);
    CHECK_EQ(b[13], 0x14);
    CHECK_EQ(b[14], 0xaa);
    CHECK_EQ(get_be32(&b[16]), 5);
    memcpy(full, b, 20);
    for (unsigned a = 0; a <= 21; a++) {
        CHECK_EQ(read_toc(e, &t, CD_LUN, false, 0, 1, (uint16_t)a, b), a < 20 ? a : 20);
        CHECK_MEM(b, full, t.c.xfer_len);
        CHECK_EQ(b[t.c.xfer_len], 0xcc);
    }
    /* MSF: 00:02:00 and LBA 5 + 150 frames = 00:02:05 */
    CHECK_EQ(read_toc(e, &t, CD_LUN, true, 0, 1, 256, b), 20);
    CHECK_EQ(b[8], 0);
    CHECK_EQ(b[9], 0);
    CHECK_EQ(b[10], 2);
    CHECK_EQ(b[11], 0);
    CHECK_EQ(b[17], 0);
    CHECK_EQ(b[18], 2);
    CHECK_EQ(b[19], 5);
    /* from the lead-out: only it */
    CHECK_EQ(read_toc(e, &t, CD_LUN, false, 0, 0xaa, 256, b), 12);
    CHECK_EQ(get_be16(b), 10);
    CHECK_EQ(b[6], 0xaa);
    /* a track that isn't there */
    read_toc(e, &t, CD_LUN, false, 0, 2, 256, b);
    check_field(&t, 6, 7);
    /* format 1: the session */
    CHECK_EQ(read_toc(e, &t, CD_LUN, false, 1, 0, 256, b), 12);
    CHECK_EQ(get_be16(b), 10);
    CHECK_EQ(b[2], 1);
    CHECK_EQ(b[3], 1);
    CHECK_EQ(b[5], 0x14);
    CHECK_EQ(b[6], 1);
    CHECK_EQ(get_be32(&b[8]), 0);
    CHECK_EQ(read_toc(e, &t, CD_LUN, true, 1, 0, 256, b), 12);
    CHECK_EQ(b[10], 2);
    /* the SFF-8020i format in the CONTROL byte (Linux sr's multisession probe) */
    {
        uint8_t c[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0x40 };

        run_in(e, &t, CD_LUN, c, 10, b, 12);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 12);
        CHECK_EQ(get_be16(b), 10);
        CHECK_EQ(b[6], 1);
    }
    /* format 2: full TOC, A0 A1 A2 and track 1 */
    CHECK_EQ(read_toc(e, &t, CD_LUN, true, 2, 1, 256, b), 48);
    CHECK_EQ(get_be16(b), 46);
    CHECK_EQ(b[4 + 3], 0xa0);
    CHECK_EQ(b[4 + 8], 1);
    CHECK_EQ(b[15 + 3], 0xa1);
    CHECK_EQ(b[15 + 8], 1);
    CHECK_EQ(b[26 + 3], 0xa2);
    CHECK_EQ(b[26 + 8], 0);
    CHECK_EQ(b[26 + 9], 2);
    CHECK_EQ(b[26 + 10], 5);
    CHECK_EQ(b[37 + 3], 1);
    CHECK_EQ(b[37 + 9], 2);
    read_toc(e, &t, CD_LUN, false, 2, 2, 256, b);
    check_field(&t, 6, 7);
    /* bad formats: INVALID FIELD IN CDB pointing at FORMAT */
    for (uint8_t f = 3; f <= 0xf; f++) {
        read_toc(e, &t, CD_LUN, false, f, 0, 256, b);
        check_field(&t, 2, 3);
    }
    {
        uint8_t c[10] = { 0x43, 0, 0x10, 0, 0, 0, 0, 0, 12, 0 };

        run_in(e, &t, CD_LUN, c, 10, b, 12);
        check_field(&t, 2, 4);                  /* reserved bits */
        c[2] = 0;
        c[9] = 0xc0;
        run_in(e, &t, CD_LUN, c, 10, b, 12);
        check_field(&t, 9, 7);
    }
    /* no medium */
    read_toc(e, &t, EMPTY_LUN, false, 0, 0, 256, b);
    check_sense(&t, 2, 0x3a, 0x01);
    t_env_free(e);
    fake_drive_free(cd);
}

static void test_disc_track_info(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[256], c[10], full[48];
    struct tcmd t;

    cdb10(c, 0x51, 0, 0xff);
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 34);
    CHECK_EQ(get_be16(b), 32);
    CHECK_EQ(b[2], 0x0e);                       /* complete session, finalized */
    CHECK_EQ(b[3], 1);
    CHECK_EQ(b[4], 1);
    CHECK_EQ(b[5], 1);
    CHECK_EQ(b[6], 1);
    CHECK_EQ(b[7], 0x20);
    CHECK_EQ(get_be32(&b[16]), 0xffffffffu);
    c[8] = 2;                                   /* Linux reads the length first */
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    CHECK_EQ(t.c.xfer_len, 2);
    CHECK_EQ(b[2], 0xcc);
    c[1] = 1;
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_field(&t, 1, 2);
    cdb10(c, 0x51, 0, 0xff);
    run_in(e, &t, EMPTY_LUN, c, 10, b, sizeof(b));
    check_sense(&t, 2, 0x3a, 0x01);

    /* track 1 by LBA, number and session */
    for (unsigned type = 0; type < 3; type++) {
        cdb10(c, 0x52, type == 0 ? 4 : 1, 0xff);
        c[1] = (uint8_t)type;
        run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 48);
        CHECK_EQ(get_be16(b), 46);
        CHECK_EQ(b[2], 1);
        CHECK_EQ(b[3], 1);
        CHECK_EQ(b[5], 0x04);
        CHECK_EQ(b[6], 0x01);
        CHECK_EQ(b[7], 0);                      /* no next writable address */
        CHECK_EQ(get_be32(&b[8]), 0);
        CHECK_EQ(get_be32(&b[24]), 5);
        memcpy(full, b, 48);
    }
    c[8] = 12;
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    CHECK_EQ(t.c.xfer_len, 12);
    CHECK_MEM(b, full, 12);
    /* no such LBA, track or session; address type 11b */
    cdb10(c, 0x52, 5, 0xff);
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_field(&t, 2, 7);
    for (unsigned v = 0; v < 3; v += 2) {
        cdb10(c, 0x52, v, 0xff);
        c[1] = 1;
        run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
        check_field(&t, 2, 7);
    }
    cdb10(c, 0x52, 2, 0xff);
    c[1] = 2;
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_field(&t, 2, 7);
    cdb10(c, 0x52, 1, 0xff);
    c[1] = 3;
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_field(&t, 1, 1);
    t_env_free(e);
    fake_drive_free(cd);
}

/* Walks the feature descriptors of a GET CONFIGURATION answer: their codes
 * into codes[], the CURRENT bits into cur[]; returns the count. */
static unsigned features(const uint8_t *b, size_t n, uint16_t *codes, bool *cur)
{
    unsigned k = 0;

    for (size_t o = 8; o + 4 <= n && k < 16; o += 4u + b[o + 3]) {
        codes[k] = get_be16(&b[o]);
        cur[k] = b[o + 2] & 0x01;
        k++;
    }
    return k;
}

static void get_config(struct t_env *e, struct tcmd *t, uint16_t lun, uint8_t rt, uint16_t start, uint16_t alloc,
                       uint8_t *b)
{
    uint8_t c[10] = { 0x46, rt, 0, 0, 0, 0, 0, 0, 0, 0 };

    put_be16(&c[2], start);
    put_be16(&c[7], alloc);
    run_in(e, t, lun, c, 10, b, 512);
}

static void test_get_configuration(void)
{
    static const uint16_t all[] = { 0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e, 0x001f, 0x0100, 0x0105 };
    struct blk_drive *cd, *dvd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[512], full[512];
    uint16_t codes[16];
    bool cur[16];
    unsigned k;
    struct tcmd t;

    get_config(e, &t, CD_LUN, 0, 0, 512, b);
    check_good(&t);
    CHECK_EQ(get_be32(b), t.c.xfer_len - 4);
    CHECK_EQ(get_be16(&b[6]), 0x0008);          /* CD-ROM */
    k = features(b, t.c.xfer_len, codes, cur);
    CHECK_EQ(k, 9);
    for (unsigned i = 0; i < k && i < 9; i++)
        CHECK_EQ(codes[i], all[i]);
    CHECK(cur[0] && cur[1] && cur[2] && cur[3] && cur[4] && cur[5] && !cur[6] && cur[7] && cur[8]);
    /* profile list: DVD-ROM then CD-ROM, the CD current */
    CHECK_EQ(b[11], 8);
    CHECK_EQ(get_be16(&b[12]), 0x0010);
    CHECK_EQ(b[14], 0);
    CHECK_EQ(get_be16(&b[16]), 0x0008);
    CHECK_EQ(b[18], 1);
    /* core: SCSI, DBE; removable medium: tray, load, eject, lock */
    CHECK_EQ(get_be32(&b[24]), 1);
    CHECK_EQ(b[28], 0x01);
    CHECK_EQ(get_be16(&b[40]), 0x0003);
    CHECK_EQ(b[44], 0x39);
    /* random readable: 2048-byte blocks, blocking 1 */
    CHECK_EQ(get_be16(&b[48]), 0x0010);
    CHECK_EQ(get_be32(&b[52]), 2048);
    CHECK_EQ(get_be16(&b[56]), 1);
    memcpy(full, b, t.c.xfer_len);
    {
        size_t total = t.c.xfer_len;

        for (unsigned a = 0; a <= total + 1; a += 3) {
            get_config(e, &t, CD_LUN, 0, 0, (uint16_t)a, b);
            CHECK_EQ(t.c.xfer_len, a < total ? a : total);
            CHECK_MEM(b, full, t.c.xfer_len);
        }
    }
    /* RT 01b: current only; from 0010h on */
    get_config(e, &t, CD_LUN, 1, 0x0010, 512, b);
    k = features(b, t.c.xfer_len, codes, cur);
    CHECK_EQ(k, 4);
    CHECK_EQ(codes[0], 0x0010);
    CHECK_EQ(codes[1], 0x001e);
    CHECK_EQ(codes[2], 0x0100);
    CHECK_EQ(codes[3], 0x0105);
    /* RT 10b: that one feature, current or not; an unknown one: the header */
    get_config(e, &t, CD_LUN, 2, 0x001f, 512, b);
    k = features(b, t.c.xfer_len, codes, cur);
    CHECK_EQ(k, 1);
    CHECK_EQ(codes[0], 0x001f);
    CHECK(!cur[0]);
    get_config(e, &t, CD_LUN, 2, 0x0020, 512, b);
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(get_be32(b), 4);
    get_config(e, &t, CD_LUN, 3, 0, 512, b);
    check_field(&t, 1, 1);

    /* no medium: no current profile, medium features not current */
    get_config(e, &t, EMPTY_LUN, 0, 0, 512, b);
    check_good(&t);
    CHECK_EQ(get_be16(&b[6]), 0);
    CHECK_EQ(b[14], 0);
    CHECK_EQ(b[18], 0);
    get_config(e, &t, EMPTY_LUN, 1, 0, 512, b);
    k = features(b, t.c.xfer_len, codes, cur);
    CHECK_EQ(k, 6);
    CHECK_EQ(codes[4], 0x0100);

    /* an image larger than an 80-minute CD is a DVD-ROM (its size only: the
     * fake keeps a small buffer) */
    {
        struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, CD_LUN);
        char err[128];

        dvd = fake_drive_new(BLK);
        dvd->size = 4700000000ull;
        CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
        CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), 0);
        CHECK_EQ(scsi_lun_insert_medium(lu, dvd, err, sizeof(err)), 0);
        CHECK_EQ(scsi_lun_close_tray(lu), 0);
        t_clear_ua(e, 0, CD_LUN);
        get_config(e, &t, CD_LUN, 0, 0, 512, b);
        CHECK_EQ(get_be16(&b[6]), 0x0010);
        CHECK_EQ(b[14], 1);
        CHECK_EQ(b[18], 0);
        CHECK_EQ(get_be16(&b[56]), 16);         /* ECC block */
        k = features(b, t.c.xfer_len, codes, cur);
        CHECK(!cur[5] && cur[6]);
        /* the full TOC is a CD thing */
        read_toc(e, &t, CD_LUN, true, 2, 0, 256, b);
        check_field(&t, 2, 3);
        read_toc(e, &t, CD_LUN, true, 0, 0, 256, b);
        check_good(&t);
        CHECK_EQ(b[17], 0xff);                  /* beyond 255:59:74 */
        CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
        CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), 0);
        fake_drive_free(dvd);
    }
    t_env_free(e);
    fake_drive_free(cd);
}

static void gesn(struct t_env *e, struct tcmd *t, uint16_t lun, uint8_t classes, uint16_t alloc, uint8_t *b)
{
    uint8_t c[10] = { 0x4a, 0x01, 0, 0, classes, 0, 0, 0, 0, 0 };

    put_be16(&c[7], alloc);
    run_in(e, t, lun, c, 10, b, 64);
}

/* The media event GESN reports now (and clears), and the media status. */
static int media_event(struct t_env *e, uint16_t lun, uint8_t *status)
{
    uint8_t b[64];
    struct tcmd t;

    gesn(e, &t, lun, 0x10, 8, b);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(get_be16(b), 4);
    CHECK_EQ(b[2], 0x04);                       /* media class, NEA=0 */
    *status = b[5];
    return b[4];
}

static void test_gesn(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, CD_LUN);
    uint8_t b[512], st;
    struct tcmd t;

    /* polled only */
    {
        uint8_t c[10] = { 0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0 };

        run_in(e, &t, CD_LUN, c, 10, b, 8);
        check_field(&t, 1, 0);
    }
    /* no supported class asked for: NEA, the header only */
    gesn(e, &t, CD_LUN, 0x08, 8, b);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 4);
    CHECK_EQ(get_be16(b), 0);
    CHECK_EQ(b[2], 0x80);
    CHECK_EQ(b[3], 0x16);                       /* operational change, power, media */
    /* operational change and power management: NoChg */
    gesn(e, &t, CD_LUN, 0x02, 8, b);
    CHECK_EQ(b[2], 1);
    CHECK_EQ(b[4], 0);
    CHECK_EQ(b[5], 0);
    gesn(e, &t, CD_LUN, 0x04, 8, b);
    CHECK_EQ(b[2], 2);
    CHECK_EQ(b[5], 0x01);                       /* active */
    CHECK_EQ(media_event(e, CD_LUN, &st), 0);
    CHECK_EQ(st, 0x02);                         /* media present, door closed */
    CHECK_EQ(media_event(e, EMPTY_LUN, &st), 0);
    CHECK_EQ(st, 0x00);
    /* the lowest class asked for, unless media has an event */
    gesn(e, &t, CD_LUN, 0x16, 8, b);
    CHECK_EQ(b[2], 1);
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    gesn(e, &t, CD_LUN, 0x16, 8, b);
    CHECK_EQ(b[2], 4);
    CHECK_EQ(b[4], 3);                          /* MEDIA REMOVAL */
    CHECK_EQ(b[5], 0x01);                       /* door open, no medium present */
    /* an allocation length without room for the descriptor keeps the event */
    CHECK_EQ(scsi_lun_close_tray(lu), 0);
    gesn(e, &t, CD_LUN, 0x10, 4, b);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 4);
    CHECK_EQ(get_be16(b), 4);
    /* GESN and GET CONFIGURATION are answered despite the UA (MMC-6 4.1.6.1) */
    CHECK_EQ(media_event(e, CD_LUN, &st), 2);   /* NEW MEDIA */
    CHECK_EQ(st, 0x02);
    CHECK_EQ(media_event(e, CD_LUN, &st), 0);   /* one event per command */
    get_config(e, &t, CD_LUN, 0, 0, 8, b);
    check_good(&t);
    t_run(e, &t, CD_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x28, 0);
    t_run(e, &t, CD_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_env_free(e);
    fake_drive_free(cd);
}

static void ssu(struct t_env *e, struct tcmd *t, uint16_t lun, uint8_t b4, uint32_t nexus)
{
    uint8_t c[6] = { 0x1b, 0, 0, 0, b4, 0 };

    tcmd_init(t, 0, lun, c, 6, SCSI_DIR_NONE, NULL, 0);
    t->c.nexus = nexus;
    tcmd_run(e, t);
}

static void prevent(struct t_env *e, struct tcmd *t, uint16_t lun, uint8_t b4, uint32_t nexus)
{
    uint8_t c[6] = { 0x1e, 0, 0, 0, b4, 0 };

    tcmd_init(t, 0, lun, c, 6, SCSI_DIR_NONE, NULL, 0);
    t->c.nexus = nexus;
    tcmd_run(e, t);
}

static void tur_nexus(struct t_env *e, struct tcmd *t, uint16_t lun, uint32_t nexus)
{
    tcmd_init(t, 0, lun, tur, 6, SCSI_DIR_NONE, NULL, 0);
    t->c.nexus = nexus;
    tcmd_run(e, t);
}

static void test_tray_guest(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, CD_LUN);
    struct scsi_medium_state ms;
    uint8_t st, b[64];
    struct tcmd t;

    t_clear_ua_nexus(e, 0, CD_LUN, 1);
    /* eject: the tray opens, the medium stays in it */
    ssu(e, &t, CD_LUN, 0x02, 0);
    check_good(&t);
    CHECK_EQ(tray1.calls, 1);
    CHECK(tray1.last);
    scsi_lun_get_medium(lu, &ms);
    CHECK(ms.tray_open);
    CHECK(ms.has_medium);
    CHECK(ms.drive == cd);
    t_run(e, &t, CD_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x3a, 0x02);             /* MEDIUM NOT PRESENT - TRAY OPEN */
    CHECK_EQ(media_event(e, CD_LUN, &st), 3);
    CHECK_EQ(st, 0x01);
    /* eject again: nothing moves */
    ssu(e, &t, CD_LUN, 0x02, 0);
    check_good(&t);
    CHECK_EQ(tray1.calls, 1);
    /* MECHANISM STATUS shows the open door */
    {
        uint8_t c[12] = { 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0 };

        run_in(e, &t, CD_LUN, c, 12, b, 64);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 8);
        CHECK_EQ(b[1], 0x10);
        CHECK_EQ(b[5], 0);
        CHECK_EQ(get_be16(&b[6]), 0);
    }
    /* load: accessible again; the loading nexus gets no UA, the other does */
    ssu(e, &t, CD_LUN, 0x03, 0);
    check_good(&t);
    CHECK_EQ(tray1.calls, 2);
    CHECK(!tray1.last);
    tur_nexus(e, &t, CD_LUN, 0);
    check_good(&t);
    tur_nexus(e, &t, CD_LUN, 1);
    check_sense(&t, 6, 0x28, 0);
    tur_nexus(e, &t, CD_LUN, 1);
    check_good(&t);
    CHECK_EQ(media_event(e, CD_LUN, &st), 2);
    CHECK_EQ(st, 0x02);
    CHECK_EQ(e->nevents, 1);
    CHECK_EQ(e->events[0].ev, SCSI_EV_MEDIA_CHANGED);
    CHECK_EQ(e->events[0].lun, CD_LUN);

    /* locked: the eject is refused and the tray stays */
    prevent(e, &t, CD_LUN, 0x01, 1);
    check_good(&t);
    ssu(e, &t, CD_LUN, 0x02, 0);
    check_sense(&t, 5, 0x53, 0x02);
    CHECK_EQ(tray1.calls, 2);
    tur_nexus(e, &t, CD_LUN, 0);
    check_good(&t);
    /* the lock shows in mode page 2Ah */
    {
        uint8_t c[10] = { 0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64, 0 };

        run_in(e, &t, CD_LUN, c, 10, b, 64);
        check_good(&t);
        CHECK_EQ(b[8 + 6], 0x2b);
        prevent(e, &t, CD_LUN, 0x00, 1);
        run_in(e, &t, CD_LUN, c, 10, b, 64);
        CHECK_EQ(b[8 + 6], 0x29);
    }
    /* a persistent prevention keeps the host out, not the guest's eject */
    prevent(e, &t, CD_LUN, 0x03, 0);
    check_good(&t);
    gesn(e, &t, CD_LUN, 0x02, 8, b);
    CHECK_EQ(b[5], 0x80);                       /* PERSISTENT PREVENTED */
    scsi_lun_get_medium(lu, &ms);
    CHECK(ms.locked);
    CHECK_EQ(scsi_lun_open_tray(lu, false), -EBUSY);
    ssu(e, &t, CD_LUN, 0x02, 0);
    check_good(&t);
    CHECK(tray1.last);
    /* a CD-ROM closes its tray even when locked */
    prevent(e, &t, CD_LUN, 0x01, 0);
    ssu(e, &t, CD_LUN, 0x03, 0);
    check_good(&t);
    CHECK(!tray1.last);
    /* power conditions: LOEJ ignored */
    ssu(e, &t, CD_LUN, 0x12, 0);
    check_good(&t);
    CHECK(!tray1.last);
    /* an I_T nexus loss and a LU reset end the nexus' preventions */
    scsi_lun_nexus_loss(lu, 0);
    scsi_lun_get_medium(lu, &ms);
    CHECK(!ms.locked);
    t_clear_ua_nexus(e, 0, CD_LUN, 1);
    prevent(e, &t, CD_LUN, 0x01, 1);
    check_good(&t);
    scsi_lun_get_medium(lu, &ms);
    CHECK(ms.locked);
    scsi_lun_reset(lu);
    scsi_lun_get_medium(lu, &ms);
    CHECK(!ms.locked);
    /* reserved bits of START STOP UNIT and PREVENT ALLOW */
    t_clear_ua_nexus(e, 0, CD_LUN, 1);
    ssu(e, &t, CD_LUN, 0x08, 1);
    check_field(&t, 4, 3);
    prevent(e, &t, CD_LUN, 0x04, 1);
    check_field(&t, 4, 2);
    t_env_free(e);
    fake_drive_free(cd);
}

static struct blk_drive *removed_drive;
static unsigned removed_calls;

static void removed(void *opaque, struct blk_drive *d)
{
    (void)opaque;
    removed_drive = d;
    removed_calls++;
}

static void test_tray_host(void)
{
    struct blk_drive *cd, *cd2 = cd_drive(3 * BLK);
    struct t_env *e = cd_env(&cd);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, CD_LUN);
    struct scsi_medium_state ms;
    char err[128];
    uint8_t st;
    struct tcmd t;

    t_clear_ua_nexus(e, 0, CD_LUN, 1);
    /* closed tray: nothing goes in, nothing comes out */
    CHECK_EQ(scsi_lun_insert_medium(lu, cd2, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "closed") != NULL);
    CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), -EINVAL);
    CHECK_EQ(scsi_lun_close_tray(lu), 0);
    CHECK_EQ(tray1.calls, 0);
    /* locked by the guest: an eject request, the tray stays closed */
    prevent(e, &t, CD_LUN, 0x01, 0);
    CHECK_EQ(scsi_lun_open_tray(lu, false), -EBUSY);
    scsi_lun_get_medium(lu, &ms);
    CHECK(!ms.tray_open);
    CHECK(ms.locked);
    CHECK_EQ(tray1.calls, 0);
    CHECK_EQ(media_event(e, CD_LUN, &st), 1);   /* EJECT REQUEST */
    CHECK_EQ(st, 0x02);
    CHECK_EQ(media_event(e, CD_LUN, &st), 0);
    t_run(e, &t, CD_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* forced: opens and drops every nexus' prevention */
    prevent(e, &t, CD_LUN, 0x01, 1);
    CHECK_EQ(scsi_lun_open_tray(lu, true), 0);
    CHECK_EQ(tray1.calls, 1);
    CHECK(tray1.last);
    scsi_lun_get_medium(lu, &ms);
    CHECK(ms.tray_open);
    CHECK(!ms.locked);
    CHECK(ms.has_medium);
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(tray1.calls, 1);
    /* the guest hears of the request even when forced (QEMU does the same) */
    CHECK_EQ(media_event(e, CD_LUN, &st), 1);   /* EJECT REQUEST */
    CHECK_EQ(media_event(e, CD_LUN, &st), 3);   /* MEDIA REMOVAL */
    CHECK_EQ(st, 0x01);
    t_run(e, &t, CD_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x3a, 0x02);
    /* the tray holds a medium already */
    CHECK_EQ(scsi_lun_insert_medium(lu, cd2, err, sizeof(err)), -EEXIST);
    /* take it out: nothing uses it, done at once */
    CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), 0);
    CHECK_EQ(removed_calls, 1);
    CHECK(removed_drive == cd);
    CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), -ENOENT);
    scsi_lun_get_medium(lu, &ms);
    CHECK(!ms.has_medium);
    CHECK(ms.drive == NULL);
    /* close it empty: MEDIUM NOT PRESENT - TRAY CLOSED, no UA, no event */
    CHECK_EQ(scsi_lun_close_tray(lu), 0);
    CHECK_EQ(tray1.calls, 2);
    CHECK(!tray1.last);
    t_run(e, &t, CD_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x3a, 0x01);
    CHECK_EQ(media_event(e, CD_LUN, &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(scsi_lun_insert_medium(lu, cd2, err, sizeof(err)), -EINVAL);
    CHECK_EQ(scsi_lun_insert_medium(lu, NULL, err, sizeof(err)), -EINVAL);
    /* a new medium: UA 28/00 on every nexus, NEW MEDIA, a bus event */
    e->nevents = 0;
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(scsi_lun_insert_medium(lu, cd2, err, sizeof(err)), 0);
    CHECK_EQ(scsi_lun_close_tray(lu), 0);
    CHECK_EQ(tray1.calls, 4);
    CHECK_EQ(e->nevents, 1);
    CHECK_EQ(e->events[0].ev, SCSI_EV_MEDIA_CHANGED);
    CHECK_EQ(media_event(e, CD_LUN, &st), 2);
    CHECK_EQ(st, 0x02);
    for (uint32_t n = 0; n < 2; n++) {
        tur_nexus(e, &t, CD_LUN, n);
        check_sense(&t, 6, 0x28, 0);
        tur_nexus(e, &t, CD_LUN, n);
        check_good(&t);
    }
    {
        uint8_t c[10] = { 0x25 }, b[8];

        run_in(e, &t, CD_LUN, c, 10, b, 8);
        CHECK_EQ(get_be32(b), 2);               /* the new medium's last LBA */
    }
    /* an empty LU from the start works the same */
    {
        struct scsi_lun *lu2 = scsi_bus_find_lun(e->bus, 0, EMPTY_LUN);
        struct blk_drive *d3 = cd_drive(BLK);

        CHECK_EQ(scsi_lun_open_tray(lu2, false), 0);
        CHECK_EQ(scsi_lun_insert_medium(lu2, d3, err, sizeof(err)), 0);
        CHECK_EQ(scsi_lun_close_tray(lu2), 0);
        t_run(e, &t, EMPTY_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 6, 0x28, 0);
        t_run(e, &t, EMPTY_LUN, tur, 6, SCSI_DIR_NONE, NULL, 0);
        check_good(&t);
        CHECK_EQ(scsi_lun_open_tray(lu2, false), 0);
        CHECK_EQ(scsi_lun_remove_medium(lu2, NULL, NULL), 0);
        fake_drive_free(d3);
    }
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), 0);
    t_env_free(e);
    fake_drive_free(cd);
    fake_drive_free(cd2);
}

static void test_remove_inflight(void)
{
    struct blk_drive *cd, *cd2 = cd_drive(2 * BLK);
    struct t_env *e = cd_env(&cd);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, CD_LUN);
    static uint8_t b1[2 * BLK], b2[BLK];
    uint8_t c[10];
    char err[128];
    struct tcmd r1, r2;

    removed_calls = 0;
    removed_drive = NULL;
    /* a READ in flight on the first medium */
    cdb10(c, 0x28, 3, 2);
    tcmd_init(&r1, 0, CD_LUN, c, 10, SCSI_DIR_FROM_DEV, b1, sizeof(b1));
    tcmd_submit(e, &r1);
    CHECK_EQ(r1.done, 0);
    CHECK_EQ(scsi_lun_open_tray(lu, true), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), 0);
    CHECK_EQ(removed_calls, 0);                 /* the READ still uses it */
    CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), -EBUSY);
    CHECK_EQ(scsi_lun_insert_medium(lu, cd2, err, sizeof(err)), -EBUSY);
    /* new commands see no medium at once */
    cdb10(c, 0x28, 0, 1);
    t_run(e, &r2, CD_LUN, c, 10, SCSI_DIR_FROM_DEV, b2, sizeof(b2));
    check_sense(&r2, 2, 0x3a, 0x02);
    CHECK_EQ(r1.done, 0);
    /* the READ completes on the old medium; then the removal is done */
    fake_ctx_run(e->ctx, 0);
    check_good(&r1);
    CHECK_EQ(b1[0], 4);
    CHECK_EQ(b1[BLK], 5);
    CHECK_EQ(removed_calls, 1);
    CHECK(removed_drive == cd);
    CHECK_EQ(scsi_lun_insert_medium(lu, cd2, err, sizeof(err)), 0);
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), 0);
    t_env_free(e);
    fake_drive_free(cd);
    fake_drive_free(cd2);
}

static void test_dvd_structure(void)
{
    struct blk_drive *cd, *dvd = fake_drive_new(BLK);
    struct t_env *e = cd_env(&cd);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, CD_LUN);
    static uint8_t b[4096];
    uint8_t c[12];
    char err[128];
    struct tcmd t;

    memset(c, 0, sizeof(c));
    c[0] = 0xad;
    put_be16(&c[8], 4096);
    /* a CD medium has no DVD structures */
    t_run(e, &t, CD_LUN, c, 12, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x30, 0x02);
    c[7] = 0x01;
    t_run(e, &t, CD_LUN, c, 12, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x30, 0x02);
    /* no medium */
    c[7] = 0x00;
    t_run(e, &t, EMPTY_LUN, c, 12, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 2, 0x3a, 0x01);
    /* the list needs none */
    c[7] = 0xff;
    run_in(e, &t, EMPTY_LUN, c, 12, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 12);
    CHECK_EQ(get_be16(b), 10);
    CHECK_EQ(b[4], 0x00);
    CHECK_EQ(b[5], 0x40);
    CHECK_EQ(get_be16(&b[6]), 2052);
    CHECK_EQ(b[8], 0xff);
    /* media type other than DVD */
    c[1] = 0x01;
    run_in(e, &t, EMPTY_LUN, c, 12, b, sizeof(b));
    check_field(&t, 1, 3);
    c[1] = 0;
    /* a DVD: physical format information */
    dvd->size = 1000000000ull;
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), 0);
    CHECK_EQ(scsi_lun_insert_medium(lu, dvd, err, sizeof(err)), 0);
    CHECK_EQ(scsi_lun_close_tray(lu), 0);
    t_clear_ua(e, 0, CD_LUN);
    c[7] = 0x00;
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 2052);
    CHECK_EQ(get_be16(b), 2050);
    CHECK_EQ(b[4], 0x01);
    CHECK_EQ(b[6], 0x01);
    CHECK_EQ(get_be32(&b[8]), 0x030000);
    CHECK_EQ(get_be32(&b[12]), 0x030000 + 1000000000 / 2048 - 1);
    CHECK_EQ(b[2052], 0xcc);
    put_be16(&c[8], 8);
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    CHECK_EQ(t.c.xfer_len, 8);
    put_be16(&c[8], 4096);
    c[6] = 1;
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_field(&t, 6, 7);
    c[6] = 0;
    c[7] = 0x04;
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_field(&t, 7, 7);
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu, NULL, NULL), 0);
    t_env_free(e);
    fake_drive_free(cd);
    fake_drive_free(dvd);
}

static void test_mode_pages(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[512], page[64], c[10];
    struct tcmd t;

    /* MODE SENSE(10) 2Ah: no block descriptor even with DBD=0 */
    memset(c, 0, sizeof(c));
    c[0] = 0x5a;
    c[2] = 0x2a;
    c[8] = 255;
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8 + 22);
    CHECK_EQ(get_be16(b), 6 + 22);
    CHECK_EQ(b[3], 0);                          /* no device-specific parameter */
    CHECK_EQ(get_be16(&b[6]), 0);
    CHECK_EQ(b[8], 0x2a);
    CHECK_EQ(b[9], 0x14);
    CHECK_EQ(b[10], 0x08);                      /* DVD-ROM read */
    CHECK_EQ(b[11], 0x00);                      /* no write */
    CHECK_EQ(b[14], 0x29);                      /* tray, eject, lock; unlocked */
    CHECK_EQ(get_be16(&b[16]), 8800);
    memcpy(page, &b[8], 22);
    /* changeable: nothing */
    c[2] = 0x6a;
    run_in(e, &t, CD_LUN, c, 10, b, sizeof(b));
    check_good(&t);
    for (int i = 10; i < 30; i++)
        CHECK_EQ(b[i], 0);
    /* MODE SENSE(6) all pages, ascending */
    {
        uint8_t c6[6] = { 0x1a, 0, 0x3f, 0, 255, 0 };
        static const uint8_t codes[] = { 0x01, 0x1a, 0x1d, 0x2a };
        size_t o = 4;

        run_in(e, &t, CD_LUN, c6, 6, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(b[3], 0);
        for (size_t i = 0; i < sizeof(codes); i++) {
            CHECK_EQ(b[o], codes[i]);
            o += 2u + b[o + 1];
        }
        CHECK_EQ(t.c.xfer_len, o);
        CHECK_EQ(b[0], o - 1);
        c6[4] = 10;
        run_in(e, &t, CD_LUN, c6, 6, b, sizeof(b));
        CHECK_EQ(t.c.xfer_len, 10);
        /* disk pages are not here */
        c6[2] = 0x08;
        c6[4] = 255;
        run_in(e, &t, CD_LUN, c6, 6, b, sizeof(b));
        check_field(&t, 2, 5);
        c6[2] = 0x0a;
        run_in(e, &t, CD_LUN, c6, 6, b, sizeof(b));
        check_field(&t, 2, 5);
    }
    /* MODE SELECT(10) of the page as read: accepted; a changed bit: refused */
    {
        uint8_t ms[10] = { 0x55, 0x10, 0, 0, 0, 0, 0, 0, 30, 0 }, p[30];

        memset(p, 0, 8);
        memcpy(&p[8], page, 22);
        t_run(e, &t, CD_LUN, ms, 10, SCSI_DIR_TO_DEV, p, 30);
        check_good(&t);
        p[8 + 6] |= 0x02;
        t_run(e, &t, CD_LUN, ms, 10, SCSI_DIR_TO_DEV, p, 30);
        check_sense(&t, 5, 0x26, 0);
    }
    /* MODE SELECT(6) with a block descriptor (Linux sr_set_blocklength): 2048 only */
    {
        uint8_t ms[6] = { 0x15, 0x10, 0, 0, 12, 0 }, p[12];

        memset(p, 0, sizeof(p));
        p[3] = 8;
        p[4] = 0x83;                            /* density code */
        put_be16(&p[10], 2048);
        t_run(e, &t, CD_LUN, ms, 6, SCSI_DIR_TO_DEV, p, 12);
        check_good(&t);
        put_be16(&p[10], 512);
        t_run(e, &t, CD_LUN, ms, 6, SCSI_DIR_TO_DEV, p, 12);
        check_sense(&t, 5, 0x26, 0);
    }
    t_env_free(e);
    fake_drive_free(cd);
}

static void test_get_performance(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    uint8_t b[256], c[12];
    struct tcmd t;

    memset(c, 0, sizeof(c));
    c[0] = 0xac;
    c[1] = 0x10;                                /* tolerance 10b, read, nominal */
    put_be16(&c[8], 4);
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 24);
    CHECK_EQ(get_be32(b), 20);
    CHECK_EQ(b[4], 0);
    CHECK_EQ(get_be32(&b[8]), 0);
    CHECK_EQ(get_be32(&b[12]), 8800);
    CHECK_EQ(get_be32(&b[16]), 4);
    CHECK_EQ(get_be32(&b[20]), 8800);
    /* no descriptors asked for: the header */
    put_be16(&c[8], 0);
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8);
    /* exceptions only: none */
    put_be16(&c[8], 4);
    c[1] = 0x11;
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(b[4], 0x01);
    c[1] = 0x13;
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_field(&t, 1, 1);
    c[1] = 0x10;
    put_be32(&c[2], 5);
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_sense(&t, 5, 0x21, 0);
    put_be32(&c[2], 0);
    run_in(e, &t, EMPTY_LUN, c, 12, b, sizeof(b));
    check_sense(&t, 2, 0x3a, 0x01);
    /* write speeds: none */
    c[10] = 0x03;
    c[1] = 0;
    run_in(e, &t, EMPTY_LUN, c, 12, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(get_be32(b), 4);
    c[10] = 0x01;
    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_field(&t, 10, 7);
    t_env_free(e);
    fake_drive_free(cd);
}

static void test_report_opcodes(void)
{
    struct blk_drive *cd;
    struct t_env *e = cd_env(&cd);
    static uint8_t b[4096];
    uint8_t c[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 };
    bool seen[256] = { false };
    struct tcmd t;

    run_in(e, &t, CD_LUN, c, 12, b, sizeof(b));
    check_good(&t);
    for (size_t o = 4; o + 8 <= 4 + get_be32(b); o += 8)
        seen[b[o]] = true;
    CHECK(seen[0x00] && seen[0x28] && seen[0xa8] && seen[0x43] && seen[0x46] && seen[0x4a] && seen[0x51] &&
          seen[0x52] && seen[0xad] && seen[0xbd] && seen[0xac] && seen[0xbb] && seen[0x1b] && seen[0x1e]);
    CHECK(!seen[0x08] && !seen[0x0a] && !seen[0x2a] && !seen[0xaa] && !seen[0x2e] && !seen[0x42]);
    /* one opcode: WRITE(10) is not supported, READ TOC is with its usage data */
    {
        uint8_t one[12] = { 0xa3, 0x0c, 1, 0x2a, 0, 0, 0, 0, 0, 64, 0, 0 };

        run_in(e, &t, CD_LUN, one, 12, b, 64);
        check_good(&t);
        CHECK_EQ(b[1] & 0x07, 1);
        one[3] = 0x43;
        run_in(e, &t, CD_LUN, one, 12, b, 64);
        CHECK_EQ(b[1] & 0x07, 3);
        CHECK_EQ(get_be16(&b[2]), 10);
        CHECK_EQ(b[4], 0x43);
        CHECK_EQ(b[6], 0x0f);
    }
    /* PREVENT with PERSISTENT: an MMC field, reserved for a disk */
    prevent(e, &t, CD_LUN, 0x02, 0);
    check_good(&t);
    prevent(e, &t, 0, 0x02, 0);
    check_field(&t, 4, 1);
    t_env_free(e);
    fake_drive_free(cd);
}

/* A removable disk that starts empty: nothing touches a missing drive. */
static void test_empty_removable_disk(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config hd = { .type = SCSI_DEV_HD, .removable = true, .tray_cb = tray_cb, .tray_opaque = &tray1 };
    struct blk_drive *d = fake_drive_new(MiB);
    struct scsi_lun *lu;
    static uint8_t b[4096];
    char err[128];
    struct tcmd t;

    d->discard = d->discard_zeroes = true;
    memset(&tray1, 0, sizeof(tray1));
    CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 1, &hd, NULL, err, sizeof(err)), 0);
    lu = scsi_bus_find_lun(e->bus, 0, 1);
    t_clear_ua(e, 0, 1);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x3a, 0x01);
    {
        static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2 };

        for (size_t i = 0; i < sizeof(pages); i++) {
            uint8_t c[6] = { 0x12, 1, pages[i], 0, 255, 0 };

            run_in(e, &t, 1, c, 6, b, 255);
            check_good(&t);
        }
    }
    {
        uint8_t c[6] = { 0x1a, 0, 0x3f, 0, 255, 0 }, c10[10] = { 0x5a, 0, 0x08, 0, 0, 0, 0, 0, 255, 0 };

        run_in(e, &t, 1, c, 6, b, 255);
        check_good(&t);
        CHECK_EQ(get_be32(&b[4]), 0);           /* no blocks */
        run_in(e, &t, 1, c10, 10, b, 255);
        check_good(&t);
        CHECK_EQ(b[8 + 2] & 0x04, 0);           /* no write cache without a medium */
        /* turning it on needs the medium */
        {
            uint8_t ms[10] = { 0x55, 0x10, 0, 0, 0, 0, 0, 0, 28, 0 }, p[28];

            memset(p, 0, sizeof(p));
            p[8] = 0x08;
            p[9] = 18;
            p[10] = 0x04;
            t_run(e, &t, 1, ms, 10, SCSI_DIR_TO_DEV, p, 28);
            check_sense(&t, 2, 0x3a, 0x01);
        }
    }
    {
        uint8_t rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };
        uint8_t un[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 }, p[24];
        uint8_t rsoc[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 };
        uint8_t san[10] = { 0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0 };

        run_in(e, &t, 1, rc16, 16, b, 32);
        check_sense(&t, 2, 0x3a, 0x01);
        memset(p, 0, sizeof(p));
        put_be16(&p[2], 16);
        p[19] = 1;
        t_run(e, &t, 1, un, 10, SCSI_DIR_TO_DEV, p, 24);
        check_sense(&t, 2, 0x3a, 0x01);
        t_run(e, &t, 1, san, 10, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 2, 0x3a, 0x01);
        run_in(e, &t, 1, rsoc, 12, b, sizeof(b));
        check_good(&t);
    }
    /* load a medium: the guest's START STOP only closes the empty tray */
    ssu(e, &t, 1, 0x03, 0);
    check_good(&t);
    CHECK_EQ(tray1.calls, 0);
    CHECK_EQ(scsi_lun_open_tray(lu, false), 0);
    CHECK_EQ(scsi_lun_insert_medium(lu, d, err, sizeof(err)), 0);
    ssu(e, &t, 1, 0x03, 0);
    check_good(&t);
    CHECK_EQ(tray1.calls, 2);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);                             /* the nexus that loaded it */
    {
        uint8_t w[10] = { 0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0 };

        memset(b, 0x5a, 512);
        t_run(e, &t, 1, w, 10, SCSI_DIR_TO_DEV, b, 512);
        check_good(&t);
        CHECK_EQ(d->data[512], 0x5a);
        /* a write in flight holds the medium through a forced open and removal */
        tcmd_init(&t, 0, 1, w, 10, SCSI_DIR_TO_DEV, b, 512);
        tcmd_submit(e, &t);
        removed_calls = 0;
        CHECK_EQ(scsi_lun_open_tray(lu, true), 0);
        CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), 0);
        CHECK_EQ(removed_calls, 0);
        fake_ctx_run(e->ctx, 0);
        check_good(&t);
        CHECK_EQ(removed_calls, 1);
        CHECK(removed_drive == d);
    }
    /* a disk refuses any tray movement while prevented (libiscsi PreventAllow.Eject) */
    prevent(e, &t, 1, 0x01, 0);
    ssu(e, &t, 1, 0x03, 0);
    check_sense(&t, 5, 0x53, 0x02);
    prevent(e, &t, 1, 0x00, 0);
    t_env_free(e);
    fake_drive_free(d);
}

/* A SANITIZE running on after its command (IMMED) holds the medium too. */
static void test_remove_during_sanitize(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config hd = { .type = SCSI_DEV_HD, .removable = true };
    struct blk_drive *d = t_add_lun(e, 0, 1, &hd, 4 * MiB);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, 1);
    uint8_t c[10] = { 0x48, 0x80 | 0x01, 0, 0, 0, 0, 0, 0, 8, 0 }, p[8] = { 0x01, 0, 0, 4, 1, 2, 3, 4 };
    struct tcmd t;

    t_clear_ua(e, 0, 1);
    t_run(e, &t, 1, c, 10, SCSI_DIR_TO_DEV, p, 8);
    check_good(&t);
    CHECK(lu->sanitize != NULL);
    removed_calls = 0;
    CHECK_EQ(scsi_lun_open_tray(lu, true), 0);
    CHECK_EQ(scsi_lun_remove_medium(lu, removed, NULL), 0);
    CHECK_EQ(removed_calls, 0);
    fake_ctx_run(e->ctx, 0);
    CHECK(lu->sanitize == NULL);
    CHECK_EQ(removed_calls, 1);
    CHECK(removed_drive == d);
    CHECK_EQ(d->data[0], 1);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_config);
    RUN_TEST(test_inquiry);
    RUN_TEST(test_capacity_read);
    RUN_TEST(test_writes_refused);
    RUN_TEST(test_read_toc);
    RUN_TEST(test_disc_track_info);
    RUN_TEST(test_get_configuration);
    RUN_TEST(test_gesn);
    RUN_TEST(test_tray_guest);
    RUN_TEST(test_tray_host);
    RUN_TEST(test_remove_inflight);
    RUN_TEST(test_dvd_structure);
    RUN_TEST(test_mode_pages);
    RUN_TEST(test_get_performance);
    RUN_TEST(test_report_opcodes);
    RUN_TEST(test_empty_removable_disk);
    RUN_TEST(test_remove_during_sanitize);
    return test_exit();
}

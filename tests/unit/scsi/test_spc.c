/* SPC-4 commands: INQUIRY and VPD pages (truncation), absent LUNs, REPORT
 * LUNS, REQUEST SENSE, MODE SENSE/SELECT, REPORT SUPPORTED OPERATION CODES,
 * unknown opcodes and reserved bits. */
#include <errno.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

static size_t inquiry(struct t_env *e, uint16_t lun, bool evpd, uint8_t page, uint16_t alloc, uint8_t *buf,
                      struct tcmd *t)
{
    uint8_t cdb[6] = { 0x12, evpd, page, (uint8_t)(alloc >> 8), (uint8_t)alloc, 0 };

    memset(buf, 0xcc, 1024);
    t_run(e, t, lun, cdb, 6, SCSI_DIR_FROM_DEV, buf, 1024);
    return t->c.xfer_len;
}

static void test_inquiry_standard(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, false);
    uint8_t b[1024], full[96];
    struct tcmd t;

    CHECK_EQ(inquiry(e, 0, false, 0, 1024, b, &t), 96);
    check_good(&t);
    CHECK_EQ(b[0], 0x00);
    CHECK_EQ(b[1], 0x00);                       /* not removable */
    CHECK_EQ(b[2], 0x06);
    CHECK_EQ(b[3], 0x12);                       /* HISUP, format 2 */
    CHECK_EQ(b[4], 91);
    CHECK_EQ(b[7] & 0x02, 0x02);                /* CMDQUE */
    CHECK_MEM(&b[8], "VSCSI   ", 8);
    CHECK_MEM(&b[16], "VSCSI HARDDISK  ", 16);
    CHECK_MEM(&b[32], "0.1 ", 4);
    CHECK_EQ(b[58], 0x00);
    CHECK_EQ(b[59], 0xa0);                      /* SAM-5 */
    CHECK_EQ(b[60], 0x04);
    CHECK_EQ(b[61], 0x60);                      /* SPC-4 */
    CHECK_EQ(b[62], 0x04);
    CHECK_EQ(b[63], 0xc0);                      /* SBC-3 */
    CHECK_EQ(b[96], 0xcc);                      /* nothing beyond */
    memcpy(full, b, 96);

    /* truncation must be exact, for every allocation length */
    for (unsigned a = 0; a <= 100; a++) {
        size_t n = inquiry(e, 0, false, 0, (uint16_t)a, b, &t);

        check_good(&t);
        CHECK_EQ(n, a < 96 ? a : 96);
        CHECK_MEM(b, full, n);
        CHECK_EQ(b[n], 0xcc);
    }
    /* a buffer shorter than the allocation length: what fits, no overrun */
    {
        uint8_t cdb[6] = { 0x12, 0, 0, 0, 255, 0 };

        memset(b, 0xcc, sizeof(b));
        t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, 36);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 36);
        CHECK_MEM(b, full, 36);
    }
    /* EVPD=0 with a page code: 05/24/00 pointing at byte 2 */
    {
        uint8_t cdb[6] = { 0x12, 0, 0x80, 0, 255, 0 };

        t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, 255);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xc00002 | 0x0f0000);
        CHECK_EQ(t.c.xfer_len, 0);
    }
    /* CMDDT (obsolete) set: invalid field, byte 1 bit 1 */
    {
        uint8_t cdb[6] = { 0x12, 0x02, 0, 0, 255, 0 };

        t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, 255);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xc90001);
    }
    /* NACA in the control byte is not supported */
    {
        uint8_t cdb[6] = { 0x12, 0, 0, 0, 255, 0x04 };

        t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, 255);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xca0005);
    }
    t_env_free(e);
}

static void test_inquiry_config(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, false);
    struct scsi_dev_config cfg = {
        .type = SCSI_DEV_HD, .id = "d1", .serial = "SER123", .vendor = "ACME", .product = "Disk",
        .version = "1.2", .wwn = 0x5000c50012345678ull, .removable = true,
        .logical_block_size = 4096, .physical_block_size = 4096,
    };
    uint8_t b[1024];
    struct tcmd t;

    CHECK(t_add_lun(e, 0, 1, &cfg, 64 * MiB) != NULL);
    /* INQUIRY does not consume the power-on UA */
    CHECK_EQ(inquiry(e, 1, false, 0, 96, b, &t), 96);
    check_good(&t);
    CHECK_EQ(b[1], 0x80);                       /* RMB */
    CHECK_MEM(&b[8], "ACME    ", 8);
    CHECK_MEM(&b[16], "Disk            ", 16);
    CHECK_MEM(&b[32], "1.2 ", 4);

    CHECK_EQ(inquiry(e, 1, true, 0x80, 255, b, &t), 4 + 6);
    CHECK_EQ(b[1], 0x80);
    CHECK_EQ(b[3], 6);
    CHECK_MEM(&b[4], "SER123", 6);

    CHECK_EQ(inquiry(e, 1, true, 0x83, 255, b, &t), 4 + 28 + 8 + 12 + 4 + 8 + 6);
    CHECK_EQ(b[3], 28 + 8 + 12 + 18);
    /* the target port of the I_T nexus (0): name and relative port 1 */
    CHECK_EQ(b[4], 0x03);                       /* UTF-8 */
    CHECK_EQ(b[5], 0x18);                       /* target port, SCSI name string */
    CHECK_EQ(b[7], 24);
    CHECK_MEM(&b[8], "naa.3056535400000000\0\0\0\0", 24);
    CHECK_EQ(b[32], 0x01);
    CHECK_EQ(b[33], 0x14);                      /* relative target port */
    CHECK_EQ(b[35], 4);
    CHECK_EQ(get_be16(&b[38]), 1);
    /* the LU */
    CHECK_EQ(b[40], 0x01);                      /* binary */
    CHECK_EQ(b[41], 0x03);                      /* LU, NAA */
    CHECK_EQ(b[43], 8);
    CHECK_EQ(b[44], 0x50);
    CHECK_EQ(b[51], 0x78);
    CHECK_EQ(b[52], 0x02);                      /* ASCII */
    CHECK_EQ(b[53], 0x01);                      /* T10 vendor id */
    CHECK_EQ(b[55], 14);
    CHECK_MEM(&b[56], "ACME    SER123", 14);
    /* another nexus, another port; the same LU designators */
    {
        uint8_t cdb[6] = { 0x12, 1, 0x83, 0, 255, 0 }, b2[255];

        tcmd_init(&t, 0, 1, cdb, 6, SCSI_DIR_FROM_DEV, b2, sizeof(b2));
        t.c.nexus = 5;
        tcmd_run(e, &t);
        check_good(&t);
        CHECK_MEM(&b2[8], "naa.3056535400000005", 20);
        CHECK_EQ(get_be16(&b2[38]), 6);
        CHECK_MEM(&b2[40], &b[40], 30);
    }

    /* bad configurations are refused with a message */
    {
        struct scsi_dev_config bad = { .type = SCSI_DEV_HD, .logical_block_size = 1024 };
        struct blk_drive *d = fake_drive_new(MiB);
        char err[128] = "";

        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &bad, d, err, sizeof(err)), -EINVAL);
        CHECK(err[0] != 0);
        bad.logical_block_size = 512;
        bad.physical_block_size = 1536;
        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &bad, d, err, sizeof(err)), -EINVAL);
        bad.physical_block_size = 0;
        bad.vendor = "TOO LONG VENDOR";
        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &bad, d, err, sizeof(err)), -EINVAL);
        bad.vendor = "BAD\x01";
        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &bad, d, err, sizeof(err)), -EINVAL);
        bad.vendor = NULL;
        bad.wwn = 0x6000c50012345678ull;
        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 2, &bad, d, err, sizeof(err)), -EINVAL);
        bad.wwn = 0;
        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 1, &bad, d, err, sizeof(err)), -EEXIST);
        CHECK_EQ(scsi_bus_add_lun(e->bus, 0, 16384, &bad, d, err, sizeof(err)), -EINVAL);
        fake_drive_free(d);
    }
    t_env_free(e);
}

/* Every VPD page: alloc 4 gives the header with the full PAGE LENGTH, the
 * full answer matches it, odd lengths truncate exactly. */
static void test_vpd_pages(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, true);
    uint8_t b[1024], full[1024];
    struct tcmd t;
    size_t n, len;

    n = inquiry(e, 0, true, 0x00, 255, b, &t);
    check_good(&t);
    CHECK_EQ(n, 4 + 7);
    {
        static const uint8_t want[] = { 0, 0, 0, 7, 0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2 };

        CHECK_MEM(b, want, sizeof(want));
    }
    for (unsigned i = 4; i < n; i++) {
        uint8_t page = b[i];

        CHECK_EQ(inquiry(e, 0, true, page, 4, full, &t), 4);
        check_good(&t);
        CHECK_EQ(full[1], page);
        len = 4u + (full[2] << 8 | full[3]);
        CHECK_EQ(inquiry(e, 0, true, page, 255, full, &t), len);
        for (unsigned a = 0; a < len + 3; a += 3) {
            uint8_t c[1024];

            CHECK_EQ(inquiry(e, 0, true, page, (uint16_t)a, c, &t), a < len ? a : len);
            CHECK_MEM(c, full, a < len ? a : len);
        }
    }
    /* B0 block limits: honest values */
    CHECK_EQ(inquiry(e, 0, true, 0xb0, 255, b, &t), 64);
    CHECK_EQ(b[3], 0x3c);
    CHECK_EQ(b[4] & 1, 0);                      /* WSNZ=0 */
    CHECK_EQ(b[8] << 24 | b[9] << 16 | b[10] << 8 | b[11], 65535);   /* virtio max_sectors */
    CHECK_EQ((uint32_t)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23], 0xffffffffu);
    CHECK_EQ(b[24] << 24 | b[25] << 16 | b[26] << 8 | b[27], 1024);
    CHECK_EQ(b[32] & 0x80, 0);                  /* UGAVALID=0 */
    CHECK_EQ((uint64_t)b[40] << 24 | b[41] << 16 | b[42] << 8 | b[43], 65535);
    /* B1: non-rotating */
    CHECK_EQ(inquiry(e, 0, true, 0xb1, 255, b, &t), 64);
    CHECK_EQ(b[4] << 8 | b[5], 1);
    /* B2 with discard: LBPU LBPWS LBPWS10 LBPRZ, thin, DP=0 */
    CHECK_EQ(inquiry(e, 0, true, 0xb2, 255, b, &t), 8);
    CHECK_EQ(b[5], 0xe4);
    CHECK_EQ(b[6], 0x02);
    /* unknown page */
    inquiry(e, 0, true, 0x89, 255, b, &t);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf0002);
    t_env_free(e);

    /* without discard: no unmap limits, fully provisioned */
    e = t_env_new(64 * MiB, 4096, false);
    CHECK_EQ(inquiry(e, 0, true, 0xb0, 255, b, &t), 64);
    CHECK_EQ(b[8] << 24 | b[9] << 16 | b[10] << 8 | b[11], 8191);    /* 0xffff sectors of 512 */
    CHECK_EQ(b[20] | b[21] | b[22] | b[23] | b[24] | b[25] | b[26] | b[27], 0);
    CHECK_EQ(inquiry(e, 0, true, 0xb2, 255, b, &t), 8);
    CHECK_EQ(b[5], 0);
    CHECK_EQ(b[6], 0);
    /* generated identity is stable and NAA 3 */
    CHECK_EQ(inquiry(e, 0, true, 0x83, 255, b, &t) > 48, 1);
    CHECK_EQ(b[41], 0x03);                      /* LU, NAA (after the port's two) */
    CHECK_EQ(b[44] >> 4, 3);
    CHECK_EQ(inquiry(e, 0, true, 0x80, 255, full, &t), 4 + 5);
    CHECK_MEM(&full[4], "disk0", 5);
    t_env_free(e);
}

static void test_absent_lun(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, false);
    uint8_t b[1024];
    struct tcmd t;

    /* INQUIRY to a missing LUN of an existing target: PQ=3 PDT=1Fh, GOOD */
    CHECK(inquiry(e, 7, false, 0, 96, b, &t) >= 36);
    check_good(&t);
    CHECK_EQ(b[0], 0x7f);
    CHECK_EQ(b[2], 0x06);
    /* REQUEST SENSE answers 05/25/00 in the data */
    {
        uint8_t cdb[6] = { 0x03, 0, 0, 0, 252, 0 };

        t_run(e, &t, 7, cdb, 6, SCSI_DIR_FROM_DEV, b, 252);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 18);
        CHECK_EQ(b[0], 0x70);
        CHECK_EQ(b[2], 0x05);
        CHECK_EQ(b[12], 0x25);
        cdb[1] = 1;     /* DESC */
        t_run(e, &t, 7, cdb, 6, SCSI_DIR_FROM_DEV, b, 252);
        CHECK_EQ(t.c.xfer_len, 8);
        CHECK_EQ(b[0], 0x72);
        CHECK_EQ(b[2], 0x25);
    }
    /* anything else: CHECK CONDITION 05/25/00 */
    {
        uint8_t tur[6] = { 0 };
        uint8_t rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };

        t_run(e, &t, 7, tur, 6, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 5, 0x25, 0);
        t_run(e, &t, 7, rd, 10, SCSI_DIR_FROM_DEV, b, 512);
        check_sense(&t, 5, 0x25, 0);
        CHECK_EQ(t.c.xfer_len, 0);
    }
    /* absent target: transport-level BAD_TARGET */
    {
        uint8_t tur[6] = { 0 };

        tcmd_init(&t, 9, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
        tcmd_run(e, &t);
        CHECK_EQ(t.done, 1);
        CHECK_EQ(t.c.host_status, SCSI_HOST_BAD_TARGET);
        tcmd_init(&t, 9, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
        t.c.lun_wlun_report = true;
        tcmd_run(e, &t);
        CHECK_EQ(t.c.host_status, SCSI_HOST_BAD_TARGET);
    }
    t_env_free(e);
}

static size_t report_luns(struct t_env *e, uint8_t target, uint16_t lun, bool wlun, uint8_t sel,
                          uint32_t alloc, uint8_t *buf, size_t buflen, struct tcmd *t)
{
    uint8_t cdb[12] = { 0xa0, 0, sel, 0, 0, 0, (uint8_t)(alloc >> 24), (uint8_t)(alloc >> 16),
                        (uint8_t)(alloc >> 8), (uint8_t)alloc, 0, 0 };

    memset(buf, 0xcc, buflen);
    tcmd_init(t, target, lun, cdb, 12, SCSI_DIR_FROM_DEV, buf, buflen);
    t->c.lun_wlun_report = wlun;
    tcmd_run(e, t);
    return t->c.xfer_len;
}

static void test_report_luns(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    static uint8_t b[8192];
    struct tcmd t;

    CHECK(t_add_lun(e, 0, 300, &cfg, MiB) != NULL);
    CHECK(t_add_lun(e, 0, 5, &cfg, MiB) != NULL);
    CHECK(t_add_lun(e, 0, 16383, &cfg, MiB) != NULL);
    CHECK(t_add_lun(e, 1, 0, &cfg, MiB) != NULL);

    /* LUN 0 has a 3F/0E UA now: REPORT LUNS doesn't consume or report it */
    CHECK_EQ(report_luns(e, 0, 0, false, 0, 4096, b, 4096, &t), 8 + 4 * 8);
    check_good(&t);
    CHECK_EQ(b[3], 32);
    {
        static const uint8_t want[] = {
            0, 0, 0, 0, 0, 0, 0, 0,
            0, 5, 0, 0, 0, 0, 0, 0,
            0x41, 0x2c, 0, 0, 0, 0, 0, 0,           /* 300: flat space */
            0x7f, 0xff, 0, 0, 0, 0, 0, 0,           /* 16383 */
        };

        CHECK_MEM(&b[8], want, sizeof(want));
    }
    /* to an absent LUN of the target, and through the well-known LUN */
    CHECK_EQ(report_luns(e, 0, 77, false, 0, 4096, b, 4096, &t), 40);
    check_good(&t);
    CHECK_EQ(report_luns(e, 0, 0, true, 0, 4096, b, 4096, &t), 40);
    check_good(&t);
    /* SELECT REPORT 1: the well-known LUN only; 2: all */
    CHECK_EQ(report_luns(e, 0, 0, false, 1, 4096, b, 4096, &t), 16);
    CHECK_EQ(b[8], 0xc1);
    CHECK_EQ(b[9], 0x01);
    CHECK_EQ(report_luns(e, 0, 0, false, 2, 4096, b, 4096, &t), 48);
    CHECK_EQ(b[40], 0xc1);
    report_luns(e, 0, 0, false, 3, 4096, b, 4096, &t);
    check_sense(&t, 5, 0x24, 0);
    /* allocation length < 16 is invalid (SPC-4 6.33) */
    report_luns(e, 0, 0, false, 0, 15, b, 4096, &t);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf0006);
    /* truncated list keeps the full LUN LIST LENGTH */
    CHECK_EQ(report_luns(e, 0, 0, false, 0, 20, b, 4096, &t), 20);
    CHECK_EQ(b[3], 32);
    CHECK_EQ(b[20], 0xcc);
    /* other target */
    CHECK_EQ(report_luns(e, 1, 0, false, 0, 4096, b, 4096, &t), 16);

    /* hundreds of LUNs: streamed, encoded in order */
    for (uint16_t l = 400; l < 700; l++)
        CHECK_EQ(scsi_bus_add_lun(e->bus, 2, l, &cfg, e->drive, NULL, 0), 0);
    CHECK_EQ(scsi_bus_lun_count(e->bus), 4 + 1 + 300);
    CHECK_EQ(report_luns(e, 2, 0, false, 0, sizeof(b), b, sizeof(b), &t), 8 + 300 * 8);
    for (unsigned i = 0; i < 300; i++) {
        unsigned l = 400 + i;

        CHECK_EQ(b[8 + 8 * i], 0x40 | l >> 8);
        CHECK_EQ(b[9 + 8 * i], l & 0xff);
    }
    for (uint16_t l = 400; l < 700; l++)
        CHECK_EQ(scsi_bus_remove_lun(e->bus, 2, l, NULL, NULL), 0);
    CHECK(!scsi_bus_has_target(e->bus, 2));
    t_env_free(e);
}

static void test_request_sense(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t cdb[6] = { 0x03, 0, 0, 0, 252, 0 };
    uint8_t b[252];
    struct tcmd t;

    t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 18);
    CHECK_EQ(b[0], 0x70);
    CHECK_EQ(b[2], 0);
    CHECK_EQ(b[12], 0);
    /* pending UA is returned (and consumed), in descriptor format when DESC=1 */
    scsi_bus_capacity_changed(e->bus, 0, 0);
    cdb[1] = 1;
    t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(b[0], 0x72);
    CHECK_EQ(b[1], 0x06);
    CHECK_EQ(b[2], 0x2a);
    CHECK_EQ(b[3], 0x09);
    t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, sizeof(b));
    CHECK_EQ(b[1], 0x00);
    /* allocation length 4 */
    cdb[1] = 0;
    cdb[4] = 4;
    t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, sizeof(b));
    CHECK_EQ(t.c.xfer_len, 4);
    t_env_free(e);
}

static void test_unknown_opcode(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct tcmd t;
    uint8_t b[64];

    for (unsigned op = 0; op < 256; op++) {
        static const uint8_t known[] = { 0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x16, 0x17, 0x1a, 0x1b, 0x1d,
                                         0x1e, 0x25, 0x28, 0x2a, 0x2e, 0x2f, 0x34, 0x35, 0x37, 0x41, 0x42, 0x48,
                                         0x55, 0x56, 0x57, 0x5a, 0x5e, 0x5f, 0x83, 0x84,
                                         0x88, 0x89, 0x8a, 0x8b, 0x8e, 0x8f, 0x90, 0x91, 0x93, 0x9c, 0x9e, 0xa0, 0xa3,
                                         0xa8, 0xaa, 0xae, 0xaf, 0xb7 };
        uint8_t cdb[16] = { (uint8_t)op };

        if (memchr(known, (int)op, sizeof(known)))
            continue;
        t_run(e, &t, 0, cdb, 16, SCSI_DIR_NONE, NULL, 0);
        CHECK_EQ(t.done, 1);
        check_sense(&t, 5, 0x20, 0);
    }
    /* unknown service action: invalid field pointing at byte 1 */
    {
        uint8_t cdb[16] = { 0x9e, 0x1f };

        t_run(e, &t, 0, cdb, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xcc0001);
    }
    /* UNMAP is unsupported without discard (consistent with VPD B2 LBPU=0) */
    {
        uint8_t cdb[10] = { 0x42 };

        t_run(e, &t, 0, cdb, 10, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 5, 0x20, 0);
    }
    t_env_free(e);
}

static size_t mode_sense(struct t_env *e, bool ten, uint8_t flags, uint8_t pcpage, uint8_t sub, uint16_t alloc,
                         uint8_t *b, struct tcmd *t)
{
    uint8_t cdb6[6] = { 0x1a, flags, pcpage, sub, (uint8_t)alloc, 0 };
    uint8_t cdb10[10] = { 0x5a, flags, pcpage, sub, 0, 0, 0, (uint8_t)(alloc >> 8), (uint8_t)alloc, 0 };

    memset(b, 0xcc, 512);
    t_run(e, t, 0, ten ? cdb10 : cdb6, ten ? 10 : 6, SCSI_DIR_FROM_DEV, b, 512);
    return t->c.xfer_len;
}

static const uint8_t *find_page(const uint8_t *b, size_t n, size_t hdr, uint8_t code)
{
    size_t bd = hdr == 4 ? b[3] : (size_t)(b[6] << 8 | b[7]);

    for (size_t o = hdr + bd; o + 2 <= n; o += 2u + b[o + 1])
        if ((b[o] & 0x3f) == code)
            return &b[o];
    return NULL;
}

static void test_mode_sense(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, false);
    uint8_t b[512];
    struct tcmd t;
    size_t n;

    /* all pages with block descriptor */
    n = mode_sense(e, false, 0, 0x3f, 0, 255, b, &t);
    check_good(&t);
    CHECK_EQ(n, (size_t)b[0] + 1);
    CHECK_EQ(b[2], 0x10);                       /* DPOFUA, not WP */
    CHECK_EQ(b[3], 8);
    CHECK_EQ(b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7], 131072);
    CHECK_EQ(b[9] << 16 | b[10] << 8 | b[11], 512);
    CHECK(find_page(b, n, 4, 0x01) != NULL);
    CHECK(find_page(b, n, 4, 0x08) != NULL);
    CHECK(find_page(b, n, 4, 0x0a) != NULL);
    CHECK(find_page(b, n, 4, 0x1c) != NULL);
    CHECK_EQ(find_page(b, n, 4, 0x08)[2] & 0x04, 0x04);     /* WCE */
    CHECK_EQ(find_page(b, n, 4, 0x0a)[1], 0x0a);
    /* allocation length 4: header only, with the full MODE DATA LENGTH */
    {
        uint8_t len0 = b[0];

        CHECK_EQ(mode_sense(e, false, 0, 0x3f, 0, 4, b, &t), 4);
        CHECK_EQ(b[0], len0);
        CHECK_EQ(b[4], 0xcc);
    }
    /* DBD, caching page only */
    n = mode_sense(e, false, 0x08, 0x08, 0, 255, b, &t);
    CHECK_EQ(n, 4 + 20);
    CHECK_EQ(b[3], 0);
    CHECK_EQ(b[4], 0x08);
    CHECK_EQ(b[5], 0x12);
    /* changeable values; nothing changeable in the block descriptor */
    n = mode_sense(e, false, 0x08, 0x40 | 0x0a, 0, 255, b, &t);
    CHECK_EQ(n, 4 + 12);
    CHECK_EQ(b[6], 0x04);
    CHECK_EQ(b[8], 0x08);
    n = mode_sense(e, false, 0, 0x40 | 0x08, 0, 255, b, &t);
    CHECK_EQ(n, 4 + 8 + 20);
    CHECK_EQ(b[3], 8);
    CHECK_EQ(b[4] | b[5] | b[6] | b[7] | b[9] | b[10] | b[11], 0);
    CHECK_EQ(b[12 + 2], 0x04);
    /* saved values: 05/39/00 */
    mode_sense(e, false, 0, 0xc0 | 0x3f, 0, 255, b, &t);
    check_sense(&t, 5, 0x39, 0);
    /* unknown page, subpage */
    mode_sense(e, false, 0, 0x05, 0, 255, b, &t);
    check_sense(&t, 5, 0x24, 0);
    mode_sense(e, false, 0, 0x08, 0x01, 255, b, &t);
    check_sense(&t, 5, 0x24, 0);
    n = mode_sense(e, false, 0, 0x3f, 0xff, 255, b, &t);
    check_good(&t);
    /* MODE SENSE(10) with LLBAA: long descriptor */
    n = mode_sense(e, true, 0x10, 0x3f, 0, 512, b, &t);
    check_good(&t);
    CHECK_EQ(n, (size_t)(b[0] << 8 | b[1]) + 2);
    CHECK_EQ(b[4], 0x01);                       /* LONGLBA */
    CHECK_EQ(b[7], 16);
    CHECK_EQ(b[8 + 7] | b[8 + 6] << 8 | b[8 + 5] << 16, 131072);
    CHECK_EQ(b[8 + 14] << 8 | b[8 + 15], 512);
    n = mode_sense(e, true, 0, 0x0a, 0, 512, b, &t);
    CHECK_EQ(b[7], 8);
    CHECK_EQ(n, 8 + 8 + 12);
    /* read-only drive: WP */
    e->drive->readonly = true;
    mode_sense(e, false, 0, 0x3f, 0, 255, b, &t);
    CHECK_EQ(b[2], 0x90);
    t_env_free(e);
}

static void mode_select(struct t_env *e, bool ten, uint8_t flags, const uint8_t *data, size_t len, struct tcmd *t)
{
    uint8_t cdb6[6] = { 0x15, flags, 0, 0, (uint8_t)len, 0 };
    uint8_t cdb10[10] = { 0x55, flags, 0, 0, 0, 0, 0, (uint8_t)(len >> 8), (uint8_t)len, 0 };
    static uint8_t buf[2048];

    memcpy(buf, data, len);
    t_run(e, t, 0, ten ? cdb10 : cdb6, ten ? 10 : 6, len ? SCSI_DIR_TO_DEV : SCSI_DIR_NONE, len ? buf : NULL, len);
}

static void test_mode_select_wce(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, false);
    uint8_t b[512], pl[64];
    struct tcmd t;
    size_t n;

    /* the Linux sd way: MODE SENSE page 08 then MODE SELECT it back with WCE=0 */
    n = mode_sense(e, false, 0x08, 0x08, 0, 255, b, &t);
    memcpy(pl, b, n);
    pl[0] = 0;
    pl[2] = 0;
    pl[4 + 2] &= (uint8_t)~0x04;
    mode_select(e, false, 0x10, pl, n, &t);
    check_good(&t);
    CHECK_EQ(e->drive->set_wc_calls, 1);
    CHECK(!e->drive->wce);
    mode_sense(e, false, 0x08, 0x08, 0, 255, b, &t);
    CHECK_EQ(b[6] & 0x04, 0);
    /* back on through MODE SELECT(10) with a block descriptor */
    n = mode_sense(e, true, 0, 0x08, 0, 255, b, &t);
    memcpy(pl, b, n);
    pl[0] = pl[1] = 0;
    pl[16 + 2] |= 0x04;
    mode_select(e, true, 0x10, pl, n, &t);
    check_good(&t);
    CHECK_EQ(e->drive->set_wc_calls, 2);
    CHECK(e->drive->wce);
    /* unchanged value: no call */
    mode_select(e, true, 0x10, pl, n, &t);
    check_good(&t);
    CHECK_EQ(e->drive->set_wc_calls, 2);

    /* non-changeable bit (RCD) -> 05/26/00 pointing at it, nothing applied */
    n = mode_sense(e, false, 0x08, 0x08, 0, 255, b, &t);
    memcpy(pl, b, n);
    pl[0] = 0;
    pl[4 + 2] = 0x01;                           /* RCD=1, WCE=0 */
    mode_select(e, false, 0x10, pl, n, &t);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x880006);            /* C/D=0 byte 6 bit 0 */
    CHECK(e->drive->wce);
    /* wrong page length */
    memcpy(pl, b, n);
    pl[0] = 0;
    pl[4 + 1] = 0x10;
    mode_select(e, false, 0x10, pl, n, &t);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x8f0005);
    /* page longer than the list */
    memcpy(pl, b, n);
    pl[0] = 0;
    mode_select(e, false, 0x10, pl, n - 1, &t);
    check_sense(&t, 5, 0x1a, 0);
    /* unsupported page */
    memcpy(pl, b, n);
    pl[0] = 0;
    pl[4] = 0x05;
    mode_select(e, false, 0x10, pl, n, &t);
    check_sense(&t, 5, 0x26, 0);
    /* SP=1 -> 05/24/00; PF=0 with pages -> 05/24/00 */
    memcpy(pl, b, n);
    pl[0] = 0;
    mode_select(e, false, 0x11, pl, n, &t);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xc80001);
    mode_select(e, false, 0x00, pl, n, &t);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcc0001);
    /* header shorter than 4 */
    mode_select(e, false, 0x10, pl, 3, &t);
    check_sense(&t, 5, 0x1a, 0);
    /* zero length: nothing to do */
    mode_select(e, false, 0x10, pl, 0, &t);
    check_good(&t);
    /* block descriptor with a different block length */
    {
        uint8_t bd[12] = { 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x10, 0 };

        mode_select(e, false, 0x10, bd, 12, &t);
        check_sense(&t, 5, 0x26, 0);
        bd[10] = 0x02;
        mode_select(e, false, 0x10, bd, 12, &t);
        check_good(&t);
    }
    /* parameter list longer than we accept */
    {
        static uint8_t big[2048];

        mode_select(e, true, 0x10, big, 1500, &t);
        check_sense(&t, 5, 0x1a, 0);
    }
    /* a buffer shorter than the parameter list: transport overrun */
    {
        uint8_t cdb[6] = { 0x15, 0x10, 0, 0, 24, 0 };

        t_run(e, &t, 0, cdb, 6, SCSI_DIR_TO_DEV, pl, 12);
        CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    }
    t_env_free(e);
}

static void test_d_sense(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t b[512], pl[64];
    struct tcmd t;
    size_t n;
    uint8_t rd16[16] = { 0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0 };
    uint64_t info;

    t_run(e, &t, 0, rd16, 16, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 5, 0x21, 0);
    CHECK_EQ(t.c.sense[0], 0x70);
    CHECK_EQ(t.c.sense_len, 18);

    n = mode_sense(e, false, 0x08, 0x0a, 0, 255, b, &t);
    memcpy(pl, b, n);
    pl[0] = 0;
    pl[4 + 2] |= 0x04;                          /* D_SENSE */
    mode_select(e, false, 0x10, pl, n, &t);
    check_good(&t);
    mode_sense(e, false, 0x08, 0x0a, 0, 255, b, &t);
    CHECK_EQ(b[6] & 0x04, 0x04);

    t_run(e, &t, 0, rd16, 16, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 5, 0x21, 0);
    CHECK_EQ(t.c.sense[0], 0x72);
    CHECK_EQ(t.c.sense_len, 8);
    /* field pointer in descriptor format */
    {
        uint8_t inq[6] = { 0x12, 0, 0x80, 0, 255, 0 };

        t_run(e, &t, 0, inq, 6, SCSI_DIR_FROM_DEV, b, 255);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t.c.sense[0], 0x72);
        CHECK_EQ(t_sks(&t.c), 0xcf0002);
        CHECK(!t_info(&t.c, &info));
    }
    /* unit attentions follow D_SENSE too */
    scsi_bus_capacity_changed(e->bus, 0, 0);
    {
        uint8_t tur[6] = { 0 };

        t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 6, 0x2a, 0x09);
        CHECK_EQ(t.c.sense[0], 0x72);
    }
    /* SWP makes the LUN write protected */
    n = mode_sense(e, false, 0x08, 0x0a, 0, 255, b, &t);
    memcpy(pl, b, n);
    pl[0] = 0;
    pl[4 + 4] |= 0x08;
    mode_select(e, false, 0x10, pl, n, &t);
    check_good(&t);
    {
        uint8_t wr[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 };

        t_run(e, &t, 0, wr, 10, SCSI_DIR_TO_DEV, b, 512);
        check_sense(&t, 7, 0x27, 0);
        mode_sense(e, false, 0x08, 0x3f, 0, 255, b, &t);
        CHECK_EQ(b[2] & 0x80, 0x80);
    }
    t_env_free(e);
}

static void test_rsoc(void)
{
    struct t_env *e = t_env_new(MiB, 512, true);
    static uint8_t b[8192];
    struct tcmd t;
    uint8_t cdb[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0 };
    uint32_t len;
    bool seen_ws16 = false, seen_rc16 = false;

    t_run(e, &t, 0, cdb, 12, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    len = (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
    CHECK_EQ(t.c.xfer_len, len + 4);
    CHECK_EQ(len % 8, 0);
    for (uint32_t o = 4; o < len + 4; o += 8) {
        uint8_t op = b[o];
        uint16_t sa = (uint16_t)(b[o + 2] << 8 | b[o + 3]);
        bool servactv = b[o + 5] & 1;
        uint8_t one[12] = { 0xa3, 0x0c, servactv ? 2 : 1, op, (uint8_t)(sa >> 8), (uint8_t)sa, 0, 0, 1, 0, 0, 0 };
        uint8_t r[256];
        struct tcmd t2;

        CHECK(servactv || sa == 0);
        if (op == 0x93)
            seen_ws16 = true;
        if (op == 0x9e && sa == 0x10)
            seen_rc16 = true;
        t_run(e, &t2, 0, one, 12, SCSI_DIR_FROM_DEV, r, sizeof(r));
        check_good(&t2);
        CHECK_EQ(r[1] & 7, 3);
        CHECK_EQ(r[2] << 8 | r[3], b[o + 6] << 8 | b[o + 7]);
        CHECK_EQ(r[4], op);
        /* the other reporting option is invalid for this opcode */
        one[2] = servactv ? 1 : 2;
        t_run(e, &t2, 0, one, 12, SCSI_DIR_FROM_DEV, r, sizeof(r));
        check_sense(&t2, 5, 0x24, 0);
    }
    CHECK(seen_ws16);
    CHECK(seen_rc16);
    /* READ(10) usage shows DPO/FUA */
    {
        uint8_t one[12] = { 0xa3, 0x0c, 1, 0x28, 0, 0, 0, 0, 1, 0, 0, 0 };

        t_run(e, &t, 0, one, 12, SCSI_DIR_FROM_DEV, b, 256);
        CHECK_EQ(t.c.xfer_len, 14);
        CHECK_EQ(b[5] & 0x18, 0x18);
        /* unsupported opcode: SUPPORT 001b */
        one[3] = 0x01;
        t_run(e, &t, 0, one, 12, SCSI_DIR_FROM_DEV, b, 256);
        check_good(&t);
        CHECK_EQ(b[1] & 7, 1);
    }
    /* RCTD: timeout descriptors */
    cdb[2] = 0x80;
    t_run(e, &t, 0, cdb, 12, SCSI_DIR_FROM_DEV, b, sizeof(b));
    len = (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
    CHECK_EQ(len % 20, 0);
    CHECK_EQ(b[4 + 5] & 2, 2);
    CHECK_EQ(b[4 + 8] << 8 | b[4 + 9], 0x0a);
    t_env_free(e);
}

static void test_dir_mismatch(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t b[512];
    struct tcmd t;
    uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };

    /* a data-in command with a data-out buffer */
    t_run(e, &t, 0, inq, 6, SCSI_DIR_TO_DEV, b, 96);
    CHECK_EQ(t.done, 1);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    /* a transfer with no buffer at all */
    t_run(e, &t, 0, inq, 6, SCSI_DIR_NONE, NULL, 0);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    /* allocation length 0: no data phase, fine */
    inq[4] = 0;
    t_run(e, &t, 0, inq, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_env_free(e);
}

static void test_send_diag(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct tcmd t;
    uint8_t cdb[6] = { 0x1d, 0x04, 0, 0, 0, 0 };
    uint8_t pl[8] = { 0 };

    t_run(e, &t, 0, cdb, 6, SCSI_DIR_NONE, NULL, 0);    /* default self-test */
    check_good(&t);
    cdb[1] = 0x20;                                      /* background short self-test */
    t_run(e, &t, 0, cdb, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb[1] = 0x24;                                      /* code with SELFTEST=1 */
    t_run(e, &t, 0, cdb, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x24, 0);
    cdb[1] = 0x14;                                      /* diagnostic pages: unsupported */
    cdb[4] = 8;
    t_run(e, &t, 0, cdb, 6, SCSI_DIR_TO_DEV, pl, 8);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf0003);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_inquiry_standard);
    RUN_TEST(test_inquiry_config);
    RUN_TEST(test_vpd_pages);
    RUN_TEST(test_absent_lun);
    RUN_TEST(test_report_luns);
    RUN_TEST(test_request_sense);
    RUN_TEST(test_unknown_opcode);
    RUN_TEST(test_mode_sense);
    RUN_TEST(test_mode_select_wce);
    RUN_TEST(test_d_sense);
    RUN_TEST(test_rsoc);
    RUN_TEST(test_dir_mismatch);
    RUN_TEST(test_send_diag);
    return test_exit();
}

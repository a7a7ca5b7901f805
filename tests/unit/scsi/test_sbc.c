/* SBC-4 commands against the fake block layer: capacity, READ/WRITE through
 * the iov, range and overrun checks, WRITE SAME, UNMAP, VERIFY, GET LBA
 * STATUS, SYNCHRONIZE CACHE, START STOP UNIT, write protection, errors. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

static void cdb_rw16(uint8_t *c, uint8_t op, uint64_t lba, uint32_t n)
{
    memset(c, 0, 16);
    c[0] = op;
    for (int i = 0; i < 8; i++)
        c[2 + i] = (uint8_t)(lba >> (56 - 8 * i));
    c[10] = (uint8_t)(n >> 24);
    c[11] = (uint8_t)(n >> 16);
    c[12] = (uint8_t)(n >> 8);
    c[13] = (uint8_t)n;
}

static void test_read_capacity(void)
{
    /* 10 MiB + 100 bytes: the partial block is not reported */
    struct t_env *e = t_env_new(10 * MiB + 100, 512, true);
    uint8_t b[64], rc10[10] = { 0x25 }, rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };
    struct tcmd t;

    memset(b, 0xcc, sizeof(b));
    t_run(e, &t, 0, rc10, 10, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3], 20479);
    CHECK_EQ(b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7], 512);
    /* PMI=0 with an LBA is invalid */
    rc10[5] = 1;
    t_run(e, &t, 0, rc10, 10, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x24, 0);
    rc10[8] = 1;
    t_run(e, &t, 0, rc10, 10, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);

    t_run(e, &t, 0, rc16, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 32);
    CHECK_EQ(b[7], 0xff);
    CHECK_EQ(b[6], 0x4f);
    CHECK_EQ(b[10] << 8 | b[11], 512);
    CHECK_EQ(b[13] & 0x0f, 0);
    CHECK_EQ(b[14] & 0xc0, 0xc0);               /* LBPME LBPRZ */
    /* every allocation length 0..15 is fine (libiscsi ReadCapacity16.Alloclen) */
    for (uint8_t a = 0; a < 16; a++) {
        rc16[13] = a;
        memset(b, 0xcc, sizeof(b));
        t_run(e, &t, 0, rc16, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, a);
        CHECK_EQ(b[a], 0xcc);
    }
    t_env_free(e);

    /* 4 KiB logical, 16 KiB physical; too big for READ CAPACITY(10) */
    {
        struct t_env *e2 = t_env_new(MiB, 512, false);
        struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .logical_block_size = 4096,
                                       .physical_block_size = 16384 };
        struct blk_drive *d = t_add_lun(e2, 0, 1, &cfg, 4096);

        t_clear_ua(e2, 0, 1);
        d->size = (1ull << 32) * 4096 * 2;      /* 8 G blocks; never touched */
        rc16[13] = 32;
        t_run(e2, &t, 1, rc16, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
        check_good(&t);
        CHECK_EQ(b[3], 0x01);
        CHECK_EQ(b[7], 0xff);
        CHECK_EQ(b[10] << 8 | b[11], 4096);
        CHECK_EQ(b[13] & 0x0f, 2);
        CHECK_EQ(b[14] & 0x80, 0);
        rc10[5] = 0;
        rc10[8] = 0;
        t_run(e2, &t, 1, rc10, 10, SCSI_DIR_FROM_DEV, b, sizeof(b));
        CHECK_EQ(b[0] & b[1] & b[2] & b[3], 0xff);
        d->size = 4096;
        t_env_free(e2);
    }
}

static void test_rw_roundtrip(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, false);
    static uint8_t wbuf[65536], rbuf[131072];
    uint8_t c[16];
    struct tcmd t;

    for (size_t i = 0; i < sizeof(wbuf); i++)
        wbuf[i] = (uint8_t)(i * 7 + 3);
    /* WRITE(10) split over 5 iovecs, READ(16) over 3 */
    cdb_rw10(c, 0x2a, 100, 128);
    tcmd_init(&t, 0, 0, c, 10, SCSI_DIR_TO_DEV, wbuf, 65536);
    tcmd_split(&t, 5);
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 65536);
    CHECK_MEM(e->drive->data + 100 * 512, wbuf, 65536);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE);
    CHECK_EQ(e->drive->last_offset, 100 * 512);
    CHECK_EQ(e->drive->last_flags, 0);

    cdb_rw16(c, 0x88, 100, 128);
    tcmd_init(&t, 0, 0, c, 16, SCSI_DIR_FROM_DEV, rbuf, 65536);
    tcmd_split(&t, 3);
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_MEM(rbuf, wbuf, 65536);

    /* READ(6) / WRITE(6): 21-bit LBA, 0 = 256 blocks */
    {
        uint8_t r6[6] = { 0x08, 0x00, 0x00, 0x64, 0x00, 0 };

        memset(rbuf, 0, sizeof(rbuf));
        t_run(e, &t, 0, r6, 6, SCSI_DIR_FROM_DEV, rbuf, 256 * 512);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 256 * 512);
        CHECK_EQ(e->drive->last_len, 256 * 512);
        CHECK_MEM(rbuf, wbuf, 65536);
        r6[0] = 0x0a;
        r6[4] = 1;
        r6[1] = 0x1f;                           /* LBA bits 20-16 */
        r6[2] = r6[3] = 0;
        t_run(e, &t, 0, r6, 6, SCSI_DIR_TO_DEV, wbuf, 512);
        check_sense(&t, 5, 0x21, 0);            /* 0x1f0000 > capacity */
        r6[1] = 0x20;                           /* reserved bit */
        t_run(e, &t, 0, r6, 6, SCSI_DIR_TO_DEV, wbuf, 512);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xcd0001);
    }
    /* FUA and DPO; FUA_NV (obsolete) accepted */
    cdb_rw10(c, 0x2a, 0, 1);
    c[1] = 0x10 | 0x08 | 0x02;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, wbuf, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_flags, BLK_F_FUA);
    cdb_rw10(c, 0x28, 0, 1);
    c[1] = 0x18;
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, rbuf, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_flags, 0);
    /* RDPROTECT / WRPROTECT: no protection information */
    for (uint8_t p = 1; p < 8; p++) {
        cdb_rw10(c, 0x28, 0, 1);
        c[1] = (uint8_t)(p << 5);
        t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, rbuf, 512);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xcf0001);
        cdb_rw16(c, 0x8a, 0, 1);
        c[1] = (uint8_t)(p << 5);
        t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, wbuf, 512);
        check_sense(&t, 5, 0x24, 0);
    }
    /* zero blocks: GOOD, no I/O */
    {
        unsigned before = e->drive->nops[BLK_OP_READ];

        cdb_rw10(c, 0x28, 5, 0);
        t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
        check_good(&t);
        CHECK_EQ(e->drive->nops[BLK_OP_READ], before);
    }
    /* READ(12) and WRITE(12) */
    {
        uint8_t c12[12] = { 0xaa, 0, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0 };

        t_run(e, &t, 0, c12, 12, SCSI_DIR_TO_DEV, wbuf, 1024);
        check_good(&t);
        c12[0] = 0xa8;
        t_run(e, &t, 0, c12, 12, SCSI_DIR_FROM_DEV, rbuf, 1024);
        check_good(&t);
        CHECK_MEM(rbuf, wbuf, 1024);
    }
    /* WRITE AND VERIFY(10) writes through (FUA) */
    cdb_rw10(c, 0x2e, 10, 1);
    c[1] = 0x02;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, wbuf, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_flags, BLK_F_FUA);
    c[1] = 0x04;                                /* BYTCHK 10b */
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, wbuf, 512);
    check_sense(&t, 5, 0x24, 0);
    t_env_free(e);
}

static void test_lba_range(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);      /* 2048 blocks */
    static uint8_t b[8192];
    uint8_t c[16];
    struct tcmd t;

    cdb_rw16(c, 0x88, 2047, 1);
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, 512);
    check_good(&t);
    cdb_rw16(c, 0x88, 2047, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, 1024);
    check_sense(&t, 5, 0x21, 0);
    CHECK_EQ(t.c.xfer_len, 0);
    /* wrap: LBA FFFFFFFFFFFFFFFFh + 2 blocks */
    cdb_rw16(c, 0x88, UINT64_MAX, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, 1024);
    check_sense(&t, 5, 0x21, 0);
    cdb_rw16(c, 0x8a, UINT64_MAX - 1, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, b, 1024);
    check_sense(&t, 5, 0x21, 0);
    /* zero blocks: at the capacity is fine, beyond is out of range */
    cdb_rw10(c, 0x28, 2048, 0);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb_rw10(c, 0x28, 2049, 0);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    cdb_rw10(c, 0x28, 0xffffffff, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 5, 0x21, 0);
    /* beyond MAXIMUM TRANSFER LENGTH (65535 blocks of 512) */
    cdb_rw16(c, 0x88, 0, 65536);
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf000a);
    /* the fake drive shrinks under a queued command: the block layer's -ERANGE maps to LBA OUT OF RANGE */
    cdb_rw16(c, 0x88, 2000, 8);
    tcmd_init(&t, 0, 0, c, 16, SCSI_DIR_FROM_DEV, b, 4096);
    tcmd_submit(e, &t);
    e->drive->size = 512 * 1000;
    fake_ctx_run(e->ctx, 0);
    check_sense(&t, 5, 0x21, 0);
    e->drive->size = MiB;
    t_env_free(e);
}

static void test_overrun(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    static uint8_t b[8192];
    uint8_t c[16];
    struct tcmd t;

    /* READ of 4 blocks into a 3-block buffer */
    cdb_rw10(c, 0x28, 0, 4);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, b, 1536);
    CHECK_EQ(t.done, 1);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    CHECK_EQ(t.c.xfer_len, 0);
    CHECK_EQ(e->drive->nops[BLK_OP_READ], 0);
    /* WRITE with a data-in buffer */
    cdb_rw10(c, 0x2a, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    /* READ with no buffer */
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    CHECK_EQ(e->drive->nops[BLK_OP_WRITE], 0);
    /* a longer buffer than the transfer: only the transfer moves (sliced iov) */
    memset(b, 0x5a, sizeof(b));
    cdb_rw10(c, 0x28, 0, 2);
    tcmd_init(&t, 0, 0, c, 10, SCSI_DIR_FROM_DEV, b, 4096);
    tcmd_split(&t, 8);                          /* more pieces than sub_iov holds */
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 1024);
    CHECK_EQ(e->drive->last_len, 1024);
    CHECK_EQ(b[1023], 0);
    CHECK_EQ(b[1024], 0x5a);
    tcmd_init(&t, 0, 0, c, 10, SCSI_DIR_FROM_DEV, b, 4096);
    tcmd_split(&t, 2);
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 1024);
    t_env_free(e);
}

static void test_errors(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    static uint8_t b[8192];
    uint8_t c[16];
    struct tcmd t;

    e->drive->fail_errno = EIO;
    e->drive->fail_count = 1;
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 0x0b, 0, 0x06);     /* QEMU's answer to EIO */
    CHECK_EQ(t.c.xfer_len, 0);
    e->drive->fail_errno = EIO;
    e->drive->fail_count = 1;
    cdb_rw10(c, 0x2a, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, b, 512);
    check_sense(&t, 0x0b, 0, 0x06);
    e->drive->fail_errno = ENOSPC;
    e->drive->fail_count = 1;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, b, 512);
    check_sense(&t, 7, 0x27, 0x07);
    e->drive->fail_errno = EROFS;
    e->drive->fail_count = 1;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, b, 512);
    check_sense(&t, 7, 0x27, 0);
    e->drive->fail_errno = EINVAL;
    e->drive->fail_count = 1;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, b, 512);
    check_sense(&t, 4, 0x44, 0);
    /* blk_submit refuses: BUSY for -EAGAIN, no sense */
    e->drive->submit_errno = EAGAIN;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, b, 512);
    CHECK_EQ(t.done, 1);
    CHECK_EQ(t.c.status, SCSI_STATUS_BUSY);
    CHECK_EQ(t.c.sense_len, 0);
    e->drive->submit_errno = 0;
    /* flush error */
    {
        uint8_t s10[10] = { 0x35 };

        e->drive->fail_errno = EIO;
        e->drive->fail_count = 1;
        t_run(e, &t, 0, s10, 10, SCSI_DIR_NONE, NULL, 0);
        check_sense(&t, 0x0b, 0, 0x06);
    }
    t_env_free(e);
}

static void test_readonly(void)
{
    struct t_env *e = t_env_new(MiB, 512, true);
    static uint8_t b[8192];
    uint8_t c[16];
    struct tcmd t;

    e->drive->readonly = true;
    for (unsigned i = 0; i < 6; i++) {
        static const uint8_t ops[] = { 0x2a, 0x8a, 0x41, 0x93, 0x2e, 0x0a };

        if (ops[i] == 0x8a || ops[i] == 0x93)
            cdb_rw16(c, ops[i], 0, 1);
        else if (ops[i] == 0x0a)
            memcpy(c, (uint8_t[6]){ 0x0a, 0, 0, 0, 1, 0 }, 6);
        else
            cdb_rw10(c, ops[i], 0, 1);
        t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, b, 512);
        check_sense(&t, 7, 0x27, 0);
    }
    /* protection comes before the CDB contents (libiscsi ReadOnly) */
    cdb_rw10(c, 0x41, 0, 1);
    c[1] = 0x08 | 0x20;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, b, 100);
    check_sense(&t, 7, 0x27, 0);
    /* WRITE SAME with UNMAP, NDOB: still write protected */
    cdb_rw16(c, 0x93, 0, 1);
    c[1] = 0x09;
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 7, 0x27, 0);
    {
        uint8_t u[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 };
        uint8_t pl[24] = { 0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

        t_run(e, &t, 0, u, 10, SCSI_DIR_TO_DEV, pl, 24);
        check_sense(&t, 7, 0x27, 0);
    }
    CHECK_EQ(e->drive->nops[BLK_OP_WRITE] + e->drive->nops[BLK_OP_WRITE_ZEROES] +
             e->drive->nops[BLK_OP_DISCARD], 0);
    /* reads still work */
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_good(&t);
    t_env_free(e);
}

static void ws(struct t_env *e, struct tcmd *t, bool sixteen, uint8_t flags, uint64_t lba, uint32_t n,
               void *blk, size_t len)
{
    uint8_t c[16];

    if (sixteen)
        cdb_rw16(c, 0x93, lba, n);
    else
        cdb_rw10(c, 0x41, (uint32_t)lba, (uint16_t)n);
    c[1] = flags;
    t_run(e, t, 0, c, 16, len ? SCSI_DIR_TO_DEV : SCSI_DIR_NONE, blk, len);
}

static void test_write_same(void)
{
    struct t_env *e = t_env_new(8 * MiB, 512, true);   /* 16384 blocks */
    uint8_t blk[512];
    struct tcmd t;

    memset(e->drive->data, 0xee, 8 * MiB);
    memset(e->drive->mapped, 1, 8 * MiB / 512);
    /* zero data with UNMAP: one WRITE ZEROES that may unmap */
    memset(blk, 0, sizeof(blk));
    ws(e, &t, true, 0x08, 10, 100, blk, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE_ZEROES);
    CHECK_EQ(e->drive->last_flags, BLK_F_MAY_UNMAP);
    CHECK_EQ(e->drive->last_offset, 10 * 512);
    CHECK_EQ(e->drive->last_len, 100 * 512);
    CHECK_EQ(e->drive->data[10 * 512], 0);
    CHECK_EQ(e->drive->data[110 * 512 - 1], 0);
    CHECK_EQ(e->drive->data[110 * 512], 0xee);
    /* non-zero data with UNMAP on a thin LU with LBPRZ: deallocated, reads zero
     * (libiscsi WriteSame10.UnmapUntilEnd; LIO does the same) */
    memset(blk, 0xff, sizeof(blk));
    ws(e, &t, false, 0x08, 16380, 0, blk, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE_ZEROES);
    CHECK_EQ(e->drive->last_flags, BLK_F_MAY_UNMAP);
    CHECK_EQ(e->drive->data[16383 * 512], 0);
    memset(e->drive->data + 16380 * 512, 0xee, 4 * 512);
    memset(blk, 0, sizeof(blk));
    /* zero data without UNMAP: zeroes, no deallocation */
    ws(e, &t, false, 0, 200, 1, blk, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE_ZEROES);
    CHECK_EQ(e->drive->last_flags, 0);
    /* NDOB: no data-out buffer, zeroes */
    ws(e, &t, true, 0x09, 300, 4, NULL, 0);
    check_good(&t);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE_ZEROES);
    /* a pattern over 3 MiB + 1 block: written in bounded chunks */
    for (int i = 0; i < 512; i++)
        blk[i] = (uint8_t)(i ^ 0x5c);
    {
        unsigned before = e->drive->nops[BLK_OP_WRITE];
        uint32_t n = 3 * 2048 + 1;

        ws(e, &t, true, 0, 1000, n, blk, 512);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 512);
        CHECK_EQ(e->drive->nops[BLK_OP_WRITE] - before, 4);
        CHECK(e->drive->max_len_seen <= MiB);
        for (uint32_t i = 0; i < n; i++)
            if (memcmp(e->drive->data + (1000 + i) * 512ull, blk, 512)) {
                CHECK(!"pattern mismatch");
                break;
            }
        CHECK_EQ(e->drive->data[(1000 + n) * 512ull], 0xee);
    }
    /* zero blocks = to the end of the medium (WSNZ=0) */
    ws(e, &t, false, 0, 16380, 0, blk, 512);
    check_good(&t);
    CHECK_MEM(e->drive->data + 16383 * 512ull, blk, 512);
    ws(e, &t, false, 0, 16384, 0, blk, 512);    /* at the end: nothing */
    check_good(&t);
    ws(e, &t, false, 0, 16385, 0, blk, 512);
    check_sense(&t, 5, 0x21, 0);
    /* ranges */
    ws(e, &t, true, 0, 16383, 2, blk, 512);
    check_sense(&t, 5, 0x21, 0);
    ws(e, &t, true, 0, UINT64_MAX, 1, blk, 512);
    check_sense(&t, 5, 0x21, 0);
    /* ANCHOR (with or without UNMAP), WRPROTECT */
    ws(e, &t, false, 0x10, 0, 1, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcc0001);
    ws(e, &t, false, 0x18, 0, 1, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    ws(e, &t, true, 0x20, 0, 1, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    /* obsolete PBDATA/LBDATA */
    ws(e, &t, false, 0x02, 0, 1, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xc90001);
    /* NDOB is not in WRITE SAME(10) */
    ws(e, &t, false, 0x01, 0, 1, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    /* data-out other than one block: invalid CDB; no buffer at all: overrun */
    ws(e, &t, false, 0, 0, 1, blk, 100);
    check_sense(&t, 5, 0x24, 0);
    {
        static uint8_t two[1024];

        ws(e, &t, true, 0, 0, 1, two, 1024);
        check_sense(&t, 5, 0x24, 0);
    }
    ws(e, &t, false, 0, 0, 1, NULL, 0);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    t_env_free(e);

    /* limits: beyond MAXIMUM WRITE SAME LENGTH; UNMAP without discard */
    e = t_env_new(64 * MiB, 512, false);            /* 128 Ki blocks, max WS 65535 */
    memset(blk, 0, sizeof(blk));
    ws(e, &t, true, 0, 0, 65536, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf000a);
    ws(e, &t, true, 0, 0, 0, blk, 512);             /* to the end: too long too */
    check_sense(&t, 5, 0x24, 0);
    ws(e, &t, true, 0, 131072 - 65535, 0, blk, 512);
    check_good(&t);
    ws(e, &t, true, 0, 0, 65535, blk, 512);
    check_good(&t);
    ws(e, &t, false, 0x08, 0, 1, blk, 512);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcb0001);
    t_env_free(e);
}

/* Parallel pattern WRITE SAMEs share a bounded per-LUN buffer budget. */
static void test_buffer_budget(void)
{
    struct t_env *e = t_env_new(64 * MiB, 512, false);
    static struct tcmd t[20];
    uint8_t blk[512], c[16];
    unsigned busy = 0;

    memset(blk, 0x3c, sizeof(blk));
    for (int i = 0; i < 20; i++) {
        cdb_rw16(c, 0x93, (uint64_t)i * 4096, 4096);     /* 2 MiB each, 1 MiB chunks */
        tcmd_init(&t[i], 0, 0, c, 16, SCSI_DIR_TO_DEV, blk, 512);
        tcmd_submit(e, &t[i]);
    }
    for (int i = 0; i < 20; i++)
        if (t[i].done && t[i].c.status == SCSI_STATUS_BUSY)
            busy++;
    CHECK_EQ(busy, 4);                          /* 16 x 1 MiB fit in 16 MiB */
    fake_ctx_run(e->ctx, 0);
    for (int i = 0; i < 16; i++)
        check_good(&t[i]);
    CHECK_MEM(e->drive->data + (15 * 4096 + 4095) * 512ull, blk, 512);
    /* all returned: a new one gets a full chunk again */
    cdb_rw16(c, 0x93, 0, 4096);
    tcmd_init(&t[0], 0, 0, c, 16, SCSI_DIR_TO_DEV, blk, 512);
    tcmd_run(e, &t[0]);
    check_good(&t[0]);
    t_env_free(e);
}

static void unmap(struct t_env *e, struct tcmd *t, const uint8_t *pl, uint16_t len, uint8_t b1)
{
    static uint8_t buf[65536];
    uint8_t c[10] = { 0x42, b1, 0, 0, 0, 0, 0, (uint8_t)(len >> 8), (uint8_t)len, 0 };

    memcpy(buf, pl, len);
    t_run(e, t, 0, c, 10, len ? SCSI_DIR_TO_DEV : SCSI_DIR_NONE, len ? buf : NULL, len);
}

static void put_desc(uint8_t *d, uint64_t lba, uint32_t n)
{
    memset(d, 0, 16);
    for (int i = 0; i < 8; i++)
        d[i] = (uint8_t)(lba >> (56 - 8 * i));
    d[8] = (uint8_t)(n >> 24);
    d[9] = (uint8_t)(n >> 16);
    d[10] = (uint8_t)(n >> 8);
    d[11] = (uint8_t)n;
}

static void test_unmap(void)
{
    struct t_env *e = t_env_new(MiB, 512, true);    /* 2048 blocks */
    static uint8_t pl[65536];
    struct tcmd t;
    uint16_t n;

    memset(e->drive->data, 0xee, MiB);
    memset(e->drive->mapped, 1, MiB / 512);
    /* three descriptors, one of them empty */
    memset(pl, 0, 8);
    pl[1] = 6 + 48;
    pl[3] = 48;
    put_desc(&pl[8], 0, 4);
    put_desc(&pl[24], 100, 0);
    put_desc(&pl[40], 2040, 8);
    unmap(e, &t, pl, 56, 0);
    check_good(&t);
    CHECK_EQ(e->drive->data[0], 0);
    CHECK_EQ(e->drive->data[4 * 512], 0xee);
    CHECK_EQ(e->drive->data[2047 * 512], 0);
    CHECK_EQ(e->drive->mapped[1], 0);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE_ZEROES);       /* LBPRZ: must read zeroes */
    CHECK_EQ(e->drive->last_flags, BLK_F_MAY_UNMAP);
    CHECK_EQ(e->drive->last_offset, 2040 * 512);
    /* zero length: no-op; 1..7: parameter list length error */
    unmap(e, &t, pl, 0, 0);
    check_good(&t);
    unmap(e, &t, pl, 7, 0);
    check_sense(&t, 5, 0x1a, 0);
    /* header only / no descriptors */
    pl[1] = 6;
    pl[3] = 0;
    unmap(e, &t, pl, 8, 0);
    check_good(&t);
    /* LBA out of range in any descriptor: nothing is unmapped */
    memset(e->drive->data, 0xee, MiB);
    pl[1] = 6 + 32;
    pl[3] = 32;
    put_desc(&pl[8], 0, 4);
    put_desc(&pl[24], 2047, 2);
    unmap(e, &t, pl, 40, 0);
    check_sense(&t, 5, 0x21, 0);
    CHECK_EQ(e->drive->data[0], 0xee);
    put_desc(&pl[24], UINT64_MAX, 2);
    unmap(e, &t, pl, 40, 0);
    check_sense(&t, 5, 0x21, 0);
    put_desc(&pl[24], 2048, 0);                 /* at the end with 0 blocks: fine */
    unmap(e, &t, pl, 40, 0);
    check_good(&t);
    /* a block descriptor data length beyond the list is clipped; partial descriptors ignored */
    pl[3] = 200;
    unmap(e, &t, pl, 40, 0);
    check_good(&t);
    pl[3] = 20;
    unmap(e, &t, pl, 40, 0);
    check_good(&t);
    /* more descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (1024) */
    n = 8 + 1025 * 16;
    memset(pl, 0, n);
    pl[0] = (uint8_t)((n - 2) >> 8);
    pl[1] = (uint8_t)(n - 2);
    pl[2] = (uint8_t)((n - 8) >> 8);
    pl[3] = (uint8_t)(n - 8);
    unmap(e, &t, pl, n, 0);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x8f0002);
    /* exactly the maximum works */
    n = 8 + 1024 * 16;
    pl[2] = (uint8_t)((n - 8) >> 8);
    pl[3] = (uint8_t)(n - 8);
    for (unsigned i = 0; i < 1024; i++)
        put_desc(&pl[8 + 16 * i], i, 1);
    unmap(e, &t, pl, n, 0);
    check_good(&t);
    /* ANCHOR */
    unmap(e, &t, pl, 8, 0x01);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xc80001);
    /* a buffer shorter than the parameter list length */
    {
        uint8_t c[10] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0 };

        t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, pl, 16);
        CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    }
    /* discard without zeroes: plain DISCARD */
    e->drive->discard_zeroes = false;
    memset(pl, 0, 24);
    pl[1] = 22;
    pl[3] = 16;
    put_desc(&pl[8], 5, 3);
    unmap(e, &t, pl, 24, 0);
    check_good(&t);
    CHECK_EQ(e->drive->last_op, BLK_OP_DISCARD);
    /* an error on the second descriptor stops the command */
    pl[1] = 38;
    pl[3] = 32;
    put_desc(&pl[24], 50, 1);
    e->drive->fail_errno = EIO;
    e->drive->fail_count = 1;
    unmap(e, &t, pl, 40, 0);
    check_sense(&t, 0x0b, 0, 0x06);
    t_env_free(e);
}

static void test_verify(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, false);
    static uint8_t data[3 * 1024 * 1024];
    uint8_t c[16];
    struct tcmd t;
    uint64_t info;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13);
    memcpy(e->drive->data + 512, data, sizeof(data));
    /* BYTCHK=1 over 3 MiB (several chunks): equal */
    cdb_rw16(c, 0x8f, 1, 6144);
    c[1] = 0x02;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, data, sizeof(data));
    check_good(&t);
    /* a difference in the third chunk: MISCOMPARE with its offset */
    data[2 * 1024 * 1024 + 77] ^= 0xff;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, data, sizeof(data));
    check_sense(&t, 0x0e, 0x1d, 0);
    CHECK(t_info(&t.c, &info));
    CHECK_EQ(info, 2 * 1024 * 1024 + 77);
    data[2 * 1024 * 1024 + 77] ^= 0xff;
    /* BYTCHK=0: no data, GOOD */
    cdb_rw10(c, 0x2f, 1, 100);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* BYTCHK=11b: one block compared with each */
    memset(e->drive->data + 4096, 0x42, 8 * 512);
    memset(data, 0x42, 512);
    cdb_rw10(c, 0x2f, 8, 8);
    c[1] = 0x06;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, data, 512);
    check_good(&t);
    e->drive->data[4096 + 5 * 512 + 3] = 0x43;
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, data, 512);
    check_sense(&t, 0x0e, 0x1d, 0);
    CHECK(t_info(&t.c, &info));
    CHECK_EQ(info, 3);
    /* VRPROTECT, BYTCHK 10b, range */
    c[1] = 0x20;
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x24, 0);
    c[1] = 0x04;
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x24, 0);
    cdb_rw10(c, 0x2f, 0xffffffff, 0);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    t_env_free(e);
}

static void test_sync_prefetch(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t c[16];
    struct tcmd t;

    cdb_rw10(c, 0x35, 0, 0);
    c[1] = 0x06;                                /* SYNC_NV, IMMED accepted */
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    CHECK_EQ(e->drive->nops[BLK_OP_FLUSH], 1);
    cdb_rw16(c, 0x91, 2047, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    cdb_rw16(c, 0x91, 10, 10);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    CHECK_EQ(e->drive->nops[BLK_OP_FLUSH], 2);
    cdb_rw10(c, 0x34, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb_rw10(c, 0x34, 0xffffffff, 0);
    t_run(e, &t, 0, c, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    cdb_rw16(c, 0x90, 2040, 8);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_env_free(e);
}

static void test_get_lba_status(void)
{
    struct t_env *e = t_env_new(MiB, 512, true);
    uint8_t c[16] = { 0x9e, 0x12 }, b[300];
    struct tcmd t;

    memset(e->drive->mapped, 0, MiB / 512);
    memset(e->drive->mapped + 10, 1, 5);
    cdb_rw16(c, 0x9e, 8, 0);
    c[1] = 0x12;
    c[13] = 255;
    memset(b, 0xcc, sizeof(b));
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8 + 3 * 16);
    CHECK_EQ(b[3], 4 + 3 * 16);
    CHECK_EQ(b[15], 8);                         /* LBA 8 */
    CHECK_EQ(b[19], 2);                         /* 2 blocks */
    CHECK_EQ(b[20], 1);                         /* deallocated */
    CHECK_EQ(b[16 + 15], 10);
    CHECK_EQ(b[16 + 19], 5);
    CHECK_EQ(b[16 + 20], 0);                    /* mapped */
    CHECK_EQ(b[32 + 15], 15);
    CHECK_EQ(b[32 + 18] << 8 | b[32 + 19], 2048 - 15);
    /* allocation length 24: one descriptor */
    c[13] = 24;
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
    CHECK_EQ(t.c.xfer_len, 24);
    /* at or beyond the capacity */
    cdb_rw16(c, 0x9e, 2048, 0);
    c[1] = 0x12;
    c[13] = 24;
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x21, 0);
    cdb_rw16(c, 0x9e, UINT64_MAX, 0);
    c[1] = 0x12;
    c[13] = 24;
    t_run(e, &t, 0, c, 16, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x21, 0);
    t_env_free(e);
}

static void test_start_stop_removable(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .removable = true };
    uint8_t ssu[6] = { 0x1b, 0, 0, 0, 0, 0 }, pa[6] = { 0x1e }, tur[6] = { 0 }, b[512];
    uint8_t c[16];
    struct tcmd t;

    t_add_lun(e, 0, 1, &cfg, MiB);
    t_clear_ua(e, 0, 1);
    t_clear_ua(e, 0, 0);    /* 3F/0E from the new LUN */
    /* non-removable LUN 0: LOEJ is accepted and ignored */
    ssu[4] = 0x02;
    t_run(e, &t, 0, ssu, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* eject LUN 1: the tray opens (MEDIUM NOT PRESENT - TRAY OPEN) */
    t_run(e, &t, 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x3a, 0x02);
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &t, 1, c, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 2, 0x3a, 0x02);
    {
        uint8_t rc[10] = { 0x25 }, rs[6] = { 0x03, 0, 0, 0, 18, 0 };

        t_run(e, &t, 1, rc, 10, SCSI_DIR_FROM_DEV, b, 8);
        check_sense(&t, 2, 0x3a, 0x02);
        t_run(e, &t, 1, rs, 6, SCSI_DIR_FROM_DEV, b, 18);
        check_good(&t);
        CHECK_EQ(b[2], 2);
        CHECK_EQ(b[12], 0x3a);
        CHECK_EQ(b[13], 0x02);
    }
    /* INQUIRY still works */
    {
        uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 };

        t_run(e, &t, 1, inq, 6, SCSI_DIR_FROM_DEV, b, 36);
        check_good(&t);
    }
    /* load, TUR good */
    ssu[4] = 0x03;
    t_run(e, &t, 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    /* prevent: eject refused with 05/53/02 */
    pa[4] = 1;
    t_run(e, &t, 1, pa, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    ssu[4] = 0x02;
    t_run(e, &t, 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x53, 0x02);
    /* power condition set: LOEJ ignored */
    ssu[4] = 0x32;
    t_run(e, &t, 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    pa[4] = 0;
    t_run(e, &t, 1, pa, 6, SCSI_DIR_NONE, NULL, 0);
    ssu[4] = 0x02;
    t_run(e, &t, 1, ssu, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_run(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x3a, 0x02);
    /* PREVENT 2/3: reserved bit */
    pa[4] = 2;
    t_run(e, &t, 1, pa, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x24, 0);
    t_env_free(e);
}

static int tmf_stamp;

static void tmf_done_stamp(struct scsi_tmf *tmf)
{
    *(int *)tmf->opaque = (int)++t_order;
}

static void cdb_caw(uint8_t *c, uint64_t lba, uint8_t n)
{
    cdb_rw16(c, 0x89, lba, 0);
    c[13] = n;
}

static void test_compare_and_write(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    static uint8_t d[2 * 255 * 512];
    uint8_t c[16];
    struct tcmd t;
    uint64_t info;

    memset(e->drive->data, 'A', 4 * 512);
    memset(d, 'A', 4 * 512);
    memset(d + 4 * 512, 'B', 4 * 512);
    cdb_caw(c, 0, 4);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 8 * 512);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8 * 512);
    CHECK_EQ(e->drive->data[0], 'B');
    CHECK_EQ(e->drive->data[4 * 512 - 1], 'B');
    CHECK_EQ(e->drive->data[4 * 512], 0);
    /* miscompare: nothing written, INFORMATION = offset */
    d[3 * 512 + 7] = 'X';
    memset(e->drive->data, 'A', 4 * 512);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 8 * 512);
    check_sense(&t, 0x0e, 0x1d, 0);
    CHECK(t_info(&t.c, &info));
    CHECK_EQ(info, 3 * 512 + 7);
    CHECK_EQ(e->drive->data[0], 'A');
    /* FUA and DPO, the maximum length, zero blocks, WRPROTECT, range, short buffer */
    memset(e->drive->data, 'A', 255 * 512);
    memset(d, 'A', 255 * 512);
    memset(d + 255 * 512, 'C', 255 * 512);
    cdb_caw(c, 0, 255);
    c[1] = 0x18;
    tcmd_init(&t, 0, 0, c, 16, SCSI_DIR_TO_DEV, d, sizeof(d));
    tcmd_split(&t, 7);
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_EQ(e->drive->last_flags, BLK_F_FUA);
    CHECK_EQ(e->drive->data[254 * 512], 'C');
    cdb_caw(c, 0, 0);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb_caw(c, 0, 1);
    c[1] = 0x40;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 1024);
    check_sense(&t, 5, 0x24, 0);
    cdb_caw(c, 2047, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 2048);
    check_sense(&t, 5, 0x21, 0);
    cdb_caw(c, 0, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 1024);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    e->drive->readonly = true;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 2048);
    check_sense(&t, 7, 0x27, 0);
    t_env_free(e);
}

/* COMPARE AND WRITE runs alone among the LU's writes; reads pass. */
static void test_caw_gate(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    static uint8_t w1[512], w2[512], r[512], d[1024];
    struct tcmd tw1, tcaw, tw2, tr;
    uint8_t c[16];

    memset(w1, 'A', 512);
    memset(w2, 'Z', 512);
    memset(d, 'A', 512);
    memset(d + 512, 'B', 512);
    cdb_rw10(c, 0x2a, 0, 1);
    tcmd_init(&tw1, 0, 0, c, 10, SCSI_DIR_TO_DEV, w1, 512);
    tcmd_submit(e, &tw1);                       /* in flight */
    cdb_caw(c, 0, 1);
    tcmd_init(&tcaw, 0, 0, c, 16, SCSI_DIR_TO_DEV, d, 1024);
    tcmd_submit(e, &tcaw);                      /* waits for the write */
    cdb_rw10(c, 0x2a, 0, 1);
    tcmd_init(&tw2, 0, 0, c, 10, SCSI_DIR_TO_DEV, w2, 512);
    tcmd_submit(e, &tw2);                       /* waits behind the CAW */
    cdb_rw10(c, 0x28, 0, 1);
    tcmd_init(&tr, 0, 0, c, 10, SCSI_DIR_FROM_DEV, r, 512);
    tcmd_submit(e, &tr);                        /* reads are not held */
    CHECK_EQ(fake_ctx_pending(e->ctx), 2);
    fake_ctx_run(e->ctx, 2);                    /* w1, read */
    check_good(&tw1);
    check_good(&tr);
    CHECK_EQ(tcaw.done, 0);
    CHECK_EQ(fake_ctx_pending(e->ctx), 1);      /* the CAW's read, w2 still waits */
    CHECK_EQ(e->drive->last_op, BLK_OP_READ);
    fake_ctx_run(e->ctx, 1);
    CHECK_EQ(e->drive->last_op, BLK_OP_WRITE);  /* the CAW's write */
    CHECK_EQ(tw2.done, 0);
    fake_ctx_run(e->ctx, 1);
    check_good(&tcaw);
    CHECK_EQ(fake_ctx_pending(e->ctx), 1);      /* now w2 */
    fake_ctx_run(e->ctx, 0);
    check_good(&tw2);
    CHECK(tw2.order > tcaw.order);
    CHECK_EQ(e->drive->data[0], 'Z');

    /* an LU reset aborts the waiting ones at once, the running one after its I/O */
    cdb_rw10(c, 0x2a, 0, 1);
    tcmd_init(&tw1, 0, 0, c, 10, SCSI_DIR_TO_DEV, w1, 512);
    tcmd_submit(e, &tw1);
    memset(d, 'A', 512);
    cdb_caw(c, 0, 1);
    tcmd_init(&tcaw, 0, 0, c, 16, SCSI_DIR_TO_DEV, d, 1024);
    tcmd_submit(e, &tcaw);
    cdb_rw10(c, 0x2a, 0, 1);
    tcmd_init(&tw2, 0, 0, c, 10, SCSI_DIR_TO_DEV, w2, 512);
    tcmd_submit(e, &tw2);
    CHECK_EQ(fake_ctx_pending(e->ctx), 1);
    {
        struct scsi_tmf tmf = { .type = SCSI_TMF_LOGICAL_UNIT_RESET, .target = 0, .lun = 0,
                                .done_cb = tmf_done_stamp, .opaque = &tmf_stamp };

        tmf_stamp = 0;
        scsi_bus_tmf(e->bus, &tmf);
        /* the CAW and w2 never reached the block layer: aborted at once */
        CHECK_EQ(tcaw.done, 1);
        CHECK_EQ(tcaw.c.host_status, SCSI_HOST_RESET);
        CHECK_EQ(tw2.done, 1);
        CHECK_EQ(tw2.c.host_status, SCSI_HOST_RESET);
        CHECK_EQ(tmf_stamp, 0);                 /* w1 is still in the block layer */
        fake_ctx_run(e->ctx, 0);
        CHECK_EQ(tw1.c.host_status, SCSI_HOST_RESET);
        CHECK(tmf_stamp > 0 && (unsigned)tmf_stamp > tw1.order);
        CHECK_EQ(tmf.response, SCSI_TMF_COMPLETE);
        CHECK_EQ(fake_ctx_pending(e->ctx), 0);
    }
    /* the gate is open again */
    t_clear_ua(e, 0, 0);
    cdb_rw10(c, 0x2a, 0, 1);
    t_run(e, &tw1, 0, c, 10, SCSI_DIR_TO_DEV, w1, 512);
    check_good(&tw1);
    t_env_free(e);
}

static void cdb_wa16(uint8_t *c, uint64_t lba, uint16_t n)
{
    memset(c, 0, 16);
    c[0] = 0x9c;
    put_be64(&c[2], lba);
    put_be16(&c[12], n);
}

static void test_write_atomic(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, false);
    static uint8_t w[1 << 20], r[512], wa[4096];
    struct tcmd t, tr, ta, tw, tr2;
    uint8_t c[16], b[64];

    /* VPD B0: MAXIMUM ATOMIC TRANSFER LENGTH, no alignment or granularity */
    {
        uint8_t inq[6] = { 0x12, 1, 0xb0, 0, 64, 0 };

        t_run(e, &t, 0, inq, 6, SCSI_DIR_FROM_DEV, b, 64);
        CHECK_EQ(get_be32(&b[44]), 2048);
        CHECK_EQ(get_be32(&b[48]) | get_be32(&b[52]) | get_be32(&b[56]) | get_be32(&b[60]), 0);
    }
    memset(w, 0x3c, sizeof(w));
    cdb_wa16(c, 10, 2048);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 2048 * 512);
    check_good(&t);
    CHECK_EQ(e->drive->data[10 * 512], 0x3c);
    CHECK_EQ(e->drive->data[2058 * 512 - 1], 0x3c);
    /* beyond the atomic maximum, WRPROTECT, the boundary bytes */
    cdb_wa16(c, 0, 2049);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 2049 * 512);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf000c);
    cdb_wa16(c, 0, 1);
    c[1] = 0x20;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 512);
    check_sense(&t, 5, 0x24, 0);
    cdb_wa16(c, 0, 1);
    c[10] = 1;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 512);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xc8000a);
    /* zero blocks; out of range; FUA */
    cdb_wa16(c, 8192, 0);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb_wa16(c, 8193, 0);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    cdb_wa16(c, 8191, 2);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 1024);
    check_sense(&t, 5, 0x21, 0);
    cdb_wa16(c, 0, 1);
    c[1] = 0x18;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 512);
    check_good(&t);
    CHECK_EQ(e->drive->last_flags & BLK_F_FUA, BLK_F_FUA);

    /* the gate: an atomic write waits for the read in flight, then a read
     * and a write that come later wait for it */
    cdb_rw10(c, 0x28, 0, 1);
    tcmd_init(&tr, 0, 0, c, 10, SCSI_DIR_FROM_DEV, r, 512);
    tcmd_submit(e, &tr);
    memset(wa, 0x77, sizeof(wa));
    cdb_wa16(c, 0, 8);
    tcmd_init(&ta, 0, 0, c, 16, SCSI_DIR_TO_DEV, wa, 4096);
    tcmd_submit(e, &ta);
    cdb_rw10(c, 0x28, 0, 1);
    tcmd_init(&tr2, 0, 0, c, 10, SCSI_DIR_FROM_DEV, r, 512);
    tcmd_submit(e, &tr2);
    cdb_rw10(c, 0x2a, 8, 1);
    tcmd_init(&tw, 0, 0, c, 10, SCSI_DIR_TO_DEV, w, 512);
    tcmd_submit(e, &tw);
    CHECK_EQ(fake_ctx_pending(e->ctx), 1);      /* only the first read */
    fake_ctx_run(e->ctx, 1);
    check_good(&tr);
    CHECK_EQ(fake_ctx_pending(e->ctx), 1);      /* the atomic write alone */
    CHECK_EQ(e->drive->nops[BLK_OP_WRITE] > 0, 1);
    CHECK_EQ(tr2.done, 0);
    fake_ctx_run(e->ctx, 1);
    check_good(&ta);
    fake_ctx_run(e->ctx, 0);
    check_good(&tr2);
    check_good(&tw);
    CHECK(tr2.order > ta.order && tw.order > ta.order);
    CHECK_EQ(r[0], 0x77);
    /* read-only */
    e->drive->readonly = true;
    cdb_wa16(c, 0, 1);
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, w, 512);
    check_sense(&t, 7, 0x27, 0);
    t_env_free(e);
}

static void test_orwrite(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, false);
    static uint8_t d[3 * 1024 * 1024];
    uint8_t c[16];
    struct tcmd t;

    /* 3 MiB: three chunks of read-OR-write */
    for (size_t i = 0; i < sizeof(d); i++) {
        d[i] = (uint8_t)(1u << (i % 8));
        e->drive->data[512 + i] = (uint8_t)(i * 5);
    }
    cdb_rw16(c, 0x8b, 1, 6144);
    c[1] = 0x08;
    tcmd_init(&t, 0, 0, c, 16, SCSI_DIR_TO_DEV, d, sizeof(d));
    tcmd_split(&t, 6);
    tcmd_run(e, &t);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, sizeof(d));
    CHECK_EQ(e->drive->last_flags, BLK_F_FUA);
    for (size_t i = 0; i < sizeof(d); i++)
        if (e->drive->data[512 + i] != (uint8_t)((i * 5) | (1u << (i % 8)))) {
            CHECK(!"ORWRITE result");
            break;
        }
    CHECK_EQ(e->drive->data[0], 0);
    /* ORPROTECT, zero blocks, range */
    cdb_rw16(c, 0x8b, 0, 1);
    c[1] = 0x20;
    t_run(e, &t, 0, c, 16, SCSI_DIR_TO_DEV, d, 512);
    check_sense(&t, 5, 0x24, 0);
    cdb_rw16(c, 0x8b, 0, 0);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    cdb_rw16(c, 0x8b, UINT64_MAX, 0);
    t_run(e, &t, 0, c, 16, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x21, 0);
    t_env_free(e);
}

static void test_read_defect(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t b[64];
    struct tcmd t;
    uint8_t c10[10] = { 0x37, 0, 0x18 | 0x05, 0, 0, 0, 0, 0, 32, 0 };
    uint8_t c12[12] = { 0xb7, 0x10 | 0x03, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };

    memset(b, 0xcc, sizeof(b));
    t_run(e, &t, 0, c10, 10, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 4);
    CHECK_EQ(b[1], 0x1d);
    CHECK_EQ(b[2] | b[3], 0);
    t_run(e, &t, 0, c12, 12, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 8);
    CHECK_EQ(b[1], 0x13);
    c10[2] = 0x01;
    t_run(e, &t, 0, c10, 10, SCSI_DIR_FROM_DEV, b, sizeof(b));
    check_sense(&t, 5, 0x24, 0);
    t_env_free(e);
}

static void test_4k(void)
{
    struct t_env *e = t_env_new(MiB + 1000, 4096, false);  /* 256 blocks, partial one dropped */
    static uint8_t w[8192], r[8192];
    uint8_t c[16];
    struct tcmd t;

    for (size_t i = 0; i < sizeof(w); i++)
        w[i] = (uint8_t)(i * 31);
    cdb_rw10(c, 0x2a, 255, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_TO_DEV, w, 4096);
    check_good(&t);
    CHECK_EQ(e->drive->last_offset, 255 * 4096);
    cdb_rw10(c, 0x28, 255, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, r, 4096);
    check_good(&t);
    CHECK_MEM(r, w, 4096);
    cdb_rw10(c, 0x28, 255, 2);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, r, 8192);
    check_sense(&t, 5, 0x21, 0);
    /* 512 bytes for a 4096-byte block: overrun */
    cdb_rw10(c, 0x28, 0, 1);
    t_run(e, &t, 0, c, 10, SCSI_DIR_FROM_DEV, r, 512);
    CHECK_EQ(t.c.host_status, SCSI_HOST_OVERRUN);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_read_capacity);
    RUN_TEST(test_rw_roundtrip);
    RUN_TEST(test_lba_range);
    RUN_TEST(test_overrun);
    RUN_TEST(test_errors);
    RUN_TEST(test_readonly);
    RUN_TEST(test_write_same);
    RUN_TEST(test_buffer_budget);
    RUN_TEST(test_unmap);
    RUN_TEST(test_verify);
    RUN_TEST(test_sync_prefetch);
    RUN_TEST(test_get_lba_status);
    RUN_TEST(test_start_stop_removable);
    RUN_TEST(test_compare_and_write);
    RUN_TEST(test_caw_gate);
    RUN_TEST(test_write_atomic);
    RUN_TEST(test_orwrite);
    RUN_TEST(test_read_defect);
    RUN_TEST(test_4k);
    return test_exit();
}

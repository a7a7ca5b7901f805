/* SANITIZE (SBC-4 5.30): CDB and parameter list checks, OVERWRITE passes
 * and INVERT, BLOCK/CRYPTO ERASE on thin LUs, IMMED with NOT READY and
 * progress, the failure mode and EXIT FAILURE MODE, RSOC and VPD B1. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

static void sanitize(struct t_env *e, struct tcmd *t, uint8_t b1, const void *param, uint16_t len, bool run)
{
    static uint8_t buf[8192];
    uint8_t cdb[10] = { 0x48, b1, 0, 0, 0, 0, 0, (uint8_t)(len >> 8), (uint8_t)len, 0 };

    if (param)
        memcpy(buf, param, len);
    tcmd_init(t, 0, 0, cdb, 10, len ? SCSI_DIR_TO_DEV : SCSI_DIR_NONE, len ? buf : NULL, len);
    if (run)
        tcmd_run(e, t);
    else
        tcmd_submit(e, t);
}

static bool all_bytes(const struct blk_drive *d, uint64_t off, uint64_t len, uint8_t v)
{
    for (uint64_t i = off; i < off + len; i++)
        if (d->data[i] != v)
            return false;
    return true;
}

static void test_overwrite(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, false);
    uint8_t p[512 + 8];
    struct tcmd t;

    memset(e->drive->data, 'a', 4 * MiB);
    /* parameter list length: 5 .. block size + 4, else invalid field in CDB */
    for (unsigned len = 0; len < 5; len++) {
        sanitize(e, &t, 0x01, p, (uint16_t)len, true);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xcf0007);
    }
    sanitize(e, &t, 0x01, p, 517, true);
    check_sense(&t, 5, 0x24, 0);
    /* OVERWRITE COUNT 0, pattern length 0 or beyond the block / the list */
    memset(p, 0, sizeof(p));
    put_be16(&p[2], 512);
    sanitize(e, &t, 0x01, p, 516, true);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x8c0000);
    p[0] = 1;
    put_be16(&p[2], 0);
    sanitize(e, &t, 0x01, p, 516, true);
    check_sense(&t, 5, 0x26, 0);
    put_be16(&p[2], 513);
    sanitize(e, &t, 0x01, p, 516, true);
    check_sense(&t, 5, 0x26, 0);
    put_be16(&p[2], 16);
    sanitize(e, &t, 0x01, p, 12, true);
    check_sense(&t, 5, 0x26, 0);
    p[0] = 0x21;                                /* TEST */
    sanitize(e, &t, 0x01, p, 20, true);
    check_sense(&t, 5, 0x26, 0);
    CHECK(all_bytes(e->drive, 0, 4 * MiB, 'a'));

    /* a 3-byte pattern repeated through every block */
    p[0] = 0x01;
    put_be16(&p[2], 3);
    p[4] = 1;
    p[5] = 2;
    p[6] = 3;
    sanitize(e, &t, 0x01, p, 7, true);
    check_good(&t);
    for (uint64_t o = 0; o < 4 * MiB; o += 512) {
        CHECK_EQ(e->drive->data[o], 1);
        CHECK_EQ(e->drive->data[o + 1], 2);
        CHECK_EQ(e->drive->data[o + 510], 1);
        CHECK_EQ(e->drive->data[o + 511], 2);
    }
    /* two passes with INVERT: the second writes the inverse */
    p[0] = 0x80 | 0x02;
    put_be16(&p[2], 1);
    p[4] = 0x0f;
    sanitize(e, &t, 0x01, p, 5, true);
    check_good(&t);
    CHECK(all_bytes(e->drive, 0, 4 * MiB, 0xf0));
    /* BLOCK/CRYPTO ERASE need a thin LU: not supported here (field pointer at SA) */
    sanitize(e, &t, 0x02, NULL, 0, true);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcc0001);
    sanitize(e, &t, 0x03, NULL, 0, true);
    check_sense(&t, 5, 0x24, 0);
    /* undefined service actions and reserved bits */
    for (unsigned sa = 0; sa < 0x1f; sa++) {
        if (sa >= 1 && sa <= 3)
            continue;
        sanitize(e, &t, (uint8_t)sa, NULL, 0, true);
        check_sense(&t, 5, 0x24, 0);
    }
    sanitize(e, &t, 0x40 | 0x01, p, 5, true);   /* ZNR */
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xce0001);
    t_env_free(e);
}

static void test_erase_immed(void)
{
    struct t_env *e = t_env_new(4 * MiB, 512, true);
    uint8_t b[512], cdb_rs[6] = { 0x03, 0, 0, 0, 18, 0 }, tur[6] = { 0 }, inq[6] = { 0x12, 0, 0, 0, 36, 0 };
    struct tcmd t, s;

    memset(e->drive->data, 'a', 4 * MiB);
    memset(e->drive->mapped, 1, 4 * MiB / 512);
    sanitize(e, &t, 0x02, b, 8, true);          /* no parameter list allowed */
    check_sense(&t, 5, 0x24, 0);
    /* IMMED: GOOD at once, then NOT READY, SANITIZE IN PROGRESS */
    sanitize(e, &s, 0x80 | 0x02, NULL, 0, false);
    check_good(&s);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 2, 0x04, 0x1b);
    CHECK(t_sks(&t.c) & 0x800000);
    t_run(e, &t, 0, inq, 6, SCSI_DIR_FROM_DEV, b, 36);
    check_good(&t);
    t_run(e, &t, 0, cdb_rs, 6, SCSI_DIR_FROM_DEV, b, 18);
    check_good(&t);
    CHECK_EQ(b[2] & 0x0f, 2);
    CHECK_EQ(b[12], 0x04);
    CHECK_EQ(b[13], 0x1b);
    CHECK_EQ(b[15] & 0x80, 0x80);               /* progress indication */
    fake_ctx_run(e->ctx, 0);
    t_run(e, &t, 0, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    CHECK(all_bytes(e->drive, 0, 4 * MiB, 0));
    for (unsigned i = 0; i < 4 * MiB / 512; i++)
        CHECK_EQ(e->drive->mapped[i], 0);
    /* CRYPTO ERASE does the same */
    memset(e->drive->data, 'a', 4 * MiB);
    sanitize(e, &t, 0x03, NULL, 0, true);
    check_good(&t);
    CHECK(all_bytes(e->drive, 0, 4 * MiB, 0));
    /* VPD B1: WABEREQ and WACEREQ 01b */
    {
        uint8_t cdb[6] = { 0x12, 1, 0xb1, 0, 64, 0 };

        t_run(e, &t, 0, cdb, 6, SCSI_DIR_FROM_DEV, b, 64);
        check_good(&t);
        CHECK_EQ(b[7], 0x50);
    }
    /* REPORT SUPPORTED OPERATION CODES lists the service actions */
    {
        uint8_t cdb[12] = { 0xa3, 0x0c, 0x02, 0x48, 0, 0x02, 0, 0, 0, 64, 0, 0 };

        t_run(e, &t, 0, cdb, 12, SCSI_DIR_FROM_DEV, b, 64);
        check_good(&t);
        CHECK_EQ(b[1] & 0x07, 3);
        CHECK_EQ(get_be16(&b[2]), 10);
    }
    t_env_free(e);
}

static void test_failure_mode(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);
    uint8_t p[8] = { 0x01, 0, 0, 1, 0xee }, b[512], rd[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    struct tcmd t;

    /* not in the failure mode: EXIT FAILURE MODE is GOOD, with no list */
    sanitize(e, &t, 0x1f, NULL, 0, true);
    check_good(&t);
    sanitize(e, &t, 0x1f, p, 8, true);
    check_sense(&t, 5, 0x24, 0);
    /* a failing OVERWRITE (AUSE=0): MEDIUM ERROR, SANITIZE COMMAND FAILED */
    e->drive->fail_errno = -EIO;
    e->drive->fail_op = BLK_OP_WRITE;
    e->drive->fail_count = 1;
    sanitize(e, &t, 0x01, p, 5, true);
    check_sense(&t, 3, 0x31, 0x03);
    t_run(e, &t, 0, rd, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_sense(&t, 3, 0x31, 0x03);
    /* AUSE was 0: EXIT FAILURE MODE is refused; a new sanitize recovers */
    sanitize(e, &t, 0x1f, NULL, 0, true);
    check_sense(&t, 5, 0x24, 0);
    sanitize(e, &t, 0x01, p, 5, true);
    check_good(&t);
    t_run(e, &t, 0, rd, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_good(&t);
    CHECK_EQ(b[0], 0xee);
    /* with AUSE=1 EXIT FAILURE MODE leaves it */
    e->drive->fail_errno = -EIO;
    e->drive->fail_op = BLK_OP_WRITE;
    e->drive->fail_count = 1;
    sanitize(e, &t, 0x20 | 0x01, p, 5, true);
    check_sense(&t, 3, 0x31, 0x03);
    sanitize(e, &t, 0x1f, NULL, 0, true);
    check_good(&t);
    t_run(e, &t, 0, rd, 10, SCSI_DIR_FROM_DEV, b, 512);
    check_good(&t);
    t_env_free(e);
}

static void removed_cb(void *opaque)
{
    ++*(int *)opaque;
}

static void test_readonly_and_removal(void)
{
    struct t_env *e = t_env_new(MiB, 512, true);
    uint8_t p[8] = { 0x01, 0, 0, 1, 0xee };
    struct tcmd t;
    int removed = 0;

    e->drive->readonly = true;
    sanitize(e, &t, 0x01, p, 5, true);
    check_sense(&t, 7, 0x27, 0);
    sanitize(e, &t, 0x02, NULL, 0, true);
    check_sense(&t, 7, 0x27, 0);
    e->drive->readonly = false;
    /* a LU removed during an IMMED sanitize goes once the sanitize is done */
    sanitize(e, &t, 0x80 | 0x01, p, 5, false);
    check_good(&t);
    CHECK_EQ(scsi_bus_remove_lun(e->bus, 0, 0, removed_cb, &removed), 0);
    CHECK_EQ(removed, 0);
    fake_ctx_run(e->ctx, 0);
    CHECK_EQ(removed, 1);
    CHECK_EQ(e->drive->data[0], 0xee);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_overwrite);
    RUN_TEST(test_erase_immed);
    RUN_TEST(test_failure_mode);
    RUN_TEST(test_readonly_and_removal);
    return test_exit();
}

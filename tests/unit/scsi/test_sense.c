/* sense.c: the reason table, fixed and descriptor formats, errno mapping. */
#include <errno.h>

#include "test.h"
#include "scsi/scsi_int.h"

static void test_fixed(void)
{
    uint8_t b[96];
    size_t n;

    memset(b, 0xee, sizeof(b));
    n = sense_build(b, sizeof(b), false, SENSE_INVALID_FIELD_CDB, sense_sks_field(true, 2, 5), false, 0);
    CHECK_EQ(n, 18);
    CHECK_EQ(b[0], 0x70);
    CHECK_EQ(b[2], 0x05);
    CHECK_EQ(b[7], 10);
    CHECK_EQ(b[12], 0x24);
    CHECK_EQ(b[13], 0x00);
    CHECK_EQ(b[15], 0x80 | 0x40 | 0x08 | 5);    /* SKSV C/D BPV bit 5 */
    CHECK_EQ(b[16], 0);
    CHECK_EQ(b[17], 2);
    CHECK_EQ(b[18], 0xee);                      /* nothing written past the sense */
}

static void test_fixed_info(void)
{
    uint8_t b[96];

    sense_build(b, sizeof(b), false, SENSE_MISCOMPARE, 0, true, 0x1234);
    CHECK_EQ(b[0], 0xf0);                       /* VALID */
    CHECK_EQ(b[2], 0x0e);
    CHECK_EQ(b[3], 0);
    CHECK_EQ(b[5], 0x12);
    CHECK_EQ(b[6], 0x34);
    CHECK_EQ(b[12], 0x1d);
    CHECK_EQ(b[15], 0);                         /* no SKS */
    /* an INFORMATION value above 32 bits can't be shown in fixed format */
    sense_build(b, sizeof(b), false, SENSE_MISCOMPARE, 0, true, 1ull << 40);
    CHECK_EQ(b[0], 0x70);
}

static void test_descriptor(void)
{
    uint8_t b[96];
    size_t n;

    n = sense_build(b, sizeof(b), true, SENSE_INVALID_FIELD_PARAM, sense_sks_field(false, 300, -1), false, 0);
    CHECK_EQ(n, 16);
    CHECK_EQ(b[0], 0x72);
    CHECK_EQ(b[1], 0x05);
    CHECK_EQ(b[2], 0x26);
    CHECK_EQ(b[3], 0x00);
    CHECK_EQ(b[7], 8);
    CHECK_EQ(b[8], 0x02);
    CHECK_EQ(b[9], 0x06);
    CHECK_EQ(b[12], 0x80);                      /* SKSV, C/D=0, BPV=0 */
    CHECK_EQ(b[13], 0x01);
    CHECK_EQ(b[14], 0x2c);

    n = sense_build(b, sizeof(b), true, SENSE_MISCOMPARE, 0, true, 1ull << 40);
    CHECK_EQ(n, 20);
    CHECK_EQ(b[7], 12);
    CHECK_EQ(b[8], 0x00);
    CHECK_EQ(b[9], 0x0a);
    CHECK_EQ(b[10], 0x80);
    CHECK_EQ(b[14], 0x01);                      /* bit 40 */

    n = sense_build(b, sizeof(b), true, SENSE_UA_POWER_ON, 0, false, 0);
    CHECK_EQ(n, 8);
    CHECK_EQ(b[1], 0x06);
    CHECK_EQ(b[2], 0x29);
    CHECK_EQ(b[7], 0);
}

static void test_truncate(void)
{
    uint8_t b[8];

    memset(b, 0xee, sizeof(b));
    CHECK_EQ(sense_build(b, 4, false, SENSE_LBA_OUT_OF_RANGE, 0, false, 0), 4);
    CHECK_EQ(b[0], 0x70);
    CHECK_EQ(b[4], 0xee);
}

static void test_table(void)
{
    CHECK_EQ(sense_reason_info(SENSE_OK)->status, SCSI_STATUS_GOOD);
    CHECK_EQ(sense_reason_info(SENSE_BUSY)->status, SCSI_STATUS_BUSY);
    CHECK_EQ(sense_reason_info(SENSE_LUN_NOT_SUPPORTED)->asc, 0x25);
    CHECK_EQ(sense_reason_info(SENSE_SPACE_ALLOC_FAILED)->ascq, 0x07);
    CHECK_EQ(sense_reason_info(SENSE_UA_LUNS_CHANGED)->asc, 0x3f);
    CHECK_EQ(sense_reason_info(SENSE_UA_LUNS_CHANGED)->ascq, 0x0e);
    /* out-of-range reasons map to a hardware error, never crash */
    CHECK_EQ(sense_reason_info(9999)->key, 0x04);
    CHECK_EQ(sense_reason_info(-5)->key, 0x04);
    CHECK(sense_reason_is_ua(SENSE_UA_CAPACITY_CHANGED));
    CHECK(!sense_reason_is_ua(SENSE_INVALID_OPCODE));
    for (int r = 1; r < SENSE__COUNT; r++) {
        const struct sense_info *si = sense_reason_info(r);

        CHECK(si->status != SCSI_STATUS_GOOD || r == SENSE_NO_SENSE);
        if (si->status == SCSI_STATUS_CHECK_CONDITION)
            CHECK(si->key != 0);
    }
}

static void test_errno(void)
{
    CHECK_EQ(sense_from_errno(0, false), SENSE_OK);
    /* QEMU's scsi_sense_from_errno where it has an answer */
    CHECK_EQ(sense_from_errno(-EIO, false), SENSE_IO_ERROR);
    CHECK_EQ(sense_from_errno(-EIO, true), SENSE_IO_ERROR);
    CHECK_EQ(sense_from_errno(-ETIMEDOUT, true), SENSE_IO_ERROR);
    CHECK_EQ(sense_reason_info(SENSE_IO_ERROR)->key, 0x0b);
    CHECK_EQ(sense_reason_info(SENSE_IO_ERROR)->asc, 0x00);
    CHECK_EQ(sense_reason_info(SENSE_IO_ERROR)->ascq, 0x06);
    CHECK_EQ(sense_from_errno(-ENODATA, true), SENSE_READ_ERROR);
    CHECK_EQ(sense_from_errno(-EREMOTEIO, false), SENSE_INTERNAL_FAILURE);
    CHECK_EQ(sense_from_errno(-ENODEV, false), SENSE_INTERNAL_FAILURE);
    CHECK_EQ(sense_from_errno(-EDOM, false), SENSE_TASK_SET_FULL);
    CHECK_EQ(sense_from_errno(-EBADE, true), SENSE_RESERVATION_CONFLICT);
    CHECK_EQ(sense_from_errno(-EDQUOT, true), SENSE_SPACE_ALLOC_FAILED);
    CHECK_EQ(sense_reason_info(SENSE_SPACE_ALLOC_FAILED)->key, 0x07);
    CHECK_EQ(sense_reason_info(SENSE_SPACE_ALLOC_FAILED)->asc, 0x27);
    CHECK_EQ(sense_reason_info(SENSE_SPACE_ALLOC_FAILED)->ascq, 0x07);
    CHECK_EQ(sense_from_errno(-ENOSPC, true), SENSE_SPACE_ALLOC_FAILED);
    CHECK_EQ(sense_from_errno(-EROFS, true), SENSE_WRITE_PROTECTED);
    CHECK_EQ(sense_from_errno(-ENOMEM, false), SENSE_BUSY);
    CHECK_EQ(sense_from_errno(-EAGAIN, true), SENSE_BUSY);
    CHECK_EQ(sense_from_errno(-EINVAL, true), SENSE_INTERNAL_FAILURE);
    CHECK_EQ(sense_from_errno(-ERANGE, false), SENSE_LBA_OUT_OF_RANGE);
    CHECK_EQ(sense_from_errno(-ENOMEDIUM, false), SENSE_MEDIUM_NOT_PRESENT);
}

int main(void)
{
    RUN_TEST(test_fixed);
    RUN_TEST(test_fixed_info);
    RUN_TEST(test_descriptor);
    RUN_TEST(test_truncate);
    RUN_TEST(test_table);
    RUN_TEST(test_errno);
    return test_exit();
}

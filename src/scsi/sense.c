/* The one table from sense reason to status and sense key/ASC/ASCQ, and the
 * sense data formats: fixed (SPC-4 4.5.3) and descriptor (SPC-4 4.5.2). */
#include "scsi/scsi_int.h"

#include <errno.h>
#include <string.h>

/* SPC-4 4.5.6 sense keys */
#define SK_NO_SENSE         0x0
#define SK_NOT_READY        0x2
#define SK_MEDIUM_ERROR     0x3
#define SK_HARDWARE_ERROR   0x4
#define SK_ILLEGAL_REQUEST  0x5
#define SK_UNIT_ATTENTION   0x6
#define SK_DATA_PROTECT     0x7
#define SK_ABORTED_COMMAND  0xb
#define SK_COPY_ABORTED     0xa
#define SK_MISCOMPARE       0xe

#define CC SCSI_STATUS_CHECK_CONDITION

static const struct sense_info sense_table[SENSE__COUNT] = {
    [SENSE_OK]                      = { SCSI_STATUS_GOOD, 0, 0, 0 },
    [SENSE_NO_SENSE]                = { SCSI_STATUS_GOOD, SK_NO_SENSE, 0x00, 0x00 },
    [SENSE_INVALID_OPCODE]          = { CC, SK_ILLEGAL_REQUEST, 0x20, 0x00 },
    [SENSE_INVALID_FIELD_CDB]       = { CC, SK_ILLEGAL_REQUEST, 0x24, 0x00 },
    [SENSE_INVALID_FIELD_PARAM]     = { CC, SK_ILLEGAL_REQUEST, 0x26, 0x00 },
    [SENSE_PARAM_LIST_LENGTH]       = { CC, SK_ILLEGAL_REQUEST, 0x1a, 0x00 },
    [SENSE_LBA_OUT_OF_RANGE]        = { CC, SK_ILLEGAL_REQUEST, 0x21, 0x00 },
    [SENSE_LUN_NOT_SUPPORTED]       = { CC, SK_ILLEGAL_REQUEST, 0x25, 0x00 },
    [SENSE_SAVING_PARAMS_UNSUP]     = { CC, SK_ILLEGAL_REQUEST, 0x39, 0x00 },
    [SENSE_REMOVAL_PREVENTED]       = { CC, SK_ILLEGAL_REQUEST, 0x53, 0x02 },
    [SENSE_MEDIUM_NOT_PRESENT]      = { CC, SK_NOT_READY, 0x3a, 0x00 },
    [SENSE_NO_MEDIUM_TRAY_CLOSED]   = { CC, SK_NOT_READY, 0x3a, 0x01 },
    [SENSE_NO_MEDIUM_TRAY_OPEN]     = { CC, SK_NOT_READY, 0x3a, 0x02 },
    [SENSE_INCOMPATIBLE_FORMAT]     = { CC, SK_ILLEGAL_REQUEST, 0x30, 0x02 },
    [SENSE_WRITE_PROTECTED]         = { CC, SK_DATA_PROTECT, 0x27, 0x00 },
    [SENSE_SPACE_ALLOC_FAILED]      = { CC, SK_DATA_PROTECT, 0x27, 0x07 },
    [SENSE_READ_ERROR]              = { CC, SK_MEDIUM_ERROR, 0x11, 0x00 },
    [SENSE_WRITE_ERROR]             = { CC, SK_MEDIUM_ERROR, 0x0c, 0x00 },
    [SENSE_IO_ERROR]                = { CC, SK_ABORTED_COMMAND, 0x00, 0x06 },
    [SENSE_MISCOMPARE]              = { CC, SK_MISCOMPARE, 0x1d, 0x00 },
    [SENSE_INTERNAL_FAILURE]        = { CC, SK_HARDWARE_ERROR, 0x44, 0x00 },
    [SENSE_UA_POWER_ON]             = { CC, SK_UNIT_ATTENTION, 0x29, 0x00 },
    [SENSE_UA_BUS_DEVICE_RESET]     = { CC, SK_UNIT_ATTENTION, 0x29, 0x03 },
    [SENSE_UA_IT_NEXUS_LOSS]        = { CC, SK_UNIT_ATTENTION, 0x29, 0x07 },
    [SENSE_UA_MODE_PARAMS_CHANGED]  = { CC, SK_UNIT_ATTENTION, 0x2a, 0x01 },
    [SENSE_UA_CAPACITY_CHANGED]     = { CC, SK_UNIT_ATTENTION, 0x2a, 0x09 },
    [SENSE_UA_LUNS_CHANGED]         = { CC, SK_UNIT_ATTENTION, 0x3f, 0x0e },
    [SENSE_UA_MEDIUM_CHANGED]       = { CC, SK_UNIT_ATTENTION, 0x28, 0x00 },
    [SENSE_UA_RESERVATIONS_PREEMPTED]   = { CC, SK_UNIT_ATTENTION, 0x2a, 0x03 },
    [SENSE_UA_RESERVATIONS_RELEASED]    = { CC, SK_UNIT_ATTENTION, 0x2a, 0x04 },
    [SENSE_UA_REGISTRATIONS_PREEMPTED]  = { CC, SK_UNIT_ATTENTION, 0x2a, 0x05 },
    [SENSE_INVALID_RELEASE_PR]      = { CC, SK_ILLEGAL_REQUEST, 0x26, 0x04 },
    [SENSE_INSUFFICIENT_REG_RES]    = { CC, SK_ILLEGAL_REQUEST, 0x55, 0x04 },
    [SENSE_SANITIZE_IN_PROGRESS]    = { CC, SK_NOT_READY, 0x04, 0x1b },
    [SENSE_SANITIZE_FAILED]         = { CC, SK_MEDIUM_ERROR, 0x31, 0x03 },
    [SENSE_OPERATION_IN_PROGRESS]   = { CC, SK_ILLEGAL_REQUEST, 0x00, 0x16 },
    [SENSE_TOO_MANY_TARGET_DESC]    = { CC, SK_ILLEGAL_REQUEST, 0x26, 0x06 },
    [SENSE_UNSUPPORTED_TARGET_DESC] = { CC, SK_ILLEGAL_REQUEST, 0x26, 0x07 },
    [SENSE_TOO_MANY_SEGMENT_DESC]   = { CC, SK_ILLEGAL_REQUEST, 0x26, 0x08 },
    [SENSE_UNSUPPORTED_SEGMENT_DESC] = { CC, SK_ILLEGAL_REQUEST, 0x26, 0x09 },
    [SENSE_COPY_ABORTED]            = { CC, SK_COPY_ABORTED, 0x00, 0x00 },
    [SENSE_UNREACHABLE_COPY_TARGET] = { CC, SK_COPY_ABORTED, 0x08, 0x04 },
    [SENSE_COPY_TARGET_NOT_REACHABLE] = { CC, SK_COPY_ABORTED, 0x0d, 0x02 },
    [SENSE_INCORRECT_COPY_TARGET]   = { CC, SK_COPY_ABORTED, 0x0d, 0x03 },
    [SENSE_COPY_ABORTED_WRITE_PROTECTED] = { CC, SK_COPY_ABORTED, 0x27, 0x00 },
    [SENSE_BUSY]                    = { SCSI_STATUS_BUSY, 0, 0, 0 },
    [SENSE_TASK_SET_FULL]           = { SCSI_STATUS_TASK_SET_FULL, 0, 0, 0 },
    [SENSE_RESERVATION_CONFLICT]    = { SCSI_STATUS_RESERVATION_CONFLICT, 0, 0, 0 },
};

const struct sense_info *sense_reason_info(int reason)
{
    if (reason < 0 || reason >= SENSE__COUNT)
        reason = SENSE_INTERNAL_FAILURE;
    return &sense_table[reason];
}

bool sense_reason_is_ua(int reason)
{
    return reason >= 0 && reason < SENSE__COUNT && sense_table[reason].key == SK_UNIT_ATTENTION;
}

size_t sense_build(uint8_t *buf, size_t cap, bool desc, int reason,
                   uint32_t sks, bool info_valid, uint64_t info)
{
    const struct sense_info *si = sense_reason_info(reason);
    uint8_t tmp[32];
    size_t len;

    memset(tmp, 0, sizeof(tmp));
    if (desc) {
        /* SPC-4 4.5.2: header, then information (4.5.2.2) and
         * sense-key specific (4.5.2.4) descriptors */
        size_t n = 8;
        tmp[0] = 0x72;
        tmp[1] = si->key;
        tmp[2] = si->asc;
        tmp[3] = si->ascq;
        if (info_valid) {
            tmp[n] = 0x00;
            tmp[n + 1] = 0x0a;
            tmp[n + 2] = 0x80;
            put_be64(&tmp[n + 4], info);
            n += 12;
        }
        if (sks & SENSE_SKS_VALID) {
            tmp[n] = 0x02;
            tmp[n + 1] = 0x06;
            tmp[n + 4] = (uint8_t)(sks >> 16);
            tmp[n + 5] = (uint8_t)(sks >> 8);
            tmp[n + 6] = (uint8_t)sks;
            n += 8;
        }
        tmp[7] = (uint8_t)(n - 8);
        len = n;
    } else {
        /* SPC-4 4.5.3: 18 bytes; INFORMATION holds 32 bits only */
        tmp[0] = 0x70;
        if (info_valid && info <= UINT32_MAX) {
            tmp[0] |= 0x80;
            put_be32(&tmp[3], (uint32_t)info);
        }
        tmp[2] = si->key;
        tmp[7] = 10;
        tmp[12] = si->asc;
        tmp[13] = si->ascq;
        if (sks & SENSE_SKS_VALID) {
            tmp[15] = (uint8_t)(sks >> 16);
            tmp[16] = (uint8_t)(sks >> 8);
            tmp[17] = (uint8_t)sks;
        }
        len = 18;
    }
    if (len > cap)
        len = cap;
    memcpy(buf, tmp, len);
    return len;
}

/* One errno -> sense table for block-layer completions: QEMU's
 * (scsi_sense_from_errno, used by scsi-disk for werror/rerror=report) for
 * the errnos it names, plus our own for errnos our block layer gives a
 * specific meaning (read-only, a drive that shrank, transient shortage). */
int sense_from_errno(int err, bool is_write)
{
    (void)is_write;
    switch (err) {
    case 0:
        return SENSE_OK;
    case -ENOSPC:
    case -EDQUOT:
        return SENSE_SPACE_ALLOC_FAILED;    /* 07/27/07, as QEMU for ENOSPC */
    case -ENOMEDIUM:
        return SENSE_MEDIUM_NOT_PRESENT;    /* QEMU */
    case -ENODATA:
        return SENSE_READ_ERROR;            /* QEMU: Linux's medium error */
    case -EREMOTEIO:
    case -ENODEV:
        return SENSE_INTERNAL_FAILURE;      /* QEMU: 04/44/00 TARGET FAILURE */
    case -EDOM:
        return SENSE_TASK_SET_FULL;         /* QEMU */
    case -EBADE:
        return SENSE_RESERVATION_CONFLICT;  /* QEMU: Linux's reservation conflict */
    case -EROFS:
    case -EPERM:
    case -EACCES:
        return SENSE_WRITE_PROTECTED;
    case -ERANGE:
        return SENSE_LBA_OUT_OF_RANGE;      /* drive shrank under the command */
    case -ENOMEM:
    case -EAGAIN:
    case -EBUSY:
        return SENSE_BUSY;                  /* transient: the initiator retries */
    case -EINVAL:
    case -EOPNOTSUPP:
    case -EFAULT:
    case -EBADF:
        return SENSE_INTERNAL_FAILURE;      /* our request was wrong, not the medium */
    default:
        return SENSE_IO_ERROR;              /* QEMU: 0B/00/06, retried by initiators */
    }
}

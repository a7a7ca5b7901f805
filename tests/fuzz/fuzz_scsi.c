/* libFuzzer target: CDBs + data through the SCSI target (scsi_bus_submit and
 * scsi_bus_tmf) for the SBC/SPC and MMC opcode tables, on in-memory LUNs
 * (tests/unit/scsi/fake_blk.c): disks with 512 and 4096-byte blocks (LUNs 0,
 * 1), a CD-ROM with a medium (2) and an empty one (3), removable disks with
 * a medium (4) and without (5), plus an absent LUN. The input is a sequence
 * of commands (CDB, CDB field length, direction, buffer size, split into
 * iovecs, data-out bytes; bits 7-6 of the op byte pick the device pair),
 * block-layer progress (bits 4-2 of its byte: LUN 1's I/O error policy,
 * report/ignore/hold, and its held commands retried or reset by the
 * transport), TMFs, injected I/O errors and host tray actions (open, forced
 * open, close, remove the medium, insert a new one) on LUNs 2-5; commands
 * overlap, as with a real queue.
 *
 * Buffers are malloc'd to their exact size so ASan sees any access past a
 * guest buffer. Oracle: every command completes exactly once, never reports
 * more data moved than its buffer, and sense fits its field; every TMF
 * completes once. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "scsi_test.h"
#include "util/log.h"

#define MAX_CMDS        16
#define MAX_OPS         64
#define RM_FIRST        2       /* LUNs 2..5 have a tray */
#define RM_COUNT        4

/* The medium in each removable LU's tray, as the fuzzer put it there; one
 * taken out is freed when the SCSI layer is done with it. */
static struct blk_drive *tray_drive[RM_COUNT];

static void medium_removed(void *opaque, struct blk_drive *d)
{
    (void)opaque;
    fake_drive_free(d);
}

static void add_removable(struct t_env *e, uint16_t lun, enum scsi_dev_type type, uint32_t lbs, uint64_t size)
{
    struct scsi_dev_config cfg = { .type = type, .removable = true, .logical_block_size = lbs };
    char err[128];

    tray_drive[lun - RM_FIRST] = size ? fake_drive_new(size) : NULL;
    if (scsi_bus_add_lun(e->bus, 0, lun, &cfg, tray_drive[lun - RM_FIRST], err, sizeof(err)))
        abort();
}

static void tray_action(struct t_env *e, struct fz *f)
{
    uint8_t sel = fz_u8(f);
    unsigned i = sel & 3;
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, (uint16_t)(RM_FIRST + i));
    char err[128];

    switch ((sel >> 2) % 5) {
    case 0:
        scsi_lun_open_tray(lu, sel & 0x80);
        break;
    case 1:
        scsi_lun_close_tray(lu);
        break;
    case 2:
        if (scsi_lun_remove_medium(lu, medium_removed, NULL) == 0)
            tray_drive[i] = NULL;
        break;
    case 3: {
        struct blk_drive *d = fake_drive_new((uint64_t)(1 + fz_u8(f) % 64) * 2048 + (sel & 0x40 ? 100 : 0));

        if (scsi_lun_insert_medium(lu, d, err, sizeof(err)) == 0)
            tray_drive[i] = d;
        else
            fake_drive_free(d);
        break;
    }
    default: {
        struct scsi_medium_state ms;

        scsi_lun_get_medium(lu, &ms);
        if (ms.drive != tray_drive[i] || ms.has_medium != (tray_drive[i] != NULL))
            abort();
        break;
    }
    }
}

static enum scsi_io_error_action g_action;

/* The LU owner's error hook (the daemon's in vscsid): a fuzz-chosen action. */
static enum scsi_io_error_action io_error_cb(void *opaque, const struct scsi_io_error *e)
{
    (void)opaque;
    if (e->err <= 0)
        abort();
    return g_action;
}

static bool odd_tag(void *opaque, const struct scsi_cmd *cmd)
{
    (void)opaque;
    return cmd->tag & 1;
}

/* Bits 4-2 of a progress byte: the policy, or what happens to held commands. */
static void held_action(struct t_env *e, unsigned a)
{
    switch (a) {
    case 1:
    case 2:
    case 3:
        g_action = (enum scsi_io_error_action)(a - 1);     /* report, ignore, hold */
        break;
    case 4:
        scsi_bus_retry_held(e->bus);
        break;
    case 5:
        scsi_bus_reset_held(e->bus, NULL, NULL);
        break;
    case 6:
        scsi_bus_reset_held(e->bus, odd_tag, NULL);
        break;
    default:
        break;
    }
}

struct fcmd {
    struct tcmd t;
    uint8_t *buf;
    bool used;
};

struct ftmf {
    struct scsi_tmf tmf;
    int done;
};

static void tmf_done(struct scsi_tmf *tmf)
{
    ((struct ftmf *)tmf)->done++;
}

static void check_done(struct fcmd *c)
{
    if (c->t.done != 1)
        abort();
    if (c->t.c.host_status == SCSI_HOST_OK) {
        if (c->t.c.xfer_len > c->t.c.buf_len || c->t.c.sense_len > SCSI_SENSE_MAX)
            abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_ERR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t cdb_lens[] = { 32, 32, 32, 6, 10, 12, 16, 0 };
    static struct fcmd cmds[MAX_CMDS];
    static struct ftmf tmfs[8];
    struct fz f = { data, size };
    struct t_env *e = t_env_new(64 << 10, 512, true);
    struct scsi_dev_config cfg4k = { .type = SCSI_DEV_HD, .id = "disk1",
                                     .logical_block_size = 4096, .physical_block_size = 4096,
                                     .io_error_cb = io_error_cb };
    unsigned ntmf = 0;
    uint64_t tag = 1;

    memset(cmds, 0, sizeof(cmds));
    memset(tmfs, 0, sizeof(tmfs));
    g_action = SCSI_IOERR_REPORT;
    if (!t_add_lun(e, 0, 1, &cfg4k, 256 << 10))
        abort();
    add_removable(e, 2, SCSI_DEV_CD, 0, 64 << 10);
    add_removable(e, 3, SCSI_DEV_CD, 0, 0);
    add_removable(e, 4, SCSI_DEV_HD, 512, 64 << 10);
    add_removable(e, 5, SCSI_DEV_HD, 4096, 0);

    for (unsigned ops = 0; fz_left(&f) && ops < MAX_OPS; ops++) {
        uint8_t op = fz_u8(&f);

        switch (op % 6) {
        case 0:
        case 1: {                                       /* submit a command */
            unsigned slot;

            for (slot = 0; slot < MAX_CMDS && cmds[slot].used; slot++)
                ;
            if (slot == MAX_CMDS)
                break;
            struct fcmd *c = &cmds[slot];
            uint8_t sel = fz_u8(&f), cdb[SCSI_CDB_MAX];
            uint16_t lun = (sel & 3) == 3 ? 7 : (sel & 1);
            unsigned pair = op >> 6;

            if (lun != 7 && pair && pair < 3)
                lun = (uint16_t)(lun + 2 * pair);     /* 2/3: CD-ROMs, 4/5: removable disks */
            unsigned cdb_len = cdb_lens[(sel >> 2) & 7];
            enum scsi_dir dir = (enum scsi_dir)(((sel >> 5) & 3) % 3);
            size_t len = fz_u8(&f) & 0x80 ? fz_u32(&f) % (128u << 10) : fz_u16(&f) % 4097;
            unsigned pieces = 1 + fz_u8(&f) % 8;

            if (cdb_len == 0)
                cdb_len = fz_u8(&f) % (SCSI_CDB_MAX + 1);
            fz_bytes(&f, cdb, sizeof(cdb));
            if (dir == SCSI_DIR_NONE)
                len = 0;
            c->buf = len ? malloc(len) : NULL;
            if (len && !c->buf)
                abort();
            if (dir == SCSI_DIR_TO_DEV)
                fz_bytes(&f, c->buf, len < 512 ? len : 512);
            else if (len)
                memset(c->buf, 0xa5, len);
            tcmd_init(&c->t, (sel & 0x80) ? 1 : 0, lun, cdb, cdb_len, dir, c->buf, len);
            c->t.c.cdb_len = (uint8_t)cdb_len;
            if (len && pieces > 1 && len >= pieces)
                tcmd_split(&c->t, pieces);
            c->t.c.tag = tag++;
            c->used = true;
            tcmd_submit(e, &c->t);
            break;
        }
        case 2: {                                       /* block layer makes progress */
            uint8_t sel = fz_u8(&f);

            held_action(e, (sel >> 2) & 7);
            fake_ctx_run(e->ctx, sel % 4);
            break;
        }
        case 3: {                                       /* task management */
            if (ntmf == 8)
                break;
            struct ftmf *t = &tmfs[ntmf++];
            uint8_t sel = fz_u8(&f);

            t->tmf.type = (enum scsi_tmf_type)(sel % 8);
            t->tmf.target = (sel & 0x80) ? 1 : 0;
            t->tmf.lun = (sel >> 3) & 7;        /* 6, 7: absent */
            t->tmf.tag = fz_u8(&f) % (tag + 1);
            t->tmf.done_cb = tmf_done;
            scsi_bus_tmf(e->bus, &t->tmf);
            break;
        }
        case 4: {                                       /* I/O errors from the drive */
            uint8_t sel = fz_u8(&f);
            struct blk_drive *d = (sel & 1) ? e->extra[0] : e->drive;
            static const int errs[] = { EIO, ENOSPC, EINVAL, EROFS };

            d->fail_errno = errs[(sel >> 1) & 3];
            d->fail_op = (sel & 0x20) ? -1 : (sel >> 3) % 5;
            d->fail_count = 1 + (sel >> 6);
            break;
        }
        case 5:                                         /* the host moves a tray */
            tray_action(e, &f);
            break;
        }
        /* Reap finished commands so their slots can be reused. */
        for (unsigned i = 0; i < MAX_CMDS; i++) {
            if (cmds[i].used && cmds[i].t.done) {
                check_done(&cmds[i]);
                free(cmds[i].buf);
                cmds[i].used = false;
            }
        }
    }
    fake_ctx_run(e->ctx, 0);
    /* held commands: retried with errors reported now (the injected errors
     * run out), so every command ends */
    g_action = SCSI_IOERR_REPORT;
    scsi_bus_retry_held(e->bus);
    fake_ctx_run(e->ctx, 0);
    if (scsi_bus_held_count(e->bus))
        abort();
    for (unsigned i = 0; i < MAX_CMDS; i++) {
        if (cmds[i].used) {
            check_done(&cmds[i]);
            free(cmds[i].buf);
        }
    }
    for (unsigned i = 0; i < ntmf; i++)
        if (tmfs[i].done != 1)
            abort();
    t_env_free(e);
    for (unsigned i = 0; i < RM_COUNT; i++) {
        if (tray_drive[i])
            fake_drive_free(tray_drive[i]);
        tray_drive[i] = NULL;
    }
    return 0;
}

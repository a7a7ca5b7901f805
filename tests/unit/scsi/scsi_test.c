#include "scsi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned t_order;

static void ev_cb(void *opaque, enum scsi_bus_event ev, uint8_t target, uint16_t lun)
{
    struct t_env *e = opaque;

    if (e->nevents < T_MAX_EVENTS) {
        e->events[e->nevents].ev = ev;
        e->events[e->nevents].target = target;
        e->events[e->nevents].lun = lun;
        e->nevents++;
    }
}

static const struct scsi_bus_listener_ops ev_ops = { ev_cb };

struct t_env *t_env_new(uint64_t size, uint32_t lbs, bool discard)
{
    struct t_env *e = calloc(1, sizeof(*e));
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD, .id = "disk0", .logical_block_size = lbs };
    char err[128];

    e->bus = scsi_bus_new();
    e->ctx = fake_ctx_new();
    e->drive = fake_drive_new(size);
    e->drive->discard = discard;
    e->drive->discard_zeroes = discard;
    scsi_bus_set_listener(e->bus, &ev_ops, e);
    if (scsi_bus_add_lun(e->bus, 0, 0, &cfg, e->drive, err, sizeof(err))) {
        fprintf(stderr, "add_lun: %s\n", err);
        abort();
    }
    t_clear_ua(e, 0, 0);
    e->nevents = 0;
    return e;
}

struct blk_drive *t_add_lun(struct t_env *e, uint8_t target, uint16_t lun, const struct scsi_dev_config *cfg,
                            uint64_t size)
{
    struct blk_drive *d = fake_drive_new(size);
    char err[128];

    if (scsi_bus_add_lun(e->bus, target, lun, cfg, d, err, sizeof(err))) {
        fprintf(stderr, "add_lun %u:%u: %s\n", target, lun, err);
        fake_drive_free(d);
        return NULL;
    }
    e->extra[e->nextra++] = d;
    return d;
}

static void noop_removed(void *opaque) { (void)opaque; }

static int remove_one(void *opaque, const struct scsi_lun_info *info)
{
    struct t_env *e = opaque;

    scsi_bus_remove_lun(e->bus, info->target, info->lun, noop_removed, NULL);
    return 1;   /* restart: the map changed */
}

void t_env_free(struct t_env *e)
{
    while (scsi_bus_lun_count(e->bus))
        scsi_bus_foreach_lun(e->bus, remove_one, e);
    scsi_bus_free(e->bus);
    fake_ctx_free(e->ctx);
    fake_drive_free(e->drive);
    for (unsigned i = 0; i < e->nextra; i++)
        fake_drive_free(e->extra[i]);
    free(e);
}

void t_clear_ua(struct t_env *e, uint8_t target, uint16_t lun)
{
    t_clear_ua_nexus(e, target, lun, 0);
}

void t_clear_ua_nexus(struct t_env *e, uint8_t target, uint16_t lun, uint32_t nexus)
{
    for (int i = 0; i < 16; i++) {
        uint8_t cdb[6] = { 0x03, 0, 0, 0, 18, 0 };
        uint8_t buf[18];
        struct tcmd t;

        tcmd_init(&t, target, lun, cdb, 6, SCSI_DIR_FROM_DEV, buf, sizeof(buf));
        t.c.nexus = nexus;
        tcmd_run(e, &t);
        if (t.c.xfer_len < 14 || (buf[2] & 0x0f) != 0x06)
            return;
    }
}

static void done_cb(struct scsi_cmd *c)
{
    struct tcmd *t = (struct tcmd *)c;

    t->done++;
    t->order = ++t_order;
}

void tcmd_init(struct tcmd *t, uint8_t target, uint16_t lun, const uint8_t *cdb, unsigned cdb_len,
               enum scsi_dir dir, void *buf, size_t len)
{
    memset(t, 0, sizeof(*t));
    t->c.target = target;
    t->c.lun = lun;
    memcpy(t->c.cdb, cdb, cdb_len);
    t->c.cdb_len = SCSI_CDB_MAX;    /* as virtio-scsi: the whole CDB field */
    t->c.dir = dir;
    t->iov[0].iov_base = buf;
    t->iov[0].iov_len = len;
    t->c.iov = t->iov;
    t->c.iovcnt = buf ? 1 : 0;
    t->c.buf_len = buf ? len : 0;
    t->c.done_cb = done_cb;
    (void)cdb_len;
}

void tcmd_split(struct tcmd *t, unsigned n)
{
    uint8_t *base = t->iov[0].iov_base;
    size_t len = t->iov[0].iov_len, off = 0;

    if (n > 8)
        n = 8;
    for (unsigned i = 0; i < n; i++) {
        size_t piece = i == n - 1 ? len - off : len / n;

        t->iov[i].iov_base = base + off;
        t->iov[i].iov_len = piece;
        off += piece;
    }
    t->c.iovcnt = n;
}

void tcmd_submit(struct t_env *e, struct tcmd *t)
{
    t->c.blk_ctx = e->ctx;
    scsi_bus_submit(e->bus, &t->c);
}

void tcmd_run(struct t_env *e, struct tcmd *t)
{
    tcmd_submit(e, t);
    while (!t->done && fake_ctx_pending(e->ctx))
        fake_ctx_run(e->ctx, 1);
}

void t_run(struct t_env *e, struct tcmd *t, uint16_t lun, const uint8_t *cdb, unsigned cdb_len,
           enum scsi_dir dir, void *buf, size_t len)
{
    tcmd_init(t, 0, lun, cdb, cdb_len, dir, buf, len);
    tcmd_run(e, t);
}

void t_sense(const struct scsi_cmd *c, int *key, int *asc, int *ascq)
{
    const uint8_t *s = c->sense;

    *key = *asc = *ascq = -1;
    if (c->sense_len < 4)
        return;
    if ((s[0] & 0x7f) == 0x72 || (s[0] & 0x7f) == 0x73) {
        *key = s[1] & 0x0f;
        *asc = s[2];
        *ascq = s[3];
    } else if (c->sense_len >= 14) {
        *key = s[2] & 0x0f;
        *asc = s[12];
        *ascq = s[13];
    }
}

uint32_t t_sks(const struct scsi_cmd *c)
{
    const uint8_t *s = c->sense;

    if ((s[0] & 0x7f) == 0x72) {
        size_t n = 8;

        while (n + 2 <= c->sense_len) {
            if (s[n] == 0x02 && n + 7 <= c->sense_len)
                return (uint32_t)s[n + 4] << 16 | (uint32_t)s[n + 5] << 8 | s[n + 6];
            n += 2u + s[n + 1];
        }
        return 0;
    }
    if (c->sense_len < 18 || !(s[15] & 0x80))
        return 0;
    return (uint32_t)s[15] << 16 | (uint32_t)s[16] << 8 | s[17];
}

bool t_info(const struct scsi_cmd *c, uint64_t *info)
{
    const uint8_t *s = c->sense;

    if ((s[0] & 0x7f) == 0x72) {
        size_t n = 8;

        while (n + 2 <= c->sense_len) {
            if (s[n] == 0x00 && n + 12 <= c->sense_len) {
                *info = 0;
                for (int i = 0; i < 8; i++)
                    *info = *info << 8 | s[n + 4 + i];
                return s[n + 2] & 0x80;
            }
            n += 2u + s[n + 1];
        }
        return false;
    }
    if (!(s[0] & 0x80))
        return false;
    *info = (uint64_t)s[3] << 24 | (uint64_t)s[4] << 16 | (uint64_t)s[5] << 8 | s[6];
    return true;
}

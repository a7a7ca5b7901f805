#include "stub_daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/loop.h"

struct vscsid g_d;

uint64_t blk_size(const struct blk_drive *d) { return d->size; }
bool blk_is_readonly(const struct blk_drive *d) { return d->ro; }
bool blk_write_cache(const struct blk_drive *d) { return d->wce; }

/* drive1 (cd1) has a tray, and no medium once removed */
static void stub_drive_info(struct vscsid *d, unsigned i, struct vscsid_drive_info *out)
{
    bool empty = i == 1 && d->cd_empty;

    *out = (struct vscsid_drive_info){
        .conf = &d->drives[i], .blk = empty ? NULL : &d->blks[i], .medium = empty ? NULL : &d->drives[i],
        .attached_to = i < 2 ? d->devices[i].id : NULL,
        .has_tray = i == 1, .tray_open = i == 1 && d->tray_open, .locked = i == 1 && d->locked,
        .io_status = d->blks[i].iostatus,
    };
}

int vscsid_foreach_drive(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_drive_info *),
                         void *opaque)
{
    for (unsigned i = 0; i < d->ndrives; i++) {
        struct vscsid_drive_info info;
        int r;

        stub_drive_info(d, i, &info);
        r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
}

int vscsid_foreach_device(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_device_info *),
                          void *opaque)
{
    /* listed newest first, as the daemon does; the server sorts by address */
    for (int i = 1; i >= 0; i--) {
        struct vscsid_device_info info = {
            .conf = &d->devices[i], .drive_id = d->drives[i].id,
            .blk = i == 1 && d->cd_empty ? NULL : &d->blks[i],
        };
        int r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
}

void blk_get_stats(const struct blk_drive *d, struct blk_stats *out)
{
    /* distinct per drive: reads = size in GiB */
    memset(out, 0, sizeof(*out));
    out->reads = d->size >> 30;
    out->read_bytes = out->reads * 4096;
    out->writes = 2;
    out->write_bytes = 8192;
    out->flushes = 1;
    out->read_ns = out->reads * 100000;     /* 100 us each */
    out->write_ns = 2 * 50000;
}

/* ---- removable media, modelled on daemon.c's rules ---- */

static void emit_tray(struct vscsid *d)
{
    struct vscsid_event ev = { .type = VSCSID_EVENT_TRAY_MOVED, .device = "cd1", .drive = "drive1",
                               .tray_open = d->tray_open };

    for (unsigned i = 0; i < VSCSID_MAX_SINKS; i++)
        if (d->sinks[i].cb)
            d->sinks[i].cb(d->sinks[i].opaque, &ev);
}

/* 0 disk0, 1 cd1, 2.. a drive with no device; or -errno. */
static int stub_target(struct vscsid *d, const char *dev_id, const char *drive_id, bool removable,
                       char *err, size_t errlen)
{
    const char *name = dev_id ? dev_id : drive_id;
    int t = -1;

    if (!dev_id == !drive_id) {
        snprintf(err, errlen, "exactly one");
        return -EINVAL;
    }
    for (int i = 0; i < 2; i++)
        if (!strcmp(d->devices[i].id, name) || (drive_id && !strcmp(d->drives[i].id, name)))
            t = i;
    for (unsigned i = 2; t < 0 && drive_id && i < d->ndrives; i++)
        if (!strcmp(d->drives[i].id, name))
            t = (int)i;
    if (t < 0) {
        snprintf(err, errlen, "Device '%s' not found", name);
        return -ENODEV;
    }
    if (t == 0 && removable) {
        snprintf(err, errlen, "Device '%s' is not removable", name);
        return -ENOTSUP;
    }
    return t;
}

static void note(struct vscsid *d, const char *op, const char *dev_id, const char *drive_id)
{
    snprintf(d->last_media, sizeof(d->last_media), "%s %s=%s", op, dev_id ? "id" : "drive",
             dev_id ? dev_id : drive_id ? drive_id : "?");
}

static int stub_open(struct vscsid *d, int t, const char *name, bool force, char *err, size_t errlen)
{
    if (t != 1 || d->tray_open)
        return 0;
    if (d->locked && !force) {
        d->eject_requests++;
        snprintf(err, errlen, "Device '%s' is locked and force was not specified, wait for tray to "
                 "open and try again", name);
        return -EINPROGRESS;
    }
    d->locked = false;
    d->tray_open = true;
    emit_tray(d);
    return 0;
}

int vscsid_open_tray(struct vscsid *d, const char *dev_id, const char *drive_id, bool force,
                     char *err, size_t errlen)
{
    int t = stub_target(d, dev_id, drive_id, true, err, errlen);

    note(d, "open", dev_id, drive_id);
    strcat(d->last_media, force ? " force" : "");
    return t < 0 ? t : stub_open(d, t, dev_id ? dev_id : drive_id, force, err, errlen);
}

int vscsid_close_tray(struct vscsid *d, const char *dev_id, const char *drive_id, char *err,
                      size_t errlen)
{
    int t = stub_target(d, dev_id, drive_id, true, err, errlen);

    note(d, "close", dev_id, drive_id);
    if (t == 1 && d->tray_open) {
        d->tray_open = false;
        emit_tray(d);
    }
    return t < 0 ? t : 0;
}

int vscsid_remove_medium(struct vscsid *d, const char *dev_id, const char *drive_id, char *err,
                         size_t errlen)
{
    int t = stub_target(d, dev_id, drive_id, true, err, errlen);

    note(d, "remove", dev_id, drive_id);
    if (t == 1 && !d->tray_open) {
        snprintf(err, errlen, "Tray of device '%s' is not open", dev_id ? dev_id : drive_id);
        return -EPERM;
    }
    if (t == 1)
        d->cd_empty = true;
    return t < 0 ? t : 0;
}

/* QEMU's words for an insertion name no device */
static int stub_insert(struct vscsid *d, int t, char *err, size_t errlen)
{
    if (t == 1 && !d->tray_open) {
        snprintf(err, errlen, "Tray of the device is not open");
        return -EPERM;
    }
    if (t == 1 && !d->cd_empty) {
        snprintf(err, errlen, "There already is a medium in the device");
        return -EEXIST;
    }
    if (t == 1)
        d->cd_empty = false;
    return 0;
}

int vscsid_insert_medium(struct vscsid *d, const char *dev_id, const char *drive_id,
                         const char *filename, const char *format, enum vscsid_ro_mode ro,
                         char *err, size_t errlen)
{
    int t = stub_target(d, dev_id, drive_id, true, err, errlen);

    note(d, "insert", dev_id, drive_id);
    (void)filename, (void)format, (void)ro;
    return t < 0 ? t : stub_insert(d, t, err, errlen);
}

int vscsid_insert_node(struct vscsid *d, const char *dev_id, const char *node, char *err,
                       size_t errlen)
{
    int t = stub_target(d, dev_id, NULL, false, err, errlen), n = -1;

    note(d, "insert-node", dev_id, NULL);
    snprintf(d->last_media + strlen(d->last_media), sizeof(d->last_media) - strlen(d->last_media),
             " node=%s", node);
    if (t < 0)
        return t;
    for (unsigned i = 0; i < d->ndrives; i++)
        if (!strcmp(d->drives[i].id, node))
            n = (int)i;
    if (n < 0) {
        snprintf(err, errlen, "Node '%s' not found", node);
        return -ENOENT;
    }
    if (n < 2) {
        snprintf(err, errlen, "Node '%s' is already in use", node);
        return -EBUSY;
    }
    if (t == 0) {
        snprintf(err, errlen, "Device is not removable");
        return -ENOTSUP;
    }
    return stub_insert(d, t, err, errlen);
}

/* A file under /nonexistent cannot be opened. */
int vscsid_change_medium(struct vscsid *d, const char *dev_id, const char *drive_id,
                         const char *filename, const char *format, enum vscsid_ro_mode ro,
                         bool force, char *err, size_t errlen)
{
    static const char *const modes[] = { "retain", "read-only", "read-write" };
    int t = stub_target(d, dev_id, drive_id, true, err, errlen), r;
    const char *name = dev_id ? dev_id : drive_id;

    note(d, "change", dev_id, drive_id);
    snprintf(d->last_media + strlen(d->last_media), sizeof(d->last_media) - strlen(d->last_media),
             " file=%s format=%s ro=%s%s", filename, format ? format : "-", modes[ro],
             force ? " force" : "");
    if (t < 0)
        return t;
    if (!strncmp(filename, "/nonexistent", 12)) {
        snprintf(err, errlen, "drive %s: cannot open '%s': %s", d->drives[t].id, filename,
                 strerror(ENOENT));
        return -ENOENT;
    }
    if ((r = stub_open(d, t, name, force, err, errlen)) < 0)
        return r;
    if (t == 1) {
        d->cd_empty = false;
        d->tray_open = false;
        emit_tray(d);
    }
    return 0;
}

int vscsid_add_event_sink(struct vscsid *d, vscsid_event_cb *cb, void *opaque)
{
    for (unsigned i = 0; i < VSCSID_MAX_SINKS; i++) {
        if (!d->sinks[i].cb) {
            d->sinks[i].cb = cb;
            d->sinks[i].opaque = opaque;
            return 0;
        }
    }
    return -ENOSPC;
}

void vscsid_del_event_sink(struct vscsid *d, vscsid_event_cb *cb, void *opaque)
{
    for (unsigned i = 0; i < VSCSID_MAX_SINKS; i++)
        if (d->sinks[i].cb == cb && d->sinks[i].opaque == opaque)
            d->sinks[i].cb = NULL;
}

int vscsid_add_drive(struct vscsid *d, const struct drive_conf *conf, char *err, size_t errlen)
{
    d->add_drive_calls++;
    d->last_drive = *conf;
    for (unsigned i = 0; i < d->ndrives; i++) {
        if (!strcmp(d->drives[i].id, conf->id)) {
            snprintf(err, errlen, "drive id '%s' is already in use", conf->id);
            return -EEXIST;
        }
    }
    return 0;
}

int vscsid_add_device(struct vscsid *d, const struct device_conf *conf, char *err, size_t errlen)
{
    d->add_device_calls++;
    d->last_device = *conf;
    if (strcmp(conf->drive, "drive0") && strcmp(conf->drive, "drive1") &&
        strncmp(conf->drive, "drive", 5)) {
        snprintf(err, errlen, "drive '%s' not found", conf->drive);
        return -ENOENT;
    }
    return 0;
}

/* disk0 and cd1 exist; the removal completes at once (DEVICE_DELETED from inside). */
int vscsid_del_device(struct vscsid *d, const char *id, char *err, size_t errlen)
{
    struct vscsid_event ev = { .type = VSCSID_EVENT_DEVICE_DELETED, .device = id };

    d->del_device_calls++;
    if (strcmp(id, "disk0") && strcmp(id, "cd1")) {
        snprintf(err, errlen, "device '%s' not found", id);
        return -ENOENT;
    }
    for (unsigned i = 0; i < VSCSID_MAX_SINKS; i++)
        if (d->sinks[i].cb)
            d->sinks[i].cb(d->sinks[i].opaque, &ev);
    return 0;
}

int vscsid_del_drive(struct vscsid *d, const char *id, char *err, size_t errlen)
{
    for (unsigned i = 0; i < d->ndrives; i++) {
        if (strcmp(d->drives[i].id, id))
            continue;
        if (i < 2) {
            snprintf(err, errlen, "drive '%s' is in use by device '%s'", id, d->devices[i].id);
            return -EBUSY;
        }
        return 0;
    }
    snprintf(err, errlen, "drive '%s' not found", id);
    return -ENOENT;
}

int vscsid_resize_drive(struct vscsid *d, const char *id, uint64_t size, char *err, size_t errlen)
{
    for (unsigned i = 0; i < d->ndrives; i++) {
        if (strcmp(d->drives[i].id, id))
            continue;
        if (!size || size % 512) {
            snprintf(err, errlen, "size %llu is not a positive multiple of 512",
                     (unsigned long long)size);
            return -EINVAL;
        }
        d->blks[i].size = size;
        d->last_resize = size;
        snprintf(d->last_resize_drive, sizeof(d->last_resize_drive), "%s", id);
        return 0;
    }
    snprintf(err, errlen, "drive '%s' not found", id);
    return -ENOENT;
}

int vscsid_find_drive(struct vscsid *d, const char *id, struct vscsid_drive_info *out)
{
    for (unsigned i = 0; i < d->ndrives; i++) {
        if (!strcmp(d->drives[i].id, id)) {
            stub_drive_info(d, i, out);
            return 0;
        }
    }
    return -ENOENT;
}

int vscsid_find_device(struct vscsid *d, const char *id, struct vscsid_device_info *out)
{
    for (unsigned i = 0; i < 2; i++) {
        if (!strcmp(d->devices[i].id, id)) {
            *out = (struct vscsid_device_info){ .conf = &d->devices[i], .drive_id = d->drives[i].id,
                                                .blk = i == 1 && d->cd_empty ? NULL : &d->blks[i] };
            return 0;
        }
    }
    return -ENOENT;
}

void vscsid_request_shutdown(struct vscsid *d)
{
    d->shutdown_requests++;
    if (d->loop)
        ev_loop_stop(d->loop);
}

void stub_init(bool long_names)
{
    struct vscsid *d = &g_d;
    __typeof__(d->sinks) sinks;
    struct ev_loop *loop = d->loop;

    /* servers registered already keep their sinks */
    memcpy(sinks, d->sinks, sizeof(sinks));
    memset(d, 0, sizeof(*d));
    memcpy(d->sinks, sinks, sizeof(sinks));
    d->loop = loop;
    d->ndrives = NDRIVES;
    for (unsigned i = 0; i < NDRIVES; i++) {
        snprintf(d->drives[i].id, sizeof(d->drives[i].id), "drive%u", i);
        if (i == 1) {
            d->drives[i].blk.driver = BLK_DRIVER_NULL;
        } else {
            if (long_names)
                snprintf(d->drives[i].filename, sizeof(d->drives[i].filename),
                         "/var/lib/images/%0400u-\"quoted\"-\xc3\xa9.img", i);
            else
                snprintf(d->drives[i].filename, sizeof(d->drives[i].filename),
                         "/var/lib/images/disk%u.img", i);
            d->drives[i].blk.driver = BLK_DRIVER_FILE;
        }
        d->drives[i].blk.cache = i == 0 ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK;
        d->blks[i].size = (uint64_t)(i + 1) << 30;
        d->blks[i].ro = i == 1;
        d->blks[i].wce = true;
    }
    snprintf(d->devices[0].id, sizeof(d->devices[0].id), "disk0");
    snprintf(d->devices[0].drive, sizeof(d->devices[0].drive), "drive0");
    snprintf(d->devices[0].serial, sizeof(d->devices[0].serial), "SER0");
    d->devices[0].target = 0;
    d->devices[0].lun = 3;
    d->devices[0].scsi.type = SCSI_DEV_HD;
    d->devices[0].scsi.logical_block_size = 4096;
    snprintf(d->devices[1].id, sizeof(d->devices[1].id), "cd1");
    snprintf(d->devices[1].drive, sizeof(d->devices[1].drive), "drive1");
    d->devices[1].target = 0;
    d->devices[1].lun = 1;
    d->devices[1].scsi.type = SCSI_DEV_CD;
    d->devices[1].scsi.removable = true;
}

/* ---- run state and I/O errors (cmd_run.c, query-status, query-block) ---- */

enum vscsid_run_state vscsid_run_state(const struct vscsid *d) { return d->run_state; }

void vscsid_stop(struct vscsid *d)
{
    d->stop_calls++;
    if (d->run_state == VSCSID_RUNNING)
        d->run_state = VSCSID_PAUSED;
}

void vscsid_cont(struct vscsid *d)
{
    d->cont_calls++;
    d->run_state = VSCSID_RUNNING;
}

unsigned vscsid_held(const struct vscsid *d) { (void)d; return 0; }

/* two iothreads, the second not running yet */
unsigned vscsid_iothreads_info(const struct vscsid *d, struct vscsid_iothread_info *out, unsigned max)
{
    (void)d;
    for (unsigned i = 0; i < 2 && i < max; i++) {
        out[i] = (struct vscsid_iothread_info){ .thread_id = i ? 0 : 4242, .poll_us = 32 };
        snprintf(out[i].id, sizeof(out[i].id), "vscsi-io%u", i);
    }
    return 2;
}

/* The stub keeps the rules as text; "bad" in them stands for a syntax error. */
int blk_inject_check(const char *rules, char *err, size_t errlen)
{
    if (rules && strstr(rules, "bad")) {
        snprintf(err, errlen, "inject: rule 1 'bad': 'bad' is not an operation");
        return -EINVAL;
    }
    return 0;
}

int vscsid_set_inject(struct vscsid *d, const char *drive, const char *rules, char *err, size_t errlen)
{
    for (unsigned i = 0; i < d->ndrives; i++) {
        if (strcmp(d->drives[i].id, drive))
            continue;
        if (blk_inject_check(rules, err, errlen) < 0)
            return -EINVAL;
        snprintf(d->blks[i].inject, sizeof(d->blks[i].inject), "%s", rules);
        return 0;
    }
    snprintf(err, errlen, "drive '%s' not found", drive);
    return -ENOENT;
}

unsigned blk_get_inject(struct blk_drive *d, struct blk_inject_info *out, unsigned max)
{
    if (!d->inject[0] || !max)
        return 0;
    snprintf(out[0].rule, sizeof(out[0].rule), "%.100s", d->inject);
    out[0].hits = 1;
    out[0].remaining = strstr(d->inject, "inf") ? UINT64_MAX : 2;
    return 1;
}

const char *blk_io_status_name(enum blk_io_status s)
{
    return s == BLK_IOSTATUS_NOSPACE ? "nospace" : s == BLK_IOSTATUS_FAILED ? "failed" : "ok";
}

const char *blk_error_action_name(enum blk_error_action a)
{
    return a == BLK_ACTION_STOP ? "stop" : a == BLK_ACTION_IGNORE ? "ignore" : "report";
}

int blk_error_policy_parse(const char *s, bool is_read, enum blk_error_policy *out)
{
    static const char *const names[] = { "report", "ignore", "stop", "enospc" };

    for (unsigned i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) || (i == 3 && is_read))
            continue;
        *out = (enum blk_error_policy)(BLK_ERR_REPORT + i);
        return 0;
    }
    return -EINVAL;
}

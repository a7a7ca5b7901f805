#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/loop.h"
#include "virtio_scsi/vscsi.h"

struct drive_entry {
    struct drive_conf conf;
    struct blk_drive *blk;
    char used_by[64];               /* device id, "" when unattached */
    struct drive_entry *next;
};

struct device_entry {
    struct device_conf conf;
    struct drive_entry *drive;
    struct device_entry *next;
};

struct vscsid {
    struct ev_loop *loop;
    struct blk_ctx *blk_ctx;
    struct scsi_bus *bus;
    struct vscsi_ctrl *ctrl;
    struct drive_entry *drives;
    struct device_entry *devices;
    unsigned ndevices;
    unsigned auto_id;
};

struct vscsid *vscsid_new(struct ev_loop *loop, char *err, size_t errlen)
{
    struct vscsid *d = calloc(1, sizeof(*d));

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->loop = loop;
    d->blk_ctx = blk_ctx_new(loop, err, errlen);
    if (!d->blk_ctx)
        goto err_free;
    d->bus = scsi_bus_new();
    if (!d->bus) {
        snprintf(err, errlen, "out of memory");
        goto err_ctx;
    }
    return d;

err_ctx:
    blk_ctx_free(d->blk_ctx);
err_free:
    free(d);
    return NULL;
}

static struct drive_entry *find_drive(struct vscsid *d, const char *id)
{
    for (struct drive_entry *e = d->drives; e; e = e->next)
        if (!strcmp(e->conf.id, id))
            return e;
    return NULL;
}

static struct device_entry *find_device(struct vscsid *d, const char *id)
{
    for (struct device_entry *e = d->devices; e; e = e->next)
        if (!strcmp(e->conf.id, id))
            return e;
    return NULL;
}

int vscsid_add_drive(struct vscsid *d, const struct drive_conf *conf, char *err, size_t errlen)
{
    struct drive_entry *e;
    int ret;

    if (!conf->id[0]) {
        snprintf(err, errlen, "a drive needs an id (add id=NAME)");
        return -EINVAL;
    }
    if (find_drive(d, conf->id)) {
        snprintf(err, errlen, "drive id '%s' is already in use; choose another id=", conf->id);
        return -EEXIST;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    e->conf = *conf;
    e->conf.blk.id = e->conf.id;
    e->conf.blk.filename = e->conf.filename[0] ? e->conf.filename : NULL;
    e->conf.blk.format = e->conf.format[0] ? e->conf.format : NULL;
    ret = blk_open(&e->conf.blk, &e->blk, err, errlen);
    if (ret < 0) {
        free(e);
        return ret;
    }
    e->next = d->drives;
    d->drives = e;
    return 0;
}

int vscsid_add_device(struct vscsid *d, const struct device_conf *conf, char *err, size_t errlen)
{
    struct device_entry *dev;
    struct drive_entry *drv;
    int ret;

    drv = find_drive(d, conf->drive);
    if (!drv) {
        snprintf(err, errlen, "drive '%s' not found; define it first with --drive ...,id=%s",
                 conf->drive, conf->drive);
        return -ENOENT;
    }
    if (drv->used_by[0]) {
        snprintf(err, errlen, "drive '%s' is already attached to device '%s'; "
                 "a drive can back only one device", conf->drive, drv->used_by);
        return -EBUSY;
    }
    if (conf->id[0] && find_device(d, conf->id)) {
        snprintf(err, errlen, "device id '%s' is already in use; choose another id=", conf->id);
        return -EEXIST;
    }
    if (scsi_bus_find_lun(d->bus, conf->target, conf->lun)) {
        snprintf(err, errlen, "scsi-id=%u,lun=%u is already taken by another device; "
                 "choose a free lun= or scsi-id=", conf->target, conf->lun);
        return -EEXIST;
    }
    dev = calloc(1, sizeof(*dev));
    if (!dev) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    dev->conf = *conf;
    if (!dev->conf.id[0])
        snprintf(dev->conf.id, sizeof(dev->conf.id), "scsi%u-%u-%u", d->auto_id++,
                 conf->target, conf->lun);
    dev->conf.scsi.id = dev->conf.id;
    dev->conf.scsi.serial = dev->conf.serial[0] ? dev->conf.serial : NULL;
    dev->conf.scsi.vendor = dev->conf.vendor[0] ? dev->conf.vendor : NULL;
    dev->conf.scsi.product = dev->conf.product[0] ? dev->conf.product : NULL;
    dev->conf.scsi.version = dev->conf.version[0] ? dev->conf.version : NULL;
    ret = scsi_bus_add_lun(d->bus, conf->target, conf->lun, &dev->conf.scsi, drv->blk, err, errlen);
    if (ret < 0) {
        free(dev);
        return ret;
    }
    dev->drive = drv;
    snprintf(drv->used_by, sizeof(drv->used_by), "%s", dev->conf.id);
    dev->next = d->devices;
    d->devices = dev;
    d->ndevices++;
    return 0;
}

int vscsid_add_controller(struct vscsid *d, const struct ctrl_conf *conf, char *err, size_t errlen)
{
    struct vscsi_ctrl_config cfg = {
        .socket_path = conf->socket_path,
        .num_queues = conf->num_queues,
        .nexus = 1,
    };

    if (d->ctrl) {
        snprintf(err, errlen, "only one controller is supported");
        return -EBUSY;
    }
    d->ctrl = vscsi_ctrl_new(d->loop, d->blk_ctx, d->bus, &cfg, err, errlen);
    return d->ctrl ? 0 : -EINVAL;
}

unsigned vscsid_device_count(const struct vscsid *d)
{
    return d->ndevices;
}

unsigned vscsid_inflight(const struct vscsid *d)
{
    return d->ctrl ? vscsi_ctrl_inflight(d->ctrl) : 0;
}

struct blk_ctx *vscsid_blk_ctx(struct vscsid *d)
{
    return d->blk_ctx;
}

int vscsid_foreach_drive(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_drive_info *),
                         void *opaque)
{
    for (struct drive_entry *e = d->drives; e; e = e->next) {
        struct vscsid_drive_info info = {
            .conf = &e->conf, .blk = e->blk, .attached_to = e->used_by[0] ? e->used_by : NULL,
        };
        int r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
}

int vscsid_foreach_device(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_device_info *),
                          void *opaque)
{
    for (struct device_entry *e = d->devices; e; e = e->next) {
        struct vscsid_device_info info = {
            .conf = &e->conf, .drive_id = e->drive->conf.id, .blk = e->drive->blk,
        };
        int r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
}

void vscsid_request_shutdown(struct vscsid *d)
{
    ev_loop_stop(d->loop);
}

static void device_removed_cb(void *opaque)
{
    (void)opaque;
}

void vscsid_free(struct vscsid *d)
{
    if (!d)
        return;
    vscsi_ctrl_free(d->ctrl);
    while (d->devices) {
        struct device_entry *dev = d->devices;
        d->devices = dev->next;
        scsi_bus_remove_lun(d->bus, dev->conf.target, dev->conf.lun, device_removed_cb, NULL);
        free(dev);
    }
    while (d->drives) {
        struct drive_entry *e = d->drives;
        d->drives = e->next;
        blk_close(e->blk);
        free(e);
    }
    scsi_bus_free(d->bus);
    blk_ctx_free(d->blk_ctx);
    free(d);
}

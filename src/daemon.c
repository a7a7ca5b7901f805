#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/loop.h"
#include "virtio_scsi/vscsi.h"

struct drive_entry {
    struct drive_conf conf;         /* for a medium changed at run time: its options */
    struct blk_drive *blk;          /* the medium; NULL: empty (media=cdrom, or ejected) */
    struct drive_entry *lender;     /* blk is that node's (vscsid_insert_node), not ours */
    struct drive_entry *lent_to;    /* our blk is the medium in that drive */
    char used_by[64];               /* device id, "" when unattached */
    enum blk_io_status io_status;   /* QEMU's BlockBackend iostatus: the first error that stopped */
    struct device_entry *user;      /* ... and that device */
    struct drive_entry *next;
};

/* A controller: its SCSI bus (the LUNs its guest sees), its I_T nexus, and
 * the vhost-user socket once started. The default one (id "") is --socket. */
struct bus_entry {
    char id[64];
    struct scsi_bus *bus;
    struct vscsi_ctrl *ctrl;
    uint32_t nexus;
    struct bus_entry *next;
};

struct device_entry {
    struct device_conf conf;
    struct drive_entry *drive;      /* a path: the drive of the device it is a path of */
    struct bus_entry *bus;
    struct device_entry *path_of;   /* NULL, or the device whose LU this one is a path to */
    unsigned npaths;                /* devices that are paths to this one's LU */
    struct vscsid *d;
    bool deleting;                  /* off the bus, waiting for its commands */
    /* Removable media (the LU's own device, never a path). While the SCSI
     * layer drains a removed medium, what the management asked for next is
     * kept here and done once the old medium is free. */
    bool draining;
    bool want_insert;               /* then drive->blk goes into the LU */
    bool want_close;                /* then the tray closes */
    struct blk_drive *old_blk;      /* the medium being drained */
    struct drive_entry *old_lender; /* ... and the node it belongs to (NULL: ours) */
    struct device_entry *next;
};

/* An iothread: serves request queues with its own loop and block context. */
struct iothread {
    struct vscsid *d;
    struct ev_loop *loop;
    struct blk_ctx *blk_ctx;
    char name[16];                  /* vscsi-ioN: ps -T, top -H, query-iothreads */
    pthread_t tid;
    int thread_id;                  /* gettid() (atomic; 0 until it runs) */
    int slot;                       /* its SCSI lock slot (scsi_io_slot_new), -1: none */
    bool running;
};

struct vscsid {
    struct ev_loop *loop;
    struct blk_ctx *blk_ctx;
    struct iothread *iothreads;
    struct vscsi_iothread *vits;    /* the same, as vscsi_ctrl_config wants them */
    unsigned num_iothreads;
    unsigned poll_us;
    struct scsi_bus *bus;           /* the default controller's (buses->bus) */
    struct vscsi_ctrl *ctrl;        /* the default controller, once started */
    struct bus_entry *buses;        /* the default one first */
    uint32_t next_nexus;
    struct drive_entry *drives;
    struct device_entry *devices;
    unsigned ndevices;
    unsigned ndrives;
    unsigned auto_id;
    struct {
        vscsid_event_cb *cb;
        void *opaque;
    } sinks[VSCSID_MAX_SINKS];
    bool freeing;
    bool quiesced;
    enum vscsid_run_state run_state;
};

/* The SCSI lock as loop wait hooks (control thread) and block completion
 * guards (iothreads). */
static void unlock_cb(void *opaque)
{
    (void)opaque;
    scsi_unlock();
}

static void lock_cb(void *opaque)
{
    (void)opaque;
    scsi_lock();
}

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
    /* This thread is the control thread: it holds the SCSI lock except while
     * its loop waits for events, so management code needs no locking of its
     * own and iothreads run between its rounds (the lock is recursive, so
     * callbacks that take it again are fine). */
    blk_ctx_bind_thread(d->blk_ctx);
    scsi_lock();
    ev_loop_set_wait_hooks(loop, unlock_cb, lock_cb, NULL);
    d->buses = calloc(1, sizeof(*d->buses));
    d->bus = d->buses ? scsi_bus_new() : NULL;
    if (!d->bus) {
        free(d->buses);
        snprintf(err, errlen, "out of memory");
        goto err_ctx;
    }
    d->buses->bus = d->bus;
    d->buses->nexus = d->next_nexus = 1;
    return d;

err_ctx:
    ev_loop_set_wait_hooks(loop, NULL, NULL, NULL);
    scsi_unlock();
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

static struct bus_entry *find_bus(struct vscsid *d, const char *id)
{
    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (!strcmp(b->id, id))
            return b;
    return NULL;
}

int vscsid_add_bus(struct vscsid *d, const char *id, char *err, size_t errlen)
{
    struct bus_entry *b, **pp;

    if (!id[0] || find_bus(d, id)) {
        snprintf(err, errlen, "controller id '%s' is %s", id, id[0] ? "taken" : "empty");
        return id[0] ? -EEXIST : -EINVAL;
    }
    if (strlen(id) >= sizeof(b->id)) {
        snprintf(err, errlen, "controller id '%s' is too long", id);
        return -EINVAL;
    }
    b = calloc(1, sizeof(*b));
    if (!b || !(b->bus = scsi_bus_new())) {
        free(b);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    strcpy(b->id, id);
    /* each controller is its own I_T nexus (initiator port) for reservations */
    b->nexus = ++d->next_nexus;
    for (pp = &d->buses; *pp; pp = &(*pp)->next)
        ;
    *pp = b;
    return 0;
}

static struct device_entry *find_device(struct vscsid *d, const char *id)
{
    for (struct device_entry *e = d->devices; e; e = e->next)
        if (!strcmp(e->conf.id, id))
            return e;
    return NULL;
}

/* Let go of a medium: close it, or give it back to the node it came from. */
static void release_medium(struct blk_drive *blk, struct drive_entry *lender)
{
    if (lender)
        lender->lent_to = NULL;
    else
        blk_close(blk);
}

static void drop_medium(struct drive_entry *e)
{
    release_medium(e->blk, e->lender);
    e->blk = NULL;
    e->lender = NULL;
}

static bool dev_removable(const struct device_entry *dev)
{
    return dev->conf.scsi.type == SCSI_DEV_CD || dev->conf.scsi.removable;
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
        snprintf(err, errlen, "a drive named '%s' exists already; choose another name", conf->id);
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
    e->conf.blk.inject = e->conf.inject[0] ? e->conf.inject : NULL;
    if (conf->cdrom)
        e->conf.blk.readonly = true;
    if (conf->blk.driver == BLK_DRIVER_FILE && !conf->filename[0]) {
        if (!conf->cdrom) {
            snprintf(err, errlen, "drive '%s' has no file (only a media=cdrom drive may be empty)",
                     conf->id);
            free(e);
            return -EINVAL;
        }
        /* an empty drive: a CD-ROM tray with no disc */
    } else if ((ret = blk_open(&e->conf.blk, &e->blk, err, errlen)) < 0) {
        free(e);
        return ret;
    }
    e->next = d->drives;
    d->drives = e;
    d->ndrives++;
    return 0;
}

int vscsid_del_drive(struct vscsid *d, const char *id, char *err, size_t errlen)
{
    struct drive_entry **pp = &d->drives, *e;

    while (*pp && strcmp((*pp)->conf.id, id))
        pp = &(*pp)->next;
    e = *pp;
    if (!e) {
        snprintf(err, errlen, "drive '%s' not found", id);
        return -ENOENT;
    }
    if (e->used_by[0]) {
        struct device_entry *dev = find_device(d, e->used_by);
        snprintf(err, errlen, "drive '%s' is in use by device '%s'%s", id, e->used_by,
                 dev && dev->deleting ? " (being removed: commands still in flight)"
                                      : "; device_del it first");
        return -EBUSY;
    }
    if (e->lent_to) {
        snprintf(err, errlen, "drive '%s' is the medium in drive '%s'%s%s%s; remove it from there "
                 "first (eject)", id, e->lent_to->conf.id, e->lent_to->used_by[0] ? " (device '" : "",
                 e->lent_to->used_by, e->lent_to->used_by[0] ? "')" : "");
        return -EBUSY;
    }
    *pp = e->next;
    d->ndrives--;
    drop_medium(e);
    free(e);
    return 0;
}

static void emit(struct vscsid *d, const struct vscsid_event *ev)
{
    for (unsigned i = 0; i < VSCSID_MAX_SINKS && !d->freeing; i++)
        if (d->sinks[i].cb)
            d->sinks[i].cb(d->sinks[i].opaque, ev);
}

/* The SCSI layer moved a tray (the guest's START STOP UNIT, or ours). */
static void tray_moved_cb(void *opaque, bool tray_open)
{
    struct device_entry *dev = opaque;

    emit(dev->d, &(struct vscsid_event){ .type = VSCSID_EVENT_TRAY_MOVED, .device = dev->conf.id,
                                         .drive = dev->drive->conf.id, .tray_open = tray_open });
}

static enum scsi_io_error_action device_io_error_cb(void *opaque, const struct scsi_io_error *e);

int vscsid_add_device(struct vscsid *d, const struct device_conf *conf, char *err, size_t errlen)
{
    struct device_entry *dev, *first = NULL;
    struct drive_entry *drv;
    struct bus_entry *bus = find_bus(d, conf->bus);
    int ret;

    if (!bus) {
        snprintf(err, errlen, "bus=%s: no such controller (add --controller id=%s,socket=PATH)",
                 conf->bus, conf->bus);
        return -ENOENT;
    }
    if (conf->path_of[0]) {
        /* another path to an LU: the same identity and state, another controller */
        first = find_device(d, conf->path_of);
        if (!first || first->deleting) {
            snprintf(err, errlen, "path-of=%s: no such device", conf->path_of);
            return -ENOENT;
        }
        if (first->path_of)
            first = first->path_of;
        if (first->conf.scsi.type != conf->scsi.type) {
            snprintf(err, errlen, "path-of=%s: that device is a %s; a path to it must be one too",
                     conf->path_of, first->conf.scsi.type == SCSI_DEV_CD ? "scsi-cd" : "scsi-hd");
            return -EINVAL;
        }
        drv = first->drive;
    } else {
        drv = find_drive(d, conf->drive);
    }
    if (!drv) {
        snprintf(err, errlen, "drive '%s' not found; add it first (--drive ...,id=%s or "
                 "blockdev-add node-name=%s)", conf->drive, conf->drive, conf->drive);
        return -ENOENT;
    }
    if (!first && drv->used_by[0]) {
        snprintf(err, errlen, "drive '%s' is already attached to device '%s'; "
                 "a drive can back only one device (a second path to it: path-of=%s)",
                 conf->drive, drv->used_by, drv->used_by);
        return -EBUSY;
    }
    if (!first && drv->lent_to) {
        snprintf(err, errlen, "drive '%s' is the medium in drive '%s'; a drive can back only one "
                 "device", conf->drive, drv->lent_to->conf.id);
        return -EBUSY;
    }
    if (!first && !drv->blk && conf->scsi.type != SCSI_DEV_CD && !conf->scsi.removable) {
        snprintf(err, errlen, "drive '%s' has no medium: a scsi-hd needs one (or removable=on, or "
                 "scsi-cd)", conf->drive);
        return -ENOMEDIUM;
    }
    if (!first && conf->scsi.type == SCSI_DEV_CD && drv->conf.blk.discard_unmap) {
        snprintf(err, errlen, "drive '%s' has discard=unmap, which a CD-ROM cannot do (read-only); "
                 "drop it from the drive", conf->drive);
        return -EINVAL;
    }
    if (conf->id[0] && find_device(d, conf->id)) {
        snprintf(err, errlen, "a device with id '%s' exists already; choose another id", conf->id);
        return -EEXIST;
    }
    if (scsi_bus_find_lun(bus->bus, conf->target, conf->lun)) {
        const char *owner = "another device";
        char who[80];
        for (struct device_entry *e = d->devices; e; e = e->next) {
            if (!e->deleting && e->bus == bus && e->conf.target == conf->target &&
                e->conf.lun == conf->lun) {
                snprintf(who, sizeof(who), "device '%s'", e->conf.id);
                owner = who;
            }
        }
        snprintf(err, errlen, "scsi-id=%u,lun=%u is already taken by %s; choose a free lun= or "
                 "scsi-id=", conf->target, conf->lun, owner);
        return -EEXIST;
    }
    dev = calloc(1, sizeof(*dev));
    if (!dev) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    dev->conf = *conf;
    /* a generated id must not be one a user chose */
    while (!dev->conf.id[0] || (!conf->id[0] && find_device(d, dev->conf.id)))
        snprintf(dev->conf.id, sizeof(dev->conf.id), "scsi%u-%u-%u", d->auto_id++,
                 conf->target, conf->lun);
    dev->conf.scsi.id = dev->conf.id;
    dev->conf.scsi.serial = dev->conf.serial[0] ? dev->conf.serial : NULL;
    dev->conf.scsi.vendor = dev->conf.vendor[0] ? dev->conf.vendor : NULL;
    dev->conf.scsi.product = dev->conf.product[0] ? dev->conf.product : NULL;
    dev->conf.scsi.version = dev->conf.version[0] ? dev->conf.version : NULL;
    if (!first && dev_removable(dev)) {
        dev->conf.scsi.tray_cb = tray_moved_cb;
        dev->conf.scsi.tray_opaque = dev;
    }
    dev->drive = drv;
    dev->d = d;
    dev->conf.scsi.io_error_cb = device_io_error_cb;    /* the drive's werror/rerror */
    dev->conf.scsi.io_error_opaque = dev;
    if (first)
        ret = scsi_bus_add_path(bus->bus, conf->target, conf->lun, first->bus->bus, first->conf.target,
                                first->conf.lun, err, errlen);
    else
        ret = scsi_bus_add_lun(bus->bus, conf->target, conf->lun, &dev->conf.scsi, drv->blk, err,
                               errlen);
    if (ret < 0) {
        free(dev);
        return ret;
    }
    dev->bus = bus;
    dev->path_of = first;
    if (first) {
        first->npaths++;
    } else {
        snprintf(drv->used_by, sizeof(drv->used_by), "%s", dev->conf.id);
        drv->user = dev;
    }
    dev->next = d->devices;
    d->devices = dev;
    d->ndevices++;
    /* changes while serving (hot-plug) are worth a line; the start-up set is not */
    if (d->ctrl)
        log_info("device %s added at scsi-id=%u,lun=%u (drive %s)", dev->conf.id, conf->target,
                 conf->lun, drv->conf.id);
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

/* The SCSI layer has freed the LUN: no command uses the drive for it any more. */
static void device_deleted_cb(void *opaque)
{
    struct device_entry *dev = opaque, **pp;
    struct vscsid *d = dev->d;

    for (pp = &d->devices; *pp && *pp != dev; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = dev->next;
    d->ndevices--;
    if (dev->path_of) {
        dev->path_of->npaths--;
    } else {
        dev->drive->used_by[0] = 0;
        dev->drive->user = NULL;
    }
    log_info("device %s (scsi-id=%u,lun=%u) removed", dev->conf.id, dev->conf.target, dev->conf.lun);
    emit(d, &(struct vscsid_event){ .type = VSCSID_EVENT_DEVICE_DELETED, .device = dev->conf.id });
    free(dev);
}

int vscsid_del_device(struct vscsid *d, const char *id, char *err, size_t errlen)
{
    struct device_entry *dev = find_device(d, id);
    int ret;

    if (!dev) {
        snprintf(err, errlen, "device '%s' not found", id);
        return -ENOENT;
    }
    if (dev->deleting) {
        snprintf(err, errlen, "device '%s' is already being removed (commands still in flight)", id);
        return -EBUSY;
    }
    if (dev->npaths) {
        snprintf(err, errlen, "device '%s' has %u other path(s) (path-of=%s); remove them first", id,
                 dev->npaths, id);
        return -EBUSY;
    }
    if (dev->draining) {
        snprintf(err, errlen, "device '%s' is changing its medium (commands still in flight on the "
                 "old one); try again", id);
        return -EBUSY;
    }
    dev->deleting = true;
    /* What the guest queued before device_del runs first, so that
     * DEVICE_DELETED means no command for the LUN is left, in flight or in a
     * ring (without this, a loop round that took only part of a ring would
     * leave the rest to be refused after the removal). */
    if (dev->bus->ctrl)
        vscsi_ctrl_take_queued(dev->bus->ctrl);
    /* The callback may run before this returns (no command in flight). */
    ret = scsi_bus_remove_lun(dev->bus->bus, dev->conf.target, dev->conf.lun, device_deleted_cb, dev);
    if (ret < 0) {
        dev->deleting = false;
        snprintf(err, errlen, "device '%s': the SCSI bus has no LUN %u:%u (%s)", id,
                 dev->conf.target, dev->conf.lun, strerror(-ret));
        return ret;
    }
    return 0;
}

static struct device_entry *device_of_drive(struct vscsid *d, const struct drive_entry *drv)
{
    for (struct device_entry *e = d->devices; e; e = e->next)
        if (e->drive == drv && !e->deleting && !e->path_of)
            return e;
    return NULL;
}

int vscsid_resize_drive(struct vscsid *d, const char *id, uint64_t size, char *err, size_t errlen)
{
    struct drive_entry *drv = find_drive(d, id);
    struct device_entry *dev;
    uint64_t old;
    uint32_t lbs;
    int ret;

    if (!drv) {
        snprintf(err, errlen, "drive '%s' not found", id);
        return -ENOENT;
    }
    if (!drv->blk) {
        snprintf(err, errlen, "drive '%s' has no medium", id);
        return -ENOMEDIUM;
    }
    /* a node whose medium is in another drive: that drive's device sees the change */
    dev = device_of_drive(d, drv->lent_to ? drv->lent_to : drv);
    if (dev && dev->draining) {
        snprintf(err, errlen, "device '%s' is changing its medium; try again", dev->conf.id);
        return -EBUSY;
    }
    lbs = dev && dev->conf.scsi.logical_block_size ? dev->conf.scsi.logical_block_size : 512;
    if (!size || size % lbs) {
        if (dev)
            snprintf(err, errlen, "size %llu is not a positive multiple of %u, the logical block "
                     "size of device '%s'", (unsigned long long)size, lbs, dev->conf.id);
        else
            snprintf(err, errlen, "size %llu is not a positive multiple of 512",
                     (unsigned long long)size);
        return -EINVAL;
    }
    if (blk_is_readonly(drv->blk)) {
        snprintf(err, errlen, "drive '%s' is read-only", id);
        return -EROFS;
    }
    old = blk_size(drv->blk);
    ret = blk_resize(drv->blk, size);
    if (ret == -EPERM) {
        /* A block device: resized on the host (lvextend, ...); re-read and accept
         * the size it has now if it is the one asked for. */
        ret = blk_resize(drv->blk, 0);
        if (!ret && blk_size(drv->blk) != size) {
            snprintf(err, errlen, "drive '%s' is a block device of %llu bytes: resize it on the "
                     "host, then give that size", id, (unsigned long long)blk_size(drv->blk));
            ret = -EPERM;
        }
    }
    if (ret < 0 && ret != -EPERM) {
        if (ret == -EROFS)
            snprintf(err, errlen, "drive '%s' is read-only", id);
        else
            snprintf(err, errlen, "cannot resize drive '%s' to %llu bytes: %s", id,
                     (unsigned long long)size, strerror(-ret));
    }
    /* Even a failed truncate may have changed the size: tell the guest what is true. */
    if (blk_size(drv->blk) != old) {
        log_info("drive %s resized from %llu to %llu bytes", id, (unsigned long long)old,
                 (unsigned long long)blk_size(drv->blk));
        if (dev)
            scsi_bus_capacity_changed(dev->bus->bus, dev->conf.target, dev->conf.lun);
    }
    return ret;
}

/* ------------------------------------------------------------ removable media */

/* What a media command acts on: a drive, and the device it backs (NULL: no
 * device, so no tray). */
struct media_target {
    struct drive_entry *drv;
    struct device_entry *dev;
    struct scsi_lun *lu;
    const char *name;               /* as the caller named it, for messages */
};

static struct scsi_lun *lun_of(const struct device_entry *dev)
{
    return scsi_bus_find_lun(dev->bus->bus, dev->conf.target, dev->conf.lun);
}

static int find_target(struct vscsid *d, const char *dev_id, const char *drive_id,
                       struct media_target *t, char *err, size_t errlen)
{
    struct device_entry *dev = NULL;
    struct drive_entry *drv = NULL;

    *t = (struct media_target){ .name = dev_id ? dev_id : drive_id ? drive_id : "" };
    if (!dev_id == !drive_id) {
        snprintf(err, errlen, "name the device by its id or by its drive's id (exactly one)");
        return -EINVAL;
    }
    if (drive_id && (drv = find_drive(d, drive_id)))
        dev = drv->user;
    else
        dev = find_device(d, t->name);      /* a device id is accepted for the drive too */
    if (!drv && !dev) {
        snprintf(err, errlen, "Device '%s' not found", t->name);
        return -ENODEV;
    }
    if (dev && dev->deleting) {
        snprintf(err, errlen, "device '%s' is being removed", dev->conf.id);
        return -EBUSY;
    }
    if (dev && dev->path_of)
        dev = dev->path_of;                 /* a path: the LU is its first device's */
    if (dev)
        drv = dev->drive;
    if (!dev && drv->lent_to) {
        snprintf(err, errlen, "drive '%s' is the medium in drive '%s'; name that one", drv->conf.id,
                 drv->lent_to->conf.id);
        return -EBUSY;
    }
    t->drv = drv;
    t->dev = dev;
    if (dev && !(t->lu = lun_of(dev))) {
        snprintf(err, errlen, "device '%s': the SCSI bus has no LUN %u:%u", dev->conf.id,
                 dev->conf.target, dev->conf.lun);
        return -EIO;
    }
    return 0;
}

static int need_removable(const struct media_target *t, char *err, size_t errlen)
{
    if (!t->dev || dev_removable(t->dev))
        return 0;
    snprintf(err, errlen, "Device '%s' is not removable", t->name);
    return -ENOTSUP;
}

static int find_removable(struct vscsid *d, const char *dev_id, const char *drive_id,
                          struct media_target *t, char *err, size_t errlen)
{
    int r = find_target(d, dev_id, drive_id, t, err, errlen);

    return r < 0 ? r : need_removable(t, err, errlen);
}

/* The tray as the management sees it: a close waiting for a drain counts as done. */
static void tray_state(const struct device_entry *dev, struct scsi_lun *lu, bool *open, bool *locked)
{
    struct scsi_medium_state st;

    scsi_lun_get_medium(lu, &st);
    *open = st.tray_open && !(dev->draining && dev->want_close);
    *locked = st.locked;
}

static bool tray_open(const struct media_target *t)
{
    bool open, locked;

    tray_state(t->dev, t->lu, &open, &locked);
    return open;
}

static int open_tray(struct media_target *t, bool force, char *err, size_t errlen)
{
    int r;

    if (!t->dev)
        return 0;       /* no tray: nothing to move (QEMU ignores it too) */
    r = scsi_lun_open_tray(t->lu, force);
    if (r == -EBUSY) {
        snprintf(err, errlen, "Device '%s' is locked and force was not specified, wait for tray to "
                 "open and try again", t->name);
        return -EINPROGRESS;    /* the guest was asked to open it */
    }
    if (r < 0) {
        snprintf(err, errlen, "cannot open the tray of device '%s': %s", t->name, strerror(-r));
        return r;
    }
    t->dev->want_close = false;
    return 0;
}

static int close_tray(struct media_target *t, char *err, size_t errlen)
{
    int r;

    if (!t->dev)
        return 0;
    if (t->dev->draining) {
        t->dev->want_close = true;      /* once the old medium is out */
        return 0;
    }
    r = scsi_lun_close_tray(t->lu);
    if (r < 0)
        snprintf(err, errlen, "cannot close the tray of device '%s': %s", t->name, strerror(-r));
    return r;
}

/* Into the LU, whose tray is open and empty. A guest that closed the tray
 * while an old medium drained gets it opened again. */
static int lu_insert(struct media_target *t, struct blk_drive *blk, char *err, size_t errlen)
{
    char serr[256] = "";
    int r = scsi_lun_insert_medium(t->lu, blk, serr, sizeof(serr));

    if (r == -EINVAL && scsi_lun_open_tray(t->lu, true) == 0)
        r = scsi_lun_insert_medium(t->lu, blk, serr, sizeof(serr));
    if (r < 0)
        snprintf(err, errlen, "cannot insert the medium into device '%s': %s", t->name,
                 serr[0] ? serr : strerror(-r));
    return r;
}

/* The SCSI layer no longer uses the removed medium. */
static void medium_removed_cb(void *opaque, struct blk_drive *blk)
{
    struct device_entry *dev = opaque;
    struct media_target t = { .drv = dev->drive, .dev = dev, .name = dev->conf.id };
    char err[512];

    release_medium(blk, dev->old_lender);
    dev->old_blk = NULL;
    dev->old_lender = NULL;
    dev->draining = false;
    if (dev->d->freeing || !(t.lu = lun_of(dev)))
        return;
    if (dev->want_insert) {
        dev->want_insert = false;
        if (lu_insert(&t, t.drv->blk, err, sizeof(err)) < 0) {
            log_warn("%s", err);
            drop_medium(t.drv);
        }
    }
    if (dev->want_close) {
        dev->want_close = false;
        if (close_tray(&t, err, sizeof(err)) < 0)
            log_warn("%s", err);
    }
}

static int remove_medium(struct media_target *t, char *err, size_t errlen)
{
    struct device_entry *dev = t->dev;
    struct drive_entry *drv = t->drv;
    struct scsi_medium_state st;
    int r;

    if (!dev) {
        drop_medium(drv);
        return 0;
    }
    if (!tray_open(t)) {
        snprintf(err, errlen, "Tray of device '%s' is not open", t->name);
        return -EPERM;
    }
    if (dev->draining) {
        /* the old medium is still leaving; one waiting to go in just goes */
        if (dev->want_insert)
            drop_medium(drv);
        dev->want_insert = false;
        return 0;
    }
    scsi_lun_get_medium(t->lu, &st);
    if (!st.has_medium)
        return 0;       /* nothing in the tray: fine (QEMU: success) */
    /* "retain" in a later change means the mode of this medium */
    if (drv->blk)
        drv->conf.blk.readonly = blk_is_readonly(drv->blk);
    dev->old_blk = drv->blk;
    dev->old_lender = drv->lender;
    drv->blk = NULL;
    drv->lender = NULL;
    dev->draining = true;
    /* done_cb may run before this returns (no command uses the medium) */
    r = scsi_lun_remove_medium(t->lu, medium_removed_cb, dev);
    if (r < 0) {
        dev->draining = false;
        drv->blk = dev->old_blk;
        drv->lender = dev->old_lender;
        dev->old_blk = NULL;
        dev->old_lender = NULL;
        snprintf(err, errlen, "cannot remove the medium of device '%s': %s", t->name, strerror(-r));
        return r;
    }
    if (dev->d->ctrl)
        log_info("device %s: medium removed", dev->conf.id);
    return 0;
}

/* blk (a node's medium when lender is set, else the drive's own, opened from
 * file) into the tray. */
static int insert_medium(struct media_target *t, struct blk_drive *blk, struct drive_entry *lender,
                         const char *file, char *err, size_t errlen)
{
    struct device_entry *dev = t->dev;
    struct drive_entry *drv = t->drv;
    int r;

    /* QEMU's words for an insertion name no device */
    if (dev && !tray_open(t)) {
        snprintf(err, errlen, "Tray of the device is not open");
        return -EPERM;
    }
    if (drv->blk) {
        snprintf(err, errlen, "There already is a medium in the device");
        return -EEXIST;
    }
    if (dev && dev->draining) {
        dev->want_insert = true;        /* goes in once the old medium is out */
    } else if (dev) {
        r = lu_insert(t, blk, err, errlen);
        if (r < 0)
            return r;
    }
    drv->blk = blk;
    drv->lender = lender;
    if (lender)
        lender->lent_to = drv;
    if (dev && dev->d->ctrl)
        log_info("device %s: medium %s inserted%s", dev->conf.id, lender ? lender->conf.id : file,
                 dev->want_insert ? " (goes in once the old one is free)" : "");
    return 0;
}

/* Open filename as the drive's next medium, with the drive's other options;
 * *ncp (to free) gets those options, for set_conf once the medium is in. */
static int open_medium(const struct drive_entry *drv, const char *filename, const char *format,
                       enum vscsid_ro_mode ro, struct drive_conf **ncp, struct blk_drive **blk,
                       char *err, size_t errlen)
{
    bool cur_ro = drv->blk ? blk_is_readonly(drv->blk) : drv->conf.blk.readonly;
    struct drive_conf *nc;

    *ncp = NULL;
    if (!filename || !filename[0]) {
        snprintf(err, errlen, "no file name given");
        return -EINVAL;
    }
    if (strlen(filename) >= sizeof(nc->filename)) {
        snprintf(err, errlen, "file name too long (at most %zu bytes)", sizeof(nc->filename) - 1);
        return -ENAMETOOLONG;
    }
    if (format && strlen(format) >= sizeof(nc->format)) {
        snprintf(err, errlen, "format '%.32s' is not supported (supported: raw)", format);
        return -ENOTSUP;
    }
    *ncp = nc = malloc(sizeof(*nc));
    if (!nc) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *nc = drv->conf;
    strcpy(nc->filename, filename);
    snprintf(nc->format, sizeof(nc->format), "%s", format ? format : "");
    nc->blk.id = drv->conf.id;
    nc->blk.driver = BLK_DRIVER_FILE;
    nc->blk.filename = nc->filename;
    nc->blk.format = nc->format[0] ? nc->format : NULL;
    nc->blk.readonly = ro == VSCSID_RO_RETAIN ? cur_ro : ro == VSCSID_RO_READ_ONLY;
    nc->blk.size = 0;
    nc->blk.null_no_read_zeroes = false;
    /* the error policies are the drive's and stay; fault injection rules were
     * the old medium's */
    nc->inject[0] = 0;
    nc->blk.inject = NULL;
    return blk_open(&nc->blk, blk, err, errlen);
}

static void set_conf(struct drive_entry *drv, const struct drive_conf *nc)
{
    drv->conf = *nc;
    drv->conf.blk.id = drv->conf.id;
    drv->conf.blk.filename = drv->conf.filename;
    drv->conf.blk.format = drv->conf.format[0] ? drv->conf.format : NULL;
    drv->conf.blk.inject = drv->conf.inject[0] ? drv->conf.inject : NULL;
}

int vscsid_open_tray(struct vscsid *d, const char *dev_id, const char *drive_id, bool force,
                     char *err, size_t errlen)
{
    struct media_target t;
    int r = find_removable(d, dev_id, drive_id, &t, err, errlen);

    return r < 0 ? r : open_tray(&t, force, err, errlen);
}

int vscsid_close_tray(struct vscsid *d, const char *dev_id, const char *drive_id, char *err,
                      size_t errlen)
{
    struct media_target t;
    int r = find_removable(d, dev_id, drive_id, &t, err, errlen);

    return r < 0 ? r : close_tray(&t, err, errlen);
}

int vscsid_remove_medium(struct vscsid *d, const char *dev_id, const char *drive_id, char *err,
                         size_t errlen)
{
    struct media_target t;
    int r = find_removable(d, dev_id, drive_id, &t, err, errlen);

    return r < 0 ? r : remove_medium(&t, err, errlen);
}

int vscsid_insert_medium(struct vscsid *d, const char *dev_id, const char *drive_id,
                         const char *filename, const char *format, enum vscsid_ro_mode ro,
                         char *err, size_t errlen)
{
    struct media_target t;
    struct drive_conf *nc;
    struct blk_drive *blk;
    int r = find_removable(d, dev_id, drive_id, &t, err, errlen);

    if (r < 0)
        return r;
    /* check before opening anything */
    if ((t.dev && !tray_open(&t)) || t.drv->blk)
        return insert_medium(&t, NULL, NULL, NULL, err, errlen);
    r = open_medium(t.drv, filename, format, ro, &nc, &blk, err, errlen);
    if (r == 0 && (r = insert_medium(&t, blk, NULL, filename, err, errlen)) < 0)
        blk_close(blk);
    if (r == 0)
        set_conf(t.drv, nc);
    free(nc);
    return r;
}

int vscsid_insert_node(struct vscsid *d, const char *dev_id, const char *node, char *err,
                       size_t errlen)
{
    struct media_target t;
    struct drive_entry *x;
    int r = find_target(d, dev_id, NULL, &t, err, errlen);

    if (r < 0)
        return r;
    /* QEMU's order: the device, then the node, then the tray */
    x = find_drive(d, node);
    if (!x) {
        snprintf(err, errlen, "Node '%s' not found", node);
        return -ENOENT;
    }
    if (x == t.drv || x->used_by[0] || x->lent_to || x->lender) {
        snprintf(err, errlen, "Node '%s' is already in use", node);
        return -EBUSY;
    }
    if (!x->blk) {
        snprintf(err, errlen, "Node '%s' has no medium", node);
        return -ENOMEDIUM;
    }
    if (t.dev && !dev_removable(t.dev)) {
        snprintf(err, errlen, "Device is not removable");
        return -ENOTSUP;
    }
    return insert_medium(&t, x->blk, x, NULL, err, errlen);
}

int vscsid_change_medium(struct vscsid *d, const char *dev_id, const char *drive_id,
                         const char *filename, const char *format, enum vscsid_ro_mode ro,
                         bool force, char *err, size_t errlen)
{
    struct media_target t;
    struct drive_conf *nc;
    struct blk_drive *blk;
    int r = find_target(d, dev_id, drive_id, &t, err, errlen);

    if (r < 0)
        return r;
    /* QEMU's order: the new medium opens first, so a bad file changes nothing */
    r = open_medium(t.drv, filename, format, ro, &nc, &blk, err, errlen);
    if (r < 0)
        goto out;
    if ((r = need_removable(&t, err, errlen)) < 0 || (r = open_tray(&t, force, err, errlen)) < 0 ||
        (r = remove_medium(&t, err, errlen)) < 0 ||
        (r = insert_medium(&t, blk, NULL, filename, err, errlen)) < 0) {
        blk_close(blk);
        goto out;
    }
    set_conf(t.drv, nc);
    r = close_tray(&t, err, errlen);
out:
    free(nc);
    return r;
}

static void drive_info(struct drive_entry *e, struct vscsid_drive_info *out)
{
    struct device_entry *dev = e->user;

    *out = (struct vscsid_drive_info){
        .conf = &e->conf, .blk = e->blk,
        .medium = e->lender ? &e->lender->conf : e->blk ? &e->conf : NULL,
        .attached_to = e->used_by[0] ? e->used_by : NULL,
        .lent_to = e->lent_to ? e->lent_to->conf.id : NULL,
        .io_status = e->io_status,
    };
    /* a device being deleted is off the bus already: no tray to ask */
    if (dev && !dev->deleting && dev_removable(dev)) {
        struct scsi_lun *lu = lun_of(dev);

        if (lu) {
            out->has_tray = true;
            tray_state(dev, lu, &out->tray_open, &out->locked);
        }
    }
}

int vscsid_find_drive(struct vscsid *d, const char *id, struct vscsid_drive_info *out)
{
    struct drive_entry *e = find_drive(d, id);

    if (!e)
        return -ENOENT;
    drive_info(e, out);
    return 0;
}

static void device_info(const struct device_entry *e, struct vscsid_device_info *out)
{
    const struct device_entry *lu_dev = e->path_of ? e->path_of : e;

    *out = (struct vscsid_device_info){
        .conf = &e->conf, .drive_id = e->drive->conf.id, .blk = e->drive->blk,
        .deleting = e->deleting, .medium_draining = lu_dev->draining,
    };
}

int vscsid_find_device(struct vscsid *d, const char *id, struct vscsid_device_info *out)
{
    struct device_entry *e = find_device(d, id);

    if (!e)
        return -ENOENT;
    device_info(e, out);
    return 0;
}

static void free_iothreads(struct vscsid *d);

/* Pollers: one for the control loop (no iothreads), one per iothread. They
 * walk the controller list, which the control thread changes: under the lock. */
static bool poll_loop(struct vscsid *d, struct ev_loop *loop, bool idle)
{
    bool work = false;

    scsi_lock();
    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (b->ctrl && (idle ? vscsi_ctrl_poll_idle(b->ctrl, loop) : vscsi_ctrl_poll(b->ctrl, loop)))
            work = true;
    scsi_unlock();
    return work;
}

static bool poll_cb(void *opaque)
{
    struct vscsid *d = opaque;

    return poll_loop(d, d->loop, false);
}

static bool poll_idle_cb(void *opaque)
{
    struct vscsid *d = opaque;

    return poll_loop(d, d->loop, true);
}

static bool iothread_poll_cb(void *opaque)
{
    struct iothread *it = opaque;

    return poll_loop(it->d, it->loop, false);
}

static bool iothread_poll_idle_cb(void *opaque)
{
    struct iothread *it = opaque;

    return poll_loop(it->d, it->loop, true);
}

int vscsid_set_iothreads(struct vscsid *d, unsigned n, unsigned poll_us, char *err, size_t errlen)
{
    if (d->num_iothreads || d->ctrl) {
        snprintf(err, errlen, "iothreads must be set once, before any controller starts");
        return -EBUSY;
    }
    if (n > VSCSID_MAX_IOTHREADS) {
        snprintf(err, errlen, "at most %u iothreads", VSCSID_MAX_IOTHREADS);
        return -EINVAL;
    }
    if (!n)
        return 0;
    d->iothreads = calloc(n, sizeof(*d->iothreads));
    d->vits = calloc(n, sizeof(*d->vits));
    if (!d->iothreads || !d->vits) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    d->poll_us = poll_us;
    for (unsigned i = 0; i < n; i++) {
        struct iothread *it = &d->iothreads[i];

        it->d = d;
        it->slot = -1;
        snprintf(it->name, sizeof(it->name), "vscsi-io%u", i % 100);
        it->loop = ev_loop_new();
        if (!it->loop) {
            snprintf(err, errlen, "iothread %u: cannot create its event loop: %s", i, strerror(errno));
            goto fail;
        }
        it->blk_ctx = blk_ctx_new(it->loop, err, errlen);
        if (!it->blk_ctx) {
            ev_loop_free(it->loop);
            goto fail;
        }
        /* block completions run SCSI code: once per batch under the lock,
         * which this thread holds shared (its own slot) */
        blk_ctx_set_guard(it->blk_ctx, lock_cb, unlock_cb, it);
        it->slot = scsi_io_slot_new(d->loop);
        if (it->slot < 0) {
            snprintf(err, errlen, "iothread %u: no SCSI lock slot left", i);
            blk_ctx_free(it->blk_ctx);
            ev_loop_free(it->loop);
            goto fail;
        }
        if (poll_us) {
            struct ev_poller p = { .poll_cb = iothread_poll_cb, .idle_cb = iothread_poll_idle_cb,
                                   .opaque = it };
            ev_loop_set_poller(it->loop, &p, (uint64_t)poll_us * 1000);
        }
        d->vits[i] = (struct vscsi_iothread){ .loop = it->loop, .blk_ctx = it->blk_ctx };
        d->num_iothreads = i + 1;
    }
    return 0;

fail:
    free_iothreads(d);
    return -ENOMEM;
}

static void *iothread_main(void *opaque)
{
    struct iothread *it = opaque;
    sigset_t all;

    /* signals are the control thread's (signalfd) */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    __atomic_store_n(&it->thread_id, (int)gettid(), __ATOMIC_RELEASE);
    ev_loop_bind_thread(it->loop);
    blk_ctx_bind_thread(it->blk_ctx);
    scsi_io_thread_enter(it->slot);
    if (ev_loop_run(it->loop) < 0)
        log_err("iothread event loop failed: %s", strerror(errno));
    return NULL;
}

int vscsid_start_iothreads(struct vscsid *d, char *err, size_t errlen)
{
    for (unsigned i = 0; i < d->num_iothreads; i++) {
        struct iothread *it = &d->iothreads[i];
        int r;

        if (it->running)
            continue;
        r = pthread_create(&it->tid, NULL, iothread_main, it);
        if (r) {
            snprintf(err, errlen, "cannot start iothread %u: %s", i, strerror(r));
            return -r;
        }
        it->running = true;
        pthread_setname_np(it->tid, it->name);     /* before the sandbox: /proc write */
    }
    return 0;
}

static void iothread_stop_cb(void *opaque)
{
    struct iothread *it = opaque;

    ev_loop_stop(it->loop);
}

/* Stop and join the iothreads, then free their contexts and loops. The lock
 * is let go meanwhile: a thread finishing its round may need it. */
static void free_iothreads(struct vscsid *d)
{
    for (unsigned i = 0; i < d->num_iothreads; i++) {
        struct iothread *it = &d->iothreads[i];

        if (!it->running)
            continue;
        /* after what was posted to it before (kick watches going away) */
        if (ev_loop_post(it->loop, iothread_stop_cb, it) < 0)
            ev_loop_stop(it->loop);     /* out of memory: stop it directly */
        scsi_unlock();
        pthread_join(it->tid, NULL);
        scsi_lock();
        it->running = false;
    }
    for (unsigned i = 0; i < d->num_iothreads; i++) {
        struct iothread *it = &d->iothreads[i];

        blk_ctx_free(it->blk_ctx);
        it->blk_ctx = NULL;
        /* runs what the other threads posted last (kick watches going away) */
        ev_loop_free(it->loop);
        it->loop = NULL;
        scsi_io_slot_free(it->slot);
        it->slot = -1;
    }
    free(d->iothreads);
    free(d->vits);
    d->iothreads = NULL;
    d->vits = NULL;
    d->num_iothreads = 0;
}

unsigned vscsid_iothreads_info(const struct vscsid *d, struct vscsid_iothread_info *out, unsigned max)
{
    for (unsigned i = 0; i < d->num_iothreads && i < max; i++) {
        out[i] = (struct vscsid_iothread_info){
            .thread_id = __atomic_load_n(&d->iothreads[i].thread_id, __ATOMIC_ACQUIRE),
            .poll_us = d->poll_us,
        };
        memcpy(out[i].id, d->iothreads[i].name, sizeof(out[i].id));
    }
    return d->num_iothreads;
}

int vscsid_add_controller(struct vscsid *d, const struct ctrl_conf *conf, char *err, size_t errlen)
{
    struct bus_entry *b = find_bus(d, conf->id);
    struct vscsi_ctrl_config cfg = {
        .socket_path = conf->socket_path,
        .num_queues = conf->num_queues,
        .polling = conf->poll_us > 0,
        .coalesce_us = conf->coalesce_us,
        .coalesce_auto = conf->coalesce_auto,
        .iothreads = d->vits,
        .num_iothreads = d->num_iothreads,
    };

    if (!b) {
        int ret = vscsid_add_bus(d, conf->id, err, errlen);

        if (ret < 0)
            return ret;
        b = find_bus(d, conf->id);
    }
    if (b->ctrl) {
        snprintf(err, errlen, "controller '%s' is started already", conf->id);
        return -EBUSY;
    }
    cfg.nexus = b->nexus;
    b->ctrl = vscsi_ctrl_new(d->loop, d->blk_ctx, b->bus, &cfg, err, errlen);
    if (!b->ctrl)
        return -EINVAL;
    if (d->run_state != VSCSID_RUNNING)
        vscsi_ctrl_pause(b->ctrl, true);
    if (b == d->buses)
        d->ctrl = b->ctrl;
    if (conf->poll_us && !d->num_iothreads) {
        struct ev_poller p = { .poll_cb = poll_cb, .idle_cb = poll_idle_cb, .opaque = d };
        ev_loop_set_poller(d->loop, &p, (uint64_t)conf->poll_us * 1000);
    }
    return 0;
}

unsigned vscsid_device_count(const struct vscsid *d)
{
    return d->ndevices;
}

unsigned vscsid_drive_count(const struct vscsid *d)
{
    return d->ndrives;
}

unsigned vscsid_inflight(const struct vscsid *d)
{
    unsigned n = 0;

    for (const struct bus_entry *b = d->buses; b; b = b->next)
        n += b->ctrl ? vscsi_ctrl_inflight(b->ctrl) : 0;
    return n;
}

void vscsid_quiesce(struct vscsid *d)
{
    d->quiesced = true;
    /* no polling while draining: the loop must block so waits take real time */
    ev_loop_set_poller(d->loop, NULL, 0);
    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (b->ctrl)
            vscsi_ctrl_quiesce(b->ctrl);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned blk_inflight_all(const struct vscsid *d)
{
    unsigned n = blk_ctx_inflight(d->blk_ctx);

    for (unsigned i = 0; i < d->num_iothreads; i++)
        n += blk_ctx_inflight(d->iothreads[i].blk_ctx);
    return n;
}

int vscsid_drain(struct vscsid *d, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;

    while ((vscsid_inflight(d) || blk_inflight_all(d)) && mono_ms() < deadline) {
        /* held by a stop policy (now, or since the queues stopped): answered
         * RESET, the guest sends them again (to the next daemon) */
        for (struct bus_entry *b = d->buses; b; b = b->next)
            if (scsi_bus_held_count(b->bus))
                scsi_bus_reset_held(b->bus, NULL, NULL);
        ev_loop_run_once(d->loop, 10);
    }
    return vscsid_inflight(d) || blk_inflight_all(d) ? -ETIMEDOUT : 0;
}

struct flush_state {
    unsigned pending;
    int first_err;
};

static void flush_done_cb(struct blk_req *req, int ret)
{
    struct flush_state *st = req->opaque;

    if (ret < 0 && !st->first_err)
        st->first_err = ret;
    st->pending--;
}

int vscsid_flush_all(struct vscsid *d, int timeout_ms)
{
    struct flush_state st = { 0 };
    unsigned n = 0, i = 0;
    struct blk_req *reqs;

    for (struct drive_entry *e = d->drives; e; e = e->next)
        n++;
    reqs = calloc(n ? n : 1, sizeof(*reqs));
    if (!reqs)
        return -ENOMEM;
    for (struct drive_entry *e = d->drives; e; e = e->next, i++) {
        /* empty, read-only, or another node's medium (flushed as that node) */
        if (!e->blk || e->lender || blk_is_readonly(e->blk))
            continue;
        reqs[i] = (struct blk_req){ .op = BLK_OP_FLUSH, .done_cb = flush_done_cb, .opaque = &st };
        if (blk_submit(d->blk_ctx, e->blk, &reqs[i]) == 0)
            st.pending++;
        else if (!st.first_err)
            st.first_err = -EIO;
    }
    blk_ctx_flush(d->blk_ctx);
    for (uint64_t deadline = mono_ms() + (uint64_t)timeout_ms; st.pending && mono_ms() < deadline;)
        ev_loop_run_once(d->loop, 10);
    if (st.pending) {
        /* the requests still reference reqs: leak them rather than free under I/O */
        return -ETIMEDOUT;
    }
    free(reqs);
    return st.first_err;
}

struct blk_ctx *vscsid_blk_ctx(struct vscsid *d)
{
    return d->blk_ctx;
}

int vscsid_foreach_drive(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_drive_info *),
                         void *opaque)
{
    for (struct drive_entry *e = d->drives; e; e = e->next) {
        struct vscsid_drive_info info;
        int r;

        drive_info(e, &info);
        r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
}

int vscsid_foreach_device(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_device_info *),
                          void *opaque)
{
    for (struct device_entry *e = d->devices; e; e = e->next) {
        struct vscsid_device_info info;
        int r;

        device_info(e, &info);
        r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
}

/* ---- run state and I/O error policy ---- */

static const char *const run_state_names[] = {
    [VSCSID_RUNNING] = "running", [VSCSID_PAUSED] = "paused", [VSCSID_IO_ERROR] = "io-error",
};

enum vscsid_run_state vscsid_run_state(const struct vscsid *d)
{
    return d->run_state;
}

static void pause_all(struct vscsid *d, bool paused)
{
    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (b->ctrl)
            vscsi_ctrl_pause(b->ctrl, paused);
}

/* QEMU's vm_stop: only a running VM stops (and says so once). */
static void vm_stop(struct vscsid *d, enum vscsid_run_state state)
{
    if (d->run_state != VSCSID_RUNNING)
        return;
    d->run_state = state;
    pause_all(d, true);
    log_info("guest I/O stopped (%s)%s", run_state_names[state],
             state == VSCSID_IO_ERROR ? "; the failed requests are held until cont" : "");
    emit(d, &(struct vscsid_event){ .type = VSCSID_EVENT_STOP });
}

void vscsid_stop(struct vscsid *d)
{
    vm_stop(d, VSCSID_PAUSED);
}

void vscsid_cont(struct vscsid *d)
{
    unsigned held = vscsid_held(d);

    if (d->run_state == VSCSID_RUNNING)
        return;
    d->run_state = VSCSID_RUNNING;
    for (struct drive_entry *e = d->drives; e; e = e->next)
        e->io_status = BLK_IOSTATUS_OK;
    log_info("guest I/O resumed%s", held ? "; retrying the held requests" : "");
    emit(d, &(struct vscsid_event){ .type = VSCSID_EVENT_RESUME });
    /* held requests first, in order, then what the guests queued meanwhile */
    for (struct bus_entry *b = d->buses; b; b = b->next)
        scsi_bus_retry_held(b->bus);
    /* a retry refused at once may have stopped us again */
    if (d->run_state == VSCSID_RUNNING)
        pause_all(d, false);
}

unsigned vscsid_held(const struct vscsid *d)
{
    unsigned n = 0;

    for (const struct bus_entry *b = d->buses; b; b = b->next)
        n += scsi_bus_held_count(b->bus);
    return n;
}

/* The LU's I/O error hook: the drive's policy decides, the event tells the
 * management plane (QEMU sends BLOCK_IO_ERROR for every action), a stop
 * holds the request and stops every controller. */
static enum scsi_io_error_action device_io_error_cb(void *opaque, const struct scsi_io_error *e)
{
    struct device_entry *dev = opaque;
    struct vscsid *d = dev->d;
    struct drive_entry *drv = dev->drive;
    struct vscsid_io_error info = {
        .drive = drv->conf.id, .device = dev->conf.id, .is_read = e->is_read, .err = e->err,
        .action = blk_error_action(drv->conf.blk.werror, drv->conf.blk.rerror, e->is_read, e->err),
    };
    struct vscsid_event ev = { .type = VSCSID_EVENT_IO_ERROR, .device = dev->conf.id, .io_error = &info };

    /* status first (the first error counts), then BLOCK_IO_ERROR, then STOP
     * (QEMU's order); the policy and the status are the drive's, whatever
     * medium is in it */
    if (info.action == BLK_ACTION_STOP && drv->io_status == BLK_IOSTATUS_OK)
        drv->io_status = e->err == ENOSPC ? BLK_IOSTATUS_NOSPACE : BLK_IOSTATUS_FAILED;
    emit(d, &ev);
    switch (info.action) {
    case BLK_ACTION_STOP:
        vm_stop(d, VSCSID_IO_ERROR);
        return SCSI_IOERR_HOLD;
    case BLK_ACTION_IGNORE:
        return SCSI_IOERR_IGNORE;
    case BLK_ACTION_REPORT:
        break;
    }
    return SCSI_IOERR_REPORT;
}

int vscsid_set_inject(struct vscsid *d, const char *drive, const char *rules, char *err, size_t errlen)
{
    struct drive_entry *e = find_drive(d, drive);

    if (!e) {
        snprintf(err, errlen, "drive '%s' not found", drive);
        return -ENOENT;
    }
    return blk_set_inject(e->blk, rules, err, errlen);
}

void vscsid_request_shutdown(struct vscsid *d)
{
    ev_loop_stop(d->loop);
}

static void device_removed_cb(void *opaque)
{
    (void)opaque;
}

/* No command may be in flight (main.c drains them first). */
void vscsid_free(struct vscsid *d)
{
    if (!d)
        return;
    d->freeing = true;
    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (b->ctrl)
            vscsi_ctrl_quiesce(b->ctrl);
    free_iothreads(d);
    for (struct bus_entry *b = d->buses; b; b = b->next)
        vscsi_ctrl_free(b->ctrl);
    /* paths before the devices they are paths of (both lists are newest first:
     * paths come after their device, so go twice) */
    for (int paths = 1; paths >= 0; paths--) {
        for (struct device_entry **pp = &d->devices; *pp;) {
            struct device_entry *dev = *pp;

            if (!dev->path_of != !paths) {
                pp = &dev->next;
                continue;
            }
            *pp = dev->next;
            /* a device being deleted is already off the bus */
            if (!dev->deleting)
                scsi_bus_remove_lun(dev->bus->bus, dev->conf.target, dev->conf.lun, device_removed_cb,
                                    NULL);
            if (dev->draining) {
                /* a command still uses the old medium, against the rule above:
                 * leave both to the SCSI layer's callback rather than free them */
                log_warn("device %s: its old medium is still in use at exit", dev->conf.id);
                continue;
            }
            free(dev);
        }
    }
    /* media lent by nodes first, then every drive's own */
    for (struct drive_entry *e = d->drives; e; e = e->next)
        if (e->lender)
            drop_medium(e);
    while (d->drives) {
        struct drive_entry *e = d->drives;
        d->drives = e->next;
        drop_medium(e);
        free(e);
    }
    while (d->buses) {
        struct bus_entry *b = d->buses;

        d->buses = b->next;
        scsi_bus_free(b->bus);
        free(b);
    }
    blk_ctx_free(d->blk_ctx);
    ev_loop_set_wait_hooks(d->loop, NULL, NULL, NULL);
    scsi_unlock();
    free(d);
}

#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/loop.h"
#include "virtio_scsi/vscsi.h"

struct drive_entry {
    struct drive_conf conf;
    struct blk_drive *blk;
    char used_by[64];               /* device id, "" when unattached */
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
    struct device_entry *next;
};

struct vscsid {
    struct ev_loop *loop;
    struct blk_ctx *blk_ctx;
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
    ret = blk_open(&e->conf.blk, &e->blk, err, errlen);
    if (ret < 0) {
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
    *pp = e->next;
    d->ndrives--;
    blk_close(e->blk);
    free(e);
    return 0;
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
    dev->conf.scsi.io_error_cb = device_io_error_cb;    /* the drive's werror/rerror */
    dev->conf.scsi.io_error_opaque = dev;
    if (first)
        ret = scsi_bus_add_path(bus->bus, conf->target, conf->lun, first->bus->bus, first->conf.target,
                                first->conf.lun, err, errlen);
    else
        ret = scsi_bus_add_lun(bus->bus, conf->target, conf->lun, &dev->conf.scsi, drv->blk, err, errlen);
    if (ret < 0) {
        free(dev);
        return ret;
    }
    dev->drive = drv;
    dev->bus = bus;
    dev->path_of = first;
    dev->d = d;
    if (first)
        first->npaths++;
    else
        snprintf(drv->used_by, sizeof(drv->used_by), "%s", dev->conf.id);
    dev->next = d->devices;
    d->devices = dev;
    d->ndevices++;
    /* changes while serving (hot-plug) are worth a line; the start-up set is not */
    if (d->ctrl)
        log_info("device %s added at scsi-id=%u,lun=%u (drive %s)", dev->conf.id, conf->target,
                 conf->lun, drv->conf.id);
    return 0;
}

static void emit_event(struct vscsid *d, const struct vscsid_event *ev)
{
    for (unsigned i = 0; i < VSCSID_MAX_SINKS && !d->freeing; i++)
        if (d->sinks[i].cb)
            d->sinks[i].cb(d->sinks[i].opaque, ev);
}

static void emit(struct vscsid *d, enum vscsid_event_type type, const char *device)
{
    struct vscsid_event ev = { .type = type, .device = device };

    emit_event(d, &ev);
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
    if (dev->path_of)
        dev->path_of->npaths--;
    else
        dev->drive->used_by[0] = 0;
    log_info("device %s (scsi-id=%u,lun=%u) removed", dev->conf.id, dev->conf.target, dev->conf.lun);
    emit(d, VSCSID_EVENT_DEVICE_DELETED, dev->conf.id);
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
    dev->deleting = true;
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
    dev = device_of_drive(d, drv);
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

int vscsid_find_drive(struct vscsid *d, const char *id, struct vscsid_drive_info *out)
{
    struct drive_entry *e = find_drive(d, id);

    if (!e)
        return -ENOENT;
    *out = (struct vscsid_drive_info){
        .conf = &e->conf, .blk = e->blk, .attached_to = e->used_by[0] ? e->used_by : NULL,
    };
    return 0;
}

int vscsid_find_device(struct vscsid *d, const char *id, struct vscsid_device_info *out)
{
    struct device_entry *e = find_device(d, id);

    if (!e)
        return -ENOENT;
    *out = (struct vscsid_device_info){
        .conf = &e->conf, .drive_id = e->drive->conf.id, .blk = e->drive->blk,
        .deleting = e->deleting,
    };
    return 0;
}

static bool poll_cb(void *opaque)
{
    struct vscsid *d = opaque;
    bool busy = false;

    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (b->ctrl && vscsi_ctrl_poll(b->ctrl))
            busy = true;
    return busy;
}

static bool poll_idle_cb(void *opaque)
{
    struct vscsid *d = opaque;
    bool again = false;

    for (struct bus_entry *b = d->buses; b; b = b->next)
        if (b->ctrl && vscsi_ctrl_poll_idle(b->ctrl))
            again = true;
    return again;
}

int vscsid_add_controller(struct vscsid *d, const struct ctrl_conf *conf, char *err, size_t errlen)
{
    struct bus_entry *b = find_bus(d, conf->id);
    struct vscsi_ctrl_config cfg = {
        .socket_path = conf->socket_path,
        .num_queues = conf->num_queues,
        .polling = conf->poll_us > 0,
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
    if (conf->poll_us) {
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

int vscsid_drain(struct vscsid *d, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;

    while ((vscsid_inflight(d) || blk_ctx_inflight(d->blk_ctx)) && mono_ms() < deadline) {
        /* held by a stop policy (now, or since the queues stopped): answered
         * RESET, the guest sends them again (to the next daemon) */
        for (struct bus_entry *b = d->buses; b; b = b->next)
            if (scsi_bus_held_count(b->bus))
                scsi_bus_reset_held(b->bus, NULL, NULL);
        ev_loop_run_once(d->loop, 10);
    }
    return vscsid_inflight(d) || blk_ctx_inflight(d->blk_ctx) ? -ETIMEDOUT : 0;
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
        if (blk_is_readonly(e->blk))
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
            .deleting = e->deleting,
        };
        int r = fn(opaque, &info);
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
    emit(d, VSCSID_EVENT_STOP, NULL);
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
        blk_iostatus_reset(e->blk);
    log_info("guest I/O resumed%s", held ? "; retrying the held requests" : "");
    emit(d, VSCSID_EVENT_RESUME, NULL);
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
    struct blk_drive *blk = dev->drive->blk;
    struct vscsid_io_error info = {
        .drive = dev->drive->conf.id, .device = dev->conf.id, .is_read = e->is_read, .err = e->err,
        .action = blk_error_action(blk, e->is_read, e->err),
    };
    struct vscsid_event ev = { .type = VSCSID_EVENT_IO_ERROR, .device = dev->conf.id, .io_error = &info };

    /* status first, then BLOCK_IO_ERROR, then STOP (QEMU's order) */
    if (info.action == BLK_ACTION_STOP)
        blk_iostatus_set_err(blk, e->err);
    emit_event(d, &ev);
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
            free(dev);
        }
    }
    while (d->drives) {
        struct drive_entry *e = d->drives;
        d->drives = e->next;
        blk_close(e->blk);
        free(e);
    }
    while (d->buses) {
        struct bus_entry *b = d->buses;

        d->buses = b->next;
        scsi_bus_free(b->bus);
        free(b);
    }
    blk_ctx_free(d->blk_ctx);
    free(d);
}

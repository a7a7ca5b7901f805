/* The daemon's object model: drives, devices (LUNs) and controllers, and the
 * builder functions that change them. The command line and the management
 * socket both go through these, so they cannot disagree. */
#ifndef VSCSI_DAEMON_H
#define VSCSI_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/blk.h"
#include "scsi/scsi.h"

struct ev_loop;
struct vscsid;

struct drive_conf {
    char id[64];
    struct blk_opts blk;        /* blk.filename/format point into owned strings */
    char filename[4096];        /* "" with media=cdrom: an empty drive (no medium) */
    char format[16];
    bool cdrom;                 /* media=cdrom: read-only, may be empty */
    char inject[1024];          /* blk.inject: fault injection rules (tests), "" = none */
};

struct device_conf {
    char id[64];
    char drive[64];
    char serial[64];
    char vendor[16];
    char product[32];
    char version[8];
    uint8_t target;
    uint16_t lun;
    struct scsi_dev_config scsi;    /* string pointers refer to the fields above */
    char bus[64];                   /* controller id; "" = the default controller (--socket) */
    char path_of[64];               /* another path to this device's LU (no drive of its own) */
};

struct ctrl_conf {
    char id[64];                    /* "" = the default controller */
    char socket_path[108];
    unsigned num_queues;
    unsigned poll_us;           /* adaptive polling window after activity; 0 = off */
    unsigned coalesce_us;       /* completion interrupt held up to this long; 0 = off */
    bool coalesce_auto;         /* ... only while holding measures faster */
};

/* The calling thread becomes the control thread: it runs loop (the
 * vhost-user sessions, control and event queues, management), and holds the
 * SCSI lock from here to vscsid_free except while loop waits for events. */
struct vscsid *vscsid_new(struct ev_loop *loop, char *err, size_t errlen);
void vscsid_free(struct vscsid *d);

/* Iothreads (--iothreads N): each serves request queues with its own event
 * loop and io_uring; controllers started afterwards spread their request
 * queues over them round robin (none: every queue on the control loop).
 * Set once, before any controller; poll_us as ctrl_conf's. The threads start
 * with vscsid_start_iothreads (after the privilege drop, before the sandbox)
 * and stop in vscsid_free. 0 or -errno with a message. */
#define VSCSID_MAX_IOTHREADS 64
int vscsid_set_iothreads(struct vscsid *d, unsigned n, unsigned poll_us, char *err, size_t errlen);
int vscsid_start_iothreads(struct vscsid *d, char *err, size_t errlen);
/* QMP query-iothreads: name (vscsi-ioN), Linux thread id (0 until the thread
 * runs), adaptive polling window. */
struct vscsid_iothread_info {
    char id[16];
    int thread_id;
    unsigned poll_us;
};
/* The first max iothreads into out; returns how many there are. */
unsigned vscsid_iothreads_info(const struct vscsid *d, struct vscsid_iothread_info *out, unsigned max);

/* Each returns 0 or -errno with a one-line message in err. */
int vscsid_add_drive(struct vscsid *d, const struct drive_conf *conf, char *err, size_t errlen);
int vscsid_add_device(struct vscsid *d, const struct device_conf *conf, char *err, size_t errlen);
/* Controllers: each has its own SCSI bus (the LUNs its guest sees) and I_T
 * nexus. The default one (id "") always exists; vscsid_add_bus makes a named
 * one, so devices (bus=ID) can be added before its socket is listened on;
 * vscsid_add_controller starts a controller (creating a named bus if needed). */
int vscsid_add_bus(struct vscsid *d, const char *id, char *err, size_t errlen);
int vscsid_add_controller(struct vscsid *d, const struct ctrl_conf *conf, char *err, size_t errlen);

/* Detach a device: its LUN leaves the bus at once (new commands see no LUN, the
 * guest gets TRANSPORT_RESET/REMOVED); once the commands in flight on it have
 * completed the device is gone, its drive is free again, and the event sink
 * gets VSCSID_EVENT_DEVICE_DELETED (possibly before this returns). -ENOENT no
 * such device, -EBUSY already being removed. */
int vscsid_del_device(struct vscsid *d, const char *id, char *err, size_t errlen);
/* Close a drive no device uses. -ENOENT, -EBUSY (attached, its device is
 * still being removed, or its medium is in another drive). */
int vscsid_del_drive(struct vscsid *d, const char *id, char *err, size_t errlen);
/* Set a drive's size (grow or shrink; a block device can only be re-read at the
 * size it already has on the host). The attached device, if any, reports UA
 * CAPACITY DATA HAS CHANGED and the guest gets PARAM_CHANGE. size must be a
 * positive multiple of the device's logical block size (512 when unattached).
 * -ENOENT, -ENOMEDIUM (an empty drive), -EINVAL, -EROFS, -EPERM, -EBUSY (a
 * medium change is still draining) or the truncate error. */
int vscsid_resize_drive(struct vscsid *d, const char *id, uint64_t size, char *err, size_t errlen);

/* Removable media (scsi-cd, scsi-hd removable=on). The device is named by its
 * id (dev_id) or by the id of its drive (drive_id, QEMU's BlockBackend name;
 * a device id is accepted there too): give exactly one, else -EINVAL. A
 * drive no device uses has no tray: its medium can be removed and inserted at
 * will, and tray moves on it succeed without doing anything (as in QEMU).
 * Common errors: -ENODEV no such device or drive, -ENOTSUP the device is not
 * removable, -EBUSY the device is being removed (or the drive's medium is in
 * another drive). Messages in err name the device as it was given.
 *
 * A medium leaves the logical unit asynchronously: the commands still using
 * it finish first, then it is closed (or given back to the node it came
 * from). Until then the daemon remembers what comes next (a medium to insert,
 * closing the tray) and does it when the old medium is free; the listing
 * (vscsid_find_drive) already shows that outcome. */
/* Open the tray. Locked by the guest and !force: the guest gets an eject
 * request and -EINPROGRESS is returned (the tray stays closed until the guest
 * opens it). force also drops the guest's lock. 0 when open already. */
int vscsid_open_tray(struct vscsid *d, const char *dev_id, const char *drive_id, bool force,
                     char *err, size_t errlen);
/* Close the tray (a medium in it becomes ready: the guest sees UA 28/00). */
int vscsid_close_tray(struct vscsid *d, const char *dev_id, const char *drive_id, char *err,
                      size_t errlen);
/* Take the medium out of the open tray; 0 also when there is none. -EPERM
 * the tray is closed. */
int vscsid_remove_medium(struct vscsid *d, const char *dev_id, const char *drive_id, char *err,
                         size_t errlen);
enum vscsid_ro_mode {
    VSCSID_RO_RETAIN,           /* as the medium before (or the drive's readonly=) */
    VSCSID_RO_READ_ONLY,
    VSCSID_RO_READ_WRITE,
};
/* Open filename (format NULL = raw) with the drive's other options (cache,
 * aio, ...) and put it into the open, empty tray. -EPERM tray closed,
 * -EEXIST a medium is in it, or the open error (-ENOENT, -EACCES, ...). */
int vscsid_insert_medium(struct vscsid *d, const char *dev_id, const char *drive_id,
                         const char *filename, const char *format, enum vscsid_ro_mode ro,
                         char *err, size_t errlen);
/* Put the medium of drive node (one no device uses, e.g. added by QMP
 * blockdev-add) into the open, empty tray. The node stays listed, in use,
 * until the medium is removed again; it is closed only by deleting the node.
 * -ENOENT no such node, -EBUSY the node is in use (attached to a device, or
 * its medium is in a drive already), -ENOMEDIUM the node is empty, else as
 * vscsid_insert_medium. */
int vscsid_insert_node(struct vscsid *d, const char *dev_id, const char *node, char *err,
                       size_t errlen);
/* Replace the medium (QEMU's blockdev-change-medium): open filename first
 * (an error leaves everything as it was), then open the tray (force as in
 * vscsid_open_tray: a locked tray without force gives -EINPROGRESS and changes
 * nothing but the guest's eject request), remove the old medium, insert the
 * new one and close the tray. */
int vscsid_change_medium(struct vscsid *d, const char *dev_id, const char *drive_id,
                         const char *filename, const char *format, enum vscsid_ro_mode ro,
                         bool force, char *err, size_t errlen);

unsigned vscsid_device_count(const struct vscsid *d);
unsigned vscsid_drive_count(const struct vscsid *d);

/* Read-only views for listing (query-block, query-scsi-devices). */
struct vscsid_drive_info {
    const struct drive_conf *conf;
    struct blk_drive *blk;          /* the medium; NULL: the drive is empty */
    const struct drive_conf *medium;    /* options the medium was opened with: conf, or
                                         * the node it came from; NULL when empty */
    const char *attached_to;        /* device id or NULL */
    const char *lent_to;            /* this node's medium is in that drive, or NULL */
    bool has_tray;                  /* attached to a removable device */
    bool tray_open;                 /* has_tray: the tray is open */
    bool locked;                    /* has_tray: the guest prevents medium removal */
    enum blk_io_status io_status;   /* QEMU's: set by an I/O error that stopped, until cont */
};
struct vscsid_device_info {
    const struct device_conf *conf;
    const char *drive_id;
    struct blk_drive *blk;
    bool deleting;                  /* device_del accepted, commands still draining */
    bool medium_draining;           /* a removed medium is still used by commands */
};
/* Lookup by id: 0 and *out filled, or -ENOENT. */
int vscsid_find_drive(struct vscsid *d, const char *id, struct vscsid_drive_info *out);
int vscsid_find_device(struct vscsid *d, const char *id, struct vscsid_device_info *out);
/* Iterate; stop when fn returns non-zero (that value is returned). */
int vscsid_foreach_drive(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_drive_info *),
                         void *opaque);
int vscsid_foreach_device(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_device_info *),
                          void *opaque);
/* Events for the management plane. The daemon knows nothing of QMP: the
 * management socket registers a sink and turns these into QMP events. The
 * sink runs on the loop thread, possibly from inside a builder function. */
enum vscsid_event_type {
    VSCSID_EVENT_DEVICE_DELETED,    /* device: its removal (vscsid_del_device) completed */
    VSCSID_EVENT_TRAY_MOVED,        /* device's tray moved (guest or host); tray_open */
    VSCSID_EVENT_IO_ERROR,          /* io_error: a request failed; the drive's policy acted */
    VSCSID_EVENT_STOP,              /* the run state left running (stop, or an I/O error) */
    VSCSID_EVENT_RESUME,            /* running again (vscsid_cont) */
};
struct vscsid_io_error {
    const char *drive;              /* drive id */
    const char *device;             /* id of the device the request came through */
    bool is_read;                   /* read (rerror) or write/flush/discard (werror) */
    int err;                        /* positive errno */
    enum blk_error_action action;
};
struct vscsid_event {
    enum vscsid_event_type type;
    const char *device;             /* device id */
    const char *drive;              /* TRAY_MOVED: the device's drive id */
    bool tray_open;                 /* TRAY_MOVED: the tray's new position */
    const struct vscsid_io_error *io_error;     /* VSCSID_EVENT_IO_ERROR */
};
typedef void vscsid_event_cb(void *opaque, const struct vscsid_event *ev);
/* Up to VSCSID_MAX_SINKS sinks (one per management socket). 0 or -ENOSPC. */
#define VSCSID_MAX_SINKS 4
int vscsid_add_event_sink(struct vscsid *d, vscsid_event_cb *cb, void *opaque);
void vscsid_del_event_sink(struct vscsid *d, vscsid_event_cb *cb, void *opaque);

/* Run state, VM-wide like QEMU's (vm_stop stops every device): while not
 * running no controller takes requests from its guest (vscsi_ctrl_pause);
 * requests already taken complete, except those held by werror/rerror=stop.
 * An I/O error whose drive policy says stop holds the request and, when
 * running, moves to IO_ERROR (events IO_ERROR then STOP). */
enum vscsid_run_state { VSCSID_RUNNING, VSCSID_PAUSED, VSCSID_IO_ERROR };
enum vscsid_run_state vscsid_run_state(const struct vscsid *d);
/* QMP stop: PAUSED (event STOP) when running; no change otherwise. */
void vscsid_stop(struct vscsid *d);
/* QMP cont: back to running (event RESUME; drives' io_status reset), every
 * held request resubmitted, each device's in arrival order, then the
 * controllers take requests again. A retry that fails with a stop policy
 * stops again. Nothing happens when running. */
void vscsid_cont(struct vscsid *d);
/* Requests held by a stop policy, all controllers. */
unsigned vscsid_held(const struct vscsid *d);
/* Replace a drive's fault injection rules (blk_set_inject; "" clears).
 * -ENOENT, -EINVAL with a message. */
int vscsid_set_inject(struct vscsid *d, const char *drive, const char *rules, char *err, size_t errlen);

/* Ask the daemon to shut down gracefully (QMP quit, signals). */
void vscsid_request_shutdown(struct vscsid *d);
/* Commands in flight on every controller. */
unsigned vscsid_inflight(const struct vscsid *d);
/* Shutdown, step 1: stop taking new requests from guests (in-flight ones finish);
 * adaptive polling stops. */
void vscsid_quiesce(struct vscsid *d);
/* Shutdown, step 2: run the loop until no command is in flight (or timeout_ms
 * passes: -ETIMEDOUT). */
int vscsid_drain(struct vscsid *d, int timeout_ms);
/* Shutdown, step 3: flush every writable drive's volatile cache, running the
 * loop until done or timeout_ms passes. Returns 0, the first flush error
 * (-errno), or -ETIMEDOUT. */
int vscsid_flush_all(struct vscsid *d, int timeout_ms);
struct blk_ctx *vscsid_blk_ctx(struct vscsid *d);

#endif

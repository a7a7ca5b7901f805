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
    char filename[4096];
    char format[16];
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
};

struct ctrl_conf {
    char socket_path[108];
    unsigned num_queues;
};

struct vscsid *vscsid_new(struct ev_loop *loop, char *err, size_t errlen);
void vscsid_free(struct vscsid *d);

/* Each returns 0 or -errno with a one-line message in err. */
int vscsid_add_drive(struct vscsid *d, const struct drive_conf *conf, char *err, size_t errlen);
int vscsid_add_device(struct vscsid *d, const struct device_conf *conf, char *err, size_t errlen);
int vscsid_add_controller(struct vscsid *d, const struct ctrl_conf *conf, char *err, size_t errlen);

unsigned vscsid_device_count(const struct vscsid *d);

/* Read-only views for listing (query-block, query-scsi-devices). */
struct vscsid_drive_info {
    const struct drive_conf *conf;
    struct blk_drive *blk;
    const char *attached_to;        /* device id or NULL */
};
struct vscsid_device_info {
    const struct device_conf *conf;
    const char *drive_id;
    struct blk_drive *blk;
};
/* Iterate; stop when fn returns non-zero (that value is returned). */
int vscsid_foreach_drive(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_drive_info *),
                         void *opaque);
int vscsid_foreach_device(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_device_info *),
                          void *opaque);
/* Ask the daemon to shut down gracefully (QMP quit, signals). */
void vscsid_request_shutdown(struct vscsid *d);
/* Commands in flight on every controller. */
unsigned vscsid_inflight(const struct vscsid *d);
struct blk_ctx *vscsid_blk_ctx(struct vscsid *d);

#endif

/* A stand-in for the daemon: the daemon.h and blk.h functions the QMP
 * commands call, over fixed data (40 drives, devices disk0 and cd1), so the
 * management plane is tested without the block/SCSI/vhost layers. */
#ifndef VSCSI_TEST_STUB_DAEMON_H
#define VSCSI_TEST_STUB_DAEMON_H

#include <stdbool.h>

#include "daemon.h"

#define NDRIVES 40

struct blk_drive {
    uint64_t size;
    bool ro, wce;
    enum blk_io_status iostatus;
    char inject[256];           /* the rules last set (stub_daemon.c) */
};

struct vscsid {
    struct drive_conf drives[NDRIVES];
    struct blk_drive blks[NDRIVES];
    struct device_conf devices[2];
    unsigned ndrives;
    int shutdown_requests;
    struct ev_loop *loop;       /* stopped by vscsid_request_shutdown when set */
    /* hot-plug calls: the last configuration handed over, and call counts */
    struct drive_conf last_drive;
    struct device_conf last_device;
    unsigned add_drive_calls, add_device_calls, del_device_calls;
    uint64_t last_resize;
    enum vscsid_run_state run_state;
    unsigned stop_calls, cont_calls;
    char last_resize_drive[64];
    struct {
        vscsid_event_cb *cb;
        void *opaque;
    } sinks[VSCSID_MAX_SINKS];
    /* removable media: cd1 (drive1) has a tray, disk0 is not removable, the
     * other drives have no device (no tray); the last call, as text */
    bool tray_open, locked, cd_empty;
    unsigned eject_requests;
    char last_media[512];
};

extern struct vscsid g_d;

/* long_names: 400-character file names (makes query-block replies large). */
void stub_init(bool long_names);

#endif

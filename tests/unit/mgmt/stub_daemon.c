#include "stub_daemon.h"

#include <stdio.h>
#include <string.h>

#include "util/loop.h"

struct vscsid g_d;

uint64_t blk_size(const struct blk_drive *d) { return d->size; }
bool blk_is_readonly(const struct blk_drive *d) { return d->ro; }
bool blk_write_cache(const struct blk_drive *d) { return d->wce; }

int vscsid_foreach_drive(struct vscsid *d, int (*fn)(void *opaque, const struct vscsid_drive_info *),
                         void *opaque)
{
    for (unsigned i = 0; i < d->ndrives; i++) {
        struct vscsid_drive_info info = {
            .conf = &d->drives[i], .blk = &d->blks[i],
            .attached_to = i < 2 ? d->devices[i].id : NULL,
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
    /* listed newest first, as the daemon does; the server sorts by address */
    for (int i = 1; i >= 0; i--) {
        struct vscsid_device_info info = {
            .conf = &d->devices[i], .drive_id = d->drives[i].id, .blk = &d->blks[i],
        };
        int r = fn(opaque, &info);
        if (r)
            return r;
    }
    return 0;
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

    memset(d, 0, sizeof(*d));
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
}

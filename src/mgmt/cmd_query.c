/* Listing commands: query-block (QEMU's BlockInfo shape) and
 * query-scsi-devices (ours). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "mgmt/qmp_cmd.h"

/* Snapshot of the daemon's lists, sorted for stable output. */
struct drive_list {
    struct vscsid_drive_info *v;
    size_t n, cap;
};

struct device_list {
    struct vscsid_device_info *v;
    size_t n, cap;
};

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *nv = realloc(*v, ncap * elem);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

static int collect_drive(void *opaque, const struct vscsid_drive_info *info)
{
    struct drive_list *l = opaque;

    if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
        return -ENOMEM;
    l->v[l->n++] = *info;
    return 0;
}

static int collect_device(void *opaque, const struct vscsid_device_info *info)
{
    struct device_list *l = opaque;

    if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
        return -ENOMEM;
    l->v[l->n++] = *info;
    return 0;
}

/* Natural order: drive2 before drive10. */
static int cmp_drive(const void *a, const void *b)
{
    const struct vscsid_drive_info *x = a, *y = b;

    return strverscmp(x->conf->id, y->conf->id);
}

static int cmp_device(const void *a, const void *b)
{
    const struct vscsid_device_info *x = a, *y = b;

    if (x->conf->target != y->conf->target)
        return x->conf->target < y->conf->target ? -1 : 1;
    if (x->conf->lun != y->conf->lun)
        return x->conf->lun < y->conf->lun ? -1 : 1;
    return strcmp(x->conf->id, y->conf->id);
}

static void write_cache(struct json_buf *ret, const struct drive_conf *conf, struct blk_drive *blk)
{
    enum blk_cache_mode m = conf->blk.cache;

    json_buf_add_key(ret, "cache");
    json_buf_begin_object(ret);
    /* "writeback" is the write cache the guest currently sees (WCE can be toggled) */
    json_buf_kv_bool(ret, "writeback", blk_write_cache(blk));
    json_buf_kv_bool(ret, "direct", m == BLK_CACHE_NONE || m == BLK_CACHE_DIRECTSYNC);
    json_buf_kv_bool(ret, "no-flush", m == BLK_CACHE_UNSAFE);
    json_buf_end_object(ret);
}

/* QEMU's BlockInfo: "removable" is true for a removable device and for a
 * drive with no device (its medium can be swapped); "tray_open" only where
 * there is a tray; "inserted" only when a medium is in the drive, described
 * by the options it was opened with (the node it came from, if inserted with
 * blockdev-insert-medium). */
static void write_drive(struct json_buf *ret, const struct vscsid_drive_info *info)
{
    const struct drive_conf *conf = info->medium ? info->medium : info->conf;
    bool null_drv = conf->blk.driver == BLK_DRIVER_NULL;
    bool mem_drv = conf->blk.driver == BLK_DRIVER_MEMORY;
    const char *file = null_drv ? "null-co://" : mem_drv ? "memory://" : conf->filename;
    const char *drv = null_drv ? "null-co" : mem_drv ? "memory" :
                      (conf->format[0] ? conf->format : "raw");

    json_buf_begin_object(ret);
    json_buf_kv_str(ret, "device", info->conf->id);
    if (info->attached_to)
        json_buf_kv_str(ret, "qdev", info->attached_to);
    json_buf_kv_bool(ret, "locked", info->has_tray && info->locked);
    json_buf_kv_bool(ret, "removable", info->has_tray || !info->attached_to);
    if (info->has_tray)
        json_buf_kv_bool(ret, "tray_open", info->tray_open);
    json_buf_kv_str(ret, "type", "unknown");
    if (info->blk && info->medium) {
        json_buf_add_key(ret, "inserted");
        json_buf_begin_object(ret);
        json_buf_kv_str(ret, "node-name", conf->id);
        json_buf_kv_str(ret, "file", file);
        json_buf_kv_bool(ret, "ro", blk_is_readonly(info->blk));
        json_buf_kv_str(ret, "drv", drv);
        json_buf_kv_bool(ret, "encrypted", false);
        json_buf_kv_int(ret, "backing_file_depth", 0);
        json_buf_kv_str(ret, "detect_zeroes", "off");
        write_cache(ret, conf, info->blk);
        json_buf_add_key(ret, "image");
        json_buf_begin_object(ret);
        json_buf_kv_str(ret, "filename", file);
        json_buf_kv_str(ret, "format", drv);
        json_buf_kv_uint(ret, "virtual-size", blk_size(info->blk));
        json_buf_end_object(ret);
        json_buf_end_object(ret);
    }
    /* QEMU's BlockDeviceIoStatus, kept for a drive a device uses: failed or
     * nospace after a stop, until cont */
    if (info->attached_to)
        json_buf_kv_str(ret, "io-status", blk_io_status_name(info->io_status));
    json_buf_end_object(ret);
}

static int cmd_query_block(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    struct drive_list l = { 0 };

    if (req->daemon && vscsid_foreach_drive(req->daemon, collect_drive, &l) < 0) {
        free(l.v);
        return qmp_req_error(req, QMP_ERR_GENERIC, "out of memory");
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(*l.v), cmp_drive);
    json_buf_begin_array(ret);
    for (size_t i = 0; i < l.n; i++)
        write_drive(ret, &l.v[i]);
    json_buf_end_array(ret);
    free(l.v);
    return 0;
}

static const char *device_driver(enum scsi_dev_type t)
{
    switch (t) {
    case SCSI_DEV_HD: return "scsi-hd";
    case SCSI_DEV_CD: return "scsi-cd";
    }
    return "unknown";
}

static void write_device(struct json_buf *ret, const struct vscsid_device_info *info)
{
    const struct device_conf *conf = info->conf;
    uint32_t lbs = conf->scsi.logical_block_size ? conf->scsi.logical_block_size : 512;

    json_buf_begin_object(ret);
    json_buf_kv_str(ret, "id", conf->id);
    json_buf_kv_str(ret, "driver", device_driver(conf->scsi.type));
    json_buf_kv_str(ret, "drive", info->drive_id ? info->drive_id : conf->drive);
    json_buf_kv_uint(ret, "scsi-id", conf->target);
    json_buf_kv_uint(ret, "lun", conf->lun);
    if (info->blk) {
        json_buf_kv_uint(ret, "size", blk_size(info->blk));
        json_buf_kv_bool(ret, "read-only", blk_is_readonly(info->blk));
    }
    json_buf_kv_uint(ret, "logical-block-size", lbs);
    if (conf->serial[0])
        json_buf_kv_str(ret, "serial", conf->serial);
    if (conf->scsi.wwn) {
        char wwn[24];
        snprintf(wwn, sizeof(wwn), "0x%016" PRIx64, conf->scsi.wwn);
        json_buf_kv_str(ret, "wwn", wwn);
    }
    if (conf->vendor[0])
        json_buf_kv_str(ret, "vendor", conf->vendor);
    if (conf->product[0])
        json_buf_kv_str(ret, "product", conf->product);
    /* device_del accepted, commands on it still in flight (DEVICE_DELETED follows) */
    if (info->deleting)
        json_buf_kv_bool(ret, "deleting", true);
    /* a medium taken out is still read by commands; the next steps wait for them */
    if (info->medium_draining)
        json_buf_kv_bool(ret, "medium-draining", true);
    json_buf_end_object(ret);
}

static int cmd_query_scsi_devices(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    struct device_list l = { 0 };

    if (req->daemon && vscsid_foreach_device(req->daemon, collect_device, &l) < 0) {
        free(l.v);
        return qmp_req_error(req, QMP_ERR_GENERIC, "out of memory");
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(*l.v), cmp_device);
    json_buf_begin_array(ret);
    for (size_t i = 0; i < l.n; i++)
        write_device(ret, &l.v[i]);
    json_buf_end_array(ret);
    free(l.v);
    return 0;
}

/* QEMU's IOThreadInfo: id, thread-id (pin it with taskset -p), the polling
 * window in ns; poll-grow, poll-shrink and aio-max-batch are fixed at 0
 * (vscsid polls a fixed window). */
static int cmd_query_iothreads(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    struct vscsid_iothread_info info[VSCSID_MAX_IOTHREADS];
    unsigned n = req->daemon ? vscsid_iothreads_info(req->daemon, info, VSCSID_MAX_IOTHREADS) : 0;

    (void)args;
    json_buf_begin_array(ret);
    for (unsigned i = 0; i < n && i < VSCSID_MAX_IOTHREADS; i++) {
        json_buf_begin_object(ret);
        json_buf_kv_str(ret, "id", info[i].id);
        json_buf_kv_int(ret, "thread-id", info[i].thread_id);
        json_buf_kv_uint(ret, "poll-max-ns", (uint64_t)info[i].poll_us * 1000);
        json_buf_kv_uint(ret, "poll-grow", 0);
        json_buf_kv_uint(ret, "poll-shrink", 0);
        json_buf_kv_uint(ret, "aio-max-batch", 0);
        json_buf_end_object(ret);
    }
    json_buf_end_array(ret);
    return 0;
}

const struct qmp_cmd qmp_query_cmds[] = {
    { "query-block", cmd_query_block, NULL, 0 },
    { "query-iothreads", cmd_query_iothreads, NULL, 0 },
    { "query-scsi-devices", cmd_query_scsi_devices, NULL, 0 },
    { NULL },
};

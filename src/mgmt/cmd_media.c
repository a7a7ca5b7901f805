/* Removable media: eject, blockdev-open-tray, blockdev-close-tray,
 * blockdev-remove-medium, blockdev-insert-medium, blockdev-change-medium
 * (QEMU's commands, arguments and messages: block.json, block-core.json,
 * block/qapi-sysemu.c). The device is "id" (the device's id) or the
 * deprecated "device" (the drive's id, QEMU's BlockBackend name; vscsid also
 * takes a device id there). The work is the daemon's (vscsid_open_tray, ...);
 * DEVICE_TRAY_MOVED comes from the daemon's TRAY_MOVED event (qmp.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "mgmt/qmp_cmd.h"

#define SHOWN 128

/* The daemon's message; a missing device (-ENODEV, not a missing file or
 * node) is QEMU's DeviceNotFound. */
static int daemon_error(struct qmp_req *req, int r, const char *err)
{
    return qmp_req_error(req, r == -ENODEV ? QMP_ERR_DEVICE_NOT_FOUND : QMP_ERR_GENERIC, "%s", err);
}

/* QEMU's qmp_get_blk(): exactly one of "device" and "id". */
static int device_or_id(struct qmp_req *req, const struct json_value *args, const char **device,
                        const char **id)
{
    *device = qmp_arg_str(args, "device");
    *id = qmp_arg_str(args, "id");
    if (!*device == !*id)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Need exactly one of 'device' and 'id'");
    if (!req->daemon)
        return qmp_req_error(req, QMP_ERR_DEVICE_NOT_FOUND, "Device '%.*s' not found", SHOWN,
                             *id ? *id : *device);
    return 0;
}

/* ---- eject, blockdev-open-tray, blockdev-close-tray ---- */

static const struct qmp_arg tray_force_args[] = {
    { "device", QMP_ARG_STR, true },
    { "id", QMP_ARG_STR, true },
    { "force", QMP_ARG_BOOL, true },
    { NULL },
};

static const struct qmp_arg tray_args[] = {
    { "device", QMP_ARG_STR, true },
    { "id", QMP_ARG_STR, true },
    { NULL },
};

/* Open the tray (a locked one: the guest is asked, and that is an error
 * here), then take the medium out; no medium is fine. */
static int cmd_eject(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const char *device, *id;
    char err[512];
    int r;

    if (device_or_id(req, args, &device, &id) < 0)
        return -EINVAL;
    r = vscsid_open_tray(req->daemon, id, device, qmp_arg_bool(args, "force", false), err, sizeof(err));
    if (r == 0)
        r = vscsid_remove_medium(req->daemon, id, device, err, sizeof(err));
    return r < 0 ? daemon_error(req, r, err) : 0;
}

/* A locked tray without force: the guest gets an eject request, and the
 * command succeeds (DEVICE_TRAY_MOVED follows if the guest opens it). */
static int cmd_blockdev_open_tray(struct qmp_req *req, const struct json_value *args,
                                  struct json_buf *ret)
{
    const char *device, *id;
    char err[512];
    int r;

    if (device_or_id(req, args, &device, &id) < 0)
        return -EINVAL;
    r = vscsid_open_tray(req->daemon, id, device, qmp_arg_bool(args, "force", false), err, sizeof(err));
    return r < 0 && r != -EINPROGRESS ? daemon_error(req, r, err) : 0;
}

static int cmd_blockdev_close_tray(struct qmp_req *req, const struct json_value *args,
                                   struct json_buf *ret)
{
    const char *device, *id;
    char err[512];
    int r;

    if (device_or_id(req, args, &device, &id) < 0)
        return -EINVAL;
    r = vscsid_close_tray(req->daemon, id, device, err, sizeof(err));
    return r < 0 ? daemon_error(req, r, err) : 0;
}

/* ---- blockdev-remove-medium, blockdev-insert-medium ---- */

static const struct qmp_arg remove_args[] = {
    { "id", QMP_ARG_STR, false },
    { NULL },
};

static int cmd_blockdev_remove_medium(struct qmp_req *req, const struct json_value *args,
                                      struct json_buf *ret)
{
    const char *id = qmp_arg_str(args, "id");
    char err[512];
    int r = -ENODEV;

    snprintf(err, sizeof(err), "Device '%.*s' not found", SHOWN, id);
    if (req->daemon)
        r = vscsid_remove_medium(req->daemon, id, NULL, err, sizeof(err));
    return r < 0 ? daemon_error(req, r, err) : 0;
}

static const struct qmp_arg insert_args[] = {
    { "id", QMP_ARG_STR, false },
    { "node-name", QMP_ARG_STR, false },
    { NULL },
};

/* node-name: a drive with a medium that no device uses (e.g. from blockdev-add). */
static int cmd_blockdev_insert_medium(struct qmp_req *req, const struct json_value *args,
                                      struct json_buf *ret)
{
    const char *id = qmp_arg_str(args, "id");
    char err[512];
    int r = -ENODEV;

    snprintf(err, sizeof(err), "Device '%.*s' not found", SHOWN, id);
    if (req->daemon)
        r = vscsid_insert_node(req->daemon, id, qmp_arg_str(args, "node-name"), err, sizeof(err));
    return r < 0 ? daemon_error(req, r, err) : 0;
}

/* ---- blockdev-change-medium ---- */

static const struct qmp_arg change_args[] = {
    { "device", QMP_ARG_STR, true },
    { "id", QMP_ARG_STR, true },
    { "filename", QMP_ARG_STR, false },
    { "format", QMP_ARG_STR, true },
    { "force", QMP_ARG_BOOL, true },
    { "read-only-mode", QMP_ARG_STR, true },
    { NULL },
};

static int cmd_blockdev_change_medium(struct qmp_req *req, const struct json_value *args,
                                      struct json_buf *ret)
{
    static const char *const modes[] = { "retain", "read-only", "read-write", NULL };
    static const enum vscsid_ro_mode mode_val[] = { VSCSID_RO_RETAIN, VSCSID_RO_READ_ONLY,
                                                    VSCSID_RO_READ_WRITE };
    const char *mode = qmp_arg_str(args, "read-only-mode");
    enum vscsid_ro_mode ro = VSCSID_RO_RETAIN;
    const char *device, *id;
    char err[512];
    int r;

    if (mode) {
        unsigned i = 0;

        while (modes[i] && strcmp(modes[i], mode))
            i++;
        if (!modes[i])
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'read-only-mode' does not accept "
                                 "value '%.*s'", SHOWN, mode);
        ro = mode_val[i];
    }
    if (device_or_id(req, args, &device, &id) < 0)
        return -EINVAL;
    r = vscsid_change_medium(req->daemon, id, device, qmp_arg_str(args, "filename"),
                             qmp_arg_str(args, "format"), ro, qmp_arg_bool(args, "force", false),
                             err, sizeof(err));
    return r < 0 ? daemon_error(req, r, err) : 0;
}

const struct qmp_cmd qmp_media_cmds[] = {
    { "eject", cmd_eject, tray_force_args, 0 },
    { "blockdev-open-tray", cmd_blockdev_open_tray, tray_force_args, 0 },
    { "blockdev-close-tray", cmd_blockdev_close_tray, tray_args, 0 },
    { "blockdev-remove-medium", cmd_blockdev_remove_medium, remove_args, 0 },
    { "blockdev-insert-medium", cmd_blockdev_insert_medium, insert_args, 0 },
    { "blockdev-change-medium", cmd_blockdev_change_medium, change_args, 0 },
    { NULL },
};

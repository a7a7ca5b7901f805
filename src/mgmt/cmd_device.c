/* Device hot-plug: device_add, device_del (QEMU's commands, SCSI devices only).
 * device_add takes the --device properties as QMP arguments and runs them
 * through the same checks as the command line (cli_device_from_opts), then
 * vscsid_add_device. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "mgmt/qmp_cmd.h"
#include "util/opts.h"

/* Client-chosen names are cut short in messages. */
#define SHOWN 128

/* A QMP argument as option text: strings as they are, integers in decimal,
 * booleans as on/off (QEMU's device_add takes both JSON types and strings). */
static int arg_to_opt(struct qmp_req *req, const char *prefix, const char *key,
                   const struct json_value *v, char *buf, size_t len)
{
    switch (v->type) {
    case JSON_STRING:
        if (v->u.str.len >= len)
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter '%s%.*s' is too long (at most %zu "
                                 "characters)", prefix, SHOWN, key, len - 1);
        memcpy(buf, v->u.str.s, v->u.str.len + 1);
        return 0;
    case JSON_INT:
        snprintf(buf, len, "%" PRId64, v->u.i);
        return 0;
    case JSON_BOOL:
        snprintf(buf, len, "%s", v->u.b ? "on" : "off");
        return 0;
    default:
        return qmp_req_error(req, QMP_ERR_GENERIC, "Invalid parameter type for '%s%.*s', expected: "
                             "string, integer or boolean", prefix, SHOWN, key);
    }
}

static int cmd_device_add(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const struct json_value *drv = json_obj_get(args, "driver");
    struct device_conf conf;
    struct opts o = { 0 };
    char err[512], val[4096];
    int r;

    /* QEMU checks the driver first: without it nothing else can be checked. */
    if (!drv)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'driver' is missing");
    if (drv->type != JSON_STRING)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Invalid parameter type for 'driver', expected: string");
    for (size_t i = 0; args && i < args->u.obj.n; i++) {
        const char *key = args->u.obj.members[i].key;
        if (arg_to_opt(req, "", key, args->u.obj.members[i].value, val, sizeof(val)) < 0)
            goto out;
        if (opts_add(&o, key, val, err, sizeof(err)) < 0) {
            qmp_req_error(req, QMP_ERR_GENERIC, "device_add: %s", err);
            goto out;
        }
    }
    if (cli_device_from_opts(&o, &conf, "device_add", err, sizeof(err)) < 0) {
        qmp_req_error(req, QMP_ERR_GENERIC, "%s", err);
        goto out;
    }
    if (!req->daemon) {
        qmp_req_error(req, QMP_ERR_GENERIC, "device_add: no daemon");
        goto out;
    }
    r = vscsid_add_device(req->daemon, &conf, err, sizeof(err));
    if (r < 0)
        qmp_req_error(req, QMP_ERR_GENERIC, "device_add: %s", err);
out:
    opts_free(&o);
    return req->failed ? -EINVAL : 0;
}

static const struct qmp_arg device_del_args[] = {
    { "id", QMP_ARG_STR, false },
    { NULL },
};

/* The reply comes at once; DEVICE_DELETED follows when the commands in flight
 * on the LUN have completed (at once when there are none). */
static int cmd_device_del(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const char *id = qmp_arg_str(args, "id");
    char err[512];
    int r;

    if (!req->daemon)
        return qmp_req_error(req, QMP_ERR_DEVICE_NOT_FOUND, "Device '%.*s' not found", SHOWN, id);
    r = vscsid_del_device(req->daemon, id, err, sizeof(err));
    if (r == -ENOENT)
        return qmp_req_error(req, QMP_ERR_DEVICE_NOT_FOUND, "Device '%.*s' not found", SHOWN, id);
    if (r < 0)
        return qmp_req_error(req, QMP_ERR_GENERIC, "device_del: %s", err);
    return 0;
}

const struct qmp_cmd qmp_device_cmds[] = {
    /* arguments are --device properties: checked by cli_device_from_opts */
    { "device_add", cmd_device_add, NULL, QMP_CMD_ARGS_ANY },
    { "device_del", cmd_device_del, device_del_args, 0 },
    { NULL },
};

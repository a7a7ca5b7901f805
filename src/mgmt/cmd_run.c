/* Run state and I/O error handling: stop, cont (QEMU's commands, with the
 * daemon's run state standing for the VM's), and x-vscsi-inject (ours: the
 * fault injection rules of a drive, for tests). query-status is in
 * cmd_core.c. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon.h"
#include "mgmt/qmp_cmd.h"

#define SHOWN 128

/* QEMU: pauses the guest; STOP once the reply is out (events raised while a
 * command runs are held until its reply). */
static int cmd_stop(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    if (req->daemon)
        vscsid_stop(req->daemon);
    return 0;
}

/* QEMU: resumes; with requests held by werror/rerror=stop they are retried
 * (RESUME, then BLOCK_IO_ERROR + STOP again if a retry fails the same way). */
static int cmd_cont(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    if (req->daemon)
        vscsid_cont(req->daemon);
    return 0;
}

static const struct qmp_arg inject_args[] = {
    { "node-name", QMP_ARG_STR, false },
    { "rules", QMP_ARG_STR, true },
    { NULL },
};

/* Replace the drive's rules when "rules" is given ("" clears them), then
 * return them as they stand: [{"rule", "hits", "remaining"}], remaining
 * absent for count=inf. */
static int cmd_inject(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const char *node = qmp_arg_str(args, "node-name"), *rules = qmp_arg_str(args, "rules");
    struct blk_inject_info info[BLK_INJECT_MAX];
    struct vscsid_drive_info di;
    char err[512];
    unsigned n;
    int r;

    if (!req->daemon || vscsid_find_drive(req->daemon, node, &di) < 0)
        return qmp_req_error(req, QMP_ERR_DEVICE_NOT_FOUND, "Failed to find node with node-name='%.*s'",
                             SHOWN, node);
    if (rules) {
        r = vscsid_set_inject(req->daemon, node, rules, err, sizeof(err));
        if (r < 0)
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'rules': %s", err);
    }
    n = blk_get_inject(di.blk, info, BLK_INJECT_MAX);
    json_buf_begin_array(ret);
    for (unsigned i = 0; i < n && i < BLK_INJECT_MAX; i++) {
        json_buf_begin_object(ret);
        json_buf_kv_str(ret, "rule", info[i].rule);
        json_buf_kv_uint(ret, "hits", info[i].hits);
        if (info[i].remaining != UINT64_MAX)
            json_buf_kv_uint(ret, "remaining", info[i].remaining);
        json_buf_end_object(ret);
    }
    json_buf_end_array(ret);
    return 0;
}

const struct qmp_cmd qmp_run_cmds[] = {
    { "stop", cmd_stop, NULL, 0 },
    { "cont", cmd_cont, NULL, 0 },
    { "x-vscsi-inject", cmd_inject, inject_args, 0 },
    { NULL },
};

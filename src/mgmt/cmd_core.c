/* Protocol-level QMP commands: qmp_capabilities, query-version, query-status,
 * query-name, query-commands, quit. */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "mgmt/qmp.h"
#include "mgmt/qmp_cmd.h"
#include "vscsi-config.h"

static const struct qmp_arg capabilities_args[] = {
    { "enable", QMP_ARG_ARRAY, true },
    { NULL },
};

/* No optional capability (such as "oob") is offered, so "enable" may only be empty. */
static int cmd_qmp_capabilities(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const struct json_value *enable = json_obj_get(args, "enable");

    for (size_t i = 0; i < json_array_len(enable); i++) {
        const char *cap = json_get_str(json_array_at(enable, i));
        if (!cap)
            return qmp_req_error(req, QMP_ERR_GENERIC,
                                 "Invalid parameter type for 'enable[%zu]', expected: string", i);
        if (!strcmp(cap, "oob"))
            return qmp_req_error(req, QMP_ERR_GENERIC, "Capability 'oob' not available");
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'enable[%zu]' does not accept value '%.64s'",
                             i, cap);
    }
    req->enter_command_mode = true;
    return 0;
}

/* Our version in QEMU's VersionInfo shape. */
static int cmd_query_version(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    json_buf_begin_object(ret);
    json_buf_add_key(ret, "qemu");
    json_buf_begin_object(ret);
    json_buf_kv_uint(ret, "micro", VSCSI_VERSION_MICRO);
    json_buf_kv_uint(ret, "minor", VSCSI_VERSION_MINOR);
    json_buf_kv_uint(ret, "major", VSCSI_VERSION_MAJOR);
    json_buf_end_object(ret);
    json_buf_kv_str(ret, "package", "vscsid " VSCSI_VERSION);
    json_buf_end_object(ret);
    return 0;
}

/* QEMU's RunState names: running, paused (stop), io-error (werror/rerror=
 * stop), shutdown (after quit). */
static int cmd_query_status(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    static const char *const names[] = {
        [VSCSID_RUNNING] = "running", [VSCSID_PAUSED] = "paused", [VSCSID_IO_ERROR] = "io-error",
    };
    enum vscsid_run_state st = req->daemon ? vscsid_run_state(req->daemon) : VSCSID_RUNNING;
    bool quitting = qmp_server_quitting(req->server);

    json_buf_begin_object(ret);
    json_buf_kv_str(ret, "status", quitting ? "shutdown" : names[st]);
    json_buf_kv_bool(ret, "running", !quitting && st == VSCSID_RUNNING);
    json_buf_end_object(ret);
    return 0;
}

/* QEMU returns {} when the VM has no -name; the daemon has none. */
static int cmd_query_name(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    return 0;
}

static void list_command(void *opaque, const struct qmp_cmd *cmd)
{
    struct json_buf *ret = opaque;

    json_buf_begin_object(ret);
    json_buf_kv_str(ret, "name", cmd->name);
    json_buf_end_object(ret);
}

static int cmd_query_commands(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    json_buf_begin_array(ret);
    qmp_foreach_command(list_command, ret);
    json_buf_end_array(ret);
    return 0;
}

/* After the {} reply: SHUTDOWN event (QEMU's data for a QMP quit), then stop. */
static void quit_after_reply(struct qmp_req *req)
{
    qmp_server_set_quitting(req->server);
    if (req->server)
        qmp_server_event(req->server, "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
    if (req->daemon)
        vscsid_request_shutdown(req->daemon);
}

static int cmd_quit(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    req->after_reply_cb = quit_after_reply;
    return 0;
}

const struct qmp_cmd qmp_core_cmds[] = {
    { "qmp_capabilities", cmd_qmp_capabilities, capabilities_args, QMP_CMD_PRECAP },
    { "query-version", cmd_query_version, NULL, 0 },
    { "query-status", cmd_query_status, NULL, 0 },
    { "query-name", cmd_query_name, NULL, 0 },
    { "query-commands", cmd_query_commands, NULL, 0 },
    { "quit", cmd_quit, NULL, 0 },
    { NULL },
};

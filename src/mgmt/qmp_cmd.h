/* QMP command table and the API command handlers use.
 *
 * Adding a command:
 *   1. write a handler `static int cmd_foo(struct qmp_req *req,
 *      const struct json_value *args, struct json_buf *ret)` in a cmd_*.c file;
 *   2. describe its top-level arguments in a {NULL}-terminated struct qmp_arg
 *      array (name, type, optional);
 *   3. add { "foo", cmd_foo, foo_args, flags } to that file's table
 *      (qmp_core_cmds[], qmp_query_cmds[], ...). A new file adds its table to
 *      qmp_cmd_groups[] in qmp_dispatch.c and itself to src/mgmt/meson.build.
 *
 * Before a handler runs, the dispatcher has checked the arguments against the
 * spec with QEMU's messages ("Parameter 'x' is missing", "... is unexpected",
 * "Invalid parameter type for 'x', expected: integer"), so the handler can
 * read them without type checks. Nested objects (e.g. blockdev-add "file")
 * are checked by the handler with qmp_check_args() and a "file." prefix.
 *
 * A handler writes exactly one JSON value (normally an object) into ret, or
 * nothing for {}; returns 0, or a negative errno after qmp_req_error(). It
 * runs on the daemon's event loop thread and must not block. State changes
 * go through daemon.h, like the command line. Work that must follow the
 * reply (events, shutdown) goes in req->after_reply_cb. */
#ifndef VSCSI_MGMT_QMP_CMD_H
#define VSCSI_MGMT_QMP_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "util/json.h"

struct qmp_server;
struct qmp_client;
struct vscsid;

enum qmp_error_class {
    QMP_ERR_GENERIC,            /* "GenericError" */
    QMP_ERR_COMMAND_NOT_FOUND,  /* "CommandNotFound" */
    QMP_ERR_DEVICE_NOT_FOUND,   /* "DeviceNotFound" */
    QMP_ERR_DEVICE_NOT_ACTIVE,  /* "DeviceNotActive" */
};

struct qmp_req {
    struct qmp_server *server;  /* NULL when dispatched without a server (tests) */
    struct vscsid *daemon;
    struct qmp_client *client;
    const char *cmd_name;
    /* set by qmp_capabilities: the client enters command mode after the reply */
    bool enter_command_mode;
    /* error, set through qmp_req_error() */
    bool failed;
    enum qmp_error_class err_class;
    char err_desc[512];
    /* called once the reply has been queued */
    void (*after_reply_cb)(struct qmp_req *req);
};

enum qmp_arg_type {
    QMP_ARG_STR,
    QMP_ARG_INT,                /* JSON integer (int64) */
    QMP_ARG_BOOL,
    QMP_ARG_NUMBER,             /* integer or double */
    QMP_ARG_OBJECT,
    QMP_ARG_ARRAY,
    QMP_ARG_ANY,
};

struct qmp_arg {
    const char *name;
    enum qmp_arg_type type;
    bool optional;
};

typedef int qmp_cmd_fn(struct qmp_req *req, const struct json_value *args, struct json_buf *ret);

#define QMP_CMD_PRECAP    (1u << 0)     /* allowed before capabilities negotiation */
#define QMP_CMD_ARGS_ANY  (1u << 1)     /* no spec check: the handler validates args */

struct qmp_cmd {
    const char *name;
    qmp_cmd_fn *fn;
    const struct qmp_arg *args;  /* {NULL}-terminated; NULL: takes no arguments */
    unsigned flags;
};

/* Command tables, each ending with { NULL }. */
extern const struct qmp_cmd qmp_core_cmds[];    /* cmd_core.c */
extern const struct qmp_cmd qmp_query_cmds[];   /* cmd_query.c */
extern const struct qmp_cmd qmp_block_cmds[];   /* cmd_block.c */
extern const struct qmp_cmd qmp_device_cmds[];  /* cmd_device.c */
extern const struct qmp_cmd qmp_media_cmds[];   /* cmd_media.c */
extern const struct qmp_cmd qmp_run_cmds[];     /* cmd_run.c */

const struct qmp_cmd *qmp_find_command(const char *name);
/* Calls fn for every command, in table order. */
void qmp_foreach_command(void (*fn)(void *opaque, const struct qmp_cmd *cmd), void *opaque);

/* Record an error for the reply; returns -EINVAL for `return qmp_req_error(...)`. */
int qmp_req_error(struct qmp_req *req, enum qmp_error_class cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *qmp_error_class_name(enum qmp_error_class cls);

/* Check args (NULL = none given) against spec; prefix ("" or "file.") is put
 * before names in messages. 0 or -EINVAL with the error set. */
int qmp_check_args(struct qmp_req *req, const struct json_value *args, const struct qmp_arg *spec,
                   const char *prefix);
/* Typed reads after qmp_check_args. */
const char *qmp_arg_str(const struct json_value *args, const char *name);   /* NULL when absent */
bool qmp_arg_bool(const struct json_value *args, const char *name, bool def);
/* 1 present and in range, 0 absent, -EINVAL out of range (error set). */
int qmp_arg_int(struct qmp_req *req, const struct json_value *args, const char *name,
                int64_t min, int64_t max, int64_t *out);

/* Parse one client message and write the reply (a JSON text without the
 * "\r\n") into reply. *command_mode is the client's negotiation state. */
void qmp_dispatch(struct qmp_req *req, bool *command_mode, const char *text, size_t len,
                  struct json_buf *reply);

/* Server state visible to handlers (s may be NULL). */
bool qmp_server_quitting(const struct qmp_server *s);
void qmp_server_set_quitting(struct qmp_server *s);

#endif

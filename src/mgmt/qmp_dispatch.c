/* QMP request checking and dispatch (QEMU qmp-spec "Issuing Commands"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mgmt/qmp_cmd.h"
#include "util/log.h"

/* Every command table; see qmp_cmd.h for adding one. */
static const struct qmp_cmd *const qmp_cmd_groups[] = {
    qmp_core_cmds,
    qmp_query_cmds,
    qmp_block_cmds,
    qmp_device_cmds,
    qmp_media_cmds,
    qmp_run_cmds,
    NULL,
};

/* QMP input is parsed with QEMU's single-quote extension. */
#define QMP_PARSE_FLAGS JSON_PARSE_SQUOTE

const struct qmp_cmd *qmp_find_command(const char *name)
{
    for (size_t g = 0; qmp_cmd_groups[g]; g++)
        for (const struct qmp_cmd *c = qmp_cmd_groups[g]; c->name; c++)
            if (!strcmp(c->name, name))
                return c;
    return NULL;
}

void qmp_foreach_command(void (*fn)(void *opaque, const struct qmp_cmd *cmd), void *opaque)
{
    for (size_t g = 0; qmp_cmd_groups[g]; g++)
        for (const struct qmp_cmd *c = qmp_cmd_groups[g]; c->name; c++)
            fn(opaque, c);
}

const char *qmp_error_class_name(enum qmp_error_class cls)
{
    switch (cls) {
    case QMP_ERR_GENERIC: return "GenericError";
    case QMP_ERR_COMMAND_NOT_FOUND: return "CommandNotFound";
    case QMP_ERR_DEVICE_NOT_FOUND: return "DeviceNotFound";
    case QMP_ERR_DEVICE_NOT_ACTIVE: return "DeviceNotActive";
    }
    return "GenericError";
}

int qmp_req_error(struct qmp_req *req, enum qmp_error_class cls, const char *fmt, ...)
{
    va_list ap;

    if (req->failed)            /* keep the first error */
        return -EINVAL;
    req->failed = true;
    req->err_class = cls;
    va_start(ap, fmt);
    vsnprintf(req->err_desc, sizeof(req->err_desc), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *arg_type_name(enum qmp_arg_type t)
{
    switch (t) {
    case QMP_ARG_STR: return "string";
    case QMP_ARG_INT: return "integer";
    case QMP_ARG_BOOL: return "boolean";
    case QMP_ARG_NUMBER: return "number";
    case QMP_ARG_OBJECT: return "object";
    case QMP_ARG_ARRAY: return "array";
    case QMP_ARG_ANY: return "any";
    }
    return "any";
}

static bool arg_type_ok(const struct json_value *v, enum qmp_arg_type t)
{
    switch (t) {
    case QMP_ARG_STR: return v->type == JSON_STRING;
    case QMP_ARG_INT: return v->type == JSON_INT;
    case QMP_ARG_BOOL: return v->type == JSON_BOOL;
    case QMP_ARG_NUMBER: return v->type == JSON_INT || v->type == JSON_DOUBLE;
    case QMP_ARG_OBJECT: return v->type == JSON_OBJECT;
    case QMP_ARG_ARRAY: return v->type == JSON_ARRAY;
    case QMP_ARG_ANY: return true;
    }
    return false;
}

/* Client-chosen names are cut short in messages. */
#define NAME_MAX_SHOWN 128

int qmp_check_args(struct qmp_req *req, const struct json_value *args, const struct qmp_arg *spec,
                   const char *prefix)
{
    /* QEMU's order: the schema's members first (missing, wrong type), then leftovers */
    for (const struct qmp_arg *a = spec; a && a->name; a++) {
        const struct json_value *v = json_obj_get(args, a->name);
        if (!v) {
            if (!a->optional)
                return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter '%s%s' is missing", prefix,
                                     a->name);
            continue;
        }
        if (!arg_type_ok(v, a->type))
            return qmp_req_error(req, QMP_ERR_GENERIC,
                                 "Invalid parameter type for '%s%s', expected: %s", prefix, a->name,
                                 arg_type_name(a->type));
    }
    for (size_t i = 0; args && i < args->u.obj.n; i++) {
        const char *key = args->u.obj.members[i].key;
        const struct qmp_arg *a = spec;
        while (a && a->name && strcmp(a->name, key))
            a++;
        if (!a || !a->name)
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter '%s%.*s' is unexpected", prefix,
                                 NAME_MAX_SHOWN, key);
    }
    return 0;
}

const char *qmp_arg_str(const struct json_value *args, const char *name)
{
    return json_get_str(json_obj_get(args, name));
}

bool qmp_arg_bool(const struct json_value *args, const char *name, bool def)
{
    bool b;

    return json_get_bool(json_obj_get(args, name), &b) == 0 ? b : def;
}

int qmp_arg_int(struct qmp_req *req, const struct json_value *args, const char *name,
                int64_t min, int64_t max, int64_t *out)
{
    const struct json_value *v = json_obj_get(args, name);
    int ret;

    if (!v)
        return 0;
    ret = json_get_int(v, min, max, out);
    if (ret == -EINVAL)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Invalid parameter type for '%s', expected: integer",
                             name);
    if (ret < 0)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter '%s' expects a value from %lld to %lld",
                             name, (long long)min, (long long)max);
    return 1;
}

/* Check the request envelope (qmp-spec "Issuing Commands"); QEMU's wording.
 * Returns the command name, or NULL with the error set (the name itself is
 * the success signal, so no caller can use it after a failed check). */
static const char *check_envelope(struct qmp_req *req, const struct json_value *msg,
                                  const struct json_value **args)
{
    const struct json_value *exec = NULL;
    const char *why = NULL;

    if (!json_is(msg, JSON_OBJECT)) {
        qmp_req_error(req, QMP_ERR_GENERIC, "QMP input must be a JSON object");
        return NULL;
    }
    for (size_t i = 0; i < msg->u.obj.n && !why; i++) {
        const char *key = msg->u.obj.members[i].key;
        const struct json_value *v = msg->u.obj.members[i].value;
        if (!strcmp(key, "execute")) {
            if (!json_is(v, JSON_STRING))
                why = "QMP input member 'execute' must be a string";
            exec = v;
        } else if (!strcmp(key, "arguments")) {
            if (!json_is(v, JSON_OBJECT))
                why = "QMP input member 'arguments' must be an object";
            *args = v;
        } else if (strcmp(key, "id")) {
            /* no "exec-oob"/"control": the out-of-band capability is not offered */
            qmp_req_error(req, QMP_ERR_GENERIC, "QMP input member '%.*s' is unexpected",
                          NAME_MAX_SHOWN, key);
            return NULL;
        }
    }
    if (!why && !exec)
        why = "QMP input lacks member 'execute'";
    if (why) {
        qmp_req_error(req, QMP_ERR_GENERIC, "%s", why);
        return NULL;
    }
    return json_get_str(exec);
}

static void write_reply(struct qmp_req *req, const struct json_value *id, const struct json_buf *ret,
                        struct json_buf *reply)
{
    json_buf_begin_object(reply);
    if (req->failed) {
        json_buf_add_key(reply, "error");
        json_buf_begin_object(reply);
        json_buf_kv_str(reply, "class", qmp_error_class_name(req->err_class));
        json_buf_kv_str(reply, "desc", req->err_desc);
        json_buf_end_object(reply);
    } else {
        json_buf_add_key(reply, "return");
        if (ret && ret->len)
            json_buf_add_raw(reply, ret->data, ret->len);
        else
            json_buf_add_raw(reply, "{}", 2);
    }
    if (id) {
        json_buf_add_key(reply, "id");
        json_buf_add_value(reply, id);
    }
    json_buf_end_object(reply);
}

void qmp_dispatch(struct qmp_req *req, bool *command_mode, const char *text, size_t len,
                  struct json_buf *reply)
{
    struct json_value *msg;
    const struct json_value *args = NULL, *id;
    const struct qmp_cmd *cmd;
    const char *name = NULL;
    struct json_buf ret;
    char perr[160];
    int r;

    json_buf_init(&ret, 0);
    msg = json_parse(text, len, QMP_PARSE_FLAGS, perr, sizeof(perr));
    if (!msg) {
        qmp_req_error(req, QMP_ERR_GENERIC, "JSON parse error, %s", perr);
        write_reply(req, NULL, NULL, reply);
        goto out;
    }
    id = json_obj_get(msg, "id");
    name = check_envelope(req, msg, &args);
    if (!name)
        goto reply;
    req->cmd_name = name;
    cmd = qmp_find_command(name);
    if (!*command_mode) {
        if (!cmd || !(cmd->flags & QMP_CMD_PRECAP)) {
            qmp_req_error(req, QMP_ERR_COMMAND_NOT_FOUND,
                          "Expecting capabilities negotiation with 'qmp_capabilities'");
            goto reply;
        }
    } else if (cmd && !strcmp(cmd->name, "qmp_capabilities")) {
        qmp_req_error(req, QMP_ERR_COMMAND_NOT_FOUND,
                      "Capabilities negotiation is already complete, command ignored");
        goto reply;
    }
    if (!cmd) {
        qmp_req_error(req, QMP_ERR_COMMAND_NOT_FOUND, "The command %.*s has not been found",
                      NAME_MAX_SHOWN, name);
        goto reply;
    }
    if (!(cmd->flags & QMP_CMD_ARGS_ANY) && qmp_check_args(req, args, cmd->args, "") < 0)
        goto reply;
    r = cmd->fn(req, args, &ret);
    if (r < 0 && !req->failed)
        qmp_req_error(req, QMP_ERR_GENERIC, "%s: %s", cmd->name, strerror(-r));
    if (!req->failed && ret.err) {
        log_err("qmp: %s: cannot build the reply (%s)", cmd->name, strerror(-ret.err));
        qmp_req_error(req, QMP_ERR_GENERIC, "%s: out of memory", cmd->name);
    }
    if (!req->failed && req->enter_command_mode)
        *command_mode = true;
reply:
    write_reply(req, id, &ret, reply);
out:
    if (reply->err) {
        /* keep the client in step: one minimal reply per request */
        static const char oom[] = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"out of memory\"}}";
        json_buf_reset(reply);
        json_buf_append(reply, oom, sizeof(oom) - 1);
    }
    json_free(msg);
    json_buf_free(&ret);
}

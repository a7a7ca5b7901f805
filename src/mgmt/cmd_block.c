/* Drives: blockdev-add, blockdev-del, block_resize, query-blockstats (QEMU's
 * commands and shapes). blockdev-add maps QEMU's node tree onto the --drive
 * keys and runs them through the command line's checks (cli_drive_from_opts)
 * and vscsid_add_drive. In vscsid a drive is one node: node-name, the drive
 * id and QEMU's "device" (BlockBackend name) are the same string. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "mgmt/qmp_cmd.h"
#include "util/opts.h"

#define SHOWN 128

/* ---- blockdev-add ---- */

static const struct qmp_arg blockdev_add_args[] = {
    { "node-name", QMP_ARG_STR, false },
    { "driver", QMP_ARG_STR, false },
    { "file", QMP_ARG_OBJECT, true },       /* raw: the protocol node */
    { "filename", QMP_ARG_STR, true },      /* driver=file at the top */
    { "aio", QMP_ARG_STR, true },           /* driver=file at the top */
    { "size", QMP_ARG_INT, true },          /* null-co, memory */
    { "read-zeroes", QMP_ARG_BOOL, true },  /* null-co: reads always return zeroes */
    { "read-only", QMP_ARG_BOOL, true },
    { "auto-read-only", QMP_ARG_BOOL, true },   /* accepted, no effect (libvirt sends it) */
    { "cache", QMP_ARG_OBJECT, true },
    { "discard", QMP_ARG_STR, true },
    { "detect-zeroes", QMP_ARG_STR, true },
    { "werror", QMP_ARG_STR, true },        /* vscsid: -drive's error policies */
    { "rerror", QMP_ARG_STR, true },
    { "x-inject", QMP_ARG_STR, true },      /* vscsid: fault injection rules */
    { NULL },
};

static const struct qmp_arg file_args[] = {
    { "driver", QMP_ARG_STR, false },
    { "filename", QMP_ARG_STR, false },
    { "aio", QMP_ARG_STR, true },
    { NULL },
};

static const struct qmp_arg cache_args[] = {
    { "direct", QMP_ARG_BOOL, true },
    { "no-flush", QMP_ARG_BOOL, true },
    { NULL },
};

struct opt_list {
    struct qmp_req *req;
    struct opts o;
};

static int put(struct opt_list *l, const char *key, const char *val)
{
    char err[256];

    if (opts_add(&l->o, key, val, err, sizeof(err)) < 0)
        return qmp_req_error(l->req, QMP_ERR_GENERIC, "blockdev-add: %s", err);
    return 0;
}

/* QEMU's aio names: threads, native (Linux AIO: io_uring is the nearest), io_uring. */
static int put_aio(struct opt_list *l, const char *prefix, const char *aio)
{
    if (!aio)
        return 0;
    if (!strcmp(aio, "threads"))
        return put(l, "aio", "threads");
    if (!strcmp(aio, "io_uring") || !strcmp(aio, "native"))
        return put(l, "aio", "io_uring");
    return qmp_req_error(l->req, QMP_ERR_GENERIC, "Parameter '%saio' does not accept value '%.*s'",
                         prefix, SHOWN, aio);
}

/* {direct, no-flush} -> the --drive cache mode. */
static int put_cache(struct opt_list *l, const struct json_value *cache)
{
    bool direct, no_flush;

    if (!cache)
        return 0;
    if (qmp_check_args(l->req, cache, cache_args, "cache.") < 0)
        return -EINVAL;
    direct = qmp_arg_bool(cache, "direct", false);
    no_flush = qmp_arg_bool(cache, "no-flush", false);
    if (direct && no_flush)
        return qmp_req_error(l->req, QMP_ERR_GENERIC, "cache.direct and cache.no-flush cannot both "
                             "be true in vscsid (no O_DIRECT mode that ignores flushes)");
    return put(l, "cache", direct ? "none" : no_flush ? "unsafe" : "writeback");
}

static int blockdev_opts(struct opt_list *l, const struct json_value *args)
{
    struct qmp_req *req = l->req;
    const char *driver = qmp_arg_str(args, "driver");
    const char *discard = qmp_arg_str(args, "discard");
    const char *dz = qmp_arg_str(args, "detect-zeroes");
    const struct json_value *file = json_obj_get(args, "file");
    bool is_null = !strcmp(driver, "null-co"), is_raw = !strcmp(driver, "raw");
    bool is_file = !strcmp(driver, "file"), is_mem = !strcmp(driver, "memory");
    char num[32];
    int64_t size;

    if (!is_null && !is_raw && !is_file && !is_mem)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'driver' does not accept value '%.*s' "
                             "(vscsid has raw, file, null-co and memory)", SHOWN, driver);
    /* Each driver's own members only, with QEMU's message for the others. */
    static const char *const raw_only[] = { "file", NULL };
    static const char *const file_only[] = { "filename", "aio", NULL };
    static const char *const sized[] = { "size", NULL };
    static const char *const null_only[] = { "read-zeroes", NULL };
    const char *const *groups[] = { raw_only, file_only, sized, null_only };
    const bool allowed[] = { is_raw, is_file, is_null || is_mem, is_null };
    for (int g = 0; g < 4; g++)
        for (const char *const *k = groups[g]; *k; k++)
            if (!allowed[g] && json_obj_get(args, *k))
                return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter '%s' is unexpected", *k);
    if (dz && strcmp(dz, "off"))
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'detect-zeroes' does not accept value "
                             "'%.*s' (only off)", SHOWN, dz);
    if (!cli_id_valid(qmp_arg_str(args, "node-name")))
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'node-name': '%.*s' is not a valid "
                             "name: " CLI_ID_RULE, SHOWN, qmp_arg_str(args, "node-name"));
    if (put(l, "id", qmp_arg_str(args, "node-name")) < 0)
        return -EINVAL;
    if (is_null || is_mem) {
        if (qmp_arg_int(req, args, "size", 1, INT64_MAX, &size) < 0)
            return -EINVAL;
        if (!json_obj_get(args, "size"))
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'size' is missing (%s has "
                                 "no default size in vscsid)", driver);
        snprintf(num, sizeof(num), "%" PRId64, size);
        if (put(l, "driver", is_null ? "null" : "memory") < 0 || put(l, "size", num) < 0)
            return -EINVAL;
    } else if (is_raw) {
        const char *fdrv;
        if (!file)
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'file' is missing");
        if (qmp_check_args(req, file, file_args, "file.") < 0)
            return -EINVAL;
        fdrv = qmp_arg_str(file, "driver");
        if (strcmp(fdrv, "file") && strcmp(fdrv, "host_device"))
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'file.driver' does not accept value "
                                 "'%.*s' (vscsid has file and host_device)", SHOWN, fdrv);
        if (put(l, "driver", "file") < 0 || put(l, "format", "raw") < 0 ||
            put(l, "file", qmp_arg_str(file, "filename")) < 0 ||
            put_aio(l, "file.", qmp_arg_str(file, "aio")) < 0)
            return -EINVAL;
    } else {
        if (!json_obj_get(args, "filename"))
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'filename' is missing");
        if (put(l, "driver", "file") < 0 || put(l, "file", qmp_arg_str(args, "filename")) < 0 ||
            put_aio(l, "", qmp_arg_str(args, "aio")) < 0)
            return -EINVAL;
    }
    if (json_obj_get(args, "read-only") &&
        put(l, "readonly", qmp_arg_bool(args, "read-only", false) ? "on" : "off") < 0)
        return -EINVAL;
    if (discard) {
        if (strcmp(discard, "ignore") && strcmp(discard, "off") && strcmp(discard, "unmap") &&
            strcmp(discard, "on"))
            return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'discard' does not accept value "
                                 "'%.*s' (ignore or unmap)", SHOWN, discard);
        if (put(l, "discard", discard) < 0)
            return -EINVAL;
    }
    /* QEMU has these on -drive and on the device; vscsid's drive is both */
    static const char *const pass[][2] = { { "werror", "werror" }, { "rerror", "rerror" },
                                           { "x-inject", "inject" } };
    for (unsigned i = 0; i < 3; i++)
        if (qmp_arg_str(args, pass[i][0]) && put(l, pass[i][1], qmp_arg_str(args, pass[i][0])) < 0)
            return -EINVAL;
    return put_cache(l, json_obj_get(args, "cache"));
}

static int cmd_blockdev_add(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    struct opt_list l = { .req = req };
    struct drive_conf conf;
    char err[512];

    if (blockdev_opts(&l, args) < 0)
        goto out;
    if (cli_drive_from_opts(&l.o, &conf, "blockdev-add", err, sizeof(err)) < 0) {
        qmp_req_error(req, QMP_ERR_GENERIC, "%s", err);
        goto out;
    }
    if (!req->daemon) {
        qmp_req_error(req, QMP_ERR_GENERIC, "blockdev-add: no daemon");
        goto out;
    }
    if (vscsid_add_drive(req->daemon, &conf, err, sizeof(err)) < 0)
        qmp_req_error(req, QMP_ERR_GENERIC, "blockdev-add: %s", err);
out:
    opts_free(&l.o);
    return req->failed ? -EINVAL : 0;
}

/* ---- blockdev-del ---- */

static const struct qmp_arg node_name_args[] = {
    { "node-name", QMP_ARG_STR, false },
    { NULL },
};

static int cmd_blockdev_del(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const char *node = qmp_arg_str(args, "node-name");
    char err[512];
    int r = -ENOENT;

    if (req->daemon)
        r = vscsid_del_drive(req->daemon, node, err, sizeof(err));
    if (r == -ENOENT)
        return qmp_req_error(req, QMP_ERR_DEVICE_NOT_FOUND, "Failed to find node with node-name='%.*s'",
                             SHOWN, node);
    if (r < 0)
        return qmp_req_error(req, QMP_ERR_GENERIC, "blockdev-del: %s", err);
    return 0;
}

/* ---- block_resize ---- */

static const struct qmp_arg block_resize_args[] = {
    { "device", QMP_ARG_STR, true },
    { "node-name", QMP_ARG_STR, true },
    { "size", QMP_ARG_INT, false },
    { NULL },
};

/* "device" is a drive id (QEMU's BlockBackend name) or, for convenience, the
 * id of the SCSI device the drive backs; "node-name" is a drive id. */
static const char *resolve_drive(struct qmp_req *req, const char *device, const char *node)
{
    struct vscsid_drive_info di;
    struct vscsid_device_info dev;

    if (!req->daemon)
        return NULL;
    if (node)
        return vscsid_find_drive(req->daemon, node, &di) == 0 ? di.conf->id : NULL;
    if (vscsid_find_drive(req->daemon, device, &di) == 0)
        return di.conf->id;
    if (vscsid_find_device(req->daemon, device, &dev) == 0 && !dev.deleting)
        return dev.drive_id;
    return NULL;
}

static int cmd_block_resize(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    const char *device = qmp_arg_str(args, "device"), *node = qmp_arg_str(args, "node-name");
    const char *drive;
    char err[512];
    int64_t size;
    int r;

    if (!device && !node)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'node-name' is missing (or give "
                             "'device')");
    if (device && node)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Give 'device' or 'node-name', not both");
    if (qmp_arg_int(req, args, "size", 0, INT64_MAX, &size) < 0)
        return -EINVAL;
    drive = resolve_drive(req, device, node);
    if (!drive)
        return qmp_req_error(req, QMP_ERR_DEVICE_NOT_FOUND, "Cannot find device='%.*s' nor "
                             "node-name='%.*s'", SHOWN, device ? device : "", SHOWN, node ? node : "");
    r = vscsid_resize_drive(req->daemon, drive, (uint64_t)size, err, sizeof(err));
    if (r == -EINVAL)
        return qmp_req_error(req, QMP_ERR_GENERIC, "Parameter 'size': %s", err);
    if (r < 0)
        return qmp_req_error(req, QMP_ERR_GENERIC, "block_resize: %s", err);
    return 0;
}

/* ---- query-blockstats ---- */

static const struct qmp_arg blockstats_args[] = {
    { "query-nodes", QMP_ARG_BOOL, true },      /* one node per drive anyway */
    { NULL },
};

struct stats_list {
    struct vscsid_drive_info *v;
    size_t n, cap;
};

static int collect(void *opaque, const struct vscsid_drive_info *info)
{
    struct stats_list *l = opaque;

    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        void *nv = realloc(l->v, ncap * sizeof(*l->v));
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *info;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    const struct vscsid_drive_info *x = a, *y = b;

    return strverscmp(x->conf->id, y->conf->id);
}

static void write_stats(struct json_buf *ret, const struct vscsid_drive_info *info)
{
    struct blk_stats st = { 0 };

    if (info->blk)          /* an empty drive has done nothing since its medium left */
        blk_get_stats(info->blk, &st);
    json_buf_begin_object(ret);
    json_buf_kv_str(ret, "device", info->conf->id);
    json_buf_kv_str(ret, "node-name", info->conf->id);
    if (info->attached_to)
        json_buf_kv_str(ret, "qdev", info->attached_to);
    json_buf_add_key(ret, "stats");
    json_buf_begin_object(ret);
    json_buf_kv_uint(ret, "rd_bytes", st.read_bytes);
    json_buf_kv_uint(ret, "wr_bytes", st.write_bytes);
    json_buf_kv_uint(ret, "rd_operations", st.reads);
    json_buf_kv_uint(ret, "wr_operations", st.writes);
    json_buf_kv_uint(ret, "flush_operations", st.flushes);
    json_buf_kv_uint(ret, "unmap_operations", st.discards);
    json_buf_kv_uint(ret, "write_zeroes_operations", st.write_zeroes);
    json_buf_kv_uint(ret, "failed_operations", st.errors);
    json_buf_kv_uint(ret, "bounced_operations", st.bounces);
    /* QEMU's names: sums of completion latencies; average = total / operations */
    json_buf_kv_uint(ret, "rd_total_time_ns", st.read_ns);
    json_buf_kv_uint(ret, "wr_total_time_ns", st.write_ns);
    json_buf_kv_uint(ret, "flush_total_time_ns", st.flush_ns);
    json_buf_kv_uint(ret, "unmap_total_time_ns", st.discard_ns);
    json_buf_kv_uint(ret, "write_zeroes_total_time_ns", st.write_zeroes_ns);
    json_buf_end_object(ret);
    json_buf_end_object(ret);
}

static int cmd_query_blockstats(struct qmp_req *req, const struct json_value *args, struct json_buf *ret)
{
    struct stats_list l = { 0 };

    if (req->daemon && vscsid_foreach_drive(req->daemon, collect, &l) < 0) {
        free(l.v);
        return qmp_req_error(req, QMP_ERR_GENERIC, "out of memory");
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(*l.v), cmp_id);
    json_buf_begin_array(ret);
    for (size_t i = 0; i < l.n; i++)
        write_stats(ret, &l.v[i]);
    json_buf_end_array(ret);
    free(l.v);
    return 0;
}

const struct qmp_cmd qmp_block_cmds[] = {
    { "blockdev-add", cmd_blockdev_add, blockdev_add_args, 0 },
    { "blockdev-del", cmd_blockdev_del, node_name_args, 0 },
    { "block_resize", cmd_block_resize, block_resize_args, 0 },
    { "query-blockstats", cmd_query_blockstats, blockstats_args, 0 },
    { NULL },
};

#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/opts.h"

static const char *const drive_keys =
    "file, id, format, cache, readonly, discard, aio, driver, size, read-zeroes, media, werror, "
    "rerror, inject";
static const char *const device_keys =
    "drive, scsi-id, lun, id, serial, wwn, vendor, product, ver, logical_block_size, "
    "physical_block_size, removable, pr-state, bus, path-of";
static const char *const controller_keys = "id, socket, num-queues";

/* Copy a string option into a fixed field, refusing (not truncating) long values. */
static int get_str(struct opts *o, const char *key, char *dst, size_t cap, const char *what,
                   char *err, size_t errlen)
{
    const char *v = opts_get(o, key);

    if (!v)
        return 0;
    if (strlen(v) >= cap) {
        snprintf(err, errlen, "%s: %s= is too long (at most %zu characters)", what, key, cap - 1);
        return -EINVAL;
    }
    strcpy(dst, v);
    return 1;
}

/* QEMU's rule for ids (id_wellformed): they show up in events, paths and logs. */
bool cli_id_valid(const char *id)
{
    const char *p = id;

    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return false;
    for (p++; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.' || *p == '_'))
            return false;
    return true;
}

static int check_id(const char *id, const char *what, char *err, size_t errlen)
{
    if (!*id || cli_id_valid(id))
        return 0;       /* absent: the callers decide */
    snprintf(err, errlen, "%s: id=%s: %s", what, id, CLI_ID_RULE);
    return -EINVAL;
}

static int reject_unused(struct opts *o, const char *what, const char *valid, char *err, size_t errlen)
{
    const char *k = opts_first_unused(o);

    if (!k)
        return 0;
    snprintf(err, errlen, "%s: unknown key '%s' (valid keys: %s)", what, k, valid);
    return -EINVAL;
}

/* Prefix a message already in err: "--drive file=x: <message>". */
static void prefix_err(const char *what, const char *str, char *err, size_t errlen)
{
    char tmp[256];

    snprintf(tmp, sizeof(tmp), "%s", err);
    snprintf(err, errlen, "%s %s: %s", what, str, tmp);
}

/* werror=/rerror= (QEMU's -drive values); 1 when given, 0 absent, -EINVAL. */
static int get_error_policy(struct opts *o, const char *key, bool is_read, enum blk_error_policy *out,
                            const char *what, char *err, size_t errlen)
{
    const char *v = opts_get(o, key);

    if (!v)
        return 0;
    if (blk_error_policy_parse(v, is_read, out) == 0)
        return 1;
    snprintf(err, errlen, "%s: %s=%s: expected %s", what, key, v,
             is_read ? "report, ignore or stop (enospc applies to werror only)"
                     : "report, ignore, stop or enospc");
    return -EINVAL;
}

/* Fault injection rules (tests): checked here with the block layer's parser,
 * so a bad rule is refused before anything is opened. */
static int get_inject(struct opts *o, struct drive_conf *conf, const char *what, char *err,
                      size_t errlen)
{
    char msg[256];
    int ret = get_str(o, "inject", conf->inject, sizeof(conf->inject), what, err, errlen);

    if (ret <= 0)
        return ret;
    if (blk_inject_check(conf->inject, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%s: %s", what, msg);
        return -EINVAL;
    }
    return 1;
}

int cli_parse_drive(const char *str, struct drive_conf *conf, char *err, size_t errlen)
{
    struct opts o;
    int ret;

    if (opts_parse(&o, str, NULL, err, errlen) < 0) {
        prefix_err("--drive", str, err, errlen);
        return -EINVAL;
    }
    ret = cli_drive_from_opts(&o, conf, "--drive", err, errlen);
    opts_free(&o);
    return ret;
}

int cli_drive_from_opts(struct opts *o, struct drive_conf *conf, const char *what, char *err,
                        size_t errlen)
{
    static const char *const cache_modes[] = { "writeback", "none", "writethrough", "directsync",
                                               "unsafe", NULL };
    static const char *const discard_modes[] = { "ignore", "unmap", "off", "on", NULL };
    static const char *const aio_modes[] = { "io_uring", "threads", NULL };
    static const char *const drivers[] = { "file", "null", "memory", NULL };   /* blk_driver_kind */
    static const char *const media[] = { "disk", "cdrom", NULL };
    int v, ret;
    bool ro, ro_off;

    memset(conf, 0, sizeof(*conf));
    conf->blk.cache = BLK_CACHE_WRITEBACK;
    conf->blk.aio = BLK_AIO_IO_URING;
    if ((ret = get_str(o, "id", conf->id, sizeof(conf->id), what, err, errlen)) < 0 ||
        (ret = get_str(o, "file", conf->filename, sizeof(conf->filename), what, err, errlen)) < 0 ||
        (ret = get_str(o, "format", conf->format, sizeof(conf->format), what, err, errlen)) < 0 ||
        (ret = check_id(conf->id, what, err, errlen)) < 0)
        goto out;
    if ((ret = opts_get_enum(o, "driver", drivers, &v, what, err, errlen)) < 0)
        goto out;
    conf->blk.driver = ret ? (enum blk_driver_kind)v : BLK_DRIVER_FILE;
    if ((ret = opts_get_enum(o, "cache", cache_modes, &v, what, err, errlen)) < 0)
        goto out;
    if (ret)
        conf->blk.cache = (enum blk_cache_mode)v;
    if ((ret = opts_get_enum(o, "discard", discard_modes, &v, what, err, errlen)) < 0)
        goto out;
    conf->blk.discard_unmap = ret && (v == 1 || v == 3);
    if ((ret = opts_get_enum(o, "aio", aio_modes, &v, what, err, errlen)) < 0)
        goto out;
    if (ret)
        conf->blk.aio = (enum blk_aio)v;
    if ((ret = opts_get_enum(o, "media", media, &v, what, err, errlen)) < 0)
        goto out;
    conf->cdrom = ret && v == 1;
    if ((ret = opts_get_bool(o, "readonly", &ro, what, err, errlen)) < 0)
        goto out;
    ro_off = ret && !ro;
    conf->blk.readonly = (ret && ro) || conf->cdrom;
    if ((ret = opts_get_size(o, "size", &conf->blk.size, what, err, errlen)) < 0)
        goto out;
    if ((ret = opts_get_bool(o, "read-zeroes", &ro, what, err, errlen)) < 0)
        goto out;
    conf->blk.null_no_read_zeroes = ret && !ro;
    if (ret && conf->blk.driver != BLK_DRIVER_NULL) {
        snprintf(err, errlen, "%s id=%s: read-zeroes= applies only to driver=null", what, conf->id);
        ret = -EINVAL;
        goto out;
    }
    if ((ret = get_error_policy(o, "werror", false, &conf->blk.werror, what, err, errlen)) < 0 ||
        (ret = get_error_policy(o, "rerror", true, &conf->blk.rerror, what, err, errlen)) < 0 ||
        (ret = get_inject(o, conf, what, err, errlen)) < 0)
        goto out;
    if ((ret = reject_unused(o, what, drive_keys, err, errlen)) < 0)
        goto out;
    ret = -EINVAL;
    if (!conf->id[0]) {
        snprintf(err, errlen, "%s: missing id= (devices refer to the drive by it)", what);
        goto out;
    }
    if (conf->blk.driver == BLK_DRIVER_FILE && !conf->filename[0] && !conf->cdrom) {
        snprintf(err, errlen, "%s id=%s: missing file=PATH (or use driver=memory,size=N or "
                 "driver=null,size=N; only media=cdrom may be empty)", what, conf->id);
        goto out;
    }
    if (conf->blk.driver != BLK_DRIVER_FILE && conf->filename[0]) {
        snprintf(err, errlen, "%s id=%s: file= does not apply to driver=%s (it has no file); "
                 "drop it, or drop driver= for an image file", what, conf->id,
                 drivers[conf->blk.driver]);
        goto out;
    }
    if (conf->blk.driver == BLK_DRIVER_MEMORY &&
        (conf->blk.cache == BLK_CACHE_NONE || conf->blk.cache == BLK_CACHE_DIRECTSYNC)) {
        snprintf(err, errlen, "%s id=%s: driver=memory has no O_DIRECT, so cache=%s does not "
                 "apply; use cache=writeback (the default) or writethrough", what, conf->id,
                 cache_modes[conf->blk.cache]);
        goto out;
    }
    if (conf->cdrom && ro_off) {
        /* never quietly: a CD-ROM drive is read-only */
        snprintf(err, errlen, "%s id=%s: media=cdrom is read-only; drop readonly=off", what,
                 conf->id);
        goto out;
    }
    if (conf->cdrom && conf->blk.discard_unmap) {
        snprintf(err, errlen, "%s id=%s: media=cdrom is read-only and cannot discard; drop "
                 "discard=", what, conf->id);
        goto out;
    }
    if (conf->blk.driver != BLK_DRIVER_FILE && !conf->blk.size) {
        snprintf(err, errlen, "%s id=%s: driver=%s needs size= (e.g. size=1G)", what, conf->id,
                 drivers[conf->blk.driver]);
        goto out;
    }
    if (conf->blk.driver == BLK_DRIVER_FILE && conf->blk.size) {
        snprintf(err, errlen, "%s id=%s: size= applies only to driver=null and driver=memory (an "
                 "image file has its own size)", what, conf->id);
        goto out;
    }
    if (conf->format[0] && strcmp(conf->format, "raw")) {
        snprintf(err, errlen, "%s id=%s: format=%s is not supported (supported: raw)", what,
                 conf->id, conf->format);
        goto out;
    }
    ret = 0;
out:
    return ret < 0 ? ret : 0;
}

const char *cli_device_help(void)
{
    return "Device types (--device TYPE,drive=ID,scsi-id=T,lun=L,...):\n"
           "  scsi-hd     virtual SCSI disk (SBC-4)\n"
           "  scsi-disk   alias of scsi-hd\n"
           "  scsi-cd     CD/DVD-ROM drive (MMC-6): read-only, 2048-byte blocks, a tray\n"
           "              whose medium can be changed (eject, blockdev-change-medium);\n"
           "              its drive may be empty (--drive id=ID,media=cdrom)\n"
           "Properties: drive (required), scsi-id (0-255, default 0), lun (0-16383, default 0),\n"
           "  id, serial, wwn (0xHEX, NAA), vendor (8 chars), product (16 chars), ver (4 chars),\n"
           "  logical_block_size (512|4096), physical_block_size (power of two >= logical),\n"
           "  removable (on|off: media can be ejected and changed, and the drive may be\n"
           "  empty), pr-state (file keeping persistent reservations made with\n"
           "  APTPL=1 across restarts; without it APTPL is refused; scsi-hd only),\n"
           "  bus (the id of a --controller; default: the --socket one),\n"
           "  path-of (the id of another device: this one is a second path to the same\n"
           "  logical unit, on another controller; takes only bus, scsi-id, lun, id)\n"
           "scsi-cd takes the same properties; its blocks are 2048 bytes (logical_block_size\n"
           "  and physical_block_size may only say 2048), it is always removable, and its\n"
           "  product defaults to \"VSCSI CD-ROM\".\n";
}

int cli_parse_device(const char *str, struct device_conf *conf, char *err, size_t errlen)
{
    struct opts o;
    int ret;

    if (opts_parse(&o, str, "driver", err, errlen) < 0) {
        prefix_err("--device", str, err, errlen);
        return -EINVAL;
    }
    if (!opts_get(&o, "driver")) {
        snprintf(err, errlen, "--device %s: missing device type first, e.g. --device scsi-hd,drive=ID",
                 str);
        opts_free(&o);
        return -EINVAL;
    }
    ret = cli_device_from_opts(&o, conf, "--device", err, errlen);
    opts_free(&o);
    return ret;
}

int cli_device_from_opts(struct opts *o, struct device_conf *conf, const char *what, char *err,
                         size_t errlen)
{
    const char *type;
    uint64_t v;
    bool b, cd = false;
    int ret;

    memset(conf, 0, sizeof(*conf));
    conf->scsi.type = SCSI_DEV_HD;
    conf->scsi.logical_block_size = 512;
    type = opts_get(o, "driver");
    ret = -EINVAL;
    if (!type) {
        snprintf(err, errlen, "%s: missing driver= (the device type, e.g. scsi-hd)", what);
        goto out;
    }
    if (!strcmp(type, "scsi-cd")) {
        cd = true;
        conf->scsi.type = SCSI_DEV_CD;
        conf->scsi.logical_block_size = 2048;
    } else if (strcmp(type, "scsi-hd") && strcmp(type, "scsi-disk")) {
        snprintf(err, errlen, "%s: unknown device type '%s' (supported: scsi-hd, scsi-disk, "
                 "scsi-cd)", what, type);
        goto out;
    }
    if ((ret = get_str(o, "id", conf->id, sizeof(conf->id), what, err, errlen)) < 0 ||
        (ret = get_str(o, "drive", conf->drive, sizeof(conf->drive), what, err, errlen)) < 0 ||
        (ret = get_str(o, "serial", conf->serial, sizeof(conf->serial), what, err, errlen)) < 0 ||
        (ret = get_str(o, "vendor", conf->vendor, 9, what, err, errlen)) < 0 ||
        (ret = get_str(o, "product", conf->product, 17, what, err, errlen)) < 0 ||
        (ret = get_str(o, "ver", conf->version, 5, what, err, errlen)) < 0 ||
        (ret = get_str(o, "pr-state", conf->scsi.pr_state, sizeof(conf->scsi.pr_state), what, err,
                       errlen)) < 0 ||
        (ret = get_str(o, "bus", conf->bus, sizeof(conf->bus), what, err, errlen)) < 0 ||
        (ret = get_str(o, "path-of", conf->path_of, sizeof(conf->path_of), what, err, errlen)) < 0 ||
        (ret = check_id(conf->id, what, err, errlen)) < 0)
        goto out;
    if ((ret = opts_get_u64(o, "scsi-id", 0, SCSI_MAX_TARGET, &v, what, err, errlen)) < 0)
        goto out;
    if (ret)
        conf->target = (uint8_t)v;
    if ((ret = opts_get_u64(o, "lun", 0, SCSI_MAX_LUN, &v, what, err, errlen)) < 0)
        goto out;
    if (ret)
        conf->lun = (uint16_t)v;
    if ((ret = opts_get_u64(o, "wwn", 1, UINT64_MAX, &conf->scsi.wwn, what, err, errlen)) < 0)
        goto out;
    if ((ret = opts_get_u64(o, "logical_block_size", 512, 4096, &v, what, err, errlen)) < 0)
        goto out;
    if (ret && cd && v != 2048) {
        snprintf(err, errlen, "%s: logical_block_size=%llu: a scsi-cd has 2048-byte blocks", what,
                 (unsigned long long)v);
        ret = -EINVAL;
        goto out;
    }
    if (ret && !cd) {
        if (v != 512 && v != 4096) {
            snprintf(err, errlen, "%s: logical_block_size=%llu: expected 512 or 4096", what,
                     (unsigned long long)v);
            ret = -EINVAL;
            goto out;
        }
        conf->scsi.logical_block_size = (uint32_t)v;
    }
    conf->scsi.physical_block_size = conf->scsi.logical_block_size;
    if ((ret = opts_get_u64(o, "physical_block_size", 512, 1u << 20, &v, what, err, errlen)) < 0)
        goto out;
    if (ret && cd && v != 2048) {
        snprintf(err, errlen, "%s: physical_block_size=%llu: a scsi-cd has 2048-byte blocks", what,
                 (unsigned long long)v);
        ret = -EINVAL;
        goto out;
    }
    if (ret) {
        if ((v & (v - 1)) || v < conf->scsi.logical_block_size) {
            snprintf(err, errlen, "%s: physical_block_size=%llu: expected a power of two "
                     ">= logical_block_size (%u)", what, (unsigned long long)v,
                     conf->scsi.logical_block_size);
            ret = -EINVAL;
            goto out;
        }
        conf->scsi.physical_block_size = (uint32_t)v;
    }
    if ((ret = opts_get_bool(o, "removable", &b, what, err, errlen)) < 0)
        goto out;
    if (ret && cd && !b) {
        snprintf(err, errlen, "%s: removable=off: a scsi-cd is always removable", what);
        ret = -EINVAL;
        goto out;
    }
    conf->scsi.removable = (ret && b) || cd;
    if (cd && conf->scsi.pr_state[0]) {
        snprintf(err, errlen, "%s: pr-state=: persistent reservations are for scsi-hd, not scsi-cd",
                 what);
        ret = -EINVAL;
        goto out;
    }
    if (cd && !conf->product[0])
        snprintf(conf->product, sizeof(conf->product), "VSCSI CD-ROM");
    if ((ret = reject_unused(o, what, device_keys, err, errlen)) < 0)
        goto out;
    ret = -EINVAL;
    if (conf->path_of[0]) {
        /* a second path: the LU (drive, identity, block sizes) is path-of's */
        static const char *const own[] = { "drive", "serial", "wwn", "vendor", "product", "ver",
                                           "logical_block_size", "physical_block_size",
                                           "removable", "pr-state", NULL };

        for (unsigned i = 0; own[i]; i++) {
            if (opts_get(o, own[i])) {
                snprintf(err, errlen, "%s: path-of=%s: %s= belongs to the device it is a path of",
                         what, conf->path_of, own[i]);
                goto out;
            }
        }
        ret = 0;
        goto out;
    }
    if (!conf->drive[0]) {
        snprintf(err, errlen, "%s: missing drive=ID (the id of a drive%s)", what,
                 cd ? "; an empty CD-ROM drive: --drive id=ID,media=cdrom" : "");
        goto out;
    }
    ret = 0;
out:
    return ret < 0 ? ret : 0;
}

int cli_parse_controller(const char *str, struct ctrl_conf *conf, char *err, size_t errlen)
{
    struct opts o;
    uint64_t v;
    int ret;

    if (opts_parse(&o, str, NULL, err, errlen) < 0) {
        prefix_err("--controller", str, err, errlen);
        return -EINVAL;
    }
    if ((ret = get_str(&o, "id", conf->id, sizeof(conf->id), "--controller", err, errlen)) < 0 ||
        (ret = check_id(conf->id, "--controller", err, errlen)) < 0 ||
        (ret = get_str(&o, "socket", conf->socket_path, sizeof(conf->socket_path), "--controller", err,
                       errlen)) < 0)
        goto out;
    if ((ret = opts_get_u64(&o, "num-queues", 1, 64, &v, "--controller", err, errlen)) < 0)
        goto out;
    if (ret)
        conf->num_queues = (unsigned)v;
    if ((ret = reject_unused(&o, "--controller", controller_keys, err, errlen)) < 0)
        goto out;
    ret = -EINVAL;
    if (!conf->id[0]) {
        snprintf(err, errlen, "--controller %s: missing id=NAME (devices name it with bus=NAME)", str);
        goto out;
    }
    if (!conf->socket_path[0]) {
        snprintf(err, errlen, "--controller %s: missing socket=PATH (where QEMU connects)", str);
        goto out;
    }
    ret = 0;
out:
    opts_free(&o);
    return ret < 0 ? ret : 0;
}

/* Daemon object model: shutdown helpers (vscsid_flush_all flushes every
 * writable drive) and removable media (empty drives, the tray and medium
 * functions, TRAY_MOVED, nodes lent as media). What the guest sees of media
 * changes is tested by tests/harness/t_media.c. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "test.h"
#include "util/loop.h"

static int stats_cb(void *opaque, const struct vscsid_drive_info *info)
{
    struct blk_stats st;

    blk_get_stats(info->blk, &st);
    *(uint64_t *)opaque += st.flushes;
    return 0;
}

static void test_flush_all(void)
{
    char img[] = "/tmp/vscsi-flush-XXXXXX", img2[] = "/tmp/vscsi-flush-XXXXXX", opt[256], err[512];
    int fd = mkstemp(img), fd2 = mkstemp(img2);
    struct ev_loop *loop = ev_loop_new();
    struct vscsid *d;
    struct drive_conf dc;
    uint64_t flushes = 0;

    CHECK(fd >= 0 && fd2 >= 0 && ftruncate(fd, 1 << 20) == 0 && ftruncate(fd2, 1 << 20) == 0);
    d = vscsid_new(loop, err, sizeof(err));
    CHECK(d != NULL);
    snprintf(opt, sizeof(opt), "file=%s,id=rw", img);
    CHECK_EQ(cli_parse_drive(opt, &dc, err, sizeof(err)), 0);
    CHECK_EQ(vscsid_add_drive(d, &dc, err, sizeof(err)), 0);
    snprintf(opt, sizeof(opt), "file=%s,id=ro,readonly=on", img2);
    CHECK_EQ(cli_parse_drive(opt, &dc, err, sizeof(err)), 0);
    CHECK_EQ(vscsid_add_drive(d, &dc, err, sizeof(err)), 0);
    CHECK_EQ(vscsid_flush_all(d, 5000), 0);
    vscsid_foreach_drive(d, stats_cb, &flushes);
    CHECK_EQ(flushes, 1);           /* the read-only drive needs none */
    vscsid_quiesce(d);              /* no controller yet: harmless */
    vscsid_free(d);
    ev_loop_free(loop);
    close(fd);
    close(fd2);
    unlink(img);
    unlink(img2);
}

struct read_state {
    int done, ret;
};

static void read_done_cb(struct blk_req *req, int ret)
{
    struct read_state *st = req->opaque;

    st->done = 1;
    st->ret = ret;
}

static int null_read(const char *opt, unsigned char *buf)
{
    struct ev_loop *loop = ev_loop_new();
    char err[512];
    struct vscsid *d = vscsid_new(loop, err, sizeof(err));
    struct drive_conf dc;
    struct read_state st = { 0 };
    struct iovec iov = { buf, 4096 };
    struct blk_req req = { .op = BLK_OP_READ, .offset = 0, .len = 4096, .iov = &iov, .iovcnt = 1,
                           .done_cb = read_done_cb, .opaque = &st };
    struct blk_drive *blk = NULL;

    CHECK_EQ(cli_parse_drive(opt, &dc, err, sizeof(err)), 0);
    CHECK_EQ(blk_open(&dc.blk, &blk, err, sizeof(err)), 0);
    CHECK_EQ(blk_submit(vscsid_blk_ctx(d), blk, &req), 0);
    for (int i = 0; i < 100 && !st.done; i++)
        ev_loop_run_once(loop, 10);
    CHECK(st.done);
    blk_close(blk);
    vscsid_free(d);
    ev_loop_free(loop);
    return st.ret;
}

static void test_null_read_zeroes(void)
{
    static unsigned char buf[4096];

    memset(buf, 0xaa, sizeof(buf));
    CHECK_EQ(null_read("driver=null,size=1M,id=z", buf), 0);
    CHECK(buf[0] == 0 && buf[4095] == 0);
    memset(buf, 0xaa, sizeof(buf));
    CHECK_EQ(null_read("driver=null,size=1M,id=z,read-zeroes=off", buf), 0);
    CHECK(buf[0] == 0xaa && buf[4095] == 0xaa);   /* untouched: no memset per read */
}

/* ---- removable media ---- */

struct media_fixture {
    struct ev_loop *loop;
    struct vscsid *d;
    char img[2][40];
    char err[512];
    char events[16][96];        /* TRAY_MOVED seen: "device:drive:open" */
    unsigned nevents;
};

static void event_cb(void *opaque, const struct vscsid_event *ev)
{
    struct media_fixture *f = opaque;

    if (ev->type == VSCSID_EVENT_TRAY_MOVED && f->nevents < 16)
        snprintf(f->events[f->nevents++], sizeof(f->events[0]), "%s:%s:%d", ev->device, ev->drive,
                 ev->tray_open);
}

static int add_drive(struct media_fixture *f, const char *opt)
{
    struct drive_conf dc;
    int r = cli_parse_drive(opt, &dc, f->err, sizeof(f->err));

    return r < 0 ? r : vscsid_add_drive(f->d, &dc, f->err, sizeof(f->err));
}

static int add_device(struct media_fixture *f, const char *opt)
{
    struct device_conf dc;
    int r = cli_parse_device(opt, &dc, f->err, sizeof(f->err));

    return r < 0 ? r : vscsid_add_device(f->d, &dc, f->err, sizeof(f->err));
}

static void fixture_init(struct media_fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->loop = ev_loop_new();
    f->d = vscsid_new(f->loop, f->err, sizeof(f->err));
    CHECK(f->d != NULL);
    CHECK_EQ(vscsid_add_event_sink(f->d, event_cb, f), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(f->img[i], sizeof(f->img[i]), "/tmp/vscsi-media-XXXXXX");
        int fd = mkstemp(f->img[i]);
        CHECK(fd >= 0 && ftruncate(fd, (off_t)(i + 1) << 20) == 0);
        close(fd);
    }
}

static void fixture_free(struct media_fixture *f)
{
    vscsid_free(f->d);
    ev_loop_free(f->loop);
    unlink(f->img[0]);
    unlink(f->img[1]);
}

static struct vscsid_drive_info drive(struct media_fixture *f, const char *id)
{
    struct vscsid_drive_info di = { 0 };

    CHECK_EQ(vscsid_find_drive(f->d, id, &di), 0);
    return di;
}

static bool err_has(struct media_fixture *f, const char *frag)
{
    if (strstr(f->err, frag))
        return true;
    fprintf(stderr, "  message '%s' lacks '%s'\n", f->err, frag);
    return false;
}

/* Empty drives, and media on drives with no device or a non-removable one
 * (no tray: nothing of the SCSI layer's media API is involved). */
static void test_media_drives(void)
{
    struct media_fixture f;
    struct vscsid_drive_info di;
    char opt[128];

    fixture_init(&f);
    CHECK_EQ(add_drive(&f, "id=cd0,media=cdrom"), 0);
    di = drive(&f, "cd0");
    CHECK(!di.blk && !di.medium && !di.has_tray && !di.attached_to);
    CHECK(di.conf->cdrom && di.conf->blk.readonly);
    /* a disk needs a medium */
    CHECK_EQ(add_device(&f, "scsi-hd,drive=cd0,id=hd"), -ENOMEDIUM);
    CHECK(err_has(&f, "drive 'cd0' has no medium"));
    CHECK_EQ(vscsid_resize_drive(f.d, "cd0", 1 << 20, f.err, sizeof(f.err)), -ENOMEDIUM);
    CHECK_EQ(vscsid_flush_all(f.d, 1000), 0);

    /* a drive with no device has no tray: its medium comes and goes at will */
    CHECK_EQ(vscsid_open_tray(f.d, NULL, "cd0", false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_change_medium(f.d, NULL, "cd0", "/nonexistent/x.iso", NULL, VSCSID_RO_RETAIN,
                                  false, f.err, sizeof(f.err)), -ENOENT);
    CHECK(err_has(&f, "/nonexistent/x.iso") && err_has(&f, "No such file"));
    CHECK(!drive(&f, "cd0").blk);
    CHECK_EQ(vscsid_change_medium(f.d, NULL, "cd0", f.img[0], "qcow2", VSCSID_RO_RETAIN, false,
                                  f.err, sizeof(f.err)), -ENOTSUP);
    CHECK(err_has(&f, "supported: raw"));
    CHECK_EQ(vscsid_change_medium(f.d, NULL, "cd0", f.img[0], "raw", VSCSID_RO_RETAIN, false,
                                  f.err, sizeof(f.err)), 0);
    di = drive(&f, "cd0");
    CHECK(di.blk && blk_is_readonly(di.blk) && blk_size(di.blk) == 1 << 20);    /* retained */
    CHECK(di.medium == di.conf && !strcmp(di.medium->filename, f.img[0]));
    /* a bad file changes nothing */
    CHECK_EQ(vscsid_change_medium(f.d, NULL, "cd0", "/nonexistent/y.iso", NULL, VSCSID_RO_RETAIN,
                                  false, f.err, sizeof(f.err)), -ENOENT);
    CHECK(drive(&f, "cd0").blk == di.blk && !strcmp(drive(&f, "cd0").medium->filename, f.img[0]));
    CHECK_EQ(vscsid_insert_medium(f.d, NULL, "cd0", f.img[1], NULL, VSCSID_RO_RETAIN, f.err,
                                  sizeof(f.err)), -EEXIST);
    CHECK(err_has(&f, "There already is a medium in the device"));
    CHECK_EQ(vscsid_remove_medium(f.d, NULL, "cd0", f.err, sizeof(f.err)), 0);
    CHECK(!drive(&f, "cd0").blk);
    CHECK_EQ(vscsid_remove_medium(f.d, NULL, "cd0", f.err, sizeof(f.err)), 0);  /* none: fine */
    CHECK_EQ(vscsid_insert_medium(f.d, NULL, "cd0", f.img[1], NULL, VSCSID_RO_READ_WRITE, f.err,
                                  sizeof(f.err)), 0);
    di = drive(&f, "cd0");
    CHECK(di.blk && !blk_is_readonly(di.blk) && blk_size(di.blk) == 2 << 20);
    CHECK_EQ(vscsid_close_tray(f.d, NULL, "cd0", f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_flush_all(f.d, 1000), 0);
    CHECK_EQ(vscsid_resize_drive(f.d, "cd0", 4 << 20, f.err, sizeof(f.err)), 0);
    CHECK_EQ(f.nevents, 0);             /* no tray, no TRAY_MOVED */

    /* naming the device: exactly one name; unknown names */
    CHECK_EQ(vscsid_open_tray(f.d, NULL, NULL, false, f.err, sizeof(f.err)), -EINVAL);
    CHECK_EQ(vscsid_open_tray(f.d, "a", "b", false, f.err, sizeof(f.err)), -EINVAL);
    CHECK_EQ(vscsid_close_tray(f.d, "nope", NULL, f.err, sizeof(f.err)), -ENODEV);
    CHECK(err_has(&f, "Device 'nope' not found"));
    CHECK_EQ(vscsid_remove_medium(f.d, NULL, "nope", f.err, sizeof(f.err)), -ENODEV);
    CHECK_EQ(vscsid_insert_node(f.d, "nope", "cd0", f.err, sizeof(f.err)), -ENODEV);
    /* a drive id is not a device id */
    CHECK_EQ(vscsid_remove_medium(f.d, "cd0", NULL, f.err, sizeof(f.err)), -ENODEV);

    /* a non-removable disk: every media call says so, by device or drive name */
    snprintf(opt, sizeof(opt), "file=%s,id=d0", f.img[0]);
    CHECK_EQ(add_drive(&f, opt), 0);
    CHECK_EQ(add_device(&f, "scsi-hd,drive=d0,id=hd0,lun=1"), 0);
    CHECK_EQ(vscsid_open_tray(f.d, "hd0", NULL, true, f.err, sizeof(f.err)), -ENOTSUP);
    CHECK(err_has(&f, "Device 'hd0' is not removable"));
    CHECK_EQ(vscsid_close_tray(f.d, NULL, "d0", f.err, sizeof(f.err)), -ENOTSUP);
    CHECK(err_has(&f, "Device 'd0' is not removable"));
    CHECK_EQ(vscsid_remove_medium(f.d, NULL, "hd0", f.err, sizeof(f.err)), -ENOTSUP);
    CHECK_EQ(vscsid_change_medium(f.d, "hd0", NULL, f.img[1], NULL, VSCSID_RO_RETAIN, true, f.err,
                                  sizeof(f.err)), -ENOTSUP);
    CHECK_EQ(vscsid_insert_medium(f.d, "hd0", NULL, f.img[1], NULL, VSCSID_RO_RETAIN, f.err,
                                  sizeof(f.err)), -ENOTSUP);
    /* insert-node: QEMU's order of checks (device, node, node in use, then removable) */
    CHECK_EQ(vscsid_insert_node(f.d, "hd0", "nonode", f.err, sizeof(f.err)), -ENOENT);
    CHECK(err_has(&f, "Node 'nonode' not found"));
    CHECK_EQ(vscsid_insert_node(f.d, "hd0", "d0", f.err, sizeof(f.err)), -EBUSY);
    CHECK(err_has(&f, "Node 'd0' is already in use"));
    CHECK_EQ(vscsid_insert_node(f.d, "hd0", "cd0", f.err, sizeof(f.err)), -ENOTSUP);
    CHECK(err_has(&f, "Device is not removable"));
    CHECK_EQ(vscsid_change_medium(f.d, "hd0", NULL, "/nonexistent/x", NULL, VSCSID_RO_RETAIN, true, f.err,
                                  sizeof(f.err)), -ENOENT);      /* QEMU opens the file first */
    CHECK(drive(&f, "d0").blk && !drive(&f, "d0").has_tray);
    CHECK_EQ(f.nevents, 0);
    CHECK_EQ(vscsid_del_drive(f.d, "cd0", f.err, sizeof(f.err)), 0);
    fixture_free(&f);
}

/* Adding an empty or CD LU fails while the SCSI layer has only the
 * placeholder media API; then the tray tests cannot run. */
static bool cd_supported(struct media_fixture *f, int r)
{
    if (r < 0 && (strstr(f->err, "not supported yet") || !strcmp(f->err, "no drive"))) {
        fprintf(stderr, "  SKIP: the SCSI layer has no removable media yet (%s)\n", f->err);
        return false;
    }
    if (r < 0)
        fprintf(stderr, "  %s\n", f->err);
    CHECK_EQ(r, 0);
    return r == 0;
}

/* A scsi-cd: tray and medium through the SCSI layer, TRAY_MOVED, nodes lent
 * as media. No command is in flight, so every removal completes at once. */
static void test_media_cd(void)
{
    struct media_fixture f;
    struct vscsid_drive_info di;
    char opt[128];

    fixture_init(&f);
    CHECK_EQ(add_drive(&f, "id=cd0,media=cdrom"), 0);
    if (!cd_supported(&f, add_device(&f, "scsi-cd,drive=cd0,id=cd,lun=2"))) {
        fixture_free(&f);
        return;
    }
    di = drive(&f, "cd0");
    CHECK(di.has_tray && !di.tray_open && !di.locked && !di.blk && !strcmp(di.attached_to, "cd"));
    /* a closed tray takes nothing and gives nothing */
    CHECK_EQ(vscsid_insert_medium(f.d, "cd", NULL, f.img[0], NULL, VSCSID_RO_RETAIN, f.err,
                                  sizeof(f.err)), -EPERM);
    CHECK(err_has(&f, "Tray of the device is not open"));       /* QEMU's words */
    CHECK_EQ(vscsid_remove_medium(f.d, NULL, "cd0", f.err, sizeof(f.err)), -EPERM);
    CHECK(err_has(&f, "Tray of device 'cd0' is not open"));
    CHECK_EQ(f.nevents, 0);
    /* open, insert a file, close: two TRAY_MOVED */
    CHECK_EQ(vscsid_open_tray(f.d, "cd", NULL, false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_open_tray(f.d, "cd", NULL, false, f.err, sizeof(f.err)), 0);   /* open already */
    CHECK(drive(&f, "cd0").tray_open);
    CHECK_EQ(vscsid_insert_medium(f.d, "cd", NULL, f.img[0], NULL, VSCSID_RO_RETAIN, f.err,
                                  sizeof(f.err)), 0);
    CHECK_EQ(vscsid_insert_medium(f.d, "cd", NULL, f.img[1], NULL, VSCSID_RO_RETAIN, f.err,
                                  sizeof(f.err)), -EEXIST);
    CHECK_EQ(vscsid_close_tray(f.d, NULL, "cd", f.err, sizeof(f.err)), 0);     /* device id as drive */
    CHECK_EQ(vscsid_close_tray(f.d, "cd", NULL, f.err, sizeof(f.err)), 0);
    CHECK_EQ(f.nevents, 2);
    CHECK(!strcmp(f.events[0], "cd:cd0:1") && !strcmp(f.events[1], "cd:cd0:0"));
    di = drive(&f, "cd0");
    CHECK(di.blk && blk_is_readonly(di.blk) && !di.tray_open && !strcmp(di.medium->filename, f.img[0]));
    CHECK_EQ(vscsid_resize_drive(f.d, "cd0", 4 << 20, f.err, sizeof(f.err)), -EROFS);

    /* change: open, remove, insert, close; the read-only mode retained */
    f.nevents = 0;
    CHECK_EQ(vscsid_change_medium(f.d, "cd", NULL, f.img[1], "raw", VSCSID_RO_RETAIN, false, f.err,
                                  sizeof(f.err)), 0);
    CHECK_EQ(f.nevents, 2);
    CHECK(!strcmp(f.events[0], "cd:cd0:1") && !strcmp(f.events[1], "cd:cd0:0"));
    di = drive(&f, "cd0");
    CHECK(di.blk && blk_is_readonly(di.blk) && blk_size(di.blk) == 2 << 20 && !di.tray_open);
    CHECK(!strcmp(di.conf->filename, f.img[1]) && !strcmp(di.conf->format, "raw"));
    /* a missing file: a clean error, the old medium stays, the tray never moved */
    CHECK_EQ(vscsid_change_medium(f.d, "cd", NULL, "/nonexistent/z.iso", NULL, VSCSID_RO_RETAIN, false,
                                  f.err, sizeof(f.err)), -ENOENT);
    CHECK_EQ(f.nevents, 2);
    CHECK(drive(&f, "cd0").blk == di.blk);

    /* a node as medium: lent while in the tray, free again after */
    snprintf(opt, sizeof(opt), "file=%s,id=n1,readonly=on", f.img[0]);
    CHECK_EQ(add_drive(&f, opt), 0);
    CHECK_EQ(vscsid_insert_node(f.d, "cd", "n1", f.err, sizeof(f.err)), -EPERM);     /* tray closed */
    CHECK_EQ(vscsid_open_tray(f.d, NULL, "cd0", false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_insert_node(f.d, "cd", "n1", f.err, sizeof(f.err)), -EEXIST);
    CHECK_EQ(vscsid_remove_medium(f.d, "cd", NULL, f.err, sizeof(f.err)), 0);
    CHECK(!drive(&f, "cd0").blk && drive(&f, "cd0").tray_open);
    CHECK_EQ(vscsid_insert_node(f.d, "cd", "n1", f.err, sizeof(f.err)), 0);
    di = drive(&f, "cd0");
    CHECK(di.blk == drive(&f, "n1").blk && !strcmp(di.medium->id, "n1"));
    CHECK(!strcmp(drive(&f, "n1").lent_to, "cd0"));
    CHECK_EQ(vscsid_insert_node(f.d, "cd", "n1", f.err, sizeof(f.err)), -EBUSY);
    CHECK_EQ(vscsid_del_drive(f.d, "n1", f.err, sizeof(f.err)), -EBUSY);
    CHECK(err_has(&f, "the medium in drive 'cd0'"));
    CHECK_EQ(add_device(&f, "scsi-hd,drive=n1,lun=5"), -EBUSY);
    CHECK_EQ(vscsid_remove_medium(f.d, NULL, "n1", f.err, sizeof(f.err)), -EBUSY);
    CHECK(err_has(&f, "name that one"));
    CHECK_EQ(vscsid_close_tray(f.d, "cd", NULL, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_flush_all(f.d, 1000), 0);
    /* eject = open + remove: the node is free again and keeps its medium */
    CHECK_EQ(vscsid_open_tray(f.d, "cd", NULL, false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_remove_medium(f.d, "cd", NULL, f.err, sizeof(f.err)), 0);
    di = drive(&f, "n1");
    CHECK(di.blk && !di.lent_to);
    CHECK_EQ(vscsid_del_drive(f.d, "n1", f.err, sizeof(f.err)), 0);
    /* a path to the CD acts on the same tray; paths must be CDs too */
    CHECK_EQ(vscsid_add_bus(f.d, "c1", f.err, sizeof(f.err)), 0);
    CHECK_EQ(add_device(&f, "scsi-hd,bus=c1,path-of=cd,id=cdp"), -EINVAL);
    CHECK(err_has(&f, "a path to it must be one too"));
    CHECK_EQ(add_device(&f, "scsi-cd,bus=c1,path-of=cd,id=cdp"), 0);
    f.nevents = 0;
    CHECK_EQ(vscsid_change_medium(f.d, "cdp", NULL, f.img[0], NULL, VSCSID_RO_READ_WRITE, false,
                                  f.err, sizeof(f.err)), 0);
    CHECK_EQ(f.nevents, 1);             /* was open: only the close */
    CHECK(!strcmp(f.events[0], "cd:cd0:0"));
    CHECK(!blk_is_readonly(drive(&f, "cd0").blk));     /* read-write asked (the LU stays read-only) */
    CHECK_EQ(vscsid_del_device(f.d, "cdp", f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_del_device(f.d, "cd", f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_del_drive(f.d, "cd0", f.err, sizeof(f.err)), 0);
    fixture_free(&f);
}

/* scsi-hd removable=on: the same media calls; an empty drive is allowed. */
static void test_media_removable_hd(void)
{
    struct media_fixture f;
    struct vscsid_drive_info di;
    char opt[128];

    fixture_init(&f);
    CHECK_EQ(add_drive(&f, "id=u0,media=cdrom"), 0);
    if (!cd_supported(&f, add_device(&f, "scsi-hd,drive=u0,id=usb,removable=on"))) {
        fixture_free(&f);
        return;
    }
    CHECK_EQ(add_drive(&f, "id=c9,media=cdrom,discard=ignore"), 0);
    CHECK_EQ(vscsid_change_medium(f.d, "usb", NULL, f.img[1], NULL, VSCSID_RO_READ_WRITE, false,
                                  f.err, sizeof(f.err)), 0);
    di = drive(&f, "u0");
    CHECK(di.blk && !blk_is_readonly(di.blk) && di.has_tray && !di.tray_open);
    CHECK_EQ(f.nevents, 2);
    CHECK_EQ(vscsid_resize_drive(f.d, "u0", 8 << 20, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_flush_all(f.d, 1000), 0);
    /* retain = the mode of the medium before */
    CHECK_EQ(vscsid_change_medium(f.d, NULL, "u0", f.img[0], NULL, VSCSID_RO_RETAIN, false, f.err,
                                  sizeof(f.err)), 0);
    CHECK(!blk_is_readonly(drive(&f, "u0").blk));
    CHECK_EQ(vscsid_open_tray(f.d, "usb", NULL, false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_remove_medium(f.d, "usb", NULL, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_close_tray(f.d, "usb", NULL, f.err, sizeof(f.err)), 0);
    di = drive(&f, "u0");
    CHECK(!di.blk && !di.tray_open);
    CHECK_EQ(vscsid_resize_drive(f.d, "u0", 8 << 20, f.err, sizeof(f.err)), -ENOMEDIUM);
    /* a lent node outlives the device: the drive keeps it until deleted */
    snprintf(opt, sizeof(opt), "file=%s,id=n2", f.img[0]);
    CHECK_EQ(add_drive(&f, opt), 0);
    snprintf(opt, sizeof(opt), "file=%s,id=n3", f.img[1]);
    CHECK_EQ(add_drive(&f, opt), 0);
    CHECK_EQ(vscsid_open_tray(f.d, "usb", NULL, false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_insert_node(f.d, "usb", "n2", f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_resize_drive(f.d, "n2", 2 << 20, f.err, sizeof(f.err)), 0);    /* the node's size */
    CHECK_EQ(blk_size(drive(&f, "u0").blk), 2 << 20);
    CHECK_EQ(vscsid_flush_all(f.d, 1000), 0);
    CHECK_EQ(vscsid_del_device(f.d, "usb", f.err, sizeof(f.err)), 0);
    CHECK(!strcmp(drive(&f, "n2").lent_to, "u0"));
    CHECK_EQ(vscsid_del_drive(f.d, "u0", f.err, sizeof(f.err)), 0);
    CHECK(!drive(&f, "n2").lent_to && drive(&f, "n2").blk);
    CHECK_EQ(vscsid_del_drive(f.d, "n2", f.err, sizeof(f.err)), 0);
    /* and at exit, a node still lent is closed once (ASan checks) */
    CHECK_EQ(add_drive(&f, "id=u1,media=cdrom"), 0);
    CHECK_EQ(add_device(&f, "scsi-cd,drive=u1,id=cd9,lun=7"), 0);
    CHECK_EQ(vscsid_open_tray(f.d, "cd9", NULL, false, f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_insert_node(f.d, "cd9", "n3", f.err, sizeof(f.err)), 0);
    CHECK_EQ(vscsid_close_tray(f.d, "cd9", NULL, f.err, sizeof(f.err)), 0);
    fixture_free(&f);
}

int main(void)
{
    RUN_TEST(test_null_read_zeroes);
    RUN_TEST(test_flush_all);
    RUN_TEST(test_media_drives);
    RUN_TEST(test_media_cd);
    RUN_TEST(test_media_removable_hd);
    return test_exit();
}

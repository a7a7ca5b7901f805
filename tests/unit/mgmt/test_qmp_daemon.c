/* QMP hot-plug commands against the real daemon core (daemon.c, scsi/,
 * block/ with null and file drives), in one process: the QMP server and a
 * vhost-user controller with no frontend on one event loop, pumped while the
 * test client waits. Covers the management side of issue 3: state changes,
 * every bad input, DEVICE_DELETED, resize of files, and 2048 LUNs.
 * Guest-visible effects (events, UAs, in-flight commands) are tested by
 * tests/harness/t_mgmt.c and tests/guest/t-hotplug*.sh. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "mgmt/qmp.h"
#include "test.h"
#include "util/json.h"
#include "util/log.h"
#include "util/loop.h"

#include "qmp_tclient.h"

static struct vscsid *g_vd;
static char g_dir[64];
static unsigned g_events;           /* DEVICE_DELETED seen by cmdr() */
static char g_last_deleted[64];

static bool is_event(const struct json_value *v, const char *name)
{
    const char *e = json_get_str(json_obj_get(v, "event"));
    return e && !strcmp(e, name);
}

static unsigned g_tray_events;      /* DEVICE_TRAY_MOVED seen */
static char g_last_tray[256];

static void note_event(const struct json_value *v)
{
    if (is_event(v, "DEVICE_TRAY_MOVED")) {
        struct json_buf b;

        json_buf_init(&b, 0);
        json_buf_add_value(&b, json_obj_get(v, "data"));
        snprintf(g_last_tray, sizeof(g_last_tray), "%.200s", b.err ? "" : json_buf_str(&b));
        json_buf_free(&b);
        g_tray_events++;
    }
    if (is_event(v, "DEVICE_DELETED")) {
        const char *dev = json_get_str(json_obj_get(json_obj_get(v, "data"), "device"));
        g_events++;
        snprintf(g_last_deleted, sizeof(g_last_deleted), "%s", dev ? dev : "");
    }
}

/* Send, return the reply; events that come first are counted. */
static struct json_value *cmdr(struct tclient *c, const char *req)
{
    struct json_value *v;

    tsends(c, req);
    for (;;) {
        v = trecv(c);
        if (!v || !json_obj_get(v, "event"))
            return v;
        note_event(v);
        json_free(v);
    }
}

/* Read messages until g_events reaches want (each read waits at most ~3 s). */
static void wait_events(struct tclient *c, unsigned want)
{
    while (g_events < want) {
        struct json_value *v = trecv(c);
        if (!v)
            return;
        note_event(v);
        json_free(v);
    }
}

static int ok(struct json_value *v, const char *what)
{
    int good = v && json_obj_get(v, "return");

    if (!good)
        fprintf(stderr, "  %s: unexpected reply: %s\n", what, v ? err_desc(v) : "(none)");
    json_free(v);
    return good;
}

/* Error reply whose desc contains all of the given fragments. */
static int err_has(struct json_value *v, const char *cls, const char *frag1, const char *frag2)
{
    const char *c = err_class(v), *d = err_desc(v);
    int good = c && !strcmp(c, cls) && strstr(d, frag1) && (!frag2 || strstr(d, frag2));

    if (!good)
        fprintf(stderr, "  got %s / '%s', want %s with '%s'%s%s\n", c ? c : "(no error)", d, cls, frag1,
                frag2 ? " and " : "", frag2 ? frag2 : "");
    json_free(v);
    return good;
}

static struct json_value *cmdf(struct tclient *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static struct json_value *cmdf(struct tclient *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return cmdr(c, buf);
}

static unsigned count_array(struct tclient *c, const char *cmd)
{
    char req[128];
    struct json_value *v;
    unsigned n;

    snprintf(req, sizeof(req), "{\"execute\": \"%s\"}", cmd);
    v = cmdr(c, req);
    n = (unsigned)json_array_len(json_obj_get(v, "return"));
    json_free(v);
    return n;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void test_lifecycle(void)
{
    struct tclient c;
    char img[128], req[512];
    struct json_value *v;
    const struct json_value *r;
    int fd;

    snprintf(img, sizeof(img), "%s/a.img", g_dir);
    fd = open(img, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 64 << 20) == 0);
    close(fd);
    CHECK(connect_negotiated(&c) == 0);

    snprintf(req, sizeof(req), "{'execute': 'blockdev-add', 'arguments': {'node-name': 'f1', 'driver': 'raw',"
             " 'file': {'driver': 'file', 'filename': '%s'}, 'discard': 'unmap'}}", img);
    CHECK(ok(cmdr(&c, req), "blockdev-add raw"));
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'n1', 'driver': 'null-co',"
                      " 'size': 1073741824}}"), "blockdev-add null"));
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'ro1', 'driver': 'null-co',"
                      " 'size': 1048576, 'read-only': true}}"), "blockdev-add ro"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'f1',"
                      " 'scsi-id': 0, 'lun': 3, 'id': 'disk1', 'logical_block_size': 4096}}"), "device_add"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'ro1',"
                      " 'scsi-id': 255, 'lun': 16383, 'id': 'rodisk'}}"), "device_add max address"));

    /* the daemon's answers for bad requests */
    CHECK(err_has(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'n1',"
                           " 'scsi-id': 0, 'lun': 3}}"), "GenericError", "scsi-id=0,lun=3 is already taken",
                  "device 'disk1'"));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'f1',"
                           " 'lun': 4}}"), "GenericError", "drive 'f1' is already attached", "disk1"));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'zz',"
                           " 'lun': 4}}"), "GenericError", "drive 'zz' not found", NULL));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'n1',"
                           " 'lun': 4, 'id': 'disk1'}}"), "GenericError", "id 'disk1' exists already", NULL));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'n1',"
                           " 'scsi-id': 256}}"), "GenericError", "scsi-id=256", "0 to 255"));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'n1',"
                           " 'lun': 16384}}"), "GenericError", "lun=16384", "0 to 16383"));
    CHECK(err_has(cmdr(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'n1', 'driver': 'null-co',"
                           " 'size': 512}}"), "GenericError", "'n1' exists already", NULL));
    CHECK(err_has(cmdr(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'm1', 'driver': 'raw',"
                           " 'file': {'driver': 'file', 'filename': '/nonexistent/x.img'}}}"),
                  "GenericError", "/nonexistent/x.img", "No such file"));
    CHECK(err_has(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'f1'}}"),
                  "GenericError", "in use by device 'disk1'", NULL));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'nodev'}}"),
                  "DeviceNotFound", "Device 'nodev' not found", NULL));
    CHECK(err_has(cmdr(&c, "{'execute': 'block_resize', 'arguments': {'device': 'disk1', 'size': 1049088}}"),
                  "GenericError", "multiple of 4096", "'disk1'"));
    CHECK(err_has(cmdr(&c, "{'execute': 'block_resize', 'arguments': {'node-name': 'ro1', 'size': 2097152}}"),
                  "GenericError", "read-only", NULL));
    CHECK(err_has(cmdr(&c, "{'execute': 'no-such-command'}"), "CommandNotFound",
                  "The command no-such-command has not been found", NULL));

    /* resize: the file follows, grow and shrink; by device id or node name */
    CHECK(ok(cmdr(&c, "{'execute': 'block_resize', 'arguments': {'device': 'disk1', 'size': 134217728}}"),
             "grow"));
    CHECK_EQ(file_size(img), 134217728);
    CHECK(ok(cmdr(&c, "{'execute': 'block_resize', 'arguments': {'node-name': 'f1', 'size': 33554432}}"),
             "shrink"));
    CHECK_EQ(file_size(img), 33554432);
    CHECK(ok(cmdr(&c, "{'execute': 'block_resize', 'arguments': {'device': 'n1', 'size': 2147483648}}"),
             "null grow"));
    v = cmdr(&c, "{'execute': 'query-scsi-devices'}");
    r = json_obj_get(v, "return");
    CHECK_EQ(json_array_len(r), 2);
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "id")), "disk1"));
    CHECK_EQ(json_obj_get(json_array_at(r, 0), "size")->u.i, 33554432);
    CHECK_EQ(json_obj_get(json_array_at(r, 1), "lun")->u.i, 16383);
    json_free(v);

    /* device_del: reply, then DEVICE_DELETED; the drive is free again */
    g_events = 0;
    v = cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'disk1'}}");
    CHECK(ok(v, "device_del"));
    CHECK_EQ(g_events, 0);              /* not before the reply */
    wait_events(&c, 1);
    CHECK_EQ(g_events, 1);
    CHECK(!strcmp(g_last_deleted, "disk1"));
    CHECK(err_has(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'disk1'}}"),
                  "DeviceNotFound", "Device 'disk1' not found", NULL));
    /* the drive can back a new device, at another address, with the same id */
    CHECK(ok(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'f1',"
                      " 'scsi-id': 7, 'lun': 300, 'id': 'disk1'}}"), "re-attach"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'disk1'}}"), "device_del 2"));
    wait_events(&c, 2);
    CHECK_EQ(g_events, 2);
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'f1'}}"), "blockdev-del"));
    CHECK(err_has(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'f1'}}"),
                  "DeviceNotFound", "node-name='f1'", NULL));
    CHECK_EQ(file_size(img), 33554432);         /* the image stays */
    CHECK(ok(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'rodisk'}}"), "device_del ro"));
    wait_events(&c, 3);
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'ro1'}}"), "blockdev-del ro"));
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'n1'}}"), "blockdev-del n1"));
    CHECK_EQ(vscsid_device_count(g_vd), 0);
    CHECK_EQ(vscsid_drive_count(g_vd), 0);
    tclose(&c);
    unlink(img);
}

/* A generated id (scsiN-T-L) never takes one a user chose. Runs first: the
 * daemon's counter starts at 0. */
static void test_auto_id(void)
{
    struct tclient c;
    struct json_value *v;

    CHECK(connect_negotiated(&c) == 0);
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'a1', 'driver': 'null-co',"
                      " 'size': 1048576}}"), "a1"));
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'a2', 'driver': 'null-co',"
                      " 'size': 1048576}}"), "a2"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'a1',"
                      " 'scsi-id': 6, 'lun': 1, 'id': 'scsi0-6-2'}}"), "user id"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'a2',"
                      " 'scsi-id': 6, 'lun': 2}}"), "generated id"));
    v = cmdr(&c, "{'execute': 'query-scsi-devices'}");
    CHECK(strstr(c.last, "\"id\": \"scsi0-6-2\", \"driver\": \"scsi-hd\", \"drive\": \"a1\"") != NULL);
    CHECK(strstr(c.last, "\"id\": \"scsi1-6-2\", \"driver\": \"scsi-hd\", \"drive\": \"a2\"") != NULL);
    json_free(v);
    g_events = 0;
    CHECK(ok(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'scsi0-6-2'}}"), "del 1"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'scsi1-6-2'}}"), "del 2"));
    wait_events(&c, 2);
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'a1'}}"), "del a1"));
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'a2'}}"), "del a2"));
    tclose(&c);
}

/* Bad input on the wire: each gets an error or closes that client only. */
static void test_hostile_clients(void)
{
    struct tclient a, b;
    struct json_value *v;
    char *big;

    CHECK(connect_negotiated(&a) == 0);
    CHECK(connect_negotiated(&b) == 0);
    CHECK(ok(cmdr(&a, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'h1', 'driver': 'null-co',"
                      " 'size': 1048576}}"), "setup"));
    /* malformed JSON: an error, the connection stays */
    CHECK(err_has(cmdr(&a, "{'execute': 'device_add', 'arguments': {'driver': }}"), "GenericError",
                  "JSON parse error", NULL));
    CHECK(ok(cmdr(&a, "{'execute': 'query-status'}"), "after bad JSON"));
    /* a client gone in the middle of a command: nothing happens */
    tsends(&b, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'h1', 'lun'");
    tclose(&b);
    for (int i = 0; i < 5; i++)
        pump(5);
    CHECK_EQ(count_array(&a, "query-scsi-devices"), 0);
    /* a whole request, then gone before reading the reply: it is executed */
    CHECK(connect_negotiated(&b) == 0);
    tsends(&b, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'h1', 'id': 'hd1'}}");
    tclose(&b);
    for (int i = 0; i < 5; i++)
        pump(5);
    CHECK_EQ(count_array(&a, "query-scsi-devices"), 1);
    /* a message over 1 MiB: an error and that client is closed; others carry on */
    CHECK(connect_negotiated(&b) == 0);
    big = malloc(2u << 20);
    CHECK(big != NULL);
    if (big) {
        memset(big, ' ', 2u << 20);
        memcpy(big, "{\"execute\": \"device_add\", \"arguments\": {\"serial\": \"", 51);
        tsend(&b, big, 2u << 20);
        free(big);
    }
    v = trecv(&b);
    CHECK(err_has(v, "GenericError", "exceeds the 1048576 byte limit", NULL));
    v = trecv(&b);
    CHECK(v == NULL && b.eof);
    json_free(v);
    tclose(&b);
    g_events = 0;
    CHECK(ok(cmdr(&a, "{'execute': 'device_del', 'arguments': {'id': 'hd1'}}"), "del hd1"));
    wait_events(&a, 1);
    CHECK(ok(cmdr(&a, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'h1'}}"), "del h1"));
    tclose(&a);
}

/* Removable media through QMP and the real daemon core (no guest): the
 * daemon's answers for each command's refusals, DEVICE_TRAY_MOVED, and the
 * listings. What the guest sees is tests/harness/t_media.c. */
/* Read the events that follow a reply until want DEVICE_TRAY_MOVED were seen. */
static void read_tray_events(struct tclient *c, unsigned want)
{
    while (g_tray_events < want) {
        struct json_value *v = trecv(c);
        if (!v)
            return;
        note_event(v);
        json_free(v);
    }
}

static void test_media(void)
{
    struct tclient c;
    char a[128], b[128];
    struct json_value *v;
    int fd;

    snprintf(a, sizeof(a), "%s/a.iso", g_dir);
    snprintf(b, sizeof(b), "%s/b.iso", g_dir);
    fd = open(a, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 4 << 20) == 0);
    close(fd);
    fd = open(b, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 6 << 20) == 0);
    close(fd);
    CHECK(connect_negotiated(&c) == 0);
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'cdd', 'driver': 'raw',"
                      " 'read-only': true, 'file': {'driver': 'file', 'filename': '%s'}}}", a), "add cdd"));
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'hdd', 'driver': 'null-co',"
                      " 'size': 1048576}}"), "add hdd"));
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'nb', 'driver': 'raw',"
                      " 'read-only': true, 'file': {'driver': 'file', 'filename': '%s'}}}", b), "add nb"));
    CHECK(err_has(cmdf(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-cd', 'drive': 'cdd',"
                           " 'logical_block_size': 512}}"), "GenericError", "a scsi-cd has 2048-byte blocks", NULL));
    CHECK(ok(cmdf(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-cd', 'drive': 'cdd',"
                      " 'scsi-id': 3, 'lun': 0, 'id': 'cd'}}"), "device_add scsi-cd"));
    CHECK(ok(cmdf(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'hdd',"
                      " 'scsi-id': 3, 'lun': 1, 'id': 'hd'}}"), "device_add scsi-hd"));
    v = cmdf(&c, "{'execute': 'query-scsi-devices'}");
    CHECK(strstr(c.last, "\"id\": \"cd\", \"driver\": \"scsi-cd\", \"drive\": \"cdd\", \"scsi-id\": 3, "
                         "\"lun\": 0, \"size\": 4194304, \"read-only\": true, \"logical-block-size\": 2048") != NULL);
    CHECK(strstr(c.last, "\"product\": \"VSCSI CD-ROM\"") != NULL);
    json_free(v);

    /* refusals, each with the daemon's words */
    CHECK(err_has(cmdf(&c, "{'execute': 'eject', 'arguments': {'id': 'hd'}}"), "GenericError",
                  "Device 'hd' is not removable", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'eject', 'arguments': {'id': 'nope'}}"), "DeviceNotFound",
                  "Device 'nope' not found", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cd'}}"), "GenericError",
                  "Tray of device 'cd' is not open", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd', 'node-name': 'hdd'}}"),
                  "GenericError", "Node 'hdd' is already in use", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd', 'node-name': 'cdd'}}"),
                  "GenericError", "Node 'cdd' is already in use", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd', 'node-name': 'zz'}}"),
                  "GenericError", "Node 'zz' not found", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd', 'node-name': 'nb'}}"),
                  "GenericError", "Tray of the device is not open", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd',"
                           " 'filename': '%s/none.iso'}}", g_dir), "GenericError", "none.iso", "No such file"));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd', 'filename': '%s',"
                           " 'format': 'qcow2'}}", b), "GenericError", "format 'qcow2' is not supported", NULL));
    CHECK_EQ(g_tray_events, 0);

    /* change by the drive's name; two tray events after the reply */
    g_tray_events = 0;
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'device': 'cdd', 'filename': '%s'}}",
                  b), "change-medium"));
    read_tray_events(&c, 2);
    CHECK_EQ(g_tray_events, 2);
    CHECK(!strcmp(g_last_tray, "{\"device\": \"cdd\", \"id\": \"cd\", \"tray-open\": false}"));
    v = cmdf(&c, "{'execute': 'query-block'}");
    CHECK(strstr(c.last, "{\"device\": \"cdd\", \"qdev\": \"cd\", \"locked\": false, \"removable\": true, "
                         "\"tray_open\": false, \"type\": \"unknown\", \"inserted\": {\"node-name\": \"cdd\", "
                         "\"file\": ") != NULL);
    CHECK(strstr(c.last, b) != NULL);
    json_free(v);
    /* libvirt's way with a node; the node is in use until removed */
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'cd'}}"), "open-tray"));
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cd'}}"), "remove"));
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd', 'node-name': 'nb'}}"),
             "insert"));
    CHECK(err_has(cmdf(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'nb'}}"), "GenericError",
                  "drive 'nb' is the medium in drive 'cdd'", NULL));
    CHECK(err_has(cmdf(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'nb',"
                           " 'scsi-id': 3, 'lun': 2}}"), "GenericError", "'nb' is the medium in drive 'cdd'", NULL));
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-close-tray', 'arguments': {'id': 'cd'}}"), "close-tray"));
    read_tray_events(&c, 4);        /* open and close of the change, then these two */
    CHECK_EQ(g_tray_events, 4);
    v = cmdf(&c, "{'execute': 'query-block'}");
    CHECK(strstr(c.last, "\"inserted\": {\"node-name\": \"nb\"") != NULL);
    json_free(v);
    g_tray_events = 0;
    CHECK(ok(cmdf(&c, "{'execute': 'eject', 'arguments': {'id': 'cd'}}"), "eject"));
    read_tray_events(&c, 1);
    CHECK(!strcmp(g_last_tray, "{\"device\": \"cdd\", \"id\": \"cd\", \"tray-open\": true}"));
    v = cmdf(&c, "{'execute': 'query-scsi-devices'}");
    CHECK(strstr(c.last, "\"id\": \"cd\", \"driver\": \"scsi-cd\", \"drive\": \"cdd\", \"scsi-id\": 3, "
                         "\"lun\": 0, \"logical-block-size\": 2048") != NULL);      /* no size: empty */
    json_free(v);
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'nb'}}"), "del nb"));
    /* a drive with no device: no tray, its medium goes at once */
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'free', 'driver': 'raw',"
                      " 'file': {'driver': 'file', 'filename': '%s'}}}", a), "add free"));
    CHECK(ok(cmdf(&c, "{'execute': 'eject', 'arguments': {'device': 'free'}}"), "eject free"));
    v = cmdf(&c, "{'execute': 'query-block'}");
    CHECK(strstr(c.last, "{\"device\": \"free\", \"locked\": false, \"removable\": true, \"type\": \"unknown\"}")
          != NULL);
    json_free(v);
    CHECK(ok(cmdf(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'free'}}"), "del free"));
    g_events = 0;
    CHECK(ok(cmdf(&c, "{'execute': 'device_del', 'arguments': {'id': 'cd'}}"), "del cd"));
    CHECK(ok(cmdr(&c, "{'execute': 'device_del', 'arguments': {'id': 'hd'}}"), "del hd"));
    wait_events(&c, 2);
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'cdd'}}"), "del cdd"));
    CHECK(ok(cmdr(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'hdd'}}"), "del hdd"));
    CHECK_EQ(vscsid_drive_count(g_vd), 0);
    tclose(&c);
    unlink(a);
    unlink(b);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 2048 LUNs over QMP: 8 targets x 256 LUNs; listing; removal of all of them. */
static void test_many_luns(void)
{
    struct tclient c;
    unsigned n = 2048, bad = 0;
    double t0, t1, t2;

    CHECK(connect_negotiated(&c) == 0);
    t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        struct json_value *v = cmdf(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'm%u',"
                                    " 'driver': 'null-co', 'size': 1048576}}", i);
        bad += !json_obj_get(v, "return");
        json_free(v);
        v = cmdf(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'm%u',"
                 " 'scsi-id': %u, 'lun': %u, 'id': 'md%u'}}", i, i / 256, i % 256, i);
        bad += !json_obj_get(v, "return");
        json_free(v);
    }
    t1 = now_s();
    CHECK_EQ(bad, 0);
    CHECK_EQ(vscsid_device_count(g_vd), n);
    CHECK_EQ(count_array(&c, "query-scsi-devices"), n);
    CHECK_EQ(count_array(&c, "query-block"), n);
    CHECK_EQ(count_array(&c, "query-blockstats"), n);
    g_events = 0;
    for (unsigned i = 0; i < n; i++) {
        struct json_value *v = cmdf(&c, "{'execute': 'device_del', 'arguments': {'id': 'md%u'}}", i);
        bad += !json_obj_get(v, "return");
        json_free(v);
    }
    wait_events(&c, n);
    for (unsigned i = 0; i < n; i++) {
        struct json_value *v = cmdf(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'm%u'}}", i);
        bad += !json_obj_get(v, "return");
        json_free(v);
    }
    t2 = now_s();
    CHECK_EQ(bad, 0);
    CHECK_EQ(g_events, n);
    CHECK_EQ(vscsid_device_count(g_vd), 0);
    fprintf(stderr, "  %u LUNs: added in %.0f ms, removed in %.0f ms (blockdev-add + device_add, "
            "device_del + blockdev-del over one QMP connection)\n", n, (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    tclose(&c);
}

int main(void)
{
    char err[512], sock[100];
    struct ctrl_conf ctrl = { .num_queues = 1 };
    struct qmp_server *srv;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_WARN);
    snprintf(g_dir, sizeof(g_dir), "/tmp/vscsi-qmpd-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_path, sizeof(g_path), "%s/qmp.sock", g_dir);
    snprintf(sock, sizeof(sock), "%s/vhost.sock", g_dir);
    snprintf(ctrl.socket_path, sizeof(ctrl.socket_path), "%s", sock);
    g_loop = ev_loop_new();
    g_vd = g_loop ? vscsid_new(g_loop, err, sizeof(err)) : NULL;
    if (!g_vd) {
        fprintf(stderr, "skip: no daemon core here (%s)\n", err);
        rmdir(g_dir);
        return 77;
    }
    if (vscsid_add_controller(g_vd, &ctrl, err, sizeof(err)) < 0) {
        fprintf(stderr, "controller: %s\n", err);
        return 1;
    }
    srv = qmp_server_new(g_loop, g_path, g_vd, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "qmp: %s\n", err);
        return 1;
    }
    RUN_TEST(test_auto_id);
    RUN_TEST(test_lifecycle);
    RUN_TEST(test_media);
    RUN_TEST(test_hostile_clients);
    RUN_TEST(test_many_luns);
    qmp_server_free(srv);
    vscsid_free(g_vd);
    ev_loop_free(g_loop);
    unlink(sock);
    rmdir(g_dir);
    return test_exit();
}

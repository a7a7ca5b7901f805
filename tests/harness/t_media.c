/* Removable media from the host, seen by the guest: vscsid runs with --qmp
 * and two scsi-cd LUs (one with an ISO, one empty) and a removable scsi-hd;
 * the harness plays QEMU + the guest driver and a QMP client at once.
 *   blockdev-change-medium -> DEVICE_TRAY_MOVED open/closed on the QMP socket;
 *                 UA 28/00 once, then READ CAPACITY and READ(10) give the
 *                 new image; GESN reports NEW MEDIA;
 *   eject        -> NOT READY 3A/02 (tray open), 3A/01 once closed empty;
 *   the guest's PREVENT ALLOW MEDIUM REMOVAL -> eject fails with QEMU's
 *                 message, the guest's GESN shows EJECT REQUEST, open-tray
 *                 succeeds but leaves the tray closed; force opens it;
 *   blockdev-add + open/remove/insert/close (libvirt's way) -> the node's data;
 *   the guest's START STOP UNIT -> DEVICE_TRAY_MOVED too;
 *   a change while READs are in flight -> each READ completes with the old
 *                 data or NOT READY, never the new image's data.
 * Usage: t_media [path-to-vscsid]  (or env VSCSID; skips with 77 without one) */
#include "t_common.h"
#include "t_qmp.h"

#define CD_BS   2048u
#define ISO_A   (4u << 20)
#define ISO_B   (6u << 20)
#define ISO_N   (2u << 20)
#define SEED_A  501
#define SEED_B  502
#define SEED_N  503
#define SEED_U  504

static const struct vuf_vscsid_disk disks[] = {
    { .size = 8 << 20, .target = 0, .lun = 0 },
};

static char g_dir[128];
static char g_iso_a[192], g_iso_b[192], g_iso_n[192], g_usb[192];

/* ---- guest commands ---- */

static int cmd6(struct vuf *h, unsigned lun, uint8_t op, uint8_t b4, struct vuf_scsi_result *r)
{
    uint8_t cdb[6] = { op, 0, 0, 0, b4, 0 };
    return vuf_scsi_cmd(h, 0, lun, cdb, 6, NULL, 0, NULL, 0, r);
}

static int tur(struct vuf *h, unsigned lun, struct vuf_scsi_result *r)
{
    return cmd6(h, lun, 0x00, 0, r);
}

/* PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13), prevent = 1 or 0 */
static int prevent(struct vuf *h, unsigned lun, bool on)
{
    struct vuf_scsi_result r;
    int rc = cmd6(h, lun, 0x1e, on ? 1 : 0, &r);
    return rc ? rc : r.status ? -EIO : 0;
}

static bool sense_is(const struct vuf_scsi_result *r, int key, int asc, int ascq, const char *what)
{
    if (vuf_sense_is(r, key, asc, ascq))
        return true;
    fprintf(stderr, "  %s: %s, want %x/%02x/%02x\n", what, res_str(r), key, asc, ascq);
    return false;
}

/* The TUR answer: GOOD, or a sense triple packed as key<<16 | asc<<8 | ascq. */
static int tur_state(struct vuf *h, unsigned lun)
{
    struct vuf_scsi_result r;

    if (tur(h, lun, &r) || r.response)
        return -1;
    if (r.status == VUF_SAM_GOOD)
        return 0;
    return vuf_sense_key(&r) << 16 | vuf_sense_asc(&r) << 8 | vuf_sense_ascq(&r);
}

/* TUR past any unit attention (power on, medium changed): the settled state. */
static int tur_settled(struct vuf *h, unsigned lun)
{
    int st = tur_state(h, lun);

    for (int i = 0; i < 4 && st >> 16 == 6; i++)
        st = tur_state(h, lun);
    return st;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* READ CAPACITY(10): bytes, or 0 (with the result in *r). */
static uint64_t capacity10(struct vuf *h, unsigned lun, struct vuf_scsi_result *r)
{
    uint8_t cdb[10] = { 0x25 }, d[8];

    if (vuf_scsi_cmd(h, 0, lun, cdb, 10, NULL, 0, d, sizeof(d), r) || r->status)
        return 0;
    return ((uint64_t)be32(d) + 1) * be32(d + 4);
}

/* READ(10) of n blocks of bs bytes at lba; CHECKs that they are the pattern of seed. */
static void read_check(struct vuf *h, unsigned lun, uint32_t bs, uint32_t lba, uint16_t n, uint32_t seed)
{
    static uint8_t buf[64 * 2048], want[64 * 2048];
    struct vuf_scsi_result r;
    uint8_t cdb[16];

    vuf_cdb_rw10(cdb, false, lba, n);
    CHECK_EQ(vuf_scsi_cmd(h, 0, lun, cdb, 10, NULL, 0, buf, n * bs, &r), 0);
    if (r.response || r.status) {
        fprintf(stderr, "  READ(10) lun %u lba %u: %s\n", lun, lba, res_str(&r));
        CHECK(0);
        return;
    }
    vuf_pattern(want, n * bs, (uint64_t)lba * bs, seed);
    CHECK_MEM(buf, want, n * bs);
}

/* GET EVENT STATUS NOTIFICATION, polled, media class (MMC-6 6.7): the media
 * event code, the media status byte in *status; -1 on failure. */
static int gesn_media(struct vuf *h, unsigned lun, uint8_t *status)
{
    uint8_t cdb[10] = { 0x4a, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0 }, d[8];
    struct vuf_scsi_result r;

    if (vuf_scsi_cmd(h, 0, lun, cdb, 10, NULL, 0, d, sizeof(d), &r) || r.status || (d[2] & 0x87) != 4) {
        fprintf(stderr, "  GESN lun %u: %s class byte 0x%02x\n", lun, res_str(&r), d[2]);
        return -1;
    }
    if (status)
        *status = d[5];
    return d[4] & 0x0f;
}

/* Read media events until NoChg; returns a bit mask of the codes seen. */
static unsigned gesn_drain(struct vuf *h, unsigned lun)
{
    unsigned seen = 0;
    int e;

    for (int i = 0; i < 16 && (e = gesn_media(h, lun, NULL)) > 0; i++)
        seen |= 1u << e;
    return seen;
}

#define MEC_EJECT_REQUEST 1
#define MEC_NEW_MEDIA     2
#define MEC_MEDIA_REMOVAL 3
#define NOT_READY(ascq)   (0x023a00 | (ascq))
#define UA_MEDIUM_CHANGED 0x062800

static struct vuf *media_session(void)
{
    struct vuf_opts o = { 0 };
    return session_opts(&o, true);
}

/* ---- QMP helpers ---- */

static bool tray_moved(struct qmpc *q, const char *drive, const char *id, bool open)
{
    char frag[160];

    snprintf(frag, sizeof(frag), "{\"device\": \"%s\", \"id\": \"%s\", \"tray-open\": %s}", drive, id,
             open ? "true" : "false");
    if (qmp_wait_event(q, "DEVICE_TRAY_MOVED", frag, 3000))
        return true;
    fprintf(stderr, "  no DEVICE_TRAY_MOVED %s\n", frag);
    return false;
}

/* blockdev-change-medium (extra: more arguments, ", 'k': v" or ""); the tray
 * opens and closes. */
static void change(struct qmpc *q, const char *id, const char *drive, const char *file, const char *extra)
{
    QMP_OK(q, "{'execute': 'blockdev-change-medium', 'arguments': {'id': '%s', 'filename': '%s'%s}}", id,
           file, extra);
    CHECK(tray_moved(q, drive, id, true));
    CHECK(tray_moved(q, drive, id, false));
}

/* No DEVICE_TRAY_MOVED is pending (a query's reply comes before any later event). */
static bool no_tray_event(struct qmpc *q)
{
    char reply[256];

    qmp_do(q, false, reply, sizeof(reply), "{'execute': 'query-status'}");
    for (unsigned i = 0; i < q->nevents; i++) {
        if (strstr(q->events[i], "DEVICE_TRAY_MOVED")) {
            fprintf(stderr, "  unexpected %s\n", q->events[i]);
            return false;
        }
    }
    return true;
}

/* query-block's entry for drive, in out. */
static bool block_entry(struct qmpc *q, const char *drive, char *out, size_t cap)
{
    static char reply[1 << 15];
    char key[96];
    const char *p, *end;

    if (qmp_do(q, false, reply, sizeof(reply), "{'execute': 'query-block'}"))
        return false;
    snprintf(key, sizeof(key), "{\"device\": \"%s\"", drive);
    p = strstr(reply, key);
    if (!p)
        return false;
    end = strstr(p + 1, "{\"device\": ");
    snprintf(out, cap, "%.*s", (int)(end ? end - p : (ptrdiff_t)strlen(p)), p);
    return true;
}

/* ---- tests ---- */

/* The CD with ISO A: a CD-ROM of A's size and data. */
static void test_cd_reads_iso(void)
{
    struct vuf *h = media_session();
    struct vuf_scsi_result r;
    uint8_t cdb[6], inq[36];

    if (!h)
        return;
    vuf_cdb_inquiry(cdb, false, 0, 36);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 1, cdb, 6, NULL, 0, inq, 36, &r), 0);
    CHECK_EQ(inq[0] & 0x1f, 5);             /* MMC */
    CHECK(inq[1] & 0x80);                   /* RMB */
    CHECK_MEM(inq + 16, "VSCSI CD-ROM    ", 16);
    CHECK(vuf_scsi_clear_ua(h, 0, 1) == 0);
    CHECK_EQ(capacity10(h, 1, &r), ISO_A);
    read_check(h, 1, CD_BS, 0, 16, SEED_A);
    read_check(h, 1, CD_BS, ISO_A / CD_BS - 8, 8, SEED_A);
    /* the empty CD: NOT READY, tray closed */
    CHECK_EQ(tur_settled(h, 2), NOT_READY(1));
    vuf_free(h);
}

static void test_change_medium(void)
{
    struct vuf *h = media_session();
    struct qmpc q;
    struct vuf_scsi_result r;
    char e[2048];

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    CHECK(vuf_scsi_clear_ua(h, 0, 1) == 0);
    gesn_drain(h, 1);
    change(&q, "cdrom0", "cd0", g_iso_b, ", 'format': 'raw'");
    CHECK(block_entry(&q, "cd0", e, sizeof(e)));
    CHECK(strstr(e, "\"tray_open\": false") && strstr(e, g_iso_b) && strstr(e, "\"ro\": true"));
    /* the guest: UA 28/00 once, then the new medium */
    CHECK_EQ(tur(h, 1, &r), 0);
    CHECK(sense_is(&r, 6, 0x28, 0x00, "TUR after change"));
    CHECK_EQ(tur_state(h, 1), 0);
    CHECK(gesn_drain(h, 1) & (1u << MEC_NEW_MEDIA));
    CHECK_EQ(capacity10(h, 1, &r), ISO_B);
    read_check(h, 1, CD_BS, 0, 16, SEED_B);
    read_check(h, 1, CD_BS, ISO_B / CD_BS - 4, 4, SEED_B);
    /* a missing file: an error, nothing moves, the guest sees nothing */
    CHECK_EQ(qmp_do(&q, true, e, sizeof(e), "{'execute': 'blockdev-change-medium', 'arguments':"
                    " {'id': 'cdrom0', 'filename': '%s/none.iso'}}", g_dir), -EIO);
    CHECK(strstr(e, "GenericError") && strstr(e, "No such file"));
    CHECK(no_tray_event(&q));
    CHECK_EQ(tur_state(h, 1), 0);
    /* back to A, by the drive's name (QEMU's deprecated "device") */
    QMP_OK(&q, "{'execute': 'blockdev-change-medium', 'arguments': {'device': 'cd0', 'filename': '%s'}}",
           g_iso_a);
    CHECK(tray_moved(&q, "cd0", "cdrom0", true));
    CHECK(tray_moved(&q, "cd0", "cdrom0", false));
    CHECK_EQ(tur_state(h, 1), UA_MEDIUM_CHANGED);
    read_check(h, 1, CD_BS, 100, 4, SEED_A);
    qmp_close(&q);
    vuf_free(h);
}

/* eject, an empty tray, libvirt's sequence with a blockdev-add node. */
static void test_eject_and_insert(void)
{
    struct vuf *h = media_session();
    struct qmpc q;
    struct vuf_scsi_result r;
    uint8_t st = 0, buf[CD_BS], cdb[16];
    char e[2048];

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    CHECK(vuf_scsi_clear_ua(h, 0, 1) == 0);
    gesn_drain(h, 1);
    QMP_OK(&q, "{'execute': 'eject', 'arguments': {'id': 'cdrom0'}}");
    CHECK(tray_moved(&q, "cd0", "cdrom0", true));
    CHECK_EQ(tur_state(h, 1), NOT_READY(2));        /* MEDIUM NOT PRESENT - TRAY OPEN */
    vuf_cdb_rw10(cdb, false, 0, 1);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 1, cdb, 10, NULL, 0, buf, sizeof(buf), &r), 0);
    CHECK(sense_is(&r, 2, 0x3a, 0x02, "READ with the tray open"));
    CHECK_EQ(gesn_media(h, 1, &st), MEC_MEDIA_REMOVAL);
    CHECK_EQ(st & 3, 1);                            /* tray open, no medium */
    CHECK(block_entry(&q, "cd0", e, sizeof(e)));
    CHECK(strstr(e, "\"tray_open\": true") && !strstr(e, "inserted"));
    /* remove-medium with nothing in: fine; insert with the tray closed: refused */
    QMP_OK(&q, "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cdrom0'}}");
    QMP_OK(&q, "{'execute': 'blockdev-close-tray', 'arguments': {'id': 'cdrom0'}}");
    CHECK(tray_moved(&q, "cd0", "cdrom0", false));
    CHECK_EQ(tur_state(h, 1), NOT_READY(1));        /* MEDIUM NOT PRESENT - TRAY CLOSED */
    QMP_OK(&q, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'nodeN', 'driver': 'raw',"
               " 'read-only': true, 'file': {'driver': 'file', 'filename': '%s'}}}", g_iso_n);
    CHECK_EQ(qmp_do(&q, true, e, sizeof(e), "{'execute': 'blockdev-insert-medium', 'arguments':"
                    " {'id': 'cdrom0', 'node-name': 'nodeN'}}"), -EIO);
    CHECK(strstr(e, "Tray of the device is not open") != NULL);
    /* libvirt: open (force), remove, insert the node, close */
    QMP_OK(&q, "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'cdrom0', 'force': true}}");
    CHECK(tray_moved(&q, "cd0", "cdrom0", true));
    QMP_OK(&q, "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cdrom0'}}");
    QMP_OK(&q, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cdrom0', 'node-name': 'nodeN'}}");
    CHECK_EQ(tur_state(h, 1), NOT_READY(2));        /* in, but the tray is open */
    QMP_OK(&q, "{'execute': 'blockdev-close-tray', 'arguments': {'id': 'cdrom0'}}");
    CHECK(tray_moved(&q, "cd0", "cdrom0", false));
    CHECK_EQ(tur_state(h, 1), UA_MEDIUM_CHANGED);
    CHECK_EQ(tur_state(h, 1), 0);
    CHECK_EQ(capacity10(h, 1, &r), ISO_N);
    read_check(h, 1, CD_BS, 3, 5, SEED_N);
    CHECK(block_entry(&q, "cd0", e, sizeof(e)));
    CHECK(strstr(e, "\"node-name\": \"nodeN\"") && strstr(e, g_iso_n));
    CHECK_EQ(qmp_do(&q, true, e, sizeof(e), "{'execute': 'blockdev-del', 'arguments': {'node-name': 'nodeN'}}"),
             -EIO);
    CHECK(strstr(e, "the medium in drive 'cd0'") != NULL);
    /* back to A; the node is free again */
    change(&q, "cdrom0", "cd0", g_iso_a, "");
    QMP_OK(&q, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'nodeN'}}");
    CHECK_EQ(tur_state(h, 1), UA_MEDIUM_CHANGED);
    read_check(h, 1, CD_BS, 0, 2, SEED_A);
    qmp_close(&q);
    vuf_free(h);
}

/* The guest locks the tray: the host's eject fails and asks the guest. */
static void test_locked_tray(void)
{
    struct vuf *h = media_session();
    struct qmpc q;
    struct vuf_scsi_result r;
    char e[2048];

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    CHECK(vuf_scsi_clear_ua(h, 0, 1) == 0);
    gesn_drain(h, 1);
    CHECK_EQ(prevent(h, 1, true), 0);
    CHECK(block_entry(&q, "cd0", e, sizeof(e)));
    CHECK(strstr(e, "\"locked\": true") && strstr(e, "\"tray_open\": false"));
    CHECK_EQ(qmp_do(&q, true, e, sizeof(e), "{'execute': 'eject', 'arguments': {'id': 'cdrom0'}}"), -EIO);
    CHECK(strstr(e, "\"GenericError\"") && strstr(e, "Device 'cdrom0' is locked and force was not "
                                                      "specified, wait for tray to open and try again"));
    CHECK(no_tray_event(&q));
    CHECK_EQ(gesn_media(h, 1, NULL), MEC_EJECT_REQUEST);    /* the guest is asked */
    CHECK_EQ(gesn_media(h, 1, NULL), 0);
    CHECK_EQ(tur_state(h, 1), 0);                           /* the medium stays usable */
    /* blockdev-open-tray: success, the tray still closed, another request */
    QMP_OK(&q, "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'cdrom0'}}");
    CHECK(no_tray_event(&q));
    CHECK_EQ(gesn_media(h, 1, NULL), MEC_EJECT_REQUEST);
    CHECK(block_entry(&q, "cd0", e, sizeof(e)));
    CHECK(strstr(e, "\"tray_open\": false") && strstr(e, "\"locked\": true"));
    /* change-medium without force: refused, nothing changed */
    CHECK_EQ(qmp_do(&q, true, e, sizeof(e), "{'execute': 'blockdev-change-medium', 'arguments':"
                    " {'id': 'cdrom0', 'filename': '%s'}}", g_iso_b), -EIO);
    CHECK(strstr(e, "is locked and force was not specified") != NULL);
    CHECK_EQ(tur_state(h, 1), 0);
    read_check(h, 1, CD_BS, 0, 1, SEED_A);
    /* the guest itself may not eject (MMC-6: MEDIUM REMOVAL PREVENTED) */
    CHECK_EQ(cmd6(h, 1, 0x1b, 0x02, &r), 0);
    CHECK(sense_is(&r, 5, 0x53, 0x02, "START STOP UNIT eject while prevented"));
    /* force: the lock goes, the tray opens */
    QMP_OK(&q, "{'execute': 'eject', 'arguments': {'id': 'cdrom0', 'force': true}}");
    CHECK(tray_moved(&q, "cd0", "cdrom0", true));
    CHECK_EQ(tur_state(h, 1), NOT_READY(2));
    CHECK(block_entry(&q, "cd0", e, sizeof(e)));
    CHECK(strstr(e, "\"locked\": false") && strstr(e, "\"tray_open\": true") && !strstr(e, "inserted"));
    /* the guest closes the tray (START STOP UNIT LOEJ + START): an event as well */
    CHECK_EQ(cmd6(h, 1, 0x1b, 0x03, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK(tray_moved(&q, "cd0", "cdrom0", false));
    CHECK_EQ(tur_state(h, 1), NOT_READY(1));
    change(&q, "cdrom0", "cd0", g_iso_a, "");
    CHECK_EQ(tur_state(h, 1), UA_MEDIUM_CHANGED);
    /* the guest ejects (no lock now): the host hears of it */
    CHECK_EQ(cmd6(h, 1, 0x1b, 0x02, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK(tray_moved(&q, "cd0", "cdrom0", true));
    CHECK_EQ(cmd6(h, 1, 0x1b, 0x03, &r), 0);
    CHECK(tray_moved(&q, "cd0", "cdrom0", false));
    CHECK_EQ(tur_state(h, 1), 0);           /* its own load: no UA for this nexus */
    qmp_close(&q);
    vuf_free(h);
}

/* The empty CD and the removable disk. */
static void test_empty_and_removable_disk(void)
{
    struct vuf *h = media_session();
    struct qmpc q;
    struct vuf_scsi_result r;
    char e[2048];
    uint8_t inq[36], cdb[6];

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    CHECK_EQ(tur_state(h, 2), NOT_READY(1));
    CHECK(block_entry(&q, "cd1", e, sizeof(e)));
    CHECK(strstr(e, "\"removable\": true") && strstr(e, "\"tray_open\": false") && !strstr(e, "inserted"));
    change(&q, "cdrom1", "cd1", g_iso_b, "");
    CHECK_EQ(tur_state(h, 2), UA_MEDIUM_CHANGED);
    read_check(h, 2, CD_BS, 7, 3, SEED_B);
    QMP_OK(&q, "{'execute': 'eject', 'arguments': {'device': 'cd1'}}");
    CHECK(tray_moved(&q, "cd1", "cdrom1", true));
    QMP_OK(&q, "{'execute': 'blockdev-close-tray', 'arguments': {'device': 'cd1'}}");
    CHECK(tray_moved(&q, "cd1", "cdrom1", false));
    CHECK_EQ(tur_state(h, 2), NOT_READY(1));

    /* scsi-hd removable=on: RMB, 512-byte blocks, media change like a CD */
    vuf_cdb_inquiry(cdb, false, 0, 36);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 3, cdb, 6, NULL, 0, inq, 36, &r), 0);
    CHECK_EQ(inq[0] & 0x1f, 0);
    CHECK(inq[1] & 0x80);
    CHECK(vuf_scsi_clear_ua(h, 0, 3) == 0);
    read_check(h, 3, BS, 0, 8, SEED_U);
    change(&q, "usb", "u0", g_iso_n, ", 'read-only-mode': 'read-only'");
    CHECK_EQ(tur_state(h, 3), UA_MEDIUM_CHANGED);
    CHECK_EQ(capacity10(h, 3, &r), ISO_N);
    read_check(h, 3, BS, 64, 8, SEED_N);
    {
        uint8_t w[BS], cdbw[16];
        vuf_cdb_rw10(cdbw, true, 0, 1);
        memset(w, 0x5a, sizeof(w));
        CHECK_EQ(vuf_scsi_cmd(h, 0, 3, cdbw, 10, w, sizeof(w), NULL, 0, &r), 0);
        CHECK(sense_is(&r, 7, 0x27, 0x00, "WRITE to a read-only medium"));
    }
    change(&q, "usb", "u0", g_usb, ", 'read-only-mode': 'read-write'");
    CHECK_EQ(tur_state(h, 3), UA_MEDIUM_CHANGED);
    read_check(h, 3, BS, 0, 8, SEED_U);
    /* a disk that is not removable refuses */
    CHECK_EQ(qmp_do(&q, true, e, sizeof(e), "{'execute': 'eject', 'arguments': {'device': 'd0'}}"), -EIO);
    CHECK(strstr(e, "Device 'd0' is not removable") != NULL);
    qmp_close(&q);
    vuf_free(h);
}

/* A change while READs are in flight: the daemon is frozen while they are
 * queued and the change is sent, so it finds both in one round. Each READ
 * ends GOOD with one image's data, whole (the old one when it started
 * before the tray opened, the new one after), or NOT READY / UA 28/00; none
 * is lost or mixed. Then the new data. */
static void test_change_inflight(void)
{
    enum { N = 64, BLOCKS = 16 };
    static uint8_t bufs[N][BLOCKS * CD_BS], want[BLOCKS * CD_BS];
    static uint8_t cdbs[N][10];
    /* both in one write: the listing shows the state right after the change */
    static const char change_req[] = "{\"execute\": \"blockdev-change-medium\", \"arguments\": "
                                 "{\"id\": \"cdrom0\", \"filename\": \"%s\"}}\r\n"
                                 "{\"execute\": \"query-scsi-devices\"}\r\n";
    struct vuf *h = media_session();
    struct vuf_scsi_req *rq[N];
    struct vuf_scsi_result r;
    struct qmpc q;
    char req[512], reply[4096];
    unsigned old = 0, new = 0, notready = 0, other = 0, deferred = 0;

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    CHECK(vuf_scsi_clear_ua(h, 0, 1) == 0);
    for (int round = 0; round < 3; round++) {
        uint32_t from = round % 2 ? SEED_B : SEED_A, to = round % 2 ? SEED_A : SEED_B;

        kill(g_d.proc.pid, SIGSTOP);
        wait_stopped(g_d.proc.pid);
        for (unsigned i = 0; i < N; i++) {
            vuf_cdb_rw10(cdbs[i], false, i * BLOCKS, BLOCKS);
            struct vuf_scsi_io io = { .target = 0, .lun = 1, .cdb = cdbs[i], .cdb_len = 10,
                                      .vq = VUF_SCSI_REQQ + i % 2, .data_in = bufs[i],
                                      .in_len = sizeof(bufs[i]), .flags = VUF_IO_INDIRECT };
            rq[i] = vuf_scsi_submit(h, &io);
            CHECK(rq[i] != NULL);
        }
        snprintf(req, sizeof(req), change_req, round % 2 ? g_iso_a : g_iso_b);
        CHECK(send(q.fd, req, strlen(req), MSG_NOSIGNAL) > 0);
        usleep(20000);
        kill(g_d.proc.pid, SIGCONT);
        CHECK_EQ(qmp_reply(&q, false, "blockdev-change-medium", NULL, 0), 0);
        CHECK_EQ(qmp_reply(&q, false, "query-scsi-devices", reply, sizeof(reply)), 0);
        deferred += strstr(reply, "\"medium-draining\": true") != NULL;
        CHECK(tray_moved(&q, "cd0", "cdrom0", true));
        CHECK(tray_moved(&q, "cd0", "cdrom0", false));
        for (unsigned i = 0; i < N; i++) {
            if (!rq[i] || vuf_scsi_complete(h, rq[i], &r, 5000)) {
                CHECK(0);
                continue;
            }
            bool good = r.response == VUF_SCSI_S_OK && r.status == VUF_SAM_GOOD;
            vuf_pattern(want, sizeof(want), (uint64_t)i * sizeof(want), from);
            if (good && !memcmp(bufs[i], want, sizeof(want))) {
                old++;
                continue;
            }
            vuf_pattern(want, sizeof(want), (uint64_t)i * sizeof(want), to);
            if (good && !memcmp(bufs[i], want, sizeof(want)))
                new++;
            else if (vuf_sense_is(&r, 2, 0x3a, 0x02) || vuf_sense_is(&r, 6, 0x28, 0x00))
                notready++;
            else {
                other++;
                fprintf(stderr, "  round %d READ %u: %s%s\n", round, i, res_str(&r),
                        r.status == VUF_SAM_GOOD ? " (wrong data)" : "");
            }
        }
        /* the new medium, after its unit attention */
        for (int k = 0; k < 4 && tur_state(h, 1) != 0; k++)
            ;
        read_check(h, 1, CD_BS, 0, 4, to);
    }
    CHECK_EQ(other, 0);
    /* a frozen daemon has the READs going when the change comes: some drain.
     * With iothreads the READs are taken by another thread than the change,
     * so which comes first is a race: only the outcome checks above hold. */
    if (!iothreads_in_use())
        CHECK(deferred >= 1);
    fprintf(stderr, "  %u READs across changes: %u with the old data, %u not ready or UA, %u with "
            "the new data; %u of 3 changes waited for READs of the old medium\n", 3 * N, old,
            notready, new, deferred);
    /* leave A in the drive */
    QMP_OK(&q, "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cdrom0', 'filename': '%s'}}",
           g_iso_a);
    qmp_close(&q);
    vuf_free(h);
}

int main(int argc, char **argv)
{
    static char drive_a[256], drive_u[256];
    static const char *extra[] = {
        "--qmp", g_qmp_path,
        "--drive", drive_a, "--device", "scsi-cd,drive=cd0,scsi-id=0,lun=1,id=cdrom0",
        "--drive", "id=cd1,media=cdrom", "--device", "scsi-cd,drive=cd1,scsi-id=0,lun=2,id=cdrom1",
        "--drive", drive_u, "--device", "scsi-hd,drive=u0,scsi-id=0,lun=3,id=usb,removable=on",
        NULL,
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (!vuf_vscsid_exe(argc, argv)) {
        fprintf(stderr, "SKIP: no vscsid (pass its path or set VSCSID)\n");
        return 77;
    }
    if (vuf_tmpdir(g_dir, sizeof(g_dir)) < 0)
        return 1;
    snprintf(g_qmp_path, sizeof(g_qmp_path), "%.100s/qmp", g_dir);
    snprintf(g_iso_a, sizeof(g_iso_a), "%s/a.iso", g_dir);
    snprintf(g_iso_b, sizeof(g_iso_b), "%s/b.iso", g_dir);
    snprintf(g_iso_n, sizeof(g_iso_n), "%s/n.iso", g_dir);
    snprintf(g_usb, sizeof(g_usb), "%s/usb.img", g_dir);
    if (vuf_make_image(g_iso_a, ISO_A, SEED_A) || vuf_make_image(g_iso_b, ISO_B, SEED_B) ||
        vuf_make_image(g_iso_n, ISO_N, SEED_N) || vuf_make_image(g_usb, 1 << 20, SEED_U)) {
        fprintf(stderr, "cannot create the images in %s\n", g_dir);
        vuf_rmtree(g_dir);
        return 1;
    }
    snprintf(drive_a, sizeof(drive_a), "id=cd0,media=cdrom,file=%s", g_iso_a);
    snprintf(drive_u, sizeof(drive_u), "id=u0,file=%s", g_usb);
    start_daemon(argc, argv, disks, 1, extra);
    for (int i = 0; i < 100 && access(g_qmp_path, F_OK); i++)
        usleep(20000);
    RUN(test_cd_reads_iso);
    RUN(test_change_medium);
    RUN(test_eject_and_insert);
    RUN(test_locked_tray);
    RUN(test_empty_and_removable_disk);
    RUN(test_change_inflight);
    rc = finish();
    vuf_rmtree(g_dir);
    return rc;
}

/* Live management through the vhost-user harness: vscsid runs with --qmp, the
 * harness plays QEMU + the guest driver and a QMP client at once, and checks
 * what a guest sees of each management command (virtio-scsi 1.x 5.6.6.3):
 *   device_add   -> TRANSPORT_RESET/RESCAN for that LUN (encoded like REPORT
 *                   LUNS), REPORT LUNS lists it, UA 3F/0E on the other LUNs;
 *   device_del   -> TRANSPORT_RESET/REMOVED, commands in flight complete,
 *                   DEVICE_DELETED only after them, data kept, drive reusable;
 *   block_resize -> PARAM_CHANGE 2A/09, UA 2A/09, READ CAPACITY says the new size;
 *   a burst beyond the event backlog -> EVENTS_MISSED on a later event.
 * Usage: t_mgmt [path-to-vscsid]  (or env VSCSID; skips with 77 without one) */
#include "t_common.h"
#include "t_qmp.h"

#include <fcntl.h>
#include <sys/socket.h>

#define D0_SIZE (8ull << 20)

static const struct vuf_vscsid_disk disks[] = {
    { .size = D0_SIZE, .target = 0, .lun = 0 },
};

/* ---- helpers ---- */

/* A session like Linux's: HOTPLUG and CHANGE negotiated, 8 event buffers. */
static struct vuf *event_session(unsigned buffers)
{
    struct vuf_opts o = { .features = VUF_FEATURES_DEFAULT | VUF_BIT(VUF_SCSI_F_HOTPLUG) |
                                      VUF_BIT(VUF_SCSI_F_CHANGE) };
    struct vuf *h = session_opts(&o, true);
    if (h && buffers)
        CHECK_EQ(vuf_scsi_event_post(h, buffers), 0);
    return h;
}

static const char *event_str(const struct vuf_scsi_event *e, char *buf, size_t len)
{
    snprintf(buf, len, "event 0x%x lun %02x %02x %02x %02x %02x %02x %02x %02x reason 0x%x", e->event,
             e->lun[0], e->lun[1], e->lun[2], e->lun[3], e->lun[4], e->lun[5], e->lun[6], e->lun[7],
             e->reason);
    return buf;
}

/* The next event must be (type, target, lun, reason); LUN bytes as REPORT LUNS. */
static void expect_event(struct vuf *h, uint32_t type, unsigned t, unsigned l, uint32_t reason)
{
    struct vuf_scsi_event e;
    char b[160];
    uint8_t want[8] = { 1, (uint8_t)t, (uint8_t)(l >= 256 ? 0x40 | (l >> 8) : 0), (uint8_t)l };

    if (vuf_scsi_event_get(h, &e, 3000) != 1) {
        fprintf(stderr, "  no event (want type %u for %u:%u)\n", type, t, l);
        CHECK(0);
        return;
    }
    if ((e.event & ~VUF_SCSI_T_EVENTS_MISSED) != type || memcmp(e.lun, want, 8) || e.reason != reason) {
        fprintf(stderr, "  got %s; want type %u lun %u:%u reason 0x%x\n", event_str(&e, b, sizeof(b)),
                type, t, l, reason);
        CHECK(0);
    }
}

static void no_more_events(struct vuf *h)
{
    struct vuf_scsi_event e;
    char b[160];

    if (vuf_scsi_event_get(h, &e, 100) == 1) {
        fprintf(stderr, "  unexpected %s\n", event_str(&e, b, sizeof(b)));
        CHECK(0);
    }
}

static void make_image(const char *name, uint64_t size, uint32_t seed, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", g_d.dir, name);
    CHECK_EQ(vuf_make_image(path, size, seed), 0);
}

static int tur(struct vuf *h, unsigned t, unsigned l, struct vuf_scsi_result *r)
{
    uint8_t cdb[6];
    vuf_cdb_tur(cdb);
    return vuf_scsi_cmd(h, t, l, cdb, 6, NULL, 0, NULL, 0, r);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint64_t capacity(struct vuf *h, unsigned t, unsigned l)
{
    uint8_t cdb[16], d[32];
    struct vuf_scsi_result r;
    vuf_cdb_read_capacity16(cdb, sizeof(d));
    if (vuf_scsi_cmd(h, t, l, cdb, 16, NULL, 0, d, sizeof(d), &r) || r.status) {
        fprintf(stderr, "  READ CAPACITY(16) %u:%u: %s\n", t, l, res_str(&r));
        return 0;
    }
    return (be64(d) + 1) * be32(d + 8);
}

/* REPORT LUNS of target t contains lun (flat addressing for >= 256)? */
static bool reported(struct vuf *h, unsigned t, unsigned l)
{
    uint8_t cdb[12], d[1024];
    struct vuf_scsi_result r;
    uint8_t want[8] = { (uint8_t)(l >= 256 ? 0x40 | (l >> 8) : 0), (uint8_t)l };
    vuf_cdb_report_luns(cdb, sizeof(d));
    if (vuf_scsi_cmd(h, t, 0, cdb, 12, NULL, 0, d, sizeof(d), &r) || r.status)
        return false;
    for (uint32_t off = 8; off < 8 + be32(d) && off + 8 <= sizeof(d); off += 8)
        if (!memcmp(d + off, want, 8))
            return true;
    return false;
}

/* ---- tests ---- */

static void test_hotplug_events(void)
{
    struct vuf *h = event_session(8);
    struct qmpc q;
    struct vuf_scsi_result r;
    char img[2][192];

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    make_image("hp0.img", 1 << 20, 11, img[0], sizeof(img[0]));
    make_image("hp1.img", 2 << 20, 12, img[1], sizeof(img[1]));
    QMP_OK(&q, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'hp0', 'driver': 'raw',"
               " 'file': {'driver': 'file', 'filename': '%s'}}}", img[0]);
    QMP_OK(&q, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'hp1', 'driver': 'raw',"
               " 'file': {'driver': 'file', 'filename': '%s'}}}", img[1]);

    /* a LUN on the existing target, then one >= 256, then a new target */
    QMP_OK(&q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'hp0',"
               " 'scsi-id': 0, 'lun': 5, 'id': 'hpd0'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 0, 5, 1 /* RESCAN */);
    CHECK(reported(h, 0, 5));
    /* the LUN that was there sees REPORTED LUNS DATA HAS CHANGED once */
    CHECK_EQ(tur(h, 0, 0, &r), 0);
    if (!vuf_sense_is(&r, 6, 0x3f, 0x0e)) {
        fprintf(stderr, "  TUR 0:0 after device_add: %s (want UA 3F/0E)\n", res_str(&r));
        CHECK(0);
    }
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 5), 0);
    CHECK_EQ(capacity(h, 0, 5), 1 << 20);

    QMP_OK(&q, "{'execute': 'device_del', 'arguments': {'id': 'hpd0'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 0, 5, 2 /* REMOVED */);
    CHECK(qmp_wait_event(&q, "DEVICE_DELETED", "\"hpd0\"", 3000));
    CHECK(!reported(h, 0, 5));
    CHECK_EQ(tur(h, 0, 5, &r), 0);
    CHECK(vuf_sense_is(&r, 5, 0x25, 0x00));

    QMP_OK(&q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'hp0',"
               " 'scsi-id': 0, 'lun': 300, 'id': 'hpd0'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 0, 300, 1);
    CHECK(reported(h, 0, 300));
    QMP_OK(&q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'hp1',"
               " 'scsi-id': 9, 'lun': 0, 'id': 'hpd1'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 9, 0, 1);
    CHECK(reported(h, 9, 0));
    CHECK_EQ(vuf_scsi_clear_ua(h, 9, 0), 0);
    CHECK_EQ(capacity(h, 9, 0), 2 << 20);
    no_more_events(h);

    QMP_OK(&q, "{'execute': 'device_del', 'arguments': {'id': 'hpd0'}}");
    QMP_OK(&q, "{'execute': 'device_del', 'arguments': {'id': 'hpd1'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 0, 300, 2);
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 9, 0, 2);
    CHECK(qmp_wait_event(&q, "DEVICE_DELETED", "\"hpd1\"", 3000));
    /* an absent target is a bad target again */
    CHECK_EQ(tur(h, 9, 0, &r), 0);
    CHECK_EQ(r.response, VUF_SCSI_S_BAD_TARGET);
    QMP_OK(&q, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'hp0'}}");
    QMP_OK(&q, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'hp1'}}");
    qmp_close(&q);
    vuf_free(h);
}

/* device_del while reads and writes are in flight on the LUN. Whether the
 * daemon still has commands in flight when device_del arrives depends on
 * timing, so rounds with different delays run until one caught some (shown by
 * query-scsi-devices "deleting": true right after the reply). */
/* freeze: the daemon is stopped (SIGSTOP) while the commands are kicked and
 * device_del is sent, so that on SIGCONT it handles the kicks first and the
 * request in the same round, with the commands submitted and not completed. */
static bool unplug_round(struct vuf *h, struct qmpc *q, unsigned round, bool freeze, unsigned delay_us,
                         unsigned *refused)
{
    static const char del_and_query[] =
        "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"fld\"}}\r\n"
        "{\"execute\": \"query-scsi-devices\"}\r\n";
    enum { N = 96, BLOCKS = 128 };
    static uint8_t bufs[N][BLOCKS * BS];
    static uint8_t cdbs[N][10];
    struct vuf_scsi_req *rq[N];
    struct vuf_scsi_result r;
    char reply[4096];
    unsigned good = 0, gone = 0, other = 0;
    bool deferred;
    uint32_t seed = 100 + round;

    QMP_OK(q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'fl',"
              " 'scsi-id': 1, 'lun': 7, 'id': 'fld'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 1, 7, 1);
    CHECK_EQ(vuf_scsi_clear_ua(h, 1, 7), 0);
    if (freeze) {
        kill(g_d.proc.pid, SIGSTOP);
        wait_stopped(g_d.proc.pid);
    }
    /* the first half writes a pattern of this round over the image's start, the rest reads */
    for (unsigned i = 0; i < N; i++) {
        bool wr = i < N / 2;
        vuf_cdb_rw10(cdbs[i], wr, i * BLOCKS, BLOCKS);
        if (wr)
            vuf_pattern(bufs[i], sizeof(bufs[i]), (uint64_t)i * sizeof(bufs[i]), seed);
        struct vuf_scsi_io io = { .target = 1, .lun = 7, .cdb = cdbs[i], .cdb_len = 10,
                                  .vq = VUF_SCSI_REQQ + i % 2,
                                  .data_out = wr ? bufs[i] : NULL, .out_len = wr ? sizeof(bufs[i]) : 0,
                                  .data_in = wr ? NULL : bufs[i], .in_len = wr ? 0 : sizeof(bufs[i]),
                                  .flags = VUF_IO_INDIRECT };
        rq[i] = vuf_scsi_submit(h, &io);
        CHECK(rq[i] != NULL);
    }
    if (delay_us)
        usleep(delay_us);
    /* both in one write: the listing shows the state right after device_del */
    CHECK(send(q->fd, del_and_query, sizeof(del_and_query) - 1, MSG_NOSIGNAL) > 0);
    if (freeze) {
        usleep(20000);
        kill(g_d.proc.pid, SIGCONT);
    }
    CHECK_EQ(qmp_reply(q, false, "device_del", NULL, 0), 0);
    CHECK_EQ(qmp_reply(q, false, "query-scsi-devices", reply, sizeof(reply)), 0);
    deferred = strstr(reply, "\"deleting\": true") != NULL;
    CHECK(qmp_wait_event(q, "DEVICE_DELETED", "\"fld\"", 10000));
    /* DEVICE_DELETED comes after every command on the LUN completed: all are in the used rings */
    vuf_scsi_reap(h, VUF_SCSI_REQQ);
    vuf_scsi_reap(h, VUF_SCSI_REQQ + 1);
    for (unsigned i = 0; i < N; i++) {
        bool late = false;

        if (!rq[i])
            continue;
        if (!vuf_scsi_req_done(rq[i])) {
            /* with iothreads a command may still wait in its ring, to be
             * taken after the removal; it must then be refused */
            late = true;
            if (!iothreads_in_use()) {
                fprintf(stderr, "  command %u not completed at DEVICE_DELETED\n", i);
                CHECK(0);
            }
        }
        if (vuf_scsi_complete(h, rq[i], &r, 2000)) {
            CHECK(0);
            continue;
        }
        if (r.response == VUF_SCSI_S_OK && r.status == VUF_SAM_GOOD && !late)
            good++;
        else if (vuf_sense_is(&r, 5, 0x25, 0x00) || r.response == VUF_SCSI_S_BAD_TARGET)
            gone++;             /* taken after the removal (an iothread may pop them after
                                 * the control thread ran device_del): LOGICAL UNIT NOT
                                 * SUPPORTED, or no such target once its last LUN left */
        else {
            other++;
            fprintf(stderr, "  command %u: %s\n", i, res_str(&r));
        }
    }
    CHECK_EQ(other, 0);
    *refused += gone;
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 1, 7, 2);
    /* 0:0 is untouched by all this */
    CHECK_EQ(tur(h, 0, 0, &r), 0);
    CHECK(r.status == VUF_SAM_GOOD || vuf_sense_is(&r, 6, 0x3f, 0x0e));
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    /* re-attach: each block of a write either has this round's data or the
     * previous content; never anything else */
    QMP_OK(q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'fl',"
              " 'scsi-id': 1, 'lun': 7, 'id': 'fld'}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 1, 7, 1);
    CHECK_EQ(vuf_scsi_clear_ua(h, 1, 7), 0);
    {
        static uint8_t rd[BLOCKS * BS], want[BS];
        unsigned bad = 0;
        for (unsigned i = 0; i < N / 2; i++) {
            rw10(h, 1, 7, false, i * BLOCKS, BLOCKS, rd);
            for (unsigned b = 0; b < BLOCKS; b++) {
                uint64_t off = (uint64_t)i * sizeof(rd) + b * BS;
                bool ok = false;
                for (uint32_t s = 21; s <= seed && !ok; s = s == 21 ? 100 : s + 1) {
                    vuf_pattern(want, BS, off, s);
                    ok = !memcmp(rd + b * BS, want, BS);
                }
                bad += !ok;
            }
        }
        CHECK_EQ(bad, 0);
    }
    QMP_OK(q, "{'execute': 'device_del', 'arguments': {'id': 'fld'}}");
    CHECK(qmp_wait_event(q, "DEVICE_DELETED", "\"fld\"", 5000));
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 1, 7, 2);
    fprintf(stderr, "  round %u (%s %u us): %u completed, %u refused, removal %s\n", round,
            freeze ? "frozen daemon," : "delay", delay_us, good, gone,
            deferred ? "waited for commands in flight" : "immediate");
    return deferred;
}

static void test_unplug_inflight(void)
{
    static const bool freeze[] = { true, true, false, false };
    static const unsigned delays[] = { 0, 0, 0, 300 };
    struct vuf *h = event_session(8);
    struct qmpc q;
    char img[192];
    unsigned deferred = 0, refused = 0, rounds = 0;
    (void)rounds;

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    make_image("fl.img", 16 << 20, 21, img, sizeof(img));
    QMP_OK(&q, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'fl', 'driver': 'raw',"
               " 'file': {'driver': 'file', 'filename': '%s'}}}", img);
    for (unsigned i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        deferred += unplug_round(h, &q, i, freeze[i], delays[i], &refused);
        rounds++;
    }
    /* a frozen daemon sees the commands before device_del: some are in flight
     * then (with iothreads a race: only the per-command checks hold) */
    if (!iothreads_in_use())
        CHECK(deferred >= 1);
    QMP_OK(&q, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'fl'}}");
    qmp_close(&q);
    vuf_free(h);
}

static void test_resize(void)
{
    struct vuf *h = event_session(8);
    struct qmpc q;
    struct vuf_scsi_result r;
    char img[192], reply[1024];

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    make_image("rs.img", 4 << 20, 31, img, sizeof(img));
    QMP_OK(&q, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'rs', 'driver': 'raw',"
               " 'file': {'driver': 'file', 'filename': '%s'}}}", img);
    QMP_OK(&q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'rs',"
               " 'scsi-id': 0, 'lun': 2, 'id': 'rsd', 'logical_block_size': 4096}}");
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 0, 2, 1);
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 2), 0);
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    CHECK_EQ(capacity(h, 0, 2), 4 << 20);

    /* grow, by the device's id */
    QMP_OK(&q, "{'execute': 'block_resize', 'arguments': {'device': 'rsd', 'size': %llu}}", 12ull << 20);
    expect_event(h, VUF_SCSI_T_PARAM_CHANGE, 0, 2, 0x2a | 0x09 << 8);
    CHECK_EQ(tur(h, 0, 2, &r), 0);
    if (!vuf_sense_is(&r, 6, 0x2a, 0x09)) {
        fprintf(stderr, "  TUR after block_resize: %s (want UA 2A/09)\n", res_str(&r));
        CHECK(0);
    }
    CHECK_EQ(capacity(h, 0, 2), 12 << 20);
    /* other LUNs see nothing */
    CHECK_EQ(tur(h, 0, 0, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    /* shrink, by node-name */
    QMP_OK(&q, "{'execute': 'block_resize', 'arguments': {'node-name': 'rs', 'size': %llu}}", 2ull << 20);
    expect_event(h, VUF_SCSI_T_PARAM_CHANGE, 0, 2, 0x2a | 0x09 << 8);
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 2), 0);
    CHECK_EQ(capacity(h, 0, 2), 2 << 20);
    /* beyond the new end: LBA OUT OF RANGE */
    {
        uint8_t cdb[10], d[4096];
        vuf_cdb_rw10(cdb, false, (2 << 20) / 4096, 1);
        CHECK_EQ(vuf_scsi_cmd(h, 0, 2, cdb, 10, NULL, 0, d, sizeof(d), &r), 0);
        CHECK(vuf_sense_is(&r, 5, 0x21, 0x00));
    }
    /* the same size again: nothing to tell the guest */
    QMP_OK(&q, "{'execute': 'block_resize', 'arguments': {'node-name': 'rs', 'size': %llu}}", 2ull << 20);
    no_more_events(h);
    /* not a multiple of the 4096-byte blocks: refused, nothing changes */
    CHECK_EQ(qmp_do(&q, true, reply, sizeof(reply), "{'execute': 'block_resize', 'arguments':"
                    " {'node-name': 'rs', 'size': 5000}}"), -EIO);
    CHECK(strstr(reply, "multiple of 4096") != NULL);
    no_more_events(h);
    CHECK_EQ(capacity(h, 0, 2), 2 << 20);
    QMP_OK(&q, "{'execute': 'device_del', 'arguments': {'id': 'rsd'}}");
    CHECK(qmp_wait_event(&q, "DEVICE_DELETED", "\"rsd\"", 3000));
    expect_event(h, VUF_SCSI_T_TRANSPORT_RESET, 0, 2, 2);
    QMP_OK(&q, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'rs'}}");
    qmp_close(&q);
    vuf_free(h);
}

/* More hot-plugs than the device keeps events for while the guest posts no
 * buffer: once buffers come, a later event carries EVENTS_MISSED. */
static void test_events_missed(void)
{
    enum { N = 100 };
    struct vuf *h = event_session(0);
    struct qmpc q;
    struct vuf_scsi_event e;
    unsigned got = 0, missed = 0;

    if (!h)
        return;
    CHECK_EQ(qmp_open(&q), 0);
    for (unsigned i = 0; i < N; i++) {
        QMP_OK(&q, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'em%u', 'driver': 'null-co',"
                   " 'size': 1048576}}", i);
        QMP_OK(&q, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'em%u',"
                   " 'scsi-id': 4, 'lun': %u, 'id': 'emd%u'}}", i, i, i);
    }
    CHECK_EQ(vuf_scsi_event_post(h, 8), 0);
    while (vuf_scsi_event_get(h, &e, 300) == 1) {
        got++;
        if (e.event & VUF_SCSI_T_EVENTS_MISSED)
            missed++;
    }
    fprintf(stderr, "  %u hot-plugs: %u events delivered, %u with EVENTS_MISSED\n", N, got, missed);
    CHECK(got > 0 && got < N);
    CHECK(missed >= 1);
    /* the truth is in REPORT LUNS, which a rescan reads */
    {
        uint8_t cdb[12], d[8 + N * 8];
        struct vuf_scsi_result r;
        vuf_cdb_report_luns(cdb, sizeof(d));
        CHECK_EQ(vuf_scsi_cmd(h, 4, 0, cdb, 12, NULL, 0, d, sizeof(d), &r), 0);
        CHECK_EQ(be32(d), N * 8);
    }
    for (unsigned i = 0; i < N; i++) {
        QMP_OK(&q, "{'execute': 'device_del', 'arguments': {'id': 'emd%u'}}", i);
        QMP_OK(&q, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'em%u'}}", i);
    }
    qmp_close(&q);
    vuf_free(h);
}

int main(int argc, char **argv)
{
    static const char *extra[] = { "--qmp", g_qmp_path, NULL };

    snprintf(g_qmp_path, sizeof(g_qmp_path), "/tmp/vscsi-t-mgmt-%d.qmp", (int)getpid());
    start_daemon(argc, argv, disks, 1, extra);
    for (int i = 0; i < 100 && access(g_qmp_path, F_OK); i++)
        usleep(20000);
    RUN(test_hotplug_events);
    RUN(test_unplug_inflight);
    RUN(test_resize);
    RUN(test_events_missed);
    return finish();
}

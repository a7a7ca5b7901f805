/* vscsid basics through the vhost-user harness: negotiation, SPC/SBC basics,
 * ring layouts (indirect, EVENT_IDX, split headers, several regions), absent
 * targets and LUNs, TMF, stop/start, reset and reconnect.
 * Usage: t_basic [path-to-vscsid]  (or env VSCSID; skips with 77 without one) */
#include "t_common.h"

#include <pthread.h>

#define D0_SIZE (8ull << 20)
#define D1_SIZE (4ull << 20)
#define D2_SIZE (1ull << 20)

static const struct vuf_vscsid_disk disks[] = {
    { .size = D0_SIZE, .target = 0, .lun = 0 },
    { .size = D1_SIZE, .target = 0, .lun = 3 },
    { .size = D2_SIZE, .target = 2, .lun = 300 },     /* LUN >= 256: flat addressing */
};

static void test_negotiation(void)
{
    struct vuf *h = vuf_new(&(struct vuf_opts){ .num_queues = 4 });
    CHECK_EQ(vuf_connect(h, g_d.sock), 0);
    CHECK_EQ(vuf_negotiate(h), 0);
    uint64_t f = vuf_features_offered(h), pf = vuf_protocol_features_offered(h);
    fprintf(stderr, "  features 0x%llx protocol 0x%llx queues %llu mem slots %llu\n",
            (unsigned long long)f, (unsigned long long)pf,
            (unsigned long long)vuf_queue_num(h), (unsigned long long)vuf_max_mem_slots(h));
    CHECK(f & VUF_BIT(VUF_F_VERSION_1));
    CHECK(f & VUF_BIT(VUF_F_PROTOCOL_FEATURES));   /* QEMU requires it */
    CHECK(f & VUF_BIT(VUF_F_INDIRECT_DESC));
    CHECK(f & VUF_BIT(VUF_F_EVENT_IDX));
    CHECK(pf & VUF_BIT(VUF_PF_MQ));                 /* QEMU >= 8.2 asks GET_QUEUE_NUM */
    CHECK(vuf_queue_num(h) >= 4);
    CHECK_EQ(vuf_start(h), 0);
    CHECK_EQ(vuf_num_queues(h), 4);
    vuf_free(h);
}

static void test_inquiry(void)
{
    struct vuf_opts o = { 0 };
    struct vuf *h = session_opts(&o, false);   /* INQUIRY must work with a UA pending */
    if (!h)
        return;
    uint8_t cdb[6], d[96];
    struct vuf_scsi_result r;
    vuf_cdb_inquiry(cdb, false, 0, 36);
    memset(d, 0xee, sizeof(d));
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, d, 36, &r), 0);
    CHECK_EQ(r.response, VUF_SCSI_S_OK);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK(!r.canary_hit);
    CHECK_EQ(d[0], 0x00);                /* connected direct-access block device */
    CHECK(d[4] >= 31);                   /* additional length */
    for (int i = 8; i < 36; i++)         /* T10 vendor, product, revision: ASCII */
        CHECK(d[i] >= 0x20 && d[i] < 0x7f);
    CHECK(r.used_len >= sizeof(struct vuf_scsi_cmd_resp) - VUF_SCSI_SENSE_SIZE);
    /* allocation length larger than the data: resid reports the rest */
    vuf_cdb_inquiry(cdb, false, 0, 96);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, d, 96, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK(r.resid <= 96 - 36);
    /* the other LUNs, one of them with flat (0x40) addressing above 255 */
    vuf_cdb_inquiry(cdb, false, 0, 36);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 3, cdb, 6, NULL, 0, d, 36, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(d[0], 0x00);
    CHECK_EQ(vuf_scsi_cmd(h, 2, 300, cdb, 6, NULL, 0, d, 36, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(d[0], 0x00);
    /* peripheral addressing (lun[2] = 0) names the same LUN for lun < 256 */
    uint8_t lun[8];
    vuf_scsi_lun_periph(lun, 0, 3);
    struct vuf_scsi_io io = { .lun_raw = lun, .cdb = cdb, .cdb_len = 6, .data_in = d, .in_len = 36 };
    CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(d[0], 0x00);
    /* VPD page 0 lists page 0 */
    vuf_cdb_inquiry(cdb, true, 0, 64);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, d, 64, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(d[1], 0x00);
    CHECK_EQ(d[4], 0x00);
    vuf_free(h);
}

static void test_tur_unit_attention(void)
{
    struct vuf_opts o = { 0 };
    struct vuf *h = session_opts(&o, false);
    if (!h)
        return;
    uint8_t cdb[6];
    struct vuf_scsi_result r;
    vuf_cdb_tur(cdb);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, NULL, 0, &r), 0);
    if (!vuf_sense_is(&r, 6, 0x29, 0x00)) {
        fprintf(stderr, "  first TUR: %s (want UA 6/29/00)\n", res_str(&r));
        CHECK(0);
    }
    CHECK(r.sense_len >= 14 || (r.sense[0] & 0x7f) >= 0x72);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, NULL, 0, &r), 0);
    if (r.status != VUF_SAM_GOOD)
        fprintf(stderr, "  second TUR: %s (want GOOD)\n", res_str(&r));
    CHECK_EQ(r.response, VUF_SCSI_S_OK);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(r.sense_len, 0);
    vuf_free(h);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_read_capacity(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t cdb[16], d[32];
    struct vuf_scsi_result r;
    vuf_cdb_read_capacity16(cdb, 32);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 16, NULL, 0, d, 32, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(be64(d), D0_SIZE / BS - 1);
    CHECK_EQ(be32(d + 8), BS);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 3, cdb, 16, NULL, 0, d, 32, &r), 0);
    CHECK_EQ(be64(d), D1_SIZE / BS - 1);
    /* READ CAPACITY(10) */
    memset(cdb, 0, 10);
    cdb[0] = 0x25;
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 10, NULL, 0, d, 8, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(be32(d), D0_SIZE / BS - 1);
    CHECK_EQ(be32(d + 4), BS);
    vuf_free(h);
}

static void test_report_luns(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t cdb[12], d[256];
    struct vuf_scsi_result r;
    vuf_cdb_report_luns(cdb, sizeof(d));
    memset(d, 0xee, sizeof(d));
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 12, NULL, 0, d, sizeof(d), &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(be32(d), 16);               /* LUN 0 and 3 */
    static const uint8_t l0[8] = { 0 }, l3[8] = { 0, 3 };
    CHECK((!memcmp(d + 8, l0, 8) && !memcmp(d + 16, l3, 8)) ||
          (!memcmp(d + 8, l3, 8) && !memcmp(d + 16, l0, 8)));
    /* target 2 has no LUN 0, yet LUN 0 answers REPORT LUNS (SPC-4 4.6.3) */
    memset(d, 0xee, sizeof(d));
    CHECK_EQ(vuf_scsi_cmd(h, 2, 0, cdb, 12, NULL, 0, d, sizeof(d), &r), 0);
    CHECK_EQ(r.response, VUF_SCSI_S_OK);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(be32(d), 8);
    static const uint8_t l300[8] = { 0x41, 0x2c };   /* flat space addressing */
    CHECK_MEM(d + 8, l300, 8);
    vuf_free(h);
}

/* Write pattern, read it back, and check the image file and its neighbours. */
static void check_rw(struct vuf *h, unsigned disk, uint32_t lba, uint16_t blocks, uint32_t seed)
{
    unsigned t = disks[disk].target, l = disks[disk].lun;
    size_t len = (size_t)blocks * BS;
    uint8_t *w = malloc(len), *rd = malloc(len);
    vuf_pattern(w, len, (uint64_t)lba * BS, seed);
    rw10(h, t, l, true, lba, blocks, w);
    memset(rd, 0, len);
    rw10(h, t, l, false, lba, blocks, rd);
    CHECK_MEM(rd, w, len);
    uint8_t cdb[10];
    struct vuf_scsi_result r;
    vuf_cdb_sync_cache10(cdb);
    CHECK_EQ(vuf_scsi_cmd(h, t, l, cdb, 10, NULL, 0, NULL, 0, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(vuf_file_cmp(g_d.img[disk], (uint64_t)lba * BS, w, len), 0);
    free(w);
    free(rd);
}

static void test_write_read(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t before[BS], after[BS];
    disk_pattern(0, before, BS, 99 * BS);
    disk_pattern(0, after, BS, 108 * BS);
    check_rw(h, 0, 100, 8, 1);
    /* neighbours untouched, on disk and through READ */
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 99 * BS, before, BS), 0);
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 108 * BS, after, BS), 0);
    uint8_t d[BS];
    rw10(h, 0, 0, false, 99, 1, d);
    CHECK_MEM(d, before, BS);
    /* the last blocks, READ/WRITE(16), another LUN, a big transfer */
    uint64_t last = D0_SIZE / BS - 4;
    uint8_t w[4 * BS], rd[4 * BS], cdb[16];
    struct vuf_scsi_result r;
    vuf_pattern(w, sizeof(w), last * BS, 2);
    vuf_cdb_rw16(cdb, true, last, 4);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 16, w, sizeof(w), NULL, 0, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    vuf_cdb_rw16(cdb, false, last, 4);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 16, NULL, 0, rd, sizeof(rd), &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_MEM(rd, w, sizeof(w));
    check_rw(h, 1, 7, 3, 3);
    check_rw(h, 2, 1, 1, 4);
    check_rw(h, 0, 2048, 256, 5);        /* 128 KiB */
    /* untouched data reads as the image's initial pattern */
    uint8_t e[8 * BS], g[8 * BS];
    disk_pattern(1, e, sizeof(e), 4000 * BS);
    rw10(h, 0, 3, false, 4000, 8, g);
    CHECK_MEM(g, e, sizeof(e));
    vuf_free(h);
}

static void test_multi_queue(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    CHECK_EQ(vuf_num_queues(h), 4);
    enum { N = 16 };
    struct vuf_scsi_req *rq[2 * N];
    static uint8_t wbuf[N][4 * BS], rbuf[N][4 * BS], exp[N][4 * BS];
    uint8_t cdb[2 * N][10];
    for (unsigned i = 0; i < N; i++) {
        /* reads of initial data on queue 2, writes on queue 3 */
        disk_pattern(0, exp[i], sizeof(exp[i]), (uint64_t)(6000 + i * 4) * BS);
        vuf_cdb_rw10(cdb[i], false, 6000 + i * 4, 4);
        struct vuf_scsi_io rio = { .vq = 2, .cdb = cdb[i], .cdb_len = 10, .data_in = rbuf[i],
                                   .in_len = sizeof(rbuf[i]), .flags = VUF_IO_NO_KICK };
        rq[i] = vuf_scsi_submit(h, &rio);
        CHECK(rq[i] != NULL);
        vuf_pattern(wbuf[i], sizeof(wbuf[i]), (uint64_t)(7000 + i * 4) * BS, 9);
        vuf_cdb_rw10(cdb[N + i], true, 7000 + i * 4, 4);
        struct vuf_scsi_io wio = { .vq = 3, .cdb = cdb[N + i], .cdb_len = 10, .data_out = wbuf[i],
                                   .out_len = sizeof(wbuf[i]), .flags = VUF_IO_NO_KICK };
        rq[N + i] = vuf_scsi_submit(h, &wio);
        CHECK(rq[N + i] != NULL);
    }
    vuf_vq_kick(h, 2);
    vuf_vq_kick(h, 3);
    for (unsigned i = 0; i < 2 * N; i++) {
        struct vuf_scsi_result r;
        if (!rq[i])
            continue;
        CHECK_EQ(vuf_scsi_complete(h, rq[i], &r, 0), 0);
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        CHECK(!r.canary_hit);
    }
    for (unsigned i = 0; i < N; i++) {
        CHECK_MEM(rbuf[i], exp[i], sizeof(exp[i]));
        uint8_t d[4 * BS];
        rw10(h, 0, 0, false, 7000 + i * 4, 4, d);
        CHECK_MEM(d, wbuf[i], sizeof(d));
    }
    vuf_free(h);
}

static void test_indirect(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    CHECK(vuf_has_feature(h, VUF_F_INDIRECT_DESC));
    uint8_t w[16 * BS], rd[16 * BS], cdb[10];
    struct vuf_scsi_result r;
    vuf_pattern(w, sizeof(w), 300 * BS, 21);
    vuf_cdb_rw10(cdb, true, 300, 16);
    struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 10, .data_out = w, .out_len = sizeof(w),
                              .segs = 16, .flags = VUF_IO_INDIRECT };
    CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    vuf_cdb_rw10(cdb, false, 300, 16);
    io = (struct vuf_scsi_io){ .cdb = cdb, .cdb_len = 10, .data_in = rd, .in_len = sizeof(rd),
                               .segs = 5, .flags = VUF_IO_INDIRECT, .vq = 3 };
    CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_MEM(rd, w, sizeof(w));
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 300 * BS, w, sizeof(w)), 0);
    vuf_free(h);
}

static void test_split_header(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    static const unsigned modes[] = { VUF_IO_SPLIT_HDR, VUF_IO_SPLIT_HDR | VUF_IO_INDIRECT,
                                      VUF_IO_COMBINED, VUF_IO_COMBINED | VUF_IO_INDIRECT };
    for (unsigned m = 0; m < 4; m++) {
        uint8_t cdb[10], d[36], w[4 * BS], rd[4 * BS];
        struct vuf_scsi_result r;
        vuf_cdb_inquiry(cdb, false, 0, 36);
        struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 6, .data_in = d, .in_len = 36,
                                  .flags = modes[m] };
        CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
        CHECK_EQ(r.response, VUF_SCSI_S_OK);
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        CHECK_EQ(d[0], 0);
        uint32_t lba = 400 + m * 4;
        vuf_pattern(w, sizeof(w), (uint64_t)lba * BS, 30 + m);
        vuf_cdb_rw10(cdb, true, lba, 4);
        io = (struct vuf_scsi_io){ .cdb = cdb, .cdb_len = 10, .data_out = w, .out_len = sizeof(w),
                                   .segs = 2, .flags = modes[m] };
        CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        vuf_cdb_rw10(cdb, false, lba, 4);
        io = (struct vuf_scsi_io){ .cdb = cdb, .cdb_len = 10, .data_in = rd, .in_len = sizeof(rd),
                                   .segs = 3, .flags = modes[m] };
        CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        CHECK(!r.canary_hit);
        CHECK_MEM(rd, w, sizeof(w));
        CHECK_EQ(vuf_file_cmp(g_d.img[0], (uint64_t)lba * BS, w, sizeof(w)), 0);
        /* a CHECK CONDITION's sense must land across the split response too */
        uint8_t bad[10] = { 0x28, 0, 0xff, 0xff, 0xff, 0xf0, 0, 0, 1, 0 };
        io = (struct vuf_scsi_io){ .cdb = bad, .cdb_len = 10, .data_in = rd, .in_len = BS,
                                   .flags = modes[m] };
        CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
        if (!vuf_sense_is(&r, 5, 0x21, 0x00)) {
            fprintf(stderr, "  mode %u READ past the end: %s\n", m, res_str(&r));
            CHECK(0);
        }
    }
    vuf_free(h);
}

/* Many commands with EVENT_IDX: kicks only when the device asks (avail_event),
 * interrupts only past used_event. */
static void test_event_idx(void)
{
    struct vuf_opts o = { .features = VUF_FEATURES_DEFAULT | VUF_BIT(VUF_F_EVENT_IDX) };
    struct vuf *h = session_opts(&o, true);
    if (!h)
        return;
    CHECK(vuf_has_feature(h, VUF_F_EVENT_IDX));
    uint8_t cdb[10], w[BS], rd[BS];
    struct vuf_scsi_result r;
    /* one at a time, 300 commands: wraps the 128-entry rings twice */
    for (unsigned i = 0; i < 300; i++) {
        unsigned vq = 2 + (i & 1);
        uint32_t lba = 1000 + (i % 64);
        vuf_pattern(w, BS, (uint64_t)lba * BS, 100 + i);
        vuf_cdb_rw10(cdb, true, lba, 1);
        struct vuf_scsi_io io = { .vq = vq, .cdb = cdb, .cdb_len = 10, .data_out = w, .out_len = BS,
                                  .timeout_ms = 2000 };
        int rc = vuf_scsi_do(h, &io, &r);
        if (rc) {
            fprintf(stderr, "  write %u on vq %u: %s (avail_event %u, used idx %u)\n", i, vq,
                    strerror(-rc), vuf_vq_avail_event(h, vq), vuf_vq_used_idx(h, vq));
            CHECK_EQ(rc, 0);
            break;
        }
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        vuf_cdb_rw10(cdb, false, lba, 1);
        io = (struct vuf_scsi_io){ .vq = vq, .cdb = cdb, .cdb_len = 10, .data_in = rd, .in_len = BS,
                                   .timeout_ms = 2000 };
        rc = vuf_scsi_do(h, &io, &r);
        CHECK_EQ(rc, 0);
        if (rc)
            break;
        CHECK_MEM(rd, w, BS);
    }
    /* batches of 32 with one kick each */
    for (unsigned b = 0; b < 8; b++) {
        struct vuf_scsi_req *rq[32];
        static uint8_t bufs[32][BS];
        uint8_t cdbs[32][10];
        for (unsigned i = 0; i < 32; i++) {
            vuf_cdb_rw10(cdbs[i], false, 2000 + i, 1);
            struct vuf_scsi_io io = { .vq = 2, .cdb = cdbs[i], .cdb_len = 10, .data_in = bufs[i],
                                      .in_len = BS, .flags = VUF_IO_NO_KICK };
            rq[i] = vuf_scsi_submit(h, &io);
        }
        vuf_vq_kick(h, 2);
        for (unsigned i = 0; i < 32; i++) {
            if (!rq[i] || vuf_scsi_complete(h, rq[i], &r, 2000)) {
                CHECK(0);
                fprintf(stderr, "  batch %u request %u did not complete\n", b, i);
                break;
            }
            uint8_t e[BS];
            disk_pattern(0, e, BS, (uint64_t)(2000 + i) * BS);
            CHECK_MEM(bufs[i], e, BS);
        }
    }
    /* the device asks for kicks by moving avail_event along */
    CHECK(vuf_vq_avail_event(h, 2) != 0);
    vuf_free(h);
}

/* Benchmark style: no interrupts, the driver polls the used ring. */
static void test_polling(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    vuf_vq_set_interrupts(h, 2, false);
    uint8_t cdb[10], d[BS];
    unsigned ok = 0;
    for (unsigned i = 0; i < 100; i++) {
        vuf_cdb_rw10(cdb, false, i, 1);
        struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 10, .data_in = d, .in_len = BS };
        struct vuf_scsi_req *rq = vuf_scsi_submit(h, &io);
        if (!rq)
            break;
        int64_t deadline = vuf_now_ms() + 5000;
        while (!vuf_scsi_req_done(rq) && vuf_now_ms() < deadline)
            if (vuf_scsi_reap(h, 2) < 0)
                break;
        if (!vuf_scsi_req_done(rq))
            break;
        struct vuf_scsi_result r;
        CHECK_EQ(vuf_scsi_complete(h, rq, &r, 0), 0);
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        ok++;
    }
    CHECK_EQ(ok, 100);
    vuf_free(h);
}

static void test_queue_depth(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    enum { N = 128 };
    static uint8_t bufs[N][8 * BS];
    static uint8_t cdbs[N][10];
    struct vuf_scsi_req *rq[N];
    for (unsigned i = 0; i < N; i++) {
        vuf_cdb_rw10(cdbs[i], false, i * 8, 8);
        struct vuf_scsi_io io = { .cdb = cdbs[i], .cdb_len = 10, .data_in = bufs[i],
                                  .in_len = sizeof(bufs[i]), .flags = VUF_IO_INDIRECT | VUF_IO_NO_KICK };
        rq[i] = vuf_scsi_submit(h, &io);
        CHECK(rq[i] != NULL);
    }
    CHECK_EQ(vuf_vq_num_free(h, 2), 0);
    vuf_vq_kick(h, 2);
    for (unsigned i = 0; i < N; i++) {
        struct vuf_scsi_result r;
        if (!rq[i] || vuf_scsi_complete(h, rq[i], &r, 0)) {
            CHECK(0);
            break;
        }
        CHECK_EQ(r.status, VUF_SAM_GOOD);
    }
    vuf_free(h);
}

static void test_bad_target(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    static const unsigned targets[] = { 1, 3, 255 };
    for (unsigned i = 0; i < 3; i++) {
        uint8_t cdb[6], d[36];
        struct vuf_scsi_result r;
        vuf_cdb_inquiry(cdb, false, 0, 36);
        CHECK_EQ(vuf_scsi_cmd(h, targets[i], 0, cdb, 6, NULL, 0, d, 36, &r), 0);
        CHECK_EQ(r.response, VUF_SCSI_S_BAD_TARGET);
        vuf_cdb_tur(cdb);
        CHECK_EQ(vuf_scsi_cmd(h, targets[i], 0, cdb, 6, NULL, 0, NULL, 0, &r), 0);
        CHECK_EQ(r.response, VUF_SCSI_S_BAD_TARGET);
    }
    /* lun[0] != 1 is no target either */
    uint8_t lun[8] = { 2, 0, 0x40, 0 }, cdb[6];
    struct vuf_scsi_result r;
    vuf_cdb_tur(cdb);
    struct vuf_scsi_io io = { .lun_raw = lun, .cdb = cdb, .cdb_len = 6 };
    CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
    CHECK_EQ(r.response, VUF_SCSI_S_BAD_TARGET);
    /* a TMF for an absent target */
    uint8_t resp = 0xff;
    CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_LOGICAL_UNIT_RESET, 1, 0, 0, &resp), 0);
    CHECK_EQ(resp, VUF_SCSI_S_BAD_TARGET);
    vuf_free(h);
}

static void test_absent_lun(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t cdb[10], d[36];
    struct vuf_scsi_result r;
    static const unsigned luns[] = { 1, 5, 255, 256, 16383 };
    for (unsigned i = 0; i < 5; i++) {
        vuf_cdb_inquiry(cdb, false, 0, 36);
        memset(d, 0xee, sizeof(d));
        CHECK_EQ(vuf_scsi_cmd(h, 0, luns[i], cdb, 6, NULL, 0, d, 36, &r), 0);
        CHECK_EQ(r.response, VUF_SCSI_S_OK);
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        CHECK_EQ(d[0], 0x7f);            /* PQ 3, type 1Fh: no LUN here */
        vuf_cdb_tur(cdb);
        CHECK_EQ(vuf_scsi_cmd(h, 0, luns[i], cdb, 6, NULL, 0, NULL, 0, &r), 0);
        if (!vuf_sense_is(&r, 5, 0x25, 0x00)) {
            fprintf(stderr, "  TUR on 0:%u: %s (want 5/25/00)\n", luns[i], res_str(&r));
            CHECK(0);
        }
        vuf_cdb_rw10(cdb, false, 0, 1);
        CHECK_EQ(vuf_scsi_cmd(h, 0, luns[i], cdb, 10, NULL, 0, d, 36, &r), 0);
        CHECK(vuf_sense_is(&r, 5, 0x25, 0x00));
    }
    /* LUN 300 exists on target 2, not on target 0 */
    vuf_cdb_tur(cdb);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 300, cdb, 6, NULL, 0, NULL, 0, &r), 0);
    CHECK(vuf_sense_is(&r, 5, 0x25, 0x00));
    vuf_free(h);
}

static void test_tmf(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t resp = 0xff;
    CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_LOGICAL_UNIT_RESET, 0, 0, 0, &resp), 0);
    CHECK_EQ(resp, VUF_SCSI_S_FUNCTION_COMPLETE);
    /* after the reset: at most a reset UA (29/xx), then GOOD */
    uint8_t cdb[6];
    struct vuf_scsi_result r;
    vuf_cdb_tur(cdb);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, NULL, 0, &r), 0);
    if (r.status != VUF_SAM_GOOD) {
        if (vuf_sense_key(&r) != 6 || vuf_sense_asc(&r) != 0x29) {
            fprintf(stderr, "  TUR after LU reset: %s\n", res_str(&r));
            CHECK(0);
        }
        CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 6, NULL, 0, NULL, 0, &r), 0);
    }
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    /* ABORT TASK for a tag nobody used: nothing to abort, still complete */
    resp = 0xff;
    CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_ABORT_TASK, 0, 0, 0xdeadbeef, &resp), 0);
    CHECK(resp == VUF_SCSI_S_FUNCTION_COMPLETE || resp == VUF_SCSI_S_FUNCTION_SUCCEEDED);
    /* I/O still works */
    uint8_t d[BS], e[BS];
    disk_pattern(0, e, BS, 5000 * BS);
    vuf_scsi_clear_ua(h, 0, 0);
    rw10(h, 0, 0, false, 5000, 1, d);
    CHECK_MEM(d, e, BS);
    vuf_free(h);
}

/* Raw chain: header, data and response each where the caller put them. */
static int raw_rw(struct vuf *h, bool write, uint32_t lba, uint16_t blocks, uint64_t hdr_gpa,
                  uint64_t data_gpa, uint64_t resp_gpa)
{
    struct vuf_scsi_cmd_req *req = vuf_ptr(h, hdr_gpa, sizeof(*req));
    struct vuf_scsi_cmd_resp *resp = vuf_ptr(h, resp_gpa, sizeof(*resp));
    uint8_t cdb[10], lun[8];
    vuf_scsi_lun(lun, 0, 0);
    vuf_cdb_rw10(cdb, write, lba, blocks);
    vuf_scsi_fill_req(req, lun, 77, cdb, 10);
    memset(resp, 0xcc, sizeof(*resp));
    struct vuf_sg sg[3] = { { hdr_gpa, sizeof(*req), false },
                            { write ? data_gpa : resp_gpa, write ? blocks * BS : sizeof(*resp), !write },
                            { write ? resp_gpa : data_gpa, write ? sizeof(*resp) : blocks * BS, true } };
    if (vuf_vq_add(h, 2, sg, 3, req, 0) < 0)
        return -ENOSPC;
    vuf_vq_kick(h, 2);
    if (vuf_vq_wait_token(h, 2, req, NULL, 5000) != 1)
        return -ETIMEDOUT;
    return resp->response == 0 && resp->status == 0 ? 0 : -EIO;
}

static void test_multi_region(void)
{
    /* three regions in one memfd at offsets 1 MiB + k*size, gpa holes, reversed qva */
    struct vuf_opts o = { .num_regions = 3, .one_memfd = true, .mmap_offset = 1 << 20 };
    struct vuf *h = session_opts(&o, true);
    if (!h)
        return;
    for (unsigned k = 0; k < 3; k++) {
        uint64_t hg = vuf_alloc_in(h, (k + 1) % 3, 64, 16);
        uint64_t dg = vuf_alloc_in(h, k, 8 * BS, 512);
        uint64_t rg = vuf_alloc_in(h, (k + 2) % 3, 128, 16);
        uint8_t *dp = vuf_ptr(h, dg, 8 * BS);
        uint32_t lba = 3000 + k * 8;
        vuf_pattern(dp, 8 * BS, (uint64_t)lba * BS, 50 + k);
        CHECK_EQ(raw_rw(h, true, lba, 8, hg, dg, rg), 0);
        CHECK_EQ(vuf_file_cmp(g_d.img[0], (uint64_t)lba * BS, dp, 8 * BS), 0);
        uint8_t w[8 * BS];
        memcpy(w, dp, sizeof(w));
        memset(dp, 0, 8 * BS);
        CHECK_EQ(raw_rw(h, false, lba, 8, hg, dg, rg), 0);
        CHECK_MEM(dp, w, sizeof(w));
    }
    vuf_free(h);
}

/* Two gpa-contiguous regions (separate memfds): a buffer may cross them. */
static void test_straddle(void)
{
    struct vuf_opts o = { .num_regions = 2, .gpa_contiguous = true, .mem_size = 32 << 20 };
    struct vuf *h = session_opts(&o, true);
    if (!h)
        return;
    const struct vuf_region *r0 = vuf_region(h, 0), *r1 = vuf_region(h, 1);
    CHECK_EQ(r0->gpa + r0->size, r1->gpa);
    uint64_t g = r1->gpa - 2048;
    uint8_t want[8 * BS];
    vuf_pattern(want, sizeof(want), 3100ull * BS, 60);
    memcpy(r0->hva + r0->size - 2048, want, 2048);
    memcpy(r1->hva, want + 2048, sizeof(want) - 2048);
    /* header and response at the start of region 0, far from the straddling buffer */
    uint64_t hg = vuf_alloc_in(h, 0, 64, 16), rg = vuf_alloc_in(h, 0, 128, 16);
    int rc = raw_rw(h, true, 3100, 8, hg, g, rg);
    if (rc)
        fprintf(stderr, "  write from a buffer crossing two regions: %s\n", strerror(-rc));
    CHECK_EQ(rc, 0);
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 3100ull * BS, want, sizeof(want)), 0);
    memset(r0->hva + r0->size - 2048, 0, 2048);
    memset(r1->hva, 0, sizeof(want) - 2048);
    if (rc == 0) {
        CHECK_EQ(raw_rw(h, false, 3100, 8, hg, g, rg), 0);
        CHECK_MEM(r0->hva + r0->size - 2048, want, 2048);
        CHECK_MEM(r1->hva, want + 2048, sizeof(want) - 2048);
    }
    vuf_free(h);
}

static void test_add_mem_reg(void)
{
    struct vuf_opts o = { .num_regions = 2, .add_mem_reg = true };
    struct vuf *h = session_opts(&o, true);
    if (!h)
        return;
    if (!vuf_has_protocol_feature(h, VUF_PF_CONFIGURE_MEM_SLOTS))
        fprintf(stderr, "  CONFIGURE_MEM_SLOTS not offered: SET_MEM_TABLE was used\n");
    else
        CHECK(vuf_max_mem_slots(h) >= 2);
    uint64_t hg = vuf_alloc_in(h, 1, 64, 16), dg = vuf_alloc_in(h, 1, BS, 512);
    uint64_t rg = vuf_alloc_in(h, 0, 128, 16);
    vuf_pattern(vuf_ptr(h, dg, BS), BS, 3200ull * BS, 70);
    CHECK_EQ(raw_rw(h, true, 3200, 1, hg, dg, rg), 0);
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 3200ull * BS, vuf_ptr(h, dg, BS), BS), 0);
    vuf_free(h);
}

static void test_stop_start(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t d[BS];
    for (int i = 0; i < 5; i++)
        rw10(h, 0, 0, false, i, 1, d);
    uint16_t used = vuf_vq_used_idx(h, 2);
    CHECK_EQ(vuf_stop(h), 0);
    CHECK_EQ(vuf_vq_last_base(h, 2), used);     /* everything popped was completed */
    CHECK_EQ(vuf_vq_last_base(h, 3), 0);
    CHECK_EQ(vuf_start(h), 0);
    check_rw(h, 0, 3300, 2, 80);
    CHECK_EQ(vuf_stop(h), 0);
    CHECK_EQ(vuf_start(h), 0);
    check_rw(h, 0, 3302, 2, 81);
    /* one queue alone, the others keep running */
    CHECK_EQ(vuf_stop_queue(h, 2), 0);
    CHECK_EQ(vuf_vq_last_base(h, 2), vuf_vq_used_idx(h, 2));
    uint8_t cdb[10], d2[BS];
    struct vuf_scsi_result r;
    vuf_cdb_rw10(cdb, false, 3302, 1);
    struct vuf_scsi_io io = { .vq = 3, .cdb = cdb, .cdb_len = 10, .data_in = d2, .in_len = BS };
    CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(vuf_start_queue(h, 2), 0);
    check_rw(h, 0, 3304, 2, 82);
    vuf_free(h);
}

static void test_reset_device(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    if (!vuf_has_protocol_feature(h, VUF_PF_RESET_DEVICE))
        fprintf(stderr, "  RESET_DEVICE not offered: RESET_OWNER used\n");
    check_rw(h, 0, 3400, 1, 90);
    CHECK_EQ(vuf_stop(h), 0);
    CHECK_EQ(vuf_reset_device(h), 0);
    CHECK_EQ(vuf_start(h), 0);
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    check_rw(h, 0, 3401, 1, 91);
    vuf_free(h);
}

static void test_reconnect(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    check_rw(h, 0, 3500, 4, 100);
    check_rw(h, 1, 3500, 4, 101);
    /* abrupt: the frontend goes away without stopping the rings */
    for (int i = 0; i < 5; i++) {
        vuf_close(h);
        CHECK_EQ(vuf_open(h, g_d.sock), 0);
        CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
        CHECK_EQ(vuf_scsi_clear_ua(h, 0, 3), 0);
        uint8_t d[4 * BS], e[4 * BS];
        vuf_pattern(e, sizeof(e), 3500ull * BS, 100);
        rw10(h, 0, 0, false, 3500, 4, d);
        CHECK_MEM(d, e, sizeof(e));
        vuf_pattern(e, sizeof(e), 3500ull * BS, 101);
        rw10(h, 0, 3, false, 3500, 4, d);         /* the daemon kept its LUNs */
        CHECK_MEM(d, e, sizeof(e));
        check_rw(h, 0, 3510 + i, 1, 110 + i);
    }
    /* clean: stop first, like QEMU on shutdown */
    CHECK_EQ(vuf_stop(h), 0);
    CHECK_EQ(vuf_reconnect(h), 0);
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    check_rw(h, 0, 3520, 1, 120);
    vuf_free(h);
    /* a fresh frontend (new memory, rings from 0) */
    check_serves();
}

/* QEMU stops the device with requests in flight: GET_VRING_BASE is answered
 * once everything popped has been completed; the rest resumes after start. */
static void test_stop_inflight(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    enum { N = 32 };
    static uint8_t bufs[N][8 * BS];
    uint8_t cdbs[N][10];
    struct vuf_scsi_req *rq[N];
    uint16_t used0 = vuf_vq_used_idx(h, 2);
    for (unsigned i = 0; i < N; i++) {
        vuf_cdb_rw10(cdbs[i], false, 1200 + i * 8, 8);
        struct vuf_scsi_io io = { .cdb = cdbs[i], .cdb_len = 10, .data_in = bufs[i],
                                  .in_len = sizeof(bufs[i]), .flags = VUF_IO_NO_KICK };
        rq[i] = vuf_scsi_submit(h, &io);
        CHECK(rq[i] != NULL);
    }
    vuf_vq_kick(h, 2);
    CHECK_EQ(vuf_stop(h), 0);
    uint16_t base = vuf_vq_last_base(h, 2), used = vuf_vq_used_idx(h, 2);
    fprintf(stderr, "  stopped with %u of %u requests popped\n", (uint16_t)(base - used0), N);
    CHECK_EQ(used, base);                /* every popped request completed before the answer */
    CHECK((uint16_t)(base - used0) <= N);
    CHECK_EQ(vuf_start(h), 0);
    vuf_vq_kick(h, 2);
    for (unsigned i = 0; i < N; i++) {
        struct vuf_scsi_result r;
        if (!rq[i] || vuf_scsi_complete(h, rq[i], &r, 0)) {
            CHECK(0);
            break;
        }
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        uint8_t e[8 * BS];
        disk_pattern(0, e, sizeof(e), (uint64_t)(1200 + i * 8) * BS);
        CHECK_MEM(bufs[i], e, sizeof(e));
    }
    CHECK_EQ(vuf_vq_inflight(h, 2), 0);
    vuf_free(h);
}

struct thr {
    struct vuf *h;
    unsigned vq;
    uint32_t lba;
    unsigned done;
};

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    uint8_t w[2 * BS], rd[2 * BS], cdb[10];
    for (unsigned i = 0; i < 200; i++) {
        uint32_t lba = t->lba + (i % 32) * 2;
        vuf_pattern(w, sizeof(w), (uint64_t)lba * BS, 500 + i + t->vq);
        struct vuf_scsi_result r;
        vuf_cdb_rw10(cdb, true, lba, 2);
        struct vuf_scsi_io io = { .vq = t->vq, .cdb = cdb, .cdb_len = 10, .data_out = w,
                                  .out_len = sizeof(w) };
        if (vuf_scsi_do(t->h, &io, &r) || r.status)
            break;
        vuf_cdb_rw10(cdb, false, lba, 2);
        io = (struct vuf_scsi_io){ .vq = t->vq, .cdb = cdb, .cdb_len = 10, .data_in = rd,
                                   .in_len = sizeof(rd) };
        if (vuf_scsi_do(t->h, &io, &r) || r.status || memcmp(rd, w, sizeof(w)))
            break;
        t->done++;
    }
    return NULL;
}

/* One thread per request queue, as a benchmark drives them. */
static void test_threads(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    struct thr t[2] = { { h, 2, 8000, 0 }, { h, 3, 9000, 0 } };
    pthread_t tid[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&tid[i], NULL, thr_main, &t[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(tid[i], NULL);
    CHECK_EQ(t[0].done, 200);
    CHECK_EQ(t[1].done, 200);
    vuf_free(h);
}

static void test_async_notification(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint32_t actual = 0xffffffff;
    uint8_t resp = 0xff;
    CHECK_EQ(vuf_scsi_an(h, VUF_SCSI_T_AN_QUERY, 0, 0, 0xfe, &actual, &resp), 0);
    fprintf(stderr, "  AN query: response %u event_actual 0x%x\n", resp, actual);
    CHECK(resp == VUF_SCSI_S_OK || resp == VUF_SCSI_S_FUNCTION_REJECTED);
    CHECK_EQ(vuf_scsi_an(h, VUF_SCSI_T_AN_SUBSCRIBE, 0, 0, 0xfe, &actual, &resp), 0);
    CHECK(resp == VUF_SCSI_S_OK || resp == VUF_SCSI_S_FUNCTION_REJECTED);
    vuf_free(h);
}

/* TMFs with commands in flight: when the TMF answer arrives, the affected
 * commands are already completed (the Linux driver relies on it). */
static void test_tmf_with_io(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    enum { N = 64 };
    static uint8_t bufs[N][64 * 1024];
    uint8_t cdbs[N][10];
    struct vuf_scsi_req *rq[N];
    for (int round = 0; round < 2; round++) {
        for (unsigned i = 0; i < N; i++) {
            vuf_cdb_rw10(cdbs[i], false, (i * 128) % (D0_SIZE / BS - 128), 128);
            struct vuf_scsi_io io = { .cdb = cdbs[i], .cdb_len = 10, .data_in = bufs[i],
                                      .in_len = sizeof(bufs[i]), .flags = VUF_IO_INDIRECT | VUF_IO_NO_KICK,
                                      .tag = 0x5000 + i };
            rq[i] = vuf_scsi_submit(h, &io);
            CHECK(rq[i] != NULL);
        }
        vuf_vq_kick(h, 2);
        uint8_t resp = 0xff;
        if (round == 0) {
            CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_LOGICAL_UNIT_RESET, 0, 0, 0, &resp), 0);
            CHECK_EQ(resp, VUF_SCSI_S_FUNCTION_COMPLETE);
        } else {
            CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_ABORT_TASK, 0, 0, 0x5000 + N / 2, &resp), 0);
            CHECK(resp == VUF_SCSI_S_FUNCTION_COMPLETE || resp == VUF_SCSI_S_FUNCTION_SUCCEEDED);
        }
        /* no waiting: what the TMF covered must be on the used ring now */
        CHECK(vuf_scsi_reap(h, 2) >= 0);
        unsigned done = 0;
        for (unsigned i = 0; i < N; i++)
            done += rq[i] && vuf_scsi_req_done(rq[i]);
        fprintf(stderr, "  %s: %u of %u commands completed when the TMF answered\n",
                round ? "ABORT TASK" : "LOGICAL UNIT RESET", done, N);
        if (round == 0)
            CHECK_EQ(done, N);
        else
            CHECK(rq[N / 2] && vuf_scsi_req_done(rq[N / 2]));
        for (unsigned i = 0; i < N; i++) {
            struct vuf_scsi_result r;
            if (!rq[i] || vuf_scsi_complete(h, rq[i], &r, 0)) {
                CHECK(0);
                continue;
            }
            CHECK(!r.canary_hit);
            /* data that was read is what the image holds (earlier cases wrote some) */
            if (r.response == VUF_SCSI_S_OK && r.status == VUF_SAM_GOOD)
                CHECK_EQ(vuf_file_cmp(g_d.img[0], (uint64_t)((i * 128) % (D0_SIZE / BS - 128)) * BS,
                                      bufs[i], sizeof(bufs[i])), 0);
        }
        vuf_scsi_clear_ua(h, 0, 0);
    }
    vuf_free(h);
}

/* QEMU sends a new memory table on memory hotplug, also with I/O in flight. */
static void test_mem_table_update(void)
{
    struct vuf_opts o = { .num_regions = 2 };
    struct vuf *h = session_opts(&o, true);
    if (!h)
        return;
    enum { N = 32 };
    static uint8_t bufs[N][16 * BS];
    uint8_t cdbs[N][10];
    struct vuf_scsi_req *rq[N];
    for (unsigned i = 0; i < N; i++) {
        vuf_cdb_rw10(cdbs[i], false, 2400 + i * 16, 16);
        struct vuf_scsi_io io = { .cdb = cdbs[i], .cdb_len = 10, .data_in = bufs[i],
                                  .in_len = sizeof(bufs[i]), .flags = VUF_IO_NO_KICK };
        rq[i] = vuf_scsi_submit(h, &io);
    }
    vuf_vq_kick(h, 2);
    CHECK_EQ(vuf_set_mem_table(h), 0);
    for (unsigned i = 0; i < N; i++) {
        struct vuf_scsi_result r;
        if (!rq[i] || vuf_scsi_complete(h, rq[i], &r, 0)) {
            CHECK(0);
            continue;
        }
        CHECK_EQ(r.status, VUF_SAM_GOOD);
        uint8_t e[16 * BS];
        disk_pattern(0, e, sizeof(e), (uint64_t)(2400 + i * 16) * BS);
        CHECK_MEM(bufs[i], e, sizeof(e));
    }
    check_rw(h, 0, 2900, 4, 130);
    vuf_free(h);
}

int main(int argc, char **argv)
{
    start_daemon(argc, argv, disks, 3, NULL);
    RUN(test_negotiation);
    RUN(test_inquiry);
    RUN(test_tur_unit_attention);
    RUN(test_read_capacity);
    RUN(test_report_luns);
    RUN(test_write_read);
    RUN(test_multi_queue);
    RUN(test_indirect);
    RUN(test_split_header);
    RUN(test_event_idx);
    RUN(test_polling);
    RUN(test_queue_depth);
    RUN(test_bad_target);
    RUN(test_absent_lun);
    RUN(test_tmf);
    RUN(test_async_notification);
    RUN(test_tmf_with_io);
    RUN(test_multi_region);
    RUN(test_straddle);
    RUN(test_add_mem_reg);
    RUN(test_mem_table_update);
    RUN(test_stop_start);
    RUN(test_stop_inflight);
    RUN(test_threads);
    RUN(test_reset_device);
    RUN(test_reconnect);
    return finish();
}

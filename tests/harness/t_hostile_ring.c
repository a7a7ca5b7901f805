/* A hostile guest driver: malformed descriptor chains, ring indices, headers
 * and CDBs. For each case the daemon must stay up; the bad request must be
 * refused (error response, broken queue or closed session, as the case says),
 * never written past its buffers; and a NEW session must work afterwards.
 * Usage: t_hostile_ring [path-to-vscsid]  (or env VSCSID) */
#include "t_common.h"

#include <pthread.h>

#define DISK_SIZE (4ull << 20)
#define OBSERVE_MS 1000

static const struct vuf_vscsid_disk disks[] = {
    { .size = DISK_SIZE, .target = 0, .lun = 0 },
    /* a big data-less disk with 4 KiB blocks: transfer lengths near 2^32 bytes */
    { .target = 1, .lun = 0, .device_opts = "logical_block_size=4096,physical_block_size=4096",
      .drive = "driver=null,size=64G" },
};

enum outcome { O_CLOSED, O_STUCK, O_DONE };
static const char *const outcome_str[] = { "session closed", "queue stuck", "COMPLETED" };

/* What became of the chain(s) just kicked on vq. */
static enum outcome observe(struct vuf *h, unsigned vq, uint32_t *id, uint32_t *len)
{
    int rc = vuf_vq_wait(h, vq, OBSERVE_MS);
    if (rc == 1 && vuf_vq_raw_get_used(h, vq, id, len) == 1)
        return O_DONE;
    if (rc == -ECONNRESET || vuf_peer_closed(h, 0))
        return O_CLOSED;
    return O_STUCK;
}

/* A malformed chain must not complete. When the session stays up, the
 * frontend must still be able to stop the device (QEMU does on guest reset):
 * GET_VRING_BASE answered, or the session closed then. */
static void expect_refused(struct vuf *h, unsigned vq, const char *what)
{
    uint32_t id = 0, len = 0;
    enum outcome o = observe(h, vq, &id, &len);
    if (o == O_DONE)
        fprintf(stderr, "  %s: %s (id %u len %u): a malformed chain was used\n", what,
                outcome_str[o], id, len);
    else
        fprintf(stderr, "  %s: %s\n", what, outcome_str[o]);
    CHECK(o != O_DONE);
    if (o == O_STUCK) {
        int rc = vuf_stop(h);
        if (rc && rc != -ECONNRESET)
            fprintf(stderr, "  %s: stopping the device afterwards: %s\n", what, strerror(-rc));
        CHECK(rc == 0 || rc == -ECONNRESET);
    }
}

static struct vuf *hsession(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20 };
    return session_opts(&o, true);
}

/* A valid READ(10) header + response in guest memory (data separately). */
struct req_bufs {
    uint64_t hdr, resp, data;
    uint8_t *data_p;
};

static struct req_bufs mk_read(struct vuf *h, uint32_t lba, uint16_t blocks)
{
    struct req_bufs b;
    b.hdr = vuf_alloc(h, 64, 64);
    b.resp = vuf_alloc(h, 128 + 64, 64);
    b.data = vuf_alloc(h, (uint64_t)blocks * BS + 64, 512);
    b.data_p = vuf_ptr(h, b.data, (uint64_t)blocks * BS + 64);
    uint8_t cdb[10], lun[8];
    vuf_cdb_rw10(cdb, false, lba, blocks);
    vuf_scsi_lun(lun, 0, 0);
    vuf_scsi_fill_req(vuf_ptr(h, b.hdr, 51), lun, 1, cdb, 10);
    memset(vuf_ptr(h, b.resp, 192), 0xa5, 192);
    memset(b.data_p, 0xa5, (uint64_t)blocks * BS + 64);
    return b;
}

static void set_desc(struct vuf *h, unsigned vq, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    struct vuf_desc *d = &vuf_vq_ring(h, vq)->desc[i];
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

static void fill_desc(struct vuf_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

static void test_desc_loop(void)
{
    /* a -> b -> c -> a; the second case a -> a */
    for (int v = 0; v < 2; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        struct req_bufs b = mk_read(h, 0, 1);
        uint16_t id[3];
        CHECK_EQ(vuf_vq_take_descs(h, 2, 3, id), 0);
        if (v == 0) {
            set_desc(h, 2, id[0], b.hdr, 51, VUF_DESC_F_NEXT, id[1]);
            set_desc(h, 2, id[1], b.resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, id[2]);
            set_desc(h, 2, id[2], b.data, BS, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, id[0]);
        } else {
            set_desc(h, 2, id[0], b.hdr, 51, VUF_DESC_F_NEXT, id[0]);
        }
        vuf_vq_raw_avail(h, 2, id[0]);
        vuf_vq_kick(h, 2);
        expect_refused(h, 2, v ? "self loop" : "3-descriptor loop");
        vuf_free(h);
    }
    /* and inside an indirect table */
    struct vuf *h = hsession();
    if (!h)
        return;
    struct req_bufs b = mk_read(h, 0, 1);
    uint64_t tg = vuf_alloc(h, 3 * 16, 16);
    struct vuf_desc *t = vuf_ptr(h, tg, 48);
    fill_desc(&t[0], b.hdr, 51, VUF_DESC_F_NEXT, 1);
    fill_desc(&t[1], b.resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, 2);
    fill_desc(&t[2], b.data, BS, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, 0);
    uint16_t id;
    CHECK_EQ(vuf_vq_take_descs(h, 2, 1, &id), 0);
    set_desc(h, 2, id, tg, 48, VUF_DESC_F_INDIRECT, 0);
    vuf_vq_raw_avail(h, 2, id);
    vuf_vq_kick(h, 2);
    expect_refused(h, 2, "loop in an indirect table");
    vuf_free(h);
    check_serves();
}

static void test_nested_indirect(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    struct req_bufs b = mk_read(h, 0, 1);
    uint64_t t2g = vuf_alloc(h, 32, 16), t1g = vuf_alloc(h, 32, 16);
    struct vuf_desc *t2 = vuf_ptr(h, t2g, 32), *t1 = vuf_ptr(h, t1g, 32);
    fill_desc(&t2[0], b.resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, 1);
    fill_desc(&t2[1], b.data, BS, VUF_DESC_F_WRITE, 0);
    fill_desc(&t1[0], b.hdr, 51, VUF_DESC_F_NEXT, 1);
    fill_desc(&t1[1], t2g, 32, VUF_DESC_F_INDIRECT, 0);
    uint16_t id;
    CHECK_EQ(vuf_vq_take_descs(h, 2, 1, &id), 0);
    set_desc(h, 2, id, t1g, 32, VUF_DESC_F_INDIRECT, 0);
    vuf_vq_raw_avail(h, 2, id);
    vuf_vq_kick(h, 2);
    expect_refused(h, 2, "indirect table inside an indirect table");
    vuf_free(h);

    /* an indirect descriptor that also has NEXT set, chained to a normal one */
    h = hsession();
    if (!h)
        return;
    b = mk_read(h, 0, 1);
    t1g = vuf_alloc(h, 16, 16);
    t1 = vuf_ptr(h, t1g, 16);
    fill_desc(&t1[0], b.hdr, 51, 0, 0);
    uint16_t ids[2];
    CHECK_EQ(vuf_vq_take_descs(h, 2, 2, ids), 0);
    set_desc(h, 2, ids[0], t1g, 16, VUF_DESC_F_INDIRECT | VUF_DESC_F_NEXT, ids[1]);
    set_desc(h, 2, ids[1], b.resp, 108, VUF_DESC_F_WRITE, 0);
    vuf_vq_raw_avail(h, 2, ids[0]);
    vuf_vq_kick(h, 2);
    expect_refused(h, 2, "INDIRECT|NEXT descriptor");
    vuf_free(h);
    check_serves();
}

static void test_indirect_bad_len(void)
{
    static const uint32_t lens[] = { 24, 8, 0, 17 };
    for (unsigned v = 0; v < 4; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        struct req_bufs b = mk_read(h, 0, 1);
        uint64_t tg = vuf_alloc(h, 64, 16);
        struct vuf_desc *t = vuf_ptr(h, tg, 64);
        fill_desc(&t[0], b.hdr, 51, VUF_DESC_F_NEXT, 1);
        fill_desc(&t[1], b.resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, 2);
        fill_desc(&t[2], b.data, BS, VUF_DESC_F_WRITE, 0);
        uint16_t id;
        CHECK_EQ(vuf_vq_take_descs(h, 2, 1, &id), 0);
        set_desc(h, 2, id, tg, lens[v], VUF_DESC_F_INDIRECT, 0);
        vuf_vq_raw_avail(h, 2, id);
        vuf_vq_kick(h, 2);
        char what[64];
        snprintf(what, sizeof(what), "indirect table of %u bytes", lens[v]);
        expect_refused(h, 2, what);
        vuf_free(h);
    }
    check_serves();
}

/* Each variant: which descriptor of a READ gets which bad address/len. */
static void bad_addr_case(const char *what, int which, uint64_t addr, uint32_t len, bool indirect)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    struct req_bufs b = mk_read(h, 0, 1);
    struct vuf_desc d[3];
    fill_desc(&d[0], b.hdr, 51, VUF_DESC_F_NEXT, 1);
    fill_desc(&d[1], b.resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, 2);
    fill_desc(&d[2], b.data, BS, VUF_DESC_F_WRITE, 0);
    if (which >= 0) {
        d[which].addr = addr;
        d[which].len = len;
    }
    uint16_t id[3];
    if (indirect) {
        uint64_t tg = vuf_alloc(h, 48, 16);
        memcpy(vuf_ptr(h, tg, 48), d, 48);
        CHECK_EQ(vuf_vq_take_descs(h, 2, 1, id), 0);
        set_desc(h, 2, id[0], which < 0 ? addr : tg, which < 0 ? len : 48, VUF_DESC_F_INDIRECT, 0);
    } else {
        CHECK_EQ(vuf_vq_take_descs(h, 2, 3, id), 0);
        for (int i = 0; i < 3; i++)
            set_desc(h, 2, id[i], d[i].addr, d[i].len, d[i].flags, i < 2 ? id[i + 1] : 0);
    }
    vuf_vq_raw_avail(h, 2, id[0]);
    vuf_vq_kick(h, 2);
    expect_refused(h, 2, what);
    /* nothing may have been written outside the buffers we gave */
    CHECK_EQ(b.data_p[BS], 0xa5);
    vuf_free(h);
}

static void test_addr_outside_memory(void)
{
    struct vuf *h = hsession();
    uint64_t un = vuf_unmapped_gpa(h);
    const struct vuf_region *r = vuf_region(h, 0);
    uint64_t end = r->gpa + r->size;
    vuf_free(h);
    bad_addr_case("header outside every region", 0, un, 51, false);
    bad_addr_case("response outside every region", 1, un, 108, false);
    bad_addr_case("data-in outside every region", 2, un, BS, false);
    bad_addr_case("data-in at gpa 0 (below the region)", 2, 0, BS, false);
    bad_addr_case("data-in crossing the region end", 2, end - 256, BS, false);
    bad_addr_case("response crossing the region end", 1, end - 8, 108, false);
    bad_addr_case("indirect table outside every region", -1, un, 48, true);
    bad_addr_case("data-in outside memory, indirect", 2, un, BS, true);
    check_serves();
}

static void test_addr_len_overflow(void)
{
    bad_addr_case("data-in addr+len wraps", 2, 0xFFFFFFFFFFFFF000ull, 0x2000, false);
    bad_addr_case("header addr+len wraps", 0, 0xFFFFFFFFFFFFFFF0ull, 51, false);
    bad_addr_case("data-in len 4 GiB - 1", 2, 0x10000000ull, 0xFFFFFFFFu, false);
    bad_addr_case("indirect table addr+len wraps", -1, 0xFFFFFFFFFFFFFFF0ull, 48, true);
    bad_addr_case("indirect table of 4 GiB - 16", -1, 0x10000000ull, 0xFFFFFFF0u, true);
    check_serves();
}

/* Bad header or response sizes: an error response or a refused chain, never GOOD. */
static void test_short_header(void)
{
    static const uint32_t lens[] = { 20, 50, 1 };
    for (unsigned v = 0; v < 3; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        uint8_t cdb[6], d[36];
        struct vuf_scsi_result r;
        vuf_cdb_inquiry(cdb, false, 0, 36);
        struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 6, .data_in = d, .in_len = 36,
                                  .req_len = lens[v], .timeout_ms = OBSERVE_MS };
        int rc = vuf_scsi_do(h, &io, &r);
        fprintf(stderr, "  %u-byte header: %s\n", lens[v], rc ? strerror(-rc) : res_str(&r));
        CHECK(rc == -ETIMEDOUT || rc == -ECONNRESET || (rc == 0 && r.response != VUF_SCSI_S_OK));
        CHECK(rc || !r.canary_hit);
        vuf_free(h);
    }
    /* a response buffer too small for the response */
    static const uint32_t rlens[] = { 8, 11, 1 };
    for (unsigned v = 0; v < 3; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        uint8_t cdb[6], d[36];
        struct vuf_scsi_result r;
        vuf_cdb_inquiry(cdb, false, 0, 36);
        struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 6, .data_in = d, .in_len = 36,
                                  .resp_len = rlens[v], .timeout_ms = OBSERVE_MS };
        int rc = vuf_scsi_do(h, &io, &r);
        fprintf(stderr, "  %u-byte response buffer: %s\n", rlens[v],
                rc ? strerror(-rc) : r.canary_hit ? "written past its end" : "completed");
        CHECK(rc || !r.canary_hit);
        vuf_free(h);
    }
    /* no device-readable descriptor at all, and readable after writable */
    for (int v = 0; v < 2; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        struct req_bufs b = mk_read(h, 0, 1);
        uint16_t id[3];
        CHECK_EQ(vuf_vq_take_descs(h, 2, 3, id), 0);
        if (v == 0) {
            set_desc(h, 2, id[0], b.hdr, 51, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, id[1]);
            set_desc(h, 2, id[1], b.resp, 108, VUF_DESC_F_WRITE, 0);
        } else {
            set_desc(h, 2, id[0], b.hdr, 51, VUF_DESC_F_NEXT, id[1]);
            set_desc(h, 2, id[1], b.resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, id[2]);
            set_desc(h, 2, id[2], b.data, BS, 0, 0);
        }
        vuf_vq_raw_avail(h, 2, id[0]);
        vuf_vq_kick(h, 2);
        uint32_t uid, ulen;
        enum outcome o = observe(h, 2, &uid, &ulen);
        /* the response goes to the start of the device-writable space */
        struct vuf_scsi_cmd_resp *resp = vuf_ptr(h, v == 0 ? b.hdr : b.resp, 12);
        fprintf(stderr, "  %s: %s", v ? "readable after writable" : "header in a writable descriptor",
                outcome_str[o]);
        if (o == O_DONE)
            fprintf(stderr, " response %u status 0x%x", resp->response, resp->status);
        fprintf(stderr, "\n");
        CHECK(o != O_DONE || resp->response != VUF_SCSI_S_OK);
        vuf_free(h);
    }
    check_serves();
}

static void test_data_in_and_out(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    CHECK(!vuf_has_feature(h, VUF_SCSI_F_INOUT));
    uint8_t w[BS], rd[BS], cdb[10], before[BS];
    struct vuf_scsi_result r;
    disk_pattern(0, before, BS, 10 * BS);
    vuf_pattern(w, BS, 10 * BS, 5);
    vuf_cdb_rw10(cdb, true, 10, 1);
    struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 10, .data_out = w, .out_len = BS,
                              .data_in = rd, .in_len = BS, .timeout_ms = OBSERVE_MS };
    int rc = vuf_scsi_do(h, &io, &r);
    fprintf(stderr, "  WRITE with data-in and data-out: %s\n", rc ? strerror(-rc) : res_str(&r));
    /* without VIRTIO_SCSI_F_INOUT this is not a valid request (QEMU: S_FAILURE) */
    CHECK(rc == -ETIMEDOUT || rc == -ECONNRESET ||
          (rc == 0 && (r.response != VUF_SCSI_S_OK || r.status == VUF_SAM_CHECK_CONDITION)));
    CHECK(rc || !r.canary_hit);
    vuf_free(h);
    check_serves();
}

static void test_transfer_exceeds_buffer(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    uint8_t cdb[10], d[8 * BS], e[BS];
    struct vuf_scsi_result r;
    /* READ(10) of 8 blocks into 512 bytes */
    vuf_cdb_rw10(cdb, false, 20, 8);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 10, NULL, 0, d, BS, &r), 0);
    fprintf(stderr, "  READ 8 blocks into 512 bytes: %s\n", res_str(&r));
    CHECK(r.response == VUF_SCSI_S_OVERRUN || (r.response == VUF_SCSI_S_OK && r.resid != 0) ||
          r.status == VUF_SAM_CHECK_CONDITION);
    CHECK(!r.canary_hit);
    if (r.response == VUF_SCSI_S_OK && r.status == VUF_SAM_GOOD) {
        disk_pattern(0, e, BS, 20 * BS);
        CHECK_MEM(d, e, BS);
    }
    /* WRITE(10) of 8 blocks from 512 bytes: blocks 1..7 must keep their data */
    uint8_t w[BS], keep[7 * BS];
    vuf_pattern(w, BS, 30 * BS, 6);
    disk_pattern(0, keep, sizeof(keep), 31 * BS);
    vuf_cdb_rw10(cdb, true, 30, 8);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 10, w, BS, NULL, 0, &r), 0);
    fprintf(stderr, "  WRITE 8 blocks from 512 bytes: %s\n", res_str(&r));
    CHECK(r.response == VUF_SCSI_S_OVERRUN || (r.response == VUF_SCSI_S_OK && r.resid != 0) ||
          r.status == VUF_SAM_CHECK_CONDITION);
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 31 * BS, keep, sizeof(keep)), 0);
    /* a huge transfer length must not make the daemon allocate it */
    uint8_t c16[16];
    vuf_cdb_rw16(c16, false, 0, 0xffffffffu);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, c16, 16, NULL, 0, d, BS, &r), 0);
    fprintf(stderr, "  READ(16) of 2^32-1 blocks into 512 bytes: %s\n", res_str(&r));
    CHECK(r.response != VUF_SCSI_S_OK || r.status != VUF_SAM_GOOD);
    CHECK(!r.canary_hit);
    /* the opposite, a buffer larger than the transfer: GOOD, resid = the rest */
    vuf_cdb_rw10(cdb, false, 20, 1);
    CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, 10, NULL, 0, d, 8 * BS, &r), 0);
    CHECK_EQ(r.response, VUF_SCSI_S_OK);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(r.resid, 7 * BS);
    disk_pattern(0, e, BS, 20 * BS);
    CHECK_MEM(d, e, BS);
    vuf_free(h);
    check_serves();
}

static void test_lba_out_of_range(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    uint64_t blocks = DISK_SIZE / BS;
    struct {
        const char *what;
        bool write, c16;
        uint64_t lba;
        uint32_t n;
    } cases[] = {
        { "READ(10) last block + 1", false, false, blocks - 1, 2 },
        { "READ(10) at capacity", false, false, blocks, 1 },
        { "WRITE(10) last block + 1", true, false, blocks - 1, 2 },
        { "READ(10) lba 2^32-1 len 2 (32-bit wrap)", false, false, 0xffffffffu, 2 },
        { "READ(16) lba 2^64-1 len 2 (64-bit wrap)", false, true, UINT64_MAX, 2 },
        { "WRITE(16) lba 2^64-1 len 1", true, true, UINT64_MAX, 1 },
        { "READ(16) lba 2^63", false, true, 1ull << 63, 1 },
        { "READ(16) lba 2^55 (byte offset wraps)", false, true, 1ull << 55, 1 },
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t cdb[16], d[2 * BS];
        struct vuf_scsi_result r;
        unsigned cl = cases[i].c16 ? vuf_cdb_rw16(cdb, cases[i].write, cases[i].lba, cases[i].n)
                                   : vuf_cdb_rw10(cdb, cases[i].write, (uint32_t)cases[i].lba,
                                                  (uint16_t)cases[i].n);
        memset(d, 0x5a, sizeof(d));
        CHECK_EQ(vuf_scsi_cmd(h, 0, 0, cdb, cl, cases[i].write ? d : NULL,
                              cases[i].write ? cases[i].n * BS : 0, cases[i].write ? NULL : d,
                              cases[i].write ? 0 : cases[i].n * BS, &r), 0);
        if (!vuf_sense_is(&r, 5, 0x21, 0x00)) {
            fprintf(stderr, "  %s: %s (want 5/21/00)\n", cases[i].what, res_str(&r));
            CHECK(0);
        }
    }
    /* the last block itself is fine, and was not changed by the refused writes */
    uint8_t d[BS], e[BS];
    disk_pattern(0, e, BS, (blocks - 1) * BS);
    rw10(h, 0, 0, false, (uint32_t)blocks - 1, 1, d);
    CHECK_MEM(d, e, BS);
    vuf_free(h);
    check_serves();
}

static void test_avail_idx_jump(void)
{
    static const uint16_t jumps[] = { 129, 1000, 0x8000, 0xffff };
    for (unsigned v = 0; v < 4; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        uint16_t used = vuf_vq_used_idx(h, 2);
        vuf_vq_raw_set_avail_idx(h, 2, (uint16_t)(used + jumps[v]));
        vuf_vq_notify(h, 2);
        char what[64];
        snprintf(what, sizeof(what), "avail idx moved by %u on a 128-entry ring%s", jumps[v],
                 jumps[v] == 0xffff ? " (one back)" : "");
        expect_refused(h, 2, what);
        vuf_free(h);
    }
    check_serves();
}

static void test_head_out_of_range(void)
{
    static const uint16_t heads[] = { 128, 131, 0xffff };
    for (unsigned v = 0; v < 3; v++) {
        struct vuf *h = hsession();
        if (!h)
            return;
        vuf_vq_raw_avail(h, 2, heads[v]);
        vuf_vq_notify(h, 2);
        char what[64];
        snprintf(what, sizeof(what), "head index %u on a 128-entry ring", heads[v]);
        expect_refused(h, 2, what);
        vuf_free(h);
    }
    /* a next index out of range in a direct chain */
    struct vuf *h = hsession();
    if (!h)
        return;
    struct req_bufs b = mk_read(h, 0, 1);
    uint16_t id;
    CHECK_EQ(vuf_vq_take_descs(h, 2, 1, &id), 0);
    set_desc(h, 2, id, b.hdr, 51, VUF_DESC_F_NEXT, 200);
    vuf_vq_raw_avail(h, 2, id);
    vuf_vq_notify(h, 2);
    expect_refused(h, 2, "next index 200 on a 128-entry ring");
    vuf_free(h);
    check_serves();
}

/* READ(10) of one block through n_total one-byte descriptors in an indirect
 * table: 51 for the header, 108 for the response, the rest data-in. */
static enum outcome one_byte_chain(struct vuf *h, unsigned n_total, bool *data_ok)
{
    uint64_t tg = vuf_alloc(h, 16ull * n_total, 16);
    uint64_t buf = vuf_alloc(h, n_total + 64, 64);
    uint8_t *bp = vuf_ptr(h, buf, n_total + 64);
    struct vuf_desc *t = vuf_ptr(h, tg, 16ull * n_total);
    struct vuf_scsi_cmd_req req;
    uint8_t cdb[10], lun[8];
    vuf_cdb_rw10(cdb, false, 40, 1);
    vuf_scsi_lun(lun, 0, 0);
    vuf_scsi_fill_req(&req, lun, 9, cdb, 10);
    memset(bp, 0xa5, n_total + 64);
    memcpy(bp, &req, 51);
    for (unsigned i = 0; i < n_total; i++)
        fill_desc(&t[i], buf + i, 1, (uint16_t)((i >= 51 ? VUF_DESC_F_WRITE : 0) |
                                                 (i + 1 < n_total ? VUF_DESC_F_NEXT : 0)),
                  (uint16_t)(i + 1 < n_total ? i + 1 : 0));
    uint16_t id;
    CHECK_EQ(vuf_vq_take_descs(h, 2, 1, &id), 0);
    set_desc(h, 2, id, tg, 16 * n_total, VUF_DESC_F_INDIRECT, 0);
    vuf_vq_raw_avail(h, 2, id);
    vuf_vq_kick(h, 2);
    uint32_t uid, ulen;
    enum outcome o = observe(h, 2, &uid, &ulen);
    struct vuf_scsi_cmd_resp resp;
    memcpy(&resp, bp + 51, sizeof(resp));
    *data_ok = false;
    if (o == O_DONE) {
        uint8_t e[BS];
        disk_pattern(0, e, BS, 40 * BS);
        *data_ok = resp.response == 0 && resp.status == 0 && !memcmp(bp + 51 + 108, e, BS);
        fprintf(stderr, "  %u one-byte descriptors: completed, response %u status 0x%x, data %s\n",
                n_total, resp.response, resp.status, *data_ok ? "correct" : "WRONG");
        CHECK_EQ(bp[n_total], 0xa5);     /* nothing past the last byte */
    } else {
        fprintf(stderr, "  %u one-byte descriptors: %s\n", n_total, outcome_str[o]);
    }
    return o;
}

static void test_one_byte_descriptors(void)
{
    /* legal on a 1024-entry queue: the chain is not longer than the queue */
    struct vuf_opts o = { .mem_size = 16 << 20, .queue_size = 1024 };
    struct vuf *h = session_opts(&o, true);
    if (h) {
        bool ok;
        enum outcome oc = one_byte_chain(h, 1024, &ok);
        CHECK(oc == O_DONE && ok);
        vuf_free(h);
    }
    /* on a 128-entry queue it is longer than the queue: refusing is fine, wrong data is not */
    h = hsession();
    if (h) {
        bool ok;
        enum outcome oc = one_byte_chain(h, 1024, &ok);
        CHECK(oc != O_DONE || ok);
        vuf_free(h);
    }
    /* more than any limit */
    o.queue_size = 1024;
    h = session_opts(&o, true);
    if (h) {
        bool ok;
        enum outcome oc = one_byte_chain(h, 4096, &ok);
        CHECK(oc != O_DONE || ok);
        vuf_free(h);
    }
    check_serves();
}

/* HOTPLUG negotiated, the driver never posts an event buffer: nothing waits for one. */
static void test_no_event_buffers(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_queues = 4 };
    struct vuf *h = vuf_new(&o);
    vuf_want_features(h, VUF_BIT(VUF_SCSI_F_HOTPLUG) | VUF_BIT(VUF_SCSI_F_CHANGE));
    CHECK_EQ(vuf_open(h, g_d.sock), 0);
    fprintf(stderr, "  HOTPLUG %snegotiated\n", vuf_has_feature(h, VUF_SCSI_F_HOTPLUG) ? "" : "not ");
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    uint8_t d[BS];
    for (int i = 0; i < 20; i++)
        rw10(h, 0, 0, false, i, 1, d);
    uint8_t resp = 0xff;
    CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_LOGICAL_UNIT_RESET, 0, 0, 0, &resp), 0);
    CHECK_EQ(resp, VUF_SCSI_S_FUNCTION_COMPLETE);
    CHECK_EQ(vuf_scsi_tmf(h, VUF_TMF_I_T_NEXUS_RESET, 0, 0, 0, &resp), 0);
    vuf_scsi_clear_ua(h, 0, 0);
    rw10(h, 0, 0, false, 0, 1, d);
    CHECK_EQ(vuf_stop(h), 0);            /* the empty event queue must not block the stop */
    CHECK_EQ(vuf_reconnect(h), 0);
    vuf_scsi_clear_ua(h, 0, 0);
    rw10(h, 0, 0, false, 0, 1, d);
    /* events posted now are only used when something happens */
    CHECK_EQ(vuf_scsi_event_post(h, 8), 0);
    struct vuf_scsi_event ev;
    int rc = vuf_scsi_event_get(h, &ev, 300);
    if (rc == 1)
        fprintf(stderr, "  event 0x%x reason %u lun %02x%02x%02x%02x\n", ev.event, ev.reason,
                ev.lun[0], ev.lun[1], ev.lun[2], ev.lun[3]);
    vuf_free(h);
    check_serves();
}

/* Odd but legal-looking things on the control queue. */
static void test_bad_control_requests(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    struct {
        const char *what;
        uint32_t req_len, resp_len;
        uint32_t type;
    } cases[] = {
        { "TMF request of 4 bytes", 4, 1, VUF_SCSI_T_TMF },
        { "TMF request of 23 bytes", 23, 1, VUF_SCSI_T_TMF },
        { "unknown control request type 99", 24, 1, 99 },
        { "AN query with a 1-byte response", 16, 1, VUF_SCSI_T_AN_QUERY },
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!vuf_is_connected(h) || vuf_peer_closed(h, 0)) {
            vuf_free(h);
            h = hsession();
            if (!h)
                return;
        }
        uint8_t req[64] = { 0 }, resp[16];
        memcpy(req, &cases[i].type, 4);
        req[8] = 1;                       /* lun {1, 0, 0x40, 0} */
        req[10] = 0x40;
        uint32_t used = 0;
        int rc = vuf_scsi_ctrl_raw(h, req, cases[i].req_len, resp, cases[i].resp_len, &used);
        fprintf(stderr, "  %s: %s", cases[i].what, rc ? strerror(-rc) : "completed");
        if (!rc)
            fprintf(stderr, " (response %u, used %u)", resp[0], used);
        fprintf(stderr, "\n");
        CHECK(rc != -EOVERFLOW);          /* never written past the response buffer */
    }
    vuf_free(h);
    check_serves();
}

static void test_kick_storm(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    for (int i = 0; i < 20000; i++)
        vuf_vq_notify(h, 2 + (i & 1));
    /* kicks for queues that were never set up: the eventfd of queue 0 (control) */
    for (int i = 0; i < 1000; i++)
        vuf_vq_notify(h, 0);
    uint8_t d[BS];
    rw10(h, 0, 0, false, 0, 1, d);
    vuf_free(h);
    check_serves();
}

/* The frontend vanishes while the daemon reads into / writes from guest
 * memory: nothing may touch the memory after the session is gone. */
static void test_vanish_with_io(void)
{
    for (int round = 0; round < 10; round++) {
        struct vuf_opts o = { .mem_size = 64 << 20 };
        struct vuf *h = session_opts(&o, true);
        if (!h)
            return;
        enum { N = 64, LEN = 256 * 1024 };
        uint64_t g = vuf_alloc(h, (uint64_t)N * (LEN + 4096), 4096);
        CHECK(g != VUF_GPA_NONE);
        if (g == VUF_GPA_NONE) {
            vuf_free(h);
            return;
        }
        for (unsigned i = 0; i < N; i++) {
            uint64_t b = g + (uint64_t)i * (LEN + 4096);
            uint8_t cdb[10], lun[8];
            bool write = (i + round) & 1;
            vuf_cdb_rw10(cdb, write, (i * 512) % (DISK_SIZE / BS - 512), LEN / BS);
            vuf_scsi_lun(lun, 0, 0);
            vuf_scsi_fill_req(vuf_ptr(h, b, 51), lun, i + 1, cdb, 10);
            struct vuf_sg sg[3] = { { b, 51, false }, { b + 64, 108, true }, { b + 4096, LEN, !write } };
            if (write) {
                sg[1] = (struct vuf_sg){ b + 4096, LEN, false };
                sg[2] = (struct vuf_sg){ b + 64, 108, true };
            }
            vuf_vq_add(h, 2 + (i & 1), sg, 3, NULL, VUF_ADD_INDIRECT);
        }
        vuf_vq_kick(h, 2);
        vuf_vq_kick(h, 3);
        if (round & 1)
            usleep(1000);
        vuf_free(h);        /* close, unmap our side */
    }
    usleep(200000);
    check_serves();
}

/* A racing guest rewrites CDBs and descriptor lengths of chains the device is
 * working on (all values valid on their own): the device must act on one
 * consistent copy, never write past a buffer. */
struct racer {
    struct vuf *h;
    bool stop;                  /* atomic */
    uint8_t *hdr[16];
    struct vuf_desc *ind[16];
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    uint32_t x = 12345;
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        for (int i = 0; i < 16; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            uint8_t *cdb = r->hdr[i] + 19;
            cdb[0] = (x & 1) ? 0x28 : 0x2a;          /* READ(10) <-> WRITE(10) */
            cdb[7] = (x & 2) ? 0xff : 0;             /* 8 or 65288 blocks */
            cdb[8] = (x & 4) ? 8 : 16;
            r->ind[i][2].len = (x & 8) ? 4096 : 8192;
        }
    }
    return NULL;
}

static void test_racing_guest(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    struct racer rc = { .h = h };
    uint64_t data[16], tbl[16];
    uint8_t *data_p[16];
    for (int i = 0; i < 16; i++) {
        uint64_t b = vuf_alloc(h, 512, 64);
        tbl[i] = vuf_alloc(h, 48, 16);
        data[i] = vuf_alloc(h, 8192 + 4096, 4096);
        data_p[i] = vuf_ptr(h, data[i], 8192 + 4096);
        memset(data_p[i] + 8192, 0xa5, 4096);
        rc.hdr[i] = vuf_ptr(h, b, 512);
        rc.ind[i] = vuf_ptr(h, tbl[i], 48);
        uint8_t cdb[10], lun[8];
        vuf_cdb_rw10(cdb, false, 64, 8);
        vuf_scsi_lun(lun, 0, 0);
        vuf_scsi_fill_req((void *)rc.hdr[i], lun, i + 1, cdb, 10);
        fill_desc(&rc.ind[i][0], b, 51, VUF_DESC_F_NEXT, 1);
        fill_desc(&rc.ind[i][1], b + 128, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, 2);
        fill_desc(&rc.ind[i][2], data[i], 4096, VUF_DESC_F_WRITE, 0);
    }
    /* one direct descriptor per slot pointing at its indirect table */
    uint16_t id[16];
    CHECK_EQ(vuf_vq_take_descs(h, 2, 16, id), 0);
    for (int i = 0; i < 16; i++)
        set_desc(h, 2, id[i], tbl[i], 48, VUF_DESC_F_INDIRECT, 0);
    pthread_t tid;
    CHECK_EQ(pthread_create(&tid, NULL, racer_main, &rc), 0);
    int64_t end = vuf_now_ms() + 1500;
    unsigned completed = 0, posted = 0;
    bool alive = true;
    for (int i = 0; i < 16; i++, posted++)
        vuf_vq_raw_avail(h, 2, id[i]);
    vuf_vq_kick(h, 2);
    while (vuf_now_ms() < end && alive) {
        uint32_t uid, ulen;
        int w = vuf_vq_wait(h, 2, 500);
        if (w <= 0) {
            alive = false;
            break;
        }
        while (vuf_vq_raw_get_used(h, 2, &uid, &ulen) == 1) {
            completed++;
            if (uid < 128)
                for (int i = 0; i < 16; i++)
                    if (id[i] == uid) {
                        vuf_vq_raw_avail(h, 2, id[i]);
                        posted++;
                    }
        }
        vuf_vq_kick(h, 2);
    }
    __atomic_store_n(&rc.stop, true, __ATOMIC_RELAXED);
    pthread_join(tid, NULL);
    fprintf(stderr, "  %u of %u racing requests completed%s\n", completed, posted,
            alive ? "" : " (then the queue stopped or the session closed)");
    for (int i = 0; i < 16; i++)
        for (int j = 8192; j < 8192 + 4096; j++)
            if (data_p[i][j] != 0xa5) {
                fprintf(stderr, "  slot %d: written past its 8 KiB buffer at +%d\n", i, j);
                CHECK(0);
                break;
            }
    vuf_free(h);
    usleep(100000);
    check_serves();
}

/* Transfer lengths whose byte count is 2^32 or just above (4 KiB blocks):
 * 32-bit arithmetic would wrap to 0 or to the buffer size. */
static void test_transfer_length_wrap(void)
{
    struct vuf *h = hsession();
    if (!h)
        return;
    static const uint32_t lens[] = { 0x100000, 0x100001, 0x1fffff, 0xffffffffu };
    for (unsigned i = 0; i < 4; i++) {
        for (int w = 0; w < 2; w++) {
            uint8_t cdb[16], d[4096];
            struct vuf_scsi_result r;
            memset(d, 0x5a, sizeof(d));
            vuf_cdb_rw16(cdb, w, 0, lens[i]);
            CHECK_EQ(vuf_scsi_cmd(h, 1, 0, cdb, 16, w ? d : NULL, w ? 4096 : 0, w ? NULL : d,
                                  w ? 0 : 4096, &r), 0);
            bool refused = r.response != VUF_SCSI_S_OK || r.status != VUF_SAM_GOOD;
            if (!refused || r.canary_hit)
                fprintf(stderr, "  %s(16) of %u 4 KiB blocks with a 4 KiB buffer: %s\n",
                        w ? "WRITE" : "READ", lens[i], res_str(&r));
            CHECK(refused);
            CHECK(!r.canary_hit);
        }
    }
    /* one block is fine */
    uint8_t cdb[16], d[4096];
    struct vuf_scsi_result r;
    vuf_cdb_rw16(cdb, false, (64ull << 30) / 4096 - 1, 1);
    CHECK_EQ(vuf_scsi_cmd(h, 1, 0, cdb, 16, NULL, 0, d, 4096, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    CHECK_EQ(r.resid, 0);
    vuf_free(h);
    check_serves();
}

int main(int argc, char **argv)
{
    start_daemon(argc, argv, disks, 2, NULL);
    RUN(test_desc_loop);
    RUN(test_nested_indirect);
    RUN(test_indirect_bad_len);
    RUN(test_addr_outside_memory);
    RUN(test_addr_len_overflow);
    RUN(test_short_header);
    RUN(test_data_in_and_out);
    RUN(test_transfer_exceeds_buffer);
    RUN(test_lba_out_of_range);
    RUN(test_transfer_length_wrap);
    RUN(test_avail_idx_jump);
    RUN(test_head_out_of_range);
    RUN(test_one_byte_descriptors);
    RUN(test_no_event_buffers);
    RUN(test_bad_control_requests);
    RUN(test_kick_storm);
    RUN(test_vanish_with_io);
    RUN(test_racing_guest);
    return finish();
}

/* A hostile frontend: malformed vhost-user messages, bad memory tables, rings
 * set up out of order, fds where none belong. For each case the daemon must
 * stay up, refuse the message (close the session, or answer a need_reply
 * with a non-zero ack, as the case says) and serve a NEW session afterwards.
 * At the end, no fd or guest-memory mapping of the bad sessions may remain.
 * Usage: t_hostile_msg [path-to-vscsid]  (or env VSCSID) */
#include "t_common.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define DISK_SIZE (4ull << 20)
#define OBSERVE_MS 1000

static const struct vuf_vscsid_disk disks[] = {
    { .size = DISK_SIZE, .target = 0, .lun = 0 },
};

enum mo { M_CLOSED, M_NACK, M_ACK, M_REPLY, M_SILENT };
static const char *const mo_str[] = { "session closed", "nack", "ACK (accepted)",
                                      "REPLY", "no answer, session open" };

static struct vuf *hconn(bool start)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_queues = 4 };
    struct vuf *h = vuf_new(&o);
    CHECK(h != NULL);
    if (!h)
        return NULL;
    int rc = vuf_connect(h, g_d.sock);
    rc = rc ? rc : vuf_negotiate(h);
    rc = rc ? rc : (start ? vuf_start(h) : 0);
    if (rc) {
        fprintf(stderr, "  session setup: %s\n", strerror(-rc));
        CHECK_EQ(rc, 0);
        vuf_free(h);
        return NULL;
    }
    return h;
}

static bool reply_ack(const struct vuf *h)
{
    return vuf_has_protocol_feature(h, VUF_PF_REPLY_ACK);
}

/* Send one message and see what the daemon makes of it. */
static enum mo send_msg(struct vuf *h, uint32_t req, uint32_t flags, const void *p, uint32_t size,
                        const int *fds, unsigned nfds)
{
    if (vuf_msg_send(h, req, flags, p, size, fds, nfds) < 0)
        return M_CLOSED;
    if (!(flags & VUF_FLAG_NEED_REPLY) && req != VUF_GET_VRING_BASE && req != VUF_GET_FEATURES)
        return vuf_peer_closed(h, OBSERVE_MS) ? M_CLOSED : M_SILENT;
    struct vuf_msg_hdr hdr;
    uint8_t buf[VUF_MAX_PAYLOAD];
    int n = vuf_msg_recv(h, &hdr, buf, sizeof(buf), NULL, NULL, OBSERVE_MS);
    if (n == -ETIMEDOUT)
        return vuf_peer_closed(h, 0) ? M_CLOSED : M_SILENT;
    if (n < 0)
        return M_CLOSED;
    if (hdr.request == req && n == 8 && (flags & VUF_FLAG_NEED_REPLY)) {
        uint64_t v;
        memcpy(&v, buf, 8);
        return v ? M_NACK : M_ACK;
    }
    return M_REPLY;
}

/* The message must be refused: the session closed, or (when allow_nack and
 * REPLY_ACK is negotiated) a non-zero ack. */
static enum mo expect_refused(struct vuf *h, const char *what, uint32_t req, const void *p,
                              uint32_t size, const int *fds, unsigned nfds, bool allow_nack)
{
    uint32_t flags = VUF_FLAG_VERSION | (allow_nack && reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
    enum mo o = send_msg(h, req, flags, p, size, fds, nfds);
    bool ok = o == M_CLOSED || (allow_nack && o == M_NACK);
    fprintf(stderr, "  %s: %s%s\n", what, mo_str[o], ok ? "" : "  <-- should be refused");
    CHECK(ok);
    return o;
}

/* ---- vring index out of range ----------------------------------------- */

static void test_vring_index(void)
{
    struct vuf *probe = hconn(false);
    if (!probe)
        return;
    uint32_t qn = (uint32_t)vuf_queue_num(probe);
    vuf_free(probe);
    static const uint32_t reqs[] = { VUF_SET_VRING_NUM, VUF_SET_VRING_BASE, VUF_SET_VRING_ADDR,
                                     VUF_SET_VRING_KICK, VUF_SET_VRING_CALL, VUF_SET_VRING_ERR,
                                     VUF_SET_VRING_ENABLE, VUF_GET_VRING_BASE };
    uint32_t idxs[] = { qn, 200, 0xffffffffu };
    for (unsigned r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
        for (unsigned i = 0; i < 3; i++) {
            bool fdmsg = reqs[r] == VUF_SET_VRING_KICK || reqs[r] == VUF_SET_VRING_CALL ||
                         reqs[r] == VUF_SET_VRING_ERR;
            if (fdmsg && i == 2)
                continue;                 /* the index field is 8 bits there */
            struct vuf *h = hconn(true);
            if (!h)
                return;
            char what[96];
            snprintf(what, sizeof(what), "%s index %u (%u queues)", vuf_req_name(reqs[r]),
                     idxs[i], qn);
            int efd = eventfd(0, EFD_CLOEXEC);
            if (fdmsg) {
                uint64_t v = idxs[i] & 0xff;
                expect_refused(h, what, reqs[r], &v, 8, &efd, 1, false);
            } else if (reqs[r] == VUF_SET_VRING_ADDR) {
                const struct vuf_vring *ring = vuf_vq_ring(h, 2);
                struct vuf_vring_addr_msg a = { .index = idxs[i] };
                a.desc_qva = vuf_gpa_to_qva(h, ring->desc_gpa);
                a.used_qva = vuf_gpa_to_qva(h, ring->used_gpa);
                a.avail_qva = vuf_gpa_to_qva(h, ring->avail_gpa);
                expect_refused(h, what, reqs[r], &a, sizeof(a), NULL, 0, false);
            } else {
                struct vuf_vring_state s = { idxs[i], reqs[r] == VUF_SET_VRING_ENABLE ? 1 : 128 };
                expect_refused(h, what, reqs[r], &s, sizeof(s), NULL, 0, false);
            }
            close(efd);
            vuf_free(h);
        }
    }
    check_serves();
}

/* ---- memory tables ----------------------------------------------------- */

struct mt {
    uint32_t nregions, padding;
    struct vuf_mem_region_msg r[VUF_MAX_REGIONS + 2];
};

static uint32_t mt_size(unsigned n)
{
    return 8 + n * (uint32_t)sizeof(struct vuf_mem_region_msg);
}

static struct vuf_mem_region_msg region_msg(const struct vuf *h, unsigned i)
{
    const struct vuf_region *r = vuf_region(h, i);
    return (struct vuf_mem_region_msg){ r->gpa, r->size, r->qva, r->mmap_offset };
}

static void test_mem_table_overlap(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_regions = 2, .num_queues = 4 };
    for (int v = 0; v < 3; v++) {
        struct vuf *h = vuf_new(&o);
        if (!h || vuf_connect(h, g_d.sock) || vuf_negotiate(h)) {
            CHECK(0);
            vuf_free(h);
            return;
        }
        struct mt m = { 2, 0, { region_msg(h, 0), region_msg(h, 1) } };
        int fds[2] = { vuf_region(h, 0)->fd, vuf_region(h, 1)->fd };
        const char *what;
        if (v == 0) {
            m.r[1].gpa = m.r[0].gpa + m.r[0].size / 2;     /* gpa ranges overlap */
            what = "SET_MEM_TABLE with overlapping guest-physical ranges";
        } else if (v == 1) {
            m.r[1] = m.r[0];                               /* the same region twice */
            fds[1] = fds[0];
            what = "SET_MEM_TABLE with the same region twice";
        } else {
            m.r[1].gpa = m.r[0].gpa + 8;                   /* contained, unaligned */
            m.r[1].size = 4096;
            what = "SET_MEM_TABLE with a region inside another";
        }
        expect_refused(h, what, VUF_SET_MEM_TABLE, &m, mt_size(2), fds, 2, true);
        vuf_free(h);
    }
    /* ADD_MEM_REG of a region overlapping one already added */
    struct vuf *h = vuf_new(&o);
    if (h && !vuf_connect(h, g_d.sock) && !vuf_negotiate(h) &&
        vuf_has_protocol_feature(h, VUF_PF_CONFIGURE_MEM_SLOTS)) {
        CHECK_EQ(vuf_add_mem_reg(h, 0), 0);
        struct { uint64_t pad; struct vuf_mem_region_msg r; } a = { 0, region_msg(h, 1) };
        a.r.gpa = region_msg(h, 0).gpa + 4096;
        expect_refused(h, "ADD_MEM_REG overlapping an added region", VUF_ADD_MEM_REG, &a,
                       sizeof(a), &vuf_region(h, 1)->fd, 1, true);
    }
    vuf_free(h);
    check_serves();
}

static void test_mem_table_fd_count(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_regions = 2, .num_queues = 4 };
    struct {
        const char *what;
        unsigned nregions, nfds;
        uint32_t size_regions;
    } cases[] = {
        { "2 regions, 1 fd", 2, 1, 2 },
        { "1 region, 2 fds", 1, 2, 1 },
        { "1 region, no fd", 1, 0, 1 },
        { "9 regions (limit 8), 9 fds", 9, 9, 9 },
        { "nregions 0xffffffff, payload for 1", 0xffffffffu, 1, 1 },
        { "nregions 2, payload for 1", 2, 2, 1 },
        { "nregions 1, payload for 2", 1, 1, 2 },
    };
    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct vuf *h = vuf_new(&o);
        if (!h || vuf_connect(h, g_d.sock) || vuf_negotiate(h)) {
            CHECK(0);
            vuf_free(h);
            return;
        }
        struct mt m = { cases[c].nregions, 0, { { 0 } } };
        int fds[12];
        for (unsigned i = 0; i < VUF_MAX_REGIONS + 2; i++) {
            m.r[i] = region_msg(h, i & 1);
            m.r[i].gpa += (uint64_t)(i / 2) * (64ull << 30);   /* distinct, not overlapping */
            fds[i] = vuf_region(h, i & 1)->fd;
        }
        expect_refused(h, cases[c].what, VUF_SET_MEM_TABLE, &m, mt_size(cases[c].size_regions),
                       fds, cases[c].nfds, true);
        vuf_free(h);
    }
    check_serves();
}

/* Regions the daemon cannot map as described. */
static void test_mem_region_bad(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_queues = 4 };
    for (int v = 0; v < 6; v++) {
        struct vuf *h = vuf_new(&o);
        if (!h || vuf_connect(h, g_d.sock) || vuf_negotiate(h)) {
            CHECK(0);
            vuf_free(h);
            return;
        }
        struct mt m = { 1, 0, { region_msg(h, 0) } };
        int fd = vuf_region(h, 0)->fd, efd = -1;
        const char *what = "";
        switch (v) {
        case 0: m.r[0].size = 0; what = "region of size 0"; break;
        case 1: m.r[0].gpa = 0xFFFFFFFFFFFFF000ull; m.r[0].size = 0x2000; what = "gpa + size wraps"; break;
        case 2: m.r[0].mmap_offset = 0xFFFFFFFFFFFFF000ull; what = "mmap_offset + size wraps"; break;
        case 3: m.r[0].qva = 0xFFFFFFFFFFFFF000ull; m.r[0].size = 0x2000; what = "userspace_addr + size wraps"; break;
        case 4: efd = eventfd(0, EFD_CLOEXEC); fd = efd; what = "an eventfd as the memory fd"; break;
        case 5: m.r[0].size = 1ull << 46; what = "a 64 TiB region"; break;
        }
        expect_refused(h, what, VUF_SET_MEM_TABLE, &m, mt_size(1), &fd, 1, true);
        if (efd >= 0)
            close(efd);
        vuf_free(h);
    }
    check_serves();
}

/* A region larger than its memfd: mmap succeeds, touching the tail would
 * SIGBUS. Either refuse the table or never touch the tail (refuse chains there). */
static void test_region_beyond_eof(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_queues = 4 };
    struct vuf *h = vuf_new(&o);
    if (!h || vuf_connect(h, g_d.sock) || vuf_negotiate(h)) {
        CHECK(0);
        vuf_free(h);
        return;
    }
    uint64_t feats = vuf_features_offered(h) & (VUF_FEATURES_DEFAULT);
    vuf_set_u64(h, VUF_SET_FEATURES, feats);
    struct mt m = { 1, 0, { region_msg(h, 0) } };
    m.r[0].size *= 4;                             /* 64 MiB claimed, 16 MiB in the file */
    int fd = vuf_region(h, 0)->fd;
    uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
    enum mo mo = send_msg(h, VUF_SET_MEM_TABLE, flags, &m, mt_size(1), &fd, 1);
    fprintf(stderr, "  region 4x larger than its memfd: %s\n", mo_str[mo]);
    if (mo == M_CLOSED || mo == M_NACK) {
        vuf_free(h);
        check_serves();
        return;
    }
    /* accepted: set up queue 2 normally (rings inside the file), then point
     * a READ's data buffer past the end of the file */
    const struct vuf_vring *r = vuf_vq_ring(h, 2);
    int ok = vuf_set_vring_state(h, VUF_SET_VRING_NUM, 2, r->size);
    ok = ok ? ok : vuf_set_vring_state(h, VUF_SET_VRING_BASE, 2, 0);
    ok = ok ? ok : vuf_set_vring_addr(h, 2, vuf_gpa_to_qva(h, r->desc_gpa),
                                      vuf_gpa_to_qva(h, r->used_gpa), vuf_gpa_to_qva(h, r->avail_gpa), 0);
    ok = ok ? ok : vuf_set_vring_fd(h, VUF_SET_VRING_KICK, 2, r->kick_fd);
    ok = ok ? ok : vuf_set_vring_fd(h, VUF_SET_VRING_CALL, 2, r->call_fd);
    ok = ok ? ok : vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, 2, 1);
    if (!ok) {
        uint64_t hdr = vuf_alloc(h, 64, 64), resp = vuf_alloc(h, 128, 64);
        uint64_t tail = m.r[0].gpa + (40ull << 20);
        uint8_t cdb[10], lun[8];
        vuf_cdb_rw10(cdb, false, 0, 1);
        vuf_scsi_lun(lun, 0, 0);
        vuf_scsi_fill_req(vuf_ptr(h, hdr, 51), lun, 1, cdb, 10);
        uint16_t id[3];
        vuf_vq_take_descs(h, 2, 3, id);
        struct vuf_desc *d = r->desc;
        d[id[0]] = (struct vuf_desc){ hdr, 51, VUF_DESC_F_NEXT, id[1] };
        d[id[1]] = (struct vuf_desc){ resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, id[2] };
        d[id[2]] = (struct vuf_desc){ tail, BS, VUF_DESC_F_WRITE, 0 };
        vuf_vq_raw_avail(h, 2, id[0]);
        vuf_vq_notify(h, 2);
        int w = vuf_vq_wait(h, 2, OBSERVE_MS);
        fprintf(stderr, "  READ into the part past the memfd's end: %s\n",
                w == 1 ? "completed" : w == 0 ? "queue stuck" : "session closed");
    }
    vuf_free(h);
    usleep(100000);
    check_serves();
}

/* ---- sizes, unknown requests, versions ------------------------------------------ */

static void test_wrong_payload_size(void)
{
    struct {
        const char *what;
        uint32_t req, size;
    } cases[] = {
        { "SET_FEATURES with 4 bytes", VUF_SET_FEATURES, 4 },
        { "SET_FEATURES with 0 bytes", VUF_SET_FEATURES, 0 },
        { "SET_PROTOCOL_FEATURES with 0 bytes", VUF_SET_PROTOCOL_FEATURES, 0 },
        { "SET_VRING_NUM with 4 bytes", VUF_SET_VRING_NUM, 4 },
        { "SET_VRING_BASE with 16 bytes", VUF_SET_VRING_BASE, 16 },
        { "SET_VRING_ADDR with 32 bytes", VUF_SET_VRING_ADDR, 32 },
        { "SET_VRING_ENABLE with 2 bytes", VUF_SET_VRING_ENABLE, 2 },
        { "SET_VRING_KICK with 4 bytes", VUF_SET_VRING_KICK, 4 },
        { "SET_MEM_TABLE with 4 bytes", VUF_SET_MEM_TABLE, 4 },
        { "GET_VRING_BASE with 0 bytes", VUF_GET_VRING_BASE, 0 },
    };
    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct vuf *h = hconn(true);
        if (!h)
            return;
        uint8_t p[64];
        memset(p, 0, sizeof(p));
        p[0] = 2;                          /* queue 2 where an index is read */
        int efd = eventfd(0, EFD_CLOEXEC);
        bool fdm = cases[c].req == VUF_SET_VRING_KICK || cases[c].req == VUF_SET_MEM_TABLE;
        expect_refused(h, cases[c].what, cases[c].req, p, cases[c].size, &efd, fdm ? 1 : 0, true);
        close(efd);
        vuf_free(h);
    }
    /* a header announcing a 4 GiB payload, then nothing */
    struct vuf *h = hconn(true);
    if (h) {
        struct vuf_msg_hdr hdr = { VUF_SET_FEATURES, VUF_FLAG_VERSION, 0xffffffffu };
        vuf_msg_send_bytes(h, &hdr, sizeof(hdr), NULL, 0);
        int closed = vuf_peer_closed(h, OBSERVE_MS);
        fprintf(stderr, "  header with size 0xffffffff: %s\n", closed ? "session closed" : "session open");
        CHECK(closed);
        vuf_free(h);
    }
    /* payload larger than any request takes (64 KiB of zeros after a SET_FEATURES header) */
    h = hconn(true);
    if (h) {
        static uint8_t big[12 + 65536];
        struct vuf_msg_hdr hdr = { VUF_SET_FEATURES, VUF_FLAG_VERSION, 65536 };
        memcpy(big, &hdr, 12);
        vuf_msg_send_bytes(h, big, sizeof(big), NULL, 0);
        int closed = vuf_peer_closed(h, OBSERVE_MS);
        fprintf(stderr, "  SET_FEATURES with 64 KiB: %s\n", closed ? "session closed" : "session open");
        CHECK(closed);
        vuf_free(h);
    }
    check_serves();
}

static void test_unknown_request(void)
{
    static const uint32_t reqs[] = { 0, 41, 99, 999, 0x7fffffffu, 0xffffffffu };
    for (unsigned i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct vuf *h = hconn(true);
        if (!h)
            return;
        char what[64];
        snprintf(what, sizeof(what), "request %u", reqs[i]);
        uint64_t v = 0;
        expect_refused(h, what, reqs[i], &v, 8, NULL, 0, true);
        vuf_free(h);
    }
    /* wrong version bits, and the reply flag set on a request */
    static const uint32_t bad_flags[] = { 0x0, 0x2, 0x3, VUF_FLAG_VERSION | VUF_FLAG_REPLY };
    for (unsigned i = 0; i < 4; i++) {
        struct vuf *h = hconn(true);
        if (!h)
            return;
        uint64_t f = vuf_features(h);
        enum mo o = send_msg(h, VUF_SET_FEATURES, bad_flags[i], &f, 8, NULL, 0);
        fprintf(stderr, "  SET_FEATURES with flags 0x%x: %s\n", bad_flags[i], mo_str[o]);
        if (i < 3)
            CHECK(o == M_CLOSED);
        vuf_free(h);
    }
    check_serves();
}

/* ---- broken streams ---------------------------------------------------- */

static void test_truncated_message(void)
{
    /* header promises 40 bytes, 10 arrive, then the frontend goes away */
    struct vuf *h = hconn(true);
    if (h) {
        uint8_t b[22] = { 0 };
        struct vuf_msg_hdr hdr = { VUF_SET_VRING_ADDR, VUF_FLAG_VERSION, 40 };
        memcpy(b, &hdr, 12);
        CHECK_EQ(vuf_msg_send_bytes(h, b, sizeof(b), NULL, 0), 0);
        vuf_free(h);
        check_serves();
    }
    /* half a header, then close */
    h = hconn(true);
    if (h) {
        uint8_t b[6] = { VUF_GET_FEATURES, 0, 0, 0, 1, 0 };
        CHECK_EQ(vuf_msg_send_bytes(h, b, sizeof(b), NULL, 0), 0);
        vuf_free(h);
        check_serves();
    }
    /* a fd-carrying header alone, then close (the fd must not leak) */
    h = hconn(true);
    if (h) {
        struct vuf_msg_hdr hdr = { VUF_SET_VRING_CALL, VUF_FLAG_VERSION, 8 };
        int efd = eventfd(0, EFD_CLOEXEC);
        CHECK_EQ(vuf_msg_send_bytes(h, &hdr, sizeof(hdr), &efd, 1), 0);
        close(efd);
        vuf_free(h);
        check_serves();
    }
    /* a stream may split a message anywhere: the session must carry on */
    h = hconn(true);
    if (h) {
        uint8_t b[12];
        struct vuf_msg_hdr hdr = { VUF_GET_FEATURES, VUF_FLAG_VERSION, 0 };
        memcpy(b, &hdr, 12);
        CHECK_EQ(vuf_msg_send_bytes(h, b, 5, NULL, 0), 0);
        usleep(100000);
        CHECK_EQ(vuf_msg_send_bytes(h, b + 5, 7, NULL, 0), 0);
        struct vuf_msg_hdr rh;
        uint64_t v = 0;
        int n = vuf_msg_recv(h, &rh, &v, 8, NULL, NULL, 2000);
        fprintf(stderr, "  GET_FEATURES sent in two pieces: %s\n",
                n == 8 ? "answered" : n < 0 ? strerror(-n) : "odd reply");
        CHECK_EQ(n, 8);
        CHECK_EQ(v, vuf_features_offered(h));
        vuf_free(h);
    }
    check_serves();
}

/* Replies into a closed socket: EPIPE, never SIGPIPE. */
static void test_reply_to_closed_socket(void)
{
    for (int v = 0; v < 3; v++) {
        struct vuf *h = hconn(v != 0);
        if (!h)
            return;
        if (v < 2) {
            for (int i = 0; i < 200; i++)
                vuf_msg_send(h, VUF_GET_FEATURES, VUF_FLAG_VERSION, NULL, 0, NULL, 0);
        } else {
            struct vuf_vring_state s = { 2, 0 };
            vuf_msg_send(h, VUF_GET_VRING_BASE, VUF_FLAG_VERSION, &s, 8, NULL, 0);
        }
        shutdown(vuf_socket_fd(h), SHUT_RDWR);
        vuf_free(h);
    }
    usleep(200000);
    CHECK(vuf_proc_alive(&g_d.proc));
    check_serves();
}

/* ---- rings set up wrongly ---------------------------------------------- */

static void test_ring_without_memory(void)
{
    /* enabled and kicked, no SET_MEM_TABLE and no SET_VRING_ADDR */
    struct vuf *h = hconn(false);
    if (!h)
        return;
    const struct vuf_vring *r = vuf_vq_ring(h, 2);
    vuf_set_ack(h, false);
    vuf_set_u64(h, VUF_SET_FEATURES, vuf_features_offered(h) & VUF_FEATURES_DEFAULT);
    vuf_set_vring_state(h, VUF_SET_VRING_NUM, 2, 128);
    vuf_set_vring_state(h, VUF_SET_VRING_BASE, 2, 0);
    vuf_set_vring_fd(h, VUF_SET_VRING_KICK, 2, r->kick_fd);
    vuf_set_vring_fd(h, VUF_SET_VRING_CALL, 2, r->call_fd);
    vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, 2, 1);
    for (int i = 0; i < 10; i++)
        vuf_vq_notify(h, 2);
    int closed = vuf_peer_closed(h, 300);
    fprintf(stderr, "  ring kicked without memory or addresses: %s\n", closed ? "session closed" : "ignored");
    vuf_free(h);

    /* SET_VRING_ADDR before any memory table: untranslatable */
    h = hconn(false);
    if (!h)
        return;
    r = vuf_vq_ring(h, 2);
    vuf_set_u64(h, VUF_SET_FEATURES, vuf_features_offered(h) & VUF_FEATURES_DEFAULT);
    struct vuf_vring_addr_msg a = { 2, 0, vuf_gpa_to_qva(h, r->desc_gpa),
                                    vuf_gpa_to_qva(h, r->used_gpa), vuf_gpa_to_qva(h, r->avail_gpa), 0 };
    enum mo o = send_msg(h, VUF_SET_VRING_ADDR,
                         VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0), &a, sizeof(a), NULL, 0);
    fprintf(stderr, "  SET_VRING_ADDR before SET_MEM_TABLE: %s\n", mo_str[o]);
    if (o != M_CLOSED) {
        vuf_set_ack(h, false);
        vuf_set_vring_fd(h, VUF_SET_VRING_KICK, 2, r->kick_fd);
        vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, 2, 1);
        vuf_vq_notify(h, 2);
        vuf_peer_closed(h, 300);
    }
    vuf_free(h);
    check_serves();
}

static void test_ring_addr_bad(void)
{
    for (int v = 0; v < 4; v++) {
        struct vuf *h = hconn(false);
        if (!h)
            return;
        const struct vuf_vring *r = vuf_vq_ring(h, 2);
        const struct vuf_region *reg = vuf_region(h, 0);
        uint64_t desc = vuf_gpa_to_qva(h, r->desc_gpa), used = vuf_gpa_to_qva(h, r->used_gpa);
        uint64_t avail = vuf_gpa_to_qva(h, r->avail_gpa);
        const char *what = "";
        switch (v) {
        case 0: desc = 0x1000; what = "descriptor table at an unmapped address"; break;
        case 1: used = reg->qva + reg->size - 64; what = "used ring crossing the region end"; break;
        case 2: avail = reg->gpa; what = "avail ring given as a gpa (not a QEMU address)"; break;
        case 3: desc = UINT64_MAX - 1024; what = "descriptor table address wraps"; break;
        }
        vuf_set_u64(h, VUF_SET_FEATURES, vuf_features_offered(h) & VUF_FEATURES_DEFAULT);
        CHECK_EQ(vuf_set_mem_table(h), 0);
        vuf_set_vring_state(h, VUF_SET_VRING_NUM, 2, 128);
        vuf_set_vring_state(h, VUF_SET_VRING_BASE, 2, 0);
        uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
        struct vuf_vring_addr_msg a = { 2, 0, desc, used, avail, 0 };
        enum mo o = send_msg(h, VUF_SET_VRING_ADDR, flags, &a, sizeof(a), NULL, 0);
        enum mo o2 = M_CLOSED;
        if (o != M_CLOSED) {
            int efd = r->kick_fd;
            uint64_t k = 2;
            o2 = send_msg(h, VUF_SET_VRING_KICK, flags, &k, 8, &efd, 1);
            if (o2 != M_CLOSED) {
                struct vuf_vring_state s = { 2, 1 };
                o2 = send_msg(h, VUF_SET_VRING_ENABLE, flags, &s, 8, NULL, 0);
                vuf_vq_notify(h, 2);
                if (o2 != M_CLOSED && vuf_peer_closed(h, 300))
                    o2 = M_CLOSED;
            }
        }
        fprintf(stderr, "  %s: SET_VRING_ADDR %s, then %s\n", what, mo_str[o], mo_str[o2]);
        /* refused at SET_VRING_ADDR, or at the latest when the ring is started */
        CHECK(o == M_CLOSED || o == M_NACK || o2 == M_CLOSED || o2 == M_NACK);
        vuf_free(h);
    }
    check_serves();
}

static void test_vring_num_bad(void)
{
    static const uint32_t nums[] = { 0, 100, 65536, 0x80000000u };
    for (unsigned v = 0; v < 4; v++) {
        struct vuf *h = hconn(false);
        if (!h)
            return;
        uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
        vuf_set_u64(h, VUF_SET_FEATURES, vuf_features_offered(h) & VUF_FEATURES_DEFAULT);
        CHECK_EQ(vuf_set_mem_table(h), 0);
        struct vuf_vring_state s = { 2, nums[v] };
        enum mo o = send_msg(h, VUF_SET_VRING_NUM, flags, &s, 8, NULL, 0);
        enum mo o2 = M_CLOSED;
        if (o != M_CLOSED) {
            /* maybe it is checked when the ring starts */
            const struct vuf_vring *r = vuf_vq_ring(h, 2);
            struct vuf_vring_addr_msg a = { 2, 0, vuf_gpa_to_qva(h, r->desc_gpa),
                                            vuf_gpa_to_qva(h, r->used_gpa),
                                            vuf_gpa_to_qva(h, r->avail_gpa), 0 };
            o2 = send_msg(h, VUF_SET_VRING_ADDR, flags, &a, sizeof(a), NULL, 0);
            if (o2 != M_CLOSED && o2 != M_NACK) {
                uint64_t k = 2;
                int efd = r->kick_fd;
                o2 = send_msg(h, VUF_SET_VRING_KICK, flags, &k, 8, &efd, 1);
            }
            if (o2 != M_CLOSED && o2 != M_NACK) {
                struct vuf_vring_state e = { 2, 1 };
                o2 = send_msg(h, VUF_SET_VRING_ENABLE, flags, &e, 8, NULL, 0);
                vuf_vq_notify(h, 2);
                if (vuf_peer_closed(h, 300))
                    o2 = M_CLOSED;
            }
        }
        fprintf(stderr, "  SET_VRING_NUM %u: %s, ring start: %s\n", nums[v], mo_str[o], mo_str[o2]);
        CHECK(o == M_CLOSED || o == M_NACK || o2 == M_CLOSED || o2 == M_NACK);
        vuf_free(h);
    }
    check_serves();
}

/* The memory under running rings changes (QEMU does this on memory hotplug;
 * a hostile frontend removes it altogether). */
static void test_memory_pulled(void)
{
    struct vuf_opts o = { .mem_size = 16 << 20, .num_queues = 4, .num_regions = 2 };
    /* legal: a new table with the same regions while running (hotplug) */
    struct vuf *h = vuf_new(&o);
    if (!h || vuf_open(h, g_d.sock)) {
        CHECK(0);
        vuf_free(h);
        return;
    }
    vuf_scsi_clear_ua(h, 0, 0);
    uint8_t d[BS];
    rw10(h, 0, 0, false, 0, 1, d);
    CHECK_EQ(vuf_set_mem_table(h), 0);
    rw10(h, 0, 0, false, 1, 1, d);
    vuf_free(h);

    /* hostile: a table without the region holding the rings, then kicks */
    h = vuf_new(&o);
    if (!h || vuf_open(h, g_d.sock)) {
        CHECK(0);
        vuf_free(h);
        return;
    }
    vuf_scsi_clear_ua(h, 0, 0);
    struct mt m = { 1, 0, { region_msg(h, 1) } };
    int fd = vuf_region(h, 1)->fd;
    uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
    enum mo mo = send_msg(h, VUF_SET_MEM_TABLE, flags, &m, mt_size(1), &fd, 1);
    if (mo != M_CLOSED) {
        uint8_t cdb[10];
        struct vuf_scsi_result r;
        vuf_cdb_rw10(cdb, false, 0, 1);
        struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 10, .data_in = d, .in_len = BS,
                                  .timeout_ms = OBSERVE_MS };
        int rc = vuf_scsi_do(h, &io, &r);
        fprintf(stderr, "  rings' region dropped by SET_MEM_TABLE (%s), then a READ: %s\n",
                mo_str[mo], rc ? strerror(-rc) : "completed");
    } else {
        fprintf(stderr, "  rings' region dropped by SET_MEM_TABLE: %s\n", mo_str[mo]);
    }
    vuf_free(h);

    /* the same with REM_MEM_REG */
    h = vuf_new(&o);
    if (h && !vuf_open(h, g_d.sock) && vuf_has_protocol_feature(h, VUF_PF_CONFIGURE_MEM_SLOTS)) {
        mo = send_msg(h, VUF_REM_MEM_REG, flags,
                      &(struct { uint64_t pad; struct vuf_mem_region_msg r; }){ 0, region_msg(h, 0) },
                      40, &vuf_region(h, 0)->fd, 1);
        for (int i = 0; i < 10; i++)
            vuf_vq_notify(h, 2);
        fprintf(stderr, "  REM_MEM_REG of the rings' region: %s\n", mo_str[mo]);
        vuf_peer_closed(h, 300);
    }
    vuf_free(h);
    check_serves();
}

/* ---- odd fds and repeated messages ------------------------------------ */

static void test_odd_fds(void)
{
    /* fds attached to messages that take none */
    struct vuf *h = hconn(true);
    if (h) {
        int fds[8];
        for (int i = 0; i < 8; i++)
            fds[i] = eventfd(0, EFD_CLOEXEC);
        vuf_set_ack(h, false);
        enum mo o = send_msg(h, VUF_GET_FEATURES, VUF_FLAG_VERSION, NULL, 0, fds, 8);
        fprintf(stderr, "  GET_FEATURES with 8 fds: %s\n", mo_str[o]);
        for (int i = 0; i < 8; i++)
            close(fds[i]);
        vuf_free(h);
    }
    /* a kick fd that is not an eventfd, and a call fd that cannot be written */
    h = hconn(true);
    if (h) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
            uint64_t k = 2;
            int memfd = vuf_region(h, 0)->fd;
            enum mo o1 = send_msg(h, VUF_SET_VRING_KICK, flags, &k, 8, &memfd, 1);
            enum mo o2 = o1 == M_CLOSED ? M_CLOSED : send_msg(h, VUF_SET_VRING_CALL, flags, &k, 8, &p[0], 1);
            fprintf(stderr, "  memfd as kick fd: %s; pipe read end as call fd: %s\n", mo_str[o1], mo_str[o2]);
            if (o2 != M_CLOSED) {
                uint8_t cdb[6];
                struct vuf_scsi_result r;
                vuf_cdb_tur(cdb);
                struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 6, .timeout_ms = 300 };
                vuf_scsi_do(h, &io, &r);
            }
            close(p[0]);
            close(p[1]);
        }
        vuf_free(h);
    }
    /* SET_VRING_CALL 200 times with fresh eventfds: the old ones must be closed */
    h = hconn(true);
    if (h) {
        for (int i = 0; i < 200; i++) {
            int efd = eventfd(0, EFD_CLOEXEC);
            CHECK_EQ(vuf_set_vring_fd(h, VUF_SET_VRING_CALL, 3, efd), 0);
            close(efd);
        }
        CHECK_EQ(vuf_set_vring_fd(h, VUF_SET_VRING_CALL, 3, vuf_vq_ring(h, 3)->call_fd), 0);
        uint8_t d[BS];
        vuf_scsi_clear_ua(h, 0, 0);
        struct vuf_scsi_result r;
        uint8_t cdb[10];
        vuf_cdb_rw10(cdb, false, 0, 1);
        struct vuf_scsi_io io = { .vq = 3, .cdb = cdb, .cdb_len = 10, .data_in = d, .in_len = BS };
        CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
        vuf_free(h);
    }
    check_serves();
}

static void test_odd_sequences(void)
{
    struct {
        const char *what;
        uint32_t req;
        bool start;
    } cases[] = {
        { "SET_OWNER twice", VUF_SET_OWNER, true },
        { "RESET_OWNER (deprecated) while running", VUF_RESET_OWNER, true },
        { "SET_FEATURES with every bit", VUF_SET_FEATURES, true },
        { "SET_PROTOCOL_FEATURES with every bit", VUF_SET_PROTOCOL_FEATURES, false },
        { "SET_LOG_BASE without LOG_SHMFD", VUF_SET_LOG_BASE, true },
        { "SET_VRING_BASE 0x10000 while running", VUF_SET_VRING_BASE, true },
        { "GET_VRING_BASE twice", VUF_GET_VRING_BASE, true },
        { "SET_VRING_NUM while running", VUF_SET_VRING_NUM, true },
    };
    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct vuf *h = hconn(cases[c].start);
        if (!h)
            return;
        uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
        uint8_t p[40] = { 0 };
        uint32_t size = 8;
        int fd = -1;
        switch (cases[c].req) {
        case VUF_SET_OWNER: case VUF_RESET_OWNER: size = 0; break;
        case VUF_SET_FEATURES: case VUF_SET_PROTOCOL_FEATURES: memset(p, 0xff, 8); break;
        case VUF_SET_LOG_BASE: size = 16; p[0] = 0; p[9] = 0x10; fd = vuf_region(h, 0)->fd; break;
        case VUF_SET_VRING_BASE: p[0] = 2; p[6] = 1; break;
        case VUF_GET_VRING_BASE: {
            uint32_t n;
            p[0] = 2;
            vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, 2, 0);
            CHECK_EQ(vuf_get_vring_base(h, 2, &n), 0);
            flags = VUF_FLAG_VERSION;
            break;
        }
        case VUF_SET_VRING_NUM: p[0] = 2; p[5] = 1; break;   /* 256 */
        }
        enum mo o = send_msg(h, cases[c].req, flags, p, size, fd >= 0 ? &fd : NULL, fd >= 0);
        fprintf(stderr, "  %s: %s\n", cases[c].what, mo_str[o]);
        if (cases[c].req == VUF_SET_LOG_BASE)
            CHECK(o == M_CLOSED || o == M_NACK || o == M_REPLY);
        if (o != M_CLOSED) {
            /* whatever it decided, it must still answer */
            uint64_t f;
            int rc = vuf_get_u64(h, VUF_GET_FEATURES, &f);
            CHECK(rc == 0 || rc == -ECONNRESET);
        }
        vuf_free(h);
    }
    check_serves();
}

static void test_inflight_bad(void)
{
    struct vuf *h = hconn(false);
    if (!h)
        return;
    if (!vuf_has_protocol_feature(h, VUF_PF_INFLIGHT_SHMFD)) {
        fprintf(stderr, "  INFLIGHT_SHMFD not offered\n");
        vuf_free(h);
        return;
    }
    vuf_free(h);
    for (int v = 0; v < 3; v++) {
        h = hconn(false);
        if (!h)
            return;
        uint32_t flags = VUF_FLAG_VERSION | (reply_ack(h) ? VUF_FLAG_NEED_REPLY : 0);
        struct vuf_inflight_msg m = { 0, 0, 4, 128 };
        int fd = memfd_create("vuf-small", MFD_CLOEXEC);
        if (ftruncate(fd, 4096) < 0)
            CHECK(0);
        const char *what = "";
        enum mo o;
        if (v == 0) {
            m.num_queues = 0xffff;
            m.queue_size = 0xffff;
            what = "GET_INFLIGHT_FD for 65535 queues of 65535";
            o = send_msg(h, VUF_GET_INFLIGHT_FD, VUF_FLAG_VERSION, &m, sizeof(m), NULL, 0);
        } else if (v == 1) {
            m.mmap_size = 1ull << 40;
            what = "SET_INFLIGHT_FD of 1 TiB on a 4 KiB memfd";
            o = send_msg(h, VUF_SET_INFLIGHT_FD, flags, &m, sizeof(m), &fd, 1);
        } else {
            m.mmap_size = 4096;
            m.mmap_offset = 0xFFFFFFFFFFFFF000ull;
            what = "SET_INFLIGHT_FD with an offset that wraps";
            o = send_msg(h, VUF_SET_INFLIGHT_FD, flags, &m, sizeof(m), &fd, 1);
        }
        close(fd);
        fprintf(stderr, "  %s: %s\n", what, mo_str[o]);
        if (o != M_CLOSED && v > 0) {
            /* accepted? then starting and using the rings must not crash */
            int rc = vuf_start(h);
            if (rc == 0) {
                vuf_scsi_clear_ua(h, 0, 0);
                uint8_t d[BS];
                struct vuf_scsi_result r;
                uint8_t cdb[10];
                vuf_cdb_rw10(cdb, false, 0, 1);
                struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 10, .data_in = d, .in_len = BS,
                                          .timeout_ms = OBSERVE_MS };
                vuf_scsi_do(h, &io, &r);
            }
        }
        vuf_free(h);
        usleep(100000);
        ensure_daemon(what);
    }
    check_serves();
}

/* Everything the bad sessions brought in is gone once they are closed. */
static int g_base_fds = -1;

static int count_guest_maps(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "vuf-guest-ram") || strstr(line, "vuf-small"))
            n++;
    fclose(f);
    return n;
}

static void test_no_leaks(void)
{
    if (g_crashes) {
        fprintf(stderr, "  (daemon was restarted: fd baseline not comparable)\n");
        return;
    }
    int fds = -1, maps = -1;
    for (int i = 0; i < 50; i++) {
        fds = vuf_proc_count_fds(&g_d.proc);
        maps = count_guest_maps(g_d.proc.pid);
        if (fds <= g_base_fds && maps == 0)
            break;
        usleep(20000);
    }
    fprintf(stderr, "  daemon fds: %d at start, %d now; guest memory mappings left: %d\n",
            g_base_fds, fds, maps);
    CHECK(fds <= g_base_fds);
    CHECK_EQ(maps, 0);
    if (fds > g_base_fds) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd | tail -n +2 | awk '{print $NF}' | sort | uniq -c | sort -rn | head -5 >&2",
                 (int)g_d.proc.pid);
        if (system(cmd) < 0)
            CHECK(0);
    }
}

int main(int argc, char **argv)
{
    start_daemon(argc, argv, disks, 1, NULL);
    check_serves();          /* warm up, then take the fd baseline */
    usleep(100000);
    g_base_fds = vuf_proc_count_fds(&g_d.proc);
    RUN(test_vring_index);
    RUN(test_mem_table_overlap);
    RUN(test_mem_table_fd_count);
    RUN(test_mem_region_bad);
    RUN(test_region_beyond_eof);
    RUN(test_wrong_payload_size);
    RUN(test_unknown_request);
    RUN(test_truncated_message);
    RUN(test_reply_to_closed_socket);
    RUN(test_ring_without_memory);
    RUN(test_ring_addr_bad);
    RUN(test_vring_num_bad);
    RUN(test_memory_pulled);
    RUN(test_odd_fds);
    RUN(test_odd_sequences);
    RUN(test_inflight_bad);
    RUN(test_no_leaks);
    return finish();
}

/* vhost-user message tests over a real unix socket: crafted bad messages
 * close the session (the listener then serves the next frontend), need_reply
 * acks, queue start/stop rules, deferred GET_VRING_BASE, disconnect with
 * requests in flight, reset, partial reads. The test plays both the frontend
 * (client socket, guest RAM in a memfd) and the device (ops callbacks,
 * vq_pop/vq_push). */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "test.h"
#include "guest.h"
#include "util/log.h"
#include "util/loop.h"
#include "vhost/dev_internal.h"

#define NQ              4
#define QSIZE           16
#define F(bit)          (1ull << (bit))
#define DEV_FEATURES    F(0)            /* e.g. VIRTIO_SCSI_F_HOTPLUG */
#define PROTO_ALL       VHOST_PROTOCOL_FEATURES_OFFERED
#define RING(q)         (0xC000u * (q))
#define DATA            0x40000u

static struct ev_loop *loop;
static struct vhost_dev *dev;
static char dir[64], path[108];
static int ram_fd;
static uint8_t *ram;

static struct {
    unsigned started[NQ], stopped[NQ], session_end;
    struct vq *vq[NQ];
    uint64_t features;
} rec;

static void cb_start(void *o, unsigned q, struct vq *vq) { rec.started[q]++; rec.vq[q] = vq; }
static void cb_stop(void *o, unsigned q, struct vq *vq) { rec.stopped[q]++; }
static void cb_features(void *o, uint64_t f) { rec.features = f; }
static void cb_end(void *o) { rec.session_end++; }

static const struct vhost_dev_ops ops = {
    .device_features = DEV_FEATURES,
    .queue_start = cb_start,
    .queue_stop = cb_stop,
    .features_set = cb_features,
    .session_end = cb_end,
};

/* Run the loop until it has been idle for a few rounds. */
static void pump(void)
{
    for (int idle = 0, i = 0; idle < 3 && i < 200; i++)
        idle = ev_loop_run_once(loop, 2) > 0 ? 0 : idle + 1;
}

static int client(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strcpy(sa.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_raw(int fd, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nfds) {
        mh.msg_control = cbuf.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds)
{
    uint8_t buf[12 + 4096];
    struct vhost_msg_hdr h = { req, flags, size };

    memcpy(buf, &h, 12);
    if (size)
        memcpy(buf + 12, payload, size);
    return send_raw(fd, buf, 12 + size, fds, nfds);
}

/* Reply after pumping: 0 and the payload, or -1 when none has come. */
static int recv_reply(int fd, uint32_t req, void *payload, uint32_t *size)
{
    struct vhost_msg_hdr h;

    pump();
    if (recv(fd, &h, 12, MSG_DONTWAIT) != 12)
        return -1;
    CHECK_EQ(h.request, req);
    CHECK_EQ(h.flags, VHOST_USER_VERSION | VHOST_USER_REPLY);
    if (h.size && recv(fd, payload, h.size, MSG_DONTWAIT) != (ssize_t)h.size)
        return -1;
    if (size)
        *size = h.size;
    return 0;
}

static bool closed(int fd)
{
    char c;

    pump();
    return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static uint64_t get_u64(int fd, uint32_t req)
{
    uint64_t v = ~0ull;
    uint32_t size = 0;

    CHECK_EQ(send_msg(fd, req, VHOST_USER_VERSION, NULL, 0, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd, req, &v, &size), 0);
    CHECK_EQ(size, 8);
    return v;
}

/* Send with need_reply; the ack value, or -1 when no ack came. */
static int64_t acked(int fd, uint32_t req, const void *p, uint32_t size, const int *fds,
                     unsigned nfds)
{
    uint64_t v;
    uint32_t rsize;

    if (send_msg(fd, req, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY, p, size, fds, nfds) < 0)
        return -1;
    if (recv_reply(fd, req, &v, &rsize) < 0 || rsize != 8)
        return -1;
    return (int64_t)v;
}

static int64_t ack_u64(int fd, uint32_t req, uint64_t v, int kfd)
{
    return acked(fd, req, &v, 8, &kfd, kfd >= 0);
}

static int64_t ack_state(int fd, uint32_t req, uint32_t index, uint32_t num)
{
    struct vhost_vring_state st = { index, num };

    return acked(fd, req, &st, sizeof(st), NULL, 0);
}

/* GET_FEATURES .. SET_OWNER as QEMU does at init. */
static int connect_session(uint64_t proto)
{
    int fd = client();

    CHECK(fd >= 0);
    get_u64(fd, VHOST_USER_GET_FEATURES);
    get_u64(fd, VHOST_USER_GET_PROTOCOL_FEATURES);
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, &proto, 8,
                      NULL, 0), 0);
    CHECK_EQ(acked(fd, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
    CHECK(vhost_dev_connected(dev));
    return fd;
}

static struct vhost_mem_desc ram_region(void)
{
    return (struct vhost_mem_desc){ .gpa = G_GPA, .size = G_SIZE, .uva = G_UVA };
}

static void set_mem_table(int fd)
{
    struct vhost_mem_table_msg t = { .nregions = 1, .regions = { ram_region() } };

    CHECK_EQ(acked(fd, VHOST_USER_SET_MEM_TABLE, &t, 8 + 32, &ram_fd, 1), 0);
}

static struct vring_desc *q_desc(unsigned q) { return (void *)(ram + RING(q)); }
static struct vring_avail *q_avail(unsigned q) { return (void *)(ram + RING(q) + 0x4000); }
static struct vring_used *q_used(unsigned q) { return (void *)(ram + RING(q) + 0x8000); }

/* NUM, BASE, ADDR, KICK, CALL (and ENABLE) as QEMU does at start. */
static void setup_queue(int fd, unsigned q, int kick, int call, bool enable)
{
    struct vhost_vring_addr a = {
        .index = q,
        .desc = G_UVA + RING(q),
        .avail = G_UVA + RING(q) + 0x4000,
        .used = G_UVA + RING(q) + 0x8000,
    };

    memset(ram + RING(q), 0, 0xC000);
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_NUM, q, QSIZE), 0);
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_BASE, q, 0), 0);
    CHECK_EQ(acked(fd, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_VRING_KICK, q | (kick < 0 ? VHOST_USER_VRING_NOFD : 0),
                     kick), 0);
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_VRING_CALL, q | (call < 0 ? VHOST_USER_VRING_NOFD : 0),
                     call), 0);
    if (enable)
        CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
}

/* A running queue q with the standard features; returns the session fd. */
static int running_queue(unsigned q, int kick, int call)
{
    int fd = connect_session(PROTO_ALL);

    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_FEATURES,
                     F(VIRTIO_F_VERSION_1) | F(VHOST_USER_F_PROTOCOL_FEATURES) | DEV_FEATURES, -1),
             0);
    set_mem_table(fd);
    setup_queue(fd, q, kick, call, true);
    CHECK(rec.vq[q] && vq_running(rec.vq[q]));
    if (call >= 0) {
        uint64_t v;

        /* One signal at start: a killed predecessor may have left used
         * entries unsignalled. */
        CHECK(read(call, &v, 8) == 8);
    }
    return fd;
}

/* The guest makes one 16-byte writable buffer available on queue q. */
static void guest_add(unsigned q, uint16_t head)
{
    struct vring_avail *av = q_avail(q);

    q_desc(q)[head] = (struct vring_desc){ G_GPA + DATA + head * 64, 64, VRING_DESC_F_WRITE, 0 };
    av->ring[av->idx % QSIZE] = head;
    __atomic_store_n(&av->idx, av->idx + 1, __ATOMIC_RELEASE);
}

static void reset_rec(void)
{
    memset(&rec, 0, sizeof(rec));
}

/* ---- tests ---- */

static void test_handshake(void)
{
    int fd = client();
    uint64_t f;

    CHECK(fd >= 0);
    f = get_u64(fd, VHOST_USER_GET_FEATURES);
    CHECK_EQ(f, VHOST_TRANSPORT_FEATURES | DEV_FEATURES);
    CHECK(f & F(VIRTIO_F_VERSION_1));
    CHECK(f & F(VHOST_USER_F_PROTOCOL_FEATURES));
    CHECK(f & F(VIRTIO_RING_F_EVENT_IDX));
    CHECK(f & F(VIRTIO_RING_F_INDIRECT_DESC));
    CHECK(f & F(VIRTIO_F_RING_RESET));
    CHECK(!(f & F(VHOST_F_LOG_ALL)));
    f = get_u64(fd, VHOST_USER_GET_PROTOCOL_FEATURES);
    CHECK(f & F(VHOST_USER_PROTOCOL_F_MQ));
    CHECK(f & F(VHOST_USER_PROTOCOL_F_REPLY_ACK));
    CHECK(f & F(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
    CHECK(f & F(VHOST_USER_PROTOCOL_F_RESET_DEVICE));
    CHECK(!(f & F(VHOST_USER_PROTOCOL_F_LOG_SHMFD)));
    CHECK(f & F(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD));
    CHECK(!(f & F(VHOST_USER_PROTOCOL_F_CONFIG)));
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_PROTOCOL_FEATURES, PROTO_ALL, -1), 0);
    CHECK_EQ(get_u64(fd, VHOST_USER_GET_QUEUE_NUM), NQ);
    CHECK_EQ(get_u64(fd, VHOST_USER_GET_MAX_MEM_SLOTS), VHOST_MEM_MAX_SLOTS);
    CHECK_EQ(acked(fd, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
    /* A need_reply GET_* gets its own reply, no extra ack. */
    CHECK_EQ(send_msg(fd, VHOST_USER_GET_QUEUE_NUM, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY,
                      NULL, 0, NULL, 0), 0);
    uint64_t v;
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_QUEUE_NUM, &v, NULL), 0);
    CHECK_EQ(v, NQ);
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_QUEUE_NUM, &v, NULL), -1);
    /* SET_FEATURES tells the device. */
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_FEATURES, F(VIRTIO_F_VERSION_1) | DEV_FEATURES, -1), 0);
    CHECK_EQ(rec.features, F(VIRTIO_F_VERSION_1) | DEV_FEATURES);
    CHECK_EQ(vhost_dev_features(dev), F(VIRTIO_F_VERSION_1) | DEV_FEATURES);
    CHECK(vhost_dev_has_feature(dev, VIRTIO_F_VERSION_1));
    CHECK(!vhost_dev_has_feature(dev, 99));
    close(fd);
    pump();
    CHECK(!vhost_dev_connected(dev));
}

struct bad_msg {
    const char *what;
    uint32_t req, flags, size;
    uint8_t payload[300];
    unsigned nfds;
};

#define V VHOST_USER_VERSION
#define U64(x) { (uint64_t)(x) & 0xff, ((uint64_t)(x) >> 8) & 0xff, ((uint64_t)(x) >> 16) & 0xff, ((uint64_t)(x) >> 24) & 0xff, \
                 ((uint64_t)(x) >> 32) & 0xff, ((uint64_t)(x) >> 40) & 0xff, \
                 ((uint64_t)(x) >> 48) & 0xff, ((uint64_t)(x) >> 56) & 0xff }
#define STATE(i, n) { (i) & 0xff, ((i) >> 8) & 0xff, 0, 0, (n) & 0xff, ((n) >> 8) & 0xff, 0, 0 }

static const struct bad_msg bad_msgs[] = {
    { "SET_FEATURES short", VHOST_USER_SET_FEATURES, V, 4, {0}, 0 },
    { "GET_FEATURES with payload", VHOST_USER_GET_FEATURES, V, 8, {0}, 0 },
    { "GET_FEATURES with an fd", VHOST_USER_GET_FEATURES, V, 0, {0}, 1 },
    { "SET_FEATURES unoffered bit", VHOST_USER_SET_FEATURES, V, 8, U64(1ull << VHOST_F_LOG_ALL), 0 },
    { "SET_PROTOCOL_FEATURES unoffered", VHOST_USER_SET_PROTOCOL_FEATURES, V, 8,
      U64(1ull << VHOST_USER_PROTOCOL_F_CONFIG), 0 },
    { "SET_VRING_NUM bad index", VHOST_USER_SET_VRING_NUM, V, 8, STATE(NQ, 16), 0 },
    { "SET_VRING_NUM huge index", VHOST_USER_SET_VRING_NUM, V, 8,
      { 0xff, 0xff, 0xff, 0xff, 16, 0, 0, 0 }, 0 },
    { "SET_VRING_NUM not pow2", VHOST_USER_SET_VRING_NUM, V, 8, STATE(0, 12), 0 },
    { "SET_VRING_NUM too big", VHOST_USER_SET_VRING_NUM, V, 8, { 0, 0, 0, 0, 0, 0, 1, 0 }, 0 },
    { "SET_VRING_BASE > 0xffff", VHOST_USER_SET_VRING_BASE, V, 8, { 0, 0, 0, 0, 0, 0, 1, 0 }, 0 },
    { "GET_VRING_BASE bad index", VHOST_USER_GET_VRING_BASE, V, 8, STATE(NQ, 0), 0 },
    { "SET_VRING_ENABLE bad index", VHOST_USER_SET_VRING_ENABLE, V, 8, STATE(200, 1), 0 },
    { "SET_VRING_ENABLE value 2", VHOST_USER_SET_VRING_ENABLE, V, 8, STATE(0, 2), 0 },
    { "SET_VRING_ADDR bad index", VHOST_USER_SET_VRING_ADDR, V, 40, { 9 }, 0 },
    { "SET_VRING_ADDR short", VHOST_USER_SET_VRING_ADDR, V, 32, { 0 }, 0 },
    { "SET_VRING_ADDR misaligned", VHOST_USER_SET_VRING_ADDR, V, 40,
      { 0, 0, 0, 0, 0, 0, 0, 0, 8 }, 0 },
    { "SET_VRING_KICK bad index", VHOST_USER_SET_VRING_KICK, V, 8, U64(NQ), 1 },
    { "SET_VRING_KICK nofd with fd", VHOST_USER_SET_VRING_KICK, V, 8, U64(0x100), 1 },
    { "SET_VRING_CALL fd missing", VHOST_USER_SET_VRING_CALL, V, 8, U64(0), 0 },
    { "SET_VRING_CALL two fds", VHOST_USER_SET_VRING_CALL, V, 8, U64(0), 2 },
    { "SET_VRING_ERR unknown bits", VHOST_USER_SET_VRING_ERR, V, 8, U64(0x300), 0 },
    { "SET_MEM_TABLE no regions", VHOST_USER_SET_MEM_TABLE, V, 8, { 0 }, 0 },
    { "SET_MEM_TABLE 9 regions", VHOST_USER_SET_MEM_TABLE, V, 8 + 32 * 8, { 9 }, 8 },
    { "SET_MEM_TABLE size mismatch", VHOST_USER_SET_MEM_TABLE, V, 8 + 32 * 2, { 1 }, 1 },
    { "SET_LOG_BASE not negotiated", VHOST_USER_SET_LOG_BASE, V, 16, { 0 }, 1 },
    { "SET_LOG_FD not negotiated", VHOST_USER_SET_LOG_FD, V, 0, { 0 }, 1 },
    { "SET_INFLIGHT_FD without its fd", VHOST_USER_SET_INFLIGHT_FD, V, 24, { 0 }, 0 },
    { "ADD_MEM_REG without fd", VHOST_USER_ADD_MEM_REG, V, 40, { 0 }, 0 },
    { "GET_CONFIG size mismatch", VHOST_USER_GET_CONFIG, V, 12, { 0, 0, 0, 0, 4 }, 0 },
    { "unknown request", 99, V, 8, { 0 }, 0 },
    { "unknown big id", 0x80000001u, V, 0, { 0 }, 0 },
    { "version 2", VHOST_USER_GET_FEATURES, 2, 0, { 0 }, 0 },
    { "reply flag", VHOST_USER_GET_FEATURES, V | VHOST_USER_REPLY, 0, { 0 }, 0 },
    { "unknown flag", VHOST_USER_GET_FEATURES, V | 0x100, 0, { 0 }, 0 },
};

/* Each bad message (with and without need_reply) closes its session; the
 * next frontend is served. */
static void test_bad_messages(void)
{
    for (unsigned i = 0; i < sizeof(bad_msgs) / sizeof(bad_msgs[0]); i++) {
        for (int nr = 0; nr < 2; nr++) {
            const struct bad_msg *b = &bad_msgs[i];
            int fds[8], fd;
            unsigned ends = rec.session_end;

            /* Unknown requests with need_reply are answered instead. */
            if (nr && (b->req == 99 || b->req == 0x80000001u))
                continue;
            for (unsigned k = 0; k < b->nfds; k++)
                fds[k] = eventfd(0, EFD_CLOEXEC);
            fd = connect_session(PROTO_ALL);
            CHECK_EQ(send_msg(fd, b->req, b->flags | (nr ? VHOST_USER_NEED_REPLY : 0),
                              b->payload, b->size, fds, b->nfds), 0);
            if (!closed(fd))
                fprintf(stderr, "  not closed after: %s%s\n", b->what, nr ? " (need_reply)" : "");
            CHECK(closed(fd));
            CHECK(!vhost_dev_connected(dev));
            CHECK_EQ(rec.session_end, ends + 1);
            close(fd);
            for (unsigned k = 0; k < b->nfds; k++)
                close(fds[k]);
        }
    }
    /* Still serving. */
    int fd = connect_session(PROTO_ALL);
    CHECK_EQ(get_u64(fd, VHOST_USER_GET_QUEUE_NUM), NQ);
    close(fd);
    pump();
}

static void test_oversized_payload(void)
{
    int fd = connect_session(PROTO_ALL);
    struct vhost_msg_hdr h = { VHOST_USER_SET_FEATURES, V, VHOST_MSG_MAX_PAYLOAD + 1 };

    CHECK_EQ(send_raw(fd, &h, 12, NULL, 0), 0);
    CHECK(closed(fd));
    close(fd);
}

static void test_bad_mem_tables(void)
{
    struct vhost_mem_table_msg t;
    int fds[2] = { ram_fd, ram_fd };
    struct {
        const char *what;
        struct vhost_mem_desc r[2];
    } cases[] = {
        { "overlap", { { G_GPA, 0x1000, G_UVA, 0 }, { G_GPA + 0xfff, 0x1000, G_UVA + 0x1000, 0x1000 } } },
        { "same range", { { G_GPA, 0x1000, G_UVA, 0 }, { G_GPA, 0x1000, G_UVA + 0x1000, 0x1000 } } },
        { "zero size", { { G_GPA, 0x1000, G_UVA, 0 }, { G_GPA + 0x1000, 0, G_UVA + 0x1000, 0 } } },
        { "gpa wraps", { { G_GPA, 0x1000, G_UVA, 0 }, { ~0ull - 0xfff, 0x2000, G_UVA + 0x1000, 0 } } },
        { "uva wraps", { { G_GPA, 0x1000, G_UVA, 0 }, { 0, 0x1000, ~0ull, 0 } } },
        { "past file end", { { G_GPA, 0x1000, G_UVA, 0 }, { 0, 0x1000, 0, G_SIZE } } },
    };

    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = connect_session(PROTO_ALL);

        memset(&t, 0, sizeof(t));
        t.nregions = 2;
        memcpy(t.regions, cases[i].r, sizeof(cases[i].r));
        CHECK_EQ(send_msg(fd, VHOST_USER_SET_MEM_TABLE, V | VHOST_USER_NEED_REPLY, &t, 8 + 64,
                          fds, 2), 0);
        if (!closed(fd))
            fprintf(stderr, "  not closed after: %s\n", cases[i].what);
        CHECK(closed(fd));
        close(fd);
    }
}

static void test_mem_slots(void)
{
    int fd = connect_session(PROTO_ALL);
    struct vhost_mem_reg_msg m = { 0 };

    /* Fill every slot with one 4 KiB page of the RAM file each. */
    for (unsigned i = 0; i < VHOST_MEM_MAX_SLOTS; i++) {
        m.region = (struct vhost_mem_desc){ G_GPA + i * 0x10000, 0x1000, G_UVA + i * 0x10000,
                                            i * 0x1000 };
        CHECK_EQ(acked(fd, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &ram_fd, 1), 0);
    }
    /* Removing needs the exact gpa/uva/size; the mmap offset is ignored. */
    m.region = (struct vhost_mem_desc){ G_GPA, 0x1000, G_UVA + 1, 0 };
    CHECK_EQ(acked(fd, VHOST_USER_REM_MEM_REG, &m, sizeof(m), NULL, 0), 1);
    m.region = (struct vhost_mem_desc){ G_GPA, 0x1000, G_UVA, 0xdead000 };
    CHECK_EQ(acked(fd, VHOST_USER_REM_MEM_REG, &m, sizeof(m), &ram_fd, 1), 0);
    m.region = (struct vhost_mem_desc){ G_GPA + 0x5000, 0x1000, G_UVA + 0x5000, 0 };
    CHECK_EQ(acked(fd, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &ram_fd, 1), 0);
    /* Slot 33. */
    m.region = (struct vhost_mem_desc){ G_GPA + 0x800000, 0x1000, G_UVA + 0x800000, 0 };
    CHECK_EQ(send_msg(fd, VHOST_USER_ADD_MEM_REG, V | VHOST_USER_NEED_REPLY, &m, sizeof(m),
                      &ram_fd, 1), 0);
    CHECK(closed(fd));
    close(fd);

    /* Overlap through ADD_MEM_REG. */
    fd = connect_session(PROTO_ALL);
    m.region = (struct vhost_mem_desc){ G_GPA, 0x2000, G_UVA, 0 };
    CHECK_EQ(acked(fd, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &ram_fd, 1), 0);
    m.region = (struct vhost_mem_desc){ G_GPA + 0x1000, 0x2000, G_UVA + 0x10000, 0 };
    CHECK_EQ(send_msg(fd, VHOST_USER_ADD_MEM_REG, V, &m, sizeof(m), &ram_fd, 1), 0);
    CHECK(closed(fd));
    close(fd);
}

static void test_need_reply(void)
{
    int fd = connect_session(PROTO_ALL);
    struct vhost_config_msg c = { .offset = 0, .size = 4 };
    uint32_t size = 99;
    uint64_t junk = 0;

    /* Unknown but well-formed with need_reply: failure ack, session lives. */
    CHECK(acked(fd, 99, &junk, 8, NULL, 0) > 0);
    int efd = eventfd(0, EFD_CLOEXEC);
    CHECK(acked(fd, 60, NULL, 0, &efd, 1) > 0);
    close(efd);
    /* GET_CONFIG: an empty reply means failure; SET_CONFIG is refused. */
    CHECK_EQ(send_msg(fd, VHOST_USER_GET_CONFIG, V, &c, 12 + 4, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_CONFIG, &junk, &size), 0);
    CHECK_EQ(size, 0);
    CHECK(acked(fd, VHOST_USER_SET_CONFIG, &c, 12 + 4, NULL, 0) > 0);
    /* Without need_reply SET_CONFIG is ignored, not fatal. */
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_CONFIG, V, &c, 12 + 4, NULL, 0), 0);
    /* Removing an unknown region fails politely. */
    struct vhost_mem_reg_msg m = { .region = { G_GPA, 0x1000, G_UVA, 0 } };
    CHECK(acked(fd, VHOST_USER_REM_MEM_REG, &m, sizeof(m), NULL, 0) > 0);
    CHECK(vhost_dev_connected(dev));
    CHECK_EQ(get_u64(fd, VHOST_USER_GET_QUEUE_NUM), NQ);
    close(fd);
    pump();
}

static void test_queue_lifecycle(void)
{
    int kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct iovec iov[4];
    struct vq_elem e;
    struct vhost_vring_state st;
    uint32_t size;
    uint64_t v;
    int fd;

    reset_rec();
    fd = connect_session(PROTO_ALL);
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_FEATURES,
                     F(VIRTIO_F_VERSION_1) | F(VHOST_USER_F_PROTOCOL_FEATURES), -1), 0);
    set_mem_table(fd);
    /* Everything but enable: rings start disabled with PROTOCOL_FEATURES. */
    setup_queue(fd, 2, kick, call, false);
    CHECK_EQ(rec.started[2], 0);
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_ENABLE, 2, 1), 0);
    CHECK_EQ(rec.started[2], 1);
    CHECK_EQ(vq_kick_fd(rec.vq[2]) >= 0, 1);
    CHECK_EQ(vq_size(rec.vq[2]), QSIZE);
    CHECK_EQ(vq_index(rec.vq[2]), 2);
    CHECK(rec.vq[2] == vhost_dev_vq(dev, 2));
    CHECK(vhost_dev_vq(dev, NQ) == NULL);

    /* Busy queue refuses a new size (failure ack, session lives). */
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_NUM, 2, 8), 1);

    /* Disable stops, enable restarts. */
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_ENABLE, 2, 0), 0);
    CHECK_EQ(rec.stopped[2], 1);
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_ENABLE, 2, 1), 0);
    CHECK_EQ(rec.started[2], 2);

    /* The device pops one request. */
    guest_add(2, 5);
    CHECK_EQ(vq_pop(rec.vq[2], &e, iov, 4), 1);
    CHECK_EQ(e.head, 5);
    CHECK_EQ(e.in_num, 1);

    /* GET_VRING_BASE stops the ring and waits for the element. */
    CHECK_EQ(send_msg(fd, VHOST_USER_GET_VRING_BASE, V, &(struct vhost_vring_state){ 2, 0 }, 8,
                      NULL, 0), 0);
    CHECK_EQ(send_msg(fd, VHOST_USER_GET_QUEUE_NUM, V, NULL, 0, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_VRING_BASE, &st, &size), -1);
    CHECK_EQ(rec.stopped[2], 2);
    CHECK(!vq_running(rec.vq[2]));
    CHECK_EQ(vq_pop(rec.vq[2], &e, iov, 4), 0);     /* stopped: nothing more */
    memcpy(iov[0].iov_base, "done", 4);
    vq_push(rec.vq[2], &e, 4);
    vq_notify(rec.vq[2]);
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_VRING_BASE, &st, &size), 0);
    CHECK_EQ(size, 8);
    CHECK_EQ(st.index, 2);
    CHECK_EQ(st.num, 1);
    CHECK_EQ(q_used(2)->idx, 1);
    CHECK_EQ(q_used(2)->ring[0].id, 5);
    CHECK_EQ(q_used(2)->ring[0].len, 4);
    CHECK_MEM(ram + DATA + 5 * 64, "done", 4);
    CHECK(read(call, &v, 8) == 8);
    /* Reading resumed: the message queued behind is answered. */
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_QUEUE_NUM, &v, NULL), 0);
    CHECK_EQ(v, NQ);

    /* GET_VRING_BASE on an idle ring answers at once. */
    st = (struct vhost_vring_state){ 1, 0 };
    CHECK_EQ(send_msg(fd, VHOST_USER_GET_VRING_BASE, V, &st, 8, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_VRING_BASE, &st, NULL), 0);
    CHECK_EQ(st.index, 1);
    CHECK_EQ(st.num, 0);

    /* Restart from base 1 with a new kick fd (enable state kept). */
    close(kick);
    kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK_EQ(ack_state(fd, VHOST_USER_SET_VRING_BASE, 2, 1), 0);
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_VRING_KICK, 2, kick), 0);
    CHECK_EQ(rec.started[2], 3);
    guest_add(2, 6);
    CHECK_EQ(vq_pop(rec.vq[2], &e, iov, 4), 1);
    CHECK_EQ(e.head, 6);
    vq_push(rec.vq[2], &e, 0);

    /* Polling kick (no fd) also starts a ring. */
    setup_queue(fd, 3, -1, call, true);
    CHECK_EQ(rec.started[3], 1);
    CHECK_EQ(vq_kick_fd(rec.vq[3]), -1);

    close(fd);
    pump();
    CHECK_EQ(rec.stopped[2], 3);
    CHECK_EQ(rec.stopped[3], 1);
    CHECK_EQ(rec.session_end, 1);
    close(kick);
    close(call);
}

static void test_disconnect_inflight(void)
{
    int call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), fd, fd2;
    struct iovec iov[4];
    struct vq_elem e;
    uint64_t v;

    reset_rec();
    fd = running_queue(0, -1, call);
    guest_add(0, 3);
    CHECK_EQ(vq_pop(rec.vq[0], &e, iov, 4), 1);
    close(fd);
    pump();
    CHECK_EQ(rec.stopped[0], 1);
    CHECK_EQ(rec.session_end, 1);
    CHECK(!vhost_dev_connected(dev));

    /* The next frontend waits in the backlog until the element is pushed. */
    fd2 = client();
    CHECK(fd2 >= 0);
    CHECK_EQ(send_msg(fd2, VHOST_USER_GET_QUEUE_NUM, V, NULL, 0, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd2, VHOST_USER_GET_QUEUE_NUM, &v, NULL), -1);

    /* Memory is still mapped: the device may finish writing. */
    memcpy(iov[0].iov_base, "late", 4);
    CHECK_MEM(ram + DATA + 3 * 64, "late", 4);
    vq_push(rec.vq[0], &e, 4);
    vq_notify(rec.vq[0]);
    CHECK_EQ(q_used(0)->idx, 0);                /* the ring is not touched any more */
    CHECK(read(call, &v, 8) < 0);               /* no signal on a dead session */
    CHECK_EQ(recv_reply(fd2, VHOST_USER_GET_QUEUE_NUM, &v, NULL), 0);
    CHECK_EQ(v, NQ);
    close(fd2);
    pump();
    close(call);
}

static void test_backlog(void)
{
    int fd1 = connect_session(PROTO_ALL), fd2 = client();
    uint64_t v;

    CHECK(fd2 >= 0);
    CHECK_EQ(send_msg(fd2, VHOST_USER_GET_QUEUE_NUM, V, NULL, 0, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd2, VHOST_USER_GET_QUEUE_NUM, &v, NULL), -1);
    CHECK_EQ(get_u64(fd1, VHOST_USER_GET_QUEUE_NUM), NQ);
    close(fd1);
    CHECK_EQ(recv_reply(fd2, VHOST_USER_GET_QUEUE_NUM, &v, NULL), 0);
    CHECK_EQ(v, NQ);
    close(fd2);
    pump();
}

static void test_hangup_while_deferred(void)
{
    struct iovec iov[4];
    struct vq_elem e;
    int fd;

    reset_rec();
    fd = running_queue(1, -1, -1);
    guest_add(1, 0);
    CHECK_EQ(vq_pop(rec.vq[1], &e, iov, 4), 1);
    CHECK_EQ(send_msg(fd, VHOST_USER_GET_VRING_BASE, V, &(struct vhost_vring_state){ 1, 0 }, 8,
                      NULL, 0), 0);
    pump();
    close(fd);
    pump();
    CHECK(!vhost_dev_connected(dev));
    CHECK_EQ(rec.session_end, 1);
    vq_push(rec.vq[1], &e, 0);
    pump();
    fd = connect_session(PROTO_ALL);
    close(fd);
    pump();
}

static void test_reset_device(void)
{
    struct iovec iov[4];
    struct vq_elem e;
    int fd;

    reset_rec();
    fd = running_queue(0, -1, -1);
    guest_add(0, 1);
    CHECK_EQ(vq_pop(rec.vq[0], &e, iov, 4), 1);
    /* The reset waits for the element, then acks. */
    CHECK_EQ(send_msg(fd, VHOST_USER_RESET_DEVICE, V | VHOST_USER_NEED_REPLY, NULL, 0, NULL, 0),
             0);
    uint64_t v = 99;
    CHECK_EQ(recv_reply(fd, VHOST_USER_RESET_DEVICE, &v, NULL), -1);
    CHECK_EQ(rec.stopped[0], 1);
    CHECK_EQ(rec.session_end, 1);
    vq_push(rec.vq[0], &e, 0);
    CHECK_EQ(recv_reply(fd, VHOST_USER_RESET_DEVICE, &v, NULL), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(vhost_dev_features(dev), 0);
    CHECK(!vq_running(rec.vq[0]));
    CHECK_EQ(vq_size(rec.vq[0]), 0);

    /* Restart without a new memory table: QEMU keeps its view of our regions. */
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_FEATURES,
                     F(VIRTIO_F_VERSION_1) | F(VHOST_USER_F_PROTOCOL_FEATURES), -1), 0);
    setup_queue(fd, 0, -1, -1, true);
    CHECK_EQ(rec.started[0], 2);
    guest_add(0, 2);
    CHECK_EQ(vq_pop(rec.vq[0], &e, iov, 4), 1);
    vq_push(rec.vq[0], &e, 0);

    /* RESET_OWNER (deprecated) behaves the same. */
    CHECK_EQ(acked(fd, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0), 0);
    CHECK_EQ(rec.stopped[0], 2);
    CHECK(vhost_dev_connected(dev));
    close(fd);
    pump();
}

static void test_no_protocol_features(void)
{
    int fd = client(), kick = eventfd(0, EFD_CLOEXEC);
    uint64_t f = F(VIRTIO_F_VERSION_1);
    struct vhost_mem_table_msg t = { .nregions = 1, .regions = { ram_region() } };
    struct vhost_vring_addr a = { 0, 0, G_UVA, G_UVA + 0x8000, G_UVA + 0x4000, 0 };
    struct vhost_vring_state st = { 0, QSIZE };

    reset_rec();
    /* A legacy frontend: no REPLY_ACK, no enable; the kick fd starts the ring. */
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_OWNER, V, NULL, 0, NULL, 0), 0);
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_FEATURES, V, &f, 8, NULL, 0), 0);
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_MEM_TABLE, V, &t, 8 + 32, &ram_fd, 1), 0);
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_VRING_NUM, V, &st, 8, NULL, 0), 0);
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_VRING_ADDR, V, &a, sizeof(a), NULL, 0), 0);
    pump();
    CHECK_EQ(rec.started[0], 0);
    uint64_t k = 0;
    CHECK_EQ(send_msg(fd, VHOST_USER_SET_VRING_KICK, V, &k, 8, &kick, 1), 0);
    pump();
    CHECK_EQ(rec.started[0], 1);
    close(fd);
    close(kick);
    pump();
}

static void test_partial_reads(void)
{
    struct vhost_mem_table_msg t = { .nregions = 1, .regions = { ram_region() } };
    uint8_t buf[12 + 40];
    struct vhost_msg_hdr h = { VHOST_USER_SET_MEM_TABLE, V | VHOST_USER_NEED_REPLY, 8 + 32 };
    int fd = connect_session(PROTO_ALL);
    uint64_t v = 1;

    memcpy(buf, &h, 12);
    memcpy(buf + 12, &t, 40);
    /* The fd rides on the first byte. */
    for (unsigned i = 0; i < sizeof(buf); i++) {
        CHECK_EQ(send_raw(fd, buf + i, 1, &ram_fd, i == 0), 0);
        pump();
    }
    CHECK_EQ(recv_reply(fd, VHOST_USER_SET_MEM_TABLE, &v, NULL), 0);
    CHECK_EQ(v, 0);
    CHECK(dev->mem && dev->mem->nregions == 1);

    /* Header and payload split differently. */
    h = (struct vhost_msg_hdr){ VHOST_USER_GET_QUEUE_NUM, V, 0 };
    CHECK_EQ(send_raw(fd, &h, 5, NULL, 0), 0);
    pump();
    CHECK_EQ(send_raw(fd, (uint8_t *)&h + 5, 7, NULL, 0), 0);
    CHECK_EQ(recv_reply(fd, VHOST_USER_GET_QUEUE_NUM, &v, NULL), 0);
    CHECK_EQ(v, NQ);

    /* An fd arriving in the middle of a message is refused. */
    h = (struct vhost_msg_hdr){ VHOST_USER_GET_QUEUE_NUM, V, 0 };
    CHECK_EQ(send_raw(fd, &h, 6, NULL, 0), 0);
    pump();
    CHECK_EQ(send_raw(fd, (uint8_t *)&h + 6, 6, &ram_fd, 1), 0);
    CHECK(closed(fd));
    close(fd);

    /* Hanging up mid-message just ends the session. */
    fd = connect_session(PROTO_ALL);
    CHECK_EQ(send_raw(fd, &h, 6, NULL, 0), 0);
    close(fd);
    pump();
    CHECK(!vhost_dev_connected(dev));
}

static void test_call_replacement(void)
{
    int c1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), c2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct iovec iov[4];
    struct vq_elem e;
    uint64_t v;
    int fd;

    reset_rec();
    fd = running_queue(0, -1, c1);
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_VRING_CALL, 0, c2), 0);
    CHECK_EQ(rec.stopped[0], 0);                /* no restart for a call fd */
    guest_add(0, 0);
    CHECK_EQ(vq_pop(rec.vq[0], &e, iov, 4), 1);
    vq_push(rec.vq[0], &e, 0);
    vq_notify(rec.vq[0]);
    CHECK(read(c1, &v, 8) < 0);
    CHECK(read(c2, &v, 8) == 8);
    /* Polling mode for calls: no fd, no signal, no crash. */
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_VRING_CALL, 0x100, -1), 0);
    guest_add(0, 1);
    CHECK_EQ(vq_pop(rec.vq[0], &e, iov, 4), 1);
    vq_push(rec.vq[0], &e, 0);
    vq_notify(rec.vq[0]);
    /* The error fd is signalled when the guest breaks the ring. */
    int err = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_VRING_ERR, 0, err), 0);
    q_avail(0)->ring[q_avail(0)->idx % QSIZE] = QSIZE + 3;    /* head out of range */
    q_avail(0)->idx++;
    CHECK(vq_pop(rec.vq[0], &e, iov, 4) < 0);
    CHECK(read(err, &v, 8) == 8);
    close(fd);
    pump();
    close(c1);
    close(c2);
    close(err);
}

static void test_mem_change_while_running(void)
{
    struct vhost_mem_reg_msg m = { .region = { G_GPA, G_SIZE / 2, G_UVA, 0 } };
    struct iovec iov[4];
    struct vq_elem e;
    int fd = connect_session(PROTO_ALL);

    reset_rec();
    CHECK_EQ(ack_u64(fd, VHOST_USER_SET_FEATURES,
                     F(VIRTIO_F_VERSION_1) | F(VHOST_USER_F_PROTOCOL_FEATURES), -1), 0);
    /* CONFIGURE_MEM_SLOTS style: one region per message. */
    CHECK_EQ(acked(fd, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &ram_fd, 1), 0);
    setup_queue(fd, 0, -1, -1, true);
    CHECK_EQ(rec.started[0], 1);
    guest_add(0, 4);
    CHECK_EQ(vq_pop(rec.vq[0], &e, iov, 4), 1);

    /* Hotplug: add the other half at run time, then remove it again. */
    struct vhost_mem_reg_msg m2 = { .region = { G_GPA + G_SIZE / 2, G_SIZE / 2,
                                                G_UVA + G_SIZE / 2, G_SIZE / 2 } };
    CHECK_EQ(acked(fd, VHOST_USER_ADD_MEM_REG, &m2, sizeof(m2), &ram_fd, 1), 0);
    CHECK(vq_running(rec.vq[0]));
    CHECK_EQ(acked(fd, VHOST_USER_REM_MEM_REG, &m2, sizeof(m2), NULL, 0), 0);
    CHECK(vq_running(rec.vq[0]) && !vq_is_broken(rec.vq[0]));
    /* The element popped through the first table is still fine. */
    memcpy(iov[0].iov_base, "ok", 2);
    vq_push(rec.vq[0], &e, 2);
    CHECK_EQ(q_used(0)->idx, 1);
    CHECK_MEM(ram + DATA + 4 * 64, "ok", 2);

    /* Removing the region the rings live in breaks the running queue. */
    CHECK_EQ(acked(fd, VHOST_USER_REM_MEM_REG, &m, sizeof(m), NULL, 0), 0);
    CHECK(vq_is_broken(rec.vq[0]));
    close(fd);
    pump();
}

static void test_socket_path(void)
{
    char err[200], p2[128];
    struct stat st;
    struct vhost_dev *d2;
    int fd;

    CHECK_EQ(stat(path, &st), 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* A live socket is not stolen. */
    d2 = vhost_dev_new(loop, path, NQ, &ops, NULL, err, sizeof(err));
    CHECK(d2 == NULL);
    /* A regular file is not removed. */
    snprintf(p2, sizeof(p2), "%s/file", dir);
    fd = open(p2, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(fd);
    d2 = vhost_dev_new(loop, p2, NQ, &ops, NULL, err, sizeof(err));
    CHECK(d2 == NULL);
    CHECK_EQ(stat(p2, &st), 0);
    unlink(p2);
    /* A stale socket is replaced. */
    snprintf(p2, sizeof(p2), "%s/stale", dir);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, p2);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    d2 = vhost_dev_new(loop, p2, NQ, &ops, NULL, err, sizeof(err));
    CHECK(d2 != NULL);
    vhost_dev_free(d2);
    CHECK(stat(p2, &st) < 0);
    /* Queue count limits. */
    CHECK(vhost_dev_new(loop, p2, 0, &ops, NULL, err, sizeof(err)) == NULL);
    CHECK(vhost_dev_new(loop, p2, VHOST_MAX_QUEUES + 1, &ops, NULL, err, sizeof(err)) == NULL);
}

int main(void)
{
    char err[200];

    log_set_level(getenv("VHOST_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERR);
    strcpy(dir, "/tmp/vhost-test-XXXXXX");
    if (!mkdtemp(dir))
        return 77;
    snprintf(path, sizeof(path), "%s/sock", dir);
    ram_fd = memfd_create("ram", MFD_CLOEXEC);
    if (ram_fd < 0 || ftruncate(ram_fd, G_SIZE) < 0)
        return 77;
    ram = mmap(NULL, G_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    loop = ev_loop_new();
    dev = vhost_dev_new(loop, path, NQ, &ops, NULL, err, sizeof(err));
    if (!dev) {
        fprintf(stderr, "vhost_dev_new: %s\n", err);
        return 1;
    }

    RUN_TEST(test_handshake);
    RUN_TEST(test_bad_messages);
    RUN_TEST(test_oversized_payload);
    RUN_TEST(test_bad_mem_tables);
    RUN_TEST(test_mem_slots);
    RUN_TEST(test_need_reply);
    RUN_TEST(test_queue_lifecycle);
    RUN_TEST(test_disconnect_inflight);
    RUN_TEST(test_backlog);
    RUN_TEST(test_hangup_while_deferred);
    RUN_TEST(test_reset_device);
    RUN_TEST(test_no_protocol_features);
    RUN_TEST(test_partial_reads);
    RUN_TEST(test_call_replacement);
    RUN_TEST(test_mem_change_while_running);
    RUN_TEST(test_socket_path);

    vhost_dev_free(dev);
    ev_loop_free(loop);
    munmap(ram, G_SIZE);
    close(ram_fd);
    rmdir(dir);
    return test_exit();
}

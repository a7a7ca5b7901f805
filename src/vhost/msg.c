/* vhost-user requests: one table entry per request id with the payload size,
 * fd count and queue index rules checked before the handler runs
 * (QEMU docs/interop/vhost-user.rst, "Front-end message types").
 *
 * Handler results: 0 done; VHOST_MSG_DEFERRED (reply once queues drain);
 * -EPROTO malformed (dev->why says why: the session closes); other -errno
 * failed (answered with a failure ack when need_reply is set, otherwise the
 * session closes). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/dev_internal.h"

enum msg_qidx {
    QIDX_NONE,
    QIDX_STATE,         /* struct vhost_vring_state.index */
    QIDX_ADDR,          /* struct vhost_vring_addr.index */
    QIDX_FILE,          /* u64: bits 0-7 index, bit 8 no fd, fd count follows bit 8 */
};

struct msg_spec {
    const char *name;
    uint32_t min_size, max_size;
    uint8_t min_fds, max_fds;
    uint8_t qidx;
    bool own_reply;             /* has a reply body: no REPLY_ACK ack on top */
    uint64_t proto;             /* protocol feature(s) that must be negotiated */
    int (*handler)(struct vhost_dev *dev, struct vhost_msg *msg);
};

uint64_t vhost_offered_features(const struct vhost_dev *dev)
{
    return VHOST_TRANSPORT_FEATURES | (dev->ops ? dev->ops->device_features : 0);
}

static struct vq *msg_vq(struct vhost_dev *dev, const struct vhost_msg *msg, enum msg_qidx kind)
{
    switch (kind) {
    case QIDX_STATE:
        return &dev->vqs[msg->p.state.index];
    case QIDX_ADDR:
        return &dev->vqs[msg->p.addr.index];
    case QIDX_FILE:
        return &dev->vqs[msg->p.u64 & VHOST_USER_VRING_IDX_MASK];
    default:
        return NULL;
    }
}

/* Take ownership of the message's first fd. */
static int msg_take_fd(struct vhost_msg *msg)
{
    int fd;

    if (msg->nfds == 0)
        return -1;
    fd = msg->fds[0];
    msg->fds[0] = -1;
    return fd;
}

static bool any_running(const struct vhost_dev *dev)
{
    for (unsigned i = 0; i < dev->num_vqs; i++)
        if (vq_running(&dev->vqs[i]))
            return true;
    return false;
}

/* ---- features and ownership ---- */

static int h_get_features(struct vhost_dev *dev, struct vhost_msg *msg)
{
    return vhost_dev_reply_u64(dev, msg->hdr.request, vhost_offered_features(dev));
}

static int h_set_features(struct vhost_dev *dev, struct vhost_msg *msg)
{
    uint64_t f = msg->p.u64, extra = f & ~vhost_offered_features(dev);

    if (extra)
        return vhost_dev_fail(dev, "SET_FEATURES 0x%" PRIx64 " has bits never offered: 0x%" PRIx64,
                              f, extra);
    /* The ring format must not change under a running queue. */
    if (dev->features_set && f != dev->features && any_running(dev))
        return -EBUSY;
    dev->features = f;
    dev->features_set = true;
    for (unsigned i = 0; i < dev->num_vqs; i++)
        vq_set_features(&dev->vqs[i], f);
    if (dev->ops->features_set)
        dev->ops->features_set(dev->opaque, f);
    return 0;
}

static int h_get_protocol_features(struct vhost_dev *dev, struct vhost_msg *msg)
{
    return vhost_dev_reply_u64(dev, msg->hdr.request, VHOST_PROTOCOL_FEATURES_OFFERED);
}

static int h_set_protocol_features(struct vhost_dev *dev, struct vhost_msg *msg)
{
    uint64_t f = msg->p.u64;

    if (f & ~VHOST_PROTOCOL_FEATURES_OFFERED)
        return vhost_dev_fail(dev, "SET_PROTOCOL_FEATURES 0x%" PRIx64 " has bits never offered",
                              f);
    dev->proto_features = f;
    return 0;
}

static int h_get_queue_num(struct vhost_dev *dev, struct vhost_msg *msg)
{
    return vhost_dev_reply_u64(dev, msg->hdr.request, dev->num_vqs);
}

static int h_get_max_mem_slots(struct vhost_dev *dev, struct vhost_msg *msg)
{
    return vhost_dev_reply_u64(dev, msg->hdr.request, VHOST_MEM_MAX_SLOTS);
}

static int h_set_owner(struct vhost_dev *dev, struct vhost_msg *msg)
{
    dev->owner = true;
    return 0;
}

/* ---- reset ---- */

/* RESET_DEVICE: rings back to the initial state, features forgotten. The
 * memory table and protocol features stay: QEMU keeps its shadow of our
 * regions (CONFIGURE_MEM_SLOTS sends only differences) and never resends
 * SET_PROTOCOL_FEATURES. Call/error fds stay too; QEMU replaces them at will. */
static void reset_session_state(struct vhost_dev *dev)
{
    for (unsigned i = 0; i < dev->num_vqs; i++) {
        struct vq *vq = &dev->vqs[i];

        vq_reset(vq, true);
        vq_set_mem(vq, dev->mem);
    }
    dev->features = 0;
    dev->features_set = false;
    /* QEMU asks for a new inflight buffer after a device reset. */
    vhost_dev_drop_inflight(dev);
}

static bool arm_drain_all(struct vhost_dev *dev)
{
    bool drained = true;

    for (unsigned i = 0; i < dev->num_vqs; i++)
        if (!vq_want_drain(&dev->vqs[i], true))
            drained = false;
    if (drained)
        for (unsigned i = 0; i < dev->num_vqs; i++)
            vq_want_drain(&dev->vqs[i], false);
    return drained;
}

/* RESET_OWNER is deprecated; like RESET_DEVICE it stops everything. */
static int h_reset(struct vhost_dev *dev, struct vhost_msg *msg)
{
    vhost_dev_stop_all(dev);
    for (unsigned i = 0; i < dev->num_vqs; i++)
        vq_set_kick(&dev->vqs[i], -1, false);
    if (arm_drain_all(dev)) {
        reset_session_state(dev);
        return 0;
    }
    /* Popped elements still point into the rings: finish them first. */
    dev->wait = VHOST_WAIT_RESET;
    dev->wait_request = msg->hdr.request;
    dev->wait_flags = msg->hdr.flags;
    return VHOST_MSG_DEFERRED;
}

/* ---- memory ---- */

static int mem_error(struct vhost_dev *dev, const char *req, int ret, const char *why)
{
    if (ret == -EINVAL)
        return vhost_dev_fail(dev, "%s: %s", req, why ? why : "invalid region");
    log_warn("vhost: %s: %s: %s", req, why ? why : "failed", strerror(-ret));
    return ret;
}

static int h_set_mem_table(struct vhost_dev *dev, struct vhost_msg *msg)
{
    const struct vhost_mem_table_msg *t = &msg->p.mem;
    struct vhost_mem *mem;
    const char *why = NULL;
    int ret = 0;

    if (t->nregions == 0 || t->nregions > VHOST_MEM_MSG_REGIONS)
        return vhost_dev_fail(dev, "SET_MEM_TABLE: %u regions (1..%u allowed)", t->nregions,
                              VHOST_MEM_MSG_REGIONS);
    if (msg->hdr.size != 8 + t->nregions * sizeof(struct vhost_mem_desc))
        return vhost_dev_fail(dev, "SET_MEM_TABLE: payload size %u does not match %u regions",
                              msg->hdr.size, t->nregions);
    if (msg->nfds != t->nregions)
        return vhost_dev_fail(dev, "SET_MEM_TABLE: %u fds for %u regions", msg->nfds,
                              t->nregions);
    mem = mem_new(NULL);
    if (!mem)
        return -ENOMEM;
    for (unsigned i = 0; i < t->nregions; i++) {
        struct vhost_mem_region *r;
        struct vhost_mem_desc d = t->regions[i];

        ret = mem_region_map(&d, msg->fds[i], &r, &why);
        if (ret < 0) {
            ret = mem_error(dev, "SET_MEM_TABLE", ret, why);
            goto err;
        }
        msg->fds[i] = -1;               /* the region owns it now */
        ret = mem_insert(mem, r);
        mem_region_unref(r);
        if (ret < 0) {
            ret = vhost_dev_fail(dev, "SET_MEM_TABLE: region %u (gpa 0x%" PRIx64 "+0x%" PRIx64
                                 ") overlaps another", i, d.gpa, d.size);
            goto err;
        }
    }
    vhost_dev_set_mem(dev, mem);
    return 0;

err:
    mem_unref(mem);
    return ret;
}

static int h_add_mem_reg(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vhost_mem_desc d = msg->p.reg.region;
    struct vhost_mem_region *r;
    struct vhost_mem *mem;
    const char *why = NULL;
    int ret;

    if (dev->mem && dev->mem->nregions >= VHOST_MEM_MAX_SLOTS)
        return vhost_dev_fail(dev, "ADD_MEM_REG: more than %u regions", VHOST_MEM_MAX_SLOTS);
    ret = mem_region_map(&d, msg->fds[0], &r, &why);
    if (ret < 0)
        return mem_error(dev, "ADD_MEM_REG", ret, why);
    msg->fds[0] = -1;
    mem = mem_new(dev->mem);
    if (!mem) {
        mem_region_unref(r);
        return -ENOMEM;
    }
    ret = mem_insert(mem, r);
    mem_region_unref(r);
    if (ret < 0) {
        mem_unref(mem);
        return vhost_dev_fail(dev, "ADD_MEM_REG: region gpa 0x%" PRIx64 "+0x%" PRIx64 " %s",
                              d.gpa, d.size, ret == -ENOSPC ? "exceeds the slot limit"
                                                            : "overlaps another");
    }
    vhost_dev_set_mem(dev, mem);
    return 0;
}

static int h_rem_mem_reg(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vhost_mem_desc d = msg->p.reg.region;
    struct vhost_mem *mem;
    int ret;

    /* Spec: an fd sent along (old frontends) is closed unused (done by the caller). */
    mem = mem_new(dev->mem);
    if (!mem)
        return -ENOMEM;
    ret = mem_remove(mem, &d);
    if (ret < 0) {
        log_warn("vhost: REM_MEM_REG: no region gpa 0x%" PRIx64 "+0x%" PRIx64 " uva 0x%" PRIx64,
                 d.gpa, d.size, d.uva);
        mem_unref(mem);
        return ret;
    }
    /* In-flight elements keep the removed mapping alive until pushed. */
    vhost_dev_set_mem(dev, mem);
    return 0;
}

/* ---- rings ---- */

static int h_set_vring_num(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vq *vq = msg_vq(dev, msg, QIDX_STATE);
    int ret = vq_set_num(vq, msg->p.state.num);

    if (ret == -EINVAL)
        return vhost_dev_fail(dev, "SET_VRING_NUM %u for queue %u: not a power of two <= %u",
                              msg->p.state.num, vq->index, VQ_MAX_SIZE);
    return ret;
}

static int h_set_vring_base(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vq *vq = msg_vq(dev, msg, QIDX_STATE);
    int ret = vq_set_base(vq, msg->p.state.num);

    if (ret == -EINVAL)
        return vhost_dev_fail(dev, "SET_VRING_BASE %u for queue %u: above 0xffff",
                              msg->p.state.num, vq->index);
    return ret;
}

static int h_set_vring_addr(struct vhost_dev *dev, struct vhost_msg *msg)
{
    const struct vhost_vring_addr *a = &msg->p.addr;
    struct vq *vq = msg_vq(dev, msg, QIDX_ADDR);
    int ret;

    /* QEMU resends the same addresses with a new log flag while running
     * (dirty logging on/off): no need to stop the queue for that. */
    if (vq_running(vq) && vq->desc_uva == a->desc && vq->avail_uva == a->avail &&
        vq->used_uva == a->used) {
        vq->addr_flags = a->flags;
        vq->log_gpa = a->log;
        return 0;
    }
    vhost_dev_queue_stop(dev, vq);
    ret = vq_set_addr(vq, a->desc, a->avail, a->used, a->flags, a->log);
    if (ret == -EINVAL)
        return vhost_dev_fail(dev, "SET_VRING_ADDR queue %u: misaligned rings", vq->index);
    if (ret == -EFAULT)
        return vhost_dev_fail(dev, "SET_VRING_ADDR queue %u: rings (desc 0x%" PRIx64 " avail 0x%"
                              PRIx64 " used 0x%" PRIx64 ", size %u) outside guest memory",
                              vq->index, a->desc, a->avail, a->used, vq->num);
    return ret;
}

static int finish_get_vring_base(struct vhost_dev *dev, struct vq *vq)
{
    struct vhost_vring_state st = { .index = vq->index, .num = vq_last_avail(vq) };

    /* The ring is stopped: a later start is a fresh one. */
    vq->broken = false;
    return vhost_dev_reply(dev, VHOST_USER_GET_VRING_BASE, &st, sizeof(st));
}

/* Stops the ring (spec "Ring states"); the reply carries the next avail
 * index once every popped element has been pushed. */
static int h_get_vring_base(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vq *vq = msg_vq(dev, msg, QIDX_STATE);

    vhost_dev_queue_stop(dev, vq);
    vq_set_kick(vq, -1, false);
    if (vq_want_drain(vq, true)) {
        vq_want_drain(vq, false);
        return finish_get_vring_base(dev, vq);
    }
    dev->wait = VHOST_WAIT_VRING_BASE;
    dev->wait_qidx = vq->index;
    dev->wait_request = msg->hdr.request;
    dev->wait_flags = msg->hdr.flags;
    return VHOST_MSG_DEFERRED;
}

static int h_set_vring_kick(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vq *vq = msg_vq(dev, msg, QIDX_FILE);

    /* The device watches the old fd: stop, swap, and let try_start restart. */
    vhost_dev_queue_stop(dev, vq);
    vq_set_kick(vq, msg_take_fd(msg), msg->p.u64 & VHOST_USER_VRING_NOFD);
    return 0;
}

static int h_set_vring_call(struct vhost_dev *dev, struct vhost_msg *msg)
{
    vq_set_call(msg_vq(dev, msg, QIDX_FILE), msg_take_fd(msg));
    return 0;
}

static int h_set_vring_err(struct vhost_dev *dev, struct vhost_msg *msg)
{
    vq_set_err(msg_vq(dev, msg, QIDX_FILE), msg_take_fd(msg));
    return 0;
}

static int h_set_vring_enable(struct vhost_dev *dev, struct vhost_msg *msg)
{
    struct vq *vq = msg_vq(dev, msg, QIDX_STATE);

    if (msg->p.state.num > 1)
        return vhost_dev_fail(dev, "SET_VRING_ENABLE queue %u: value %u", vq->index,
                              msg->p.state.num);
    if (!msg->p.state.num)
        vhost_dev_queue_stop(dev, vq);
    vq_set_enabled(vq, msg->p.state.num);
    return 0;
}

/* ---- inflight tracking (spec "Inflight I/O tracking") ---- */

static bool any_inflight(const struct vhost_dev *dev)
{
    for (unsigned i = 0; i < dev->num_vqs; i++)
        if (vq_running(&dev->vqs[i]) || vq_inflight(&dev->vqs[i]))
            return true;
    return false;
}

static bool inflight_geometry_ok(const struct vhost_dev *dev, uint16_t nq, uint16_t qs)
{
    return nq >= 1 && nq <= dev->num_vqs && qs >= 1 && qs <= VQ_MAX_SIZE && !(qs & (qs - 1));
}

/* A new, zeroed buffer for num_queues rings of queue_size, in a memfd sealed
 * against resizing. A geometry we cannot track is answered with size 0 (QEMU
 * then runs without inflight tracking). */
static int h_get_inflight_fd(struct vhost_dev *dev, struct vhost_msg *msg)
{
    const struct vhost_inflight_msg *m = &msg->p.inflight;
    struct vhost_inflight_msg reply = { 0 };
    uint64_t per, total;
    uint8_t *p;
    int fd, ret;

    if (!inflight_geometry_ok(dev, m->num_queues, m->queue_size)) {
        log_warn("vhost: GET_INFLIGHT_FD for %u queues of %u: not tracked", m->num_queues,
                 m->queue_size);
        return vhost_dev_reply(dev, msg->hdr.request, &reply, sizeof(reply));
    }
    per = vq_inflight_region_bytes(m->queue_size);
    total = per * m->num_queues;
    fd = memfd_create("vscsi-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)total) < 0) {
        ret = -errno;
        goto out;
    }
    p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        ret = -errno;
        goto out;
    }
    for (unsigned q = 0; q < m->num_queues; q++)
        vq_inflight_region_init((struct vq_inflight_region *)(p + q * per), m->queue_size);
    munmap(p, total);
    /* Nobody may shrink it under the next backend (see the SIGBUS guard in mem.c). */
    (void)fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    reply.mmap_size = total;
    reply.mmap_offset = 0;
    reply.num_queues = m->num_queues;
    reply.queue_size = m->queue_size;
    log_debug("vhost: inflight buffer of %" PRIu64 " bytes for %u queues of %u", total,
              m->num_queues, m->queue_size);
    ret = vhost_dev_reply_fd(dev, msg->hdr.request, &reply, sizeof(reply), fd);
out:
    close(fd);
    return ret;
}

/* Map the buffer and point each queue at its region; the regions are read at
 * the next queue start (resubmission after a backend restart). */
static int h_set_inflight_fd(struct vhost_dev *dev, struct vhost_msg *msg)
{
    const struct vhost_inflight_msg *m = &msg->p.inflight;
    struct vhost_mem_desc d = { .size = m->mmap_size, .mmap_offset = m->mmap_offset };
    struct vhost_mem_region *r;
    const char *why = NULL;
    uint64_t per;
    int ret;

    if (!inflight_geometry_ok(dev, m->num_queues, m->queue_size))
        return vhost_dev_fail(dev, "SET_INFLIGHT_FD: %u queues of %u", m->num_queues,
                              m->queue_size);
    per = vq_inflight_region_bytes(m->queue_size);
    if (m->mmap_size < per * m->num_queues || m->mmap_size > (1ull << 32) ||
        m->mmap_offset % VQ_INFLIGHT_ALIGN)
        return vhost_dev_fail(dev, "SET_INFLIGHT_FD: %" PRIu64 " bytes at offset %" PRIu64
                              " for %u queues of %u", m->mmap_size, m->mmap_offset,
                              m->num_queues, m->queue_size);
    if (any_inflight(dev))
        return -EBUSY;
    ret = mem_region_map(&d, msg->fds[0], &r, &why);
    if (ret < 0)
        return mem_error(dev, "SET_INFLIGHT_FD", ret, why);
    msg->fds[0] = -1;
    vhost_dev_drop_inflight(dev);
    dev->inflight = r;
    for (unsigned q = 0; q < m->num_queues; q++)
        vq_set_inflight(&dev->vqs[q], (struct vq_inflight_region *)(r->host + q * per),
                        m->queue_size);
    return 0;
}

/* ---- config space: QEMU serves virtio-scsi config itself ---- */

static int config_check(struct vhost_dev *dev, const struct vhost_msg *msg, const char *name)
{
    const struct vhost_config_msg *c = &msg->p.config;

    if (c->size > VHOST_CONFIG_MAX || msg->hdr.size != 12 + c->size)
        return vhost_dev_fail(dev, "%s: config size %u does not match payload %u", name,
                              c->size, msg->hdr.size);
    return 0;
}

static int h_get_config(struct vhost_dev *dev, struct vhost_msg *msg)
{
    int ret = config_check(dev, msg, "GET_CONFIG");

    if (ret < 0)
        return ret;
    /* Spec: a zero-sized reply payload reports an error. */
    return vhost_dev_reply(dev, msg->hdr.request, NULL, 0);
}

static int h_set_config(struct vhost_dev *dev, struct vhost_msg *msg)
{
    int ret = config_check(dev, msg, "SET_CONFIG");

    if (ret < 0)
        return ret;
    if (msg->hdr.flags & VHOST_USER_NEED_REPLY)
        return -ENOTSUP;
    log_warn("vhost: SET_CONFIG ignored (no device config space here)");
    return 0;
}

/* ---- the table ---- */

#define SIZE(n)         .min_size = (n), .max_size = (n)
#define SIZES(a, b)     .min_size = (a), .max_size = (b)
#define FDS(a, b)       .min_fds = (a), .max_fds = (b)
#define PROTO(bit)      .proto = 1ull << (bit)

static const struct msg_spec msg_table[VHOST_USER_MAX_REQUEST] = {
    [VHOST_USER_GET_FEATURES] = { "GET_FEATURES", SIZE(0), .own_reply = true,
                                  .handler = h_get_features },
    [VHOST_USER_SET_FEATURES] = { "SET_FEATURES", SIZE(8), .handler = h_set_features },
    [VHOST_USER_SET_OWNER] = { "SET_OWNER", SIZE(0), .handler = h_set_owner },
    [VHOST_USER_RESET_OWNER] = { "RESET_OWNER", SIZE(0), .handler = h_reset },
    [VHOST_USER_SET_MEM_TABLE] = { "SET_MEM_TABLE",
                                   SIZES(8 + 32, sizeof(struct vhost_mem_table_msg)),
                                   FDS(1, VHOST_MEM_MSG_REGIONS), .handler = h_set_mem_table },
    /* Seams: handlers arrive with LOG_SHMFD; until then they close the session. */
    [VHOST_USER_SET_LOG_BASE] = { "SET_LOG_BASE", SIZE(16), FDS(0, 1),
                                  PROTO(VHOST_USER_PROTOCOL_F_LOG_SHMFD), .own_reply = true },
    [VHOST_USER_SET_LOG_FD] = { "SET_LOG_FD", SIZE(0), FDS(1, 1),
                                PROTO(VHOST_USER_PROTOCOL_F_LOG_SHMFD) },
    [VHOST_USER_SET_VRING_NUM] = { "SET_VRING_NUM", SIZE(8), .qidx = QIDX_STATE,
                                   .handler = h_set_vring_num },
    [VHOST_USER_SET_VRING_ADDR] = { "SET_VRING_ADDR", SIZE(40), .qidx = QIDX_ADDR,
                                    .handler = h_set_vring_addr },
    [VHOST_USER_SET_VRING_BASE] = { "SET_VRING_BASE", SIZE(8), .qidx = QIDX_STATE,
                                    .handler = h_set_vring_base },
    [VHOST_USER_GET_VRING_BASE] = { "GET_VRING_BASE", SIZE(8), .qidx = QIDX_STATE,
                                    .own_reply = true, .handler = h_get_vring_base },
    [VHOST_USER_SET_VRING_KICK] = { "SET_VRING_KICK", SIZE(8), FDS(0, 1), .qidx = QIDX_FILE,
                                    .handler = h_set_vring_kick },
    [VHOST_USER_SET_VRING_CALL] = { "SET_VRING_CALL", SIZE(8), FDS(0, 1), .qidx = QIDX_FILE,
                                    .handler = h_set_vring_call },
    [VHOST_USER_SET_VRING_ERR] = { "SET_VRING_ERR", SIZE(8), FDS(0, 1), .qidx = QIDX_FILE,
                                   .handler = h_set_vring_err },
    [VHOST_USER_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", SIZE(0), .own_reply = true,
                                           .handler = h_get_protocol_features },
    [VHOST_USER_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", SIZE(8),
                                           .handler = h_set_protocol_features },
    [VHOST_USER_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", SIZE(0), .own_reply = true,
                                   .handler = h_get_queue_num },
    [VHOST_USER_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", SIZE(8), .qidx = QIDX_STATE,
                                      .handler = h_set_vring_enable },
    [VHOST_USER_GET_CONFIG] = { "GET_CONFIG", SIZES(12, 12 + VHOST_CONFIG_MAX),
                                .own_reply = true, .handler = h_get_config },
    [VHOST_USER_SET_CONFIG] = { "SET_CONFIG", SIZES(12, 12 + VHOST_CONFIG_MAX),
                                .handler = h_set_config },
    [VHOST_USER_GET_INFLIGHT_FD] = { "GET_INFLIGHT_FD", SIZE(24), .own_reply = true,
                                     PROTO(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
                                     .handler = h_get_inflight_fd },
    [VHOST_USER_SET_INFLIGHT_FD] = { "SET_INFLIGHT_FD", SIZE(24), FDS(1, 1),
                                     PROTO(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
                                     .handler = h_set_inflight_fd },
    [VHOST_USER_RESET_DEVICE] = { "RESET_DEVICE", SIZE(0), .handler = h_reset },
    [VHOST_USER_GET_MAX_MEM_SLOTS] = { "GET_MAX_MEM_SLOTS", SIZE(0), .own_reply = true,
                                       .handler = h_get_max_mem_slots },
    [VHOST_USER_ADD_MEM_REG] = { "ADD_MEM_REG", SIZE(40), FDS(1, 1), .handler = h_add_mem_reg },
    [VHOST_USER_REM_MEM_REG] = { "REM_MEM_REG", SIZE(40), FDS(0, 1), .handler = h_rem_mem_reg },
};

static int msg_check_qidx(struct vhost_dev *dev, const struct vhost_msg *msg,
                          const struct msg_spec *s)
{
    uint64_t idx;

    switch (s->qidx) {
    case QIDX_STATE:
        idx = msg->p.state.index;
        break;
    case QIDX_ADDR:
        idx = msg->p.addr.index;
        break;
    case QIDX_FILE:
        if (msg->p.u64 & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD))
            return vhost_dev_fail(dev, "%s: unknown bits in 0x%" PRIx64, s->name, msg->p.u64);
        /* Bit 8 says whether an fd comes along; the two must agree. */
        if (!!(msg->p.u64 & VHOST_USER_VRING_NOFD) == (msg->nfds == 1))
            return vhost_dev_fail(dev, "%s: %u fds with no-fd bit %s", s->name, msg->nfds,
                                  msg->p.u64 & VHOST_USER_VRING_NOFD ? "set" : "clear");
        idx = msg->p.u64 & VHOST_USER_VRING_IDX_MASK;
        break;
    default:
        return 0;
    }
    if (idx >= dev->num_vqs)
        return vhost_dev_fail(dev, "%s: queue index %" PRIu64 " >= %u queues", s->name, idx,
                              dev->num_vqs);
    return 0;
}

static int msg_check(struct vhost_dev *dev, const struct vhost_msg *msg, const struct msg_spec *s)
{
    const struct vhost_msg_hdr *h = &msg->hdr;

    if (!s->handler || (s->proto & ~dev->proto_features))
        return vhost_dev_fail(dev, "%s received but not negotiated", s->name);
    if (h->size < s->min_size || h->size > s->max_size)
        return vhost_dev_fail(dev, "%s: payload size %u, expected %u..%u", s->name, h->size,
                              s->min_size, s->max_size);
    if (msg->nfds < s->min_fds || msg->nfds > s->max_fds)
        return vhost_dev_fail(dev, "%s: %u fds, expected %u..%u", s->name, msg->nfds,
                              s->min_fds, s->max_fds);
    return msg_check_qidx(dev, msg, s);
}

int vhost_msg_dispatch(struct vhost_dev *dev, struct vhost_msg *msg)
{
    const struct vhost_msg_hdr *h = &msg->hdr;
    const struct msg_spec *s = h->request < VHOST_USER_MAX_REQUEST ? &msg_table[h->request] : NULL;
    bool need_reply = h->flags & VHOST_USER_NEED_REPLY;
    int ret;

    if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
        (h->flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_NEED_REPLY)))
        return vhost_dev_fail(dev, "request %u: bad header flags 0x%x", h->request, h->flags);

    if (!s || !s->name) {
        /* Not ours to guess at: refuse politely if asked, else hang up. */
        if (!need_reply)
            return vhost_dev_fail(dev, "unknown request %u", h->request);
        log_warn("vhost: unknown request %u (%u bytes): answering failure", h->request, h->size);
        return vhost_dev_reply_u64(dev, h->request, 1);
    }

    ret = msg_check(dev, msg, s);
    if (ret < 0)
        return ret;
    log_debug("vhost: %s size %u fds %u flags 0x%x", s->name, h->size, msg->nfds, h->flags);

    ret = s->handler(dev, msg);
    if (ret == VHOST_MSG_DEFERRED || ret == -EPROTO)
        return ret;
    if (ret < 0) {
        if (!need_reply || s->own_reply)
            return vhost_dev_fail(dev, "%s failed: %s", s->name, strerror(-ret));
        log_warn("vhost: %s failed (%s): answering failure", s->name, strerror(-ret));
        return vhost_dev_reply_u64(dev, h->request, 1);
    }
    /* REPLY_ACK: every need_reply message without a reply body gets a u64. */
    if (need_reply && !s->own_reply)
        return vhost_dev_reply_u64(dev, h->request, 0);
    return 0;
}

int vhost_msg_resume(struct vhost_dev *dev)
{
    struct vq *vq;
    int ret = 0;

    switch (dev->wait) {
    case VHOST_WAIT_VRING_BASE:
        vq = &dev->vqs[dev->wait_qidx];
        if (vq_inflight(vq))
            return 0;
        vq_want_drain(vq, false);
        dev->wait = VHOST_WAIT_NONE;
        ret = finish_get_vring_base(dev, vq);
        break;
    case VHOST_WAIT_RESET:
        if (!arm_drain_all(dev))
            return 0;
        dev->wait = VHOST_WAIT_NONE;
        reset_session_state(dev);
        if (dev->wait_flags & VHOST_USER_NEED_REPLY)
            ret = vhost_dev_reply_u64(dev, dev->wait_request, 0);
        break;
    case VHOST_WAIT_NONE:
        break;
    }
    return ret;
}

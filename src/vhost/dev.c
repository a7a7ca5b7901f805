/* vhost-user backend: the listening socket, one frontend session at a time,
 * message reception (recvmsg + SCM_RIGHTS, partial reads), replies, and the
 * queue start/stop rules. Requests themselves are in msg.c. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "util/loop.h"
#include "vhost/dev_internal.h"

#define HDR_SIZE            sizeof(struct vhost_msg_hdr)
#define MSGS_PER_WAKEUP     64          /* fairness towards other handlers */
#define REPLY_TIMEOUT_MS    2000        /* a frontend that stops reading loses its session */

static const struct vhost_dev_ops no_ops;

static void dev_accept_cb(void *opaque, int fd, uint32_t events);
static void dev_conn_cb(void *opaque, int fd, uint32_t events);

int vhost_dev_fail(struct vhost_dev *dev, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dev->why, sizeof(dev->why), fmt, ap);
    va_end(ap);
    return -EPROTO;
}

/* ---- listening ---- */

/* True when something accepts connections on sa (another daemon runs). */
static bool socket_in_use(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bool used;

    if (fd < 0)
        return false;
    used = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN;
    close(fd);
    return used;
}

static int listen_socket(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, ret;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    /* Remove a stale socket from an earlier run; leave anything else alone. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            return -EEXIST;
        }
        if (socket_in_use(&sa)) {
            snprintf(err, errlen, "%s is in use by a running backend", path);
            return -EADDRINUSE;
        }
        unlink(path);
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "socket: %s", strerror(-ret));
        return ret;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        ret = -errno;
        snprintf(err, errlen, "bind %s: %s", path, strerror(-ret));
        goto err_close;
    }
    /* Before listen(): nobody can connect while the mode is still the umask's. */
    if (chmod(path, 0600) < 0 || listen(fd, 1) < 0) {
        ret = -errno;
        snprintf(err, errlen, "chmod/listen: %s", strerror(-ret));
        unlink(path);
        goto err_close;
    }
    return fd;

err_close:
    close(fd);
    return ret;
}

/* Accept the next frontend. While a session runs or drains the listening
 * socket is not watched: further connections wait in the backlog. */
static void dev_listen_start(struct vhost_dev *dev)
{
    if (dev->listen_h)
        return;
    dev->listen_h = ev_loop_add_fd(dev->loop, dev->listen_fd, EPOLLIN, dev_accept_cb, dev);
    if (!dev->listen_h)
        log_err("vhost: cannot watch %s: %s; no further connections", dev->path,
                strerror(errno));
}

static void dev_listen_stop(struct vhost_dev *dev)
{
    if (!dev->listen_h)
        return;
    ev_loop_del_fd(dev->loop, dev->listen_h);
    dev->listen_h = NULL;
}

/* ---- queues ---- */

void vhost_dev_queue_stop(struct vhost_dev *dev, struct vq *vq)
{
    if (!vq_running(vq))
        return;
    vq_stop(vq);
    if (dev->ops->queue_stop)
        dev->ops->queue_stop(dev->opaque, vq->index, vq);
}

void vhost_dev_stop_all(struct vhost_dev *dev)
{
    for (unsigned i = 0; i < dev->num_vqs; i++)
        vhost_dev_queue_stop(dev, &dev->vqs[i]);
    if (dev->ops->session_end)
        dev->ops->session_end(dev->opaque);
}

/* Start condition: memory, size, addresses, kick fd (or polling), features
 * negotiated, and enabled when PROTOCOL_FEATURES was negotiated (spec "Ring
 * states": otherwise rings start enabled). */
void vhost_dev_try_start(struct vhost_dev *dev)
{
    bool need_enable = dev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

    if (dev->state != VHOST_DEV_SESSION || dev->wait != VHOST_WAIT_NONE || !dev->features_set)
        return;
    for (unsigned i = 0; i < dev->num_vqs; i++) {
        struct vq *vq = &dev->vqs[i];

        if (vq_running(vq) || vq_is_broken(vq) || !vq_ready(vq))
            continue;
        if (need_enable && !vq->enabled)
            continue;
        if (vq_start(vq) < 0) {
            vq_fail(vq, "rings outside guest memory or misaligned at start");
            continue;
        }
        log_debug("vhost: queue %u started (size %u, base %u)", i, vq->num, vq->last_avail_idx);
        if (dev->ops->queue_start)
            dev->ops->queue_start(dev->opaque, i, vq);
    }
}

void vhost_dev_set_mem(struct vhost_dev *dev, struct vhost_mem *mem)
{
    struct vhost_mem *old = dev->mem;

    dev->mem = mem;
    for (unsigned i = 0; i < dev->num_vqs; i++)
        vq_set_mem(&dev->vqs[i], mem);
    /* Elements in flight hold their own reference to the old table. */
    mem_unref(old);
}

/* vq_push saw the last in-flight element go (any thread): wake the loop. */
static void dev_vq_drained(void *opaque, struct vq *vq)
{
    struct vhost_dev *dev = opaque;
    uint64_t one = 1;

    if (write(dev->drain_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: counter saturated, the loop wakes anyway */
    }
}

static bool dev_arm_drain(struct vhost_dev *dev)
{
    bool drained = true;

    for (unsigned i = 0; i < dev->num_vqs; i++)
        if (!vq_want_drain(&dev->vqs[i], true))
            drained = false;
    return drained;
}

/* ---- session ---- */

static void rx_reset(struct vhost_dev *dev)
{
    for (unsigned i = 0; i < dev->rx.nfds; i++)
        if (dev->rx.fds[i] >= 0)
            close(dev->rx.fds[i]);
    dev->rx.nfds = 0;
    dev->rx_off = 0;
}

/* Once nothing is in flight any more: forget the session, accept the next. */
static void dev_finish_drain(struct vhost_dev *dev)
{
    if (dev->state != VHOST_DEV_DRAINING || !dev_arm_drain(dev))
        return;
    for (unsigned i = 0; i < dev->num_vqs; i++) {
        vq_want_drain(&dev->vqs[i], false);
        vq_reset(&dev->vqs[i], false);
    }
    dev->state = VHOST_DEV_IDLE;
    dev_listen_start(dev);
}

static void dev_session_close(struct vhost_dev *dev, enum log_level level, const char *reason)
{
    if (dev->state != VHOST_DEV_SESSION)
        return;
    log_msg(level, "vhost: closing session: %s", reason);
    ev_loop_del_fd(dev->loop, dev->conn_h);
    dev->conn_h = NULL;
    close(dev->conn_fd);
    dev->conn_fd = -1;
    rx_reset(dev);
    dev->reading_paused = false;
    dev->wait = VHOST_WAIT_NONE;

    /* queue_stop for running queues, then session_end. */
    vhost_dev_stop_all(dev);
    /* Rings and fds go now; mappings stay while popped elements hold them. */
    for (unsigned i = 0; i < dev->num_vqs; i++)
        vq_detach(&dev->vqs[i]);
    vhost_dev_drop_inflight(dev);
    mem_unref(dev->mem);
    dev->mem = NULL;
    dev->features = 0;
    dev->features_set = false;
    dev->proto_features = 0;
    dev->owner = false;

    dev->state = VHOST_DEV_DRAINING;
    dev_finish_drain(dev);
}

void vhost_dev_pause_reading(struct vhost_dev *dev)
{
    /* Keep hearing about a hang-up while the reply is pending. */
    dev->reading_paused = true;
    if (ev_loop_mod_fd(dev->loop, dev->conn_h, EPOLLRDHUP) < 0)
        log_err("vhost: cannot pause the session socket");
}

void vhost_dev_resume_reading(struct vhost_dev *dev)
{
    if (!dev->reading_paused)
        return;
    dev->reading_paused = false;
    if (ev_loop_mod_fd(dev->loop, dev->conn_h, EPOLLIN) < 0)
        log_err("vhost: cannot resume the session socket");
}

static void dev_drain_cb(void *opaque, int fd, uint32_t events)
{
    struct vhost_dev *dev = opaque;
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: spurious */
    }
    if (dev->state == VHOST_DEV_DRAINING) {
        dev_finish_drain(dev);
        return;
    }
    if (dev->state != VHOST_DEV_SESSION || dev->wait == VHOST_WAIT_NONE)
        return;
    if (vhost_msg_resume(dev) < 0) {
        dev_session_close(dev, LOG_WARN, dev->why);
        return;
    }
    if (dev->wait == VHOST_WAIT_NONE) {
        vhost_dev_resume_reading(dev);
        vhost_dev_try_start(dev);
    }
}

static void dev_accept_cb(void *opaque, int fd, uint32_t events)
{
    struct vhost_dev *dev = opaque;
    int conn;

    if (dev->state != VHOST_DEV_IDLE)
        return;
    conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("vhost: accept: %s", strerror(errno));
        return;
    }
    dev->conn_h = ev_loop_add_fd(dev->loop, conn, EPOLLIN, dev_conn_cb, dev);
    if (!dev->conn_h) {
        log_err("vhost: cannot watch the frontend connection: %s", strerror(errno));
        close(conn);
        return;
    }
    dev->conn_fd = conn;
    dev->state = VHOST_DEV_SESSION;
    dev->rx_off = 0;
    dev->rx.nfds = 0;
    dev_listen_stop(dev);
    log_info("vhost: frontend connected on %s", dev->path);
}

/* File descriptors ride on the recvmsg that returns a message's first bytes
 * (QEMU sends header, payload and fds in one sendmsg). Any other fds are
 * closed and break the session; so do fds that did not fit (MSG_CTRUNC). */
static int rx_collect_fds(struct vhost_dev *dev, struct msghdr *mh, bool msg_start)
{
    bool bad = mh->msg_flags & MSG_CTRUNC;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        size_t n;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (msg_start && dev->rx.nfds < VHOST_MSG_MAX_FDS) {
                dev->rx.fds[dev->rx.nfds++] = fd;
            } else {
                close(fd);
                bad = true;
            }
        }
    }
    if (bad)
        return vhost_dev_fail(dev, "file descriptors outside a message start or more than %u",
                              VHOST_MSG_MAX_FDS);
    return 0;
}

/* Receive the rest of the current message. 1: complete; 0: wait for more;
 * -ECONNRESET: orderly end; other -errno: broken (dev->why). Reads stop at
 * the message end so the next message's fds are not pulled in early. */
static int rx_message(struct vhost_dev *dev)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHOST_MSG_MAX_FDS)];
        struct cmsghdr align;
    } cbuf;

    for (;;) {
        struct iovec iov;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;
        int ret;

        if (dev->rx_off < HDR_SIZE) {
            iov.iov_base = (char *)&dev->rx.hdr + dev->rx_off;
            iov.iov_len = HDR_SIZE - dev->rx_off;
        } else {
            size_t got = dev->rx_off - HDR_SIZE;

            if (got == dev->rx.hdr.size)
                return 1;
            iov.iov_base = dev->rx.p.raw + got;
            iov.iov_len = dev->rx.hdr.size - got;
        }
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = sizeof(cbuf.buf);
        n = recvmsg(dev->conn_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            if (errno == ECONNRESET)
                return -ECONNRESET;
            return vhost_dev_fail(dev, "recvmsg: %s", strerror(errno));
        }
        ret = rx_collect_fds(dev, &mh, dev->rx_off == 0);
        if (ret < 0)
            return ret;
        if (n == 0) {
            if (dev->rx_off)
                return vhost_dev_fail(dev, "frontend hung up in the middle of a message");
            return -ECONNRESET;
        }
        dev->rx_off += (size_t)n;
        if (dev->rx_off == HDR_SIZE) {
            memset(&dev->rx.p, 0, sizeof(dev->rx.p));
            if (dev->rx.hdr.size > VHOST_MSG_MAX_PAYLOAD)
                return vhost_dev_fail(dev, "request %u: payload size %u exceeds %u",
                                      dev->rx.hdr.request, dev->rx.hdr.size,
                                      VHOST_MSG_MAX_PAYLOAD);
        }
    }
}

static void dev_conn_cb(void *opaque, int fd, uint32_t events)
{
    struct vhost_dev *dev = opaque;

    if (dev->reading_paused) {
        if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
            dev_session_close(dev, LOG_INFO, "frontend disconnected while a reply was pending");
        return;
    }
    for (int i = 0; i < MSGS_PER_WAKEUP && dev->state == VHOST_DEV_SESSION; i++) {
        int ret = rx_message(dev);

        if (ret == 0)
            return;
        if (ret == -ECONNRESET) {
            dev_session_close(dev, LOG_INFO, "frontend disconnected");
            return;
        }
        if (ret < 0) {
            dev_session_close(dev, LOG_WARN, dev->why);
            return;
        }
        ret = vhost_msg_dispatch(dev, &dev->rx);
        rx_reset(dev);                  /* closes fds the handler did not take */
        if (ret < 0) {
            dev_session_close(dev, LOG_WARN, dev->why);
            return;
        }
        if (ret == VHOST_MSG_DEFERRED) {
            vhost_dev_pause_reading(dev);
            return;
        }
        vhost_dev_try_start(dev);
    }
}

/* ---- replies ---- */

static int send_all(int fd, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };

            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            /* Replies are tiny; a full buffer means the frontend stopped reading. */
            n = poll(&p, 1, REPLY_TIMEOUT_MS);
            if (n == 0)
                return -ETIMEDOUT;
            if (n < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int vhost_dev_reply(struct vhost_dev *dev, uint32_t request, const void *payload, uint32_t size)
{
    uint8_t buf[HDR_SIZE + 64];
    struct vhost_msg_hdr h = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY,
        .size = size,
    };
    int ret;

    if (size > sizeof(buf) - HDR_SIZE)
        return vhost_dev_fail(dev, "reply to request %u too large", request);
    if (dev->conn_fd < 0)
        return -ENOTCONN;
    memcpy(buf, &h, HDR_SIZE);
    if (size)
        memcpy(buf + HDR_SIZE, payload, size);
    ret = send_all(dev->conn_fd, buf, HDR_SIZE + size);
    if (ret < 0)
        return vhost_dev_fail(dev, "sending the reply to request %u: %s", request,
                              strerror(-ret));
    return 0;
}

int vhost_dev_reply_u64(struct vhost_dev *dev, uint32_t request, uint64_t value)
{
    return vhost_dev_reply(dev, request, &value, sizeof(value));
}

int vhost_dev_reply_fd(struct vhost_dev *dev, uint32_t request, const void *payload,
                       uint32_t size, int fd)
{
    uint8_t buf[HDR_SIZE + 64];
    struct vhost_msg_hdr h = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY,
        .size = size,
    };
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = { .iov_base = buf, .iov_len = HDR_SIZE + size };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
                         .msg_controllen = sizeof(cbuf.b) };
    struct cmsghdr *c;
    ssize_t n;

    if (size > sizeof(buf) - HDR_SIZE)
        return vhost_dev_fail(dev, "reply to request %u too large", request);
    if (dev->conn_fd < 0)
        return -ENOTCONN;
    memcpy(buf, &h, HDR_SIZE);
    memcpy(buf + HDR_SIZE, payload, size);
    memset(&cbuf, 0, sizeof(cbuf));
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    for (;;) {
        n = sendmsg(dev->conn_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            break;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = { .fd = dev->conn_fd, .events = POLLOUT };

            if (poll(&p, 1, REPLY_TIMEOUT_MS) > 0)
                continue;
        } else if (errno == EINTR) {
            continue;
        }
        return vhost_dev_fail(dev, "sending the reply to request %u: %s", request,
                              strerror(errno));
    }
    /* The fd went with the first byte; the rest (if any) goes plainly. */
    if ((size_t)n < iov.iov_len && send_all(dev->conn_fd, buf + n, iov.iov_len - (size_t)n) < 0)
        return vhost_dev_fail(dev, "sending the reply to request %u", request);
    return 0;
}

void vhost_dev_drop_inflight(struct vhost_dev *dev)
{
    for (unsigned i = 0; i < dev->num_vqs; i++) {
        struct vq *vq = &dev->vqs[i];

        /* Detached or reset queues have let go already; a busy one cannot be
         * here (SET_INFLIGHT_FD refuses while anything runs). */
        vq->ireg = NULL;
        vq->ireg_size = 0;
    }
    mem_region_unref(dev->inflight);
    dev->inflight = NULL;
}

/* ---- public ---- */

struct vhost_dev *vhost_dev_new(struct ev_loop *loop, const char *socket_path, unsigned num_vqs,
                                const struct vhost_dev_ops *ops, void *opaque,
                                char *err, size_t errlen)
{
    struct vhost_dev *dev;
    int ret;

    if (num_vqs == 0 || num_vqs > VHOST_MAX_QUEUES) {
        snprintf(err, errlen, "%u virtqueues: 1..%u supported", num_vqs, VHOST_MAX_QUEUES);
        return NULL;
    }
    dev = calloc(1, sizeof(*dev));
    if (!dev)
        goto err_nomem;
    dev->loop = loop;
    dev->ops = ops ? ops : &no_ops;
    dev->opaque = opaque;
    dev->listen_fd = dev->conn_fd = dev->drain_fd = -1;
    dev->path = strdup(socket_path);
    dev->vqs = calloc(num_vqs, sizeof(*dev->vqs));
    if (!dev->path || !dev->vqs)
        goto err_nomem;
    for (unsigned i = 0; i < num_vqs; i++) {
        if (vq_init(&dev->vqs[i], i) < 0)
            goto err_nomem;
        dev->num_vqs = i + 1;
        vq_set_drain_cb(&dev->vqs[i], dev_vq_drained, dev);
    }

    dev->drain_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (dev->drain_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto err;
    }
    dev->drain_h = ev_loop_add_fd(loop, dev->drain_fd, EPOLLIN, dev_drain_cb, dev);
    if (!dev->drain_h) {
        snprintf(err, errlen, "event loop: %s", strerror(errno));
        goto err;
    }
    ret = listen_socket(socket_path, err, errlen);
    if (ret < 0)
        goto err;
    dev->listen_fd = ret;
    dev_listen_start(dev);
    if (!dev->listen_h) {
        snprintf(err, errlen, "event loop: %s", strerror(errno));
        goto err;
    }
    log_info("vhost: listening on %s (%u virtqueues)", socket_path, num_vqs);
    return dev;

err_nomem:
    snprintf(err, errlen, "out of memory");
err:
    vhost_dev_free(dev);
    return NULL;
}

void vhost_dev_free(struct vhost_dev *dev)
{
    unsigned inflight = 0;

    if (!dev)
        return;
    dev_session_close(dev, LOG_INFO, "backend shutting down");
    for (unsigned i = 0; i < dev->num_vqs; i++)
        inflight += vq_inflight(&dev->vqs[i]);
    if (inflight)
        log_warn("vhost: %u requests still in flight at shutdown are abandoned", inflight);
    dev_listen_stop(dev);
    if (dev->listen_fd >= 0) {
        close(dev->listen_fd);
        unlink(dev->path);
    }
    if (dev->drain_h)
        ev_loop_del_fd(dev->loop, dev->drain_h);
    if (dev->drain_fd >= 0)
        close(dev->drain_fd);
    for (unsigned i = 0; i < dev->num_vqs; i++)
        vq_destroy(&dev->vqs[i]);
    mem_region_unref(dev->inflight);
    mem_unref(dev->mem);
    free(dev->vqs);
    free(dev->path);
    free(dev);
}

bool vhost_dev_connected(const struct vhost_dev *dev)
{
    return dev->state == VHOST_DEV_SESSION;
}

uint64_t vhost_dev_features(const struct vhost_dev *dev)
{
    return dev->features;
}

bool vhost_dev_has_feature(const struct vhost_dev *dev, unsigned bit)
{
    return bit < 64 && (dev->features & (1ull << bit));
}

unsigned vhost_dev_num_vqs(const struct vhost_dev *dev)
{
    return dev->num_vqs;
}

struct vq *vhost_dev_vq(struct vhost_dev *dev, unsigned qidx)
{
    return qidx < dev->num_vqs ? &dev->vqs[qidx] : NULL;
}

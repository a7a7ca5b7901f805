/* libFuzzer target: vhost-user message sequences against src/vhost over its
 * real unix socket (reception, per-request checks, handlers, queue start and
 * stop, deferred replies, session close and the next accept).
 *
 * The input is a sequence of records:
 *   message   request id, header flags, payload (size and bytes from the
 *             input) and up to 7 fds, each one of: a dup of guest memfd A or
 *             B (256 KiB each), a fresh eventfd (kept, so later records can
 *             kick through it), /dev/null;
 *   ram       bytes written into memfd A or B (rings, descriptors, tables);
 *   kick      write to one of the kept eventfds;
 *   complete  the device pushes the chains it holds;
 *   shrink    ftruncate a memfd below what the device mapped (SIGBUS guard);
 *   reconnect close the frontend socket and connect again.
 * A small device behind the ops pops every available chain after each record
 * and holds it until a complete record (or the end) pushes it, so GET_VRING_BASE
 * and RESET_DEVICE can wait on in-flight chains. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "util/log.h"
#include "util/loop.h"
#include "vhost/dev_internal.h"

#define NQ          4
#define RAM         (256u << 10)
#define MAX_RECORDS 96
#define MAX_HELD    32
#define IOV_CAP     64
#define MAX_KEPT    16

static struct ev_loop *loop;
static struct vhost_dev *dev;
static char sock_path[108];
static int ram_fd[2] = { -1, -1 };
static uint8_t *ram[2];
static int null_fd = -1;
static bool shrunk[2];
static int cli = -1;

static struct {
    struct vq *vq;                  /* started queue, NULL when stopped */
    struct vq *last;                /* the queue held elements belong to */
    unsigned nheld;
    struct vq_elem e[MAX_HELD];
    struct iovec iov[MAX_HELD][IOV_CAP];
} q[NQ];

static int kept[MAX_KEPT];
static unsigned nkept;

static void die(const char *what)
{
    perror(what);
    abort();
}

static void op_start(void *o, unsigned i, struct vq *vq) { q[i].vq = vq; q[i].last = vq; }
static void op_stop(void *o, unsigned i, struct vq *vq) { q[i].vq = NULL; }

static const struct vhost_dev_ops ops = {
    .device_features = 1ull << 0 | 1ull << 1 | 1ull << 2,   /* virtio-scsi's bits */
    .queue_start = op_start,
    .queue_stop = op_stop,
};

static void pump(void)
{
    for (int i = 0; i < 32; i++)
        if (ev_loop_run_once(loop, 0) <= 0)
            break;
}

/* The device: pop what is available on started queues. */
static void device_pop(void)
{
    for (unsigned i = 0; i < NQ; i++) {
        while (q[i].vq && q[i].nheld < MAX_HELD) {
            unsigned n = q[i].nheld;
            int ret = vq_pop(q[i].vq, &q[i].e[n], q[i].iov[n], IOV_CAP);

            if (ret != 1)
                break;
            q[i].nheld++;
        }
    }
}

static void device_complete(unsigned i)
{
    while (q[i].nheld) {
        q[i].nheld--;
        vq_push(q[i].last, &q[i].e[q[i].nheld], 0);
    }
    if (q[i].vq)
        vq_notify(q[i].vq);
}

static void drain_replies(void)
{
    char buf[4096];

    while (cli >= 0 && recv(cli, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

static void client_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    cli = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cli < 0 || connect(cli, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect");
    pump();
    if (!vhost_dev_connected(dev))
        abort();                    /* the last session must have been released */
}

/* Close the frontend, let the device finish everything, back to listening. */
static void client_close(void)
{
    if (cli >= 0)
        close(cli);
    cli = -1;
    pump();
    for (unsigned i = 0; i < NQ; i++)
        device_complete(i);
    pump();
    if (vhost_dev_connected(dev) || dev->state != VHOST_DEV_IDLE)
        abort();
    for (unsigned i = 0; i < NQ; i++) {
        q[i].vq = q[i].last = NULL;
        if (vq_inflight(vhost_dev_vq(dev, i)))
            abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[200];

    log_set_level(LOG_ERR);
    snprintf(sock_path, sizeof(sock_path), "/tmp/vscsi-fuzz-%d.sock", (int)getpid());
    loop = ev_loop_new();
    if (!loop)
        die("loop");
    dev = vhost_dev_new(loop, sock_path, NQ, &ops, NULL, err, sizeof(err));
    if (!dev) {
        fprintf(stderr, "vhost_dev_new: %s\n", err);
        abort();
    }
    for (int i = 0; i < 2; i++) {
        ram_fd[i] = memfd_create("fuzz-ram", MFD_CLOEXEC);
        if (ram_fd[i] < 0 || ftruncate(ram_fd[i], RAM) < 0)
            die("memfd");
        ram[i] = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd[i], 0);
        if (ram[i] == MAP_FAILED)
            die("mmap");
    }
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        die("/dev/null");
    return 0;
}

static int make_fd(unsigned kind)
{
    int fd;

    switch (kind & 3) {
    case 0:
    case 1:
        return dup(ram_fd[kind & 1]);
    case 2:
        fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd >= 0 && nkept < MAX_KEPT)
            kept[nkept++] = dup(fd);
        return fd;
    default:
        return dup(null_fd);
    }
}

static void send_message(struct fz *f)
{
    uint8_t r = fz_u8(f), fl = fz_u8(f), fs = fz_u8(f);
    uint16_t sz = fz_u16(f);
    struct vhost_msg_hdr h;
    uint8_t buf[sizeof(h) + 5000 + 16];
    int fds[8];
    unsigned nfds = fs & 7;
    union {
        char b[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    h.request = r < 0xf0 ? r % 42u : fz_u32(f);
    h.flags = fl & 0x80 ? fz_u32(f) : VHOST_USER_VERSION | ((fl & 1) ? VHOST_USER_NEED_REPLY : 0);
    h.size = (sz & 0x8000) ? sz % 5000u : sz % 300u;
    memcpy(buf, &h, sizeof(h));
    /* A payload larger than the header claims (trailing bytes) when asked. */
    size_t extra = (fl & 0x40) ? fz_u8(f) % 16 : 0;
    fz_bytes(f, buf + sizeof(h), h.size + extra);

    for (unsigned i = 0; i < nfds; i++) {
        fds[i] = make_fd(fs >> (3 + (i % 2) * 2));
        if (fds[i] < 0)
            die("fd");
    }
    iov.iov_base = buf;
    iov.iov_len = sizeof(h) + h.size + extra;
    if (nfds) {
        mh.msg_control = cbuf.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(cli, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    pump();
    drain_replies();
    if (n < 0 || !vhost_dev_connected(dev)) {
        /* The device closed the session (protocol error): connect again. */
        client_close();
        client_connect();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = { data, size };

    for (int i = 0; i < 2; i++) {
        if (ftruncate(ram_fd[i], RAM) < 0)
            die("ftruncate");
        memset(ram[i], 0, RAM);
        shrunk[i] = false;
    }
    client_connect();
    for (unsigned rec = 0; fz_left(&f) && rec < MAX_RECORDS; rec++) {
        uint8_t kind = fz_u8(&f);

        switch (kind % 10) {
        default:                                    /* 0..4: a message */
            send_message(&f);
            break;
        case 5: {                                   /* driver writes guest RAM */
            unsigned which = fz_u8(&f) & 1;
            uint32_t off = fz_u32(&f) % RAM;
            unsigned len = fz_u8(&f);

            if (len > RAM - off)
                len = RAM - off;
            if (shrunk[which])
                break;              /* our own mapping would fault too */
            fz_bytes(&f, ram[which] + off, len);
            break;
        }
        case 6: {                                   /* kick */
            uint64_t one = 1;

            if (nkept && write(kept[fz_u8(&f) % nkept], &one, sizeof(one)) < 0) {
                /* counter full: fine */
            }
            pump();
            break;
        }
        case 7:                                     /* device completes */
            device_complete(fz_u8(&f) % NQ);
            pump();
            drain_replies();
            break;
        case 8: {                                   /* frontend shrinks guest RAM */
            unsigned which = fz_u8(&f) & 1;

            if (ftruncate(ram_fd[which], (fz_u8(&f) % 4) * 4096) < 0)
                die("ftruncate");
            shrunk[which] = true;
            break;
        }
        case 9:
            client_close();
            client_connect();
            break;
        }
        device_pop();
    }
    client_close();
    for (unsigned i = 0; i < nkept; i++)
        close(kept[i]);
    nkept = 0;
    return 0;
}

/* vuf transport: socket, messages, negotiation in QEMU's order, guest RAM. */
#include "vuf_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEF_MEM_SIZE   (64ull << 20)
#define DEF_QUEUE_SIZE 128
#define DEF_TIMEOUT_MS 5000
#define GPA_BASE       0x10000000ull      /* region 0; others above 4 GiB steps */
#define QVA_BASE       0x3e0000000000ull  /* unlikely to be mapped in any process */

int64_t vuf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t r = deadline - vuf_now_ms();
    return r < 0 ? 0 : (int)r;
}

const char *vuf_req_name(uint32_t r)
{
    static const char *const names[] = {
        [VUF_GET_FEATURES] = "GET_FEATURES", [VUF_SET_FEATURES] = "SET_FEATURES",
        [VUF_SET_OWNER] = "SET_OWNER", [VUF_RESET_OWNER] = "RESET_OWNER",
        [VUF_SET_MEM_TABLE] = "SET_MEM_TABLE", [VUF_SET_LOG_BASE] = "SET_LOG_BASE",
        [VUF_SET_LOG_FD] = "SET_LOG_FD", [VUF_SET_VRING_NUM] = "SET_VRING_NUM",
        [VUF_SET_VRING_ADDR] = "SET_VRING_ADDR", [VUF_SET_VRING_BASE] = "SET_VRING_BASE",
        [VUF_GET_VRING_BASE] = "GET_VRING_BASE", [VUF_SET_VRING_KICK] = "SET_VRING_KICK",
        [VUF_SET_VRING_CALL] = "SET_VRING_CALL", [VUF_SET_VRING_ERR] = "SET_VRING_ERR",
        [VUF_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VUF_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VUF_GET_QUEUE_NUM] = "GET_QUEUE_NUM", [VUF_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [VUF_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD", [VUF_GET_CONFIG] = "GET_CONFIG",
        [VUF_SET_CONFIG] = "SET_CONFIG", [VUF_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
        [VUF_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD", [VUF_RESET_DEVICE] = "RESET_DEVICE",
        [VUF_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS", [VUF_ADD_MEM_REG] = "ADD_MEM_REG",
        [VUF_REM_MEM_REG] = "REM_MEM_REG", [VUF_SET_STATUS] = "SET_STATUS",
        [VUF_GET_STATUS] = "GET_STATUS",
    };
    if (r < sizeof(names) / sizeof(names[0]) && names[r])
        return names[r];
    return "UNKNOWN";
}

/* ---- guest memory ------------------------------------------------------ */

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static int ext_insert(struct vuf *h, unsigned pos, uint64_t gpa, uint64_t len, unsigned region)
{
    if (h->next_cnt == h->next_cap) {
        unsigned cap = h->next_cap ? h->next_cap * 2 : 64;
        struct vuf_extent *e = realloc(h->ext, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        h->ext = e;
        h->next_cap = cap;
    }
    memmove(&h->ext[pos + 1], &h->ext[pos], (h->next_cnt - pos) * sizeof(*h->ext));
    h->ext[pos] = (struct vuf_extent){ gpa, len, region };
    h->next_cnt++;
    return 0;
}

static void ext_remove(struct vuf *h, unsigned pos)
{
    memmove(&h->ext[pos], &h->ext[pos + 1], (h->next_cnt - pos - 1) * sizeof(*h->ext));
    h->next_cnt--;
}

static uint64_t alloc_where(struct vuf *h, int region, uint64_t size, uint64_t align)
{
    if (!align)
        align = 16;
    if (!size || (align & (align - 1)))
        return VUF_GPA_NONE;
    size = align_up(size, 16);
    for (unsigned i = 0; i < h->next_cnt; i++) {
        struct vuf_extent *e = &h->ext[i];
        if (region >= 0 && e->region != (unsigned)region)
            continue;
        uint64_t start = align_up(e->gpa, align);
        uint64_t end = e->gpa + e->len;
        if (start < e->gpa || start > end || end - start < size)
            continue;
        uint64_t head = start - e->gpa, tail = end - (start + size);
        unsigned reg = e->region;
        if (head && tail) {
            e->len = head;
            if (ext_insert(h, i + 1, start + size, tail, reg) < 0) {
                e->len = head + size + tail;
                return VUF_GPA_NONE;
            }
        } else if (head) {
            e->len = head;
        } else if (tail) {
            e->gpa = start + size;
            e->len = tail;
        } else {
            ext_remove(h, i);
        }
        return start;
    }
    return VUF_GPA_NONE;
}

uint64_t vuf_alloc(struct vuf *h, uint64_t size, uint64_t align)
{
    pthread_mutex_lock(&h->alloc_lock);
    uint64_t g = alloc_where(h, -1, size, align);
    pthread_mutex_unlock(&h->alloc_lock);
    return g;
}

uint64_t vuf_alloc_in(struct vuf *h, unsigned region, uint64_t size, uint64_t align)
{
    if (region >= h->nreg)
        return VUF_GPA_NONE;
    pthread_mutex_lock(&h->alloc_lock);
    uint64_t g = alloc_where(h, (int)region, size, align);
    pthread_mutex_unlock(&h->alloc_lock);
    return g;
}

static int region_of(const struct vuf *h, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < h->nreg; i++) {
        const struct vuf_region *r = &h->reg[i];
        if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
            return (int)i;
    }
    return -1;
}

static void free_locked(struct vuf *h, uint64_t gpa, uint64_t size)
{
    int reg = region_of(h, gpa, size);
    if (reg < 0)
        return;
    unsigned pos = 0;
    while (pos < h->next_cnt && h->ext[pos].gpa < gpa)
        pos++;
    /* merge with neighbours of the same region */
    bool prev = pos > 0 && h->ext[pos - 1].region == (unsigned)reg &&
                h->ext[pos - 1].gpa + h->ext[pos - 1].len == gpa;
    bool next = pos < h->next_cnt && h->ext[pos].region == (unsigned)reg &&
                gpa + size == h->ext[pos].gpa;
    if (prev && next) {
        h->ext[pos - 1].len += size + h->ext[pos].len;
        ext_remove(h, pos);
    } else if (prev) {
        h->ext[pos - 1].len += size;
    } else if (next) {
        h->ext[pos].gpa = gpa;
        h->ext[pos].len += size;
    } else {
        ext_insert(h, pos, gpa, size, (unsigned)reg);   /* on ENOMEM the block leaks */
    }
}

void vuf_free_gpa(struct vuf *h, uint64_t gpa, uint64_t size)
{
    if (gpa == VUF_GPA_NONE || !size)
        return;
    pthread_mutex_lock(&h->alloc_lock);
    free_locked(h, gpa, align_up(size, 16));
    pthread_mutex_unlock(&h->alloc_lock);
}

void *vuf_ptr(const struct vuf *h, uint64_t gpa, uint64_t len)
{
    int i = region_of(h, gpa, len);
    return i < 0 ? NULL : h->reg[i].hva + (gpa - h->reg[i].gpa);
}

uint64_t vuf_gpa_to_qva(const struct vuf *h, uint64_t gpa)
{
    int i = region_of(h, gpa, 1);
    return i < 0 ? VUF_GPA_NONE : h->reg[i].qva + (gpa - h->reg[i].gpa);
}

uint64_t vuf_unmapped_gpa(const struct vuf *h)
{
    uint64_t top = 0;
    for (unsigned i = 0; i < h->nreg; i++)
        if (h->reg[i].gpa + h->reg[i].size > top)
            top = h->reg[i].gpa + h->reg[i].size;
    return align_up(top, 1ull << 30) + (1ull << 30);
}

unsigned vuf_num_regions(const struct vuf *h)
{
    return h->nreg;
}

const struct vuf_region *vuf_region(const struct vuf *h, unsigned i)
{
    return i < h->nreg ? &h->reg[i] : NULL;
}

static int setup_memory(struct vuf *h)
{
    const struct vuf_opts *o = &h->o;
    uint64_t rsize = align_up(o->mem_size / o->num_regions, 1ull << 16);
    uint64_t off = align_up(o->mmap_offset, 4096);
    int fd = -1;
    uint8_t *base = NULL;

    h->nreg = o->num_regions;
    for (unsigned i = 0; i < h->nreg; i++) {
        struct vuf_region *r = &h->reg[i];
        if (!o->one_memfd || i == 0) {
            uint64_t flen = off + (o->one_memfd ? rsize * h->nreg : rsize);
            fd = memfd_create("vuf-guest-ram", MFD_CLOEXEC);
            if (fd < 0)
                return -errno;
            if (ftruncate(fd, (off_t)flen) < 0) {
                int e = -errno;
                close(fd);
                return e;
            }
            base = mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) {
                int e = -errno;
                close(fd);
                return e;
            }
            h->maps[h->nmaps] = base;
            h->map_lens[h->nmaps++] = flen;
        }
        r->fd = fd;
        r->size = rsize;
        r->mmap_offset = off + (o->one_memfd ? rsize * i : 0);
        r->hva = base + r->mmap_offset;
        if (o->gpa_contiguous)
            r->gpa = GPA_BASE + rsize * i;
        else
            r->gpa = GPA_BASE + (uint64_t)i * (4ull << 30);
        /* reversed order, gap between: a backend mixing up gpa and qva fails */
        r->qva = QVA_BASE + (uint64_t)(h->nreg - 1 - i) * align_up(rsize + (32ull << 20), 1ull << 30);
        int rc = ext_insert(h, h->next_cnt, r->gpa, r->size, i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

struct vuf *vuf_new(const struct vuf_opts *opts)
{
    struct vuf *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (opts)
        h->o = *opts;
    if (!h->o.mem_size)
        h->o.mem_size = DEF_MEM_SIZE;
    if (!h->o.num_regions)
        h->o.num_regions = 1;
    if (!h->o.queue_size)
        h->o.queue_size = DEF_QUEUE_SIZE;
    if (!h->o.features)
        h->o.features = VUF_FEATURES_DEFAULT;
    if (!h->o.protocol_features)
        h->o.protocol_features = VUF_PROTOCOL_FEATURES_DEFAULT;
    h->o.protocol_features &= ~VUF_PROTOCOL_FEATURES_NONE;
    if (h->o.timeout_ms <= 0)
        h->o.timeout_ms = DEF_TIMEOUT_MS;
    if (getenv("VUF_TRACE"))
        h->o.trace = true;
    h->sock = -1;
    h->inflight_fd = -1;
    h->ack = true;
    pthread_mutex_init(&h->alloc_lock, NULL);
    if (h->o.num_regions > VUF_MAX_REGIONS || h->o.queue_size > 32768 ||
        (h->o.queue_size & (h->o.queue_size - 1)) || h->o.num_queues > VUF_MAX_QUEUES) {
        free(h);
        errno = EINVAL;
        return NULL;
    }
    int rc = setup_memory(h);
    if (rc < 0) {
        vuf_free(h);
        errno = -rc;
        return NULL;
    }
    return h;
}

void vuf_free(struct vuf *h)
{
    if (!h)
        return;
    vuf_close(h);
    for (unsigned q = 0; q < h->nq; q++)
        vuf_vq_release(h, q);
    free(h->vq);
    for (unsigned i = 0; i < h->nmaps; i++)
        munmap(h->maps[i], h->map_lens[i]);
    for (unsigned i = 0; i < h->nreg; i++)
        if (h->reg[i].fd >= 0 && (i == 0 || h->reg[i].fd != h->reg[i - 1].fd))
            close(h->reg[i].fd);
    if (h->inflight_fd >= 0)
        close(h->inflight_fd);
    free(h->ext);
    for (unsigned i = 0; i < h->nadopted; i++)
        free(h->adopted[i]);
    free(h->adopted);
    pthread_mutex_destroy(&h->alloc_lock);
    free(h);
}

void vuf_adopt(struct vuf *h, void *p)
{
    pthread_mutex_lock(&h->alloc_lock);
    if (h->nadopted == h->adopted_cap) {
        unsigned cap = h->adopted_cap ? h->adopted_cap * 2 : 16;
        void **a = realloc(h->adopted, cap * sizeof(*a));
        if (a) {
            h->adopted = a;
            h->adopted_cap = cap;
        }
    }
    if (h->nadopted < h->adopted_cap)
        h->adopted[h->nadopted++] = p;     /* else it leaks: harmless in a test */
    pthread_mutex_unlock(&h->alloc_lock);
}

const struct vuf_opts *vuf_opts(const struct vuf *h) { return &h->o; }
bool vuf_is_connected(const struct vuf *h) { return h->sock >= 0; }
int vuf_socket_fd(const struct vuf *h) { return h->sock; }
uint64_t vuf_features_offered(const struct vuf *h) { return h->feat_offered; }
uint64_t vuf_features(const struct vuf *h) { return h->feat; }
bool vuf_has_feature(const struct vuf *h, unsigned bit) { return bit < 64 && (h->feat >> bit) & 1; }
uint64_t vuf_protocol_features_offered(const struct vuf *h) { return h->pfeat_offered; }
uint64_t vuf_protocol_features(const struct vuf *h) { return h->pfeat; }
bool vuf_has_protocol_feature(const struct vuf *h, unsigned bit) { return bit < 64 && (h->pfeat >> bit) & 1; }
uint64_t vuf_queue_num(const struct vuf *h) { return h->queue_num; }
uint64_t vuf_max_mem_slots(const struct vuf *h) { return h->max_mem_slots; }
unsigned vuf_num_queues(const struct vuf *h) { return h->nq; }
void vuf_want_features(struct vuf *h, uint64_t bits) { h->want_extra |= bits; }
void vuf_set_ack(struct vuf *h, bool on) { h->ack = on; }

int vuf_connect(struct vuf *h, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!path)
        return -EINVAL;
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path) || len >= sizeof(h->path))
        return -ENAMETOOLONG;
    vuf_close(h);
    if (h->path != path)
        memmove(h->path, path, len + 1);
    memcpy(sa.sun_path, path, len + 1);
    int64_t deadline = vuf_now_ms() + h->o.timeout_ms;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            h->sock = fd;
            return 0;
        }
        int e = errno;
        close(fd);
        if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || vuf_now_ms() >= deadline)
            return -e;
        usleep(10000);
    }
}

void vuf_close(struct vuf *h)
{
    if (h->sock < 0)
        return;
    close(h->sock);
    h->sock = -1;
    for (unsigned q = 0; q < h->nq; q++)
        h->vq[q].started = false;
}

/* ---- messages --------------------------------------------------------------- */

static void trace(const struct vuf *h, const char *dir, uint32_t req, uint32_t flags,
                  uint32_t size, unsigned nfds)
{
    if (h->o.trace)
        fprintf(stderr, "vuf: %s %s(%u) flags 0x%x size %u fds %u\n", dir, vuf_req_name(req),
                req, flags, size, nfds);
}

int vuf_msg_send_bytes(struct vuf *h, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    if (h->sock < 0)
        return -ENOTCONN;
    if (nfds > VUF_MAX_FDS)
        return -EINVAL;
    union {
        char buf[CMSG_SPACE(VUF_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    size_t done = 0;
    int64_t deadline = vuf_now_ms() + h->o.timeout_ms;
    while (done < len || (len == 0 && nfds)) {
        ssize_t n = sendmsg(h->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd p = { h->sock, POLLOUT, 0 };
                if (poll(&p, 1, remaining_ms(deadline)) <= 0)
                    return -ETIMEDOUT;
                continue;
            }
            return -errno;
        }
        done += (size_t)n;
        if (len == 0)
            break;
        iov.iov_base = (char *)buf + done;
        iov.iov_len = len - done;
        mh.msg_control = NULL;     /* fds go with the first chunk only */
        mh.msg_controllen = 0;
    }
    return 0;
}

int vuf_msg_send(struct vuf *h, uint32_t request, uint32_t flags, const void *payload,
                 uint32_t size, const int *fds, unsigned nfds)
{
    uint8_t buf[sizeof(struct vuf_msg_hdr) + VUF_MAX_PAYLOAD];
    if (size > VUF_MAX_PAYLOAD)
        return -EMSGSIZE;
    struct vuf_msg_hdr hdr = { request, flags, size };
    memcpy(buf, &hdr, sizeof(hdr));
    if (size)
        memcpy(buf + sizeof(hdr), payload, size);
    trace(h, ">", request, flags, size, nfds);
    return vuf_msg_send_bytes(h, buf, sizeof(hdr) + size, fds, nfds);
}

/* Read exactly len bytes; collect fds from the first chunk. */
static int recv_full(struct vuf *h, void *buf, size_t len, int *fds, unsigned *nfds,
                     int64_t deadline)
{
    size_t done = 0;
    unsigned cap = nfds ? *nfds : 0, got = 0;
    while (done < len) {
        union {
            char buf[CMSG_SPACE(VUF_MAX_FDS * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = { (char *)buf + done, len - done };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
        struct pollfd p = { h->sock, POLLIN, 0 };
        int pr = poll(&p, 1, remaining_ms(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -ETIMEDOUT;
        ssize_t n = recvmsg(h->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? -ECONNRESET : -errno;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (unsigned i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (got < cap)
                    fds[got++] = fd;
                else
                    close(fd);
            }
        }
        if (n == 0) {
            for (unsigned i = 0; i < got; i++)
                close(fds[i]);
            if (nfds)
                *nfds = 0;
            return -ECONNRESET;
        }
        done += (size_t)n;
    }
    if (nfds)
        *nfds = got;
    return 0;
}

int vuf_msg_recv(struct vuf *h, struct vuf_msg_hdr *hdr, void *payload, size_t cap,
                 int *fds, unsigned *nfds, int timeout_ms)
{
    if (h->sock < 0)
        return -ENOTCONN;
    int64_t deadline = vuf_now_ms() + timeout_ms;
    int rc = recv_full(h, hdr, sizeof(*hdr), fds, nfds, deadline);
    if (rc < 0)
        return rc;
    if (hdr->size > cap || hdr->size > VUF_MAX_PAYLOAD) {
        trace(h, "< (too big)", hdr->request, hdr->flags, hdr->size, nfds ? *nfds : 0);
        return -EMSGSIZE;
    }
    rc = recv_full(h, payload, hdr->size, NULL, NULL, deadline);
    if (rc < 0)
        return rc;
    trace(h, "<", hdr->request, hdr->flags, hdr->size, nfds ? *nfds : 0);
    return (int)hdr->size;
}

static int recv_reply(struct vuf *h, uint32_t request, void *reply, size_t cap,
                      int *fds, unsigned *nfds)
{
    struct vuf_msg_hdr hdr;
    uint8_t buf[VUF_MAX_PAYLOAD];
    int n = vuf_msg_recv(h, &hdr, buf, sizeof(buf), fds, nfds, h->o.timeout_ms);
    if (n < 0)
        return n;
    if (hdr.request != request || !(hdr.flags & VUF_FLAG_REPLY) ||
        (hdr.flags & 0x3) != VUF_FLAG_VERSION) {
        fprintf(stderr, "vuf: bad reply to %s: request %u flags 0x%x size %u\n",
                vuf_req_name(request), hdr.request, hdr.flags, hdr.size);
        return -EPROTO;
    }
    memcpy(reply, buf, (size_t)n < cap ? (size_t)n : cap);
    return n;
}

int vuf_msg_call(struct vuf *h, uint32_t request, const void *payload, uint32_t size,
                 const int *fds, unsigned nfds, void *reply, size_t reply_cap)
{
    int rc = vuf_msg_send(h, request, VUF_FLAG_VERSION, payload, size, fds, nfds);
    if (rc < 0)
        return rc;
    return recv_reply(h, request, reply, reply_cap, NULL, NULL);
}

int vuf_peer_closed(struct vuf *h, int timeout_ms)
{
    if (h->sock < 0)
        return 1;
    int64_t deadline = vuf_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = { h->sock, POLLIN | POLLRDHUP, 0 };
        int pr = poll(&p, 1, remaining_ms(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return 0;
        if (p.revents & (POLLHUP | POLLERR))
            return 1;
        /* drain whatever arrived (replies, fds); EOF means closed */
        char buf[4096];
        union {
            char b[CMSG_SPACE(VUF_MAX_FDS * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b) };
        ssize_t n = recvmsg(h->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (unsigned i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                close(fd);
            }
        }
        if (p.revents & POLLRDHUP && n <= 0)
            return 1;
    }
}

/* A SET_* message: with REPLY_ACK, ask for and check the ack. */
static int send_set(struct vuf *h, uint32_t request, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds)
{
    bool need = h->ack && vuf_has_protocol_feature(h, VUF_PF_REPLY_ACK);
    int rc = vuf_msg_send(h, request, VUF_FLAG_VERSION | (need ? VUF_FLAG_NEED_REPLY : 0),
                          payload, size, fds, nfds);
    if (rc < 0 || !need)
        return rc;
    uint64_t ack = 0;
    rc = recv_reply(h, request, &ack, sizeof(ack), NULL, NULL);
    if (rc < 0)
        return rc;
    if (rc != sizeof(ack)) {
        fprintf(stderr, "vuf: %s ack has size %d\n", vuf_req_name(request), rc);
        return -EPROTO;
    }
    if (ack) {
        fprintf(stderr, "vuf: %s nacked (0x%llx)\n", vuf_req_name(request), (unsigned long long)ack);
        return -EREMOTEIO;
    }
    return 0;
}

int vuf_get_u64(struct vuf *h, uint32_t request, uint64_t *out)
{
    uint64_t v = 0;
    int rc = vuf_msg_call(h, request, NULL, 0, NULL, 0, &v, sizeof(v));
    if (rc < 0)
        return rc;
    if (rc != sizeof(v)) {
        fprintf(stderr, "vuf: %s reply has size %d, expected 8\n", vuf_req_name(request), rc);
        return -EPROTO;
    }
    *out = v;
    return 0;
}

int vuf_set_u64(struct vuf *h, uint32_t request, uint64_t value)
{
    return send_set(h, request, &value, sizeof(value), NULL, 0);
}

int vuf_set_none(struct vuf *h, uint32_t request)
{
    return send_set(h, request, NULL, 0, NULL, 0);
}

int vuf_set_vring_state(struct vuf *h, uint32_t request, uint32_t index, uint32_t num)
{
    struct vuf_vring_state s = { index, num };
    return send_set(h, request, &s, sizeof(s), NULL, 0);
}

int vuf_set_vring_addr(struct vuf *h, uint32_t index, uint64_t desc_qva, uint64_t used_qva,
                       uint64_t avail_qva, uint32_t flags)
{
    struct vuf_vring_addr_msg a = { index, flags, desc_qva, used_qva, avail_qva, 0 };
    return send_set(h, VUF_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

int vuf_set_vring_fd(struct vuf *h, uint32_t request, uint32_t index, int fd)
{
    uint64_t v = index | (fd < 0 ? VUF_VRING_NOFD : 0);
    return send_set(h, request, &v, sizeof(v), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

int vuf_get_vring_base(struct vuf *h, uint32_t index, uint32_t *num)
{
    struct vuf_vring_state s = { index, 0 }, r = { 0, 0 };
    int rc = vuf_msg_call(h, VUF_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &r, sizeof(r));
    if (rc < 0)
        return rc;
    if (rc != sizeof(r) || r.index != index) {
        fprintf(stderr, "vuf: GET_VRING_BASE reply size %d index %u (asked %u)\n", rc, r.index, index);
        return -EPROTO;
    }
    *num = r.num;
    return 0;
}

int vuf_set_mem_table(struct vuf *h)
{
    struct {
        uint32_t nregions, padding;
        struct vuf_mem_region_msg r[VUF_MAX_REGIONS];
    } m = { h->nreg, 0, {{0}} };
    int fds[VUF_MAX_REGIONS];
    for (unsigned i = 0; i < h->nreg; i++) {
        m.r[i] = (struct vuf_mem_region_msg){ h->reg[i].gpa, h->reg[i].size, h->reg[i].qva,
                                              h->reg[i].mmap_offset };
        fds[i] = h->reg[i].fd;
    }
    /* QEMU sends only the used region entries */
    return send_set(h, VUF_SET_MEM_TABLE, &m, 8 + h->nreg * sizeof(m.r[0]), fds, h->nreg);
}

static int mem_reg(struct vuf *h, uint32_t request, unsigned i)
{
    if (i >= h->nreg)
        return -EINVAL;
    struct {
        uint64_t padding;
        struct vuf_mem_region_msg r;
    } m = { 0, { h->reg[i].gpa, h->reg[i].size, h->reg[i].qva, h->reg[i].mmap_offset } };
    return send_set(h, request, &m, sizeof(m), &h->reg[i].fd, 1);
}

int vuf_add_mem_reg(struct vuf *h, unsigned i) { return mem_reg(h, VUF_ADD_MEM_REG, i); }
int vuf_rem_mem_reg(struct vuf *h, unsigned i) { return mem_reg(h, VUF_REM_MEM_REG, i); }

/* ---- negotiation and start (QEMU's order) ------------------------------- */

#define TRY(x) do { int _rc = (x); if (_rc < 0) { \
    fprintf(stderr, "vuf: %s: %s\n", #x, strerror(-_rc)); return _rc; } } while (0)

int vuf_negotiate(struct vuf *h)
{
    TRY(vuf_get_u64(h, VUF_GET_FEATURES, &h->feat_offered));
    h->pfeat = 0;
    h->pfeat_offered = 0;
    h->queue_num = 0;
    h->max_mem_slots = 0;
    if (h->feat_offered & VUF_BIT(VUF_F_PROTOCOL_FEATURES)) {
        TRY(vuf_get_u64(h, VUF_GET_PROTOCOL_FEATURES, &h->pfeat_offered));
        uint64_t want = h->pfeat_offered & h->o.protocol_features;
        TRY(vuf_msg_send(h, VUF_SET_PROTOCOL_FEATURES, VUF_FLAG_VERSION, &want, sizeof(want),
                         NULL, 0));
        h->pfeat = want;
        if (vuf_has_protocol_feature(h, VUF_PF_MQ))
            TRY(vuf_get_u64(h, VUF_GET_QUEUE_NUM, &h->queue_num));
        if (vuf_has_protocol_feature(h, VUF_PF_CONFIGURE_MEM_SLOTS))
            TRY(vuf_get_u64(h, VUF_GET_MAX_MEM_SLOTS, &h->max_mem_slots));
    }
    if (h->o.trace)
        fprintf(stderr, "vuf: features 0x%llx protocol 0x%llx (using 0x%llx) queues %llu slots %llu\n",
                (unsigned long long)h->feat_offered, (unsigned long long)h->pfeat_offered,
                (unsigned long long)h->pfeat, (unsigned long long)h->queue_num,
                (unsigned long long)h->max_mem_slots);
    TRY(vuf_msg_send(h, VUF_SET_OWNER, VUF_FLAG_VERSION, NULL, 0, NULL, 0));
    uint64_t again;
    TRY(vuf_get_u64(h, VUF_GET_FEATURES, &again));
    if (again != h->feat_offered) {
        fprintf(stderr, "vuf: GET_FEATURES changed: 0x%llx then 0x%llx\n",
                (unsigned long long)h->feat_offered, (unsigned long long)again);
        return -EPROTO;
    }

    unsigned nq = h->o.num_queues;
    if (!nq)
        nq = h->queue_num > VUF_MAX_QUEUES ? VUF_MAX_QUEUES : (unsigned)h->queue_num;
    if (!nq)
        nq = 1;
    if (h->queue_num && nq > h->queue_num) {
        /* QEMU >= 8.2 refuses to start in this case too */
        fprintf(stderr, "vuf: backend offers %llu queues, %u wanted\n",
                (unsigned long long)h->queue_num, nq);
        return -ENOTSUP;
    }
    if (!h->vq) {
        h->vq = calloc(nq, sizeof(*h->vq));
        if (!h->vq)
            return -ENOMEM;
        h->nq = nq;
        for (unsigned q = 0; q < nq; q++)
            TRY(vuf_vq_alloc(h, q));
    } else if (nq != h->nq) {
        fprintf(stderr, "vuf: queue count changed from %u to %u on reconnect\n", h->nq, nq);
        return -EPROTO;
    }
    /* vhost_virtqueue_init: the (masked) call notifier for every queue */
    for (unsigned q = 0; q < h->nq; q++)
        TRY(vuf_set_vring_fd(h, VUF_SET_VRING_CALL, q, h->vq[q].r.call_fd));
    return 0;
}

static int setup_inflight(struct vuf *h)
{
    struct vuf_inflight_msg m = { 0, 0, (uint16_t)h->nq, (uint16_t)h->o.queue_size };
    if (h->inflight_fd < 0) {
        struct vuf_inflight_msg r;
        int fd = -1;
        unsigned nfds = 1;
        TRY(vuf_msg_send(h, VUF_GET_INFLIGHT_FD, VUF_FLAG_VERSION, &m, sizeof(m), NULL, 0));
        int rc = recv_reply(h, VUF_GET_INFLIGHT_FD, &r, sizeof(r), &fd, &nfds);
        if (rc < 0)
            return rc;
        if (rc != sizeof(r) || nfds != 1) {
            fprintf(stderr, "vuf: GET_INFLIGHT_FD reply size %d with %u fds\n", rc, nfds);
            if (nfds)
                close(fd);
            return -EPROTO;
        }
        h->inflight_fd = fd;
        h->inflight_size = r.mmap_size;
        h->inflight_off = r.mmap_offset;
    }
    m.mmap_size = h->inflight_size;
    m.mmap_offset = h->inflight_off;
    return send_set(h, VUF_SET_INFLIGHT_FD, &m, sizeof(m), &h->inflight_fd, 1);
}

/* SET_VRING_NUM/BASE/ADDR/KICK/CALL for one queue (vhost_virtqueue_start). */
static int setup_queue(struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = &h->vq[q];
    vuf_vq_started(h, q);
    TRY(vuf_set_vring_state(h, VUF_SET_VRING_NUM, q, vq->r.size));
    /* after a disconnect QEMU resumes at the used index (no GET_VRING_BASE answer) */
    uint16_t base = vq->stopped ? vq->resume_base
                                : __atomic_load_n(&vq->r.used->idx, __ATOMIC_ACQUIRE);
    TRY(vuf_set_vring_state(h, VUF_SET_VRING_BASE, q, base));
    TRY(vuf_set_vring_addr(h, q, vuf_gpa_to_qva(h, vq->r.desc_gpa),
                           vuf_gpa_to_qva(h, vq->r.used_gpa),
                           vuf_gpa_to_qva(h, vq->r.avail_gpa), 0));
    TRY(vuf_set_vring_fd(h, VUF_SET_VRING_KICK, q, vq->r.kick_fd));
    TRY(vuf_set_vring_fd(h, VUF_SET_VRING_CALL, q, vq->r.call_fd));
    return 0;
}

static void mark_started(struct vuf *h, unsigned q)
{
    h->vq[q].started = true;
    h->vq[q].stopped = false;
}

int vuf_start(struct vuf *h)
{
    if (!h->vq)
        return -EINVAL;
    uint64_t want = h->o.features | h->want_extra;
    if (h->pfeat_offered)
        want |= VUF_BIT(VUF_F_PROTOCOL_FEATURES);
    h->feat = want & h->feat_offered;
    TRY(vuf_set_u64(h, VUF_SET_FEATURES, h->feat));
    if (vuf_has_protocol_feature(h, VUF_PF_INFLIGHT_SHMFD) && !h->o.no_inflight)
        TRY(setup_inflight(h));
    if (h->o.add_mem_reg && vuf_has_protocol_feature(h, VUF_PF_CONFIGURE_MEM_SLOTS)) {
        for (unsigned i = 0; i < h->nreg; i++)
            TRY(vuf_add_mem_reg(h, i));
    } else {
        TRY(vuf_set_mem_table(h));
    }
    for (unsigned q = 0; q < h->nq; q++)
        TRY(setup_queue(h, q));
    if (h->feat & VUF_BIT(VUF_F_PROTOCOL_FEATURES))
        for (unsigned q = 0; q < h->nq; q++)
            TRY(vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, q, 1));
    if (vuf_has_protocol_feature(h, VUF_PF_STATUS))
        TRY(vuf_set_u64(h, VUF_SET_STATUS, 0xf));  /* ACK|DRIVER|DRIVER_OK|FEATURES_OK */
    for (unsigned q = 0; q < h->nq; q++)
        mark_started(h, q);
    return 0;
}

int vuf_start_queue(struct vuf *h, unsigned q)
{
    if (q >= h->nq || h->vq[q].started)
        return -EINVAL;
    TRY(setup_queue(h, q));
    if (h->feat & VUF_BIT(VUF_F_PROTOCOL_FEATURES))
        TRY(vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, q, 1));
    mark_started(h, q);
    return 0;
}

int vuf_open(struct vuf *h, const char *path)
{
    int rc = vuf_connect(h, path);
    if (rc < 0)
        return rc;
    rc = vuf_negotiate(h);
    if (rc < 0)
        return rc;
    return vuf_start(h);
}

static int stop_queue(struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = &h->vq[q];
    uint32_t num;
    TRY(vuf_get_vring_base(h, q, &num));
    vq->resume_base = (uint16_t)num;
    vq->stopped = true;
    vq->started = false;
    return 0;
}

int vuf_stop(struct vuf *h)
{
    if (h->feat & VUF_BIT(VUF_F_PROTOCOL_FEATURES))
        for (unsigned q = 0; q < h->nq; q++)
            if (h->vq[q].started)
                TRY(vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, q, 0));
    for (unsigned q = 0; q < h->nq; q++)
        if (h->vq[q].started)
            TRY(stop_queue(h, q));
    return 0;
}

int vuf_stop_queue(struct vuf *h, unsigned q)
{
    if (q >= h->nq || !h->vq[q].started)
        return -EINVAL;
    if (h->feat & VUF_BIT(VUF_F_PROTOCOL_FEATURES))
        TRY(vuf_set_vring_state(h, VUF_SET_VRING_ENABLE, q, 0));
    return stop_queue(h, q);
}

int vuf_reconnect(struct vuf *h)
{
    vuf_close(h);
    return vuf_open(h, h->path);
}

int vuf_reset_device(struct vuf *h)
{
    int rc;
    if (vuf_has_protocol_feature(h, VUF_PF_RESET_DEVICE))
        rc = vuf_set_none(h, VUF_RESET_DEVICE);
    else
        rc = vuf_set_none(h, VUF_RESET_OWNER);
    for (unsigned q = 0; q < h->nq; q++) {
        vuf_vq_init_state(&h->vq[q]);
        h->vq[q].started = false;
    }
    return rc;
}

void vuf_pattern(void *buf, size_t len, uint64_t off, uint32_t seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint64_t o = off + i;
        uint64_t w = (o >> 3) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32 | seed);
        w ^= w >> 29;
        p[i] = (uint8_t)(w >> ((o & 7) * 8));
    }
}

/* vuf split virtqueues, driver side (virtio 1.x 2.7). */
#include "vuf_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LOAD(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define MB()         __atomic_thread_fence(__ATOMIC_SEQ_CST)

static uint16_t *used_event(struct vuf_vq *vq)
{
    return &vq->r.avail->ring[vq->r.size];
}

static uint16_t *avail_event(const struct vuf_vq *vq)
{
    return (uint16_t *)&vq->r.used->ring[vq->r.size];
}

void vuf_vq_init_state(struct vuf_vq *vq)
{
    unsigned n = vq->r.size;
    memset(vq->r.desc, 0, 16ull * n);
    memset(vq->r.avail, 0, 6 + 2ull * n);
    memset(vq->r.used, 0, 6 + 8ull * n);
    for (unsigned i = 0; i < n; i++) {
        vq->next[i] = (uint16_t)(i + 1);
        vq->slot[i].busy = false;
        vq->slot[i].token = NULL;
    }
    vq->free_head = 0;
    vq->num_free = n;
    vq->avail_idx = vq->last_used = vq->num_added = 0;
    vq->inflight = 0;
    vq->resume_base = 0;
    vq->stopped = true;     /* start at 0 */
    vq->irq_off = false;
}

int vuf_vq_alloc(struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = &h->vq[q];
    unsigned n = h->o.queue_size;
    vq->r.index = q;
    vq->r.size = n;
    vq->r.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vq->r.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vq->next = calloc(n, sizeof(*vq->next));
    vq->slot = calloc(n, sizeof(*vq->slot));
    /* alignment as in virtio 1.x 2.7: desc 16, avail 2, used 4 (use more) */
    vq->r.desc_gpa = vuf_alloc(h, 16ull * n, 4096);
    vq->r.avail_gpa = vuf_alloc(h, 6 + 2ull * n, 64);
    vq->r.used_gpa = vuf_alloc(h, 6 + 8ull * n, 4096);
    vq->allocated = true;   /* release frees whatever exists */
    if (vq->r.kick_fd < 0 || vq->r.call_fd < 0 || !vq->next || !vq->slot ||
        vq->r.desc_gpa == VUF_GPA_NONE || vq->r.avail_gpa == VUF_GPA_NONE ||
        vq->r.used_gpa == VUF_GPA_NONE)
        return -ENOMEM;
    vq->r.desc = vuf_ptr(h, vq->r.desc_gpa, 16ull * n);
    vq->r.avail = vuf_ptr(h, vq->r.avail_gpa, 6 + 2ull * n);
    vq->r.used = vuf_ptr(h, vq->r.used_gpa, 6 + 8ull * n);
    vuf_vq_init_state(vq);
    return 0;
}

void vuf_vq_release(struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = &h->vq[q];
    if (!vq->allocated)
        return;
    if (vq->r.kick_fd >= 0)
        close(vq->r.kick_fd);
    if (vq->r.call_fd >= 0)
        close(vq->r.call_fd);
    free(vq->next);
    free(vq->slot);
    vq->allocated = false;
}

void vuf_vq_started(struct vuf *h, unsigned q)
{
    h->vq[q].event_idx = vuf_has_feature(h, VUF_F_EVENT_IDX);
    vuf_vq_set_interrupts(h, q, !h->vq[q].irq_off);
}

static struct vuf_vq *get_vq(const struct vuf *h, unsigned q)
{
    if (q >= h->nq || !h->vq[q].allocated)
        return NULL;
    return &h->vq[q];
}

const struct vuf_vring *vuf_vq_ring(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? &vq->r : NULL;
}

static void publish(struct vuf_vq *vq, uint16_t head)
{
    vq->r.avail->ring[vq->avail_idx & (vq->r.size - 1)] = head;
    vq->avail_idx++;
    STORE(&vq->r.avail->idx, vq->avail_idx);
    if (vq->num_added < 0xffff)
        vq->num_added++;
}

int vuf_vq_prealloc_indirect(struct vuf *h, unsigned q, unsigned entries)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq || !entries || entries > 0xffffffffu / 16)
        return -EINVAL;
    for (unsigned i = 0; i < vq->r.size; i++) {
        struct vuf_slot *s = &vq->slot[i];
        if (s->ind_cap >= entries)
            continue;
        vuf_free_gpa(h, s->ind_gpa, 16ull * s->ind_cap);
        s->ind_cap = 0;
        s->ind_gpa = vuf_alloc(h, 16ull * entries, 16);
        if (s->ind_gpa == VUF_GPA_NONE)
            return -ENOMEM;
        s->ind_cap = entries;
    }
    return 0;
}

int vuf_vq_add(struct vuf *h, unsigned q, const struct vuf_sg *sg, unsigned n, void *token,
               unsigned flags)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq || !n)
        return -EINVAL;
    bool indirect = flags & VUF_ADD_INDIRECT;
    unsigned need = indirect ? 1 : n;
    if (vq->num_free < need)
        return -ENOSPC;
    uint16_t head = vq->free_head;
    struct vuf_slot *s = &vq->slot[head];

    if (indirect) {
        if (n > 0xffffffffu / 16)
            return -EINVAL;
        if (s->ind_cap < n) {
            vuf_free_gpa(h, s->ind_gpa, 16ull * s->ind_cap);
            s->ind_cap = 0;
            s->ind_gpa = vuf_alloc(h, 16ull * n, 16);
            if (s->ind_gpa == VUF_GPA_NONE)
                return -ENOMEM;
            s->ind_cap = n;
        }
        struct vuf_desc *t = vuf_ptr(h, s->ind_gpa, 16ull * n);
        for (unsigned i = 0; i < n; i++) {
            t[i].addr = sg[i].gpa;
            t[i].len = sg[i].len;
            t[i].flags = (uint16_t)((sg[i].write ? VUF_DESC_F_WRITE : 0) |
                                    (i + 1 < n ? VUF_DESC_F_NEXT : 0));
            t[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
        }
        struct vuf_desc *d = &vq->r.desc[head];
        d->addr = s->ind_gpa;
        d->len = 16 * n;
        d->flags = VUF_DESC_F_INDIRECT;
        d->next = 0;
        vq->free_head = vq->next[head];
    } else {
        uint16_t id = head;
        for (unsigned i = 0; i < n; i++) {
            struct vuf_desc *d = &vq->r.desc[id];
            d->addr = sg[i].gpa;
            d->len = sg[i].len;
            d->flags = (uint16_t)((sg[i].write ? VUF_DESC_F_WRITE : 0) |
                                  (i + 1 < n ? VUF_DESC_F_NEXT : 0));
            d->next = i + 1 < n ? vq->next[id] : 0;
            id = vq->next[id];
        }
        vq->free_head = id;
    }
    vq->num_free -= need;
    s->ndesc = (uint16_t)need;
    s->busy = true;
    s->token = token;
    vq->inflight++;
    publish(vq, head);
    return head;
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int vuf_vq_notify(struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq)
        return -EINVAL;
    uint64_t one = 1;
    vq->kicks++;
    return write(vq->r.kick_fd, &one, sizeof(one)) == sizeof(one) ? 1 : -errno;
}

int vuf_vq_kick(struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq)
        return -EINVAL;
    MB();   /* avail idx store before reading the device's suppression state */
    bool kick;
    if (vq->event_idx)
        kick = need_event(LOAD(avail_event(vq)), vq->avail_idx,
                          (uint16_t)(vq->avail_idx - vq->num_added));
    else
        kick = !(LOAD(&vq->r.used->flags) & VUF_USED_F_NO_NOTIFY);
    vq->num_added = 0;
    return kick ? vuf_vq_notify(h, q) : 0;
}

void vuf_vq_set_interrupts(struct vuf *h, unsigned q, bool on)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq)
        return;
    vq->irq_off = !on;
    if (vq->event_idx) {
        /* off: an event index the device will not reach soon */
        STORE(used_event(vq), (uint16_t)(on ? vq->last_used : vq->last_used - 1));
        STORE(&vq->r.avail->flags, 0);
    } else {
        STORE(&vq->r.avail->flags, on ? 0 : VUF_AVAIL_F_NO_INTERRUPT);
    }
    MB();
}

static bool more_used(const struct vuf_vq *vq)
{
    return LOAD(&vq->r.used->idx) != vq->last_used;
}

int vuf_vq_raw_get_used(struct vuf *h, unsigned q, uint32_t *id, uint32_t *len)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq || !more_used(vq))
        return 0;
    struct vuf_used_elem e = vq->r.used->ring[vq->last_used & (vq->r.size - 1)];
    vq->last_used++;
    if (vq->event_idx && !vq->irq_off)
        STORE(used_event(vq), vq->last_used);
    *id = e.id;
    *len = e.len;
    return 1;
}

int vuf_vq_get_used(struct vuf *h, unsigned q, void **token, uint32_t *len)
{
    struct vuf_vq *vq = get_vq(h, q);
    uint32_t id, l;
    if (!vq)
        return -EINVAL;
    if (!vuf_vq_raw_get_used(h, q, &id, &l))
        return 0;
    if (id >= vq->r.size || !vq->slot[id].busy)
        return -EPROTO;
    struct vuf_slot *s = &vq->slot[id];
    uint16_t last = (uint16_t)id;
    for (unsigned i = 1; i < s->ndesc; i++)
        last = vq->next[last];
    vq->next[last] = vq->free_head;
    vq->free_head = (uint16_t)id;
    vq->num_free += s->ndesc;
    s->busy = false;
    vq->inflight--;
    if (token)
        *token = s->token;
    if (len)
        *len = l;
    return 1;
}

int vuf_vq_wait(struct vuf *h, unsigned q, int timeout_ms)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq)
        return -EINVAL;
    int64_t deadline = vuf_now_ms() + timeout_ms;
    bool was_off = vq->irq_off;
    int rc = 0;
    for (;;) {
        if (more_used(vq)) {
            rc = 1;
            break;
        }
        vuf_vq_set_interrupts(h, q, true);   /* includes a full barrier */
        if (more_used(vq)) {
            rc = 1;
            break;
        }
        int64_t left = deadline - vuf_now_ms();
        if (left <= 0)
            break;
        struct pollfd p[2] = { { vq->r.call_fd, POLLIN, 0 }, { vuf_socket_fd(h), POLLRDHUP, 0 } };
        int pr = poll(p, p[1].fd >= 0 ? 2 : 1, (int)left);
        if (pr < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (pr > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(vq->r.call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
                rc = -errno;
                break;
            }
        }
        if (pr > 0 && p[1].fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            rc = more_used(vq) ? 1 : -ECONNRESET;
            break;
        }
    }
    if (was_off)
        vuf_vq_set_interrupts(h, q, false);
    return rc;
}

int vuf_vq_wait_token(struct vuf *h, unsigned q, void *token, uint32_t *len, int timeout_ms)
{
    int64_t deadline = vuf_now_ms() + timeout_ms;
    for (;;) {
        void *t;
        uint32_t l;
        int rc = vuf_vq_get_used(h, q, &t, &l);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (t == token) {
                if (len)
                    *len = l;
                return 1;
            }
            continue;   /* someone else's completion: dropped */
        }
        int64_t left = deadline - vuf_now_ms();
        if (left <= 0)
            return 0;
        rc = vuf_vq_wait(h, q, (int)left);
        if (rc <= 0)
            return rc;
    }
}

unsigned vuf_vq_num_free(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? vq->num_free : 0;
}

unsigned vuf_vq_inflight(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? vq->inflight : 0;
}

uint64_t vuf_vq_kicks(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? vq->kicks : 0;
}

int vuf_vq_take_descs(struct vuf *h, unsigned q, unsigned n, uint16_t *ids)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq)
        return -EINVAL;
    if (vq->num_free < n)
        return -ENOSPC;
    for (unsigned i = 0; i < n; i++) {
        ids[i] = vq->free_head;
        vq->free_head = vq->next[vq->free_head];
    }
    vq->num_free -= n;
    return 0;
}

void vuf_vq_raw_avail(struct vuf *h, unsigned q, uint16_t head)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (vq)
        publish(vq, head);
}

void vuf_vq_raw_set_avail_idx(struct vuf *h, unsigned q, uint16_t idx)
{
    struct vuf_vq *vq = get_vq(h, q);
    if (!vq)
        return;
    vq->avail_idx = idx;
    STORE(&vq->r.avail->idx, idx);
}

uint16_t vuf_vq_used_idx(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? LOAD(&vq->r.used->idx) : 0;
}

uint16_t vuf_vq_last_base(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? vq->resume_base : 0;
}

uint16_t vuf_vq_avail_event(const struct vuf *h, unsigned q)
{
    struct vuf_vq *vq = get_vq(h, q);
    return vq ? LOAD(avail_event(vq)) : 0;
}

/* Split virtqueues (virtio 1.x section 2.7), device side.
 *
 * The driver runs on another CPU and may rewrite the ring at any moment:
 * every index and descriptor is read once into a local before it is checked
 * and used, the avail index is loaded with acquire semantics before the ring
 * entries it publishes, and the used index is stored with release semantics
 * after the used entries. Any malformed chain marks the queue broken; nothing
 * here aborts on guest-controlled data. */
#include "vhost/virtq_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static bool vq_has(const struct vq *vq, unsigned bit)
{
    return vq->features & (1ull << bit);
}

/* used_event lives after the avail ring, avail_event after the used ring (2.7.10). */
static uint16_t *vq_used_event(const struct vq *vq)
{
    return &vq->avail->ring[vq->num];
}

static uint16_t *vq_avail_event(const struct vq *vq)
{
    return (uint16_t *)&vq->used->ring[vq->num];
}

static uint16_t vq_load_avail_idx(const struct vq *vq)
{
    /* Acquire: ring entries and descriptors the driver wrote before bumping
     * idx are visible after this load (2.7.13.3 driver side uses a write barrier). */
    return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
}

static void eventfd_signal(int fd)
{
    uint64_t one = 1;

    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: counter saturated, a signal is pending anyway */
    }
}

int vq_fail(struct vq *vq, const char *fmt, ...)
{
    char buf[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (!vq->broken)
        log_guest("vhost: queue %u: %s; queue stopped until reset", vq->index, buf);
    vq->broken = true;
    /* The frontend reports errors on this fd (QEMU: "vhost vring error"). */
    eventfd_signal(vq->err_fd);
    return -EIO;
}

int vq_init(struct vq *vq, unsigned index)
{
    memset(vq, 0, sizeof(*vq));
    vq->index = index;
    vq->kick_fd = vq->call_fd = vq->err_fd = -1;
    vq->notify_enabled = true;
    return -pthread_mutex_init(&vq->call_lock, NULL);
}

void vq_destroy(struct vq *vq)
{
    vq_set_kick(vq, -1, false);
    vq_set_call(vq, -1);
    vq_set_err(vq, -1);
    free(vq->inflight_map);
    vq->inflight_map = NULL;
    free(vq->resubmit);
    vq->resubmit = NULL;
    pthread_mutex_destroy(&vq->call_lock);
}

void vq_set_features(struct vq *vq, uint64_t features)
{
    vq->features = features;
}

static void vq_unmap_rings(struct vq *vq)
{
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
}

/* Translate the three rings through the current table; each must lie inside
 * one region (vhost-user: ring addresses are user addresses). */
static int vq_map_rings(struct vq *vq)
{
    void *desc, *avail, *used;

    if (!vq->mem || !vq->num || !vq->addr_set)
        return -EINVAL;
    desc = mem_uva_range(vq->mem, vq->desc_uva, vring_desc_bytes(vq->num));
    avail = mem_uva_range(vq->mem, vq->avail_uva, vring_avail_bytes(vq->num));
    used = mem_uva_range(vq->mem, vq->used_uva, vring_used_bytes(vq->num));
    if (!desc || !avail || !used)
        return -EFAULT;
    /* The host mapping must keep the alignment the atomics below rely on. */
    if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3))
        return -EINVAL;
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    return 0;
}

void vq_set_mem(struct vq *vq, struct vhost_mem *mem)
{
    vq->mem = mem;
    if (!vq->addr_set || !vq->num) {
        vq_unmap_rings(vq);
        return;
    }
    /* Rings are re-translated even when stopped: in-flight pushes need them. */
    if (vq_map_rings(vq) < 0) {
        vq_unmap_rings(vq);
        if (vq->running)
            vq_fail(vq, "rings are outside the new memory table");
    }
}

int vq_set_num(struct vq *vq, unsigned num)
{
    if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1)))
        return -EINVAL;
    if (vq->running || __atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST))
        return -EBUSY;
    if (num > vq->inflight_map_bits) {
        uint64_t *map = calloc((num + 63) / 64, sizeof(uint64_t));

        if (!map)
            return -ENOMEM;
        free(vq->inflight_map);
        vq->inflight_map = map;
        vq->inflight_map_bits = (num + 63) / 64 * 64;
    }
    vq->num = num;
    vq_unmap_rings(vq);
    return 0;
}

int vq_set_base(struct vq *vq, unsigned base)
{
    if (base > 0xffff)
        return -EINVAL;
    if (vq->running || __atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST))
        return -EBUSY;
    vq->last_avail_idx = (uint16_t)base;
    return 0;
}

int vq_set_addr(struct vq *vq, uint64_t desc, uint64_t avail, uint64_t used,
                uint32_t flags, uint64_t log_gpa)
{
    /* 2.7: descriptor table 16-byte, available ring 2-byte, used ring 4-byte aligned. */
    if ((desc & 15) || (avail & 1) || (used & 3))
        return -EINVAL;
    vq->desc_uva = desc;
    vq->avail_uva = avail;
    vq->used_uva = used;
    vq->addr_flags = flags;
    vq->log_gpa = log_gpa;
    vq->addr_set = true;
    vq_unmap_rings(vq);
    if (vq->mem && vq->num) {
        int ret = vq_map_rings(vq);

        if (ret < 0) {
            vq->addr_set = false;
            return ret;
        }
    }
    return 0;
}

void vq_set_kick(struct vq *vq, int fd, bool polling)
{
    if (vq->kick_fd >= 0)
        close(vq->kick_fd);
    vq->kick_fd = fd;
    vq->kick_polling = fd < 0 && polling;
}

void vq_set_call(struct vq *vq, int fd)
{
    int old;

    /* vq_notify may run on the queue's thread: swap under the lock so it
     * never writes to a closed (or reused) descriptor number. */
    pthread_mutex_lock(&vq->call_lock);
    old = vq->call_fd;
    vq->call_fd = fd;
    /* The guest may have missed a signal sent to the old fd (QEMU swaps in
     * the real notifier right after SET_VRING_ENABLE): signal the new one
     * now for a running queue; a start signals by itself. */
    vq->signalled_used_valid = false;
    if (vq->running)
        eventfd_signal(fd);
    pthread_mutex_unlock(&vq->call_lock);
    if (old >= 0)
        close(old);
}

void vq_set_err(struct vq *vq, int fd)
{
    if (vq->err_fd >= 0)
        close(vq->err_fd);
    vq->err_fd = fd;
}

void vq_set_enabled(struct vq *vq, bool enabled)
{
    vq->enabled = enabled;
}

bool vq_ready(const struct vq *vq)
{
    return vq->mem && vq->num && vq->addr_set && (vq->kick_fd >= 0 || vq->kick_polling);
}

int vq_start(struct vq *vq)
{
    int ret;

    if (vq->running)
        return 0;
    ret = vq_map_rings(vq);
    if (ret < 0)
        return ret;
    vq->used_idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
    /* A start with nothing of ours in flight may follow another backend
     * process: take over what it left in the inflight region. */
    if (vq->ireg && !__atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST))
        vq_inflight_recover(vq);
    /* A backend killed between publishing used entries and signalling them
     * leaves a driver waiting for an interrupt that never comes: signal once
     * on every start with nothing of ours in flight (a spurious interrupt
     * costs the driver a look at the used ring). */
    if (!__atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&vq->call_lock);
        eventfd_signal(vq->call_fd);
        pthread_mutex_unlock(&vq->call_lock);
    }
    vq->signalled_used = vq->used_idx;
    vq->signalled_used_valid = false;
    vq->notify_enabled = true;
    /* Ask for kicks (2.7.10): from the next entry on, or no suppression flag. */
    if (vq_has(vq, VIRTIO_RING_F_EVENT_IDX))
        __atomic_store_n(vq_avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
    else
        __atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    vq->running = true;
    return 0;
}

void vq_stop(struct vq *vq)
{
    vq->running = false;
}

bool vq_running(const struct vq *vq)
{
    return vq->running;
}

uint16_t vq_last_avail(const struct vq *vq)
{
    return vq->last_avail_idx;
}

/* The inflight region goes with the session; marks left there are for the
 * next start (pushes from now on only count). */
static void vq_drop_inflight(struct vq *vq)
{
    vq->ireg = NULL;
    vq->ireg_size = 0;
    free(vq->resubmit);
    vq->resubmit = NULL;
    vq->resubmit_num = vq->resubmit_pos = 0;
}

void vq_detach(struct vq *vq)
{
    vq->running = false;
    vq->mem = NULL;
    vq_drop_inflight(vq);
    vq_unmap_rings(vq);
    vq_set_kick(vq, -1, false);
    vq_set_call(vq, -1);
    vq_set_err(vq, -1);
}

void vq_reset(struct vq *vq, bool keep_fds)
{
    vq->running = false;
    vq_drop_inflight(vq);
    vq_unmap_rings(vq);
    vq->num = 0;
    vq->addr_set = false;
    vq->desc_uva = vq->avail_uva = vq->used_uva = 0;
    vq->addr_flags = 0;
    vq->log_gpa = 0;
    vq_set_kick(vq, -1, false);
    if (!keep_fds) {
        vq_set_call(vq, -1);
        vq_set_err(vq, -1);
    }
    vq->enabled = false;
    vq->features = 0;
    vq->broken = false;
    vq->notify_enabled = true;
    vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    __atomic_store_n(&vq->drain_wanted, false, __ATOMIC_SEQ_CST);
    if (vq->inflight_map)
        memset(vq->inflight_map, 0, vq->inflight_map_bits / 8);
}

void vq_set_drain_cb(struct vq *vq, vq_drain_cb *cb, void *opaque)
{
    vq->drain_cb = cb;
    vq->drain_opaque = opaque;
}

bool vq_want_drain(struct vq *vq, bool want)
{
    /* Pairs with the seq_cst decrement in vq_push: either we see 0 here or
     * the pusher sees drain_wanted and calls back. */
    __atomic_store_n(&vq->drain_wanted, want, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST) == 0;
}

/* ---- data path ---- */

static bool map_test(const struct vq *vq, unsigned head)
{
    return vq->inflight_map[head / 64] & (1ull << (head % 64));
}

static void map_set(struct vq *vq, unsigned head, bool on)
{
    if (on)
        vq->inflight_map[head / 64] |= 1ull << (head % 64);
    else
        vq->inflight_map[head / 64] &= ~(1ull << (head % 64));
}

/* Copy one descriptor out of guest memory. The compiler barrier keeps later
 * uses on the copy: the driver may rewrite the entry meanwhile (no double fetch). */
static void desc_read(const struct vring_desc *src, struct vring_desc *d)
{
    memcpy(d, src, sizeof(*d));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Add iovecs for [gpa, gpa + len), split at region boundaries. */
static int vq_map_buf(const struct vhost_mem *mem, uint64_t gpa, uint32_t len,
                      struct iovec *iov, unsigned cap, unsigned *n)
{
    if (len && len - 1 > UINT64_MAX - gpa)
        return -EFAULT;
    while (len) {
        uint64_t chunk = len;
        void *p = mem_gpa_to_host(mem, gpa, &chunk);

        if (!p)
            return -EFAULT;
        if (*n >= cap)
            return -ENOBUFS;
        iov[*n].iov_base = p;
        iov[*n].iov_len = chunk;
        (*n)++;
        gpa += chunk;
        len -= (uint32_t)chunk;
    }
    return 0;
}

/* Walk the chain at head (2.7.5, 2.7.5.3): direct descriptors, at most one
 * indirect table at the end, readable buffers before writable ones. */
static int vq_walk(struct vq *vq, unsigned head, struct iovec *iov, unsigned cap,
                   unsigned *out_num, unsigned *in_num)
{
    const struct vring_desc *table = vq->desc;
    unsigned table_len = vq->num, i = head, seen = 0, total = 0, n = 0;
    bool indirect = false, writable = false;
    uint64_t bytes = 0;
    struct vring_desc d;
    int ret;

    *out_num = *in_num = 0;
    for (;;) {
        /* A chain visits each entry of its table at most once: more is a loop. */
        if (++seen > table_len) {
            vq_fail(vq, "descriptor chain at head %u loops", head);
            return -ELOOP;
        }
        desc_read(&table[i], &d);

        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (!vq_has(vq, VIRTIO_RING_F_INDIRECT_DESC)) {
                vq_fail(vq, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
                return -EINVAL;
            }
            /* 2.7.5.3.1: no INDIRECT inside a table, not with NEXT. */
            if (indirect) {
                vq_fail(vq, "nested indirect descriptor at head %u", head);
                return -EINVAL;
            }
            if (d.flags & VRING_DESC_F_NEXT) {
                vq_fail(vq, "descriptor with both INDIRECT and NEXT at head %u", head);
                return -EINVAL;
            }
            if (d.len == 0 || d.len % sizeof(struct vring_desc) ||
                d.len / sizeof(struct vring_desc) > VQ_MAX_CHAIN) {
                vq_fail(vq, "indirect table length %u invalid", d.len);
                return -EINVAL;
            }
            table = mem_gpa_range(vq->mem, d.addr, d.len);
            if (!table) {
                vq_fail(vq, "indirect table 0x%llx+%u outside guest memory",
                        (unsigned long long)d.addr, d.len);
                return -EFAULT;
            }
            table_len = d.len / sizeof(struct vring_desc);
            indirect = true;
            seen = 0;
            i = 0;
            continue;
        }

        /* Buffers count towards the limit, the pointer to a table does not. */
        if (++total > VQ_MAX_CHAIN) {
            vq_fail(vq, "descriptor chain at head %u exceeds %u descriptors", head,
                    VQ_MAX_CHAIN);
            return -E2BIG;
        }
        if (d.flags & VRING_DESC_F_WRITE) {
            writable = true;
        } else if (writable) {
            /* 2.7.4.2: device-readable descriptors come first. */
            vq_fail(vq, "device-readable descriptor after a device-writable one at head %u",
                    head);
            return -EINVAL;
        }
        if (d.len > VQ_MAX_CHAIN_BYTES - bytes) {
            vq_fail(vq, "chain at head %u longer than %u bytes", head, VQ_MAX_CHAIN_BYTES);
            return -EINVAL;
        }
        bytes += d.len;

        unsigned before = n;
        ret = vq_map_buf(vq->mem, d.addr, d.len, iov, cap, &n);
        if (ret == -ENOBUFS) {
            vq_fail(vq, "chain at head %u needs more than %u iovecs", head, cap);
            return ret;
        }
        if (ret < 0) {
            vq_fail(vq, "buffer 0x%llx+%u outside guest memory",
                    (unsigned long long)d.addr, d.len);
            return ret;
        }
        if (writable)
            *in_num += n - before;
        else
            *out_num += n - before;

        if (!(d.flags & VRING_DESC_F_NEXT))
            return 0;
        if (d.next >= table_len) {
            vq_fail(vq, "next index %u out of range (%u entries)", d.next, table_len);
            return -EINVAL;
        }
        i = d.next;
    }
}

/* Ring empty with notifications on: publish avail_event, then look again,
 * since the driver may have added a buffer without seeing it (2.7.10). */
static bool vq_rearm(struct vq *vq)
{
    if (!vq->notify_enabled || !vq_has(vq, VIRTIO_RING_F_EVENT_IDX))
        return false;
    __atomic_store_n(vq_avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return vq_load_avail_idx(vq) != vq->last_avail_idx;
}

static void vq_elem_fill(struct vq *vq, struct vq_elem *elem, uint16_t head, struct iovec *iov,
                         unsigned out_num, unsigned in_num)
{
    elem->head = head;
    elem->out_num = out_num;
    elem->in_num = in_num;
    elem->iov = iov;
    elem->mem = vq->mem;
    mem_ref(vq->mem);
    map_set(vq, head, true);
    __atomic_add_fetch(&vq->inflight, 1, __ATOMIC_SEQ_CST);
}

/* A head the previous backend popped and never used: walk its chain again
 * (the driver has not seen it complete, so the descriptors are unchanged).
 * Its mark and counter in the region stay as they are. */
static int vq_pop_resubmit(struct vq *vq, struct vq_elem *elem, struct iovec *iov,
                           unsigned iov_cap)
{
    uint16_t head = vq->resubmit[vq->resubmit_pos];
    unsigned out_num, in_num;
    int ret;

    if (head >= vq->num || map_test(vq, head))
        return vq_fail(vq, "inflight head %u cannot be resubmitted", head);
    ret = vq_walk(vq, head, iov, iov_cap, &out_num, &in_num);
    if (ret < 0)
        return ret;
    vq->resubmit_pos++;
    if (vq->resubmit_pos == vq->resubmit_num) {
        free(vq->resubmit);
        vq->resubmit = NULL;
        vq->resubmit_num = vq->resubmit_pos = 0;
    }
    vq_elem_fill(vq, elem, head, iov, out_num, in_num);
    return 1;
}

int vq_pop(struct vq *vq, struct vq_elem *elem, struct iovec *iov, unsigned iov_cap)
{
    uint16_t avail_idx, head;
    unsigned out_num, in_num;
    int ret;

    if (vq->broken)
        return -EIO;
    if (!vq->running || !vq->avail)
        return 0;
    if (vq->resubmit_pos < vq->resubmit_num)
        return vq_pop_resubmit(vq, elem, iov, iov_cap);

    avail_idx = vq_load_avail_idx(vq);
    if (avail_idx == vq->last_avail_idx) {
        if (!vq_rearm(vq))
            return 0;
        avail_idx = vq_load_avail_idx(vq);
    }
    /* 2.7.6: the driver never has more than num buffers outstanding. */
    if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->num)
        return vq_fail(vq, "avail index %u is more than %u ahead of %u",
                       avail_idx, vq->num, vq->last_avail_idx);

    head = __atomic_load_n(&vq->avail->ring[vq->last_avail_idx & (vq->num - 1)],
                           __ATOMIC_RELAXED);
    if (head >= vq->num)
        return vq_fail(vq, "head %u out of range (size %u)", head, vq->num);
    if (map_test(vq, head))
        return vq_fail(vq, "head %u made available while still in flight", head);

    ret = vq_walk(vq, head, iov, iov_cap, &out_num, &in_num);
    if (ret < 0)
        return ret;

    if (vq->ireg) {
        /* Spec order: counter, then the mark (a reader trusts a marked counter). */
        struct vq_inflight_desc *d = &vq->ireg->desc[head];

        __atomic_store_n(&d->counter, vq->icounter++, __ATOMIC_RELAXED);
        __atomic_store_n(&d->inflight, 1, __ATOMIC_RELEASE);
    }
    vq_elem_fill(vq, elem, head, iov, out_num, in_num);
    vq->last_avail_idx++;
    return 1;
}

void vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t len)
{
    struct vhost_mem *mem = elem->mem;
    unsigned head = elem->head;

    /* Device-layer bugs (double push, foreign element): refuse, don't corrupt. */
    if (!mem || head >= vq->inflight_map_bits || !map_test(vq, head)) {
        log_err("vhost: queue %u: push of head %u that is not in flight", vq->index, head);
        return;
    }
    map_set(vq, head, false);

    /* After the session ended the ring is gone: only the accounting remains
     * (and the inflight marks stay for the next backend session). */
    if (vq->used) {
        struct vring_used_elem *u = &vq->used->ring[vq->used_idx & (vq->num - 1)];
        struct vq_inflight_region *r = vq->ireg;

        /* Inflight spec order: the batch list first, so that a crash after
         * used->idx moved can be repaired from last_batch_head. */
        if (r) {
            __atomic_store_n(&r->desc[head].next, r->last_batch_head, __ATOMIC_RELAXED);
            __atomic_store_n(&r->last_batch_head, (uint16_t)head, __ATOMIC_RELEASE);
        }
        __atomic_store_n(&u->id, head, __ATOMIC_RELAXED);
        __atomic_store_n(&u->len, len, __ATOMIC_RELAXED);
        vq->used_idx++;
        /* 2.7.8.2: the entry is visible before the index that publishes it. */
        __atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
        if (r) {
            __atomic_store_n(&r->desc[head].inflight, 0, __ATOMIC_RELEASE);
            __atomic_store_n(&r->used_idx, vq->used_idx, __ATOMIC_RELEASE);
        }
    }

    /* Seam for LOG_SHMFD: mark the used entry and the written buffers dirty here. */

    mem_unref(mem);
    if (__atomic_sub_fetch(&vq->inflight, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&vq->drain_wanted, __ATOMIC_SEQ_CST) && vq->drain_cb)
        vq->drain_cb(vq->drain_opaque, vq);
}

/* virtio 2.7.10: vring_need_event */
static bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static bool vq_should_notify(struct vq *vq)
{
    uint16_t old = vq->signalled_used, new_idx = vq->used_idx;
    bool valid = vq->signalled_used_valid;

    vq->signalled_used = new_idx;
    vq->signalled_used_valid = true;
    if (old == new_idx)
        return false;           /* nothing used since the last check */

    /* Order the used index store before reading the driver's suppression
     * fields: otherwise both sides can miss each other (2.7.10). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    /* NOTIFY_ON_EMPTY: notify when we ran out of buffers, suppressed or not. */
    if (vq_has(vq, VIRTIO_F_NOTIFY_ON_EMPTY) && vq->running &&
        vq_load_avail_idx(vq) == vq->last_avail_idx)
        return true;
    if (vq_has(vq, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t event = __atomic_load_n(vq_used_event(vq), __ATOMIC_RELAXED);

        return !valid || vring_need_event(event, new_idx, old);
    }
    return !(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
}

void vq_notify(struct vq *vq)
{
    if (!vq->used || !vq->avail)
        return;
    pthread_mutex_lock(&vq->call_lock);
    if (vq_should_notify(vq))
        eventfd_signal(vq->call_fd);
    pthread_mutex_unlock(&vq->call_lock);
}

int vq_kick_fd(const struct vq *vq)
{
    return vq->kick_fd;
}

bool vq_enable_notify(struct vq *vq)
{
    if (!vq->running || !vq->used)
        return false;
    vq->notify_enabled = true;
    if (vq_has(vq, VIRTIO_RING_F_EVENT_IDX))
        __atomic_store_n(vq_avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
    else
        __atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
    /* Publish the request before looking for buffers added meanwhile. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return vq_load_avail_idx(vq) != vq->last_avail_idx;
}

void vq_disable_notify(struct vq *vq)
{
    if (!vq->running || !vq->used)
        return;
    vq->notify_enabled = false;
    /* With EVENT_IDX a stale avail_event already suppresses kicks. */
    if (!vq_has(vq, VIRTIO_RING_F_EVENT_IDX))
        __atomic_store_n(&vq->used->flags, VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

unsigned vq_size(const struct vq *vq)
{
    return vq->num;
}

unsigned vq_index(const struct vq *vq)
{
    return vq->index;
}

bool vq_is_broken(const struct vq *vq)
{
    return vq->broken;
}

unsigned vq_inflight(const struct vq *vq)
{
    return __atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST);
}

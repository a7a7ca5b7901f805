/* Inflight I/O tracking for split virtqueues (vhost-user spec, "Inflight I/O
 * tracking"). vq_pop marks a head in flight with a counter, vq_push records
 * it in the last-batch list, publishes the used entry, then clears the mark
 * and records used_idx, in that order, so that a backend killed between any
 * two of those stores leaves a region the next process can repair.
 *
 * The region comes from the frontend and is untrusted: values are read once
 * into locals and bounded by the queue size; a region that does not match the
 * queue (version, size) is reinitialized rather than believed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vhost/virtq_internal.h"

uint64_t vq_inflight_region_bytes(unsigned queue_size)
{
    uint64_t n = sizeof(struct vq_inflight_region) +
                 (uint64_t)queue_size * sizeof(struct vq_inflight_desc);

    return (n + VQ_INFLIGHT_ALIGN - 1) & ~(uint64_t)(VQ_INFLIGHT_ALIGN - 1);
}

void vq_inflight_region_init(struct vq_inflight_region *r, unsigned queue_size)
{
    memset(r, 0, vq_inflight_region_bytes(queue_size));
    r->desc_num = (uint16_t)queue_size;
    __atomic_store_n(&r->version, VQ_INFLIGHT_VERSION, __ATOMIC_RELEASE);
}

static void resubmit_clear(struct vq *vq)
{
    free(vq->resubmit);
    vq->resubmit = NULL;
    vq->resubmit_num = vq->resubmit_pos = 0;
}

int vq_set_inflight(struct vq *vq, struct vq_inflight_region *r, unsigned queue_size)
{
    if (vq->running || __atomic_load_n(&vq->inflight, __ATOMIC_SEQ_CST))
        return -EBUSY;
    resubmit_clear(vq);
    vq->ireg = r;
    vq->ireg_size = r ? queue_size : 0;
    vq->icounter = 0;
    return 0;
}

unsigned vq_resubmit_pending(const struct vq *vq)
{
    return vq->resubmit_num - vq->resubmit_pos;
}

struct stamp {
    uint64_t counter;
    uint16_t head;
};

static int stamp_cmp(const void *a, const void *b)
{
    const struct stamp *x = a, *y = b;

    if (x->counter != y->counter)
        return x->counter < y->counter ? -1 : 1;
    return x->head < y->head ? -1 : x->head > y->head;
}

unsigned vq_inflight_recover(struct vq *vq)
{
    struct vq_inflight_region *r = vq->ireg;
    uint16_t used = vq->used_idx, batch;
    struct stamp *st;
    unsigned n = 0;

    resubmit_clear(vq);
    vq->icounter = 0;
    if (!r || !vq->num)
        return 0;
    if (vq->num > vq->ireg_size) {
        log_warn("vhost: queue %u: inflight region holds %u descriptors, queue has %u; "
                 "not tracking", vq->index, vq->ireg_size, vq->num);
        vq->ireg = NULL;
        return 0;
    }
    if (__atomic_load_n(&r->version, __ATOMIC_ACQUIRE) != VQ_INFLIGHT_VERSION ||
        __atomic_load_n(&r->desc_num, __ATOMIC_RELAXED) != vq->num) {
        /* Fresh (GET_INFLIGHT_FD zeroes nothing the frontend did not ask for)
         * or sized for another ring: nothing to believe in it. */
        vq_inflight_region_init(r, vq->num);
        r->used_idx = used;
        return 0;
    }

    /* Killed between publishing used->idx and recording used_idx: the heads
     * of that batch are used, whatever their marks say. */
    batch = (uint16_t)(used - __atomic_load_n(&r->used_idx, __ATOMIC_RELAXED));
    if (batch) {
        uint16_t head = __atomic_load_n(&r->last_batch_head, __ATOMIC_RELAXED);

        for (unsigned i = 0; i < batch && i < vq->num && head < vq->num; i++) {
            __atomic_store_n(&r->desc[head].inflight, 0, __ATOMIC_RELAXED);
            head = __atomic_load_n(&r->desc[head].next, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&r->used_idx, used, __ATOMIC_RELEASE);
    }

    st = malloc(vq->num * sizeof(*st));
    if (!st) {
        log_err("vhost: queue %u: out of memory for inflight recovery", vq->index);
        return 0;
    }
    for (unsigned h = 0; h < vq->num; h++) {
        if (!__atomic_load_n(&r->desc[h].inflight, __ATOMIC_ACQUIRE))
            continue;
        st[n].counter = __atomic_load_n(&r->desc[h].counter, __ATOMIC_RELAXED);
        st[n].head = (uint16_t)h;
        n++;
    }
    if (n) {
        vq->resubmit = malloc(n * sizeof(*vq->resubmit));
        if (!vq->resubmit) {
            free(st);
            log_err("vhost: queue %u: out of memory for inflight recovery", vq->index);
            return 0;
        }
        qsort(st, n, sizeof(*st), stamp_cmp);
        for (unsigned i = 0; i < n; i++)
            vq->resubmit[i] = st[i].head;
        vq->resubmit_num = n;
        vq->icounter = st[n - 1].counter + 1;
        /* Every avail entry before the old last_avail_idx was either used or
         * is one of these: continue after them (the frontend's base is the
         * used index after a crash). */
        vq->last_avail_idx = (uint16_t)(used + n);
        log_info("vhost: queue %u: resubmitting %u request(s) left in flight by the previous "
                 "backend", vq->index, n);
    }
    free(st);
    return n;
}

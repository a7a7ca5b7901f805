/* vuf internals shared by vuf.c (transport, memory) and vuf_vq.c (rings). */
#ifndef VUF_INT_H
#define VUF_INT_H

#include "vuf.h"

#include <pthread.h>

struct vuf_slot {               /* per head descriptor */
    void *token;
    uint16_t ndesc;             /* descriptors the chain took from the free list */
    bool busy;
    uint64_t ind_gpa;           /* indirect table kept for reuse */
    uint32_t ind_cap;           /* entries */
};

struct vuf_vq {
    struct vuf_vring r;
    bool allocated;             /* ring memory and fds exist */
    bool started;               /* set up on the current session */
    bool event_idx;
    bool irq_off;
    uint16_t avail_idx;         /* shadow of avail->idx */
    uint16_t last_used;
    uint16_t num_added;         /* since the last kick */
    uint16_t free_head;
    unsigned num_free;
    unsigned inflight;
    uint16_t resume_base;       /* GET_VRING_BASE answer at the last stop */
    bool stopped;               /* resume_base valid (else resume at used->idx) */
    uint16_t *next;             /* shadow of desc[].next (free list and chains) */
    struct vuf_slot *slot;
    uint64_t kicks;
};

struct vuf_extent {
    uint64_t gpa, len;
    unsigned region;
};

struct vuf {
    struct vuf_opts o;
    int sock;
    char path[108];
    bool ack;
    struct vuf_region reg[VUF_MAX_REGIONS];
    unsigned nreg;
    uint8_t *maps[VUF_MAX_REGIONS];     /* mmap bases to unmap */
    size_t map_lens[VUF_MAX_REGIONS];
    unsigned nmaps;
    pthread_mutex_t alloc_lock;         /* the allocator may be used from queue threads */
    struct vuf_extent *ext;             /* free extents, sorted by gpa */
    unsigned next_cnt, next_cap;
    uint64_t feat_offered, feat, want_extra;
    uint64_t pfeat_offered, pfeat;
    uint64_t queue_num, max_mem_slots;
    unsigned nq;
    struct vuf_vq *vq;
    void **adopted;                     /* freed with the vuf (vuf_adopt) */
    unsigned nadopted, adopted_cap;
    int inflight_fd;
    uint64_t inflight_size, inflight_off;
};

void vuf_vq_init_state(struct vuf_vq *vq);        /* empty rings, full free list */
int vuf_vq_alloc(struct vuf *h, unsigned q);      /* ring memory + eventfds */
void vuf_vq_release(struct vuf *h, unsigned q);
void vuf_vq_started(struct vuf *h, unsigned q);   /* session set up: read feature bits */

#endif

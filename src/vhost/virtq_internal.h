/* Split virtqueue internals (virtio 1.x section 2.7), shared by dev.c/msg.c
 * and the unit tests, which build a vq over a memory table without a socket.
 *
 * Lifecycle (driven by the vhost-user messages in msg.c):
 *   vq_init -> vq_set_num/base/addr, vq_set_mem, vq_set_features, kick/call
 *   -> vq_start (running: pops allowed) -> vq_stop -> ... -> vq_reset.
 * vq_detach is the session-ended state: no ring access any more, but pushes of
 * elements still in flight are accounted (and their memory stays mapped). */
#ifndef VSCSI_VHOST_VIRTQ_INTERNAL_H
#define VSCSI_VHOST_VIRTQ_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhost/mem.h"
#include "vhost/vhost.h"

/* Ring layout, virtio 1.x 2.7.5 - 2.7.8 (little-endian; we run on LE hosts). */
struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4

struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];            /* num entries, then used_event */
};
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};

struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[];  /* num entries, then avail_event */
};
#define VRING_USED_F_NO_NOTIFY  1

#define VQ_MAX_SIZE             32768           /* virtio 2.7: Queue Size <= 32768 */
#define VQ_MAX_CHAIN_BYTES      UINT32_MAX      /* used.len is 32 bits */

/* Sizes including the event-index fields, which QEMU and Linux always allocate. */
static inline uint64_t vring_desc_bytes(unsigned num) { return 16ull * num; }
static inline uint64_t vring_avail_bytes(unsigned num) { return 6ull + 2ull * num; }
static inline uint64_t vring_used_bytes(unsigned num) { return 6ull + 8ull * num; }

typedef void vq_drain_cb(void *opaque, struct vq *vq);

/* Inflight I/O tracking (vhost-user spec "Inflight I/O tracking", split
 * virtqueue layout). The shared buffer holds one region per queue; it lives
 * in a memfd the backend creates (GET_INFLIGHT_FD) and the frontend keeps and
 * hands back (SET_INFLIGHT_FD) to the next backend process, which resubmits
 * what its predecessor popped and never completed. */
struct vq_inflight_desc {
    uint8_t inflight;           /* head popped, not yet used */
    uint8_t padding[5];
    uint16_t next;              /* list of the last batch of used heads */
    uint64_t counter;           /* pop order */
};

struct vq_inflight_region {
    uint64_t features;          /* 0 */
    uint16_t version;           /* 1; 0 = not initialized */
    uint16_t desc_num;          /* queue size */
    uint16_t last_batch_head;
    uint16_t used_idx;          /* used->idx once the last batch is fully recorded */
    struct vq_inflight_desc desc[];
};

_Static_assert(sizeof(struct vq_inflight_desc) == 16, "inflight desc layout");
_Static_assert(sizeof(struct vq_inflight_region) == 16, "inflight region layout");

#define VQ_INFLIGHT_VERSION     1
#define VQ_INFLIGHT_ALIGN       64

struct vq {
    unsigned index;

    /* Frontend configuration. */
    unsigned num;                       /* 0 = not set */
    bool addr_set;
    uint64_t desc_uva, avail_uva, used_uva;
    uint32_t addr_flags;                /* VHOST_VRING_F_LOG: seam for dirty logging */
    uint64_t log_gpa;
    int kick_fd;
    bool kick_polling;                  /* SET_VRING_KICK with the no-fd bit */
    int err_fd;
    int call_fd;                        /* under call_lock: replaced at any time */
    pthread_mutex_t call_lock;
    bool enabled;                       /* SET_VRING_ENABLE */
    uint64_t features;                  /* negotiated virtio features */

    /* Ring state. */
    struct vhost_mem *mem;              /* borrowed: the device's current table */
    struct vring_desc *desc;            /* NULL when not mapped */
    struct vring_avail *avail;
    struct vring_used *used;
    bool running;
    bool broken;
    bool notify_enabled;
    uint16_t last_avail_idx;            /* next avail entry to pop */
    uint16_t used_idx;                  /* our copy of used->idx */
    uint16_t signalled_used;            /* used_idx at the last notify check */
    bool signalled_used_valid;

    /* In-flight accounting: popped, not yet pushed. */
    unsigned inflight;                  /* atomic */
    uint64_t *inflight_map;             /* one bit per head */
    unsigned inflight_map_bits;
    bool drain_wanted;                  /* atomic: call drain_cb when inflight hits 0 */
    vq_drain_cb *drain_cb;
    void *drain_opaque;

    /* Inflight tracking (NULL: off). The region is shared with the frontend:
     * written in the spec's order, read only at start (inflight.c). */
    struct vq_inflight_region *ireg;
    unsigned ireg_size;                 /* its desc_num when attached */
    uint64_t icounter;                  /* next pop order stamp */
    uint16_t *resubmit;                 /* heads to hand out again, in pop order */
    unsigned resubmit_num, resubmit_pos;
};

int vq_init(struct vq *vq, unsigned index);
/* Close fds, free memory. Elements still in flight are abandoned. */
void vq_destroy(struct vq *vq);

void vq_set_features(struct vq *vq, uint64_t features);
/* Point the queue at a new memory table (borrowed). Mapped rings are
 * re-translated; a running queue whose rings are no longer mapped breaks. */
void vq_set_mem(struct vq *vq, struct vhost_mem *mem);
/* -EINVAL: not a power of two in 1..32768; -EBUSY: running or elements in flight. */
int vq_set_num(struct vq *vq, unsigned num);
/* -EINVAL: base > 0xffff; -EBUSY: running or elements in flight. */
int vq_set_base(struct vq *vq, unsigned base);
/* Ring addresses are frontend virtual addresses (SET_VRING_ADDR). -EINVAL for
 * misaligned rings (2.7: desc 16, avail 2, used 4); -EFAULT when memory and
 * size are known and a ring is not inside one region. */
int vq_set_addr(struct vq *vq, uint64_t desc, uint64_t avail, uint64_t used,
                uint32_t flags, uint64_t log_gpa);
/* The queue takes ownership of fd (-1: none). The old one is closed. */
void vq_set_kick(struct vq *vq, int fd, bool polling);
void vq_set_call(struct vq *vq, int fd);
void vq_set_err(struct vq *vq, int fd);
void vq_set_enabled(struct vq *vq, bool enabled);

/* Everything a start needs is there: memory, size, ring addresses, kick fd
 * (or polling). Enable state is the caller's business. */
bool vq_ready(const struct vq *vq);
/* Map the rings, load the used index, ask for kicks. -EFAULT/-EINVAL on bad rings. */
int vq_start(struct vq *vq);
/* No more pops; pushes still land in the used ring. */
void vq_stop(struct vq *vq);
bool vq_running(const struct vq *vq);
uint16_t vq_last_avail(const struct vq *vq);
/* Session gone: stop, forget rings and fds. In-flight pushes are only counted. */
void vq_detach(struct vq *vq);
/* Back to the initial state (call only with nothing in flight). The call and
 * error fds survive when keep_fds (RESET_DEVICE keeps them; QEMU does not
 * always resend them). */
void vq_reset(struct vq *vq, bool keep_fds);
/* Mark the queue broken (guest bug) with a rate-limited log line and signal
 * the error fd. Returns -EIO. */
int vq_fail(struct vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- inflight tracking (inflight.c) ---- */

/* Bytes of one queue's region for queue_size descriptors (64-byte aligned). */
uint64_t vq_inflight_region_bytes(unsigned queue_size);
/* Fresh region: zeroed, version 1, desc_num = queue_size. */
void vq_inflight_region_init(struct vq_inflight_region *r, unsigned queue_size);
/* Track this queue in r (NULL: stop tracking). r must stay mapped while
 * attached; queue_size is the region's desc_num capacity. Only while the
 * queue is stopped with nothing in flight (-EBUSY otherwise). */
int vq_set_inflight(struct vq *vq, struct vq_inflight_region *r, unsigned queue_size);
/* Called by vq_start with the rings mapped and nothing in flight: repair the
 * last batch, collect the heads a previous backend left in flight (sorted by
 * their counter) for vq_pop to hand out first, and move last_avail_idx past
 * them. Returns how many will be resubmitted. */
unsigned vq_inflight_recover(struct vq *vq);
/* Number of heads still waiting to be resubmitted. */
unsigned vq_resubmit_pending(const struct vq *vq);

/* cb(opaque, vq) runs from vq_push when inflight drops to 0 while wanted. */
void vq_set_drain_cb(struct vq *vq, vq_drain_cb *cb, void *opaque);
/* Arm (true) or disarm the drain callback. Returns true when nothing is in
 * flight already (the callback will not come for that). */
bool vq_want_drain(struct vq *vq, bool want);

#endif

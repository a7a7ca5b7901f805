/* vhost-user backend (device side) and split virtqueues. Knows nothing of SCSI.
 *
 * The daemon listens on a unix socket; one frontend (QEMU) is connected at a
 * time; when it goes away the device forgets the session (memory, rings) and
 * accepts the next connection. Every message is checked against a per-request
 * table (payload size, fd count, queue index, region count) before it is
 * acted on; a malformed message closes that session only.
 *
 * Threading: vhost_dev runs on the loop given at creation. Queue callbacks
 * (queue_start/queue_stop) run there too; today the device also runs its
 * queues on that loop. A queue must only be popped/pushed by one thread.
 * Ready for queue threads: in-flight counts and guest memory references are
 * atomic, the call fd is swapped under a lock, a drained queue wakes the
 * loop through an eventfd. Not yet: ring reconfiguration and memory table
 * changes assume the queue's thread is idle (it is, on one loop). */
#ifndef VSCSI_VHOST_VHOST_H
#define VSCSI_VHOST_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ev_loop;
struct vhost_dev;
struct vhost_mem;
struct vq;

/* virtio feature bits (transport) */
#define VIRTIO_F_NOTIFY_ON_EMPTY        24
#define VIRTIO_F_ANY_LAYOUT             27
#define VIRTIO_RING_F_INDIRECT_DESC     28
#define VIRTIO_RING_F_EVENT_IDX         29
#define VHOST_USER_F_PROTOCOL_FEATURES  30
#define VIRTIO_F_VERSION_1              32
#define VIRTIO_F_RING_RESET             40

struct vhost_dev_ops {
    /* Device feature bits offered besides the transport ones above. Must hold
     * every device bit QEMU may pass on from the guest (it forwards the
     * guest's acked bits, e.g. VIRTIO_SCSI_F_CHANGE even when not offered):
     * SET_FEATURES with a bit never offered closes the session. */
    uint64_t device_features;
    /* Queue qidx is ready: features set, memory mapped, size and ring
     * addresses set, kick fd set (or polling) and, with PROTOCOL_FEATURES,
     * enabled. Fires from the message that completes the set (QEMU: SET_VRING_
     * ENABLE 1; without PROTOCOL_FEATURES: SET_VRING_KICK). The device starts
     * watching vq_kick_fd(vq) (-1: no fd, poll the ring) and should pop once
     * right away: buffers may be waiting already. A queue may start, stop and
     * start again many times in a session (enable/disable, new kick fd,
     * changed ring addresses); each start is a fresh kick fd. */
    void (*queue_start)(void *opaque, unsigned qidx, struct vq *vq);
    /* Queue must not be popped any more (SET_VRING_ENABLE 0, GET_VRING_BASE,
     * new kick fd or ring addresses, reset, disconnect); stop watching the
     * kick fd, it may be closed right after. vq_pop returns 0 from now on.
     * Elements already popped may and should still be pushed and notified:
     * GET_VRING_BASE (and RESET_DEVICE) are answered only when the last one
     * is pushed, and no new frontend is accepted before that after a
     * disconnect. Pushes after a disconnect only complete the accounting
     * (the used ring is not written; the guest memory stays mapped). */
    void (*queue_stop)(void *opaque, unsigned qidx, struct vq *vq);
    /* Features negotiated (SET_FEATURES), e.g. to learn EVENT_IDX/HOTPLUG.
     * May repeat with the same value; never changes under a running queue. */
    void (*features_set)(void *opaque, uint64_t features);
    /* The frontend disconnected or reset the device (RESET_DEVICE, which QEMU
     * sends on every virtio reset, several times per boot). Called after
     * queue_stop for every started queue; may come when nothing was started.
     * Treat as "forget per-session state"; must be idempotent. */
    void (*session_end)(void *opaque);
};

/* Create a device listening on socket_path (mode 0600). A stale socket there
 * is removed; a live one (another backend answers) or a non-socket file is an
 * error. num_vqs = total virtqueues, 1..256 (virtio-scsi: 2 + request
 * queues); it is what GET_QUEUE_NUM answers. ops may be NULL, and any
 * callback in it. */
struct vhost_dev *vhost_dev_new(struct ev_loop *loop, const char *socket_path, unsigned num_vqs,
                                const struct vhost_dev_ops *ops, void *opaque,
                                char *err, size_t errlen);
/* Close the session and the listening socket, unlink the socket path.
 * Elements still in flight are abandoned: push them before, or never. */
void vhost_dev_free(struct vhost_dev *dev);
bool vhost_dev_connected(const struct vhost_dev *dev);
uint64_t vhost_dev_features(const struct vhost_dev *dev);    /* negotiated */
bool vhost_dev_has_feature(const struct vhost_dev *dev, unsigned bit);
unsigned vhost_dev_num_vqs(const struct vhost_dev *dev);
struct vq *vhost_dev_vq(struct vhost_dev *dev, unsigned qidx);

/* One popped descriptor chain. iov[0..out_num) are device-readable buffers
 * (driver -> device), iov[out_num..out_num+in_num) device-writable ones. All
 * point into mapped guest memory and are checked to lie inside one region each. */
struct vq_elem {
    uint16_t head;
    unsigned out_num;
    unsigned in_num;
    struct iovec *iov;
    /* Set by vq_pop, consumed by vq_push: keeps the guest memory the iovecs
     * point into mapped while the element is in flight. Do not touch. */
    struct vhost_mem *mem;
};

/* Maximum chain length accepted (direct + indirect descriptors). */
#define VQ_MAX_CHAIN 1024

/* Pop the next available chain into elem, using the caller's iov array of
 * iov_cap entries (a chain needing more is an error that breaks the queue:
 * size it for the longest chain the device accepts, e.g. seg_max + 2, plus a
 * few for buffers split at guest memory region boundaries).
 * Returns 1 when popped, 0 when the ring is empty, -errno when the chain is
 * malformed: the queue is then marked broken (vq_is_broken) and pops return -EIO;
 * the guest sees a stuck queue, the daemon and other queues carry on. */
int vq_pop(struct vq *vq, struct vq_elem *elem, struct iovec *iov, unsigned iov_cap);
/* Put a completed chain on the used ring with len bytes written (device-writable).
 * Every popped element must be pushed exactly once, also after queue_stop. */
void vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t len);
/* Signal the guest if the notification rules (EVENT_IDX / NO_INTERRUPT) ask for it.
 * Call after a batch of pushes. */
void vq_notify(struct vq *vq);
/* Kick eventfd to watch (read it to clear). -1 when none. */
int vq_kick_fd(const struct vq *vq);
/* Ask for / suppress guest kicks (for polling). With EVENT_IDX sets avail_event.
 * vq_enable_notify returns true when new buffers arrived meanwhile (pop again). */
bool vq_enable_notify(struct vq *vq);
void vq_disable_notify(struct vq *vq);
unsigned vq_size(const struct vq *vq);
unsigned vq_index(const struct vq *vq);
bool vq_is_broken(const struct vq *vq);
/* Chains popped and not yet pushed. */
unsigned vq_inflight(const struct vq *vq);

#endif

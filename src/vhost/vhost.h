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
 * queues on that loop. A queue must only be popped/pushed by one thread. */
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
    /* Device feature bits offered besides the transport ones above. */
    uint64_t device_features;
    /* Queue qidx is ready: memory mapped, ring addresses set, kick fd set and
     * enabled. The device starts watching vq_kick_fd(vq). */
    void (*queue_start)(void *opaque, unsigned qidx, struct vq *vq);
    /* Queue must not be popped any more (disabled, stopped, or session ending).
     * Elements already popped may still be pushed; vhost waits for them
     * (GET_VRING_BASE is answered when the last one is pushed). */
    void (*queue_stop)(void *opaque, unsigned qidx, struct vq *vq);
    /* Features negotiated (SET_FEATURES), e.g. to learn EVENT_IDX/HOTPLUG. */
    void (*features_set)(void *opaque, uint64_t features);
    /* The frontend disconnected or reset the device. Called after queue_stop
     * for every started queue. */
    void (*session_end)(void *opaque);
};

/* Create a device listening on socket_path (removed first if stale, mode 0600
 * unless socket_mode is non-zero). num_vqs = total virtqueues (virtio-scsi:
 * 2 + request queues); it is what GET_QUEUE_NUM answers. */
struct vhost_dev *vhost_dev_new(struct ev_loop *loop, const char *socket_path, unsigned num_vqs,
                                const struct vhost_dev_ops *ops, void *opaque,
                                char *err, size_t errlen);
/* Close the session and the listening socket, unlink the socket path. */
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
 * iov_cap entries (a chain needing more is an error).
 * Returns 1 when popped, 0 when the ring is empty, -errno when the chain is
 * malformed: the queue is then marked broken (vq_is_broken) and pops return -EIO;
 * the guest sees a stuck queue, the daemon and other queues carry on. */
int vq_pop(struct vq *vq, struct vq_elem *elem, struct iovec *iov, unsigned iov_cap);
/* Put a completed chain on the used ring with len bytes written (device-writable). */
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

/* vhost-user backend internals shared by dev.c (socket, session, queue
 * start/stop) and msg.c (request table, validation, handlers).
 * Wire format: QEMU docs/interop/vhost-user.rst, "Message Specification". */
#ifndef VSCSI_VHOST_DEV_INTERNAL_H
#define VSCSI_VHOST_DEV_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "vhost/mem.h"
#include "vhost/vhost.h"
#include "vhost/virtq_internal.h"

/* Header flags. */
#define VHOST_USER_VERSION              0x1
#define VHOST_USER_VERSION_MASK         0x3
#define VHOST_USER_REPLY                0x4
#define VHOST_USER_NEED_REPLY           0x8

/* Front-end request ids. */
enum vhost_user_request {
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_SEND_RARP = 19,
    VHOST_USER_NET_SET_MTU = 20,
    VHOST_USER_SET_BACKEND_REQ_FD = 21,
    VHOST_USER_IOTLB_MSG = 22,
    VHOST_USER_SET_VRING_ENDIAN = 23,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_GET_INFLIGHT_FD = 31,
    VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
    VHOST_USER_SET_STATUS = 39,
    VHOST_USER_GET_STATUS = 40,
    VHOST_USER_MAX_REQUEST = 64,    /* table size; ids above are unknown */
};

/* Protocol feature bits. */
#define VHOST_USER_PROTOCOL_F_MQ                    0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD             1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK             3
#define VHOST_USER_PROTOCOL_F_CONFIG                9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD        12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE          13
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS   15

/* Offered today. LOG_SHMFD joins this mask with its handlers (table entries
 * already exist and refuse until negotiated). */
#define VHOST_PROTOCOL_FEATURES_OFFERED \
    ((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
     (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
     (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) | \
     (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) | \
     (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

#define VHOST_F_LOG_ALL                 26      /* not offered yet */

/* Transport bits offered besides ops->device_features. */
#define VHOST_TRANSPORT_FEATURES \
    ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_ANY_LAYOUT) | \
     (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
     (1ull << VIRTIO_F_NOTIFY_ON_EMPTY) | (1ull << VIRTIO_F_RING_RESET) | \
     (1ull << VHOST_USER_F_PROTOCOL_FEATURES))

/* SET_VRING_KICK/CALL/ERR payload: low 8 bits index, bit 8 = no fd. */
#define VHOST_USER_VRING_IDX_MASK       0xffull
#define VHOST_USER_VRING_NOFD           (1ull << 8)

/* Limits. A bigger payload is a protocol error. */
#define VHOST_MSG_MAX_PAYLOAD           4096
#define VHOST_MSG_MAX_FDS               8
#define VHOST_MEM_MSG_REGIONS           8       /* SET_MEM_TABLE carries at most 8 */
#define VHOST_CONFIG_MAX                256
#define VHOST_MAX_QUEUES                256     /* the KICK/CALL index is 8 bits */

struct vhost_msg_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
};

struct vhost_vring_state {
    uint32_t index;
    uint32_t num;
};

struct vhost_vring_addr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc;
    uint64_t used;
    uint64_t avail;
    uint64_t log;
};

struct vhost_mem_table_msg {
    uint32_t nregions;
    uint32_t padding;
    struct vhost_mem_desc regions[VHOST_MEM_MSG_REGIONS];
};

struct vhost_mem_reg_msg {
    uint64_t padding;
    struct vhost_mem_desc region;
};

/* GET/SET_INFLIGHT_FD ("Inflight description"; QEMU sends 24 bytes). */
struct vhost_inflight_msg {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
    uint32_t padding;
};

struct vhost_config_msg {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t data[VHOST_CONFIG_MAX];
};

_Static_assert(sizeof(struct vhost_msg_hdr) == 12, "header layout");
_Static_assert(sizeof(struct vhost_vring_addr) == 40, "vring addr layout");
_Static_assert(sizeof(struct vhost_mem_desc) == 32, "region layout");
_Static_assert(sizeof(struct vhost_mem_table_msg) == 8 + 8 * 32, "mem table layout");
_Static_assert(sizeof(struct vhost_mem_reg_msg) == 40, "mem reg layout");
_Static_assert(sizeof(struct vhost_config_msg) == 12 + VHOST_CONFIG_MAX, "config layout");
_Static_assert(sizeof(struct vhost_inflight_msg) == 24, "inflight layout");

struct vhost_msg {
    struct vhost_msg_hdr hdr;
    union {
        uint64_t u64;
        struct vhost_vring_state state;
        struct vhost_vring_addr addr;
        struct vhost_mem_table_msg mem;
        struct vhost_mem_reg_msg reg;
        struct vhost_config_msg config;
        struct vhost_inflight_msg inflight;
        uint8_t raw[VHOST_MSG_MAX_PAYLOAD];
    } p;
    int fds[VHOST_MSG_MAX_FDS];        /* handlers set taken ones to -1 */
    unsigned nfds;
};

enum vhost_dev_state {
    VHOST_DEV_IDLE,             /* listening */
    VHOST_DEV_SESSION,          /* one frontend connected */
    VHOST_DEV_DRAINING,         /* frontend gone, waiting for in-flight elements */
};

enum vhost_dev_wait {
    VHOST_WAIT_NONE,
    VHOST_WAIT_VRING_BASE,      /* GET_VRING_BASE reply once the queue drains */
    VHOST_WAIT_RESET,           /* RESET_DEVICE/RESET_OWNER once all queues drain */
};

struct vhost_dev {
    struct ev_loop *loop;
    char *path;
    int listen_fd;
    struct ev_handler *listen_h;        /* NULL while a session runs or drains */
    int conn_fd;
    struct ev_handler *conn_h;
    bool reading_paused;
    int drain_fd;                       /* eventfd: a queue drained (any thread) */
    struct ev_handler *drain_h;

    const struct vhost_dev_ops *ops;
    void *opaque;
    unsigned num_vqs;
    struct vq *vqs;

    enum vhost_dev_state state;
    struct vhost_msg rx;                /* message being received */
    size_t rx_off;                      /* bytes of header + payload received */

    /* Session state. */
    uint64_t features;
    bool features_set;
    uint64_t proto_features;
    bool owner;
    struct vhost_mem *mem;              /* current table (one reference) */
    struct vhost_mem_region *inflight;  /* SET_INFLIGHT_FD buffer, or NULL */

    enum vhost_dev_wait wait;
    unsigned wait_qidx;
    uint32_t wait_request;              /* the deferred request and its flags */
    uint32_t wait_flags;

    char why[200];                      /* reason for a protocol error */
};

/* Dispatch results besides 0 and -errno (-errno closes the session). */
#define VHOST_MSG_DEFERRED  1

/* msg.c */
int vhost_msg_dispatch(struct vhost_dev *dev, struct vhost_msg *msg);
/* A queue drained while dev->wait is set: finish the deferred request.
 * Returns 0 (finished or still waiting) or -errno (close the session). */
int vhost_msg_resume(struct vhost_dev *dev);
uint64_t vhost_offered_features(const struct vhost_dev *dev);

/* dev.c */
int vhost_dev_reply(struct vhost_dev *dev, uint32_t request, const void *payload, uint32_t size);
int vhost_dev_reply_u64(struct vhost_dev *dev, uint32_t request, uint64_t value);
/* A reply carrying one file descriptor (the caller keeps fd). */
int vhost_dev_reply_fd(struct vhost_dev *dev, uint32_t request, const void *payload,
                       uint32_t size, int fd);
/* Forget the inflight buffer: queues stop tracking, the mapping goes. */
void vhost_dev_drop_inflight(struct vhost_dev *dev);
/* Record why the current message is refused; returns -EPROTO. */
int vhost_dev_fail(struct vhost_dev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Stop a running queue and tell the device (ops->queue_stop). */
void vhost_dev_queue_stop(struct vhost_dev *dev, struct vq *vq);
/* Start every queue whose start condition holds (ops->queue_start). */
void vhost_dev_try_start(struct vhost_dev *dev);
/* Install a new table (the device takes over the caller's reference). */
void vhost_dev_set_mem(struct vhost_dev *dev, struct vhost_mem *mem);
/* Stop reading messages until vhost_dev_resume_reading. */
void vhost_dev_pause_reading(struct vhost_dev *dev);
void vhost_dev_resume_reading(struct vhost_dev *dev);
/* Stop all queues, then ops->session_end. */
void vhost_dev_stop_all(struct vhost_dev *dev);

#endif

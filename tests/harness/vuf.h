/* vuf: a vhost-user frontend for tests and benchmarks. It plays QEMU (socket,
 * feature negotiation, memory table, vring setup, in QEMU's message order) and
 * the guest driver (memfd guest RAM, split virtqueues, kicks, completions).
 *
 * Three address spaces, all distinct on purpose, as with QEMU:
 *   gpa  guest-physical: what descriptors carry (vuf_alloc returns these)
 *   qva  "QEMU virtual" userspace_addr: what SET_VRING_ADDR carries
 *   hva  the harness's own mapping (vuf_ptr) - never sent to the backend
 *
 * Threads: one thread owns a struct vuf (messages, lifecycle). Once started,
 * each queue may be driven by its own thread (vuf_vq_* and vuf_scsi_* on one
 * queue from one thread only); the guest-memory allocator is locked. All waits are bounded by a timeout; nothing here aborts on
 * what the backend does.
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#ifndef VUF_H
#define VUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vuf accesses virtio (little-endian) rings directly; add byte swaps for big-endian hosts"
#endif

#define VUF_MAX_REGIONS   8      /* SET_MEM_TABLE limit (VHOST_MEMORY_BASELINE_NREGIONS) */
#define VUF_MAX_QUEUES    130    /* 2 + 128 request queues */
#define VUF_MAX_FDS       32     /* per raw message */
#define VUF_MAX_PAYLOAD   4096   /* largest payload vuf_msg_recv accepts */
#define VUF_GPA_NONE      UINT64_MAX

/* vhost-user requests (frontend -> backend) */
enum vuf_req {
    VUF_GET_FEATURES = 1, VUF_SET_FEATURES = 2, VUF_SET_OWNER = 3, VUF_RESET_OWNER = 4,
    VUF_SET_MEM_TABLE = 5, VUF_SET_LOG_BASE = 6, VUF_SET_LOG_FD = 7, VUF_SET_VRING_NUM = 8,
    VUF_SET_VRING_ADDR = 9, VUF_SET_VRING_BASE = 10, VUF_GET_VRING_BASE = 11,
    VUF_SET_VRING_KICK = 12, VUF_SET_VRING_CALL = 13, VUF_SET_VRING_ERR = 14,
    VUF_GET_PROTOCOL_FEATURES = 15, VUF_SET_PROTOCOL_FEATURES = 16, VUF_GET_QUEUE_NUM = 17,
    VUF_SET_VRING_ENABLE = 18, VUF_SEND_RARP = 19, VUF_NET_SET_MTU = 20,
    VUF_SET_BACKEND_REQ_FD = 21, VUF_IOTLB_MSG = 22, VUF_SET_VRING_ENDIAN = 23,
    VUF_GET_CONFIG = 24, VUF_SET_CONFIG = 25, VUF_POSTCOPY_ADVISE = 28,
    VUF_GET_INFLIGHT_FD = 31, VUF_SET_INFLIGHT_FD = 32, VUF_RESET_DEVICE = 34,
    VUF_VRING_KICK = 35, VUF_GET_MAX_MEM_SLOTS = 36, VUF_ADD_MEM_REG = 37,
    VUF_REM_MEM_REG = 38, VUF_SET_STATUS = 39, VUF_GET_STATUS = 40,
};

/* message header flags */
#define VUF_FLAG_VERSION     0x1u
#define VUF_FLAG_REPLY       0x4u
#define VUF_FLAG_NEED_REPLY  0x8u
#define VUF_VRING_NOFD       (1u << 8)   /* KICK/CALL/ERR payload: no fd attached */

/* protocol feature bits */
#define VUF_PF_MQ                   0
#define VUF_PF_LOG_SHMFD            1
#define VUF_PF_REPLY_ACK            3
#define VUF_PF_BACKEND_REQ          5
#define VUF_PF_CONFIG               9
#define VUF_PF_INFLIGHT_SHMFD       12
#define VUF_PF_RESET_DEVICE         13
#define VUF_PF_INBAND_NOTIFICATIONS 14
#define VUF_PF_CONFIGURE_MEM_SLOTS  15
#define VUF_PF_STATUS               16

/* virtio feature bits (transport) */
#define VUF_F_NOTIFY_ON_EMPTY       24
#define VUF_F_ANY_LAYOUT            27
#define VUF_F_INDIRECT_DESC         28
#define VUF_F_EVENT_IDX             29
#define VUF_F_PROTOCOL_FEATURES     30
#define VUF_F_VERSION_1             32
#define VUF_F_RING_RESET            40

#define VUF_BIT(b) (1ull << (b))
/* What a Linux guest behind QEMU typically ends up with (device bits excluded). */
#define VUF_FEATURES_DEFAULT (VUF_BIT(VUF_F_VERSION_1) | VUF_BIT(VUF_F_PROTOCOL_FEATURES) | \
                              VUF_BIT(VUF_F_INDIRECT_DESC))
#define VUF_PROTOCOL_FEATURES_NONE (1ull << 63)   /* opts value meaning "want none" */
#define VUF_PROTOCOL_FEATURES_DEFAULT (VUF_BIT(VUF_PF_MQ) | VUF_BIT(VUF_PF_REPLY_ACK) | \
                                       VUF_BIT(VUF_PF_CONFIGURE_MEM_SLOTS) | \
                                       VUF_BIT(VUF_PF_RESET_DEVICE) | VUF_BIT(VUF_PF_INFLIGHT_SHMFD))

/* split ring layout (virtio 1.x 2.7) */
#define VUF_DESC_F_NEXT      1
#define VUF_DESC_F_WRITE     2
#define VUF_DESC_F_INDIRECT  4
#define VUF_AVAIL_F_NO_INTERRUPT 1
#define VUF_USED_F_NO_NOTIFY     1

struct vuf_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct vuf_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];        /* [size], then used_event */
};
struct vuf_used_elem {
    uint32_t id;
    uint32_t len;
};
struct vuf_used {
    uint16_t flags;
    uint16_t idx;
    struct vuf_used_elem ring[];   /* [size], then avail_event */
};

/* Wire structures, for raw messages. */
struct vuf_msg_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
};
struct vuf_mem_region_msg {
    uint64_t gpa;
    uint64_t size;
    uint64_t qva;            /* userspace_addr */
    uint64_t mmap_offset;
};
struct vuf_vring_state { uint32_t index; uint32_t num; };
struct vuf_vring_addr_msg {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_qva;
    uint64_t used_qva;
    uint64_t avail_qva;
    uint64_t log_gpa;
};
struct vuf_inflight_msg {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
};   /* sizeof == 24 (padded), as QEMU sends it */

/* One guest RAM region, as the harness sees it. */
struct vuf_region {
    int fd;                 /* memfd (shared by all regions with one_memfd) */
    uint64_t gpa;
    uint64_t size;
    uint64_t qva;
    uint64_t mmap_offset;   /* offset of this region in fd */
    uint8_t *hva;           /* harness mapping of [gpa, gpa + size) */
};

struct vuf_opts {
    uint64_t mem_size;          /* total guest RAM, split evenly over regions (64 MiB) */
    unsigned num_regions;       /* 1..VUF_MAX_REGIONS (1) */
    bool one_memfd;             /* regions share one memfd at increasing mmap_offset */
    uint64_t mmap_offset;       /* extra offset of every region inside its memfd (page multiple) */
    bool gpa_contiguous;        /* regions back to back in gpa (else separated by holes) */
    bool add_mem_reg;           /* ADD_MEM_REG per region instead of SET_MEM_TABLE */
    unsigned num_queues;        /* virtqueues to run; 0 = GET_QUEUE_NUM (needs MQ) */
    unsigned queue_size;        /* power of two, <= 32768 (128) */
    uint64_t features;          /* wanted virtio features (0 = VUF_FEATURES_DEFAULT) */
    uint64_t protocol_features; /* wanted protocol features (0 = VUF_PROTOCOL_FEATURES_DEFAULT) */
    bool no_inflight;           /* skip GET/SET_INFLIGHT_FD even if negotiated */
    int timeout_ms;             /* bound on every wait (5000) */
    bool trace;                 /* log every message to stderr */
};

struct vuf;

/* ---- lifecycle -------------------------------------------------------- */

/* Allocate guest RAM and queue state; no connection yet. NULL on failure (errno). */
struct vuf *vuf_new(const struct vuf_opts *opts);
void vuf_free(struct vuf *h);                   /* closes the session too */
const struct vuf_opts *vuf_opts(const struct vuf *h);

/* Connect to path, retrying ENOENT/ECONNREFUSED until the timeout. */
int vuf_connect(struct vuf *h, const char *path);
/* QEMU's init: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
 * GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_OWNER, GET_FEATURES, SET_VRING_CALL per queue. */
int vuf_negotiate(struct vuf *h);
/* QEMU's start: SET_FEATURES, GET/SET_INFLIGHT_FD, SET_MEM_TABLE (or ADD_MEM_REG),
 * per queue SET_VRING_NUM/BASE/ADDR/KICK/CALL, SET_VRING_ENABLE 1 for each queue.
 * Rings are allocated in guest RAM on the first start and kept; a later start
 * (after reconnect or stop) resumes each ring at the harness's used index. */
int vuf_start(struct vuf *h);
/* connect + negotiate + start */
int vuf_open(struct vuf *h, const char *path);
/* QEMU's stop: SET_VRING_ENABLE 0 and GET_VRING_BASE for each started queue. */
int vuf_stop(struct vuf *h);
/* Stop / set up again one queue of a running session (a virtio 1.2 queue reset). */
int vuf_stop_queue(struct vuf *h, unsigned q);
int vuf_start_queue(struct vuf *h, unsigned q);
/* Close the socket (the backend sees the frontend go away). Memory and rings stay. */
void vuf_close(struct vuf *h);
/* vuf_close, then vuf_open on the same path. */
int vuf_reconnect(struct vuf *h);
/* RESET_DEVICE (or RESET_OWNER without the protocol feature); rings must be set up again. */
int vuf_reset_device(struct vuf *h);

bool vuf_is_connected(const struct vuf *h);
int vuf_socket_fd(const struct vuf *h);
uint64_t vuf_features_offered(const struct vuf *h);
uint64_t vuf_features(const struct vuf *h);               /* negotiated */
bool vuf_has_feature(const struct vuf *h, unsigned bit);
uint64_t vuf_protocol_features_offered(const struct vuf *h);
uint64_t vuf_protocol_features(const struct vuf *h);      /* negotiated */
bool vuf_has_protocol_feature(const struct vuf *h, unsigned bit);
uint64_t vuf_queue_num(const struct vuf *h);              /* GET_QUEUE_NUM answer (0 if not asked) */
uint64_t vuf_max_mem_slots(const struct vuf *h);          /* GET_MAX_MEM_SLOTS answer (0 if not asked) */
unsigned vuf_num_queues(const struct vuf *h);             /* virtqueues set up */
/* Extra virtio feature bits (device ones) to want on top of opts.features. */
void vuf_want_features(struct vuf *h, uint64_t bits);

/* ---- messages ----------------------------------------------------------- */

/* Set need_reply on SET_* messages when REPLY_ACK is negotiated (default on). */
void vuf_set_ack(struct vuf *h, bool on);
/* Send one message; fds go in SCM_RIGHTS. VUF_FLAG_VERSION is not added: pass it. */
int vuf_msg_send(struct vuf *h, uint32_t request, uint32_t flags, const void *payload,
                 uint32_t size, const int *fds, unsigned nfds);
/* Send arbitrary bytes (e.g. a truncated message) with optional fds. */
int vuf_msg_send_bytes(struct vuf *h, const void *buf, size_t len, const int *fds, unsigned nfds);
/* Receive one message; payload larger than cap is an error (-EMSGSIZE).
 * fds (may be NULL) receives up to *nfds descriptors (in: capacity, out: count).
 * Returns payload size, -ETIMEDOUT, or -ECONNRESET when the peer closed. */
int vuf_msg_recv(struct vuf *h, struct vuf_msg_hdr *hdr, void *payload, size_t cap,
                 int *fds, unsigned *nfds, int timeout_ms);
/* Send a request (no need_reply) and wait for its reply; the reply must carry
 * the same request code and the reply flag (else -EPROTO). Copies up to
 * reply_cap bytes; returns the reply's payload size or -errno. */
int vuf_msg_call(struct vuf *h, uint32_t request, const void *payload, uint32_t size,
                 const int *fds, unsigned nfds, void *reply, size_t reply_cap);
/* 1 when the backend closed the connection within timeout_ms (replies are
 * discarded meanwhile), 0 when it is still open. */
int vuf_peer_closed(struct vuf *h, int timeout_ms);

/* Typed requests. SET_* ones wait for the REPLY_ACK when enabled and return
 * -EREMOTEIO when the backend answered non-zero. */
int vuf_get_u64(struct vuf *h, uint32_t request, uint64_t *out);
int vuf_set_u64(struct vuf *h, uint32_t request, uint64_t value);
int vuf_set_none(struct vuf *h, uint32_t request);               /* SET_OWNER, RESET_* */
int vuf_set_vring_state(struct vuf *h, uint32_t request, uint32_t index, uint32_t num);
int vuf_set_vring_addr(struct vuf *h, uint32_t index, uint64_t desc_qva, uint64_t used_qva,
                       uint64_t avail_qva, uint32_t flags);
int vuf_set_vring_fd(struct vuf *h, uint32_t request, uint32_t index, int fd);   /* fd -1: NOFD */
int vuf_get_vring_base(struct vuf *h, uint32_t index, uint32_t *num);
int vuf_set_mem_table(struct vuf *h);
int vuf_add_mem_reg(struct vuf *h, unsigned region);
int vuf_rem_mem_reg(struct vuf *h, unsigned region);

/* ---- guest memory ----------------------------------------------------- */

unsigned vuf_num_regions(const struct vuf *h);
const struct vuf_region *vuf_region(const struct vuf *h, unsigned i);
/* Allocate size bytes (align: power of two, 0 = 16) anywhere / in one region.
 * Returns a gpa or VUF_GPA_NONE. Thread-safe (one mutex), first fit: keep it
 * off hot paths. */
uint64_t vuf_alloc(struct vuf *h, uint64_t size, uint64_t align);
uint64_t vuf_alloc_in(struct vuf *h, unsigned region, uint64_t size, uint64_t align);
void vuf_free_gpa(struct vuf *h, uint64_t gpa, uint64_t size);
/* Harness pointer for [gpa, gpa+len) (inside one region), or NULL. */
void *vuf_ptr(const struct vuf *h, uint64_t gpa, uint64_t len);
/* gpa -> qva (what QEMU would send for it), VUF_GPA_NONE if unmapped. */
uint64_t vuf_gpa_to_qva(const struct vuf *h, uint64_t gpa);
/* Free host memory p together with h (for requests abandoned after a
 * timeout, which the device may still complete). Thread-safe. */
void vuf_adopt(struct vuf *h, void *p);
/* A gpa no region covers. */
uint64_t vuf_unmapped_gpa(const struct vuf *h);

/* ---- virtqueues (driver side) ----------------------------------------- */

/* One buffer of a chain: device-readable (out) unless write is set. */
struct vuf_sg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

#define VUF_ADD_INDIRECT  0x1u   /* put the chain in an indirect table */

struct vuf_vring {
    unsigned index;
    unsigned size;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    struct vuf_desc *desc;
    struct vuf_avail *avail;
    struct vuf_used *used;
    int kick_fd, call_fd;
};

/* Ring memory and fds (valid after vuf_start). NULL for a bad index. */
const struct vuf_vring *vuf_vq_ring(const struct vuf *h, unsigned q);
/* Add a chain: out buffers must come before in buffers in sg (any order is
 * sent as given, so tests may break that rule on purpose). token is returned
 * with the completion. Returns the head index or -ENOSPC / -EINVAL. Does not kick. */
int vuf_vq_add(struct vuf *h, unsigned q, const struct vuf_sg *sg, unsigned n, void *token,
               unsigned flags);
/* Give every head an indirect table of `entries` up front, so that
 * vuf_vq_add(VUF_ADD_INDIRECT) with at most that many buffers never allocates. */
int vuf_vq_prealloc_indirect(struct vuf *h, unsigned q, unsigned entries);
/* Notify the device if it wants it (NO_NOTIFY / avail_event). Returns 1 when kicked. */
int vuf_vq_kick(struct vuf *h, unsigned q);
/* Unconditional kick (eventfd write). */
int vuf_vq_notify(struct vuf *h, unsigned q);
/* Take the next completion: 1 and token/len, 0 when none, -EPROTO when the
 * device returned an id that is not an outstanding head (the entry is skipped). */
int vuf_vq_get_used(struct vuf *h, unsigned q, void **token, uint32_t *len);
/* Wait until a completion is available (1), timeout (0), or peer closed (-ECONNRESET). */
int vuf_vq_wait(struct vuf *h, unsigned q, int timeout_ms);
/* Wait for the completion carrying token; its used length goes to *len. */
int vuf_vq_wait_token(struct vuf *h, unsigned q, void *token, uint32_t *len, int timeout_ms);
/* Ask for completion interrupts (on) or suppress them for polling (off). */
void vuf_vq_set_interrupts(struct vuf *h, unsigned q, bool on);
unsigned vuf_vq_num_free(const struct vuf *h, unsigned q);       /* free descriptors */
unsigned vuf_vq_inflight(const struct vuf *h, unsigned q);       /* chains outstanding */
/* Descriptor chain counts since start: kicks sent, calls seen. */
uint64_t vuf_vq_kicks(const struct vuf *h, unsigned q);

/* Raw access for hostile tests. Take n descriptors out of the free list (they
 * never come back), write anything into them with ring->desc[], publish heads
 * with vuf_vq_raw_avail, or set avail->idx to anything. */
int vuf_vq_take_descs(struct vuf *h, unsigned q, unsigned n, uint16_t *ids);
void vuf_vq_raw_avail(struct vuf *h, unsigned q, uint16_t head);          /* + idx++ */
void vuf_vq_raw_set_avail_idx(struct vuf *h, unsigned q, uint16_t idx);
/* Next used element without any check: 1 if one was there (then consumed). */
int vuf_vq_raw_get_used(struct vuf *h, unsigned q, uint32_t *id, uint32_t *len);
uint16_t vuf_vq_used_idx(const struct vuf *h, unsigned q);
/* GET_VRING_BASE answer at the last vuf_stop. */
uint16_t vuf_vq_last_base(const struct vuf *h, unsigned q);
/* avail_event written by the device (EVENT_IDX). */
uint16_t vuf_vq_avail_event(const struct vuf *h, unsigned q);

/* ---- misc ------------------------------------------------------------- */

/* Deterministic content for byte offset off of a disk image (seeded). */
void vuf_pattern(void *buf, size_t len, uint64_t off, uint32_t seed);
/* Monotonic milliseconds. */
int64_t vuf_now_ms(void);
const char *vuf_req_name(uint32_t request);

#endif

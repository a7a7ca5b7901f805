/* virtio-blk requests over vuf (virtio 1.x 5.2): for validating the transport
 * against qemu-storage-daemon and for benchmarks. */
#ifndef VUF_BLK_H
#define VUF_BLK_H

#include "vuf.h"

#define VUF_BLK_T_IN      0
#define VUF_BLK_T_OUT     1
#define VUF_BLK_T_FLUSH   4
#define VUF_BLK_T_GET_ID  8

#define VUF_BLK_S_OK      0
#define VUF_BLK_S_IOERR   1
#define VUF_BLK_S_UNSUPP  2

#define VUF_BLK_F_SIZE_MAX 1
#define VUF_BLK_F_SEG_MAX  2
#define VUF_BLK_F_FLUSH    9

struct vuf_blk_req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct vuf_blk_io {
    unsigned queue;         /* virtqueue (0..) */
    uint32_t type;
    uint64_t sector;
    void *buf;              /* host buffer: copied in (OUT) or out (IN, GET_ID) */
    size_t len;
    unsigned segs;          /* split the data into this many descriptors (0/1 = one) */
    unsigned add_flags;     /* VUF_ADD_INDIRECT */
};

/* Synchronous request: allocate guest buffers, add, kick, wait, copy back.
 * Returns 0 with *status set, or -errno (-ETIMEDOUT, -ECONNRESET, ...). */
int vuf_blk_do(struct vuf *h, const struct vuf_blk_io *io, uint8_t *status);

#endif

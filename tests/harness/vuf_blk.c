/* virtio-blk requests over vuf. */
#include "vuf_blk.h"

#include <errno.h>
#include <string.h>

int vuf_blk_do(struct vuf *h, const struct vuf_blk_io *io, uint8_t *status)
{
    unsigned segs = io->segs ? io->segs : 1;
    if (!io->len)
        segs = 0;
    if (segs > 1024 || (segs && io->len < segs))
        return -EINVAL;
    uint64_t total = 16 + io->len + 16;
    uint64_t gpa = vuf_alloc(h, total, 512);
    if (gpa == VUF_GPA_NONE)
        return -ENOMEM;
    uint8_t *p = vuf_ptr(h, gpa, total);
    struct vuf_blk_req_hdr hdr = { io->type, 0, io->sector };
    memcpy(p, &hdr, sizeof(hdr));
    bool dev_writes = io->type != VUF_BLK_T_OUT;
    if (io->len && !dev_writes)
        memcpy(p + 16, io->buf, io->len);
    else if (io->len)
        memset(p + 16, 0xee, io->len);
    p[16 + io->len] = 0xff;     /* status, overwritten by the device */

    struct vuf_sg sg[1026];
    unsigned n = 0;
    sg[n++] = (struct vuf_sg){ gpa, 16, false };
    size_t off = 0;
    for (unsigned i = 0; i < segs; i++) {
        size_t l = i + 1 < segs ? io->len / segs : io->len - off;
        sg[n++] = (struct vuf_sg){ gpa + 16 + off, (uint32_t)l, dev_writes };
        off += l;
    }
    sg[n++] = (struct vuf_sg){ gpa + 16 + io->len, 1, true };
    int head = vuf_vq_add(h, io->queue, sg, n, p, io->add_flags);
    if (head < 0) {
        vuf_free_gpa(h, gpa, total);
        return head;
    }
    vuf_vq_kick(h, io->queue);
    uint32_t len = 0;
    int rc = vuf_vq_wait_token(h, io->queue, p, &len, vuf_opts(h)->timeout_ms);
    if (rc <= 0)
        return rc ? rc : -ETIMEDOUT;    /* buffers stay allocated: the device may still write */
    *status = p[16 + io->len];
    if (io->len && dev_writes)
        memcpy(io->buf, p + 16, io->len);
    vuf_free_gpa(h, gpa, total);
    return 0;
}

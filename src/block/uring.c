/* io_uring engine: one ring per context. SQEs are queued by blk_submit and
 * submitted once per loop round (or when the SQ fills); completions are
 * signalled through an eventfd watched by the context's loop. At most
 * ring_limit SQEs are outstanding, so the CQ can never overflow; requests
 * beyond that wait in ctx->pending (never dropped). */
#include "block/blk_int.h"

#include "util/iov.h"
#include "util/log.h"
#include "util/loop.h"

#include <limits.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/falloc.h>

#define BLK_RING_DEPTH   256
#define BLK_RING_CQ      (BLK_RING_DEPTH * 4)
#define BLK_RING_RETRIES 16
/* io_uring READ/WRITE take a 32-bit length. */
#define BLK_RING_MAX_LEN (1u << 30)

enum { STEP_MAIN = 0, STEP_SYNC = 1 };

static void ring_cb(void *opaque, int fd, uint32_t events);

/* ---- registered files ----
 * Every ring gets a sparse table of BLK_FIXED_SLOTS files; a drive served by
 * io_uring gets one slot number for all rings. A ring puts the drive's fd in
 * the slot the first time it submits for it (on its own thread), and SQEs
 * name the slot (IOSQE_FIXED_FILE): no fget/fput of the file per request,
 * which costs atomics once iothreads share the fd table. Closing a drive
 * empties its slot in every ring that holds it (no request of the drive is
 * in flight then), so no ring keeps the file open, and frees the number. */
static pthread_mutex_t g_fixed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk_ctx *g_fixed_rings;
static uint64_t g_fixed_gen;
static uint8_t g_fixed_used[BLK_FIXED_SLOTS];

static void fixed_init(struct blk_ctx *ctx)
{
    ctx->fixed_gen = calloc(BLK_FIXED_SLOTS, sizeof(*ctx->fixed_gen));
    if (!ctx->fixed_gen)
        return;
    /* 5.19+; without it requests name the fd as before */
    if (io_uring_register_files_sparse(&ctx->ring, BLK_FIXED_SLOTS) < 0) {
        free(ctx->fixed_gen);
        ctx->fixed_gen = NULL;
        return;
    }
    pthread_mutex_lock(&g_fixed_lock);
    ctx->fixed_next = g_fixed_rings;
    g_fixed_rings = ctx;
    pthread_mutex_unlock(&g_fixed_lock);
}

static void fixed_fini(struct blk_ctx *ctx)
{
    if (!ctx->fixed_gen)
        return;
    pthread_mutex_lock(&g_fixed_lock);
    for (struct blk_ctx **pp = &g_fixed_rings; *pp; pp = &(*pp)->fixed_next) {
        if (*pp == ctx) {
            *pp = ctx->fixed_next;
            break;
        }
    }
    pthread_mutex_unlock(&g_fixed_lock);
    free(ctx->fixed_gen);
    ctx->fixed_gen = NULL;
}

void uring_drive_init(struct blk_drive *d)
{
    if (d->fd < 0 || d->aio != BLK_AIO_IO_URING || d->mem_backed)
        return;
    pthread_mutex_lock(&g_fixed_lock);
    for (int i = 0; i < BLK_FIXED_SLOTS; i++) {
        if (!g_fixed_used[i]) {
            g_fixed_used[i] = 1;
            d->fixed_slot = i;
            d->fixed_gen = ++g_fixed_gen;
            break;
        }
    }
    pthread_mutex_unlock(&g_fixed_lock);
}

void uring_drive_release(struct blk_drive *d)
{
    int none = -1;

    if (d->fixed_slot < 0)
        return;
    pthread_mutex_lock(&g_fixed_lock);
    for (struct blk_ctx *ctx = g_fixed_rings; ctx; ctx = ctx->fixed_next) {
        uint64_t *g = &ctx->fixed_gen[d->fixed_slot];

        if (__atomic_load_n(g, __ATOMIC_ACQUIRE) != d->fixed_gen)
            continue;
        /* io_uring_register is serialised with the owner's submissions by
         * the kernel; the owner does not touch this slot meanwhile (the
         * drive has nothing in flight and the slot is still ours) */
        if (io_uring_register_files_update(&ctx->ring, (unsigned)d->fixed_slot, &none, 1) < 0)
            log_warn("drive %s: cannot drop its io_uring file slot", d->id);
        __atomic_store_n(g, 0, __ATOMIC_RELEASE);
        __atomic_sub_fetch(&ctx->fixed_count, 1, __ATOMIC_RELAXED);
    }
    g_fixed_used[d->fixed_slot] = 0;
    d->fixed_slot = -1;
    pthread_mutex_unlock(&g_fixed_lock);
}

/* Name the drive's slot instead of its fd in sqe, registering the file in
 * this ring first if needed; plain fd when that is not possible. */
static void fixed_file(struct blk_ctx *ctx, struct io_uring_sqe *sqe, struct blk_drive *d)
{
    unsigned slot = (unsigned)d->fixed_slot;
    uint64_t *g, held;

    if (!ctx->fixed_gen || d->fixed_slot < 0)
        return;
    g = &ctx->fixed_gen[slot];
    held = __atomic_load_n(g, __ATOMIC_ACQUIRE);
    if (held != d->fixed_gen) {
        int fd = d->fd;

        if (io_uring_register_files_update(&ctx->ring, slot, &fd, 1) != 1)
            return;
        __atomic_store_n(g, d->fixed_gen, __ATOMIC_RELEASE);
        if (!held)
            __atomic_add_fetch(&ctx->fixed_count, 1, __ATOMIC_RELAXED);
    }
    sqe->fd = (int)slot;
    sqe->flags |= IOSQE_FIXED_FILE;
}

unsigned blk_ctx_fixed_files(const struct blk_ctx *ctx)
{
    return __atomic_load_n(&ctx->fixed_count, __ATOMIC_RELAXED);
}

uint64_t blk_ctx_submit_calls(const struct blk_ctx *ctx)
{
    return __atomic_load_n(&ctx->submit_calls, __ATOMIC_RELAXED);
}

int uring_ctx_init(struct blk_ctx *ctx)
{
    struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
                                 .cq_entries = BLK_RING_CQ };
    struct io_uring_probe *probe;
    int ret;

    ret = io_uring_queue_init_params(BLK_RING_DEPTH, &ctx->ring, &p);
    if (ret == -EINVAL) {   /* SUBMIT_ALL is 5.18+ */
        p = (struct io_uring_params){ .flags = IORING_SETUP_CQSIZE, .cq_entries = BLK_RING_CQ };
        ret = io_uring_queue_init_params(BLK_RING_DEPTH, &ctx->ring, &p);
    }
    if (ret < 0)
        return ret;
    probe = io_uring_get_probe_ring(&ctx->ring);
    if (probe) {
        if (!io_uring_opcode_supported(probe, IORING_OP_READV) ||
            !io_uring_opcode_supported(probe, IORING_OP_WRITEV) ||
            !io_uring_opcode_supported(probe, IORING_OP_FSYNC)) {
            io_uring_free_probe(probe);
            ret = -EOPNOTSUPP;
            goto fail_ring;
        }
        ctx->ring_rw = io_uring_opcode_supported(probe, IORING_OP_READ) &&
                       io_uring_opcode_supported(probe, IORING_OP_WRITE);
        ctx->ring_falloc = io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
        io_uring_free_probe(probe);
    }
    /* Without the NODROP guarantee we rely on our own limit alone. */
    ctx->ring_limit = p.cq_entries < BLK_RING_CQ ? p.cq_entries : BLK_RING_CQ;
    ctx->ring_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ctx->ring_efd < 0) {
        ret = -errno;
        goto fail_ring;
    }
    ret = io_uring_register_eventfd(&ctx->ring, ctx->ring_efd);
    if (ret < 0)
        goto fail_efd;
    ctx->ring_h = ev_loop_add_fd(ctx->loop, ctx->ring_efd, EPOLLIN, ring_cb, ctx);
    if (!ctx->ring_h) {
        ret = -errno;
        goto fail_efd;
    }
    fixed_init(ctx);
    ctx->ring_ok = true;
    return 0;

fail_efd:
    close(ctx->ring_efd);
    ctx->ring_efd = -1;
fail_ring:
    io_uring_queue_exit(&ctx->ring);
    return ret;
}

void uring_ctx_fini(struct blk_ctx *ctx)
{
    if (!ctx->ring_ok)
        return;
    fixed_fini(ctx);
    ev_loop_del_fd(ctx->loop, ctx->ring_h);
    io_uring_queue_exit(&ctx->ring);
    close(ctx->ring_efd);
    ctx->ring_efd = -1;
    ctx->ring_ok = false;
}

/* ---- submission ---- */

static void ring_finish(struct blk_ctx *ctx, struct blk_req *req, int ret)
{
    if (req->stage & BLK_ST_URING_BUF) {
        free(req->priv);
        req->priv = NULL;
        req->stage &= ~BLK_ST_URING_BUF;
    }
    blk_complete(ctx, req, ret);
}

/* Give req to the thread pool, which continues from req->done_bytes. */
static void ring_to_threads(struct blk_ctx *ctx, struct blk_req *req, bool in_dispatch)
{
    int ret;

    if (req->stage & BLK_ST_URING_BUF) {
        free(req->priv);
        req->priv = NULL;
        req->stage &= ~BLK_ST_URING_BUF;
    }
    ret = threads_submit(ctx, req);
    if (ret < 0) {
        if (in_dispatch)
            blk_complete(ctx, req, ret);
        else
            blk_complete_later(ctx, req, ret);
    }
}

static void do_submit(struct blk_ctx *ctx)
{
    int ret;

    do {
        ret = io_uring_submit(&ctx->ring);
    } while (ret == -EINTR);
    if (ret > 0)
        __atomic_add_fetch(&ctx->submit_calls, 1, __ATOMIC_RELAXED);
    if (ret < 0) {
        if (ret != -EBUSY && ret != -EAGAIN)
            log_guest("io_uring_submit: %s; will retry", strerror(-ret));
        ctx->ring_submit_retry = true;
        /* Nothing in flight would wake us: try again next round. */
        if (ctx->ring_busy == ctx->ring_unsubmitted)
            blk_schedule_round(ctx);
        return;
    }
    ctx->ring_submit_retry = false;
    ctx->ring_unsubmitted = io_uring_sq_ready(&ctx->ring);
    if (ctx->ring_unsubmitted)      /* kernel stopped early (pre-SUBMIT_ALL) */
        blk_schedule_round(ctx);
}

static struct io_uring_sqe *get_sqe(struct blk_ctx *ctx)
{
    struct io_uring_sqe *sqe;

    if (ctx->ring_busy >= ctx->ring_limit)
        return NULL;
    sqe = io_uring_get_sqe(&ctx->ring);
    if (!sqe && ctx->ring_unsubmitted) {
        do_submit(ctx);
        sqe = io_uring_get_sqe(&ctx->ring);
    }
    return sqe;
}

static void prep_rw(struct blk_ctx *ctx, struct io_uring_sqe *sqe, struct blk_req *req)
{
    struct blk_drive *d = req->drive;
    bool write = req->op == BLK_OP_WRITE;
    uint64_t pos = req->offset + req->done_bytes;
    uint64_t rem = req->len - req->done_bytes;

    if (req->stage & BLK_ST_URING_BUF) {
        unsigned n = rem < BLK_BOUNCE_MAX ? (unsigned)rem : BLK_BOUNCE_MAX;

        if (write) {
            iov_to_buf(req->iov, req->iovcnt, req->done_bytes, req->priv, n);
            io_uring_prep_write(sqe, d->fd, req->priv, n, pos);
        } else {
            io_uring_prep_read(sqe, d->fd, req->priv, n, pos);
        }
    } else {
        unsigned i;
        size_t off;

        blk_iov_locate(req->iov, req->iovcnt, req->done_bytes, &i, &off);
        if (off) {
            /* Rest of a partly done element (after a short transfer). */
            size_t n = req->iov[i].iov_len - off;
            char *base = (char *)req->iov[i].iov_base + off;

            if (n > BLK_RING_MAX_LEN)
                n = BLK_RING_MAX_LEN;
            if (write)
                io_uring_prep_write(sqe, d->fd, base, (unsigned)n, pos);
            else
                io_uring_prep_read(sqe, d->fd, base, (unsigned)n, pos);
        } else {
            unsigned n = req->iovcnt - i > IOV_MAX ? IOV_MAX : req->iovcnt - i;

            if (write)
                io_uring_prep_writev(sqe, d->fd, req->iov + i, n, pos);
            else
                io_uring_prep_readv(sqe, d->fd, req->iov + i, n, pos);
        }
    }
    if (write && (req->stage & BLK_ST_DSYNC))
        sqe->rw_flags = RWF_DSYNC;
    (void)ctx;
}

static void prep(struct blk_ctx *ctx, struct io_uring_sqe *sqe, struct blk_req *req)
{
    struct blk_drive *d = req->drive;
    int step = req->stage & BLK_ST_STEP_MASK;

    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        prep_rw(ctx, sqe, req);
        break;
    case BLK_OP_FLUSH:
        io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
        break;
    case BLK_OP_DISCARD:
        io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                (off_t)req->offset, (off_t)req->len);
        break;
    case BLK_OP_WRITE_ZEROES:
        if (step == STEP_SYNC)
            io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
        else if (req->stage & BLK_ST_PUNCH)
            io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                    (off_t)req->offset, (off_t)req->len);
        else
            io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_ZERO_RANGE,
                                    (off_t)req->offset, (off_t)req->len);
        break;
    }
    fixed_file(ctx, sqe, d);
    io_uring_sqe_set_data(sqe, req);
    ctx->ring_busy++;
    ctx->ring_unsubmitted++;
}

/* Ramp-up, for drives opened with O_DIRECT: submit the SQEs prepared so far,
 * without waiting for the end of the round, while they are at least half as
 * many as the kernel already holds. A device left idle (a guest that refills
 * its whole queue depth at once after one batch completed) then gets its
 * first request at once and the next ones in batches that grow by half
 * (1, 1, 1, 2, 3, 4, 6, 9, ...: 8 calls for the first 27 of 32). Device time
 * and preparation then overlap, which breaks the lockstep in which a whole
 * batch completes together, the guest refills it together and the device
 * idles in between (docs/performance.md, "Ramp-up submission"). Buffered I/O
 * does not wait on a device (page-cache hits complete inside the call,
 * writes are copied), so there the extra calls would only cost CPU. */
static bool ramp_due(const struct blk_ctx *ctx, const struct blk_req *req)
{
    uint32_t in_kernel = ctx->ring_busy - ctx->ring_unsubmitted;

    return req->drive->direct && ctx->ring_unsubmitted * 2 >= (in_kernel ? in_kernel : 1);
}

/* Queue the next step of req: into the SQ if there is room and nobody is
 * waiting ahead of it, else at the tail of pending (room was reserved). */
static void ring_queue(struct blk_ctx *ctx, struct blk_req *req)
{
    struct io_uring_sqe *sqe = NULL;

    if (!ctx->pending.count)
        sqe = get_sqe(ctx);
    if (!sqe) {
        blk_fifo_push(&ctx->pending, (struct blk_qent){ .req = req, .ctx = ctx });
        return;
    }
    prep(ctx, sqe, req);
    if (!io_uring_sq_space_left(&ctx->ring) || ramp_due(ctx, req))
        do_submit(ctx);
    else if (!ctx->dispatch_depth)  /* our own callbacks flush on the way out */
        blk_schedule_round(ctx);
}

static void drain_pending(struct blk_ctx *ctx)
{
    while (ctx->pending.count) {
        struct io_uring_sqe *sqe = get_sqe(ctx);
        struct blk_qent e;

        if (!sqe || !blk_fifo_pop(&ctx->pending, &e))
            break;
        prep(ctx, sqe, e.req);
    }
}

void uring_flush(struct blk_ctx *ctx)
{
    if (!ctx->ring_ok)
        return;
    drain_pending(ctx);
    if (ctx->ring_unsubmitted || ctx->ring_submit_retry)
        do_submit(ctx);
}

void uring_submit(struct blk_ctx *ctx, struct blk_req *req)
{
    struct blk_drive *d = req->drive;

    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        /* Unaligned offsets need read-modify-write: the thread pool does it. */
        if (blk_req_bad_range(d, req)) {
            ring_to_threads(ctx, req, false);
            return;
        }
        if (blk_req_bad_buffers(d, req)) {
            if (!ctx->ring_rw) {
                ring_to_threads(ctx, req, false);
                return;
            }
            req->priv = blk_bounce_alloc(d->dio_align,
                                         req->len < BLK_BOUNCE_MAX ? req->len : BLK_BOUNCE_MAX);
            if (!req->priv) {
                blk_complete_later(ctx, req, -ENOMEM);
                return;
            }
            req->stage |= BLK_ST_URING_BUF | BLK_ST_BOUNCED;
            blk_stat_add(&d->stats.bounces, 1);
        }
        if (req->op == BLK_OP_WRITE && blk_req_needs_sync(d, req))
            req->stage |= BLK_ST_DSYNC;
        break;
    case BLK_OP_FLUSH:
        break;
    case BLK_OP_DISCARD:
        /* Block devices use ioctls, which io_uring cannot issue for us. */
        if (d->is_bdev || !ctx->ring_falloc) {
            ring_to_threads(ctx, req, false);
            return;
        }
        break;
    case BLK_OP_WRITE_ZEROES:
        if (d->is_bdev || !ctx->ring_falloc) {
            ring_to_threads(ctx, req, false);
            return;
        }
        if ((req->flags & BLK_F_MAY_UNMAP) && d->discard_unmap &&
            blk_feat_get(&d->punch) != BLK_FEAT_NO)
            req->stage |= BLK_ST_PUNCH;
        else if (blk_feat_get(&d->zero_range) == BLK_FEAT_NO) {
            ring_to_threads(ctx, req, false);   /* writes zero buffers */
            return;
        }
        break;
    }
    ring_queue(ctx, req);
}

/* ---- completion ---- */

static void rw_done(struct blk_ctx *ctx, struct blk_req *req, int res)
{
    if (res < 0) {
        /* The kernel refused RWF_DSYNC: the pool falls back to fdatasync. */
        if (res == -EOPNOTSUPP && (req->stage & BLK_ST_DSYNC))
            ring_to_threads(ctx, req, true);
        else
            ring_finish(ctx, req, res);
        return;
    }
    if (res == 0) {
        ring_finish(ctx, req, -EIO);    /* end of file inside the drive: it shrank */
        return;
    }
    if (req->op == BLK_OP_READ && (req->stage & BLK_ST_URING_BUF))
        iov_from_buf(req->iov, req->iovcnt, req->done_bytes, req->priv, (size_t)res);
    req->done_bytes += (uint64_t)res;
    if (req->done_bytes >= req->len) {
        ring_finish(ctx, req, 0);
        return;
    }
    /* Short transfer: go on with the rest. */
    if (!(req->stage & BLK_ST_URING_BUF) && !ctx->ring_rw) {
        unsigned i;
        size_t off;

        blk_iov_locate(req->iov, req->iovcnt, req->done_bytes, &i, &off);
        if (off) {      /* needs IORING_OP_READ/WRITE, which this kernel lacks */
            ring_to_threads(ctx, req, true);
            return;
        }
    }
    ring_queue(ctx, req);
}

static void cqe_done(struct blk_ctx *ctx, struct blk_req *req, int res)
{
    struct blk_drive *d = req->drive;

    if ((res == -EINTR || res == -EAGAIN) &&
        (req->stage >> BLK_ST_RETRY_SHIFT) < BLK_RING_RETRIES) {
        req->stage += 1 << BLK_ST_RETRY_SHIFT;
        ring_queue(ctx, req);
        return;
    }
    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        rw_done(ctx, req, res);
        return;
    case BLK_OP_FLUSH:
        ring_finish(ctx, req, res);
        return;
    case BLK_OP_DISCARD:
        /* Advisory: "not supported" is success, remembered for next time. */
        if (res == -EOPNOTSUPP) {
            blk_feat_set(&d->punch, BLK_FEAT_NO);
            res = 0;
        } else if (res == 0) {
            blk_feat_set(&d->punch, BLK_FEAT_OK);
        }
        ring_finish(ctx, req, res);
        return;
    case BLK_OP_WRITE_ZEROES:
        if ((req->stage & BLK_ST_STEP_MASK) == STEP_SYNC) {
            ring_finish(ctx, req, res);
            return;
        }
        if (res == -EOPNOTSUPP) {
            /* Remember, and let the pool walk the remaining fallbacks. */
            blk_feat_set(req->stage & BLK_ST_PUNCH ? &d->punch : &d->zero_range, BLK_FEAT_NO);
            ring_to_threads(ctx, req, true);
            return;
        }
        if (res < 0) {
            ring_finish(ctx, req, res);
            return;
        }
        if (!(req->stage & BLK_ST_PUNCH))
            blk_feat_set(&d->zero_range, BLK_FEAT_OK);
        if (blk_req_needs_sync(d, req)) {
            req->stage = (req->stage & ~BLK_ST_STEP_MASK) | STEP_SYNC;
            ring_queue(ctx, req);
            return;
        }
        ring_finish(ctx, req, 0);
        return;
    }
    ring_finish(ctx, req, -EINVAL);
}

static void ring_cb(void *opaque, int fd, uint32_t events)
{
    struct blk_ctx *ctx = opaque;
    unsigned n = 0;
    uint64_t v;

    (void)events;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: completions already reaped on an earlier wakeup */
    }
    blk_dispatch_enter(ctx);
    /* Reap, submit what the callbacks queued, and go on while that produced
     * completions at once (page-cache hits complete inside io_uring_enter):
     * one syscall per round instead of a trip through epoll. Bounded so the
     * loop gets to its other handlers. */
    for (;;) {
        struct io_uring_cqe *cqe;

        while (n < ctx->ring_limit && !ctx->free_pending &&
               io_uring_peek_cqe(&ctx->ring, &cqe) == 0) {
            struct blk_req *req = io_uring_cqe_get_data(cqe);
            int res = cqe->res;

            io_uring_cqe_seen(&ctx->ring, cqe);
            ctx->ring_busy--;
            n++;
            cqe_done(ctx, req, res);
        }
        if (ctx->free_pending)
            break;
        uring_flush(ctx);
        if (n >= ctx->ring_limit || !io_uring_cq_ready(&ctx->ring))
            break;
    }
    /* Stopped by the bound: come back next round. */
    if (!ctx->free_pending && io_uring_cq_ready(&ctx->ring))
        eventfd_write(ctx->ring_efd, 1);
    blk_dispatch_leave(ctx);
}

/* Block layer internals shared by blk.c, file.c, uring.c, threads.c, null.c.
 * Not part of the contract: only src/block/ includes this. */
#ifndef VSCSI_BLOCK_BLK_INT_H
#define VSCSI_BLOCK_BLK_INT_H

#include "block/blk.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Largest bounce/zero buffer: bounces and zero writes go in chunks of at most
 * this, so a request never makes us allocate a size the guest chose. */
#define BLK_BOUNCE_MAX   (1u << 20)
/* Largest O_DIRECT alignment we accept (bounce buffers are aligned to it). */
#define BLK_MAX_ALIGN    (64u * 1024)
/* Per-context cap on requests in flight (defensive; virtqueues are far smaller). */
#define BLK_MAX_INFLIGHT (1u << 20)

/* Tri-state for features probed lazily (fallocate modes, discard ioctls). */
enum { BLK_FEAT_UNKNOWN = 0, BLK_FEAT_OK = 1, BLK_FEAT_NO = -1 };

/* One fault injection rule (inject.c). */
struct blk_inject_rule {
    uint32_t ops;               /* 1u << BLK_OP_* */
    int err;                    /* positive errno */
    uint64_t start, len;        /* byte range; len 0 = every offset */
    uint64_t remaining;         /* UINT64_MAX = no limit */
    uint64_t hits;
};

struct blk_drive {
    char *id;
    char *filename;
    enum blk_driver_kind driver;
    enum blk_cache_mode cache;
    enum blk_aio aio;
    int fd;                     /* -1 for the null driver */
    bool is_bdev;
    bool readonly;
    bool direct;                /* opened with O_DIRECT */
    bool discard_unmap;
    bool null_no_read_zeroes;
    bool mem_backed;            /* buffered file on tmpfs/ramfs: I/O is a memory copy
                                 * done inline in the submitting loop (io_uring would
                                 * punt every request to an io-wq thread: no NOWAIT) */
    uint32_t dio_align;         /* 1 unless direct */
    uint32_t host_bs;
    uint64_t size;              /* atomic */
    bool wce;                   /* atomic */
    int punch;                  /* atomic BLK_FEAT_*: FALLOC_FL_PUNCH_HOLE / BLKDISCARD */
    int zero_range;             /* atomic BLK_FEAT_*: FALLOC_FL_ZERO_RANGE / BLKZEROOUT */
    pthread_mutex_t rmw_lock;   /* serialises read-modify-write of partial O_DIRECT blocks */
    struct blk_stats stats;     /* updated with atomic adds */
    /* fault injection: ninject (atomic) is 0 on the fast path; the rules are
     * read and spent under inject_lock */
    unsigned ninject;
    pthread_mutex_t inject_lock;
    struct blk_inject_rule inject[BLK_INJECT_MAX];
    /* io_uring registered files (uring.c): the drive's slot in every ring's
     * file table (-1: none), and a generation that tells a ring whether the
     * file it holds in that slot is this drive's */
    int fixed_slot;
    uint64_t fixed_gen;
};

/* Completion queue entry. */
struct blk_qent {
    struct blk_req *req;
    struct blk_ctx *ctx;
    int ret;
};

/* FIFO ring of entries. Capacity is reserved ahead (at blk_submit, where
 * failing is allowed), so pushes on the completion path never fail. */
struct blk_fifo {
    struct blk_qent *ents;
    uint32_t cap;               /* power of two, or 0 */
    uint32_t head;
    uint32_t count;
};

int blk_fifo_reserve(struct blk_fifo *f, uint32_t need);
void blk_fifo_free(struct blk_fifo *f);

static inline void blk_fifo_push(struct blk_fifo *f, struct blk_qent e)
{
    /* Callers reserved room; a full FIFO here is a block-layer bug. */
    f->ents[(f->head + f->count) & (f->cap - 1)] = e;
    f->count++;
}

static inline bool blk_fifo_pop(struct blk_fifo *f, struct blk_qent *e)
{
    if (!f->count)
        return false;
    *e = f->ents[f->head];
    f->head = (f->head + 1) & (f->cap - 1);
    f->count--;
    return true;
}

/* ev_loop_defer has no cancel: the deferred callback gets this token, and a
 * context freed while a callback is queued detaches itself (ctx = NULL). */
struct blk_round_tok {
    struct blk_ctx *ctx;
};

struct blk_ctx {
    struct ev_loop *loop;
    uint32_t inflight;          /* written by the owner only; read anywhere (relaxed) */
    /* blk_ctx_set_guard: around every batch of completions */
    void (*guard_enter)(void *opaque);
    void (*guard_leave)(void *opaque);
    void *guard_opaque;
    unsigned dispatch_depth;    /* >0 while running our own loop callbacks */
    bool free_pending;          /* blk_ctx_free called from inside a callback */

    struct blk_round_tok *tok;
    bool round_scheduled;
    struct blk_fifo local;      /* completions for the end of this round (loop thread) */

    /* thread-pool completions: pushed by workers, popped by the loop thread */
    int done_efd;
    struct ev_handler *done_h;
    pthread_mutex_t done_lock;
    struct blk_fifo done;

    /* io_uring engine */
    bool ring_ok;
    bool ring_rw;               /* IORING_OP_READ/WRITE supported */
    bool ring_falloc;           /* IORING_OP_FALLOCATE supported */
    struct io_uring ring;
    int ring_efd;
    struct ev_handler *ring_h;
    uint32_t ring_limit;        /* max SQEs outstanding (<= CQ size: no overflow) */
    uint32_t ring_busy;         /* SQEs prepared or in flight */
    uint32_t ring_unsubmitted;  /* prepared, not yet io_uring_submit()ted */
    bool ring_submit_retry;     /* last submit hit -EBUSY/-EAGAIN */
    uint64_t submit_calls;      /* io_uring_submit calls that took SQEs (atomic) */
    struct blk_fifo pending;    /* requests waiting for ring space */
    /* registered files: fixed_gen[slot] = generation of the drive whose fd
     * the ring holds in that slot (0: none); atomic (uring_drive_release
     * clears it from the closing thread) */
    uint64_t *fixed_gen;
    unsigned fixed_count;       /* slots holding a file (atomic) */
    struct blk_ctx *fixed_next; /* list of rings with a file table */
};

/* uring.c: registered files */
void uring_drive_init(struct blk_drive *d);
void uring_drive_release(struct blk_drive *d);
/* Slots in each ring's file table: drives beyond this use plain fds. */
#define BLK_FIXED_SLOTS 1024

/* blk.c */
void blk_complete(struct blk_ctx *ctx, struct blk_req *req, int ret);
void blk_complete_later(struct blk_ctx *ctx, struct blk_req *req, int ret);
void blk_schedule_round(struct blk_ctx *ctx);
void blk_dispatch_enter(struct blk_ctx *ctx);
void blk_dispatch_leave(struct blk_ctx *ctx);

static inline void blk_inflight_add(struct blk_ctx *ctx, int delta)
{
    __atomic_store_n(&ctx->inflight, ctx->inflight + (uint32_t)delta, __ATOMIC_RELAXED);
}

static inline uint64_t blk_size_get(const struct blk_drive *d)
{
    return __atomic_load_n(&d->size, __ATOMIC_RELAXED);
}

static inline int blk_feat_get(const int *f)
{
    return __atomic_load_n(f, __ATOMIC_RELAXED);
}

static inline void blk_feat_set(int *f, int v)
{
    __atomic_store_n(f, v, __ATOMIC_RELAXED);
}

static inline void blk_stat_add(uint64_t *c, uint64_t v)
{
    __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

/* req->stage: low byte is the engine's step; flags above. */
#define BLK_ST_STEP_MASK   0xff
#define BLK_ST_BOUNCED     0x100    /* counted in stats.bounces */
#define BLK_ST_URING_BUF   0x200    /* io_uring: priv is an aligned bounce buffer */
#define BLK_ST_DSYNC       0x400    /* io_uring: write with RWF_DSYNC */
#define BLK_ST_PUNCH       0x800    /* io_uring: WRITE_ZEROES by hole punching */
#define BLK_ST_RETRY_SHIFT 16       /* io_uring: -EAGAIN/-EINTR retries so far */

/* file.c: helpers shared by both engines */
/* A write that must be on stable storage before completion (FUA, or WCE off). */
bool blk_req_needs_sync(const struct blk_drive *d, const struct blk_req *req);
/* O_DIRECT and some buffer base/length is misaligned (offset/len are fine). */
bool blk_req_bad_buffers(const struct blk_drive *d, const struct blk_req *req);
/* O_DIRECT and the byte range itself is misaligned (needs read-modify-write). */
bool blk_req_bad_range(const struct blk_drive *d, const struct blk_req *req);
/* Find the iov element and offset inside it where byte done starts. */
void blk_iov_locate(const struct iovec *iov, unsigned cnt, uint64_t done,
                    unsigned *idx, size_t *off);
/* Aligned to max(align, 4096). */
void *blk_bounce_alloc(size_t align, size_t len);
/* Run a file request to the end, blocking (thread-pool workers). 0 or -errno.
 * Continues from req->done_bytes for reads and writes. */
int blk_file_exec(struct blk_req *req);
int blk_probe_file(struct blk_drive *d, char *err, size_t errlen);
/* Free the calling worker thread's bounce buffer. */
void blk_file_thread_cleanup(void);

/* threads.c */
int blk_pool_ref(void);
void blk_pool_unref(void);
/* Hand req to a worker; completion arrives through ctx->done. 0 or -errno. */
int threads_submit(struct blk_ctx *ctx, struct blk_req *req);
void threads_ctx_drain(struct blk_ctx *ctx);

/* uring.c */
int uring_ctx_init(struct blk_ctx *ctx);
void uring_ctx_fini(struct blk_ctx *ctx);
void uring_submit(struct blk_ctx *ctx, struct blk_req *req);
void uring_flush(struct blk_ctx *ctx);

/* inject.c: the errno (positive) a rule makes req fail with, or 0. Spends
 * one count of the matching rule. */
int blk_inject_match(struct blk_drive *d, const struct blk_req *req);

/* null.c */
void null_submit(struct blk_ctx *ctx, struct blk_req *req);

#endif

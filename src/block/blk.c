/* Drives (open, properties, resize, block status), per-thread contexts and
 * request dispatch to the engines (io_uring, thread pool, null). */
#include "block/blk_int.h"

#include "util/iov.h"
#include "util/log.h"
#include "util/loop.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define BLK_FIFO_INIT 256

static const char *const op_names[] = {
    [BLK_OP_READ] = "read",
    [BLK_OP_WRITE] = "write",
    [BLK_OP_FLUSH] = "flush",
    [BLK_OP_DISCARD] = "discard",
    [BLK_OP_WRITE_ZEROES] = "write-zeroes",
};

static const char *const cache_names[] = {
    [BLK_CACHE_WRITEBACK] = "writeback",
    [BLK_CACHE_NONE] = "none",
    [BLK_CACHE_WRITETHROUGH] = "writethrough",
    [BLK_CACHE_DIRECTSYNC] = "directsync",
    [BLK_CACHE_UNSAFE] = "unsafe",
};

/* ---- FIFO ---- */

int blk_fifo_reserve(struct blk_fifo *f, uint32_t need)
{
    uint32_t cap = f->cap ? f->cap : 16;
    struct blk_qent *ents;

    if (need <= f->cap)
        return 0;
    if (need > BLK_MAX_INFLIGHT)
        return -ENOMEM;
    while (cap < need)
        cap *= 2;
    ents = malloc((size_t)cap * sizeof(*ents));
    if (!ents)
        return -ENOMEM;
    /* Unwrap the ring into the new array in order. */
    for (uint32_t i = 0; i < f->count; i++)
        ents[i] = f->ents[(f->head + i) & (f->cap - 1)];
    free(f->ents);
    f->ents = ents;
    f->cap = cap;
    f->head = 0;
    return 0;
}

void blk_fifo_free(struct blk_fifo *f)
{
    free(f->ents);
    *f = (struct blk_fifo){ 0 };
}

/* ---- drives ---- */

static bool cache_wce(enum blk_cache_mode c)
{
    return c == BLK_CACHE_WRITEBACK || c == BLK_CACHE_NONE || c == BLK_CACHE_UNSAFE;
}

static bool cache_direct(enum blk_cache_mode c)
{
    return c == BLK_CACHE_NONE || c == BLK_CACHE_DIRECTSYNC;
}

static void drive_free(struct blk_drive *d)
{
    if (!d)
        return;
    uring_drive_release(d);
    if (d->fd >= 0)
        close(d->fd);
    pthread_mutex_destroy(&d->rmw_lock);
    pthread_mutex_destroy(&d->inject_lock);
    free(d->id);
    free(d->filename);
    free(d);
}

/* driver=memory: a memfd of size bytes. Pages are allocated as they are
 * first written, and a discard gives them back (hole punching), so the drive
 * costs what it holds. Served like a file on tmpfs: inline, in the loop. */
static int memory_create(struct blk_drive *d, uint64_t size, char *err, size_t errlen)
{
    char name[64];
    int ret;

    snprintf(name, sizeof(name), "vscsid-drive-%s", d->id);
    d->fd = memfd_create(name, MFD_CLOEXEC);
    if (d->fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "drive %s: cannot create its memory: %s", d->id, strerror(-ret));
        return ret;
    }
    if (ftruncate(d->fd, (off_t)size) < 0) {
        ret = -errno;
        snprintf(err, errlen, "drive %s: cannot size its memory to %" PRIu64 " bytes: %s",
                 d->id, size, strerror(-ret));
        return ret;
    }
    return 0;
}

int blk_open(const struct blk_opts *opts, struct blk_drive **out, char *err, size_t errlen)
{
    const char *id = opts && opts->id ? opts->id : "(unnamed)";
    struct blk_drive *d = NULL;
    int ret;

    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    if (!opts) {
        snprintf(err, errlen, "drive: no options");
        return -EINVAL;
    }
    if (opts->format && strcmp(opts->format, "raw") != 0) {
        snprintf(err, errlen, "drive %s: format '%s' is not supported yet (supported: raw)",
                 id, opts->format);
        return -ENOTSUP;
    }
    if ((unsigned)opts->cache > BLK_CACHE_UNSAFE || (unsigned)opts->aio > BLK_AIO_THREADS ||
        (unsigned)opts->driver > BLK_DRIVER_MEMORY) {
        snprintf(err, errlen, "drive %s: invalid cache, aio or driver value", id);
        return -EINVAL;
    }
    if (opts->driver == BLK_DRIVER_FILE && (!opts->filename || !opts->filename[0])) {
        snprintf(err, errlen, "drive %s: no file name given", id);
        return -EINVAL;
    }
    if (opts->driver == BLK_DRIVER_MEMORY && (!opts->size || opts->size > (uint64_t)INT64_MAX)) {
        snprintf(err, errlen, "drive %s: driver=memory needs a size (e.g. size=1G)", id);
        return -EINVAL;
    }
    if (opts->driver == BLK_DRIVER_MEMORY && cache_direct(opts->cache)) {
        snprintf(err, errlen, "drive %s: driver=memory has no O_DIRECT, so cache=%s does not "
                 "apply; use cache=writeback (the default) or writethrough", id,
                 cache_names[opts->cache]);
        return -EINVAL;
    }
    if ((unsigned)opts->werror > BLK_ERR_ENOSPC || (unsigned)opts->rerror > BLK_ERR_STOP) {
        snprintf(err, errlen, "drive %s: invalid werror or rerror value", id);
        return -EINVAL;
    }

    d = calloc(1, sizeof(*d));
    if (!d)
        goto nomem;
    d->fd = -1;
    d->fixed_slot = -1;
    pthread_mutex_init(&d->rmw_lock, NULL);
    pthread_mutex_init(&d->inject_lock, NULL);
    d->id = strdup(id);
    if (opts->driver == BLK_DRIVER_MEMORY) {
        /* what messages about the file call it */
        if (asprintf(&d->filename, "memory:%s", id) < 0)
            d->filename = NULL;
        if (!d->filename)
            goto nomem;
    } else {
        d->filename = opts->filename ? strdup(opts->filename) : NULL;
        if (opts->filename && !d->filename)
            goto nomem;
    }
    if (!d->id)
        goto nomem;
    d->driver = opts->driver;
    d->cache = opts->cache;
    d->aio = opts->aio;
    d->readonly = opts->readonly;
    d->discard_unmap = opts->discard_unmap;
    d->null_no_read_zeroes = opts->driver == BLK_DRIVER_NULL && opts->null_no_read_zeroes;
    d->wce = cache_wce(opts->cache);
    d->dio_align = 1;
    d->host_bs = 512;
    if (opts->inject) {
        char msg[256];

        ret = blk_set_inject(d, opts->inject, msg, sizeof(msg));
        if (ret < 0) {
            snprintf(err, errlen, "drive %s: %s", id, msg);
            goto fail;
        }
    }

    if (opts->driver == BLK_DRIVER_NULL) {
        d->size = opts->size;
        d->punch = BLK_FEAT_OK;     /* null reads are zeroes, so discards read back as zero */
        d->zero_range = BLK_FEAT_OK;
        *out = d;
        return 0;
    }

    if (opts->driver == BLK_DRIVER_MEMORY) {
        ret = memory_create(d, opts->size, err, errlen);
        if (ret < 0)
            goto fail;
        goto probe;
    }
    d->direct = cache_direct(opts->cache);
    int flags = (opts->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (d->direct ? O_DIRECT : 0);
    d->fd = open(opts->filename, flags);
    if (d->fd < 0) {
        ret = -errno;
        if (d->direct && ret == -EINVAL)
            snprintf(err, errlen, "drive %s: cannot open '%s': cache=%s requires O_DIRECT, "
                     "which this file system does not support", id, opts->filename,
                     cache_names[opts->cache]);
        else
            snprintf(err, errlen, "drive %s: cannot open '%s': %s", id, opts->filename,
                     strerror(-ret));
        goto fail;
    }
probe:
    ret = blk_probe_file(d, err, errlen);
    if (ret < 0)
        goto fail;
    uring_drive_init(d);
    *out = d;
    return 0;

nomem:
    ret = -ENOMEM;
    snprintf(err, errlen, "drive %s: out of memory", id);
fail:
    drive_free(d);
    return ret;
}

void blk_close(struct blk_drive *d)
{
    /* As QEMU does on close: what was written reaches stable storage before
     * the image is let go (an ejected medium, a deleted drive, shutdown). */
    if (d && d->fd >= 0 && !d->readonly && d->cache != BLK_CACHE_UNSAFE && fdatasync(d->fd) < 0)
        log_warn("drive %s: flush on close of '%s' failed: %s", d->id, d->filename,
                 strerror(errno));
    drive_free(d);
}

const char *blk_id(const struct blk_drive *d) { return d->id; }
uint64_t blk_size(const struct blk_drive *d) { return blk_size_get(d); }
bool blk_is_readonly(const struct blk_drive *d) { return d->readonly; }
uint32_t blk_dio_align(const struct blk_drive *d) { return d->dio_align; }
uint32_t blk_host_block_size(const struct blk_drive *d) { return d->host_bs; }

bool blk_can_discard(const struct blk_drive *d)
{
    return d->discard_unmap && !d->readonly && blk_feat_get(&d->punch) != BLK_FEAT_NO;
}

bool blk_discard_zeroes(const struct blk_drive *d)
{
    /* BLKDISCARD gives no such promise; hole punching in a file does. */
    return !d->null_no_read_zeroes && !d->is_bdev && blk_feat_get(&d->punch) == BLK_FEAT_OK;
}

bool blk_write_cache(const struct blk_drive *d)
{
    return __atomic_load_n(&d->wce, __ATOMIC_RELAXED);
}

void blk_set_write_cache(struct blk_drive *d, bool on)
{
    __atomic_store_n(&d->wce, on, __ATOMIC_RELAXED);
}

void blk_get_stats(const struct blk_drive *d, struct blk_stats *out)
{
    const struct blk_stats *s = &d->stats;

    out->reads = __atomic_load_n(&s->reads, __ATOMIC_RELAXED);
    out->writes = __atomic_load_n(&s->writes, __ATOMIC_RELAXED);
    out->flushes = __atomic_load_n(&s->flushes, __ATOMIC_RELAXED);
    out->discards = __atomic_load_n(&s->discards, __ATOMIC_RELAXED);
    out->write_zeroes = __atomic_load_n(&s->write_zeroes, __ATOMIC_RELAXED);
    out->read_bytes = __atomic_load_n(&s->read_bytes, __ATOMIC_RELAXED);
    out->write_bytes = __atomic_load_n(&s->write_bytes, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
    out->bounces = __atomic_load_n(&s->bounces, __ATOMIC_RELAXED);
    out->inline_ops = __atomic_load_n(&s->inline_ops, __ATOMIC_RELAXED);
    out->read_ns = __atomic_load_n(&s->read_ns, __ATOMIC_RELAXED);
    out->write_ns = __atomic_load_n(&s->write_ns, __ATOMIC_RELAXED);
    out->flush_ns = __atomic_load_n(&s->flush_ns, __ATOMIC_RELAXED);
    out->discard_ns = __atomic_load_n(&s->discard_ns, __ATOMIC_RELAXED);
    out->write_zeroes_ns = __atomic_load_n(&s->write_zeroes_ns, __ATOMIC_RELAXED);
}

/* vDSO clock: ~20 ns, twice per request, for the latency totals. */
static int read_size(struct blk_drive *d, uint64_t *size)
{
    struct stat st;

    if (d->is_bdev)
        return ioctl(d->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
    if (fstat(d->fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

int blk_resize(struct blk_drive *d, uint64_t new_size)
{
    uint64_t size;
    int ret;

    if (d->driver == BLK_DRIVER_NULL) {
        if (new_size)
            __atomic_store_n(&d->size, new_size, __ATOMIC_RELAXED);
        return 0;
    }
    if (new_size) {
        if (d->readonly)
            return -EROFS;
        if (d->is_bdev)
            return -EPERM;
        if (new_size > (uint64_t)INT64_MAX)
            return -EFBIG;
        if (ftruncate(d->fd, (off_t)new_size) < 0)
            return -errno;
    }
    ret = read_size(d, &size);
    if (ret < 0)
        return ret;
    __atomic_store_n(&d->size, size, __ATOMIC_RELAXED);
    return 0;
}

int blk_get_status(struct blk_drive *d, uint64_t offset, uint64_t len, bool *mapped, uint64_t *run)
{
    uint64_t size = blk_size_get(d);
    off_t data, hole;

    if (!len || offset > size || len > size - offset)
        return -EINVAL;
    *mapped = true;
    *run = len;
    if (d->driver == BLK_DRIVER_NULL || d->is_bdev)
        return 0;
    /* lseek moves the shared file offset; harmless: all I/O uses explicit offsets. */
    data = lseek(d->fd, (off_t)offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {       /* no data from offset to the end of the file */
            *mapped = false;
            return 0;
        }
        /* No SEEK_DATA support: everything is data. */
        return errno == EINVAL || errno == EOPNOTSUPP ? 0 : -errno;
    }
    if ((uint64_t)data > offset) {
        *mapped = false;
        *run = (uint64_t)data - offset < len ? (uint64_t)data - offset : len;
        return 0;
    }
    hole = lseek(d->fd, (off_t)offset, SEEK_HOLE);
    if (hole < 0)
        return errno == ENXIO ? 0 : -errno;
    if ((uint64_t)hole > offset && (uint64_t)hole - offset < len)
        *run = (uint64_t)hole - offset;
    return 0;
}

/* ---- contexts ---- */

static void ctx_destroy(struct blk_ctx *ctx)
{
    uring_ctx_fini(ctx);
    if (ctx->done_h)
        ev_loop_del_fd(ctx->loop, ctx->done_h);
    /* Workers touch ctx only under done_lock; taking it once makes sure the
     * last one has let go. */
    pthread_mutex_lock(&ctx->done_lock);
    pthread_mutex_unlock(&ctx->done_lock);
    pthread_mutex_destroy(&ctx->done_lock);
    if (ctx->done_efd >= 0)
        close(ctx->done_efd);
    if (ctx->tok) {
        if (ctx->round_scheduled)
            ctx->tok->ctx = NULL;   /* the queued callback frees it */
        else
            free(ctx->tok);
    }
    blk_fifo_free(&ctx->local);
    blk_fifo_free(&ctx->done);
    blk_fifo_free(&ctx->pending);
    blk_pool_unref();
    free(ctx);
}

void blk_dispatch_enter(struct blk_ctx *ctx)
{
    if (ctx->dispatch_depth++ == 0 && ctx->guard_enter)
        ctx->guard_enter(ctx->guard_opaque);
}

void blk_dispatch_leave(struct blk_ctx *ctx)
{
    if (--ctx->dispatch_depth)
        return;
    if (ctx->guard_leave)
        ctx->guard_leave(ctx->guard_opaque);
    if (ctx->free_pending)
        ctx_destroy(ctx);
}

/* The context of the calling thread (blk_ctx_bind_thread), for requests
 * issued on a thread other than the one their context belongs to. */
static __thread struct blk_ctx *tls_ctx;

void blk_ctx_bind_thread(struct blk_ctx *ctx)
{
    tls_ctx = ctx;
}

void blk_ctx_set_guard(struct blk_ctx *ctx, void (*enter)(void *opaque), void (*leave)(void *opaque),
                       void *opaque)
{
    ctx->guard_enter = enter;
    ctx->guard_leave = leave;
    ctx->guard_opaque = opaque;
}

/* Run the completions queued before this call; later ones wait for the next
 * round, so a callback that resubmits cannot keep us here forever. */
static void run_local(struct blk_ctx *ctx)
{
    uint32_t n = ctx->local.count;
    struct blk_qent e;

    while (n-- && blk_fifo_pop(&ctx->local, &e))
        blk_complete(ctx, e.req, e.ret);
}

static void round_cb(void *opaque)
{
    struct blk_round_tok *tok = opaque;
    struct blk_ctx *ctx = tok->ctx;

    if (!ctx) {
        free(tok);
        return;
    }
    ctx->round_scheduled = false;
    blk_dispatch_enter(ctx);
    run_local(ctx);
    uring_flush(ctx);
    blk_dispatch_leave(ctx);
}

static void done_fd_cb(void *opaque, int fd, uint32_t events)
{
    struct blk_ctx *ctx = opaque;
    uint64_t v;

    (void)events;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: a spurious wakeup; nothing else can fail on an eventfd */
    }
    blk_dispatch_enter(ctx);
    threads_ctx_drain(ctx);
    run_local(ctx);
    uring_flush(ctx);
    blk_dispatch_leave(ctx);
}

void blk_schedule_round(struct blk_ctx *ctx)
{
    if (ctx->round_scheduled)
        return;
    if (ev_loop_defer(ctx->loop, round_cb, ctx->tok) == 0) {
        ctx->round_scheduled = true;
        return;
    }
    /* Out of memory for the defer record: wake ourselves through the eventfd,
     * whose handler does the same work. */
    eventfd_write(ctx->done_efd, 1);
}

struct blk_ctx *blk_ctx_new(struct ev_loop *loop, char *err, size_t errlen)
{
    static int warned;
    struct blk_ctx *ctx;
    int ret;

    if (err && errlen)
        err[0] = '\0';
    ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(err, errlen, "block context: out of memory");
        return NULL;
    }
    ctx->loop = loop;
    ctx->done_efd = -1;
    ctx->ring_efd = -1;
    pthread_mutex_init(&ctx->done_lock, NULL);
    blk_pool_ref();
    ctx->tok = malloc(sizeof(*ctx->tok));
    if (!ctx->tok || blk_fifo_reserve(&ctx->local, BLK_FIFO_INIT) ||
        blk_fifo_reserve(&ctx->done, BLK_FIFO_INIT) ||
        blk_fifo_reserve(&ctx->pending, BLK_FIFO_INIT)) {
        snprintf(err, errlen, "block context: out of memory");
        goto fail;
    }
    ctx->tok->ctx = ctx;
    ctx->done_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ctx->done_efd < 0) {
        snprintf(err, errlen, "block context: eventfd: %s", strerror(errno));
        goto fail;
    }
    ctx->done_h = ev_loop_add_fd(loop, ctx->done_efd, EPOLLIN, done_fd_cb, ctx);
    if (!ctx->done_h) {
        snprintf(err, errlen, "block context: cannot watch eventfd: %s", strerror(errno));
        goto fail;
    }
    ret = uring_ctx_init(ctx);
    if (ret < 0 && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        log_warn("io_uring unavailable (%s); using the thread pool for aio=io_uring drives",
                 strerror(-ret));
    return ctx;

fail:
    ctx_destroy(ctx);
    return NULL;
}

void blk_ctx_free(struct blk_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->inflight) {
        /* Freeing now would leave workers and the kernel writing into freed
         * memory; leaking is the lesser evil for this caller bug. */
        log_err("block context freed with %u requests in flight; leaking it", ctx->inflight);
        return;
    }
    if (ctx->dispatch_depth) {
        ctx->free_pending = true;
        return;
    }
    ctx_destroy(ctx);
}

unsigned blk_ctx_inflight(const struct blk_ctx *ctx)
{
    return __atomic_load_n(&ctx->inflight, __ATOMIC_RELAXED);
}

void blk_ctx_flush(struct blk_ctx *ctx)
{
    uring_flush(ctx);
}

/* ---- requests ---- */

void blk_complete(struct blk_ctx *ctx, struct blk_req *req, int ret)
{
    struct blk_drive *d = req->drive;
    struct blk_stats *s = &d->stats;
    /* Round-granular timestamps (one clock read per loop round, not two per
     * request): latency totals stay right to within a round. */
    uint64_t now = ev_loop_now(ctx->loop);
    uint64_t lat = now > req->start_ns ? now - req->start_ns : 0;

    switch (req->op) {
    case BLK_OP_READ:
        blk_stat_add(&s->reads, 1);
        blk_stat_add(&s->read_ns, lat);
        if (!ret)
            blk_stat_add(&s->read_bytes, req->len);
        break;
    case BLK_OP_WRITE:
        blk_stat_add(&s->writes, 1);
        blk_stat_add(&s->write_ns, lat);
        if (!ret)
            blk_stat_add(&s->write_bytes, req->len);
        break;
    case BLK_OP_FLUSH:
        blk_stat_add(&s->flushes, 1);
        blk_stat_add(&s->flush_ns, lat);
        break;
    case BLK_OP_DISCARD:
        blk_stat_add(&s->discards, 1);
        blk_stat_add(&s->discard_ns, lat);
        break;
    case BLK_OP_WRITE_ZEROES:
        blk_stat_add(&s->write_zeroes, 1);
        blk_stat_add(&s->write_zeroes_ns, lat);
        break;
    }
    if (ret < 0) {
        blk_stat_add(&s->errors, 1);
        /* The guest can provoke errors (e.g. a full host disk): rate-limit. */
        log_guest("drive %s: %s at %llu+%llu failed: %s", d->id, op_names[req->op],
                  (unsigned long long)req->offset, (unsigned long long)req->len, strerror(-ret));
    }
    blk_inflight_add(ctx, -1);
    req->done_cb(req, ret);
}

void blk_complete_later(struct blk_ctx *ctx, struct blk_req *req, int ret)
{
    /* Room was reserved in blk_submit (local.cap >= inflight). */
    blk_fifo_push(&ctx->local, (struct blk_qent){ .req = req, .ctx = ctx, .ret = ret });
    blk_schedule_round(ctx);
}

static int reserve_queues(struct blk_ctx *ctx)
{
    uint32_t need = ctx->inflight + 1;
    int ret = 0;

    if (need > ctx->local.cap && (ret = blk_fifo_reserve(&ctx->local, need)))
        return ret;
    if (need > ctx->pending.cap && (ret = blk_fifo_reserve(&ctx->pending, need)))
        return ret;
    /* Only this thread grows done, so reading cap unlocked is safe. */
    if (need > ctx->done.cap) {
        pthread_mutex_lock(&ctx->done_lock);
        ret = blk_fifo_reserve(&ctx->done, need);
        pthread_mutex_unlock(&ctx->done_lock);
    }
    return ret;
}

/* Requests that need no I/O at all. */
static bool req_is_trivial(const struct blk_drive *d, const struct blk_req *req)
{
    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
    case BLK_OP_WRITE_ZEROES:
        return req->len == 0;
    case BLK_OP_FLUSH:
        return d->cache == BLK_CACHE_UNSAFE || d->readonly;
    case BLK_OP_DISCARD:
        return req->len == 0 || !d->discard_unmap || blk_feat_get(&d->punch) == BLK_FEAT_NO;
    }
    return false;
}

int blk_submit(struct blk_ctx *ctx, struct blk_drive *d, struct blk_req *req)
{
    uint64_t size;
    int ret;

    if (!ctx || !d || !req || !req->done_cb)
        return -EINVAL;
    /* A request issued on another thread (a retry after `cont`, a command
     * that waited behind another on a different queue) completes on the
     * issuing thread, through that thread's own context. */
    if (tls_ctx && ctx != tls_ctx && !ev_loop_is_current(ctx->loop))
        ctx = tls_ctx;
    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        if (req->iovcnt && !req->iov)
            return -EINVAL;
        if (iov_size(req->iov, req->iovcnt) != req->len)
            return -EINVAL;
        /* fallthrough */
    case BLK_OP_DISCARD:
    case BLK_OP_WRITE_ZEROES:
        if (req->op != BLK_OP_READ && d->readonly)
            return -EROFS;
        size = blk_size_get(d);
        if (req->offset > size || req->len > size - req->offset)
            return -EINVAL;
        break;
    case BLK_OP_FLUSH:
        break;
    default:
        return -EINVAL;
    }
    if (ctx->inflight >= BLK_MAX_INFLIGHT)
        return -EAGAIN;
    ret = reserve_queues(ctx);
    if (ret < 0)
        return ret;

    req->drive = d;
    req->priv = NULL;
    req->done_bytes = 0;
    req->stage = 0;
    req->start_ns = ev_loop_now(ctx->loop);
    blk_inflight_add(ctx, 1);
    /* fault injection (tests): a matching request fails without being done */
    if ((ret = blk_inject_match(d, req)) != 0) {
        blk_complete_later(ctx, req, -ret);
    } else if (d->driver == BLK_DRIVER_NULL) {
        null_submit(ctx, req);
    } else if (req_is_trivial(d, req)) {
        blk_complete_later(ctx, req, 0);
    } else if (d->mem_backed) {
        blk_stat_add(&d->stats.inline_ops, 1);
        blk_complete_later(ctx, req, blk_file_exec(req));
    } else if (ctx->ring_ok && d->aio == BLK_AIO_IO_URING) {
        uring_submit(ctx, req);
    } else {
        ret = threads_submit(ctx, req);
        if (ret < 0) {
            blk_inflight_add(ctx, -1);
            return ret;
        }
    }
    return 0;
}

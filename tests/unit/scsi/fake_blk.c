/* In-memory fake block layer for the SCSI unit tests (see fake_blk.h). */
#include "fake_blk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/iov.h"

struct blk_drive *fake_drive_new(uint64_t size)
{
    struct blk_drive *d = calloc(1, sizeof(*d));

    d->data = calloc(1, size ? size : 1);
    d->mapped = calloc(1, size / FAKE_SECTOR + 1);
    d->size = size;
    d->wce = true;
    d->fail_op = -1;
    snprintf(d->id, sizeof(d->id), "fake");
    return d;
}

void fake_drive_free(struct blk_drive *d)
{
    free(d->data);
    free(d->mapped);
    free(d);
}

struct blk_ctx *fake_ctx_new(void) { return calloc(1, sizeof(struct blk_ctx)); }
void fake_ctx_free(struct blk_ctx *c) { free(c); }
unsigned fake_ctx_pending(const struct blk_ctx *c) { return c->tail - c->head; }

const char *blk_id(const struct blk_drive *d) { return d->id; }
uint64_t blk_size(const struct blk_drive *d) { return d->size; }
bool blk_is_readonly(const struct blk_drive *d) { return d->readonly; }
bool blk_can_discard(const struct blk_drive *d) { return d->discard; }
bool blk_discard_zeroes(const struct blk_drive *d) { return d->discard && d->discard_zeroes; }
uint32_t blk_dio_align(const struct blk_drive *d) { (void)d; return 1; }
uint32_t blk_host_block_size(const struct blk_drive *d) { (void)d; return 512; }
bool blk_write_cache(const struct blk_drive *d) { return d->wce; }
void blk_set_write_cache(struct blk_drive *d, bool on) { d->wce = on; d->set_wc_calls++; }
void blk_ctx_flush(struct blk_ctx *ctx) { (void)ctx; }
unsigned blk_ctx_inflight(const struct blk_ctx *ctx) { return fake_ctx_pending(ctx); }

int blk_get_status(struct blk_drive *d, uint64_t offset, uint64_t len, bool *mapped, uint64_t *run)
{
    uint64_t s, end;

    if (offset >= d->size || !len)
        return -ERANGE;
    if (len > d->size - offset)
        len = d->size - offset;
    s = offset / FAKE_SECTOR;
    *mapped = d->mapped[s];
    end = offset;
    while (end < offset + len && d->mapped[end / FAKE_SECTOR] == *mapped)
        end = (end / FAKE_SECTOR + 1) * FAKE_SECTOR;
    if (end > offset + len)
        end = offset + len;
    *run = end - offset;
    return 0;
}

static void set_mapped(struct blk_drive *d, uint64_t off, uint64_t len, uint8_t v)
{
    for (uint64_t s = off / FAKE_SECTOR; s * FAKE_SECTOR < off + len; s++)
        d->mapped[s] = v;
}

/* As the real blk_submit: a request goes to the issuing thread's context. */
static __thread struct blk_ctx *t_ctx;

void fake_ctx_bind_thread(struct blk_ctx *c)
{
    t_ctx = c;
}

int blk_submit(struct blk_ctx *ctx, struct blk_drive *d, struct blk_req *req)
{
    uint64_t seen;

    if (t_ctx)
        ctx = t_ctx;
    if (d->submit_errno)
        return -d->submit_errno;
    if (ctx->tail - ctx->head >= 4096) {
        fprintf(stderr, "fake_blk: queue full\n");
        abort();
    }
    if ((req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) &&
        iov_size(req->iov, req->iovcnt) != req->len) {
        fprintf(stderr, "fake_blk: len %llu != iov size %zu\n",
                (unsigned long long)req->len, iov_size(req->iov, req->iovcnt));
        abort();
    }
    req->drive = d;
    /* several threads may submit (test_threads): atomics, relaxed */
    __atomic_store_n(&d->last_op, req->op, __ATOMIC_RELAXED);
    __atomic_store_n(&d->last_flags, req->flags, __ATOMIC_RELAXED);
    __atomic_store_n(&d->last_offset, req->offset, __ATOMIC_RELAXED);
    __atomic_store_n(&d->last_len, req->len, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->nops[req->op], 1, __ATOMIC_RELAXED);
    seen = __atomic_load_n(&d->max_len_seen, __ATOMIC_RELAXED);
    while (req->len > seen &&
           !__atomic_compare_exchange_n(&d->max_len_seen, &seen, req->len, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    ctx->q[ctx->tail++ % 4096] = req;
    ctx->submitted++;
    return 0;
}

static int execute(struct blk_drive *d, struct blk_req *req)
{
    if (d->fail_errno && (d->fail_op < 0 || d->fail_op == (int)req->op)) {
        int e = d->fail_errno;

        if (d->fail_count && --d->fail_count == 0)
            d->fail_errno = 0;
        return -e;
    }
    if (req->op != BLK_OP_FLUSH && (req->offset > d->size || req->len > d->size - req->offset))
        return -ERANGE;
    switch (req->op) {
    case BLK_OP_READ:
        iov_from_buf(req->iov, req->iovcnt, 0, d->data + req->offset, req->len);
        break;
    case BLK_OP_WRITE:
        if (d->readonly)
            return -EROFS;
        iov_to_buf(req->iov, req->iovcnt, 0, d->data + req->offset, req->len);
        set_mapped(d, req->offset, req->len, 1);
        break;
    case BLK_OP_FLUSH:
        break;
    case BLK_OP_DISCARD:
        if (d->discard) {
            if (d->discard_zeroes)
                memset(d->data + req->offset, 0, req->len);
            set_mapped(d, req->offset, req->len, 0);
        }
        break;
    case BLK_OP_WRITE_ZEROES:
        memset(d->data + req->offset, 0, req->len);
        set_mapped(d, req->offset, req->len, (req->flags & BLK_F_MAY_UNMAP) && d->discard ? 0 : 1);
        break;
    }
    return 0;
}

unsigned fake_ctx_run(struct blk_ctx *c, unsigned max)
{
    unsigned n = 0;

    while (c->head != c->tail && (!max || n < max)) {
        struct blk_req *req = c->q[c->head++ % 4096];
        int ret = execute(req->drive, req);

        c->completed++;
        n++;
        req->done_cb(req, ret);
    }
    return n;
}

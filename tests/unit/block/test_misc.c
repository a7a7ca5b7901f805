/* Open errors, request validation, readonly, the null driver, many requests
 * in flight, I/O error propagation, freeing a context from a callback, and
 * the automatic fallback when io_uring is unavailable. */
#include <pthread.h>
#include "blk_test.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define MiB (1u << 20)
#define KiB (1u << 10)

static const char *g_dir;

static void test_open_errors(void)
{
    struct blk_opts o = { .id = "d0", .filename = "/nonexistent/x.img" };
    struct blk_drive *d = (void *)1;
    char err[256];

    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -ENOENT);
    CHECK(d == NULL);
    CHECK(!strcmp(err, "drive d0: cannot open '/nonexistent/x.img': No such file or directory"));

    o.format = "qcow2";
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -ENOTSUP);
    CHECK(!strcmp(err, "drive d0: format 'qcow2' is not supported yet (supported: raw)"));
    o.format = "raw";

    o.filename = "/dev/null";
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
    CHECK(!strcmp(err, "drive d0: '/dev/null' is not a regular file or block device"));

    o.filename = g_dir;     /* a directory: O_RDWR fails, O_RDONLY is refused */
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EISDIR);
    CHECK(strstr(err, "drive d0: cannot open") == err);
    o.readonly = true;
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "is not a regular file or block device") != NULL);

    o.filename = NULL;
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
    CHECK(!strcmp(err, "drive d0: no file name given"));
    CHECK(d == NULL);
}

static int g_calls;

static void count_cb(struct blk_req *req, int ret)
{
    (void)req;
    (void)ret;
    g_calls++;
}

/* Refused requests return at once and never call back. */
static void test_validation(void)
{
    char path[PATH_MAX];
    struct blk_drive *d, *ro;
    unsigned char buf[4096];
    struct iovec v = { buf, sizeof(buf) };
    struct blk_req req = { .iov = &v, .iovcnt = 1, .len = 4096, .done_cb = count_cb };

    CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    ro = t_open(path, BLK_CACHE_NONE, BLK_AIO_THREADS, true, true);
    CHECK(d && ro);
    if (!d || !ro)
        goto out;
    g_calls = 0;
    req.op = BLK_OP_READ;
    req.offset = MiB - 4095;
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.offset = MiB;
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.offset = UINT64_MAX - 100;          /* offset + len wraps */
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.offset = 0;
    req.len = 8192;                         /* != iov size */
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.len = 4096;
    req.op = (enum blk_op)42;
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.op = BLK_OP_DISCARD;
    req.offset = 4096;
    req.len = UINT64_MAX;
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.len = 4096;
    req.done_cb = NULL;
    CHECK_EQ(blk_submit(t_ctx, d, &req), -EINVAL);
    req.done_cb = count_cb;

    /* readonly: every write-type op is -EROFS; reads and flushes work */
    CHECK(blk_is_readonly(ro));
    CHECK(!blk_can_discard(ro));
    req.offset = 0;
    req.op = BLK_OP_WRITE;
    CHECK_EQ(blk_submit(t_ctx, ro, &req), -EROFS);
    req.op = BLK_OP_DISCARD;
    CHECK_EQ(blk_submit(t_ctx, ro, &req), -EROFS);
    req.op = BLK_OP_WRITE_ZEROES;
    CHECK_EQ(blk_submit(t_ctx, ro, &req), -EROFS);
    CHECK_EQ(blk_ctx_inflight(t_ctx), 0);
    for (int i = 0; i < 5; i++)
        ev_loop_run_once(t_loop, 10);
    CHECK_EQ(g_calls, 0);
    CHECK_EQ(t_rw(ro, BLK_OP_READ, 0, 0, buf, 4096), 0);
    CHECK_EQ(t_io(ro, BLK_OP_FLUSH, 0, 0, NULL, 0, 0), 0);
out:
    blk_close(d);
    blk_close(ro);
    unlink(path);
}

static void test_null(void)
{
    struct blk_opts o = { .id = "n0", .driver = BLK_DRIVER_NULL, .size = 1ull << 40,
                          .discard_unmap = true };
    struct blk_drive *d;
    struct blk_stats st;
    char err[256];
    unsigned char *buf = t_alloc(65536);
    bool mapped;
    uint64_t run;

    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), 0);
    CHECK_EQ(blk_size(d), 1ull << 40);
    CHECK(blk_can_discard(d));
    CHECK(blk_discard_zeroes(d));
    memset(buf, 0xff, 65536);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, (1ull << 40) - 65536, buf, 65536), 0);
    CHECK(buf[0] == 0 && buf[65535] == 0 && !memcmp(buf, buf + 1, 65535));
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, BLK_F_FUA, 0, buf, 65536), 0);
    CHECK_EQ(t_io(d, BLK_OP_FLUSH, 0, 0, NULL, 0, 0), 0);
    CHECK_EQ(t_io(d, BLK_OP_DISCARD, 0, 0, NULL, 0, 1ull << 30), 0);
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, BLK_F_MAY_UNMAP, 0, NULL, 0, 1ull << 30), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 1ull << 40, buf, 512), -EINVAL);
    CHECK_EQ(blk_get_status(d, 0, 1ull << 40, &mapped, &run), 0);
    CHECK(mapped);
    CHECK_EQ(run, 1ull << 40);
    blk_get_stats(d, &st);
    CHECK_EQ(st.reads, 1);
    CHECK_EQ(st.writes, 1);
    CHECK_EQ(st.read_bytes, 65536);
    CHECK_EQ(st.flushes, 1);
    CHECK_EQ(st.discards, 1);
    CHECK_EQ(st.write_zeroes, 1);
    CHECK_EQ(blk_resize(d, MiB), 0);
    CHECK_EQ(blk_size(d), MiB);
    blk_close(d);
    free(buf);
}

/* driver=memory: data written is read back, unwritten and discarded ranges
 * read as zeroes and are reported unmapped, resizing keeps the data, two
 * drives do not share memory, requests are served inline; size and O_DIRECT
 * cache modes are refused with a message. */
static void test_memory(void)
{
    struct blk_opts o = { .id = "m0", .driver = BLK_DRIVER_MEMORY, .size = 8 * MiB,
                          .discard_unmap = true };
    struct blk_drive *d, *d2;
    struct blk_stats st;
    char err[256];
    unsigned char *w = t_alloc(MiB), *r = t_alloc(MiB), *zero = calloc(1, MiB);
    bool mapped;
    uint64_t run;

    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), 0);
    if (!d)
        return;
    CHECK_EQ(blk_size(d), 8 * MiB);
    CHECK(blk_can_discard(d));
    CHECK(blk_discard_zeroes(d));
    /* a fresh drive is zeroes and holds no data */
    memset(r, 0xaa, MiB);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 7 * MiB, r, MiB), 0);
    CHECK_MEM(r, zero, MiB);
    CHECK_EQ(blk_get_status(d, 0, 8 * MiB, &mapped, &run), 0);
    CHECK(!mapped);
    CHECK_EQ(run, 8 * MiB);
    /* written data comes back, and is mapped */
    t_fill(w, MiB, 41);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 2 * MiB, w, MiB), 0);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, BLK_F_FUA, 8 * MiB - 4096, w, 4096), 0);
    CHECK_EQ(t_io(d, BLK_OP_FLUSH, 0, 0, NULL, 0, 0), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 2 * MiB, r, MiB), 0);
    CHECK_MEM(r, w, MiB);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 8 * MiB - 4096, r, 4096), 0);
    CHECK_MEM(r, w, 4096);
    CHECK_EQ(blk_get_status(d, 2 * MiB, MiB, &mapped, &run), 0);
    CHECK(mapped);
    CHECK_EQ(run, MiB);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 8 * MiB, r, 512), -EINVAL);   /* beyond the end */
    /* discard and write zeroes give the memory back and read as zeroes */
    CHECK_EQ(t_io(d, BLK_OP_DISCARD, 0, 2 * MiB, NULL, 0, 512 * KiB), 0);
    CHECK_EQ(t_io(d, BLK_OP_WRITE_ZEROES, BLK_F_MAY_UNMAP, 2 * MiB + 512 * KiB, NULL, 0,
                  256 * KiB), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 2 * MiB, r, MiB), 0);
    CHECK_MEM(r, zero, 768 * KiB);
    CHECK_MEM(r + 768 * KiB, w + 768 * KiB, 256 * KiB);
    CHECK_EQ(blk_get_status(d, 2 * MiB, MiB, &mapped, &run), 0);
    CHECK(!mapped);
    CHECK_EQ(run, 768 * KiB);
    /* growing keeps the data; the new part is zeroes */
    CHECK_EQ(blk_resize(d, 16 * MiB), 0);
    CHECK_EQ(blk_size(d), 16 * MiB);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 8 * MiB - 4096, r, 4096), 0);
    CHECK_MEM(r, w, 4096);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 15 * MiB, r, MiB), 0);
    CHECK_MEM(r, zero, MiB);
    blk_get_stats(d, &st);
    CHECK(st.inline_ops > 0);       /* served in the loop, like tmpfs */
    /* a second drive has memory of its own */
    o.id = "m1";
    CHECK_EQ(blk_open(&o, &d2, err, sizeof(err)), 0);
    if (d2) {
        CHECK_EQ(t_rw(d2, BLK_OP_READ, 0, 2 * MiB + 768 * KiB, r, 4096), 0);
        CHECK_MEM(r, zero, 4096);
        blk_close(d2);
    }
    blk_close(d);
    /* refused, with what to do */
    o.size = 0;
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "needs a size") != NULL);
    o.size = MiB;
    o.cache = BLK_CACHE_NONE;
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "O_DIRECT") != NULL && strstr(err, "cache=writeback") != NULL);
    free(w);
    free(r);
    free(zero);
}

/* Far more requests than the ring holds: all complete, none is lost. */
static void many(struct blk_drive *d, unsigned n, bool verify)
{
    struct blk_req *reqs = calloc(n, sizeof(*reqs));
    struct iovec *v = calloc(n, sizeof(*v));
    unsigned char *buf = t_alloc((size_t)n * 4096);
    int done = 0, bad = 0;

    for (unsigned pass = 0; pass < (verify ? 2u : 1u); pass++) {
        done = 0;
        if (pass == 0)
            t_fill(buf, (size_t)n * 4096, n);
        else
            memset(buf, 0, (size_t)n * 4096);
        for (unsigned i = 0; i < n; i++) {
            v[i] = (struct iovec){ buf + (size_t)i * 4096, 4096 };
            reqs[i] = (struct blk_req){ .op = pass ? BLK_OP_READ : BLK_OP_WRITE,
                                        .offset = (uint64_t)i * 4096, .len = 4096,
                                        .iov = &v[i], .iovcnt = 1, .opaque = &done };
        }
        for (unsigned i = 0; i < n; i++) {
            reqs[i].done_cb = count_cb;
            if (blk_submit(t_ctx, d, &reqs[i]) != 0)
                bad++;
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(blk_ctx_inflight(t_ctx), n);
        g_calls = 0;
        CHECK(t_wait(&g_calls, (int)n));
        CHECK_EQ(g_calls, n);
        CHECK_EQ(blk_ctx_inflight(t_ctx), 0);
    }
    if (verify) {
        unsigned char *ref = malloc((size_t)n * 4096);
        t_fill(ref, (size_t)n * 4096, n);
        CHECK_MEM(buf, ref, (size_t)n * 4096);
        free(ref);
    }
    free(reqs);
    free(v);
    free(buf);
}

static void test_concurrent(void)
{
    char path[PATH_MAX];
    struct blk_opts o = { .id = "n0", .driver = BLK_DRIVER_NULL, .size = 1ull << 30 };
    struct blk_drive *d;
    char err[256];

    CHECK_EQ(t_make_file(g_dir, 16 * MiB, path, sizeof(path)), 0);
    for (int aio = 0; aio < 2; aio++)
        for (int c = 0; c < 2; c++) {
            d = t_open(path, c ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK, (enum blk_aio)aio,
                       false, false);
            CHECK(d != NULL);
            if (!d)
                continue;
            many(d, 1000, true);
            many(d, 3000, true);    /* beyond the CQ limit: the pending list */
            blk_close(d);
        }
    unlink(path);
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), 0);
    many(d, 3000, false);
    blk_close(d);
}

/* Errors from the file come back as -errno: swap the drive's fd for
 * /dev/full (writes: ENOSPC, flush: EINVAL) or a directory (reads: EISDIR). */
static void test_errors(void)
{
    for (int aio = 0; aio < 2; aio++) {
        char path[PATH_MAX];
        struct blk_drive *d;
        struct blk_stats st;
        unsigned char *buf = t_alloc(8192);
        int fd, other;

        CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
        d = t_open(path, BLK_CACHE_WRITEBACK, (enum blk_aio)aio, false, false);
        CHECK(d != NULL);
        fd = t_find_fd(path);
        CHECK(fd >= 0);
        if (!d || fd < 0)
            goto next;
        other = open("/dev/full", O_RDWR);
        CHECK_EQ(dup2(other, fd), fd);
        close(other);
        CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 0, buf, 8192), -ENOSPC);
        CHECK_EQ(t_rw(d, BLK_OP_WRITE, BLK_F_FUA, 4096, buf, 4096), -ENOSPC);
        CHECK_EQ(t_io(d, BLK_OP_FLUSH, 0, 0, NULL, 0, 0), -EINVAL);
        blk_get_stats(d, &st);
        CHECK_EQ(st.errors, 3);
        CHECK_EQ(st.write_bytes, 0);
        /* io_uring holds the file it first used (registered files): swap
         * before a drive's first request, so a second drive for the read */
        blk_close(d);
        d = t_open(path, BLK_CACHE_WRITEBACK, (enum blk_aio)aio, false, false);
        fd = d ? t_find_fd(path) : -1;
        CHECK(fd >= 0);
        if (!d || fd < 0)
            goto next;
        other = open(g_dir, O_RDONLY | O_DIRECTORY);
        CHECK_EQ(dup2(other, fd), fd);
        close(other);
        CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, buf, 8192), -EISDIR);
        blk_get_stats(d, &st);
        CHECK_EQ(st.errors, 1);
next:
        blk_close(d);
        unlink(path);
        free(buf);
    }
}

/* blk_ctx_free from inside a completion callback (the last request). */
static struct blk_ctx *g_ctx2;

static void free_cb(struct blk_req *req, int ret)
{
    (void)req;
    CHECK_EQ(ret, 0);
    CHECK_EQ(blk_ctx_inflight(g_ctx2), 0);
    blk_ctx_free(g_ctx2);
    g_ctx2 = NULL;
    g_calls++;
}

static void test_free_in_callback(void)
{
    char path[PATH_MAX], err[256];
    struct blk_opts no = { .id = "n0", .driver = BLK_DRIVER_NULL, .size = MiB };
    struct blk_drive *drives[3] = { NULL };
    unsigned char buf[4096];
    struct iovec v = { buf, sizeof(buf) };

    CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
    drives[0] = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    drives[1] = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_THREADS, false, false);
    CHECK_EQ(blk_open(&no, &drives[2], err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        struct blk_req req = { .op = BLK_OP_READ, .len = 4096, .iov = &v, .iovcnt = 1,
                               .done_cb = free_cb };
        if (!drives[i])
            continue;
        g_ctx2 = blk_ctx_new(t_loop, err, sizeof(err));
        CHECK(g_ctx2 != NULL);
        g_calls = 0;
        CHECK_EQ(blk_submit(g_ctx2, drives[i], &req), 0);
        blk_ctx_flush(g_ctx2);
        CHECK(t_wait(&g_calls, 1));
        CHECK(g_ctx2 == NULL);
        /* the loop keeps running fine afterwards */
        for (int j = 0; j < 3; j++)
            ev_loop_run_once(t_loop, 0);
        blk_close(drives[i]);
    }
    unlink(path);
}

/* With io_uring_setup blocked (as by a seccomp profile or the sysctl), an
 * aio=io_uring drive still works, through the thread pool. */
static int child_no_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
    char path[PATH_MAX];
    unsigned char w[4096], r[4096];
    struct blk_drive *d;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
        return 77;
    t_setup();
    CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    CHECK(d != NULL);
    if (d) {
        t_fill(w, sizeof(w), 11);
        CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 8192, w, 4096), 0);
        CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 8192, r, 4096), 0);
        CHECK_MEM(r, w, 4096);
        blk_close(d);
    }
    unlink(path);
    t_teardown();
    return test_failures ? 1 : 0;
}

/* Threads: a request submitted with a context that belongs to another thread
 * completes on the submitting thread's own context (blk_ctx_bind_thread); the
 * guard hooks bracket each batch of completions. */
static int guard_depth, guard_batches, guard_bad;

static void guard_enter(void *opaque)
{
    (void)opaque;
    guard_depth++;
    guard_batches++;
}

static void guard_leave(void *opaque)
{
    (void)opaque;
    guard_depth--;
}

struct foreign {
    struct ev_loop *loop;
    struct blk_ctx *ctx;
};

static void *foreign_main(void *opaque)
{
    struct foreign *f = opaque;

    ev_loop_bind_thread(f->loop);
    return NULL;
}

static void guarded_done_cb(struct blk_req *req, int ret)
{
    struct t_done *r = req->opaque;

    if (guard_depth != 1)
        guard_bad++;
    r->calls++;
    r->ret = ret;
}

static void test_threads(void)
{
    struct blk_opts o = { .id = "n1", .driver = BLK_DRIVER_NULL, .size = 1 << 20 };
    struct foreign f;
    struct blk_drive *d;
    struct t_done r = { 0 };
    unsigned char buf[4096];
    struct iovec iov = { buf, sizeof(buf) };
    struct blk_req req = { .op = BLK_OP_READ, .len = sizeof(buf), .iov = &iov, .iovcnt = 1,
                           .done_cb = guarded_done_cb, .opaque = &r };
    char err[256];
    pthread_t t;

    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), 0);
    f.loop = ev_loop_new();
    f.ctx = blk_ctx_new(f.loop, err, sizeof(err));
    CHECK(f.loop && f.ctx);
    /* hand f's loop to another thread (which then ends: its loop never runs) */
    CHECK_EQ(pthread_create(&t, NULL, foreign_main, &f), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    blk_ctx_bind_thread(t_ctx);
    blk_ctx_set_guard(t_ctx, guard_enter, guard_leave, NULL);
    CHECK_EQ(blk_submit(f.ctx, d, &req), 0);
    CHECK_EQ(blk_ctx_inflight(f.ctx), 0);   /* went to this thread's context */
    CHECK_EQ(blk_ctx_inflight(t_ctx), 1);
    CHECK(t_wait(&r.calls, 1));
    CHECK_EQ(r.ret, 0);
    CHECK_EQ(blk_ctx_inflight(t_ctx), 0);
    CHECK(guard_batches >= 1);
    CHECK_EQ(guard_bad, 0);
    CHECK_EQ(guard_depth, 0);
    /* the context's own thread submits through it as usual */
    r.calls = 0;
    CHECK_EQ(blk_submit(t_ctx, d, &req), 0);
    CHECK_EQ(blk_ctx_inflight(t_ctx), 1);
    CHECK(t_wait(&r.calls, 1));
    blk_ctx_set_guard(t_ctx, NULL, NULL, NULL);
    blk_ctx_bind_thread(NULL);
    blk_ctx_free(f.ctx);
    ev_loop_free(f.loop);
    blk_close(d);
}

/* Registered files: a ring registers a drive's file at its first request and
 * names the slot from then on; closing the drive empties the slot (the ring
 * no longer holds the file open); a later drive reuses the number. */
static void test_fixed_files(void)
{
    char path[PATH_MAX], path2[PATH_MAX];
    unsigned char w[4096], r[4096];
    struct blk_drive *d, *d2;
    int fd, other, lfd;

    CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
    CHECK_EQ(t_make_file(g_dir, MiB, path2, sizeof(path2)), 0);
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    CHECK(d != NULL);
    if (!d)
        return;
    if (!blk_ctx_fixed_files(t_ctx) && t_is_tmpfs(g_dir)) {
        fprintf(stderr, "  tmpfs images are served inline, not by io_uring; skipped\n");
        blk_close(d);
        unlink(path);
        unlink(path2);
        return;
    }
    CHECK_EQ(blk_ctx_fixed_files(t_ctx), 0);            /* nothing submitted yet */
    t_fill(w, sizeof(w), 21);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 0, w, 4096), 0);
    CHECK_EQ(blk_ctx_fixed_files(t_ctx), 1);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, r, 4096), 0);
    CHECK_MEM(r, w, 4096);
    CHECK_EQ(blk_ctx_fixed_files(t_ctx), 1);
    /* The ring holds the file itself: with the drive's own fd pointed
     * elsewhere, a write lease (granted only when nobody else has the file
     * open) is still refused; once the drive is closed it is granted. */
    fd = t_find_fd(path);
    CHECK(fd >= 0);
    other = open("/dev/null", O_RDWR);
    CHECK(other >= 0 && dup2(other, fd) == fd);
    close(other);
    lfd = open(path, O_RDWR);
    CHECK(lfd >= 0);
    CHECK_EQ(fcntl(lfd, F_SETLEASE, F_WRLCK), -1);
    close(lfd);
    blk_close(d);
    CHECK_EQ(blk_ctx_fixed_files(t_ctx), 0);
    lfd = open(path, O_RDWR);
    CHECK(lfd >= 0);
    CHECK_EQ(fcntl(lfd, F_SETLEASE, F_WRLCK), 0);
    fcntl(lfd, F_SETLEASE, F_UNLCK);
    close(lfd);
    unlink(path);
    /* a second drive gets the slot back and works */
    d2 = t_open(path2, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    CHECK(d2 != NULL);
    if (d2) {
        t_fill(w, sizeof(w), 22);
        CHECK_EQ(t_rw(d2, BLK_OP_WRITE, 0, 4096, w, 4096), 0);
        CHECK_EQ(t_rw(d2, BLK_OP_READ, 0, 4096, r, 4096), 0);
        CHECK_MEM(r, w, 4096);
        CHECK_EQ(blk_ctx_fixed_files(t_ctx), 1);
        blk_close(d2);
    }
    CHECK_EQ(blk_ctx_fixed_files(t_ctx), 0);
    unlink(path2);
}

/* Ramp-up submission: with O_DIRECT, 32 requests queued in one go reach the
 * kernel in growing batches as they are queued (1, 1, 1, 2, 3, 4, 6, 9: eight
 * calls before the loop runs, the last 5 at the end of the round); buffered,
 * they wait for the end of the round and go in one call. Either way every
 * request completes with the right data. */
static void test_ramp(void)
{
    enum { N = 32 };
    static const uint64_t before_round[2] = { 0, 8 };
    char path[PATH_MAX];
    unsigned char *w = t_alloc(N * 4096), *r = t_alloc(N * 4096);

    CHECK_EQ(t_make_file(g_dir, MiB, path, sizeof(path)), 0);
    t_fill(w, N * 4096, 31);
    for (int c = 0; c < 2; c++) {
        struct blk_drive *d = t_open(path, c ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK,
                                     BLK_AIO_IO_URING, false, false);
        struct t_done done[N];
        struct iovec v[N];
        struct blk_req req[N];
        uint64_t base;

        CHECK(d != NULL);
        if (!d)
            continue;
        for (int op = 0; op < 2; op++) {
            memset(done, 0, sizeof(done));
            base = blk_ctx_submit_calls(t_ctx);
            for (int i = 0; i < N; i++) {
                unsigned char *buf = (op ? r : w) + i * 4096;

                v[i] = (struct iovec){ .iov_base = buf, .iov_len = 4096 };
                req[i] = (struct blk_req){ .op = op ? BLK_OP_READ : BLK_OP_WRITE,
                                           .offset = (uint64_t)i * 8192, .len = 4096,
                                           .iov = &v[i], .iovcnt = 1, .done_cb = t_done_cb,
                                           .opaque = &done[i] };
                CHECK_EQ(blk_submit(t_ctx, d, &req[i]), 0);
            }
            if (blk_ctx_fixed_files(t_ctx) || c) {   /* tmpfs is served inline */
                CHECK_EQ(blk_ctx_submit_calls(t_ctx) - base, before_round[c]);
                CHECK_EQ(blk_ctx_inflight(t_ctx), N);
            }
            for (int i = 0; i < N; i++) {
                CHECK(t_wait(&done[i].calls, 1));
                CHECK_EQ(done[i].ret, 0);
            }
            if (blk_ctx_fixed_files(t_ctx) || c)
                CHECK_EQ(blk_ctx_submit_calls(t_ctx) - base, before_round[c] + 1);
        }
        CHECK_MEM(r, w, N * 4096);
        memset(r, 0, N * 4096);
        blk_close(d);
    }
    unlink(path);
    free(w);
    free(r);
}

static void test_uring_fallback(void)
{
    pid_t pid;
    int status;

    fflush(stderr);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(child_no_uring());
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        fprintf(stderr, "  seccomp unavailable; skipped\n");
    else
        CHECK_EQ(WEXITSTATUS(status), 0);
}

int main(void)
{
    g_dir = t_disk_dir();
    if (!g_dir)
        return 77;
    t_setup();
    RUN_TEST(test_open_errors);
    RUN_TEST(test_validation);
    RUN_TEST(test_null);
    RUN_TEST(test_memory);
    RUN_TEST(test_concurrent);
    RUN_TEST(test_errors);
    RUN_TEST(test_free_in_callback);
    RUN_TEST(test_threads);
    RUN_TEST(test_fixed_files);
    RUN_TEST(test_ramp);
    t_teardown();
    RUN_TEST(test_uring_fallback);
    return test_exit();
}

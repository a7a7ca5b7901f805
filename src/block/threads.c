/* Thread-pool engine: a small fixed set of workers shared by all contexts runs
 * blk_file_exec(); each result goes back to the submitting context's queue and
 * its eventfd wakes that context's loop thread. */
#include "block/blk_int.h"

#include "util/log.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BLK_POOL_DEFAULT 4
#define BLK_POOL_MAX     64

static struct {
    pthread_mutex_t admin;      /* users, start/stop (never taken by workers) */
    pthread_mutex_t lock;       /* work, stop, threads */
    pthread_cond_t cond;
    struct blk_fifo work;
    pthread_t *threads;
    unsigned nthreads;
    unsigned want;
    unsigned users;             /* live contexts */
    bool stop;
} g_blk_pool = {
    .admin = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .want = BLK_POOL_DEFAULT,
};

void blk_set_pool_size(unsigned nthreads)
{
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > BLK_POOL_MAX)
        nthreads = BLK_POOL_MAX;
    pthread_mutex_lock(&g_blk_pool.lock);
    g_blk_pool.want = nthreads;
    pthread_mutex_unlock(&g_blk_pool.lock);
}

/* Hand a result to its context. The eventfd write happens under done_lock so
 * that a context seen idle by its owner is never touched again by us. */
static void deliver(struct blk_ctx *ctx, struct blk_req *req, int ret)
{
    pthread_mutex_lock(&ctx->done_lock);
    bool was_empty = ctx->done.count == 0;
    blk_fifo_push(&ctx->done, (struct blk_qent){ .req = req, .ctx = ctx, .ret = ret });
    if (was_empty)
        eventfd_write(ctx->done_efd, 1);
    pthread_mutex_unlock(&ctx->done_lock);
}

static void *worker_main(void *arg)
{
    struct blk_qent e;

    (void)arg;
    pthread_mutex_lock(&g_blk_pool.lock);
    for (;;) {
        while (!g_blk_pool.stop && !g_blk_pool.work.count)
            pthread_cond_wait(&g_blk_pool.cond, &g_blk_pool.lock);
        if (!blk_fifo_pop(&g_blk_pool.work, &e))
            break;                  /* stopping, and nothing left */
        pthread_mutex_unlock(&g_blk_pool.lock);
        deliver(e.ctx, e.req, blk_file_exec(e.req));
        pthread_mutex_lock(&g_blk_pool.lock);
    }
    pthread_mutex_unlock(&g_blk_pool.lock);
    blk_file_thread_cleanup();
    return NULL;
}

/* Called with g_blk_pool.lock held. */
static int pool_start(void)
{
    sigset_t all, old;
    unsigned n = g_blk_pool.want;
    int ret = 0;

    g_blk_pool.threads = calloc(n, sizeof(pthread_t));
    if (!g_blk_pool.threads)
        return -ENOMEM;
    /* Signals belong to the main thread (signalfd etc.), not to workers. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < n; i++) {
        ret = -pthread_create(&g_blk_pool.threads[i], NULL, worker_main, NULL);
        if (ret < 0)
            break;
        g_blk_pool.nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!g_blk_pool.nthreads) {
        free(g_blk_pool.threads);
        g_blk_pool.threads = NULL;
        return ret;
    }
    if (ret < 0)
        log_warn("block thread pool: started %u of %u workers", g_blk_pool.nthreads, n);
    return 0;
}

static void pool_stop(void)
{
    pthread_mutex_lock(&g_blk_pool.lock);
    g_blk_pool.stop = true;
    pthread_cond_broadcast(&g_blk_pool.cond);
    pthread_mutex_unlock(&g_blk_pool.lock);
    for (unsigned i = 0; i < g_blk_pool.nthreads; i++)
        pthread_join(g_blk_pool.threads[i], NULL);
    pthread_mutex_lock(&g_blk_pool.lock);
    free(g_blk_pool.threads);
    g_blk_pool.threads = NULL;
    g_blk_pool.nthreads = 0;
    g_blk_pool.stop = false;
    blk_fifo_free(&g_blk_pool.work);
    pthread_mutex_unlock(&g_blk_pool.lock);
}

int blk_pool_ref(void)
{
    pthread_mutex_lock(&g_blk_pool.admin);
    g_blk_pool.users++;
    pthread_mutex_unlock(&g_blk_pool.admin);
    return 0;
}

void blk_pool_unref(void)
{
    pthread_mutex_lock(&g_blk_pool.admin);
    /* The last context is gone, so nobody can be submitting: stop the workers
     * (they are started again on demand). */
    if (--g_blk_pool.users == 0 && g_blk_pool.nthreads)
        pool_stop();
    pthread_mutex_unlock(&g_blk_pool.admin);
}

int threads_submit(struct blk_ctx *ctx, struct blk_req *req)
{
    int ret = 0;

    pthread_mutex_lock(&g_blk_pool.lock);
    if (!g_blk_pool.nthreads)
        ret = pool_start();
    if (ret == 0)
        ret = blk_fifo_reserve(&g_blk_pool.work, g_blk_pool.work.count + 1);
    if (ret == 0) {
        blk_fifo_push(&g_blk_pool.work, (struct blk_qent){ .req = req, .ctx = ctx });
        pthread_cond_signal(&g_blk_pool.cond);
    }
    pthread_mutex_unlock(&g_blk_pool.lock);
    return ret;
}

/* Complete what the workers returned (loop thread). Only what was queued when
 * we started: if more arrived, poke the eventfd so we come back next round. */
void threads_ctx_drain(struct blk_ctx *ctx)
{
    struct blk_qent batch[64];
    uint32_t left, n;

    pthread_mutex_lock(&ctx->done_lock);
    left = ctx->done.count;
    pthread_mutex_unlock(&ctx->done_lock);
    while (left) {
        n = 0;
        pthread_mutex_lock(&ctx->done_lock);
        while (n < left && n < 64 && blk_fifo_pop(&ctx->done, &batch[n]))
            n++;
        pthread_mutex_unlock(&ctx->done_lock);
        if (!n)
            break;
        left -= n;
        for (uint32_t i = 0; i < n; i++)
            blk_complete(ctx, batch[i].req, batch[i].ret);
    }
    if (ctx->free_pending)
        return;
    pthread_mutex_lock(&ctx->done_lock);
    if (ctx->done.count)
        eventfd_write(ctx->done_efd, 1);
    pthread_mutex_unlock(&ctx->done_lock);
}

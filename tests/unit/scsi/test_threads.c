/* The SCSI lock's two modes (scsi.h, Threading) and the layer under them.
 * - I/O threads hold the lock shared and are inside at the same time; an
 *   exclusive holder keeps them out and waits for them.
 * - Two I/O threads write and read back their own blocks of one LU while the
 *   control thread adds unit attentions, resets the LU and runs COMPARE AND
 *   WRITE on it: every command completes exactly once, the data read back is
 *   what was written, READ/WRITE ran on the I/O threads themselves, the rest
 *   on the control thread, and the LU's shares end at zero. */
#include "test.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "scsi_test.h"
#include "scsi/scsi_int.h"
#include "util/loop.h"

static struct ev_loop *g_loop;      /* the control thread's: runs what I/O threads send */

static void hook_unlock(void *opaque)
{
    (void)opaque;
    scsi_unlock();
}

static void hook_lock(void *opaque)
{
    (void)opaque;
    scsi_lock();
}

static bool timed_wait(sem_t *s, int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return sem_timedwait(s, &ts) == 0;
}

/* ------------------------------------------------------------ lock modes */

static sem_t s_in, s_out;
static int g_inside, g_excl_in;

static void *shared_holder(void *arg)
{
    scsi_io_thread_enter((int)(intptr_t)arg);
    scsi_lock();
    scsi_lock();        /* recursive */
    __atomic_add_fetch(&g_inside, 1, __ATOMIC_SEQ_CST);
    sem_post(&s_in);
    sem_wait(&s_out);
    __atomic_sub_fetch(&g_inside, 1, __ATOMIC_SEQ_CST);
    scsi_unlock();
    scsi_unlock();
    return NULL;
}

static void *exclusive_taker(void *arg)
{
    (void)arg;
    scsi_lock();
    /* no I/O thread is inside while an exclusive holder is */
    __atomic_store_n(&g_excl_in, __atomic_load_n(&g_inside, __ATOMIC_SEQ_CST) == 0 ? 1 : -1,
                     __ATOMIC_SEQ_CST);
    scsi_unlock();
    return NULL;
}

static void test_lock_modes(void)
{
    pthread_t a, b, x;
    int sa, sb;

    sem_init(&s_in, 0, 0);
    sem_init(&s_out, 0, 0);
    scsi_lock();
    sa = scsi_io_slot_new(g_loop);
    sb = scsi_io_slot_new(g_loop);
    CHECK(sa >= 0 && sb >= 0 && sa != sb);
    CHECK(!scsi_in_io_thread());
    pthread_create(&a, NULL, shared_holder, (void *)(intptr_t)sa);
    pthread_create(&b, NULL, shared_holder, (void *)(intptr_t)sb);
    /* held exclusively here: neither gets in */
    CHECK(!timed_wait(&s_in, 100));
    CHECK_EQ(__atomic_load_n(&g_inside, __ATOMIC_SEQ_CST), 0);
    scsi_unlock();
    /* both are inside at once: shared holders do not exclude each other */
    CHECK(timed_wait(&s_in, 5000));
    CHECK(timed_wait(&s_in, 5000));
    CHECK_EQ(__atomic_load_n(&g_inside, __ATOMIC_SEQ_CST), 2);
    /* an exclusive taker waits until both have left */
    pthread_create(&x, NULL, exclusive_taker, NULL);
    usleep(100 * 1000);
    CHECK_EQ(__atomic_load_n(&g_excl_in, __ATOMIC_SEQ_CST), 0);
    sem_post(&s_out);
    sem_post(&s_out);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_join(x, NULL);
    CHECK_EQ(__atomic_load_n(&g_excl_in, __ATOMIC_SEQ_CST), 1);
    scsi_lock();
    scsi_io_slot_free(sa);
    scsi_io_slot_free(sb);
    /* freed slots are used again */
    CHECK_EQ(scsi_io_slot_new(g_loop), sa < sb ? sa : sb);
    scsi_io_slot_free(sa < sb ? sa : sb);
    scsi_unlock();
    sem_destroy(&s_in);
    sem_destroy(&s_out);
}

/* ---------------------------------------------------- two I/O threads, one LU */

#define WORKERS 2
#define DEPTH 16            /* commands in flight per worker */
#define ROUNDS 150
#define BLK 4096
#define SECT 512

struct wcmd {
    struct tcmd t;
    struct worker *w;
    uint8_t buf[BLK];
    int done;               /* atomic: times done_cb ran */
    bool on_worker;         /* done_cb ran on the worker's own thread */
};

struct worker {
    struct t_env *e;
    int slot;
    struct blk_ctx *ctx;
    pthread_t tid;
    uint32_t lba0;
    struct wcmd cmds[DEPTH];
    /* results, read by the main thread after the join */
    unsigned on_worker, elsewhere, retries, bad_data, double_done, lost;
};

static int g_workers_left;
static int g_stop;          /* atomic: the control thread has done its part */

static void wcmd_done(struct scsi_cmd *c)
{
    struct wcmd *m = (struct wcmd *)c;

    m->on_worker = pthread_equal(pthread_self(), m->w->tid);
    __atomic_add_fetch(&m->done, 1, __ATOMIC_RELEASE);
}

static void fill(uint8_t *b, unsigned worker, unsigned round, unsigned i)
{
    for (unsigned k = 0; k < BLK; k++)
        b[k] = (uint8_t)(worker * 131 + round * 7 + i * 3 + k);
}

static void wcmd_start(struct worker *w, unsigned i, bool write, unsigned round)
{
    struct wcmd *m = &w->cmds[i];
    uint8_t cdb[10];

    cdb_rw10(cdb, write ? 0x2a : 0x28, w->lba0 + i * (BLK / SECT), BLK / SECT);
    if (write)
        fill(m->buf, (unsigned)w->slot, round, i);
    else
        memset(m->buf, 0xee, BLK);
    tcmd_init(&m->t, 0, 0, cdb, 10, write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV, m->buf, BLK);
    m->t.c.done_cb = wcmd_done;
    m->t.c.blk_ctx = w->ctx;
    m->w = w;
    __atomic_store_n(&m->done, 0, __ATOMIC_RELAXED);
    scsi_bus_submit(w->e->bus, &m->t.c);
}

static bool wcmd_good(const struct wcmd *m)
{
    return m->t.c.host_status == SCSI_HOST_OK && m->t.c.status == SCSI_STATUS_GOOD;
}

/* One phase: every command of the worker, written or read, until each has
 * come back GOOD (unit attentions and resets make some fail: sent again). */
static void worker_phase(struct worker *w, bool write, unsigned round)
{
    bool good[DEPTH] = { false };
    unsigned left = DEPTH;
    int spins = 0;

    scsi_lock();
    for (unsigned i = 0; i < DEPTH; i++)
        wcmd_start(w, i, write, round);
    scsi_unlock();
    while (left) {
        scsi_lock();
        fake_ctx_run(w->ctx, 0);
        for (unsigned i = 0; i < DEPTH; i++) {
            struct wcmd *m = &w->cmds[i];
            int done = __atomic_load_n(&m->done, __ATOMIC_ACQUIRE);

            if (good[i] || !done)
                continue;
            if (done > 1)
                w->double_done++;
            if (m->on_worker)
                w->on_worker++;
            else
                w->elsewhere++;
            if (!wcmd_good(m)) {
                w->retries++;
                wcmd_start(w, i, write, round);
                continue;
            }
            if (!write) {
                uint8_t want[BLK];

                fill(want, (unsigned)w->slot, round, i);
                if (memcmp(want, m->buf, BLK))
                    w->bad_data++;
            }
            good[i] = true;
            left--;
        }
        scsi_unlock();
        if (left && ++spins > 2000000) {
            w->lost += left;
            return;
        }
        if (left)
            sched_yield();
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    scsi_io_thread_enter(w->slot);
    fake_ctx_bind_thread(w->ctx);
    for (unsigned r = 0; (r < ROUNDS || !__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) && !w->lost; r++) {
        worker_phase(w, true, r);
        worker_phase(w, false, r);
    }
    __atomic_sub_fetch(&g_workers_left, 1, __ATOMIC_RELEASE);
    ev_loop_wakeup(g_loop);
    return NULL;
}

static int g_tmfs_done;

static void tmf_done(struct scsi_tmf *tmf)
{
    (void)tmf;
    g_tmfs_done++;
}

#define CYCLES 6

/* The control thread's round: what the I/O threads sent, and its own I/O. */
static void pump(struct t_env *e, int ms)
{
    ev_loop_run_once(g_loop, ms);
    fake_ctx_run(e->ctx, 0);
}

static void test_two_io_threads(void)
{
    struct t_env *e = t_env_new(64 * MiB, SECT, false);
    struct scsi_lun *lu = scsi_bus_find_lun(e->bus, 0, 0);
    static struct worker w[WORKERS];
    struct scsi_tmf tmf;
    unsigned uas = 0, resets = 0, caws = 0, caw_good = 0;
    uint8_t caw_buf[2 * SECT];

    CHECK(lu != NULL);
    fake_ctx_bind_thread(e->ctx);
    scsi_lock();        /* the control thread: exclusive except while its loop waits */
    ev_loop_set_wait_hooks(g_loop, hook_unlock, hook_lock, NULL);
    g_workers_left = WORKERS;
    for (unsigned i = 0; i < WORKERS; i++) {
        w[i] = (struct worker){ .e = e, .ctx = fake_ctx_new(), .lba0 = 8192 * (i + 1) };
        w[i].slot = scsi_io_slot_new(g_loop);
        CHECK(w[i].slot >= 0);
    }
    /* the LU was made before the slots: its shares come with the first
     * command an I/O thread sends over */
    CHECK_EQ(lu->nio, 0);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_create(&w[i].tid, NULL, worker_main, &w[i]);

    memset(caw_buf, 0, sizeof(caw_buf));
    /* while the workers run: cycles of a unit attention, a reset and a
     * COMPARE AND WRITE, with time between them for the workers */
    for (unsigned cycle = 0; cycle < CYCLES; cycle++) {
        uint8_t cdb[16] = { 0x89 };
        struct tcmd t;

        pump(e, 5);
        scsi_lun_ua_add(lu, SENSE_UA_MODE_PARAMS_CHANGED);     /* every nexus */
        uas++;
        pump(e, 5);
        memset(&tmf, 0, sizeof(tmf));
        tmf.type = SCSI_TMF_LOGICAL_UNIT_RESET;
        tmf.done_cb = tmf_done;
        scsi_bus_tmf(e->bus, &tmf);     /* over the workers' commands in flight */
        resets++;
        for (int k = 0; k < 5000 && g_tmfs_done != (int)resets; k++)
            pump(e, 1);
        pump(e, 5);
        /* block 0, 0 -> 0: holds the workers' writes back while it runs */
        cdb[13] = 1;
        tcmd_init(&t, 0, 0, cdb, 16, SCSI_DIR_TO_DEV, caw_buf, sizeof(caw_buf));
        tcmd_submit(e, &t);
        for (int k = 0; k < 5000 && !t.done; k++)
            pump(e, 0);
        caws++;
        caw_good += t.done == 1 && t.c.status == SCSI_STATUS_GOOD;
    }
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&g_workers_left, __ATOMIC_ACQUIRE))
        pump(e, 1);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(w[i].tid, NULL);

    unsigned elsewhere = 0, retries = 0;

    for (unsigned i = 0; i < WORKERS; i++) {
        fprintf(stderr, "worker %u: %u completions on its thread, %u on the control thread, %u sent again\n",
                i, w[i].on_worker, w[i].elsewhere, w[i].retries);
        CHECK_EQ(w[i].lost, 0);
        CHECK_EQ(w[i].double_done, 0);
        CHECK_EQ(w[i].bad_data, 0);
        /* READ/WRITE ran on the worker itself */
        CHECK(w[i].on_worker > ROUNDS * DEPTH);
        elsewhere += w[i].elsewhere;
        retries += w[i].retries;
    }
    /* unit attentions and resets went through the control thread. Not per
     * worker: the unit attention goes to whichever command of the shared
     * nexus comes first, and a reset aborts only what is in flight at that
     * moment, so one worker may, rarely, be hit by none of the six. */
    CHECK(elsewhere > 0);
    CHECK(retries > 0);
    fprintf(stderr, "control: %u unit attentions, %u resets (%d done), %u COMPARE AND WRITE (%u good)\n",
            uas, resets, g_tmfs_done, caws, caw_good);
    CHECK(uas > 0 && resets > 0 && caws > 0);
    CHECK_EQ(g_tmfs_done, (int)resets);
    CHECK(caw_good > 0);
    CHECK_EQ(lu->nio, scsi_io_slots());
    CHECK_EQ(LUN_IO_SUM(lu, ninflight), 0);
    CHECK_EQ(LUN_IO_SUM(lu, nrw), 0);
    CHECK_EQ(LUN_IO_SUM(lu, nwrites), 0);
    CHECK_EQ(LUN_IO_SUM(lu, medium_users), 0);
    CHECK(lu->io0.inflight == NULL);
    for (unsigned i = 0; i < lu->nio; i++)
        CHECK(lu->io[i].inflight == NULL);
    CHECK(lu->deferred == NULL && !lu->excl_active);

    for (unsigned i = 0; i < WORKERS; i++) {
        scsi_io_slot_free(w[i].slot);
        fake_ctx_free(w[i].ctx);
    }
    ev_loop_set_wait_hooks(g_loop, NULL, NULL, NULL);
    scsi_unlock();
    fake_ctx_bind_thread(NULL);
    t_env_free(e);
}

int main(void)
{
    g_loop = ev_loop_new();
    if (!g_loop)
        return 1;
    /* first: its LU is made before any slot exists */
    RUN_TEST(test_two_io_threads);
    RUN_TEST(test_lock_modes);
    ev_loop_free(g_loop);
    return test_exit();
}

/* vscsid restarts without losing a request (issue 5 section 4), at the
 * vhost-user level: the harness keeps the guest RAM, the rings and the
 * inflight buffer (as QEMU does with reconnect-ms) while vscsid is killed
 * and started again with the same options.
 *
 *   kill_midflight   64 x 256 KiB writes in flight, SIGKILL at a random
 *                    moment, restart, reconnect: every write completes once
 *                    (a duplicate used entry fails the harness's check), the
 *                    image holds every write. Rounds: VSCSI_KILL_ROUNDS (4).
 *   resubmit         deterministic: a request the dead daemon "popped" (its
 *                    mark set in the inflight buffer by the test, its avail
 *                    entry consumed) is resubmitted from the buffer, exactly
 *                    once, and work after it flows.
 *   unsignalled_completions  the restarted daemon signals each queue once at
 *                    start (its predecessor may have died between a used entry
 *                    and its interrupt).
 *   sigterm_drains   SIGTERM with writes in flight: they complete before the
 *                    daemon exits 0, nothing stays marked in flight, and a
 *                    restarted daemon serves the rest.
 * Usage: t_robust_restart VSCSID (or env VSCSID). */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "t_common.h"
#include "vuf_int.h"

#define QSIZE        128
#define NREQ         64
#define REQ_BLOCKS   512                    /* 256 KiB */
#define DISK_SIZE    (64ull << 20)

static const struct vuf_vscsid_disk disks[] = {
    { .size = DISK_SIZE, .target = 0, .lun = 0 },
};

/* Our (vscsid's) inflight layout: per queue a 16-byte header and 16 bytes per
 * descriptor, 64-byte aligned (src/vhost/virtq_internal.h). */
struct idesc { uint8_t inflight, pad[5]; uint16_t next; uint64_t counter; };
struct ireg { uint64_t features; uint16_t version, desc_num, last_batch_head, used_idx; struct idesc d[]; };

static uint64_t ireg_bytes(unsigned qs) { return (16 + 16ull * qs + 63) & ~63ull; }

static struct ireg *map_inflight(struct vuf *h, unsigned q, void **base)
{
    if (h->inflight_fd < 0 || !h->inflight_size)
        return NULL;
    *base = mmap(NULL, h->inflight_size, PROT_READ | PROT_WRITE, MAP_SHARED, h->inflight_fd,
                 (off_t)h->inflight_off);
    if (*base == MAP_FAILED)
        return NULL;
    return (struct ireg *)((uint8_t *)*base + q * ireg_bytes(QSIZE));
}

static unsigned count_marked(struct vuf *h)
{
    unsigned n = 0;
    for (unsigned q = 0; q < vuf_num_queues(h); q++) {
        void *base;
        struct ireg *r = map_inflight(h, q, &base);
        if (!r)
            return 0;
        for (unsigned i = 0; i < QSIZE; i++)
            n += r->d[i].inflight != 0;
        munmap(base, h->inflight_size);
    }
    return n;
}

static void kill_daemon(int sig)
{
    kill(g_d.proc.pid, sig);
    for (int i = 0; i < 500 && vuf_proc_alive(&g_d.proc); i++)
        usleep(10000);
}

static struct vuf *open_session(void)
{
    struct vuf_opts o = { .queue_size = QSIZE, .num_queues = 4, .mem_size = 128ull << 20 };
    return session_opts(&o, true);
}

static struct vuf_scsi_req *submit_write(struct vuf *h, unsigned i, const uint8_t *buf,
                                         unsigned flags)
{
    uint8_t cdb[16];
    struct vuf_scsi_io io = { .vq = 2 + (i & 1), .cdb = cdb,
                              .cdb_len = vuf_cdb_rw10(cdb, true, i * REQ_BLOCKS, REQ_BLOCKS),
                              .data_out = buf, .out_len = REQ_BLOCKS * BS, .segs = 4,
                              .flags = VUF_IO_INDIRECT | flags };
    return vuf_scsi_submit(h, &io);
}

/* Submit NREQ writes of REQ_BLOCKS each (two queues), content seeded by round. */
static void submit_writes(struct vuf *h, struct vuf_scsi_req **reqs, uint8_t **bufs, uint32_t seed)
{
    for (unsigned i = 0; i < NREQ; i++) {
        bufs[i] = malloc(REQ_BLOCKS * BS);
        vuf_pattern(bufs[i], REQ_BLOCKS * BS, (uint64_t)i * REQ_BLOCKS * BS, seed);
    }
    /* All at once, one kick per queue: the daemon gets the whole batch. */
    for (unsigned i = 0; i < NREQ; i++) {
        reqs[i] = submit_write(h, i, bufs[i], VUF_IO_NO_KICK);
        CHECK(reqs[i] != NULL);
    }
    vuf_vq_notify(h, 2);
    vuf_vq_notify(h, 3);
}

/* A restarted daemon starts with a power-on unit attention, which the first
 * command (the resubmitted one, often) reports: retry, as the guest does. */
static bool is_ua(const struct vuf_scsi_result *r)
{
    return r->response == 0 && r->status == VUF_SAM_CHECK_CONDITION && vuf_sense_key(r) == 6;
}

/* Every request completes GOOD exactly once; the image then holds the data. */
static void finish_writes(struct vuf *h, struct vuf_scsi_req **reqs, uint8_t **bufs)
{
    for (unsigned i = 0; i < NREQ; i++) {
        struct vuf_scsi_result r;
        if (!reqs[i])
            continue;
        int rc = vuf_scsi_complete(h, reqs[i], &r, 20000);
        for (int retry = 0; rc == 0 && is_ua(&r) && retry < 4; retry++) {
            struct vuf_scsi_req *again = submit_write(h, i, bufs[i], 0);
            CHECK(again != NULL);
            if (!again)
                break;
            rc = vuf_scsi_complete(h, again, &r, 20000);
        }
        if (rc) {
            fprintf(stderr, "  write %u: %s\n", i, strerror(-rc));
            CHECK_EQ(rc, 0);
            vuf_adopt(h, bufs[i]);
            bufs[i] = NULL;
            continue;
        }
        if (r.response || r.status)
            fprintf(stderr, "  write %u: %s\n", i, res_str(&r));
        CHECK_EQ(r.response, 0);
        CHECK_EQ(r.status, 0);
    }
    /* A duplicate completion would show up as a used id nobody waits for. */
    CHECK(vuf_scsi_reap(h, 2) >= 0);
    CHECK(vuf_scsi_reap(h, 3) >= 0);
    for (unsigned i = 0; i < NREQ; i++) {
        if (!bufs[i])
            continue;
        CHECK_EQ(vuf_file_cmp(g_d.img[0], (uint64_t)i * REQ_BLOCKS * BS, bufs[i], REQ_BLOCKS * BS), 0);
        free(bufs[i]);
    }
}

static unsigned g_rounds_with_inflight, g_marked_total;

static void test_kill_midflight(void)
{
    const char *env = getenv("VSCSI_KILL_ROUNDS");
    unsigned rounds = env ? (unsigned)atoi(env) : 4;
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    srand((unsigned)ts.tv_nsec);
    for (unsigned round = 0; round < rounds; round++) {
        struct vuf *h = open_session();
        if (!h)
            return;
        CHECK(vuf_has_protocol_feature(h, VUF_PF_INFLIGHT_SHMFD));
        struct vuf_scsi_req *reqs[NREQ];
        uint8_t *bufs[NREQ];
        submit_writes(h, reqs, bufs, 7000 + round);
        usleep((useconds_t)(rand() % 1500));
        kill_daemon(SIGKILL);
        CHECK(!vuf_proc_alive(&g_d.proc));
        unsigned marked = count_marked(h);
        g_marked_total += marked;
        g_rounds_with_inflight += marked > 0;
        CHECK_EQ(vuf_vscsid_restart(&g_d), 0);
        int rc = vuf_reconnect(h);
        CHECK_EQ(rc, 0);
        if (rc == 0)
            finish_writes(h, reqs, bufs);
        CHECK_EQ(count_marked(h), 0);
        vuf_free(h);
    }
    fprintf(stderr, "  %u kill rounds, %u with requests in flight at the kill (%u marked in all)\n",
            rounds, g_rounds_with_inflight, g_marked_total);
}

static void test_resubmit(void)
{
    struct vuf *h = open_session();
    if (!h)
        return;
    uint8_t cdb[16], w[8 * BS];
    vuf_pattern(w, sizeof(w), 4096 * BS, 4242);
    kill(g_d.proc.pid, SIGSTOP);
    struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = vuf_cdb_rw10(cdb, true, 4096, 8),
                              .data_out = w, .out_len = sizeof(w) };
    struct vuf_scsi_req *req = vuf_scsi_submit(h, &io);
    CHECK(req != NULL);
    /* Play the daemon that popped it: mark its head in the inflight buffer. */
    const struct vuf_vring *ring = vuf_vq_ring(h, 2);
    uint16_t head = ring->avail->ring[(uint16_t)(ring->avail->idx - 1) % ring->size];
    void *base;
    struct ireg *r = map_inflight(h, 2, &base);
    CHECK(r != NULL);
    if (r) {
        CHECK_EQ(r->version, 1);
        r->d[head].counter = 1000;
        __atomic_store_n(&r->d[head].inflight, 1, __ATOMIC_RELEASE);
        munmap(base, h->inflight_size);
    }
    kill_daemon(SIGKILL);
    CHECK_EQ(vuf_vscsid_restart(&g_d), 0);
    CHECK_EQ(vuf_reconnect(h), 0);
    struct vuf_scsi_result res;
    CHECK_EQ(vuf_scsi_complete(h, req, &res, 10000), 0);
    /* Completed once by the new daemon: GOOD, or its power-on UA (then retry). */
    CHECK(res.status == 0 || is_ua(&res));
    if (is_ua(&res)) {
        io.tag = 0;
        req = vuf_scsi_submit(h, &io);
        CHECK(req != NULL);
        CHECK_EQ(vuf_scsi_complete(h, req, &res, 10000), 0);
        CHECK_EQ(res.status, 0);
    }
    CHECK_EQ(vuf_file_cmp(g_d.img[0], 4096ull * BS, w, sizeof(w)), 0);
    /* The avail entry was skipped, not executed a second time; later work flows. */
    uint8_t rd[8 * BS];
    CHECK_EQ(rw10(h, 0, 0, false, 4096, 8, rd), 0);
    CHECK_MEM(rd, w, sizeof(w));
    CHECK_EQ(vuf_scsi_reap(h, 2), 0);
    CHECK_EQ(count_marked(h), 0);
    vuf_free(h);
}

/* Killed after publishing used entries, before signalling them: the guest
 * would wait forever (seen with QEMU 10 and a Linux guest). The restarted
 * daemon signals every queue once at start. */
static void test_unsignalled_completions(void)
{
    struct vuf *h = open_session();
    if (!h)
        return;
    uint8_t d[BS];
    rw10(h, 0, 0, false, 0, 1, d);
    int call = vuf_vq_ring(h, 2)->call_fd;
    uint64_t v;
    while (read(call, &v, 8) == 8)
        ;
    kill_daemon(SIGKILL);
    /* What the dead daemon did not signal: a used entry for a posted read. */
    CHECK_EQ(vuf_vscsid_restart(&g_d), 0);
    CHECK_EQ(vuf_reconnect(h), 0);
    bool signalled = false;
    for (int i = 0; i < 100 && !signalled; i++) {
        signalled = read(call, &v, 8) == 8;
        if (!signalled)
            usleep(10000);
    }
    CHECK(signalled);
    vuf_scsi_clear_ua(h, 0, 0);
    rw10(h, 0, 0, false, 0, 1, d);
    vuf_free(h);
}

static void test_sigterm_drains(void)
{
    struct vuf *h = open_session();
    if (!h)
        return;
    struct vuf_scsi_req *reqs[NREQ];
    uint8_t *bufs[NREQ];
    submit_writes(h, reqs, bufs, 9100);
    usleep(1000);
    CHECK_EQ(vuf_vscsid_stop(&g_d), 0);           /* SIGTERM: exit 0 after the drain */
    CHECK_EQ(count_marked(h), 0);                 /* nothing popped was left behind */
    CHECK_EQ(vuf_vscsid_restart(&g_d), 0);
    int rc = vuf_reconnect(h);
    CHECK_EQ(rc, 0);
    if (rc == 0)
        finish_writes(h, reqs, bufs);
    vuf_free(h);
}

int main(int argc, char **argv)
{
    start_daemon(argc, argv, disks, 1, NULL);
    RUN(test_resubmit);
    RUN(test_kill_midflight);
    RUN(test_unsignalled_completions);
    RUN(test_sigterm_drains);
    check_serves();
    return finish();
}

/* Interrupt coalescing (--coalesce-us N, and auto). With it, completions reach the used
 * ring at once but the guest's signal waits for the queue's timer and then
 * covers all of them; without it, every completion round is signalled as it
 * ends. The window is 1 s, far longer than the test's own steps, so "not
 * signalled yet" does not depend on timing; the bounds for "signalled" are
 * generous. A bad value is refused with a message. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_common.h"

#define NCMD 4

static uint8_t rbuf[NCMD][8 * BS];

static const struct vuf_vscsid_disk disks[] = {
    { .size = 8 << 20, .target = 0, .lun = 0 },
};

/* The call eventfd of the first request queue: its count if it was signalled
 * within timeout_ms (and reset), else 0. */
static uint64_t call_count(struct vuf *h, int timeout_ms)
{
    const struct vuf_vring *r = vuf_vq_ring(h, VUF_SCSI_REQQ);
    struct pollfd p = { .fd = r ? r->call_fd : -1, .events = POLLIN };
    uint64_t v = 0;

    if (!r || poll(&p, 1, timeout_ms) != 1 || read(p.fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

/* NCMD READs in one kick, after taking any signal the session's set-up left;
 * returns how many are in the used ring once all are (or after 2 s). */
static unsigned submit_reads(struct vuf *h, struct vuf_scsi_req **req)
{
    uint8_t cdb[NCMD][16];
    uint16_t used0;
    unsigned n = 0;

    call_count(h, 0);
    used0 = vuf_vq_used_idx(h, VUF_SCSI_REQQ);
    vuf_vq_set_interrupts(h, VUF_SCSI_REQQ, true);
    for (unsigned i = 0; i < NCMD; i++) {
        struct vuf_scsi_io io = { .cdb = cdb[i], .cdb_len = 10, .data_in = rbuf[i], .in_len = 8 * BS,
                                  .flags = VUF_IO_NO_KICK };

        vuf_cdb_rw10(cdb[i], false, 8 * i, 8);
        req[i] = vuf_scsi_submit(h, &io);
        CHECK(req[i] != NULL);
    }
    CHECK(vuf_vq_kick(h, VUF_SCSI_REQQ) >= 0);
    for (int ms = 0; ms < 2000; ms++) {
        n = (uint16_t)(vuf_vq_used_idx(h, VUF_SCSI_REQQ) - used0);
        if (n >= NCMD)
            break;
        usleep(1000);
    }
    return n;
}

static void collect(struct vuf *h, struct vuf_scsi_req **req)
{
    for (unsigned i = 0; i < NCMD; i++) {
        struct vuf_scsi_result res;

        if (!req[i])
            continue;
        CHECK_EQ(vuf_scsi_complete(h, req[i], &res, 2000), 0);
        CHECK_EQ(res.response, 0);
        CHECK_EQ(res.status, 0);
    }
}

static void test_held_then_one_signal(void)
{
    struct vuf *h = session();
    struct vuf_scsi_req *req[NCMD] = { NULL };

    if (!h)
        return;
    CHECK_EQ(submit_reads(h, req), NCMD);
    /* all completed, none signalled: the timer holds the signal */
    CHECK_EQ(call_count(h, 0), 0);
    /* then one signal covers the four */
    CHECK_EQ(call_count(h, 5000), 1);
    CHECK_EQ(call_count(h, 500), 0);
    collect(h, req);
    vuf_free(h);
}

static void test_signal_at_once(void)
{
    struct vuf *h = session();
    struct vuf_scsi_req *req[NCMD] = { NULL };

    if (!h)
        return;
    CHECK_EQ(submit_reads(h, req), NCMD);
    /* signalled with the first completion, not a window later */
    CHECK(call_count(h, 200) >= 1);
    collect(h, req);
    vuf_free(h);
}

/* --coalesce-us auto with a guest that sends one READ at a time and waits
 * for its signal: 400 of them cover the epochs without holding, with holding
 * (cut short: holding makes this guest slower) and after. Every completion is
 * signalled, within the hold, whichever phase the queue is in. */
static void test_auto(void)
{
    struct vuf *h = session();
    unsigned signalled = 0, n = 400;

    if (!h)
        return;
    vuf_vq_set_interrupts(h, VUF_SCSI_REQQ, true);
    for (unsigned i = 0; i < n; i++) {
        uint8_t cdb[16];
        struct vuf_scsi_io io = { .cdb = cdb, .cdb_len = 10, .data_in = rbuf[0], .in_len = 8 * BS };
        struct vuf_scsi_req *r;
        struct vuf_scsi_result res;

        call_count(h, 0);
        vuf_cdb_rw10(cdb, false, 8 * (i % 16), 8);
        r = vuf_scsi_submit(h, &io);
        CHECK(r != NULL);
        if (!r)
            break;
        signalled += call_count(h, 1000) >= 1;
        CHECK_EQ(vuf_scsi_complete(h, r, &res, 2000), 0);
        CHECK_EQ(res.status, 0);
    }
    CHECK_EQ(signalled, n);
    vuf_free(h);
}

static void test_bad_value(void)
{
    char cmd[600];
    int st;

    snprintf(cmd, sizeof(cmd), "'%s' --socket /nonexistent/s --coalesce-us 1000001 2>&1 | "
             "grep -q -- '--coalesce-us 1000001: expected microseconds'", g_exe);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(cmd, sizeof(cmd), "'%s' --socket /nonexistent/s --coalesce-us x 2>&1 | "
             "grep -q -- 'to 1000000, or auto'", g_exe);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(cmd, sizeof(cmd), "'%s' --socket /nonexistent/s --coalesce-us x >/dev/null 2>&1", g_exe);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0);
}

int main(int argc, char **argv)
{
    static const char *const coalesce_on[] = { "--coalesce-us", "1000000", NULL };
    static const char *const coalesce_off[] = { "--coalesce-us", "0", NULL };
    static const char *const coalesce_auto[] = { "--coalesce-us", "auto", NULL };

    start_daemon(argc, argv, disks, 1, coalesce_on);
    RUN(test_held_then_one_signal);
    stop_daemon();
    start_daemon(argc, argv, disks, 1, coalesce_auto);
    RUN(test_auto);
    stop_daemon();
    start_daemon(argc, argv, disks, 1, coalesce_off);
    RUN(test_signal_at_once);
    RUN(test_bad_value);
    return finish();
}

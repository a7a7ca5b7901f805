/* Hostile guests, beyond t_hostile_ring/t_hostile_msg (issue 5 section 5):
 *
 *   tmf_flood          20000 ABORT TASK / QUERY TASK TMFs for tags that were never
 *                      used, one at a time and in full-ring bursts: each answered
 *                      (FUNCTION COMPLETE / SUCCEEDED / REJECTED), I/O goes on.
 *   head_reuse         a head made available again while the daemon still holds it:
 *                      that queue stops (marked broken), nothing completes twice, the
 *                      other request queue and the next session work.
 *   cdb_length_claims  a 64 KiB device-readable header (a driver that believes the CDB
 *                      field is 64 KiB), variable-length CDBs (0x7F) claiming 255
 *                      additional bytes, and a header cut inside the CDB: answered with
 *                      an error, never read past what was posted.
 *   reset_mid_io       RESET_DEVICE, LOGICAL UNIT RESET and I_T NEXUS RESET while 64
 *                      large reads and writes are in flight: every request completes
 *                      once (or is aborted), the device resets and serves again.
 *   (1024-entry indirect tables of 1-byte buffers, descriptors changed after posting
 *   and never-posted event buffers are in t_hostile_ring.)
 * All of it with the daemon's RSS measured (VmRSS) before and after: it must stay
 * within RSS_SLACK_MB. Usage: t_robust_hostile VSCSID (or env VSCSID). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "t_common.h"

#define RSS_SLACK_MB 48

static const struct vuf_vscsid_disk disks[] = {
    { .size = 32 << 20, .target = 0, .lun = 0 },
    { .size = 32 << 20, .target = 0, .lun = 1 },
};

static struct vuf *hsession(unsigned qsize)
{
    struct vuf_opts o = { .mem_size = 64 << 20, .queue_size = qsize, .num_queues = 4 };
    return session_opts(&o, true);
}

static void fill_tmf(struct vuf_scsi_tmf_req *t, uint32_t subtype, unsigned lun, uint64_t tag)
{
    memset(t, 0, sizeof(*t));
    t->type = 0;                                  /* VIRTIO_SCSI_T_TMF */
    t->subtype = subtype;
    vuf_scsi_lun(t->lun, 0, lun);
    t->tag = tag;
}

static void test_tmf_flood(void)
{
    struct vuf *h = hsession(128);
    if (!h)
        return;
    unsigned bad = 0;
    /* one at a time */
    for (unsigned i = 0; i < 4000; i++) {
        uint8_t resp = 0xff;
        uint32_t sub = (i & 1) ? VUF_TMF_QUERY_TASK : VUF_TMF_ABORT_TASK;
        int rc = vuf_scsi_tmf(h, sub, 0, i % 3, 0x1000000ull + i * 7919ull, &resp);
        if (rc || (resp != VUF_SCSI_S_FUNCTION_COMPLETE && resp != VUF_SCSI_S_FUNCTION_SUCCEEDED &&
                   resp != VUF_SCSI_S_FUNCTION_REJECTED && resp != VUF_SCSI_S_INCORRECT_LUN)) {
            if (bad++ < 3)
                fprintf(stderr, "  TMF %u: rc %d response %u\n", i, rc, resp);
        }
    }
    CHECK_EQ(bad, 0);
    /* bursts: the whole control ring full of TMFs, one kick */
    enum { BURST = 60 };           /* 2 descriptors each: a full 128-entry ring */
    uint64_t reqs = vuf_alloc(h, BURST * 64ull, 64);
    CHECK(reqs != VUF_GPA_NONE);
    unsigned answered = 0;
    for (unsigned round = 0; round < 16000 / BURST && reqs != VUF_GPA_NONE; round++) {
        for (unsigned i = 0; i < BURST; i++) {
            uint64_t g = reqs + i * 64ull;
            fill_tmf(vuf_ptr(h, g, 24), VUF_TMF_ABORT_TASK, 0, ((uint64_t)round << 32) | i);
            *(uint8_t *)vuf_ptr(h, g + 32, 1) = 0xff;
            struct vuf_sg sg[2] = { { g, 24, false }, { g + 32, 1, true } };
            CHECK(vuf_vq_add(h, 0, sg, 2, (void *)(uintptr_t)(i + 1), 0) >= 0);
        }
        vuf_vq_kick(h, 0);
        unsigned got = 0;
        int64_t end = vuf_now_ms() + 5000;
        while (got < BURST && vuf_now_ms() < end) {
            void *tok;
            uint32_t len;
            int rc = vuf_vq_get_used(h, 0, &tok, &len);
            if (rc == 1) {
                got++;
                continue;
            }
            CHECK(rc == 0);
            if (rc < 0 || vuf_vq_wait(h, 0, 1000) < 0)
                break;
        }
        answered += got;
        if (got != BURST) {
            fprintf(stderr, "  burst %u: %u of %u TMFs answered\n", round, got, BURST);
            CHECK_EQ(got, BURST);
            break;
        }
    }
    fprintf(stderr, "  4000 single + %u burst TMFs for unknown tags answered\n", answered);
    uint8_t d[BS];
    rw10(h, 0, 0, false, 0, 1, d);
    vuf_free(h);
    check_serves();
}

static void set_desc(struct vuf *h, unsigned vq, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    struct vuf_desc *d = &vuf_vq_ring(h, vq)->desc[i];
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

/* READ(10) of `blocks` at lba laid out as header / response / data, chained
 * through descriptors id[0..2]. */
static void raw_read(struct vuf *h, unsigned vq, const uint16_t *id, uint32_t lba, uint16_t blocks)
{
    uint64_t hdr = vuf_alloc(h, 64, 64), resp = vuf_alloc(h, 128, 64);
    uint64_t data = vuf_alloc(h, (uint64_t)blocks * BS, 4096);
    uint8_t cdb[10], lun[8];
    vuf_cdb_rw10(cdb, false, lba, blocks);
    vuf_scsi_lun(lun, 0, 0);
    vuf_scsi_fill_req(vuf_ptr(h, hdr, 51), lun, 77, cdb, 10);
    set_desc(h, vq, id[0], hdr, 51, VUF_DESC_F_NEXT, id[1]);
    set_desc(h, vq, id[1], resp, 108, VUF_DESC_F_WRITE | VUF_DESC_F_NEXT, id[2]);
    set_desc(h, vq, id[2], data, (uint32_t)blocks * BS, VUF_DESC_F_WRITE, 0);
}

static void test_head_reuse(void)
{
    struct vuf *h = hsession(128);
    if (!h)
        return;
    uint16_t id[3];
    CHECK_EQ(vuf_vq_take_descs(h, 2, 3, id), 0);
    raw_read(h, 2, id, 0, 2048);                 /* 1 MiB: still in flight when popped again */
    /* The daemon sees both entries in one go: stop it while posting. */
    kill(g_d.proc.pid, SIGSTOP);
    vuf_vq_raw_avail(h, 2, id[0]);
    vuf_vq_raw_avail(h, 2, id[0]);
    vuf_vq_notify(h, 2);
    kill(g_d.proc.pid, SIGCONT);
    unsigned used = 0;
    for (int i = 0; i < 10; i++) {
        uint32_t uid, ulen;
        if (vuf_vq_wait(h, 2, 200) == 1)
            while (vuf_vq_raw_get_used(h, 2, &uid, &ulen) == 1) {
                CHECK_EQ(uid, id[0]);
                used++;
            }
    }
    fprintf(stderr, "  head %u posted twice while in flight: used %u time(s)\n", id[0], used);
    CHECK(used <= 1);
    /* The other request queue carries on. */
    uint8_t cdb[10], d[BS];
    struct vuf_scsi_result r;
    vuf_cdb_rw10(cdb, false, 8, 1);
    struct vuf_scsi_io io = { .vq = 3, .cdb = cdb, .cdb_len = 10, .data_in = d, .in_len = BS };
    CHECK_EQ(vuf_scsi_do(h, &io, &r), 0);
    CHECK_EQ(r.status, 0);
    CHECK(vuf_stop(h) == 0);                     /* the frontend can still stop it */
    vuf_free(h);
    check_serves();
}

/* Send a request whose device-readable part is `out` (header + whatever the
 * driver believes follows), with a response and a data-in buffer. */
static int send_claim(struct vuf *h, const void *out, uint32_t out_len, struct vuf_scsi_cmd_resp *resp)
{
    uint64_t o = vuf_alloc(h, out_len, 64), r = vuf_alloc(h, 128 + 64, 64), d = vuf_alloc(h, 4096 + 64, 64);
    if (o == VUF_GPA_NONE || r == VUF_GPA_NONE || d == VUF_GPA_NONE)
        return -ENOMEM;
    memcpy(vuf_ptr(h, o, out_len), out, out_len);
    memset(vuf_ptr(h, r, 192), 0xa5, 192);
    memset(vuf_ptr(h, d, 4160), 0xa5, 4160);
    struct vuf_sg sg[3] = { { o, out_len, false }, { r, 108, true }, { d, 4096, true } };
    int head = vuf_vq_add(h, 2, sg, 3, (void *)1, 0);
    if (head < 0)
        return head;
    vuf_vq_kick(h, 2);
    uint32_t len = 0;
    int rc = vuf_vq_wait_token(h, 2, (void *)1, &len, 3000);
    if (rc <= 0)
        return rc ? rc : -ETIMEDOUT;
    memcpy(resp, vuf_ptr(h, r, 108), sizeof(*resp));
    /* nothing past the 108-byte response or the 4 KiB data buffer */
    const uint8_t *canary = vuf_ptr(h, r + 108, 84), *dcan = vuf_ptr(h, d + 4096, 64);
    for (int i = 0; i < 64; i++)
        if (canary[i] != 0xa5 || dcan[i] != 0xa5)
            return -EOVERFLOW;
    return 0;
}

static void test_cdb_length_claims(void)
{
    struct vuf *h = hsession(128);
    if (!h)
        return;
    uint8_t lun[8];
    vuf_scsi_lun(lun, 0, 0);
    struct { const char *what; uint8_t cdb[32]; uint32_t out_len; } cases[] = {
        /* INQUIRY, but the readable part is 64 KiB: the rest is data-out for a data-in command */
        { "64 KiB header for INQUIRY", { 0x12, 0, 0, 0, 36, 0 }, 65536 },
        { "64 KiB header for TEST UNIT READY", { 0 }, 65536 },
        /* variable-length CDB: additional length 255 (8 + 255 bytes) in a 32-byte field */
        { "0x7F additional CDB length 255", { 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0x09, 0x08 }, 51 },
        { "0x7F READ(32) claims, 64 KiB header", { 0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0x00, 0x09 }, 65536 },
        { "0x7E extended CDB length 0xFF", { 0x7e, 0, 0xff, 0xff }, 51 },
        { "header cut at 20 bytes (inside the CDB)", { 0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0 }, 20 },
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *out = calloc(1, cases[i].out_len);
        struct vuf_scsi_cmd_req req;
        vuf_scsi_fill_req(&req, lun, 500 + i, cases[i].cdb, 32);
        memcpy(out, &req, cases[i].out_len < 51 ? cases[i].out_len : 51);
        memset(out + (cases[i].out_len > 51 ? 51 : cases[i].out_len), 0xff,
               cases[i].out_len > 51 ? cases[i].out_len - 51 : 0);
        struct vuf_scsi_cmd_resp resp = { 0 };
        int rc = send_claim(h, out, cases[i].out_len, &resp);
        free(out);
        if (rc == 0)
            fprintf(stderr, "  %s: response %u status 0x%02x sense %02x/%02x\n", cases[i].what,
                    resp.response, resp.status, resp.sense_len ? resp.sense[2] & 0xf : 0,
                    resp.sense_len ? resp.sense[12] : 0);
        else
            fprintf(stderr, "  %s: %s\n", cases[i].what, strerror(-rc));
        CHECK(rc != -EOVERFLOW);
        if (rc == -ETIMEDOUT || rc == -ECONNRESET || vuf_peer_closed(h, 0)) {
            /* a stuck queue or closed session is allowed; start over */
            vuf_free(h);
            h = hsession(128);
            if (!h)
                return;
        }
    }
    vuf_free(h);
    check_serves();
}

/* 64 large requests in flight, then reset by `how`: every request completes at
 * most once; after the reset the device serves again. */
static void test_reset_mid_io(void)
{
    const char *names[] = { "RESET_DEVICE", "LOGICAL UNIT RESET", "I_T NEXUS RESET" };
    for (unsigned how = 0; how < 3; how++) {
        struct vuf *h = hsession(256);
        if (!h)
            return;
        enum { N = 64, BLOCKS = 512 };
        struct vuf_scsi_req *reqs[N];
        uint8_t *bufs[N];
        for (unsigned i = 0; i < N; i++) {
            uint8_t cdb[10];
            bufs[i] = malloc(BLOCKS * BS);
            memset(bufs[i], i, BLOCKS * BS);
            bool wr = i & 1;
            struct vuf_scsi_io io = { .vq = 2 + (i & 1), .lun = i % 2, .cdb = cdb,
                                      .cdb_len = vuf_cdb_rw10(cdb, wr, (i / 2) * BLOCKS, BLOCKS),
                                      .data_out = wr ? bufs[i] : NULL, .out_len = wr ? BLOCKS * BS : 0,
                                      .data_in = wr ? NULL : bufs[i], .in_len = wr ? 0 : BLOCKS * BS,
                                      .flags = VUF_IO_INDIRECT | VUF_IO_NO_KICK, .segs = 8 };
            reqs[i] = vuf_scsi_submit(h, &io);
            CHECK(reqs[i] != NULL);
        }
        vuf_vq_notify(h, 2);
        vuf_vq_notify(h, 3);
        int rc = 0;
        uint8_t resp = 0xff;
        if (how == 0) {
            rc = vuf_reset_device(h);             /* answered once everything drained */
        } else {
            rc = vuf_scsi_tmf(h, how == 1 ? VUF_TMF_LOGICAL_UNIT_RESET : VUF_TMF_I_T_NEXUS_RESET,
                              0, 0, 0, &resp);
            CHECK_EQ(resp, VUF_SCSI_S_FUNCTION_COMPLETE);
        }
        CHECK_EQ(rc, 0);
        unsigned done = 0, aborted = 0;
        if (how == 0) {
            /* The rings are gone: what completed before the reset is in the used ring,
             * the rest the driver abandons (as Linux does on a virtio reset). */
            for (unsigned i = 0; i < N; i++) {
                if (reqs[i])
                    vuf_adopt(h, reqs[i]);
                vuf_adopt(h, bufs[i]);
            }
            CHECK_EQ(vuf_start(h), 0);
        } else {
            for (unsigned i = 0; i < N; i++) {
                struct vuf_scsi_result r;
                if (!reqs[i])
                    continue;
                int crc = vuf_scsi_complete(h, reqs[i], &r, 10000);
                CHECK_EQ(crc, 0);
                if (crc) {
                    vuf_adopt(h, bufs[i]);
                    continue;
                }
                done++;
                aborted += r.response == VUF_SCSI_S_ABORTED || r.response == VUF_SCSI_S_RESET;
                free(bufs[i]);
            }
            CHECK(vuf_scsi_reap(h, 2) >= 0);      /* nothing completed twice */
            CHECK(vuf_scsi_reap(h, 3) >= 0);
        }
        fprintf(stderr, "  %s with %u requests in flight: %u completed, %u aborted/reset\n",
                names[how], N, done, aborted);
        vuf_scsi_clear_ua(h, 0, 0);
        vuf_scsi_clear_ua(h, 0, 1);
        uint8_t d[BS];
        rw10(h, 0, 0, false, 0, 1, d);
        rw10(h, 0, 1, false, 0, 1, d);
        vuf_free(h);
    }
    check_serves();
}

int main(int argc, char **argv)
{
    start_daemon(argc, argv, disks, 2, NULL);
    /* Warm up (first sessions allocate their slots), then measure. */
    check_serves();
    long rss0 = vm_rss_kb(g_d.proc.pid);
    RUN(test_tmf_flood);
    RUN(test_head_reuse);
    RUN(test_cdb_length_claims);
    RUN(test_reset_mid_io);
    for (int i = 0; i < 3; i++)
        check_serves();
    long rss1 = vm_rss_kb(g_d.proc.pid);
    fprintf(stderr, "vscsid VmRSS: %ld kB before, %ld kB after the hostile guests\n", rss0, rss1);
    CHECK(rss0 > 0 && rss1 > 0);
    CHECK(rss1 - rss0 < RSS_SLACK_MB * 1024);
    return finish();
}

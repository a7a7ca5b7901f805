/* Error policies (QEMU's werror/rerror) as a guest sees them, with faults
 * injected over QMP (x-vscsi-inject):
 *   report -> CHECK CONDITION with QEMU's sense for the errno, BLOCK_IO_ERROR
 *             (action report), still running;
 *   ignore -> GOOD (nothing written), BLOCK_IO_ERROR (action ignore);
 *   enospc (the default werror) -> stop on ENOSPC only;
 *   stop   -> the failed requests get no answer, BLOCK_IO_ERROR then STOP,
 *             query-status io-error, io-status failed; requests the guest adds
 *             meanwhile wait, on this controller and on the other one; in-flight
 *             requests that succeed complete; cont: RESUME, the held requests
 *             retried in arrival order (shown by a rule that fails the first
 *             retry again), each completed once, the data right;
 *   QMP stop/cont (paused), a queue stopped by the frontend (held requests
 *   end with RESET), 256 held requests on two queues, and a flood of errors
 *   with memory measured.
 * Usage: t_errpol [path-to-vscsid]  (or env VSCSID; skips with 77 without one) */
#include "t_common.h"
#include "t_qmp.h"

#include <fcntl.h>
#include <sys/stat.h>

#define DSIZE (8ull << 20)
#define D_STOP 0        /* lun 0: werror=stop,rerror=stop */
#define D_REPORT 1      /* lun 1: report */
#define D_IGNORE 2      /* lun 2: ignore */
#define D_AUTO 3        /* lun 3: defaults (werror=enospc, rerror=report) */
#define D_OTHER 4       /* controller c1, target 0 lun 0 */

static const struct vuf_vscsid_disk disks[] = {
    { .size = DSIZE, .target = 0, .lun = 0, .drive_opts = "werror=stop,rerror=stop" },
    { .size = DSIZE, .target = 0, .lun = 1, .drive_opts = "werror=report,rerror=report" },
    { .size = DSIZE, .target = 0, .lun = 2, .drive_opts = "werror=ignore,rerror=ignore" },
    { .size = DSIZE, .target = 0, .lun = 3 },
    { .size = DSIZE, .target = 0, .lun = 0, .device_opts = "bus=c1" },
};
#define NDISKS (sizeof(disks) / sizeof(disks[0]))
#define Q1 0                    /* the first request queue (vuf's default) */
#define Q2 (VUF_SCSI_REQQ + 1)  /* the second */

static char g_c1_path[108];
static struct qmpc g_q;

/* ---- helpers ---- */

static struct vuf *session_c1(void)
{
    struct vuf_opts o = { .num_queues = 4 };
    struct vuf *h = vuf_new(&o);

    CHECK(h != NULL);
    if (!h)
        return NULL;
    if (vuf_open(h, g_c1_path) < 0) {
        CHECK(!"vuf_open c1");
        vuf_free(h);
        return NULL;
    }
    CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
    return h;
}

struct io {
    struct vuf_scsi_req *rq;
    struct vuf_scsi_result res;
    uint8_t cdb[10];
    uint8_t *buf;
    uint32_t len;
    bool done;
};

static void io_write_f(struct vuf *h, struct io *io, unsigned vq, unsigned lun, uint32_t lba, uint16_t n,
                       uint32_t seed, unsigned flags)
{
    memset(io, 0, sizeof(*io));
    io->len = n * BS;
    io->buf = malloc(io->len);
    vuf_pattern(io->buf, io->len, (uint64_t)lba * BS, seed);
    vuf_cdb_rw10(io->cdb, true, lba, n);
    struct vuf_scsi_io s = { .vq = vq, .target = 0, .lun = lun, .cdb = io->cdb, .cdb_len = 10,
                             .data_out = io->buf, .out_len = io->len, .flags = flags };
    io->rq = vuf_scsi_submit(h, &s);
    CHECK(io->rq != NULL);
}

static void io_write(struct vuf *h, struct io *io, unsigned vq, unsigned lun, uint32_t lba, uint16_t n,
                     uint32_t seed)
{
    io_write_f(h, io, vq, lun, lba, n, seed, 0);
}

static void io_read(struct vuf *h, struct io *io, unsigned vq, unsigned lun, uint32_t lba, uint16_t n)
{
    memset(io, 0, sizeof(*io));
    io->len = n * BS;
    io->buf = calloc(1, io->len);
    vuf_cdb_rw10(io->cdb, false, lba, n);
    struct vuf_scsi_io s = { .vq = vq, .target = 0, .lun = lun, .cdb = io->cdb, .cdb_len = 10,
                             .data_in = io->buf, .in_len = io->len };
    io->rq = vuf_scsi_submit(h, &s);
    CHECK(io->rq != NULL);
}

/* Wait up to ms for the completion: 1 done, 0 not yet. */
static int io_wait(struct vuf *h, struct io *io, int ms)
{
    if (io->done)
        return 1;
    if (!io->rq)
        return 0;
    int rc = vuf_scsi_complete(h, io->rq, &io->res, ms);
    if (rc == -ETIMEDOUT)
        return 0;
    CHECK_EQ(rc, 0);
    io->done = rc == 0;
    if (rc == 0)
        io->rq = NULL;
    return io->done;
}

static bool io_good(const struct io *io)
{
    if (io->done && io->res.response == VUF_SCSI_S_OK && io->res.status == VUF_SAM_GOOD)
        return true;
    fprintf(stderr, "  not GOOD: %s\n", io->done ? res_str(&io->res) : "not completed");
    return false;
}

static void io_free(struct vuf *h, struct io *io)
{
    if (io->rq)
        vuf_adopt(h, io->rq);   /* never completed: the device may still write it */
    io->rq = NULL;
    free(io->buf);
    io->buf = NULL;
}

/* The image of disk i holds the pattern (lba, seed) over n blocks. */
static bool image_has(unsigned i, uint32_t lba, unsigned n, uint32_t seed)
{
    size_t len = (size_t)n * BS;
    uint8_t *want = malloc(len), *got = malloc(len);
    int fd = open(g_d.img[i], O_RDONLY);
    bool ok = fd >= 0 && pread(fd, got, len, (off_t)lba * BS) == (ssize_t)len;

    vuf_pattern(want, len, (uint64_t)lba * BS, seed);
    ok = ok && !memcmp(want, got, len);
    if (fd >= 0)
        close(fd);
    free(want);
    free(got);
    return ok;
}

static void inject(unsigned disk, const char *rules)
{
    QMP_OK(&g_q, "{'execute': 'x-vscsi-inject', 'arguments': {'node-name': 'd%u', 'rules': '%s'}}",
           disk, rules);
}

static void status_is(const char *status, bool running)
{
    char out[512], want[96];

    CHECK_EQ(qmp_do(&g_q, false, out, sizeof(out), "{'execute': 'query-status'}"), 0);
    snprintf(want, sizeof(want), "{\"return\": {\"status\": \"%s\", \"running\": %s}}", status,
             running ? "true" : "false");
    if (strcmp(out, want)) {
        fprintf(stderr, "  query-status: %s, want %s\n", out, want);
        CHECK(0);
    }
}

/* The next event is NAME (and its data contains frag). */
static void next_event(const char *name, const char *frag)
{
    char line[8192], tag[64];

    snprintf(tag, sizeof(tag), "{\"event\": \"%s\"", name);
    if (qmp_next_event(&g_q, line, sizeof(line), 5000) < 0) {
        fprintf(stderr, "  no event, expected %s %s\n", name, frag ? frag : "");
        CHECK(0);
        return;
    }
    if (strncmp(line, tag, strlen(tag)) || (frag && !strstr(line, frag))) {
        fprintf(stderr, "  event %s\n  expected %s %s\n", line, name, frag ? frag : "");
        CHECK(0);
    }
}

/* No event within ms. */
static void no_event(int ms)
{
    char line[8192];

    if (qmp_next_event(&g_q, line, sizeof(line), ms) == 0) {
        fprintf(stderr, "  unexpected event %s\n", line);
        CHECK(0);
    }
}

static const char *io_error(unsigned disk, const char *op, const char *action, const char *reason)
{
    static char buf[256];

    snprintf(buf, sizeof(buf), "\"data\": {\"device\": \"d%u\", \"node-name\": \"d%u\", \"operation\": "
             "\"%s\", \"action\": \"%s\", \"nospace\": %s, \"reason\": \"%s\"}", disk, disk, op, action,
             strcmp(reason, "No space left on device") ? "false" : "true", reason);
    return buf;
}

#define EIO_S "Input/output error"
#define ENOSPC_S "No space left on device"

/* ---- cases ---- */

static void test_report(void)
{
    struct vuf *h = session();
    struct io w, r;

    if (!h)
        return;
    inject(D_REPORT, "write:enospc:count=1;read:eio:count=1");
    io_write(h, &w, 0, D_REPORT, 8, 8, 1);
    CHECK(io_wait(h, &w, 5000));
    CHECK(vuf_sense_is(&w.res, 0x07, 0x27, 0x07));     /* SPACE ALLOCATION FAILED */
    next_event("BLOCK_IO_ERROR", io_error(D_REPORT, "write", "report", ENOSPC_S));
    io_read(h, &r, 0, D_REPORT, 8, 8);
    CHECK(io_wait(h, &r, 5000));
    CHECK(vuf_sense_is(&r.res, 0x0b, 0x00, 0x06));     /* QEMU's EIO: I/O PROCESS TERMINATED */
    next_event("BLOCK_IO_ERROR", io_error(D_REPORT, "read", "report", EIO_S));
    status_is("running", true);
    io_free(h, &w);
    io_free(h, &r);
    /* rules spent: both work, the write reached the image */
    io_write(h, &w, 0, D_REPORT, 8, 8, 2);
    CHECK(io_wait(h, &w, 5000) && io_good(&w));
    CHECK(image_has(D_REPORT, 8, 8, 2));
    io_free(h, &w);
    no_event(100);
    vuf_free(h);
}

static void test_ignore(void)
{
    struct vuf *h = session();
    struct io w;

    if (!h)
        return;
    CHECK(image_has(D_IGNORE, 16, 8, 1000 + D_IGNORE));
    inject(D_IGNORE, "write:eio:count=1");
    io_write(h, &w, 0, D_IGNORE, 16, 8, 3);
    CHECK(io_wait(h, &w, 5000) && io_good(&w));
    CHECK_EQ(w.res.resid, 0);
    CHECK(image_has(D_IGNORE, 16, 8, 1000 + D_IGNORE));    /* not written */
    next_event("BLOCK_IO_ERROR", io_error(D_IGNORE, "write", "ignore", EIO_S));
    status_is("running", true);
    io_free(h, &w);
    vuf_free(h);
}

/* The default werror=enospc: EIO is reported, ENOSPC stops. */
static void test_enospc_default(void)
{
    struct vuf *h = session();
    struct io w;

    if (!h)
        return;
    inject(D_AUTO, "write:eio:count=1");
    io_write(h, &w, 0, D_AUTO, 0, 8, 4);
    CHECK(io_wait(h, &w, 5000));
    CHECK(vuf_sense_is(&w.res, 0x0b, 0x00, 0x06));
    next_event("BLOCK_IO_ERROR", io_error(D_AUTO, "write", "report", EIO_S));
    io_free(h, &w);
    inject(D_AUTO, "write:enospc:count=1");
    io_write(h, &w, 0, D_AUTO, 0, 8, 5);
    CHECK(!io_wait(h, &w, 300));
    next_event("BLOCK_IO_ERROR", io_error(D_AUTO, "write", "stop", ENOSPC_S));
    next_event("STOP", NULL);
    status_is("io-error", false);
    char out[4096];
    CHECK_EQ(qmp_do(&g_q, false, out, sizeof(out), "{'execute': 'query-block'}"), 0);
    CHECK(strstr(out, "\"io-status\": \"nospace\"") != NULL);
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    CHECK(io_wait(h, &w, 5000) && io_good(&w));
    CHECK(image_has(D_AUTO, 0, 8, 5));
    CHECK_EQ(qmp_do(&g_q, false, out, sizeof(out), "{'execute': 'query-block'}"), 0);
    CHECK(strstr(out, "nospace") == NULL);
    status_is("running", true);
    io_free(h, &w);
    vuf_free(h);
}

/* werror=stop: held requests, both controllers stopped, retried in order. */
static void test_stop(void)
{
    struct vuf *h = session(), *h1 = session_c1();
    struct io w[3], later, other, r;
    char out[4096];

    if (!h || !h1)
        goto out;
    /* Three writes taken in one go (one kick): the first two fail, the
     * third, in flight with them, succeeds and completes while stopped. */
    inject(D_STOP, "write:eio:sector=100+8;write:eio:sector=200+8");
    io_write_f(h, &w[0], 0, D_STOP, 100, 8, 11, VUF_IO_NO_KICK);
    io_write_f(h, &w[1], 0, D_STOP, 200, 8, 12, VUF_IO_NO_KICK);
    io_write_f(h, &w[2], 0, D_STOP, 300, 8, 13, VUF_IO_NO_KICK);
    vuf_vq_kick(h, VUF_SCSI_REQQ);
    CHECK(io_wait(h, &w[2], 5000) && io_good(&w[2]));
    CHECK(image_has(D_STOP, 300, 8, 13));
    CHECK(!io_wait(h, &w[0], 200) && !io_wait(h, &w[1], 10));
    next_event("BLOCK_IO_ERROR", io_error(D_STOP, "write", "stop", EIO_S));
    next_event("STOP", NULL);
    next_event("BLOCK_IO_ERROR", io_error(D_STOP, "write", "stop", EIO_S));
    no_event(100);      /* one STOP */
    status_is("io-error", false);
    CHECK_EQ(qmp_do(&g_q, false, out, sizeof(out), "{'execute': 'query-block'}"), 0);
    CHECK(strstr(out, "\"device\": \"d0\"") && strstr(out, "\"io-status\": \"failed\""));

    /* stopped: new requests wait, here and on the other controller */
    io_write(h, &later, Q2, D_STOP, 400, 8, 14);
    io_read(h1, &other, 0, 0, 0, 8);
    CHECK(!io_wait(h, &later, 400));
    CHECK(!io_wait(h1, &other, 100));
    CHECK(!io_wait(h, &w[0], 10) && !io_wait(h, &w[1], 10));

    /* cont with a rule that fails the first write submitted: w[0] is held
     * again (so it was resubmitted first, before w[1]), w[1] completes */
    inject(D_STOP, "write:eio:count=1");
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    next_event("BLOCK_IO_ERROR", io_error(D_STOP, "write", "stop", EIO_S));
    next_event("STOP", NULL);
    CHECK(io_wait(h, &w[1], 5000) && io_good(&w[1]));
    CHECK(!io_wait(h, &w[0], 200));
    CHECK(image_has(D_STOP, 100, 8, 1000 + D_STOP));
    status_is("io-error", false);
    /* requests taken between the cont and the new stop run normally; the
     * others still wait */
    io_wait(h, &later, 200);
    io_wait(h1, &other, 100);
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    for (int i = 0; i < 3; i++)
        CHECK(io_wait(h, &w[i], 5000) && io_good(&w[i]));
    CHECK(io_wait(h, &later, 5000) && io_good(&later));
    CHECK(io_wait(h1, &other, 5000) && io_good(&other));
    status_is("running", true);
    /* the data: each write once, where it belongs */
    CHECK(image_has(D_STOP, 100, 8, 11));
    CHECK(image_has(D_STOP, 200, 8, 12));
    CHECK(image_has(D_STOP, 300, 8, 13));
    CHECK(image_has(D_STOP, 400, 8, 14));
    io_read(h, &r, 0, D_STOP, 100, 8);
    CHECK(io_wait(h, &r, 5000) && io_good(&r));
    uint8_t want[8 * BS];
    vuf_pattern(want, sizeof(want), 100 * BS, 11);
    CHECK_MEM(r.buf, want, sizeof(want));
    disk_pattern(D_OTHER, want, sizeof(want), 0);
    CHECK_MEM(other.buf, want, sizeof(want));
    no_event(100);
    /* nothing completed twice: every ring is empty */
    for (unsigned q = VUF_SCSI_REQQ; q <= Q2; q++) {
        CHECK_EQ(vuf_scsi_reap(h, q), 0);
        CHECK_EQ(vuf_vq_inflight(h, q), 0);
    }
    io_free(h, &r);
    for (int i = 0; i < 3; i++)
        io_free(h, &w[i]);
    io_free(h, &later);
    io_free(h1, &other);
    /* a read error with rerror=stop: the same, operation read */
    inject(D_STOP, "read:enodata:count=1");
    io_read(h, &r, 0, D_STOP, 300, 8);
    CHECK(!io_wait(h, &r, 300));
    next_event("BLOCK_IO_ERROR", io_error(D_STOP, "read", "stop", "No data available"));
    next_event("STOP", NULL);
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    CHECK(io_wait(h, &r, 5000) && io_good(&r));
    vuf_pattern(want, sizeof(want), 300 * BS, 13);
    CHECK_MEM(r.buf, want, sizeof(want));
    io_free(h, &r);
out:
    vuf_free(h);
    vuf_free(h1);
}

/* QMP stop/cont: paused, nothing taken; once each. */
static void test_qmp_stop_cont(void)
{
    struct vuf *h = session();
    struct io r;

    if (!h)
        return;
    QMP_OK(&g_q, "{'execute': 'cont'}");    /* running: nothing happens */
    no_event(50);
    QMP_OK(&g_q, "{'execute': 'stop'}");
    next_event("STOP", NULL);
    QMP_OK(&g_q, "{'execute': 'stop'}");
    no_event(50);
    status_is("paused", false);
    io_read(h, &r, Q2, D_REPORT, 0, 1);
    CHECK(!io_wait(h, &r, 300));
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    CHECK(io_wait(h, &r, 5000) && io_good(&r));
    status_is("running", true);
    io_free(h, &r);
    vuf_free(h);
}

/* The frontend stops the queue of a held request (GET_VRING_BASE): it ends
 * with RESET instead of keeping the frontend waiting; the state stays
 * io-error until cont, and a new session works. */
static void test_queue_stop(void)
{
    struct vuf *h = session();
    struct io w;

    if (!h)
        return;
    inject(D_STOP, "write:eio:count=1");
    io_write(h, &w, 0, D_STOP, 500, 8, 21);
    next_event("BLOCK_IO_ERROR", io_error(D_STOP, "write", "stop", EIO_S));
    next_event("STOP", NULL);
    CHECK(!io_wait(h, &w, 100));
    CHECK_EQ(vuf_stop(h), 0);       /* answered: the held request was pushed */
    CHECK(io_wait(h, &w, 1000));
    CHECK_EQ(w.res.response, VUF_SCSI_S_RESET);
    CHECK(image_has(D_STOP, 500, 8, 1000 + D_STOP));
    status_is("io-error", false);
    io_free(h, &w);
    vuf_free(h);
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    check_serves();
}

static int qmp_connect_daemon(void)
{
    for (int i = 0; i < 100 && (access(g_qmp_path, F_OK) || access(g_c1_path, F_OK)); i++)
        usleep(20000);
    if (qmp_open(&g_q) < 0) {
        fprintf(stderr, "FAIL: cannot connect to QMP at %s\n", g_qmp_path);
        test_failures++;
        return -1;
    }
    return 0;
}

/* The daemon runs with AddressSanitizer (libasan mapped). */
static bool uses_asan(pid_t pid)
{
    char path[64], line[512];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    f = fopen(path, "r");
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, "libasan") != NULL;
    if (f)
        fclose(f);
    return found;
}

#define MANY 128

/* 256 writes queued on two queues: those taken before the stop are held,
 * the rest wait in the rings, all complete after cont; then an error flood
 * with report: memory stays flat (held requests are the request slots). */
static void test_many_and_flood(void)
{
    struct vuf_opts o = { .num_queues = 4, .queue_size = 512 };   /* 3 descriptors a request */
    struct vuf *h = session_opts(&o, true);
    static struct io w[2 * MANY];
    long rss0, rss1;

    if (!h)
        return;
    inject(D_STOP, "write:eio:count=inf");
    for (unsigned i = 0; i < 2 * MANY; i++)
        io_write_f(h, &w[i], (i & 1) ? Q2 : Q1, D_STOP, 1024 + 8 * i, 8, 100 + i, VUF_IO_NO_KICK);
    vuf_vq_kick(h, VUF_SCSI_REQQ);
    vuf_vq_kick(h, Q2);
    /* every request taken before the stop is held (vscsid takes 8 at a time
     * from a queue, so the stop comes after the first few); the rest wait in
     * the ring until cont */
    next_event("BLOCK_IO_ERROR", io_error(D_STOP, "write", "stop", EIO_S));
    next_event("STOP", NULL);
    unsigned held = 1;
    char line[8192];
    while (qmp_next_event(&g_q, line, sizeof(line), 300) == 0) {
        CHECK(strstr(line, io_error(D_STOP, "write", "stop", EIO_S)) != NULL);
        held++;
    }
    fprintf(stderr, "  %u of %u writes held\n", held, 2 * MANY);
    CHECK(held >= 1 && held <= 2 * MANY);
    for (unsigned i = 0; i < 2 * MANY; i++)
        CHECK(!io_wait(h, &w[i], 1));
    inject(D_STOP, "");
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    for (unsigned i = 0; i < 2 * MANY; i++)
        CHECK(io_wait(h, &w[i], 5000) && io_good(&w[i]));
    for (unsigned i = 0; i < 2 * MANY; i++) {
        CHECK(image_has(D_STOP, 1024 + 8 * i, 8, 100 + i));
        io_free(h, &w[i]);
    }
    /* flood: 20 rounds of 256 failing reads, reported; events drained. The
     * request slots are in use already: the errors must add nothing. */
    rss0 = vm_rss_kb(g_d.proc.pid);
    inject(D_REPORT, "read:eio:count=inf");
    for (int round = 0; round < 20; round++) {
        for (unsigned i = 0; i < 2 * MANY; i++)
            io_read(h, &w[i], (i & 1) ? Q2 : Q1, D_REPORT, 8 * (i % 64), 8);
        for (unsigned i = 0; i < 2 * MANY; i++) {
            CHECK(io_wait(h, &w[i], 5000));
            CHECK(vuf_sense_is(&w[i].res, 0x0b, 0x00, 0x06));
            io_free(h, &w[i]);
        }
        while (qmp_next_event(&g_q, line, sizeof(line), 20) == 0)
            ;
    }
    inject(D_REPORT, "");
    rss1 = vm_rss_kb(g_d.proc.pid);
    fprintf(stderr, "  vscsid VmRSS: %ld kB after 256 held writes, %ld kB after 5120 more errors\n",
            rss0, rss1);
    /* ASan keeps freed blocks in quarantine (the events' buffers): ~11 MB here */
    CHECK(rss0 > 0 && rss1 > 0 && rss1 - rss0 < (uses_asan(g_d.proc.pid) ? 32 : 4) * 1024);
    status_is("running", true);
    vuf_free(h);
}

/* CPU seconds vscsid has used (utime + stime). */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(buf, sizeof(buf), f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    p = strrchr(buf, ')');      /* after the command name: state is field 3 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* With adaptive polling: paused, requests waiting in the rings are not work
 * (the poller must not spin on them), and they are taken on cont. */
static void test_paused_polling(void)
{
    struct vuf *h = session();
    struct io r;

    if (!h)
        return;
    uint8_t buf[BS];
    CHECK_EQ(rw10(h, 0, D_REPORT, false, 0, 1, buf), 0);   /* polling starts */
    QMP_OK(&g_q, "{'execute': 'stop'}");
    next_event("STOP", NULL);
    memset(&r, 0, sizeof(r));
    r.len = BS;
    r.buf = calloc(1, BS);
    vuf_cdb_rw10(r.cdb, false, 0, 1);
    struct vuf_scsi_io s = { .target = 0, .lun = D_REPORT, .cdb = r.cdb, .cdb_len = 10,
                             .data_in = r.buf, .in_len = BS, .flags = VUF_IO_NO_KICK };
    r.rq = vuf_scsi_submit(h, &s);
    usleep(300000);     /* past the 200 ms polling window */
    double c0 = cpu_s(g_d.proc.pid);
    usleep(1000000);
    double c1 = cpu_s(g_d.proc.pid);
    fprintf(stderr, "  vscsid used %.2f s of CPU in 1 s paused with a request in the ring\n", c1 - c0);
    CHECK(c0 >= 0 && c1 - c0 < 0.3);
    CHECK(!io_wait(h, &r, 10));
    QMP_OK(&g_q, "{'execute': 'cont'}");
    next_event("RESUME", NULL);
    CHECK(io_wait(h, &r, 5000) && io_good(&r));
    io_free(h, &r);
    vuf_free(h);
}

int main(int argc, char **argv)
{
    char c1arg[160];
    static const char *extra[8];

    snprintf(g_qmp_path, sizeof(g_qmp_path), "/tmp/vscsi-t-errpol-%d.qmp", (int)getpid());
    snprintf(g_c1_path, sizeof(g_c1_path), "/tmp/vscsi-t-errpol-%d-c1.sock", (int)getpid());
    snprintf(c1arg, sizeof(c1arg), "id=c1,socket=%s", g_c1_path);
    extra[0] = "--qmp";
    extra[1] = g_qmp_path;
    extra[2] = "--controller";
    extra[3] = c1arg;
    /* no polling first: what one kick makes available is taken in one go */
    extra[4] = "--poll-us";
    extra[5] = "0";
    extra[6] = NULL;
    start_daemon(argc, argv, disks, NDISKS, extra);
    if (qmp_connect_daemon() < 0)
        return finish();
    RUN(test_report);
    RUN(test_ignore);
    RUN(test_enospc_default);
    RUN(test_stop);
    RUN(test_qmp_stop_cont);
    RUN(test_queue_stop);
    RUN(test_many_and_flood);
    qmp_close(&g_q);
    stop_daemon();
    extra[5] = "200000";
    start_daemon(argc, argv, disks, NDISKS, extra);
    if (qmp_connect_daemon() < 0)
        return finish();
    RUN(test_paused_polling);
    qmp_close(&g_q);
    return finish();
}

/* Durability (issue 5 section 4): a write vscsid acknowledged with FUA, or
 * before a SYNCHRONIZE CACHE it acknowledged, or any write while the write
 * cache is off (MODE SELECT caching page, WCE=0), is on stable storage when
 * vscsid dies by SIGKILL right after the GOOD: an independent reader of the
 * backing file finds it.
 *
 * Stable storage without a power cut: the drive is a loop device over a
 * second loop device over a file,
 *
 *     vscsid -> /dev/loopA -> (loopB's page cache) -> /dev/loopB -> IMG
 *
 * A loop device without --direct-io writes to what is under it with buffered
 * I/O and turns a flush (and FUA) into an fsync of it. So a write reaches IMG
 * only when a flush goes down through loopA: loopA's own page cache plays the
 * disk's volatile write cache for cache=writeback, loopB's for cache=none
 * (O_DIRECT on loopA). The reader opens IMG, never a loop device. The test
 * holds both loop devices open until the end: the last close of a block
 * device writes its page cache back, which the death of vscsid must not do
 * for it (and they clear themselves on their last close, see below).
 *
 * For cache=writeback and cache=none, each with aio=io_uring and
 * aio=threads, one vscsid per round, SIGKILLed right after the round's last
 * GOOD:
 *   WRITE(16) FUA
 *   WRITE(10) FUA
 *   WRITE(10), SYNCHRONIZE CACHE(10) (the whole medium)
 *   WRITE(10), SYNCHRONIZE CACHE(16) (the range written)
 *   MODE SELECT WCE=0 (MODE SENSE shows it), WRITE(10): writethrough, so
 *       the plain write is durable at GOOD (the other rounds check WCE=1)
 * Each round then writes a plain WRITE(10) elsewhere that nothing flushes
 * (the control). Its fate is reported, not asserted (the kernel's writeback
 * may take it to IMG at any time); that it is normally missing shows the
 * setup tells a flushed write from an unflushed one. In the WCE=0 round it
 * must be there. The durable command is the round's last one that flushes,
 * so no other command of the round makes it durable by accident, and every
 * round writes its own LBAs with its own pattern. At the end a new vscsid
 * reads every range back and exits cleanly on SIGTERM.
 *
 * Needs root and losetup (skips with 77 otherwise). Both loop devices clear
 * themselves on their last close, so they go away however the test ends,
 * SIGKILL included; a SIGTERM/SIGINT/SIGHUP also removes the files.
 * Usage: t_durability VSCSID (or env VSCSID). */
#include "t_common.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define IMG_SIZE    (16u << 20)
#define NBLK        64u         /* 32 KiB a write */
#define ROUND_LBAS  256u        /* a round's durable write at +0, its control at +128 */
#define FIRST_LBA   2048u

enum op { OP_FUA16, OP_FUA10, OP_SYNC10, OP_SYNC16, OP_WCE0, NOPS };

static const char *const op_name[NOPS] = {
    [OP_FUA16] = "WRITE(16) FUA",
    [OP_FUA10] = "WRITE(10) FUA",
    [OP_SYNC10] = "WRITE(10) + SYNCHRONIZE CACHE(10)",
    [OP_SYNC16] = "WRITE(10) + SYNCHRONIZE CACHE(16)",
    [OP_WCE0] = "WCE=0 + WRITE(10)",
};

static int g_argc;
static char **g_argv;
static char g_tmp[128], g_img[192];
static char g_loop_a[64], g_loop_b[64];
static int g_fd_a = -1, g_fd_b = -1;
static char g_drive[192];
static struct vuf_vscsid_disk g_disk[1] = { { .target = 0, .lun = 0, .drive = g_drive } };
static unsigned g_rounds, g_controls, g_controls_in;

/* ---- cleanup ---- */

/* Async-signal-safe: kill vscsid, drop our opens of the loop devices (their
 * last close clears them), remove the files. */
static void cleanup(void)
{
    if (g_d.proc.pid > 0 && !g_d.proc.reaped) {
        kill(g_d.proc.pid, SIGKILL);
        waitpid(g_d.proc.pid, NULL, 0);
        g_d.proc.reaped = true;
    }
    if (g_d.dir[0]) {
        unlink(g_d.sock);
        rmdir(g_d.dir);
        g_d.dir[0] = 0;
    }
    if (g_fd_a >= 0)
        close(g_fd_a);
    if (g_fd_b >= 0)
        close(g_fd_b);
    g_fd_a = g_fd_b = -1;
    if (g_img[0])
        unlink(g_img);
    if (g_tmp[0])
        rmdir(g_tmp);
    g_img[0] = g_tmp[0] = 0;
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A sysfs attribute of a block device, first line ("" when absent). */
static void sysfs_attr(const char *dev, const char *attr, char *out, size_t len)
{
    char path[160];
    FILE *f;

    snprintf(path, sizeof(path), "/sys/block/%s/%s", dev + 5, attr);
    out[0] = 0;
    f = fopen(path, "r");
    if (f) {
        if (!fgets(out, (int)len, f))
            out[0] = 0;
        fclose(f);
    }
    out[strcspn(out, "\n")] = 0;
}

/* Is dev still bound to backing (a file removed since shows " (deleted)")? */
static bool loop_bound_to(const char *dev, const char *backing)
{
    char cur[256];
    size_t n = strlen(backing);

    sysfs_attr(dev, "loop/backing_file", cur, sizeof(cur));
    return n && !strncmp(cur, backing, n) && (!cur[n] || !strcmp(cur + n, " (deleted)"));
}

/* After cleanup: our loop devices are gone (autoclear), else detach them.
 * backing: what each was bound to (a device another test has bound since
 * is not ours). */
static void check_loops_gone(const char *backing_a, const char *backing_b)
{
    const char *dev[2] = { g_loop_a, g_loop_b }, *backing[2] = { backing_a, backing_b };

    for (unsigned i = 0; i < 2; i++) {
        char c[128];

        if (!dev[i][0])
            continue;
        for (int n = 0; n < 500 && loop_bound_to(dev[i], backing[i]); n++)
            usleep(10000);
        if (loop_bound_to(dev[i], backing[i])) {
            fprintf(stderr, "  %s still attached after its last close: losetup -d\n", dev[i]);
            snprintf(c, sizeof(c), "losetup -d '%s'", dev[i]);
            if (system(c) != 0)
                fprintf(stderr, "  losetup -d %s failed\n", dev[i]);
        }
    }
}

/* ---- loop devices ---- */

/* losetup -f --show --direct-io=off file; open the device (kept open) and
 * make it clear itself on its last close. 0, 77 when no loop device can be
 * had, -1 on other errors. */
static int loop_attach(const char *file, char *dev, size_t len, int *fd)
{
    struct loop_info64 li;
    char c[512];
    FILE *p;
    int st;

    snprintf(c, sizeof(c), "losetup -f --show --direct-io=off '%s' 2>&1", file);
    p = popen(c, "r");
    if (!p)
        return 77;
    if (!fgets(dev, (int)len, p))
        dev[0] = 0;
    st = pclose(p);
    dev[strcspn(dev, "\n")] = 0;
    if (st != 0 || strncmp(dev, "/dev/loop", 9)) {
        fprintf(stderr, "SKIP: losetup -f --show --direct-io=off %s: %s\n", file,
                dev[0] ? dev : "failed");
        dev[0] = 0;
        return 77;
    }
    *fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        fprintf(stderr, "FAIL: open %s: %s\n", dev, strerror(errno));
        snprintf(c, sizeof(c), "losetup -d '%s'", dev);
        if (system(c) != 0)
            fprintf(stderr, "  losetup -d %s failed\n", dev);
        dev[0] = 0;
        return -1;
    }
    if (ioctl(*fd, LOOP_GET_STATUS64, &li) < 0) {
        fprintf(stderr, "FAIL: LOOP_GET_STATUS64 on %s: %s\n", dev, strerror(errno));
        return -1;
    }
    li.lo_flags |= LO_FLAGS_AUTOCLEAR;
    if (ioctl(*fd, LOOP_SET_STATUS64, &li) < 0) {
        fprintf(stderr, "FAIL: LOOP_SET_STATUS64 (autoclear) on %s: %s\n", dev, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the independent reader ---- */

/* Does IMG hold buf at lba? 1 yes, 0 no, -1 read error. */
static int img_has(uint64_t lba, const void *buf, size_t len)
{
    static uint8_t got[NBLK * BS];
    int fd = open(g_img, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0 || len > sizeof(got)) {
        fprintf(stderr, "  open %s: %s\n", g_img, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    n = pread(fd, got, len, (off_t)(lba * BS));
    close(fd);
    if (n != (ssize_t)len) {
        fprintf(stderr, "  read %s at %" PRIu64 ": %s\n", g_img, lba * BS,
                n < 0 ? strerror(errno) : "short");
        return -1;
    }
    return memcmp(got, buf, len) == 0;
}

/* ---- SCSI ---- */

/* The caching mode page (SBC-4 6.5.5), current values; 0 or -1. */
static int caching_page(struct vuf *h, uint8_t pg[20])
{
    uint8_t cdb[10] = { 0x5a, 0x08 /* DBD */, 0x08, 0, 0, 0, 0, 0, 64, 0 }, b[64];
    unsigned bdlen;

    memset(b, 0, sizeof(b));
    if (scsi_good(h, 0, 0, cdb, 10, NULL, 0, b, sizeof(b), "MODE SENSE(10) caching"))
        return -1;
    bdlen = (unsigned)b[6] << 8 | b[7];
    if (8 + bdlen + 20 > sizeof(b) || (b[8 + bdlen] & 0x3f) != 0x08 || b[9 + bdlen] != 0x12) {
        fprintf(stderr, "  MODE SENSE: no caching page\n");
        CHECK(0);
        return -1;
    }
    memcpy(pg, b + 8 + bdlen, 20);
    return 0;
}

/* WCE as MODE SENSE shows it: 0, 1, -1 on error. */
static int wce_get(struct vuf *h)
{
    uint8_t pg[20];

    return caching_page(h, pg) ? -1 : !!(pg[2] & 0x04);
}

/* MODE SELECT(10) of the caching page with WCE changed. */
static void wce_set(struct vuf *h, bool on)
{
    uint8_t cdb[10] = { 0x55, 0x10 /* PF */, 0, 0, 0, 0, 0, 0, 28, 0 }, par[28];

    memset(par, 0, sizeof(par));
    if (caching_page(h, par + 8))
        return;
    par[8] &= 0x3f;                             /* PS is reserved in MODE SELECT */
    par[10] = (uint8_t)((par[10] & ~0x04) | (on ? 0x04 : 0));
    scsi_good(h, 0, 0, cdb, 10, par, sizeof(par), NULL, 0, "MODE SELECT(10) caching");
}

static void put_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t round_lba(unsigned round)
{
    return FIRST_LBA + (uint64_t)round * ROUND_LBAS;
}

static void round_patterns(unsigned round, uint8_t *dur, uint8_t *ctl)
{
    vuf_pattern(dur, NBLK * BS, round_lba(round) * BS, 0xd000 + round);
    vuf_pattern(ctl, NBLK * BS, (round_lba(round) + ROUND_LBAS / 2) * BS, 0xc000 + round);
}

/* SIGKILL vscsid now and reap it; it must not have died before. */
static void kill9(void)
{
    char b[96];

    if (!vuf_proc_alive(&g_d.proc)) {
        fprintf(stderr, "  vscsid died before the kill: %s\n",
                vuf_proc_status_str(g_d.proc.status, b, sizeof(b)));
        CHECK(0);
        return;
    }
    kill(g_d.proc.pid, SIGKILL);
    for (int i = 0; i < 10000 && vuf_proc_alive(&g_d.proc); i++)
        usleep(1000);
    CHECK(g_d.proc.reaped);
    CHECK(WIFSIGNALED(g_d.proc.status) && WTERMSIG(g_d.proc.status) == SIGKILL);
}

/* ---- rounds ---- */

static void one_round(const char *cache, const char *aio, enum op op)
{
    static uint8_t dur[NBLK * BS], ctl[NBLK * BS];
    unsigned round = g_rounds++;
    uint64_t lba = round_lba(round), ctl_lba = lba + ROUND_LBAS / 2;
    uint8_t cdb[16];
    struct vuf *h;
    int has_dur, has_ctl;

    round_patterns(round, dur, ctl);
    snprintf(g_drive, sizeof(g_drive), "file=%s,cache=%s,aio=%s", g_loop_a, cache, aio);
    start_daemon(g_argc, g_argv, g_disk, 1, NULL);
    h = session();
    if (!h) {
        vuf_vscsid_cleanup(&g_d);
        return;
    }
    if (op == OP_WCE0) {
        wce_set(h, false);
        CHECK_EQ(wce_get(h), 0);
    } else {
        CHECK_EQ(wce_get(h), 1);                /* durable only by FUA or the flush */
    }

    switch (op) {
    case OP_FUA16:
        vuf_cdb_rw16(cdb, true, lba, NBLK);
        cdb[1] |= 0x08;
        scsi_good(h, 0, 0, cdb, 16, dur, sizeof(dur), NULL, 0, op_name[op]);
        break;
    case OP_FUA10:
        vuf_cdb_rw10(cdb, true, (uint32_t)lba, NBLK);
        cdb[1] |= 0x08;
        scsi_good(h, 0, 0, cdb, 10, dur, sizeof(dur), NULL, 0, op_name[op]);
        break;
    case OP_SYNC10:
        rw10(h, 0, 0, true, (uint32_t)lba, NBLK, dur);
        vuf_cdb_sync_cache10(cdb);              /* LBA 0, 0 blocks: all of it */
        scsi_good(h, 0, 0, cdb, 10, NULL, 0, NULL, 0, "SYNCHRONIZE CACHE(10)");
        break;
    case OP_SYNC16:
        rw10(h, 0, 0, true, (uint32_t)lba, NBLK, dur);
        memset(cdb, 0, 16);
        cdb[0] = 0x91;
        put_be(cdb + 2, lba, 8);
        put_be(cdb + 10, NBLK, 4);
        scsi_good(h, 0, 0, cdb, 16, NULL, 0, NULL, 0, "SYNCHRONIZE CACHE(16)");
        break;
    case OP_WCE0:
        rw10(h, 0, 0, true, (uint32_t)lba, NBLK, dur);
        break;
    case NOPS:
        break;
    }
    rw10(h, 0, 0, true, (uint32_t)ctl_lba, NBLK, ctl); /* the control: nothing flushes it */
    kill9();
    vuf_free(h);
    vuf_vscsid_cleanup(&g_d);

    has_dur = img_has(lba, dur, sizeof(dur));
    has_ctl = img_has(ctl_lba, ctl, sizeof(ctl));
    fprintf(stderr, "  cache=%s aio=%s %s: %s; the plain WRITE(10) after it: %s\n", cache, aio,
            op_name[op], has_dur == 1 ? "in the backing file" : "NOT in the backing file",
            has_ctl == 1 ? "there too" : "not there");
    CHECK_EQ(has_dur, 1);
    if (op == OP_WCE0) {
        CHECK_EQ(has_ctl, 1);
    } else {
        g_controls++;
        g_controls_in += has_ctl == 1;
    }
}

static void rounds(const char *cache, const char *aio)
{
    for (int op = 0; op < NOPS; op++)
        one_round(cache, aio, (enum op)op);
}

static void test_writeback_io_uring(void) { rounds("writeback", "io_uring"); }
static void test_writeback_threads(void) { rounds("writeback", "threads"); }
static void test_none_io_uring(void) { rounds("none", "io_uring"); }
static void test_none_threads(void) { rounds("none", "threads"); }

/* A new vscsid after all those kills reads back what every round wrote. */
static void test_reads_back(void)
{
    static uint8_t dur[NBLK * BS], ctl[NBLK * BS], got[NBLK * BS];
    struct vuf *h = session();

    if (!h)
        return;
    for (unsigned round = 0; round < g_rounds; round++) {
        round_patterns(round, dur, ctl);
        rw10(h, 0, 0, false, (uint32_t)round_lba(round), NBLK, got);
        CHECK_MEM(got, dur, sizeof(got));
        rw10(h, 0, 0, false, (uint32_t)(round_lba(round) + ROUND_LBAS / 2), NBLK, got);
        CHECK_MEM(got, ctl, sizeof(got));
    }
    vuf_free(h);
}

int main(int argc, char **argv)
{
    char wc[32], dio[8], img[192];
    int fd, rc;

    g_argc = argc;
    g_argv = argv;
    signal(SIGPIPE, SIG_IGN);
    if (!vuf_vscsid_exe(argc, argv)) {
        fprintf(stderr, "SKIP: no vscsid (pass its path or set VSCSID)\n");
        return 77;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root (the drive is on loop devices)\n");
        return 77;
    }
    if (system("command -v losetup >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP: no losetup (util-linux)\n");
        return 77;
    }
    if (vuf_tmpdir(g_tmp, sizeof(g_tmp)) < 0)
        return 1;
    atexit(cleanup);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    snprintf(g_img, sizeof(g_img), "%s/backing.img", g_tmp);
    fd = open(g_img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, IMG_SIZE) < 0) {
        fprintf(stderr, "FAIL: create %s: %s\n", g_img, strerror(errno));
        return 1;
    }
    close(fd);
    rc = loop_attach(g_img, g_loop_b, sizeof(g_loop_b), &g_fd_b);
    if (rc == 0)
        rc = loop_attach(g_loop_b, g_loop_a, sizeof(g_loop_a), &g_fd_a);
    snprintf(img, sizeof(img), "%s", g_img);
    if (rc) {
        cleanup();
        check_loops_gone(g_loop_b, img);
        return rc == 77 ? 77 : 1;
    }
    sysfs_attr(g_loop_a, "queue/write_cache", wc, sizeof(wc));
    sysfs_attr(g_loop_a, "loop/dio", dio, sizeof(dio));
    fprintf(stderr, "drive %s (write_cache \"%s\", dio %s) -> %s -> %s\n", g_loop_a, wc, dio,
            g_loop_b, g_img);
    if (strcmp(wc, "write back") != 0) {
        /* a loop device without a write cache drops flushes: nothing to test */
        fprintf(stderr, "SKIP: %s does not pass flushes down (write_cache \"%s\")\n", g_loop_a, wc);
        cleanup();
        check_loops_gone(g_loop_b, img);
        return 77;
    }

    RUN_TEST(test_writeback_io_uring);
    RUN_TEST(test_writeback_threads);
    RUN_TEST(test_none_io_uring);
    RUN_TEST(test_none_threads);
    fprintf(stderr, "plain writes after the durable one that were in the backing file at the "
            "check: %u of %u (normally none)\n", g_controls_in, g_controls);
    snprintf(g_drive, sizeof(g_drive), "file=%s,cache=writeback", g_loop_a);
    start_daemon(argc, argv, g_disk, 1, NULL);
    RUN_TEST(test_reads_back);
    rc = finish();                              /* SIGTERM: exits 0 */
    cleanup();
    check_loops_gone(g_loop_b, img);
    return rc;
}

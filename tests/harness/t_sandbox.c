/* The seccomp sandbox (--sandbox, src/util/sandbox.c) with vscsid started the
 * default way: it is on in every thread (/proc/PID/task/N/status), and what
 * the daemon does at run time works under it -- reads, writes, FUA, flushes,
 * UNMAP, WRITE SAME (punch and zero-out), GET LBA STATUS on io_uring, O_DIRECT
 * and thread-pool drives, a persistent reservation saved to its pr-state
 * file, QMP blockdev-add of an image and of a block device (a loop device,
 * when we are root), device_add, block_resize, queries, device_del,
 * blockdev-del, reconnects -- and SIGTERM still drains, flushes and exits 0
 * (a sandbox kill would be SIGSYS). Then --sandbox=off and a bad value.
 * In builds where the sandbox cannot be had (no libseccomp, a kernel without
 * seccomp filters, sanitizer builds) the checks that it is on are skipped
 * once an explicit --sandbox=on is seen to fail; the workload still runs.
 * Usage: t_sandbox VSCSID VSCSICTL */
#include "t_common.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

#define MiB (1ull << 20)

static char g_tmp[128];                 /* pr-state and run-time images */
static char g_pr[192];
static const char *g_ctl;
static char g_qmp[192];
static char g_loop[64];                 /* loop device for blockdev-add, or "" */
static bool g_sandbox_expected = true;

static struct vuf_vscsid_disk disks[] = {
    { .size = 16 * MiB, .target = 0, .lun = 0,
      .drive_opts = "aio=threads,cache=writethrough,discard=unmap" },   /* + pr-state */
    { .size = 16 * MiB, .target = 0, .lun = 1, .drive_opts = "cache=none,discard=unmap" },
    { .size = 16 * MiB, .target = 0, .lun = 2, .drive_opts = "discard=unmap" },
};
#define NDISKS (sizeof(disks) / sizeof(disks[0]))

/* Seccomp mode and NoNewPrivs of one task ("Seccomp:\t2"). */
static int status_field(const char *path, const char *key)
{
    char line[256];
    size_t n = strlen(key);
    int v = -1;
    FILE *f = fopen(path, "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, n) && line[n] == ':')
            v = (int)strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* How many tasks of pid run with seccomp mode 2 and no_new_privs; *ntasks. */
static unsigned filtered_tasks(pid_t pid, unsigned *ntasks)
{
    char path[320];
    unsigned n = 0;
    struct dirent *de;
    DIR *d;

    *ntasks = 0;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        (*ntasks)++;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
        if (status_field(path, "Seccomp") == 2 && status_field(path, "NoNewPrivs") == 1)
            n++;
    }
    closedir(d);
    return n;
}

/* Can this vscsid have the sandbox at all? An explicit --sandbox=on that
 * fails at start-up says no. */
static bool sandbox_supported(void)
{
    char sock[192];
    struct vuf_proc p;
    char *argv[] = { (char *)g_exe, "--socket", sock, "--drive", "driver=null,size=1M,id=n",
                     "--device", "scsi-hd,drive=n", "--sandbox=on", NULL };
    bool ok;

    snprintf(sock, sizeof(sock), "%s/probe.sock", g_tmp);
    if (vuf_proc_spawn(&p, argv) < 0)
        return false;
    ok = vuf_proc_wait_socket(&p, sock, 5000) == 0;
    if (ok) {
        CHECK_EQ(vuf_proc_stop(&p, 5000), 0);
    } else if (vuf_proc_alive(&p)) {
        /* still starting after 5 s (a loaded machine): not a refusal */
        vuf_proc_stop(&p, 1000);
        ok = true;
    }
    unlink(sock);
    return ok;
}

static void test_default_is_on(void)
{
    unsigned ntasks, n = filtered_tasks(g_d.proc.pid, &ntasks);

    /* vscsid listens before start-up is over and installs the filter at its
     * end: give it that moment (at most 5 s) before looking */
    for (int ms = 0; ms < 5000 && (n == 0 || n != ntasks); ms += 10) {
        usleep(10 * 1000);
        n = filtered_tasks(g_d.proc.pid, &ntasks);
    }

    if (n == 0 && !sandbox_supported()) {
        fprintf(stderr, "  the sandbox is not available to this vscsid (--sandbox=on fails): "
                "checks that it is on are skipped\n");
        g_sandbox_expected = false;
        return;
    }
    fprintf(stderr, "  %u of %u task(s) filtered\n", n, ntasks);
    CHECK(ntasks > 0);
    CHECK_EQ(n, ntasks);
}

/* Reads and writes (plain and FUA), flush, UNMAP, WRITE SAME with and
 * without UNMAP, GET LBA STATUS, READ CAPACITY on one LUN. */
static void lun_workload(struct vuf *h, unsigned t, unsigned l)
{
    static uint8_t w[64 * 1024], rd[64 * 1024], zero[BS];
    uint8_t cdb[16], par[24], cap[32], lbas[64];

    vuf_pattern(w, sizeof(w), 0, 77 + t * 100 + l);
    rw10(h, t, l, true, 128, sizeof(w) / BS, w);
    vuf_cdb_rw16(cdb, true, 512, 8);
    cdb[1] |= 0x08;                             /* FUA */
    scsi_good(h, t, l, cdb, 16, w, 8 * BS, NULL, 0, "WRITE(16) FUA");
    rw10(h, t, l, false, 128, sizeof(rd) / BS, rd);
    CHECK_MEM(rd, w, sizeof(w));
    vuf_cdb_sync_cache10(cdb);
    scsi_good(h, t, l, cdb, 10, NULL, 0, NULL, 0, "SYNCHRONIZE CACHE");
    /* UNMAP 8 blocks at 128 (SBC-4 5.30) */
    memset(cdb, 0, 10);
    cdb[0] = 0x42;
    cdb[8] = 24;
    memset(par, 0, sizeof(par));
    par[1] = 22;
    par[3] = 16;
    par[15] = 128;
    par[19] = 8;
    scsi_good(h, t, l, cdb, 10, par, 24, NULL, 0, "UNMAP");
    /* WRITE SAME(16) with UNMAP, then without (zero-out) */
    memset(cdb, 0, 16);
    cdb[0] = 0x93;
    cdb[1] = 0x08;
    cdb[9] = 136;
    cdb[13] = 8;
    scsi_good(h, t, l, cdb, 16, zero, BS, NULL, 0, "WRITE SAME(16) UNMAP");
    cdb[1] = 0;
    cdb[9] = 144;
    scsi_good(h, t, l, cdb, 16, zero, BS, NULL, 0, "WRITE SAME(16)");
    /* GET LBA STATUS from 0 (SBC-4 5.7) */
    memset(cdb, 0, 16);
    cdb[0] = 0x9e;
    cdb[1] = 0x12;
    cdb[13] = sizeof(lbas);
    scsi_good(h, t, l, cdb, 16, NULL, 0, lbas, sizeof(lbas), "GET LBA STATUS");
    vuf_cdb_read_capacity16(cdb, sizeof(cap));
    scsi_good(h, t, l, cdb, 16, NULL, 0, cap, sizeof(cap), "READ CAPACITY(16)");
}

static void test_block_io(void)
{
    struct vuf *h = session();

    if (!h)
        return;
    for (unsigned i = 0; i < NDISKS; i++)
        lun_workload(h, disks[i].target, disks[i].lun);
    vuf_free(h);
}

/* PERSISTENT RESERVE OUT REGISTER with APTPL: the state file is written
 * (fopen, fsync, rename) under the sandbox. */
static void test_pr_aptpl(void)
{
    struct vuf *h = session();
    uint8_t cdb[10] = { 0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0 }, par[24] = { 0 };
    struct stat st;
    char line[128];
    bool reg = false;
    FILE *f;

    if (!h)
        return;
    par[15] = 0x42;                             /* SERVICE ACTION RESERVATION KEY */
    par[20] = 0x01;                             /* APTPL */
    scsi_good(h, 0, 0, cdb, 10, par, 24, NULL, 0, "PR OUT REGISTER APTPL");
    vuf_free(h);
    CHECK_EQ(stat(g_pr, &st), 0);
    f = fopen(g_pr, "r");
    CHECK(f != NULL);
    while (f && fgets(line, sizeof(line), f))
        reg = reg || !strncmp(line, "reg ", 4);
    if (f)
        fclose(f);
    CHECK(reg);
}

/* vscsictl --qmp g_qmp ARGS...; returns its exit status. */
static int ctl(const char *args)
{
    char c[1024];
    int st;

    snprintf(c, sizeof(c), "'%s' --qmp '%s' %s >/dev/null", g_ctl, g_qmp, args);
    st = system(c);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "  vscsictl %s: status 0x%x\n", args, (unsigned)st);
        return -1;
    }
    return 0;
}

/* A drive and a device added over QMP, used, queried, removed. drv_opts: the
 * blockdev-add members after node-name. */
static void hot_lun(const char *node, const char *drv_opts, unsigned lun)
{
    char a[512];
    struct vuf *h;

    snprintf(a, sizeof(a), "blockdev-add node-name=%s discard=unmap %s", node, drv_opts);
    CHECK_EQ(ctl(a), 0);
    snprintf(a, sizeof(a), "device_add driver=scsi-hd drive=%s scsi-id=1 lun=%u id=dev-%s", node,
             lun, node);
    CHECK_EQ(ctl(a), 0);
    h = session();
    if (h) {
        CHECK_EQ(vuf_scsi_clear_ua(h, 1, lun), 0);
        lun_workload(h, 1, lun);
        vuf_free(h);
    }
    CHECK_EQ(ctl("query-block"), 0);
    CHECK_EQ(ctl("query-blockstats"), 0);
    CHECK_EQ(ctl("query-scsi-devices"), 0);
    snprintf(a, sizeof(a), "device_del id=dev-%s", node);
    CHECK_EQ(ctl(a), 0);
    snprintf(a, sizeof(a), "blockdev-del node-name=%s", node);
    CHECK_EQ(ctl(a), 0);
}

static void test_qmp_runtime(void)
{
    char path[256], a[512];

    snprintf(path, sizeof(path), "%s/hot.img", g_tmp);
    CHECK_EQ(vuf_make_image(path, 8 * MiB, 4242), 0);
    snprintf(a, sizeof(a), "driver=raw file.driver=file file.filename=%s file.aio=threads", path);
    /* grown while attached: ftruncate under the sandbox */
    CHECK_EQ(ctl("query-version"), 0);
    hot_lun("hot1", a, 0);
    /* driver=memory made at run time: memfd_create, hole punching */
    hot_lun("mem1", "driver=memory size=8388608", 2);
    snprintf(a, sizeof(a), "blockdev-add node-name=grow driver=raw file.driver=file "
             "file.filename=%s", path);
    CHECK_EQ(ctl(a), 0);
    CHECK_EQ(ctl("device_add driver=scsi-hd drive=grow scsi-id=1 lun=5 id=dev-grow"), 0);
    CHECK_EQ(ctl("block_resize node-name=grow size=16777216"), 0);
    CHECK_EQ(ctl("device_del id=dev-grow"), 0);
    CHECK_EQ(ctl("blockdev-del node-name=grow"), 0);
    if (g_loop[0]) {
        /* a block device opened at run time: BLKGETSIZE64, BLKSSZGET,
         * BLKDISCARD, BLKZEROOUT */
        snprintf(a, sizeof(a), "driver=raw file.driver=file file.filename=%s file.aio=threads",
                 g_loop);
        hot_lun("bdev", a, 1);
    } else {
        fprintf(stderr, "  (no loop device: the block-device ioctls are not exercised)\n");
    }
}

/* After all of that, still sandboxed in every thread (pool workers too). */
static void test_still_on(void)
{
    unsigned ntasks, n = filtered_tasks(g_d.proc.pid, &ntasks);

    if (!g_sandbox_expected)
        return;
    fprintf(stderr, "  %u of %u task(s) filtered\n", n, ntasks);
    CHECK(ntasks > 1);                          /* the block pool runs */
    CHECK_EQ(n, ntasks);
}

/* --sandbox=off: no filter beyond what we run under ourselves, and it serves. */
static void test_off(void)
{
    static const struct vuf_vscsid_disk one[] = { { .size = 4 * MiB, .target = 0, .lun = 0 } };
    static const char *const extra[] = { "--sandbox=off", NULL };
    struct vuf_vscsid d;
    char path[64];
    uint8_t w[4096], rd[4096];
    struct vuf *h;

    if (vuf_vscsid_start(&d, g_exe, one, 1, extra) < 0) {
        CHECK(0);
        return;
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)d.proc.pid);
    CHECK_EQ(status_field(path, "Seccomp"), status_field("/proc/self/status", "Seccomp"));
    CHECK_EQ(status_field(path, "Seccomp_filters"), status_field("/proc/self/status", "Seccomp_filters"));
    h = vuf_new(&(struct vuf_opts){ .num_queues = 4 });
    if (h && vuf_open(h, d.sock) == 0) {
        CHECK_EQ(vuf_scsi_clear_ua(h, 0, 0), 0);
        vuf_pattern(w, sizeof(w), 0, 99);
        rw10(h, 0, 0, true, 8, 8, w);
        rw10(h, 0, 0, false, 8, 8, rd);
        CHECK_MEM(rd, w, sizeof(w));
    } else {
        CHECK(0);
    }
    vuf_free(h);
    CHECK_EQ(vuf_vscsid_stop(&d), 0);
    vuf_vscsid_cleanup(&d);
}

static void test_bad_value(void)
{
    char c[512], sock[192];
    int st;

    snprintf(sock, sizeof(sock), "%s/bad.sock", g_tmp);
    snprintf(c, sizeof(c), "'%s' --socket '%s' --sandbox=maybe 2>'%s/bad.err'", g_exe, sock, g_tmp);
    st = system(c);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(c, sizeof(c), "grep -q -- '--sandbox maybe: expected on or off' '%s/bad.err'", g_tmp);
    CHECK_EQ(system(c), 0);
    CHECK(access(sock, F_OK) < 0);
}

/* A loop device over a sparse file in g_tmp (root and losetup only). */
static void loop_setup(void)
{
    char c[512];
    FILE *p;

    if (geteuid() != 0 || system("command -v losetup >/dev/null 2>&1") != 0)
        return;
    snprintf(c, sizeof(c), "truncate -s 16M '%s/loop.img' && losetup -f --show '%s/loop.img' 2>/dev/null",
             g_tmp, g_tmp);
    p = popen(c, "r");
    if (!p)
        return;
    if (!fgets(g_loop, sizeof(g_loop), p))
        g_loop[0] = 0;
    pclose(p);
    g_loop[strcspn(g_loop, "\n")] = 0;
}

static void loop_teardown(void)
{
    char c[128];

    if (!g_loop[0])
        return;
    snprintf(c, sizeof(c), "losetup -d '%s'", g_loop);
    if (system(c) != 0)
        fprintf(stderr, "  losetup -d %s failed\n", g_loop);
}

int main(int argc, char **argv)
{
    static char opts0[256];
    static const char *extra[3];
    struct statfs sf;
    int rc;

    g_ctl = vuf_find_exe(argc > 2 ? argv[2] : NULL, "VSCSICTL");
    if (!g_ctl) {
        fprintf(stderr, "SKIP: no vscsictl (pass its path as the second argument or set VSCSICTL)\n");
        return 77;
    }
    if (vuf_tmpdir(g_tmp, sizeof(g_tmp)) < 0)
        return 1;
    snprintf(g_pr, sizeof(g_pr), "%s/pr0", g_tmp);
    snprintf(opts0, sizeof(opts0), "pr-state=%s", g_pr);
    disks[0].device_opts = opts0;
    /* O_DIRECT needs a file system that has it (not tmpfs) */
    if (statfs(g_tmp, &sf) == 0 && sf.f_type == 0x01021994)
        disks[1].drive_opts = "cache=writeback,discard=unmap";
    snprintf(g_qmp, sizeof(g_qmp), "%s/qmp", g_tmp);
    extra[0] = "--qmp";
    extra[1] = g_qmp;
    loop_setup();
    start_daemon(argc, argv, disks, NDISKS, extra);
    RUN(test_default_is_on);
    RUN(test_block_io);
    RUN(test_pr_aptpl);
    RUN(test_qmp_runtime);
    RUN(test_still_on);
    RUN(test_off);
    RUN(test_bad_value);
    rc = finish();          /* SIGTERM: drain, flush, exit 0 under the sandbox */
    loop_teardown();
    vuf_rmtree(g_tmp);
    return rc;
}

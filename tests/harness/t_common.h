/* Shared by the vscsid harness tests: one daemon per program, a fresh
 * vhost-user session per case, and a check after every case that the daemon
 * is alive (restarted if not, so later cases still run). */
#ifndef T_COMMON_H
#define T_COMMON_H

#include "test.h"
#include "vuf.h"
#include "vuf_proc.h"
#include "vuf_scsi.h"
#include "vuf_vscsid.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BS 512u

static struct vuf_vscsid g_d;
static const char *g_exe;
static const struct vuf_vscsid_disk *g_disks;
static unsigned g_ndisks;
static const char *const *g_extra;
static unsigned g_crashes;

/* Default session: like QEMU with 2 vCPUs (2 request queues), 128-entry rings. */
static inline struct vuf *session_opts(struct vuf_opts *o, bool clear_ua)
{
    if (!o->num_queues)
        o->num_queues = 4;
    struct vuf *h = vuf_new(o);
    CHECK(h != NULL);
    if (!h)
        return NULL;
    int rc = vuf_open(h, g_d.sock);
    if (rc) {
        fprintf(stderr, "  vuf_open: %s\n", strerror(-rc));
        CHECK_EQ(rc, 0);
        vuf_free(h);
        return NULL;
    }
    for (unsigned i = 0; clear_ua && i < g_ndisks; i++) {
        rc = vuf_scsi_clear_ua(h, g_disks[i].target, g_disks[i].lun);
        if (rc) {
            fprintf(stderr, "  TUR on %u:%u never GOOD: %s\n", g_disks[i].target, g_disks[i].lun,
                    strerror(-rc));
            CHECK_EQ(rc, 0);
        }
    }
    return h;
}

static inline struct vuf *session(void)
{
    struct vuf_opts o = { 0 };
    return session_opts(&o, true);
}

static inline const char *res_str(const struct vuf_scsi_result *r)
{
    static char buf[160];
    return vuf_scsi_result_str(r, buf, sizeof(buf));
}

/* Any command on LUN t:l; returns vuf_scsi_cmd's rc, and CHECKs that the
 * device answered GOOD (what names the command in the message). */
static inline int scsi_good(struct vuf *h, unsigned t, unsigned l, const uint8_t *cdb, unsigned len,
                            const void *out, uint32_t out_len, void *in, uint32_t in_len,
                            const char *what)
{
    struct vuf_scsi_result r;
    int rc = vuf_scsi_cmd(h, t, l, cdb, len, out, out_len, in, in_len, &r);

    CHECK_EQ(rc, 0);
    if (rc == 0 && (r.response || r.status)) {
        fprintf(stderr, "  %s on %u:%u: %s\n", what, t, l, res_str(&r));
        CHECK(0);
        return -EIO;
    }
    return rc;
}

/* Plain READ/WRITE(10) on the first request queue; returns vuf_scsi_do's rc,
 * and CHECKs GOOD. */
static inline int rw10(struct vuf *h, unsigned t, unsigned l, bool write, uint32_t lba, uint16_t blocks,
                void *buf)
{
    uint8_t cdb[16];
    struct vuf_scsi_result r;
    vuf_cdb_rw10(cdb, write, lba, blocks);
    int rc = vuf_scsi_cmd(h, t, l, cdb, 10, write ? buf : NULL, write ? blocks * BS : 0,
                          write ? NULL : buf, write ? 0 : blocks * BS, &r);
    CHECK_EQ(rc, 0);
    if (rc == 0 && (r.response || r.status || r.canary_hit)) {
        fprintf(stderr, "  %s lba %u x%u: %s\n", write ? "WRITE" : "READ", lba, blocks, res_str(&r));
        CHECK(0);
        return -EIO;
    }
    return rc;
}

/* Expected initial content of disk i. */
static inline void disk_pattern(unsigned i, void *buf, size_t len, uint64_t off)
{
    vuf_pattern(buf, len, off, 1000 + i);
}

/* A new session works: INQUIRY, a write and a read back on the first disk. */
static inline void check_serves(void)
{
    struct vuf *h = session();
    if (!h)
        return;
    uint8_t cdb[6], inq[36];
    struct vuf_scsi_result r;
    vuf_cdb_inquiry(cdb, false, 0, 36);
    CHECK_EQ(vuf_scsi_cmd(h, g_disks[0].target, g_disks[0].lun, cdb, 6, NULL, 0, inq, 36, &r), 0);
    CHECK_EQ(r.status, VUF_SAM_GOOD);
    uint8_t w[4096], rd[4096];
    vuf_pattern(w, sizeof(w), 0, (uint32_t)vuf_now_ms());
    rw10(h, g_disks[0].target, g_disks[0].lun, true, 64, 8, w);
    rw10(h, g_disks[0].target, g_disks[0].lun, false, 64, 8, rd);
    CHECK_MEM(rd, w, sizeof(w));
    vuf_free(h);
}

static inline void ensure_daemon(const char *after)
{
    if (vuf_proc_alive(&g_d.proc))
        return;
    char b[96];
    fprintf(stderr, "  DAEMON DIED during %s: %s\n", after,
            vuf_proc_status_str(g_d.proc.status, b, sizeof(b)));
    test_failures++;
    g_crashes++;
    if (vuf_vscsid_restart(&g_d) < 0) {
        fprintf(stderr, "  cannot restart vscsid, giving up\n");
        vuf_vscsid_cleanup(&g_d);
        test_exit();
        exit(1);
    }
}

/* Wait until the daemon is stopped by SIGSTOP (state T in /proc/PID/stat). */
static inline void wait_stopped(pid_t pid)
{
    char path[64], st[512];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(st, 1, sizeof(st) - 1, f) : 0;
        if (f)
            fclose(f);
        st[n] = 0;
        char *p = strrchr(st, ')');
        if (p && p[1] == ' ' && p[2] == 'T')
            return;
        usleep(1000);
    }
}

#define RUN(fn) do { RUN_TEST(fn); ensure_daemon(#fn); } while (0)

/* Resident memory of a process (VmRSS, kB), -1 when unknown. */
static inline long vm_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Start vscsid (skip with 77 when there is none). */
static void start_daemon(int argc, char **argv, const struct vuf_vscsid_disk *disks, unsigned n,
                         const char *const *extra)
{
    signal(SIGPIPE, SIG_IGN);
    g_exe = vuf_vscsid_exe(argc, argv);
    if (!g_exe) {
        fprintf(stderr, "SKIP: no vscsid (pass its path or set VSCSID)\n");
        exit(77);
    }
    g_disks = disks;
    g_ndisks = n;
    g_extra = extra;
    if (vuf_vscsid_start(&g_d, g_exe, disks, n, extra) < 0) {
        fprintf(stderr, "FAIL: cannot start %s\n", g_exe);
        exit(1);
    }
}

/* Stop the daemon: it must still be running and exit cleanly (a test
 * failure otherwise). A suite may start it again with other options. */
static void stop_daemon(void)
{
    if (vuf_vscsid_stop(&g_d) < 0)
        test_failures++;
    vuf_vscsid_cleanup(&g_d);
}

static int finish(void)
{
    stop_daemon();
    if (g_crashes)
        fprintf(stderr, "vscsid crashed %u time(s)\n", g_crashes);
    return test_exit();
}

/* The harness suites run a second time with VUF_VSCSID_ARGS=--iothreads=N:
 * request queues are then served by other threads than QMP and the control
 * queue, so which of a kick and a QMP command is seen first is a race. */
static inline bool iothreads_in_use(void)
{
    const char *a = getenv("VUF_VSCSID_ARGS");

    return a && strstr(a, "--iothreads") && !strstr(a, "--iothreads=0");
}

#endif

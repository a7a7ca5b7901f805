/* Run a vscsid for a test. */
#include "vuf_vscsid.h"
#include "vuf.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int add_arg(struct vuf_vscsid *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int add_arg(struct vuf_vscsid *d, const char *fmt, ...)
{
    if (d->argc + 1 >= VUF_VSCSID_MAX_ARGS)
        return -E2BIG;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->argbuf + d->arglen, sizeof(d->argbuf) - d->arglen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(d->argbuf) - d->arglen)
        return -E2BIG;
    d->argv[d->argc++] = d->argbuf + d->arglen;
    d->argv[d->argc] = NULL;
    d->arglen += (unsigned)n + 1;
    return 0;
}

int vuf_vscsid_start(struct vuf_vscsid *d, const char *exe, const struct vuf_vscsid_disk *disks,
                     unsigned n, const char *const *extra)
{
    memset(d, 0, sizeof(*d));
    if (n > VUF_VSCSID_MAX_DISKS)
        return -EINVAL;
    int rc = vuf_tmpdir(d->dir, sizeof(d->dir));
    if (rc < 0) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(-rc));
        return rc;
    }
    snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
    rc = add_arg(d, "%s", exe);
    rc = rc ? rc : add_arg(d, "--socket");
    rc = rc ? rc : add_arg(d, "%s", d->sock);
    d->ndisks = n;
    for (unsigned i = 0; i < n && !rc; i++) {
        d->disks[i] = disks[i];
        if (disks[i].drive) {
            rc = add_arg(d, "--drive");
            rc = rc ? rc : add_arg(d, "%s,id=d%u", disks[i].drive, i);
        } else {
            snprintf(d->img[i], sizeof(d->img[i]), "%s/d%u.img", d->dir, i);
            rc = vuf_make_image(d->img[i], disks[i].size, 1000 + i);
            if (rc < 0) {
                fprintf(stderr, "create %s: %s\n", d->img[i], strerror(-rc));
                break;
            }
            rc = add_arg(d, "--drive");
            rc = rc ? rc : add_arg(d, "file=%s,id=d%u%s%s", d->img[i], i,
                                   disks[i].drive_opts ? "," : "",
                                   disks[i].drive_opts ? disks[i].drive_opts : "");
        }
        rc = rc ? rc : add_arg(d, "--device");
        rc = rc ? rc : add_arg(d, "scsi-hd,drive=d%u,scsi-id=%u,lun=%u%s%s", i, disks[i].target,
                               disks[i].lun, disks[i].device_opts ? "," : "",
                               disks[i].device_opts ? disks[i].device_opts : "");
    }
    for (unsigned i = 0; extra && extra[i] && !rc; i++)
        rc = add_arg(d, "%s", extra[i]);
    /* VUF_VSCSID_ARGS: options added to every vscsid the tests start (the
     * suite runs again with --iothreads=2), space-separated */
    const char *env = getenv("VUF_VSCSID_ARGS");
    if (env && !rc) {
        char buf[256], *save = NULL;

        snprintf(buf, sizeof(buf), "%s", env);
        for (char *t = strtok_r(buf, " ", &save); t && !rc; t = strtok_r(NULL, " ", &save))
            rc = add_arg(d, "%s", t);
    }
    if (rc < 0) {
        vuf_vscsid_cleanup(d);
        return rc;
    }
    rc = vuf_vscsid_restart(d);
    if (rc < 0)
        vuf_vscsid_cleanup(d);
    return rc;
}

int vuf_vscsid_restart(struct vuf_vscsid *d)
{
    if (vuf_proc_alive(&d->proc))
        return -EBUSY;
    unlink(d->sock);
    int rc = vuf_proc_spawn(&d->proc, d->argv);
    if (rc < 0)
        return rc;
    return vuf_proc_wait_socket(&d->proc, d->sock, 5000);
}

int vuf_vscsid_stop(struct vuf_vscsid *d)
{
    return vuf_proc_stop(&d->proc, 5000);
}

void vuf_vscsid_cleanup(struct vuf_vscsid *d)
{
    if (vuf_proc_alive(&d->proc)) {
        kill(d->proc.pid, SIGKILL);
        waitpid(d->proc.pid, NULL, 0);
    }
    d->proc.pid = 0;
    if (d->dir[0])
        vuf_rmtree(d->dir);
    d->dir[0] = 0;
}

const char *vuf_vscsid_exe(int argc, char **argv)
{
    return vuf_find_exe(argc > 1 ? argv[1] : NULL, "VSCSID");
}

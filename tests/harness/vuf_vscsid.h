/* Run a vscsid for a test: temp dir, image files, QEMU-style CLI, verdict. */
#ifndef VUF_VSCSID_H
#define VUF_VSCSID_H

#include "vuf_proc.h"

#include <stdint.h>

#define VUF_VSCSID_MAX_DISKS 8
#define VUF_VSCSID_MAX_ARGS  64

struct vuf_vscsid_disk {
    uint64_t size;              /* image bytes (pattern-filled, seed 1000 + index) */
    unsigned target, lun;
    const char *drive_opts;     /* appended to --drive file=..,id=dN (e.g. "readonly=on") */
    const char *device_opts;    /* appended to --device scsi-hd,drive=dN,... */
    const char *drive;          /* if set: --drive DRIVE,id=dN and no image (e.g. "driver=null,size=1G") */
};

struct vuf_vscsid {
    struct vuf_proc proc;
    char dir[128];
    char sock[192];
    unsigned ndisks;
    char img[VUF_VSCSID_MAX_DISKS][192];
    struct vuf_vscsid_disk disks[VUF_VSCSID_MAX_DISKS];
    char *argv[VUF_VSCSID_MAX_ARGS];
    unsigned argc;
    char argbuf[4096];
    unsigned arglen;
};

/* Create the temp dir and images, start exe with --socket and one --drive/
 * --device pair per disk plus extra (NULL-terminated, may be NULL), and wait
 * for the socket. 0 or -errno (messages on stderr). */
int vuf_vscsid_start(struct vuf_vscsid *d, const char *exe, const struct vuf_vscsid_disk *disks,
                     unsigned n, const char *const *extra);
/* Start again with the same arguments and images (after a crash). */
int vuf_vscsid_restart(struct vuf_vscsid *d);
/* SIGTERM and verdict, see vuf_proc_stop. */
int vuf_vscsid_stop(struct vuf_vscsid *d);
/* Stop if running (no verdict) and remove the temp dir. */
void vuf_vscsid_cleanup(struct vuf_vscsid *d);
/* vscsid path: argv[1] if given, else env VSCSID; NULL if absent. */
const char *vuf_vscsid_exe(int argc, char **argv);

#endif

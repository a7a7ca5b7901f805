/* Backend processes for tests: temp dir, image file, spawn, stop, verdict. */
#ifndef VUF_PROC_H
#define VUF_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct vuf_proc {
    pid_t pid;
    char name[64];
    bool reaped;
    int status;             /* waitpid status once reaped */
};

/* fork + exec argv (argv[0] is the path). The child dies with the test
 * (PR_SET_PDEATHSIG); stdin is /dev/null, stdout/stderr are inherited. */
int vuf_proc_spawn(struct vuf_proc *p, char *const argv[]);
/* Still running? Reaps it if it exited. */
bool vuf_proc_alive(struct vuf_proc *p);
/* Wait until path is a socket (or the process died / timeout). 0 or -errno. */
int vuf_proc_wait_socket(struct vuf_proc *p, const char *path, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns 0 when the process ran
 * until we stopped it and then exited 0 or by our SIGTERM; -1 (with a message
 * on stderr) when it died on its own, crashed, exited non-zero (sanitizers)
 * or ignored SIGTERM. */
int vuf_proc_stop(struct vuf_proc *p, int timeout_ms);
/* Describe a waitpid status ("exit 1", "signal 11 (Segmentation fault)"). */
const char *vuf_proc_status_str(int status, char *buf, size_t len);
/* Open fds of the process (via /proc), -1 on error. */
int vuf_proc_count_fds(const struct vuf_proc *p);

/* A private temp dir (short path: unix sockets allow 107 bytes). */
int vuf_tmpdir(char *out, size_t len);
/* Remove the files directly inside dir, then dir. */
void vuf_rmtree(const char *dir);
/* Create path with size bytes of vuf_pattern(seed) content. */
int vuf_make_image(const char *path, uint64_t size, uint32_t seed);
/* Compare file bytes [off, off+len) with buf: 0 equal, 1 differ (first
 * differing offset printed), -errno on read error. */
int vuf_file_cmp(const char *path, uint64_t off, const void *buf, size_t len);

/* Path of a helper binary: argv value if non-NULL, else env var, else NULL. */
const char *vuf_find_exe(const char *arg, const char *env);

#endif

/* seccomp allow-list for vscsid (issue 5, least privilege).
 *
 * Installed by main.c after start-up: every listening socket, image and
 * pr-state file given on the command line is open, privileges are dropped,
 * and the event loop is about to run. From then on the daemon only moves
 * data between fds it has (vhost-user sockets, guest memory, images), opens
 * images named over QMP, and creates helper fds (memfd, eventfd, io_uring).
 * Everything else -- new sockets, exec, fork, ptrace, mount, setuid, ... --
 * kills the process (SCMP_ACT_KILL_PROCESS, SIGSYS) instead of failing with
 * an errno the attacker could probe around.
 *
 * The list was found by reading the code paths and by tracing the test suite
 * (scripts/syscall-trace.sh: strace -f over every harness test and guest
 * scenario, counting the calls made after the sandbox point); see
 * docs/robustness.md. Entries are grouped by the code that needs them. Names
 * are resolved at run time, so a call this architecture lacks is skipped.
 *
 * What it does not restrict: which files openat() may open (images come and
 * go over QMP; --user limits that), and what an io_uring submission does (the
 * kernel runs ring operations without seccomp checks). */
#include "util/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vscsi-config.h"

#ifdef VSCSI_HAVE_SECCOMP
#include <linux/fs.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Allowed with any arguments. Where glibc uses a different call for the same
 * function on other architectures, both are listed (unknown names are
 * skipped). */
static const char *const allow_any[] = {
    /* Event loop (src/util/loop.c): epoll and its wake-up eventfd; reads and
     * writes on every fd we hold (eventfds, kick/call fds, the signalfd main.c
     * set up, sockets, log). timerfd: not used today, but the loop's natural
     * timer source (it makes a clock fd, nothing more), so error-policy or
     * media timers need no sandbox change. */
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "read", "write", "close",
    "poll", "ppoll",            /* dev.c: waiting to send a vhost-user reply */
    "writev",                   /* glibc's fatal messages (fortify, malloc checks) before abort() */

    /* Signals: SIGPIPE ignored, the SIGBUS guard for guest memory installed
     * on the first unsealed region (vhost/mem.c) and returning from it; the
     * block pool blocks all signals while it starts threads; a restarted
     * system call after a signal. */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "restart_syscall",

    /* vhost-user sessions (vhost/dev.c, msg.c) and QMP clients (mgmt/qmp.c):
     * a reconnecting frontend or a new QMP client is accept4()ed on the
     * listening socket we already have; vhost-user messages carry fds with
     * SCM_RIGHTS (recvmsg/sendmsg); send()/recv() are sendto/recvfrom;
     * shutdown() ends a QMP client. No socket(), bind(), listen() or
     * connect() after start-up. */
    "accept4", "recvmsg", "sendmsg", "recvfrom", "sendto", "shutdown",

    /* Guest memory and inflight regions (vhost/mem.c, msg.c): map the
     * frontend's memfds (mmap is filtered below), unmap them on
     * SET_MEM_TABLE/REM_MEM_REG/reconnect, MADV_DONTDUMP; our own sealed
     * inflight memfd (memfd_create, ftruncate, F_ADD_SEALS), F_GET_SEALS on
     * the frontend's. malloc: brk, mremap (realloc), madvise (free). */
    "munmap", "mremap", "madvise", "brk", "memfd_create", "ftruncate", "fcntl",

    /* io_uring engine (block/uring.c): a ring per block context, created
     * with it (also later, for contexts made at run time) and entered for
     * every batch. */
    "io_uring_setup", "io_uring_enter", "io_uring_register",

    /* Block I/O without io_uring (block/file.c, the thread pool and
     * aio=threads): positional reads and writes, RWF_DSYNC writes, flushes,
     * hole punching and zeroing (fallocate), SEEK_DATA/SEEK_HOLE for GET LBA
     * STATUS; probing an image opened at run time: its size (fstat; ftruncate
     * above grows a file on block_resize) and whether it lives in memory
     * (fstatfs: tmpfs/ramfs files are served inline). ioctl is filtered
     * below. */
    "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2",
    "fsync", "fdatasync", "fallocate", "lseek", "fstat", "newfstatat", "fstatfs",

    /* Files opened at run time: images (blockdev-add, and whatever opens
     * media later), pr-state files (scsi/pr.c writes PATH.tmp, fsyncs and
     * renames it). unlink: the socket files at exit, a failed pr-state
     * temporary file. */
    "openat", "rename", "renameat", "renameat2", "unlink", "unlinkat",

    /* Block thread pool (block/threads.c), started on demand: glibc's
     * pthread_create (clone is filtered below) and what a new thread
     * registers, futexes, thread exit. */
    "futex", "set_robust_list", "rseq", "exit",

    /* Time: logging and accounting read clocks through the vDSO; these are
     * its fallbacks when the clock source has no vDSO support. */
    "clock_gettime", "time",

    /* glibc: qsort() of a large array (query-scsi-devices with many LUNs)
     * asks sysinfo() for the memory size; abort() and raise() signal
     * themselves (getpid, gettid; tgkill is filtered below); getrandom for
     * hash seeds and arc4random. Exiting. */
    "sysinfo", "getpid", "gettid", "getrandom", "exit_group",
};

#ifdef VSCSI_HAVE_SECCOMP

/* Block-device ioctls (linux/fs.h) the block layer issues on a drive that is
 * a block device, also for drives added at run time: size and logical block
 * size when it is opened or resized, discard and zero-out (block/file.c). */
static const unsigned long allow_ioctls[] = {
    BLKGETSIZE64, BLKSSZGET, BLKDISCARD, BLKZEROOUT,
};

static int add_any(scmp_filter_ctx ctx, const char *name, unsigned *n)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0;               /* not on this architecture */
    int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (r == 0)
        (*n)++;
    return r;
}

static int build(scmp_filter_ctx ctx, unsigned *n)
{
    /* pthread_create's clone: a thread sharing memory, files and signal
     * handlers. fork() (no CLONE_VM) and other process-creating forms kill. */
    const scmp_datum_t thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    int r = 0;

    for (size_t i = 0; i < sizeof(allow_any) / sizeof(allow_any[0]) && !r; i++)
        r = add_any(ctx, allow_any[i], n);
    if (r)
        return r;
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, thread, thread));
    /* clone3 passes its flags in memory, where seccomp cannot look: glibc
     * falls back to clone when clone3 says ENOSYS. By number when this
     * libseccomp predates clone3 (else the default action would kill every
     * pthread_create on a newer kernel). */
    int clone3_nr = seccomp_syscall_resolve_name("clone3");
#ifdef __NR_clone3
    if (clone3_nr == __NR_SCMP_ERROR)
        clone3_nr = __NR_clone3;
#endif
    if (!r && clone3_nr != __NR_SCMP_ERROR)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3_nr, 0);
    /* Memory: no executable mappings at run time (nothing loads code). */
    if (!r)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (!r)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    *n += 3;
    /* ioctl: the kernel reads the request as 32 bits. */
    for (size_t i = 0; i < sizeof(allow_ioctls) / sizeof(allow_ioctls[0]) && !r; i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, allow_ioctls[i]));
    (*n)++;
    /* Signals to ourselves only (abort(), raise(), pthread_kill). */
    if (!r)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    (*n)++;
    return r;
}

bool sandbox_built_in(void)
{
    return true;
}

int sandbox_enable(char *err, size_t errlen)
{
    scmp_filter_ctx ctx;
    unsigned n = 0;
    int r;

    /* SCMP_ACT_KILL_PROCESS needs API level 3 (kernel 4.14). Killing only the
     * offending thread would leave a half-working daemon behind. */
    if (seccomp_api_get() < 3) {
        snprintf(err, errlen, "the kernel cannot kill a process on a seccomp violation "
                 "(libseccomp API level %u, need 3)", seccomp_api_get());
        return -ENOTSUP;
    }
    ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx) {
        snprintf(err, errlen, "seccomp_init failed");
        return -ENOMEM;
    }
    r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    /* Every thread, including block pool workers that already run. */
    if (!r)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (r) {
        snprintf(err, errlen, "seccomp attributes: %s", strerror(-r));
        goto out;
    }
    r = build(ctx, &n);
    if (r) {
        snprintf(err, errlen, "building the seccomp filter: %s", strerror(-r));
        goto out;
    }
    r = seccomp_load(ctx);
    if (r) {
        snprintf(err, errlen, "the kernel refused the seccomp filter: %s", strerror(-r));
        goto out;
    }
    r = (int)n;
out:
    seccomp_release(ctx);
    return r;
}

unsigned sandbox_unknown_syscalls(char *buf, size_t buflen)
{
    unsigned n = 0;
    size_t off = 0;

    if (buflen)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(allow_any) / sizeof(allow_any[0]); i++) {
        if (seccomp_syscall_resolve_name(allow_any[i]) != __NR_SCMP_ERROR)
            continue;
        n++;
        if (off < buflen) {
            int w = snprintf(buf + off, buflen - off, "%s%s", off ? " " : "", allow_any[i]);
            if (w > 0)
                off += (size_t)w;
        }
    }
    return n;
}

#else /* !VSCSI_HAVE_SECCOMP */

bool sandbox_built_in(void)
{
    return false;
}

int sandbox_enable(char *err, size_t errlen)
{
    snprintf(err, errlen, "vscsid was built without libseccomp");
    return -ENOSYS;
}

unsigned sandbox_unknown_syscalls(char *buf, size_t buflen)
{
    (void)allow_any;
    if (buflen)
        buf[0] = '\0';
    return 0;
}

#endif

/* src/util/sandbox.c: in a forked child that enables the sandbox, what the
 * daemon does at run time works, and anything else kills the whole process
 * with SIGSYS, from any thread. Skips (77) when the sandbox is not built in or
 * the kernel refuses it. */
#include "test.h"
#include "util/sandbox.h"
#include "vscsi-config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_dir[] = "/tmp/vscsi-sandbox-XXXXXX";

/* Run fn in a child with the sandbox on; returns the wait status. */
static int in_sandbox(void (*fn)(void))
{
    pid_t pid;
    int st;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        char err[256];
        int n = sandbox_enable(err, sizeof(err));
        if (n <= 0) {
            fprintf(stderr, "sandbox_enable: %s\n", err);
            _exit(77);
        }
        fn();
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return st;
}

static void expect_sigsys(const char *what, void (*fn)(void))
{
    int st = in_sandbox(fn);

    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS))
        fprintf(stderr, "  %s: status 0x%x, expected death by SIGSYS\n", what, (unsigned)st);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
}

static void do_nothing(void)
{
}

/* ---- forbidden: each of these must kill the child */

static void do_socket_inet(void) { (void)socket(AF_INET, SOCK_STREAM, 0); }
static void do_socket_unix(void) { (void)socket(AF_UNIX, SOCK_STREAM, 0); }
static void do_execve(void)
{
    char *const argv[] = { "/bin/true", NULL };
    (void)execve("/bin/true", argv, NULL);
}
static void do_fork(void)
{
    pid_t p = fork();   /* clone without CLONE_THREAD */
    if (p == 0)
        _exit(0);
}
static void do_mmap_exec(void)
{
    (void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static void do_mprotect_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        (void)mprotect(p, 4096, PROT_READ | PROT_EXEC);
}
static void do_ioctl_tty(void) { (void)ioctl(0, TIOCSTI, "x"); }
static pid_t g_parent;
static void do_kill_other(void) { (void)kill(g_parent, 0); }
static void do_setuid(void) { (void)syscall(SYS_setuid, 0); }
static void do_ptrace(void) { (void)syscall(SYS_ptrace, 0, 0, 0, 0); }
static void do_bind(void) { (void)syscall(SYS_bind, 3, NULL, 0); }

static void test_forbidden(void)
{
    expect_sigsys("socket(AF_INET)", do_socket_inet);
    expect_sigsys("socket(AF_UNIX)", do_socket_unix);
    expect_sigsys("execve", do_execve);
    expect_sigsys("fork", do_fork);
    expect_sigsys("mmap PROT_EXEC", do_mmap_exec);
    expect_sigsys("mprotect PROT_EXEC", do_mprotect_exec);
    expect_sigsys("ioctl TIOCSTI", do_ioctl_tty);
    expect_sigsys("kill(parent)", do_kill_other);
    expect_sigsys("setuid", do_setuid);
    expect_sigsys("ptrace", do_ptrace);
    expect_sigsys("bind", do_bind);
}

/* ---- allowed: what the daemon does at run time; the child exits 0 */

static void *thread_fn(void *arg)
{
    return arg;
}

static volatile sig_atomic_t g_usr1;
static void on_usr1(int sig) { (void)sig; g_usr1 = 1; }

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

#define MUST(cond) do { if (!(cond)) { fprintf(stderr, "  child: %s failed: %s\n", #cond, \
                                               strerror(errno)); _exit(1); } } while (0)

static void do_runtime(void)
{
    char path[64], buf[8192];
    struct io_uring_params p = { 0 };
    struct epoll_event ev = { .events = EPOLLIN };
    struct timespec ts;
    struct stat st;
    struct statfs sfs;
    pthread_t th;
    void *ret;
    uint64_t v = 1, size;
    int fd, efd, ep, ring, mfd, *arr;

    /* block pool threads: pthread_create (clone3 says ENOSYS, clone works) */
    MUST(pthread_create(&th, NULL, thread_fn, (void *)42) == 0);
    MUST(pthread_join(th, &ret) == 0 && ret == (void *)42);
    /* event loop pieces */
    MUST((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0);
    MUST((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0);
    MUST(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
    MUST(write(efd, &v, sizeof(v)) == sizeof(v));
    MUST(epoll_wait(ep, &ev, 1, 0) == 1);
    MUST(read(efd, &v, sizeof(v)) == sizeof(v));
    MUST(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    MUST(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0);   /* without the vDSO */
    /* a ring for a new block context */
    MUST((ring = (int)syscall(__NR_io_uring_setup, 4, &p)) >= 0);
    close(ring);
    /* an image opened at run time, block I/O on it */
    snprintf(path, sizeof(path), "%s/img", g_dir);
    MUST((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0);
    memset(buf, 0xa5, sizeof(buf));
    MUST(pwrite(fd, buf, sizeof(buf), 1 << 20) == (ssize_t)sizeof(buf));
    MUST(pread(fd, buf, sizeof(buf), 1 << 20) == (ssize_t)sizeof(buf));
    MUST(fdatasync(fd) == 0 && fsync(fd) == 0);
    MUST(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 4096) == 0);
    MUST(lseek(fd, 0, SEEK_DATA) >= 0);
    MUST(fstat(fd, &st) == 0 && fstatfs(fd, &sfs) == 0 && ftruncate(fd, 2 << 20) == 0);
    MUST(ioctl(fd, BLKGETSIZE64, &size) < 0 && errno == ENOTTY);   /* allowed, not a bdev */
    close(fd);
    /* pr-state: temporary file, renamed over the old one */
    FILE *f = fopen(path, "w");
    MUST(f != NULL);
    fprintf(f, "version 1\n");
    MUST(fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0);
    snprintf(buf, sizeof(buf), "%s/img2", g_dir);
    MUST(rename(path, buf) == 0 && unlink(buf) == 0);
    /* guest memory and the inflight region */
    MUST((mfd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING)) >= 0);
    MUST(ftruncate(mfd, 1 << 20) == 0);
    MUST(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0);
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    MUST(m != MAP_FAILED);
    MUST(madvise(m, 1 << 20, MADV_DONTDUMP) == 0);
    MUST(munmap(m, 1 << 20) == 0);
    close(mfd);
    /* allocations: large malloc, realloc (mremap), qsort of a large array
     * (glibc asks sysinfo for the memory size) */
    MUST((arr = malloc(1 << 20)) != NULL);
    MUST((arr = realloc(arr, 4 << 20)) != NULL);
    for (int i = 0; i < (1 << 20); i++)
        arr[i] = (int)(((unsigned)i * 7919u) % 65536u);
    qsort(arr, 1 << 20, sizeof(int), cmp_int);
    free(arr);
    MUST(getrandom(&v, sizeof(v), 0) == sizeof(v));
    /* signals to ourselves (raise = tgkill) */
    MUST(signal(SIGUSR1, on_usr1) != SIG_ERR);
    MUST(raise(SIGUSR1) == 0 && g_usr1);
    close(ep);
    close(efd);
}

static void test_runtime_allowed(void)
{
#ifdef VSCSI_SANITIZER_BUILD
    /* The sanitizer runtimes make calls of their own (sched_getaffinity for
     * every new thread, ptrace for the leak check): vscsid runs without the
     * sandbox in these builds (main.c), so only the kills are tested here. */
    fprintf(stderr, "  (sanitizer build: skipped)\n");
    return;
#endif
    int st = in_sandbox(do_runtime);

    if (WIFSIGNALED(st))
        fprintf(stderr, "  run-time calls: killed by signal %d\n", WTERMSIG(st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- TSYNC: a thread that ran before the filter is covered too */

static int g_pipe[2];

static void *late_socket(void *arg)
{
    char c;

    (void)arg;
    if (read(g_pipe[0], &c, 1) == 1)
        (void)socket(AF_INET, SOCK_DGRAM, 0);
    return NULL;
}

static void test_existing_threads(void)
{
    pid_t pid;
    int st = 0;

    CHECK_EQ(pipe(g_pipe), 0);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        pthread_t th;
        char err[256];

        if (pthread_create(&th, NULL, late_socket, NULL))
            _exit(2);
        if (sandbox_enable(err, sizeof(err)) <= 0)
            _exit(77);
        if (write(g_pipe[1], "x", 1) != 1)
            _exit(3);
        pthread_join(th, NULL);
        _exit(0);       /* not reached: the thread's socket() kills us */
    }
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
    close(g_pipe[0]);
    close(g_pipe[1]);
}

static void test_names(void)
{
    char buf[512];
    unsigned n = sandbox_unknown_syscalls(buf, sizeof(buf));

#if defined(__x86_64__)
    /* every name on the list is a real x86_64 system call (no typo) */
    if (n)
        fprintf(stderr, "  unknown: %s\n", buf);
    CHECK_EQ(n, 0);
#else
    (void)n;
#endif
}

int main(void)
{
    char err[256];
    int st;

    if (!sandbox_built_in()) {
        CHECK_EQ(sandbox_enable(err, sizeof(err)), -ENOSYS);
        fprintf(stderr, "SKIP: built without libseccomp\n");
        return 77;
    }
    if (!mkdtemp(g_dir))
        return 1;
    g_parent = getpid();
    /* probe: can this kernel take the filter at all? */
    st = in_sandbox(do_nothing);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        fprintf(stderr, "SKIP: the kernel refuses the seccomp filter\n");
        rmdir(g_dir);
        return 77;
    }
    RUN_TEST(test_names);
    RUN_TEST(test_forbidden);
    RUN_TEST(test_runtime_allowed);
    RUN_TEST(test_existing_threads);
    rmdir(g_dir);
    return test_exit();
}

/* Backend processes for tests. */
#include "vuf_proc.h"
#include "vuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int vuf_proc_spawn(struct vuf_proc *p, char *const argv[])
{
    memset(p, 0, sizeof(*p));
    const char *base = strrchr(argv[0], '/');
    snprintf(p->name, sizeof(p->name), "%s", base ? base + 1 : argv[0]);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 0);
            if (fd > 2)
                close(fd);
        }
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

bool vuf_proc_alive(struct vuf_proc *p)
{
    if (p->pid <= 0 || p->reaped)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->reaped = true;
        p->status = st;
        return false;
    }
    return true;
}

const char *vuf_proc_status_str(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 WCOREDUMP(st) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", st);
    return buf;
}

int vuf_proc_wait_socket(struct vuf_proc *p, const char *path, int timeout_ms)
{
    int64_t deadline = vuf_now_ms() + timeout_ms;
    for (;;) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
            return 0;
        if (p && !vuf_proc_alive(p)) {
            char b[96];
            fprintf(stderr, "%s exited before creating %s: %s\n", p->name, path,
                    vuf_proc_status_str(p->status, b, sizeof(b)));
            return -ECHILD;
        }
        if (vuf_now_ms() >= deadline) {
            fprintf(stderr, "timeout waiting for socket %s\n", path);
            return -ETIMEDOUT;
        }
        usleep(5000);
    }
}

int vuf_proc_stop(struct vuf_proc *p, int timeout_ms)
{
    char b[96];
    if (p->pid <= 0)
        return -1;
    if (!vuf_proc_alive(p)) {
        fprintf(stderr, "FAIL: %s (pid %d) died on its own: %s\n", p->name, (int)p->pid,
                vuf_proc_status_str(p->status, b, sizeof(b)));
        p->pid = 0;
        return -1;
    }
    kill(p->pid, SIGTERM);
    int64_t deadline = vuf_now_ms() + timeout_ms;
    while (vuf_proc_alive(p) && vuf_now_ms() < deadline)
        usleep(5000);
    int rc = 0;
    if (!p->reaped) {
        fprintf(stderr, "FAIL: %s (pid %d) ignored SIGTERM for %d ms, killing it\n", p->name,
                (int)p->pid, timeout_ms);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
        p->reaped = true;
        rc = -1;
    } else if (WIFSIGNALED(p->status) && WTERMSIG(p->status) == SIGTERM) {
        rc = 0;
    } else if (WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0) {
        rc = 0;
    } else {
        fprintf(stderr, "FAIL: %s (pid %d) ended badly after SIGTERM: %s\n", p->name,
                (int)p->pid, vuf_proc_status_str(p->status, b, sizeof(b)));
        rc = -1;
    }
    p->pid = 0;
    return rc;
}

int vuf_proc_count_fds(const struct vuf_proc *p)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)p->pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int vuf_tmpdir(char *out, size_t len)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t || strlen(t) > 60)
        t = "/tmp";
    if ((size_t)snprintf(out, len, "%s/vuf-XXXXXX", t) >= len)
        return -ENAMETOOLONG;
    return mkdtemp(out) ? 0 : -errno;
}

void vuf_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int vuf_make_image(const char *path, uint64_t size, uint32_t seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    static uint8_t buf[1 << 16];
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        vuf_pattern(buf, n, off, seed);
        ssize_t w = pwrite(fd, buf, n, (off_t)off);
        if (w <= 0) {
            int e = w < 0 ? -errno : -EIO;
            close(fd);
            return e;
        }
        off += (uint64_t)w;
    }
    close(fd);
    return 0;
}

int vuf_file_cmp(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t *tmp = malloc(len ? len : 1);
    if (!tmp) {
        close(fd);
        return -ENOMEM;
    }
    ssize_t n = pread(fd, tmp, len, (off_t)off);
    int rc = 0;
    if (n < 0) {
        rc = -errno;
    } else if ((size_t)n != len) {
        fprintf(stderr, "%s: short read at %llu (%zd of %zu)\n", path, (unsigned long long)off, n, len);
        rc = 1;
    } else {
        for (size_t i = 0; i < len; i++)
            if (tmp[i] != ((const uint8_t *)buf)[i]) {
                fprintf(stderr, "%s: differs at offset %llu: file 0x%02x, expected 0x%02x\n", path,
                        (unsigned long long)(off + i), tmp[i], ((const uint8_t *)buf)[i]);
                rc = 1;
                break;
            }
    }
    free(tmp);
    close(fd);
    return rc;
}

const char *vuf_find_exe(const char *arg, const char *env)
{
    const char *p = arg && *arg ? arg : (env ? getenv(env) : NULL);
    if (!p || !*p)
        return NULL;
    return access(p, X_OK) == 0 ? p : NULL;
}

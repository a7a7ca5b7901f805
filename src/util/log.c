#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_log_level = LOG_INFO;

/* The sink: stderr, or a file reopened on SIGHUP. The lock keeps a writer from
 * using an fd that log_reopen is closing. */
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_log_fd = -1;          /* -1: stderr */
static char *g_log_path;

static int open_log(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0) {
        int e = errno;

        snprintf(err, errlen, "cannot open log file '%s': %s", path, strerror(e));
        return -e;
    }
    return fd;
}

/* Make fd the sink (-1: stderr) and, when replace_path, path its name (owned);
 * the old fd is closed outside the lock, the old name freed. */
static void set_sink(int fd, bool replace_path, char *path)
{
    char *old_path = NULL;
    int old;

    pthread_mutex_lock(&g_log_lock);
    old = g_log_fd;
    g_log_fd = fd;
    if (replace_path) {
        old_path = g_log_path;
        g_log_path = path;
    }
    pthread_mutex_unlock(&g_log_lock);
    free(old_path);
    if (old >= 0)
        close(old);
}

int log_open_file(const char *path, char *err, size_t errlen)
{
    char *copy;
    int fd;

    if (!path || !*path) {
        snprintf(err, errlen, "empty log file name");
        return -EINVAL;
    }
    fd = open_log(path, err, errlen);
    if (fd < 0)
        return fd;
    copy = strdup(path);
    if (!copy) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    set_sink(fd, true, copy);
    return 0;
}

int log_reopen(char *err, size_t errlen)
{
    char path[4096];
    int fd;

    pthread_mutex_lock(&g_log_lock);
    if (!g_log_path) {
        pthread_mutex_unlock(&g_log_lock);
        return 0;
    }
    snprintf(path, sizeof(path), "%s", g_log_path);
    pthread_mutex_unlock(&g_log_lock);
    fd = open_log(path, err, errlen);
    if (fd < 0)
        return fd;
    set_sink(fd, false, NULL);
    return 0;
}

void log_close_file(void)
{
    set_sink(-1, true, NULL);
}

void log_set_level(enum log_level level) { g_log_level = level; }
enum log_level log_get_level(void) { return g_log_level; }

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    char msg[1024], line[1200];
    int n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    pthread_mutex_lock(&g_log_lock);
    if (g_log_fd >= 0) {
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%06ldZ vscsid[%d]: %s: %s\n", stamp,
                     ts.tv_nsec / 1000, (int)getpid(), names[level], msg);
    } else {
        n = snprintf(line, sizeof(line), "vscsid: %s: %s\n", names[level], msg);
    }
    if (n > (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 1;
    /* one write per line: lines from several threads never interleave */
    if (write(g_log_fd >= 0 ? g_log_fd : STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
    pthread_mutex_unlock(&g_log_lock);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (level > g_log_level)
        return;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

/* At most 10 messages per second; the rest are counted and summarised. */
void log_msg_limited(const char *fmt, ...)
{
    static __thread time_t window;
    static __thread unsigned count, dropped;
    time_t now = time(NULL);
    va_list ap;

    if (now != window) {
        if (dropped)
            log_msg(LOG_WARN, "%u guest-triggered messages suppressed", dropped);
        window = now;
        count = dropped = 0;
    }
    if (++count > 10) {
        dropped++;
        return;
    }
    va_start(ap, fmt);
    log_vmsg(LOG_WARN, fmt, ap);
    va_end(ap);
}

/* A minimal line-based QMP client for the harness tests that run vscsid with
 * --qmp (g_qmp_path): commands with their replies, events kept while waiting
 * (vscsid ends each message with \r\n). Used by t_mgmt.c and t_media.c. */
#ifndef T_QMP_H
#define T_QMP_H

#include "t_common.h"

#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>

static char g_qmp_path[108];

struct qmpc {
    int fd;
    char buf[1 << 16];
    size_t len;
    char events[64][512];       /* events read while waiting for replies */
    unsigned nevents;
};

static inline int qmp_line(struct qmpc *q, char *out, size_t cap, int timeout_ms)
{
    int64_t deadline = vuf_now_ms() + timeout_ms;

    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        if (nl) {
            size_t n = (size_t)(nl - q->buf) + 1;
            snprintf(out, cap, "%.*s", (int)(n > 2 ? n - 2 : 0), q->buf);
            memmove(q->buf, q->buf + n, q->len - n);
            q->len -= n;
            return 0;
        }
        int64_t left = deadline - vuf_now_ms();
        struct pollfd p = { .fd = q->fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -ETIMEDOUT;
        ssize_t r = recv(q->fd, q->buf + q->len, sizeof(q->buf) - q->len - 1, 0);
        if (r <= 0)
            return -ECONNRESET;
        q->len += (size_t)r;
    }
}

static inline void qmp_keep_event(struct qmpc *q, const char *line)
{
    if (q->nevents < 64) {
        size_t n = strnlen(line, sizeof(q->events[0]) - 1);
        memcpy(q->events[q->nevents], line, n);
        q->events[q->nevents++][n] = 0;
    }
}

static inline int qmp_open(struct qmpc *q)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char line[1024];
    static const char caps[] = "{\"execute\": \"qmp_capabilities\"}\r\n";

    memset(q, 0, sizeof(*q));
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_qmp_path);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    if (qmp_line(q, line, sizeof(line), 5000) < 0 || !strstr(line, "\"QMP\""))
        return -EPROTO;
    if (send(q->fd, caps, sizeof(caps) - 1, MSG_NOSIGNAL) < 0)
        return -errno;
    if (qmp_line(q, line, sizeof(line), 5000) < 0 || !strstr(line, "\"return\""))
        return -EPROTO;
    return 0;
}

static inline void qmp_close(struct qmpc *q)
{
    close(q->fd);
}

/* Send a command (printf-style, single quotes allowed); reply line in out.
 * Returns 0 for a "return" reply, -EIO for an error reply (printed unless
 * expect_error), -ETIMEDOUT/-ECONNRESET. */
static inline int qmp_do(struct qmpc *q, bool expect_error, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline int qmp_reply(struct qmpc *q, bool expect_error, const char *req, char *out, size_t cap);
static inline int qmp_do(struct qmpc *q, bool expect_error, char *out, size_t cap, const char *fmt, ...)
{
    char req[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(req, sizeof(req) - 2, fmt, ap);
    va_end(ap);
    memcpy(req + n, "\r\n", 2);
    if (send(q->fd, req, (size_t)n + 2, MSG_NOSIGNAL) < 0)
        return -errno;
    req[n] = 0;
    return qmp_reply(q, expect_error, req, out, cap);
}

/* The next reply (events before it are kept). Returns as qmp_do. */
static inline int qmp_reply(struct qmpc *q, bool expect_error, const char *req, char *out, size_t cap)
{
    char line[8192];
    int rc;

    for (;;) {
        rc = qmp_line(q, line, sizeof(line), 10000);
        if (rc < 0)
            return rc;
        if (strncmp(line, "{\"event\"", 8))
            break;
        qmp_keep_event(q, line);
    }
    if (out && cap) {
        size_t m = strnlen(line, cap - 1);
        memcpy(out, line, m);
        out[m] = 0;
    }
    if (strncmp(line, "{\"return\"", 9)) {
        if (!expect_error)
            fprintf(stderr, "  QMP %s\n  -> %s\n", req, line);
        return -EIO;
    }
    return 0;
}

#define QMP_OK(q, ...) CHECK_EQ(qmp_do((q), false, NULL, 0, __VA_ARGS__), 0)

/* Wait for an event line containing every fragment; consumes it. */
static inline bool qmp_wait_event(struct qmpc *q, const char *name, const char *frag, int timeout_ms)
{
    char line[8192];

    for (unsigned i = 0; i < q->nevents; i++) {
        if (strstr(q->events[i], name) && (!frag || strstr(q->events[i], frag))) {
            memmove(q->events[i], q->events[i + 1], (q->nevents - i - 1) * sizeof(q->events[0]));
            q->nevents--;
            return true;
        }
    }
    while (qmp_line(q, line, sizeof(line), timeout_ms) == 0) {
        if (strstr(line, name) && (!frag || strstr(line, frag)))
            return true;
        qmp_keep_event(q, line);
    }
    return false;
}

/* The next event, in arrival order (kept ones first); 0 or -ETIMEDOUT. A
 * reply read meanwhile (none is expected) is an error. */
static inline int qmp_next_event(struct qmpc *q, char *out, size_t cap, int timeout_ms)
{
    char line[8192];
    int rc;

    if (q->nevents) {
        snprintf(out, cap, "%s", q->events[0]);
        memmove(q->events[0], q->events[1], (q->nevents - 1) * sizeof(q->events[0]));
        q->nevents--;
        return 0;
    }
    rc = qmp_line(q, line, sizeof(line), timeout_ms);
    if (rc < 0)
        return rc;
    if (strncmp(line, "{\"event\"", 8)) {
        fprintf(stderr, "  QMP: expected an event, got %s\n", line);
        return -EPROTO;
    }
    snprintf(out, cap, "%s", line);
    return 0;
}

#endif

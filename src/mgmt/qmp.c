/* QMP server: unix socket, clients, framing, output buffering, events.
 * Wire protocol as QEMU's docs/interop/qmp-spec.rst: a greeting, capabilities
 * negotiation, then one reply per request and asynchronous events; every
 * message is one JSON object followed by "\r\n". All client input is
 * untrusted: limits below, never a crash or exit on its content. */
#include "mgmt/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "mgmt/qmp_cmd.h"
#include "util/json.h"
#include "util/log.h"
#include "util/loop.h"
#include "vscsi-config.h"

#define QMP_MAX_MSG      (1u << 20)     /* one request */
#define QMP_MAX_OUT      (4u << 20)     /* queued output of a client that does not read */
#define QMP_MAX_CLIENTS  64
#define QMP_READ_CHUNK   65536
#define QMP_MAX_DRAIN    (16u << 20)    /* input dropped after an oversized message */

struct qmp_client {
    struct qmp_server *s;
    int fd;
    unsigned id;
    struct ev_handler *h;
    uint32_t events;            /* current epoll interest */
    struct json_stream in;
    struct json_buf out;
    size_t out_off;             /* bytes of out already sent */
    bool command_mode;          /* past qmp_capabilities */
    bool closing;               /* execute nothing more; close once out is sent */
    /* closing after an oversized message: input is still read and dropped (up to
     * this many bytes) so that the client can finish writing and read our error;
     * we close after our EOF (shutdown) once it closes too */
    size_t drain_left;
    bool shut_wr;
    bool dead;                  /* fd closed; freed by reap() */
    struct qmp_client *next;
};

struct qmp_server {
    struct ev_loop *loop;
    struct vscsid *d;
    int lfd;
    struct ev_handler *lh;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
    struct qmp_client *clients;
    unsigned nclients;
    unsigned next_id;
    unsigned busy;              /* nesting of entry points; reap() waits for 0 */
    bool quitting;
    /* Events raised while a command runs (e.g. DEVICE_DELETED from inside
     * device_del) are sent after its reply, so a client sees the reply first. */
    unsigned dispatching;
    struct held_event *held, **held_tail;
};

struct held_event {
    char *name;
    char *data;                 /* NULL: no data */
    struct held_event *next;
};

bool qmp_server_quitting(const struct qmp_server *s)
{
    return s && s->quitting;
}

void qmp_server_set_quitting(struct qmp_server *s)
{
    if (s)
        s->quitting = true;
}

/* ---- clients ---- */

static void client_close(struct qmp_client *c, const char *why)
{
    if (c->dead)
        return;
    log_debug("qmp: client %u %s", c->id, why);
    ev_loop_del_fd(c->s->loop, c->h);
    close(c->fd);
    c->h = NULL;
    c->fd = -1;
    c->dead = true;
    c->s->nclients--;
}

/* Free closed clients, unless we are inside a callback that may still use them. */
static void reap(struct qmp_server *s)
{
    struct qmp_client **pp = &s->clients;

    if (s->busy)
        return;
    while (*pp) {
        struct qmp_client *c = *pp;
        if (!c->dead) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        json_stream_free(&c->in);
        json_buf_free(&c->out);
        free(c);
    }
}

static size_t out_pending(const struct qmp_client *c)
{
    return c->out.len - c->out_off;
}

static void update_events(struct qmp_client *c)
{
    uint32_t want = (!c->closing || c->drain_left ? EPOLLIN : 0) | (out_pending(c) ? EPOLLOUT : 0);

    if (c->dead || want == c->events)
        return;
    if (ev_loop_mod_fd(c->s->loop, c->h, want) < 0) {
        client_close(c, "lost: cannot update its event mask");
        return;
    }
    c->events = want;
}

/* Send what the socket takes now; the rest waits for EPOLLOUT. */
static void client_flush(struct qmp_client *c)
{
    while (!c->dead && out_pending(c)) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        client_close(c, "disconnected (write failed)");
        return;
    }
    if (c->dead)
        return;
    if (!out_pending(c)) {
        json_buf_reset(&c->out);
        c->out_off = 0;
        if (c->closing && !c->drain_left) {
            client_close(c, "closed after its error reply");
            return;
        }
        if (c->closing && !c->shut_wr) {
            /* the error is out: tell the client we are done, drop what it still sends */
            shutdown(c->fd, SHUT_WR);
            c->shut_wr = true;
        }
    }
    update_events(c);
}

/* Queue one message plus "\r\n"; a client over QMP_MAX_OUT is dropped. */
static void client_queue(struct qmp_client *c, const char *msg, size_t len)
{
    if (c->dead)
        return;
    if (out_pending(c) + len + 2 > QMP_MAX_OUT) {
        log_guest("qmp: client %u does not read its replies (over %u bytes queued); disconnecting",
                 c->id, QMP_MAX_OUT);
        client_close(c, "dropped");
        return;
    }
    if (c->out_off && c->out_off >= c->out.len / 2) {
        /* compact: drop what was sent */
        memmove(c->out.data, c->out.data + c->out_off, out_pending(c));
        c->out.len -= c->out_off;
        c->out.data[c->out.len] = 0;
        c->out_off = 0;
    }
    json_buf_append(&c->out, msg, len);
    json_buf_append(&c->out, "\r\n", 2);
    if (c->out.err) {
        client_close(c, "dropped: out of memory");
        return;
    }
}

static void client_queue_error(struct qmp_client *c, const char *desc)
{
    struct json_buf b;

    json_buf_init(&b, 0);
    json_buf_begin_object(&b);
    json_buf_add_key(&b, "error");
    json_buf_begin_object(&b);
    json_buf_kv_str(&b, "class", "GenericError");
    json_buf_kv_str(&b, "desc", desc);
    json_buf_end_object(&b);
    json_buf_end_object(&b);
    if (!b.err)
        client_queue(c, b.data, b.len);
    json_buf_free(&b);
}

static void send_held_events(struct qmp_server *s)
{
    while (s->held) {
        struct held_event *h = s->held;
        s->held = h->next;
        if (!s->held)
            s->held_tail = &s->held;
        qmp_server_event(s, h->name, h->data);
        free(h->name);
        free(h->data);
        free(h);
    }
}

static void client_message(struct qmp_client *c, const char *text, size_t len)
{
    struct qmp_req req = { .server = c->s, .daemon = c->s->d, .client = c };
    struct json_buf reply;

    json_buf_init(&reply, 0);
    c->s->dispatching++;
    qmp_dispatch(&req, &c->command_mode, text, len, &reply);
    c->s->dispatching--;
    client_queue(c, reply.data, reply.len);
    json_buf_free(&reply);
    if (!req.failed && req.after_reply_cb)
        req.after_reply_cb(&req);
    if (!c->s->dispatching)
        send_held_events(c->s);
}

/* Frame and execute what arrived; stops when the client is closing or gone. */
static void client_input(struct qmp_client *c, const char *data, size_t len)
{
    size_t off = 0;
    char desc[160];

    while (off < len && !c->dead && !c->closing) {
        size_t used;
        enum json_stream_status st = json_stream_feed(&c->in, data + off, len - off, &used);
        off += used;
        switch (st) {
        case JSON_STREAM_MORE:
            break;
        case JSON_STREAM_MESSAGE:
            client_message(c, c->in.buf, c->in.len);
            json_stream_next(&c->in);
            break;
        case JSON_STREAM_ERROR:
            snprintf(desc, sizeof(desc), "JSON parse error, %s", c->in.err);
            client_queue_error(c, desc);
            break;
        case JSON_STREAM_TOO_BIG:
            /* the rest of the stream cannot be framed reliably: answer, then close */
            snprintf(desc, sizeof(desc), "JSON parse error, message exceeds the %u byte limit",
                     QMP_MAX_MSG);
            client_queue_error(c, desc);
            log_guest("qmp: client %u sent a message over %u bytes; closing", c->id, QMP_MAX_MSG);
            c->closing = true;
            c->drain_left = QMP_MAX_DRAIN;
            break;
        }
    }
}

static void client_read(struct qmp_client *c)
{
    char buf[QMP_READ_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n == 0) {
        client_close(c, json_stream_pending(&c->in) ? "disconnected in the middle of a message"
                                                     : "disconnected");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            client_close(c, "disconnected (read failed)");
        return;
    }
    client_input(c, buf, (size_t)n);
}

/* Closing: read and drop input until the client closes or the budget is spent.
 * Closing with unread data would reset the connection, and a client still
 * writing would then never read the error reply. */
static void client_drain(struct qmp_client *c)
{
    char buf[QMP_READ_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n == 0) {
        client_close(c, "closed after its error reply");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            client_close(c, "disconnected (read failed)");
        return;
    }
    c->drain_left -= (size_t)n < c->drain_left ? (size_t)n : c->drain_left;
    if (!c->drain_left)
        client_close(c, "still sending after its error reply; dropped");
}

static void client_cb(void *opaque, int fd, uint32_t events)
{
    struct qmp_client *c = opaque;
    struct qmp_server *s = c->s;

    s->busy++;
    if (events & EPOLLOUT)
        client_flush(c);
    if (!c->dead && !c->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        client_read(c);
    else if (!c->dead && c->closing && c->drain_left && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        client_drain(c);
    else if (!c->dead && c->closing && (events & (EPOLLHUP | EPOLLERR)))
        client_close(c, "disconnected before reading its error reply");
    if (!c->dead)
        client_flush(c);
    s->busy--;
    reap(s);
}

static void greet(struct qmp_client *c)
{
    struct json_buf b;

    json_buf_init(&b, 0);
    json_buf_begin_object(&b);
    json_buf_add_key(&b, "QMP");
    json_buf_begin_object(&b);
    json_buf_add_key(&b, "version");
    json_buf_begin_object(&b);
    json_buf_add_key(&b, "qemu");
    json_buf_begin_object(&b);
    json_buf_kv_uint(&b, "micro", VSCSI_VERSION_MICRO);
    json_buf_kv_uint(&b, "minor", VSCSI_VERSION_MINOR);
    json_buf_kv_uint(&b, "major", VSCSI_VERSION_MAJOR);
    json_buf_end_object(&b);
    json_buf_kv_str(&b, "package", "vscsid " VSCSI_VERSION);
    json_buf_end_object(&b);
    json_buf_add_key(&b, "capabilities");
    json_buf_begin_array(&b);
    json_buf_end_array(&b);
    json_buf_end_object(&b);
    json_buf_end_object(&b);
    if (!b.err)
        client_queue(c, b.data, b.len);
    else
        client_close(c, "dropped: out of memory");
    json_buf_free(&b);
}

static void accept_one(struct qmp_server *s, int fd)
{
    struct qmp_client *c;

    if (s->nclients >= QMP_MAX_CLIENTS) {
        log_guest("qmp: %u clients connected already; refusing another", s->nclients);
        close(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->s = s;
    c->fd = fd;
    c->id = ++s->next_id;
    c->events = EPOLLIN;
    json_stream_init(&c->in, QMP_MAX_MSG, JSON_PARSE_SQUOTE);
    json_buf_init(&c->out, 0);
    c->h = ev_loop_add_fd(s->loop, fd, EPOLLIN, client_cb, c);
    if (!c->h) {
        log_warn("qmp: cannot watch a new client: %s", strerror(errno));
        close(fd);
        free(c);
        return;
    }
    c->next = s->clients;
    s->clients = c;
    s->nclients++;
    log_debug("qmp: client %u connected", c->id);
    greet(c);
    client_flush(c);
}

static void accept_cb(void *opaque, int fd, uint32_t events)
{
    struct qmp_server *s = opaque;

    s->busy++;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_guest("qmp: accept failed: %s", strerror(errno));
            break;
        }
        accept_one(s, cfd);
    }
    s->busy--;
    reap(s);
}

/* ---- daemon events ---- */

/* QEMU's event data. DEVICE_DELETED: the id and the device's QOM path (for a
 * device with an id QEMU's is /machine/peripheral/ID; tools match either).
 * BLOCK_IO_ERROR: device is the BlockBackend name and node-name the node's;
 * in vscsid both are the drive id (see cmd_block.c); nospace and reason as
 * QEMU (strerror of the error). STOP and RESUME have no data. */
static void daemon_event_cb(void *opaque, const struct vscsid_event *ev)
{
    struct qmp_server *s = opaque;
    const struct vscsid_io_error *e = ev->io_error;
    const char *name = "?";
    struct json_buf b;
    char path[128];

    json_buf_init(&b, 0);
    json_buf_begin_object(&b);
    switch (ev->type) {
    case VSCSID_EVENT_DEVICE_DELETED:
        name = "DEVICE_DELETED";
        json_buf_kv_str(&b, "device", ev->device);
        snprintf(path, sizeof(path), "/machine/peripheral/%s", ev->device);
        json_buf_kv_str(&b, "path", path);
        break;
    case VSCSID_EVENT_TRAY_MOVED:
        /* "device" is the BlockBackend (drive) name, "id" the device's */
        name = "DEVICE_TRAY_MOVED";
        json_buf_kv_str(&b, "device", ev->drive ? ev->drive : "");
        json_buf_kv_str(&b, "id", ev->device);
        json_buf_kv_bool(&b, "tray-open", ev->tray_open);
        break;
    case VSCSID_EVENT_IO_ERROR:
        name = "BLOCK_IO_ERROR";
        json_buf_kv_str(&b, "device", e->drive);
        json_buf_kv_str(&b, "node-name", e->drive);
        json_buf_kv_str(&b, "operation", e->is_read ? "read" : "write");
        json_buf_kv_str(&b, "action", blk_error_action_name(e->action));
        json_buf_kv_bool(&b, "nospace", e->err == ENOSPC);
        json_buf_kv_str(&b, "reason", strerror(e->err));
        break;
    case VSCSID_EVENT_STOP:
    case VSCSID_EVENT_RESUME:
        json_buf_free(&b);
        qmp_server_event(s, ev->type == VSCSID_EVENT_STOP ? "STOP" : "RESUME", NULL);
        return;
    }
    json_buf_end_object(&b);
    if (!b.err)
        qmp_server_event(s, name, json_buf_str(&b));
    else
        log_err("qmp: %s %s: out of memory; not sent", name, ev->device ? ev->device : "");
    json_buf_free(&b);
}

/* ---- listening socket ---- */

/* A socket file left by a dead process is removed; a live one or a non-socket is an error. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, r;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -errno);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; remove it or choose another --qmp path",
                 path);
        return -EEXIST;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (r == 0) {
        snprintf(err, errlen, "another process is already listening on %s", path);
        return -EADDRINUSE;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove the stale socket %s: %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

struct qmp_server *qmp_server_new(struct ev_loop *loop, const char *path, struct vscsid *d,
                                  char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct qmp_server *s;
    struct stat st;
    mode_t old_umask;
    int r;

    if (!path || !path[0]) {
        snprintf(err, errlen, "empty QMP socket path");
        return NULL;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "%s: path too long for a unix socket (max %zu bytes)", path,
                 sizeof(sa.sun_path) - 1);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->d = d;
    s->lfd = -1;
    s->held_tail = &s->held;
    strcpy(s->path, path);
    strcpy(sa.sun_path, path);
    if (clear_stale(path, err, errlen) < 0)
        goto err_free;
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto err_free;
    }
    /* created 0600 from the start: no window where others could connect */
    old_umask = umask(0177);
    r = bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old_umask);
    if (r < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
        goto err_close;
    }
    if (chmod(path, 0600) < 0 || stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto err_unlink;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    if (listen(s->lfd, 16) < 0) {
        snprintf(err, errlen, "listen on %s: %s", path, strerror(errno));
        goto err_unlink;
    }
    s->lh = ev_loop_add_fd(loop, s->lfd, EPOLLIN, accept_cb, s);
    if (!s->lh) {
        snprintf(err, errlen, "cannot watch %s: %s", path, strerror(errno));
        goto err_unlink;
    }
    if (d && vscsid_add_event_sink(d, daemon_event_cb, s) < 0) {
        snprintf(err, errlen, "too many management sockets");
        goto err_del;
    }
    log_info("qmp: listening on %s", path);
    return s;

err_del:
    ev_loop_del_fd(loop, s->lh);
err_unlink:
    unlink(path);
err_close:
    close(s->lfd);
err_free:
    free(s);
    return NULL;
}

void qmp_server_free(struct qmp_server *s)
{
    struct stat st;

    if (!s)
        return;
    if (s->d)
        vscsid_del_event_sink(s->d, daemon_event_cb, s);
    while (s->held) {
        struct held_event *h = s->held;
        s->held = h->next;
        free(h->name);
        free(h->data);
        free(h);
    }
    s->busy++;
    for (struct qmp_client *c = s->clients; c; c = c->next) {
        client_flush(c);            /* best effort: e.g. the reply to quit */
        client_close(c, "closed: server shutting down");
    }
    s->busy--;
    reap(s);
    ev_loop_del_fd(s->loop, s->lh);
    close(s->lfd);
    /* remove the path only if it is still our socket */
    if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    free(s);
}

/* ---- events ---- */

void qmp_server_event(struct qmp_server *s, const char *name, const char *data_json)
{
    struct json_buf b;
    struct timespec ts;
    char perr[128];

    if (!s || !name)
        return;
    if (s->dispatching) {
        struct held_event *h = calloc(1, sizeof(*h));
        if (h) {
            h->name = strdup(name);
            h->data = data_json ? strdup(data_json) : NULL;
        }
        if (!h || !h->name || (data_json && !h->data)) {
            log_err("qmp: event %s: out of memory; not sent", name);
            if (h) {
                free(h->name);
                free(h->data);
                free(h);
            }
            return;
        }
        *s->held_tail = h;
        s->held_tail = &h->next;
        return;
    }
    if (data_json) {
        /* internal callers only, but a broken event must not corrupt the stream */
        struct json_value *v = json_parse(data_json, strlen(data_json), 0, perr, sizeof(perr));
        bool ok = json_is(v, JSON_OBJECT);
        if (v && !ok)
            snprintf(perr, sizeof(perr), "not an object");
        json_free(v);
        if (!ok) {
            log_err("qmp: event %s: bad data (%s); not sent", name, perr);
            return;
        }
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    json_buf_init(&b, 0);
    json_buf_begin_object(&b);
    json_buf_kv_str(&b, "event", name);
    if (data_json) {
        json_buf_add_key(&b, "data");
        json_buf_add_raw(&b, data_json, strlen(data_json));
    }
    json_buf_add_key(&b, "timestamp");
    json_buf_begin_object(&b);
    json_buf_kv_int(&b, "seconds", (int64_t)ts.tv_sec);
    json_buf_kv_int(&b, "microseconds", (int64_t)(ts.tv_nsec / 1000));
    json_buf_end_object(&b);
    json_buf_end_object(&b);
    if (b.err) {
        log_err("qmp: event %s: out of memory", name);
        json_buf_free(&b);
        return;
    }
    s->busy++;
    for (struct qmp_client *c = s->clients; c; c = c->next) {
        if (c->dead || c->closing || !c->command_mode)
            continue;
        client_queue(c, b.data, b.len);
        client_flush(c);
    }
    s->busy--;
    reap(s);
    json_buf_free(&b);
}

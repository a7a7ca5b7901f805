/* A QMP test client for in-process servers: the test owns g_loop (pumped
 * while the client waits, so server and client run in one thread) and sets
 * g_path to the server's socket. Included by the QMP unit tests. */
#ifndef VSCSI_TEST_QMP_TCLIENT_H
#define VSCSI_TEST_QMP_TCLIENT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/json.h"
#include "util/loop.h"

static struct ev_loop *g_loop;
static char g_path[108];

struct tclient {
    int fd;
    bool eof;
    struct json_stream js;
    char raw[65536];
    size_t raw_len, raw_off;
    char last[8192];            /* text of the last message (for string checks) */
};

static inline void pump(int ms)
{
    ev_loop_run_once(g_loop, ms);
}

static inline int tconnect(struct tclient *c)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    memset(c, 0, sizeof(*c));
    json_stream_init(&c->js, 64u << 20, 0);
    strcpy(sa.sun_path, g_path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    /* a full listen backlog answers EAGAIN: let the server accept, retry */
    for (int i = 0; i < 100; i++) {
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return 0;
        if (errno != EAGAIN)
            return -errno;
        pump(5);
    }
    return -EAGAIN;
}

static inline void tclose(struct tclient *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    json_stream_free(&c->js);
}

/* Next message, parsed; NULL on EOF or after ~3 s. */
static inline struct json_value *trecv(struct tclient *c)
{
    char err[128];

    for (int tries = 0; tries < 300; tries++) {
        while (c->raw_off < c->raw_len) {
            size_t used;
            enum json_stream_status st =
                json_stream_feed(&c->js, c->raw + c->raw_off, c->raw_len - c->raw_off, &used);
            c->raw_off += used;
            if (st == JSON_STREAM_MESSAGE) {
                struct json_value *v = json_parse(c->js.buf, c->js.len, 0, err, sizeof(err));
                snprintf(c->last, sizeof(c->last), "%s", c->js.buf);
                if (!v)
                    fprintf(stderr, "  client: bad message from server: %s (%s)\n", c->js.buf, err);
                json_stream_next(&c->js);
                return v;
            }
            if (st != JSON_STREAM_MORE) {
                fprintf(stderr, "  client: framing error %s\n", c->js.err);
                return NULL;
            }
        }
        c->raw_off = c->raw_len = 0;
        ssize_t n = recv(c->fd, c->raw, sizeof(c->raw), 0);
        if (n > 0) {
            c->raw_len = (size_t)n;
            tries = 0;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->eof = true;
            return NULL;
        }
        pump(10);
    }
    return NULL;
}

static inline void tsend(struct tclient *c, const char *s, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pump(10);
            continue;
        }
        return;
    }
}

static inline void tsends(struct tclient *c, const char *s)
{
    tsend(c, s, strlen(s));
}

/* Send, receive one reply, return it. */
static inline struct json_value *cmd(struct tclient *c, const char *req)
{
    tsends(c, req);
    return trecv(c);
}

static inline const char *err_class(const struct json_value *v)
{
    return json_get_str(json_obj_get(json_obj_get(v, "error"), "class"));
}

static inline const char *err_desc(const struct json_value *v)
{
    const char *d = json_get_str(json_obj_get(json_obj_get(v, "error"), "desc"));
    return d ? d : "";
}

/* Reply is an error of class cls whose desc equals (or, with prefix, starts with) desc. */
static inline int is_error(struct json_value *v, const char *cls, const char *desc, bool prefix)
{
    const char *c = err_class(v), *d = err_desc(v);
    int ok = c && !strcmp(c, cls) && (prefix ? !strncmp(d, desc, strlen(desc)) : !strcmp(d, desc));

    if (!ok)
        fprintf(stderr, "  got error %s / '%s', expected %s / '%s'\n", c ? c : "(none)", d, cls, desc);
    json_free(v);
    return ok;
}

static inline int is_empty_return(struct json_value *v)
{
    const struct json_value *r = json_obj_get(v, "return");
    int ok = json_is(r, JSON_OBJECT) && r->u.obj.n == 0;

    json_free(v);
    return ok;
}

static inline int connect_negotiated(struct tclient *c)
{
    struct json_value *v;

    if (tconnect(c) < 0)
        return -1;
    v = trecv(c);           /* greeting */
    if (!json_obj_get(v, "QMP")) {
        json_free(v);
        return -1;
    }
    json_free(v);
    return is_empty_return(cmd(c, "{\"execute\": \"qmp_capabilities\"}")) ? 0 : -1;
}

#endif

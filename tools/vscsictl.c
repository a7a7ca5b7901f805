/* vscsictl: command-line client for vscsid's QMP socket. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/json.h"
#include "vscsi-config.h"

#define EXIT_USAGE 2
#define MAX_REPLY (256u << 20)

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vscsictl --qmp PATH [--json] [--timeout SEC] COMMAND [KEY=VALUE ...]\n"
"       vscsictl --qmp PATH [--json] events\n"
"       vscsictl --qmp PATH raw '{\"execute\": ...}'\n"
"       vscsictl --qmp PATH MEDIA-COMMAND ID ...   (removable media, below)\n"
"\n"
"Send one QMP command to vscsid (started with --qmp PATH) and print the result.\n"
"'vscsictl --qmp PATH query-commands' lists the commands; docs/qmp.md has them all.\n"
"\n"
"Arguments (KEY=VALUE):\n"
"  true, false           a boolean\n"
"  -12, 4096             an integer\n"
"  {...}, [...]          JSON, taken as is\n"
"  anything else         a string\n"
"  KEY:str=VALUE         always a string (e.g. serial:str=0042)\n"
"  KEY:json=VALUE        VALUE is JSON (e.g. opt:json=null)\n"
"  a.b=VALUE             nested object: {\"a\": {\"b\": VALUE}} (QEMU's dotted keys)\n"
"\n"
"Options:\n"
"  -s, --qmp PATH        QMP socket of vscsid (default: $VSCSI_QMP)\n"
"  -j, --json            print the result as one line of JSON\n"
"  -t, --timeout SEC     wait at most SEC seconds for the reply (default 30, 0 = forever)\n"
"  -n, --dry-run         print the request instead of sending it\n"
"  -W, --no-wait         device_del: return at once instead of waiting for the\n"
"                        DEVICE_DELETED event (the device is gone only then)\n"
"  -h, --help            this text\n"
"  -V, --version         version\n"
"\n"
"  events                print events as they arrive until interrupted\n"
"  raw JSON              send a request verbatim and print the whole reply\n"
"\n"
"Removable media (scsi-cd, scsi-hd removable=on; ID is the device's id); each\n"
"prints the tray and medium afterwards:\n"
"  eject ID [--force]    open the tray and take the medium out (eject)\n"
"  change-medium ID FILE [--format F] [--read-only-mode retain|read-only|read-write]\n"
"                        [--force]   replace the medium (blockdev-change-medium)\n"
"  open-tray ID [--force]   open the tray (blockdev-open-tray); a tray the guest\n"
"                        locked stays closed and the guest is asked to open it,\n"
"                        unless --force\n"
"  close-tray ID         close the tray (blockdev-close-tray)\n"
"  remove-medium ID      take the medium out of the open tray (blockdev-remove-medium)\n"
"  insert-medium ID NODE put drive NODE's medium (e.g. from blockdev-add) into the\n"
"                        open, empty tray (blockdev-insert-medium)\n"
"  -f, --force           eject, change-medium, open-tray: even if the guest locked\n"
"                        the tray (PREVENT ALLOW MEDIUM REMOVAL)\n"
"  --format F            change-medium: image format (raw)\n"
"  --read-only-mode M    change-medium: retain (default), read-only, read-write\n"
"\n"
"Examples:\n"
"  vscsictl --qmp /run/vscsi.qmp query-scsi-devices\n"
"  vscsictl --qmp /run/vscsi.qmp query-block --json\n"
"  vscsictl --qmp S blockdev-add node-name=d1 driver=raw file.driver=file file.filename=/img\n"
"  vscsictl --qmp S device_add driver=scsi-hd drive=d1 scsi-id=0 lun=3 id=disk3\n"
"  vscsictl --qmp S block_resize node-name=d1 size=21474836480\n"
"  vscsictl --qmp S device_del id=disk3      (waits for DEVICE_DELETED)\n"
"  vscsictl --qmp S query-blockstats\n"
"  vscsictl --qmp S change-medium cd0 /srv/iso/debian.iso\n"
"  vscsictl --qmp S eject cd0 --force\n");
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vscsictl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'vscsictl --help' for more information.\n");
    exit(EXIT_USAGE);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "vscsictl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- connection ---- */

struct conn {
    int fd;
    const char *path;
    struct json_stream js;
    char raw[65536];
    size_t raw_len, raw_off;
};

static void conn_open(struct conn *c, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *hint;

    c->path = path;
    c->raw_len = c->raw_off = 0;
    json_stream_init(&c->js, MAX_REPLY, 0);
    if (strlen(path) >= sizeof(sa.sun_path))
        die("%s: path too long for a unix socket (max %zu bytes)", path, sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return;
    switch (errno) {
    case ENOENT:
        hint = "no such socket; is vscsid running with --qmp %s?";
        break;
    case ECONNREFUSED:
        hint = "nobody is listening (a stale socket?); is vscsid running with --qmp %s?";
        break;
    case EACCES:
    case EPERM:
        hint = "permission denied; the socket is mode 0600: run as the user vscsid runs as (%s)";
        break;
    case ENOTSOCK:
        hint = "not a socket; is %s really vscsid's --qmp path?";
        break;
    default:
        hint = "%s: is vscsid running with --qmp on this path?";
        break;
    }
    fprintf(stderr, "vscsictl: cannot connect to %s: %s\n  ", path, strerror(errno));
    fprintf(stderr, hint, path);
    fputc('\n', stderr);
    exit(1);
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    c->fd = -1;
    json_stream_free(&c->js);
}

static void conn_send(struct conn *c, const char *s, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s: connection lost while sending: %s", c->path, strerror(errno));
        s += n;
        len -= (size_t)n;
    }
}

/* Next message; NULL at EOF. timeout_ms < 0 waits forever. On timeout: dies,
 * or returns NULL with *timed_out set when timed_out is given. */
static struct json_value *conn_recv_t(struct conn *c, int timeout_ms, bool *timed_out)
{
    struct timespec start, now;
    char err[160];

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        while (c->raw_off < c->raw_len) {
            size_t used;
            enum json_stream_status st =
                json_stream_feed(&c->js, c->raw + c->raw_off, c->raw_len - c->raw_off, &used);
            c->raw_off += used;
            if (st == JSON_STREAM_MESSAGE) {
                struct json_value *v = json_parse(c->js.buf, c->js.len, 0, err, sizeof(err));
                if (!v)
                    die("%s: unreadable message from the server: %s", c->path, err);
                json_stream_next(&c->js);
                return v;
            }
            if (st != JSON_STREAM_MORE)
                die("%s: unreadable data from the server: %s", c->path, c->js.err);
        }
        c->raw_off = c->raw_len = 0;
        if (timeout_ms >= 0) {
            struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
            long left;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
            if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
                if (timed_out) {
                    *timed_out = true;
                    return NULL;
                }
                die("%s: no reply within %d s (is vscsid stuck? see --timeout)", c->path, timeout_ms / 1000);
            }
        }
        ssize_t n = recv(c->fd, c->raw, sizeof(c->raw), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("%s: connection lost: %s", c->path, strerror(errno));
        if (n == 0)
            return NULL;
        c->raw_len = (size_t)n;
    }
}

static struct json_value *conn_recv(struct conn *c, int timeout_ms)
{
    return conn_recv_t(c, timeout_ms, NULL);
}

/* The reply to our request: events that arrive in between are skipped. */
static struct json_value *conn_reply(struct conn *c, int timeout_ms)
{
    for (;;) {
        struct json_value *v = conn_recv(c, timeout_ms);
        if (!v)
            die("%s: vscsid closed the connection without a reply", c->path);
        if (!json_obj_get(v, "event"))
            return v;
        json_free(v);
    }
}

static const char *error_desc(const struct json_value *reply)
{
    const struct json_value *e = json_obj_get(reply, "error");
    const char *d = json_get_str(json_obj_get(e, "desc"));

    return e ? (d ? d : "unknown error") : NULL;
}

static void greet_and_negotiate(struct conn *c, bool negotiate, int timeout_ms)
{
    static const char caps[] = "{\"execute\": \"qmp_capabilities\"}\r\n";
    struct json_value *v = conn_recv(c, timeout_ms);

    if (!v)
        die("%s: the server closed the connection at once (too many clients?)", c->path);
    if (!json_obj_get(v, "QMP"))
        die("%s: this does not look like a QMP server (unexpected greeting)", c->path);
    json_free(v);
    if (!negotiate)
        return;
    conn_send(c, caps, sizeof(caps) - 1);
    v = conn_reply(c, timeout_ms);
    if (error_desc(v))
        die("%s", error_desc(v));
    json_free(v);
}

/* ---- arguments ---- */

static bool is_int_literal(const char *s, int64_t *out)
{
    const char *p = s;
    char *end;
    long long v;

    if (*p == '-')
        p++;
    if (!*p || (p[0] == '0' && p[1]) || strspn(p, "0123456789") != strlen(p))
        return false;       /* leading zeros stay strings (serial=007) */
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static struct json_value *parse_json_arg(const char *key, const char *text)
{
    char err[160];
    struct json_value *v = json_parse(text, strlen(text), 0, err, sizeof(err));

    if (!v)
        die_usage("%s: invalid JSON value: %s", key, err);
    return v;
}

static struct json_value *typed_value(const char *key, const char *type, const char *val)
{
    int64_t i;

    if (type) {
        if (!strcmp(type, "str"))
            return json_new_str(val);
        if (!strcmp(type, "json"))
            return parse_json_arg(key, val);
        die_usage("%s: unknown type ':%s' (use :str or :json)", key, type);
    }
    if (!strcmp(val, "true") || !strcmp(val, "false"))
        return json_new_bool(val[0] == 't');
    if (is_int_literal(val, &i))
        return json_new_int(i);
    if (val[0] == '{' || val[0] == '[')
        return parse_json_arg(key, val);
    return json_new_str(val);
}

/* Find member `name` of obj (which is ours, so casting away const is fine). */
static struct json_value *obj_member(struct json_value *obj, const char *name)
{
    return (struct json_value *)json_obj_get(obj, name);
}

/* key[.sub...][:type]=value into args. */
static void add_arg(struct json_value *args, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char *key, *type, *part, *dot;
    struct json_value *obj = args, *v;

    if (!eq || eq == arg)
        die_usage("'%s': arguments are KEY=VALUE", arg);
    key = strndup(arg, (size_t)(eq - arg));
    if (!key)
        die("out of memory");
    type = strchr(key, ':');
    if (type)
        *type++ = 0;
    v = typed_value(key, type, eq + 1);
    if (!v)
        die("out of memory");
    for (part = key;; part = dot + 1) {
        dot = strchr(part, '.');
        if (dot)
            *dot = 0;
        if (!*part)
            die_usage("'%s': empty key component", arg);
        struct json_value *cur = obj_member(obj, part);
        if (!dot) {
            if (cur)
                die_usage("'%s': key given twice, or conflicts with a nested key", arg);
            if (json_obj_add(obj, part, v) < 0)
                die("out of memory");
            break;
        }
        if (!cur) {
            if (json_obj_add(obj, part, json_new_object()) < 0)
                die("out of memory");
            cur = obj_member(obj, part);
        } else if (!json_is(cur, JSON_OBJECT)) {
            die_usage("'%s': '%s' is already set to a value, not an object", arg, part);
        }
        obj = cur;
    }
    free(key);
}

/* ---- output ---- */

static void print_json(const struct json_value *v, bool pretty)
{
    struct json_buf b;

    json_buf_init(&b, JSON_BUF_UTF8 | (pretty ? JSON_BUF_PRETTY : 0));
    json_buf_add_value(&b, v);
    if (b.err)
        die("out of memory");
    printf("%s\n", json_buf_str(&b));
    json_buf_free(&b);
}

static void format_size(uint64_t n, char *out, size_t len)
{
    static const char units[] = "KMGTPE";
    int u = -1;

    while (n && n % 1024 == 0 && u < 5) {
        n /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, len, "%" PRIu64, n);
    else
        snprintf(out, len, "%" PRIu64 "%c", n, units[u]);
}

/* Member at a dotted path ("inserted.image.virtual-size"). */
static const struct json_value *lookup(const struct json_value *obj, const char *path)
{
    char part[64];

    while (obj && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        obj = json_obj_get(obj, part);
        path += n + (path[n] == '.');
    }
    return obj;
}

/* Text of a scalar for a table cell ("-" when absent). */
static void cell(const struct json_value *row, const char *path, bool size, char *out, size_t len)
{
    const struct json_value *v = lookup(row, path);

    if (!v)
        snprintf(out, len, "-");
    else if (v->type == JSON_STRING)
        snprintf(out, len, "%s", v->u.str.s);
    else if (v->type == JSON_BOOL)
        snprintf(out, len, "%s", v->u.b ? "yes" : "no");
    else if (v->type == JSON_INT && size && v->u.i >= 0)
        format_size((uint64_t)v->u.i, out, len);
    else if (v->type == JSON_INT)
        snprintf(out, len, "%" PRId64, v->u.i);
    else
        snprintf(out, len, "?");
}

struct column {
    const char *title;
    const char *path;
    bool size;
};

#define CELL_MAX 4200
#define MAX_COLS 16

static void print_table(const struct json_value *rows, const struct column *cols, size_t ncols)
{
    size_t nrows = json_array_len(rows), width[MAX_COLS] = { 0 };
    char buf[CELL_MAX];

    for (size_t c = 0; c < ncols && c < MAX_COLS; c++) {
        width[c] = strlen(cols[c].title);
        for (size_t r = 0; r < nrows; r++) {
            cell(json_array_at(rows, r), cols[c].path, cols[c].size, buf, sizeof(buf));
            if (strlen(buf) > width[c])
                width[c] = strlen(buf);
        }
    }
    for (size_t c = 0; c < ncols && c < MAX_COLS; c++)
        printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, cols[c].title, c + 1 < ncols ? "  " : "\n");
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols && c < MAX_COLS; c++) {
            cell(json_array_at(rows, r), cols[c].path, cols[c].size, buf, sizeof(buf));
            printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, buf, c + 1 < ncols ? "  " : "\n");
        }
    }
}

/* query-blockstats as a table, with average latencies (total ns / operations). */
static void print_blockstats(const struct json_value *ret)
{
    static const struct column cols[] = {
        { "DRIVE", "device", false }, { "DEVICE", "qdev", false },
        { "RD_OPS", "rd_operations", false }, { "RD_BYTES", "rd_bytes", true },
        { "WR_OPS", "wr_operations", false }, { "WR_BYTES", "wr_bytes", true },
        { "FLUSHES", "flush_operations", false }, { "UNMAPS", "unmap_operations", false },
        { "ERRORS", "failed_operations", false },
        { "RD_LAT_US", "rd_lat", false }, { "WR_LAT_US", "wr_lat", false },
    };
    static const char *const counters[] = { "rd_operations", "rd_bytes", "wr_operations", "wr_bytes",
                                            "flush_operations", "unmap_operations", "failed_operations" };
    static const char *const lat[][3] = {
        { "rd_lat", "rd_total_time_ns", "rd_operations" },
        { "wr_lat", "wr_total_time_ns", "wr_operations" },
    };
    struct json_value *rows = json_new_array();
    bool oom = !rows;

    for (size_t i = 0; !oom && i < json_array_len(ret); i++) {
        const struct json_value *r = json_array_at(ret, i), *st = json_obj_get(r, "stats");
        struct json_value *row = json_new_object();
        int64_t v, ns, ops;

        oom = !row || json_array_append(rows, row) < 0;
        for (size_t k = 0; !oom && k < 2; k++) {
            const char *str = json_get_str(json_obj_get(r, k ? "qdev" : "device"));
            if (str)
                oom = json_obj_add(row, k ? "qdev" : "device", json_new_str(str)) < 0;
        }
        for (size_t k = 0; !oom && k < sizeof(counters) / sizeof(counters[0]); k++)
            if (json_get_int(json_obj_get(st, counters[k]), 0, INT64_MAX, &v) == 0)
                oom = json_obj_add(row, counters[k], json_new_int(v)) < 0;
        for (size_t k = 0; !oom && k < 2; k++)
            if (json_get_int(json_obj_get(st, lat[k][1]), 0, INT64_MAX, &ns) == 0 &&
                json_get_int(json_obj_get(st, lat[k][2]), 1, INT64_MAX, &ops) == 0)
                oom = json_obj_add(row, lat[k][0], json_new_int(ns / ops / 1000)) < 0;
    }
    if (oom)
        die("out of memory");
    print_table(rows, cols, sizeof(cols) / sizeof(cols[0]));
    json_free(rows);
}

/* query-block as a table; TRAY: open/closed (locked) for removable devices. */
static void print_block(const struct json_value *ret)
{
    static const struct column cols[] = {
        { "DRIVE", "device", false }, { "DEVICE", "qdev", false },
        { "FORMAT", "drv", false }, { "RO", "ro", false },
        { "SIZE", "size", true }, { "TRAY", "tray", false }, { "FILE", "file", false },
    };
    static const char *const from[][2] = {
        { "device", "device" }, { "qdev", "qdev" }, { "drv", "inserted.drv" }, { "ro", "inserted.ro" },
        { "size", "inserted.image.virtual-size" }, { "file", "inserted.file" },
    };
    struct json_value *rows = json_new_array();
    bool oom = !rows;

    for (size_t i = 0; !oom && i < json_array_len(ret); i++) {
        const struct json_value *r = json_array_at(ret, i), *open = json_obj_get(r, "tray_open");
        const struct json_value *locked = json_obj_get(r, "locked");
        struct json_value *row = json_new_object();

        oom = !row || json_array_append(rows, row) < 0;
        for (size_t k = 0; !oom && k < sizeof(from) / sizeof(from[0]); k++) {
            const struct json_value *v = lookup(r, from[k][1]);
            struct json_value *copy = json_is(v, JSON_STRING) ? json_new_str(v->u.str.s) :
                                      json_is(v, JSON_BOOL) ? json_new_bool(v->u.b) :
                                      json_is(v, JSON_INT) ? json_new_int(v->u.i) : NULL;
            bool scalar = json_is(v, JSON_STRING) || json_is(v, JSON_BOOL) || json_is(v, JSON_INT);

            if (scalar)     /* anything else is left out of the table */
                oom = !copy || json_obj_add(row, from[k][0], copy) < 0;
        }
        if (!oom && json_is(open, JSON_BOOL))
            oom = json_obj_add(row, "tray", json_new_str(
                      open->u.b ? "open" : json_is(locked, JSON_BOOL) && locked->u.b ? "locked"
                                                                                    : "closed")) < 0;
    }
    if (oom)
        die("out of memory");
    print_table(rows, cols, sizeof(cols) / sizeof(cols[0]));
    json_free(rows);
}

static void print_human(const char *cmd, const struct json_value *ret)
{
    static const struct column scsi_cols[] = {
        { "ID", "id", false }, { "TYPE", "driver", false }, { "SCSI-ID", "scsi-id", false },
        { "LUN", "lun", false }, { "SIZE", "size", true }, { "RO", "read-only", false },
        { "DRIVE", "drive", false }, { "SERIAL", "serial", false },
    };
    static const struct column iothread_cols[] = {
        { "ID", "id", false }, { "THREAD-ID", "thread-id", false }, { "POLL-NS", "poll-max-ns", false },
    };

    if (json_is(ret, JSON_OBJECT) && ret->u.obj.n == 0)
        return;                 /* {}: success, nothing to show */
    if (!strcmp(cmd, "query-scsi-devices") && json_is(ret, JSON_ARRAY)) {
        print_table(ret, scsi_cols, sizeof(scsi_cols) / sizeof(scsi_cols[0]));
        return;
    }
    if (!strcmp(cmd, "query-block") && json_is(ret, JSON_ARRAY)) {
        print_block(ret);
        return;
    }
    if (!strcmp(cmd, "query-iothreads") && json_is(ret, JSON_ARRAY)) {
        print_table(ret, iothread_cols, sizeof(iothread_cols) / sizeof(iothread_cols[0]));
        return;
    }
    if (!strcmp(cmd, "query-blockstats") && json_is(ret, JSON_ARRAY)) {
        print_blockstats(ret);
        return;
    }
    if (!strcmp(cmd, "query-commands") && json_is(ret, JSON_ARRAY)) {
        for (size_t i = 0; i < json_array_len(ret); i++) {
            const char *n = json_get_str(json_obj_get(json_array_at(ret, i), "name"));
            if (n)
                printf("%s\n", n);
        }
        return;
    }
    print_json(ret, true);
}

static void print_event(const struct json_value *ev, bool as_json)
{
    const struct json_value *ts = json_obj_get(ev, "timestamp"), *data = json_obj_get(ev, "data");
    int64_t sec = 0, usec = 0;
    char when[64] = "";
    const char *name;
    struct json_buf b;

    if (as_json) {
        print_json(ev, false);
        fflush(stdout);
        return;
    }
    json_get_int(json_obj_get(ts, "seconds"), 0, INT64_MAX, &sec);
    json_get_int(json_obj_get(ts, "microseconds"), 0, 999999, &usec);
    {
        time_t t = (time_t)sec;
        struct tm tm;
        if (localtime_r(&t, &tm))
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    }
    json_buf_init(&b, JSON_BUF_UTF8);
    if (data)
        json_buf_add_value(&b, data);
    name = json_get_str(json_obj_get(ev, "event"));
    printf("%s.%06" PRId64 " %s%s%s\n", when, usec, name ? name : "?", data ? " " : "", json_buf_str(&b));
    json_buf_free(&b);
    fflush(stdout);
}

/* ---- removable media ---- */

/* vscsictl NAME ID [ARG2] -> the QMP command with QEMU's argument names. */
struct media_wrapper {
    const char *name, *qmp;
    const char *arg2;           /* second positional argument's QMP name, or NULL */
    bool force, change;         /* takes --force; takes --format and --read-only-mode */
};

static const struct media_wrapper media_wrappers[] = {
    { "eject", "eject", NULL, true, false },
    { "change-medium", "blockdev-change-medium", "filename", true, true },
    { "open-tray", "blockdev-open-tray", NULL, true, false },
    { "close-tray", "blockdev-close-tray", NULL, false, false },
    { "remove-medium", "blockdev-remove-medium", NULL, false, false },
    { "insert-medium", "blockdev-insert-medium", "node-name", false, false },
    { NULL },
};

/* The wrapper cmd names, unless its arguments are KEY=VALUE (the QMP command
 * "eject" itself takes those). */
static const struct media_wrapper *find_wrapper(const char *cmd, int nargs, char **args)
{
    for (const struct media_wrapper *w = media_wrappers; w->name; w++)
        if (!strcmp(cmd, w->name))
            return nargs > 0 && strchr(args[0], '=') && !strcmp(w->name, w->qmp) ? NULL : w;
    return NULL;
}

struct media_opts {
    bool force;
    const char *format, *ro_mode;
};

static struct json_value *media_args(const struct media_wrapper *w, int nargs, char **argv,
                                     const struct media_opts *mo)
{
    struct json_value *args = json_new_object();
    bool oom = !args;

    if (nargs != (w->arg2 ? 2 : 1))
        die_usage("usage: %s ID%s%s%s", w->name, w->arg2 ? (w->change ? " FILE" : " NODE") : "",
                  w->force ? " [--force]" : "",
                  w->change ? " [--format F] [--read-only-mode retain|read-only|read-write]" : "");
    if (mo->force && !w->force)
        die_usage("%s takes no --force", w->name);
    if ((mo->format || mo->ro_mode) && !w->change)
        die_usage("--format and --read-only-mode are for change-medium");
    oom = oom || json_obj_add(args, "id", json_new_str(argv[0])) < 0;
    if (w->arg2)
        oom = oom || json_obj_add(args, w->arg2, json_new_str(argv[1])) < 0;
    if (mo->format)
        oom = oom || json_obj_add(args, "format", json_new_str(mo->format)) < 0;
    if (mo->ro_mode)
        oom = oom || json_obj_add(args, "read-only-mode", json_new_str(mo->ro_mode)) < 0;
    if (mo->force)
        oom = oom || json_obj_add(args, "force", json_new_bool(true)) < 0;
    if (oom)
        die("out of memory");
    return args;
}

static bool is_media_command(const char *cmd)
{
    for (const struct media_wrapper *w = media_wrappers; w->name; w++)
        if (!strcmp(cmd, w->qmp))
            return true;
    return false;
}

/* After a media command: "cd0: tray closed, medium /srv/x.iso" from query-block. */
static void print_media_state(struct conn *c, const char *cmd, const char *name, int timeout_ms)
{
    static const char q[] = "{\"execute\": \"query-block\"}\r\n";
    const struct json_value *list, *row = NULL, *open, *locked, *file;
    struct json_value *r;

    conn_send(c, q, sizeof(q) - 1);
    r = conn_reply(c, timeout_ms);
    list = json_obj_get(r, "return");
    for (size_t i = 0; i < json_array_len(list); i++) {
        const struct json_value *b = json_array_at(list, i);
        const char *qdev = json_get_str(json_obj_get(b, "qdev"));
        const char *dev = json_get_str(json_obj_get(b, "device"));
        if ((qdev && !strcmp(qdev, name)) || (!row && dev && !strcmp(dev, name)))
            row = b;
    }
    if (!row) {
        printf("%s: done\n", name);
        json_free(r);
        return;
    }
    open = json_obj_get(row, "tray_open");
    locked = json_obj_get(row, "locked");
    file = lookup(row, "inserted.file");
    printf("%s: %s%s, %s%s\n", name,
           !open ? "no tray" : open->u.b ? "tray open" : "tray closed",
           json_is(locked, JSON_BOOL) && locked->u.b ? " (locked by the guest)" : "",
           file ? "medium " : "no medium", file ? json_get_str(file) : "");
    if (!strcmp(cmd, "blockdev-open-tray") && json_is(open, JSON_BOOL) && !open->u.b)
        printf("%s: the guest was asked to open the tray (DEVICE_TRAY_MOVED tells when); "
               "--force opens it now\n", name);
    json_free(r);
}

/* ---- hot-plug commands ---- */

/* device_del returns at once; the device is gone at DEVICE_DELETED. */
static int wait_deleted(struct conn *c, const char *id, int timeout_ms)
{
    bool timed_out = false;

    for (;;) {
        struct json_value *v = conn_recv_t(c, timeout_ms, &timed_out);
        const char *ev, *dev;
        if (!v) {
            if (timed_out)
                fprintf(stderr, "vscsictl: device %s: no DEVICE_DELETED within %d s; commands may "
                        "still be in flight on it (query-scsi-devices shows it until then)\n",
                        id ? id : "?", timeout_ms / 1000);
            else
                fprintf(stderr, "vscsictl: vscsid closed the connection before DEVICE_DELETED\n");
            return 1;
        }
        ev = json_get_str(json_obj_get(v, "event"));
        dev = json_get_str(json_obj_get(json_obj_get(v, "data"), "device"));
        if (ev && !strcmp(ev, "DEVICE_DELETED") && dev && id && !strcmp(dev, id)) {
            json_free(v);
            return 0;
        }
        json_free(v);
    }
}

static const char *arg_str(const struct json_value *args, const char *path, char *buf, size_t len)
{
    const struct json_value *v = lookup(args, path);

    if (json_is(v, JSON_INT))
        snprintf(buf, len, "%" PRId64, v->u.i);
    else
        snprintf(buf, len, "%s", json_get_str(v) ? json_get_str(v) : "?");
    return buf;
}

/* One line saying what a state-changing command did. */
static void print_done(struct conn *c, const char *cmd, const struct json_value *args,
                       const struct json_value *ret, int timeout_ms)
{
    char a[4200], b[256], sz[32];
    int64_t size;

    if (!strcmp(cmd, "device_add")) {
        /* the id may have been generated: find the device at its address */
        static const char q[] = "{\"execute\": \"query-scsi-devices\"}\r\n";
        struct json_value *r, *list;
        const char *id = NULL;
        int64_t want_t = 0, want_l = 0;
        json_get_int(lookup(args, "scsi-id"), 0, 255, &want_t);
        json_get_int(lookup(args, "lun"), 0, 16383, &want_l);
        if (json_get_str(lookup(args, "scsi-id")))
            want_t = strtoll(json_get_str(lookup(args, "scsi-id")), NULL, 0);
        if (json_get_str(lookup(args, "lun")))
            want_l = strtoll(json_get_str(lookup(args, "lun")), NULL, 0);
        conn_send(c, q, sizeof(q) - 1);
        r = conn_reply(c, timeout_ms);
        list = (struct json_value *)json_obj_get(r, "return");
        for (size_t i = 0; i < json_array_len(list); i++) {
            const struct json_value *d = json_array_at(list, i);
            int64_t dt, dl;
            if (json_get_int(json_obj_get(d, "scsi-id"), 0, 255, &dt) == 0 && dt == want_t &&
                json_get_int(json_obj_get(d, "lun"), 0, 16383, &dl) == 0 && dl == want_l)
                id = json_get_str(json_obj_get(d, "id"));
        }
        printf("device %s (%s) added at scsi-id %" PRId64 " lun %" PRId64 ", drive %s\n",
               id ? id : "?", arg_str(args, "driver", a, sizeof(a)), want_t, want_l,
               arg_str(args, "drive", b, sizeof(b)));
        json_free(r);
    } else if (!strcmp(cmd, "device_del")) {
        if (lookup(args, "id"))
            printf("device %s deleted\n", arg_str(args, "id", a, sizeof(a)));
    } else if (!strcmp(cmd, "blockdev-add")) {
        const char *drv = json_get_str(lookup(args, "driver"));
        if (drv && (!strcmp(drv, "null-co") || !strcmp(drv, "memory")))
            snprintf(a, sizeof(a), "%s", drv);
        else if (lookup(args, "file.filename"))
            arg_str(args, "file.filename", a, sizeof(a));
        else
            arg_str(args, "filename", a, sizeof(a));
        printf("drive %s added: %s\n", arg_str(args, "node-name", b, sizeof(b)), a);
    } else if (!strcmp(cmd, "blockdev-del")) {
        printf("drive %s deleted\n", arg_str(args, "node-name", a, sizeof(a)));
    } else if (is_media_command(cmd)) {
        print_media_state(c, cmd, lookup(args, "id") ? arg_str(args, "id", a, sizeof(a))
                                                     : arg_str(args, "device", a, sizeof(a)),
                          timeout_ms);
    } else if (!strcmp(cmd, "block_resize")) {
        if (json_get_int(lookup(args, "size"), 0, INT64_MAX, &size) == 0)
            format_size((uint64_t)size, sz, sizeof(sz));
        else
            snprintf(sz, sizeof(sz), "?");
        printf("%s resized to %s\n", lookup(args, "node-name") ? arg_str(args, "node-name", a, sizeof(a))
                                                               : arg_str(args, "device", a, sizeof(a)), sz);
    } else {
        print_human(cmd, ret);
    }
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "qmp", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "dry-run", no_argument, NULL, 'n' },
        { "no-wait", no_argument, NULL, 'W' },
        { "force", no_argument, NULL, 'f' },
        { "format", required_argument, NULL, 'F' },
        { "read-only-mode", required_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = getenv("VSCSI_QMP"), *cmd;
    bool as_json = false, dry_run = false;
    int timeout_ms = 30000, c, rc = 0;
    struct conn conn;
    struct json_value *reply, *args;
    struct json_buf req;
    bool no_wait = false;
    struct media_opts mo = { 0 };
    const struct media_wrapper *w;

    while ((c = getopt_long(argc, argv, "s:jt:nWfhV", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            path = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 't': {
            int64_t t;
            if (!is_int_literal(optarg, &t) || t < 0 || t > 86400)
                die_usage("--timeout %s: expected seconds from 0 to 86400", optarg);
            timeout_ms = t ? (int)t * 1000 : -1;
            break;
        }
        case 'n':
            dry_run = true;
            break;
        case 'W':
            no_wait = true;
            break;
        case 'f':
            mo.force = true;
            break;
        case 'F':
            mo.format = optarg;
            break;
        case 'R':
            mo.ro_mode = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("vscsictl %s\n", VSCSI_VERSION);
            return 0;
        default:
            die_usage("invalid option");
        }
    }
    if (optind >= argc)
        die_usage("missing COMMAND (try query-commands)");
    cmd = argv[optind++];
    /* compared once: the two streaming modes need a connection (a path) */
    const bool events = !strcmp(cmd, "events"), raw = !strcmp(cmd, "raw");
    w = find_wrapper(cmd, argc - optind, argv + optind);
    if (!w && (mo.force || mo.format || mo.ro_mode))
        die_usage("--force, --format and --read-only-mode go with eject, change-medium and "
                  "open-tray ID (or give force=true etc. as KEY=VALUE)");
    if ((!path || !path[0]) && !dry_run)
        die_usage("missing --qmp PATH (the path given to vscsid --qmp)");
    if (dry_run && (events || raw))
        die_usage("--dry-run works with commands only");
    signal(SIGPIPE, SIG_IGN);

    if (events) {
        if (optind < argc)
            die_usage("events takes no arguments");
        conn_open(&conn, path);
        greet_and_negotiate(&conn, true, timeout_ms);
        for (;;) {
            struct json_value *ev = conn_recv(&conn, -1);
            if (!ev) {
                fprintf(stderr, "vscsictl: vscsid closed the connection\n");
                conn_close(&conn);
                return 0;
            }
            if (json_obj_get(ev, "event"))
                print_event(ev, as_json);
            json_free(ev);
        }
    }

    if (raw) {
        char err[160];
        struct json_value *v;
        const char *text;
        bool self_negotiates;

        if (optind + 1 != argc)
            die_usage("raw takes one argument: a JSON request");
        text = argv[optind];
        v = json_parse(text, strlen(text), JSON_PARSE_SQUOTE, err, sizeof(err));
        if (!v)
            die_usage("raw: invalid JSON: %s", err);
        self_negotiates = json_get_str(json_obj_get(v, "execute")) &&
                          !strcmp(json_get_str(json_obj_get(v, "execute")), "qmp_capabilities");
        json_free(v);
        conn_open(&conn, path);
        greet_and_negotiate(&conn, !self_negotiates, timeout_ms);
        conn_send(&conn, text, strlen(text));
        conn_send(&conn, "\r\n", 2);
        reply = conn_reply(&conn, timeout_ms);
        print_json(reply, false);
        rc = json_obj_get(reply, "error") ? 1 : 0;
        json_free(reply);
        conn_close(&conn);
        return rc;
    }

    if (w) {
        /* MEDIA-COMMAND ID ... */
        args = media_args(w, argc - optind, argv + optind, &mo);
        cmd = w->qmp;
    } else {
        /* COMMAND KEY=VALUE... */
        args = json_new_object();
        if (!args)
            die("out of memory");
        for (; optind < argc; optind++)
            add_arg(args, argv[optind]);
    }
    json_buf_init(&req, 0);
    json_buf_begin_object(&req);
    json_buf_kv_str(&req, "execute", cmd);
    if (args->u.obj.n) {
        json_buf_add_key(&req, "arguments");
        json_buf_add_value(&req, args);
    }
    json_buf_end_object(&req);
    json_buf_append(&req, "\r\n", 2);
    if (req.err)
        die("out of memory");
    if (dry_run) {
        printf("%.*s\n", (int)(req.len - 2), req.data);     /* without the "\r\n" */
        json_buf_free(&req);
        json_free(args);
        return 0;
    }
    conn_open(&conn, path);
    greet_and_negotiate(&conn, strcmp(cmd, "qmp_capabilities") != 0, timeout_ms);
    conn_send(&conn, req.data, req.len);
    json_buf_free(&req);
    reply = conn_reply(&conn, timeout_ms);
    if (error_desc(reply)) {
        fprintf(stderr, "vscsictl: %s\n", error_desc(reply));
        rc = 1;
    } else if (!json_obj_get(reply, "return")) {
        fprintf(stderr, "vscsictl: unexpected reply from vscsid\n");
        rc = 1;
    } else {
        if (!strcmp(cmd, "device_del") && !no_wait)
            rc = wait_deleted(&conn, json_get_str(json_obj_get(args, "id")), timeout_ms);
        if (as_json)
            print_json(json_obj_get(reply, "return"), false);
        else if (!rc)
            print_done(&conn, cmd, args, json_obj_get(reply, "return"), timeout_ms);
    }
    json_free(reply);
    json_free(args);
    conn_close(&conn);
    return rc;
}

/* QMP server on an in-process event loop with a stub daemon (the daemon.h
 * and blk.h functions the commands call are in stub_daemon.c), talked to over
 * real unix sockets. The loop is pumped while a client waits, so everything
 * runs in one thread. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "stub_daemon.h"
#include "mgmt/qmp.h"
#include "mgmt/qmp_cmd.h"
#include "test.h"
#include "util/json.h"
#include "util/log.h"
#include "util/loop.h"

static struct qmp_server *g_srv;

#include "qmp_tclient.h"

/* ---- tests ---- */

static void test_greeting_and_negotiation(void)
{
    struct tclient c;
    struct json_value *v;
    char raw[512];
    ssize_t n = 0;

    CHECK(tconnect(&c) == 0);
    /* exact bytes of the greeting, with its "\r\n" */
    for (int i = 0; i < 100 && n <= 0; i++) {
        pump(10);
        n = recv(c.fd, raw, sizeof(raw) - 1, 0);
    }
    CHECK(n > 0);
    raw[n > 0 ? n : 0] = 0;
    CHECK(!strcmp(raw, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 1, \"major\": 0}, "
                       "\"package\": \"vscsid 0.1.0\"}, \"capabilities\": []}}\r\n"));

    CHECK(is_error(cmd(&c, "{\"execute\": \"query-status\"}"), "CommandNotFound",
                   "Expecting capabilities negotiation with 'qmp_capabilities'", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"no-such-thing\"}"), "CommandNotFound",
                   "Expecting capabilities negotiation with 'qmp_capabilities'", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}"),
                   "GenericError", "Capability 'oob' not available", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": 1}}"),
                   "GenericError", "Invalid parameter type for 'enable', expected: array", false));
    v = cmd(&c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": []}, \"id\": \"neg\"}");
    CHECK(!strcmp(c.last, "{\"return\": {}, \"id\": \"neg\"}"));
    json_free(v);
    CHECK(is_error(cmd(&c, "{\"execute\": \"qmp_capabilities\"}"), "CommandNotFound",
                   "Capabilities negotiation is already complete, command ignored", false));
    v = cmd(&c, "{\"execute\": \"query-status\"}");
    CHECK(!strcmp(c.last, "{\"return\": {\"status\": \"running\", \"running\": true}}"));
    json_free(v);
    tclose(&c);
}

static void test_errors(void)
{
    struct tclient c;
    struct json_value *v;

    CHECK(connect_negotiated(&c) == 0);
    /* unknown command, with the id echoed verbatim */
    v = cmd(&c, "{\"execute\": \"foo\", \"id\": {\"a\": [1, \"x\"]}}");
    CHECK(!strcmp(c.last, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                          "\"The command foo has not been found\"}, \"id\": {\"a\": [1, \"x\"]}}"));
    json_free(v);
    /* argument checks */
    CHECK(is_error(cmd(&c, "{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}"), "GenericError",
                   "Parameter 'x' is unexpected", false));
    /* envelope checks */
    CHECK(is_error(cmd(&c, "[1, 2]"), "GenericError", "QMP input must be a JSON object", false));
    CHECK(is_error(cmd(&c, "42\n"), "GenericError", "QMP input must be a JSON object", false));
    CHECK(is_error(cmd(&c, "{\"execute\": 1}"), "GenericError",
                   "QMP input member 'execute' must be a string", false));
    CHECK(is_error(cmd(&c, "{\"arguments\": {}}"), "GenericError", "QMP input lacks member 'execute'",
                   false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"quit\", \"arguments\": []}"), "GenericError",
                   "QMP input member 'arguments' must be an object", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"quit\", \"exec-oob\": \"quit\"}"), "GenericError",
                   "QMP input member 'exec-oob' is unexpected", false));
    /* malformed JSON, then a good command on the same connection */
    CHECK(is_error(cmd(&c, "{\"execute\": }"), "GenericError", "JSON parse error, ", true));
    CHECK(is_error(cmd(&c, "{\"execute\": \"x\", \"execute\": \"y\"}"), "GenericError",
                   "JSON parse error, duplicate key 'execute'", true));
    v = cmd(&c, "{\"execute\": \"query-status\", \"id\": 7}");
    CHECK(json_obj_get(v, "return") && json_obj_get(v, "id") && json_obj_get(v, "id")->u.i == 7);
    json_free(v);
    /* a stray closer is a lexical error; the stream goes on */
    CHECK(is_error(cmd(&c, "}"), "GenericError", "JSON parse error, unexpected '}'", true));
    /* an unterminated string swallows input until a reset byte (0xff), then recovers */
    tsends(&c, "{\"execute\": \"qmp_capa");
    tsends(&c, "}{\"execute\": \"quit\"}\xff");
    CHECK(is_error(trecv(&c), "GenericError", "JSON parse error, invalid byte 0xff", true));
    v = cmd(&c, "{'execute': 'query-name', 'id': 'sq'}");   /* QEMU's single quotes */
    CHECK(!strcmp(c.last, "{\"return\": {}, \"id\": \"sq\"}"));
    json_free(v);
    tclose(&c);
    CHECK(g_d.shutdown_requests == 0);
}

static void test_framing(void)
{
    struct tclient c;
    struct json_value *v;
    const char *req = "{\"execute\": \"query-status\", \"id\": \"split\"}";

    CHECK(connect_negotiated(&c) == 0);
    /* two objects in one write */
    tsends(&c, "{\"execute\": \"query-name\", \"id\": 1}{\"execute\": \"query-status\", \"id\": 2}\r\n");
    v = trecv(&c);
    CHECK(json_obj_get(v, "id") && json_obj_get(v, "id")->u.i == 1);
    json_free(v);
    v = trecv(&c);
    CHECK(json_obj_get(v, "id") && json_obj_get(v, "id")->u.i == 2);
    json_free(v);
    /* one object split across writes, one byte at a time */
    for (size_t i = 0; req[i]; i++) {
        tsend(&c, req + i, 1);
        pump(0);
    }
    v = trecv(&c);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "id")), "split"));
    CHECK(json_obj_get(v, "return"));
    json_free(v);
    tclose(&c);
}

static void test_oversized_and_disconnects(void)
{
    struct tclient a, b, m;
    struct json_value *v;
    size_t big = (1u << 20) + 100;
    char *p = malloc(big);

    CHECK(connect_negotiated(&a) == 0);
    CHECK(connect_negotiated(&b) == 0);
    CHECK(connect_negotiated(&m) == 0);
    /* m disconnects in the middle of a message */
    tsends(&m, "{\"execute\": \"query-bl");
    pump(10);
    tclose(&m);
    pump(10);
    /* a sends a message over 1 MiB: error reply, then its connection closes */
    memset(p, 'x', big);
    memcpy(p, "{\"execute\": \"", 13);
    tsend(&a, p, big);
    CHECK(is_error(trecv(&a), "GenericError", "JSON parse error, message exceeds", true));
    v = trecv(&a);
    CHECK(!v && a.eof);
    tclose(&a);
    /* b is unaffected */
    v = cmd(&b, "{\"execute\": \"query-status\"}");
    CHECK(json_obj_get(v, "return") != NULL);
    json_free(v);
    tclose(&b);
    /* a client still writing after the limit is not reset: it can send the rest
     * of its 3 MiB, then read the error and our EOF */
    {
        size_t huge = 3u << 20, off = 0;
        char *q = malloc(huge);
        bool write_failed = false;
        CHECK(connect_negotiated(&a) == 0);
        memset(q, 'y', huge);
        memcpy(q, "{\"execute\": \"", 13);
        while (q && off < huge) {
            ssize_t n = send(a.fd, q + off, huge - off, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                pump(5);
            } else {
                write_failed = true;
                break;
            }
        }
        CHECK(!write_failed && off == huge);
        shutdown(a.fd, SHUT_WR);
        CHECK(is_error(trecv(&a), "GenericError", "JSON parse error, message exceeds", true));
        v = trecv(&a);
        CHECK(!v && a.eof);
        tclose(&a);
        free(q);
    }
    free(p);
}

static void test_output_cap(void)
{
    struct tclient slow, ok;
    struct json_value *v;
    char batch[64 * 32];
    bool dropped = false;

    CHECK(connect_negotiated(&slow) == 0);
    CHECK(connect_negotiated(&ok) == 0);
    batch[0] = 0;
    for (int i = 0; i < 64; i++)
        strcat(batch, "{\"execute\": \"query-block\"}");
    /* each reply is ~30 KB: the server must give up on a client that never reads */
    for (int i = 0; i < 400 && !dropped; i++) {
        ssize_t n = send(slow.fd, batch, strlen(batch), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            dropped = true;
        pump(5);
    }
    CHECK(dropped);
    tclose(&slow);
    v = cmd(&ok, "{\"execute\": \"query-status\"}");
    CHECK(json_obj_get(v, "return") != NULL);
    json_free(v);
    tclose(&ok);
}

static void test_query_shapes(void)
{
    struct tclient c;
    struct json_value *v;
    const struct json_value *r, *e, *ins;
    int64_t i;

    CHECK(connect_negotiated(&c) == 0);
    v = cmd(&c, "{\"execute\": \"query-version\"}");
    CHECK(!strcmp(c.last, "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 1, \"major\": 0}, "
                          "\"package\": \"vscsid 0.1.0\"}}"));
    json_free(v);

    v = cmd(&c, "{\"execute\": \"query-commands\"}");
    r = json_obj_get(v, "return");
    CHECK(json_array_len(r) >= 8);
    {
        bool found = false;
        for (size_t k = 0; k < json_array_len(r); k++)
            if (!strcmp(json_get_str(json_obj_get(json_array_at(r, k), "name")), "query-scsi-devices"))
                found = true;
        CHECK(found);
    }
    json_free(v);

    v = cmd(&c, "{\"execute\": \"query-block\"}");
    r = json_obj_get(v, "return");
    CHECK(json_array_len(r) == NDRIVES);
    /* natural order by id */
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "device")), "drive0"));
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 2), "device")), "drive2"));
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 10), "device")), "drive10"));
    e = json_array_at(r, 0);
    CHECK(!strcmp(json_get_str(json_obj_get(e, "qdev")), "disk0"));
    ins = json_obj_get(e, "inserted");
    CHECK(!strcmp(json_get_str(json_obj_get(ins, "node-name")), "drive0"));
    CHECK(!strcmp(json_get_str(json_obj_get(ins, "drv")), "raw"));
    CHECK(json_is(json_obj_get(ins, "ro"), JSON_BOOL) && !json_obj_get(ins, "ro")->u.b);
    CHECK(!strcmp(json_get_str(json_obj_get(ins, "file")), g_d.drives[0].filename));
    CHECK(json_get_int(json_obj_get(json_obj_get(ins, "image"), "virtual-size"), 0, INT64_MAX, &i) == 0 &&
          i == 1ll << 30);
    CHECK(json_obj_get(json_obj_get(ins, "cache"), "direct")->u.b);
    e = json_array_at(r, 1);
    ins = json_obj_get(e, "inserted");
    CHECK(!strcmp(json_get_str(json_obj_get(ins, "drv")), "null-co"));
    CHECK(json_obj_get(ins, "ro")->u.b);
    CHECK(json_obj_get(json_array_at(r, 5), "qdev") == NULL);
    json_free(v);

    v = cmd(&c, "{\"execute\": \"query-iothreads\"}");
    r = json_obj_get(v, "return");
    CHECK(json_array_len(r) == 2);
    e = json_array_at(r, 0);
    CHECK(!strcmp(json_get_str(json_obj_get(e, "id")), "vscsi-io0"));
    CHECK(json_get_int(json_obj_get(e, "thread-id"), 4242, 4242, &i) == 0);
    CHECK(json_get_int(json_obj_get(e, "poll-max-ns"), 32000, 32000, &i) == 0);
    CHECK(json_get_int(json_obj_get(e, "aio-max-batch"), 0, 0, &i) == 0);
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 1), "id")), "vscsi-io1"));
    json_free(v);

    v = cmd(&c, "{\"execute\": \"query-scsi-devices\"}");
    r = json_obj_get(v, "return");
    CHECK(json_array_len(r) == 2);
    e = json_array_at(r, 0);            /* lun 1 sorts first */
    CHECK(!strcmp(json_get_str(json_obj_get(e, "id")), "cd1"));
    CHECK(!strcmp(json_get_str(json_obj_get(e, "driver")), "scsi-cd"));
    CHECK(json_obj_get(e, "serial") == NULL);
    e = json_array_at(r, 1);
    CHECK(!strcmp(json_get_str(json_obj_get(e, "id")), "disk0"));
    CHECK(!strcmp(json_get_str(json_obj_get(e, "driver")), "scsi-hd"));
    CHECK(!strcmp(json_get_str(json_obj_get(e, "drive")), "drive0"));
    CHECK(json_get_int(json_obj_get(e, "scsi-id"), 0, 0, &i) == 0);
    CHECK(json_get_int(json_obj_get(e, "lun"), 3, 3, &i) == 0);
    CHECK(json_get_int(json_obj_get(e, "size"), 1ll << 30, 1ll << 30, &i) == 0);
    CHECK(json_get_int(json_obj_get(e, "logical-block-size"), 4096, 4096, &i) == 0);
    CHECK(json_is(json_obj_get(e, "read-only"), JSON_BOOL));
    CHECK(!strcmp(json_get_str(json_obj_get(e, "serial")), "SER0"));
    json_free(v);
    tclose(&c);
}

static void test_events_and_quit(void)
{
    struct tclient a, fresh;
    struct json_value *v;
    const struct json_value *ts;

    CHECK(connect_negotiated(&a) == 0);
    CHECK(tconnect(&fresh) == 0);
    json_free(trecv(&fresh));           /* greeting; no negotiation */
    qmp_server_event(g_srv, "TEST_EVENT", "{\"x\": 1}");
    qmp_server_event(g_srv, "BAD_EVENT", "{\"x\": ");       /* refused, not sent */
    qmp_server_event(g_srv, "NO_DATA", NULL);
    v = trecv(&a);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "TEST_EVENT"));
    CHECK(json_obj_get(json_obj_get(v, "data"), "x")->u.i == 1);
    ts = json_obj_get(v, "timestamp");
    CHECK(json_is(json_obj_get(ts, "seconds"), JSON_INT) && json_obj_get(ts, "seconds")->u.i > 1600000000);
    CHECK(json_is(json_obj_get(ts, "microseconds"), JSON_INT) &&
          json_obj_get(ts, "microseconds")->u.i < 1000000);
    json_free(v);
    v = trecv(&a);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "NO_DATA") && !json_obj_get(v, "data"));
    json_free(v);

    /* quit: the reply, then the SHUTDOWN event, then the daemon is asked to stop */
    CHECK(is_empty_return(cmd(&a, "{\"execute\": \"quit\"}")));
    v = trecv(&a);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "SHUTDOWN"));
    CHECK(!strcmp(json_get_str(json_obj_get(json_obj_get(v, "data"), "reason")), "host-qmp-quit"));
    json_free(v);
    CHECK(g_d.shutdown_requests == 1);
    v = cmd(&a, "{\"execute\": \"query-status\"}");
    CHECK(!strcmp(json_get_str(json_obj_get(json_obj_get(v, "return"), "status")), "shutdown"));
    json_free(v);
    /* the client still negotiating saw no events: its first message is a reply */
    v = cmd(&fresh, "{\"execute\": \"qmp_capabilities\"}");
    CHECK(json_obj_get(v, "return") != NULL);
    json_free(v);
    tclose(&a);
    tclose(&fresh);
}

static const char *status_of(struct tclient *c, bool *running)
{
    static char st[32];
    struct json_value *v = cmd(c, "{\"execute\": \"query-status\"}");
    const struct json_value *r = json_obj_get(v, "return");

    snprintf(st, sizeof(st), "%s", json_get_str(json_obj_get(r, "status")) ?: "?");
    *running = json_is(json_obj_get(r, "running"), JSON_BOOL) && json_obj_get(r, "running")->u.b;
    json_free(v);
    return st;
}

/* stop/cont/query-status, the I/O error events as QEMU's, x-vscsi-inject's
 * arguments, io-status in query-block; the daemon side is the stub. */
static void test_run_state(void)
{
    struct tclient c;
    struct json_value *v;
    const struct json_value *r, *data;
    bool running;

    stub_init(false);
    CHECK(connect_negotiated(&c) == 0);
    CHECK(!strcmp(status_of(&c, &running), "running") && running);
    CHECK(is_empty_return(cmd(&c, "{\"execute\": \"stop\"}")));
    CHECK_EQ(g_d.stop_calls, 1);
    CHECK(!strcmp(status_of(&c, &running), "paused") && !running);
    g_d.run_state = VSCSID_IO_ERROR;
    CHECK(!strcmp(status_of(&c, &running), "io-error") && !running);
    CHECK(is_empty_return(cmd(&c, "{\"execute\": \"cont\"}")));
    CHECK_EQ(g_d.cont_calls, 1);
    CHECK(!strcmp(status_of(&c, &running), "running") && running);
    CHECK(is_error(cmd(&c, "{\"execute\": \"cont\", \"arguments\": {\"x\": 1}}"), "GenericError",
                   "Parameter 'x' is unexpected", false));

    /* the daemon's events as QMP events */
    struct vscsid_io_error ioe = { .drive = "drive3", .device = "disk3", .is_read = false,
                                   .err = ENOSPC, .action = BLK_ACTION_STOP };
    struct vscsid_event ev = { .type = VSCSID_EVENT_IO_ERROR, .device = "disk3", .io_error = &ioe };
    for (unsigned i = 0; i < VSCSID_MAX_SINKS; i++)
        if (g_d.sinks[i].cb) {
            g_d.sinks[i].cb(g_d.sinks[i].opaque, &ev);
            ev.type = VSCSID_EVENT_STOP;
            g_d.sinks[i].cb(g_d.sinks[i].opaque, &ev);
            ev.type = VSCSID_EVENT_RESUME;
            g_d.sinks[i].cb(g_d.sinks[i].opaque, &ev);
        }
    v = trecv(&c);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "BLOCK_IO_ERROR"));
    data = json_obj_get(v, "data");
    CHECK(!strcmp(json_get_str(json_obj_get(data, "device")), "drive3"));
    CHECK(!strcmp(json_get_str(json_obj_get(data, "node-name")), "drive3"));
    CHECK(!strcmp(json_get_str(json_obj_get(data, "operation")), "write"));
    CHECK(!strcmp(json_get_str(json_obj_get(data, "action")), "stop"));
    CHECK(json_is(json_obj_get(data, "nospace"), JSON_BOOL) && json_obj_get(data, "nospace")->u.b);
    CHECK(!strcmp(json_get_str(json_obj_get(data, "reason")), "No space left on device"));
    json_free(v);
    v = trecv(&c);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "STOP") && !json_obj_get(v, "data"));
    json_free(v);
    v = trecv(&c);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "RESUME"));
    json_free(v);

    /* x-vscsi-inject */
    CHECK(is_error(cmd(&c, "{\"execute\": \"x-vscsi-inject\"}"), "GenericError",
                   "Parameter 'node-name' is missing", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"x-vscsi-inject\", \"arguments\": {\"node-name\": \"nope\"}}"),
                   "DeviceNotFound", "Failed to find node with node-name='nope'", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"x-vscsi-inject\", \"arguments\": {\"node-name\": \"drive2\", "
                           "\"rules\": \"bad\"}}"),
                   "GenericError", "Parameter 'rules': inject: rule 1 'bad': 'bad' is not an operation", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"x-vscsi-inject\", \"arguments\": {\"node-name\": \"drive2\", "
                           "\"rules\": 3}}"),
                   "GenericError", "Invalid parameter type for 'rules', expected: string", false));
    v = cmd(&c, "{\"execute\": \"x-vscsi-inject\", \"arguments\": {\"node-name\": \"drive2\", "
                "\"rules\": \"write:enospc:count=3\"}}");
    r = json_obj_get(v, "return");
    CHECK(json_array_len(r) == 1);
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "rule")), "write:enospc:count=3"));
    CHECK(json_obj_get(json_array_at(r, 0), "remaining")->u.i == 2);
    CHECK(json_obj_get(json_array_at(r, 0), "hits")->u.i == 1);
    json_free(v);
    CHECK(!strcmp(g_d.blks[2].inject, "write:enospc:count=3"));
    v = cmd(&c, "{\"execute\": \"x-vscsi-inject\", \"arguments\": {\"node-name\": \"drive2\", "
                "\"rules\": \"read:eio:count=inf\"}}");
    r = json_obj_get(v, "return");
    CHECK(json_obj_get(json_array_at(r, 0), "remaining") == NULL);     /* no limit */
    json_free(v);
    v = cmd(&c, "{\"execute\": \"x-vscsi-inject\", \"arguments\": {\"node-name\": \"drive2\", "
                "\"rules\": \"\"}}");
    CHECK(json_array_len(json_obj_get(v, "return")) == 0);
    json_free(v);

    /* io-status in query-block */
    g_d.blks[0].iostatus = BLK_IOSTATUS_NOSPACE;
    v = cmd(&c, "{\"execute\": \"query-block\"}");
    r = json_obj_get(v, "return");
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "io-status")), "nospace"));
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 1), "io-status")), "ok"));
    CHECK(json_obj_get(json_array_at(r, 5), "io-status") == NULL);    /* no device */
    json_free(v);

    /* blockdev-add passes werror/rerror/x-inject to the --drive checks */
    CHECK(is_empty_return(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"w1\", "
                                  "\"driver\": \"null-co\", \"size\": 4096, \"werror\": \"stop\", "
                                  "\"rerror\": \"ignore\", \"x-inject\": \"read:eio\"}}")));
    CHECK_EQ(g_d.last_drive.blk.werror, BLK_ERR_STOP);
    CHECK_EQ(g_d.last_drive.blk.rerror, BLK_ERR_IGNORE);
    CHECK(!strcmp(g_d.last_drive.inject, "read:eio"));
    CHECK(is_error(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"w2\", "
                           "\"driver\": \"null-co\", \"size\": 4096, \"rerror\": \"enospc\"}}"),
                   "GenericError", "blockdev-add: rerror=enospc: expected report, ignore or stop", true));
    /* driver=memory: size required, no file members, no O_DIRECT */
    CHECK(is_empty_return(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"m1\", "
                                  "\"driver\": \"memory\", \"size\": 1048576}}")));
    CHECK_EQ(g_d.last_drive.blk.driver, BLK_DRIVER_MEMORY);
    CHECK_EQ(g_d.last_drive.blk.size, 1048576);
    CHECK(is_error(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"m2\", "
                           "\"driver\": \"memory\"}}"),
                   "GenericError", "Parameter 'size' is missing (memory has no default size in vscsid)",
                   false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"m2\", "
                           "\"driver\": \"memory\", \"size\": 4096, \"filename\": \"/x\"}}"),
                   "GenericError", "Parameter 'filename' is unexpected", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"m2\", "
                           "\"driver\": \"memory\", \"size\": 4096, \"read-zeroes\": false}}"),
                   "GenericError", "Parameter 'read-zeroes' is unexpected", false));
    CHECK(is_error(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"m2\", "
                           "\"driver\": \"memory\", \"size\": 4096, \"cache\": {\"direct\": true}}}"),
                   "GenericError", "blockdev-add id=m2: driver=memory has no O_DIRECT, so cache=none",
                   true));
    CHECK(is_error(cmd(&c, "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"m2\", "
                           "\"driver\": \"qcow2\"}}"),
                   "GenericError", "Parameter 'driver' does not accept value 'qcow2' (vscsid has raw, "
                   "file, null-co and memory)", false));
    tclose(&c);
    stub_init(true);
}

static void test_client_limit(void)
{
    static struct tclient cs[70];
    struct json_value *v;
    int greeted = 0, refused = 0;

    for (int i = 0; i < 70; i++)
        CHECK(tconnect(&cs[i]) == 0);
    for (int i = 0; i < 70; i++) {
        v = trecv(&cs[i]);
        if (v)
            greeted++;
        else if (cs[i].eof)
            refused++;
        json_free(v);
    }
    CHECK(greeted == 64 && refused == 6);
    for (int i = 0; i < 70; i++)
        tclose(&cs[i]);
    for (int i = 0; i < 10; i++)
        pump(5);
}

static void test_arg_checks(void)
{
    static const struct qmp_arg spec[] = {
        { "name", QMP_ARG_STR, false },
        { "size", QMP_ARG_INT, false },
        { "ro", QMP_ARG_BOOL, true },
        { "opts", QMP_ARG_OBJECT, true },
        { NULL },
    };
    struct { const char *args, *prefix, *desc; } cases[] = {
        { "{\"size\": 1}", "", "Parameter 'name' is missing" },
        { "{\"name\": \"a\"}", "", "Parameter 'size' is missing" },
        { "{\"name\": 1, \"size\": 1}", "", "Invalid parameter type for 'name', expected: string" },
        { "{\"name\": \"a\", \"size\": 1.5}", "", "Invalid parameter type for 'size', expected: integer" },
        { "{\"name\": \"a\", \"size\": 1, \"ro\": \"yes\"}", "file.",
          "Invalid parameter type for 'file.ro', expected: boolean" },
        { "{\"name\": \"a\", \"size\": 1, \"opts\": []}", "", "Invalid parameter type for 'opts', expected: object" },
        { "{\"name\": \"a\", \"size\": 1, \"extra\": 0}", "", "Parameter 'extra' is unexpected" },
        { "{\"name\": \"a\", \"size\": 1, \"ro\": true, \"opts\": {}}", "", "" },
    };
    char err[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qmp_req req = { 0 };
        struct json_value *a = json_parse(cases[i].args, strlen(cases[i].args), 0, err, sizeof(err));
        int r = qmp_check_args(&req, a, spec, cases[i].prefix);
        CHECK(cases[i].desc[0] ? r == -EINVAL : r == 0);
        CHECK(!strcmp(req.err_desc, cases[i].desc));
        if (strcmp(req.err_desc, cases[i].desc))
            fprintf(stderr, "  case %zu: '%s'\n", i, req.err_desc);
        if (!r) {
            int64_t v;
            CHECK(qmp_arg_int(&req, a, "size", 0, 0, &v) == -EINVAL);
            CHECK(!strcmp(req.err_desc, "Parameter 'size' expects a value from 0 to 0"));
            CHECK(qmp_arg_bool(a, "ro", false) && !qmp_arg_bool(a, "none", false));
            CHECK(!strcmp(qmp_arg_str(a, "name"), "a") && !qmp_arg_str(a, "size"));
        }
        json_free(a);
    }
    /* no args at all against a spec with none */
    {
        struct qmp_req req = { 0 };
        CHECK(qmp_check_args(&req, NULL, NULL, "") == 0);
    }
    /* every command name is unique and every command has a handler */
    {
        bool ok = true;
        const struct qmp_cmd *const tables[] = { qmp_core_cmds, qmp_query_cmds, qmp_block_cmds,
                                                 qmp_device_cmds };
        for (size_t g = 0; g < sizeof(tables) / sizeof(tables[0]); g++) {
            const struct qmp_cmd *t = tables[g];
            for (; t->name; t++)
                ok = ok && t->fn && qmp_find_command(t->name) == t;
        }
        CHECK(ok);
    }
}

/* Reply is {"return": {}}; prints the error otherwise. */
static int ok_reply(struct json_value *v)
{
    const char *d = err_desc(v);
    int ok = json_obj_get(v, "return") != NULL;

    if (!ok)
        fprintf(stderr, "  unexpected error: %s\n", d);
    json_free(v);
    return ok;
}

/* blockdev-add / device_add map their arguments onto the --drive / --device
 * configuration (checked by the CLI's own code); errors name the argument. */
static void test_hotplug_args(void)
{
    struct tclient c;
    struct { const char *req, *cls, *desc; } bad[] = {
        { "{'execute': 'blockdev-add', 'arguments': {'driver': 'null-co', 'size': 512}}",
          "GenericError", "Parameter 'node-name' is missing" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'qcow2'}}",
          "GenericError", "Parameter 'driver' does not accept value 'qcow2'" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'raw'}}",
          "GenericError", "Parameter 'file' is missing" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'raw', 'file': {'driver': 'nbd', 'filename': '/a'}}}",
          "GenericError", "Parameter 'file.driver' does not accept value 'nbd'" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'raw', 'file': {'driver': 'file'}}}",
          "GenericError", "Parameter 'file.filename' is missing" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'raw', 'file': {'driver': 'file', 'filename': 3}}}",
          "GenericError", "Invalid parameter type for 'file.filename', expected: string" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'null-co'}}",
          "GenericError", "Parameter 'size' is missing" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'null-co', 'size': 0}}",
          "GenericError", "Parameter 'size' expects a value from 1 to" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'raw', 'size': 1, 'file': {'driver': 'file', 'filename': '/a'}}}",
          "GenericError", "Parameter 'size' is unexpected" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'null-co', 'size': 512, 'cache': {'direct': true, 'no-flush': true}}}",
          "GenericError", "cache.direct and cache.no-flush cannot both be true" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'null-co', 'size': 512, 'cache': {'writeback': true}}}",
          "GenericError", "Parameter 'cache.writeback' is unexpected" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'x', 'driver': 'null-co', 'size': 512, 'discard': 'maybe'}}",
          "GenericError", "Parameter 'discard' does not accept value 'maybe'" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': '1x', 'driver': 'null-co', 'size': 512}}",
          "GenericError", "Parameter 'node-name': '1x' is not a valid name" },
        { "{'execute': 'blockdev-add', 'arguments': {'node-name': 'drive3', 'driver': 'null-co', 'size': 512}}",
          "GenericError", "blockdev-add: drive id 'drive3' is already in use" },
        { "{'execute': 'device_add', 'arguments': {'drive': 'drive5'}}",
          "GenericError", "Parameter 'driver' is missing" },
        { "{'execute': 'device_add', 'arguments': {'driver': 5}}",
          "GenericError", "Invalid parameter type for 'driver', expected: string" },
        { "{'execute': 'device_add'}", "GenericError", "Parameter 'driver' is missing" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-tape', 'drive': 'drive5'}}",
          "GenericError", "device_add: unknown device type 'scsi-tape'" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd'}}",
          "GenericError", "device_add: missing drive=" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'scsi-id': 256}}",
          "GenericError", "device_add: scsi-id=256: expected a number from 0 to 255" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'lun': 16384}}",
          "GenericError", "device_add: lun=16384: expected a number from 0 to 16383" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'lun': -1}}",
          "GenericError", "device_add: lun=-1: expected a number from 0 to 16383" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'lun': 'abc'}}",
          "GenericError", "device_add: lun=abc: expected a number" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'lun': 1.5}}",
          "GenericError", "Invalid parameter type for 'lun', expected: string, integer or boolean" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'lun': null}}",
          "GenericError", "Invalid parameter type for 'lun'" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'removable': 'maybe'}}",
          "GenericError", "device_add: removable=maybe: expected on or off" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'colour': 'red'}}",
          "GenericError", "device_add: unknown key 'colour'" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5', 'id': 'a b'}}",
          "GenericError", "device_add: id=a b: an id starts with a letter" },
        { "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'nodrive'}}",
          "GenericError", "device_add: drive 'nodrive' not found" },
        { "{'execute': 'device_del'}", "GenericError", "Parameter 'id' is missing" },
        { "{'execute': 'device_del', 'arguments': {'id': 7}}",
          "GenericError", "Invalid parameter type for 'id', expected: string" },
        { "{'execute': 'device_del', 'arguments': {'id': 'nope'}}", "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'blockdev-del', 'arguments': {'node-name': 'nope'}}",
          "DeviceNotFound", "Failed to find node with node-name='nope'" },
        { "{'execute': 'blockdev-del', 'arguments': {'node-name': 'drive0'}}",
          "GenericError", "blockdev-del: drive 'drive0' is in use by device 'disk0'" },
        { "{'execute': 'block_resize', 'arguments': {'size': 512}}",
          "GenericError", "Parameter 'node-name' is missing (or give 'device')" },
        { "{'execute': 'block_resize', 'arguments': {'device': 'drive2', 'node-name': 'drive2', 'size': 512}}",
          "GenericError", "Give 'device' or 'node-name', not both" },
        { "{'execute': 'block_resize', 'arguments': {'device': 'drive2'}}",
          "GenericError", "Parameter 'size' is missing" },
        { "{'execute': 'block_resize', 'arguments': {'device': 'drive2', 'size': -1}}",
          "GenericError", "Parameter 'size' expects a value from 0 to" },
        { "{'execute': 'block_resize', 'arguments': {'device': 'drive2', 'size': 1000}}",
          "GenericError", "Parameter 'size': size 1000 is not a positive multiple of 512" },
        { "{'execute': 'block_resize', 'arguments': {'node-name': 'nope', 'size': 512}}",
          "DeviceNotFound", "Cannot find device='' nor node-name='nope'" },
        { "{'execute': 'query-blockstats', 'arguments': {'query-nodes': 1}}",
          "GenericError", "Invalid parameter type for 'query-nodes', expected: boolean" },
    };
    struct json_value *v;
    const struct json_value *r, *st;
    int64_t i;

    stub_init(true);
    CHECK(connect_negotiated(&c) == 0);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        bool ok = is_error(cmd(&c, bad[k].req), bad[k].cls, bad[k].desc, true);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  case %zu: %s\n", k, bad[k].req);
    }

    /* raw over a file, every option */
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'img1', 'driver': 'raw',"
                           " 'read-only': true, 'discard': 'unmap', 'cache': {'direct': true},"
                           " 'file': {'driver': 'file', 'filename': '/var/img1', 'aio': 'threads'}}}")));
    CHECK(!strcmp(g_d.last_drive.id, "img1") && !strcmp(g_d.last_drive.filename, "/var/img1"));
    CHECK(!strcmp(g_d.last_drive.format, "raw") && g_d.last_drive.blk.driver == BLK_DRIVER_FILE);
    CHECK(g_d.last_drive.blk.readonly && g_d.last_drive.blk.discard_unmap);
    CHECK(g_d.last_drive.blk.cache == BLK_CACHE_NONE && g_d.last_drive.blk.aio == BLK_AIO_THREADS);
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'img2', 'driver': 'file',"
                           " 'filename': '/var/img2', 'cache': {'no-flush': true}}}")));
    CHECK(!strcmp(g_d.last_drive.filename, "/var/img2") && !g_d.last_drive.blk.readonly);
    CHECK(g_d.last_drive.blk.cache == BLK_CACHE_UNSAFE && !g_d.last_drive.blk.discard_unmap);
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-add', 'arguments': {'node-name': 'n1', 'driver': 'null-co',"
                           " 'size': 1073741824, 'read-zeroes': true}}")));
    CHECK(g_d.last_drive.blk.driver == BLK_DRIVER_NULL && g_d.last_drive.blk.size == 1ull << 30);
    CHECK(g_d.last_drive.blk.cache == BLK_CACHE_WRITEBACK);

    /* device_add: JSON integers/booleans or strings, as QEMU takes them */
    CHECK(ok_reply(cmd(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-hd', 'drive': 'drive5',"
                           " 'scsi-id': 3, 'lun': 300, 'id': 'hd5', 'serial': '007',"
                           " 'wwn': '0x5000c50015ea71ac', 'removable': true, 'logical_block_size': 4096}}")));
    CHECK(g_d.last_device.target == 3 && g_d.last_device.lun == 300);
    CHECK(!strcmp(g_d.last_device.id, "hd5") && !strcmp(g_d.last_device.drive, "drive5"));
    CHECK(!strcmp(g_d.last_device.serial, "007") && g_d.last_device.scsi.wwn == 0x5000c50015ea71acull);
    CHECK(g_d.last_device.scsi.removable && g_d.last_device.scsi.logical_block_size == 4096);
    CHECK(ok_reply(cmd(&c, "{'execute': 'device_add', 'arguments': {'driver': 'scsi-disk', 'drive': 'drive6',"
                           " 'scsi-id': '255', 'lun': '16383', 'removable': 'off'}}")));
    CHECK(g_d.last_device.target == 255 && g_d.last_device.lun == 16383 && !g_d.last_device.scsi.removable);

    /* block_resize by drive, by node-name, by device id (its drive) */
    CHECK(ok_reply(cmd(&c, "{'execute': 'block_resize', 'arguments': {'device': 'drive3', 'size': 1048576}}")));
    CHECK(!strcmp(g_d.last_resize_drive, "drive3") && g_d.last_resize == 1048576);
    CHECK(ok_reply(cmd(&c, "{'execute': 'block_resize', 'arguments': {'node-name': 'drive4', 'size': 2048}}")));
    CHECK(!strcmp(g_d.last_resize_drive, "drive4"));
    CHECK(ok_reply(cmd(&c, "{'execute': 'block_resize', 'arguments': {'device': 'disk0', 'size': 4096}}")));
    CHECK(!strcmp(g_d.last_resize_drive, "drive0") && g_d.last_resize == 4096);

    /* blockdev-del of a free drive */
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-del', 'arguments': {'node-name': 'drive7'}}")));

    /* device_del: the reply first, then DEVICE_DELETED (the stub completes at once) */
    v = cmd(&c, "{'execute': 'device_del', 'arguments': {'id': 'disk0'}, 'id': 'del1'}");
    CHECK(json_obj_get(v, "return") && !strcmp(json_get_str(json_obj_get(v, "id")), "del1"));
    json_free(v);
    v = trecv(&c);
    CHECK(!strcmp(json_get_str(json_obj_get(v, "event")), "DEVICE_DELETED"));
    r = json_obj_get(v, "data");
    CHECK(!strcmp(json_get_str(json_obj_get(r, "device")), "disk0"));
    CHECK(!strcmp(json_get_str(json_obj_get(r, "path")), "/machine/peripheral/disk0"));
    json_free(v);

    /* query-blockstats: QEMU's BlockStats shape, one per drive, sorted */
    v = cmd(&c, "{'execute': 'query-blockstats'}");
    r = json_obj_get(v, "return");
    CHECK(json_array_len(r) == NDRIVES);
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "device")), "drive0"));
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "node-name")), "drive0"));
    CHECK(!strcmp(json_get_str(json_obj_get(json_array_at(r, 0), "qdev")), "disk0"));
    CHECK(!json_obj_get(json_array_at(r, 2), "qdev"));
    st = json_obj_get(json_array_at(r, 2), "stats");
    CHECK(json_get_int(json_obj_get(st, "rd_operations"), 3, 3, &i) == 0);
    CHECK(json_get_int(json_obj_get(st, "rd_bytes"), 3 * 4096, 3 * 4096, &i) == 0);
    CHECK(json_get_int(json_obj_get(st, "wr_operations"), 2, 2, &i) == 0);
    CHECK(json_get_int(json_obj_get(st, "flush_operations"), 1, 1, &i) == 0);
    CHECK(json_is(json_obj_get(st, "failed_operations"), JSON_INT));
    CHECK(json_get_int(json_obj_get(st, "rd_total_time_ns"), 300000, 300000, &i) == 0);
    CHECK(json_get_int(json_obj_get(st, "wr_total_time_ns"), 100000, 100000, &i) == 0);
    json_free(v);
    tclose(&c);
    stub_init(true);
}

/* The next message must be DEVICE_TRAY_MOVED with QEMU's data. */
static int tray_event(struct tclient *c, const char *drive, const char *id, bool open)
{
    struct json_value *v = trecv(c);
    const struct json_value *d = json_obj_get(v, "data"), *t = json_obj_get(d, "tray-open");
    const char *ev = json_get_str(json_obj_get(v, "event"));
    int ok = ev && !strcmp(ev, "DEVICE_TRAY_MOVED") && json_get_str(json_obj_get(d, "device")) &&
             !strcmp(json_get_str(json_obj_get(d, "device")), drive) &&
             json_get_str(json_obj_get(d, "id")) && !strcmp(json_get_str(json_obj_get(d, "id")), id) &&
             json_is(t, JSON_BOOL) && t->u.b == open && json_obj_get(v, "timestamp");

    if (!ok)
        fprintf(stderr, "  want DEVICE_TRAY_MOVED %s/%s open=%d, got %s\n", drive, id, open, c->last);
    json_free(v);
    return ok;
}

/* query-block's entry for drive id (a copy of the reply is kept in *reply). */
static const struct json_value *block_entry(struct tclient *c, const char *id, struct json_value **reply)
{
    const struct json_value *r;

    *reply = cmd(c, "{'execute': 'query-block'}");
    r = json_obj_get(*reply, "return");
    for (size_t i = 0; i < json_array_len(r); i++)
        if (!strcmp(json_get_str(json_obj_get(json_array_at(r, i), "device")), id))
            return json_array_at(r, i);
    return NULL;
}

static bool bool_is(const struct json_value *o, const char *key, bool want)
{
    const struct json_value *v = json_obj_get(o, key);
    return json_is(v, JSON_BOOL) && v->u.b == want;
}

/* Removable media commands: QEMU's argument checks and messages, what reaches
 * the daemon, DEVICE_TRAY_MOVED after the reply, and query-block's tray state.
 * The stub daemon models cd1 (drive1) with a tray, disk0 not removable. */
static void test_media(void)
{
    struct tclient c;
    struct { const char *req, *cls, *desc; } bad[] = {
        { "{'execute': 'eject'}", "GenericError", "Need exactly one of 'device' and 'id'" },
        { "{'execute': 'eject', 'arguments': {'device': 'drive1', 'id': 'cd1'}}",
          "GenericError", "Need exactly one of 'device' and 'id'" },
        { "{'execute': 'eject', 'arguments': {'id': 5}}",
          "GenericError", "Invalid parameter type for 'id', expected: string" },
        { "{'execute': 'eject', 'arguments': {'id': 'cd1', 'force': 'yes'}}",
          "GenericError", "Invalid parameter type for 'force', expected: boolean" },
        { "{'execute': 'eject', 'arguments': {'id': 'cd1', 'colour': 1}}",
          "GenericError", "Parameter 'colour' is unexpected" },
        { "{'execute': 'eject', 'arguments': {'id': 'nope'}}", "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'eject', 'arguments': {'device': 'nope'}}", "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'eject', 'arguments': {'id': 'disk0'}}", "GenericError", "Device 'disk0' is not removable" },
        { "{'execute': 'blockdev-open-tray', 'arguments': {}}",
          "GenericError", "Need exactly one of 'device' and 'id'" },
        { "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'disk0'}}",
          "GenericError", "Device 'disk0' is not removable" },
        { "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'nope', 'force': true}}",
          "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'blockdev-close-tray', 'arguments': {'id': 'cd1', 'force': true}}",
          "GenericError", "Parameter 'force' is unexpected" },
        { "{'execute': 'blockdev-close-tray', 'arguments': {'device': 'drive0'}}",
          "GenericError", "Device 'drive0' is not removable" },
        { "{'execute': 'blockdev-remove-medium'}", "GenericError", "Parameter 'id' is missing" },
        { "{'execute': 'blockdev-remove-medium', 'arguments': {'device': 'drive1'}}",
          "GenericError", "Parameter 'id' is missing" },
        { "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cd1', 'device': 'drive1'}}",
          "GenericError", "Parameter 'device' is unexpected" },
        { "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'nope'}}",
          "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cd1'}}",
          "GenericError", "Tray of device 'cd1' is not open" },
        { "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd1'}}",
          "GenericError", "Parameter 'node-name' is missing" },
        { "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'nope', 'node-name': 'drive5'}}",
          "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd1', 'node-name': 'nope'}}",
          "GenericError", "Node 'nope' not found" },
        { "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd1', 'node-name': 'drive0'}}",
          "GenericError", "Node 'drive0' is already in use" },
        /* QEMU names no device in an insertion's refusals */
        { "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'disk0', 'node-name': 'drive5'}}",
          "GenericError", "Device is not removable" },
        { "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd1', 'node-name': 'drive5'}}",
          "GenericError", "Tray of the device is not open" },
        { "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1'}}",
          "GenericError", "Parameter 'filename' is missing" },
        { "{'execute': 'blockdev-change-medium', 'arguments': {'filename': '/a.iso'}}",
          "GenericError", "Need exactly one of 'device' and 'id'" },
        { "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1', 'filename': '/a.iso',"
          " 'read-only-mode': 'sometimes'}}",
          "GenericError", "Parameter 'read-only-mode' does not accept value 'sometimes'" },
        { "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1', 'filename': '/a.iso', 'format': 7}}",
          "GenericError", "Invalid parameter type for 'format', expected: string" },
        { "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'nope', 'filename': '/a.iso'}}",
          "DeviceNotFound", "Device 'nope' not found" },
        { "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'disk0', 'filename': '/a.iso'}}",
          "GenericError", "Device 'disk0' is not removable" },
        /* a missing file is not a missing device */
        { "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1', 'filename': '/nonexistent/a.iso'}}",
          "GenericError", "drive drive1: cannot open '/nonexistent/a.iso': No such file or directory" },
    };
    struct json_value *v, *q;
    const struct json_value *e;

    stub_init(true);
    CHECK(connect_negotiated(&c) == 0);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        bool ok = is_error(cmd(&c, bad[k].req), bad[k].cls, bad[k].desc, false);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  case %zu: %s\n", k, bad[k].req);
    }
    CHECK_EQ(g_d.tray_open + g_d.cd_empty + g_d.eject_requests, 0);   /* nothing changed */

    /* query-block: a tray only where there is one; "removable" as QEMU says it */
    e = block_entry(&c, "drive1", &q);
    CHECK(bool_is(e, "removable", true) && bool_is(e, "tray_open", false) && bool_is(e, "locked", false));
    CHECK(json_obj_get(e, "inserted") != NULL);
    e = block_entry(&c, "drive0", &v);
    CHECK(bool_is(e, "removable", false) && !json_obj_get(e, "tray_open"));
    json_free(v);
    e = block_entry(&c, "drive5", &v);      /* no device: its medium may be swapped */
    CHECK(bool_is(e, "removable", true) && !json_obj_get(e, "tray_open"));
    json_free(v);
    json_free(q);

    /* the guest locked the tray: eject fails, open-tray succeeds; both ask the guest */
    g_d.locked = true;
    CHECK(is_error(cmd(&c, "{'execute': 'eject', 'arguments': {'id': 'cd1'}}"), "GenericError",
                   "Device 'cd1' is locked and force was not specified, wait for tray to open and try again",
                   false));
    CHECK_EQ(g_d.eject_requests, 1);
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'cd1'}}")));
    CHECK_EQ(g_d.eject_requests, 2);
    CHECK(is_error(cmd(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1',"
                           " 'filename': '/srv/a.iso'}}"), "GenericError", "Device 'cd1' is locked", true));
    CHECK_EQ(g_d.eject_requests, 3);
    e = block_entry(&c, "drive1", &q);      /* no event came before this reply */
    CHECK(bool_is(e, "locked", true) && bool_is(e, "tray_open", false));
    json_free(q);

    /* force: the tray opens, the event follows the reply */
    v = cmd(&c, "{'execute': 'blockdev-open-tray', 'arguments': {'device': 'drive1', 'force': true}, 'id': 7}");
    CHECK(json_obj_get(v, "return") && json_obj_get(v, "id"));
    json_free(v);
    CHECK(tray_event(&c, "drive1", "cd1", true));
    CHECK(!strcmp(g_d.last_media, "open drive=drive1 force"));
    e = block_entry(&c, "drive1", &q);
    CHECK(bool_is(e, "locked", false) && bool_is(e, "tray_open", true) && json_obj_get(e, "inserted"));
    json_free(q);
    /* open again: nothing moves */
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-open-tray', 'arguments': {'id': 'cd1'}}")));
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cd1'}}")));
    CHECK(!strcmp(g_d.last_media, "remove id=cd1"));
    e = block_entry(&c, "drive1", &q);      /* "inserted" only with a medium */
    CHECK(e && !json_obj_get(e, "inserted") && bool_is(e, "tray_open", true));
    json_free(q);
    v = cmd(&c, "{'execute': 'query-scsi-devices'}");
    e = json_array_at(json_obj_get(v, "return"), 0);
    CHECK(!strcmp(json_get_str(json_obj_get(e, "id")), "cd1") && !json_obj_get(e, "size"));
    json_free(v);
    v = cmd(&c, "{'execute': 'query-blockstats'}");     /* an empty drive: zero counters */
    e = json_obj_get(json_array_at(json_obj_get(v, "return"), 1), "stats");
    CHECK(json_obj_get(e, "rd_operations") && json_obj_get(e, "rd_operations")->u.i == 0);
    json_free(v);
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-remove-medium', 'arguments': {'id': 'cd1'}}")));
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd1',"
                           " 'node-name': 'drive5'}}")));
    CHECK(!strcmp(g_d.last_media, "insert-node id=cd1 node=drive5"));
    CHECK(is_error(cmd(&c, "{'execute': 'blockdev-insert-medium', 'arguments': {'id': 'cd1',"
                           " 'node-name': 'drive6'}}"), "GenericError",
                   "There already is a medium in the device", false));
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-close-tray', 'arguments': {'id': 'cd1'}}")));
    CHECK(tray_event(&c, "drive1", "cd1", false));
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-close-tray', 'arguments': {'id': 'cd1'}}")));

    /* change-medium: every argument reaches the daemon; open and close events */
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'device': 'drive1',"
                           " 'filename': '/srv/b.iso', 'format': 'raw', 'read-only-mode': 'read-write',"
                           " 'force': true}}")));
    CHECK(!strcmp(g_d.last_media, "change drive=drive1 file=/srv/b.iso format=raw ro=read-write force"));
    CHECK(tray_event(&c, "drive1", "cd1", true));
    CHECK(tray_event(&c, "drive1", "cd1", false));
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1',"
                           " 'filename': '/srv/c.iso', 'read-only-mode': 'read-only'}}")));
    CHECK(!strcmp(g_d.last_media, "change id=cd1 file=/srv/c.iso format=- ro=read-only"));
    CHECK(tray_event(&c, "drive1", "cd1", true));
    CHECK(tray_event(&c, "drive1", "cd1", false));
    CHECK(ok_reply(cmd(&c, "{'execute': 'blockdev-change-medium', 'arguments': {'id': 'cd1',"
                           " 'filename': '/srv/c.iso', 'read-only-mode': 'retain'}}")));
    CHECK(!strcmp(g_d.last_media, "change id=cd1 file=/srv/c.iso format=- ro=retain"));
    CHECK(tray_event(&c, "drive1", "cd1", true));
    CHECK(tray_event(&c, "drive1", "cd1", false));
    /* eject: open + remove; a drive with no device has no tray (no event) */
    CHECK(ok_reply(cmd(&c, "{'execute': 'eject', 'arguments': {'id': 'cd1', 'force': false}}")));
    CHECK(tray_event(&c, "drive1", "cd1", true));
    CHECK(g_d.cd_empty && !strcmp(g_d.last_media, "remove id=cd1"));
    CHECK(ok_reply(cmd(&c, "{'execute': 'eject', 'arguments': {'device': 'drive9'}}")));
    CHECK(!strcmp(g_d.last_media, "remove drive=drive9"));
    v = cmd(&c, "{'execute': 'query-status'}");     /* the next message is a reply, not an event */
    CHECK(json_obj_get(v, "return") != NULL);
    json_free(v);
    tclose(&c);
    stub_init(true);
}

static void test_socket_setup(void)
{
    char err[256], path[140];
    struct qmp_server *s;
    struct stat st;
    int fd;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    /* mode 0600 */
    CHECK(stat(g_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
    /* a live server on the path is not stolen */
    s = qmp_server_new(g_loop, g_path, &g_d, err, sizeof(err));
    CHECK(!s && strstr(err, "already listening"));
    /* a stale socket file is replaced */
    snprintf(path, sizeof(path), "%s.stale", g_path);
    CHECK(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(fd);
    s = qmp_server_new(g_loop, path, &g_d, err, sizeof(err));
    CHECK(s != NULL);
    qmp_server_free(s);
    CHECK(access(path, F_OK) < 0);          /* removed at exit */
    /* a regular file is left alone */
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    s = qmp_server_new(g_loop, path, &g_d, err, sizeof(err));
    CHECK(!s && strstr(err, "not a socket"));
    CHECK(access(path, F_OK) == 0);
    unlink(path);
    /* too long */
    memset(path, 'a', 108);
    path[108] = 0;
    s = qmp_server_new(g_loop, path, &g_d, err, sizeof(err));
    CHECK(!s && strstr(err, "too long"));
}

int main(void)
{
    char dir[] = "/tmp/vscsi-qmp-test-XXXXXX";
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_WARN);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_path, sizeof(g_path), "%s/qmp.sock", dir);
    stub_init(true);
    g_loop = ev_loop_new();
    g_srv = qmp_server_new(g_loop, g_path, &g_d, err, sizeof(err));
    if (!g_loop || !g_srv) {
        fprintf(stderr, "cannot start the server: %s\n", err);
        return 1;
    }
    RUN_TEST(test_socket_setup);
    RUN_TEST(test_greeting_and_negotiation);
    RUN_TEST(test_errors);
    RUN_TEST(test_framing);
    RUN_TEST(test_oversized_and_disconnects);
    RUN_TEST(test_output_cap);
    RUN_TEST(test_query_shapes);
    RUN_TEST(test_client_limit);
    RUN_TEST(test_arg_checks);
    RUN_TEST(test_hotplug_args);
    RUN_TEST(test_media);
    RUN_TEST(test_run_state);
    RUN_TEST(test_events_and_quit);
    qmp_server_free(g_srv);
    CHECK(access(g_path, F_OK) < 0);
    ev_loop_free(g_loop);
    rmdir(dir);
    return test_exit();
}

/* libFuzzer target: QMP requests. The input is a byte stream as a client
 * would send it: the streaming framer (json_stream_feed) splits it at a
 * fuzz-chosen point into two reads, every framed message goes through
 * qmp_dispatch against the stub daemon of tests/unit/mgmt (fixed drives and
 * devices, no I/O), and the whole input is also parsed with json_parse in
 * both modes. Oracle: every reply is one JSON value that json_parse accepts,
 * and a parsed DOM written back with json_buf parses again. */
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "mgmt/qmp_cmd.h"
#include "stub_daemon.h"
#include "util/json.h"
#include "util/log.h"

#define MAX_MSG     (64u << 10)

static void must_parse(const char *text, size_t len)
{
    char err[128];
    struct json_value *v = json_parse(text, len, 0, err, sizeof(err));

    if (!v)
        abort();
    json_free(v);
}

static void dispatch(bool *command_mode, const char *text, size_t len)
{
    struct qmp_req req = { .daemon = &g_d };
    struct json_buf reply;

    json_buf_init(&reply, 0);
    qmp_dispatch(&req, command_mode, text, len, &reply);
    if (reply.err || !reply.data)
        abort();
    must_parse(reply.data, reply.len);
    json_buf_free(&reply);
    if (!req.failed && req.after_reply_cb)
        req.after_reply_cb(&req);
}

static void roundtrip(const char *text, size_t len, unsigned flags)
{
    char err[128];
    struct json_value *v = json_parse(text, len, flags, err, sizeof(err));
    struct json_buf b;

    if (!v)
        return;
    json_buf_init(&b, 0);
    json_buf_add_value(&b, v);
    if (!b.err)
        must_parse(b.data, b.len);
    json_buf_free(&b);
    json_free(v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_ERR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = { data, size };
    uint8_t mode = fz_u8(&f);
    size_t split = fz_u16(&f);
    const char *text = (const char *)f.p;
    size_t len = f.n;
    bool command_mode = mode & 1;
    struct json_stream js;

    stub_init(false);
    roundtrip(text, len, 0);
    roundtrip(text, len, JSON_PARSE_SQUOTE);

    json_stream_init(&js, MAX_MSG, (mode & 2) ? JSON_PARSE_SQUOTE : 0);
    if (split > len)
        split = len;
    for (int part = 0; part < 2; part++) {
        const char *p = part ? text + split : text;
        size_t n = part ? len - split : split, off = 0;

        while (off < n) {
            size_t used = 0;
            enum json_stream_status st = json_stream_feed(&js, p + off, n - off, &used);

            if (used > n - off)
                abort();
            off += used;
            if (st == JSON_STREAM_MESSAGE) {
                dispatch(&command_mode, js.buf, js.len);
                json_stream_next(&js);
            } else if (st == JSON_STREAM_TOO_BIG) {
                goto out;
            } else if (st == JSON_STREAM_MORE && used == 0) {
                break;
            }
        }
    }
out:
    json_stream_free(&js);
    return 0;
}

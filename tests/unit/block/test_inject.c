/* Fault injection rules (parsing, matching, counts, run-time changes) and
 * the error policy decisions (werror/rerror -> action). */
#include "blk_test.h"

#include <sys/uio.h>

#define MiB (1u << 20)

static struct blk_drive *open_null(const char *inject, enum blk_error_policy werror,
                                   enum blk_error_policy rerror)
{
    struct blk_opts o = { .id = "n0", .driver = BLK_DRIVER_NULL, .size = 64 * MiB,
                          .inject = inject, .werror = werror, .rerror = rerror };
    struct blk_drive *d = NULL;
    char err[256];

    if (blk_open(&o, &d, err, sizeof(err)) < 0) {
        fprintf(stderr, "blk_open: %s\n", err);
        return NULL;
    }
    return d;
}

/* Each bad rule is refused with a message that names the problem. */
static void test_parse_errors(void)
{
    static const struct {
        const char *rules, *msg;
    } bad[] = {
        { "wrte:eio", "rule 1 'wrte:eio': 'wrte' is not an operation" },
        { "write", "rule 1 'write': no error after the operation" },
        { "write:eoops", "'eoops' is not an error to inject" },
        { "write:eio:count=0", "count=0: expected a number >= 1, or inf" },
        { "write:eio:count=x", "count=x: expected a number >= 1, or inf" },
        { "write:eio:count=1:count=2", "count= given twice" },
        { "write:eio:sector=1:offset=0", "give one sector= or offset=" },
        { "write:eio:sector=a", "sector=a: expected SECTOR[+COUNT] in 512-byte sectors" },
        { "write:eio:sector=1+0", "expected SECTOR[+COUNT]" },
        { "write:eio:offset=1M+", "offset=1M+: expected BYTES[+LEN]" },
        { "write:eio:sector=36028797018963968", "beyond 2^64 bytes" },
        { "write:eio:offset=18446744073709551615+2", "beyond 2^64 bytes" },
        { "write:eio:lba=3", "unknown key 'lba' (valid keys: sector, offset, count)" },
        { "write:eio:count", "'count' is not of the form key=value" },
        { "flush:eio:sector=0", "a flush has no range" },
        { "read:eio;;write:eio", "empty rule" },
        { "read:eio;", "empty rule" },
        { "read:eio;write:x", "rule 2 'write:x'" },
    };
    char err[512];

    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        CHECK_EQ(blk_inject_check(bad[i].rules, err, sizeof(err)), -EINVAL);
        if (!strstr(err, bad[i].msg) || strncmp(err, "inject: ", 8)) {
            fprintf(stderr, "  '%s': got '%s', want '%s'\n", bad[i].rules, err, bad[i].msg);
            test_failures++;
        }
    }
    /* 17 rules: one too many */
    char many[1024] = "";
    for (int i = 0; i < BLK_INJECT_MAX + 1; i++)
        strcat(many, i ? ";read:eio" : "read:eio");
    CHECK_EQ(blk_inject_check(many, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "more than 16 rules") != NULL);
    /* good ones */
    CHECK_EQ(blk_inject_check("", err, sizeof(err)), 0);
    CHECK_EQ(blk_inject_check(NULL, err, sizeof(err)), 0);
    CHECK_EQ(blk_inject_check("any:enospc", err, sizeof(err)), 0);
    CHECK_EQ(blk_inject_check("write:enospc:sector=2048+64:count=3;read:eio:offset=1M+4k:count=inf;"
                              "flush:eio;discard:eperm;write-zeroes:edquot", err, sizeof(err)), 0);

    /* blk_open refuses a bad rule with the drive's name */
    struct blk_opts o = { .id = "n1", .driver = BLK_DRIVER_NULL, .size = MiB, .inject = "read:nope" };
    struct blk_drive *d = (void *)1;
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
    CHECK(d == NULL);
    CHECK(strncmp(err, "drive n1: inject: rule 1 'read:nope'", 36) == 0);
}

static int rw(struct blk_drive *d, enum blk_op op, uint64_t off, uint32_t len)
{
    static char buf[64 * 1024];
    struct iovec v = { buf, len };

    if (op == BLK_OP_READ || op == BLK_OP_WRITE)
        return t_io(d, op, 0, off, &v, 1, len);
    return t_io(d, op, 0, off, NULL, 0, op == BLK_OP_FLUSH ? 0 : len);
}

static void test_match_count(void)
{
    struct blk_drive *d = open_null("write:enospc:sector=8+8:count=2;read:eio:offset=1M+1:count=inf",
                                    BLK_ERR_AUTO, BLK_ERR_AUTO);
    struct blk_inject_info info[4];
    struct blk_stats st;

    if (!d)
        return;
    /* writes outside sectors 8..15 and reads work */
    CHECK_EQ(rw(d, BLK_OP_WRITE, 0, 4096), 0);          /* sectors 0..7 */
    CHECK_EQ(rw(d, BLK_OP_WRITE, 16 * 512, 512), 0);    /* sector 16 */
    CHECK_EQ(rw(d, BLK_OP_READ, 8 * 512, 4096), 0);     /* a read of the write range */
    /* a write touching sector 15 fails; twice, then the rule is spent */
    CHECK_EQ(rw(d, BLK_OP_WRITE, 15 * 512, 1024), -ENOSPC);
    CHECK_EQ(rw(d, BLK_OP_WRITE, 4 * 512, 4096), -ENOSPC);  /* 4..11 overlaps */
    CHECK_EQ(rw(d, BLK_OP_WRITE, 8 * 512, 512), 0);
    /* the read rule: the byte at 1 MiB, any number of times */
    for (int i = 0; i < 5; i++)
        CHECK_EQ(rw(d, BLK_OP_READ, MiB - 512, 1024), -EIO);
    CHECK_EQ(rw(d, BLK_OP_READ, MiB - 512, 512), 0);    /* ends just before */
    CHECK_EQ(rw(d, BLK_OP_READ, MiB + 1, 512), 0);      /* starts just after */
    CHECK_EQ(rw(d, BLK_OP_FLUSH, 0, 0), 0);
    /* failures count as errors in the stats */
    blk_get_stats(d, &st);
    CHECK_EQ(st.errors, 7);
    CHECK_EQ(blk_get_inject(d, info, 4), 2);
    CHECK(!strcmp(info[0].rule, "write:enospc:offset=4096+4096:count=2"));
    CHECK_EQ(info[0].hits, 2);
    CHECK_EQ(info[0].remaining, 0);
    CHECK(!strcmp(info[1].rule, "read:eio:offset=1048576+1:count=inf"));
    CHECK_EQ(info[1].hits, 5);
    CHECK(info[1].remaining == UINT64_MAX);
    /* replaced at run time, then cleared; a bad set leaves the rules alone */
    char err[256];
    CHECK_EQ(blk_set_inject(d, "flush:eio;any:eperm:count=1", err, sizeof(err)), 0);
    CHECK_EQ(rw(d, BLK_OP_READ, MiB, 512), -EPERM);     /* rule 2: any op */
    CHECK_EQ(rw(d, BLK_OP_READ, MiB, 512), 0);
    CHECK_EQ(rw(d, BLK_OP_FLUSH, 0, 0), -EIO);
    CHECK_EQ(rw(d, BLK_OP_FLUSH, 0, 0), 0);
    CHECK_EQ(blk_set_inject(d, "any:eio;bad", err, sizeof(err)), -EINVAL);
    CHECK_EQ(blk_get_inject(d, info, 4), 2);
    CHECK_EQ(blk_set_inject(d, "discard:eio:count=inf", err, sizeof(err)), 0);
    CHECK_EQ(rw(d, BLK_OP_DISCARD, 0, 4096), -EIO);
    CHECK_EQ(rw(d, BLK_OP_WRITE_ZEROES, 0, 4096), 0);
    CHECK_EQ(blk_set_inject(d, "", err, sizeof(err)), 0);
    CHECK_EQ(blk_get_inject(d, info, 4), 0);
    CHECK_EQ(rw(d, BLK_OP_DISCARD, 0, 4096), 0);
    blk_close(d);
}

/* On a real file: an injected write changes nothing, the next one does. */
static const char *g_dir;

static void test_file(void)
{
    const char *dir = g_dir;
    char path[256], err[256];
    struct blk_drive *d;
    char *w = t_alloc(4096), *r = t_alloc(4096);

    if (t_make_file(dir, MiB, path, sizeof(path)) < 0) {
        CHECK(0);
        return;
    }
    d = t_open(path, BLK_CACHE_WRITEBACK, BLK_AIO_IO_URING, false, false);
    if (!d)
        goto out;
    CHECK_EQ(blk_set_inject(d, "write:eio:sector=0", err, sizeof(err)), 0);
    t_fill(w, 4096, 7);
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 0, w, 4096), -EIO);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, r, 4096), 0);
    for (int i = 0; i < 4096; i++)
        if (r[i]) {
            CHECK(!"the failed write reached the file");
            break;
        }
    CHECK_EQ(t_rw(d, BLK_OP_WRITE, 0, 0, w, 4096), 0);
    CHECK_EQ(t_rw(d, BLK_OP_READ, 0, 0, r, 4096), 0);
    CHECK_MEM(r, w, 4096);
    blk_close(d);
out:
    unlink(path);
    free(w);
    free(r);
}

static void test_policy(void)
{
    static const struct {
        enum blk_error_policy werror, rerror;
        bool is_read;
        int err;
        enum blk_error_action want;
    } c[] = {
        /* QEMU's defaults: werror=enospc, rerror=report */
        { BLK_ERR_AUTO, BLK_ERR_AUTO, false, ENOSPC, BLK_ACTION_STOP },
        { BLK_ERR_AUTO, BLK_ERR_AUTO, false, EIO, BLK_ACTION_REPORT },
        { BLK_ERR_AUTO, BLK_ERR_AUTO, true, ENOSPC, BLK_ACTION_REPORT },
        { BLK_ERR_STOP, BLK_ERR_REPORT, false, EIO, BLK_ACTION_STOP },
        { BLK_ERR_STOP, BLK_ERR_REPORT, true, EIO, BLK_ACTION_REPORT },
        { BLK_ERR_REPORT, BLK_ERR_STOP, true, EIO, BLK_ACTION_STOP },
        { BLK_ERR_REPORT, BLK_ERR_STOP, false, ENOSPC, BLK_ACTION_REPORT },
        { BLK_ERR_IGNORE, BLK_ERR_IGNORE, false, EIO, BLK_ACTION_IGNORE },
        { BLK_ERR_IGNORE, BLK_ERR_IGNORE, true, ENOSPC, BLK_ACTION_IGNORE },
        { BLK_ERR_ENOSPC, BLK_ERR_REPORT, false, EDQUOT, BLK_ACTION_REPORT },
    };
    enum blk_error_policy p;

    for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        enum blk_error_action got = blk_error_action(c[i].werror, c[i].rerror, c[i].is_read, c[i].err);

        if (got != c[i].want) {
            fprintf(stderr, "  case %u: got %s, want %s\n", i, blk_error_action_name(got),
                    blk_error_action_name(c[i].want));
            test_failures++;
        }
    }
    CHECK_EQ(blk_error_policy_parse("stop", true, &p), 0);
    CHECK_EQ(p, BLK_ERR_STOP);
    CHECK_EQ(blk_error_policy_parse("enospc", false, &p), 0);
    CHECK_EQ(p, BLK_ERR_ENOSPC);
    CHECK_EQ(blk_error_policy_parse("enospc", true, &p), -EINVAL);
    CHECK_EQ(blk_error_policy_parse("auto", false, &p), -EINVAL);
    CHECK_EQ(blk_error_policy_parse("Stop", false, &p), -EINVAL);
    CHECK(!strcmp(blk_error_policy_name(BLK_ERR_IGNORE), "ignore"));
    CHECK(!strcmp(blk_error_action_name(BLK_ACTION_STOP), "stop"));
    CHECK(!strcmp(blk_io_status_name(BLK_IOSTATUS_NOSPACE), "nospace"));
    CHECK_EQ(blk_error_policy_resolve(BLK_ERR_AUTO, false), BLK_ERR_ENOSPC);
    CHECK_EQ(blk_error_policy_resolve(BLK_ERR_AUTO, true), BLK_ERR_REPORT);
    CHECK_EQ(blk_error_policy_resolve(BLK_ERR_STOP, true), BLK_ERR_STOP);

    /* blk_open refuses policies out of range (enospc for reads included) */
    struct blk_opts o = { .id = "n2", .driver = BLK_DRIVER_NULL, .size = MiB, .rerror = BLK_ERR_ENOSPC };
    char err[256];
    struct blk_drive *d;
    CHECK_EQ(blk_open(&o, &d, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    g_dir = t_disk_dir();
    t_setup();
    RUN_TEST(test_parse_errors);
    RUN_TEST(test_match_count);
    RUN_TEST(test_policy);
    if (g_dir)
        RUN_TEST(test_file);
    t_teardown();
    return test_exit();
}

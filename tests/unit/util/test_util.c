/* util: option strings, iov helpers, event loop. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test.h"
#include "util/iov.h"
#include "util/loop.h"
#include "util/opts.h"

static void test_opts_basic(void)
{
    struct opts o;
    char err[256];
    uint64_t v = 0;
    bool b = false;

    CHECK_EQ(opts_parse(&o, "scsi-hd,drive=d0,lun=300,removable=on", "driver", err, sizeof(err)), 0);
    CHECK(!strcmp(opts_get(&o, "driver"), "scsi-hd"));
    CHECK(!strcmp(opts_get(&o, "drive"), "d0"));
    CHECK_EQ(opts_get_u64(&o, "lun", 0, 16383, &v, "--device", err, sizeof(err)), 1);
    CHECK_EQ(v, 300);
    CHECK_EQ(opts_get_bool(&o, "removable", &b, "--device", err, sizeof(err)), 1);
    CHECK(b);
    CHECK(opts_first_unused(&o) == NULL);
    CHECK_EQ(opts_get_u64(&o, "missing", 0, 1, &v, "--device", err, sizeof(err)), 0);
    opts_free(&o);
}

static void test_opts_escape_and_errors(void)
{
    struct opts o;
    char err[256];
    uint64_t v;

    CHECK_EQ(opts_parse(&o, "file=/a,,b.img,id=x", NULL, err, sizeof(err)), 0);
    CHECK(!strcmp(opts_get(&o, "file"), "/a,b.img"));
    opts_free(&o);
    CHECK_EQ(opts_parse(&o, "id=a,id=b", NULL, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "twice") != NULL);
    CHECK_EQ(opts_parse(&o, "noequals", NULL, err, sizeof(err)), -EINVAL);
    CHECK_EQ(opts_parse(&o, "", NULL, err, sizeof(err)), -EINVAL);
    CHECK_EQ(opts_parse(&o, "=x", NULL, err, sizeof(err)), -EINVAL);
    CHECK_EQ(opts_parse(&o, "lun=99999,foo=1", NULL, err, sizeof(err)), 0);
    CHECK_EQ(opts_get_u64(&o, "lun", 0, 16383, &v, "--device", err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "lun=99999") && strstr(err, "16383"));
    CHECK(!strcmp(opts_first_unused(&o), "foo"));
    opts_free(&o);
}

static void test_parse_size(void)
{
    uint64_t v;

    CHECK_EQ(parse_size("1G", &v), 0);
    CHECK_EQ(v, 1ull << 30);
    CHECK_EQ(parse_size("512M", &v), 0);
    CHECK_EQ(v, 512ull << 20);
    CHECK_EQ(parse_size("4096", &v), 0);
    CHECK_EQ(v, 4096);
    CHECK_EQ(parse_size("1GB", &v), 0);
    CHECK_EQ(parse_size("x", &v), -EINVAL);
    CHECK_EQ(parse_size("-1", &v), -EINVAL);
    CHECK_EQ(parse_size("99999999999T", &v), -EINVAL);   /* overflows 64 bits */
    CHECK_EQ(parse_u64("0x10", &v), 0);
    CHECK_EQ(v, 16);
    CHECK_EQ(parse_u64("12abc", &v), -EINVAL);
}

static void test_iov(void)
{
    char a[4] = "abcd", b[3] = "efg", c[5] = "hijkl", out[16] = { 0 };
    struct iovec iov[3] = { { a, 4 }, { b, 3 }, { c, 5 } }, dst[3];
    int n;

    CHECK_EQ(iov_size(iov, 3), 12);
    CHECK_EQ(iov_to_buf(iov, 3, 2, out, 6), 6);
    CHECK_MEM(out, "cdefgh", 6);
    CHECK_EQ(iov_to_buf(iov, 3, 10, out, 6), 2);
    CHECK_EQ(iov_from_buf(iov, 3, 3, "XYZ", 3), 3);
    CHECK_MEM(a, "abcX", 4);
    CHECK_MEM(b, "YZg", 3);
    n = iov_slice(iov, 3, 5, 4, dst, 3);
    CHECK_EQ(n, 2);
    CHECK_EQ(dst[0].iov_len, 2);
    CHECK_EQ(dst[1].iov_len, 2);
    CHECK(dst[1].iov_base == c);
    CHECK_EQ(iov_slice(iov, 3, 0, 12, dst, 2), -1);
    CHECK_EQ(iov_memset(iov, 3, 11, 0, 10), 1);
    CHECK_EQ(c[4], 0);
    struct iovec big[2] = { { a, SIZE_MAX }, { b, 2 } };
    CHECK(iov_size(big, 2) == SIZE_MAX);
}

static int fired;
static struct ev_handler *self_h;

static void self_remove_cb(void *opaque, int fd, uint32_t events)
{
    struct ev_loop *loop = opaque;
    uint64_t v;

    (void)events;
    CHECK(read(fd, &v, sizeof(v)) == sizeof(v));
    fired++;
    ev_loop_del_fd(loop, self_h);   /* removing itself inside its callback is allowed */
}

static void defer_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_loop(void)
{
    struct ev_loop *loop = ev_loop_new();
    int efd = eventfd(0, EFD_NONBLOCK);
    uint64_t one = 1;
    int deferred = 0;

    CHECK(loop != NULL);
    self_h = ev_loop_add_fd(loop, efd, EPOLLIN, self_remove_cb, loop);
    CHECK(self_h != NULL);
    CHECK(write(efd, &one, 8) == 8);
    CHECK_EQ(ev_loop_defer(loop, defer_cb, &deferred), 0);
    CHECK(ev_loop_run_once(loop, 1000) >= 1);
    CHECK_EQ(fired, 1);
    CHECK_EQ(deferred, 1);
    CHECK(write(efd, &one, 8) == 8);
    ev_loop_run_once(loop, 10);
    CHECK_EQ(fired, 1);             /* removed: no second call */
    ev_loop_stop(loop);
    CHECK(ev_loop_stopped(loop));
    close(efd);
    ev_loop_free(loop);
}

/* Cross-thread use: a loop run by another thread gets calls posted from this
 * one, in order, and wakes for them; ev_loop_defer from here posts too; the
 * wait hooks bracket every epoll_wait. */
struct xthread {
    struct ev_loop *loop;
    int order[8];
    int n;
    bool on_owner[8];
    int waits_before, waits_after;
};

static void post_cb(void *opaque)
{
    struct xthread *x = opaque;

    if (x->n < 8) {
        x->on_owner[x->n] = ev_loop_is_current(x->loop);
        x->order[x->n] = x->n;
        x->n++;
    }
}

static void stop_cb(void *opaque)
{
    struct xthread *x = opaque;

    ev_loop_stop(x->loop);
}

static void before_wait(void *opaque)
{
    ((struct xthread *)opaque)->waits_before++;
}

static void after_wait(void *opaque)
{
    ((struct xthread *)opaque)->waits_after++;
}

static void *xthread_main(void *opaque)
{
    struct xthread *x = opaque;

    ev_loop_bind_thread(x->loop);
    ev_loop_run(x->loop);
    return NULL;
}

static void test_loop_threads(void)
{
    struct xthread x = { .loop = ev_loop_new() };
    pthread_t t;

    CHECK(x.loop != NULL);
    CHECK(ev_loop_is_current(x.loop));      /* the creating thread owns it until bound */
    ev_loop_set_wait_hooks(x.loop, before_wait, after_wait, &x);
    CHECK_EQ(pthread_create(&t, NULL, xthread_main, &x), 0);
    /* the thread may or may not have bound the loop yet: either way the calls
     * run on the loop's thread once it runs them */
    for (int i = 0; i < 5; i++)
        CHECK_EQ(ev_loop_post(x.loop, post_cb, &x), 0);
    CHECK_EQ(ev_loop_post(x.loop, stop_cb, &x), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(x.n, 5);
    for (int i = 0; i < x.n; i++) {
        CHECK_EQ(x.order[i], i);
        CHECK(x.on_owner[i]);
    }
    CHECK(!ev_loop_is_current(x.loop));     /* bound to the thread that ran it */
    CHECK(x.waits_before >= 1);
    CHECK_EQ(x.waits_before, x.waits_after);
    /* defer from a foreign thread is a post: queued, run when the loop runs
     * (here: by ev_loop_free, which runs what is left) */
    CHECK_EQ(ev_loop_defer(x.loop, post_cb, &x), 0);
    CHECK_EQ(x.n, 5);
    ev_loop_bind_thread(x.loop);
    ev_loop_run_once(x.loop, 0);
    CHECK_EQ(x.n, 6);
    CHECK(x.on_owner[5]);
    ev_loop_free(x.loop);
}

int main(void)
{
    RUN_TEST(test_opts_basic);
    RUN_TEST(test_opts_escape_and_errors);
    RUN_TEST(test_parse_size);
    RUN_TEST(test_iov);
    RUN_TEST(test_loop);
    RUN_TEST(test_loop_threads);
    return test_exit();
}
